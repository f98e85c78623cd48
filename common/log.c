/* common/log.c: see log.h. */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int g_level = -1;

void bt_log_set_level(enum bt_log_level level) { atomic_store(&g_level, (int)level); }

static int level_from_env(void)
{
    const char *e = getenv("BT_LOG_LEVEL");
    if (!e) return BT_LOG_INFO;
    if (!strcasecmp(e, "debug")) return BT_LOG_DEBUG;
    if (!strcasecmp(e, "warn")) return BT_LOG_WARN;
    if (!strcasecmp(e, "error")) return BT_LOG_ERROR;
    if (!strcasecmp(e, "off")) return BT_LOG_OFF;
    return BT_LOG_INFO;
}

int bt_log_enabled(enum bt_log_level level)
{
    int cur = atomic_load(&g_level);
    if (cur < 0) {
        cur = level_from_env();
        atomic_store(&g_level, cur);
    }
    return (int)level >= cur;
}

void bt_log_write(enum bt_log_level level, const char *file, int line, const char *fmt, ...)
{
    static const char tag[] = "DIWE";
    char buf[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %c %s:%d ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, tag[level & 3], base, line);
    if (n < 0) return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof buf - 2) len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

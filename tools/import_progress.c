/* tools/import_progress.c: progress display of bt-import (import_progress.h). */
#include "tools/import_progress.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define TTY_REDRAW_MS 250

int64_t imp_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void imp_human_bytes(uint64_t b, char *buf, size_t cap)
{
    if (b < 1000) snprintf(buf, cap, "%llu B", (unsigned long long)b);
    else if (b < 1000000) snprintf(buf, cap, "%.1f kB", (double)b / 1e3);
    else if (b < 1000000000ull) snprintf(buf, cap, "%.1f MB", (double)b / 1e6);
    else snprintf(buf, cap, "%.2f GB", (double)b / 1e9);
}

static void fmt_secs(double s, char *buf, size_t cap)
{
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

void imp_progress_format(const imp_progress *p, char *buf, size_t cap, bool bar)
{
    uint64_t rows = atomic_load(&p->ctr->rows), cells = atomic_load(&p->ctr->cells);
    uint64_t bytes = atomic_load(&p->ctr->bytes), rej = atomic_load(&p->ctr->rejected);
    double secs = (double)(imp_now_us() - p->start_us) / 1e6;
    double rate = secs > 0 ? (double)rows / secs : 0;
    char hb[32], eta[32] = "", pct[64] = "";
    imp_human_bytes(bytes, hb, sizeof hb);
    if (p->total_bytes) {
        double f = (double)bytes / (double)p->total_bytes;
        if (f > 1) f = 1;
        if (bar) {
            char b[23];
            int fill = (int)(f * 20);
            b[0] = '[';
            for (int i = 0; i < 20; i++) b[1 + i] = i < fill ? '=' : i == fill ? '>' : ' ';
            b[21] = ']';
            b[22] = '\0';
            snprintf(pct, sizeof pct, "%s %3d%% ", b, (int)(f * 100));
        } else {
            snprintf(pct, sizeof pct, "%d%%, ", (int)(f * 100));
        }
        if (f > 0.001 && f < 1 && secs > 0.5) {
            char t[24];
            fmt_secs(secs / f - secs, t, sizeof t);
            snprintf(eta, sizeof eta, ", ETA %s", t);
        }
    }
    char rj[48] = "";
    if (rej) snprintf(rj, sizeof rj, ", %llu rejected", (unsigned long long)rej);
    const char *ph = p->phase && *p->phase ? p->phase : NULL;
    snprintf(buf, cap, "%s%llu rows, %llu cells, %s, %.0f rows/s%s%s%s%s", pct, (unsigned long long)rows,
             (unsigned long long)cells, hb, rate, rj, ph ? " - " : "", ph ? ph : "", ph ? "" : eta);
}

static void draw(imp_progress *p)
{
    char line[256];
    if (p->tty) {
        imp_progress_format(p, line, sizeof line, true);
        fprintf(p->out, "\r%s\033[K", line);
        p->drawn = true;
    } else {
        imp_progress_format(p, line, sizeof line, false);
        fprintf(p->out, "bt-import: %s\n", line);
    }
    fflush(p->out);
}

static void *progress_main(void *arg)
{
    imp_progress *p = arg;
    int ms = p->tty ? TTY_REDRAW_MS : p->interval_ms;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        int rc = pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        if (p->stop) break;
        if (rc == ETIMEDOUT) draw(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int imp_progress_start(imp_progress *p)
{
    if (p->interval_ms <= 0) p->interval_ms = 5000;
    p->start_us = imp_now_us();
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->stop = false;
    if (pthread_create(&p->thread, NULL, progress_main, p)) return -1;
    p->running = true;
    return 0;
}

void imp_progress_phase(imp_progress *p, const char *phase)
{
    if (!p->running) return;
    pthread_mutex_lock(&p->mu);
    p->phase = phase;
    draw(p);
    pthread_mutex_unlock(&p->mu);
}

void imp_progress_stop(imp_progress *p)
{
    if (!p->running) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    if (p->tty && p->drawn) {
        fprintf(p->out, "\r\033[K");
        fflush(p->out);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    p->running = false;
}

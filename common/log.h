/* common/log.h: leveled logging to stderr.
 *
 * Lines look like "2026-11-22T01:02:03.123Z W tablet.c:120 message".
 * The threshold comes from bt_log_set_level() or, at first use, from the
 * BT_LOG_LEVEL environment variable (debug|info|warn|error; default info).
 * Thread-safe: each line is written with one write(2).
 */
#ifndef BT_COMMON_LOG_H
#define BT_COMMON_LOG_H

enum bt_log_level { BT_LOG_DEBUG = 0, BT_LOG_INFO = 1, BT_LOG_WARN = 2, BT_LOG_ERROR = 3, BT_LOG_OFF = 4 };

void bt_log_set_level(enum bt_log_level level);
int bt_log_enabled(enum bt_log_level level);
void bt_log_write(enum bt_log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define BT_LOG(level, ...) \
    do { if (bt_log_enabled(level)) bt_log_write(level, __FILE__, __LINE__, __VA_ARGS__); } while (0)
#define BT_DEBUG(...) BT_LOG(BT_LOG_DEBUG, __VA_ARGS__)
#define BT_INFO(...)  BT_LOG(BT_LOG_INFO, __VA_ARGS__)
#define BT_WARN(...)  BT_LOG(BT_LOG_WARN, __VA_ARGS__)
#define BT_ERROR(...) BT_LOG(BT_LOG_ERROR, __VA_ARGS__)

#endif

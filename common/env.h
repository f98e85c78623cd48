/* common/env.h: every file I/O of the storage engine goes through a bt_env.
 *
 * Two implementations:
 *   bt_env_posix()      the real one (open/pwrite/fdatasync/rename/...).
 *   bt_env_fault_new()  wraps another env and injects faults for tests:
 *                       drop data not yet synced, fail the Nth call, report
 *                       ENOSPC after a byte budget.
 *
 * All functions return BT_OK or a negative BT_E* code (status.h) and record a
 * detail with bt_err() naming the path and the failed call.  Objects are
 * thread-safe to the extent stated per function.
 */
#ifndef BT_COMMON_ENV_H
#define BT_COMMON_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bt_env bt_env;
typedef struct bt_wfile bt_wfile;
typedef struct bt_rfile bt_rfile;

/* ---- writable file: sequential appends ---------------------------------- */
struct bt_wfile_ops {
    int (*append)(bt_wfile *f, const void *data, size_t n);
    int (*sync)(bt_wfile *f);          /* data durable (fdatasync) */
    int (*close)(bt_wfile *f);         /* frees f even when it fails; does not sync */
};
/* Not thread-safe: one writer at a time (callers serialise). */
struct bt_wfile { const struct bt_wfile_ops *ops; };

static inline int bt_wfile_append(bt_wfile *f, const void *d, size_t n) { return f->ops->append(f, d, n); }
static inline int bt_wfile_sync(bt_wfile *f) { return f->ops->sync(f); }
static inline int bt_wfile_close(bt_wfile *f) { return f->ops->close(f); }

/* ---- readable file: positional reads ------------------------------------ */
struct bt_rfile_ops {
    /* Reads up to n bytes at off into buf; *got = bytes read (short only at EOF). */
    int (*read_at)(bt_rfile *f, uint64_t off, size_t n, void *buf, size_t *got);
    int (*close)(bt_rfile *f);
};
/* read_at is thread-safe (pread). */
struct bt_rfile { const struct bt_rfile_ops *ops; };

static inline int bt_rfile_read_at(bt_rfile *f, uint64_t off, size_t n, void *buf, size_t *got)
{ return f->ops->read_at(f, off, n, buf, got); }
static inline int bt_rfile_close(bt_rfile *f) { return f->ops->close(f); }

/* ---- the environment ------------------------------------------------------ */
enum {
    BT_ENV_CREATE_TRUNC = 0, /* create or truncate */
    BT_ENV_APPEND       = 1, /* create if missing, append to existing data */
    BT_ENV_EXCL         = 2, /* create; BT_EEXIST if it exists */
};

/* Called once per directory entry ("." and ".." excluded). Return non-zero to stop. */
typedef int (*bt_env_list_fn)(void *arg, const char *name);

struct bt_env_ops {
    int (*open_writable)(bt_env *e, const char *path, int mode, bt_wfile **out);
    int (*open_readable)(bt_env *e, const char *path, bt_rfile **out);
    int (*file_size)(bt_env *e, const char *path, uint64_t *size);
    int (*rename)(bt_env *e, const char *from, const char *to); /* atomic replace */
    int (*remove)(bt_env *e, const char *path);
    int (*mkdir)(bt_env *e, const char *path);  /* mkdir -p; BT_OK if it exists */
    int (*sync_dir)(bt_env *e, const char *path); /* fsync a directory */
    int (*list)(bt_env *e, const char *dir, bt_env_list_fn fn, void *arg);
    int (*truncate)(bt_env *e, const char *path, uint64_t size);
    void (*destroy)(bt_env *e);
};
/* All ops are thread-safe. */
struct bt_env { const struct bt_env_ops *ops; };

static inline int bt_env_open_writable(bt_env *e, const char *p, int mode, bt_wfile **o) { return e->ops->open_writable(e, p, mode, o); }
static inline int bt_env_open_readable(bt_env *e, const char *p, bt_rfile **o) { return e->ops->open_readable(e, p, o); }
static inline int bt_env_file_size(bt_env *e, const char *p, uint64_t *s) { return e->ops->file_size(e, p, s); }
static inline int bt_env_rename(bt_env *e, const char *a, const char *b) { return e->ops->rename(e, a, b); }
static inline int bt_env_remove(bt_env *e, const char *p) { return e->ops->remove(e, p); }
static inline int bt_env_mkdir(bt_env *e, const char *p) { return e->ops->mkdir(e, p); }
static inline int bt_env_sync_dir(bt_env *e, const char *p) { return e->ops->sync_dir(e, p); }
static inline int bt_env_list(bt_env *e, const char *d, bt_env_list_fn fn, void *arg) { return e->ops->list(e, d, fn, arg); }
static inline int bt_env_truncate(bt_env *e, const char *p, uint64_t s) { return e->ops->truncate(e, p, s); }
/* Destroys an env made by bt_env_fault_new (the posix env is static: no-op). */
static inline void bt_env_destroy(bt_env *e) { if (e && e->ops->destroy) e->ops->destroy(e); }

/* The process-wide POSIX env.  Static; never destroy. */
bt_env *bt_env_posix(void);

/* Helpers over any env. */
/* Reads a whole file into a malloc'd buffer (*data, caller frees). */
int bt_env_read_all(bt_env *e, const char *path, uint8_t **data, size_t *len);
/* Writes path atomically: write path.tmp, sync, rename over path, sync dir. */
int bt_env_write_atomic(bt_env *e, const char *path, const void *data, size_t len);
/* Does path exist? */
bool bt_env_exists(bt_env *e, const char *path);

/* A readable file over `data` (len bytes, malloc'd; the file owns it and
 * frees it at close).  Thread-safe reads. */
int bt_rfile_from_memory(uint8_t *data, size_t len, bt_rfile **out);

/* ---- fault injection (tests) --------------------------------------------- */
/* Wraps `base` (not owned).  Tracks, per file path, how many bytes have been
 * synced, and which created/renamed/removed entries a directory sync has made
 * durable.  Thread-safe. */
bt_env *bt_env_fault_new(bt_env *base);

/* Simulates a crash: every file loses the bytes appended since its last sync
 * (truncated to its synced length); files created since their directory's
 * last sync_dir are deleted.  Open writable files become dead (every later
 * call on them fails with BT_EIO) so no writer can resurrect dropped data. */
int bt_env_fault_drop_unsynced(bt_env *e);

/* The Nth env or file call from now (1 = the next one) fails with `code`
 * (e.g. BT_EIO).  Counts open/append/sync/rename/remove/sync_dir/truncate/read
 * calls.
 * n = 0 disables. */
void bt_env_fault_fail_nth(bt_env *e, uint64_t n, int code);

/* After `bytes` more bytes have been appended, appends fail with BT_ENOSPC
 * (the failing append writes nothing).  UINT64_MAX disables. */
void bt_env_fault_set_space(bt_env *e, uint64_t bytes);

/* Counters for tests. */
uint64_t bt_env_fault_calls(bt_env *e);

#endif

/* lockservice/lock.h: the lock service client API (design sections 2, 5, 7;
 * semantics in docs/lockservice.md).  One API over two backends chosen by URL:
 *
 *   bt://host:port                     bt-lockd (built in; single machine)
 *   etcd://host:port[,host:port...]    etcd v3 JSON gateway (replicated)
 *
 * A client is one session: opening it creates a session with a lease that a
 * background thread keeps alive; closing it ends the session, releasing its
 * locks and deleting its ephemeral files.  If keep-alives fail, the session
 * is first in jeopardy (the holder must assume it may lose its locks) and
 * then expired (locks and ephemeral files are gone; every later call fails
 * with BT_ECLOSED).  The holder's own view of its lease is conservative: it
 * counts from when it SENT the keep-alive that the server acknowledged, on a
 * monotonic clock, minus a safety margin, so it never believes in a lease the
 * server has already let expire.
 *
 * Namespace: absolute paths of '/'-separated components [A-Za-z0-9_.-]{1,64},
 * at most 1024 bytes; "/" is the root directory.  Files hold up to
 * LK_MAX_CONTENTS bytes.  Directories are created explicitly (LK_DIR) and must
 * be empty to be deleted.  Every file and directory can be used as an
 * exclusive lock.
 *
 * Errors (common/status.h): BT_ENOTFOUND (no such path), BT_EEXIST,
 * BT_EINVAL (bad path, bad URL, bad argument), BT_ETOOBIG (contents over the
 * cap), BT_EBUSY (lock held by another session; try_acquire),
 * BT_ETIMEDOUT (acquire timeout, call timeout), BT_EFAILED_PRECONDITION
 * (generation mismatch, stale sequencer, deleting a non-empty directory),
 * BT_EUNAVAIL (service unreachable), BT_ECLOSED (session expired or closed).
 *
 * Thread-safety: every function may be called from any thread.  Callbacks
 * (session events, watches) run on a client thread, never under a caller's
 * lock, one at a time per client; they must not call lk_close.
 */
#ifndef BT_LOCKSERVICE_LOCK_H
#define BT_LOCKSERVICE_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LK_MAX_PATH      1024
#define LK_MAX_CONTENTS  (64 * 1024)
#define LK_MAX_SEQUENCER 1200       /* bytes of a sequencer string, NUL included */

typedef struct lk_client lk_client;

typedef enum {
    LK_SESSION_JEOPARDY = 1,   /* keep-alives failing; the lease may lapse */
    LK_SESSION_SAFE = 2,       /* keep-alives work again after a jeopardy */
    LK_SESSION_EXPIRED = 3,    /* the session is gone: locks and ephemerals lost */
} lk_session_event;

typedef struct lk_options {
    uint32_t lease_ms;         /* requested lease; 0 -> 10000.  The server may clamp it. */
    uint32_t timeout_ms;       /* per call; 0 -> 5000 */
    void (*on_session)(void *arg, lk_session_event ev);
    void *arg;
} lk_options;

/* Connects and creates a session.  opts may be NULL (defaults). */
int lk_open(const char *url, const lk_options *opts, lk_client **out);
/* Ends the session (releases its locks, deletes its ephemeral files) and
 * frees the client.  NULL is a no-op. */
void lk_close(lk_client *c);

uint64_t lk_session_id(const lk_client *c);
/* True while the holder's conservative view says its lease is valid. */
bool lk_session_valid(lk_client *c);
/* CLOCK_MONOTONIC microseconds until which the lease is surely valid; 0 if expired. */
int64_t lk_lease_valid_until_us(lk_client *c);

/* ---- namespace --------------------------------------------------------------- */
enum {
    LK_DIR = 1,          /* create a directory */
    LK_EPHEMERAL = 2,    /* deleted when the creating session ends */
};

typedef struct lk_stat {
    uint64_t generation;       /* bumps on every content change; > 0 for existing paths */
    uint64_t lock_generation;  /* bumps each time the lock is acquired */
    uint64_t lock_owner;       /* session id holding the lock, 0 if free */
    uint64_t ephemeral_owner;  /* session id of an ephemeral file, 0 otherwise */
    bool is_dir;
    size_t size;               /* bytes of contents */
} lk_stat;

/* Creates a file (with contents) or directory; the parent must exist. */
int lk_create(lk_client *c, const char *path, const void *data, size_t n, int flags);
/* Reads contents into a malloc'd buffer (*data, caller frees; may be NULL
 * when n is 0); st may be NULL. */
int lk_get(lk_client *c, const char *path, uint8_t **data, size_t *n, lk_stat *st);
/* Replaces contents.  expected_generation 0 = unconditional, otherwise the
 * call fails with BT_EFAILED_PRECONDITION unless it matches. */
int lk_set(lk_client *c, const char *path, const void *data, size_t n, uint64_t expected_generation);
/* Deletes a file or an empty directory (expected_generation as in lk_set). */
int lk_delete(lk_client *c, const char *path, uint64_t expected_generation);
int lk_stat_path(lk_client *c, const char *path, lk_stat *st);
/* Children names (not paths), sorted; free with lk_free_names. */
int lk_list(lk_client *c, const char *dir, char ***names, size_t *n);
void lk_free_names(char **names, size_t n);

/* ---- locks ------------------------------------------------------------------ */
/* Exclusive lock on an existing path.  Acquiring a lock the session already
 * holds is BT_OK.  timeout_ms 0 waits forever (until the session ends). */
int lk_acquire(lk_client *c, const char *path, uint32_t timeout_ms);
int lk_try_acquire(lk_client *c, const char *path);   /* BT_EBUSY if held elsewhere */
int lk_release(lk_client *c, const char *path);      /* BT_EFAILED_PRECONDITION if not held */

/* A sequencer names (path, lock generation) while the session holds the lock:
 * pass it with commands to the protected resource, which checks it.
 * Writes a NUL-terminated string into buf (LK_MAX_SEQUENCER bytes). */
int lk_get_sequencer(lk_client *c, const char *path, char *buf, size_t cap);
/* BT_OK if the sequencer's lock is still held under the same generation;
 * BT_EFAILED_PRECONDITION if it is stale; BT_EINVAL if malformed. */
int lk_check_sequencer(lk_client *c, const char *sequencer);

/* ---- watches ----------------------------------------------------------------- */
typedef enum {
    LK_WATCH_CHANGED = 1,        /* contents of the path changed (or it was created) */
    LK_WATCH_DELETED = 2,        /* the path was deleted */
    LK_WATCH_CHILDREN = 4,       /* a child of the directory was created or deleted */
    LK_WATCH_LOCK_RELEASED = 8,  /* the path's lock was released (or its holder's session ended) */
} lk_watch_kind;

typedef void (*lk_watch_fn)(void *arg, lk_watch_kind kind, const char *path);

/* Persistent watch on path for the kinds in `mask`, until lk_unwatch or the
 * session ends.  Every change after lk_watch returns is reported (changes may
 * be coalesced only if they are of the same kind on the same path). */
int lk_watch(lk_client *c, const char *path, int mask, lk_watch_fn fn, void *arg, uint64_t *watch_id);
int lk_unwatch(lk_client *c, uint64_t watch_id);

#endif

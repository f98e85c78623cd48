/* lockservice/lock_backend.h: what a lock service backend implements.
 * lock.c parses the URL and forwards every lk_* call to the backend's ops;
 * each backend (lock_bt.c for bt-lockd, lock_etcd.c for etcd) fills in a
 * struct lk_backend_ops and its own state.  Not a public header. */
#ifndef BT_LOCKSERVICE_LOCK_BACKEND_H
#define BT_LOCKSERVICE_LOCK_BACKEND_H

#include "lockservice/lock.h"

struct lk_backend_ops {
    void (*close)(void *impl);   /* ends the session, frees impl */
    uint64_t (*session_id)(void *impl);
    bool (*session_valid)(void *impl);
    int64_t (*lease_valid_until_us)(void *impl);
    int (*create)(void *impl, const char *path, const void *data, size_t n, int flags);
    int (*get)(void *impl, const char *path, uint8_t **data, size_t *n, lk_stat *st);
    int (*set)(void *impl, const char *path, const void *data, size_t n, uint64_t expected_generation);
    int (*del)(void *impl, const char *path, uint64_t expected_generation);
    int (*stat)(void *impl, const char *path, lk_stat *st);
    int (*list)(void *impl, const char *dir, char ***names, size_t *n);
    int (*acquire)(void *impl, const char *path, uint32_t timeout_ms);
    int (*try_acquire)(void *impl, const char *path);
    int (*release)(void *impl, const char *path);
    int (*get_sequencer)(void *impl, const char *path, char *buf, size_t cap);
    int (*check_sequencer)(void *impl, const char *sequencer);
    int (*watch)(void *impl, const char *path, int mask, lk_watch_fn fn, void *arg, uint64_t *id);
    int (*unwatch)(void *impl, uint64_t id);
};

/* Backend constructors: `hosts` is the part of the URL after "scheme://"
 * ("host:port" or "host:port,host:port,...").  On success set *ops and *impl. */
int lk_bt_open(const char *hosts, const lk_options *o, const struct lk_backend_ops **ops, void **impl);
int lk_etcd_open(const char *hosts, const lk_options *o, const struct lk_backend_ops **ops, void **impl);

/* Shared by both backends and the server: path syntax of lock.h.  Returns
 * BT_OK or BT_EINVAL with a detail naming the problem. */
int lk_check_path(const char *path);

#endif

/* lockservice/lock.c: the lk_* API: picks the backend from the URL and
 * forwards each call to it (lock_backend.h), after checking arguments that
 * mean the same for every backend. */
#include "lockservice/lock_backend.h"
#include "common/status.h"

#include <stdlib.h>
#include <string.h>

struct lk_client {
    const struct lk_backend_ops *ops;
    void *impl;
};

int lk_check_path(const char *path)
{
    if (!path || path[0] != '/') return bt_err(BT_EINVAL, "path must be absolute: \"%s\"", path ? path : "(null)");
    size_t len = strlen(path);
    if (len > LK_MAX_PATH) return bt_err(BT_EINVAL, "path longer than %d bytes", LK_MAX_PATH);
    if (len == 1) return BT_OK; /* the root */
    if (path[len - 1] == '/') return bt_err(BT_EINVAL, "path ends with '/': \"%s\"", path);
    size_t comp = 0;
    for (size_t i = 1; i <= len; i++) {
        char ch = path[i];
        if (ch == '/' || ch == '\0') {
            if (comp == 0) return bt_err(BT_EINVAL, "empty path component in \"%s\"", path);
            if (comp > 64) return bt_err(BT_EINVAL, "path component longer than 64 bytes in \"%s\"", path);
            comp = 0;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return bt_err(BT_EINVAL, "path component has a character outside [A-Za-z0-9_.-]: \"%s\"", path);
        comp++;
    }
    return BT_OK;
}

int lk_open(const char *url, const lk_options *opts, lk_client **out)
{
    static const lk_options defaults;
    if (!url) return bt_err(BT_EINVAL, "lock service URL is missing");
    lk_client *c = calloc(1, sizeof *c);
    if (!c) return BT_ENOMEM;
    int rc;
    if (!strncmp(url, "bt://", 5)) {
        rc = lk_bt_open(url + 5, opts ? opts : &defaults, &c->ops, &c->impl);
    } else if (!strncmp(url, "etcd://", 7)) {
        rc = lk_etcd_open(url + 7, opts ? opts : &defaults, &c->ops, &c->impl);
    } else {
        rc = bt_err(BT_EINVAL, "lock service URL \"%s\": expected bt://host:port or "
                    "etcd://host:port[,host:port...]", url);
    }
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return BT_OK;
}

void lk_close(lk_client *c)
{
    if (!c) return;
    c->ops->close(c->impl);
    free(c);
}

uint64_t lk_session_id(const lk_client *c) { return c->ops->session_id(c->impl); }
bool lk_session_valid(lk_client *c) { return c->ops->session_valid(c->impl); }
int64_t lk_lease_valid_until_us(lk_client *c) { return c->ops->lease_valid_until_us(c->impl); }

#define CHECK_PATH(p) do { int rc_ = lk_check_path(p); if (rc_) return rc_; } while (0)

int lk_create(lk_client *c, const char *path, const void *data, size_t n, int flags)
{
    CHECK_PATH(path);
    if (n > LK_MAX_CONTENTS)
        return bt_err(BT_ETOOBIG, "contents of %zu bytes exceed the %d-byte cap", n, LK_MAX_CONTENTS);
    if (flags & ~(LK_DIR | LK_EPHEMERAL)) return bt_err(BT_EINVAL, "unknown create flags 0x%x", flags);
    if ((flags & LK_DIR) && n) return bt_err(BT_EINVAL, "a directory has no contents");
    return c->ops->create(c->impl, path, data, n, flags);
}

int lk_get(lk_client *c, const char *path, uint8_t **data, size_t *n, lk_stat *st)
{
    CHECK_PATH(path);
    return c->ops->get(c->impl, path, data, n, st);
}

int lk_set(lk_client *c, const char *path, const void *data, size_t n, uint64_t expected_generation)
{
    CHECK_PATH(path);
    if (n > LK_MAX_CONTENTS)
        return bt_err(BT_ETOOBIG, "contents of %zu bytes exceed the %d-byte cap", n, LK_MAX_CONTENTS);
    return c->ops->set(c->impl, path, data, n, expected_generation);
}

int lk_delete(lk_client *c, const char *path, uint64_t expected_generation)
{
    CHECK_PATH(path);
    if (!strcmp(path, "/")) return bt_err(BT_EINVAL, "the root cannot be deleted");
    return c->ops->del(c->impl, path, expected_generation);
}

int lk_stat_path(lk_client *c, const char *path, lk_stat *st)
{
    CHECK_PATH(path);
    return c->ops->stat(c->impl, path, st);
}

int lk_list(lk_client *c, const char *dir, char ***names, size_t *n)
{
    CHECK_PATH(dir);
    return c->ops->list(c->impl, dir, names, n);
}

void lk_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

int lk_acquire(lk_client *c, const char *path, uint32_t timeout_ms)
{
    CHECK_PATH(path);
    return c->ops->acquire(c->impl, path, timeout_ms);
}

int lk_try_acquire(lk_client *c, const char *path)
{
    CHECK_PATH(path);
    return c->ops->try_acquire(c->impl, path);
}

int lk_release(lk_client *c, const char *path)
{
    CHECK_PATH(path);
    return c->ops->release(c->impl, path);
}

int lk_get_sequencer(lk_client *c, const char *path, char *buf, size_t cap)
{
    CHECK_PATH(path);
    if (!buf || cap == 0) return bt_err(BT_EINVAL, "no buffer for the sequencer");
    return c->ops->get_sequencer(c->impl, path, buf, cap);
}

int lk_check_sequencer(lk_client *c, const char *sequencer)
{
    if (!sequencer || !*sequencer) return bt_err(BT_EINVAL, "empty sequencer");
    return c->ops->check_sequencer(c->impl, sequencer);
}

int lk_watch(lk_client *c, const char *path, int mask, lk_watch_fn fn, void *arg, uint64_t *watch_id)
{
    CHECK_PATH(path);
    if (!fn || !mask || (mask & ~(LK_WATCH_CHANGED | LK_WATCH_DELETED | LK_WATCH_CHILDREN | LK_WATCH_LOCK_RELEASED)))
        return bt_err(BT_EINVAL, "watch needs a callback and a mask of LK_WATCH_* kinds");
    return c->ops->watch(c->impl, path, mask, fn, arg, watch_id);
}

int lk_unwatch(lk_client *c, uint64_t watch_id)
{
    return c->ops->unwatch(c->impl, watch_id);
}

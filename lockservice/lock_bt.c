/* lockservice/lock_bt.c: the bt:// backend of lock.h, a client of bt-lockd
 * (methods in lockd_proto.h) over one rpc_client.
 *
 * Two threads per client:
 *  - the keep-alive thread renews the lease every lease/3 (every lease/10,
 *    at most 250 ms, while renewals fail) and is the only thread that runs session callbacks,
 *    so they never run under a caller's lock;
 *  - the poll thread long-polls the server for watch events and runs watch
 *    callbacks, acknowledging each event after its callback, so an event is
 *    delivered exactly once and in order even across reconnects.
 * Both take cb_mu around a callback so callbacks run one at a time.
 *
 * Lease view: a renewal acknowledged with lease L that was SENT at monotonic
 * time t makes the session surely valid until t + 0.9 L (the server counts
 * from when it received it, which is later).  When that time passes without
 * a renewal, or the server answers BT_ECLOSED (session unknown or expired),
 * the client is expired for good: every call returns BT_ECLOSED.
 *
 * Reconnects are the rpc layer's: the next call after a break reconnects,
 * and the session, which is not tied to a connection, carries on.  After a
 * server restart the keep-alive with our session id re-attaches it within
 * the server's grace period.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rpc.h"
#include "common/status.h"
#include "lockservice/lock_backend.h"
#include "lockservice/lockd_proto.h"

typedef struct watch_ent {
    uint64_t id;
    char *path; /* owned */
    int mask;
    lk_watch_fn fn;
    void *arg;
} watch_ent;

enum { ST_SAFE = 0, ST_JEOPARDY = 1, ST_EXPIRED = 2 };

typedef struct lkbt {
    rpc_client *rpc;       /* owned; freed in close after both threads end */
    uint64_t sid;          /* immutable after open */
    uint32_t lease_ms;     /* granted lease; immutable after open */
    uint32_t timeout_ms;   /* per call; immutable */
    void (*on_session)(void *, lk_session_event);
    void *cb_arg;

    pthread_mutex_t mu;    /* protects the fields below */
    pthread_cond_t cond;   /* signalled on stop and on expiry (monotonic clock) */
    int64_t valid_until_us;
    bool expired;          /* sticky */
    bool stop;
    watch_ent *watches;     /* array, owned */
    size_t nwatches;
    uint64_t next_wid;

    pthread_mutex_t cb_mu; /* held while any callback of this client runs */
    pthread_t ka_thread, poll_thread;
} lkbt;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Caller holds mu.  True if the local view says the lease is valid. */
static bool valid_locked(lkbt *b)
{
    if (!b->expired && now_us() >= b->valid_until_us) {
        b->expired = true;
        pthread_cond_broadcast(&b->cond);
    }
    return !b->expired;
}

static void mark_expired(lkbt *b)
{
    pthread_mutex_lock(&b->mu);
    b->expired = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
}

/* Sends method with the request in `req` (session id already first).  Maps a
 * server BT_ECLOSED to local expiry.  resp may be NULL. */
static int call(lkbt *b, uint16_t method, bt_buf *req, bt_buf *resp, int timeout_ms)
{
    pthread_mutex_lock(&b->mu);
    bool ok = valid_locked(b);
    pthread_mutex_unlock(&b->mu);
    if (!ok) {
        bt_buf_free(req);
        return bt_err(BT_ECLOSED, "lock session %" PRIu64 " has expired", b->sid);
    }
    bt_buf local = {0};
    int rc = rpc_call(b->rpc, method, req->data, req->len, &local, timeout_ms ? timeout_ms : (int)b->timeout_ms);
    bt_buf_free(req);
    if (rc && local.len) {
        char msg[1200];
        size_t n = local.len < sizeof msg - 1 ? local.len : sizeof msg - 1;
        memcpy(msg, local.data, n);
        msg[n] = '\0';
        bt_err(rc, "%s", msg);
    }
    if (rc == BT_ECLOSED) mark_expired(b);
    if (resp && !rc) *resp = local;
    else bt_buf_free(&local);
    return rc;
}

static int start_req(lkbt *b, bt_buf *req, const char *path)
{
    memset(req, 0, sizeof *req);
    int rc = bt_buf_put_varint64(req, b->sid);
    if (path && !rc) rc = bt_buf_put_lenbytes(req, path, strlen(path));
    return rc;
}

/* ---- threads ---------------------------------------------------------------- */

static void fire_session(lkbt *b, lk_session_event ev)
{
    if (!b->on_session) return;
    pthread_mutex_lock(&b->cb_mu);
    b->on_session(b->cb_arg, ev);
    pthread_mutex_unlock(&b->cb_mu);
}

static void wait_until(lkbt *b, int64_t until_us)
{
    struct timespec ts = {until_us / 1000000, (long)(until_us % 1000000) * 1000};
    pthread_cond_timedwait(&b->cond, &b->mu, &ts);
}

static void *ka_main(void *arg)
{
    lkbt *b = arg;
    int state = ST_SAFE;
    const int64_t lease_us = (int64_t)b->lease_ms * 1000;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        bool stop = b->stop;
        bool ok = valid_locked(b);
        pthread_mutex_unlock(&b->mu);
        if (stop) break;
        if (!ok) break;
        int64_t sent = now_us();
        bt_buf req = {0}, resp = {0};
        bt_buf_put_varint64(&req, b->sid);
        int to = (int)(b->lease_ms / 3 < b->timeout_ms ? b->lease_ms / 3 : b->timeout_ms);
        int rc = rpc_call(b->rpc, LKD_KEEPALIVE, req.data, req.len, &resp, to);
        bt_buf_free(&req);
        uint64_t granted = b->lease_ms;
        if (rc == BT_OK) {
            bt_msg_reader r;
            bt_msg_reader_init(&r, resp.data, resp.len);
            if (bt_msg_get_varint(&r, &granted)) granted = b->lease_ms;
        }
        bt_buf_free(&resp);
        int ev = 0;
        pthread_mutex_lock(&b->mu);
        if (rc == BT_OK && !b->expired) {
            int64_t until = sent + (int64_t)granted * 900; /* 90% of the lease, in us */
            if (until > b->valid_until_us) b->valid_until_us = until;
            if (state == ST_JEOPARDY) { state = ST_SAFE; ev = LK_SESSION_SAFE; }
        } else if (rc == BT_ECLOSED) {
            b->expired = true;
        } else if (state == ST_SAFE) {
            state = ST_JEOPARDY;
            ev = LK_SESSION_JEOPARDY;
        }
        ok = valid_locked(b);
        if (ok && state == ST_SAFE && b->valid_until_us - now_us() < lease_us / 3) {
            state = ST_JEOPARDY;
            ev = LK_SESSION_JEOPARDY;
        }
        /* in jeopardy retry often (every lease/10, at most 250 ms apart) */
        int64_t retry_us = lease_us / 10 < 250000 ? lease_us / 10 : 250000;
        int64_t next = now_us() + (state == ST_SAFE ? lease_us / 3 : retry_us);
        if (ok && next > b->valid_until_us) next = b->valid_until_us;
        pthread_mutex_unlock(&b->mu);
        if (ev) fire_session(b, (lk_session_event)ev);
        if (!ok) break;
        pthread_mutex_lock(&b->mu);
        while (!b->stop && !b->expired && now_us() < next) wait_until(b, next);
        pthread_mutex_unlock(&b->mu);
    }
    pthread_mutex_lock(&b->mu);
    bool report = b->expired && !b->stop;
    pthread_mutex_unlock(&b->mu);
    if (report) fire_session(b, LK_SESSION_EXPIRED);
    return NULL;
}

/* Runs the callback of each event above *ack and advances *ack. */
static void deliver(lkbt *b, const bt_buf *resp, uint64_t *ack)
{
    bt_msg_reader r;
    uint64_t count = 0;
    bt_msg_reader_init(&r, resp->data, resp->len);
    bt_msg_get_varint(&r, &count);
    for (uint64_t i = 0; i < count && !bt_msg_reader_status(&r); i++) {
        uint64_t seq = 0, wid = 0, kind = 0;
        const uint8_t *p = NULL;
        size_t n = 0;
        bt_msg_get_varint(&r, &seq);
        bt_msg_get_varint(&r, &wid);
        bt_msg_get_varint(&r, &kind);
        bt_msg_get_bytes(&r, &p, &n);
        if (bt_msg_reader_status(&r) || seq <= *ack) continue;
        char path[LK_MAX_PATH + 1];
        if (n > LK_MAX_PATH) n = LK_MAX_PATH;
        memcpy(path, p, n);
        path[n] = '\0';
        lk_watch_fn fn = NULL;
        void *arg = NULL;
        pthread_mutex_lock(&b->mu);
        for (size_t j = 0; j < b->nwatches; j++)
            if (b->watches[j].id == wid) { fn = b->watches[j].fn; arg = b->watches[j].arg; }
        bool stop = b->stop;
        pthread_mutex_unlock(&b->mu);
        if (fn && !stop) {
            pthread_mutex_lock(&b->cb_mu);
            fn(arg, (lk_watch_kind)kind, path);
            pthread_mutex_unlock(&b->cb_mu);
        }
        *ack = seq;
    }
}

static void *poll_main(void *arg)
{
    lkbt *b = arg;
    uint64_t ack = 0;
    const uint32_t wait = 1000;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        bool go = !b->stop && valid_locked(b);
        pthread_mutex_unlock(&b->mu);
        if (!go) break;
        bt_buf req = {0}, resp = {0};
        bt_buf_put_varint64(&req, b->sid);
        bt_buf_put_varint64(&req, ack);
        bt_buf_put_varint64(&req, wait);
        int rc = rpc_call(b->rpc, LKD_POLL, req.data, req.len, &resp, (int)(wait + b->timeout_ms));
        bt_buf_free(&req);
        if (rc == BT_OK) {
            deliver(b, &resp, &ack);
        } else if (rc == BT_ECLOSED) {
            mark_expired(b);
        } else {
            pthread_mutex_lock(&b->mu);
            int64_t until = now_us() + 50000;
            while (!b->stop && !b->expired && now_us() < until) wait_until(b, until);
            pthread_mutex_unlock(&b->mu);
        }
        bt_buf_free(&resp);
    }
    return NULL;
}

/* ---- ops -------------------------------------------------------------------- */

static void bt_close(void *impl)
{
    lkbt *b = impl;
    pthread_mutex_lock(&b->mu);
    bool live = valid_locked(b);
    b->stop = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
    if (live) {
        bt_buf req = {0};
        bt_buf_put_varint64(&req, b->sid);
        rpc_call(b->rpc, LKD_SESSION_CLOSE, req.data, req.len, NULL, (int)b->timeout_ms);
        bt_buf_free(&req);
    }
    pthread_join(b->ka_thread, NULL);
    pthread_join(b->poll_thread, NULL);
    rpc_client_free(b->rpc);
    for (size_t i = 0; i < b->nwatches; i++) free(b->watches[i].path);
    free(b->watches);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->cb_mu);
    pthread_cond_destroy(&b->cond);
    free(b);
}

static uint64_t bt_session_id(void *impl) { return ((lkbt *)impl)->sid; }

static bool bt_session_valid(void *impl)
{
    lkbt *b = impl;
    pthread_mutex_lock(&b->mu);
    bool ok = valid_locked(b);
    pthread_mutex_unlock(&b->mu);
    return ok;
}

static int64_t bt_lease_valid_until_us(void *impl)
{
    lkbt *b = impl;
    pthread_mutex_lock(&b->mu);
    int64_t v = valid_locked(b) ? b->valid_until_us : 0;
    pthread_mutex_unlock(&b->mu);
    return v;
}

static int bt_create(void *impl, const char *path, const void *data, size_t n, int flags)
{
    lkbt *b = impl;
    bt_buf req;
    if (start_req(b, &req, path) || bt_buf_put_varint64(&req, (uint64_t)flags) ||
        bt_buf_put_lenbytes(&req, data, n)) {
        bt_buf_free(&req);
        return BT_ENOMEM;
    }
    return call(b, LKD_CREATE, &req, NULL, 0);
}

static int get_stat(bt_msg_reader *r, lk_stat *st)
{
    uint64_t isdir = 0, size = 0;
    lk_stat s = {0};
    bt_msg_get_varint(r, &s.generation);
    bt_msg_get_varint(r, &s.lock_generation);
    bt_msg_get_varint(r, &s.lock_owner);
    bt_msg_get_varint(r, &s.ephemeral_owner);
    bt_msg_get_varint(r, &isdir);
    bt_msg_get_varint(r, &size);
    if (bt_msg_reader_status(r)) return bt_err(BT_ECORRUPT, "bt-lockd sent an undecodable stat");
    s.is_dir = isdir != 0;
    s.size = (size_t)size;
    if (st) *st = s;
    return BT_OK;
}

static int bt_get(void *impl, const char *path, uint8_t **data, size_t *n, lk_stat *st)
{
    lkbt *b = impl;
    bt_buf req, resp = {0};
    if (start_req(b, &req, path)) { bt_buf_free(&req); return BT_ENOMEM; }
    int rc = call(b, LKD_GET, &req, &resp, 0);
    if (rc) return rc;
    bt_msg_reader r;
    const uint8_t *p = NULL;
    size_t len = 0;
    bt_msg_reader_init(&r, resp.data, resp.len);
    rc = get_stat(&r, st);
    if (!rc && bt_msg_get_bytes(&r, &p, &len)) rc = bt_err(BT_ECORRUPT, "bt-lockd sent undecodable contents");
    uint8_t *copy = NULL;
    if (!rc && len) {
        copy = malloc(len);
        if (!copy) rc = BT_ENOMEM;
        else memcpy(copy, p, len);
    }
    bt_buf_free(&resp);
    if (rc) return rc;
    if (data) *data = copy;
    else free(copy);
    if (n) *n = len;
    return BT_OK;
}

static int bt_set(void *impl, const char *path, const void *data, size_t n, uint64_t expected)
{
    lkbt *b = impl;
    bt_buf req;
    if (start_req(b, &req, path) || bt_buf_put_lenbytes(&req, data, n) || bt_buf_put_varint64(&req, expected)) {
        bt_buf_free(&req);
        return BT_ENOMEM;
    }
    return call(b, LKD_SET, &req, NULL, 0);
}

static int bt_del(void *impl, const char *path, uint64_t expected)
{
    lkbt *b = impl;
    bt_buf req;
    if (start_req(b, &req, path) || bt_buf_put_varint64(&req, expected)) {
        bt_buf_free(&req);
        return BT_ENOMEM;
    }
    return call(b, LKD_DELETE, &req, NULL, 0);
}

static int bt_stat(void *impl, const char *path, lk_stat *st)
{
    lkbt *b = impl;
    bt_buf req, resp = {0};
    if (start_req(b, &req, path)) { bt_buf_free(&req); return BT_ENOMEM; }
    int rc = call(b, LKD_STAT, &req, &resp, 0);
    if (rc) return rc;
    bt_msg_reader r;
    bt_msg_reader_init(&r, resp.data, resp.len);
    rc = get_stat(&r, st);
    bt_buf_free(&resp);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int bt_list(void *impl, const char *dir, char ***names, size_t *n)
{
    lkbt *b = impl;
    bt_buf req, resp = {0};
    if (start_req(b, &req, dir)) { bt_buf_free(&req); return BT_ENOMEM; }
    int rc = call(b, LKD_LIST, &req, &resp, 0);
    if (rc) return rc;
    bt_msg_reader r;
    uint64_t count = 0;
    bt_msg_reader_init(&r, resp.data, resp.len);
    bt_msg_get_varint(&r, &count);
    if (bt_msg_reader_status(&r) || count > resp.len) {
        bt_buf_free(&resp);
        return bt_err(BT_ECORRUPT, "bt-lockd sent an undecodable list");
    }
    char **v = calloc(count ? count : 1, sizeof *v);
    size_t got = 0;
    rc = v ? BT_OK : BT_ENOMEM;
    while (!rc && got < count) {
        rc = bt_msg_get_string(&r, &v[got]);
        if (!rc) got++;
    }
    bt_buf_free(&resp);
    if (rc) {
        lk_free_names(v, got);
        return rc == BT_ENOMEM ? rc : bt_err(BT_ECORRUPT, "bt-lockd sent an undecodable list");
    }
    qsort(v, got, sizeof *v, cmp_names);
    *names = v;
    *n = got;
    return BT_OK;
}

static int acquire_once(lkbt *b, const char *path, uint32_t server_ms, bool try)
{
    bt_buf req;
    if (start_req(b, &req, path) || bt_buf_put_varint64(&req, server_ms) || bt_buf_put_varint64(&req, try)) {
        bt_buf_free(&req);
        return BT_ENOMEM;
    }
    return call(b, LKD_ACQUIRE, &req, NULL, (int)(server_ms + b->timeout_ms));
}

/* Waits in chunks of at most 10 s; re-asking is harmless (acquiring a lock
 * the session holds is BT_OK), so a broken connection or a lost answer just
 * means asking again until the deadline. */
static int bt_acquire(void *impl, const char *path, uint32_t timeout_ms)
{
    lkbt *b = impl;
    int64_t deadline = timeout_ms ? now_us() + (int64_t)timeout_ms * 1000 : INT64_MAX;
    for (;;) {
        int64_t left_ms = (deadline - now_us()) / 1000;
        if (left_ms <= 0) left_ms = 1;
        uint32_t chunk = left_ms > 10000 ? 10000 : (uint32_t)left_ms;
        int rc = acquire_once(b, path, chunk, false);
        if (rc != BT_ETIMEDOUT && rc != BT_EUNAVAIL) return rc;
        if (now_us() >= deadline)
            return rc == BT_ETIMEDOUT ? bt_err(BT_ETIMEDOUT, "timed out waiting for the lock on %s", path) : rc;
        if (rc == BT_EUNAVAIL) {
            struct timespec ts = {0, 50 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

static int bt_try_acquire(void *impl, const char *path)
{
    return acquire_once(impl, path, 0, true);
}

static int bt_release(void *impl, const char *path)
{
    lkbt *b = impl;
    bt_buf req;
    if (start_req(b, &req, path)) { bt_buf_free(&req); return BT_ENOMEM; }
    return call(b, LKD_RELEASE, &req, NULL, 0);
}

static int bt_get_sequencer(void *impl, const char *path, char *buf, size_t cap)
{
    lkbt *b = impl;
    bt_buf req, resp = {0};
    if (start_req(b, &req, path)) { bt_buf_free(&req); return BT_ENOMEM; }
    int rc = call(b, LKD_GET_SEQUENCER, &req, &resp, 0);
    if (rc) return rc;
    if (resp.len + 1 > cap) {
        bt_buf_free(&resp);
        return bt_err(BT_ETOOBIG, "sequencer needs %zu bytes", resp.len + 1);
    }
    memcpy(buf, resp.data, resp.len);
    buf[resp.len] = '\0';
    bt_buf_free(&resp);
    return BT_OK;
}

static int bt_check_sequencer(void *impl, const char *sequencer)
{
    lkbt *b = impl;
    bt_buf req;
    if (start_req(b, &req, sequencer)) { bt_buf_free(&req); return BT_ENOMEM; }
    return call(b, LKD_CHECK_SEQUENCER, &req, NULL, 0);
}

static int bt_watch(void *impl, const char *path, int mask, lk_watch_fn fn, void *arg, uint64_t *id)
{
    lkbt *b = impl;
    char *p = strdup(path);
    if (!p) return BT_ENOMEM;
    /* registered locally first, so an event that races the answer finds it */
    pthread_mutex_lock(&b->mu);
    watch_ent *nw = realloc(b->watches, (b->nwatches + 1) * sizeof *nw);
    if (!nw) {
        pthread_mutex_unlock(&b->mu);
        free(p);
        return BT_ENOMEM;
    }
    b->watches = nw;
    uint64_t wid = ++b->next_wid;
    b->watches[b->nwatches++] = (watch_ent){wid, p, mask, fn, arg};
    pthread_mutex_unlock(&b->mu);
    bt_buf req = {0};
    int rc = bt_buf_put_varint64(&req, b->sid) | bt_buf_put_varint64(&req, wid) |
             bt_buf_put_lenbytes(&req, path, strlen(path)) | bt_buf_put_varint64(&req, (uint64_t)mask);
    if (rc) { bt_buf_free(&req); rc = BT_ENOMEM; }
    else rc = call(b, LKD_WATCH, &req, NULL, 0);
    if (rc) {
        pthread_mutex_lock(&b->mu);
        for (size_t i = 0; i < b->nwatches; i++)
            if (b->watches[i].id == wid) {
                free(b->watches[i].path);
                b->watches[i] = b->watches[--b->nwatches];
                break;
            }
        pthread_mutex_unlock(&b->mu);
        return rc;
    }
    if (id) *id = wid;
    return BT_OK;
}

static int bt_unwatch(void *impl, uint64_t id)
{
    lkbt *b = impl;
    bool found = false;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->nwatches; i++)
        if (b->watches[i].id == id) {
            free(b->watches[i].path);
            b->watches[i] = b->watches[--b->nwatches];
            found = true;
            break;
        }
    pthread_mutex_unlock(&b->mu);
    if (!found) return bt_err(BT_ENOTFOUND, "no watch %" PRIu64, id);
    bt_buf req = {0};
    if (bt_buf_put_varint64(&req, b->sid) | bt_buf_put_varint64(&req, id)) {
        bt_buf_free(&req);
        return BT_ENOMEM;
    }
    return call(b, LKD_UNWATCH, &req, NULL, 0);
}

static const struct lk_backend_ops bt_ops = {
    .close = bt_close, .session_id = bt_session_id, .session_valid = bt_session_valid,
    .lease_valid_until_us = bt_lease_valid_until_us, .create = bt_create, .get = bt_get,
    .set = bt_set, .del = bt_del, .stat = bt_stat, .list = bt_list, .acquire = bt_acquire,
    .try_acquire = bt_try_acquire, .release = bt_release, .get_sequencer = bt_get_sequencer,
    .check_sequencer = bt_check_sequencer, .watch = bt_watch, .unwatch = bt_unwatch,
};

int lk_bt_open(const char *hosts, const lk_options *o, const struct lk_backend_ops **ops, void **impl)
{
    char host[256];
    const char *colon = strrchr(hosts, ':');
    const char *comma = strchr(hosts, ',');
    char *end = NULL;
    if (comma || !colon || colon == hosts || (size_t)(colon - hosts) >= sizeof host)
        return bt_err(BT_EINVAL, "bt:// URL needs exactly one host:port, got \"%s\"", hosts);
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port == 0 || port > 65535)
        return bt_err(BT_EINVAL, "bad port in bt://%s", hosts);
    memcpy(host, hosts, (size_t)(colon - hosts));
    host[colon - hosts] = '\0';

    lkbt *b = calloc(1, sizeof *b);
    if (!b) return BT_ENOMEM;
    b->timeout_ms = o->timeout_ms ? o->timeout_ms : 5000;
    uint32_t want = o->lease_ms ? o->lease_ms : 10000;
    b->on_session = o->on_session;
    b->cb_arg = o->arg;
    rpc_client_opts ro = {
        .connect_timeout_ms = (int)(b->timeout_ms < 2000 ? b->timeout_ms : 2000),
        .request_timeout_ms = (int)b->timeout_ms,
        .backoff_min_ms = 20,
        /* short, so a restarted server is found again well within a lease */
        .backoff_max_ms = (int)(want / 10 < 50 ? 50 : want / 10 > 250 ? 250 : want / 10),
    };
    int rc = rpc_client_new(host, (uint16_t)port, &ro, &b->rpc);
    if (rc) { free(b); return rc; }
    bt_buf req = {0}, resp = {0};
    bt_buf_put_varint64(&req, 0);
    bt_buf_put_varint64(&req, want);
    int64_t sent = now_us();
    rc = rpc_call(b->rpc, LKD_SESSION_OPEN, req.data, req.len, &resp, (int)b->timeout_ms);
    bt_buf_free(&req);
    uint64_t sid = 0, lease = 0;
    if (!rc) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, resp.data, resp.len);
        bt_msg_get_varint(&r, &sid);
        bt_msg_get_varint(&r, &lease);
        if (bt_msg_reader_status(&r) || !sid || !lease) rc = bt_err(BT_ECORRUPT, "bt-lockd sent an undecodable session");
    } else {
        rc = bt_err(rc, "opening a session on bt://%s: %.*s", hosts, resp.len ? (int)resp.len : (int)strlen(bt_strerror(rc)),
                    resp.len ? (const char *)resp.data : bt_strerror(rc));
    }
    bt_buf_free(&resp);
    if (rc) {
        rpc_client_free(b->rpc);
        free(b);
        return rc;
    }
    b->sid = sid;
    b->lease_ms = (uint32_t)lease;
    b->valid_until_us = sent + (int64_t)lease * 900;
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->cb_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&b->ka_thread, NULL, ka_main, b)) {
        rc = bt_err(BT_EIO, "cannot start the keep-alive thread");
    } else if (pthread_create(&b->poll_thread, NULL, poll_main, b)) {
        pthread_mutex_lock(&b->mu);
        b->stop = true;
        pthread_cond_broadcast(&b->cond);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->ka_thread, NULL);
        rc = bt_err(BT_EIO, "cannot start the watch thread");
    }
    if (rc) {
        rpc_client_free(b->rpc);
        pthread_mutex_destroy(&b->mu);
        pthread_mutex_destroy(&b->cb_mu);
        pthread_cond_destroy(&b->cond);
        free(b);
        return rc;
    }
    *ops = &bt_ops;
    *impl = b;
    return BT_OK;
}

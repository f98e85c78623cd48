/* lockservice/lockd_server.c: bt-lockd, the single-node lock service.
 *
 * Why this shape: the lock service is small (a few hundred paths, a few
 * hundred sessions) but its answers must be right, so everything runs under
 * ONE mutex (lockd.mu) and every namespace change is a single synchronous
 * LevelDB write batch written before the answer is sent: an acknowledged
 * change survives a crash, and a multi-part change (a session expiring drops
 * its locks and its ephemeral files) is atomic.  The sync write does block
 * the RPC loop thread for one fsync; lock service traffic is small and this
 * keeps ordering trivially right.
 *
 * Store layout (LevelDB in DATA_DIR/lockd.ldb):
 *   "n" + path   node: varint is_dir, generation, lock_generation, lock_owner,
 *                ephemeral_owner, then bytes contents.  The lock holder lives
 *                in the node so restarts know who held what.
 *   "s" + be64   a live session: varint lease_ms, varint last event seq
 *   "w" + be64 session + be64 watch id: varint mask, bytes path
 *   "e" + be64 session + be64 seq: an undelivered watch event: varint watch
 *                id, varint kind, bytes path.  Written in the same batch as
 *                the change that caused it, deleted (without sync) once the
 *                client acks it; a re-delivery after a crash carries the
 *                same seq, which the client has acked and skips, so events
 *                stay exactly-once across restarts.
 *   "m:epoch"    varint, bumped at each start; session ids are
 *                (epoch << 32 | counter) so ids are never reused.
 *
 * In memory only: sessions' lease deadlines, parked POLL contexts and the
 * FIFO of lock waiters (a waiting client re-asks after a reconnect); watches
 * and undelivered events are in memory and in the store.
 * After a restart every persisted session gets the grace period as its lease:
 * a client that keeps alive within it keeps its locks and ephemeral files;
 * the others expire like any session (locks released, ephemerals deleted,
 * watches fired).  A timer thread expires sessions, times out waiters and
 * ends parked polls.
 */
#include "lockservice/lockd.h"

#include <errno.h>
#include <inttypes.h>
#include <leveldb/c.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/log.h"
#include "common/rpc.h"
#include "common/status.h"
#include "lockservice/lock_backend.h"
#include "lockservice/lockd_proto.h"

typedef struct node {
    bool is_dir;
    uint64_t gen, lock_gen, lock_owner, eph_owner;
    uint8_t *data; /* malloc'd, owned by the node (node_clear frees it) */
    size_t n;
} node;

typedef struct event {
    uint64_t seq, wid;
    int kind;
    char *path; /* owned by the event */
} event;

typedef struct watch {
    uint64_t id;
    int mask;
    char *path; /* owned by the watch */
} watch;

typedef struct session {
    uint64_t id;
    uint32_t lease_ms;
    int64_t expires_us;
    watch *watches; /* array, owned */
    size_t nwatches;
    event *events;  /* undelivered (seq > acked), owned */
    size_t nevents;
    uint64_t next_seq;  /* seq of the last event queued */
    size_t mark_nevents; /* emit_begin() snapshot, for emit_rollback() */
    uint64_t mark_seq;
    rpc_ctx *poll;      /* parked POLL, or NULL; answered exactly once */
    int64_t poll_deadline_us;
    struct session *next;
} session;

typedef struct waiter {
    char *path;      /* owned */
    uint64_t sid;
    rpc_ctx *ctx;    /* answered exactly once, then the waiter is freed */
    int64_t deadline_us;
    struct waiter *next;
} waiter;

struct lockd {
    pthread_mutex_t mu; /* protects everything below and every LevelDB write */
    leveldb_t *db;
    leveldb_options_t *dbopts;
    leveldb_writeoptions_t *wsync;
    leveldb_writeoptions_t *wnosync;
    leveldb_readoptions_t *ropts;
    rpc_server *srv;
    session *sessions;  /* list, owned */
    waiter *waiters;    /* FIFO (append at tail), owned */
    uint64_t epoch, counter;
    uint32_t lease_ms, grace_ms;
    pthread_t timer;
    pthread_cond_t cond; /* wakes the timer thread for shutdown */
    bool stop;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- replies -------------------------------------------------------------- */

static void reply_err(rpc_ctx *ctx, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply_err(rpc_ctx *ctx, int code, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    rpc_respond(ctx, code, msg, (size_t)n);
}

static void reply_buf(rpc_ctx *ctx, bt_buf *b)
{
    rpc_respond(ctx, BT_OK, b->data, b->len);
    bt_buf_free(b);
}

/* ---- store ---------------------------------------------------------------- */

static void node_clear(node *nd)
{
    free(nd->data);
    memset(nd, 0, sizeof *nd);
}

static int nkey(bt_buf *k, const char *path)
{
    bt_buf_clear(k);
    return bt_buf_append(k, "n", 1) || bt_buf_append(k, path, strlen(path)) ? BT_ENOMEM : BT_OK;
}

static int node_decode(const char *v, size_t len, node *nd)
{
    bt_msg_reader r;
    uint64_t isdir = 0;
    const uint8_t *p = NULL;
    size_t n = 0;
    bt_msg_reader_init(&r, v, len);
    bt_msg_get_varint(&r, &isdir);
    bt_msg_get_varint(&r, &nd->gen);
    bt_msg_get_varint(&r, &nd->lock_gen);
    bt_msg_get_varint(&r, &nd->lock_owner);
    bt_msg_get_varint(&r, &nd->eph_owner);
    bt_msg_get_bytes(&r, &p, &n);
    if (bt_msg_reader_status(&r)) return bt_err(BT_ECORRUPT, "lockd store: bad node record");
    nd->is_dir = isdir != 0;
    nd->data = NULL;
    nd->n = n;
    if (n) {
        nd->data = malloc(n);
        if (!nd->data) return BT_ENOMEM;
        memcpy(nd->data, p, n);
    }
    return BT_OK;
}

/* BT_OK (nd filled, caller clears it), BT_ENOTFOUND or an error. */
static int node_load(lockd *d, const char *path, node *nd)
{
    bt_buf k = {0};
    memset(nd, 0, sizeof *nd);
    if (nkey(&k, path)) return BT_ENOMEM;
    char *err = NULL;
    size_t vlen = 0;
    char *v = leveldb_get(d->db, d->ropts, (const char *)k.data, k.len, &vlen, &err);
    bt_buf_free(&k);
    if (err) {
        int rc = bt_err(BT_EIO, "lockd store: %s", err);
        leveldb_free(err);
        return rc;
    }
    if (!v) return BT_ENOTFOUND;
    int rc = node_decode(v, vlen, nd);
    leveldb_free(v);
    return rc;
}

static int batch_put_node(leveldb_writebatch_t *wb, const char *path, const node *nd)
{
    bt_buf k = {0}, v = {0};
    int rc = nkey(&k, path);
    if (!rc)
        rc = bt_buf_put_varint64(&v, nd->is_dir) | bt_buf_put_varint64(&v, nd->gen) |
             bt_buf_put_varint64(&v, nd->lock_gen) | bt_buf_put_varint64(&v, nd->lock_owner) |
             bt_buf_put_varint64(&v, nd->eph_owner) | bt_buf_put_lenbytes(&v, nd->data, nd->n);
    if (!rc) leveldb_writebatch_put(wb, (const char *)k.data, k.len, (const char *)v.data, v.len);
    bt_buf_free(&k);
    bt_buf_free(&v);
    return rc ? BT_ENOMEM : BT_OK;
}

static void batch_del_node(leveldb_writebatch_t *wb, const char *path)
{
    bt_buf k = {0};
    if (!nkey(&k, path)) leveldb_writebatch_delete(wb, (const char *)k.data, k.len);
    bt_buf_free(&k);
}

static void skey(uint8_t k[9], uint64_t sid)
{
    k[0] = 's';
    bt_put_fixed64_be(k + 1, sid);
}

/* 'w' or 'e' + be64 session + be64 (watch id or seq) */
static void sub_key(uint8_t k[17], char tag, uint64_t sid, uint64_t x)
{
    k[0] = (uint8_t)tag;
    bt_put_fixed64_be(k + 1, sid);
    bt_put_fixed64_be(k + 9, x);
}

static void batch_put_session(leveldb_writebatch_t *wb, uint64_t sid, uint64_t lease, uint64_t seq)
{
    uint8_t sk[9], v[20];
    skey(sk, sid);
    uint8_t *e = bt_put_varint64(v, lease);
    e = bt_put_varint64(e, seq);
    leveldb_writebatch_put(wb, (const char *)sk, sizeof sk, (const char *)v, (size_t)(e - v));
}

/* Deletes every key of one session under prefix tag ('w' or 'e'), up to and
 * including `upto` (the second half of the key). */
static void batch_del_sub(lockd *d, leveldb_writebatch_t *wb, char tag, uint64_t sid, uint64_t upto)
{
    uint8_t lo[17];
    sub_key(lo, tag, sid, 0);
    leveldb_iterator_t *it = leveldb_create_iterator(d->db, d->ropts);
    for (leveldb_iter_seek(it, (const char *)lo, sizeof lo); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl;
        const char *k = leveldb_iter_key(it, &kl);
        if (kl != 17 || memcmp(k, lo, 9) || bt_get_fixed64_be((const uint8_t *)k + 9) > upto) break;
        leveldb_writebatch_delete(wb, k, kl);
    }
    leveldb_iter_destroy(it);
}

static int batch_commit(lockd *d, leveldb_writebatch_t *wb)
{
    char *err = NULL;
    leveldb_write(d->db, d->wsync, wb, &err);
    leveldb_writebatch_destroy(wb);
    if (err) {
        int rc = bt_err(BT_EIO, "lockd store write: %s", err);
        BT_ERROR("%s", bt_errmsg());
        leveldb_free(err);
        return rc;
    }
    return BT_OK;
}

/* Paths of every node, in key order (caller frees with lk_free_names). */
static int all_paths(lockd *d, const char *prefix, char ***out, size_t *count)
{
    leveldb_iterator_t *it = leveldb_create_iterator(d->db, d->ropts);
    size_t plen = strlen(prefix), n = 0, cap = 0;
    char **v = NULL;
    int rc = BT_OK;
    bt_buf k = {0};
    nkey(&k, prefix);
    for (leveldb_iter_seek(it, (const char *)k.data, k.len); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl;
        const char *key = leveldb_iter_key(it, &kl);
        if (kl < 1 + plen || memcmp(key, k.data, k.len)) break;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nv = realloc(v, cap * sizeof *v);
            if (!nv) { rc = BT_ENOMEM; break; }
            v = nv;
        }
        v[n] = strndup(key + 1, kl - 1);
        if (!v[n]) { rc = BT_ENOMEM; break; }
        n++;
    }
    leveldb_iter_destroy(it);
    bt_buf_free(&k);
    if (rc) { lk_free_names(v, n); return rc; }
    *out = v;
    *count = n;
    return BT_OK;
}

static void parent_of(const char *path, char *out)
{
    const char *slash = strrchr(path, '/');
    size_t n = (size_t)(slash - path);
    if (n == 0) n = 1;
    memcpy(out, path, n);
    out[n] = '\0';
}

/* ---- sessions, events ----------------------------------------------------- */

static session *find_session(lockd *d, uint64_t sid)
{
    for (session *s = d->sessions; s; s = s->next)
        if (s->id == sid) return s;
    return NULL;
}

static void answer_poll(session *s)
{
    bt_buf b = {0};
    bt_buf_put_varint64(&b, s->nevents);
    for (size_t i = 0; i < s->nevents; i++) {
        bt_buf_put_varint64(&b, s->events[i].seq);
        bt_buf_put_varint64(&b, s->events[i].wid);
        bt_buf_put_varint64(&b, (uint64_t)s->events[i].kind);
        bt_buf_put_lenbytes(&b, s->events[i].path, strlen(s->events[i].path));
    }
    reply_buf(s->poll, &b);
    s->poll = NULL;
}

/* Snapshot before a change's emits, so a failed write can take them back. */
static void emit_begin(lockd *d)
{
    for (session *s = d->sessions; s; s = s->next) {
        s->mark_nevents = s->nevents;
        s->mark_seq = s->next_seq;
    }
}

static void emit_rollback(lockd *d)
{
    for (session *s = d->sessions; s; s = s->next) {
        while (s->nevents > s->mark_nevents) free(s->events[--s->nevents].path);
        s->next_seq = s->mark_seq;
    }
}

/* Queues `kind` on `path` for every matching watch of every session, in
 * memory and in wb (the batch of the change itself). */
static void emit(lockd *d, leveldb_writebatch_t *wb, int kind, const char *path)
{
    for (session *s = d->sessions; s; s = s->next) {
        for (size_t i = 0; i < s->nwatches; i++) {
            watch *w = &s->watches[i];
            if (!(w->mask & kind) || strcmp(w->path, path)) continue;
            event *ne = realloc(s->events, (s->nevents + 1) * sizeof *ne);
            char *p = strdup(path);
            if (!ne || !p) {
                if (ne) s->events = ne;
                free(p);
                BT_ERROR("lockd: out of memory queueing a watch event for session %" PRIu64, s->id);
                continue;
            }
            s->events = ne;
            s->events[s->nevents++] = (event){++s->next_seq, w->id, kind, p};
            uint8_t ek[17];
            sub_key(ek, 'e', s->id, s->next_seq);
            bt_buf ev = {0};
            if (bt_buf_put_varint64(&ev, w->id) || bt_buf_put_varint64(&ev, (uint64_t)kind) ||
                bt_buf_put_lenbytes(&ev, path, strlen(path))) {
                bt_buf_free(&ev);
                continue;
            }
            leveldb_writebatch_put(wb, (const char *)ek, sizeof ek, (const char *)ev.data, ev.len);
            bt_buf_free(&ev);
            batch_put_session(wb, s->id, s->lease_ms, s->next_seq);
        }
    }
}

static void flush_polls(lockd *d)
{
    for (session *s = d->sessions; s; s = s->next)
        if (s->poll && s->nevents) answer_poll(s);
}

static void free_session(session *s)
{
    for (size_t i = 0; i < s->nwatches; i++) free(s->watches[i].path);
    for (size_t i = 0; i < s->nevents; i++) free(s->events[i].path);
    free(s->watches);
    free(s->events);
    free(s);
}

/* Grants the lock of `path` (node nd, just released) to the first live waiter,
 * updating nd in place; the caller writes nd, then calls answer_granted() on
 * *granted so no one hears "yours" before the new holder is on disk. */
static void handoff(lockd *d, const char *path, node *nd, waiter **granted)
{
    for (waiter **pp = &d->waiters; *pp;) {
        waiter *w = *pp;
        if (strcmp(w->path, path)) { pp = &w->next; continue; }
        if (nd->lock_owner == 0 && find_session(d, w->sid)) {
            nd->lock_owner = w->sid;
            nd->lock_gen++;
        }
        if (nd->lock_owner == w->sid) {
            *pp = w->next;
            w->next = *granted;
            *granted = w;
            continue;
        }
        pp = &w->next;
    }
}

/* Answers (and frees) the waiters handoff() granted: BT_OK once the write
 * that made them holders succeeded (rc). */
static void answer_granted(waiter *w, int rc)
{
    while (w) {
        waiter *n = w->next;
        if (rc) reply_err(w->ctx, rc, "%s", "lock service write failed");
        else rpc_respond(w->ctx, BT_OK, NULL, 0);
        free(w->path);
        free(w);
        w = n;
    }
}

/* Unlinks the waiter *pp (already answered) from its list and frees it. */
static void unlink_waiter(waiter **pp)
{
    waiter *w = *pp;
    *pp = w->next;
    free(w->path);
    free(w);
}

/* Fails every waiter on path with code (path deleted). */
static void fail_waiters_on(lockd *d, const char *path, int code, const char *why)
{
    for (waiter **pp = &d->waiters; *pp;) {
        waiter *w = *pp;
        if (!strcmp(w->path, path)) {
            reply_err(w->ctx, code, "%s: %s", path, why);
            unlink_waiter(pp);
        } else {
            pp = &w->next;
        }
    }
}

/* Ends session s (closed or expired): deletes its ephemeral files, releases
 * its locks (handing them to waiters), fails its waiters and parked poll,
 * forgets it.  One write batch.  Caller holds mu. */
static void end_session(lockd *d, session *s, const char *why)
{
    BT_INFO("lockd: session %" PRIu64 " %s", s->id, why);
    for (session **pp = &d->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) { *pp = s->next; break; }
    for (waiter **pp = &d->waiters; *pp;) {
        waiter *w = *pp;
        if (w->sid == s->id) {
            reply_err(w->ctx, BT_ECLOSED, "session %" PRIu64 " %s", s->id, why);
            unlink_waiter(pp);
        } else {
            pp = &w->next;
        }
    }
    if (s->poll) reply_err(s->poll, BT_ECLOSED, "session %" PRIu64 " %s", s->id, why);
    s->poll = NULL;

    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    uint8_t sk[9];
    skey(sk, s->id);
    leveldb_writebatch_delete(wb, (const char *)sk, sizeof sk);
    batch_del_sub(d, wb, 'w', s->id, UINT64_MAX);
    batch_del_sub(d, wb, 'e', s->id, UINT64_MAX);
    emit_begin(d);
    waiter *granted = NULL;
    char **paths = NULL;
    size_t np = 0;
    if (all_paths(d, "", &paths, &np) == BT_OK) {
        /* reverse key order: children before their parents */
        for (size_t i = np; i-- > 0;) {
            node nd;
            if (node_load(d, paths[i], &nd)) continue;
            if (nd.eph_owner == s->id) {
                batch_del_node(wb, paths[i]);
                if (nd.lock_owner) emit(d, wb, LK_WATCH_LOCK_RELEASED, paths[i]);
                fail_waiters_on(d, paths[i], BT_ENOTFOUND, "deleted (ephemeral owner's session ended)");
                emit(d, wb, LK_WATCH_DELETED, paths[i]);
                char parent[LK_MAX_PATH + 1];
                parent_of(paths[i], parent);
                emit(d, wb, LK_WATCH_CHILDREN, parent);
            } else if (nd.lock_owner == s->id) {
                nd.lock_owner = 0;
                emit(d, wb, LK_WATCH_LOCK_RELEASED, paths[i]);
                handoff(d, paths[i], &nd, &granted);
                batch_put_node(wb, paths[i], &nd);
            }
            node_clear(&nd);
        }
        lk_free_names(paths, np);
    }
    int rc = batch_commit(d, wb);
    if (rc) emit_rollback(d);
    answer_granted(granted, rc);
    free_session(s);
    flush_polls(d);
}

/* ---- handlers ------------------------------------------------------------- */

/* Common prologue: decodes the session id, finds the session and renews
 * nothing (only KEEPALIVE renews).  Returns NULL after answering. */
static session *begin(lockd *d, const rpc_request *req, rpc_ctx *ctx, bt_msg_reader *r)
{
    uint64_t sid = 0;
    bt_msg_reader_init(r, req->payload, req->payload_len);
    if (bt_msg_get_varint(r, &sid)) {
        reply_err(ctx, BT_EINVAL, "undecodable request for method %u", req->method);
        return NULL;
    }
    session *s = find_session(d, sid);
    if (!s) reply_err(ctx, BT_ECLOSED, "session %" PRIu64 " is unknown or expired", sid);
    return s;
}

/* Reads a path field and validates it; answers and returns NULL on error.
 * The caller frees the result. */
static char *get_path(bt_msg_reader *r, rpc_ctx *ctx)
{
    char *path = NULL;
    if (bt_msg_get_string(r, &path)) {
        reply_err(ctx, BT_EINVAL, "undecodable path");
        return NULL;
    }
    if (lk_check_path(path)) {
        reply_err(ctx, BT_EINVAL, "%s", bt_errmsg());
        free(path);
        return NULL;
    }
    return path;
}

static void put_stat(bt_buf *b, const node *nd)
{
    bt_buf_put_varint64(b, nd->gen);
    bt_buf_put_varint64(b, nd->lock_gen);
    bt_buf_put_varint64(b, nd->lock_owner);
    bt_buf_put_varint64(b, nd->eph_owner);
    bt_buf_put_varint64(b, nd->is_dir);
    bt_buf_put_varint64(b, nd->n);
}

/* Loads the node at path; when that fails (no such path, or a store error)
 * answers the request itself and returns the error. */
static int load_or_reply(lockd *d, rpc_ctx *ctx, const char *path, node *nd)
{
    int rc = node_load(d, path, nd);
    if (rc == BT_ENOTFOUND) reply_err(ctx, rc, "%s does not exist", path);
    else if (rc) reply_err(ctx, rc, "%s", bt_errmsg());
    return rc;
}

/* Prologue of RELEASE and GET_SEQUENCER: the session, the path (*path, the
 * caller frees it) and its node (*nd, the caller clears it), whose lock the
 * session must hold.  Returns NULL after answering otherwise. */
static session *begin_held(lockd *d, const rpc_request *req, rpc_ctx *ctx, char **path, node *nd)
{
    bt_msg_reader r;
    session *s = begin(d, req, ctx, &r);
    if (!s || !(*path = get_path(&r, ctx)) || load_or_reply(d, ctx, *path, nd)) return NULL;
    if (nd->lock_owner != s->id) {
        reply_err(ctx, BT_EFAILED_PRECONDITION, "%s is not locked by session %" PRIu64, *path, s->id);
        return NULL;
    }
    return s;
}

static void h_session_open(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    bt_msg_reader r;
    uint64_t zero = 0, lease = 0;
    bt_msg_reader_init(&r, req->payload, req->payload_len);
    bt_msg_get_varint(&r, &zero);
    bt_msg_get_varint(&r, &lease);
    if (bt_msg_reader_status(&r)) return reply_err(ctx, BT_EINVAL, "undecodable SESSION_OPEN");
    if (lease == 0) lease = d->lease_ms;
    if (lease < LKD_MIN_LEASE_MS) lease = LKD_MIN_LEASE_MS;
    if (lease > LKD_MAX_LEASE_MS) lease = LKD_MAX_LEASE_MS;
    session *s = calloc(1, sizeof *s);
    if (!s) return reply_err(ctx, BT_ENOMEM, "out of memory");
    pthread_mutex_lock(&d->mu);
    s->id = (d->epoch << 32) | ++d->counter;
    s->lease_ms = (uint32_t)lease;
    s->expires_us = now_us() + (int64_t)lease * 1000;
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    batch_put_session(wb, s->id, lease, 0); /* no event yet */
    int rc = batch_commit(d, wb);
    if (rc) {
        reply_err(ctx, rc, "%s", bt_errmsg());
        pthread_mutex_unlock(&d->mu);
        free(s);
        return;
    }
    s->next = d->sessions;
    d->sessions = s;
    bt_buf b = {0};
    bt_buf_put_varint64(&b, s->id);
    bt_buf_put_varint64(&b, lease);
    BT_DEBUG("lockd: session %" PRIu64 " opened by %s, lease %" PRIu64 " ms", s->id, req->peer, lease);
    reply_buf(ctx, &b);
    pthread_mutex_unlock(&d->mu);
}

static void h_keepalive(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    bt_msg_reader r;
    pthread_mutex_lock(&d->mu);
    session *s = begin(d, req, ctx, &r);
    if (s) {
        s->expires_us = now_us() + (int64_t)s->lease_ms * 1000;
        bt_buf b = {0};
        bt_buf_put_varint64(&b, s->lease_ms);
        reply_buf(ctx, &b);
    }
    pthread_mutex_unlock(&d->mu);
}

static void h_session_close(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    bt_msg_reader r;
    pthread_mutex_lock(&d->mu);
    session *s = begin(d, req, ctx, &r);
    if (s) {
        end_session(d, s, "closed");
        rpc_respond(ctx, BT_OK, NULL, 0);
    }
    pthread_mutex_unlock(&d->mu);
}

static void h_create(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    bt_msg_reader r;
    uint64_t flags = 0;
    const uint8_t *data = NULL;
    size_t n = 0;
    char *path = NULL;
    node nd = {0}, pn = {0};
    pthread_mutex_lock(&d->mu);
    session *s = begin(d, req, ctx, &r);
    if (!s || !(path = get_path(&r, ctx))) goto out;
    bt_msg_get_varint(&r, &flags);
    bt_msg_get_bytes(&r, &data, &n);
    if (bt_msg_reader_status(&r)) { reply_err(ctx, BT_EINVAL, "undecodable CREATE"); goto out; }
    if (n > LK_MAX_CONTENTS) { reply_err(ctx, BT_ETOOBIG, "contents of %zu bytes exceed %d", n, LK_MAX_CONTENTS); goto out; }
    if (flags & ~(uint64_t)(LK_DIR | LK_EPHEMERAL)) { reply_err(ctx, BT_EINVAL, "unknown create flags"); goto out; }
    if ((flags & LK_DIR) && n) { reply_err(ctx, BT_EINVAL, "a directory has no contents"); goto out; }
    if (!strcmp(path, "/")) { reply_err(ctx, BT_EEXIST, "/ exists"); goto out; }
    int rc = node_load(d, path, &nd);
    if (rc == BT_OK) { reply_err(ctx, BT_EEXIST, "%s exists", path); goto out; }
    if (rc != BT_ENOTFOUND) { reply_err(ctx, rc, "%s", bt_errmsg()); goto out; }
    char parent[LK_MAX_PATH + 1];
    parent_of(path, parent);
    rc = node_load(d, parent, &pn);
    if (rc == BT_ENOTFOUND) { reply_err(ctx, BT_ENOTFOUND, "parent %s does not exist", parent); goto out; }
    if (rc) { reply_err(ctx, rc, "%s", bt_errmsg()); goto out; }
    if (!pn.is_dir) { reply_err(ctx, BT_EFAILED_PRECONDITION, "parent %s is not a directory", parent); goto out; }
    /* an ephemeral directory vanishes with its session: it must stay empty */
    if (pn.eph_owner) { reply_err(ctx, BT_EFAILED_PRECONDITION, "parent %s is ephemeral", parent); goto out; }
    nd.is_dir = (flags & LK_DIR) != 0;
    nd.gen = 1;
    nd.eph_owner = (flags & LK_EPHEMERAL) ? s->id : 0;
    nd.n = n;
    if (n) {
        nd.data = malloc(n);
        if (!nd.data) { reply_err(ctx, BT_ENOMEM, "out of memory"); goto out; }
        memcpy(nd.data, data, n);
    }
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    batch_put_node(wb, path, &nd);
    emit_begin(d);
    emit(d, wb, LK_WATCH_CHANGED, path);
    emit(d, wb, LK_WATCH_CHILDREN, parent);
    rc = batch_commit(d, wb);
    if (rc) { emit_rollback(d); reply_err(ctx, rc, "%s", bt_errmsg()); goto out; }
    rpc_respond(ctx, BT_OK, NULL, 0);
    flush_polls(d);
out:
    node_clear(&nd);
    node_clear(&pn);
    free(path);
    pthread_mutex_unlock(&d->mu);
}

/* GET and STAT: same lookup, GET also returns the contents. */
static void get_or_stat(lockd *d, const rpc_request *req, rpc_ctx *ctx, bool with_data)
{
    bt_msg_reader r;
    char *path = NULL;
    node nd = {0};
    pthread_mutex_lock(&d->mu);
    session *s = begin(d, req, ctx, &r);
    if (!s || !(path = get_path(&r, ctx))) goto out;
    int rc = load_or_reply(d, ctx, path, &nd);
    if (rc) goto out;
    bt_buf b = {0};
    put_stat(&b, &nd);
    if (with_data) bt_buf_put_lenbytes(&b, nd.data, nd.n);
    reply_buf(ctx, &b);
out:
    node_clear(&nd);
    free(path);
    pthread_mutex_unlock(&d->mu);
}

static void h_get(void *arg, const rpc_request *req, rpc_ctx *ctx) { get_or_stat(arg, req, ctx, true); }
static void h_stat(void *arg, const rpc_request *req, rpc_ctx *ctx) { get_or_stat(arg, req, ctx, false); }

static void h_set(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    bt_msg_reader r;
    char *path = NULL;
    const uint8_t *data = NULL;
    size_t n = 0;
    uint64_t expect = 0;
    node nd = {0};
    pthread_mutex_lock(&d->mu);
    session *s = begin(d, req, ctx, &r);
    if (!s || !(path = get_path(&r, ctx))) goto out;
    bt_msg_get_bytes(&r, &data, &n);
    bt_msg_get_varint(&r, &expect);
    if (bt_msg_reader_status(&r)) { reply_err(ctx, BT_EINVAL, "undecodable SET"); goto out; }
    if (n > LK_MAX_CONTENTS) { reply_err(ctx, BT_ETOOBIG, "contents of %zu bytes exceed %d", n, LK_MAX_CONTENTS); goto out; }
    int rc = load_or_reply(d, ctx, path, &nd);
    if (rc) goto out;
    if (nd.is_dir) { reply_err(ctx, BT_EINVAL, "%s is a directory", path); goto out; }
    if (expect && expect != nd.gen) {
        reply_err(ctx, BT_EFAILED_PRECONDITION, "%s: generation is %" PRIu64 ", expected %" PRIu64, path, nd.gen, expect);
        goto out;
    }
    free(nd.data);
    nd.data = NULL;
    nd.n = n;
    if (n) {
        nd.data = malloc(n);
        if (!nd.data) { reply_err(ctx, BT_ENOMEM, "out of memory"); goto out; }
        memcpy(nd.data, data, n);
    }
    nd.gen++;
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    batch_put_node(wb, path, &nd);
    emit_begin(d);
    emit(d, wb, LK_WATCH_CHANGED, path);
    rc = batch_commit(d, wb);
    if (rc) { emit_rollback(d); reply_err(ctx, rc, "%s", bt_errmsg()); goto out; }
    rpc_respond(ctx, BT_OK, NULL, 0);
    flush_polls(d);
out:
    node_clear(&nd);
    free(path);
    pthread_mutex_unlock(&d->mu);
}

static void h_delete(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    bt_msg_reader r;
    char *path = NULL;
    uint64_t expect = 0;
    node nd = {0};
    char **kids = NULL;
    size_t nk = 0;
    pthread_mutex_lock(&d->mu);
    session *s = begin(d, req, ctx, &r);
    if (!s || !(path = get_path(&r, ctx))) goto out;
    bt_msg_get_varint(&r, &expect);
    if (bt_msg_reader_status(&r)) { reply_err(ctx, BT_EINVAL, "undecodable DELETE"); goto out; }
    if (!strcmp(path, "/")) { reply_err(ctx, BT_EINVAL, "the root cannot be deleted"); goto out; }
    int rc = load_or_reply(d, ctx, path, &nd);
    if (rc) goto out;
    if (expect && expect != nd.gen) {
        reply_err(ctx, BT_EFAILED_PRECONDITION, "%s: generation is %" PRIu64 ", expected %" PRIu64, path, nd.gen, expect);
        goto out;
    }
    if (nd.is_dir) {
        char prefix[LK_MAX_PATH + 2];
        snprintf(prefix, sizeof prefix, "%s/", path);
        rc = all_paths(d, prefix, &kids, &nk);
        if (rc) { reply_err(ctx, rc, "listing %s failed", path); goto out; }
        if (nk) { reply_err(ctx, BT_EFAILED_PRECONDITION, "directory %s is not empty", path); goto out; }
    }
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    batch_del_node(wb, path);
    char parent[LK_MAX_PATH + 1];
    parent_of(path, parent);
    emit_begin(d);
    if (nd.lock_owner) emit(d, wb, LK_WATCH_LOCK_RELEASED, path);
    emit(d, wb, LK_WATCH_DELETED, path);
    emit(d, wb, LK_WATCH_CHILDREN, parent);
    rc = batch_commit(d, wb);
    if (rc) { emit_rollback(d); reply_err(ctx, rc, "%s", bt_errmsg()); goto out; }
    fail_waiters_on(d, path, BT_ENOTFOUND, "deleted");
    rpc_respond(ctx, BT_OK, NULL, 0);
    flush_polls(d);
out:
    lk_free_names(kids, nk);
    node_clear(&nd);
    free(path);
    pthread_mutex_unlock(&d->mu);
}

static void h_list(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    bt_msg_reader r;
    char *path = NULL;
    node nd = {0};
    char **all = NULL;
    size_t na = 0;
    pthread_mutex_lock(&d->mu);
    session *s = begin(d, req, ctx, &r);
    if (!s || !(path = get_path(&r, ctx))) goto out;
    int rc = load_or_reply(d, ctx, path, &nd);
    if (rc) goto out;
    if (!nd.is_dir) { reply_err(ctx, BT_EINVAL, "%s is not a directory", path); goto out; }
    char prefix[LK_MAX_PATH + 2];
    snprintf(prefix, sizeof prefix, "%s/", strcmp(path, "/") ? path : "");
    rc = all_paths(d, prefix, &all, &na);
    if (rc) { reply_err(ctx, rc, "listing %s failed", path); goto out; }
    size_t pl = strlen(prefix), count = 0;
    for (size_t i = 0; i < na; i++)
        if (strlen(all[i]) > pl && !strchr(all[i] + pl, '/')) count++;
    bt_buf b = {0};
    bt_buf_put_varint64(&b, count);
    for (size_t i = 0; i < na; i++)
        if (strlen(all[i]) > pl && !strchr(all[i] + pl, '/'))
            bt_buf_put_lenbytes(&b, all[i] + pl, strlen(all[i] + pl));
    reply_buf(ctx, &b);
out:
    lk_free_names(all, na);
    node_clear(&nd);
    free(path);
    pthread_mutex_unlock(&d->mu);
}

static void h_acquire(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    bt_msg_reader r;
    char *path = NULL;
    uint64_t timeout = 0, try = 0;
    node nd = {0};
    pthread_mutex_lock(&d->mu);
    session *s = begin(d, req, ctx, &r);
    if (!s || !(path = get_path(&r, ctx))) goto out;
    bt_msg_get_varint(&r, &timeout);
    bt_msg_get_varint(&r, &try);
    if (bt_msg_reader_status(&r)) { reply_err(ctx, BT_EINVAL, "undecodable ACQUIRE"); goto out; }
    int rc = load_or_reply(d, ctx, path, &nd);
    if (rc) goto out;
    if (nd.lock_owner == s->id) { rpc_respond(ctx, BT_OK, NULL, 0); goto out; }
    if (nd.lock_owner == 0) {
        nd.lock_owner = s->id;
        nd.lock_gen++;
        leveldb_writebatch_t *wb = leveldb_writebatch_create();
        batch_put_node(wb, path, &nd);
        rc = batch_commit(d, wb);
        if (rc) reply_err(ctx, rc, "%s", bt_errmsg());
        else rpc_respond(ctx, BT_OK, NULL, 0);
        goto out;
    }
    if (try || timeout == 0) {
        reply_err(ctx, BT_EBUSY, "%s is locked by session %" PRIu64, path, nd.lock_owner);
        goto out;
    }
    waiter *w = calloc(1, sizeof *w);
    if (!w) { reply_err(ctx, BT_ENOMEM, "out of memory"); goto out; }
    if (timeout > 3600000) timeout = 3600000;
    w->path = path;
    path = NULL;
    w->sid = s->id;
    w->ctx = ctx;
    w->deadline_us = now_us() + (int64_t)timeout * 1000;
    waiter **pp = &d->waiters;
    while (*pp) pp = &(*pp)->next;
    *pp = w;
out:
    node_clear(&nd);
    free(path);
    pthread_mutex_unlock(&d->mu);
}

static void h_release(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    char *path = NULL;
    node nd = {0};
    pthread_mutex_lock(&d->mu);
    session *s = begin_held(d, req, ctx, &path, &nd);
    if (!s) goto out;
    nd.lock_owner = 0;
    waiter *granted = NULL;
    handoff(d, path, &nd, &granted);
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    batch_put_node(wb, path, &nd);
    emit_begin(d);
    emit(d, wb, LK_WATCH_LOCK_RELEASED, path);
    int rc = batch_commit(d, wb);
    if (rc) emit_rollback(d);
    answer_granted(granted, rc);
    if (rc) { reply_err(ctx, rc, "%s", bt_errmsg()); goto out; }
    rpc_respond(ctx, BT_OK, NULL, 0);
    flush_polls(d);
out:
    node_clear(&nd);
    free(path);
    pthread_mutex_unlock(&d->mu);
}

static void h_get_sequencer(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    char *path = NULL;
    node nd = {0};
    pthread_mutex_lock(&d->mu);
    session *s = begin_held(d, req, ctx, &path, &nd);
    if (!s) goto out;
    char seq[LK_MAX_SEQUENCER];
    int n = snprintf(seq, sizeof seq, "%s:%" PRIu64 ":%" PRIu64, path, nd.lock_gen, s->id);
    rpc_respond(ctx, BT_OK, seq, (size_t)n);
out:
    node_clear(&nd);
    free(path);
    pthread_mutex_unlock(&d->mu);
}

static void h_check_sequencer(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    bt_msg_reader r;
    char *seq = NULL;
    node nd = {0};
    pthread_mutex_lock(&d->mu);
    session *s = begin(d, req, ctx, &r);
    if (!s) goto out;
    if (bt_msg_get_string(&r, &seq)) { reply_err(ctx, BT_EINVAL, "undecodable CHECK_SEQUENCER"); goto out; }
    char *c2 = strrchr(seq, ':');
    char *c1 = NULL;
    if (c2) {
        *c2 = '\0';
        c1 = strrchr(seq, ':');
    }
    char *e1 = NULL, *e2 = NULL;
    uint64_t gen = 0, owner = 0;
    if (c1) {
        *c1 = '\0';
        errno = 0;
        gen = strtoull(c1 + 1, &e1, 10);
        owner = strtoull(c2 + 1, &e2, 10);
    }
    if (!c1 || errno || e1 == c1 + 1 || *e1 || e2 == c2 + 1 || *e2 || lk_check_path(seq)) {
        reply_err(ctx, BT_EINVAL, "malformed sequencer (expected path:generation:session)");
        goto out;
    }
    int rc = node_load(d, seq, &nd);
    if (rc == BT_ENOTFOUND || (rc == BT_OK && (nd.lock_owner != owner || nd.lock_gen != gen))) {
        reply_err(ctx, BT_EFAILED_PRECONDITION, "stale sequencer for %s (lock generation now %" PRIu64
                  ", held by session %" PRIu64 ")", seq, nd.lock_gen, nd.lock_owner);
        goto out;
    }
    if (rc) { reply_err(ctx, rc, "%s", bt_errmsg()); goto out; }
    rpc_respond(ctx, BT_OK, NULL, 0);
out:
    node_clear(&nd);
    free(seq);
    pthread_mutex_unlock(&d->mu);
}

static void h_watch(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    bt_msg_reader r;
    uint64_t wid = 0, mask = 0;
    char *path = NULL;
    pthread_mutex_lock(&d->mu);
    session *s = begin(d, req, ctx, &r);
    if (!s) goto out;
    bt_msg_get_varint(&r, &wid);
    if (!(path = get_path(&r, ctx))) goto out;
    bt_msg_get_varint(&r, &mask);
    if (bt_msg_reader_status(&r) || !mask || (mask & ~(uint64_t)15)) {
        reply_err(ctx, BT_EINVAL, "undecodable WATCH or bad mask");
        goto out;
    }
    for (size_t i = 0; i < s->nwatches; i++)
        if (s->watches[i].id == wid) { reply_err(ctx, BT_EEXIST, "watch %" PRIu64 " exists", wid); goto out; }
    watch *nw = realloc(s->watches, (s->nwatches + 1) * sizeof *nw);
    if (!nw) { reply_err(ctx, BT_ENOMEM, "out of memory"); goto out; }
    s->watches = nw;
    uint8_t wk[17];
    sub_key(wk, 'w', s->id, wid);
    bt_buf v = {0};
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    if (bt_buf_put_varint64(&v, mask) || bt_buf_put_lenbytes(&v, path, strlen(path))) {
        bt_buf_free(&v);
        leveldb_writebatch_destroy(wb);
        reply_err(ctx, BT_ENOMEM, "out of memory");
        goto out;
    }
    leveldb_writebatch_put(wb, (const char *)wk, sizeof wk, (const char *)v.data, v.len);
    bt_buf_free(&v);
    int rc = batch_commit(d, wb);
    if (rc) { reply_err(ctx, rc, "%s", bt_errmsg()); goto out; }
    s->watches[s->nwatches++] = (watch){wid, (int)mask, path};
    path = NULL;
    rpc_respond(ctx, BT_OK, NULL, 0);
out:
    free(path);
    pthread_mutex_unlock(&d->mu);
}

static void h_unwatch(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    bt_msg_reader r;
    uint64_t wid = 0;
    pthread_mutex_lock(&d->mu);
    session *s = begin(d, req, ctx, &r);
    if (s) {
        if (bt_msg_get_varint(&r, &wid)) {
            reply_err(ctx, BT_EINVAL, "undecodable UNWATCH");
        } else {
            size_t i = 0;
            while (i < s->nwatches && s->watches[i].id != wid) i++;
            if (i == s->nwatches) {
                reply_err(ctx, BT_ENOTFOUND, "no watch %" PRIu64, wid);
            } else {
                uint8_t wk[17];
                sub_key(wk, 'w', s->id, wid);
                leveldb_writebatch_t *wb = leveldb_writebatch_create();
                leveldb_writebatch_delete(wb, (const char *)wk, sizeof wk);
                int rc = batch_commit(d, wb);
                if (rc) {
                    reply_err(ctx, rc, "%s", bt_errmsg());
                } else {
                    free(s->watches[i].path);
                    s->watches[i] = s->watches[--s->nwatches];
                    rpc_respond(ctx, BT_OK, NULL, 0);
                }
            }
        }
    }
    pthread_mutex_unlock(&d->mu);
}

static void h_poll(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    lockd *d = arg;
    bt_msg_reader r;
    uint64_t ack = 0, wait = 0;
    pthread_mutex_lock(&d->mu);
    session *s = begin(d, req, ctx, &r);
    if (!s) goto out;
    bt_msg_get_varint(&r, &ack);
    bt_msg_get_varint(&r, &wait);
    if (bt_msg_reader_status(&r)) { reply_err(ctx, BT_EINVAL, "undecodable POLL"); goto out; }
    size_t drop = 0;
    while (drop < s->nevents && s->events[drop].seq <= ack) free(s->events[drop++].path);
    if (drop) {
        memmove(s->events, s->events + drop, (s->nevents - drop) * sizeof *s->events);
        s->nevents -= drop;
        /* not synced: an ack lost in a crash only means a re-delivery the
         * client skips (its seq is at or below the client's ack) */
        leveldb_writebatch_t *wb = leveldb_writebatch_create();
        batch_del_sub(d, wb, 'e', s->id, ack);
        char *err = NULL;
        leveldb_write(d->db, d->wnosync, wb, &err);
        leveldb_writebatch_destroy(wb);
        if (err) {
            BT_WARN("lockd store: dropping acked events: %s", err);
            leveldb_free(err);
        }
    }
    if (s->poll) {
        /* a newer poll supersedes the parked one (its connection may be gone) */
        rpc_ctx *old = s->poll;
        s->poll = NULL;
        rpc_respond(old, BT_OK, "\0", 1);
    }
    s->poll = ctx;
    if (wait > LKD_MAX_POLL_WAIT_MS) wait = LKD_MAX_POLL_WAIT_MS;
    s->poll_deadline_us = now_us() + (int64_t)wait * 1000;
    if (s->nevents || wait == 0) answer_poll(s);
out:
    pthread_mutex_unlock(&d->mu);
}

/* ---- timer ---------------------------------------------------------------- */

static void *timer_main(void *arg)
{
    lockd *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000;
        if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
        pthread_cond_timedwait(&d->cond, &d->mu, &ts);
        if (d->stop) break;
        int64_t now = now_us();
        for (session *s = d->sessions; s;) {
            session *next = s->next;
            if (s->expires_us <= now) end_session(d, s, "expired (lease passed)");
            else if (s->poll && s->poll_deadline_us <= now) answer_poll(s);
            s = next;
        }
        for (waiter **pp = &d->waiters; *pp;) {
            waiter *w = *pp;
            if (w->deadline_us <= now) {
                reply_err(w->ctx, BT_ETIMEDOUT, "timed out waiting for the lock on %s", w->path);
                unlink_waiter(pp);
            } else {
                pp = &w->next;
            }
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* ---- open / close ----------------------------------------------------------- */

/* Loads the persisted watches ('w') or undelivered events ('e') of the
 * restored sessions (keys sort by session, then id or seq). */
static int restore_subs(lockd *d, char tag)
{
    leveldb_iterator_t *it = leveldb_create_iterator(d->db, d->ropts);
    int rc = BT_OK;
    for (leveldb_iter_seek(it, &tag, 1); leveldb_iter_valid(it) && !rc; leveldb_iter_next(it)) {
        size_t kl, vl;
        const char *k = leveldb_iter_key(it, &kl);
        const char *v = leveldb_iter_value(it, &vl);
        if (kl != 17 || k[0] != tag) break;
        session *s = find_session(d, bt_get_fixed64_be((const uint8_t *)k + 1));
        uint64_t x = bt_get_fixed64_be((const uint8_t *)k + 9), a = 0, b = 0;
        char *path = NULL;
        bt_msg_reader r;
        bt_msg_reader_init(&r, v, vl);
        bt_msg_get_varint(&r, &a);
        if (tag == 'e') bt_msg_get_varint(&r, &b);
        if (!s || bt_msg_get_string(&r, &path)) {
            free(path); /* a leftover of a session that ended, or damage: skip */
            continue;
        }
        if (tag == 'w') {
            watch *nw = realloc(s->watches, (s->nwatches + 1) * sizeof *nw);
            if (!nw) { free(path); rc = BT_ENOMEM; break; }
            s->watches = nw;
            s->watches[s->nwatches++] = (watch){x, (int)a, path};
        } else {
            event *ne = realloc(s->events, (s->nevents + 1) * sizeof *ne);
            if (!ne) { free(path); rc = BT_ENOMEM; break; }
            s->events = ne;
            s->events[s->nevents++] = (event){x, a, (int)b, path};
            if (x > s->next_seq) s->next_seq = x;
        }
    }
    leveldb_iter_destroy(it);
    return rc;
}

static int restore(lockd *d)
{
    char *err = NULL;
    size_t vl = 0;
    char *v = leveldb_get(d->db, d->ropts, "m:epoch", 7, &vl, &err);
    if (err) {
        int rc = bt_err(BT_EIO, "lockd store: %s", err);
        leveldb_free(err);
        return rc;
    }
    uint64_t epoch = 0;
    if (v) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, v, vl);
        bt_msg_get_varint(&r, &epoch);
        leveldb_free(v);
    }
    d->epoch = epoch + 1;
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    uint8_t ev[10];
    leveldb_writebatch_put(wb, "m:epoch", 7, (const char *)ev, (size_t)(bt_put_varint64(ev, d->epoch) - ev));
    node root;
    int rc = node_load(d, "/", &root);
    if (rc == BT_ENOTFOUND) {
        memset(&root, 0, sizeof root);
        root.is_dir = true;
        root.gen = 1;
        batch_put_node(wb, "/", &root);
    } else if (rc) {
        leveldb_writebatch_destroy(wb);
        return rc;
    }
    node_clear(&root);
    rc = batch_commit(d, wb);
    if (rc) return rc;
    /* persisted sessions come back with the grace period as their lease */
    leveldb_iterator_t *it = leveldb_create_iterator(d->db, d->ropts);
    int64_t until = now_us() + (int64_t)d->grace_ms * 1000;
    for (leveldb_iter_seek(it, "s", 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl2;
        const char *k = leveldb_iter_key(it, &kl);
        const char *val = leveldb_iter_value(it, &vl2);
        if (kl != 9 || k[0] != 's') break;
        uint64_t lease = d->lease_ms, seq = 0;
        bt_msg_reader r;
        bt_msg_reader_init(&r, val, vl2);
        if (bt_msg_get_varint(&r, &lease)) lease = d->lease_ms;
        if (bt_msg_get_varint(&r, &seq)) seq = 0;
        session *s = calloc(1, sizeof *s);
        if (!s) { rc = BT_ENOMEM; break; }
        s->id = bt_get_fixed64_be((const uint8_t *)k + 1);
        s->lease_ms = (uint32_t)lease;
        s->next_seq = seq;
        s->expires_us = until;
        s->next = d->sessions;
        d->sessions = s;
        BT_INFO("lockd: restored session %" PRIu64 "; it has %u ms to reconnect", s->id, d->grace_ms);
    }
    leveldb_iter_destroy(it);
    if (!rc) rc = restore_subs(d, 'w');
    if (!rc) rc = restore_subs(d, 'e');
    return rc;
}

static const rpc_method methods[] = {
    {LKD_SESSION_OPEN, h_session_open, NULL}, {LKD_KEEPALIVE, h_keepalive, NULL},
    {LKD_SESSION_CLOSE, h_session_close, NULL}, {LKD_CREATE, h_create, NULL},
    {LKD_GET, h_get, NULL}, {LKD_SET, h_set, NULL}, {LKD_DELETE, h_delete, NULL},
    {LKD_STAT, h_stat, NULL}, {LKD_LIST, h_list, NULL}, {LKD_ACQUIRE, h_acquire, NULL},
    {LKD_RELEASE, h_release, NULL}, {LKD_GET_SEQUENCER, h_get_sequencer, NULL},
    {LKD_CHECK_SEQUENCER, h_check_sequencer, NULL}, {LKD_WATCH, h_watch, NULL},
    {LKD_UNWATCH, h_unwatch, NULL}, {LKD_POLL, h_poll, NULL},
};

/* Frees the sessions, the store and d itself; shared by a failed
 * lockd_open and lockd_close (the server and timer are already gone). */
static void lockd_free(lockd *d)
{
    for (session *s = d->sessions; s;) {
        session *n = s->next;
        free_session(s);
        s = n;
    }
    if (d->db) leveldb_close(d->db);
    leveldb_options_destroy(d->dbopts);
    leveldb_writeoptions_destroy(d->wsync);
    leveldb_writeoptions_destroy(d->wnosync);
    leveldb_readoptions_destroy(d->ropts);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cond);
    free(d);
}

int lockd_open(const lockd_opts *o, lockd **out)
{
    if (!o || !o->data_dir || !*o->data_dir) return bt_err(BT_EINVAL, "lockd: a data directory is required");
    if (mkdir(o->data_dir, 0755) && errno != EEXIST)
        return bt_err(bt_from_errno(errno), "mkdir %s: %s", o->data_dir, strerror(errno));
    lockd *d = calloc(1, sizeof *d);
    if (!d) return BT_ENOMEM;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cond, NULL);
    d->lease_ms = o->lease_ms ? o->lease_ms : 10000;
    if (d->lease_ms < LKD_MIN_LEASE_MS) d->lease_ms = LKD_MIN_LEASE_MS;
    if (d->lease_ms > LKD_MAX_LEASE_MS) d->lease_ms = LKD_MAX_LEASE_MS;
    d->grace_ms = o->grace_ms ? o->grace_ms : LKD_MAX_LEASE_MS;
    d->dbopts = leveldb_options_create();
    leveldb_options_set_create_if_missing(d->dbopts, 1);
    d->wsync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(d->wsync, 1);
    d->wnosync = leveldb_writeoptions_create();
    d->ropts = leveldb_readoptions_create();
    char dbpath[4096];
    snprintf(dbpath, sizeof dbpath, "%s/lockd.ldb", o->data_dir);
    char *err = NULL;
    d->db = leveldb_open(d->dbopts, dbpath, &err);
    int rc = BT_OK;
    if (err) {
        rc = bt_err(BT_EIO, "open %s: %s", dbpath, err);
        leveldb_free(err);
        d->db = NULL;
    }
    if (!rc) rc = restore(d);
    rpc_method m[sizeof methods / sizeof methods[0]];
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        m[i] = methods[i];
        m[i].arg = d;
    }
    if (!rc) rc = rpc_server_new(o->bind ? o->bind : "127.0.0.1", o->port, m, sizeof m / sizeof m[0], NULL, &d->srv);
    bool timer = false;
    if (!rc) {
        if (pthread_create(&d->timer, NULL, timer_main, d)) rc = bt_err(BT_EIO, "cannot start the timer thread");
        else timer = true;
    }
    if (!rc) rc = rpc_server_start(d->srv);
    if (rc) {
        if (timer) {
            pthread_mutex_lock(&d->mu);
            d->stop = true;
            pthread_cond_signal(&d->cond);
            pthread_mutex_unlock(&d->mu);
            pthread_join(d->timer, NULL);
        }
        rpc_server_free(d->srv);
        d->srv = NULL;
        int keep = rc;
        char msg[512];
        snprintf(msg, sizeof msg, "%s", bt_errmsg());
        lockd_free(d);
        return bt_err(keep, "%s", msg);
    }
    *out = d;
    return BT_OK;
}

uint16_t lockd_port(const lockd *d) { return rpc_server_port(d->srv); }

void lockd_close(lockd *d)
{
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->timer, NULL);
    rpc_server_stop(d->srv);
    /* the loop thread is gone: answer what is parked (dropped on the wire) */
    for (waiter *w = d->waiters; w;) {
        waiter *n = w->next;
        rpc_respond(w->ctx, BT_ECLOSED, NULL, 0);
        free(w->path);
        free(w);
        w = n;
    }
    for (session *s = d->sessions; s; s = s->next)
        if (s->poll) rpc_respond(s->poll, BT_ECLOSED, NULL, 0);
    rpc_server_free(d->srv);
    lockd_free(d);
}

/* client/bt_client.c: connecting, the location cache and the three-level
 * lookup, the retry loop, calls to tablet servers and to the master, table
 * handles (client/bt.h, client/bt_internal.h).
 *
 * Finding the tablet of (table T, row r):
 *   1. the cache: tablet locations sorted by their METADATA key (T, end);
 *      the first key greater than bt_meta_lookup_key(T, r) is the entry,
 *      if it belongs to T and its range holds r;
 *   2. else the lookup, walking down the hierarchy and caching what it reads:
 *      the root tablet's location is in /bt/root (cached); the METADATA
 *      tablet holding key k is found by scanning the root tablet from just
 *      after bt_meta_lookup_key(METADATA, k); the tablet of (T, r) by
 *      scanning that METADATA tablet from just after bt_meta_lookup_key(T, r),
 *      prefetch_rows rows at once.  A cold client makes three round trips
 *      (/bt/root, root tablet, METADATA tablet).
 * A call that meets a stale location (BT_ENOTSERVING), a dead server or a
 * timeout drops the entry (the METADATA or root entry too when it was their
 * server that failed) and retries from the lookup after a jittered backoff,
 * until the call's deadline.
 */
#include "client/bt_internal.h"
#include "common/rpc_sync.h"
#include "sstable/iter.h" /* sst_key_cmp: bytewise order */
#include "common/rpc_codec.h"
#include "common/status.h"
#include "tabletserver/ts_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- time, backoff -------------------------------------------------------------- */

int64_t bt_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t rand64(void)
{
    static _Thread_local uint64_t s;
    if (!s) s = ((uint64_t)bt_now_us() * 0x9e3779b97f4a7c15ull) ^ (uintptr_t)&s;
    if (!s) s = 1;
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
}

static void sleep_us(int64_t us)
{
    if (us <= 0) return;
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 200

void bt_op_init(bt_op *op, bt_client *c)
{
    memset(op, 0, sizeof *op);
    op->c = c;
    op->start_us = bt_now_us();
    op->deadline_us = op->start_us + (int64_t)c->o.timeout_ms * 1000;
    op->backoff_ms = BACKOFF_MIN_MS;
}

int bt_op_attempt_ms(const bt_op *op)
{
    int64_t left = (op->deadline_us - bt_now_us()) / 1000;
    if (left > op->c->o.rpc_timeout_ms) left = op->c->o.rpc_timeout_ms;
    return left < 1 ? 1 : (int)left;
}

bool bt_retryable(int rc)
{
    return rc == BT_ENOTSERVING || rc == BT_EUNAVAIL || rc == BT_ETIMEDOUT || rc == BT_ECLOSED;
}

bool bt_op_backoff(bt_op *op, int rc)
{
    op->attempts++;
    op->last_rc = rc;
    const char *m = bt_errmsg();
    snprintf(op->detail, sizeof op->detail, "%s", m[0] ? m : bt_strerror(rc));
    int64_t w = op->backoff_ms;
    int64_t us = (w - w / 2 + (int64_t)(rand64() % (uint64_t)(w / 2 + 1))) * 1000;
    if (op->backoff_ms < BACKOFF_MAX_MS) op->backoff_ms = op->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : op->backoff_ms * 2;
    int64_t now = bt_now_us();
    if (now + us >= op->deadline_us) return false;
    sleep_us(us);
    atomic_fetch_add(&op->c->st_retries, 1);
    return true;
}

int bt_op_fail(bt_op *op, const char *what)
{
    int rc = op->last_rc == BT_ETIMEDOUT ? BT_ETIMEDOUT : BT_EUNAVAIL;
    int64_t ms = (bt_now_us() - op->start_us) / 1000;
    return bt_err(rc, "%s: gave up after %d attempt%s in %" PRId64 " ms (timeout_ms %d); last error: %s",
                  what, op->attempts, op->attempts == 1 ? "" : "s", ms, op->c->o.timeout_ms, op->detail);
}

/* ---- connect ------------------------------------------------------------------------ */

static int resolve_options(const bt_client_options *in, bt_client_options *o)
{
    static const bt_client_options zero;
    *o = in ? *in : zero;
    if (o->timeout_ms < 0 || o->rpc_timeout_ms < 0 || o->conns_per_server < 0 || o->prefetch_rows < 0 ||
        o->max_parallel < 0)
        return bt_err(BT_EINVAL, "client options must not be negative");
    if (!o->timeout_ms) o->timeout_ms = 30000;
    if (!o->rpc_timeout_ms) o->rpc_timeout_ms = 10000;
    if (!o->conns_per_server) o->conns_per_server = 2;
    if (!o->prefetch_rows) o->prefetch_rows = 16;
    if (!o->max_parallel) o->max_parallel = 16;
    if (o->conns_per_server > 64) return bt_err(BT_EINVAL, "conns_per_server %d: at most 64", o->conns_per_server);
    if (o->prefetch_rows > 10000) return bt_err(BT_EINVAL, "prefetch_rows %d: at most 10000", o->prefetch_rows);
    if (o->max_parallel > 1024) return bt_err(BT_EINVAL, "max_parallel %d: at most 1024", o->max_parallel);
    return BT_OK;
}

int bt_connect(const char *lock_url, const bt_client_options *opts, bt_client **out)
{
    if (!out) return bt_err(BT_EINVAL, "bt_connect: out is NULL");
    *out = NULL;
    if (!lock_url || (strncmp(lock_url, "bt://", 5) && strncmp(lock_url, "etcd://", 7)))
        return bt_err(BT_EINVAL, "lock service URL \"%s\": expected bt://host:port or etcd://host:port[,host:port...]",
                      lock_url ? lock_url : "(null)");
    bt_client_options o;
    int rc = resolve_options(opts, &o);
    if (rc) return rc;
    bt_client *c = calloc(1, sizeof *c);
    if (!c) return BT_ENOMEM;
    c->o = o;
    c->lock_url = strdup(lock_url);
    if (!c->lock_url) {
        free(c);
        return BT_ENOMEM;
    }
    pthread_mutex_init(&c->lk_mu, NULL);
    pthread_mutex_init(&c->master_mu, NULL);
    pthread_mutex_init(&c->tc_mu, NULL);
    pthread_rwlock_init(&c->cache_mu, NULL);
    bt_conn_pool_opts po = {
        .conns_per_server = o.conns_per_server,
        .request_timeout_ms = o.rpc_timeout_ms,
        .connect_timeout_ms = o.rpc_timeout_ms < 2000 ? o.rpc_timeout_ms : 2000,
        .max_attempts = 1,
        .backoff_min_ms = BACKOFF_MIN_MS * 2, /* the rpc clients' reconnect backoff is half of it */
        .backoff_max_ms = BACKOFF_MAX_MS * 2,
    };
    rc = bt_conn_pool_new(&po, &c->pool);
    if (!rc) {
        lk_options lo = {.timeout_ms = (uint32_t)(o.rpc_timeout_ms < 5000 ? o.rpc_timeout_ms : 5000)};
        rc = lk_open(lock_url, &lo, &c->lk);
        if (rc == BT_ETIMEDOUT || rc == BT_ECLOSED || rc == BT_EIO || rc == BT_EUNAVAIL) {
            char why[256]; /* bt_err formats into the buffer bt_errmsg returns: copy it first */
            snprintf(why, sizeof why, "%s", bt_errmsg());
            rc = bt_err(BT_EUNAVAIL, "lock service %s is unreachable: %s", lock_url, why);
        }
    }
    if (rc) {
        bt_close(c);
        return rc;
    }
    *out = c;
    return BT_OK;
}

static void cache_clear_locked(bt_client *c);

void bt_close(bt_client *c)
{
    if (!c) return;
    bt_conn_pool_free(c->pool);
    for (size_t i = 0; i < c->n_tconns; i++) rpc_sync_free(c->tconns[i].conn);
    free(c->tconns);
    pthread_mutex_destroy(&c->tc_mu);
    lk_close(c->lk);
    for (size_t i = 0; i < c->n_retired; i++) lk_close(c->retired[i]);
    free(c->retired);
    cache_clear_locked(c);
    free(c->cache);
    bt_meta_entry_free(&c->root);
    pthread_rwlock_destroy(&c->cache_mu);
    pthread_mutex_destroy(&c->lk_mu);
    pthread_mutex_destroy(&c->master_mu);
    free(c->lock_url);
    free(c);
}

void bt_client_get_stats(bt_client *c, bt_client_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!c) return;
    out->lookups = atomic_load(&c->st_lookups);
    out->lookup_rpcs = atomic_load(&c->st_lookup_rpcs);
    out->cache_hits = atomic_load(&c->st_cache_hits);
    out->rpcs = atomic_load(&c->st_rpcs);
    out->retries = atomic_load(&c->st_retries);
}

int bt_client_lock(bt_client *c, lk_client **out)
{
    pthread_mutex_lock(&c->lk_mu);
    *out = c->lk;
    pthread_mutex_unlock(&c->lk_mu);
    return *out ? BT_OK : bt_err(BT_EUNAVAIL, "no lock-service session");
}

bt_conn_pool *bt_client_pool(bt_client *c) { return c->pool; }

/* lk_get through the client's session; an expired session (BT_ECLOSED) is
 * replaced by a new one and the read repeated once. */
static int client_lk_get(bt_client *c, const char *path, uint8_t **data, size_t *n)
{
    lk_client *lk;
    bt_client_lock(c, &lk);
    int rc = lk_get(lk, path, data, n, NULL);
    if (rc != BT_ECLOSED) return rc;
    pthread_mutex_lock(&c->lk_mu);
    if (c->lk == lk) {
        lk_client *nl = NULL;
        lk_options lo = {.timeout_ms = (uint32_t)(c->o.rpc_timeout_ms < 5000 ? c->o.rpc_timeout_ms : 5000)};
        lk_client **r = realloc(c->retired, (c->n_retired + 1) * sizeof *r);
        if (r) c->retired = r;
        rc = r ? lk_open(c->lock_url, &lo, &nl) : BT_ENOMEM;
        if (!rc) {
            c->retired[c->n_retired++] = c->lk;
            c->lk = nl;
        }
    } else {
        rc = BT_OK;
    }
    lk = c->lk;
    pthread_mutex_unlock(&c->lk_mu);
    if (rc) return rc == BT_ENOMEM ? rc : bt_err(BT_EUNAVAIL, "lock-service session lost and not renewed: %s", bt_errmsg());
    return lk_get(lk, path, data, n, NULL);
}

/* ---- RPC ---------------------------------------------------------------------------- */

static const char *method_name(uint16_t m)
{
    const char *n = tsp_method_name(m);
    return n ? n : "call";
}

/* The calling thread's own connection to addr (thread_connections). */
static int thread_conn(bt_client *c, const char *addr, rpc_sync_conn **out)
{
    pthread_t self = pthread_self();
    pthread_mutex_lock(&c->tc_mu);
    for (size_t i = 0; i < c->n_tconns; i++)
        if (pthread_equal(c->tconns[i].tid, self) && !strcmp(c->tconns[i].addr, addr)) {
            *out = c->tconns[i].conn;
            pthread_mutex_unlock(&c->tc_mu);
            return BT_OK;
        }
    int rc = BT_OK;
    char host[256];
    uint16_t port = 0;
    if (strlen(addr) >= sizeof c->tconns[0].addr) rc = bt_err(BT_EINVAL, "address too long: %s", addr);
    if (!rc) rc = bt_conn_parse_addr(addr, host, sizeof host, &port);
    if (!rc && c->n_tconns == c->cap_tconns) {
        size_t nc = c->cap_tconns ? 2 * c->cap_tconns : 16;
        struct bt_tconn *v = realloc(c->tconns, nc * sizeof *v);
        if (!v) rc = BT_ENOMEM;
        else {
            c->tconns = v;
            c->cap_tconns = nc;
        }
    }
    rpc_sync_conn *conn = NULL;
    if (!rc) rc = rpc_sync_new(host, port, 2000, &conn);
    if (!rc) {
        struct bt_tconn *t = &c->tconns[c->n_tconns++];
        t->tid = self;
        snprintf(t->addr, sizeof t->addr, "%s", addr);
        t->conn = conn;
        *out = conn;
    }
    pthread_mutex_unlock(&c->tc_mu);
    return rc;
}

int bt_client_rpc(bt_client *c, const char *addr, uint16_t method, const bt_buf *req, bt_buf *resp,
                  int timeout_ms)
{
    bt_buf local = {0};
    bt_buf *r = resp ? resp : &local;
    atomic_fetch_add(&c->st_rpcs, 1);
    int rc;
    if (c->o.thread_connections) {
        rpc_sync_conn *tc = NULL;
        rc = thread_conn(c, addr, &tc);
        if (!rc) rc = rpc_sync_call(tc, method, req ? req->data : NULL, req ? req->len : 0, r, timeout_ms);
    } else {
        rc = bt_conn_call(c->pool, addr, method, req ? req->data : NULL, req ? req->len : 0, r, timeout_ms, 0);
    }
    if (rc) {
        if (r->len && rc != BT_ETIMEDOUT)
            bt_err(rc, "%.*s", (int)(r->len > 300 ? 300 : r->len), (const char *)r->data);
        else if (rc == BT_ETIMEDOUT)
            bt_err(rc, "%s to %s: no answer within %d ms", method_name(method), addr, timeout_ms);
        else if (rc == BT_EUNAVAIL || rc == BT_ECLOSED)
            bt_err(rc, "%s to %s: server unreachable or connection lost", method_name(method), addr);
        else if (!bt_errmsg()[0])
            bt_err(rc, "%s to %s: %s", method_name(method), addr, bt_strerror(rc));
        bt_buf_clear(r);
    }
    bt_buf_free(&local);
    return rc;
}

/* ---- asynchronous calls ---------------------------------------------------------------- */

void bt_async_group_init(bt_async_group *g, int limit)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->pending = 0;
    g->limit = limit < 1 ? 1 : limit;
}

void bt_async_group_destroy(bt_async_group *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

static void async_done(void *arg, int status, const uint8_t *payload, size_t len, bool more)
{
    bt_async_call *a = arg;
    if (len && bt_buf_append(&a->resp, payload, len) && !status) status = BT_ENOMEM;
    if (more) return;
    bt_async_group *g = a->g;
    pthread_mutex_lock(&g->mu);
    a->status = status;
    g->pending--;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void bt_async_start(bt_client *c, bt_async_group *g, bt_async_call *a, const char *addr, uint16_t method,
                    const bt_buf *req, int timeout_ms)
{
    a->g = g;
    a->status = BT_OK;
    bt_buf_clear(&a->resp);
    pthread_mutex_lock(&g->mu);
    while (g->pending >= g->limit) pthread_cond_wait(&g->cv, &g->mu);
    g->pending++;
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_add(&c->st_rpcs, 1);
    int rc = bt_conn_call_async(c->pool, addr, method, req->data, req->len, timeout_ms, async_done, a);
    if (rc) {
        pthread_mutex_lock(&g->mu);
        a->status = rc;
        g->pending--;
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
    }
}

void bt_async_wait_all(bt_async_group *g)
{
    pthread_mutex_lock(&g->mu);
    while (g->pending > 0) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void ignore_done(void *arg, int status, const uint8_t *payload, size_t len, bool more)
{
    (void)arg; (void)status; (void)payload; (void)len; (void)more;
}

/* ---- the location cache ------------------------------------------------------------------ */

struct bt_loc_slot {
    bt_buf key;             /* bt_meta_key(table, end) */
    bt_meta_entry e;
};

static bool is_meta_name(const char *t, size_t n)
{
    return n == strlen(BT_META_NAME) && !memcmp(t, BT_META_NAME, n);
}

/* Index of the first slot whose key is > k (or >= k with inclusive). */
static size_t cache_bound(const bt_client *c, const uint8_t *k, size_t kl, bool inclusive)
{
    size_t lo = 0, hi = c->n_cache;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int x = sst_key_cmp(c->cache[mid]->key.data, c->cache[mid]->key.len, k, kl);
        if (x < 0 || (x == 0 && !inclusive)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void slot_free(struct bt_loc_slot *s)
{
    if (!s) return;
    bt_buf_free(&s->key);
    bt_meta_entry_free(&s->e);
    free(s);
}

static void cache_remove_at(bt_client *c, size_t i)
{
    slot_free(c->cache[i]);
    memmove(&c->cache[i], &c->cache[i + 1], (c->n_cache - i - 1) * sizeof *c->cache);
    c->n_cache--;
}

static void cache_clear_locked(bt_client *c)
{
    for (size_t i = 0; i < c->n_cache; i++) slot_free(c->cache[i]);
    c->n_cache = 0;
}

void bt_client_clear_cache(bt_client *c)
{
    if (!c) return;
    pthread_rwlock_wrlock(&c->cache_mu);
    cache_clear_locked(c);
    bt_meta_entry_free(&c->root);
    c->root_valid = false;
    pthread_rwlock_unlock(&c->cache_mu);
}

/* Caches e (copied), replacing every cached tablet of its table whose range
 * overlaps it (the parent of a split, an older layout).  An unassigned
 * tablet is not cached, but still evicts what it overlaps. */
static int cache_insert(bt_client *c, const bt_meta_entry *e)
{
    size_t tl = strlen(e->table);
    bt_buf lk = {0};
    struct bt_loc_slot *s = NULL;
    int rc = bt_meta_lookup_key(&lk, e->table, tl, e->start.data, e->start.len);
    if (!rc && e->server && e->server[0]) {
        s = calloc(1, sizeof *s);
        if (!s) rc = BT_ENOMEM;
        if (!rc) rc = bt_meta_key(&s->key, e->table, tl, e->end.data, e->end.len);
        if (!rc) rc = bt_meta_entry_copy(&s->e, e);
    }
    if (rc) {
        bt_buf_free(&lk);
        if (s) {
            bt_buf_free(&s->key);
            free(s);
        }
        return rc;
    }
    pthread_rwlock_wrlock(&c->cache_mu);
    /* entries of the table with end > e.start (or unbounded) and start < e.end */
    size_t i = cache_bound(c, lk.data, lk.len, false);
    while (i < c->n_cache && !strcmp(c->cache[i]->e.table, e->table) &&
           (e->end.len == 0 ||
            sst_key_cmp(c->cache[i]->e.start.data, c->cache[i]->e.start.len, e->end.data, e->end.len) < 0))
        cache_remove_at(c, i);
    if (s && c->n_cache == c->cap_cache) {
        size_t cap = c->cap_cache ? 2 * c->cap_cache : 64;
        struct bt_loc_slot **nc = realloc(c->cache, cap * sizeof *nc);
        if (nc) {
            c->cache = nc;
            c->cap_cache = cap;
        }
    }
    if (s && c->n_cache < c->cap_cache) {
        size_t at = cache_bound(c, s->key.data, s->key.len, true);
        memmove(&c->cache[at + 1], &c->cache[at], (c->n_cache - at) * sizeof *c->cache);
        c->cache[at] = s;
        c->n_cache++;
        s = NULL;
    }
    pthread_rwlock_unlock(&c->cache_mu);
    slot_free(s);
    bt_buf_free(&lk);
    return BT_OK;
}

static int loc_fill(bt_loc *l, const bt_meta_entry *e, bool want_range)
{
    l->id = e->id;
    snprintf(l->server, sizeof l->server, "%s", e->server ? e->server : "");
    l->have_range = want_range;
    if (!want_range) return BT_OK;
    bt_buf_clear(&l->start);
    bt_buf_clear(&l->end);
    if (bt_buf_append(&l->start, e->start.data, e->start.len) || bt_buf_append(&l->end, e->end.data, e->end.len))
        return BT_ENOMEM;
    return BT_OK;
}

void bt_loc_free(bt_loc *l)
{
    if (!l) return;
    bt_buf_free(&l->start);
    bt_buf_free(&l->end);
}

/* The cached tablet of (table, row), if any: BT_OK and *l, else BT_ENOTFOUND. */
static int cache_find(bt_client *c, const char *table, size_t tl, const uint8_t *row, size_t rl, bool want_range,
                      bt_loc *l)
{
    bt_buf k = {0};
    if (bt_meta_lookup_key(&k, table, tl, row, rl)) return BT_ENOMEM;
    int rc = BT_ENOTFOUND;
    pthread_rwlock_rdlock(&c->cache_mu);
    size_t i = cache_bound(c, k.data, k.len, false);
    if (i < c->n_cache) {
        const bt_meta_entry *e = &c->cache[i]->e;
        const char *et = e->table;
        if (strlen(et) == tl && !memcmp(et, table, tl) && bt_meta_entry_contains(e, row, rl))
            rc = loc_fill(l, e, want_range);
    }
    pthread_rwlock_unlock(&c->cache_mu);
    bt_buf_free(&k);
    return rc;
}

void bt_loc_drop(bt_client *c, const char *table, const uint8_t *row, size_t rl, uint64_t id)
{
    size_t tl = strlen(table);
    if (is_meta_name(table, tl) && sst_key_cmp(row, rl, (const uint8_t *)BT_META_ROOT_END, BT_META_ROOT_END_LEN) < 0) {
        pthread_rwlock_wrlock(&c->cache_mu);
        if (c->root_valid && c->root.id == id) {
            bt_meta_entry_free(&c->root);
            c->root_valid = false;
        }
        pthread_rwlock_unlock(&c->cache_mu);
        return;
    }
    bt_buf k = {0};
    if (bt_meta_lookup_key(&k, table, tl, row, rl)) return;
    pthread_rwlock_wrlock(&c->cache_mu);
    size_t i = cache_bound(c, k.data, k.len, false);
    if (i < c->n_cache && c->cache[i]->e.id == id) cache_remove_at(c, i);
    pthread_rwlock_unlock(&c->cache_mu);
    bt_buf_free(&k);
}

/* ---- the lookup ------------------------------------------------------------------------- */

/* The root tablet's location: cached, or read from /bt/root. */
static int root_get(bt_client *c, bt_meta_entry *out)
{
    pthread_rwlock_rdlock(&c->cache_mu);
    int rc = c->root_valid ? bt_meta_entry_copy(out, &c->root) : BT_ENOTFOUND;
    pthread_rwlock_unlock(&c->cache_mu);
    if (rc != BT_ENOTFOUND) return rc;
    uint8_t *data = NULL;
    size_t n = 0;
    atomic_fetch_add(&c->st_lookup_rpcs, 1);
    rc = client_lk_get(c, BT_LK_ROOT, &data, &n);
    if (rc == BT_ENOTFOUND)
        return bt_err(BT_EUNAVAIL, "%s does not exist yet: the cluster has no root tablet (is bt-master running?)",
                      BT_LK_ROOT);
    if (rc) return bt_retryable(rc) ? rc : bt_err(BT_EUNAVAIL, "reading %s: %s", BT_LK_ROOT, bt_errmsg());
    rc = bt_root_decode(data, n, out);
    free(data);
    if (rc) return rc == BT_ENOMEM ? rc : bt_err(BT_EUNAVAIL, "%s", bt_errmsg()); /* being rewritten? retry */
    if (!out->server[0]) {
        bt_meta_entry_free(out);
        return bt_err(BT_EUNAVAIL, "the root tablet is not assigned to a server yet");
    }
    pthread_rwlock_wrlock(&c->cache_mu);
    if (!c->root_valid && !bt_meta_entry_copy(&c->root, out)) c->root_valid = true;
    pthread_rwlock_unlock(&c->cache_mu);
    return BT_OK;
}

/* Scans METADATA tablet (id, server) over [start, end), at most limit rows,
 * decoding and caching every row; *first (if not NULL) receives the first
 * decoded entry (id 0 when there was none).  A scanner left open on the
 * server is closed without waiting. */
static int meta_scan(bt_client *c, bt_op *op, uint64_t id, const char *server, const bt_buf *start,
                     const uint8_t *end, size_t end_len, uint64_t limit, bt_meta_entry *first)
{
    if (first) memset(first, 0, sizeof *first);
    bt_buf req = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    ts_read_options ro = {.start_row = start->data, .start_len = start->len, .end_row = end, .end_len = end_len,
                          .row_limit = limit};
    bt_msg_put_varint(&w, id);
    tsp_put_filter(&w, &ro);
    bt_msg_put_varint(&w, limit);
    bt_msg_put_varint(&w, 0);
    int rc = bt_msg_writer_status(&w);
    atomic_fetch_add(&c->st_lookup_rpcs, 1);
    if (!rc) rc = bt_client_rpc(c, server, TSP_SCAN_OPEN, &req, &resp, bt_op_attempt_ms(op));
    bt_msg_reader r;
    bt_msg_reader_init(&r, resp.data, resp.len);
    uint64_t sid = 0;
    bool done = true;
    if (!rc) rc = tsp_get_scan_header(&r, &sid, &done);
    while (!rc && bt_msg_remaining(&r) > 0) {
        ts_row row;
        rc = tsp_get_row(&r, &row);
        if (rc) break;
        bt_meta_entry e;
        rc = bt_meta_entry_decode(&row, &e);
        tsp_row_release(&row);
        if (rc) break;
        /* the root tablet's own row (in the root tablet) is never a lookup's answer */
        bool root_row = !strcmp(e.table, BT_META_NAME) && e.end.len == BT_META_ROOT_END_LEN &&
                        !memcmp(e.end.data, BT_META_ROOT_END, BT_META_ROOT_END_LEN);
        if (!root_row) rc = cache_insert(c, &e);
        if (!rc && first && !first->id && !root_row) {
            *first = e;
        } else {
            bt_meta_entry_free(&e);
        }
    }
    if (!done && sid) {
        bt_buf cr = {0};
        if (!bt_buf_put_varint64(&cr, sid)) {
            atomic_fetch_add(&c->st_rpcs, 1);
            bt_conn_call_async(c->pool, server, TSP_SCAN_CLOSE, cr.data, cr.len, 0, ignore_done, NULL);
        }
        bt_buf_free(&cr);
    }
    if (rc && first) bt_meta_entry_free(first);
    if (rc == BT_ECORRUPT) rc = bt_err(BT_EUNAVAIL, "undecodable METADATA answer from %s: %s", server, bt_errmsg());
    bt_buf_free(&req);
    bt_buf_free(&resp);
    return rc;
}

static int append_byte(bt_buf *b, uint8_t x) { return bt_buf_append(b, &x, 1); }

/* The METADATA tablet holding METADATA key k (k >= 01): the cache, else a
 * scan of the root tablet. */
static int locate_meta_tablet(bt_client *c, const uint8_t *k, size_t kl, bt_op *op, bt_meta_entry *out)
{
    bt_loc l = {0};
    int rc = cache_find(c, BT_META_NAME, strlen(BT_META_NAME), k, kl, true, &l);
    if (rc == BT_OK) {
        memset(out, 0, sizeof *out);
        strcpy(out->table, BT_META_NAME);
        out->id = l.id;
        out->server = strdup(l.server);
        out->start = l.start;
        out->end = l.end;
        return out->server ? BT_OK : BT_ENOMEM;
    }
    bt_loc_free(&l);
    if (rc != BT_ENOTFOUND) return rc;
    bt_meta_entry root;
    rc = root_get(c, &root);
    if (rc) return rc;
    bt_buf start = {0};
    rc = bt_meta_lookup_key(&start, BT_META_NAME, strlen(BT_META_NAME), k, kl);
    if (!rc) rc = append_byte(&start, 0);
    bt_meta_entry first = {0};
    if (!rc) rc = meta_scan(c, op, root.id, root.server, &start, (const uint8_t *)BT_META_ROOT_END,
                            BT_META_ROOT_END_LEN, (uint64_t)c->o.prefetch_rows, &first);
    if (rc && bt_retryable(rc)) bt_loc_drop(c, BT_META_NAME, (const uint8_t *)"", 0, root.id);
    bt_meta_entry_free(&root);
    bt_buf_free(&start);
    if (rc) return rc;
    if (!first.id || !bt_meta_entry_contains(&first, k, kl)) {
        bt_meta_entry_free(&first);
        return bt_err(BT_EUNAVAIL, "no METADATA tablet holds this key yet (a METADATA split in progress?)");
    }
    if (!first.server[0]) {
        bt_meta_entry_free(&first);
        return bt_err(BT_EUNAVAIL, "METADATA tablet is not assigned to a server yet");
    }
    *out = first;
    return BT_OK;
}

/* The network part of bt_locate. */
static int lookup(bt_client *c, const char *table, size_t tl, const uint8_t *row, size_t rl, bt_op *op,
                  bt_meta_entry *out)
{
    atomic_fetch_add(&c->st_lookups, 1);
    if (is_meta_name(table, tl)) {
        if (sst_key_cmp(row, rl, (const uint8_t *)BT_META_ROOT_END, BT_META_ROOT_END_LEN) < 0)
            return root_get(c, out);
        return locate_meta_tablet(c, row, rl, op, out);
    }
    bt_buf cur = {0}, tend = {0};
    static const uint8_t past_last[3] = {0x00, 0xff, 0x00}; /* after T 00 FF: past the table's rows */
    int rc = bt_meta_lookup_key(&cur, table, tl, row, rl);
    if (!rc) rc = append_byte(&cur, 0);
    if (!rc) rc = bt_buf_append(&tend, table, tl);
    if (!rc) rc = bt_buf_append(&tend, past_last, sizeof past_last);
    while (!rc) {
        bt_meta_entry mt;
        rc = locate_meta_tablet(c, cur.data, cur.len, op, &mt);
        if (rc) break;
        /* end of the scan: the table's end or the METADATA tablet's, whichever is first */
        const uint8_t *end = tend.data;
        size_t end_len = tend.len;
        if (mt.end.len && sst_key_cmp(mt.end.data, mt.end.len, tend.data, tend.len) < 0) {
            end = mt.end.data;
            end_len = mt.end.len;
        }
        bt_meta_entry first;
        rc = meta_scan(c, op, mt.id, mt.server, &cur, end, end_len, (uint64_t)c->o.prefetch_rows, &first);
        if (rc) {
            if (bt_retryable(rc)) bt_loc_drop(c, BT_META_NAME, cur.data, cur.len, mt.id);
            bt_meta_entry_free(&mt);
            break;
        }
        if (first.id) {
            bt_meta_entry_free(&mt);
            if (!bt_meta_entry_contains(&first, row, rl))
                rc = bt_err(BT_EUNAVAIL, "table %.*s: no tablet holds this row yet (a split in progress?)", (int)tl, table);
            else if (!first.server[0])
                rc = bt_err(BT_EUNAVAIL, "table %.*s: tablet %" PRIu64 " is not assigned to a server yet", (int)tl,
                            table, first.id);
            if (rc) bt_meta_entry_free(&first);
            else *out = first;
            break;
        }
        /* nothing of the table in this METADATA tablet after cur: the next one */
        if (end == tend.data) {
            rc = bt_err(BT_ENOTFOUND, "table \"%.*s\" does not exist", (int)tl, table);
        } else {
            bt_buf_clear(&cur);
            rc = bt_buf_append(&cur, mt.end.data, mt.end.len);
        }
        bt_meta_entry_free(&mt);
    }
    bt_buf_free(&cur);
    bt_buf_free(&tend);
    return rc;
}

int bt_locate(bt_client *c, const char *table, const uint8_t *row, size_t rl, bt_op *op, bool want_range,
              bt_loc *l)
{
    size_t tl = strlen(table);
    int rc;
    if (is_meta_name(table, tl) && sst_key_cmp(row, rl, (const uint8_t *)BT_META_ROOT_END, BT_META_ROOT_END_LEN) < 0) {
        pthread_rwlock_rdlock(&c->cache_mu);
        rc = c->root_valid ? loc_fill(l, &c->root, want_range) : BT_ENOTFOUND;
        pthread_rwlock_unlock(&c->cache_mu);
    } else {
        rc = cache_find(c, table, tl, row, rl, want_range, l);
    }
    if (rc == BT_OK) {
        atomic_fetch_add(&c->st_cache_hits, 1);
        return BT_OK;
    }
    if (rc != BT_ENOTFOUND) return rc;
    bt_meta_entry e;
    rc = lookup(c, table, tl, row, rl, op, &e);
    if (rc) return rc;
    rc = loc_fill(l, &e, want_range);
    bt_meta_entry_free(&e);
    return rc;
}

/* ---- calls on a tablet ------------------------------------------------------------------- */

int bt_tablet_call(bt_table *t, const uint8_t *row, size_t rl, uint16_t method, const bt_buf *tail,
                   bt_buf *resp, bool only_not_serving)
{
    bt_client *c = t->c;
    bt_op op;
    bt_op_init(&op, c);
    bt_buf req = {0};
    int rc;
    for (;;) {
        bt_loc l = {0};
        bool sent = false;
        rc = bt_locate(c, t->name, row, rl, &op, false, &l);
        if (!rc) {
            bt_buf_clear(&req);
            rc = bt_buf_put_varint64(&req, l.id);
            if (!rc) rc = bt_buf_append(&req, tail->data, tail->len);
            if (!rc) {
                sent = true;
                rc = bt_client_rpc(c, l.server, method, &req, resp, bt_op_attempt_ms(&op));
            }
            if (bt_retryable(rc)) bt_loc_drop(c, t->name, row, rl, l.id);
        }
        bt_loc_free(&l);
        if (!bt_retryable(rc)) break;
        if (only_not_serving && sent && rc != BT_ENOTSERVING) {
            rc = bt_err(BT_EUNAVAIL, "table %s: %s; the read-modify-write may or may not have been applied, "
                                     "so it is not retried", t->name, bt_errmsg());
            break;
        }
        if (!bt_op_backoff(&op, rc)) {
            rc = bt_op_fail(&op, t->name);
            break;
        }
    }
    bt_buf_free(&req);
    return rc;
}

/* ---- the master ------------------------------------------------------------------------- */

static int master_addr(bt_client *c, char *addr, size_t cap)
{
    pthread_mutex_lock(&c->master_mu);
    snprintf(addr, cap, "%s", c->master_addr);
    pthread_mutex_unlock(&c->master_mu);
    if (addr[0]) return BT_OK;
    uint8_t *data = NULL;
    size_t n = 0;
    int rc = client_lk_get(c, BT_LK_MASTER, &data, &n);
    if (rc == BT_ENOTFOUND) return bt_err(BT_EUNAVAIL, "no master: %s does not exist (is bt-master running?)", BT_LK_MASTER);
    if (rc) return bt_retryable(rc) ? rc : bt_err(BT_EUNAVAIL, "reading %s: %s", BT_LK_MASTER, bt_errmsg());
    while (n && (data[n - 1] == '\n' || data[n - 1] == ' ' || data[n - 1] == '\r')) n--;
    if (n == 0 || n >= cap || memchr(data, 0, n)) {
        free(data);
        return bt_err(BT_EUNAVAIL, "no active master (%s is empty)", BT_LK_MASTER);
    }
    memcpy(addr, data, n);
    addr[n] = 0;
    free(data);
    pthread_mutex_lock(&c->master_mu);
    snprintf(c->master_addr, sizeof c->master_addr, "%s", addr);
    pthread_mutex_unlock(&c->master_mu);
    return BT_OK;
}

int bt_client_master_call(bt_client *c, uint16_t method, const bt_buf *payload, bt_buf *answer)
{
    bt_op op;
    bt_op_init(&op, c);
    bt_buf local = {0};
    bt_buf *ans = answer ? answer : &local;
    int rc;
    for (;;) {
        char addr[256];
        rc = master_addr(c, addr, sizeof addr);
        if (!rc) {
            /* administrative calls may take long (a create waits for its
             * tablets): one attempt may use the whole deadline */
            int64_t left = (op.deadline_us - bt_now_us()) / 1000;
            atomic_fetch_add(&c->st_rpcs, 1);
            rc = bt_conn_call(c->pool, addr, method, payload ? payload->data : NULL, payload ? payload->len : 0,
                              ans, left < 1 ? 1 : (int)left, 0);
            if (rc && ans->len)
                bt_err(rc, "%.*s", (int)(ans->len > 400 ? 400 : ans->len), (const char *)ans->data);
            else if (rc == BT_ETIMEDOUT)
                bt_err(rc, "the master at %s did not answer within the deadline (%d ms)", addr, c->o.timeout_ms);
            else if (rc == BT_EUNAVAIL || rc == BT_ECLOSED)
                bt_err(rc, "the master at %s is unreachable", addr);
            if (rc == BT_EUNAVAIL || rc == BT_ECLOSED) {
                pthread_mutex_lock(&c->master_mu);
                if (!strcmp(c->master_addr, addr)) c->master_addr[0] = 0;
                pthread_mutex_unlock(&c->master_mu);
            }
        }
        if (rc != BT_EUNAVAIL && rc != BT_ECLOSED) break;
        if (!bt_op_backoff(&op, rc)) {
            rc = bt_op_fail(&op, "master");
            break;
        }
    }
    bt_buf_free(&local);
    return rc;
}

/* ---- tables ------------------------------------------------------------------------------ */

static int read_schema(bt_client *c, const char *name, ts_schema *s)
{
    if (is_meta_name(name, strlen(name))) {
        bt_meta_schema(s);
        return BT_OK;
    }
    char path[LK_MAX_PATH];
    snprintf(path, sizeof path, "%s/%s", BT_LK_SCHEMA, name);
    uint8_t *data = NULL;
    size_t n = 0;
    bt_op op;
    bt_op_init(&op, c);
    int rc;
    for (;;) {
        rc = client_lk_get(c, path, &data, &n);
        if (rc != BT_EUNAVAIL && rc != BT_ETIMEDOUT) break;
        if (!bt_op_backoff(&op, rc)) return bt_op_fail(&op, "lock service");
    }
    if (rc == BT_ENOTFOUND) return bt_err(BT_ENOTFOUND, "no table \"%s\"", name);
    if (rc) return rc;
    rc = bt_schema_from_json(data, n, s);
    free(data);
    if (rc && rc != BT_ENOMEM) rc = bt_err(BT_ECORRUPT, "%s: %s", path, bt_errmsg());
    return rc;
}

int bt_table_open(bt_client *c, const char *name, bt_table **out)
{
    if (!out) return bt_err(BT_EINVAL, "bt_table_open: out is NULL");
    *out = NULL;
    if (!c) return bt_err(BT_EINVAL, "bt_table_open: client is NULL");
    if (!name || !bt_valid_name(name, strlen(name)))
        return bt_err(BT_EINVAL, "table name \"%s\" must be 1-64 of [A-Za-z0-9_.-]", name ? name : "(null)");
    bt_table *t = calloc(1, sizeof *t);
    if (!t) return BT_ENOMEM;
    int rc = read_schema(c, name, &t->schema);
    if (rc) {
        free(t);
        return rc;
    }
    t->c = c;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->is_meta = is_meta_name(name, strlen(name));
    pthread_mutex_init(&t->mu, NULL);
    *out = t;
    return BT_OK;
}

void bt_table_close(bt_table *t)
{
    if (!t) return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

const char *bt_table_name(const bt_table *t) { return t ? t->name : NULL; }

int bt_table_schema(bt_table *t, bool refresh, ts_schema *out)
{
    if (refresh) {
        ts_schema s;
        int rc = read_schema(t->c, t->name, &s);
        if (rc) return rc;
        pthread_mutex_lock(&t->mu);
        t->schema = s;
        pthread_mutex_unlock(&t->mu);
    }
    pthread_mutex_lock(&t->mu);
    *out = t->schema;
    pthread_mutex_unlock(&t->mu);
    return BT_OK;
}

/* The first family of m / f missing from s, or NULL (*len its length). */
static const char *missing_family(const ts_schema *s, const ts_mutation *m, int n, const ts_read_options *f,
                                  size_t *len)
{
    for (int i = 0; i < n; i++)
        if (m[i].type != TS_DELETE_ROW && ts_schema_find(s, m[i].family, m[i].family_len) < 0) {
            *len = m[i].family_len;
            return m[i].family;
        }
    if (!f) return NULL;
    for (int i = 0; i < f->n_columns; i++)
        if (ts_schema_find(s, f->columns[i].family, f->columns[i].family_len) < 0) {
            *len = f->columns[i].family_len;
            return f->columns[i].family;
        }
    if (f->range_family_len && ts_schema_find(s, f->range_family, f->range_family_len) < 0) {
        *len = f->range_family_len;
        return f->range_family;
    }
    return NULL;
}

int bt_table_check_families(bt_table *t, const ts_mutation *m, int n, const ts_read_options *f)
{
    ts_schema s;
    size_t len = 0;
    bt_table_schema(t, false, &s);
    if (!missing_family(&s, m, n, f, &len)) return BT_OK;
    int rc = bt_table_schema(t, true, &s);
    if (rc) return rc;
    const char *fam = missing_family(&s, m, n, f, &len);
    if (!fam) return BT_OK;
    return bt_err(BT_ENOTFOUND, "table %s has no family %.*s", t->name, (int)len, fam);
}

int bt_check_row(const void *row, size_t len)
{
    if (!row || len == 0) return bt_err(BT_EINVAL, "row key is empty (must be 1..%d bytes)", TS_MAX_ROW_KEY);
    if (len > TS_MAX_ROW_KEY)
        return bt_err(BT_ETOOBIG, "row key of %zu bytes is over the limit of %d bytes", len, TS_MAX_ROW_KEY);
    return BT_OK;
}

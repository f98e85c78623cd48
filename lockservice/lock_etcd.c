/* lockservice/lock_etcd.c: the etcd backend of lock.h, over etcd's v3 JSON
 * gateway (POST http://host:port/v3/...) with libcurl and cJSON.  Why etcd:
 * it is the replicated lock service for deployments that outgrow one
 * bt-lockd (design section 2); everything here maps lock.h onto etcd
 * primitives so that etcd itself enforces every guarantee:
 *
 *   session          a lease (lease/grant; TTL = lease_ms rounded UP to whole
 *                    seconds, at least 1; etcd may raise it to its minimum
 *                    TTL), kept alive by a thread every TTL/3, revoked on close
 *
 * Every key about one path P shares the prefix "/btlk/p<P>#" ('#' is not a
 * path character, so the range of P never holds another path's keys):
 *   #n               the node: value = 'f' or 'd' then the contents; the key's
 *                    version is the generation (1 on create, +1 per set);
 *                    ephemeral files carry the session's lease
 *   #d               exists iff P is a directory (txn compares on it)
 *   #c<name>         one key per child (so "/a" never lists "/ab/...")
 *   #l               the lock: created with the holder's lease iff absent;
 *                    value = holder's session id; create_revision = lock gen
 *   #g               written in the acquiring txn: its mod_revision is the last
 *                    lock generation, also while the lock is free
 *   #q<session>      FIFO queue of lock waiters (with the waiter's lease)
 *
 * Every mutation is one txn whose compares carry the precondition (parent is
 * a directory, node exists, generation matches, directory empty, lock
 * absent); its failure branch reads back what is needed to name the error.
 * Sequencers are "path:create_revision" of the lock key.  A watch is one
 * streaming POST to /v3/watch over the path's whole key range (so its events
 * arrive in revision order), driven by one thread per client through a curl
 * multi handle and starting at the revision read when lk_watch ran, so every
 * later change is seen, also across reconnects.
 */
#include "common/coding.h"
#include "lockservice/lock_backend.h"
#include "common/log.h"
#include "common/status.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_MAX 8

struct estream;
struct ewatch;

typedef struct etcd {
    char **hosts;                /* "http://host:port", owned */
    int nhosts;
    pthread_mutex_t host_mu;     /* protects cur */
    int cur;                     /* endpoint that answered last */
    uint32_t timeout_ms;
    int64_t lease_id;            /* = session id; immutable after open */
    int64_t ttl_s;               /* granted TTL; immutable after open */
    char idstr[32];              /* lease_id in decimal (lock key values) */

    pthread_mutex_t mu;          /* protects valid_until_us, the flags, stale_q/nstale */
    pthread_cond_t cv;           /* wakes the keep-alive thread (close, local expiry) */
    int64_t valid_until_us;
    bool expired, closing, jeopardy, expired_reported;
    char *stale_q[8];            /* paths whose queue entry a failed dequeue left (owned) */
    int nstale;
    pthread_t ka_thread;

    pthread_mutex_t cb_mu;       /* serialises every callback (session + watch) of this client */
    void (*on_session)(void *, lk_session_event);
    void *arg;

    pthread_mutex_t pool_mu;     /* protects pool/npool: idle easy handles for synchronous calls */
    CURL *pool[POOL_MAX];
    int npool;

    pthread_mutex_t w_mu;        /* protects watches, pending, next_wid, w_stop */
    struct ewatch *watches;      /* live lk_watch registrations (owned) */
    struct estream *pending;     /* streams handed to the watch thread (ownership moves there) */
    uint64_t next_wid;
    bool w_stop;
    CURLM *multi;                /* used only by the watch thread (and wakeup) */
    pthread_t w_thread;
} etcd;

static _Thread_local bool tl_in_cb;   /* true while this thread runs a callback */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- base64 and JSON helpers --------------------------------------------------- */

/* malloc'd NUL-terminated base64 of p[0..n); caller frees. */
static char *b64_enc(const void *p, size_t n)
{
    bt_buf b = {0};
    if (bt_b64_encode(&b, p, n, false) || bt_buf_append(&b, "", 1)) {
        bt_buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

/* Decodes into a malloc'd buffer (*out, caller frees, NUL-terminated for
 * convenience); returns the length or -1 if malformed/out of memory. */
static long b64_dec(const char *s, uint8_t **out)
{
    bt_buf b = {0};
    if (bt_b64_decode(s ? s : "", s ? strlen(s) : 0, &b) || bt_buf_append(&b, "", 1)) {
        bt_buf_free(&b);
        return -1;
    }
    *out = b.data;
    return (long)b.len - 1;
}

/* etcd encodes int64 fields as JSON strings; absent means 0. */
static int64_t jint(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsString(v)) return strtoll(v->valuestring, NULL, 10);
    if (cJSON_IsNumber(v)) return (int64_t)v->valuedouble;
    return 0;
}

static void jset_int(cJSON *o, const char *name, int64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, v);
    cJSON_AddStringToObject(o, name, b);
}

static void jset_b64(cJSON *o, const char *name, const void *p, size_t n)
{
    char *s = b64_enc(p, n);
    cJSON_AddStringToObject(o, name, s ? s : "");
    free(s);
}

/* ---- HTTP ------------------------------------------------------------------------ */

struct rbuf { char *p; size_t n, cap; };

static size_t rbuf_write(char *d, size_t sz, size_t nm, void *u)
{
    struct rbuf *b = u;
    size_t n = sz * nm;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = 0;
    return n;
}

static CURL *pool_get(etcd *e)
{
    CURL *h = NULL;
    pthread_mutex_lock(&e->pool_mu);
    if (e->npool) h = e->pool[--e->npool];
    pthread_mutex_unlock(&e->pool_mu);
    if (!h) h = curl_easy_init();
    else curl_easy_reset(h);
    return h;
}

static void pool_put(etcd *e, CURL *h)
{
    if (!h) return;
    pthread_mutex_lock(&e->pool_mu);
    if (e->npool < POOL_MAX) { e->pool[e->npool++] = h; h = NULL; }
    pthread_mutex_unlock(&e->pool_mu);
    if (h) curl_easy_cleanup(h);
}

static int host_cur(etcd *e)
{
    pthread_mutex_lock(&e->host_mu);
    int c = e->cur;
    pthread_mutex_unlock(&e->host_mu);
    return c;
}

/* Moves past endpoint `failed` if it is still the current one. */
static void host_advance(etcd *e, int failed)
{
    pthread_mutex_lock(&e->host_mu);
    if (e->cur == failed) e->cur = (failed + 1) % e->nhosts;
    pthread_mutex_unlock(&e->host_mu);
}

/* Maps an etcd/grpc-gateway error body to a BT_E* code with its message. */
static int map_etcd_error(const cJSON *j, long http)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(j, "message");
    const char *msg = cJSON_IsString(m) ? m->valuestring : "unexpected reply";
    int code = (int)jint(j, "code");
    int rc;
    if (strstr(msg, "lease not found")) rc = BT_ECLOSED;
    else if (strstr(msg, "too large")) rc = BT_ETOOBIG;
    else if (code == 3 || code == 11) rc = BT_EINVAL;
    else if (code == 4) rc = BT_ETIMEDOUT;
    else if (code == 5) rc = BT_ENOTFOUND;
    else if (code == 6) rc = BT_EEXIST;
    else if (code == 8) rc = BT_ENOSPC;
    else if (code == 9) rc = BT_EFAILED_PRECONDITION;
    else if (code == 14 || http == 503) rc = BT_EUNAVAIL;
    else rc = BT_EIO;
    return bt_err(rc, "etcd: %s (code %d, HTTP %ld)", msg, code, http);
}

/* POSTs `req` to `path` on the current endpoint, failing over to the next
 * one on a connection failure or an unavailable member.  *out is the parsed
 * reply (caller frees with cJSON_Delete). */
static int etcd_post(etcd *e, const char *path, const cJSON *req, cJSON **out, uint32_t timeout_ms)
{
    char *body = cJSON_PrintUnformatted(req);
    if (!body) return bt_err(BT_ENOMEM, "etcd: cannot encode request");
    CURL *h = pool_get(e);
    if (!h) { free(body); return bt_err(BT_ENOMEM, "etcd: curl_easy_init failed"); }
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    int rc = BT_EUNAVAIL;
    char lasterr[1200] = "no endpoint";
    int start = host_cur(e);
    for (int k = 0; k < e->nhosts; k++) {
        int hi = (start + k) % e->nhosts;
        char url[512];
        snprintf(url, sizeof url, "%s%s", e->hosts[hi], path);
        struct rbuf rb = {0};
        char errbuf[CURL_ERROR_SIZE] = "";
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rbuf_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &rb);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 2000 ? timeout_ms : 2000));
        CURLcode cc = curl_easy_perform(h);
        long http = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
        if (cc != CURLE_OK) {
            snprintf(lasterr, sizeof lasterr, "%s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
            free(rb.p);
            if (cc == CURLE_OPERATION_TIMEDOUT && http) {
                rc = bt_err(BT_ETIMEDOUT, "etcd: %s", lasterr);
                goto done;
            }
            host_advance(e, hi);
            continue; /* connection-level failure: try the next endpoint */
        }
        cJSON *j = rb.p ? cJSON_Parse(rb.p) : NULL;
        if (!j) {
            rc = bt_err(BT_EIO, "etcd: %s: HTTP %ld, unparsable reply \"%.80s\"", url, http, rb.p ? rb.p : "");
            free(rb.p);
            goto done;
        }
        free(rb.p);
        if (http != 200) {
            rc = map_etcd_error(j, http);
            cJSON_Delete(j);
            if (rc == BT_EUNAVAIL) { /* e.g. "no leader": another member may do better */
                snprintf(lasterr, sizeof lasterr, "%s: %s", url, bt_errmsg());
                host_advance(e, hi);
                continue;
            }
            goto done;
        }
        pthread_mutex_lock(&e->host_mu);
        e->cur = hi;
        pthread_mutex_unlock(&e->host_mu);
        *out = j;
        rc = BT_OK;
        goto done;
    }
    rc = bt_err(BT_EUNAVAIL, "etcd: no endpoint answered (last: %s)", lasterr);
done:
    curl_slist_free_all(hdr);
    pool_put(e, h);
    free(body);
    return rc;
}

/* ---- keys and txn building ------------------------------------------------------- */

/* "/btlk/p<path>#<t>": every key about one path shares the prefix
 * "/btlk/p<path>#" ('#' is not a path character, so no other path's keys
 * fall in that range), which lets one watch stream see all of them in
 * revision order.  KCAP is always enough. */
static void key_of(char *b, size_t cap, char t, const char *path)
{
    snprintf(b, cap, "/btlk/p%s#%c", path, t);
}

/* All keys of one path: ["/btlk/p<path>#", "/btlk/p<path>$"). */
static void path_range(char *start, char *end, size_t cap, const char *path)
{
    snprintf(start, cap, "/btlk/p%s#", path);
    snprintf(end, cap, "/btlk/p%s$", path);
}

/* Parent directory and last component of a non-root path. */
static void split_path(const char *path, char *parent, size_t cap, const char **name)
{
    const char *sl = strrchr(path, '/');
    size_t pl = (size_t)(sl - path);
    if (pl == 0) snprintf(parent, cap, "/");
    else snprintf(parent, cap, "%.*s", (int)pl, path);
    *name = sl + 1;
}

/* Children keys of dir: ["/btlk/p<dir>#c", "/btlk/p<dir>#d"). */
static void child_range(char *start, char *end, size_t cap, const char *dir)
{
    snprintf(start, cap, "/btlk/p%s#c", dir);
    snprintf(end, cap, "/btlk/p%s#d", dir);
}

static void child_key(char *b, size_t cap, const char *dir, const char *name)
{
    snprintf(b, cap, "/btlk/p%s#c%s", dir, name);
}

/* Lock waiters: "/btlk/p<path>#q<session>", range [#q, #r). */
static void queue_key(char *b, size_t cap, const char *path, int64_t lease)
{
    snprintf(b, cap, "/btlk/p%s#q%" PRId64, path, lease);
}

static void queue_range(char *start, char *end, size_t cap, const char *path)
{
    snprintf(start, cap, "/btlk/p%s#q", path);
    snprintf(end, cap, "/btlk/p%s#r", path);
}

#define KCAP (LK_MAX_PATH + 160)

static cJSON *cmp_rev(const char *key, const char *range_end, const char *target, const char *result, int64_t v)
{
    cJSON *c = cJSON_CreateObject();
    jset_b64(c, "key", key, strlen(key));
    if (range_end) jset_b64(c, "range_end", range_end, strlen(range_end));
    cJSON_AddStringToObject(c, "target", target);
    cJSON_AddStringToObject(c, "result", result);
    jset_int(c, !strcmp(target, "CREATE") ? "create_revision" : !strcmp(target, "MOD") ? "mod_revision" :
                !strcmp(target, "LEASE") ? "lease" : "version", v);
    return c;
}

static cJSON *cmp_value(const char *key, const char *val)
{
    cJSON *c = cJSON_CreateObject();
    jset_b64(c, "key", key, strlen(key));
    cJSON_AddStringToObject(c, "target", "VALUE");
    cJSON_AddStringToObject(c, "result", "EQUAL");
    jset_b64(c, "value", val, strlen(val));
    return c;
}

static cJSON *op_put(const char *key, const void *v, size_t n, int64_t lease, bool ignore_lease)
{
    cJSON *o = cJSON_CreateObject(), *p = cJSON_AddObjectToObject(o, "request_put");
    jset_b64(p, "key", key, strlen(key));
    jset_b64(p, "value", v, n);
    if (lease) jset_int(p, "lease", lease);
    if (ignore_lease) cJSON_AddBoolToObject(p, "ignore_lease", 1);
    return o;
}

static cJSON *op_del(const char *key, const char *range_end)
{
    cJSON *o = cJSON_CreateObject(), *p = cJSON_AddObjectToObject(o, "request_delete_range");
    jset_b64(p, "key", key, strlen(key));
    if (range_end) jset_b64(p, "range_end", range_end, strlen(range_end));
    return o;
}

static cJSON *op_range(const char *key, const char *range_end, bool keys_only)
{
    cJSON *o = cJSON_CreateObject(), *p = cJSON_AddObjectToObject(o, "request_range");
    jset_b64(p, "key", key, strlen(key));
    if (range_end) jset_b64(p, "range_end", range_end, strlen(range_end));
    if (keys_only) cJSON_AddBoolToObject(p, "keys_only", 1);
    return o;
}

struct txn { cJSON *req, *cmp, *succ, *fail; };

static void txn_init(struct txn *t)
{
    t->req = cJSON_CreateObject();
    t->cmp = cJSON_AddArrayToObject(t->req, "compare");
    t->succ = cJSON_AddArrayToObject(t->req, "success");
    t->fail = cJSON_AddArrayToObject(t->req, "failure");
}

static int check_open(etcd *e);
static void mark_expired(etcd *e);
static bool dequeue(etcd *e, const char *path, bool remember);

/* Runs the txn (consumes t->req); *resp is the reply, *ok whether the
 * compares held. */
static int txn_run(etcd *e, struct txn *t, cJSON **resp, bool *ok)
{
    int rc = check_open(e);
    if (!rc) rc = etcd_post(e, "/v3/kv/txn", t->req, resp, e->timeout_ms);
    cJSON_Delete(t->req);
    t->req = NULL;
    if (rc == BT_ECLOSED) mark_expired(e);
    if (rc) return rc;
    *ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(*resp, "succeeded"));
    return BT_OK;
}

/* The first kv of the i-th (range) response of a txn reply, or NULL. */
static const cJSON *resp_kvs(const cJSON *resp, int i)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(resp, "responses");
    const cJSON *r = cJSON_GetArrayItem(rs, i);
    const cJSON *rr = r ? cJSON_GetObjectItemCaseSensitive(r, "response_range") : NULL;
    return rr ? cJSON_GetObjectItemCaseSensitive(rr, "kvs") : NULL;
}

static const cJSON *resp_kv(const cJSON *resp, int i) { return cJSON_GetArrayItem(resp_kvs(resp, i), 0); }

static int64_t resp_revision(const cJSON *resp)
{
    return jint(cJSON_GetObjectItemCaseSensitive(resp, "header"), "revision");
}

/* Decoded value of a kv (malloc'd, caller frees); returns length or -1. */
static long kv_value(const cJSON *kv, uint8_t **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(kv, "value");
    return b64_dec(cJSON_IsString(v) ? v->valuestring : "", out);
}

static bool kv_is_dir(const cJSON *kv)
{
    uint8_t *v = NULL;
    long n = kv_value(kv, &v);
    bool d = n > 0 && v[0] == 'd';
    free(v);
    return d;
}

/* ---- session ----------------------------------------------------------------------- */

static void fire_session(etcd *e, lk_session_event ev)
{
    if (!e->on_session) return;
    pthread_mutex_lock(&e->cb_mu);
    tl_in_cb = true;
    e->on_session(e->arg, ev);
    tl_in_cb = false;
    pthread_mutex_unlock(&e->cb_mu);
}

/* Records the expiry (first caller wins) and wakes the keep-alive thread,
 * which reports LK_SESSION_EXPIRED. */
static void mark_expired(etcd *e)
{
    pthread_mutex_lock(&e->mu);
    e->expired = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* BT_OK while the conservative lease view holds, else BT_ECLOSED (and from
 * then on forever). */
static int check_open(etcd *e)
{
    pthread_mutex_lock(&e->mu);
    if (!e->expired && !e->closing && now_us() >= e->valid_until_us) {
        e->expired = true;
        pthread_cond_broadcast(&e->cv);
    }
    bool dead = e->expired || e->closing;
    pthread_mutex_unlock(&e->mu);
    return dead ? bt_err(BT_ECLOSED, "etcd: session %" PRId64 " expired or closed", e->lease_id) : BT_OK;
}

static void *keepalive_main(void *arg)
{
    etcd *e = arg;
    int64_t ttl_us = e->ttl_s * 1000000;
    int64_t interval_us = ttl_us / 3;
    int64_t next = now_us() + interval_us;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->closing && !(e->expired && !e->expired_reported) && now_us() < next &&
               now_us() < e->valid_until_us) {
            int64_t wait = next < e->valid_until_us ? next : e->valid_until_us;
            int64_t d = wait - now_us();
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = ts.tv_nsec + (d % 1000000) * 1000;
            ts.tv_sec += d / 1000000 + ns / 1000000000;
            ts.tv_nsec = ns % 1000000000;
            pthread_cond_timedwait(&e->cv, &e->mu, &ts);
        }
        if (e->closing) { pthread_mutex_unlock(&e->mu); break; }
        if (!e->expired && now_us() >= e->valid_until_us) e->expired = true;
        if (e->expired) {
            bool report = !e->expired_reported;
            e->expired_reported = true;
            pthread_mutex_unlock(&e->mu);
            if (report) {
                BT_WARN("etcd: session %" PRId64 " expired", e->lease_id);
                fire_session(e, LK_SESSION_EXPIRED);
            }
            break;
        }
        pthread_mutex_unlock(&e->mu);

        int64_t sent = now_us();
        cJSON *req = cJSON_CreateObject(), *resp = NULL;
        jset_int(req, "ID", e->lease_id);
        uint32_t to = (uint32_t)(interval_us / 1000);
        if (to < 200) to = 200;
        int rc = etcd_post(e, "/v3/lease/keepalive", req, &resp, to);
        cJSON_Delete(req);
        int64_t ttl = rc ? 0 : jint(cJSON_GetObjectItemCaseSensitive(resp, "result"), "TTL");
        cJSON_Delete(resp);
        lk_session_event ev = 0;
        pthread_mutex_lock(&e->mu);
        if (!rc && ttl <= 0) {
            e->expired = true; /* etcd no longer knows the lease */
        } else if (!rc && !e->expired) {
            /* Conservative: count from when the acknowledged request was SENT,
             * minus a 10% margin. */
            int64_t until = sent + ttl * 1000000 - ttl * 100000;
            if (until > e->valid_until_us) e->valid_until_us = until;
            if (e->jeopardy) { e->jeopardy = false; ev = LK_SESSION_SAFE; }
        } else if (rc && !e->jeopardy && !e->expired) {
            e->jeopardy = true;
            ev = LK_SESSION_JEOPARDY;
            BT_WARN("etcd: keep-alive of session %" PRId64 " failed: %s", e->lease_id, bt_errmsg());
        }
        bool jeo = e->jeopardy;
        char *stale = !rc && e->nstale ? e->stale_q[--e->nstale] : NULL;
        pthread_mutex_unlock(&e->mu);
        if (ev) fire_session(e, ev);
        if (stale) dequeue(e, stale, true); /* re-remembered if it fails again */
        free(stale);
        /* In jeopardy retry three times as often. */
        next = sent + (jeo ? interval_us / 3 : interval_us);
    }
    return NULL;
}

/* ---- namespace ----------------------------------------------------------------------- */

static int e_create(void *impl, const char *path, const void *data, size_t n, int flags)
{
    etcd *e = impl;
    if (!strcmp(path, "/")) return bt_err(BT_EEXIST, "\"/\" already exists");
    char parent[LK_MAX_PATH + 1], kn[KCAP], kp[KCAP], kd[KCAP], kpn[KCAP], kc[KCAP];
    const char *name;
    split_path(path, parent, sizeof parent, &name);
    key_of(kn, KCAP, 'n', path);
    key_of(kd, KCAP, 'd', path);
    key_of(kp, KCAP, 'd', parent);
    key_of(kpn, KCAP, 'n', parent);
    child_key(kc, KCAP, parent, name);
    int64_t lease = (flags & LK_EPHEMERAL) ? e->lease_id : 0;
    uint8_t *val = malloc(n + 1);
    if (!val) return BT_ENOMEM;
    val[0] = (flags & LK_DIR) ? 'd' : 'f';
    if (n) memcpy(val + 1, data, n);

    struct txn t;
    txn_init(&t);
    cJSON_AddItemToArray(t.cmp, cmp_rev(kn, NULL, "CREATE", "EQUAL", 0));
    cJSON_AddItemToArray(t.cmp, cmp_rev(kp, NULL, "CREATE", "GREATER", 0));
    /* no children under an ephemeral directory: they would outlive it (bt-lockd
     * refuses them the same way) */
    cJSON_AddItemToArray(t.cmp, cmp_rev(kpn, NULL, "LEASE", "EQUAL", 0));
    cJSON_AddItemToArray(t.succ, op_put(kn, val, n + 1, lease, false));
    cJSON_AddItemToArray(t.succ, op_put(kc, "", 0, lease, false));
    if (flags & LK_DIR) cJSON_AddItemToArray(t.succ, op_put(kd, "", 0, lease, false));
    cJSON_AddItemToArray(t.fail, op_range(kn, NULL, true));
    cJSON_AddItemToArray(t.fail, op_range(kpn, NULL, true));
    free(val);
    cJSON *resp = NULL;
    bool ok = false;
    int rc = txn_run(e, &t, &resp, &ok);
    if (rc) return rc;
    if (!ok) {
        if (resp_kv(resp, 0)) rc = bt_err(BT_EEXIST, "%s already exists", path);
        else if (!resp_kv(resp, 1)) rc = bt_err(BT_ENOTFOUND, "parent %s of %s does not exist", parent, path);
        else if (jint(resp_kv(resp, 1), "lease") != 0)
            rc = bt_err(BT_EFAILED_PRECONDITION, "parent %s of %s is ephemeral", parent, path);
        else rc = bt_err(BT_EFAILED_PRECONDITION, "parent %s of %s is not a directory", parent, path);
    }
    cJSON_Delete(resp);
    return rc;
}

/* Reads node, lock and lock-generation keys in one snapshot; *mod (may be
 * NULL) gets the node key's mod_revision. */
static int read_node(etcd *e, const char *path, uint8_t **data, size_t *n, lk_stat *st, int64_t *mod)
{
    char kn[KCAP], kl[KCAP], kg[KCAP];
    key_of(kn, KCAP, 'n', path);
    key_of(kl, KCAP, 'l', path);
    key_of(kg, KCAP, 'g', path);
    struct txn t;
    txn_init(&t);
    cJSON_AddItemToArray(t.succ, op_range(kn, NULL, false));
    cJSON_AddItemToArray(t.succ, op_range(kl, NULL, false));
    cJSON_AddItemToArray(t.succ, op_range(kg, NULL, true));
    cJSON *resp = NULL;
    bool ok = false;
    int rc = txn_run(e, &t, &resp, &ok);
    if (rc) return rc;
    const cJSON *node = resp_kv(resp, 0), *lock = resp_kv(resp, 1), *gen = resp_kv(resp, 2);
    if (!node) {
        cJSON_Delete(resp);
        return bt_err(BT_ENOTFOUND, "%s does not exist", path);
    }
    uint8_t *v = NULL;
    long vn = kv_value(node, &v);
    if (vn < 1) {
        free(v);
        cJSON_Delete(resp);
        return bt_err(BT_ECORRUPT, "etcd: malformed node record for %s", path);
    }
    if (st) {
        memset(st, 0, sizeof *st);
        st->generation = (uint64_t)jint(node, "version"); /* 1 on create, +1 per set */
        st->is_dir = v[0] == 'd';
        st->size = (size_t)vn - 1;
        st->ephemeral_owner = (uint64_t)jint(node, "lease");
        st->lock_owner = lock ? (uint64_t)jint(lock, "lease") : 0;
        st->lock_generation = gen ? (uint64_t)jint(gen, "mod_revision") : 0;
    }
    if (data && (*data = vn > 1 ? malloc((size_t)vn - 1) : NULL)) memcpy(*data, v + 1, (size_t)vn - 1);
    else if (data && vn > 1) rc = BT_ENOMEM;
    if (n) *n = (size_t)vn - 1;
    if (mod) *mod = jint(node, "mod_revision");
    free(v);
    cJSON_Delete(resp);
    return rc;
}

static int e_get(void *impl, const char *path, uint8_t **data, size_t *n, lk_stat *st)
{ return read_node(impl, path, data, n, st, NULL); }
static int e_stat(void *impl, const char *path, lk_stat *st) { return read_node(impl, path, NULL, NULL, st, NULL); }

static int e_set(void *impl, const char *path, const void *data, size_t n, uint64_t expected)
{
    etcd *e = impl;
    char kn[KCAP], kd[KCAP];
    key_of(kn, KCAP, 'n', path);
    key_of(kd, KCAP, 'd', path);
    uint8_t *val = malloc(n + 1);
    if (!val) return BT_ENOMEM;
    val[0] = 'f';
    if (n) memcpy(val + 1, data, n);
    struct txn t;
    txn_init(&t);
    cJSON_AddItemToArray(t.cmp, cmp_rev(kn, NULL, "CREATE", "GREATER", 0));
    cJSON_AddItemToArray(t.cmp, cmp_rev(kd, NULL, "CREATE", "EQUAL", 0));
    if (expected) cJSON_AddItemToArray(t.cmp, cmp_rev(kn, NULL, "VERSION", "EQUAL", (int64_t)expected));
    /* ignore_lease keeps an ephemeral file attached to its owner's lease. */
    cJSON_AddItemToArray(t.succ, op_put(kn, val, n + 1, 0, true));
    cJSON_AddItemToArray(t.fail, op_range(kn, NULL, false));
    free(val);
    cJSON *resp = NULL;
    bool ok = false;
    int rc = txn_run(e, &t, &resp, &ok);
    if (rc) return rc;
    if (!ok) {
        const cJSON *node = resp_kv(resp, 0);
        if (!node) rc = bt_err(BT_ENOTFOUND, "%s does not exist", path);
        else if (kv_is_dir(node)) rc = bt_err(BT_EINVAL, "%s is a directory", path);
        else rc = bt_err(BT_EFAILED_PRECONDITION, "%s: generation is %" PRId64 ", expected %" PRIu64,
                         path, jint(node, "version"), expected);
    }
    cJSON_Delete(resp);
    return rc;
}

static int e_del(void *impl, const char *path, uint64_t expected)
{
    etcd *e = impl;
    char parent[LK_MAX_PATH + 1], kn[KCAP], kd[KCAP], kc[KCAP], kl[KCAP], kg[KCAP], cs[KCAP], ce[KCAP];
    char qs[KCAP], qe[KCAP];
    const char *name;
    split_path(path, parent, sizeof parent, &name);
    key_of(kn, KCAP, 'n', path);
    key_of(kd, KCAP, 'd', path);
    key_of(kl, KCAP, 'l', path);
    key_of(kg, KCAP, 'g', path);
    child_key(kc, KCAP, parent, name);
    child_range(cs, ce, KCAP, path);
    queue_range(qs, qe, KCAP, path);
    for (int attempt = 0; attempt < 100; attempt++) {
        lk_stat st;
        int64_t mod = 0;
        int rc = read_node(e, path, NULL, NULL, &st, &mod);
        if (rc) return rc;
        if (expected && st.generation != expected)
            return bt_err(BT_EFAILED_PRECONDITION, "%s: generation is %" PRIu64 ", expected %" PRIu64,
                          path, st.generation, expected);
        struct txn t;
        txn_init(&t);
        cJSON_AddItemToArray(t.cmp, cmp_rev(kn, NULL, "MOD", "EQUAL", mod));
        if (st.is_dir) cJSON_AddItemToArray(t.cmp, cmp_rev(cs, ce, "CREATE", "EQUAL", 0));
        const char *keys[] = {kn, kd, kc, kl, kg};
        for (size_t i = 0; i < 5; i++) cJSON_AddItemToArray(t.succ, op_del(keys[i], NULL));
        cJSON_AddItemToArray(t.succ, op_del(qs, qe)); /* waiters then see ENOTFOUND */
        cJSON_AddItemToArray(t.fail, op_range(kn, NULL, true));
        cJSON_AddItemToArray(t.fail, op_range(cs, ce, true));
        cJSON *resp = NULL;
        bool ok = false;
        rc = txn_run(e, &t, &resp, &ok);
        if (rc) return rc;
        const cJSON *node = ok ? NULL : resp_kv(resp, 0);
        bool nonempty = !ok && st.is_dir && resp_kv(resp, 1) != NULL;
        bool same = node && jint(node, "mod_revision") == mod;
        cJSON_Delete(resp);
        if (ok) return BT_OK;
        if (!node) return bt_err(BT_ENOTFOUND, "%s does not exist", path);
        if (nonempty && same) return bt_err(BT_EFAILED_PRECONDITION, "directory %s is not empty", path);
        if (expected) return bt_err(BT_EFAILED_PRECONDITION, "%s changed concurrently", path);
        /* changed between the read and the txn: read again */
    }
    return bt_err(BT_EUNAVAIL, "%s: too much contention to delete", path);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int e_list(void *impl, const char *dir, char ***names, size_t *count)
{
    etcd *e = impl;
    char kn[KCAP], cs[KCAP], ce[KCAP];
    key_of(kn, KCAP, 'n', dir);
    child_range(cs, ce, KCAP, dir);
    struct txn t;
    txn_init(&t);
    cJSON_AddItemToArray(t.succ, op_range(kn, NULL, false));
    cJSON_AddItemToArray(t.succ, op_range(cs, ce, true));
    cJSON *resp = NULL;
    bool ok = false;
    int rc = txn_run(e, &t, &resp, &ok);
    if (rc) return rc;
    const cJSON *node = resp_kv(resp, 0);
    if (!node || !kv_is_dir(node)) {
        rc = node ? bt_err(BT_EINVAL, "%s is not a directory", dir) : bt_err(BT_ENOTFOUND, "%s does not exist", dir);
        cJSON_Delete(resp);
        return rc;
    }
    const cJSON *kvs = resp_kvs(resp, 1);
    size_t m = (size_t)cJSON_GetArraySize(kvs), k = 0, pl = strlen(cs);
    char **out = calloc(m ? m : 1, sizeof *out);
    if (!out) { cJSON_Delete(resp); return BT_ENOMEM; }
    const cJSON *kv;
    cJSON_ArrayForEach(kv, kvs) {
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(kv, "key");
        uint8_t *kb = NULL;
        long kl = b64_dec(cJSON_IsString(key) ? key->valuestring : "", &kb);
        if (kl > (long)pl) out[k++] = strdup((char *)kb + pl);
        free(kb);
        if (k && !out[k - 1]) { lk_free_names(out, k - 1); cJSON_Delete(resp); return BT_ENOMEM; }
    }
    cJSON_Delete(resp);
    qsort(out, k, sizeof *out, name_cmp);
    *names = out;
    *count = k;
    return BT_OK;
}

/* ---- locks --------------------------------------------------------------------------- */

/* One attempt.  `myrev` 0: only if nobody is queued (try_acquire, the
 * fast path); otherwise only if no waiter queued before revision myrev
 * (FIFO), deleting our queue entry on success.  BT_OK (acquired or already
 * ours), BT_EBUSY (*rev = the revision to watch from), BT_ENOTFOUND, or a
 * transport error. */
static int lock_once(etcd *e, const char *path, int64_t myrev, int64_t *rev)
{
    char kn[KCAP], kl[KCAP], kg[KCAP], qs[KCAP], qe[KCAP], kq[KCAP];
    key_of(kn, KCAP, 'n', path);
    key_of(kl, KCAP, 'l', path);
    key_of(kg, KCAP, 'g', path);
    queue_range(qs, qe, KCAP, path);
    queue_key(kq, KCAP, path, e->lease_id);
    struct txn t;
    txn_init(&t);
    cJSON_AddItemToArray(t.cmp, cmp_rev(kn, NULL, "CREATE", "GREATER", 0));
    cJSON_AddItemToArray(t.cmp, cmp_rev(kl, NULL, "CREATE", "EQUAL", 0));
    /* A range compare holds for every key in the range (and for none). */
    if (myrev) cJSON_AddItemToArray(t.cmp, cmp_rev(qs, qe, "CREATE", "GREATER", myrev - 1));
    else cJSON_AddItemToArray(t.cmp, cmp_rev(qs, qe, "CREATE", "EQUAL", 0));
    cJSON_AddItemToArray(t.succ, op_put(kl, e->idstr, strlen(e->idstr), e->lease_id, false));
    cJSON_AddItemToArray(t.succ, op_put(kg, "", 0, 0, false));
    if (myrev) cJSON_AddItemToArray(t.succ, op_del(kq, NULL));
    cJSON_AddItemToArray(t.fail, op_range(kn, NULL, true));
    cJSON_AddItemToArray(t.fail, op_range(kl, NULL, false));
    cJSON *resp = NULL;
    bool ok = false;
    int rc = txn_run(e, &t, &resp, &ok);
    if (rc) return rc;
    if (!ok) {
        const cJSON *lock = resp_kv(resp, 1);
        if (!resp_kv(resp, 0)) rc = bt_err(BT_ENOTFOUND, "%s does not exist", path);
        else if (lock && jint(lock, "lease") == e->lease_id) rc = BT_OK;
        else if (lock) rc = bt_err(BT_EBUSY, "lock %s is held by session %" PRId64, path, jint(lock, "lease"));
        else rc = bt_err(BT_EBUSY, "lock %s has earlier waiters", path);
        *rev = resp_revision(resp);
    }
    cJSON_Delete(resp);
    return rc;
}

/* Queues this session as a waiter for path's lock; *myrev = the queue key's
 * create_revision (its place in line). */
static int enqueue(etcd *e, const char *path, int64_t *myrev)
{
    char kq[KCAP];
    queue_key(kq, KCAP, path, e->lease_id);
    struct txn t;
    txn_init(&t);
    cJSON_AddItemToArray(t.cmp, cmp_rev(kq, NULL, "CREATE", "EQUAL", 0));
    cJSON_AddItemToArray(t.succ, op_put(kq, "", 0, e->lease_id, false));
    cJSON_AddItemToArray(t.fail, op_range(kq, NULL, true));
    cJSON *resp = NULL;
    bool ok = false;
    int rc = txn_run(e, &t, &resp, &ok);
    if (rc) return rc;
    const cJSON *kv = ok ? NULL : resp_kv(resp, 0);
    *myrev = ok ? resp_revision(resp) : kv ? jint(kv, "create_revision") : 0;
    cJSON_Delete(resp);
    return *myrev ? BT_OK : bt_err(BT_EIO, "etcd: lost the queue entry for %s", path);
}

/* Leaves the queue.  If etcd cannot be reached the path is remembered and
 * the keep-alive thread retries after its next success, since a stale entry
 * would block later waiters while this session lives.  True on success. */
static bool dequeue(etcd *e, const char *path, bool remember)
{
    char kq[KCAP];
    queue_key(kq, KCAP, path, e->lease_id);
    struct txn t;
    txn_init(&t);
    cJSON_AddItemToArray(t.succ, op_del(kq, NULL));
    cJSON *resp = NULL;
    bool ok, done = !txn_run(e, &t, &resp, &ok);
    cJSON_Delete(resp);
    if (done || !remember) return done;
    BT_WARN("etcd: leaving the queue of %s: %s (will retry)", path, bt_errmsg());
    pthread_mutex_lock(&e->mu);
    if (e->nstale < 8) e->stale_q[e->nstale++] = strdup(path);
    pthread_mutex_unlock(&e->mu);
    return false;
}

struct delwait { struct rbuf b; bool seen; };

static size_t delwait_write(char *d, size_t sz, size_t nm, void *u)
{
    struct delwait *w = u;
    size_t n = rbuf_write(d, sz, nm, &w->b);
    if (n && strstr(w->b.p, "\"events\"")) { w->seen = true; return 0; } /* stop the stream */
    if (w->b.n > 65536) w->b.n = 0;
    return n;
}

/* Blocks up to wait_ms for a DELETE in [key, end) at or after revision `from`. */
static void wait_deleted(etcd *e, const char *key, const char *end, int64_t from, uint32_t wait_ms)
{
    cJSON *req = cJSON_CreateObject(), *cr = cJSON_AddObjectToObject(req, "create_request");
    jset_b64(cr, "key", key, strlen(key));
    jset_b64(cr, "range_end", end, strlen(end));
    jset_int(cr, "start_revision", from);
    cJSON *f = cJSON_AddArrayToObject(cr, "filters");
    cJSON_AddItemToArray(f, cJSON_CreateString("NOPUT"));
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    CURL *h = pool_get(e);
    int hi = host_cur(e);
    char url[512];
    snprintf(url, sizeof url, "%s/v3/watch", e->hosts[hi]);
    struct delwait w = {{0}, false};
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    int64_t t0 = now_us();
    if (h && body) {
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, delwait_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)wait_ms);
        CURLcode cc = curl_easy_perform(h);
        if (cc == CURLE_COULDNT_CONNECT) host_advance(e, hi);
    }
    /* A failed stream must not turn acquire into a busy loop. */
    int64_t spent_ms = (now_us() - t0) / 1000;
    if (!w.seen && spent_ms < 50 && wait_ms > 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    free(w.b.p);
    curl_slist_free_all(hdr);
    pool_put(e, h);
    free(body);
}

static int e_acquire(void *impl, const char *path, uint32_t timeout_ms)
{
    etcd *e = impl;
    char ws[KCAP], we[KCAP];
    /* Wake on a DELETE of the lock, of a queued waiter or of the node:
     * ["#l", "#r") spans them (other keys only cause a spurious retry). */
    key_of(ws, KCAP, 'l', path);
    key_of(we, KCAP, 'r', path);
    int64_t deadline = timeout_ms ? now_us() + (int64_t)timeout_ms * 1000 : INT64_MAX;
    int64_t rev = 0, myrev = 0;
    int rc = lock_once(e, path, 0, &rev);
    if (rc != BT_EBUSY) return rc;
    rc = enqueue(e, path, &myrev);
    if (rc) return rc;
    for (;;) {
        rc = lock_once(e, path, myrev, &rev);
        if (rc != BT_EBUSY) break;
        int64_t left = deadline - now_us();
        if (left <= 0) {
            rc = bt_err(BT_ETIMEDOUT, "lock %s not acquired within %u ms", path, timeout_ms);
            break;
        }
        int64_t slice = left / 1000 < 1000 ? left / 1000 : 1000;
        wait_deleted(e, ws, we, rev + 1, (uint32_t)(slice > 0 ? slice : 1));
    }
    if (rc != BT_ECLOSED) dequeue(e, path, true); /* a successful txn removed it already; harmless */
    return rc;
}

static int e_try_acquire(void *impl, const char *path)
{
    int64_t rev;
    return lock_once(impl, path, 0, &rev);
}

static int e_release(void *impl, const char *path)
{
    etcd *e = impl;
    char kl[KCAP];
    key_of(kl, KCAP, 'l', path);
    struct txn t;
    txn_init(&t);
    cJSON_AddItemToArray(t.cmp, cmp_value(kl, e->idstr));
    cJSON_AddItemToArray(t.succ, op_del(kl, NULL));
    cJSON *resp = NULL;
    bool ok = false;
    int rc = txn_run(e, &t, &resp, &ok);
    if (rc) return rc;
    cJSON_Delete(resp);
    return ok ? BT_OK : bt_err(BT_EFAILED_PRECONDITION, "lock %s is not held by this session", path);
}

static int e_get_sequencer(void *impl, const char *path, char *buf, size_t cap)
{
    etcd *e = impl;
    char kl[KCAP];
    key_of(kl, KCAP, 'l', path);
    struct txn t;
    txn_init(&t);
    cJSON_AddItemToArray(t.succ, op_range(kl, NULL, false));
    cJSON *resp = NULL;
    bool ok = false;
    int rc = txn_run(e, &t, &resp, &ok);
    if (rc) return rc;
    const cJSON *lock = resp_kv(resp, 0);
    if (!lock || jint(lock, "lease") != e->lease_id) {
        rc = bt_err(BT_EFAILED_PRECONDITION, "lock %s is not held by this session", path);
    } else {
        int w = snprintf(buf, cap, "%s:%" PRId64, path, jint(lock, "create_revision"));
        if (w < 0 || (size_t)w >= cap) rc = bt_err(BT_EINVAL, "sequencer buffer of %zu bytes too small", cap);
    }
    cJSON_Delete(resp);
    return rc;
}

static int e_check_sequencer(void *impl, const char *seq)
{
    etcd *e = impl;
    const char *colon = strrchr(seq, ':');
    if (!colon || colon == seq || (size_t)(colon - seq) > LK_MAX_PATH || !colon[1])
        return bt_err(BT_EINVAL, "malformed sequencer \"%.64s\"", seq);
    char path[LK_MAX_PATH + 1];
    snprintf(path, sizeof path, "%.*s", (int)(colon - seq), seq);
    char *end;
    unsigned long long gen = strtoull(colon + 1, &end, 10);
    if (*end || gen == 0) return bt_err(BT_EINVAL, "malformed sequencer \"%.64s\"", seq);
    int rc = lk_check_path(path);
    if (rc) return rc;
    char kl[KCAP];
    key_of(kl, KCAP, 'l', path);
    struct txn t;
    txn_init(&t);
    cJSON_AddItemToArray(t.succ, op_range(kl, NULL, true));
    cJSON *resp = NULL;
    bool ok = false;
    rc = txn_run(e, &t, &resp, &ok);
    if (rc) return rc;
    const cJSON *lock = resp_kv(resp, 0);
    if (!lock || (uint64_t)jint(lock, "create_revision") != gen)
        rc = bt_err(BT_EFAILED_PRECONDITION, "stale sequencer %s", seq);
    cJSON_Delete(resp);
    return rc;
}

/* ---- watches ------------------------------------------------------------------------- */

struct ewatch {
    struct ewatch *next;
    uint64_t id;
    lk_watch_fn fn;
    void *arg;
};

/* One etcd watch stream; owned by the watch thread once handed over. */
struct estream {
    struct estream *next;
    etcd *e;
    uint64_t wid;
    int mask;                 /* LK_WATCH_* kinds this stream reports */
    char key[KCAP], end[KCAP];  /* all keys of the path: ["/btlk/p<path>#", "/btlk/p<path>$") */
    char path[LK_MAX_PATH + 1];
    int64_t next_rev;         /* first revision not yet delivered */
    CURL *h;                  /* non-NULL while running */
    struct curl_slist *hdr;
    char *body;
    int host;
    struct rbuf buf;
    int64_t retry_at;
};

/* Calls the watch's callback unless it was removed (checked under cb_mu, so
 * no callback runs after lk_unwatch returns). */
static void dispatch(etcd *e, uint64_t wid, lk_watch_kind kind, const char *path)
{
    pthread_mutex_lock(&e->cb_mu);
    pthread_mutex_lock(&e->w_mu);
    struct ewatch *w = e->watches;
    while (w && w->id != wid) w = w->next;
    lk_watch_fn fn = w ? w->fn : NULL;
    void *arg = w ? w->arg : NULL;
    pthread_mutex_unlock(&e->w_mu);
    if (fn) {
        tl_in_cb = true;
        fn(arg, kind, path);
        tl_in_cb = false;
    }
    pthread_mutex_unlock(&e->cb_mu);
}

/* One watch message.  The key's letter after the path prefix says what
 * changed: n = node, c = a child entry, l = the lock (q, g, d are ignored). */
static void stream_line(struct estream *s, const char *line)
{
    cJSON *j = cJSON_Parse(line);
    if (!j) return;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "result");
    int64_t compact = r ? jint(r, "compact_revision") : 0;
    if (compact && compact > s->next_rev) s->next_rev = compact; /* history lost: resume from there */
    /* Events of one revision arrive in one message: skip only revisions
     * delivered by an earlier message (before a reconnect). */
    int64_t floor = s->next_rev, top = 0;
    size_t pl = strlen(s->key);
    const cJSON *ev, *events = r ? cJSON_GetObjectItemCaseSensitive(r, "events") : NULL;
    cJSON_ArrayForEach(ev, events) {
        const cJSON *kv = cJSON_GetObjectItemCaseSensitive(ev, "kv");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(ev, "type");
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(kv, "key");
        bool del = cJSON_IsString(ty) && !strcmp(ty->valuestring, "DELETE");
        int64_t mod = jint(kv, "mod_revision");
        if (mod < floor) continue;
        if (mod > top) top = mod;
        uint8_t *k = NULL;
        long kl = b64_dec(cJSON_IsString(key) ? key->valuestring : "", &k);
        char what = kl > (long)pl ? (char)k[pl] : 0;
        free(k);
        lk_watch_kind kind = 0;
        if (what == 'n') kind = del ? LK_WATCH_DELETED : LK_WATCH_CHANGED;
        else if (what == 'c') kind = LK_WATCH_CHILDREN;
        else if (what == 'l' && del) kind = LK_WATCH_LOCK_RELEASED;
        if (kind & s->mask) dispatch(s->e, s->wid, kind, s->path);
    }
    if (top >= s->next_rev) s->next_rev = top + 1;
    cJSON_Delete(j);
}

static size_t stream_write(char *d, size_t sz, size_t nm, void *u)
{
    struct estream *s = u;
    size_t n = rbuf_write(d, sz, nm, &s->buf);
    if (!n) return 0;
    char *nl;
    while ((nl = memchr(s->buf.p, '\n', s->buf.n))) {
        *nl = 0;
        stream_line(s, s->buf.p);
        size_t rest = s->buf.n - (size_t)(nl + 1 - s->buf.p);
        memmove(s->buf.p, nl + 1, rest);
        s->buf.n = rest;
        s->buf.p[rest] = 0;
    }
    return n;
}

static void stream_stop(etcd *e, struct estream *s)
{
    if (!s->h) return;
    curl_multi_remove_handle(e->multi, s->h);
    curl_easy_cleanup(s->h);
    curl_slist_free_all(s->hdr);
    free(s->body);
    s->h = NULL;
    s->hdr = NULL;
    s->body = NULL;
    s->buf.n = 0;
}

static void stream_start(etcd *e, struct estream *s)
{
    cJSON *req = cJSON_CreateObject(), *cr = cJSON_AddObjectToObject(req, "create_request");
    jset_b64(cr, "key", s->key, strlen(s->key));
    if (s->end[0]) jset_b64(cr, "range_end", s->end, strlen(s->end));
    jset_int(cr, "start_revision", s->next_rev);
    s->body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    s->h = curl_easy_init();
    s->hdr = curl_slist_append(NULL, "Content-Type: application/json");
    s->host = host_cur(e);
    char url[512];
    snprintf(url, sizeof url, "%s/v3/watch", e->hosts[s->host]);
    curl_easy_setopt(s->h, CURLOPT_URL, url);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdr);
    curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, stream_write);
    curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
    curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->timeout_ms);
    curl_easy_setopt(s->h, CURLOPT_TCP_KEEPALIVE, 1L); /* notice a dead member */
    curl_easy_setopt(s->h, CURLOPT_TCP_KEEPIDLE, 5L);
    curl_easy_setopt(s->h, CURLOPT_TCP_KEEPINTVL, 5L);
    curl_multi_add_handle(e->multi, s->h);
}

static void free_stream(etcd *e, struct estream *s)
{
    stream_stop(e, s);
    free(s->buf.p);
    free(s);
}

static void *watch_main(void *arg)
{
    etcd *e = arg;
    struct estream *mine = NULL;   /* streams owned by this thread */
    for (;;) {
        pthread_mutex_lock(&e->w_mu);
        bool stop = e->w_stop;
        for (struct estream *s; (s = e->pending); mine = s) { e->pending = s->next; s->next = mine; }
        /* drop streams whose watch is gone */
        for (struct estream **pp = &mine; *pp;) {
            struct ewatch *w = e->watches;
            while (w && w->id != (*pp)->wid) w = w->next;
            if (w && !stop) { pp = &(*pp)->next; continue; }
            struct estream *s = *pp;
            *pp = s->next;
            free_stream(e, s);
        }
        pthread_mutex_unlock(&e->w_mu);
        if (stop) break;
        if (check_open(e)) { /* the session ended: watches end with it */
            pthread_mutex_lock(&e->w_mu);
            while (e->watches) { struct ewatch *w = e->watches; e->watches = w->next; free(w); }
            pthread_mutex_unlock(&e->w_mu);
        }
        int64_t now = now_us();
        for (struct estream *s = mine; s; s = s->next)
            if (!s->h && now >= s->retry_at) stream_start(e, s);
        int running;
        curl_multi_perform(e->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(e->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            struct estream *s = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            if (!s) continue;
            if (m->data.result == CURLE_COULDNT_CONNECT) host_advance(e, s->host);
            BT_DEBUG("etcd: watch on %s ended (%s); reconnecting", s->path, curl_easy_strerror(m->data.result));
            stream_stop(e, s);
            s->retry_at = now_us() + 200000;
        }
        curl_multi_poll(e->multi, NULL, 0, 200, NULL);
    }
    while (mine) { struct estream *s = mine; mine = s->next; free_stream(e, s); }
    return NULL;
}

static struct estream *new_stream(etcd *e, uint64_t wid, int mask, const char *path, int64_t from)
{
    struct estream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->e = e;
    s->wid = wid;
    s->mask = mask;
    s->next_rev = from;
    snprintf(s->path, sizeof s->path, "%s", path);
    path_range(s->key, s->end, KCAP, path);
    return s;
}

static int e_watch(void *impl, const char *path, int mask, lk_watch_fn fn, void *arg, uint64_t *id)
{
    etcd *e = impl;
    /* The current revision: streams start just after it, so every change
     * after lk_watch returns is delivered whenever the stream connects. */
    struct txn t;
    txn_init(&t);
    char kn[KCAP];
    key_of(kn, KCAP, 'n', path);
    cJSON_AddItemToArray(t.succ, op_range(kn, NULL, true));
    cJSON *resp = NULL;
    bool ok = false;
    int rc = txn_run(e, &t, &resp, &ok);
    if (rc) return rc;
    int64_t from = resp_revision(resp) + 1;
    cJSON_Delete(resp);
    /* One stream over all keys of the path: its events come in revision
     * order, so the callbacks see the changes in the order they happened. */
    struct ewatch *w = calloc(1, sizeof *w);
    struct estream *st = new_stream(e, 0, mask, path, from);
    if (!w || !st) {
        free(w);
        free(st);
        return BT_ENOMEM;
    }
    w->fn = fn;
    w->arg = arg;
    pthread_mutex_lock(&e->w_mu);
    w->id = ++e->next_wid;
    w->next = e->watches;
    e->watches = w;
    st->wid = w->id;
    st->next = e->pending;
    e->pending = st;
    pthread_mutex_unlock(&e->w_mu);
    curl_multi_wakeup(e->multi);
    if (id) *id = w->id;
    return BT_OK;
}

static int e_unwatch(void *impl, uint64_t id)
{
    etcd *e = impl;
    int rc = check_open(e); /* after expiry the watch thread dropped every watch */
    if (rc) return rc;
    /* cb_mu makes a running callback finish first (unless we are it). */
    if (!tl_in_cb) pthread_mutex_lock(&e->cb_mu);
    pthread_mutex_lock(&e->w_mu);
    struct ewatch **pp = &e->watches;
    while (*pp && (*pp)->id != id) pp = &(*pp)->next;
    struct ewatch *w = *pp;
    if (w) *pp = w->next;
    pthread_mutex_unlock(&e->w_mu);
    if (!tl_in_cb) pthread_mutex_unlock(&e->cb_mu);
    if (!w) return bt_err(BT_ENOTFOUND, "no watch %" PRIu64, id);
    free(w);
    curl_multi_wakeup(e->multi);
    return BT_OK;
}

/* ---- open / close ------------------------------------------------------------------- */

static uint64_t e_session_id(void *impl) { return (uint64_t)((etcd *)impl)->lease_id; }
static bool e_session_valid(void *impl) { return check_open(impl) == BT_OK; }

static int64_t e_valid_until(void *impl)
{
    etcd *e = impl;
    if (check_open(e)) return 0;
    pthread_mutex_lock(&e->mu);
    int64_t v = e->valid_until_us;
    pthread_mutex_unlock(&e->mu);
    return v;
}

static void free_etcd(etcd *e)
{
    for (int i = 0; i < e->nstale; i++) free(e->stale_q[i]);
    for (int i = 0; i < e->npool; i++) curl_easy_cleanup(e->pool[i]);
    while (e->watches) { struct ewatch *w = e->watches; e->watches = w->next; free(w); }
    while (e->pending) { struct estream *s = e->pending; e->pending = s->next; free(s); }
    if (e->multi) curl_multi_cleanup(e->multi);
    for (int i = 0; i < e->nhosts; i++) free(e->hosts[i]);
    free(e->hosts);
    pthread_mutex_destroy(&e->host_mu);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->cb_mu);
    pthread_mutex_destroy(&e->pool_mu);
    pthread_mutex_destroy(&e->w_mu);
    free(e);
}

/* Revoking the lease makes etcd delete the session's locks, queue entries
 * and ephemeral files at once. */
static void revoke(etcd *e)
{
    cJSON *req = cJSON_CreateObject(), *resp = NULL;
    jset_int(req, "ID", e->lease_id);
    int rc = etcd_post(e, "/v3/lease/revoke", req, &resp, e->timeout_ms);
    if (rc && rc != BT_ECLOSED) /* BT_ECLOSED: etcd had already expired it */
        BT_WARN("etcd: revoking session %" PRId64 ": %s", e->lease_id, bt_errmsg());
    cJSON_Delete(req);
    cJSON_Delete(resp);
}

static void e_close(void *impl)
{
    etcd *e = impl;
    pthread_mutex_lock(&e->w_mu);
    e->w_stop = true;
    pthread_mutex_unlock(&e->w_mu);
    curl_multi_wakeup(e->multi);
    pthread_join(e->w_thread, NULL);
    pthread_mutex_lock(&e->mu);
    e->closing = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->ka_thread, NULL);
    revoke(e); /* also after a local expiry: the lease may still be alive in etcd */
    free_etcd(e);
}

static const struct lk_backend_ops etcd_ops = {
    .close = e_close,
    .session_id = e_session_id,
    .session_valid = e_session_valid,
    .lease_valid_until_us = e_valid_until,
    .create = e_create,
    .get = e_get,
    .set = e_set,
    .del = e_del,
    .stat = e_stat,
    .list = e_list,
    .acquire = e_acquire,
    .try_acquire = e_try_acquire,
    .release = e_release,
    .get_sequencer = e_get_sequencer,
    .check_sequencer = e_check_sequencer,
    .watch = e_watch,
    .unwatch = e_unwatch,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static int parse_hosts(etcd *e, const char *hosts)
{
    if (!hosts || !*hosts) return bt_err(BT_EINVAL, "etcd URL has no host:port");
    const char *p = hosts;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == 0 || len > 400 || memchr(p, '/', len))
            return bt_err(BT_EINVAL, "etcd URL: bad endpoint \"%.*s\" (want host:port)", (int)(len > 80 ? 80 : len), p);
        const char *colon = memchr(p, ':', len);
        if (!colon || colon == p || colon + 1 == p + len)
            return bt_err(BT_EINVAL, "etcd URL: endpoint \"%.*s\" lacks host:port", (int)len, p);
        char **nh = realloc(e->hosts, (size_t)(e->nhosts + 1) * sizeof *nh);
        if (!nh) return BT_ENOMEM;
        e->hosts = nh;
        if (!(e->hosts[e->nhosts] = malloc(len + 8))) return BT_ENOMEM;
        snprintf(e->hosts[e->nhosts++], len + 8, "http://%.*s", (int)len, p);
        p += len;
        if (*p == ',') p++;
    }
    return BT_OK;
}

int lk_etcd_open(const char *hosts, const lk_options *o, const struct lk_backend_ops **ops, void **impl)
{
    pthread_once(&curl_once, curl_init_once);
    etcd *e = calloc(1, sizeof *e);
    if (!e) return BT_ENOMEM;
    pthread_mutex_init(&e->host_mu, NULL);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_mutex_init(&e->cb_mu, NULL);
    pthread_mutex_init(&e->pool_mu, NULL);
    pthread_mutex_init(&e->w_mu, NULL);
    e->timeout_ms = o->timeout_ms ? o->timeout_ms : 5000;
    e->on_session = o->on_session;
    e->arg = o->arg;
    e->multi = curl_multi_init();
    int rc = e->multi ? parse_hosts(e, hosts) : BT_ENOMEM;
    if (rc) { free_etcd(e); return rc; }

    /* TTL: lease_ms rounded up to whole seconds (etcd's unit), at least 1. */
    uint32_t lease_ms = o->lease_ms ? o->lease_ms : 10000;
    int64_t want = (lease_ms + 999) / 1000;
    cJSON *req = cJSON_CreateObject(), *resp = NULL;
    jset_int(req, "TTL", want);
    int64_t sent = now_us();
    rc = etcd_post(e, "/v3/lease/grant", req, &resp, e->timeout_ms);
    cJSON_Delete(req);
    if (rc) { free_etcd(e); return rc; }
    e->lease_id = jint(resp, "ID");
    e->ttl_s = jint(resp, "TTL");
    cJSON_Delete(resp);
    if (e->lease_id == 0 || e->ttl_s <= 0) {
        free_etcd(e);
        return bt_err(BT_EIO, "etcd: lease/grant returned no lease");
    }
    snprintf(e->idstr, sizeof e->idstr, "%" PRId64, e->lease_id);
    e->valid_until_us = sent + e->ttl_s * 1000000 - e->ttl_s * 100000;

    /* The root directory exists implicitly: create its records once. */
    char kn[KCAP], kd[KCAP];
    key_of(kn, KCAP, 'n', "/");
    key_of(kd, KCAP, 'd', "/");
    struct txn t;
    txn_init(&t);
    cJSON_AddItemToArray(t.cmp, cmp_rev(kn, NULL, "CREATE", "EQUAL", 0));
    cJSON_AddItemToArray(t.succ, op_put(kn, "d", 1, 0, false));
    cJSON_AddItemToArray(t.succ, op_put(kd, "", 0, 0, false));
    bool ok;
    rc = txn_run(e, &t, &resp, &ok);
    cJSON_Delete(resp);
    if (!rc && pthread_create(&e->ka_thread, NULL, keepalive_main, e)) rc = bt_err(BT_ENOMEM, "pthread_create failed");
    if (!rc && pthread_create(&e->w_thread, NULL, watch_main, e)) {
        pthread_mutex_lock(&e->mu);
        e->closing = true;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->ka_thread, NULL);
        rc = bt_err(BT_ENOMEM, "pthread_create failed");
    }
    if (rc) {
        revoke(e);
        free_etcd(e);
        return rc;
    }
    BT_INFO("etcd: session %" PRId64 " (TTL %" PRId64 " s) on %s", e->lease_id, e->ttl_s, hosts);
    *ops = &etcd_ops;
    *impl = e;
    return BT_OK;
}

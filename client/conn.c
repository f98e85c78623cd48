/* client/conn.c: the client connection pool and the retry policy (see conn.h). */
#include "client/conn.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rpc_codec.h"
#include "common/status.h"

#define MAX_HOST 256 /* a hostname is at most 253 characters */
#define MAX_COUNT 1024 /* cap on conns_per_server and max_attempts */

/* The clients of one address, in a bucket chain of the pool's map. */
struct conn_entry {
    struct conn_entry *next;
    char *addr;
    char host[MAX_HOST];
    uint16_t port;
    unsigned rr;          /* round-robin counter, under the pool's mu */
    rpc_client *c[];      /* conns_per_server slots, created on first use */
};

struct bt_conn_pool {
    bt_conn_pool_opts o;       /* defaults filled in; immutable */
    rpc_client_opts copts;     /* for every client; immutable */
    pthread_mutex_t mu;        /* protects buckets, nbuckets, n and every entry */
    struct conn_entry **buckets;
    size_t nbuckets;           /* a power of two */
    size_t n;                  /* entries */
};

int bt_conn_pool_new(const bt_conn_pool_opts *o, bt_conn_pool **out)
{
    *out = NULL;
    bt_conn_pool_opts d = o ? *o : (bt_conn_pool_opts){0};
    if (d.conns_per_server < 0 || d.connect_timeout_ms < 0 || d.request_timeout_ms < 0 ||
        d.max_attempts < 0 || d.backoff_min_ms < 0 || d.backoff_max_ms < 0)
        return bt_err(BT_EINVAL, "conn pool: negative option");
    if (!d.conns_per_server) d.conns_per_server = 2;
    if (!d.connect_timeout_ms) d.connect_timeout_ms = 2000;
    if (!d.request_timeout_ms) d.request_timeout_ms = 10000;
    if (!d.max_attempts) d.max_attempts = 5;
    if (!d.backoff_min_ms) d.backoff_min_ms = 20;
    if (!d.backoff_max_ms) d.backoff_max_ms = 1000;
    if (!d.max_frame) d.max_frame = RPC_DEFAULT_MAX_FRAME;
    if (d.conns_per_server > MAX_COUNT || d.max_attempts > MAX_COUNT ||
        d.backoff_max_ms < d.backoff_min_ms || d.backoff_max_ms > 1000000000 ||
        !rpc_max_frame_valid(d.max_frame))
        return bt_err(BT_EINVAL, "conn pool: invalid options");
    bt_conn_pool *p = calloc(1, sizeof *p);
    if (!p) return BT_ENOMEM;
    p->o = d;
    /* Half the retry backoff, so each retry's wait outlasts the client's
     * fail-fast window and really tries to connect (see conn.h). */
    int bmin = d.backoff_min_ms / 2 ? d.backoff_min_ms / 2 : 1;
    int bmax = d.backoff_max_ms / 2 > bmin ? d.backoff_max_ms / 2 : bmin;
    p->copts = (rpc_client_opts){.connect_timeout_ms = d.connect_timeout_ms,
                                 .request_timeout_ms = d.request_timeout_ms,
                                 .backoff_min_ms = bmin, .backoff_max_ms = bmax,
                                 .max_frame = d.max_frame};
    p->nbuckets = 16;
    p->buckets = calloc(p->nbuckets, sizeof *p->buckets);
    if (!p->buckets) {
        free(p);
        return BT_ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    *out = p;
    return BT_OK;
}

/* Frees the clients of an entry already unlinked from the map, then the entry. */
static void entry_free(const bt_conn_pool *p, struct conn_entry *e)
{
    for (int i = 0; i < p->o.conns_per_server; i++) rpc_client_free(e->c[i]);
    free(e->addr);
    free(e);
}

void bt_conn_pool_free(bt_conn_pool *p)
{
    if (!p) return;
    for (size_t b = 0; b < p->nbuckets; b++) {
        for (struct conn_entry *e = p->buckets[b], *next; e; e = next) {
            next = e->next;
            entry_free(p, e);
        }
    }
    free(p->buckets);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int bt_conn_parse_addr(const char *addr, char *host, size_t host_cap, uint16_t *port)
{
    if (!addr) return bt_err(BT_EINVAL, "address is NULL");
    const char *colon = strrchr(addr, ':');
    if (!colon) return bt_err(BT_EINVAL, "address '%s': no ':port'", addr);
    size_t hlen = (size_t)(colon - addr);
    if (!hlen) return bt_err(BT_EINVAL, "address '%s': empty host", addr);
    if (hlen >= host_cap || hlen >= MAX_HOST)
        return bt_err(BT_EINVAL, "address '%s': host too long", addr);
    for (size_t i = 0; i < hlen; i++) {
        char ch = addr[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
        if (!ok) return bt_err(BT_EINVAL, "address '%s': bad character in host", addr);
    }
    unsigned long v = 0;
    const char *s = colon + 1;
    if (!*s) return bt_err(BT_EINVAL, "address '%s': empty port", addr);
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return bt_err(BT_EINVAL, "address '%s': bad port", addr);
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535) return bt_err(BT_EINVAL, "address '%s': port over 65535", addr);
    }
    if (!v) return bt_err(BT_EINVAL, "address '%s': port 0", addr);
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)v;
    return BT_OK;
}

static size_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (size_t)h;
}

/* The slot pointing at addr's entry, or at the NULL ending its chain.  Under mu. */
static struct conn_entry **find_slot(bt_conn_pool *p, const char *addr)
{
    struct conn_entry **pp = &p->buckets[hash_str(addr) & (p->nbuckets - 1)];
    while (*pp && strcmp((*pp)->addr, addr)) pp = &(*pp)->next;
    return pp;
}

/* Doubles the bucket array once entries outnumber buckets (best effort). Under mu. */
static void maybe_grow(bt_conn_pool *p)
{
    if (p->n < p->nbuckets) return;
    size_t nb = p->nbuckets * 2;
    struct conn_entry **t = calloc(nb, sizeof *t);
    if (!t) return; /* longer chains, still correct */
    for (size_t b = 0; b < p->nbuckets; b++) {
        for (struct conn_entry *e = p->buckets[b], *next; e; e = next) {
            next = e->next;
            size_t i = hash_str(e->addr) & (nb - 1);
            e->next = t[i];
            t[i] = e;
        }
    }
    free(p->buckets);
    p->buckets = t;
    p->nbuckets = nb;
}

/* Creates addr's entry, with no clients yet, and links it at *slot.  Under mu. */
static int entry_new(bt_conn_pool *p, const char *addr, struct conn_entry **slot,
                     struct conn_entry **out)
{
    struct conn_entry *e =
        calloc(1, sizeof *e + (size_t)p->o.conns_per_server * sizeof e->c[0]);
    if (!e) return BT_ENOMEM;
    int rc = bt_conn_parse_addr(addr, e->host, sizeof e->host, &e->port);
    if (!rc && !(e->addr = strdup(addr))) rc = BT_ENOMEM;
    if (rc) {
        free(e);
        return rc;
    }
    *slot = e;
    p->n++;
    *out = e;
    return BT_OK;
}

int bt_conn_get(bt_conn_pool *p, const char *addr, rpc_client **out)
{
    *out = NULL;
    if (!addr) return bt_err(BT_EINVAL, "address is NULL");
    pthread_mutex_lock(&p->mu);
    struct conn_entry **slot = find_slot(p, addr), *e = *slot;
    int rc = e ? BT_OK : entry_new(p, addr, slot, &e);
    if (!rc) {
        rpc_client **c = &e->c[e->rr++ % (unsigned)p->o.conns_per_server];
        if (!*c) rc = rpc_client_new(e->host, e->port, &p->copts, c);
        *out = *c;
        maybe_grow(p);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* xorshift64*, one state per thread, seeded from the clock on first use. */
static uint64_t rand64(void)
{
    static _Thread_local uint64_t s;
    if (!s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ (uintptr_t)&s;
        if (!s) s = 0x9e3779b97f4a7c15ull;
    }
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
}

/* Waits before attempt number `attempt` + 1 (attempt >= 1 failed already). */
static void backoff(const bt_conn_pool *p, int attempt)
{
    int64_t w = p->o.backoff_min_ms;
    for (int i = 1; i < attempt && w < p->o.backoff_max_ms; i++) w *= 2;
    if (w > p->o.backoff_max_ms) w = p->o.backoff_max_ms;
    int64_t ms = w - w / 2 + (int64_t)(rand64() % (uint64_t)(w / 2 + 1)); /* in [w/2, w] */
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

int bt_conn_call(bt_conn_pool *p, const char *addr, uint16_t method, const void *req, size_t len,
                 bt_buf *resp, int timeout_ms, int flags)
{
    if (flags & ~BT_CALL_IDEMPOTENT) return bt_err(BT_EINVAL, "conn call: unknown flags %#x", flags);
    if (resp) bt_buf_clear(resp);
    int attempts = (flags & BT_CALL_IDEMPOTENT) ? p->o.max_attempts : 1;
    int rc = BT_OK;
    for (int i = 1; i <= attempts; i++) {
        if (i > 1) backoff(p, i - 1);
        rpc_client *c;
        rc = bt_conn_get(p, addr, &c);
        if (rc) return rc;
        rc = rpc_call(c, method, req, len, resp, timeout_ms);
        if (rc != BT_EUNAVAIL && rc != BT_ETIMEDOUT) return rc;
    }
    return bt_err(rc, "%s: method %u: %s after %d attempt%s", addr, (unsigned)method,
                  bt_errname(rc), attempts, attempts == 1 ? "" : "s");
}

int bt_conn_call_async(bt_conn_pool *p, const char *addr, uint16_t method, const void *req,
                       size_t len, int timeout_ms, rpc_done_fn done, void *arg)
{
    rpc_client *c;
    int rc = bt_conn_get(p, addr, &c);
    return rc ? rc : rpc_call_async(c, method, req, len, timeout_ms, done, arg);
}

void bt_conn_pool_drop(bt_conn_pool *p, const char *addr)
{
    if (!addr) return;
    pthread_mutex_lock(&p->mu);
    struct conn_entry **slot = find_slot(p, addr), *e = *slot;
    if (e) {
        *slot = e->next;
        p->n--;
    }
    pthread_mutex_unlock(&p->mu);
    /* Outside mu: a BT_ECLOSED completion may call into the pool. */
    if (e) entry_free(p, e);
}

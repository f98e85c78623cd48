/* tabletserver/server.c: bt-tabletserver (see server.h for the contract).
 *
 * Reading order: the tablet map (lookup with a reference, drain on unload),
 * the worker pools and jobs, the write committer (batching), reads, scans,
 * conditional writes, admin commands, the RPC dispatch table, registration in
 * the lock service and the supervisor loop, open/close.
 */
#include "tabletserver/server.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/meta.h"
#include "common/coding.h"
#include "common/log.h"
#include "common/rpc.h"
#include "common/status.h"
#include "lockservice/lock.h"
#include "tabletserver/bulk.h"
#include "tabletserver/manifest.h"
#include "tabletserver/ts_proto.h"

#define ROW_STRIPES 1024
#define WRITE_BATCH_MAX 4096          /* jobs one committer takes at once */
#define WRITE_BATCH_BYTES (32u << 20) /* ...and request bytes */
#define MASTER_LOCK "/bt/master"
#define AUTO_SPLIT_JOB 0              /* internal admin job (no RPC): payload = tablet id */
#define AUTO_SPLIT_CHECK_US 1000000   /* how often the supervisor looks for big tablets */
#define AUTO_SPLIT_BACKOFF_US (60 * 1000000LL) /* after a failed automatic split */
#define COMMIT_SPLIT_TRIES 4          /* commit_split attempts (100, 400, 1600 ms apart) */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The CLOCK_REALTIME deadline ms from now, for pthread_cond_timedwait. */
static struct timespec deadline_ms(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return ts;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- tablet map ----------------------------------------------------------------- */

typedef struct entry {
    uint64_t id;
    ts_tablet *t;
    char *table;
    char *dir;                 /* relative to the data dir, as the master named it */
    atomic_int refs;           /* requests using t right now */
    atomic_bool serving;       /* false while unloading/splitting: lookups fail */
    atomic_bool auto_queued;   /* an automatic split of it is queued */
    atomic_llong auto_after_us;/* no automatic split before (CLOCK_MONOTONIC) */
} entry;

/* ---- jobs and pools --------------------------------------------------------------- */

typedef struct job {
    struct job *next;
    rpc_ctx *ctx;
    uint16_t method;
    size_t len;
    uint8_t payload[];
} job;

struct ts_server;
typedef void (*pool_fn)(struct ts_server *s, job *list);

typedef struct pool {
    const char *name;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    size_t queued;
    bool stop;
    int batch;                 /* jobs a worker takes at once (1, or WRITE_BATCH_MAX) */
    pool_fn fn;
    struct ts_server *srv;
    pthread_t *threads;
    int n;
} pool;

typedef struct scanner {
    struct scanner *next;      /* hash chain */
    uint64_t id;
    entry *e;                  /* holds a reference */
    ts_scanner *sc;
    ts_column_ref *cols;
    uint8_t *req;              /* the open request: the filter points into it */
    uint32_t max_rows, max_bytes;
    int64_t last_used_us;
    bool busy;
} scanner;

#define SCAN_BUCKETS 256

struct ts_server {
    ts_server_options o;
    char *bind, *id, *addr, *data_dir, *lock_url;
    /* The engine of this incarnation, NULL between a lost session and the
     * next registration.  Replaced with admin_mu and eng_mu both held; admin
     * work reads it under admin_mu, the loop thread (status) under eng_mu. */
    ts_engine *eng;
    char *log_rel;             /* its log dir, relative to data_dir (same locking) */
    pthread_mutex_t eng_mu;
    atomic_bool closing;       /* ts_server_close started: no automatic splits */
    int64_t next_auto_check_us;/* supervisor thread only */
    rpc_server *rpc;
    int64_t start_wall_us;

    /* serialises what changes the set of tablets (load, unload, split, the
     * drop after a lost session), so two loads of one tablet never race */
    pthread_mutex_t admin_mu;

    /* lock service */
    pthread_mutex_t lk_mu;     /* guards lk replacement (supervisor) against users */
    lk_client *lk;
    atomic_llong lease_until;  /* CLOCK_MONOTONIC us; 0 = not serving */
    char lock_path[LK_MAX_PATH];

    /* tablets */
    pthread_rwlock_t map_mu;
    entry **tablets;           /* sorted by id */
    size_t n_tablets, cap_tablets;
    pthread_mutex_t drain_mu;
    pthread_cond_t drain_cv;
    pthread_mutex_t stripes[ROW_STRIPES];

    /* scanners */
    pthread_mutex_t scan_mu;
    scanner *scan_tab[SCAN_BUCKETS];
    uint64_t next_scanner;
    size_t n_scanners;

    pool reads, scans, writes, conds, admin;

    /* supervisor */
    pthread_mutex_t sup_mu;
    pthread_cond_t sup_cv;
    bool stop_requested, expired, file_deleted;

    /* counters */
    atomic_ullong n_reads, n_writes, n_scanned;
};

/* ---- replies --------------------------------------------------------------------- */

/* Answers with an error code and this thread's detail text (if any). */
static void reply_err(rpc_ctx *ctx, int rc)
{
    const char *m = bt_errmsg();
    if (!m[0]) m = bt_strerror(rc);
    rpc_respond(ctx, rc, m, strlen(m));
}

static void reply(rpc_ctx *ctx, int rc, const bt_buf *b)
{
    if (rc) reply_err(ctx, rc);
    else rpc_respond(ctx, BT_OK, b ? b->data : NULL, b ? b->len : 0);
}

/* ---- lease --------------------------------------------------------------------------- */

/* True while this server may serve: its session's lease is surely valid.
 * lease_until is refreshed by the supervisor and zeroed when the session
 * expires; after a SIGSTOP the monotonic clock has moved past it. */
static bool lease_ok(ts_server *s)
{
    return mono_us() < atomic_load(&s->lease_until);
}

static int not_serving_lease(void)
{
    return bt_err(BT_EUNAVAIL, "tablet server has no valid lock-service lease; not serving");
}

/* ---- tablet map ------------------------------------------------------------------------ */

/* Index of the first entry with id >= id (map_mu held). */
static size_t map_find(const ts_server *s, uint64_t id)
{
    size_t lo = 0, hi = s->n_tablets;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->tablets[mid]->id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The serving entry for id with a reference taken, or NULL (BT_ENOTSERVING detail set). */
static entry *tablet_get(ts_server *s, uint64_t id)
{
    entry *e = NULL;
    pthread_rwlock_rdlock(&s->map_mu);
    size_t i = map_find(s, id);
    if (i < s->n_tablets && s->tablets[i]->id == id && atomic_load(&s->tablets[i]->serving)) {
        e = s->tablets[i];
        atomic_fetch_add(&e->refs, 1);
    }
    pthread_rwlock_unlock(&s->map_mu);
    if (!e) bt_err(BT_ENOTSERVING, "tablet %llu is not served here", (unsigned long long)id);
    return e;
}

static void tablet_put(ts_server *s, entry *e)
{
    /* e may be freed as soon as refs reaches 0: read serving before.  A drain
     * that starts between the two is covered by tablet_drain's timed wait. */
    bool serving = atomic_load(&e->serving);
    if (atomic_fetch_sub(&e->refs, 1) == 1 && !serving) {
        pthread_mutex_lock(&s->drain_mu);
        pthread_cond_broadcast(&s->drain_cv);
        pthread_mutex_unlock(&s->drain_mu);
    }
}

static int map_insert(ts_server *s, entry *e)
{
    pthread_rwlock_wrlock(&s->map_mu);
    if (s->n_tablets == s->cap_tablets) {
        size_t cap = s->cap_tablets ? 2 * s->cap_tablets : 16;
        entry **n = realloc(s->tablets, cap * sizeof *n);
        if (!n) {
            pthread_rwlock_unlock(&s->map_mu);
            return BT_ENOMEM;
        }
        s->tablets = n;
        s->cap_tablets = cap;
    }
    size_t i = map_find(s, e->id);
    memmove(&s->tablets[i + 1], &s->tablets[i], (s->n_tablets - i) * sizeof *s->tablets);
    s->tablets[i] = e;
    s->n_tablets++;
    pthread_rwlock_unlock(&s->map_mu);
    return BT_OK;
}

static void map_remove(ts_server *s, entry *e)
{
    pthread_rwlock_wrlock(&s->map_mu);
    size_t i = map_find(s, e->id);
    if (i < s->n_tablets && s->tablets[i] == e) {
        memmove(&s->tablets[i], &s->tablets[i + 1], (s->n_tablets - i - 1) * sizeof *s->tablets);
        s->n_tablets--;
    }
    pthread_rwlock_unlock(&s->map_mu);
}

static void entry_free(entry *e)
{
    if (!e) return;
    free(e->table);
    free(e->dir);
    free(e);
}

static void close_scanners_of(ts_server *s, entry *e);

/* Stops new requests on e and waits until the running ones are done.  The
 * entry stays in the map (lookups fail) until map_remove. */
static void tablet_drain(ts_server *s, entry *e)
{
    atomic_store(&e->serving, false);
    close_scanners_of(s, e);
    pthread_mutex_lock(&s->drain_mu);
    while (atomic_load(&e->refs) > 0) {
        struct timespec ts = deadline_ms(5);
        pthread_cond_timedwait(&s->drain_cv, &s->drain_mu, &ts);
    }
    pthread_mutex_unlock(&s->drain_mu);
}

/* ---- row locks: atomicity of check-and-mutate and read-modify-write ------------------ */

static unsigned stripe_of(uint64_t tablet, const uint8_t *row, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ tablet;
    for (size_t i = 0; i < n; i++) h = (h ^ row[i]) * 1099511628211ull;
    return (unsigned)(h % ROW_STRIPES);
}

static int cmp_unsigned(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

/* Sorts and dedups stripe indexes, then locks them in order (no deadlock). */
static size_t stripes_lock(ts_server *s, unsigned *idx, size_t n)
{
    qsort(idx, n, sizeof *idx, cmp_unsigned);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || idx[m - 1] != idx[i]) idx[m++] = idx[i];
    for (size_t i = 0; i < m; i++) pthread_mutex_lock(&s->stripes[idx[i]]);
    return m;
}

static void stripes_unlock(ts_server *s, const unsigned *idx, size_t m)
{
    for (size_t i = m; i-- > 0;) pthread_mutex_unlock(&s->stripes[idx[i]]);
}

/* ---- pools -------------------------------------------------------------------------- */

static void *pool_main(void *arg)
{
    pool *p = arg;
    char name[16];
    snprintf(name, sizeof name, "bt-%s", p->name);
    pthread_setname_np(pthread_self(), name);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
        if (!p->head) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        job *list = p->head, *last = list;
        size_t bytes = last->len;
        for (int k = 1; k < p->batch && last->next && bytes < WRITE_BATCH_BYTES; k++) {
            last = last->next;
            bytes += last->len;
        }
        p->head = last->next;
        if (!p->head) p->tail = NULL;
        last->next = NULL;
        bool more = p->head != NULL;
        pthread_mutex_unlock(&p->mu);
        if (more) pthread_cond_signal(&p->cv); /* let a sibling take the rest */
        p->fn(p->srv, list);
    }
}

static int pool_start(pool *p, ts_server *s, const char *name, int n, int batch, pool_fn fn)
{
    p->name = name;
    p->srv = s;
    p->fn = fn;
    p->batch = batch;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = calloc((size_t)n, sizeof *p->threads);
    if (!p->threads) return BT_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_main, p))
            return bt_err(BT_EIO, "cannot start %s thread", name);
        p->n++;
    }
    return BT_OK;
}

/* Stops the workers after the queue is drained (callers stopped the RPC
 * server first, so nothing new arrives). */
static void pool_stop(pool *p)
{
    if (!p->threads) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    p->threads = NULL;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

static void pool_push(pool *p, job *j)
{
    pthread_mutex_lock(&p->mu);
    j->next = NULL;
    if (p->tail) p->tail->next = j;
    else p->head = j;
    p->tail = j;
    pthread_mutex_unlock(&p->mu);
    pthread_cond_signal(&p->cv);
}

/* ---- writes: batch committer ------------------------------------------------------
 * A committer takes every queued write job (up to WRITE_BATCH_MAX), decodes
 * them, groups their rows by tablet and applies each tablet's rows with one
 * ts_tablet_mutate_rows (one log record, one fsync).  A row that fails
 * validation fails alone: it is reported and the rest is retried without it. */

typedef struct wjob wjob;
typedef struct wrow {
    wjob *w;                   /* the job this row came from */
    size_t slot;               /* index of this row's status in its job */
    size_t order;              /* arrival order within the batch (qsort is not stable) */
    uint64_t tablet;
    ts_row_mutation rm;
    ts_mutation *muts;         /* owned (decoder allocation) */
} wrow;

struct wjob {                  /* per-job decode state */
    int *status;               /* one per row (MUTATE_ROW: one) */
    size_t n;
    int decode_rc;
    char detail[256];          /* first failure's detail */
};

static int cmp_wrow(const void *a, const void *b)
{
    const wrow *x = a, *y = b;
    if (x->tablet != y->tablet) return x->tablet < y->tablet ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

static void wjob_fail(wjob *w, size_t slot, int rc)
{
    if (w->status[slot]) return;
    w->status[slot] = rc;
    bool first = !w->detail[0];
    if (first) snprintf(w->detail, sizeof w->detail, "%s", bt_errmsg()[0] ? bt_errmsg() : bt_strerror(rc));
}

/* Decodes one job's rows into rows[] (grown as needed). */
static int decode_write(job *j, wjob *w, wrow **rows, size_t *nrows, size_t *caprows)
{
    bt_msg_reader r;
    bt_msg_reader_init(&r, j->payload, j->len);
    uint64_t n = 1;
    if (j->method == TSP_MUTATE_ROWS && bt_msg_get_varint(&r, &n)) return bt_msg_reader_status(&r);
    if (n == 0 || n > TS_MAX_BATCH_ROWS || n > bt_msg_remaining(&r))
        return bt_err(BT_EINVAL, "a batch needs 1..%d rows, got %llu", TS_MAX_BATCH_ROWS,
                      (unsigned long long)n);
    w->status = calloc(n, sizeof *w->status);
    if (!w->status) return BT_ENOMEM;
    w->n = n;
    for (size_t i = 0; i < n; i++) {
        if (*nrows == *caprows) {
            size_t cap = *caprows ? 2 * *caprows : 256;
            wrow *nr = realloc(*rows, cap * sizeof *nr);
            if (!nr) return BT_ENOMEM;
            *rows = nr;
            *caprows = cap;
        }
        wrow *x = &(*rows)[*nrows];
        memset(x, 0, sizeof *x);
        x->w = w;
        x->slot = i;
        x->order = *nrows;
        int rc = bt_msg_get_varint(&r, &x->tablet);
        if (!rc) rc = bt_msg_get_bytes(&r, &x->rm.row, &x->rm.row_len);
        if (!rc) rc = tsp_get_mutations(&r, &x->muts, &x->rm.n);
        if (rc) return rc;
        x->rm.muts = x->muts;
        (*nrows)++;
    }
    return j->method == TSP_MUTATE_ROW ? bt_msg_reader_done(&r) : BT_OK;
}

/* Applies rows[0..n) (all for one tablet) with one log record, dropping rows
 * that fail validation one at a time. */
static void fail_rows(wrow *rows, size_t n, int rc)
{
    for (size_t i = 0; i < n; i++) wjob_fail(rows[i].w, rows[i].slot, rc);
}

static void commit_tablet(ts_server *s, wrow *rows, size_t n)
{
    entry *e = tablet_get(s, rows[0].tablet);
    if (!e) {
        fail_rows(rows, n, BT_ENOTSERVING);
        return;
    }
    ts_row_mutation *rm = malloc(n * sizeof *rm);
    size_t *map = malloc(n * sizeof *map);
    unsigned *st = malloc(n * sizeof *st);
    if (!rm || !map || !st) {
        free(rm); free(map); free(st);
        tablet_put(s, e);
        fail_rows(rows, n, BT_ENOMEM);
        return;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        rm[m] = rows[i].rm;
        map[m] = i;
        st[m] = stripe_of(rows[i].tablet, rows[i].rm.row, rows[i].rm.row_len);
        m++;
    }
    size_t nst = stripes_lock(s, st, m);
    int rc = BT_OK;
    while (m > 0) {
        int failed = -1;
        rc = lease_ok(s) ? ts_tablet_mutate_rows(e->t, rm, (int)m, &failed) : not_serving_lease();
        if (!rc || failed < 0) break;
        /* one bad row: report it alone and retry the others */
        wjob_fail(rows[map[failed]].w, rows[map[failed]].slot, rc);
        memmove(&rm[failed], &rm[failed + 1], (m - (size_t)failed - 1) * sizeof *rm);
        memmove(&map[failed], &map[failed + 1], (m - (size_t)failed - 1) * sizeof *map);
        m--;
    }
    stripes_unlock(s, st, nst);
    /* the lease must still hold when the write is acknowledged */
    if (!rc && m > 0 && !lease_ok(s)) rc = bt_err(BT_EUNAVAIL, "lock-service lease lost during the write; not acknowledged");
    if (!rc) atomic_fetch_add(&s->n_writes, m);
    for (size_t i = 0; rc && i < m; i++) wjob_fail(rows[map[i]].w, rows[map[i]].slot, rc);
    free(rm); free(map); free(st);
    tablet_put(s, e);
}

static void answer_write(job *j, wjob *w)
{
    if (w->decode_rc) {
        bt_err(w->decode_rc, "%s", w->detail[0] ? w->detail : bt_strerror(w->decode_rc));
        reply_err(j->ctx, w->decode_rc);
        return;
    }
    if (j->method == TSP_MUTATE_ROW) {
        if (w->status[0]) {
            bt_err(w->status[0], "%s", w->detail);
            reply_err(j->ctx, w->status[0]);
        } else {
            rpc_respond(j->ctx, BT_OK, NULL, 0);
        }
        return;
    }
    bt_buf b = {0};
    bt_msg_writer mw;
    bt_msg_writer_init(&mw, &b);
    tsp_put_batch_result(&mw, w->status, w->n, w->detail);
    if (bt_msg_writer_status(&mw)) reply_err(j->ctx, BT_ENOMEM);
    else rpc_respond(j->ctx, BT_OK, b.data, b.len);
    bt_buf_free(&b);
}

static void run_writes(ts_server *s, job *list)
{
    size_t njobs = 0;
    for (job *j = list; j; j = j->next) njobs++;
    wjob *wj = calloc(njobs, sizeof *wj);
    wrow *rows = NULL;
    size_t nrows = 0, caprows = 0, k = 0;
    if (!wj) {
        for (job *j = list, *nx; j; j = nx) {
            nx = j->next;
            reply_err(j->ctx, BT_ENOMEM);
            free(j);
        }
        return;
    }
    for (job *j = list; j; j = j->next, k++) {
        size_t before = nrows;
        bt_errclear();
        int rc = decode_write(j, &wj[k], &rows, &nrows, &caprows);
        if (rc) {
            for (size_t i = before; i < nrows; i++) free(rows[i].muts);
            nrows = before;
            wj[k].decode_rc = rc;
            snprintf(wj[k].detail, sizeof wj[k].detail, "%s", bt_errmsg()[0] ? bt_errmsg() : bt_strerror(rc));
        }
    }
    if (nrows > 1) qsort(rows, nrows, sizeof *rows, cmp_wrow);
    for (size_t i = 0; i < nrows;) {
        size_t e = i + 1;
        while (e < nrows && rows[e].tablet == rows[i].tablet) e++;
        commit_tablet(s, rows + i, e - i);
        i = e;
    }
    for (size_t i = 0; i < nrows; i++) free(rows[i].muts);
    free(rows);
    k = 0;
    for (job *j = list, *nx; j; j = nx, k++) {
        nx = j->next;
        answer_write(j, &wj[k]);
        free(wj[k].status);
        free(j);
    }
    free(wj);
}

/* ---- point reads ---------------------------------------------------------------------- */

/* A point read.  With no_io it fails with BT_EBUSY instead of touching the
 * disk (the loop thread's attempt; the read pool retries). */
static int do_read(ts_server *s, const uint8_t *payload, size_t len, bool no_io, bt_buf *out)
{
    bt_msg_reader r;
    bt_msg_reader_init(&r, payload, len);
    uint64_t tid;
    const uint8_t *row;
    size_t rl;
    ts_read_options ro;
    ts_column_ref *cols = NULL;
    int rc = bt_msg_get_varint(&r, &tid);
    if (!rc) rc = bt_msg_get_bytes(&r, &row, &rl);
    if (!rc) rc = tsp_get_filter(&r, &ro, &cols);
    if (!rc) rc = bt_msg_reader_done(&r);
    if (rc) {
        free(cols);
        return rc;
    }
    if (!lease_ok(s)) {
        free(cols);
        return not_serving_lease();
    }
    entry *e = tablet_get(s, tid);
    if (!e) {
        free(cols);
        return BT_ENOTSERVING;
    }
    ts_row res;
    ro.no_io = no_io;
    rc = ts_tablet_read_row(e->t, row, rl, &ro, &res);
    tablet_put(s, e);
    free(cols);
    if (rc == BT_ENOTFOUND) return bt_err(BT_ENOTFOUND, "row not found");
    if (rc) return rc;
    atomic_fetch_add(&s->n_reads, 1);
    bt_msg_writer w;
    bt_msg_writer_init(&w, out);
    tsp_put_row(&w, &res);
    ts_row_free(&res);
    return bt_msg_writer_status(&w);
}

static void run_reads(ts_server *s, job *list)
{
    for (job *j = list, *nx; j; j = nx) {
        nx = j->next;
        bt_buf out = {0};
        bt_errclear();
        reply(j->ctx, do_read(s, j->payload, j->len, false, &out), &out);
        bt_buf_free(&out);
        free(j);
    }
}

/* ---- scans ------------------------------------------------------------------------------ */

static void scanner_free(ts_server *s, scanner *x)
{
    if (x->sc) ts_scanner_close(x->sc);
    if (x->e) tablet_put(s, x->e);
    free(x->cols);
    free(x->req);
    free(x);
}

/* Removes and returns scanner id if it is idle (marks it busy), else NULL. */
static scanner *scanner_take(ts_server *s, uint64_t id, int *rc)
{
    pthread_mutex_lock(&s->scan_mu);
    scanner *x = s->scan_tab[id % SCAN_BUCKETS];
    while (x && x->id != id) x = x->next;
    if (!x) *rc = bt_err(BT_ENOTFOUND, "scanner %llu does not exist (closed, finished or expired)",
                         (unsigned long long)id);
    else if (x->busy) *rc = bt_err(BT_EBUSY, "scanner %llu is serving another request", (unsigned long long)id);
    else x->busy = true;
    pthread_mutex_unlock(&s->scan_mu);
    return *rc ? NULL : x;
}

static void scanner_unlink_locked(ts_server *s, scanner *x)
{
    scanner **pp = &s->scan_tab[x->id % SCAN_BUCKETS];
    while (*pp != x) pp = &(*pp)->next;
    *pp = x->next;
    s->n_scanners--;
}

/* Ends a request on x: frees it if `finished`, else makes it idle again. */
static void scanner_release(ts_server *s, scanner *x, bool finished)
{
    /* an unload waiting for this scanner's reference closes only idle
     * scanners: one that was busy then must end here */
    if (!atomic_load(&x->e->serving)) finished = true;
    pthread_mutex_lock(&s->scan_mu);
    x->busy = false;
    x->last_used_us = mono_us();
    if (finished) scanner_unlink_locked(s, x);
    pthread_mutex_unlock(&s->scan_mu);
    if (finished) scanner_free(s, x);
}

/* Unlinks the idle scanners `pick` selects and frees them (outside scan_mu). */
static void close_scanners_if(ts_server *s, bool (*pick)(const scanner *x, const void *arg),
                              const void *arg, const char *why)
{
    scanner *dead = NULL;
    pthread_mutex_lock(&s->scan_mu);
    for (int b = 0; b < SCAN_BUCKETS; b++)
        for (scanner **pp = &s->scan_tab[b]; *pp;) {
            scanner *x = *pp;
            if (!x->busy && pick(x, arg)) {
                *pp = x->next;
                s->n_scanners--;
                x->next = dead;
                dead = x;
            } else {
                pp = &x->next;
            }
        }
    pthread_mutex_unlock(&s->scan_mu);
    for (scanner *x = dead, *nx; x; x = nx) {
        nx = x->next;
        if (why) BT_INFO("closing scanner %llu: %s", (unsigned long long)x->id, why);
        scanner_free(s, x);
    }
}

static bool of_entry(const scanner *x, const void *e) { return e == NULL || x->e == e; }
static bool idle_before(const scanner *x, const void *cutoff) { return x->last_used_us < *(const int64_t *)cutoff; }

/* Closes every scanner of e (NULL: all) that is idle; busy ones end with
 * their batch (their next call fails as the entry no longer serves). */
static void close_scanners_of(ts_server *s, entry *e) { close_scanners_if(s, of_entry, e, NULL); }

static void expire_scanners(ts_server *s)
{
    int64_t cutoff = mono_us() - (int64_t)s->o.scanner_lease_ms * 1000;
    close_scanners_if(s, idle_before, &cutoff, "idle past its lease");
}

/* Fills one batch from x into out; *done when the scan is over. */
static int scan_batch(ts_server *s, scanner *x, bt_buf *out, bool *done)
{
    bt_buf rows = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &rows);
    uint32_t n = 0;
    int rc = BT_OK;
    *done = false;
    while (n < x->max_rows && rows.len < x->max_bytes) {
        if (!atomic_load(&x->e->serving) || !lease_ok(s)) {
            rc = bt_err(BT_ENOTSERVING, "tablet %llu stopped serving during the scan",
                        (unsigned long long)x->e->id);
            break;
        }
        ts_row row;
        rc = ts_scanner_next(x->sc, &row);
        if (rc == BT_ENOTFOUND) {
            rc = BT_OK;
            *done = true;
            break;
        }
        if (rc) break;
        tsp_put_row(&w, &row);
        n++;
    }
    if (!rc) rc = bt_msg_writer_status(&w);
    if (!rc) {
        atomic_fetch_add(&s->n_scanned, n);
        bt_msg_writer hw;
        bt_msg_writer_init(&hw, out);
        tsp_put_scan_header(&hw, *done ? 0 : x->id, *done);
        rc = bt_msg_writer_status(&hw);
        if (!rc) rc = bt_buf_append(out, rows.data, rows.len);
    }
    bt_buf_free(&rows);
    return rc;
}

static int scan_open(ts_server *s, job *j, bt_buf *out)
{
    scanner *x = calloc(1, sizeof *x);
    if (!x) return BT_ENOMEM;
    /* the filter points into the request: the scanner keeps it */
    x->req = malloc(j->len ? j->len : 1);
    if (!x->req) {
        free(x);
        return BT_ENOMEM;
    }
    memcpy(x->req, j->payload, j->len);
    bt_msg_reader r;
    bt_msg_reader_init(&r, x->req, j->len);
    uint64_t tid, max_rows, max_bytes;
    ts_read_options ro;
    int rc = bt_msg_get_varint(&r, &tid);
    if (!rc) rc = tsp_get_filter(&r, &ro, &x->cols);
    if (!rc) rc = bt_msg_get_varint(&r, &max_rows);
    if (!rc) rc = bt_msg_get_varint(&r, &max_bytes);
    if (!rc) rc = bt_msg_reader_done(&r);
    if (!rc && !lease_ok(s)) rc = not_serving_lease();
    if (!rc && !(x->e = tablet_get(s, tid))) rc = BT_ENOTSERVING;
    if (!rc) rc = ts_tablet_scan(x->e->t, &ro, &x->sc);
    if (rc) {
        scanner_free(s, x);
        return rc;
    }
    x->max_rows = max_rows == 0 || max_rows > 1000000 ? TSP_SCAN_DEFAULT_ROWS : (uint32_t)max_rows;
    x->max_bytes = max_bytes == 0 ? TSP_SCAN_DEFAULT_BYTES
                 : max_bytes > TSP_SCAN_MAX_BYTES ? TSP_SCAN_MAX_BYTES : (uint32_t)max_bytes;
    x->busy = true;
    pthread_mutex_lock(&s->scan_mu);
    x->id = ++s->next_scanner;
    x->next = s->scan_tab[x->id % SCAN_BUCKETS];
    s->scan_tab[x->id % SCAN_BUCKETS] = x;
    s->n_scanners++;
    pthread_mutex_unlock(&s->scan_mu);
    bool done;
    rc = scan_batch(s, x, out, &done);
    scanner_release(s, x, done || rc);
    return rc;
}

static int scan_next(ts_server *s, job *j, bt_buf *out)
{
    bt_msg_reader r;
    bt_msg_reader_init(&r, j->payload, j->len);
    uint64_t id;
    int rc = bt_msg_get_varint(&r, &id);
    if (!rc) rc = bt_msg_reader_done(&r);
    if (rc) return rc;
    scanner *x = scanner_take(s, id, &rc);
    if (!x) return rc;
    if (j->method == TSP_SCAN_CLOSE) {
        scanner_release(s, x, true);
        return BT_OK;
    }
    bool done;
    rc = scan_batch(s, x, out, &done);
    scanner_release(s, x, done || rc);
    return rc;
}

static void run_scans(ts_server *s, job *list)
{
    for (job *j = list, *nx; j; j = nx) {
        nx = j->next;
        bt_buf out = {0};
        bt_errclear();
        int rc = j->method == TSP_SCAN_OPEN ? scan_open(s, j, &out) : scan_next(s, j, &out);
        reply(j->ctx, rc, &out);
        bt_buf_free(&out);
        free(j);
    }
}

/* ---- conditional writes ----------------------------------------------------------------- */

/* Mutates one row under its row lock (held by the caller), checking the lease
 * before and after. */
static int cond_mutate(ts_server *s, entry *e, const uint8_t *row, size_t rl, const ts_mutation *m, int n)
{
    if (n == 0) return BT_OK;
    if (!lease_ok(s)) return not_serving_lease();
    int rc = ts_tablet_mutate_row(e->t, row, rl, m, n);
    if (!rc) atomic_fetch_add(&s->n_writes, 1);
    if (!rc && !lease_ok(s)) rc = bt_err(BT_EUNAVAIL, "lock-service lease lost during the write; not acknowledged");
    return rc;
}

static int do_check_and_mutate(ts_server *s, entry *e, bt_msg_reader *r, const uint8_t *row, size_t rl,
                               bt_buf *out)
{
    ts_read_options pred;
    ts_column_ref *cols = NULL;
    ts_mutation *mt = NULL, *mf = NULL;
    int nt = 0, nf = 0;
    int rc = tsp_get_filter(r, &pred, &cols);
    if (!rc) rc = tsp_get_mutations(r, &mt, &nt);
    if (!rc) rc = tsp_get_mutations(r, &mf, &nf);
    if (!rc) rc = bt_msg_reader_done(r);
    if (!rc) {
        unsigned st = stripe_of(e->id, row, rl);
        pthread_mutex_lock(&s->stripes[st]);
        ts_row res;
        rc = ts_tablet_read_row(e->t, row, rl, &pred, &res);
        bool matched = rc == BT_OK;
        if (matched) ts_row_free(&res);
        if (rc == BT_OK || rc == BT_ENOTFOUND)
            rc = matched ? cond_mutate(s, e, row, rl, mt, nt) : cond_mutate(s, e, row, rl, mf, nf);
        pthread_mutex_unlock(&s->stripes[st]);
        if (!rc) rc = bt_buf_put_varint64(out, matched);
    }
    free(cols);
    free(mt);
    free(mf);
    return rc;
}

static int64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return (int64_t)v;
}

static void put_be64(uint8_t *p, int64_t x)
{
    uint64_t v = (uint64_t)x;
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

/* The newest cell of (family, qualifier) in res, or NULL. */
static const ts_cell *newest_cell(const ts_row *res, const tsp_rmw_rule *rule)
{
    for (size_t i = 0; i < res->n_cells; i++) {
        const ts_cell *c = &res->cells[i];
        if (c->family_len == rule->family_len && !memcmp(c->family, rule->family, c->family_len) &&
            c->qualifier_len == rule->qualifier_len &&
            (!c->qualifier_len || !memcmp(c->qualifier, rule->qualifier, c->qualifier_len)))
            return c; /* cells come newest first within a column */
    }
    return NULL;
}

static int do_rmw(ts_server *s, entry *e, bt_msg_reader *r, const uint8_t *row, size_t rl, bt_buf *out)
{
    tsp_rmw_rule *rules = NULL;
    int n = 0;
    int rc = tsp_get_rmw_rules(r, &rules, &n);
    if (!rc) rc = bt_msg_reader_done(r);
    if (rc) return rc;
    ts_column_ref *cols = calloc((size_t)n, sizeof *cols);
    ts_mutation *m = calloc((size_t)n, sizeof *m);
    ts_cell *cells = calloc((size_t)n, sizeof *cells);
    uint8_t **vals = calloc((size_t)n, sizeof *vals);
    if (!cols || !m || !cells || !vals) rc = BT_ENOMEM;
    for (int i = 0; !rc && i < n; i++)
        cols[i] = (ts_column_ref){ rules[i].family, rules[i].family_len,
                                   rules[i].qualifier ? rules[i].qualifier : (const uint8_t *)"",
                                   rules[i].qualifier_len };
    unsigned st = stripe_of(e->id, row, rl);
    pthread_mutex_lock(&s->stripes[st]);
    ts_row cur = {0};
    bool have = false;
    if (!rc) {
        ts_read_options ro = { .columns = cols, .n_columns = n, .versions = 1 };
        rc = ts_tablet_read_row(e->t, row, rl, &ro, &cur);
        have = rc == BT_OK;
        if (rc == BT_ENOTFOUND) rc = BT_OK;
    }
    int64_t now = wall_us();
    for (int i = 0; !rc && i < n; i++) {
        const ts_cell *c = have ? newest_cell(&cur, &rules[i]) : NULL;
        /* earlier rules on the same column in this request count too */
        for (int k = i - 1; k >= 0; k--)
            if (cols[k].family_len == cols[i].family_len && !memcmp(cols[k].family, cols[i].family, cols[i].family_len) &&
                cols[k].qualifier_len == cols[i].qualifier_len &&
                !memcmp(cols[k].qualifier, cols[i].qualifier, cols[i].qualifier_len)) {
                c = &cells[k];
                break;
            }
        size_t vl;
        if (rules[i].kind == TSP_RMW_INCREMENT) {
            if (c && c->value_len != 8) {
                rc = bt_err(BT_EFAILED_PRECONDITION, "increment: %.*s:%.*s holds %zu bytes, not an 8-byte big-endian int64",
                            (int)rules[i].family_len, rules[i].family, (int)(rules[i].qualifier_len > 64 ? 64 : rules[i].qualifier_len),
                            (const char *)rules[i].qualifier, c->value_len);
                break;
            }
            vl = 8;
            vals[i] = malloc(8);
            if (!vals[i]) { rc = BT_ENOMEM; break; }
            put_be64(vals[i], (int64_t)((uint64_t)(c ? get_be64(c->value) : 0) + (uint64_t)rules[i].increment));
        } else {
            size_t old = c ? c->value_len : 0;
            vl = old + rules[i].append_len;
            if (vl > TS_MAX_VALUE) { rc = bt_err(BT_ETOOBIG, "append: value would be %zu bytes (max %u)", vl, TS_MAX_VALUE); break; }
            vals[i] = malloc(vl ? vl : 1);
            if (!vals[i]) { rc = BT_ENOMEM; break; }
            if (old) memcpy(vals[i], c->value, old);
            if (rules[i].append_len) memcpy(vals[i] + old, rules[i].append, rules[i].append_len);
        }
        int64_t ts = now;
        if (c && c->timestamp >= ts) ts = c->timestamp + 1; /* stay the newest version */
        m[i] = (ts_mutation){ .type = TS_SET_CELL, .family = rules[i].family, .family_len = rules[i].family_len,
                              .qualifier = rules[i].qualifier, .qualifier_len = rules[i].qualifier_len,
                              .timestamp = ts, .value = vals[i], .value_len = vl };
        cells[i] = (ts_cell){ rules[i].family, rules[i].family_len, rules[i].qualifier, rules[i].qualifier_len,
                              ts, vals[i], vl };
    }
    if (!rc) rc = cond_mutate(s, e, row, rl, m, n);
    pthread_mutex_unlock(&s->stripes[st]);
    if (!rc) {
        ts_row res = { row, rl, cells, (size_t)n };
        bt_msg_writer w;
        bt_msg_writer_init(&w, out);
        tsp_put_row(&w, &res);
        rc = bt_msg_writer_status(&w);
    }
    if (have) ts_row_free(&cur);
    for (int i = 0; vals && i < n; i++) free(vals[i]);
    free(vals); free(cells); free(m); free(cols); free(rules);
    return rc;
}

static void run_conds(ts_server *s, job *list)
{
    for (job *j = list, *nx; j; j = nx) {
        nx = j->next;
        bt_buf out = {0};
        bt_errclear();
        bt_msg_reader r;
        bt_msg_reader_init(&r, j->payload, j->len);
        uint64_t tid;
        const uint8_t *row;
        size_t rl;
        int rc = bt_msg_get_varint(&r, &tid);
        if (!rc) rc = bt_msg_get_bytes(&r, &row, &rl);
        entry *e = NULL;
        if (!rc && !lease_ok(s)) rc = not_serving_lease();
        if (!rc && !(e = tablet_get(s, tid))) rc = BT_ENOTSERVING;
        if (!rc) rc = j->method == TSP_CHECK_AND_MUTATE ? do_check_and_mutate(s, e, &r, row, rl, &out)
                                                        : do_rmw(s, e, &r, row, rl, &out);
        if (e) tablet_put(s, e);
        reply(j->ctx, rc, &out);
        bt_buf_free(&out);
        free(j);
    }
}

/* ---- admin ---------------------------------------------------------------------------------- */

/* Checks that seqr is a current sequencer of /bt/master. */
static int check_sequencer(ts_server *s, const uint8_t *seqr, size_t n)
{
    char buf[LK_MAX_SEQUENCER];
    size_t pl = strlen(MASTER_LOCK);
    if (n == 0) return bt_err(BT_EFAILED_PRECONDITION, "this command needs the master's sequencer");
    if (n >= sizeof buf || n <= pl || memcmp(seqr, MASTER_LOCK, pl) || seqr[pl] != ':')
        return bt_err(BT_EFAILED_PRECONDITION, "not a sequencer of %s", MASTER_LOCK);
    memcpy(buf, seqr, n);
    buf[n] = '\0';
    pthread_mutex_lock(&s->lk_mu);
    int rc = s->lk ? lk_check_sequencer(s->lk, buf) : bt_err(BT_EUNAVAIL, "no lock-service session");
    pthread_mutex_unlock(&s->lk_mu);
    if (rc == BT_EFAILED_PRECONDITION || rc == BT_ENOTFOUND)
        return bt_err(BT_EFAILED_PRECONDITION, "stale master sequencer %s: a newer master holds %s",
                      buf, MASTER_LOCK);
    return rc;
}

static char *join_dir(const ts_server *s, const char *rel, size_t n)
{
    size_t dl = strlen(s->data_dir);
    char *p = malloc(dl + n + 2);
    if (!p) return NULL;
    memcpy(p, s->data_dir, dl);
    p[dl] = '/';
    memcpy(p + dl + 1, rel, n);
    p[dl + 1 + n] = '\0';
    return p;
}

/* mkdir -p for the parents of path */
static int make_parents(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int r = mkdir(path, 0755);
        int e = errno;
        *p = '/';
        if (r && e != EEXIST) return bt_err(bt_from_errno(e), "mkdir %s: %s", path, strerror(e));
    }
    return BT_OK;
}

static bool schema_equal(const ts_schema *a, const ts_schema *b)
{
    bt_buf x = {0}, y = {0};
    bt_msg_writer wa, wb;
    bt_msg_writer_init(&wa, &x);
    bt_msg_writer_init(&wb, &y);
    tsp_put_schema(&wa, a);
    tsp_put_schema(&wb, b);
    bool eq = x.len == y.len && !bt_msg_writer_status(&wa) && !bt_msg_writer_status(&wb) &&
              !memcmp(x.data, y.data, x.len);
    bt_buf_free(&x);
    bt_buf_free(&y);
    return eq;
}

static entry *entry_new(uint64_t id, ts_tablet *t, const char *table, size_t tl, const char *dir, size_t dl)
{
    entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->id = id;
    e->t = t;
    e->table = strndup(table, tl);
    e->dir = strndup(dir, dl);
    atomic_init(&e->refs, 0);
    atomic_init(&e->serving, true);
    if (!e->table || !e->dir) {
        entry_free(e);
        return NULL;
    }
    return e;
}

static bool tablet_loaded(ts_server *s, uint64_t id)
{
    pthread_rwlock_rdlock(&s->map_mu);
    size_t i = map_find(s, id);
    bool found = i < s->n_tablets && s->tablets[i]->id == id;
    pthread_rwlock_unlock(&s->map_mu);
    return found;
}

static int put_loaded(bt_buf *out)
{
    bt_msg_writer w;
    bt_msg_writer_init(&w, out);
    tsp_load_answer a = { .state = TSP_LOAD_STATE_LOADED };
    tsp_put_load_answer(&w, &a);
    return bt_msg_writer_status(&w);
}

/* The answer for a parent that was split already: its children, from the marker. */
static int put_split_answer(const tsp_tablet *td, const ts_split_marker *m, bt_buf *out)
{
    const ts_split_child *c[2] = { &m->left, &m->right };
    tsp_load_answer a = { .state = TSP_LOAD_STATE_SPLIT, .mid = m->mid.data, .mid_len = m->mid.len };
    tsp_tablet *kids[2] = { &a.left, &a.right };
    for (int i = 0; i < 2; i++)
        *kids[i] = (tsp_tablet){ .id = c[i]->id, .table = td->table, .table_len = td->table_len,
                                 .dir = c[i]->dir, .dir_len = strlen(c[i]->dir),
                                 .start = c[i]->start.data, .start_len = c[i]->start.len,
                                 .end = c[i]->end.data, .end_len = c[i]->end.len };
    bt_msg_writer w;
    bt_msg_writer_init(&w, out);
    tsp_put_load_answer(&w, &a);
    return bt_msg_writer_status(&w);
}

static int do_load(ts_server *s, bt_msg_reader *r, bt_buf *out)
{
    tsp_tablet td;
    ts_schema sc;
    uint64_t flags;
    int rc = tsp_get_tablet(r, &td);
    if (!rc) rc = tsp_get_schema(r, &sc);
    if (!rc) rc = bt_msg_get_varint(r, &flags);
    if (rc) return rc;
    if (!s->eng) return bt_err(BT_EUNAVAIL, "tablet server is re-registering; not serving");
    entry *have = tablet_get(s, td.id);
    if (have) { /* idempotent (the master may retry); a new schema (alter) is taken */
        if (!schema_equal(ts_tablet_schema(have->t), &sc)) rc = ts_tablet_set_schema(have->t, &sc);
        tablet_put(s, have);
        return rc ? rc : put_loaded(out);
    }
    bt_errclear();
    if (tablet_loaded(s, td.id)) return put_loaded(out);
    char *path = join_dir(s, td.dir, td.dir_len);
    if (!path) return BT_ENOMEM;
    ts_split_marker mk;
    rc = ts_split_marker_read(bt_env_posix(), path, &mk);
    if (rc != BT_ENOTFOUND) {
        if (!rc) {
            BT_INFO("tablet %llu in %s was split into %llu and %llu: not loading it",
                    (unsigned long long)td.id, path, (unsigned long long)mk.left.id,
                    (unsigned long long)mk.right.id);
            rc = put_split_answer(&td, &mk, out);
            ts_split_marker_free(&mk);
        }
        free(path);
        return rc;
    }
    ts_tablet *t = NULL;
    rc = ts_tablet_open(s->eng, path, &t);
    if (rc == BT_ENOTFOUND && (flags & TSP_LOAD_CREATE)) {
        rc = make_parents(path);
        if (!rc) rc = ts_tablet_create(s->eng, path, td.id, &sc, td.start, td.start_len, td.end, td.end_len, &t);
    } else if (rc == BT_ENOTFOUND) {
        rc = bt_err(BT_ENOTFOUND, "no tablet in %s (and the create flag is not set)", path);
    }
    free(path);
    if (rc) return rc;
    if (ts_tablet_id(t) != td.id) {
        unsigned long long have = ts_tablet_id(t);
        ts_tablet_close(t);
        return bt_err(BT_EFAILED_PRECONDITION, "directory %.*s holds tablet %llu, not %llu",
                      (int)td.dir_len, td.dir, have, (unsigned long long)td.id);
    }
    if (!schema_equal(ts_tablet_schema(t), &sc)) rc = ts_tablet_set_schema(t, &sc);
    entry *e = rc ? NULL : entry_new(td.id, t, td.table, td.table_len, td.dir, td.dir_len);
    if (!rc && !e) rc = BT_ENOMEM;
    if (!rc) rc = map_insert(s, e);
    if (rc) {
        entry_free(e);
        ts_tablet_close(t);
        return rc;
    }
    BT_INFO("loaded tablet %llu of table %s from %s", (unsigned long long)td.id, e->table, e->dir);
    return put_loaded(out);
}

/* The entry for id (serving or not), without a reference; admin thread use. */
static entry *entry_lookup(ts_server *s, uint64_t id)
{
    pthread_rwlock_rdlock(&s->map_mu);
    size_t i = map_find(s, id);
    entry *e = i < s->n_tablets && s->tablets[i]->id == id ? s->tablets[i] : NULL;
    pthread_rwlock_unlock(&s->map_mu);
    if (!e) bt_err(BT_ENOTSERVING, "tablet %llu is not served here", (unsigned long long)id);
    return e;
}

/* Unloads e: drain, optionally flush, close, forget. */
static int unload_entry(ts_server *s, entry *e, bool flush)
{
    tablet_drain(s, e);
    int rc = flush ? ts_tablet_flush(e->t) : BT_OK;
    if (rc) { /* keep serving: nothing was lost, the master may retry */
        atomic_store(&e->serving, true);
        return rc;
    }
    map_remove(s, e);
    /* Not flushed: this server gives the tablet up without writing (its
     * session expired, or it cannot flush): whatever compaction is still
     * running must not install a manifest either. */
    if (!flush) ts_tablet_fence(e->t);
    rc = ts_tablet_close(e->t);
    if (flush) ts_log_forget_tablet(ts_engine_log(s->eng), e->id);
    BT_INFO("unloaded tablet %llu%s", (unsigned long long)e->id, flush ? "" : " (not flushed)");
    entry_free(e);
    return rc;
}

/* Writes the parent's SPLIT marker from the children as opened (admin_mu held). */
static int write_split_marker(ts_server *s, const entry *parent, const entry *le, const entry *re)
{
    ts_split_marker m;
    memset(&m, 0, sizeof m);
    const entry *kids[2] = { le, re };
    ts_split_child *c[2] = { &m.left, &m.right };
    int rc = BT_OK;
    m.parent_id = parent->id;
    for (int i = 0; i < 2 && !rc; i++) {
        const uint8_t *a, *b;
        size_t al, bl;
        ts_tablet_range(kids[i]->t, &a, &al, &b, &bl);
        c[i]->id = kids[i]->id;
        c[i]->dir = kids[i]->dir;  /* borrowed: not freed below */
        rc = bt_buf_append(&c[i]->start, a, al);
        if (!rc) rc = bt_buf_append(&c[i]->end, b, bl);
    }
    if (!rc) rc = bt_buf_append(&m.mid, m.right.start.data, m.right.start.len);
    char *path = rc ? NULL : join_dir(s, parent->dir, strlen(parent->dir));
    if (!rc && !path) rc = BT_ENOMEM;
    /* a marker that cannot be written fails the split: retry a transient error */
    for (int i = 0; !rc && i < 3; i++) {
        rc = ts_split_marker_write(bt_env_posix(), path, &m);
        if (rc && i < 2) {
            BT_WARN("writing the split marker of tablet %llu failed (%s); retrying",
                    (unsigned long long)parent->id, bt_errmsg());
            usleep(100000);
            rc = BT_OK;
            continue;
        }
        break;
    }
    free(path);
    m.left.dir = m.right.dir = NULL;
    ts_split_marker_free(&m);
    return rc;
}

/* The split is done on disk but its marker could not be written: serve the
 * parent again, as if it had never split (nothing was written to the
 * children, which were never served).  admin_mu held. */
static int unsplit(ts_server *s, entry *e, entry *le, entry *re)
{
    ts_tablet_close(le->t);
    ts_tablet_close(re->t);
    le->t = re->t = NULL;
    ts_log_forget_tablet(ts_engine_log(s->eng), le->id);
    ts_log_forget_tablet(ts_engine_log(s->eng), re->id);
    char *path = join_dir(s, e->dir, strlen(e->dir));
    int rc = path ? ts_tablet_open(s->eng, path, &e->t) : BT_ENOMEM;
    free(path);
    if (rc) {
        BT_ERROR("tablet %llu: cannot reopen it after a failed split: %s; dropping it",
                 (unsigned long long)e->id, bt_errmsg());
        map_remove(s, e);
        entry_free(e);
        return rc;
    }
    atomic_store(&e->serving, true);
    return BT_OK;
}

/* Calls the commit hook, retrying with backoff (admin_mu held). */
static int commit_split(ts_server *s, const entry *parent, const entry *le, const entry *re)
{
    if (!s->o.commit_split) return BT_OK;
    tsp_split_info info = { .parent_id = parent->id, .table = parent->table,
                            .table_len = strlen(parent->table), .parent_dir = parent->dir,
                            .parent_dir_len = strlen(parent->dir) };
    const entry *kids[2] = { le, re };
    tsp_tablet *out[2] = { &info.left, &info.right };
    for (int i = 0; i < 2; i++) {
        *out[i] = (tsp_tablet){ .id = kids[i]->id, .table = kids[i]->table, .table_len = strlen(kids[i]->table),
                                .dir = kids[i]->dir, .dir_len = strlen(kids[i]->dir) };
        ts_tablet_range(kids[i]->t, &out[i]->start, &out[i]->start_len, &out[i]->end, &out[i]->end_len);
    }
    info.mid = info.right.start;
    info.mid_len = info.right.start_len;
    int rc = BT_OK, delay_ms = 100;
    for (int attempt = 1; attempt <= COMMIT_SPLIT_TRIES; attempt++) {
        bt_errclear();
        rc = s->o.commit_split(s->o.commit_arg, &info);
        if (!rc) return BT_OK;
        char why[256];
        snprintf(why, sizeof why, "%s", bt_errmsg()[0] ? bt_errmsg() : bt_strerror(rc));
        BT_WARN("committing the split of tablet %llu failed (attempt %d of %d): %s: %s",
                (unsigned long long)parent->id, attempt, COMMIT_SPLIT_TRIES, bt_errname(rc), why);
        if (attempt == COMMIT_SPLIT_TRIES) return bt_err(rc, "split of tablet %llu is done but not committed "
                                                         "(the master repairs it from the SPLIT marker): %s",
                                                         (unsigned long long)parent->id, why);
        usleep((useconds_t)delay_ms * 1000);
        delay_ms *= 4;
    }
    return rc;
}

/* The one split path of TSP_SPLIT and automatic splits (admin_mu held).
 * *done (may be NULL) tells whether the parent is gone (split locally, even
 * if the commit then failed).  On success out gets bytes mid. */
static int split_tablet(ts_server *s, uint64_t id, const uint8_t *mid, size_t ml, uint64_t lid,
                        const char *ld, size_t lsz, uint64_t rid, const char *rd, size_t rsz,
                        bt_buf *out, bool *done)
{
    int rc = BT_OK;
    if (done) *done = false;
    if (!s->eng) return bt_err(BT_EUNAVAIL, "tablet server is re-registering; not serving");
    if (lid == rid || lid == id || rid == id || tablet_loaded(s, lid) || tablet_loaded(s, rid))
        return bt_err(BT_EINVAL, "split needs two new, distinct tablet ids");
    if (!tsp_valid_dir(ld, lsz) || !tsp_valid_dir(rd, rsz))
        return bt_err(BT_EINVAL, "split: child dirs must be relative, at most %d bytes, without NUL "
                                 "bytes or empty, \".\" or \"..\" components", TSP_MAX_DIR);
    entry *e = entry_lookup(s, id);
    if (!e) return BT_ENOTSERVING;
    char *lp = join_dir(s, ld, lsz), *rp = join_dir(s, rd, rsz);
    entry *le = entry_new(lid, NULL, e->table, strlen(e->table), ld, lsz);
    entry *re = entry_new(rid, NULL, e->table, strlen(e->table), rd, rsz);
    if (!lp || !rp || !le || !re) rc = BT_ENOMEM;
    if (!rc) rc = make_parents(lp);
    if (!rc) rc = make_parents(rp);
    if (!rc) {
        tablet_drain(s, e);
        rc = ts_tablet_split(e->t, ml ? mid : NULL, ml, lp, lid, rp, rid, &le->t, &re->t);
        if (rc) {
            atomic_store(&e->serving, true);
        } else if ((rc = write_split_marker(s, e, le, re)) != BT_OK) {
            char why[256];
            snprintf(why, sizeof why, "%s", bt_errmsg());
            if (unsplit(s, e, le, re) != BT_OK && done) *done = true; /* e is gone */
            rc = bt_err(rc, "split of tablet %llu undone: cannot write its split marker: %s",
                        (unsigned long long)id, why);
        } else {
            map_remove(s, e);
            map_insert(s, le);
            map_insert(s, re);
            if (done) *done = true;
            const uint8_t *a, *b;
            size_t al, bl;
            ts_tablet_range(re->t, &a, &al, &b, &bl);
            BT_INFO("split tablet %llu of table %s into %llu (%s) and %llu (%s)", (unsigned long long)id,
                    e->table, (unsigned long long)lid, le->dir, (unsigned long long)rid, re->dir);
            rc = commit_split(s, e, le, re);
            if (!rc) rc = bt_buf_put_lenbytes(out, a, al);
            entry_free(e);
            le = re = NULL;
        }
    }
    free(lp);
    free(rp);
    entry_free(le);
    entry_free(re);
    return rc;
}

static int do_split(ts_server *s, bt_msg_reader *r, bt_buf *out)
{
    uint64_t id, lid, rid;
    const uint8_t *mid, *ld, *rd;
    size_t ml, lsz, rsz;
    int rc = bt_msg_get_varint(r, &id);
    if (!rc) rc = bt_msg_get_bytes(r, &mid, &ml);
    if (!rc) rc = bt_msg_get_varint(r, &lid);
    if (!rc) rc = bt_msg_get_bytes(r, &ld, &lsz);
    if (!rc) rc = bt_msg_get_varint(r, &rid);
    if (!rc) rc = bt_msg_get_bytes(r, &rd, &rsz);
    if (!rc) rc = bt_msg_reader_done(r);
    if (rc) return rc;
    return split_tablet(s, id, mid, ml, lid, (const char *)ld, lsz, rid, (const char *)rd, rsz, out, NULL);
}

/* An automatic split of tablet id, queued by the supervisor (admin thread). */
static void auto_split(ts_server *s, uint64_t id)
{
    pthread_mutex_lock(&s->admin_mu);
    entry *e = atomic_load(&s->closing) ? NULL : entry_lookup(s, id);
    if (!e || !atomic_load(&e->serving) || !lease_ok(s) || !s->eng) {
        if (e) atomic_store(&e->auto_queued, false);
        pthread_mutex_unlock(&s->admin_mu);
        return;
    }
    uint64_t lid = bt_new_tablet_id(), rid = bt_new_tablet_id();
    while (rid == lid || rid == id) rid = bt_new_tablet_id();
    while (lid == id) lid = bt_new_tablet_id();
    char ld[300], rd[300], table[TS_MAX_NAME + 1];
    snprintf(table, sizeof table, "%s", e->table);
    bt_tablet_dir(ld, sizeof ld, table, lid);
    bt_tablet_dir(rd, sizeof rd, table, rid);
    bt_buf out = {0};
    bool done = false;
    bt_errclear();
    BT_INFO("tablet %llu of table %s passed %llu SSTable bytes: splitting it", (unsigned long long)id, table,
            (unsigned long long)s->o.split_bytes);
    int rc = split_tablet(s, id, NULL, 0, lid, ld, strlen(ld), rid, rd, strlen(rd), &out, &done);
    if (rc) BT_WARN("automatic split of tablet %llu failed: %s: %s", (unsigned long long)id, bt_errname(rc),
                    bt_errmsg());
    if (!done) { /* the parent still serves: try again later, not every second */
        atomic_store(&e->auto_after_us, mono_us() + AUTO_SPLIT_BACKOFF_US);
        atomic_store(&e->auto_queued, false);
    }
    bt_buf_free(&out);
    pthread_mutex_unlock(&s->admin_mu);
}

/* Bulk loads (tabletserver/bulk.h): prepare answers the tablet's directory;
 * attach installs the files and answers the sequence they got. */
static int do_bulk(ts_server *s, uint16_t method, bt_msg_reader *r, bt_buf *out)
{
    uint64_t id;
    int rc = bt_msg_get_varint(r, &id);
    if (rc) return rc;
    if (!lease_ok(s)) return not_serving_lease();
    if (method == TSP_BULK_PREPARE) {
        if ((rc = bt_msg_reader_done(r))) return rc;
        entry *e = tablet_get(s, id);
        if (!e) return BT_ENOTSERVING;
        bt_msg_writer w;
        bt_msg_writer_init(&w, out);
        char abs[PATH_MAX];
        int al = snprintf(abs, sizeof abs, "%s/%s", s->data_dir, e->dir);
        if (al < 0 || (size_t)al >= sizeof abs) rc = bt_err(BT_EINVAL, "tablet directory path too long");
        else bt_msg_put_bytes(&w, abs, (size_t)al);
        if (!rc) rc = bt_msg_writer_status(&w);
        tablet_put(s, e);
        return rc;
    }
    uint64_t load_id = 0, n = 0, seq = 0;
    if (!rc) rc = bt_msg_get_fixed64(r, &load_id);
    if (!rc) rc = bt_msg_get_varint(r, &n);
    if (rc) return rc;
    if (n < 1 || n > TS_BULK_MAX_FILES)
        return bt_err(BT_EINVAL, "a bulk attach takes 1..%d files, got %llu", TS_BULK_MAX_FILES, (unsigned long long)n);
    ts_bulk_file *f = calloc((size_t)n, sizeof *f);
    char **names = calloc((size_t)n, sizeof *names);
    if (!f || !names) rc = BT_ENOMEM;
    for (uint64_t i = 0; !rc && i < n; i++) {
        const uint8_t *nm;
        size_t nl;
        uint64_t g;
        rc = bt_msg_get_bytes(r, &nm, &nl);
        if (!rc) rc = bt_msg_get_varint(r, &g);
        if (!rc && (nl == 0 || nl > 255 || memchr(nm, 0, nl) || g >= TS_MAX_GROUPS))
            rc = bt_err(BT_EINVAL, "bulk attach: bad file entry %llu", (unsigned long long)i);
        if (!rc && !(names[i] = strndup((const char *)nm, nl))) rc = BT_ENOMEM;
        if (!rc) f[i] = (ts_bulk_file){ names[i], (int)g };
    }
    if (!rc) rc = bt_msg_reader_done(r);
    entry *e = rc ? NULL : tablet_get(s, id);
    if (!rc && !e) rc = BT_ENOTSERVING;
    if (!rc) {
        rc = ts_tablet_bulk_attach(e->t, load_id, f, (int)n, &seq);
        tablet_put(s, e);
    }
    if (!rc) {
        bt_msg_writer w;
        bt_msg_writer_init(&w, out);
        bt_msg_put_varint(&w, seq);
        rc = bt_msg_writer_status(&w);
    }
    for (uint64_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
    free(f);
    return rc;
}

static int run_admin_one(ts_server *s, job *j, bt_buf *out)
{
    bt_msg_reader r;
    bt_msg_reader_init(&r, j->payload, j->len);
    const uint8_t *seqr = NULL;
    size_t sl = 0;
    int rc = BT_OK;
    bool fenced = j->method == TSP_LOAD_TABLET || j->method == TSP_UNLOAD_TABLET || j->method == TSP_SPLIT;
    if (fenced) {
        rc = bt_msg_get_bytes(&r, &seqr, &sl);
        if (!rc) rc = check_sequencer(s, seqr, sl);
        if (!rc && !lease_ok(s)) rc = not_serving_lease();
        if (rc) return rc;
    }
    uint64_t id;
    entry *e;
    switch (j->method) {
    case TSP_LOAD_TABLET:
        pthread_mutex_lock(&s->admin_mu);
        rc = do_load(s, &r, out);
        pthread_mutex_unlock(&s->admin_mu);
        return rc;
    case TSP_SPLIT:
        pthread_mutex_lock(&s->admin_mu);
        rc = do_split(s, &r, out);
        pthread_mutex_unlock(&s->admin_mu);
        return rc;
    case TSP_UNLOAD_TABLET:
        rc = bt_msg_get_varint(&r, &id);
        if (!rc) rc = bt_msg_reader_done(&r);
        if (rc) return rc;
        pthread_mutex_lock(&s->admin_mu);
        e = entry_lookup(s, id);
        rc = e ? unload_entry(s, e, true) : BT_ENOTSERVING;
        pthread_mutex_unlock(&s->admin_mu);
        return rc;
    case TSP_BULK_PREPARE:
    case TSP_BULK_ATTACH:
        return do_bulk(s, j->method, &r, out);
    default: /* flush, compact */
        rc = bt_msg_get_varint(&r, &id);
        if (!rc) rc = bt_msg_reader_done(&r);
        if (rc) return rc;
        if (!(e = tablet_get(s, id))) return BT_ENOTSERVING;
        rc = j->method == TSP_FLUSH ? ts_tablet_flush(e->t) : ts_tablet_compact(e->t);
        tablet_put(s, e);
        return rc;
    }
}

static void run_admin(ts_server *s, job *list)
{
    for (job *j = list, *nx; j; j = nx) {
        nx = j->next;
        if (!j->ctx) { /* internal: an automatic split */
            uint64_t id;
            memcpy(&id, j->payload, sizeof id);
            auto_split(s, id);
            free(j);
            continue;
        }
        bt_buf out = {0};
        bt_errclear();
        reply(j->ctx, run_admin_one(s, j, &out), &out);
        bt_buf_free(&out);
        free(j);
    }
}

/* ---- inline handlers (loop thread; memory only) ------------------------------------------ */

static void h_status(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    ts_server *s = arg;
    (void)req;
    tsp_status st = { .id = s->id, .id_len = strlen(s->id), .address = s->addr,
                      .address_len = strlen(s->addr), .start_time_us = s->start_wall_us };
    pthread_rwlock_rdlock(&s->map_mu);
    st.n_tablets = s->n_tablets;
    for (size_t i = 0; i < s->n_tablets; i++) {
        ts_tablet_stats ts;
        ts_tablet_get_stats(s->tablets[i]->t, &ts);
        st.memtable_bytes += ts.memtable_bytes;
        st.sstable_bytes += ts.sstable_bytes;
        st.compaction_queue += ts.compaction_pending;
    }
    pthread_rwlock_unlock(&s->map_mu);
    ts_log_stats ls = {0};
    pthread_mutex_lock(&s->eng_mu);
    if (s->eng) ts_log_get_stats(ts_engine_log(s->eng), &ls);
    pthread_mutex_unlock(&s->eng_mu);
    st.log_appends = ls.appends;
    st.log_syncs = ls.syncs;
    st.reads = atomic_load(&s->n_reads);
    st.writes = atomic_load(&s->n_writes);
    st.scanned_rows = atomic_load(&s->n_scanned);
    st.connections = (uint64_t)rpc_server_connections(s->rpc);
    st.durability = s->o.durability;
    int64_t left = atomic_load(&s->lease_until) - mono_us();
    st.lease_ms_left = left > 0 ? (uint64_t)left / 1000 : 0;
    pthread_mutex_lock(&s->scan_mu);
    st.open_scanners = s->n_scanners;
    pthread_mutex_unlock(&s->scan_mu);
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    tsp_put_status(&w, &st);
    if (bt_msg_writer_status(&w)) reply_err(ctx, BT_ENOMEM);
    else rpc_respond(ctx, BT_OK, b.data, b.len);
    bt_buf_free(&b);
}

static void h_list(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    ts_server *s = arg;
    (void)req;
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    pthread_rwlock_rdlock(&s->map_mu);
    size_t n = 0;
    for (size_t i = 0; i < s->n_tablets; i++) n += atomic_load(&s->tablets[i]->serving);
    bt_msg_put_varint(&w, n);
    for (size_t i = 0; i < s->n_tablets; i++) {
        entry *e = s->tablets[i];
        if (!atomic_load(&e->serving)) continue;
        ts_tablet_stats ts;
        ts_tablet_get_stats(e->t, &ts);
        tsp_tablet_info ti = { .tablet = { .id = e->id, .table = e->table, .table_len = strlen(e->table),
                                           .dir = e->dir, .dir_len = strlen(e->dir) },
                               .memtable_bytes = ts.memtable_bytes, .sstable_bytes = ts.sstable_bytes,
                               .n_sstables = ts.n_sstables, .last_seq = ts.last_seq };
        ts_tablet_range(e->t, &ti.tablet.start, &ti.tablet.start_len, &ti.tablet.end, &ti.tablet.end_len);
        tsp_put_tablet_info(&w, &ti);
    }
    pthread_rwlock_unlock(&s->map_mu);
    if (bt_msg_writer_status(&w)) reply_err(ctx, BT_ENOMEM);
    else rpc_respond(ctx, BT_OK, b.data, b.len);
    bt_buf_free(&b);
}

/* Copies the request into a job and queues it on the pool in arg. */
static void enqueue(pool *p, const rpc_request *req, rpc_ctx *ctx)
{
    job *j = malloc(sizeof *j + req->payload_len);
    if (!j) {
        rpc_respond(ctx, BT_ENOMEM, "out of memory", 13);
        return;
    }
    j->ctx = ctx;
    j->method = req->method;
    j->len = req->payload_len;
    if (req->payload_len) memcpy(j->payload, req->payload, req->payload_len);
    pool_push(p, j);
}

#define POOL_HANDLER(name, field)                                           \
    static void name(void *arg, const rpc_request *req, rpc_ctx *ctx)       \
    {                                                                       \
        ts_server *s = arg;                                                 \
        enqueue(&s->field, req, ctx);                                    \
    }
/* Point reads run on the loop thread when everything they need is in
 * memory (memtables, cached or in-memory blocks): no hand-off, no wake-ups.
 * One that would read the disk goes to the read pool instead. */
static void h_read(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    ts_server *s = arg;
    bt_buf out = {0};
    bt_errclear();
    int rc = do_read(s, req->payload, req->payload_len, true, &out);
    if (rc == BT_EBUSY) enqueue(&s->reads, req, ctx);
    else reply(ctx, rc, &out);
    bt_buf_free(&out);
}

POOL_HANDLER(h_scan, scans)
POOL_HANDLER(h_write, writes)
POOL_HANDLER(h_cond, conds)
POOL_HANDLER(h_admin, admin)

/* ---- lock service: registration and supervision --------------------------------------------- */

static void on_session(void *arg, lk_session_event ev)
{
    ts_server *s = arg;
    if (ev == LK_SESSION_JEOPARDY) {
        BT_WARN("lock-service session in jeopardy: writes are acknowledged only while the lease lasts");
        return;
    }
    if (ev == LK_SESSION_SAFE) {
        BT_INFO("lock-service session safe again");
        return;
    }
    atomic_store(&s->lease_until, 0); /* stop serving at once */
    pthread_mutex_lock(&s->sup_mu);
    s->expired = true;
    pthread_cond_broadcast(&s->sup_cv);
    pthread_mutex_unlock(&s->sup_mu);
}

static void on_watch(void *arg, lk_watch_kind kind, const char *path)
{
    ts_server *s = arg;
    if (kind != LK_WATCH_DELETED) return;
    BT_ERROR("%s was deleted: this server has been declared dead; exiting", path);
    atomic_store(&s->lease_until, 0);
    pthread_mutex_lock(&s->sup_mu);
    s->file_deleted = true;
    pthread_cond_broadcast(&s->sup_cv);
    pthread_mutex_unlock(&s->sup_mu);
}

static int ensure_dir(lk_client *lk, const char *path)
{
    int rc = lk_create(lk, path, NULL, 0, LK_DIR);
    return rc == BT_EEXIST ? BT_OK : rc;
}

/* Picks the log directory of a new incarnation (admin_mu held, or before
 * the server runs): servers/<id>/log-<16 hex digits of the wall-clock time
 * in us>, always a name not used before by this process. */
static int new_log_dir(ts_server *s)
{
    static const char pre[] = "log-";
    uint64_t t = (uint64_t)wall_us();
    if (s->log_rel) {
        const char *dash = strrchr(s->log_rel, '-');
        uint64_t prev = dash ? strtoull(dash + 1, NULL, 16) : 0;
        if (t <= prev) t = prev + 1;
    }
    size_t n = strlen(s->id) + 64;
    char *p = malloc(n);
    if (!p) return BT_ENOMEM;
    snprintf(p, n, "servers/%s/%s%016llx", s->id, pre, (unsigned long long)t);
    free(s->log_rel);
    s->log_rel = p;
    return BT_OK;
}

/* Opens a session and takes /bt/servers/<id>, whose contents then name this
 * incarnation's address and log dir (s->log_rel).  `first`: create the file
 * if missing (a restart); otherwise a missing file means we were declared
 * dead (BT_ENOTFOUND). */
static int lock_register(ts_server *s, bool first, lk_client **out)
{
    lk_options lo = { .lease_ms = s->o.lease_ms, .on_session = on_session, .arg = s };
    lk_client *lk = NULL;
    char *contents = NULL;
    int rc = bt_server_file_encode(s->addr, s->log_rel, &contents);
    if (rc) return rc;
    rc = lk_open(s->lock_url, &lo, &lk);
    if (rc) {
        free(contents);
        return rc;
    }
    if (first) {
        rc = ensure_dir(lk, "/bt");
        if (!rc) rc = ensure_dir(lk, "/bt/servers");
        if (!rc) {
            rc = lk_create(lk, s->lock_path, contents, strlen(contents), 0);
            if (rc == BT_EEXIST) rc = BT_OK;
        }
    } else {
        lk_stat st;
        rc = lk_stat_path(lk, s->lock_path, &st);
    }
    if (!rc) rc = lk_acquire(lk, s->lock_path, 2 * s->o.lease_ms + 1000);
    if (rc == BT_ETIMEDOUT)
        rc = bt_err(BT_ETIMEDOUT, "%s stays locked by another session (is another server with id %s running?)",
                    s->lock_path, s->id);
    if (!rc) rc = lk_set(lk, s->lock_path, contents, strlen(contents), 0);
    free(contents);
    uint64_t wid;
    if (!rc) rc = lk_watch(lk, s->lock_path, LK_WATCH_DELETED, on_watch, s, &wid);
    if (rc) {
        lk_close(lk);
        return rc;
    }
    atomic_store(&s->lease_until, lk_lease_valid_until_us(lk));
    *out = lk;
    return BT_OK;
}

/* Opens the engine of a new incarnation on s->log_rel, which the lock file
 * already names (admin_mu held, or before the server runs). */
static int open_engine(ts_server *s)
{
    char *logdir = join_dir(s, s->log_rel, strlen(s->log_rel));
    if (!logdir) return BT_ENOMEM;
    int rc = make_parents(logdir);
    ts_engine *eng = NULL;
    if (!rc) {
        ts_engine_options eo = { .log_dir = logdir, .durability = s->o.durability,
                                 .block_cache_bytes = s->o.cache_bytes, .memtable_bytes = s->o.memtable_bytes,
                                 .compaction_threads = 2, .keep_obsolete_files = true };
        rc = ts_engine_open(&eo, &eng);
    }
    if (!rc) {
        pthread_mutex_lock(&s->eng_mu);
        s->eng = eng;
        pthread_mutex_unlock(&s->eng_mu);
        BT_INFO("commit log of this incarnation: %s", logdir);
    }
    free(logdir);
    return rc;
}

/* Closes the engine (every tablet closed; admin_mu held, or the server
 * stopped).  Its log dir stays for the master (or ts_server_close). */
static int close_engine(ts_server *s)
{
    pthread_mutex_lock(&s->eng_mu);
    ts_engine *eng = s->eng;
    s->eng = NULL;
    pthread_mutex_unlock(&s->eng_mu);
    return eng ? ts_engine_close(eng) : BT_OK;
}

/* Removes this incarnation's log dir after a clean shutdown that flushed
 * every tablet: nothing in it is needed (best effort: a leftover dir only
 * costs the master a useless split). */
static int rm_log_file(void *arg, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", (const char *)arg, name);
    if (unlink(path) != 0) BT_WARN("cannot delete %s: %s", path, strerror(errno));
    return 0;
}

static void remove_log_dir(ts_server *s)
{
    char *logdir = s->log_rel ? join_dir(s, s->log_rel, strlen(s->log_rel)) : NULL;
    if (!logdir) return;
    bt_env_list(bt_env_posix(), logdir, rm_log_file, logdir);
    if (rmdir(logdir) != 0 && errno != ENOENT) BT_WARN("cannot delete %s: %s", logdir, strerror(errno));
    free(logdir);
}

/* After the session expired: drop every tablet without writing (another
 * server may be replaying them by now), each fenced first, then close the
 * engine: the next registration opens a new one with a new log dir, and
 * this one's is left for the master to recover. */
static void drop_all_tablets(ts_server *s)
{
    pthread_mutex_lock(&s->admin_mu);
    for (;;) {
        pthread_rwlock_rdlock(&s->map_mu);
        entry *e = s->n_tablets ? s->tablets[0] : NULL;
        pthread_rwlock_unlock(&s->map_mu);
        if (!e) break;
        unload_entry(s, e, false);
    }
    if (s->eng) {
        int rc = close_engine(s);
        if (rc) BT_WARN("closing the engine after the session expired: %s", bt_errmsg());
        BT_INFO("closed the engine; log %s is left for the master", s->log_rel);
    }
    pthread_mutex_unlock(&s->admin_mu);
}

/* Registers again after an expired session, with a fresh engine and log. */
static int reregister(ts_server *s, lk_client **out)
{
    pthread_mutex_lock(&s->admin_mu);
    int rc = new_log_dir(s);
    lk_client *lk = NULL;
    if (!rc) rc = lock_register(s, false, &lk);
    if (!rc) {
        rc = open_engine(s);
        if (rc) {
            char why[512];
            snprintf(why, sizeof why, "%s", bt_errmsg());
            atomic_store(&s->lease_until, 0);
            lk_close(lk);  /* ends the session: we are not serving */
            lk = NULL;
            rc = bt_err(rc, "opening the engine failed: %s", why);
        }
    }
    pthread_mutex_unlock(&s->admin_mu);
    *out = lk;
    return rc;
}

/* Queues an automatic split for each tablet past split_bytes (supervisor). */
static void check_auto_splits(ts_server *s)
{
    if (!s->o.commit_split || !s->o.split_bytes || !lease_ok(s)) return;
    int64_t now = mono_us();
    if (now < s->next_auto_check_us) return;
    s->next_auto_check_us = now + AUTO_SPLIT_CHECK_US;
    pthread_rwlock_rdlock(&s->map_mu);
    for (size_t i = 0; i < s->n_tablets; i++) {
        entry *e = s->tablets[i];
        if (!atomic_load(&e->serving) || atomic_load(&e->auto_queued) || now < atomic_load(&e->auto_after_us) ||
            !strcmp(e->table, BT_META_NAME))
            continue;
        ts_tablet_stats st;
        ts_tablet_get_stats(e->t, &st);
        if (st.sstable_bytes <= s->o.split_bytes) continue;
        job *j = malloc(sizeof *j + sizeof e->id);
        if (!j) break;
        j->ctx = NULL;
        j->method = AUTO_SPLIT_JOB;
        j->len = sizeof e->id;
        memcpy(j->payload, &e->id, sizeof e->id);
        atomic_store(&e->auto_queued, true);
        pool_push(&s->admin, j);
    }
    pthread_rwlock_unlock(&s->map_mu);
}

int ts_server_run(ts_server *s)
{
    int backoff_ms = 100;
    pthread_mutex_lock(&s->sup_mu);
    for (;;) {
        if (s->stop_requested) break;
        if (s->file_deleted) {
            pthread_mutex_unlock(&s->sup_mu);
            return 3;
        }
        if (s->expired) {
            pthread_mutex_unlock(&s->sup_mu);
            BT_ERROR("lock-service session expired: stopped serving; dropping tablets and re-registering");
            drop_all_tablets(s);
            pthread_mutex_lock(&s->lk_mu);
            lk_client *old = s->lk;
            s->lk = NULL;
            pthread_mutex_unlock(&s->lk_mu);
            lk_close(old);
            lk_client *lk = NULL;
            int rc = reregister(s, &lk);
            pthread_mutex_lock(&s->sup_mu);
            if (rc == BT_ENOTFOUND) {
                BT_ERROR("%s no longer exists: this server was declared dead; exiting", s->lock_path);
                s->file_deleted = true;
                continue;
            }
            if (rc) {
                BT_WARN("re-registering failed (%s: %s); retrying in %d ms", bt_errname(rc), bt_errmsg(), backoff_ms);
                struct timespec ts = deadline_ms(backoff_ms);
                pthread_cond_timedwait(&s->sup_cv, &s->sup_mu, &ts);
                if (backoff_ms < 5000) backoff_ms *= 2;
                continue;
            }
            backoff_ms = 100;
            s->expired = false;
            pthread_mutex_lock(&s->lk_mu);
            s->lk = lk;
            pthread_mutex_unlock(&s->lk_mu);
            BT_INFO("re-registered as %s with log %s; serving again (no tablets until the master assigns some)",
                    s->lock_path, s->log_rel);
            continue;
        }
        /* refresh the cached lease every 20 ms; expire idle scanners */
        struct timespec ts = deadline_ms(20);
        pthread_cond_timedwait(&s->sup_cv, &s->sup_mu, &ts);
        if (!s->expired && !s->file_deleted) {
            pthread_mutex_lock(&s->lk_mu);
            if (s->lk) atomic_store(&s->lease_until, lk_lease_valid_until_us(s->lk));
            pthread_mutex_unlock(&s->lk_mu);
        }
        pthread_mutex_unlock(&s->sup_mu);
        expire_scanners(s);
        check_auto_splits(s);
        pthread_mutex_lock(&s->sup_mu);
    }
    pthread_mutex_unlock(&s->sup_mu);
    return 0;
}

void ts_server_request_stop(ts_server *s)
{
    pthread_mutex_lock(&s->sup_mu);
    s->stop_requested = true;
    pthread_cond_broadcast(&s->sup_cv);
    pthread_mutex_unlock(&s->sup_mu);
}

/* ---- open / close ------------------------------------------------------------------------------ */

static const char *nz(const char *v, const char *d) { return v && *v ? v : d; }

static bool valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64 || !strcmp(id, ".") || !strcmp(id, "..")) return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
              (id[i] >= '0' && id[i] <= '9') || id[i] == '_' || id[i] == '.' || id[i] == '-'))
            return false;
    return true;
}

static int server_setup(ts_server *s, const ts_server_options *o)
{
    s->o = *o;
    if (!o->data_dir || !*o->data_dir) return bt_err(BT_EINVAL, "--data-dir is required");
    if (!o->lock_url || !*o->lock_url) return bt_err(BT_EINVAL, "--lock is required");
    if (!s->o.lease_ms) s->o.lease_ms = 10000;
    if (!s->o.scanner_lease_ms) s->o.scanner_lease_ms = 60000;
    if (!s->o.cache_bytes) s->o.cache_bytes = (size_t)256 << 20;
    if (s->o.read_threads <= 0) s->o.read_threads = 2;
    if (s->o.scan_threads <= 0) s->o.scan_threads = 2;
    if (s->o.write_threads <= 0) s->o.write_threads = 4;
    if (s->o.cond_threads <= 0) s->o.cond_threads = 4;
    if (s->o.admin_threads <= 0) s->o.admin_threads = 2;
    s->bind = strdup(nz(o->bind, "127.0.0.1"));
    /* canonical: inherited SSTable paths in split children's manifests are
     * built from it, and the master's GC resolves them */
    size_t dl = strlen(o->data_dir);
    char *probe = malloc(dl + 3);
    if (!probe) return BT_ENOMEM;
    snprintf(probe, dl + 3, "%s/x", o->data_dir);
    int mk = make_parents(probe);
    free(probe);
    if (mk) return bt_err(mk, "cannot create --data-dir %s: %s", o->data_dir, bt_errmsg());
    s->data_dir = realpath(o->data_dir, NULL);
    if (!s->data_dir) return bt_err(BT_EINVAL, "--data-dir %s: %s", o->data_dir, strerror(errno));
    s->lock_url = strdup(o->lock_url);
    if (!s->bind || !s->data_dir || !s->lock_url) return BT_ENOMEM;
    s->start_wall_us = wall_us();
    pthread_mutex_init(&s->lk_mu, NULL);
    pthread_mutex_init(&s->admin_mu, NULL);
    pthread_mutex_init(&s->eng_mu, NULL);
    pthread_rwlock_init(&s->map_mu, NULL);
    pthread_mutex_init(&s->drain_mu, NULL);
    pthread_cond_init(&s->drain_cv, NULL);
    pthread_mutex_init(&s->scan_mu, NULL);
    pthread_mutex_init(&s->sup_mu, NULL);
    pthread_cond_init(&s->sup_cv, NULL);
    for (int i = 0; i < ROW_STRIPES; i++) pthread_mutex_init(&s->stripes[i], NULL);
    s->next_scanner = (uint64_t)wall_us() << 16; /* ids are not reused across restarts */
    return BT_OK;
}

static int start_rpc(ts_server *s)
{
    static const struct { uint16_t m; rpc_handler_fn fn; } tab[] = {
        { TSP_STATUS, h_status }, { TSP_LOAD_TABLET, h_admin }, { TSP_UNLOAD_TABLET, h_admin },
        { TSP_LIST_TABLETS, h_list }, { TSP_MUTATE_ROW, h_write }, { TSP_MUTATE_ROWS, h_write },
        { TSP_READ_ROW, h_read }, { TSP_SCAN_OPEN, h_scan }, { TSP_SCAN_NEXT, h_scan },
        { TSP_SCAN_CLOSE, h_scan }, { TSP_CHECK_AND_MUTATE, h_cond }, { TSP_READ_MODIFY_WRITE, h_cond },
        { TSP_FLUSH, h_admin }, { TSP_COMPACT, h_admin }, { TSP_SPLIT, h_admin },
        { TSP_BULK_PREPARE, h_admin }, { TSP_BULK_ATTACH, h_admin },
    };
    enum { N = sizeof tab / sizeof tab[0] };
    rpc_method m[N];
    for (int i = 0; i < N; i++) m[i] = (rpc_method){ tab[i].m, tab[i].fn, s };
    rpc_server_opts ro = { .max_connections = s->o.max_connections ? s->o.max_connections : 10000 };
    return rpc_server_new(s->bind, s->o.port, m, N, &ro, &s->rpc);
}

int ts_server_open(const ts_server_options *o, ts_server **out)
{
    ts_server *s = calloc(1, sizeof *s);
    if (!s) return BT_ENOMEM;
    int rc = server_setup(s, o);
    if (!rc) rc = start_rpc(s); /* listening; connections wait until registered */
    if (!rc) {
        char buf[300];
        uint16_t port = rpc_server_port(s->rpc);
        snprintf(buf, sizeof buf, "%s:%u", s->bind, (unsigned)port);
        s->addr = strdup(nz(o->advertise, buf));
        snprintf(buf, sizeof buf, "%s-%u", s->bind, (unsigned)port);
        s->id = strdup(nz(o->id, buf));
        if (!s->addr || !s->id) rc = BT_ENOMEM;
        else if (!valid_id(s->id)) rc = bt_err(BT_EINVAL, "server id \"%s\" must be 1-64 of [A-Za-z0-9_.-]", s->id);
    }
    if (!rc) {
        snprintf(s->lock_path, sizeof s->lock_path, "/bt/servers/%s", s->id);
        rc = new_log_dir(s);
    }
    /* the lock file names the log dir before the dir exists (server.h) */
    if (!rc) rc = lock_register(s, true, &s->lk);
    if (!rc) rc = open_engine(s);
    if (!rc) rc = pool_start(&s->reads, s, "read", s->o.read_threads, 1, run_reads);
    if (!rc) rc = pool_start(&s->scans, s, "scan", s->o.scan_threads, 1, run_scans);
    if (!rc) rc = pool_start(&s->writes, s, "write", s->o.write_threads, WRITE_BATCH_MAX, run_writes);
    if (!rc) rc = pool_start(&s->conds, s, "cond", s->o.cond_threads, 1, run_conds);
    if (!rc) rc = pool_start(&s->admin, s, "admin", s->o.admin_threads, 1, run_admin);
    if (!rc) rc = rpc_server_start(s->rpc);
    if (rc) {
        int keep = rc;
        char msg[512];
        snprintf(msg, sizeof msg, "%s", bt_errmsg());
        ts_server_close(s);
        return bt_err(keep, "%s", msg);
    }
    BT_INFO("tablet server %s serving on %s (durability %s)", s->id, s->addr,
             ts_durability_name(s->o.durability));
    *out = s;
    return BT_OK;
}

const char *ts_server_address(const ts_server *s) { return s->addr; }
const char *ts_server_id(const ts_server *s) { return s->id; }

void ts_server_close(ts_server *s)
{
    if (!s) return;
    atomic_store(&s->closing, true);
    if (s->rpc) rpc_server_stop(s->rpc);
    pool_stop(&s->reads);
    pool_stop(&s->scans);
    pool_stop(&s->writes);
    pool_stop(&s->conds);
    pool_stop(&s->admin);
    close_scanners_of(s, NULL);
    bool owner = s->lk && lease_ok(s) && !s->file_deleted;
    bool all_flushed = owner && s->eng;
    /* flush only while the lock says these tablets are still ours */
    for (;;) {
        pthread_rwlock_rdlock(&s->map_mu);
        entry *e = s->n_tablets ? s->tablets[0] : NULL;
        pthread_rwlock_unlock(&s->map_mu);
        if (!e) break;
        bool flush = owner && lease_ok(s);
        if (!flush || unload_entry(s, e, true)) {
            all_flushed = false;
            unload_entry(s, e, false);
        }
    }
    if (s->eng && close_engine(s) != BT_OK) all_flushed = false;
    if (s->lk) {
        if (owner && lease_ok(s)) {
            /* every tablet is in SSTables: the log is garbage, spare the master its split */
            if (all_flushed) remove_log_dir(s);
            lk_delete(s->lk, s->lock_path, 0);
        }
        lk_close(s->lk);
    }
    rpc_server_free(s->rpc);
    free(s->tablets);
    for (int i = 0; i < ROW_STRIPES; i++) pthread_mutex_destroy(&s->stripes[i]);
    free(s->bind); free(s->id); free(s->addr); free(s->data_dir); free(s->lock_url); free(s->log_rel);
    pthread_mutex_destroy(&s->eng_mu);
    free(s);
}

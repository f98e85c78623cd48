/* tools/bench_server.c: `bt-bench server`, the single-tablet-server
 * benchmark (issue 4; figures in docs/performance.md).
 *
 *   bt-bench server --addr HOST:PORT --workload write|read|scan --threads T
 *                   --value-size B --n N [--depth D] [--lock URL] [--seed S]
 *
 * It needs no master: it takes /bt/master in the lock service itself (so it
 * refuses to run while a master holds it), loads its own tablet on the server
 * with the load-tablet RPC and that sequencer, then drives the workload over
 * T connections with D requests in flight on each (pipelining, as a busy
 * client library would).  Each operation is one RPC:
 *   write  one row, one 1-cell SetCell (server time) of B bytes, random key
 *          (durable as the server's --durability says: sync by default)
 *   read   one random row of the N rows, which are (re)written first with
 *          batches of 100 rows and compacted, then read once (not timed)
 *   scan   T scanners over disjoint ranges covering the N rows; an operation
 *          is a row, latency is per batch
 * and it prints one line: workload, operations per second, p50 and p99
 * latency in milliseconds, then the parameters.
 */
#include "tools/bench_server.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/conn.h"
#include "common/rpc.h"
#include "common/status.h"
#include "lockservice/lock.h"
#include "tabletserver/ts_proto.h"

#define BENCH_TABLET_ID 4242424242ull
#define BENCH_TABLE "bt_bench"
#define BENCH_DIR "bench/t4242424242"
#define PRELOAD_BATCH 100
#define KEY_FMT "user%012" PRIu64

typedef enum { OP_WRITE, OP_READ, OP_PRELOAD } op_kind;

typedef struct sconfig {
    const char *addr, *lock_url, *workload;
    int threads, depth;
    size_t value_size;
    uint64_t n, seed;
} sconfig;

typedef struct slot slot;

typedef struct sbench {
    const sconfig *c;
    rpc_client **clients;
    char *values;              /* value_size + 4096 bytes to take slices from */
    op_kind kind;
    uint64_t total;            /* operations of this phase */
    atomic_uint_fast64_t next; /* next operation to issue */
    atomic_uint_fast64_t errors;
    uint32_t *lat_us;          /* per operation */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int active_slots;
    char first_error[256];
    slot *slots;
} sbench;

struct slot {
    sbench *b;
    rpc_client *c;
    bt_buf req;
    uint64_t op;
    int64_t t0;
};

int64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t bench_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t format_key(uint64_t k, char *out) { return (size_t)sprintf(out, KEY_FMT, k); }

static void note_error(sbench *b, int status, const uint8_t *payload, size_t len)
{
    if (atomic_fetch_add(&b->errors, 1) == 0) {
        pthread_mutex_lock(&b->mu);
        snprintf(b->first_error, sizeof b->first_error, "%s: %.*s", bt_errname(status),
                 (int)(len > 200 ? 200 : len), payload ? (const char *)payload : "");
        pthread_mutex_unlock(&b->mu);
    }
}

static void put_set_cell(bt_msg_writer *w, sbench *b, uint64_t k)
{
    ts_mutation m = { .type = TS_SET_CELL, .family = "cf", .family_len = 2, .qualifier = (const uint8_t *)"c",
                      .qualifier_len = 1, .timestamp = TS_SERVER_TIME,
                      .value = (const uint8_t *)b->values + (bench_mix64(k) & 4095), .value_len = b->c->value_size };
    tsp_put_mutations(w, &m, 1);
}

/* Builds the request of operation op into s->req; returns the method. */
static uint16_t build_request(slot *s, uint64_t op)
{
    sbench *b = s->b;
    char key[32];
    bt_msg_writer w;
    bt_buf_clear(&s->req);
    bt_msg_writer_init(&w, &s->req);
    if (b->kind == OP_PRELOAD) {
        uint64_t first = op * PRELOAD_BATCH, last = first + PRELOAD_BATCH;
        if (last > b->c->n) last = b->c->n;
        bt_msg_put_varint(&w, last - first);
        for (uint64_t k = first; k < last; k++) {
            bt_msg_put_varint(&w, BENCH_TABLET_ID);
            bt_msg_put_bytes(&w, key, format_key(k, key));
            put_set_cell(&w, b, k);
        }
        return TSP_MUTATE_ROWS;
    }
    uint64_t stream = b->kind == OP_WRITE ? 0x632be59bd9b4e019ull : 0x9e6c63d0676a9a99ull;
    uint64_t k = bench_mix64(b->c->seed ^ (op * stream)) % b->c->n;
    bt_msg_put_varint(&w, BENCH_TABLET_ID);
    bt_msg_put_bytes(&w, key, format_key(k, key));
    if (b->kind == OP_WRITE) {
        put_set_cell(&w, b, k);
        return TSP_MUTATE_ROW;
    }
    tsp_put_filter(&w, NULL);
    return TSP_READ_ROW;
}

static void issue(slot *s);

/* A batch answer is OK only if every row in it is. */
static int batch_status(const uint8_t *p, size_t n)
{
    bt_msg_reader r;
    bt_msg_reader_init(&r, p, n);
    int *st = NULL;
    size_t cnt = 0;
    const uint8_t *d;
    size_t dl;
    int rc = tsp_get_batch_result(&r, &st, &cnt, &d, &dl);
    for (size_t i = 0; !rc && i < cnt; i++) rc = st[i];
    free(st);
    return rc;
}

static void on_done(void *arg, int status, const uint8_t *payload, size_t len, bool more)
{
    slot *s = arg;
    sbench *b = s->b;
    if (more) return;
    int64_t lat = bench_now_us() - s->t0;
    b->lat_us[s->op] = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
    if (!status && b->kind == OP_PRELOAD) status = batch_status(payload, len);
    if (status) note_error(b, status, payload, len);
    issue(s);
}

static void issue(slot *s)
{
    sbench *b = s->b;
    for (;;) {
        uint64_t op = atomic_fetch_add(&b->next, 1);
        if (op >= b->total) break;
        s->op = op;
        uint16_t m = build_request(s, op);
        s->t0 = bench_now_us();
        int rc = rpc_call_async(s->c, m, s->req.data, s->req.len, 30000, on_done, s);
        if (!rc) return;
        b->lat_us[op] = 0;
        note_error(b, rc, (const uint8_t *)bt_errmsg(), strlen(bt_errmsg()));
    }
    pthread_mutex_lock(&b->mu);
    if (--b->active_slots == 0) pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Runs total operations of kind over every connection; returns seconds. */
static double run_phase(sbench *b, op_kind kind, uint64_t total)
{
    const sconfig *c = b->c;
    b->kind = kind;
    b->total = total;
    atomic_store(&b->next, 0);
    b->lat_us = calloc(total ? total : 1, sizeof *b->lat_us);
    int nslots = c->threads * c->depth;
    b->slots = calloc((size_t)nslots, sizeof *b->slots);
    if (!b->lat_us || !b->slots) {
        fprintf(stderr, "bt-bench: out of memory\n");
        exit(1);
    }
    b->active_slots = nslots;
    int64_t t0 = bench_now_us();
    for (int i = 0; i < nslots; i++) {
        b->slots[i] = (slot){ .b = b, .c = b->clients[i % c->threads] };
        issue(&b->slots[i]);
    }
    pthread_mutex_lock(&b->mu);
    while (b->active_slots > 0) pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    double secs = (double)(bench_now_us() - t0) / 1e6;
    for (int i = 0; i < nslots; i++) bt_buf_free(&b->slots[i].req);
    free(b->slots);
    return secs;
}

static void print_result(const sconfig *c, const char *name, double ops, uint32_t *lat, uint64_t nlat,
                         uint64_t errors, const char *extra)
{
    qsort(lat, nlat, sizeof *lat, cmp_u32);
    double p50 = nlat ? lat[nlat / 2] / 1000.0 : 0, p99 = nlat ? lat[nlat * 99 / 100] / 1000.0 : 0;
    printf("%s %.0f ops/s p50 %.3f ms p99 %.3f ms (n %" PRIu64 ", threads %d, depth %d, value %zu B, errors %" PRIu64 "%s)\n",
           name, ops, p50, p99, c->n, c->threads, c->depth, c->value_size, errors, extra);
    fflush(stdout);
}

/* ---- scan workload: synchronous scanners over disjoint ranges ---------------- */

typedef struct scan_worker {
    sbench *b;
    rpc_client *c;
    uint64_t from, to, rows;
    uint32_t *lat;
    size_t nlat, cap;
    int rc;
    char err[200];
} scan_worker;

static int scan_call(scan_worker *w, uint16_t m, const bt_buf *req, bt_buf *resp, uint64_t *id, bool *done)
{
    int64_t t0 = bench_now_us();
    int rc = rpc_call(w->c, m, req->data, req->len, resp, 30000);
    if (w->nlat == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 1024;
        w->lat = realloc(w->lat, w->cap * sizeof *w->lat);
        if (!w->lat) return BT_ENOMEM;
    }
    w->lat[w->nlat++] = (uint32_t)(bench_now_us() - t0);
    if (rc) {
        snprintf(w->err, sizeof w->err, "%.*s", (int)(resp->len > 190 ? 190 : resp->len), (const char *)resp->data);
        return rc;
    }
    bt_msg_reader r;
    bt_msg_reader_init(&r, resp->data, resp->len);
    rc = tsp_get_scan_header(&r, id, done);
    while (!rc && bt_msg_remaining(&r) > 0) {
        ts_row row;
        rc = tsp_get_row(&r, &row);
        if (!rc) {
            if (row.n_cells != 1 || row.cells[0].value_len != w->b->c->value_size) rc = BT_ECORRUPT;
            tsp_row_release(&row);
            w->rows++;
        }
    }
    return rc;
}

static void *scan_main(void *arg)
{
    scan_worker *w = arg;
    char a[32], z[32];
    bt_buf req = {0}, resp = {0};
    bt_msg_writer mw;
    bt_msg_writer_init(&mw, &req);
    ts_read_options ro = { .start_row = (const uint8_t *)a, .start_len = format_key(w->from, a),
                           .end_row = (const uint8_t *)z, .end_len = format_key(w->to, z) };
    bt_msg_put_varint(&mw, BENCH_TABLET_ID);
    tsp_put_filter(&mw, &ro);
    bt_msg_put_varint(&mw, 0);
    bt_msg_put_varint(&mw, TSP_SCAN_DEFAULT_BYTES);
    uint64_t id = 0;
    bool done = false;
    w->rc = scan_call(w, TSP_SCAN_OPEN, &req, &resp, &id, &done);
    while (!w->rc && !done) {
        bt_buf_clear(&req);
        bt_msg_writer_init(&mw, &req);
        bt_msg_put_varint(&mw, id);
        w->rc = scan_call(w, TSP_SCAN_NEXT, &req, &resp, &id, &done);
    }
    bt_buf_free(&req);
    bt_buf_free(&resp);
    return NULL;
}

static int run_scan(sbench *b)
{
    const sconfig *c = b->c;
    scan_worker *w = calloc((size_t)c->threads, sizeof *w);
    pthread_t *th = calloc((size_t)c->threads, sizeof *th);
    if (!w || !th) return BT_ENOMEM;
    int64_t t0 = bench_now_us();
    for (int i = 0; i < c->threads; i++) {
        w[i] = (scan_worker){ .b = b, .c = b->clients[i], .from = c->n * (uint64_t)i / (uint64_t)c->threads,
                              .to = c->n * (uint64_t)(i + 1) / (uint64_t)c->threads };
        pthread_create(&th[i], NULL, scan_main, &w[i]);
    }
    uint64_t rows = 0, errors = 0, nlat = 0;
    for (int i = 0; i < c->threads; i++) {
        pthread_join(th[i], NULL);
        rows += w[i].rows;
        nlat += w[i].nlat;
        if (w[i].rc) {
            errors++;
            fprintf(stderr, "bt-bench: scanner %d: %s %s\n", i, bt_errname(w[i].rc), w[i].err);
        }
    }
    double secs = (double)(bench_now_us() - t0) / 1e6;
    uint32_t *lat = calloc(nlat ? nlat : 1, sizeof *lat);
    size_t k = 0;
    for (int i = 0; i < c->threads; i++) {
        if (lat) memcpy(lat + k, w[i].lat, w[i].nlat * sizeof *lat);
        k += w[i].nlat;
        free(w[i].lat);
    }
    char extra[64];
    snprintf(extra, sizeof extra, ", rows %" PRIu64 ", latency per batch", rows);
    if (rows != c->n) {
        fprintf(stderr, "bt-bench: scanned %" PRIu64 " rows, expected %" PRIu64 "\n", rows, c->n);
        errors++;
    }
    print_result(c, "scan", (double)rows / secs, lat, lat ? nlat : 0, errors, extra);
    free(lat);
    free(w);
    free(th);
    return errors ? 1 : 0;
}

/* ---- setup: the master lock, the tablet, the preload ------------------------- */

static int take_master(const sconfig *c, lk_client **lk, char *seqr)
{
    int rc = lk_open(c->lock_url, NULL, lk);
    if (rc) return rc;
    rc = lk_create(*lk, "/bt", NULL, 0, LK_DIR);
    if (rc == BT_EEXIST || !rc) rc = lk_create(*lk, "/bt/master", NULL, 0, 0);
    if (rc == BT_EEXIST) rc = BT_OK;
    if (!rc) rc = lk_try_acquire(*lk, "/bt/master");
    if (rc == BT_EBUSY)
        rc = bt_err(BT_EBUSY, "/bt/master is held: a master is running; bt-bench server loads its own "
                              "tablet and needs a cluster without a master");
    if (!rc) rc = lk_get_sequencer(*lk, "/bt/master", seqr, LK_MAX_SEQUENCER);
    return rc;
}

static int load_tablet(bt_conn_pool *pool, const sconfig *c, const char *seqr)
{
    ts_schema sc;
    ts_schema_init(&sc);
    sc.groups[0].compress = false; /* the values are random bytes: Snappy would only burn CPU */
    ts_schema_add_family(&sc, "cf", 1, 0);
    tsp_tablet t = { .id = BENCH_TABLET_ID, .table = BENCH_TABLE, .table_len = strlen(BENCH_TABLE),
                     .dir = BENCH_DIR, .dir_len = strlen(BENCH_DIR) };
    bt_buf req = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_string(&w, seqr);
    tsp_put_tablet(&w, &t);
    tsp_put_schema(&w, &sc);
    bt_msg_put_varint(&w, TSP_LOAD_CREATE);
    int rc = bt_conn_call(pool, c->addr, TSP_LOAD_TABLET, req.data, req.len, &resp, 60000, BT_CALL_IDEMPOTENT);
    if (rc) bt_err(rc, "load tablet: %.*s", (int)resp.len, (const char *)resp.data);
    bt_buf_free(&req);
    bt_buf_free(&resp);
    return rc;
}

/* The server's counters (TSP_STATUS), to report what a phase cost it. */
static int server_status(bt_conn_pool *pool, const sconfig *c, tsp_status *st, bt_buf *resp)
{
    int rc = bt_conn_call(pool, c->addr, TSP_STATUS, NULL, 0, resp, 10000, BT_CALL_IDEMPOTENT);
    bt_msg_reader r;
    bt_msg_reader_init(&r, resp->data, resp->len);
    if (!rc) rc = tsp_get_status(&r, st);
    return rc;
}

/* A major compaction after the preload, so the timed phase does not compete
 * with the preload's background compactions. */
static int compact_tablet(bt_conn_pool *pool, const sconfig *c)
{
    bt_buf req = {0}, resp = {0};
    int rc = bt_buf_put_varint64(&req, BENCH_TABLET_ID);
    if (!rc) rc = bt_conn_call(pool, c->addr, TSP_COMPACT, req.data, req.len, &resp, 600000, BT_CALL_IDEMPOTENT);
    if (rc) bt_err(rc, "compact: %.*s", (int)resp.len, (const char *)resp.data);
    bt_buf_free(&req);
    bt_buf_free(&resp);
    return rc;
}

/* ---- command line ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bt-bench server --addr HOST:PORT --workload write|read|scan [options]\n"
        "\n"
        "  --addr HOST:PORT  the tablet server (required)\n"
        "  --workload W      write, read or scan (required)\n"
        "  --threads T       connections, each with its own client thread (default 4)\n"
        "  --depth D         requests in flight per connection (default 16; scan: 1)\n"
        "  --value-size B    value bytes (default 1000)\n"
        "  --n N             operations: rows written, rows read, rows scanned (default 100000)\n"
        "  --lock URL        lock service (default $BT_LOCK, else bt://127.0.0.1:7000)\n"
        "  --seed S          key sequence seed (default 301)\n"
        "\n"
        "Takes /bt/master (so no master may be running), loads tablet %llu of table\n"
        "%s in DATA_DIR/%s on the server, runs the workload and prints\n"
        "  WORKLOAD OPS_PER_SEC ops/s p50 MS ms p99 MS ms (parameters)\n"
        "read and scan first write the N rows with batches of 100 rows and run a major\n"
        "compaction, and read runs one untimed warm-up pass.\n",
        BENCH_TABLET_ID, BENCH_TABLE, BENCH_DIR);
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bt-bench server: %s%s\n\n", msg, arg);
    usage(stderr);
    return 2;
}

static bool parse_u64v(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    if (!s || *s < '0' || *s > '9') return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static int parse(sconfig *c, int argc, char **argv)
{
    const char *env = getenv("BT_LOCK");
    *c = (sconfig){ .lock_url = env && *env ? env : "bt://127.0.0.1:7000", .threads = 4, .depth = 16,
                    .value_size = 1000, .n = 100000, .seed = 301 };
    bool depth_set = false;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) return usage_error("option needs a value: ", f);
        const char *v = argv[++i];
        uint64_t x;
        if (!strcmp(f, "--addr")) c->addr = v;
        else if (!strcmp(f, "--workload")) c->workload = v;
        else if (!strcmp(f, "--lock")) c->lock_url = v;
        else if (!strcmp(f, "--threads") && parse_u64v(v, 1, 256, &x)) c->threads = (int)x;
        else if (!strcmp(f, "--depth") && parse_u64v(v, 1, 1024, &x)) { c->depth = (int)x; depth_set = true; }
        else if (!strcmp(f, "--value-size") && parse_u64v(v, 0, 8u << 20, &x)) c->value_size = (size_t)x;
        else if (!strcmp(f, "--n") && parse_u64v(v, 1, 100000000, &x)) c->n = x;
        else if (!strcmp(f, "--seed") && parse_u64v(v, 0, UINT64_MAX, &x)) c->seed = x;
        else return usage_error("bad option or value: ", f);
    }
    if (!c->addr) return usage_error("missing --addr", "");
    if (!c->workload) return usage_error("missing --workload", "");
    if (strcmp(c->workload, "write") && strcmp(c->workload, "read") && strcmp(c->workload, "scan"))
        return usage_error("--workload must be write, read or scan, not ", c->workload);
    if (!depth_set && !strcmp(c->workload, "scan")) c->depth = 1;
    return -1;
}

int bench_server_main(int argc, char **argv)
{
    sconfig c;
    int prc = parse(&c, argc, argv);
    if (prc >= 0) return prc;
    char host[256];
    uint16_t port;
    if (bt_conn_parse_addr(c.addr, host, sizeof host, &port)) return usage_error("bad --addr: ", c.addr);

    bt_conn_pool_opts po = { .conns_per_server = c.threads, .request_timeout_ms = 30000 };
    bt_conn_pool *pool = NULL;
    lk_client *lk = NULL;
    char seqr[LK_MAX_SEQUENCER];
    sbench b = { .c = &c };
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    int rc = bt_conn_pool_new(&po, &pool);
    if (!rc) rc = take_master(&c, &lk, seqr);
    if (!rc) rc = load_tablet(pool, &c, seqr);
    b.clients = calloc((size_t)c.threads, sizeof *b.clients);
    b.values = malloc(c.value_size + 4096);
    if (!rc && (!b.clients || !b.values)) rc = BT_ENOMEM;
    for (int i = 0; !rc && i < c.threads; i++) rc = bt_conn_get(pool, c.addr, &b.clients[i]);
    if (rc) {
        fprintf(stderr, "bt-bench server: %s (%s)\n", bt_errmsg(), bt_errname(rc));
        lk_close(lk);
        bt_conn_pool_free(pool);
        free(b.clients);
        free(b.values);
        return 1;
    }
    uint64_t r = c.seed;
    for (size_t i = 0; i < c.value_size + 4096; i++) b.values[i] = (char)(' ' + (r = bench_mix64(r)) % 95);

    int status = 0;
    bool is_write = !strcmp(c.workload, "write");
    if (!is_write) {
        uint64_t batches = (c.n + PRELOAD_BATCH - 1) / PRELOAD_BATCH;
        double secs = run_phase(&b, OP_PRELOAD, batches);
        free(b.lat_us);
        fprintf(stderr, "bt-bench server: preloaded %" PRIu64 " rows in %.1f s\n", c.n, secs);
        if (!atomic_load(&b.errors) && compact_tablet(pool, &c)) {
            fprintf(stderr, "bt-bench server: compaction after the preload failed: %s\n", bt_errmsg());
            status = 1;
        }
        if (atomic_load(&b.errors)) {
            fprintf(stderr, "bt-bench server: preload failed: %s\n", b.first_error);
            status = 1;
        }
    }
    if (!status && !strcmp(c.workload, "scan")) {
        status = run_scan(&b);
    } else if (!status) {
        if (!is_write) { /* warm the block cache with one untimed pass */
            double w = run_phase(&b, OP_READ, c.n);
            free(b.lat_us);
            fprintf(stderr, "bt-bench server: warm-up pass %.0f reads/s\n", (double)c.n / w);
            atomic_store(&b.errors, 0);
        }
        tsp_status s0 = {0}, s1 = {0};
        bt_buf r0 = {0}, r1 = {0};
        int src = server_status(pool, &c, &s0, &r0);
        double secs = run_phase(&b, is_write ? OP_WRITE : OP_READ, c.n);
        if (!src && !server_status(pool, &c, &s1, &r1) && is_write) {
            uint64_t appends = s1.log_appends - s0.log_appends, syncs = s1.log_syncs - s0.log_syncs;
            fprintf(stderr, "bt-bench server: the server wrote %" PRIu64 " commit-log records with %" PRIu64
                    " fsyncs (%.1f writes per fsync)\n", appends, syncs, syncs ? (double)c.n / (double)syncs : 0.0);
        }
        bt_buf_free(&r0);
        bt_buf_free(&r1);
        uint64_t errors = atomic_load(&b.errors);
        print_result(&c, c.workload, (double)c.n / secs, b.lat_us, c.n, errors, "");
        if (errors) {
            fprintf(stderr, "bt-bench server: %" PRIu64 " errors; first: %s\n", errors, b.first_error);
            status = 1;
        }
        free(b.lat_us);
    }
    bt_conn_pool_free(pool);
    lk_close(lk);
    free(b.clients);
    free(b.values);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
    return status;
}

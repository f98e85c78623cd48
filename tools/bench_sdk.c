/* tools/bench_sdk.c: `bt-bench sdk`, single-row operations through libbt
 * (client/bt.h) against a running cluster: the baseline the HTTP gateway is
 * measured against (scripts/bench-gateway.sh, docs/performance.md).
 *
 *   bt-bench sdk --lock URL --table T --workload put|get --threads T --n N
 *                [--value-size B] [--keys K] [--first F] [--create] [--seed S]
 *                [--thread-connections]
 *
 * T threads share one bt_client and one table handle and run N operations
 * in all, each one synchronous call:
 *   put  bt_apply of one row, one SetCell cf:c (server time) of B bytes;
 *        operation i writes row "user%012d" of F + i (distinct keys)
 *   get  bt_read_row of a row chosen at random among "user%012d" of
 *        [F, F + K) (K defaults to N); a missing row is counted, not an error
 * Keys and values match scripts/wrk/gateway.lua, so both paths do the same
 * work.  --create makes the table (family cf, one tablet) if it is missing.
 * Prints one line: workload, operations per second, p50, p99 and mean
 * latency in milliseconds, then the parameters and the error count.
 */
#include "tools/bench_sdk.h"
#include "tools/bench_server.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/bt.h"

#define SDK_FAMILY "cf"
#define SDK_QUALIFIER "c"
#define SDK_KEY_FMT "user%012" PRIu64

typedef struct sdk_config {
    const char *lock_url, *table, *workload;
    int threads;
    uint64_t n, keys, first, seed;
    size_t value_size;
    bool create, thread_connections;
} sdk_config;

typedef struct sdk_bench {
    const sdk_config *c;
    bt_table *t;
    bool put;
    char *value;                    /* value_size bytes */
    uint32_t *lat_us;               /* per operation */
    atomic_uint_fast64_t next;      /* next operation to run */
    atomic_uint_fast64_t errors, missing;
    pthread_mutex_t mu;             /* protects first_error */
    char first_error[256];
} sdk_bench;


static void note_error(sdk_bench *b, int rc)
{
    if (atomic_fetch_add(&b->errors, 1) == 0) {
        pthread_mutex_lock(&b->mu);
        snprintf(b->first_error, sizeof b->first_error, "%s: %s", bt_errname(rc), bt_errmsg());
        pthread_mutex_unlock(&b->mu);
    }
}

static int one_op(sdk_bench *b, uint64_t op)
{
    const sdk_config *c = b->c;
    char key[32];
    uint64_t k = b->put ? c->first + op : c->first + bench_mix64(c->seed ^ (op * 0x9e6c63d0676a9a99ull)) % c->keys;
    int kl = snprintf(key, sizeof key, SDK_KEY_FMT, k);
    if (b->put) {
        bt_mutation *m = bt_mutation_new(key, (size_t)kl);
        if (!m) return BT_ENOMEM;
        int rc = bt_mutation_set(m, SDK_FAMILY, SDK_QUALIFIER, 1, BT_SERVER_TIME, b->value, c->value_size);
        if (!rc) rc = bt_apply(b->t, m);
        bt_mutation_free(m);
        return rc;
    }
    bt_row *r = NULL;
    int rc = bt_read_row(b->t, key, (size_t)kl, NULL, &r);
    bt_row_free(r);
    if (rc == BT_ENOTFOUND) {
        atomic_fetch_add(&b->missing, 1);
        rc = BT_OK;
    }
    return rc;
}

static void *worker(void *arg)
{
    sdk_bench *b = arg;
    for (;;) {
        uint64_t op = atomic_fetch_add(&b->next, 1);
        if (op >= b->c->n) break;
        int64_t t0 = bench_now_us();
        int rc = one_op(b, op);
        int64_t lat = bench_now_us() - t0;
        b->lat_us[op] = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
        if (rc) note_error(b, rc);
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* ---- command line ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bt-bench sdk --table T --workload put|get [options]\n"
        "\n"
        "  --lock URL        lock service (default $BT_LOCK, else bt://127.0.0.1:7000)\n"
        "  --table T         the table (family cf; see --create) (required)\n"
        "  --workload W      put: distinct rows user%%012d of F.. ; get: random rows of\n"
        "                    [F, F+K) (required)\n"
        "  --threads T       threads, each doing one synchronous call at a time (default 16)\n"
        "  --n N             operations in all (default 100000)\n"
        "  --value-size B    put: value bytes (default 100)\n"
        "  --keys K          get: rows to pick from (default N)\n"
        "  --first F         first key index (default 0)\n"
        "  --create          create the table (family cf) if it does not exist\n"
        "  --seed S          get: key sequence seed (default 301)\n"
        "  --thread-connections  each thread its own blocking connection per server\n"
        "                    (bt_client_options.thread_connections, as bt-gateway uses)\n");
}

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bt-bench sdk: %s%s\n\n", msg, arg);
    usage(stderr);
    return 2;
}

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    if (!*s || *s == '-') return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static int parse(sdk_config *c, int argc, char **argv)
{
    const char *env = getenv("BT_LOCK");
    *c = (sdk_config){.lock_url = env && *env ? env : "bt://127.0.0.1:7000", .threads = 16, .n = 100000,
                      .value_size = 100, .seed = 301};
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        uint64_t x;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(f, "--create")) {
            c->create = true;
            continue;
        }
        if (!strcmp(f, "--thread-connections")) {
            c->thread_connections = true;
            continue;
        }
        if (i + 1 >= argc) return usage_error("option needs a value: ", f);
        const char *v = argv[++i];
        if (!strcmp(f, "--lock")) c->lock_url = v;
        else if (!strcmp(f, "--table")) c->table = v;
        else if (!strcmp(f, "--workload")) c->workload = v;
        else if (!strcmp(f, "--threads") && parse_u64(v, 1, 1024, &x)) c->threads = (int)x;
        else if (!strcmp(f, "--n") && parse_u64(v, 1, 100000000, &x)) c->n = x;
        else if (!strcmp(f, "--value-size") && parse_u64(v, 0, 8u << 20, &x)) c->value_size = (size_t)x;
        else if (!strcmp(f, "--keys") && parse_u64(v, 1, 1000000000000ull, &x)) c->keys = x;
        else if (!strcmp(f, "--first") && parse_u64(v, 0, 1000000000000ull, &x)) c->first = x;
        else if (!strcmp(f, "--seed") && parse_u64(v, 0, UINT64_MAX, &x)) c->seed = x;
        else return usage_error("bad option or value: ", f);
    }
    if (!c->table) return usage_error("missing --table", "");
    if (!c->workload) return usage_error("missing --workload", "");
    if (strcmp(c->workload, "put") && strcmp(c->workload, "get"))
        return usage_error("--workload must be put or get, not ", c->workload);
    if (!c->keys) c->keys = c->n;
    return -1;
}

static int create_if_missing(bt_client *cl, const char *name)
{
    bt_schema *s = bt_schema_new();
    if (!s) return BT_ENOMEM;
    int rc = bt_schema_add_family(s, SDK_FAMILY, 0, 0);
    if (!rc) rc = bt_create_table(cl, name, s, NULL, 0);
    bt_schema_free(s);
    return rc == BT_EEXIST ? BT_OK : rc;
}

int bench_sdk_main(int argc, char **argv)
{
    sdk_config c;
    int st = parse(&c, argc, argv);
    if (st >= 0) return st;

    bt_client_options o = {.timeout_ms = 30000, .conns_per_server = 4, .thread_connections = c.thread_connections};
    bt_client *cl = NULL;
    int rc = bt_connect(c.lock_url, &o, &cl);
    if (!rc && c.create) rc = create_if_missing(cl, c.table);
    sdk_bench b = {.c = &c, .put = !strcmp(c.workload, "put")};
    if (!rc) rc = bt_table_open(cl, c.table, &b.t);
    if (rc) {
        fprintf(stderr, "bt-bench sdk: %s: %s (%s)\n", c.lock_url, bt_errmsg(), bt_errname(rc));
        bt_close(cl);
        return 1;
    }
    b.value = malloc(c.value_size + 1);
    b.lat_us = calloc(c.n, sizeof *b.lat_us);
    pthread_t *th = calloc((size_t)c.threads, sizeof *th);
    if (!b.value || !b.lat_us || !th) {
        fprintf(stderr, "bt-bench sdk: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < c.value_size; i++) b.value[i] = (char)('a' + i % 26);
    pthread_mutex_init(&b.mu, NULL);

    int64_t t0 = bench_now_us();
    int started = 0;
    for (; started < c.threads; started++)
        if (pthread_create(&th[started], NULL, worker, &b)) break;
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    double secs = (double)(bench_now_us() - t0) / 1e6;

    qsort(b.lat_us, c.n, sizeof *b.lat_us, cmp_u32);
    double mean = 0;
    for (uint64_t i = 0; i < c.n; i++) mean += b.lat_us[i];
    mean /= (double)c.n;
    uint64_t errors = atomic_load(&b.errors), missing = atomic_load(&b.missing);
    printf("sdk %s %.0f ops/s p50 %.3f ms p99 %.3f ms mean %.3f ms (n %" PRIu64 ", threads %d, value %zu B, "
           "errors %" PRIu64 "%s)\n",
           c.workload, secs > 0 ? (double)c.n / secs : 0.0, b.lat_us[c.n / 2] / 1000.0,
           b.lat_us[c.n * 99 / 100] / 1000.0, mean / 1000.0, c.n, started, c.value_size, errors,
           b.put ? "" : missing ? ", some rows missing" : "");
    if (missing) fprintf(stderr, "bt-bench sdk: %" PRIu64 " reads found no row\n", missing);
    if (errors) fprintf(stderr, "bt-bench sdk: %" PRIu64 " errors; first: %s\n", errors, b.first_error);
    pthread_mutex_destroy(&b.mu);
    free(th);
    free(b.lat_us);
    free(b.value);
    bt_table_close(b.t);
    bt_close(cl);
    return errors ? 1 : 0;
}

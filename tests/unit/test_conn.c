/* tests/unit/test_conn.c: the client connection pool (client/conn.h) against
 * real rpc_servers on ephemeral 127.0.0.1 ports inside the test process.
 *
 * Covered: round trips, address parsing, option checks, the retry policy
 * (which statuses are retried, only with BT_CALL_IDEMPOTENT, exactly how many
 * attempts reach the server), dead addresses failing in bounded time,
 * per-attempt timeouts, async calls, many threads through one pool to two
 * servers, round-robin over distinct connections, drop and reconnect, and a
 * retried call riding out a server restart.  Every test frees what it started,
 * even its held-back contexts.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/conn.h"
#include "common/coding.h"
#include "common/rpc.h"
#include "common/status.h"

/* LeakSanitizer and Criterion's runner: see tests/unit/test_rpc.c. */
void __lsan_disable(void) __attribute__((weak));

__attribute__((constructor)) static void runner_leaks_are_not_ours(void)
{
    if (!getenv("BXFI_MAP") && __lsan_disable) __lsan_disable();
}

enum { M_ECHO = 100, M_FLAKY = 101, M_INVAL = 102, M_NOTSERVING = 103, M_TIMEDOUT = 104,
       M_HOLD2 = 105, M_HOLD = 106 };

/* ---- helpers ----------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void h_echo(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    (void)arg;
    rpc_respond(ctx, BT_OK, req->payload, req->payload_len);
}

/* Answers `status` to its first fail_n calls, then echoes; counts calls. */
struct flaky {
    atomic_int calls;
    int fail_n;
    int status;
};

static struct flaky g_flaky = {.fail_n = 2, .status = BT_EUNAVAIL};
static struct flaky g_inval = {.fail_n = 1 << 30, .status = BT_EINVAL};
static struct flaky g_notserving = {.fail_n = 1 << 30, .status = BT_ENOTSERVING};
static struct flaky g_timedout = {.fail_n = 1, .status = BT_ETIMEDOUT};

static void h_flaky(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    struct flaky *f = arg;
    if (atomic_fetch_add(&f->calls, 1) < f->fail_n) rpc_respond(ctx, f->status, "nope", 4);
    else rpc_respond(ctx, BT_OK, req->payload, req->payload_len);
}

/* Holds back (never answers) its first hold_n calls, then echoes. */
struct hold {
    atomic_int calls;
    int hold_n;
};

static struct hold g_hold2 = {.hold_n = 2};
static struct hold g_hold = {.hold_n = 1 << 30};

static struct {
    pthread_mutex_t mu; /* protects ctx, n */
    rpc_ctx *ctx[64];
    int n;
} g_stash = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void h_hold(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    struct hold *h = arg;
    if (atomic_fetch_add(&h->calls, 1) >= h->hold_n) {
        rpc_respond(ctx, BT_OK, req->payload, req->payload_len);
        return;
    }
    pthread_mutex_lock(&g_stash.mu);
    cr_assert_lt(g_stash.n, 64);
    g_stash.ctx[g_stash.n++] = ctx;
    pthread_mutex_unlock(&g_stash.mu);
}

/* Answers every held-back context (possibly after its server is gone). */
static void stash_release(void)
{
    pthread_mutex_lock(&g_stash.mu);
    for (int i = 0; i < g_stash.n; i++) rpc_respond(g_stash.ctx[i], BT_OK, "late", 4);
    g_stash.n = 0;
    pthread_mutex_unlock(&g_stash.mu);
}

static const rpc_method k_methods[] = {
    {M_ECHO, h_echo, NULL},
    {M_FLAKY, h_flaky, &g_flaky},
    {M_INVAL, h_flaky, &g_inval},
    {M_NOTSERVING, h_flaky, &g_notserving},
    {M_TIMEDOUT, h_flaky, &g_timedout},
    {M_HOLD2, h_hold, &g_hold2},
    {M_HOLD, h_hold, &g_hold},
};
#define N_METHODS (sizeof k_methods / sizeof *k_methods)

static rpc_server *server_on(uint16_t port)
{
    rpc_server *s;
    cr_assert_eq(rpc_server_new("127.0.0.1", port, k_methods, N_METHODS, NULL, &s), BT_OK, "%s",
                 bt_errmsg());
    cr_assert_eq(rpc_server_start(s), BT_OK);
    return s;
}

static void addr_of(const rpc_server *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "127.0.0.1:%u", (unsigned)rpc_server_port(s));
}

static bt_conn_pool *pool_new(const bt_conn_pool_opts *o)
{
    bt_conn_pool *p;
    cr_assert_eq(bt_conn_pool_new(o, &p), BT_OK, "%s", bt_errmsg());
    return p;
}

static void expect_echo(bt_conn_pool *p, const char *addr, const char *s, int flags)
{
    bt_buf resp = {0};
    int rc = bt_conn_call(p, addr, M_ECHO, s, strlen(s), &resp, 0, flags);
    cr_assert_eq(rc, BT_OK, "%s: %s", bt_errname(rc), bt_errmsg());
    cr_assert_eq(resp.len, strlen(s));
    if (resp.len) cr_assert_arr_eq(resp.data, s, resp.len);
    bt_buf_free(&resp);
}

/* A port with nothing listening on it (bound, then closed; nobody else takes
 * an ephemeral port back that quickly). */
/* A loopback port where connections are refused: bound but never listening,
 * and kept bound for the life of the test process, so no other test (tests
 * run in parallel) can start a server on it. */
static uint16_t dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port); /* fd deliberately left open */
}

static bool eventually_connections(rpc_server *s, int want, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (rpc_server_connections(s) != want) {
        if (now_ms() > end) return false;
        sleep_ms(5);
    }
    return true;
}

/* ---- basics ---------------------------------------------------------------------- */

Test(conn, round_trip, .timeout = 20)
{
    rpc_server *s = server_on(0);
    char addr[64];
    addr_of(s, addr, sizeof addr);
    bt_conn_pool *p = pool_new(NULL);
    expect_echo(p, addr, "hello", 0);
    expect_echo(p, addr, "", BT_CALL_IDEMPOTENT);
    cr_assert_eq(bt_conn_call(p, addr, M_ECHO, "x", 1, NULL, 0, 0), BT_OK, "resp may be NULL");
    bt_buf resp = {0};
    cr_assert_eq(bt_conn_call(p, addr, 199, "x", 1, &resp, 0, BT_CALL_IDEMPOTENT), BT_EINVAL,
                 "unknown method");
    cr_assert_eq(resp.len, strlen("unknown method 199"), "the server's detail is returned");
    bt_buf_free(&resp);
    rpc_client *c;
    cr_assert_eq(bt_conn_get(p, addr, &c), BT_OK);
    cr_assert_eq(rpc_call(c, M_ECHO, "y", 1, NULL, 0), BT_OK, "a pool client is a plain client");
    bt_conn_pool_free(p);
    bt_conn_pool_free(NULL);
    rpc_server_free(s);
}

static void expect_bad_addr(const char *addr)
{
    char host[64] = "unchanged";
    uint16_t port = 0;
    cr_expect_eq(bt_conn_parse_addr(addr, host, sizeof host, &port), BT_EINVAL, "'%s'", addr);
    cr_expect_neq(bt_errmsg()[0], '\0', "'%s' has a detail", addr);
}

static void expect_good_addr(const char *addr, const char *want_host, uint16_t want_port)
{
    char host[64];
    uint16_t port = 0;
    cr_assert_eq(bt_conn_parse_addr(addr, host, sizeof host, &port), BT_OK, "'%s': %s", addr,
                 bt_errmsg());
    cr_expect_str_eq(host, want_host);
    cr_expect_eq(port, want_port);
}

Test(conn, parse_addr, .timeout = 10)
{
    expect_good_addr("127.0.0.1:8080", "127.0.0.1", 8080);
    expect_good_addr("localhost:1", "localhost", 1);
    expect_good_addr("ts-3.bigtable_test.example:65535", "ts-3.bigtable_test.example", 65535);
    expect_bad_addr("127.0.0.1");       /* no port */
    expect_bad_addr("127.0.0.1:");      /* empty port */
    expect_bad_addr("127.0.0.1:0");
    expect_bad_addr("127.0.0.1:70000");
    expect_bad_addr("127.0.0.1:65536");
    expect_bad_addr("127.0.0.1:99999999999999999999999");
    expect_bad_addr(":80");             /* empty host */
    expect_bad_addr("");
    expect_bad_addr("garbage");
    expect_bad_addr("host:80x");
    expect_bad_addr("host:-1");
    expect_bad_addr("host:+80");
    expect_bad_addr("ho st:80");
    expect_bad_addr("::1:80");          /* no IPv6 */
    expect_bad_addr(NULL);
    char host[4];
    uint16_t port;
    cr_assert_eq(bt_conn_parse_addr("abcd:1", host, sizeof host, &port), BT_EINVAL,
                 "host does not fit");
    cr_assert_eq(bt_conn_parse_addr("abc:1", host, sizeof host, &port), BT_OK);
    char longname[300];
    memset(longname, 'a', 256);
    strcpy(longname + 256, ":80");
    char big[512];
    cr_assert_eq(bt_conn_parse_addr(longname, big, sizeof big, &port), BT_EINVAL);

    /* pool entry points reject malformed addresses without a connection */
    bt_conn_pool *p = pool_new(NULL);
    rpc_client *c = (rpc_client *)1;
    cr_assert_eq(bt_conn_get(p, "nope", &c), BT_EINVAL);
    cr_assert_null(c);
    cr_assert_eq(bt_conn_call(p, "1.2.3.4:0", M_ECHO, "x", 1, NULL, 0, BT_CALL_IDEMPOTENT),
                 BT_EINVAL);
    bt_conn_pool_drop(p, "never-used:1");
    bt_conn_pool_free(p);
}

Test(conn, pool_options, .timeout = 10)
{
    bt_conn_pool *p;
    bt_conn_pool_opts o = {.conns_per_server = -1};
    cr_assert_eq(bt_conn_pool_new(&o, &p), BT_EINVAL);
    cr_assert_null(p);
    o = (bt_conn_pool_opts){.backoff_min_ms = 100, .backoff_max_ms = 10};
    cr_assert_eq(bt_conn_pool_new(&o, &p), BT_EINVAL);
    o = (bt_conn_pool_opts){.backoff_min_ms = 2000}; /* over the default cap */
    cr_assert_eq(bt_conn_pool_new(&o, &p), BT_EINVAL);
    o = (bt_conn_pool_opts){.max_frame = 3};
    cr_assert_eq(bt_conn_pool_new(&o, &p), BT_EINVAL);
    o = (bt_conn_pool_opts){.max_attempts = 100000};
    cr_assert_eq(bt_conn_pool_new(&o, &p), BT_EINVAL);
    o = (bt_conn_pool_opts){.backoff_min_ms = 1, .backoff_max_ms = 1, .conns_per_server = 1};
    cr_assert_eq(bt_conn_pool_new(&o, &p), BT_OK);
    rpc_server *s = server_on(0);
    char addr[64];
    addr_of(s, addr, sizeof addr);
    cr_assert_eq(bt_conn_call(p, addr, M_ECHO, "x", 1, NULL, 0, 2), BT_EINVAL, "unknown flag");
    expect_echo(p, addr, "tiny backoff is fine", BT_CALL_IDEMPOTENT);
    bt_conn_pool_free(p);
    rpc_server_free(s);
}

/* ---- retry policy ---------------------------------------------------------------- */

Test(conn, idempotent_call_retries_unavailable, .timeout = 20)
{
    rpc_server *s = server_on(0);
    char addr[64];
    addr_of(s, addr, sizeof addr);
    bt_conn_pool *p = pool_new(NULL);
    bt_buf resp = {0};
    int rc = bt_conn_call(p, addr, M_FLAKY, "ok", 2, &resp, 0, BT_CALL_IDEMPOTENT);
    cr_assert_eq(rc, BT_OK, "%s", bt_errname(rc));
    cr_assert_eq(atomic_load(&g_flaky.calls), 3);
    cr_assert_eq(resp.len, 2, "the answer of the last attempt only");
    cr_assert_arr_eq(resp.data, "ok", 2);
    /* the server answering BT_ETIMEDOUT is retried too */
    cr_assert_eq(bt_conn_call(p, addr, M_TIMEDOUT, "t", 1, &resp, 0, BT_CALL_IDEMPOTENT), BT_OK);
    cr_assert_eq(atomic_load(&g_timedout.calls), 2);
    bt_buf_free(&resp);
    bt_conn_pool_free(p);
    rpc_server_free(s);
}

Test(conn, non_idempotent_call_is_not_retried, .timeout = 20)
{
    rpc_server *s = server_on(0);
    char addr[64];
    addr_of(s, addr, sizeof addr);
    bt_conn_pool *p = pool_new(NULL);
    bt_buf resp = {0};
    cr_assert_eq(bt_conn_call(p, addr, M_FLAKY, "ok", 2, &resp, 0, 0), BT_EUNAVAIL);
    cr_assert_eq(atomic_load(&g_flaky.calls), 1);
    cr_assert_eq(resp.len, 4);
    cr_assert_arr_eq(resp.data, "nope", 4);
    cr_assert_eq(bt_conn_call(p, addr, M_TIMEDOUT, "t", 1, NULL, 0, 0), BT_ETIMEDOUT);
    cr_assert_eq(atomic_load(&g_timedout.calls), 1);
    bt_buf_free(&resp);
    bt_conn_pool_free(p);
    rpc_server_free(s);
}

Test(conn, other_errors_are_never_retried, .timeout = 20)
{
    rpc_server *s = server_on(0);
    char addr[64];
    addr_of(s, addr, sizeof addr);
    bt_conn_pool *p = pool_new(NULL);
    cr_assert_eq(bt_conn_call(p, addr, M_INVAL, "x", 1, NULL, 0, BT_CALL_IDEMPOTENT), BT_EINVAL);
    cr_assert_eq(atomic_load(&g_inval.calls), 1);
    cr_assert_eq(bt_conn_call(p, addr, M_NOTSERVING, "x", 1, NULL, 0, BT_CALL_IDEMPOTENT),
                 BT_ENOTSERVING);
    cr_assert_eq(atomic_load(&g_notserving.calls), 1);
    bt_conn_pool_free(p);
    rpc_server_free(s);
}

Test(conn, dead_address_fails_in_bounded_time, .timeout = 20)
{
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)dead_port());
    bt_conn_pool_opts o = {.max_attempts = 4, .backoff_min_ms = 20, .backoff_max_ms = 100};
    bt_conn_pool *p = pool_new(&o);
    uint64_t t0 = now_ms();
    int rc = bt_conn_call(p, addr, M_ECHO, "x", 1, NULL, 0, BT_CALL_IDEMPOTENT);
    uint64_t took = now_ms() - t0;
    cr_assert_eq(rc, BT_EUNAVAIL, "%s", bt_errname(rc));
    cr_assert(strstr(bt_errmsg(), "4 attempts"), "detail: %s", bt_errmsg());
    /* three waits of at least 10, 20 and 40 ms; at most 20, 40, 80 plus connects */
    cr_assert_geq(took, 65, "took %llu ms", (unsigned long long)took);
    cr_assert_lt(took, 3000, "took %llu ms", (unsigned long long)took);
    t0 = now_ms();
    cr_assert_eq(bt_conn_call(p, addr, M_ECHO, "x", 1, NULL, 0, 0), BT_EUNAVAIL);
    cr_assert_lt(now_ms() - t0, 1000, "a non-idempotent call does not wait");
    bt_conn_pool_free(p);
}

Test(conn, per_attempt_timeout, .timeout = 30)
{
    rpc_server *s = server_on(0);
    char addr[64];
    addr_of(s, addr, sizeof addr);
    bt_conn_pool_opts o = {.max_attempts = 3, .request_timeout_ms = 100};
    bt_conn_pool *p = pool_new(&o);
    /* held twice, answered on the third attempt */
    uint64_t t0 = now_ms();
    int rc = bt_conn_call(p, addr, M_HOLD2, "x", 1, NULL, 150, BT_CALL_IDEMPOTENT);
    cr_assert_eq(rc, BT_OK, "%s", bt_errname(rc));
    cr_assert_eq(atomic_load(&g_hold2.calls), 3);
    cr_assert_geq(now_ms() - t0, 290, "two attempts timed out");
    /* never answered: BT_ETIMEDOUT after every attempt, with the pool's default */
    rc = bt_conn_call(p, addr, M_HOLD, "x", 1, NULL, 0, BT_CALL_IDEMPOTENT);
    cr_assert_eq(rc, BT_ETIMEDOUT, "%s", bt_errname(rc));
    cr_assert_eq(atomic_load(&g_hold.calls), 3);
    t0 = now_ms();
    rc = bt_conn_call(p, addr, M_HOLD, "x", 1, NULL, 50, 0);
    cr_assert_eq(rc, BT_ETIMEDOUT);
    cr_assert_eq(atomic_load(&g_hold.calls), 4, "not retried without the flag");
    cr_assert_lt(now_ms() - t0, 2000);
    stash_release(); /* late answers: dropped by the clients */
    expect_echo(p, addr, "still fine", 0);
    bt_conn_pool_free(p);
    rpc_server_free(s);
}

/* ---- async ----------------------------------------------------------------------- */

static struct {
    pthread_mutex_t mu; /* protects done, bad */
    pthread_cond_t cv;
    int done;
    int bad;
} g_async = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void async_done(void *arg, int status, const uint8_t *payload, size_t len, bool more)
{
    const char *want = arg;
    bool ok = !more && status == BT_OK && len == strlen(want) && !memcmp(payload, want, len);
    pthread_mutex_lock(&g_async.mu);
    g_async.done++;
    if (!ok) g_async.bad++;
    pthread_cond_broadcast(&g_async.cv);
    pthread_mutex_unlock(&g_async.mu);
}

Test(conn, async_call_completes, .timeout = 20)
{
    rpc_server *s = server_on(0);
    char addr[64];
    addr_of(s, addr, sizeof addr);
    bt_conn_pool *p = pool_new(NULL);
    static const char *msgs[] = {"one", "two", "three", "four"};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(bt_conn_call_async(p, addr, M_ECHO, msgs[i], strlen(msgs[i]), 0, async_done,
                                        (void *)msgs[i]),
                     BT_OK);
    cr_assert_eq(bt_conn_call_async(p, "bad", M_ECHO, "x", 1, 0, async_done, (void *)"x"),
                 BT_EINVAL, "done is not called");
    pthread_mutex_lock(&g_async.mu);
    while (g_async.done < 4) pthread_cond_wait(&g_async.cv, &g_async.mu);
    pthread_mutex_unlock(&g_async.mu);
    sleep_ms(20);
    pthread_mutex_lock(&g_async.mu);
    cr_assert_eq(g_async.done, 4);
    cr_assert_eq(g_async.bad, 0);
    pthread_mutex_unlock(&g_async.mu);
    bt_conn_pool_free(p);
    rpc_server_free(s);
}

/* ---- concurrency and connections -------------------------------------------------- */

#define THREADS 8
#define CALLS_PER_THREAD 1000

struct caller {
    bt_conn_pool *p;
    const char *addr[2];
    int thread;
    int failures;
};

static void *caller_main(void *arg)
{
    struct caller *a = arg;
    bt_buf resp = {0};
    for (int i = 0; i < CALLS_PER_THREAD; i++) {
        char req[64];
        int n = snprintf(req, sizeof req, "thread %d call %d", a->thread, i);
        int rc = bt_conn_call(a->p, a->addr[(i + a->thread) % 2], M_ECHO, req, (size_t)n, &resp,
                              10000, i % 3 ? BT_CALL_IDEMPOTENT : 0);
        if (rc || resp.len != (size_t)n || memcmp(resp.data, req, (size_t)n)) a->failures++;
    }
    bt_buf_free(&resp);
    return NULL;
}

Test(conn, many_threads_two_servers, .timeout = 60)
{
    rpc_server *s[2] = {server_on(0), server_on(0)};
    char addr[2][64];
    addr_of(s[0], addr[0], sizeof addr[0]);
    addr_of(s[1], addr[1], sizeof addr[1]);
    bt_conn_pool *p = pool_new(NULL); /* two connections per server */
    pthread_t t[THREADS];
    struct caller a[THREADS];
    for (int i = 0; i < THREADS; i++) {
        a[i] = (struct caller){.p = p, .addr = {addr[0], addr[1]}, .thread = i};
        cr_assert_eq(pthread_create(&t[i], NULL, caller_main, &a[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++) cr_expect_eq(a[i].failures, 0, "thread %d", i);
    for (int i = 0; i < 2; i++)
        cr_expect(eventually_connections(s[i], 2, 5000), "server %d: %d connections", i,
                  rpc_server_connections(s[i]));
    bt_conn_pool_free(p);
    for (int i = 0; i < 2; i++) {
        cr_expect(eventually_connections(s[i], 0, 5000), "freeing the pool closes them");
        rpc_server_free(s[i]);
    }
}

Test(conn, round_robin_over_distinct_clients, .timeout = 20)
{
    rpc_server *s = server_on(0);
    char addr[64];
    addr_of(s, addr, sizeof addr);
    bt_conn_pool_opts o = {.conns_per_server = 3};
    bt_conn_pool *p = pool_new(&o);
    rpc_client *c[4];
    for (int i = 0; i < 4; i++) cr_assert_eq(bt_conn_get(p, addr, &c[i]), BT_OK);
    cr_assert_neq(c[0], c[1]);
    cr_assert_neq(c[1], c[2]);
    cr_assert_neq(c[0], c[2]);
    cr_assert_eq(c[3], c[0], "round-robin wraps around");
    cr_assert_eq(rpc_server_connections(s), 0, "clients connect on their first call");
    for (int i = 0; i < 6; i++) expect_echo(p, addr, "spread", 0);
    cr_assert(eventually_connections(s, 3, 5000), "%d connections",
              rpc_server_connections(s));
    for (int i = 0; i < 30; i++) expect_echo(p, addr, "no more than three", 0);
    cr_assert_eq(rpc_server_connections(s), 3);
    bt_conn_pool_free(p);
    rpc_server_free(s);
}

Test(conn, drop_then_reconnect, .timeout = 20)
{
    rpc_server *s = server_on(0);
    char addr[64];
    addr_of(s, addr, sizeof addr);
    bt_conn_pool_opts o = {.conns_per_server = 1};
    bt_conn_pool *p = pool_new(&o);
    expect_echo(p, addr, "first", 0);
    cr_assert(eventually_connections(s, 1, 5000));
    bt_conn_pool_drop(p, addr);
    cr_assert(eventually_connections(s, 0, 5000), "drop closes the connection");
    bt_conn_pool_drop(p, addr); /* already gone: nothing */
    expect_echo(p, addr, "again", BT_CALL_IDEMPOTENT);
    cr_assert(eventually_connections(s, 1, 5000), "a new connection");
    /* many addresses (the map grows past its first buckets) */
    rpc_server *more[40];
    char maddr[40][64];
    for (int i = 0; i < 40; i++) {
        more[i] = server_on(0);
        addr_of(more[i], maddr[i], sizeof maddr[i]);
        expect_echo(p, maddr[i], "grow", 0);
    }
    for (int i = 0; i < 40; i += 2) bt_conn_pool_drop(p, maddr[i]);
    for (int i = 0; i < 40; i++) expect_echo(p, maddr[i], "still there", 0);
    expect_echo(p, addr, "and the first", 0);
    bt_conn_pool_free(p);
    for (int i = 0; i < 40; i++) rpc_server_free(more[i]);
    rpc_server_free(s);
}

/* ---- a server restart ------------------------------------------------------------- */

struct restart {
    uint16_t port;
    rpc_server *s;
};

static void *restart_main(void *arg)
{
    struct restart *r = arg;
    sleep_ms(100);
    r->s = server_on(r->port);
    return NULL;
}

Test(conn, idempotent_call_rides_out_a_restart, .timeout = 30)
{
    rpc_server *s = server_on(0);
    char addr[64];
    addr_of(s, addr, sizeof addr);
    bt_conn_pool_opts o = {.max_attempts = 12, .backoff_min_ms = 20, .backoff_max_ms = 300};
    bt_conn_pool *p = pool_new(&o);
    expect_echo(p, addr, "before", 0);
    struct restart r = {.port = rpc_server_port(s)};
    rpc_server_free(s);
    cr_assert_eq(bt_conn_call(p, addr, M_ECHO, "x", 1, NULL, 0, 0), BT_EUNAVAIL, "down");
    pthread_t t;
    uint64_t t0 = now_ms();
    cr_assert_eq(pthread_create(&t, NULL, restart_main, &r), 0);
    expect_echo(p, addr, "after", BT_CALL_IDEMPOTENT);
    cr_assert_geq(now_ms() - t0, 90, "the first attempts failed and were retried");
    pthread_join(t, NULL);
    bt_conn_pool_free(p);
    rpc_server_free(r.s);
}

/* tests/unit/test_rpc.c: the RPC server and client (common/rpc.h), for real:
 * servers on ephemeral 127.0.0.1 ports and clients inside the test process,
 * plus raw sockets where a test needs to misbehave like a broken peer.
 *
 * Covered: round trips and error statuses, many threads sharing one client
 * while the server answers out of order from worker threads, deep async
 * pipelining, streamed answers, timeouts and late answers, server stop and
 * restart on the same port, malformed and oversize frames, 2000 idle
 * connections, idle timeout, connection limit, client shutdown with calls in
 * flight.  Every test frees what it started, even its held-back contexts.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/coding.h"
#include "common/rpc.h"
#include "common/rpc_codec.h"
#include "common/status.h"

enum { M_ECHO = 100, M_FAIL = 101, M_STASH = 102, M_POOL = 103, M_BLOB = 104, M_STREAM = 105,
       M_SLOW = 106 };

/* LeakSanitizer: Criterion's runner (BoxFort's timeout bookkeeping) loses
 * the records of .timeout tests that end while another runs (--jobs 2, as
 * scripts/run-tests.sh runs them), and would fail the binary for a leak that
 * is not ours.  The runner's own allocations are therefore not tracked; the
 * tests run in BoxFort workers (BXFI_MAP set), where leak checking stays on. */
void __lsan_disable(void) __attribute__((weak));

__attribute__((constructor)) static void runner_leaks_are_not_ours(void)
{
    if (!getenv("BXFI_MAP") && __lsan_disable) __lsan_disable();
}

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

/* Polls cond() every 5 ms for up to ms; true once it holds. */
static bool eventually(bool (*cond)(void *), void *arg, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (!cond(arg)) {
        if (now_ms() > end) return false;
        sleep_ms(5);
    }
    return true;
}

static void h_echo(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    (void)arg;
    rpc_respond(ctx, BT_OK, req->payload, req->payload_len);
}

static void h_fail(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    (void)arg;
    (void)req;
    rpc_respond(ctx, BT_ENOTFOUND, "no such row", 11);
}

/* Answers with as many bytes as the request's varint asks for. */
static void h_blob(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    (void)arg;
    bt_msg_reader r;
    uint64_t n;
    bt_msg_reader_init(&r, req->payload, req->payload_len);
    if (bt_msg_get_varint(&r, &n) || n > ((size_t)64 << 20)) {
        rpc_respond(ctx, BT_EINVAL, NULL, 0);
        return;
    }
    uint8_t *b = calloc(1, n ? n : 1);
    rpc_respond(ctx, BT_OK, b, n);
    free(b);
}

/* Three parts, then a final answer with the last bytes. */
static void h_stream(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    (void)arg;
    (void)req;
    rpc_respond_more(ctx, "ab", 2);
    rpc_respond_more(ctx, "", 0);
    rpc_respond_more(ctx, "cd", 2);
    rpc_respond(ctx, BT_OK, "e", 1);
}

/* Held-back contexts: M_STASH never answers by itself. */
static struct {
    pthread_mutex_t mu;   /* protects ctx, n */
    rpc_ctx *ctx[64];
    int n;
} g_stash = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void h_stash(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    (void)arg;
    (void)req;
    pthread_mutex_lock(&g_stash.mu);
    cr_assert_lt(g_stash.n, 64);
    g_stash.ctx[g_stash.n++] = ctx;
    pthread_mutex_unlock(&g_stash.mu);
}

static int stash_count(void)
{
    pthread_mutex_lock(&g_stash.mu);
    int n = g_stash.n;
    pthread_mutex_unlock(&g_stash.mu);
    return n;
}

static bool stash_has(void *arg) { return stash_count() >= *(int *)arg; }

/* Answers every held-back context (possibly after its server is gone). */
static void stash_release(void)
{
    pthread_mutex_lock(&g_stash.mu);
    for (int i = 0; i < g_stash.n; i++) rpc_respond(g_stash.ctx[i], BT_OK, "late", 4);
    g_stash.n = 0;
    pthread_mutex_unlock(&g_stash.mu);
}

/* Answers M_SLOW after 600 ms from a thread of its own. */
static void *slow_answer(void *arg)
{
    sleep_ms(600);
    rpc_respond(arg, BT_OK, "slow", 4);
    return NULL;
}

static void h_slow(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    (void)arg;
    (void)req;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, slow_answer, ctx), 0);
    pthread_detach(t);
}

static const rpc_method k_methods[] = {
    {M_ECHO, h_echo, NULL}, {M_FAIL, h_fail, NULL},     {M_STASH, h_stash, NULL},
    {M_BLOB, h_blob, NULL}, {M_STREAM, h_stream, NULL}, {M_SLOW, h_slow, NULL},
};
#define N_METHODS (sizeof k_methods / sizeof *k_methods)

static rpc_server *server_on(uint16_t port, const rpc_server_opts *opts)
{
    rpc_server *s;
    cr_assert_eq(rpc_server_new("127.0.0.1", port, k_methods, N_METHODS, opts, &s), BT_OK, "%s",
                 bt_errmsg());
    cr_assert_eq(rpc_server_start(s), BT_OK);
    return s;
}

static rpc_client *client_to(uint16_t port, const rpc_client_opts *opts)
{
    rpc_client *c;
    cr_assert_eq(rpc_client_new("127.0.0.1", port, opts, &c), BT_OK, "%s", bt_errmsg());
    return c;
}

static int call_str(rpc_client *c, uint16_t method, const char *req, bt_buf *resp, int timeout)
{
    return rpc_call(c, method, req, strlen(req), resp, timeout);
}

static void expect_echo(rpc_client *c, const char *s)
{
    bt_buf resp = {0};
    cr_assert_eq(call_str(c, M_ECHO, s, &resp, 0), BT_OK);
    cr_assert_eq(resp.len, strlen(s));
    if (resp.len) cr_assert_arr_eq(resp.data, s, resp.len);
    bt_buf_free(&resp);
}

static int raw_connect(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    return fd;
}

static void raw_send(int fd, const void *p, size_t n)
{
    cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* True if the server closes fd within ms (EOF or reset; data is skipped). */
static bool raw_closed_within(int fd, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    for (;;) {
        int left = (int)(end - now_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) return false;
        char buf[256];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    }
}

struct conns_arg {
    rpc_server *s;
    int want;
};

static bool conns_are(void *arg)
{
    struct conns_arg *a = arg;
    return rpc_server_connections(a->s) == a->want;
}

static void expect_connections(rpc_server *s, int want)
{
    struct conns_arg a = {s, want};
    cr_assert(eventually(conns_are, &a, 5000), "%d connections, want %d",
              rpc_server_connections(s), want);
}

/* ---- basics -------------------------------------------------------------------- */

Test(rpc, echo_round_trip_and_statuses, .timeout = 20)
{
    rpc_server *s = server_on(0, NULL);
    cr_assert_neq(rpc_server_port(s), 0);
    rpc_client *c = client_to(rpc_server_port(s), NULL);
    expect_echo(c, "hello");
    expect_echo(c, "");
    bt_buf resp = {0};
    size_t big = (size_t)1 << 20;
    uint8_t *payload = malloc(big);
    for (size_t i = 0; i < big; i++) payload[i] = (uint8_t)(i * 13);
    cr_assert_eq(rpc_call(c, M_ECHO, payload, big, &resp, 0), BT_OK);
    cr_assert_eq(resp.len, big);
    cr_assert_arr_eq(resp.data, payload, big);
    free(payload);
    cr_assert_eq(call_str(c, M_FAIL, "x", &resp, 0), BT_ENOTFOUND);
    cr_assert_eq(resp.len, 11);
    cr_assert_arr_eq(resp.data, "no such row", 11);
    cr_assert_eq(call_str(c, 199, "x", &resp, 0), BT_EINVAL, "unknown method");
    cr_assert_eq(resp.len, strlen("unknown method 199"));
    cr_assert_eq(call_str(c, M_ECHO, "x", NULL, 0), BT_OK, "resp may be NULL");
    bt_buf_free(&resp);
    rpc_client_free(c);
    rpc_server_free(s);
}

Test(rpc, bad_arguments, .timeout = 10)
{
    rpc_server *s;
    rpc_method dup[] = {{1, h_echo, NULL}, {1, h_fail, NULL}};
    cr_assert_eq(rpc_server_new("127.0.0.1", 0, dup, 2, NULL, &s), BT_EINVAL);
    rpc_server_opts o = {.max_frame = 3};
    cr_assert_eq(rpc_server_new("127.0.0.1", 0, k_methods, N_METHODS, &o, &s), BT_EINVAL);
    rpc_server *a = server_on(0, NULL);
    cr_assert_eq(rpc_server_new("127.0.0.1", rpc_server_port(a), k_methods, N_METHODS, NULL, &s),
                 BT_EIO, "the port is taken");
    cr_assert_eq(rpc_server_start(a), BT_EFAILED_PRECONDITION);
    rpc_client *c;
    cr_assert_eq(rpc_client_new("127.0.0.1", 0, NULL, &c), BT_EINVAL);
    rpc_client_opts co = {.backoff_min_ms = 100, .backoff_max_ms = 10};
    cr_assert_eq(rpc_client_new("127.0.0.1", 1, &co, &c), BT_EINVAL);
    rpc_server_free(a);
}

Test(rpc, streamed_answer, .timeout = 10)
{
    rpc_server *s = server_on(0, NULL);
    rpc_client *c = client_to(rpc_server_port(s), NULL);
    bt_buf resp = {0};
    cr_assert_eq(call_str(c, M_STREAM, "", &resp, 0), BT_OK);
    cr_assert_eq(resp.len, 5);
    cr_assert_arr_eq(resp.data, "abcde", 5);
    bt_buf_free(&resp);
    rpc_client_free(c);
    rpc_server_free(s);
}

/* ---- concurrency: many threads, out-of-order answers ------------------------------------ */

/* A pool of worker threads answering M_POOL requests in random order after a
 * random delay, with the payload reversed. */
struct job {
    rpc_ctx *ctx;
    uint64_t id;
    size_t len;
    uint8_t data[64];
};

static struct {
    pthread_mutex_t mu;   /* protects everything below */
    pthread_cond_t cv;
    struct job jobs[4096];
    int n;
    bool stop;
    uint64_t max_answered; /* highest request id answered so far */
    int out_of_order;      /* answers sent after one with a higher id */
} g_pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void h_pool(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    (void)arg;
    cr_assert_leq(req->payload_len, sizeof g_pool.jobs[0].data);
    pthread_mutex_lock(&g_pool.mu);
    cr_assert_lt(g_pool.n, 4096);
    struct job *j = &g_pool.jobs[g_pool.n++];
    j->ctx = ctx;
    j->id = req->id;
    j->len = req->payload_len;
    memcpy(j->data, req->payload, req->payload_len);
    pthread_cond_signal(&g_pool.cv);
    pthread_mutex_unlock(&g_pool.mu);
}

static void *pool_worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    pthread_mutex_lock(&g_pool.mu);
    for (;;) {
        while (!g_pool.n && !g_pool.stop) pthread_cond_wait(&g_pool.cv, &g_pool.mu);
        if (!g_pool.n) break;
        int i = rand_r(&seed) % g_pool.n;
        struct job j = g_pool.jobs[i];
        g_pool.jobs[i] = g_pool.jobs[--g_pool.n];
        if (j.id < g_pool.max_answered) g_pool.out_of_order++;
        else g_pool.max_answered = j.id;
        pthread_mutex_unlock(&g_pool.mu);
        struct timespec d = {0, (long)(rand_r(&seed) % 300) * 1000L};
        nanosleep(&d, NULL);
        uint8_t rev[64];
        for (size_t k = 0; k < j.len; k++) rev[k] = j.data[j.len - 1 - k];
        rpc_respond(j.ctx, BT_OK, rev, j.len);
        pthread_mutex_lock(&g_pool.mu);
    }
    pthread_mutex_unlock(&g_pool.mu);
    return NULL;
}

#define POOL_WORKERS 4
static pthread_t g_workers[POOL_WORKERS];

static rpc_server *pool_server(void)
{
    static const rpc_method m[] = {{M_POOL, h_pool, NULL}};
    rpc_server *s;
    cr_assert_eq(rpc_server_new("127.0.0.1", 0, m, 1, NULL, &s), BT_OK);
    cr_assert_eq(rpc_server_start(s), BT_OK);
    for (int i = 0; i < POOL_WORKERS; i++)
        pthread_create(&g_workers[i], NULL, pool_worker, (void *)(uintptr_t)(i + 1));
    return s;
}

static void pool_stop(rpc_server *s)
{
    pthread_mutex_lock(&g_pool.mu);
    g_pool.stop = true;
    pthread_cond_broadcast(&g_pool.cv);
    pthread_mutex_unlock(&g_pool.mu);
    for (int i = 0; i < POOL_WORKERS; i++) pthread_join(g_workers[i], NULL);
    rpc_server_free(s);
}

struct caller {
    rpc_client *c;
    int thread;
    int failures;
};

#define CALLS_PER_THREAD 1000

static void *caller_main(void *arg)
{
    struct caller *a = arg;
    bt_buf resp = {0};
    for (int i = 0; i < CALLS_PER_THREAD; i++) {
        char req[64], want[64];
        int n = snprintf(req, sizeof req, "thread %d call %d salt %d", a->thread, i, i * 7919);
        for (int k = 0; k < n; k++) want[k] = req[n - 1 - k];
        int rc = rpc_call(a->c, M_POOL, req, (size_t)n, &resp, 10000);
        if (rc || resp.len != (size_t)n || memcmp(resp.data, want, (size_t)n)) a->failures++;
    }
    bt_buf_free(&resp);
    return NULL;
}

Test(rpc, eight_threads_one_client_out_of_order, .timeout = 30)
{
    rpc_server *s = pool_server();
    rpc_client *c = client_to(rpc_server_port(s), NULL);
    pthread_t t[8];
    struct caller a[8];
    for (int i = 0; i < 8; i++) {
        a[i] = (struct caller){.c = c, .thread = i};
        pthread_create(&t[i], NULL, caller_main, &a[i]);
    }
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 8; i++) cr_expect_eq(a[i].failures, 0, "thread %d", i);
    pthread_mutex_lock(&g_pool.mu);
    int ooo = g_pool.out_of_order;
    pthread_mutex_unlock(&g_pool.mu);
    cr_expect_gt(ooo, 0, "the server should have answered out of order");
    cr_expect_eq(rpc_server_connections(s), 1, "one connection shared by all threads");
    rpc_client_free(c);
    pool_stop(s);
}

/* Deep pipelining from one thread with rpc_call_async. */
#define ASYNC_CALLS 2000

static struct {
    pthread_mutex_t mu;   /* protects done, bad */
    pthread_cond_t cv;
    int done;
    int bad;
} g_async = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void async_done(void *arg, int status, const uint8_t *payload, size_t len, bool more)
{
    char want[32];
    int n = snprintf(want, sizeof want, "%d", (int)(uintptr_t)arg);
    bool ok = !more && status == BT_OK && len == (size_t)n;
    for (int k = 0; ok && k < n; k++) ok = payload[k] == (uint8_t)want[n - 1 - k];
    pthread_mutex_lock(&g_async.mu);
    g_async.done++;
    if (!ok) g_async.bad++;
    pthread_cond_broadcast(&g_async.cv);
    pthread_mutex_unlock(&g_async.mu);
}

Test(rpc, async_pipelining, .timeout = 30)
{
    rpc_server *s = pool_server();
    rpc_client *c = client_to(rpc_server_port(s), NULL);
    for (int i = 0; i < ASYNC_CALLS; i++) {
        char req[32];
        int n = snprintf(req, sizeof req, "%d", i);
        cr_assert_eq(rpc_call_async(c, M_POOL, req, (size_t)n, 20000, async_done,
                                    (void *)(uintptr_t)i), BT_OK);
    }
    pthread_mutex_lock(&g_async.mu);
    while (g_async.done < ASYNC_CALLS) pthread_cond_wait(&g_async.cv, &g_async.mu);
    int bad = g_async.bad;
    pthread_mutex_unlock(&g_async.mu);
    cr_assert_eq(bad, 0);
    rpc_client_free(c);
    pool_stop(s);
}

/* ---- timeouts -------------------------------------------------------------------------- */

Test(rpc, request_timeout_and_late_answer_dropped, .timeout = 20)
{
    rpc_server *s = server_on(0, NULL);
    rpc_client *c = client_to(rpc_server_port(s), NULL);
    uint64_t t0 = now_ms();
    cr_assert_eq(call_str(c, M_STASH, "x", NULL, 150), BT_ETIMEDOUT);
    uint64_t took = now_ms() - t0;
    cr_assert_geq(took, 140);
    cr_assert_lt(took, 3000);
    stash_release(); /* the late answer reaches the client, which drops it */
    expect_echo(c, "after the late answer");
    cr_assert_eq(rpc_server_connections(s), 1, "a timeout does not cost the connection");
    bt_buf resp = {0};
    rpc_server_opts so = {.idle_timeout_ms = 200};
    rpc_server *idle = server_on(0, &so);
    rpc_client *c2 = client_to(rpc_server_port(idle), NULL);
    int rc = call_str(c2, M_SLOW, "", &resp, 5000);
    cr_assert_eq(rc, BT_OK, "a connection waiting for an answer is not idle: %s", bt_errname(rc));
    cr_assert_eq(resp.len, 4);
    bt_buf_free(&resp);
    rpc_client_free(c2);
    rpc_server_free(idle);
    rpc_client_free(c);
    rpc_server_free(s);
}

Test(rpc, idle_connection_is_closed, .timeout = 10)
{
    rpc_server_opts so = {.idle_timeout_ms = 200};
    rpc_server *s = server_on(0, &so);
    int fd = raw_connect(rpc_server_port(s));
    uint64_t t0 = now_ms();
    cr_assert(raw_closed_within(fd, 5000));
    cr_assert_geq(now_ms() - t0, 150);
    close(fd);
    rpc_server_free(s);
}

/* ---- failures: stop, restart, shutdown --------------------------------------------------- */

struct blocked_call {
    rpc_client *c;
    int rc;
};

static void *blocked_call_main(void *arg)
{
    struct blocked_call *b = arg;
    b->rc = call_str(b->c, M_STASH, "wait", NULL, 20000);
    return NULL;
}

static bool call_succeeds(void *arg) { return call_str(arg, M_ECHO, "again", NULL, 1000) == BT_OK; }

Test(rpc, stop_fails_in_flight_and_restart_reconnects, .timeout = 30)
{
    rpc_server *s = server_on(0, NULL);
    uint16_t port = rpc_server_port(s);
    rpc_client_opts co = {.backoff_min_ms = 20, .backoff_max_ms = 100};
    rpc_client *c = client_to(port, &co);
    pthread_t t[4];
    struct blocked_call b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = (struct blocked_call){.c = c, .rc = 1};
        pthread_create(&t[i], NULL, blocked_call_main, &b[i]);
    }
    int four = 4;
    cr_assert(eventually(stash_has, &four, 5000));
    rpc_server_stop(s);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(b[i].rc, BT_EUNAVAIL, "call %d", i);
    }
    rpc_server_free(s);
    stash_release(); /* answers to a freed server: dropped, contexts freed */

    cr_assert_eq(call_str(c, M_ECHO, "down", NULL, 1000), BT_EUNAVAIL, "nobody listens");
    cr_assert_eq(call_str(c, M_ECHO, "down", NULL, 1000), BT_EUNAVAIL, "backoff: fail fast");

    s = server_on(port, NULL);
    cr_assert(eventually(call_succeeds, c, 5000), "the client reconnects");
    expect_echo(c, "reconnected");
    rpc_client_free(c);
    rpc_server_free(s);
}

static struct {
    pthread_mutex_t mu;   /* protects n, closed */
    int n;
    int closed;
} g_freed = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void count_closed(void *arg, int status, const uint8_t *payload, size_t len, bool more)
{
    (void)arg;
    (void)payload;
    (void)len;
    (void)more;
    pthread_mutex_lock(&g_freed.mu);
    g_freed.n++;
    if (status == BT_ECLOSED) g_freed.closed++;
    pthread_mutex_unlock(&g_freed.mu);
}

Test(rpc, client_free_fails_pending_calls, .timeout = 20)
{
    rpc_server *s = server_on(0, NULL);
    rpc_client *c = client_to(rpc_server_port(s), NULL);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(rpc_call_async(c, M_STASH, "x", 1, 20000, count_closed, NULL), BT_OK);
    int ten = 10;
    cr_assert(eventually(stash_has, &ten, 5000));
    rpc_client_free(c);
    pthread_mutex_lock(&g_freed.mu);
    cr_expect_eq(g_freed.n, 10);
    cr_expect_eq(g_freed.closed, 10);
    pthread_mutex_unlock(&g_freed.mu);
    stash_release(); /* the connection is gone: dropped */
    rpc_server_free(s);
}

static struct {
    pthread_mutex_t mu;   /* protects rc, done */
    pthread_cond_t cv;
    int rc;
    bool done;
} g_nested = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Runs on the client's loop thread: a blocking call there must be refused. */
static void nested_call(void *arg, int status, const uint8_t *payload, size_t len, bool more)
{
    (void)status;
    (void)payload;
    (void)len;
    (void)more;
    int rc = rpc_call(arg, M_ECHO, "x", 1, NULL, 0);
    pthread_mutex_lock(&g_nested.mu);
    g_nested.rc = rc;
    g_nested.done = true;
    pthread_cond_signal(&g_nested.cv);
    pthread_mutex_unlock(&g_nested.mu);
}

Test(rpc, blocking_call_from_callback_is_refused, .timeout = 10)
{
    rpc_server *s = server_on(0, NULL);
    rpc_client *c = client_to(rpc_server_port(s), NULL);
    cr_assert_eq(rpc_call_async(c, M_ECHO, "x", 1, 0, nested_call, c), BT_OK);
    pthread_mutex_lock(&g_nested.mu);
    while (!g_nested.done) pthread_cond_wait(&g_nested.cv, &g_nested.mu);
    int rc = g_nested.rc;
    pthread_mutex_unlock(&g_nested.mu);
    cr_assert_eq(rc, BT_EFAILED_PRECONDITION);
    rpc_client_free(c);
    rpc_server_free(s);
}

/* ---- misbehaving peers --------------------------------------------------------------------- */

Test(rpc, malformed_frame_closes_only_that_connection, .timeout = 20)
{
    rpc_server *s = server_on(0, NULL);
    rpc_client *c = client_to(rpc_server_port(s), NULL);
    expect_echo(c, "before");
    uint8_t h[RPC_HDR_LEN];
    rpc_frame bad = {.id = 1, .method = M_ECHO, .flags = RPC_FLAG_RESPONSE};
    rpc_frame_put_header(h, &bad);
    h[18] = 0x80; /* an unknown flag bit */
    int fd = raw_connect(rpc_server_port(s));
    raw_send(fd, h, sizeof h);
    cr_assert(raw_closed_within(fd, 5000), "the bad connection is closed");
    close(fd);
    fd = raw_connect(rpc_server_port(s));
    rpc_frame_put_header(h, &bad); /* a response sent to a server */
    raw_send(fd, h, sizeof h);
    cr_assert(raw_closed_within(fd, 5000));
    close(fd);
    expect_echo(c, "after");
    expect_connections(s, 1);
    rpc_client_free(c);
    rpc_server_free(s);
}

Test(rpc, oversize_frames_are_rejected, .timeout = 20)
{
    rpc_server_opts so = {.max_frame = 1024};
    rpc_server *s = server_on(0, &so);
    rpc_client *c = client_to(rpc_server_port(s), NULL);
    /* the client refuses to send over its own cap */
    size_t huge = RPC_DEFAULT_MAX_PAYLOAD + 1;
    uint8_t *p = calloc(1, huge);
    cr_assert_eq(rpc_call(c, M_ECHO, p, huge, NULL, 0), BT_ETOOBIG);
    /* the server closes a connection carrying a frame over its cap ... */
    cr_assert_eq(rpc_call(c, M_ECHO, p, 2000, NULL, 0), BT_EUNAVAIL);
    free(p);
    /* ... from its header alone, without waiting for the payload */
    uint8_t h[RPC_HDR_LEN];
    rpc_frame f = {.id = 1, .method = M_ECHO, .payload_len = (size_t)100 << 20};
    rpc_frame_put_header(h, &f);
    int fd = raw_connect(rpc_server_port(s));
    raw_send(fd, h, sizeof h);
    cr_assert(raw_closed_within(fd, 5000));
    close(fd);
    /* the client reconnects for the next call */
    expect_echo(c, "small is fine");
    /* an answer over the server's cap becomes BT_ETOOBIG */
    uint8_t req[BT_MAX_VARINT64];
    size_t n = (size_t)(bt_put_varint64(req, 4096) - req);
    cr_assert_eq(rpc_call(c, M_BLOB, req, n, NULL, 0), BT_ETOOBIG);
    rpc_client_free(c);
    rpc_server_free(s);

    /* an answer over the client's cap costs the connection */
    s = server_on(0, NULL);
    rpc_client_opts co = {.max_frame = 1024};
    c = client_to(rpc_server_port(s), &co);
    cr_assert_eq(rpc_call(c, M_BLOB, req, n, NULL, 0), BT_EUNAVAIL);
    expect_echo(c, "still usable");
    rpc_client_free(c);
    rpc_server_free(s);
}

Test(rpc, connection_limit, .timeout = 20)
{
    rpc_server_opts so = {.max_connections = 4};
    rpc_server *s = server_on(0, &so);
    int fd[6];
    for (int i = 0; i < 4; i++) fd[i] = raw_connect(rpc_server_port(s));
    expect_connections(s, 4);
    for (int i = 4; i < 6; i++) {
        fd[i] = raw_connect(rpc_server_port(s));
        cr_assert(raw_closed_within(fd[i], 5000), "connection %d over the limit", i);
    }
    cr_assert_eq(rpc_server_connections(s), 4);
    for (int i = 0; i < 6; i++) close(fd[i]);
    expect_connections(s, 0);
    rpc_server_free(s);
}

/* ---- scale ---------------------------------------------------------------------------------- */

#define IDLE_CONNS 2000

/* Two descriptors per connection live in this process (client and server
 * ends), so the soft limit goes up to the hard one if it is too low. */
static void raise_nofile(void)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * IDLE_CONNS + 256) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < 2 * IDLE_CONNS + 256)
        cr_skip_test("RLIMIT_NOFILE hard limit %llu is too low", (unsigned long long)rl.rlim_max);
}

Test(rpc, two_thousand_idle_connections, .timeout = 30)
{
    raise_nofile();
    rpc_server *s = server_on(0, NULL);
    int *fd = malloc(IDLE_CONNS * sizeof *fd);
    for (int i = 0; i < IDLE_CONNS; i++) fd[i] = raw_connect(rpc_server_port(s));
    expect_connections(s, IDLE_CONNS);
    rpc_client *c = client_to(rpc_server_port(s), NULL);
    for (int i = 0; i < 100; i++) expect_echo(c, "while many sit idle");
    expect_connections(s, IDLE_CONNS + 1);
    /* an idle connection is still served */
    bt_buf frame = {0};
    rpc_frame f = {.id = 77, .method = M_ECHO, .payload = (const uint8_t *)"ping",
                   .payload_len = 4};
    cr_assert_eq(rpc_frame_encode(&frame, &f, RPC_DEFAULT_MAX_FRAME), BT_OK);
    raw_send(fd[IDLE_CONNS / 2], frame.data, frame.len);
    uint8_t got[RPC_HDR_LEN + 4];
    cr_assert_eq(recv(fd[IDLE_CONNS / 2], got, sizeof got, MSG_WAITALL), (ssize_t)sizeof got);
    rpc_frame r;
    size_t flen;
    const char *why;
    cr_assert_eq(rpc_frame_decode(got, sizeof got, RPC_DEFAULT_MAX_FRAME, &r, &flen, &why),
                 RPC_DECODE_FRAME);
    cr_assert_eq(r.id, 77);
    cr_assert_eq(r.flags, RPC_FLAG_RESPONSE);
    cr_assert_arr_eq(r.payload, "ping", 4);
    bt_buf_free(&frame);
    for (int i = 0; i < IDLE_CONNS; i++) close(fd[i]);
    free(fd);
    expect_connections(s, 1);
    rpc_client_free(c);
    rpc_server_free(s);
}

/* tests/unit/test_rpc_sync.c: blocking per-thread RPC connections
 * (common/rpc_sync.h) against a real rpc_server on an ephemeral 127.0.0.1
 * port: round trips and error statuses, streamed answers, a connection the
 * server closed while idle (made again, the request sent once), timeouts (the
 * late answer is never taken for the next call's), a stopped server, an
 * unreachable address, and a peer that answers garbage. */
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

#include "common/rpc.h"
#include "common/rpc_sync.h"
#include "common/status.h"

enum { M_ECHO = 100, M_FAIL = 101, M_STREAM = 102, M_SLOW = 103 };

static atomic_int calls;

static void h_echo(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    (void)arg;
    atomic_fetch_add(&calls, 1);
    rpc_respond(ctx, BT_OK, req->payload, req->payload_len);
}

static void h_fail(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    (void)arg;
    (void)req;
    rpc_respond(ctx, BT_ENOTFOUND, "no such row", 11);
}

static void h_stream(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    (void)arg;
    (void)req;
    rpc_respond_more(ctx, "ab", 2);
    rpc_respond_more(ctx, "cd", 2);
    rpc_respond(ctx, BT_OK, "e", 1);
}

static void *late(void *ctx)
{
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    rpc_respond(ctx, BT_OK, "late", 4);
    return NULL;
}

static void h_slow(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    (void)arg;
    (void)req;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, late, ctx), 0);
    pthread_detach(t);
}

static const rpc_method methods[] = {
    {M_ECHO, h_echo, NULL}, {M_FAIL, h_fail, NULL}, {M_STREAM, h_stream, NULL}, {M_SLOW, h_slow, NULL},
};

static rpc_server *start(uint16_t port, int idle_ms)
{
    rpc_server_opts o = {.idle_timeout_ms = idle_ms};
    rpc_server *s;
    cr_assert_eq(rpc_server_new("127.0.0.1", port, methods, 4, &o, &s), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(rpc_server_start(s), BT_OK);
    return s;
}

Test(rpc_sync, round_trips_errors_and_streams, .timeout = 20)
{
    rpc_server *s = start(0, 0);
    rpc_sync_conn *c;
    cr_assert_eq(rpc_sync_new("127.0.0.1", rpc_server_port(s), 1000, &c), BT_OK);
    bt_buf r = {0};
    for (int i = 0; i < 100; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "hello %d", i);
        cr_assert_eq(rpc_sync_call(c, M_ECHO, m, (size_t)n, &r, 2000), BT_OK, "%s", bt_errmsg());
        cr_assert(r.len == (size_t)n && !memcmp(r.data, m, (size_t)n));
    }
    cr_assert_eq(rpc_sync_call(c, M_FAIL, NULL, 0, &r, 2000), BT_ENOTFOUND);
    cr_assert(r.len == 11 && !memcmp(r.data, "no such row", 11), "the detail text comes back");
    cr_assert_eq(rpc_sync_call(c, M_STREAM, NULL, 0, &r, 2000), BT_OK);
    cr_assert(r.len == 5 && !memcmp(r.data, "abcde", 5));
    /* a big payload both ways */
    size_t big = 3u << 20;
    uint8_t *p = malloc(big);
    for (size_t i = 0; i < big; i++) p[i] = (uint8_t)(i * 7);
    cr_assert_eq(rpc_sync_call(c, M_ECHO, p, big, &r, 5000), BT_OK);
    cr_assert(r.len == big && !memcmp(r.data, p, big));
    free(p);
    bt_buf_free(&r);
    rpc_sync_free(c);
    rpc_server_free(s);
}

Test(rpc_sync, idle_close_reconnects_and_sends_once, .timeout = 20)
{
    rpc_server *s = start(0, 100); /* closes connections idle for 100 ms */
    rpc_sync_conn *c;
    cr_assert_eq(rpc_sync_new("127.0.0.1", rpc_server_port(s), 1000, &c), BT_OK);
    bt_buf r = {0};
    atomic_store(&calls, 0);
    cr_assert_eq(rpc_sync_call(c, M_ECHO, "a", 1, &r, 2000), BT_OK);
    struct timespec ts = {0, 400 * 1000000L};
    nanosleep(&ts, NULL);
    cr_assert_eq(rpc_sync_call(c, M_ECHO, "b", 1, &r, 2000), BT_OK, "%s", bt_errmsg());
    cr_assert(r.len == 1 && r.data[0] == 'b');
    cr_assert_eq(atomic_load(&calls), 2, "each request reached the server exactly once");
    bt_buf_free(&r);
    rpc_sync_free(c);
    rpc_server_free(s);
}

Test(rpc_sync, timeout_then_next_call_is_not_confused, .timeout = 20)
{
    rpc_server *s = start(0, 0);
    rpc_sync_conn *c;
    cr_assert_eq(rpc_sync_new("127.0.0.1", rpc_server_port(s), 1000, &c), BT_OK);
    bt_buf r = {0};
    cr_assert_eq(rpc_sync_call(c, M_SLOW, NULL, 0, &r, 50), BT_ETIMEDOUT);
    cr_assert_eq(rpc_sync_call(c, M_ECHO, "x", 1, &r, 2000), BT_OK);
    cr_assert(r.len == 1 && r.data[0] == 'x', "the late answer was taken for this call's");
    struct timespec ts = {0, 400 * 1000000L};
    nanosleep(&ts, NULL);
    cr_assert_eq(rpc_sync_call(c, M_ECHO, "y", 1, &r, 2000), BT_OK);
    cr_assert(r.len == 1 && r.data[0] == 'y');
    bt_buf_free(&r);
    rpc_sync_free(c);
    rpc_server_free(s);
}

Test(rpc_sync, stopped_and_unreachable_servers, .timeout = 20)
{
    rpc_server *s = start(0, 0);
    uint16_t port = rpc_server_port(s);
    rpc_sync_conn *c;
    cr_assert_eq(rpc_sync_new("127.0.0.1", port, 500, &c), BT_OK);
    bt_buf r = {0};
    cr_assert_eq(rpc_sync_call(c, M_ECHO, "a", 1, &r, 2000), BT_OK);
    rpc_server_free(s);
    int rc = rpc_sync_call(c, M_ECHO, "a", 1, &r, 2000);
    cr_assert(rc == BT_EUNAVAIL || rc == BT_ECLOSED, "got %s", bt_errname(rc));
    /* and back on the same port */
    s = start(port, 0);
    cr_assert_eq(rpc_sync_call(c, M_ECHO, "c", 1, &r, 2000), BT_OK, "%s", bt_errmsg());
    rpc_server_free(s);
    rpc_sync_free(c);
    cr_assert_eq(rpc_sync_new("127.0.0.1", 0, 500, &c), BT_EINVAL);
    cr_assert_eq(rpc_sync_new("", 1, 500, &c), BT_EINVAL);
    bt_buf_free(&r);
}

/* A peer that answers with garbage: BT_ECORRUPT, and the connection is
 * dropped (the next call connects again). */
static void *garbage_peer(void *arg)
{
    int lfd = *(int *)arg;
    for (int i = 0; i < 2; i++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) return NULL;
        char buf[256];
        if (recv(fd, buf, sizeof buf, 0) > 0) {
            static const char junk[] = "\x05\x00\x00\x00garbage-not-a-frame-at-all";
            (void)!send(fd, junk, sizeof junk - 1, MSG_NOSIGNAL);
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        close(fd);
    }
    return NULL;
}

Test(rpc_sync, malformed_answer_is_corruption, .timeout = 20)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    socklen_t sl = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, garbage_peer, &lfd), 0);
    rpc_sync_conn *c;
    cr_assert_eq(rpc_sync_new("127.0.0.1", ntohs(sa.sin_port), 1000, &c), BT_OK);
    bt_buf r = {0};
    cr_assert_eq(rpc_sync_call(c, M_ECHO, "a", 1, &r, 2000), BT_ECORRUPT);
    cr_assert_eq(rpc_sync_call(c, M_ECHO, "a", 1, &r, 2000), BT_ECORRUPT);
    pthread_join(th, NULL);
    close(lfd);
    bt_buf_free(&r);
    rpc_sync_free(c);
}

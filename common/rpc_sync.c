/* common/rpc_sync.c: blocking RPC connections owned by one calling thread
 * (common/rpc_sync.h). */
#include "common/rpc_sync.h"
#include "common/rpc_codec.h"
#include "common/status.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

struct rpc_sync_conn {
    char host[256];
    uint16_t port;
    int connect_timeout_ms;
    int fd;                 /* -1: not connected */
    uint64_t next_id;
    bt_buf in;              /* bytes read, not yet consumed */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rpc_sync_new(const char *host, uint16_t port, int connect_timeout_ms, rpc_sync_conn **out)
{
    *out = NULL;
    if (!host || !*host || strlen(host) >= 256 || !port) return bt_err(BT_EINVAL, "rpc_sync_new: bad address");
    rpc_sync_conn *c = calloc(1, sizeof *c);
    if (!c) return BT_ENOMEM;
    snprintf(c->host, sizeof c->host, "%s", host);
    c->port = port;
    c->connect_timeout_ms = connect_timeout_ms > 0 ? connect_timeout_ms : 2000;
    c->fd = -1;
    c->next_id = 1;
    *out = c;
    return BT_OK;
}

static void drop(rpc_sync_conn *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    bt_buf_clear(&c->in);
}

void rpc_sync_free(rpc_sync_conn *c)
{
    if (!c) return;
    drop(c);
    bt_buf_free(&c->in);
    free(c);
}

static int connect_now(rpc_sync_conn *c)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)c->port);
    if (getaddrinfo(c->host, port, &hints, &ai) || !ai)
        return bt_err(BT_EUNAVAIL, "cannot resolve %s", c->host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = BT_OK;
    if (fd < 0) {
        rc = bt_err(BT_EUNAVAIL, "socket: %s", strerror(errno));
    } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            rc = bt_err(BT_EUNAVAIL, "connect to %s:%u: %s", c->host, (unsigned)c->port, strerror(errno));
        } else {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int err = 0;
            socklen_t el = sizeof err;
            int pr = poll(&p, 1, c->connect_timeout_ms);
            if (pr <= 0) rc = bt_err(BT_EUNAVAIL, "connect to %s:%u: timed out", c->host, (unsigned)c->port);
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err)
                rc = bt_err(BT_EUNAVAIL, "connect to %s:%u: %s", c->host, (unsigned)c->port, strerror(err));
        }
    }
    freeaddrinfo(ai);
    if (rc) {
        if (fd >= 0) close(fd);
        return rc;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    bt_buf_clear(&c->in);
    return BT_OK;
}

/* An idle connection must not be readable: if it is, the server closed it
 * (or sent something unasked for) and it is made again. */
static bool still_good(rpc_sync_conn *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

static int send_all(rpc_sync_conn *c, const uint8_t *hdr, const void *req, size_t len, int64_t deadline)
{
    struct iovec iov[2] = {{(void *)hdr, RPC_HDR_LEN}, {(void *)req, len}};
    int n = len ? 2 : 1;
    size_t sent = 0, total = RPC_HDR_LEN + len;
    while (sent < total) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int left = (int)(deadline - now_ms());
            struct pollfd p = {.fd = c->fd, .events = POLLOUT};
            if (left <= 0 || poll(&p, 1, left) <= 0) return BT_ETIMEDOUT;
            continue;
        }
        if (w <= 0) return sent ? BT_ECLOSED : BT_EUNAVAIL;
        sent += (size_t)w;
        /* advance the iovecs */
        size_t k = (size_t)w;
        while (n && k >= iov[0].iov_len) {
            k -= iov[0].iov_len;
            iov[0] = iov[1];
            n--;
        }
        if (n) {
            iov[0].iov_base = (uint8_t *)iov[0].iov_base + k;
            iov[0].iov_len -= k;
        }
    }
    return BT_OK;
}

int rpc_sync_call(rpc_sync_conn *c, uint16_t method, const void *req, size_t req_len, bt_buf *resp,
                  int timeout_ms)
{
    bt_buf_clear(resp);
    if (rpc_frame_size(req_len) > RPC_DEFAULT_MAX_FRAME)
        return bt_err(BT_ETOOBIG, "request of %zu bytes is over the frame limit", req_len);
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
    if (c->fd >= 0 && !still_good(c)) drop(c);
    int rc;
    if (c->fd < 0 && (rc = connect_now(c))) return rc;

    uint64_t id = c->next_id++;
    rpc_frame f = {.id = id, .method = method, .payload = req, .payload_len = req_len};
    uint8_t hdr[RPC_HDR_LEN];
    rpc_frame_put_header(hdr, &f);
    if ((rc = send_all(c, hdr, req, req_len, deadline))) {
        drop(c);
        return rc == BT_ETIMEDOUT ? bt_err(rc, "sending to %s:%u: timed out", c->host, (unsigned)c->port)
                                  : bt_err(rc, "%s:%u: connection lost", c->host, (unsigned)c->port);
    }
    for (;;) {
        /* whole frames already read */
        rpc_frame r;
        size_t flen = 0;
        const char *why = NULL;
        int d = rpc_frame_decode(c->in.data, c->in.len, RPC_DEFAULT_MAX_FRAME, &r, &flen, &why);
        if (d < 0) {
            drop(c);
            return bt_err(d, "answer from %s:%u: %s", c->host, (unsigned)c->port, why ? why : "malformed");
        }
        if (d == RPC_DECODE_FRAME) {
            if (r.id != id || !(r.flags & RPC_FLAG_RESPONSE)) {
                drop(c);
                return bt_err(BT_ECORRUPT, "answer from %s:%u for request %llu, expected %llu", c->host,
                              (unsigned)c->port, (unsigned long long)r.id, (unsigned long long)id);
            }
            if (r.payload_len && (rc = bt_buf_append(resp, r.payload, r.payload_len))) {
                drop(c);
                return rc;
            }
            bool more = r.flags & RPC_FLAG_MORE;
            int status = r.status;
            memmove(c->in.data, c->in.data + flen, c->in.len - flen);
            c->in.len -= flen;
            if (more) continue;
            return status;
        }
        /* read more */
        int left = (int)(deadline - now_ms());
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int pr = left > 0 ? poll(&p, 1, left) : 0;
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) {
            drop(c); /* a late answer must not be taken for the next call's */
            return bt_err(BT_ETIMEDOUT, "%s:%u: no answer within %d ms", c->host, (unsigned)c->port, timeout_ms);
        }
        if ((rc = bt_buf_reserve(&c->in, 64 << 10))) {
            drop(c);
            return rc;
        }
        ssize_t got = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) {
            drop(c);
            return bt_err(BT_ECLOSED, "%s:%u: connection lost while waiting for an answer", c->host,
                          (unsigned)c->port);
        }
        c->in.len += (size_t)got;
    }
}

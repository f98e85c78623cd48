/* common/rpc.c: RPC server and client over libevent 2 (see rpc.h and
 * docs/protocol.md).
 *
 * Threading model, the reason for most of the structure below:
 *
 *  - Every libevent object (base, listener, bufferevents, timers) is touched
 *    only by its loop thread, except event_active() and event_base_loopbreak(),
 *    which libevent makes thread-safe once evthread_use_pthreads() ran.  So no
 *    bufferevent needs libevent's own locking, and a connection's state needs
 *    no lock at all.
 *  - Other threads talk to a loop through one mutex-protected queue per loop
 *    plus one "kick" event: the server's hub (answers from handler threads),
 *    the client's submission queue (calls from caller threads).
 *  - Objects reachable from other threads are reference counted: a server
 *    connection lives while the loop has it open or any rpc_ctx/queued answer
 *    refers to it, and the hub (the answer queue) outlives the server, so an
 *    answer sent after rpc_server_free is dropped instead of touching freed
 *    memory.
 *  - Loop threads block SIGPIPE: writing to a socket the peer closed must give
 *    EPIPE, not kill the process, and only loop threads write to sockets.
 */
#include "common/rpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "common/log.h"
#include "common/status.h"

#define DEFAULT_MAX_CONNECTIONS 10000
#define DEFAULT_MAX_INFLIGHT 4096
#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_REQUEST_TIMEOUT_MS 10000
#define DEFAULT_BACKOFF_MIN_MS 50
#define DEFAULT_BACKOFF_MAX_MS 5000
#define LISTEN_BACKLOG 4096
/* A server connection stops reading new requests while this much output is
 * queued for a client that does not read its answers, and resumes below half. */
#define OUT_HIGH_WATER ((size_t)8 << 20)
#define ACCEPT_RETRY_MS 100
#define PEER_LEN 64

/* The identity of the loop running on this thread (a server hub or a
 * client), NULL on other threads: lets rpc_respond write directly when called
 * from a handler, and rpc_call refuse to deadlock its own loop. */
static _Thread_local const void *tls_loop;

/* ---- shared helpers -------------------------------------------------------- */

static pthread_once_t g_evthread_once = PTHREAD_ONCE_INIT;
static int g_evthread_rc;

static void evthread_init(void) { g_evthread_rc = evthread_use_pthreads(); }

/* Makes libevent thread-aware (needed for cross-thread event_active). */
static int libevent_init(void)
{
    pthread_once(&g_evthread_once, evthread_init);
    return g_evthread_rc == 0 ? BT_OK : bt_err(BT_EIO, "rpc: evthread_use_pthreads failed");
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static void block_sigpipe(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Resolves host:port (host NULL: the wildcard address) to its first address. */
static int resolve(const char *host, uint16_t port, bool passive, struct sockaddr_storage *ss,
                   socklen_t *len)
{
    char portstr[8];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
    struct addrinfo *res;
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc) return bt_err(BT_EINVAL, "rpc: resolve %s: %s", host ? host : "*", gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return BT_OK;
}

static void format_addr(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, n, "%s:%u", ip, port);
}

static void set_nodelay(evutil_socket_t fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* The next whole frame at the front of in.  Validates the header from a copy
 * of its first bytes, so a bad or oversize header is refused before anything
 * is made contiguous; then pulls the frame up (f->payload points into in until
 * the caller drains *flen bytes).  Returns rpc_frame_decode() codes. */
static int next_frame(struct evbuffer *in, size_t max_frame, rpc_frame *f, size_t *flen,
                      const char **why)
{
    uint8_t hdr[RPC_HDR_LEN];
    size_t avail = evbuffer_get_length(in);
    size_t n = avail < RPC_HDR_LEN ? avail : RPC_HDR_LEN;
    *why = NULL;
    if (n && evbuffer_copyout(in, hdr, n) != (ev_ssize_t)n) return RPC_DECODE_NEED_MORE;
    int rc = rpc_frame_decode(hdr, n, max_frame, f, flen, why);
    if (rc < 0 || *flen == 0 || avail < *flen) return rc < 0 ? rc : RPC_DECODE_NEED_MORE;
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)*flen);
    if (!p) {
        *why = "out of memory assembling a frame";
        return BT_ENOMEM;
    }
    return rpc_frame_decode(p, *flen, max_frame, f, flen, why);
}

/* Frees the buffer handed to evbuffer_add_reference once libevent is done. */
static void free_ref(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    free(arg);
}

/* ---- server: types ----------------------------------------------------------- */

struct out_item;

/* What answering threads share with the server's loop; outlives the server
 * while connections (and so contexts) refer to it. */
struct rpc_hub {
    atomic_int refs;           /* the server's + one per connection */
    pthread_mutex_t mu;        /* protects stopped, head, tail and the use of notify */
    bool stopped;              /* answers are dropped, notify may be gone */
    struct out_item *head;     /* answers from other threads, oldest first */
    struct out_item *tail;
    struct event *notify;      /* wakes the loop to send them; owned by the server */
};

struct rpc_conn {
    atomic_int refs;           /* the loop's while open + one per context and queued answer */
    struct rpc_hub *hub;       /* counted reference; immutable */
    rpc_server *srv;           /* used only on the loop thread, or by its owner once stopped */
    /* Loop thread only (the owner's after the loop stopped): */
    struct bufferevent *bev;   /* NULL once closed */
    struct rpc_conn *prev, *next; /* the server's list of open connections */
    int inflight;              /* requests dispatched, final answer not yet queued for output */
    uint64_t last_active_ms;   /* last request read or final answer queued */
    bool pumping;              /* conn_pump is on the stack */
    bool reading;              /* EV_READ enabled */
    char peer[PEER_LEN];
};

struct rpc_ctx {
    struct rpc_conn *conn;     /* counted reference */
    uint64_t id;
    uint16_t method;
    size_t max_frame;
};

/* One encoded answer on its way to the loop. */
struct out_item {
    struct out_item *next;
    struct rpc_conn *conn;     /* counted reference */
    bool final;                /* ends its request (not a stream part) */
    size_t len;
    uint8_t data[];            /* the frame */
};

enum { SRV_NEW, SRV_RUNNING, SRV_STOPPED };

struct rpc_server {
    /* Immutable after rpc_server_new: */
    rpc_method *methods;       /* sorted by method */
    size_t nmethods;
    rpc_server_opts opts;      /* defaults filled in */
    uint16_t port;
    struct event_base *base;
    struct rpc_hub *hub;
    /* Owner thread only (start/stop/free): */
    int state;
    pthread_t thread;
    /* Loop thread only (the owner's after the loop stopped): */
    struct evconnlistener *listener;
    struct event *accept_retry; /* re-enables the listener after EMFILE */
    struct event *stop_ev;     /* activated by rpc_server_stop */
    struct rpc_conn *conns;
    /* Written on the loop thread, read anywhere: */
    atomic_int nconns;
};

/* ---- server: references ------------------------------------------------------ */

static void hub_unref(struct rpc_hub *h)
{
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1) return;
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static void conn_ref(struct rpc_conn *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

static void conn_unref(struct rpc_conn *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
    hub_unref(c->hub);
    free(c);
}

/* ---- server: connections ------------------------------------------------------- */

/* Closes c (loop thread, or the owner once the loop stopped); idempotent. */
static void conn_close(struct rpc_conn *c, const char *why)
{
    if (!c->bev) return;
    rpc_server *s = c->srv;
    BT_DEBUG("rpc server :%u: closing %s: %s", (unsigned)s->port, c->peer, why);
    bufferevent_free(c->bev);
    c->bev = NULL;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    atomic_fetch_sub(&s->nconns, 1);
    conn_unref(c);
}

/* Reading pauses while a connection has too many requests in flight or too
 * much unsent output (a client that sends but does not read). */
static bool conn_blocked(const struct rpc_conn *c)
{
    return c->inflight >= c->srv->opts.max_inflight ||
           evbuffer_get_length(bufferevent_get_output(c->bev)) > OUT_HIGH_WATER;
}

static void conn_update_reading(struct rpc_conn *c)
{
    bool want = !conn_blocked(c);
    if (want == c->reading) return;
    if (want) bufferevent_enable(c->bev, EV_READ);
    else bufferevent_disable(c->bev, EV_READ);
    c->reading = want;
}

/* The table entry for method m (owned by s), or NULL. */
static const rpc_method *find_method(const rpc_server *s, uint16_t m)
{
    size_t lo = 0, hi = s->nmethods;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->methods[mid].method == m) return &s->methods[mid];
        if (s->methods[mid].method < m) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Hands one request to its handler (or answers BT_EINVAL for an unknown
 * method).  May close c (out of memory). */
static void dispatch(struct rpc_conn *c, const rpc_frame *f)
{
    rpc_ctx *ctx = malloc(sizeof *ctx);
    if (!ctx) {
        BT_ERROR("rpc server :%u: out of memory for a request from %s", (unsigned)c->srv->port,
                 c->peer);
        conn_close(c, "out of memory");
        return;
    }
    conn_ref(c);
    *ctx = (rpc_ctx){.conn = c, .id = f->id, .method = f->method,
                     .max_frame = c->srv->opts.max_frame};
    c->inflight++;
    c->last_active_ms = now_ms();
    const rpc_method *m = find_method(c->srv, f->method);
    if (!m) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "unknown method %u", (unsigned)f->method);
        rpc_respond(ctx, BT_EINVAL, msg, (size_t)n);
        return;
    }
    rpc_request req = {.id = f->id, .method = f->method, .payload = f->payload,
                       .payload_len = f->payload_len, .peer = c->peer};
    m->fn(m->arg, &req, ctx);
}

/* Decodes and dispatches every whole request buffered on c, as long as c is
 * not blocked; then (re)arms or pauses reading.  Not reentrant: a handler that
 * answers inline calls back here through conn_send, which returns at once. */
static void conn_pump(struct rpc_conn *c)
{
    if (c->pumping || !c->bev) return;
    conn_ref(c); /* a malformed frame closes c below */
    c->pumping = true;
    while (c->bev && !conn_blocked(c)) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        rpc_frame f;
        size_t flen;
        const char *why;
        int rc = next_frame(in, c->srv->opts.max_frame, &f, &flen, &why);
        if (rc == RPC_DECODE_NEED_MORE) break;
        if (rc == RPC_DECODE_FRAME && (f.flags & RPC_FLAG_RESPONSE)) {
            rc = BT_ECORRUPT;
            why = "response frame sent to a server";
        }
        if (rc < 0) {
            BT_WARN("rpc server :%u: malformed frame from %s (%s): closing the connection",
                    (unsigned)c->srv->port, c->peer, why);
            conn_close(c, why);
            break;
        }
        dispatch(c, &f);
        if (c->bev) evbuffer_drain(in, flen);
    }
    c->pumping = false;
    if (c->bev) conn_update_reading(c);
    conn_unref(c);
}

/* Appends an encoded answer to c's output (loop thread).  Consumes item and
 * its connection reference. */
static void conn_send(struct rpc_conn *c, struct out_item *item)
{
    bool final = item->final;
    if (!c->bev) {
        free(item);
    } else if (evbuffer_add_reference(bufferevent_get_output(c->bev), item->data, item->len,
                                      free_ref, item)) {
        free(item);
        conn_close(c, "out of memory queueing an answer");
    } else if (final) {
        c->inflight--;
        c->last_active_ms = now_ms();
        conn_pump(c); /* may unblock reading */
    }
    conn_unref(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_pump(arg);
}

/* Output drained below the low-water mark: reading may resume. */
static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_pump(arg);
}

/* Idle: nothing read, nothing owed, nothing unsent for the idle timeout.
 * The read timeout that asks counts only from the last read, so answers and
 * requests still in flight are checked here. */
static bool conn_idle(const struct rpc_conn *c)
{
    return c->inflight == 0 && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
           now_ms() - c->last_active_ms >= (uint64_t)c->srv->opts.idle_timeout_ms;
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct rpc_conn *c = arg;
    if ((what & BEV_EVENT_TIMEOUT) && !conn_idle(c)) {
        bufferevent_enable(bev, EV_READ); /* the timeout disabled reading; re-arms it */
        c->reading = true;
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) conn_close(c, "idle timeout");
    else if (what & BEV_EVENT_EOF) conn_close(c, "closed by peer");
    else if (what & BEV_EVENT_ERROR)
        conn_close(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* A connection for an accepted socket, or NULL (out of memory; fd is then
 * still the caller's).  It starts with one reference, the loop's, which
 * conn_close drops. */
static struct rpc_conn *conn_new(rpc_server *s, evutil_socket_t fd, const struct sockaddr *sa)
{
    struct rpc_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        free(c);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    atomic_fetch_add(&s->hub->refs, 1);
    c->hub = s->hub;
    c->srv = s;
    c->last_active_ms = now_ms();
    format_addr(sa, c->peer, sizeof c->peer);
    return c;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)l;
    (void)salen;
    rpc_server *s = arg;
    char peer[PEER_LEN];
    format_addr(sa, peer, sizeof peer);
    if (atomic_load(&s->nconns) >= s->opts.max_connections) {
        BT_WARN("rpc server :%u: refusing %s: %d connections open", (unsigned)s->port, peer,
                s->opts.max_connections);
        evutil_closesocket(fd);
        return;
    }
    struct rpc_conn *c = conn_new(s, fd, sa);
    if (!c) {
        BT_ERROR("rpc server :%u: out of memory accepting %s", (unsigned)s->port, peer);
        evutil_closesocket(fd);
        return;
    }
    set_nodelay(fd);
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_HIGH_WATER / 2, 0);
    if (s->opts.idle_timeout_ms > 0) {
        struct timeval tv = ms_tv(s->opts.idle_timeout_ms);
        bufferevent_set_timeouts(c->bev, &tv, NULL);
    }
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    atomic_fetch_add(&s->nconns, 1);
    bufferevent_enable(c->bev, EV_READ);
    c->reading = true;
}

/* accept() failed.  Out of descriptors the listener would spin on the pending
 * connection, so it pauses briefly; any other error is only logged. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    rpc_server *s = arg;
    int e = EVUTIL_SOCKET_ERROR();
    BT_WARN("rpc server :%u: accept: %s", (unsigned)s->port, evutil_socket_error_to_string(e));
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        struct timeval tv = ms_tv(ACCEPT_RETRY_MS);
        evconnlistener_disable(l);
        evtimer_add(s->accept_retry, &tv);
    }
}

/* Ends the loop from inside it: a loopbreak sent from another thread before
 * the loop started would be forgotten (event_base_loop clears it), an active
 * event is not. */
static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rpc_server *s = arg;
    event_base_loopbreak(s->base);
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rpc_server *s = arg;
    if (s->listener) evconnlistener_enable(s->listener);
}

/* ---- server: answers ------------------------------------------------------------ */

/* Sends the answers other threads queued (loop thread, on hub->notify). */
static void hub_notify_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct rpc_hub *h = arg;
    pthread_mutex_lock(&h->mu);
    struct out_item *list = h->head;
    h->head = h->tail = NULL;
    pthread_mutex_unlock(&h->mu);
    while (list) {
        struct out_item *next = list->next;
        conn_send(list->conn, list);
        list = next;
    }
}

/* Routes an answer to the loop: directly when already on it, else through the
 * hub queue (dropped once the server stopped).  Consumes item. */
static void deliver(struct rpc_conn *c, struct out_item *item)
{
    conn_ref(c);
    item->conn = c;
    if (tls_loop == c->hub) {
        conn_send(c, item);
        return;
    }
    struct rpc_hub *h = c->hub;
    pthread_mutex_lock(&h->mu);
    if (h->stopped) {
        pthread_mutex_unlock(&h->mu);
        free(item);
        conn_unref(c);
        return;
    }
    item->next = NULL;
    if (h->tail) h->tail->next = item;
    else h->head = item;
    h->tail = item;
    if (h->head == item) event_active(h->notify, EV_READ, 0);
    pthread_mutex_unlock(&h->mu);
}

/* Encodes an answer frame for ctx into *out, malloc'd; deliver() takes it. */
static int make_item(const rpc_ctx *ctx, int status, uint8_t flags, const void *payload,
                     size_t len, struct out_item **out)
{
    rpc_frame f = {.id = ctx->id, .method = ctx->method, .status = status, .flags = flags,
                   .payload = payload, .payload_len = len};
    if (len > ctx->max_frame || rpc_frame_size(len) > ctx->max_frame)
        return bt_err(BT_ETOOBIG, "rpc answer of %zu bytes over the %zu-byte cap", len,
                      ctx->max_frame);
    struct out_item *item = malloc(sizeof *item + rpc_frame_size(len));
    if (!item) return bt_err(BT_ENOMEM, "rpc answer of %zu bytes", len);
    rpc_frame_put_header(item->data, &f);
    if (len) memcpy(item->data + RPC_HDR_LEN, payload, len);
    item->len = rpc_frame_size(len);
    item->final = !(flags & RPC_FLAG_MORE);
    item->next = NULL;
    *out = item;
    return BT_OK;
}

int rpc_respond(rpc_ctx *ctx, int status, const void *payload, size_t len)
{
    struct out_item *item;
    if (status > 0) status = BT_EINVAL;
    int rc = make_item(ctx, status, RPC_FLAG_RESPONSE, payload, len, &item);
    if (rc == BT_ETOOBIG) status = BT_ETOOBIG;
    else if (rc == BT_ENOMEM) status = BT_ENOMEM;
    if (rc && make_item(ctx, status, RPC_FLAG_RESPONSE, NULL, 0, &item)) {
        /* Not even an empty answer fits in memory: the request stays
         * unanswered (the client times out) but the connection is released. */
        BT_ERROR("rpc: out of memory answering request %llu", (unsigned long long)ctx->id);
        conn_unref(ctx->conn);
        free(ctx);
        return BT_ENOMEM;
    }
    deliver(ctx->conn, item);
    conn_unref(ctx->conn);
    free(ctx);
    return rc;
}

int rpc_respond_more(rpc_ctx *ctx, const void *payload, size_t len)
{
    struct out_item *item;
    int rc = make_item(ctx, 0, RPC_FLAG_RESPONSE | RPC_FLAG_MORE, payload, len, &item);
    if (rc) return rc;
    deliver(ctx->conn, item);
    return BT_OK;
}

/* ---- server: lifecycle ------------------------------------------------------------ */

static int cmp_method(const void *a, const void *b)
{
    const rpc_method *x = a, *y = b;
    return (int)x->method - (int)y->method;
}

/* Validates opts and fills in defaults. */
static int server_opts(const rpc_server_opts *in, rpc_server_opts *out)
{
    *out = in ? *in : (rpc_server_opts){0};
    if (!out->max_frame) out->max_frame = RPC_DEFAULT_MAX_FRAME;
    if (!out->max_connections) out->max_connections = DEFAULT_MAX_CONNECTIONS;
    if (!out->max_inflight) out->max_inflight = DEFAULT_MAX_INFLIGHT;
    if (!rpc_max_frame_valid(out->max_frame) || out->idle_timeout_ms < 0 ||
        out->max_connections < 0 || out->max_inflight < 0)
        return bt_err(BT_EINVAL, "rpc server: invalid options");
    return BT_OK;
}

/* Copies and sorts the method table; rejects duplicates and NULL handlers. */
static int server_methods(rpc_server *s, const rpc_method *methods, size_t n)
{
    s->methods = calloc(n ? n : 1, sizeof *s->methods);
    if (!s->methods) return BT_ENOMEM;
    if (n) memcpy(s->methods, methods, n * sizeof *methods);
    s->nmethods = n;
    qsort(s->methods, n, sizeof *s->methods, cmp_method);
    for (size_t i = 0; i < n; i++) {
        if (!s->methods[i].fn) return bt_err(BT_EINVAL, "rpc server: method %u has no handler",
                                             (unsigned)s->methods[i].method);
        if (i && s->methods[i].method == s->methods[i - 1].method)
            return bt_err(BT_EINVAL, "rpc server: method %u listed twice",
                          (unsigned)s->methods[i].method);
    }
    return BT_OK;
}

static int server_hub(rpc_server *s)
{
    struct rpc_hub *h = calloc(1, sizeof *h);
    if (!h) return BT_ENOMEM;
    atomic_init(&h->refs, 1);
    pthread_mutex_init(&h->mu, NULL);
    s->hub = h;
    h->notify = event_new(s->base, -1, 0, hub_notify_cb, h);
    s->accept_retry = evtimer_new(s->base, accept_retry_cb, s);
    s->stop_ev = event_new(s->base, -1, 0, stop_cb, s);
    return h->notify && s->accept_retry && s->stop_ev ? BT_OK : BT_ENOMEM;
}

static int server_listen(rpc_server *s, const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = resolve(host, port, true, &ss, &len);
    if (rc) return rc;
    s->listener = evconnlistener_new_bind(
        s->base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        LISTEN_BACKLOG, (struct sockaddr *)&ss, (int)len);
    if (!s->listener)
        return bt_err(BT_EIO, "rpc server: listen on %s:%u: %s", host ? host : "*",
                      (unsigned)port, strerror(errno));
    evconnlistener_set_error_cb(s->listener, accept_error_cb);
    len = sizeof ss;
    if (getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&ss, &len))
        return bt_err(BT_EIO, "rpc server: getsockname: %s", strerror(errno));
    s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return BT_OK;
}

int rpc_server_new(const char *host, uint16_t port, const rpc_method *methods, size_t nmethods,
                   const rpc_server_opts *opts, rpc_server **out)
{
    *out = NULL;
    int rc = libevent_init();
    if (rc) return rc;
    rpc_server *s = calloc(1, sizeof *s);
    if (!s) return BT_ENOMEM;
    atomic_init(&s->nconns, 0);
    s->state = SRV_NEW;
    rc = server_opts(opts, &s->opts);
    if (!rc) rc = server_methods(s, methods, nmethods);
    if (!rc) rc = (s->base = event_base_new()) ? BT_OK : bt_err(BT_EIO, "rpc: event_base_new");
    if (!rc) rc = server_hub(s);
    if (!rc) rc = server_listen(s, host, port);
    if (rc) {
        rpc_server_free(s);
        return rc;
    }
    *out = s;
    return BT_OK;
}

uint16_t rpc_server_port(const rpc_server *s) { return s->port; }

int rpc_server_connections(const rpc_server *s) { return atomic_load(&s->nconns); }

static void *server_main(void *arg)
{
    rpc_server *s = arg;
    pthread_setname_np(pthread_self(), "bt-rpc-server");
    block_sigpipe();
    tls_loop = s->hub;
    event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
    tls_loop = NULL;
    return NULL;
}

int rpc_server_start(rpc_server *s)
{
    if (s->state != SRV_NEW) return bt_err(BT_EFAILED_PRECONDITION, "rpc server: already started");
    if (pthread_create(&s->thread, NULL, server_main, s))
        return bt_err(BT_EIO, "rpc server: cannot start the loop thread");
    s->state = SRV_RUNNING;
    return BT_OK;
}

void rpc_server_stop(rpc_server *s)
{
    if (s->state == SRV_STOPPED) return;
    if (s->hub) {
        pthread_mutex_lock(&s->hub->mu);
        s->hub->stopped = true;
        pthread_mutex_unlock(&s->hub->mu);
    }
    if (s->state == SRV_RUNNING) {
        event_active(s->stop_ev, EV_READ, 0);
        pthread_join(s->thread, NULL);
    }
    s->state = SRV_STOPPED;
    /* The loop is gone and no thread queues answers any more. */
    if (s->hub) {
        pthread_mutex_lock(&s->hub->mu);
        struct out_item *list = s->hub->head;
        s->hub->head = s->hub->tail = NULL;
        pthread_mutex_unlock(&s->hub->mu);
        for (struct out_item *next; list; list = next) {
            next = list->next;
            conn_unref(list->conn);
            free(list);
        }
    }
    while (s->conns) conn_close(s->conns, "server stopping");
    if (s->listener) evconnlistener_free(s->listener);
    s->listener = NULL;
    /* libevent closes a freed bufferevent's socket from a finalizer run by
     * the loop: one last pass now, so clients see the close at once. */
    if (s->base) event_base_loop(s->base, EVLOOP_NONBLOCK);
}

void rpc_server_free(rpc_server *s)
{
    if (!s) return;
    rpc_server_stop(s);
    if (s->accept_retry) event_free(s->accept_retry);
    if (s->stop_ev) event_free(s->stop_ev);
    if (s->hub) {
        if (s->hub->notify) event_free(s->hub->notify);
        s->hub->notify = NULL;
        hub_unref(s->hub);
    }
    if (s->base) event_base_free(s->base);
    free(s->methods);
    free(s);
}

/* ---- client: types ---------------------------------------------------------------- */

/* One call, from rpc_call_async until its final completion. */
struct pending {
    struct pending *next;      /* submission queue (under mu), then hash chain (loop) */
    rpc_client *client;
    uint64_t id;
    int timeout_ms;
    uint8_t *frame;            /* the encoded request until handed to the socket */
    size_t frame_len;
    struct event *timer;       /* loop thread only */
    rpc_done_fn done;
    void *arg;
};

enum { CL_IDLE, CL_CONNECTING, CL_CONNECTED };

struct rpc_client {
    /* Immutable after rpc_client_new: */
    char *host;
    uint16_t port;
    rpc_client_opts opts;      /* defaults filled in */
    struct event_base *base;
    struct event *kick;        /* wakes the loop: submissions or closing */
    struct event *connect_timer;
    pthread_t thread;
    /* mu protects subq, next_id, closing, and is the mutex of rpc_call waits: */
    pthread_mutex_t mu;
    struct pending *subq_head, *subq_tail; /* submitted, not yet seen by the loop */
    uint64_t next_id;
    bool closing;
    /* Loop thread only: */
    struct bufferevent *bev;   /* NULL while CL_IDLE */
    int state;
    struct pending **tab;      /* in-flight calls by id; chained through next */
    size_t tab_cap;            /* a power of two */
    size_t tab_n;
    uint64_t retry_at_ms;      /* after a failed connect, calls fail fast until then */
    int backoff_ms;            /* the next wait after a failed connect */
};

/* ---- client: the in-flight table (loop thread only) ----------------------------------- */

static int tab_put(rpc_client *c, struct pending *p)
{
    if (c->tab_n >= c->tab_cap) {
        size_t cap = c->tab_cap ? c->tab_cap * 2 : 64;
        struct pending **t = calloc(cap, sizeof *t);
        if (!t) return BT_ENOMEM;
        for (size_t i = 0; i < c->tab_cap; i++) {
            for (struct pending *q = c->tab[i], *next; q; q = next) {
                next = q->next;
                q->next = t[q->id & (cap - 1)];
                t[q->id & (cap - 1)] = q;
            }
        }
        free(c->tab);
        c->tab = t;
        c->tab_cap = cap;
    }
    struct pending **slot = &c->tab[p->id & (c->tab_cap - 1)];
    p->next = *slot;
    *slot = p;
    c->tab_n++;
    return BT_OK;
}

/* The call with this id, or NULL if none (a late answer).  With take it is
 * unlinked and the caller completes it (which frees it); else it stays in the
 * table, which owns it. */
static struct pending *tab_find(rpc_client *c, uint64_t id, bool take)
{
    if (!c->tab_cap) return NULL;
    for (struct pending **pp = &c->tab[id & (c->tab_cap - 1)]; *pp; pp = &(*pp)->next) {
        struct pending *p = *pp;
        if (p->id != id) continue;
        if (take) {
            *pp = p->next;
            c->tab_n--;
        }
        return p;
    }
    return NULL;
}

/* Unlinks every in-flight call; returns them as a list the caller completes. */
static struct pending *tab_take_all(rpc_client *c)
{
    struct pending *list = NULL;
    for (size_t i = 0; i < c->tab_cap; i++) {
        while (c->tab[i]) {
            struct pending *p = c->tab[i];
            c->tab[i] = p->next;
            p->next = list;
            list = p;
        }
    }
    c->tab_n = 0;
    return list;
}

/* ---- client: completion and connection (loop thread) ------------------------------------ */

/* Reports the final outcome of p and frees it. */
static void complete(struct pending *p, int status, const uint8_t *payload, size_t len)
{
    if (p->timer) event_free(p->timer);
    p->done(p->arg, status, payload, len, false);
    free(p->frame);
    free(p);
}

static void complete_list(struct pending *list, int status)
{
    while (list) {
        struct pending *next = list->next;
        complete(list, status, NULL, 0);
        list = next;
    }
}

/* Closes the connection; every in-flight call fails with status. */
static void client_drop(rpc_client *c, int status, const char *why)
{
    if (c->bev) {
        BT_DEBUG("rpc client %s:%u: connection closed: %s", c->host, (unsigned)c->port, why);
        bufferevent_free(c->bev);
    }
    c->bev = NULL;
    c->state = CL_IDLE;
    event_del(c->connect_timer);
    complete_list(tab_take_all(c), status);
}

/* A connect attempt failed: calls fail fast until the backoff has passed. */
static void connect_failed(rpc_client *c, const char *why)
{
    BT_DEBUG("rpc client %s:%u: connect failed (%s), next try in %d ms", c->host,
             (unsigned)c->port, why, c->backoff_ms);
    c->retry_at_ms = now_ms() + (uint64_t)c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > c->opts.backoff_max_ms ? c->opts.backoff_max_ms
                                                                : c->backoff_ms * 2;
    client_drop(c, BT_EUNAVAIL, why);
}

static void client_read_cb(struct bufferevent *bev, void *arg);

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    rpc_client *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        c->state = CL_CONNECTED;
        c->backoff_ms = c->opts.backoff_min_ms;
        event_del(c->connect_timer);
        return;
    }
    const char *why = (what & BEV_EVENT_EOF) ? "closed by peer"
                      : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
    if (c->state == CL_CONNECTING) connect_failed(c, why);
    else client_drop(c, BT_EUNAVAIL, why);
}

static void connect_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rpc_client *c = arg;
    if (c->state == CL_CONNECTING) connect_failed(c, "connect timed out");
}

/* Starts a non-blocking connect; BT_OK or BT_EUNAVAIL (already dropped). */
static int client_connect(rpc_client *c)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (resolve(c->host, c->port, false, &ss, &len)) {
        connect_failed(c, bt_errmsg());
        return BT_EUNAVAIL;
    }
    evutil_socket_t fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) set_nodelay(fd);
    c->bev = fd >= 0 ? bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!c->bev) {
        if (fd >= 0) close(fd);
        connect_failed(c, "no socket");
        return BT_EUNAVAIL;
    }
    bufferevent_setcb(c->bev, client_read_cb, NULL, client_event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = CL_CONNECTING;
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, (int)len)) {
        connect_failed(c, strerror(errno));
        return BT_EUNAVAIL;
    }
    struct timeval tv = ms_tv(c->opts.connect_timeout_ms);
    evtimer_add(c->connect_timer, &tv);
    return BT_OK;
}

static void call_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pending *p = arg;
    tab_find(p->client, p->id, true);
    complete(p, BT_ETIMEDOUT, NULL, 0);
}

/* Hands one answer to its call; an answer for no call (it timed out, or the
 * id is unknown) is dropped. */
static void client_answer(rpc_client *c, const rpc_frame *f)
{
    bool more = (f->flags & RPC_FLAG_MORE) != 0;
    struct pending *p = tab_find(c, f->id, !more);
    if (!p) {
        BT_DEBUG("rpc client %s:%u: dropping late answer to request %llu", c->host,
                 (unsigned)c->port, (unsigned long long)f->id);
        return;
    }
    if (!more) {
        complete(p, f->status, f->payload, f->payload_len);
        return;
    }
    struct timeval tv = ms_tv(p->timeout_ms);
    evtimer_add(p->timer, &tv); /* the timeout restarts with every part */
    p->done(p->arg, BT_OK, f->payload, f->payload_len, true);
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
    rpc_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (c->bev == bev) {
        rpc_frame f;
        size_t flen;
        const char *why;
        int rc = next_frame(in, c->opts.max_frame, &f, &flen, &why);
        if (rc == RPC_DECODE_NEED_MORE) return;
        if (rc == RPC_DECODE_FRAME && !(f.flags & RPC_FLAG_RESPONSE)) {
            rc = BT_ECORRUPT;
            why = "request frame sent to a client";
        }
        if (rc < 0) {
            BT_WARN("rpc client %s:%u: malformed frame (%s): closing the connection", c->host,
                    (unsigned)c->port, why);
            client_drop(c, BT_EUNAVAIL, why);
            return;
        }
        client_answer(c, &f);
        evbuffer_drain(in, flen);
    }
}

/* Puts one submitted call on the wire, connecting first if needed. */
static void submit_one(rpc_client *c, struct pending *p)
{
    if (c->state == CL_IDLE) {
        if (now_ms() < c->retry_at_ms || client_connect(c)) {
            complete(p, BT_EUNAVAIL, NULL, 0);
            return;
        }
    }
    struct timeval tv = ms_tv(p->timeout_ms);
    p->timer = evtimer_new(c->base, call_timeout_cb, p);
    if (!p->timer || tab_put(c, p)) {
        complete(p, BT_ENOMEM, NULL, 0);
        return;
    }
    evtimer_add(p->timer, &tv);
    if (evbuffer_add_reference(bufferevent_get_output(c->bev), p->frame, p->frame_len, free_ref,
                               p->frame)) {
        tab_find(c, p->id, true);
        complete(p, BT_ENOMEM, NULL, 0);
        return;
    }
    p->frame = NULL; /* the output buffer frees it once sent */
}

/* Takes the submission queue; sends it, or fails everything when closing. */
static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rpc_client *c = arg;
    pthread_mutex_lock(&c->mu);
    struct pending *list = c->subq_head;
    c->subq_head = c->subq_tail = NULL;
    bool closing = c->closing;
    pthread_mutex_unlock(&c->mu);
    if (closing) {
        complete_list(list, BT_ECLOSED);
        client_drop(c, BT_ECLOSED, "client freed");
        event_base_loopbreak(c->base);
        return;
    }
    while (list) {
        struct pending *next = list->next;
        list->next = NULL;
        submit_one(c, list);
        list = next;
    }
}

/* ---- client: lifecycle and calls ------------------------------------------------------- */

static int client_opts(const rpc_client_opts *in, rpc_client_opts *out)
{
    *out = in ? *in : (rpc_client_opts){0};
    if (!out->connect_timeout_ms) out->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (!out->request_timeout_ms) out->request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS;
    if (!out->backoff_min_ms) out->backoff_min_ms = DEFAULT_BACKOFF_MIN_MS;
    if (!out->backoff_max_ms) out->backoff_max_ms = DEFAULT_BACKOFF_MAX_MS;
    if (!out->max_frame) out->max_frame = RPC_DEFAULT_MAX_FRAME;
    if (out->connect_timeout_ms < 0 || out->request_timeout_ms < 0 || out->backoff_min_ms < 0 ||
        out->backoff_max_ms < out->backoff_min_ms || out->backoff_max_ms > 1000000000 ||
        !rpc_max_frame_valid(out->max_frame))
        return bt_err(BT_EINVAL, "rpc client: invalid options");
    return BT_OK;
}

/* Frees what rpc_client_new built; the loop thread is not running. */
static void client_destroy(rpc_client *c)
{
    free(c->tab);
    if (c->kick) event_free(c->kick);
    if (c->connect_timer) event_free(c->connect_timer);
    if (c->base) event_base_free(c->base);
    pthread_mutex_destroy(&c->mu);
    free(c->host);
    free(c);
}

static void *client_main(void *arg)
{
    rpc_client *c = arg;
    pthread_setname_np(pthread_self(), "bt-rpc-client");
    block_sigpipe();
    tls_loop = c;
    event_base_loop(c->base, EVLOOP_NO_EXIT_ON_EMPTY);
    tls_loop = NULL;
    return NULL;
}

int rpc_client_new(const char *host, uint16_t port, const rpc_client_opts *opts,
                   rpc_client **out)
{
    *out = NULL;
    if (!host || !port) return bt_err(BT_EINVAL, "rpc client: host and port are required");
    int rc = libevent_init();
    if (rc) return rc;
    rpc_client *c = calloc(1, sizeof *c);
    if (!c) return BT_ENOMEM;
    pthread_mutex_init(&c->mu, NULL);
    c->port = port;
    c->state = CL_IDLE;
    rc = client_opts(opts, &c->opts);
    if (rc) {
        client_destroy(c);
        return rc;
    }
    c->backoff_ms = c->opts.backoff_min_ms;
    c->host = strdup(host);
    c->base = event_base_new();
    if (c->base) c->kick = event_new(c->base, -1, 0, kick_cb, c);
    if (c->base) c->connect_timer = evtimer_new(c->base, connect_timeout_cb, c);
    if (!c->host || !c->kick || !c->connect_timer) {
        client_destroy(c);
        return BT_ENOMEM;
    }
    if (pthread_create(&c->thread, NULL, client_main, c)) {
        client_destroy(c);
        return bt_err(BT_EIO, "rpc client: cannot start the loop thread");
    }
    *out = c;
    return BT_OK;
}

void rpc_client_free(rpc_client *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    event_active(c->kick, EV_READ, 0);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    client_destroy(c);
}

int rpc_call_async(rpc_client *c, uint16_t method, const void *req, size_t req_len, int timeout_ms,
                   rpc_done_fn done, void *arg)
{
    if (!done || timeout_ms < 0) return bt_err(BT_EINVAL, "rpc call: bad arguments");
    rpc_frame f = {.method = method, .payload = req, .payload_len = req_len};
    bt_buf b = {0};
    int rc = rpc_frame_encode(&b, &f, c->opts.max_frame);
    struct pending *p = rc ? NULL : calloc(1, sizeof *p);
    if (!p) {
        bt_buf_free(&b);
        return rc ? rc : BT_ENOMEM;
    }
    *p = (struct pending){.client = c, .frame = b.data, .frame_len = b.len, .done = done,
                          .arg = arg, .timeout_ms = timeout_ms ? timeout_ms
                                                               : c->opts.request_timeout_ms};
    pthread_mutex_lock(&c->mu);
    if (c->closing) {
        pthread_mutex_unlock(&c->mu);
        free(p->frame);
        free(p);
        return bt_err(BT_ECLOSED, "rpc call: client is closing");
    }
    p->id = ++c->next_id;
    bt_put_fixed64(p->frame + 4, p->id); /* the id is known only now */
    if (c->subq_tail) c->subq_tail->next = p;
    else c->subq_head = p;
    c->subq_tail = p;
    if (c->subq_head == p) event_active(c->kick, EV_READ, 0);
    pthread_mutex_unlock(&c->mu);
    return BT_OK;
}

/* A blocking call waiting for its completion (signalled under the client's mu). */
struct waiter {
    rpc_client *client;
    pthread_cond_t cond;
    bool done;        /* under client->mu */
    int status;       /* under client->mu */
    int err;          /* appending to resp failed; loop thread until done */
    bt_buf *resp;
};

static void waiter_done(void *arg, int status, const uint8_t *payload, size_t len, bool more)
{
    struct waiter *w = arg;
    if (w->resp && len && !w->err) w->err = bt_buf_append(w->resp, payload, len);
    if (more) return;
    pthread_mutex_lock(&w->client->mu);
    w->status = status;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->client->mu);
}

int rpc_call(rpc_client *c, uint16_t method, const void *req, size_t req_len, bt_buf *resp,
             int timeout_ms)
{
    if (tls_loop == c)
        return bt_err(BT_EFAILED_PRECONDITION, "rpc_call from the client's own loop thread");
    struct waiter w = {.client = c, .resp = resp};
    if (resp) bt_buf_clear(resp);
    pthread_cond_init(&w.cond, NULL);
    int rc = rpc_call_async(c, method, req, req_len, timeout_ms, waiter_done, &w);
    if (rc == BT_OK) {
        pthread_mutex_lock(&c->mu);
        while (!w.done) pthread_cond_wait(&w.cond, &c->mu);
        pthread_mutex_unlock(&c->mu);
        rc = w.err ? w.err : w.status;
    }
    pthread_cond_destroy(&w.cond);
    return rc;
}

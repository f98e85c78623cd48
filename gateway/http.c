/* gateway/http.c: the HTTP server of bt-gateway (see http.h).
 *
 * libevent 2.1's evhttp has no connection limit, no hook when it accepts a
 * connection and no way to replace its canned error pages.  Three small
 * mechanisms fill the gaps, all on the connection's own loop thread:
 *
 *   - evhttp_set_bevcb gives us every accepted connection's bufferevent
 *     before evhttp wraps it.  We note it and activate the loop's "hook"
 *     event, which runs before the loop polls again -- after evhttp has
 *     finished setting the connection up, before any byte of it is read.
 *     The hook finds the evhttp_connection (the bufferevent's callback
 *     argument, checked with evhttp_connection_get_bufferevent), counts it
 *     against --max-connections (over the limit: a canned 503 and close),
 *     and sets its close callback, which uncounts it and ends a stream that
 *     was being sent on it (the client went away).
 *   - The hook also watches the connection's output buffer.  Bytes added
 *     while no handler of ours runs are evhttp's own error pages (malformed
 *     request: 400; headers or body over the limit: 413), written as HTML;
 *     a second deferred event ("fix") replaces such a page with the same
 *     error as JSON before the loop writes it to the socket.
 *   - Streams (gw_reply_stream) are linked per loop so the close callback
 *     can find the one of a closing connection.
 */
#include "gateway/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
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
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>

#include "common/status.h"

typedef struct gw_loop gw_loop;

/* Input buffered per connection beyond what a request may hold before
 * reading stops (see read_bound). */
#define GW_READ_SLACK (64 * 1024)

/* A list of bufferevents waiting for a deferred event (hook or fix). */
typedef struct bev_list {
    struct bufferevent **v;
    size_t n, cap;
} bev_list;

struct gw_loop {
    gw_http *h;
    struct event_base *base;
    struct evhttp *http;
    pthread_t tid;
    bool started;
    struct event *hook_ev, *fix_ev;
    bev_list hook, fix;         /* filled and drained on this loop's thread */
    int in_handler;             /* >0 while our code writes responses */
    gw_req *streams;            /* streams being sent on this loop */
};

struct gw_http {
    gw_http_options o;
    int fd;
    uint16_t port;
    int n_loops;
    gw_loop *loops;
    atomic_int conns;
    atomic_bool stopping;
};

struct gw_req {
    struct evhttp_request *ev;
    struct evhttp_connection *evcon;
    gw_loop *loop;
    int64_t start_us;
    const char *endpoint;
    int status;
    bool replied;
    /* streams */
    gw_produce_fn produce;
    gw_stream_done_fn done;
    void *arg;
    gw_req *next, *prev;
    bool in_request;            /* on_request still runs: it frees r */
    bool ended;                 /* the stream ended during on_request */
};

static _Thread_local gw_loop *tl_loop;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

static int bev_list_add(bev_list *l, struct bufferevent *b)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == b) return 0;
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 16;
        struct bufferevent **nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) return -1;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = b;
    return 0;
}

/* ---- metrics and replies ------------------------------------------------------- */

static void observe(gw_req *r)
{
    if (r->loop->h->o.metrics)
        gw_metrics_observe(r->loop->h->o.metrics, r->endpoint, r->status, (uint64_t)(now_us() - r->start_us));
}

int gw_req_method(const gw_req *r)
{
    switch (evhttp_request_get_command(r->ev)) {
    case EVHTTP_REQ_GET: return GW_GET;
    case EVHTTP_REQ_POST: return GW_POST;
    case EVHTTP_REQ_HEAD: return GW_HEAD;
    case EVHTTP_REQ_PUT: return GW_PUT;
    case EVHTTP_REQ_DELETE: return GW_DELETE;
    default: return GW_OTHER;
    }
}

const char *gw_req_uri(const gw_req *r) { return evhttp_request_get_uri(r->ev); }

const char *gw_req_header(const gw_req *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

const uint8_t *gw_req_body(gw_req *r, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    *len = evbuffer_get_length(in);
    return *len ? evbuffer_pullup(in, -1) : NULL;
}

void gw_req_set_endpoint(gw_req *r, const char *endpoint) { r->endpoint = endpoint; }

void gw_reply(gw_req *r, int status, const char *ctype, const void *body, size_t len, const char *extra_name,
              const char *extra_value)
{
    if (r->replied) return;
    r->replied = true;
    r->status = status;
    struct evkeyvalq *hd = evhttp_request_get_output_headers(r->ev);
    evhttp_add_header(hd, "Content-Type", ctype);
    if (extra_name) evhttp_add_header(hd, extra_name, extra_value);
    struct evbuffer *b = evbuffer_new();
    if (b && len) evbuffer_add(b, body, len);
    r->loop->in_handler++;
    evhttp_send_reply(r->ev, status, reason(status), b);
    r->loop->in_handler--;
    if (b) evbuffer_free(b);
    observe(r);
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when the byte at s
 * does not start one (stray continuation, overlong, surrogate, cut short). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) need = 1, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) need = 2, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) need = 3, cp = c & 0x07;
    else return 0;
    for (size_t k = 1; k <= need; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0; /* also stops at the NUL */
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need + 1;
}

/* Writes s as a JSON string (with the quotes) into out: control bytes
 * escaped, valid UTF-8 sequences copied whole, any byte that is not part of
 * one written as the text \xNN, so the result is always valid JSON and
 * UTF-8.  Truncated (on a character boundary) when out is too small. */
static void json_str(char *out, size_t cap, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t o = 0;
    if (cap < 3) {
        if (cap) out[0] = '\0';
        return;
    }
    out[o++] = '"';
    while (*s) {
        unsigned char c = *s;
        char e[8];
        size_t el, adv = 1;
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            el = 2;
        } else if (c < 0x20) {
            el = (size_t)snprintf(e, sizeof e, "\\u%04x", c);
        } else if (c < 0x80) {
            e[0] = (char)c;
            el = 1;
        } else if ((adv = utf8_seq(s)) != 0) {
            memcpy(e, s, adv);
            el = adv;
        } else {
            el = (size_t)snprintf(e, sizeof e, "\\\\x%02X", c);
            adv = 1;
        }
        if (o + el + 2 > cap) break; /* room for the closing quote and the NUL */
        memcpy(out + o, e, el);
        o += el;
        s += adv;
    }
    out[o++] = '"';
    out[o] = '\0';
}

static int error_body(char *out, size_t cap, const char *code, const char *msg)
{
    char esc[1200];
    json_str(esc, sizeof esc, msg);
    return snprintf(out, cap, "{\"error\":{\"code\":\"%s\",\"message\":%s}}\n", code, esc);
}

void gw_reply_error(gw_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[512], body[1400];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (len >= (int)sizeof msg) { /* cut: drop a character the cut split */
        size_t k = strlen(msg);
        while (k > 0 && ((unsigned char)msg[k - 1] & 0xC0) == 0x80 && strlen(msg) - k < 3) k--;
        if (k > 0 && (unsigned char)msg[k - 1] >= 0xC0 && !utf8_seq((const unsigned char *)msg + k - 1)) msg[k - 1] = '\0';
    }
    int n = error_body(body, sizeof body, code, msg);
    gw_reply(r, status, "application/json", body, (size_t)n, NULL, NULL);
}

/* ---- streams ----------------------------------------------------------------------- */

static void stream_unlink(gw_req *r)
{
    gw_loop *l = r->loop;
    if (r->prev) r->prev->next = r->next;
    else if (l->streams == r) l->streams = r->next;
    if (r->next) r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

/* Ends a stream: ev is still ours to finish when owned (NULL: evhttp frees it). */
static void stream_end(gw_req *r, bool completed, bool send_end)
{
    stream_unlink(r);
    if (send_end) {
        r->loop->in_handler++;
        evhttp_send_reply_end(r->ev);
        r->loop->in_handler--;
    }
    observe(r);
    r->done(r->arg, completed);
    if (r->in_request) r->ended = true;
    else free(r);
}

/* The read high-watermark of a connection.  evhttp reads on while it
 * writes a response (to notice a close), into an unbounded input buffer, so
 * a client could make it buffer without limit.  While a request is read,
 * evhttp keeps a Content-Length body in that buffer until all of it is
 * there, so the bound must let a whole request in (headers + body); while a
 * stream -- a long response -- is written, no request is read, and the
 * bound is one request head's worth. */
static size_t read_bound(const gw_http *h, bool streaming)
{
    return h->o.max_header + GW_READ_SLACK + (streaming ? 0 : h->o.max_body);
}

static void set_read_bound(gw_req *r, bool streaming)
{
    struct bufferevent *bev = r->evcon ? evhttp_connection_get_bufferevent(r->evcon) : NULL;
    if (bev) bufferevent_setwatermark(bev, EV_READ, 0, read_bound(r->loop->h, streaming));
}

static void on_chunk_written(struct evhttp_connection *evcon, void *arg);

/* Produces and queues the next part; the next call comes from
 * on_chunk_written once it has left. */
static void stream_pump(gw_req *r)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        set_read_bound(r, false);
        stream_end(r, false, true);
        return;
    }
    int rc = 0;
    while (rc == 0 && evbuffer_get_length(b) == 0) rc = r->produce(r->arg, b);
    r->loop->in_handler++;
    if (rc == 0) {
        evhttp_send_reply_chunk_with_cb(r->ev, b, on_chunk_written, r);
        r->loop->in_handler--;
        evbuffer_free(b);
        return;
    }
    if (evbuffer_get_length(b)) evhttp_send_reply_chunk(r->ev, b);
    r->loop->in_handler--;
    evbuffer_free(b);
    set_read_bound(r, false); /* the connection may read its next request */
    stream_end(r, rc == 1, true);
}

static void on_chunk_written(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    stream_pump(arg);
}

void gw_reply_stream(gw_req *r, int status, const char *ctype, gw_produce_fn produce, gw_stream_done_fn done,
                     void *arg)
{
    if (evhttp_request_get_command(r->ev) == EVHTTP_REQ_HEAD) {
        /* evhttp sends no body to a HEAD request and so never calls the
         * chunk callback: a stream would hang the connection.  Headers only. */
        gw_reply(r, status, ctype, NULL, 0, NULL, NULL);
        done(arg, true);
        return;
    }
    r->replied = true;
    r->status = status;
    r->produce = produce;
    r->done = done;
    r->arg = arg;
    gw_loop *l = r->loop;
    r->next = l->streams;
    if (l->streams) l->streams->prev = r;
    l->streams = r;
    evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Content-Type", ctype);
    set_read_bound(r, true);
    l->in_handler++;
    evhttp_send_reply_start(r->ev, status, reason(status));
    l->in_handler--;
    stream_pump(r);
}

/* ---- requests ---------------------------------------------------------------------- */

static void on_request(struct evhttp_request *ev, void *arg)
{
    gw_loop *l = arg;
    gw_req *r = calloc(1, sizeof *r);
    if (!r) {
        evhttp_send_error(ev, 500, "Internal Server Error");
        return;
    }
    r->ev = ev;
    r->evcon = evhttp_request_get_connection(ev);
    r->loop = l;
    r->start_us = now_us();
    r->endpoint = "unknown";
    r->in_request = true;
    l->in_handler++;
    l->h->o.handler(l->h->o.handler_arg, r);
    l->in_handler--;
    if (!r->replied) gw_reply_error(r, 500, "INTERNAL", "the handler gave no answer");
    r->in_request = false;
    if (!r->produce || r->ended) free(r);
}

/* ---- connections: counting, close, canned errors ------------------------------------ */

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    gw_loop *l = arg;
    atomic_fetch_sub(&l->h->conns, 1);
    gw_req *s = l->streams;
    while (s) {
        gw_req *next = s->next;
        if (s->evcon == evcon) {
            /* A request evhttp detached from its failing connection is ours
             * to free (evhttp_send_reply_end does); one still attached goes
             * with the connection. */
            bool detached = evhttp_request_get_connection(s->ev) == NULL;
            stream_end(s, false, detached);
        }
        s = next;
    }
}

/* evhttp's "100 Continue" (HTTP/1.x), which may still sit in front of an
 * error page it writes when the body then turns out too large. */
#define CONTINUE_LEN 25
static bool is_continue(const char *p, size_t len)
{
    return len >= CONTINUE_LEN && !memcmp(p, "HTTP/1.", 7) && !memcmp(p + 8, " 100 Continue\r\n\r\n", 17);
}

/* Output of a connection grew: if none of our code is writing, it is one of
 * evhttp's own error pages (or its 100 Continue, which an error page may
 * follow before it leaves); rewrite it before it leaves. */
static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    gw_loop *l = tl_loop;
    if (!l || l->in_handler || info->n_added == 0) return;
    if (info->orig_size != 0) {
        char head[CONTINUE_LEN];
        if (info->orig_size != CONTINUE_LEN || evbuffer_copyout(buf, head, sizeof head) != CONTINUE_LEN ||
            !is_continue(head, sizeof head))
            return;
    }
    if (bev_list_add(&l->fix, arg) == 0) event_active(l->fix_ev, EV_READ, 0);
}

static void on_fix(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_loop *l = arg;
    for (size_t i = 0; i < l->fix.n; i++) {
        struct evbuffer *out = bufferevent_get_output(l->fix.v[i]);
        size_t len = evbuffer_get_length(out);
        char *p = (char *)evbuffer_pullup(out, (ev_ssize_t)len);
        if (!p) continue;
        char cont[CONTINUE_LEN];
        size_t skip = is_continue(p, len) ? CONTINUE_LEN : 0;
        if (skip) memcpy(cont, p, skip);
        const char *q = p + skip;
        size_t ql = len - skip;
        int status = 0;
        if (ql < 13 || strncmp(q, "HTTP/1.", 7) || sscanf(q + 9, "%3d", &status) != 1 || status < 400) continue;
        /* the page must be the first response in the buffer: its head ends
         * right before evhttp's HTML */
        const char *eoh = memmem(q, ql, "\r\n\r\n", 4);
        if (!eoh || (size_t)(q + ql - eoh) < 16 || memcmp(eoh, "\r\n\r\n<HTML><HEAD>", 16)) continue;
        const char *code = "INVALID_ARGUMENT", *msg, *allow = "";
        char m[160];
        snprintf(m, sizeof m, "malformed HTTP request, or request line and headers over %zu bytes",
                 l->h->o.max_header);
        msg = m;
        if (status == 413) {
            code = "TOO_LARGE";
            snprintf(m, sizeof m, "request too large: headers over %zu bytes or body over %zu bytes",
                     l->h->o.max_header, l->h->o.max_body);
            msg = m;
        } else if (status == 405 || status == 501) {
            /* a method evhttp does not know: none of ours */
            status = 405;
            code = "METHOD_NOT_ALLOWED";
            msg = "method not allowed; allowed: GET, HEAD, POST, PUT, DELETE (which ones depends on the path)";
            allow = "Allow: GET, HEAD, POST, PUT, DELETE\r\n";
        } else {
            status = 400;
        }
        char body[400];
        int n = error_body(body, sizeof body, code, msg);
        /* the socket bufferevent freezes its output's front between its own
         * writes once it has written anything (a 100 Continue, an earlier
         * response on the connection): thaw it for the drain, then restore */
        if (evbuffer_drain(out, len)) {
            evbuffer_unfreeze(out, 1);
            int drc = evbuffer_drain(out, len);
            evbuffer_freeze(out, 1);
            if (drc) continue; /* cannot rewrite it: let evhttp's page go */
        }
        l->in_handler++;
        if (skip) evbuffer_add(out, cont, skip);
        evbuffer_add_printf(out,
                            "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                            "%sConnection: close\r\n\r\n%s",
                            status, reason(status), n, allow, body);
        l->in_handler--;
    }
    l->fix.n = 0;
}

static void on_hook(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_loop *l = arg;
    gw_http *h = l->h;
    for (size_t i = 0; i < l->hook.n; i++) {
        struct bufferevent *bev = l->hook.v[i];
        bufferevent_data_cb rcb, wcb;
        bufferevent_event_cb ecb;
        void *cbarg = NULL;
        bufferevent_getcb(bev, &rcb, &wcb, &ecb, &cbarg);
        struct evhttp_connection *evcon = cbarg;
        if (!evcon || evhttp_connection_get_bufferevent(evcon) != bev) continue; /* not evhttp's: leave it */
        if (atomic_fetch_add(&h->conns, 1) >= h->o.max_connections) {
            atomic_fetch_sub(&h->conns, 1);
            char body[200], resp[400];
            int n = error_body(body, sizeof body, "UNAVAILABLE", "too many connections");
            int rn = snprintf(resp, sizeof resp,
                              "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                              "Content-Length: %d\r\nConnection: close\r\n\r\n%s", n, body);
            if (write(bufferevent_getfd(bev), resp, (size_t)rn) < 0) { /* best effort */ }
            evhttp_connection_free(evcon);
            continue;
        }
        evhttp_connection_set_closecb(evcon, on_close, l);
        bufferevent_setwatermark(bev, EV_READ, 0, read_bound(h, false));
        evbuffer_add_cb(bufferevent_get_output(bev), on_output, bev);
    }
    l->hook.n = 0;
}

static struct bufferevent *on_bev(struct event_base *base, void *arg)
{
    gw_loop *l = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev && bev_list_add(&l->hook, bev) == 0) event_active(l->hook_ev, EV_READ, 0);
    return bev;
}

/* ---- threads, start, stop ------------------------------------------------------------ */

static void *loop_main(void *arg)
{
    gw_loop *l = arg;
    tl_loop = l;
    event_base_dispatch(l->base);
    tl_loop = NULL;
    return NULL;
}

/* One listening socket on host:port with SO_REUSEPORT: every loop thread
 * has its own, bound to the same port, and the kernel spreads new
 * connections over them.  (One shared socket would let whichever thread
 * wakes first accept a whole burst of connections, which then queue behind
 * each other's blocking calls on that one thread.) */
static int listen_socket(const char *host, uint16_t port, int *fd_out, uint16_t *port_out)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (!strcmp(host, "localhost")) host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return bt_err(BT_EINVAL, "--host %s: not an IPv4 address", host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return bt_err(BT_EIO, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 1024)) {
        int e = errno;
        close(fd);
        return bt_err(BT_EIO, "bind %s:%u: %s", host, (unsigned)port, strerror(e));
    }
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *fd_out = fd;
    if (port_out) *port_out = ntohs(sa.sin_port);
    return BT_OK;
}

static int bind_socket(gw_http *h)
{
    const char *host = h->o.host ? h->o.host : "127.0.0.1";
    /* a port someone else already listens on must fail even though our own
     * sockets share it: probe without SO_REUSEPORT first */
    if (h->o.port) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(h->o.port)};
        const char *hh = strcmp(host, "localhost") ? host : "127.0.0.1";
        if (inet_pton(AF_INET, hh, &sa.sin_addr) != 1) return bt_err(BT_EINVAL, "--host %s: not an IPv4 address", host);
        int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0) return bt_err(BT_EIO, "socket: %s", strerror(errno));
        int one = 1;
        setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        int r = bind(probe, (struct sockaddr *)&sa, sizeof sa);
        int e = errno;
        close(probe);
        if (r) return bt_err(BT_EIO, "bind %s:%u: %s", host, (unsigned)h->o.port, strerror(e));
    }
    return listen_socket(host, h->o.port, &h->fd, &h->port);
}

static int loop_init(gw_http *h, gw_loop *l)
{
    l->h = h;
    l->base = event_base_new();
    if (!l->base) return bt_err(BT_ENOMEM, "event_base_new failed");
    l->http = evhttp_new(l->base);
    l->hook_ev = event_new(l->base, -1, 0, on_hook, l);
    l->fix_ev = event_new(l->base, -1, 0, on_fix, l);
    if (!l->http || !l->hook_ev || !l->fix_ev) return bt_err(BT_ENOMEM, "evhttp_new failed");
    evhttp_set_max_body_size(l->http, (ev_ssize_t)h->o.max_body);
    evhttp_set_max_headers_size(l->http, (ev_ssize_t)h->o.max_header);
    evhttp_set_timeout(l->http, h->o.idle_timeout_s);
    evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_flags(l->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_gencb(l->http, on_request, l);
    evhttp_set_bevcb(l->http, on_bev, l);
    int fd = -1;
    if (l == &h->loops[0]) {
        fd = dup(h->fd);
        if (fd < 0) return bt_err(BT_EIO, "dup: %s", strerror(errno));
    } else {
        int rc = listen_socket(h->o.host ? h->o.host : "127.0.0.1", h->port, &fd, NULL);
        if (rc) return rc;
    }
    if (!evhttp_accept_socket_with_handle(l->http, fd)) {
        close(fd);
        return bt_err(BT_EIO, "evhttp_accept_socket failed");
    }
    return BT_OK;
}

int gw_http_start(const gw_http_options *o, gw_http **out)
{
    *out = NULL;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, (void (*)(void))evthread_use_pthreads);
    gw_http *h = calloc(1, sizeof *h);
    if (!h) return BT_ENOMEM;
    h->o = *o;
    if (!h->o.threads) h->o.threads = 64;
    if (!h->o.max_body) h->o.max_body = 16u << 20;
    if (!h->o.max_header) h->o.max_header = 16u << 10;
    if (!h->o.max_connections) h->o.max_connections = 1024;
    if (!h->o.idle_timeout_s) h->o.idle_timeout_s = 60;
    h->fd = -1;
    int rc = bind_socket(h);
    if (rc) {
        free(h);
        return rc;
    }
    if (o->address_out && o->address_len) /* before any loop thread starts: no race with readers */
        snprintf(o->address_out, o->address_len, "%s:%u",
                 !o->host || !strcmp(o->host, "localhost") ? "127.0.0.1" : o->host, (unsigned)h->port);
    h->n_loops = h->o.threads;
    h->loops = calloc((size_t)h->n_loops, sizeof *h->loops);
    if (!h->loops) rc = BT_ENOMEM;
    for (int i = 0; !rc && i < h->n_loops; i++) rc = loop_init(h, &h->loops[i]);
    for (int i = 0; !rc && i < h->n_loops; i++) {
        if (pthread_create(&h->loops[i].tid, NULL, loop_main, &h->loops[i])) rc = bt_err(BT_ENOMEM, "pthread_create");
        else h->loops[i].started = true;
    }
    if (rc) {
        gw_http_stop(h);
        gw_http_free(h);
        return rc;
    }
    *out = h;
    return BT_OK;
}

uint16_t gw_http_port(const gw_http *h) { return h->port; }

int gw_http_connections(const gw_http *h) { return atomic_load(&((gw_http *)h)->conns); }

void gw_http_stop(gw_http *h)
{
    if (!h || atomic_exchange(&h->stopping, true)) return;
    for (int i = 0; i < h->n_loops; i++)
        if (h->loops && h->loops[i].base) event_base_loopexit(h->loops[i].base, NULL);
}

void gw_http_free(gw_http *h)
{
    if (!h) return;
    for (int i = 0; h->loops && i < h->n_loops; i++)
        if (h->loops[i].started) pthread_join(h->loops[i].tid, NULL);
    for (int i = 0; h->loops && i < h->n_loops; i++) {
        gw_loop *l = &h->loops[i];
        tl_loop = NULL;
        if (l->http) evhttp_free(l->http); /* closes connections: streams end */
        if (l->hook_ev) event_free(l->hook_ev);
        if (l->fix_ev) event_free(l->fix_ev);
        if (l->base) event_base_free(l->base);
        free(l->hook.v);
        free(l->fix.v);
    }
    free(h->loops);
    if (h->fd >= 0) close(h->fd);
    free(h);
}

/* gateway/http.h: bt-gateway's HTTP/1.1 server (libevent evhttp).
 *
 * N loop threads, each with its own event_base and evhttp, each listening
 * on its own socket bound to the same port with SO_REUSEPORT, so the kernel
 * spreads new connections over the threads.  A request is handled on the
 * loop thread that read it, from start to end: the handler may block (libbt
 * calls do), which stalls only that thread's other connections, so --threads
 * bounds the requests served at once.  Connections are keep-alive.
 *
 * Limits (gw_http_options): request body bytes (413), header bytes (400),
 * connections (a connection over the limit gets a 503 and is closed at
 * once), idle seconds (an idle or stalled connection is closed).  A
 * connection buffers at most one request's worth of unread input (max_header
 * + max_body + 64 KiB; while a stream is written to it, max_header + 64
 * KiB), e.g. bytes a client sends while its response is being written; past
 * that the gateway stops reading it until the input is consumed.  JSON
 * nesting depth is the API's business (gateway/api.h).
 *
 * Every request is timed from the handler's start to its last byte queued
 * (for a stream: to its end) and counted with gw_metrics_observe under the
 * endpoint name the handler set (gw_req_set_endpoint; "unknown" if none).
 *
 * Threading: the handler runs on a loop thread and must answer the request
 * exactly once (gw_reply, gw_reply_error or gw_reply_stream) before it
 * returns; the gw_req is freed by this module afterwards (a stream's when it
 * ends).  gw_http_stop may be called from any thread (a signal thread).
 */
#ifndef BT_GATEWAY_HTTP_H
#define BT_GATEWAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/gw_obs.h"

struct evbuffer;

typedef struct gw_req gw_req;
typedef struct gw_http gw_http;

/* Called on a loop thread for each complete request. */
typedef void (*gw_handler_fn)(void *arg, gw_req *r);

typedef struct gw_http_options {
    const char *host;           /* NULL -> "127.0.0.1" */
    uint16_t port;              /* 0: an ephemeral port (gw_http_port) */
    int threads;                /* loop threads; 0 -> 64 */
    size_t max_body;            /* bytes; 0 -> 16 MiB */
    size_t max_header;          /* bytes of request line + headers; 0 -> 16 KiB */
    int max_connections;        /* open connections; 0 -> 1024 */
    int idle_timeout_s;         /* 0 -> 60 */
    gw_metrics *metrics;        /* borrowed; NULL: not counted */
    gw_handler_fn handler;
    void *handler_arg;
    /* When set, gw_http_start writes "HOST:PORT" (the port actually bound)
     * there before any loop thread starts, so a handler may read it without
     * synchronisation. */
    char *address_out;
    size_t address_len;
} gw_http_options;

/* Binds host:port and starts the loop threads.  BT_EINVAL (bad host),
 * BT_EIO (bind/listen failed: bt_errmsg says why), BT_ENOMEM. */
int gw_http_start(const gw_http_options *o, gw_http **out);
/* The port actually bound. */
uint16_t gw_http_port(const gw_http *h);
/* Open connections right now (for tests and logs). */
int gw_http_connections(const gw_http *h);
/* Asks every loop thread to stop (idempotent, any thread, async-signal-unsafe). */
void gw_http_stop(gw_http *h);
/* Waits for the loop threads to end (after gw_http_stop, called before or
 * from another thread), closes every connection
 * (ending streams through their free callbacks) and frees h. NULL: no-op. */
void gw_http_free(gw_http *h);

/* ---- the request, for the handler ---------------------------------------------- */

enum { GW_GET = 1, GW_POST = 2, GW_HEAD = 4, GW_PUT = 8, GW_DELETE = 16, GW_OTHER = 1 << 15 };

int gw_req_method(const gw_req *r);
/* The raw request target ("/v1/tables/t/rows/a%2Fb?x=1"), NUL-terminated;
 * valid while r is. */
const char *gw_req_uri(const gw_req *r);
/* A request header (case-insensitive), or NULL. */
const char *gw_req_header(const gw_req *r, const char *name);
/* The body as one contiguous buffer (may be NULL when len is 0), valid
 * until the reply. */
const uint8_t *gw_req_body(gw_req *r, size_t *len);
/* The endpoint name counted in the metrics (a string literal). */
void gw_req_set_endpoint(gw_req *r, const char *endpoint);

/* Answers with status, Content-Type and body (copied).  extra_name/value:
 * one more header (NULL: none). */
void gw_reply(gw_req *r, int status, const char *ctype, const void *body, size_t len, const char *extra_name,
              const char *extra_value);
/* {"error":{"code":code,"message":...}} with status. */
void gw_reply_error(gw_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A streamed (chunked) answer.  produce appends the next part (about
 * GW_STREAM_CHUNK bytes) to out and returns 0 (more to come), 1 (that was
 * the last part) or -1 (stop: what was appended is still sent).  It is
 * called again only once the previous part has been written to the socket,
 * so a slow reader slows the producer instead of filling memory.  To a HEAD
 * request only the headers are sent: produce is never called and done is
 * called (completed) before gw_reply_stream returns.  done is
 * called exactly once when the stream ends, finished or not (client gone,
 * gateway stopping); arg is not used afterwards. */
#define GW_STREAM_CHUNK (64 * 1024)
typedef int (*gw_produce_fn)(void *arg, struct evbuffer *out);
typedef void (*gw_stream_done_fn)(void *arg, bool completed);
void gw_reply_stream(gw_req *r, int status, const char *ctype, gw_produce_fn produce, gw_stream_done_fn done,
                     void *arg);

#endif

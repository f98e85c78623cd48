/* common/rpc.h: the RPC server and client every bigtable-c process uses
 * (bt-lockd, the tablet server, the master and their clients).
 *
 * Both sides speak the framing of common/rpc_codec.h over TCP (the protocol is
 * described byte for byte in docs/protocol.md) and run a libevent 2 loop on a
 * thread of their own, so an idle connection costs a bufferevent and a few
 * hundred bytes, never a thread.
 *
 * Server: handlers are looked up by method number and run on the server's loop
 * thread.  A handler must not block: it either answers at once with
 * rpc_respond() or hands its rpc_ctx to another thread that answers later.
 * Many requests of one connection may be in flight and answered in any order.
 * A malformed frame closes that connection (and is logged); others go on.
 *
 * Client: one TCP connection, used by any number of threads at once.  Requests
 * are pipelined and matched to responses by request id.  A call fails with
 * BT_ETIMEDOUT after its timeout (a later response is dropped), with
 * BT_EUNAVAIL when the connection breaks while it is in flight or cannot be
 * made; the next call after a break reconnects (after a failed connect the
 * client waits out an exponential backoff, failing calls fast meanwhile).
 * Calls are never retried by this layer: only the caller knows whether a
 * method is idempotent.
 *
 * Status codes: a call returns the status the server answered with (BT_OK or a
 * BT_E* code) or a local one (BT_ETIMEDOUT, BT_EUNAVAIL, BT_ETOOBIG,
 * BT_ECLOSED, BT_ENOMEM, BT_EINVAL).  By convention an error response's payload
 * is empty or a human-readable detail text.
 */
#ifndef BT_COMMON_RPC_H
#define BT_COMMON_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/coding.h"
#include "common/rpc_codec.h"

/* ---- server ---------------------------------------------------------------- */

typedef struct rpc_server rpc_server;

/* The right (and duty) to answer one request; see rpc_respond(). */
typedef struct rpc_ctx rpc_ctx;

/* A request as a handler sees it.  Every pointer in it is valid only during
 * the handler call: copy what an asynchronous answer needs. */
typedef struct rpc_request {
    uint64_t id;
    uint16_t method;
    const uint8_t *payload;
    size_t payload_len;
    const char *peer; /* "address:port" of the client, for logs */
} rpc_request;

/* Runs on the server's loop thread; must not block.  It owns ctx and must pass
 * it to rpc_respond() exactly once, now or later, from any thread. */
typedef void (*rpc_handler_fn)(void *arg, const rpc_request *req, rpc_ctx *ctx);

typedef struct rpc_method {
    uint16_t method;   /* see docs/protocol.md for the ranges of each service */
    rpc_handler_fn fn;
    void *arg;         /* passed to fn */
} rpc_method;

/* Zero-initialise and set what differs from the defaults. */
typedef struct rpc_server_opts {
    size_t max_frame;    /* cap on a request frame; 0: RPC_DEFAULT_MAX_FRAME */
    int idle_timeout_ms; /* close connections idle this long; 0: never */
    int max_connections; /* more are accepted and closed at once; 0: 10000 */
    int max_inflight;    /* per connection; reading pauses at it; 0: 4096 */
} rpc_server_opts;

/* Creates a server listening on host:port (host NULL: every address; port 0:
 * an ephemeral port, see rpc_server_port) with a copy of the method table
 * (method numbers must be distinct).  Connections wait in the listen backlog
 * until rpc_server_start.  opts may be NULL.  On success *out is the server,
 * which the caller frees with rpc_server_free().  Returns BT_OK, BT_EINVAL
 * (bad options or table, unresolvable host), BT_EIO (bind/listen failed,
 * detail in bt_errmsg()) or BT_ENOMEM. */
int rpc_server_new(const char *host, uint16_t port, const rpc_method *methods, size_t nmethods,
                   const rpc_server_opts *opts, rpc_server **out);

/* The port the server listens on (the actual one when 0 was asked for). */
uint16_t rpc_server_port(const rpc_server *s);

/* Starts the loop thread.  BT_OK, BT_EFAILED_PRECONDITION (already started or
 * stopped) or BT_EIO (no thread).  Call start/stop/free from one thread. */
int rpc_server_start(rpc_server *s);

/* Stops the loop thread, closes the listener and every connection (their
 * in-flight calls fail with BT_EUNAVAIL on the client side).  Contexts still
 * held by handlers stay valid: answering them frees them and sends nothing.
 * A stopped server cannot be started again; to serve again on the same port
 * create a new server.  Idempotent.  Not from a handler (it waits for the
 * loop thread to end). */
void rpc_server_stop(rpc_server *s);

/* Stops the server if needed and frees it.  Outstanding contexts stay valid
 * (see rpc_server_stop).  NULL is allowed. */
void rpc_server_free(rpc_server *s);

/* Open connections right now (any thread; a snapshot, for tests and stats). */
int rpc_server_connections(const rpc_server *s);

/* Answers the request of ctx with status (BT_OK or a negative BT_E* code; a
 * positive one is sent as BT_EINVAL) and a payload, which is copied.  Frees
 * ctx.  Callable from any thread, at most once per context.  If the frame
 * would exceed the server's cap the client gets BT_ETOOBIG instead, and so does
 * the caller.  Returns BT_OK also when the connection is gone (the answer is
 * dropped: the client has already seen BT_EUNAVAIL). */
int rpc_respond(rpc_ctx *ctx, int status, const void *payload, size_t len);

/* Sends one part of a streamed answer (flag RPC_FLAG_MORE, status 0).  ctx
 * stays owned by the caller, who ends the stream with rpc_respond().  Parts and
 * the final answer of one request are sent in call order when they come from
 * one thread at a time.  BT_OK, BT_ETOOBIG (part not sent) or BT_ENOMEM. */
int rpc_respond_more(rpc_ctx *ctx, const void *payload, size_t len);

/* ---- client ---------------------------------------------------------------- */

typedef struct rpc_client rpc_client;

/* Zero-initialise and set what differs from the defaults. */
typedef struct rpc_client_opts {
    int connect_timeout_ms; /* 0: 2000 */
    int request_timeout_ms; /* default per call; 0: 10000 */
    int backoff_min_ms;     /* first wait after a failed connect; 0: 50 */
    int backoff_max_ms;     /* the wait doubles up to this; 0: 5000 */
    size_t max_frame;       /* cap on a response frame and on requests sent;
                               0: RPC_DEFAULT_MAX_FRAME */
} rpc_client_opts;

/* Creates a client for host:port and starts its loop thread; it connects on
 * the first call.  opts may be NULL.  On success *out is the client, which the
 * caller frees with rpc_client_free().  BT_OK, BT_EINVAL, BT_ENOMEM or BT_EIO. */
int rpc_client_new(const char *host, uint16_t port, const rpc_client_opts *opts,
                   rpc_client **out);

/* Fails every queued and in-flight call with BT_ECLOSED (their callbacks run
 * on the loop thread before this returns), closes the connection and frees c.
 * No rpc_call may be running or start on c, and it must not be called from
 * one of c's callbacks.  NULL is allowed. */
void rpc_client_free(rpc_client *c);

/* Sends a request and waits for its answer.  Thread-safe.  On return resp (if
 * not NULL; cleared first) holds the response payload, or the concatenation of
 * the parts of a streamed answer.  timeout_ms 0 means the client's default.
 * Returns the server's status or a local error (see the top of this file);
 * BT_EFAILED_PRECONDITION if called from a callback on c's loop thread. */
int rpc_call(rpc_client *c, uint16_t method, const void *req, size_t req_len, bt_buf *resp,
             int timeout_ms);

/* Completion of an asynchronous call, run on the client's loop thread (it
 * must not block and must not call rpc_call; rpc_call_async is fine).  It is
 * called with more=true for each part of a streamed answer (status 0), then
 * exactly once with more=false and the final status.  payload (NULL on local
 * errors) is valid only during the call. */
typedef void (*rpc_done_fn)(void *arg, int status, const uint8_t *payload, size_t len, bool more);

/* Queues a request; done(arg, ...) reports its outcome.  The timeout restarts
 * with each streamed part.  Returns BT_OK (done will be called), or BT_ETOOBIG,
 * BT_ECLOSED (client being freed) or BT_ENOMEM, and then done is not called. */
int rpc_call_async(rpc_client *c, uint16_t method, const void *req, size_t req_len, int timeout_ms,
                   rpc_done_fn done, void *arg);

#endif

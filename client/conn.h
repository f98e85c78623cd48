/* client/conn.h: the internal connection layer of every bigtable-c client.
 *
 * A pool maps server addresses ("host:port") to rpc_clients (common/rpc.h),
 * created on first use and kept until the pool is freed or the address is
 * dropped.  Each address gets up to conns_per_server clients, i.e. that many
 * TCP connections and client loop threads, used round-robin; each of them
 * pipelines any number of calls, so a few suffice even for many threads.
 *
 * On top of rpc_call this layer adds the retry policy, which only the caller
 * can choose: a call marked BT_CALL_IDEMPOTENT is retried on BT_EUNAVAIL and
 * BT_ETIMEDOUT (local, or answered so by the server) after a doubling,
 * jittered wait; every other call is made exactly once.  A retry goes to the
 * next client of the address in round-robin order.
 *
 * The clients' own reconnect backoff (rpc_client_opts.backoff_*) is set to
 * half of the pool's retry backoff, so that every retry of a call to a server
 * that went away really tries to connect instead of failing fast inside the
 * client's backoff window.
 *
 * Thread-safety: every function except bt_conn_pool_free and
 * bt_conn_pool_drop may be called from any number of threads at once.  The
 * pool's mutex is held only to find or create an address's clients, never
 * during a call.
 *
 * The public SDK (libbt) is built on this layer; the tablet-server benchmark
 * and the integration tests use it directly.
 */
#ifndef BT_CLIENT_CONN_H
#define BT_CLIENT_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "common/coding.h"
#include "common/rpc.h"

typedef struct bt_conn_pool bt_conn_pool;

/* Zero-initialise and set what differs from the defaults. */
typedef struct bt_conn_pool_opts {
    int conns_per_server;   /* rpc_clients per address, used round-robin; 0 -> 2 */
    int connect_timeout_ms; /* 0 -> 2000 */
    int request_timeout_ms; /* default per attempt; 0 -> 10000 */
    int max_attempts;       /* for idempotent calls, attempts in all; 0 -> 5 */
    int backoff_min_ms;     /* first wait between attempts; 0 -> 20 */
    int backoff_max_ms;     /* cap of the doubling wait (with jitter); 0 -> 1000 */
    size_t max_frame;       /* 0 -> RPC_DEFAULT_MAX_FRAME */
} bt_conn_pool_opts;

/* Creates an empty pool (no connection is made before the first call).  o may
 * be NULL for the defaults.  On success *out is the pool, which the caller
 * frees with bt_conn_pool_free().  Returns BT_OK, BT_EINVAL (a negative value,
 * backoff_max_ms < backoff_min_ms, conns_per_server or max_attempts over
 * 1024, or an invalid max_frame) or BT_ENOMEM. */
int bt_conn_pool_new(const bt_conn_pool_opts *o, bt_conn_pool **out);

/* Frees every client of the pool (see rpc_client_free: asynchronous calls
 * still pending complete with BT_ECLOSED before this returns) and the pool.
 * No call on the pool may be running or start, and it must not be called from
 * a completion callback.  NULL is allowed. */
void bt_conn_pool_free(bt_conn_pool *p);

/* Splits "host:port" into host (a NUL-terminated copy, at most host_cap bytes
 * with the NUL) and port.  host is an IPv4 literal or a hostname (1..255 of
 * letters, digits, '-', '.', '_'); port is 1..65535 in decimal.  IPv6 literals are not
 * supported.  Returns BT_OK, or BT_EINVAL with a detail in bt_errmsg() (and
 * host and *port unspecified).  Thread-safe, no allocation. */
int bt_conn_parse_addr(const char *addr, char *host, size_t host_cap, uint16_t *port);

/* Sets *out to the next client for addr in round-robin order, creating it
 * (and the address's entry) on first use; the connection itself is made by
 * the first call on it.  The client is owned by the pool and stays valid
 * until bt_conn_pool_drop(p, addr) or bt_conn_pool_free(p); never free it.
 * Returns BT_OK, BT_EINVAL (malformed addr, see bt_conn_parse_addr), BT_ENOMEM
 * or BT_EIO (no loop thread for the client).  Thread-safe. */
int bt_conn_get(bt_conn_pool *p, const char *addr, rpc_client **out);

/* Flags of bt_conn_call. */
enum { BT_CALL_IDEMPOTENT = 1 };

/* Calls method on the server at addr with the request [req, req+len) and
 * waits for the answer.  With BT_CALL_IDEMPOTENT in flags an attempt that
 * ends with BT_EUNAVAIL or BT_ETIMEDOUT (local, or the server's answer) is
 * repeated, up to max_attempts attempts in all, after a wait that starts at
 * backoff_min_ms and doubles up to backoff_max_ms (each wait is drawn
 * uniformly from [w/2, w] for the current w); every other status is returned
 * at once.  Without the flag the call is made exactly once.
 * timeout_ms bounds each attempt (0: the pool's request_timeout_ms), not the
 * whole call.  resp, if not NULL, is cleared first and then holds the payload
 * of the last attempt's answer, as in rpc_call (the caller owns it).
 * Returns the server's status or a local error as rpc_call does, BT_EINVAL
 * for a malformed addr or flags, or the error of bt_conn_get.  When retries
 * run out bt_errmsg() says so.  Thread-safe; not from a completion callback
 * of one of the pool's clients (BT_EFAILED_PRECONDITION, see rpc_call). */
int bt_conn_call(bt_conn_pool *p, const char *addr, uint16_t method, const void *req, size_t len,
                 bt_buf *resp, int timeout_ms, int flags);

/* Starts one attempt of method on the next client of addr, exactly like
 * rpc_call_async (never retried): done(arg, ...) runs on that client's loop
 * thread.  timeout_ms 0: the pool's default.  Returns BT_OK (done will be
 * called exactly once with more=false), or an error and then done is not
 * called: that of bt_conn_get or of rpc_call_async.  Thread-safe, also from a
 * completion callback. */
int bt_conn_call_async(bt_conn_pool *p, const char *addr, uint16_t method, const void *req,
                       size_t len, int timeout_ms, rpc_done_fn done, void *arg);

/* Forgets addr: frees its clients (their pending asynchronous calls complete
 * with BT_ECLOSED first) and its entry, e.g. after the server at addr was
 * declared dead or moved.  The next call to addr creates new clients.  Must
 * not race with calls to addr or with use of a client bt_conn_get returned
 * for it, and must not run on one of its clients' loop threads (a completion
 * callback).  An unknown addr is ignored. */
void bt_conn_pool_drop(bt_conn_pool *p, const char *addr);

#endif

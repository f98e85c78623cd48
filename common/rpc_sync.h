/* common/rpc_sync.h: blocking RPC connections owned by one calling thread.
 *
 * rpc_call (common/rpc.h) hands every request to the client's loop thread
 * and sleeps until that thread has the answer: two thread switches per call
 * on top of the network's.  A thread that makes one call at a time and
 * waits for it anyway (an HTTP gateway's worker, say) does better with a
 * connection of its own, written and read with plain blocking system calls
 * on the calling thread.  That is all this is: the same frames
 * (common/rpc_codec.h) over a TCP connection that exactly one thread uses
 * at a time, one request in flight.
 *
 * A connection that the server closed while idle is noticed before the next
 * request is sent (the socket is readable) and made again, so no request is
 * ever sent twice by this layer.  Any failure after the request went out
 * (timeout, connection lost) closes the connection: the next call makes a
 * new one.
 */
#ifndef BT_COMMON_RPC_SYNC_H
#define BT_COMMON_RPC_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "common/coding.h"

typedef struct rpc_sync_conn rpc_sync_conn;

/* A connection to host:port (IPv4 literal or name), made on the first call.
 * BT_OK, BT_EINVAL or BT_ENOMEM. */
int rpc_sync_new(const char *host, uint16_t port, int connect_timeout_ms, rpc_sync_conn **out);
void rpc_sync_free(rpc_sync_conn *c);

/* Sends one request and waits up to timeout_ms for its answer (all parts of
 * a streamed answer, concatenated into resp, cleared first).  Returns the
 * server's status (resp then holds its detail text) or BT_EUNAVAIL (cannot
 * connect, or the connection broke before the request was sent), BT_ECLOSED
 * (the connection broke after it was sent), BT_ETIMEDOUT, BT_ECORRUPT (a
 * malformed answer), BT_ETOOBIG, BT_ENOMEM.  One thread at a time. */
int rpc_sync_call(rpc_sync_conn *c, uint16_t method, const void *req, size_t req_len, bt_buf *resp,
                  int timeout_ms);

#endif

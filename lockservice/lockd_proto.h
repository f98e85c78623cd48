/* lockservice/lockd_proto.h: the bt-lockd wire methods (docs/protocol.md
 * reserves 1-99 for the lock service), shared by the server (lockd_server.c)
 * and its client backend (lock_bt.c) so the two cannot drift apart.
 *
 * Every request starts with the session id as a varint (0 for SESSION_OPEN).
 * A request naming an unknown or expired session is answered BT_ECLOSED.
 * Fields, in order (see docs/protocol.md for varint/bytes/string):
 *
 *   SESSION_OPEN   req: 0, lease_ms                 resp: session, lease_ms
 *   KEEPALIVE      req: session                     resp: lease_ms
 *   SESSION_CLOSE  req: session                     resp: -
 *   CREATE         req: session, path, flags, data  resp: -
 *                  (BT_EFAILED_PRECONDITION under a file or an ephemeral
 *                  directory: an ephemeral directory never has children)
 *   GET            req: session, path               resp: stat, data
 *   SET            req: session, path, data, expected_generation
 *   DELETE         req: session, path, expected_generation
 *   STAT           req: session, path               resp: stat
 *   LIST           req: session, path               resp: count, names...
 *   ACQUIRE        req: session, path, timeout_ms, try (0/1)
 *                  (the server answers within timeout_ms: BT_ETIMEDOUT)
 *   RELEASE        req: session, path
 *   GET_SEQUENCER  req: session, path               resp: sequencer string
 *   CHECK_SEQUENCER req: session, sequencer
 *   WATCH          req: session, watch_id (chosen by the client, unique in
 *                  its session), path, mask
 *   UNWATCH        req: session, watch_id
 *   POLL           req: session, ack, wait_ms
 *                  resp: count, then per event: seq, watch_id, kind, path
 *                  Events carry a per-session sequence number; the server
 *                  keeps every event above the last ack, so a lost answer
 *                  is delivered again by the next poll: exactly once, in
 *                  order, as long as the client acks what it processed.
 *   stat = generation, lock_generation, lock_owner, ephemeral_owner,
 *          is_dir (0/1), size  (all varints)
 *
 * Sequencer text: "<path>:<lock_generation>:<session>" (paths contain no
 * ':'), valid while that session holds the lock under that generation.
 */
#ifndef BT_LOCKSERVICE_LOCKD_PROTO_H
#define BT_LOCKSERVICE_LOCKD_PROTO_H

enum {
    LKD_SESSION_OPEN = 1,
    LKD_KEEPALIVE = 2,
    LKD_SESSION_CLOSE = 3,
    LKD_CREATE = 4,
    LKD_GET = 5,
    LKD_SET = 6,
    LKD_DELETE = 7,
    LKD_STAT = 8,
    LKD_LIST = 9,
    LKD_ACQUIRE = 10,
    LKD_RELEASE = 11,
    LKD_GET_SEQUENCER = 12,
    LKD_CHECK_SEQUENCER = 13,
    LKD_WATCH = 14,
    LKD_UNWATCH = 15,
    LKD_POLL = 16,
};

#define LKD_MIN_LEASE_MS 1000u
#define LKD_MAX_LEASE_MS 60000u
#define LKD_MAX_POLL_WAIT_MS 5000u

#endif

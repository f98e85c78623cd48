/* common/rpc_codec.h: the one codec of the bigtable-c wire protocol.
 *
 * Two layers, both pure functions over memory (no sockets, no threads), so the
 * fuzz target and the unit tests exercise exactly what the RPC layer runs:
 *
 *  - frames (docs/protocol.md, "Framing"): every message on a connection is
 *
 *      fixed32 LE  length of the rest of the frame (15 + payload bytes)
 *      fixed64 LE  request id
 *      u16     LE  method
 *      i32     LE  status: 0 or a BT_E* code; always 0 in requests
 *      u8          flags: bit0 RPC_FLAG_RESPONSE, bit1 RPC_FLAG_MORE
 *      payload
 *
 *    rpc_frame_decode() is incremental: it is handed whatever bytes have
 *    arrived and answers "need more", "here is a frame" or "malformed, because
 *    ...".  It rejects a bad header (oversize, undersize, unknown flags) as soon
 *    as the header bytes are present, before any payload is buffered, so a peer
 *    cannot make us allocate more than the cap.
 *
 *  - messages (docs/protocol.md, "Message encoding"): a payload is a sequence
 *    of positional fields, each a varint, a fixed64 or varint-length-prefixed
 *    bytes.  bt_msg_writer appends them to a bt_buf; bt_msg_reader reads them
 *    back, never past the end of its input, and reports truncation.
 *
 * Both layers keep errors sticky where that makes call sites shorter: a writer
 * or reader that failed once keeps failing with the same code, so a sequence of
 * puts or gets needs one check at the end.
 */
#ifndef BT_COMMON_RPC_CODEC_H
#define BT_COMMON_RPC_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/coding.h"

/* ---- frames ---------------------------------------------------------------- */

#define RPC_LEN_FIELD 4u   /* the leading fixed32 */
#define RPC_HDR_LEN 19u    /* 4 length + 8 id + 2 method + 4 status + 1 flags */
#define RPC_HDR_REST 15u   /* the smallest legal value of the length field */

/* Default cap on a whole frame (header included): 16 MiB of payload. */
#define RPC_DEFAULT_MAX_PAYLOAD ((size_t)16 << 20)
#define RPC_DEFAULT_MAX_FRAME (RPC_DEFAULT_MAX_PAYLOAD + RPC_HDR_LEN)
/* Limits on a configured cap: room for a header, and at most 1 GiB of payload
 * (the length field could express 4 GiB; nothing in the system needs that). */
#define RPC_MIN_MAX_FRAME ((size_t)RPC_HDR_LEN)
#define RPC_MAX_MAX_FRAME (((size_t)1 << 30) + RPC_HDR_LEN)

enum {
    RPC_FLAG_RESPONSE = 0x01, /* set in responses, clear in requests */
    RPC_FLAG_MORE     = 0x02, /* response part; more parts of this id follow */
    RPC_FLAGS_KNOWN   = 0x03, /* any other bit makes the frame malformed */
};

/* rpc_frame_decode() results that are not errors (errors are negative). */
enum {
    RPC_DECODE_FRAME     = 0, /* one whole frame decoded */
    RPC_DECODE_NEED_MORE = 1, /* the bytes so far are a valid prefix */
};

/* One frame.  When decoded, payload points into the decoder's input. */
typedef struct rpc_frame {
    uint64_t id;
    uint16_t method;
    int32_t status;
    uint8_t flags;
    const uint8_t *payload;
    size_t payload_len;
} rpc_frame;

/* The total size on the wire of a frame carrying payload_len bytes. */
static inline size_t rpc_frame_size(size_t payload_len) { return RPC_HDR_LEN + payload_len; }

/* True if max_frame is an acceptable cap (RPC_MIN_MAX_FRAME..RPC_MAX_MAX_FRAME). */
bool rpc_max_frame_valid(size_t max_frame);

/* Checks id-independent header rules for an outgoing frame: known flags only,
 * RPC_FLAG_MORE only in responses with status 0, status 0 in requests, status
 * never positive.  Returns BT_OK or BT_EINVAL (detail in bt_errmsg()). */
int rpc_frame_check(const rpc_frame *f);

/* Writes the 19-byte header of f (its payload_len included) to hdr.
 * Does not validate; see rpc_frame_check(). */
void rpc_frame_put_header(uint8_t hdr[RPC_HDR_LEN], const rpc_frame *f);

/* Appends the whole frame f (header and payload) to out.  Returns BT_OK,
 * BT_EINVAL (rpc_frame_check failed), BT_ETOOBIG (the frame is over max_frame)
 * or BT_ENOMEM.  On error out is unchanged. */
int rpc_frame_encode(bt_buf *out, const rpc_frame *f, size_t max_frame);

/* Decodes the frame at the start of [buf, buf + len).
 *
 *  RPC_DECODE_FRAME      *f is the frame (payload points into buf) and
 *                        *frame_len its size: the next frame starts there.
 *  RPC_DECODE_NEED_MORE  no whole frame yet; *frame_len is the size of the
 *                        whole frame once at least 4 bytes are present (the
 *                        header is already validated once 19 are), else 0.
 *  BT_ETOOBIG            the length field announces a frame over max_frame.
 *  BT_ECORRUPT           malformed header (length below 15, unknown flag bits,
 *                        a status or flag combination the protocol forbids).
 * On an error *why is a fixed text naming the reason (static storage), the
 * connection carrying the bytes can no longer be trusted and must be closed.
 * Never reads outside [buf, buf + len); len may be 0. */
int rpc_frame_decode(const uint8_t *buf, size_t len, size_t max_frame, rpc_frame *f,
                     size_t *frame_len, const char **why);

/* ---- messages -------------------------------------------------------------- */

/* Appends fields to a caller-owned bt_buf.  The first failure (BT_ENOMEM)
 * sticks: later puts do nothing and return it. */
typedef struct bt_msg_writer {
    bt_buf *buf;
    int err;
} bt_msg_writer;

void bt_msg_writer_init(bt_msg_writer *w, bt_buf *buf);
int bt_msg_put_varint(bt_msg_writer *w, uint64_t v);
int bt_msg_put_fixed64(bt_msg_writer *w, uint64_t v);
/* varint length, then the n bytes (p may be NULL when n is 0) */
int bt_msg_put_bytes(bt_msg_writer *w, const void *p, size_t n);
/* a NUL-terminated string as a bytes field, without the terminator */
int bt_msg_put_string(bt_msg_writer *w, const char *s);
static inline int bt_msg_writer_status(const bt_msg_writer *w) { return w->err; }

/* Reads fields from [data, data + len), which the caller keeps alive while
 * pointers returned by bt_msg_get_bytes are in use.  A failed get returns
 * BT_ECORRUPT (truncated or overlong field; detail in bt_errmsg() naming the
 * offset) or BT_ENOMEM, zeroes its outputs and makes every later get fail the
 * same way without reading. */
typedef struct bt_msg_reader {
    const uint8_t *base;
    const uint8_t *p;
    const uint8_t *end;
    int err;
} bt_msg_reader;

void bt_msg_reader_init(bt_msg_reader *r, const void *data, size_t len);
int bt_msg_get_varint(bt_msg_reader *r, uint64_t *v);
/* a varint that must fit in 32 bits (larger values are BT_ECORRUPT) */
int bt_msg_get_varint32(bt_msg_reader *r, uint32_t *v);
int bt_msg_get_fixed64(bt_msg_reader *r, uint64_t *v);
/* A bytes field: *p points into the reader's input (no copy), *n its length. */
int bt_msg_get_bytes(bt_msg_reader *r, const uint8_t **p, size_t *n);
/* A bytes field as a NUL-terminated string in *s, malloc'd: the caller frees
 * it with free().  A field containing a NUL byte is BT_ECORRUPT. */
int bt_msg_get_string(bt_msg_reader *r, char **s);
/* Bytes not read yet; a reader may treat trailing fields it does not know as
 * absent-or-ignored (fields are only ever appended, see docs/protocol.md). */
static inline size_t bt_msg_remaining(const bt_msg_reader *r) { return (size_t)(r->end - r->p); }
static inline int bt_msg_reader_status(const bt_msg_reader *r) { return r->err; }
/* The sticky error, or BT_ECORRUPT if unread bytes remain: for messages whose
 * every field the reader knows. */
int bt_msg_reader_done(bt_msg_reader *r);

#endif

/* common/rpc_codec.c: frame and message coding (see rpc_codec.h and
 * docs/protocol.md).
 *
 * The frame decoder validates the header in the order the bytes arrive: the
 * length field alone decides "too big" and "too small", the flags and status
 * are checked as soon as the 19 header bytes are present.  A malformed header
 * is therefore reported without waiting for (or buffering) its payload.
 */
#include "common/rpc_codec.h"

#include <stdlib.h>
#include <string.h>

#include "common/status.h"

/* ---- frames ---------------------------------------------------------------- */

bool rpc_max_frame_valid(size_t max_frame)
{
    return max_frame >= RPC_MIN_MAX_FRAME && max_frame <= RPC_MAX_MAX_FRAME;
}

/* The reason a (flags, status) pair is illegal, or NULL if it is legal. */
static const char *header_fault(uint8_t flags, int32_t status)
{
    if (flags & ~RPC_FLAGS_KNOWN) return "unknown flag bits";
    bool response = (flags & RPC_FLAG_RESPONSE) != 0;
    if (!response && (flags & RPC_FLAG_MORE)) return "stream flag in a request";
    if (!response && status != 0) return "non-zero status in a request";
    if (status > 0) return "positive status";
    if ((flags & RPC_FLAG_MORE) && status != 0) return "stream part with an error status";
    return NULL;
}

int rpc_frame_check(const rpc_frame *f)
{
    const char *why = header_fault(f->flags, f->status);
    if (why) return bt_err(BT_EINVAL, "rpc frame: %s", why);
    return BT_OK;
}

void rpc_frame_put_header(uint8_t hdr[RPC_HDR_LEN], const rpc_frame *f)
{
    bt_put_fixed32(hdr, (uint32_t)(RPC_HDR_REST + f->payload_len));
    bt_put_fixed64(hdr + 4, f->id);
    hdr[12] = (uint8_t)(f->method & 0xff); /* u16, little-endian like every field */
    hdr[13] = (uint8_t)(f->method >> 8);
    bt_put_fixed32(hdr + 14, (uint32_t)f->status);
    hdr[18] = f->flags;
}

int rpc_frame_encode(bt_buf *out, const rpc_frame *f, size_t max_frame)
{
    int rc = rpc_frame_check(f);
    if (rc) return rc;
    if (f->payload_len > max_frame || rpc_frame_size(f->payload_len) > max_frame)
        return bt_err(BT_ETOOBIG, "rpc frame of %zu payload bytes over the %zu-byte cap",
                      f->payload_len, max_frame);
    if (bt_buf_reserve(out, rpc_frame_size(f->payload_len))) return BT_ENOMEM;
    rpc_frame_put_header(out->data + out->len, f);
    out->len += RPC_HDR_LEN;
    return bt_buf_append(out, f->payload, f->payload_len); /* reserved: cannot fail */
}

/* Validates the length field; on success *frame_len is the whole frame size. */
static int check_length(const uint8_t *buf, size_t max_frame, size_t *frame_len,
                        const char **why)
{
    uint32_t rest = bt_get_fixed32(buf);
    if (rest < RPC_HDR_REST) {
        *why = "length field below the header size";
        return BT_ECORRUPT;
    }
    if ((uint64_t)rest + RPC_LEN_FIELD > (uint64_t)max_frame) {
        *why = "frame over the size cap";
        return BT_ETOOBIG;
    }
    *frame_len = (size_t)rest + RPC_LEN_FIELD;
    return BT_OK;
}

static void read_header(const uint8_t *buf, rpc_frame *f)
{
    f->id = bt_get_fixed64(buf + 4);
    f->method = (uint16_t)(buf[12] | buf[13] << 8);
    f->status = (int32_t)bt_get_fixed32(buf + 14);
    f->flags = buf[18];
}

int rpc_frame_decode(const uint8_t *buf, size_t len, size_t max_frame, rpc_frame *f,
                     size_t *frame_len, const char **why)
{
    *frame_len = 0;
    *why = NULL;
    if (len < RPC_LEN_FIELD) return RPC_DECODE_NEED_MORE;
    size_t total;
    int rc = check_length(buf, max_frame, &total, why);
    if (rc) return rc;
    *frame_len = total;
    if (len < RPC_HDR_LEN) return RPC_DECODE_NEED_MORE;
    read_header(buf, f);
    *why = header_fault(f->flags, f->status);
    if (*why) return BT_ECORRUPT;
    if (len < total) return RPC_DECODE_NEED_MORE;
    f->payload = buf + RPC_HDR_LEN;
    f->payload_len = total - RPC_HDR_LEN;
    return RPC_DECODE_FRAME;
}

/* ---- message writer -------------------------------------------------------- */

void bt_msg_writer_init(bt_msg_writer *w, bt_buf *buf)
{
    w->buf = buf;
    w->err = BT_OK;
}

int bt_msg_put_varint(bt_msg_writer *w, uint64_t v)
{
    if (!w->err) w->err = bt_buf_put_varint64(w->buf, v);
    return w->err;
}

int bt_msg_put_fixed64(bt_msg_writer *w, uint64_t v)
{
    if (!w->err) w->err = bt_buf_put_fixed64(w->buf, v);
    return w->err;
}

int bt_msg_put_bytes(bt_msg_writer *w, const void *p, size_t n)
{
    if (!w->err) w->err = bt_buf_put_lenbytes(w->buf, p, n);
    return w->err;
}

int bt_msg_put_string(bt_msg_writer *w, const char *s)
{
    return bt_msg_put_bytes(w, s, strlen(s));
}

/* ---- message reader -------------------------------------------------------- */

void bt_msg_reader_init(bt_msg_reader *r, const void *data, size_t len)
{
    static const uint8_t empty[1];
    if (!data) { /* an empty payload may come as NULL; NULL + 0 is undefined */
        data = empty;
        len = 0;
    }
    r->base = data;
    r->p = data;
    r->end = r->p + len;
    r->err = BT_OK;
}

/* Marks the reader failed with a truncation at the current offset. */
static int truncated(bt_msg_reader *r, const char *what)
{
    r->err = bt_err(BT_ECORRUPT, "message truncated or malformed: %s at offset %zu of %zu", what,
                    (size_t)(r->p - r->base), (size_t)(r->end - r->base));
    return r->err;
}

int bt_msg_get_varint(bt_msg_reader *r, uint64_t *v)
{
    *v = 0;
    if (r->err) return r->err;
    const uint8_t *q = bt_get_varint64(r->p, r->end, v);
    if (!q) {
        *v = 0;
        return truncated(r, "varint");
    }
    r->p = q;
    return BT_OK;
}

int bt_msg_get_varint32(bt_msg_reader *r, uint32_t *v)
{
    uint64_t x;
    *v = 0;
    int rc = bt_msg_get_varint(r, &x);
    if (rc) return rc;
    if (x > UINT32_MAX) return truncated(r, "32-bit varint out of range");
    *v = (uint32_t)x;
    return BT_OK;
}

int bt_msg_get_fixed64(bt_msg_reader *r, uint64_t *v)
{
    *v = 0;
    if (r->err) return r->err;
    if (r->end - r->p < 8) return truncated(r, "fixed64");
    *v = bt_get_fixed64(r->p);
    r->p += 8;
    return BT_OK;
}

int bt_msg_get_bytes(bt_msg_reader *r, const uint8_t **p, size_t *n)
{
    *p = NULL;
    *n = 0;
    if (r->err) return r->err;
    const uint8_t *q = r->p;
    if (bt_get_lenbytes(&q, r->end, p, n)) {
        *p = NULL;
        *n = 0;
        return truncated(r, "bytes field");
    }
    r->p = q;
    return BT_OK;
}

int bt_msg_get_string(bt_msg_reader *r, char **s)
{
    const uint8_t *p;
    size_t n;
    *s = NULL;
    int rc = bt_msg_get_bytes(r, &p, &n);
    if (rc) return rc;
    if (n && memchr(p, 0, n)) return truncated(r, "NUL byte inside a string field");
    char *copy = malloc(n + 1);
    if (!copy) return r->err = bt_err(BT_ENOMEM, "message string of %zu bytes", n);
    if (n) memcpy(copy, p, n);
    copy[n] = '\0';
    *s = copy;
    return BT_OK;
}

int bt_msg_reader_done(bt_msg_reader *r)
{
    if (r->err) return r->err;
    if (r->p != r->end)
        return bt_err(BT_ECORRUPT, "message has %zu unread bytes at offset %zu",
                      bt_msg_remaining(r), (size_t)(r->p - r->base));
    return BT_OK;
}

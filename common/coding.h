/* common/coding.h: fixed-width and varint integer coding.
 *
 * Fixed-width values are little-endian on disk and on the wire, except the
 * *_be variants, which are big-endian (used where bytewise order must equal
 * numeric order, e.g. inside internal keys).  Varints are LEB128: 7 bits per
 * byte, low group first, high bit set on every byte but the last; a uint32
 * takes at most 5 bytes and a uint64 at most 10.
 *
 * Decoders take [p, limit) and return the pointer past the value, or NULL if
 * the input is truncated or the varint overlong: they never read past limit.
 */
#ifndef BT_COMMON_CODING_H
#define BT_COMMON_CODING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BT_MAX_VARINT32 5
#define BT_MAX_VARINT64 10

/* The host is little-endian (x86-64, aarch64): fixed-width little-endian
 * values are plain unaligned loads and stores, big-endian ones a byte swap. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bigtable-c assumes a little-endian host"
#endif

static inline void bt_put_fixed32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void bt_put_fixed64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static inline uint32_t bt_get_fixed32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t bt_get_fixed64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void bt_put_fixed64_be(uint8_t *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

static inline uint64_t bt_get_fixed64_be(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}

/* Writes v as a varint at p (room for BT_MAX_VARINT64 bytes); returns end. */
static inline uint8_t *bt_put_varint64(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) { *p++ = (uint8_t)(v | 0x80); v >>= 7; }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint8_t *bt_put_varint32(uint8_t *p, uint32_t v)
{
    return bt_put_varint64(p, v);
}

static inline int bt_varint_len(uint64_t v)
{
    int n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}

const uint8_t *bt_get_varint64_slow(const uint8_t *p, const uint8_t *limit, uint64_t *v);

static inline const uint8_t *bt_get_varint64(const uint8_t *p, const uint8_t *limit, uint64_t *v)
{
    if (p < limit && (*p & 0x80) == 0) { *v = *p; return p + 1; }
    return bt_get_varint64_slow(p, limit, v);
}

static inline const uint8_t *bt_get_varint32(const uint8_t *p, const uint8_t *limit, uint32_t *v)
{
    uint64_t x;
    const uint8_t *q = bt_get_varint64(p, limit, &x);
    if (!q || x > UINT32_MAX) return NULL;
    *v = (uint32_t)x;
    return q;
}

/* A growable byte buffer.  Zero-initialise ({0}) before use; bt_buf_free()
 * releases it.  Append functions return BT_OK or BT_ENOMEM. */
typedef struct bt_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} bt_buf;

int bt_buf_reserve(bt_buf *b, size_t extra);
int bt_buf_append(bt_buf *b, const void *p, size_t n);
int bt_buf_put_varint64(bt_buf *b, uint64_t v);
int bt_buf_put_fixed32(bt_buf *b, uint32_t v);
int bt_buf_put_fixed64(bt_buf *b, uint64_t v);
/* varint length followed by the bytes */
int bt_buf_put_lenbytes(bt_buf *b, const void *p, size_t n);
static inline void bt_buf_clear(bt_buf *b) { b->len = 0; }
void bt_buf_free(bt_buf *b);

/* Reads a varint length followed by that many bytes from [*p, limit).
 * On success points *out at the bytes (into the input), sets *n, advances *p
 * past them and returns 0; returns -1 if truncated. */
int bt_get_lenbytes(const uint8_t **p, const uint8_t *limit, const uint8_t **out, size_t *n);

/* ---- base64 (RFC 4648) -------------------------------------------------------
 * Appends the base64 of data[0..n) to out: the standard alphabet with '='
 * padding, or with url the URL alphabet ('-', '_') without padding.
 * BT_OK or BT_ENOMEM. */
int bt_b64_encode(bt_buf *out, const void *data, size_t n, bool url);
/* Decodes s[0..n) (either alphabet, padding optional) into out (cleared
 * first).  0, or -1 if s is not base64 or memory runs out. */
int bt_b64_decode(const char *s, size_t n, bt_buf *out);

#endif

/* tabletserver/ikey.c: see ikey.h for the layout and why it sorts right. */
#include "tabletserver/ikey.h"
#include "common/status.h"

#include <string.h>

/* Pointer to the first zero byte in [q, end), or end.  Eight bytes at a time
 * (the classic "has a zero byte" bit trick) while a whole word fits. */
static inline const uint8_t *find_zero(const uint8_t *q, const uint8_t *end)
{
    while (end - q >= 8) {
        uint64_t w;
        memcpy(&w, q, 8);
        uint64_t z = (w - UINT64_C(0x0101010101010101)) & ~w & UINT64_C(0x8080808080808080);
        if (z) return q + (__builtin_ctzll(z) >> 3); /* little-endian: lowest byte first */
        q += 8;
    }
    while (q < end && *q) q++;
    return q;
}

size_t ts_esc_len(const uint8_t *x, size_t n)
{
    size_t zeros = 0;
    const uint8_t *p = x, *end = x + n;
    while (p < end && (p = memchr(p, 0, (size_t)(end - p))) != NULL) { zeros++; p++; }
    return n + zeros + 2;
}

uint8_t *ts_put_esc(uint8_t *p, const uint8_t *x, size_t n)
{
    const uint8_t *end = x + n;
    while (x < end) {
        const uint8_t *z = memchr(x, 0, (size_t)(end - x));
        size_t run = z ? (size_t)(z - x) : (size_t)(end - x);
        memcpy(p, x, run);
        p += run;
        x += run;
        if (z) { *p++ = 0x00; *p++ = 0xFF; x++; }
    }
    *p++ = 0x00;
    *p++ = 0x01;
    return p;
}

int ts_buf_put_esc(bt_buf *b, const uint8_t *x, size_t n)
{
    size_t need = ts_esc_len(x, n);
    if (bt_buf_reserve(b, need)) return BT_ENOMEM;
    b->len = (size_t)(ts_put_esc(b->data + b->len, x, n) - b->data);
    return BT_OK;
}

size_t ts_unescape(const uint8_t *esc, size_t esc_len, uint8_t *out)
{
    size_t o = 0;
    const uint8_t *p = esc, *end = esc + esc_len - 2; /* drop the terminator */
    if (!memchr(p, 0, (size_t)(end - p))) {   /* the usual case: nothing escaped */
        memcpy(out, p, (size_t)(end - p));
        return (size_t)(end - p);
    }
    while (p < end) {
        const uint8_t *z = find_zero(p, end);
        size_t run = (size_t)(z - p);
        memcpy(out + o, p, run);
        o += run;
        p += run;
        if (z < end) { out[o++] = 0; p += 2; }
    }
    return o;
}

void ts_put_ts(uint8_t *p, int64_t ts)
{
    bt_put_fixed64_be(p, ~((uint64_t)ts ^ (UINT64_C(1) << 63)));
}

int64_t ts_get_ts(const uint8_t *p)
{
    return (int64_t)(~bt_get_fixed64_be(p) ^ (UINT64_C(1) << 63));
}

int ts_ikey_encode(bt_buf *b, const uint8_t *row, size_t row_len,
                   const uint8_t *family, size_t family_len,
                   const uint8_t *qual, size_t qual_len,
                   int64_t ts, uint64_t seq, ts_key_type type)
{
    size_t need = ts_esc_len(row, row_len) + 2 + TS_IKEY_SUFFIX;
    if (type != TS_KT_DELETE_ROW) need += ts_esc_len(family, family_len);
    if (type <= TS_KT_DELETE_COLUMN) need += ts_esc_len(qual, qual_len);
    if (bt_buf_reserve(b, need)) return BT_ENOMEM;
    uint8_t *p = ts_put_esc(b->data + b->len, row, row_len);
    if (type == TS_KT_DELETE_ROW) {
        *p++ = 0; *p++ = 0;
    } else {
        p = ts_put_esc(p, family, family_len);
        if (type == TS_KT_DELETE_FAMILY) { *p++ = 0; *p++ = 0; }
        else p = ts_put_esc(p, qual, qual_len);
    }
    ts_put_ts(p, ts);
    bt_put_fixed64_be(p + 8, ~((seq << 8) | (uint64_t)type));
    b->len = (size_t)(p + TS_IKEY_SUFFIX - b->data);
    return BT_OK;
}

/* Returns the length of the escaped segment starting at p (terminator
 * included), 0 if the segment is the 00 00 marker, or SIZE_MAX if malformed. */
static size_t seg_len(const uint8_t *p, const uint8_t *end)
{
    const uint8_t *q = p;
    for (;;) {
        q = find_zero(q, end);
        if (q + 1 >= end) return SIZE_MAX;
        if (q[1] == 0x01) return (size_t)(q + 2 - p);
        if (q[1] == 0x00) return q == p ? 0 : SIZE_MAX;
        if (q[1] != 0xFF) return SIZE_MAX;
        q += 2;
    }
}

/* Parses the part after a row segment of known length. */
static bool parse_tail(const uint8_t *k, size_t n, size_t row_len, ts_ikey *out)
{
    const uint8_t *end = k + n - TS_IKEY_SUFFIX;
    uint64_t tag = ~bt_get_fixed64_be(end + 8);
    out->ts = ts_get_ts(end);
    out->seq = tag >> 8;
    out->type = (ts_key_type)(tag & 0xff);
    out->family = out->qual = NULL;
    out->family_len = out->qual_len = 0;
    out->row = k;
    out->row_len = row_len;
    const uint8_t *p = k + row_len;
    size_t l = seg_len(p, end);
    if (l == SIZE_MAX) return false;
    if (l == 0) return p + 2 == end && out->type == TS_KT_DELETE_ROW;
    out->family = p;
    out->family_len = l;
    p += l;
    l = seg_len(p, end);
    if (l == SIZE_MAX) return false;
    if (l == 0) return p + 2 == end && out->type == TS_KT_DELETE_FAMILY;
    out->qual = p;
    out->qual_len = l;
    return p + l == end && out->type >= TS_KT_PUT && out->type <= TS_KT_DELETE_COLUMN;
}

bool ts_ikey_parse_in_row(const uint8_t *k, size_t n, size_t row_len, ts_ikey *out)
{
    if (n < TS_IKEY_SUFFIX + 4 || row_len < 2 || row_len > n - TS_IKEY_SUFFIX - 2) return false;
    return parse_tail(k, n, row_len, out);
}

bool ts_ikey_parse(const uint8_t *k, size_t n, ts_ikey *out)
{
    if (n < TS_IKEY_SUFFIX + 4) return false;
    size_t l = seg_len(k, k + n - TS_IKEY_SUFFIX);
    if (l == 0 || l == SIZE_MAX) return false;
    return parse_tail(k, n, l, out);
}

size_t ts_ikey_row_prefix(const uint8_t *k, size_t n)
{
    if (n < TS_IKEY_SUFFIX + 4) return 0;
    size_t l = seg_len(k, k + n - TS_IKEY_SUFFIX);
    return l == SIZE_MAX ? 0 : l;
}

/* common/coding.c: the out-of-line parts of the integer coding and bt_buf. */
#include "common/coding.h"
#include "common/status.h"

#include <stdlib.h>

const uint8_t *bt_get_varint64_slow(const uint8_t *p, const uint8_t *limit, uint64_t *v)
{
    uint64_t result = 0;
    for (unsigned shift = 0; shift <= 63 && p < limit; shift += 7) {
        uint64_t byte = *p++;
        if (shift == 63 && byte > 1) return NULL; /* overflows 64 bits */
        result |= (byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) { *v = result; return p; }
    }
    return NULL;
}

int bt_buf_reserve(bt_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return BT_OK;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d) return BT_ENOMEM;
    b->data = d;
    b->cap = cap;
    return BT_OK;
}

int bt_buf_append(bt_buf *b, const void *p, size_t n)
{
    if (bt_buf_reserve(b, n)) return BT_ENOMEM;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return BT_OK;
}

int bt_buf_put_varint64(bt_buf *b, uint64_t v)
{
    if (bt_buf_reserve(b, BT_MAX_VARINT64)) return BT_ENOMEM;
    b->len = (size_t)(bt_put_varint64(b->data + b->len, v) - b->data);
    return BT_OK;
}

int bt_buf_put_fixed32(bt_buf *b, uint32_t v)
{
    if (bt_buf_reserve(b, 4)) return BT_ENOMEM;
    bt_put_fixed32(b->data + b->len, v);
    b->len += 4;
    return BT_OK;
}

int bt_buf_put_fixed64(bt_buf *b, uint64_t v)
{
    if (bt_buf_reserve(b, 8)) return BT_ENOMEM;
    bt_put_fixed64(b->data + b->len, v);
    b->len += 8;
    return BT_OK;
}

int bt_buf_put_lenbytes(bt_buf *b, const void *p, size_t n)
{
    if (bt_buf_put_varint64(b, n)) return BT_ENOMEM;
    return bt_buf_append(b, p, n);
}

void bt_buf_free(bt_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int bt_get_lenbytes(const uint8_t **p, const uint8_t *limit, const uint8_t **out, size_t *n)
{
    uint64_t len;
    const uint8_t *q = bt_get_varint64(*p, limit, &len);
    if (!q || len > (uint64_t)(limit - q)) return -1;
    *out = q;
    *n = (size_t)len;
    *p = q + len;
    return 0;
}

/* ---- base64 -------------------------------------------------------------------- */

int bt_b64_encode(bt_buf *out, const void *data, size_t n, bool url)
{
    const uint8_t *p = data;
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char web[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *al = url ? web : std;
    if (bt_buf_reserve(out, (n + 2) / 3 * 4 + 1)) return BT_ENOMEM;
    char *o = (char *)out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = al[v >> 18];
        *o++ = al[(v >> 12) & 63];
        *o++ = al[(v >> 6) & 63];
        *o++ = al[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = al[v >> 18];
        *o++ = al[(v >> 12) & 63];
        if (!url) { *o++ = '='; *o++ = '='; }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = al[v >> 18];
        *o++ = al[(v >> 12) & 63];
        *o++ = al[(v >> 6) & 63];
        if (!url) *o++ = '=';
    }
    out->len = (size_t)(o - (char *)out->data);
    return BT_OK;
}

static int b64_val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

int bt_b64_decode(const char *s, size_t n, bt_buf *out)
{
    bt_buf_clear(out);
    while (n > 0 && s[n - 1] == '=') n--;
    if (n % 4 == 1) return -1;
    if (bt_buf_reserve(out, n / 4 * 3 + 3)) return -1;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->data[out->len++] = (uint8_t)(acc >> bits);
        }
    }
    return 0;
}

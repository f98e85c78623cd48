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

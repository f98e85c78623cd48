/* sstable/bloom.c: bloom filter builder and probe (see bloom.h).
 *
 * Double hashing (probe i at h1 + i*h2 mod nbits) gives k well-spread probes
 * from a single XXH3 pass over the item, which matters because a point read
 * probes the filter of every table it might touch.
 */
#include "sstable/bloom.h"

#include "common/status.h"

#include <stdlib.h>
#include <xxhash.h>

#define MIN_FILTER_BYTES 8
#define MAX_K 30

int sst_bloom_k(int bits_per_key)
{
    int k = (int)(bits_per_key * 0.69);
    if (k < 1) k = 1;
    if (k > MAX_K) k = MAX_K;
    return k;
}

void sst_bloom_builder_init(sst_bloom_builder *b, int bits_per_key)
{
    memset(b, 0, sizeof *b);
    b->bits_per_key = bits_per_key;
}

void sst_bloom_builder_free(sst_bloom_builder *b)
{
    free(b->hashes);
    bt_buf_free(&b->last);
    memset(b, 0, sizeof *b);
}

int sst_bloom_builder_add(sst_bloom_builder *b, const uint8_t *p, size_t n)
{
    if (b->have_last && b->last.len == n && (n == 0 || memcmp(b->last.data, p, n) == 0))
        return BT_OK;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        uint64_t *h = realloc(b->hashes, cap * sizeof *h);
        if (!h) return BT_ENOMEM;
        b->hashes = h;
        b->cap = cap;
    }
    b->last.len = 0;
    if (bt_buf_append(&b->last, p, n)) return BT_ENOMEM;
    b->have_last = true;
    b->hashes[b->n++] = XXH3_64bits(p, n);
    return BT_OK;
}

/* Probe i of hash h is bit (h1 + i*h2) mod nbits, h1/h2 the low/high halves.
 * The sum stays below 31 * 2^32, so 64-bit arithmetic never wraps. */
static inline void set_bits(uint8_t *bits, uint64_t nbits, int k, uint64_t h)
{
    uint64_t x = (uint32_t)h, step = h >> 32;
    for (int i = 0; i < k; i++, x += step) {
        uint64_t bit = x % nbits;
        bits[bit >> 3] |= (uint8_t)(1u << (bit & 7));
    }
}

static inline bool test_bits(const uint8_t *bits, uint64_t nbits, int k, uint64_t h)
{
    uint64_t x = (uint32_t)h, step = h >> 32;
    for (int i = 0; i < k; i++, x += step) {
        uint64_t bit = x % nbits;
        if (!(bits[bit >> 3] & (1u << (bit & 7)))) return false;
    }
    return true;
}

int sst_bloom_builder_finish(sst_bloom_builder *b, bt_buf *out)
{
    uint64_t nbits = (uint64_t)b->n * (uint64_t)(b->bits_per_key > 0 ? b->bits_per_key : 1);
    size_t nbytes = (size_t)((nbits + 7) / 8);
    if (nbytes < MIN_FILTER_BYTES) nbytes = MIN_FILTER_BYTES;
    nbits = (uint64_t)nbytes * 8;
    int k = sst_bloom_k(b->bits_per_key);
    if (bt_buf_reserve(out, nbytes + 1)) return BT_ENOMEM;
    uint8_t *bits = out->data + out->len;
    memset(bits, 0, nbytes);
    for (size_t i = 0; i < b->n; i++) set_bits(bits, nbits, k, b->hashes[i]);
    bits[nbytes] = (uint8_t)k;
    out->len += nbytes + 1;
    return BT_OK;
}

int sst_bloom_parse(sst_bloom *f, const uint8_t *data, size_t n)
{
    memset(f, 0, sizeof *f);
    if (n < MIN_FILTER_BYTES + 1)
        return bt_err(BT_ECORRUPT, "filter block of %zu bytes is too short", n);
    int k = data[n - 1];
    if (k < 1 || k > MAX_K)
        return bt_err(BT_ECORRUPT, "filter block: probe count %d outside 1..%d", k, MAX_K);
    f->bits = data;
    f->nbits = (uint64_t)(n - 1) * 8;
    f->k = k;
    return BT_OK;
}

bool sst_bloom_may_contain(const sst_bloom *f, const uint8_t *p, size_t n)
{
    if (!f->bits) return true;
    return test_bits(f->bits, f->nbits, f->k, XXH3_64bits(p, n));
}

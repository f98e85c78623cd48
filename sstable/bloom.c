/* sstable/bloom.c: bloom filter builder and probe (see bloom.h).
 *
 * One XXH3 pass over the item gives all k probes: the high half picks a
 * 64-byte block, double hashing of the low half picks bits inside it.
 */
#include "sstable/bloom.h"

#include "common/status.h"

#include <stdlib.h>
#include <xxhash.h>

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

/* Cache-blocked layout: the bit array is split into 512-bit (64-byte)
 * blocks; an item's k probes all fall in one block, chosen by the hash's high
 * half, and are spread inside it by double hashing the low half.  A probe of
 * a table then costs one cache miss instead of k, which matters because a
 * point read tests the filter of every table that may hold the row.  The
 * price is a slightly higher false-positive rate (about 1.1% instead of 0.8%
 * at 10 bits per key). */
#define BLOCK_BITS 512
#define BLOCK_BYTES (BLOCK_BITS / 8)

static inline const uint8_t *block_of(const uint8_t *bits, uint64_t nblocks, uint64_t h)
{
    return bits + ((h >> 32) * nblocks >> 32) * BLOCK_BYTES;
}

static inline void set_bits(uint8_t *bits, uint64_t nblocks, int k, uint64_t h)
{
    uint8_t *blk = (uint8_t *)block_of(bits, nblocks, h);
    uint32_t x = (uint32_t)h, step = (x >> 17) | (x << 15) | 1;
    for (int i = 0; i < k; i++, x += step) {
        uint32_t bit = x & (BLOCK_BITS - 1);
        blk[bit >> 3] |= (uint8_t)(1u << (bit & 7));
    }
}

static inline bool test_bits(const uint8_t *bits, uint64_t nblocks, int k, uint64_t h)
{
    const uint8_t *blk = block_of(bits, nblocks, h);
    uint32_t x = (uint32_t)h, step = (x >> 17) | (x << 15) | 1;
    for (int i = 0; i < k; i++, x += step) {
        uint32_t bit = x & (BLOCK_BITS - 1);
        if (!(blk[bit >> 3] & (1u << (bit & 7)))) return false;
    }
    return true;
}

int sst_bloom_builder_finish(sst_bloom_builder *b, bt_buf *out)
{
    uint64_t nbits = (uint64_t)b->n * (uint64_t)(b->bits_per_key > 0 ? b->bits_per_key : 1);
    uint64_t nblocks = (nbits + BLOCK_BITS - 1) / BLOCK_BITS;
    if (nblocks == 0) nblocks = 1;
    if (nblocks > UINT32_MAX) nblocks = UINT32_MAX;
    size_t nbytes = (size_t)nblocks * BLOCK_BYTES;
    int k = sst_bloom_k(b->bits_per_key);
    if (bt_buf_reserve(out, nbytes + 1)) return BT_ENOMEM;
    uint8_t *bits = out->data + out->len;
    memset(bits, 0, nbytes);
    for (size_t i = 0; i < b->n; i++) set_bits(bits, nblocks, k, b->hashes[i]);
    bits[nbytes] = (uint8_t)k;
    out->len += nbytes + 1;
    return BT_OK;
}

int sst_bloom_parse(sst_bloom *f, const uint8_t *data, size_t n)
{
    memset(f, 0, sizeof *f);
    if (n < BLOCK_BYTES + 1 || (n - 1) % BLOCK_BYTES != 0)
        return bt_err(BT_ECORRUPT, "filter block of %zu bytes is not k + 64-byte blocks", n);
    int k = data[n - 1];
    if (k < 1 || k > MAX_K)
        return bt_err(BT_ECORRUPT, "filter block: probe count %d outside 1..%d", k, MAX_K);
    f->bits = data;
    f->nblocks = (uint64_t)(n - 1) / BLOCK_BYTES;
    f->k = k;
    return BT_OK;
}

bool sst_bloom_may_contain(const sst_bloom *f, const uint8_t *p, size_t n)
{
    if (!f->bits) return true;
    return test_bits(f->bits, f->nblocks, f->k, XXH3_64bits(p, n));
}

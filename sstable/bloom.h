/* sstable/bloom.h: the per-table bloom filter (docs/formats.md, "Filter block").
 *
 * One filter covers a whole SSTable.  Each added item (a key prefix chosen by
 * sst_options.filter_prefix) is hashed once with XXH3_64bits; the high 32
 * bits choose one 512-bit block, and the k probe positions inside that block
 * come from double hashing the low 32 bits (one cache miss per lookup).
 * The builder keeps only the 64-bit hashes, so memory is 8 bytes per distinct
 * prefix until finish.
 *
 * Block contents: bit array of nblocks x 64 bytes (bit i of a block is byte
 * i/8, mask 1 << i%8) followed by one byte k (1..30).
 */
#ifndef BT_SSTABLE_BLOOM_H
#define BT_SSTABLE_BLOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/coding.h"

typedef struct sst_bloom_builder {
    uint64_t *hashes;
    size_t n, cap;
    bt_buf last;          /* last prefix added, to skip consecutive repeats */
    bool have_last;
    int bits_per_key;
} sst_bloom_builder;

void sst_bloom_builder_init(sst_bloom_builder *b, int bits_per_key);
void sst_bloom_builder_free(sst_bloom_builder *b);

/* Adds an item unless it equals the previous one.  BT_OK or BT_ENOMEM. */
int sst_bloom_builder_add(sst_bloom_builder *b, const uint8_t *p, size_t n);

/* Appends the filter block contents to out.  BT_OK or BT_ENOMEM. */
int sst_bloom_builder_finish(sst_bloom_builder *b, bt_buf *out);

/* Probe count for a bits-per-key setting: 0.69 * bits, clamped to 1..30. */
int sst_bloom_k(int bits_per_key);

typedef struct sst_bloom {
    const uint8_t *bits;  /* borrowed from the block contents */
    uint64_t nblocks;     /* 64-byte blocks */
    int k;
} sst_bloom;

/* Validates the block framing; BT_ECORRUPT (with detail) if impossible. */
int sst_bloom_parse(sst_bloom *f, const uint8_t *data, size_t n);

/* false only if the item was certainly never added. */
bool sst_bloom_may_contain(const sst_bloom *f, const uint8_t *p, size_t n);

#endif

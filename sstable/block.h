/* sstable/block.h: the sorted key/value block shared by data, index and
 * properties blocks (docs/formats.md, "SSTable", "Block contents").
 *
 * A block is a run of prefix-compressed entries
 *     varint32 shared | varint32 non_shared | varint32 value_len
 *     | key bytes [non_shared] | value bytes [value_len]
 * followed by the restart array (fixed32 offsets of entries whose shared is
 * 0, one every restart_interval entries, the first always 0) and a fixed32
 * count of restarts.
 *
 * The reader never trusts the bytes: every length and offset is checked
 * against the block bounds and any inconsistency yields BT_ECORRUPT with a
 * bt_err() detail, never an out-of-bounds read.
 */
#ifndef BT_SSTABLE_BLOCK_H
#define BT_SSTABLE_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/coding.h"
#include "sstable/iter.h"

/* ---- building ------------------------------------------------------------ */
typedef struct sst_block_builder {
    bt_buf buf;          /* entries; the restart array is appended on finish */
    bt_buf restarts;     /* fixed32 offsets, already encoded */
    bt_buf last_key;     /* previous key, for prefix compression */
    int interval;        /* entries between restart points (>= 1) */
    int counter;         /* entries since the last restart point */
    uint64_t entries;
} sst_block_builder;

/* Prepares an empty builder; no allocation until the first add. */
void sst_block_builder_init(sst_block_builder *b, int restart_interval);
void sst_block_builder_free(sst_block_builder *b);
/* Forgets all entries but keeps the buffers for reuse. */
void sst_block_builder_reset(sst_block_builder *b);

/* Appends an entry.  The caller guarantees keys are strictly increasing.
 * BT_OK or BT_ENOMEM. */
int sst_block_builder_add(sst_block_builder *b, const uint8_t *key, size_t kn,
                          const uint8_t *val, size_t vn);

/* Size the block will have once finished. */
size_t sst_block_builder_size(const sst_block_builder *b);

static inline bool sst_block_builder_empty(const sst_block_builder *b) { return b->entries == 0; }

/* Appends the restart array and count; (*data, *n) is the whole block,
 * valid until the next reset or free.  BT_OK or BT_ENOMEM. */
int sst_block_builder_finish(sst_block_builder *b, const uint8_t **data, size_t *n);

/* ---- reading ------------------------------------------------------------- */
typedef struct sst_block {
    const uint8_t *data;
    uint32_t limit;      /* end of the entries = start of the restart array */
    uint32_t nrestarts;
} sst_block;

/* Checks the restart array framing; BT_ECORRUPT if it is impossible.
 * `data` is borrowed and must outlive every iterator over the block. */
int sst_block_parse(sst_block *b, const uint8_t *data, size_t n);

/* An iterator over one block.  It can be embedded (init/reset/free, no
 * allocation besides the reused key buffer) or allocated as an sst_iter. */
typedef struct sst_block_iter {
    sst_iter base;
    sst_block blk;
    uint32_t next;       /* offset of the entry after the current one */
    bool valid;
    int status;
    bt_buf key;          /* current key, rebuilt in place; reused across blocks */
    const uint8_t *val;
    uint32_t vlen;
} sst_block_iter;

/* First use: zeroes the key buffer. */
void sst_block_iter_init(sst_block_iter *it, const sst_block *b);
/* Re-targets an initialised iterator at another block, keeping its buffer. */
void sst_block_iter_reset(sst_block_iter *it, const sst_block *b);
void sst_block_iter_free(sst_block_iter *it);

void sst_block_iter_seek_first(sst_block_iter *it);
void sst_block_iter_seek(sst_block_iter *it, const uint8_t *target, size_t n);
void sst_block_iter_next(sst_block_iter *it);

static inline bool sst_block_iter_valid(const sst_block_iter *it) { return it->valid; }

/* The current key; never NULL, even for an empty key (callers may memcmp). */
static inline const uint8_t *sst_block_iter_key(const sst_block_iter *it, size_t *n)
{
    *n = it->key.len;
    return it->key.data ? it->key.data : (const uint8_t *)"";
}

/* A heap iterator over (data, n), which must outlive it.  A block whose
 * framing is corrupt gives an iterator that is empty with BT_ECORRUPT.
 * NULL on allocation failure. */
sst_iter *sst_block_iter_new(const uint8_t *data, size_t n);

#endif

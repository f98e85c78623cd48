/* sstable/table.h: building and reading SSTables (docs/formats.md, "SSTable").
 *
 * An SSTable is an immutable file of key/value pairs sorted bytewise by key.
 * Keys are opaque to this layer.  The builder writes data blocks (prefix
 * compressed, restart points, optional Snappy, xxHash checksum per block), a
 * bloom filter block, a properties block, an index block and a footer.
 *
 * Ownership: a builder is owned by its creator until finish/abandon frees it.
 * A reader is reference counted: open returns one reference, every iterator
 * takes its own, and the file closes when the last reference goes.
 * Readers are thread-safe; iterators are single-threaded.
 */
#ifndef BT_SSTABLE_TABLE_H
#define BT_SSTABLE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/coding.h"
#include "common/env.h"
#include "sstable/cache.h"
#include "sstable/iter.h"

/* Given a key, returns how many leading bytes of it go into the bloom filter
 * (the row, or row+column, of an engine key).  0 means "do not add". */
typedef size_t (*sst_prefix_fn)(const uint8_t *key, size_t n, void *arg);

typedef struct sst_options {
    size_t block_size;          /* target uncompressed data block size; default 4096 */
    int restart_interval;       /* keys between restart points; default 16 */
    bool compress;              /* Snappy per block when it saves >= 12.5% */
    int bloom_bits_per_key;     /* 0 = no filter; default 10 */
    sst_prefix_fn filter_prefix;/* NULL = whole key */
    void *filter_arg;
} sst_options;

/* Fills *o with the defaults above (compress = true). */
void sst_options_default(sst_options *o);

typedef struct sst_builder sst_builder;

/* Creates `path` (truncating).  Options are copied. */
int sst_builder_new(bt_env *env, const char *path, const sst_options *o, sst_builder **out);

/* Adds a pair. Keys must be strictly increasing, else BT_EINVAL. */
int sst_builder_add(sst_builder *b, const uint8_t *key, size_t kn, const uint8_t *val, size_t vn);

/* Records a named 64-bit property ("max_seq", "num_deletions", ...).
 * Names are at most 63 bytes; setting one twice keeps the last value. */
int sst_builder_set_prop(sst_builder *b, const char *name, uint64_t v);

/* Bytes written so far plus the pending block (an estimate of the file size). */
uint64_t sst_builder_size(const sst_builder *b);
uint64_t sst_builder_entries(const sst_builder *b);

/* Writes the remaining blocks and footer, fsyncs and closes the file, frees b.
 * On success *file_size (if not NULL) is the final size.  On error the file is
 * removed and b is freed all the same. */
int sst_builder_finish(sst_builder *b, uint64_t *file_size);

/* Closes and removes the file, frees b. */
void sst_builder_abandon(sst_builder *b);

/* ---- reading ---------------------------------------------------------------- */
typedef struct sst_reader sst_reader;

typedef struct sst_props {
    uint64_t num_entries;
    uint64_t num_data_blocks;
    uint64_t raw_key_bytes;
    uint64_t raw_value_bytes;
    uint64_t data_bytes;        /* on-disk bytes of data blocks */
    uint64_t file_size;
    const uint8_t *smallest;    /* first key; valid while the reader lives */
    size_t smallest_len;
    const uint8_t *largest;     /* last key */
    size_t largest_len;
} sst_props;

/* Opens and validates the footer, index, filter and properties blocks.
 * `cache` may be NULL (no caching). BT_ECORRUPT on any malformed part. */
int sst_reader_open(bt_env *env, const char *path, sst_cache *cache, sst_reader **out);
/* As sst_reader_open; with in_memory the whole file is read into memory at
 * open and every later read is served from there (no file access, no block
 * cache: the in-memory locality groups of design section 3). */
int sst_reader_open_ex(bt_env *env, const char *path, sst_cache *cache, bool in_memory,
                       sst_reader **out);
void sst_reader_ref(sst_reader *r);
void sst_reader_unref(sst_reader *r);   /* NULL is a no-op */

const sst_props *sst_reader_props(const sst_reader *r);

/* A named property set by the builder; BT_ENOTFOUND if absent. */
int sst_reader_prop(const sst_reader *r, const char *name, uint64_t *v);

/* false only if the bloom filter proves no key has this prefix (as computed
 * by the builder's filter_prefix).  Always true when there is no filter. */
bool sst_reader_may_contain(const sst_reader *r, const uint8_t *prefix, size_t n);

/* A new iterator (holds a reference on r).  fill_cache = false for
 * compactions so one-off reads do not evict hot blocks. NULL on ENOMEM. */
sst_iter *sst_reader_iter(sst_reader *r, bool fill_cache);

/* An iterator that never does I/O: needing a data block that is neither in
 * the block cache nor in memory (an in-memory table) fails it with BT_EBUSY,
 * so a caller on a thread that must not block (the RPC loop) can retry the
 * read on one that may.  NULL on ENOMEM. */
sst_iter *sst_reader_iter_no_io(sst_reader *r);

/* Copies into *out the index key nearest to the middle of the data bytes
 * (a separator, >= the last key of its block).  BT_ENOTFOUND if the table has
 * fewer than two data blocks. */
int sst_reader_mid_key(const sst_reader *r, bt_buf *out);

/* Approximate file offset where `key` would be (for size estimates). */
uint64_t sst_reader_approx_offset(const sst_reader *r, const uint8_t *key, size_t n);

#endif

/* sstable/cache.h: the shared block cache.  A sharded LRU bounded in bytes.
 *
 * Entries are keyed by (file id, block offset).  Each SSTable reader takes a
 * fresh file id from sst_cache_new_id() so blocks of different files never
 * collide.  Values are opaque; the cache calls the entry's deleter when the
 * entry is both evicted (or erased, or the cache freed) and no longer pinned.
 *
 * Thread-safe: every shard has its own mutex protecting its hash table and
 * LRU list; the usage counters are per shard.
 */
#ifndef BT_SSTABLE_CACHE_H
#define BT_SSTABLE_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sst_cache sst_cache;
typedef struct sst_cache_handle sst_cache_handle;

/* capacity in bytes (sum of charges); 16 shards.  NULL on allocation failure. */
sst_cache *sst_cache_new(size_t capacity);
/* Frees every entry. All handles must have been released. NULL is a no-op. */
void sst_cache_free(sst_cache *c);

/* A process-unique id for cache keys (never 0). */
uint64_t sst_cache_new_id(sst_cache *c);

/* Returns a pinned handle or NULL.  Release with sst_cache_release(). */
sst_cache_handle *sst_cache_lookup(sst_cache *c, uint64_t id, uint64_t off);

/* Inserts (replacing an existing entry with the same key) and returns a pinned
 * handle to the new entry.  `charge` counts against capacity.  The cache owns
 * `value` from now on and calls deleter(value) when it is dropped.
 * NULL only on allocation failure, in which case deleter(value) was called. */
sst_cache_handle *sst_cache_insert(sst_cache *c, uint64_t id, uint64_t off, void *value,
                                   size_t charge, void (*deleter)(void *value));

/* The value of a pinned handle; valid until the handle is released. */
void *sst_cache_value(sst_cache_handle *h);

void sst_cache_release(sst_cache *c, sst_cache_handle *h);

/* Drops every unpinned entry of file `id` (pinned ones go when released). */
void sst_cache_erase_id(sst_cache *c, uint64_t id);

/* Sum of charges of the entries currently held. */
size_t sst_cache_usage(sst_cache *c);
size_t sst_cache_capacity(sst_cache *c);

#endif

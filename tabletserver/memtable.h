/* tabletserver/memtable.h: the in-memory write buffer of a tablet.
 *
 * An ordered map of byte-string keys (engine internal keys, tabletserver/
 * ikey.h, compared with memcmp) to values, stored in a skiplist whose nodes
 * and bytes live in an arena (freed all at once with the memtable).
 *
 * Concurrency: one writer at a time (the caller serialises inserts, e.g. with
 * a mutex); any number of readers concurrently with that writer and with each
 * other, without locks: a node is fully built before it is published with a
 * release store, and readers follow links with acquire loads.
 *
 * Lifetime: reference counted.  ts_memtable_new returns one reference;
 * every iterator holds its own, so a memtable outlives a flush while scans
 * still read it.
 */
#ifndef BT_TS_MEMTABLE_H
#define BT_TS_MEMTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sstable/iter.h"

typedef struct ts_memtable ts_memtable;

/* NULL on allocation failure. */
ts_memtable *ts_memtable_new(void);
void ts_memtable_ref(ts_memtable *m);
void ts_memtable_unref(ts_memtable *m);   /* frees at zero; NULL is a no-op */

/* Inserts a copy of (key, value).  Keys are unique (internal keys carry a
 * sequence number); inserting an existing key is a caller bug and returns
 * BT_EEXIST without changing anything.  BT_ENOMEM if the arena cannot grow.
 * Single writer (see above). */
int ts_memtable_add(ts_memtable *m, const uint8_t *key, size_t kn, const uint8_t *val, size_t vn);

/* Approximate bytes of data held (arena blocks + overhead, not counting the
 * fixed 128 KiB hint filter). Safe from any thread. */
size_t ts_memtable_bytes(const ts_memtable *m);
/* Number of entries. Safe from any thread. */
uint64_t ts_memtable_count(const ts_memtable *m);

/* A hint filter over caller-chosen 64-bit hashes (the tablet notes the
 * hash of each row it writes): may_contain_hash is false only if the hash was
 * never noted, so a point read can skip the skiplist search.  note_hash is
 * for the single writer; may_contain_hash is safe from any thread (a reader
 * sees the hashes noted before its snapshot of the memtable). */
void ts_memtable_note_hash(ts_memtable *m, uint64_t h);
bool ts_memtable_may_contain_hash(const ts_memtable *m, uint64_t h);

/* An iterator over the entries (sst_iter, forward only). It holds a
 * reference on m.  It sees entries inserted before its creation and may see
 * later ones.  NULL on allocation failure. */
sst_iter *ts_memtable_iter(ts_memtable *m);

#endif

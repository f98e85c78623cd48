/* sstable/iter.h: the iterator interface every sorted source implements
 * (SSTable block, whole SSTable, memtable, merging iterator, tablet scans).
 *
 * Keys are byte strings ordered by memcmp (shorter prefix first).  All
 * engine keys are encoded so that this bytewise order is the logical order
 * (see tabletserver/ikey.h), so there is no comparator parameter.
 *
 * key()/value() point into memory owned by the iterator and stay valid until
 * the next call that moves or destroys it.  When valid() turns false, status()
 * tells whether the end was reached (BT_OK) or an error happened.
 * An iterator is used by one thread at a time.
 */
#ifndef BT_SSTABLE_ITER_H
#define BT_SSTABLE_ITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct sst_iter sst_iter;

struct sst_iter_ops {
    bool (*valid)(sst_iter *it);
    void (*seek_first)(sst_iter *it);
    /* Positions at the first key >= target. */
    void (*seek)(sst_iter *it, const uint8_t *target, size_t n);
    void (*next)(sst_iter *it);   /* requires valid() */
    const uint8_t *(*key)(sst_iter *it, size_t *n);
    const uint8_t *(*value)(sst_iter *it, size_t *n);
    int (*status)(sst_iter *it);
    void (*destroy)(sst_iter *it);
};

struct sst_iter { const struct sst_iter_ops *ops; };

static inline bool sst_iter_valid(sst_iter *it) { return it->ops->valid(it); }
static inline void sst_iter_seek_first(sst_iter *it) { it->ops->seek_first(it); }
static inline void sst_iter_seek(sst_iter *it, const uint8_t *k, size_t n) { it->ops->seek(it, k, n); }
static inline void sst_iter_next(sst_iter *it) { it->ops->next(it); }
static inline const uint8_t *sst_iter_key(sst_iter *it, size_t *n) { return it->ops->key(it, n); }
static inline const uint8_t *sst_iter_value(sst_iter *it, size_t *n) { return it->ops->value(it, n); }
static inline int sst_iter_status(sst_iter *it) { return it->ops->status(it); }
static inline void sst_iter_destroy(sst_iter *it) { if (it) it->ops->destroy(it); }

/* Compares two keys bytewise (memcmp, then length). */
static inline int sst_key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    if (c) return c;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

/* An iterator that is always empty with the given status (BT_OK or an error).
 * Caller destroys it. NULL only on allocation failure. */
sst_iter *sst_iter_new_empty(int status);

/* Merging iterator over n children (takes ownership of them; the array is
 * copied).  Yields the union in key order; equal keys from several children
 * all appear, the child with the lower index first.  status() is the first
 * error of any child. */
sst_iter *sst_iter_new_merging(sst_iter **children, int n);

#endif

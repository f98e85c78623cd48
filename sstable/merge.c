/* sstable/merge.c: the empty iterator and the merging iterator (see iter.h).
 *
 * The merging iterator keeps a binary min-heap of its valid children ordered
 * by (current key bytewise, child index); the top is the current entry.  The
 * index tie-break makes equal keys come out lower child first, which callers
 * rely on to let newer sources (lower index) shadow older ones.
 *
 * Each heap node caches its child's current key so that sifting compares
 * memory directly instead of making two indirect calls per comparison.  The
 * cached pointers stay valid because only the top child ever moves between
 * repositionings, and its node is refreshed right after it does.
 *
 * Errors: once any child goes invalid with a non-OK status the merge stops
 * (valid() is false) rather than continuing over the remaining children,
 * because a merge with a source missing would silently hide or resurrect
 * data.  A later seek starts afresh.
 *
 * Iterators are single-threaded, so there is no locking here.
 */
#include "sstable/iter.h"

#include <stdlib.h>

#include "common/status.h"

/* ---- empty iterator --------------------------------------------------------- */

typedef struct empty_iter {
    sst_iter base;
    int status;
} empty_iter;

static bool empty_valid(sst_iter *it) { (void)it; return false; }
static void empty_seek_first(sst_iter *it) { (void)it; }
static void empty_seek(sst_iter *it, const uint8_t *t, size_t n) { (void)it; (void)t; (void)n; }
static void empty_next(sst_iter *it) { (void)it; }

static const uint8_t *empty_bytes(sst_iter *it, size_t *n)
{
    (void)it;
    *n = 0;
    return NULL;
}

static int empty_status(sst_iter *it) { return ((empty_iter *)it)->status; }
static void empty_destroy(sst_iter *it) { free(it); }

static const struct sst_iter_ops empty_ops = {
    .valid = empty_valid,
    .seek_first = empty_seek_first,
    .seek = empty_seek,
    .next = empty_next,
    .key = empty_bytes,
    .value = empty_bytes,
    .status = empty_status,
    .destroy = empty_destroy,
};

sst_iter *sst_iter_new_empty(int status)
{
    empty_iter *e = malloc(sizeof *e);
    if (!e) return NULL;
    e->base.ops = &empty_ops;
    e->status = status;
    return &e->base;
}

/* ---- merging iterator ------------------------------------------------------- */

typedef struct heap_node {
    const uint8_t *key;
    size_t kn;
    sst_iter *it;
    int idx;
} heap_node;

typedef struct merging_iter {
    sst_iter base;
    int n;
    int hn;              /* nodes in heap */
    int err;             /* first child error seen since the last seek */
    sst_iter **children; /* in caller's order, for status() and destroy */
    heap_node *heap;
} merging_iter;

static inline bool node_less(const heap_node *a, const heap_node *b)
{
    int c = sst_key_cmp(a->key, a->kn, b->key, b->kn);
    return c < 0 || (c == 0 && a->idx < b->idx);
}

static void sift_down(merging_iter *m, int i)
{
    heap_node *h = m->heap;
    heap_node x = h[i];
    for (;;) {
        int l = 2 * i + 1;
        if (l >= m->hn) break;
        int r = l + 1;
        int s = (r < m->hn && node_less(&h[r], &h[l])) ? r : l;
        if (!node_less(&h[s], &x)) break;
        h[i] = h[s];
        i = s;
    }
    h[i] = x;
}

/* Records why an exhausted child stopped, keeping the first error. */
static void note_exhausted(merging_iter *m, sst_iter *child)
{
    int st = sst_iter_status(child);
    if (st != BT_OK && m->err == BT_OK) m->err = st;
}

/* Rebuilds the heap after every child has been repositioned. */
static void rebuild(merging_iter *m)
{
    m->err = BT_OK;
    m->hn = 0;
    for (int i = 0; i < m->n; i++) {
        sst_iter *c = m->children[i];
        if (!sst_iter_valid(c)) {
            note_exhausted(m, c);
            continue;
        }
        heap_node *nd = &m->heap[m->hn++];
        nd->it = c;
        nd->idx = i;
        nd->key = sst_iter_key(c, &nd->kn);
    }
    for (int i = m->hn / 2 - 1; i >= 0; i--) sift_down(m, i);
}

static bool merging_valid(sst_iter *it)
{
    merging_iter *m = (merging_iter *)it;
    return m->hn > 0 && m->err == BT_OK;
}

static void merging_seek_first(sst_iter *it)
{
    merging_iter *m = (merging_iter *)it;
    for (int i = 0; i < m->n; i++) sst_iter_seek_first(m->children[i]);
    rebuild(m);
}

static void merging_seek(sst_iter *it, const uint8_t *target, size_t n)
{
    merging_iter *m = (merging_iter *)it;
    for (int i = 0; i < m->n; i++) sst_iter_seek(m->children[i], target, n);
    rebuild(m);
}

static void merging_next(sst_iter *it)
{
    merging_iter *m = (merging_iter *)it;
    heap_node *top = &m->heap[0];
    sst_iter_next(top->it);
    if (sst_iter_valid(top->it)) {
        top->key = sst_iter_key(top->it, &top->kn);
    } else {
        note_exhausted(m, top->it);
        m->heap[0] = m->heap[--m->hn];
    }
    if (m->hn > 1) sift_down(m, 0);
}

static const uint8_t *merging_key(sst_iter *it, size_t *n)
{
    merging_iter *m = (merging_iter *)it;
    *n = m->heap[0].kn;
    return m->heap[0].key;
}

static const uint8_t *merging_value(sst_iter *it, size_t *n)
{
    merging_iter *m = (merging_iter *)it;
    return sst_iter_value(m->heap[0].it, n);
}

/* The first error by child index; an error noted when a child ran out is
 * reported even if that child no longer claims it. */
static int merging_status(sst_iter *it)
{
    merging_iter *m = (merging_iter *)it;
    for (int i = 0; i < m->n; i++) {
        int st = sst_iter_status(m->children[i]);
        if (st != BT_OK) return st;
    }
    return m->err;
}

static void merging_destroy(sst_iter *it)
{
    merging_iter *m = (merging_iter *)it;
    for (int i = 0; i < m->n; i++) sst_iter_destroy(m->children[i]);
    free(m);
}

static const struct sst_iter_ops merging_ops = {
    .valid = merging_valid,
    .seek_first = merging_seek_first,
    .seek = merging_seek,
    .next = merging_next,
    .key = merging_key,
    .value = merging_value,
    .status = merging_status,
    .destroy = merging_destroy,
};

/* Ownership passes on the call, so on allocation failure the children are
 * destroyed here: the caller must not touch them whatever the outcome. */
sst_iter *sst_iter_new_merging(sst_iter **children, int n)
{
    if (n <= 0) return sst_iter_new_empty(BT_OK);
    if (n == 1) return children[0]; /* nothing to merge: no extra indirection */

    size_t sz = sizeof(merging_iter) + (size_t)n * (sizeof(sst_iter *) + sizeof(heap_node));
    merging_iter *m = malloc(sz);
    if (!m) {
        for (int i = 0; i < n; i++) sst_iter_destroy(children[i]);
        return NULL;
    }
    m->base.ops = &merging_ops;
    m->n = n;
    m->hn = 0;
    m->err = BT_OK;
    /* heap_node first: its alignment is at least that of a pointer. */
    m->heap = (heap_node *)(m + 1);
    m->children = (sst_iter **)(m->heap + n);
    memcpy(m->children, children, (size_t)n * sizeof *children);
    return &m->base;
}

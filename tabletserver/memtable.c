/* tabletserver/memtable.c: the memtable as a skiplist in an arena.
 *
 * Memory ordering.  One writer (callers serialise ts_memtable_add) and any
 * number of lock-free readers.
 *  - A node is written completely (entry bytes and its own links) before it
 *    becomes reachable, and it becomes reachable only through a
 *    memory_order_release store into a predecessor's link.  Readers load
 *    links with memory_order_acquire, so a reader that sees a node also sees
 *    its bytes and the links stored before that publication.  Entry bytes are
 *    never modified after publication, so readers read them without atomics.
 *  - Links are published bottom-up.  A reader may meet a node at a lower level
 *    before it is linked higher up, which only makes its search slower; every
 *    level is a sorted sublist of level 0 at every instant.
 *  - The new node's own links are stored relaxed: nobody can reach the node
 *    yet, and the release store that publishes it orders them.
 *  - The writer loads links relaxed: it is the only thread that stores them,
 *    so it always reads its own latest values.
 *  - max_height is relaxed on both sides: it orders no data.  A reader that
 *    sees a new height before the head links at that level reads NULL there
 *    (head links start NULL) and descends; one that sees an old height starts
 *    lower, which is only slower.
 *  - count and the arena counters are statistics, relaxed; the refcount is the
 *    usual increment-relaxed / decrement-release + acquire-fence-at-zero.
 *
 * Layout.  One aligned arena allocation per entry:
 *     [link h-1] ... [link 1] [link 0] [varint kn][key][varint vn][value]
 * A node pointer points at the entry bytes, so level 0 and the key share a
 * cache line, and no height field is needed to find the entry.
 *
 * Splice.  The writer keeps the exact (prev, next) pair at every level around
 * its last insert.  A key that falls between prev[0] and next[0] (sequential
 * inserts) reuses it without any search: the pairs are nested, so fitting at
 * level 0 implies fitting at every level.  Otherwise one top-down search
 * recomputes the whole splice, which also answers the duplicate question.
 */
#include "tabletserver/memtable.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/coding.h"
#include "common/status.h"
#include "tabletserver/arena.h"

#define MAX_HEIGHT 12
#define BRANCH_BITS 2 /* branching factor 4: a level is kept with probability 1/4 */

/* The hint filter: 2^20 bits (128 KiB) in 512-bit blocks, 6 probes per
 * hash inside one block.  Sized for a 16-64 MiB memtable of small rows
 * (~1% false positives at 100k rows). */
#define HINT_WORDS (1u << 14)
#define HINT_BLOCKS (HINT_WORDS / 8)
#define HINT_PROBES 6

typedef struct mt_node mt_node; /* never defined: points at the entry bytes */
typedef _Atomic(mt_node *) mt_link;

struct ts_memtable {
    /* Read by every thread. */
    mt_node *head;
    _Atomic int max_height;
    atomic_uint refs;
    _Atomic uint64_t count;
    /* Writer only. */
    uint64_t rng;
    mt_node *splice_prev[MAX_HEIGHT];
    mt_node *splice_next[MAX_HEIGHT];
    ts_arena arena;
    /* Hint filter (see ts_memtable_note_hash): written by the writer, read
     * by anyone, word by word with relaxed atomics; a reader's snapshot
     * (taken under the tablet mutex) orders it after the writes it covers. */
    _Atomic uint64_t hint[HINT_WORDS];
};

/* ---- nodes ---- */

static inline mt_link *link_at(mt_node *n, int level)
{
    return (mt_link *)(void *)n - 1 - level;
}

static inline const uint8_t *get_len(const uint8_t *p, size_t *n)
{
    uint64_t v;
    p = bt_get_varint64(p, p + BT_MAX_VARINT64, &v); /* written by us: well formed */
    *n = (size_t)v;
    return p;
}

static inline const uint8_t *node_key(const mt_node *n, size_t *kn)
{
    return get_len((const uint8_t *)n, kn);
}

static inline const uint8_t *node_value(const mt_node *n, size_t *vn)
{
    size_t kn;
    const uint8_t *k = node_key(n, &kn);
    return get_len(k + kn, vn);
}

/* sign of key - node's key */
static inline int cmp_node(const uint8_t *key, size_t kn, const mt_node *n)
{
    size_t nk;
    const uint8_t *k = node_key(n, &nk);
    return sst_key_cmp(key, kn, k, nk);
}

/* One arena allocation holding links and entry; links are left unset. */
static mt_node *new_node(ts_arena *a, int height, const uint8_t *key, size_t kn,
                         const uint8_t *val, size_t vn)
{
    if (kn > SIZE_MAX / 4 || vn > SIZE_MAX / 4) return NULL;
    size_t links = (size_t)height * sizeof(mt_link);
    size_t entry = (size_t)bt_varint_len(kn) + kn + (size_t)bt_varint_len(vn) + vn;
    uint8_t *p = ts_arena_alloc_aligned(a, links + entry);
    if (!p) return NULL;
    uint8_t *e = bt_put_varint64(p + links, kn);
    if (kn) memcpy(e, key, kn); /* memcpy(_, NULL, 0) is undefined */
    e = bt_put_varint64(e + kn, vn);
    if (vn) memcpy(e, val, vn);
    return (mt_node *)(void *)(p + links);
}

/* splitmix64: fast, and private to the memtable so that no global PRNG state
 * is shared between threads or tablets. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int random_height(ts_memtable *m)
{
    uint64_t r = next_random(&m->rng);
    int h = 1;
    while (h < MAX_HEIGHT && (r & ((1u << BRANCH_BITS) - 1)) == 0) {
        h++;
        r >>= BRANCH_BITS;
    }
    return h;
}

/* ---- lifetime ---- */

static void reset_splice(ts_memtable *m)
{
    for (int i = 0; i < MAX_HEIGHT; i++) {
        m->splice_prev[i] = m->head;
        m->splice_next[i] = NULL;
    }
}

ts_memtable *ts_memtable_new(void)
{
    ts_memtable *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    ts_arena_init(&m->arena);
    m->head = new_node(&m->arena, MAX_HEIGHT, NULL, 0, NULL, 0);
    if (!m->head) {
        free(m);
        return NULL;
    }
    for (int i = 0; i < MAX_HEIGHT; i++) atomic_init(link_at(m->head, i), NULL);
    atomic_init(&m->max_height, 1);
    atomic_init(&m->refs, 1);
    atomic_init(&m->count, 0);
    for (unsigned i = 0; i < HINT_WORDS; i++) atomic_init(&m->hint[i], 0);
    m->rng = 0x2545f4914f6cdd1du; /* fixed seed: reproducible shapes */
    reset_splice(m);
    return m;
}

/* Probe j of hash h: bit (x + j*step) & 511 of block (h >> 32) % blocks. */
static inline _Atomic uint64_t *hint_block(ts_memtable *m, uint64_t h)
{
    return &m->hint[(((h >> 32) * HINT_BLOCKS) >> 32) * 8];
}

void ts_memtable_note_hash(ts_memtable *m, uint64_t h)
{
    _Atomic uint64_t *blk = hint_block(m, h);
    uint32_t x = (uint32_t)h, step = (x >> 17) | (x << 15) | 1;
    for (int j = 0; j < HINT_PROBES; j++, x += step) {
        uint32_t bit = x & 511;
        uint64_t w = atomic_load_explicit(&blk[bit >> 6], memory_order_relaxed);
        atomic_store_explicit(&blk[bit >> 6], w | (UINT64_C(1) << (bit & 63)), memory_order_relaxed);
    }
}

bool ts_memtable_may_contain_hash(const ts_memtable *m, uint64_t h)
{
    _Atomic uint64_t *blk = hint_block((ts_memtable *)m, h);
    uint32_t x = (uint32_t)h, step = (x >> 17) | (x << 15) | 1;
    for (int j = 0; j < HINT_PROBES; j++, x += step) {
        uint32_t bit = x & 511;
        if (!(atomic_load_explicit(&blk[bit >> 6], memory_order_relaxed) & (UINT64_C(1) << (bit & 63))))
            return false;
    }
    return true;
}

void ts_memtable_ref(ts_memtable *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void ts_memtable_unref(ts_memtable *m)
{
    if (!m) return;
    /* acq_rel: every other holder's last use happens before this free (an
     * acquire fence would do, but ThreadSanitizer does not model fences). */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
    ts_arena_destroy(&m->arena);
    free(m);
}

/* ---- insert (writer) ---- */

/* Whether the cached splice brackets key at level 0 (prev < key <= next);
 * if so, *dup tells whether key equals next. */
static bool splice_fits(const ts_memtable *m, const uint8_t *key, size_t kn, bool *dup)
{
    mt_node *prev = m->splice_prev[0], *next = m->splice_next[0];
    if (prev != m->head && cmp_node(key, kn, prev) <= 0) return false;
    if (!next) {
        *dup = false;
        return true;
    }
    int c = cmp_node(key, kn, next);
    if (c > 0) return false;
    *dup = (c == 0);
    return true;
}

/* Recomputes the splice for key with one top-down search; returns whether
 * key is already present.  A node found >= key at one level is often the
 * next node one level down too: it is not compared again. */
static bool find_splice(ts_memtable *m, const uint8_t *key, size_t kn)
{
    mt_node *x = m->head, *last_bigger = NULL;
    bool last_equal = false;
    int level = atomic_load_explicit(&m->max_height, memory_order_relaxed) - 1;
    for (;;) {
        mt_node *next = atomic_load_explicit(link_at(x, level), memory_order_relaxed);
        if (next && next != last_bigger) {
            int c = cmp_node(key, kn, next);
            if (c > 0) {
                x = next;
                continue;
            }
            last_bigger = next;
            last_equal = (c == 0);
        }
        m->splice_prev[level] = x;
        m->splice_next[level] = next;
        if (level == 0) return next && last_equal; /* a non-NULL next is last_bigger */
        level--;
    }
}

/* Links x at levels [0, h) into the splice, bottom-up, and moves the splice
 * to just after x (still exact: x sits between prev and next). */
static void link_node(ts_memtable *m, mt_node *x, int h)
{
    for (int i = 0; i < h; i++) {
        atomic_store_explicit(link_at(x, i), m->splice_next[i], memory_order_relaxed);
        atomic_store_explicit(link_at(m->splice_prev[i], i), x, memory_order_release);
        m->splice_prev[i] = x;
    }
}

int ts_memtable_add(ts_memtable *m, const uint8_t *key, size_t kn, const uint8_t *val, size_t vn)
{
    bool dup;
    if (!splice_fits(m, key, kn, &dup)) dup = find_splice(m, key, kn);
    if (dup) return BT_EEXIST;
    int h = random_height(m);
    mt_node *x = new_node(&m->arena, h, key, kn, val, vn);
    if (!x) return BT_ENOMEM;
    /* Splice levels at or above max_height are (head, NULL) already. */
    if (h > atomic_load_explicit(&m->max_height, memory_order_relaxed))
        atomic_store_explicit(&m->max_height, h, memory_order_relaxed);
    link_node(m, x, h);
    uint64_t c = atomic_load_explicit(&m->count, memory_order_relaxed);
    atomic_store_explicit(&m->count, c + 1, memory_order_relaxed);
    return BT_OK;
}

size_t ts_memtable_bytes(const ts_memtable *m)
{
    /* Nodes, links and entries all live in the arena.  The fixed 128 KiB
     * hint filter is left out: this figure drives the flush threshold, which
     * is about data. */
    return ts_arena_used(&m->arena) + sizeof(*m) - sizeof(m->hint);
}

uint64_t ts_memtable_count(const ts_memtable *m)
{
    return atomic_load_explicit(&m->count, memory_order_relaxed);
}

/* ---- iterator (readers) ---- */

/* First node with key >= target, or NULL.  Same no-recompare trick as
 * find_splice; a node's key never changes, so it is valid for readers too. */
static mt_node *find_ge(ts_memtable *m, const uint8_t *key, size_t kn)
{
    mt_node *x = m->head, *last_bigger = NULL;
    int level = atomic_load_explicit(&m->max_height, memory_order_relaxed) - 1;
    for (;;) {
        mt_node *next = atomic_load_explicit(link_at(x, level), memory_order_acquire);
        if (next && next != last_bigger && cmp_node(key, kn, next) > 0) {
            x = next;
            continue;
        }
        if (level == 0) return next;
        last_bigger = next;
        level--;
    }
}

typedef struct mt_iter {
    sst_iter base;
    ts_memtable *m;
    mt_node *cur; /* NULL: not valid */
} mt_iter;

static bool it_valid(sst_iter *it)
{
    return ((mt_iter *)it)->cur != NULL;
}

static void it_seek_first(sst_iter *it)
{
    mt_iter *mi = (mt_iter *)it;
    mi->cur = atomic_load_explicit(link_at(mi->m->head, 0), memory_order_acquire);
}

static void it_seek(sst_iter *it, const uint8_t *target, size_t n)
{
    mt_iter *mi = (mt_iter *)it;
    mi->cur = find_ge(mi->m, target, n);
}

static void it_next(sst_iter *it)
{
    mt_iter *mi = (mt_iter *)it;
    mi->cur = atomic_load_explicit(link_at(mi->cur, 0), memory_order_acquire);
}

static const uint8_t *it_key(sst_iter *it, size_t *n)
{
    return node_key(((mt_iter *)it)->cur, n);
}

static const uint8_t *it_value(sst_iter *it, size_t *n)
{
    return node_value(((mt_iter *)it)->cur, n);
}

static int it_status(sst_iter *it)
{
    (void)it;
    return BT_OK; /* memory only: nothing can fail once created */
}

static void it_destroy(sst_iter *it)
{
    mt_iter *mi = (mt_iter *)it;
    ts_memtable_unref(mi->m);
    free(mi);
}

static const struct sst_iter_ops mt_iter_ops = {
    .valid = it_valid,
    .seek_first = it_seek_first,
    .seek = it_seek,
    .next = it_next,
    .key = it_key,
    .value = it_value,
    .status = it_status,
    .destroy = it_destroy,
};

sst_iter *ts_memtable_iter(ts_memtable *m)
{
    mt_iter *mi = malloc(sizeof(*mi));
    if (!mi) return NULL;
    mi->base.ops = &mt_iter_ops;
    ts_memtable_ref(m);
    mi->m = m;
    mi->cur = NULL;
    return &mi->base;
}

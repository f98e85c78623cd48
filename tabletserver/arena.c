/* tabletserver/arena.c: the bump allocator behind the memtable.
 *
 * Memory ordering: only the allocating thread touches cur/left/reserved/
 * blocks.  `used` and `nblocks` are written by that thread alone, so a
 * relaxed load followed by a relaxed store is a correct update (no
 * read-modify-write is needed without a second writer), and readers on other
 * threads get a relaxed load of a value that is always a past or present
 * total.  No other memory is ordered through these counters.
 */
#include "tabletserver/arena.h"

#include <stdlib.h>
#include <sys/mman.h>

struct ts_arena_block {
    struct ts_arena_block *next;
    size_t mapped;      /* bytes mmap'ed (a shared block), 0 if malloc'ed */
};

/* Block data start after the header, rounded up so that they keep malloc's
 * max_align_t alignment (which in particular satisfies TS_ARENA_ALIGN). */
#define HDR_SIZE \
    ((sizeof(struct ts_arena_block) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

/* A request above this gets its own block: carving it from a fresh shared
 * block would waste most of the current block's tail. */
#define OWN_BLOCK_MIN (TS_ARENA_BLOCK / 4)

void ts_arena_init(ts_arena *a)
{
    a->cur = NULL;
    a->left = 0;
    a->reserved = 0;
    a->blocks = NULL;
    atomic_init(&a->used, 0);
    atomic_init(&a->nblocks, 0);
}

void ts_arena_destroy(ts_arena *a)
{
    struct ts_arena_block *b = a->blocks;
    while (b) {
        struct ts_arena_block *next = b->next;
        if (b->mapped) munmap(b, b->mapped);
        else free(b);
        b = next;
    }
    ts_arena_init(a);
}

static void publish_usage(ts_arena *a)
{
    atomic_store_explicit(&a->used, a->reserved - a->left, memory_order_relaxed);
}

/* A 2 MiB-aligned anonymous mapping of TS_ARENA_BLOCK bytes, or NULL.
 * Mapped (not malloc'ed) so that destroying a flushed memtable gives its
 * memory straight back to the kernel: freed to malloc, big blocks linger in
 * the heap once glibc's dynamic mmap threshold has grown past them.  Aligned
 * and advised as huge pages because a memtable's random inserts walk nodes
 * spread over the whole arena: with 4 KiB pages nearly every step is a TLB
 * miss as well as a cache miss (huge pages measured 15-20% faster random
 * inserts here).  Without transparent huge pages the advice is a no-op. */
static struct ts_arena_block *map_block(void)
{
    size_t sz = TS_ARENA_BLOCK;
    uint8_t *p = mmap(NULL, 2 * sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    uint8_t *a = (uint8_t *)(((uintptr_t)p + sz - 1) & ~(uintptr_t)(sz - 1));
    if (a > p) munmap(p, (size_t)(a - p));
    if (a + sz < p + 2 * sz) munmap(a + sz, (size_t)(p + 2 * sz - (a + sz)));
#ifdef MADV_HUGEPAGE
    madvise(a, sz, MADV_HUGEPAGE);
#endif
    struct ts_arena_block *b = (struct ts_arena_block *)(void *)a;
    b->mapped = sz;
    return b;
}

/* Allocates a block with `size` data bytes and links it in; NULL on failure.
 * Shared blocks (size + header == TS_ARENA_BLOCK) are mapped, dedicated
 * ones (big values) malloc'ed. */
static uint8_t *new_block(ts_arena *a, size_t size)
{
    if (size > SIZE_MAX - HDR_SIZE) return NULL;
    struct ts_arena_block *b;
    if (HDR_SIZE + size == TS_ARENA_BLOCK) {
        b = map_block();
    } else {
        b = malloc(HDR_SIZE + size);
        if (b) b->mapped = 0;
    }
    if (!b) return NULL;
    b->next = a->blocks;
    a->blocks = b;
    a->reserved += HDR_SIZE + size;
    size_t n = atomic_load_explicit(&a->nblocks, memory_order_relaxed);
    atomic_store_explicit(&a->nblocks, n + 1, memory_order_relaxed);
    return (uint8_t *)b + HDR_SIZE;
}

/* The request does not fit in the current block.  Either it gets a block of
 * its own (the current block stays open for later small requests) or the
 * current block's tail is abandoned for a fresh shared block.  Block data are
 * max-aligned, so the result satisfies both alloc functions. */
static void *alloc_slow(ts_arena *a, size_t n)
{
    if (n > OWN_BLOCK_MIN) {
        uint8_t *p = new_block(a, n);
        if (p) publish_usage(a);
        return p;
    }
    uint8_t *p = new_block(a, TS_ARENA_BLOCK - HDR_SIZE);
    if (!p) return NULL;
    a->cur = p + n;
    a->left = TS_ARENA_BLOCK - HDR_SIZE - n;
    publish_usage(a);
    return p;
}

void *ts_arena_alloc(ts_arena *a, size_t n)
{
    if (n == 0) return NULL;
    if (n > a->left) return alloc_slow(a, n);
    uint8_t *p = a->cur;
    a->cur += n;
    a->left -= n;
    publish_usage(a);
    return p;
}

void *ts_arena_alloc_aligned(ts_arena *a, size_t n)
{
    if (n == 0) return NULL;
    size_t pad = (size_t)(-(uintptr_t)a->cur) & (TS_ARENA_ALIGN - 1);
    if (pad > a->left || n > a->left - pad) return alloc_slow(a, n);
    uint8_t *p = a->cur + pad;
    a->cur = p + n;
    a->left -= pad + n;
    publish_usage(a);
    return p;
}

size_t ts_arena_used(const ts_arena *a)
{
    return atomic_load_explicit(&a->used, memory_order_relaxed);
}

size_t ts_arena_blocks(const ts_arena *a)
{
    return atomic_load_explicit(&a->nblocks, memory_order_relaxed);
}

/* tabletserver/arena.h: a bump allocator for memtable nodes and bytes.
 *
 * Memory comes from blocks of TS_ARENA_BLOCK bytes carved front to back; a
 * request larger than a quarter block gets a block of its own, so a big value
 * neither wastes the tail of the current block nor forces a new one for the
 * small entries that follow.  Nothing is freed individually: every block goes
 * away in ts_arena_destroy().
 *
 * Concurrency: a single thread allocates (the memtable's writer).  The usage
 * counters are atomics written with relaxed stores by that thread, so any
 * thread may read them; they are statistics, ordering nothing else.  Memory
 * handed out is published to other threads by the caller (the memtable's
 * release stores), not by the arena.
 */
#ifndef BT_TS_ARENA_H
#define BT_TS_ARENA_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TS_ARENA_BLOCK ((size_t)2 << 20)   /* one huge page */

/* Alignment of ts_arena_alloc_aligned(): enough for pointers, atomic
 * pointers and 64-bit integers. */
#define TS_ARENA_ALIGN (alignof(void *) > alignof(uint64_t) ? alignof(void *) : alignof(uint64_t))

struct ts_arena_block;

typedef struct ts_arena {
    uint8_t *cur;                   /* next free byte of the current block */
    size_t left;                    /* free bytes after cur */
    size_t reserved;                /* bytes obtained from malloc (writer's copy) */
    struct ts_arena_block *blocks;  /* every block, newest first */
    _Atomic size_t used;            /* reserved - left: consumed, incl. padding and abandoned tails */
    _Atomic size_t nblocks;
} ts_arena;

/* Starts empty: the first block is obtained on the first allocation. */
void ts_arena_init(ts_arena *a);
/* Frees every block; the arena can then be re-initialised. */
void ts_arena_destroy(ts_arena *a);

/* n bytes with no alignment guarantee; NULL if malloc fails or n == 0. */
void *ts_arena_alloc(ts_arena *a, size_t n);
/* n bytes aligned to TS_ARENA_ALIGN; NULL if malloc fails or n == 0. */
void *ts_arena_alloc_aligned(ts_arena *a, size_t n);

/* Bytes of block memory consumed so far (including block headers, alignment
 * padding and tails left behind when a block filled up); the unused rest of
 * the current block is not counted.  Safe from any thread. */
size_t ts_arena_used(const ts_arena *a);
/* Blocks obtained so far.  Safe from any thread. */
size_t ts_arena_blocks(const ts_arena *a);

#endif

/* sstable/cache.c: the sharded, byte-bounded LRU block cache (see cache.h).
 *
 * The key space is split over 16 shards by a hash of (id, off) so that
 * concurrent readers of different blocks rarely contend on one mutex.
 *
 * Each entry carries a reference count.  The cache itself holds one reference
 * while the entry is in its shard's hash table ("in_cache"); every handle
 * returned to a user holds one more.  An entry sits on its shard's LRU list
 * exactly when it is in the table and nobody else holds it (refs == 1), so
 * eviction only ever looks at the list and never frees memory under a user.
 * An entry removed from the table while pinned (replaced or erased) lives on
 * until its last handle is released.
 *
 * Locking: shard->mu protects everything in the shard: the hash table, the
 * LRU list, usage, and the refs/in_cache/list links of every entry whose key
 * hashes to that shard (also after the entry left the table, since release
 * finds the shard again from the stored hash).  Deleters run after the mutex
 * is dropped, so a slow deleter does not stall other readers of the shard.
 */
#include "sstable/cache.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdlib.h>

#define NUM_SHARD_BITS 4
#define NUM_SHARDS (1u << NUM_SHARD_BITS)
#define INITIAL_BUCKETS 64
#define CACHE_LINE 64

struct sst_cache_handle {
    struct sst_cache_handle *next_hash; /* bucket chain; reused as free list */
    struct sst_cache_handle *lru_prev;
    struct sst_cache_handle *lru_next;
    uint64_t id;
    uint64_t off;
    uint64_t hash;
    void *value;
    void (*deleter)(void *value);
    size_t charge;
    uint32_t refs;
    bool in_cache;
};

typedef struct sst_cache_handle entry;

/* Aligned to a cache line so that two shards' mutexes never share one. */
typedef struct shard {
    alignas(CACHE_LINE) pthread_mutex_t mu;
    entry **buckets;
    size_t mask;      /* bucket count - 1 (a power of two) */
    size_t count;     /* entries in the table */
    size_t usage;     /* sum of charges of entries in the table */
    size_t capacity;
    entry lru;        /* sentinel: lru.lru_next is the oldest */
} shard;

struct sst_cache {
    shard shards[NUM_SHARDS];
    size_t capacity;
};

/* Process-wide so that ids stay unique even across several caches. */
static _Atomic uint64_t g_next_id = 0;

/* Mixes both halves of the key; the top bits pick the shard and the low
 * bits the bucket, so they must be independent. */
static inline uint64_t key_hash(uint64_t id, uint64_t off)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ull ^ off;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

static inline shard *shard_of(sst_cache *c, uint64_t hash)
{
    return &c->shards[hash >> (64 - NUM_SHARD_BITS)];
}

/* ---- LRU list --------------------------------------------------------------- */

static void lru_remove(entry *e)
{
    e->lru_prev->lru_next = e->lru_next;
    e->lru_next->lru_prev = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

/* Appends at the newest end. */
static void lru_append(shard *s, entry *e)
{
    e->lru_next = &s->lru;
    e->lru_prev = s->lru.lru_prev;
    e->lru_prev->lru_next = e;
    s->lru.lru_prev = e;
}

/* ---- hash table ------------------------------------------------------------- */

/* Returns the link that points at the entry for (id, off), or at the NULL
 * ending its chain, so callers can both find and unlink. */
static entry **table_slot(shard *s, uint64_t id, uint64_t off, uint64_t hash)
{
    entry **p = &s->buckets[hash & s->mask];
    while (*p && ((*p)->id != id || (*p)->off != off)) p = &(*p)->next_hash;
    return p;
}

/* Doubles the bucket array.  Failure is harmless: chains just get longer. */
static void table_grow(shard *s)
{
    size_t nb = (s->mask + 1) * 2;
    entry **nbk = calloc(nb, sizeof *nbk);
    if (!nbk) return;
    for (size_t i = 0; i <= s->mask; i++) {
        entry *e = s->buckets[i];
        while (e) {
            entry *next = e->next_hash;
            entry **b = &nbk[e->hash & (nb - 1)];
            e->next_hash = *b;
            *b = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = nbk;
    s->mask = nb - 1;
}

/* ---- reference counting ----------------------------------------------------- */

/* Drops one reference with s->mu held.  An entry whose count reaches zero is
 * pushed on *dead to be freed once the lock is gone; one that is left held by
 * the cache alone becomes evictable. */
static void unref_locked(shard *s, entry *e, entry **dead)
{
    if (--e->refs == 0) {
        e->next_hash = *dead;
        *dead = e;
    } else if (e->refs == 1 && e->in_cache) {
        lru_append(s, e);
    }
}

/* Removes an entry (already unlinked from its chain) from the cache's
 * accounting and drops the cache's reference. */
static void detach_locked(shard *s, entry *e, entry **dead)
{
    e->in_cache = false;
    s->usage -= e->charge;
    s->count--;
    if (e->refs == 1) lru_remove(e); /* unpinned entries sit on the LRU */
    unref_locked(s, e, dead);
}

/* Evicts from the old end until the shard fits.  Pinned entries are never
 * on the list, so whatever is there may go; if only pinned entries remain the
 * shard stays over capacity until they are released. */
static void evict_locked(shard *s, entry **dead)
{
    while (s->usage > s->capacity && s->lru.lru_next != &s->lru) {
        entry *e = s->lru.lru_next;
        *table_slot(s, e->id, e->off, e->hash) = e->next_hash;
        detach_locked(s, e, dead);
    }
}

static void free_dead(entry *dead)
{
    while (dead) {
        entry *next = dead->next_hash;
        if (dead->deleter) dead->deleter(dead->value);
        free(dead);
        dead = next;
    }
}

/* ---- public API ------------------------------------------------------------- */

static bool shard_init(shard *s, size_t capacity)
{
    s->buckets = calloc(INITIAL_BUCKETS, sizeof *s->buckets);
    if (!s->buckets) return false;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s->buckets);
        return false;
    }
    s->mask = INITIAL_BUCKETS - 1;
    s->count = 0;
    s->usage = 0;
    s->capacity = capacity;
    s->lru.lru_next = s->lru.lru_prev = &s->lru;
    return true;
}

/* Frees every entry still in the table; all handles are released by now. */
static void shard_destroy(shard *s)
{
    entry *dead = NULL;
    for (size_t i = 0; i <= s->mask; i++) {
        for (entry *e = s->buckets[i]; e;) {
            entry *next = e->next_hash;
            detach_locked(s, e, &dead);
            e = next;
        }
    }
    free_dead(dead);
    free(s->buckets);
    pthread_mutex_destroy(&s->mu);
}

sst_cache *sst_cache_new(size_t capacity)
{
    size_t size = (sizeof(sst_cache) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    sst_cache *c = aligned_alloc(CACHE_LINE, size);
    if (!c) return NULL;
    c->capacity = capacity;
    for (unsigned i = 0; i < NUM_SHARDS; i++) {
        /* Spread the remainder so the shard capacities sum to the total. */
        size_t cap = capacity / NUM_SHARDS + (i < capacity % NUM_SHARDS);
        if (!shard_init(&c->shards[i], cap)) {
            while (i--) shard_destroy(&c->shards[i]);
            free(c);
            return NULL;
        }
    }
    return c;
}

void sst_cache_free(sst_cache *c)
{
    if (!c) return;
    for (unsigned i = 0; i < NUM_SHARDS; i++) shard_destroy(&c->shards[i]);
    free(c);
}

uint64_t sst_cache_new_id(sst_cache *c)
{
    (void)c;
    return atomic_fetch_add_explicit(&g_next_id, 1, memory_order_relaxed) + 1;
}

sst_cache_handle *sst_cache_lookup(sst_cache *c, uint64_t id, uint64_t off)
{
    uint64_t hash = key_hash(id, off);
    shard *s = shard_of(c, hash);
    pthread_mutex_lock(&s->mu);
    entry *e = *table_slot(s, id, off, hash);
    if (e) {
        if (e->refs == 1) lru_remove(e); /* pinned entries leave the LRU */
        e->refs++;
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

sst_cache_handle *sst_cache_insert(sst_cache *c, uint64_t id, uint64_t off, void *value,
                                   size_t charge, void (*deleter)(void *value))
{
    entry *e = malloc(sizeof *e);
    if (!e) {
        if (deleter) deleter(value);
        return NULL;
    }
    uint64_t hash = key_hash(id, off);
    *e = (entry){ .id = id, .off = off, .hash = hash, .value = value,
                  .deleter = deleter, .charge = charge, .refs = 2, .in_cache = true };
    shard *s = shard_of(c, hash);
    entry *dead = NULL;

    pthread_mutex_lock(&s->mu);
    entry **slot = table_slot(s, id, off, hash);
    entry *old = *slot;
    if (old) {
        *slot = old->next_hash;
        detach_locked(s, old, &dead);
    }
    e->next_hash = *slot; /* after an unlink *slot may be the next in chain */
    *slot = e;
    s->count++;
    s->usage += charge;
    if (s->count > s->mask + 1) table_grow(s);
    evict_locked(s, &dead);
    pthread_mutex_unlock(&s->mu);

    free_dead(dead);
    return e;
}

void *sst_cache_value(sst_cache_handle *h)
{
    return h->value;
}

void sst_cache_release(sst_cache *c, sst_cache_handle *h)
{
    shard *s = shard_of(c, h->hash);
    entry *dead = NULL;
    pthread_mutex_lock(&s->mu);
    unref_locked(s, h, &dead);
    /* A pinned entry may have held the shard over capacity; now that it can
     * go, restore the bound at once instead of waiting for the next insert. */
    evict_locked(s, &dead);
    pthread_mutex_unlock(&s->mu);
    free_dead(dead);
}

static void shard_erase_id(shard *s, uint64_t id, entry **dead)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i <= s->mask; i++) {
        entry **p = &s->buckets[i];
        while (*p) {
            entry *e = *p;
            if (e->id == id) {
                *p = e->next_hash;
                detach_locked(s, e, dead);
            } else {
                p = &e->next_hash;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void sst_cache_erase_id(sst_cache *c, uint64_t id)
{
    entry *dead = NULL;
    for (unsigned i = 0; i < NUM_SHARDS; i++) {
        shard_erase_id(&c->shards[i], id, &dead);
        free_dead(dead);
        dead = NULL;
    }
}

size_t sst_cache_usage(sst_cache *c)
{
    size_t total = 0;
    for (unsigned i = 0; i < NUM_SHARDS; i++) {
        shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        total += s->usage;
        pthread_mutex_unlock(&s->mu);
    }
    return total;
}

size_t sst_cache_capacity(sst_cache *c)
{
    return c->capacity;
}

/* tests/unit/test_cache.c: the sharded LRU block cache (sstable/cache.h).
 *
 * Single-threaded tests use small integers as values and count deleter calls
 * per value in del_count[], so "freed exactly once, and only after release"
 * can be checked precisely.  The stress test uses heap values with a magic
 * word, so a value freed under a pinned handle shows up as a wrong magic (or
 * an ASan report), and balances inserts against deleter calls at the end.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "sstable/cache.h"

#define NVALUES 20000

static atomic_int del_count[NVALUES];

static void count_deleter(void *v)
{
    atomic_fetch_add(&del_count[(uintptr_t)v], 1);
}

static void *val(unsigned i) { return (void *)(uintptr_t)i; }

static int deleted(unsigned i) { return atomic_load(&del_count[i]); }

static sst_cache *new_cache(size_t capacity)
{
    sst_cache *c = sst_cache_new(capacity);
    cr_assert_not_null(c);
    return c;
}

/* Inserts (id, off) -> val(v) and leaves it pinned: the caller releases it. */
static sst_cache_handle *pin(sst_cache *c, uint64_t id, uint64_t off, unsigned v, size_t charge)
{
    sst_cache_handle *h = sst_cache_insert(c, id, off, val(v), charge, count_deleter);
    cr_assert_not_null(h);
    return h;
}

/* Inserts and immediately releases, leaving the entry unpinned. */
static void put(sst_cache *c, uint64_t id, uint64_t off, unsigned v, size_t charge)
{
    sst_cache_release(c, pin(c, id, off, v, charge));
}

/* Whether (id, off) is cached, without leaving it pinned. */
static bool present(sst_cache *c, uint64_t id, uint64_t off)
{
    sst_cache_handle *h = sst_cache_lookup(c, id, off);
    if (h) sst_cache_release(c, h);
    return h != NULL;
}

Test(cache, insert_lookup_release)
{
    sst_cache *c = new_cache(1 << 20);
    cr_assert_eq(sst_cache_capacity(c), (size_t)1 << 20);
    cr_assert_null(sst_cache_lookup(c, 1, 0));

    sst_cache_handle *h = pin(c, 1, 0, 7, 100);
    cr_assert_eq(sst_cache_value(h), val(7));
    sst_cache_release(c, h);
    cr_assert_eq(sst_cache_usage(c), 100);

    h = sst_cache_lookup(c, 1, 0);
    cr_assert_not_null(h);
    cr_assert_eq(sst_cache_value(h), val(7));
    sst_cache_release(c, h);
    cr_assert_null(sst_cache_lookup(c, 1, 4096));
    cr_assert_null(sst_cache_lookup(c, 2, 0));
    cr_assert_eq(deleted(7), 0);

    sst_cache_free(c);
    cr_assert_eq(deleted(7), 1);
}

Test(cache, free_null_is_noop)
{
    sst_cache_free(NULL);
}

Test(cache, capacity_bound)
{
    const size_t cap = 16 * 1000;
    sst_cache *c = new_cache(cap);
    unsigned n = 10000;
    for (unsigned i = 0; i < n; i++) {
        put(c, 1 + i % 5, (uint64_t)i * 4096, i, 10 + i % 7);
        cr_assert_leq(sst_cache_usage(c), cap, "usage %zu after %u inserts",
                      sst_cache_usage(c), i + 1);
    }
    cr_assert_gt(sst_cache_usage(c), cap / 2, "cache should be well filled");

    unsigned gone = 0, kept = 0;
    for (unsigned i = 0; i < n; i++) {
        cr_assert_leq(deleted(i), 1);
        gone += (unsigned)deleted(i);
        kept += present(c, 1 + i % 5, (uint64_t)i * 4096);
    }
    cr_assert_eq(gone + kept, n, "every entry is either cached or deleted once");
    sst_cache_free(c);
    for (unsigned i = 0; i < n; i++) cr_assert_eq(deleted(i), 1);
}

Test(cache, zero_capacity_keeps_nothing)
{
    sst_cache *c = new_cache(0);
    sst_cache_handle *h = pin(c, 1, 0, 1, 10);
    cr_assert_eq(sst_cache_value(h), val(1));
    cr_assert_eq(deleted(1), 0, "pinned entry must survive");
    sst_cache_release(c, h);
    cr_assert_eq(deleted(1), 1);
    cr_assert_eq(sst_cache_usage(c), 0);
    sst_cache_free(c);
    cr_assert_eq(deleted(1), 1);
}

Test(cache, lru_keeps_recently_used)
{
    /* 100 units per shard; hot keys are touched every 10 inserts, so each is
     * always far younger than the shard's oldest entry. */
    sst_cache *c = new_cache(16 * 100);
    const unsigned nhot = 20, ncold = 8000;
    for (unsigned i = 0; i < nhot; i++) put(c, 1, i, i, 1);
    for (unsigned i = 0; i < ncold; i++) {
        put(c, 2, i, nhot + i, 1);
        if (i % 10 == 0)
            for (unsigned k = 0; k < nhot; k++) cr_assert(present(c, 1, k), "hot key %u evicted", k);
    }
    for (unsigned k = 0; k < nhot; k++) {
        cr_assert(present(c, 1, k));
        cr_assert_eq(deleted(k), 0);
    }
    /* The oldest cold keys must have made room. */
    for (unsigned i = 0; i < 100; i++) {
        cr_assert_not(present(c, 2, i));
        cr_assert_eq(deleted(nhot + i), 1);
    }
    sst_cache_free(c);
}

Test(cache, pinned_survives_eviction)
{
    sst_cache *c = new_cache(16); /* one unit per shard */
    sst_cache_handle *h = pin(c, 1, 0, 0, 1000);
    for (unsigned i = 1; i < 2000; i++) put(c, 2, i, i, 1);
    cr_assert_eq(deleted(0), 0, "pinned entry deleted under its user");
    cr_assert_eq(sst_cache_value(h), val(0));
    cr_assert_geq(sst_cache_usage(c), 1000, "a pinned entry still counts");

    /* It is still findable while pinned. */
    sst_cache_handle *h2 = sst_cache_lookup(c, 1, 0);
    cr_assert_eq(h2, h);
    sst_cache_release(c, h2);
    cr_assert_eq(deleted(0), 0);

    sst_cache_release(c, h);
    cr_assert_eq(deleted(0), 1, "over-capacity entry goes on its last release");
    cr_assert_leq(sst_cache_usage(c), 16);
    sst_cache_free(c);
    cr_assert_eq(deleted(0), 1);
}

Test(cache, pinned_survives_replace)
{
    sst_cache *c = new_cache(1 << 20);
    sst_cache_handle *old = pin(c, 3, 64, 1, 10);
    put(c, 3, 64, 2, 20);
    cr_assert_eq(deleted(1), 0);
    cr_assert_eq(sst_cache_value(old), val(1));
    cr_assert_eq(sst_cache_usage(c), 20, "the detached entry no longer counts");

    sst_cache_handle *h = sst_cache_lookup(c, 3, 64);
    cr_assert_not_null(h);
    cr_assert_eq(sst_cache_value(h), val(2));
    sst_cache_release(c, h);

    sst_cache_release(c, old);
    cr_assert_eq(deleted(1), 1);
    cr_assert_eq(deleted(2), 0);
    sst_cache_free(c);
    cr_assert_eq(deleted(1), 1);
    cr_assert_eq(deleted(2), 1);
}

Test(cache, pinned_survives_erase)
{
    sst_cache *c = new_cache(1 << 20);
    sst_cache_handle *h = pin(c, 9, 0, 5, 10);
    sst_cache_erase_id(c, 9);
    cr_assert_null(sst_cache_lookup(c, 9, 0));
    cr_assert_eq(deleted(5), 0);
    cr_assert_eq(sst_cache_value(h), val(5));
    cr_assert_eq(sst_cache_usage(c), 0);
    sst_cache_release(c, h);
    cr_assert_eq(deleted(5), 1);
    sst_cache_free(c);
    cr_assert_eq(deleted(5), 1);
}

Test(cache, replace_same_key)
{
    sst_cache *c = new_cache(1 << 20);
    put(c, 1, 5, 1, 10);
    put(c, 1, 5, 2, 20);
    cr_assert_eq(deleted(1), 1);
    cr_assert_eq(sst_cache_usage(c), 20);
    sst_cache_handle *h = sst_cache_lookup(c, 1, 5);
    cr_assert_not_null(h);
    cr_assert_eq(sst_cache_value(h), val(2));
    sst_cache_release(c, h);
    sst_cache_free(c);
    cr_assert_eq(deleted(2), 1);
}

Test(cache, erase_id)
{
    sst_cache *c = new_cache(1 << 20);
    uint64_t a = sst_cache_new_id(c), b = sst_cache_new_id(c);
    const unsigned n = 1000; /* enough to make every shard's table grow */
    for (unsigned i = 0; i < n; i++) {
        put(c, a, (uint64_t)i * 4096, i, 3);
        put(c, b, (uint64_t)i * 4096, n + i, 5);
    }
    cr_assert_eq(sst_cache_usage(c), n * 8);
    sst_cache_erase_id(c, a);
    cr_assert_eq(sst_cache_usage(c), n * 5);
    for (unsigned i = 0; i < n; i++) {
        cr_assert_not(present(c, a, (uint64_t)i * 4096));
        cr_assert(present(c, b, (uint64_t)i * 4096));
        cr_assert_eq(deleted(i), 1);
        cr_assert_eq(deleted(n + i), 0);
    }
    sst_cache_erase_id(c, 12345); /* unknown id: nothing happens */
    cr_assert_eq(sst_cache_usage(c), n * 5);
    sst_cache_free(c);
    for (unsigned i = 0; i < 2 * n; i++) cr_assert_eq(deleted(i), 1);
}

#define ID_THREADS 4
#define IDS_PER_THREAD 10000

struct id_arg {
    sst_cache *c;
    uint64_t ids[IDS_PER_THREAD];
};

static void *take_ids(void *p)
{
    struct id_arg *a = p;
    for (int i = 0; i < IDS_PER_THREAD; i++) a->ids[i] = sst_cache_new_id(a->c);
    return NULL;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

Test(cache, new_id_unique)
{
    sst_cache *c1 = sst_cache_new(1024), *c2 = sst_cache_new(1024);
    cr_assert(c1 && c2);
    static struct id_arg args[ID_THREADS];
    pthread_t th[ID_THREADS];
    for (int t = 0; t < ID_THREADS; t++) {
        args[t].c = t % 2 ? c1 : c2; /* ids are unique across caches too */
        cr_assert_eq(pthread_create(&th[t], NULL, take_ids, &args[t]), 0);
    }
    for (int t = 0; t < ID_THREADS; t++) pthread_join(th[t], NULL);

    static uint64_t all[ID_THREADS * IDS_PER_THREAD];
    size_t k = 0;
    for (int t = 0; t < ID_THREADS; t++)
        for (int i = 0; i < IDS_PER_THREAD; i++) all[k++] = args[t].ids[i];
    qsort(all, k, sizeof all[0], cmp_u64);
    cr_assert_neq(all[0], 0);
    for (size_t i = 1; i < k; i++) cr_assert_neq(all[i], all[i - 1], "duplicate id %lu", (unsigned long)all[i]);
    sst_cache_free(c1);
    sst_cache_free(c2);
}

/* ---- multithreaded stress --------------------------------------------------- */

#define STRESS_THREADS 4
#define STRESS_IDS 4
#define STRESS_OFFS 256
#define STRESS_PINS 8
#define MAGIC 0x5eedcafe

struct stress_val {
    uint32_t magic;
    uint64_t id, off;
};

static atomic_long stress_inserted, stress_deleted;

/* Criterion's assertions may only fail on the test's own thread, so worker
 * threads (and deleters, which run on them) count problems here instead and
 * the test thread asserts the count is zero. */
static atomic_long stress_bad_deletes, stress_bad_handles, stress_alloc_failures;

static void stress_deleter(void *p)
{
    struct stress_val *v = p;
    if (v->magic != MAGIC) {
        atomic_fetch_add(&stress_bad_deletes, 1);
        return;
    }
    v->magic = 0;
    free(v);
    atomic_fetch_add(&stress_deleted, 1);
}

/* A pinned value must be intact and belong to the key it was found under. */
static void check_handle(sst_cache_handle *h, uint64_t id, uint64_t off)
{
    struct stress_val *v = sst_cache_value(h);
    if (v->magic != MAGIC || v->id != id || v->off != off)
        atomic_fetch_add(&stress_bad_handles, 1);
}

struct stress_arg {
    sst_cache *c;
    unsigned seed;
    struct timespec end;
};

static bool time_left(const struct timespec *end)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec < end->tv_sec || (now.tv_sec == end->tv_sec && now.tv_nsec < end->tv_nsec);
}

static sst_cache_handle *stress_insert(sst_cache *c, uint64_t id, uint64_t off, unsigned *seed)
{
    struct stress_val *v = malloc(sizeof *v);
    if (!v) {
        atomic_fetch_add(&stress_alloc_failures, 1);
        return NULL;
    }
    *v = (struct stress_val){ MAGIC, id, off };
    atomic_fetch_add(&stress_inserted, 1);
    return sst_cache_insert(c, id, off, v, 1 + rand_r(seed) % 64, stress_deleter);
}

static void *stress_thread(void *p)
{
    struct stress_arg *a = p;
    sst_cache_handle *pins[STRESS_PINS] = {0};
    uint64_t pin_id[STRESS_PINS], pin_off[STRESS_PINS];
    while (time_left(&a->end)) {
        for (int iter = 0; iter < 256; iter++) {
            int op = rand_r(&a->seed) % 100;
            uint64_t id = 1 + (uint64_t)(rand_r(&a->seed) % STRESS_IDS);
            uint64_t off = (uint64_t)(rand_r(&a->seed) % STRESS_OFFS) * 4096;
            int slot = rand_r(&a->seed) % STRESS_PINS;
            if (op < 2) {
                sst_cache_erase_id(a->c, id);
                continue;
            }
            if (pins[slot]) {
                check_handle(pins[slot], pin_id[slot], pin_off[slot]);
                sst_cache_release(a->c, pins[slot]);
                pins[slot] = NULL;
            }
            sst_cache_handle *h = op < 70 ? sst_cache_lookup(a->c, id, off)
                                          : stress_insert(a->c, id, off, &a->seed);
            if (!h) continue;
            check_handle(h, id, off);
            pins[slot] = h;
            pin_id[slot] = id;
            pin_off[slot] = off;
        }
    }
    for (int i = 0; i < STRESS_PINS; i++)
        if (pins[i]) sst_cache_release(a->c, pins[i]);
    return NULL;
}

Test(cache, multithreaded_stress, .timeout = 60)
{
    /* Small enough that eviction runs constantly. */
    const size_t cap = 16 * 256;
    sst_cache *c = new_cache(cap);
    struct stress_arg args[STRESS_THREADS];
    pthread_t th[STRESS_THREADS];
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += 1;
    for (int t = 0; t < STRESS_THREADS; t++) {
        args[t] = (struct stress_arg){ c, 12345u + 7919u * (unsigned)t, end };
        cr_assert_eq(pthread_create(&th[t], NULL, stress_thread, &args[t]), 0);
    }
    for (int t = 0; t < STRESS_THREADS; t++) pthread_join(th[t], NULL);

    cr_assert_eq(atomic_load(&stress_bad_handles), 0, "value freed or mixed up under a pinned handle");
    cr_assert_eq(atomic_load(&stress_bad_deletes), 0, "double delete or corruption");
    cr_assert_eq(atomic_load(&stress_alloc_failures), 0);
    cr_assert_leq(sst_cache_usage(c), cap, "nothing pinned, so within capacity");
    long live = atomic_load(&stress_inserted) - atomic_load(&stress_deleted);
    cr_assert_geq(live, 0);
    cr_assert_gt(atomic_load(&stress_inserted), 1000, "stress made too little progress");
    sst_cache_free(c);
    cr_assert_eq(atomic_load(&stress_deleted), atomic_load(&stress_inserted),
                 "every inserted value deleted exactly once");
}

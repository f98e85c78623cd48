/* tests/unit/test_memtable.c: the skiplist memtable and its arena
 * (tabletserver/memtable.h, tabletserver/arena.h).
 *
 * Contents are checked against a sorted reference array: full iteration and
 * seeks (exact, between two keys, before the first, after the last, random
 * targets).  Keys are drawn from a small alphabet that includes 0x00 and 0xff
 * so that embedded zeros and shared prefixes of different lengths are common.
 * The concurrency test runs one writer against three lock-free readers; the
 * readers record problems in counters that the main thread asserts on, since
 * Criterion assertions are not meant to be called from other threads.
 *
 * Memory ordering in the concurrency test: the writer stores `started` = i+1
 * (relaxed) before inserting key i.  A reader reaches key i only through an
 * acquire load of a link published (release) after that store, so its later
 * relaxed load of `started` must return > i: a reader that sees a key the
 * writer had not yet begun to insert has found a bug.  `writer_done` is a
 * release/acquire flag, so a scan begun after reading it must see all keys.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "sstable/iter.h"
#include "tabletserver/arena.h"
#include "tabletserver/memtable.h"

/* ---- helpers ----------------------------------------------------------------- */

#define MAX_KN 24
#define MAX_VN 32

typedef struct kv {
    uint8_t k[MAX_KN];
    size_t kn;
    uint8_t v[MAX_VN];
    size_t vn;
} kv;

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int kv_cmp(const void *a, const void *b)
{
    const kv *x = a, *y = b;
    return sst_key_cmp(x->k, x->kn, y->k, y->kn);
}

/* n random distinct entries, sorted; returns how many remain after dedup. */
static size_t make_ref(kv *ref, size_t n, uint64_t seed)
{
    static const uint8_t alphabet[] = {0x00, 0x01, 'a', 'b', 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < n; i++) {
        ref[i].kn = 1 + rnd(&seed) % MAX_KN;
        for (size_t j = 0; j < ref[i].kn; j++)
            ref[i].k[j] = alphabet[rnd(&seed) % sizeof(alphabet)];
        ref[i].vn = i % 7 == 0 ? 0 : rnd(&seed) % MAX_VN;
        for (size_t j = 0; j < ref[i].vn; j++) ref[i].v[j] = (uint8_t)rnd(&seed);
    }
    qsort(ref, n, sizeof(*ref), kv_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || kv_cmp(&ref[u - 1], &ref[i]) != 0) ref[u++] = ref[i];
    return u;
}

static void shuffle(size_t *idx, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) idx[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd(&seed) % i;
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* Index of the first reference entry >= target (n if none). */
static size_t lower_bound(const kv *ref, size_t n, const uint8_t *t, size_t tn)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sst_key_cmp(ref[mid].k, ref[mid].kn, t, tn) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void expect_at(sst_iter *it, const kv *e)
{
    cr_assert(sst_iter_valid(it));
    size_t kn, vn;
    const uint8_t *k = sst_iter_key(it, &kn);
    const uint8_t *v = sst_iter_value(it, &vn);
    cr_assert_eq(kn, e->kn);
    cr_assert(kn == 0 || memcmp(k, e->k, kn) == 0);
    cr_assert_eq(vn, e->vn);
    cr_assert(vn == 0 || memcmp(v, e->v, vn) == 0);
}

static void expect_seek(sst_iter *it, const kv *ref, size_t n, const uint8_t *t, size_t tn)
{
    size_t want = lower_bound(ref, n, t, tn);
    sst_iter_seek(it, t, tn);
    if (want == n) cr_assert_not(sst_iter_valid(it));
    else expect_at(it, &ref[want]);
    cr_assert_eq(sst_iter_status(it), BT_OK);
}

static void expect_all(ts_memtable *m, const kv *ref, size_t n)
{
    sst_iter *it = ts_memtable_iter(m);
    cr_assert_not_null(it);
    size_t i = 0;
    for (sst_iter_seek_first(it); sst_iter_valid(it); sst_iter_next(it)) {
        cr_assert_lt(i, n);
        expect_at(it, &ref[i++]);
    }
    cr_assert_eq(i, n);
    cr_assert_eq(sst_iter_status(it), BT_OK);
    sst_iter_destroy(it);
}

static void add_ok(ts_memtable *m, const char *k, const char *v)
{
    cr_assert_eq(ts_memtable_add(m, (const uint8_t *)k, strlen(k), (const uint8_t *)v, strlen(v)),
                 BT_OK);
}

/* ---- arena ------------------------------------------------------------------- */

Test(arena, alignment_and_usage)
{
    ts_arena a;
    ts_arena_init(&a);
    cr_assert_eq(ts_arena_used(&a), 0);
    cr_assert_null(ts_arena_alloc(&a, 0));
    size_t last = 0;
    for (int i = 0; i < 1000; i++) {
        uint8_t *odd = ts_arena_alloc(&a, 1 + (size_t)i % 13);
        void *al = ts_arena_alloc_aligned(&a, 1 + (size_t)i % 29);
        cr_assert(odd && al);
        cr_assert_eq((uintptr_t)al % TS_ARENA_ALIGN, 0);
        memset(odd, 0xab, 1 + (size_t)i % 13);
        cr_assert_gt(ts_arena_used(&a), last);
        last = ts_arena_used(&a);
    }
    cr_assert_eq(ts_arena_blocks(&a), 1);
    ts_arena_destroy(&a);
    cr_assert_eq(ts_arena_used(&a), 0);
}

Test(arena, large_request_gets_own_block)
{
    ts_arena a;
    ts_arena_init(&a);
    uint8_t *small1 = ts_arena_alloc(&a, 100);
    cr_assert_eq(ts_arena_blocks(&a), 1);
    size_t before = ts_arena_used(&a);

    uint8_t *big = ts_arena_alloc(&a, TS_ARENA_BLOCK);
    cr_assert_not_null(big);
    memset(big, 1, TS_ARENA_BLOCK);
    cr_assert_eq(ts_arena_blocks(&a), 2);
    cr_assert_geq(ts_arena_used(&a) - before, TS_ARENA_BLOCK);
    cr_assert_lt(ts_arena_used(&a) - before, TS_ARENA_BLOCK + 256);

    /* The shared block stayed current: the next small request follows small1. */
    uint8_t *small2 = ts_arena_alloc(&a, 100);
    cr_assert_eq(small2, small1 + 100);
    cr_assert_eq(ts_arena_blocks(&a), 2);
    ts_arena_destroy(&a);
}

Test(arena, shared_blocks_fill_up)
{
    ts_arena a;
    ts_arena_init(&a);
    for (int i = 0; i < 10000; i++) cr_assert_not_null(ts_arena_alloc_aligned(&a, 1000));
    /* 10,000,000 bytes in 2 MiB blocks (each a little under 2 MiB of data
     * after its header): 5 blocks, none dedicated. */
    cr_assert_eq(ts_arena_blocks(&a), 5);
    cr_assert_geq(ts_arena_used(&a), 10000u * 1000u);
    ts_arena_destroy(&a);
}

/* ---- single-threaded memtable ------------------------------------------------ */

Test(memtable, empty)
{
    ts_memtable *m = ts_memtable_new();
    cr_assert_not_null(m);
    cr_assert_eq(ts_memtable_count(m), 0);
    sst_iter *it = ts_memtable_iter(m);
    cr_assert_not_null(it);
    sst_iter_seek_first(it);
    cr_assert_not(sst_iter_valid(it));
    sst_iter_seek(it, (const uint8_t *)"a", 1);
    cr_assert_not(sst_iter_valid(it));
    sst_iter_seek(it, NULL, 0);
    cr_assert_not(sst_iter_valid(it));
    cr_assert_eq(sst_iter_status(it), BT_OK);
    sst_iter_destroy(it);
    ts_memtable_unref(m);
    ts_memtable_unref(NULL);
}

Test(memtable, random_keys_iterate_and_seek)
{
    enum { N = 6000 };
    static kv ref[N];
    static size_t order[N];
    size_t n = make_ref(ref, N, 42);
    cr_assert_gt(n, 1000u);
    shuffle(order, n, 7);

    ts_memtable *m = ts_memtable_new();
    for (size_t i = 0; i < n; i++) {
        const kv *e = &ref[order[i]];
        cr_assert_eq(ts_memtable_add(m, e->k, e->kn, e->v, e->vn), BT_OK);
    }
    cr_assert_eq(ts_memtable_count(m), n);
    expect_all(m, ref, n);

    sst_iter *it = ts_memtable_iter(m);
    for (size_t i = 0; i < n; i++) {
        uint8_t t[MAX_KN + 1];
        memcpy(t, ref[i].k, ref[i].kn);
        expect_seek(it, ref, n, t, ref[i].kn);           /* exact */
        t[ref[i].kn] = 0x00;                              /* just after ref[i] */
        expect_seek(it, ref, n, t, ref[i].kn + 1);
        if (ref[i].kn > 1) expect_seek(it, ref, n, t, ref[i].kn - 1); /* a prefix */
    }
    uint64_t s = 99;
    for (int i = 0; i < 2000; i++) {
        uint8_t t[MAX_KN];
        size_t tn = rnd(&s) % MAX_KN;
        for (size_t j = 0; j < tn; j++) t[j] = (uint8_t)rnd(&s);
        expect_seek(it, ref, n, t, tn);
    }
    /* Before the first key: every key is non-empty, so "" precedes them all. */
    sst_iter_seek(it, NULL, 0);
    expect_at(it, &ref[0]);
    /* After the last key. */
    uint8_t after[MAX_KN + 1];
    memcpy(after, ref[n - 1].k, ref[n - 1].kn);
    after[ref[n - 1].kn] = 0x00;
    sst_iter_seek(it, after, ref[n - 1].kn + 1);
    cr_assert_not(sst_iter_valid(it));
    uint8_t ff[MAX_KN + 1];
    memset(ff, 0xff, sizeof(ff));
    sst_iter_seek(it, ff, sizeof(ff));
    cr_assert_not(sst_iter_valid(it));
    /* Seek then walk on to the end. */
    sst_iter_seek(it, ref[n / 2].k, ref[n / 2].kn);
    for (size_t i = n / 2; i < n; i++, sst_iter_next(it)) expect_at(it, &ref[i]);
    cr_assert_not(sst_iter_valid(it));
    sst_iter_destroy(it);
    ts_memtable_unref(m);
}

/* Ascending and descending runs exercise the cached-splice path; the
 * interleaved run alternates between it and a full search. */
Test(memtable, sequential_and_interleaved)
{
    enum { N = 3000 };
    static kv ref[N];
    for (size_t i = 0; i < N; i++) {
        ref[i].kn = 4;
        ref[i].k[0] = (uint8_t)(i >> 24); ref[i].k[1] = (uint8_t)(i >> 16);
        ref[i].k[2] = (uint8_t)(i >> 8);  ref[i].k[3] = (uint8_t)i;
        ref[i].vn = 4;
        memcpy(ref[i].v, ref[i].k, 4);
    }
    ts_memtable *m = ts_memtable_new();
    for (size_t i = 0; i < N / 3; i++)                      /* ascending */
        cr_assert_eq(ts_memtable_add(m, ref[i].k, 4, ref[i].v, 4), BT_OK);
    for (size_t i = N - 1; i >= 2 * N / 3; i--)             /* descending */
        cr_assert_eq(ts_memtable_add(m, ref[i].k, 4, ref[i].v, 4), BT_OK);
    for (size_t i = 0; i < N / 3; i++) {                    /* from both ends */
        size_t j = i % 2 ? N / 3 + i / 2 : 2 * N / 3 - 1 - i / 2;
        cr_assert_eq(ts_memtable_add(m, ref[j].k, 4, ref[j].v, 4), BT_OK);
    }
    cr_assert_eq(ts_memtable_count(m), N);
    expect_all(m, ref, N);
    ts_memtable_unref(m);
}

Test(memtable, empty_key_and_empty_value)
{
    ts_memtable *m = ts_memtable_new();
    cr_assert_eq(ts_memtable_add(m, (const uint8_t *)"b", 1, NULL, 0), BT_OK);
    cr_assert_eq(ts_memtable_add(m, NULL, 0, (const uint8_t *)"v0", 2), BT_OK);
    cr_assert_eq(ts_memtable_add(m, (const uint8_t *)"\0", 1, (const uint8_t *)"z", 1), BT_OK);
    cr_assert_eq(ts_memtable_add(m, NULL, 0, NULL, 0), BT_EEXIST);
    kv ref[3] = {{.kn = 0, .v = "v0", .vn = 2},
                 {.k = {0}, .kn = 1, .v = "z", .vn = 1},
                 {.k = "b", .kn = 1, .vn = 0}};
    expect_all(m, ref, 3);
    ts_memtable_unref(m);
}

Test(memtable, duplicate_is_rejected)
{
    ts_memtable *m = ts_memtable_new();
    add_ok(m, "a", "1");
    add_ok(m, "c", "3");
    /* Duplicate of the last insert: fails the cached splice, found by search. */
    cr_assert_eq(ts_memtable_add(m, (const uint8_t *)"c", 1, (const uint8_t *)"X", 1), BT_EEXIST);
    add_ok(m, "b", "2");
    /* The splice is now (b, c): a duplicate of its upper bound. */
    cr_assert_eq(ts_memtable_add(m, (const uint8_t *)"c", 1, (const uint8_t *)"X", 1), BT_EEXIST);
    /* Far from the splice: found by search. */
    cr_assert_eq(ts_memtable_add(m, (const uint8_t *)"a", 1, (const uint8_t *)"X", 1), BT_EEXIST);
    /* A prefix and an extension are different keys. */
    add_ok(m, "ab", "4");
    cr_assert_eq(ts_memtable_count(m), 4);
    kv ref[4] = {{.k = "a", .kn = 1, .v = "1", .vn = 1},
                 {.k = "ab", .kn = 2, .v = "4", .vn = 1},
                 {.k = "b", .kn = 1, .v = "2", .vn = 1},
                 {.k = "c", .kn = 1, .v = "3", .vn = 1}};
    expect_all(m, ref, 4);
    ts_memtable_unref(m);
}

Test(memtable, large_values)
{
    enum { BIG = 1 << 20 };
    uint8_t *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++) big[i] = (uint8_t)(i * 31 + 7);
    ts_memtable *m = ts_memtable_new();
    add_ok(m, "small1", "x");
    size_t before = ts_memtable_bytes(m);
    for (int i = 0; i < 3; i++) {
        uint8_t key[] = {'b', 'i', 'g', (uint8_t)('0' + i)};
        big[0] = (uint8_t)i;
        cr_assert_eq(ts_memtable_add(m, key, sizeof(key), big, BIG), BT_OK);
        /* Each lands in a block of its own, sized to fit. */
        size_t grown = ts_memtable_bytes(m) - before;
        cr_assert_geq(grown, (size_t)BIG);
        cr_assert_lt(grown, (size_t)BIG + 512);
        before = ts_memtable_bytes(m);
    }
    /* The shared block is still current: a small entry costs little. */
    add_ok(m, "small2", "y");
    cr_assert_lt(ts_memtable_bytes(m) - before, 256u);

    sst_iter *it = ts_memtable_iter(m);
    sst_iter_seek(it, (const uint8_t *)"big", 3);
    for (int i = 0; i < 3; i++, sst_iter_next(it)) {
        size_t vn;
        const uint8_t *v = sst_iter_value(it, &vn);
        cr_assert_eq(vn, (size_t)BIG);
        big[0] = (uint8_t)i;
        cr_assert(memcmp(v, big, BIG) == 0);
    }
    sst_iter_destroy(it);
    ts_memtable_unref(m);
    free(big);
}

Test(memtable, bytes_and_count_grow)
{
    ts_memtable *m = ts_memtable_new();
    size_t bytes = ts_memtable_bytes(m);
    cr_assert_gt(bytes, 0u);
    uint64_t s = 5;
    for (uint64_t i = 0; i < 20000; i++) {
        uint8_t k[16];
        for (int j = 0; j < 8; j++) k[j] = (uint8_t)rnd(&s);
        memcpy(k + 8, &i, 8); /* unique */
        cr_assert_eq(ts_memtable_add(m, k, sizeof(k), k, 10), BT_OK);
        cr_assert_eq(ts_memtable_count(m), i + 1);
        size_t now = ts_memtable_bytes(m);
        /* At least the key and value bytes plus one link per entry. */
        cr_assert_geq(now - bytes, 16u + 10u + sizeof(void *));
        bytes = now;
    }
    /* Rejected duplicates cost nothing. */
    uint8_t k0[16] = {0};
    size_t cnt = ts_memtable_count(m);
    add_ok(m, "dupe", "v");
    bytes = ts_memtable_bytes(m);
    cr_assert_eq(ts_memtable_add(m, (const uint8_t *)"dupe", 4, k0, 1), BT_EEXIST);
    cr_assert_eq(ts_memtable_bytes(m), bytes);
    cr_assert_eq(ts_memtable_count(m), cnt + 1);
    ts_memtable_unref(m);
}

Test(memtable, iterator_keeps_memtable_alive)
{
    ts_memtable *m = ts_memtable_new();
    add_ok(m, "k1", "v1");
    add_ok(m, "k2", "v2");
    sst_iter *it1 = ts_memtable_iter(m);
    sst_iter *it2 = ts_memtable_iter(m);
    ts_memtable_ref(m);
    ts_memtable_unref(m);
    ts_memtable_unref(m); /* the owner lets go; the iterators still hold it */
    kv ref[2] = {{.k = "k1", .kn = 2, .v = "v1", .vn = 2}, {.k = "k2", .kn = 2, .v = "v2", .vn = 2}};
    sst_iter_seek_first(it1);
    expect_at(it1, &ref[0]);
    sst_iter_destroy(it1);
    sst_iter_seek(it2, (const uint8_t *)"k15", 3);
    expect_at(it2, &ref[1]);
    sst_iter_next(it2);
    cr_assert_not(sst_iter_valid(it2));
    sst_iter_destroy(it2); /* last reference: frees (ASan checks the rest) */
}

/* ---- concurrency ------------------------------------------------------------- */

/* Key i: 8 pseudo-random bytes (so inserts land all over the list) then i
 * big-endian (so keys are distinct and a reader can tell which one it saw).
 * Value: i little-endian, then the key's first byte. */
#define CN 200000
#define CKN 12
#define CVN 5
#define NREADERS 3

static uint8_t ckeys[CN][CKN];
static atomic_uint_fast64_t started;  /* writer: keys [0, started) may be in */
static atomic_bool writer_done;
static atomic_int readers_ready;      /* the writer starts once all readers run */

typedef struct reader_result {
    ts_memtable *m;
    long iterations, seen, errors, final_count;
} reader_result;

static void make_ckeys(void)
{
    uint64_t s = 2024;
    for (uint32_t i = 0; i < CN; i++) {
        uint64_t r = rnd(&s);
        memcpy(ckeys[i], &r, 8);
        ckeys[i][8] = (uint8_t)(i >> 24); ckeys[i][9] = (uint8_t)(i >> 16);
        ckeys[i][10] = (uint8_t)(i >> 8); ckeys[i][11] = (uint8_t)i;
    }
}

static void make_cval(uint32_t i, uint8_t v[CVN])
{
    v[0] = (uint8_t)i; v[1] = (uint8_t)(i >> 8); v[2] = (uint8_t)(i >> 16); v[3] = (uint8_t)(i >> 24);
    v[4] = ckeys[i][0];
}

static void *writer_main(void *arg)
{
    ts_memtable *m = arg;
    long bad = 0;
    while (atomic_load(&readers_ready) < NREADERS) sched_yield();
    for (uint32_t i = 0; i < CN; i++) {
        uint8_t v[CVN];
        make_cval(i, v);
        atomic_store_explicit(&started, i + 1, memory_order_relaxed);
        if (ts_memtable_add(m, ckeys[i], CKN, v, CVN) != BT_OK) bad++;
    }
    atomic_store_explicit(&writer_done, true, memory_order_release);
    return (void *)bad;
}

/* Checks one entry: a key the writer had begun to insert, with its value. */
static bool entry_ok(const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    if (kn != CKN || vn != CVN) return false;
    uint32_t i = (uint32_t)k[8] << 24 | (uint32_t)k[9] << 16 | (uint32_t)k[10] << 8 | k[11];
    /* Seeing the node happens after the writer stored started > i. */
    if (i >= CN || i >= atomic_load_explicit(&started, memory_order_relaxed)) return false;
    uint8_t want[CVN];
    make_cval(i, want);
    return memcmp(k, ckeys[i], CKN) == 0 && memcmp(v, want, CVN) == 0;
}

/* One full scan; returns the number of entries, counting problems in r. */
static long scan(sst_iter *it, reader_result *r)
{
    uint8_t prev[CKN];
    long n = 0;
    for (sst_iter_seek_first(it); sst_iter_valid(it); sst_iter_next(it), n++) {
        size_t kn, vn;
        const uint8_t *k = sst_iter_key(it, &kn);
        const uint8_t *v = sst_iter_value(it, &vn);
        if (!entry_ok(k, kn, v, vn)) r->errors++;
        else if (n > 0 && memcmp(prev, k, CKN) >= 0) r->errors++;
        if (kn == CKN) memcpy(prev, k, CKN);
    }
    return n;
}

static void *reader_main(void *arg)
{
    reader_result *r = arg;
    sst_iter *it = ts_memtable_iter(r->m);
    long last_count = 0;
    atomic_fetch_add(&readers_ready, 1);
    do {
        long n = scan(it, r);
        /* A later scan sees at least what an earlier one did. */
        if (n < last_count) r->errors++;
        last_count = n;
        r->seen += n;
        r->iterations++;
        if (ts_memtable_count(r->m) > CN) r->errors++;
    } while (!atomic_load_explicit(&writer_done, memory_order_acquire));
    r->final_count = scan(it, r);
    sst_iter_destroy(it);
    return NULL;
}

Test(memtable, one_writer_three_readers, .timeout = 600)
{
    make_ckeys();
    ts_memtable *m = ts_memtable_new();
    reader_result res[NREADERS] = {0};
    pthread_t readers[NREADERS], writer;
    for (int i = 0; i < NREADERS; i++) {
        res[i].m = m;
        cr_assert_eq(pthread_create(&readers[i], NULL, reader_main, &res[i]), 0);
    }
    cr_assert_eq(pthread_create(&writer, NULL, writer_main, m), 0);
    void *bad;
    pthread_join(writer, &bad);
    cr_assert_null(bad, "writer: %ld inserts failed", (long)(intptr_t)bad);
    for (int i = 0; i < NREADERS; i++) {
        pthread_join(readers[i], NULL);
        cr_assert_eq(res[i].errors, 0, "reader %d: %ld errors", i, res[i].errors);
        cr_assert_geq(res[i].iterations, 1);
        cr_assert_eq(res[i].final_count, CN, "reader %d: final scan saw %ld", i,
                     res[i].final_count);
    }
    cr_assert_eq(ts_memtable_count(m), CN);

    /* Full contents, in order, after the writer is done. */
    static kv ref[CN];
    for (uint32_t i = 0; i < CN; i++) {
        memcpy(ref[i].k, ckeys[i], CKN);
        ref[i].kn = CKN;
        make_cval(i, ref[i].v);
        ref[i].vn = CVN;
    }
    qsort(ref, CN, sizeof(*ref), kv_cmp);
    expect_all(m, ref, CN);
    ts_memtable_unref(m);
}

/* The hint filter never forgets a noted hash and rejects most others. */
Test(memtable, hint_filter_no_false_negatives)
{
    ts_memtable *m = ts_memtable_new();
    cr_assert_not_null(m);
    uint64_t x = 12345;
    for (int i = 0; i < 100000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        ts_memtable_note_hash(m, x);
    }
    x = 12345;
    for (int i = 0; i < 100000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        cr_assert(ts_memtable_may_contain_hash(m, x), "noted hash %d forgotten", i);
    }
    int fp = 0;
    for (int i = 0; i < 100000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        fp += ts_memtable_may_contain_hash(m, x);
    }
    cr_assert_lt(fp, 5000, "false positive rate %.2f%% at 100k hashes", fp / 1000.0);
    cr_assert_lt(ts_memtable_bytes(m), 4096u, "the fixed filter is not counted as data");
    ts_memtable_unref(m);
}

/* tests/unit/test_merge.c: the empty and merging iterators (sstable/iter.h).
 *
 * Children are array iterators over sorted (key, value) pairs defined here;
 * one can be told to fail with BT_ECORRUPT when it reaches a given position.
 * Merged output is checked against a reference: every pair of every child,
 * sorted by (key bytewise, child index, position in child).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "sstable/iter.h"

#define MAX_KEY 6

typedef struct kv {
    uint8_t key[MAX_KEY];
    size_t kn;
    char val[32];
    int child, pos;
} kv;

/* ---- array iterator --------------------------------------------------------- */

typedef struct arr_iter {
    sst_iter base;
    const kv *kvs;
    int n;
    int pos;
    int fail_at; /* landing on this position is an error; -1 = never */
    int status;
    int *destroyed;
} arr_iter;

/* Puts the iterator at pos, turning it into an error if pos is poisoned. */
static void arr_land(arr_iter *a, int pos)
{
    a->pos = pos;
    a->status = (a->fail_at >= 0 && pos == a->fail_at) ? BT_ECORRUPT : BT_OK;
}

static bool arr_valid(sst_iter *it)
{
    arr_iter *a = (arr_iter *)it;
    return a->status == BT_OK && a->pos < a->n;
}

static void arr_seek_first(sst_iter *it) { arr_land((arr_iter *)it, 0); }

static void arr_seek(sst_iter *it, const uint8_t *t, size_t tn)
{
    arr_iter *a = (arr_iter *)it;
    int lo = 0, hi = a->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (sst_key_cmp(a->kvs[mid].key, a->kvs[mid].kn, t, tn) < 0) lo = mid + 1;
        else hi = mid;
    }
    arr_land(a, lo);
}

static void arr_next(sst_iter *it)
{
    arr_iter *a = (arr_iter *)it;
    cr_assert(arr_valid(it), "next() on an invalid child");
    arr_land(a, a->pos + 1);
}

static const uint8_t *arr_key(sst_iter *it, size_t *n)
{
    arr_iter *a = (arr_iter *)it;
    cr_assert(arr_valid(it), "key() on an invalid child");
    *n = a->kvs[a->pos].kn;
    return a->kvs[a->pos].key;
}

static const uint8_t *arr_value(sst_iter *it, size_t *n)
{
    arr_iter *a = (arr_iter *)it;
    cr_assert(arr_valid(it), "value() on an invalid child");
    *n = strlen(a->kvs[a->pos].val);
    return (const uint8_t *)a->kvs[a->pos].val;
}

static int arr_status(sst_iter *it) { return ((arr_iter *)it)->status; }

static void arr_destroy(sst_iter *it)
{
    arr_iter *a = (arr_iter *)it;
    if (a->destroyed) (*a->destroyed)++;
    free(a);
}

static const struct sst_iter_ops arr_ops = {
    .valid = arr_valid, .seek_first = arr_seek_first, .seek = arr_seek,
    .next = arr_next, .key = arr_key, .value = arr_value,
    .status = arr_status, .destroy = arr_destroy,
};

static sst_iter *arr_new(const kv *kvs, int n, int fail_at, int *destroyed)
{
    arr_iter *a = malloc(sizeof *a);
    cr_assert_not_null(a);
    *a = (arr_iter){ .base.ops = &arr_ops, .kvs = kvs, .n = n, .pos = n,
                     .fail_at = fail_at, .status = BT_OK, .destroyed = destroyed };
    return &a->base;
}

/* ---- data generation and reference ------------------------------------------ */

static int kv_cmp_key(const void *x, const void *y)
{
    const kv *a = x, *b = y;
    return sst_key_cmp(a->key, a->kn, b->key, b->kn);
}

static int kv_cmp_ref(const void *x, const void *y)
{
    const kv *a = x, *b = y;
    int c = kv_cmp_key(a, b);
    if (c) return c;
    if (a->child != b->child) return a->child - b->child;
    return a->pos - b->pos;
}

/* Short keys over a tiny alphabet that includes 0x00 and 0xff, so children
 * overlap heavily and prefixes and high bytes get exercised. */
static void random_key(uint8_t *k, size_t *kn, unsigned *seed)
{
    static const uint8_t alpha[] = { 0x00, 'a', 'b', 'c', 0xff };
    *kn = 1 + (size_t)(rand_r(seed) % 4);
    for (size_t i = 0; i < *kn; i++) k[i] = alpha[rand_r(seed) % sizeof alpha];
}

/* Fills a child with min..max random keys, sorted and made distinct (which
 * may drop a few below min); returns the count. */
static int make_child(kv *out, int min, int max, int child, unsigned *seed)
{
    int n = min + (max > min ? rand_r(seed) % (max - min + 1) : 0);
    for (int i = 0; i < n; i++) random_key(out[i].key, &out[i].kn, seed);
    qsort(out, (size_t)n, sizeof *out, kv_cmp_key);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (m == 0 || kv_cmp_key(&out[m - 1], &out[i]) != 0) out[m++] = out[i];
    for (int i = 0; i < m; i++) {
        out[i].child = child;
        out[i].pos = i;
        snprintf(out[i].val, sizeof out[i].val, "c%d:p%d", child, i);
    }
    return m;
}

#define MAX_CHILDREN 8
#define MAX_PER_CHILD 200

typedef struct fixture {
    kv data[MAX_CHILDREN][MAX_PER_CHILD];
    int counts[MAX_CHILDREN];
    kv ref[MAX_CHILDREN * MAX_PER_CHILD];
    int nref;
    int nchildren;
    int destroyed;
} fixture;

static fixture fx;

/* Random children (some may be empty) plus the sorted reference. */
static void setup_data(int nchildren, int min_per_child, int max_per_child, unsigned seed)
{
    memset(&fx, 0, sizeof fx);
    fx.nchildren = nchildren;
    for (int c = 0; c < nchildren; c++) {
        fx.counts[c] = make_child(fx.data[c], min_per_child, max_per_child, c, &seed);
        memcpy(&fx.ref[fx.nref], fx.data[c], (size_t)fx.counts[c] * sizeof(kv));
        fx.nref += fx.counts[c];
    }
    qsort(fx.ref, (size_t)fx.nref, sizeof(kv), kv_cmp_ref);
}

/* fail_child < 0 means no child fails. */
static sst_iter *build_merge(int fail_child, int fail_at)
{
    sst_iter *kids[MAX_CHILDREN];
    for (int c = 0; c < fx.nchildren; c++)
        kids[c] = arr_new(fx.data[c], fx.counts[c], c == fail_child ? fail_at : -1, &fx.destroyed);
    sst_iter *m = sst_iter_new_merging(kids, fx.nchildren);
    cr_assert_not_null(m);
    return m;
}

/* Checks that it yields ref[from..] to the end and then stops with OK. */
static void expect_rest(sst_iter *it, int from)
{
    for (int i = from; i < fx.nref; i++) {
        cr_assert(sst_iter_valid(it), "ended early at %d of %d", i, fx.nref);
        size_t kn, vn;
        const uint8_t *k = sst_iter_key(it, &kn);
        const uint8_t *v = sst_iter_value(it, &vn);
        cr_assert_eq(sst_key_cmp(k, kn, fx.ref[i].key, fx.ref[i].kn), 0, "key mismatch at %d", i);
        cr_assert_eq(vn, strlen(fx.ref[i].val));
        cr_assert_eq(memcmp(v, fx.ref[i].val, vn), 0, "value at %d: want %s", i, fx.ref[i].val);
        sst_iter_next(it);
    }
    cr_assert_not(sst_iter_valid(it), "yielded more than the reference");
    cr_assert_eq(sst_iter_status(it), BT_OK);
}

/* Index of the first reference entry >= target. */
static int ref_lower_bound(const uint8_t *t, size_t tn)
{
    int i = 0;
    while (i < fx.nref && sst_key_cmp(fx.ref[i].key, fx.ref[i].kn, t, tn) < 0) i++;
    return i;
}

static void check_merge(int nchildren, int max_per_child, unsigned seed)
{
    setup_data(nchildren, 0, max_per_child, seed);
    sst_iter *it = build_merge(-1, -1);
    cr_assert_not(sst_iter_valid(it), "unpositioned iterator must be invalid");
    sst_iter_seek_first(it);
    expect_rest(it, 0);

    for (int s = 0; s < 50; s++) {
        uint8_t t[MAX_KEY];
        size_t tn;
        random_key(t, &tn, &seed);
        if (s == 0) tn = 0; /* the empty key is before everything */
        sst_iter_seek(it, t, tn);
        expect_rest(it, ref_lower_bound(t, tn));
    }
    sst_iter_seek_first(it); /* seeking back after reaching the end */
    expect_rest(it, 0);
    sst_iter_destroy(it);
    cr_assert_eq(fx.destroyed, nchildren, "every child destroyed once");
}

/* ---- tests ------------------------------------------------------------------ */

Test(merge, zero_children)
{
    sst_iter *it = sst_iter_new_merging(NULL, 0);
    cr_assert_not_null(it);
    sst_iter_seek_first(it);
    cr_assert_not(sst_iter_valid(it));
    sst_iter_seek(it, (const uint8_t *)"a", 1);
    cr_assert_not(sst_iter_valid(it));
    cr_assert_eq(sst_iter_status(it), BT_OK);
    sst_iter_destroy(it);
}

Test(merge, one_child)
{
    for (unsigned seed = 1; seed <= 10; seed++) check_merge(1, MAX_PER_CHILD, seed);
}

Test(merge, two_children)
{
    for (unsigned seed = 1; seed <= 20; seed++) check_merge(2, MAX_PER_CHILD, seed);
}

Test(merge, seven_children)
{
    for (unsigned seed = 1; seed <= 20; seed++) check_merge(7, MAX_PER_CHILD, seed);
}

Test(merge, tiny_children)
{
    /* Many children of 0..3 keys: lots of empty and quickly exhausted ones. */
    for (unsigned seed = 1; seed <= 50; seed++) check_merge(MAX_CHILDREN, 3, seed);
}

Test(merge, all_children_empty)
{
    check_merge(5, 0, 1);
}

Test(merge, equal_keys_lower_child_first)
{
    static const kv a[] = { { "b", 1, "a0", 0, 0 }, { "d", 1, "a1", 0, 1 } };
    static const kv b[] = { { "a", 1, "b0", 1, 0 }, { "b", 1, "b1", 1, 1 }, { "d", 1, "b2", 1, 2 } };
    static const kv c[] = { { "b", 1, "c0", 2, 0 } };
    /* The later child comes first in the array, to show order is by index
     * and not by which child happened to move last. */
    sst_iter *kids[3] = { arr_new(a, 2, -1, NULL), arr_new(b, 3, -1, NULL), arr_new(c, 1, -1, NULL) };
    sst_iter *it = sst_iter_new_merging(kids, 3);
    cr_assert_not_null(it);
    static const char *want[] = { "b0", "a0", "b1", "c0", "a1", "b2" };
    sst_iter_seek_first(it);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_assert(sst_iter_valid(it));
        size_t vn;
        const uint8_t *v = sst_iter_value(it, &vn);
        cr_assert(vn == 2 && memcmp(v, want[i], 2) == 0, "entry %zu: want %s", i, want[i]);
        sst_iter_next(it);
    }
    cr_assert_not(sst_iter_valid(it));
    cr_assert_eq(sst_iter_status(it), BT_OK);
    sst_iter_destroy(it);
}

/* Scans with child `fc` failing at position `fat` and checks the merge yields
 * exactly the entries before that child needed its poisoned position, then
 * stops with the error. */
static void check_error_midway(int nchildren, int fc, int fat, unsigned seed)
{
    setup_data(nchildren, MAX_PER_CHILD / 2, MAX_PER_CHILD, seed);
    cr_assert_gt(fx.counts[fc], fat, "test data too small");
    sst_iter *it = build_merge(fc, fat);
    sst_iter_seek_first(it);

    /* The child is advanced onto `fat` right after its entry fat-1 is
     * consumed, so output stops just after that entry (or at once if 0). */
    int stop = 0;
    while (fat > 0 && !(fx.ref[stop].child == fc && fx.ref[stop].pos == fat - 1)) stop++;
    int yielded = 0;
    for (; sst_iter_valid(it); sst_iter_next(it)) {
        size_t kn;
        const uint8_t *k = sst_iter_key(it, &kn);
        cr_assert_eq(sst_key_cmp(k, kn, fx.ref[yielded].key, fx.ref[yielded].kn), 0);
        yielded++;
    }
    cr_assert_eq(yielded, fat > 0 ? stop + 1 : 0, "output must stop at the failing child");
    cr_assert_eq(sst_iter_status(it), BT_ECORRUPT);
    cr_assert_not(sst_iter_valid(it));

    /* A seek that lands before the poisoned entry starts afresh. */
    if (fat > 0) {
        sst_iter_seek(it, fx.data[fc][0].key, fx.data[fc][0].kn);
        cr_assert(sst_iter_valid(it));
    }
    sst_iter_destroy(it);
}

Test(merge, error_propagation)
{
    for (unsigned seed = 1; seed <= 10; seed++) {
        check_error_midway(2, 0, 5, seed);
        check_error_midway(2, 1, 5, seed);
        check_error_midway(7, 3, 10, seed);
        check_error_midway(7, 6, 1, seed);
        check_error_midway(7, 2, 0, seed);
    }
}

Test(merge, error_on_seek)
{
    setup_data(3, MAX_PER_CHILD / 2, MAX_PER_CHILD, 42);
    cr_assert_gt(fx.counts[1], 20);
    sst_iter *it = build_merge(1, 20);
    /* Seeking straight onto the poisoned entry fails the whole merge even
     * though the other children are fine. */
    sst_iter_seek(it, fx.data[1][20].key, fx.data[1][20].kn);
    cr_assert_not(sst_iter_valid(it));
    cr_assert_eq(sst_iter_status(it), BT_ECORRUPT);
    sst_iter_destroy(it);
    cr_assert_eq(fx.destroyed, 3);
}

Test(merge, error_in_only_child)
{
    static const kv a[] = { { "a", 1, "x", 0, 0 }, { "b", 1, "y", 0, 1 } };
    sst_iter *kids[1] = { arr_new(a, 2, 1, NULL) };
    sst_iter *it = sst_iter_new_merging(kids, 1);
    sst_iter_seek_first(it);
    cr_assert(sst_iter_valid(it));
    sst_iter_next(it);
    cr_assert_not(sst_iter_valid(it));
    cr_assert_eq(sst_iter_status(it), BT_ECORRUPT);
    sst_iter_destroy(it);
}

Test(merge, empty_children_with_error)
{
    /* An empty iterator carrying an error poisons the merge. */
    static const kv a[] = { { "a", 1, "x", 0, 0 } };
    sst_iter *kids[3] = { arr_new(a, 1, -1, NULL), sst_iter_new_empty(BT_EIO),
                          sst_iter_new_empty(BT_OK) };
    cr_assert(kids[1] && kids[2]);
    sst_iter *it = sst_iter_new_merging(kids, 3);
    sst_iter_seek_first(it);
    cr_assert_not(sst_iter_valid(it));
    cr_assert_eq(sst_iter_status(it), BT_EIO);
    sst_iter_destroy(it);
}

Test(empty_iter, ok_status)
{
    sst_iter *it = sst_iter_new_empty(BT_OK);
    cr_assert_not_null(it);
    cr_assert_not(sst_iter_valid(it));
    sst_iter_seek_first(it);
    cr_assert_not(sst_iter_valid(it));
    sst_iter_seek(it, (const uint8_t *)"k", 1);
    cr_assert_not(sst_iter_valid(it));
    cr_assert_eq(sst_iter_status(it), BT_OK);
    sst_iter_destroy(it);
}

Test(empty_iter, error_status)
{
    sst_iter *it = sst_iter_new_empty(BT_ECORRUPT);
    cr_assert_not_null(it);
    sst_iter_seek_first(it);
    cr_assert_not(sst_iter_valid(it));
    cr_assert_eq(sst_iter_status(it), BT_ECORRUPT);
    sst_iter_seek(it, (const uint8_t *)"k", 1);
    cr_assert_eq(sst_iter_status(it), BT_ECORRUPT);
    sst_iter_destroy(it);
}

Test(empty_iter, destroy_null_is_noop)
{
    sst_iter_destroy(NULL);
}

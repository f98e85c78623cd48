/* tests/unit/test_sstable.c: SSTable builder and reader (sstable/table.h),
 * plus the block and bloom layers under them.
 *
 * Data sets are generated from a seed: keys come from a five-letter alphabet
 * (0x00, 0x01, 'a', 'z', 0xff) so they share long prefixes, contain zero
 * bytes and exercise the 0xff edge of separator shortening; values are
 * regenerated from (seed, length) when checked, half compressible, half
 * random, so no copy of the values is kept.
 *
 * The corruption tests flip every bit position class at every byte of a small
 * multi-block table and truncate it at every length; the reader must report
 * BT_ECORRUPT or return exactly the original pairs, never crash (ASan checks
 * the "never read out of bounds" part).
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/env.h"
#include "common/status.h"
#include "sstable/block.h"
#include "sstable/bloom.h"
#include "sstable/cache.h"
#include "sstable/format.h"
#include "sstable/table.h"
#include "testutil.h"

/* ---- fixture: one temp dir per test ------------------------------------------------ */

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/bt-sst-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) { test_rm_rf(dir); }

TestSuite(sstable, .init = setup, .fini = teardown);

static const char *tpath(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

/* ---- data sets ----------------------------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

typedef struct kv {
    uint8_t *k;
    uint32_t kn;
    uint32_t vn;
    uint64_t vseed;
} kv;

typedef struct dataset {
    kv *e;
    size_t n;
    uint8_t *val;        /* scratch for regenerated values */
    size_t maxv;
} dataset;

/* Odd seeds give a compressible value, even ones random bytes. */
static void gen_value(uint8_t *out, uint64_t seed, size_t n)
{
    uint64_t s = seed;
    if (seed & 1) {
        static const char pat[] = "bigtable-c value ";
        for (size_t i = 0; i < n; i++) out[i] = (uint8_t)pat[(i + seed / 2) % (sizeof pat - 1)];
        for (size_t i = 0; i < n; i += 64) out[i] = (uint8_t)rnd(&s);
        return;
    }
    for (size_t i = 0; i < n; i += 8) {
        uint64_t x = rnd(&s);
        memcpy(out + i, &x, n - i < 8 ? n - i : 8);
    }
}

static int kv_cmp(const void *a, const void *b)
{
    const kv *x = a, *y = b;
    return sst_key_cmp(x->k, x->kn, y->k, y->kn);
}

enum { VAL_SMALL, VAL_VARIED };

static size_t pick_vlen(uint64_t *s, int policy)
{
    uint64_t r = rnd(s);
    if (policy == VAL_SMALL) return r % 101;
    if (r % 1000 == 0) return (size_t)(rnd(s) % (100 * 1024 + 1));
    if (r % 100 < 5) return (size_t)(rnd(s) % 4097);
    return (size_t)(rnd(s) % 201);
}

/* n keys of 1..maxk bytes (sorted, distinct); values per policy. */
static dataset make_dataset(size_t n, size_t maxk, int policy, uint64_t seed)
{
    static const uint8_t alpha[5] = {0x00, 0x01, 'a', 'z', 0xff};
    dataset d = {0};
    d.e = calloc(n, sizeof *d.e);
    cr_assert_not_null(d.e);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        kv *e = &d.e[i];
        e->kn = (uint32_t)(1 + rnd(&s) % maxk);
        e->k = malloc(e->kn);
        for (uint32_t j = 0; j < e->kn; j++) e->k[j] = alpha[rnd(&s) % 5];
        e->vn = (uint32_t)pick_vlen(&s, policy);
        e->vseed = rnd(&s);
    }
    if (policy == VAL_VARIED && n > 2) {
        d.e[0].vn = 0;
        d.e[n / 2].vn = 100 * 1024;
    }
    qsort(d.e, n, sizeof *d.e, kv_cmp);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w && kv_cmp(&d.e[w - 1], &d.e[i]) == 0) {
            free(d.e[i].k);
            continue;
        }
        d.e[w++] = d.e[i];
    }
    d.n = w;
    for (size_t i = 0; i < d.n; i++)
        if (d.e[i].vn > d.maxv) d.maxv = d.e[i].vn;
    d.val = malloc(d.maxv + 1);
    return d;
}

static void free_dataset(dataset *d)
{
    for (size_t i = 0; i < d->n; i++) free(d->e[i].k);
    free(d->e);
    free(d->val);
}

static const uint8_t *value_of(dataset *d, size_t i)
{
    gen_value(d->val, d->e[i].vseed, d->e[i].vn);
    return d->val;
}

/* ---- building and checking ------------------------------------------------------------ */

static sst_options opts(size_t block, bool compress, int bloom)
{
    sst_options o;
    sst_options_default(&o);
    o.block_size = block;
    o.compress = compress;
    o.bloom_bits_per_key = bloom;
    return o;
}

static uint64_t build(const char *path, dataset *d, const sst_options *o)
{
    sst_builder *b;
    cr_assert_eq(sst_builder_new(bt_env_posix(), path, o, &b), BT_OK, "%s", bt_errmsg());
    for (size_t i = 0; i < d->n; i++)
        cr_assert_eq(sst_builder_add(b, d->e[i].k, d->e[i].kn, value_of(d, i), d->e[i].vn), BT_OK,
                     "add %zu: %s", i, bt_errmsg());
    cr_assert_eq(sst_builder_entries(b), d->n);
    uint64_t size = 0;
    cr_assert_eq(sst_builder_finish(b, &size), BT_OK, "%s", bt_errmsg());
    return size;
}

static sst_reader *open_ok(const char *path, sst_cache *c)
{
    sst_reader *r;
    cr_assert_eq(sst_reader_open(bt_env_posix(), path, c, &r), BT_OK, "%s", bt_errmsg());
    return r;
}

static bool entry_is(sst_iter *it, dataset *d, size_t i)
{
    size_t kn, vn;
    const uint8_t *k = sst_iter_key(it, &kn), *v = sst_iter_value(it, &vn);
    if (kn != d->e[i].kn || memcmp(k, d->e[i].k, kn)) return false;
    return vn == d->e[i].vn && (vn == 0 || memcmp(v, value_of(d, i), vn) == 0);
}

static void check_scan(sst_reader *r, dataset *d, bool fill)
{
    sst_iter *it = sst_reader_iter(r, fill);
    cr_assert_not_null(it);
    size_t i = 0;
    for (sst_iter_seek_first(it); sst_iter_valid(it); sst_iter_next(it), i++) {
        cr_assert_lt(i, d->n);
        cr_assert(entry_is(it, d, i), "entry %zu differs", i);
    }
    cr_assert_eq(sst_iter_status(it), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(i, d->n);
    sst_iter_destroy(it);
}

/* Seeks to every stride-th key, just past it, before the first and past the last. */
static void check_seeks(sst_reader *r, dataset *d, size_t stride, bool fill)
{
    sst_iter *it = sst_reader_iter(r, fill);
    uint8_t buf[64];
    for (size_t i = 0; i < d->n; i += stride) {
        sst_iter_seek(it, d->e[i].k, d->e[i].kn);
        cr_assert(sst_iter_valid(it), "seek %zu: %s", i, bt_errmsg());
        cr_assert(entry_is(it, d, i), "seek to key %zu", i);
        /* key || 0x00 is the immediate successor of key. */
        memcpy(buf, d->e[i].k, d->e[i].kn);
        buf[d->e[i].kn] = 0;
        sst_iter_seek(it, buf, d->e[i].kn + 1);
        if (i + 1 < d->n) cr_assert(sst_iter_valid(it) && entry_is(it, d, i + 1), "between %zu", i);
        else cr_assert(!sst_iter_valid(it) && sst_iter_status(it) == BT_OK);
    }
    if (d->n) {
        sst_iter_seek(it, (const uint8_t *)"", 0);
        cr_assert(sst_iter_valid(it) && entry_is(it, d, 0));
        kv *last = &d->e[d->n - 1];
        memcpy(buf, last->k, last->kn);
        buf[last->kn] = 0xff;
        sst_iter_seek(it, buf, last->kn + 1);
        cr_assert(!sst_iter_valid(it));
        cr_assert_eq(sst_iter_status(it), BT_OK);
    }
    sst_iter_destroy(it);
}

static void check_props(sst_reader *r, dataset *d, uint64_t size)
{
    const sst_props *p = sst_reader_props(r);
    uint64_t kb = 0, vb = 0;
    for (size_t i = 0; i < d->n; i++) {
        kb += d->e[i].kn;
        vb += d->e[i].vn;
    }
    cr_assert_eq(p->num_entries, d->n);
    cr_assert_eq(p->raw_key_bytes, kb);
    cr_assert_eq(p->raw_value_bytes, vb);
    cr_assert_eq(p->file_size, size);
    cr_assert_leq(p->data_bytes, size);
    cr_assert_eq(p->num_data_blocks == 0, d->n == 0);
    if (d->n) {
        cr_assert_eq(sst_key_cmp(p->smallest, p->smallest_len, d->e[0].k, d->e[0].kn), 0);
        kv *l = &d->e[d->n - 1];
        cr_assert_eq(sst_key_cmp(p->largest, p->largest_len, l->k, l->kn), 0);
    }
}

static void roundtrip(dataset *d, const sst_options *o, size_t stride)
{
    const char *path = tpath("t.sst");
    uint64_t size = build(path, d, o);
    sst_reader *r = open_ok(path, NULL);
    check_props(r, d, size);
    check_scan(r, d, false);
    check_seeks(r, d, stride, false);
    if (o->bloom_bits_per_key)
        for (size_t i = 0; i < d->n; i++)
            cr_assert(sst_reader_may_contain(r, d->e[i].k, d->e[i].kn), "false negative %zu", i);
    sst_reader_unref(r);
}

/* ---- block and bloom layers ----------------------------------------------------------- */

Test(sstable, block_roundtrip)
{
    dataset d = make_dataset(3000, 12, VAL_SMALL, 1);
    int intervals[] = {1, 2, 16, 1000};
    for (int t = 0; t < 4; t++) {
        sst_block_builder bb;
        sst_block_builder_init(&bb, intervals[t]);
        for (size_t i = 0; i < d.n; i++)
            cr_assert_eq(sst_block_builder_add(&bb, d.e[i].k, d.e[i].kn, value_of(&d, i), d.e[i].vn), 0);
        size_t est = sst_block_builder_size(&bb);
        const uint8_t *data;
        size_t n;
        cr_assert_eq(sst_block_builder_finish(&bb, &data, &n), 0);
        cr_assert_eq(n, est);
        sst_iter *it = sst_block_iter_new(data, n);
        size_t i = 0;
        for (sst_iter_seek_first(it); sst_iter_valid(it); sst_iter_next(it), i++)
            cr_assert(entry_is(it, &d, i));
        cr_assert_eq(i, d.n);
        for (i = 0; i < d.n; i += 7) {
            sst_iter_seek(it, d.e[i].k, d.e[i].kn);
            cr_assert(sst_iter_valid(it) && entry_is(it, &d, i));
        }
        sst_iter_destroy(it);
        sst_block_builder_free(&bb);
    }
    free_dataset(&d);
}

Test(sstable, block_empty_and_malformed_framing)
{
    sst_block_builder bb;
    sst_block_builder_init(&bb, 16);
    const uint8_t *data;
    size_t n;
    cr_assert_eq(sst_block_builder_finish(&bb, &data, &n), 0);
    cr_assert_eq(n, 8);
    sst_iter *it = sst_block_iter_new(data, n);
    sst_iter_seek_first(it);
    cr_assert(!sst_iter_valid(it));
    cr_assert_eq(sst_iter_status(it), BT_OK);
    sst_iter_destroy(it);
    sst_block_builder_free(&bb);

    uint8_t bad[12] = {0};
    bt_put_fixed32(bad + 8, 3);            /* 3 restarts cannot fit in 12 bytes */
    it = sst_block_iter_new(bad, sizeof bad);
    sst_iter_seek_first(it);
    cr_assert(!sst_iter_valid(it));
    cr_assert_eq(sst_iter_status(it), BT_ECORRUPT);
    sst_iter_destroy(it);
    it = sst_block_iter_new(bad, 3);
    sst_iter_seek(it, bad, 1);
    cr_assert_eq(sst_iter_status(it), BT_ECORRUPT);
    sst_iter_destroy(it);
}

/* Random mutations of a valid block (no checksum to hide behind): the
 * iterator must stay in bounds and stop with OK or BT_ECORRUPT. */
Test(sstable, block_fuzz)
{
    dataset d = make_dataset(200, 10, VAL_SMALL, 2);
    sst_block_builder bb;
    sst_block_builder_init(&bb, 4);
    for (size_t i = 0; i < d.n; i++)
        sst_block_builder_add(&bb, d.e[i].k, d.e[i].kn, value_of(&d, i), d.e[i].vn);
    const uint8_t *data;
    size_t n;
    sst_block_builder_finish(&bb, &data, &n);
    uint64_t s = 99;
    for (int round = 0; round < 4000; round++) {
        size_t len = round % 10 == 0 ? (size_t)(rnd(&s) % (n + 1)) : n;
        uint8_t *m = malloc(len ? len : 1);   /* exact size so ASan sees overruns */
        memcpy(m, data, len);
        int flips = 1 + (int)(rnd(&s) % 4);
        for (int f = 0; f < flips && len; f++) {
            size_t at = round & 1 ? len - 1 - (size_t)(rnd(&s) % (len < 24 ? len : 24)) : (size_t)(rnd(&s) % len);
            m[at] = (uint8_t)rnd(&s);
        }
        sst_iter *it = sst_block_iter_new(m, len);
        size_t cnt = 0;
        for (sst_iter_seek_first(it); sst_iter_valid(it) && cnt <= n; sst_iter_next(it)) cnt++;
        cr_assert_leq(cnt, n);
        int st = sst_iter_status(it);
        cr_assert(st == BT_OK || st == BT_ECORRUPT);
        for (int q = 0; q < 8; q++) {
            size_t i = (size_t)(rnd(&s) % d.n);
            sst_iter_seek(it, d.e[i].k, d.e[i].kn);
            st = sst_iter_status(it);
            cr_assert(st == BT_OK || st == BT_ECORRUPT);
        }
        sst_iter_destroy(it);
        free(m);
    }
    sst_block_builder_free(&bb);
    free_dataset(&d);
}

Test(sstable, bloom_false_positive_rate)
{
    sst_bloom_builder bb;
    sst_bloom_builder_init(&bb, 10);
    const size_t n = 100000;
    char k[32];
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(k, sizeof k, "key%zu", i);
        cr_assert_eq(sst_bloom_builder_add(&bb, (uint8_t *)k, (size_t)len), 0);
        sst_bloom_builder_add(&bb, (uint8_t *)k, (size_t)len);   /* repeat is skipped */
    }
    cr_assert_eq(bb.n, n);
    bt_buf out = {0};
    cr_assert_eq(sst_bloom_builder_finish(&bb, &out), 0);
    cr_assert_eq(out.len, (n * 10 + 511) / 512 * 64 + 1);  /* whole 64-byte blocks + k */
    sst_bloom f;
    cr_assert_eq(sst_bloom_parse(&f, out.data, out.len), 0);
    cr_assert_eq(f.k, 6);
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(k, sizeof k, "key%zu", i);
        cr_assert(sst_bloom_may_contain(&f, (uint8_t *)k, (size_t)len));
    }
    size_t fp = 0;
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(k, sizeof k, "absent%zu", i);
        fp += sst_bloom_may_contain(&f, (uint8_t *)k, (size_t)len);
    }
    cr_assert_lt(fp, n / 50, "false positive rate %.3f%%", 100.0 * (double)fp / (double)n);
    out.data[out.len - 1] = 0;
    cr_assert_eq(sst_bloom_parse(&f, out.data, out.len), BT_ECORRUPT);
    cr_assert_eq(sst_bloom_k(1), 1);
    cr_assert_eq(sst_bloom_k(64), 30);
    bt_buf_free(&out);
    sst_bloom_builder_free(&bb);
}

/* ---- round trips ------------------------------------------------------------------------ */

static void roundtrip_100k(bool compress, int bloom)
{
    dataset d = make_dataset(100000, 24, VAL_VARIED, 3 + (uint64_t)compress * 2 + (uint64_t)bloom);
    sst_options o = opts(4096, compress, bloom);
    roundtrip(&d, &o, 1);
    free_dataset(&d);
}

Test(sstable, roundtrip_100k_plain) { roundtrip_100k(false, 0); }
Test(sstable, roundtrip_100k_snappy) { roundtrip_100k(true, 0); }
Test(sstable, roundtrip_100k_bloom) { roundtrip_100k(false, 10); }
Test(sstable, roundtrip_100k_snappy_bloom) { roundtrip_100k(true, 10); }

Test(sstable, block_sizes)
{
    dataset d = make_dataset(8000, 24, VAL_VARIED, 7);
    int t = 0;
    for (size_t bs = 256; bs <= 65536; bs *= 2, t++) {
        sst_options o = opts(bs, t & 1, t & 2 ? 10 : 0);
        o.restart_interval = 1 + t % 5 * 4;
        roundtrip(&d, &o, 1);
    }
    free_dataset(&d);
}

Test(sstable, compression_saves_space)
{
    dataset d = make_dataset(5000, 16, VAL_SMALL, 8);
    for (size_t i = 0; i < d.n; i++) d.e[i].vseed |= 1;   /* all compressible */
    sst_options o = opts(4096, false, 0);
    uint64_t raw = build(tpath("raw.sst"), &d, &o);
    o.compress = true;
    uint64_t small = build(tpath("snappy.sst"), &d, &o);
    cr_assert_lt(small, raw - raw / 4, "raw %llu snappy %llu", (unsigned long long)raw,
                 (unsigned long long)small);
    sst_reader *r = open_ok(tpath("snappy.sst"), NULL);
    check_scan(r, &d, false);
    sst_reader_unref(r);
    free_dataset(&d);
}

Test(sstable, empty_table)
{
    dataset d = make_dataset(0, 1, VAL_SMALL, 0);
    sst_options o = opts(4096, true, 10);
    uint64_t size = build(tpath("e.sst"), &d, &o);
    sst_reader *r = open_ok(tpath("e.sst"), NULL);
    check_props(r, &d, size);
    cr_assert_eq(sst_reader_props(r)->smallest_len, 0);
    check_scan(r, &d, true);
    sst_iter *it = sst_reader_iter(r, true);
    sst_iter_seek(it, (const uint8_t *)"a", 1);
    cr_assert(!sst_iter_valid(it));
    cr_assert_eq(sst_iter_status(it), BT_OK);
    sst_iter_destroy(it);
    cr_assert(!sst_reader_may_contain(r, (const uint8_t *)"a", 1));
    bt_buf mid = {0};
    cr_assert_eq(sst_reader_mid_key(r, &mid), BT_ENOTFOUND);
    cr_assert_eq(sst_reader_approx_offset(r, (const uint8_t *)"a", 1), 0);
    sst_reader_unref(r);
    free_dataset(&d);
}

Test(sstable, single_entry)
{
    dataset d = make_dataset(1, 8, VAL_SMALL, 9);
    sst_options o = opts(4096, true, 10);
    roundtrip(&d, &o, 1);
    sst_reader *r = open_ok(tpath("t.sst"), NULL);
    cr_assert_eq(sst_reader_props(r)->num_data_blocks, 1);
    bt_buf mid = {0};
    cr_assert_eq(sst_reader_mid_key(r, &mid), BT_ENOTFOUND);
    sst_reader_unref(r);
    free_dataset(&d);
}

Test(sstable, keys_with_zero_bytes)
{
    static const char *keys[] = {"", "\0", "\0\0", "\0\0\0", "\0\1", "\0\xff", "a",
                                 "a\0", "a\0b", "a\0c", "ab", "\xff", "\xff\0", "\xff\xff"};
    static const size_t lens[] = {0, 1, 2, 3, 2, 2, 1, 2, 3, 3, 2, 1, 2, 2};
    size_t n = sizeof lens / sizeof lens[0];
    sst_builder *b;
    sst_options o = opts(16, true, 10);   /* tiny blocks: separators between zero bytes */
    cr_assert_eq(sst_builder_new(bt_env_posix(), tpath("z.sst"), &o, &b), 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(sst_builder_add(b, (const uint8_t *)keys[i], lens[i], (const uint8_t *)keys[i], lens[i]), 0);
    cr_assert_eq(sst_builder_finish(b, NULL), 0);
    sst_reader *r = open_ok(tpath("z.sst"), NULL);
    sst_iter *it = sst_reader_iter(r, false);
    size_t i = 0;
    for (sst_iter_seek_first(it); sst_iter_valid(it); sst_iter_next(it), i++) {
        size_t kn, vn;
        const uint8_t *k = sst_iter_key(it, &kn), *v = sst_iter_value(it, &vn);
        cr_assert(kn == lens[i] && vn == lens[i] && !memcmp(k, keys[i], kn) && !memcmp(v, keys[i], vn));
    }
    cr_assert_eq(i, n);
    for (i = 0; i < n; i++) {
        sst_iter_seek(it, (const uint8_t *)keys[i], lens[i]);
        size_t kn;
        const uint8_t *k = sst_iter_key(it, &kn);
        cr_assert(sst_iter_valid(it) && kn == lens[i] && !memcmp(k, keys[i], kn), "seek %zu", i);
        cr_assert(sst_reader_may_contain(r, (const uint8_t *)keys[i], lens[i]));
    }
    sst_iter_destroy(it);
    sst_reader_unref(r);
}

Test(sstable, keys_not_increasing)
{
    sst_builder *b;
    sst_options o = opts(4096, true, 10);
    cr_assert_eq(sst_builder_new(bt_env_posix(), tpath("o.sst"), &o, &b), 0);
    cr_assert_eq(sst_builder_add(b, (const uint8_t *)"b", 1, NULL, 0), 0);
    cr_assert_eq(sst_builder_add(b, (const uint8_t *)"b", 1, NULL, 0), BT_EINVAL);
    cr_assert_eq(sst_builder_add(b, (const uint8_t *)"a", 1, NULL, 0), BT_EINVAL);
    cr_assert_eq(sst_builder_add(b, (const uint8_t *)"", 0, NULL, 0), BT_EINVAL);
    /* Sizes are checked before any byte is read. */
    cr_assert_eq(sst_builder_add(b, (const uint8_t *)"c", (size_t)SST_MAX_KEY + 1, NULL, 0), BT_ETOOBIG);
    cr_assert_eq(sst_builder_add(b, (const uint8_t *)"c", 1, (const uint8_t *)"v", (size_t)SST_MAX_VALUE + 1),
                 BT_ETOOBIG);
    /* The rejected pairs leave the builder usable. */
    cr_assert_eq(sst_builder_add(b, (const uint8_t *)"b\0", 2, (const uint8_t *)"v", 1), 0);
    cr_assert_eq(sst_builder_entries(b), 2);
    cr_assert_eq(sst_builder_finish(b, NULL), 0);
    sst_reader *r = open_ok(tpath("o.sst"), NULL);
    cr_assert_eq(sst_reader_props(r)->num_entries, 2);
    sst_reader_unref(r);

    o.block_size = 0;
    cr_assert_eq(sst_builder_new(bt_env_posix(), tpath("x.sst"), &o, &b), BT_EINVAL);
    o = opts(4096, true, -1);
    cr_assert_eq(sst_builder_new(bt_env_posix(), tpath("x.sst"), &o, &b), BT_EINVAL);
    o = opts(4096, true, 10);
    o.restart_interval = 0;
    cr_assert_eq(sst_builder_new(bt_env_posix(), tpath("x.sst"), &o, &b), BT_EINVAL);
}

Test(sstable, props_and_named_props)
{
    dataset d = make_dataset(2000, 16, VAL_SMALL, 10);
    sst_builder *b;
    sst_options o = opts(1024, true, 10);
    cr_assert_eq(sst_builder_new(bt_env_posix(), tpath("p.sst"), &o, &b), 0);
    for (size_t i = 0; i < d.n; i++)
        sst_builder_add(b, d.e[i].k, d.e[i].kn, value_of(&d, i), d.e[i].vn);
    cr_assert_gt(sst_builder_size(b), 0);
    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = 0;
    cr_assert_eq(sst_builder_set_prop(b, longname, 1), BT_EINVAL);
    cr_assert_eq(sst_builder_set_prop(b, "", 1), BT_EINVAL);
    longname[63] = 0;
    cr_assert_eq(sst_builder_set_prop(b, longname, 63), 0);
    cr_assert_eq(sst_builder_set_prop(b, "max_seq", 5), 0);
    cr_assert_eq(sst_builder_set_prop(b, "num_deletions", UINT64_MAX), 0);
    cr_assert_eq(sst_builder_set_prop(b, "max_seq", 123456789012345ull), 0);
    cr_assert_eq(sst_builder_set_prop(b, "a", 0), 0);
    uint64_t est = sst_builder_size(b), size;
    cr_assert_eq(sst_builder_finish(b, &size), 0);
    cr_assert_leq(est, size);
    sst_reader *r = open_ok(tpath("p.sst"), NULL);
    check_props(r, &d, size);
    uint64_t v;
    cr_assert_eq(sst_reader_prop(r, "max_seq", &v), 0);
    cr_assert_eq(v, 123456789012345ull);
    cr_assert_eq(sst_reader_prop(r, "num_deletions", &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(sst_reader_prop(r, "a", &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(sst_reader_prop(r, longname, &v), 0);
    cr_assert_eq(v, 63);
    cr_assert_eq(sst_reader_prop(r, "num_entries", &v), BT_ENOTFOUND);
    cr_assert_eq(sst_reader_prop(r, "max_se", &v), BT_ENOTFOUND);
    const sst_props *p = sst_reader_props(r);
    cr_assert_gt(p->num_data_blocks, 10);
    cr_assert_lt(p->data_bytes, size);
    sst_reader_unref(r);
    free_dataset(&d);
}

/* Filter keyed by "row" = bytes up to the first '/'; keys without one are
 * left out of the filter. */
static size_t row_prefix(const uint8_t *k, size_t n, void *arg)
{
    (void)arg;
    const uint8_t *slash = memchr(k, '/', n);
    return slash ? (size_t)(slash - k) : 0;
}

Test(sstable, filter_prefix)
{
    sst_builder *b;
    sst_options o = opts(4096, true, 10);
    o.filter_prefix = row_prefix;
    cr_assert_eq(sst_builder_new(bt_env_posix(), tpath("f.sst"), &o, &b), 0);
    char k[64];
    const int rows = 20000;
    for (int row = 0; row < rows; row++) {
        for (int col = 0; col < 3; col++) {
            int n = snprintf(k, sizeof k, "row%08d/col%d", row * 2, col);
            cr_assert_eq(sst_builder_add(b, (uint8_t *)k, (size_t)n, (uint8_t *)"v", 1), 0);
        }
        int n = snprintf(k, sizeof k, "row%08d0", row * 2);   /* no '/': unfiltered */
        cr_assert_eq(sst_builder_add(b, (uint8_t *)k, (size_t)n, NULL, 0), 0);
    }
    cr_assert_eq(sst_builder_finish(b, NULL), 0);
    sst_reader *r = open_ok(tpath("f.sst"), NULL);
    int fp = 0;
    for (int row = 0; row < rows; row++) {
        int n = snprintf(k, sizeof k, "row%08d", row * 2);
        cr_assert(sst_reader_may_contain(r, (uint8_t *)k, (size_t)n), "row %d", row);
        n = snprintf(k, sizeof k, "row%08d", row * 2 + 1);
        fp += sst_reader_may_contain(r, (uint8_t *)k, (size_t)n);
    }
    /* 20000 distinct prefixes at 10 bits each: the per-column repeats were
     * skipped, so the false-positive rate is that of 20000 items. */
    cr_assert_lt(fp, rows / 50, "fp %d", fp);
    sst_reader_unref(r);
}

Test(sstable, mid_key_and_approx_offset)
{
    dataset d = make_dataset(20000, 16, VAL_SMALL, 11);
    sst_options o = opts(1024, false, 0);
    build(tpath("m.sst"), &d, &o);
    sst_reader *r = open_ok(tpath("m.sst"), NULL);
    const sst_props *p = sst_reader_props(r);
    bt_buf mid = {0};
    cr_assert_eq(sst_reader_mid_key(r, &mid), 0);
    cr_assert_gt(sst_key_cmp(mid.data, mid.len, p->smallest, p->smallest_len), 0);
    cr_assert_lt(sst_key_cmp(mid.data, mid.len, p->largest, p->largest_len), 0);
    uint64_t at = sst_reader_approx_offset(r, mid.data, mid.len);
    cr_assert(at > p->data_bytes * 2 / 5 && at < p->data_bytes * 3 / 5, "mid at %llu of %llu",
              (unsigned long long)at, (unsigned long long)p->data_bytes);
    /* Roughly half the keys lie below the mid key. */
    size_t below = 0;
    while (below < d.n && sst_key_cmp(d.e[below].k, d.e[below].kn, mid.data, mid.len) <= 0) below++;
    cr_assert(below > d.n * 2 / 5 && below < d.n * 3 / 5);
    uint64_t prev = 0;
    for (size_t i = 0; i < d.n; i += 97) {
        uint64_t off = sst_reader_approx_offset(r, d.e[i].k, d.e[i].kn);
        cr_assert_geq(off, prev);
        cr_assert_lt(off, p->data_bytes);
        prev = off;
    }
    cr_assert_eq(sst_reader_approx_offset(r, (const uint8_t *)"", 0), 0);
    cr_assert_eq(sst_reader_approx_offset(r, (const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 25), p->data_bytes);
    bt_buf_free(&mid);
    sst_reader_unref(r);
    free_dataset(&d);
}

/* ---- block cache --------------------------------------------------------------------------- */

Test(sstable, cache_hits_after_first_read)
{
    dataset d = make_dataset(5000, 16, VAL_SMALL, 12);
    sst_options o = opts(1024, true, 10);
    build(tpath("c.sst"), &d, &o);
    bt_env *fe = bt_env_fault_new(bt_env_posix());
    sst_cache *c = sst_cache_new(64 << 20);
    sst_reader *r;
    cr_assert_eq(sst_reader_open(fe, tpath("c.sst"), c, &r), 0);
    uint64_t nblocks = sst_reader_props(r)->num_data_blocks;

    /* fill_cache = false reads (with readahead: fewer calls than blocks) and
     * caches nothing. */
    uint64_t c0 = bt_env_fault_calls(fe);
    check_scan(r, &d, false);
    cr_assert_gt(bt_env_fault_calls(fe) - c0, 0);
    cr_assert_lt(bt_env_fault_calls(fe) - c0, nblocks);
    cr_assert_eq(sst_cache_usage(c), 0);

    /* The first filling scan reads every block, the next ones none. */
    c0 = bt_env_fault_calls(fe);
    check_scan(r, &d, true);
    cr_assert_gt(bt_env_fault_calls(fe) - c0, 0);
    size_t usage = sst_cache_usage(c);
    cr_assert_gt(usage, sst_reader_props(r)->data_bytes);   /* charge = uncompressed size */
    c0 = bt_env_fault_calls(fe);
    check_scan(r, &d, true);
    check_scan(r, &d, false);                 /* fill_cache = false still uses hits */
    check_seeks(r, &d, 3, false);
    cr_assert_eq(bt_env_fault_calls(fe) - c0, 0);
    cr_assert_eq(sst_cache_usage(c), usage);

    /* A second reader of the same file gets its own cache id. */
    sst_reader *r2;
    cr_assert_eq(sst_reader_open(fe, tpath("c.sst"), c, &r2), 0);
    c0 = bt_env_fault_calls(fe);
    check_scan(r2, &d, true);
    cr_assert_gt(bt_env_fault_calls(fe) - c0, 0);
    cr_assert_eq(sst_cache_usage(c), 2 * usage);

    /* Dropping a reader drops its blocks. */
    sst_reader_unref(r2);
    cr_assert_eq(sst_cache_usage(c), usage);
    sst_reader_unref(r);
    cr_assert_eq(sst_cache_usage(c), 0);
    sst_cache_free(c);
    bt_env_destroy(fe);
    free_dataset(&d);
}

Test(sstable, cache_small_evicts)
{
    dataset d = make_dataset(20000, 16, VAL_VARIED, 13);
    sst_options o = opts(2048, true, 0);
    build(tpath("c.sst"), &d, &o);
    sst_cache *c = sst_cache_new(32 * 1024);
    sst_reader *r = open_ok(tpath("c.sst"), c);
    check_scan(r, &d, true);
    check_seeks(r, &d, 5, true);
    /* An iterator keeps its block pinned even when it is evicted. */
    sst_iter *it = sst_reader_iter(r, true);
    sst_iter_seek_first(it);
    check_scan(r, &d, true);
    cr_assert(entry_is(it, &d, 0));
    sst_iter_next(it);
    cr_assert(entry_is(it, &d, 1));
    sst_iter_destroy(it);
    sst_reader_unref(r);
    cr_assert_eq(sst_cache_usage(c), 0);
    sst_cache_free(c);
    free_dataset(&d);
}

typedef struct worker {
    sst_reader *r;
    dataset *d;
    int errors;
    uint64_t seed;
} worker;

static void *reader_thread(void *arg)
{
    worker *w = arg;
    uint8_t *val = malloc(w->d->maxv + 1);
    sst_iter *it = sst_reader_iter(w->r, w->seed & 1);
    for (int q = 0; q < 3000; q++) {
        size_t i = (size_t)(rnd(&w->seed) % w->d->n);
        kv *e = &w->d->e[i];
        sst_iter_seek(it, e->k, e->kn);
        size_t kn, vn;
        if (!sst_iter_valid(it)) {
            w->errors++;
            continue;
        }
        const uint8_t *k = sst_iter_key(it, &kn), *v = sst_iter_value(it, &vn);
        gen_value(val, e->vseed, e->vn);
        if (kn != e->kn || memcmp(k, e->k, kn) || vn != e->vn || (vn && memcmp(v, val, vn)))
            w->errors++;
    }
    sst_iter_destroy(it);
    sst_reader_unref(w->r);
    free(val);
    return NULL;
}

Test(sstable, concurrent_readers)
{
    dataset d = make_dataset(20000, 16, VAL_SMALL, 14);
    sst_options o = opts(1024, true, 10);
    build(tpath("c.sst"), &d, &o);
    sst_cache *c = sst_cache_new(64 * 1024);
    sst_reader *r = open_ok(tpath("c.sst"), c);
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.r = r, .d = &d, .seed = 100 + (uint64_t)i};
        sst_reader_ref(r);
        pthread_create(&th[i], NULL, reader_thread, &w[i]);
    }
    sst_reader_unref(r);   /* the threads hold the last references */
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(w[i].errors, 0);
    }
    cr_assert_eq(sst_cache_usage(c), 0);
    sst_cache_free(c);
    free_dataset(&d);
}

/* ---- failures while building ------------------------------------------------------------------- */

Test(sstable, abandon_and_write_errors_remove_file)
{
    dataset d = make_dataset(3000, 16, VAL_SMALL, 15);
    sst_options o = opts(1024, true, 10);
    sst_builder *b;
    cr_assert_eq(sst_builder_new(bt_env_posix(), tpath("a.sst"), &o, &b), 0);
    sst_builder_add(b, d.e[0].k, d.e[0].kn, NULL, 0);
    sst_builder_abandon(b);
    cr_assert(!bt_env_exists(bt_env_posix(), tpath("a.sst")));

    bt_env *fe = bt_env_fault_new(bt_env_posix());
    bt_env_fault_set_space(fe, 10000);
    cr_assert_eq(sst_builder_new(fe, tpath("s.sst"), &o, &b), 0);
    for (size_t i = 0; i < d.n; i++)   /* may already fail if a chunk is flushed */
        sst_builder_add(b, d.e[i].k, d.e[i].kn, value_of(&d, i), d.e[i].vn);
    cr_assert_eq(sst_builder_finish(b, NULL), BT_ENOSPC);
    cr_assert(!bt_env_exists(bt_env_posix(), tpath("s.sst")));

    /* A failing sync also loses the file. */
    bt_env_fault_set_space(fe, UINT64_MAX);
    cr_assert_eq(sst_builder_new(fe, tpath("y.sst"), &o, &b), 0);
    sst_builder_add(b, d.e[0].k, d.e[0].kn, NULL, 0);
    bt_env_fault_fail_nth(fe, 2, BT_EIO);   /* the append, then the sync */
    cr_assert_eq(sst_builder_finish(b, NULL), BT_EIO);
    cr_assert(!bt_env_exists(bt_env_posix(), tpath("y.sst")));
    bt_env_destroy(fe);

    sst_reader *r;
    cr_assert_eq(sst_reader_open(bt_env_posix(), tpath("missing.sst"), NULL, &r), BT_ENOTFOUND);
    free_dataset(&d);
}

/* ---- corruption -------------------------------------------------------------------------------- */

/* Opens (expecting success or BT_ECORRUPT) and checks that everything read
 * is exact.  Returns true if the corruption was detected. */
static bool check_damaged(const char *path, dataset *d, sst_cache *c)
{
    sst_reader *r;
    int rc = sst_reader_open(bt_env_posix(), path, c, &r);
    if (rc) {
        cr_assert_eq(rc, BT_ECORRUPT, "open: %s", bt_errmsg());
        cr_assert_not_null(strstr(bt_errmsg(), path), "detail names the path: %s", bt_errmsg());
        return true;
    }
    cr_assert_eq(sst_reader_props(r)->num_entries, d->n);
    for (size_t i = 0; i < d->n; i++) cr_assert(sst_reader_may_contain(r, d->e[i].k, d->e[i].kn));
    bool detected = false;
    sst_iter *it = sst_reader_iter(r, c != NULL);
    size_t i = 0;
    for (sst_iter_seek_first(it); sst_iter_valid(it); sst_iter_next(it), i++)
        cr_assert(i < d->n && entry_is(it, d, i), "scan entry %zu wrong", i);
    if (sst_iter_status(it)) {
        cr_assert_eq(sst_iter_status(it), BT_ECORRUPT);
        cr_assert_not_null(strstr(bt_errmsg(), path));
        detected = true;
    } else {
        cr_assert_eq(i, d->n);
    }
    for (size_t j = 0; j < d->n; j += 13) {
        sst_iter_seek(it, d->e[j].k, d->e[j].kn);
        if (sst_iter_valid(it)) cr_assert(entry_is(it, d, j), "seek %zu wrong", j);
        else cr_assert_eq(sst_iter_status(it), BT_ECORRUPT);
    }
    sst_iter_destroy(it);
    sst_reader_unref(r);
    return detected;
}

static void pwrite_byte(int fd, uint64_t off, uint8_t v)
{
    cr_assert_eq(pwrite(fd, &v, 1, (off_t)off), 1);
}

/* Builds the table, then flips one bit at each chosen offset (restoring it
 * afterwards) and checks the damaged file.  Every byte of the format is under
 * a checksum or is the magic, so every flip must be detected. */
static void flip_bits(const sst_options *o, size_t nkeys, uint64_t stride, uint64_t seed)
{
    dataset d = make_dataset(nkeys, 12, VAL_SMALL, seed);
    const char *path = tpath("x.sst");
    sst_builder *b;
    cr_assert_eq(sst_builder_new(bt_env_posix(), path, o, &b), 0);
    for (size_t i = 0; i < d.n; i++) sst_builder_add(b, d.e[i].k, d.e[i].kn, value_of(&d, i), d.e[i].vn);
    sst_builder_set_prop(b, "max_seq", 77);
    uint64_t size;
    cr_assert_eq(sst_builder_finish(b, &size), 0);
    sst_reader *r = open_ok(path, NULL);
    cr_assert_geq(sst_reader_props(r)->num_data_blocks, 20);
    cr_log_info("corrupting %llu bytes, %llu data blocks, stride %llu", (unsigned long long)size,
                (unsigned long long)sst_reader_props(r)->num_data_blocks, (unsigned long long)stride);
    sst_reader_unref(r);

    uint8_t *orig;
    size_t len;
    cr_assert_eq(bt_env_read_all(bt_env_posix(), path, &orig, &len), 0);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    sst_cache *c = sst_cache_new(1 << 20);
    size_t detected = 0, tried = 0;
    uint64_t s = seed;
    /* Every offset in the last 256 bytes (index tail and footer), then the
     * stride over the whole file. */
    for (uint64_t off = 0; off < size; off += off + 256 >= size ? 1 : stride, tried++) {
        uint8_t bit = (uint8_t)(1u << (stride == 1 ? off % 8 : rnd(&s) % 8));
        pwrite_byte(fd, off, orig[off] ^ bit);
        detected += check_damaged(path, &d, off % 5 == 0 ? c : NULL);
        pwrite_byte(fd, off, orig[off]);
    }
    cr_assert_geq(tried, 2000);
    cr_assert_eq(detected, tried, "%zu of %zu flips detected", detected, tried);
    cr_assert(!check_damaged(path, &d, NULL));
    close(fd);
    sst_cache_free(c);
    free(orig);
    free_dataset(&d);
}

Test(sstable, corruption_every_byte, .timeout = 120)
{
    sst_options o = opts(256, true, 10);
    o.restart_interval = 4;
    flip_bits(&o, 300, 1, 16);
}

/* Larger raw blocks, no filter block: a different footer and layout. */
Test(sstable, corruption_stride_no_filter, .timeout = 120)
{
    sst_options o = opts(2048, false, 0);
    flip_bits(&o, 1500, 37, 19);
}

Test(sstable, truncated_files)
{
    dataset d = make_dataset(500, 12, VAL_SMALL, 17);
    sst_options o = opts(512, true, 10);
    const char *path = tpath("t.sst");
    uint64_t size = build(path, &d, &o);
    for (uint64_t n = size; n-- > 0;) {
        cr_assert_eq(truncate(path, (off_t)n), 0);
        sst_reader *r;
        int rc = sst_reader_open(bt_env_posix(), path, NULL, &r);
        cr_assert_eq(rc, BT_ECORRUPT, "length %llu: rc %d", (unsigned long long)n, rc);
    }
    free_dataset(&d);
}

/* Rewrites the block at [off, off+size) with a new trailer so only the
 * block's own parser can notice what is wrong with it. */
static void reseal(uint8_t *file, uint64_t off, size_t size, uint8_t type)
{
    file[off + size] = type;
    bt_put_fixed64(file + off + size + 1, XXH3_64bits(file + off, size + 1));
}

/* Overwrites in place: same length, and no truncate, which on ext4 would
 * force a writeback on every close. */
static void write_file(const char *path, const uint8_t *data, size_t n)
{
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, data, n, 0), (ssize_t)n);
    close(fd);
}

/* Checksum-valid garbage: the block layer alone must keep the reader safe. */
Test(sstable, resealed_garbage_blocks)
{
    dataset d = make_dataset(200, 12, VAL_SMALL, 18);
    sst_options o = opts(1 << 20, false, 0);   /* one raw data block at offset 0 */
    const char *path = tpath("g.sst");
    build(path, &d, &o);
    sst_reader *r = open_ok(path, NULL);
    size_t bsize = (size_t)(sst_reader_props(r)->data_bytes - SST_BLOCK_TRAILER);
    sst_reader_unref(r);
    uint8_t *orig, *m;
    size_t len;
    cr_assert_eq(bt_env_read_all(bt_env_posix(), path, &orig, &len), 0);
    m = malloc(len);

    uint8_t bad_types[] = {SST_COMPRESS_SNAPPY, 2, 0x80, 0xff};
    for (size_t t = 0; t < sizeof bad_types; t++) {
        memcpy(m, orig, len);
        reseal(m, 0, bsize, bad_types[t]);
        write_file(path, m, len);
        cr_assert(check_damaged(path, &d, NULL), "type %u", bad_types[t]);
    }
    uint64_t s = 5;
    for (int round = 0; round < 1500; round++) {
        memcpy(m, orig, len);
        int n = 1 + (int)(rnd(&s) % 3);
        for (int i = 0; i < n; i++) {
            size_t at = round & 1 ? bsize - 1 - (size_t)(rnd(&s) % 40) : (size_t)(rnd(&s) % bsize);
            m[at] = (uint8_t)rnd(&s);
        }
        reseal(m, 0, bsize, SST_COMPRESS_NONE);
        write_file(path, m, len);
        cr_assert_eq(sst_reader_open(bt_env_posix(), path, NULL, &r), 0);
        sst_iter *it = sst_reader_iter(r, false);
        size_t cnt = 0;
        for (sst_iter_seek_first(it); sst_iter_valid(it) && cnt <= bsize; sst_iter_next(it)) cnt++;
        cr_assert_leq(cnt, bsize);
        int st = sst_iter_status(it);
        cr_assert(st == BT_OK || st == BT_ECORRUPT);
        sst_iter_seek(it, d.e[d.n / 2].k, d.e[d.n / 2].kn);
        st = sst_iter_status(it);
        cr_assert(st == BT_OK || st == BT_ECORRUPT);
        sst_iter_destroy(it);
        sst_reader_unref(r);
    }
    free(m);
    free(orig);
    free_dataset(&d);
}

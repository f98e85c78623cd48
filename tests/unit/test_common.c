/* tests/unit/test_common.c: the common/ module: integer coding and bt_buf
 * (coding.h), error codes and details (status.h), the POSIX env and the
 * fault-injecting env (env.h).
 *
 * Env tests each get a fresh directory from mkdtemp under /tmp (fixture
 * init) that the fixture fini removes, so a failed assertion leaves nothing
 * behind and tests can run in parallel.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/coding.h"
#include "common/env.h"
#include "common/cli.h"
#include "common/status.h"
#include "testutil.h"

/* ---- fixtures and helpers -------------------------------------------------- */

static char g_dir[64];

static void dir_setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/bt-test-common-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp: %s", strerror(errno));
}

static void dir_teardown(void)
{
    test_rm_rf(g_dir);
}

/* g_dir/name in one of a few rotating buffers, so several can be live at once. */
static const char *at(const char *name)
{
    static char bufs[8][256];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", g_dir, name);
    return b;
}

static void put_file(bt_env *e, const char *path, int mode, const char *s, bool sync)
{
    bt_wfile *f;
    cr_assert_eq(bt_env_open_writable(e, path, mode, &f), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_wfile_append(f, s, strlen(s)), BT_OK, "%s", bt_errmsg());
    if (sync) cr_assert_eq(bt_wfile_sync(f), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_wfile_close(f), BT_OK, "%s", bt_errmsg());
}

static void expect_content(bt_env *e, const char *path, const char *s)
{
    uint8_t *d;
    size_t n;
    cr_assert_eq(bt_env_read_all(e, path, &d, &n), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(n, strlen(s), "%s: %zu bytes, want %zu", path, n, strlen(s));
    cr_assert(memcmp(d, s, n) == 0, "%s: wrong content", path);
    free(d);
}

static void expect_msg_has(const char *needle)
{
    cr_assert(strstr(bt_errmsg(), needle) != NULL, "errmsg \"%s\" lacks \"%s\"", bt_errmsg(), needle);
}

static uint64_t size_of(const char *path)
{
    uint64_t n = 0;
    cr_assert_eq(bt_env_file_size(bt_env_posix(), path, &n), BT_OK, "%s", bt_errmsg());
    return n;
}

/* ---- coding ------------------------------------------------------------------ */

/* Decodes from an exact-size heap copy so ASan catches any read past limit. */
static const uint8_t *decode64(const uint8_t *src, size_t n, uint64_t *v, size_t *used)
{
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, src, n);
    const uint8_t *end = bt_get_varint64(copy, copy + n, v);
    *used = end ? (size_t)(end - copy) : 0;
    free(copy);
    return end;
}

Test(coding, varint32_roundtrip_boundaries)
{
    const uint32_t vals[] = { 0, 1, 127, 128, 255, 16383, 16384, (1u << 21) - 1, 1u << 21,
                              (1u << 28) - 1, 1u << 28, UINT32_MAX };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint8_t buf[BT_MAX_VARINT32];
        uint8_t *end = bt_put_varint32(buf, vals[i]);
        size_t n = (size_t)(end - buf);
        cr_assert_eq((int)n, bt_varint_len(vals[i]));
        cr_assert_leq(n, BT_MAX_VARINT32);
        uint32_t got = 0;
        cr_assert_eq(bt_get_varint32(buf, end, &got), end, "value %u", vals[i]);
        cr_assert_eq(got, vals[i]);
        cr_assert_null(bt_get_varint32(buf, end - 1, &got), "truncated %u", vals[i]);
    }
    uint8_t b[BT_MAX_VARINT32];
    cr_assert_eq(bt_put_varint32(b, 127) - b, 1);
    cr_assert_eq(bt_put_varint32(b, 128) - b, 2);
    cr_assert_eq(bt_put_varint32(b, UINT32_MAX) - b, 5);
}

Test(coding, varint64_roundtrip_boundaries)
{
    const uint64_t vals[] = { 0, 127, 128, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
                              (1ull << 56) - 1, 1ull << 56, (1ull << 63) - 1, 1ull << 63, UINT64_MAX };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint8_t buf[BT_MAX_VARINT64];
        size_t n = (size_t)(bt_put_varint64(buf, vals[i]) - buf);
        cr_assert_eq((int)n, bt_varint_len(vals[i]));
        uint64_t got = 0;
        size_t used;
        cr_assert_not_null(decode64(buf, n, &got, &used), "value %llu", (unsigned long long)vals[i]);
        cr_assert_eq(used, n);
        cr_assert_eq(got, vals[i]);
        for (size_t cut = 0; cut < n; cut++)
            cr_assert_null(decode64(buf, cut, &got, &used), "value %llu cut at %zu",
                           (unsigned long long)vals[i], cut);
    }
    uint8_t b[BT_MAX_VARINT64];
    cr_assert_eq(bt_put_varint64(b, UINT64_MAX) - b, BT_MAX_VARINT64);
}

Test(coding, varint_wire_format)
{
    uint8_t b[BT_MAX_VARINT64];
    bt_put_varint64(b, 300);
    cr_assert_eq(b[0], 0xac);
    cr_assert_eq(b[1], 0x02);
    bt_put_varint64(b, UINT64_MAX);
    for (int i = 0; i < 9; i++) cr_assert_eq(b[i], 0xff);
    cr_assert_eq(b[9], 0x01);
}

Test(coding, varint_overlong_and_overflow)
{
    uint64_t v;
    uint32_t v32;
    size_t used;
    /* 11 bytes: longer than any uint64 encoding. */
    uint8_t eleven[11];
    memset(eleven, 0x80, 10);
    eleven[10] = 0x00;
    cr_assert_null(decode64(eleven, sizeof eleven, &v, &used));
    /* 10 bytes whose last carries bits beyond 64. */
    uint8_t big[10];
    memset(big, 0xff, 9);
    big[9] = 0x02;
    cr_assert_null(decode64(big, sizeof big, &v, &used));
    big[9] = 0x01;
    cr_assert_not_null(decode64(big, sizeof big, &v, &used));
    cr_assert_eq(v, UINT64_MAX);
    /* A varint32 must fit in 32 bits. */
    uint8_t b[BT_MAX_VARINT64];
    uint8_t *end = bt_put_varint64(b, (uint64_t)UINT32_MAX + 1);
    cr_assert_null(bt_get_varint32(b, end, &v32));
    /* Empty input and a dangling continuation byte. */
    cr_assert_null(bt_get_varint64(b, b, &v));
    cr_assert_null(bt_get_varint32(b, b, &v32));
    uint8_t cont[2] = { 0x80, 0x80 };
    cr_assert_null(decode64(cont, sizeof cont, &v, &used));
}

Test(coding, fixed_little_and_big_endian)
{
    uint8_t b[8];
    bt_put_fixed32(b, 0x04030201u);
    for (int i = 0; i < 4; i++) cr_assert_eq(b[i], i + 1);
    cr_assert_eq(bt_get_fixed32(b), 0x04030201u);
    bt_put_fixed64(b, 0x0807060504030201ull);
    for (int i = 0; i < 8; i++) cr_assert_eq(b[i], i + 1);
    cr_assert_eq(bt_get_fixed64(b), 0x0807060504030201ull);
    bt_put_fixed64_be(b, 0x0102030405060708ull);
    for (int i = 0; i < 8; i++) cr_assert_eq(b[i], i + 1);
    cr_assert_eq(bt_get_fixed64_be(b), 0x0102030405060708ull);
    bt_put_fixed64(b, UINT64_MAX);
    cr_assert_eq(bt_get_fixed64(b), UINT64_MAX);
    /* Big-endian bytes sort like the numbers, which is why it exists. */
    const uint64_t ordered[] = { 0, 1, 255, 256, 1ull << 32, UINT64_MAX - 1, UINT64_MAX };
    for (size_t i = 1; i < sizeof ordered / sizeof ordered[0]; i++) {
        uint8_t lo[8], hi[8];
        bt_put_fixed64_be(lo, ordered[i - 1]);
        bt_put_fixed64_be(hi, ordered[i]);
        cr_assert_lt(memcmp(lo, hi, 8), 0);
    }
}

Test(coding, buf_growth)
{
    bt_buf b = { 0 };
    for (unsigned i = 0; i < 10000; i++) {
        uint8_t c = (uint8_t)i;
        cr_assert_eq(bt_buf_append(&b, &c, 1), BT_OK);
        cr_assert_geq(b.cap, b.len);
    }
    cr_assert_eq(b.len, 10000);
    for (unsigned i = 0; i < 10000; i++) cr_assert_eq(b.data[i], (uint8_t)i);
    size_t cap = b.cap;
    cr_assert_eq(bt_buf_reserve(&b, 0), BT_OK);
    cr_assert_eq(b.cap, cap);
    cr_assert_eq(bt_buf_reserve(&b, cap * 3), BT_OK);
    cr_assert_geq(b.cap - b.len, cap * 3);
    cr_assert_eq(b.len, 10000);
    bt_buf_clear(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(bt_buf_append(&b, NULL, 0), BT_OK);
    bt_buf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
}

Test(coding, buf_put_helpers_roundtrip)
{
    bt_buf b = { 0 };
    cr_assert_eq(bt_buf_put_varint64(&b, UINT64_MAX), BT_OK);
    cr_assert_eq(bt_buf_put_fixed32(&b, 0xdeadbeefu), BT_OK);
    cr_assert_eq(bt_buf_put_fixed64(&b, 0x0123456789abcdefull), BT_OK);
    cr_assert_eq(bt_buf_put_lenbytes(&b, "hello", 5), BT_OK);
    cr_assert_eq(bt_buf_put_lenbytes(&b, "", 0), BT_OK);
    const uint8_t *p = b.data, *limit = b.data + b.len;
    uint64_t v;
    p = bt_get_varint64(p, limit, &v);
    cr_assert_not_null(p);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(bt_get_fixed32(p), 0xdeadbeefu);
    cr_assert_eq(bt_get_fixed64(p + 4), 0x0123456789abcdefull);
    p += 12;
    const uint8_t *s;
    size_t n;
    cr_assert_eq(bt_get_lenbytes(&p, limit, &s, &n), 0);
    cr_assert_eq(n, 5);
    cr_assert(memcmp(s, "hello", 5) == 0);
    cr_assert_eq(bt_get_lenbytes(&p, limit, &s, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(p, limit);
    bt_buf_free(&b);
}

Test(coding, lenbytes_truncation)
{
    bt_buf b = { 0 };
    char payload[200];
    memset(payload, 'x', sizeof payload); /* 200 needs a 2-byte length */
    cr_assert_eq(bt_buf_put_lenbytes(&b, payload, sizeof payload), BT_OK);
    cr_assert_eq(b.len, 202);
    for (size_t cut = 0; cut < b.len; cut++) {
        const uint8_t *p = b.data, *s = NULL;
        size_t n = 0;
        cr_assert_eq(bt_get_lenbytes(&p, b.data + cut, &s, &n), -1, "cut at %zu", cut);
        cr_assert_eq(p, b.data, "input pointer moved on failure");
    }
    const uint8_t *p = b.data, *s;
    size_t n;
    cr_assert_eq(bt_get_lenbytes(&p, b.data + b.len, &s, &n), 0);
    cr_assert_eq(n, sizeof payload);
    cr_assert_eq(s, b.data + 2);
    cr_assert_eq(p, b.data + b.len);
    bt_buf_free(&b);
}

/* ---- status ------------------------------------------------------------------ */

static const int all_codes[] = {
    BT_OK, BT_ENOTFOUND, BT_ECORRUPT, BT_EIO, BT_EINVAL, BT_ENOTSERVING, BT_EUNAVAIL,
    BT_ENOSPC, BT_ENOMEM, BT_EEXIST, BT_ETIMEDOUT, BT_ETOOBIG, BT_ECLOSED, BT_EBUSY,
    BT_EFAILED_PRECONDITION,
};
#define NCODES (sizeof all_codes / sizeof all_codes[0])

Test(status, every_code_has_distinct_text_and_name)
{
    for (size_t i = 0; i < NCODES; i++) {
        const char *t = bt_strerror(all_codes[i]), *n = bt_errname(all_codes[i]);
        cr_assert_not_null(t);
        cr_assert_not_null(n);
        cr_assert_str_neq(t, "unknown error", "code %d", all_codes[i]);
        cr_assert_str_neq(n, "UNKNOWN", "code %d", all_codes[i]);
        for (size_t j = 0; j < i; j++) {
            cr_assert_str_neq(t, bt_strerror(all_codes[j]));
            cr_assert_str_neq(n, bt_errname(all_codes[j]));
        }
    }
    cr_assert_str_eq(bt_errname(BT_OK), "OK");
    cr_assert_str_eq(bt_errname(BT_ENOTFOUND), "NOT_FOUND");
    cr_assert_str_eq(bt_errname(BT_ECORRUPT), "CORRUPTION");
    cr_assert_str_eq(bt_strerror(BT_ENOSPC), "no space left on device");
}

Test(status, unknown_codes)
{
    const int unknown[] = { 1, -1, -30000, -30015, INT_MIN, INT_MAX };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        cr_assert_str_eq(bt_strerror(unknown[i]), "unknown error");
        cr_assert_str_eq(bt_errname(unknown[i]), "UNKNOWN");
    }
}

Test(status, err_records_detail)
{
    bt_errclear();
    cr_assert_str_eq(bt_errmsg(), "");
    cr_assert_eq(bt_err(BT_ECORRUPT, "%s: block at %d", "000012.sst", 4096), BT_ECORRUPT);
    cr_assert_str_eq(bt_errmsg(), "000012.sst: block at 4096");
    cr_assert_eq(bt_err(BT_EIO, "second"), BT_EIO);
    cr_assert_str_eq(bt_errmsg(), "second");
    bt_errclear();
    cr_assert_str_eq(bt_errmsg(), "");
}

Test(status, err_long_detail_is_truncated)
{
    char big[4000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    bt_err(BT_EIO, "%s", big);
    size_t n = strlen(bt_errmsg());
    cr_assert_gt(n, 100);
    cr_assert_lt(n, sizeof big - 1);
    cr_assert(strncmp(bt_errmsg(), big, n) == 0);
}

static void *other_thread_err(void *arg)
{
    char *seen = arg;
    snprintf(seen, 64, "%s", bt_errmsg());
    bt_err(BT_EIO, "from the other thread");
    return NULL;
}

Test(status, err_detail_is_per_thread)
{
    bt_err(BT_EIO, "main thread");
    char seen[64] = "unset";
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, other_thread_err, seen), 0);
    pthread_join(t, NULL);
    cr_assert_str_eq(seen, "");
    cr_assert_str_eq(bt_errmsg(), "main thread");
}

Test(status, from_errno_mapping)
{
    cr_assert_eq(bt_from_errno(0), BT_OK);
    cr_assert_eq(bt_from_errno(ENOSPC), BT_ENOSPC);
    cr_assert_eq(bt_from_errno(EDQUOT), BT_ENOSPC);
    cr_assert_eq(bt_from_errno(ENOENT), BT_ENOTFOUND);
    cr_assert_eq(bt_from_errno(ENOMEM), BT_ENOMEM);
    cr_assert_eq(bt_from_errno(EEXIST), BT_EEXIST);
    cr_assert_eq(bt_from_errno(EINVAL), BT_EINVAL);
    cr_assert_eq(bt_from_errno(EIO), BT_EIO);
    cr_assert_eq(bt_from_errno(EACCES), BT_EIO);
    cr_assert_eq(bt_from_errno(ENOTDIR), BT_EIO);
    cr_assert_eq(bt_from_errno(EBADF), BT_EIO);
}

/* ---- posix env ----------------------------------------------------------------- */

TestSuite(posix, .init = dir_setup, .fini = dir_teardown);

Test(posix, write_then_read_at)
{
    bt_env *e = bt_env_posix();
    bt_wfile *w;
    cr_assert_eq(bt_env_open_writable(e, at("f"), BT_ENV_CREATE_TRUNC, &w), BT_OK);
    cr_assert_eq(bt_wfile_append(w, "hello ", 6), BT_OK);
    cr_assert_eq(bt_wfile_append(w, "world", 5), BT_OK);
    cr_assert_eq(bt_wfile_append(w, NULL, 0), BT_OK);
    cr_assert_eq(bt_wfile_sync(w), BT_OK);
    cr_assert_eq(bt_wfile_close(w), BT_OK);
    cr_assert_eq(size_of(at("f")), 11);

    bt_rfile *r;
    char buf[32];
    size_t got;
    cr_assert_eq(bt_env_open_readable(e, at("f"), &r), BT_OK);
    cr_assert_eq(bt_rfile_read_at(r, 0, 11, buf, &got), BT_OK);
    cr_assert_eq(got, 11);
    cr_assert(memcmp(buf, "hello world", 11) == 0);
    cr_assert_eq(bt_rfile_read_at(r, 6, 5, buf, &got), BT_OK);
    cr_assert(got == 5 && memcmp(buf, "world", 5) == 0);
    cr_assert_eq(bt_rfile_read_at(r, 8, sizeof buf, buf, &got), BT_OK);
    cr_assert(got == 3 && memcmp(buf, "rld", 3) == 0, "short only at EOF");
    cr_assert_eq(bt_rfile_read_at(r, 11, 4, buf, &got), BT_OK);
    cr_assert_eq(got, 0);
    cr_assert_eq(bt_rfile_read_at(r, 1000, 4, buf, &got), BT_OK);
    cr_assert_eq(got, 0);
    cr_assert_eq(bt_rfile_close(r), BT_OK);
}

Test(posix, open_modes)
{
    bt_env *e = bt_env_posix();
    bt_wfile *w;
    put_file(e, at("f"), BT_ENV_CREATE_TRUNC, "abc", true);
    put_file(e, at("f"), BT_ENV_APPEND, "de", true);
    expect_content(e, at("f"), "abcde"); /* append continues at the old end */
    put_file(e, at("f"), BT_ENV_CREATE_TRUNC, "x", false);
    expect_content(e, at("f"), "x");
    cr_assert_eq(bt_env_open_writable(e, at("f"), BT_ENV_EXCL, &w), BT_EEXIST);
    expect_msg_has(at("f"));
    put_file(e, at("g"), BT_ENV_EXCL, "new", false);
    expect_content(e, at("g"), "new");
    put_file(e, at("h"), BT_ENV_APPEND, "made", false);
    expect_content(e, at("h"), "made");
    cr_assert_eq(bt_env_open_writable(e, at("i"), 7, &w), BT_EINVAL);
    cr_assert_eq(bt_env_open_writable(e, at("nodir/f"), BT_ENV_CREATE_TRUNC, &w), BT_ENOTFOUND);
    expect_msg_has("open");
    expect_msg_has("nodir/f");
}

Test(posix, large_append_and_read_all)
{
    bt_env *e = bt_env_posix();
    size_t n = 3 * 1024 * 1024 + 17;
    uint8_t *data = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i * 31 + (i >> 11));
    bt_wfile *w;
    cr_assert_eq(bt_env_open_writable(e, at("big"), BT_ENV_CREATE_TRUNC, &w), BT_OK);
    cr_assert_eq(bt_wfile_append(w, data, n), BT_OK);
    cr_assert_eq(bt_wfile_close(w), BT_OK);
    uint8_t *back;
    size_t len;
    cr_assert_eq(bt_env_read_all(e, at("big"), &back, &len), BT_OK);
    cr_assert_eq(len, n);
    cr_assert(memcmp(back, data, n) == 0);
    free(back);
    free(data);
}

Test(posix, open_missing_names_path)
{
    bt_env *e = bt_env_posix();
    bt_rfile *r;
    bt_errclear();
    cr_assert_eq(bt_env_open_readable(e, at("missing"), &r), BT_ENOTFOUND);
    expect_msg_has(at("missing"));
    expect_msg_has("open");
    uint8_t *d;
    size_t n;
    cr_assert_eq(bt_env_read_all(e, at("missing2"), &d, &n), BT_ENOTFOUND);
    expect_msg_has(at("missing2"));
    uint64_t size;
    cr_assert_eq(bt_env_file_size(e, at("missing3"), &size), BT_ENOTFOUND);
    expect_msg_has(at("missing3"));
}

Test(posix, rename_and_remove)
{
    bt_env *e = bt_env_posix();
    put_file(e, at("a"), BT_ENV_CREATE_TRUNC, "new", true);
    put_file(e, at("b"), BT_ENV_CREATE_TRUNC, "old", true);
    cr_assert_eq(bt_env_rename(e, at("a"), at("b")), BT_OK);
    expect_content(e, at("b"), "new");
    cr_assert_not(bt_env_exists(e, at("a")));
    cr_assert_eq(bt_env_rename(e, at("a"), at("c")), BT_ENOTFOUND);
    expect_msg_has("rename");
    expect_msg_has(at("a"));
    cr_assert_eq(bt_env_remove(e, at("b")), BT_OK);
    cr_assert_not(bt_env_exists(e, at("b")));
    cr_assert_eq(bt_env_remove(e, at("b")), BT_ENOTFOUND);
    expect_msg_has("unlink");
    expect_msg_has(at("b"));
}

struct names {
    char seen[8][32];
    int n;
    int stop_after; /* 0 = never stop */
};

static int collect(void *arg, const char *name)
{
    struct names *ns = arg;
    if (ns->n < 8) snprintf(ns->seen[ns->n], sizeof ns->seen[0], "%s", name);
    ns->n++;
    return ns->stop_after && ns->n >= ns->stop_after;
}

static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

Test(posix, list_entries)
{
    bt_env *e = bt_env_posix();
    put_file(e, at("x1"), BT_ENV_CREATE_TRUNC, "1", false);
    put_file(e, at("x2"), BT_ENV_CREATE_TRUNC, "2", false);
    cr_assert_eq(bt_env_mkdir(e, at("sub")), BT_OK);
    struct names ns = { 0 };
    cr_assert_eq(bt_env_list(e, g_dir, collect, &ns), BT_OK);
    cr_assert_eq(ns.n, 3);
    qsort(ns.seen, 3, sizeof ns.seen[0], cmp_str);
    cr_assert_str_eq(ns.seen[0], "sub");
    cr_assert_str_eq(ns.seen[1], "x1");
    cr_assert_str_eq(ns.seen[2], "x2");

    struct names one = { .stop_after = 1 };
    cr_assert_eq(bt_env_list(e, g_dir, collect, &one), BT_OK);
    cr_assert_eq(one.n, 1, "a non-zero return stops the listing");

    struct names none = { 0 };
    cr_assert_eq(bt_env_list(e, at("sub"), collect, &none), BT_OK);
    cr_assert_eq(none.n, 0);
    cr_assert_eq(bt_env_list(e, at("nope"), collect, &none), BT_ENOTFOUND);
    expect_msg_has(at("nope"));
}

Test(posix, mkdir_p)
{
    bt_env *e = bt_env_posix();
    cr_assert_eq(bt_env_mkdir(e, at("a/b/c")), BT_OK);
    cr_assert(bt_env_exists(e, at("a/b/c")));
    cr_assert_eq(bt_env_mkdir(e, at("a/b/c")), BT_OK, "existing is fine");
    cr_assert_eq(bt_env_mkdir(e, at("a//b/./d/")), BT_OK);
    cr_assert(bt_env_exists(e, at("a/b/d")));
    put_file(e, at("a/b/c/deep"), BT_ENV_CREATE_TRUNC, "ok", false);
    put_file(e, at("file"), BT_ENV_CREATE_TRUNC, "x", false);
    cr_assert_eq(bt_env_mkdir(e, at("file")), BT_EEXIST, "a file is not a directory");
    expect_msg_has(at("file"));
    cr_assert_neq(bt_env_mkdir(e, at("file/sub")), BT_OK);
    expect_msg_has("mkdir");
    cr_assert_eq(bt_env_mkdir(e, ""), BT_EINVAL);
}

Test(posix, sync_dir)
{
    bt_env *e = bt_env_posix();
    cr_assert_eq(bt_env_sync_dir(e, g_dir), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_env_sync_dir(e, at("missing")), BT_ENOTFOUND);
    expect_msg_has(at("missing"));
    put_file(e, at("f"), BT_ENV_CREATE_TRUNC, "x", false);
    cr_assert_eq(bt_env_sync_dir(e, at("f")), BT_EIO, "a regular file is not a directory");
    expect_msg_has(at("f"));
}

Test(posix, truncate)
{
    bt_env *e = bt_env_posix();
    put_file(e, at("f"), BT_ENV_CREATE_TRUNC, "abcdef", false);
    cr_assert_eq(bt_env_truncate(e, at("f"), 3), BT_OK);
    expect_content(e, at("f"), "abc");
    cr_assert_eq(bt_env_truncate(e, at("f"), 5), BT_OK);
    cr_assert_eq(size_of(at("f")), 5);
    cr_assert_eq(bt_env_truncate(e, at("missing"), 0), BT_ENOTFOUND);
    expect_msg_has("truncate");
    expect_msg_has(at("missing"));
}

Test(posix, write_atomic_and_read_all)
{
    bt_env *e = bt_env_posix();
    cr_assert_eq(bt_env_write_atomic(e, at("CURRENT"), "v1", 2), BT_OK, "%s", bt_errmsg());
    expect_content(e, at("CURRENT"), "v1");
    cr_assert_eq(bt_env_write_atomic(e, at("CURRENT"), "version2", 8), BT_OK);
    expect_content(e, at("CURRENT"), "version2");
    cr_assert_not(bt_env_exists(e, at("CURRENT.tmp")));
    struct names ns = { 0 };
    cr_assert_eq(bt_env_list(e, g_dir, collect, &ns), BT_OK);
    cr_assert_eq(ns.n, 1);
    cr_assert_str_eq(ns.seen[0], "CURRENT");

    cr_assert_eq(bt_env_write_atomic(e, at("empty"), NULL, 0), BT_OK);
    uint8_t *d = NULL;
    size_t n = 99;
    cr_assert_eq(bt_env_read_all(e, at("empty"), &d, &n), BT_OK);
    cr_assert_eq(n, 0);
    cr_assert_not_null(d);
    free(d);

    cr_assert_eq(bt_env_write_atomic(e, at("nodir/x"), "v", 1), BT_ENOTFOUND);
    expect_msg_has(at("nodir/x.tmp"));
}

Test(posix, write_atomic_relative_path)
{
    /* A bare name's directory is ".", which must be syncable. */
    char cwd[4096];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(g_dir), 0);
    int rc = bt_env_write_atomic(bt_env_posix(), "rel", "r", 1);
    cr_assert_eq(chdir(cwd), 0);
    cr_assert_eq(rc, BT_OK, "%s", bt_errmsg());
    expect_content(bt_env_posix(), at("rel"), "r");
}

Test(posix, exists_keeps_errmsg)
{
    bt_env *e = bt_env_posix();
    put_file(e, at("f"), BT_ENV_CREATE_TRUNC, "", false);
    cr_assert(bt_env_exists(e, at("f")));
    cr_assert(bt_env_exists(e, g_dir));
    bt_err(BT_ECORRUPT, "earlier failure");
    cr_assert_not(bt_env_exists(e, at("nope")));
    cr_assert_str_eq(bt_errmsg(), "earlier failure");
}

Test(posix, enospc_is_reported_as_such)
{
    /* /dev/full fails every write with ENOSPC: a real disk-full error. */
    if (access("/dev/full", W_OK) != 0) cr_skip_test("/dev/full not writable");
    bt_wfile *w;
    cr_assert_eq(bt_env_open_writable(bt_env_posix(), "/dev/full", BT_ENV_APPEND, &w), BT_OK,
                 "%s", bt_errmsg());
    cr_assert_eq(bt_wfile_append(w, "data", 4), BT_ENOSPC, "%s", bt_errmsg());
    expect_msg_has("/dev/full");
    bt_wfile_close(w);
}

Test(posix, destroy_is_noop)
{
    bt_env_destroy(bt_env_posix());
    bt_env_destroy(NULL);
    cr_assert_eq(bt_env_posix(), bt_env_posix());
    put_file(bt_env_posix(), at("still"), BT_ENV_CREATE_TRUNC, "works", false);
}

/* ---- fault env ------------------------------------------------------------------- */

static bt_env *g_fe;

static void fault_setup(void)
{
    dir_setup();
    g_fe = bt_env_fault_new(bt_env_posix());
    cr_assert_not_null(g_fe);
}

static void fault_teardown(void)
{
    bt_env_destroy(g_fe);
    dir_teardown();
}

TestSuite(fault, .init = fault_setup, .fini = fault_teardown);

Test(fault, passes_through)
{
    cr_assert_eq(bt_env_mkdir(g_fe, at("d/e")), BT_OK);
    put_file(g_fe, at("d/e/f"), BT_ENV_CREATE_TRUNC, "through", true);
    expect_content(g_fe, at("d/e/f"), "through");
    expect_content(bt_env_posix(), at("d/e/f"), "through");
    uint64_t n;
    cr_assert_eq(bt_env_file_size(g_fe, at("d/e/f"), &n), BT_OK);
    cr_assert_eq(n, 7);
    struct names ns = { 0 };
    cr_assert_eq(bt_env_list(g_fe, at("d/e"), collect, &ns), BT_OK);
    cr_assert_eq(ns.n, 1);
    bt_rfile *r;
    cr_assert_eq(bt_env_open_readable(g_fe, at("none"), &r), BT_ENOTFOUND);
    expect_msg_has(at("none"));
}

Test(fault, drop_truncates_to_synced_length)
{
    bt_wfile *w;
    cr_assert_eq(bt_env_open_writable(g_fe, at("log"), BT_ENV_CREATE_TRUNC, &w), BT_OK);
    cr_assert_eq(bt_env_sync_dir(g_fe, g_dir), BT_OK);
    cr_assert_eq(bt_wfile_append(w, "abc", 3), BT_OK);
    cr_assert_eq(bt_wfile_sync(w), BT_OK);
    cr_assert_eq(bt_wfile_append(w, "def", 3), BT_OK);
    cr_assert_eq(bt_wfile_close(w), BT_OK);
    put_file(g_fe, at("full"), BT_ENV_CREATE_TRUNC, "all synced", true);
    put_file(g_fe, at("none"), BT_ENV_CREATE_TRUNC, "never synced", false);
    cr_assert_eq(bt_env_sync_dir(g_fe, g_dir), BT_OK);
    expect_content(bt_env_posix(), at("log"), "abcdef");

    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK, "%s", bt_errmsg());
    expect_content(bt_env_posix(), at("log"), "abc");
    expect_content(bt_env_posix(), at("full"), "all synced");
    expect_content(bt_env_posix(), at("none"), "");
}

Test(fault, drop_deletes_entries_not_dir_synced)
{
    put_file(g_fe, at("new"), BT_ENV_CREATE_TRUNC, "data synced, entry not", true);
    cr_assert_eq(bt_env_mkdir(g_fe, at("sub")), BT_OK);
    put_file(g_fe, at("sub/x"), BT_ENV_CREATE_TRUNC, "x", true);
    put_file(g_fe, at("sub/y"), BT_ENV_CREATE_TRUNC, "y", true);
    cr_assert_eq(bt_env_sync_dir(g_fe, g_dir), BT_OK); /* not sub/ */
    put_file(g_fe, at("late"), BT_ENV_CREATE_TRUNC, "after the dir sync", true);
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK, "%s", bt_errmsg());
    expect_content(bt_env_posix(), at("new"), "data synced, entry not");
    cr_assert_not(bt_env_exists(bt_env_posix(), at("sub/x")));
    cr_assert_not(bt_env_exists(bt_env_posix(), at("sub/y")));
    cr_assert_not(bt_env_exists(bt_env_posix(), at("late")));
    cr_assert(bt_env_exists(bt_env_posix(), at("sub")));
}

Test(fault, dir_sync_matches_equivalent_spellings)
{
    cr_assert_eq(bt_env_mkdir(g_fe, at("sub")), BT_OK);
    put_file(g_fe, at("sub//a"), BT_ENV_CREATE_TRUNC, "a", true);
    put_file(g_fe, at("./sub/b"), BT_ENV_CREATE_TRUNC, "b", true);
    char spelled[300];
    snprintf(spelled, sizeof spelled, "%s/./sub/", g_dir);
    cr_assert_eq(bt_env_sync_dir(g_fe, spelled), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK);
    expect_content(bt_env_posix(), at("sub/a"), "a");
    expect_content(bt_env_posix(), at("sub/b"), "b");
}

Test(fault, drop_leaves_untracked_files_alone)
{
    put_file(bt_env_posix(), at("before"), BT_ENV_CREATE_TRUNC, "durable", false);
    put_file(bt_env_posix(), at("other"), BT_ENV_CREATE_TRUNC, "untouched", false);
    put_file(g_fe, at("before"), BT_ENV_APPEND, "+unsynced", false);
    expect_content(g_fe, at("before"), "durable+unsynced");
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK);
    expect_content(bt_env_posix(), at("before"), "durable");
    expect_content(bt_env_posix(), at("other"), "untouched");
}

Test(fault, drop_kills_open_writers)
{
    bt_wfile *w;
    cr_assert_eq(bt_env_open_writable(g_fe, at("f"), BT_ENV_CREATE_TRUNC, &w), BT_OK);
    cr_assert_eq(bt_wfile_append(w, "abc", 3), BT_OK);
    cr_assert_eq(bt_wfile_sync(w), BT_OK);
    cr_assert_eq(bt_env_sync_dir(g_fe, g_dir), BT_OK);
    cr_assert_eq(bt_wfile_append(w, "lost", 4), BT_OK);
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK);

    cr_assert_eq(bt_wfile_append(w, "zombie", 6), BT_EIO);
    expect_msg_has(at("f"));
    cr_assert_eq(bt_wfile_sync(w), BT_EIO);
    cr_assert_eq(bt_wfile_close(w), BT_EIO);
    expect_content(bt_env_posix(), at("f"), "abc");

    /* A writer opened after the crash works, and a second crash applies. */
    put_file(g_fe, at("f"), BT_ENV_APPEND, "def", true);
    expect_content(bt_env_posix(), at("f"), "abcdef");
    put_file(g_fe, at("f"), BT_ENV_APPEND, "ghi", false);
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK);
    expect_content(bt_env_posix(), at("f"), "abcdef");
}

Test(fault, renamed_open_file_keeps_its_tracking)
{
    bt_wfile *w;
    cr_assert_eq(bt_env_open_writable(g_fe, at("a"), BT_ENV_CREATE_TRUNC, &w), BT_OK);
    cr_assert_eq(bt_wfile_append(w, "abc", 3), BT_OK);
    cr_assert_eq(bt_wfile_sync(w), BT_OK);
    cr_assert_eq(bt_env_rename(g_fe, at("a"), at("b")), BT_OK);
    cr_assert_eq(bt_env_sync_dir(g_fe, g_dir), BT_OK);
    cr_assert_eq(bt_wfile_append(w, "def", 3), BT_OK);
    cr_assert_eq(bt_wfile_close(w), BT_OK);
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK);
    expect_content(bt_env_posix(), at("b"), "abc");
    cr_assert_not(bt_env_exists(bt_env_posix(), at("a")));
}

Test(fault, truncate_shrinks_synced_length)
{
    put_file(g_fe, at("f"), BT_ENV_CREATE_TRUNC, "abcdef", true);
    cr_assert_eq(bt_env_sync_dir(g_fe, g_dir), BT_OK);
    cr_assert_eq(bt_env_truncate(g_fe, at("f"), 2), BT_OK);
    put_file(g_fe, at("f"), BT_ENV_APPEND, "XY", false);
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK);
    expect_content(bt_env_posix(), at("f"), "ab");
}

Test(fault, unsynced_rename_restores_replaced_file)
{
    put_file(bt_env_posix(), at("CURRENT"), BT_ENV_CREATE_TRUNC, "old", true);
    put_file(g_fe, at("CURRENT.tmp"), BT_ENV_CREATE_TRUNC, "new", true);
    cr_assert_eq(bt_env_rename(g_fe, at("CURRENT.tmp"), at("CURRENT")), BT_OK);
    expect_content(g_fe, at("CURRENT"), "new");
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK, "%s", bt_errmsg());
    expect_content(bt_env_posix(), at("CURRENT"), "old");
    cr_assert_not(bt_env_exists(bt_env_posix(), at("CURRENT.tmp")));

    /* Two renames before the dir sync: the crash still gives the durable one. */
    put_file(g_fe, at("t1"), BT_ENV_CREATE_TRUNC, "one", true);
    put_file(g_fe, at("t2"), BT_ENV_CREATE_TRUNC, "two", true);
    cr_assert_eq(bt_env_rename(g_fe, at("t1"), at("CURRENT")), BT_OK);
    cr_assert_eq(bt_env_rename(g_fe, at("t2"), at("CURRENT")), BT_OK);
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK, "%s", bt_errmsg());
    expect_content(bt_env_posix(), at("CURRENT"), "old");

    /* With the dir sync the rename sticks. */
    put_file(g_fe, at("t3"), BT_ENV_CREATE_TRUNC, "three", true);
    cr_assert_eq(bt_env_rename(g_fe, at("t3"), at("CURRENT")), BT_OK);
    cr_assert_eq(bt_env_sync_dir(g_fe, g_dir), BT_OK);
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK);
    expect_content(bt_env_posix(), at("CURRENT"), "three");
}

Test(fault, unsynced_rename_to_new_name_disappears)
{
    put_file(g_fe, at("tmp"), BT_ENV_CREATE_TRUNC, "payload", true);
    cr_assert_eq(bt_env_sync_dir(g_fe, g_dir), BT_OK);
    cr_assert_eq(bt_env_rename(g_fe, at("tmp"), at("final")), BT_OK);
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK);
    cr_assert_not(bt_env_exists(bt_env_posix(), at("final")));
}

Test(fault, write_atomic_is_crash_safe)
{
    cr_assert_eq(bt_env_write_atomic(g_fe, at("MANIFEST"), "v1", 2), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK);
    expect_content(bt_env_posix(), at("MANIFEST"), "v1");

    /* Calls of write_atomic: open, append, sync, rename, sync_dir.  Failing the
     * sync_dir leaves the new name in place until the crash undoes it. */
    bt_env_fault_fail_nth(g_fe, 5, BT_EIO);
    cr_assert_eq(bt_env_write_atomic(g_fe, at("MANIFEST"), "v2", 2), BT_EIO);
    expect_msg_has("injected fault");
    expect_content(bt_env_posix(), at("MANIFEST"), "v2");
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK, "%s", bt_errmsg());
    expect_content(bt_env_posix(), at("MANIFEST"), "v1");

    /* Failing the data sync leaves the old file and no temp behind. */
    bt_env_fault_fail_nth(g_fe, 3, BT_EIO);
    cr_assert_eq(bt_env_write_atomic(g_fe, at("MANIFEST"), "v3", 2), BT_EIO);
    expect_msg_has("injected fault");
    expect_content(bt_env_posix(), at("MANIFEST"), "v1");
    cr_assert_not(bt_env_exists(bt_env_posix(), at("MANIFEST.tmp")));
}

/* Eight independent counted calls; returns how many failed and which. */
static int run_script(bt_env *e, const char *sub, bt_wfile *w, bt_rfile *r, int *which)
{
    char p[4][300];
    const char *names[4] = { "g", "h", "h2", "k" };
    for (int i = 0; i < 4; i++) snprintf(p[i], sizeof p[i], "%s/%s/%s", g_dir, sub, names[i]);
    char dir[300], buf[4];
    snprintf(dir, sizeof dir, "%s/%s", g_dir, sub);
    size_t got;
    bt_rfile *r2;
    bt_wfile *w2;
    int rc[8];
    rc[0] = bt_wfile_append(w, "x", 1);
    rc[1] = bt_wfile_sync(w);
    rc[2] = bt_env_sync_dir(e, dir);
    rc[3] = bt_env_truncate(e, p[0], 0);
    rc[4] = bt_env_open_readable(e, p[1], &r2);
    if (rc[4] == BT_OK) bt_rfile_close(r2);
    rc[5] = bt_rfile_read_at(r, 0, sizeof buf, buf, &got);
    rc[6] = bt_env_rename(e, p[1], p[2]);
    rc[7] = bt_env_open_writable(e, p[3], BT_ENV_CREATE_TRUNC, &w2);
    if (rc[7] == BT_OK) bt_wfile_close(w2);
    int failed = 0;
    for (int i = 0; i < 8; i++) {
        if (rc[i] == BT_OK) continue;
        cr_assert_eq(rc[i], BT_EIO, "call %d: %s", i + 1, bt_errname(rc[i]));
        failed++;
        *which = i + 1;
    }
    return failed;
}

Test(fault, fail_nth_fails_exactly_the_nth_call)
{
    for (int n = 1; n <= 8; n++) {
        char sub[16];
        snprintf(sub, sizeof sub, "n%d", n);
        cr_assert_eq(bt_env_mkdir(g_fe, at(sub)), BT_OK);
        char path[300];
        snprintf(path, sizeof path, "%s/%s/g", g_dir, sub);
        put_file(bt_env_posix(), path, BT_ENV_CREATE_TRUNC, "gg", false);
        snprintf(path, sizeof path, "%s/%s/h", g_dir, sub);
        put_file(bt_env_posix(), path, BT_ENV_CREATE_TRUNC, "hh", false);
        bt_rfile *r;
        bt_wfile *w;
        cr_assert_eq(bt_env_open_readable(g_fe, path, &r), BT_OK);
        snprintf(path, sizeof path, "%s/%s/w", g_dir, sub);
        cr_assert_eq(bt_env_open_writable(g_fe, path, BT_ENV_CREATE_TRUNC, &w), BT_OK);

        uint64_t before = bt_env_fault_calls(g_fe);
        bt_env_fault_fail_nth(g_fe, (uint64_t)n, BT_EIO);
        int which = 0;
        cr_assert_eq(run_script(g_fe, sub, w, r, &which), 1, "n=%d", n);
        cr_assert_eq(which, n);
        cr_assert_eq(bt_env_fault_calls(g_fe) - before, 8);
        /* A failed append writes nothing. */
        cr_assert_eq(size_of(path), n == 1 ? 0 : 1, "n=%d", n);
        cr_assert_eq(bt_wfile_close(w), BT_OK);
        cr_assert_eq(bt_rfile_close(r), BT_OK);
    }
}

Test(fault, fail_nth_code_trigger_and_disable)
{
    bt_wfile *w;
    cr_assert_eq(bt_env_open_writable(g_fe, at("f"), BT_ENV_CREATE_TRUNC, &w), BT_OK);
    bt_env_fault_fail_nth(g_fe, 1, BT_ENOSPC);
    bt_errclear();
    cr_assert_eq(bt_wfile_append(w, "a", 1), BT_ENOSPC);
    expect_msg_has("injected fault");
    for (int i = 0; i < 20; i++)
        cr_assert_eq(bt_wfile_append(w, "b", 1), BT_OK, "the trigger fires once");
    bt_env_fault_fail_nth(g_fe, 2, BT_EIO);
    bt_env_fault_fail_nth(g_fe, 0, BT_EIO);
    for (int i = 0; i < 5; i++) cr_assert_eq(bt_wfile_append(w, "c", 1), BT_OK, "0 disables");
    bt_env_fault_fail_nth(g_fe, 1, 0);
    cr_assert_eq(bt_wfile_sync(w), BT_EIO, "a non-error code still fails, as BT_EIO");
    cr_assert_eq(bt_wfile_close(w), BT_OK);
    cr_assert_eq(size_of(at("f")), 25);
}

Test(fault, space_budget)
{
    bt_wfile *w;
    cr_assert_eq(bt_env_open_writable(g_fe, at("f"), BT_ENV_CREATE_TRUNC, &w), BT_OK);
    bt_env_fault_set_space(g_fe, 10);
    cr_assert_eq(bt_wfile_append(w, "123456", 6), BT_OK);
    cr_assert_eq(bt_wfile_append(w, "78901", 5), BT_ENOSPC);
    cr_assert_eq(size_of(at("f")), 6, "the failing append writes nothing");
    cr_assert_eq(bt_wfile_append(w, "7890", 4), BT_OK, "exactly the budget fits");
    cr_assert_eq(bt_wfile_append(w, "x", 1), BT_ENOSPC);
    cr_assert_eq(bt_wfile_append(w, "", 0), BT_OK);
    cr_assert_eq(size_of(at("f")), 10);
    bt_env_fault_set_space(g_fe, UINT64_MAX);
    cr_assert_eq(bt_wfile_append(w, "more", 4), BT_OK);
    cr_assert_eq(bt_wfile_close(w), BT_OK);
    expect_content(bt_env_posix(), at("f"), "1234567890more");
}

Test(fault, controls_ignore_other_envs)
{
    bt_env *p = bt_env_posix();
    cr_assert_eq(bt_env_fault_drop_unsynced(p), BT_EINVAL);
    bt_env_fault_fail_nth(p, 1, BT_EIO);
    bt_env_fault_set_space(p, 0);
    cr_assert_eq(bt_env_fault_calls(p), 0);
    put_file(p, at("f"), BT_ENV_CREATE_TRUNC, "unaffected", true);
    cr_assert_null(bt_env_fault_new(NULL));
}

#define NTHREADS 4
#define RECORDS 2000
#define RECLEN 64
#define SYNCED_RECORDS 1500

struct writer_arg {
    bt_env *env;
    char path[300];
    int failures;
};

/* Appends RECORDS records, syncing only after the first SYNCED_RECORDS. */
static void *writer_thread(void *p)
{
    struct writer_arg *a = p;
    bt_wfile *w;
    if (bt_env_open_writable(a->env, a->path, BT_ENV_CREATE_TRUNC, &w) != BT_OK) {
        a->failures++;
        return NULL;
    }
    uint8_t rec[RECLEN];
    for (int i = 0; i < RECORDS; i++) {
        memset(rec, 'a' + (i % 26), sizeof rec);
        if (bt_wfile_append(w, rec, sizeof rec) != BT_OK) a->failures++;
        if (i + 1 == SYNCED_RECORDS && bt_wfile_sync(w) != BT_OK) a->failures++;
    }
    if (bt_wfile_close(w) != BT_OK) a->failures++;
    return NULL;
}

Test(fault, threads_append_to_separate_files)
{
    pthread_t t[NTHREADS];
    struct writer_arg args[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        args[i].env = g_fe;
        args[i].failures = 0;
        snprintf(args[i].path, sizeof args[i].path, "%s/t%d", g_dir, i);
        cr_assert_eq(pthread_create(&t[i], NULL, writer_thread, &args[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < NTHREADS; i++) {
        cr_assert_eq(args[i].failures, 0, "thread %d", i);
        cr_assert_eq(size_of(args[i].path), (uint64_t)RECORDS * RECLEN);
    }
    cr_assert_eq(bt_env_fault_calls(g_fe), (uint64_t)NTHREADS * (1 + RECORDS + 1));
    cr_assert_eq(bt_env_sync_dir(g_fe, g_dir), BT_OK);
    cr_assert_eq(bt_env_fault_drop_unsynced(g_fe), BT_OK);
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(size_of(args[i].path), (uint64_t)SYNCED_RECORDS * RECLEN, "thread %d", i);
}

Test(cli, parse_ulong_bounds_and_garbage)
{
    unsigned long v = 7;
    cr_assert_eq(bt_parse_ulong("42", 0, 100, &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(bt_parse_ulong("0", 0, 100, &v), 0);
    cr_assert_eq(v, 0);
    v = 7;
    cr_assert_eq(bt_parse_ulong("101", 0, 100, &v), -1, "over max");
    cr_assert_eq(bt_parse_ulong("4", 5, 100, &v), -1, "under min");
    cr_assert_eq(bt_parse_ulong("-1", 0, 100, &v), -1, "negative");
    cr_assert_eq(bt_parse_ulong("", 0, 100, &v), -1, "empty");
    cr_assert_eq(bt_parse_ulong(NULL, 0, 100, &v), -1, "NULL");
    cr_assert_eq(bt_parse_ulong("12x", 0, 100, &v), -1, "trailing garbage");
    cr_assert_eq(bt_parse_ulong("99999999999999999999999", 0, ~0ul, &v), -1, "overflow");
    cr_assert_eq(v, 7, "left unchanged on errors");
}

Test(cli, split_name_and_value)
{
    char name[16];
    const char *v = bt_cli_split("--port=7001", name, sizeof name);
    cr_assert_str_eq(name, "--port");
    cr_assert_str_eq(v, "7001");
    cr_assert_null(bt_cli_split("--port", name, sizeof name));
    cr_assert_str_eq(name, "--port");
    v = bt_cli_split("--lock=bt://h:1=x", name, sizeof name);
    cr_assert_str_eq(name, "--lock");
    cr_assert_str_eq(v, "bt://h:1=x", "only the first '=' splits");
    v = bt_cli_split("--empty=", name, sizeof name);
    cr_assert_str_eq(v, "");
    /* a name that does not fit is kept whole (and refused as unknown) */
    cr_assert_null(bt_cli_split("--a-very-long-option-name=1", name, sizeof name));
    cr_assert_eq(strlen(name), sizeof name - 1);
}

Test(coding, base64_vectors_round_trips_and_garbage)
{
    /* RFC 4648 section 10 */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    bt_buf b = {0}, d = {0};
    for (size_t i = 0; i < 7; i++) {
        bt_buf_clear(&b);
        cr_assert_eq(bt_b64_encode(&b, plain[i], strlen(plain[i]), false), BT_OK);
        cr_assert(b.len == strlen(enc[i]) && !memcmp(b.data, enc[i], b.len), "encode \"%s\"", plain[i]);
        cr_assert_eq(bt_b64_decode(enc[i], strlen(enc[i]), &d), 0);
        cr_assert(d.len == strlen(plain[i]) && !memcmp(d.data, plain[i], d.len), "decode %s", enc[i]);
    }
    /* every length, both alphabets, every byte value */
    uint8_t src[300];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(i * 151 + 7);
    for (size_t n = 0; n <= sizeof src; n++) {
        for (int url = 0; url < 2; url++) {
            bt_buf_clear(&b);
            cr_assert_eq(bt_b64_encode(&b, src, n, url), BT_OK);
            for (size_t k = 0; k < b.len; k++)
                cr_assert(url ? (b.data[k] != '+' && b.data[k] != '/' && b.data[k] != '=') : b.data[k] != '-');
            cr_assert_eq(bt_b64_decode((const char *)b.data, b.len, &d), 0);
            cr_assert(d.len == n && !memcmp(d.data, src, n), "round trip of %zu bytes (url %d)", n, url);
        }
    }
    cr_assert_eq(bt_b64_decode("Zm9v!", 5, &d), -1, "bad character");
    cr_assert_eq(bt_b64_decode("Zm9vY", 5, &d), -1, "a lone sixth of a byte");
    bt_buf_free(&b);
    bt_buf_free(&d);
}

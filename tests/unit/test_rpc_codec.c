/* tests/unit/test_rpc_codec.c: the wire codec (common/rpc_codec.h): frame
 * round trips, every truncation point, size caps, forbidden headers, random
 * garbage, the message writer/reader, and a replay of the fuzz corpus.
 *
 * Buffers handed to decoders are exact-size heap copies, so under ASan any
 * read past the end is caught, not just wrong answers.
 *
 * The corpus replay runs tests/fuzz/fuzz_rpc.c itself (included below with its
 * main() compiled out), so `make test` checks every seed with the very
 * properties the fuzzer checks.
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/coding.h"
#include "common/rpc_codec.h"
#include "common/status.h"

#define BT_FUZZ_NO_MAIN
#include "tests/fuzz/fuzz_rpc.c"

/* LeakSanitizer: Criterion's runner (BoxFort's timeout bookkeeping) loses
 * the records of .timeout tests that end while another runs (--jobs 2, as
 * scripts/run-tests.sh runs them), and would fail the binary for a leak that
 * is not ours.  The runner's own allocations are therefore not tracked; the
 * tests run in BoxFort workers (BXFI_MAP set), where leak checking stays on. */
void __lsan_disable(void) __attribute__((weak));

__attribute__((constructor)) static void runner_leaks_are_not_ours(void)
{
    if (!getenv("BXFI_MAP") && __lsan_disable) __lsan_disable();
}

/* ---- helpers ----------------------------------------------------------------- */

/* An exact-size heap copy of [p, p + n) (never NULL, even for n == 0). */
static uint8_t *exact(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    cr_assert_not_null(c);
    if (n) memcpy(c, p, n);
    return c;
}

static void encode(bt_buf *b, uint64_t id, uint16_t method, int32_t status, uint8_t flags,
                   const void *payload, size_t len)
{
    rpc_frame f = {.id = id, .method = method, .status = status, .flags = flags,
                   .payload = payload, .payload_len = len};
    cr_assert_eq(rpc_frame_encode(b, &f, RPC_DEFAULT_MAX_FRAME), BT_OK, "%s", bt_errmsg());
}

/* Decodes [p, p + n) from an exact-size copy; the frame's payload is copied
 * to *payload (malloc'd, caller frees) so the copy can go. */
static int decode(const uint8_t *p, size_t n, size_t cap, rpc_frame *f, size_t *flen,
                  uint8_t **payload)
{
    uint8_t *c = exact(p, n);
    const char *why = NULL;
    int rc = rpc_frame_decode(c, n, cap, f, flen, &why);
    if (rc < 0) cr_assert_not_null(why, "an error must come with a reason");
    if (payload) *payload = NULL;
    if (rc == RPC_DECODE_FRAME) {
        cr_assert(f->payload == c + RPC_HDR_LEN);
        cr_assert_eq(f->payload_len, *flen - RPC_HDR_LEN);
        if (payload) *payload = exact(f->payload, f->payload_len);
    }
    free(c);
    return rc;
}

/* A raw 19-byte header with arbitrary fields. */
static void raw_header(uint8_t h[RPC_HDR_LEN], uint32_t rest, uint64_t id, uint16_t method,
                       int32_t status, uint8_t flags)
{
    bt_put_fixed32(h, rest);
    bt_put_fixed64(h + 4, id);
    memcpy(h + 12, &method, 2);
    bt_put_fixed32(h + 14, (uint32_t)status);
    h[18] = flags;
}

/* ---- frames ---------------------------------------------------------------------- */

Test(rpc_codec, layout_is_byte_exact, .timeout = 10)
{
    bt_buf b = {0};
    encode(&b, 0x0102030405060708ull, 0x0a0b, BT_ENOTFOUND, RPC_FLAG_RESPONSE, "xy", 2);
    const uint8_t want[] = {17, 0, 0, 0,                     /* 15 + 2 */
                            8, 7, 6, 5, 4, 3, 2, 1,          /* id */
                            0x0b, 0x0a,                      /* method */
                            0xcf, 0x8a, 0xff, 0xff,          /* -30001 */
                            0x01, 'x', 'y'};
    cr_assert_eq(b.len, sizeof want);
    cr_assert_arr_eq(b.data, want, sizeof want);
    cr_assert_eq(rpc_frame_size(2), sizeof want);
    bt_buf_free(&b);
}

Test(rpc_codec, round_trips, .timeout = 20)
{
    static const size_t sizes[] = {0, 1, 127, 128, 4096, 1 << 20};
    static const struct { int32_t status; uint8_t flags; } kinds[] = {
        {0, 0}, {0, RPC_FLAG_RESPONSE}, {BT_EUNAVAIL, RPC_FLAG_RESPONSE},
        {0, RPC_FLAG_RESPONSE | RPC_FLAG_MORE}, {INT32_MIN, RPC_FLAG_RESPONSE}};
    uint8_t *payload = malloc(1 << 20);
    for (size_t i = 0; i < (size_t)1 << 20; i++) payload[i] = (uint8_t)(i * 31 + 7);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
            bt_buf b = {0};
            uint64_t id = (uint64_t)s * 1000003u + k;
            encode(&b, id, (uint16_t)(k * 77 + s), kinds[k].status, kinds[k].flags, payload,
                   sizes[s]);
            rpc_frame f;
            size_t flen;
            uint8_t *got;
            cr_assert_eq(decode(b.data, b.len, RPC_DEFAULT_MAX_FRAME, &f, &flen, &got),
                         RPC_DECODE_FRAME);
            cr_assert_eq(flen, b.len);
            cr_assert_eq(f.id, id);
            cr_assert_eq(f.method, (uint16_t)(k * 77 + s));
            cr_assert_eq(f.status, kinds[k].status);
            cr_assert_eq(f.flags, kinds[k].flags);
            cr_assert_eq(f.payload_len, sizes[s]);
            if (sizes[s]) cr_assert_arr_eq(got, payload, sizes[s]);
            free(got);
            bt_buf_free(&b);
        }
    }
    free(payload);
}

Test(rpc_codec, every_truncation_point_needs_more, .timeout = 10)
{
    bt_buf b = {0};
    encode(&b, 42, 7, 0, 0, "payload bytes", 13);
    for (size_t k = 0; k < b.len; k++) {
        rpc_frame f;
        size_t flen;
        cr_assert_eq(decode(b.data, k, RPC_DEFAULT_MAX_FRAME, &f, &flen, NULL),
                     RPC_DECODE_NEED_MORE, "prefix %zu", k);
        cr_assert_eq(flen, k < RPC_LEN_FIELD ? 0 : b.len, "prefix %zu", k);
    }
    bt_buf_free(&b);
}

Test(rpc_codec, pipelined_frames_decode_one_by_one, .timeout = 10)
{
    bt_buf b = {0};
    encode(&b, 1, 10, 0, 0, "a", 1);
    encode(&b, 2, 20, 0, 0, NULL, 0);
    encode(&b, 3, 30, 0, 0, "ccc", 3);
    size_t off = 0;
    for (uint64_t id = 1; id <= 3; id++) {
        rpc_frame f;
        size_t flen;
        uint8_t *got;
        cr_assert_eq(decode(b.data + off, b.len - off, RPC_DEFAULT_MAX_FRAME, &f, &flen, &got),
                     RPC_DECODE_FRAME);
        cr_assert_eq(f.id, id);
        cr_assert_eq(f.method, id * 10);
        free(got);
        off += flen;
    }
    cr_assert_eq(off, b.len);
    bt_buf_free(&b);
}

Test(rpc_codec, oversize_is_refused_from_the_length_field, .timeout = 10)
{
    uint8_t h[RPC_HDR_LEN];
    rpc_frame f;
    size_t flen;
    /* exactly at the default cap: fine (a valid prefix) */
    raw_header(h, (uint32_t)(RPC_DEFAULT_MAX_FRAME - RPC_LEN_FIELD), 1, 1, 0, 0);
    cr_assert_eq(decode(h, sizeof h, RPC_DEFAULT_MAX_FRAME, &f, &flen, NULL),
                 RPC_DECODE_NEED_MORE);
    cr_assert_eq(flen, RPC_DEFAULT_MAX_FRAME);
    /* one byte over: refused with only the 4 length bytes present */
    raw_header(h, (uint32_t)(RPC_DEFAULT_MAX_FRAME - RPC_LEN_FIELD + 1), 1, 1, 0, 0);
    cr_assert_eq(decode(h, RPC_LEN_FIELD, RPC_DEFAULT_MAX_FRAME, &f, &flen, NULL), BT_ETOOBIG);
    raw_header(h, UINT32_MAX, 1, 1, 0, 0);
    cr_assert_eq(decode(h, sizeof h, RPC_DEFAULT_MAX_FRAME, &f, &flen, NULL), BT_ETOOBIG);
    /* a configured cap */
    bt_buf b = {0};
    encode(&b, 1, 1, 0, 0, "0123456789", 10);
    cr_assert_eq(decode(b.data, b.len, RPC_HDR_LEN + 10, &f, &flen, NULL), RPC_DECODE_FRAME);
    cr_assert_eq(decode(b.data, b.len, RPC_HDR_LEN + 9, &f, &flen, NULL), BT_ETOOBIG);
    /* the encoder refuses too */
    rpc_frame big = {.id = 1, .payload = b.data, .payload_len = 10};
    cr_assert_eq(rpc_frame_encode(&b, &big, RPC_HDR_LEN + 9), BT_ETOOBIG);
    cr_assert_eq(b.len, rpc_frame_size(10), "a failed encode leaves the buffer alone");
    bt_buf_free(&b);
}

Test(rpc_codec, cap_limits, .timeout = 10)
{
    cr_assert(rpc_max_frame_valid(RPC_DEFAULT_MAX_FRAME));
    cr_assert(rpc_max_frame_valid(RPC_MIN_MAX_FRAME));
    cr_assert(rpc_max_frame_valid(RPC_MAX_MAX_FRAME));
    cr_assert_not(rpc_max_frame_valid(RPC_MIN_MAX_FRAME - 1));
    cr_assert_not(rpc_max_frame_valid(RPC_MAX_MAX_FRAME + 1));
    cr_assert_eq(RPC_DEFAULT_MAX_FRAME, (size_t)16 * 1024 * 1024 + 19);
}

Test(rpc_codec, length_below_header_is_malformed, .timeout = 10)
{
    uint8_t h[RPC_HDR_LEN];
    rpc_frame f;
    size_t flen;
    for (uint32_t rest = 0; rest < RPC_HDR_REST; rest++) {
        raw_header(h, rest, 1, 1, 0, 0);
        cr_assert_eq(decode(h, RPC_LEN_FIELD, RPC_DEFAULT_MAX_FRAME, &f, &flen, NULL),
                     BT_ECORRUPT, "rest %u", rest);
    }
    raw_header(h, RPC_HDR_REST, 1, 1, 0, 0);
    cr_assert_eq(decode(h, sizeof h, RPC_DEFAULT_MAX_FRAME, &f, &flen, NULL), RPC_DECODE_FRAME);
    cr_assert_eq(f.payload_len, 0);
}

/* Decodes a bare header with these fields. */
static int header_rc(int32_t status, uint8_t flags)
{
    uint8_t h[RPC_HDR_LEN];
    rpc_frame f;
    size_t flen;
    raw_header(h, RPC_HDR_REST, 9, 9, status, flags);
    return decode(h, sizeof h, RPC_DEFAULT_MAX_FRAME, &f, &flen, NULL);
}

Test(rpc_codec, forbidden_flags_and_status, .timeout = 10)
{
    for (int bit = 2; bit < 8; bit++) {
        cr_assert_eq(header_rc(0, (uint8_t)(1u << bit)), BT_ECORRUPT, "bit %d", bit);
        cr_assert_eq(header_rc(0, (uint8_t)(RPC_FLAG_RESPONSE | (1u << bit))), BT_ECORRUPT);
    }
    cr_assert_eq(header_rc(0, RPC_FLAG_MORE), BT_ECORRUPT, "stream flag in a request");
    cr_assert_eq(header_rc(BT_EINVAL, 0), BT_ECORRUPT, "status in a request");
    cr_assert_eq(header_rc(1, RPC_FLAG_RESPONSE), BT_ECORRUPT, "positive status");
    cr_assert_eq(header_rc(BT_EIO, RPC_FLAG_RESPONSE | RPC_FLAG_MORE), BT_ECORRUPT);
    cr_assert_eq(header_rc(0, 0), RPC_DECODE_FRAME);
    cr_assert_eq(header_rc(BT_EIO, RPC_FLAG_RESPONSE), RPC_DECODE_FRAME);
    cr_assert_eq(header_rc(0, RPC_FLAG_RESPONSE | RPC_FLAG_MORE), RPC_DECODE_FRAME);
    /* the encoder refuses to produce them */
    bt_buf b = {0};
    rpc_frame f = {.id = 1, .flags = 0x04};
    cr_assert_eq(rpc_frame_encode(&b, &f, RPC_DEFAULT_MAX_FRAME), BT_EINVAL);
    f = (rpc_frame){.id = 1, .status = BT_EIO};
    cr_assert_eq(rpc_frame_encode(&b, &f, RPC_DEFAULT_MAX_FRAME), BT_EINVAL);
    cr_assert_eq(b.len, 0);
    bt_buf_free(&b);
}

Test(rpc_codec, header_errors_are_reported_before_the_payload, .timeout = 10)
{
    uint8_t h[RPC_HDR_LEN];
    rpc_frame f;
    size_t flen;
    raw_header(h, RPC_HDR_REST + 1000, 1, 1, 0, 0x40);
    cr_assert_eq(decode(h, sizeof h, RPC_DEFAULT_MAX_FRAME, &f, &flen, NULL), BT_ECORRUPT);
    cr_assert_eq(decode(h, sizeof h - 1, RPC_DEFAULT_MAX_FRAME, &f, &flen, NULL),
                 RPC_DECODE_NEED_MORE);
}

Test(rpc_codec, random_garbage_never_crashes, .timeout = 20)
{
    unsigned seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(rand_r(&seed) % 96);
        uint8_t *p = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rand_r(&seed);
        if (n >= 4 && (iter & 1)) bt_put_fixed32(p, (uint32_t)(RPC_HDR_REST + rand_r(&seed) % 80));
        if (n >= RPC_HDR_LEN && (iter & 2)) p[18] &= RPC_FLAGS_KNOWN;
        size_t off = 0;
        for (;;) {
            rpc_frame f;
            size_t flen;
            const char *why;
            int rc = rpc_frame_decode(p + off, n - off, 64, &f, &flen, &why);
            cr_assert(rc == RPC_DECODE_FRAME || rc == RPC_DECODE_NEED_MORE ||
                      rc == BT_ECORRUPT || rc == BT_ETOOBIG);
            if (rc != RPC_DECODE_FRAME) break;
            cr_assert_leq(flen, n - off);
            cr_assert_leq(flen, 64);
            off += flen;
        }
        cr_assert_eq(fuzz_rpc_one(p, n), 0, "iteration %d", iter);
        free(p);
    }
}

/* ---- messages ---------------------------------------------------------------------- */

Test(rpc_msg, round_trip, .timeout = 10)
{
    static const uint64_t ints[] = {0, 1, 127, 128, 16383, 16384, UINT32_MAX, UINT64_MAX};
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        bt_msg_put_varint(&w, ints[i]);
        bt_msg_put_fixed64(&w, ints[i]);
    }
    bt_msg_put_bytes(&w, "\0\1\2", 3);
    bt_msg_put_bytes(&w, NULL, 0);
    bt_msg_put_string(&w, "family:qualifier");
    bt_msg_put_string(&w, "");
    cr_assert_eq(bt_msg_writer_status(&w), BT_OK);

    uint8_t *copy = exact(b.data, b.len);
    bt_msg_reader r;
    bt_msg_reader_init(&r, copy, b.len);
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        uint64_t v, x;
        cr_assert_eq(bt_msg_get_varint(&r, &v), BT_OK);
        cr_assert_eq(bt_msg_get_fixed64(&r, &x), BT_OK);
        cr_assert_eq(v, ints[i]);
        cr_assert_eq(x, ints[i]);
    }
    const uint8_t *p;
    size_t n;
    char *s;
    cr_assert_eq(bt_msg_get_bytes(&r, &p, &n), BT_OK);
    cr_assert_eq(n, 3);
    cr_assert_arr_eq(p, "\0\1\2", 3);
    cr_assert_eq(bt_msg_get_bytes(&r, &p, &n), BT_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(bt_msg_get_string(&r, &s), BT_OK);
    cr_assert_str_eq(s, "family:qualifier");
    free(s);
    cr_assert_eq(bt_msg_get_string(&r, &s), BT_OK);
    cr_assert_str_eq(s, "");
    free(s);
    cr_assert_eq(bt_msg_remaining(&r), 0);
    cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
    free(copy);
    bt_buf_free(&b);
}

/* Reads the schema of the truncation test; returns the first error. */
static int read_schema(bt_msg_reader *r)
{
    uint64_t v;
    const uint8_t *p;
    size_t n;
    char *s = NULL;
    bt_msg_get_varint(r, &v);
    bt_msg_get_bytes(r, &p, &n);
    bt_msg_get_fixed64(r, &v);
    bt_msg_get_string(r, &s);
    free(s);
    bt_msg_get_varint(r, &v);
    return bt_msg_reader_status(r);
}

Test(rpc_msg, every_truncation_is_reported, .timeout = 10)
{
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    bt_msg_put_varint(&w, 1u << 20);
    bt_msg_put_bytes(&w, "some row key", 12);
    bt_msg_put_fixed64(&w, 77);
    bt_msg_put_string(&w, "cf");
    bt_msg_put_varint(&w, 300);
    for (size_t k = 0; k <= b.len; k++) {
        uint8_t *copy = exact(b.data, k);
        bt_msg_reader r;
        bt_msg_reader_init(&r, copy, k);
        int rc = read_schema(&r);
        cr_assert_eq(rc, k == b.len ? BT_OK : BT_ECORRUPT, "prefix %zu", k);
        cr_assert_leq(r.p - r.base, (ptrdiff_t)k);
        if (rc) {
            uint64_t v = 99;
            cr_assert_eq(bt_msg_get_varint(&r, &v), BT_ECORRUPT, "the error sticks");
            cr_assert_eq(v, 0);
            cr_assert_not_null(strstr(bt_errmsg(), "truncated"));
        }
        free(copy);
    }
    bt_buf_free(&b);
}

Test(rpc_msg, malformed_fields, .timeout = 10)
{
    static const uint8_t overlong[11] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t big32[] = {0x80, 0x80, 0x80, 0x80, 0x10}; /* 2^32 */
    static const uint8_t len_past_end[] = {0x7f, 'a', 'b'};
    static const uint8_t nul_string[] = {3, 'a', 0, 'b'};
    bt_msg_reader r;
    uint64_t v;
    uint32_t v32;
    const uint8_t *p;
    size_t n;
    char *s;
    bt_msg_reader_init(&r, overlong, sizeof overlong);
    cr_assert_eq(bt_msg_get_varint(&r, &v), BT_ECORRUPT);
    bt_msg_reader_init(&r, big32, sizeof big32);
    cr_assert_eq(bt_msg_get_varint32(&r, &v32), BT_ECORRUPT);
    bt_msg_reader_init(&r, big32, sizeof big32);
    cr_assert_eq(bt_msg_get_varint(&r, &v), BT_OK);
    cr_assert_eq(v, (uint64_t)1 << 32);
    bt_msg_reader_init(&r, len_past_end, sizeof len_past_end);
    cr_assert_eq(bt_msg_get_bytes(&r, &p, &n), BT_ECORRUPT);
    cr_assert_null(p);
    bt_msg_reader_init(&r, nul_string, sizeof nul_string);
    cr_assert_eq(bt_msg_get_string(&r, &s), BT_ECORRUPT);
    cr_assert_null(s);
    bt_msg_reader_init(&r, NULL, 0);
    cr_assert_eq(bt_msg_get_fixed64(&r, &v), BT_ECORRUPT);
    bt_msg_reader_init(&r, nul_string, sizeof nul_string);
    cr_assert_eq(bt_msg_get_varint(&r, &v), BT_OK);
    cr_assert_eq(bt_msg_reader_status(&r), BT_OK);
    cr_assert_eq(bt_msg_reader_done(&r), BT_ECORRUPT, "trailing bytes");
}

/* ---- fuzz corpus ----------------------------------------------------------------------- */

/* tests/fuzz/corpus/rpc from the working directory (make test runs from the
 * repository root) or relative to the binary (BUILD/tests/test_rpc_codec). */
static const char *corpus_dir(void)
{
    static char path[PATH_MAX];
    struct stat st;
    if (!stat("tests/fuzz/corpus/rpc", &st)) return "tests/fuzz/corpus/rpc";
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return NULL;
    path[n] = '\0';
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(path, '/');
        if (!slash) return NULL;
        *slash = '\0';
    }
    strncat(path, "/tests/fuzz/corpus/rpc", sizeof path - strlen(path) - 1);
    return stat(path, &st) ? NULL : path;
}

Test(rpc_fuzz, corpus_replays_clean, .timeout = 20)
{
    const char *dir = corpus_dir();
    cr_assert_not_null(dir, "tests/fuzz/corpus/rpc not found");
    int count = 0;
    cr_assert_eq(fuzz_rpc_replay(dir, &count), 0, "see stderr for the failing input");
    cr_assert_geq(count, 20, "only %d corpus files", count);
}

/* tests/fuzz/fuzz_rpc.c: fuzz target for the wire codec (common/rpc_codec.h),
 * the code that parses bytes straight off the network.
 *
 * One file, three builds, so the corpus always runs through the same checks:
 *  - `make fuzz` compiles it with clang -fsanitize=fuzzer,address and
 *    -DBT_LIBFUZZER into build-fuzz/fuzz_rpc (LLVMFuzzerTestOneInput);
 *  - compiled plainly it is a replay program (main below) that runs the files
 *    and directories named on its command line, e.g. to reproduce a crash
 *    without clang: `make build/tests/fuzz_rpc_replay` then
 *    `build/tests/fuzz_rpc_replay tests/fuzz/corpus/rpc`;
 *  - tests/unit/test_rpc_codec.c includes it with BT_FUZZ_NO_MAIN and replays
 *    tests/fuzz/corpus/rpc as part of `make test`.
 *
 * An input is a byte stream as a connection would deliver it.  Beyond "does
 * not crash" (and, under ASan, "reads nothing outside the input"), each input
 * is checked for the properties the RPC layer relies on:
 *  - the decoder never reports a frame longer than the bytes it was given, and
 *    a decoded frame re-encodes to exactly the bytes it came from;
 *  - every proper prefix of a frame is NEED_MORE with the same frame length
 *    once the length field is in, and an invalid header fails identically
 *    from its first 19 bytes (so peers are cut off before sending a payload);
 *  - a smaller cap never accepts what the default cap rejects;
 *  - the message reader, walking each payload (and the raw input) with a
 *    field schema drawn from the request id, stays in bounds, keeps its first
 *    error, and the values it read write back and read back equal.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/coding.h"
#include "common/rpc_codec.h"
#include "common/status.h"

/* Up to this many fields are read per message walk. */
#define FUZZ_MAX_FIELDS 32

enum { OP_VARINT, OP_FIXED64, OP_BYTES, OP_STRING };

/* One field as read: the integer or the bytes (pointing into the input). */
struct fuzz_field {
    uint64_t v;
    const uint8_t *p;
    size_t n;
};

static int read_field(bt_msg_reader *r, int op, struct fuzz_field *f)
{
    char *s = NULL;
    int rc;
    switch (op) {
    case OP_VARINT: return bt_msg_get_varint(r, &f->v);
    case OP_FIXED64: return bt_msg_get_fixed64(r, &f->v);
    case OP_BYTES: return bt_msg_get_bytes(r, &f->p, &f->n);
    default:
        rc = bt_msg_get_string(r, &s);
        if (rc == BT_OK) {
            f->n = strlen(s);
            f->p = r->p - f->n; /* the string's bytes end where the reader is */
            if (memcmp(f->p, s, f->n) != 0) rc = -1;
        }
        free(s);
        return rc;
    }
}

static void write_field(bt_msg_writer *w, int op, const struct fuzz_field *f)
{
    if (op == OP_VARINT) bt_msg_put_varint(w, f->v);
    else if (op == OP_FIXED64) bt_msg_put_fixed64(w, f->v);
    else bt_msg_put_bytes(w, f->p, f->n);
}

static int same_field(int op, const struct fuzz_field *a, const struct fuzz_field *b)
{
    if (op == OP_VARINT || op == OP_FIXED64) return a->v == b->v;
    return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

/* Reads fields of schema (2 bits per field) from msg until one fails.
 * Returns how many succeeded, or -1 if a reader invariant broke. */
static int walk_fields(const uint8_t *msg, size_t len, uint64_t schema, struct fuzz_field *out)
{
    bt_msg_reader r;
    bt_msg_reader_init(&r, msg, len);
    int n = 0;
    for (; n < FUZZ_MAX_FIELDS; n++) {
        int op = (int)((schema >> (2 * n)) & 3);
        int rc = read_field(&r, op, &out[n]);
        if (rc == -1 || r.p < r.base || r.p > r.end) return -1;
        if (rc == BT_OK) continue;
        size_t left = bt_msg_remaining(&r);
        struct fuzz_field again;
        if (rc != BT_ECORRUPT || read_field(&r, op, &again) != rc) return -1;
        if (bt_msg_remaining(&r) != left || bt_msg_reader_done(&r) != rc) return -1;
        break;
    }
    return n;
}

/* The message-reader properties for one payload (see the top of the file). */
static int check_message(const uint8_t *msg, size_t len, uint64_t schema)
{
    struct fuzz_field got[FUZZ_MAX_FIELDS], back[FUZZ_MAX_FIELDS];
    int n = walk_fields(msg, len, schema, got);
    if (n < 0) return 10;
    bt_buf buf = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &buf);
    for (int i = 0; i < n; i++) write_field(&w, (int)((schema >> (2 * i)) & 3), &got[i]);
    int bad = bt_msg_writer_status(&w) ? 11 : 0;
    if (!bad && walk_fields(buf.data, buf.len, schema, back) < n) bad = 12;
    for (int i = 0; !bad && i < n; i++)
        if (!same_field((int)((schema >> (2 * i)) & 3), &got[i], &back[i])) bad = 13;
    bt_buf_free(&buf);
    return bad;
}

/* Every proper prefix of a frame (or of an invalid header) must decode as
 * NEED_MORE, or fail exactly like the whole, never as a frame. */
static int check_prefixes(const uint8_t *p, size_t whole, size_t max_frame, int whole_rc,
                          size_t whole_len)
{
    for (size_t k = 0; k < whole; k++) {
        if (k > 64 && k + 64 < whole) k = whole - 64; /* the ends are where the edges are */
        rpc_frame f;
        size_t flen;
        const char *why;
        int rc = rpc_frame_decode(p, k, max_frame, &f, &flen, &why);
        if (rc == RPC_DECODE_FRAME) return 20;
        if (rc < 0 && (rc != whole_rc || k < RPC_LEN_FIELD)) return 21;
        if (rc == RPC_DECODE_NEED_MORE && k >= RPC_LEN_FIELD && flen != whole_len) return 22;
    }
    return 0;
}

/* A decoded frame re-encodes to the very same bytes. */
static int check_reencode(const uint8_t *p, const rpc_frame *f, size_t flen)
{
    bt_buf b = {0};
    int bad = rpc_frame_encode(&b, f, RPC_DEFAULT_MAX_FRAME) ? 30 : 0;
    if (!bad && (b.len != flen || memcmp(b.data, p, flen) != 0)) bad = 31;
    bt_buf_free(&b);
    return bad;
}

/* Decodes one frame at p under both caps; *used is its length (0: stop). */
static int check_one_frame(const uint8_t *p, size_t len, size_t small_cap, size_t *used)
{
    rpc_frame f;
    size_t flen;
    const char *why;
    *used = 0;
    int rc = rpc_frame_decode(p, len, RPC_DEFAULT_MAX_FRAME, &f, &flen, &why);
    if (rc < 0 && !why) return 40;
    if (rc == RPC_DECODE_FRAME && (flen > len || flen < RPC_HDR_LEN)) return 41;
    if (rc == RPC_DECODE_FRAME && f.payload + f.payload_len != p + flen) return 42;
    rpc_frame g;
    size_t glen;
    int src = rpc_frame_decode(p, len, small_cap, &g, &glen, &why);
    if (src == RPC_DECODE_FRAME && rc != RPC_DECODE_FRAME) return 43;
    if (rc < 0) { /* the header alone must fail the same way */
        size_t h = len < RPC_HDR_LEN ? len : RPC_HDR_LEN;
        if (rpc_frame_decode(p, h, RPC_DEFAULT_MAX_FRAME, &g, &glen, &why) != rc) return 44;
        return check_prefixes(p, h, RPC_DEFAULT_MAX_FRAME, rc, flen);
    }
    if (rc != RPC_DECODE_FRAME) return 0;
    int bad = check_prefixes(p, flen, RPC_DEFAULT_MAX_FRAME, rc, flen);
    if (!bad) bad = check_reencode(p, &f, flen);
    if (!bad) bad = check_message(f.payload, f.payload_len, f.id);
    *used = flen;
    return bad;
}

/* Runs every check on one input; 0 if all hold, else a code naming the
 * property that broke (see the checks above). */
static int fuzz_rpc_one(const uint8_t *data, size_t size)
{
    size_t small_cap = RPC_HDR_LEN + size % 64;
    size_t off = 0, used;
    int bad = check_message(data, size, (uint64_t)size * 0x9E3779B97F4A7C15ull);
    for (int frames = 0; !bad && frames < 1000; frames++) {
        bad = check_one_frame(data + off, size - off, small_cap, &used);
        if (!used) break;
        off += used;
    }
    return bad;
}

#ifdef BT_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int bad = fuzz_rpc_one(data, size);
    if (bad) {
        fprintf(stderr, "fuzz_rpc: property %d broken\n", bad);
        abort();
    }
    return 0;
}
#else

/* Runs one file through fuzz_rpc_one.  Returns the property code, or -1 if the
 * file cannot be read. */
static int fuzz_rpc_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    bt_buf b = {0};
    uint8_t chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) bt_buf_append(&b, chunk, n);
    int bad = ferror(f) ? -1 : fuzz_rpc_one(b.data ? b.data : chunk, b.len);
    fclose(f);
    bt_buf_free(&b);
    return bad;
}

/* Replays a file, or every regular file of a directory.  Adds the number of
 * files run to *count; returns 0 or the first failure (as fuzz_rpc_file). */
static int fuzz_rpc_replay(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st)) return -1;
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return fuzz_rpc_file(path);
    }
    DIR *d = opendir(path);
    if (!d) return -1;
    int bad = 0;
    for (struct dirent *e; !bad && (e = readdir(d));) {
        char full[4096];
        if (e->d_name[0] == '.') continue;
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (stat(full, &st) || !S_ISREG(st.st_mode)) continue;
        (*count)++;
        bad = fuzz_rpc_file(full);
        if (bad) fprintf(stderr, "fuzz_rpc: %s: %s %d\n", full,
                         bad < 0 ? "unreadable" : "property broken:", bad);
    }
    closedir(d);
    return bad;
}

#ifndef BT_FUZZ_NO_MAIN
int main(int argc, char **argv)
{
    int count = 0, bad = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc && !bad; i++) bad = fuzz_rpc_replay(argv[i], &count);
    printf("fuzz_rpc_replay: %d inputs, %s\n", count, bad ? "FAILED" : "all properties held");
    return bad ? 1 : 0;
}
#endif
#endif

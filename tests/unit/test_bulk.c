/* tests/unit/test_bulk.c: bulk loads (libbt's bt_bulk_*, client/bt_bulk.c,
 * and the tablet's side, tabletserver/bulk.c) against a cluster of REAL
 * processes (tests/unit/cluster_fixture.h).
 *
 *   load_across_tablets      cells added in random order with duplicates,
 *                            a 1 MiB buffer (so runs spill), two locality
 *                            groups, four tablets on three servers: every
 *                            row once with every cell, the last duplicate
 *                            wins, older and newer writes interleave by
 *                            timestamp, a later delete hides bulk cells;
 *                            still so after a major compaction and after a
 *                            SIGKILL of a server
 *   attach_checks            the attach RPC refuses a name without the load
 *                            id, a bad or repeated name, a file with rows
 *                            outside the tablet or real tags, a missing file
 *                            -- and attaches nothing; a repeated attach is
 *                            answered OK with the same sequence; the load is
 *                            newer than an earlier delete (even compacted
 *                            away) and older than later writes and deletes
 *   load_during_moves        tablets move and split while loads run: every
 *                            row exactly once
 *   abort_attaches_nothing   bt_bulk_abort: no row visible, runs removed
 *   attach_after_move        a tablet moved between writing its files and
 *                            attaching them: attached on its new server
 *   recut_after_split        it split instead: the files are cut again
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdatomic.h>

#include "client/bt_internal.h"
#include "sstable/table.h"
#include "tabletserver/bulk.h"
#include "tabletserver/ikey.h"
#include "tabletserver/ts_proto.h"
#include "tests/unit/cluster_fixture.h"

#define ROWS 20000

static void make_table(const char *name, const char *const *splits, size_t n)
{
    bt_schema *s = bt_schema_new();
    cr_assert_not_null(s);
    CL_OK(bt_schema_add_family(s, "cf", 0, 0));
    CL_OK(bt_schema_add_family(s, "big", 0, 0));
    bt_group_info g = {.name = "blobs", .compress = false, .bloom = BT_BLOOM_NONE};
    CL_OK(bt_schema_set_group(s, &g));
    CL_OK(bt_schema_set_family_group(s, "big", "blobs"));
    bt_key keys[16];
    for (size_t i = 0; i < n; i++) keys[i] = (bt_key){splits[i], strlen(splits[i])};
    CL_OK(bt_create_table(C.client, name, s, keys, n));
    bt_schema_free(s);
}

static void row_key(size_t i, char *out, size_t cap)
{
    /* spread over the alphabet so every tablet gets rows */
    snprintf(out, cap, "%c%07zu", 'a' + (int)(i % 26), i);
}

/* Adds ROWS rows x (cf:a, cf:b, big:blob) in a shuffled order, cf:a twice
 * (the second value must win). */
static void add_rows(bt_bulk *b, size_t rows, int64_t ts)
{
    size_t *order = malloc(rows * sizeof *order);
    cr_assert_not_null(order);
    for (size_t i = 0; i < rows; i++) order[i] = i;
    srand(7);
    for (size_t i = rows - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    char row[32], val[64], blob[300];
    for (size_t k = 0; k < rows; k++) {
        size_t i = order[k];
        row_key(i, row, sizeof row);
        snprintf(val, sizeof val, "stale-%zu", i);
        CL_OK(bt_bulk_add(b, row, strlen(row), "cf", "a", 1, ts, val, strlen(val)));
        snprintf(val, sizeof val, "b-%zu", i);
        CL_OK(bt_bulk_add(b, row, strlen(row), "cf", "b", 1, ts, val, strlen(val)));
        memset(blob, 'x', sizeof blob);
        int bl = snprintf(blob, sizeof blob, "blob-%zu", i);
        (void)bl; /* snprintf's NUL stays: binary values with an embedded NUL */
        CL_OK(bt_bulk_add(b, row, strlen(row), "big", "blob", 4, ts, blob, sizeof blob));
    }
    for (size_t k = 0; k < rows; k++) {
        size_t i = order[k];
        row_key(i, row, sizeof row);
        snprintf(val, sizeof val, "a-%zu", i);
        CL_OK(bt_bulk_add(b, row, strlen(row), "cf", "a", 1, ts, val, strlen(val)));
    }
    free(order);
}

static const bt_cell *cell_of(const bt_row *r, const char *fam, const char *q)
{
    for (size_t i = 0; i < r->n_cells; i++) {
        const bt_cell *c = &r->cells[i];
        if (c->family_len == strlen(fam) && !memcmp(c->family, fam, c->family_len) &&
            c->qualifier_len == strlen(q) && !memcmp(c->qualifier, q, c->qualifier_len))
            return c;
    }
    return NULL;
}

/* A full scan: every row of 0..rows-1 exactly once, each with its three
 * bulk cells (newest versions). */
static void check_all(bt_table *t, size_t rows)
{
    bt_filter *f = bt_filter_new();
    CL_OK(bt_filter_versions(f, 1));
    bt_scan_options o = {.filter = f};
    bt_scanner *s = NULL;
    CL_OK(bt_scan_open(t, &o, &s));
    uint8_t *seen = calloc(rows, 1);
    size_t n = 0;
    const bt_row *r;
    int rc;
    char want[64];
    while ((rc = bt_scanner_next(s, &r)) == BT_OK) {
        size_t i = (size_t)strtoul((const char *)r->key + 1, NULL, 10);
        cr_assert_lt(i, rows, "unexpected row %.*s", (int)r->key_len, r->key);
        cr_assert_eq(seen[i], 0, "row %.*s seen twice", (int)r->key_len, r->key);
        seen[i] = 1;
        n++;
        cr_assert_eq(r->n_cells, 3, "row %.*s has %zu cells", (int)r->key_len, r->key, r->n_cells);
        const bt_cell *a = cell_of(r, "cf", "a"), *b = cell_of(r, "cf", "b"), *bl = cell_of(r, "big", "blob");
        cr_assert(a && b && bl);
        snprintf(want, sizeof want, "a-%zu", i);
        cr_assert(a->value_len == strlen(want) && !memcmp(a->value, want, a->value_len),
                  "row %zu: cf:a = %.*s, want %s", i, (int)a->value_len, a->value, want);
        /* row 2's cf:b got a newer write (load_across_tablets) */
        snprintf(want, sizeof want, "b-%zu", i);
        bool newer = b->value_len == 5 && !memcmp(b->value, "newer", 5) && i == 2;
        cr_assert(newer || (b->value_len == strlen(want) && !memcmp(b->value, want, b->value_len)),
                  "row %zu: cf:b = %.*s, want %s", i, (int)b->value_len, b->value, want);
        cr_assert_eq(bl->value_len, 300);
        int wl = snprintf(want, sizeof want, "blob-%zu", i);
        cr_assert(!memcmp(bl->value, want, (size_t)wl) && bl->value[wl] == 0 && bl->value[299] == 'x');
    }
    cr_assert_eq(rc, BT_ENOTFOUND, "scan ended with %s: %s", bt_errname(rc), bt_errmsg());
    cr_assert_eq(n, rows, "%zu rows scanned, want %zu", n, rows);
    bt_scanner_close(s);
    bt_filter_free(f);
    free(seen);
}

static size_t count_bulk_files(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "bt-bulk-", 8)) n++;
    closedir(d);
    return n;
}

CL_TEST(load_across_tablets, 240)
{
    clf_cluster(1, 3, 0);
    const char *splits[] = {"g", "n", "t"};
    make_table("bulk", splits, 3);
    bt_table *t = clf_open(C.client, "bulk");

    /* a write before the load, newer than the bulk cells */
    bt_mutation *m = bt_mutation_new("c0000002", 8);
    CL_OK(bt_mutation_set(m, "cf", "b", 1, 2000, "newer", 5));
    CL_OK(bt_apply(t, m));
    bt_mutation_free(m);

    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s/bulktmp", C.root);
    cr_assert_eq(mkdir(tmp, 0755), 0);
    bt_bulk_options bo = {.memory_bytes = 1 << 20, .tmp_dir = tmp, .sstable_bytes = 256 << 10};
    bt_bulk *b = NULL;
    CL_OK(bt_bulk_begin(C.client, "bulk", &bo, &b));
    cr_assert_eq(bt_bulk_add(b, "r", 1, "nope", "q", 1, 1, "v", 1), BT_ENOTFOUND);
    cr_assert_eq(bt_bulk_add(b, "r", 1, "cf", "q", 1, BT_SERVER_TIME, "v", 1), BT_EINVAL);
    cr_assert_eq(bt_bulk_add(b, "", 0, "cf", "q", 1, 1, "v", 1), BT_EINVAL);
    add_rows(b, ROWS, 1000);
    bt_bulk_stats st;
    int64_t t0 = bt_now_us();
    CL_OK(bt_bulk_finish(b, &st));
    cr_log_info("bulk: %" PRIu64 " rows, %" PRIu64 " cells, %" PRIu64 " runs, %" PRIu64 " files in %" PRIu64
                " tablets, finish %.0f ms",
                st.rows, st.cells, st.runs_spilled, st.sstables, st.tablets, (double)(bt_now_us() - t0) / 1000);
    cr_assert_eq(st.rows, ROWS);
    cr_assert_eq(st.cells, 3 * ROWS);
    cr_assert_gt(st.runs_spilled, 1, "a 1 MiB buffer must spill");
    cr_assert_eq(st.tablets, 4);
    cr_assert_geq(st.sstables, 8, "two locality groups in four tablets");
    cr_assert_eq(count_bulk_files(tmp), 0, "sorted runs left behind");

    check_all(t, ROWS);
    /* c0000002 exists (i = 2 -> 'c'): cf:b has the newer write on top */
    bt_row *r = NULL;
    CL_OK(bt_read_row(t, "c0000002", 8, NULL, &r));
    const bt_cell *cb = cell_of(r, "cf", "b");
    cr_assert(cb && cb->timestamp == 2000 && cb->value_len == 5 && !memcmp(cb->value, "newer", 5));
    size_t versions = 0;
    for (size_t i = 0; i < r->n_cells; i++)
        versions += r->cells[i].family_len == 2 && !memcmp(r->cells[i].family, "cf", 2) &&
                    r->cells[i].qualifier_len == 1 && r->cells[i].qualifier[0] == 'b';
    cr_assert_eq(versions, 2, "the bulk version (ts 1000) stays under the newer write");
    bt_row_free(r);

    /* a delete after the load hides bulk cells */
    m = bt_mutation_new("a0000000", 8);
    CL_OK(bt_mutation_delete_row(m));
    CL_OK(bt_apply(t, m));
    bt_mutation_free(m);
    cr_assert_eq(bt_read_row(t, "a0000000", 8, NULL, &r), BT_ENOTFOUND);

    /* a major compaction keeps everything */
    CL_OK(bt_compact_table(C.client, "bulk"));
    cr_assert_eq(bt_read_row(t, "a0000000", 8, NULL, &r), BT_ENOTFOUND);
    m = bt_mutation_new("a0000000", 8);
    CL_OK(bt_mutation_set(m, "cf", "a", 1, 1000, "a-0", 3));
    CL_OK(bt_mutation_set(m, "cf", "b", 1, 1000, "b-0", 3));
    char blob[300];
    memset(blob, 'x', sizeof blob);
    memcpy(blob, "blob-0", 7);
    CL_OK(bt_mutation_set(m, "big", "blob", 4, 1000, blob, sizeof blob));
    CL_OK(bt_apply(t, m));
    bt_mutation_free(m);

    /* the attached files are in the manifests: a SIGKILLed server's
     * tablets come back with them */
    clf_kill_ts(0);
    bt_table_close(t);
    bt_close(C.client);
    C.client = clf_connect(60000, 0);
    t = clf_open(C.client, "bulk");
    bt_filter *f = bt_filter_new();
    CL_OK(bt_filter_family(f, "cf"));
    CL_OK(bt_filter_versions(f, 1));
    /* rows of every tablet readable again (waits for recovery) */
    const char *probe[] = {"a0000026", "h0000007", "o0000014", "u0000020"};
    for (size_t i = 0; i < 4; i++) {
        CL_OK(bt_read_row(t, probe[i], strlen(probe[i]), f, &r));
        bt_row_free(r);
    }
    bt_filter_free(f);
    clf_start_ts(0);
    /* c0000002's newer write was in the log, not the bulk files */
    check_all(t, ROWS);
    bt_table_close(t);
}

/* Writes one bulk file `name` in dir holding (row, cf:q, ts 5) for each row,
 * with the bulk placeholder tag (or a real one with `real_tag`). */
static void write_bulk_file(const ts_schema *sc, const char *dir, const char *name, const char *const *rows,
                            size_t n, bool real_tag)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sst_options so;
    ts_sst_options_for(sc, 0, &so);
    sst_builder *sb;
    CL_OK(sst_builder_new(bt_env_posix(), path, &so, &sb));
    for (size_t i = 0; i < n; i++) {
        bt_buf k = {0};
        CL_OK(ts_ikey_encode(&k, (const uint8_t *)rows[i], strlen(rows[i]), (const uint8_t *)"cf", 2,
                             (const uint8_t *)"q", 1, 5, 1, TS_KT_PUT));
        if (!real_tag) ts_bulk_put_tag(k.data + k.len - 8);
        CL_OK(sst_builder_add(sb, k.data, k.len, (const uint8_t *)"bulk", 4));
        bt_buf_free(&k);
    }
    CL_OK(sst_builder_set_prop(sb, "max_seq", 0));
    CL_OK(sst_builder_set_prop(sb, "num_deletions", 0));
    CL_OK(sst_builder_finish(sb, NULL));
}

typedef struct attach_target { uint64_t id; const char *server; } attach_target;

static int attach_raw(const attach_target *at, uint64_t load_id, const char *const *names, size_t n, uint64_t *seq)
{
    bt_buf q = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &q);
    bt_msg_put_varint(&w, at->id);
    bt_msg_put_fixed64(&w, load_id);
    bt_msg_put_varint(&w, n);
    for (size_t i = 0; i < n; i++) {
        bt_msg_put_bytes(&w, names[i], strlen(names[i]));
        bt_msg_put_varint(&w, 0);
    }
    int rc = bt_client_rpc(C.client, at->server, TSP_BULK_ATTACH, &q, &resp, 5000);
    if (!rc && seq) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, resp.data, resp.len);
        CL_OK(bt_msg_get_varint(&r, seq));
    }
    bt_buf_free(&q);
    bt_buf_free(&resp);
    return rc;
}

#define ATTACH(load_id, expect, ...)                                                              \
    do {                                                                                          \
        const char *names_[] = {__VA_ARGS__};                                                     \
        int rc_ = attach_raw(&at, (load_id), names_, sizeof names_ / sizeof *names_, NULL);       \
        cr_assert_eq(rc_, (expect), "attach: %s (%s), want %s", bt_errname(rc_), bt_errmsg(),     \
                     bt_errname(expect));                                                         \
    } while (0)

/* Raw RPCs of the attach protocol on the tablet [g, t), and the semantics of
 * the sequence an attach gives: the load is newer than what came before it. */
CL_TEST(attach_checks, 120)
{
    clf_cluster(1, 1, 0);
    const char *splits[] = {"g", "t"};
    make_table("ac", splits, 2);
    bt_table *t = clf_open(C.client, "ac");

    /* before the load: m1 written then its row deleted, all compacted away */
    bt_mutation *m = bt_mutation_new("m1", 2);
    CL_OK(bt_mutation_set(m, "cf", "q", 1, 5, "old", 3));
    CL_OK(bt_apply(t, m));
    bt_mutation_clear(m);
    CL_OK(bt_mutation_delete_row(m));
    CL_OK(bt_apply(t, m));
    bt_mutation_free(m);
    CL_OK(bt_flush_table(C.client, "ac"));
    CL_OK(bt_compact_table(C.client, "ac"));

    bt_table_desc *d = clf_describe(C.client, "ac");
    attach_target at = {d->tablets[1].id, d->tablets[1].server};
    bt_buf req = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, at.id);
    CL_OK(bt_client_rpc(C.client, at.server, TSP_BULK_PREPARE, &req, &resp, 5000));
    bt_msg_reader r;
    bt_msg_reader_init(&r, resp.data, resp.len);
    const uint8_t *dir;
    size_t dl;
    CL_OK(bt_msg_get_bytes(&r, &dir, &dl));
    char tdir[PATH_MAX];
    snprintf(tdir, sizeof tdir, "%.*s", (int)dl, dir);
    cr_assert(tdir[0] == '/', "prepare answers an absolute directory, got %s", tdir);
    /* unknown tablet */
    bt_buf_clear(&req);
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, 12345);
    cr_assert_eq(bt_client_rpc(C.client, at.server, TSP_BULK_PREPARE, &req, &resp, 5000), BT_ENOTSERVING);

    ts_schema sc;
    CL_OK(bt_table_schema(t, false, &sc));
    const uint64_t id = 0x1234abcd5678ef00ull;
    const char *good = "bulk-1234abcd5678ef00-1.sst", *outside = "bulk-1234abcd5678ef00-2.sst",
               *tagged = "bulk-1234abcd5678ef00-3.sst";
    const char *good_rows[] = {"h1", "m1", "s9"}, *outside_rows[] = {"h2", "z9"}, *tagged_rows[] = {"k1"};
    write_bulk_file(&sc, tdir, good, good_rows, 3, false);
    write_bulk_file(&sc, tdir, outside, outside_rows, 2, false); /* z9 is past the tablet's end */
    write_bulk_file(&sc, tdir, tagged, tagged_rows, 1, true);    /* a real tag: not a bulk file */

    ATTACH(id + 1, BT_EINVAL, good);                /* the name does not carry this load id */
    ATTACH(id, BT_EINVAL, "../x.sst");
    ATTACH(id, BT_EINVAL, "000001.sst");
    ATTACH(id, BT_EINVAL, good, good);              /* named twice */
    ATTACH(id, BT_EINVAL, good, outside);           /* one bad file: none attached */
    ATTACH(id, BT_EINVAL, tagged);
    ATTACH(id, BT_ENOTFOUND, "bulk-1234abcd5678ef00-9.sst");
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", tdir, good);
    cr_assert_eq(access(p, F_OK), 0, "a refused attach must leave the staged file");
    bt_row *row = NULL;
    cr_assert_eq(bt_read_row(t, "h1", 2, NULL, &row), BT_ENOTFOUND);

    uint64_t seq = 0;
    const char *names[] = {good};
    CL_OK(attach_raw(&at, id, names, 1, &seq));
    cr_assert_gt(seq, 0);
    cr_assert_neq(access(p, F_OK), 0, "an attached file is renamed to the tablet's own name");
    /* m1 was deleted before the load: the load is newer, so m1 is back with the bulk value */
    CL_OK(bt_read_row(t, "m1", 2, NULL, &row));
    cr_assert(row->n_cells == 1 && row->cells[0].value_len == 4 && !memcmp(row->cells[0].value, "bulk", 4));
    bt_row_free(row);
    uint64_t again = 0;
    CL_OK(attach_raw(&at, id, names, 1, &again)); /* a retried attach whose answer was lost */
    cr_assert_eq(again, seq);
    cr_assert_eq(bt_read_row(t, "z9", 2, NULL, &row), BT_ENOTFOUND);

    /* a write after the load at the same timestamp wins; a delete hides */
    m = bt_mutation_new("h1", 2);
    CL_OK(bt_mutation_set(m, "cf", "q", 1, 5, "new", 3));
    CL_OK(bt_apply(t, m));
    bt_mutation_free(m);
    m = bt_mutation_new("s9", 2);
    CL_OK(bt_mutation_delete_row(m));
    CL_OK(bt_apply(t, m));
    bt_mutation_free(m);
    for (int round = 0; round < 2; round++) { /* before and after a major compaction */
        CL_OK(bt_read_row(t, "h1", 2, NULL, &row));
        cr_assert(row->n_cells == 1 && row->cells[0].value_len == 3 && !memcmp(row->cells[0].value, "new", 3),
                  "round %d: h1 = %.*s", round, (int)row->cells[0].value_len, row->cells[0].value);
        bt_row_free(row);
        cr_assert_eq(bt_read_row(t, "s9", 2, NULL, &row), BT_ENOTFOUND);
        CL_OK(bt_read_row(t, "m1", 2, NULL, &row));
        bt_row_free(row);
        CL_OK(bt_compact_table(C.client, "ac"));
    }

    bt_buf_free(&req);
    bt_buf_free(&resp);
    bt_table_close(t);
    bt_table_desc_free(d);
}

typedef struct mover {
    pthread_t th;
    atomic_bool stop;
    int moves, splits, fails;
} mover;

static void *move_loop(void *arg)
{
    mover *mv = arg;
    bt_client *c = NULL;
    bt_client_options o = {.timeout_ms = 20000};
    if (bt_connect(C.lock_url, &o, &c)) return NULL;
    int k = 0;
    while (!atomic_load(&mv->stop)) {
        bt_table_desc *d = NULL;
        if (bt_describe_table(c, "mv", &d) == BT_OK && d->n_tablets) {
            if (k % 3 == 2 && d->n_tablets < 12) {
                char row[16];
                snprintf(row, sizeof row, "%c5", 'a' + k % 26);
                if (bt_split_table(c, "mv", row, strlen(row)) == BT_OK) mv->splits++;
                else mv->fails++;
            } else if (bt_move_tablet(c, d->tablets[(size_t)k % d->n_tablets].id, NULL) == BT_OK) {
                mv->moves++;
            } else {
                mv->fails++;
            }
        }
        bt_table_desc_free(d);
        k++;
        usleep(20000);
    }
    bt_close(c);
    return NULL;
}

CL_TEST(load_during_moves, 300)
{
    clf_cluster(1, 3, 0);
    const char *splits[] = {"h", "p"};
    make_table("mv", splits, 2);
    bt_table *t = clf_open(C.client, "mv");
    mover mv = {0};
    atomic_init(&mv.stop, false);
    cr_assert_eq(pthread_create(&mv.th, NULL, move_loop, &mv), 0);
    /* several loads of small tablets' worth while tablets move */
    bt_bulk_options bo = {.memory_bytes = 1 << 20, .sstable_bytes = 64 << 10};
    for (int round = 0; round < 4; round++) {
        bt_bulk *b = NULL;
        CL_OK(bt_bulk_begin(C.client, "mv", &bo, &b));
        add_rows(b, ROWS / 2, 1000 + round);
        bt_bulk_stats st;
        CL_OK(bt_bulk_finish(b, &st));
        cr_assert_eq(st.cells, 3 * (ROWS / 2));
    }
    atomic_store(&mv.stop, true);
    pthread_join(mv.th, NULL);
    cr_log_info("during the loads: %d moves, %d splits, %d refused", mv.moves, mv.splits, mv.fails);
    cr_assert_gt(mv.moves + mv.splits, 0);
    check_all(t, ROWS / 2);
    bt_table_close(t);
}

CL_TEST(abort_attaches_nothing, 120)
{
    clf_cluster(1, 1, 0);
    make_table("ab", NULL, 0);
    bt_table *t = clf_open(C.client, "ab");
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s/abtmp", C.root);
    cr_assert_eq(mkdir(tmp, 0755), 0);
    bt_bulk_options bo = {.memory_bytes = 1 << 20, .tmp_dir = tmp};
    bt_bulk *b = NULL;
    CL_OK(bt_bulk_begin(C.client, "ab", &bo, &b));
    add_rows(b, 5000, 1);
    bt_bulk_abort(b);
    cr_assert_eq(count_bulk_files(tmp), 0);
    bt_scanner *s = NULL;
    CL_OK(bt_scan_open(t, NULL, &s));
    const bt_row *r;
    cr_assert_eq(bt_scanner_next(s, &r), BT_ENOTFOUND);
    bt_scanner_close(s);
    cr_assert_eq(bt_bulk_begin(C.client, "nosuch", NULL, &b), BT_ENOTFOUND);
    bt_table_close(t);
}

typedef struct hook_state { bt_client *c; int calls; int done; bool split; } hook_state;

/* Moves (or splits) the first tablet about to get its files attached. */
static void before_attach(uint64_t id, void *arg)
{
    hook_state *h = arg;
    if (h->calls++) return;
    if (!h->split) {
        if (bt_move_tablet(h->c, id, NULL) == BT_OK) h->done++;
        return;
    }
    bt_table_desc *d = NULL;
    if (bt_describe_table(h->c, "rc", &d) != BT_OK) return;
    for (size_t i = 0; i < d->n_tablets; i++)
        if (d->tablets[i].id == id && bt_split_table(h->c, "rc", "g", 1) == BT_OK) h->done++;
    bt_table_desc_free(d);
}

static void load_with_hook(bool split)
{
    clf_cluster(1, 2, 0);
    const char *splits[] = {"m"};
    make_table("rc", splits, 1);
    bt_table *t = clf_open(C.client, "rc");
    hook_state h = {.c = C.client, .split = split};
    bt_bulk_before_attach_arg = &h;
    bt_bulk_before_attach = before_attach;
    bt_bulk *b = NULL;
    CL_OK(bt_bulk_begin(C.client, "rc", NULL, &b));
    add_rows(b, 3000, 10);
    bt_bulk_stats st;
    int rc = bt_bulk_finish(b, &st);
    bt_bulk_before_attach = NULL;
    CL_OK(rc);
    cr_assert_eq(h.done, 1, "the hook changed nothing");
    /* a moved tablet reads the same directory: attached there, no re-cut;
     * a split one gets its files cut again for its children */
    cr_assert_eq(st.recuts, split ? 1 : 0, "recuts = %" PRIu64, st.recuts);
    cr_assert_eq(st.tablets, split ? 3 : 2, "tablets = %" PRIu64, st.tablets);
    check_all(t, 3000);
    bt_table_close(t);
}

CL_TEST(attach_after_move, 120) { load_with_hook(false); }
CL_TEST(recut_after_split, 120) { load_with_hook(true); }

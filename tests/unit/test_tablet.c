/* tests/unit/test_tablet.c: the tablet engine's semantics through its public
 * API (tabletserver/tablet.h): cells and their order, argument errors and
 * atomicity, versions, every delete type in the memtable / across SSTables /
 * after a major compaction / after reopen and commit-log replay, locality
 * groups, compactions, split, schema changes, fencing (a compaction running
 * when the tablet is fenced installs nothing), manifest corruption and a
 * concurrency smoke test.  Read filters, GC policies and the randomized
 * reference-model tests are in test_tablet_model.c; shared helpers in
 * tablet_testutil.h.
 *
 * Results are compared as text: "row: fam:qual@ts=value ...\n" per row.
 */
#include "tablet_testutil.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "tabletserver/manifest.h"

#include <xxhash.h>

/* Number of rows in a text rendering (one line each). */
static int count_lines(const char *txt)
{
    int lines = 0;
    for (const char *p = txt; *p; p++) lines += *p == '\n';
    return lines;
}

/* ---- cells ------------------------------------------------------------------------ */

Test(tablet, set_and_read_one_row)
{
    tu_fx f;
    tu_start_abc(&f, TS_DURABILITY_SYNC);
    MUT(f.t, "row1", SET("a", "q", 10, "hello"));

    ts_row r;
    cr_assert_eq(ts_tablet_read_row(f.t, (const uint8_t *)"row1", 4, NULL, &r), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(r.key_len, 4);
    cr_assert_eq(memcmp(r.key, "row1", 4), 0);
    cr_assert_eq(r.n_cells, 1);
    cr_assert_eq(r.cells[0].family_len, 1);
    cr_assert_eq(r.cells[0].family[0], 'a');
    cr_assert_eq(r.cells[0].qualifier_len, 1);
    cr_assert_eq(r.cells[0].qualifier[0], 'q');
    cr_assert_eq(r.cells[0].timestamp, 10);
    cr_assert_eq(r.cells[0].value_len, 5);
    cr_assert_eq(memcmp(r.cells[0].value, "hello", 5), 0);
    ts_row_free(&r);

    cr_assert_eq(ts_tablet_read_row(f.t, (const uint8_t *)"row2", 4, NULL, &r), BT_ENOTFOUND);
    cr_assert_eq(ts_tablet_read_row(f.t, (const uint8_t *)"row", 3, NULL, &r), BT_ENOTFOUND);
    tu_expect_scan(f.t, NULL, "row1: a:q@10=hello\n", "scan");

    ts_tablet_stats st;
    ts_tablet_get_stats(f.t, &st);
    cr_assert_eq(st.last_seq, 1);
    cr_assert_gt(st.memtable_bytes, 0);
    cr_assert_eq(st.n_sstables, 0);
    tu_finish(&f);
}

Test(tablet, families_qualifiers_and_cell_order)
{
    tu_fx f;
    tu_start_abc(&f, TS_DURABILITY_NONE);
    /* written out of order on purpose, in one mutation */
    MUT(f.t, "row1", SET("b", "q2", 10, "v1"), SET("a", "", 5, "e"), tu_set("a", "q\0x", 3, 7, "z1", 2),
        SET("a", "q", 7, "z0"), SET("a", "q", 9, "z2"), tu_set("c", "\0", 1, 1, "n", 1),
        SET("b", "q1", 3, "w"));
    const char *want_row1 = "row1: a:@5=e a:q@9=z2 a:q@7=z0 a:q\\x00x@7=z1 b:q1@3=w b:q2@10=v1 c:\\x00@1=n\n";

    /* row keys with zero bytes, each a prefix of the next */
    MUT(f.t, "k", SET("a", "q", 1, "1"));
    ts_mutation m = SET("a", "q", 1, "2");
    cr_assert_eq(ts_tablet_mutate_row(f.t, (const uint8_t *)"k\0", 2, &m, 1), BT_OK);
    m = SET("a", "q", 1, "3");
    cr_assert_eq(ts_tablet_mutate_row(f.t, (const uint8_t *)"k\0\0", 3, &m, 1), BT_OK);
    m = SET("a", "q", 1, "4");
    cr_assert_eq(ts_tablet_mutate_row(f.t, (const uint8_t *)"k\x01", 2, &m, 1), BT_OK);
    const char *want_k = "k: a:q@1=1\nk\\x00: a:q@1=2\nk\\x00\\x00: a:q@1=3\nk\\x01: a:q@1=4\n";

    /* the longest row key */
    uint8_t big[TS_MAX_ROW_KEY];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)('A' + i % 26);
    m = SET("c", "big", 2, "large");
    cr_assert_eq(ts_tablet_mutate_row(f.t, big, sizeof big, &m, 1), BT_OK, "%s", bt_errmsg());

    for (int round = 0; round < 3; round++) {  /* memtable, SSTable, compacted */
        char *all = tu_scan_text(f.t, NULL);
        cr_assert_not_null(strstr(all, want_k), "zero-byte rows: %s", all);
        cr_assert_not_null(strstr(all, want_row1), "row1 missing or misordered: %s", all);
        free(all);
        tu_expect_read(f.t, "row1", NULL, want_row1, "row1");
        tu_expect_text(tu_read_text(f.t, "k", 1, NULL), "k: a:q@1=1\n", "k");
        tu_expect_text(tu_read_text(f.t, "k\0", 2, NULL), "k\\x00: a:q@1=2\n", "k\\0");
        tu_expect_text(tu_read_text(f.t, "k\0\0", 3, NULL), "k\\x00\\x00: a:q@1=3\n", "k\\0\\0");
        tu_expect_text(tu_read_text(f.t, "k\x01", 2, NULL), "k\\x01: a:q@1=4\n", "k\\1");
        tu_expect_text(tu_read_text(f.t, "k\0\0\0", 4, NULL), "", "k\\0\\0\\0");
        ts_read_options o = {.prefix = (const uint8_t *)"k", .prefix_len = 1};
        tu_expect_scan(f.t, &o, want_k, "prefix k");
        o.prefix = (const uint8_t *)"k\0";
        o.prefix_len = 2;
        tu_expect_scan(f.t, &o, "k\\x00: a:q@1=2\nk\\x00\\x00: a:q@1=3\n", "prefix k\\0");

        ts_row r;
        cr_assert_eq(ts_tablet_read_row(f.t, big, sizeof big, NULL, &r), BT_OK, "%s", bt_errmsg());
        cr_assert_eq(r.key_len, sizeof big);
        cr_assert_eq(memcmp(r.key, big, sizeof big), 0);
        cr_assert_eq(r.n_cells, 1);
        cr_assert_eq(r.cells[0].value_len, 5);
        ts_row_free(&r);
        ts_read_options pb = {.prefix = big, .prefix_len = sizeof big};
        ts_scanner *sc;
        cr_assert_eq(ts_tablet_scan(f.t, &pb, &sc), BT_OK);
        cr_assert_eq(ts_scanner_next(sc, &r), BT_OK);
        cr_assert_eq(r.key_len, sizeof big);
        cr_assert_eq(memcmp(r.key, big, sizeof big), 0);
        cr_assert_eq(ts_scanner_next(sc, &r), BT_ENOTFOUND);
        ts_scanner_close(sc);

        if (round == 0) cr_assert_eq(ts_tablet_flush(f.t), BT_OK);
        if (round == 1) cr_assert_eq(ts_tablet_compact(f.t), BT_OK);
    }
    /* the complete scan, in order: big row ("ABC...") < k rows < row1 */
    char *all = tu_scan_text(f.t, NULL);
    const char *p = strstr(all, want_k);
    cr_assert_not_null(p);
    cr_assert_eq(strcmp(p + strlen(want_k), want_row1), 0, "order: %s", all);
    cr_assert_eq(strncmp(all, "ABCDEFG", 7), 0);
    free(all);
    tu_finish(&f);
}

Test(tablet, server_time_uses_the_engine_clock)
{
    tu_fx f;
    tu_start_abc(&f, TS_DURABILITY_SYNC);
    tu_set_clock(123456789);
    MUT(f.t, "r", SET("a", "q", TS_SERVER_TIME, "v1"));
    tu_set_clock(123456999);
    MUT(f.t, "r", SET("a", "q", TS_SERVER_TIME, "v2"), SET("b", "q", 5, "x"));
    const char *want = "r: a:q@123456999=v2 a:q@123456789=v1 b:q@5=x\n";
    tu_expect_read(f.t, "r", NULL, want, "server time");
    /* replay uses the recorded time, not the clock at replay */
    tu_set_clock(999999999);
    tu_crash_reopen(&f);
    tu_expect_read(f.t, "r", NULL, want, "server time after replay");
    tu_finish(&f);
}

/* ---- errors ------------------------------------------------------------------------- */

#define EXPECT_ERR(call, code)                                                                  \
    do {                                                                                        \
        bt_errclear();                                                                          \
        int erc_ = (call);                                                                      \
        cr_assert_eq(erc_, (code), "%s: got %s (%s), want %s", #call, bt_errname(erc_),          \
                     bt_errmsg(), bt_errname(code));                                            \
        cr_assert_gt(strlen(bt_errmsg()), 0, "%s: no error detail", #call);                     \
    } while (0)

Test(tablet, mutation_and_read_errors)
{
    tu_fx f;
    ts_schema s;
    tu_schema_abc(&s);
    tu_init(&f, TS_DURABILITY_SYNC);
    tu_engine_open(&f);
    tu_create(&f, &s, "b", "m");
    ts_tablet *t = f.t;
    const uint8_t *row = (const uint8_t *)"c";

    ts_mutation m = SET("zz", "q", 1, "v");
    EXPECT_ERR(ts_tablet_mutate_row(t, row, 1, &m, 1), BT_ENOTFOUND);
    m = SET("", "q", 1, "v");
    EXPECT_ERR(ts_tablet_mutate_row(t, row, 1, &m, 1), BT_ENOTFOUND);
    m = SET("a", "q", 1, "v");
    EXPECT_ERR(ts_tablet_mutate_row(t, row, 0, &m, 1), BT_EINVAL);
    uint8_t *longrow = malloc(TS_MAX_ROW_KEY + 1);
    memset(longrow, 'c', TS_MAX_ROW_KEY + 1);
    EXPECT_ERR(ts_tablet_mutate_row(t, longrow, TS_MAX_ROW_KEY + 1, &m, 1), BT_EINVAL);
    EXPECT_ERR(ts_tablet_mutate_row(t, row, 1, &m, 0), BT_EINVAL);
    EXPECT_ERR(ts_tablet_mutate_row(t, (const uint8_t *)"a", 1, &m, 1), BT_ENOTSERVING);
    EXPECT_ERR(ts_tablet_mutate_row(t, (const uint8_t *)"m", 1, &m, 1), BT_ENOTSERVING);
    EXPECT_ERR(ts_tablet_mutate_row(t, (const uint8_t *)"zz", 2, &m, 1), BT_ENOTSERVING);
    EXPECT_ERR(ts_tablet_mutate_row(t, (const uint8_t *)"a\xff", 2, &m, 1), BT_ENOTSERVING);

    uint8_t *bigq = calloc(1, TS_MAX_QUALIFIER + 1);
    m = tu_set("a", bigq, TS_MAX_QUALIFIER + 1, 1, "v", 1);
    EXPECT_ERR(ts_tablet_mutate_row(t, row, 1, &m, 1), BT_ETOOBIG);
    m = tu_del("a", bigq, TS_MAX_QUALIFIER + 1, 0, 0);
    EXPECT_ERR(ts_tablet_mutate_row(t, row, 1, &m, 1), BT_ETOOBIG);
    uint8_t *bigv = calloc(1, (size_t)TS_MAX_VALUE + 1);
    cr_assert_not_null(bigv);
    m = tu_set("a", "q", 1, 1, bigv, (size_t)TS_MAX_VALUE + 1);
    EXPECT_ERR(ts_tablet_mutate_row(t, row, 1, &m, 1), BT_ETOOBIG);
    free(bigv);

    m = SET("a", "q", -1, "v");
    EXPECT_ERR(ts_tablet_mutate_row(t, row, 1, &m, 1), BT_EINVAL);
    m = SET("a", "q", INT64_MIN + 1, "v");
    EXPECT_ERR(ts_tablet_mutate_row(t, row, 1, &m, 1), BT_EINVAL);
    m = DEL("a", "q", -5, 0);
    EXPECT_ERR(ts_tablet_mutate_row(t, row, 1, &m, 1), BT_EINVAL);
    m = DEL("a", "q", 5, 5);
    EXPECT_ERR(ts_tablet_mutate_row(t, row, 1, &m, 1), BT_EINVAL);
    m = DELFAM("nope");
    EXPECT_ERR(ts_tablet_mutate_row(t, row, 1, &m, 1), BT_ENOTFOUND);

    /* reads */
    ts_row r;
    EXPECT_ERR(ts_tablet_read_row(t, (const uint8_t *)"a", 1, NULL, &r), BT_ENOTSERVING);
    EXPECT_ERR(ts_tablet_read_row(t, (const uint8_t *)"m", 1, NULL, &r), BT_ENOTSERVING);
    EXPECT_ERR(ts_tablet_read_row(t, row, 0, NULL, &r), BT_EINVAL);
    EXPECT_ERR(ts_tablet_read_row(t, longrow, TS_MAX_ROW_KEY + 1, NULL, &r), BT_EINVAL);
    ts_column_ref col = {.family = "zz", .family_len = 2};
    ts_read_options o = {.columns = &col, .n_columns = 1};
    EXPECT_ERR(ts_tablet_read_row(t, row, 1, &o, &r), BT_ENOTFOUND);
    ts_scanner *sc = NULL;
    EXPECT_ERR(ts_tablet_scan(t, &o, &sc), BT_ENOTFOUND);
    cr_assert_null(sc);
    ts_read_options o2 = {.range_family = "zz", .range_family_len = 2};
    EXPECT_ERR(ts_tablet_scan(t, &o2, &sc), BT_ENOTFOUND);
    ts_read_options o3 = {.ts_from = 10, .ts_to = 5};
    EXPECT_ERR(ts_tablet_scan(t, &o3, &sc), BT_EINVAL);

    /* none of it was written; the limits themselves are accepted */
    tu_expect_scan(t, NULL, "", "after errors");
    ts_tablet_stats st;
    ts_tablet_get_stats(t, &st);
    cr_assert_eq(st.last_seq, 0, "failed mutations used sequence numbers");
    m = tu_set("a", bigq, TS_MAX_QUALIFIER, 1, "v", 1);
    cr_assert_eq(ts_tablet_mutate_row(t, row, 1, &m, 1), BT_OK, "%s", bt_errmsg());
    m = SET("a", "q", 0, "v");
    cr_assert_eq(ts_tablet_mutate_row(t, longrow, TS_MAX_ROW_KEY, &m, 1), BT_OK, "%s", bt_errmsg());
    MUT(t, "b", SET("a", "q", 1, "first row of the range"));
    MUT(t, "lzzz", SET("a", "q", 1, "last"));
    ts_read_options cnt = {.strip_value = true};
    char *txt = tu_scan_text(t, &cnt);
    cr_assert_eq(count_lines(txt), 4, "%s", txt);
    free(txt);
    free(bigq);
    free(longrow);
    tu_finish(&f);
}

Test(tablet, failed_mutation_applies_nothing)
{
    tu_fx f;
    tu_start_abc(&f, TS_DURABILITY_SYNC);
    MUT(f.t, "r", SET("a", "keep", 1, "k"));
    uint8_t *bigq = calloc(1, TS_MAX_QUALIFIER + 1);
    ts_mutation bad1[] = {SET("a", "q", 1, "x"), SET("zz", "q", 1, "y"), SET("b", "q", 1, "z")};
    ts_mutation bad2[] = {SET("a", "q", 1, "x"), tu_set("a", bigq, TS_MAX_QUALIFIER + 1, 1, "y", 1)};
    ts_mutation bad3[] = {DELROW(), SET("a", "q", -3, "y")};
    ts_mutation bad4[] = {SET("a", "q", 1, "x"), DEL("a", "keep", 5, 3)};
    ts_mutation bad5[] = {DELFAM("a"), DELFAM("missing")};
    EXPECT_ERR(ts_tablet_mutate_row(f.t, (const uint8_t *)"r", 1, bad1, 3), BT_ENOTFOUND);
    EXPECT_ERR(ts_tablet_mutate_row(f.t, (const uint8_t *)"r", 1, bad2, 2), BT_ETOOBIG);
    EXPECT_ERR(ts_tablet_mutate_row(f.t, (const uint8_t *)"r", 1, bad3, 2), BT_EINVAL);
    EXPECT_ERR(ts_tablet_mutate_row(f.t, (const uint8_t *)"r", 1, bad4, 2), BT_EINVAL);
    EXPECT_ERR(ts_tablet_mutate_row(f.t, (const uint8_t *)"r", 1, bad5, 2), BT_ENOTFOUND);
    EXPECT_ERR(ts_tablet_mutate_row(f.t, (const uint8_t *)"s", 1, bad1, 3), BT_ENOTFOUND);
    free(bigq);
    const char *want = "r: a:keep@1=k\n";
    tu_expect_scan(f.t, NULL, want, "after failed mutations");
    ts_tablet_stats st;
    ts_tablet_get_stats(f.t, &st);
    cr_assert_eq(st.last_seq, 1);
    tu_crash_reopen(&f);  /* and nothing of them reached the log */
    tu_expect_scan(f.t, NULL, want, "after replay");
    MUT(f.t, "r", SET("a", "q", 1, "x"));
    tu_expect_scan(f.t, NULL, "r: a:keep@1=k a:q@1=x\n", "writes go on");
    tu_finish(&f);
}

/* ts_tablet_mutate_rows: one commit-log record for many rows; an invalid row
 * fails the whole batch (nothing applied) and is named by its index; the
 * multi-row record replays after a crash with the same sequence numbers. */
Test(tablet, batch_of_rows_is_one_record_and_replays)
{
    tu_fx f;
    tu_start_abc(&f, TS_DURABILITY_SYNC);
    ts_mutation m1[] = {SET("a", "q", 1, "x1"), SET("b", "q", 2, "y1")};
    ts_mutation m2[] = {SET("a", "q", 1, "x2")};
    ts_mutation m3[] = {DELFAM("b")};
    ts_mutation bad[] = {SET("zz", "q", 1, "nope")};
    ts_row_mutation ok[] = {
        {(const uint8_t *)"r1", 2, m1, 2}, {(const uint8_t *)"r2", 2, m2, 1}, {(const uint8_t *)"r1", 2, m3, 1},
    };
    ts_row_mutation mixed[] = {{(const uint8_t *)"r3", 2, m2, 1}, {(const uint8_t *)"r4", 2, bad, 1}};
    int failed = 7;
    EXPECT_ERR(ts_tablet_mutate_rows(f.t, mixed, 2, &failed), BT_ENOTFOUND);
    cr_assert_eq(failed, 1, "the bad row's index");
    EXPECT_ERR(ts_tablet_mutate_rows(f.t, ok, 0, &failed), BT_EINVAL);
    cr_assert_eq(failed, -1);
    cr_assert_eq(ts_tablet_mutate_rows(f.t, ok, 3, &failed), BT_OK, "%s", bt_errmsg());
    /* rows apply in order: r1's family b is deleted by the third entry */
    const char *want = "r1: a:q@1=x1\nr2: a:q@1=x2\n";
    tu_expect_scan(f.t, NULL, want, "after the batch");
    ts_tablet_stats st;
    ts_tablet_get_stats(f.t, &st);
    cr_assert_eq(st.last_seq, 4, "one sequence per mutation across the rows");
    ts_log_stats ls;
    ts_log_get_stats(ts_engine_log(f.e), &ls);
    cr_assert_eq(ls.appends, 1, "the batch is one commit-log record");
    tu_crash_reopen(&f);
    tu_expect_scan(f.t, NULL, want, "after replay");
    ts_tablet_get_stats(f.t, &st);
    cr_assert_eq(st.last_seq, 4);
    tu_finish(&f);
}

/* no_io reads: memtable rows and cached blocks are answered, a block that
 * would have to be read from the file fails with BT_EBUSY (and the normal
 * read that follows fills the cache). */
Test(tablet, no_io_reads_fail_busy_on_uncached_blocks)
{
    tu_fx f;
    tu_start_abc(&f, TS_DURABILITY_SYNC);
    MUT(f.t, "old", SET("a", "q", 1, "on disk"));
    tu_flush(f.t);
    tu_reopen(&f); /* a fresh engine: nothing cached */
    MUT(f.t, "new", SET("a", "q", 1, "in memory"));
    ts_read_options ro = { .no_io = true };
    ts_row row;
    cr_assert_eq(ts_tablet_read_row(f.t, (const uint8_t *)"new", 3, &ro, &row), BT_OK, "%s", bt_errmsg());
    ts_row_free(&row);
    EXPECT_ERR(ts_tablet_read_row(f.t, (const uint8_t *)"old", 3, &ro, &row), BT_EBUSY);
    ts_read_options normal = {0};
    cr_assert_eq(ts_tablet_read_row(f.t, (const uint8_t *)"old", 3, &normal, &row), BT_OK);
    ts_row_free(&row);
    cr_assert_eq(ts_tablet_read_row(f.t, (const uint8_t *)"old", 3, &ro, &row), BT_OK, "now cached: %s", bt_errmsg());
    cr_assert_eq(row.n_cells, 1);
    cr_assert_eq(row.cells[0].value_len, 7);
    ts_row_free(&row);
    tu_finish(&f);
}

/* ---- versions ------------------------------------------------------------------------- */

Test(tablet, versions_newest_first_and_limits)
{
    tu_fx f;
    tu_start_abc(&f, TS_DURABILITY_NONE);
    MUT(f.t, "r", SET("a", "q", 20, "v20"));
    MUT(f.t, "r", SET("a", "q", 10, "v10"));
    MUT(f.t, "r", SET("a", "q", 30, "v30"), SET("a", "p", 1, "p1"));
    for (int round = 0; round < 4; round++) {
        ts_read_options o = {.versions = 1};
        tu_expect_read(f.t, "r", &o, "r: a:p@1=p1 a:q@30=v30\n", "versions=1");
        o.versions = 2;
        tu_expect_read(f.t, "r", &o, "r: a:p@1=p1 a:q@30=v30 a:q@20=v20\n", "versions=2");
        o.versions = 0;
        tu_expect_read(f.t, "r", &o, "r: a:p@1=p1 a:q@30=v30 a:q@20=v20 a:q@10=v10\n", "versions=0");
        tu_expect_scan(f.t, NULL, "r: a:p@1=p1 a:q@30=v30 a:q@20=v20 a:q@10=v10\n", "scan");
        if (round == 0) cr_assert_eq(ts_tablet_flush(f.t), BT_OK);
        if (round == 1) cr_assert_eq(ts_tablet_compact(f.t), BT_OK);
        if (round == 2) tu_reopen(&f);
    }
    /* a newer version in the memtable over versions in an SSTable */
    MUT(f.t, "r", SET("a", "q", 40, "v40"));
    ts_read_options o = {.versions = 2};
    tu_expect_read(f.t, "r", &o, "r: a:p@1=p1 a:q@40=v40 a:q@30=v30\n", "memtable + sstable");
    MUT(f.t, "r", SET("a", "q", 25, "v25"));
    o.versions = 0;
    tu_expect_read(f.t, "r", &o, "r: a:p@1=p1 a:q@40=v40 a:q@30=v30 a:q@25=v25 a:q@20=v20 a:q@10=v10\n",
                   "older timestamp written later sorts by timestamp");
    tu_finish(&f);
}

Test(tablet, same_timestamp_later_write_wins)
{
    tu_fx f;
    tu_start_abc(&f, TS_DURABILITY_NONE);
    MUT(f.t, "r", SET("a", "q", 5, "old"), SET("a", "q", 6, "six"));
    MUT(f.t, "r", SET("a", "q", 5, "new"));
    tu_expect_read(f.t, "r", NULL, "r: a:q@6=six a:q@5=new\n", "memtable");
    ts_read_options o = {.ts_from = 5, .ts_to = 6};
    tu_expect_read(f.t, "r", &o, "r: a:q@5=new\n", "only one version at ts 5");
    cr_assert_eq(ts_tablet_flush(f.t), BT_OK);
    MUT(f.t, "r", SET("a", "q", 5, "newer"));
    tu_expect_read(f.t, "r", NULL, "r: a:q@6=six a:q@5=newer\n", "memtable over sstable");
    cr_assert_eq(ts_tablet_flush(f.t), BT_OK);
    tu_expect_read(f.t, "r", NULL, "r: a:q@6=six a:q@5=newer\n", "two sstables");
    /* in one mutation: the later element wins */
    MUT(f.t, "r", SET("b", "q", 7, "x"), SET("b", "q", 7, "y"));
    tu_expect_read(f.t, "r", NULL, "r: a:q@6=six a:q@5=newer b:q@7=y\n", "one mutation");
    cr_assert_eq(ts_tablet_compact(f.t), BT_OK);
    tu_expect_read(f.t, "r", NULL, "r: a:q@6=six a:q@5=newer b:q@7=y\n", "compacted");
    tu_sst_stat st;
    tu_sst_scan(f.tdir, &st);
    cr_assert_eq(st.files, 1);
    cr_assert_eq(st.puts, 3, "overwritten versions survived the major compaction");
    tu_finish(&f);
}

/* ---- deletes ------------------------------------------------------------------------------ */

static const char *DEL_WANT1 =
    "r: a:p@11=p11 a:q@40=q40 a:q@10=q10 c:q@5=c5\n"
    "w: a:q@10=w10\n"
    "x: a:q@10=x10\n";
static const char *DEL_WANT2 =
    "r: a:p@11=p11 a:q@40=q40 a:q@20=q20again a:q@10=q10 b:q@5=b5again c:q@5=c5\n"
    "s: a:q@1=s1again\n"
    "u: a:q@1=u1again\n"
    "w: a:q@60=w60 a:q@10=w10\n"
    "x: a:q@10=x10\n";

static void del_puts(ts_tablet *t)
{
    MUT(t, "r", SET("a", "q", 10, "q10"), SET("a", "q", 20, "q20"), SET("a", "q", 30, "q30"));
    MUT(t, "r", SET("a", "q", 40, "q40"), SET("a", "p", 10, "p10"), SET("a", "p", 11, "p11"));
    MUT(t, "r", SET("b", "q", 10, "b10"), SET("b", "q", 20, "b20"), SET("c", "q", 5, "c5"));
    MUT(t, "s", SET("a", "q", 10, "s10"), SET("b", "q", 10, "sb10"));
    MUT(t, "u", SET("a", "q", 10, "u10"), SET("a", "q", 20, "u20"));
    MUT(t, "w", SET("a", "q", 10, "w10"), SET("a", "q", 50, "w50"));
    MUT(t, "x", SET("a", "q", 10, "x10"));
}

static void del_deletes(ts_tablet *t)
{
    MUT(t, "r", DEL("a", "q", 20, 40), DEL("a", "p", 10, 11), DEL("a", "q", 25, 26));
    MUT(t, "r", DELFAM("b"));
    MUT(t, "s", DELROW());
    MUT(t, "u", DEL("a", "q", 0, 0));
    MUT(t, "w", DEL("a", "q", 30, 0));
}

static void del_again(ts_tablet *t)
{
    MUT(t, "r", SET("b", "q", 5, "b5again"));
    MUT(t, "s", SET("a", "q", 1, "s1again"));
    MUT(t, "u", SET("a", "q", 1, "u1again"));
    MUT(t, "w", SET("a", "q", 60, "w60"));
    MUT(t, "r", SET("a", "q", 20, "q20again"));
}

/* del_puts, then del_deletes over them; with flush_puts the puts are in an SSTable first. */
static void del_write(ts_tablet *t, bool flush_puts)
{
    del_puts(t);
    if (flush_puts) tu_flush(t);
    del_deletes(t);
}

/* A tablet over the tu_schema_abc schema holding del_write(flush_puts). */
static void del_start(tu_fx *f, ts_durability d, bool flush_puts)
{
    tu_start_abc(f, d);
    del_write(f->t, flush_puts);
}

/* Point reads of every row agree with the scan. */
static void del_check(ts_tablet *t, const char *want, const char *what)
{
    tu_expect_scan(t, NULL, want, what);
    static const char *rows[] = {"r", "s", "u", "w", "x"};
    for (size_t i = 0; i < 5; i++) {
        char *line = NULL;
        const char *p = want;
        while (*p) {
            const char *e = strchr(p, '\n');
            if (strncmp(p, rows[i], 1) == 0 && p[1] == ':') line = strndup(p, (size_t)(e - p + 1));
            p = e + 1;
        }
        tu_expect_read(t, rows[i], NULL, line ? line : "", what);
        free(line);
    }
}


Test(tablet, deletes_in_memtable)
{
    tu_fx f;
    del_start(&f, TS_DURABILITY_NONE, false);
    del_check(f.t, DEL_WANT1, "memtable after deletes");
    del_again(f.t);
    del_check(f.t, DEL_WANT2, "memtable after puts over deletes");
    ts_tablet_stats st;
    ts_tablet_get_stats(f.t, &st);
    cr_assert_eq(st.n_sstables, 0);
    tu_finish(&f);
}

Test(tablet, deletes_across_sstables)
{
    tu_fx f;
    del_start(&f, TS_DURABILITY_NONE, true);
    del_check(f.t, DEL_WANT1, "markers in memtable, data in sstable");
    tu_flush(f.t);
    tu_sst_stat st;
    tu_sst_scan(f.tdir, &st);
    cr_assert_eq(st.files, 2);
    cr_assert_gt(st.markers, 0);
    del_check(f.t, DEL_WANT1, "markers and data in two sstables");
    del_again(f.t);
    del_check(f.t, DEL_WANT2, "puts over deletes in memtable");
    tu_flush(f.t);
    del_check(f.t, DEL_WANT2, "three sstables");
    tu_finish(&f);
}

Test(tablet, deletes_after_major_compaction)
{
    tu_fx f;
    del_start(&f, TS_DURABILITY_NONE, true);
    tu_flush(f.t);
    tu_compact(f.t);
    del_check(f.t, DEL_WANT1, "compacted deletes");
    tu_sst_stat st;
    tu_sst_scan(f.tdir, &st);
    cr_assert_eq(st.files, 1);
    cr_assert_eq(st.markers, 0, "deletion markers survived a major compaction");
    cr_assert_eq(st.puts, 6, "deleted cells survived a major compaction (%llu puts)", (unsigned long long)st.puts);
    del_again(f.t);
    del_check(f.t, DEL_WANT2, "puts over compacted deletes");
    tu_compact(f.t);
    del_check(f.t, DEL_WANT2, "compacted again");
    /* a later write with an old timestamp into a column emptied by a compacted delete */
    MUT(f.t, "u", SET("a", "q", 0, "u0"));
    MUT(f.t, "s", SET("b", "q", 0, "sb0"));
    const char *want3 =
        "r: a:p@11=p11 a:q@40=q40 a:q@20=q20again a:q@10=q10 b:q@5=b5again c:q@5=c5\n"
        "s: a:q@1=s1again b:q@0=sb0\n"
        "u: a:q@1=u1again a:q@0=u0\n"
        "w: a:q@60=w60 a:q@10=w10\n"
        "x: a:q@10=x10\n";
    del_check(f.t, want3, "later writes");
    tu_compact(f.t);
    del_check(f.t, want3, "later writes compacted");
    tu_reopen(&f);
    del_check(f.t, want3, "reopened");
    tu_finish(&f);
}

Test(tablet, deletes_after_reopen_and_replay)
{
    tu_fx f;
    /* (1) everything in the commit log only */
    del_start(&f, TS_DURABILITY_SYNC, false);
    tu_crash_reopen(&f);
    del_check(f.t, DEL_WANT1, "replayed deletes");
    del_again(f.t);
    tu_crash_reopen(&f);
    del_check(f.t, DEL_WANT2, "replayed puts over deletes");
    tu_reopen(&f);
    del_check(f.t, DEL_WANT2, "orderly reopen");
    tu_finish(&f);

    /* (2) data flushed, markers only in the log */
    del_start(&f, TS_DURABILITY_SYNC, true);
    tu_crash_reopen(&f);
    del_check(f.t, DEL_WANT1, "replayed markers over flushed data");
    del_again(f.t);
    tu_flush(f.t);
    tu_crash_reopen(&f);
    del_check(f.t, DEL_WANT2, "all flushed");
    tu_finish(&f);
}

Test(tablet, close_and_reopen_in_the_same_engine_keeps_unflushed_writes)
{
    static const ts_durability modes[] = {TS_DURABILITY_SYNC, TS_DURABILITY_GROUP, TS_DURABILITY_NONE};
    for (int i = 0; i < 3; i++) {
        tu_fx f;
        ts_schema s;
        tu_schema_abc(&s);
        tu_init(&f, modes[i]);
        f.eo.group_ms = 1000;  /* records stay buffered while the tablet closes and reopens */
        tu_engine_open(&f);
        tu_create(&f, &s, NULL, NULL);
        del_write(f.t, false);
        tu_reopen_tablet(&f);  /* same engine, same log */
        del_check(f.t, DEL_WANT1, "reopened in the same engine");
        del_again(f.t);
        tu_flush(f.t);
        MUT(f.t, "x", SET("a", "q", 10, "x10"));  /* the same cell again, unflushed */
        tu_reopen_tablet(&f);
        del_check(f.t, DEL_WANT2, "reopened twice in the same engine");
        tu_reopen(&f);
        del_check(f.t, DEL_WANT2, "new engine");
        tu_finish(&f);
    }
}

Test(tablet, delete_order_within_one_mutation)
{
    tu_fx f;
    tu_start_abc(&f, TS_DURABILITY_NONE);
    MUT(f.t, "a", SET("a", "q", 5, "x"), DELROW());
    MUT(f.t, "b", DELROW(), SET("a", "q", 5, "y"));
    MUT(f.t, "c", SET("b", "q", 5, "x"), DELFAM("b"), SET("b", "r", 1, "z"));
    MUT(f.t, "d", SET("a", "q", 5, "x"), DEL("a", "q", 5, 6), SET("a", "q", 4, "w"));
    const char *want = "b: a:q@5=y\nc: b:r@1=z\nd: a:q@4=w\n";
    tu_expect_scan(f.t, NULL, want, "memtable");
    tu_flush(f.t);
    tu_expect_scan(f.t, NULL, want, "flushed");
    tu_compact(f.t);
    tu_expect_scan(f.t, NULL, want, "compacted");
    tu_finish(&f);
}

/* ---- locality groups ------------------------------------------------------------------------------ */

static void two_group_schema(ts_schema *s)
{
    ts_schema_init(s);
    s->n_groups = 2;
    strcpy(s->groups[1].name, "lg1");
    s->groups[1].compress = false;
    s->groups[1].bloom = TS_BLOOM_ROW_COLUMN;
    s->groups[1].block_size = 1024;
    cr_assert_eq(ts_schema_add_family(s, "a", 0, 0), BT_OK);
    cr_assert_eq(ts_schema_add_family(s, "b", 0, 0), BT_OK);
    cr_assert_eq(ts_schema_add_family(s, "c", 0, 0), BT_OK);
    cr_assert_eq(ts_schema_add_family(s, "d", 0, 0), BT_OK);
    s->families[2].group = 1;
    s->families[3].group = 1;
    cr_assert_eq(ts_schema_validate(s), BT_OK);
}

/* Checks rows [0, n) through family-restricted and full reads; rows in dead[] are deleted. */
static void groups_check(ts_tablet *t, int n, int extra, bool (*dead)(int))
{
    ts_column_ref cc = {.family = "c", .family_len = 1}, ca = {.family = "a", .family_len = 1};
    ts_read_options oc = {.columns = &cc, .n_columns = 1}, oa = {.columns = &ca, .n_columns = 1};
    tu_sb all = {0}, onlyc = {0};
    for (int i = 0; i < n + extra; i++) {
        char row[32], want[160];
        snprintf(row, sizeof row, "row%04d", i);
        if (dead(i)) {
            tu_expect_read(t, row, &oc, "", "deleted row, family c");
            tu_expect_read(t, row, &oa, "", "deleted row, family a");
            tu_expect_read(t, row, NULL, "", "deleted row");
            continue;
        }
        if (i < n) {
            snprintf(want, sizeof want, "%s: c:x@1=c%d\n", row, i);
            tu_expect_read(t, row, &oc, want, "family c");
            tu_sb_printf(&onlyc, "%s", want);
            snprintf(want, sizeof want, "%s: a:x@1=a%d a:y@2=a2-%d\n", row, i, i);
            tu_expect_read(t, row, &oa, want, "family a");
            snprintf(want, sizeof want, "%s: a:x@1=a%d a:y@2=a2-%d b:x@1=b%d c:x@1=c%d d:x@1=d%d\n", row, i, i,
                     i, i, i);
        } else {
            tu_expect_read(t, row, &oc, "", "no c in extra rows");
            snprintf(want, sizeof want, "%s: a:x@1=a%d\n", row, i);
            tu_expect_read(t, row, &oa, want, "family a in extra rows");
        }
        tu_expect_read(t, row, NULL, want, "whole row");
        tu_sb_printf(&all, "%s", want);
    }
    char *w = tu_sb_take(&all);
    tu_expect_scan(t, NULL, w, "scan all");
    free(w);
    w = tu_sb_take(&onlyc);
    tu_expect_scan(t, &oc, w, "scan family c");
    free(w);
}

static bool none_dead(int i) { (void)i; return false; }
static bool some_dead(int i) { return i % 10 == 3; }

Test(tablet, locality_groups)
{
    tu_fx f;
    ts_schema s;
    two_group_schema(&s);
    tu_start(&f, &s, TS_DURABILITY_NONE);
    const int n = 100, extra = 50;
    for (int i = 0; i < n; i++) {
        char row[32], va[32], va2[32], vb[32], vc[32], vd[32];
        snprintf(row, sizeof row, "row%04d", i);
        snprintf(va, sizeof va, "a%d", i);
        snprintf(va2, sizeof va2, "a2-%d", i);
        snprintf(vb, sizeof vb, "b%d", i);
        snprintf(vc, sizeof vc, "c%d", i);
        snprintf(vd, sizeof vd, "d%d", i);
        MUT(f.t, row, SET("a", "x", 1, va), SET("b", "x", 1, vb), SET("c", "x", 1, vc), SET("d", "x", 1, vd),
            SET("a", "y", 2, va2));
    }
    tu_flush(f.t);
    tu_sst_stat st;
    tu_sst_scan(f.tdir, &st);
    cr_assert_eq(st.files, 2, "one SSTable per locality group");
    cr_assert(st.fams[0] == 0x3u || st.fams[0] == 0xcu, "file 0 mixes groups: %x", st.fams[0]);
    cr_assert(st.fams[1] == 0x3u || st.fams[1] == 0xcu, "file 1 mixes groups: %x", st.fams[1]);
    cr_assert_neq(st.fams[0], st.fams[1]);
    groups_check(f.t, n, 0, none_dead);

    /* data for group 0 only: one new SSTable */
    for (int i = n; i < n + extra; i++) {
        char row[32], va[32];
        snprintf(row, sizeof row, "row%04d", i);
        snprintf(va, sizeof va, "a%d", i);
        MUT(f.t, row, SET("a", "x", 1, va));
    }
    tu_flush(f.t);
    ts_tablet_stats ts;
    ts_tablet_get_stats(f.t, &ts);
    cr_assert_eq(ts.n_sstables, 3);
    groups_check(f.t, n, extra, none_dead);

    /* DeleteRow reaches both groups */
    for (int i = 0; i < n + extra; i++) {
        if (!some_dead(i)) continue;
        char row[32];
        snprintf(row, sizeof row, "row%04d", i);
        MUT(f.t, row, DELROW());
    }
    groups_check(f.t, n, extra, some_dead);
    tu_flush(f.t);
    ts_tablet_get_stats(f.t, &ts);
    cr_assert_eq(ts.n_sstables, 5, "row markers go to every group");
    groups_check(f.t, n, extra, some_dead);
    tu_compact(f.t);
    ts_tablet_get_stats(f.t, &ts);
    cr_assert_eq(ts.n_sstables, 2);
    tu_sst_scan(f.tdir, &st);
    cr_assert_eq(st.files, 2);
    cr_assert_eq(st.markers, 0);
    groups_check(f.t, n, extra, some_dead);
    tu_reopen(&f);
    groups_check(f.t, n, extra, some_dead);

    /* Reads of family c never touch group 0's file: damage that file's data
     * blocks (a new engine has an empty block cache) and read both groups. */
    tu_close(&f);
    char dead[512];
    tu_sst_find(f.tdir, 0x3u, dead, sizeof dead);
    FILE *fp = fopen(dead, "r+b");
    cr_assert_not_null(fp);
    uint8_t junk[64];
    memset(junk, 0x5a, sizeof junk);
    cr_assert_eq(fwrite(junk, 1, sizeof junk, fp), sizeof junk);   /* the first data block */
    fclose(fp);
    tu_engine_open(&f);
    tu_open_tablet(&f);
    ts_column_ref cc = {.family = "c", .family_len = 1}, ca = {.family = "a", .family_len = 1};
    ts_read_options oc = {.columns = &cc, .n_columns = 1}, oa = {.columns = &ca, .n_columns = 1};
    tu_expect_read(f.t, "row0000", &oc, "row0000: c:x@1=c0\n", "family c with group 0 damaged");
    char *txt = tu_scan_text(f.t, &oc);
    cr_assert_eq(count_lines(txt), n - n / 10, "family c scan with group 0 damaged");
    free(txt);
    ts_row r;
    int rc = ts_tablet_read_row(f.t, (const uint8_t *)"row0000", 7, &oa, &r);
    cr_assert_eq(rc, BT_ECORRUPT, "family a read through a damaged block: %s", bt_errname(rc));
    tu_finish(&f);
}

/* ---- compactions ------------------------------------------------------------------------------------ */

/* The a:v value fill_rows(tag) writes into row i: vlen bytes and a NUL into val. */
static void row_value(char *val, int vlen, const char *tag, int i)
{
    int n = snprintf(val, (size_t)vlen + 1, "%s-%d-", tag, i);
    for (int k = n; k < vlen; k++) val[k] = (char)('a' + (i + k) % 26);
    val[vlen] = '\0';
}

static void fill_rows(ts_tablet *t, int from, int to, int vlen, const char *tag)
{
    char *val = malloc((size_t)vlen + 1);
    for (int i = from; i < to; i++) {
        char row[32];
        snprintf(row, sizeof row, "row%05d", i);
        row_value(val, vlen, tag, i);
        MUT(t, row, SET("a", "v", 1, val), SET("b", "w", 2, tag));
    }
    free(val);
}

/* Rows [from, to) hold exactly what fill_rows(tag) wrote, and the scan has nothing else. */
static void check_rows(ts_tablet *t, int from, int to, int vlen, const char *tag)
{
    ts_scanner *sc;
    cr_assert_eq(ts_tablet_scan(t, NULL, &sc), BT_OK);
    ts_row r;
    int i = from, rc;
    char *val = malloc((size_t)vlen + 1);
    while ((rc = ts_scanner_next(sc, &r)) == BT_OK) {
        char row[32];
        snprintf(row, sizeof row, "row%05d", i);
        cr_assert_lt(i, to, "extra row %.*s", (int)r.key_len, r.key);
        cr_assert(r.key_len == strlen(row) && memcmp(r.key, row, r.key_len) == 0, "row %d: got %.*s", i,
                  (int)r.key_len, r.key);
        cr_assert_eq(r.n_cells, 2, "row %s", row);
        row_value(val, vlen, tag, i);
        cr_assert(r.cells[0].value_len == (size_t)vlen && memcmp(r.cells[0].value, val, (size_t)vlen) == 0,
                  "row %s: wrong value", row);
        cr_assert(r.cells[1].value_len == strlen(tag) && memcmp(r.cells[1].value, tag, strlen(tag)) == 0);
        i++;
    }
    cr_assert_eq(rc, BT_ENOTFOUND, "%s", bt_errmsg());
    cr_assert_eq(i, to, "scan stopped at row %d of [%d, %d)", i, from, to);
    ts_scanner_close(sc);
    free(val);
}

Test(tablet, background_compactions)
{
    tu_fx f;
    ts_schema s;
    tu_schema_abc(&s);
    tu_start_tuned(&f, &s, 64 << 10, 3);
    const int n = 6000, vlen = 200;
    fill_rows(f.t, 0, n, vlen, "one");
    cr_assert_eq(ts_tablet_wait_idle(f.t), BT_OK);
    ts_tablet_stats st;
    ts_tablet_get_stats(f.t, &st);
    cr_assert_geq(st.minor_compactions, 5, "minor %llu", (unsigned long long)st.minor_compactions);
    cr_assert_gt(st.merging_compactions + st.major_compactions, 0, "no merging compaction ran");
    cr_assert_lt(st.n_sstables, 3, "idle with %u SSTables (merge_trigger 3)", st.n_sstables);
    check_rows(f.t, 0, n, vlen, "one");
    /* overwrite half with newer versions; read newest only */
    fill_rows(f.t, 0, n / 2, vlen, "two");
    cr_assert_eq(ts_tablet_wait_idle(f.t), BT_OK);
    ts_read_options o = {.versions = 1};
    ts_scanner *sc;
    cr_assert_eq(ts_tablet_scan(f.t, &o, &sc), BT_OK);
    ts_row r;
    int rows = 0;
    while (ts_scanner_next(sc, &r) == BT_OK) {
        const char *want = rows < n / 2 ? "two" : "one";
        cr_assert_eq(r.n_cells, 2);
        cr_assert(r.cells[1].value_len == 3 && memcmp(r.cells[1].value, want, 3) == 0, "row %d", rows);
        rows++;
    }
    ts_scanner_close(sc);
    cr_assert_eq(rows, n);

    cr_assert_eq(ts_tablet_compact(f.t), BT_OK);
    ts_tablet_get_stats(f.t, &st);
    cr_assert_eq(st.n_sstables, 1, "major compaction left %u SSTables", st.n_sstables);
    cr_assert_geq(st.major_compactions, 1);
    cr_assert_eq(st.memtable_bytes < (64u << 10), true);
    cr_assert_eq(tu_sst_count_family(f.tdir, "b"), (uint64_t)n, "overwritten cells survived");
    tu_reopen(&f);
    ts_tablet_get_stats(f.t, &st);
    cr_assert_eq(st.n_sstables, 1);
    cr_assert_eq(ts_tablet_scan(f.t, &o, &sc), BT_OK);
    rows = 0;
    while (ts_scanner_next(sc, &r) == BT_OK) rows++;
    ts_scanner_close(sc);
    cr_assert_eq(rows, n);
    tu_finish(&f);
}

/* Rows i % 10 == 0 deleted, == 1 lost family b, == 2 lost column a:v. */
static void check_partial(ts_tablet *t, int n, int vlen, const char *what)
{
    for (int i = 0; i < n; i++) {
        char row[32];
        snprintf(row, sizeof row, "row%05d", i);
        ts_row r;
        int rc = ts_tablet_read_row(t, (const uint8_t *)row, strlen(row), NULL, &r);
        if (i % 10 == 0) {
            cr_assert_eq(rc, BT_ENOTFOUND, "%s: deleted row %s is back", what, row);
            continue;
        }
        cr_assert_eq(rc, BT_OK, "%s: row %s: %s", what, row, bt_errmsg());
        size_t want = i % 10 == 1 || i % 10 == 2 ? 1 : 2;
        cr_assert_eq(r.n_cells, want, "%s: row %s has %zu cells", what, row, r.n_cells);
        if (i % 10 == 1) cr_assert(r.cells[0].family[0] == 'a' && r.cells[0].value_len == (size_t)vlen);
        if (i % 10 == 2) cr_assert(r.cells[0].family[0] == 'b');
        ts_row_free(&r);
    }
}

Test(tablet, merging_compaction_of_newer_sstables_keeps_markers)
{
    tu_fx f;
    ts_schema s;
    tu_schema_abc(&s);
    tu_start_tuned(&f, &s, 0, 16);
    const int n = 400, vlen = 1000;
    fill_rows(f.t, 0, n, vlen, "big");
    tu_flush(f.t);
    /* small SSTables of markers over the big one */
    for (int k = 0; k < 4; k++) {
        if (k == 3) {
            /* more SSTables than the trigger: the next merge takes the newest
             * (size-tiered) and leaves the big, oldest one out */
            ts_tablet_stats st;
            ts_tablet_get_stats(f.t, &st);
            cr_assert_eq(st.n_sstables, 4);
            f.eo.merge_trigger = 3;
            tu_reopen(&f);
        }
        for (int i = k % 3; i < n; i += 10) {
            char row[32];
            snprintf(row, sizeof row, "row%05d", i);
            if (k % 3 == 0) MUT(f.t, row, DELROW());
            if (k == 1) MUT(f.t, row, DELFAM("b"));
            if (k == 2) MUT(f.t, row, DEL("a", "v", 0, 0));
        }
        tu_flush(f.t);
    }
    check_partial(f.t, n, vlen, "before merging");
    cr_assert_eq(ts_tablet_wait_idle(f.t), BT_OK);
    ts_tablet_stats st;
    ts_tablet_get_stats(f.t, &st);
    cr_assert_eq(st.merging_compactions, 1, "expected one partial merge (%llu merging, %llu major)",
                 (unsigned long long)st.merging_compactions, (unsigned long long)st.major_compactions);
    cr_assert_eq(st.major_compactions, 0);
    cr_assert_eq(st.n_sstables, 2);
    tu_sst_stat ss;
    tu_sst_scan(f.tdir, &ss);
    cr_assert_eq(ss.files, 2);
    cr_assert_gt(ss.markers, 0, "a partial merge dropped the markers");
    check_partial(f.t, n, vlen, "after a merging compaction");
    tu_reopen(&f);
    check_partial(f.t, n, vlen, "reopened");
    tu_compact(f.t);
    tu_sst_scan(f.tdir, &ss);
    cr_assert_eq(ss.files, 1);
    cr_assert_eq(ss.markers, 0);
    check_partial(f.t, n, vlen, "after a major compaction");
    tu_finish(&f);
}

Test(tablet, major_compaction_leaves_one_sstable_per_group)
{
    tu_fx f;
    ts_schema s;
    two_group_schema(&s);
    /* no background merges: they could leave one table per group already
     * (when the last merge happens to take every table), and then there
     * would be nothing to show */
    tu_init(&f, TS_DURABILITY_NONE);
    f.eo.memtable_bytes = 32 << 10;
    f.eo.merge_trigger = 1000;
    f.eo.slowdown_sstables = 1000;
    f.eo.stop_sstables = 1000;
    tu_engine_open(&f);
    tu_create(&f, &s, NULL, NULL);
    for (int i = 0; i < 3000; i++) {
        char row[32], v[64];
        snprintf(row, sizeof row, "row%04d", i % 1000);
        snprintf(v, sizeof v, "value-%d-0123456789abcdef0123456789", i);
        MUT(f.t, row, SET("a", "x", i, v), SET("c", "y", i, v));
    }
    cr_assert_eq(ts_tablet_wait_idle(f.t), BT_OK);
    ts_tablet_stats st;
    ts_tablet_get_stats(f.t, &st);
    cr_assert_gt(st.n_sstables, 2);
    tu_compact(f.t);
    ts_tablet_get_stats(f.t, &st);
    cr_assert_eq(st.n_sstables, 2);
    tu_sst_stat ss;
    tu_sst_scan(f.tdir, &ss);
    cr_assert_eq(ss.files, 2, "obsolete SSTables left behind");
    cr_assert_eq(ss.entries, 6000);
    ts_read_options o = {.versions = 1};
    char *txt = tu_scan_text(f.t, &o);
    cr_assert_eq(count_lines(txt), 1000);
    cr_assert_not_null(strstr(txt, "row0999: a:x@2999=value-2999-0123456789abcdef0123456789 "
                                   "c:y@2999=value-2999-0123456789abcdef0123456789\n"));
    free(txt);
    tu_finish(&f);
}

/* ---- split ------------------------------------------------------------------------------------------- */

static int count_scan_rows(ts_tablet *t, char *first, char *last)
{
    ts_scanner *sc;
    cr_assert_eq(ts_tablet_scan(t, NULL, &sc), BT_OK);
    ts_row r;
    int n = 0;
    while (ts_scanner_next(sc, &r) == BT_OK) {
        if (n == 0 && first) snprintf(first, 32, "%.*s", (int)r.key_len, r.key);
        if (last) snprintf(last, 32, "%.*s", (int)r.key_len, r.key);
        n++;
    }
    ts_scanner_close(sc);
    return n;
}

/* child holds exactly rows [from, to) as written by fill_rows(tag); the others are not served. */
static void check_child(ts_tablet *c, int from, int to, int total, int vlen, const char *tag)
{
    check_rows(c, from, to, vlen, tag);
    for (int i = 0; i < total; i += 37) {
        char row[32];
        snprintf(row, sizeof row, "row%05d", i);
        ts_row r;
        int rc = ts_tablet_read_row(c, (const uint8_t *)row, strlen(row), NULL, &r);
        if (i >= from && i < to) {
            cr_assert_eq(rc, BT_OK, "%s: %s", row, bt_errmsg());
            ts_row_free(&r);
        } else {
            cr_assert_eq(rc, BT_ENOTSERVING, "%s read from the wrong child", row);
        }
    }
}

/* The directories ROOT/<left> and ROOT/<right> for the two children of a split. */
typedef struct child_dirs { char left[160], right[160]; } child_dirs;

static child_dirs child_dirs_in(const tu_fx *f, const char *left, const char *right)
{
    child_dirs d;
    snprintf(d.left, sizeof d.left, "%s/%s", f->root, left);
    snprintf(d.right, sizeof d.right, "%s/%s", f->root, right);
    return d;
}

Test(tablet, split_at_explicit_row)
{
    tu_fx f;
    tu_start_abc(&f, TS_DURABILITY_NONE);
    const int n = 400, vlen = 100;
    fill_rows(f.t, 0, 150, vlen, "v");
    tu_flush(f.t);
    fill_rows(f.t, 150, 300, vlen, "v");
    tu_flush(f.t);
    fill_rows(f.t, 300, n, vlen, "v");  /* memtable: split flushes it */
    MUT(f.t, "row00010", DELROW());
    MUT(f.t, "row00010", SET("a", "v", 0, "x"));
    MUT(f.t, "row00010", DELROW());
    fill_rows(f.t, 10, 11, vlen, "v");

    child_dirs d = child_dirs_in(&f, "left", "right");
    ts_tablet *L = NULL, *R = NULL;
    ts_tablet *parent = f.t;
    int rc = ts_tablet_split(parent, (const uint8_t *)"row00200", 8, d.left, 2, d.right, 3, &L, &R);
    cr_assert_eq(rc, BT_OK, "split: %s", bt_errmsg());
    f.t = NULL;
    cr_assert_eq(ts_tablet_id(L), 2);
    cr_assert_eq(ts_tablet_id(R), 3);
    check_child(L, 0, 200, n, vlen, "v");
    check_child(R, 200, n, n, vlen, "v");

    ts_mutation m = SET("a", "v", 5, "new");
    EXPECT_ERR(ts_tablet_mutate_row(L, (const uint8_t *)"row00200", 8, &m, 1), BT_ENOTSERVING);
    EXPECT_ERR(ts_tablet_mutate_row(L, (const uint8_t *)"zzz", 3, &m, 1), BT_ENOTSERVING);
    EXPECT_ERR(ts_tablet_mutate_row(R, (const uint8_t *)"row00199", 8, &m, 1), BT_ENOTSERVING);
    EXPECT_ERR(ts_tablet_mutate_row(R, (const uint8_t *)"a", 1, &m, 1), BT_ENOTSERVING);
    MUT(L, "row00199x", SET("a", "v", 5, "new"), SET("b", "w", 5, "v"));
    cr_assert_eq(ts_tablet_mutate_row(L, (const uint8_t *)"row00199x", 9, &m, 1), BT_OK);
    cr_assert_eq(count_scan_rows(L, NULL, NULL), 201);
    cr_assert_eq(ts_tablet_read_row(R, (const uint8_t *)"row00199x", 9, NULL, &(ts_row){0}), BT_ENOTSERVING);
    MUT(L, "row00199x", DELROW());

    /* splitting at a row outside the range, or at its start, fails and the tablet goes on */
    child_dirs x = child_dirs_in(&f, "x3", "x4");
    ts_tablet *a = NULL, *b = NULL;
    EXPECT_ERR(ts_tablet_split(L, (const uint8_t *)"row00300", 8, x.left, 4, x.right, 5, &a, &b), BT_EINVAL);
    EXPECT_ERR(ts_tablet_split(R, (const uint8_t *)"row00100", 8, x.left, 4, x.right, 5, &a, &b), BT_EINVAL);
    EXPECT_ERR(ts_tablet_split(R, (const uint8_t *)"row00200", 8, x.left, 4, x.right, 5, &a, &b), BT_EINVAL);
    cr_assert_null(a);
    cr_assert_null(b);
    MUT(R, "row00250", SET("c", "z", 1, "after failed split"));
    MUT(R, "row00250", DELFAM("c"));

    /* children survive close + reopen */
    cr_assert_eq(ts_tablet_close(L), BT_OK);
    cr_assert_eq(ts_tablet_close(R), BT_OK);
    cr_assert_eq(ts_engine_close(f.e), BT_OK);
    f.e = NULL;
    tu_engine_open(&f);
    cr_assert_eq(ts_tablet_open(f.e, d.left, &L), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(ts_tablet_open(f.e, d.right, &R), BT_OK, "%s", bt_errmsg());
    check_child(L, 0, 200, n, vlen, "v");
    check_child(R, 200, n, n, vlen, "v");

    /* a child's compaction rewrites its half; the sibling still reads the inherited files */
    tu_compact(L);
    tu_sst_stat st;
    tu_sst_scan(d.left, &st);
    cr_assert_eq(st.files, 1);
    cr_assert_eq(st.puts, 2 * 200, "left child's compaction copied other rows");
    tu_sst_scan(f.tdir, &st);
    cr_assert_geq(st.files, 2, "parent files were deleted");
    check_child(R, 200, n, n, vlen, "v");
    check_child(L, 0, 200, n, vlen, "v");
    tu_compact(R);
    tu_sst_scan(d.right, &st);
    cr_assert_eq(st.puts, 2 * 200);
    check_child(R, 200, n, n, vlen, "v");
    tu_sst_scan(f.tdir, &st);
    cr_assert_geq(st.files, 2, "parent files were deleted");
    cr_assert_eq(ts_tablet_close(L), BT_OK);
    cr_assert_eq(ts_tablet_close(R), BT_OK);
    tu_finish(&f);
}

Test(tablet, split_at_middle_from_indexes)
{
    tu_fx f;
    tu_start_abc(&f, TS_DURABILITY_NONE);
    const int n = 2000, vlen = 120;
    fill_rows(f.t, 0, n, vlen, "m");
    child_dirs d = child_dirs_in(&f, "left", "right");
    ts_tablet *L = NULL, *R = NULL;
    int rc = ts_tablet_split(f.t, NULL, 0, d.left, 7, d.right, 8, &L, &R);
    cr_assert_eq(rc, BT_OK, "split: %s", bt_errmsg());
    f.t = NULL;
    char lfirst[32], llast[32], rfirst[32], rlast[32];
    int nl = count_scan_rows(L, lfirst, llast), nr = count_scan_rows(R, rfirst, rlast);
    cr_assert_eq(nl + nr, n);
    cr_assert_gt(nl, n / 5, "left child got %d rows", nl);
    cr_assert_gt(nr, n / 5, "right child got %d rows", nr);
    cr_assert_str_eq(lfirst, "row00000");
    cr_assert_str_eq(rlast, "row01999");
    cr_assert_lt(strcmp(llast, rfirst), 0);
    int mid = atoi(rfirst + 3);
    check_child(L, 0, mid, n, vlen, "m");
    check_child(R, mid, n, n, vlen, "m");
    /* splitting again works on the inherited files and their ranges */
    child_dirs of_left = child_dirs_in(&f, "ll", "lr");
    ts_tablet *LL = NULL, *LR = NULL;
    rc = ts_tablet_split(L, (const uint8_t *)"row00100", 8, of_left.left, 9, of_left.right, 10, &LL, &LR);
    cr_assert_eq(rc, BT_OK, "second split: %s", bt_errmsg());
    check_child(LL, 0, 100, n, vlen, "m");
    check_child(LR, 100, mid, n, vlen, "m");
    tu_compact(LR);
    check_child(LR, 100, mid, n, vlen, "m");
    check_child(R, mid, n, n, vlen, "m");
    cr_assert_eq(ts_tablet_close(LL), BT_OK);
    cr_assert_eq(ts_tablet_close(LR), BT_OK);
    cr_assert_eq(ts_tablet_close(R), BT_OK);
    tu_finish(&f);
}

/* ---- schema and manifest --------------------------------------------------------------------------- */

Test(tablet, set_schema_adds_a_family)
{
    tu_fx f;
    ts_schema s;
    ts_schema_init(&s);
    cr_assert_eq(ts_schema_add_family(&s, "a", 0, 0), BT_OK);
    tu_start(&f, &s, TS_DURABILITY_SYNC);
    MUT(f.t, "r", SET("a", "q", 1, "x"));
    ts_mutation m = SET("n", "q", 1, "y");
    EXPECT_ERR(ts_tablet_mutate_row(f.t, (const uint8_t *)"r", 1, &m, 1), BT_ENOTFOUND);
    tu_flush(f.t);
    ts_schema s2 = s;
    cr_assert_eq(ts_schema_add_family(&s2, "n", 3, 0), BT_OK);
    cr_assert_eq(ts_tablet_set_schema(f.t, &s2), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(ts_tablet_schema(f.t)->n_families, 2);
    MUT(f.t, "r", SET("n", "q", 1, "y"));
    tu_expect_read(f.t, "r", NULL, "r: a:q@1=x n:q@1=y\n", "new family");
    ts_schema bad = s2;
    strcpy(bad.families[1].name, "a");
    EXPECT_ERR(ts_tablet_set_schema(f.t, &bad), BT_EINVAL);
    cr_assert_eq(ts_tablet_schema(f.t)->n_families, 2);
    tu_reopen(&f);
    const ts_schema *got = ts_tablet_schema(f.t);
    cr_assert_eq(got->n_families, 2);
    cr_assert_str_eq(got->families[1].name, "n");
    cr_assert_eq(got->families[1].max_versions, 3);
    tu_expect_read(f.t, "r", NULL, "r: a:q@1=x n:q@1=y\n", "reopened");
    MUT(f.t, "r", SET("n", "q", 2, "z"));
    tu_crash_reopen(&f);
    tu_expect_read(f.t, "r", NULL, "r: a:q@1=x n:q@2=z n:q@1=y\n", "replayed into the new family");
    tu_finish(&f);
}

/* ---- fencing ------------------------------------------------------------------------ */

/* An env over the POSIX one whose SSTable syncs can be held at a gate: once
 * armed, the first sync of a ".sst" file waits until the test opens it. */
typedef struct gate {
    bt_env env;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool armed, blocked, open;
} gate;

typedef struct gate_wfile {
    bt_wfile f;
    bt_wfile *inner;
    gate *g;
    bool sst;
} gate_wfile;

static int gw_append(bt_wfile *f, const void *d, size_t n)
{
    return bt_wfile_append(((gate_wfile *)f)->inner, d, n);
}

static int gw_sync(bt_wfile *f)
{
    gate_wfile *w = (gate_wfile *)f;
    gate *g = w->g;
    pthread_mutex_lock(&g->mu);
    if (w->sst && g->armed) {
        g->armed = false;
        g->blocked = true;
        pthread_cond_broadcast(&g->cv);
        while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return bt_wfile_sync(w->inner);
}

static int gw_close(bt_wfile *f)
{
    gate_wfile *w = (gate_wfile *)f;
    int rc = bt_wfile_close(w->inner);
    free(w);
    return rc;
}

static const struct bt_wfile_ops gate_wfile_ops = { gw_append, gw_sync, gw_close };

static int ge_open_writable(bt_env *e, const char *p, int mode, bt_wfile **out)
{
    gate_wfile *w = calloc(1, sizeof *w);
    if (!w) return BT_ENOMEM;
    int rc = bt_env_open_writable(bt_env_posix(), p, mode, &w->inner);
    if (rc) {
        free(w);
        return rc;
    }
    size_t n = strlen(p);
    w->f.ops = &gate_wfile_ops;
    w->g = (gate *)e;
    w->sst = n > 4 && !strcmp(p + n - 4, ".sst");
    *out = &w->f;
    return BT_OK;
}
static int ge_open_readable(bt_env *e, const char *p, bt_rfile **o) { (void)e; return bt_env_open_readable(bt_env_posix(), p, o); }
static int ge_file_size(bt_env *e, const char *p, uint64_t *s) { (void)e; return bt_env_file_size(bt_env_posix(), p, s); }
static int ge_rename(bt_env *e, const char *a, const char *b) { (void)e; return bt_env_rename(bt_env_posix(), a, b); }
static int ge_remove(bt_env *e, const char *p) { (void)e; return bt_env_remove(bt_env_posix(), p); }
static int ge_mkdir(bt_env *e, const char *p) { (void)e; return bt_env_mkdir(bt_env_posix(), p); }
static int ge_sync_dir(bt_env *e, const char *p) { (void)e; return bt_env_sync_dir(bt_env_posix(), p); }
static int ge_list(bt_env *e, const char *d, bt_env_list_fn fn, void *a) { (void)e; return bt_env_list(bt_env_posix(), d, fn, a); }
static int ge_truncate(bt_env *e, const char *p, uint64_t s) { (void)e; return bt_env_truncate(bt_env_posix(), p, s); }

static const struct bt_env_ops gate_ops = {
    ge_open_writable, ge_open_readable, ge_file_size, ge_rename, ge_remove, ge_mkdir, ge_sync_dir, ge_list,
    ge_truncate, NULL,
};

static void *flush_thread(void *arg)
{
    return (void *)(intptr_t)ts_tablet_flush(arg);
}

/* A tablet fenced while its flush is writing: the flush fails, its output
 * is not installed, and no manifest write succeeds after the fence. */
Test(tablet, fence_discards_a_running_compaction)
{
    static gate g = { .env = { &gate_ops } };
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    tu_fx f;
    ts_schema s;
    tu_schema_abc(&s);
    tu_init(&f, TS_DURABILITY_SYNC);
    f.eo.env = &g.env;
    tu_engine_open(&f);
    tu_create(&f, &s, NULL, NULL);
    MUT(f.t, "r1", SET("a", "q", 1, "x"));
    MUT(f.t, "r2", SET("b", "q", 2, "y"));

    pthread_mutex_lock(&g.mu);
    g.armed = true;
    pthread_mutex_unlock(&g.mu);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, flush_thread, f.t), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.blocked) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    ts_tablet_fence(f.t);     /* the session expired while the SSTable was being written */
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    void *ret;
    pthread_join(th, &ret);
    cr_assert_eq((int)(intptr_t)ret, BT_EFAILED_PRECONDITION, "the fenced flush fails: %s",
                 bt_errname((int)(intptr_t)ret));

    /* nothing was installed, and nothing can be */
    ts_manifest m;
    cr_assert_eq(ts_manifest_read(bt_env_posix(), f.tdir, &m), BT_OK);
    cr_assert_eq(m.n_files, 0, "the discarded output is not in the manifest");
    cr_assert_eq(m.flushed_seq, 0);
    ts_manifest_free(&m);
    ts_tablet_stats st;
    ts_tablet_get_stats(f.t, &st);
    cr_assert_eq(st.n_sstables, 0);
    cr_assert_eq(st.minor_compactions, 0);
    EXPECT_ERR(ts_tablet_flush(f.t), BT_EFAILED_PRECONDITION);
    EXPECT_ERR(ts_tablet_compact(f.t), BT_EFAILED_PRECONDITION);
    ts_schema s2 = s;
    cr_assert_eq(ts_schema_add_family(&s2, "n", 1, 0), BT_OK);
    EXPECT_ERR(ts_tablet_set_schema(f.t, &s2), BT_EFAILED_PRECONDITION);
    cr_assert_eq(ts_tablet_schema(f.t)->n_families, s.n_families);
    tu_expect_scan(f.t, NULL, "r1: a:q@1=x\nr2: b:q@2=y\n", "reads still work");

    /* closed and reopened (by whoever owns it now): the log has the rows */
    tu_reopen_tablet(&f);
    tu_expect_scan(f.t, NULL, "r1: a:q@1=x\nr2: b:q@2=y\n", "replayed");
    tu_flush(f.t);
    ts_tablet_get_stats(f.t, &st);
    cr_assert_gt(st.n_sstables, 0, "a tablet opened again is not fenced");
    tu_finish(&f);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

/* Replaces the file at path with buf[0..len). */
static void write_file(const char *path, const uint8_t *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp, "fopen %s", path);
    cr_assert_eq(fwrite(buf, 1, len, fp), len);
    fclose(fp);
}

Test(tablet, damaged_manifest_is_corruption)
{
    tu_fx f;
    ts_schema s;
    tu_schema_abc(&s);
    tu_start(&f, &s, TS_DURABILITY_NONE);
    MUT(f.t, "r", SET("a", "q", 1, "x"));
    tu_flush(f.t);
    cr_assert_eq(ts_tablet_close(f.t), BT_OK);
    f.t = NULL;
    char path[256];
    snprintf(path, sizeof path, "%s/MANIFEST", f.tdir);
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp);
    uint8_t buf[8192];
    size_t len = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    cr_assert_gt(len, 16);
    ts_tablet *t = NULL;
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0x20;
        write_file(path, buf, len);
        bt_errclear();
        int rc = ts_tablet_open(f.e, f.tdir, &t);
        cr_assert_eq(rc, BT_ECORRUPT, "byte %zu flipped: got %s", i, bt_errname(rc));
        cr_assert_gt(strlen(bt_errmsg()), 0);
        buf[i] ^= 0x20;
    }
    /* truncated, too */
    write_file(path, buf, len / 2);
    cr_assert_eq(ts_tablet_open(f.e, f.tdir, &t), BT_ECORRUPT);
    /* restored: opens and reads */
    write_file(path, buf, len);
    tu_open_tablet(&f);
    tu_expect_read(f.t, "r", NULL, "r: a:q@1=x\n", "restored manifest");
    cr_assert_eq(ts_tablet_close(f.t), BT_OK);
    f.t = NULL;
    /* missing: not found; creating over an existing one: exists */
    char other[160];
    snprintf(other, sizeof other, "%s/none", f.root);
    cr_assert_eq(ts_tablet_open(f.e, other, &t), BT_ENOTFOUND);
    cr_assert_eq(ts_tablet_create(f.e, f.tdir, 1, &s, NULL, 0, NULL, 0, &t), BT_EEXIST);
    tu_finish(&f);
}

/* A version 1 manifest (before bulk loads added global_seq) still opens. */
Test(tablet, version_1_manifest_opens)
{
    tu_fx f;
    ts_schema s;
    tu_schema_abc(&s);
    tu_start(&f, &s, TS_DURABILITY_NONE);
    MUT(f.t, "r", SET("a", "q", 1, "x"));
    tu_flush(f.t);
    cr_assert_eq(ts_tablet_close(f.t), BT_OK);
    f.t = NULL;
    char path[256];
    snprintf(path, sizeof path, "%s/MANIFEST", f.tdir);
    ts_manifest m;
    cr_assert_eq(ts_manifest_read(bt_env_posix(), f.tdir, &m), BT_OK);
    cr_assert_eq(m.n_files, 1);
    cr_assert_eq(m.files[0].global_seq, 0);
    ts_manifest_free(&m);
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp);
    uint8_t buf[8192];
    size_t len = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    /* version 2 ends ..., hi, global_seq (varint 0), checksum: drop the
     * global_seq byte, say version 1, checksum again */
    cr_assert_eq(buf[len - 9], 0);
    memmove(buf + len - 9, buf + len - 8, 8);
    len -= 1;
    bt_put_fixed32(buf + 4, 1);
    bt_put_fixed64(buf + len - 8, XXH64(buf, len - 8, 0));
    write_file(path, buf, len);
    tu_open_tablet(&f);
    tu_expect_read(f.t, "r", NULL, "r: a:q@1=x\n", "version 1 manifest");
    tu_finish(&f);
}

/* ---- concurrency ------------------------------------------------------------------------------------- */

#define CW 4
#define CROWS 40

typedef struct conc {
    ts_tablet *t;
    atomic_bool stop;
    atomic_int errors, mismatches, misorders;
    atomic_long scans, rows_seen, writes;
    uint64_t last[CW][CROWS];   /* per writer: last acknowledged iteration per row */
} conc;

typedef struct wctx { conc *c; int id; } wctx;

static void *conc_writer(void *arg)
{
    wctx *w = arg;
    conc *c = w->c;
    for (uint64_t it = 1; !atomic_load(&c->stop); it++) {
        int k = (int)(it % CROWS);
        char row[32], val[48];
        snprintf(row, sizeof row, "w%d-%02d", w->id, k);
        snprintf(val, sizeof val, "%d-%llu", w->id, (unsigned long long)it);
        ts_mutation m[2] = {SET("a", "x", (int64_t)it, val), SET("b", "y", (int64_t)it, val)};
        int rc = ts_tablet_mutate_row(c->t, (const uint8_t *)row, strlen(row), m, 2);
        if (rc) atomic_fetch_add(&c->errors, 1);
        else {
            c->last[w->id][k] = it;
            atomic_fetch_add(&c->writes, 1);
        }
    }
    return NULL;
}

/* a:x and b:y of a row hold the same newest value. */
static bool row_consistent(const ts_row *r)
{
    const ts_cell *x = NULL, *y = NULL;
    for (size_t i = 0; i < r->n_cells; i++) {
        if (r->cells[i].family[0] == 'a') x = &r->cells[i];
        if (r->cells[i].family[0] == 'b') y = &r->cells[i];
    }
    return r->n_cells == 2 && x && y && x->timestamp == y->timestamp && x->value_len == y->value_len &&
           memcmp(x->value, y->value, x->value_len) == 0;
}

static void *conc_scanner(void *arg)
{
    conc *c = arg;
    ts_read_options o = {.versions = 1};
    unsigned seed = 7;
    while (!atomic_load(&c->stop)) {
        ts_scanner *s;
        if (ts_tablet_scan(c->t, &o, &s)) { atomic_fetch_add(&c->errors, 1); continue; }
        ts_row r;
        int rc;
        char prev[32] = "";
        while ((rc = ts_scanner_next(s, &r)) == BT_OK) {
            if (!row_consistent(&r)) atomic_fetch_add(&c->mismatches, 1);
            char key[32];
            snprintf(key, sizeof key, "%.*s", (int)r.key_len, r.key);
            if (strcmp(prev, key) >= 0) atomic_fetch_add(&c->misorders, 1);
            strcpy(prev, key);
            atomic_fetch_add(&c->rows_seen, 1);
        }
        if (rc != BT_ENOTFOUND) atomic_fetch_add(&c->errors, 1);
        ts_scanner_close(s);
        atomic_fetch_add(&c->scans, 1);
        /* and a point read */
        seed = seed * 1103515245u + 12345u;
        char row[32];
        snprintf(row, sizeof row, "w%u-%02u", (seed >> 8) % CW, (seed >> 16) % CROWS);
        rc = ts_tablet_read_row(c->t, (const uint8_t *)row, strlen(row), &o, &r);
        if (rc == BT_OK) {
            if (!row_consistent(&r)) atomic_fetch_add(&c->mismatches, 1);
            ts_row_free(&r);
        } else if (rc != BT_ENOTFOUND) {
            atomic_fetch_add(&c->errors, 1);
        }
    }
    return NULL;
}

static void *conc_flusher(void *arg)
{
    conc *c = arg;
    for (int i = 1; !atomic_load(&c->stop); i++) {
        struct timespec ts = {0, 15 * 1000000L};
        nanosleep(&ts, NULL);
        int rc = i % 8 == 0 ? ts_tablet_compact(c->t) : ts_tablet_flush(c->t);
        if (rc) atomic_fetch_add(&c->errors, 1);
    }
    return NULL;
}

Test(tablet, concurrent_writers_and_scanners)
{
    tu_fx f;
    ts_schema s;
    tu_schema_abc(&s);
    tu_init(&f, TS_DURABILITY_NONE);
    f.eo.memtable_bytes = 64 << 10;
    f.eo.merge_trigger = 3;
    f.eo.compaction_threads = 2;
    tu_engine_open(&f);
    tu_create(&f, &s, NULL, NULL);
    conc *c = calloc(1, sizeof *c);
    c->t = f.t;
    pthread_t w[CW], sc[2], fl;
    wctx wc[CW];
    for (int i = 0; i < CW; i++) {
        wc[i] = (wctx){c, i};
        cr_assert_eq(pthread_create(&w[i], NULL, conc_writer, &wc[i]), 0);
    }
    for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&sc[i], NULL, conc_scanner, c), 0);
    cr_assert_eq(pthread_create(&fl, NULL, conc_flusher, c), 0);
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    atomic_store(&c->stop, true);
    for (int i = 0; i < CW; i++) pthread_join(w[i], NULL);
    for (int i = 0; i < 2; i++) pthread_join(sc[i], NULL);
    pthread_join(fl, NULL);

    cr_assert_eq(atomic_load(&c->errors), 0, "%d operations failed", atomic_load(&c->errors));
    cr_assert_eq(atomic_load(&c->mismatches), 0, "%d rows seen half-applied", atomic_load(&c->mismatches));
    cr_assert_eq(atomic_load(&c->misorders), 0);
    cr_assert_gt(atomic_load(&c->scans), 0);
    cr_assert_gt(atomic_load(&c->writes), 100);
    /* every acknowledged write is there: the newest value of each row is its writer's last */
    for (int round = 0; round < 2; round++) {
        ts_read_options o = {.versions = 1};
        for (int i = 0; i < CW; i++) {
            for (int k = 0; k < CROWS; k++) {
                if (!c->last[i][k]) continue;
                char row[32], want[200];
                snprintf(row, sizeof row, "w%d-%02d", i, k);
                snprintf(want, sizeof want, "%s: a:x@%llu=%d-%llu b:y@%llu=%d-%llu\n", row,
                         (unsigned long long)c->last[i][k], i, (unsigned long long)c->last[i][k],
                         (unsigned long long)c->last[i][k], i, (unsigned long long)c->last[i][k]);
                tu_expect_read(f.t, row, &o, want, "after the concurrent run");
            }
        }
        if (round == 0) tu_reopen(&f);
    }
    free(c);
    tu_finish(&f);
}

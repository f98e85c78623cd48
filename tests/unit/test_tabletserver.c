/* tests/unit/test_tabletserver.c: integration tests of bt-tabletserver, run
 * against REAL processes on 127.0.0.1: a bt-lockd and a bt-tabletserver per
 * test (fixture in tests/unit/ts_fixture.h), driven through the client
 * connection pool (client/conn.h) and, for the wire-level tests, raw sockets.
 *
 *   every_rpc_end_to_end            each method of tabletserver/ts_proto.h
 *   errors_and_limits               unknown tablet/family, size limits, bad dirs
 *   sequencer_fencing               no / forged / stale master sequencer
 *   truncated_payloads_are_rejected every proper prefix of valid requests
 *   thousand_connections            1000 idle sockets while the pool is served
 *   malformed_frames                bad header, oversize, truncated, unknown method
 *   sigkill_during_sync_writes      acknowledged writes survive SIGKILL (3 rounds)
 *   sigstop_past_lease              no acknowledgement after the lease ran out
 *   lock_file_deleted_exits_3       the master deleting /bt/servers/ts1
 *   scanner_lease_expires           --scanner-lease-ms
 *   clean_shutdown                  SIGTERM: exit 0, lock file gone, data flushed
 *   ts_cli.flags                    --help, bad flags, cannot start
 *   unload_retried_concurrently     a master's retry arriving while the first
 *   load_retried_concurrently         attempt still runs: the server ends in
 *   split_retried_concurrently        the state one command gives, and lives
 *   reassignment_under_load         unload/load cycles under reads and writes
 *   load_of_split_parent_answers_children
 *                                   the SPLIT marker: a parent is never loaded
 *                                   again, its load answers the children
 *   sigkill_then_recover_on_another_server
 *                                   the master's recovery: split the dead log,
 *                                   another server loads every acked write
 *   automatic_split_commits_through_the_hook
 *                                   split_bytes and commit_split (in process),
 *                                   the hook retried after failures
 *
 * Each server incarnation logs to its own servers/<id>/log-<time> dir, so a
 * test that restarts a killed server first recovers the dead log as the
 * master would (tsf_recover_logs: ts_log_split into the tablet dirs).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "common/rpc_codec.h"
#include "tabletserver/server.h"
#include "tests/unit/ts_fixture.h"

#ifdef TSF_TSAN
/* automatic_split_commits_through_the_hook runs a ts_server inside this
 * process: a write batch holds up to 1024 row-stripe mutexes (taken in index
 * order), past the 64 that TSan's deadlock detector can track (it aborts with
 * "CHECK failed: sanitizer_deadlock_detector.h").  Same setting as the
 * fixture gives server processes; data races are still reported. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "detect_deadlocks=0"; }
#endif

/* Criterion 2.4's runner leaks a small allocation when a binary has more than
 * one suite; it is not ours, and LeakSanitizer would fail the ASan build for
 * it (as in test_lock_bt.c).  Suppresses leaks allocated inside libcriterion
 * only; unused without ASan. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcriterion.so\n"; }

/* ---- helpers ------------------------------------------------------------------ */

static int64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return (int64_t)v;
}

static int cam(uint64_t tid, const char *row, const ts_read_options *pred, const ts_mutation *mt, int nt,
               const ts_mutation *mf, int nf, uint64_t *matched)
{
    bt_buf req = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, tid);
    bt_msg_put_bytes(&w, row, strlen(row));
    tsp_put_filter(&w, pred);
    tsp_put_mutations(&w, mt, nt);
    tsp_put_mutations(&w, mf, nf);
    int rc = tsf_call(TSP_CHECK_AND_MUTATE, &req, &resp);
    if (!rc) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, resp.data, resp.len);
        rc = bt_msg_get_varint(&r, matched);
        if (!rc) rc = bt_msg_reader_done(&r);
    }
    bt_buf_free(&req);
    bt_buf_free(&resp);
    return rc;
}

static int rmw(uint64_t tid, const char *row, const tsp_rmw_rule *rules, int n, bt_buf *resp, ts_row *out)
{
    bt_buf req = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, tid);
    bt_msg_put_bytes(&w, row, strlen(row));
    tsp_put_rmw_rules(&w, rules, n);
    int rc = tsf_call(TSP_READ_MODIFY_WRITE, &req, resp);
    bt_buf_free(&req);
    if (rc) return rc;
    bt_msg_reader r;
    bt_msg_reader_init(&r, resp->data, resp->len);
    rc = tsp_get_row(&r, out);
    if (!rc && bt_msg_reader_done(&r)) {
        tsp_row_release(out);
        rc = BT_ECORRUPT;
    }
    return rc;
}

static tsp_rmw_rule rule_inc(const char *fam, const char *qual, int64_t by)
{
    return (tsp_rmw_rule){.family = fam, .family_len = strlen(fam), .qualifier = (const uint8_t *)qual,
                          .qualifier_len = strlen(qual), .kind = TSP_RMW_INCREMENT, .increment = by};
}

static tsp_rmw_rule rule_append(const char *fam, const char *qual, const char *what)
{
    return (tsp_rmw_rule){.family = fam, .family_len = strlen(fam), .qualifier = (const uint8_t *)qual,
                          .qualifier_len = strlen(qual), .kind = TSP_RMW_APPEND,
                          .append = (const uint8_t *)what, .append_len = strlen(what)};
}

/* The newest value of fam:qual in row key of tablet tid (asserts it exists). */
static void assert_value(uint64_t tid, const char *key, const char *fam, const char *qual, const void *val,
                         size_t vl)
{
    ts_column_ref col = {fam, strlen(fam), (const uint8_t *)qual, strlen(qual)};
    ts_read_options ro = {.columns = &col, .n_columns = 1, .versions = 1};
    bt_buf resp = {0};
    ts_row row;
    TS_OK(tsf_read(tid, key, &ro, &resp, &row));
    cr_assert_eq(row.n_cells, 1);
    cr_assert(row.cells[0].value_len == vl && !memcmp(row.cells[0].value, val, vl),
              "%s %s:%s holds \"%.*s\" (%zu bytes)", key, fam, qual, (int)row.cells[0].value_len,
              (const char *)row.cells[0].value, row.cells[0].value_len);
    tsp_row_release(&row);
    bt_buf_free(&resp);
}

static void assert_tablet_range(const tsp_tablet_info *ti, const char *dir, const char *start, const char *end)
{
    cr_assert_not_null(ti);
    cr_assert(tsf_bytes_eq(ti->tablet.table, ti->tablet.table_len, TSF_TABLE));
    cr_assert(tsf_bytes_eq(ti->tablet.dir, ti->tablet.dir_len, dir), "tablet %llu dir %.*s, want %s",
              (unsigned long long)ti->tablet.id, (int)ti->tablet.dir_len, ti->tablet.dir, dir);
    cr_assert(tsf_bytes_eq(ti->tablet.start, ti->tablet.start_len, start), "tablet %llu starts at \"%.*s\", want \"%s\"",
              (unsigned long long)ti->tablet.id, (int)ti->tablet.start_len, (const char *)ti->tablet.start, start);
    cr_assert(tsf_bytes_eq(ti->tablet.end, ti->tablet.end_len, end), "tablet %llu ends at \"%.*s\", want \"%s\"",
              (unsigned long long)ti->tablet.id, (int)ti->tablet.end_len, (const char *)ti->tablet.end, end);
}

/* Ids of the tablets the server lists, sorted, in ids[0..*n). */
static void listed_ids(uint64_t *ids, size_t cap, size_t *n)
{
    bt_buf resp = {0};
    tsp_tablet_info *ti;
    TS_OK(tsf_list(&ti, n, &resp));
    cr_assert_leq(*n, cap);
    for (size_t i = 0; i < *n; i++) ids[i] = ti[i].tablet.id;
    for (size_t i = 1; i < *n; i++)
        for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            uint64_t t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    free(ti);
    bt_buf_free(&resp);
}

static void assert_listed(const uint64_t *want, size_t nwant)
{
    uint64_t ids[64];
    size_t n;
    listed_ids(ids, 64, &n);
    cr_assert_eq(n, nwant, "the server lists %zu tablets, want %zu", n, nwant);
    for (size_t i = 0; i < n; i++) cr_assert_eq(ids[i], want[i], "tablet %zu is %llu, want %llu", i,
                                                (unsigned long long)ids[i], (unsigned long long)want[i]);
}

static uint64_t status_field_open_scanners(void)
{
    bt_buf resp = {0};
    tsp_status st;
    TS_OK(tsf_status(&st, &resp));
    uint64_t v = st.open_scanners;
    bt_buf_free(&resp);
    return v;
}

static bool path_exists(const char *rel)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", F.data_dir, rel);
    struct stat sb;
    return stat(p, &sb) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static uint16_t ts_port(void)
{
    const char *c = strrchr(F.addr, ':');
    cr_assert_not_null(c);
    return (uint16_t)atoi(c + 1);
}

/* ---- 1. every RPC end to end ------------------------------------------------------ */

TS_TEST(every_rpc_end_to_end, tsf_init, 60)
{
    bt_buf resp = {0};
    ts_row row;

    /* status */
    tsp_status st;
    TS_OK(tsf_status(&st, &resp));
    cr_assert(tsf_bytes_eq(st.id, st.id_len, TSF_ID));
    cr_assert(tsf_bytes_eq(st.address, st.address_len, F.addr));
    cr_assert_gt(st.lease_ms_left, 0, "a server that just started has no lease");
    cr_assert_leq(st.lease_ms_left, TSF_LEASE_MS);
    cr_assert_eq(st.n_tablets, 0);
    cr_assert_eq(st.durability, TS_DURABILITY_SYNC);
    cr_assert_gt(st.start_time_us, 0);
    cr_assert_geq(st.connections, 1);
    bt_buf_free(&resp);

    /* load (create), twice: the second is a no-op */
    TS_OK(tsf_load(1, "tables/t/t1", "a", "z", true, F.seqr));
    TS_OK(tsf_load(1, "tables/t/t1", "a", "z", true, F.seqr));
    cr_assert(path_exists("tables/t/t1"), "the tablet directory was not created under --data-dir");

    /* list */
    tsp_tablet_info *ti;
    size_t n;
    TS_OK(tsf_list(&ti, &n, &resp));
    cr_assert_eq(n, 1);
    cr_assert_eq(ti[0].tablet.id, 1);
    assert_tablet_range(&ti[0], "tables/t/t1", "a", "z");
    free(ti);
    bt_buf_free(&resp);

    /* mutate_row: four cells in one row; rows outside [a, z) are refused */
    ts_mutation m[4] = {tsf_set("cf", "q1", 1000, "v1"), tsf_set("cf", "q1", 2000, "v2"),
                        tsf_set("cf", "q1", 3000, "v3"), tsf_set("meta", "x", 1000, "m")};
    TS_OK(tsf_mutate(1, "r1", 2, m, 4));
    TS_RC(tsf_put(1, "zz", "cf", "q", 1, "x"), BT_ENOTSERVING);
    TS_RC(tsf_put(1, "0", "cf", "q", 1, "x"), BT_ENOTSERVING);

    /* mutate_rows: one bad row (unknown family) and one for a tablet not served */
    ts_mutation g2 = tsf_set("cf", "q1", 5, "r2"), bad = tsf_set("nope", "q", 5, "x"),
                g4 = tsf_set("cf", "q1", 5, "r4"), g9 = tsf_set("cf", "q1", 5, "r9");
    tsf_rowmut rows[4] = {{1, "r2", &g2, 1}, {1, "r3", &bad, 1}, {1, "r4", &g4, 1}, {999, "r9", &g9, 1}};
    int *sts;
    size_t nst;
    char detail[256] = "";
    TS_OK(tsf_mutate_rows(rows, 4, &sts, &nst, detail));
    cr_assert_eq(nst, 4);
    cr_assert_eq(sts[0], BT_OK, "row 0: %s", bt_errname(sts[0]));
    cr_assert_eq(sts[1], BT_ENOTFOUND, "row 1 (unknown family): %s", bt_errname(sts[1]));
    cr_assert_eq(sts[2], BT_OK, "row 2: %s", bt_errname(sts[2]));
    cr_assert_eq(sts[3], BT_ENOTSERVING, "row 3 (tablet 999): %s", bt_errname(sts[3]));
    cr_assert_neq(detail[0], '\0', "no detail for the failed rows");
    free(sts);
    TS_OK(tsf_read_rc(1, "r2"));
    TS_RC(tsf_read_rc(1, "r3"), BT_ENOTFOUND);
    TS_OK(tsf_read_rc(1, "r4"));
    assert_value(1, "r4", "cf", "q1", "r4", 2);

    /* read_row and its filters */
    TS_OK(tsf_read(1, "r1", NULL, &resp, &row));
    cr_assert_eq(row.n_cells, 4);
    tsf_assert_cell(&row, 0, "cf", "q1", 3000, "v3");
    tsf_assert_cell(&row, 1, "cf", "q1", 2000, "v2");
    tsf_assert_cell(&row, 2, "cf", "q1", 1000, "v1");
    tsf_assert_cell(&row, 3, "meta", "x", 1000, "m");
    tsp_row_release(&row);
    ts_column_ref q1 = {"cf", 2, (const uint8_t *)"q1", 2}, fam_meta = {"meta", 4, NULL, 0};
    ts_read_options ro = {.columns = &q1, .n_columns = 1};
    TS_OK(tsf_read(1, "r1", &ro, &resp, &row));
    cr_assert_eq(row.n_cells, 3, "column filter cf:q1 gave %zu cells", row.n_cells);
    tsf_assert_cell(&row, 2, "cf", "q1", 1000, "v1");
    tsp_row_release(&row);
    ro = (ts_read_options){.columns = &fam_meta, .n_columns = 1};
    TS_OK(tsf_read(1, "r1", &ro, &resp, &row));
    cr_assert_eq(row.n_cells, 1, "family filter meta gave %zu cells", row.n_cells);
    tsf_assert_cell(&row, 0, "meta", "x", 1000, "m");
    tsp_row_release(&row);
    ro = (ts_read_options){.versions = 1};
    TS_OK(tsf_read(1, "r1", &ro, &resp, &row));
    cr_assert_eq(row.n_cells, 2, "versions 1 gave %zu cells", row.n_cells);
    tsf_assert_cell(&row, 0, "cf", "q1", 3000, "v3");
    tsf_assert_cell(&row, 1, "meta", "x", 1000, "m");
    tsp_row_release(&row);
    ro = (ts_read_options){.columns = &q1, .n_columns = 1, .versions = 2};
    TS_OK(tsf_read(1, "r1", &ro, &resp, &row));
    cr_assert_eq(row.n_cells, 2);
    tsf_assert_cell(&row, 0, "cf", "q1", 3000, "v3");
    tsf_assert_cell(&row, 1, "cf", "q1", 2000, "v2");
    tsp_row_release(&row);
    ro = (ts_read_options){.ts_from = 1500, .ts_to = 3000};
    TS_OK(tsf_read(1, "r1", &ro, &resp, &row));
    cr_assert_eq(row.n_cells, 1, "timestamps [1500, 3000) gave %zu cells", row.n_cells);
    tsf_assert_cell(&row, 0, "cf", "q1", 2000, "v2");
    tsp_row_release(&row);
    ro = (ts_read_options){.ts_from = 1000, .ts_to = 1001};
    TS_OK(tsf_read(1, "r1", &ro, &resp, &row));
    cr_assert_eq(row.n_cells, 2);
    tsf_assert_cell(&row, 0, "cf", "q1", 1000, "v1");
    tsf_assert_cell(&row, 1, "meta", "x", 1000, "m");
    tsp_row_release(&row);
    ro = (ts_read_options){.ts_from = 5000};
    TS_RC(tsf_read(1, "r1", &ro, &resp, &row), BT_ENOTFOUND);
    TS_RC(tsf_read_rc(1, "nothing-here"), BT_ENOTFOUND);
    bt_buf_free(&resp);

    /* scan: 50 rows in batches of at most 7, every row exactly once, in order */
    tsf_fill(1, "s", 0, 50);
    ts_read_options sro = {.prefix = (const uint8_t *)"s", .prefix_len = 1};
    tsf_keys k = {0};
    int batches = tsf_scan_all(1, &sro, 7, &k);
    cr_assert_eq(k.n, 50, "the scan returned %zu rows", k.n);
    for (size_t i = 0; i < k.n; i++) {
        char want[32];
        snprintf(want, sizeof want, "s%03zu", i);
        cr_assert_str_eq(k.key[i], want, "scan row %zu", i);
        cr_assert_str_eq(k.val[i], want);
    }
    cr_assert_geq(batches, 8, "50 rows came in %d batches of at most 7", batches);
    tsf_keys_free(&k);
    /* a row range, across batch boundaries */
    ts_read_options rro = {.start_row = (const uint8_t *)"s010", .start_len = 4,
                           .end_row = (const uint8_t *)"s020", .end_len = 4};
    batches = tsf_scan_all(1, &rro, 3, &k);
    cr_assert_eq(k.n, 10);
    cr_assert_str_eq(k.key[0], "s010");
    cr_assert_str_eq(k.key[9], "s019");
    cr_assert_geq(batches, 4);
    tsf_keys_free(&k);
    cr_assert_eq(status_field_open_scanners(), 0, "finished scanners are still open");

    /* scan_close, then next -> BT_ENOTFOUND */
    tsf_batch b;
    TS_OK(tsf_scan_open(1, &sro, 7, 0, &b));
    cr_assert_eq(b.n, 7, "first batch of %zu rows with max_rows 7", b.n);
    cr_assert_not(b.done);
    uint64_t sid = b.scanner;
    cr_assert_neq(sid, 0);
    tsf_batch_free(&b);
    cr_assert_eq(status_field_open_scanners(), 1);
    TS_OK(tsf_id_call(TSP_SCAN_CLOSE, sid, NULL));
    TS_RC(tsf_scan_next(sid, &b), BT_ENOTFOUND);
    tsf_batch_free(&b);
    TS_RC(tsf_id_call(TSP_SCAN_CLOSE, sid, NULL), BT_ENOTFOUND);
    cr_assert_eq(status_field_open_scanners(), 0);

    /* check_and_mutate: the false branch, then the true one */
    ts_column_ref flag = {"cf", 2, (const uint8_t *)"flag", 4};
    ts_read_options pred = {.columns = &flag, .n_columns = 1};
    ts_mutation mt = tsf_set("cf", "res", 20, "T"), mf = tsf_set("cf", "res", 10, "F");
    uint64_t matched = 99;
    TS_OK(cam(1, "c1", &pred, &mt, 1, &mf, 1, &matched));
    cr_assert_eq(matched, 0);
    assert_value(1, "c1", "cf", "res", "F", 1);
    TS_OK(tsf_put(1, "c1", "cf", "flag", 1, "1"));
    TS_OK(cam(1, "c1", &pred, &mt, 1, &mf, 1, &matched));
    cr_assert_eq(matched, 1);
    assert_value(1, "c1", "cf", "res", "T", 1);
    ts_column_ref res = {"cf", 2, (const uint8_t *)"res", 3};
    ro = (ts_read_options){.columns = &res, .n_columns = 1};
    TS_OK(tsf_read(1, "c1", &ro, &resp, &row));
    cr_assert_eq(row.n_cells, 2, "each check_and_mutate applies exactly one branch");
    tsf_assert_cell(&row, 0, "cf", "res", 20, "T");
    tsf_assert_cell(&row, 1, "cf", "res", 10, "F");
    tsp_row_release(&row);

    /* read_modify_write */
    tsp_rmw_rule r1 = rule_inc("cf", "cnt", 5);
    TS_OK(rmw(1, "k1", &r1, 1, &resp, &row));
    cr_assert_eq(row.n_cells, 1);
    tsf_assert_cell(&row, 0, "cf", "cnt", INT64_MIN, NULL);
    cr_assert_eq(row.cells[0].value_len, 8, "an increment wrote %zu bytes", row.cells[0].value_len);
    cr_assert_eq(be64(row.cells[0].value), 5);
    tsp_row_release(&row);
    static const uint8_t five[8] = {0, 0, 0, 0, 0, 0, 0, 5}, three[8] = {0, 0, 0, 0, 0, 0, 0, 3};
    assert_value(1, "k1", "cf", "cnt", five, 8);
    r1 = rule_inc("cf", "cnt", -2);
    TS_OK(rmw(1, "k1", &r1, 1, &resp, &row));
    cr_assert_eq(be64(row.cells[0].value), 3);
    tsp_row_release(&row);
    assert_value(1, "k1", "cf", "cnt", three, 8);
    r1 = rule_append("cf", "log", "ab");
    TS_OK(rmw(1, "k1", &r1, 1, &resp, &row));
    tsf_assert_cell(&row, 0, "cf", "log", INT64_MIN, "ab");
    tsp_row_release(&row);
    r1 = rule_append("cf", "log", "cd");
    TS_OK(rmw(1, "k1", &r1, 1, &resp, &row));
    tsf_assert_cell(&row, 0, "cf", "log", INT64_MIN, "abcd");
    tsp_row_release(&row);
    assert_value(1, "k1", "cf", "log", "abcd", 4);
    r1 = rule_inc("cf", "log", 1);
    TS_RC(rmw(1, "k1", &r1, 1, &resp, &row), BT_EFAILED_PRECONDITION);
    assert_value(1, "k1", "cf", "log", "abcd", 4);
    assert_value(1, "k1", "cf", "cnt", three, 8);
    /* several rules in one request, two of them on the same column */
    tsp_rmw_rule rs[3] = {rule_inc("cf", "cnt", 10), rule_append("cf", "log", "ef"), rule_inc("cf", "cnt", 2)};
    TS_OK(rmw(1, "k1", rs, 3, &resp, &row));
    cr_assert_eq(row.n_cells, 3);
    cr_assert_eq(be64(row.cells[0].value), 13);
    tsf_assert_cell(&row, 1, "cf", "log", INT64_MIN, "abcdef");
    cr_assert_eq(be64(row.cells[2].value), 15);
    tsp_row_release(&row);
    static const uint8_t fifteen[8] = {0, 0, 0, 0, 0, 0, 0, 15};
    assert_value(1, "k1", "cf", "cnt", fifteen, 8);

    /* flush: an SSTable appears */
    TS_OK(tsf_id_call(TSP_FLUSH, 1, NULL));
    TS_OK(tsf_list(&ti, &n, &resp));
    const tsp_tablet_info *t1 = tsf_find_tablet(ti, n, 1);
    cr_assert_not_null(t1);
    cr_assert_geq(t1->n_sstables, 1, "no SSTable after a flush");
    cr_assert_gt(t1->sstable_bytes, 0);
    free(ti);
    bt_buf_free(&resp);

    /* compact: everything still readable, every version kept (no GC rule) */
    TS_OK(tsf_put(1, "r5", "cf", "q1", 1, "r5"));
    TS_OK(tsf_id_call(TSP_COMPACT, 1, NULL));
    TS_OK(tsf_read(1, "r1", NULL, &resp, &row));
    cr_assert_eq(row.n_cells, 4, "r1 has %zu cells after the compaction", row.n_cells);
    tsf_assert_cell(&row, 1, "cf", "q1", 2000, "v2");
    tsp_row_release(&row);
    assert_value(1, "r5", "cf", "q1", "r5", 2);
    assert_value(1, "k1", "cf", "log", "abcdef", 6);
    batches = tsf_scan_all(1, &sro, 0, &k);
    cr_assert_eq(k.n, 50);
    tsf_keys_free(&k);

    /* split at "m": 2 = [a, m), 3 = [m, z); the parent is gone */
    char mid[256] = "";
    TS_OK(tsf_split(F.seqr, 1, "m", 2, "tables/t/t2", 3, "tables/t/t3", mid));
    cr_assert_str_eq(mid, "m");
    TS_RC(tsf_read_rc(1, "r1"), BT_ENOTSERVING);
    TS_RC(tsf_put(1, "r1", "cf", "q1", 1, "x"), BT_ENOTSERVING);
    TS_RC(tsf_id_call(TSP_FLUSH, 1, NULL), BT_ENOTSERVING);
    TS_OK(tsf_list(&ti, &n, &resp));
    cr_assert_eq(n, 2, "%zu tablets listed after the split", n);
    assert_tablet_range(tsf_find_tablet(ti, n, 2), "tables/t/t2", "a", "m");
    assert_tablet_range(tsf_find_tablet(ti, n, 3), "tables/t/t3", "m", "z");
    free(ti);
    bt_buf_free(&resp);
    batches = tsf_scan_all(2, NULL, 0, &k);
    cr_assert_eq(k.n, 2, "the left child has %zu rows", k.n);
    cr_assert_str_eq(k.key[0], "c1");
    cr_assert_str_eq(k.key[1], "k1");
    tsf_keys_free(&k);
    batches = tsf_scan_all(3, NULL, 5, &k);
    cr_assert_eq(k.n, 54, "the right child has %zu rows", k.n);
    cr_assert_str_eq(k.key[0], "r1");
    cr_assert_str_eq(k.key[3], "r5");
    cr_assert_str_eq(k.key[4], "s000");
    tsf_keys_free(&k);
    TS_OK(tsf_read(3, "r1", NULL, &resp, &row));
    cr_assert_eq(row.n_cells, 4);
    tsp_row_release(&row);
    TS_RC(tsf_read_rc(2, "r1"), BT_ENOTSERVING);
    TS_RC(tsf_read_rc(3, "k1"), BT_ENOTSERVING);
    assert_value(2, "k1", "cf", "cnt", fifteen, 8);
    TS_OK(tsf_put(2, "d1", "cf", "q", 1, "d"));
    TS_RC(tsf_put(3, "d1", "cf", "q", 1, "d"), BT_ENOTSERVING);
    TS_OK(tsf_put(3, "t1", "cf", "q", 1, "t"));

    /* unload, then the tablet is not served; reload it: the data is there */
    TS_OK(tsf_unload(3, F.seqr));
    TS_RC(tsf_read_rc(3, "r1"), BT_ENOTSERVING);
    TS_RC(tsf_unload(3, F.seqr), BT_ENOTSERVING);
    uint64_t only2[] = {2};
    assert_listed(only2, 1);
    TS_OK(tsf_status(&st, &resp));
    cr_assert_eq(st.n_tablets, 1);
    bt_buf_free(&resp);
    TS_RC(tsf_load(4, "tables/t/none", "", "", false, F.seqr), BT_ENOTFOUND);
    TS_OK(tsf_load(3, "tables/t/t3", "m", "z", false, F.seqr));
    TS_OK(tsf_read(3, "r1", NULL, &resp, &row));
    cr_assert_eq(row.n_cells, 4);
    tsf_assert_cell(&row, 0, "cf", "q1", 3000, "v3");
    tsp_row_release(&row);
    assert_value(3, "t1", "cf", "q", "t", 1);
    batches = tsf_scan_all(3, NULL, 0, &k);
    cr_assert_eq(k.n, 55);
    tsf_keys_free(&k);
    uint64_t both[] = {2, 3};
    assert_listed(both, 2);
    bt_buf_free(&resp);
}

/* ---- 2. errors ------------------------------------------------------------------------ */

TS_TEST(errors_and_limits, tsf_init, 60)
{
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    bt_buf resp = {0};
    ts_row row;

    /* a tablet that is not served, for every method that names one */
    TS_RC(tsf_read_rc(999, "a"), BT_ENOTSERVING);
    TS_RC(tsf_put(999, "a", "cf", "q", 1, "x"), BT_ENOTSERVING);
    tsf_batch b;
    TS_RC(tsf_scan_open(999, NULL, 0, 0, &b), BT_ENOTSERVING);
    tsf_batch_free(&b);
    ts_mutation m = tsf_set("cf", "q", 1, "v");
    uint64_t matched;
    TS_RC(cam(999, "a", NULL, &m, 1, &m, 1, &matched), BT_ENOTSERVING);
    tsp_rmw_rule rule = rule_inc("cf", "n", 1);
    TS_RC(rmw(999, "a", &rule, 1, &resp, &row), BT_ENOTSERVING);
    TS_RC(tsf_id_call(TSP_FLUSH, 999, NULL), BT_ENOTSERVING);
    TS_RC(tsf_id_call(TSP_COMPACT, 999, NULL), BT_ENOTSERVING);
    TS_RC(tsf_unload(999, F.seqr), BT_ENOTSERVING);
    TS_RC(tsf_split(F.seqr, 999, "m", 1000, "x/a", 1001, "x/b", NULL), BT_ENOTSERVING);
    TS_RC(tsf_id_call(TSP_SCAN_NEXT, 12345, NULL), BT_ENOTFOUND);

    /* unknown family */
    TS_RC(tsf_put(1, "a", "nope", "q", 1, "x"), BT_ENOTFOUND);
    ts_mutation mf = tsf_set("nope", "q", 1, "x");
    TS_RC(cam(1, "a", NULL, &mf, 1, &mf, 1, &matched), BT_ENOTFOUND);
    TS_RC(tsf_read_rc(1, "a"), BT_ENOTFOUND); /* nothing was written */

    /* size limits: row key 4096 bytes ok, 4097 BT_EINVAL; qualifier 16 KiB ok, more BT_ETOOBIG */
    size_t bigsz = 20000;
    char *big = malloc(bigsz);
    memset(big, 'k', bigsz);
    TS_OK(tsf_mutate(1, big, TS_MAX_ROW_KEY, &m, 1));
    TS_RC(tsf_mutate(1, big, TS_MAX_ROW_KEY + 1, &m, 1), BT_EINVAL);
    TS_RC(tsf_mutate(1, big, 0, &m, 1), BT_EINVAL);
    TS_OK(tsf_read_to(F.addr, 1, big, TS_MAX_ROW_KEY, NULL, &resp, &row));
    tsp_row_release(&row);
    ts_mutation mq = m;
    mq.qualifier = (const uint8_t *)big;
    mq.qualifier_len = TS_MAX_QUALIFIER;
    TS_OK(tsf_mutate(1, "q-ok", 4, &mq, 1));
    mq.qualifier_len = TS_MAX_QUALIFIER + 1;
    TS_RC(tsf_mutate(1, "q-big", 5, &mq, 1), BT_ETOOBIG);
    TS_RC(tsf_read_rc(1, "q-big"), BT_ENOTFOUND);
    /* a large value (1 MiB) travels fine */
    ts_mutation mv = tsf_set("cf", "v", 1, "");
    char *val = malloc(1 << 20);
    memset(val, 'v', 1 << 20);
    mv.value = (const uint8_t *)val;
    mv.value_len = 1 << 20;
    TS_OK(tsf_mutate(1, "bigval", 6, &mv, 1));
    assert_value(1, "bigval", "cf", "v", val, 1 << 20);
    free(val);
    free(big);

    /* load with a bad directory */
    static const char *bad_dirs[] = {"../x", "/abs", "a/../b", "a//b", "a/./b", "", "a/", ".", ".."};
    for (size_t i = 0; i < sizeof bad_dirs / sizeof *bad_dirs; i++)
        cr_assert_eq(tsf_load(50 + i, bad_dirs[i], "", "", true, F.seqr), BT_EINVAL, "load with dir \"%s\": %s",
                     bad_dirs[i], tsf_detail);
    char esc[PATH_MAX + 16];
    snprintf(esc, sizeof esc, "%s/x", F.root);
    cr_assert_neq(access(esc, F_OK), 0, "load with \"../x\" created %s", esc);
    cr_assert_neq(access("/abs", F_OK), 0);
    uint64_t one[] = {1};
    assert_listed(one, 1);
    /* split into bad directories or with reused ids */
    TS_RC(tsf_split(F.seqr, 1, "m", 2, "../l", 3, "tables/t/r", NULL), BT_EINVAL);
    TS_RC(tsf_split(F.seqr, 1, "m", 2, "tables/t/l", 3, "/r", NULL), BT_EINVAL);
    TS_RC(tsf_split(F.seqr, 1, "m", 2, "tables/t/l", 2, "tables/t/r", NULL), BT_EINVAL);
    TS_RC(tsf_split(F.seqr, 1, "m", 1, "tables/t/l", 3, "tables/t/r", NULL), BT_EINVAL);
    assert_listed(one, 1);
    TS_OK(tsf_read_rc(1, "q-ok"));
    bt_buf_free(&resp);
}

TS_TEST(sequencer_fencing, tsf_init, 60)
{
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    TS_OK(tsf_put(1, "a", "cf", "q", 1, "x"));

    /* no sequencer, or one that is not /bt/master's */
    TS_RC(tsf_load(2, "tables/t/t2", "", "", true, NULL), BT_EFAILED_PRECONDITION);
    TS_RC(tsf_unload(1, NULL), BT_EFAILED_PRECONDITION);
    TS_RC(tsf_split(NULL, 1, "m", 3, "tables/t/t3", 4, "tables/t/t4", NULL), BT_EFAILED_PRECONDITION);
    TS_RC(tsf_load(2, "tables/t/t2", "", "", true, "garbage"), BT_EFAILED_PRECONDITION);
    TS_RC(tsf_load(2, "tables/t/t2", "", "", true, "/bt/other:1:1"), BT_EFAILED_PRECONDITION);
    uint64_t one[] = {1};
    assert_listed(one, 1);

    /* a stale sequencer: session A held /bt/master, then B took it */
    char old[LK_MAX_SEQUENCER], seq_a[LK_MAX_SEQUENCER], seq_b[LK_MAX_SEQUENCER];
    snprintf(old, sizeof old, "%s", F.seqr);
    lk_close(F.master);
    F.master = NULL;
    lk_client *a = tsf_lk_open();
    tsf_acquire_master(a, seq_a);
    lk_close(a);
    lk_client *bs = tsf_lk_open();
    tsf_acquire_master(bs, seq_b);
    F.master = bs;
    snprintf(F.seqr, sizeof F.seqr, "%s", seq_b);
    cr_assert_str_neq(seq_a, seq_b);
    TS_RC(tsf_load(2, "tables/t/t2", "", "", true, seq_a), BT_EFAILED_PRECONDITION);
    TS_RC(tsf_unload(1, seq_a), BT_EFAILED_PRECONDITION);
    TS_RC(tsf_split(seq_a, 1, "m", 3, "tables/t/t3", 4, "tables/t/t4", NULL), BT_EFAILED_PRECONDITION);
    TS_RC(tsf_load(2, "tables/t/t2", "", "", true, old), BT_EFAILED_PRECONDITION);
    TS_RC(tsf_unload(1, old), BT_EFAILED_PRECONDITION);
    assert_listed(one, 1);
    cr_assert(!path_exists("tables/t/t2"), "a fenced load created its directory");
    cr_assert(!path_exists("tables/t/t3"), "a fenced split created a directory");
    TS_OK(tsf_read_rc(1, "a"));

    /* the current master's sequencer works for all three */
    TS_OK(tsf_load(2, "tables/t/t2", "", "", true, seq_b));
    TS_OK(tsf_split(seq_b, 1, "m", 3, "tables/t/t3", 4, "tables/t/t4", NULL));
    TS_OK(tsf_unload(2, seq_b));
    uint64_t now[] = {3, 4};
    assert_listed(now, 2);
    TS_OK(tsf_read_rc(3, "a"));
}

/* Every proper prefix of a valid request is refused with a decoding error,
 * changes nothing, and the server keeps serving. */
TS_TEST(truncated_payloads_are_rejected, tsf_init, 60)
{
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    tsf_fill(1, "row", 0, 10);

    enum { NCASES = 13 };
    struct {
        uint16_t m;
        bt_buf req;
        int full_rc; /* the whole request's answer */
    } c[NCASES];
    memset(c, 0, sizeof c);
    int k = 0;
    ts_mutation ms[2] = {tsf_set("cf", "q", 7, "new"), tsf_set("meta", "x", 8, "y")};
    /* mutate_row */
    c[k].m = TSP_MUTATE_ROW;
    tsf_req_mutate(&c[k++].req, 1, "zzz0", 4, ms, 2);
    /* mutate_rows (2 rows) */
    {
        c[k].m = TSP_MUTATE_ROWS;
        bt_msg_writer w;
        bt_msg_writer_init(&w, &c[k++].req);
        bt_msg_put_varint(&w, 2);
        bt_msg_put_varint(&w, 1);
        bt_msg_put_bytes(&w, "zzz1", 4);
        tsp_put_mutations(&w, ms, 2);
        bt_msg_put_varint(&w, 1);
        bt_msg_put_bytes(&w, "zzz2", 4);
        tsp_put_mutations(&w, ms, 1);
    }
    /* read_row with a filter using many fields */
    ts_column_ref cols[2] = {{"cf", 2, (const uint8_t *)"c", 1}, {"meta", 4, NULL, 0}};
    ts_read_options ro = {.columns = cols, .n_columns = 2, .ts_from = 1, .ts_to = INT64_MAX, .versions = 3,
                          .cells_per_row = 5};
    {
        c[k].m = TSP_READ_ROW;
        bt_msg_writer w;
        bt_msg_writer_init(&w, &c[k++].req);
        bt_msg_put_varint(&w, 1);
        bt_msg_put_bytes(&w, "row001", 6);
        tsp_put_filter(&w, &ro);
    }
    /* scan_open */
    ts_read_options so = {.prefix = (const uint8_t *)"row", .prefix_len = 3, .start_row = (const uint8_t *)"row0",
                          .start_len = 4};
    {
        c[k].m = TSP_SCAN_OPEN;
        bt_msg_writer w;
        bt_msg_writer_init(&w, &c[k++].req);
        bt_msg_put_varint(&w, 1);
        tsp_put_filter(&w, &so);
        bt_msg_put_varint(&w, 300);
        bt_msg_put_varint(&w, 100000);
    }
    /* scan_next / scan_close of a (multi-byte) scanner id that does not exist */
    c[k].m = TSP_SCAN_NEXT;
    c[k].full_rc = BT_ENOTFOUND;
    bt_buf_put_varint64(&c[k++].req, 1ull << 40);
    c[k].m = TSP_SCAN_CLOSE;
    c[k].full_rc = BT_ENOTFOUND;
    bt_buf_put_varint64(&c[k++].req, 1ull << 40);
    /* check_and_mutate */
    {
        c[k].m = TSP_CHECK_AND_MUTATE;
        bt_msg_writer w;
        bt_msg_writer_init(&w, &c[k++].req);
        bt_msg_put_varint(&w, 1);
        bt_msg_put_bytes(&w, "zzz3", 4);
        tsp_put_filter(&w, &ro);
        tsp_put_mutations(&w, ms, 2);
        tsp_put_mutations(&w, ms, 1);
    }
    /* read_modify_write */
    tsp_rmw_rule rules[2] = {rule_inc("cf", "n", 300), rule_append("cf", "l", "tail")};
    {
        c[k].m = TSP_READ_MODIFY_WRITE;
        bt_msg_writer w;
        bt_msg_writer_init(&w, &c[k++].req);
        bt_msg_put_varint(&w, 1);
        bt_msg_put_bytes(&w, "zzz4", 4);
        tsp_put_rmw_rules(&w, rules, 2);
    }
    /* flush, compact */
    c[k].m = TSP_FLUSH;
    bt_buf_put_varint64(&c[k++].req, 1);
    c[k].m = TSP_COMPACT;
    bt_buf_put_varint64(&c[k++].req, 1);
    /* load of a new tablet, its unload, a split of tablet 1 */
    c[k].m = TSP_LOAD_TABLET;
    tsf_req_load(&c[k++].req, F.seqr, 77, "tables/t/t77", "", "", true);
    c[k].m = TSP_UNLOAD_TABLET;
    tsf_req_unload(&c[k++].req, F.seqr, 77);
    c[k].m = TSP_SPLIT;
    tsf_req_split(&c[k++].req, F.seqr, 1, "row005", 78, "tables/t/t78", 79, "tables/t/t79");
    cr_assert_eq(k, NCASES);

    int calls = 0;
    for (int i = 0; i < NCASES; i++) {
        for (size_t len = 0; len < c[i].req.len; len++) {
            int rc = tsf_call_to(F.addr, c[i].m, c[i].req.data, len, NULL, TSF_CALL_MS);
            if (rc != BT_ECORRUPT && rc != BT_EINVAL) TS_ALIVE();
            cr_assert(rc == BT_ECORRUPT || rc == BT_EINVAL,
                      "%s with %zu of %zu payload bytes -> %s (%s), want a decoding error",
                      tsp_method_name(c[i].m), len, c[i].req.len, bt_errname(rc), tsf_detail);
            calls++;
        }
    }
    /* nothing happened */
    uint64_t one[] = {1};
    assert_listed(one, 1);
    cr_assert_eq(status_field_open_scanners(), 0, "truncated scan_opens left scanners open");
    for (int i = 0; i < 5; i++) {
        char key[32];
        snprintf(key, sizeof key, "zzz%d", i);
        TS_RC(tsf_read_rc(1, key), BT_ENOTFOUND);
    }
    cr_assert(!path_exists("tables/t/t77") && !path_exists("tables/t/t78") && !path_exists("tables/t/t79"));
    tsf_keys keys = {0};
    tsf_scan_all(1, NULL, 0, &keys);
    cr_assert_eq(keys.n, 10);
    tsf_keys_free(&keys);
    bt_buf resp = {0};
    tsp_status st;
    TS_OK(tsf_status(&st, &resp));
    cr_assert_gt(st.lease_ms_left, 0);
    bt_buf_free(&resp);

    /* and every whole request is valid (so the prefixes above tested decoding) */
    for (int i = 0; i < NCASES; i++) {
        int rc = tsf_call_to(F.addr, c[i].m, c[i].req.data, c[i].req.len, &resp, TSF_CALL_MS);
        cr_assert_eq(rc, c[i].full_rc, "whole %s -> %s (%s)", tsp_method_name(c[i].m), bt_errname(rc), tsf_detail);
        if (c[i].m == TSP_SCAN_OPEN) {
            tsf_batch b = {.resp = resp};
            memset(&resp, 0, sizeof resp);
            cr_assert_eq(tsf_batch_decode(&b), BT_OK);
            cr_assert_eq(b.n, 10);
            cr_assert(b.done);
            tsf_batch_free(&b);
        }
        bt_buf_free(&c[i].req);
    }
    bt_buf_free(&resp);
    uint64_t after[] = {78, 79};
    assert_listed(after, 2);
    TS_OK(tsf_read_rc(79, "zzz0")); /* the rows the whole requests wrote, now in the right child */
    TS_OK(tsf_read_rc(79, "zzz2"));
    TS_OK(tsf_read_rc(79, "zzz3"));
    TS_OK(tsf_read_rc(79, "zzz4"));
    cr_assert_gt(calls, 300);
}

/* ---- raw sockets ----------------------------------------------------------------------- */

static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* True if the peer closes fd within ms (reads to EOF). */
static bool closed_by_peer(int fd, int ms)
{
    int64_t end = tsf_now_ms() + ms;
    char buf[512];
    while (tsf_now_ms() < end) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0) continue;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
    }
    return false;
}

/* Reads one whole response frame from fd within ms into buf; returns
 * RPC_DECODE_FRAME with *f filled, or an error / -1 on EOF or timeout. */
static int read_frame(int fd, uint8_t *buf, size_t cap, size_t *have, rpc_frame *f, int ms)
{
    int64_t end = tsf_now_ms() + ms;
    for (;;) {
        size_t flen;
        const char *why;
        int d = rpc_frame_decode(buf, *have, RPC_DEFAULT_MAX_FRAME, f, &flen, &why);
        if (d == RPC_DECODE_FRAME) {
            /* keep the frame at the start; the caller consumes it with frame_consume */
            return d;
        }
        if (d < 0) return d;
        if (tsf_now_ms() >= end || *have == cap) return -1;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0) continue;
        ssize_t r = read(fd, buf + *have, cap - *have);
        if (r <= 0) return -1;
        *have += (size_t)r;
    }
}

static void frame_consume(uint8_t *buf, size_t *have)
{
    rpc_frame f;
    size_t flen;
    const char *why;
    if (rpc_frame_decode(buf, *have, RPC_DEFAULT_MAX_FRAME, &f, &flen, &why) == RPC_DECODE_FRAME) {
        memmove(buf, buf + flen, *have - flen);
        *have -= flen;
    }
}

static bool send_frame(int fd, uint64_t id, uint16_t method, const void *payload, size_t len)
{
    bt_buf out = {0};
    rpc_frame f = {.id = id, .method = method, .payload = payload, .payload_len = len};
    bool ok = rpc_frame_encode(&out, &f, RPC_DEFAULT_MAX_FRAME) == BT_OK && write_all(fd, out.data, out.len);
    bt_buf_free(&out);
    return ok;
}

/* A TSP_STATUS on a raw connection answers BT_OK with a decodable status. */
static bool raw_status_ok(int fd, uint64_t id)
{
    uint8_t buf[4096];
    size_t have = 0;
    rpc_frame f;
    if (!send_frame(fd, id, TSP_STATUS, NULL, 0)) return false;
    if (read_frame(fd, buf, sizeof buf, &have, &f, 5000) != RPC_DECODE_FRAME) return false;
    if (f.id != id || f.status != BT_OK || !(f.flags & RPC_FLAG_RESPONSE)) return false;
    bt_msg_reader r;
    bt_msg_reader_init(&r, f.payload, f.payload_len);
    tsp_status st;
    return tsp_get_status(&r, &st) == BT_OK;
}

/* The server answers status and a read through the pool. */
static void assert_healthy(const char *after)
{
    bt_buf resp = {0};
    tsp_status st;
    int rc = tsf_status(&st, &resp);
    cr_assert_eq(rc, BT_OK, "after %s: status -> %s", after, bt_errname(rc));
    cr_assert_gt(st.lease_ms_left, 0, "after %s: no lease", after);
    bt_buf_free(&resp);
    ts_row row;
    rc = tsf_read(1, "x", NULL, &resp, &row);
    cr_assert_eq(rc, BT_OK, "after %s: read -> %s (%s)", after, bt_errname(rc), tsf_detail);
    tsf_assert_cell(&row, 0, "cf", "c", INT64_MIN, "xval");
    tsp_row_release(&row);
    bt_buf_free(&resp);
}

static uint64_t server_connections(void)
{
    bt_buf resp = {0};
    tsp_status st;
    TS_OK(tsf_status(&st, &resp));
    uint64_t n = st.connections;
    bt_buf_free(&resp);
    return n;
}

/* Waits up to ms until the server counts at most n connections. */
static uint64_t wait_connections_at_most(uint64_t n, int ms)
{
    int64_t end = tsf_now_ms() + ms;
    uint64_t c;
    while ((c = server_connections()) > n && tsf_now_ms() < end) tsf_sleep_ms(20);
    return c;
}

/* ---- 3. 1000 concurrent connections ---------------------------------------------------- */

typedef struct poller {
    atomic_bool stop;
    atomic_int calls, fails;
    int first_rc;
    char first_what[64], first_detail[256];
} poller;

static void poller_fail(poller *p, int rc, const char *what)
{
    if (atomic_fetch_add(&p->fails, 1) == 0) {
        p->first_rc = rc;
        snprintf(p->first_what, sizeof p->first_what, "%s", what);
        snprintf(p->first_detail, sizeof p->first_detail, "%.200s", tsf_detail);
    }
}

static void *poller_main(void *arg)
{
    poller *p = arg;
    while (!atomic_load(&p->stop)) {
        bt_buf resp = {0};
        tsp_status st;
        int rc = tsf_status(&st, &resp);
        if (rc) poller_fail(p, rc, "status");
        bt_buf_free(&resp);
        ts_row row;
        rc = tsf_read(1, "x", NULL, &resp, &row);
        if (rc) {
            poller_fail(p, rc, "read");
        } else {
            if (row.n_cells != 1 || !tsf_bytes_eq(row.cells[0].value, row.cells[0].value_len, "xval"))
                poller_fail(p, BT_ECORRUPT, "read value");
            tsp_row_release(&row);
        }
        bt_buf_free(&resp);
        atomic_fetch_add(&p->calls, 2);
        tsf_sleep_ms(1);
    }
    return NULL;
}

TS_TEST(thousand_connections, tsf_init, 60)
{
    enum { NCONN = 1000 };
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2200) {
        F.finished = true;
        cr_skip_test("RLIMIT_NOFILE hard limit %llu < 2200", (unsigned long long)rl.rlim_max);
    }
    rl.rlim_cur = rl.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));

    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    TS_OK(tsf_put(1, "x", "cf", "c", 1, "xval"));
    uint16_t port = ts_port();

    poller p;
    memset(&p, 0, sizeof p);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, poller_main, &p), 0);
    static int fds[NCONN];
    int opened = 0, connect_errno = 0;
    for (; opened < NCONN; opened++) {
        fds[opened] = raw_connect(port);
        if (fds[opened] < 0) {
            connect_errno = errno;
            break;
        }
    }
    /* the server accepts them all; requests on a few of them are answered */
    uint64_t seen = 0;
    int64_t end = tsf_now_ms() + 15000;
    bool raw_ok = true;
    if (opened == NCONN) {
        while (tsf_now_ms() < end) {
            bt_buf resp = {0};
            tsp_status st;
            if (tsf_status(&st, &resp) == BT_OK && st.connections > seen) seen = st.connections;
            bt_buf_free(&resp);
            if (seen >= NCONN) break;
            tsf_sleep_ms(20);
        }
        for (int i = 0; i < NCONN; i += 111) raw_ok &= raw_status_ok(fds[i], 1000 + (uint64_t)i);
        raw_ok &= raw_status_ok(fds[NCONN - 1], 1);
        tsf_sleep_ms(500); /* the pool keeps being served with all of them open */
    }
    atomic_store(&p.stop, true);
    pthread_join(th, NULL);
    for (int i = 0; i < opened; i++) close(fds[i]);

    cr_assert_eq(opened, NCONN, "connect %d failed: %s", opened, strerror(connect_errno));
    cr_assert_geq(seen, NCONN, "the server counted at most %llu connections", (unsigned long long)seen);
    cr_assert(raw_ok, "a request on one of the raw connections was not answered");
    cr_assert_eq(atomic_load(&p.fails), 0, "%d of %d pool calls failed; first: %s -> %s (%s)",
                 atomic_load(&p.fails), atomic_load(&p.calls), p.first_what, bt_errname(p.first_rc),
                 p.first_detail);
    cr_assert_gt(atomic_load(&p.calls), 20, "only %d pool calls were made", atomic_load(&p.calls));
    uint64_t left = wait_connections_at_most(50, 10000);
    cr_assert_leq(left, 50, "%llu connections still counted after closing the sockets", (unsigned long long)left);
    assert_healthy("closing 1000 connections");
}

/* ---- 4. malformed frames ------------------------------------------------------------------ */

TS_TEST(malformed_frames, tsf_init, 40)
{
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    TS_OK(tsf_put(1, "x", "cf", "c", 1, "xval"));
    uint16_t port = ts_port();
    assert_healthy("setup");

    /* a header with unknown flag bits */
    int fd = raw_connect(port);
    cr_assert(fd >= 0);
    uint8_t hdr[RPC_HDR_LEN];
    rpc_frame f = {.id = 1, .method = TSP_STATUS};
    rpc_frame_put_header(hdr, &f);
    hdr[18] = 0x80;
    cr_assert(write_all(fd, hdr, sizeof hdr));
    cr_assert(closed_by_peer(fd, 3000), "the server kept a connection that sent unknown flags");
    close(fd);
    assert_healthy("bad flags");

    /* a request with the response flag */
    fd = raw_connect(port);
    rpc_frame_put_header(hdr, &f);
    hdr[18] = RPC_FLAG_RESPONSE;
    cr_assert(write_all(fd, hdr, sizeof hdr));
    bool closed = closed_by_peer(fd, 1000);
    close(fd);
    (void)closed; /* either answer is fine; the server must stay healthy */
    assert_healthy("a response frame sent to the server");

    /* a length field over the 16 MiB cap (just over, and huge) */
    uint32_t lens[2] = {(uint32_t)(RPC_DEFAULT_MAX_FRAME - RPC_LEN_FIELD + 1), 0x7fffffffu};
    for (int i = 0; i < 2; i++) {
        fd = raw_connect(port);
        uint8_t l[4] = {(uint8_t)lens[i], (uint8_t)(lens[i] >> 8), (uint8_t)(lens[i] >> 16), (uint8_t)(lens[i] >> 24)};
        cr_assert(write_all(fd, l, 4));
        cr_assert(closed_by_peer(fd, 3000), "the server kept a connection announcing a %u-byte frame", lens[i]);
        close(fd);
        assert_healthy("an oversize length");
    }

    /* a length below the header size */
    fd = raw_connect(port);
    uint8_t tiny[RPC_HDR_LEN] = {3, 0, 0, 0};
    cr_assert(write_all(fd, tiny, sizeof tiny));
    cr_assert(closed_by_peer(fd, 3000));
    close(fd);
    assert_healthy("an undersize length");

    /* garbage bytes */
    fd = raw_connect(port);
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 37 + 0xa5);
    cr_assert(write_all(fd, junk, sizeof junk));
    cr_assert(closed_by_peer(fd, 3000));
    close(fd);
    assert_healthy("garbage");

    /* a truncated frame followed by close */
    uint64_t base = server_connections();
    fd = raw_connect(port);
    uint8_t part[RPC_HDR_LEN + 10];
    memset(part, 'p', sizeof part);
    rpc_frame g = {.id = 5, .method = TSP_READ_ROW, .payload_len = 100};
    rpc_frame_put_header(part, &g);
    cr_assert(write_all(fd, part, sizeof part));
    tsf_sleep_ms(100);
    close(fd);
    assert_healthy("a truncated frame");
    uint64_t now = wait_connections_at_most(base, 5000);
    cr_assert_leq(now, base, "the closed connection is still counted (%llu > %llu)", (unsigned long long)now,
                  (unsigned long long)base);

    /* unknown methods: BT_EINVAL on that connection, which stays usable */
    fd = raw_connect(port);
    static const uint16_t unknown[] = {199, 150, 7, 65535};
    uint8_t buf[8192];
    size_t have = 0;
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        cr_assert(send_frame(fd, 42 + i, unknown[i], "abc", 3));
        rpc_frame rf;
        int d = read_frame(fd, buf, sizeof buf, &have, &rf, 5000);
        cr_assert_eq(d, RPC_DECODE_FRAME, "no answer to unknown method %u", unknown[i]);
        cr_assert_eq(rf.id, 42 + i);
        cr_assert_eq(rf.method, unknown[i]);
        cr_assert_eq(rf.status, BT_EINVAL, "unknown method %u -> %s", unknown[i], bt_errname(rf.status));
        cr_assert(rf.flags & RPC_FLAG_RESPONSE);
        cr_assert_not(rf.flags & RPC_FLAG_MORE);
        frame_consume(buf, &have);
    }
    cr_assert(raw_status_ok(fd, 77), "the connection was not served after an unknown method");
    /* pipelined: an unknown method and a status in one write, both answered */
    bt_buf two = {0};
    rpc_frame u = {.id = 500, .method = 160}, s = {.id = 501, .method = TSP_STATUS};
    cr_assert_eq(rpc_frame_encode(&two, &u, RPC_DEFAULT_MAX_FRAME), BT_OK);
    cr_assert_eq(rpc_frame_encode(&two, &s, RPC_DEFAULT_MAX_FRAME), BT_OK);
    cr_assert(write_all(fd, two.data, two.len));
    bt_buf_free(&two);
    bool got500 = false, got501 = false;
    have = 0;
    for (int i = 0; i < 2; i++) {
        rpc_frame rf;
        cr_assert_eq(read_frame(fd, buf, sizeof buf, &have, &rf, 5000), RPC_DECODE_FRAME);
        if (rf.id == 500) {
            cr_assert_eq(rf.status, BT_EINVAL);
            got500 = true;
        } else if (rf.id == 501) {
            cr_assert_eq(rf.status, BT_OK);
            got501 = true;
        }
        frame_consume(buf, &have);
    }
    cr_assert(got500 && got501);
    close(fd);
    assert_healthy("unknown methods");
}

/* ---- writers (tests 5 and 6) ---------------------------------------------------------------- */

typedef struct wrec {
    int64_t t_send, t_done;
    int rc;
} wrec;

typedef struct writer {
    pthread_t th;
    char prefix[32];
    char addr[64];
    uint64_t tid;
    atomic_bool *stop;
    wrec *rec;
    size_t n, cap;
} writer;

static void writer_key(const writer *w, size_t i, char *out, size_t cap)
{
    snprintf(out, cap, "%s%07zu", w->prefix, i);
}

/* Writes distinct rows (one SetCell each, value = key) one at a time with
 * mutate_row, never retried, and records every outcome. */
static void *writer_main(void *arg)
{
    writer *w = arg;
    while (!atomic_load(w->stop)) {
        if (w->n == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 4096;
            wrec *nr = realloc(w->rec, w->cap * sizeof *nr);
            if (!nr) break;
            w->rec = nr;
        }
        char key[64];
        writer_key(w, w->n, key, sizeof key);
        ts_mutation m = tsf_set("cf", "c", TS_SERVER_TIME, key);
        int64_t t0 = tsf_now_us();
        int rc = tsf_mutate_to(w->addr, w->tid, key, strlen(key), &m, 1, 8000);
        w->rec[w->n] = (wrec){t0, tsf_now_us(), rc};
        w->n++;
        if (rc) tsf_sleep_ms(2);
    }
    return NULL;
}

static void writers_start(writer *w, int n, atomic_bool *stop, const char *fmt, int round)
{
    for (int i = 0; i < n; i++) {
        memset(&w[i], 0, sizeof w[i]);
        snprintf(w[i].prefix, sizeof w[i].prefix, fmt, round, i);
        snprintf(w[i].addr, sizeof w[i].addr, "%s", F.addr);
        w[i].tid = 1;
        w[i].stop = stop;
        cr_assert_eq(pthread_create(&w[i].th, NULL, writer_main, &w[i]), 0);
    }
}

static void writers_join(writer *w, int n)
{
    for (int i = 0; i < n; i++) pthread_join(w[i].th, NULL);
}

/* A sorted list of strings. */
typedef struct strlist {
    char **s;
    size_t n, cap;
} strlist;

static void strlist_add(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->s = realloc(l->s, l->cap * sizeof *l->s);
    }
    l->s[l->n++] = strdup(s);
}

static void strlist_sort(strlist *l)
{
    if (l->n) qsort(l->s, l->n, sizeof *l->s, cmp_str);
}

static bool strlist_has(const strlist *l, const char *s)
{
    return l->n && bsearch(&s, l->s, l->n, sizeof *l->s, cmp_str) != NULL;
}

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    memset(l, 0, sizeof *l);
}

/* Scans tablet 1 and checks every key in acked is there, every row there was
 * attempted and holds its own key as value. */
static void assert_acked_present(const strlist *acked, const strlist *attempted, const char *when)
{
    tsf_keys k = {0};
    tsf_scan_all(1, NULL, 0, &k);
    strlist present = {0};
    for (size_t i = 0; i < k.n; i++) {
        cr_assert(strlist_has(attempted, k.key[i]), "%s: row %s was never written", when, k.key[i]);
        cr_assert_str_eq(k.val[i], k.key[i], "%s: row %s holds \"%s\"", when, k.key[i], k.val[i]);
        strlist_add(&present, k.key[i]);
    }
    strlist_sort(&present);
    size_t missing = 0;
    const char *first = NULL;
    for (size_t i = 0; i < acked->n; i++)
        if (!strlist_has(&present, acked->s[i])) {
            if (!missing) first = acked->s[i];
            missing++;
        }
    cr_assert_eq(missing, 0, "%s: %zu of %zu acknowledged rows are missing (first: %s; %zu rows present)", when,
                 missing, acked->n, first ? first : "", present.n);
    strlist_free(&present);
    tsf_keys_free(&k);
}

/* ---- 5. SIGKILL during sync writes ---------------------------------------------------------- */

TS_TEST(sigkill_during_sync_writes, tsf_init, 90)
{
    enum { NW = 4, ROUNDS = 3 };
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    strlist acked = {0}, attempted = {0};
    for (int round = 0; round < ROUNDS; round++) {
        atomic_bool stop = false;
        writer w[NW];
        writers_start(w, NW, &stop, "k%d-%d-", round);
        tsf_sleep_ms(1000);
        int64_t t_kill = tsf_now_us();
        kill(F.ts, SIGKILL);
        int st = tsf_wait_pid(&F.ts, 5000);
        atomic_store(&stop, true);
        writers_join(w, NW);
        cr_assert(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "round %d: wait status %d", round, st);
        size_t round_acked = 0, early_fail = 0;
        int early_rc = 0;
        for (int i = 0; i < NW; i++) {
            for (size_t j = 0; j < w[i].n; j++) {
                char key[64];
                writer_key(&w[i], j, key, sizeof key);
                strlist_add(&attempted, key);
                if (w[i].rec[j].rc == BT_OK) {
                    strlist_add(&acked, key);
                    round_acked++;
                } else if (w[i].rec[j].t_done < t_kill) {
                    early_fail++;
                    early_rc = w[i].rec[j].rc;
                }
            }
            free(w[i].rec);
        }
        cr_assert_eq(early_fail, 0, "round %d: %zu writes failed before the kill (e.g. %s)", round, early_fail,
                     bt_errname(early_rc));
        cr_assert_gt(round_acked, 10, "round %d: only %zu writes acknowledged in 1 s", round, round_acked);
        strlist_sort(&acked);
        strlist_sort(&attempted);

        tsf_start_ts(); /* same id and data dir; waits out the dead session's lock */
        /* as the master would: split the dead incarnation's log into the
         * tablet's recovery files, then reassign (the load replays them) */
        cr_assert_eq(tsf_recover_logs(), 1, "one dead log dir");
        TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
        char when[32];
        snprintf(when, sizeof when, "after kill %d", round + 1);
        assert_acked_present(&acked, &attempted, when);
        /* a few point reads too */
        TS_OK(tsf_read_rc(1, acked.s[0]));
        TS_OK(tsf_read_rc(1, acked.s[acked.n - 1]));
    }
    strlist_free(&acked);
    strlist_free(&attempted);
}

/* ---- 6. SIGSTOP past the lease --------------------------------------------------------------- */

/* An asynchronous write sent while the server is stopped. */
typedef struct stopped_write {
    char key[32];
    int64_t t_send;
    int rc;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    int *pending;
} stopped_write;

static void stopped_write_done(void *arg, int status, const uint8_t *payload, size_t len, bool more)
{
    (void)payload;
    (void)len;
    if (more) return;
    stopped_write *w = arg;
    pthread_mutex_lock(w->mu);
    w->rc = status;
    (*w->pending)--;
    pthread_cond_broadcast(w->cv);
    pthread_mutex_unlock(w->mu);
}

/* One round: writers running, SIGSTOP for 3 s (three leases), SIGCONT; no
 * write sent after the stop may be acknowledged; the server drops tablet 1,
 * re-registers, and once reloaded holds every acknowledged write (acked and
 * attempted accumulate over rounds). */
static void stop_round(int round, strlist *acked, strlist *attempted)
{
    enum { NW = 4, NASYNC = 60 };
    atomic_bool stop = false;
    writer w[NW];
    writers_start(w, NW, &stop, "p%d-%d-", round);
    tsf_sleep_ms(700);
    kill(F.ts, SIGSTOP);
    int64_t t0 = tsf_now_ms();
    bool stopped = false;
    while (!(stopped = tsf_all_threads_stopped(F.ts)) && tsf_now_ms() - t0 < 3000) tsf_sleep_ms(1);
    int64_t t_stop = tsf_now_us(); /* every request sent after this was sent to a stopped server */
    /* besides the synchronous writers (each blocked on one request now),
     * pipelined writes sent while the server is stopped: they are all
     * waiting in its socket buffers when it resumes */
    static stopped_write aw[NASYNC];
    pthread_mutex_t amu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t acv = PTHREAD_COND_INITIALIZER;
    int pending = 0, async_errors = 0;
    for (int i = 0; i < NASYNC; i++) {
        if (i % 10 == 0) tsf_sleep_ms(400);
        stopped_write *a = &aw[i];
        snprintf(a->key, sizeof a->key, "q%d-%03d", round, i);
        a->mu = &amu;
        a->cv = &acv;
        a->pending = &pending;
        bt_buf req = {0};
        ts_mutation m = tsf_set("cf", "c", TS_SERVER_TIME, a->key);
        tsf_req_mutate(&req, 1, a->key, strlen(a->key), &m, 1);
        pthread_mutex_lock(&amu);
        pending++;
        pthread_mutex_unlock(&amu);
        a->t_send = tsf_now_us();
        if (bt_conn_call_async(F.pool, F.addr, TSP_MUTATE_ROW, req.data, req.len, 20000, stopped_write_done, a)) {
            pthread_mutex_lock(&amu);
            pending--;
            pthread_mutex_unlock(&amu);
            a->rc = BT_EUNAVAIL;
            async_errors++;
        }
        bt_buf_free(&req);
    }
    int64_t stopped_ms = (tsf_now_us() - t_stop) / 1000;
    if (stopped_ms < 3000) tsf_sleep_ms((int)(3000 - stopped_ms));
    kill(F.ts, SIGCONT);
    tsf_sleep_ms(1500);
    atomic_store(&stop, true);
    writers_join(w, NW);
    pthread_mutex_lock(&amu);
    while (pending > 0) pthread_cond_wait(&acv, &amu);
    pthread_mutex_unlock(&amu);
    cr_assert(stopped, "the server's threads did not all stop");
    cr_assert_eq(async_errors, 0, "could not send writes to the stopped server");

    size_t ok_before = 0, sent_after = 0, violations = 0;
    char first_bad[64] = "";
    int64_t bad_send = 0, bad_done = 0;
    for (int i = 0; i < NW; i++) {
        for (size_t j = 0; j < w[i].n; j++) {
            char key[64];
            writer_key(&w[i], j, key, sizeof key);
            strlist_add(attempted, key);
            const wrec *r = &w[i].rec[j];
            if (r->rc == BT_OK) strlist_add(acked, key);
            if (r->t_send < t_stop) {
                ok_before += r->rc == BT_OK;
                continue;
            }
            sent_after++;
            if (r->rc == BT_OK) {
                if (!violations) {
                    snprintf(first_bad, sizeof first_bad, "%s", key);
                    bad_send = r->t_send - t_stop;
                    bad_done = r->t_done - t_stop;
                }
                violations++;
            }
        }
        free(w[i].rec);
    }
    size_t async_acked = 0;
    const char *first_async = NULL;
    for (int i = 0; i < NASYNC; i++) {
        strlist_add(attempted, aw[i].key);
        if (aw[i].rc == BT_OK) {
            strlist_add(acked, aw[i].key);
            if (!async_acked) first_async = aw[i].key;
            async_acked++;
        }
    }
    TS_ALIVE();
    cr_assert_gt(ok_before, 10, "round %d: only %zu writes acknowledged before the stop", round, ok_before);
    cr_assert_geq(sent_after, NW, "only %zu synchronous writes sent after the stop", sent_after);
    cr_assert_eq(async_acked, 0,
                 "round %d: %zu of %d writes sent while the server was stopped were acknowledged after it "
                 "resumed, although its lease had run out (first: %s)",
                 round, async_acked, NASYNC, first_async ? first_async : "");
    cr_assert_eq(violations, 0,
                 "round %d: %zu of %zu writes sent after SIGSTOP were acknowledged although the lease had run "
                 "out (first: %s sent %lld us after the stop, answered at +%lld us)",
                 round, violations, sent_after, first_bad, (long long)bad_send, (long long)bad_done);

    /* the tablets are gone; then the server re-registers (the file still exists) */
    char probe[64];
    writer_key(&w[0], 0, probe, sizeof probe); /* acknowledged: before the stop */
    int rc = tsf_read_rc(1, probe);
    cr_assert(rc == BT_ENOTSERVING || rc == BT_EUNAVAIL, "read after the lease ran out -> %s", bt_errname(rc));
    int64_t end = tsf_now_ms() + 10000;
    tsp_status st = {0};
    bt_buf resp = {0};
    while (tsf_now_ms() < end) {
        bt_buf_free(&resp);
        if (tsf_status(&st, &resp) == BT_OK && st.lease_ms_left > 0) break;
        tsf_sleep_ms(50);
    }
    TS_ALIVE();
    cr_assert_gt(st.lease_ms_left, 0, "the server did not re-register within 10 s");
    cr_assert_eq(st.n_tablets, 0, "the server kept %llu tablets across the expiry", (unsigned long long)st.n_tablets);
    bt_buf_free(&resp);
    TS_RC(tsf_read_rc(1, probe), BT_ENOTSERVING);
    TS_RC(tsf_put(1, "after", "cf", "c", 1, "after"), BT_ENOTSERVING);
    assert_listed(NULL, 0);
    lk_stat ls;
    TS_OK(lk_stat_path(F.master, TSF_LOCK_FILE, &ls));
    cr_assert_neq(ls.lock_owner, 0, "%s is not locked after the re-registration", TSF_LOCK_FILE);

    /* the re-registered server runs a new engine with a new log dir, named
     * in the lock file; the old one is left for the master */
    char live[PATH_MAX];
    tsf_live_log_dir(live, sizeof live);
    cr_assert_str_neq(live, "", "the lock file names no log dir");
    /* every acknowledged write is still there once the master recovers the
     * old log and reassigns the tablet */
    cr_assert_eq(tsf_recover_logs(), 1, "round %d: one dead log dir", round);
    strlist_sort(acked);
    strlist_sort(attempted);
    TS_OK(tsf_load(1, "tables/t/t1", "", "", false, F.seqr));
    char when[32];
    snprintf(when, sizeof when, "after expiry %d", round + 1);
    assert_acked_present(acked, attempted, when);
}

/* Two rounds: a server that acknowledged without checking its lease would
 * only be caught if it committed before noticing the expiry, a race. */
TS_TEST(sigstop_past_lease, tsf_init, 60)
{
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    strlist acked = {0}, attempted = {0};
    for (int round = 0; round < 2; round++) stop_round(round, &acked, &attempted);
    strlist_free(&acked);
    strlist_free(&attempted);
}

/* ---- 7. lock file deleted ---------------------------------------------------------------------- */

TS_TEST(lock_file_deleted_exits_3, tsf_init, 30)
{
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    TS_OK(tsf_put(1, "a", "cf", "c", 1, "a"));
    lk_stat ls;
    TS_OK(lk_stat_path(F.master, TSF_LOCK_FILE, &ls));
    cr_assert_neq(ls.lock_owner, 0, "the server does not hold %s", TSF_LOCK_FILE);
    /* bt-lockd deletes a file whose lock another session holds */
    TS_OK(lk_delete(F.master, TSF_LOCK_FILE, 0));
    int64_t t0 = tsf_now_ms();
    int st = tsf_wait_pid(&F.ts, 8000);
    int64_t took = tsf_now_ms() - t0;
    cr_assert_neq(st, -1, "the server still runs 8 s after its lock file was deleted");
    cr_assert(WIFEXITED(st), "the server died of signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    cr_assert_eq(WEXITSTATUS(st), 3, "exit status %d, want 3", WEXITSTATUS(st));
    cr_assert_lt(took, 5000, "exit took %lld ms", (long long)took);
    TS_RC(lk_stat_path(F.master, TSF_LOCK_FILE, &ls), BT_ENOTFOUND);
}

/* ---- 8. scanner lease ----------------------------------------------------------------------------- */

TS_TEST(scanner_lease_expires, tsf_init_scanner_lease, 30)
{
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    tsf_fill(1, "r", 0, 20);
    /* a scanner used more often than its lease lives on */
    tsf_batch b;
    TS_OK(tsf_scan_open(1, NULL, 1, 0, &b));
    cr_assert_eq(b.n, 1);
    cr_assert_not(b.done);
    uint64_t busy = b.scanner;
    tsf_batch_free(&b);
    for (int i = 0; i < 8; i++) {
        tsf_sleep_ms(100);
        TS_OK(tsf_scan_next(busy, &b));
        cr_assert_eq(b.n, 1);
        char want[32];
        snprintf(want, sizeof want, "r%03d", i + 1);
        cr_assert(tsf_bytes_eq(b.rows[0].key, b.rows[0].key_len, want));
        tsf_batch_free(&b);
    }
    /* an idle one is closed after 300 ms */
    TS_OK(tsf_scan_open(1, NULL, 1, 0, &b));
    uint64_t idle = b.scanner;
    tsf_batch_free(&b);
    cr_assert_eq(status_field_open_scanners(), 2);
    tsf_sleep_ms(1500);
    TS_RC(tsf_scan_next(idle, &b), BT_ENOTFOUND);
    tsf_batch_free(&b);
    TS_RC(tsf_scan_next(busy, &b), BT_ENOTFOUND);
    tsf_batch_free(&b);
    cr_assert_eq(status_field_open_scanners(), 0);
}

/* ---- 9. clean shutdown ------------------------------------------------------------------------------ */

TS_TEST(clean_shutdown, tsf_init, 40)
{
    TS_OK(tsf_load(1, "tables/t/t1", "", "m", true, F.seqr));
    TS_OK(tsf_load(2, "tables/t/t2", "m", "", true, F.seqr));
    tsf_fill(1, "a", 0, 30);
    tsf_fill(2, "x", 0, 30);
    TS_OK(tsf_put(1, "b", "meta", "m", 5, "bm"));
    int st = tsf_stop_ts(SIGTERM, 15000);
    cr_assert_neq(st, -1, "the server did not exit within 15 s of SIGTERM");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status %d after SIGTERM", st);
    lk_stat ls;
    TS_RC(lk_stat_path(F.master, TSF_LOCK_FILE, &ls), BT_ENOTFOUND);
    /* every tablet was flushed: the server deleted its log dir, nothing to recover */
    cr_assert_eq(tsf_recover_logs(), 0, "a clean shutdown leaves no log dir behind");

    tsf_start_ts();
    TS_OK(tsf_load(1, "tables/t/t1", "", "m", false, F.seqr));
    TS_OK(tsf_load(2, "tables/t/t2", "m", "", false, F.seqr));
    bt_buf resp = {0};
    tsp_tablet_info *ti;
    size_t n;
    TS_OK(tsf_list(&ti, &n, &resp));
    cr_assert_eq(n, 2);
    for (size_t i = 0; i < n; i++)
        cr_assert_geq(ti[i].n_sstables, 1, "tablet %llu was not flushed at shutdown",
                      (unsigned long long)ti[i].tablet.id);
    free(ti);
    bt_buf_free(&resp);
    tsf_keys k = {0};
    tsf_scan_all(1, NULL, 0, &k);
    cr_assert_eq(k.n, 31);
    tsf_keys_free(&k);
    tsf_scan_all(2, NULL, 0, &k);
    cr_assert_eq(k.n, 30);
    cr_assert_str_eq(k.key[29], "x029");
    tsf_keys_free(&k);
    assert_value(1, "b", "meta", "m", "bm", 2);
}

/* ---- 10. command line ------------------------------------------------------------------------------- */

/* Runs bt-tabletserver with args, stdout and stderr into out; returns the
 * exit status (128+signal if killed, -1 if it ran past timeout_ms). */
static int run_cli(const char *const *args, char *out, size_t cap, int timeout_ms)
{
    char bin[PATH_MAX + 32];
    tsf_bin("bt-tabletserver", bin, sizeof bin);
    char *argv[16] = {bin};
    int argc = 1;
    for (; args[argc - 1] && argc < 15; argc++) argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = tsf_spawn(argv, p[1], p[1]);
    close(p[1]);
    size_t len = 0;
    int64_t end = tsf_now_ms() + timeout_ms;
    while (tsf_now_ms() < end) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0) continue;
        ssize_t r = read(p[0], out + len, cap - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
        if (len == cap - 1) break;
    }
    out[len] = '\0';
    close(p[0]);
    int64_t left = end - tsf_now_ms();
    int st = tsf_wait_pid(&pid, left > 0 ? (int)left : 0);
    if (st == -1) {
        tsf_kill(&pid);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(ts_cli, flags, .timeout = 40)
{
    static char out[32768];
    const char *help[] = {"--help", NULL};
    cr_assert_eq(run_cli(help, out, sizeof out, 10000), 0);
    cr_assert_not_null(strstr(out, "NAME"), "--help printed: %s", out);
    cr_assert_not_null(strstr(out, "--data-dir"));
    const char *bogus[] = {"--bogus", NULL};
    cr_assert_eq(run_cli(bogus, out, sizeof out, 10000), 2, "%s", out);
    cr_assert_not_null(strstr(out, "unknown option"), "%s", out);
    const char *nodata[] = {"--port", "0", "--lock", "bt://127.0.0.1:1", NULL};
    cr_assert_eq(run_cli(nodata, out, sizeof out, 10000), 2, "%s", out);
    cr_assert_not_null(strstr(out, "--data-dir"), "%s", out);
    const char *novalue[] = {"--data-dir", NULL};
    cr_assert_eq(run_cli(novalue, out, sizeof out, 10000), 2, "%s", out);
    const char *badlease[] = {"--data-dir", "/tmp/unused", "--lease-ms", "5", NULL};
    cr_assert_eq(run_cli(badlease, out, sizeof out, 10000), 2, "%s", out);
    const char *badport[] = {"--data-dir", "/tmp/unused", "--port", "70000", NULL};
    cr_assert_eq(run_cli(badport, out, sizeof out, 10000), 2, "%s", out);
    /* cannot start: exit 1 */
    char dir[] = "/tmp/bt-ts-cli-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    const char *badid[] = {"--data-dir", dir, "--port", "0", "--lock", "bt://127.0.0.1:1", "--id", "bad/id", NULL};
    int rc1 = run_cli(badid, out, sizeof out, 15000);
    static char out2[32768];
    const char *nolock[] = {"--data-dir", dir, "--port", "0", "--lock", "bt://127.0.0.1:1", NULL};
    int rc2 = run_cli(nolock, out2, sizeof out2, 15000);
    test_rm_rf(dir);
    cr_assert_eq(rc1, 1, "bad --id: exit %d: %s", rc1, out);
    cr_assert_eq(rc2, 1, "no lock service: exit %d: %s", rc2, out2);
    cr_assert_not_null(strstr(out2, "cannot start"), "%s", out2);
}

/* ---- 11. admin commands retried while the first attempt still runs ----------------------------
 * A master whose load/unload/split timed out retries it; the retry may reach
 * the server while the first attempt still runs (the server has two admin
 * threads).  The server must end up in the state one command gives. */

typedef struct async_set {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    int rc[8];
} async_set;

typedef struct async_slot {
    async_set *set;
    int idx;
} async_slot;

static void async_done(void *arg, int status, const uint8_t *payload, size_t len, bool more)
{
    (void)payload;
    (void)len;
    if (more) return;
    async_slot *s = arg;
    pthread_mutex_lock(&s->set->mu);
    s->set->rc[s->idx] = status;
    s->set->pending--;
    pthread_cond_broadcast(&s->set->cv);
    pthread_mutex_unlock(&s->set->mu);
}

/* Sends n copies of one request back to back without waiting for answers,
 * then waits for every answer (rcs[i]). */
static void fire_copies(uint16_t m, const bt_buf *req, int n, int *rcs)
{
    async_set set = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .pending = n};
    async_slot slots[8];
    cr_assert_leq(n, 8);
    for (int i = 0; i < n; i++) {
        slots[i] = (async_slot){&set, i};
        int rc = bt_conn_call_async(F.pool, F.addr, m, req->data, req->len, 30000, async_done, &slots[i]);
        cr_assert_eq(rc, BT_OK);
    }
    pthread_mutex_lock(&set.mu);
    while (set.pending > 0) pthread_cond_wait(&set.cv, &set.mu);
    pthread_mutex_unlock(&set.mu);
    memcpy(rcs, set.rc, (size_t)n * sizeof *rcs);
}

TS_TEST(unload_retried_concurrently, tsf_init, 60)
{
    int rcs[2];
    bt_buf req = {0};
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    tsf_fill(1, "u", 0, 500); /* unflushed: the unload flushes first */
    tsf_req_unload(&req, F.seqr, 1);
    fire_copies(TSP_UNLOAD_TABLET, &req, 2, rcs);
    bt_buf_free(&req);
    TS_ALIVE();
    cr_assert(rcs[0] == BT_OK || rcs[1] == BT_OK, "no unload succeeded: %s, %s", bt_errname(rcs[0]),
              bt_errname(rcs[1]));
    for (int i = 0; i < 2; i++)
        cr_assert(rcs[i] == BT_OK || rcs[i] == BT_ENOTSERVING, "unload %d -> %s (the server crashed?)", i,
                  bt_errname(rcs[i]));
    assert_listed(NULL, 0);
    TS_RC(tsf_read_rc(1, "u001"), BT_ENOTSERVING);
    TS_OK(tsf_load(1, "tables/t/t1", "", "", false, F.seqr));
    tsf_keys k = {0};
    tsf_scan_all(1, NULL, 0, &k);
    cr_assert_eq(k.n, 500);
    tsf_keys_free(&k);
}

TS_TEST(load_retried_concurrently, tsf_init, 60)
{
    int rcs[3];
    bt_buf req = {0};
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    for (int i = 0; i < 30; i++) {
        char p[16];
        snprintf(p, sizeof p, "u%02d-", i);
        tsf_fill(1, p, 0, 900);
    }
    kill(F.ts, SIGKILL);
    tsf_wait_pid(&F.ts, 5000);
    tsf_start_ts();
    cr_assert_eq(tsf_recover_logs(), 1); /* opening tablet 1 now replays 27000 rows from recovery files */
    tsf_req_load(&req, F.seqr, 1, "tables/t/t1", "", "", false);
    fire_copies(TSP_LOAD_TABLET, &req, 3, rcs);
    bt_buf_free(&req);
    for (int i = 0; i < 3; i++) cr_assert_eq(rcs[i], BT_OK, "load %d -> %s", i, bt_errname(rcs[i]));
    uint64_t one[] = {1};
    assert_listed(one, 1); /* one instance of the tablet, not one per load */
    TS_OK(tsf_put(1, "new", "cf", "c", 1, "new"));
    TS_OK(tsf_unload(1, F.seqr));
    assert_listed(NULL, 0);
    TS_RC(tsf_read_rc(1, "new"), BT_ENOTSERVING);
    TS_OK(tsf_load(1, "tables/t/t1", "", "", false, F.seqr));
    tsf_keys k = {0};
    tsf_scan_all(1, NULL, 0, &k);
    cr_assert_eq(k.n, 27001);
    tsf_keys_free(&k);
}

typedef struct hammer {
    atomic_bool stop;
    atomic_int ok, notserving, other;
    int other_rc;
} hammer;

/* Reads a row of tablet 1 in a loop (the parent of the split below). */
static void *hammer_main(void *arg)
{
    hammer *h = arg;
    while (!atomic_load(&h->stop)) {
        int rc = tsf_read_rc(1, "u050");
        if (rc == BT_OK) atomic_fetch_add(&h->ok, 1);
        else if (rc == BT_ENOTSERVING) atomic_fetch_add(&h->notserving, 1);
        else if (atomic_fetch_add(&h->other, 1) == 0) h->other_rc = rc;
    }
    return NULL;
}

TS_TEST(split_retried_concurrently, tsf_init, 60)
{
    enum { NH = 3 };
    int rcs[2];
    bt_buf req = {0};
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    for (int i = 0; i < 20; i++) tsf_fill(1, "u", i * 100, i * 100 + 100);
    hammer h;
    memset(&h, 0, sizeof h);
    pthread_t th[NH];
    for (int i = 0; i < NH; i++) cr_assert_eq(pthread_create(&th[i], NULL, hammer_main, &h), 0);
    tsf_sleep_ms(50);
    tsf_req_split(&req, F.seqr, 1, "u1000", 2, "tables/t/t2", 3, "tables/t/t3");
    fire_copies(TSP_SPLIT, &req, 2, rcs);
    bt_buf_free(&req);
    tsf_sleep_ms(200);
    atomic_store(&h.stop, true);
    for (int i = 0; i < NH; i++) pthread_join(th[i], NULL);
    TS_ALIVE();
    cr_assert((rcs[0] == BT_OK) != (rcs[1] == BT_OK), "split twice -> %s, %s: want exactly one OK",
              bt_errname(rcs[0]), bt_errname(rcs[1]));
    cr_assert_eq(atomic_load(&h.other), 0, "%d reads of the parent failed with neither OK nor NOT_SERVING (first: %s)",
                 atomic_load(&h.other), bt_errname(h.other_rc));
    cr_assert_gt(atomic_load(&h.notserving), 0);
    uint64_t two[] = {2, 3};
    assert_listed(two, 2);
    TS_RC(tsf_read_rc(1, "u050"), BT_ENOTSERVING);
    /* the children hold every row, each in its half */
    tsf_keys l = {0}, r = {0};
    tsf_scan_all(2, NULL, 0, &l);
    tsf_scan_all(3, NULL, 0, &r);
    cr_assert_eq(l.n + r.n, 2000, "%zu + %zu rows after the split", l.n, r.n);
    cr_assert(l.n > 0 && r.n > 0);
    for (size_t i = 0; i < l.n; i++) cr_assert_lt(strcmp(l.key[i], "u1000"), 0, "%s in the left child", l.key[i]);
    for (size_t i = 0; i < r.n; i++) cr_assert_geq(strcmp(r.key[i], "u1000"), 0, "%s in the right child", r.key[i]);
    tsf_keys_free(&l);
    tsf_keys_free(&r);
}

/* ---- 12. reassignment under load ----------------------------------------------------------------
 * The master moves a busy tablet away and back again and again: every request
 * gets OK or NOT_SERVING (never a crash or anything else), and every
 * acknowledged write is there at the end.  (Each unload drains requests that
 * finish at that moment: a request must not touch the tablet's entry after
 * dropping its reference, which ThreadSanitizer and ASan builds check.) */
TS_TEST(reassignment_under_load, tsf_init, 60)
{
    enum { NW = 3, NR = 3, CYCLES = 25 };
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    tsf_fill(1, "u", 0, 100);
    atomic_bool stop = false;
    writer w[NW];
    writers_start(w, NW, &stop, "m%d-%d-", 0);
    hammer h;
    memset(&h, 0, sizeof h);
    pthread_t th[NR];
    for (int i = 0; i < NR; i++) cr_assert_eq(pthread_create(&th[i], NULL, hammer_main, &h), 0);
    int unload_rc = BT_OK, load_rc = BT_OK, cycles = 0;
    for (; cycles < CYCLES && !unload_rc && !load_rc; cycles++) {
        tsf_sleep_ms(20);
        unload_rc = tsf_unload(1, F.seqr);
        tsf_sleep_ms(5);
        load_rc = tsf_load(1, "tables/t/t1", "", "", false, F.seqr);
    }
    tsf_sleep_ms(20);
    atomic_store(&stop, true);
    atomic_store(&h.stop, true);
    writers_join(w, NW);
    for (int i = 0; i < NR; i++) pthread_join(th[i], NULL);

    strlist acked = {0}, attempted = {0};
    size_t bad = 0, ok = 0;
    int bad_rc = 0;
    for (int i = 0; i < NW; i++) {
        for (size_t j = 0; j < w[i].n; j++) {
            char key[64];
            writer_key(&w[i], j, key, sizeof key);
            strlist_add(&attempted, key);
            int rc = w[i].rec[j].rc;
            if (rc == BT_OK) {
                strlist_add(&acked, key);
                ok++;
            } else if (rc != BT_ENOTSERVING && !bad++) {
                bad_rc = rc;
            }
        }
        free(w[i].rec);
    }
    for (size_t i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "u%03zu", i);
        strlist_add(&attempted, key);
    }
    TS_ALIVE();
    cr_assert_eq(unload_rc, BT_OK, "unload %d -> %s", cycles, bt_errname(unload_rc));
    cr_assert_eq(load_rc, BT_OK, "load %d -> %s", cycles, bt_errname(load_rc));
    cr_assert_eq(bad, 0, "%zu writes failed with neither OK nor NOT_SERVING (first: %s)", bad, bt_errname(bad_rc));
    cr_assert_eq(atomic_load(&h.other), 0, "%d reads failed with neither OK nor NOT_SERVING (first: %s)",
                 atomic_load(&h.other), bt_errname(h.other_rc));
    cr_assert_gt(ok, 20, "only %zu writes acknowledged", ok);
    cr_assert_gt(atomic_load(&h.ok), 20);
    cr_assert_gt(atomic_load(&h.notserving), 0, "no request saw the tablet away: the test did not test anything");
    strlist_sort(&acked);
    strlist_sort(&attempted);
    assert_acked_present(&acked, &attempted, "after the reassignments");
    strlist_free(&acked);
    strlist_free(&attempted);
}

/* ---- 12. split markers, recovery on another server, automatic splits --------------------------- */

/* TSP_LOAD_TABLET with its answer decoded into *a (pointing into resp). */
static int load_answer(uint64_t id, const char *dir, const char *start, const char *end, tsp_load_answer *a,
                       bt_buf *resp)
{
    bt_buf req = {0};
    tsf_req_load(&req, F.seqr, id, dir, start, end, false);
    int rc = tsf_call(TSP_LOAD_TABLET, &req, resp);
    bt_buf_free(&req);
    if (rc) return rc;
    bt_msg_reader r;
    bt_msg_reader_init(&r, resp->data, resp->len);
    return tsp_get_load_answer(&r, a);
}

static void assert_child(const tsp_tablet *t, uint64_t id, const char *dir, const char *start, const char *end)
{
    cr_assert_eq(t->id, id);
    cr_assert(tsf_bytes_eq(t->table, t->table_len, TSF_TABLE), "child table");
    cr_assert(tsf_bytes_eq(t->dir, t->dir_len, dir), "child dir %.*s, want %s", (int)t->dir_len, t->dir, dir);
    cr_assert(tsf_bytes_eq(t->start, t->start_len, start), "child start");
    cr_assert(tsf_bytes_eq(t->end, t->end_len, end), "child end");
}

/* After a split the parent's directory holds a SPLIT marker: loading the
 * parent again (as a master that missed the split would) loads nothing and
 * answers the children, also after a restart. */
TS_TEST(load_of_split_parent_answers_children, tsf_init, 60)
{
    tsp_load_answer a;
    bt_buf resp = {0};
    TS_RC(load_answer(1, "tables/t/t1", "", "", &a, &resp), BT_ENOTFOUND); /* no tablet, no create flag */
    bt_buf_free(&resp);
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    TS_OK(load_answer(1, "tables/t/t1", "", "", &a, &resp)); /* a retry: already loaded */
    cr_assert_eq(a.state, TSP_LOAD_STATE_LOADED);
    bt_buf_free(&resp);
    for (int i = 0; i < 4; i++) tsf_fill(1, "u", i * 100, i * 100 + 100);
    char mid[256];
    TS_OK(tsf_split(F.seqr, 1, "u200", 2, "tables/t/t2", 3, "tables/t/t3", mid));
    cr_assert_str_eq(mid, "u200");

    char parent[PATH_MAX + 64];
    snprintf(parent, sizeof parent, "%s/tables/t/t1", F.data_dir);
    ts_split_marker m;
    cr_assert_eq(ts_split_marker_read(bt_env_posix(), parent, &m), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(m.parent_id, 1);
    cr_assert(tsf_bytes_eq(m.mid.data, m.mid.len, "u200"));
    cr_assert_eq(m.left.id, 2);
    cr_assert_str_eq(m.left.dir, "tables/t/t2");
    cr_assert(tsf_bytes_eq(m.left.end.data, m.left.end.len, "u200") && m.left.start.len == 0);
    cr_assert_eq(m.right.id, 3);
    cr_assert_str_eq(m.right.dir, "tables/t/t3");
    cr_assert(tsf_bytes_eq(m.right.start.data, m.right.start.len, "u200") && m.right.end.len == 0);
    ts_split_marker_free(&m);

    for (int round = 0; round < 2; round++) {
        TS_OK(load_answer(1, "tables/t/t1", "", "", &a, &resp));
        cr_assert_eq(a.state, TSP_LOAD_STATE_SPLIT, "round %d: the parent was loaded again", round);
        cr_assert(tsf_bytes_eq(a.mid, a.mid_len, "u200"));
        assert_child(&a.left, 2, "tables/t/t2", "", "u200");
        assert_child(&a.right, 3, "tables/t/t3", "u200", "");
        bt_buf_free(&resp);
        TS_RC(tsf_read_rc(1, "u050"), BT_ENOTSERVING);
        if (round == 0) {
            uint64_t kids[] = {2, 3};
            assert_listed(kids, 2);
            /* a restart: nothing loaded, the marker still answers */
            cr_assert_eq(tsf_stop_ts(SIGTERM, 15000), 0);
            tsf_start_ts();
            assert_listed(NULL, 0);
        }
    }
    /* the children load normally, with every row in its half */
    TS_OK(load_answer(2, "tables/t/t2", "", "u200", &a, &resp));
    cr_assert_eq(a.state, TSP_LOAD_STATE_LOADED);
    bt_buf_free(&resp);
    TS_OK(load_answer(3, "tables/t/t3", "u200", "", &a, &resp));
    cr_assert_eq(a.state, TSP_LOAD_STATE_LOADED);
    bt_buf_free(&resp);
    tsf_keys k = {0};
    tsf_scan_all(2, NULL, 0, &k);
    cr_assert_eq(k.n, 200);
    tsf_keys_free(&k);
    tsf_scan_all(3, NULL, 0, &k);
    cr_assert_eq(k.n, 200);
    tsf_keys_free(&k);
}

/* The core of failure recovery, as the master does it: a server is
 * SIGKILLed under writes; its lock is taken and its file deleted; its dead
 * log dir is split into the tablet's recovery files; ANOTHER server loads the
 * tablet and serves every acknowledged write. */
TS_TEST(sigkill_then_recover_on_another_server, tsf_init, 90)
{
    enum { NW = 4 };
    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    tsf_fill(1, "flushed", 0, 300);
    TS_OK(tsf_id_call(TSP_FLUSH, 1, NULL)); /* part in an SSTable: the load replays only past it */
    strlist acked = {0}, attempted = {0};
    for (int i = 0; i < 300; i++) {
        char key[32];
        snprintf(key, sizeof key, "flushed%03d", i);
        strlist_add(&acked, key);
        strlist_add(&attempted, key);
    }
    atomic_bool stop = false;
    writer w[NW];
    writers_start(w, NW, &stop, "k%d-%d-", 0);
    tsf_sleep_ms(1000);
    kill(F.ts, SIGKILL);
    int st = tsf_wait_pid(&F.ts, 5000);
    atomic_store(&stop, true);
    writers_join(w, NW);
    cr_assert(st != -1 && WIFSIGNALED(st), "wait status %d", st);
    size_t round_acked = 0;
    for (int i = 0; i < NW; i++) {
        for (size_t j = 0; j < w[i].n; j++) {
            char key[64];
            writer_key(&w[i], j, key, sizeof key);
            strlist_add(&attempted, key);
            if (w[i].rec[j].rc == BT_OK) {
                strlist_add(&acked, key);
                round_acked++;
            }
        }
        free(w[i].rec);
    }
    cr_assert_gt(round_acked, 10, "only %zu writes acknowledged in 1 s", round_acked);
    strlist_sort(&acked);
    strlist_sort(&attempted);

    /* the master: take the dead server's lock (once its lease ran out), delete its file */
    char live[PATH_MAX];
    cr_assert_eq(lk_acquire(F.master, TSF_LOCK_FILE, 10000), BT_OK, "%s", bt_errmsg());
    tsf_live_log_dir(live, sizeof live);
    cr_assert_str_neq(live, "", "now held by the master: still names the dead log");
    TS_OK(lk_delete(F.master, TSF_LOCK_FILE, 0));
    char dead[2 * PATH_MAX + 64];
    snprintf(dead, sizeof dead, "%s/%s", F.data_dir, live);
    cr_assert_eq(access(dead, F_OK), 0, "the dead log dir %s exists", dead);
    cr_assert_eq(tsf_recover_logs(), 1);
    cr_assert_neq(access(dead, F_OK), 0);
    char rdir[PATH_MAX + 64];
    snprintf(rdir, sizeof rdir, "%s/tables/t/t1/recovery", F.data_dir);
    cr_assert_eq(access(rdir, F_OK), 0, "the split wrote the tablet's recovery file");

    tsf_start_ts_as("ts2");
    TS_OK(tsf_load(1, "tables/t/t1", "", "", false, F.seqr));
    assert_acked_present(&acked, &attempted, "on another server");
    DIR *d = opendir(rdir);
    int left = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) left += de->d_name[0] != '.';
    if (d) closedir(d);
    cr_assert_eq(left, 0, "the load deleted the recovery files once flushed");
    /* and once more from SSTables alone: unload (flush), load */
    TS_OK(tsf_unload(1, F.seqr));
    TS_OK(tsf_load(1, "tables/t/t1", "", "", false, F.seqr));
    assert_acked_present(&acked, &attempted, "reloaded");
    strlist_free(&acked);
    strlist_free(&attempted);
}

/* ---- automatic splits, in process (the commit hook is a library option) ---- */

typedef struct hook_log {
    pthread_mutex_t mu;
    int calls, fail_first;
    uint64_t parent, left, right;
    char table[80], mid[64], ldir[128], rdir[128], lstart[64], rend[64];
} hook_log;

static int record_split(void *arg, const tsp_split_info *in)
{
    hook_log *h = arg;
    pthread_mutex_lock(&h->mu);
    int call = ++h->calls;
    h->parent = in->parent_id;
    h->left = in->left.id;
    h->right = in->right.id;
    snprintf(h->table, sizeof h->table, "%.*s", (int)in->table_len, in->table);
    snprintf(h->mid, sizeof h->mid, "%.*s", (int)in->mid_len, (const char *)in->mid);
    snprintf(h->ldir, sizeof h->ldir, "%.*s", (int)in->left.dir_len, in->left.dir);
    snprintf(h->rdir, sizeof h->rdir, "%.*s", (int)in->right.dir_len, in->right.dir);
    snprintf(h->lstart, sizeof h->lstart, "%.*s", (int)in->left.start_len, (const char *)in->left.start);
    snprintf(h->rend, sizeof h->rend, "%.*s", (int)in->right.end_len, (const char *)in->right.end);
    pthread_mutex_unlock(&h->mu);
    return call <= h->fail_first ? bt_err(BT_EUNAVAIL, "METADATA is not reachable (test)") : BT_OK;
}

static void *run_server(void *arg)
{
    return (void *)(intptr_t)ts_server_run(arg);
}

TS_TEST(automatic_split_commits_through_the_hook, tsf_init, 60)
{
    static hook_log h;
    memset(&h, 0, sizeof h);
    pthread_mutex_init(&h.mu, NULL);
    h.fail_first = 2; /* retried with backoff: the third attempt commits */
    ts_server_options o = {.port = 0, .id = "ts9", .data_dir = F.data_dir, .lock_url = F.lock_url,
                           .lease_ms = TSF_LEASE_MS, .commit_split = record_split, .commit_arg = &h,
                           .split_bytes = 16 << 10};
    ts_server *s;
    cr_assert_eq(ts_server_open(&o, &s), BT_OK, "%s", bt_errmsg());
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, run_server, s), 0);
    char saved[64];
    snprintf(saved, sizeof saved, "%s", F.addr);
    snprintf(F.addr, sizeof F.addr, "%s", ts_server_address(s));

    TS_OK(tsf_load(1, "tables/t/t1", "", "", true, F.seqr));
    for (int i = 0; i < 10; i++) {
        char p[16];
        snprintf(p, sizeof p, "r%d-", i);
        tsf_fill(1, p, 0, 200);
    }
    TS_OK(tsf_id_call(TSP_FLUSH, 1, NULL)); /* past 16 KiB of SSTables now */
    int64_t end = tsf_now_ms() + 20000;
    for (;;) {
        pthread_mutex_lock(&h.mu);
        int calls = h.calls;
        pthread_mutex_unlock(&h.mu);
        if (calls >= 3 || tsf_now_ms() > end) break;
        tsf_sleep_ms(50);
    }
    pthread_mutex_lock(&h.mu);
    cr_assert_eq(h.calls, 3, "the hook ran %d times, want 2 failures then a commit", h.calls);
    cr_assert_eq(h.parent, 1);
    cr_assert_str_eq(h.table, TSF_TABLE);
    cr_assert_str_eq(h.lstart, "");
    cr_assert_str_eq(h.rend, "");
    cr_assert_gt(strlen(h.mid), 0);
    char want[128];
    bt_tablet_dir(want, sizeof want, TSF_TABLE, h.left);
    cr_assert_str_eq(h.ldir, want);
    bt_tablet_dir(want, sizeof want, TSF_TABLE, h.right);
    cr_assert_str_eq(h.rdir, want);
    uint64_t kids[2] = {h.left < h.right ? h.left : h.right, h.left < h.right ? h.right : h.left};
    char mid[64];
    snprintf(mid, sizeof mid, "%s", h.mid);
    pthread_mutex_unlock(&h.mu);
    assert_listed(kids, 2);
    TS_RC(tsf_read_rc(1, "r0-000"), BT_ENOTSERVING);
    tsp_load_answer a;
    bt_buf resp = {0};
    TS_OK(load_answer(1, "tables/t/t1", "", "", &a, &resp));
    cr_assert_eq(a.state, TSP_LOAD_STATE_SPLIT);
    cr_assert(tsf_bytes_eq(a.mid, a.mid_len, mid));
    bt_buf_free(&resp);
    tsf_keys l = {0}, r = {0};
    tsf_scan_all(h.left, NULL, 0, &l);
    tsf_scan_all(h.right, NULL, 0, &r);
    cr_assert_eq(l.n + r.n, 2000, "%zu + %zu rows", l.n, r.n);
    tsf_keys_free(&l);
    tsf_keys_free(&r);

    ts_server_request_stop(s);
    void *ret;
    pthread_join(th, &ret);
    cr_assert_eq((int)(intptr_t)ret, 0);
    ts_server_close(s);
    bt_conn_pool_drop(F.pool, F.addr);
    snprintf(F.addr, sizeof F.addr, "%s", saved);
    pthread_mutex_destroy(&h.mu);
}

/* tests/unit/test_logsplit.c: splitting a dead server's commit log per tablet
 * (tabletserver/logsplit.h) and the recovery at ts_tablet_open that replays
 * the pieces (tabletserver/tablet.h).
 *
 *   split_groups_records_per_tablet   3 known tablets + 1 unknown over many
 *                                     rolled files, one with a torn tail:
 *                                     every record in its tablet's file, in
 *                                     order; unknown skipped; stats
 *   split_is_idempotent               a rerun writes the same bytes
 *   split_of_missing_or_empty_log     BT_ENOTFOUND; an empty dir writes nothing
 *   split_rejects_bad_arguments       name, relative tablet dir
 *   open_replays_recovery_past_flushed_seq
 *                                     a tablet flushed at F replays exactly its
 *                                     records > F, flushes, deletes the files;
 *                                     a reopen on a fresh log reads SSTables
 *   failed_recovery_flush_keeps_the_files
 *   faults_never_leave_a_partial_final_file
 *                                     every env call of a split failed in turn:
 *                                     an error, and each final file either
 *                                     absent or whole
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/env.h"
#include "common/status.h"
#include "tabletserver/commitlog.h"
#include "tabletserver/logsplit.h"
#include "tabletserver/manifest.h"
#include "tabletserver/tablet.h"
#include "tests/unit/testutil.h"

/* ---- helpers ---------------------------------------------------------------------- */

typedef struct fx {
    char root[64];
    char log[128];
    char dirs[4][128];     /* tablet dirs of tablets 1..3 (index 0 unused) */
} fx;

static void fx_init(fx *f)
{
    memset(f, 0, sizeof *f);
    strcpy(f->root, "/tmp/bt-logsplit-XXXXXX");
    cr_assert_not_null(mkdtemp(f->root));
    char root[64];
    memcpy(root, f->root, sizeof root);
    snprintf(f->log, sizeof f->log, "%s/log", root);
    for (int i = 1; i <= 3; i++) {
        snprintf(f->dirs[i], sizeof f->dirs[i], "%s/t%d", root, i);
        cr_assert_eq(mkdir(f->dirs[i], 0755), 0);
    }
}

/* tablet_dir callback: tablets 1..3 known, others not. */
static const char *dir_of(void *arg, uint64_t id)
{
    fx *f = arg;
    return id >= 1 && id <= 3 ? f->dirs[id] : NULL;
}

static void recovery_path(const fx *f, int tablet, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/recovery/%s.log", f->dirs[tablet], name);
}

static uint8_t *slurp(const char *path, size_t *n)
{
    uint8_t *d = NULL;
    int rc = bt_env_read_all(bt_env_posix(), path, &d, n);
    return rc ? NULL : d;
}

/* Records read back from a file. */
typedef struct rec { uint64_t tablet, seq, last; char payload[64]; } rec;
typedef struct recs { rec v[4096]; size_t n; } recs;

static int collect(void *arg, uint64_t tablet, uint64_t seq, uint64_t last, const uint8_t *p, size_t n)
{
    recs *r = arg;
    cr_assert_lt(r->n, 4096);
    rec *x = &r->v[r->n++];
    x->tablet = tablet;
    x->seq = seq;
    x->last = last;
    snprintf(x->payload, sizeof x->payload, "%.*s", (int)n, (const char *)p);
    return 0;
}

/* Appends one record directly to log file `path` (bytes, possibly cut). */
static void append_raw(const char *path, uint64_t tablet, uint64_t seq, const char *payload, size_t cut)
{
    bt_buf b = {0};
    cr_assert_eq(ts_log_encode_record(&b, tablet, seq, seq, payload, strlen(payload)), BT_OK);
    FILE *fp = fopen(path, "ab");
    cr_assert_not_null(fp);
    cr_assert_eq(fwrite(b.data, 1, b.len - cut, fp), b.len - cut);
    fclose(fp);
    bt_buf_free(&b);
}

#define N_RECORDS 600

/* The expected payload of record i (tablet 1 + i % 4; tablet 4 is unknown). */
static void payload_of(int i, char *out, size_t cap)
{
    snprintf(out, cap, "rec-%04d-tablet-%d-%.*s", i, 1 + i % 4, i % 23, "abcdefghijklmnopqrstuvwxyz");
}

/* Writes N_RECORDS records round-robin over tablets 1..4 into f->log with a
 * tiny roll size (many files), then tears the tail of the third file.
 * Returns the number of files. */
static size_t write_log(fx *f)
{
    ts_log_options o = { .env = bt_env_posix(), .dir = f->log, .durability = TS_DURABILITY_SYNC,
                         .roll_bytes = 2048 };
    ts_log *l;
    cr_assert_eq(ts_log_open(&o, &l), BT_OK, "%s", bt_errmsg());
    uint64_t seq[5] = {0};
    for (int i = 0; i < N_RECORDS; i++) {
        char p[64];
        payload_of(i, p, sizeof p);
        uint64_t t = 1 + (uint64_t)(i % 4);
        seq[t]++;
        cr_assert_eq(ts_log_append(l, t, seq[t], seq[t], p, strlen(p)), BT_OK);
    }
    cr_assert_eq(ts_log_close(l), BT_OK);
    uint64_t *nums;
    size_t n;
    cr_assert_eq(ts_log_list_files(bt_env_posix(), f->log, &nums, &n), BT_OK);
    cr_assert_gt(n, 5, "the log should have rolled into many files, got %zu", n);
    char path[256];
    ts_log_file_path(f->log, nums[2], path, sizeof path);
    /* a torn tail: a record cut short, as a crash in the middle of a write leaves it */
    append_raw(path, 1, 999999, "torn-record-must-not-appear", 5);
    free(nums);
    return n;
}

/* Checks tablet t's recovery file holds exactly its records, in order. */
static void check_recovery_file(const fx *f, int t, const char *name)
{
    char path[256];
    recovery_path(f, t, name, path, sizeof path);
    recs *r = calloc(1, sizeof *r);
    uint64_t valid = 0;
    cr_assert_eq(ts_log_read_file(bt_env_posix(), path, collect, r, &valid), BT_OK, "%s: %s", path, bt_errmsg());
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, valid, "%s holds only whole records", path);
    size_t k = 0;
    uint64_t seq = 0;
    for (int i = 0; i < N_RECORDS; i++) {
        if (1 + i % 4 != t) continue;
        char p[64];
        payload_of(i, p, sizeof p);
        seq++;
        cr_assert_lt(k, r->n, "tablet %d: record %d missing", t, i);
        cr_assert_eq(r->v[k].tablet, (uint64_t)t);
        cr_assert_eq(r->v[k].seq, seq);
        cr_assert_eq(r->v[k].last, seq);
        cr_assert_str_eq(r->v[k].payload, p);
        k++;
    }
    cr_assert_eq(k, r->n, "tablet %d: %zu extra records", t, r->n - k);
    free(r);
}

/* ---- splitting -------------------------------------------------------------------- */

Test(logsplit, split_groups_records_per_tablet)
{
    fx f;
    fx_init(&f);
    size_t files = write_log(&f);
    ts_log_split_stats st;
    int rc = ts_log_split(bt_env_posix(), f.log, "ts1-log-1", dir_of, &f, &st);
    cr_assert_eq(rc, BT_OK, "ts_log_split: %s", bt_errmsg());
    cr_assert_eq(st.files, files);
    cr_assert_eq(st.records, N_RECORDS, "the torn record is not read (got %" PRIu64 ")", st.records);
    cr_assert_eq(st.skipped, N_RECORDS / 4, "tablet 4's records are skipped");
    cr_assert_eq(st.tablets, 3);
    cr_assert_gt(st.bytes, 0);
    for (int t = 1; t <= 3; t++) check_recovery_file(&f, t, "ts1-log-1");
    /* no temporary file is left behind */
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/recovery/ts1-log-1.log.tmp", f.dirs[1]);
    cr_assert_neq(access(tmp, F_OK), 0);
    /* the log itself is untouched (the master deletes it) */
    uint64_t *nums;
    size_t n;
    cr_assert_eq(ts_log_list_files(bt_env_posix(), f.log, &nums, &n), BT_OK);
    cr_assert_eq(n, files);
    free(nums);
    test_rm_rf(f.root);
}

Test(logsplit, split_is_idempotent)
{
    fx f;
    fx_init(&f);
    write_log(&f);
    cr_assert_eq(ts_log_split(bt_env_posix(), f.log, "dead", dir_of, &f, NULL), BT_OK, "%s", bt_errmsg());
    uint8_t *first[4] = {0};
    size_t len[4] = {0};
    for (int t = 1; t <= 3; t++) {
        char p[256];
        recovery_path(&f, t, "dead", p, sizeof p);
        first[t] = slurp(p, &len[t]);
        cr_assert_not_null(first[t]);
    }
    ts_log_split_stats st;
    cr_assert_eq(ts_log_split(bt_env_posix(), f.log, "dead", dir_of, &f, &st), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(st.tablets, 3);
    for (int t = 1; t <= 3; t++) {
        char p[256];
        size_t n;
        recovery_path(&f, t, "dead", p, sizeof p);
        uint8_t *again = slurp(p, &n);
        cr_assert_eq(n, len[t]);
        cr_assert_eq(memcmp(again, first[t], n), 0, "tablet %d: a rerun wrote different bytes", t);
        free(again);
        free(first[t]);
        check_recovery_file(&f, t, "dead");
    }
    test_rm_rf(f.root);
}

Test(logsplit, split_of_missing_or_empty_log)
{
    fx f;
    fx_init(&f);
    cr_assert_eq(ts_log_split(bt_env_posix(), f.log, "x", dir_of, &f, NULL), BT_ENOTFOUND);
    cr_assert_eq(mkdir(f.log, 0755), 0);
    ts_log_split_stats st;
    cr_assert_eq(ts_log_split(bt_env_posix(), f.log, "x", dir_of, &f, &st), BT_OK);
    cr_assert_eq(st.files + st.records + st.tablets + st.skipped, 0);
    char rdir[256];
    snprintf(rdir, sizeof rdir, "%s/recovery", f.dirs[1]);
    cr_assert_neq(access(rdir, F_OK), 0, "nothing to recover: no recovery dir");
    test_rm_rf(f.root);
}

static const char *relative_dir(void *arg, uint64_t id)
{
    (void)arg;
    (void)id;
    return "tables/t/1";
}

Test(logsplit, split_rejects_bad_arguments)
{
    fx f;
    fx_init(&f);
    write_log(&f);
    cr_assert_eq(ts_log_split(bt_env_posix(), f.log, "", dir_of, &f, NULL), BT_EINVAL);
    cr_assert_eq(ts_log_split(bt_env_posix(), f.log, "a/b", dir_of, &f, NULL), BT_EINVAL);
    cr_assert_eq(ts_log_split(bt_env_posix(), f.log, "..", dir_of, &f, NULL), BT_EINVAL);
    cr_assert_eq(ts_log_split(bt_env_posix(), f.log, "x", NULL, &f, NULL), BT_EINVAL);
    cr_assert_eq(ts_log_split(bt_env_posix(), f.log, "x", relative_dir, NULL, NULL), BT_EINVAL);
    test_rm_rf(f.root);
}

/* ---- recovery at open ---------------------------------------------------------------- */

static void schema_cf(ts_schema *s)
{
    ts_schema_init(s);
    cr_assert_eq(ts_schema_add_family(s, "cf", 0, 0), BT_OK);
}

static ts_engine *engine_on(const char *log_dir)
{
    ts_engine_options eo = { .log_dir = log_dir, .durability = TS_DURABILITY_SYNC };
    ts_engine *e;
    cr_assert_eq(ts_engine_open(&eo, &e), BT_OK, "%s", bt_errmsg());
    return e;
}

static void put(ts_tablet *t, int i)
{
    char row[32], val[32];
    snprintf(row, sizeof row, "row%05d", i);
    snprintf(val, sizeof val, "value-%d", i);
    ts_mutation m = { .type = TS_SET_CELL, .family = "cf", .family_len = 2, .qualifier = (const uint8_t *)"q",
                      .qualifier_len = 1, .timestamp = 1000 + i, .value = (const uint8_t *)val,
                      .value_len = strlen(val) };
    cr_assert_eq(ts_tablet_mutate_row(t, (const uint8_t *)row, strlen(row), &m, 1), BT_OK, "%s", bt_errmsg());
}

/* A payload setting cf:q of `row` to `val` (what ts_tablet_mutate_row logs). */
static void bogus_payload(bt_buf *b, const char *row, const char *val)
{
    uint8_t ts[16];
    bt_buf_put_lenbytes(b, row, strlen(row));
    bt_buf_put_varint64(b, 1);
    bt_buf_append(b, "\0", 1);  /* TS_SET_CELL */
    bt_buf_put_lenbytes(b, "cf", 2);
    bt_buf_put_lenbytes(b, "q", 1);
    bt_put_fixed64(ts, 5);
    bt_put_fixed64(ts + 8, (uint64_t)INT64_MAX);
    bt_buf_append(b, ts, 16);
    bt_buf_put_lenbytes(b, val, strlen(val));
}

static int count_rows(ts_tablet *t, int *bogus)
{
    ts_scanner *sc;
    cr_assert_eq(ts_tablet_scan(t, NULL, &sc), BT_OK);
    ts_row r;
    int n = 0;
    *bogus = 0;
    while (ts_scanner_next(sc, &r) == BT_OK) {
        if (r.key_len >= 5 && !memcmp(r.key, "bogus", 5)) (*bogus)++;
        else n++;
    }
    ts_scanner_close(sc);
    return n;
}

static int count_recovery_files(const char *tdir)
{
    char rdir[256];
    snprintf(rdir, sizeof rdir, "%s/recovery", tdir);
    DIR *d = opendir(rdir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

#define TID 7
#define ROWS_FLUSHED 200
#define ROWS_LATER 300

/* A tablet with ROWS_FLUSHED rows in an SSTable and ROWS_LATER more only in
 * the log `dead`: the engine is closed without flushing, like a server that
 * died.  Returns the flushed sequence. */
static uint64_t make_dead_server(const char *dead, const char *tdir)
{
    ts_engine *e = engine_on(dead);
    ts_schema sc;
    schema_cf(&sc);
    ts_tablet *t;
    cr_assert_eq(ts_tablet_create(e, tdir, TID, &sc, NULL, 0, NULL, 0, &t), BT_OK, "%s", bt_errmsg());
    for (int i = 0; i < ROWS_FLUSHED; i++) put(t, i);
    cr_assert_eq(ts_tablet_flush(t), BT_OK);
    ts_tablet_stats st;
    ts_tablet_get_stats(t, &st);
    for (int i = ROWS_FLUSHED; i < ROWS_FLUSHED + ROWS_LATER; i++) put(t, i);
    cr_assert_eq(ts_tablet_close(t), BT_OK);
    cr_assert_eq(ts_engine_close(e), BT_OK);
    return st.flushed_seq;
}

static const char *only_tid(void *arg, uint64_t id)
{
    return id == TID ? arg : NULL;
}

Test(logsplit, open_replays_recovery_past_flushed_seq)
{
    char root[64] = "/tmp/bt-logsplit-XXXXXX", dead[128], fresh[128], later[128], tdir[128];
    cr_assert_not_null(mkdtemp(root));
    snprintf(dead, sizeof dead, "%s/servers/a/log-1", root);
    snprintf(fresh, sizeof fresh, "%s/servers/b/log-2", root);
    snprintf(later, sizeof later, "%s/servers/b/log-3", root);
    snprintf(tdir, sizeof tdir, "%s/tables/t/7", root);
    cr_assert_eq(bt_env_mkdir(bt_env_posix(), tdir), BT_OK);
    uint64_t flushed = make_dead_server(dead, tdir);
    cr_assert_eq(flushed, ROWS_FLUSHED);

    ts_log_split_stats st;
    cr_assert_eq(ts_log_split(bt_env_posix(), dead, "a-log-1", only_tid, tdir, &st), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(st.tablets, 1);
    cr_assert_eq(st.records, ROWS_FLUSHED + ROWS_LATER, "the dead log still holds every record");
    /* records the tablet must not apply: one at or below its flushed seq,
     * one of another tablet (in a second recovery file) */
    char rf[256];
    snprintf(rf, sizeof rf, "%s/recovery/other.log", tdir);
    bt_buf b = {0}, p = {0};
    bogus_payload(&p, "bogus-old", "x");
    cr_assert_eq(ts_log_encode_record(&b, TID, flushed, flushed, p.data, p.len), BT_OK);
    bt_buf_clear(&p);
    bogus_payload(&p, "bogus-other", "x");
    cr_assert_eq(ts_log_encode_record(&b, TID + 1, flushed + 1000, flushed + 1000, p.data, p.len), BT_OK);
    cr_assert_eq(bt_env_write_atomic(bt_env_posix(), rf, b.data, b.len), BT_OK);
    bt_buf_free(&b);
    bt_buf_free(&p);
    cr_assert_eq(count_recovery_files(tdir), 2);

    /* another server (its own, new log) loads the tablet */
    ts_engine *e = engine_on(fresh);
    ts_tablet *t;
    cr_assert_eq(ts_tablet_open(e, tdir, &t), BT_OK, "%s", bt_errmsg());
    ts_tablet_stats ts;
    ts_tablet_get_stats(t, &ts);
    cr_assert_eq(ts.last_seq, ROWS_FLUSHED + ROWS_LATER, "last_seq moves past the recovered records");
    cr_assert_eq(ts.flushed_seq, ROWS_FLUSHED + ROWS_LATER, "recovered records are flushed at open");
    cr_assert_eq(ts.minor_compactions, 1, "one flush of the recovered records");
    cr_assert_eq(count_recovery_files(tdir), 0, "recovery files are deleted");
    int bogus;
    cr_assert_eq(count_rows(t, &bogus), ROWS_FLUSHED + ROWS_LATER);
    cr_assert_eq(bogus, 0, "records <= flushed_seq or of other tablets are not replayed");
    put(t, 100000);  /* new writes get sequences past the recovered ones */
    ts_tablet_get_stats(t, &ts);
    cr_assert_eq(ts.last_seq, ROWS_FLUSHED + ROWS_LATER + 1);
    cr_assert_eq(ts_tablet_close(t), BT_OK);
    cr_assert_eq(ts_engine_close(e), BT_OK);

    /* a third incarnation with an empty log: everything comes from SSTables
     * except the last write, which is in `fresh` and not replayed here */
    e = engine_on(later);
    cr_assert_eq(ts_tablet_open(e, tdir, &t), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(count_rows(t, &bogus), ROWS_FLUSHED + ROWS_LATER);
    ts_tablet_get_stats(t, &ts);
    cr_assert_eq(ts.flushed_seq, ROWS_FLUSHED + ROWS_LATER);
    cr_assert_eq(ts_tablet_close(t), BT_OK);
    cr_assert_eq(ts_engine_close(e), BT_OK);
    test_rm_rf(root);
}

Test(logsplit, failed_recovery_flush_keeps_the_files)
{
    char root[64] = "/tmp/bt-logsplit-XXXXXX", dead[128], fresh[128], tdir[128];
    cr_assert_not_null(mkdtemp(root));
    snprintf(dead, sizeof dead, "%s/log-dead", root);
    snprintf(fresh, sizeof fresh, "%s/log-fresh", root);
    snprintf(tdir, sizeof tdir, "%s/t7", root);
    make_dead_server(dead, tdir);
    cr_assert_eq(ts_log_split(bt_env_posix(), dead, "dead", only_tid, tdir, NULL), BT_OK, "%s", bt_errmsg());

    /* the flush fails (the manifest rename is refused): the open fails, the files stay */
    bt_env *fault = bt_env_fault_new(bt_env_posix());
    ts_engine_options eo = { .env = fault, .log_dir = fresh, .durability = TS_DURABILITY_SYNC };
    ts_engine *e;
    cr_assert_eq(ts_engine_open(&eo, &e), BT_OK);
    bool failed_once = false;
    for (uint64_t n = 1; n < 200; n++) {
        bt_env_fault_fail_nth(fault, n, BT_EIO);
        ts_tablet *t = NULL;
        int rc = ts_tablet_open(e, tdir, &t);
        bt_env_fault_fail_nth(fault, 0, 0);
        if (rc == BT_OK) {
            /* the injected failure came after the recovery finished (or nowhere) */
            int bogus;
            cr_assert_eq(count_rows(t, &bogus), ROWS_FLUSHED + ROWS_LATER);
            cr_assert_eq(ts_tablet_close(t), BT_OK);
            break;
        }
        failed_once = true;
        /* whatever failed, no acknowledged row is lost: the files are still
         * there, or the flush that made them redundant is durable */
        ts_manifest m;
        cr_assert_eq(ts_manifest_read(bt_env_posix(), tdir, &m), BT_OK);
        cr_assert(count_recovery_files(tdir) == 1 || m.flushed_seq == ROWS_FLUSHED + ROWS_LATER,
                  "n=%" PRIu64 ": recovery files deleted before their records were flushed", n);
        ts_manifest_free(&m);
        ts_tablet *check;
        cr_assert_eq(ts_tablet_open(e, tdir, &check), BT_OK, "n=%" PRIu64 ": %s", n, bt_errmsg());
        int bogus;
        cr_assert_eq(count_rows(check, &bogus), ROWS_FLUSHED + ROWS_LATER, "n=%" PRIu64, n);
        cr_assert_eq(count_recovery_files(tdir), 0);
        cr_assert_eq(ts_tablet_close(check), BT_OK);
        /* put the recovery files back for the next round */
        cr_assert_eq(ts_log_split(bt_env_posix(), dead, "dead", only_tid, tdir, NULL), BT_OK);
    }
    cr_assert(failed_once);
    cr_assert_eq(ts_engine_close(e), BT_OK);
    bt_env_destroy(fault);
    test_rm_rf(root);
}

/* ---- faults during the split ------------------------------------------------------------ */

Test(logsplit, faults_never_leave_a_partial_final_file)
{
    fx f;
    fx_init(&f);
    write_log(&f);
    /* the reference: a clean split */
    cr_assert_eq(ts_log_split(bt_env_posix(), f.log, "ref", dir_of, &f, NULL), BT_OK);
    uint8_t *ref[4];
    size_t ref_len[4];
    for (int t = 1; t <= 3; t++) {
        char p[256];
        recovery_path(&f, t, "ref", p, sizeof p);
        ref[t] = slurp(p, &ref_len[t]);
        cr_assert_not_null(ref[t]);
    }
    bt_env *fault = bt_env_fault_new(bt_env_posix());
    int failures = 0;
    for (uint64_t n = 1;; n++) {
        cr_assert_lt(n, 10000);
        for (int t = 1; t <= 3; t++) {
            char p[256];
            recovery_path(&f, t, "x", p, sizeof p);
            bt_env_remove(fault, p);  /* through the env, which tracks the file */
        }
        bt_env_fault_fail_nth(fault, n, BT_EIO);
        ts_log_split_stats st;
        int rc = ts_log_split(fault, f.log, "x", dir_of, &f, &st);
        bt_env_fault_fail_nth(fault, 0, 0);
        for (int t = 1; t <= 3; t++) {
            char p[256];
            size_t len;
            recovery_path(&f, t, "x", p, sizeof p);
            uint8_t *got = slurp(p, &len);
            if (rc == BT_OK) cr_assert_not_null(got, "n=%" PRIu64 ": tablet %d has no file", n, t);
            if (got) {
                cr_assert_eq(len, ref_len[t], "n=%" PRIu64 ": tablet %d's final file is partial", n, t);
                cr_assert_eq(memcmp(got, ref[t], len), 0, "n=%" PRIu64 ": tablet %d's file differs", n, t);
            }
            free(got);
        }
        if (rc == BT_OK) break;
        cr_assert_eq(rc, BT_EIO, "n=%" PRIu64 ": %s", n, bt_errname(rc));
        failures++;
    }
    cr_assert_gt(failures, 10, "every env call of the split failed once");
    bt_env_destroy(fault);
    for (int t = 1; t <= 3; t++) free(ref[t]);
    test_rm_rf(f.root);
}

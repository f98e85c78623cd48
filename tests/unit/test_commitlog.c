/* tests/unit/test_commitlog.c: the shared commit log (tabletserver/commitlog.h).
 *
 * Every record's payload is a function of (tablet, seq) (make_payload), so a
 * replayed record can be checked byte for byte without remembering it.  Files
 * are also parsed here independently of the implementation (parse_file,
 * following docs/formats.md, "Commit log"), which lets the rolling test
 * predict exactly which files deletion must remove.  Crash tests use the
 * fault env (drop everything not synced) and real SIGKILLs of a child process.
 *
 * GROUP and NONE on the POSIX env take the mapped path (records copied into a
 * shared mapping of a preallocated file); on any other env, such as the
 * fault env wrapped around the POSIX one, they keep the write path.  Tests of
 * either path pick the env accordingly.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/coding.h"
#include "common/env.h"
#include "common/log.h"
#include "common/status.h"
#include "tabletserver/commitlog.h"
#include "testutil.h"

#define MAX_PAYLOAD (1u << 17)
#define BIG_TABLET  1000u   /* tablets from here on carry payloads of ~`tablet` bytes */

/* ---- helpers: directories, payloads, replay ---------------------------------- */

static char *make_dir(void)
{
    char tmpl[] = "/tmp/bt-commitlog-XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    return strdup(tmpl);
}

static void remove_tree(char *dir)
{
    test_rm_rf(dir);
    free(dir);
}

/* Deterministic payload for (tablet, seq): 0..119 bytes, or tablet..tablet+4
 * bytes for tablets >= BIG_TABLET (records larger than a small roll_bytes). */
static size_t make_payload(uint64_t tablet, uint64_t seq, uint8_t *buf)
{
    size_t n = tablet >= BIG_TABLET ? (size_t)(tablet + seq % 5) : (size_t)((tablet * 31 + seq * 7) % 120);
    cr_assert_leq(n, MAX_PAYLOAD);
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(tablet * 13 + seq * 5 + i * 3 + 1);
    return n;
}

typedef struct rec { uint64_t tablet, seq; } rec;

typedef struct coll {
    rec *v;
    size_t n, cap;
    int bad_payloads;
} coll;

static void coll_push(coll *c, uint64_t tablet, uint64_t seq)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = realloc(c->v, c->cap * sizeof *c->v);
        cr_assert_not_null(c->v);
    }
    c->v[c->n++] = (rec){ tablet, seq };
}

static int collect(void *arg, uint64_t tablet, uint64_t seq, const uint8_t *p, size_t n)
{
    coll *c = arg;
    uint8_t want[MAX_PAYLOAD];
    size_t wn = make_payload(tablet, seq, want);
    if (wn != n || (n && memcmp(p, want, n) != 0)) c->bad_payloads++;
    coll_push(c, tablet, seq);
    return 0;
}

static ts_log *open_log_ex(bt_env *env, const char *dir, ts_durability d, uint64_t roll,
                           size_t max_record, uint32_t group_ms)
{
    ts_log_options o = { .env = env, .dir = dir, .durability = d, .group_ms = group_ms,
                         .roll_bytes = roll, .max_record = max_record };
    ts_log *l = NULL;
    int rc = ts_log_open(&o, &l);
    cr_assert_eq(rc, BT_OK, "ts_log_open: %s", bt_errmsg());
    return l;
}

static ts_log *open_log(bt_env *env, const char *dir, ts_durability d, uint64_t roll)
{
    return open_log_ex(env, dir, d, roll, 0, 2);
}

static int try_append(ts_log *l, uint64_t tablet, uint64_t seq)
{
    uint8_t buf[MAX_PAYLOAD];
    size_t n = make_payload(tablet, seq, buf);
    return ts_log_append(l, tablet, seq, seq, buf, n);
}

static void append_ok(ts_log *l, uint64_t tablet, uint64_t seq)
{
    int rc = try_append(l, tablet, seq);
    cr_assert_eq(rc, BT_OK, "append (%lu,%lu): %s", (unsigned long)tablet,
                 (unsigned long)seq, bt_errmsg());
}

static void append_range(ts_log *l, uint64_t tablet, uint64_t from, uint64_t to)
{
    for (uint64_t s = from; s <= to; s++) append_ok(l, tablet, s);
}

/* Replays the records of `tablet` (or TS_LOG_ALL_TABLETS) past `after` from
 * the open log l. */
static coll replay_log(ts_log *l, uint64_t tablet, uint64_t after)
{
    coll c = {0};
    int rc = ts_log_replay(l, tablet, after, collect, &c);
    cr_assert_eq(rc, BT_OK, "replay: %s", bt_errmsg());
    return c;
}

/* Writes records seq from..to of `tablet` to a SYNC log in dir, closed again. */
static void append_and_close(const char *dir, uint64_t tablet, uint64_t from, uint64_t to)
{
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    append_range(l, tablet, from, to);
    cr_assert_eq(ts_log_close(l), BT_OK);
}

/* Reopens dir with the POSIX env and replays; the log is closed again. */
static coll replay_dir(const char *dir, uint64_t tablet, uint64_t after)
{
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    coll c = replay_log(l, tablet, after);
    cr_assert_eq(ts_log_close(l), BT_OK);
    cr_assert_eq(c.bad_payloads, 0, "replayed payloads differ");
    return c;
}

static void expect_records(const coll *c, const rec *want, size_t n)
{
    cr_assert_eq(c->n, n, "replayed %zu records, expected %zu", c->n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert(c->v[i].tablet == want[i].tablet && c->v[i].seq == want[i].seq,
                  "record %zu: got (%lu,%lu) want (%lu,%lu)", i,
                  (unsigned long)c->v[i].tablet, (unsigned long)c->v[i].seq,
                  (unsigned long)want[i].tablet, (unsigned long)want[i].seq);
}

/* Replays dir (as replay_dir) and asserts it gives exactly want[0..n). */
static void expect_replay(const char *dir, uint64_t tablet, uint64_t after, const rec *want, size_t n)
{
    coll c = replay_dir(dir, tablet, after);
    expect_records(&c, want, n);
    free(c.v);
}

/* Sorted numbers of the *.log files in dir. */
static size_t list_logs(const char *dir, uint64_t *out, size_t cap)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".log") == 0) {
            cr_assert_lt(n, cap);
            out[n++] = strtoull(e->d_name, NULL, 10);
        }
    }
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
            uint64_t t = out[j]; out[j] = out[j - 1]; out[j - 1] = t;
        }
    return n;
}

static void log_path(const char *dir, uint64_t num, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%012lu.log", dir, (unsigned long)num);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    uint8_t *data;
    cr_assert_eq(bt_env_read_all(bt_env_posix(), path, &data, len), BT_OK);
    return data;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void clear_dir(const char *dir)
{
    uint64_t nums[256];
    size_t n = list_logs(dir, nums, 256);
    for (size_t i = 0; i < n; i++) {
        char p[512];
        log_path(dir, nums[i], p, sizeof p);
        unlink(p);
    }
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- an independent parser of the documented format ----------------------- */

typedef struct fmax { uint64_t tablet, max; } fmax;

/* Per-tablet max last_seq of the valid records of a file (up to cap tablets). */
static size_t parse_file(const char *path, fmax *out, size_t cap)
{
    size_t len, nt = 0, off = 0;
    uint8_t *d = read_file(path, &len);
    while (len - off >= 8) {
        uint32_t sum = bt_get_fixed32(d + off), body = bt_get_fixed32(d + off + 4);
        if (body > len - off - 8) break;
        if ((uint32_t)XXH3_64bits(d + off + 4, 4 + (size_t)body) != sum) break;
        const uint8_t *p = d + off + 8, *end = p + body;
        uint64_t t, s, last;
        p = bt_get_varint64(p, end, &t);
        if (p) p = bt_get_varint64(p, end, &s);
        if (p) p = bt_get_varint64(p, end, &last);
        if (!p) break;
        size_t i = 0;
        while (i < nt && out[i].tablet != t) i++;
        if (i == nt) {
            cr_assert_lt(nt, cap);
            out[nt++] = (fmax){ t, 0 };
        }
        if (last > out[i].max) out[i].max = last;
        off += 8 + body;
    }
    free(d);
    return nt;
}

/* End offset of the valid records at the start of file `num` (read through
 * the page cache, like any other process would), and how many there are. */
static uint64_t valid_bytes(const char *dir, uint64_t num, size_t *nrec)
{
    char p[512];
    size_t len, off = 0, n = 0;
    log_path(dir, num, p, sizeof p);
    uint8_t *d = read_file(p, &len);
    while (len - off >= 8) {
        uint32_t sum = bt_get_fixed32(d + off), body = bt_get_fixed32(d + off + 4);
        if (body > len - off - 8 || (uint32_t)XXH3_64bits(d + off + 4, 4 + (size_t)body) != sum) break;
        off += 8 + body;
        n++;
    }
    free(d);
    if (nrec) *nrec = n;
    return off;
}

/* ---- basic behaviour ------------------------------------------------------- */

Test(commitlog, durability_names)
{
    cr_assert_eq(ts_durability_parse("sync"), TS_DURABILITY_SYNC);
    cr_assert_eq(ts_durability_parse("group"), TS_DURABILITY_GROUP);
    cr_assert_eq(ts_durability_parse("none"), TS_DURABILITY_NONE);
    cr_assert_eq(ts_durability_parse("fsync"), -1);
    cr_assert_eq(ts_durability_parse(""), -1);
    cr_assert_str_eq(ts_durability_name(TS_DURABILITY_SYNC), "sync");
    cr_assert_str_eq(ts_durability_name(TS_DURABILITY_GROUP), "group");
    cr_assert_str_eq(ts_durability_name(TS_DURABILITY_NONE), "none");
}

Test(commitlog, round_trip_and_filters)
{
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    rec all[300];
    size_t n = 0;
    uint64_t seq[4] = {0};
    for (int i = 0; i < 300; i++) {
        uint64_t t = 1 + (uint64_t)(i * 7 % 3);
        all[n++] = (rec){ t, ++seq[t] };
        append_ok(l, t, seq[t]);
    }
    cr_assert_eq(ts_log_close(l), BT_OK);
    expect_replay(dir, TS_LOG_ALL_TABLETS, 0, all, n);

    /* One tablet, and only past after_seq. */
    rec want[300];
    size_t nw = 0;
    for (size_t i = 0; i < n; i++)
        if (all[i].tablet == 2 && all[i].seq > 40) want[nw++] = all[i];
    expect_replay(dir, 2, 40, want, nw);
    expect_replay(dir, 9, 0, NULL, 0);
    remove_tree(dir);
}

Test(commitlog, reopen_starts_new_file_and_replays_only_old_ones)
{
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    ts_log_stats st;
    ts_log_get_stats(l, &st);
    cr_assert_eq(st.active_file, 1);
    cr_assert_eq(st.live_files, 1);
    for (uint64_t s = 1; s <= 10; s++) append_ok(l, 5, s);
    cr_assert_eq(ts_log_close(l), BT_OK);

    char p1[512];
    size_t len1, len1b;
    log_path(dir, 1, p1, sizeof p1);
    free(read_file(p1, &len1));

    l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    ts_log_get_stats(l, &st);
    cr_assert_eq(st.active_file, 2);
    cr_assert_eq(st.live_files, 2);
    for (uint64_t s = 11; s <= 20; s++) append_ok(l, 5, s);
    /* Replay covers the files present at open, not the new active one. */
    coll c = replay_log(l, 5, 0);
    cr_assert_eq(c.n, 10);
    cr_assert_eq(c.v[9].seq, 10);
    free(c.v);
    cr_assert_eq(ts_log_close(l), BT_OK);
    free(read_file(p1, &len1b));
    cr_assert_eq(len1, len1b, "an old file was appended to");

    c = replay_dir(dir, 5, 0);
    cr_assert_eq(c.n, 20);
    for (size_t i = 0; i < 20; i++) cr_assert_eq(c.v[i].seq, i + 1);
    free(c.v);
    remove_tree(dir);
}

Test(commitlog, multi_seq_records_filter_by_first_seq)
{
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    uint8_t buf[MAX_PAYLOAD];
    for (uint64_t s = 1; s <= 100; s += 10) {
        size_t n = make_payload(3, s, buf);
        cr_assert_eq(ts_log_append(l, 3, s, s + 9, buf, n), BT_OK);
    }
    cr_assert_eq(ts_log_append(l, 3, 5, 4, buf, 0), BT_EINVAL);
    cr_assert_eq(ts_log_close(l), BT_OK);
    coll c = replay_dir(dir, 3, 50);
    cr_assert_eq(c.n, 5);
    cr_assert_eq(c.v[0].seq, 51);
    free(c.v);
    remove_tree(dir);
}

Test(commitlog, oversize_record)
{
    char *dir = make_dir();
    ts_log *l = open_log_ex(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0, 1000, 2);
    static uint8_t big[1001];
    bt_errclear();
    cr_assert_eq(ts_log_append(l, 1, 1, 1, big, 1001), BT_ETOOBIG);
    cr_assert_not_null(strstr(bt_errmsg(), "max_record"), "message: %s", bt_errmsg());
    cr_assert_eq(ts_log_append(l, 1, 2, 2, big, 1000), BT_OK);
    cr_assert_eq(ts_log_close(l), BT_OK);
    ts_log *r = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    /* The 1000 zero bytes do not match make_payload; count only. */
    coll c = replay_log(r, 1, 0);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(c.v[0].seq, 2);
    free(c.v);
    cr_assert_eq(ts_log_close(r), BT_OK);
    remove_tree(dir);
}

static int stop_at_three(void *arg, uint64_t t, uint64_t s, const uint8_t *p, size_t n)
{
    (void)t; (void)p; (void)n;
    *(int *)arg += 1;
    return s == 3 ? 77 : 0;
}

Test(commitlog, replay_callback_aborts)
{
    char *dir = make_dir();
    append_and_close(dir, 1, 1, 5);
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    int calls = 0;
    cr_assert_eq(ts_log_replay(l, TS_LOG_ALL_TABLETS, 0, stop_at_three, &calls), 77);
    cr_assert_eq(calls, 3);
    cr_assert_eq(ts_log_close(l), BT_OK);
    remove_tree(dir);
}

/* ---- durability modes -------------------------------------------------------- */

static uint64_t file_size(const char *dir, uint64_t num)
{
    char p[512];
    uint64_t size = 0;
    log_path(dir, num, p, sizeof p);
    cr_assert_eq(bt_env_file_size(bt_env_posix(), p, &size), BT_OK);
    return size;
}

static void check_mode_round_trip(ts_durability d)
{
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, d, 0);
    rec want[500];
    for (uint64_t s = 1; s <= 500; s++) {
        want[s - 1] = (rec){ s % 4, s };
        append_ok(l, s % 4, s);
    }
    cr_assert_eq(ts_log_close(l), BT_OK);
    expect_replay(dir, TS_LOG_ALL_TABLETS, 0, want, 500);
    remove_tree(dir);
}

Test(commitlog, mode_sync_is_written_and_synced_on_return)
{
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    ts_log_stats st;
    for (uint64_t s = 1; s <= 20; s++) {
        append_ok(l, 1, s);
        ts_log_get_stats(l, &st);
        cr_assert_eq(file_size(dir, 1), st.bytes);
        cr_assert_eq(st.syncs, s, "one fdatasync per lone SYNC append");
    }
    cr_assert_eq(st.appends, 20);
    cr_assert_eq(st.groups, 20);
    cr_assert_eq(ts_log_close(l), BT_OK);
    check_mode_round_trip(TS_DURABILITY_SYNC);
    remove_tree(dir);
}

/* GROUP: on return each record is in the file for any reader (the write
 * path wrote it; the mapped path copied it into the file's page cache); the
 * background thread syncs every group_ms, never per append. */
static void check_group_mode(bt_env *env)
{
    bool mapped = env == bt_env_posix();
    char *dir = make_dir();
    ts_log *l = open_log_ex(env, dir, TS_DURABILITY_GROUP, 1 << 20, 0, 50);
    ts_log_stats st;
    for (uint64_t s = 1; s <= 20; s++) {
        append_ok(l, 1, s);
        ts_log_get_stats(l, &st);
        cr_assert_eq(valid_bytes(dir, 1, NULL), st.bytes, "GROUP append returned before the record was in the file");
        if (!mapped) cr_assert_eq(file_size(dir, 1), st.bytes);
    }
    if (mapped) cr_assert_eq(file_size(dir, 1), 1 << 20, "the mapped file is preallocated to roll_bytes");
    cr_assert_eq(st.groups, mapped ? 0 : 20, "the mapped path has no leader batches");
    /* The background thread fsyncs within a few periods. */
    for (int i = 0; i < 200 && st.syncs == 0; i++) {
        sleep_ms(5);
        ts_log_get_stats(l, &st);
    }
    cr_assert_gt(st.syncs, 0);
    cr_assert_lt(st.syncs, 20, "GROUP mode must not sync per append");
    cr_assert_eq(ts_log_sync(l), BT_OK);
    cr_assert_eq(ts_log_close(l), BT_OK);
    cr_assert_eq(file_size(dir, 1), st.bytes, "close leaves the file at exactly its records");
    check_mode_round_trip(TS_DURABILITY_GROUP);
    remove_tree(dir);
}

Test(commitlog, mode_group_mapped_copies_on_return_and_syncs_in_background)
{
    check_group_mode(bt_env_posix());
}

Test(commitlog, mode_group_write_path_writes_on_return_and_syncs_in_background)
{
    bt_env *fe = bt_env_fault_new(bt_env_posix());
    check_group_mode(fe);
    bt_env_destroy(fe);
}

Test(commitlog, mode_none_mapped_copies_on_return_and_syncs_only_at_close)
{
    char *dir = make_dir();
    ts_log *l = open_log_ex(bt_env_posix(), dir, TS_DURABILITY_NONE, 1 << 20, 0, 2);
    ts_log_stats st;
    for (uint64_t s = 1; s <= 20; s++) {
        append_ok(l, 1, s);
        ts_log_get_stats(l, &st);
        cr_assert_eq(valid_bytes(dir, 1, NULL), st.bytes, "NONE append returned before the record was in the file");
    }
    sleep_ms(40);   /* twenty periods */
    ts_log_get_stats(l, &st);
    cr_assert_eq(st.syncs, 0, "mapped NONE mode must not sync periodically");
    cr_assert_eq(ts_log_close(l), BT_OK);
    cr_assert_eq(file_size(dir, 1), st.bytes);
    check_mode_round_trip(TS_DURABILITY_NONE);
    remove_tree(dir);
}

/* The write path's NONE mode (any env but the POSIX one): records wait in the
 * process's buffer until it holds 1 MiB or the period ends. */
Test(commitlog, mode_none_write_path_buffers_until_period_or_one_mib)
{
    char *dir = make_dir();
    bt_env *fe = bt_env_fault_new(bt_env_posix());
    /* A long period: nothing reaches the file until the buffer passes 1 MiB. */
    ts_log *l = open_log_ex(fe, dir, TS_DURABILITY_NONE, 0, 0, 60000);
    append_ok(l, 1, 1);
    cr_assert_eq(file_size(dir, 1), 0, "NONE mode wrote a small record at once");
    static uint8_t big[100000];
    for (uint64_t s = 2; s <= 11; s++)  /* ten records: just under 1 MiB */
        cr_assert_eq(ts_log_append(l, 1, s, s, big, sizeof big), BT_OK);
    cr_assert_eq(file_size(dir, 1), 0);
    cr_assert_eq(ts_log_append(l, 1, 12, 12, big, sizeof big), BT_OK);
    cr_assert_gt(file_size(dir, 1), 1000000, "passing 1 MiB did not write");
    ts_log_stats st;
    ts_log_get_stats(l, &st);
    cr_assert_eq(st.syncs, 1);
    cr_assert_eq(ts_log_close(l), BT_OK);

    /* A short period: the background thread writes and syncs. */
    char *dir2 = make_dir();
    l = open_log_ex(fe, dir2, TS_DURABILITY_NONE, 0, 0, 5);
    append_ok(l, 1, 1);
    for (int i = 0; i < 400 && file_size(dir2, 1) == 0; i++) sleep_ms(5);
    cr_assert_gt(file_size(dir2, 1), 0, "the background flush never ran");
    /* the write shows in the file a moment before the sync is counted */
    ts_log_get_stats(l, &st);
    for (int i = 0; i < 400 && st.syncs < 1; i++) {
        sleep_ms(5);
        ts_log_get_stats(l, &st);
    }
    cr_assert_geq(st.syncs, 1);
    cr_assert_eq(ts_log_close(l), BT_OK);
    bt_env_destroy(fe);
    remove_tree(dir2);
    remove_tree(dir);
}

/* Mapped GROUP/NONE with a tiny roll_bytes, every 50th record larger than it:
 * files roll when a record does not fit, an oversized record gets a file of
 * its own, every file is cut back to its records, and a reopen in the same
 * mode replays everything. */
static void check_mapped_rolls(ts_durability d)
{
    enum { ROLL = 1000, N = 400 };
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, d, ROLL);
    rec want[N];
    for (uint64_t s = 1; s <= N; s++) {
        uint64_t t = s % 50 == 0 ? BIG_TABLET + 500 : 1 + s % 3;
        want[s - 1] = (rec){ t, s };
        append_ok(l, t, s);
    }
    ts_log_stats st;
    ts_log_get_stats(l, &st);
    cr_assert_gt(st.active_file, 20, "roll_bytes=%d should have rolled often", ROLL);
    cr_assert_eq(st.appends, N);
    if (d == TS_DURABILITY_NONE)
        cr_assert_eq(st.syncs, st.active_file - 1, "NONE syncs each file once, when it rolls");
    cr_assert_eq(ts_log_close(l), BT_OK);

    uint64_t nums[256], total = 0;
    size_t nf = list_logs(dir, nums, 256), big_files = 0;
    cr_assert_eq(nf, st.active_file);
    for (size_t i = 0; i < nf; i++) {
        size_t nrec;
        uint64_t size = file_size(dir, nums[i]);
        cr_assert_eq(valid_bytes(dir, nums[i], &nrec), size, "file %zu is not cut back to its records", i);
        cr_assert_gt(nrec, 0);
        if (size > ROLL) {
            cr_assert_eq(nrec, 1, "only a lone oversized record may exceed roll_bytes");
            big_files++;
        }
        total += size;
    }
    cr_assert_eq(big_files, N / 50);
    cr_assert_eq(total, st.bytes);

    l = open_log(bt_env_posix(), dir, d, ROLL);
    coll c = replay_log(l, TS_LOG_ALL_TABLETS, 0);
    cr_assert_eq(c.bad_payloads, 0);
    expect_records(&c, want, N);
    free(c.v);
    cr_assert_eq(ts_log_close(l), BT_OK);
    remove_tree(dir);
}

Test(commitlog, mapped_group_rolls_truncates_and_replays, .timeout = 60)
{
    check_mapped_rolls(TS_DURABILITY_GROUP);
}

Test(commitlog, mapped_none_rolls_truncates_and_replays, .timeout = 60)
{
    check_mapped_rolls(TS_DURABILITY_NONE);
}

/* posix_fallocate failing (a full disk; provoked here with RLIMIT_FSIZE, as
 * ENOSPC needs a full filesystem) fails only the append that needed the new
 * file; the active file takes smaller records meanwhile, the same append
 * succeeds once the file can be made, and no half-made file stays behind. */
Test(commitlog, mapped_file_creation_failure_fails_that_append_and_is_retried)
{
    bt_log_set_level(BT_LOG_OFF);
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_GROUP, 16384);
    rec want[40];
    size_t nw = 0;
    for (uint64_t s = 1; s <= 10; s++, nw++) {
        want[nw] = (rec){ 1, s };
        append_ok(l, 1, s);
    }
    struct rlimit saved, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    lim = saved;
    lim.rlim_cur = 65536;
    signal(SIGXFSZ, SIG_IGN);   /* fail with EFBIG instead of being killed */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    bt_errclear();
    cr_assert_neq(try_append(l, BIG_TABLET + 99000, 11), BT_OK);
    cr_assert_not_null(strstr(bt_errmsg(), "posix_fallocate"), "message: %s", bt_errmsg());
    for (uint64_t s = 12; s <= 20; s++, nw++) {
        want[nw] = (rec){ 1, s };
        append_ok(l, 1, s);
    }
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
    want[nw++] = (rec){ BIG_TABLET + 99000, 21 };
    append_ok(l, BIG_TABLET + 99000, 21);
    want[nw++] = (rec){ 1, 22 };
    append_ok(l, 1, 22);
    ts_log_stats st;
    ts_log_get_stats(l, &st);
    uint64_t nums[16];
    cr_assert_eq(list_logs(dir, nums, 16), st.live_files);
    cr_assert_eq(st.live_files, 3, "the failed file stays unmade: 1, the big record's, the next");
    cr_assert_eq(ts_log_close(l), BT_OK);
    size_t nrec;
    valid_bytes(dir, 2, &nrec);
    cr_assert_eq(nrec, 1);
    expect_replay(dir, TS_LOG_ALL_TABLETS, 0, want, nw);
    remove_tree(dir);
}

/* ---- concurrency --------------------------------------------------------------- */

#define CC_THREADS 8
#define CC_PER 2000

typedef struct writer_arg {
    ts_log *l;
    uint64_t tablet;
    int per;
    atomic_uint_fast64_t *progress;  /* last acknowledged seq */
    int failures;
} writer_arg;

static void *writer_main(void *p)
{
    writer_arg *a = p;
    for (int s = 1; s <= a->per; s++) {
        if (try_append(a->l, a->tablet, (uint64_t)s) != BT_OK) a->failures++;
        if (a->progress) atomic_store(a->progress, (uint64_t)s);
    }
    return NULL;
}

/* Each tablet's records appear exactly once each, in order, past `after`. */
static void expect_per_tablet(const coll *c, int ntab, const uint64_t *after, uint64_t last)
{
    uint64_t next[64];
    for (int t = 0; t < ntab; t++) next[t] = after[t] + 1;
    for (size_t i = 0; i < c->n; i++) {
        uint64_t t = c->v[i].tablet - 1;
        cr_assert_lt(t, (uint64_t)ntab);
        cr_assert_eq(c->v[i].seq, next[t], "tablet %lu: got seq %lu want %lu",
                     (unsigned long)t + 1, (unsigned long)c->v[i].seq, (unsigned long)next[t]);
        next[t]++;
    }
    for (int t = 0; t < ntab; t++) cr_assert_eq(next[t], last + 1, "tablet %d incomplete", t + 1);
}

Test(commitlog, concurrent_sync_appenders_group_commit, .timeout = 60)
{
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    pthread_t th[CC_THREADS];
    writer_arg args[CC_THREADS];
    for (int i = 0; i < CC_THREADS; i++) {
        args[i] = (writer_arg){ .l = l, .tablet = (uint64_t)i + 1, .per = CC_PER };
        pthread_create(&th[i], NULL, writer_main, &args[i]);
    }
    for (int i = 0; i < CC_THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].failures, 0);
    }
    ts_log_stats st;
    ts_log_get_stats(l, &st);
    cr_assert_eq(st.appends, CC_THREADS * CC_PER);
    cr_log_info("group commit: %lu appends, %lu syncs", (unsigned long)st.appends,
                (unsigned long)st.syncs);
    cr_assert_lt(st.syncs * 3, st.appends, "group commit did not batch: %lu syncs for %lu appends",
                 (unsigned long)st.syncs, (unsigned long)st.appends);
    cr_assert_eq(st.groups, st.syncs);
    cr_assert_eq(ts_log_close(l), BT_OK);

    coll c = replay_dir(dir, TS_LOG_ALL_TABLETS, 0);
    uint64_t after[CC_THREADS] = {0};
    expect_per_tablet(&c, CC_THREADS, after, CC_PER);
    free(c.v);
    remove_tree(dir);
}

typedef struct flusher_arg {
    ts_log *l;
    atomic_uint_fast64_t *progress;
    uint64_t *flushed;       /* what was last reported per tablet */
    int ntab;
    atomic_bool stop;
} flusher_arg;

/* Reports flushes trailing the writers, racing with appends and rolls. */
static void *flusher_main(void *p)
{
    flusher_arg *a = p;
    while (!atomic_load(&a->stop)) {
        for (int t = 0; t < a->ntab; t++) {
            uint64_t s = atomic_load(&a->progress[t]);
            if (s > 50 && s - 50 > a->flushed[t]) {
                a->flushed[t] = s - 50;
                ts_log_tablet_flushed(a->l, (uint64_t)t + 1, a->flushed[t]);
            }
        }
        ts_log_stats st;
        ts_log_get_stats(a->l, &st);
        sleep_ms(1);
    }
    return NULL;
}

static void check_concurrent_with_gc(ts_durability d)
{
    enum { NT = 4, PER = 1500 };
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, d, 8192);
    atomic_uint_fast64_t progress[NT];
    uint64_t flushed[NT] = {0};
    pthread_t th[NT], fl;
    writer_arg args[NT];
    flusher_arg fa = { .l = l, .progress = progress, .flushed = flushed, .ntab = NT };
    atomic_init(&fa.stop, false);
    for (int i = 0; i < NT; i++) atomic_init(&progress[i], 0);
    pthread_create(&fl, NULL, flusher_main, &fa);
    for (int i = 0; i < NT; i++) {
        args[i] = (writer_arg){ .l = l, .tablet = (uint64_t)i + 1, .per = PER, .progress = &progress[i] };
        pthread_create(&th[i], NULL, writer_main, &args[i]);
    }
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    atomic_store(&fa.stop, true);
    pthread_join(fl, NULL);
    for (int i = 0; i < NT; i++) cr_assert_eq(args[i].failures, 0);
    cr_assert_eq(ts_log_sync(l), BT_OK);
    ts_log_stats st;
    ts_log_get_stats(l, &st);
    uint64_t nums[256];
    cr_assert_eq(st.live_files, list_logs(dir, nums, 256));
    cr_assert_eq(ts_log_close(l), BT_OK);

    /* Deleted files held only flushed records: the rest replays exactly. */
    ts_log *r = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    coll c = {0};
    for (int t = 0; t < NT; t++)
        cr_assert_eq(ts_log_replay(r, (uint64_t)t + 1, flushed[t], collect, &c), BT_OK);
    cr_assert_eq(ts_log_close(r), BT_OK);
    cr_assert_eq(c.bad_payloads, 0);
    expect_per_tablet(&c, NT, flushed, PER);
    free(c.v);
    remove_tree(dir);
}

Test(commitlog, concurrent_group_mode_with_rolls_and_deletes, .timeout = 60)
{
    check_concurrent_with_gc(TS_DURABILITY_GROUP);
}

Test(commitlog, concurrent_none_mode_with_rolls_and_deletes, .timeout = 60)
{
    check_concurrent_with_gc(TS_DURABILITY_NONE);
}

/* ---- rolling and deletion ------------------------------------------------------- */

typedef struct gc_model {
    uint64_t flushed[8];    /* per tablet 1..7; 0 = never reported */
    bool forgotten[8];
} gc_model;

/* Is a non-active file deletable under the model? */
static bool model_deletable(const char *dir, uint64_t num, const gc_model *m)
{
    char p[512];
    fmax tabs[8];
    log_path(dir, num, p, sizeof p);
    size_t nt = parse_file(p, tabs, 8);
    for (size_t i = 0; i < nt; i++) {
        uint64_t t = tabs[i].tablet;
        if (m->forgotten[t]) continue;
        if (m->flushed[t] == 0 || m->flushed[t] < tabs[i].max) return false;
    }
    return true;
}

/* Applies a flush (tablet > 0) or a forget (tablet < 0) and checks that
 * exactly the predicted files went away.  Returns how many were deleted. */
static size_t gc_step(ts_log *l, const char *dir, gc_model *m, int tablet, uint64_t seq)
{
    uint64_t before[256], after[256], expect[256];
    size_t nb = list_logs(dir, before, 256), ne = 0;
    if (tablet > 0) {
        if (seq > m->flushed[tablet]) m->flushed[tablet] = seq;
    } else {
        m->forgotten[-tablet] = true;
    }
    for (size_t i = 0; i < nb; i++)
        if (i + 1 == nb || !model_deletable(dir, before[i], m)) expect[ne++] = before[i];
    if (tablet > 0) ts_log_tablet_flushed(l, (uint64_t)tablet, seq);
    else ts_log_forget_tablet(l, (uint64_t)-tablet);
    size_t na = list_logs(dir, after, 256);
    cr_assert_eq(na, ne, "after gc step (%d,%lu): %zu files, expected %zu", tablet,
                 (unsigned long)seq, na, ne);
    for (size_t i = 0; i < na; i++) cr_assert_eq(after[i], expect[i]);
    ts_log_stats st;
    ts_log_get_stats(l, &st);
    cr_assert_eq(st.live_files, na);
    cr_assert_eq(st.active_file, before[nb - 1], "the active file changed or went away");
    return nb - na;
}

Test(commitlog, rolling_and_deletion)
{
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 1024);
    append_range(l, 1, 1, 40);
    for (uint64_t s = 1; s <= 20; s++) {
        append_ok(l, 1, 40 + s);
        append_ok(l, 2, s);
    }
    ts_log_stats st;
    ts_log_get_stats(l, &st);
    cr_assert_geq(st.live_files, 6, "roll_bytes=1024 should have rolled often");
    cr_assert_eq(ts_log_close(l), BT_OK);

    /* Reopen so part of the history is indexed by scanning. */
    l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 1024);
    append_range(l, 1, 61, 100);
    append_range(l, 3, 1, 5);
    uint64_t nums[256];
    size_t nfiles = list_logs(dir, nums, 256), full = 0;
    cr_assert_geq(nfiles, 10);
    for (size_t i = 0; i < nfiles; i++) {
        char p[512];
        uint64_t size;
        log_path(dir, nums[i], p, sizeof p);
        cr_assert_eq(bt_env_file_size(bt_env_posix(), p, &size), BT_OK);
        full += size >= 1024;
    }
    /* Only each session's last file may be short. */
    cr_assert_geq(full, nfiles - 2);

    gc_model m = {0};
    cr_assert_eq(gc_step(l, dir, &m, 2, 5), 0, "tablet 1 has flushed nothing yet");
    cr_assert_gt(gc_step(l, dir, &m, 1, 20), 0);
    size_t kept_for_2 = list_logs(dir, nums, 256);
    gc_step(l, dir, &m, 1, 100);
    cr_assert_lt(list_logs(dir, nums, 256), kept_for_2);
    cr_assert_gt(list_logs(dir, nums, 256), 2, "files holding tablet 2 must stay");
    gc_step(l, dir, &m, 2, 12);
    gc_step(l, dir, &m, 3, 5);
    gc_step(l, dir, &m, -2, 0);
    cr_assert_eq(list_logs(dir, nums, 256), 1, "only the active file should remain");
    /* Flushing everything never deletes the active file. */
    gc_step(l, dir, &m, 1, UINT64_MAX);
    cr_assert_eq(ts_log_close(l), BT_OK);
    remove_tree(dir);
}

Test(commitlog, forget_tablet_releases_files)
{
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 512);
    for (uint64_t s = 1; s <= 30; s++) {
        append_ok(l, 1, s);
        append_ok(l, 2, s);
    }
    gc_model m = {0};
    cr_assert_eq(gc_step(l, dir, &m, 1, 30), 0, "tablet 2 still needs every file");
    cr_assert_gt(gc_step(l, dir, &m, -2, 0), 0);
    uint64_t nums[256];
    cr_assert_eq(list_logs(dir, nums, 256), 1);
    cr_assert_eq(ts_log_close(l), BT_OK);

    /* Forgetting also applies to files indexed at open. */
    l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 512);
    append_ok(l, 4, 1);
    cr_assert_eq(list_logs(dir, nums, 256), 2);
    /* The rescanned old file lists both tablets again; it goes when both do. */
    ts_log_forget_tablet(l, 1);
    cr_assert_eq(list_logs(dir, nums, 256), 2);
    ts_log_forget_tablet(l, 2);
    cr_assert_eq(list_logs(dir, nums, 256), 1);
    cr_assert_gt(nums[0], 1);
    cr_assert_eq(ts_log_close(l), BT_OK);
    remove_tree(dir);
}

/* ---- torn and corrupt tails ------------------------------------------------------ */

#define TAIL_N 40

/* Writes TAIL_N records into one file; ends[i] is where record i ends. */
static uint8_t *write_reference(const char *dir, size_t *len, uint64_t *ends, rec *recs)
{
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    for (int i = 0; i < TAIL_N; i++) {
        recs[i] = (rec){ 1 + (uint64_t)i % 3, 1000 + (uint64_t)i * 3 };
        append_ok(l, recs[i].tablet, recs[i].seq);
        ts_log_stats st;
        ts_log_get_stats(l, &st);
        ends[i] = st.bytes;
    }
    cr_assert_eq(ts_log_close(l), BT_OK);
    char p[512];
    log_path(dir, 1, p, sizeof p);
    uint8_t *data = read_file(p, len);
    cr_assert_eq(*len, ends[TAIL_N - 1]);
    return data;
}

/* Puts `data` in dir (emptied first) as the only log file and asserts that
 * replaying it gives exactly want[0..n). */
static void expect_image_replay(const char *dir, const uint8_t *data, size_t len, const rec *want, size_t n)
{
    char p[512];
    clear_dir(dir);
    log_path(dir, 1, p, sizeof p);
    write_file(p, data, len);
    expect_replay(dir, TS_LOG_ALL_TABLETS, 0, want, n);
}

Test(commitlog, torn_tail_yields_whole_records_before_the_cut, .timeout = 60)
{
    bt_log_set_level(BT_LOG_ERROR); /* every trial warns about its tail */
    char *dir = make_dir(), *trial = make_dir();
    uint64_t ends[TAIL_N];
    rec recs[TAIL_N];
    size_t len;
    uint8_t *data = write_reference(dir, &len, ends, recs);
    size_t tail_from = (size_t)ends[TAIL_N - 5];
    int trials = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        if (cut < tail_from && cut % 7 != 0) continue;
        size_t whole = 0;
        while (whole < TAIL_N && ends[whole] <= cut) whole++;
        expect_image_replay(trial, data, cut, recs, whole);
        trials++;
    }
    cr_assert_gt(trials, 200);
    free(data);
    remove_tree(trial);
    remove_tree(dir);
}

/* Records intact in `img` (byte-identical to the original), as a prefix. */
static size_t intact_prefix(const uint8_t *orig, const uint8_t *img, const uint64_t *ends)
{
    size_t i = 0, start = 0;
    while (i < TAIL_N && memcmp(orig + start, img + start, ends[i] - start) == 0) {
        start = (size_t)ends[i];
        i++;
    }
    return i;
}

Test(commitlog, garbage_tail_stops_before_the_damaged_record, .timeout = 60)
{
    bt_log_set_level(BT_LOG_ERROR);
    char *dir = make_dir(), *trial = make_dir();
    uint64_t ends[TAIL_N];
    rec recs[TAIL_N];
    size_t len;
    uint8_t *data = write_reference(dir, &len, ends, recs);
    uint8_t *img = malloc(len + 64);
    unsigned seed = 12345;
    size_t tail_from = (size_t)ends[TAIL_N - 3];
    int trials = 0;
    for (size_t off = 0; off < len; off++) {
        if (off < tail_from && off % 13 != 0) continue;
        for (int zero = 0; zero <= 1; zero++) {
            memcpy(img, data, len);
            for (size_t i = off; i < len; i++) img[i] = zero ? 0 : (uint8_t)rand_r(&seed);
            if (!zero && img[off] == data[off]) img[off] ^= 0x5a;
            size_t want = intact_prefix(data, img, ends);
            expect_image_replay(trial, img, len, recs, want);
            trials++;
        }
    }
    /* Junk appended after the last record is ignored. */
    for (size_t extra = 1; extra <= 40; extra += 3) {
        memcpy(img, data, len);
        for (size_t i = 0; i < extra; i++) img[len + i] = (uint8_t)rand_r(&seed);
        expect_image_replay(trial, img, len + extra, recs, TAIL_N);
    }
    cr_assert_gt(trials, 300);
    free(img);
    free(data);
    remove_tree(trial);
    remove_tree(dir);
}

Test(commitlog, damage_in_one_file_does_not_hide_later_files)
{
    bt_log_set_level(BT_LOG_ERROR);
    char *dir = make_dir();
    append_and_close(dir, 1, 1, 10);
    append_and_close(dir, 1, 11, 20);
    /* Tear file 1 in its middle: replay stops there and goes on with file 2. */
    char p[512];
    size_t len;
    log_path(dir, 1, p, sizeof p);
    uint8_t *d = read_file(p, &len);
    cr_assert_eq(truncate(p, (off_t)(len / 2)), 0);
    free(d);
    coll c = replay_dir(dir, 1, 0);
    cr_assert_gt(c.n, 10);
    cr_assert_lt(c.n, 20);
    for (size_t i = 1; i < c.n; i++) cr_assert_gt(c.v[i].seq, c.v[i - 1].seq);
    cr_assert_eq(c.v[c.n - 1].seq, 20);
    free(c.v);
    remove_tree(dir);
}

/* Runs fn with stderr redirected to a file and returns what was written. */
static char *capture_stderr(void (*fn)(const char *), const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/stderr.txt", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644), saved = dup(2);
    cr_assert_geq(fd, 0);
    dup2(fd, 2);
    fn(dir);
    dup2(saved, 2);
    close(saved);
    close(fd);
    size_t len;
    uint8_t *data = read_file(path, &len);
    char *text = malloc(len + 1);
    memcpy(text, data, len);
    text[len] = '\0';
    free(data);
    unlink(path);
    return text;
}

static void reopen_quietly(const char *dir)
{
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    ts_log_close(l);
}

Test(commitlog, torn_tail_warning_names_file_offset_and_reason)
{
    bt_log_set_level(BT_LOG_WARN);
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
    append_range(l, 1, 1, 3);
    ts_log_stats st;
    ts_log_get_stats(l, &st);
    cr_assert_eq(ts_log_close(l), BT_OK);
    char p[512];
    log_path(dir, 1, p, sizeof p);
    cr_assert_eq(truncate(p, (off_t)st.bytes - 1), 0);
    char *text = capture_stderr(reopen_quietly, dir);
    cr_assert_not_null(strstr(text, "000000000001.log"), "log: %s", text);
    cr_assert_not_null(strstr(text, "past end of file"), "log: %s", text);
    char off[64];
    size_t len;
    /* Replay stopped at the start of the third record. */
    uint8_t *d = read_file(p, &len);
    size_t third = 8 + bt_get_fixed32(d + 4);
    third += 8 + bt_get_fixed32(d + third + 4);
    free(d);
    snprintf(off, sizeof off, "offset %zu", third);
    cr_assert_not_null(strstr(text, off), "want \"%s\" in: %s", off, text);
    free(text);
    remove_tree(dir);
}

/* A file whose preallocated end was never cut back (the process died before
 * ftruncate) ends in zeros: that is a clean end, read without a warning.
 * Garbage after the zeros is still damage, and is reported. */
Test(commitlog, zero_filled_tail_is_a_clean_end)
{
    bt_log_set_level(BT_LOG_WARN);
    /* Why zeros can never read as a record (docs/formats.md): the checksum of
     * a zero length field is not zero, and an empty body has no varints. */
    static const uint8_t zero_len[4];
    cr_assert_neq((uint32_t)XXH3_64bits(zero_len, 4), 0u);
    char *dir = make_dir();
    ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_GROUP, 0);
    rec want[50];
    for (uint64_t s = 1; s <= 50; s++) {
        want[s - 1] = (rec){ 1 + s % 2, s };
        append_ok(l, 1 + s % 2, s);
    }
    cr_assert_eq(ts_log_close(l), BT_OK);
    char p[512];
    log_path(dir, 1, p, sizeof p);
    uint64_t len = file_size(dir, 1);
    cr_assert_eq(truncate(p, (off_t)len + 3 * 4096 + 123), 0);
    char *text = capture_stderr(reopen_quietly, dir);
    cr_assert_null(strstr(text, "commit log"), "a zero tail was reported: %s", text);
    free(text);
    expect_replay(dir, TS_LOG_ALL_TABLETS, 0, want, 50);

    int fd = open(p, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "\x5a", 1), 1);
    close(fd);
    text = capture_stderr(reopen_quietly, dir);
    cr_assert_not_null(strstr(text, "000000000001.log"), "garbage after zeros went unreported: %s", text);
    free(text);
    bt_log_set_level(BT_LOG_ERROR);
    expect_replay(dir, TS_LOG_ALL_TABLETS, 0, want, 50);
    remove_tree(dir);
}

Test(commitlog, open_rejects_bad_options)
{
    ts_log *l = (ts_log *)1;
    ts_log_options o = { .env = NULL, .dir = "/tmp/x" };
    cr_assert_eq(ts_log_open(&o, &l), BT_EINVAL);
    cr_assert_null(l);
    o = (ts_log_options){ .env = bt_env_posix(), .dir = NULL };
    cr_assert_eq(ts_log_open(&o, &l), BT_EINVAL);
    o = (ts_log_options){ .env = bt_env_posix(), .dir = "/tmp/x", .durability = (ts_durability)7 };
    cr_assert_eq(ts_log_open(&o, &l), BT_EINVAL);
}

/* ---- the fault env ------------------------------------------------------------------ */

/* Replays everything and checks it is acked[0..nacked) optionally followed
 * by a prefix of maybe[] (records whose durability was not promised). */
static void expect_acked(const char *dir, const rec *acked, size_t nacked,
                         const rec *maybe, size_t nmaybe)
{
    coll c = replay_dir(dir, TS_LOG_ALL_TABLETS, 0);
    cr_assert_geq(c.n, nacked, "lost acknowledged records: %zu of %zu replayed", c.n, nacked);
    cr_assert_leq(c.n, nacked + nmaybe);
    for (size_t i = 0; i < c.n; i++) {
        const rec *w = i < nacked ? &acked[i] : &maybe[i - nacked];
        cr_assert(c.v[i].tablet == w->tablet && c.v[i].seq == w->seq,
                  "record %zu: got (%lu,%lu) want (%lu,%lu)", i, (unsigned long)c.v[i].tablet,
                  (unsigned long)c.v[i].seq, (unsigned long)w->tablet, (unsigned long)w->seq);
    }
    free(c.v);
}

/* A log in a fresh directory on a fault env. */
typedef struct fault_log {
    char *dir;
    bt_env *fe;
    ts_log *l;
} fault_log;

static void fault_log_open(fault_log *x, ts_durability d, uint64_t roll)
{
    x->dir = make_dir();
    x->fe = bt_env_fault_new(bt_env_posix());
    x->l = open_log(x->fe, x->dir, d, roll);
}

/* Power loss: what the fault env holds unsynced is gone, and the log is
 * closed (its files are dead now: errors expected). */
static void fault_log_crash(fault_log *x)
{
    cr_assert_eq(bt_env_fault_drop_unsynced(x->fe), BT_OK);
    ts_log_close(x->l);
    x->l = NULL;
}

static void fault_log_finish(fault_log *x)
{
    bt_env_destroy(x->fe);
    remove_tree(x->dir);
}

static void crash_test(ts_durability d)
{
    bt_log_set_level(BT_LOG_ERROR);
    fault_log x;
    fault_log_open(&x, d, 2048);
    rec acked[300], maybe[100];
    for (int i = 0; i < 300; i++) {
        acked[i] = (rec){ 1 + (uint64_t)i % 3, (uint64_t)i + 1 };
        append_ok(x.l, acked[i].tablet, acked[i].seq);
    }
    if (d != TS_DURABILITY_SYNC) cr_assert_eq(ts_log_sync(x.l), BT_OK);
    for (int i = 0; i < 100; i++) {
        maybe[i] = (rec){ 1 + (uint64_t)i % 3, 301 + (uint64_t)i };
        if (d == TS_DURABILITY_SYNC) continue;  /* SYNC acks are durable: nothing is "maybe" */
        append_ok(x.l, maybe[i].tablet, maybe[i].seq);
    }
    fault_log_crash(&x);
    expect_acked(x.dir, acked, 300, maybe, d == TS_DURABILITY_SYNC ? 0 : 100);
    fault_log_finish(&x);
}

Test(commitlog, crash_keeps_every_acked_record_sync)
{
    crash_test(TS_DURABILITY_SYNC);
}

Test(commitlog, crash_keeps_records_synced_by_ts_log_sync_group)
{
    crash_test(TS_DURABILITY_GROUP);
}

Test(commitlog, crash_keeps_records_synced_by_ts_log_sync_none)
{
    crash_test(TS_DURABILITY_NONE);
}

static void enospc_test(ts_durability d)
{
    bt_log_set_level(BT_LOG_OFF);
    fault_log x;
    fault_log_open(&x, d, 0);
    rec acked[200];
    size_t na = 0;
    uint64_t seq = 0;
    for (int i = 0; i < 50; i++) {
        acked[na] = (rec){ 1, ++seq };
        append_ok(x.l, 1, seq);
        na++;
    }
    /* A budget that runs out part way: appends succeed, then fail cleanly. */
    bt_env_fault_set_space(x.fe, 1500);
    int rc = BT_OK, failed = 0;
    while (failed < 3) {
        rc = try_append(x.l, 1, ++seq);
        if (rc == BT_OK) acked[na++] = (rec){ 1, seq };
        else {
            cr_assert_eq(rc, BT_ENOSPC, "got %s: %s", bt_errname(rc), bt_errmsg());
            failed++;
        }
        cr_assert_lt(seq, 1000);
    }
    cr_assert_gt(na, 50, "the budget should have admitted some records");
    bt_env_fault_set_space(x.fe, UINT64_MAX);
    for (int i = 0; i < 20; i++) {
        acked[na] = (rec){ 1, ++seq };
        append_ok(x.l, 1, seq);
        na++;
    }
    cr_assert_eq(ts_log_sync(x.l), BT_OK);
    fault_log_crash(&x);
    expect_acked(x.dir, acked, na, NULL, 0);
    fault_log_finish(&x);
}

Test(commitlog, enospc_fails_the_append_and_recovers_sync)
{
    enospc_test(TS_DURABILITY_SYNC);
}

Test(commitlog, enospc_fails_the_append_and_recovers_group)
{
    enospc_test(TS_DURABILITY_GROUP);
}

Test(commitlog, failed_sync_is_not_acknowledged)
{
    bt_log_set_level(BT_LOG_OFF);
    fault_log x;
    fault_log_open(&x, TS_DURABILITY_SYNC, 0);
    rec acked[20];
    size_t na = 0;
    for (uint64_t s = 1; s <= 10; s++) {
        append_ok(x.l, 1, s);
        acked[na++] = (rec){ 1, s };
    }
    /* A lone SYNC append makes two calls: append, then sync. */
    bt_env_fault_fail_nth(x.fe, 2, BT_EIO);
    cr_assert_eq(try_append(x.l, 1, 11), BT_EIO);
    /* The next append starts a new file; fail that file's creation too. */
    bt_env_fault_fail_nth(x.fe, 1, BT_EIO);
    cr_assert_eq(try_append(x.l, 1, 12), BT_EIO);
    /* And a failing write. */
    bt_env_fault_fail_nth(x.fe, 3, BT_EIO);   /* open, sync_dir, append */
    cr_assert_eq(try_append(x.l, 1, 13), BT_EIO);
    for (uint64_t s = 14; s <= 17; s++) {
        append_ok(x.l, 1, s);
        acked[na++] = (rec){ 1, s };
    }
    ts_log_stats st;
    ts_log_get_stats(x.l, &st);
    cr_assert_geq(st.active_file, 3, "each failure should abandon the active file");
    fault_log_crash(&x);
    expect_acked(x.dir, acked, na, NULL, 0);
    fault_log_finish(&x);
}

typedef struct fail_arg { ts_log *l; uint64_t tablet; int rc[50]; } fail_arg;

static void *fail_writer(void *p)
{
    fail_arg *a = p;
    for (int i = 0; i < 50; i++) a->rc[i] = try_append(a->l, a->tablet, (uint64_t)i + 1);
    return NULL;
}

Test(commitlog, concurrent_appenders_see_batch_failures, .timeout = 60)
{
    bt_log_set_level(BT_LOG_OFF);
    /* No rolling: every counted call then belongs to some batch (a failed
     * roll is only retried by the next batch, and reports to nobody). */
    fault_log x;
    fault_log_open(&x, TS_DURABILITY_SYNC, 0);
    fail_arg a[4];
    pthread_t th[4];
    /* Some batch's write or sync fails while four threads append. */
    bt_env_fault_fail_nth(x.fe, 40, BT_EIO);
    for (int i = 0; i < 4; i++) {
        a[i] = (fail_arg){ .l = x.l, .tablet = (uint64_t)i + 1 };
        pthread_create(&th[i], NULL, fail_writer, &a[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    fault_log_crash(&x);
    coll c = replay_dir(x.dir, TS_LOG_ALL_TABLETS, 0);
    cr_assert_eq(c.bad_payloads, 0);
    int failures = 0;
    for (int t = 0; t < 4; t++) {
        for (int i = 0; i < 50; i++) {
            int found = 0;
            for (size_t k = 0; k < c.n; k++)
                found += c.v[k].tablet == (uint64_t)t + 1 && c.v[k].seq == (uint64_t)i + 1;
            cr_assert_leq(found, 1);
            if (a[t].rc[i] == BT_OK) cr_assert_eq(found, 1, "acked (%d,%d) lost", t + 1, i + 1);
            else failures++;
        }
    }
    cr_assert_gt(failures, 0);
    free(c.v);
    fault_log_finish(&x);
}

/* ---- SIGKILL ------------------------------------------------------------------------- */

/* Appends forever in mode d, reporting every acknowledged seq. */
static void sigkill_child(const char *dir, int fd, uint64_t base, ts_durability d)
{
    ts_log_options o = { .env = bt_env_posix(), .dir = dir, .durability = d,
                         .group_ms = 2, .roll_bytes = 16384 };
    ts_log *l;
    if (ts_log_open(&o, &l) != BT_OK) _exit(2);
    for (uint64_t s = base + 1; s < base + 100000; s++) {
        if (try_append(l, 1 + s % 3, s) != BT_OK) _exit(3);
        if (write(fd, &s, sizeof s) != (ssize_t)sizeof s) _exit(4);
    }
    _exit(0);
}

/* SYNC acknowledges what is on disk, mapped GROUP what is in the page cache:
 * either way a killed process loses nothing acknowledged.  (GROUP's mapped
 * files are left preallocated by the kill: their zero tails are read too.) */
static void sigkill_rounds(ts_durability d, int rounds)
{
    bt_log_set_level(BT_LOG_ERROR);
    char *dir = make_dir();
    unsigned seed = (unsigned)time(NULL);
    uint64_t base = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0; round < rounds; round++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(p[0]);
            sigkill_child(dir, p[1], base, d);
        }
        close(p[1]);
        sleep_ms(5 + (unsigned)rand_r(&seed) % 60);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status), "child exited early with %d", WEXITSTATUS(status));
        uint64_t s, max_acked = base;
        while (read(p[0], &s, sizeof s) == (ssize_t)sizeof s) max_acked = s;
        close(p[0]);

        /* Every acked seq is back, in order, with nothing missing before it. */
        ts_log *l = open_log(bt_env_posix(), dir, TS_DURABILITY_SYNC, 0);
        coll c = replay_log(l, TS_LOG_ALL_TABLETS, base);
        cr_assert_eq(c.bad_payloads, 0);
        for (size_t i = 0; i < c.n; i++)
            cr_assert_eq(c.v[i].seq, base + 1 + i, "round %d: replay has a hole or repeat", round);
        uint64_t got_max = base + c.n;
        cr_assert_geq(got_max, max_acked, "round %d: acked up to %lu, replayed up to %lu",
                      round, (unsigned long)max_acked, (unsigned long)got_max);
        /* Pretend everything got flushed: old files go away. */
        for (uint64_t t = 1; t <= 3; t++) ts_log_tablet_flushed(l, t, got_max);
        cr_assert_eq(ts_log_close(l), BT_OK);
        free(c.v);
        base = got_max;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 20);
    cr_assert_gt(base, 0, "no child ever acknowledged a record");
    remove_tree(dir);
}

Test(commitlog, sigkill_keeps_acknowledged_records, .timeout = 60)
{
    sigkill_rounds(TS_DURABILITY_SYNC, 20);
}

Test(commitlog, sigkill_keeps_acknowledged_records_group_mapped, .timeout = 60)
{
    sigkill_rounds(TS_DURABILITY_GROUP, 20);
}

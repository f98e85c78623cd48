/* tests/unit/test_durability.c: acknowledged writes are never lost.
 *
 * Every test writes rows 0, 1, 2, ... in order, one cell each, whose key
 * and value are functions of the index (row_key, row_value), so what a
 * reopened tablet holds can be checked without remembering anything but a
 * count.  The property checked after every crash or failure is:
 *
 *   the rows present are exactly {0 .. m-1}, each with its own value, for
 *   some m with  (rows guaranteed durable) <= m <= (rows attempted).
 *
 * "Guaranteed durable" is every acknowledged row in SYNC mode; in GROUP and
 * NONE modes it is the rows acknowledged before the last successful
 * ts_log_sync or ts_tablet_flush.
 *
 * Crashes:
 *  - power loss (fault env, bt_env_fault_drop_unsynced).  The env is wrapped
 *    in a "gate" (below) that performs the drop and then fails every later
 *    mutating call, so the engine, which keeps running after the simulated
 *    crash, cannot touch the crashed disk image (a real crashed machine runs
 *    nothing).  The gate can also crash by itself just before its Nth
 *    mutating call, from whichever thread makes it: that lands crashes at
 *    every step of background compactions (SSTable writes, manifest
 *    replacement, log file deletion).
 *    A run chains up to three such lives on one directory, so a crash can
 *    also land while the previous crash is being recovered.
 *  - SIGKILL of a child process writing in each durability mode, many
 *    rounds on one directory.
 * Failures: ENOSPC budgets (commit log, flush, background compaction),
 * failing the Nth env call (alone and followed by power loss), concurrent
 * writers racing explicit flushes, damaged commit log tails, damaged
 * SSTables and manifests.
 *
 * BT_DURABILITY_VERBOSE=1 prints what each round did; BT_DURABILITY_SEED=n
 * varies the random crash points (the default seeds are fixed).  Every test has the
 * same .timeout: Criterion 2.4.1's runner leaks (and ASan then fails the
 * binary) when tests of one binary have different timeouts.
 *
 * Directories live under /dev/shm when it is usable (fsync is free there and
 * every crash here is simulated or a process kill), else under /tmp.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/coding.h"
#include "common/env.h"
#include "common/log.h"
#include "common/status.h"
#include "tabletserver/commitlog.h"
#include "tabletserver/tablet.h"
#include "testutil.h"

/* ---- small helpers --------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n) { return n ? rng_next(s) % n : 0; }

/* Seeds are fixed for reproducible runs; BT_DURABILITY_SEED=n explores others. */
static uint64_t seed_mix(uint64_t base)
{
    const char *v = getenv("BT_DURABILITY_SEED");
    return v ? base ^ (strtoull(v, NULL, 0) * 0x9e3779b97f4a7c15ull) : base;
}

static char *make_dir(void)
{
    char tmpl[64];
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
                           ? "/dev/shm" : "/tmp";
    snprintf(tmpl, sizeof tmpl, "%s/bt-durability-XXXXXX", base);
    cr_assert_not_null(mkdtemp(tmpl), "mkdtemp: %s", strerror(errno));
    char *d = strdup(tmpl);
    cr_assert_not_null(d);
    return d;
}

static void remove_tree(char *dir)
{
    test_rm_rf(dir);
    free(dir);
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    cr_assert_not_null(p);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    uint8_t *data;
    int rc = bt_env_read_all(bt_env_posix(), path, &data, len);
    cr_assert_eq(rc, BT_OK, "read %s: %s", path, bt_errmsg());
    return data;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* ---- rows ------------------------------------------------------------------------ */

#define FAMILY "cf"
#define QUAL "q"
#define CELL_TS 1000

static size_t row_key(int i, char *buf) { return (size_t)sprintf(buf, "r%07d", i); }

/* 16..115 bytes that name the index and differ between neighbours. */
static size_t row_value(int i, uint8_t *buf)
{
    size_t n = (size_t)sprintf((char *)buf, "v%07d:", i);
    size_t len = 16 + (size_t)((i * 37) % 100);
    for (size_t k = n; k < len; k++) buf[k] = (uint8_t)('a' + (size_t)(i + (int)k * 7) % 26);
    return len;
}

static int put_row(ts_tablet *t, int i)
{
    char key[16];
    uint8_t val[128];
    size_t kl = row_key(i, key), vl = row_value(i, val);
    ts_mutation m = {
        .type = TS_SET_CELL, .family = FAMILY, .family_len = strlen(FAMILY),
        .qualifier = (const uint8_t *)QUAL, .qualifier_len = strlen(QUAL),
        .timestamp = CELL_TS, .value = val, .value_len = vl,
    };
    return ts_tablet_mutate_row(t, (const uint8_t *)key, kl, &m, 1);
}

/* Asserts that r is row i with its single cell, exactly as written. */
static void expect_row_content(const ts_row *r, int i, const char *what)
{
    char key[16];
    uint8_t val[128];
    size_t kl = row_key(i, key), vl = row_value(i, val);
    cr_assert(r->key_len == kl && memcmp(r->key, key, kl) == 0,
              "%s: expected row %s, got \"%.*s\" (present rows must be a prefix of the write order)",
              what, key, (int)r->key_len, (const char *)r->key);
    cr_assert_eq(r->n_cells, 1, "%s: row %s has %zu cells", what, key, r->n_cells);
    const ts_cell *c = &r->cells[0];
    cr_assert(c->family_len == strlen(FAMILY) && memcmp(c->family, FAMILY, c->family_len) == 0,
              "%s: row %s: wrong family", what, key);
    cr_assert(c->qualifier_len == strlen(QUAL) && memcmp(c->qualifier, QUAL, c->qualifier_len) == 0,
              "%s: row %s: wrong qualifier", what, key);
    cr_assert_eq(c->timestamp, CELL_TS, "%s: row %s: wrong timestamp", what, key);
    cr_assert(c->value_len == vl && memcmp(c->value, val, vl) == 0,
              "%s: row %s: wrong value (%zu bytes, want %zu)", what, key, c->value_len, vl);
}

/* Point read of row i: BT_OK (content checked), or the error code. */
static int read_row_rc(ts_tablet *t, int i)
{
    char key[16];
    size_t kl = row_key(i, key);
    ts_row r;
    int rc = ts_tablet_read_row(t, (const uint8_t *)key, kl, NULL, &r);
    if (rc == BT_OK) {
        expect_row_content(&r, i, "read_row");
        ts_row_free(&r);
    }
    return rc;
}

static void expect_readable(ts_tablet *t, int i, const char *when)
{
    int rc = read_row_rc(t, i);
    cr_assert_eq(rc, BT_OK, "%s: acknowledged row %d unreadable: %s (%s)", when, i,
                 bt_errname(rc), bt_errmsg());
}

/* Scans the whole tablet and asserts it holds exactly rows 0..m-1 with
 * their values, m <= max_rows; returns m. */
static int scan_prefix(ts_tablet *t, int max_rows, const char *when)
{
    ts_scanner *s;
    int rc = ts_tablet_scan(t, NULL, &s);
    cr_assert_eq(rc, BT_OK, "%s: scan: %s (%s)", when, bt_errname(rc), bt_errmsg());
    int m = 0;
    ts_row r;
    while ((rc = ts_scanner_next(s, &r)) == BT_OK) {
        cr_assert_lt(m, max_rows, "%s: more rows present than were ever written (%d)", when, max_rows);
        expect_row_content(&r, m, when);
        m++;
    }
    cr_assert_eq(rc, BT_ENOTFOUND, "%s: scan ended with %s (%s)", when, bt_errname(rc), bt_errmsg());
    ts_scanner_close(s);
    return m;
}

/* ---- engine and tablet -------------------------------------------------------------- */

typedef struct eng_cfg {
    ts_durability durability;
    size_t memtable_bytes;      /* 0 -> 4 MiB */
    uint64_t log_roll_bytes;    /* 0 -> 64 MiB */
    int merge_trigger;          /* 0 -> 3 */
    int threads;                /* 0 -> 1 */
} eng_cfg;

static ts_engine *open_engine(bt_env *env, const char *root, const eng_cfg *c)
{
    char *log_dir = path_join(root, "log");
    ts_engine_options o = {
        .env = env, .log_dir = log_dir, .durability = c->durability, .group_ms = 2,
        .log_roll_bytes = c->log_roll_bytes, .block_cache_bytes = 1u << 20,
        .memtable_bytes = c->memtable_bytes ? c->memtable_bytes : 4u << 20,
        .compaction_threads = c->threads ? c->threads : 1,
        .merge_trigger = c->merge_trigger ? c->merge_trigger : 3,
    };
    ts_engine *e = NULL;
    int rc = ts_engine_open(&o, &e);
    free(log_dir);
    cr_assert_eq(rc, BT_OK, "ts_engine_open: %s (%s)", bt_errname(rc), bt_errmsg());
    return e;
}

static ts_tablet *create_tablet(ts_engine *e, const char *root)
{
    ts_schema s;
    ts_schema_init(&s);
    cr_assert_eq(ts_schema_add_family(&s, FAMILY, 0, 0), BT_OK);
    char *dir = path_join(root, "tablet");
    ts_tablet *t = NULL;
    int rc = ts_tablet_create(e, dir, 7, &s, NULL, 0, NULL, 0, &t);
    free(dir);
    cr_assert_eq(rc, BT_OK, "ts_tablet_create: %s (%s)", bt_errname(rc), bt_errmsg());
    return t;
}

static int try_open_tablet(ts_engine *e, const char *root, ts_tablet **t)
{
    char *dir = path_join(root, "tablet");
    int rc = ts_tablet_open(e, dir, t);
    free(dir);
    return rc;
}

static ts_tablet *open_tablet(ts_engine *e, const char *root)
{
    ts_tablet *t = NULL;
    int rc = try_open_tablet(e, root, &t);
    cr_assert_eq(rc, BT_OK, "ts_tablet_open: %s (%s)", bt_errname(rc), bt_errmsg());
    return t;
}

/* Reopens root with the posix env and checks the prefix property; returns m. */
static int reopen_and_check(const char *root, const eng_cfg *c, int durable, int attempted,
                            const char *when)
{
    ts_engine *e = open_engine(bt_env_posix(), root, c);
    ts_tablet *t = open_tablet(e, root);
    int m = scan_prefix(t, attempted, when);
    cr_assert_geq(m, durable, "%s: %d rows were guaranteed durable but only %d survived",
                  when, durable, m);
    for (int i = 0; i < durable; i++) expect_readable(t, i, when);
    cr_assert_eq(ts_tablet_close(t), BT_OK);
    cr_assert_eq(ts_engine_close(e), BT_OK, "%s: engine close: %s", when, bt_errmsg());
    return m;
}

static uint64_t compactions(ts_tablet *t)
{
    ts_tablet_stats st;
    ts_tablet_get_stats(t, &st);
    return st.minor_compactions + st.merging_compactions + st.major_compactions;
}

/* ---- the gate: a crash that stays a crash ---------------------------------------------
 *
 * Wraps a fault env.  gate_crash() calls bt_env_fault_drop_unsynced on it and
 * from then on every mutating call (open for writing, append, sync, rename,
 * remove, mkdir, sync_dir, truncate) fails with BT_EIO, so threads of the
 * "crashed" engine that are still running change nothing on disk.  With
 * crash_at set, the gate crashes by itself just before its crash_at-th
 * mutating call.  Calls hold the gate's mutex for their whole duration, so a
 * crash falls between two calls, never inside one. */

typedef struct gate_env {
    bt_env base;
    bt_env *fault;
    pthread_mutex_t mu;
    bool down;
    bool tablet_only;       /* crash_at counts only calls on the tablet's files */
    uint64_t calls;         /* mutating calls so far */
    uint64_t tcalls;        /* ... of them on paths under ".../tablet" */
    uint64_t crash_at;      /* crash just before this call (of the counted kind); 0 = never */
} gate_env;

typedef struct gate_wfile {
    bt_wfile base;
    gate_env *g;
    bt_wfile *inner;
    bool tablet;
} gate_wfile;

static bool tablet_path(const char *p) { return p && strstr(p, "/tablet") != NULL; }

/* Locks and counts a mutating call; BT_OK with the mutex held, or BT_EIO
 * (mutex released) once the machine is down. */
static int gate_enter(gate_env *g, const char *op, const char *path, bool tablet)
{
    pthread_mutex_lock(&g->mu);
    g->calls++;
    g->tcalls += tablet;
    uint64_t n = g->tablet_only ? g->tcalls : g->calls;
    if (!g->down && g->crash_at && n == g->crash_at && (tablet || !g->tablet_only)) {
        cr_assert_eq(bt_env_fault_drop_unsynced(g->fault), BT_OK, "drop_unsynced: %s", bt_errmsg());
        g->down = true;
    }
    if (g->down) {
        pthread_mutex_unlock(&g->mu);
        return bt_err(BT_EIO, "%s %s: simulated power loss", op, path ? path : "");
    }
    return BT_OK;
}

static int gate_leave(gate_env *g, int rc)
{
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static void gate_crash(bt_env *e)
{
    gate_env *g = (gate_env *)e;
    pthread_mutex_lock(&g->mu);
    if (!g->down) {
        cr_assert_eq(bt_env_fault_drop_unsynced(g->fault), BT_OK, "drop_unsynced: %s", bt_errmsg());
        g->down = true;
    }
    pthread_mutex_unlock(&g->mu);
}

static bool gate_is_down(bt_env *e)
{
    gate_env *g = (gate_env *)e;
    pthread_mutex_lock(&g->mu);
    bool d = g->down;
    pthread_mutex_unlock(&g->mu);
    return d;
}

static void gate_counts(bt_env *e, uint64_t *calls, uint64_t *tcalls)
{
    gate_env *g = (gate_env *)e;
    pthread_mutex_lock(&g->mu);
    *calls = g->calls;
    *tcalls = g->tcalls;
    pthread_mutex_unlock(&g->mu);
}

static int gw_append(bt_wfile *f, const void *d, size_t n)
{
    gate_wfile *w = (gate_wfile *)f;
    int rc = gate_enter(w->g, "append", NULL, w->tablet);
    return rc ? rc : gate_leave(w->g, bt_wfile_append(w->inner, d, n));
}

static int gw_sync(bt_wfile *f)
{
    gate_wfile *w = (gate_wfile *)f;
    int rc = gate_enter(w->g, "sync", NULL, w->tablet);
    return rc ? rc : gate_leave(w->g, bt_wfile_sync(w->inner));
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
    gate_env *g = (gate_env *)e;
    gate_wfile *w = calloc(1, sizeof *w);
    if (!w) return BT_ENOMEM;
    w->tablet = tablet_path(p);
    int rc = gate_enter(g, "open", p, w->tablet);
    if (!rc) rc = gate_leave(g, bt_env_open_writable(g->fault, p, mode, &w->inner));
    if (rc) {
        free(w);
        return rc;
    }
    w->base.ops = &gate_wfile_ops;
    w->g = g;
    *out = &w->base;
    return BT_OK;
}

static int ge_open_readable(bt_env *e, const char *p, bt_rfile **out)
{
    return bt_env_open_readable(((gate_env *)e)->fault, p, out);
}

static int ge_file_size(bt_env *e, const char *p, uint64_t *s)
{
    return bt_env_file_size(((gate_env *)e)->fault, p, s);
}

static int ge_list(bt_env *e, const char *d, bt_env_list_fn fn, void *arg)
{
    return bt_env_list(((gate_env *)e)->fault, d, fn, arg);
}

static int ge_rename(bt_env *e, const char *a, const char *b)
{
    gate_env *g = (gate_env *)e;
    int rc = gate_enter(g, "rename", a, tablet_path(a));
    return rc ? rc : gate_leave(g, bt_env_rename(g->fault, a, b));
}

static int ge_remove(bt_env *e, const char *p)
{
    gate_env *g = (gate_env *)e;
    int rc = gate_enter(g, "remove", p, tablet_path(p));
    return rc ? rc : gate_leave(g, bt_env_remove(g->fault, p));
}

static int ge_mkdir(bt_env *e, const char *p)
{
    gate_env *g = (gate_env *)e;
    int rc = gate_enter(g, "mkdir", p, tablet_path(p));
    return rc ? rc : gate_leave(g, bt_env_mkdir(g->fault, p));
}

static int ge_sync_dir(bt_env *e, const char *p)
{
    gate_env *g = (gate_env *)e;
    int rc = gate_enter(g, "sync_dir", p, tablet_path(p));
    return rc ? rc : gate_leave(g, bt_env_sync_dir(g->fault, p));
}

static int ge_truncate(bt_env *e, const char *p, uint64_t s)
{
    gate_env *g = (gate_env *)e;
    int rc = gate_enter(g, "truncate", p, tablet_path(p));
    return rc ? rc : gate_leave(g, bt_env_truncate(g->fault, p, s));
}

static void ge_destroy(bt_env *e)
{
    gate_env *g = (gate_env *)e;
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static const struct bt_env_ops gate_env_ops = {
    .open_writable = ge_open_writable, .open_readable = ge_open_readable,
    .file_size = ge_file_size, .rename = ge_rename, .remove = ge_remove, .mkdir = ge_mkdir,
    .sync_dir = ge_sync_dir, .list = ge_list, .truncate = ge_truncate, .destroy = ge_destroy,
};

static bt_env *gate_new(bt_env *fault)
{
    gate_env *g = calloc(1, sizeof *g);
    cr_assert_not_null(g);
    g->base.ops = &gate_env_ops;
    g->fault = fault;
    pthread_mutex_init(&g->mu, NULL);
    return &g->base;
}

/* Crash just before the nth mutating call from now (of the tablet's files
 * only, with tablet_only). */
static void gate_arm(bt_env *e, uint64_t nth, bool tablet_only)
{
    gate_env *g = (gate_env *)e;
    pthread_mutex_lock(&g->mu);
    g->tablet_only = tablet_only;
    g->crash_at = nth ? (tablet_only ? g->tcalls : g->calls) + nth : 0;
    pthread_mutex_unlock(&g->mu);
}

/* ---- 1 & 2: power loss at random points, in every durability mode ---------------------- */

#define LIFE_ROWS 300

static const eng_cfg crash_cfg_sync = {
    .durability = TS_DURABILITY_SYNC, .memtable_bytes = 6 * 1024, .log_roll_bytes = 16 * 1024,
    .merge_trigger = 3, .threads = 2,
};

typedef struct crasher {
    bt_env *gate;
    ts_tablet *t;
    uint64_t after_compactions;
    unsigned delay_us;
    atomic_bool stop;
} crasher;

/* Waits until the tablet has done enough compactions, lets a little more
 * background work start, then pulls the plug. */
static void *crasher_main(void *p)
{
    crasher *c = p;
    while (!atomic_load(&c->stop) && compactions(c->t) < c->after_compactions) usleep(100);
    if (atomic_load(&c->stop)) return NULL;
    usleep(c->delay_us);
    gate_crash(c->gate);
    return NULL;
}

/* How one life of the engine ends. */
typedef enum { CRASH_NONE, CRASH_AT_CALL, CRASH_AT_TABLET_CALL, CRASH_AFTER_COMPACTIONS } crash_kind;

typedef struct crash_plan {
    crash_kind kind;
    uint64_t n;                 /* the call, or the number of compactions */
    unsigned delay_us;
} crash_plan;

/* What is known about the rows on disk across lives. */
typedef struct rows_state {
    int durable;                /* rows 0..durable-1 must survive */
    int attempted;              /* rows 0..attempted-1 may exist */
    int acked;                  /* this life's acknowledged rows, from its base */
    uint64_t calls, tcalls;     /* this life's mutating env calls */
    uint64_t compactions;       /* this life's */
    bool created;               /* the tablet exists */
    int lives_after_compactions;/* lives that crashed after compactions began */
    int lives_at_tablet_calls;  /* lives crashed at a call on the tablet's files */
} rows_state;

/* One life: open (or create) the tablet on a gated fault env, check what
 * it recovered, write rows after them (with some explicit flushes and log
 * syncs) until the planned crash, then leave what still runs to fail
 * against the dead disk.  The crash may land while opening: that is
 * recovery of recovery. */
static void crash_life(const char *root, const eng_cfg *cfg, uint64_t seed, crash_plan plan,
                       rows_state *st, const char *when)
{
    bt_env *fault = bt_env_fault_new(bt_env_posix());
    cr_assert_not_null(fault);
    bt_env *gate = gate_new(fault);
    uint64_t rng = seed, c0, t0;
    gate_counts(gate, &c0, &t0);
    st->acked = 0;
    st->compactions = 0;
    if (st->created && (plan.kind == CRASH_AT_CALL || plan.kind == CRASH_AT_TABLET_CALL))
        gate_arm(gate, plan.n, plan.kind == CRASH_AT_TABLET_CALL);

    char *log_dir = path_join(root, "log");
    ts_engine_options o = {
        .env = gate, .log_dir = log_dir, .durability = cfg->durability, .group_ms = 2,
        .log_roll_bytes = cfg->log_roll_bytes, .block_cache_bytes = 1u << 20,
        .memtable_bytes = cfg->memtable_bytes, .compaction_threads = cfg->threads,
        .merge_trigger = cfg->merge_trigger,
    };
    ts_engine *e = NULL;
    ts_tablet *t = NULL;
    int rc = ts_engine_open(&o, &e);
    free(log_dir);
    if (rc == BT_OK && st->created) {
        rc = try_open_tablet(e, root, &t);
    } else if (rc == BT_OK) {
        t = create_tablet(e, root);
        st->created = true;
        if (plan.kind == CRASH_AT_CALL || plan.kind == CRASH_AT_TABLET_CALL)
            gate_arm(gate, plan.n, plan.kind == CRASH_AT_TABLET_CALL);
    }
    if (rc != BT_OK) {
        cr_assert(gate_is_down(gate), "%s: open failed without a crash: %s (%s)", when,
                  bt_errname(rc), bt_errmsg());
    } else {
        /* What this life recovered is on disk: it must all survive from now on. */
        int base = scan_prefix(t, st->attempted, when);
        cr_assert_geq(base, st->durable, "%s: recovered %d rows, %d were guaranteed", when, base,
                      st->durable);
        st->durable = st->attempted = base;

        crasher cr = { .gate = gate, .t = t, .after_compactions = plan.n, .delay_us = plan.delay_us };
        atomic_init(&cr.stop, false);
        pthread_t th;
        bool threaded = plan.kind == CRASH_AFTER_COMPACTIONS;
        if (threaded) cr_assert_eq(pthread_create(&th, NULL, crasher_main, &cr), 0);

        bool sync_mode = cfg->durability == TS_DURABILITY_SYNC;
        for (int i = base; i < base + LIFE_ROWS; i++) {
            if (rng_below(&rng, 60) == 0) {
                int acked_before = base + st->acked;
                if (ts_tablet_flush(t) == BT_OK && st->durable < acked_before) st->durable = acked_before;
            }
            if (!sync_mode && rng_below(&rng, 15) == 0) {
                int acked_before = base + st->acked;
                if (ts_log_sync(ts_engine_log(e)) == BT_OK && st->durable < acked_before)
                    st->durable = acked_before;
            }
            st->attempted = i + 1;
            rc = put_row(t, i);
            if (rc != BT_OK) {
                cr_assert(gate_is_down(gate), "%s: write %d failed before any crash: %s (%s)", when,
                          i, bt_errname(rc), bt_errmsg());
                break;
            }
            st->acked = i + 1 - base;
            if (sync_mode) st->durable = i + 1;
        }
        if (threaded) {
            atomic_store(&cr.stop, true);
            pthread_join(th, NULL);
        }
        st->compactions = compactions(t);
        st->lives_after_compactions += plan.kind == CRASH_AFTER_COMPACTIONS && st->compactions > 0;
    }
    st->lives_at_tablet_calls += plan.kind == CRASH_AT_TABLET_CALL && gate_is_down(gate);
    uint64_t c1, t1;
    gate_counts(gate, &c1, &t1);
    st->calls = c1 - c0;
    st->tcalls = t1 - t0;
    gate_crash(gate);
    /* Whatever still runs fails against the dead disk; that is expected. */
    if (t) ts_tablet_close(t);
    if (e) ts_engine_close(e);
    bt_env_destroy(gate);
    bt_env_destroy(fault);
}

/* A run of 1..3 lives, each ending in a crash, then a clean check. */
static rows_state crash_run(const eng_cfg *cfg, uint64_t seed, int lives, const crash_plan *plans)
{
    char *root = make_dir();
    rows_state st = {0};
    uint64_t rng = seed;
    char when[128];
    for (int l = 0; l < lives; l++) {
        snprintf(when, sizeof when, "%s seed %llu life %d (crash kind %d at %llu)",
                 ts_durability_name(cfg->durability), (unsigned long long)seed, l,
                 (int)plans[l].kind, (unsigned long long)plans[l].n);
        crash_life(root, cfg, rng_next(&rng), plans[l], &st, when);
    }
    int m = reopen_and_check(root, cfg, st.durable, st.attempted, when);
    if (getenv("BT_DURABILITY_VERBOSE"))
        fprintf(stderr, "%s: durable %d attempted %d present %d; last life acked %d, "
                "compactions %llu, calls %llu (tablet %llu)\n", when, st.durable, st.attempted, m,
                st.acked, (unsigned long long)st.compactions, (unsigned long long)st.calls,
                (unsigned long long)st.tcalls);
    /* Recovery of the recovered state: a second clean reopen sees the same rows. */
    cr_assert_eq(reopen_and_check(root, cfg, m, m, when), m);
    remove_tree(root);
    return st;
}

static void crash_rounds(const eng_cfg *cfg, int rounds)
{
    bt_log_set_level(BT_LOG_OFF);
    /* Calibrate: how many mutating calls does a whole life make? */
    crash_plan none = { CRASH_NONE, 0, 0 };
    rows_state full = crash_run(cfg, 1, 1, &none);
    cr_assert_eq(full.acked, LIFE_ROWS);
    cr_assert_gt(full.compactions, 3, "the workload should compact in the background");
    cr_assert_gt(full.tcalls, 20);
    uint64_t rng = seed_mix(0x5eed0000u + (uint64_t)cfg->durability);
    int after_compactions = 0, tablet_calls = 0;
    for (int r = 0; r < rounds; r++) {
        uint64_t seed = rng_next(&rng);
        int lives = 1 + (int)rng_below(&rng, 3);
        crash_plan plans[3];
        for (int l = 0; l < lives; l++) {
            crash_plan *p = &plans[l];
            p->kind = (crash_kind)(1 + (r + l) % 3);
            p->delay_us = (unsigned)rng_below(&rng, 3000);
            if (p->kind == CRASH_AT_CALL) p->n = 1 + rng_below(&rng, full.calls);
            else if (p->kind == CRASH_AT_TABLET_CALL) p->n = 1 + rng_below(&rng, full.tcalls);
            else p->n = 1 + rng_below(&rng, 6);
        }
        rows_state st = crash_run(cfg, seed, lives, plans);
        after_compactions += st.lives_after_compactions;
        tablet_calls += st.lives_at_tablet_calls;
    }
    cr_assert_geq(after_compactions, rounds / 4, "only %d lives crashed after compactions began",
                  after_compactions);
    cr_assert_geq(tablet_calls, rounds / 4, "only %d lives crashed at a tablet file call", tablet_calls);
}

Test(durability, power_loss_sync_keeps_every_acked_write, .timeout = 120)
{
    crash_rounds(&crash_cfg_sync, 30);
}

Test(durability, power_loss_group_keeps_synced_prefix, .timeout = 120)
{
    eng_cfg c = crash_cfg_sync;
    c.durability = TS_DURABILITY_GROUP;
    crash_rounds(&c, 24);
}

Test(durability, power_loss_none_leaves_a_prefix, .timeout = 120)
{
    eng_cfg c = crash_cfg_sync;
    c.durability = TS_DURABILITY_NONE;
    crash_rounds(&c, 24);
}

/* ---- concurrent writers with explicit flushes and compactions ------------------------------ */

enum { CW_THREADS = 4, CW_ROWS = 1500, CW_STRIDE = 100000 };

typedef struct cw_arg {
    ts_tablet *t;
    int id;
    bool ok[CW_ROWS];
    atomic_int *done, *flushes;
} cw_arg;

/* Writes its rows; every 100 rows it waits for one more flush to finish, so
 * flushes really run alongside the writes however the threads are scheduled. */
static void *cw_writer(void *p)
{
    cw_arg *a = p;
    for (int k = 0; k < CW_ROWS; k++) {
        a->ok[k] = put_row(a->t, a->id * CW_STRIDE + k) == BT_OK;
        if (k % 100 == 99)
            while (atomic_load(a->flushes) < (k + 1) / 100) usleep(50);
    }
    atomic_fetch_add(a->done, 1);
    return NULL;
}

static void cw_check(ts_tablet *t, cw_arg *args, const char *when)
{
    int present = 0;
    ts_scanner *s;
    cr_assert_eq(ts_tablet_scan(t, NULL, &s), BT_OK);
    ts_row r;
    int rc;
    while ((rc = ts_scanner_next(s, &r)) == BT_OK) present++;
    cr_assert_eq(rc, BT_ENOTFOUND, "%s: %s", when, bt_errmsg());
    ts_scanner_close(s);
    cr_assert_eq(present, CW_THREADS * CW_ROWS, "%s: %d rows present", when, present);
    for (int th = 0; th < CW_THREADS; th++)
        for (int k = 0; k < CW_ROWS; k++) {
            cr_assert(args[th].ok[k], "%s: write %d of thread %d failed", when, k, th);
            expect_readable(t, th * CW_STRIDE + k, when);
        }
}

/* Flushes and compactions requested while writers fill small memtables
 * (so writers also rotate them): no acknowledged write may go missing. */
Test(durability, concurrent_writers_flushes_and_compactions, .timeout = 120)
{
    bt_log_set_level(BT_LOG_OFF);
    char *root = make_dir();
    eng_cfg c = { .durability = TS_DURABILITY_SYNC, .memtable_bytes = 2048, .merge_trigger = 3,
                  .threads = 2, .log_roll_bytes = 8192 };
    ts_engine *e = open_engine(bt_env_posix(), root, &c);
    ts_tablet *t = create_tablet(e, root);
    atomic_int done, flushes;
    atomic_init(&done, 0);
    atomic_init(&flushes, 0);
    static cw_arg args[CW_THREADS];
    pthread_t th[CW_THREADS];
    for (int i = 0; i < CW_THREADS; i++) {
        args[i] = (cw_arg){ .t = t, .id = i, .done = &done, .flushes = &flushes };
        cr_assert_eq(pthread_create(&th[i], NULL, cw_writer, &args[i]), 0);
    }
    while (atomic_load(&done) < CW_THREADS) {
        int n = atomic_load(&flushes);
        int rc = n % 8 == 7 ? ts_tablet_compact(t) : ts_tablet_flush(t);
        cr_assert_eq(rc, BT_OK, "flush/compact %d: %s (%s)", n, bt_errname(rc), bt_errmsg());
        atomic_fetch_add(&flushes, 1);
    }
    for (int i = 0; i < CW_THREADS; i++) pthread_join(th[i], NULL);
    cr_assert_eq(ts_tablet_wait_idle(t), BT_OK);
    cr_assert_geq(atomic_load(&flushes), CW_ROWS / 100);
    cw_check(t, args, "in memory");
    cr_assert_eq(ts_tablet_close(t), BT_OK);
    cr_assert_eq(ts_engine_close(e), BT_OK);
    e = open_engine(bt_env_posix(), root, &c);
    t = open_tablet(e, root);
    cw_check(t, args, "after reopen");
    cr_assert_eq(ts_tablet_close(t), BT_OK);
    cr_assert_eq(ts_engine_close(e), BT_OK);
    remove_tree(root);
}

/* ---- 3: SIGKILL of a writing process, recovery of recovery ----------------------------- */

static const eng_cfg kill_cfg = {
    .durability = TS_DURABILITY_SYNC, .memtable_bytes = 16 * 1024, .log_roll_bytes = 32 * 1024,
    .merge_trigger = 3, .threads = 1,
};

/* The child: opens the tablet, reports -1 (ready), writes rows from `start`
 * on, reports each acknowledged index over fd until it is killed. */
static void kill_child(const char *root, const eng_cfg *cfg, int start, int fd)
{
    bt_log_set_level(BT_LOG_OFF);
    char *log_dir = path_join(root, "log"), *tdir = path_join(root, "tablet");
    ts_engine_options o = {
        .env = bt_env_posix(), .log_dir = log_dir, .durability = cfg->durability, .group_ms = 2,
        .log_roll_bytes = cfg->log_roll_bytes, .block_cache_bytes = 1u << 20,
        .memtable_bytes = cfg->memtable_bytes, .merge_trigger = cfg->merge_trigger,
    };
    ts_engine *e;
    ts_tablet *t;
    if (ts_engine_open(&o, &e) != BT_OK) _exit(2);
    if (ts_tablet_open(e, tdir, &t) != BT_OK) _exit(3);
    int32_t ready = -1;
    if (write(fd, &ready, sizeof ready) != (ssize_t)sizeof ready) _exit(5);
    for (int i = start; i < start + 200000; i++) {
        if (put_row(t, i) != BT_OK) _exit(4);
        int32_t v = i;
        if (write(fd, &v, sizeof v) != (ssize_t)sizeof v) _exit(5);
    }
    for (;;) pause();
}

/* Rounds of: a child writes, SIGKILL after 5-50 ms, the parent checks, in
 * one directory.  SYNC and GROUP acknowledge only what the OS has, so a
 * process kill loses nothing acknowledged; NONE may lose the buffered tail
 * but never what was already on disk, and always leaves a prefix. */
static void kill_rounds(ts_durability d, int rounds)
{
    bt_log_set_level(BT_LOG_OFF);
    eng_cfg cfg = kill_cfg;
    cfg.durability = d;
    char *root = make_dir();
    {
        ts_engine *e = open_engine(bt_env_posix(), root, &cfg);
        ts_tablet *t = create_tablet(e, root);
        cr_assert_eq(ts_tablet_close(t), BT_OK);
        cr_assert_eq(ts_engine_close(e), BT_OK);
    }
    uint64_t rng = seed_mix(0xdead5eedu + (uint64_t)d);
    int present = 0, acked_total = 0, rounds_with_acks = 0, timed_rounds = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < rounds; r++) {
        int fds[2];
        cr_assert_eq(pipe(fds), 0);
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
        if (pid == 0) {
            close(fds[0]);
            kill_child(root, &cfg, present, fds[1]);
        }
        close(fds[1]);
        /* Mostly: 5-50 ms after the child is ready (slow builds take long to
         * open).  Every fourth round: 0-20 ms after the fork, wherever the
         * child is, often while it is still recovering. */
        bool early = r % 4 == 3;
        int32_t v;
        if (early) {
            usleep((useconds_t)rng_below(&rng, 20001));
        } else {
            struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
            cr_assert_eq(poll(&pfd, 1, 60000), 1, "round %d: the child never got ready", r);
            cr_assert_eq(read(fds[0], &v, sizeof v), (ssize_t)sizeof v, "round %d: child failed", r);
            cr_assert_eq(v, -1);
            usleep((useconds_t)(5000 + rng_below(&rng, 45001)));
            timed_rounds++;
        }
        cr_assert_eq(kill(pid, SIGKILL), 0);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "round %d: the child stopped on its own (exit %d): open or a write failed", r,
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        int32_t last = -1;
        ssize_t n;
        while ((n = read(fds[0], &v, sizeof v)) == (ssize_t)sizeof v) {
            if (v == -1) continue;   /* the ready mark of an early round */
            cr_assert_eq(v, last < 0 ? present : last + 1, "round %d: acks out of order", r);
            last = v;
        }
        close(fds[0]);
        if (last >= 0) {
            acked_total = last + 1;
            rounds_with_acks++;
        }
        /* At most one write beyond the last ack was in flight. */
        int attempted = (last >= 0 ? last + 1 : present) + 1;
        char when[64];
        snprintf(when, sizeof when, "%s: after SIGKILL round %d", ts_durability_name(d), r);
        int durable = d == TS_DURABILITY_NONE || acked_total < present ? present : acked_total;
        int m = reopen_and_check(root, &cfg, durable, attempted, when);
        cr_assert_geq(m, present, "%s: rows present before the round vanished", when);
        if (getenv("BT_DURABILITY_VERBOSE"))
            fprintf(stderr, "%s: started at %d, last ack %d, present %d\n", when, present, last, m);
        present = m;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_geq(rounds_with_acks, timed_rounds / 2, "only %d of %d rounds got to write anything",
                  rounds_with_acks, timed_rounds);
    cr_assert_gt(present, 0);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 60);
    remove_tree(root);
}

Test(durability, sigkill_loses_no_acked_write, .timeout = 120)
{
    kill_rounds(TS_DURABILITY_SYNC, 24);
}

Test(durability, sigkill_group_loses_no_acked_write, .timeout = 120)
{
    kill_rounds(TS_DURABILITY_GROUP, 12);
}

Test(durability, sigkill_none_leaves_a_prefix, .timeout = 120)
{
    kill_rounds(TS_DURABILITY_NONE, 8);
}

/* ---- 4: disk full ---------------------------------------------------------------------- */

static const eng_cfg plain_cfg = { .durability = TS_DURABILITY_SYNC };

/* A tablet in a fresh directory on a fault env, whose space the tests ration. */
typedef struct full_fx {
    char *root;
    bt_env *fe;
    ts_engine *e;
    ts_tablet *t;
} full_fx;

/* Creates the tablet with cfg and writes rows 0..rows-1, each acknowledged. */
static void full_start(full_fx *x, const eng_cfg *cfg, int rows)
{
    bt_log_set_level(BT_LOG_OFF);
    x->root = make_dir();
    x->fe = bt_env_fault_new(bt_env_posix());
    x->e = open_engine(x->fe, x->root, cfg);
    x->t = create_tablet(x->e, x->root);
    for (int i = 0; i < rows; i++) cr_assert_eq(put_row(x->t, i), BT_OK, "row %d: %s", i, bt_errmsg());
}

/* Closes tablet and engine, loses what the fault env holds unsynced (power
 * loss after the close) and reopens with plain_cfg: on the same fault env,
 * or with on_posix on the POSIX env (the fault env is destroyed). */
static void full_power_cycle(full_fx *x, bool on_posix)
{
    cr_assert_eq(ts_tablet_close(x->t), BT_OK);
    cr_assert_eq(ts_engine_close(x->e), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_env_fault_drop_unsynced(x->fe), BT_OK);
    bt_env *env = x->fe;
    if (on_posix) {
        bt_env_destroy(x->fe);
        x->fe = NULL;
        env = bt_env_posix();
    }
    x->e = open_engine(env, x->root, &plain_cfg);
    x->t = open_tablet(x->e, x->root);
}

/* Closes tablet and engine (the fault env is gone by now) and removes the directory. */
static void full_finish(full_fx *x)
{
    cr_assert_eq(ts_tablet_close(x->t), BT_OK);
    cr_assert_eq(ts_engine_close(x->e), BT_OK);
    remove_tree(x->root);
}

Test(durability, enospc_in_the_commit_log, .timeout = 120)
{
    full_fx x;
    full_start(&x, &plain_cfg, 50);
    int next = 50;

    bt_env_fault_set_space(x.fe, 3000);
    int failed[8], nfailed = 0, acked = next;
    bool ok[400] = {0};
    for (int i = 0; i < 50; i++) ok[i] = true;
    while (nfailed < 3) {
        cr_assert_lt(next, 300, "the space budget never ran out");
        int rc = put_row(x.t, next);
        if (rc == BT_OK) {
            ok[next] = true;
            acked++;
        } else {
            cr_assert_eq(rc, BT_ENOSPC, "row %d: got %s (%s)", next, bt_errname(rc), bt_errmsg());
            const char *msg = bt_errmsg();
            cr_assert(strstr(msg, "full") || strstr(msg, "space"),
                      "an ENOSPC failure should say so, got \"%s\"", msg);
            failed[nfailed++] = next;
        }
        next++;
    }
    cr_assert_gt(acked, 50, "part of the budget should have been usable");
    for (int i = 0; i < next; i++) {
        int rc = read_row_rc(x.t, i);
        if (ok[i]) cr_assert_eq(rc, BT_OK, "acked row %d: %s", i, bt_errmsg());
        else cr_assert_eq(rc, BT_ENOTFOUND, "failed row %d should not be visible", i);
    }

    bt_env_fault_set_space(x.fe, UINT64_MAX);
    for (int k = 0; k < 20; k++, next++) {
        cr_assert_eq(put_row(x.t, next), BT_OK, "after space returned: %s", bt_errmsg());
        ok[next] = true;
    }
    full_power_cycle(&x, true);
    for (int i = 0; i < next; i++) {
        int rc = read_row_rc(x.t, i);
        if (ok[i]) cr_assert_eq(rc, BT_OK, "after reopen, acked row %d: %s", i, bt_errmsg());
        else cr_assert_eq(rc, BT_ENOTFOUND, "after reopen, failed row %d is visible", i);
    }
    (void)failed;
    full_finish(&x);
}

static void expect_rows(ts_tablet *t, int n, const char *when)
{
    cr_assert_eq(scan_prefix(t, n, when), n, "%s: rows missing", when);
    for (int i = 0; i < n; i++) expect_readable(t, i, when);
}

Test(durability, enospc_during_flush_loses_nothing, .timeout = 120)
{
    full_fx x;
    full_start(&x, &plain_cfg, 300);
    int n = 300;

    /* The SSTable cannot be written. */
    bt_env_fault_set_space(x.fe, 1000);
    int rc = ts_tablet_flush(x.t);
    cr_assert_eq(rc, BT_ENOSPC, "flush: %s (%s)", bt_errname(rc), bt_errmsg());
    expect_rows(x.t, n, "after the failed flush");
    rc = ts_tablet_flush(x.t);
    cr_assert_eq(rc, BT_ENOSPC, "second flush: %s (%s)", bt_errname(rc), bt_errmsg());
    expect_rows(x.t, n, "after the second failed flush");

    /* Space returns: the same tablet flushes. */
    bt_env_fault_set_space(x.fe, UINT64_MAX);
    rc = ts_tablet_flush(x.t);
    cr_assert_eq(rc, BT_OK, "flush after space returned: %s (%s)", bt_errname(rc), bt_errmsg());
    ts_tablet_stats st;
    ts_tablet_get_stats(x.t, &st);
    cr_assert_geq(st.n_sstables, 1);
    expect_rows(x.t, n, "after the flush");
    for (int k = 0; k < 50; k++, n++) cr_assert_eq(put_row(x.t, n), BT_OK);

    /* Again, and this time close and reopen after the failure. */
    bt_env_fault_set_space(x.fe, 500);
    rc = ts_tablet_flush(x.t);
    cr_assert_eq(rc, BT_ENOSPC, "flush: %s (%s)", bt_errname(rc), bt_errmsg());
    full_power_cycle(&x, false);
    expect_rows(x.t, n, "reopened after a failed flush");
    rc = ts_tablet_flush(x.t);
    cr_assert_eq(rc, BT_ENOSPC, "flush with the disk still full: %s", bt_errname(rc));
    bt_env_fault_set_space(x.fe, UINT64_MAX);
    rc = ts_tablet_flush(x.t);
    cr_assert_eq(rc, BT_OK, "flush after space returned: %s (%s)", bt_errname(rc), bt_errmsg());
    full_power_cycle(&x, true);
    expect_rows(x.t, n, "final reopen");
    full_finish(&x);
}

/* The disk fills while background minor compactions run (small memtables):
 * writes fail with an error, nothing acknowledged is lost, and once space
 * returns writes go through again without any explicit maintenance call. */
Test(durability, enospc_in_background_compaction_recovers, .timeout = 120)
{
    full_fx x;
    eng_cfg c = { .durability = TS_DURABILITY_SYNC, .memtable_bytes = 4096, .merge_trigger = 4 };
    full_start(&x, &c, 100);
    int n = 100;
    cr_assert_eq(ts_tablet_wait_idle(x.t), BT_OK);
    int acked = n, failures = 0;
    bt_env_fault_set_space(x.fe, 12000);
    for (int k = 0; k < 400 && failures < 5; k++) {
        int rc = put_row(x.t, n);
        if (rc == BT_OK) {
            cr_assert_eq(failures, 0, "row %d acknowledged after an earlier one failed", n);
            acked = ++n;
        } else {
            cr_assert_neq(rc, BT_OK);
            failures++;
        }
    }
    cr_assert_gt(failures, 0, "the disk never filled");
    expect_rows(x.t, acked, "with the disk full");

    bt_env_fault_set_space(x.fe, UINT64_MAX);
    /* Rows are written from index acked on: failed ones are retried. */
    n = acked;
    for (int k = 0; k < 200; k++, n++) {
        int rc = put_row(x.t, n);
        cr_assert_eq(rc, BT_OK, "write %d after space returned: %s (%s)", n, bt_errname(rc), bt_errmsg());
    }
    cr_assert_eq(ts_tablet_wait_idle(x.t), BT_OK, "%s", bt_errmsg());
    expect_rows(x.t, n, "after space returned");
    cr_assert_eq(ts_tablet_close(x.t), BT_OK);
    cr_assert_eq(ts_engine_close(x.e), BT_OK, "%s", bt_errmsg());
    bt_env_destroy(x.fe);
    cr_assert_eq(reopen_and_check(x.root, &c, n, n, "reopen after disk full"), n);
    remove_tree(x.root);
}

/* ---- 5: every env call of a workload fails in turn ----------------------------------------- */

/* Every call index fails in turn, except under ThreadSanitizer (some 30x
 * slower, and there to find races, not to enumerate failure points): every
 * third one. */
#if defined(__SANITIZE_THREAD__)
#define NTH_STRIDE 3
#else
#define NTH_STRIDE 1
#endif

typedef struct nth_result {
    int attempted;
    bool ok[40];
} nth_result;

/* write 20, flush, write 20, compact, with call `nth` failing (0: none). */
static nth_result nth_workload(const char *root, const eng_cfg *cfg, bt_env *fe, int code, uint64_t nth,
                               bool power_loss, uint64_t *calls)
{
    nth_result res = {0};
    ts_engine *e = open_engine(fe, root, cfg);
    ts_tablet *t = create_tablet(e, root);
    uint64_t c0 = bt_env_fault_calls(fe);
    bt_env_fault_fail_nth(fe, nth, code);
    for (int i = 0; i < 20; i++) res.ok[i] = put_row(t, i) == BT_OK;
    int frc = ts_tablet_flush(t);
    for (int i = 20; i < 40; i++) res.ok[i] = put_row(t, i) == BT_OK;
    int crc = ts_tablet_compact(t);
    res.attempted = 40;
    if (calls) *calls = bt_env_fault_calls(fe) - c0;
    bt_env_fault_fail_nth(fe, 0, code);
    if (nth == 0) {
        for (int i = 0; i < 40; i++) cr_assert(res.ok[i], "write %d failed without a fault", i);
        cr_assert_eq(frc, BT_OK, "%s", bt_errmsg());
        cr_assert_eq(crc, BT_OK, "%s", bt_errmsg());
    }
    /* Everything acknowledged is readable before the restart too. */
    char when[64];
    snprintf(when, sizeof when, "call %llu failing, before reopen", (unsigned long long)nth);
    for (int i = 0; i < 40; i++) {
        int rc = read_row_rc(t, i);
        if (res.ok[i]) cr_assert_eq(rc, BT_OK, "%s: acked row %d: %s (%s)", when, i, bt_errname(rc), bt_errmsg());
        else cr_assert(rc == BT_OK || rc == BT_ENOTFOUND, "%s: row %d: %s", when, i, bt_errname(rc));
    }
    /* Power loss after the failure: in SYNC mode every acknowledged row must
     * already be durable, whatever the failure left half done.  (The tablet is
     * idle here: compact has returned and nothing is writing.) */
    ts_tablet_wait_idle(t);
    if (power_loss) cr_assert_eq(bt_env_fault_drop_unsynced(fe), BT_OK);
    ts_tablet_close(t);
    ts_engine_close(e);   /* may report the injected failure, or dead files */
    return res;
}

static void nth_check(const char *root, const eng_cfg *cfg, const nth_result *res, uint64_t nth)
{
    char when[64];
    snprintf(when, sizeof when, "call %llu failing, after reopen", (unsigned long long)nth);
    for (int round = 0; round < 2; round++) {
        ts_engine *e = open_engine(bt_env_posix(), root, cfg);
        ts_tablet *t = NULL;
        int orc = try_open_tablet(e, root, &t);
        cr_assert_eq(orc, BT_OK, "%s: ts_tablet_open: %s (%s)", when, bt_errname(orc), bt_errmsg());
        for (int i = 0; i < res->attempted; i++) {
            int rc = read_row_rc(t, i);
            if (res->ok[i]) cr_assert_eq(rc, BT_OK, "%s: acked row %d: %s (%s)", when, i, bt_errname(rc), bt_errmsg());
            else cr_assert(rc == BT_OK || rc == BT_ENOTFOUND, "%s: row %d: %s", when, i, bt_errname(rc));
        }
        /* The recovered tablet works: a write, a flush and a compaction. */
        if (round == 0) {
            cr_assert_eq(put_row(t, 1000), BT_OK, "%s: %s", when, bt_errmsg());
            cr_assert_eq(ts_tablet_flush(t), BT_OK, "%s: flush: %s", when, bt_errmsg());
            cr_assert_eq(ts_tablet_compact(t), BT_OK, "%s: compact: %s", when, bt_errmsg());
        } else {
            expect_readable(t, 1000, when);
        }
        cr_assert_eq(ts_tablet_close(t), BT_OK);
        cr_assert_eq(ts_engine_close(e), BT_OK, "%s: %s", when, bt_errmsg());
    }
}

static void fail_every_call(const eng_cfg *cfg, int code, bool power_loss)
{
    bt_log_set_level(BT_LOG_OFF);
    uint64_t total = 0;
    {
        char *root = make_dir();
        bt_env *fe = bt_env_fault_new(bt_env_posix());
        nth_result res = nth_workload(root, cfg, fe, code, 0, power_loss, &total);
        bt_env_destroy(fe);
        nth_check(root, cfg, &res, 0);
        remove_tree(root);
    }
    cr_assert_gt(total, 60, "the workload makes %llu env calls", (unsigned long long)total);
    /* With background compactions the calls' order varies a little from run
     * to run; a few extra indexes cover the longer runs. */
    for (uint64_t nth = 1; nth <= total + 10; nth += NTH_STRIDE) {
        char *root = make_dir();
        bt_env *fe = bt_env_fault_new(bt_env_posix());
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        nth_result res = nth_workload(root, cfg, fe, code, nth, power_loss, NULL);
        bt_env_destroy(fe);
        nth_check(root, cfg, &res, nth);
        remove_tree(root);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (getenv("BT_DURABILITY_VERBOSE"))
            fprintf(stderr, "fail call %llu of %llu: %.1f ms\n", (unsigned long long)nth,
                    (unsigned long long)total,
                    (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6);
    }
}

/* Small memtables: minor and merging compactions run in the background too. */
static const eng_cfg nth_bg_cfg = { .durability = TS_DURABILITY_SYNC, .memtable_bytes = 1024,
                                    .merge_trigger = 2 };

Test(durability, failing_each_env_call_loses_no_acked_write_eio, .timeout = 120)
{
    fail_every_call(&plain_cfg, BT_EIO, false);
}

Test(durability, failing_each_env_call_loses_no_acked_write_enospc, .timeout = 120)
{
    fail_every_call(&plain_cfg, BT_ENOSPC, false);
}

Test(durability, failing_each_env_call_with_background_compactions, .timeout = 120)
{
    fail_every_call(&nth_bg_cfg, BT_EIO, false);
}

Test(durability, failing_each_env_call_then_power_loss, .timeout = 120)
{
    fail_every_call(&plain_cfg, BT_EIO, true);
}

Test(durability, failing_each_env_call_with_background_compactions_then_power_loss, .timeout = 120)
{
    fail_every_call(&nth_bg_cfg, BT_EIO, true);
}

/* ---- 6: damaged commit log tails ------------------------------------------------------------ */

typedef struct log_file_ref {
    char name[256];
    uint64_t number;
    uint64_t size;
} log_file_ref;

/* The next *.log entry of open directory d (of dir): its path (caller frees)
 * and, with name, its file name; NULL at the end. */
static char *next_log_path(DIR *d, const char *dir, const char **name)
{
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".log") != 0) continue;
        if (name) *name = de->d_name;
        return path_join(dir, de->d_name);
    }
    return NULL;
}

/* The newest non-empty log file in dir. */
static log_file_ref newest_log(const char *dir)
{
    log_file_ref best = {0};
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    const char *name;
    char *p;
    while ((p = next_log_path(d, dir, &name)) != NULL) {
        struct stat st;
        cr_assert_eq(stat(p, &st), 0);
        free(p);
        uint64_t num = strtoull(name, NULL, 10);
        if (st.st_size > 0 && num >= best.number) {
            snprintf(best.name, sizeof best.name, "%s", name);
            best.number = num;
            best.size = (uint64_t)st.st_size;
        }
    }
    closedir(d);
    cr_assert_gt(best.size, 0, "no log file with data in %s", dir);
    return best;
}

static void remove_logs(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    char *p;
    while ((p = next_log_path(d, dir, NULL)) != NULL) {
        cr_assert_eq(unlink(p), 0);
        free(p);
    }
    closedir(d);
}

/* Opens root with `log_path` holding data[0..len); asserts the tablet holds
 * exactly rows 0..expect-1. */
static void expect_log_prefix(const char *root, const char *log_dir, const char *log_path,
                              const uint8_t *data, size_t len, int expect, const char *what)
{
    remove_logs(log_dir);
    write_file(log_path, data, len);
    ts_engine *e = open_engine(bt_env_posix(), root, &plain_cfg);
    ts_tablet *t = NULL;
    int rc = try_open_tablet(e, root, &t);
    cr_assert_eq(rc, BT_OK, "%s: open failed: %s (%s)", what, bt_errname(rc), bt_errmsg());
    int m = scan_prefix(t, expect + 1, what);
    cr_assert_eq(m, expect, "%s: %d rows present, want exactly %d", what, m, expect);
    if (expect > 0) expect_readable(t, expect - 1, what);
    cr_assert_eq(read_row_rc(t, expect), BT_ENOTFOUND, "%s: row %d past the damage", what, expect);
    cr_assert_eq(ts_tablet_close(t), BT_OK);
    cr_assert_eq(ts_engine_close(e), BT_OK);
}

Test(durability, damaged_log_tail_keeps_the_prefix_before_it, .timeout = 120)
{
    bt_log_set_level(BT_LOG_OFF);
    char *root = make_dir();
    char *log_dir = path_join(root, "log");
    enum { ROWS = 40 };
    {
        ts_engine *e = open_engine(bt_env_posix(), root, &plain_cfg);
        ts_tablet *t = create_tablet(e, root);
        for (int i = 0; i < ROWS; i++) cr_assert_eq(put_row(t, i), BT_OK);
        cr_assert_eq(ts_tablet_close(t), BT_OK);   /* no flush: all rows only in the log */
        cr_assert_eq(ts_engine_close(e), BT_OK);
    }
    log_file_ref lf = newest_log(log_dir);
    char *log_path = path_join(log_dir, lf.name);
    size_t len;
    uint8_t *orig = read_file(log_path, &len);
    uint8_t *buf = malloc(len);
    cr_assert_not_null(buf);

    /* Record boundaries, parsed independently: fixed32 checksum, fixed32 length, body. */
    size_t ends[ROWS + 1];
    int nrec = 0;
    for (size_t off = 0; off < len;) {
        cr_assert_geq(len - off, 8u);
        size_t body = bt_get_fixed32(orig + off + 4);
        off += 8 + body;
        cr_assert_leq(off, len);
        cr_assert_lt(nrec, ROWS + 1);
        ends[nrec++] = off;
    }
    cr_assert_eq(nrec, ROWS, "one record per row mutation");
    expect_log_prefix(root, log_dir, log_path, orig, len, ROWS, "undamaged");

    uint64_t rng = 0x7a11u;
    char what[96];
    /* Truncation at every offset of the last three records, near every
     * boundary, and at random offsets. */
    size_t cuts[600];
    int ncuts = 0;
    for (size_t off = ends[ROWS - 3]; off < len; off++) cuts[ncuts++] = off;
    for (int r = 0; r < ROWS - 3; r++) {
        size_t b = ends[r];
        cuts[ncuts++] = b - 1;
        cuts[ncuts++] = b + 1;
        cuts[ncuts++] = b + 7;
        if (r % 4 == 0) cuts[ncuts++] = b;
    }
    for (int k = 0; k < 20; k++) cuts[ncuts++] = (size_t)rng_below(&rng, len);
    cr_assert_leq(ncuts, 600);
    for (int k = 0; k < ncuts; k++) {
        size_t cut = cuts[k];
        int expect = 0;
        while (expect < ROWS && ends[expect] <= cut) expect++;
        snprintf(what, sizeof what, "log truncated to %zu of %zu bytes", cut, len);
        expect_log_prefix(root, log_dir, log_path, orig, cut, expect, what);
    }

    /* Garbage over the tail (same length), from boundaries and from inside records. */
    for (int k = 0; k < 60; k++) {
        size_t from = k < ROWS ? (k % 2 ? ends[k] : ends[k] - 1 - rng_below(&rng, 6))
                               : (size_t)rng_below(&rng, len);
        if (from >= len) continue;
        memcpy(buf, orig, len);
        for (size_t i = from; i < len; i++) buf[i] = (uint8_t)rng_next(&rng);
        buf[from] = (uint8_t)(orig[from] ^ 0xa5);   /* it really differs at `from` */
        int expect = 0;
        while (expect < ROWS && ends[expect] <= from) expect++;
        snprintf(what, sizeof what, "garbage over the log from %zu of %zu", from, len);
        expect_log_prefix(root, log_dir, log_path, buf, len, expect, what);
    }

    /* One flipped byte inside a record: replay stops at that record. */
    for (int k = 0; k < 25; k++) {
        size_t at = (size_t)rng_below(&rng, len);
        memcpy(buf, orig, len);
        buf[at] ^= (uint8_t)(1u << (k % 8));
        int expect = 0;
        while (expect < ROWS && ends[expect] <= at) expect++;
        snprintf(what, sizeof what, "log byte %zu of %zu flipped", at, len);
        expect_log_prefix(root, log_dir, log_path, buf, len, expect, what);
    }

    if (getenv("BT_DURABILITY_VERBOSE"))
        fprintf(stderr, "log of %zu bytes, %d records: %d truncations, 60 garbage tails, 25 flips\n",
                len, nrec, ncuts);
    free(buf);
    free(orig);
    free(log_path);
    free(log_dir);
    remove_tree(root);
}

/* ---- 7: damaged SSTables --------------------------------------------------------------------- */

static void find_sst(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *de;
    int found = 0;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".sst") == 0) {
            snprintf(out, cap, "%s/%s", dir, de->d_name);
            found++;
        }
    }
    closedir(d);
    cr_assert_eq(found, 1, "expected exactly one SSTable in %s", dir);
}

/* Opens the tablet over a damaged SSTable: open fails with BT_ECORRUPT, or
 * each read gives the right row or BT_ECORRUPT.  Returns 1 if the damage
 * was detected somewhere. */
static int check_damaged(const char *root, int rows, const char *what)
{
    ts_engine *e = open_engine(bt_env_posix(), root, &plain_cfg);
    ts_tablet *t = NULL;
    int rc = try_open_tablet(e, root, &t);
    if (rc != BT_OK) {
        cr_assert_eq(rc, BT_ECORRUPT, "%s: open failed with %s (%s)", what, bt_errname(rc), bt_errmsg());
        cr_assert_eq(ts_engine_close(e), BT_OK);
        return 1;
    }
    int detected = 0;
    ts_scanner *s;
    rc = ts_tablet_scan(t, NULL, &s);
    if (rc == BT_OK) {
        int m = 0;
        ts_row r;
        while ((rc = ts_scanner_next(s, &r)) == BT_OK) {
            cr_assert_lt(m, rows, "%s: scan returned too many rows", what);
            expect_row_content(&r, m, what);
            m++;
        }
        if (rc == BT_ENOTFOUND) cr_assert_eq(m, rows, "%s: scan silently lost rows", what);
        else cr_assert_eq(rc, BT_ECORRUPT, "%s: scan: %s (%s)", what, bt_errname(rc), bt_errmsg());
        ts_scanner_close(s);
    } else {
        cr_assert_eq(rc, BT_ECORRUPT, "%s: scan: %s (%s)", what, bt_errname(rc), bt_errmsg());
    }
    detected |= rc == BT_ECORRUPT;
    for (int i = 0; i < rows; i++) {
        rc = read_row_rc(t, i);
        cr_assert(rc == BT_OK || rc == BT_ECORRUPT, "%s: row %d: %s (%s)", what, i, bt_errname(rc),
                  bt_errmsg());
        detected |= rc == BT_ECORRUPT;
    }
    cr_assert_eq(ts_tablet_close(t), BT_OK);
    cr_assert_eq(ts_engine_close(e), BT_OK);
    return detected;
}

Test(durability, damaged_sstable_or_manifest_is_reported_never_misread, .timeout = 120)
{
    bt_log_set_level(BT_LOG_OFF);
    char *root = make_dir();
    enum { ROWS = 150 };
    {
        ts_engine *e = open_engine(bt_env_posix(), root, &plain_cfg);
        ts_tablet *t = create_tablet(e, root);
        for (int i = 0; i < ROWS; i++) cr_assert_eq(put_row(t, i), BT_OK);
        cr_assert_eq(ts_tablet_flush(t), BT_OK, "%s", bt_errmsg());
        cr_assert_eq(ts_tablet_close(t), BT_OK);
        cr_assert_eq(ts_engine_close(e), BT_OK);
    }
    /* Only the SSTable holds the rows now: the log files are gone or stale. */
    char *tdir = path_join(root, "tablet");
    char sst[512];
    find_sst(tdir, sst, sizeof sst);
    size_t len;
    uint8_t *orig = read_file(sst, &len);
    uint8_t *buf = malloc(len);
    cr_assert_not_null(buf);
    cr_assert_eq(check_damaged(root, ROWS, "undamaged"), 0);

    uint64_t rng = 0x55ab1eu;
    char what[96];
    int cases = 0, detected = 0;
    size_t stride = len / 300 + 1;
    for (size_t at = 0; at < len; at += at + 200 >= len ? 1 : stride) {
        memcpy(buf, orig, len);
        buf[at] ^= (uint8_t)(1u << rng_below(&rng, 8));
        write_file(sst, buf, len);
        snprintf(what, sizeof what, "sstable byte %zu of %zu flipped", at, len);
        detected += check_damaged(root, ROWS, what);
        cases++;
    }
    write_file(sst, orig, len);
    cr_assert_eq(check_damaged(root, ROWS, "restored"), 0);

    /* A damaged manifest is refused, never half read. */
    char *mpath = path_join(tdir, "MANIFEST");
    size_t mlen;
    uint8_t *morig = read_file(mpath, &mlen);
    uint8_t *mbuf = malloc(mlen);
    cr_assert_not_null(mbuf);
    for (size_t at = 0; at < mlen; at++) {
        memcpy(mbuf, morig, mlen);
        mbuf[at] ^= (uint8_t)(1u << (at % 8));
        write_file(mpath, mbuf, mlen);
        ts_engine *e = open_engine(bt_env_posix(), root, &plain_cfg);
        ts_tablet *t = NULL;
        int rc = try_open_tablet(e, root, &t);
        cr_assert_eq(rc, BT_ECORRUPT, "manifest byte %zu of %zu flipped: open gave %s", at, mlen,
                     bt_errname(rc));
        cr_assert_eq(ts_engine_close(e), BT_OK);
    }
    write_file(mpath, morig, mlen);
    cr_assert_eq(check_damaged(root, ROWS, "manifest restored"), 0);
    free(mbuf);
    free(morig);
    free(mpath);
    if (getenv("BT_DURABILITY_VERBOSE"))
        fprintf(stderr, "sstable of %zu bytes: %d of %d flips detected\n", len, detected, cases);
    cr_assert_gt(detected, cases * 9 / 10, "only %d of %d flips were detected", detected, cases);
    free(buf);
    free(orig);
    free(tdir);
    remove_tree(root);
}

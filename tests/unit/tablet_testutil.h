/* tests/unit/tablet_testutil.h: helpers shared by test_tablet.c and
 * test_tablet_model.c (not a test binary of its own: only test_*.c are).
 *
 *   - a fixture: a fresh mkdtemp directory with ROOT/log (the commit log) and
 *     ROOT/t1 (the tablet), an engine with a fake clock, clean and "crash"
 *     reopen (the crash copies the synced tablet and log directories aside
 *     while the tablet is open and reopens from the copies, so the commit log
 *     replay is what brings unflushed data back);
 *   - mutation builders (SET, DEL, DELFAM, DELROW) and MUT();
 *   - a text rendering of scan / read results ("row: fam:qual@ts=value ...\n",
 *     bytes outside printable ASCII and the separators as \xHH) so results
 *     are compared as strings with a readable diff on failure;
 *   - tu_sst_scan: reads a tablet directory's SSTables directly (entries,
 *     deletion markers, which families each file holds); tu_sst_open /
 *     tu_sst_next walk them one file at a time.
 * Every function is static and marked unused so each test file takes what
 * it needs under -Wall -Werror.
 */
#ifndef BT_TESTS_TABLET_TESTUTIL_H
#define BT_TESTS_TABLET_TESTUTIL_H

#include <criterion/criterion.h>

#include <dirent.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/status.h"
#include "sstable/table.h"
#include "tabletserver/ikey.h"
#include "tabletserver/tablet.h"
#include "testutil.h"

#define TU static __attribute__((unused))

/* ---- directories ------------------------------------------------------------ */

/* Copies the regular files of flat directory `from` into new directory `to`. */
TU void tu_copy_flat(const char *from, const char *to)
{
    cr_assert_eq(mkdir(to, 0755), 0, "mkdir %s", to);
    DIR *d = opendir(from);
    cr_assert_not_null(d, "opendir %s", from);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char src[512], dst[512];
        snprintf(src, sizeof src, "%s/%s", from, de->d_name);
        snprintf(dst, sizeof dst, "%s/%s", to, de->d_name);
        struct stat st;
        if (stat(src, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
        cr_assert(in && out, "copy %s -> %s", src, dst);
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0) cr_assert_eq(fwrite(buf, 1, n, out), n);
        fclose(in);
        cr_assert_eq(fclose(out), 0);
    }
    closedir(d);
}

/* ---- fixture ------------------------------------------------------------------ */

#define TU_BASE_NOW INT64_C(1000000000)
static _Atomic int64_t tu_now = TU_BASE_NOW;
TU int64_t tu_clock(void) { return atomic_load(&tu_now); }
TU void tu_set_clock(int64_t v) { atomic_store(&tu_now, v); }

typedef struct tu_fx {
    char root[64];
    char log[128];
    char tdir[128];
    ts_engine_options eo;
    ts_engine *e;
    ts_tablet *t;
} tu_fx;

/* A fresh directory and engine options (nothing opened yet). */
TU void tu_init(tu_fx *f, ts_durability d)
{
    memset(f, 0, sizeof *f);
    strcpy(f->root, "/tmp/bt-tablet-XXXXXX");
    cr_assert_not_null(mkdtemp(f->root), "mkdtemp");
    snprintf(f->log, sizeof f->log, "%s/log", f->root);
    snprintf(f->tdir, sizeof f->tdir, "%s/t1", f->root);
    f->eo.log_dir = f->log;
    f->eo.durability = d;
    f->eo.clock_us = tu_clock;
    tu_set_clock(TU_BASE_NOW);
}

TU void tu_engine_open(tu_fx *f)
{
    f->eo.log_dir = f->log;
    int rc = ts_engine_open(&f->eo, &f->e);
    cr_assert_eq(rc, BT_OK, "ts_engine_open: %s", bt_errmsg());
}

/* Creates tablet 1 in ROOT/t1 over [start, end) (NULL = unbounded). */
TU void tu_create(tu_fx *f, const ts_schema *s, const char *start, const char *end)
{
    int rc = ts_tablet_create(f->e, f->tdir, 1, s, (const uint8_t *)start, start ? strlen(start) : 0,
                              (const uint8_t *)end, end ? strlen(end) : 0, &f->t);
    cr_assert_eq(rc, BT_OK, "ts_tablet_create: %s", bt_errmsg());
}

TU void tu_start(tu_fx *f, const ts_schema *s, ts_durability d)
{
    tu_init(f, d);
    tu_engine_open(f);
    tu_create(f, s, NULL, NULL);
}

/* tu_start in TS_DURABILITY_NONE with a smaller memtable and merge trigger
 * (0 leaves the engine's default), so compactions run in the background. */
TU void tu_start_tuned(tu_fx *f, const ts_schema *s, size_t memtable_bytes, int merge_trigger)
{
    tu_init(f, TS_DURABILITY_NONE);
    f->eo.memtable_bytes = memtable_bytes;
    f->eo.merge_trigger = merge_trigger;
    tu_engine_open(f);
    tu_create(f, s, NULL, NULL);
}

TU void tu_close(tu_fx *f)
{
    if (f->t) cr_assert_eq(ts_tablet_close(f->t), BT_OK);
    f->t = NULL;
    if (f->e) cr_assert_eq(ts_engine_close(f->e), BT_OK, "ts_engine_close: %s", bt_errmsg());
    f->e = NULL;
}

TU void tu_finish(tu_fx *f)
{
    tu_close(f);
    test_rm_rf(f->root);
}

TU void tu_open_tablet(tu_fx *f)
{
    int rc = ts_tablet_open(f->e, f->tdir, &f->t);
    cr_assert_eq(rc, BT_OK, "ts_tablet_open: %s", bt_errmsg());
}

/* Closes the tablet and opens it again in the same engine (and commit log). */
TU void tu_reopen_tablet(tu_fx *f)
{
    cr_assert_eq(ts_tablet_close(f->t), BT_OK);
    f->t = NULL;
    tu_open_tablet(f);
}

/* Orderly: close tablet and engine, open both again. */
TU void tu_reopen(tu_fx *f)
{
    tu_close(f);
    tu_engine_open(f);
    tu_open_tablet(f);
}

/* A crash: the state on disk while the tablet is open (after the log is
 * synced and background work is idle) is what the next process sees. */
TU void tu_crash_reopen(tu_fx *f)
{
    cr_assert_eq(ts_tablet_wait_idle(f->t), BT_OK);
    cr_assert_eq(ts_log_sync(ts_engine_log(f->e)), BT_OK);
    char snap[160], st[200], sl[200];
    snprintf(snap, sizeof snap, "%s/crash", f->root);
    snprintf(st, sizeof st, "%s/t1", snap);
    snprintf(sl, sizeof sl, "%s/log", snap);
    cr_assert_eq(mkdir(snap, 0755), 0);
    tu_copy_flat(f->tdir, st);
    tu_copy_flat(f->log, sl);
    tu_close(f);
    test_rm_rf(f->tdir);
    test_rm_rf(f->log);
    cr_assert_eq(rename(st, f->tdir), 0);
    cr_assert_eq(rename(sl, f->log), 0);
    test_rm_rf(snap);
    tu_engine_open(f);
    tu_open_tablet(f);
}

TU void tu_flush(ts_tablet *t)
{
    cr_assert_eq(ts_tablet_flush(t), BT_OK, "flush: %s", bt_errmsg());
}

TU void tu_compact(ts_tablet *t)
{
    cr_assert_eq(ts_tablet_compact(t), BT_OK, "compact: %s", bt_errmsg());
}

/* ---- mutations ---------------------------------------------------------------- */

TU ts_mutation tu_set(const char *fam, const void *q, size_t qn, int64_t ts, const void *v, size_t vn)
{
    return (ts_mutation){.type = TS_SET_CELL, .family = fam, .family_len = strlen(fam), .qualifier = q,
                         .qualifier_len = qn, .timestamp = ts, .value = v, .value_len = vn};
}

TU ts_mutation tu_del(const char *fam, const void *q, size_t qn, int64_t from, int64_t to)
{
    return (ts_mutation){.type = TS_DELETE_CELLS, .family = fam, .family_len = strlen(fam), .qualifier = q,
                         .qualifier_len = qn, .ts_from = from, .ts_to = to};
}

TU ts_mutation tu_delfam(const char *fam)
{
    return (ts_mutation){.type = TS_DELETE_FAMILY, .family = fam, .family_len = strlen(fam)};
}

TU ts_mutation tu_delrow(void)
{
    return (ts_mutation){.type = TS_DELETE_ROW};
}

#define SET(f, q, ts, v) tu_set((f), (q), strlen(q), (ts), (v), strlen(v))
#define DEL(f, q, from, to) tu_del((f), (q), strlen(q), (from), (to))
#define DELFAM(f) tu_delfam(f)
#define DELROW() tu_delrow()

/* Applies the listed mutations to C-string row `row`, asserting success. */
#define MUT(t, row, ...)                                                                      \
    do {                                                                                      \
        ts_mutation mut_[] = {__VA_ARGS__};                                                   \
        int mrc_ = ts_tablet_mutate_row((t), (const uint8_t *)(row), strlen(row), mut_,       \
                                        (int)(sizeof mut_ / sizeof mut_[0]));                  \
        cr_assert_eq(mrc_, BT_OK, "mutate row %s: %s (%s)", (row), bt_errname(mrc_), bt_errmsg()); \
    } while (0)

/* ---- text rendering -------------------------------------------------------------- */

typedef struct tu_sb {
    char *p;
    size_t n, cap;
} tu_sb;

TU void tu_sb_reserve(tu_sb *b, size_t extra)
{
    if (b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) cap *= 2;
    b->p = realloc(b->p, cap);
    cr_assert_not_null(b->p);
    b->cap = cap;
}

TU void tu_sb_printf(tu_sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    tu_sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

TU void tu_sb_bytes(tu_sb *b, const void *p, size_t n)
{
    const uint8_t *s = p;
    tu_sb_reserve(b, 4 * n);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c > 0x20 && c < 0x7f && !strchr(" :@=\\", c)) b->p[b->n++] = (char)c;
        else b->n += (size_t)sprintf(b->p + b->n, "\\x%02x", c);
    }
    b->p[b->n] = '\0';
}

/* Takes the text (caller frees); "" if nothing was added. */
TU char *tu_sb_take(tu_sb *b)
{
    if (!b->p) return strdup("");
    char *p = b->p;
    memset(b, 0, sizeof *b);
    return p;
}

TU void tu_sb_cell(tu_sb *b, const char *fam, size_t fl, const void *q, size_t ql, int64_t ts,
                   const void *v, size_t vl)
{
    tu_sb_printf(b, " ");
    tu_sb_bytes(b, fam, fl);
    tu_sb_printf(b, ":");
    tu_sb_bytes(b, q, ql);
    tu_sb_printf(b, "@%lld=", (long long)ts);
    tu_sb_bytes(b, v, vl);
}

TU void tu_sb_row(tu_sb *b, const ts_row *r)
{
    tu_sb_bytes(b, r->key, r->key_len);
    tu_sb_printf(b, ":");
    for (size_t i = 0; i < r->n_cells; i++) {
        const ts_cell *c = &r->cells[i];
        tu_sb_cell(b, c->family, c->family_len, c->qualifier, c->qualifier_len, c->timestamp,
                   c->value, c->value_len);
    }
    tu_sb_printf(b, "\n");
}

/* Every row of a scan as text (caller frees). */
TU char *tu_scan_text(ts_tablet *t, const ts_read_options *o)
{
    ts_scanner *s;
    int rc = ts_tablet_scan(t, o, &s);
    cr_assert_eq(rc, BT_OK, "ts_tablet_scan: %s (%s)", bt_errname(rc), bt_errmsg());
    tu_sb b = {0};
    ts_row r;
    while ((rc = ts_scanner_next(s, &r)) == BT_OK) tu_sb_row(&b, &r);
    cr_assert_eq(rc, BT_ENOTFOUND, "ts_scanner_next: %s (%s)", bt_errname(rc), bt_errmsg());
    ts_scanner_close(s);
    return tu_sb_take(&b);
}

/* One row via ts_tablet_read_row as text; "" when BT_ENOTFOUND. */
TU char *tu_read_text(ts_tablet *t, const void *row, size_t n, const ts_read_options *o)
{
    ts_row r;
    int rc = ts_tablet_read_row(t, row, n, o, &r);
    if (rc == BT_ENOTFOUND) {
        cr_assert_eq(r.n_cells, 0);
        return strdup("");
    }
    cr_assert_eq(rc, BT_OK, "ts_tablet_read_row: %s (%s)", bt_errname(rc), bt_errmsg());
    cr_assert_gt(r.n_cells, 0, "read_row returned BT_OK with no cells");
    cr_assert_eq(r.key_len, n);
    cr_assert_eq(memcmp(r.key, row, n), 0, "read_row returned another row's key");
    tu_sb b = {0};
    tu_sb_row(&b, &r);
    ts_row_free(&r);
    return tu_sb_take(&b);
}

/* Asserts got == want, printing the first difference; frees got. */
TU void tu_expect_text(char *got, const char *want, const char *what)
{
    if (strcmp(got, want) != 0) {
        size_t i = 0;
        while (got[i] && got[i] == want[i]) i++;
        size_t from = i > 80 ? i - 80 : 0;
        cr_assert(false, "%s: results differ at byte %zu\n  got:  ...%.240s\n  want: ...%.240s", what, i,
                  got + from, want + from);
    }
    free(got);
}

TU void tu_expect_scan(ts_tablet *t, const ts_read_options *o, const char *want, const char *what)
{
    tu_expect_text(tu_scan_text(t, o), want, what);
}

TU void tu_expect_read(ts_tablet *t, const char *row, const ts_read_options *o, const char *want,
                       const char *what)
{
    tu_expect_text(tu_read_text(t, row, strlen(row), o), want, what);
}

/* ---- SSTables on disk --------------------------------------------------------------- */

#define TU_MAX_FILES 128
typedef struct tu_sst_stat {
    int files;
    uint64_t entries, puts, markers;
    /* per file: bit (family[0] - 'a') for puts and family/column markers of
     * single-letter families, bit 31 for row markers */
    uint32_t fams[TU_MAX_FILES];
} tu_sst_stat;

/* What one SSTable holds. */
typedef struct tu_sst_file {
    uint64_t entries, puts, markers;
    uint64_t fam_puts;  /* puts of the family asked for (none if not asked) */
    uint32_t fams;      /* as tu_sst_stat.fams */
} tu_sst_file;

/* Reads every key of the SSTable at path; fam_puts counts the puts of family
 * `fam` (NULL: none). */
TU void tu_sst_read_file(const char *path, const char *fam, tu_sst_file *out)
{
    memset(out, 0, sizeof *out);
    sst_reader *r;
    cr_assert_eq(sst_reader_open(bt_env_posix(), path, NULL, &r), BT_OK, "open %s: %s", path, bt_errmsg());
    sst_iter *it = sst_reader_iter(r, false);
    cr_assert_not_null(it);
    for (sst_iter_seek_first(it); sst_iter_valid(it); sst_iter_next(it)) {
        size_t kn;
        const uint8_t *k = sst_iter_key(it, &kn);
        ts_ikey ik;
        cr_assert(ts_ikey_parse(k, kn, &ik), "%s: malformed key", path);
        out->entries++;
        if (ik.type == TS_KT_PUT) out->puts++;
        else out->markers++;
        if (ik.type == TS_KT_DELETE_ROW) out->fams |= 1u << 31;
        else if (ik.family[0] >= 'a' && ik.family[0] < 'a' + 31) out->fams |= 1u << (ik.family[0] - 'a');
        if (fam && ik.type == TS_KT_PUT && ik.family_len == strlen(fam) + 2 &&
            memcmp(ik.family, fam, strlen(fam)) == 0)
            out->fam_puts++;
    }
    cr_assert_eq(sst_iter_status(it), BT_OK);
    sst_iter_destroy(it);
    sst_reader_unref(r);
}

/* The *.sst files of a directory, each read in turn:
 *     tu_sst_dir it;
 *     for (tu_sst_open(&it, dir, fam); tu_sst_next(&it);) use it.path, it.file */
typedef struct tu_sst_dir {
    DIR *d;
    const char *dir, *fam;
    char path[512];
    tu_sst_file file;
} tu_sst_dir;

TU void tu_sst_open(tu_sst_dir *it, const char *dir, const char *fam)
{
    memset(it, 0, sizeof *it);
    it->d = opendir(dir);
    cr_assert_not_null(it->d, "opendir %s", dir);
    it->dir = dir;
    it->fam = fam;
}

/* Reads the next SSTable into it->path / it->file; false (directory closed) at the end. */
TU bool tu_sst_next(tu_sst_dir *it)
{
    struct dirent *de;
    while ((de = readdir(it->d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 4 || strcmp(de->d_name + l - 4, ".sst") != 0) continue;
        snprintf(it->path, sizeof it->path, "%s/%s", it->dir, de->d_name);
        tu_sst_read_file(it->path, it->fam, &it->file);
        return true;
    }
    closedir(it->d);
    it->d = NULL;
    return false;
}

/* Reads every *.sst in dir (a tablet's own files). */
TU void tu_sst_scan(const char *dir, tu_sst_stat *st)
{
    memset(st, 0, sizeof *st);
    tu_sst_dir it;
    for (tu_sst_open(&it, dir, NULL); tu_sst_next(&it);) {
        cr_assert_lt(st->files, TU_MAX_FILES);
        st->entries += it.file.entries;
        st->puts += it.file.puts;
        st->markers += it.file.markers;
        st->fams[st->files++] = it.file.fams;
    }
}

/* The path of the one SSTable in dir whose family mask (as in tu_sst_stat) is `fams`. */
TU void tu_sst_find(const char *dir, uint32_t fams, char *out, size_t cap)
{
    int found = 0;
    tu_sst_dir it;
    for (tu_sst_open(&it, dir, NULL); tu_sst_next(&it);) {
        if (it.file.fams != fams) continue;
        snprintf(out, cap, "%s", it.path);
        found++;
    }
    cr_assert_eq(found, 1, "%d SSTables in %s with families %x", found, dir, fams);
}

/* Number of puts in dir's SSTables whose family is `fam`. */
TU uint64_t tu_sst_count_family(const char *dir, const char *fam)
{
    uint64_t n = 0;
    tu_sst_dir it;
    for (tu_sst_open(&it, dir, fam); tu_sst_next(&it);) n += it.file.fam_puts;
    return n;
}

/* A schema with families a, b, c (no GC) in the default group. */
TU void tu_schema_abc(ts_schema *s)
{
    ts_schema_init(s);
    cr_assert_eq(ts_schema_add_family(s, "a", 0, 0), BT_OK);
    cr_assert_eq(ts_schema_add_family(s, "b", 0, 0), BT_OK);
    cr_assert_eq(ts_schema_add_family(s, "c", 0, 0), BT_OK);
}

/* tu_start over the tu_schema_abc schema. */
TU void tu_start_abc(tu_fx *f, ts_durability d)
{
    ts_schema s;
    tu_schema_abc(&s);
    tu_start(f, &s, d);
}

#endif

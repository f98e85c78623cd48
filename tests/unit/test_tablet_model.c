/* tests/unit/test_tablet_model.c: the tablet engine's reads: GC policies,
 * read filters (hand-written expectations), and the engine against a
 * reference model.
 *
 * The model keeps, per column, every put (timestamp, sequence, value) and
 * every DeleteCells range with its sequence, and per row / row+family the
 * newest DeleteRow / DeleteFamily sequence.  A put is visible when no marker
 * with a higher sequence covers it, and it is the newest-sequence put of its
 * timestamp (ikey.h: deletion is by sequence number).  Sequences are counted
 * per mutation element, as the engine numbers them.  The read filters are
 * applied in the order scan.c documents: columns and column range, timestamp
 * range, versions, value range, strip value, cells per row; rows without a
 * cell are skipped and do not count towards row_limit.
 *
 * Two tests: 1000 rows over the memtable and several SSTables, and a
 * randomized run of 3000 operations (every mutation type, flushes, major
 * compactions, background compactions of a small memtable, orderly and
 * crash reopens) compared with full scans, point reads and random filters
 * after every phase.
 */
#include "tablet_testutil.h"

/* ---- GC policies ----------------------------------------------------------------------------- */

/* A tablet over families a, b, c (no GC) and `fam` with the given GC policy. */
static void start_with_gc_family(tu_fx *f, const char *fam, uint32_t max_versions, int64_t max_age_us)
{
    ts_schema s;
    tu_schema_abc(&s);
    cr_assert_eq(ts_schema_add_family(&s, fam, max_versions, max_age_us), BT_OK);
    tu_start(f, &s, TS_DURABILITY_NONE);
}

Test(tablet_reads, gc_max_versions)
{
    tu_fx f;
    start_with_gc_family(&f, "v", 2, 0);
    for (int ts = 1; ts <= 5; ts++) {
        char v[8];
        snprintf(v, sizeof v, "v%d", ts);
        MUT(f.t, "r", SET("v", "q", ts, v), SET("a", "q", ts, v));
        if (ts == 3) tu_flush(f.t);
    }
    const char *want = "r: a:q@5=v5 a:q@4=v4 a:q@3=v3 a:q@2=v2 a:q@1=v1 v:q@5=v5 v:q@4=v4\n";
    tu_expect_read(f.t, "r", NULL, want, "read-time GC");
    ts_read_options o = {.versions = 1};
    tu_expect_read(f.t, "r", &o, "r: a:q@5=v5 v:q@5=v5\n", "versions=1");
    ts_read_options ov = {.ts_from = 1, .ts_to = 3};
    tu_expect_read(f.t, "r", &ov, "r: a:q@2=v2 a:q@1=v1\n", "GC'd versions stay hidden in a time range");
    tu_flush(f.t);
    tu_expect_read(f.t, "r", NULL, want, "flushed");
    tu_compact(f.t);
    tu_expect_read(f.t, "r", NULL, want, "compacted");
    cr_assert_eq(tu_sst_count_family(f.tdir, "v"), 2, "major compaction kept GC'd versions");
    cr_assert_eq(tu_sst_count_family(f.tdir, "a"), 5);
    tu_reopen(&f);
    tu_expect_read(f.t, "r", NULL, want, "reopened");
    MUT(f.t, "r", SET("v", "q", 6, "v6"));
    tu_expect_read(f.t, "r", &o, "r: a:q@5=v5 v:q@6=v6\n", "new version");
    ts_column_ref c = {.family = "v", .family_len = 1};
    ts_read_options oc = {.columns = &c, .n_columns = 1};
    tu_expect_read(f.t, "r", &oc, "r: v:q@6=v6 v:q@5=v5\n", "two newest");
    tu_finish(&f);
}

Test(tablet_reads, gc_max_age_with_fake_clock)
{
    tu_fx f;
    start_with_gc_family(&f, "t", 0, 1000);
    const int64_t now = TU_BASE_NOW;
    MUT(f.t, "r", SET("t", "q", now - 500, "young"), SET("t", "q", now - 900, "mid"),
        SET("t", "q", now - 1500, "old"), SET("a", "q", now - 5000, "keep"));
    char want[256];
    snprintf(want, sizeof want, "r: a:q@%lld=keep t:q@%lld=young t:q@%lld=mid\n", (long long)(now - 5000),
             (long long)(now - 500), (long long)(now - 900));
    tu_expect_read(f.t, "r", NULL, want, "max_age at read time");
    tu_set_clock(now + 200);
    snprintf(want, sizeof want, "r: a:q@%lld=keep t:q@%lld=young\n", (long long)(now - 5000),
             (long long)(now - 500));
    tu_expect_read(f.t, "r", NULL, want, "clock moved");
    tu_flush(f.t);
    tu_expect_read(f.t, "r", NULL, want, "flushed");
    cr_assert_eq(tu_sst_count_family(f.tdir, "t"), 3, "a minor compaction must not GC");
    tu_compact(f.t);
    tu_expect_read(f.t, "r", NULL, want, "compacted");
    cr_assert_eq(tu_sst_count_family(f.tdir, "t"), 1, "major compaction kept expired cells");
    tu_reopen(&f);
    tu_expect_read(f.t, "r", NULL, want, "reopened");
    tu_set_clock(now + 1000);
    snprintf(want, sizeof want, "r: a:q@%lld=keep\n", (long long)(now - 5000));
    tu_expect_read(f.t, "r", NULL, want, "everything expired");
    ts_column_ref c = {.family = "t", .family_len = 1};
    ts_read_options oc = {.columns = &c, .n_columns = 1};
    tu_expect_read(f.t, "r", &oc, "", "family t empty");
    tu_compact(f.t);
    cr_assert_eq(tu_sst_count_family(f.tdir, "t"), 0);
    tu_expect_read(f.t, "r", NULL, want, "compacted again");
    tu_finish(&f);
}

/* Row r reads `want` now, after a major compaction (which leaves n_i and n_u
 * cells of families i and u) and after a reopen; `when` names the moment. */
static void gc_expect_kept(tu_fx *f, const char *want, uint64_t n_i, uint64_t n_u, const char *when)
{
    char what[64];
    tu_expect_read(f->t, "r", NULL, want, when);
    tu_compact(f->t);
    snprintf(what, sizeof what, "%s, compacted", when);
    tu_expect_read(f->t, "r", NULL, want, what);
    cr_assert_eq(tu_sst_count_family(f->tdir, "i"), n_i, "%s", what);
    cr_assert_eq(tu_sst_count_family(f->tdir, "u"), n_u, "%s", what);
    tu_reopen(f);
    snprintf(what, sizeof what, "%s, reopened", when);
    tu_expect_read(f->t, "r", NULL, want, what);
}

Test(tablet_reads, gc_union_and_intersection)
{
    tu_fx f;
    ts_schema s;
    ts_schema_init(&s);
    cr_assert_eq(ts_schema_add_family(&s, "i", 1, 1000), BT_OK);
    cr_assert_eq(ts_schema_add_family(&s, "u", 1, 1000), BT_OK);
    s.families[ts_schema_find(&s, "i", 1)].gc_intersection = true;
    tu_start(&f, &s, TS_DURABILITY_NONE);
    const int64_t now = TU_BASE_NOW;
    const int64_t ages[] = {100, 200, 2000, 3000};
    for (int k = 3; k >= 0; k--) {
        char v[16];
        snprintf(v, sizeof v, "n%lld", (long long)ages[k]);
        MUT(f.t, "r", SET("i", "q", now - ages[k], v), SET("u", "q", now - ages[k], v));
        if (k == 2) tu_flush(f.t);
    }
    char want[256];
    snprintf(want, sizeof want, "r: i:q@%lld=n100 i:q@%lld=n200 u:q@%lld=n100\n", (long long)(now - 100),
             (long long)(now - 200), (long long)(now - 100));
    gc_expect_kept(&f, want, 2, 1, "read time");
    cr_assert(ts_tablet_schema(f.t)->families[0].gc_intersection);
    cr_assert(!ts_tablet_schema(f.t)->families[1].gc_intersection);
    /* later: the newest version of i is old but within max_versions: kept */
    tu_set_clock(now + 5000);
    snprintf(want, sizeof want, "r: i:q@%lld=n100\n", (long long)(now - 100));
    gc_expect_kept(&f, want, 1, 0, "clock moved");
    tu_finish(&f);
}

/* ---- filters ------------------------------------------------------------------------------------ */

/* Each of rows r1 r2 r3 s1 holds five cells, in result order:
 *   0 a:c1@2  1 a:c1@1  2 a:c2@1  3 b:c1@3  4 c:x@1      value "<row>.<fam>.<qual>.<ts>" */
static const struct { const char *fam, *qual; int ts; } FCELLS[5] = {
    {"a", "c1", 2}, {"a", "c1", 1}, {"a", "c2", 1}, {"b", "c1", 3}, {"c", "x", 1},
};
static const char *FROWS[4] = {"r1", "r2", "r3", "s1"};

static void filter_data(ts_tablet *t)
{
    for (int r = 0; r < 4; r++) {
        ts_mutation m[5];
        char vals[5][32];
        for (int c = 4; c >= 0; c--) {
            snprintf(vals[c], sizeof vals[c], "%s.%s.%s.%d", FROWS[r], FCELLS[c].fam, FCELLS[c].qual, FCELLS[c].ts);
            m[c] = SET(FCELLS[c].fam, FCELLS[c].qual, FCELLS[c].ts, vals[c]);
        }
        cr_assert_eq(ts_tablet_mutate_row(t, (const uint8_t *)FROWS[r], 2, m, 5), BT_OK);
        if (r == 1) tu_flush(t);  /* r1 r2 in an SSTable, r3 s1 in the memtable */
    }
}

/* The expected text: masks[r] selects the cells of row r (bit c = cell c). */
static char *fexp(const unsigned masks[4], bool strip)
{
    tu_sb b = {0};
    for (int r = 0; r < 4; r++) {
        if (!masks[r]) continue;
        tu_sb_printf(&b, "%s:", FROWS[r]);
        for (int c = 0; c < 5; c++) {
            if (!(masks[r] & (1u << c))) continue;
            char v[32];
            snprintf(v, sizeof v, "%s.%s.%s.%d", FROWS[r], FCELLS[c].fam, FCELLS[c].qual, FCELLS[c].ts);
            tu_sb_cell(&b, FCELLS[c].fam, 1, FCELLS[c].qual, strlen(FCELLS[c].qual), FCELLS[c].ts, v,
                       strip ? 0 : strlen(v));
        }
        tu_sb_printf(&b, "\n");
    }
    return tu_sb_take(&b);
}

#define M4(a, b, c, d) ((const unsigned[4]){(a), (b), (c), (d)})
#define ALL 0x1fu

static void fcheck(ts_tablet *t, const ts_read_options *o, const unsigned masks[4], bool strip, const char *what)
{
    char *want = fexp(masks, strip);
    tu_expect_scan(t, o, want, what);
    free(want);
    /* point reads apply the same column/time/value filters and ignore the row range */
    if (o->row_limit || o->start_len || o->end_len || o->prefix_len) return;
    for (int r = 0; r < 4; r++) {
        unsigned one[4] = {0};
        one[r] = masks[r];
        want = fexp(one, strip);
        tu_expect_read(t, FROWS[r], o, want, what);
        free(want);
    }
}

static void filters_all(ts_tablet *t)
{
    ts_read_options o;
#define RESET() memset(&o, 0, sizeof o)
    RESET();
    fcheck(t, &o, M4(ALL, ALL, ALL, ALL), false, "no filter");

    ts_column_ref cols[3] = {
        {.family = "b", .family_len = 1},
        {.family = "a", .family_len = 1, .qualifier = (const uint8_t *)"c2", .qualifier_len = 2},
        {.family = "c", .family_len = 1},
    };
    RESET(); o.columns = cols; o.n_columns = 1;
    fcheck(t, &o, M4(8, 8, 8, 8), false, "columns family b");
    RESET(); o.columns = cols + 1; o.n_columns = 2;
    fcheck(t, &o, M4(0x14, 0x14, 0x14, 0x14), false, "columns a:c2 + family c");
    ts_column_ref ac1 = {.family = "a", .family_len = 1, .qualifier = (const uint8_t *)"c1", .qualifier_len = 2};
    RESET(); o.columns = &ac1; o.n_columns = 1;
    fcheck(t, &o, M4(3, 3, 3, 3), false, "column a:c1");
    ts_column_ref aempty = {.family = "a", .family_len = 1, .qualifier = (const uint8_t *)"", .qualifier_len = 0};
    RESET(); o.columns = &aempty; o.n_columns = 1;
    fcheck(t, &o, M4(0, 0, 0, 0), false, "column a: (empty qualifier)");

    RESET(); o.range_family = "a"; o.range_family_len = 1; o.qual_from = (const uint8_t *)"c2"; o.qual_from_len = 2;
    fcheck(t, &o, M4(4, 4, 4, 4), false, "range a [c2, inf)");
    RESET(); o.range_family = "a"; o.range_family_len = 1; o.qual_to = (const uint8_t *)"c2"; o.qual_to_len = 2;
    fcheck(t, &o, M4(3, 3, 3, 3), false, "range a [, c2)");
    RESET(); o.range_family = "a"; o.range_family_len = 1; o.qual_from = (const uint8_t *)"c1"; o.qual_from_len = 2;
    o.qual_to = (const uint8_t *)"c1\0"; o.qual_to_len = 3;
    fcheck(t, &o, M4(3, 3, 3, 3), false, "range a [c1, c1\\0)");
    RESET(); o.range_family = "b"; o.range_family_len = 1; o.qual_from = (const uint8_t *)"c0"; o.qual_from_len = 2;
    o.qual_to = (const uint8_t *)"c2"; o.qual_to_len = 2;
    fcheck(t, &o, M4(8, 8, 8, 8), false, "range b [c0, c2)");
    RESET(); o.range_family = "a"; o.range_family_len = 1; o.columns = cols; o.n_columns = 2;
    fcheck(t, &o, M4(4, 4, 4, 4), false, "range a and columns b, a:c2");

    RESET(); o.ts_from = 2; o.ts_to = 3;
    fcheck(t, &o, M4(1, 1, 1, 1), false, "ts [2,3)");
    RESET(); o.ts_from = 1; o.ts_to = 2;
    fcheck(t, &o, M4(0x16, 0x16, 0x16, 0x16), false, "ts [1,2)");
    RESET(); o.ts_from = 2;
    fcheck(t, &o, M4(9, 9, 9, 9), false, "ts [2,inf)");
    RESET(); o.ts_from = 4;
    fcheck(t, &o, M4(0, 0, 0, 0), false, "ts [4,inf)");

    RESET(); o.versions = 1;
    fcheck(t, &o, M4(0x1d, 0x1d, 0x1d, 0x1d), false, "versions 1");
    RESET(); o.versions = 2;
    fcheck(t, &o, M4(ALL, ALL, ALL, ALL), false, "versions 2");
    RESET(); o.versions = 1; o.ts_to = 2;
    fcheck(t, &o, M4(0x16, 0x16, 0x16, 0x16), false, "versions 1 within ts [0,2)");

    RESET(); o.has_value_range = true; o.value_from = (const uint8_t *)"r2"; o.value_from_len = 2;
    o.value_to = (const uint8_t *)"r3"; o.value_to_len = 2;
    fcheck(t, &o, M4(0, ALL, 0, 0), false, "value [r2, r3)");
    RESET(); o.has_value_range = true; o.value_from = (const uint8_t *)"r1.b"; o.value_from_len = 4;
    o.value_to = (const uint8_t *)"r1.c"; o.value_to_len = 4;
    fcheck(t, &o, M4(8, 0, 0, 0), false, "value [r1.b, r1.c)");
    RESET(); o.has_value_range = true; o.value_from = (const uint8_t *)"s"; o.value_from_len = 1;
    fcheck(t, &o, M4(0, 0, 0, ALL), false, "value [s, inf)");
    RESET(); o.has_value_range = true; o.value_from = (const uint8_t *)"r1.a.c1.2"; o.value_from_len = 9;
    o.value_to = (const uint8_t *)"r1.a.c2"; o.value_to_len = 7;
    fcheck(t, &o, M4(1, 0, 0, 0), false, "value [r1.a.c1.2, r1.a.c2)");

    RESET(); o.strip_value = true;
    fcheck(t, &o, M4(ALL, ALL, ALL, ALL), true, "strip_value");

    RESET(); o.cells_per_row = 2;
    fcheck(t, &o, M4(3, 3, 3, 3), false, "cells_per_row 2");
    RESET(); o.cells_per_row = 4;
    fcheck(t, &o, M4(0xf, 0xf, 0xf, 0xf), false, "cells_per_row 4");

    RESET(); o.start_row = (const uint8_t *)"r2"; o.start_len = 2; o.end_row = (const uint8_t *)"s1"; o.end_len = 2;
    fcheck(t, &o, M4(0, ALL, ALL, 0), false, "rows [r2, s1)");
    RESET(); o.start_row = (const uint8_t *)"r2"; o.start_len = 2;
    fcheck(t, &o, M4(0, ALL, ALL, ALL), false, "rows [r2, inf)");
    RESET(); o.start_row = (const uint8_t *)"r1\0"; o.start_len = 3;
    fcheck(t, &o, M4(0, ALL, ALL, ALL), false, "rows [r1\\0, inf)");
    RESET(); o.end_row = (const uint8_t *)"r2"; o.end_len = 2;
    fcheck(t, &o, M4(ALL, 0, 0, 0), false, "rows [, r2)");
    RESET(); o.start_row = (const uint8_t *)"s"; o.start_len = 1; o.end_row = (const uint8_t *)"r"; o.end_len = 1;
    fcheck(t, &o, M4(0, 0, 0, 0), false, "empty row range");
    RESET(); o.prefix = (const uint8_t *)"r"; o.prefix_len = 1;
    fcheck(t, &o, M4(ALL, ALL, ALL, 0), false, "prefix r");
    RESET(); o.prefix = (const uint8_t *)"s"; o.prefix_len = 1;
    fcheck(t, &o, M4(0, 0, 0, ALL), false, "prefix s");
    RESET(); o.prefix = (const uint8_t *)"r2"; o.prefix_len = 2;
    fcheck(t, &o, M4(0, ALL, 0, 0), false, "prefix r2");
    RESET(); o.prefix = (const uint8_t *)"r2x"; o.prefix_len = 3;
    fcheck(t, &o, M4(0, 0, 0, 0), false, "prefix r2x");
    RESET(); o.prefix = (const uint8_t *)"t"; o.prefix_len = 1;
    fcheck(t, &o, M4(0, 0, 0, 0), false, "prefix t");
    RESET(); o.prefix = (const uint8_t *)"r"; o.prefix_len = 1; o.start_row = (const uint8_t *)"r2"; o.start_len = 2;
    fcheck(t, &o, M4(0, ALL, ALL, 0), false, "prefix r from r2");
    RESET(); o.prefix = (const uint8_t *)"r"; o.prefix_len = 1; o.end_row = (const uint8_t *)"r3"; o.end_len = 2;
    fcheck(t, &o, M4(ALL, ALL, 0, 0), false, "prefix r to r3");
    RESET(); o.prefix = (const uint8_t *)"s"; o.prefix_len = 1; o.start_row = (const uint8_t *)"a"; o.start_len = 1;
    fcheck(t, &o, M4(0, 0, 0, ALL), false, "prefix s from a");
    RESET(); o.row_limit = 2;
    fcheck(t, &o, M4(ALL, ALL, 0, 0), false, "row_limit 2");
    RESET(); o.row_limit = 10;
    fcheck(t, &o, M4(ALL, ALL, ALL, ALL), false, "row_limit 10");
    /* rows with no cell left do not count towards row_limit */
    RESET(); o.row_limit = 2; o.has_value_range = true; o.value_from = (const uint8_t *)"r2"; o.value_from_len = 2;
    fcheck(t, &o, M4(0, ALL, ALL, 0), false, "row_limit after value filter");

    /* combinations */
    ts_column_ref fa = {.family = "a", .family_len = 1};
    RESET(); o.columns = &fa; o.n_columns = 1; o.versions = 1; o.strip_value = true; o.row_limit = 3;
    fcheck(t, &o, M4(5, 5, 5, 0), true, "family a, 1 version, stripped, 3 rows");
    RESET(); o.ts_from = 1; o.ts_to = 2; o.versions = 1; o.cells_per_row = 1;
    fcheck(t, &o, M4(2, 2, 2, 2), false, "ts [1,2), 1 version, 1 cell per row");
    RESET(); o.columns = &fa; o.n_columns = 1; o.has_value_range = true;
    o.value_from = (const uint8_t *)"r1.a.c1.2"; o.value_from_len = 9;
    o.value_to = (const uint8_t *)"r1.a.c2"; o.value_to_len = 7;
    fcheck(t, &o, M4(1, 0, 0, 0), false, "family a and a value range");
    RESET(); o.prefix = (const uint8_t *)"r"; o.prefix_len = 1; o.range_family = "a"; o.range_family_len = 1;
    o.qual_from = (const uint8_t *)"c1"; o.qual_from_len = 2; o.qual_to = (const uint8_t *)"c2"; o.qual_to_len = 2;
    o.ts_from = 2; o.cells_per_row = 5; o.row_limit = 2; o.strip_value = true;
    fcheck(t, &o, M4(1, 1, 0, 0), true, "prefix, column range, time, limits");
    RESET(); o.columns = cols; o.n_columns = 3; o.ts_to = 2; o.start_row = (const uint8_t *)"r3"; o.start_len = 2;
    fcheck(t, &o, M4(0, 0, 0x14, 0x14), false, "columns, ts, start row");
#undef RESET
}

Test(tablet_reads, read_filters)
{
    tu_fx f;
    tu_start_abc(&f, TS_DURABILITY_NONE);
    filter_data(f.t);
    filters_all(f.t);
    /* point reads ignore the row range fields */
    ts_read_options o = {.start_row = (const uint8_t *)"z", .start_len = 1, .prefix = (const uint8_t *)"q",
                         .prefix_len = 1};
    tu_expect_read(f.t, "r2", &o,
                   "r2: a:c1@2=r2.a.c1.2 a:c1@1=r2.a.c1.1 a:c2@1=r2.a.c2.1 b:c1@3=r2.b.c1.3 c:x@1=r2.c.x.1\n",
                   "read_row ignores start/prefix");
    tu_compact(f.t);
    filters_all(f.t);
    tu_finish(&f);
}

/* ---- the reference model ------------------------------------------------------------------ */

#define MF 3
#define MQ 4
static const char *FAMS[MF] = {"a", "b", "c"};  /* a, b in group 0; c in group 1 */
static const struct { const char *q; size_t n; } QUALS[MQ] = {
    {"", 0}, {"q\0", 2}, {"q1", 2}, {"qq", 2},   /* bytewise order */
};

typedef struct mput { int64_t ts; uint64_t seq; char val[32]; } mput;
typedef struct mdel { int64_t from, to; uint64_t seq; } mdel;   /* to INT64_MAX: unbounded */
typedef struct mcol { mput *p; int np, cp; mdel *d; int nd, cd; } mcol;
typedef struct mkey { uint8_t k[16]; size_t n; } mkey;

typedef struct model {
    int nrows;
    mkey *keys;          /* ascending */
    uint64_t *row_del;   /* [row] */
    uint64_t *fam_del;   /* [row][fam] */
    mcol *cols;          /* [row][fam][qual] */
    uint64_t seq;
} model;

static void model_init(model *m, int nrows, void (*key)(int, mkey *))
{
    memset(m, 0, sizeof *m);
    m->nrows = nrows;
    m->keys = calloc((size_t)nrows, sizeof *m->keys);
    m->row_del = calloc((size_t)nrows, sizeof *m->row_del);
    m->fam_del = calloc((size_t)nrows * MF, sizeof *m->fam_del);
    m->cols = calloc((size_t)nrows * MF * MQ, sizeof *m->cols);
    for (int i = 0; i < nrows; i++) key(i, &m->keys[i]);
    for (int i = 1; i < nrows; i++)
        cr_assert_lt(sst_key_cmp(m->keys[i - 1].k, m->keys[i - 1].n, m->keys[i].k, m->keys[i].n), 0);
}

static void model_free(model *m)
{
    for (int i = 0; i < m->nrows * MF * MQ; i++) {
        free(m->cols[i].p);
        free(m->cols[i].d);
    }
    free(m->cols);
    free(m->fam_del);
    free(m->row_del);
    free(m->keys);
}

static mcol *col(model *m, int r, int f, int q) { return &m->cols[(r * MF + f) * MQ + q]; }

/* ---- mutations: engine and model together ------------------------------------------ */

typedef struct mbatch {
    int row;
    int n;
    ts_mutation m[8];
    int f[8], q[8];
    char vals[8][32];
} mbatch;

static void mb_set(mbatch *b, int f, int q, int64_t ts, const char *val)
{
    cr_assert_lt(b->n, 8);
    int i = b->n++;
    snprintf(b->vals[i], sizeof b->vals[i], "%s", val);
    b->m[i] = tu_set(FAMS[f], QUALS[q].q, QUALS[q].n, ts, b->vals[i], strlen(b->vals[i]));
    b->f[i] = f;
    b->q[i] = q;
}

static void mb_del(mbatch *b, int f, int q, int64_t from, int64_t to)
{
    cr_assert_lt(b->n, 8);
    int i = b->n++;
    b->m[i] = tu_del(FAMS[f], QUALS[q].q, QUALS[q].n, from, to);
    b->f[i] = f;
    b->q[i] = q;
}

static void mb_delfam(mbatch *b, int f)
{
    cr_assert_lt(b->n, 8);
    int i = b->n++;
    b->m[i] = tu_delfam(FAMS[f]);
    b->f[i] = f;
}

static void mb_delrow(mbatch *b)
{
    cr_assert_lt(b->n, 8);
    int i = b->n++;
    b->m[i] = tu_delrow();
}

/* Applies b to the tablet (must succeed) and to the model. */
static void mb_apply(ts_tablet *t, model *m, mbatch *b)
{
    const mkey *k = &m->keys[b->row];
    int rc = ts_tablet_mutate_row(t, k->k, k->n, b->m, b->n);
    cr_assert_eq(rc, BT_OK, "mutate: %s (%s)", bt_errname(rc), bt_errmsg());
    for (int i = 0; i < b->n; i++) {
        uint64_t seq = ++m->seq;
        const ts_mutation *x = &b->m[i];
        switch (x->type) {
        case TS_SET_CELL: {
            mcol *c = col(m, b->row, b->f[i], b->q[i]);
            if (c->np == c->cp) {
                c->cp = c->cp ? c->cp * 2 : 4;
                c->p = realloc(c->p, (size_t)c->cp * sizeof *c->p);
            }
            mput *p = &c->p[c->np++];
            p->ts = x->timestamp == TS_SERVER_TIME ? tu_clock() : x->timestamp;
            p->seq = seq;
            snprintf(p->val, sizeof p->val, "%s", b->vals[i]);
            break;
        }
        case TS_DELETE_CELLS: {
            mcol *c = col(m, b->row, b->f[i], b->q[i]);
            if (c->nd == c->cd) {
                c->cd = c->cd ? c->cd * 2 : 4;
                c->d = realloc(c->d, (size_t)c->cd * sizeof *c->d);
            }
            c->d[c->nd++] = (mdel){x->ts_from, x->ts_to ? x->ts_to : INT64_MAX, seq};
            break;
        }
        case TS_DELETE_FAMILY:
            m->fam_del[b->row * MF + b->f[i]] = seq;
            break;
        case TS_DELETE_ROW:
            m->row_del[b->row] = seq;
            break;
        }
    }
}

/* ---- model reads -------------------------------------------------------------------- */

static int cmp_put_desc(const void *a, const void *b)
{
    const mput *x = a, *y = b;
    if (x->ts != y->ts) return x->ts > y->ts ? -1 : 1;
    return x->seq > y->seq ? -1 : x->seq < y->seq;
}

/* Visible versions of a column, newest first; returns the count (into out). */
static int visible(model *m, int r, int f, int q, mput *out)
{
    mcol *c = col(m, r, f, q);
    if (c->np == 0) return 0;
    memcpy(out, c->p, (size_t)c->np * sizeof *out);
    qsort(out, (size_t)c->np, sizeof *out, cmp_put_desc);
    uint64_t floor = m->row_del[r] > m->fam_del[r * MF + f] ? m->row_del[r] : m->fam_del[r * MF + f];
    int n = 0;
    for (int i = 0; i < c->np; i++) {
        if (i > 0 && out[i].ts == out[i - 1].ts) continue;   /* an older write at that timestamp */
        bool dead = out[i].seq < floor;
        for (int d = 0; !dead && d < c->nd; d++)
            dead = out[i].ts >= c->d[d].from && out[i].ts < c->d[d].to && out[i].seq < c->d[d].seq;
        if (!dead) out[n++] = out[i];
    }
    return n;
}

static bool has_prefix(const uint8_t *s, size_t n, const uint8_t *p, size_t pn)
{
    return pn <= n && memcmp(s, p, pn) == 0;
}

static bool col_wanted(const ts_read_options *o, int f, int q)
{
    if (o->n_columns > 0) {
        bool hit = false;
        for (int i = 0; i < o->n_columns && !hit; i++) {
            const ts_column_ref *c = &o->columns[i];
            hit = c->family_len == 1 && c->family[0] == FAMS[f][0] &&
                  (!c->qualifier || sst_key_cmp(c->qualifier, c->qualifier_len, (const uint8_t *)QUALS[q].q,
                                                QUALS[q].n) == 0);
        }
        if (!hit) return false;
    }
    if (o->range_family_len) {
        if (o->range_family_len != 1 || o->range_family[0] != FAMS[f][0]) return false;
        const uint8_t *qq = (const uint8_t *)QUALS[q].q;
        if (o->qual_from_len && sst_key_cmp(qq, QUALS[q].n, o->qual_from, o->qual_from_len) < 0) return false;
        if (o->qual_to_len && sst_key_cmp(qq, QUALS[q].n, o->qual_to, o->qual_to_len) >= 0) return false;
    }
    return true;
}

/* Appends row r's line as the read would return it; returns whether it had cells. */
static bool model_row(model *m, int r, const ts_read_options *o, tu_sb *b, mput *scratch)
{
    size_t mark = b->n;
    uint32_t cells = 0;
    for (int f = 0; f < MF; f++) {
        for (int q = 0; q < MQ; q++) {
            if (!col_wanted(o, f, q)) continue;
            int n = visible(m, r, f, q, scratch);
            uint32_t versions = 0;
            for (int i = 0; i < n; i++) {
                const mput *p = &scratch[i];
                if (p->ts < o->ts_from || (o->ts_to && p->ts >= o->ts_to)) continue;
                if (o->versions && versions >= o->versions) break;
                versions++;
                size_t vl = strlen(p->val);
                if (o->has_value_range) {
                    if (sst_key_cmp((const uint8_t *)p->val, vl, o->value_from, o->value_from_len) < 0) continue;
                    if (o->value_to_len &&
                        sst_key_cmp((const uint8_t *)p->val, vl, o->value_to, o->value_to_len) >= 0)
                        continue;
                }
                if (o->cells_per_row && cells >= o->cells_per_row) continue;
                if (cells++ == 0) {
                    tu_sb_bytes(b, m->keys[r].k, m->keys[r].n);
                    tu_sb_printf(b, ":");
                }
                tu_sb_cell(b, FAMS[f], 1, QUALS[q].q, QUALS[q].n, p->ts, p->val, o->strip_value ? 0 : vl);
            }
        }
    }
    if (cells) tu_sb_printf(b, "\n");
    else if (b->p) b->p[b->n = mark] = '\0';
    return cells > 0;
}

static mput *scratch_for(model *m)
{
    int most = 1;
    for (int i = 0; i < m->nrows * MF * MQ; i++)
        if (m->cols[i].np > most) most = m->cols[i].np;
    return malloc((size_t)most * sizeof(mput));
}

static char *model_scan(model *m, const ts_read_options *o)
{
    static const ts_read_options none;
    if (!o) o = &none;
    tu_sb b = {0};
    mput *scratch = scratch_for(m);
    uint64_t rows = 0;
    for (int r = 0; r < m->nrows; r++) {
        if (o->row_limit && rows >= o->row_limit) break;
        const mkey *k = &m->keys[r];
        if (o->start_len && sst_key_cmp(k->k, k->n, o->start_row, o->start_len) < 0) continue;
        if (o->end_len && sst_key_cmp(k->k, k->n, o->end_row, o->end_len) >= 0) continue;
        if (o->prefix_len && !has_prefix(k->k, k->n, o->prefix, o->prefix_len)) continue;
        rows += model_row(m, r, o, &b, scratch);
    }
    free(scratch);
    return tu_sb_take(&b);
}

static char *model_read(model *m, int r, const ts_read_options *o)
{
    static const ts_read_options none;
    tu_sb b = {0};
    mput *scratch = scratch_for(m);
    model_row(m, r, o ? o : &none, &b, scratch);
    free(scratch);
    return tu_sb_take(&b);
}

/* ---- comparisons --------------------------------------------------------------------------- */

static void compare_scan(ts_tablet *t, model *m, const ts_read_options *o, const char *what)
{
    char *want = model_scan(m, o);
    tu_expect_text(tu_scan_text(t, o), want, what);
    free(want);
}

static void compare_read(ts_tablet *t, model *m, int r, const ts_read_options *o, const char *what)
{
    char *want = model_read(m, r, o);
    tu_expect_text(tu_read_text(t, m->keys[r].k, m->keys[r].n, o), want, what);
    free(want);
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Random read options; the pointed-to bytes live in m or in static storage. */
typedef struct ropts {
    ts_read_options o;
    ts_column_ref cols[2];
    char vfrom[8], vto[8];
} ropts;

static void random_options(ropts *ro, model *m, uint64_t *s)
{
    memset(ro, 0, sizeof *ro);
    ts_read_options *o = &ro->o;
    if (rnd(s) % 3 == 0) {
        o->n_columns = 1 + (int)(rnd(s) % 2);
        for (int i = 0; i < o->n_columns; i++) {
            ro->cols[i].family = FAMS[rnd(s) % MF];
            ro->cols[i].family_len = 1;
            if (rnd(s) % 2) {
                int q = (int)(rnd(s) % MQ);
                ro->cols[i].qualifier = (const uint8_t *)QUALS[q].q;
                ro->cols[i].qualifier_len = QUALS[q].n;
            }
        }
        o->columns = ro->cols;
    }
    if (rnd(s) % 4 == 0) {
        o->range_family = FAMS[rnd(s) % MF];
        o->range_family_len = 1;
        int a = (int)(rnd(s) % (MQ + 1)), b = (int)(rnd(s) % (MQ + 1));
        if (a < MQ) { o->qual_from = (const uint8_t *)QUALS[a].q; o->qual_from_len = QUALS[a].n; }
        if (b < MQ) { o->qual_to = (const uint8_t *)QUALS[b].q; o->qual_to_len = QUALS[b].n; }
    }
    if (rnd(s) % 4 == 0) {
        o->ts_from = (int64_t)(rnd(s) % 25);
        o->ts_to = rnd(s) % 2 ? 0 : o->ts_from + 1 + (int64_t)(rnd(s) % 10);
    }
    if (rnd(s) % 4 == 0) o->versions = 1 + (uint32_t)(rnd(s) % 3);
    if (rnd(s) % 6 == 0) {
        o->has_value_range = true;
        snprintf(ro->vfrom, sizeof ro->vfrom, "v%u", (unsigned)(rnd(s) % 30));
        o->value_from = (const uint8_t *)ro->vfrom;
        o->value_from_len = strlen(ro->vfrom);
        if (rnd(s) % 2) {
            snprintf(ro->vto, sizeof ro->vto, "v%u", (unsigned)(rnd(s) % 30));
            o->value_to = (const uint8_t *)ro->vto;
            o->value_to_len = strlen(ro->vto);
        }
    }
    if (rnd(s) % 6 == 0) o->strip_value = true;
    if (rnd(s) % 6 == 0) o->cells_per_row = 1 + (uint32_t)(rnd(s) % 5);
    if (rnd(s) % 4 == 0) {
        const mkey *k = &m->keys[rnd(s) % (uint64_t)m->nrows];
        o->start_row = k->k;
        o->start_len = k->n;
    }
    if (rnd(s) % 4 == 0) {
        const mkey *k = &m->keys[rnd(s) % (uint64_t)m->nrows];
        o->end_row = k->k;
        o->end_len = k->n;
    }
    if (rnd(s) % 6 == 0) {
        const mkey *k = &m->keys[rnd(s) % (uint64_t)m->nrows];
        o->prefix = k->k;
        o->prefix_len = 1 + rnd(s) % k->n;
    }
    if (rnd(s) % 5 == 0) o->row_limit = 1 + rnd(s) % 10;
}

/* Full scan, `reads` random point reads, `filters` random filtered scans and reads. */
static void compare_all(ts_tablet *t, model *m, uint64_t *s, int reads, int filters, const char *phase)
{
    char what[96];
    snprintf(what, sizeof what, "%s: full scan", phase);
    compare_scan(t, m, NULL, what);
    for (int i = 0; i < reads; i++) {
        int r = (int)(rnd(s) % (uint64_t)m->nrows);
        snprintf(what, sizeof what, "%s: read row %d", phase, r);
        compare_read(t, m, r, NULL, what);
    }
    for (int i = 0; i < filters; i++) {
        ropts ro;
        random_options(&ro, m, s);
        snprintf(what, sizeof what, "%s: filtered scan %d", phase, i);
        compare_scan(t, m, &ro.o, what);
        int r = (int)(rnd(s) % (uint64_t)m->nrows);
        snprintf(what, sizeof what, "%s: filtered read %d of row %d", phase, i, r);
        compare_read(t, m, r, &ro.o, what);
    }
}

static void model_schema(ts_schema *s)
{
    ts_schema_init(s);
    s->n_groups = 2;
    strcpy(s->groups[1].name, "other");
    s->groups[1].bloom = TS_BLOOM_ROW;
    s->groups[1].block_size = 512;
    for (int f = 0; f < MF; f++) cr_assert_eq(ts_schema_add_family(s, FAMS[f], 0, 0), BT_OK);
    s->families[2].group = 1;
}

/* ---- 1000 rows ------------------------------------------------------------------------------ */

static void key_1000(int i, mkey *k)
{
    k->n = (size_t)snprintf((char *)k->k, sizeof k->k, "k%04d", i);
}

Test(tablet_model, thousand_rows_over_memtable_and_sstables)
{
    tu_fx f;
    ts_schema s;
    model_schema(&s);
    tu_start_tuned(&f, &s, 0, 16);   /* merge trigger 16: keep the SSTables apart */
    model m;
    model_init(&m, 1000, key_1000);
    uint64_t seed = 1000;
    char v[32];
    /* four batches: three flushed to SSTables, the last left in the memtable */
    for (int batch = 0; batch < 4; batch++) {
        for (int r = batch * 250; r < (batch + 1) * 250; r++) {
            mbatch b = {.row = r};
            for (int c = 0; c < 3; c++) {
                snprintf(v, sizeof v, "v%d.%d", r, c);
                mb_set(&b, (r + c) % MF, (r * 7 + c) % MQ, 1 + (int64_t)(rnd(&seed) % 20), v);
            }
            mb_apply(f.t, &m, &b);
        }
        if (batch < 3) cr_assert_eq(ts_tablet_flush(f.t), BT_OK);
    }
    compare_all(f.t, &m, &seed, 50, 30, "written");
    /* overwrites and deletes spread over every row, partly flushed */
    for (int r = 0; r < 1000; r++) {
        mbatch b = {.row = r};
        if (r % 7 == 0) {
            snprintf(v, sizeof v, "v%d.new", r);
            mb_set(&b, r % MF, 0, 1 + (int64_t)(rnd(&seed) % 20), v);
        }
        if (r % 11 == 0) mb_delrow(&b);
        if (r % 13 == 0) mb_delfam(&b, (r + 1) % MF);
        if (r % 5 == 0) mb_del(&b, (r + 2) % MF, (r * 7 + 2) % MQ, 5, 15);
        if (r % 17 == 0) {
            snprintf(v, sizeof v, "v%d.after", r);
            mb_set(&b, (r + 1) % MF, 3, 2, v);
        }
        if (b.n) mb_apply(f.t, &m, &b);
        if (r == 600) cr_assert_eq(ts_tablet_flush(f.t), BT_OK);
    }
    compare_all(f.t, &m, &seed, 50, 30, "mixed");
    ts_tablet_stats st;
    ts_tablet_get_stats(f.t, &st);
    cr_assert_eq(st.n_sstables, 8, "4 flushes x 2 locality groups");
    cr_assert_gt(st.memtable_bytes, 0);
    /* every row by point read */
    for (int r = 0; r < 1000; r++) compare_read(f.t, &m, r, NULL, "every row");
    cr_assert_eq(ts_tablet_compact(f.t), BT_OK);
    compare_all(f.t, &m, &seed, 50, 30, "compacted");
    tu_crash_reopen(&f);
    compare_all(f.t, &m, &seed, 50, 30, "reopened");
    model_free(&m);
    tu_finish(&f);
}

/* ---- randomized -------------------------------------------------------------------------------- */

/* 50 rows: "r00", "r00\0", "r01", "r01\0", ...: each even row a prefix of the next. */
static void key_pairs(int i, mkey *k)
{
    k->n = (size_t)snprintf((char *)k->k, sizeof k->k, "r%02d", i / 2);
    if (i % 2) k->k[k->n++] = 0;
}

static int64_t rand_ts(uint64_t *s)
{
    return rnd(s) % 10 == 0 ? TS_SERVER_TIME : 1 + (int64_t)(rnd(s) % 30);
}

static void random_run(uint64_t seed)
{
    const uint64_t seed0 = seed;
    tu_fx f;
    ts_schema s;
    model_schema(&s);
    tu_start_tuned(&f, &s, 24 << 10, 3);   /* background minor and merging compactions too */
    model m;
    model_init(&m, 50, key_pairs);
    int flushes = 0, compactions = 0, reopens = 0;
    uint64_t minors = 0, merges = 0;
    char v[32], phase[64];
    const int ops = 3000;
    for (int op = 1; op <= ops; op++) {
        tu_set_clock(1000 + op);
        uint64_t x = rnd(&seed) % 1000;
        if (x < 20) {
            cr_assert_eq(ts_tablet_flush(f.t), BT_OK, "%s", bt_errmsg());
            flushes++;
            continue;
        }
        if (x < 25) {
            cr_assert_eq(ts_tablet_compact(f.t), BT_OK, "%s", bt_errmsg());
            compactions++;
            continue;
        }
        if (x < 28) {
            ts_tablet_stats st;
            ts_tablet_get_stats(f.t, &st);
            minors += st.minor_compactions;
            merges += st.merging_compactions + st.major_compactions;
            if (reopens++ % 2) tu_reopen(&f);
            else tu_crash_reopen(&f);
            continue;
        }
        mbatch b = {.row = (int)(rnd(&seed) % (uint64_t)m.nrows)};
        int n = 1 + (int)(rnd(&seed) % 3);
        for (int i = 0; i < n; i++) {
            int fam = (int)(rnd(&seed) % MF), q = (int)(rnd(&seed) % MQ);
            uint64_t kind = rnd(&seed) % 100;
            if (kind < 70) {
                snprintf(v, sizeof v, "v%d", op);
                mb_set(&b, fam, q, rand_ts(&seed), v);
            } else if (kind < 80) {
                int64_t from = (int64_t)(rnd(&seed) % 30);
                mb_del(&b, fam, q, from, rnd(&seed) % 3 == 0 ? 0 : from + 1 + (int64_t)(rnd(&seed) % 12));
            } else if (kind < 90) {
                int64_t ts = 1 + (int64_t)(rnd(&seed) % 30);
                mb_del(&b, fam, q, ts, ts + 1);
            } else if (kind < 96) {
                mb_delfam(&b, fam);
            } else {
                mb_delrow(&b);
            }
        }
        mb_apply(f.t, &m, &b);
        if (op % 100 == 0) {
            snprintf(phase, sizeof phase, "seed %llu op %d", (unsigned long long)seed0, op);
            compare_all(f.t, &m, &seed, 10, 6, phase);
        }
    }
    cr_assert_gt(flushes, 10);
    cr_assert_gt(compactions, 3);
    cr_assert_gt(reopens, 2);
    ts_tablet_stats st;
    ts_tablet_get_stats(f.t, &st);
    minors += st.minor_compactions;
    merges += st.merging_compactions + st.major_compactions;
    cr_assert_gt(minors, (uint64_t)flushes, "no background flush of a full memtable");
    cr_assert_gt(merges, (uint64_t)compactions, "no background merging compaction");
    for (int r = 0; r < m.nrows; r++) compare_read(f.t, &m, r, NULL, "final point reads");
    compare_all(f.t, &m, &seed, 0, 40, "final");
    cr_assert_eq(ts_tablet_compact(f.t), BT_OK);
    compare_all(f.t, &m, &seed, 0, 20, "final compacted");
    tu_crash_reopen(&f);
    compare_all(f.t, &m, &seed, 50, 20, "final reopened");
    model_free(&m);
    tu_finish(&f);
}

Test(tablet_model, randomized_operations_seed_1) { random_run(1); }
Test(tablet_model, randomized_operations_seed_2) { random_run(0x5eed2); }

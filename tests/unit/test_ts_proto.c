/* tests/unit/test_ts_proto.c: the tablet server's payload encoding
 * (tabletserver/ts_proto.h): byte-exact layouts, round trips of every
 * encoder/decoder pair with binary bytes, empty fields and extreme
 * timestamps, zero-copy pointers, truncation at every offset of every kind,
 * oversize counts, and the range checks (table names, tablet dirs, schemas,
 * mutation types, rmw kinds, flags).  The load_tablet answer has tests of its
 * own (its empty form is valid: state 0 from an older server).
 *
 * Decoders get exact-size heap copies, so under ASan any read past the end is
 * caught; every failed decode is checked to leave its outputs zeroed and
 * nothing allocated (LeakSanitizer sees the rest).
 */
#include <criterion/criterion.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/coding.h"
#include "common/rpc_codec.h"
#include "common/status.h"
#include "tabletserver/ts_proto.h"

/* LeakSanitizer and Criterion's runner: see tests/unit/test_rpc.c. */
void __lsan_disable(void) __attribute__((weak));

__attribute__((constructor)) static void runner_leaks_are_not_ours(void)
{
    if (!getenv("BXFI_MAP") && __lsan_disable) __lsan_disable();
}

#define N_OF(a) (sizeof(a) / sizeof *(a))

/* ---- samples ------------------------------------------------------------------- */

static const uint8_t BIN[] = {0x00, 0xff, 'a', 0x00, 0x80, 0x7f};

static const tsp_tablet sample_tablet = {
    .id = UINT64_MAX, .table = "users_v1.x-2", .table_len = 12,
    .dir = "tables/users/t17", .dir_len = 16,
    .start = BIN, .start_len = sizeof BIN, .end = NULL, .end_len = 0};

static const ts_mutation sample_muts[] = {
    {.type = TS_SET_CELL, .family = "cf", .family_len = 2, .qualifier = BIN,
     .qualifier_len = sizeof BIN, .timestamp = TS_SERVER_TIME, .value = BIN,
     .value_len = sizeof BIN},
    {.type = TS_SET_CELL, .timestamp = INT64_MAX}, /* every bytes field empty */
    {.type = TS_DELETE_CELLS, .family = "cf", .family_len = 2, .qualifier = (const uint8_t *)"q",
     .qualifier_len = 1, .ts_from = INT64_MIN, .ts_to = INT64_MAX},
    {.type = TS_DELETE_FAMILY, .family = "f\0\xff", .family_len = 3, .timestamp = -1},
    {.type = TS_DELETE_ROW},
};

static const ts_column_ref sample_cols[] = {
    {.family = "cf", .family_len = 2, .qualifier = BIN, .qualifier_len = sizeof BIN},
    {.family = "meta", .family_len = 4, .qualifier = NULL},          /* whole family */
    {.family = "cf", .family_len = 2, .qualifier = (const uint8_t *)""}, /* empty qualifier */
};

static const ts_read_options sample_filter = {
    .start_row = BIN, .start_len = sizeof BIN, .end_row = (const uint8_t *)"z", .end_len = 1,
    .columns = sample_cols, .n_columns = (int)N_OF(sample_cols),
    .range_family = "cf", .range_family_len = 2,
    .qual_from = (const uint8_t *)"a", .qual_from_len = 1, .qual_to = BIN, .qual_to_len = 2,
    .ts_from = INT64_MIN, .ts_to = INT64_MAX, .has_value_range = true,
    .value_from = BIN, .value_from_len = sizeof BIN,
    .versions = UINT32_MAX, .cells_per_row = 7, .row_limit = UINT64_MAX, .strip_value = true};

static const ts_cell sample_cells[] = {
    {.family = "cf", .family_len = 2, .qualifier = BIN, .qualifier_len = sizeof BIN,
     .timestamp = TS_SERVER_TIME, .value = BIN, .value_len = sizeof BIN},
    {.timestamp = INT64_MAX},
    {.family = "meta", .family_len = 4, .qualifier = (const uint8_t *)"q", .qualifier_len = 1,
     .value = (const uint8_t *)"v", .value_len = 1},
};

static const ts_row sample_row = {.key = BIN, .key_len = sizeof BIN, .cells = sample_cells,
                                  .n_cells = N_OF(sample_cells)};

static const tsp_rmw_rule sample_rules[] = {
    {.family = "cf", .family_len = 2, .qualifier = (const uint8_t *)"ctr", .qualifier_len = 3,
     .kind = TSP_RMW_INCREMENT, .increment = INT64_MIN},
    {.family = "cf", .family_len = 2, .qualifier = BIN, .qualifier_len = sizeof BIN,
     .kind = TSP_RMW_APPEND, .append = BIN, .append_len = sizeof BIN},
    {.family = "cf", .family_len = 2, .kind = TSP_RMW_INCREMENT, .increment = INT64_MAX},
};

static const int sample_statuses[] = {BT_OK, BT_ENOTFOUND, BT_EINVAL, BT_OK,
                                      BT_EFAILED_PRECONDITION};
static const char sample_detail[] = "row 1: family \"x\" does not exist";

static const tsp_status sample_status = {
    .id = "ts-1", .id_len = 4, .address = "127.0.0.1:7000", .address_len = 14,
    .start_time_us = -5, .n_tablets = 1, .memtable_bytes = 2, .sstable_bytes = 3, .reads = 4,
    .writes = 5, .scanned_rows = 6, .log_appends = 7, .log_syncs = 8, .connections = 9,
    .durability = 10, .lease_ms_left = 11, .open_scanners = UINT64_MAX, .compaction_queue = 12};

static void sample_schema(ts_schema *s)
{
    ts_schema_init(s);
    s->n_groups = 2;
    strcpy(s->groups[1].name, "hot");
    s->groups[1].in_memory = true;
    s->groups[1].bloom = TS_BLOOM_ROW_COLUMN;
    s->groups[1].block_size = 256;
    cr_assert_eq(ts_schema_add_family(s, "cf", 3, 0), BT_OK);
    cr_assert_eq(ts_schema_add_family(s, "meta.v-2_x", 0, INT64_MAX), BT_OK);
    s->families[1].gc_intersection = true;
    s->families[1].group = 1;
}

/* ---- helpers ------------------------------------------------------------------- */

/* The input of the current decode, for the zero-copy checks. */
static const uint8_t *in_base;
static size_t in_len;

/* An exact-size heap copy of [p, p + n) (never NULL, even for n == 0). */
static uint8_t *exact(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    cr_assert_not_null(c);
    if (n) memcpy(c, p, n);
    return c;
}

/* Starts reading an exact copy of b's first n bytes; free the return value. */
static uint8_t *reader_on(bt_msg_reader *r, const bt_buf *b, size_t n)
{
    uint8_t *c = exact(b->data, n);
    bt_msg_reader_init(r, c, n);
    in_base = c;
    in_len = n;
    return c;
}

/* Equal bytes, and (when non-empty) pointing into the decoder's input. */
static void same(const void *got, size_t got_len, const void *want, size_t want_len)
{
    cr_assert_eq(got_len, want_len);
    if (!want_len) return;
    cr_assert_arr_eq(got, want, want_len);
    const uint8_t *g = got;
    cr_assert(g >= in_base && g + got_len <= in_base + in_len, "not a pointer into the input");
}

static void assert_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) cr_assert_eq(b[i], 0, "byte %zu not zeroed", i);
}

static void same_mutation(const ts_mutation *g, const ts_mutation *w)
{
    cr_assert_eq(g->type, w->type);
    same(g->family, g->family_len, w->family, w->family_len);
    same(g->qualifier, g->qualifier_len, w->qualifier, w->qualifier_len);
    cr_assert_eq(g->timestamp, w->timestamp);
    cr_assert_eq(g->ts_from, w->ts_from);
    cr_assert_eq(g->ts_to, w->ts_to);
    same(g->value, g->value_len, w->value, w->value_len);
}

static void same_tablet(const tsp_tablet *g, const tsp_tablet *w)
{
    cr_assert_eq(g->id, w->id);
    same(g->table, g->table_len, w->table, w->table_len);
    same(g->dir, g->dir_len, w->dir, w->dir_len);
    same(g->start, g->start_len, w->start, w->start_len);
    same(g->end, g->end_len, w->end, w->end_len);
}

static void same_row(const ts_row *g, const ts_row *w)
{
    same(g->key, g->key_len, w->key, w->key_len);
    cr_assert_eq(g->n_cells, w->n_cells);
    for (size_t i = 0; i < w->n_cells; i++) {
        const ts_cell *a = &g->cells[i], *b = &w->cells[i];
        same(a->family, a->family_len, b->family, b->family_len);
        same(a->qualifier, a->qualifier_len, b->qualifier, b->qualifier_len);
        cr_assert_eq(a->timestamp, b->timestamp);
        same(a->value, a->value_len, b->value, b->value_len);
    }
}

/* ---- decoders that own their results ------------------------------------------------
 * Each decodes one kind, checks that a failure left nothing behind, frees a
 * success and returns the code. */

static int try_tablet(bt_msg_reader *r)
{
    tsp_tablet t;
    int rc = tsp_get_tablet(r, &t);
    if (rc) assert_zero(&t, sizeof t);
    return rc;
}

static int try_tablet_info(bt_msg_reader *r)
{
    tsp_tablet_info ti;
    int rc = tsp_get_tablet_info(r, &ti);
    if (rc) assert_zero(&ti, sizeof ti);
    return rc;
}

static int try_schema(bt_msg_reader *r)
{
    ts_schema s;
    int rc = tsp_get_schema(r, &s);
    if (rc) assert_zero(&s, sizeof s);
    return rc;
}

static int try_mutations(bt_msg_reader *r)
{
    ts_mutation *m = (ts_mutation *)1;
    int n = -1;
    int rc = tsp_get_mutations(r, &m, &n);
    if (rc) {
        cr_assert_null(m);
        cr_assert_eq(n, 0);
    }
    free(m);
    return rc;
}

static int try_filter(bt_msg_reader *r)
{
    ts_read_options o;
    ts_column_ref *cols = (ts_column_ref *)1;
    int rc = tsp_get_filter(r, &o, &cols);
    if (rc) {
        assert_zero(&o, sizeof o);
        cr_assert_null(cols);
    }
    free(cols);
    return rc;
}

static int try_row(bt_msg_reader *r)
{
    ts_row row;
    int rc = tsp_get_row(r, &row);
    if (rc) assert_zero(&row, sizeof row);
    tsp_row_release(&row);
    return rc;
}

static int try_scan_header(bt_msg_reader *r)
{
    uint64_t id = 1;
    bool done = true;
    int rc = tsp_get_scan_header(r, &id, &done);
    if (rc) cr_assert(id == 0 && !done);
    return rc;
}

static int try_rules(bt_msg_reader *r)
{
    tsp_rmw_rule *u = (tsp_rmw_rule *)1;
    int n = -1;
    int rc = tsp_get_rmw_rules(r, &u, &n);
    if (rc) {
        cr_assert_null(u);
        cr_assert_eq(n, 0);
    }
    free(u);
    return rc;
}

static int try_batch_result(bt_msg_reader *r)
{
    int *st = (int *)1;
    size_t n = 1, dlen = 1;
    const uint8_t *d = (const uint8_t *)1;
    int rc = tsp_get_batch_result(r, &st, &n, &d, &dlen);
    if (rc) cr_assert(st == NULL && n == 0 && d == NULL && dlen == 0);
    free(st);
    return rc;
}

static int try_status(bt_msg_reader *r)
{
    tsp_status s;
    int rc = tsp_get_status(r, &s);
    if (rc) assert_zero(&s, sizeof s);
    return rc;
}

/* TSP_CHECK_AND_MUTATE request: tablet_id, row, filter, muts, muts. */
static int try_check_and_mutate(bt_msg_reader *r)
{
    uint64_t id;
    const uint8_t *row;
    size_t row_len;
    bt_msg_get_varint(r, &id);
    bt_msg_get_bytes(r, &row, &row_len);
    int rc = try_filter(r);
    if (!rc) rc = try_mutations(r);
    if (!rc) rc = try_mutations(r);
    return rc ? rc : bt_msg_reader_status(r);
}

/* TSP_LOAD_TABLET request: seqr, tablet, schema, flags. */
static int try_load_tablet(bt_msg_reader *r)
{
    const uint8_t *seqr;
    size_t n;
    uint64_t flags;
    bt_msg_get_bytes(r, &seqr, &n);
    int rc = try_tablet(r);
    if (!rc) rc = try_schema(r);
    bt_msg_get_varint(r, &flags);
    return rc ? rc : bt_msg_reader_status(r);
}

/* ---- encoders of the samples --------------------------------------------------------- */

static void put_tablet_sample(bt_msg_writer *w) { tsp_put_tablet(w, &sample_tablet); }

static void put_tablet_info_sample(bt_msg_writer *w)
{
    tsp_tablet_info ti = {.tablet = sample_tablet, .memtable_bytes = 1, .sstable_bytes = 1u << 30,
                          .n_sstables = 0, .last_seq = UINT64_MAX};
    tsp_put_tablet_info(w, &ti);
}

static void put_schema_sample(bt_msg_writer *w)
{
    ts_schema s;
    sample_schema(&s);
    tsp_put_schema(w, &s);
}

static void put_mutations_sample(bt_msg_writer *w)
{
    tsp_put_mutations(w, sample_muts, (int)N_OF(sample_muts));
}

static void put_filter_sample(bt_msg_writer *w) { tsp_put_filter(w, &sample_filter); }
static void put_row_sample(bt_msg_writer *w) { tsp_put_row(w, &sample_row); }
static void put_scan_header_sample(bt_msg_writer *w) { tsp_put_scan_header(w, 300, true); }

static void put_rules_sample(bt_msg_writer *w)
{
    tsp_put_rmw_rules(w, sample_rules, (int)N_OF(sample_rules));
}

static void put_batch_result_sample(bt_msg_writer *w)
{
    tsp_put_batch_result(w, sample_statuses, N_OF(sample_statuses), sample_detail);
}

static void put_status_sample(bt_msg_writer *w) { tsp_put_status(w, &sample_status); }

static void put_check_and_mutate_sample(bt_msg_writer *w)
{
    bt_msg_put_varint(w, 17);
    bt_msg_put_bytes(w, BIN, sizeof BIN);
    tsp_put_filter(w, &sample_filter);
    put_mutations_sample(w);
    tsp_put_mutations(w, NULL, 0);
}

static void put_load_tablet_sample(bt_msg_writer *w)
{
    bt_msg_put_string(w, "/bt/master:7");
    put_tablet_sample(w);
    put_schema_sample(w);
    bt_msg_put_varint(w, TSP_LOAD_CREATE);
}

static const struct kind {
    const char *name;
    void (*put)(bt_msg_writer *w);
    int (*get)(bt_msg_reader *r);
} kinds[] = {
    {"tablet", put_tablet_sample, try_tablet},
    {"tablet_info", put_tablet_info_sample, try_tablet_info},
    {"schema", put_schema_sample, try_schema},
    {"mutations", put_mutations_sample, try_mutations},
    {"filter", put_filter_sample, try_filter},
    {"row", put_row_sample, try_row},
    {"scan_header", put_scan_header_sample, try_scan_header},
    {"rmw_rules", put_rules_sample, try_rules},
    {"batch_result", put_batch_result_sample, try_batch_result},
    {"status", put_status_sample, try_status},
    {"check_and_mutate", put_check_and_mutate_sample, try_check_and_mutate},
    {"load_tablet", put_load_tablet_sample, try_load_tablet},
};

/* Encodes with put into a fresh buffer (freed by the caller). */
static bt_buf encode(void (*put)(bt_msg_writer *w))
{
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    put(&w);
    cr_assert_eq(bt_msg_writer_status(&w), BT_OK);
    return b;
}

/* Runs get over the whole of b and returns its code; the error detail must be set. */
static int decode_all(const bt_buf *b, int (*get)(bt_msg_reader *r))
{
    bt_msg_reader r;
    bt_errclear();
    uint8_t *c = reader_on(&r, b, b->len);
    int rc = get(&r);
    if (rc) {
        cr_assert_neq(bt_errmsg()[0], '\0', "an error without a detail");
        cr_assert_eq(bt_msg_reader_status(&r), rc, "the error sticks in the reader");
    }
    free(c);
    return rc;
}

/* ---- layouts and method names -------------------------------------------------------- */

Test(ts_proto, method_names, .timeout = 10)
{
    static const char *const want[] = {
        "status", "load_tablet", "unload_tablet", "list_tablets", "mutate_row", "mutate_rows",
        "read_row", "scan_open", "scan_next", "scan_close", "check_and_mutate",
        "read_modify_write", "flush", "compact", "split", "bulk_prepare", "bulk_attach"};
    for (size_t i = 0; i < N_OF(want); i++)
        cr_assert_str_eq(tsp_method_name((uint16_t)(TSP_STATUS + i)), want[i]);
    cr_assert_eq(TSP_STATUS + N_OF(want) - 1, TSP_BULK_ATTACH);
    cr_assert_null(tsp_method_name(0));
    cr_assert_null(tsp_method_name(TSP_STATUS - 1));
    cr_assert_null(tsp_method_name(TSP_BULK_ATTACH + 1));
    cr_assert_null(tsp_method_name(UINT16_MAX));
}

Test(ts_proto, mutation_layout_is_byte_exact, .timeout = 10)
{
    const ts_mutation m = {.type = TS_DELETE_CELLS, .family = "cf", .family_len = 2,
                           .qualifier = (const uint8_t *)"q", .qualifier_len = 1,
                           .timestamp = TS_SERVER_TIME, .ts_from = -1, .ts_to = 2,
                           .value = (const uint8_t *)"\xff", .value_len = 1};
    const uint8_t want[] = {1,                                  /* n */
                            1,                                  /* type */
                            2, 'c', 'f', 1, 'q',                /* family, qualifier */
                            0, 0, 0, 0, 0, 0, 0, 0x80,          /* INT64_MIN, LE */
                            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* -1 */
                            2, 0, 0, 0, 0, 0, 0, 0,             /* 2 */
                            1, 0xff};                           /* value */
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    tsp_put_mutations(&w, &m, 1);
    cr_assert_eq(b.len, sizeof want);
    cr_assert_arr_eq(b.data, want, sizeof want);
    bt_buf_free(&b);
}

Test(ts_proto, tablet_layout_is_byte_exact, .timeout = 10)
{
    const tsp_tablet t = {.id = 300, .table = "t", .table_len = 1, .dir = "d/e", .dir_len = 3,
                          .start = (const uint8_t *)"a", .start_len = 1};
    const uint8_t want[] = {1, 't', 3, 'd', '/', 'e', 0xac, 0x02, 1, 'a', 0};
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    tsp_put_tablet(&w, &t);
    cr_assert_eq(b.len, sizeof want);
    cr_assert_arr_eq(b.data, want, sizeof want);
    bt_buf_free(&b);
}

/* ---- round trips ---------------------------------------------------------------------- */

Test(ts_proto, tablet_round_trip, .timeout = 10)
{
    bt_buf b = encode(put_tablet_info_sample);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    tsp_tablet_info ti;
    cr_assert_eq(tsp_get_tablet_info(&r, &ti), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
    same_tablet(&ti.tablet, &sample_tablet);
    cr_assert(ti.memtable_bytes == 1 && ti.sstable_bytes == 1u << 30 && ti.n_sstables == 0 &&
              ti.last_seq == UINT64_MAX);
    free(c);
    bt_buf_free(&b);
}

Test(ts_proto, schema_round_trip, .timeout = 10)
{
    ts_schema want, got;
    sample_schema(&want);
    bt_buf b = encode(put_schema_sample);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    cr_assert_eq(tsp_get_schema(&r, &got), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
    cr_assert_eq(memcmp(&got, &want, sizeof got), 0);
    free(c);
    bt_buf_free(&b);
}

Test(ts_proto, mutations_round_trip, .timeout = 10)
{
    bt_buf b = encode(put_mutations_sample);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    ts_mutation *m;
    int n;
    cr_assert_eq(tsp_get_mutations(&r, &m, &n), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
    cr_assert_eq(n, (int)N_OF(sample_muts));
    for (int i = 0; i < n; i++) same_mutation(&m[i], &sample_muts[i]);
    free(m);
    free(c);
    bt_buf_free(&b);
}

Test(ts_proto, no_mutations_allocates_nothing, .timeout = 10)
{
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    tsp_put_mutations(&w, NULL, 0);
    cr_assert_eq(b.len, 1);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    ts_mutation *m = (ts_mutation *)1;
    int n = -1;
    cr_assert_eq(tsp_get_mutations(&r, &m, &n), BT_OK);
    cr_assert_null(m);
    cr_assert_eq(n, 0);
    free(c);
    bt_buf_free(&b);
}

Test(ts_proto, filter_round_trip, .timeout = 10)
{
    bt_buf b = encode(put_filter_sample);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    ts_read_options o;
    ts_column_ref *cols;
    const ts_read_options *w = &sample_filter;
    cr_assert_eq(tsp_get_filter(&r, &o, &cols), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
    same(o.start_row, o.start_len, w->start_row, w->start_len);
    same(o.end_row, o.end_len, w->end_row, w->end_len);
    same(o.prefix, o.prefix_len, w->prefix, w->prefix_len);
    cr_assert_eq(o.columns, cols);
    cr_assert_eq(o.n_columns, w->n_columns);
    for (int i = 0; i < o.n_columns; i++) {
        same(cols[i].family, cols[i].family_len, w->columns[i].family, w->columns[i].family_len);
        same(cols[i].qualifier, cols[i].qualifier_len, w->columns[i].qualifier,
             w->columns[i].qualifier_len);
        cr_assert_eq(cols[i].qualifier == NULL, w->columns[i].qualifier == NULL, "column %d", i);
    }
    same(o.range_family, o.range_family_len, w->range_family, w->range_family_len);
    same(o.qual_from, o.qual_from_len, w->qual_from, w->qual_from_len);
    same(o.qual_to, o.qual_to_len, w->qual_to, w->qual_to_len);
    cr_assert(o.ts_from == INT64_MIN && o.ts_to == INT64_MAX);
    cr_assert(o.has_value_range && o.strip_value);
    same(o.value_from, o.value_from_len, w->value_from, w->value_from_len);
    same(o.value_to, o.value_to_len, w->value_to, w->value_to_len);
    cr_assert(o.versions == UINT32_MAX && o.cells_per_row == 7 && o.row_limit == UINT64_MAX);
    free(cols);
    free(c);
    bt_buf_free(&b);
}

Test(ts_proto, null_filter_is_the_empty_filter, .timeout = 10)
{
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    tsp_put_filter(&w, NULL);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    ts_read_options o;
    ts_column_ref *cols = (ts_column_ref *)1;
    cr_assert_eq(tsp_get_filter(&r, &o, &cols), BT_OK);
    cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
    cr_assert_null(cols);
    cr_assert_null(o.columns);
    cr_assert(o.n_columns == 0 && !o.strip_value && !o.has_value_range);
    cr_assert(o.start_len == 0 && o.end_len == 0 && o.prefix_len == 0 && o.range_family_len == 0);
    cr_assert(o.ts_from == 0 && o.ts_to == 0 && o.versions == 0 && o.row_limit == 0);
    free(c);
    bt_buf_free(&b);
}

Test(ts_proto, row_round_trip, .timeout = 10)
{
    bt_buf b = encode(put_row_sample);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    ts_row row;
    cr_assert_eq(tsp_get_row(&r, &row), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
    same_row(&row, &sample_row);
    tsp_row_release(&row);
    assert_zero(&row, sizeof row);
    free(c);
    bt_buf_free(&b);
}

Test(ts_proto, row_without_cells_has_null_cells, .timeout = 10)
{
    const ts_row empty = {.key = (const uint8_t *)"k", .key_len = 1};
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    tsp_put_row(&w, &empty);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    ts_row row;
    cr_assert_eq(tsp_get_row(&r, &row), BT_OK);
    cr_assert_null(row.cells);
    cr_assert_eq(row.n_cells, 0);
    same(row.key, row.key_len, "k", 1);
    tsp_row_release(&row);
    free(c);
    bt_buf_free(&b);
}

/* A scan batch is a header and rows up to the end of the payload. */
Test(ts_proto, scan_batch_round_trip, .timeout = 10)
{
    const ts_row rows[] = {sample_row, {.key = (const uint8_t *)"", .key_len = 0}};
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    tsp_put_scan_header(&w, UINT64_MAX, false);
    for (size_t i = 0; i < N_OF(rows); i++) tsp_put_row(&w, &rows[i]);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    uint64_t id;
    bool done;
    cr_assert_eq(tsp_get_scan_header(&r, &id, &done), BT_OK);
    cr_assert(id == UINT64_MAX && !done);
    size_t n = 0;
    for (; bt_msg_remaining(&r) > 0; n++) {
        ts_row row;
        cr_assert_lt(n, N_OF(rows));
        cr_assert_eq(tsp_get_row(&r, &row), BT_OK, "%s", bt_errmsg());
        same_row(&row, &rows[n]);
        tsp_row_release(&row);
    }
    cr_assert_eq(n, N_OF(rows));
    free(c);
    bt_buf_free(&b);
}

Test(ts_proto, rmw_rules_round_trip, .timeout = 10)
{
    bt_buf b = encode(put_rules_sample);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    tsp_rmw_rule *u;
    int n;
    cr_assert_eq(tsp_get_rmw_rules(&r, &u, &n), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
    cr_assert_eq(n, (int)N_OF(sample_rules));
    for (int i = 0; i < n; i++) {
        const tsp_rmw_rule *w = &sample_rules[i];
        same(u[i].family, u[i].family_len, w->family, w->family_len);
        same(u[i].qualifier, u[i].qualifier_len, w->qualifier, w->qualifier_len);
        cr_assert_eq(u[i].kind, w->kind);
        same(u[i].append, u[i].append_len, w->append, w->append_len);
        cr_assert_eq(u[i].increment, w->increment);
    }
    free(u);
    free(c);
    bt_buf_free(&b);
}

Test(ts_proto, batch_result_round_trip, .timeout = 10)
{
    bt_buf b = encode(put_batch_result_sample);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    int *st;
    size_t n, dlen;
    const uint8_t *d;
    cr_assert_eq(tsp_get_batch_result(&r, &st, &n, &d, &dlen), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
    cr_assert_eq(n, N_OF(sample_statuses));
    cr_assert_arr_eq(st, sample_statuses, sizeof sample_statuses);
    same(d, dlen, sample_detail, strlen(sample_detail));
    free(st);
    free(c);
    bt_buf_free(&b);

    /* an all-OK batch: no detail (NULL encodes as empty) */
    bt_msg_writer w;
    bt_buf e = {0};
    bt_msg_writer_init(&w, &e);
    tsp_put_batch_result(&w, (const int[]){BT_OK}, 1, NULL);
    c = reader_on(&r, &e, e.len);
    cr_assert_eq(tsp_get_batch_result(&r, &st, &n, &d, &dlen), BT_OK);
    cr_assert(n == 1 && st[0] == BT_OK && dlen == 0);
    free(st);
    free(c);
    bt_buf_free(&e);
}

Test(ts_proto, status_round_trip, .timeout = 10)
{
    bt_buf b = encode(put_status_sample);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    tsp_status s;
    const tsp_status *w = &sample_status;
    cr_assert_eq(tsp_get_status(&r, &s), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
    same(s.id, s.id_len, w->id, w->id_len);
    same(s.address, s.address_len, w->address, w->address_len);
    cr_assert_eq(s.start_time_us, -5);
    const uint64_t got[] = {s.n_tablets, s.memtable_bytes, s.sstable_bytes, s.reads, s.writes,
                            s.scanned_rows, s.log_appends, s.log_syncs, s.connections,
                            s.durability, s.lease_ms_left, s.open_scanners, s.compaction_queue};
    const uint64_t want[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, UINT64_MAX, 12};
    cr_assert_arr_eq(got, want, sizeof want);
    free(c);
    bt_buf_free(&b);
}

/* compaction_queue was appended later: a status without it (an older
 * server's) decodes, with the field 0. */
Test(ts_proto, status_without_appended_field, .timeout = 10)
{
    bt_buf b = encode(put_status_sample);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len - 1); /* 12 is one varint byte */
    tsp_status s;
    cr_assert_eq(tsp_get_status(&r, &s), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(s.open_scanners, UINT64_MAX);
    cr_assert_eq(s.compaction_queue, 0);
    free(c);
    bt_buf_free(&b);
}

Test(ts_proto, every_kind_decodes_its_encoding, .timeout = 10)
{
    for (size_t k = 0; k < N_OF(kinds); k++) {
        bt_buf b = encode(kinds[k].put);
        cr_assert_eq(decode_all(&b, kinds[k].get), BT_OK, "%s: %s", kinds[k].name, bt_errmsg());
        bt_buf_free(&b);
    }
}

/* ---- truncation and garbage ------------------------------------------------------------ */

Test(ts_proto, every_truncation_fails, .timeout = 30)
{
    for (size_t k = 0; k < N_OF(kinds); k++) {
        bt_buf b = encode(kinds[k].put);
        for (size_t cut = 0; cut < b.len; cut++) {
            /* status: the cut before its appended field is an older
             * server's complete status (status_without_appended_field) */
            if (!strcmp(kinds[k].name, "status") && cut == b.len - 1) continue;
            bt_msg_reader r;
            uint8_t *c = reader_on(&r, &b, cut);
            cr_assert_eq(kinds[k].get(&r), BT_ECORRUPT, "%s cut at %zu of %zu", kinds[k].name,
                         cut, b.len);
            cr_assert_leq(r.p - r.base, (ptrdiff_t)cut);
            free(c);
        }
        bt_buf_free(&b);
    }
}

/* Every byte of every kind flipped to each of a few values: any outcome but a
 * crash, a leak or an out-of-bounds read (ASan) is fine. */
Test(ts_proto, corrupted_bytes_never_crash, .timeout = 60)
{
    static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    for (size_t k = 0; k < N_OF(kinds); k++) {
        bt_buf b = encode(kinds[k].put);
        for (size_t i = 0; i < b.len; i++) {
            for (size_t v = 0; v < N_OF(vals); v++) {
                uint8_t save = b.data[i];
                b.data[i] = vals[v];
                bt_msg_reader r;
                uint8_t *c = reader_on(&r, &b, b.len);
                int rc = kinds[k].get(&r);
                cr_assert(rc == BT_OK || rc == BT_ECORRUPT || rc == BT_EINVAL, "%s: %d",
                          kinds[k].name, rc);
                free(c);
                b.data[i] = save;
            }
        }
        bt_buf_free(&b);
    }
}

/* A message: one varint count after `lead` (raw bytes), then `zeros` zero bytes. */
static bt_buf count_msg(const void *lead, size_t lead_len, uint64_t count, size_t zeros)
{
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    cr_assert_eq(bt_buf_append(&b, lead, lead_len), BT_OK);
    bt_msg_put_varint(&w, count);
    uint8_t *z = calloc(1, zeros + 1);
    cr_assert_not_null(z);
    cr_assert_eq(bt_buf_append(&b, z, zeros), BT_OK);
    free(z);
    return b;
}

static int decode_count_msg(const void *lead, size_t lead_len, uint64_t count, size_t zeros,
                            int (*get)(bt_msg_reader *r))
{
    bt_buf b = count_msg(lead, lead_len, count, zeros);
    int rc = decode_all(&b, get);
    bt_buf_free(&b);
    return rc;
}

/* An all-zero entry is the smallest of each list: n of them (and the fields
 * after the list) decode, one more claimed than present is corrupt. */
Test(ts_proto, smallest_entries_fill_a_list_exactly, .timeout = 10)
{
    static const uint8_t filter_lead[] = {0, 0, 0, 0}; /* flags, start, end, prefix */
    static const uint8_t row_lead[] = {0};             /* key */
    static const struct {
        const char *name;
        const void *lead;
        size_t lead_len, entry, trailer;
        int (*get)(bt_msg_reader *r);
    } lists[] = {
        {"mutations", NULL, 0, 28, 0, try_mutations},
        {"columns", filter_lead, sizeof filter_lead, 3, 3 + 16 + 2 + 3, try_filter},
        {"cells", row_lead, 1, 11, 0, try_row},
        {"statuses", NULL, 0, 1, 1, try_batch_result},
    };
    for (size_t i = 0; i < N_OF(lists); i++) {
        const size_t n = 100, bytes = n * lists[i].entry + lists[i].trailer;
        cr_assert_eq(decode_count_msg(lists[i].lead, lists[i].lead_len, n, bytes, lists[i].get),
                     BT_OK, "%s: %s", lists[i].name, bt_errmsg());
        cr_assert_eq(decode_count_msg(lists[i].lead, lists[i].lead_len, n + 1, bytes,
                                      lists[i].get),
                     BT_ECORRUPT, "%s", lists[i].name);
    }
}

Test(ts_proto, huge_counts_fail_without_allocating, .timeout = 10)
{
    static const uint8_t filter_lead[] = {0, 0, 0, 0};
    static const uint8_t row_lead[] = {0};
    static const uint64_t huge[] = {UINT32_MAX, (uint64_t)1 << 40, UINT64_MAX};
    for (size_t i = 0; i < N_OF(huge); i++) {
        cr_assert_eq(decode_count_msg(NULL, 0, huge[i], 64, try_mutations), BT_EINVAL);
        cr_assert_eq(decode_count_msg(NULL, 0, huge[i], 64, try_rules), BT_EINVAL);
        cr_assert_eq(decode_count_msg(filter_lead, 4, huge[i], 64, try_filter), BT_EINVAL);
        cr_assert_eq(decode_count_msg(row_lead, 1, huge[i], 64, try_row), BT_ECORRUPT);
        cr_assert_eq(decode_count_msg(NULL, 0, huge[i], 64, try_batch_result), BT_ECORRUPT);
        cr_assert_eq(decode_count_msg(NULL, 0, huge[i], 64, try_schema), BT_EINVAL);
    }
    /* over the limit with every byte present is still out of range */
    cr_assert_eq(decode_count_msg(NULL, 0, TSP_MAX_MUTATIONS + 1, 28 * (TSP_MAX_MUTATIONS + 1),
                                  try_mutations),
                 BT_EINVAL);
    cr_assert_eq(decode_count_msg(filter_lead, 4, TSP_MAX_COLUMNS + 1,
                                  3 * (TSP_MAX_COLUMNS + 1) + 24, try_filter),
                 BT_EINVAL);
    cr_assert_eq(decode_count_msg(NULL, 0, TSP_MAX_MUTATIONS + 1, 12 * (TSP_MAX_MUTATIONS + 1),
                                  try_rules),
                 BT_EINVAL);
}

Test(ts_proto, decoders_fail_on_a_failed_reader, .timeout = 10)
{
    for (size_t k = 0; k < N_OF(kinds); k++) {
        bt_buf b = encode(kinds[k].put);
        bt_msg_reader r;
        uint8_t *c = reader_on(&r, &b, b.len);
        r.err = BT_ECORRUPT;
        cr_assert_eq(kinds[k].get(&r), BT_ECORRUPT, "%s", kinds[k].name);
        free(c);
        bt_buf_free(&b);
    }
}

/* ---- range checks ----------------------------------------------------------------------- */

static int decode_tablet(const char *table, size_t table_len, const char *dir, size_t dir_len)
{
    tsp_tablet t = {.table = table, .table_len = table_len, .dir = dir, .dir_len = dir_len};
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    tsp_put_tablet(&w, &t);
    int rc = decode_all(&b, try_tablet);
    bt_buf_free(&b);
    return rc;
}

static int decode_dir(const char *dir) { return decode_tablet("t", 1, dir, strlen(dir)); }
static int decode_table(const char *table) { return decode_tablet(table, strlen(table), "d", 1); }

Test(ts_proto, bad_tablet_dirs_rejected, .timeout = 10)
{
    static const char *const bad[] = {"/abs", "a/../b", "a//b", ".", "", "..", "a/", "a/.",
                                      "./a", "a/./b", "../a", "/"};
    for (size_t i = 0; i < N_OF(bad); i++) {
        cr_assert_eq(decode_dir(bad[i]), BT_EINVAL, "\"%s\"", bad[i]);
        cr_assert_not_null(strstr(bt_errmsg(), "tablet dir"), "%s", bt_errmsg());
    }
    cr_assert_eq(decode_tablet("t", 1, "a\0b", 3), BT_EINVAL, "NUL inside");
    char long_dir[TSP_MAX_DIR + 2];
    memset(long_dir, 'd', sizeof long_dir - 1);
    long_dir[TSP_MAX_DIR + 1] = '\0';
    cr_assert_eq(decode_dir(long_dir), BT_EINVAL);
    long_dir[TSP_MAX_DIR] = '\0';
    cr_assert_eq(decode_dir(long_dir), BT_OK);

    static const char *const good[] = {"a", "tables/users/t17", "a/.b/..c/...", "a b/c"};
    for (size_t i = 0; i < N_OF(good); i++)
        cr_assert_eq(decode_dir(good[i]), BT_OK, "\"%s\": %s", good[i], bt_errmsg());
}

Test(ts_proto, bad_table_names_rejected, .timeout = 10)
{
    static const char *const bad[] = {
        "", "a b", "a/b", "t\xc3\xbc", "a:b", "x*",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}; /* 65 */
    for (size_t i = 0; i < N_OF(bad); i++) {
        cr_assert_eq(decode_table(bad[i]), BT_EINVAL, "\"%s\"", bad[i]);
        cr_assert_not_null(strstr(bt_errmsg(), "table name"), "%s", bt_errmsg());
    }
    cr_assert_eq(decode_tablet("a\0b", 3, "d", 1), BT_EINVAL, "NUL inside");
    static const char *const good[] = {
        "A-z_0.9", "t",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}; /* 64 */
    for (size_t i = 0; i < N_OF(good); i++)
        cr_assert_eq(decode_table(good[i]), BT_OK, "\"%s\": %s", good[i], bt_errmsg());
}

/* Raw schema pieces, for schemas ts_schema cannot even hold. */
static void raw_group(bt_msg_writer *w, const char *name, size_t n, uint64_t flags, uint64_t bloom)
{
    bt_msg_put_bytes(w, name, n);
    bt_msg_put_varint(w, flags);
    bt_msg_put_varint(w, bloom);
    bt_msg_put_varint(w, 4096);
}

static void raw_family(bt_msg_writer *w, const char *name, size_t n, uint64_t gc, uint64_t group)
{
    bt_msg_put_bytes(w, name, n);
    bt_msg_put_varint(w, 1);
    bt_msg_put_fixed64(w, 0);
    bt_msg_put_varint(w, gc);
    bt_msg_put_varint(w, group);
}

/* One "default" group (flags, bloom) and one family (name, gc, group). */
static int decode_raw_schema(uint64_t flags, uint64_t bloom, const char *fam, size_t fam_len,
                             uint64_t gc, uint64_t group)
{
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    bt_msg_put_varint(&w, 1);
    raw_group(&w, "default", 7, flags, bloom);
    bt_msg_put_varint(&w, 1);
    raw_family(&w, fam, fam_len, gc, group);
    int rc = decode_all(&b, try_schema);
    bt_buf_free(&b);
    return rc;
}

static int decode_schema(const ts_schema *s)
{
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    tsp_put_schema(&w, s);
    int rc = decode_all(&b, try_schema);
    bt_buf_free(&b);
    return rc;
}

Test(ts_proto, bad_schemas_rejected, .timeout = 10)
{
    ts_schema s;
    sample_schema(&s);
    s.n_groups = 0;
    cr_assert_eq(decode_schema(&s), BT_EINVAL, "zero groups");
    sample_schema(&s);
    s.families[1].group = 2;
    cr_assert_eq(decode_schema(&s), BT_EINVAL, "group index past n_groups");
    cr_assert_not_null(strstr(bt_errmsg(), "locality group 2"), "%s", bt_errmsg());
    sample_schema(&s);
    s.families[1].group = TS_MAX_GROUPS;
    cr_assert_eq(decode_schema(&s), BT_EINVAL, "group index past TS_MAX_GROUPS");
    sample_schema(&s);
    strcpy(s.families[1].name, "cf");
    cr_assert_eq(decode_schema(&s), BT_EINVAL, "duplicate family");
    sample_schema(&s);
    s.groups[1].block_size = 100;
    cr_assert_eq(decode_schema(&s), BT_EINVAL, "block size");

    char name[TS_MAX_NAME + 1];
    memset(name, 'f', sizeof name);
    cr_assert_eq(decode_raw_schema(0, 0, name, TS_MAX_NAME, 0, 0), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(decode_raw_schema(0, 0, name, TS_MAX_NAME + 1, 0, 0), BT_EINVAL, "long name");
    cr_assert_eq(decode_raw_schema(0, 0, "f\0g", 3, 0, 0), BT_EINVAL, "NUL in a name");
    cr_assert_eq(decode_raw_schema(0, 0, "", 0, 0, 0), BT_EINVAL, "empty name");
    cr_assert_eq(decode_raw_schema(0, 0, "f:g", 3, 0, 0), BT_EINVAL, "bad character");
    cr_assert_eq(decode_raw_schema(4, 0, "f", 1, 0, 0), BT_EINVAL, "unknown group flag");
    cr_assert_eq(decode_raw_schema(0, 3, "f", 1, 0, 0), BT_EINVAL, "unknown bloom");
    cr_assert_eq(decode_raw_schema(0, 0, "f", 1, 2, 0), BT_EINVAL, "gc_intersection 2");
    cr_assert_eq(decode_raw_schema(0, 0, "f", 1, 0, 1), BT_EINVAL, "group 1 of 1");
    cr_assert_eq(decode_raw_schema(0, 0, "f", 1, 0, (uint64_t)1 << 32), BT_EINVAL,
                 "an index that would wrap to 0 as an int");
    cr_assert_eq(decode_count_msg(NULL, 0, TS_MAX_GROUPS + 1, 4 * (TS_MAX_GROUPS + 1) + 1,
                                  try_schema),
                 BT_EINVAL, "too many groups");
}

Test(ts_proto, too_many_families_rejected, .timeout = 10)
{
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    bt_msg_put_varint(&w, 1);
    raw_group(&w, "default", 7, 0, 0);
    bt_msg_put_varint(&w, TS_MAX_FAMILIES + 1);
    for (int i = 0; i <= TS_MAX_FAMILIES; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        raw_family(&w, name, strlen(name), 0, 0);
    }
    cr_assert_eq(decode_all(&b, try_schema), BT_EINVAL);
    bt_buf_free(&b);
}

Test(ts_proto, unknown_mutation_type_rejected, .timeout = 10)
{
    const uint64_t bad[] = {TS_DELETE_ROW + 1, 1000, INT32_MAX};
    for (size_t i = 0; i < N_OF(bad); i++) {
        ts_mutation m[2] = {sample_muts[0], sample_muts[0]};
        m[1].type = (ts_mutation_type)bad[i]; /* the second one: the first is freed */
        bt_buf b = {0};
        bt_msg_writer w;
        bt_msg_writer_init(&w, &b);
        tsp_put_mutations(&w, m, 2);
        cr_assert_eq(decode_all(&b, try_mutations), BT_EINVAL);
        cr_assert_not_null(strstr(bt_errmsg(), "mutation type"), "%s", bt_errmsg());
        bt_buf_free(&b);
    }
}

Test(ts_proto, bad_rmw_rules_rejected, .timeout = 10)
{
    tsp_rmw_rule u[2] = {sample_rules[0], sample_rules[1]};
    u[1].kind = (tsp_rmw_kind)2;
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    tsp_put_rmw_rules(&w, u, 2);
    cr_assert_eq(decode_all(&b, try_rules), BT_EINVAL);
    cr_assert_not_null(strstr(bt_errmsg(), "kind"), "%s", bt_errmsg());
    bt_buf_clear(&b);
    tsp_put_rmw_rules(&w, NULL, 0);
    cr_assert_eq(decode_all(&b, try_rules), BT_EINVAL, "no rule");
    cr_assert_not_null(strstr(bt_errmsg(), "at least one"), "%s", bt_errmsg());
    bt_buf_free(&b);
}

/* Filter with flags and one column (family "cf", has_qualifier, qualifier). */
static int decode_raw_filter(uint64_t flags, uint64_t has_q, const char *q)
{
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    bt_msg_put_varint(&w, flags);
    for (int i = 0; i < 3; i++) bt_msg_put_bytes(&w, NULL, 0);
    bt_msg_put_varint(&w, 1);
    bt_msg_put_string(&w, "cf");
    bt_msg_put_varint(&w, has_q);
    bt_msg_put_string(&w, q);
    for (int i = 0; i < 3; i++) bt_msg_put_bytes(&w, NULL, 0);
    bt_msg_put_fixed64(&w, 0);
    bt_msg_put_fixed64(&w, 0);
    for (int i = 0; i < 5; i++) bt_msg_put_varint(&w, 0); /* value range, limits */
    int rc = decode_all(&b, try_filter);
    bt_buf_free(&b);
    return rc;
}

Test(ts_proto, bad_filters_rejected, .timeout = 10)
{
    cr_assert_eq(decode_raw_filter(3, 1, "q"), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(decode_raw_filter(0, 0, ""), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(decode_raw_filter(4, 1, "q"), BT_EINVAL, "unknown flag");
    cr_assert_eq(decode_raw_filter(0, 2, "q"), BT_EINVAL, "has_qualifier 2");
    cr_assert_eq(decode_raw_filter(0, 0, "q"), BT_EINVAL, "whole family with a qualifier");
}

Test(ts_proto, bad_flags_and_codes_rejected, .timeout = 10)
{
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    bt_msg_put_varint(&w, 9);
    bt_msg_put_varint(&w, 2);
    cr_assert_eq(decode_all(&b, try_scan_header), BT_EINVAL, "done flag 2");

    bt_buf_clear(&b);
    bt_msg_put_varint(&w, 2);
    bt_msg_put_varint(&w, 1);
    bt_msg_put_varint(&w, (uint64_t)INT_MAX + 1);
    bt_msg_put_bytes(&w, NULL, 0);
    cr_assert_eq(decode_all(&b, try_batch_result), BT_EINVAL, "status code out of range");
    bt_buf_free(&b);
}

/* ---- TSP_LOAD_TABLET answer --------------------------------------------------------------- */

static const uint8_t MID[] = {'m', 0x00, 0xff};

static const tsp_load_answer sample_split_answer = {
    .state = TSP_LOAD_STATE_SPLIT, .mid = MID, .mid_len = sizeof MID,
    .left = {.id = 5, .table = "users", .table_len = 5, .dir = "tables/users/0000000000000005", .dir_len = 29,
             .start = BIN, .start_len = sizeof BIN, .end = MID, .end_len = sizeof MID},
    .right = {.id = UINT64_MAX >> 1, .table = "users", .table_len = 5, .dir = "tables/users/r", .dir_len = 14,
              .start = MID, .start_len = sizeof MID, .end = NULL, .end_len = 0}};

static void put_split_answer_sample(bt_msg_writer *w) { tsp_put_load_answer(w, &sample_split_answer); }

static int try_load_answer(bt_msg_reader *r)
{
    tsp_load_answer a;
    int rc = tsp_get_load_answer(r, &a);
    if (rc) assert_zero(&a, sizeof a);
    return rc;
}

Test(ts_proto, load_answer_round_trip, .timeout = 10)
{
    /* loaded: one varint */
    tsp_load_answer loaded = {.state = TSP_LOAD_STATE_LOADED}, got;
    bt_buf b = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &b);
    tsp_put_load_answer(&w, &loaded);
    cr_assert_eq(b.len, 1);
    cr_assert_eq(b.data[0], 0);
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    cr_assert_eq(tsp_get_load_answer(&r, &got), BT_OK);
    cr_assert_eq(got.state, TSP_LOAD_STATE_LOADED);
    cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
    free(c);
    bt_buf_free(&b);

    /* an empty answer (a server from before the field) reads as loaded */
    bt_msg_reader_init(&r, NULL, 0);
    cr_assert_eq(tsp_get_load_answer(&r, &got), BT_OK);
    cr_assert_eq(got.state, TSP_LOAD_STATE_LOADED);

    /* split: mid and both children, zero-copy */
    b = encode(put_split_answer_sample);
    c = reader_on(&r, &b, b.len);
    cr_assert_eq(tsp_get_load_answer(&r, &got), BT_OK, "%s", bt_errmsg());
    cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
    cr_assert_eq(got.state, TSP_LOAD_STATE_SPLIT);
    same(got.mid, got.mid_len, MID, sizeof MID);
    same_tablet(&got.left, &sample_split_answer.left);
    same_tablet(&got.right, &sample_split_answer.right);
    free(c);

    /* fields appended by a later version are ignored */
    cr_assert_eq(bt_buf_append(&b, "\x07\x01z", 3), BT_OK);
    c = reader_on(&r, &b, b.len);
    cr_assert_eq(tsp_get_load_answer(&r, &got), BT_OK, "%s", bt_errmsg());
    same_tablet(&got.right, &sample_split_answer.right);
    free(c);
    bt_buf_free(&b);
}

Test(ts_proto, load_answer_truncations_and_garbage, .timeout = 30)
{
    bt_buf b = encode(put_split_answer_sample);
    for (size_t cut = 1; cut < b.len; cut++) {
        bt_msg_reader r;
        uint8_t *c = reader_on(&r, &b, cut);
        cr_assert_eq(try_load_answer(&r), BT_ECORRUPT, "cut at %zu of %zu", cut, b.len);
        cr_assert_leq(r.p - r.base, (ptrdiff_t)cut);
        free(c);
    }
    static const uint8_t vals[] = {0x00, 0x01, 0x02, 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < b.len; i++) {
        for (size_t v = 0; v < N_OF(vals); v++) {
            uint8_t save = b.data[i];
            b.data[i] = vals[v];
            bt_msg_reader r;
            uint8_t *c = reader_on(&r, &b, b.len);
            int rc = try_load_answer(&r);
            cr_assert(rc == BT_OK || rc == BT_ECORRUPT || rc == BT_EINVAL, "byte %zu: %d", i, rc);
            free(c);
            b.data[i] = save;
        }
    }
    bt_msg_reader r;
    uint8_t *c = reader_on(&r, &b, b.len);
    r.err = BT_ECORRUPT;
    cr_assert_eq(try_load_answer(&r), BT_ECORRUPT, "a failed reader stays failed");
    free(c);
    bt_buf_free(&b);

    /* an unknown state, a child with a bad dir or table name */
    const uint8_t unknown[] = {2};
    bt_buf u = {0};
    cr_assert_eq(bt_buf_append(&u, unknown, 1), BT_OK);
    cr_assert_eq(decode_all(&u, try_load_answer), BT_EINVAL);
    bt_buf_free(&u);
    tsp_load_answer bad = sample_split_answer;
    bad.right.dir = "/abs";
    bad.right.dir_len = 4;
    bt_msg_writer w;
    bt_msg_writer_init(&w, &u);
    tsp_put_load_answer(&w, &bad);
    cr_assert_eq(decode_all(&u, try_load_answer), BT_EINVAL);
    bt_buf_free(&u);
    bad = sample_split_answer;
    bad.left.table = "no/slash";
    bad.left.table_len = 8;
    bt_msg_writer_init(&w, &u);
    tsp_put_load_answer(&w, &bad);
    cr_assert_eq(decode_all(&u, try_load_answer), BT_EINVAL);
    bt_buf_free(&u);
}

/* tests/unit/test_bt_api.c: libbt, the public client SDK (client/bt.h).
 *
 * Suite bt_api: the builders (mutations, filters, schemas, rmw), argument
 * checks and connect errors, without a cluster.
 *
 * Suite ts (tests/unit/ts_fixture.h: real bt-lockd and bt-tabletserver
 * processes, no master): the test plays the master's part by hand (loads a
 * root tablet, two METADATA tablets and a table's tablets, writes their
 * METADATA rows, /bt/root and /bt/schema/<table>) and drives the data path
 * through libbt: the three-level lookup and its round trips, the cache,
 * writes, batches, reads, scans across tablets, row sets, conditional and
 * atomic updates, and recovery from unloaded, reloaded and split tablets.
 */
#include <pthread.h>

#include "client/bt.h"
#include "client/bt_internal.h"
#include "client/meta.h"
#include "tests/unit/ts_fixture.h"

/* ==== without a cluster ==================================================== */

Test(bt_api, mutation_builder_limits)
{
    bt_mutation *m = bt_mutation_new("row", 3);
    cr_assert_not_null(m);
    cr_assert_eq(bt_mutation_len(m), 0);
    cr_assert_eq(bt_mutation_set(m, "cf", "q", 1, 5, "v", 1), BT_OK);
    cr_assert_eq(bt_mutation_set(m, "cf", NULL, 0, BT_SERVER_TIME, NULL, 0), BT_OK);
    cr_assert_eq(bt_mutation_len(m), 2);

    /* bad family names */
    cr_assert_eq(bt_mutation_set(m, "bad name", "q", 1, 1, "v", 1), BT_EINVAL);
    cr_assert(strstr(bt_errmsg(), "bad name"), "detail: %s", bt_errmsg());
    cr_assert_eq(bt_mutation_set(m, "", "q", 1, 1, "v", 1), BT_EINVAL);
    cr_assert_eq(bt_mutation_set(m, NULL, "q", 1, 1, "v", 1), BT_EINVAL);
    char longname[70];
    memset(longname, 'a', 65);
    longname[65] = 0;
    cr_assert_eq(bt_mutation_delete_family(m, longname), BT_EINVAL);

    /* sizes: checked before anything is read or copied */
    static char small[8];
    cr_assert_eq(bt_mutation_set(m, "cf", small, TS_MAX_QUALIFIER + 1, 1, "v", 1), BT_ETOOBIG);
    cr_assert(strstr(bt_errmsg(), "qualifier"), "detail: %s", bt_errmsg());
    cr_assert_eq(bt_mutation_set(m, "cf", "q", 1, 1, small, (size_t)TS_MAX_VALUE + 1), BT_ETOOBIG);
    cr_assert(strstr(bt_errmsg(), "value"), "detail: %s", bt_errmsg());

    /* timestamps */
    cr_assert_eq(bt_mutation_set(m, "cf", "q", 1, -5, "v", 1), BT_EINVAL);
    cr_assert_eq(bt_mutation_set(m, "cf", "q", 1, INT64_MAX, "v", 1), BT_EINVAL);
    cr_assert_eq(bt_mutation_delete_cells(m, "cf", "q", 1, 10, 5), BT_EINVAL);
    cr_assert_eq(bt_mutation_delete_cells(m, "cf", "q", 1, -1, 0), BT_EINVAL);
    cr_assert_eq(bt_mutation_delete_cells(m, "cf", small, TS_MAX_QUALIFIER + 1, 0, 0), BT_ETOOBIG);
    /* a failed call leaves the mutation unchanged */
    cr_assert_eq(bt_mutation_len(m), 2);

    cr_assert_eq(bt_mutation_delete_cells(m, "cf", "q", 1, 0, 0), BT_OK);
    cr_assert_eq(bt_mutation_delete_family(m, "cf"), BT_OK);
    cr_assert_eq(bt_mutation_delete_row(m), BT_OK);
    cr_assert_eq(bt_mutation_len(m), 5);

    const ts_mutation *tm;
    int n;
    cr_assert_eq(bt_mutation_to_ts(m, &tm, &n), BT_OK);
    cr_assert_eq(n, 5);
    cr_assert_eq(tm[0].type, TS_SET_CELL);
    cr_assert(tsf_bytes_eq(tm[0].family, tm[0].family_len, "cf"));
    cr_assert(tsf_bytes_eq(tm[0].value, tm[0].value_len, "v"));
    cr_assert_eq(tm[1].timestamp, TS_SERVER_TIME);
    cr_assert_eq(tm[4].type, TS_DELETE_ROW);
    const uint8_t *row;
    size_t rl;
    bt_mutation_row(m, &row, &rl);
    cr_assert(tsf_bytes_eq(row, rl, "row"));

    bt_mutation_clear(m);
    cr_assert_eq(bt_mutation_len(m), 0);
    cr_assert_eq(bt_mutation_set(m, "cf", "q", 1, 1, "v", 1), BT_OK);
    bt_mutation_free(m);

    /* an empty row key is accepted by the builder, refused by bt_apply */
    m = bt_mutation_new(NULL, 0);
    cr_assert_not_null(m);
    bt_mutation_free(m);
}

Test(bt_api, filter_builder_errors)
{
    bt_filter *f = bt_filter_new();
    cr_assert_not_null(f);
    cr_assert_eq(bt_filter_family(f, "cf"), BT_OK);
    cr_assert_eq(bt_filter_family(f, "no good"), BT_EINVAL);
    cr_assert_eq(bt_filter_family(f, NULL), BT_EINVAL);
    cr_assert_eq(bt_filter_column(f, "cf", "q", 1), BT_OK);
    static char big[8];
    cr_assert_eq(bt_filter_column(f, "cf", big, TS_MAX_QUALIFIER + 1), BT_ETOOBIG);
    cr_assert_eq(bt_filter_column_range(f, "cf", "a", 1, "c", 1), BT_OK);
    cr_assert_eq(bt_filter_column_range(f, "cf", "a", 1, "c", 1), BT_EINVAL);
    cr_assert(strstr(bt_errmsg(), "one column range"), "detail: %s", bt_errmsg());
    cr_assert_eq(bt_filter_timestamp_range(f, 10, 5), BT_EINVAL);
    cr_assert_eq(bt_filter_timestamp_range(f, -1, 0), BT_EINVAL);
    cr_assert_eq(bt_filter_timestamp_range(f, 10, 100), BT_OK);
    cr_assert_eq(bt_filter_timestamp_range(f, 50, 0), BT_OK);       /* chained: [50, 100) */
    cr_assert_eq(bt_filter_timestamp_range(f, 200, 300), BT_EINVAL); /* no overlap */
    cr_assert_eq(bt_filter_versions(f, 0), BT_EINVAL);
    cr_assert_eq(bt_filter_versions(f, 3), BT_OK);
    cr_assert_eq(bt_filter_versions(f, 5), BT_OK);
    cr_assert_eq(bt_filter_cells_per_row(f, 0), BT_EINVAL);
    cr_assert_eq(bt_filter_cells_per_row(f, 7), BT_OK);
    cr_assert_eq(bt_filter_value_range(f, "b", 1, "y", 1), BT_OK);
    cr_assert_eq(bt_filter_value_range(f, "a", 1, "m", 1), BT_OK); /* chained: [b, m) */
    cr_assert_eq(bt_filter_strip_value(f), BT_OK);

    const ts_read_options *o = bt_filter_to_ts(f);
    cr_assert_eq(o->n_columns, 2);
    cr_assert_null(o->columns[0].qualifier);
    cr_assert(tsf_bytes_eq(o->columns[1].qualifier, o->columns[1].qualifier_len, "q"));
    cr_assert_eq(o->ts_from, 50);
    cr_assert_eq(o->ts_to, 100);
    cr_assert_eq(o->versions, 3);
    cr_assert_eq(o->cells_per_row, 7);
    cr_assert(o->has_value_range);
    cr_assert(tsf_bytes_eq(o->value_from, o->value_from_len, "b"));
    cr_assert(tsf_bytes_eq(o->value_to, o->value_to_len, "m"));
    cr_assert(o->strip_value);
    cr_assert(tsf_bytes_eq(o->range_family, o->range_family_len, "cf"));
    bt_filter_free(f);

    cr_assert_eq(bt_filter_family(NULL, "cf"), BT_EINVAL);
    cr_assert_null(bt_filter_to_ts(NULL));
}

Test(bt_api, rmw_builder)
{
    bt_rmw *r = bt_rmw_new();
    cr_assert_not_null(r);
    cr_assert_eq(bt_rmw_append(r, "cf", "q", 1, "x", 1), BT_OK);
    cr_assert_eq(bt_rmw_increment(r, "cf", "n", 1, 5), BT_OK);
    cr_assert_eq(bt_rmw_append(r, "bad family", "q", 1, "x", 1), BT_EINVAL);
    static char big[8];
    cr_assert_eq(bt_rmw_increment(r, "cf", big, TS_MAX_QUALIFIER + 1, 1), BT_ETOOBIG);
    cr_assert_eq(bt_rmw_append(r, "cf", "q", 1, big, (size_t)TS_MAX_VALUE + 1), BT_ETOOBIG);
    bt_rmw_free(r);
}

Test(bt_api, schema_builder)
{
    bt_schema *s = bt_schema_new();
    cr_assert_not_null(s);
    cr_assert_eq(bt_schema_n_families(s), 0);
    cr_assert_eq(bt_schema_n_groups(s), 1);
    bt_group_info g;
    cr_assert_eq(bt_schema_group(s, 0, &g), BT_OK);
    cr_assert_str_eq(g.name, "default");
    cr_assert(g.compress);
    cr_assert_eq(g.bloom, BT_BLOOM_ROW);
    cr_assert_eq(g.block_size, 4096);
    cr_assert_not(g.in_memory);

    cr_assert_eq(bt_schema_add_family(s, "cf", 3, 0), BT_OK);
    cr_assert_eq(bt_schema_add_family(s, "cf", 1, 0), BT_EINVAL); /* duplicate */
    cr_assert_eq(bt_schema_add_family(s, "bad name", 1, 0), BT_EINVAL);
    cr_assert_eq(bt_schema_add_family(s, "old", 0, 86400000000LL), BT_OK);
    cr_assert_eq(bt_schema_add_family(s, "neg", 0, -1), BT_EINVAL);
    cr_assert_eq(bt_schema_n_families(s), 2);

    bt_group_info hot = {.name = "hot", .compress = false, .in_memory = true, .bloom = BT_BLOOM_ROW_COLUMN};
    cr_assert_eq(bt_schema_set_group(s, &hot), BT_OK);
    bt_group_info bad = {.name = "x", .block_size = 10};
    cr_assert_eq(bt_schema_set_group(s, &bad), BT_EINVAL);
    bt_group_info badname = {.name = "no way"};
    cr_assert_eq(bt_schema_set_group(s, &badname), BT_EINVAL);
    cr_assert_eq(bt_schema_n_groups(s), 2);
    cr_assert_eq(bt_schema_group(s, 1, &g), BT_OK);
    cr_assert_str_eq(g.name, "hot");
    cr_assert(g.in_memory);
    cr_assert_not(g.compress);
    cr_assert_eq(g.bloom, BT_BLOOM_ROW_COLUMN);
    cr_assert_eq(g.block_size, 4096);
    /* change "default" */
    bt_group_info def = {.name = "default", .compress = false, .bloom = BT_BLOOM_NONE, .block_size = 8192};
    cr_assert_eq(bt_schema_set_group(s, &def), BT_OK);
    cr_assert_eq(bt_schema_group(s, 0, &g), BT_OK);
    cr_assert_not(g.compress);
    cr_assert_eq(g.block_size, 8192);
    cr_assert_eq(bt_schema_n_groups(s), 2);

    cr_assert_eq(bt_schema_set_family_group(s, "cf", "hot"), BT_OK);
    cr_assert_eq(bt_schema_set_family_group(s, "cf", "nogroup"), BT_ENOTFOUND);
    cr_assert_eq(bt_schema_set_family_group(s, "nofam", "hot"), BT_ENOTFOUND);
    cr_assert_eq(bt_schema_set_gc_intersection(s, "old", true), BT_OK);
    cr_assert_eq(bt_schema_set_gc_intersection(s, "nofam", true), BT_ENOTFOUND);

    bt_family_info fi;
    cr_assert_eq(bt_schema_family(s, 0, &fi), BT_OK);
    cr_assert_str_eq(fi.name, "cf");
    cr_assert_eq(fi.max_versions, 3);
    cr_assert_str_eq(fi.group, "hot");
    cr_assert_eq(bt_schema_family(s, 1, &fi), BT_OK);
    cr_assert_str_eq(fi.name, "old");
    cr_assert_eq(fi.max_age_us, 86400000000LL);
    cr_assert(fi.gc_intersection);
    cr_assert_str_eq(fi.group, "default");
    cr_assert_eq(bt_schema_family(s, 2, &fi), BT_EINVAL);
    cr_assert_eq(bt_schema_group(s, 2, &g), BT_EINVAL);
    cr_assert_eq(ts_schema_validate(bt_schema_ts(s)), BT_OK);
    bt_schema_free(s);
}

Test(bt_api, connect_bad_url_and_options)
{
    bt_client *c = (bt_client *)1;
    cr_assert_eq(bt_connect("http://127.0.0.1:7000", NULL, &c), BT_EINVAL);
    cr_assert_null(c);
    cr_assert(strstr(bt_errmsg(), "bt://"), "detail: %s", bt_errmsg());
    cr_assert_eq(bt_connect(NULL, NULL, &c), BT_EINVAL);
    cr_assert_eq(bt_connect("bt://nohostport", NULL, &c), BT_EINVAL);
    cr_assert_eq(bt_connect("bt://127.0.0.1:99999", NULL, &c), BT_EINVAL);
    bt_client_options o = {.timeout_ms = -1};
    cr_assert_eq(bt_connect("bt://127.0.0.1:7000", &o, &c), BT_EINVAL);
    cr_assert_null(c);
}

Test(bt_api, connect_unreachable_lock_service, .timeout = 30)
{
    /* a port nothing listens on: refused at once, well within the bound */
    bt_client *c = NULL;
    bt_client_options o = {.rpc_timeout_ms = 2000};
    int64_t t0 = tsf_now_ms();
    int rc = bt_connect("bt://127.0.0.1:1", &o, &c);
    int64_t ms = tsf_now_ms() - t0;
    cr_assert_eq(rc, BT_EUNAVAIL, "%s: %s", bt_errname(rc), bt_errmsg());
    cr_assert_null(c);
    cr_assert_lt(ms, 10000, "took %lld ms", (long long)ms);
    cr_assert(strstr(bt_errmsg(), "unreachable"), "detail: %s", bt_errmsg());
}

Test(bt_api, free_functions_accept_null)
{
    bt_close(NULL);
    bt_table_close(NULL);
    bt_mutation_free(NULL);
    bt_mutation_clear(NULL);
    bt_filter_free(NULL);
    bt_row_free(NULL);
    bt_scanner_close(NULL);
    bt_rmw_free(NULL);
    bt_schema_free(NULL);
    bt_free_names(NULL, 0);
    bt_table_desc_free(NULL);
    bt_cluster_status_free(NULL);
    bt_client_clear_cache(NULL);
    cr_assert_eq(bt_mutation_len(NULL), 0);
    cr_assert_null(bt_table_name(NULL));
    bt_client_stats st;
    bt_client_get_stats(NULL, &st);
    cr_assert_eq(st.rpcs, 0);
}

/* ==== against bt-lockd and bt-tabletserver ================================== */

#define ROOT_ID 1001
#define META1_ID 1002
#define META2_ID 1003
#define U1_ID 2001
#define U2_ID 2002

static const uint8_t META_SPLIT[] = {'t', 0, 1, 'm'}; /* METADATA key of t's tablet ending at "m" */

/* Loads tablet id of `table` [start, end) with schema s (create). */
static void load(uint64_t id, const char *table, const char *dir, const void *start, size_t sl, const void *end,
                 size_t el, const ts_schema *s)
{
    tsp_tablet t = {.id = id, .table = table, .table_len = strlen(table), .dir = dir, .dir_len = strlen(dir),
                    .start = start, .start_len = sl, .end = end, .end_len = el};
    bt_buf req = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    tsf_put_seqr(&w, F.seqr);
    tsp_put_tablet(&w, &t);
    tsp_put_schema(&w, s);
    bt_msg_put_varint(&w, TSP_LOAD_CREATE);
    cr_assert_eq(bt_msg_writer_status(&w), BT_OK);
    TS_OK(tsf_call(TSP_LOAD_TABLET, &req, NULL));
    bt_buf_free(&req);
}

/* Writes the METADATA row of e into METADATA tablet meta_id. */
static void put_meta_row(uint64_t meta_id, const bt_meta_entry *e)
{
    bt_buf key = {0}, scratch = {0};
    ts_mutation m[BT_META_MAX_MUTS];
    int n = bt_meta_entry_mutations(e, &key, &scratch, m);
    cr_assert_gt(n, 0);
    TS_OK(tsf_mutate(meta_id, key.data, key.len, m, n));
    bt_buf_free(&key);
    bt_buf_free(&scratch);
}

static void entry(bt_meta_entry *e, const char *table, uint64_t id, const void *start, size_t sl, const void *end,
                  size_t el, const char *server)
{
    memset(e, 0, sizeof *e);
    snprintf(e->table, sizeof e->table, "%s", table);
    e->id = id;
    bt_buf_append(&e->start, start, sl);
    bt_buf_append(&e->end, end, el);
    char dir[128];
    bt_tablet_dir(dir, sizeof dir, table, id);
    e->dir = strdup(dir);
    e->server = strdup(server);
    e->server_id = strdup(TSF_ID);
}

static void lk_put(const char *path, const void *data, size_t n)
{
    int rc = lk_create(F.master, path, data, n, 0);
    if (rc == BT_EEXIST) rc = lk_set(F.master, path, data, n, 0);
    cr_assert_eq(rc, BT_OK, "%s: %s", path, bt_errname(rc));
}

/* The layout: root tablet; METADATA tablets M1 [01, META_SPLIT) and M2
 * [META_SPLIT, end); table t (families cf, meta) in U1 ["", "m") and U2
 * ["m", end), both described in M2. */
static void setup_cluster(void)
{
    ts_schema ms, us;
    bt_meta_schema(&ms);
    tsf_schema(&us);
    char dir[128];
    bt_tablet_dir(dir, sizeof dir, "METADATA", ROOT_ID);
    load(ROOT_ID, "METADATA", dir, "", 0, BT_META_ROOT_END, 1, &ms);
    bt_tablet_dir(dir, sizeof dir, "METADATA", META1_ID);
    load(META1_ID, "METADATA", dir, BT_META_ROOT_END, 1, META_SPLIT, sizeof META_SPLIT, &ms);
    bt_tablet_dir(dir, sizeof dir, "METADATA", META2_ID);
    load(META2_ID, "METADATA", dir, META_SPLIT, sizeof META_SPLIT, NULL, 0, &ms);
    bt_tablet_dir(dir, sizeof dir, "t", U1_ID);
    load(U1_ID, "t", dir, "", 0, "m", 1, &us);
    bt_tablet_dir(dir, sizeof dir, "t", U2_ID);
    load(U2_ID, "t", dir, "m", 1, NULL, 0, &us);

    bt_meta_entry e;
    entry(&e, "METADATA", META1_ID, BT_META_ROOT_END, 1, META_SPLIT, sizeof META_SPLIT, F.addr);
    put_meta_row(ROOT_ID, &e);
    bt_meta_entry_free(&e);
    entry(&e, "METADATA", META2_ID, META_SPLIT, sizeof META_SPLIT, NULL, 0, F.addr);
    put_meta_row(ROOT_ID, &e);
    bt_meta_entry_free(&e);
    entry(&e, "t", U1_ID, "", 0, "m", 1, F.addr);
    put_meta_row(META2_ID, &e);
    bt_meta_entry_free(&e);
    entry(&e, "t", U2_ID, "m", 1, NULL, 0, F.addr);
    put_meta_row(META2_ID, &e);
    bt_meta_entry_free(&e);

    entry(&e, "METADATA", ROOT_ID, "", 0, BT_META_ROOT_END, 1, F.addr);
    char *json;
    cr_assert_eq(bt_root_encode(&e, &json), BT_OK);
    lk_put(BT_LK_ROOT, json, strlen(json));
    free(json);
    bt_meta_entry_free(&e);

    int rc = lk_create(F.master, BT_LK_SCHEMA, NULL, 0, LK_DIR);
    cr_assert(rc == BT_OK || rc == BT_EEXIST);
    cr_assert_eq(bt_schema_to_json("t", &us, &json), BT_OK);
    lk_put(BT_LK_SCHEMA "/t", json, strlen(json));
    free(json);
}

static bt_client *connect_client(void)
{
    bt_client *c = NULL;
    bt_client_options o = {.timeout_ms = 8000, .rpc_timeout_ms = 3000};
    int rc = bt_connect(F.lock_url, &o, &c);
    cr_assert_eq(rc, BT_OK, "bt_connect: %s (%s)", bt_errname(rc), bt_errmsg());
    return c;
}

static void put(bt_table *t, const char *row, const char *q, const char *v)
{
    bt_mutation *m = bt_mutation_new(row, strlen(row));
    cr_assert_eq(bt_mutation_set(m, "cf", q, strlen(q), BT_SERVER_TIME, v, strlen(v)), BT_OK);
    int rc = bt_apply(t, m);
    cr_assert_eq(rc, BT_OK, "apply %s: %s (%s)", row, bt_errname(rc), bt_errmsg());
    bt_mutation_free(m);
}

static bool cell_is(const bt_cell *c, const char *fam, const char *q, const char *v)
{
    return tsf_bytes_eq(c->family, c->family_len, fam) && tsf_bytes_eq(c->qualifier, c->qualifier_len, q) &&
           (!v || tsf_bytes_eq(c->value, c->value_len, v));
}

/* Scans everything with o and checks the rows are exactly want[0..n). */
static void scan_expect(bt_table *t, const bt_scan_options *o, const char *const *want, size_t n)
{
    bt_scanner *s = NULL;
    int rc = bt_scan_open(t, o, &s);
    cr_assert_eq(rc, BT_OK, "scan_open: %s (%s)", bt_errname(rc), bt_errmsg());
    const bt_row *r;
    size_t i = 0;
    while ((rc = bt_scanner_next(s, &r)) == BT_OK) {
        cr_assert_lt(i, n, "extra row %.*s", (int)r->key_len, (const char *)r->key);
        cr_assert(tsf_bytes_eq(r->key, r->key_len, want[i]), "row %zu is %.*s, want %s", i, (int)r->key_len,
                  (const char *)r->key, want[i]);
        i++;
    }
    cr_assert_eq(rc, BT_ENOTFOUND, "scan: %s (%s)", bt_errname(rc), bt_errmsg());
    cr_assert_eq(i, n, "%zu rows, want %zu", i, n);
    bt_scanner_close(s);
}

TS_TEST(lookup_and_data_path, tsf_init, 120)
{
    setup_cluster();
    bt_client *c = connect_client();
    bt_table *t = NULL;

    /* tables */
    cr_assert_eq(bt_table_open(c, "nosuch", &t), BT_ENOTFOUND);
    cr_assert(strstr(bt_errmsg(), "no table \"nosuch\""), "detail: %s", bt_errmsg());
    cr_assert_eq(bt_table_open(c, "bad name", &t), BT_EINVAL);
    cr_assert_eq(bt_table_open(c, "t", &t), BT_OK);
    cr_assert_str_eq(bt_table_name(t), "t");

    /* a cold client: /bt/root, root tablet, METADATA tablet, then the write */
    bt_client_stats st;
    put(t, "z1", "q", "v");
    bt_client_get_stats(c, &st);
    cr_assert_eq(st.lookups, 1, "lookups %llu rpcs %llu lrpcs %llu hits %llu retries %llu", (unsigned long long)st.lookups,
                 (unsigned long long)st.rpcs, (unsigned long long)st.lookup_rpcs, (unsigned long long)st.cache_hits,
                 (unsigned long long)st.retries);
    cr_assert_eq(st.lookup_rpcs, 3, "lookup_rpcs %llu", (unsigned long long)st.lookup_rpcs);
    cr_assert_eq(st.rpcs, 3, "rpcs %llu", (unsigned long long)st.rpcs); /* 2 scans + the write */
    cr_assert_eq(st.retries, 0);
    /* cached now: no lookup */
    put(t, "z2", "q", "v");
    bt_client_get_stats(c, &st);
    cr_assert_eq(st.lookups, 1);
    cr_assert_eq(st.cache_hits, 1);
    /* a row whose METADATA key falls in M1, which holds nothing of t: the
     * lookup scans the root (M1 is not cached), M1, then walks on to M2 */
    put(t, "a1", "q", "v");
    bt_client_get_stats(c, &st);
    cr_assert_eq(st.lookups, 2);
    cr_assert_eq(st.lookup_rpcs, 3 + 3, "lookup_rpcs %llu", (unsigned long long)st.lookup_rpcs);
    /* that scan of M2 prefetched U1 and U2 */
    put(t, "b1", "q", "v");
    put(t, "y1", "q", "v");
    bt_client_get_stats(c, &st);
    cr_assert_eq(st.lookups, 2);
    cr_assert_eq(st.cache_hits, 3);
    /* the same cold, from an empty cache: 4 round trips */
    bt_client_clear_cache(c);
    put(t, "b1", "q", "v");
    bt_client_get_stats(c, &st);
    cr_assert_eq(st.lookups, 3);
    cr_assert_eq(st.lookup_rpcs, 6 + 4, "lookup_rpcs %llu", (unsigned long long)st.lookup_rpcs);

    /* client-side checks */
    bt_mutation *m = bt_mutation_new("", 0);
    cr_assert_eq(bt_mutation_set(m, "cf", "q", 1, 1, "v", 1), BT_OK);
    cr_assert_eq(bt_apply(t, m), BT_EINVAL);
    bt_mutation_free(m);
    m = bt_mutation_new("r", 1);
    cr_assert_eq(bt_apply(t, m), BT_EINVAL); /* no changes */
    cr_assert_eq(bt_mutation_set(m, "cf9", "q", 1, 1, "v", 1), BT_OK);
    cr_assert_eq(bt_apply(t, m), BT_ENOTFOUND);
    cr_assert(strstr(bt_errmsg(), "table t has no family cf9"), "detail: %s", bt_errmsg());
    bt_mutation_free(m);
    static char bigrow[TS_MAX_ROW_KEY + 1];
    m = bt_mutation_new(bigrow, sizeof bigrow);
    cr_assert_eq(bt_mutation_set(m, "cf", "q", 1, 1, "v", 1), BT_OK);
    cr_assert_eq(bt_apply(t, m), BT_ETOOBIG);
    bt_mutation_free(m);

    /* reads */
    bt_row *row = NULL;
    cr_assert_eq(bt_read_row(t, "a1", 2, NULL, &row), BT_OK);
    cr_assert(tsf_bytes_eq(row->key, row->key_len, "a1"));
    cr_assert_eq(row->n_cells, 1);
    cr_assert(cell_is(&row->cells[0], "cf", "q", "v"));
    bt_row_free(row);
    cr_assert_eq(bt_read_row(t, "nope", 4, NULL, &row), BT_ENOTFOUND);
    cr_assert_null(row);

    /* more versions and columns, a filtered read */
    m = bt_mutation_new("f1", 2);
    cr_assert_eq(bt_mutation_set(m, "cf", "a", 1, 10, "old", 3), BT_OK);
    cr_assert_eq(bt_mutation_set(m, "cf", "a", 1, 20, "new", 3), BT_OK);
    cr_assert_eq(bt_mutation_set(m, "meta", "x", 1, 5, "mx", 2), BT_OK);
    cr_assert_eq(bt_apply(t, m), BT_OK);
    bt_mutation_free(m);
    bt_filter *f = bt_filter_new();
    cr_assert_eq(bt_filter_family(f, "cf"), BT_OK);
    cr_assert_eq(bt_filter_versions(f, 1), BT_OK);
    cr_assert_eq(bt_read_row(t, "f1", 2, f, &row), BT_OK);
    cr_assert_eq(row->n_cells, 1);
    cr_assert(cell_is(&row->cells[0], "cf", "a", "new"));
    cr_assert_eq(row->cells[0].timestamp, 20);
    bt_row_free(row);
    bt_filter_free(f);
    f = bt_filter_new();
    cr_assert_eq(bt_filter_family(f, "nofam"), BT_OK);
    cr_assert_eq(bt_read_row(t, "f1", 2, f, &row), BT_ENOTFOUND);
    cr_assert(strstr(bt_errmsg(), "no family nofam"), "detail: %s", bt_errmsg());
    bt_filter_free(f);

    /* a batch over both tablets, with one bad row */
    const char *keys[] = {"b2", "c2", "n2", "x2", "y2", "d2"};
    bt_mutation *ms[7];
    for (int i = 0; i < 6; i++) {
        ms[i] = bt_mutation_new(keys[i], strlen(keys[i]));
        cr_assert_eq(bt_mutation_set(ms[i], "cf", "q", 1, BT_SERVER_TIME, "b", 1), BT_OK);
    }
    ms[6] = bt_mutation_new("e2", 2);
    cr_assert_eq(bt_mutation_set(ms[6], "cf9", "q", 1, 1, "b", 1), BT_OK);
    int status[7];
    cr_assert_eq(bt_apply_batch(t, ms, 7, status), BT_ENOTFOUND);
    for (int i = 0; i < 6; i++) cr_assert_eq(status[i], BT_OK, "row %d: %s", i, bt_errname(status[i]));
    cr_assert_eq(status[6], BT_ENOTFOUND);
    cr_assert_eq(bt_apply_batch(t, ms, 6, NULL), BT_OK);
    for (int i = 0; i < 7; i++) bt_mutation_free(ms[i]);

    /* scans across the tablet boundary at "m" */
    const char *all[] = {"a1", "b1", "b2", "c2", "d2", "f1", "n2", "x2", "y1", "y2", "z1", "z2"};
    scan_expect(t, NULL, all, 12);
    bt_scan_options so = {.batch_rows = 2};
    scan_expect(t, &so, all, 12);
    so = (bt_scan_options){.start = "c", .start_len = 1, .end = "y2", .end_len = 2, .batch_rows = 1};
    scan_expect(t, &so, (const char *[]){"c2", "d2", "f1", "n2", "x2", "y1"}, 6);
    so = (bt_scan_options){.prefix = "z", .prefix_len = 1};
    scan_expect(t, &so, (const char *[]){"z1", "z2"}, 2);
    so = (bt_scan_options){.prefix = "b", .prefix_len = 1, .start = "b2", .start_len = 2};
    scan_expect(t, &so, (const char *[]){"b2"}, 1);
    so = (bt_scan_options){.limit = 7, .batch_rows = 3};
    scan_expect(t, &so, all, 7);
    so = (bt_scan_options){.start = "zz", .start_len = 2};
    scan_expect(t, &so, NULL, 0);
    so = (bt_scan_options){.start = "m", .start_len = 1, .end = "m", .end_len = 1};
    scan_expect(t, &so, NULL, 0);
    /* a filter in a scan */
    f = bt_filter_new();
    cr_assert_eq(bt_filter_family(f, "meta"), BT_OK);
    so = (bt_scan_options){.filter = f};
    scan_expect(t, &so, (const char *[]){"f1"}, 1);
    bt_filter_free(f);

    /* row sets: any order, duplicates, absent rows */
    bt_key set[] = {{"z2", 2}, {"a1", 2}, {"zz", 2}, {"n2", 2}, {"a1", 2}, {"m", 1}};
    bt_scanner *s;
    cr_assert_eq(bt_scan_rows(t, set, 6, NULL, &s), BT_OK);
    const bt_row *r;
    const char *want[] = {"a1", "n2", "z2"};
    for (int i = 0; i < 3; i++) {
        int rc = bt_scanner_next(s, &r);
        cr_assert_eq(rc, BT_OK, "%s (%s)", bt_errname(rc), bt_errmsg());
        cr_assert(tsf_bytes_eq(r->key, r->key_len, want[i]));
    }
    cr_assert_eq(bt_scanner_next(s, &r), BT_ENOTFOUND);
    bt_scanner_close(s);

    /* check-and-mutate */
    bool matched = true;
    bt_mutation *yes = bt_mutation_new("ignored", 7), *no = bt_mutation_new("x", 1);
    cr_assert_eq(bt_mutation_set(yes, "cf", "cm", 2, 1, "yes", 3), BT_OK);
    cr_assert_eq(bt_mutation_set(no, "cf", "cm", 2, 1, "no", 2), BT_OK);
    cr_assert_eq(bt_check_and_mutate(t, "cm", 2, NULL, yes, no, &matched), BT_OK);
    cr_assert_not(matched);
    cr_assert_eq(bt_check_and_mutate(t, "cm", 2, NULL, yes, no, &matched), BT_OK);
    cr_assert(matched);
    cr_assert_eq(bt_read_row(t, "cm", 2, NULL, &row), BT_OK);
    cr_assert_eq(row->n_cells, 1);
    cr_assert(cell_is(&row->cells[0], "cf", "cm", "yes")); /* same timestamp: the later write wins */
    bt_row_free(row);
    f = bt_filter_new();
    cr_assert_eq(bt_filter_value_range(f, "zzz", 3, NULL, 0), BT_OK);
    cr_assert_eq(bt_check_and_mutate(t, "cm", 2, f, NULL, NULL, &matched), BT_OK);
    cr_assert_not(matched);
    bt_filter_free(f);
    bt_mutation_free(yes);
    bt_mutation_free(no);

    /* read-modify-write */
    bt_rmw *w = bt_rmw_new();
    cr_assert_eq(bt_read_modify_write(t, "ctr", 3, w, NULL), BT_EINVAL);
    cr_assert_eq(bt_rmw_increment(w, "cf", "n", 1, 5), BT_OK);
    cr_assert_eq(bt_rmw_append(w, "cf", "s", 1, "ab", 2), BT_OK);
    cr_assert_eq(bt_read_modify_write(t, "ctr", 3, w, NULL), BT_OK);
    cr_assert_eq(bt_read_modify_write(t, "ctr", 3, w, &row), BT_OK);
    cr_assert_eq(row->n_cells, 2);
    cr_assert(cell_is(&row->cells[0], "cf", "n", NULL));
    cr_assert_eq(row->cells[0].value_len, 8);
    cr_assert_eq(row->cells[0].value[7], 10);
    cr_assert(cell_is(&row->cells[1], "cf", "s", "abab"));
    bt_row_free(row);
    bt_rmw_free(w);
    w = bt_rmw_new();
    cr_assert_eq(bt_rmw_increment(w, "cf", "s", 1, 1), BT_OK); /* "abab" is not 8 bytes */
    cr_assert_eq(bt_read_modify_write(t, "ctr", 3, w, NULL), BT_EFAILED_PRECONDITION);
    bt_rmw_free(w);

    /* METADATA is a table like the others */
    bt_table *mt;
    cr_assert_eq(bt_table_open(c, BT_METADATA_TABLE, &mt), BT_OK);
    bt_scanner *ms2;
    cr_assert_eq(bt_scan_open(mt, NULL, &ms2), BT_OK);
    int nrows = 0;
    while (bt_scanner_next(ms2, &r) == BT_OK) {
        bt_meta_entry e;
        ts_row tr = {.key = r->key, .key_len = r->key_len, .cells = (const ts_cell *)r->cells, .n_cells = r->n_cells};
        cr_assert_eq(bt_meta_entry_decode(&tr, &e), BT_OK);
        bt_meta_entry_free(&e);
        nrows++;
    }
    cr_assert_eq(nrows, 4); /* M1, M2 (in the root tablet), U1, U2 (in M2) */
    bt_scanner_close(ms2);
    bt_table_close(mt);

    /* a table without tablets (its schema exists, its METADATA rows do not) */
    ts_schema us;
    tsf_schema(&us);
    char *json;
    cr_assert_eq(bt_schema_to_json("u", &us, &json), BT_OK);
    lk_put(BT_LK_SCHEMA "/u", json, strlen(json));
    free(json);
    bt_table *u;
    cr_assert_eq(bt_table_open(c, "u", &u), BT_OK);
    cr_assert_eq(bt_read_row(u, "a", 1, NULL, &row), BT_ENOTFOUND);
    cr_assert(strstr(bt_errmsg(), "does not exist"), "detail: %s", bt_errmsg());
    bt_table_close(u);

    bt_client_get_stats(c, &st);
    cr_assert_eq(st.retries, 0);
    bt_table_close(t);
    bt_close(c);
}

/* Reloads tablet `id` after a pause, from a helper thread (no cr_assert). */
typedef struct reload_arg {
    uint64_t id;
    const char *dir, *start, *end;
    int delay_ms;
    int rc;
} reload_arg;

static void *reload_later(void *p)
{
    reload_arg *a = p;
    tsf_sleep_ms(a->delay_ms);
    ts_schema us;
    ts_schema_init(&us);
    ts_schema_add_family(&us, "cf", 0, 0);
    ts_schema_add_family(&us, "meta", 0, 0);
    tsp_tablet t = {.id = a->id, .table = "t", .table_len = 1, .dir = a->dir, .dir_len = strlen(a->dir),
                    .start = (const uint8_t *)a->start, .start_len = strlen(a->start),
                    .end = (const uint8_t *)a->end, .end_len = strlen(a->end)};
    bt_buf req = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_bytes(&w, F.seqr, strlen(F.seqr));
    tsp_put_tablet(&w, &t);
    tsp_put_schema(&w, &us);
    bt_msg_put_varint(&w, 0);
    a->rc = bt_conn_call(F.pool, F.addr, TSP_LOAD_TABLET, req.data, req.len, NULL, 10000, 0);
    bt_buf_free(&req);
    return NULL;
}

TS_TEST(retries_follow_unloads_and_splits, tsf_init_scanner_lease, 120)
{
    setup_cluster();
    bt_client *c = connect_client();
    bt_table *t;
    cr_assert_eq(bt_table_open(c, "t", &t), BT_OK);
    char name[16];
    for (int i = 0; i < 26; i++) {
        snprintf(name, sizeof name, "%c", 'a' + i);
        put(t, name, "q", name);
    }

    /* U1 unloaded, reloaded 400 ms later: a write waits it out */
    char d1[128];
    bt_tablet_dir(d1, sizeof d1, "t", U1_ID);
    TS_OK(tsf_unload(U1_ID, F.seqr));
    reload_arg ra = {.id = U1_ID, .dir = d1, .start = "", .end = "m", .delay_ms = 400};
    pthread_t th;
    pthread_create(&th, NULL, reload_later, &ra);
    bt_client_stats st0, st;
    bt_client_get_stats(c, &st0);
    int64_t t0 = tsf_now_ms();
    put(t, "b", "q2", "after reload");
    int64_t ms = tsf_now_ms() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(ra.rc, BT_OK, "reload: %s", bt_errname(ra.rc));
    bt_client_get_stats(c, &st);
    cr_assert_gt(st.retries, st0.retries);
    cr_assert_geq(ms, 300, "the write came back after %lld ms", (long long)ms);

    /* a scan whose tablet goes away in the middle: every row exactly once */
    const char *all[26];
    char keys[26][2];
    for (int i = 0; i < 26; i++) {
        keys[i][0] = (char)('a' + i);
        keys[i][1] = 0;
        all[i] = keys[i];
    }
    bt_scan_options so = {.batch_rows = 3};
    bt_scanner *s;
    cr_assert_eq(bt_scan_open(t, &so, &s), BT_OK);
    const bt_row *r;
    int got = 0;
    for (; got < 4; got++) {
        cr_assert_eq(bt_scanner_next(s, &r), BT_OK);
        cr_assert(tsf_bytes_eq(r->key, r->key_len, all[got]));
    }
    TS_OK(tsf_unload(U1_ID, F.seqr));
    ra.delay_ms = 200;
    pthread_create(&th, NULL, reload_later, &ra);
    int rc;
    while ((rc = bt_scanner_next(s, &r)) == BT_OK) {
        cr_assert_lt(got, 26);
        cr_assert(tsf_bytes_eq(r->key, r->key_len, all[got]), "row %d is %.*s", got, (int)r->key_len,
                  (const char *)r->key);
        got++;
        if (got == 8) tsf_sleep_ms(700); /* past the 300 ms scanner lease: the server scanner expires */
    }
    pthread_join(th, NULL);
    cr_assert_eq(rc, BT_ENOTFOUND, "%s (%s)", bt_errname(rc), bt_errmsg());
    cr_assert_eq(got, 26);
    bt_scanner_close(s);

    /* U2 splits at "t" into L and R; the test (as the master would) records
     * the children in METADATA; the client's cached U2 is stale */
    char dl[128], dr[128];
    bt_tablet_dir(dl, sizeof dl, "t", 3001);
    bt_tablet_dir(dr, sizeof dr, "t", 3002);
    TS_OK(tsf_split(F.seqr, U2_ID, "t", 3001, dl, 3002, dr, NULL));
    bt_meta_entry e;
    entry(&e, "t", 3001, "m", 1, "t", 1, F.addr);
    put_meta_row(META2_ID, &e);
    bt_meta_entry_free(&e);
    entry(&e, "t", 3002, "t", 1, NULL, 0, F.addr);
    put_meta_row(META2_ID, &e);
    bt_meta_entry_free(&e);
    bt_client_get_stats(c, &st0);
    put(t, "x", "q2", "after split");
    put(t, "n", "q2", "after split");
    bt_client_get_stats(c, &st);
    cr_assert_gt(st.retries, st0.retries);
    cr_assert_gt(st.lookups, st0.lookups);
    scan_expect(t, NULL, all, 26);
    bt_row *row;
    cr_assert_eq(bt_read_row(t, "x", 1, NULL, &row), BT_OK);
    cr_assert_eq(row->n_cells, 2);
    bt_row_free(row);

    /* a tablet that never comes back: the call gives up at the deadline */
    TS_OK(tsf_unload(3001, F.seqr));
    bt_client_options o = {.timeout_ms = 1500, .rpc_timeout_ms = 500};
    bt_client *c2;
    cr_assert_eq(bt_connect(F.lock_url, &o, &c2), BT_OK);
    bt_table *t2;
    cr_assert_eq(bt_table_open(c2, "t", &t2), BT_OK);
    bt_mutation *m = bt_mutation_new("p", 1);
    cr_assert_eq(bt_mutation_set(m, "cf", "q", 1, 1, "v", 1), BT_OK);
    t0 = tsf_now_ms();
    rc = bt_apply(t2, m);
    ms = tsf_now_ms() - t0;
    cr_assert(rc == BT_EUNAVAIL || rc == BT_ETIMEDOUT, "%s", bt_errname(rc));
    cr_assert(strstr(bt_errmsg(), "gave up"), "detail: %s", bt_errmsg());
    cr_assert_lt(ms, 4000, "took %lld ms", (long long)ms);
    /* read-modify-write: NOT_SERVING answers are retried too, up to the deadline */
    bt_rmw *w = bt_rmw_new();
    cr_assert_eq(bt_rmw_increment(w, "cf", "n", 1, 1), BT_OK);
    rc = bt_read_modify_write(t2, "p", 1, w, NULL);
    cr_assert(rc == BT_EUNAVAIL || rc == BT_ETIMEDOUT, "%s", bt_errname(rc));
    bt_rmw_free(w);
    bt_mutation_free(m);
    bt_table_close(t2);
    bt_close(c2);

    bt_table_close(t);
    bt_close(c);
}

/* The master's address comes from /bt/master; with none there, calls wait
 * for one until the deadline. */
TS_TEST(master_call_without_master, tsf_init, 120)
{
    bt_client_options o = {.timeout_ms = 700};
    bt_client *c;
    cr_assert_eq(bt_connect(F.lock_url, &o, &c), BT_OK);
    char **names;
    size_t n;
    int64_t t0 = tsf_now_ms();
    int rc = bt_list_tables(c, &names, &n);
    cr_assert(rc == BT_EUNAVAIL || rc == BT_ETIMEDOUT, "%s", bt_errname(rc));
    cr_assert(strstr(bt_errmsg(), "master"), "detail: %s", bt_errmsg());
    cr_assert_lt(tsf_now_ms() - t0, 5000);
    /* a master address that does not answer */
    lk_put(BT_LK_MASTER, "127.0.0.1:1", 11);
    rc = bt_cluster_status_get(c, &(bt_cluster_status *){NULL});
    cr_assert(rc == BT_EUNAVAIL || rc == BT_ETIMEDOUT, "%s", bt_errname(rc));
    cr_assert(strstr(bt_errmsg(), "127.0.0.1:1"), "detail: %s", bt_errmsg());
    /* arguments are checked first */
    cr_assert_eq(bt_create_table(c, "bad name", NULL, NULL, 0), BT_EINVAL);
    bt_schema *s = bt_schema_new();
    cr_assert_eq(bt_create_table(c, "t", s, NULL, 0), BT_EINVAL); /* no family */
    cr_assert_eq(bt_schema_add_family(s, "cf", 1, 0), BT_OK);
    bt_key dup[] = {{"a", 1}, {"a", 1}};
    cr_assert_eq(bt_create_table(c, "t", s, dup, 2), BT_EINVAL);
    bt_key empty[] = {{"", 0}};
    cr_assert_eq(bt_create_table(c, "t", s, empty, 1), BT_EINVAL);
    bt_schema_free(s);
    cr_assert_eq(bt_alter_add_family(c, "t", "bad fam", 1, 0), BT_EINVAL);
    cr_assert_eq(bt_move_tablet(c, 0, NULL), BT_EINVAL);
    bt_close(c);
}

/* Threads share one client and its cache (writes, reads, batches, scans,
 * cache clears at the same time). */
typedef struct worker_arg {
    bt_table *t;
    bt_client *c;
    int id;
    int failures;
    char why[160];
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    char row[32];
    for (int i = 0; i < 60 && !a->failures; i++) {
        snprintf(row, sizeof row, "%c-w%d-%03d", 'a' + (i % 26), a->id, i);
        bt_mutation *m = bt_mutation_new(row, strlen(row));
        bt_mutation_set(m, "cf", "q", 1, BT_SERVER_TIME, row, strlen(row));
        int rc = bt_apply(a->t, m);
        bt_mutation_free(m);
        bt_row *r = NULL;
        if (!rc) rc = bt_read_row(a->t, row, strlen(row), NULL, &r);
        if (!rc && !(r->n_cells == 1 && tsf_bytes_eq(r->cells[0].value, r->cells[0].value_len, row))) rc = BT_ECORRUPT;
        bt_row_free(r);
        if (!rc && i % 20 == 0) {
            bt_scanner *s;
            rc = bt_scan_open(a->t, NULL, &s);
            const bt_row *x;
            while (!rc && (rc = bt_scanner_next(s, &x)) == BT_OK) {
            }
            if (rc == BT_ENOTFOUND) rc = BT_OK;
            bt_scanner_close(s);
        }
        if (a->id == 0 && i % 10 == 0) bt_client_clear_cache(a->c);
        if (rc) {
            a->failures++;
            snprintf(a->why, sizeof a->why, "%s: %s (%s)", row, bt_errname(rc), bt_errmsg());
        }
    }
    return NULL;
}

TS_TEST(threads_share_a_client, tsf_init, 120)
{
    setup_cluster();
    bt_client *c = connect_client();
    bt_table *t;
    cr_assert_eq(bt_table_open(c, "t", &t), BT_OK);
    enum { N = 4 };
    pthread_t th[N];
    worker_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (worker_arg){.t = t, .c = c, .id = i};
        pthread_create(&th[i], NULL, worker, &args[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) cr_assert_eq(args[i].failures, 0, "worker %d: %s", i, args[i].why);
    bt_client_stats st;
    bt_client_get_stats(c, &st);
    cr_assert_eq(st.retries, 0);
    bt_table_close(t);
    bt_close(c);
}

/* tests/unit/test_inmemory.c: in-memory locality groups.  Their SSTables are
 * read whole at open; afterwards reads must not touch the env at all, while a
 * normal group's cold reads do.  The fault env counts the calls. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/env.h"
#include "common/status.h"
#include "tabletserver/tablet.h"
#include "testutil.h"

static char g_dir[64];

/* Opens engine + tablet on a fault env over POSIX; group 0 in_memory as given. */
static void open_all(bt_env *env, bool in_memory, bool create, ts_engine **e, ts_tablet **t)
{
    char log[96], tdir[96];
    snprintf(log, sizeof log, "%s/log", g_dir);
    snprintf(tdir, sizeof tdir, "%s/t", g_dir);
    ts_engine_options o = { .env = env, .log_dir = log, .durability = TS_DURABILITY_SYNC,
                            .block_cache_bytes = 1 << 20 };
    cr_assert_eq(ts_engine_open(&o, e), BT_OK, "%s", bt_errmsg());
    if (create) {
        ts_schema s;
        ts_schema_init(&s);
        s.groups[0].in_memory = in_memory;
        s.groups[0].block_size = 1024;
        cr_assert_eq(ts_schema_add_family(&s, "cf", 1, 0), BT_OK);
        cr_assert_eq(ts_tablet_create(*e, tdir, 1, &s, NULL, 0, NULL, 0, t), BT_OK, "%s", bt_errmsg());
    } else {
        cr_assert_eq(ts_tablet_open(*e, tdir, t), BT_OK, "%s", bt_errmsg());
    }
}

static void fill_and_flush(ts_tablet *t, int rows)
{
    char row[32], val[64];
    for (int i = 0; i < rows; i++) {
        snprintf(row, sizeof row, "row%06d", i);
        snprintf(val, sizeof val, "value-%d-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i);
        ts_mutation m = { .type = TS_SET_CELL, .family = "cf", .family_len = 2,
                          .qualifier = (const uint8_t *)"q", .qualifier_len = 1,
                          .timestamp = 100, .value = (const uint8_t *)val, .value_len = strlen(val) };
        cr_assert_eq(ts_tablet_mutate_row(t, (const uint8_t *)row, strlen(row), &m, 1), BT_OK);
    }
    cr_assert_eq(ts_tablet_flush(t), BT_OK, "%s", bt_errmsg());
}

/* Reads every row and returns how many env calls that took. */
static uint64_t read_all_rows(bt_env *env, ts_tablet *t, int rows)
{
    uint64_t before = bt_env_fault_calls(env);
    char row[32], want[64];
    for (int i = 0; i < rows; i += 7) {
        snprintf(row, sizeof row, "row%06d", i);
        snprintf(want, sizeof want, "value-%d-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i);
        ts_row r;
        cr_assert_eq(ts_tablet_read_row(t, (const uint8_t *)row, strlen(row), NULL, &r), BT_OK,
                     "row %d: %s", i, bt_errmsg());
        cr_assert_eq(r.n_cells, 1);
        cr_assert_eq(r.cells[0].value_len, strlen(want));
        cr_assert(memcmp(r.cells[0].value, want, strlen(want)) == 0);
        ts_row_free(&r);
    }
    return bt_env_fault_calls(env) - before;
}

static void run(bool in_memory, uint64_t *calls)
{
    strcpy(g_dir, "/tmp/bt-inmem-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    bt_env *env = bt_env_fault_new(bt_env_posix());
    ts_engine *e;
    ts_tablet *t;
    open_all(env, in_memory, true, &e, &t);
    fill_and_flush(t, 3000);
    cr_assert_eq(ts_tablet_close(t), BT_OK);
    cr_assert_eq(ts_engine_close(e), BT_OK);
    /* reopen: tables are opened (and, in memory, loaded) here */
    open_all(env, in_memory, false, &e, &t);
    *calls = read_all_rows(env, t, 3000);
    cr_assert_eq(ts_tablet_close(t), BT_OK);
    cr_assert_eq(ts_engine_close(e), BT_OK);
    bt_env_destroy(env);
    test_rm_rf(g_dir);
}

Test(inmemory, reads_never_touch_the_env, .timeout = 60)
{
    uint64_t calls;
    run(true, &calls);
    cr_assert_eq(calls, 0, "an in-memory group made %llu env calls while reading",
                 (unsigned long long)calls);
}

Test(inmemory, normal_group_reads_from_the_env, .timeout = 60)
{
    uint64_t calls;
    run(false, &calls);
    cr_assert_gt(calls, 0, "a normal group's cold reads should go to the env");
}

Test(inmemory, setting_survives_reopen_and_compaction, .timeout = 60)
{
    strcpy(g_dir, "/tmp/bt-inmem-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    bt_env *env = bt_env_fault_new(bt_env_posix());
    ts_engine *e;
    ts_tablet *t;
    open_all(env, true, true, &e, &t);
    fill_and_flush(t, 500);
    fill_and_flush(t, 800);
    cr_assert_eq(ts_tablet_compact(t), BT_OK, "%s", bt_errmsg());
    cr_assert(ts_tablet_schema(t)->groups[0].in_memory);
    /* the compacted table was opened in memory too */
    cr_assert_eq(read_all_rows(env, t, 800), 0);
    cr_assert_eq(ts_tablet_close(t), BT_OK);
    cr_assert_eq(ts_engine_close(e), BT_OK);
    bt_env_destroy(env);
    test_rm_rf(g_dir);
}

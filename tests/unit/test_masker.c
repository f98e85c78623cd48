/* tests/unit/test_masker.c: deletion markers in quantity.  A column may carry
 * any number of delete markers; every one must keep hiding what it covers
 * (a fixed-size marker table once dropped the ones past its capacity). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "tabletserver/tablet.h"

static char g_dir[64];
static ts_engine *g_eng;
static ts_tablet *g_tab;

static void setup(void)
{
    strcpy(g_dir, "/tmp/bt-masker-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    char log[96], tdir[96];
    snprintf(log, sizeof log, "%s/log", g_dir);
    snprintf(tdir, sizeof tdir, "%s/t", g_dir);
    ts_engine_options o = { .log_dir = log, .durability = TS_DURABILITY_NONE };
    cr_assert_eq(ts_engine_open(&o, &g_eng), BT_OK, "%s", bt_errmsg());
    ts_schema s;
    ts_schema_init(&s);
    cr_assert_eq(ts_schema_add_family(&s, "cf", 0, 0), BT_OK);
    cr_assert_eq(ts_tablet_create(g_eng, tdir, 1, &s, NULL, 0, NULL, 0, &g_tab), BT_OK, "%s", bt_errmsg());
}

static void teardown(void)
{
    ts_tablet_close(g_tab);
    ts_engine_close(g_eng);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

static void put(int64_t ts)
{
    ts_mutation m = { .type = TS_SET_CELL, .family = "cf", .family_len = 2,
                      .qualifier = (const uint8_t *)"q", .qualifier_len = 1,
                      .timestamp = ts, .value = (const uint8_t *)"v", .value_len = 1 };
    cr_assert_eq(ts_tablet_mutate_row(g_tab, (const uint8_t *)"r", 1, &m, 1), BT_OK);
}

static void delete_version(int64_t ts)
{
    ts_mutation m = { .type = TS_DELETE_CELLS, .family = "cf", .family_len = 2,
                      .qualifier = (const uint8_t *)"q", .qualifier_len = 1,
                      .ts_from = ts, .ts_to = ts + 1 };
    cr_assert_eq(ts_tablet_mutate_row(g_tab, (const uint8_t *)"r", 1, &m, 1), BT_OK);
}

static void expect_only_newest(const char *when)
{
    ts_row r;
    cr_assert_eq(ts_tablet_read_row(g_tab, (const uint8_t *)"r", 1, NULL, &r), BT_OK, "%s", when);
    cr_assert_eq(r.n_cells, 1, "%s: %zu versions visible, want 1", when, r.n_cells);
    cr_assert_eq(r.cells[0].timestamp, 300, "%s", when);
    ts_row_free(&r);
}

Test(masker, hundreds_of_version_deletes_in_one_column, .init = setup, .fini = teardown, .timeout = 60)
{
    for (int64_t ts = 1; ts <= 300; ts++) put(ts);
    for (int64_t ts = 1; ts < 300; ts++) delete_version(ts);
    expect_only_newest("memtable");
    cr_assert_eq(ts_tablet_flush(g_tab), BT_OK);
    expect_only_newest("after flush");
    cr_assert_eq(ts_tablet_compact(g_tab), BT_OK);
    expect_only_newest("after major compaction");
}

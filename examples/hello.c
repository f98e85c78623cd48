/* examples/hello.c: the smallest complete libbt program.
 *
 * It connects to a cluster, makes sure table "hello" (one column family,
 * "cf") exists, writes one row, reads it back, scans the table and prints
 * what it finds.  Build it against an installed SDK with
 *
 *     cc hello.c $(pkg-config --cflags --libs bt) -o hello
 *
 * and run it against a local cluster (`make run` in the source tree, or
 * `bt-cluster up --dir ./var`):
 *
 *     BT_LOCK=bt://127.0.0.1:7000 ./hello
 *
 * Every libbt call returns BT_OK (0) or a negative BT_E* code; bt_strerror()
 * names the code and bt_errmsg() gives the detail of the last failure on
 * this thread.  The program exits 0 on success and 1 on any error. */
#include <bt/bt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints a failed call's code and detail; returns 1 for `return fail(...)`. */
static int fail(const char *what, int rc)
{
    fprintf(stderr, "hello: %s: %s (%s)\n", what, bt_strerror(rc), bt_errmsg());
    return 1;
}

/* Creates table "hello" with family "cf" (keep 3 versions, no age limit),
 * unless it exists already. */
static int ensure_table(bt_client *c)
{
    bt_schema *s = bt_schema_new();
    if (!s) return fail("bt_schema_new", BT_ENOMEM);
    int rc = bt_schema_add_family(s, "cf", 3, 0);
    if (rc == BT_OK) rc = bt_create_table(c, "hello", s, NULL, 0);
    bt_schema_free(s);
    if (rc == BT_EEXIST) return 0; /* created by an earlier run: fine */
    return rc == BT_OK ? 0 : fail("create table \"hello\"", rc);
}

/* Prints one row: its key, then each cell as family:qualifier @timestamp = value. */
static void print_row(const bt_row *r)
{
    printf("row \"%.*s\"\n", (int)r->key_len, (const char *)r->key);
    for (size_t i = 0; i < r->n_cells; i++) {
        const bt_cell *cell = &r->cells[i];
        printf("  %.*s:%.*s @%lld = \"%.*s\"\n", (int)cell->family_len, cell->family, (int)cell->qualifier_len,
               (const char *)cell->qualifier, (long long)cell->timestamp, (int)cell->value_len,
               (const char *)cell->value);
    }
}

/* Writes row "greeting" with cf:en and cf:fr in one atomic mutation. */
static int write_row(bt_table *t)
{
    const char *row = "greeting";
    bt_mutation *m = bt_mutation_new(row, strlen(row));
    if (!m) return fail("bt_mutation_new", BT_ENOMEM);
    /* BT_SERVER_TIME: the tablet server assigns the timestamp. */
    int rc = bt_mutation_set(m, "cf", "en", 2, BT_SERVER_TIME, "hello, world", 12);
    if (rc == BT_OK) rc = bt_mutation_set(m, "cf", "fr", 2, BT_SERVER_TIME, "bonjour", 7);
    if (rc == BT_OK) rc = bt_apply(t, m);
    bt_mutation_free(m);
    return rc == BT_OK ? 0 : fail("write row \"greeting\"", rc);
}

/* Reads row "greeting" back: the newest version of each column (the family
 * keeps 3, and every run of this program adds one). */
static int read_row(bt_table *t, const bt_filter *newest)
{
    bt_row *r = NULL;
    int rc = bt_read_row(t, "greeting", 8, newest, &r);
    if (rc != BT_OK) return fail("read row \"greeting\"", rc);
    printf("read:\n");
    print_row(r);
    bt_row_free(r);
    return 0;
}

/* Scans the whole table: rows come in key order. */
static int scan_table(bt_table *t, const bt_filter *newest)
{
    bt_scan_options o = {.filter = newest}; /* zero fields: defaults, whole table */
    bt_scanner *sc = NULL;
    int rc = bt_scan_open(t, &o, &sc);
    if (rc != BT_OK) return fail("open a scan of \"hello\"", rc);
    printf("scan:\n");
    const bt_row *r;  /* owned by the scanner, valid until the next call */
    size_t rows = 0;
    while ((rc = bt_scanner_next(sc, &r)) == BT_OK) {
        print_row(r);
        rows++;
    }
    bt_scanner_close(sc);
    if (rc != BT_ENOTFOUND) return fail("scan \"hello\"", rc); /* BT_ENOTFOUND marks the end */
    printf("%zu row%s\n", rows, rows == 1 ? "" : "s");
    return 0;
}

int main(void)
{
    const char *lock = getenv("BT_LOCK");
    if (!lock || !*lock) lock = "bt://127.0.0.1:7000";

    /* One client per process; it is thread-safe and caches tablet locations. */
    bt_client *c = NULL;
    int rc = bt_connect(lock, NULL, &c);
    if (rc != BT_OK) return fail(lock, rc);

    int status = ensure_table(c);
    bt_table *t = NULL;
    if (!status) {
        rc = bt_table_open(c, "hello", &t);
        if (rc != BT_OK) status = fail("open table \"hello\"", rc);
    }
    /* A filter that keeps only the newest version of each column. */
    bt_filter *newest = bt_filter_new();
    if (!status && !newest) status = fail("bt_filter_new", BT_ENOMEM);
    if (!status && (rc = bt_filter_versions(newest, 1)) != BT_OK) status = fail("bt_filter_versions", rc);

    if (!status) status = write_row(t);
    if (!status) status = read_row(t, newest);
    if (!status) status = scan_table(t, newest);

    if (newest) bt_filter_free(newest);
    if (t) bt_table_close(t);
    bt_close(c);
    return status;
}

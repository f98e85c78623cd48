/* tests/unit/test_import.c: bt-import (tools/import_*.c) run as a process
 * against a cluster of REAL processes on 127.0.0.1 (fixture:
 * tests/unit/cluster_fixture.h), results read back with libbt.
 *
 *   round_trip_every_format     CSV (quoting edge cases), TSV (escapes) and
 *                               JSONL (\u0000 and other binary-looking values,
 *                               numbers, booleans) into tables made with
 *                               --create --tablets 3: every cell read back
 *                               exactly; the tables have 3 tablets
 *   bad_lines                   a CSV with bad records: exit status 1, the
 *                               rejects file names exactly their lines and
 *                               reasons, every good row is present
 *   usage_and_missing_table     exit status 2 for bad flags, a missing
 *                               table or family, a header without a mapped
 *                               field
 *   create_presplit_from_size   --create --tablet-mb 1 on ~3 MB: >1 tablet
 *   bulk_into_several_tablets   --bulk into a table pre-split 4 ways: a full
 *                               scan sees every row once with every cell
 *   bulk_interrupted            SIGKILL during the attach phase of a bulk
 *                               load that spilled: every visible row has all
 *                               its cells; the load run again completes
 *   online_cluster_down         every tablet server killed mid-import: exit
 *                               status 3 and the acknowledged count
 *
 * bt-import's stdout and stderr go to files in the fixture's directory
 * (dumped when a test fails). */
#include <stdarg.h>

#include "tests/unit/cluster_fixture.h"

#define IMP_WAIT_MS 120000

static char imp_out[PATH_MAX + 32], imp_err[PATH_MAX + 32];

/* Writes text to C.root/name; the path goes to path. */
static void write_file(const char *name, const void *text, size_t len, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", C.root, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(text, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* Starts bt-import with the given arguments (NULL-terminated), --lock added. */
static pid_t spawn_import(const char *first, va_list ap)
{
    static char bin[PATH_MAX + 32];
    tsf_bin("bt-import", bin, sizeof bin);
    char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--lock";
    argv[n++] = C.lock_url;
    for (const char *a = first; a; a = va_arg(ap, const char *)) {
        cr_assert_lt(n, 62);
        argv[n++] = (char *)a;
    }
    argv[n] = NULL;
    snprintf(imp_out, sizeof imp_out, "%s/import.stdout", C.root);
    snprintf(imp_err, sizeof imp_err, "%s/import.stderr", C.root);
    int out = open(imp_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = open(imp_err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(out >= 0 && err >= 0);
    pid_t pid = tsf_spawn(argv, out, err);
    close(out);
    close(err);
    return pid;
}

static pid_t start_import(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = spawn_import(first, ap);
    va_end(ap);
    return pid;
}

/* Waits for bt-import; returns its exit status (fails on a signal/timeout). */
static int wait_import(pid_t pid)
{
    int st = tsf_wait_pid(&pid, IMP_WAIT_MS);
    if (st == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (st == -1 || !WIFEXITED(st)) {
        tsf_dump(imp_err, 3000);
        cr_assert_fail("bt-import %s", st == -1 ? "did not finish in time" : "died of a signal");
    }
    tsf_check_sanitizer_log(imp_err, true);
    return WEXITSTATUS(st);
}

/* Runs bt-import to its end; returns the exit status. */
static int run_import(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    pid_t pid = spawn_import(first, ap);
    va_end(ap);
    return wait_import(pid);
}

#define IMPORT_OK(want, ...)                                                                  \
    do {                                                                                      \
        int st_ = run_import(__VA_ARGS__, NULL);                                              \
        if (st_ != (want)) {                                                                  \
            tsf_dump(imp_out, 2000);                                                          \
            tsf_dump(imp_err, 3000);                                                          \
        }                                                                                     \
        cr_assert_eq(st_, want, "bt-import exited with %d, want %d", st_, want);              \
    } while (0)

static char *slurp_out(void) { return tsf_slurp(imp_out, NULL); }
static char *slurp_err(void) { return tsf_slurp(imp_err, NULL); }

/* Reads row (len bytes) and checks it holds exactly the n cells fam:qual=value. */
typedef struct want_cell {
    const char *col;            /* "fam:qual" */
    const char *val;
    size_t val_len;             /* 0: strlen(val) */
} want_cell;

static void check_row(bt_table *t, const void *row, size_t len, const want_cell *w, size_t n)
{
    bt_row *r = NULL;
    int rc = bt_read_row(t, row, len, NULL, &r);
    cr_assert_eq(rc, BT_OK, "row \"%.*s\": %s (%s)", (int)len, (const char *)row, bt_errname(rc), bt_errmsg());
    cr_assert_eq(r->n_cells, n, "row \"%.*s\" has %zu cells, want %zu", (int)len, (const char *)row, r->n_cells, n);
    for (size_t i = 0; i < n; i++) {
        const char *colon = strchr(w[i].col, ':');
        size_t fl = (size_t)(colon - w[i].col), ql = strlen(colon + 1);
        bool found = false;
        for (size_t k = 0; k < r->n_cells && !found; k++) {
            const bt_cell *c = &r->cells[k];
            if (c->family_len != fl || memcmp(c->family, w[i].col, fl) || c->qualifier_len != ql ||
                memcmp(c->qualifier, colon + 1, ql))
                continue;
            found = true;
            size_t vl = w[i].val_len ? w[i].val_len : strlen(w[i].val);
            cr_assert(c->value_len == vl && !memcmp(c->value, w[i].val, vl),
                      "row \"%.*s\" %s: %zu bytes \"%.*s\", want %zu bytes", (int)len, (const char *)row, w[i].col,
                      c->value_len, (int)c->value_len, (const char *)c->value, vl);
        }
        cr_assert(found, "row \"%.*s\" has no %s", (int)len, (const char *)row, w[i].col);
    }
    bt_row_free(r);
}

static size_t tablets_of(const char *table)
{
    bt_table_desc *d = clf_describe(C.client, table);
    size_t n = d->n_tablets;
    bt_table_desc_free(d);
    return n;
}

/* ---- round trips ------------------------------------------------------------------------ */

CL_TEST(round_trip_every_format, 240)
{
    clf_cluster(1, 3, 0);
    char path[PATH_MAX + 64];

    /* CSV: quoted separators, doubled quotes, CRLF inside and between
     * records, empty fields, a BOM, no final newline, composite key */
    static const char csv[] = "\xEF\xBB\xBF" "a,b,name,note\r\n"
                              "1,x,\"Smith, J\",\"say \"\"hi\"\"\"\r\n"
                              "2,y,\"multi\r\nline\nfield\",\r\n"
                              "3,z,,\"\"\r\n"
                              "4,w,tab\there,\"x,\"\"y\"\",z\"";
    write_file("in.csv", csv, sizeof csv - 1, path, sizeof path);
    IMPORT_OK(0, "--table", "tcsv", "--format", "csv", "--row-key", "a,b", "--key-sep", "/", "--columns",
              "name=d:name,note=d:note", "--create", "--tablets", "3", "--default-timestamp", "1000", path);
    cr_assert_eq(tablets_of("tcsv"), 3, "--create --tablets 3");
    bt_table *t = clf_open(C.client, "tcsv");
    check_row(t, "1/x", 3, (want_cell[]){{"d:name", "Smith, J", 0}, {"d:note", "say \"hi\"", 0}}, 2);
    check_row(t, "2/y", 3, (want_cell[]){{"d:name", "multi\r\nline\nfield", 0}, {"d:note", "", 0}}, 2);
    check_row(t, "3/z", 3, (want_cell[]){{"d:name", "", 0}, {"d:note", "", 0}}, 2);
    check_row(t, "4/w", 3, (want_cell[]){{"d:name", "tab\there", 0}, {"d:note", "x,\"y\",z", 0}}, 2);
    bt_row *r = NULL;
    CL_OK(bt_read_row(t, "1/x", 3, NULL, &r));
    cr_assert_eq(r->cells[0].timestamp, 1000, "--default-timestamp");
    bt_row_free(r);
    bt_table_close(t);
    char *out = slurp_out();
    cr_assert(strstr(out, "imported 4 rows, 8 cells"), "summary: %s", out);
    free(out);

    /* TSV: escapes, including a zero byte and raw high bytes; timestamps */
    static const char tsv[] = "k\tv\tts\n"
                              "r1\tA\\tB\\nC\\\\D\t5\n"
                              "r2\t\\0\\x01\xff\\xfe\t6\n"
                              "r\\x003\t\"quoted\"\t7\n";
    write_file("in.tsv", tsv, sizeof tsv - 1, path, sizeof path);
    IMPORT_OK(0, "--table", "ttsv", "--format", "tsv", "--row-key", "k", "--columns", "v=f", "--timestamp", "ts",
              "--create", "--tablets", "3", path);
    t = clf_open(C.client, "ttsv");
    check_row(t, "r1", 2, (want_cell[]){{"f:v", "A\tB\nC\\D", 0}}, 1);
    check_row(t, "r2", 2, (want_cell[]){{"f:v", "\0\x01\xff\xfe", 4}}, 1);
    check_row(t, "r\0" "3", 3, (want_cell[]){{"f:v", "\"quoted\"", 0}}, 1);
    CL_OK(bt_read_row(t, "r2", 2, NULL, &r));
    cr_assert_eq(r->cells[0].timestamp, 6, "--timestamp field");
    bt_row_free(r);
    bt_table_close(t);

    /* JSONL: binary through \u0000 escapes, numbers and booleans as text,
     * null and missing members write nothing */
    static const char jl[] = "{\"id\":\"j1\",\"bin\":\"\\u0000\\u0001\\u00ff\\u0000\",\"n\":-1.5e3,\"ok\":true}\n"
                             "{\"id\":42,\"bin\":\"caf\\u00e9 \\ud83d\\ude00\",\"n\":null}\n"
                             "\n"
                             "{\"ok\":false,\"id\":\"j3\",\"extra\":{\"nested\":[1,2]}}\n";
    write_file("in.jsonl", jl, sizeof jl - 1, path, sizeof path);
    IMPORT_OK(0, "--table", "tjs", "--format", "jsonl", "--row-key", "id", "--columns", "bin=b:bin,n=b:n,ok=b:ok",
              "--create", "--tablets", "3", path);
    cr_assert_eq(tablets_of("tjs"), 3);
    t = clf_open(C.client, "tjs");
    check_row(t, "j1", 2,
              (want_cell[]){{"b:bin", "\0\x01\xc3\xbf\0", 5}, {"b:n", "-1.5e3", 0}, {"b:ok", "true", 0}}, 3);
    check_row(t, "42", 2, (want_cell[]){{"b:bin", "caf\xc3\xa9 \xf0\x9f\x98\x80", 0}}, 1);
    check_row(t, "j3", 2, (want_cell[]){{"b:ok", "false", 0}}, 1);
    bt_table_close(t);
}

/* ---- bad records ---------------------------------------------------------------------- */

CL_TEST(bad_lines, 180)
{
    clf_cluster(1, 2, 0);
    /* 2000 good rows with bad ones among them at known lines */
    size_t cap = 1 << 20, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    len += (size_t)snprintf(text + len, cap - len, "id,v,ts\n");
    int line = 1;
    int bad_lines[16], nbad = 0;
    const char *bad_reasons[16];
    for (int i = 0; i < 2000; i++) {
        line++;
        len += (size_t)snprintf(text + len, cap - len, "row%05d,\"v,%d\",%d\n", i, i, i + 1);
        if (i % 250 == 17) {
            line++;
            bad_lines[nbad] = line;
            switch (nbad % 5) {
            case 0:
                len += (size_t)snprintf(text + len, cap - len, "only,two\n");
                bad_reasons[nbad] = "2 fields, the header has 3";
                break;
            case 1:
                len += (size_t)snprintf(text + len, cap - len, ",empty key,1\n");
                bad_reasons[nbad] = "empty row key";
                break;
            case 2:
                len += (size_t)snprintf(text + len, cap - len, "k%d,\"x\"y,1\n", i);
                bad_reasons[nbad] = "unexpected character after a closing quote";
                break;
            case 3:
                len += (size_t)snprintf(text + len, cap - len, "k%d,v,12x\n", i);
                bad_reasons[nbad] = "bad timestamp \"12x\"";
                break;
            default:
                len += (size_t)snprintf(text + len, cap - len, "k%d,\"a\tb\",1,4\n", i);
                bad_reasons[nbad] = "4 fields, the header has 3";
                break;
            }
            nbad++;
        }
    }
    /* the last line opens a quote it never closes */
    line++;
    bad_lines[nbad] = line;
    bad_reasons[nbad++] = "unterminated quoted field";
    len += (size_t)snprintf(text + len, cap - len, "last,\"never closed,1\n");
    char path[PATH_MAX + 64], rej[PATH_MAX + 64];
    write_file("bad.csv", text, len, path, sizeof path);
    free(text);
    snprintf(rej, sizeof rej, "%s/rejects.tsv", C.root);
    IMPORT_OK(1, "--table", "tbad", "--format", "csv", "--row-key", "id", "--columns", "v=cf:v", "--timestamp",
              "ts", "--create", "--tablets", "2", "--batch-rows", "100", "--rejects", rej, path);
    char *err = slurp_err();
    cr_assert(strstr(err, "records rejected"), "stderr: %s", err);
    free(err);

    /* the rejects file: LINE TAB REASON TAB RECORD, in order */
    char *rj = tsf_slurp(rej, NULL);
    cr_assert_not_null(rj);
    char *save = NULL;
    int k = 0;
    for (char *l = strtok_r(rj, "\n", &save); l; l = strtok_r(NULL, "\n", &save), k++) {
        cr_assert_lt(k, nbad, "more rejects than bad lines: %s", l);
        char *t1 = strchr(l, '\t');
        cr_assert_not_null(t1, "%s", l);
        cr_assert_not_null(strchr(t1 + 1, '\t'), "%s", l);
        cr_assert_eq(atoi(l), bad_lines[k], "reject %d at line %d, want %d (%s)", k, atoi(l), bad_lines[k], l);
        cr_assert(!strncmp(t1 + 1, bad_reasons[k], strlen(bad_reasons[k])), "reject %d: %s, want %s", k, l,
                  bad_reasons[k]);
    }
    cr_assert_eq(k, nbad, "%d rejects, want %d", k, nbad);
    free(rj);
    /* the tab inside a quoted field of a rejected record is escaped */
    rj = tsf_slurp(rej, NULL);
    cr_assert(strstr(rj, "\"a\\tb\""), "%s", rj);
    free(rj);

    /* every good row, exactly */
    bt_table *t = clf_open(C.client, "tbad");
    clf_strs keys = {0};
    char why[512];
    CL_OK(clf_scan_keys(t, &keys, false, why));
    cr_assert_str_empty(why, "%s", why);
    cr_assert_eq(keys.n, 2000, "%zu rows, want 2000", keys.n);
    for (size_t i = 0; i < keys.n; i++) {
        char want[32];
        snprintf(want, sizeof want, "row%05zu", i);
        cr_assert_str_eq(keys.s[i], want);
    }
    clf_strs_free(&keys);
    char val[32];
    snprintf(val, sizeof val, "v,%d", 1234);
    check_row(t, "row01234", 8, (want_cell[]){{"cf:v", val, 0}}, 1);
    bt_table_close(t);
}

CL_TEST(usage_and_missing_table, 120)
{
    clf_cluster(1, 1, 0);
    char path[PATH_MAX + 64];
    static const char csv[] = "id,v\n1,a\n";
    write_file("u.csv", csv, sizeof csv - 1, path, sizeof path);
    IMPORT_OK(2, "--table", "nope", "--format", "csv", "--row-key", "id", "--columns", "v=cf:v", path);
    char *err = slurp_err();
    cr_assert(strstr(err, "there is no table nope"), "%s", err);
    free(err);
    IMPORT_OK(2, "--table", "x", "--format", "xml", "--row-key", "id", "--columns", "v=cf:v", path);
    IMPORT_OK(2, "--table", "x", "--format", "csv", "--columns", "v=cf:v", path);
    IMPORT_OK(2, "--table", "x", "--format", "csv", "--row-key", "id", "--columns", "v=cf:v", "--bogus", path);
    IMPORT_OK(2, "--table", "x", "--format", "csv", "--row-key", "id", "--columns", "v=cf:v", "/nonexistent/f");
    clf_create_table(C.client, "have", NULL, 0);
    IMPORT_OK(2, "--table", "have", "--format", "csv", "--row-key", "id", "--columns", "v=zz:v", path);
    err = slurp_err();
    cr_assert(strstr(err, "has no family zz"), "%s", err);
    free(err);
    IMPORT_OK(2, "--table", "have", "--format", "csv", "--row-key", "key", "--columns", "v=cf:v", path);
    err = slurp_err();
    cr_assert(strstr(err, "field \"key\" is not in the header"), "%s", err);
    free(err);
    IMPORT_OK(2, "--table", "have", "--format", "csv", "--row-key", "id", "--columns", "v=cf:v", "--create", path);
    IMPORT_OK(0, "--table", "have", "--format", "csv", "--row-key", "id", "--columns", "v=cf:v", "-q", path);
    char *out = slurp_out();
    cr_assert_str_empty(out, "--quiet prints no summary: %s", out);
    free(out);
}

/* ---- pre-split and bulk --------------------------------------------------------------- */

/* rows "k%07d" (shuffled order), columns a, b, c of ~100 bytes each */
static char *gen_rows(size_t n, size_t *len_out)
{
    size_t cap = n * 360 + 64, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    len += (size_t)snprintf(text + len, cap - len, "id,a,b,c\n");
    for (size_t i = 0; i < n; i++) {
        size_t id = (i * 7919) % n;
        len += (size_t)snprintf(text + len, cap - len, "k%07zu", id);
        for (int c = 0; c < 3; c++) {
            text[len++] = ',';
            for (int j = 0; j < 100; j++) text[len++] = (char)('a' + (int)((id + (size_t)c * 7 + (size_t)j) % 26));
        }
        text[len++] = '\n';
    }
    *len_out = len;
    return text;
}

/* Full scan: every row k0000000..k(n-1) at most once and in order, each with
 * its 3 cells or (if allow_absent) absent.  Returns the rows seen. */
static size_t scan_check(bt_table *t, size_t n, bool allow_absent)
{
    bt_scanner *s = NULL;
    CL_OK(bt_scan_open(t, NULL, &s));
    const bt_row *r;
    int rc;
    size_t seen = 0;
    long prev = -1;
    while ((rc = bt_scanner_next(s, &r)) == BT_OK) {
        char key[16];
        cr_assert_eq(r->key_len, 8, "row key of %zu bytes", r->key_len);
        memcpy(key, r->key, 8);
        key[8] = '\0';
        long id = atol(key + 1);
        cr_assert_gt(id, prev, "row %s after k%07ld (twice or out of order)", key, prev);
        cr_assert_lt((size_t)id, n);
        prev = id;
        cr_assert_eq(r->n_cells, 3, "row %s has %zu cells, want 3 (a partial row)", key, r->n_cells);
        for (size_t c = 0; c < 3; c++) {
            const bt_cell *cl = &r->cells[c];
            cr_assert_eq(cl->value_len, 100);
            char want = (char)('a' + (int)(((size_t)id + (size_t)(cl->qualifier[0] - 'a') * 7) % 26));
            cr_assert_eq(cl->value[0], want, "row %s %c", key, cl->qualifier[0]);
        }
        seen++;
    }
    cr_assert_eq(rc, BT_ENOTFOUND, "scan: %s (%s)", bt_errname(rc), bt_errmsg());
    bt_scanner_close(s);
    if (!allow_absent) cr_assert_eq(seen, n, "%zu rows seen, want %zu", seen, n);
    return seen;
}

CL_TEST(create_presplit_from_size, 180)
{
    clf_cluster(1, 2, 0);
    size_t len;
    char *text = gen_rows(10000, &len); /* ~3 MB */
    char path[PATH_MAX + 64];
    write_file("p.csv", text, len, path, sizeof path);
    free(text);
    IMPORT_OK(0, "--table", "tp", "--format", "csv", "--row-key", "id", "--columns", "a=cf,b=cf,c=cf", "--create",
              "--tablet-mb", "1", path);
    size_t nt = tablets_of("tp");
    cr_assert_geq(nt, 3, "~3 MB at 1 MB per tablet: %zu tablets", nt);
    bt_table *t = clf_open(C.client, "tp");
    scan_check(t, 10000, false);
    bt_table_close(t);
}

CL_TEST(bulk_into_several_tablets, 240)
{
    clf_cluster(1, 3, 0);
    const char *splits[] = {"k0002000", "k0005000", "k0011000"};
    clf_create_table(C.client, "tb", splits, 3);
    size_t len, n = 15000;
    char *text = gen_rows(n, &len);
    char path[PATH_MAX + 64];
    write_file("b.csv", text, len, path, sizeof path);
    free(text);
    IMPORT_OK(0, "--table", "tb", "--format", "csv", "--row-key", "id", "--columns", "a=cf,b=cf,c=cf", "--bulk",
              "--memory-mb", "1", "--tmp-dir", C.root, path);
    char *out = slurp_out();
    cr_assert(strstr(out, "bulk-loaded 15000 rows, 45000 cells"), "%s", out);
    cr_assert(strstr(out, "to 4 tablets"), "%s", out);
    free(out);
    bt_table *t = clf_open(C.client, "tb");
    scan_check(t, n, false);
    bt_table_close(t);
}

CL_TEST(bulk_interrupted, 300)
{
    clf_cluster(1, 3, 0);
    const char *splits[] = {"k0020000", "k0050000", "k0080000", "k0110000", "k0140000"};
    clf_create_table(C.client, "ti", splits, 5);
    size_t len, n = 160000;
    char *text = gen_rows(n, &len); /* ~50 MB */
    char path[PATH_MAX + 64];
    write_file("i.csv", text, len, path, sizeof path);
    free(text);
    pid_t pid = start_import("--table", "ti", "--format", "csv", "--row-key", "id", "--columns", "a=cf,b=cf,c=cf",
                             "--bulk", "--memory-mb", "4", "--tmp-dir", C.root, "--default-timestamp", "777", path, NULL);
    /* kill it once it is sorting, writing and attaching */
    int64_t end = tsf_now_ms() + IMP_WAIT_MS;
    bool attaching = false;
    while (!attaching && tsf_now_ms() < end) {
        char *e = slurp_err();
        attaching = e && strstr(e, "attaching");
        free(e);
        int st;
        cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "bt-import ended before it was killed");
        if (!attaching) tsf_sleep_ms(5);
    }
    cr_assert(attaching, "bt-import never reached its attach phase");
    tsf_sleep_ms(150);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    bt_table *t = clf_open(C.client, "ti");
    size_t seen = scan_check(t, n, true);
    cr_log_info("bulk_interrupted: %zu of %zu rows visible after SIGKILL, every one whole", seen, n);
    /* the same load again (the same timestamp: the same cells) completes */
    IMPORT_OK(0, "--table", "ti", "--format", "csv", "--row-key", "id", "--columns", "a=cf,b=cf,c=cf", "--bulk",
              "--memory-mb", "16", "--tmp-dir", C.root, "--default-timestamp", "777", "-q", path);
    scan_check(t, n, false);
    bt_table_close(t);
}

CL_TEST(online_cluster_down, 240)
{
    clf_cluster(1, 2, 0);
    size_t len, n = 200000;
    char *text = gen_rows(n, &len);
    /* the input comes through a FIFO, so the import is still running (waiting
     * for more input) when the servers go, however fast this machine is */
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/d.fifo", C.root);
    cr_assert_eq(mkfifo(path, 0600), 0, "mkfifo: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    pid_t pid = start_import("--table", "td", "--format", "csv", "--row-key", "id", "--columns", "a=cf,b=cf,c=cf",
                             "--create", "--tablets", "2", "--sample-mb", "1", "--timeout-ms", "3000",
                             "--progress-interval", "1", path, NULL);
    int fd = open(path, O_WRONLY | O_CLOEXEC); /* waits for bt-import to open it */
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    size_t half = len / 2, off = 0;
    while (off < half) {
        ssize_t w = write(fd, text + off, half - off);
        cr_assert_gt(w, 0, "write to bt-import: %s", strerror(errno));
        off += (size_t)w;
    }
    /* wait until rows are being acknowledged, then take every server away */
    int64_t end = tsf_now_ms() + 60000;
    bool going = false;
    while (!going && tsf_now_ms() < end) {
        char *e = slurp_err();
        going = e && strstr(e, "rows/s");
        free(e);
        if (!going) tsf_sleep_ms(20);
    }
    if (!going) {
        close(fd);
        char *e = slurp_err();
        int st = wait_import(pid);
        cr_assert(going, "no progress line from bt-import (exit status %d); its stderr: %s", st, e ? e : "(none)");
    }
    clf_kill_ts(0);
    clf_kill_ts(1);
    /* the rest of the input, as far as bt-import still reads it */
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w <= 0) break; /* EPIPE: it stopped */
        off += (size_t)w;
    }
    close(fd);
    free(text);
    int st = wait_import(pid);
    char *e = slurp_err();
    cr_assert_eq(st, 3, "exit %d, want 3; stderr: %s", st, e);
    cr_assert(strstr(e, "acknowledged"), "%s", e);
    cr_assert(strstr(e, "--default-timestamp"), "%s", e);
    free(e);
}

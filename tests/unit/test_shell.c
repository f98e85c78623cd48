/* tests/unit/test_shell.c: bt-shell end to end.  Each test runs a real
 * cluster (bt-lockd, bt-master, 2 bt-tabletserver; tests/unit/cluster_fixture.h)
 * and the real bt-shell binary against it:
 *
 *   commands_with_c        every command through `bt-shell -c`, outputs checked
 *   script_on_stdin        a script on stdin (not a tty): errors name their
 *                          line, later lines still run, exit status 1;
 *                          --stop-on-error stops at the first (exit 1)
 *   error_messages         unknown command / table / family / option,
 *                          parse errors
 *   json_output            --json documents parsed with cJSON, binary values
 *                          as {"b64": ...}, no footer
 *   binary_round_trip      "a\x00b" put then get prints "a\x00b"; a printed
 *                          value pasted back reads back the same bytes
 *   no_cluster             --lock pointing nowhere: exit 3 and a message
 *                          naming the URL and `make run`
 *   interactive_pty        the interactive shell in a pseudo-terminal: a
 *                          command, up-arrow recall, TAB completion of a
 *                          command and a table name, quit; the history file
 *
 * Every wait is bounded (SH_RUN_MS per bt-shell run); children are killed
 * and temporary files removed by the fixture and by each test.
 */
#include <pty.h>
#include <termios.h>

#include <cjson/cJSON.h>

#include "tests/unit/cluster_fixture.h"

#define SH_RUN_MS 30000

/* ---- running bt-shell ---------------------------------------------------------- */

typedef struct sh_run {
    int status;          /* exit status, or -1 (killed after SH_RUN_MS) */
    char *out, *err;     /* NUL-terminated */
    size_t out_len;
} sh_run;

static void sh_run_free(sh_run *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

/* environ without the given variables, plus the extra "K=V" strings. */
static char **make_env(const char *const *drop, const char *const *extra)
{
    size_t n = 0, k = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 16, sizeof *env);
    cr_assert_not_null(env);
    for (size_t i = 0; i < n; i++) {
        bool skip = false;
        for (size_t d = 0; drop && drop[d]; d++)
            if (!strncmp(environ[i], drop[d], strlen(drop[d])) && environ[i][strlen(drop[d])] == '=') skip = true;
        if (!skip) env[k++] = environ[i];
    }
    for (size_t e = 0; extra && extra[e] && e < 12; e++) env[k++] = (char *)extra[e];
    env[k] = NULL;
    return env;
}

/* Runs bt-shell with args (NULL-terminated), stdin from the text `in` (NULL:
 * /dev/null), BT_LOCK set to the cluster; waits at most SH_RUN_MS. */
static void run_shell(sh_run *r, const char *in, const char *const *args)
{
    memset(r, 0, sizeof *r);
    char bin[PATH_MAX + 32], inp[PATH_MAX + 32], outp[PATH_MAX + 32], errp[PATH_MAX + 32];
    tsf_bin("bt-shell", bin, sizeof bin);
    snprintf(inp, sizeof inp, "%s/shell.in", C.root);
    snprintf(outp, sizeof outp, "%s/shell.out", C.root);
    snprintf(errp, sizeof errp, "%s/shell.err", C.root);
    FILE *f = fopen(inp, "w");
    cr_assert_not_null(f);
    if (in) fputs(in, f);
    fclose(f);
    char *argv[32];
    int a = 0;
    argv[a++] = bin;
    for (size_t i = 0; args[i] && a < 31; i++) argv[a++] = (char *)args[i];
    argv[a] = NULL;
    char lock[96];
    snprintf(lock, sizeof lock, "BT_LOCK=%s", C.lock_url);
    const char *drop[] = {"BT_LOCK", "BT_SHELL_HISTORY", NULL};
    const char *extra[] = {lock, "BT_SHELL_HISTORY=", NULL};
    char **env = make_env(drop, extra);
    int fi = open(inp, O_RDONLY | O_CLOEXEC);
    int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(fi >= 0 && fo >= 0 && fe >= 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(9);
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        close_range(3, ~0u, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(bin, argv, env);
        _exit(127);
    }
    close(fi);
    close(fo);
    close(fe);
    free(env);
    int st = tsf_wait_pid(&pid, SH_RUN_MS);
    if (pid > 0) tsf_kill(&pid);
    r->status = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r->out = tsf_slurp(outp, &r->out_len);
    r->err = tsf_slurp(errp, NULL);
    if (!r->out) r->out = strdup("");
    if (!r->err) r->err = strdup("");
    cr_assert_neq(r->status, -1, "bt-shell did not exit within %d ms (or died); stderr:\n%s", SH_RUN_MS, r->err);
}

/* bt-shell -c CMDS [flags...] */
static void run_c(sh_run *r, const char *cmds, const char *flag)
{
    const char *args[] = {"-c", cmds, flag, NULL};
    run_shell(r, NULL, args);
}

#define HAS(hay, needle) cr_assert(strstr((hay), (needle)), "want \"%s\" in:\n%s", (needle), (hay))
#define HASNT(hay, needle) cr_assert(!strstr((hay), (needle)), "did not want \"%s\" in:\n%s", (needle), (hay))

/* Counts occurrences. */
static __attribute__((unused)) int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

#define SH_TEST(name, secs)                                                                 \
    static void name##_body(void);                                                          \
    Test(shell, name, .init = clf_init, .fini = clf_fini, .timeout = secs)                  \
    {                                                                                       \
        clf_cluster(1, 2, 0);                                                               \
        name##_body();                                                                      \
        clf_finish();                                                                       \
    }                                                                                       \
    static void name##_body(void)

/* ---- tests ----------------------------------------------------------------------- */

SH_TEST(commands_with_c, 180)
{
    sh_run r;
    run_c(&r, "create t cf:maxversions=3 cf2:maxage=7d splits=g,n; ls", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    HAS(r.out, "table\n-----\nt\n(1 row, ");
    sh_run_free(&r);

    run_c(&r, "put t r1 cf:a=hello cf2:b=\"x y\" cf:c=1; put t r2 cf:a=two; put t s1 cf:a=three ts=42; "
              "get t r1; get t s1; get t nosuch", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    HAS(r.out, "row  column  timestamp");
    HAS(r.out, "r1   cf:a    ");
    HAS(r.out, "  hello\n");
    HAS(r.out, "\"x y\"\n");
    HAS(r.out, "s1   cf:a    42         three\n(1 row, ");
    HAS(r.out, "(0 rows, ");                 /* get of an absent row */
    sh_run_free(&r);

    /* scan options, columns, count, versions */
    run_c(&r, "scan t; scan t prefix=r columns=cf2; scan t start=r2 limit=1; count t; count t prefix=r; "
              "put t r1 cf:a=hello2; get t r1 columns=cf:a versions=3", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    HAS(r.out, "(3 rows, ");                 /* full scan: 3 rows */
    HAS(r.out, "cf2:b ");
    HAS(r.out, "rows\n----\n3\n");
    HAS(r.out, "rows\n----\n2\n");
    HAS(r.out, "hello2\n");
    HAS(r.out, "  hello2\nr1   cf:a    ");  /* versions=3: the older version follows */
    sh_run_free(&r);

    /* delete a column, a family, a row; incr; append */
    run_c(&r, "delete t r1 cf:c; get t r1 columns=cf:c; delete t r1 cf2; get t r1 columns=cf2; delete t r2; get t r2; "
              "incr t ctr cf:n 5; incr t ctr cf:n; incr t ctr cf:n -10; append t r1 cf:a \" world\"", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_eq(count_of(r.out, "(0 rows, "), 3, "three empty gets:\n%s", r.out);
    HAS(r.out, "  5\n(1 row");
    HAS(r.out, "  6\n(1 row");
    HAS(r.out, "  -4\n(1 row");
    HAS(r.out, "\"hello2 world\"\n");
    sh_run_free(&r);

    /* describe, alter, tablets */
    run_c(&r, "describe t; alter t add cf3:maxversions=1; alter t gc cf maxversions=5; alter t drop cf2; describe t; "
              "tablets t", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    HAS(r.out, "table t: 3 tablets");
    HAS(r.out, "cf      3             forever  union");
    HAS(r.out, "cf2     all           7d       union");
    HAS(r.out, "cf      5             forever");
    HAS(r.out, "cf3     1  ");
    cr_assert_eq(count_of(r.out, "cf2 "), 1, "cf2 dropped:\n%s", r.out);
    HAS(r.out, "id ");
    HAS(r.out, "server_sstable_bytes");
    HAS(r.out, "(3 rows, ");
    cr_assert(strstr(r.out, " ts0 ") || strstr(r.out, " ts1 "), "a server id:\n%s", r.out);
    sh_run_free(&r);

    /* cluster commands */
    run_c(&r, "status; flush t; compact t; lock ls /bt; lock ls /bt/servers; lock cat /bt/master; lock cat /bt/schema/t",
          NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    HAS(r.out, "master ");
    HAS(r.out, C.master[0].addr);
    HAS(r.out, "ts0 ");
    HAS(r.out, "ts1 ");
    HAS(r.out, "servers  dir ");
    HAS(r.out, "schema   dir ");
    HAS(r.out, "\"cf3\"");                   /* the schema JSON */
    sh_run_free(&r);

    /* split at a row, move a tablet, then the data is still all there */
    run_c(&r, "split t p; tablets t", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    HAS(r.out, "(4 rows, ");
    sh_run_free(&r);
    bt_table_desc *d = clf_describe(C.client, "t");
    char cmd[256];
    const char *to = strcmp(d->tablets[0].server_id, "ts0") ? "ts0" : "ts1";
    snprintf(cmd, sizeof cmd, "move %llu %s; count t", (unsigned long long)d->tablets[0].id, to);
    bt_table_desc_free(d);
    run_c(&r, cmd, NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    HAS(r.out, "rows\n----\n3\n");
    sh_run_free(&r);

    /* drop: no question when stdin is not a terminal */
    run_c(&r, "drop t; ls", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    HAS(r.out, "table\n-----\n(0 rows, ");
    sh_run_free(&r);

    run_c(&r, "help; help scan; quit; ls", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    HAS(r.out, "  scan ");
    HAS(r.out, "usage: scan <table>");
    HASNT(r.out, "table\n-----");            /* nothing after quit */
    sh_run_free(&r);
}

SH_TEST(script_on_stdin, 120)
{
    clf_create_table(C.client, "t", NULL, 0);
    sh_run r;
    const char *script =
        "# a comment line\n"
        "put t r1 cf:a=1\n"
        "put t r1 cf9:a=1\n"
        "get t r1\n"
        "frobnicate t\n"
        "put t r2 cf:a=2; count t\n";
    const char *none[] = {NULL};
    run_shell(&r, script, none);
    cr_assert_eq(r.status, 1, "exit status %d, stderr: %s", r.status, r.err);
    HAS(r.err, "bt-shell: line 3: put: table t has no family cf9\n");
    HAS(r.err, "bt-shell: line 5: unknown command \"frobnicate\"");
    HASNT(r.out, "bt> ");                     /* no prompt */
    HAS(r.out, "rows\n----\n2\n");           /* line 6 ran */
    sh_run_free(&r);

    const char *stop[] = {"--stop-on-error", NULL};
    run_shell(&r, "put t r3 cf:a=3\nput nosuch r cf:a=1\nput t r4 cf:a=4\n", stop);
    cr_assert_eq(r.status, 1, "exit status %d, stderr: %s", r.status, r.err);
    HAS(r.err, "bt-shell: line 2: put: ");
    HAS(r.err, "nosuch");
    bt_table *t = clf_open(C.client, "t");
    CL_OK(clf_get(t, "r3", "3", NULL));
    CL_RC(clf_get(t, "r4", "4", NULL), BT_ENOTFOUND); /* line 3 did not run */
    bt_table_close(t);
    sh_run_free(&r);

    /* -c with --stop-on-error stops too; without, it goes on */
    run_c(&r, "put t r5 cf:a=5; bogus; put t r6 cf:a=6", "--stop-on-error");
    cr_assert_eq(r.status, 1);
    run_c(&r, "count t", NULL);
    HAS(r.out, "rows\n----\n4\n");             /* r1 r2 r3 r5 */
    sh_run_free(&r);
    run_c(&r, "bogus; put t r6 cf:a=6; count t", NULL);
    cr_assert_eq(r.status, 1);
    HAS(r.out, "rows\n----\n5\n");
    HAS(r.err, "bt-shell: line 1: unknown command \"bogus\"");
    sh_run_free(&r);

    /* a script file (-f), multi-line with quit */
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/script.bt", C.root);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("count t\nquit\nput t r9 cf:a=9\n", f);
    fclose(f);
    const char *file[] = {"-f", path, NULL};
    run_shell(&r, NULL, file);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    HAS(r.out, "rows\n----\n5\n");
    HASNT(r.out, "(0 rows");                  /* nothing after quit */
    sh_run_free(&r);
}

SH_TEST(error_messages, 120)
{
    clf_create_table(C.client, "t", NULL, 0);
    sh_run r;
    run_c(&r, "nope", NULL);
    cr_assert_eq(r.status, 1);
    HAS(r.err, "bt-shell: line 1: unknown command \"nope\" (type help for the list)");
    sh_run_free(&r);
    run_c(&r, "get nosuch r", NULL);
    cr_assert_eq(r.status, 1);
    HAS(r.err, "bt-shell: line 1: get: ");
    HAS(r.err, "nosuch");
    sh_run_free(&r);
    run_c(&r, "scan t columns=zz", NULL);
    cr_assert_eq(r.status, 1);
    HAS(r.err, "scan: table t has no family zz");
    sh_run_free(&r);
    run_c(&r, "scan t bogus=1", NULL);
    HAS(r.err, "scan: unknown option \"bogus=1\"");
    sh_run_free(&r);
    run_c(&r, "put t r1", NULL);
    HAS(r.err, "put: usage: put <table> <row>");
    sh_run_free(&r);
    run_c(&r, "put t r1 cf:a", NULL);
    HAS(r.err, "want <family:qualifier>=<value>");
    sh_run_free(&r);
    run_c(&r, "put t r1 cf:a=\"abc", NULL);
    HAS(r.err, "bt-shell: line 1, column 15: unterminated double quote");
    sh_run_free(&r);
    run_c(&r, "create t cf", NULL);
    cr_assert_eq(r.status, 1);
    HAS(r.err, "create: ");
    sh_run_free(&r);
    run_c(&r, "create u cf:maxage=forever", NULL);
    HAS(r.err, "maxage=forever: not a duration");
    sh_run_free(&r);
    run_c(&r, "incr t r cf:n x", NULL);
    HAS(r.err, "incr: \"x\": not an integer");
    sh_run_free(&r);
    run_c(&r, "put t r cf:s=abc; incr t r cf:s", NULL);
    HAS(r.err, "line 1: incr: ");
    sh_run_free(&r);
    run_c(&r, "lock cat /no/such/file", NULL);
    HAS(r.err, "lock: ");
    sh_run_free(&r);
    run_c(&r, "help nope", NULL);
    HAS(r.err, "help: no command \"nope\"");
    sh_run_free(&r);
}

/* Parses every JSON document of s in order into docs (max n); returns the count. */
static int parse_docs(const char *s, cJSON **docs, int n)
{
    int k = 0;
    const char *p = s;
    while (k < n) {
        while (*p == ' ' || *p == '\n') p++;
        if (!*p) break;
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithOpts(p, &end, 0);
        cr_assert_not_null(j, "not JSON at: %.80s", p);
        docs[k++] = j;
        p = end;
    }
    return k;
}

SH_TEST(json_output, 120)
{
    sh_run r;
    run_c(&r, "create j cf; put j r1 cf:a=hello cf:b=\"\\x00\\xff\" ts=7; ls; get j r1; scan j; count j; status; "
              "tablets j; lock cat /bt/master", "--json");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    HASNT(r.out, " ms)");                     /* no footer */
    cJSON *docs[16];
    int n = parse_docs(r.out, docs, 16);
    cr_assert_eq(n, 7, "7 documents, got %d:\n%s", n, r.out);
    /* ls */
    cr_assert(cJSON_IsArray(docs[0]));
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(docs[0], 0), "table")->valuestring, "j");
    /* get */
    cr_assert_eq(cJSON_GetArraySize(docs[1]), 2);
    cJSON *a = cJSON_GetArrayItem(docs[1], 0), *b = cJSON_GetArrayItem(docs[1], 1);
    cr_assert_str_eq(cJSON_GetObjectItem(a, "row")->valuestring, "r1");
    cr_assert_str_eq(cJSON_GetObjectItem(a, "column")->valuestring, "cf:a");
    cr_assert_str_eq(cJSON_GetObjectItem(a, "value")->valuestring, "hello");
    cJSON *ts = cJSON_GetObjectItem(a, "timestamp");
    cr_assert(ts && ((cJSON_IsString(ts) && !strcmp(ts->valuestring, "7")) || (cJSON_IsNumber(ts) && ts->valuedouble == 7)));
    cJSON *bv = cJSON_GetObjectItem(b, "value");
    cr_assert(cJSON_IsObject(bv), "binary value as an object");
    cr_assert_str_eq(cJSON_GetObjectItem(bv, "b64")->valuestring, "AP8=");
    /* scan */
    cr_assert_eq(cJSON_GetArraySize(docs[2]), 2);
    /* count */
    cJSON *cnt = cJSON_GetObjectItem(cJSON_GetArrayItem(docs[3], 0), "rows");
    cr_assert(cnt && ((cJSON_IsString(cnt) && !strcmp(cnt->valuestring, "1")) || (cJSON_IsNumber(cnt) && cnt->valuedouble == 1)));
    /* status */
    cr_assert(cJSON_IsObject(docs[4]));
    cr_assert_str_eq(cJSON_GetObjectItem(docs[4], "master")->valuestring, C.master[0].addr);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(docs[4], "servers")), 2);
    /* tablets */
    cr_assert_eq(cJSON_GetArraySize(docs[5]), 1);
    cr_assert_not_null(cJSON_GetObjectItem(cJSON_GetArrayItem(docs[5], 0), "server"));
    /* lock cat */
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(docs[6], 0), "contents")->valuestring, C.master[0].addr);
    for (int i = 0; i < n; i++) cJSON_Delete(docs[i]);
    sh_run_free(&r);
}

SH_TEST(binary_round_trip, 120)
{
    clf_create_table(C.client, "t", NULL, 0);
    sh_run r;
    run_c(&r, "put t \"a\\x00b\" \"cf:q\\x01\"=\"a\\x00b\"; get t \"a\\x00b\"", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    HAS(r.out, "\"a\\x00b\"  \"cf:q\\x01\"  ");
    HAS(r.out, "  \"a\\x00b\"\n");
    sh_run_free(&r);
    /* the SDK sees exactly the bytes */
    bt_table *t = clf_open(C.client, "t");
    bt_row *row = NULL;
    CL_OK(bt_read_row(t, "a\0b", 3, NULL, &row));
    cr_assert_eq(row->n_cells, 1);
    cr_assert_eq(row->cells[0].qualifier_len, 2);
    cr_assert_eq(memcmp(row->cells[0].qualifier, "q\x01", 2), 0);
    cr_assert_eq(row->cells[0].value_len, 3);
    cr_assert_eq(memcmp(row->cells[0].value, "a\0b", 3), 0);
    bt_row_free(row);

    /* a value with every byte: what get prints, pasted back, is the same value */
    uint8_t all[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    bt_mutation *m = bt_mutation_new("bin", 3);
    CL_OK(bt_mutation_set(m, "cf", "v", 1, 5, all, sizeof all));
    CL_OK(bt_apply(t, m));
    bt_mutation_free(m);
    run_c(&r, "get t bin", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    const char *line = strstr(r.out, "\nbin ");
    cr_assert_not_null(line, "%s", r.out);
    const char *val = strstr(line, "  5  ");
    cr_assert_not_null(val);
    val = strchr(val, '"');                  /* the value column: escaped, so quoted */
    cr_assert_not_null(val);
    const char *nl = strchr(val, '\n');
    cr_assert_not_null(nl);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "put t bin2 cf:v=%.*s ts=5", (int)(nl - val), val);
    sh_run_free(&r);
    run_c(&r, cmd, NULL);
    cr_assert_eq(r.status, 0, "%s: %s", cmd, r.err);
    sh_run_free(&r);
    CL_OK(bt_read_row(t, "bin2", 4, NULL, &row));
    cr_assert_eq(row->cells[0].value_len, 256);
    cr_assert_eq(memcmp(row->cells[0].value, all, 256), 0, "pasted value differs");
    bt_row_free(row);
    bt_table_close(t);
}

Test(shell, no_cluster, .timeout = 60)
{
    char bin[PATH_MAX + 32];
    tsf_bin("bt-shell", bin, sizeof bin);
    char out[] = "/tmp/bt-shell-nc-XXXXXX";
    int fd = mkstemp(out);
    cr_assert(fd >= 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(9);
        dup2(fd, 1);
        dup2(fd, 2);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        execl(bin, bin, "--lock", "bt://127.0.0.1:1", "-c", "ls", (char *)NULL);
        _exit(127);
    }
    close(fd);
    int64_t t0 = tsf_now_ms();
    int st = tsf_wait_pid(&pid, 20000);
    if (pid > 0) tsf_kill(&pid);
    char *text = tsf_slurp(out, NULL);
    unlink(out);
    cr_assert(st >= 0 && WIFEXITED(st), "bt-shell did not exit in time");
    cr_assert_eq(WEXITSTATUS(st), 3, "exit status %d: %s", WEXITSTATUS(st), text);
    HAS(text, "bt://127.0.0.1:1");
    HAS(text, "make run");
    cr_log_info("no cluster: reported after %lld ms", (long long)(tsf_now_ms() - t0));
    free(text);
}

/* ---- the interactive shell in a pseudo-terminal ------------------------------------- */

typedef struct pty_sess {
    int fd;
    pid_t pid;
    char buf[1 << 16];
    size_t len, mark;
} pty_sess;

/* Reads what is available for up to ms. */
static void pty_pump(pty_sess *p, int ms)
{
    struct pollfd pf = {.fd = p->fd, .events = POLLIN};
    if (poll(&pf, 1, ms) <= 0) return;
    ssize_t n = read(p->fd, p->buf + p->len, sizeof p->buf - 1 - p->len);
    if (n > 0) {
        p->len += (size_t)n;
        p->buf[p->len] = '\0';
    }
}

/* Waits (bounded) until `want` appears after the mark; moves the mark past it. */
static void pty_expect(pty_sess *p, const char *want, int ms)
{
    int64_t end = tsf_now_ms() + ms;
    for (;;) {
        p->buf[p->len] = '\0';
        char *at = strstr(p->buf + p->mark, want);
        if (at) {
            p->mark = (size_t)(at - p->buf) + strlen(want);
            return;
        }
        cr_assert(tsf_now_ms() < end && p->len < sizeof p->buf - 1, "no \"%s\" from the shell; it printed:\n%s", want,
                  p->buf + (p->mark > 2000 ? p->mark - 2000 : 0));
        pty_pump(p, 50);
    }
}

/* Starts bin in a new pseudo-terminal (200x40) with env. */
static void pty_start(pty_sess *p, char *bin, char **env)
{
    memset(p, 0, sizeof *p);
    char *argv[] = {bin, NULL};
    struct winsize ws = {.ws_row = 40, .ws_col = 200};
    pid_t parent = getpid();
    p->pid = forkpty(&p->fd, NULL, NULL, &ws);
    cr_assert(p->pid >= 0, "forkpty: %s", strerror(errno));
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(9);
        close_range(3, ~0u, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(bin, argv, env);
        _exit(127);
    }
}

/* Waits (bounded) for the shell to exit 0 and closes the terminal. */
static void pty_wait_exit(pty_sess *p)
{
    int64_t end = tsf_now_ms() + 10000;
    int st = -1;
    while (p->pid > 0 && tsf_now_ms() < end) {
        pty_pump(p, 20); /* keep draining the terminal */
        st = tsf_wait_pid(&p->pid, 10);
    }
    if (p->pid > 0) tsf_kill(&p->pid);
    close(p->fd);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the shell did not exit with status 0 (%d):\n%s", st,
              p->buf);
}

static void pty_type(pty_sess *p, const char *s)
{
    size_t n = strlen(s);
    cr_assert_eq(write(p->fd, s, n), (ssize_t)n);
}

SH_TEST(interactive_pty, 120)
{
    clf_create_table(C.client, "ptytable", NULL, 0);
    char home[PATH_MAX + 32], hist[PATH_MAX + 64], bin[PATH_MAX + 32];
    snprintf(home, sizeof home, "%s/home", C.root);
    cr_assert_eq(mkdir(home, 0700), 0);
    snprintf(hist, sizeof hist, "%s/history", home);
    tsf_bin("bt-shell", bin, sizeof bin);
    char e_lock[96], e_home[PATH_MAX + 40], e_hist[PATH_MAX + 96];
    snprintf(e_lock, sizeof e_lock, "BT_LOCK=%s", C.lock_url);
    snprintf(e_home, sizeof e_home, "HOME=%s", home);
    snprintf(e_hist, sizeof e_hist, "BT_SHELL_HISTORY=%s", hist);
    const char *drop[] = {"BT_LOCK", "HOME", "BT_SHELL_HISTORY", "TERM", "EDITRC", NULL};
    const char *extra[] = {e_lock, e_home, e_hist, "TERM=xterm", NULL};
    char **env = make_env(drop, extra);

    static pty_sess p;
    pty_start(&p, bin, env);

    pty_expect(&p, "connected to", 20000);
    pty_expect(&p, "bt> ", 10000);
    /* a command and its output */
    pty_type(&p, "ls\r");
    pty_expect(&p, "ptytable", 10000);
    pty_expect(&p, "(1 row, ", 10000);
    pty_expect(&p, "bt> ", 10000);
    /* up-arrow recalls "ls" */
    pty_type(&p, "\x1b[A");
    pty_expect(&p, "ls", 5000);
    pty_type(&p, "\r");
    pty_expect(&p, "ptytable", 10000);
    pty_expect(&p, "(1 row, ", 10000);
    pty_expect(&p, "bt> ", 10000);
    /* TAB completes a command name: "desc" -> "describe " */
    pty_type(&p, "desc\t");
    pty_expect(&p, "ribe ", 5000);           /* libedit may redraw with cursor moves */
    /* ... and a table name: "pty" -> "ptytable"; the command that runs
     * proves both completions */
    pty_type(&p, "pty\t");
    pty_expect(&p, "table", 5000);
    pty_type(&p, "\r");
    pty_expect(&p, "table ptytable: 1 tablet", 10000);
    pty_expect(&p, "bt> ", 10000);
    /* an error stays an error message, the shell goes on */
    pty_type(&p, "get nosuchtable r\r");
    pty_expect(&p, "bt-shell: get: ", 10000);
    pty_expect(&p, "bt> ", 10000);
    pty_type(&p, "quit\r");
    pty_wait_exit(&p);

    /* the history file holds the typed commands (libedit writes a blank as \040) */
    char *h = tsf_slurp(hist, NULL);
    cr_assert_not_null(h, "no history file %s", hist);
    HAS(h, "\nls\n");
    cr_assert(strstr(h, "describe ptytable") || strstr(h, "describe\\040ptytable"), "history:\n%s", h);
    HAS(h, "\nquit");
    free(h);

    /* a new session reads it back: up-arrow recalls the last command, quit */
    pty_start(&p, bin, env);
    pty_expect(&p, "bt> ", 20000);
    pty_type(&p, "\x1b[A");
    pty_expect(&p, "quit", 5000);
    pty_type(&p, "\r");
    pty_wait_exit(&p);
    free(env);
}

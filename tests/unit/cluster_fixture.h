/* tests/unit/cluster_fixture.h: the per-test fixture of the cluster
 * integration tests (tests/unit/test_cluster.c), which run a whole cluster of
 * REAL processes on 127.0.0.1 and drive it through the public SDK (libbt,
 * client/bt.h).  Not a test binary of its own (only test_*.c are).
 *
 * Per test (CL_TEST(name, seconds): .init clf_init, .fini clf_fini):
 *   - a temporary directory /tmp/bt-itest-cluster-XXXXXX holding lockd/
 *     (bt-lockd's store), data/ (the shared --data-dir of the masters and
 *     tablet servers) and, per process, <name>.stdout and <name>.stderr
 *     (appended by every incarnation: logs and sanitizer reports);
 *   - bt-lockd on an ephemeral port (its "bt-lockd: listening on ..." line);
 *   - then the test calls clf_cluster(masters, servers, balance_ms):
 *       bt-master --port 0 --data-dir D --lock URL --lease-ms 3000
 *                 --balance-interval-ms B       (B 0: balancing off)
 *     the first waited for until "bt-master: active on", the others until
 *     "standby on"; then
 *       bt-tabletserver --port 0 --id tsK --data-dir D --lock URL
 *                       --lease-ms 3000 --memtable-mb 4
 *     each waited for until "serving on"; then C.client = bt_connect() and a
 *     bounded wait until bt_cluster_status_get reports every server and no
 *     unassigned tablet.
 * Binaries come from BUILD/bin next to this binary's BUILD/tests.  Children
 * are forked from the test's main thread with PR_SET_PDEATHSIG (see
 * tsf_spawn in ts_fixture.h, whose process helpers this file reuses), so a
 * test killed by its timeout takes them along; clf_fini and an atexit handler
 * also SIGKILL them and remove the directory (kept with TSF_KEEP set).
 *
 * When the body returns, clf_finish() runs in the test itself (Criterion 2.4
 * does not count assertion failures in .fini): the client is closed, the
 * masters and then the tablet servers get SIGTERM and must exit 0 within
 * 20 s, and no child's stderr (every incarnation, killed ones included) may
 * hold an AddressSanitizer, UndefinedBehaviorSanitizer, LeakSanitizer or
 * ThreadSanitizer report.  Under TSan the children run with
 * detect_deadlocks=0 (tsf_env).
 *
 * Helper threads (writers, scanners) must not use cr_assert: they record, the
 * main thread asserts after joining them.  Processes are started and reaped
 * from the main thread only.
 */
#ifndef BT_TESTS_CLUSTER_FIXTURE_H
#define BT_TESTS_CLUSTER_FIXTURE_H

#include <pthread.h>
#include <strings.h>

#include "client/bt.h"
#include "tests/unit/ts_fixture.h"

#define CLF_FN static __attribute__((unused))

#define CLF_LEASE_MS 3000
#define CLF_MAX_TS 4
#define CLF_MAX_MASTERS 2
#define CLF_START_MS 20000      /* bound on one process's start (lock wait included) */
#define CLF_READY_MS 60000      /* bound on the cluster serving every tablet */
#define CLF_STOP_MS 20000       /* bound on a SIGTERM shutdown */
#define CLF_CLIENT_TIMEOUT_MS 20000
#define CLF_FAMILY "cf"

/* One child process (and its later incarnations, which reuse the files). */
typedef struct clf_proc {
    char name[32];              /* "lockd", "master0", "ts1" (also the server id) */
    pid_t pid;                  /* -1 when not running */
    int status;                 /* wait status of the last incarnation that ended; -1: none */
    bool stopped;               /* SIGSTOPped by the test */
    int incarnations;
    char addr[64];              /* "127.0.0.1:port" of the current (or last) incarnation */
    char out[PATH_MAX + 32], err[PATH_MAX + 32];
    long out_off;               /* size of out when the current incarnation started */
} clf_proc;

typedef struct clf_state {
    char root[PATH_MAX];
    char lockd_dir[PATH_MAX + 16], data_dir[PATH_MAX + 16];
    char lock_url[64];
    clf_proc lockd;
    clf_proc master[CLF_MAX_MASTERS];
    clf_proc ts[CLF_MAX_TS];
    uint32_t balance_ms;
    bt_client *client;
    bool atexit_set;
    bool finished;
} clf_state;

static clf_state C;

/* ---- children ---------------------------------------------------------------------- */

CLF_FN void clf_proc_init(clf_proc *p, const char *name)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->pid = -1;
    p->status = -1;
    snprintf(p->out, sizeof p->out, "%s/%s.stdout", C.root, name);
    snprintf(p->err, sizeof p->err, "%s/%s.stderr", C.root, name);
}

CLF_FN long clf_file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : 0;
}

/* Starts a new incarnation of p with argv, stdout and stderr appended to
 * p->out and p->err. */
CLF_FN void clf_spawn(clf_proc *p, char *const argv[])
{
    cr_assert(p->pid <= 0, "%s is already running", p->name);
    p->out_off = clf_file_size(p->out);
    int out = open(p->out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int err = open(p->err, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    cr_assert(out >= 0 && err >= 0, "open %s: %s", p->out, strerror(errno));
    p->pid = tsf_spawn(argv, out, err);
    p->stopped = false;
    p->incarnations++;
    close(out);
    close(err);
}

/* If p has ended, reaps it (status in p->status) and returns true. */
CLF_FN bool clf_reap(clf_proc *p)
{
    if (p->pid <= 0) return true;
    int st = 0;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->status = st;
        p->pid = -1;
        return true;
    }
    if (r < 0 && errno != EINTR) {
        p->status = -1;
        p->pid = -1;
        return true;
    }
    return false;
}

/* Waits up to timeout_ms for p to end; its wait status, or -1 on timeout. */
CLF_FN int clf_wait_exit(clf_proc *p, int timeout_ms)
{
    if (p->pid <= 0) return p->status;
    int64_t end = tsf_now_ms() + timeout_ms;
    for (;;) {
        if (clf_reap(p)) return p->status;
        if (tsf_now_ms() >= end) return -1;
        tsf_sleep_ms(10);
    }
}

CLF_FN void clf_describe_status(int st, char *buf, size_t cap)
{
    if (st == -1) snprintf(buf, cap, "no status");
    else if (WIFEXITED(st)) snprintf(buf, cap, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) snprintf(buf, cap, "signal %d", WTERMSIG(st));
    else snprintf(buf, cap, "wait status %d", st);
}

/* Waits up to timeout_ms for a line starting with prefix in what the current
 * incarnation of p printed on stdout; copies it (without the newline) to line.
 * Fails the test (after dumping p's stderr) if p ends first or time runs out. */
CLF_FN void clf_wait_line(clf_proc *p, const char *prefix, char *line, size_t cap, int timeout_ms)
{
    int64_t end = tsf_now_ms() + timeout_ms;
    for (;;) {
        size_t len = 0;
        char *s = tsf_slurp(p->out, &len);
        if (s && (long)len > p->out_off) {
            char *at = s + p->out_off;
            while (at && *at) {
                char *nl = strchr(at, '\n');
                if (!nl) break;
                if (!strncmp(at, prefix, strlen(prefix))) {
                    snprintf(line, cap, "%.*s", (int)(nl - at), at);
                    free(s);
                    return;
                }
                at = nl + 1;
            }
        }
        free(s);
        bool ended = clf_reap(p);
        if (ended || tsf_now_ms() >= end) {
            char how[64];
            clf_describe_status(p->status, how, sizeof how);
            tsf_dump(p->err, 3000);
            cr_assert_fail("%s: no \"%s\" line %s (%s)", p->name, prefix,
                           ended ? "before it ended" : "in time", ended ? how : "still running");
        }
        tsf_sleep_ms(20);
    }
}

CLF_FN void clf_sigkill(clf_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        int st = 0;
        if (waitpid(p->pid, &st, 0) == p->pid) p->status = st;
        p->pid = -1;
        p->stopped = false;
    }
}

/* ---- bt-lockd, bt-master, bt-tabletserver -------------------------------------------- */

CLF_FN void clf_start_lockd(void)
{
    char bin[PATH_MAX + 32];
    tsf_bin("bt-lockd", bin, sizeof bin);
    char *argv[] = {bin, "--port", "0", "--data-dir", C.lockd_dir, NULL};
    clf_spawn(&C.lockd, argv);
    char line[256];
    clf_wait_line(&C.lockd, "bt-lockd: listening on ", line, sizeof line, 10000);
    unsigned port = 0;
    cr_assert_eq(sscanf(line, "bt-lockd: listening on 127.0.0.1:%u", &port), 1, "bt-lockd said \"%s\"", line);
    snprintf(C.lock_url, sizeof C.lock_url, "bt://127.0.0.1:%u", port);
    snprintf(C.lockd.addr, sizeof C.lockd.addr, "127.0.0.1:%u", port);
}

/* Starts master i; waits for its "standby on" or "active on" line. */
CLF_FN void clf_start_master(int i)
{
    cr_assert(i >= 0 && i < CLF_MAX_MASTERS);
    clf_proc *p = &C.master[i];
    char bin[PATH_MAX + 32], lease[16], bal[16];
    tsf_bin("bt-master", bin, sizeof bin);
    snprintf(lease, sizeof lease, "%d", CLF_LEASE_MS);
    snprintf(bal, sizeof bal, "%u", (unsigned)C.balance_ms);
    char *argv[] = {bin, "--port", "0", "--data-dir", C.data_dir, "--lock", C.lock_url, "--lease-ms", lease,
                    "--balance-interval-ms", bal, NULL};
    clf_spawn(p, argv);
    char line[256];
    clf_wait_line(p, "bt-master: ", line, sizeof line, CLF_START_MS);
    char addr[64] = "";
    if (sscanf(line, "bt-master: standby on %63[^,]", addr) != 1)
        cr_assert_eq(sscanf(line, "bt-master: active on %63s", addr), 1, "%s said \"%s\"", p->name, line);
    snprintf(p->addr, sizeof p->addr, "%s", addr);
}

/* Waits for master i's "active on" line; returns the ms it took. */
CLF_FN int64_t clf_wait_master_active(int i, int timeout_ms)
{
    int64_t t0 = tsf_now_ms();
    char line[256];
    clf_wait_line(&C.master[i], "bt-master: active on ", line, sizeof line, timeout_ms);
    char addr[64] = "";
    cr_assert_eq(sscanf(line, "bt-master: active on %63s", addr), 1);
    cr_assert_str_eq(addr, C.master[i].addr, "%s: active on %s, standby on %s", C.master[i].name, addr,
                     C.master[i].addr);
    return tsf_now_ms() - t0;
}

/* Starts (or restarts, same id and data dir) tablet server i, id "ts<i>";
 * waits for its "serving on" line (a restart first waits out the dead
 * incarnation's lock). */
CLF_FN void clf_start_ts(int i)
{
    cr_assert(i >= 0 && i < CLF_MAX_TS);
    clf_proc *p = &C.ts[i];
    char bin[PATH_MAX + 32], lease[16];
    tsf_bin("bt-tabletserver", bin, sizeof bin);
    snprintf(lease, sizeof lease, "%d", CLF_LEASE_MS);
    char *argv[] = {bin, "--port", "0", "--id", p->name, "--data-dir", C.data_dir, "--lock", C.lock_url,
                    "--lease-ms", lease, "--memtable-mb", "4", NULL};
    clf_spawn(p, argv);
    char line[256], addr[64] = "", id[80] = "";
    clf_wait_line(p, "bt-tabletserver: serving on ", line, sizeof line, CLF_START_MS);
    cr_assert_eq(sscanf(line, "bt-tabletserver: serving on %63s as %79s", addr, id), 2, "%s said \"%s\"", p->name,
                 line);
    cr_assert_str_eq(id, p->name);
    snprintf(p->addr, sizeof p->addr, "%s", addr);
}

CLF_FN void clf_kill_ts(int i) { clf_sigkill(&C.ts[i]); }
CLF_FN void clf_kill_master(int i) { clf_sigkill(&C.master[i]); }

/* SIGSTOP and wait (bounded) until every thread of the server is stopped. */
CLF_FN void clf_stop_ts(int i)
{
    clf_proc *p = &C.ts[i];
    cr_assert(p->pid > 0, "%s is not running", p->name);
    kill(p->pid, SIGSTOP);
    p->stopped = true;
    int64_t end = tsf_now_ms() + 3000;
    while (!tsf_all_threads_stopped(p->pid) && tsf_now_ms() < end) tsf_sleep_ms(1);
    cr_assert(tsf_all_threads_stopped(p->pid), "%s: not every thread stopped", p->name);
}

CLF_FN void clf_cont_ts(int i)
{
    clf_proc *p = &C.ts[i];
    if (p->pid > 0) kill(p->pid, SIGCONT);
    p->stopped = false;
}

/* Index of the tablet server with id "ts<i>", or -1. */
CLF_FN int clf_ts_index(const char *id)
{
    for (int i = 0; i < CLF_MAX_TS; i++)
        if (id && C.ts[i].name[0] && !strcmp(C.ts[i].name, id)) return i;
    return -1;
}

/* A child's stderr so far (every incarnation); free() it. */
CLF_FN char *clf_stderr_of(const clf_proc *p) { return tsf_slurp(p->err, NULL); }

/* Fails the test if any child's stderr holds a sanitizer report. */
CLF_FN void clf_check_sanitizers(void)
{
    tsf_check_sanitizer_log(C.lockd.err, false); /* SIGKILLed: leaks are not its to report */
    for (int i = 0; i < CLF_MAX_MASTERS; i++)
        if (C.master[i].incarnations) tsf_check_sanitizer_log(C.master[i].err, true);
    for (int i = 0; i < CLF_MAX_TS; i++)
        if (C.ts[i].incarnations) tsf_check_sanitizer_log(C.ts[i].err, true);
}

/* ---- the client ------------------------------------------------------------------ */

#define CL_RC(expr, want)                                                                   \
    do {                                                                                    \
        int rc_ = (expr);                                                                   \
        int want_ = (want);                                                                 \
        cr_assert_eq(rc_, want_, "%s -> %s, want %s (%s)", #expr, bt_errname(rc_),          \
                     bt_errname(want_), bt_errmsg());                                       \
    } while (0)
#define CL_OK(expr) CL_RC(expr, BT_OK)

CLF_FN bt_client *clf_connect(int timeout_ms, int rpc_timeout_ms)
{
    bt_client_options o = {.timeout_ms = timeout_ms, .rpc_timeout_ms = rpc_timeout_ms};
    bt_client *c = NULL;
    CL_OK(bt_connect(C.lock_url, &o, &c));
    cr_assert_not_null(c);
    return c;
}

/* Waits (bounded) until the master reports n live servers, every tablet
 * assigned, and at least min_tablets tablets; returns the ms it took. */
CLF_FN int64_t clf_wait_ready(size_t n, uint64_t min_tablets, int timeout_ms)
{
    int64_t t0 = tsf_now_ms(), end = t0 + timeout_ms;
    char last[256] = "no answer";
    for (;;) {
        bt_cluster_status *st = NULL;
        int rc = bt_cluster_status_get(C.client, &st);
        if (rc == BT_OK) {
            bool ok = st->n_servers == n && st->unassigned_tablets == 0 && st->tablets >= min_tablets;
            snprintf(last, sizeof last, "%zu servers, %llu tablets, %llu unassigned", st->n_servers,
                     (unsigned long long)st->tablets, (unsigned long long)st->unassigned_tablets);
            bt_cluster_status_free(st);
            if (ok) return tsf_now_ms() - t0;
        } else {
            snprintf(last, sizeof last, "bt_cluster_status_get: %s (%s)", bt_errname(rc), bt_errmsg());
        }
        cr_assert_lt(tsf_now_ms(), end, "the cluster did not get ready (%zu servers, every tablet assigned) "
                                        "within %d ms; last: %s", n, timeout_ms, last);
        tsf_sleep_ms(50);
    }
}

/* Starts n_masters masters (the first active, the others standbys) with the
 * given balance interval (0: off), n_ts tablet servers ts0.., connects
 * C.client and waits until the cluster serves every tablet. */
CLF_FN void clf_cluster(int n_masters, int n_ts, uint32_t balance_ms)
{
    C.balance_ms = balance_ms;
    for (int i = 0; i < n_masters; i++) {
        clf_start_master(i);
        if (i == 0) clf_wait_master_active(0, CLF_START_MS);
    }
    for (int i = 0; i < n_ts; i++) clf_start_ts(i);
    C.client = clf_connect(CLF_CLIENT_TIMEOUT_MS, 0);
    clf_wait_ready((size_t)n_ts, 2, CLF_READY_MS); /* METADATA: root + one more */
}

/* A schema with family "cf" (every version kept) and the given splits. */
CLF_FN void clf_create_table(bt_client *c, const char *name, const char *const *splits, size_t n)
{
    bt_schema *s = bt_schema_new();
    cr_assert_not_null(s);
    CL_OK(bt_schema_add_family(s, CLF_FAMILY, 0, 0));
    bt_key keys[64];
    cr_assert_leq(n, 64);
    for (size_t i = 0; i < n; i++) keys[i] = (bt_key){splits[i], strlen(splits[i])};
    CL_OK(bt_create_table(c, name, s, keys, n));
    bt_schema_free(s);
}

CLF_FN bt_table *clf_open(bt_client *c, const char *name)
{
    bt_table *t = NULL;
    CL_OK(bt_table_open(c, name, &t));
    cr_assert_not_null(t);
    return t;
}

/* One SetCell cf:c = val (server time). */
CLF_FN int clf_put(bt_table *t, const char *row, const char *val)
{
    bt_mutation *m = bt_mutation_new(row, strlen(row));
    if (!m) return BT_ENOMEM;
    int rc = bt_mutation_set(m, CLF_FAMILY, "c", 1, BT_SERVER_TIME, val, strlen(val));
    if (!rc) rc = bt_apply(t, m);
    bt_mutation_free(m);
    return rc;
}

/* Reads row; BT_OK only if its newest cf:c holds want (else BT_ECORRUPT with
 * what it holds in got, 128 bytes, if got is not NULL). */
CLF_FN int clf_get(bt_table *t, const char *row, const char *want, char *got)
{
    bt_row *r = NULL;
    int rc = bt_read_row(t, row, strlen(row), NULL, &r);
    if (rc) return rc;
    rc = BT_ECORRUPT;
    if (r->key_len == strlen(row) && !memcmp(r->key, row, r->key_len) && r->n_cells >= 1) {
        const bt_cell *cl = &r->cells[0];
        if (cl->value_len == strlen(want) && !memcmp(cl->value, want, cl->value_len)) rc = BT_OK;
        else if (got) snprintf(got, 128, "%.*s", (int)(cl->value_len > 100 ? 100 : cl->value_len),
                               (const char *)cl->value);
    } else if (got) {
        snprintf(got, 128, "row \"%.*s\" with %zu cells", (int)(r->key_len > 60 ? 60 : r->key_len),
                 (const char *)r->key, r->n_cells);
    }
    bt_row_free(r);
    return rc;
}

CLF_FN bt_table_desc *clf_describe(bt_client *c, const char *name)
{
    bt_table_desc *d = NULL;
    CL_OK(bt_describe_table(c, name, &d));
    cr_assert_not_null(d);
    return d;
}

/* True if row lies in the tablet's [start, end). */
CLF_FN bool clf_in_tablet(const bt_tablet_desc *td, const void *row, size_t rl)
{
    size_t n = td->start_len < rl ? td->start_len : rl;
    int c = memcmp(row, td->start, n);
    if (c < 0 || (c == 0 && rl < td->start_len)) return false;
    if (td->end_len == 0) return true;
    n = td->end_len < rl ? td->end_len : rl;
    c = memcmp(row, td->end, n);
    return c < 0 || (c == 0 && rl < td->end_len);
}

/* Number of tablets of d served by server id (NULL: unassigned ones). */
CLF_FN size_t clf_tablets_on(const bt_table_desc *d, const char *id)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_tablets; i++) {
        const char *s = d->tablets[i].server_id ? d->tablets[i].server_id : "";
        if (id ? !strcmp(s, id) : !d->tablets[i].server || !d->tablets[i].server[0]) n++;
    }
    return n;
}

/* ---- string lists ------------------------------------------------------------------ */

typedef struct clf_strs {
    char **s;
    size_t n, cap;
} clf_strs;

CLF_FN int clf_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

CLF_FN void clf_strs_add(clf_strs *l, const char *s, size_t len)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 1024;
        char **ns = realloc(l->s, nc * sizeof *ns);
        if (!ns) abort();
        l->s = ns;
        l->cap = nc;
    }
    l->s[l->n] = strndup(s, len);
    if (!l->s[l->n]) abort();
    l->n++;
}

CLF_FN void clf_strs_sort(clf_strs *l)
{
    if (l->n) qsort(l->s, l->n, sizeof *l->s, clf_cmp_str);
}

/* l must be sorted. */
CLF_FN bool clf_strs_has(const clf_strs *l, const char *s)
{
    return l->n && bsearch(&s, l->s, l->n, sizeof *l->s, clf_cmp_str) != NULL;
}

CLF_FN void clf_strs_free(clf_strs *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    memset(l, 0, sizeof *l);
}

/* Scans the whole table (or [start, end) if given) and collects every row
 * key; checks on the way that keys come strictly increasing (so each row
 * once) and that each row's newest cf:c is its own key (the convention of
 * these tests' writers), unless check_values is false.  Returns BT_OK or the
 * scanner's error; problems go to why (512 bytes, "" if none).  Usable from
 * helper threads (no assertion). */
CLF_FN int clf_scan_keys(bt_table *t, clf_strs *out, bool check_values, char *why)
{
    why[0] = '\0';
    bt_scanner *s = NULL;
    int rc = bt_scan_open(t, NULL, &s);
    if (rc) {
        snprintf(why, 512, "bt_scan_open: %s (%s)", bt_errname(rc), bt_errmsg());
        return rc;
    }
    const bt_row *r;
    char prev[4200] = "";
    size_t prev_len = 0;
    bool have_prev = false;
    while ((rc = bt_scanner_next(s, &r)) == BT_OK) {
        if (have_prev) {
            size_t n = prev_len < r->key_len ? prev_len : r->key_len;
            int c = memcmp(prev, r->key, n);
            if (c > 0 || (c == 0 && prev_len >= r->key_len)) {
                if (!why[0])
                    snprintf(why, 512, "row \"%.*s\" came after \"%.*s\" (%s)", (int)r->key_len, (const char *)r->key,
                             (int)prev_len, prev, c == 0 && prev_len == r->key_len ? "a duplicate" : "out of order");
            }
        }
        if (check_values && !why[0]) {
            if (r->n_cells < 1 || r->cells[0].value_len != r->key_len ||
                memcmp(r->cells[0].value, r->key, r->key_len))
                snprintf(why, 512, "row \"%.*s\" does not hold its own key (%zu cells)", (int)r->key_len,
                         (const char *)r->key, r->n_cells);
        }
        if (r->key_len < sizeof prev) {
            memcpy(prev, r->key, r->key_len);
            prev_len = r->key_len;
            have_prev = true;
        }
        clf_strs_add(out, (const char *)r->key, r->key_len);
    }
    bt_scanner_close(s);
    if (rc == BT_ENOTFOUND) return BT_OK;
    snprintf(why, 512, "bt_scanner_next after %zu rows: %s (%s)", out->n, bt_errname(rc), bt_errmsg());
    return rc;
}

/* ---- fixture ------------------------------------------------------------------------ */

static void clf_cleanup(void)
{
    for (int i = 0; i < CLF_MAX_MASTERS; i++) clf_sigkill(&C.master[i]);
    for (int i = 0; i < CLF_MAX_TS; i++) clf_sigkill(&C.ts[i]);
    clf_sigkill(&C.lockd);
    if (C.root[0]) {
        if (getenv("TSF_KEEP")) fprintf(stderr, "keeping %s (TSF_KEEP)\n", C.root);
        else test_rm_rf(C.root);
        C.root[0] = '\0';
    }
}

CLF_FN void clf_init(void)
{
    if (!C.atexit_set) {
        atexit(clf_cleanup);
        C.atexit_set = true;
    }
    snprintf(C.root, sizeof C.root, "/tmp/bt-itest-cluster-XXXXXX");
    cr_assert_not_null(mkdtemp(C.root), "mkdtemp: %s", strerror(errno));
    snprintf(C.lockd_dir, sizeof C.lockd_dir, "%s/lockd", C.root);
    snprintf(C.data_dir, sizeof C.data_dir, "%s/data", C.root);
    cr_assert_eq(mkdir(C.data_dir, 0755), 0);
    clf_proc_init(&C.lockd, "lockd");
    for (int i = 0; i < CLF_MAX_MASTERS; i++) {
        char n[32];
        snprintf(n, sizeof n, "master%d", i);
        clf_proc_init(&C.master[i], n);
    }
    for (int i = 0; i < CLF_MAX_TS; i++) {
        char n[32];
        snprintf(n, sizeof n, "ts%d", i);
        clf_proc_init(&C.ts[i], n);
    }
    clf_start_lockd();
}

CLF_FN void clf_fini(void)
{
    if (C.root[0] && !C.finished) {
        /* a failed test: how each child ended, the end of its stderr */
        clf_proc *all[1 + CLF_MAX_MASTERS + CLF_MAX_TS];
        int n = 0;
        all[n++] = &C.lockd;
        for (int i = 0; i < CLF_MAX_MASTERS; i++) all[n++] = &C.master[i];
        for (int i = 0; i < CLF_MAX_TS; i++) all[n++] = &C.ts[i];
        for (int i = 0; i < n; i++) {
            if (!all[i]->incarnations) continue;
            bool was_running = all[i]->pid > 0;
            bool ended = was_running && clf_reap(all[i]);
            char how[64];
            clf_describe_status(all[i]->status, how, sizeof how);
            fprintf(stderr, "%s (%s): %s\n", all[i]->name, all[i]->addr,
                    was_running && !ended ? "running" : ended ? "died during the test" : how);
            if (ended) fprintf(stderr, "  it ended with %s\n", how);
            tsf_dump(all[i]->err, 1500);
        }
        /* helper threads of a failed test may still use the client: leave it */
        C.client = NULL;
    }
    if (C.client) {
        bt_close(C.client);
        C.client = NULL;
    }
    clf_cleanup();
}

/* End of every successful test body: clean SIGTERM shutdowns (exit 0) of the
 * masters, then the servers; no sanitizer report from any child. */
CLF_FN void clf_finish(void)
{
    if (C.client) {
        bt_close(C.client);
        C.client = NULL;
    }
    clf_proc *order[CLF_MAX_MASTERS + CLF_MAX_TS];
    int n = 0;
    for (int i = 0; i < CLF_MAX_MASTERS; i++) order[n++] = &C.master[i];
    for (int i = 0; i < CLF_MAX_TS; i++) order[n++] = &C.ts[i];
    for (int i = 0; i < n; i++) {
        clf_proc *p = order[i];
        if (p->pid <= 0) continue;
        if (p->stopped) kill(p->pid, SIGCONT);
        kill(p->pid, SIGTERM);
        int st = clf_wait_exit(p, CLF_STOP_MS);
        char how[64];
        clf_describe_status(st, how, sizeof how);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) tsf_dump(p->err, 4000);
        cr_assert_neq(st, -1, "%s did not exit within %d ms of SIGTERM", p->name, CLF_STOP_MS);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: %s after SIGTERM, want exit status 0", p->name,
                  how);
    }
    clf_sigkill(&C.lockd);
    clf_check_sanitizers();
    C.finished = true;
}

/* Criterion 2.4's runner leaks a small allocation when a binary has more than
 * one suite; suppress leaks allocated inside libcriterion only. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcriterion.so\n"; }

#define CL_TEST(name, secs)                                                                 \
    static void name##_body(void);                                                          \
    Test(cluster, name, .init = clf_init, .fini = clf_fini, .timeout = secs)                \
    {                                                                                       \
        name##_body();                                                                      \
        clf_finish();                                                                       \
    }                                                                                       \
    static void name##_body(void)

#endif

/* tests/unit/test_gateway_page.c: GET /metrics and the status page (GET /)
 * of a real bt-gateway in front of a real cluster (bt-lockd, bt-master, two
 * bt-tabletserver; tests/unit/cluster_fixture.h):
 *
 *   metrics_and_page
 *     - two tables are created and written through libbt, then
 *       `bt-gateway --lock URL --port 0` starts (ready on its stderr line
 *       "bt-gateway: listening on 127.0.0.1:PORT");
 *     - libcurl: /healthz, /v1/tables and an unknown route, then /metrics
 *       (text/plain): bt_cluster_up 1, two tables, every server's series
 *       with its id and address, the request counters of those three
 *       requests; within a bound, the write totals reach what was written
 *       and the per-second rates appear (two snapshots);
 *     - headless Chromium (Debian's chromium, installed by
 *       scripts/install-deps.sh; missing -> the test FAILS) loads / with
 *       --dump-dom: the DOM names every server id and both tables;
 *     - bt-gateway stops on SIGTERM with exit 0 and no sanitizer report.
 *
 * Every step is bounded (curl GW_HTTP_MS, chromium GW_CHROMIUM_MS then its
 * whole process group is killed); the gateway and chromium are children of
 * the test's main thread with PR_SET_PDEATHSIG, and the fixture's .fini kills
 * them and removes chromium's temporary profile directory.
 */
#include <curl/curl.h>
#include <math.h>

#include "tests/unit/cluster_fixture.h"

#define GW_START_MS 20000
#define GW_HTTP_MS 15000
#define GW_CHROMIUM_MS 60000
#define GW_SETTLE_MS 30000      /* bound on counters/rates showing up in /metrics */
#define GW_ROWS 50
#define CHROMIUM "/usr/bin/chromium"

static clf_proc G;                      /* bt-gateway */
static char G_base[96];                 /* "http://127.0.0.1:PORT" */
static pid_t chrome_pid = -1;           /* leader of chromium's process group */
static char chrome_dir[PATH_MAX];       /* its --user-data-dir; "" when none */

/* ---- the gateway ------------------------------------------------------------------ */

static void gw_start(void)
{
    clf_proc_init(&G, "gateway");
    char bin[PATH_MAX + 32];
    tsf_bin("bt-gateway", bin, sizeof bin);
    char *argv[] = {bin, "--lock", C.lock_url, "--port", "0", NULL};
    clf_spawn(&G, argv);
    /* its ready line is on stderr */
    const char *prefix = "bt-gateway: listening on ";
    int64_t end = tsf_now_ms() + GW_START_MS;
    for (;;) {
        char *s = tsf_slurp(G.err, NULL);
        char *at = s ? strstr(s, prefix) : NULL;
        unsigned port = 0;
        if (at && strchr(at, '\n') && sscanf(at + strlen(prefix), "127.0.0.1:%u", &port) == 1 && port) {
            snprintf(G.addr, sizeof G.addr, "127.0.0.1:%u", port);
            snprintf(G_base, sizeof G_base, "http://%s", G.addr);
            free(s);
            return;
        }
        free(s);
        bool ended = clf_reap(&G);
        if (ended || tsf_now_ms() >= end) {
            tsf_dump(G.err, 3000);
            cr_assert_fail("bt-gateway: no \"%s127.0.0.1:PORT\" line on stderr %s", prefix,
                           ended ? "before it ended" : "in time");
        }
        tsf_sleep_ms(20);
    }
}

static void gw_stop_checked(void)
{
    cr_assert_gt(G.pid, 0, "bt-gateway is not running");
    kill(G.pid, SIGTERM);
    int st = clf_wait_exit(&G, CLF_STOP_MS);
    char how[64];
    clf_describe_status(st, how, sizeof how);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) tsf_dump(G.err, 4000);
    cr_assert_neq(st, -1, "bt-gateway did not exit within %d ms of SIGTERM", CLF_STOP_MS);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bt-gateway: %s after SIGTERM, want exit status 0", how);
    tsf_check_sanitizer_log(G.err, true);
}

/* ---- HTTP ------------------------------------------------------------------------ */

typedef struct http_resp {
    long status;
    char ctype[128];
    char *body;
    size_t len;
} http_resp;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    http_resp *r = arg;
    char *nb = realloc(r->body, r->len + size * n + 1);
    if (!nb) return 0;
    memcpy(nb + r->len, p, size * n);
    r->body = nb;
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

static http_resp http_get(const char *path)
{
    http_resp r = {0};
    char url[512];
    snprintf(url, sizeof url, "%s%s", G_base, path);
    CURL *h = curl_easy_init();
    cr_assert_not_null(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)GW_HTTP_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    CURLcode rc = curl_easy_perform(h);
    cr_assert_eq(rc, CURLE_OK, "GET %s: %s", url, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r.ctype, sizeof r.ctype, "%s", ct ? ct : "");
    curl_easy_cleanup(h);
    if (!r.body) r.body = calloc(1, 1);
    return r;
}

/* The value of the sample whose name and labels are exactly `series`
 * ("name{a=\"b\"}" or "name"), or NAN if the text has none. */
static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (!strncmp(p, series, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
    }
    return NAN;
}

static double server_metric(const char *text, const char *name, int i)
{
    char series[256];
    snprintf(series, sizeof series, "%s{server=\"%s\",address=\"%s\"}", name, C.ts[i].name, C.ts[i].addr);
    return metric(text, series);
}

/* ---- chromium ----------------------------------------------------------------------- */

static void chrome_kill(void)
{
    if (chrome_pid > 0) {
        kill(-chrome_pid, SIGKILL);     /* the whole group: renderer, zygotes, ... */
        waitpid(chrome_pid, NULL, 0);
        chrome_pid = -1;
    }
    if (chrome_dir[0]) {
        test_rm_rf(chrome_dir);
        chrome_dir[0] = '\0';
    }
}

/* Loads url in headless Chromium and returns the serialized DOM (free it). */
static char *chrome_dump_dom(const char *url)
{
    cr_assert_eq(access(CHROMIUM, X_OK), 0,
                 "%s is missing (%s): headless Chromium is required for this test; "
                 "install it with scripts/install-deps.sh (Debian package chromium)",
                 CHROMIUM, strerror(errno));
    snprintf(chrome_dir, sizeof chrome_dir, "/tmp/bt-itest-chromium-XXXXXX");
    cr_assert_not_null(mkdtemp(chrome_dir), "mkdtemp: %s", strerror(errno));
    char out_path[PATH_MAX + 16], err_path[PATH_MAX + 16], profile[PATH_MAX + 32];
    snprintf(out_path, sizeof out_path, "%s/dom.html", chrome_dir);
    snprintf(err_path, sizeof err_path, "%s/chromium.stderr", chrome_dir);
    snprintf(profile, sizeof profile, "--user-data-dir=%s/profile", chrome_dir);
    char *argv[] = {CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions", "--disable-background-networking",
                    "--disable-crash-reporter", profile, "--dump-dom", (char *)url, NULL};
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(out >= 0 && err >= 0, "open: %s", strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(9);
        dup2(out, 1);
        dup2(err, 2);
        close_range(3, ~0u, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    setpgid(pid, pid);          /* also from here: no race with the kill below */
    chrome_pid = pid;
    close(out);
    close(err);
    int64_t end = tsf_now_ms() + GW_CHROMIUM_MS;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) break;
        if (tsf_now_ms() >= end) {
            kill(-pid, SIGKILL);
            waitpid(pid, NULL, 0);
            chrome_pid = -1;
            tsf_dump(err_path, 3000);
            cr_assert_fail("chromium did not load %s within %d ms (killed)", url, GW_CHROMIUM_MS);
        }
        tsf_sleep_ms(50);
    }
    kill(-pid, SIGKILL);        /* helpers it may have left behind */
    chrome_pid = -1;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) tsf_dump(err_path, 3000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "chromium failed on %s (wait status %d)", url, st);
    size_t len = 0;
    char *dom = tsf_slurp(out_path, &len);
    cr_assert(dom && len > 0, "chromium dumped no DOM for %s", url);
    test_rm_rf(chrome_dir);
    chrome_dir[0] = '\0';
    return dom;
}

/* ---- the test ------------------------------------------------------------------------- */

static void gwp_fini(void)
{
    chrome_kill();
    clf_sigkill(&G);
    clf_fini();
}

#define GWP_TEST(name, secs)                                                                \
    static void name##_body(void);                                                          \
    Test(gateway_page, name, .init = clf_init, .fini = gwp_fini, .timeout = secs)           \
    {                                                                                       \
        name##_body();                                                                      \
        clf_finish();                                                                       \
    }                                                                                       \
    static void name##_body(void)

static const char *const tables[2] = {"users", "page_views"};

GWP_TEST(metrics_and_page, 300)
{
    curl_global_init(CURL_GLOBAL_ALL);
    clf_cluster(1, 2, 0);
    const char *splits[] = {"m"};
    clf_create_table(C.client, tables[0], splits, 1);
    clf_create_table(C.client, tables[1], NULL, 0);
    bt_table *t = clf_open(C.client, tables[0]);
    for (int i = 0; i < GW_ROWS; i++) {
        char row[32];
        snprintf(row, sizeof row, "%c-row%03d", 'a' + i % 26, i);
        CL_OK(clf_put(t, row, row));
    }
    bt_table_close(t);

    gw_start();

    /* (1) requests, then /metrics */
    http_resp r = http_get("/healthz");
    cr_assert_eq(r.status, 200, "/healthz: %ld %s", r.status, r.body);
    free(r.body);
    r = http_get("/v1/tables");
    cr_assert_eq(r.status, 200, "/v1/tables: %ld %s", r.status, r.body);
    for (int i = 0; i < 2; i++) cr_assert_not_null(strstr(r.body, tables[i]), "/v1/tables: %s", r.body);
    free(r.body);
    r = http_get("/no/such/route");
    cr_assert_eq(r.status, 404, "/no/such/route: %ld", r.status);
    free(r.body);

    r = http_get("/metrics");
    cr_assert_eq(r.status, 200, "/metrics: %ld %s", r.status, r.body);
    cr_assert_eq(strncmp(r.ctype, "text/plain", 10), 0, "/metrics Content-Type \"%s\"", r.ctype);
    const char *m = r.body;
    cr_assert_eq(metric(m, "bt_cluster_up"), 1, "bt_cluster_up in:\n%s", m);
    cr_assert_eq(metric(m, "bt_cluster_tables"), 2, "bt_cluster_tables in:\n%s", m);
    cr_assert_eq(metric(m, "bt_cluster_servers"), 2);
    cr_assert_eq(metric(m, "bt_cluster_unassigned_tablets"), 0);
    cr_assert_geq(metric(m, "bt_cluster_tablets"), 4, "METADATA's tablets and the 3 user tablets");
    double tablets = 0;
    static const char *const per_server[] = {"bt_server_tablets", "bt_server_memtable_bytes",
                                             "bt_server_sstable_bytes", "bt_server_compaction_queue",
                                             "bt_server_reads_total", "bt_server_writes_total"};
    for (int i = 0; i < 2; i++) {
        for (size_t k = 0; k < sizeof per_server / sizeof *per_server; k++) {
            double v = server_metric(m, per_server[k], i);
            cr_assert(!isnan(v) && v >= 0, "no %s{server=\"%s\",address=\"%s\"} in:\n%s", per_server[k], C.ts[i].name,
                      C.ts[i].addr, m);
        }
        tablets += server_metric(m, "bt_server_tablets", i);
    }
    cr_assert_eq(tablets, metric(m, "bt_cluster_tablets"), "tablets per server add up to the cluster's");
    cr_assert_eq(metric(m, "bt_table_tablets{table=\"users\"}"), 2);
    cr_assert_eq(metric(m, "bt_table_tablets{table=\"page_views\"}"), 1);
    cr_assert_eq(metric(m, "bt_gateway_requests_total{endpoint=\"healthz\",code=\"2xx\"}"), 1, "in:\n%s", m);
    cr_assert_eq(metric(m, "bt_gateway_requests_total{endpoint=\"list_tables\",code=\"2xx\"}"), 1);
    cr_assert_eq(metric(m, "bt_gateway_requests_total{endpoint=\"unknown\",code=\"4xx\"}"), 1);
    cr_assert_eq(metric(m, "bt_gateway_request_duration_seconds_count{endpoint=\"healthz\"}"), 1);
    cr_assert_eq(metric(m, "bt_gateway_request_duration_seconds_bucket{endpoint=\"healthz\",le=\"+Inf\"}"), 1);
    free(r.body);

    /* the writes reach the servers' totals; two snapshots give rates */
    int64_t end = tsf_now_ms() + GW_SETTLE_MS;
    for (;;) {
        r = http_get("/metrics");
        cr_assert_eq(r.status, 200);
        double writes = server_metric(r.body, "bt_server_writes_total", 0) +
                        server_metric(r.body, "bt_server_writes_total", 1);
        bool rates = true;
        for (int i = 0; i < 2; i++)
            rates = rates && !isnan(server_metric(r.body, "bt_server_reads_per_second", i)) &&
                    !isnan(server_metric(r.body, "bt_server_writes_per_second", i));
        double scrapes = metric(r.body, "bt_gateway_requests_total{endpoint=\"metrics\",code=\"2xx\"}");
        bool done = writes >= GW_ROWS && rates && scrapes >= 1;
        if (done || tsf_now_ms() >= end) {
            cr_assert(done, "after %d ms: writes_total %g (want >= %d), rates %s, metrics scrapes %g; last:\n%s",
                      GW_SETTLE_MS, writes, GW_ROWS, rates ? "present" : "absent", scrapes, r.body);
            free(r.body);
            break;
        }
        free(r.body);
        tsf_sleep_ms(500);
    }

    /* (2) the status page in headless Chromium */
    char url[128];
    snprintf(url, sizeof url, "%s/", G_base);
    char *dom = chrome_dump_dom(url);
    for (int i = 0; i < 2; i++) {
        char id[64], cell[64];
        snprintf(id, sizeof id, "id=\"server-%s\"", C.ts[i].name);
        snprintf(cell, sizeof cell, ">%s<", C.ts[i].name);
        cr_assert(strstr(dom, id) && strstr(dom, cell), "the page does not show server %s:\n%.4000s", C.ts[i].name,
                  dom);
        cr_assert_not_null(strstr(dom, C.ts[i].addr), "the page does not show %s", C.ts[i].addr);
    }
    for (int i = 0; i < 2; i++) {
        char id[64], head[64];
        snprintf(id, sizeof id, "id=\"table-%s\"", tables[i]);
        snprintf(head, sizeof head, "<h3>%s</h3>", tables[i]);
        cr_assert(strstr(dom, id) && strstr(dom, head), "the page does not show table %s:\n%.4000s", tables[i], dom);
    }
    cr_assert_null(strstr(dom, "id=\"unreachable\""), "the page says the cluster is unreachable");
    cr_assert_not_null(strstr(dom, "http-equiv=\"refresh\""));
    free(dom);

    gw_stop_checked();
    curl_global_cleanup();
}

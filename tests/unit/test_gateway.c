/* tests/unit/test_gateway.c: bt-gateway end to end.  Each test runs a real
 * cluster (bt-lockd, one bt-master, one bt-tabletserver: cluster_fixture.h)
 * plus `bt-gateway --port 0` on 127.0.0.1, and talks HTTP to it through
 * libcurl (and raw sockets for slow clients and disconnects).  The gateway
 * must exit 0 on SIGTERM at the end of each test and leave no sanitizer
 * report. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "common/coding.h"
#include "gateway/api_internal.h"
#include "tests/unit/cluster_fixture.h"

static clf_proc G;              /* bt-gateway */
static unsigned G_port;

static void gw_cleanup(void) { clf_sigkill(&G); }

/* Starts bt-gateway --port 0 with extra flags (NULL-terminated). */
static void gw_start(const char *const *extra)
{
    char bin[PATH_MAX + 32];
    tsf_bin("bt-gateway", bin, sizeof bin);
    char *argv[32] = {bin, "--port", "0", "--lock", C.lock_url, "--threads", "4"};
    int n = 7;
    for (int i = 0; extra && extra[i] && n < 30; i++) argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    clf_proc_init(&G, "gateway");
    clf_spawn(&G, argv);
    int64_t end = tsf_now_ms() + 10000;
    for (;;) {
        char *s = tsf_slurp(G.err, NULL);
        const char *at = s ? strstr(s, "bt-gateway: listening on 127.0.0.1:") : NULL;
        if (at) {
            G_port = 0;
            sscanf(at, "bt-gateway: listening on 127.0.0.1:%u", &G_port);
            free(s);
            cr_assert_gt(G_port, 0);
            return;
        }
        free(s);
        bool ended = clf_reap(&G);
        if (ended || tsf_now_ms() > end) {
            tsf_dump(G.err, 3000);
            cr_assert_fail("bt-gateway did not say it listens (%s)", ended ? "it ended" : "timeout");
        }
        tsf_sleep_ms(20);
    }
}

/* SIGTERM: exit 0 within 10 s, no sanitizer report. */
static void gw_stop(void)
{
    if (G.pid <= 0) return;
    kill(G.pid, SIGTERM);
    int st = clf_wait_exit(&G, 10000);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st)) tsf_dump(G.err, 4000);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "bt-gateway did not exit 0 after SIGTERM");
    tsf_check_sanitizer_log(G.err, true);
}

static void gw_init(void)
{
    clf_init();
    atexit(gw_cleanup);
}

static void gw_fini(void)
{
    if (!C.finished && G.incarnations) tsf_dump(G.err, 2000);
    clf_sigkill(&G);
    clf_fini();
}

#define GW_TEST(name, secs)                                                                 \
    static void name##_body(void);                                                          \
    Test(gateway, name, .init = gw_init, .fini = gw_fini, .timeout = secs)                  \
    {                                                                                       \
        name##_body();                                                                      \
        gw_stop();                                                                          \
        clf_finish();                                                                       \
    }                                                                                       \
    static void name##_body(void)

/* ---- HTTP through libcurl ------------------------------------------------------------- */

typedef struct resp {
    long status;
    bt_buf body;
    char ctype[128];
    char allow[128];
    double secs;
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    bt_buf_append(arg, p, sz * n);
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    resp *r = arg;
    size_t len = sz * n;
    if (len > 13 && !strncasecmp(p, "Content-Type:", 13))
        snprintf(r->ctype, sizeof r->ctype, "%.*s", (int)(len - 15 > 0 ? len - 15 : 0), p + 14);
    if (len > 6 && !strncasecmp(p, "Allow:", 6))
        snprintf(r->allow, sizeof r->allow, "%.*s", (int)(len - 9 > 0 ? len - 9 : 0), p + 7);
    return len;
}

/* One request; body may be NULL; hdr an extra header line or NULL. */
static resp http_ex(const char *method, const char *path, const void *body, size_t blen, const char *hdr,
                    long timeout_ms)
{
    resp r = {0};
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    char url[8192];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", G_port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Expect:");
    if (hdr) h = curl_slist_append(h, hdr);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r.secs);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) r.status = -(long)cc;
    bt_buf_append(&r.body, "", 1); /* NUL for printing */
    r.body.len--;
    return r;
}

static resp http(const char *method, const char *path, const char *json)
{
    return http_ex(method, path, json, json ? strlen(json) : 0, NULL, 20000);
}

static void resp_free(resp *r) { bt_buf_free(&r->body); }

/* Asserts the status and parses the body as JSON (caller frees). */
static cJSON *expect(resp *r, long status)
{
    cr_assert_eq(r->status, status, "status %ld, want %ld; body: %.500s", r->status, status, (char *)r->body.data);
    cJSON *j = cJSON_ParseWithLength((const char *)r->body.data, r->body.len);
    cr_assert_not_null(j, "not JSON: %.300s", (char *)r->body.data);
    return j;
}

/* The request gives an error `status` with {"error":{"code":code,...}} whose
 * message contains `needle` (NULL: anything). */
static void expect_error(const char *method, const char *path, const void *body, size_t blen, long status,
                         const char *code, const char *needle)
{
    if (body && !blen) blen = strlen(body);
    resp r = http_ex(method, path, body, blen, NULL, 20000);
    cJSON *j = expect(&r, status);
    const cJSON *e = cJSON_GetObjectItem(j, "error");
    cr_assert(cJSON_IsObject(e), "no error object: %s", (char *)r.body.data);
    const cJSON *c = cJSON_GetObjectItem(e, "code"), *m = cJSON_GetObjectItem(e, "message");
    cr_assert(cJSON_IsString(c) && cJSON_IsString(m));
    cr_assert_str_eq(c->valuestring, code, "%s %s: %s", method, path, (char *)r.body.data);
    if (needle) cr_assert(strstr(m->valuestring, needle), "message \"%s\" lacks \"%s\"", m->valuestring, needle);
    cr_assert(strstr(r.ctype, "application/json"), "content type %s", r.ctype);
    cJSON_Delete(j);
    resp_free(&r);
}

static void expect_healthy(void)
{
    resp r = http("GET", "/healthz", NULL);
    cJSON *j = expect(&r, 200);
    cJSON_Delete(j);
    resp_free(&r);
}

static void pct(const void *p, size_t n, char *out)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) out += sprintf(out, "%%%02X", b[i]);
    *out = '\0';
}

static char *b64(const void *p, size_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *b = p;
    char *o = malloc(n * 2 + 8), *q = o;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
        *q++ = al[v >> 18];
        *q++ = al[(v >> 12) & 63];
        *q++ = i + 1 < n ? al[(v >> 6) & 63] : '=';
        *q++ = i + 2 < n ? al[v & 63] : '=';
    }
    *q = '\0';
    return o;
}

static void create_table(const char *json)
{
    resp r = http("POST", "/v1/tables", json);
    cJSON *j = expect(&r, 201);
    cJSON_Delete(j);
    resp_free(&r);
}

static void gw_cluster(const char *const *extra)
{
    clf_cluster(1, 1, 0);
    gw_start(extra);
}

/* ---- tests ------------------------------------------------------------------------------ */

GW_TEST(tables_rows_binary, 90)
{
    gw_cluster(NULL);
    create_table("{\"name\":\"t\",\"families\":{\"cf\":{\"max_versions\":3},\"cf2\":{}},\"splits\":[\"m\"]}");
    expect_error("POST", "/v1/tables", "{\"name\":\"t\",\"families\":{\"cf\":{}}}", 0, 409, "ALREADY_EXISTS", NULL);

    resp r = http("GET", "/v1/tables", NULL);
    cJSON *j = expect(&r, 200);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tables")), 1);
    cJSON_Delete(j);
    resp_free(&r);

    r = http("GET", "/v1/tables/t", NULL);
    j = expect(&r, 200);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tablets")), 2);
    cr_assert(cJSON_IsObject(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "families"), "cf2")));
    cJSON_Delete(j);
    resp_free(&r);

    /* binary row key, qualifier and value round-trip exactly */
    static const uint8_t key[] = {'k', 0x00, '/', '%', 0xFF, '?', '#', ' ', 'z'};
    static const uint8_t col[] = {'c', 'f', ':', 0x00, 0xFF, '/'};
    uint8_t val[256];
    for (int i = 0; i < 256; i++) val[i] = (uint8_t)(255 - i);
    char path[512], kp[64];
    pct(key, sizeof key, kp);
    snprintf(path, sizeof path, "/v1/tables/t/rows/%s", kp);
    char *cb = b64(col, sizeof col), *vb = b64(val, sizeof val);
    char body[2048];
    snprintf(body, sizeof body,
             "{\"cells\":[{\"column_b64\":\"%s\",\"value_b64\":\"%s\",\"timestamp\":1000},"
             "{\"column\":\"cf:text\",\"value\":\"h\\u00e9llo \\\"q\\\" \\\\ \\n\",\"timestamp\":7},"
             "{\"column\":\"cf2:x\",\"value\":\"v\"}]}",
             cb, vb);
    r = http("PUT", path, body);
    j = expect(&r, 200);
    cJSON_Delete(j);
    resp_free(&r);

    r = http("GET", path, NULL);
    j = expect(&r, 200);
    char *kb = b64(key, sizeof key);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "row_b64")->valuestring, kb);
    cJSON *cells = cJSON_GetObjectItem(j, "cells");
    cr_assert_eq(cJSON_GetArraySize(cells), 3, "%s", (char *)r.body.data);
    bool seen_bin = false, seen_text = false;
    cJSON *c;
    cJSON_ArrayForEach(c, cells) {
        cJSON *cbj = cJSON_GetObjectItem(c, "column_b64");
        if (cbj) {
            cr_assert_str_eq(cbj->valuestring, cb);
            cr_assert_str_eq(cJSON_GetObjectItem(c, "value_b64")->valuestring, vb);
            cr_assert_eq(cJSON_GetObjectItem(c, "timestamp")->valuedouble, 1000);
            seen_bin = true;
        } else if (!strcmp(cJSON_GetObjectItem(c, "column")->valuestring, "cf:text")) {
            cr_assert_str_eq(cJSON_GetObjectItem(c, "value")->valuestring, "h\xc3\xa9llo \"q\" \\ \n");
            seen_text = true;
        } else {
            cr_assert_gt(cJSON_GetObjectItem(c, "timestamp")->valuedouble, 1e15, "server time in microseconds");
        }
    }
    cr_assert(seen_bin && seen_text);
    cJSON_Delete(j);
    resp_free(&r);

    /* columns= and versions= */
    expect_error("GET", "/v1/tables/t/rows/other", NULL, 0, 404, "NOT_FOUND", "row not found");
    for (int v = 1; v <= 4; v++) {
        char b2[200];
        snprintf(b2, sizeof b2, "{\"cells\":[{\"column\":\"cf:v\",\"value\":\"v%d\",\"timestamp\":%d}]}", v, v);
        r = http("PUT", "/v1/tables/t/rows/ver", b2);
        cJSON_Delete(expect(&r, 200));
        resp_free(&r);
    }
    r = http("GET", "/v1/tables/t/rows/ver?columns=cf:v&versions=2", NULL);
    j = expect(&r, 200);
    cells = cJSON_GetObjectItem(j, "cells");
    cr_assert_eq(cJSON_GetArraySize(cells), 2);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cells, 0), "value")->valuestring, "v4");
    cJSON_Delete(j);
    resp_free(&r);
    r = http("GET", "/v1/tables/t/rows/ver?columns=cf2", NULL);
    cr_assert_eq(r.status, 404, "no cf2 cell in row ver");
    resp_free(&r);

    /* delete columns, then the row */
    snprintf(path, sizeof path, "/v1/tables/t/rows/%s?columns=cf2,cf:text", kp);
    r = http("DELETE", path, NULL);
    cJSON_Delete(expect(&r, 200));
    resp_free(&r);
    snprintf(path, sizeof path, "/v1/tables/t/rows/%s", kp);
    r = http("GET", path, NULL);
    j = expect(&r, 200);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "cells")), 1);
    cJSON_Delete(j);
    resp_free(&r);
    r = http("DELETE", path, NULL);
    cJSON_Delete(expect(&r, 200));
    resp_free(&r);
    expect_error("GET", path, NULL, 0, 404, "NOT_FOUND", NULL);

    /* unknown family, unknown table */
    expect_error("PUT", "/v1/tables/t/rows/a", "{\"cells\":[{\"column\":\"nope:q\",\"value\":\"x\"}]}", 0, 404,
                 "NOT_FOUND", "nope");
    expect_error("GET", "/v1/tables/zz/rows/a", NULL, 0, 404, "NOT_FOUND", NULL);

    /* status, health, metrics, page */
    r = http("GET", "/v1/status", NULL);
    j = expect(&r, 200);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "servers")), 1);
    cr_assert(cJSON_IsArray(cJSON_GetObjectItem(j, "events")));
    cJSON_Delete(j);
    resp_free(&r);
    expect_healthy();
    r = http("GET", "/metrics", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.ctype, "text/plain"), "%s", r.ctype);
    cr_assert(strstr((char *)r.body.data, "get_row"), "metrics count get_row");
    resp_free(&r);
    r = http("GET", "/", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.ctype, "text/html"));
    resp_free(&r);

    /* drop: then gone, and recreating works through the same gateway */
    r = http("DELETE", "/v1/tables/t", NULL);
    cJSON_Delete(expect(&r, 200));
    resp_free(&r);
    expect_error("GET", "/v1/tables/t/rows/ver", NULL, 0, 404, "NOT_FOUND", NULL);
    expect_error("DELETE", "/v1/tables/t", NULL, 0, 404, "NOT_FOUND", NULL);
    create_table("{\"name\":\"t\",\"families\":{\"cf\":{}}}");
    r = http("PUT", "/v1/tables/t/rows/again", "{\"cells\":[{\"column\":\"cf:a\",\"value\":\"1\"}]}");
    cJSON_Delete(expect(&r, 200));
    resp_free(&r);
    free(cb);
    free(vb);
    free(kb);
}

/* Writes rows r00000..r<n-1> (value = key) through the batch endpoint. */
static void fill_rows(int n)
{
    bt_buf b = {0};
    for (int start = 0; start < n; start += 1000) {
        bt_buf_clear(&b);
        bt_buf_append(&b, "{\"mutations\":[", 14);
        for (int i = start; i < n && i < start + 1000; i++) {
            char m[160];
            int len = snprintf(m, sizeof m, "%s{\"row\":\"r%05d\",\"cells\":[{\"column\":\"cf:c\",\"value\":\"r%05d\"}]}",
                               i > start ? "," : "", i, i);
            bt_buf_append(&b, m, (size_t)len);
        }
        bt_buf_append(&b, "]}", 2);
        resp r = http_ex("POST", "/v1/tables/t/mutations", b.data, b.len, NULL, 30000);
        cJSON *j = expect(&r, 200);
        cr_assert_eq(cJSON_GetObjectItem(j, "failed")->valuedouble, 0, "%s", (char *)r.body.data);
        cJSON_Delete(j);
        resp_free(&r);
    }
    bt_buf_free(&b);
}

GW_TEST(scans_paged_and_streamed, 90)
{
    gw_cluster(NULL);
    create_table("{\"name\":\"t\",\"families\":{\"cf\":{}},\"splits\":[\"r01000\",\"r02500\"]}");
    const int N = 4000;
    fill_rows(N);

    /* paged, 700 rows a page: every row once, in order */
    int seen = 0, pages = 0;
    char path[512] = "/v1/tables/t/rows?limit=700";
    for (;;) {
        resp r = http("GET", path, NULL);
        cJSON *j = expect(&r, 200);
        cJSON *rows = cJSON_GetObjectItem(j, "rows"), *row;
        cr_assert_leq(cJSON_GetArraySize(rows), 700);
        cJSON_ArrayForEach(row, rows) {
            char want[16];
            snprintf(want, sizeof want, "r%05d", seen);
            cr_assert_str_eq(cJSON_GetObjectItem(row, "row")->valuestring, want);
            cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(row, "cells"), 0);
            cr_assert_str_eq(cJSON_GetObjectItem(c0, "value")->valuestring, want);
            seen++;
        }
        pages++;
        cJSON *next = cJSON_GetObjectItem(j, "next");
        if (!next) {
            cJSON_Delete(j);
            resp_free(&r);
            break;
        }
        snprintf(path, sizeof path, "/v1/tables/t/rows?limit=700&page_token=%s", next->valuestring);
        cJSON_Delete(j);
        resp_free(&r);
        cr_assert_lt(pages, 100);
    }
    cr_assert_eq(seen, N);
    cr_assert_eq(pages, (N + 699) / 700);

    /* streamed as NDJSON (both ways of asking) */
    for (int way = 0; way < 2; way++) {
        resp r = way ? http_ex("GET", "/v1/tables/t/rows", NULL, 0, "Accept: application/x-ndjson", 30000)
                     : http("GET", "/v1/tables/t/rows?stream=1", NULL);
        cr_assert_eq(r.status, 200);
        cr_assert(strstr(r.ctype, "application/x-ndjson"), "%s", r.ctype);
        int k = 0;
        char *s = (char *)r.body.data, *nl;
        while ((nl = strchr(s, '\n'))) {
            *nl = '\0';
            cJSON *j = cJSON_Parse(s);
            cr_assert_not_null(j, "line %d: %.200s", k, s);
            char want[16];
            snprintf(want, sizeof want, "r%05d", k);
            cr_assert_str_eq(cJSON_GetObjectItem(j, "row")->valuestring, want);
            cJSON_Delete(j);
            k++;
            s = nl + 1;
        }
        cr_assert_eq(k, N);
        resp_free(&r);
    }

    /* prefix, start/end, limit */
    resp r = http("GET", "/v1/tables/t/rows?prefix=r012&stream=1", NULL);
    int lines = 0;
    for (char *s = (char *)r.body.data; (s = strchr(s, '\n')); s++) lines++;
    cr_assert_eq(lines, 100);
    resp_free(&r);
    r = http("GET", "/v1/tables/t/rows?start=r00990&end=r01010", NULL);
    cJSON *j = expect(&r, 200);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "rows")), 20);
    cr_assert_null(cJSON_GetObjectItem(j, "next"));
    cJSON_Delete(j);
    resp_free(&r);
    r = http("GET", "/v1/tables/t/rows?stream=1&limit=5&columns=cf:c", NULL);
    lines = 0;
    for (char *s = (char *)r.body.data; (s = strchr(s, '\n')); s++) lines++;
    cr_assert_eq(lines, 5);
    resp_free(&r);
    expect_error("GET", "/v1/tables/t/rows?page_token=!!", NULL, 0, 400, "INVALID_ARGUMENT", "page_token");
    expect_error("GET", "/v1/tables/t/rows?limit=x", NULL, 0, 400, "INVALID_ARGUMENT", "limit");

    /* a streaming client that reads a little and hangs up: the gateway
     * ends the scan and keeps serving */
    for (int i = 0; i < 3; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)G_port)};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        int small = 4096;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        const char *req = "GET /v1/tables/t/rows?stream=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
        char buf[2048];
        cr_assert_gt(read(fd, buf, sizeof buf), 0);
        close(fd);
    }
    tsf_sleep_ms(200);
    expect_healthy();
}

GW_TEST(batch_cam_rmw, 90)
{
    gw_cluster(NULL);
    create_table("{\"name\":\"t\",\"families\":{\"cf\":{}}}");
    /* a batch with one bad row: per-row results */
    resp r = http("POST", "/v1/tables/t/mutations",
                  "{\"mutations\":[{\"row\":\"a\",\"cells\":[{\"column\":\"cf:x\",\"value\":\"1\"}]},"
                  "{\"row_b64\":\"AP8=\",\"cells\":[{\"column\":\"nofam:x\",\"value\":\"1\"}]},"
                  "{\"row\":\"c\",\"cells\":[{\"column\":\"cf:x\",\"value\":\"3\"}],\"deletes\":[{\"family\":\"cf\"}]}]}");
    cJSON *j = expect(&r, 200);
    cJSON *res = cJSON_GetObjectItem(j, "results");
    cr_assert_eq(cJSON_GetArraySize(res), 3);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "code")->valuestring, "OK");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 1), "code")->valuestring, "NOT_FOUND");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 2), "code")->valuestring, "OK");
    cr_assert_eq(cJSON_GetObjectItem(j, "failed")->valuedouble, 1);
    cJSON_Delete(j);
    resp_free(&r);
    r = http("GET", "/v1/tables/t/rows/c", NULL);
    j = expect(&r, 200);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "cells"), 0), "value")->valuestring,
                     "3", "deletes apply before cells");
    cJSON_Delete(j);
    resp_free(&r);

    /* check-and-mutate: predicate holds / does not */
    const char *cam = "{\"predicate\":{\"column\":\"cf:x\",\"value_from\":\"1\",\"value_to\":\"2\"},"
                      "\"true_mutations\":{\"cells\":[{\"column\":\"cf:r\",\"value\":\"yes\"}]},"
                      "\"false_mutations\":{\"cells\":[{\"column\":\"cf:r\",\"value\":\"no\"}]}}";
    const char *rows[2] = {"a", "c"};
    const char *want[2] = {"yes", "no"};
    for (int i = 0; i < 2; i++) {
        char p[128];
        snprintf(p, sizeof p, "/v1/tables/t/rows/%s/check-and-mutate", rows[i]);
        r = http("POST", p, cam);
        j = expect(&r, 200);
        cr_assert_eq(cJSON_IsTrue(cJSON_GetObjectItem(j, "matched")), i == 0);
        cJSON_Delete(j);
        resp_free(&r);
        snprintf(p, sizeof p, "/v1/tables/t/rows/%s?columns=cf:r", rows[i]);
        r = http("GET", p, NULL);
        j = expect(&r, 200);
        cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "cells"), 0), "value")->valuestring,
                         want[i]);
        cJSON_Delete(j);
        resp_free(&r);
    }
    /* no predicate: the row has any cell */
    r = http("POST", "/v1/tables/t/rows/empty/check-and-mutate",
             "{\"false_mutations\":{\"cells\":[{\"column\":\"cf:r\",\"value\":\"created\"}]}}");
    j = expect(&r, 200);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "matched")));
    cJSON_Delete(j);
    resp_free(&r);

    /* read-modify-write: increment twice, append */
    for (int i = 1; i <= 2; i++) {
        r = http("POST", "/v1/tables/t/rows/ctr/read-modify-write",
                 "{\"rules\":[{\"column\":\"cf:n\",\"increment\":21},{\"column\":\"cf:s\",\"append_b64\":\"AP8=\"}]}");
        j = expect(&r, 200);
        cJSON *cells = cJSON_GetObjectItem(j, "cells");
        cr_assert_eq(cJSON_GetArraySize(cells), 2, "%s", (char *)r.body.data);
        cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cells, 0), "int")->valuedouble, 21 * i);
        cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cells, 1), "value_b64")->valuestring,
                         i == 1 ? "AP8=" : "AP8A/w==");
        cJSON_Delete(j);
        resp_free(&r);
    }
    /* increment of a value that is not 8 bytes: 409 */
    expect_error("POST", "/v1/tables/t/rows/c/read-modify-write", "{\"rules\":[{\"column\":\"cf:x\",\"increment\":1}]}",
                 0, 409, "FAILED_PRECONDITION", NULL);
    expect_error("POST", "/v1/tables/t/rows/c/read-modify-write",
                 "{\"rules\":[{\"column\":\"cf:x\",\"increment\":1,\"append\":\"a\"}]}", 0, 400, "INVALID_ARGUMENT",
                 "rules[0]");
}

GW_TEST(malformed_requests, 90)
{
    static const char *const extra[] = {"--max-body-mb", "1", NULL};
    gw_cluster(extra);
    create_table("{\"name\":\"t\",\"families\":{\"cf\":{}}}");
    const char *p = "/v1/tables/t/rows/x";
    struct { const char *body; const char *needle; } cases[] = {
        {"{\"cells\":[{\"column\":\"cf:q\",\"val", "malformed JSON"},
        {"{\"cells\":[{\"column\":\"cf:q\",\"value\":\"v\"}]} trailing", "trailing"},
        {"[1,2]", "expected a JSON object"},
        {"", "expected a JSON object"},
        {"{\"cells\":{}}", "cells: expected an array"},
        {"{\"cells\":[{\"column\":\"cf:q\",\"value\":\"v\"},{\"column\":\"cf:q\",\"value\":\"v\"},"
         "{\"column\":\"cf:q\",\"value\":\"v\",\"timestamp\":\"soon\"}]}", "cells[2].timestamp: expected an integer"},
        {"{\"cells\":[{\"column\":\"cf:q\",\"value\":5}]}", "cells[0].value: expected a string"},
        {"{\"cells\":[{\"column\":\"cfq\",\"value\":\"v\"}]}", "cells[0].column"},
        {"{\"cells\":[{\"column\":\"cf:q\",\"value_b64\":\"***\"}]}", "value_b64"},
        {"{\"cells\":[{\"column\":\"cf:q\",\"value\":\"a\\u0000b\"}]}", "\\u0000"},
        {"{\"cells\":[]}", "no change"},
        {"{\"cells\":[{\"column\":\"cf:q\",\"value\":\"v\",\"timestamp\":-5}]}", "timestamp"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_error("PUT", p, cases[i].body, strlen(cases[i].body), 400, "INVALID_ARGUMENT", cases[i].needle);
    /* invalid UTF-8, raw and inside a string */
    const char bad1[] = "{\"cells\":[{\"column\":\"cf:q\",\"value\":\"\xff\xfe\"}]}";
    expect_error("PUT", p, bad1, sizeof bad1 - 1, 400, "INVALID_ARGUMENT", "UTF-8");
    const char bad2[] = "{\"cells\":[{\"column\":\"cf:q\",\"value\":\"\xed\xa0\x80\"}]}"; /* a surrogate */
    expect_error("PUT", p, bad2, sizeof bad2 - 1, 400, "INVALID_ARGUMENT", "UTF-8");
    /* raw control characters inside strings (RFC 8259): a raw NUL used to cut
     * the string short in the JSON parser */
    const char nul1[] = "{\"cells\":[{\"column\":\"cf:q\",\"value\":\"ab\x00" "cd\"}]}";
    expect_error("PUT", p, nul1, sizeof nul1 - 1, 400, "INVALID_ARGUMENT", "control character");
    const char ctl1[] = "{\"cells\":[{\"column\":\"cf:q\",\"value\":\"a\nb\"}]}";
    expect_error("PUT", p, ctl1, sizeof ctl1 - 1, 400, "INVALID_ARGUMENT", "control character");
    const char nul2[] = "{\"mutations\":[{\"row\":\"user\x00" "admin\",\"cells\":[{\"column\":\"cf:q\",\"value\":\"v\"}]}]}";
    expect_error("POST", "/v1/tables/t/mutations", nul2, sizeof nul2 - 1, 400, "INVALID_ARGUMENT", "control character");
    expect_error("GET", "/v1/tables/t/rows/user", NULL, 0, 404, "NOT_FOUND", NULL);       /* nothing written */
    expect_error("GET", "/v1/tables/t/rows/user%00admin", NULL, 0, 404, "NOT_FOUND", NULL);
    expect_error("GET", "/v1/tables/t/rows/x", NULL, 0, 404, "NOT_FOUND", NULL);
    /* start_ts/end_ts: a range that ends before it starts is a 400, on a read and a scan */
    expect_error("GET", "/v1/tables/t/rows/x?start_ts=5&end_ts=3", NULL, 0, 400, "INVALID_ARGUMENT", "end_ts");
    expect_error("GET", "/v1/tables/t/rows?start_ts=5&end_ts=3", NULL, 0, 400, "INVALID_ARGUMENT", "end_ts");
    expect_error("GET", "/v1/tables/t/rows?stream=1&start_ts=5&end_ts=5", NULL, 0, 400, "INVALID_ARGUMENT", "end_ts");
    expect_error("GET", "/v1/tables/t/rows/x?end_ts=0", NULL, 0, 400, "INVALID_ARGUMENT", "end_ts");
    resp r0 = http("GET", "/v1/tables/t/rows?start_ts=5", NULL); /* no end_ts: no upper bound */
    cJSON_Delete(expect(&r0, 200));
    resp_free(&r0);
    /* an integer field far outside int64_t: a 400, not an undefined cast */
    expect_error("POST", "/v1/tables/t/rows/x/read-modify-write", "{\"rules\":[{\"column\":\"cf:n\",\"increment\":1e300}]}",
                 0, 400, "INVALID_ARGUMENT", "increment");
    /* 100,000-deep nesting, both brackets */
    size_t deep = 100000;
    char *d = malloc(2 * deep + 2);
    memset(d, '[', deep);
    memset(d + deep, ']', deep);
    expect_error("PUT", p, d, 2 * deep, 400, "INVALID_ARGUMENT", "nested");
    memset(d, '{', deep);
    d[deep] = '\0';
    expect_error("POST", "/v1/tables/t/mutations", d, deep, 400, "INVALID_ARGUMENT", "nested");
    free(d);
    /* oversize body (limit 1 MiB) */
    size_t big = 3u << 20;
    char *b = malloc(big);
    memset(b, ' ', big);
    b[0] = '{';
    expect_error("PUT", p, b, big, 413, "TOO_LARGE", NULL);
    free(b);
    /* routes, methods, paths */
    expect_error("GET", "/v2/tables", NULL, 0, 404, "NOT_FOUND", NULL);
    expect_error("GET", "/v1/tables/t/rows/x/extra", NULL, 0, 404, "NOT_FOUND", NULL);
    expect_error("GET", "/v1/tables/t/bogus", NULL, 0, 404, "NOT_FOUND", NULL);
    /* paths deeper than any route (the router's segment array overflowed) */
    expect_error("GET", "/a/b/c/d/e/f/g/", NULL, 0, 404, "NOT_FOUND", NULL);
    expect_error("GET", "/a/b/c/d/e/f/", NULL, 0, 404, "NOT_FOUND", NULL);
    expect_error("POST", "/v1/tables/t/rows/x/check-and-mutate/", "{}", 0, 404, "NOT_FOUND", NULL);
    expect_error("GET", "/v1/tables/t/rows/x/read-modify-write/a/b/c", NULL, 0, 404, "NOT_FOUND", NULL);
    {
        char *deep_path = malloc(6002);
        for (int i = 0; i < 3000; i++) memcpy(deep_path + 2 * i, "/a", 2);
        deep_path[6000] = '/';
        deep_path[6001] = '\0';
        expect_error("GET", deep_path, NULL, 0, 404, "NOT_FOUND", NULL);
        free(deep_path);
    }
    expect_healthy();
    resp r = http("PATCH", "/v1/tables/t", NULL);
    cJSON_Delete(expect(&r, 405));
    cr_assert(strstr(r.allow, "DELETE") && strstr(r.allow, "GET"), "Allow: %s", r.allow);
    resp_free(&r);
    r = http("DELETE", "/v1/tables/t/rows/x/check-and-mutate", NULL);
    cJSON_Delete(expect(&r, 405));
    cr_assert_str_eq(r.allow, "POST");
    resp_free(&r);
    expect_error("POST", "/v1/tables/t/rows", "{}", 0, 405, "METHOD_NOT_ALLOWED", NULL);
    /* a method the HTTP layer does not know: still a JSON 405 with Allow */
    r = http("PROPFIND", "/v1/tables/t", NULL);
    cJSON_Delete(expect(&r, 405));
    cr_assert(strstr(r.allow, "GET"), "Allow: %s", r.allow);
    resp_free(&r);
    /* a 405 on a known path is counted under its endpoint */
    r = http("GET", "/metrics", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr((char *)r.body.data, "bt_gateway_requests_total{endpoint=\"get_table\",code=\"4xx\"}"),
              "405 of PATCH /v1/tables/t not under get_table");
    cr_assert(strstr((char *)r.body.data, "bt_gateway_requests_total{endpoint=\"scan\",code=\"4xx\"}"));
    resp_free(&r);
    expect_error("GET", "/v1/tables/t/rows/%zz", NULL, 0, 400, "INVALID_ARGUMENT", "row key");
    expect_error("GET", "/v1/tables/t/rows/%4", NULL, 0, 400, "INVALID_ARGUMENT", "row key");
    expect_error("GET", "/v1/tables/bad%20name", NULL, 0, 400, "INVALID_ARGUMENT", "table name");
    expect_error("POST", "/v1/tables", "{\"families\":{\"cf\":{}}}", 0, 400, "INVALID_ARGUMENT", "name");
    expect_error("POST", "/v1/tables", "{\"name\":\"u\",\"families\":{\"cf\":{\"max_versions\":\"3\"}}}", 0, 400,
                 "INVALID_ARGUMENT", "families.cf.max_versions");
    expect_error("GET", "/v1/tables/t/rows/x?versions=0", NULL, 0, 400, "INVALID_ARGUMENT", "versions");
    /* an oversize header: a JSON 400, and the gateway keeps serving */
    char *hdr = malloc(40000);
    snprintf(hdr, 40000, "X-Big: ");
    memset(hdr + 7, 'a', 30000);
    hdr[30007] = '\0';
    r = http_ex("GET", "/healthz", NULL, 0, hdr, 10000);
    cr_assert(r.status == 400 || r.status == 413 || r.status == 431, "status %ld", r.status);
    cr_assert(strstr(r.ctype, "application/json"), "%s", r.ctype);
    resp_free(&r);
    free(hdr);
    expect_healthy();
    r = http("PUT", p, "{\"cells\":[{\"column\":\"cf:q\",\"value\":\"still fine\"}]}");
    cJSON_Delete(expect(&r, 200));
    resp_free(&r);
}

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)G_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends [p, p+n) without blocking for more than timeout_ms without
 * progress (and without SIGPIPE); the bytes sent. */
static size_t send_nb(int fd, const void *p, size_t n, int timeout_ms)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, (const char *)p + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;
        struct pollfd pf = {fd, POLLOUT, 0};
        if (poll(&pf, 1, timeout_ms) <= 0) break;
    }
    return off;
}

/* Reads into acc until needle appears after byte `from` of acc (true), EOF,
 * an error or timeout_ms without it (false). */
static bool read_until(int fd, bt_buf *acc, size_t from, const char *needle, int timeout_ms)
{
    int64_t end = tsf_now_ms() + timeout_ms;
    for (;;) {
        if (acc->len > from && memmem(acc->data + from, acc->len - from, needle, strlen(needle))) return true;
        int left = (int)(end - tsf_now_ms());
        if (left <= 0) return false;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, left) <= 0) return false;
        char buf[16384];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) return false;
        bt_buf_append(acc, buf, (size_t)n);
    }
}

/* Reads until EOF (or timeout_ms). */
static void read_to_eof(int fd, bt_buf *acc, int timeout_ms)
{
    read_until(fd, acc, 0, "\x01never\x02", timeout_ms);
    bt_buf_append(acc, "", 1);
    acc->len--;
}

static long vm_rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *s = tsf_slurp(path, NULL);
    cr_assert_not_null(s);
    const char *at = strstr(s, "VmRSS:");
    long kb = -1;
    if (at) sscanf(at, "VmRSS: %ld", &kb);
    free(s);
    cr_assert_gt(kb, 0);
    return kb;
}

/* Rows big%05d with 10 KiB values, n_rows of them (about 10 KiB of JSON each). */
static void fill_big_rows(int n_rows)
{
    char *val = malloc(10241);
    memset(val, 'v', 10240);
    val[10240] = '\0';
    bt_buf b = {0};
    for (int start = 0; start < n_rows; start += 100) {
        bt_buf_clear(&b);
        bt_buf_append(&b, "{\"mutations\":[", 14);
        for (int i = start; i < n_rows && i < start + 100; i++) {
            char m[128];
            int len = snprintf(m, sizeof m, "%s{\"row\":\"big%05d\",\"cells\":[{\"column\":\"cf:v\",\"value\":\"",
                               i > start ? "," : "", i);
            bt_buf_append(&b, m, (size_t)len);
            bt_buf_append(&b, val, 10240);
            bt_buf_append(&b, "\"}]}", 4);
        }
        bt_buf_append(&b, "]}", 2);
        resp r = http_ex("POST", "/v1/tables/t/mutations", b.data, b.len, NULL, 60000);
        cJSON *j = expect(&r, 200);
        cr_assert_eq(cJSON_GetObjectItem(j, "failed")->valuedouble, 0, "%.300s", (char *)r.body.data);
        cJSON_Delete(j);
        resp_free(&r);
    }
    bt_buf_free(&b);
    free(val);
}

/* HEAD of a streamed scan (more than one part) used to hang its keep-alive
 * connection: evhttp never asks for the next part of a HEAD answer.  And a
 * client that keeps sending while a big stream is written to it must not
 * make the gateway buffer what it sends. */
GW_TEST(head_stream_and_input_bound, 150)
{
    gw_cluster(NULL);
    create_table("{\"name\":\"t\",\"families\":{\"cf\":{}}}");
    fill_big_rows(1200); /* about 12 MiB of NDJSON: more than socket buffers hold */

    /* HEAD, both ways of asking for a stream, then a second request on the
     * same connection */
    static const char *const heads[] = {
        "HEAD /v1/tables/t/rows?stream=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        "HEAD /v1/tables/t/rows HTTP/1.1\r\nHost: x\r\nAccept: application/x-ndjson\r\n\r\n",
    };
    for (int k = 0; k < 2; k++) {
        int fd = raw_connect();
        cr_assert_geq(fd, 0);
        bt_buf acc = {0};
        cr_assert_eq(send_nb(fd, heads[k], strlen(heads[k]), 5000), strlen(heads[k]));
        cr_assert(read_until(fd, &acc, 0, "\r\n\r\n", 10000), "no answer to HEAD: %.*s", (int)acc.len,
                  (char *)acc.data);
        cr_assert(acc.len > 12 && !memcmp(acc.data, "HTTP/1.1 200", 12), "%.*s", (int)acc.len, (char *)acc.data);
        cr_assert(memmem(acc.data, acc.len, "application/x-ndjson", 20));
        size_t mark = acc.len;
        const char *next = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        cr_assert_eq(send_nb(fd, next, strlen(next), 5000), strlen(next));
        cr_assert(read_until(fd, &acc, mark, "{\"status\":\"ok\"}", 10000),
                  "the keep-alive connection hangs after HEAD: %.*s", (int)(acc.len - mark), (char *)acc.data + mark);
        cr_assert(memmem(acc.data + mark, acc.len - mark, "HTTP/1.1 200", 12), "HEAD sent a body?");
        bt_buf_free(&acc);
        close(fd);
    }
    /* HEAD paged still fine */
    resp r = http("HEAD", "/v1/tables/t/rows?limit=5", NULL);
    cr_assert_eq(r.status, 200);
    resp_free(&r);

    /* a reader that never reads its stream but keeps sending junk: the
     * gateway stops reading it instead of buffering 100 MiB */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)G_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *req = "GET /v1/tables/t/rows?stream=1 HTTP/1.1\r\nHost: x\r\n";
    cr_assert_eq(send_nb(fd, req, strlen(req), 5000), strlen(req));
    tsf_sleep_ms(100); /* a slow request: the end of the headers comes later */
    cr_assert_eq(send_nb(fd, "\r\n", 2, 5000), 2);
    tsf_sleep_ms(500); /* the stream starts and fills the socket buffers */
    long rss0 = vm_rss_kb(G.pid);
    size_t chunk = 1u << 20, sent = 0;
    char *junk = malloc(chunk);
    memset(junk, 'j', chunk);
    while (sent < (100u << 20)) {
        size_t w = send_nb(fd, junk, chunk, 1000);
        sent += w;
        if (w < chunk) break; /* no progress for 1 s: the gateway stopped reading */
    }
    free(junk);
    tsf_sleep_ms(300);
    long rss1 = vm_rss_kb(G.pid);
    cr_log_info("sent %zu bytes of junk; gateway RSS %ld -> %ld KiB", sent, rss0, rss1);
    cr_assert_lt(rss1 - rss0, 50 * 1024, "the gateway buffered the junk: RSS %ld -> %ld KiB after %zu bytes sent",
                 rss0, rss1, sent);
    close(fd);
    tsf_sleep_ms(200);
    expect_healthy();
    r = http("GET", "/v1/tables/t/rows?limit=3", NULL);
    cJSON_Delete(expect(&r, 200));
    resp_free(&r);
    /* a body near the limit still passes (evhttp drains the input as it
     * parses, so the read bound does not cap bodies) */
    size_t blen = 12u << 20;
    char *body = malloc(blen + 64);
    int hl = snprintf(body, 64, "{\"cells\":[{\"column\":\"cf:v\",\"value\":\"");
    memset(body + hl, 'b', blen - (size_t)hl - 4);
    memcpy(body + blen - 4, "\"}]}", 4);
    r = http_ex("PUT", "/v1/tables/t/rows/bigbody", body, blen, NULL, 60000);
    cJSON_Delete(expect(&r, 200));
    resp_free(&r);
    free(body);
}

/* Error messages stay valid UTF-8 JSON when what they quote is not, and
 * evhttp's own error pages come out as JSON even behind a 100 Continue. */
GW_TEST(error_bodies_json, 90)
{
    static const char *const extra[] = {"--max-body-mb", "1", NULL};
    gw_cluster(extra);
    /* a raw 0xFF in the path, quoted by the 404 */
    int fd = raw_connect();
    cr_assert_geq(fd, 0);
    const char req[] = "GET /v2/\xff\xfe\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert_eq(send_nb(fd, req, sizeof req - 1, 5000), sizeof req - 1);
    bt_buf acc = {0};
    read_to_eof(fd, &acc, 10000);
    close(fd);
    const char *b = memmem(acc.data, acc.len, "\r\n\r\n", 4);
    cr_assert_not_null(b, "%.*s", (int)acc.len, (char *)acc.data);
    b += 4;
    size_t bl = acc.len - (size_t)(b - (const char *)acc.data);
    cr_assert(gw_utf8_valid((const uint8_t *)b, bl), "error body is not UTF-8: %.*s", (int)bl, b);
    cJSON *j = cJSON_ParseWithLength(b, bl);
    cr_assert_not_null(j, "not JSON: %.*s", (int)bl, b);
    cr_assert(!strncmp((char *)acc.data, "HTTP/1.1 404", 12), "%.*s", (int)acc.len, (char *)acc.data);
    const char *m = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "message")->valuestring;
    cr_assert(strstr(m, "\\xFF\\xFE\xc3\xa9"), "message %s", m); /* bad bytes as text, good UTF-8 kept */
    cJSON_Delete(j);
    bt_buf_clear(&acc);

    /* a malformed request after an answered one on the same connection
     * (the output buffer has been written to the socket before): JSON too */
    fd = raw_connect();
    cr_assert_geq(fd, 0);
    const char ka[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(send_nb(fd, ka, sizeof ka - 1, 5000), sizeof ka - 1);
    cr_assert(read_until(fd, &acc, 0, "{\"status\":\"ok\"}", 10000));
    size_t mark = acc.len;
    const char junk[] = "GARBAGE \x01\x02 nonsense\r\n\r\n";
    cr_assert_eq(send_nb(fd, junk, sizeof junk - 1, 5000), sizeof junk - 1);
    read_to_eof(fd, &acc, 10000);
    close(fd);
    cr_assert(!memmem(acc.data + mark, acc.len - mark, "<HTML", 5), "HTML leaked: %.*s", (int)(acc.len - mark),
              (char *)acc.data + mark);
    cr_assert(memmem(acc.data + mark, acc.len - mark, "INVALID_ARGUMENT", 16), "%.*s", (int)(acc.len - mark),
              (char *)acc.data + mark);
    bt_buf_clear(&acc);

    /* a chunked body over the limit sent right after the headers, without
     * waiting for the 100 Continue: the 413 is JSON, never evhttp's HTML */
    char *big = malloc((3u << 19) + 64);
    int hl = sprintf(big, "%x\r\n", 3u << 19);
    memset(big + hl, 'x', 3u << 19);
    size_t blen = (size_t)hl + (3u << 19);
    for (int attempt = 0; attempt < 4; attempt++) {
        fd = raw_connect();
        cr_assert_geq(fd, 0);
        const char *h = "PUT /v1/tables/t/rows/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
        cr_assert_eq(send_nb(fd, h, strlen(h), 5000), strlen(h));
        if (attempt & 1) tsf_sleep_ms(20);
        send_nb(fd, big, blen, 2000);
        shutdown(fd, SHUT_WR);
        read_to_eof(fd, &acc, 10000);
        close(fd);
        cr_assert(!memmem(acc.data, acc.len, "<HTML", 5), "HTML leaked: %.*s", (int)acc.len, (char *)acc.data);
        cr_assert(memmem(acc.data, acc.len, "TOO_LARGE", 9), "%.*s", (int)acc.len, (char *)acc.data);
        bt_buf_clear(&acc);
    }
    bt_buf_free(&acc);
    free(big);
    expect_healthy();
}

/* The decision after bt_apply_batch: an error that no row records (out of
 * memory before any row was tried) fails the request; it used to be
 * answered 200 with every row "OK". */
Test(gateway_unit, batch_failure_status)
{
    int none[3] = {0, 0, 0};
    cr_assert_eq(gw_batch_failure_status(BT_OK, none, 3), 0);
    cr_assert_eq(gw_batch_failure_status(BT_ENOMEM, none, 3), 500);
    cr_assert_eq(gw_batch_failure_status(BT_EUNAVAIL, none, 3), 503);
    cr_assert_eq(gw_batch_failure_status(BT_EINVAL, none, 3), 400);
    int one[3] = {0, BT_ENOTFOUND, 0};
    cr_assert_eq(gw_batch_failure_status(BT_ENOTFOUND, one, 3), 0, "a per-row failure: 200 with results");
    int down[2] = {BT_EUNAVAIL, BT_ETIMEDOUT};
    cr_assert_eq(gw_batch_failure_status(BT_EUNAVAIL, down, 2), 503);
    int mixed[2] = {BT_EUNAVAIL, BT_ENOTFOUND};
    cr_assert_eq(gw_batch_failure_status(BT_EUNAVAIL, mixed, 2), 0);
}

/* The body pre-scan, without a cluster. */
Test(gateway_unit, prescan_control_characters)
{
    char why[256];
    static const struct { const char *s; size_t n; bool ok; } cases[] = {
        {"{\"a\":\"ab\x00" "cd\"}", 13, false},
        {"{\"a\":\"a\tb\"}", 11, false},
        {"{\"a\":\"a\x1f\"}", 10, false},
        {"{\"a\":\"a\\tb\\u0001\"}", 18, true},
        {"{\"a\":\n\t\"b\"}\r\n", 13, true}, /* whitespace outside strings is fine */
        {"{\"a\":\"\\u0000\"}", 14, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        why[0] = '\0';
        int rc = gw_json_prescan((const uint8_t *)cases[i].s, cases[i].n, 64, why);
        cr_assert_eq(rc == 0, cases[i].ok, "case %zu: rc %d (%s)", i, rc, why);
        if (!cases[i].ok) cr_assert(why[0], "case %zu: no reason", i);
    }
}

GW_TEST(slow_clients, 90)
{
    gw_cluster(NULL);
    create_table("{\"name\":\"t\",\"families\":{\"cf\":{}}}");
    resp r = http("PUT", "/v1/tables/t/rows/k", "{\"cells\":[{\"column\":\"cf:q\",\"value\":\"v\"}]}");
    cJSON_Delete(expect(&r, 200));
    resp_free(&r);
    enum { N = 200 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect();
        cr_assert_geq(fds[i], 0, "connect %d", i);
        if (i % 2 == 0) { /* half send a partial request */
            const char *part = "GET /v1/tables/t/rows/k HTTP/1.1\r\nHost: x\r\nX-Slow: ";
            cr_assert_gt(write(fds[i], part, strlen(part)), 0);
        }
    }
    /* while they trickle a byte each, normal requests are served promptly */
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < N; i += 2)
            if (write(fds[i], "a", 1) != 1) {}
        int64_t t0 = tsf_now_ms();
        r = http_ex("GET", "/v1/tables/t/rows/k", NULL, 0, NULL, 5000);
        cJSON_Delete(expect(&r, 200));
        resp_free(&r);
        cr_assert_lt(tsf_now_ms() - t0, 2000, "a normal request took %lld ms", (long long)(tsf_now_ms() - t0));
        tsf_sleep_ms(100);
    }
    /* the slow ones can still finish */
    const char *rest = "\r\n\r\n";
    cr_assert_eq(write(fds[0], rest, 4), 4);
    char buf[512];
    struct pollfd pf = {fds[0], POLLIN, 0};
    cr_assert_eq(poll(&pf, 1, 5000), 1);
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    cr_assert_gt(n, 12);
    buf[n] = '\0';
    cr_assert(!strncmp(buf, "HTTP/1.1 200", 12), "%s", buf);
    for (int i = 0; i < N; i++) close(fds[i]);
    expect_healthy();
}

GW_TEST(connection_limit, 90)
{
    static const char *const extra[] = {"--max-connections", "20", NULL};
    gw_cluster(extra);
    int fds[20];
    for (int i = 0; i < 20; i++) cr_assert_geq(fds[i] = raw_connect(), 0);
    tsf_sleep_ms(200);
    /* the 21st gets a 503 at once */
    resp r = http_ex("GET", "/healthz", NULL, 0, NULL, 5000);
    cr_assert_eq(r.status, 503, "status %ld: %s", r.status, (char *)r.body.data);
    cr_assert(strstr((char *)r.body.data, "too many connections"));
    resp_free(&r);
    /* closed connections are counted out */
    for (int i = 0; i < 20; i++) close(fds[i]);
    int64_t end = tsf_now_ms() + 5000;
    for (;;) {
        r = http_ex("GET", "/healthz", NULL, 0, NULL, 5000);
        long st = r.status;
        resp_free(&r);
        if (st == 200) break;
        cr_assert_lt(tsf_now_ms(), end, "still refused after the others closed");
        tsf_sleep_ms(50);
    }
}

GW_TEST(cluster_down_503, 90)
{
    static const char *const extra[] = {"--timeout-ms", "1500", NULL};
    gw_cluster(extra);
    create_table("{\"name\":\"t\",\"families\":{\"cf\":{}}}");
    resp r = http("PUT", "/v1/tables/t/rows/k", "{\"cells\":[{\"column\":\"cf:q\",\"value\":\"v\"}]}");
    cJSON_Delete(expect(&r, 200));
    resp_free(&r);
    clf_kill_ts(0);
    clf_kill_master(0);
    int64_t t0 = tsf_now_ms();
    expect_error("GET", "/v1/tables/t/rows/k", NULL, 0, 503, "UNAVAILABLE", NULL);
    cr_assert_lt(tsf_now_ms() - t0, 8000);
    expect_error("PUT", "/v1/tables/t/rows/k", "{\"cells\":[{\"column\":\"cf:q\",\"value\":\"v\"}]}", 0, 503,
                 "UNAVAILABLE", NULL);
    expect_error("GET", "/v1/tables/t/rows?stream=1", NULL, 0, 503, "UNAVAILABLE", NULL);
    expect_error("GET", "/v1/status", NULL, 0, 503, "UNAVAILABLE", NULL);
    expect_healthy();
}

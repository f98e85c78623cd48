/* tests/unit/test_gateway_obs.c: the gateway's request metrics, cluster view
 * and renderers (gateway/gw_obs.h) without a cluster: snapshots are set
 * through the test hook gw_view_install (gateway/view_internal.h) on views
 * that have no client.
 *
 *   metrics_counters_add_up     requests from 4 threads: per endpoint and
 *                               class counts, every line well-formed
 *   metrics_histogram           buckets cumulative, +Inf == _count, the
 *                               bucket a latency lands in, _sum
 *   metrics_label_escaping      \ " and newline in an endpoint name
 *   metrics_many_endpoints      past the slot limit: "_other"
 *   metrics_cluster             per-server series with labels, rates from
 *                               two snapshots, cluster and table figures
 *   metrics_unreachable         bt_cluster_up 0, no server series
 *   page_escaping               a row key with <script> and binary bytes,
 *                               hostile event text, server ids, table names
 *   page_structure              self-contained (no script, no external
 *                               asset), refresh, balanced sections, events
 *                               newest first, totals
 *   page_unreachable            the banner, with the last answer's age
 *   view_concurrent             renders from threads while snapshots are
 *                               installed (for ASan/TSan)
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/view_internal.h"

/* ---- a parser of the text exposition format ------------------------------------ */

#define MAX_LABELS 8

typedef struct sample {
    char name[128];
    int n_labels;
    char lk[MAX_LABELS][32];
    char lv[MAX_LABELS][256];
    double v;
} sample;

typedef struct family {
    char name[128];
    char type[32];
    bool help;
} family;

typedef struct expo {
    sample *s;
    size_t n;
    family f[256];
    size_t nf;
} expo;

static family *find_family(expo *e, const char *name)
{
    for (size_t i = 0; i < e->nf; i++)
        if (!strcmp(e->f[i].name, name)) return &e->f[i];
    return NULL;
}

static bool is_name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

/* The family a sample belongs to: histograms' _bucket/_sum/_count map to it. */
static family *family_of(expo *e, const char *name)
{
    family *f = find_family(e, name);
    if (f) return f;
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t nl = strlen(name), sl = strlen(sfx[i]);
        if (nl > sl && !strcmp(name + nl - sl, sfx[i])) {
            char base[128];
            snprintf(base, sizeof base, "%.*s", (int)(nl - sl), name);
            f = find_family(e, base);
            if (f && !strcmp(f->type, "histogram")) return f;
        }
    }
    return NULL;
}

/* Parses text (asserting it is well-formed) into e. */
static void parse(const char *text, size_t len, expo *e)
{
    memset(e, 0, sizeof *e);
    cr_assert(len > 0 && text[len - 1] == '\n', "the text must end with a newline");
    size_t cap = 0;
    const char *p = text, *end = text + len;
    int lineno = 0;
    while (p < end) {
        lineno++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        cr_assert_not_null(nl);
        char line[2048];
        cr_assert_lt((size_t)(nl - p), sizeof line, "line %d too long", lineno);
        memcpy(line, p, (size_t)(nl - p));
        line[nl - p] = '\0';
        p = nl + 1;
        cr_assert(line[0], "line %d is empty", lineno);
        if (line[0] == '#') {
            char kind[8], name[128], rest[1024] = "";
            int got = sscanf(line, "# %7s %127s %1023[^\n]", kind, name, rest);
            cr_assert(got >= 3, "line %d: bad comment \"%s\"", lineno, line);
            family *f = find_family(e, name);
            if (!f) {
                cr_assert_lt(e->nf, 256);
                f = &e->f[e->nf++];
                snprintf(f->name, sizeof f->name, "%s", name);
            }
            if (!strcmp(kind, "HELP")) {
                cr_assert(!f->help, "line %d: second HELP for %s", lineno, name);
                f->help = true;
            } else {
                cr_assert_str_eq(kind, "TYPE", "line %d", lineno);
                cr_assert(!f->type[0], "line %d: second TYPE for %s", lineno, name);
                cr_assert(!strcmp(rest, "counter") || !strcmp(rest, "gauge") || !strcmp(rest, "histogram"),
                          "line %d: type %s", lineno, rest);
                snprintf(f->type, sizeof f->type, "%.31s", rest);
            }
            continue;
        }
        if (e->n == cap) {
            cap = cap ? cap * 2 : 256;
            e->s = realloc(e->s, cap * sizeof *e->s);
            cr_assert_not_null(e->s);
        }
        sample *s = &e->s[e->n];
        memset(s, 0, sizeof *s);
        const char *q = line;
        size_t k = 0;
        cr_assert(is_name_char(*q, true), "line %d: bad metric name \"%s\"", lineno, line);
        while (is_name_char(*q, false) && k < sizeof s->name - 1) s->name[k++] = *q++;
        if (*q == '{') {
            q++;
            while (*q != '}') {
                cr_assert_lt(s->n_labels, MAX_LABELS, "line %d: too many labels", lineno);
                char *lk = s->lk[s->n_labels], *lv = s->lv[s->n_labels];
                size_t a = 0, b = 0;
                cr_assert(is_name_char(*q, true), "line %d: bad label name", lineno);
                while (is_name_char(*q, false) && a < 31) lk[a++] = *q++;
                cr_assert(q[0] == '=' && q[1] == '"', "line %d: label %s without =\"", lineno, lk);
                q += 2;
                while (*q != '"') {
                    cr_assert(*q, "line %d: unterminated label value", lineno);
                    char c = *q++;
                    if (c == '\\') {
                        c = *q++;
                        cr_assert(c == '\\' || c == '"' || c == 'n', "line %d: bad escape \\%c", lineno, c);
                        if (c == 'n') c = '\n';
                    }
                    cr_assert_lt(b, 255u);
                    lv[b++] = c;
                }
                q++;
                s->n_labels++;
                if (*q == ',') q++;
                else cr_assert_eq(*q, '}', "line %d: expected , or }", lineno);
            }
            q++;
        }
        cr_assert_eq(*q, ' ', "line %d: no space before the value: \"%s\"", lineno, line);
        q++;
        char *vend;
        s->v = strtod(q, &vend);
        cr_assert(vend != q && *vend == '\0', "line %d: bad value \"%s\"", lineno, q);
        family *f = family_of(e, s->name);
        cr_assert_not_null(f, "line %d: sample %s before its TYPE line", lineno, s->name);
        cr_assert(f->help && f->type[0], "line %d: %s lacks HELP or TYPE", lineno, f->name);
        e->n++;
    }
}

static const char *label(const sample *s, const char *k)
{
    for (int i = 0; i < s->n_labels; i++)
        if (!strcmp(s->lk[i], k)) return s->lv[i];
    return NULL;
}

/* The sample named name whose labels include the pairs (k1, v1, k2, v2, NULL). */
static const sample *find(const expo *e, const char *name, const char *k1, const char *v1, const char *k2,
                          const char *v2)
{
    for (size_t i = 0; i < e->n; i++) {
        const sample *s = &e->s[i];
        if (strcmp(s->name, name)) continue;
        if (k1 && (!label(s, k1) || strcmp(label(s, k1), v1))) continue;
        if (k2 && (!label(s, k2) || strcmp(label(s, k2), v2))) continue;
        return s;
    }
    return NULL;
}

static double value_of(const expo *e, const char *name, const char *k1, const char *v1, const char *k2,
                       const char *v2)
{
    const sample *s = find(e, name, k1, v1, k2, v2);
    cr_assert_not_null(s, "no sample %s{%s=%s,%s=%s}", name, k1 ? k1 : "", v1 ? v1 : "", k2 ? k2 : "",
                       v2 ? v2 : "");
    return s->v;
}

static void render_parse(gw_metrics *m, gw_view *v, expo *e, bt_buf *b)
{
    b->len = 0;
    cr_assert_eq(gw_metrics_render(m, v, b), BT_OK);
    cr_assert_eq(bt_buf_append(b, "", 1), BT_OK);   /* NUL for strstr */
    b->len--;
    parse((const char *)b->data, b->len, e);
}

/* ---- building snapshots ----------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    cr_assert_not_null(d);
    return d;
}

static bt_cluster_status *mk_status(size_t n_servers, uint64_t reads_base)
{
    bt_cluster_status *st = calloc(1, sizeof *st);
    cr_assert_not_null(st);
    st->master = xstrdup("127.0.0.1:7001");
    st->master_since_us = 1700000000000000;
    st->n_servers = n_servers;
    st->servers = calloc(n_servers ? n_servers : 1, sizeof *st->servers);
    for (size_t i = 0; i < n_servers; i++) {
        char id[32], addr[32];
        snprintf(id, sizeof id, "ts%zu", i);
        snprintf(addr, sizeof addr, "127.0.0.1:%zu", 7100 + i);
        bt_server_status *sv = &st->servers[i];
        sv->id = xstrdup(id);
        sv->address = xstrdup(addr);
        sv->tablets = 3 + i;
        sv->memtable_bytes = 1000 * (i + 1);
        sv->sstable_bytes = 5u << 20;
        sv->compaction_queue = i;
        sv->reads = reads_base * (i + 1);
        sv->writes = reads_base / 2;
    }
    st->tables = 2;
    st->tablets = 7;
    st->unassigned_tablets = 1;
    st->n_events = 2;
    st->events = calloc(2, sizeof *st->events);
    st->events[0] = (bt_cluster_event){1700000001000000, xstrdup("first event: server ts0 joined")};
    st->events[1] = (bt_cluster_event){1700000002000000, xstrdup("second event <b>bold</b> & \"quoted\"")};
    return st;
}

typedef struct tablet_spec {
    const char *start; size_t start_len;
    const char *end; size_t end_len;
    const char *server_id;
} tablet_spec;

static bt_table_desc *mk_table(const char *name, const tablet_spec *ts, size_t n)
{
    bt_table_desc *d = calloc(1, sizeof *d);
    cr_assert_not_null(d);
    d->name = xstrdup(name);
    d->schema = bt_schema_new();
    cr_assert_not_null(d->schema);
    cr_assert_eq(bt_schema_add_family(d->schema, "cf", 3, 86400000000LL), BT_OK);
    cr_assert_eq(bt_schema_add_family(d->schema, "meta", 0, 0), BT_OK);
    d->n_tablets = n;
    d->tablets = calloc(n, sizeof *d->tablets);
    for (size_t i = 0; i < n; i++) {
        bt_tablet_desc *t = &d->tablets[i];
        t->id = 100 + i;
        t->start = malloc(ts[i].start_len + 1);
        t->end = malloc(ts[i].end_len + 1);
        memcpy(t->start, ts[i].start, ts[i].start_len);
        memcpy(t->end, ts[i].end, ts[i].end_len);
        t->start_len = ts[i].start_len;
        t->end_len = ts[i].end_len;
        t->server_id = xstrdup(ts[i].server_id ? ts[i].server_id : "");
        t->server = xstrdup(ts[i].server_id ? "127.0.0.1:7100" : "");
        t->dir = xstrdup("t/1");
        t->memtable_bytes = 4096;
        t->sstable_bytes = 3u << 20;
    }
    return d;
}

#define EVIL_KEY "<script>alert(1)</script>"
static const char binary_key[] = {'a', 0x00, (char)0xff, '\\', 'z'};

static bt_table_desc **mk_tables(size_t *n)
{
    tablet_spec users[] = {
        {"", 0, EVIL_KEY, sizeof EVIL_KEY - 1, "ts0"},
        {EVIL_KEY, sizeof EVIL_KEY - 1, binary_key, sizeof binary_key, "ts1"},
        {binary_key, sizeof binary_key, "", 0, NULL},
    };
    tablet_spec meta[] = {{"", 0, "", 0, "ts0"}};
    bt_table_desc **t = calloc(3, sizeof *t);
    cr_assert_not_null(t);
    t[0] = mk_table("users", users, 3);
    t[1] = mk_table("web.logs-2", users, 1);
    t[2] = mk_table(BT_METADATA_TABLE, meta, 1);
    *n = 3;
    return t;
}

static void install_up(gw_view *v, uint64_t reads_base, int64_t at_us)
{
    size_t n;
    bt_table_desc **t = mk_tables(&n);
    cr_assert_eq(gw_view_install(v, mk_status(2, reads_base), t, n, NULL, at_us), BT_OK);
}

/* ---- metrics ------------------------------------------------------------------------ */

#define OBS_THREADS 4
#define OBS_PER_THREAD 5000

static void *observer(void *arg)
{
    gw_metrics *m = arg;
    for (int i = 0; i < OBS_PER_THREAD; i++) {
        gw_metrics_observe(m, "get_row", i % 10 == 0 ? 404 : 200, (uint64_t)(i % 3000));
        gw_metrics_observe(m, "put_row", i % 100 == 0 ? 503 : 200, 800);
        if (i % 1000 == 0) gw_metrics_observe(m, "a-new-one", 302, 1);
    }
    return NULL;
}

Test(metrics, counters_add_up)
{
    gw_metrics *m = gw_metrics_new();
    cr_assert_not_null(m);
    pthread_t th[OBS_THREADS];
    for (int i = 0; i < OBS_THREADS; i++) pthread_create(&th[i], NULL, observer, m);
    for (int i = 0; i < OBS_THREADS; i++) pthread_join(th[i], NULL);
    gw_metrics_observe(m, "unknown", 404, 10);
    gw_metrics_observe(m, "status", 99, 10);        /* outside 100..599 */

    bt_buf b = {0};
    expo e;
    render_parse(m, NULL, &e, &b);
    double total = OBS_THREADS * OBS_PER_THREAD;
    cr_assert_eq(value_of(&e, "bt_gateway_requests_total", "endpoint", "get_row", "code", "2xx"), total * 0.9);
    cr_assert_eq(value_of(&e, "bt_gateway_requests_total", "endpoint", "get_row", "code", "4xx"), total * 0.1);
    cr_assert_eq(value_of(&e, "bt_gateway_requests_total", "endpoint", "put_row", "code", "2xx"), total * 0.99);
    cr_assert_eq(value_of(&e, "bt_gateway_requests_total", "endpoint", "put_row", "code", "5xx"), total * 0.01);
    cr_assert_eq(value_of(&e, "bt_gateway_requests_total", "endpoint", "a-new-one", "code", "3xx"),
                 OBS_THREADS * 5);
    cr_assert_eq(value_of(&e, "bt_gateway_requests_total", "endpoint", "unknown", "code", "4xx"), 1);
    cr_assert_eq(value_of(&e, "bt_gateway_requests_total", "endpoint", "status", "code", "other"), 1);
    cr_assert_null(find(&e, "bt_gateway_requests_total", "endpoint", "scan", NULL, NULL),
                   "an endpoint without requests has no series");

    /* every endpoint: classes add up to the histogram's count */
    const char *eps[] = {"get_row", "put_row", "a-new-one", "unknown", "status"};
    for (size_t i = 0; i < 5; i++) {
        double sum = 0;
        for (size_t k = 0; k < e.n; k++)
            if (!strcmp(e.s[k].name, "bt_gateway_requests_total") && !strcmp(label(&e.s[k], "endpoint"), eps[i]))
                sum += e.s[k].v;
        cr_assert_eq(sum, value_of(&e, "bt_gateway_request_duration_seconds_count", "endpoint", eps[i], NULL, NULL),
                     "%s", eps[i]);
    }
    cr_assert_str_eq(find_family(&e, "bt_gateway_requests_total")->type, "counter");
    cr_assert_str_eq(find_family(&e, "bt_gateway_request_duration_seconds")->type, "histogram");
    cr_assert_gt(value_of(&e, "bt_gateway_start_time_seconds", NULL, NULL, NULL, NULL), 1.6e9);
    free(e.s);
    bt_buf_free(&b);
    gw_metrics_free(m);
}

Test(metrics, histogram)
{
    gw_metrics *m = gw_metrics_new();
    uint64_t lat[] = {0, 400, 500, 501, 1000, 7000, 999999, 1000000, 9999999, 10000000, 10000001, 60000000};
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof lat / sizeof *lat; i++) {
        gw_metrics_observe(m, "scan", 200, lat[i]);
        sum += lat[i];
    }
    bt_buf b = {0};
    expo e;
    render_parse(m, NULL, &e, &b);
    static const char *const les[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                                      "0.25",   "0.5",   "1",      "2.5",   "5",    "10",    "+Inf"};
    /* bounds are inclusive: le="0.0005" holds 0, 400 and 500 us */
    double want[] = {3, 5, 5, 5, 6, 6, 6, 6, 6, 6, 8, 8, 8, 10, 12};
    double prev = 0, prev_le = -1;
    size_t seen = 0;
    for (size_t k = 0; k < e.n; k++) {
        const sample *s = &e.s[k];
        if (strcmp(s->name, "bt_gateway_request_duration_seconds_bucket")) continue;
        cr_assert_str_eq(label(s, "endpoint"), "scan");
        cr_assert_lt(seen, 15u);
        cr_assert_str_eq(label(s, "le"), les[seen], "bucket %zu", seen);
        double le = strcmp(les[seen], "+Inf") ? strtod(les[seen], NULL) : INFINITY;
        cr_assert_gt(le, prev_le, "le increasing");
        cr_assert_geq(s->v, prev, "cumulative");
        cr_assert_eq(s->v, want[seen], "le=%s: %g, want %g", les[seen], s->v, want[seen]);
        prev = s->v;
        prev_le = le;
        seen++;
    }
    cr_assert_eq(seen, 15u);
    cr_assert_eq(value_of(&e, "bt_gateway_request_duration_seconds_count", "endpoint", "scan", NULL, NULL), 12);
    double got_sum = value_of(&e, "bt_gateway_request_duration_seconds_sum", "endpoint", "scan", NULL, NULL);
    cr_assert(fabs(got_sum - (double)sum / 1e6) < 1e-6, "_sum %f, want %f", got_sum, (double)sum / 1e6);
    free(e.s);
    bt_buf_free(&b);
    gw_metrics_free(m);
}

Test(metrics, label_escaping)
{
    gw_metrics *m = gw_metrics_new();
    const char *weird = "we\"ird\\end\npoint";
    gw_metrics_observe(m, weird, 200, 5);
    bt_buf b = {0};
    expo e;
    render_parse(m, NULL, &e, &b);
    cr_assert_not_null(strstr((const char *)b.data, "endpoint=\"we\\\"ird\\\\end\\npoint\""), "%s", b.data);
    cr_assert_eq(value_of(&e, "bt_gateway_requests_total", "endpoint", weird, "code", "2xx"), 1);
    free(e.s);
    bt_buf_free(&b);
    gw_metrics_free(m);
}

Test(metrics, many_endpoints)
{
    gw_metrics *m = gw_metrics_new();
    for (int i = 0; i < 200; i++) {
        char ep[32];
        snprintf(ep, sizeof ep, "ep%d", i);
        gw_metrics_observe(m, ep, 200, 5);
    }
    gw_metrics_observe(m, NULL, 500, 5);
    bt_buf b = {0};
    expo e;
    render_parse(m, NULL, &e, &b);
    double sum = 0;
    for (size_t k = 0; k < e.n; k++)
        if (!strcmp(e.s[k].name, "bt_gateway_requests_total")) sum += e.s[k].v;
    cr_assert_eq(sum, 201);
    cr_assert_gt(value_of(&e, "bt_gateway_requests_total", "endpoint", "_other", "code", "2xx"), 100);
    cr_assert_eq(value_of(&e, "bt_gateway_requests_total", "endpoint", "unknown", "code", "5xx"), 1);
    free(e.s);
    bt_buf_free(&b);
    gw_metrics_free(m);
}

Test(metrics, cluster)
{
    gw_metrics *m = gw_metrics_new();
    gw_view *v = gw_view_new(NULL, 0);
    cr_assert_not_null(v);
    install_up(v, 100, 1700000000000000);
    bt_buf b = {0};
    expo e;
    render_parse(m, v, &e, &b);
    cr_assert_eq(value_of(&e, "bt_cluster_up", NULL, NULL, NULL, NULL), 1);
    cr_assert_eq(value_of(&e, "bt_cluster_servers", NULL, NULL, NULL, NULL), 2);
    cr_assert_eq(value_of(&e, "bt_cluster_tables", NULL, NULL, NULL, NULL), 2);
    cr_assert_eq(value_of(&e, "bt_cluster_tablets", NULL, NULL, NULL, NULL), 7);
    cr_assert_eq(value_of(&e, "bt_cluster_unassigned_tablets", NULL, NULL, NULL, NULL), 1);
    cr_assert_eq(value_of(&e, "bt_server_tablets", "server", "ts1", "address", "127.0.0.1:7101"), 4);
    cr_assert_eq(value_of(&e, "bt_server_memtable_bytes", "server", "ts0", "address", "127.0.0.1:7100"), 1000);
    cr_assert_eq(value_of(&e, "bt_server_sstable_bytes", "server", "ts0", NULL, NULL), 5 << 20);
    cr_assert_eq(value_of(&e, "bt_server_compaction_queue", "server", "ts1", NULL, NULL), 1);
    cr_assert_eq(value_of(&e, "bt_server_reads_total", "server", "ts1", NULL, NULL), 200);
    cr_assert_null(find(&e, "bt_server_reads_per_second", NULL, NULL, NULL, NULL), "no rate from one snapshot");
    cr_assert_eq(value_of(&e, "bt_table_tablets", "table", "users", NULL, NULL), 3);
    cr_assert_eq(value_of(&e, "bt_table_sstable_bytes", "table", "users", NULL, NULL), 9 << 20);
    cr_assert_eq(value_of(&e, "bt_table_tablets", "table", "METADATA", NULL, NULL), 1);
    cr_assert_str_eq(find_family(&e, "bt_server_reads_total")->type, "counter");
    cr_assert_str_eq(find_family(&e, "bt_server_tablets")->type, "gauge");
    free(e.s);

    /* two seconds later, 500 more reads on ts0 (1000 on ts1), 250 writes on each */
    install_up(v, 600, 1700000002000000);
    render_parse(m, v, &e, &b);
    cr_assert_float_eq(value_of(&e, "bt_server_reads_per_second", "server", "ts0", NULL, NULL), 250, 0.01);
    cr_assert_float_eq(value_of(&e, "bt_server_reads_per_second", "server", "ts1", NULL, NULL), 500, 0.01);
    cr_assert_float_eq(value_of(&e, "bt_server_writes_per_second", "server", "ts1", "address", "127.0.0.1:7101"),
                       125, 0.01);
    free(e.s);

    /* a restarted server (counters went down): its new total is the increase */
    install_up(v, 10, 1700000004000000);
    render_parse(m, v, &e, &b);
    cr_assert_float_eq(value_of(&e, "bt_server_reads_per_second", "server", "ts0", NULL, NULL), 5, 0.01);
    free(e.s);
    bt_buf_free(&b);
    gw_view_free(v);
    gw_metrics_free(m);
}

Test(metrics, unreachable)
{
    gw_metrics *m = gw_metrics_new();
    gw_view *v = gw_view_new(NULL, 0);
    bt_buf b = {0};
    expo e;
    render_parse(m, v, &e, &b);     /* never fetched, no client */
    cr_assert_eq(value_of(&e, "bt_cluster_up", NULL, NULL, NULL, NULL), 0);
    free(e.s);
    install_up(v, 1, 1700000000000000);
    cr_assert_eq(gw_view_install(v, NULL, NULL, 0, "cluster status: UNAVAILABLE", 1700000001000000), BT_OK);
    render_parse(m, v, &e, &b);
    cr_assert_eq(value_of(&e, "bt_cluster_up", NULL, NULL, NULL, NULL), 0);
    cr_assert_null(find(&e, "bt_server_tablets", NULL, NULL, NULL, NULL));
    cr_assert_null(find(&e, "bt_cluster_tablets", NULL, NULL, NULL, NULL));
    free(e.s);
    bt_buf_free(&b);
    gw_view_free(v);
    gw_metrics_free(m);
}

/* ---- the status page ------------------------------------------------------------------ */

static char *page(gw_view *v, int refresh)
{
    gw_page_info info = {.gateway_address = "127.0.0.1:8080", .lock_url = "bt://127.0.0.1:7000?a=<b>&c",
                         .started_us = 1700000000000000, .refresh_s = refresh};
    bt_buf b = {0};
    cr_assert_eq(gw_status_page_render(v, &info, &b), BT_OK);
    cr_assert_eq(bt_buf_append(&b, "", 1), BT_OK);
    return (char *)b.data;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

Test(page, escaping)
{
    gw_view *v = gw_view_new(NULL, 0);
    install_up(v, 100, 1700000000000000);
    char *html = page(v, 0);
    cr_assert_null(strstr(html, "<script"), "a row key became markup");
    cr_assert_null(strstr(html, "<b>bold"), "event text became markup");
    cr_assert_not_null(strstr(html, "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>"));
    cr_assert_not_null(strstr(html, "<code>a\\x00\\xff\\\\z</code>"), "binary key shown as \\xNN");
    cr_assert_not_null(strstr(html, "second event &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;"));
    cr_assert_not_null(strstr(html, "bt://127.0.0.1:7000?a=&lt;b&gt;&amp;c"));
    cr_assert_not_null(strstr(html, "id=\"server-ts0\""));
    cr_assert_not_null(strstr(html, "id=\"server-ts1\""));
    cr_assert_not_null(strstr(html, "id=\"table-users\""));
    cr_assert_not_null(strstr(html, "id=\"table-web.logs-2\""));
    cr_assert_not_null(strstr(html, "id=\"table-METADATA\""));
    cr_assert_not_null(strstr(html, "<b>unassigned</b>"));
    cr_assert_not_null(strstr(html, "(first)"));
    cr_assert_not_null(strstr(html, "(last)"));
    free(html);
    gw_view_free(v);
}

Test(page, structure)
{
    gw_view *v = gw_view_new(NULL, 0);
    install_up(v, 100, 1700000000000000);
    install_up(v, 600, 1700000002000000);
    char *html = page(v, 7);
    cr_assert_eq(strncmp(html, "<!DOCTYPE html>", 15), 0);
    cr_assert_not_null(strstr(html, "<meta http-equiv=\"refresh\" content=\"7\">"));
    cr_assert_not_null(strstr(html, "<style>"));
    static const char *const banned[] = {"<script", "<link", "src=", "http://", "https://", "@import", "url("};
    for (size_t i = 0; i < sizeof banned / sizeof *banned; i++)
        cr_assert_null(strstr(html, banned[i]), "the page holds \"%s\"", banned[i]);
    static const char *const tags[] = {"section", "table", "tr", "td", "div", "ol", "li", "header", "main", "code"};
    for (size_t i = 0; i < sizeof tags / sizeof *tags; i++) {
        char open[32], open_attr[32], close[32];
        snprintf(open, sizeof open, "<%s>", tags[i]);
        snprintf(open_attr, sizeof open_attr, "<%s ", tags[i]);
        snprintf(close, sizeof close, "</%s>", tags[i]);
        cr_assert_eq(count(html, open) + count(html, open_attr), count(html, close), "<%s> unbalanced", tags[i]);
    }
    cr_assert_null(strstr(html, "id=\"unreachable\""));
    /* events newest first */
    char *first = strstr(html, "first event"), *second = strstr(html, "second event");
    cr_assert(first && second && second < first, "events not newest first");
    /* summary, rates, totals */
    cr_assert_not_null(strstr(html, "Unassigned tablets<b>1</b>"));
    cr_assert_not_null(strstr(html, "<td class=\"n\">250.0</td>"), "ts0 reads/s");
    cr_assert_not_null(strstr(html, "<td>Total</td><td></td><td class=\"n\">7</td>"), "tablet total");
    cr_assert_not_null(strstr(html, "127.0.0.1:7001"), "master address");
    cr_assert_not_null(strstr(html, "<code>cf</code> (3 versions or max age 1d 0h; group default)"));
    free(html);
    gw_view_free(v);
}

Test(page, unreachable)
{
    gw_view *v = gw_view_new(NULL, 0);
    char *html = page(v, 0);
    cr_assert_not_null(strstr(html, "id=\"unreachable\""));
    cr_assert_not_null(strstr(html, "has not answered since the gateway started"));
    cr_assert_not_null(strstr(html, "content=\"5\""), "default refresh");
    free(html);
    install_up(v, 1, 1700000000000000);
    cr_assert_eq(gw_view_install(v, NULL, NULL, 0, "cluster status: UNAVAILABLE: <down>", 1700000001000000), BT_OK);
    html = page(v, 0);
    cr_assert_not_null(strstr(html, "Cluster unreachable: cluster status: UNAVAILABLE: &lt;down&gt;"));
    cr_assert_not_null(strstr(html, "Last answer "));
    cr_assert_null(strstr(html, "id=\"servers\""), "no stale server table");
    cr_assert_not_null(strstr(html, "</html>"));
    free(html);
    gw_view_free(v);
}

/* ---- concurrency ------------------------------------------------------------------- */

typedef struct conc {
    gw_view *v;
    gw_metrics *m;
    atomic_bool stop;
    int failures;
} conc;

static void *renderer(void *arg)
{
    conc *c = arg;
    bt_buf b = {0};
    while (!atomic_load(&c->stop)) {
        b.len = 0;
        if (gw_metrics_render(c->m, c->v, &b) != BT_OK) c->failures++;
        b.len = 0;
        if (gw_status_page_render(c->v, NULL, &b) != BT_OK) c->failures++;
        gw_metrics_observe(c->m, "status_page", 200, 100);
    }
    bt_buf_free(&b);
    return NULL;
}

Test(view, concurrent)
{
    conc c = {.v = gw_view_new(NULL, 0), .m = gw_metrics_new()};
    pthread_t th[3];
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, renderer, &c);
    for (int i = 0; i < 200; i++) {
        if (i % 7 == 3) cr_assert_eq(gw_view_install(c.v, NULL, NULL, 0, "down", 1700000000000000 + i * 1000), 0);
        else install_up(c.v, (uint64_t)i * 10, 1700000000000000 + i * 1000);
    }
    atomic_store(&c.stop, true);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    cr_assert_eq(c.failures, 0);
    gw_view_free(c.v);
    gw_metrics_free(c.m);
}

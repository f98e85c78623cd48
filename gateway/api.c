/* gateway/api.c: routing, the table-handle cache, and the endpoints that
 * are not about rows: tables (list, create, describe, drop), cluster status,
 * health, metrics and the status page.  Row endpoints: api_rows.c; helpers:
 * api_json.c.  Shapes: docs/gateway.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/status.h"
#include "gateway/api_internal.h"

/* ---- the table-handle cache ---------------------------------------------------------
 * One bt_table per table name, opened on first use and shared by every loop
 * thread (bt_table is thread-safe).  A handle is reference-counted so that
 * forgetting it (gw_table_evict: the table was dropped or recreated through
 * the gateway, or a call said it does not exist) never closes it under a
 * request still using it: the last gw_table_put closes it. */
struct gw_tref {
    char name[65];
    bt_table *t;
    int refs;                   /* requests using it + 1 while cached */
};

static void tref_unref_locked(gw_tref *ref)
{
    if (--ref->refs == 0) {
        bt_table_close(ref->t);
        free(ref);
    }
}

int gw_table_get(gw_api *a, const char *name, gw_tref **out, bt_table **t)
{
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->n_tabs; i++)
        if (!strcmp(a->tabs[i]->name, name)) {
            a->tabs[i]->refs++;
            *out = a->tabs[i];
            *t = a->tabs[i]->t;
            pthread_mutex_unlock(&a->mu);
            return BT_OK;
        }
    pthread_mutex_unlock(&a->mu);
    bt_table *bt = NULL;
    int rc = bt_table_open(a->c, name, &bt); /* outside the lock: it may take a round trip */
    if (rc) return rc;
    gw_tref *ref = calloc(1, sizeof *ref);
    if (!ref) {
        bt_table_close(bt);
        return BT_ENOMEM;
    }
    snprintf(ref->name, sizeof ref->name, "%s", name);
    ref->t = bt;
    ref->refs = 2;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->n_tabs; i++)
        if (!strcmp(a->tabs[i]->name, name)) { /* another thread was faster: use its handle */
            a->tabs[i]->refs++;
            *out = a->tabs[i];
            *t = a->tabs[i]->t;
            pthread_mutex_unlock(&a->mu);
            bt_table_close(bt);
            free(ref);
            return BT_OK;
        }
    if (a->n_tabs == a->cap_tabs) {
        size_t nc = a->cap_tabs ? 2 * a->cap_tabs : 16;
        gw_tref **nt = realloc(a->tabs, nc * sizeof *nt);
        if (!nt) {
            pthread_mutex_unlock(&a->mu);
            ref->refs = 1; /* not cached: the caller's put closes it */
            *out = ref;
            *t = bt;
            return BT_OK;
        }
        a->tabs = nt;
        a->cap_tabs = nc;
    }
    a->tabs[a->n_tabs++] = ref;
    pthread_mutex_unlock(&a->mu);
    *out = ref;
    *t = bt;
    return BT_OK;
}

void gw_table_put(gw_api *a, gw_tref *ref)
{
    if (!ref) return;
    pthread_mutex_lock(&a->mu);
    tref_unref_locked(ref);
    pthread_mutex_unlock(&a->mu);
}

void gw_table_evict(gw_api *a, const char *name)
{
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->n_tabs; i++)
        if (!strcmp(a->tabs[i]->name, name)) {
            gw_tref *ref = a->tabs[i];
            a->tabs[i] = a->tabs[--a->n_tabs];
            tref_unref_locked(ref);
            break;
        }
    pthread_mutex_unlock(&a->mu);
}

/* ---- life ---------------------------------------------------------------------------- */

gw_api *gw_api_new(bt_client *c, gw_metrics *m, gw_view *v, const gw_api_options *o)
{
    gw_api *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->c = c;
    a->metrics = m;
    a->view = v;
    if (o) a->o = *o;
    if (a->o.max_depth <= 0) a->o.max_depth = 64;
    if (a->o.max_depth > GW_MAX_DEPTH) a->o.max_depth = GW_MAX_DEPTH; /* cJSON's own limit */
    pthread_mutex_init(&a->mu, NULL);
    return a;
}

void gw_api_free(gw_api *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n_tabs; i++) tref_unref_locked(a->tabs[i]);
    free(a->tabs);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* ---- tables ------------------------------------------------------------------------------ */

static bool name_ok(const char *s, size_t n)
{
    if (n < 1 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return false;
    }
    return true;
}

static void ep_list_tables(gw_api *a, gw_req *r)
{
    char **names = NULL;
    size_t n = 0;
    int rc = bt_list_tables(a->c, &names, &n);
    if (rc) {
        gw_fail(r, rc, "list tables");
        return;
    }
    bt_buf b = {0};
    rc = gw_jraw(&b, "{\"tables\":[");
    for (size_t i = 0; !rc && i < n; i++) {
        if (i) rc = gw_jraw(&b, ",");
        if (!rc) rc = gw_jstr(&b, names[i], strlen(names[i]));
    }
    if (!rc) rc = gw_jraw(&b, "]}\n");
    bt_free_names(names, n);
    gw_reply_json(r, 200, &b, rc);
}

/* families: {"cf":{"max_versions":3,"max_age_s":86400,"gc":"union"}} into s. */
static int parse_families(const cJSON *fams, bt_schema *s, char *why)
{
    if (!cJSON_IsObject(fams) || !fams->child)
        return snprintf(why, 256, "families: expected a non-empty object"), -1;
    const cJSON *f;
    cJSON_ArrayForEach(f, fams) {
        char p[96];
        snprintf(p, sizeof p, "families.%.64s", f->string);
        if (!cJSON_IsObject(f)) return snprintf(why, 256, "%s: expected an object", p), -1;
        int64_t mv = 0, age = 0;
        if (gw_jget_int(f, "max_versions", p, 0, UINT32_MAX, &mv, why) < 0) return -1;
        if (gw_jget_int(f, "max_age_s", p, 0, INT64_MAX / 1000000, &age, why) < 0) return -1;
        if (!name_ok(f->string, strlen(f->string)))
            return snprintf(why, 256, "%s: a family name is 1-64 of [A-Za-z0-9_.-]", p), -1;
        if (bt_schema_add_family(s, f->string, (uint32_t)mv, age * 1000000))
            return snprintf(why, 256, "%s: %s", p, bt_errmsg()), -1;
        const cJSON *gc = cJSON_GetObjectItemCaseSensitive(f, "gc");
        if (gc) {
            if (!cJSON_IsString(gc) || (strcmp(gc->valuestring, "union") && strcmp(gc->valuestring, "intersection")))
                return snprintf(why, 256, "%s.gc: expected \"union\" or \"intersection\"", p), -1;
            bt_schema_set_gc_intersection(s, f->string, !strcmp(gc->valuestring, "intersection"));
        }
    }
    return 0;
}

static int parse_splits(const cJSON *j, const char *field, bool b64, bt_buf **bufs, size_t *n, char *why)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, field);
    if (!arr) return 0;
    if (!cJSON_IsArray(arr)) return snprintf(why, 256, "%s: expected an array of strings", field), -1;
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, arr) {
        if (!cJSON_IsString(e)) return snprintf(why, 256, "%s[%d]: expected a string", field, i), -1;
        bt_buf *nb = realloc(*bufs, (*n + 1) * sizeof **bufs);
        if (!nb) return snprintf(why, 256, "out of memory"), -1;
        *bufs = nb;
        memset(&nb[*n], 0, sizeof nb[*n]);
        (*n)++;
        if (b64 ? bt_b64_decode(e->valuestring, strlen(e->valuestring), &nb[*n - 1])
                : bt_buf_append(&nb[*n - 1], e->valuestring, strlen(e->valuestring)))
            return snprintf(why, 256, "%s[%d]: expected a base64 string", field, i), -1;
        i++;
    }
    return 0;
}

static void ep_create_table(gw_api *a, gw_req *r)
{
    cJSON *j = gw_parse_body(a, r);
    if (!j) return;
    char why[256] = "";
    bt_schema *s = bt_schema_new();
    bt_buf *bufs = NULL;
    size_t n = 0;
    bt_key *keys = NULL;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    int bad = 0;
    if (!s) bad = snprintf(why, sizeof why, "out of memory");
    else if (!name) bad = snprintf(why, sizeof why, "name: missing");
    else if (!cJSON_IsString(name) || !name_ok(name->valuestring, strlen(name->valuestring)))
        bad = snprintf(why, sizeof why, "name: expected a table name (1-64 of [A-Za-z0-9_.-])");
    else if (!cJSON_GetObjectItemCaseSensitive(j, "families"))
        bad = snprintf(why, sizeof why, "families: missing");
    else if (parse_families(cJSON_GetObjectItemCaseSensitive(j, "families"), s, why) ||
             parse_splits(j, "splits", false, &bufs, &n, why) || parse_splits(j, "splits_b64", true, &bufs, &n, why))
        bad = 1;
    if (!bad && n) {
        keys = calloc(n, sizeof *keys);
        if (!keys) bad = snprintf(why, sizeof why, "out of memory");
        for (size_t i = 0; keys && i < n; i++) keys[i] = (bt_key){bufs[i].data, bufs[i].len};
    }
    if (bad) {
        gw_reply_error(r, 400, "INVALID_ARGUMENT", "%s", why);
    } else {
        int rc = bt_create_table(a->c, name->valuestring, s, keys, n);
        gw_table_evict(a, name->valuestring);
        if (rc) {
            gw_fail(r, rc, "create table");
        } else {
            bt_buf b = {0};
            int wrc = gw_jraw(&b, "{\"name\":");
            if (!wrc) wrc = gw_jstr(&b, name->valuestring, strlen(name->valuestring));
            if (!wrc) wrc = gw_jraw(&b, "}\n");
            gw_reply_json(r, 201, &b, wrc);
        }
    }
    for (size_t i = 0; i < n; i++) bt_buf_free(&bufs[i]);
    free(bufs);
    free(keys);
    bt_schema_free(s);
    cJSON_Delete(j);
}

static int write_schema(bt_buf *b, const bt_schema *s)
{
    int rc = gw_jraw(b, "\"families\":{");
    for (size_t i = 0; !rc && i < bt_schema_n_families(s); i++) {
        bt_family_info f;
        bt_schema_family(s, i, &f);
        if (i) rc = gw_jraw(b, ",");
        if (!rc) rc = gw_jstr(b, f.name, strlen(f.name));
        if (!rc) rc = gw_jprintf(b, ":{\"max_versions\":%u,\"max_age_s\":%lld,\"gc\":\"%s\",\"group\":", f.max_versions,
                                 (long long)(f.max_age_us / 1000000), f.gc_intersection ? "intersection" : "union");
        if (!rc) rc = gw_jstr(b, f.group, strlen(f.group));
        if (!rc) rc = gw_jraw(b, "}");
    }
    if (!rc) rc = gw_jraw(b, "},\"groups\":{");
    static const char *const blooms[] = {"none", "row", "row+column"};
    for (size_t i = 0; !rc && i < bt_schema_n_groups(s); i++) {
        bt_group_info g;
        bt_schema_group(s, i, &g);
        if (i) rc = gw_jraw(b, ",");
        if (!rc) rc = gw_jstr(b, g.name, strlen(g.name));
        if (!rc) rc = gw_jprintf(b, ":{\"compression\":\"%s\",\"in_memory\":%s,\"bloom\":\"%s\",\"block_size\":%u}",
                                 g.compress ? "snappy" : "none", g.in_memory ? "true" : "false",
                                 g.bloom <= BT_BLOOM_ROW_COLUMN ? blooms[g.bloom] : "none",
                                 g.block_size ? g.block_size : 4096);
    }
    if (!rc) rc = gw_jraw(b, "}");
    return rc;
}

static void ep_get_table(gw_api *a, gw_req *r, const char *table)
{
    bt_table_desc *d = NULL;
    int rc = bt_describe_table(a->c, table, &d);
    if (rc) {
        gw_fail(r, rc, "describe table");
        return;
    }
    bt_buf b = {0};
    rc = gw_jraw(&b, "{\"name\":");
    if (!rc) rc = gw_jstr(&b, d->name, strlen(d->name));
    if (!rc) rc = gw_jraw(&b, ",");
    if (!rc) rc = write_schema(&b, d->schema);
    if (!rc) rc = gw_jraw(&b, ",\"tablets\":[");
    for (size_t i = 0; !rc && i < d->n_tablets; i++) {
        const bt_tablet_desc *t = &d->tablets[i];
        rc = gw_jprintf(&b, "%s{\"id\":\"%llu\"", i ? "," : "", (unsigned long long)t->id);
        if (!rc) rc = gw_jbytes(&b, true, "start", t->start, t->start_len);
        if (!rc) rc = gw_jbytes(&b, true, "end", t->end, t->end_len);
        if (!rc) rc = gw_jraw(&b, ",\"server\":");
        if (!rc) rc = gw_jstr(&b, t->server ? t->server : "", t->server ? strlen(t->server) : 0);
        if (!rc) rc = gw_jraw(&b, ",\"server_id\":");
        if (!rc) rc = gw_jstr(&b, t->server_id ? t->server_id : "", t->server_id ? strlen(t->server_id) : 0);
        if (!rc) rc = gw_jprintf(&b, ",\"memtable_bytes\":%llu,\"sstable_bytes\":%llu}",
                                 (unsigned long long)t->memtable_bytes, (unsigned long long)t->sstable_bytes);
    }
    if (!rc) rc = gw_jraw(&b, "]}\n");
    bt_table_desc_free(d);
    gw_reply_json(r, 200, &b, rc);
}

static void ep_delete_table(gw_api *a, gw_req *r, const char *table)
{
    int rc = bt_delete_table(a->c, table);
    gw_table_evict(a, table);
    if (rc) {
        gw_fail(r, rc, "delete table");
        return;
    }
    bt_buf b = {0};
    rc = gw_jraw(&b, "{\"deleted\":");
    if (!rc) rc = gw_jstr(&b, table, strlen(table));
    if (!rc) rc = gw_jraw(&b, "}\n");
    gw_reply_json(r, 200, &b, rc);
}

/* ---- cluster, health, metrics, page ----------------------------------------------------- */

static void ep_status(gw_api *a, gw_req *r)
{
    bt_cluster_status *st = NULL;
    int rc = bt_cluster_status_get(a->c, &st);
    if (rc) {
        gw_fail(r, rc, "cluster status");
        return;
    }
    bt_buf b = {0};
    rc = gw_jraw(&b, "{\"master\":");
    if (!rc) rc = gw_jstr(&b, st->master ? st->master : "", st->master ? strlen(st->master) : 0);
    if (!rc) rc = gw_jprintf(&b, ",\"master_since_us\":%lld,\"tables\":%llu,\"tablets\":%llu,\"unassigned_tablets\":%llu",
                             (long long)st->master_since_us, (unsigned long long)st->tables,
                             (unsigned long long)st->tablets, (unsigned long long)st->unassigned_tablets);
    if (!rc) rc = gw_jprintf(&b, ",\"servers_recovered\":%llu,\"tablets_moved\":%llu,\"splits\":%llu,\"servers\":[",
                             (unsigned long long)st->servers_recovered, (unsigned long long)st->tablets_moved,
                             (unsigned long long)st->splits);
    for (size_t i = 0; !rc && i < st->n_servers; i++) {
        const bt_server_status *s = &st->servers[i];
        rc = gw_jraw(&b, i ? ",{\"id\":" : "{\"id\":");
        if (!rc) rc = gw_jstr(&b, s->id, strlen(s->id));
        if (!rc) rc = gw_jraw(&b, ",\"address\":");
        if (!rc) rc = gw_jstr(&b, s->address, strlen(s->address));
        if (!rc) rc = gw_jprintf(&b, ",\"tablets\":%llu,\"memtable_bytes\":%llu,\"sstable_bytes\":%llu",
                                 (unsigned long long)s->tablets, (unsigned long long)s->memtable_bytes,
                                 (unsigned long long)s->sstable_bytes);
        if (!rc) rc = gw_jprintf(&b, ",\"reads\":%llu,\"writes\":%llu,\"compaction_queue\":%llu}",
                                 (unsigned long long)s->reads, (unsigned long long)s->writes,
                                 (unsigned long long)s->compaction_queue);
    }
    if (!rc) rc = gw_jraw(&b, "],\"events\":[");
    for (size_t i = 0; !rc && i < st->n_events; i++) {
        rc = gw_jprintf(&b, "%s{\"time_us\":%lld,\"text\":", i ? "," : "", (long long)st->events[i].time_us);
        const char *t = st->events[i].text ? st->events[i].text : "";
        if (!rc) rc = gw_utf8_valid((const uint8_t *)t, strlen(t)) ? gw_jstr(&b, t, strlen(t)) : gw_jraw(&b, "\"?\"");
        if (!rc) rc = gw_jraw(&b, "}");
    }
    if (!rc) rc = gw_jraw(&b, "]}\n");
    bt_cluster_status_free(st);
    gw_reply_json(r, 200, &b, rc);
}

static void ep_metrics(gw_api *a, gw_req *r)
{
    bt_buf b = {0};
    int rc = gw_metrics_render(a->metrics, a->view, &b);
    if (rc) gw_reply_error(r, 500, "INTERNAL", "rendering the metrics failed");
    else gw_reply(r, 200, "text/plain; version=0.0.4", b.data, b.len, NULL, NULL);
    bt_buf_free(&b);
}

static void ep_status_page(gw_api *a, gw_req *r)
{
    bt_buf b = {0};
    gw_page_info info = {.gateway_address = a->o.gateway_address ? a->o.gateway_address : "",
                         .lock_url = a->o.lock_url ? a->o.lock_url : "", .started_us = a->o.started_us};
    int rc = gw_status_page_render(a->view, &info, &b);
    if (rc) gw_reply_error(r, 500, "INTERNAL", "rendering the status page failed");
    else gw_reply(r, 200, "text/html; charset=utf-8", b.data, b.len, NULL, NULL);
    bt_buf_free(&b);
}

/* ---- routing ------------------------------------------------------------------------------ */

/* The deepest route, /v1/tables/{t}/rows/{row}/check-and-mutate, has 6
 * segments; a path with more is a 404. */
#define GW_MAX_SEGS 6

/* A raw path segment (pointer into the URI). */
typedef struct seg {
    const char *p;
    size_t n;
} seg;

static bool seg_is(const seg *s, const char *lit) { return s->n == strlen(lit) && !memcmp(s->p, lit, s->n); }

/* 405 on a known path, counted under the path's endpoint (for a path of
 * several endpoints: its GET one). */
static void reply_405(gw_req *r, const char *endpoint, const char *allow)
{
    char body[300];
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"code\":\"METHOD_NOT_ALLOWED\",\"message\":\"method not allowed here; allowed: %s\"}}\n",
                     allow);
    gw_req_set_endpoint(r, endpoint);
    gw_reply(r, 405, "application/json", body, (size_t)n, "Allow", allow);
}

void gw_api_handle(void *arg, gw_req *r)
{
    gw_api *a = arg;
    const char *uri = gw_req_uri(r);
    int method = gw_req_method(r);
    if (method == GW_HEAD) method = GW_GET;
    const char *q = strchr(uri, '?');
    size_t plen = q ? (size_t)(q - uri) : strlen(uri);
    gw_query query;
    if (gw_query_parse(q ? q + 1 : NULL, &query)) {
        gw_reply_error(r, 400, "INVALID_ARGUMENT", "query: more than %d parameters", GW_MAX_PARAMS);
        return;
    }
    seg s[GW_MAX_SEGS];
    int ns = 0;
    if (plen == 0 || uri[0] != '/') {
        gw_reply_error(r, 400, "INVALID_ARGUMENT", "request target must be a path");
        return;
    }
    /* "/a/b" -> "a","b"; "/a/" -> "a",""; "/" -> "" */
    for (size_t i = 1;;) {
        const char *sl = i < plen ? memchr(uri + i, '/', plen - i) : NULL;
        size_t n = sl ? (size_t)(sl - (uri + i)) : plen - i;
        if (ns == GW_MAX_SEGS) goto not_found; /* deeper than any route */
        s[ns++] = (seg){uri + i, n};
        if (!sl) break;
        i += n + 1;
    }
    /* fixed paths */
    if (ns == 1 && s[0].n == 0) {
        gw_req_set_endpoint(r, "status_page");
        if (method == GW_GET) ep_status_page(a, r);
        else reply_405(r, "status_page", "GET, HEAD");
        return;
    }
    if (ns == 1 && seg_is(&s[0], "healthz")) {
        gw_req_set_endpoint(r, "healthz");
        if (method == GW_GET) gw_reply(r, 200, "application/json", "{\"status\":\"ok\"}\n", 16, NULL, NULL);
        else reply_405(r, "healthz", "GET, HEAD");
        return;
    }
    if (ns == 1 && seg_is(&s[0], "metrics")) {
        gw_req_set_endpoint(r, "metrics");
        if (method == GW_GET) ep_metrics(a, r);
        else reply_405(r, "metrics", "GET, HEAD");
        return;
    }
    if (ns < 2 || !seg_is(&s[0], "v1")) goto not_found;
    if (ns == 2 && seg_is(&s[1], "status")) {
        gw_req_set_endpoint(r, "status");
        if (method == GW_GET) ep_status(a, r);
        else reply_405(r, "status", "GET, HEAD");
        return;
    }
    if (!seg_is(&s[1], "tables")) goto not_found;
    if (ns == 2) {
        if (method == GW_GET) {
            gw_req_set_endpoint(r, "list_tables");
            ep_list_tables(a, r);
        } else if (method == GW_POST) {
            gw_req_set_endpoint(r, "create_table");
            ep_create_table(a, r);
        } else {
            reply_405(r, "list_tables", "GET, HEAD, POST");
        }
        return;
    }
    /* /v1/tables/{t}... */
    bt_buf tname = {0}, row = {0};
    if (s[2].n == 0) goto not_found;
    if (gw_pct_decode(s[2].p, s[2].n, &tname) || !name_ok((const char *)tname.data, tname.len)) {
        gw_reply_error(r, 400, "INVALID_ARGUMENT", "table name: expected 1-64 of [A-Za-z0-9_.-] (percent-encoded)");
        goto out;
    }
    const char *t = (const char *)tname.data;
    if (ns == 3) {
        if (method == GW_GET) gw_req_set_endpoint(r, "get_table"), ep_get_table(a, r, t);
        else if (method == GW_DELETE) gw_req_set_endpoint(r, "delete_table"), ep_delete_table(a, r, t);
        else reply_405(r, "get_table", "GET, HEAD, DELETE");
        goto out;
    }
    if (ns == 4 && seg_is(&s[3], "mutations")) {
        if (method == GW_POST) gw_req_set_endpoint(r, "mutations"), gw_ep_mutations(a, r, t);
        else reply_405(r, "mutations", "POST");
        goto out;
    }
    if (!seg_is(&s[3], "rows")) {
        bt_buf_free(&tname);
        goto not_found;
    }
    if (ns == 4) {
        if (method == GW_GET) gw_req_set_endpoint(r, "scan"), gw_ep_scan(a, r, t, &query);
        else reply_405(r, "scan", "GET, HEAD");
        goto out;
    }
    if ((ns == 6 && !seg_is(&s[5], "check-and-mutate") && !seg_is(&s[5], "read-modify-write"))) {
        bt_buf_free(&tname);
        goto not_found;
    }
    if (s[4].n == 0 || gw_pct_decode(s[4].p, s[4].n, &row) || row.len == 0) {
        gw_reply_error(r, 400, "INVALID_ARGUMENT", "row key: expected 1 byte to 4 KiB, percent-encoded");
        goto out;
    }
    if (ns == 5) {
        if (method == GW_PUT) gw_req_set_endpoint(r, "put_row"), gw_ep_put_row(a, r, t, &row);
        else if (method == GW_GET) gw_req_set_endpoint(r, "get_row"), gw_ep_get_row(a, r, t, &row, &query);
        else if (method == GW_DELETE) gw_req_set_endpoint(r, "delete_row"), gw_ep_delete_row(a, r, t, &row, &query);
        else reply_405(r, "get_row", "GET, HEAD, PUT, DELETE");
    } else if (method != GW_POST) {
        reply_405(r, seg_is(&s[5], "check-and-mutate") ? "check_and_mutate" : "read_modify_write", "POST");
    } else if (seg_is(&s[5], "check-and-mutate")) {
        gw_req_set_endpoint(r, "check_and_mutate");
        gw_ep_check_and_mutate(a, r, t, &row);
    } else {
        gw_req_set_endpoint(r, "read_modify_write");
        gw_ep_rmw(a, r, t, &row);
    }
out:
    bt_buf_free(&tname);
    bt_buf_free(&row);
    return;
not_found:
    gw_req_set_endpoint(r, "unknown");
    gw_reply_error(r, 404, "NOT_FOUND", "no such endpoint: %.*s", (int)(plen > 200 ? 200 : plen), uri);
}

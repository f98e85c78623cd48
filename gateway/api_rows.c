/* gateway/api_rows.c: the row endpoints of the /v1 API: put, get and delete
 * one row, scans (paged or streamed as NDJSON), batch mutations,
 * check-and-mutate and read-modify-write.  Shapes: docs/gateway.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/status.h"
#include "gateway/api_internal.h"

#define GW_PAGE_ROWS 1000
#define GW_MAX_PAGE_ROWS 10000
/* A page also ends (with "next") once its JSON reaches this many bytes. */
#define GW_MAX_PAGE_BYTES (8u << 20)

/* Opens the table (replying on failure). */
static bool open_table(gw_api *a, gw_req *r, const char *table, gw_tref **ref, bt_table **t)
{
    int rc = gw_table_get(a, table, ref, t);
    if (rc) {
        gw_fail(r, rc, "open table");
        return false;
    }
    return true;
}

/* After a failed call: a handle whose table is gone is forgotten. */
static void after_error(gw_api *a, const char *table, int rc)
{
    if (rc == BT_ENOTFOUND && strstr(bt_errmsg(), "does not exist")) gw_table_evict(a, table);
}

static void fail_call(gw_api *a, gw_req *r, const char *table, int rc, const char *what)
{
    gw_fail(r, rc, what);
    after_error(a, table, rc);
}

static void reply_bad(gw_req *r, int prc, const char *why)
{
    if (prc == -2) gw_reply_error(r, 413, "TOO_LARGE", "%s", why);
    else gw_reply_error(r, 400, "INVALID_ARGUMENT", "%s", why);
}

/* ---- one row ------------------------------------------------------------------------- */

void gw_ep_put_row(gw_api *a, gw_req *r, const char *table, const bt_buf *row)
{
    cJSON *j = gw_parse_body(a, r);
    if (!j) return;
    char why[256];
    bt_mutation *m = bt_mutation_new(row->data, row->len);
    int prc = m ? gw_parse_mutation(j, "", m, false, why) : -1;
    if (!m) snprintf(why, sizeof why, "out of memory");
    gw_tref *ref = NULL;
    bt_table *t = NULL;
    if (prc) {
        reply_bad(r, prc, why[0] == '.' ? why + 1 : why);
    } else if (open_table(a, r, table, &ref, &t)) {
        int rc = bt_apply(t, m);
        if (rc) fail_call(a, r, table, rc, "write row");
        else gw_reply(r, 200, "application/json", "{\"applied\":true}\n", 17, NULL, NULL);
        gw_table_put(a, ref);
    }
    bt_mutation_free(m);
    cJSON_Delete(j);
}

void gw_ep_get_row(gw_api *a, gw_req *r, const char *table, const bt_buf *row, const gw_query *q)
{
    char why[256];
    bt_filter *f = NULL;
    if (gw_filter_from_query(q, &f, why)) {
        gw_reply_error(r, 400, "INVALID_ARGUMENT", "%s", why);
        return;
    }
    gw_tref *ref = NULL;
    bt_table *t = NULL;
    if (open_table(a, r, table, &ref, &t)) {
        bt_row *out = NULL;
        int rc = bt_read_row(t, row->data, row->len, f, &out);
        if (rc) {
            fail_call(a, r, table, rc, "read row");
        } else {
            bt_buf b = {0};
            rc = gw_jrow(&b, out);
            if (!rc) rc = gw_jraw(&b, "\n");
            bt_row_free(out);
            gw_reply_json(r, 200, &b, rc);
        }
        gw_table_put(a, ref);
    }
    bt_filter_free(f);
}

void gw_ep_delete_row(gw_api *a, gw_req *r, const char *table, const bt_buf *row, const gw_query *q)
{
    bt_mutation *m = bt_mutation_new(row->data, row->len);
    if (!m) {
        gw_reply_error(r, 500, "INTERNAL", "out of memory");
        return;
    }
    size_t len;
    const char *cols = gw_query_raw(q, "columns", &len);
    bt_buf one = {0};
    int bad = 0;
    char why[256] = "";
    if (!cols) {
        bt_mutation_delete_row(m);
    } else {
        size_t i = 0;
        while (!bad) {
            const char *comma = memchr(cols + i, ',', len - i);
            size_t el = comma ? (size_t)(comma - (cols + i)) : len - i;
            if (gw_pct_decode(cols + i, el, &one) || one.len == 0) {
                bad = snprintf(why, sizeof why, "columns: expected family or family:qualifier, percent-encoded");
                break;
            }
            const char *colon = memchr(one.data, ':', one.len);
            size_t fl = colon ? (size_t)(colon - (const char *)one.data) : one.len;
            char fam[65];
            if (fl == 0 || fl > 64) {
                bad = snprintf(why, sizeof why, "columns: bad family name");
                break;
            }
            memcpy(fam, one.data, fl);
            fam[fl] = '\0';
            int rc = colon ? bt_mutation_delete_cells(m, fam, colon + 1, one.len - fl - 1, 0, 0)
                           : bt_mutation_delete_family(m, fam);
            if (rc) bad = snprintf(why, sizeof why, "columns: %s", bt_errmsg());
            if (!comma) break;
            i += el + 1;
        }
    }
    bt_buf_free(&one);
    gw_tref *ref = NULL;
    bt_table *t = NULL;
    if (bad) {
        gw_reply_error(r, 400, "INVALID_ARGUMENT", "%s", why);
    } else if (open_table(a, r, table, &ref, &t)) {
        int rc = bt_apply(t, m);
        if (rc) fail_call(a, r, table, rc, "delete");
        else gw_reply(r, 200, "application/json", "{\"applied\":true}\n", 17, NULL, NULL);
        gw_table_put(a, ref);
    }
    bt_mutation_free(m);
}

/* ---- scans ---------------------------------------------------------------------------- */

typedef struct scan_state {
    gw_api *a;
    gw_tref *ref;
    char table[65];
    bt_scanner *s;
    bt_filter *f;
    bt_buf start, end, prefix;  /* the options point into these */
    bt_buf row;                 /* scratch */
    bool pending;               /* row holds the first row, not yet sent */
    uint64_t rows;
} scan_state;

static void scan_state_free(scan_state *st)
{
    if (st->s) bt_scanner_close(st->s);
    if (st->ref) gw_table_put(st->a, st->ref);
    bt_filter_free(st->f);
    bt_buf_free(&st->start);
    bt_buf_free(&st->end);
    bt_buf_free(&st->prefix);
    bt_buf_free(&st->row);
    free(st);
}

/* NDJSON: the next ~64 KiB of rows, one JSON object per line; an error
 * mid-scan ends the stream with an {"error":..} line. */
static int scan_produce(void *arg, struct evbuffer *out)
{
    scan_state *st = arg;
    if (st->pending) {
        evbuffer_add(out, st->row.data, st->row.len);
        st->pending = false;
    }
    while (evbuffer_get_length(out) < GW_STREAM_CHUNK) {
        const bt_row *row = NULL;
        int rc = bt_scanner_next(st->s, &row);
        if (rc == BT_ENOTFOUND) return 1;
        bt_buf_clear(&st->row);
        if (rc) {
            char code[64];
            snprintf(code, sizeof code, "%s", gw_code_of(rc));
            gw_jprintf(&st->row, "{\"error\":{\"code\":\"%s\",\"message\":", code);
            char msg[300];
            snprintf(msg, sizeof msg, "scan: %s", *bt_errmsg() ? bt_errmsg() : bt_strerror(rc));
            gw_jmsg(&st->row, msg);
            gw_jraw(&st->row, "}}\n");
            evbuffer_add(out, st->row.data, st->row.len);
            return -1;
        }
        if (gw_jrow(&st->row, row) || gw_jraw(&st->row, "\n")) return -1;
        evbuffer_add(out, st->row.data, st->row.len);
        st->rows++;
    }
    return 0;
}

static void scan_done(void *arg, bool completed)
{
    (void)completed;
    scan_state_free(arg);
}

static bool wants_stream(gw_req *r, const gw_query *q)
{
    size_t len;
    const char *s = gw_query_raw(q, "stream", &len);
    if (s && len == 1 && s[0] == '1') return true;
    const char *acc = gw_req_header(r, "Accept");
    return acc && strstr(acc, "application/x-ndjson") != NULL;
}

void gw_ep_scan(gw_api *a, gw_req *r, const char *table, const gw_query *q)
{
    scan_state *st = calloc(1, sizeof *st);
    if (!st) {
        gw_reply_error(r, 500, "INTERNAL", "out of memory");
        return;
    }
    st->a = a;
    snprintf(st->table, sizeof st->table, "%s", table);
    char why[256] = "";
    bool stream = wants_stream(r, q);
    uint64_t limit = 0;
    int bad = 0;
    if (gw_query_get(q, "start", &st->start) < 0 || gw_query_get(q, "end", &st->end) < 0 ||
        gw_query_get(q, "prefix", &st->prefix) < 0)
        bad = snprintf(why, sizeof why, "start/end/prefix: bad percent-escape");
    else if (gw_query_uint(q, "limit", 1, stream ? UINT64_MAX : GW_MAX_PAGE_ROWS, &limit) < 0)
        bad = snprintf(why, sizeof why, "limit: expected an integer in [1, %s]", stream ? "2^64-1" : "10000");
    else if (gw_filter_from_query(q, &st->f, why))
        bad = 1;
    bt_buf tok = {0};
    if (!bad) {
        size_t tl;
        const char *t = gw_query_raw(q, "page_token", &tl);
        if (t && (bt_b64_decode(t, tl, &tok) || tok.len == 0)) bad = snprintf(why, sizeof why, "page_token: not a token of this gateway");
        else if (t) {
            bt_buf_clear(&st->start);
            bt_buf_append(&st->start, tok.data, tok.len);
        }
    }
    bt_buf_free(&tok);
    if (bad) {
        gw_reply_error(r, 400, "INVALID_ARGUMENT", "%s", why);
        scan_state_free(st);
        return;
    }
    uint64_t page = stream ? 0 : (limit ? limit : GW_PAGE_ROWS);
    bt_table *t = NULL;
    if (!open_table(a, r, table, &st->ref, &t)) {
        scan_state_free(st);
        return;
    }
    bt_scan_options so = {.start = st->start.data, .start_len = st->start.len, .end = st->end.data,
                          .end_len = st->end.len, .prefix = st->prefix.data, .prefix_len = st->prefix.len,
                          .filter = st->f, .limit = stream ? limit : page + 1};
    int rc = bt_scan_open(t, &so, &st->s);
    if (rc) {
        fail_call(a, r, table, rc, "scan");
        scan_state_free(st);
        return;
    }
    if (stream) {
        /* the first rows are fetched before the status line, so a missing
         * table or a down cluster still gets a proper error status */
        const bt_row *row = NULL;
        rc = bt_scanner_next(st->s, &row);
        if (rc && rc != BT_ENOTFOUND) {
            fail_call(a, r, table, rc, "scan");
            scan_state_free(st);
            return;
        }
        if (rc == BT_ENOTFOUND || gw_req_method(r) == GW_HEAD) {
            /* empty; or HEAD: evhttp sends no body to it (and would never
             * ask for the next part), so headers only and the scan ends */
            gw_reply(r, 200, "application/x-ndjson", "", 0, NULL, NULL);
            scan_state_free(st);
            return;
        }
        bt_buf_clear(&st->row);
        if (gw_jrow(&st->row, row) || gw_jraw(&st->row, "\n")) {
            gw_reply_error(r, 500, "INTERNAL", "out of memory");
            scan_state_free(st);
            return;
        }
        st->pending = true;
        st->rows = 1;
        gw_reply_stream(r, 200, "application/x-ndjson", scan_produce, scan_done, st);
        return;
    }
    /* paged */
    bt_buf b = {0};
    bt_buf next = {0};
    int wrc = gw_jraw(&b, "{\"rows\":[");
    uint64_t n = 0;
    const bt_row *row = NULL;
    while (!wrc && (rc = bt_scanner_next(st->s, &row)) == BT_OK) {
        if (n == page || b.len >= GW_MAX_PAGE_BYTES) {
            wrc = bt_buf_append(&next, row->key, row->key_len);
            break;
        }
        if (n) wrc = gw_jraw(&b, ",");
        if (!wrc) wrc = gw_jrow(&b, row);
        n++;
    }
    if (rc && rc != BT_ENOTFOUND) {
        bt_buf_free(&b);
        bt_buf_free(&next);
        fail_call(a, r, table, rc, "scan");
        scan_state_free(st);
        return;
    }
    if (!wrc) wrc = gw_jraw(&b, "]");
    if (!wrc && next.len) {
        wrc = gw_jraw(&b, ",\"next\":\"");
        if (!wrc) wrc = bt_b64_encode(&b, next.data, next.len, true);
        if (!wrc) wrc = gw_jraw(&b, "\"");
    }
    if (!wrc) wrc = gw_jraw(&b, "}\n");
    bt_buf_free(&next);
    scan_state_free(st);
    gw_reply_json(r, 200, &b, wrc);
}

/* ---- batches -------------------------------------------------------------------------------- */

int gw_batch_failure_status(int rc, const int *status, size_t n)
{
    if (rc == BT_OK) return 0;
    size_t failed = 0, unavailable = 0;
    for (size_t k = 0; k < n; k++) {
        if (status[k]) failed++;
        if (status[k] && gw_http_status_of(status[k]) == 503) unavailable++;
    }
    if (failed == 0) return gw_http_status_of(rc); /* an error of the whole call: no row says why */
    if (unavailable == n) return 503;
    return 0;
}

void gw_ep_mutations(gw_api *a, gw_req *r, const char *table)
{
    cJSON *j = gw_parse_body(a, r);
    if (!j) return;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "mutations");
    char why[256] = "";
    int prc = 0;
    size_t n = 0;
    if (!arr) prc = -1, snprintf(why, sizeof why, "mutations: missing");
    else if (!cJSON_IsArray(arr) || (n = (size_t)cJSON_GetArraySize(arr)) == 0)
        prc = -1, snprintf(why, sizeof why, "mutations: expected a non-empty array");
    bt_mutation **muts = n ? calloc(n, sizeof *muts) : NULL;
    int *status = n ? calloc(n, sizeof *status) : NULL;
    if (n && (!muts || !status)) prc = -1, snprintf(why, sizeof why, "out of memory");
    bt_buf key = {0};
    size_t i = 0;
    const cJSON *e;
    if (!prc) cJSON_ArrayForEach(e, arr) {
        char p[64];
        snprintf(p, sizeof p, "mutations[%zu]", i);
        if (!cJSON_IsObject(e)) { prc = -1; snprintf(why, sizeof why, "%s: expected an object", p); break; }
        int kr = gw_jget_bytes(e, "row", p, &key, why);
        if (kr == 0) snprintf(why, sizeof why, "%s.row: missing", p);
        if (kr <= 0) { prc = -1; break; }
        if (key.len == 0) { prc = -1; snprintf(why, sizeof why, "%s.row: empty", p); break; }
        muts[i] = bt_mutation_new(key.data, key.len);
        if (!muts[i]) { prc = -1; snprintf(why, sizeof why, "out of memory"); break; }
        prc = gw_parse_mutation(e, p, muts[i], false, why);
        i++;
        if (prc) break;
    }
    bt_buf_free(&key);
    gw_tref *ref = NULL;
    bt_table *t = NULL;
    if (prc) {
        reply_bad(r, prc, why);
    } else if (open_table(a, r, table, &ref, &t)) {
        int rc = bt_apply_batch(t, muts, n, status);
        char first[300] = "";
        if (rc) snprintf(first, sizeof first, "%s", *bt_errmsg() ? bt_errmsg() : bt_strerror(rc));
        size_t failed = 0;
        for (size_t k = 0; k < n; k++)
            if (status[k]) failed++;
        if (gw_batch_failure_status(rc, status, n)) {
            fail_call(a, r, table, rc, "mutations");
        } else {
            bt_buf b = {0};
            int wrc = gw_jraw(&b, "{\"results\":[");
            for (size_t k = 0; !wrc && k < n; k++)
                wrc = gw_jprintf(&b, "%s{\"code\":\"%s\"}", k ? "," : "", status[k] ? gw_code_of(status[k]) : "OK");
            if (!wrc) wrc = gw_jprintf(&b, "],\"failed\":%zu", failed);
            if (!wrc && failed) {
                wrc = gw_jraw(&b, ",\"message\":");
                if (!wrc) wrc = gw_jmsg(&b, first);
            }
            if (!wrc) wrc = gw_jraw(&b, "}\n");
            gw_reply_json(r, 200, &b, wrc);
            after_error(a, table, rc);
        }
        gw_table_put(a, ref);
    }
    for (size_t k = 0; k < n && muts; k++) bt_mutation_free(muts[k]);
    free(muts);
    free(status);
    cJSON_Delete(j);
}

/* ---- check-and-mutate ------------------------------------------------------------------------- */

/* predicate {"column":..|"family":..,"value_from":..,"value_to":..} -> filter (NULL: none) */
static int parse_predicate(const cJSON *p, bt_filter **out, char *why)
{
    *out = NULL;
    if (!p || cJSON_IsNull(p)) return 0;
    if (!cJSON_IsObject(p)) return snprintf(why, 256, "predicate: expected an object"), -1;
    bt_filter *f = bt_filter_new();
    if (!f) return snprintf(why, 256, "out of memory"), -1;
    bt_buf q = {0}, from = {0}, to = {0};
    char fam[65];
    int rc = 0, any = 0;
    int cr = gw_jget_column(p, "predicate", fam, &q, why);
    const cJSON *famf = cJSON_GetObjectItemCaseSensitive(p, "family");
    if (cr < 0) rc = -1;
    else if (cr == 1) {
        if (bt_filter_column(f, fam, q.data, q.len)) rc = -1, snprintf(why, 256, "predicate.column: %s", bt_errmsg());
        any = 1;
    }
    else if (famf) {
        if (!cJSON_IsString(famf) || bt_filter_family(f, famf->valuestring))
            rc = -1, snprintf(why, 256, "predicate.family: expected a family name");
        any = 1;
    }
    int fr = rc ? 0 : gw_jget_bytes(p, "value_from", "predicate", &from, why);
    int tr = rc || fr < 0 ? 0 : gw_jget_bytes(p, "value_to", "predicate", &to, why);
    if (fr < 0 || tr < 0) rc = -1;
    else if (!rc && (fr || tr)) {
        if (bt_filter_value_range(f, from.data, from.len, to.data, to.len))
            rc = -1, snprintf(why, 256, "predicate: %s", bt_errmsg());
        any = 1;
    }
    bt_buf_free(&q);
    bt_buf_free(&from);
    bt_buf_free(&to);
    if (rc || !any) {
        bt_filter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

void gw_ep_check_and_mutate(gw_api *a, gw_req *r, const char *table, const bt_buf *row)
{
    cJSON *j = gw_parse_body(a, r);
    if (!j) return;
    char why[256] = "";
    bt_filter *pred = NULL;
    bt_mutation *mt = NULL, *mf = NULL;
    int prc = parse_predicate(cJSON_GetObjectItemCaseSensitive(j, "predicate"), &pred, why);
    const char *names[2] = {"true_mutations", "false_mutations"};
    bt_mutation **ms[2] = {&mt, &mf};
    for (int k = 0; !prc && k < 2; k++) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, names[k]);
        if (!o || cJSON_IsNull(o)) continue;
        if (!cJSON_IsObject(o)) {
            prc = -1;
            snprintf(why, sizeof why, "%s: expected an object with \"cells\" and/or \"deletes\"", names[k]);
            break;
        }
        *ms[k] = bt_mutation_new(row->data, row->len);
        if (!*ms[k]) prc = -1, snprintf(why, sizeof why, "out of memory");
        else prc = gw_parse_mutation(o, names[k], *ms[k], true, why);
    }
    if (!prc && (!mt || !bt_mutation_len(mt)) && (!mf || !bt_mutation_len(mf)))
        prc = -1, snprintf(why, sizeof why, "true_mutations/false_mutations: no change given");
    gw_tref *ref = NULL;
    bt_table *t = NULL;
    if (prc) {
        reply_bad(r, prc, why);
    } else if (open_table(a, r, table, &ref, &t)) {
        bool matched = false;
        int rc = bt_check_and_mutate(t, row->data, row->len, pred, mt && bt_mutation_len(mt) ? mt : NULL,
                                     mf && bt_mutation_len(mf) ? mf : NULL, &matched);
        if (rc) fail_call(a, r, table, rc, "check-and-mutate");
        else if (matched) gw_reply(r, 200, "application/json", "{\"matched\":true}\n", 17, NULL, NULL);
        else gw_reply(r, 200, "application/json", "{\"matched\":false}\n", 18, NULL, NULL);
        gw_table_put(a, ref);
    }
    bt_filter_free(pred);
    bt_mutation_free(mt);
    bt_mutation_free(mf);
    cJSON_Delete(j);
}

/* ---- read-modify-write ------------------------------------------------------------------------ */

void gw_ep_rmw(gw_api *a, gw_req *r, const char *table, const bt_buf *row)
{
    cJSON *j = gw_parse_body(a, r);
    if (!j) return;
    char why[256] = "";
    int prc = 0;
    bt_rmw *rw = bt_rmw_new();
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(j, "rules");
    if (!rw) prc = -1, snprintf(why, sizeof why, "out of memory");
    else if (!cJSON_IsArray(rules) || cJSON_GetArraySize(rules) == 0)
        prc = -1, snprintf(why, sizeof why, "rules: expected a non-empty array");
    bt_buf q = {0}, v = {0};
    int i = 0;
    const cJSON *e;
    if (!prc) cJSON_ArrayForEach(e, rules) {
        char p[64], fam[65];
        snprintf(p, sizeof p, "rules[%d]", i++);
        if (!cJSON_IsObject(e)) { prc = -1; snprintf(why, sizeof why, "%s: expected an object", p); break; }
        int cr = gw_jget_column(e, p, fam, &q, why);
        if (cr == 0) snprintf(why, sizeof why, "%s.column: missing", p);
        if (cr <= 0) { prc = -1; break; }
        int ar = gw_jget_bytes(e, "append", p, &v, why);
        int64_t delta = 0;
        int ir = ar < 0 ? 0 : gw_jget_int(e, "increment", p, INT64_MIN, INT64_MAX, &delta, why);
        if (ar < 0 || ir < 0) { prc = -1; break; }
        if ((ar == 1) == (ir == 1)) {
            prc = -1;
            snprintf(why, sizeof why, "%s: give exactly one of \"append\", \"append_b64\", \"increment\"", p);
            break;
        }
        int brc = ar == 1 ? bt_rmw_append(rw, fam, q.data, q.len, v.data, v.len)
                          : bt_rmw_increment(rw, fam, q.data, q.len, delta);
        if (brc) { prc = brc == BT_ETOOBIG ? -2 : -1; snprintf(why, sizeof why, "%s: %s", p, bt_errmsg()); break; }
    }
    bt_buf_free(&q);
    bt_buf_free(&v);
    gw_tref *ref = NULL;
    bt_table *t = NULL;
    if (prc) {
        reply_bad(r, prc, why);
    } else if (open_table(a, r, table, &ref, &t)) {
        bt_row *out = NULL;
        int rc = bt_read_modify_write(t, row->data, row->len, rw, &out);
        if (rc) {
            fail_call(a, r, table, rc, "read-modify-write");
        } else {
            bt_buf b = {0};
            int wrc = gw_jraw(&b, "{");
            if (!wrc) wrc = gw_jbytes(&b, false, "row", row->data, row->len);
            if (!wrc) wrc = gw_jraw(&b, ",\"cells\":");
            if (!wrc) wrc = out ? gw_jcells(&b, out, true) : gw_jraw(&b, "[]");
            if (!wrc) wrc = gw_jraw(&b, "}\n");
            gw_reply_json(r, 200, &b, wrc);
        }
        bt_row_free(out);
        gw_table_put(a, ref);
    }
    bt_rmw_free(rw);
    cJSON_Delete(j);
}

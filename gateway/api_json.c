/* gateway/api_json.c: text and JSON helpers of the /v1 API: UTF-8,
 * percent-decoding, query strings, the body pre-scan, JSON output of rows,
 * JSON input of cells, columns and mutations (shapes in docs/gateway.md). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "gateway/api_internal.h"

/* ---- errors ---------------------------------------------------------------------- */

int gw_http_status_of(int rc)
{
    switch (rc) {
    case BT_ENOTFOUND: return 404;
    case BT_EINVAL: return 400;
    case BT_EEXIST: case BT_EFAILED_PRECONDITION: return 409;
    case BT_ETOOBIG: return 413;
    case BT_EUNAVAIL: case BT_ETIMEDOUT: case BT_ENOTSERVING: case BT_ECLOSED: case BT_EBUSY: return 503;
    default: return 500;
    }
}

const char *gw_code_of(int rc)
{
    switch (rc) {
    case BT_ETOOBIG: return "TOO_LARGE";
    case BT_ETIMEDOUT: case BT_ENOTSERVING: case BT_ECLOSED: case BT_EBUSY: return "UNAVAILABLE";
    case BT_EIO: case BT_ECORRUPT: case BT_ENOSPC: case BT_ENOMEM: return "INTERNAL";
    default: return bt_errname(rc);
    }
}

void gw_fail(gw_req *r, int rc, const char *what)
{
    const char *m = bt_errmsg();
    gw_reply_error(r, gw_http_status_of(rc), gw_code_of(rc), "%s: %s", what, m && *m ? m : bt_strerror(rc));
}

void gw_reply_json(gw_req *r, int status, bt_buf *b, int rc)
{
    if (rc) gw_reply_error(r, 500, "INTERNAL", "out of memory");
    else gw_reply(r, status, "application/json", b->data, b->len, NULL, NULL);
    bt_buf_free(b);
}

/* ---- UTF-8, base64, percent -------------------------------------------------------- */

bool gw_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) { i++; continue; }
        size_t need;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; }
        else return false;
        if (n - i <= need) return false;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int gw_pct_decode(const char *p, size_t n, bt_buf *out)
{
    bt_buf_clear(out);
    if (bt_buf_reserve(out, n + 1)) return -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)p[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int hi = hexval(p[i + 1]), lo = hexval(p[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (uint8_t)(hi << 4 | lo);
            i += 2;
        }
        out->data[out->len++] = c;
    }
    out->data[out->len] = '\0'; /* convenience; not counted */
    return 0;
}

/* ---- query strings ------------------------------------------------------------------ */

int gw_query_parse(const char *q, gw_query *out)
{
    out->n = 0;
    if (!q) return 0;
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len) {
            if (out->n == GW_MAX_PARAMS) return -1;
            const char *eq = memchr(q, '=', len);
            out->p[out->n].k = q;
            out->p[out->n].kl = eq ? (size_t)(eq - q) : len;
            out->p[out->n].v = eq ? eq + 1 : q + len;
            out->p[out->n].vl = eq ? len - (size_t)(eq - q) - 1 : 0;
            out->n++;
        }
        if (!amp) break;
        q = amp + 1;
    }
    return 0;
}

const char *gw_query_raw(const gw_query *q, const char *key, size_t *len)
{
    size_t kl = strlen(key);
    for (int i = q->n - 1; i >= 0; i--)
        if (q->p[i].kl == kl && !memcmp(q->p[i].k, key, kl)) {
            *len = q->p[i].vl;
            return q->p[i].v;
        }
    *len = 0;
    return NULL;
}

int gw_query_get(const gw_query *q, const char *key, bt_buf *out)
{
    size_t len;
    const char *v = gw_query_raw(q, key, &len);
    if (!v) return 0;
    return gw_pct_decode(v, len, out) ? -1 : 1;
}

int gw_query_uint(const gw_query *q, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    size_t len;
    const char *v = gw_query_raw(q, key, &len);
    if (!v) return 0;
    if (len == 0 || len > 19) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (x < min || x > max) return -1;
    *out = x;
    return 1;
}

static bool family_ok(const char *f, size_t n)
{
    if (n < 1 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = f[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return false;
    }
    return true;
}

int gw_filter_from_query(const gw_query *q, bt_filter **fout, char *why)
{
    *fout = NULL;
    bt_filter *f = bt_filter_new();
    if (!f) return snprintf(why, 256, "out of memory"), -1;
    bool any = false;
    size_t len;
    const char *cols = gw_query_raw(q, "columns", &len);
    bt_buf one = {0};
    int rc = 0;
    if (cols && len) {
        size_t i = 0;
        while (i <= len && !rc) {
            const char *comma = memchr(cols + i, ',', len - i);
            size_t el = comma ? (size_t)(comma - (cols + i)) : len - i;
            if (gw_pct_decode(cols + i, el, &one)) {
                snprintf(why, 256, "columns: bad percent-escape");
                rc = -1;
                break;
            }
            const char *colon = memchr(one.data, ':', one.len);
            size_t fl = colon ? (size_t)(colon - (const char *)one.data) : one.len;
            if (!family_ok((const char *)one.data, fl)) {
                snprintf(why, 256, "columns: \"%.*s\" is not a family or family:qualifier", (int)(one.len > 80 ? 80 : one.len),
                         (const char *)one.data);
                rc = -1;
                break;
            }
            char fam[65];
            memcpy(fam, one.data, fl);
            fam[fl] = '\0';
            int r2 = colon ? bt_filter_column(f, fam, colon + 1, one.len - fl - 1) : bt_filter_family(f, fam);
            if (r2) {
                snprintf(why, 256, "columns: %s", bt_errmsg());
                rc = -1;
            }
            any = true;
            if (!comma) break;
            i += el + 1;
        }
    }
    bt_buf_free(&one);
    uint64_t v = 0, ts0 = 0, ts1 = 0;
    int r;
    if (!rc && (r = gw_query_uint(q, "versions", 1, UINT32_MAX, &v)) != 0) {
        if (r < 0) rc = -1, snprintf(why, 256, "versions: expected an integer in [1, 4294967295]");
        else if (bt_filter_versions(f, (uint32_t)v)) rc = -1, snprintf(why, 256, "versions: %s", bt_errmsg());
        else any = true;
    }
    int r0 = 0, r1 = 0;
    if (!rc) {
        r0 = gw_query_uint(q, "start_ts", 0, INT64_MAX, &ts0);
        r1 = gw_query_uint(q, "end_ts", 0, INT64_MAX, &ts1);
        if (r0 < 0 || r1 < 0) {
            rc = -1;
            snprintf(why, 256, "%s: expected a non-negative integer (microseconds)", r0 < 0 ? "start_ts" : "end_ts");
        } else if (r1 && ts1 <= ts0) {
            /* end_ts omitted: no upper bound; given, it must be past start_ts
             * (libbt would read an explicit 0 as "unbounded") */
            rc = -1;
            snprintf(why, 256, "end_ts: %llu must be greater than start_ts (%llu); omit it for no upper bound",
                     (unsigned long long)ts1, (unsigned long long)ts0);
        } else if (r0 || r1) {
            if (bt_filter_timestamp_range(f, (int64_t)ts0, r1 ? (int64_t)ts1 : 0))
                rc = -1, snprintf(why, 256, "start_ts/end_ts: %s", bt_errmsg());
            else any = true;
        }
    }
    if (rc || !any) {
        bt_filter_free(f);
        return rc;
    }
    *fout = f;
    return 0;
}

/* ---- the pre-scan and parse ------------------------------------------------------------ */

int gw_json_prescan(const uint8_t *p, size_t n, int max_depth, char *why)
{
    if (!gw_utf8_valid(p, n)) {
        snprintf(why, 256, "body: not valid UTF-8");
        return -1;
    }
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (in_str) {
            if (c == '\\') {
                if (i + 5 < n && p[i + 1] == 'u' && !memcmp(p + i + 2, "0000", 4)) {
                    snprintf(why, 256, "body: \\u0000 in a string (send binary data in a *_b64 field)");
                    return -1;
                }
                i++;
            } else if (c == '"') {
                in_str = false;
            } else if (c < 0x20) {
                /* RFC 8259: control characters in strings must be escaped;
                 * a raw NUL would also cut the string short in cJSON */
                snprintf(why, 256,
                         "body: raw control character 0x%02x in a string at byte %zu (escape it; send binary data "
                         "in a *_b64 field)", c, i);
                return -1;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                snprintf(why, 256, "body: JSON nested deeper than %d levels", max_depth);
                return -1;
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

cJSON *gw_parse_body(gw_api *a, gw_req *r)
{
    size_t n = 0;
    const uint8_t *p = gw_req_body(r, &n);
    char why[256];
    if (n == 0) {
        gw_reply_error(r, 400, "INVALID_ARGUMENT", "body: expected a JSON object");
        return NULL;
    }
    if (gw_json_prescan(p, n, a->o.max_depth, why)) {
        gw_reply_error(r, 400, "INVALID_ARGUMENT", "%s", why);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts((const char *)p, n, &end, false);
    if (!j) {
        size_t at = end && end >= (const char *)p ? (size_t)(end - (const char *)p) : 0;
        gw_reply_error(r, 400, "INVALID_ARGUMENT", "body: malformed JSON near byte %zu", at);
        return NULL;
    }
    if (end) {
        while ((size_t)(end - (const char *)p) < n && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
            end++;
        if ((size_t)(end - (const char *)p) < n) {
            cJSON_Delete(j);
            gw_reply_error(r, 400, "INVALID_ARGUMENT", "body: trailing data after the JSON value");
            return NULL;
        }
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        gw_reply_error(r, 400, "INVALID_ARGUMENT", "body: expected a JSON object");
        return NULL;
    }
    return j;
}

/* ---- JSON output ----------------------------------------------------------------------- */

int gw_jraw(bt_buf *b, const char *s) { return bt_buf_append(b, s, strlen(s)); }

int gw_jprintf(bt_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return BT_EINVAL;
    if ((size_t)n < sizeof tmp) return bt_buf_append(b, tmp, (size_t)n);
    if (bt_buf_reserve(b, (size_t)n + 1)) return BT_ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return BT_OK;
}

int gw_jstr(bt_buf *b, const void *pv, size_t n)
{
    const uint8_t *p = pv;
    if (bt_buf_reserve(b, n + 2)) return BT_ENOMEM;
    b->data[b->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (bt_buf_append(b, p + run, i - run)) return BT_ENOMEM;
        char e[8];
        int el;
        switch (c) {
        case '"': el = snprintf(e, sizeof e, "\\\""); break;
        case '\\': el = snprintf(e, sizeof e, "\\\\"); break;
        case '\n': el = snprintf(e, sizeof e, "\\n"); break;
        case '\r': el = snprintf(e, sizeof e, "\\r"); break;
        case '\t': el = snprintf(e, sizeof e, "\\t"); break;
        default: el = snprintf(e, sizeof e, "\\u%04x", c); break;
        }
        if (bt_buf_append(b, e, (size_t)el)) return BT_ENOMEM;
        run = i + 1;
    }
    if (bt_buf_append(b, p + run, n - run)) return BT_ENOMEM;
    return bt_buf_append(b, "\"", 1);
}

int gw_jmsg(bt_buf *b, const char *msg)
{
    size_t n = strlen(msg);
    if (gw_utf8_valid((const uint8_t *)msg, n)) return gw_jstr(b, msg, n);
    bt_buf t = {0};
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        uint8_t c = (uint8_t)msg[i];
        char e[8];
        if (c < 0x80) rc = bt_buf_append(&t, &c, 1);
        else rc = bt_buf_append(&t, e, (size_t)snprintf(e, sizeof e, "\\x%02X", c));
    }
    if (!rc) rc = gw_jstr(b, t.data ? (const char *)t.data : "", t.len);
    bt_buf_free(&t);
    return rc;
}

int gw_jbytes(bt_buf *b, bool comma, const char *name, const void *p, size_t n)
{
    int rc = comma ? gw_jraw(b, ",") : 0;
    if ((n == 0 || !memchr(p, 0, n)) && gw_utf8_valid(p, n)) {
        if (!rc) rc = gw_jprintf(b, "\"%s\":", name);
        if (!rc) rc = gw_jstr(b, p, n);
        return rc;
    }
    if (!rc) rc = gw_jprintf(b, "\"%s_b64\":\"", name);
    if (!rc) rc = bt_b64_encode(b, p, n, false);
    if (!rc) rc = gw_jraw(b, "\"");
    return rc;
}

int gw_jcells(bt_buf *b, const bt_row *row, bool ints)
{
    int rc = gw_jraw(b, "[");
    bt_buf col = {0};
    for (size_t i = 0; !rc && i < row->n_cells; i++) {
        const bt_cell *c = &row->cells[i];
        bt_buf_clear(&col);
        rc = bt_buf_append(&col, c->family, c->family_len);
        if (!rc) rc = bt_buf_append(&col, ":", 1);
        if (!rc) rc = bt_buf_append(&col, c->qualifier, c->qualifier_len);
        if (!rc) rc = gw_jraw(b, i ? ",{" : "{");
        if (!rc) rc = gw_jbytes(b, false, "column", col.data, col.len);
        if (!rc) rc = gw_jprintf(b, ",\"timestamp\":%lld", (long long)c->timestamp);
        if (!rc) rc = gw_jbytes(b, true, "value", c->value, c->value_len);
        if (!rc && ints && c->value_len == 8)
            rc = gw_jprintf(b, ",\"int\":%lld", (long long)(int64_t)bt_get_fixed64_be(c->value));
        if (!rc) rc = gw_jraw(b, "}");
    }
    bt_buf_free(&col);
    if (!rc) rc = gw_jraw(b, "]");
    return rc;
}

int gw_jrow(bt_buf *b, const bt_row *row)
{
    int rc = gw_jraw(b, "{");
    if (!rc) rc = gw_jbytes(b, false, "row", row->key, row->key_len);
    if (!rc) rc = gw_jraw(b, ",\"cells\":");
    if (!rc) rc = gw_jcells(b, row, false);
    if (!rc) rc = gw_jraw(b, "}");
    return rc;
}

/* ---- JSON input ------------------------------------------------------------------------ */

int gw_jget_bytes(const cJSON *obj, const char *name, const char *path, bt_buf *out, char *why)
{
    char b64name[64];
    snprintf(b64name, sizeof b64name, "%s_b64", name);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, name);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(obj, b64name);
    if (s && b) return snprintf(why, 256, "%s: give %s or %s, not both", path, name, b64name), -1;
    if (s) {
        if (!cJSON_IsString(s)) return snprintf(why, 256, "%s.%s: expected a string", path, name), -1;
        bt_buf_clear(out);
        return bt_buf_append(out, s->valuestring, strlen(s->valuestring)) ? -1 : 1;
    }
    if (b) {
        if (!cJSON_IsString(b) || bt_b64_decode(b->valuestring, strlen(b->valuestring), out))
            return snprintf(why, 256, "%s.%s: expected a base64 string", path, b64name), -1;
        return 1;
    }
    return 0;
}

int gw_jget_column(const cJSON *obj, const char *path, char *family, bt_buf *qual, char *why)
{
    int r = gw_jget_bytes(obj, "column", path, qual, why);
    if (r <= 0) return r;
    const uint8_t *colon = qual->len ? memchr(qual->data, ':', qual->len) : NULL;
    size_t fl = colon ? (size_t)(colon - qual->data) : 0;
    if (!colon || !family_ok((const char *)qual->data, fl))
        return snprintf(why, 256, "%s.column: expected \"family:qualifier\"", path), -1;
    memcpy(family, qual->data, fl);
    family[fl] = '\0';
    memmove(qual->data, colon + 1, qual->len - fl - 1);
    qual->len -= fl + 1;
    return 1;
}

int gw_jget_int(const cJSON *obj, const char *name, const char *path, int64_t min, int64_t max, int64_t *out,
                char *why)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v)) return 0;
    /* cJSON keeps numbers as doubles: integers are exact up to 2^53 */
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
    /* the range first: casting a double outside int64_t is undefined */
    bool ok = cJSON_IsNumber(v) && d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(int64_t)d;
    int64_t x = ok ? (int64_t)d : 0;
    if (!ok || x < min || x > max)
        return snprintf(why, 256, "%s.%s: expected an integer in [%lld, %lld]", path, name, (long long)min,
                        (long long)max), -1;
    *out = x;
    return 1;
}

static int parse_cells(const cJSON *cells, const char *path, bt_mutation *m, char *why)
{
    if (!cJSON_IsArray(cells)) return snprintf(why, 256, "%s.cells: expected an array", path), -1;
    bt_buf qual = {0}, val = {0};
    int rc = 0, i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cells) {
        char p[96], fam[65];
        snprintf(p, sizeof p, "%s.cells[%d]", path, i++);
        if (!cJSON_IsObject(c)) { snprintf(why, 256, "%s: expected an object", p); rc = -1; break; }
        int r = gw_jget_column(c, p, fam, &qual, why);
        if (r == 0) snprintf(why, 256, "%s.column: missing", p);
        if (r <= 0) { rc = -1; break; }
        r = gw_jget_bytes(c, "value", p, &val, why);
        if (r == 0) snprintf(why, 256, "%s.value: missing", p);
        if (r <= 0) { rc = -1; break; }
        int64_t ts = BT_SERVER_TIME;
        if (gw_jget_int(c, "timestamp", p, 0, INT64_MAX, &ts, why) < 0) {
            snprintf(why, 256, "%s.timestamp: expected an integer", p);
            rc = -1;
            break;
        }
        int brc = bt_mutation_set(m, fam, qual.data, qual.len, ts, val.data, val.len);
        if (brc) { snprintf(why, 256, "%s: %s", p, bt_errmsg()); rc = brc == BT_ETOOBIG ? -2 : -1; break; }
    }
    bt_buf_free(&qual);
    bt_buf_free(&val);
    return rc;
}

static int parse_deletes(const cJSON *dels, const char *path, bt_mutation *m, char *why)
{
    if (!cJSON_IsArray(dels)) return snprintf(why, 256, "%s.deletes: expected an array", path), -1;
    bt_buf qual = {0};
    int rc = 0, i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, dels) {
        char p[96], fam[65];
        snprintf(p, sizeof p, "%s.deletes[%d]", path, i++);
        if (!cJSON_IsObject(d)) { snprintf(why, 256, "%s: expected an object", p); rc = -1; break; }
        const cJSON *rowf = cJSON_GetObjectItemCaseSensitive(d, "row");
        const cJSON *famf = cJSON_GetObjectItemCaseSensitive(d, "family");
        int r = gw_jget_column(d, p, fam, &qual, why);
        if (r < 0) { rc = -1; break; }
        int brc;
        if (r == 1) {
            int64_t from = 0, to = 0;
            if (gw_jget_int(d, "from", p, 0, INT64_MAX, &from, why) < 0 ||
                gw_jget_int(d, "to", p, 0, INT64_MAX, &to, why) < 0) { rc = -1; break; }
            brc = bt_mutation_delete_cells(m, fam, qual.data, qual.len, from, to);
        } else if (famf) {
            if (!cJSON_IsString(famf)) { snprintf(why, 256, "%s.family: expected a string", p); rc = -1; break; }
            brc = bt_mutation_delete_family(m, famf->valuestring);
        } else if (rowf) {
            if (!cJSON_IsTrue(rowf)) { snprintf(why, 256, "%s.row: expected true", p); rc = -1; break; }
            brc = bt_mutation_delete_row(m);
        } else {
            snprintf(why, 256, "%s: expected \"column\", \"family\" or \"row\":true", p);
            rc = -1;
            break;
        }
        if (brc) { snprintf(why, 256, "%s: %s", p, bt_errmsg()); rc = -1; break; }
    }
    bt_buf_free(&qual);
    return rc;
}

int gw_parse_mutation(const cJSON *obj, const char *path, bt_mutation *m, bool allow_empty, char *why)
{
    const cJSON *cells = cJSON_GetObjectItemCaseSensitive(obj, "cells");
    const cJSON *dels = cJSON_GetObjectItemCaseSensitive(obj, "deletes");
    int rc = 0;
    if (dels) rc = parse_deletes(dels, path, m, why); /* deletes first: then cells written in the same mutation survive */
    if (!rc && cells) rc = parse_cells(cells, path, m, why);
    if (!rc && !allow_empty && bt_mutation_len(m) == 0) {
        snprintf(why, 256, "%s: no change (give \"cells\" or \"deletes\")", path[0] ? path : "body");
        rc = -1;
    }
    return rc;
}

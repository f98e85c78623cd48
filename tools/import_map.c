/* tools/import_map.c: --row-key / --columns / --timestamp mapping of
 * bt-import (see import_map.h). */
#include "tools/import_map.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/import_csv.h"

int imp_buf_reserve(imp_buf *b, size_t more)
{
    if (b->len + more <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + more) nc *= 2;
    uint8_t *np = realloc(b->p, nc);
    if (!np) return -1;
    b->p = np;
    b->cap = nc;
    return 0;
}

int imp_buf_add(imp_buf *b, const void *p, size_t n)
{
    if (imp_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

void imp_buf_free(imp_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

long imp_map_field(const imp_map *m, const char *name)
{
    for (size_t i = 0; i < m->n_fields; i++)
        if (!strcmp(m->fields[i], name)) return (long)i;
    return -1;
}

/* Index of name, added if new; -1 when memory runs out. */
static long add_field(imp_map *m, const char *name, size_t len)
{
    for (size_t i = 0; i < m->n_fields; i++)
        if (strlen(m->fields[i]) == len && !memcmp(m->fields[i], name, len)) return (long)i;
    char **nf = realloc(m->fields, (m->n_fields + 1) * sizeof *nf);
    if (!nf) return -1;
    m->fields = nf;
    m->fields[m->n_fields] = strndup(name, len);
    if (!m->fields[m->n_fields]) return -1;
    return (long)m->n_fields++;
}

static bool valid_family(const char *s, size_t n)
{
    if (n < 1 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return false;
    }
    return true;
}

static int parse_key(imp_map *m, const char *row_key, char *err, size_t cap)
{
    const char *p = row_key;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 0) return fail(err, cap, "--row-key \"%s\": an empty field name", row_key);
        long f = add_field(m, p, n);
        if (f < 0) return fail(err, cap, "out of memory");
        size_t *nk = realloc(m->key, (m->n_key + 1) * sizeof *nk);
        if (!nk) return fail(err, cap, "out of memory");
        m->key = nk;
        m->key[m->n_key++] = (size_t)f;
        if (!comma) return 0;
        p = comma + 1;
    }
}

static int parse_columns(imp_map *m, const char *columns, char *err, size_t cap)
{
    const char *p = columns;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq || eq == p)
            return fail(err, cap, "--columns: \"%.*s\" is not FIELD=family[:qualifier]", (int)n, p);
        const char *fam = eq + 1, *end = p + n;
        const char *colon = memchr(fam, ':', (size_t)(end - fam));
        size_t fl = colon ? (size_t)(colon - fam) : (size_t)(end - fam);
        if (!valid_family(fam, fl))
            return fail(err, cap, "--columns: family \"%.*s\" must be 1-64 of [A-Za-z0-9_.-]", (int)fl, fam);
        const char *q = colon ? colon + 1 : p;
        size_t ql = colon ? (size_t)(end - q) : (size_t)(eq - p);
        if (memchr(q, '=', ql)) return fail(err, cap, "--columns: \"%.*s\" holds a second '='", (int)n, p);
        if (ql > IMP_MAX_QUALIFIER) return fail(err, cap, "--columns: a qualifier over %d bytes", IMP_MAX_QUALIFIER);
        for (size_t i = 0; i < m->n_cols; i++)
            if (!strncmp(m->cols[i].family, fam, fl) && m->cols[i].family[fl] == '\0' && m->cols[i].qual_len == ql &&
                !memcmp(m->cols[i].qual, q, ql))
                return fail(err, cap, "--columns: column %.*s:%.*s is mapped twice", (int)fl, fam, (int)ql, q);
        long f = add_field(m, p, (size_t)(eq - p));
        if (f < 0) return fail(err, cap, "out of memory");
        imp_col *nc = realloc(m->cols, (m->n_cols + 1) * sizeof *nc);
        if (!nc) return fail(err, cap, "out of memory");
        m->cols = nc;
        imp_col *c = &m->cols[m->n_cols];
        memset(c, 0, sizeof *c);
        memcpy(c->family, fam, fl);
        c->qual = malloc(ql + 1);
        if (!c->qual) return fail(err, cap, "out of memory");
        memcpy(c->qual, q, ql);
        c->qual_len = ql;
        c->field = (size_t)f;
        m->n_cols++;
        if (!comma) return 0;
        p = comma + 1;
    }
}

int imp_map_parse(imp_map *m, const char *row_key, const char *columns, const char *ts_field,
                  const char *key_sep, char *err, size_t errcap)
{
    m->ts_field = -1;
    if (!row_key || !*row_key) return fail(err, errcap, "--row-key is required");
    if (!columns || !*columns) return fail(err, errcap, "--columns is required");
    if (parse_key(m, row_key, err, errcap)) return -1;
    if (parse_columns(m, columns, err, errcap)) return -1;
    if (ts_field) {
        if (!*ts_field || strchr(ts_field, ',')) return fail(err, errcap, "--timestamp needs one field name");
        m->ts_field = add_field(m, ts_field, strlen(ts_field));
        if (m->ts_field < 0) return fail(err, errcap, "out of memory");
    }
    m->key_sep = strdup(key_sep ? key_sep : "#");
    if (!m->key_sep) return fail(err, errcap, "out of memory");
    m->key_sep_len = strlen(m->key_sep);
    return 0;
}

void imp_map_free(imp_map *m)
{
    for (size_t i = 0; i < m->n_fields; i++) free(m->fields[i]);
    free(m->fields);
    free(m->key);
    for (size_t i = 0; i < m->n_cols; i++) free(m->cols[i].qual);
    free(m->cols);
    free(m->key_sep);
    memset(m, 0, sizeof *m);
}

int imp_map_resolve_header(const imp_map *m, const uint8_t *const *names, const size_t *lens, size_t n,
                           size_t *idx, char *err, size_t errcap)
{
    for (size_t f = 0; f < m->n_fields; f++) {
        size_t fl = strlen(m->fields[f]);
        long at = -1;
        for (size_t i = 0; i < n; i++) {
            if (lens[i] != fl || memcmp(names[i], m->fields[f], fl)) continue;
            if (at >= 0) return fail(err, errcap, "field \"%s\" is named twice in the header", m->fields[f]);
            at = (long)i;
        }
        if (at < 0) {
            char hdr[200];
            size_t o = 0;
            hdr[0] = '\0';
            for (size_t i = 0; i < n && o + 8 < sizeof hdr; i++) {
                char one[64];
                imp_escape(names[i], lens[i], one, sizeof one);
                o += (size_t)snprintf(hdr + o, sizeof hdr - o, "%s%s", i ? "," : "", one);
            }
            return fail(err, errcap, "field \"%s\" is not in the header (%s)", m->fields[f], hdr);
        }
        idx[f] = (size_t)at;
    }
    return 0;
}

int imp_parse_ts(const uint8_t *p, size_t n, int64_t *out)
{
    if (n == 0 || n > 19) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v >= (uint64_t)INT64_MAX) return -1;
    *out = (int64_t)v;
    return 0;
}

static int reject(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    /* reasons stay on one line of the rejects file */
    for (char *c = why; *c; c++)
        if (*c == '\t' || *c == '\n' || *c == '\r') *c = ' ';
    return -1;
}

int imp_map_row(const imp_map *m, const imp_value *vals, imp_row *out, char *why, size_t whycap)
{
    out->key.len = 0;
    out->n_cells = 0;
    out->bytes = 0;
    for (size_t k = 0; k < m->n_key; k++) {
        const imp_value *v = &vals[m->key[k]];
        const char *name = m->fields[m->key[k]];
        if (!v->present) return reject(why, whycap, "missing row key field \"%s\"", name);
        if (v->nested) return reject(why, whycap, "row key field \"%s\" is an object or array", name);
        if (k && imp_buf_add(&out->key, m->key_sep, m->key_sep_len)) return reject(why, whycap, "out of memory");
        if (imp_buf_add(&out->key, v->p, v->len)) return reject(why, whycap, "out of memory");
    }
    if (out->key.len == 0) return reject(why, whycap, "empty row key");
    if (out->key.len > IMP_MAX_ROW_KEY)
        return reject(why, whycap, "row key of %zu bytes is over the limit of %d bytes", out->key.len,
                      IMP_MAX_ROW_KEY);
    out->ts = m->default_ts;
    if (m->ts_field >= 0) {
        const imp_value *v = &vals[m->ts_field];
        const char *name = m->fields[m->ts_field];
        if (!v->present) return reject(why, whycap, "missing timestamp field \"%s\"", name);
        if (v->nested || imp_parse_ts(v->p, v->len, &out->ts)) {
            char shown[48];
            imp_escape(v->p, v->nested ? 0 : v->len, shown, sizeof shown);
            return reject(why, whycap, "bad timestamp \"%s\" in field \"%s\" (want microseconds, 0..2^63-2)",
                          v->nested ? "{...}" : shown, name);
        }
    }
    out->bytes = out->key.len;
    for (size_t i = 0; i < m->n_cols; i++) {
        const imp_col *c = &m->cols[i];
        const imp_value *v = &vals[c->field];
        if (!v->present) continue;
        if (v->nested)
            return reject(why, whycap, "field \"%s\" is an object or array (only strings, numbers and booleans "
                                       "map to values)", m->fields[c->field]);
        if (m->skip_empty && v->len == 0) continue;
        if (v->len > IMP_MAX_VALUE)
            return reject(why, whycap, "value of field \"%s\" (%zu bytes) is over the limit of %zu bytes",
                          m->fields[c->field], v->len, IMP_MAX_VALUE);
        if (out->n_cells == out->cap_cells) {
            size_t nc = out->cap_cells ? 2 * out->cap_cells : 8;
            imp_cell *x = realloc(out->cells, nc * sizeof *x);
            if (!x) return reject(why, whycap, "out of memory");
            out->cells = x;
            out->cap_cells = nc;
        }
        out->cells[out->n_cells++] = (imp_cell){c, v->p, v->len};
        out->bytes += c->qual_len + strlen(c->family) + v->len;
    }
    if (out->n_cells == 0) return reject(why, whycap, "no mapped column has a value");
    if (m->max_row && out->bytes > m->max_row)
        return reject(why, whycap, "row of %zu bytes is over the %zu-byte request limit", out->bytes, m->max_row);
    return 0;
}

void imp_row_free(imp_row *r)
{
    imp_buf_free(&r->key);
    free(r->cells);
    memset(r, 0, sizeof *r);
}

/* shell/format.c: bt-shell's output tables (see shell/format.h).
 *
 * A table keeps its cells as raw bytes; the text and JSON printers decide how
 * to show them.  Text columns are aligned by display width (terminal
 * columns), not bytes, so a value holding "é" or "表" does not push the
 * following columns out of line.
 */
#include "shell/format.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/coding.h"
#include "common/status.h"
#include "shell/parse.h"
#include "shell/text.h"

typedef struct sh_cell {
    char *p;          /* bytes, NUL-terminated for convenience */
    size_t n;
} sh_cell;

struct sh_table {
    int ncols;
    char **headers;   /* ncols NUL-terminated copies */
    sh_cell *cells;   /* nrows * ncols, row-major */
    size_t nrows, caprows;
};

sh_table *sh_table_new(int ncols, const char *const *headers)
{
    if (ncols < 0 || (ncols > 0 && !headers)) return NULL;
    sh_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->ncols = ncols;
    t->headers = calloc((size_t)ncols + 1, sizeof *t->headers);
    if (!t->headers) { free(t); return NULL; }
    for (int i = 0; i < ncols; i++) {
        t->headers[i] = strdup(headers[i] ? headers[i] : "");
        if (!t->headers[i]) { sh_table_free(t); return NULL; }
    }
    return t;
}

int sh_table_add(sh_table *t, const char *const *cells, const size_t *lens)
{
    size_t nc = (size_t)t->ncols;
    if (t->nrows == t->caprows) {
        size_t cap = t->caprows ? t->caprows * 2 : 16;
        sh_cell *c = realloc(t->cells, cap * (nc ? nc : 1) * sizeof *c);
        if (!c) return BT_ENOMEM;
        t->cells = c;
        t->caprows = cap;
    }
    sh_cell *row = t->cells + t->nrows * nc;
    for (size_t i = 0; i < nc; i++) {
        const char *src = cells[i] ? cells[i] : "";
        size_t n = lens ? (cells[i] ? lens[i] : 0) : strlen(src);
        row[i].p = malloc(n + 1);
        if (!row[i].p) {
            while (i--) free(row[i].p);
            return BT_ENOMEM;
        }
        memcpy(row[i].p, src, n);
        row[i].p[n] = '\0';
        row[i].n = n;
    }
    t->nrows++;
    return BT_OK;
}

size_t sh_table_rows(const sh_table *t) { return t ? t->nrows : 0; }

void sh_table_free(sh_table *t)
{
    if (!t) return;
    size_t nc = (size_t)t->ncols;
    for (size_t i = 0; i < t->nrows * nc; i++) free(t->cells[i].p);
    free(t->cells);
    if (t->headers)
        for (int i = 0; i < t->ncols; i++) free(t->headers[i]);
    free(t->headers);
    free(t);
}

/* ---- text ----------------------------------------------------------------- */

/* Terminal columns of one code point: 0 for combining marks, 2 for East Asian
 * wide and fullwidth characters and emoji, 1 otherwise.  A small table of
 * the common blocks rather than wcwidth(), which depends on the locale. */
static int cp_width(uint32_t cp)
{
    static const uint32_t zero[][2] = {
        { 0x0300, 0x036F }, { 0x0483, 0x0489 }, { 0x0591, 0x05BD }, { 0x0610, 0x061A },
        { 0x064B, 0x065F }, { 0x0E31, 0x0E31 }, { 0x0E34, 0x0E3A }, { 0x0E47, 0x0E4E },
        { 0x1AB0, 0x1AFF }, { 0x1DC0, 0x1DFF }, { 0x20D0, 0x20FF }, { 0xFE00, 0xFE0F },
        { 0xFE20, 0xFE2F },
    };
    static const uint32_t wide[][2] = {
        { 0x1100, 0x115F }, { 0x2E80, 0x303E }, { 0x3041, 0x33FF }, { 0x3400, 0x4DBF },
        { 0x4E00, 0x9FFF }, { 0xA000, 0xA4CF }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF },
        { 0xFE30, 0xFE4F }, { 0xFF00, 0xFF60 }, { 0xFFE0, 0xFFE6 }, { 0x1F300, 0x1F64F },
        { 0x1F900, 0x1F9FF }, { 0x20000, 0x2FFFD }, { 0x30000, 0x3FFFD },
    };
    for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++)
        if (cp >= zero[i][0] && cp <= zero[i][1]) return 0;
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++)
        if (cp >= wide[i][0] && cp <= wide[i][1]) return 2;
    return 1;
}

/* Display width of p[0..n); a byte that is not valid UTF-8 counts 1. */
static size_t text_width(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t w = 0, i = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = sh_utf8_decode(p + i, n - i, &cp);
        if (l == 0) { w++; i++; continue; }
        w += (size_t)cp_width(cp);
        i += l;
    }
    return w;
}

typedef struct shown {
    char *s;          /* escaped text */
    size_t n;         /* its bytes */
    size_t w;         /* its display width */
} shown;

static void put_padded(FILE *f, const char *s, size_t n, size_t w, size_t width, bool last)
{
    fwrite(s, 1, n, f);
    if (last) return;
    for (size_t i = w; i < width + 2; i++) fputc(' ', f);
}

void sh_table_print(const sh_table *t, FILE *f)
{
    size_t nc = (size_t)t->ncols, ncells = t->nrows * nc;
    if (nc == 0) return;
    shown *sh = calloc(ncells ? ncells : 1, sizeof *sh);
    size_t *width = calloc(nc, sizeof *width);
    if (!sh || !width) goto out;
    for (size_t c = 0; c < nc; c++) width[c] = text_width(t->headers[c], strlen(t->headers[c]));
    for (size_t i = 0; i < ncells; i++) {
        bt_buf b = {0};
        if (sh_escape((const uint8_t *)t->cells[i].p, t->cells[i].n, false, &b)) {
            bt_buf_free(&b);
            goto out;
        }
        sh[i] = (shown){ .s = (char *)b.data, .n = b.len, .w = text_width((char *)b.data, b.len) };
        if (sh[i].w > width[i % nc]) width[i % nc] = sh[i].w;
    }
    for (size_t c = 0; c < nc; c++) {
        const char *h = t->headers[c];
        put_padded(f, h, strlen(h), text_width(h, strlen(h)), width[c], c + 1 == nc);
    }
    fputc('\n', f);
    for (size_t c = 0; c < nc; c++) {
        for (size_t i = 0; i < width[c]; i++) fputc('-', f);
        if (c + 1 < nc) fputs("  ", f);
    }
    fputc('\n', f);
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < nc; c++) {
            const shown *x = &sh[r * nc + c];
            put_padded(f, x->s, x->n, x->w, width[c], c + 1 == nc);
        }
        fputc('\n', f);
    }
out:
    if (sh)
        for (size_t i = 0; i < ncells; i++) free(sh[i].s);
    free(sh);
    free(width);
}

/* ---- JSON ----------------------------------------------------------------- */

/* True if p[0..n) is valid UTF-8 without control characters other than
 * newline and tab, i.e. shown as a JSON string rather than base64. */
static bool json_text(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            if ((p[i] < 0x20 && p[i] != '\n' && p[i] != '\t') || p[i] == 0x7F) return false;
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = sh_utf8_decode(p + i, n - i, &cp);
        if (l == 0) return false;
        i += l;
    }
    return true;
}

static char *base64(const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

/* {"b64": "..."} for bytes that are not JSON text, else a string. */
static cJSON *json_cell(const sh_cell *c)
{
    if (json_text((const uint8_t *)c->p, c->n)) return cJSON_CreateString(c->p);
    char *b = base64((const uint8_t *)c->p, c->n);
    cJSON *o = b ? cJSON_CreateObject() : NULL;
    if (o && !cJSON_AddStringToObject(o, "b64", b)) {
        cJSON_Delete(o);
        o = NULL;
    }
    free(b);
    return o;
}

/* One row as an unformatted JSON object; NULL on ENOMEM. */
static char *json_row(const sh_table *t, size_t r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    for (int c = 0; c < t->ncols; c++) {
        cJSON *v = json_cell(&t->cells[r * (size_t)t->ncols + (size_t)c]);
        if (!v || !cJSON_AddItemToObject(o, t->headers[c], v)) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            return NULL;
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

void sh_table_print_json(const sh_table *t, FILE *f)
{
    if (t->nrows == 0) {
        fputs("[]\n", f);
        return;
    }
    fputs("[\n", f);
    for (size_t r = 0; r < t->nrows; r++) {
        char *s = json_row(t, r);
        /* out of memory mid-table: null keeps the output valid JSON */
        fprintf(f, "  %s%s\n", s ? s : "null", r + 1 < t->nrows ? "," : "");
        cJSON_free(s);
    }
    fputs("]\n", f);
}

void sh_print_footer(FILE *f, size_t rows, int64_t elapsed_us)
{
    if (elapsed_us < 0) elapsed_us = 0;
    fprintf(f, "(%zu %s, %.2f ms)\n", rows, rows == 1 ? "row" : "rows", (double)elapsed_us / 1000.0);
}

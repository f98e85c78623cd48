/* shell/parse.c: bt-shell's command-line syntax (see shell/parse.h).
 *
 * The parser is one pass over the bytes with no backtracking: blanks, ';',
 * newlines and comments between words; inside a word, unquoted bytes,
 * "double-quoted" segments (escapes decoded) and 'single-quoted' segments
 * (literal).  Positions are reported as line and column, where a column
 * counts characters (UTF-8 lead bytes), not bytes, so the caret a user has in
 * mind matches the number printed.
 *
 * sh_escape() is the inverse used for output: a value printed by bt-shell can
 * be pasted back into a command and parses to the same bytes.  Valid UTF-8
 * text stays readable inside the quotes; everything a terminal would act on
 * (C0/C1 controls, invisible format characters, stray bytes) becomes \xNN.
 */
#include "shell/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "shell/text.h"

/* ---- text helpers shared with format.c ------------------------------------ */

size_t sh_utf8_decode(const uint8_t *p, size_t n, uint32_t *cp)
{
    if (n == 0) return 0;
    uint8_t b = p[0];
    if (b < 0x80) { *cp = b; return 1; }
    size_t len;
    uint32_t v, min;
    if (b >= 0xC2 && b <= 0xDF) { len = 2; v = b & 0x1F; min = 0x80; }
    else if (b >= 0xE0 && b <= 0xEF) { len = 3; v = b & 0x0F; min = 0x800; }
    else if (b >= 0xF0 && b <= 0xF4) { len = 4; v = b & 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

/* Non-ASCII code points that are safe and visible to print raw: not C1
 * controls and not invisible format characters (soft hyphen, zero-width and
 * bidi controls, BOM), which would make a pasted value differ from what the
 * user saw. */
static bool printable_cp(uint32_t cp)
{
    if (cp < 0xA0 || cp == 0xAD) return false;
    if (cp >= 0x200B && cp <= 0x200F) return false;
    if (cp >= 0x2028 && cp <= 0x202E) return false;
    if (cp >= 0x2060 && cp <= 0x206F) return false;
    if (cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB)) return false;
    return true;
}

static bool bare_byte(uint8_t c, bool quote_eq)
{
    if (c <= 0x20 || c >= 0x7F) return false;
    switch (c) {
    case '"': case '\'': case '\\': case ';': case '#': return false;
    case '=': return !quote_eq;
    default: return true;
    }
}

int sh_escape_body(const uint8_t *p, size_t n, bt_buf *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        char e[4];
        size_t el = 0;
        if (c >= 0x20 && c < 0x7F) {
            if (c == '"' || c == '\\') e[el++] = '\\';
            e[el++] = (char)c;
        } else if (c == '\n' || c == '\t' || c == '\r') {
            e[el++] = '\\';
            e[el++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
        } else if (c >= 0x80) {
            uint32_t cp;
            size_t l = sh_utf8_decode(p + i, n - i, &cp);
            if (l && printable_cp(cp)) {
                if (bt_buf_append(out, p + i, l)) return BT_ENOMEM;
                i += l;
                continue;
            }
        }
        if (el == 0) { /* a control byte or a byte outside printable UTF-8 */
            e[0] = '\\'; e[1] = 'x'; e[2] = hex[c >> 4]; e[3] = hex[c & 15];
            el = 4;
        }
        if (bt_buf_append(out, e, el)) return BT_ENOMEM;
        i++;
    }
    return BT_OK;
}

int sh_escape(const uint8_t *p, size_t n, bool quote_eq, bt_buf *out)
{
    bool bare = n > 0;
    for (size_t i = 0; i < n && bare; i++) bare = bare_byte(p[i], quote_eq);
    if (bare) return bt_buf_append(out, p, n);
    if (bt_buf_append(out, "\"", 1)) return BT_ENOMEM;
    if (sh_escape_body(p, n, out)) return BT_ENOMEM;
    return bt_buf_append(out, "\"", 1);
}

bool sh_kv(const sh_word *w, const char **key, size_t *kl, const char **val, size_t *vl)
{
    if (!w || w->eq < 0 || (size_t)w->eq >= w->n) return false;
    *key = w->s;
    *kl = (size_t)w->eq;
    *val = w->s + w->eq + 1;
    *vl = w->n - (size_t)w->eq - 1;
    return true;
}

/* ---- the parser ------------------------------------------------------------ */

#define SH_TOKEN_CHARS 40 /* characters of the bad token quoted in an error */

typedef struct parser {
    const uint8_t *p;
    size_t len;
    size_t i;          /* next byte */
    int line;          /* line of p[i] */
    int leads;         /* characters consumed on this line before p[i] */
    char *err;
    size_t errcap;
    sh_cmd *cmds;      /* finished commands */
    size_t ncmds, capcmds;
    sh_word *words;    /* words of the command being read */
    size_t nwords, capwords;
    int cmdline;       /* line of the current command's first word */
    bt_buf word;       /* bytes of the word being read */
} parser;

static int cur_col(const parser *ps) { return ps->leads + 1; }

static void advance(parser *ps)
{
    uint8_t c = ps->p[ps->i++];
    if (c == '\n') { ps->line++; ps->leads = 0; }
    else if ((c & 0xC0) != 0x80) ps->leads++;
}

static bool is_blank(uint8_t c) { return c == ' ' || c == '\t' || c == '\r'; }

/* End of the word that starts at `start`, read leniently (escapes skipped,
 * not checked; an open quote runs to the end of the text), for messages. */
static size_t word_end(const uint8_t *p, size_t len, size_t start)
{
    size_t i = start;
    while (i < len) {
        uint8_t c = p[i];
        if (is_blank(c) || c == '\n' || c == ';') break;
        i++;
        if (c == '"' || c == '\'') {
            while (i < len && p[i] != c) i += (c == '"' && p[i] == '\\') ? 2 : 1;
            i = i < len ? i + 1 : len;
        }
    }
    return i;
}

/* Writes "line L, column C: <what> in <token>" where the token is the word
 * that starts at `start` as typed, quoted and cut to SH_TOKEN_CHARS. */
static int fail(parser *ps, int line, int col, size_t start, const char *what)
{
    size_t end = word_end(ps->p, ps->len, start);
    while (end > start && (ps->p[end - 1] == '\n' || ps->p[end - 1] == '\r')) end--;
    size_t cut = start;
    int chars = 0;
    while (cut < end && chars < SH_TOKEN_CHARS) {
        cut++;
        chars++;
        while (cut < end && (ps->p[cut] & 0xC0) == 0x80) cut++;
    }
    bt_buf tok = {0};
    int rc = sh_escape_body(ps->p + start, cut - start, &tok);
    if (rc == BT_OK) rc = bt_buf_append(&tok, "", 1);
    if (ps->err && ps->errcap) {
        if (rc == BT_OK)
            snprintf(ps->err, ps->errcap, "line %d, column %d: %s in \"%s\"%s", line, col, what,
                     (const char *)tok.data, cut < end ? "..." : "");
        else
            snprintf(ps->err, ps->errcap, "line %d, column %d: %s", line, col, what);
    }
    bt_buf_free(&tok);
    return bt_err(BT_EINVAL, "line %d, column %d: %s", line, col, what);
}

static int oom(parser *ps)
{
    if (ps->err && ps->errcap) snprintf(ps->err, ps->errcap, "out of memory");
    return BT_ENOMEM;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads one escape after a backslash inside double quotes (p[i] is the
 * backslash) and appends the byte it stands for. */
static int read_escape(parser *ps, size_t wstart, int qline, int qcol)
{
    int bline = ps->line, bcol = cur_col(ps);
    advance(ps);
    if (ps->i >= ps->len) return fail(ps, qline, qcol, wstart, "unterminated double quote");
    uint8_t e = ps->p[ps->i], b;
    switch (e) {
    case '\\': b = '\\'; break;
    case '"': b = '"'; break;
    case 'n': b = '\n'; break;
    case 't': b = '\t'; break;
    case 'r': b = '\r'; break;
    case '0': b = 0; break;
    case 'x': {
        int hi = ps->i + 1 < ps->len ? hexval(ps->p[ps->i + 1]) : -1;
        int lo = ps->i + 2 < ps->len ? hexval(ps->p[ps->i + 2]) : -1;
        if (hi < 0 || lo < 0)
            return fail(ps, bline, bcol, wstart, "\\x needs two hex digits (\\xNN)");
        advance(ps);
        advance(ps);
        b = (uint8_t)(hi << 4 | lo);
        break;
    }
    default: {
        char what[96];
        if (e > 0x20 && e < 0x7F)
            snprintf(what, sizeof what, "bad escape \\%c (use \\\\, \\\", \\n, \\t, \\r, \\0 or \\xNN)", e);
        else
            snprintf(what, sizeof what,
                     "bad escape: \\ before byte 0x%02x (use \\\\, \\\", \\n, \\t, \\r, \\0 or \\xNN)", e);
        return fail(ps, bline, bcol, wstart, what);
    }
    }
    advance(ps);
    return bt_buf_append(&ps->word, &b, 1) ? oom(ps) : BT_OK;
}

/* Reads a quoted segment; p[i] is the opening quote. */
static int read_quoted(parser *ps, size_t wstart)
{
    uint8_t q = ps->p[ps->i];
    int qline = ps->line, qcol = cur_col(ps);
    advance(ps);
    for (;;) {
        if (ps->i >= ps->len)
            return fail(ps, qline, qcol, wstart,
                        q == '"' ? "unterminated double quote" : "unterminated single quote");
        uint8_t c = ps->p[ps->i];
        if (c == q) { advance(ps); return BT_OK; }
        if (c == '\\' && q == '"') {
            int rc = read_escape(ps, wstart, qline, qcol);
            if (rc) return rc;
            continue;
        }
        /* a run of literal bytes up to the next quote, backslash or end */
        size_t s = ps->i;
        while (ps->i < ps->len && ps->p[ps->i] != q && !(q == '"' && ps->p[ps->i] == '\\'))
            advance(ps);
        if (bt_buf_append(&ps->word, ps->p + s, ps->i - s)) return oom(ps);
    }
}

static int push_word(parser *ps, int col, long eq)
{
    if (ps->nwords == ps->capwords) {
        size_t cap = ps->capwords ? ps->capwords * 2 : 8;
        sh_word *w = realloc(ps->words, cap * sizeof *w);
        if (!w) return oom(ps);
        ps->words = w;
        ps->capwords = cap;
    }
    size_t n = ps->word.len;
    if (bt_buf_append(&ps->word, "", 1)) return oom(ps);
    ps->words[ps->nwords++] = (sh_word){ .s = (char *)ps->word.data, .n = n, .eq = eq, .col = col };
    ps->word = (bt_buf){0};
    return BT_OK;
}

static int read_word(parser *ps)
{
    size_t start = ps->i;
    int col = cur_col(ps);
    long eq = -1;
    if (ps->nwords == 0) ps->cmdline = ps->line;
    bt_buf_clear(&ps->word);
    while (ps->i < ps->len) {
        uint8_t c = ps->p[ps->i];
        if (is_blank(c) || c == '\n' || c == ';') break;
        if (c == '"' || c == '\'') {
            int rc = read_quoted(ps, start);
            if (rc) return rc;
            continue;
        }
        if (c == '=' && eq < 0) eq = (long)ps->word.len;
        if (bt_buf_append(&ps->word, &c, 1)) return oom(ps);
        advance(ps);
    }
    return push_word(ps, col, eq);
}

/* Moves the words read so far into a command (nothing for an empty one). */
static int end_command(parser *ps)
{
    if (ps->nwords == 0) return BT_OK;
    if (ps->ncmds == ps->capcmds) {
        size_t cap = ps->capcmds ? ps->capcmds * 2 : 4;
        sh_cmd *c = realloc(ps->cmds, cap * sizeof *c);
        if (!c) return oom(ps);
        ps->cmds = c;
        ps->capcmds = cap;
    }
    sh_word *w = ps->words;
    if (ps->nwords < ps->capwords) { /* trim; keep the larger block if this fails */
        sh_word *t = realloc(w, ps->nwords * sizeof *w);
        if (t) w = t;
    }
    ps->cmds[ps->ncmds++] = (sh_cmd){ .w = w, .n = ps->nwords, .line = ps->cmdline };
    ps->words = NULL;
    ps->nwords = ps->capwords = 0;
    return BT_OK;
}

static void free_words(sh_word *w, size_t n)
{
    for (size_t i = 0; i < n; i++) free(w[i].s);
    free(w);
}

void sh_cmds_free(sh_cmd *cmds, size_t n)
{
    if (!cmds) return;
    for (size_t i = 0; i < n; i++) free_words(cmds[i].w, cmds[i].n);
    free(cmds);
}

static int parse_all(parser *ps)
{
    while (ps->i < ps->len) {
        uint8_t c = ps->p[ps->i];
        int rc = BT_OK;
        if (is_blank(c)) {
            advance(ps);
        } else if (c == '\n' || c == ';') {
            rc = end_command(ps);
            advance(ps);
        } else if (c == '#') { /* a comment runs to the end of the line */
            while (ps->i < ps->len && ps->p[ps->i] != '\n') advance(ps);
        } else {
            rc = read_word(ps);
        }
        if (rc) return rc;
    }
    return end_command(ps);
}

int sh_parse(const char *text, size_t len, int line, sh_cmd **cmds, size_t *n, char *err, size_t errcap)
{
    *cmds = NULL;
    *n = 0;
    if (err && errcap) err[0] = '\0';
    if (!text && len) return bt_err(BT_EINVAL, "sh_parse: NULL text");
    parser ps = { .p = (const uint8_t *)text, .len = len, .line = line, .err = err, .errcap = errcap };
    int rc = parse_all(&ps);
    bt_buf_free(&ps.word);
    free_words(ps.words, ps.nwords);
    if (rc) {
        sh_cmds_free(ps.cmds, ps.ncmds);
        return rc;
    }
    *cmds = ps.cmds;
    *n = ps.ncmds;
    return BT_OK;
}

/* ---- durations ------------------------------------------------------------- */

int sh_parse_duration(const char *s, int64_t *us)
{
    static const struct { const char *suffix; int64_t us; } units[] = {
        { "", 1000000 }, { "ms", 1000 }, { "s", 1000000 }, { "m", 60000000 },
        { "h", 3600000000LL }, { "d", 86400000000LL },
    };
    if (!s || *s < '0' || *s > '9') return bt_err(BT_EINVAL, "bad duration \"%s\"", s ? s : "");
    int64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10) return bt_err(BT_EINVAL, "duration \"%s\" is too long", s);
        v = v * 10 + d;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].suffix) != 0) continue;
        if (v > INT64_MAX / units[i].us) return bt_err(BT_EINVAL, "duration \"%s\" is too long", s);
        *us = v * units[i].us;
        return BT_OK;
    }
    return bt_err(BT_EINVAL, "bad duration \"%s\" (use e.g. 250ms, 30s, 5m, 2h, 7d)", s);
}

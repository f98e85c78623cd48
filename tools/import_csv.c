/* tools/import_csv.c: the streaming record reader of bt-import (see
 * import_csv.h for the formats it accepts).
 *
 * The reader keeps one buffer holding at least the current record.  A record
 * is always parsed from its first byte with the whole record in the buffer:
 * when parsing reaches the end of the buffered bytes before the record ends,
 * the buffer is compacted (or grown), refilled, and the record parsed again
 * from its start.  With a 1 MiB buffer that re-parse touches only the few
 * records that straddle a refill, and it keeps the parser a plain loop over
 * contiguous bytes.  Decoded fields (CSV quotes undone, TSV escapes
 * decoded) go to a second buffer; fields that need no decoding point into
 * the input buffer directly. */
#include "tools/import_csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IMP_BUF_INITIAL (1u << 20)
#define IMP_MAX_RECORD_DEFAULT ((size_t)64 << 20)

struct imp_reader {
    imp_format fmt;
    imp_read_fn rd;
    void *arg;
    size_t max_record;
    uint8_t *buf;           /* input bytes: [pos, end) not yet returned */
    size_t cap, pos, end;
    bool eof;
    bool started;           /* BOM check done */
    uint64_t line;          /* number of the line at pos */
    uint64_t base;          /* input offset of buf[0] */
    uint8_t *dec;           /* decoded field bytes */
    size_t dec_cap, dec_len;
    imp_field *fields;
    size_t *foff;           /* while parsing: offset of each field (decoded: | DEC_BIT) */
    size_t n_fields, fields_cap;
    char errbuf[96];
};

#define DEC_BIT ((size_t)1 << (sizeof(size_t) * 8 - 1))

int imp_format_parse(const char *s, imp_format *out)
{
    if (!strcmp(s, "csv")) *out = IMP_CSV;
    else if (!strcmp(s, "tsv")) *out = IMP_TSV;
    else if (!strcmp(s, "jsonl") || !strcmp(s, "json") || !strcmp(s, "ndjson")) *out = IMP_JSONL;
    else return -1;
    return 0;
}

imp_reader *imp_reader_new(imp_format fmt, imp_read_fn rd, void *arg, size_t max_record)
{
    imp_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->fmt = fmt;
    r->rd = rd;
    r->arg = arg;
    r->max_record = max_record ? max_record : IMP_MAX_RECORD_DEFAULT;
    r->cap = IMP_BUF_INITIAL;
    r->buf = malloc(r->cap);
    r->line = 1;
    if (!r->buf) {
        free(r);
        return NULL;
    }
    return r;
}

void imp_reader_free(imp_reader *r)
{
    if (!r) return;
    free(r->buf);
    free(r->dec);
    free(r->fields);
    free(r->foff);
    free(r);
}

uint64_t imp_reader_offset(const imp_reader *r) { return r->base + r->pos; }

/* Moves [pos, end) to the front and reads more (growing the buffer if it is
 * full).  0, or -1 on a read error. */
static int refill(imp_reader *r)
{
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->end - r->pos);
        r->base += r->pos;
        r->end -= r->pos;
        r->pos = 0;
    }
    if (r->end == r->cap) {
        size_t nc = r->cap * 2;
        uint8_t *nb = realloc(r->buf, nc);
        if (!nb) {
            errno = ENOMEM;
            return -1;
        }
        r->buf = nb;
        r->cap = nc;
    }
    for (;;) {
        ssize_t n = r->rd(r->arg, r->buf + r->end, r->cap - r->end);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) r->eof = true;
        r->end += (size_t)n;
        return 0;
    }
}

static int dec_reserve(imp_reader *r, size_t more)
{
    if (r->dec_len + more <= r->dec_cap) return 0;
    size_t nc = r->dec_cap ? r->dec_cap : 4096;
    while (nc < r->dec_len + more) nc *= 2;
    uint8_t *nd = realloc(r->dec, nc);
    if (!nd) return -1;
    r->dec = nd;
    r->dec_cap = nc;
    return 0;
}

static int add_field(imp_reader *r, size_t off, size_t len)
{
    if (r->n_fields == r->fields_cap) {
        size_t nc = r->fields_cap ? 2 * r->fields_cap : 16;
        imp_field *nf = realloc(r->fields, nc * sizeof *nf);
        if (!nf) return -1;
        r->fields = nf;
        size_t *no = realloc(r->foff, nc * sizeof *no);
        if (!no) return -1;
        r->foff = no;
        r->fields_cap = nc;
    }
    r->foff[r->n_fields] = off;
    r->fields[r->n_fields].len = len;
    r->n_fields++;
    return 0;
}

/* Points the fields at their bytes once the record is complete (the
 * buffers may have moved while it was parsed). */
static void fix_fields(imp_reader *r)
{
    for (size_t i = 0; i < r->n_fields; i++) {
        size_t o = r->foff[i];
        r->fields[i].p = (o & DEC_BIT) ? r->dec + (o & ~DEC_BIT) : r->buf + o;
    }
}

/* Parse outcome of one attempt on the buffered bytes. */
enum { P_DONE, P_MORE, P_BAD, P_NOMEM };

/* CSV: parses the record at r->pos.  On P_DONE *stop is the offset of its
 * terminating LF (or end) and *next where the next record starts; *lines the
 * LFs it contains. */
static int parse_csv(imp_reader *r, size_t *stop, size_t *next, uint64_t *lines, const char **why)
{
    const uint8_t *b = r->buf;
    size_t i = r->pos, e = r->end;
    uint64_t nl = 0;
    r->n_fields = 0;
    r->dec_len = 0;
    for (;;) {
        /* one field starting at i */
        if (i < e && b[i] == '"') {
            size_t d0 = r->dec_len;
            i++;
            for (;;) {
                const uint8_t *q = i < e ? memchr(b + i, '"', e - i) : NULL;
                size_t upto = q ? (size_t)(q - b) : e;
                for (size_t k = i; k < upto; k++) nl += b[k] == '\n';
                if (dec_reserve(r, upto - i + 1)) return P_NOMEM;
                memcpy(r->dec + r->dec_len, b + i, upto - i);
                r->dec_len += upto - i;
                if (!q) {
                    if (!r->eof) return P_MORE;
                    *why = "unterminated quoted field";
                    return P_BAD;
                }
                i = upto + 1;
                if (i == e && !r->eof) return P_MORE;
                if (i < e && b[i] == '"') { /* doubled quote */
                    r->dec[r->dec_len++] = '"';
                    i++;
                    continue;
                }
                break;
            }
            if (add_field(r, d0 | DEC_BIT, r->dec_len - d0)) return P_NOMEM;
            /* after the closing quote: separator, end of line or end of input */
            if (i == e) {
                *stop = *next = e;
                *lines = nl;
                return P_DONE;
            }
            if (b[i] == ',') {
                i++;
                continue;
            }
            if (b[i] == '\n' || (b[i] == '\r' && i + 1 < e && b[i + 1] == '\n')) {
                size_t lf = b[i] == '\n' ? i : i + 1;
                *stop = i;
                *next = lf + 1;
                *lines = nl;
                return P_DONE;
            }
            if (b[i] == '\r' && i + 1 == e && !r->eof) return P_MORE;
            if (b[i] == '\r' && i + 1 == e) {
                *stop = i;
                *next = e;
                *lines = nl;
                return P_DONE;
            }
            *why = "unexpected character after a closing quote";
            return P_BAD;
        }
        /* unquoted: up to ',' or LF */
        size_t s = i;
        while (i < e && b[i] != ',' && b[i] != '\n') i++;
        if (i == e && !r->eof) return P_MORE;
        size_t fe = i;
        bool last = i == e || b[i] == '\n';
        if (last && fe > s && b[fe - 1] == '\r') fe--;
        if (add_field(r, s, fe - s)) return P_NOMEM;
        if (!last) {
            i++;
            continue;
        }
        *stop = fe;
        *next = i == e ? e : i + 1;
        *lines = nl;
        return P_DONE;
    }
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* TSV fields of the line [s, fe). */
static int split_tsv(imp_reader *r, size_t s, size_t fe)
{
    const uint8_t *b = r->buf;
    r->n_fields = 0;
    r->dec_len = 0;
    size_t i = s;
    for (;;) {
        const uint8_t *tab = memchr(b + i, '\t', fe - i);
        size_t f_end = tab ? (size_t)(tab - b) : fe;
        if (memchr(b + i, '\\', f_end - i)) {
            size_t d0 = r->dec_len;
            if (dec_reserve(r, f_end - i)) return -1;
            for (size_t k = i; k < f_end; k++) {
                uint8_t c = b[k];
                if (c == '\\' && k + 1 < f_end) {
                    uint8_t x = b[k + 1];
                    int h1, h2;
                    if (x == 't') c = '\t';
                    else if (x == 'n') c = '\n';
                    else if (x == 'r') c = '\r';
                    else if (x == '\\') c = '\\';
                    else if (x == '0') c = 0;
                    else if (x == 'x' && k + 3 < f_end && (h1 = hexval(b[k + 2])) >= 0 &&
                             (h2 = hexval(b[k + 3])) >= 0) {
                        r->dec[r->dec_len++] = (uint8_t)(h1 * 16 + h2);
                        k += 3;
                        continue;
                    } else {
                        r->dec[r->dec_len++] = c; /* unknown escape: kept as is */
                        continue;
                    }
                    r->dec[r->dec_len++] = c;
                    k++;
                    continue;
                }
                r->dec[r->dec_len++] = c;
            }
            if (add_field(r, d0 | DEC_BIT, r->dec_len - d0)) return -1;
        } else if (add_field(r, i, f_end - i)) {
            return -1;
        }
        if (!tab) return 0;
        i = f_end + 1;
    }
}

/* The line at pos: [pos, *stop) without its CR LF; *next after the LF.
 * P_MORE when the buffer holds no full line yet. */
static int frame_line(imp_reader *r, size_t *stop, size_t *next)
{
    const uint8_t *lf = memchr(r->buf + r->pos, '\n', r->end - r->pos);
    if (!lf && !r->eof) return P_MORE;
    size_t e = lf ? (size_t)(lf - r->buf) : r->end;
    *next = lf ? e + 1 : e;
    if (e > r->pos && r->buf[e - 1] == '\r') e--;
    *stop = e;
    return P_DONE;
}

static bool blank(const uint8_t *p, size_t n, bool spaces_too)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' && i + 1 == n) continue;
        if (spaces_too && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r')) continue;
        return false;
    }
    return true;
}

/* Rejects the first physical line at pos as malformed (why) and moves past
 * it; returns 1 with rec filled, 0 if more input is needed to find its end. */
static int reject_first_line(imp_reader *r, imp_record *rec, const char *why)
{
    size_t stop, next;
    if (frame_line(r, &stop, &next) == P_MORE) {
        if (r->end - r->pos < r->max_record) return 0;
        stop = next = r->end; /* a line longer than max_record: cut it here */
    }
    snprintf(r->errbuf, sizeof r->errbuf, "%s", why);
    rec->line = r->line;
    rec->raw = r->buf + r->pos;
    rec->raw_len = stop - r->pos;
    rec->fields = NULL;
    rec->n_fields = 0;
    rec->error = r->errbuf;
    r->pos = next;
    r->line++;
    return 1;
}

int imp_reader_next(imp_reader *r, imp_record *rec)
{
    for (;;) {
        if (!r->started) {
            while (r->end - r->pos < 3 && !r->eof)
                if (refill(r)) return -1;
            if (r->end - r->pos >= 3 && !memcmp(r->buf + r->pos, "\xEF\xBB\xBF", 3)) r->pos += 3;
            r->started = true;
        }
        if (r->pos == r->end) {
            if (r->eof) return 0;
            if (refill(r)) return -1;
            continue;
        }
        size_t stop = 0, next = 0;
        uint64_t lines = 0;
        const char *why = NULL;
        int pr;
        if (r->fmt == IMP_CSV) {
            /* a blank line (LF or CR LF only) is skipped */
            uint8_t c0 = r->buf[r->pos];
            if (c0 == '\n' || (c0 == '\r' && r->pos + 1 < r->end && r->buf[r->pos + 1] == '\n')) {
                r->pos += c0 == '\n' ? 1 : 2;
                r->line++;
                continue;
            }
            pr = parse_csv(r, &stop, &next, &lines, &why);
        } else {
            pr = frame_line(r, &stop, &next);
        }
        if (pr == P_NOMEM) {
            errno = ENOMEM;
            return -1;
        }
        if (pr == P_MORE) {
            if (r->end - r->pos >= r->max_record) {
                char msg[80];
                snprintf(msg, sizeof msg, "record longer than %zu bytes%s", r->max_record,
                         r->fmt == IMP_CSV ? " (an unterminated quote?)" : "");
                int got = reject_first_line(r, rec, msg);
                if (got) return 1;
            }
            if (refill(r)) return -1;
            continue;
        }
        if (pr == P_BAD) {
            int got = reject_first_line(r, rec, why);
            if (got) return 1;
            if (refill(r)) return -1;
            continue;
        }
        /* P_DONE */
        if (r->fmt != IMP_CSV && blank(r->buf + r->pos, stop - r->pos, r->fmt == IMP_JSONL)) {
            r->pos = next;
            r->line++;
            continue;
        }
        if (r->fmt == IMP_TSV && split_tsv(r, r->pos, stop)) {
            errno = ENOMEM;
            return -1;
        }
        if (r->fmt != IMP_JSONL) fix_fields(r);
        rec->line = r->line;
        rec->raw = r->buf + r->pos;
        rec->raw_len = stop - r->pos;
        rec->fields = r->fmt == IMP_JSONL ? NULL : r->fields;
        rec->n_fields = r->fmt == IMP_JSONL ? 0 : r->n_fields;
        rec->error = NULL;
        r->line += 1 + lines;
        r->pos = next;
        return 1;
    }
}

ssize_t imp_mem_read(void *arg, void *buf, size_t n)
{
    imp_mem_src *m = arg;
    if (m->pos < m->len) {
        size_t k = m->len - m->pos < n ? m->len - m->pos : n;
        memcpy(buf, m->data + m->pos, k);
        m->pos += k;
        return (ssize_t)k;
    }
    if (m->fd < 0) return 0;
    return read(m->fd, buf, n);
}

size_t imp_escape(const uint8_t *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    if (!cap) return 0;
    for (size_t i = 0; i < len; i++) {
        char tmp[5];
        size_t k;
        uint8_t c = s[i];
        if (c == '\\') k = (size_t)snprintf(tmp, sizeof tmp, "\\\\");
        else if (c == '\t') k = (size_t)snprintf(tmp, sizeof tmp, "\\t");
        else if (c == '\n') k = (size_t)snprintf(tmp, sizeof tmp, "\\n");
        else if (c == '\r') k = (size_t)snprintf(tmp, sizeof tmp, "\\r");
        else if (c < 0x20 || c == 0x7f) k = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", c);
        else {
            tmp[0] = (char)c;
            k = 1;
        }
        if (o + k + 4 > cap) {
            if (cap >= 4) {
                while (o + 4 > cap) o--;
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        memcpy(out + o, tmp, k);
        o += k;
    }
    out[o] = '\0';
    return o;
}

int imp_escape_write(FILE *f, const uint8_t *s, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != 0x7f && c != '\\') continue;
        if (i > run && fwrite(s + run, 1, i - run, f) != i - run) return -1;
        run = i + 1;
        int w;
        if (c == '\\') w = fputs("\\\\", f);
        else if (c == '\t') w = fputs("\\t", f);
        else if (c == '\n') w = fputs("\\n", f);
        else if (c == '\r') w = fputs("\\r", f);
        else w = fprintf(f, "\\x%02x", c);
        if (w < 0) return -1;
    }
    if (len > run && fwrite(s + run, 1, len - run, f) != len - run) return -1;
    return 0;
}

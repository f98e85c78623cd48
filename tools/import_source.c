/* tools/import_source.c: records to rows (import_source.h). */
#include "tools/import_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/import_jsonl.h"

int imp_source_open(imp_source *s, imp_format fmt, const imp_map *m, imp_read_fn rd, void *arg, size_t max_record,
                    char *err, size_t errcap)
{
    memset(s, 0, sizeof *s);
    s->fmt = fmt;
    s->map = m;
    s->rd = imp_reader_new(fmt, rd, arg, max_record);
    s->vals = calloc(m->n_fields ? m->n_fields : 1, sizeof *s->vals);
    s->idx = calloc(m->n_fields ? m->n_fields : 1, sizeof *s->idx);
    if (!s->rd || !s->vals || !s->idx) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    if (fmt == IMP_JSONL) return 0;
    int rc = imp_reader_next(s->rd, &s->rec);
    if (rc < 0) {
        snprintf(err, errcap, "reading the header: %s", strerror(errno));
        return -1;
    }
    if (rc == 0) return 0; /* empty input */
    if (s->rec.error) {
        snprintf(err, errcap, "the header (line %llu): %s", (unsigned long long)s->rec.line, s->rec.error);
        return -1;
    }
    s->n_header = s->rec.n_fields;
    const uint8_t **names = calloc(s->n_header, sizeof *names);
    size_t *lens = calloc(s->n_header, sizeof *lens);
    if (!names || !lens) {
        free(names);
        free(lens);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < s->n_header; i++) {
        names[i] = s->rec.fields[i].p;
        lens[i] = s->rec.fields[i].len;
    }
    char why[400];
    rc = imp_map_resolve_header(m, names, lens, s->n_header, s->idx, why, sizeof why);
    free(names);
    free(lens);
    if (rc) {
        snprintf(err, errcap, "the header (line %llu): %s", (unsigned long long)s->rec.line, why);
        return -1;
    }
    return 0;
}

void imp_source_close(imp_source *s)
{
    imp_reader_free(s->rd);
    free(s->idx);
    free(s->vals);
    imp_buf_free(&s->scratch);
    imp_row_free(&s->row);
    memset(s, 0, sizeof *s);
}

int imp_source_next(imp_source *s)
{
    int rc = imp_reader_next(s->rd, &s->rec);
    if (rc < 0) return IMP_SRC_ERROR;
    if (rc == 0) return IMP_SRC_END;
    if (s->rec.error) {
        snprintf(s->why, sizeof s->why, "%s", s->rec.error);
        return IMP_SRC_REJECT;
    }
    const imp_map *m = s->map;
    if (s->fmt == IMP_JSONL) {
        if (imp_jsonl_extract(s->rec.raw, s->rec.raw_len, m->fields, m->n_fields, s->vals, &s->scratch, s->why,
                              sizeof s->why))
            return IMP_SRC_REJECT;
    } else {
        if (s->rec.n_fields != s->n_header) {
            snprintf(s->why, sizeof s->why, "%zu fields, the header has %zu", s->rec.n_fields, s->n_header);
            return IMP_SRC_REJECT;
        }
        for (size_t f = 0; f < m->n_fields; f++) {
            const imp_field *x = &s->rec.fields[s->idx[f]];
            s->vals[f] = (imp_value){x->p, x->len, true, false};
        }
    }
    if (imp_map_row(m, s->vals, &s->row, s->why, sizeof s->why)) return IMP_SRC_REJECT;
    return IMP_SRC_ROW;
}

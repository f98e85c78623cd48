/* tools/import_source.h: records to rows for bt-import: a record reader
 * (import_csv.h) of one format, the header of a CSV/TSV input, and the
 * mapping (import_map.h) applied to each record.  Used for the pre-split
 * sample and for the import itself.  Not thread-safe. */
#ifndef BT_TOOLS_IMPORT_SOURCE_H
#define BT_TOOLS_IMPORT_SOURCE_H

#include "tools/import_csv.h"
#include "tools/import_map.h"

typedef struct imp_source {
    imp_format fmt;
    const imp_map *map;
    imp_reader *rd;
    size_t *idx;                /* csv/tsv: record field of each map field */
    size_t n_header;            /* csv/tsv: fields per record */
    imp_value *vals;
    imp_buf scratch;
    imp_row row;
    imp_record rec;             /* the last record */
    char why[512];              /* the last reject's reason */
} imp_source;

/* Outcomes of imp_source_next. */
enum { IMP_SRC_END = 0, IMP_SRC_ROW = 1, IMP_SRC_REJECT = 2, IMP_SRC_ERROR = -1 };

/* Opens a source over rd(arg); for CSV/TSV reads the header and resolves
 * the mapping's fields.  0; -1 with err (a bad header, a field missing from
 * it, a read error); an empty input is fine (no header, no rows). */
int imp_source_open(imp_source *s, imp_format fmt, const imp_map *m, imp_read_fn rd, void *arg, size_t max_record,
                    char *err, size_t errcap);
void imp_source_close(imp_source *s);

/* The next record: IMP_SRC_ROW (s->row built from s->rec), IMP_SRC_REJECT
 * (s->rec with the reason in s->why), IMP_SRC_END, or IMP_SRC_ERROR (a read
 * error, errno set). */
int imp_source_next(imp_source *s);

#endif

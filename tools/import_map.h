/* tools/import_map.h: how bt-import turns a record's fields into a row
 * (docs/import.md, "Mapping").
 *
 *   --row-key F1[,F2...]        the row key: the fields' bytes joined with
 *                               the key separator (--key-sep, default "#")
 *   --columns 'F=fam:qual,...'  one cell per entry: field F's bytes as the
 *                               value of column fam:qual; "F=fam" means
 *                               qualifier F, "F=fam:" the empty qualifier
 *   --timestamp F               the cells' timestamp: field F as decimal
 *                               microseconds (0 .. 2^63-2); otherwise one
 *                               timestamp for the whole import
 *
 * Field names and qualifiers cannot hold ',' or '='; a field may be used by
 * the key and by columns.  The mapping resolves every field it needs to an
 * index 0..n_fields-1; a reader of a format supplies the values in that order
 * (imp_value[]) and imp_map_row() builds the row, or says why the record is
 * rejected.
 *
 * Not thread-safe while being built; read-only afterwards. */
#ifndef BT_TOOLS_IMPORT_MAP_H
#define BT_TOOLS_IMPORT_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMP_MAX_ROW_KEY 4096            /* bt.h: row keys are 1 B to 4 KiB */
#define IMP_MAX_QUALIFIER (16 * 1024)   /* bt.h: qualifiers up to 16 KiB */
#define IMP_MAX_VALUE ((size_t)64 << 20) /* bt.h: values up to 64 MiB */
/* One mutation travels in one RPC frame of at most 16 MiB (bt.h): an online
 * row must fit with room for framing. */
#define IMP_MAX_ONLINE_ROW (((size_t)16 << 20) - 64 * 1024)

/* A growable byte buffer. */
typedef struct imp_buf {
    uint8_t *p;
    size_t len, cap;
} imp_buf;
int imp_buf_reserve(imp_buf *b, size_t more);   /* 0 or -1 (no memory) */
int imp_buf_add(imp_buf *b, const void *p, size_t n);
void imp_buf_free(imp_buf *b);

/* A field's bytes in one record (absent: JSON key missing or null). */
typedef struct imp_value {
    const uint8_t *p;
    size_t len;
    bool present;
    bool nested;                /* jsonl: an object or array (cannot be mapped) */
} imp_value;

typedef struct imp_col {
    char family[65];
    uint8_t *qual;              /* owned */
    size_t qual_len;
    size_t field;               /* index into the mapping's fields */
} imp_col;

typedef struct imp_map {
    char **fields;              /* distinct field names the mapping reads */
    size_t n_fields;
    size_t *key;                /* field indexes of the key parts */
    size_t n_key;
    imp_col *cols;
    size_t n_cols;
    long ts_field;              /* field index of --timestamp, or -1 */
    char *key_sep;
    size_t key_sep_len;
    bool skip_empty;            /* an empty value writes no cell */
    int64_t default_ts;         /* when ts_field < 0 */
    size_t max_row;             /* key + qualifiers + values over it: rejected (0: none) */
} imp_map;

/* A built row; pointers into the record's fields or the map, valid until the
 * next imp_map_row on the same out. */
typedef struct imp_cell {
    const imp_col *col;
    const uint8_t *value;
    size_t value_len;
} imp_cell;

typedef struct imp_row {
    imp_buf key;                /* owned (reused across rows) */
    int64_t ts;
    imp_cell *cells;            /* owned (reused) */
    size_t n_cells, cap_cells;
    size_t bytes;               /* key + qualifiers + values */
} imp_row;

/* Parses the flags into m (zeroed by the caller).  key_sep NULL: "#".
 * 0, or -1 with the reason in err. */
int imp_map_parse(imp_map *m, const char *row_key, const char *columns, const char *ts_field,
                  const char *key_sep, char *err, size_t errcap);
void imp_map_free(imp_map *m);

/* Index of field `name` in m, or -1. */
long imp_map_field(const imp_map *m, const char *name);

/* For CSV/TSV: where each of m's fields is in a record, from the header
 * record's fields.  idx gets m->n_fields entries.  0, or -1 with err (a
 * field missing from the header, or named twice there). */
int imp_map_resolve_header(const imp_map *m, const uint8_t *const *names, const size_t *lens, size_t n,
                           size_t *idx, char *err, size_t errcap);

/* Builds the row of one record from its values (m->n_fields entries).
 * 0, or -1 with the reason (one line, no tabs) in why. */
int imp_map_row(const imp_map *m, const imp_value *vals, imp_row *out, char *why, size_t whycap);
void imp_row_free(imp_row *r);

/* Parses a decimal timestamp in microseconds, 0 .. INT64_MAX-1. */
int imp_parse_ts(const uint8_t *p, size_t n, int64_t *out);

#endif

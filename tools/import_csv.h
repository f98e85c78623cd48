/* tools/import_csv.h: the streaming record reader of bt-import
 * (docs/import.md, "Formats").  One reader frames an input stream into
 * records for the three formats:
 *
 *   csv    RFC 4180: fields separated by ',', records by LF or CRLF; a field
 *          that starts with '"' is quoted: it may hold separators, CR, LF and
 *          doubled quotes ("" for one "); a '"' inside an unquoted field is an
 *          ordinary byte.  Blank lines are skipped.
 *   tsv    one record per line (LF or CRLF), fields separated by TAB, no
 *          quoting; the escapes \t \n \r \\ \0 and \xHH decode to their
 *          byte, any other backslash stays as it is.  Blank lines are skipped.
 *   jsonl  one record per line; the reader only frames lines (blank lines,
 *          also lines of spaces, are skipped); tools/import_jsonl.c parses them.
 *
 * A UTF-8 byte-order mark at the very start is skipped.  Lines are numbered
 * from 1 (the header of a CSV or TSV file is line 1); a record's number is
 * that of its first line, and LFs inside quoted fields count.
 *
 * Malformed records (an unterminated quoted field, a byte other than a
 * separator or end of line after a closing quote, a record over
 * max_record bytes) are returned with `error` set; their `raw` is only their
 * first physical line, and reading resumes at the line after it, so one stray
 * quote costs one line, not the rest of the file.
 *
 * Not thread-safe: one reader per thread. */
#ifndef BT_TOOLS_IMPORT_CSV_H
#define BT_TOOLS_IMPORT_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

typedef enum { IMP_CSV, IMP_TSV, IMP_JSONL } imp_format;

/* Parses "csv", "tsv", "jsonl" (also "json", "ndjson"); 0 or -1. */
int imp_format_parse(const char *s, imp_format *out);

/* Where the reader's bytes come from: read up to n bytes into buf; returns
 * the count, 0 at the end, -1 on error (errno set). */
typedef ssize_t (*imp_read_fn)(void *arg, void *buf, size_t n);

typedef struct imp_field {
    const uint8_t *p;
    size_t len;
} imp_field;

/* One record; every pointer stays valid until the next imp_reader_next. */
typedef struct imp_record {
    uint64_t line;              /* number of its first line */
    const uint8_t *raw;         /* its bytes as read, without the final newline */
    size_t raw_len;
    imp_field *fields;          /* csv/tsv: the decoded fields; jsonl: none */
    size_t n_fields;
    const char *error;          /* NULL, or why the record is malformed */
} imp_record;

typedef struct imp_reader imp_reader;

/* A reader of format fmt over rd(arg).  max_record: the longest record
 * accepted (0: 64 MiB).  NULL when memory runs out. */
imp_reader *imp_reader_new(imp_format fmt, imp_read_fn rd, void *arg, size_t max_record);
void imp_reader_free(imp_reader *r);

/* The next record: 1 and *rec, 0 at the end of the input, -1 when reading
 * failed (errno set). */
int imp_reader_next(imp_reader *r, imp_record *rec);

/* Bytes taken from the source so far that belong to records returned
 * (for progress: position in the input). */
uint64_t imp_reader_offset(const imp_reader *r);

/* A read function over memory, for tests and for replaying a buffered
 * prefix: serves [data, data+len) and then, if fd >= 0, reads fd. */
typedef struct imp_mem_src {
    const uint8_t *data;
    size_t len, pos;
    int fd;
} imp_mem_src;
ssize_t imp_mem_read(void *arg, void *buf, size_t n);

/* Writes s (len bytes) to out as one line-safe field: \\ \t \n \r and bytes
 * < 0x20 or 0x7f as \xHH (\t \n \r by name); at most cap-1 bytes and a NUL,
 * cut with "..." when longer.  Returns the length written. */
size_t imp_escape(const uint8_t *s, size_t len, char *out, size_t cap);
/* The same escaping, uncut, written to f.  0, or -1 on a write error. */
int imp_escape_write(FILE *f, const uint8_t *s, size_t len);

#endif

/* shell/format.h: bt-shell's output: aligned text tables (the default) or
 * JSON (--json).  Cells are byte strings; text output escapes them with
 * sh_escape (so printed values can be pasted back into a command), JSON
 * output writes UTF-8 strings as JSON strings and other bytes as
 * {"b64": "..."}. */
#ifndef BT_SHELL_FORMAT_H
#define BT_SHELL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct sh_table sh_table;

/* A table with ncols columns named by headers (copied). NULL on ENOMEM. */
sh_table *sh_table_new(int ncols, const char *const *headers);
/* Adds a row: cells[i] / lens[i] (lens NULL: NUL-terminated cells); copied. */
int sh_table_add(sh_table *t, const char *const *cells, const size_t *lens);
size_t sh_table_rows(const sh_table *t);
/* Text: header, a rule of '-', rows; columns padded to their widest cell
 * (escaped width); the last column is not padded.  Nothing for 0 columns. */
void sh_table_print(const sh_table *t, FILE *f);
/* JSON: an array of objects keyed by header, one per row, one per line. */
void sh_table_print_json(const sh_table *t, FILE *f);
void sh_table_free(sh_table *t);

/* "(3 rows, 1.24 ms)" style footer: rows and elapsed microseconds. */
void sh_print_footer(FILE *f, size_t rows, int64_t elapsed_us);

#endif

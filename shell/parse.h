/* shell/parse.h: bt-shell's command-line syntax (docs/shell.md).
 *
 * A line holds commands separated by ';' (outside quotes); a command is
 * words separated by blanks; '#' outside quotes starts a comment to the end
 * of the line.  A word is a run of unquoted and quoted segments:
 *     cf:q=value      cf:q="a value with blanks"      "a\x00b"     'raw \ text'
 * Inside double quotes the escapes \\ \" \n \t \r \0 \xNN are decoded (so
 * any byte can be written); single quotes take everything literally.  Words
 * are binary-safe: a decoded word may hold NUL bytes (its length says where
 * it ends; it is also NUL-terminated for convenience).
 *
 * Errors name the line and column and the bad token, e.g.
 *     line 3, column 17: unterminated double quote in "cf:q=\"abc"
 *     line 1, column 9: bad escape \q (use \\, \", \n, \t, \r, \0 or \xNN)
 */
#ifndef BT_SHELL_PARSE_H
#define BT_SHELL_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/coding.h"

typedef struct sh_word {
    char *s;          /* decoded bytes, NUL-terminated (may contain NULs) */
    size_t n;         /* length of s */
    long eq;          /* offset in s of the first '=' that was NOT quoted, or -1 */
    int col;          /* 1-based column of the word's first character */
} sh_word;

typedef struct sh_cmd {
    sh_word *w;       /* w[0] is the command name */
    size_t n;
    int line;         /* line number given to sh_parse */
} sh_cmd;

/* Parses text (len bytes, no need for a NUL) into *cmds (n commands; empty
 * commands and comments are skipped).  On error returns BT_EINVAL, writes the
 * message into err (errcap bytes) and leaves *cmds NULL, *n 0. */
int sh_parse(const char *text, size_t len, int line, sh_cmd **cmds, size_t *n, char *err, size_t errcap);
void sh_cmds_free(sh_cmd *cmds, size_t n);

/* For a word "key=value" whose '=' was unquoted: true, with key and value
 * views into w->s. */
bool sh_kv(const sh_word *w, const char **key, size_t *kl, const char **val, size_t *vl);

/* Appends p[0..n) escaped so that sh_parse reads it back as the same bytes:
 * as is when every byte is a printable ASCII character other than blank,
 * quote, backslash, ';', '#' and '=' (when quote_eq), otherwise in double
 * quotes with \\ \" \n \t \r and \xNN for other non-printable bytes. */
int sh_escape(const uint8_t *p, size_t n, bool quote_eq, bt_buf *out);

/* Durations: "250ms", "30s", "5m", "2h", "7d", or a bare number of seconds.
 * BT_EINVAL on anything else (or overflow). */
int sh_parse_duration(const char *s, int64_t *us);

#endif

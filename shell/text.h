/* shell/text.h: byte-string helpers shared by shell/parse.c and
 * shell/format.c (internal to the shell module, not part of its contract). */
#ifndef BT_SHELL_TEXT_H
#define BT_SHELL_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "common/coding.h"

/* Decodes one strict UTF-8 sequence at p[0..n) (no overlongs, surrogates or
 * code points past U+10FFFF): returns its length (1-4) and sets *cp, or 0 if
 * p does not start a valid sequence. */
size_t sh_utf8_decode(const uint8_t *p, size_t n, uint32_t *cp);

/* Appends the inside of sh_escape's double-quoted form of p[0..n) (no
 * quotes around it): \\ \" \n \t \r, printable UTF-8 as is, \xNN for every
 * other byte.  BT_OK or BT_ENOMEM. */
int sh_escape_body(const uint8_t *p, size_t n, bt_buf *out);

#endif

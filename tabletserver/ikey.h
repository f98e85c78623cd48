/* tabletserver/ikey.h: the internal key, the one encoding of
 * (row, family, qualifier, timestamp desc, sequence desc, type) used in the
 * memtable, the commit log replay and every SSTable (docs/formats.md,
 * "Internal keys").
 *
 * The encoding is chosen so that plain bytewise comparison (memcmp) is the
 * logical order; there is no comparator anywhere else:
 *
 *   ESC(row) ESC(family) ESC(qualifier) TS(8) TAG(8)      cell or cell delete
 *   ESC(row) ESC(family) 00 00          TS(8) TAG(8)      delete-family marker
 *   ESC(row) 00 00                      TS(8) TAG(8)      delete-row marker
 *
 *   ESC(x): x with every 0x00 written as 00 FF, then the terminator 00 01.
 *           Order-preserving and prefix-free: ESC(a) < ESC(b) iff a < b.
 *   00 00 : sorts before any ESC() (which starts with a non-zero byte,
 *           00 FF or 00 01), so markers come first in their row / family.
 *   TS    : big-endian ~(ts ^ 2^63): newer timestamps first.
 *   TAG   : big-endian ~(seq << 8 | type): newer sequence numbers first.
 *
 * Deletion semantics are by sequence number: a marker with sequence S hides
 * the matching cells whose sequence is below S, whatever their timestamps.
 * A cell written after a delete is visible even with an older timestamp.
 */
#ifndef BT_TS_IKEY_H
#define BT_TS_IKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/coding.h"

typedef enum {
    TS_KT_PUT = 1,
    TS_KT_DELETE_CELL = 2,     /* one version (the key's timestamp) */
    TS_KT_DELETE_COLUMN = 3,   /* versions in [from, to) given by the value */
    TS_KT_DELETE_FAMILY = 4,
    TS_KT_DELETE_ROW = 5,
} ts_key_type;

#define TS_MAX_SEQ ((UINT64_C(1) << 56) - 1)
#define TS_IKEY_SUFFIX 16

/* A parsed internal key.  Spans point into the encoded key and are still
 * escaped (compare escaped spans directly; use ts_unescape to get bytes). */
typedef struct ts_ikey {
    const uint8_t *row; size_t row_len;        /* ESC(row) including terminator */
    const uint8_t *family; size_t family_len;  /* ESC(family) incl. terminator; 0 for row markers */
    const uint8_t *qual; size_t qual_len;      /* ESC(qualifier) incl. terminator; 0 for markers */
    int64_t ts;
    uint64_t seq;
    ts_key_type type;
} ts_ikey;

/* Bytes ESC(x) takes. */
size_t ts_esc_len(const uint8_t *x, size_t n);
/* Appends ESC(x). */
int ts_buf_put_esc(bt_buf *b, const uint8_t *x, size_t n);
/* Writes ESC(x) at p (room for ts_esc_len bytes); returns the end. */
uint8_t *ts_put_esc(uint8_t *p, const uint8_t *x, size_t n);
/* Decodes an escaped span (with terminator) into out (room for esc_len bytes);
 * returns the decoded length. */
size_t ts_unescape(const uint8_t *esc, size_t esc_len, uint8_t *out);

/* Encodes a key of any type into b (appending).  family/qualifier are
 * ignored for row markers, qualifier for family markers. */
int ts_ikey_encode(bt_buf *b, const uint8_t *row, size_t row_len,
                   const uint8_t *family, size_t family_len,
                   const uint8_t *qual, size_t qual_len,
                   int64_t ts, uint64_t seq, ts_key_type type);

/* Parses; returns false if the key is malformed. */
bool ts_ikey_parse(const uint8_t *k, size_t n, ts_ikey *out);

/* Like ts_ikey_parse for a key known to start with a row segment of row_len
 * bytes (a key of the row being walked): skips re-scanning the row. */
bool ts_ikey_parse_in_row(const uint8_t *k, size_t n, size_t row_len, ts_ikey *out);

/* The length of the ESC(row) prefix of an encoded key, 0 if malformed. */
size_t ts_ikey_row_prefix(const uint8_t *k, size_t n);

/* Timestamp <-> 8 ordered bytes. */
void ts_put_ts(uint8_t *p, int64_t ts);
int64_t ts_get_ts(const uint8_t *p);

#endif

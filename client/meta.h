/* client/meta.h: what the cluster keeps about itself, in one place (docs/
 * architecture.md, "Finding a tablet"; docs/formats.md, "METADATA").  Used by
 * libbt, bt-master and bt-tabletserver alike.
 *
 * METADATA is a table served like any other.  Each row describes one tablet;
 * its key encodes (table, tablet end row) so that the tablet holding row r
 * of table T is described by the first METADATA row whose key is greater
 * than bt_meta_key(T, r):
 *
 *     key = name 00 01 end     (a bounded end row)
 *     key = name 00 FF         (the table's last tablet, unbounded)
 *
 * where name is the table name, or the empty string for METADATA's own
 * tablets.  Table names never contain 00, so every table's rows are
 * contiguous, METADATA's own rows (starting with 00) sort first, and a
 * bounded end sorts before the unbounded one.
 *
 * METADATA's first tablet, the root tablet, covers the keys [ "", 01 ): the
 * rows describing METADATA's tablets (itself included).  It never splits and
 * /bt/root in the lock service names its location.  METADATA's other
 * tablets cover [ 01, ... ) and describe the user tablets.
 *
 * Cells of a METADATA row, all in family "loc" (one version kept):
 *     loc:id         tablet id, decimal
 *     loc:start      first row of the tablet (raw bytes; absent = "")
 *     loc:dir        its directory, relative to --data-dir
 *     loc:server     "host:port" of the server assigned to it ("" = none)
 *     loc:server_id  that server's id
 *     loc:state      "new" until a server first creates it, then "ok"
 */
#ifndef BT_CLIENT_META_H
#define BT_CLIENT_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/coding.h"
#include "tabletserver/tablet.h"

#define BT_META_NAME        "METADATA"
#define BT_META_FAMILY      "loc"
#define BT_META_ROOT_END    "\x01"      /* the root tablet is [ "", 01 ) */
#define BT_META_ROOT_END_LEN 1

/* Lock-service paths (design section 5). */
#define BT_LK_MASTER        "/bt/master"
#define BT_LK_ROOT          "/bt/root"
#define BT_LK_SERVERS       "/bt/servers"
#define BT_LK_SCHEMA        "/bt/schema"

/* True if name is a valid table or family name: [A-Za-z0-9_.-]{1,64}. */
bool bt_valid_name(const char *name, size_t len);

/* Appends to out the METADATA key of (table, end); end_len 0 = unbounded.
 * table "METADATA" maps to the empty name. */
int bt_meta_key(bt_buf *out, const char *table, size_t table_len, const uint8_t *end, size_t end_len);

/* Appends the key a lookup of row `row` of `table` starts after: the tablet
 * holding the row is described by the first METADATA row with a key
 * strictly greater than this one. */
int bt_meta_lookup_key(bt_buf *out, const char *table, size_t table_len, const uint8_t *row, size_t row_len);

/* Parses a METADATA key.  *table points into k ("METADATA" for the empty
 * name, then *table_len is 8 and *table a static string); *end into k
 * (end_len 0 = unbounded).  BT_ECORRUPT if malformed. */
int bt_meta_key_parse(const uint8_t *k, size_t n, const char **table, size_t *table_len,
                      const uint8_t **end, size_t *end_len);

/* One METADATA row, decoded (owns its memory). */
typedef struct bt_meta_entry {
    char table[TS_MAX_NAME + 1];
    uint64_t id;
    bt_buf start, end;          /* end.len 0 = unbounded */
    char *dir;                  /* relative to --data-dir */
    char *server;               /* "" while unassigned */
    char *server_id;            /* "" while unassigned */
    bool is_new;                /* loc:state "new": never created on disk yet */
} bt_meta_entry;

/* Decodes a row (key and cells) into *e (zeroed first).  BT_ECORRUPT with a
 * detail if a cell is missing or malformed. */
int bt_meta_entry_decode(const ts_row *row, bt_meta_entry *e);
void bt_meta_entry_free(bt_meta_entry *e);
int bt_meta_entry_copy(bt_meta_entry *dst, const bt_meta_entry *src);
/* True if row lies in [e->start, e->end). */
bool bt_meta_entry_contains(const bt_meta_entry *e, const uint8_t *row, size_t n);

/* The mutations that write e as a METADATA row: its key goes to *key, and
 * muts (at least BT_META_MAX_MUTS entries) point into e and into *scratch,
 * which must stay alive while they are used.  Returns the number of
 * mutations (> 0) or a negative code. */
#define BT_META_MAX_MUTS 8
int bt_meta_entry_mutations(const bt_meta_entry *e, bt_buf *key, bt_buf *scratch, ts_mutation *muts);

/* The schema of METADATA (family "loc", one version, in memory). */
void bt_meta_schema(ts_schema *s);

/* ---- /bt/root: JSON {"id":"N","dir":"..","server":"h:p","server_id":".."} */
int bt_root_encode(const bt_meta_entry *root, char **json);              /* free() it */
/* Fills id, dir, server, server_id (and table "METADATA", start "", end 01). */
int bt_root_decode(const uint8_t *data, size_t n, bt_meta_entry *root);

/* ---- /bt/schema/<table>: JSON
 *   {"name":"t","families":{"cf":{"max_versions":3,"max_age_us":0,
 *    "gc":"union"|"intersection","group":"default"}},
 *    "groups":{"default":{"compression":"snappy"|"none","in_memory":false,
 *    "bloom":"row"|"row_column"|"none","block_size":4096}}}
 * Families and groups keep their order.  The decoder validates the result
 * (BT_EINVAL with a detail). */
int bt_schema_to_json(const char *table, const ts_schema *s, char **json); /* free() it */
int bt_schema_from_json(const uint8_t *data, size_t n, ts_schema *s);

/* ---- /bt/servers/<id>: "host:port\n<log dir relative to --data-dir>\n" */
int bt_server_file_encode(const char *addr, const char *log_dir, char **out); /* free() it */
/* Copies the two lines out (log_dir may be "" for an old-style file). */
int bt_server_file_parse(const uint8_t *data, size_t n, char *addr, size_t addr_cap, char *log_dir,
                         size_t log_cap);

/* ---- ids and directories ---------------------------------------------------- */
/* A random, non-zero 63-bit tablet id (getrandom). */
uint64_t bt_new_tablet_id(void);
/* "tables/<table>/<id as 16 hex digits>" into buf (at least 128 bytes). */
void bt_tablet_dir(char *buf, size_t cap, const char *table, uint64_t id);

#endif

/* tabletserver/ts_proto.h: the tablet server's RPC methods and the encoding
 * of their payloads (docs/protocol.md, "Tablet server methods").
 *
 * One module used by both sides: bt-tabletserver decodes requests and encodes
 * answers with it, the client layer (client/) and the tools do the reverse.
 * Payloads are sequences of positional fields written with bt_msg_writer and
 * read with bt_msg_reader (common/rpc_codec.h): varints, fixed64s and
 * varint-length-prefixed bytes.  Signed 64-bit integers (timestamps) travel as
 * fixed64 two's complement.
 *
 * Decoders are zero-copy: pointers in what they fill point into the reader's
 * input, which the caller keeps alive while they are used.  Arrays a decoder
 * allocates are named in its comment with the call that frees them.  Every
 * decoder returns BT_OK, BT_ECORRUPT (truncated or malformed field, detail in
 * bt_errmsg()), BT_EINVAL (well-formed but out of range, e.g. an unknown
 * mutation type or a bad schema; detail in bt_errmsg()) or BT_ENOMEM, and
 * leaves nothing allocated on failure.  Encoders append to the writer and
 * leave errors (BT_ENOMEM) sticky in it.
 */
#ifndef BT_TS_PROTO_H
#define BT_TS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rpc_codec.h"
#include "tabletserver/tablet.h"

/* ---- method numbers (100-199: the tablet server) ---------------------------
 * Request and response payloads, field by field ("-" = empty payload).
 * "tablet" is a tsp_tablet, "schema" a ts_schema, "muts" a mutation list,
 * "filter" a ts_read_options, "row" a ts_row, "seqr" the master's sequencer. */
enum {
    TSP_STATUS = 100,          /* -  ->  tsp_status */
    TSP_LOAD_TABLET = 101,     /* seqr, tablet, schema, varint flags (TSP_LOAD_*)
                                  ->  load answer (tsp_load_answer) */
    TSP_UNLOAD_TABLET = 102,   /* seqr, varint tablet_id  ->  - (flushes first) */
    TSP_LIST_TABLETS = 103,    /* -  ->  varint n, n x tsp_tablet_info */
    TSP_MUTATE_ROW = 104,      /* varint tablet_id, bytes row, muts  ->  - */
    TSP_MUTATE_ROWS = 105,     /* varint n, n x (varint tablet_id, bytes row, muts)
                                  ->  varint n, n x varint status (-code, 0 = OK),
                                      bytes detail of the first failure */
    TSP_READ_ROW = 106,        /* varint tablet_id, bytes row, filter  ->  row
                                  (status BT_ENOTFOUND when no cell matches) */
    TSP_SCAN_OPEN = 107,       /* varint tablet_id, filter, varint max_rows,
                                  varint max_bytes  ->  scan batch */
    TSP_SCAN_NEXT = 108,       /* varint scanner_id  ->  scan batch */
    TSP_SCAN_CLOSE = 109,      /* varint scanner_id  ->  - */
    TSP_CHECK_AND_MUTATE = 110,/* varint tablet_id, bytes row, filter (the
                                  predicate: true if any cell passes it),
                                  muts if true, muts if false  ->  varint matched */
    TSP_READ_MODIFY_WRITE = 111,/* varint tablet_id, bytes row, rmw rules  ->  row
                                  (the new cells) */
    TSP_FLUSH = 112,           /* varint tablet_id  ->  - */
    TSP_COMPACT = 113,         /* varint tablet_id  ->  - */
    TSP_SPLIT = 114,           /* seqr, varint tablet_id, bytes mid (empty: the
                                  server picks), varint left_id, bytes left_dir,
                                  varint right_id, bytes right_dir  ->  bytes mid */
    TSP_BULK_PREPARE = 115,    /* varint tablet_id  ->  bytes dir (absolute, on the server) */
    TSP_BULK_ATTACH = 116,     /* varint tablet_id, fixed64 load_id, varint n,
                                  n x (bytes name, varint group)  ->  varint seq */
};

/* Name of a method ("mutate_row"), or NULL if it is not a tablet server method. */
const char *tsp_method_name(uint16_t method);

/* TSP_LOAD_TABLET flags */
enum {
    TSP_LOAD_CREATE = 1,       /* create the tablet if its directory has no manifest */
};

/* Limits the server applies to scan batches. */
#define TSP_SCAN_DEFAULT_ROWS   1000
#define TSP_SCAN_DEFAULT_BYTES  (1u << 20)
#define TSP_SCAN_MAX_BYTES      (8u << 20)

/* ---- tablets ------------------------------------------------------------------
 * bytes table, bytes dir, varint id, bytes start, bytes end.
 * dir is relative to the server's --data-dir ("tables/users/t17"): no leading
 * '/', no "." or ".." component, no empty component, no NUL byte, at most
 * TSP_MAX_DIR bytes.  end empty = to the end. */
#define TSP_MAX_DIR 1024
typedef struct tsp_tablet {
    uint64_t id;
    const char *table; size_t table_len;
    const char *dir; size_t dir_len;
    const uint8_t *start; size_t start_len;
    const uint8_t *end; size_t end_len;
} tsp_tablet;

void tsp_put_tablet(bt_msg_writer *w, const tsp_tablet *t);
/* True if d (n bytes) follows the dir rule above. */
bool tsp_valid_dir(const char *d, size_t n);
/* Checks the table name (design section 3) and the dir rule above. */
int tsp_get_tablet(bt_msg_reader *r, tsp_tablet *t);

/* TSP_LIST_TABLETS entries: tablet, varint memtable_bytes, varint
 * sstable_bytes, varint n_sstables, varint last_seq. */
typedef struct tsp_tablet_info {
    tsp_tablet tablet;
    uint64_t memtable_bytes, sstable_bytes, n_sstables, last_seq;
} tsp_tablet_info;
void tsp_put_tablet_info(bt_msg_writer *w, const tsp_tablet_info *ti);
int tsp_get_tablet_info(bt_msg_reader *r, tsp_tablet_info *ti);

/* ---- TSP_LOAD_TABLET answer ----------------------------------------------------
 * varint state; for TSP_LOAD_STATE_SPLIT then bytes mid, tablet left, tablet
 * right.  STATE_SPLIT: the directory holds a split marker (the tablet was
 * split, maybe before METADATA learnt of it): nothing was loaded, and left
 * [start, mid) and right [mid, end) are its children (table = the
 * parent's, dirs relative to --data-dir), for the master to record and
 * load.  An empty payload (a server from before this field) reads as
 * STATE_LOADED. */
enum {
    TSP_LOAD_STATE_LOADED = 0,
    TSP_LOAD_STATE_SPLIT = 1,
};
typedef struct tsp_load_answer {
    uint64_t state;
    const uint8_t *mid; size_t mid_len;     /* STATE_SPLIT only */
    tsp_tablet left, right;                 /* STATE_SPLIT only */
} tsp_load_answer;
void tsp_put_load_answer(bt_msg_writer *w, const tsp_load_answer *a);
/* Checks the state (BT_EINVAL if unknown) and the children as
 * tsp_get_tablet does; trailing fields it does not know are ignored. */
int tsp_get_load_answer(bt_msg_reader *r, tsp_load_answer *a);

/* ---- a split done by a tablet server (ts_server_options.commit_split) --------
 * Not a wire message: what the server hands to its split-commit hook.  The
 * children's dirs are relative to --data-dir; table is the parent's (and the
 * children's) table; left is [parent start, mid), right [mid, parent end). */
typedef struct tsp_split_info {
    uint64_t parent_id;
    const char *table; size_t table_len;
    const char *parent_dir; size_t parent_dir_len;
    const uint8_t *mid; size_t mid_len;
    tsp_tablet left, right;
} tsp_split_info;

/* ---- schema -------------------------------------------------------------------
 * varint n_groups, n x (bytes name, varint flags [1 compress, 2 in_memory],
 * varint bloom, varint block_size), varint n_families, n x (bytes name,
 * varint max_versions, fixed64 max_age_us, varint gc_intersection,
 * varint group).  The decoder fills *s (a copy) and validates it with
 * ts_schema_validate (BT_EINVAL). */
void tsp_put_schema(bt_msg_writer *w, const ts_schema *s);
int tsp_get_schema(bt_msg_reader *r, ts_schema *s);

/* ---- mutations ----------------------------------------------------------------
 * varint n, n x (varint type, bytes family, bytes qualifier, fixed64
 * timestamp, fixed64 ts_from, fixed64 ts_to, bytes value).
 * The decoder allocates *muts (free() it; NULL when n is 0) and checks the
 * type and that n is at most TSP_MAX_MUTATIONS; everything else is checked
 * by the tablet. */
#define TSP_MAX_MUTATIONS 100000
void tsp_put_mutations(bt_msg_writer *w, const ts_mutation *m, int n);
int tsp_get_mutations(bt_msg_reader *r, ts_mutation **muts, int *n);

/* ---- filters (ts_read_options) --------------------------------------------------
 * varint flags [1 strip_value, 2 has_value_range], bytes start_row, bytes
 * end_row, bytes prefix, varint n_columns, n x (bytes family, varint
 * has_qualifier, bytes qualifier), bytes range_family, bytes qual_from, bytes
 * qual_to, fixed64 ts_from, fixed64 ts_to, bytes value_from, bytes value_to,
 * varint versions, varint cells_per_row, varint row_limit.
 * opts NULL encodes the empty filter.  The decoder allocates *cols for the
 * column list (free() it; NULL when there is none) and points o->columns at
 * it; at most TSP_MAX_COLUMNS columns. */
#define TSP_MAX_COLUMNS 4096
void tsp_put_filter(bt_msg_writer *w, const ts_read_options *o);
int tsp_get_filter(bt_msg_reader *r, ts_read_options *o, ts_column_ref **cols);

/* ---- rows -------------------------------------------------------------------------
 * bytes key, varint n_cells, n x (bytes family, bytes qualifier, fixed64
 * timestamp, bytes value).  The decoder allocates the cell array
 * (tsp_row_release frees it). */
void tsp_put_row(bt_msg_writer *w, const ts_row *row);
int tsp_get_row(bt_msg_reader *r, ts_row *row);
void tsp_row_release(ts_row *row);

/* ---- scan batches ---------------------------------------------------------------
 * varint scanner_id (0 once the scan is over and the scanner freed), varint
 * done (1: no more rows), then rows up to the end of the payload.  A server
 * writes the header with tsp_put_scan_header and appends rows with
 * tsp_put_row; a client reads the header, then rows while
 * bt_msg_remaining(r) > 0. */
void tsp_put_scan_header(bt_msg_writer *w, uint64_t scanner_id, bool done);
int tsp_get_scan_header(bt_msg_reader *r, uint64_t *scanner_id, bool *done);

/* ---- read-modify-write ------------------------------------------------------------
 * varint n, n x (bytes family, bytes qualifier, varint kind, bytes
 * append_value, fixed64 increment).  An increment treats the newest value of
 * the column as a big-endian int64 (absent: 0); an append concatenates to it
 * (absent: empty).  The decoder allocates *rules (free() it); at most
 * TSP_MAX_MUTATIONS rules, at least one. */
typedef enum { TSP_RMW_APPEND = 0, TSP_RMW_INCREMENT = 1 } tsp_rmw_kind;
typedef struct tsp_rmw_rule {
    const char *family; size_t family_len;
    const uint8_t *qualifier; size_t qualifier_len;
    tsp_rmw_kind kind;
    const uint8_t *append; size_t append_len;   /* TSP_RMW_APPEND */
    int64_t increment;                          /* TSP_RMW_INCREMENT */
} tsp_rmw_rule;
void tsp_put_rmw_rules(bt_msg_writer *w, const tsp_rmw_rule *rules, int n);
int tsp_get_rmw_rules(bt_msg_reader *r, tsp_rmw_rule **rules, int *n);

/* ---- batch results (TSP_MUTATE_ROWS answer) ------------------------------------
 * varint n, n x varint (-status), bytes detail.  The decoder allocates
 * *status (free() it) with BT_OK or a negative BT_E* code per entry. */
void tsp_put_batch_result(bt_msg_writer *w, const int *status, size_t n, const char *detail);
int tsp_get_batch_result(bt_msg_reader *r, int **status, size_t *n, const uint8_t **detail,
                         size_t *detail_len);

/* ---- server status (TSP_STATUS answer) ---------------------------------------------
 * bytes id, bytes address, fixed64 start_time_us (wall clock), varint
 * n_tablets, varint memtable_bytes, varint sstable_bytes, varint reads,
 * varint writes, varint scanned_rows, varint log_appends, varint log_syncs,
 * varint connections, varint durability, varint lease_ms_left, varint
 * open_scanners, varint compaction_queue.  Counters count since the server started. */
typedef struct tsp_status {
    const char *id; size_t id_len;
    const char *address; size_t address_len;
    int64_t start_time_us;
    uint64_t n_tablets, memtable_bytes, sstable_bytes;
    uint64_t reads, writes, scanned_rows;
    uint64_t log_appends, log_syncs;
    uint64_t connections;
    uint64_t durability;        /* ts_durability */
    uint64_t lease_ms_left;     /* by the server's conservative clock; 0: not serving */
    uint64_t open_scanners;
    uint64_t compaction_queue;  /* tablets with compaction work queued or running */
} tsp_status;
void tsp_put_status(bt_msg_writer *w, const tsp_status *s);
int tsp_get_status(bt_msg_reader *r, tsp_status *s);

#endif

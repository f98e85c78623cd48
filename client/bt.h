/* bt.h: libbt, the C client SDK of bigtable-c.
 *
 * Build against the installed library with
 *     cc prog.c $(pkg-config --cflags --libs bt)
 * and include it as <bt/bt.h>.
 *
 * Conventions (the same for every call):
 *   - Errors: every fallible function returns int, BT_OK (0) or a negative
 *     BT_E* code (bt_status.h); bt_errmsg() then gives a detail for the
 *     calling thread ("table \"users\" has no family \"cf9\"").  Functions
 *     that create an object return NULL only when memory runs out.
 *   - Ownership: whatever a bt_*_new/bt_*_open/bt_connect call creates, the
 *     caller frees with the matching bt_*_free/bt_*_close.  Results returned
 *     through an out-pointer (bt_row, bt_table_desc, name lists, status) are
 *     owned by the caller and freed with the function named in their comment.
 *     Pointers inside a result stay valid until that result is freed.  Input
 *     buffers are copied or only read during the call; the caller keeps
 *     ownership.
 *   - Names: table and family names are 1-64 bytes of [A-Za-z0-9_.-].  Row
 *     keys are 1 byte to 4 KiB of arbitrary bytes, qualifiers 0 to 16 KiB.
 *     The engine stores values up to 64 MiB, but one request travels in one
 *     RPC frame of at most 16 MiB (docs/protocol.md, "Size cap"), so a
 *     mutation (or batch chunk) over that is refused with BT_ETOOBIG and a
 *     message saying so.  Timestamps are int64 microseconds since the
 *     epoch; BT_SERVER_TIME lets the tablet server assign the time.
 *   - Thread-safety: a bt_client and its bt_table handles may be used from any
 *     number of threads at once.  A bt_mutation, bt_filter, bt_rmw,
 *     bt_schema or bt_scanner is used by one thread at a time.
 *   - Retries: calls find tablets through the location cache and follow
 *     moves, splits and server failures transparently (re-resolving stale
 *     locations and retrying with backoff) until the client's deadline
 *     (bt_client_options.timeout_ms) passes, then fail with BT_ETIMEDOUT or
 *     BT_EUNAVAIL.  Writes are retried too: a row mutation applied twice has
 *     the same effect as once unless it uses BT_SERVER_TIME timestamps
 *     (then the cell may be written with two timestamps) or is a
 *     read-modify-write (never retried after it may have been applied;
 *     it fails with BT_EUNAVAIL instead).
 */
#ifndef BT_BT_H
#define BT_BT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bt_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Timestamp meaning "let the tablet server assign it". */
#define BT_SERVER_TIME INT64_MIN

/* The name of the METADATA table (readable like any table; written only by
 * the master and by tablet servers). */
#define BT_METADATA_TABLE "METADATA"

/* ==== clients ============================================================= */

typedef struct bt_client bt_client;

/* Zero-initialise and set what differs from the defaults. */
typedef struct bt_client_options {
    int timeout_ms;         /* deadline of one call, retries included; 0 -> 30000 */
    int rpc_timeout_ms;     /* one attempt of one RPC; 0 -> 10000 */
    int conns_per_server;   /* TCP connections per tablet server; 0 -> 2 */
    int prefetch_rows;      /* METADATA rows fetched per location lookup; 0 -> 16 */
    int max_parallel;       /* tablet servers a batch or scan talks to at once; 0 -> 16 */
    bool thread_connections;/* each calling thread gets its own blocking connection
                               per tablet server for its single calls (reads,
                               writes, scans; not batches): no hand-off to the
                               client's network threads, two thread switches
                               fewer per call.  For programs that call from a
                               fixed set of long-lived threads, one call at a
                               time each (bt-gateway).  Costs one connection per
                               thread and server. */
} bt_client_options;

/* Connects to a cluster through its lock service: "bt://host:port" (bt-lockd)
 * or "etcd://host:port[,host:port...]".  o may be NULL.  Opens a lock-service
 * session; makes no other call until the first operation.  Errors:
 * BT_EINVAL (bad URL or option), BT_EUNAVAIL (lock service unreachable). */
int bt_connect(const char *lock_url, const bt_client_options *o, bt_client **out);

/* Closes every connection and frees the client.  Every table handle and
 * scanner of the client must be closed first.  NULL is a no-op. */
void bt_close(bt_client *c);

/* Counters since bt_connect (for tools and tests). */
typedef struct bt_client_stats {
    uint64_t lookups;         /* location lookups that went to the network */
    uint64_t lookup_rpcs;     /* round trips those lookups made: lock-service
                                 reads of /bt/root, root and METADATA tablet reads */
    uint64_t cache_hits;      /* locations found in the cache */
    uint64_t rpcs;            /* every RPC sent to a tablet server or the master */
    uint64_t retries;         /* operations retried after NOT_SERVING, a dead
                                 server or a timeout */
} bt_client_stats;
void bt_client_get_stats(bt_client *c, bt_client_stats *out);

/* Forgets every cached location (the next call on each tablet resolves it
 * again from the lock service).  For tests and tools. */
void bt_client_clear_cache(bt_client *c);

/* ==== tables ============================================================== */

typedef struct bt_table bt_table;

/* Opens a handle on an existing table: BT_ENOTFOUND if there is no such
 * table, BT_EINVAL for a bad name.  The handle caches the schema, so unknown
 * families are refused before anything is sent (a family added later is
 * picked up: the handle re-reads the schema once before refusing). */
int bt_table_open(bt_client *c, const char *name, bt_table **out);
void bt_table_close(bt_table *t);
const char *bt_table_name(const bt_table *t);

/* ==== mutations =========================================================== */

/* The changes to one row, applied atomically: readers see all or none. */
typedef struct bt_mutation bt_mutation;

/* A new, empty mutation of row `row` (copied). */
bt_mutation *bt_mutation_new(const void *row, size_t row_len);
void bt_mutation_free(bt_mutation *m);
/* Drops the changes (keeps the row). */
void bt_mutation_clear(bt_mutation *m);
/* Number of changes. */
size_t bt_mutation_len(const bt_mutation *m);

/* Each call appends one change (arguments are copied).  BT_EINVAL for a bad
 * name or timestamp, BT_ETOOBIG over a size limit; the mutation is then
 * unchanged. */
int bt_mutation_set(bt_mutation *m, const char *family, const void *qualifier, size_t qualifier_len,
                    int64_t timestamp, const void *value, size_t value_len);
/* Deletes the column's versions with timestamps in [ts_from, ts_to); ts_to 0
 * means no upper bound, so (0, 0) deletes every version. */
int bt_mutation_delete_cells(bt_mutation *m, const char *family, const void *qualifier,
                             size_t qualifier_len, int64_t ts_from, int64_t ts_to);
int bt_mutation_delete_family(bt_mutation *m, const char *family);
int bt_mutation_delete_row(bt_mutation *m);

/* Applies one row's mutation atomically; returns once it is durable as the
 * tablet server's durability mode promises.  Errors: BT_ENOTFOUND (unknown
 * family), BT_EINVAL (empty mutation, bad row), BT_ETOOBIG, BT_ETIMEDOUT,
 * BT_EUNAVAIL. */
int bt_apply(bt_table *t, const bt_mutation *m);

/* Applies n row mutations, grouped by tablet server and sent to the servers
 * in parallel (each row atomic, the batch as a whole not).  status (n
 * entries, may be NULL) receives each row's result.  Returns BT_OK if every
 * row was applied, else the first failing row's code. */
int bt_apply_batch(bt_table *t, bt_mutation *const *muts, size_t n, int *status);

/* ==== filters =============================================================
 * A filter restricts which cells a read returns.  Every restriction set on a
 * filter must hold (a chain); the columns added with bt_filter_family and
 * bt_filter_column form one set of which any may match (an interleave). */
typedef struct bt_filter bt_filter;

bt_filter *bt_filter_new(void);
void bt_filter_free(bt_filter *f);
/* Cells of this family (any qualifier). */
int bt_filter_family(bt_filter *f, const char *family);
/* Cells of this column. */
int bt_filter_column(bt_filter *f, const char *family, const void *qualifier, size_t qualifier_len);
/* Cells of `family` with qualifiers in [from, to); to_len 0: unbounded. */
int bt_filter_column_range(bt_filter *f, const char *family, const void *from, size_t from_len,
                           const void *to, size_t to_len);
/* Cells with timestamps in [from, to); to 0: unbounded. */
int bt_filter_timestamp_range(bt_filter *f, int64_t from, int64_t to);
/* Values in [from, to) bytewise; to_len 0: unbounded. */
int bt_filter_value_range(bt_filter *f, const void *from, size_t from_len, const void *to, size_t to_len);
/* The newest n versions of each column (n >= 1). */
int bt_filter_versions(bt_filter *f, uint32_t n);
/* At most n cells per row (n >= 1). */
int bt_filter_cells_per_row(bt_filter *f, uint32_t n);
/* Return cells with empty values (keys and timestamps only). */
int bt_filter_strip_value(bt_filter *f);

/* ==== reads =============================================================== */

typedef struct bt_cell {
    const char *family; size_t family_len;
    const uint8_t *qualifier; size_t qualifier_len;
    int64_t timestamp;
    const uint8_t *value; size_t value_len;
} bt_cell;

/* One row: cells in (family, qualifier, newest first) order. */
typedef struct bt_row {
    const uint8_t *key; size_t key_len;
    const bt_cell *cells; size_t n_cells;
} bt_row;

/* Reads one row (filter may be NULL).  On BT_OK *out is the row; free it
 * with bt_row_free.  BT_ENOTFOUND when no cell of the row passes the filter. */
int bt_read_row(bt_table *t, const void *row, size_t row_len, const bt_filter *f, bt_row **out);
void bt_row_free(bt_row *r);

/* ==== scans ===============================================================
 * Scanners stream rows in key order, fetching batches from one tablet at a
 * time and following tablet boundaries (a tablet that splits or moves during
 * the scan is re-resolved; every row is returned exactly once). */
typedef struct bt_scanner bt_scanner;

typedef struct bt_scan_options {
    const void *start; size_t start_len;    /* first row (inclusive); len 0: the first row */
    const void *end; size_t end_len;        /* last row (exclusive); len 0: to the end */
    const void *prefix; size_t prefix_len;  /* only rows starting with it (narrows start/end) */
    const bt_filter *filter;                /* NULL: every cell */
    uint64_t limit;                         /* rows in all; 0: no limit */
    uint32_t batch_rows;                    /* rows per round trip; 0 -> 1000 */
    uint32_t batch_bytes;                   /* bytes per round trip; 0 -> 1 MiB */
} bt_scan_options;

/* Opens a scanner over a range (o may be NULL: the whole table).  Nothing is
 * read before the first bt_scanner_next. */
int bt_scan_open(bt_table *t, const bt_scan_options *o, bt_scanner **out);

/* A row key, for row-set scans. */
typedef struct bt_key {
    const void *data; size_t len;
} bt_key;

/* Opens a scanner over a set of rows (any order, duplicates allowed); rows
 * come back in key order, once each, absent ones skipped. */
int bt_scan_rows(bt_table *t, const bt_key *rows, size_t n, const bt_filter *f, bt_scanner **out);

/* BT_OK and *row (owned by the scanner, valid until the next call or
 * bt_scanner_close); BT_ENOTFOUND at the end; another code on error (the
 * scanner can then only be closed). */
int bt_scanner_next(bt_scanner *s, const bt_row **row);
void bt_scanner_close(bt_scanner *s);

/* ==== conditional and atomic updates ====================================== */

/* Atomically: if any cell of `row` passes `predicate` (NULL: the row has any
 * cell), applies if_true, else if_false (either may be NULL: nothing).  The
 * mutations' own row keys are ignored.  *matched (may be NULL) says which. */
int bt_check_and_mutate(bt_table *t, const void *row, size_t row_len, const bt_filter *predicate,
                        const bt_mutation *if_true, const bt_mutation *if_false, bool *matched);

/* Read-modify-write rules for one row. */
typedef struct bt_rmw bt_rmw;
bt_rmw *bt_rmw_new(void);
void bt_rmw_free(bt_rmw *r);
/* Appends bytes to the newest value of the column (absent: empty). */
int bt_rmw_append(bt_rmw *r, const char *family, const void *qualifier, size_t qualifier_len,
                  const void *value, size_t value_len);
/* Adds delta to the newest value of the column read as a big-endian int64
 * (absent: 0; a value that is not 8 bytes: BT_EFAILED_PRECONDITION). */
int bt_rmw_increment(bt_rmw *r, const char *family, const void *qualifier, size_t qualifier_len,
                     int64_t delta);

/* Applies the rules atomically; *out (may be NULL) receives the new cells
 * (free with bt_row_free). */
int bt_read_modify_write(bt_table *t, const void *row, size_t row_len, const bt_rmw *r, bt_row **out);

/* ==== schemas ============================================================= */

typedef enum { BT_BLOOM_NONE = 0, BT_BLOOM_ROW = 1, BT_BLOOM_ROW_COLUMN = 2 } bt_bloom;

typedef struct bt_family_info {
    const char *name;
    uint32_t max_versions;      /* 0: no limit */
    int64_t max_age_us;         /* 0: no limit */
    bool gc_intersection;       /* false: a cell goes when either rule says so */
    const char *group;          /* its locality group */
} bt_family_info;

typedef struct bt_group_info {
    const char *name;
    bool compress;              /* Snappy per block */
    bool in_memory;
    bt_bloom bloom;
    uint32_t block_size;        /* bytes; 0: 4096 */
} bt_group_info;

/* A table's families and locality groups.  A new schema has one group,
 * "default" (snappy, row bloom filter, 4 KiB blocks), and no family. */
typedef struct bt_schema bt_schema;
bt_schema *bt_schema_new(void);
void bt_schema_free(bt_schema *s);
/* Adds a family in group "default".  BT_EINVAL: bad or duplicate name. */
int bt_schema_add_family(bt_schema *s, const char *family, uint32_t max_versions, int64_t max_age_us);
int bt_schema_set_gc_intersection(bt_schema *s, const char *family, bool intersection);
/* Adds a locality group, or changes one (including "default"). */
int bt_schema_set_group(bt_schema *s, const bt_group_info *g);
/* Moves a family into an existing group. */
int bt_schema_set_family_group(bt_schema *s, const char *family, const char *group);
size_t bt_schema_n_families(const bt_schema *s);
/* Family i (0 <= i < n); pointers valid until the schema changes or is freed. */
int bt_schema_family(const bt_schema *s, size_t i, bt_family_info *out);
size_t bt_schema_n_groups(const bt_schema *s);
int bt_schema_group(const bt_schema *s, size_t i, bt_group_info *out);

/* ==== administration (answered by the master) ============================= */

/* Creates a table with the schema's families and groups, pre-split at the
 * given rows (n_splits may be 0: one tablet).  Returns once every tablet is
 * served.  BT_EEXIST, BT_EINVAL (bad name, no family, bad split keys). */
int bt_create_table(bt_client *c, const char *name, const bt_schema *s, const bt_key *splits,
                    size_t n_splits);
/* Deletes a table and all its data.  BT_ENOTFOUND. */
int bt_delete_table(bt_client *c, const char *name);
/* Names of the user tables, sorted; free with bt_free_names. */
int bt_list_tables(bt_client *c, char ***names, size_t *n);
void bt_free_names(char **names, size_t n);

int bt_alter_add_family(bt_client *c, const char *table, const char *family, uint32_t max_versions,
                        int64_t max_age_us);
/* Drops a family: it disappears from reads at once, its data goes with the
 * next major compactions. */
int bt_alter_drop_family(bt_client *c, const char *table, const char *family);
int bt_alter_gc(bt_client *c, const char *table, const char *family, uint32_t max_versions,
                int64_t max_age_us, bool intersection);

typedef struct bt_tablet_desc {
    uint64_t id;
    uint8_t *start; size_t start_len;   /* first row (inclusive) */
    uint8_t *end; size_t end_len;       /* end (exclusive); len 0: to the end */
    char *server;                       /* "host:port", or "" while unassigned */
    char *server_id;
    char *dir;                          /* relative to the servers' --data-dir */
    uint64_t memtable_bytes, sstable_bytes; /* as last reported by its server (0: unknown) */
} bt_tablet_desc;

typedef struct bt_table_desc {
    char *name;
    bt_schema *schema;
    size_t n_tablets;
    bt_tablet_desc *tablets;            /* in row order */
} bt_table_desc;

/* Schema and tablets (with locations) of a table, METADATA included; free
 * with bt_table_desc_free. */
int bt_describe_table(bt_client *c, const char *name, bt_table_desc **out);
void bt_table_desc_free(bt_table_desc *d);

/* Moves a tablet to the server with id server_id (NULL: the master picks the
 * least loaded other server).  Returns once the target serves it. */
int bt_move_tablet(bt_client *c, uint64_t tablet_id, const char *server_id);
/* Splits the tablet of `table` holding `row` at `row` (row_len 0: every
 * tablet of the table at its middle row; tablets too small are skipped). */
int bt_split_table(bt_client *c, const char *table, const void *row, size_t row_len);
/* Minor / major compaction of every tablet of the table. */
int bt_flush_table(bt_client *c, const char *table);
int bt_compact_table(bt_client *c, const char *table);
/* Runs the master's garbage collection of unreferenced SSTable files now,
 * sparing files younger than grace_ms.  Counts what it deleted. */
int bt_run_gc(bt_client *c, uint32_t grace_ms, uint64_t *files_deleted, uint64_t *bytes_deleted);

typedef struct bt_server_status {
    char *id;
    char *address;
    uint64_t tablets;
    uint64_t memtable_bytes, sstable_bytes;
    uint64_t reads, writes;              /* since the server started */
    uint64_t compaction_queue;           /* tablets waiting for or in a compaction */
} bt_server_status;

/* One entry of the master's recent-events log (newest last). */
typedef struct bt_cluster_event {
    int64_t time_us;                    /* wall clock */
    char *text;                         /* "server ts1 died; 12 tablets recovered" */
} bt_cluster_event;

typedef struct bt_cluster_status {
    char *master;                       /* the active master's address */
    int64_t master_since_us;            /* wall clock when it became active */
    size_t n_servers;
    bt_server_status *servers;          /* live tablet servers, by id */
    uint64_t tables, tablets, unassigned_tablets;
    uint64_t servers_recovered;         /* dead servers recovered by this master */
    uint64_t tablets_moved, splits;
    size_t n_events;
    bt_cluster_event *events;           /* the last (up to 64) events, oldest first */
} bt_cluster_status;

/* Free with bt_cluster_status_free. */
int bt_cluster_status_get(bt_client *c, bt_cluster_status **out);
void bt_cluster_status_free(bt_cluster_status *s);

/* ==== bulk load ===========================================================
 * Loads many cells as SSTables written by the client and attached to their
 * tablets, instead of sending mutations (HBase's completebulkload).  Cells
 * are added in any order; bt_bulk_finish sorts them with bounded memory
 * (sorted runs spill to files), writes SSTables cut at the table's tablet
 * boundaries into the tablets' directories (the client must see the
 * servers' --data-dir at the same path), and attaches each tablet's files
 * with one RPC that gives them one sequence number: every row becomes
 * visible with all its cells at once, or not at all.  The load takes effect
 * at that attach: it overrides earlier writes of the same cells (same row,
 * column and timestamp) and earlier deletions, and later ones override it.
 * A tablet that moved meanwhile gets the same files attached on its new
 * server; one that split gets them cut again for its children.  A load that
 * is abandoned (crash, bt_bulk_abort) attaches nothing further; staged files
 * nobody attached are removed by the master's garbage collection. */
typedef struct bt_bulk bt_bulk;

typedef struct bt_bulk_options {
    size_t memory_bytes;        /* buffered cells before a run spills; 0 -> 256 MiB */
    const char *tmp_dir;        /* for spilled runs; NULL -> $TMPDIR or /tmp */
    uint64_t sstable_bytes;     /* cut an SSTable past this size; 0 -> 256 MiB */
} bt_bulk_options;

typedef struct bt_bulk_stats {
    uint64_t cells, rows, bytes;        /* loaded (rows counted once per key) */
    uint64_t runs_spilled;
    uint64_t sstables;                  /* files attached */
    uint64_t tablets;                   /* tablets that received files */
    uint64_t recuts;                    /* tablets whose files were written again
                                           because the tablet split meanwhile */
} bt_bulk_stats;

/* Starts a bulk load into an existing table (o may be NULL). */
int bt_bulk_begin(bt_client *c, const char *table, const bt_bulk_options *o, bt_bulk **out);
/* Adds one cell (copied).  Validated like bt_mutation_set: BT_EINVAL,
 * BT_ENOTFOUND (unknown family), BT_ETOOBIG.  BT_SERVER_TIME is not allowed
 * (BT_EINVAL): bulk cells carry their timestamps, in [0, INT64_MAX).  The same cell added twice
 * keeps the value added last. */
int bt_bulk_add(bt_bulk *b, const void *row, size_t row_len, const char *family, const void *qualifier,
                size_t qualifier_len, int64_t timestamp, const void *value, size_t value_len);
/* Sorts, writes and attaches everything added; st (may be NULL) receives the
 * figures.  Frees b whatever the result. */
int bt_bulk_finish(bt_bulk *b, bt_bulk_stats *st);
/* Drops everything added and frees b (nothing is attached). NULL: no-op. */
void bt_bulk_abort(bt_bulk *b);

#ifdef __cplusplus
}
#endif

#endif

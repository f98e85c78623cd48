/* tabletserver/tablet.h: the tablet storage engine (design sections 3 and 4).
 *
 * A ts_engine is what one tablet server runs: the shared commit log, the
 * block cache and the background compaction threads.  A ts_tablet is one
 * sorted row range [start_row, end_row) with a schema, served from a memtable
 * plus immutable SSTables, persisted in its own directory by a manifest.
 *
 * Reading order: ts_engine_open -> ts_tablet_create/ts_tablet_open ->
 * ts_tablet_mutate_row / ts_tablet_read_row / ts_tablet_scan -> close.
 *
 * Errors follow common/status.h.  Thread-safety: an engine and its tablets
 * may be used from any number of threads at once; a ts_scanner by one.
 */
#ifndef BT_TS_TABLET_H
#define BT_TS_TABLET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/env.h"
#include "tabletserver/commitlog.h"

/* ---- limits (design section 3) ---------------------------------------- */
#define TS_MAX_NAME        64           /* table, family, locality group names */
#define TS_MAX_ROW_KEY     4096
#define TS_MAX_QUALIFIER   (16 * 1024)
#define TS_MAX_VALUE       (64u << 20)
#define TS_MAX_FAMILIES    64
#define TS_MAX_GROUPS      16

/* Timestamp meaning "let the server assign it" (microseconds since epoch). */
#define TS_SERVER_TIME     INT64_MIN

/* ---- schema ------------------------------------------------------------- */
typedef enum { TS_BLOOM_NONE = 0, TS_BLOOM_ROW = 1, TS_BLOOM_ROW_COLUMN = 2 } ts_bloom;

typedef struct ts_locality_group {
    char name[TS_MAX_NAME + 1];
    bool compress;          /* Snappy per block */
    bool in_memory;         /* keep this group's blocks pinned in memory */
    ts_bloom bloom;
    uint32_t block_size;    /* 0 -> 4096 */
} ts_locality_group;

typedef struct ts_family {
    char name[TS_MAX_NAME + 1];
    uint32_t max_versions;  /* 0 = no limit */
    int64_t max_age_us;     /* 0 = no limit */
    bool gc_intersection;   /* false: drop a cell if EITHER rule says so (union);
                               true: only if BOTH rules say so (intersection) */
    int group;              /* index into ts_schema.groups */
} ts_family;

typedef struct ts_schema {
    int n_families;
    ts_family families[TS_MAX_FAMILIES];
    int n_groups;           /* at least 1; group 0 is "default" */
    ts_locality_group groups[TS_MAX_GROUPS];
} ts_schema;

/* A schema with one locality group "default" (snappy, row bloom) and no families. */
void ts_schema_init(ts_schema *s);
/* Adds a family in group 0 with the given GC policy. BT_EINVAL on a bad or duplicate name. */
int ts_schema_add_family(ts_schema *s, const char *name, uint32_t max_versions, int64_t max_age_us);
/* Checks names, group indexes and limits; BT_EINVAL with a detail. */
int ts_schema_validate(const ts_schema *s);
/* Index of a family by name, or -1. */
int ts_schema_find(const ts_schema *s, const char *name, size_t len);

/* ---- engine --------------------------------------------------------------- */
typedef struct ts_engine ts_engine;

typedef struct ts_engine_options {
    bt_env *env;                /* NULL -> bt_env_posix() */
    const char *log_dir;        /* required: the commit log directory */
    ts_durability durability;   /* default TS_DURABILITY_SYNC */
    uint32_t group_ms;          /* GROUP/NONE flush period; 0 -> 5 */
    uint64_t log_roll_bytes;    /* 0 -> 64 MiB */
    size_t block_cache_bytes;   /* 0 -> 64 MiB */
    size_t memtable_bytes;      /* flush threshold per tablet; 0 -> 64 MiB */
    int compaction_threads;     /* 0 -> 1 */
    int merge_trigger;          /* SSTables per group before a merging compaction; 0 -> 4 */
    int slowdown_sstables;      /* throttle writes past this many; 0 -> 12 */
    int stop_sstables;          /* block writes past this many until compaction catches up; 0 -> 20 */
    int64_t (*clock_us)(void);  /* NULL -> real time; tests set a fake clock */
    bool keep_obsolete_files;   /* leave the SSTables a compaction replaced on disk for
                                   an external garbage collector instead of deleting
                                   them (a tablet server: the master's GC deletes files,
                                   so a deposed server can never delete a file the
                                   tablet's new owner still reads) */
} ts_engine_options;

int ts_engine_open(const ts_engine_options *o, ts_engine **out);
/* Every tablet must be closed first.  Syncs and closes the log. */
int ts_engine_close(ts_engine *e);
ts_log *ts_engine_log(ts_engine *e);

/* ---- tablets -------------------------------------------------------------- */
typedef struct ts_tablet ts_tablet;

/* Creates a new tablet in directory `dir` (created; BT_EEXIST if it holds a
 * manifest).  Rows in [start, end); end_len 0 means "to the end". */
int ts_tablet_create(ts_engine *e, const char *dir, uint64_t tablet_id, const ts_schema *schema,
                     const uint8_t *start, size_t start_len, const uint8_t *end, size_t end_len,
                     ts_tablet **out);

/* Opens an existing tablet from its manifest and replays the commit log past
 * its flushed sequence.  Then it recovers what a dead server left for it:
 * the records of <dir>/recovery/<name>.log files (written by ts_log_split,
 * tabletserver/logsplit.h) with its id and a sequence past its flushed one
 * are replayed too (last_seq moves past them); if there were any, the
 * tablet is flushed (minor compaction) before the call returns, and then
 * the recovery files are deleted and the directory fsynced.  If that flush
 * or deletion fails the open fails and the files stay for the next try.
 * BT_ENOTFOUND if there is no manifest, BT_ECORRUPT if it is damaged. */
int ts_tablet_open(ts_engine *e, const char *dir, ts_tablet **out);

/* Fences t after its server lost the right to serve it (the lock-service
 * session expired; another server may own the tablet by now): from now on
 * every manifest write of t fails with BT_EFAILED_PRECONDITION (schema
 * changes, flushes, compactions), a running compaction's output is
 * discarded instead of installed, and no new background work starts.
 * Files written by such a compaction are left for the master's GC.  Call it
 * before ts_tablet_close on that path; reads still work. */
void ts_tablet_fence(ts_tablet *t);

/* Waits for its background work, frees the tablet.  Every scanner of the
 * tablet must have been closed before.  Data not yet flushed
 * stays in the commit log and is replayed by the next ts_tablet_open. */
int ts_tablet_close(ts_tablet *t);

uint64_t ts_tablet_id(const ts_tablet *t);
/* The tablet's row range [start, end) (end_len 0: to the end); the pointers
 * stay valid while the tablet is open. */
void ts_tablet_range(const ts_tablet *t, const uint8_t **start, size_t *start_len,
                     const uint8_t **end, size_t *end_len);
const ts_schema *ts_tablet_schema(const ts_tablet *t);

/* Replaces the schema (families may be added; removed families' data is
 * dropped by the next major compaction). */
int ts_tablet_set_schema(ts_tablet *t, const ts_schema *s);

/* ---- mutations -------------------------------------------------------------- */
typedef enum {
    TS_SET_CELL = 0,       /* family, qualifier, timestamp, value */
    TS_DELETE_CELLS = 1,   /* family, qualifier, versions with ts in [ts_from, ts_to) */
    TS_DELETE_FAMILY = 2,  /* family */
    TS_DELETE_ROW = 3,
} ts_mutation_type;

typedef struct ts_mutation {
    ts_mutation_type type;
    const char *family; size_t family_len;
    const uint8_t *qualifier; size_t qualifier_len;
    int64_t timestamp;          /* SET_CELL; TS_SERVER_TIME for server time */
    int64_t ts_from, ts_to;     /* DELETE_CELLS; ts_to == 0 means no upper bound */
    const uint8_t *value; size_t value_len;
} ts_mutation;

/* Applies the mutations to one row atomically: readers see all or none.
 * Returns once durable per the engine's durability mode.  Errors:
 * BT_EINVAL (bad row/column/timestamp), BT_ENOTFOUND (unknown family),
 * BT_ETOOBIG (over a size limit), BT_ENOTSERVING (row outside the tablet),
 * I/O errors from the commit log (nothing applied). */
int ts_tablet_mutate_row(ts_tablet *t, const uint8_t *row, size_t row_len,
                         const ts_mutation *muts, int n);

/* One row's mutations, for ts_tablet_mutate_rows. */
typedef struct ts_row_mutation {
    const uint8_t *row; size_t row_len;
    const ts_mutation *muts; int n;
} ts_row_mutation;

#define TS_MAX_BATCH_ROWS 100000

/* Applies several row mutations with one commit-log record (so one fsync in
 * SYNC mode): readers see all of them or none.  Every row is validated first;
 * if one is invalid nothing is applied, the error is returned and *failed
 * (if not NULL) is its index (-1 for errors not tied to a row).  Rows may
 * repeat; later ones apply after earlier ones.  Errors as ts_tablet_mutate_row. */
int ts_tablet_mutate_rows(ts_tablet *t, const ts_row_mutation *rows, int nrows, int *failed);

/* ---- reads ------------------------------------------------------------------ */
typedef struct ts_column_ref {
    const char *family; size_t family_len;
    const uint8_t *qualifier; size_t qualifier_len;  /* NULL qualifier: the whole family */
} ts_column_ref;

typedef struct ts_read_options {
    /* rows: [start_row, end_row); end_len 0 = to the end; prefix, if set, further restricts */
    const uint8_t *start_row; size_t start_len;
    const uint8_t *end_row; size_t end_len;
    const uint8_t *prefix; size_t prefix_len;
    /* columns: if n_columns > 0 only these families/columns */
    const ts_column_ref *columns; int n_columns;
    /* column range within one family: qualifiers in [qual_from, qual_to); to_len 0 = unbounded */
    const char *range_family; size_t range_family_len;
    const uint8_t *qual_from; size_t qual_from_len;
    const uint8_t *qual_to; size_t qual_to_len;
    /* timestamps in [ts_from, ts_to); ts_to 0 = unbounded */
    int64_t ts_from, ts_to;
    /* values in [value_from, value_to) when has_value_range */
    bool has_value_range;
    const uint8_t *value_from; size_t value_from_len;
    const uint8_t *value_to; size_t value_to_len;   /* to_len 0 = unbounded */
    uint32_t versions;          /* newest N per column; 0 = all */
    uint32_t cells_per_row;     /* 0 = no limit */
    uint64_t row_limit;         /* rows returned; 0 = no limit */
    bool strip_value;           /* return cells with empty values */
    bool no_io;                 /* fail with BT_EBUSY rather than read an SSTable
                                   block that is not in memory (for callers that
                                   must not block; they retry on another thread) */
} ts_read_options;

typedef struct ts_cell {
    const char *family; size_t family_len;
    const uint8_t *qualifier; size_t qualifier_len;
    int64_t timestamp;
    const uint8_t *value; size_t value_len;
} ts_cell;

/* One row of results: cells in (family, qualifier, timestamp desc) order.
 * Memory is owned by the scanner and valid until its next call. */
typedef struct ts_row {
    const uint8_t *key; size_t key_len;
    const ts_cell *cells; size_t n_cells;
} ts_row;

typedef struct ts_scanner ts_scanner;

/* A scan over a consistent view of the tablet (memtables and SSTables as of
 * the call; later writes may or may not be seen).  opts may be NULL (all). */
int ts_tablet_scan(ts_tablet *t, const ts_read_options *opts, ts_scanner **out);
/* *row set and BT_OK; BT_ENOTFOUND at the end; other codes on error. */
int ts_scanner_next(ts_scanner *s, ts_row *row);
void ts_scanner_close(ts_scanner *s);

/* Reads one row with the column/time/version filters of opts (its row range
 * fields are ignored).  Copies into *out (free with ts_row_free).
 * BT_ENOTFOUND if the row has no visible cells. */
int ts_tablet_read_row(ts_tablet *t, const uint8_t *row, size_t row_len,
                       const ts_read_options *opts, ts_row *out);
void ts_row_free(ts_row *r);

/* ---- maintenance ----------------------------------------------------------- */
/* Minor compaction now: memtable -> SSTable(s); waits until done. */
int ts_tablet_flush(ts_tablet *t);
/* Major compaction now: every SSTable -> one per locality group, deletion
 * markers and GC'd cells dropped; waits until done. */
int ts_tablet_compact(ts_tablet *t);
/* Waits until no background compaction is queued or running for t. */
int ts_tablet_wait_idle(ts_tablet *t);

typedef struct ts_tablet_stats {
    uint64_t memtable_bytes;
    uint32_t n_sstables;
    uint64_t sstable_bytes;
    uint64_t flushed_seq;
    uint64_t last_seq;
    uint64_t minor_compactions, merging_compactions, major_compactions;
    uint64_t throttled_writes;     /* writes that waited for compaction */
    uint64_t bulk_files;           /* SSTables attached by bulk loads */
    bool compaction_pending;       /* background work queued or running */
} ts_tablet_stats;
void ts_tablet_get_stats(ts_tablet *t, ts_tablet_stats *s);

/* Splits t at `mid` (mid_len 0: pick the middle row from the SSTable
 * indexes) into two children in dir_left [start, mid) and dir_right
 * [mid, end), sharing the parent's SSTables (each child reads only its
 * range).  Flushes t first; t is closed and freed on success.  The children
 * get ids left_id and right_id.  On failure t serves on as before (child
 * directories already written are left for the master's GC). */
int ts_tablet_split(ts_tablet *t, const uint8_t *mid, size_t mid_len,
                    const char *dir_left, uint64_t left_id,
                    const char *dir_right, uint64_t right_id,
                    ts_tablet **left, ts_tablet **right);

#endif

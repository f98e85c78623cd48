/* tabletserver/tablet_internal.h: structures shared by the tablet's source
 * files (engine.c, tablet.c, scan.c, compaction.c).  Not a public header. */
#ifndef BT_TS_TABLET_INTERNAL_H
#define BT_TS_TABLET_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "common/coding.h"
#include "sstable/cache.h"
#include "sstable/table.h"
#include "tabletserver/ikey.h"
#include "tabletserver/manifest.h"
#include "tabletserver/memtable.h"
#include "tabletserver/tablet.h"

/* ---- engine ---------------------------------------------------------------- */
struct ts_engine {
    ts_engine_options opts;     /* defaults filled in */
    bt_env *env;
    ts_log *log;
    sst_cache *cache;
    pthread_mutex_t mu;         /* protects queue, stop */
    pthread_cond_t cv;          /* work queued or stop */
    ts_tablet **queue;          /* tablets with background work, FIFO */
    int qlen, qcap;
    bool stop;
    pthread_t *threads;
    int n_threads;
    atomic_int n_tablets;
};

int64_t ts_engine_now(ts_engine *e);
/* Queues t for background work unless already queued or running (t->mu held). */
void ts_engine_schedule(ts_engine *e, ts_tablet *t);

/* ---- SSTables in use --------------------------------------------------------- */
typedef struct ts_table {
    atomic_int refs;
    ts_file_meta meta;          /* as in the manifest */
    char *full_path;            /* path opened */
    sst_reader *reader;
} ts_table;

void ts_table_ref(ts_table *tb);
void ts_table_unref(ts_table *tb);

/* An immutable set of SSTables, newest first.  Readers take a reference. */
typedef struct ts_version {
    atomic_int refs;
    int n;
    ts_table **tables;
} ts_version;

ts_version *ts_version_new(int n);
void ts_version_ref(ts_version *v);
void ts_version_unref(ts_version *v);
int ts_version_count_group(const ts_version *v, int group);

/* An immutable schema snapshot shared by readers (a point read must not
 * copy the ~7 KB ts_schema).  Replaced, never changed, by set_schema. */
typedef struct ts_schema_ref {
    atomic_int refs;
    ts_schema s;
} ts_schema_ref;

ts_schema_ref *ts_schema_ref_new(const ts_schema *s);
void ts_schema_ref_unref(ts_schema_ref *r);

/* Scanners kept for reuse per tablet (their buffers keep their capacity). */
#define TS_SCANNER_POOL 8
typedef struct ts_scanner ts_scanner;
/* Frees the pooled scanners (tablet close). */
void ts_scanner_pool_free(ts_tablet *t);

/* A memtable with its write bookkeeping. */
typedef struct ts_mem {
    ts_memtable *mt;
    uint64_t max_seq;           /* highest sequence assigned into it */
    int pending;                /* writers with a sequence assigned, not yet applied */
} ts_mem;

/* ---- tablet ------------------------------------------------------------------ */
struct ts_tablet {
    ts_engine *eng;
    uint64_t id;
    char *dir;
    bt_buf start, end;          /* raw row bounds; end empty = unbounded */
    bt_buf start_esc, end_esc;  /* ESC() of the bounds, for key-space checks */

    pthread_mutex_t mu;         /* protects everything below and memtable inserts */
    pthread_cond_t cv;          /* state changes: visibility, flushes, bg done */
    ts_schema schema;
    ts_schema_ref *schema_ref;  /* snapshot of `schema` for readers */
    ts_scanner *pool[TS_SCANNER_POOL];
    int pool_n;
    ts_mem mem;                 /* active memtable */
    ts_mem imm;                 /* being flushed; imm.mt NULL if none */
    ts_version *ver;
    uint64_t last_seq;          /* last sequence assigned */
    uint64_t visible_seq;       /* every sequence <= this is applied or abandoned */
    uint64_t flushed_seq;
    uint64_t next_file;
    bool bg_queued, bg_running, closing, major_requested;
    bool flush_running;         /* a minor compaction is running (maybe beside a merge) */
    bool frozen;                /* splitting: writes get BT_ENOTSERVING */
    bool fenced;                /* ts_tablet_fence: no manifest writes any more */
#define TS_BULK_DONE 64
    struct { uint64_t load_id, seq; } bulk_done[TS_BULK_DONE]; /* the last bulk attaches (a retry answers OK) */
    int bulk_done_next;
    int bg_error;               /* last background failure (retried), 0 if none */
    ts_tablet_stats stats;
};

/* Is raw row key `row` inside the tablet's range [start, end)? */
static inline bool ts_row_in_tablet(const ts_tablet *t, const uint8_t *row, size_t n)
{
    if (sst_key_cmp(row, n, t->start.data, t->start.len) < 0) return false;
    return t->end.len == 0 || sst_key_cmp(row, n, t->end.data, t->end.len) < 0;
}

/* Writes the manifest from the tablet's current state (t->mu held).
 * BT_EFAILED_PRECONDITION once the tablet is fenced. */
int ts_tablet_save_manifest(ts_tablet *t, ts_version *v, uint64_t flushed_seq);
/* Opens the SSTable described by meta (relative to t->dir when not inherited);
 * in_memory (its locality group's setting) loads the whole file into memory. */
int ts_table_open(ts_tablet *t, const ts_file_meta *meta, bool in_memory, ts_table **out);
/* The current version minus drop[0..nd), plus add[0..na) (t->mu held);
 * takes over the references of add[].  NULL when memory runs out. */
ts_version *ts_next_version(ts_tablet *t, ts_table **drop, int nd, ts_table **add, int na);
/* Writes the manifest for v and installs it; on failure unrefs v and removes
 * the added tables' files (t->mu held). */
int ts_install_version(ts_tablet *t, ts_version *v, uint64_t flushed_seq, ts_table **added, int na);
/* Background work for t; called by an engine thread. */
void ts_tablet_background(ts_tablet *t);
/* Applies a decoded mutation payload to a memtable with sequences from seq. */
int ts_apply_payload(ts_memtable *mt, const uint8_t *p, size_t n, uint64_t seq, uint64_t *last);
/* The hash of a raw row key noted in the memtable's hint filter. */
uint64_t ts_row_hash(const uint8_t *row, size_t n);

/* The iterator of one of the tablet's SSTables over raw (an iterator of its
 * reader; owned): with a bulk-loaded file's global sequence applied and
 * restricted to the file's [lo, hi).  NULL when memory runs out. */
sst_iter *ts_table_iter(ts_table *tb, sst_iter *raw);

/* Iterator restricted to internal keys in [lo, hi) (empty = unbounded); owns child. */
sst_iter *ts_range_iter_new(sst_iter *child, const uint8_t *lo, size_t lo_n,
                            const uint8_t *hi, size_t hi_n);

/* ---- masking: deletion markers, duplicates and GC while walking a row ---- */
typedef struct ts_mask {
    uint64_t row_del_seq;
    uint64_t fam_del_seq;
    int fam_index;              /* schema index of the current family, -1 unknown */
    const uint8_t *fam; size_t fam_len;  /* current family span (escaped) */
    const uint8_t *qual; size_t qual_len;/* current column span (escaped) */
    int n_dels, cap_dels;       /* column deletes seen in this column */
    struct ts_col_del { int64_t from, to; uint64_t seq; } *dels;  /* grows; freed by ts_masker_free */
    bool have_last_ts;
    int64_t last_ts;            /* timestamp of the last put seen in this column */
    uint32_t versions;          /* distinct live versions seen in this column */
} ts_mask;

/* The masker's spans point into the current key; it copies the family and
 * qualifier it must compare later keys against into the scratch buffers. */
typedef struct ts_masker {
    ts_mask m;
    bt_buf fam_copy, qual_copy;
    const ts_schema *schema;
    int64_t now;
    bool apply_gc;              /* false: keep GC'd versions (minor/merging) */
    bool new_column;            /* the last step entered a new column */
} ts_masker;

enum { TS_MASK_MARKER = 0, TS_MASK_LIVE = 1, TS_MASK_DEAD = 2, TS_MASK_NOMEM = -1 };
/* Feeds one parsed entry of the current row; call ts_masker_row first for each
 * new row.  Returns TS_MASK_MARKER for a deletion marker (recorded),
 * TS_MASK_LIVE for a visible put, TS_MASK_DEAD for a hidden or GC'd put,
 * TS_MASK_NOMEM if a marker could not be recorded (the caller fails the read
 * or compaction: dropping a marker would resurrect deleted cells). */
int ts_masker_step(ts_masker *mk, const ts_ikey *k, const uint8_t *val, size_t vn);
void ts_masker_row(ts_masker *mk);
void ts_masker_free(ts_masker *mk);

#endif

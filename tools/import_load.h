/* tools/import_load.h: the import itself (docs/import.md): table checks or
 * creation with a pre-split, then either online mutations (a reader feeding
 * writer threads that call bt_apply_batch) or a bulk load (bt_bulk_*), with
 * rejects, progress and a summary.  tools/import_main.c parses the flags
 * into imp_opts and calls imp_run. */
#ifndef BT_TOOLS_IMPORT_LOAD_H
#define BT_TOOLS_IMPORT_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/import_csv.h"
#include "tools/import_map.h"

/* Exit statuses of bt-import. */
enum { IMP_EXIT_OK = 0, IMP_EXIT_REJECTS = 1, IMP_EXIT_USAGE = 2, IMP_EXIT_FAILED = 3 };

typedef struct imp_opts {
    const char *table;
    const char *lock_url;
    const char *input;          /* a path, or "-" for stdin */
    imp_format fmt;
    imp_map map;                /* parsed mapping (default_ts set by imp_run unless have_default_ts) */
    bool have_default_ts;
    bool create, bulk, quiet;
    const char *rejects_path;   /* NULL: count, show the first few on stderr */
    uint64_t max_rejects;       /* 0: no limit */
    unsigned workers;           /* online writer threads */
    unsigned batch_rows;        /* rows per bt_apply_batch */
    unsigned queue_batches;     /* batches queued per writer */
    size_t memory_mb;           /* bulk: memory before a run spills */
    const char *tmp_dir;        /* bulk: where runs spill */
    unsigned progress_interval_ms;
    int timeout_ms;             /* libbt deadline per call */
    uint32_t max_versions;      /* --create: per family */
    unsigned tablets;           /* --create: 0 = from the input size */
    unsigned tablet_mb;         /* --create: input bytes per tablet */
    unsigned max_tablets;
    unsigned sample_mb;         /* --create from stdin: bytes buffered for the sample */
    size_t max_record;          /* longest record accepted */
} imp_opts;

/* Runs the import; returns the exit status (IMP_EXIT_*), having printed
 * errors, progress and the summary. */
int imp_run(imp_opts *o);

#endif

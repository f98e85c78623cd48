/* tools/import_progress.h: bt-import's progress display and summary
 * (docs/import.md, "Progress").
 *
 * The counters are updated by the reader and the writer threads (atomics);
 * a display thread started by imp_progress_start draws them:
 *   - on a terminal: one line redrawn every 250 ms with a bar, rows, cells,
 *     bytes, rows/s and ETA (from bytes read out of the input's size);
 *   - otherwise: a plain line every `interval_ms` (default 5 s).
 * Everything goes to the stream given (stderr in bt-import). */
#ifndef BT_TOOLS_IMPORT_PROGRESS_H
#define BT_TOOLS_IMPORT_PROGRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct imp_counters {
    _Atomic uint64_t records;   /* records read (rows + rejected by the reader) */
    _Atomic uint64_t rows;      /* rows written (acknowledged, or added to a bulk load) */
    _Atomic uint64_t cells;
    _Atomic uint64_t bytes;     /* input bytes consumed */
    _Atomic uint64_t rejected;
} imp_counters;

typedef struct imp_progress {
    imp_counters *ctr;
    FILE *out;
    bool tty;
    int interval_ms;            /* non-tty line interval */
    uint64_t total_bytes;       /* 0: unknown (stdin) */
    int64_t start_us;           /* monotonic */
    const char *phase;          /* "" or e.g. "finishing bulk load" (set by the caller) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, running, drawn;
} imp_progress;

/* Monotonic microseconds. */
int64_t imp_now_us(void);

/* Formats the figures of one progress line into buf (no newline). */
void imp_progress_format(const imp_progress *p, char *buf, size_t cap, bool bar);

/* Starts the display thread (p->ctr, out, tty, interval_ms, total_bytes set
 * by the caller).  0 or -1. */
int imp_progress_start(imp_progress *p);
/* Sets the phase text shown from now on (a static string). */
void imp_progress_phase(imp_progress *p, const char *phase);
/* Stops the thread and clears a terminal line.  Safe if never started. */
void imp_progress_stop(imp_progress *p);

/* "12.3 MB" style. */
void imp_human_bytes(uint64_t b, char *buf, size_t cap);

#endif

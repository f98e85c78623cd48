/* tabletserver/logsplit.h: splitting a dead tablet server's commit log per
 * tablet (design section 7, "recover a dead server's commit log by splitting
 * it per tablet before reassigning"; docs/formats.md, "Recovery files").
 *
 * The master calls ts_log_split on the log directory of a server incarnation
 * that is gone (servers/<id>/log-<start time>).  Every record of that log
 * lands in <tablet dir>/recovery/<name>.log of its tablet, in the commit-log
 * record format; the next ts_tablet_open of the tablet, on any server,
 * replays the records past its flushed sequence, flushes them into an
 * SSTable and deletes the file.
 */
#ifndef BT_TS_LOGSPLIT_H
#define BT_TS_LOGSPLIT_H

#include <stdint.h>

#include "common/env.h"

/* Sub-directory of a tablet directory that holds its recovery files. */
#define TS_RECOVERY_DIR "recovery"

typedef struct ts_log_split_stats {
    uint64_t files;      /* log files read */
    uint64_t records;    /* valid records read (all tablets) */
    uint64_t bytes;      /* record bytes written to recovery files */
    uint64_t tablets;    /* recovery files written */
    uint64_t skipped;    /* records of tablets tablet_dir() did not know */
} ts_log_split_stats;

/* Splits the log in `log_dir` (a directory of NNNNNNNNNNNN.log files that no
 * process writes any more).  Reads every file in order; each stops cleanly at
 * a torn or corrupt tail exactly as replay does.  Records are grouped by
 * tablet id; for each tablet, tablet_dir(arg, id) is called once and returns
 * the tablet's directory as an absolute path (copied at once), or NULL for a
 * tablet that no longer exists (its records are counted in st->skipped).
 * For each known tablet it writes <dir>/recovery/<name>.log durably: written
 * as <name>.log.tmp, fsynced, renamed, then the recovery directory is
 * fsynced (created, and its parent fsynced, if missing).  The file holds the
 * tablet's records in log order.
 *
 * `name` ([A-Za-z0-9_.-], at most 128 bytes) names the log being split, e.g.
 * "<server id>-<log dir name>": two dead logs with records of one tablet
 * give two files.  Idempotent: a rerun overwrites the same files with the
 * same content, so the master may retry after any failure.
 *
 * Memory: records are buffered up to a bound (16 MiB) and then appended to
 * their tablets' temporary files; a log of any size is split in bounded
 * memory (a single record is held whole).
 *
 * Returns BT_OK, BT_EINVAL (bad arguments), BT_ENOTFOUND (no log_dir), or
 * the first I/O error (then no file of this run is named as final unless it
 * was complete and synced; temporary files are removed where possible).
 * st may be NULL; it is zeroed first. */
int ts_log_split(bt_env *env, const char *log_dir, const char *name,
                 const char *(*tablet_dir)(void *arg, uint64_t tablet_id), void *arg,
                 ts_log_split_stats *st);

#endif

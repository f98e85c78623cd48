/* tabletserver/commitlog.h: the commit log shared by all tablets of a server.
 *
 * Records carry (tablet id, first sequence number, payload) with a length and
 * an xxHash checksum (docs/formats.md, "Commit log").  There are two append
 * paths:
 *   - the write path (SYNC mode, and every mode when the env is not the POSIX
 *     env, e.g. the fault-injecting env of the tests): writers from many
 *     threads are batched by group commit; the first waiting writer becomes
 *     the leader, writes every pending record with one write(2) and (in SYNC
 *     mode) one fdatasync, then wakes the followers it covered;
 *   - the mapped path (GROUP and NONE on the POSIX env): each file is
 *     preallocated with posix_fallocate and mapped MAP_SHARED, and an append
 *     is a memcpy into the mapping under the log mutex: no leader, no system
 *     call.
 *
 * Durability modes (what "ts_log_append returned BT_OK" means):
 *   TS_DURABILITY_SYNC   the record is written and fdatasynced before the
 *                        append returns: it survives power loss.
 *   TS_DURABILITY_GROUP  the record is in the kernel's page cache (mapped
 *                        path: copied into the shared mapping of the file,
 *                        whose pages are the page cache's; write path:
 *                        written with write(2)), so it survives a crash of
 *                        the process but not of the machine.  A background
 *                        thread msyncs/fdatasyncs the new bytes every
 *                        group_ms, so power loss loses at most about the last
 *                        group_ms of acknowledged records.
 *   TS_DURABILITY_NONE   mapped path: as GROUP, but with no periodic sync: the
 *                        kernel writes back on its own schedule, and files are
 *                        synced when they roll and at close; it survives a
 *                        process crash, and power loss can lose recent records.
 *                        Write path: the record waits in the process's buffer
 *                        until it holds 1 MiB or group_ms passes, then is
 *                        written and fsynced; any crash can lose that window.
 *
 * Files are DIR/NNNNNNNNNNNN.log, numbered upwards.  On the write path a file
 * rolls once it passes roll_bytes; on the mapped path a file is roll_bytes
 * long (preallocated) and rolls when a record does not fit; a record larger
 * than roll_bytes gets a file of its own sized to fit.  A rolled or closed
 * mapped file is cut back (ftruncate) to its records; a file left by a killed
 * process may end in zeros, which replay reads as the clean end of the file.
 * Opening never appends to an existing file: it starts a new one, so a torn
 * tail stays where it is and replay stops there cleanly.  A file is deleted
 * once every tablet with records in it has reported (via
 * ts_log_tablet_flushed) a flushed sequence at or past its last record there,
 * and it is not the active file.
 *
 * Thread-safety: every function may be called from any thread.  One mutex
 * protects the pending buffer, the file table and the mapped file's fill
 * state (appends copy under it); a second serialises file I/O (leader
 * writes, rolls, syncs of the mapped file, close) and keeps the mapping alive
 * while a sync runs outside the first.
 */
#ifndef BT_TS_COMMITLOG_H
#define BT_TS_COMMITLOG_H

#include <stdint.h>
#include <stddef.h>

#include "common/coding.h"
#include "common/env.h"

typedef enum {
    TS_DURABILITY_SYNC = 0,
    TS_DURABILITY_GROUP = 1,
    TS_DURABILITY_NONE = 2,
} ts_durability;

/* Parses "sync" | "group" | "none"; returns -1 if unknown. */
int ts_durability_parse(const char *s);
const char *ts_durability_name(ts_durability d);

typedef struct ts_log_options {
    bt_env *env;                /* required */
    const char *dir;            /* required; created if missing */
    ts_durability durability;   /* default TS_DURABILITY_SYNC (0) */
    uint32_t group_ms;          /* GROUP sync / NONE flush period; 0 -> 5 ms */
    uint64_t roll_bytes;        /* 0 -> 64 MiB; mapped files are preallocated to it */
    size_t max_record;          /* 0 -> 80 MiB; larger appends get BT_ETOOBIG */
} ts_log_options;

typedef struct ts_log ts_log;

/* Opens the log directory: indexes the existing files (which tablets, and the
 * last sequence per tablet in each, stopping at a torn tail) and starts a new
 * active file numbered past them. */
int ts_log_open(const ts_log_options *o, ts_log **out);

/* Flushes and fsyncs pending records, closes the active file (a mapped one is
 * synced, unmapped and cut back to its records), frees l.  Reports an error
 * if acknowledged records may have been lost to an earlier I/O error. */
int ts_log_close(ts_log *l);

/* Appends one record and waits until it is as durable as the mode promises.
 * `seq` is the first sequence number the record's mutation uses and
 * `last_seq` the last (they may be equal).  After an I/O error (including
 * BT_ENOSPC) the failing record and every record batched with it report the
 * error; the log then starts a fresh file for later appends, and nothing
 * acknowledged before is affected.  On the mapped path the only I/O an append
 * does is creating the next file when the record does not fit the active one
 * (BT_ENOSPC if posix_fallocate finds no room); the next append retries. */
int ts_log_append(ts_log *l, uint64_t tablet_id, uint64_t seq, uint64_t last_seq,
                  const void *payload, size_t n);

/* Forces everything appended so far to disk (write + fdatasync, or msync of
 * the mapped file) in every mode.  Also reports, once, an earlier I/O error
 * that may have lost acknowledged records. */
int ts_log_sync(ts_log *l);

/* Called for each replayed record. Return non-zero to abort replay with that code. */
typedef int (*ts_log_replay_fn)(void *arg, uint64_t tablet_id, uint64_t seq,
                                const uint8_t *payload, size_t n);

/* Replays, in file order, the records of `tablet_id` whose seq > after_seq
 * from the files that existed when the log was opened.  Each file's replay
 * stops cleanly at its first torn or corrupt record.  tablet_id
 * TS_LOG_ALL_TABLETS replays every tablet's records. */
#define TS_LOG_ALL_TABLETS UINT64_MAX
int ts_log_replay(ts_log *l, uint64_t tablet_id, uint64_t after_seq,
                  ts_log_replay_fn fn, void *arg);

/* The complement for a tablet closed and reopened by the same process: replays
 * the records of `tablet_id` (one tablet) whose seq > after_seq from the files
 * created since the log was opened, writing its pending records out first.
 * Does no I/O when the tablet has no such records. */
int ts_log_replay_new(ts_log *l, uint64_t tablet_id, uint64_t after_seq,
                      ts_log_replay_fn fn, void *arg);

/* Tells the log that all of tablet_id's records with seq <= flushed_seq are
 * in SSTables; deletes files that nothing needs any more. */
void ts_log_tablet_flushed(ts_log *l, uint64_t tablet_id, uint64_t flushed_seq);

/* Forgets a tablet entirely (it moved away, or was deleted). */
void ts_log_forget_tablet(ts_log *l, uint64_t tablet_id);

/* ---- reading log files offline (log splitting, recovery files) ---------------
 * These work on files no ts_log has open for writing: a dead server's log
 * directory, or the per-tablet recovery files made from one (which use the
 * same record format, docs/formats.md "Commit log"). */

/* Called for each valid record, in file order.  Return non-zero to stop
 * reading with that code. */
typedef int (*ts_log_record_fn)(void *arg, uint64_t tablet_id, uint64_t seq, uint64_t last_seq,
                                const uint8_t *payload, size_t n);

/* "DIR/NNNNNNNNNNNN.log" for file `number` of a log directory. */
void ts_log_file_path(const char *dir, uint64_t number, char *out, size_t cap);

/* The numbers of the log files in dir, ascending, into *numbers (malloc'd,
 * free() it; NULL when there is none).  Other names are ignored.
 * BT_ENOTFOUND if dir does not exist. */
int ts_log_list_files(bt_env *env, const char *dir, uint64_t **numbers, size_t *n);

/* Streams the records of the file at `path` to fn, reading it in chunks (a
 * record is held whole in memory, nothing more), and stops cleanly at a torn
 * or corrupt tail exactly as replay does (logged with BT_WARN; a tail of
 * zero bytes is the clean end of a preallocated file).  *valid_bytes (may be
 * NULL) gets the length of the valid prefix.  Returns fn's first non-zero
 * result, an I/O error, or BT_OK. */
int ts_log_read_file(bt_env *env, const char *path, ts_log_record_fn fn, void *arg,
                     uint64_t *valid_bytes);

/* Appends one encoded record (header, varints, payload) to b. */
int ts_log_encode_record(bt_buf *b, uint64_t tablet_id, uint64_t seq, uint64_t last_seq,
                         const void *payload, size_t n);

/* Statistics. */
typedef struct ts_log_stats {
    uint64_t appends;       /* records appended */
    uint64_t syncs;         /* fdatasync or msync(MS_SYNC) calls */
    uint64_t groups;        /* leader write batches (write path only; 0 when mapped) */
    uint64_t bytes;         /* record bytes written or copied into mapped files */
    uint32_t live_files;    /* files on disk including the active one */
    uint64_t active_file;   /* number of the active file */
} ts_log_stats;
void ts_log_get_stats(ts_log *l, ts_log_stats *s);

#endif

/* tabletserver/commitlog.h: the commit log shared by all tablets of a server.
 *
 * Records carry (tablet id, first sequence number, payload) with a length and
 * an xxHash checksum (docs/formats.md, "Commit log").  Writers from many
 * threads are batched by group commit: the first waiting writer becomes the
 * leader, writes every pending record with one write(2) and (in sync mode)
 * one fdatasync, then wakes the followers it covered.
 *
 * Durability modes (what "ts_log_append returned BT_OK" means):
 *   TS_DURABILITY_SYNC   the record is fsynced (survives power loss).
 *   TS_DURABILITY_GROUP  the record is written to the OS (survives a process
 *                        crash); a background thread fsyncs every group_ms.
 *   TS_DURABILITY_NONE   the record is in the process's buffer; it is written
 *                        when the buffer fills or every group_ms, and fsynced
 *                        then.  Loses up to group_ms of writes on any crash.
 *
 * Files are DIR/NNNNNNNNNNNN.log, numbered upwards.  A file rolls when it
 * passes roll_bytes.  Opening never appends to an existing file: it starts a
 * new one, so a torn tail stays where it is and replay stops there cleanly.
 * A file is deleted once every tablet with records in it has reported (via
 * ts_log_tablet_flushed) a flushed sequence at or past its last record there,
 * and it is not the active file.
 *
 * Thread-safety: every function may be called from any thread; one mutex
 * protects the pending buffer and the file table, a second serialises the
 * leader's I/O.
 */
#ifndef BT_TS_COMMITLOG_H
#define BT_TS_COMMITLOG_H

#include <stdint.h>
#include <stddef.h>

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
    uint32_t group_ms;          /* GROUP/NONE flush period; 0 -> 5 ms */
    uint64_t roll_bytes;        /* 0 -> 64 MiB */
    size_t max_record;          /* 0 -> 80 MiB; larger appends get BT_ETOOBIG */
} ts_log_options;

typedef struct ts_log ts_log;

/* Opens the log directory: indexes the existing files (which tablets, and the
 * last sequence per tablet in each, stopping at a torn tail) and starts a new
 * active file numbered past them. */
int ts_log_open(const ts_log_options *o, ts_log **out);

/* Flushes and fsyncs pending records, closes the active file, frees l. */
int ts_log_close(ts_log *l);

/* Appends one record and waits until it is as durable as the mode promises.
 * `seq` is the first sequence number the record's mutation uses and
 * `last_seq` the last (they may be equal).  After an I/O error (including
 * BT_ENOSPC) the failing record and every record batched with it report the
 * error; the log then starts a fresh file for later appends, and nothing
 * acknowledged before is affected. */
int ts_log_append(ts_log *l, uint64_t tablet_id, uint64_t seq, uint64_t last_seq,
                  const void *payload, size_t n);

/* Forces everything appended so far to disk (write + fdatasync). */
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

/* Statistics. */
typedef struct ts_log_stats {
    uint64_t appends;       /* records appended */
    uint64_t syncs;         /* fdatasync calls */
    uint64_t groups;        /* leader write batches */
    uint64_t bytes;         /* bytes written */
    uint32_t live_files;    /* files on disk including the active one */
    uint64_t active_file;   /* number of the active file */
} ts_log_stats;
void ts_log_get_stats(ts_log *l, ts_log_stats *s);

#endif

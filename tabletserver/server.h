/* tabletserver/server.h: bt-tabletserver, the storage engine served over the
 * network (design sections 2, 4, 5 and 8; methods in tabletserver/ts_proto.h).
 *
 * A server owns one ts_engine (one commit log shared by its tablets, one
 * block cache), one RPC server and one lock-service session.  It registers
 * as /bt/servers/<id>, holding that file's lock, and serves only while the
 * lock is held:
 *   - every read and every write acknowledgement first checks that the
 *     session's lease is valid by the server's own conservative clock;
 *   - when the session expires it stops serving at once, drops its tablets
 *     without writing anything (each is fenced first: a compaction still
 *     running installs nothing, as another server may own the tablet by
 *     now), closes its engine, and re-registers if /bt/servers/<id> still
 *     exists (with no tablets and a fresh engine and log);
 *   - if that file is deleted (the master declared it dead) it exits.
 *
 * Each incarnation (each engine it opens) has its own commit-log directory,
 * <data_dir>/servers/<id>/log-<16 hex digits: wall-clock start time in us>,
 * and the lock file's contents name it (client/meta.h,
 * bt_server_file_encode): "host:port\nservers/<id>/log-...\n".  The
 * contents are set after the lock is taken and before the directory is
 * created, so a log directory on disk that no live server's file names is
 * a dead incarnation's log: the master splits it into recovery files
 * (tabletserver/logsplit.h) and deletes it.  A clean shutdown that flushed
 * every tablet deletes its own log directory.
 *
 * Splits (TSP_SPLIT, or automatic ones past split_bytes): once the engine
 * has split a tablet, the server writes the parent's SPLIT marker
 * (tabletserver/manifest.h), starts serving the children, calls
 * commit_split (METADATA rows, then the master) and answers.  A
 * TSP_LOAD_TABLET of a directory with a SPLIT marker loads nothing and
 * answers the children instead (ts_proto.h, tsp_load_answer).
 * Commands that change what it serves (load, unload, split) carry the
 * master's sequencer for /bt/master, which the server checks with the lock
 * service: an older master's sequencer is refused (BT_EFAILED_PRECONDITION).
 *
 * Threads: the RPC loop thread only decodes frames, dispatches and writes
 * answers; nothing on it touches the disk.  Point reads, scans, writes,
 * conditional writes (check-and-mutate, read-modify-write) and admin work
 * each have their own pool, so a slow scan never stalls point reads and
 * fsyncs never stall either.  Writers drain their queue in batches: all the
 * row mutations queued for one tablet become one commit-log record, so many
 * concurrent clients share one fsync.
 */
#ifndef BT_TS_SERVER_H
#define BT_TS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "tabletserver/tablet.h"
#include "tabletserver/ts_proto.h"

typedef struct ts_server ts_server;

typedef struct ts_server_options {
    const char *bind;            /* listen address; NULL -> "127.0.0.1" */
    uint16_t port;               /* 0: an ephemeral port */
    const char *advertise;       /* address written to the lock file; NULL -> bind:port */
    const char *id;              /* /bt/servers/<id>; NULL -> "<bind>-<port>" */
    const char *data_dir;        /* required: tablets live under it, the logs in
                                    <data_dir>/servers/<id>/log-<start time> */
    const char *lock_url;        /* required */
    uint32_t lease_ms;           /* lock session lease; 0 -> 10000 */
    size_t memtable_bytes;       /* 0 -> 64 MiB */
    size_t cache_bytes;          /* 0 -> 256 MiB */
    ts_durability durability;    /* default sync */
    int read_threads;            /* point reads; 0 -> 2 */
    int scan_threads;            /* 0 -> 2 */
    int write_threads;           /* batch committers; 0 -> 4 */
    int cond_threads;            /* check-and-mutate, read-modify-write; 0 -> 4 */
    int admin_threads;           /* load/unload/split/flush/compact; 0 -> 2 */
    uint32_t scanner_lease_ms;   /* idle scanners are closed after it; 0 -> 60000 */
    int max_connections;         /* 0 -> 10000 */
    /* Commits a split done by this server: called after the children are
     * serving and the parent's SPLIT marker is durable, before the split is
     * answered (on an admin thread, with the server's admin commands held
     * up until it returns).  Writes the METADATA rows, then tells the master.
     * Returns BT_OK or an error code; a failure is retried a few times with
     * backoff, then answered to TSP_SPLIT (the split stays done: the master
     * repairs METADATA from the SPLIT marker when it next loads the
     * parent).  NULL: nothing is committed, and no automatic splits. */
    int (*commit_split)(void *arg, const tsp_split_info *info);
    void *commit_arg;
    /* Automatic splits: about once a second, a tablet whose SSTables hold
     * more than this many bytes (and whose table is not METADATA) is split at
     * its middle row into two new tablets (ids bt_new_tablet_id(), dirs
     * bt_tablet_dir(table, id)), as TSP_SPLIT would.  0 = never; only with
     * commit_split set. */
    uint64_t split_bytes;
} ts_server_options;

/* Opens the engine, registers in the lock service (waiting up to two leases
 * for a previous holder of /bt/servers/<id> to expire) and starts serving.
 * Returns BT_OK, BT_EINVAL (bad options), BT_EIO (cannot listen), BT_ETIMEDOUT
 * (the lock stays held elsewhere), BT_EUNAVAIL (no lock service) or an engine
 * error; the detail is in bt_errmsg(). */
int ts_server_open(const ts_server_options *o, ts_server **out);

/* "host:port" the server is reachable at (what the lock file says). */
const char *ts_server_address(const ts_server *s);
/* Its id (the last component of its lock file's path). */
const char *ts_server_id(const ts_server *s);

/* Runs the supervisor (lease tracking, re-registration) on the calling thread
 * until ts_server_request_stop, or until the lock file is deleted.  Returns 0
 * after a requested stop, 3 if the lock file was deleted. */
int ts_server_run(ts_server *s);

/* Asks ts_server_run to return.  Thread-safe; not async-signal-safe. */
void ts_server_request_stop(ts_server *s);

/* Stops serving; if the server still holds its lock it flushes and closes
 * every tablet, deletes its lock file and ends its session, otherwise it
 * closes the tablets without writing.  Frees s.  NULL is allowed. */
void ts_server_close(ts_server *s);

#endif

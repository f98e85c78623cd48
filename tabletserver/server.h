/* tabletserver/server.h: bt-tabletserver, the storage engine served over the
 * network (design sections 2, 4, 5 and 8; methods in tabletserver/ts_proto.h).
 *
 * A server owns one ts_engine (one commit log shared by its tablets, one
 * block cache), one RPC server and one lock-service session.  It registers
 * as /bt/servers/<id> (holding that file's lock, contents: its address) and
 * serves only while the lock is held:
 *   - every read and every write acknowledgement first checks that the
 *     session's lease is valid by the server's own conservative clock;
 *   - when the session expires it stops serving at once, drops its tablets
 *     without writing anything (another server may own them by now), and
 *     re-registers if /bt/servers/<id> still exists (with no tablets);
 *   - if that file is deleted (the master declared it dead) it exits.
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

typedef struct ts_server ts_server;

typedef struct ts_server_options {
    const char *bind;            /* listen address; NULL -> "127.0.0.1" */
    uint16_t port;               /* 0: an ephemeral port */
    const char *advertise;       /* address written to the lock file; NULL -> bind:port */
    const char *id;              /* /bt/servers/<id>; NULL -> "<bind>-<port>" */
    const char *data_dir;        /* required: tablets live under it, the log in
                                    <data_dir>/servers/<id>/log */
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

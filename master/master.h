/* master/master.h: bt-master (design section 7; docs/architecture.md,
 * "Master").
 *
 * One master is active: the one holding /bt/master in the lock service.
 * Others wait on that lock as standbys and answer every RPC with
 * BT_EUNAVAIL.  The active master
 *   - tracks tablet servers through /bt/servers (a server whose lock is free
 *     is dead: the master takes the lock and deletes the file; a server that
 *     stops answering has its file deleted, which makes it exit);
 *   - recovers dead servers: every commit-log directory under
 *     <data-dir>/servers/ that no live server names is split per tablet into
 *     the tablets' recovery/ directories (tabletserver/logsplit.h), then
 *     deleted; only then are the dead server's tablets assigned again;
 *   - assigns tablets (root first, then METADATA, then user tablets) with
 *     LOAD_TABLET carrying its sequencer, and records locations in METADATA
 *     (and the root's in /bt/root);
 *   - creates, deletes and alters tables, splits, flushes and compacts them
 *     on request, records splits the servers report, balances tablets across
 *     servers (flush, unload, load) and garbage-collects SSTables that no
 *     manifest references.
 * It kills itself (exit status 4) when its lock-service session expires.
 * It is never on the data path.
 */
#ifndef BT_MASTER_H
#define BT_MASTER_H

#include <stdint.h>

typedef struct bt_master bt_master;

typedef struct bt_master_options {
    const char *lock_url;          /* required */
    const char *data_dir;          /* required: the tablet servers' --data-dir */
    const char *bind;              /* NULL -> 127.0.0.1 */
    uint16_t port;                 /* 0: ephemeral */
    const char *advertise;         /* written to /bt/master; NULL -> bind:port */
    uint32_t lease_ms;             /* lock session lease; 0 -> 10000 */
    uint32_t tick_ms;              /* control loop period; 0 -> 100 */
    uint32_t balance_interval_ms;  /* 0 -> 10000; UINT32_MAX: never */
    uint32_t gc_interval_s;        /* 0 -> 300; UINT32_MAX: never */
    uint32_t gc_grace_s;           /* files younger than this are spared; 0 -> 600 */
    uint32_t server_timeout_ms;    /* a server not answering this long is declared
                                      dead; 0 -> 3 x lease */
} bt_master_options;

/* Validates options, opens the lock-service session and starts the RPC
 * server (answering BT_EUNAVAIL until active).  BT_EINVAL, BT_EIO (cannot
 * listen), BT_EUNAVAIL (no lock service). */
int bt_master_open(const bt_master_options *o, bt_master **out);
const char *bt_master_address(const bt_master *m);

/* Waits for /bt/master (as a standby), then runs the control loop until
 * bt_master_request_stop.  Returns 0 after a requested stop; exits the
 * process with status 4 if the session expires while active. */
int bt_master_run(bt_master *m);
void bt_master_request_stop(bt_master *m);
void bt_master_close(bt_master *m);

#endif

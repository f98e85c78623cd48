/* lockservice/lockd.h: the bt-lockd server as a library, so tools/lockd_main.c
 * stays a thin flag parser and tests could embed a server.  Semantics are
 * those of lockservice/lock.h; the wire methods are in lockd_proto.h. */
#ifndef BT_LOCKSERVICE_LOCKD_H
#define BT_LOCKSERVICE_LOCKD_H

#include <stdint.h>

typedef struct lockd lockd;

typedef struct lockd_opts {
    const char *bind;       /* NULL: 127.0.0.1 */
    uint16_t port;          /* 0: ephemeral */
    const char *data_dir;   /* required; the LevelDB lives in DATA_DIR/lockd.ldb */
    uint32_t lease_ms;      /* default lease; 0: 10000 */
    uint32_t grace_ms;      /* restart grace; 0: LKD_MAX_LEASE_MS */
} lockd_opts;

/* Opens the store, restores sessions (each gets the grace period), starts
 * serving.  *out is freed with lockd_close.  BT_OK or a BT_E* code with
 * detail in bt_errmsg(). */
int lockd_open(const lockd_opts *o, lockd **out);
uint16_t lockd_port(const lockd *d);
/* Stops serving and frees everything; sessions stay persisted (a later
 * lockd_open on the same directory restores them with a grace period). */
void lockd_close(lockd *d);

#endif

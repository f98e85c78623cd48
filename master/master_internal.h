/* master/master_internal.h: the master's state, shared by master.c (life
 * cycle, control loop, servers, recovery, assignment), meta_io.c (METADATA
 * and /bt/root I/O), admin.c (the RPC methods) and gc.c. */
#ifndef BT_MASTER_INTERNAL_H
#define BT_MASTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/conn.h"
#include "client/meta.h"
#include "common/rpc.h"
#include "lockservice/lock.h"
#include "master/master.h"
#include "master/master_proto.h"
#include "tabletserver/ts_proto.h"

/* A tablet server the master knows. */
#define M_EVENTS 64
#define M_EVENT_LEN 200

typedef struct mserver {
    char id[TS_MAX_NAME + 1];
    char addr[256];
    char logdir[1100];             /* relative to the data dir */
    int unlocked_seen;             /* consecutive scans that found its lock free */
    bool seen;                     /* found in the last scan of /bt/servers */
    bool relisted;                 /* its tablets listed again during this discovery */
    bool listed;                   /* its tablets were listed successfully once */
    int64_t doomed_until_us;       /* declared dead for not answering: its file is
                                      deleted; recovered once its lease surely ran out */
    int ping_failures;
    int64_t last_ok_us, next_ping_us;
    uint64_t tablets, memtable_bytes, sstable_bytes, reads, writes; /* from its status */
    uint64_t compaction_queue;
    int64_t next_sizes_us;         /* next listing of its tablets' sizes */
} mserver;

/* A tablet: its METADATA entry plus the master's view of it. */
typedef struct mtablet {
    bt_meta_entry e;               /* e.server/server_id: what METADATA should say */
    mserver *srv;                  /* assigned to, or NULL */
    bool dirty;                    /* METADATA row (or /bt/root) must be rewritten */
    bool scanned;                  /* METADATA tablets: rows read into the master */
    int64_t hold_until_us;         /* not assigned before (a server declared dead
                                      for not answering may still be draining) */
    int failures;                  /* failed loads in a row */
    mserver *maybe_on;             /* a load sent there got no answer: it may serve
                                      the tablet, so it is loaded nowhere else */
    uint64_t memtable_bytes, sstable_bytes; /* as its server last listed them */
} mtablet;

/* A tablet of a deleted table whose server did not confirm the unload yet. */
typedef struct mzombie {
    uint64_t id;
    char dir[1100];
    mserver *srv;
} mzombie;

typedef struct mtable {
    char name[TS_MAX_NAME + 1];
    ts_schema schema;
} mtable;

typedef struct orphan_log {
    char rel[1100];                /* relative to the data dir */
    uint64_t split_version;        /* map_version it was last split with (0: never) */
} orphan_log;

typedef struct mjob mjob;

struct bt_master {
    bt_master_options o;
    char *data_dir;                /* realpath of --data-dir */
    char *addr, *lock_url, *bind;
    lk_client *lk;
    rpc_server *rpc;
    bt_conn_pool *pool;

    pthread_mutex_t mu;            /* everything below, and every command sent */
    atomic_bool active;
    char seqr[LK_MAX_SEQUENCER];
    int64_t active_since_us;

    mserver **servers; size_t n_servers, cap_servers;
    mtablet **tablets; size_t n_tablets, cap_tablets;
    mtable *tables; size_t n_tables;
    mtablet *root;                 /* NULL until /bt/root is read or bootstrapped */
    bool meta_complete;            /* root and every METADATA tablet scanned */
    uint64_t map_version;          /* bumps whenever a tablet id becomes known */
    orphan_log *orphans; size_t n_orphans;
    bool orphans_current;          /* every orphan log split with map_version */
    /* tablet id -> server, as servers reported at activation / registration */
    struct { uint64_t id; mserver *srv; } *served; size_t n_served, cap_served;

    mzombie *zombies; size_t n_zombies;
    bool servers_complete;         /* the last scan of /bt/servers read every file */
    char **pending_drops; size_t n_pending_drops; /* dead servers' pool entries */
    int unlocked_calls;            /* admin calls running without mu (flush, compact) */

    uint64_t servers_recovered, tablets_moved, splits;
    int64_t next_balance_us, next_gc_us;

    /* supervisor */
    pthread_mutex_t sup_mu;
    pthread_cond_t sup_cv;
    bool stop;

    /* admin worker pool */
    pthread_mutex_t job_mu;
    pthread_cond_t job_cv;
    mjob *jobs, *jobs_tail;
    bool job_stop;
    pthread_t workers[2];
    int n_workers;

    /* recent events for status pages (m_event) */
    pthread_mutex_t ev_mu;
    struct m_event_slot { int64_t time_us; char text[M_EVENT_LEN]; } events[M_EVENTS];
    size_t ev_next, ev_count;
};

int64_t m_mono_us(void);
int64_t m_wall_us(void);

/* Records an event in the master's recent-events ring (shown by
 * bt_cluster_status_get: status pages, bt-shell).  Thread-safe. */
void m_event(bt_master *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copies the events, oldest first, into ev (M_EVENTS entries) whose texts
 * point into text; returns how many. */
size_t m_events_copy(bt_master *m, mp_event *ev, char (*text)[M_EVENT_LEN]);

/* master.c */
mtablet *m_find_tablet(bt_master *m, uint64_t id);
mtable *m_find_table(bt_master *m, const char *name, size_t len);
mtablet *m_add_tablet(bt_master *m, const bt_meta_entry *e);   /* copies e; NULL on ENOMEM */
void m_remove_tablet(bt_master *m, mtablet *t);
mserver *m_find_server(bt_master *m, const char *id, size_t len);
mserver *m_least_loaded(bt_master *m, const mserver *except);
size_t m_server_load(bt_master *m, const mserver *s);
void m_set_server(mtablet *t, mserver *s);
const ts_schema *m_schema_of(bt_master *m, const mtablet *t, ts_schema *scratch);
int m_load(bt_master *m, mtablet *t, mserver *s);              /* assigns; handles split answers */
int m_unload(bt_master *m, mtablet *t);
int m_ts_call_unload(bt_master *m, const mtablet *t); /* the fenced UNLOAD only */
int m_move(bt_master *m, mtablet *t, mserver *to);
int m_apply_split(bt_master *m, uint64_t parent, const uint8_t *mid, size_t ml,
                  const tsp_tablet *l, const tsp_tablet *r, mserver *srv);
int m_ts_call(bt_master *m, const char *addr, uint16_t method, const bt_buf *req, bt_buf *resp, int timeout_ms);

/* meta_io.c */
int m_meta_write(bt_master *m, mtablet *t);                    /* row (and /bt/root for the root) */
int m_meta_delete(bt_master *m, const mtablet *t);
typedef int (*m_row_fn)(bt_master *m, const ts_row *row, void *arg);
int m_meta_scan(bt_master *m, const mtablet *mt, m_row_fn fn, void *arg);
int m_write_schema(bt_master *m, const char *name, const ts_schema *s, bool create);

/* admin.c */
void m_admin_handler(void *arg, const rpc_request *req, rpc_ctx *ctx);
int m_admin_start(bt_master *m);
void m_admin_stop(bt_master *m);

/* gc.c */
int m_gc(bt_master *m, uint32_t grace_ms, uint64_t *files, uint64_t *bytes);

#endif

/* client/bt_internal.h: libbt's insides, shared by its files
 *
 *     bt_client.c  connect, the location cache and the three-level lookup,
 *                  the retry loop, tablet-server and master calls, table handles
 *     bt_write.c   mutations, apply, batches, check-and-mutate, read-modify-write
 *     bt_read.c    filters, rows, read_row, scanners, row-set scans
 *     bt_admin.c   the schema builder and the master's administrative calls
 *
 * and by the other parts of the system that act as clients: the tablet
 * server commits splits in METADATA with bt_apply and reports them with
 * bt_client_master_call; tools read the lock service through bt_client_lock.
 * docs/architecture.md ("The client library") describes the lookup.
 */
#ifndef BT_CLIENT_BT_INTERNAL_H
#define BT_CLIENT_BT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/bt.h"
#include "client/conn.h"
#include "client/meta.h"
#include "common/coding.h"
#include "lockservice/lock.h"
#include "tabletserver/tablet.h"

/* ==== for other modules ==================================================== */

/* Calls `method` on the active master (the address in /bt/master, cached and
 * re-read after BT_EUNAVAIL or a connection failure) and waits for its
 * answer, retrying a standby's or an unreachable master's BT_EUNAVAIL with
 * backoff until the client's deadline (timeout_ms).  payload may be NULL
 * (empty).  answer (may be NULL) receives the answer's payload (on an error,
 * the master's detail text, also in bt_errmsg()).  Returns the master's
 * status or BT_EUNAVAIL / BT_ETIMEDOUT.  Thread-safe. */
int bt_client_master_call(bt_client *c, uint16_t method, const bt_buf *payload, bt_buf *answer);

/* The client's lock-service session (owned by the client, valid until
 * bt_close; a session that expired is replaced, so do not keep the pointer
 * across calls). */
int bt_client_lock(bt_client *c, lk_client **out);

/* The client's connection pool (owned by the client). */
bt_conn_pool *bt_client_pool(bt_client *c);

/* A view of the mutation as the engine's array (valid until the mutation
 * changes or is freed) and its row. */
int bt_mutation_to_ts(const bt_mutation *m, const ts_mutation **muts, int *n);
void bt_mutation_row(const bt_mutation *m, const uint8_t **row, size_t *len);
/* Appends a copy of an engine mutation (validated like bt_mutation_set &c.). */
int bt_mutation_add_ts(bt_mutation *m, const ts_mutation *x);

/* The engine's view of a filter (pointers into f, valid while f is). NULL f:
 * NULL. */
const ts_read_options *bt_filter_to_ts(const bt_filter *f);

/* The schema of a builder (read-only view) and a builder from a schema. */
const ts_schema *bt_schema_ts(const bt_schema *s);
bt_schema *bt_schema_from_ts(const ts_schema *ts);

/* Test hook: called by bt_bulk_finish after a tablet's files are written,
 * just before they are attached (NULL: nothing). */
extern void (*bt_bulk_before_attach)(uint64_t tablet_id, void *arg);
extern void *bt_bulk_before_attach_arg;

/* ==== shared between libbt's files ========================================= */

struct bt_client {
    bt_client_options o;            /* defaults resolved */
    char *lock_url;
    bt_conn_pool *pool;

    pthread_mutex_t lk_mu;          /* lk (replaced when its session expires) and retired */
    lk_client *lk;
    lk_client **retired;            /* expired sessions, closed by bt_close */
    size_t n_retired;

    pthread_rwlock_t cache_mu;      /* cache[], n_cache, cap_cache, root, root_valid */
    struct bt_loc_slot **cache;     /* sorted by METADATA key (table, end row) */
    size_t n_cache, cap_cache;
    bt_meta_entry root;             /* the root tablet's location, from /bt/root */
    bool root_valid;

    pthread_mutex_t master_mu;      /* master_addr */
    char master_addr[256];          /* "" : read /bt/master again */

    atomic_uint_fast64_t st_lookups, st_lookup_rpcs, st_cache_hits, st_rpcs, st_retries;

    /* thread_connections: each thread's blocking connection per server */
    pthread_mutex_t tc_mu;
    struct bt_tconn { pthread_t tid; char addr[256]; struct rpc_sync_conn *conn; } *tconns;
    size_t n_tconns, cap_tconns;
};

struct bt_table {
    bt_client *c;
    char name[TS_MAX_NAME + 1];
    bool is_meta;
    pthread_mutex_t mu;             /* schema */
    ts_schema schema;
};

/* A located tablet: its id, server and (if asked for) its row range. */
typedef struct bt_loc {
    uint64_t id;
    char server[256];
    bool have_range;
    bt_buf start, end;              /* end.len 0: unbounded */
} bt_loc;
void bt_loc_free(bt_loc *l);

/* The state of one public call across its attempts: the deadline, the
 * backoff and the last failure (for the final error). */
typedef struct bt_op {
    bt_client *c;
    int64_t start_us, deadline_us;  /* CLOCK_MONOTONIC */
    int attempts;
    int backoff_ms;
    int last_rc;
    char detail[400];
} bt_op;

void bt_op_init(bt_op *op, bt_client *c);
/* Milliseconds one attempt may take: min(rpc_timeout_ms, time left), >= 1. */
int bt_op_attempt_ms(const bt_op *op);
/* Records a retryable failure rc (and bt_errmsg()); if the deadline allows,
 * sleeps the jittered backoff (10 ms doubling to 200 ms), counts a retry and
 * returns true; else false. */
bool bt_op_backoff(bt_op *op, int rc);
/* The final error after the deadline: BT_ETIMEDOUT if the last attempt timed
 * out, else BT_EUNAVAIL, with a detail naming `what`. */
int bt_op_fail(bt_op *op, const char *what);
/* Codes after which an operation is retried from the lookup. */
bool bt_retryable(int rc);

/* Finds the tablet of table (len tl) holding row: the cache, else the
 * lookup (one attempt of it: retryable failures return to the caller's
 * loop).  want_range fills l->start/end.  BT_ENOTFOUND: the table has no
 * tablets (it does not exist). */
int bt_locate(bt_client *c, const char *table, const uint8_t *row, size_t rl, bt_op *op, bool want_range,
              bt_loc *l);
/* Forgets the cached location of tablet id of table (holding row). */
void bt_loc_drop(bt_client *c, const char *table, const uint8_t *row, size_t rl, uint64_t id);

/* One call to a tablet server (or the master): counts it, sets a detail
 * (the server's text) on errors.  resp may be NULL. */
int bt_client_rpc(bt_client *c, const char *addr, uint16_t method, const bt_buf *req, bt_buf *resp,
                  int timeout_ms);

/* Calls `method` on the tablet of t holding row, with the payload
 * varint(tablet id) + tail, retrying stale locations, dead servers and
 * timeouts until the deadline.  With only_not_serving set, a failure that
 * may have come after the server applied the call is not retried (it
 * becomes BT_EUNAVAIL): read-modify-write. */
int bt_tablet_call(bt_table *t, const uint8_t *row, size_t rl, uint16_t method, const bt_buf *tail,
                   bt_buf *resp, bool only_not_serving);

/* Asynchronous calls, at most `limit` in flight (for batches and row sets). */
typedef struct bt_async_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending, limit;
} bt_async_group;

typedef struct bt_async_call {
    bt_async_group *g;
    int status;
    bt_buf resp;                    /* the answer's payload (or detail text) */
} bt_async_call;

void bt_async_group_init(bt_async_group *g, int limit);
void bt_async_group_destroy(bt_async_group *g);
/* Waits for a free slot, then starts the call (a->resp cleared); if it cannot
 * be started a->status holds why and nothing is pending. */
void bt_async_start(bt_client *c, bt_async_group *g, bt_async_call *a, const char *addr, uint16_t method,
                    const bt_buf *req, int timeout_ms);
void bt_async_wait_all(bt_async_group *g);

/* The table's schema; refresh re-reads /bt/schema/<name> first. */
int bt_table_schema(bt_table *t, bool refresh, ts_schema *out);
/* BT_OK if every family named in the mutations / filter is in the schema
 * (re-read once before refusing), else BT_ENOTFOUND "table t has no family f". */
int bt_table_check_families(bt_table *t, const ts_mutation *m, int n, const ts_read_options *f);
/* Row key rules: 1..TS_MAX_ROW_KEY bytes. */
int bt_check_row(const void *row, size_t len);

/* A bt_row (first member) with the memory behind it. */
typedef struct bt_row_box {
    bt_row row;
    bt_buf payload;                 /* the answer the row points into (read_row) */
    bt_cell *cells;
    size_t cap_cells;
} bt_row_box;
/* Points b's row at tr (whose memory must outlive b's use). */
int bt_row_box_set(bt_row_box *b, const ts_row *tr);
/* Decodes one row from a whole answer, taking the answer's memory (resp is
 * left empty).  *out is freed with bt_row_free. */
int bt_row_from_answer(bt_buf *resp, bt_row **out);

int64_t bt_now_us(void);

#endif

/* master/master_proto.h: bt-master's RPC methods and their payloads
 * (docs/protocol.md, "Master methods").  Used by bt-master, libbt's admin
 * calls and bt-tabletserver's split reports.  Payloads use the positional
 * fields of common/rpc_codec.h, like ts_proto.h; a table schema is encoded
 * with tsp_put_schema.  The client finds the active master's address in the
 * lock-service file /bt/master; a standby master answers every method with
 * BT_EUNAVAIL ("not the active master").
 */
#ifndef BT_MASTER_PROTO_H
#define BT_MASTER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "common/rpc_codec.h"
#include "tabletserver/tablet.h"

/* method numbers (200-299: the master) ------------------------------------------ */
enum {
    MP_CREATE_TABLE = 200,   /* bytes name, schema, varint n, n x bytes split_row  ->  - */
    MP_DELETE_TABLE = 201,   /* bytes name  ->  - */
    MP_ALTER_TABLE = 202,    /* bytes name, varint op (MP_ALTER_*), bytes family,
                                varint max_versions, fixed64 max_age_us,
                                varint gc_intersection  ->  - */
    MP_LIST_TABLES = 203,    /* -  ->  varint n, n x bytes name (sorted) */
    MP_DESCRIBE = 204,       /* bytes name  ->  schema, varint n, n x mp_tablet */
    MP_MOVE_TABLET = 205,    /* varint tablet_id, bytes server_id ("" = master picks)  ->  - */
    MP_SPLIT_TABLE = 206,    /* bytes name, bytes row ("" = every tablet at its middle)  ->  - */
    MP_FLUSH_TABLE = 207,    /* bytes name  ->  - */
    MP_COMPACT_TABLE = 208,  /* bytes name  ->  - */
    MP_STATUS = 209,         /* -  ->  mp_status */
    MP_REPORT_SPLIT = 210,   /* from a tablet server after it committed a split in
                                METADATA: varint parent_id, bytes mid, tsp_tablet
                                left, tsp_tablet right, bytes server_id  ->  - */
    MP_RUN_GC = 211,         /* varint grace_ms  ->  varint files, varint bytes */
};

enum { MP_ALTER_ADD_FAMILY = 1, MP_ALTER_DROP_FAMILY = 2, MP_ALTER_SET_GC = 3 };

const char *mp_method_name(uint16_t method);

/* A tablet with its location (MP_DESCRIBE):
 * tsp_tablet, bytes server ("host:port" or ""), bytes server_id.  The
 * MP_DESCRIBE answer is: schema, varint n, n x mp_tablet, then (appended
 * later) varint n, n x (varint memtable_bytes, varint sstable_bytes) as the
 * tablets' servers last listed them. */
typedef struct mp_tablet {
    uint64_t id;
    const char *table; size_t table_len;
    const char *dir; size_t dir_len;
    const uint8_t *start; size_t start_len;
    const uint8_t *end; size_t end_len;
    const char *server; size_t server_len;
    const char *server_id; size_t server_id_len;
} mp_tablet;
void mp_put_tablet(bt_msg_writer *w, const mp_tablet *t);
int mp_get_tablet(bt_msg_reader *r, mp_tablet *t);

/* MP_STATUS answer: bytes master_address, fixed64 active_since_us, varint
 * tables, varint tablets, varint unassigned, varint servers_recovered,
 * varint tablets_moved, varint splits, varint n, n x mp_server (bytes id,
 * bytes address, varint tablets, memtable_bytes, sstable_bytes, reads,
 * writes), then appended later: varint n_events, n_events x (fixed64
 * time_us, bytes text), varint n, n x varint compaction_queue (per server, in
 * order).  The decoder reads absent trailing sections as empty. */
typedef struct mp_server {
    const char *id; size_t id_len;
    const char *address; size_t address_len;
    uint64_t tablets, memtable_bytes, sstable_bytes, reads, writes, compaction_queue;
} mp_server;
typedef struct mp_event {
    int64_t time_us;
    const char *text; size_t text_len;
} mp_event;
typedef struct mp_status {
    const char *address; size_t address_len;
    int64_t active_since_us;
    uint64_t tables, tablets, unassigned, servers_recovered, tablets_moved, splits;
    size_t n_servers;
    mp_server *servers;       /* decoder: malloc'd array, free() it */
    size_t n_events;
    mp_event *events;         /* oldest first; decoder: malloc'd array, free() it */
} mp_status;
void mp_put_status(bt_msg_writer *w, const mp_status *s);
int mp_get_status(bt_msg_reader *r, mp_status *s);

#endif

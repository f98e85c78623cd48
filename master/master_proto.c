/* master/master_proto.c: payload codecs of the master's methods
 * (master/master_proto.h). */
#include "master/master_proto.h"
#include "tabletserver/ts_proto.h"
#include "common/status.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[] = {
    "create_table", "delete_table", "alter_table", "list_tables", "describe", "move_tablet",
    "split_table", "flush_table", "compact_table", "status", "report_split", "run_gc",
};

const char *mp_method_name(uint16_t m)
{
    size_t i = (size_t)m - MP_CREATE_TABLE;
    return m >= MP_CREATE_TABLE && i < sizeof names / sizeof names[0] ? names[i] : NULL;
}

void mp_put_tablet(bt_msg_writer *w, const mp_tablet *t)
{
    tsp_tablet tt = { .id = t->id, .table = t->table, .table_len = t->table_len, .dir = t->dir,
                      .dir_len = t->dir_len, .start = t->start, .start_len = t->start_len,
                      .end = t->end, .end_len = t->end_len };
    tsp_put_tablet(w, &tt);
    bt_msg_put_bytes(w, t->server, t->server_len);
    bt_msg_put_bytes(w, t->server_id, t->server_id_len);
}

int mp_get_tablet(bt_msg_reader *r, mp_tablet *t)
{
    memset(t, 0, sizeof *t);
    tsp_tablet tt;
    const uint8_t *sv, *sid;
    int rc = tsp_get_tablet(r, &tt);
    if (!rc) rc = bt_msg_get_bytes(r, &sv, &t->server_len);
    if (!rc) rc = bt_msg_get_bytes(r, &sid, &t->server_id_len);
    if (rc) {
        memset(t, 0, sizeof *t);
        return rc;
    }
    t->id = tt.id;
    t->table = tt.table; t->table_len = tt.table_len;
    t->dir = tt.dir; t->dir_len = tt.dir_len;
    t->start = tt.start; t->start_len = tt.start_len;
    t->end = tt.end; t->end_len = tt.end_len;
    t->server = (const char *)sv;
    t->server_id = (const char *)sid;
    return BT_OK;
}

void mp_put_status(bt_msg_writer *w, const mp_status *s)
{
    bt_msg_put_bytes(w, s->address, s->address_len);
    bt_msg_put_fixed64(w, (uint64_t)s->active_since_us);
    bt_msg_put_varint(w, s->tables);
    bt_msg_put_varint(w, s->tablets);
    bt_msg_put_varint(w, s->unassigned);
    bt_msg_put_varint(w, s->servers_recovered);
    bt_msg_put_varint(w, s->tablets_moved);
    bt_msg_put_varint(w, s->splits);
    bt_msg_put_varint(w, s->n_servers);
    for (size_t i = 0; i < s->n_servers; i++) {
        const mp_server *v = &s->servers[i];
        bt_msg_put_bytes(w, v->id, v->id_len);
        bt_msg_put_bytes(w, v->address, v->address_len);
        bt_msg_put_varint(w, v->tablets);
        bt_msg_put_varint(w, v->memtable_bytes);
        bt_msg_put_varint(w, v->sstable_bytes);
        bt_msg_put_varint(w, v->reads);
        bt_msg_put_varint(w, v->writes);
    }
    /* appended later (docs/protocol.md "Evolution") */
    bt_msg_put_varint(w, s->n_events);
    for (size_t i = 0; i < s->n_events; i++) {
        bt_msg_put_fixed64(w, (uint64_t)s->events[i].time_us);
        bt_msg_put_bytes(w, s->events[i].text, s->events[i].text_len);
    }
    bt_msg_put_varint(w, s->n_servers);
    for (size_t i = 0; i < s->n_servers; i++) bt_msg_put_varint(w, s->servers[i].compaction_queue);
}

int mp_get_status(bt_msg_reader *r, mp_status *s)
{
    memset(s, 0, sizeof *s);
    const uint8_t *a;
    uint64_t since, n = 0;
    int rc = bt_msg_get_bytes(r, &a, &s->address_len);
    if (!rc) rc = bt_msg_get_fixed64(r, &since);
    if (!rc) rc = bt_msg_get_varint(r, &s->tables);
    if (!rc) rc = bt_msg_get_varint(r, &s->tablets);
    if (!rc) rc = bt_msg_get_varint(r, &s->unassigned);
    if (!rc) rc = bt_msg_get_varint(r, &s->servers_recovered);
    if (!rc) rc = bt_msg_get_varint(r, &s->tablets_moved);
    if (!rc) rc = bt_msg_get_varint(r, &s->splits);
    if (!rc) rc = bt_msg_get_varint(r, &n);
    /* each server takes at least 7 bytes: bound the allocation by the input */
    if (!rc && n > bt_msg_remaining(r) / 7) rc = bt_err(BT_ECORRUPT, "status: %llu servers in %zu bytes",
                                                        (unsigned long long)n, bt_msg_remaining(r));
    if (!rc && n && !(s->servers = calloc(n, sizeof *s->servers))) rc = BT_ENOMEM;
    for (uint64_t i = 0; !rc && i < n; i++) {
        mp_server *v = &s->servers[i];
        const uint8_t *id, *ad;
        rc = bt_msg_get_bytes(r, &id, &v->id_len);
        if (!rc) rc = bt_msg_get_bytes(r, &ad, &v->address_len);
        if (!rc) rc = bt_msg_get_varint(r, &v->tablets);
        if (!rc) rc = bt_msg_get_varint(r, &v->memtable_bytes);
        if (!rc) rc = bt_msg_get_varint(r, &v->sstable_bytes);
        if (!rc) rc = bt_msg_get_varint(r, &v->reads);
        if (!rc) rc = bt_msg_get_varint(r, &v->writes);
        if (!rc) {
            v->id = (const char *)id;
            v->address = (const char *)ad;
        }
    }
    /* trailing sections a master older than them does not send */
    uint64_t ne = 0, nq = 0;
    if (!rc && bt_msg_remaining(r)) rc = bt_msg_get_varint(r, &ne);
    /* each event takes at least 9 bytes */
    if (!rc && ne > bt_msg_remaining(r) / 9) rc = bt_err(BT_ECORRUPT, "status: %llu events in %zu bytes",
                                                         (unsigned long long)ne, bt_msg_remaining(r));
    if (!rc && ne && !(s->events = calloc(ne, sizeof *s->events))) rc = BT_ENOMEM;
    for (uint64_t i = 0; !rc && i < ne; i++) {
        uint64_t tu;
        const uint8_t *tx;
        rc = bt_msg_get_fixed64(r, &tu);
        if (!rc) rc = bt_msg_get_bytes(r, &tx, &s->events[i].text_len);
        if (!rc) {
            s->events[i].time_us = (int64_t)tu;
            s->events[i].text = (const char *)tx;
        }
    }
    if (!rc && bt_msg_remaining(r)) rc = bt_msg_get_varint(r, &nq);
    if (!rc && nq != 0 && nq != n) rc = bt_err(BT_ECORRUPT, "status: %llu compaction queues for %llu servers",
                                               (unsigned long long)nq, (unsigned long long)n);
    for (uint64_t i = 0; !rc && i < nq; i++) rc = bt_msg_get_varint(r, &s->servers[i].compaction_queue);
    if (rc) {
        free(s->events);
        free(s->servers);
        memset(s, 0, sizeof *s);
        return rc;
    }
    s->address = (const char *)a;
    s->active_since_us = (int64_t)since;
    s->n_servers = n;
    s->n_events = ne;
    return BT_OK;
}

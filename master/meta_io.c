/* master/meta_io.c: the master's reads and writes of METADATA rows (sent
 * straight to the tablets it assigned), /bt/root and /bt/schema/<table>. */
#include "master/master_internal.h"
#include "sstable/iter.h" /* sst_key_cmp: bytewise order */
#include "common/log.h"
#include "common/status.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_TIMEOUT_MS 10000

/* The METADATA tablet whose range holds key. */
static mtablet *holder_of(bt_master *m, const uint8_t *key, size_t n)
{
    if (sst_key_cmp(key, n, (const uint8_t *)BT_META_ROOT_END, BT_META_ROOT_END_LEN) < 0) return m->root;
    for (size_t i = 0; i < m->n_tablets; i++) {
        mtablet *t = m->tablets[i];
        if (t == m->root || strcmp(t->e.table, BT_META_NAME)) continue;
        if (bt_meta_entry_contains(&t->e, key, n)) return t;
    }
    return NULL;
}

static int mutate(bt_master *m, const bt_buf *key, const ts_mutation *muts, int n)
{
    mtablet *h = holder_of(m, key->data, key->len);
    if (!h || !h->srv) return bt_err(BT_EUNAVAIL, "the METADATA tablet for that row is not served yet");
    bt_buf req = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, h->e.id);
    bt_msg_put_bytes(&w, key->data, key->len);
    tsp_put_mutations(&w, muts, n);
    int rc = bt_msg_writer_status(&w);
    if (!rc) rc = m_ts_call(m, h->srv->addr, TSP_MUTATE_ROW, &req, &resp, META_TIMEOUT_MS);
    bt_buf_free(&req);
    bt_buf_free(&resp);
    return rc;
}

int m_meta_write(bt_master *m, mtablet *t)
{
    int rc = BT_OK;
    if (t == m->root) {
        char *json = NULL;
        rc = bt_root_encode(&t->e, &json);
        if (!rc) {
            rc = lk_set(m->lk, BT_LK_ROOT, json, strlen(json), 0);
            if (rc == BT_ENOTFOUND) rc = lk_create(m->lk, BT_LK_ROOT, json, strlen(json), 0);
        }
        free(json);
        if (rc) return rc;
        if (!t->srv) return BT_OK; /* its own row is written once it is served */
    }
    bt_buf key = {0}, scratch = {0};
    ts_mutation muts[BT_META_MAX_MUTS];
    int n = bt_meta_entry_mutations(&t->e, &key, &scratch, muts);
    rc = n < 0 ? n : mutate(m, &key, muts, n);
    if (rc)
        BT_WARN("METADATA row of tablet %" PRIu64 " not written yet: %s: %s", t->e.id, bt_errname(rc), bt_errmsg());
    bt_buf_free(&key);
    bt_buf_free(&scratch);
    return rc;
}

int m_meta_delete(bt_master *m, const mtablet *t)
{
    bt_buf key = {0};
    int rc = bt_meta_key(&key, t->e.table, strlen(t->e.table), t->e.end.data, t->e.end.len);
    ts_mutation del = { .type = TS_DELETE_ROW };
    if (!rc) rc = mutate(m, &key, &del, 1);
    bt_buf_free(&key);
    return rc;
}

/* Reads every row of METADATA tablet mt. */
int m_meta_scan(bt_master *m, const mtablet *mt, m_row_fn fn, void *arg)
{
    if (!mt->srv) return BT_EUNAVAIL;
    char addr[256];
    snprintf(addr, sizeof addr, "%s", mt->srv->addr);
    uint64_t tid = mt->e.id;
    bt_buf req = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, tid);
    ts_read_options ro = { .start_row = mt->e.start.data, .start_len = mt->e.start.len,
                           .end_row = mt->e.end.data, .end_len = mt->e.end.len };
    tsp_put_filter(&w, &ro);
    bt_msg_put_varint(&w, 1000);
    bt_msg_put_varint(&w, 4u << 20);
    int rc = bt_msg_writer_status(&w);
    uint16_t method = TSP_SCAN_OPEN;
    while (!rc) {
        rc = m_ts_call(m, addr, method, &req, &resp, META_TIMEOUT_MS);
        if (rc) break;
        bt_msg_reader r;
        bt_msg_reader_init(&r, resp.data, resp.len);
        uint64_t sid;
        bool done;
        rc = tsp_get_scan_header(&r, &sid, &done);
        while (!rc && bt_msg_remaining(&r) > 0) {
            ts_row row;
            rc = tsp_get_row(&r, &row);
            if (rc) break;
            rc = fn(m, &row, arg);
            tsp_row_release(&row);
        }
        if (rc || done) {
            if (rc && sid) { /* free the server's scanner */
                bt_buf_clear(&req);
                bt_msg_writer_init(&w, &req);
                bt_msg_put_varint(&w, sid);
                m_ts_call(m, addr, TSP_SCAN_CLOSE, &req, &resp, 1000);
            }
            break;
        }
        bt_buf_clear(&req);
        bt_msg_writer_init(&w, &req);
        bt_msg_put_varint(&w, sid);
        rc = bt_msg_writer_status(&w);
        method = TSP_SCAN_NEXT;
    }
    bt_buf_free(&req);
    bt_buf_free(&resp);
    if (rc) BT_WARN("reading METADATA tablet %" PRIu64 " failed: %s: %s", tid, bt_errname(rc), bt_errmsg());
    return rc;
}

int m_write_schema(bt_master *m, const char *name, const ts_schema *s, bool create)
{
    char *json = NULL;
    char path[LK_MAX_PATH];
    snprintf(path, sizeof path, "%s/%s", BT_LK_SCHEMA, name);
    int rc = bt_schema_to_json(name, s, &json);
    if (!rc) rc = create ? lk_create(m->lk, path, json, strlen(json), 0) : lk_set(m->lk, path, json, strlen(json), 0);
    free(json);
    return rc;
}

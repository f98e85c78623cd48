/* tools/tabletserver_split.c: commits a tablet server's splits in METADATA
 * and reports them to the master (tools/tabletserver_split.h). */
#include "tools/tabletserver_split.h"
#include "client/bt_internal.h"
#include "client/meta.h"
#include "common/log.h"
#include "common/status.h"
#include "master/master_proto.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct ts_split_committer {
    char *lock_url;
    ts_server *server;
    pthread_mutex_t mu;       /* client, inflight */
    pthread_cond_t cv;
    bt_client *client;
    int inflight;             /* report threads running */
};

int ts_split_committer_new(const char *lock_url, ts_split_committer **out)
{
    ts_split_committer *c = calloc(1, sizeof *c);
    if (!c || !(c->lock_url = strdup(lock_url))) {
        free(c);
        return BT_ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    *out = c;
    return BT_OK;
}

void ts_split_committer_set_server(ts_split_committer *c, ts_server *s) { c->server = s; }

static int client_of(ts_split_committer *c, bt_client **out)
{
    pthread_mutex_lock(&c->mu);
    int rc = BT_OK;
    if (!c->client) {
        bt_client_options o = { .timeout_ms = 10000 };
        rc = bt_connect(c->lock_url, &o, &c->client);
    }
    *out = c->client;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* One METADATA row for a child served here. */
static int write_child(bt_table *meta, const tsp_tablet *k, const char *table, size_t tl, const char *addr,
                       const char *id)
{
    bt_meta_entry e = {0};
    if (tl > TS_MAX_NAME) return BT_EINVAL;
    memcpy(e.table, table, tl);
    e.table[tl] = 0;
    e.id = k->id;
    e.dir = strndup(k->dir, k->dir_len);
    e.server = strdup(addr);
    e.server_id = strdup(id);
    int rc = !e.dir || !e.server || !e.server_id ? BT_ENOMEM : BT_OK;
    if (!rc) rc = bt_buf_append(&e.start, k->start, k->start_len);
    if (!rc) rc = bt_buf_append(&e.end, k->end, k->end_len);
    bt_buf key = {0}, scratch = {0};
    ts_mutation muts[BT_META_MAX_MUTS];
    int n = rc ? rc : bt_meta_entry_mutations(&e, &key, &scratch, muts);
    bt_mutation *m = n > 0 ? bt_mutation_new(key.data, key.len) : NULL;
    if (n > 0 && !m) rc = BT_ENOMEM;
    else if (n < 0) rc = n;
    for (int i = 0; !rc && i < n; i++) rc = bt_mutation_add_ts(m, &muts[i]);
    if (!rc) rc = bt_apply(meta, m);
    bt_mutation_free(m);
    bt_buf_free(&key);
    bt_buf_free(&scratch);
    bt_meta_entry_free(&e);
    return rc;
}

typedef struct report {
    ts_split_committer *c;
    bt_buf payload;
} report;

static void *report_main(void *arg)
{
    report *r = arg;
    bt_client *cl = NULL;
    int rc = client_of(r->c, &cl);
    bt_buf ans = {0};
    if (!rc) rc = bt_client_master_call(cl, MP_REPORT_SPLIT, &r->payload, &ans);
    if (rc)
        BT_WARN("split report to the master failed (%s: %s); it will find the split in METADATA",
                bt_errname(rc), bt_errmsg());
    bt_buf_free(&ans);
    bt_buf_free(&r->payload);
    pthread_mutex_lock(&r->c->mu);
    r->c->inflight--;
    pthread_cond_broadcast(&r->c->cv);
    pthread_mutex_unlock(&r->c->mu);
    free(r);
    return NULL;
}

int ts_split_commit(void *arg, const tsp_split_info *info)
{
    ts_split_committer *c = arg;
    if (!c->server) return bt_err(BT_EUNAVAIL, "split committer not ready");
    const char *addr = ts_server_address(c->server), *id = ts_server_id(c->server);
    bt_client *cl = NULL;
    bt_table *meta = NULL;
    int rc = client_of(c, &cl);
    lk_client *lk = NULL;
    lk_stat st;
    if (!rc) rc = bt_client_lock(cl, &lk);
    if (!rc && (rc = lk_stat_path(lk, BT_LK_ROOT, &st)) == BT_ENOTFOUND) {
        /* no master ever created METADATA (a server run on its own, as in
         * its tests and bt-bench server): the split stays local */
        BT_WARN("no %s in the lock service: split of tablet %llu recorded locally only", BT_LK_ROOT,
                (unsigned long long)info->parent_id);
        return BT_OK;
    }
    if (!rc) rc = bt_table_open(cl, BT_META_NAME, &meta);
    /* left first: a new key; then the parent's key, rewritten for the right */
    if (!rc) rc = write_child(meta, &info->left, info->table, info->table_len, addr, id);
    if (!rc) rc = write_child(meta, &info->right, info->table, info->table_len, addr, id);
    bt_table_close(meta);
    if (rc) return rc;
    report *r = calloc(1, sizeof *r);
    if (!r) return BT_OK; /* committed; the report is best effort */
    r->c = c;
    bt_msg_writer w;
    bt_msg_writer_init(&w, &r->payload);
    bt_msg_put_varint(&w, info->parent_id);
    bt_msg_put_bytes(&w, info->mid, info->mid_len);
    tsp_put_tablet(&w, &info->left);
    tsp_put_tablet(&w, &info->right);
    bt_msg_put_bytes(&w, id, strlen(id));
    pthread_t th;
    pthread_mutex_lock(&c->mu);
    c->inflight++;
    pthread_mutex_unlock(&c->mu);
    if (bt_msg_writer_status(&w) || pthread_create(&th, NULL, report_main, r)) {
        pthread_mutex_lock(&c->mu);
        c->inflight--;
        pthread_mutex_unlock(&c->mu);
        bt_buf_free(&r->payload);
        free(r);
        return BT_OK;
    }
    pthread_detach(th);
    return BT_OK;
}

void ts_split_committer_free(ts_split_committer *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    while (c->inflight > 0) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    bt_close(c->client);
    free(c->lock_url);
    free(c);
}

/* client/bt_admin.c: the schema builder and the administrative calls the
 * master answers (client/bt.h; payloads in master/master_proto.h). */
#include "client/bt_internal.h"
#include "common/rpc_codec.h"
#include "common/status.h"
#include "master/master_proto.h"
#include "tabletserver/ts_proto.h"

#include <stdlib.h>
#include <string.h>

/* ---- schemas ------------------------------------------------------------------------------ */

struct bt_schema {
    ts_schema s;
};

bt_schema *bt_schema_new(void)
{
    bt_schema *s = malloc(sizeof *s);
    if (s) ts_schema_init(&s->s);
    return s;
}

void bt_schema_free(bt_schema *s) { free(s); }

const ts_schema *bt_schema_ts(const bt_schema *s) { return &s->s; }

bt_schema *bt_schema_from_ts(const ts_schema *ts)
{
    bt_schema *s = malloc(sizeof *s);
    if (s) s->s = *ts;
    return s;
}

static int find_group(const ts_schema *s, const char *name)
{
    for (int i = 0; i < s->n_groups; i++)
        if (!strcmp(s->groups[i].name, name)) return i;
    return -1;
}

static int find_family(const bt_schema *s, const char *family)
{
    if (!family) return -1;
    return ts_schema_find(&s->s, family, strlen(family));
}

int bt_schema_add_family(bt_schema *s, const char *family, uint32_t max_versions, int64_t max_age_us)
{
    if (!s) return bt_err(BT_EINVAL, "schema is NULL");
    if (!family || !bt_valid_name(family, strlen(family)))
        return bt_err(BT_EINVAL, "family name \"%s\" must be 1-64 of [A-Za-z0-9_.-]", family ? family : "(null)");
    if (find_family(s, family) >= 0) return bt_err(BT_EINVAL, "family \"%s\" is already in the schema", family);
    if (max_age_us < 0) return bt_err(BT_EINVAL, "family \"%s\": max_age_us must be >= 0", family);
    int rc = ts_schema_add_family(&s->s, family, max_versions, max_age_us);
    return rc == BT_EEXIST ? BT_EINVAL : rc;
}

int bt_schema_set_gc_intersection(bt_schema *s, const char *family, bool intersection)
{
    if (!s) return bt_err(BT_EINVAL, "schema is NULL");
    int i = find_family(s, family);
    if (i < 0) return bt_err(BT_ENOTFOUND, "the schema has no family \"%s\"", family ? family : "(null)");
    s->s.families[i].gc_intersection = intersection;
    return BT_OK;
}

int bt_schema_set_group(bt_schema *s, const bt_group_info *g)
{
    if (!s || !g) return bt_err(BT_EINVAL, "schema or group is NULL");
    if (!g->name || !bt_valid_name(g->name, strlen(g->name)))
        return bt_err(BT_EINVAL, "locality group name \"%s\" must be 1-64 of [A-Za-z0-9_.-]", g->name ? g->name : "(null)");
    if (g->bloom != BT_BLOOM_NONE && g->bloom != BT_BLOOM_ROW && g->bloom != BT_BLOOM_ROW_COLUMN)
        return bt_err(BT_EINVAL, "locality group %s: unknown bloom setting %d", g->name, (int)g->bloom);
    if (g->block_size != 0 && (g->block_size < 256 || g->block_size > (4u << 20)))
        return bt_err(BT_EINVAL, "locality group %s: block size %u outside 256..4194304", g->name, g->block_size);
    int i = find_group(&s->s, g->name);
    if (i < 0) {
        if (s->s.n_groups >= TS_MAX_GROUPS) return bt_err(BT_EINVAL, "a schema has at most %d locality groups", TS_MAX_GROUPS);
        i = s->s.n_groups++;
        memset(&s->s.groups[i], 0, sizeof s->s.groups[i]);
        strcpy(s->s.groups[i].name, g->name);
    }
    ts_locality_group *x = &s->s.groups[i];
    x->compress = g->compress;
    x->in_memory = g->in_memory;
    x->bloom = (ts_bloom)g->bloom;
    x->block_size = g->block_size ? g->block_size : 4096;
    return BT_OK;
}

int bt_schema_set_family_group(bt_schema *s, const char *family, const char *group)
{
    if (!s) return bt_err(BT_EINVAL, "schema is NULL");
    int i = find_family(s, family);
    if (i < 0) return bt_err(BT_ENOTFOUND, "the schema has no family \"%s\"", family ? family : "(null)");
    int g = group ? find_group(&s->s, group) : -1;
    if (g < 0) return bt_err(BT_ENOTFOUND, "the schema has no locality group \"%s\" (add it with bt_schema_set_group)",
                             group ? group : "(null)");
    s->s.families[i].group = g;
    return BT_OK;
}

size_t bt_schema_n_families(const bt_schema *s) { return s ? (size_t)s->s.n_families : 0; }

int bt_schema_family(const bt_schema *s, size_t i, bt_family_info *out)
{
    if (!s || !out || i >= (size_t)s->s.n_families)
        return bt_err(BT_EINVAL, "family index %zu out of range", i);
    const ts_family *f = &s->s.families[i];
    *out = (bt_family_info){.name = f->name, .max_versions = f->max_versions, .max_age_us = f->max_age_us,
                            .gc_intersection = f->gc_intersection, .group = s->s.groups[f->group].name};
    return BT_OK;
}

size_t bt_schema_n_groups(const bt_schema *s) { return s ? (size_t)s->s.n_groups : 0; }

int bt_schema_group(const bt_schema *s, size_t i, bt_group_info *out)
{
    if (!s || !out || i >= (size_t)s->s.n_groups)
        return bt_err(BT_EINVAL, "locality group index %zu out of range", i);
    const ts_locality_group *g = &s->s.groups[i];
    *out = (bt_group_info){.name = g->name, .compress = g->compress, .in_memory = g->in_memory,
                           .bloom = (bt_bloom)g->bloom, .block_size = g->block_size ? g->block_size : 4096};
    return BT_OK;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static int check_table(const char *name)
{
    if (!name || !bt_valid_name(name, strlen(name)))
        return bt_err(BT_EINVAL, "table name \"%s\" must be 1-64 of [A-Za-z0-9_.-]", name ? name : "(null)");
    return BT_OK;
}

/* A master call whose answer is empty: payload = one bytes field, the name. */
static int name_call(bt_client *c, uint16_t method, const char *name)
{
    if (!c) return bt_err(BT_EINVAL, "client is NULL");
    int rc = check_table(name);
    if (rc) return rc;
    bt_buf req = {0};
    rc = bt_buf_put_lenbytes(&req, name, strlen(name));
    if (!rc) rc = bt_client_master_call(c, method, &req, NULL);
    bt_buf_free(&req);
    return rc;
}

static int cmp_key(const void *a, const void *b)
{
    const bt_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = n ? memcmp(x->data, y->data, n) : 0;
    return r ? r : (x->len < y->len ? -1 : x->len > y->len);
}

/* ---- tables ------------------------------------------------------------------------------ */

int bt_create_table(bt_client *c, const char *name, const bt_schema *s, const bt_key *splits, size_t n_splits)
{
    if (!c) return bt_err(BT_EINVAL, "client is NULL");
    int rc = check_table(name);
    if (rc) return rc;
    if (!strcmp(name, BT_METADATA_TABLE)) return bt_err(BT_EEXIST, "table METADATA is the system's own");
    if (!s || s->s.n_families == 0) return bt_err(BT_EINVAL, "table %s: the schema needs at least one family", name);
    rc = ts_schema_validate(&s->s);
    if (rc) return rc;
    if (n_splits && !splits) return bt_err(BT_EINVAL, "split keys are NULL");
    bt_key *sorted = NULL;
    if (n_splits) {
        sorted = malloc(n_splits * sizeof *sorted);
        if (!sorted) return BT_ENOMEM;
        memcpy(sorted, splits, n_splits * sizeof *sorted);
        qsort(sorted, n_splits, sizeof *sorted, cmp_key);
    }
    for (size_t i = 0; !rc && i < n_splits; i++) {
        if (!sorted[i].data || sorted[i].len == 0 || sorted[i].len > TS_MAX_ROW_KEY)
            rc = bt_err(BT_EINVAL, "table %s: split key %zu must be 1..%d bytes", name, i, TS_MAX_ROW_KEY);
        else if (i && !cmp_key(&sorted[i - 1], &sorted[i]))
            rc = bt_err(BT_EINVAL, "table %s: split key \"%.*s\" appears twice", name,
                        (int)(sorted[i].len > 64 ? 64 : sorted[i].len), (const char *)sorted[i].data);
    }
    bt_buf req = {0};
    if (!rc) {
        bt_msg_writer w;
        bt_msg_writer_init(&w, &req);
        bt_msg_put_bytes(&w, name, strlen(name));
        tsp_put_schema(&w, &s->s);
        bt_msg_put_varint(&w, n_splits);
        for (size_t i = 0; i < n_splits; i++) bt_msg_put_bytes(&w, sorted[i].data, sorted[i].len);
        rc = bt_msg_writer_status(&w);
    }
    if (!rc) rc = bt_client_master_call(c, MP_CREATE_TABLE, &req, NULL);
    bt_buf_free(&req);
    free(sorted);
    return rc;
}

int bt_delete_table(bt_client *c, const char *name)
{
    if (name && !strcmp(name, BT_METADATA_TABLE)) return bt_err(BT_EINVAL, "table METADATA cannot be deleted");
    return name_call(c, MP_DELETE_TABLE, name);
}

void bt_free_names(char **names, size_t n)
{
    if (!names) return;
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

int bt_list_tables(bt_client *c, char ***names, size_t *n)
{
    if (!c || !names || !n) return bt_err(BT_EINVAL, "bt_list_tables: NULL argument");
    *names = NULL;
    *n = 0;
    bt_buf ans = {0};
    int rc = bt_client_master_call(c, MP_LIST_TABLES, NULL, &ans);
    if (rc) {
        bt_buf_free(&ans);
        return rc;
    }
    bt_msg_reader r;
    bt_msg_reader_init(&r, ans.data, ans.len);
    uint64_t cnt = 0;
    rc = bt_msg_get_varint(&r, &cnt);
    if (!rc && cnt > bt_msg_remaining(&r)) rc = BT_ECORRUPT;
    char **v = rc ? NULL : calloc(cnt ? cnt : 1, sizeof *v);
    if (!rc && !v) rc = BT_ENOMEM;
    size_t got = 0;
    for (; !rc && got < cnt; got++) rc = bt_msg_get_string(&r, &v[got]);
    if (rc) {
        bt_free_names(v, got);
        bt_buf_free(&ans);
        return rc == BT_ENOMEM ? rc : bt_err(BT_ECORRUPT, "undecodable table list from the master");
    }
    bt_buf_free(&ans);
    *names = v;
    *n = cnt;
    return BT_OK;
}

static int alter(bt_client *c, const char *table, uint64_t op, const char *family, uint32_t max_versions,
                 int64_t max_age_us, bool intersection)
{
    if (!c) return bt_err(BT_EINVAL, "client is NULL");
    int rc = check_table(table);
    if (rc) return rc;
    if (!family || !bt_valid_name(family, strlen(family)))
        return bt_err(BT_EINVAL, "family name \"%s\" must be 1-64 of [A-Za-z0-9_.-]", family ? family : "(null)");
    if (max_age_us < 0) return bt_err(BT_EINVAL, "max_age_us must be >= 0");
    bt_buf req = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_bytes(&w, table, strlen(table));
    bt_msg_put_varint(&w, op);
    bt_msg_put_bytes(&w, family, strlen(family));
    bt_msg_put_varint(&w, max_versions);
    bt_msg_put_fixed64(&w, (uint64_t)max_age_us);
    bt_msg_put_varint(&w, intersection ? 1 : 0);
    rc = bt_msg_writer_status(&w);
    if (!rc) rc = bt_client_master_call(c, MP_ALTER_TABLE, &req, NULL);
    bt_buf_free(&req);
    return rc;
}

int bt_alter_add_family(bt_client *c, const char *table, const char *family, uint32_t max_versions,
                        int64_t max_age_us)
{
    return alter(c, table, MP_ALTER_ADD_FAMILY, family, max_versions, max_age_us, false);
}

int bt_alter_drop_family(bt_client *c, const char *table, const char *family)
{
    return alter(c, table, MP_ALTER_DROP_FAMILY, family, 0, 0, false);
}

int bt_alter_gc(bt_client *c, const char *table, const char *family, uint32_t max_versions, int64_t max_age_us,
                bool intersection)
{
    return alter(c, table, MP_ALTER_SET_GC, family, max_versions, max_age_us, intersection);
}

/* ---- describe ---------------------------------------------------------------------------- */

static char *dup_n(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        if (n) memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

void bt_table_desc_free(bt_table_desc *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n_tablets; i++) {
        bt_tablet_desc *t = &d->tablets[i];
        free(t->start);
        free(t->end);
        free(t->server);
        free(t->server_id);
        free(t->dir);
    }
    free(d->tablets);
    bt_schema_free(d->schema);
    free(d->name);
    free(d);
}

int bt_describe_table(bt_client *c, const char *name, bt_table_desc **out)
{
    if (!out) return bt_err(BT_EINVAL, "bt_describe_table: out is NULL");
    *out = NULL;
    if (!c) return bt_err(BT_EINVAL, "client is NULL");
    int rc = check_table(name);
    if (rc) return rc;
    bt_buf req = {0}, ans = {0};
    rc = bt_buf_put_lenbytes(&req, name, strlen(name));
    if (!rc) rc = bt_client_master_call(c, MP_DESCRIBE, &req, &ans);
    bt_buf_free(&req);
    bt_table_desc *d = NULL;
    if (!rc) {
        d = calloc(1, sizeof *d);
        if (!d || !(d->name = strdup(name)) || !(d->schema = bt_schema_new())) rc = BT_ENOMEM;
    }
    bt_msg_reader r;
    bt_msg_reader_init(&r, ans.data, ans.len);
    uint64_t n = 0;
    if (!rc) rc = tsp_get_schema(&r, &d->schema->s);
    if (!rc) rc = bt_msg_get_varint(&r, &n);
    if (!rc && n > bt_msg_remaining(&r)) rc = BT_ECORRUPT;
    if (!rc && n && !(d->tablets = calloc(n, sizeof *d->tablets))) rc = BT_ENOMEM;
    for (uint64_t i = 0; !rc && i < n; i++) {
        mp_tablet mt;
        rc = mp_get_tablet(&r, &mt);
        if (rc) break;
        bt_tablet_desc *t = &d->tablets[i];
        d->n_tablets++;
        t->id = mt.id;
        t->start = (uint8_t *)dup_n(mt.start, mt.start_len);
        t->start_len = mt.start_len;
        t->end = (uint8_t *)dup_n(mt.end, mt.end_len);
        t->end_len = mt.end_len;
        t->server = dup_n(mt.server, mt.server_len);
        t->server_id = dup_n(mt.server_id, mt.server_id_len);
        t->dir = dup_n(mt.dir, mt.dir_len);
        if (!t->start || !t->end || !t->server || !t->server_id || !t->dir) rc = BT_ENOMEM;
    }
    /* appended later: the tablets' sizes (absent from an older master) */
    uint64_t ns = 0;
    if (!rc && bt_msg_remaining(&r)) rc = bt_msg_get_varint(&r, &ns);
    if (!rc && ns && ns != d->n_tablets) rc = BT_ECORRUPT;
    for (uint64_t i = 0; !rc && i < ns; i++) {
        rc = bt_msg_get_varint(&r, &d->tablets[i].memtable_bytes);
        if (!rc) rc = bt_msg_get_varint(&r, &d->tablets[i].sstable_bytes);
    }
    bt_buf_free(&ans);
    if (rc) {
        bt_table_desc_free(d);
        if (rc == BT_ECORRUPT || rc == BT_EINVAL) rc = bt_err(BT_ECORRUPT, "undecodable description of %s from the master", name);
        return rc;
    }
    *out = d;
    return BT_OK;
}

/* ---- tablets ------------------------------------------------------------------------------ */

int bt_move_tablet(bt_client *c, uint64_t tablet_id, const char *server_id)
{
    if (!c) return bt_err(BT_EINVAL, "client is NULL");
    if (tablet_id == 0) return bt_err(BT_EINVAL, "tablet id 0 does not exist");
    if (server_id && !bt_valid_name(server_id, strlen(server_id)))
        return bt_err(BT_EINVAL, "server id \"%s\" must be 1-64 of [A-Za-z0-9_.-]", server_id);
    bt_buf req = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, tablet_id);
    bt_msg_put_bytes(&w, server_id, server_id ? strlen(server_id) : 0);
    int rc = bt_msg_writer_status(&w);
    if (!rc) rc = bt_client_master_call(c, MP_MOVE_TABLET, &req, NULL);
    bt_buf_free(&req);
    return rc;
}

int bt_split_table(bt_client *c, const char *table, const void *row, size_t row_len)
{
    if (!c) return bt_err(BT_EINVAL, "client is NULL");
    int rc = check_table(table);
    if (!rc && row_len) rc = bt_check_row(row, row_len);
    if (rc) return rc;
    bt_buf req = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_bytes(&w, table, strlen(table));
    bt_msg_put_bytes(&w, row, row_len);
    rc = bt_msg_writer_status(&w);
    if (!rc) rc = bt_client_master_call(c, MP_SPLIT_TABLE, &req, NULL);
    bt_buf_free(&req);
    return rc;
}

int bt_flush_table(bt_client *c, const char *table) { return name_call(c, MP_FLUSH_TABLE, table); }

int bt_compact_table(bt_client *c, const char *table) { return name_call(c, MP_COMPACT_TABLE, table); }

int bt_run_gc(bt_client *c, uint32_t grace_ms, uint64_t *files_deleted, uint64_t *bytes_deleted)
{
    if (files_deleted) *files_deleted = 0;
    if (bytes_deleted) *bytes_deleted = 0;
    if (!c) return bt_err(BT_EINVAL, "client is NULL");
    bt_buf req = {0}, ans = {0};
    int rc = bt_buf_put_varint64(&req, grace_ms);
    if (!rc) rc = bt_client_master_call(c, MP_RUN_GC, &req, &ans);
    if (!rc) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, ans.data, ans.len);
        uint64_t f = 0, b = 0;
        bt_msg_get_varint(&r, &f);
        bt_msg_get_varint(&r, &b);
        if (bt_msg_reader_status(&r)) {
            rc = bt_err(BT_ECORRUPT, "undecodable garbage-collection answer from the master");
        } else {
            if (files_deleted) *files_deleted = f;
            if (bytes_deleted) *bytes_deleted = b;
        }
    }
    bt_buf_free(&req);
    bt_buf_free(&ans);
    return rc;
}

/* ---- cluster status ------------------------------------------------------------------------- */

void bt_cluster_status_free(bt_cluster_status *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_servers; i++) {
        free(s->servers[i].id);
        free(s->servers[i].address);
    }
    free(s->servers);
    for (size_t i = 0; i < s->n_events; i++) free(s->events[i].text);
    free(s->events);
    free(s->master);
    free(s);
}

int bt_cluster_status_get(bt_client *c, bt_cluster_status **out)
{
    if (!out) return bt_err(BT_EINVAL, "bt_cluster_status_get: out is NULL");
    *out = NULL;
    if (!c) return bt_err(BT_EINVAL, "client is NULL");
    bt_buf ans = {0};
    int rc = bt_client_master_call(c, MP_STATUS, NULL, &ans);
    mp_status ms = {0};
    bt_cluster_status *s = NULL;
    if (!rc) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, ans.data, ans.len);
        rc = mp_get_status(&r, &ms);
        if (rc && rc != BT_ENOMEM) rc = bt_err(BT_ECORRUPT, "undecodable status from the master: %s", bt_errmsg());
    }
    if (!rc) {
        s = calloc(1, sizeof *s);
        if (!s || !(s->master = dup_n(ms.address, ms.address_len))) rc = BT_ENOMEM;
    }
    if (!rc && ms.n_servers && !(s->servers = calloc(ms.n_servers, sizeof *s->servers))) rc = BT_ENOMEM;
    if (!rc) {
        s->master_since_us = ms.active_since_us;
        s->tables = ms.tables;
        s->tablets = ms.tablets;
        s->unassigned_tablets = ms.unassigned;
        s->servers_recovered = ms.servers_recovered;
        s->tablets_moved = ms.tablets_moved;
        s->splits = ms.splits;
        for (size_t i = 0; !rc && i < ms.n_servers; i++) {
            const mp_server *v = &ms.servers[i];
            bt_server_status *x = &s->servers[i];
            s->n_servers++;
            x->id = dup_n(v->id, v->id_len);
            x->address = dup_n(v->address, v->address_len);
            if (!x->id || !x->address) rc = BT_ENOMEM;
            x->tablets = v->tablets;
            x->memtable_bytes = v->memtable_bytes;
            x->sstable_bytes = v->sstable_bytes;
            x->reads = v->reads;
            x->writes = v->writes;
            x->compaction_queue = v->compaction_queue;
        }
    }
    if (!rc && ms.n_events && !(s->events = calloc(ms.n_events, sizeof *s->events))) rc = BT_ENOMEM;
    for (size_t i = 0; !rc && i < ms.n_events; i++) {
        s->events[i].time_us = ms.events[i].time_us;
        if (!(s->events[i].text = dup_n(ms.events[i].text, ms.events[i].text_len))) rc = BT_ENOMEM;
        s->n_events++;
    }
    free(ms.servers);
    free(ms.events);
    bt_buf_free(&ans);
    if (rc) {
        bt_cluster_status_free(s);
        return rc;
    }
    *out = s;
    return BT_OK;
}

/* master/admin.c: the master's RPC methods (master/master_proto.h).  The
 * RPC loop thread only queues requests; two workers run them under the
 * master's state mutex (flush and compact release it while the servers
 * work). */
#include "master/master_internal.h"
#include "sstable/iter.h" /* sst_key_cmp: bytewise order */
#include "master/master_proto.h"
#include "common/log.h"
#include "common/status.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD_TIMEOUT_MS     60000
#define COMPACT_TIMEOUT_MS 600000

struct mjob {
    mjob *next;
    uint16_t method;
    rpc_ctx *ctx;
    size_t len;
    uint8_t payload[];
};

static int get_name(bt_msg_reader *r, char *out, bool allow_meta)
{
    const uint8_t *p;
    size_t n;
    int rc = bt_msg_get_bytes(r, &p, &n);
    if (rc) return rc;
    if (!bt_valid_name((const char *)p, n))
        return bt_err(BT_EINVAL, "bad table name \"%.*s\": use 1-64 of [A-Za-z0-9_.-]", (int)(n > 80 ? 80 : n), p);
    memcpy(out, p, n);
    out[n] = 0;
    if (!allow_meta && !strcmp(out, BT_META_NAME))
        return bt_err(BT_EINVAL, "%s is the system table; it cannot be changed this way", BT_META_NAME);
    return BT_OK;
}

static int need_ready(bt_master *m)
{
    if (!m->meta_complete) return bt_err(BT_EUNAVAIL, "the master is still loading METADATA; retry shortly");
    return BT_OK;
}

static int no_table(const char *name) { return bt_err(BT_ENOTFOUND, "no table \"%s\"", name); }

typedef struct span { const uint8_t *p; size_t n; } span;
static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return sst_key_cmp(x->p, x->n, y->p, y->n);
}

static int create_table(bt_master *m, bt_msg_reader *r)
{
    char name[TS_MAX_NAME + 1];
    ts_schema sc;
    uint64_t ns;
    int rc = get_name(r, name, false);
    if (!rc) rc = tsp_get_schema(r, &sc);
    if (!rc) rc = bt_msg_get_varint(r, &ns);
    if (rc) return rc;
    if (sc.n_families == 0) return bt_err(BT_EINVAL, "table %s needs at least one column family", name);
    if (ns > 10000) return bt_err(BT_EINVAL, "at most 10000 split keys");
    span *sp = ns ? calloc(ns, sizeof *sp) : NULL;
    if (ns && !sp) return BT_ENOMEM;
    for (uint64_t i = 0; !rc && i < ns; i++) {
        rc = bt_msg_get_bytes(r, &sp[i].p, &sp[i].n);
        if (!rc && (sp[i].n == 0 || sp[i].n > TS_MAX_ROW_KEY))
            rc = bt_err(BT_EINVAL, "split keys must be 1 to %d bytes", TS_MAX_ROW_KEY);
    }
    if (!rc) rc = bt_msg_reader_done(r);
    if (!rc) rc = need_ready(m);
    if (!rc && m_find_table(m, name, strlen(name))) rc = bt_err(BT_EEXIST, "table \"%s\" already exists", name);
    if (rc) {
        free(sp);
        return rc;
    }
    if (ns) qsort(sp, ns, sizeof *sp, span_cmp);
    size_t u = 0; /* drop duplicates */
    for (size_t i = 0; i < ns; i++)
        if (u == 0 || span_cmp(&sp[u - 1], &sp[i])) sp[u++] = sp[i];
    /* 1. METADATA rows (state "new", unassigned) */
    mtablet **made = calloc(u + 1, sizeof *made);
    size_t nm = 0;
    if (!made) rc = BT_ENOMEM;
    for (size_t i = 0; !rc && i <= u; i++) {
        bt_meta_entry e = {0};
        snprintf(e.table, sizeof e.table, "%s", name);
        e.id = bt_new_tablet_id();
        char dir[256];
        bt_tablet_dir(dir, sizeof dir, name, e.id);
        e.dir = strdup(dir);
        e.server = strdup("");
        e.server_id = strdup("");
        e.is_new = true;
        if (i > 0) rc = bt_buf_append(&e.start, sp[i - 1].p, sp[i - 1].n);
        if (!rc && i < u) rc = bt_buf_append(&e.end, sp[i].p, sp[i].n);
        mtablet *t = !rc && e.dir && e.server && e.server_id ? m_add_tablet(m, &e) : NULL;
        bt_meta_entry_free(&e);
        if (!t) { rc = rc ? rc : BT_ENOMEM; break; }
        made[nm++] = t;
        t->hold_until_us = INT64_MAX; /* not before the schema exists */
        rc = m_meta_write(m, t);
    }
    free(sp);
    /* 2. the schema: the commit point */
    mtable *nt = NULL;
    if (!rc) {
        mtable *p = realloc(m->tables, (m->n_tables + 1) * sizeof *p);
        if (!p) rc = BT_ENOMEM;
        else {
            m->tables = p;
            nt = &m->tables[m->n_tables];
            snprintf(nt->name, sizeof nt->name, "%s", name);
            nt->schema = sc;
            rc = m_write_schema(m, name, &sc, true);
            if (rc == BT_EEXIST) rc = bt_err(BT_EEXIST, "table \"%s\" already exists", name);
            if (!rc) m->n_tables++;
        }
    }
    if (rc) {
        int keep = rc;
        char msg[512];
        snprintf(msg, sizeof msg, "%s", bt_errmsg());
        for (size_t i = 0; i < nm; i++) {
            m_meta_delete(m, made[i]);
            m_remove_tablet(m, made[i]);
        }
        free(made);
        return bt_err(keep, "creating table %s: %s", name, msg);
    }
    /* 3. assign every tablet now */
    size_t served = 0;
    for (size_t i = 0; i < nm; i++) {
        made[i]->hold_until_us = 0;
        mserver *s = m_least_loaded(m, NULL);
        if (s && m_load(m, made[i], s) == BT_OK && made[i]->srv) {
            if (m_meta_write(m, made[i]) == BT_OK) made[i]->dirty = false;
            served++;
        }
    }
    free(made);
    BT_INFO("created table %s with %zu tablets (%zu served)", name, nm, served);
    m_event(m, "created table %s with %zu tablets", name, nm);
    if (served < nm)
        return bt_err(BT_EUNAVAIL, "table %s created, but %zu of its %zu tablets are not served yet", name,
                      nm - served, nm);
    return BT_OK;
}

static int delete_table(bt_master *m, bt_msg_reader *r)
{
    char name[TS_MAX_NAME + 1];
    int rc = get_name(r, name, false);
    if (!rc) rc = bt_msg_reader_done(r);
    if (!rc) rc = need_ready(m);
    if (rc) return rc;
    mtable *tb = m_find_table(m, name, strlen(name));
    if (!tb) return no_table(name);
    char path[LK_MAX_PATH];
    snprintf(path, sizeof path, "%s/%s", BT_LK_SCHEMA, name);
    rc = lk_delete(m->lk, path, 0); /* the commit point */
    if (rc && rc != BT_ENOTFOUND) return rc;
    *tb = m->tables[--m->n_tables];
    for (size_t i = 0; i < m->n_tablets;) {
        mtablet *t = m->tablets[i];
        if (strcmp(t->e.table, name)) { i++; continue; }
        if (t->srv && m_unload(m, t) != BT_OK) {
            /* retried by the control loop; GC spares its directory meanwhile */
            mzombie *z = realloc(m->zombies, (m->n_zombies + 1) * sizeof *z);
            if (z) {
                m->zombies = z;
                z[m->n_zombies].id = t->e.id;
                z[m->n_zombies].srv = t->srv;
                snprintf(z[m->n_zombies].dir, sizeof z->dir, "%s", t->e.dir);
                m->n_zombies++;
            }
        }
        m_meta_delete(m, t); /* if this fails, the next master start finishes it */
        m_remove_tablet(m, t);
    }
    BT_INFO("deleted table %s (its files go with the next garbage collection)", name);
    m_event(m, "deleted table %s", name);
    return BT_OK;
}

static int push_schema(bt_master *m, const char *name)
{
    int failed = 0;
    for (size_t i = 0; i < m->n_tablets; i++) {
        mtablet *t = m->tablets[i];
        if (strcmp(t->e.table, name) || !t->srv) continue;
        if (m_load(m, t, t->srv)) failed++; /* an idempotent load updates the schema */
    }
    return failed ? bt_err(BT_EUNAVAIL, "schema saved; %d tablets did not take it yet", failed) : BT_OK;
}

static int alter_table(bt_master *m, bt_msg_reader *r)
{
    char name[TS_MAX_NAME + 1];
    uint64_t op, mv, age, inter;
    const uint8_t *f;
    size_t fl;
    int rc = get_name(r, name, false);
    if (!rc) rc = bt_msg_get_varint(r, &op);
    if (!rc) rc = bt_msg_get_bytes(r, &f, &fl);
    if (!rc) rc = bt_msg_get_varint(r, &mv);
    if (!rc) rc = bt_msg_get_fixed64(r, &age);
    if (!rc) rc = bt_msg_get_varint(r, &inter);
    if (!rc) rc = bt_msg_reader_done(r);
    if (!rc) rc = need_ready(m);
    if (rc) return rc;
    mtable *tb = m_find_table(m, name, strlen(name));
    if (!tb) return no_table(name);
    if (!bt_valid_name((const char *)f, fl))
        return bt_err(BT_EINVAL, "bad family name \"%.*s\"", (int)(fl > 80 ? 80 : fl), f);
    if (mv > UINT32_MAX || (int64_t)age < 0) return bt_err(BT_EINVAL, "bad GC policy");
    ts_schema s = tb->schema;
    int fi = ts_schema_find(&s, (const char *)f, fl);
    switch (op) {
    case MP_ALTER_ADD_FAMILY:
        if (fi >= 0) return bt_err(BT_EEXIST, "table %s already has family %.*s", name, (int)fl, f);
        {
            char fam[TS_MAX_NAME + 1];
            memcpy(fam, f, fl);
            fam[fl] = 0;
            rc = ts_schema_add_family(&s, fam, (uint32_t)mv, (int64_t)age);
            if (!rc) s.families[s.n_families - 1].gc_intersection = inter != 0;
        }
        break;
    case MP_ALTER_DROP_FAMILY:
        if (fi < 0) return bt_err(BT_ENOTFOUND, "table %s has no family %.*s", name, (int)fl, f);
        if (s.n_families == 1) return bt_err(BT_EINVAL, "cannot drop the last family of table %s", name);
        memmove(&s.families[fi], &s.families[fi + 1], (size_t)(s.n_families - fi - 1) * sizeof s.families[0]);
        s.n_families--;
        break;
    case MP_ALTER_SET_GC:
        if (fi < 0) return bt_err(BT_ENOTFOUND, "table %s has no family %.*s", name, (int)fl, f);
        s.families[fi].max_versions = (uint32_t)mv;
        s.families[fi].max_age_us = (int64_t)age;
        s.families[fi].gc_intersection = inter != 0;
        break;
    default:
        return bt_err(BT_EINVAL, "unknown alter operation %" PRIu64, op);
    }
    if (!rc) rc = ts_schema_validate(&s);
    if (!rc) rc = m_write_schema(m, name, &s, false);
    if (rc) return rc;
    tb->schema = s;
    return push_schema(m, name);
}

static int list_tables(bt_master *m, bt_msg_reader *r, bt_msg_writer *w)
{
    int rc = bt_msg_reader_done(r);
    if (rc) return rc;
    const char **names = calloc(m->n_tables + 1, sizeof *names);
    if (!names) return BT_ENOMEM;
    for (size_t i = 0; i < m->n_tables; i++) names[i] = m->tables[i].name;
    for (size_t i = 1; i < m->n_tables; i++) /* few tables: insertion sort */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    bt_msg_put_varint(w, m->n_tables);
    for (size_t i = 0; i < m->n_tables; i++) bt_msg_put_bytes(w, names[i], strlen(names[i]));
    free(names);
    return BT_OK;
}

static int tablet_order(const void *a, const void *b)
{
    const mtablet *x = *(mtablet *const *)a, *y = *(mtablet *const *)b;
    if (!x->e.end.len || !y->e.end.len) return (int)(x->e.end.len == 0) - (int)(y->e.end.len == 0);
    return sst_key_cmp(x->e.end.data, x->e.end.len, y->e.end.data, y->e.end.len);
}

/* The tablets of table `name`, in row order (free() the array). */
static mtablet **tablets_of(bt_master *m, const char *name, size_t *n)
{
    mtablet **v = calloc(m->n_tablets + 1, sizeof *v);
    *n = 0;
    if (!v) return NULL;
    for (size_t i = 0; i < m->n_tablets; i++)
        if (!strcmp(m->tablets[i]->e.table, name)) v[(*n)++] = m->tablets[i];
    qsort(v, *n, sizeof *v, tablet_order);
    return v;
}

static int describe(bt_master *m, bt_msg_reader *r, bt_msg_writer *w)
{
    char name[TS_MAX_NAME + 1];
    int rc = get_name(r, name, true);
    if (!rc) rc = bt_msg_reader_done(r);
    if (rc) return rc;
    ts_schema meta;
    const ts_schema *s;
    if (!strcmp(name, BT_META_NAME)) {
        bt_meta_schema(&meta);
        s = &meta;
    } else {
        mtable *tb = m_find_table(m, name, strlen(name));
        if (!tb) return no_table(name);
        s = &tb->schema;
    }
    size_t n;
    mtablet **v = tablets_of(m, name, &n);
    if (!v) return BT_ENOMEM;
    tsp_put_schema(w, s);
    bt_msg_put_varint(w, n);
    for (size_t i = 0; i < n; i++) {
        const mtablet *t = v[i];
        mp_tablet mt = { .id = t->e.id, .table = t->e.table, .table_len = strlen(t->e.table),
                         .dir = t->e.dir, .dir_len = strlen(t->e.dir),
                         .start = t->e.start.data, .start_len = t->e.start.len,
                         .end = t->e.end.data, .end_len = t->e.end.len,
                         .server = t->srv ? t->srv->addr : "", .server_len = t->srv ? strlen(t->srv->addr) : 0,
                         .server_id = t->srv ? t->srv->id : "", .server_id_len = t->srv ? strlen(t->srv->id) : 0 };
        mp_put_tablet(w, &mt);
    }
    bt_msg_put_varint(w, n); /* appended later: sizes */
    for (size_t i = 0; i < n; i++) {
        bt_msg_put_varint(w, v[i]->memtable_bytes);
        bt_msg_put_varint(w, v[i]->sstable_bytes);
    }
    free(v);
    return BT_OK;
}

static int move_tablet(bt_master *m, bt_msg_reader *r)
{
    uint64_t id;
    const uint8_t *sid;
    size_t sl;
    int rc = bt_msg_get_varint(r, &id);
    if (!rc) rc = bt_msg_get_bytes(r, &sid, &sl);
    if (!rc) rc = bt_msg_reader_done(r);
    if (!rc) rc = need_ready(m);
    if (rc) return rc;
    mtablet *t = m_find_tablet(m, id);
    if (!t) return bt_err(BT_ENOTFOUND, "no tablet %" PRIu64, id);
    if (t == m->root) return bt_err(BT_EINVAL, "the root tablet moves only when its server fails");
    mserver *to = sl ? m_find_server(m, (const char *)sid, sl) : m_least_loaded(m, t->srv);
    if (!to) return sl ? bt_err(BT_ENOTFOUND, "no live tablet server \"%.*s\"", (int)sl, sid)
                       : bt_err(BT_EUNAVAIL, "no other live tablet server");
    return m_move(m, t, to);
}

static int split_one(bt_master *m, mtablet *t, const uint8_t *row, size_t rl)
{
    uint64_t lid = bt_new_tablet_id(), rid = bt_new_tablet_id();
    char ld[256], rd[256];
    bt_tablet_dir(ld, sizeof ld, t->e.table, lid);
    bt_tablet_dir(rd, sizeof rd, t->e.table, rid);
    bt_buf req = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_bytes(&w, m->seqr, strlen(m->seqr));
    bt_msg_put_varint(&w, t->e.id);
    bt_msg_put_bytes(&w, row, rl);
    bt_msg_put_varint(&w, lid);
    bt_msg_put_bytes(&w, ld, strlen(ld));
    bt_msg_put_varint(&w, rid);
    bt_msg_put_bytes(&w, rd, strlen(rd));
    int rc = bt_msg_writer_status(&w);
    if (!rc) rc = m_ts_call(m, t->srv->addr, TSP_SPLIT, &req, &resp, CMD_TIMEOUT_MS);
    if (!rc) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, resp.data, resp.len);
        const uint8_t *mid;
        size_t ml;
        rc = bt_msg_get_bytes(&r, &mid, &ml);
        if (!rc) {
            tsp_tablet l = { .id = lid, .table = t->e.table, .table_len = strlen(t->e.table), .dir = ld,
                             .dir_len = strlen(ld), .start = t->e.start.data, .start_len = t->e.start.len,
                             .end = mid, .end_len = ml };
            tsp_tablet rt = { .id = rid, .table = t->e.table, .table_len = strlen(t->e.table), .dir = rd,
                              .dir_len = strlen(rd), .start = mid, .start_len = ml,
                              .end = t->e.end.data, .end_len = t->e.end.len };
            mserver *s = t->srv;
            rc = m_apply_split(m, t->e.id, mid, ml, &l, &rt, s);
        }
    }
    bt_buf_free(&req);
    bt_buf_free(&resp);
    return rc;
}

static int split_table(bt_master *m, bt_msg_reader *r)
{
    char name[TS_MAX_NAME + 1];
    const uint8_t *row;
    size_t rl;
    int rc = get_name(r, name, false);
    if (!rc) rc = bt_msg_get_bytes(r, &row, &rl);
    if (!rc) rc = bt_msg_reader_done(r);
    if (!rc) rc = need_ready(m);
    if (rc) return rc;
    if (!m_find_table(m, name, strlen(name))) return no_table(name);
    if (rl > TS_MAX_ROW_KEY) return bt_err(BT_ETOOBIG, "split row over %d bytes", TS_MAX_ROW_KEY);
    size_t n;
    mtablet **v = tablets_of(m, name, &n);
    if (!v) return BT_ENOMEM;
    uint64_t *ids = calloc(n + 1, sizeof *ids);
    for (size_t i = 0; ids && i < n; i++) ids[i] = v[i]->e.id;
    free(v);
    if (!ids) return BT_ENOMEM;
    int done = 0, first_err = BT_OK;
    for (size_t i = 0; i < n; i++) {
        mtablet *t = m_find_tablet(m, ids[i]);
        if (!t) continue;
        if (rl) {
            if (!bt_meta_entry_contains(&t->e, row, rl)) continue;
            if (!sst_key_cmp(row, rl, t->e.start.data, t->e.start.len))
                { first_err = bt_err(BT_EEXIST, "a tablet already starts at that row"); break; }
        }
        if (!t->srv) { if (!first_err) first_err = bt_err(BT_EUNAVAIL, "tablet %" PRIu64 " is not served", t->e.id); continue; }
        int x = split_one(m, t, row, rl);
        if (!x) done++;
        else if (!rl && x == BT_EFAILED_PRECONDITION) continue; /* too small to split */
        else if (!first_err) first_err = x;
    }
    free(ids);
    BT_INFO("split table %s: %d tablets split", name, done);
    return first_err;
}

/* Flush or compact: the list is taken under the mutex, the calls made without. */
static int flush_compact(bt_master *m, bt_msg_reader *r, uint16_t method)
{
    char name[TS_MAX_NAME + 1];
    int rc = get_name(r, name, true);
    if (!rc) rc = bt_msg_reader_done(r);
    if (rc) return rc;
    if (strcmp(name, BT_META_NAME) && !m_find_table(m, name, strlen(name))) return no_table(name);
    size_t n;
    mtablet **v = tablets_of(m, name, &n);
    if (!v) return BT_ENOMEM;
    typedef struct { uint64_t id; char addr[256]; } target;
    target *tg = calloc(n + 1, sizeof *tg);
    size_t k = 0;
    for (size_t i = 0; tg && i < n; i++)
        if (v[i]->srv) {
            tg[k].id = v[i]->e.id;
            snprintf(tg[k].addr, sizeof tg[k].addr, "%s", v[i]->srv->addr);
            k++;
        }
    free(v);
    if (!tg) return BT_ENOMEM;
    m->unlocked_calls++; /* no connection is dropped meanwhile */
    pthread_mutex_unlock(&m->mu);
    int first = BT_OK;
    for (size_t i = 0; i < k; i++) {
        bt_buf req = {0}, resp = {0};
        bt_msg_writer w;
        bt_msg_writer_init(&w, &req);
        bt_msg_put_varint(&w, tg[i].id);
        int x = bt_msg_writer_status(&w);
        if (!x) x = m_ts_call(m, tg[i].addr, method, &req, &resp,
                              method == TSP_COMPACT ? COMPACT_TIMEOUT_MS : CMD_TIMEOUT_MS);
        if (x && !first) first = x;
        bt_buf_free(&req);
        bt_buf_free(&resp);
    }
    pthread_mutex_lock(&m->mu);
    m->unlocked_calls--;
    free(tg);
    return first;
}

static int status(bt_master *m, bt_msg_reader *r, bt_msg_writer *w)
{
    int rc = bt_msg_reader_done(r);
    if (rc) return rc;
    mp_status st = { .address = m->addr, .address_len = strlen(m->addr), .active_since_us = m->active_since_us,
                     .tables = m->n_tables, .tablets = m->n_tablets, .servers_recovered = m->servers_recovered,
                     .tablets_moved = m->tablets_moved, .splits = m->splits, .n_servers = m->n_servers };
    for (size_t i = 0; i < m->n_tablets; i++) st.unassigned += m->tablets[i]->srv == NULL;
    if (!m->meta_complete) st.unassigned++; /* not all known yet */
    st.servers = calloc(m->n_servers + 1, sizeof *st.servers);
    if (!st.servers) return BT_ENOMEM;
    for (size_t i = 0; i < m->n_servers; i++) {
        const mserver *s = m->servers[i];
        st.servers[i] = (mp_server){ .id = s->id, .id_len = strlen(s->id), .address = s->addr,
                                     .address_len = strlen(s->addr), .tablets = m_server_load(m, s),
                                     .memtable_bytes = s->memtable_bytes, .sstable_bytes = s->sstable_bytes,
                                     .reads = s->reads, .writes = s->writes,
                                     .compaction_queue = s->compaction_queue };
    }
    /* by id */
    for (size_t i = 1; i < st.n_servers; i++)
        for (size_t j = i; j > 0 && strcmp(st.servers[j - 1].id, st.servers[j].id) > 0; j--) {
            mp_server t = st.servers[j];
            st.servers[j] = st.servers[j - 1];
            st.servers[j - 1] = t;
        }
    mp_event ev[M_EVENTS];
    char text[M_EVENTS][M_EVENT_LEN];
    st.events = ev;
    st.n_events = m_events_copy(m, ev, text);
    mp_put_status(w, &st);
    free(st.servers);
    return BT_OK;
}

static int report_split(bt_master *m, bt_msg_reader *r)
{
    uint64_t pid;
    const uint8_t *mid, *sid;
    size_t ml, sl;
    tsp_tablet l, rt;
    int rc = bt_msg_get_varint(r, &pid);
    if (!rc) rc = bt_msg_get_bytes(r, &mid, &ml);
    if (!rc) rc = tsp_get_tablet(r, &l);
    if (!rc) rc = tsp_get_tablet(r, &rt);
    if (!rc) rc = bt_msg_get_bytes(r, &sid, &sl);
    if (!rc) rc = bt_msg_reader_done(r);
    if (rc) return rc;
    mserver *s = m_find_server(m, (const char *)sid, sl);
    return m_apply_split(m, pid, mid, ml, &l, &rt, s);
}

static int run_gc(bt_master *m, bt_msg_reader *r, bt_msg_writer *w)
{
    uint64_t grace;
    int rc = bt_msg_get_varint(r, &grace);
    if (!rc) rc = bt_msg_reader_done(r);
    if (!rc) rc = need_ready(m);
    if (rc) return rc;
    uint64_t files = 0, bytes = 0;
    rc = m_gc(m, grace > UINT32_MAX ? UINT32_MAX : (uint32_t)grace, &files, &bytes);
    if (!rc) {
        bt_msg_put_varint(w, files);
        bt_msg_put_varint(w, bytes);
    }
    return rc;
}

static int run_job(bt_master *m, mjob *j, bt_buf *out)
{
    if (!atomic_load(&m->active)) return bt_err(BT_EUNAVAIL, "not the active master");
    bt_msg_reader r;
    bt_msg_reader_init(&r, j->payload, j->len);
    bt_msg_writer w;
    bt_msg_writer_init(&w, out);
    int rc;
    pthread_mutex_lock(&m->mu);
    switch (j->method) {
    case MP_CREATE_TABLE: rc = create_table(m, &r); break;
    case MP_DELETE_TABLE: rc = delete_table(m, &r); break;
    case MP_ALTER_TABLE: rc = alter_table(m, &r); break;
    case MP_LIST_TABLES: rc = list_tables(m, &r, &w); break;
    case MP_DESCRIBE: rc = describe(m, &r, &w); break;
    case MP_MOVE_TABLET: rc = move_tablet(m, &r); break;
    case MP_SPLIT_TABLE: rc = split_table(m, &r); break;
    case MP_FLUSH_TABLE: rc = flush_compact(m, &r, TSP_FLUSH); break;
    case MP_COMPACT_TABLE: rc = flush_compact(m, &r, TSP_COMPACT); break;
    case MP_STATUS: rc = status(m, &r, &w); break;
    case MP_REPORT_SPLIT: rc = report_split(m, &r); break;
    case MP_RUN_GC: rc = run_gc(m, &r, &w); break;
    default: rc = bt_err(BT_EINVAL, "unknown master method %u", j->method); break;
    }
    pthread_mutex_unlock(&m->mu);
    if (!rc) rc = bt_msg_writer_status(&w);
    return rc;
}

static void *worker(void *arg)
{
    bt_master *m = arg;
    pthread_mutex_lock(&m->job_mu);
    for (;;) {
        while (!m->jobs && !m->job_stop) pthread_cond_wait(&m->job_cv, &m->job_mu);
        mjob *j = m->jobs;
        if (!j) break;
        m->jobs = j->next;
        if (!m->jobs) m->jobs_tail = NULL;
        pthread_mutex_unlock(&m->job_mu);
        bt_buf out = {0};
        bt_errclear();
        int rc = run_job(m, j, &out);
        if (rc) {
            const char *d = bt_errmsg();
            rpc_respond(j->ctx, rc, d, strlen(d));
        } else {
            rpc_respond(j->ctx, BT_OK, out.data, out.len);
        }
        bt_buf_free(&out);
        free(j);
        pthread_mutex_lock(&m->job_mu);
    }
    pthread_mutex_unlock(&m->job_mu);
    return NULL;
}

void m_admin_handler(void *arg, const rpc_request *req, rpc_ctx *ctx)
{
    bt_master *m = arg;
    if (!atomic_load(&m->active)) {
        static const char msg[] = "not the active master";
        rpc_respond(ctx, BT_EUNAVAIL, msg, sizeof msg - 1);
        return;
    }
    mjob *j = malloc(sizeof *j + req->payload_len);
    if (!j) {
        rpc_respond(ctx, BT_ENOMEM, NULL, 0);
        return;
    }
    j->next = NULL;
    j->method = req->method;
    j->ctx = ctx;
    j->len = req->payload_len;
    if (req->payload_len) memcpy(j->payload, req->payload, req->payload_len);
    pthread_mutex_lock(&m->job_mu);
    if (m->job_stop) {
        pthread_mutex_unlock(&m->job_mu);
        free(j);
        rpc_respond(ctx, BT_ECLOSED, NULL, 0);
        return;
    }
    if (m->jobs_tail) m->jobs_tail->next = j;
    else m->jobs = j;
    m->jobs_tail = j;
    pthread_cond_signal(&m->job_cv);
    pthread_mutex_unlock(&m->job_mu);
}

int m_admin_start(bt_master *m)
{
    for (int i = 0; i < 2; i++) {
        if (pthread_create(&m->workers[i], NULL, worker, m)) return bt_err(BT_EIO, "cannot start admin threads");
        m->n_workers++;
    }
    return BT_OK;
}

void m_admin_stop(bt_master *m)
{
    pthread_mutex_lock(&m->job_mu);
    m->job_stop = true;
    pthread_cond_broadcast(&m->job_cv);
    pthread_mutex_unlock(&m->job_mu);
    for (int i = 0; i < m->n_workers; i++) pthread_join(m->workers[i], NULL);
    m->n_workers = 0;
    /* answer what is still queued */
    for (mjob *j = m->jobs, *nx; j; j = nx) {
        nx = j->next;
        rpc_respond(j->ctx, BT_ECLOSED, NULL, 0);
        free(j);
    }
    m->jobs = m->jobs_tail = NULL;
}

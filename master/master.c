/* master/master.c: bt-master's life cycle and control loop: the lock,
 * tablet servers, dead-server recovery, assignment, balancing (see
 * master/master.h for the whole picture). */
#include "master/master_internal.h"
#include "master/master_proto.h"
#include "tabletserver/logsplit.h"
#include "tabletserver/manifest.h"
#include "common/log.h"
#include "common/status.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PING_PERIOD_US   500000
#define SIZES_PERIOD_US  2000000   /* tablet sizes, for describe */
#define PING_TIMEOUT_MS  1000
#define LOAD_TIMEOUT_MS  60000

int64_t m_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t m_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void m_event(bt_master *m, const char *fmt, ...)
{
    char text[M_EVENT_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&m->ev_mu);
    struct m_event_slot *e = &m->events[m->ev_next];
    e->time_us = m_wall_us();
    memcpy(e->text, text, sizeof text);
    m->ev_next = (m->ev_next + 1) % M_EVENTS;
    if (m->ev_count < M_EVENTS) m->ev_count++;
    pthread_mutex_unlock(&m->ev_mu);
}

size_t m_events_copy(bt_master *m, mp_event *ev, char (*text)[M_EVENT_LEN])
{
    pthread_mutex_lock(&m->ev_mu);
    size_t n = m->ev_count, first = (m->ev_next + M_EVENTS - n) % M_EVENTS;
    for (size_t i = 0; i < n; i++) {
        const struct m_event_slot *e = &m->events[(first + i) % M_EVENTS];
        memcpy(text[i], e->text, M_EVENT_LEN);
        ev[i] = (mp_event){ .time_us = e->time_us, .text = text[i], .text_len = strlen(text[i]) };
    }
    pthread_mutex_unlock(&m->ev_mu);
    return n;
}

/* ---- state helpers ------------------------------------------------------------------ */

mtablet *m_find_tablet(bt_master *m, uint64_t id)
{
    for (size_t i = 0; i < m->n_tablets; i++)
        if (m->tablets[i]->e.id == id) return m->tablets[i];
    return NULL;
}

mtable *m_find_table(bt_master *m, const char *name, size_t len)
{
    for (size_t i = 0; i < m->n_tables; i++)
        if (strlen(m->tables[i].name) == len && !memcmp(m->tables[i].name, name, len)) return &m->tables[i];
    return NULL;
}

mserver *m_find_server(bt_master *m, const char *id, size_t len)
{
    for (size_t i = 0; i < m->n_servers; i++)
        if (strlen(m->servers[i]->id) == len && !memcmp(m->servers[i]->id, id, len)) return m->servers[i];
    return NULL;
}

static mserver *served_by(bt_master *m, uint64_t id)
{
    for (size_t i = 0; i < m->n_served; i++)
        if (m->served[i].id == id) return m->served[i].srv;
    return NULL;
}

static void served_add(bt_master *m, uint64_t id, mserver *s)
{
    for (size_t i = 0; i < m->n_served; i++)
        if (m->served[i].id == id) {
            m->served[i].srv = s;
            return;
        }
    if (m->n_served == m->cap_served) {
        size_t nc = m->cap_served ? 2 * m->cap_served : 64;
        void *p = realloc(m->served, nc * sizeof *m->served);
        if (!p) return; /* only a hint: the tablet is then reloaded (idempotent) */
        m->served = p;
        m->cap_served = nc;
    }
    m->served[m->n_served].id = id;
    m->served[m->n_served++].srv = s;
}

static void served_forget_server(bt_master *m, const mserver *s)
{
    size_t j = 0;
    for (size_t i = 0; i < m->n_served; i++)
        if (m->served[i].srv != s) m->served[j++] = m->served[i];
    m->n_served = j;
}

void m_set_server(mtablet *t, mserver *s)
{
    t->srv = s;
    free(t->e.server);
    free(t->e.server_id);
    t->e.server = strdup(s ? s->addr : "");
    t->e.server_id = strdup(s ? s->id : "");
    if (!t->e.server || !t->e.server_id) { /* keep the strings valid */
        free(t->e.server);
        free(t->e.server_id);
        t->e.server = calloc(1, 1);
        t->e.server_id = calloc(1, 1);
    }
    t->dirty = true;
}

mtablet *m_add_tablet(bt_master *m, const bt_meta_entry *e)
{
    if (m->n_tablets == m->cap_tablets) {
        size_t nc = m->cap_tablets ? 2 * m->cap_tablets : 64;
        mtablet **p = realloc(m->tablets, nc * sizeof *p);
        if (!p) return NULL;
        m->tablets = p;
        m->cap_tablets = nc;
    }
    mtablet *t = calloc(1, sizeof *t);
    if (!t || bt_meta_entry_copy(&t->e, e)) {
        free(t);
        return NULL;
    }
    m->tablets[m->n_tablets++] = t;
    m->map_version++;
    m->orphans_current = false;
    return t;
}

void m_remove_tablet(bt_master *m, mtablet *t)
{
    for (size_t i = 0; i < m->n_tablets; i++)
        if (m->tablets[i] == t) {
            m->tablets[i] = m->tablets[--m->n_tablets];
            break;
        }
    if (m->root == t) m->root = NULL;
    bt_meta_entry_free(&t->e);
    free(t);
}

size_t m_server_load(bt_master *m, const mserver *s)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_tablets; i++) n += m->tablets[i]->srv == s;
    return n;
}

mserver *m_least_loaded(bt_master *m, const mserver *except)
{
    mserver *best = NULL;
    size_t bl = SIZE_MAX;
    for (size_t i = 0; i < m->n_servers; i++) {
        mserver *s = m->servers[i];
        if (s == except || s->ping_failures > 0 || s->doomed_until_us) continue;
        size_t l = m_server_load(m, s);
        if (l < bl || (l == bl && best && s->sstable_bytes < best->sstable_bytes)) {
            best = s;
            bl = l;
        }
    }
    return best;
}

static bool is_meta_tablet(const mtablet *t) { return !strcmp(t->e.table, BT_META_NAME); }

const ts_schema *m_schema_of(bt_master *m, const mtablet *t, ts_schema *scratch)
{
    if (is_meta_tablet(t)) {
        bt_meta_schema(scratch);
        return scratch;
    }
    mtable *tb = m_find_table(m, t->e.table, strlen(t->e.table));
    return tb ? &tb->schema : NULL;
}

static bool list_served(bt_master *m, mserver *s);

/* ---- calls to tablet servers -------------------------------------------------------------- */

int m_ts_call(bt_master *m, const char *addr, uint16_t method, const bt_buf *req, bt_buf *resp, int timeout_ms)
{
    bt_buf_clear(resp);
    return bt_conn_call(m->pool, addr, method, req ? req->data : NULL, req ? req->len : 0, resp, timeout_ms, 0);
}

static void put_tablet(bt_msg_writer *w, const mtablet *t)
{
    tsp_tablet td = { .id = t->e.id, .table = t->e.table, .table_len = strlen(t->e.table),
                      .dir = t->e.dir, .dir_len = strlen(t->e.dir),
                      .start = t->e.start.data, .start_len = t->e.start.len,
                      .end = t->e.end.data, .end_len = t->e.end.len };
    tsp_put_tablet(w, &td);
}

int m_apply_split(bt_master *m, uint64_t parent, const uint8_t *mid, size_t ml,
                  const tsp_tablet *l, const tsp_tablet *r, mserver *srv)
{
    (void)mid;
    (void)ml;
    mtablet *p = m_find_tablet(m, parent);
    if (!p) {
        if (m_find_tablet(m, l->id) && m_find_tablet(m, r->id)) return BT_OK; /* already recorded */
        return bt_err(BT_ENOTFOUND, "split of unknown tablet %" PRIu64, parent);
    }
    const tsp_tablet *kids[2] = { l, r };
    mtablet *made[2] = { NULL, NULL };
    for (int i = 0; i < 2; i++) {
        const tsp_tablet *k = kids[i];
        if (m_find_tablet(m, k->id)) { made[i] = m_find_tablet(m, k->id); continue; }
        bt_meta_entry e = {0};
        snprintf(e.table, sizeof e.table, "%s", p->e.table);
        e.id = k->id;
        int rc = bt_buf_append(&e.start, k->start, k->start_len);
        if (!rc) rc = bt_buf_append(&e.end, k->end, k->end_len);
        e.dir = strndup(k->dir, k->dir_len);
        e.server = strdup("");
        e.server_id = strdup("");
        if (!rc && e.dir && e.server && e.server_id) made[i] = m_add_tablet(m, &e);
        bt_meta_entry_free(&e);
        if (!made[i]) return BT_ENOMEM;
        m_set_server(made[i], srv);
    }
    m_remove_tablet(m, p);
    m->splits++;
    /* left first (a new key), then right (replaces the parent's key) */
    for (int i = 0; i < 2; i++)
        if (m_meta_write(m, made[i]) == BT_OK) made[i]->dirty = false;
    BT_INFO("recorded split of tablet %" PRIu64 " into %" PRIu64 " and %" PRIu64, parent, l->id, r->id);
    m_event(m, "tablet %" PRIu64 " split into %" PRIu64 " and %" PRIu64, parent, l->id, r->id);
    return BT_OK;
}

/* LOAD_TABLET answer: varint state (0 loaded, 1 already split: bytes mid,
 * tsp_tablet left, tsp_tablet right).  An empty answer means loaded. */
/* May free t (when the server answers that it had already split; then the
 * children are recorded and BT_OK returned): callers look t up again by id. */
int m_load(bt_master *m, mtablet *t, mserver *s)
{
    ts_schema scratch;
    const ts_schema *sc = m_schema_of(m, t, &scratch);
    if (!sc) return bt_err(BT_ENOTFOUND, "tablet %" PRIu64 " belongs to unknown table %s", t->e.id, t->e.table);
    bt_buf req = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_bytes(&w, m->seqr, strlen(m->seqr));
    put_tablet(&w, t);
    tsp_put_schema(&w, sc);
    bt_msg_put_varint(&w, t->e.is_new ? TSP_LOAD_CREATE : 0);
    int rc = bt_msg_writer_status(&w);
    if (!rc) rc = m_ts_call(m, s->addr, TSP_LOAD_TABLET, &req, &resp, LOAD_TIMEOUT_MS);
    if (!rc) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, resp.data, resp.len);
        tsp_load_answer a;
        rc = tsp_get_load_answer(&r, &a);
        if (!rc && a.state == TSP_LOAD_STATE_SPLIT) {
            const uint8_t *mid = a.mid;
            size_t ml = a.mid_len;
            tsp_tablet l = a.left, rt = a.right;
            {
                BT_INFO("tablet %" PRIu64 " had already split: recording its children", t->e.id);
                uint64_t pid = t->e.id;
                rc = m_apply_split(m, pid, mid, ml, &l, &rt, NULL);
                /* the splitting server may still serve the children: ask
                 * every server before they are assigned anywhere */
                for (size_t i = 0; !rc && i < m->n_servers; i++) list_served(m, m->servers[i]);
                if (!rc) rc = BT_EBUSY; /* t is gone */
            }
        } else if (!rc) {
            t->e.is_new = false;
            m_set_server(t, s);
            t->failures = 0;
            served_add(m, t->e.id, s);
        }
    }
    if (!rc) t->maybe_on = NULL;
    else if (rc == BT_ETIMEDOUT || rc == BT_EUNAVAIL || rc == BT_ECLOSED || rc == BT_EIO)
        t->maybe_on = s; /* no answer: it may have loaded it; retry there only */
    if (rc && rc != BT_EBUSY)
        BT_WARN("load of tablet %" PRIu64 " (%s) on %s failed: %s: %s", t->e.id, t->e.table, s->id,
                bt_errname(rc), bt_errmsg());
    bt_buf_free(&req);
    bt_buf_free(&resp);
    return rc == BT_EBUSY ? BT_OK : rc;
}

static int simple_cmd(bt_master *m, const mtablet *t, uint16_t method, bool fenced, int timeout_ms)
{
    bt_buf req = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    if (fenced) bt_msg_put_bytes(&w, m->seqr, strlen(m->seqr));
    bt_msg_put_varint(&w, t->e.id);
    int rc = bt_msg_writer_status(&w);
    if (!rc) rc = m_ts_call(m, t->srv->addr, method, &req, &resp, timeout_ms);
    bt_buf_free(&req);
    bt_buf_free(&resp);
    return rc;
}

int m_ts_call_unload(bt_master *m, const mtablet *t)
{
    return simple_cmd(m, t, TSP_UNLOAD_TABLET, true, LOAD_TIMEOUT_MS);
}

int m_unload(bt_master *m, mtablet *t)
{
    if (!t->srv) return BT_OK;
    int rc = simple_cmd(m, t, TSP_UNLOAD_TABLET, true, LOAD_TIMEOUT_MS);
    if (rc == BT_ENOTSERVING) rc = BT_OK;
    if (!rc) {
        served_forget_server(m, t->srv); /* hints only */
        m_set_server(t, NULL);
    }
    return rc;
}

/* Moves t: the source flushes while serving, then unloads (drain, flush
 * again, close), then the target loads it with nothing to replay. */
int m_move(bt_master *m, mtablet *t, mserver *to)
{
    if (!t->srv && t->maybe_on && t->maybe_on != to)
        return bt_err(BT_EUNAVAIL, "tablet %" PRIu64 " may still be loading on %s", t->e.id, t->maybe_on->id);
    if (!t->srv || t->srv == to) return t->srv ? BT_OK : m_load(m, t, to);
    mserver *from = t->srv;
    int rc = simple_cmd(m, t, TSP_FLUSH, false, LOAD_TIMEOUT_MS);
    if (rc == BT_ENOTSERVING) { /* it split (report not here yet) or went away: look again */
        list_served(m, from);
        return bt_err(BT_EUNAVAIL, "tablet %" PRIu64 " is no longer served by %s; retry", t->e.id, from->id);
    }
    if (rc) return rc;
    rc = m_unload(m, t);
    if (rc) return rc;
    uint64_t id = t->e.id;
    rc = m_load(m, t, to);
    if (!(t = m_find_tablet(m, id))) return BT_OK; /* it had split: its children were recorded */
    if (rc && t->maybe_on) {
        BT_WARN("move of tablet %" PRIu64 " to %s got no answer (%s); retrying there", id, to->id, bt_errname(rc));
    } else if (rc) {
        BT_WARN("move of tablet %" PRIu64 " to %s failed (%s); loading it back on %s", t->e.id, to->id,
                bt_errname(rc), from->id);
        if (m_load(m, t, from)) BT_WARN("tablet %" PRIu64 " left unassigned for now", id);
        if (!(t = m_find_tablet(m, id))) return rc; /* it had split meanwhile */
    } else {
        m->tablets_moved++;
        BT_INFO("moved tablet %" PRIu64 " (%s) from %s to %s", t->e.id, t->e.table, from->id, to->id);
        m_event(m, "moved tablet %" PRIu64 " (%s) from %s to %s", t->e.id, t->e.table, from->id, to->id);
    }
    if (t->srv && m_meta_write(m, t) == BT_OK) t->dirty = false;
    return rc;
}

/* ---- servers ----------------------------------------------------------------------------- */

static bool list_served(bt_master *m, mserver *s)
{
    bt_buf resp = {0};
    int rc = m_ts_call(m, s->addr, TSP_LIST_TABLETS, NULL, &resp, PING_TIMEOUT_MS * 2);
    if (!rc) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, resp.data, resp.len);
        uint64_t n;
        rc = bt_msg_get_varint(&r, &n);
        for (uint64_t i = 0; !rc && i < n; i++) {
            tsp_tablet_info ti;
            rc = tsp_get_tablet_info(&r, &ti);
            if (rc) break;
            served_add(m, ti.tablet.id, s);
            mtablet *t = m_find_tablet(m, ti.tablet.id);
            if (t && !t->srv) m_set_server(t, s);
            if (!t && m->meta_complete) {
                /* a tablet we do not know (a split whose report was lost):
                 * read METADATA again */
                for (size_t k = 0; k < m->n_tablets; k++)
                    if (!strcmp(m->tablets[k]->e.table, BT_META_NAME)) m->tablets[k]->scanned = false;
                m->meta_complete = false;
            }
        }
    }
    if (rc) BT_WARN("could not list the tablets of %s (%s): %s", s->id, s->addr, bt_errname(rc));
    else s->listed = true;
    bt_buf_free(&resp);
    return rc == BT_OK;
}

/* Its tablets become unassigned (assigned again once its logs are split). */
static void server_gone(bt_master *m, mserver *s, const char *why, int64_t hold_us)
{
    BT_WARN("tablet server %s (%s) is dead: %s; recovering its tablets", s->id, s->addr, why);
    m_event(m, "tablet server %s (%s) is dead: %s; recovering its tablets", s->id, s->addr, why);
    for (size_t i = 0; i < m->n_tablets; i++) {
        mtablet *t = m->tablets[i];
        if (t->srv != s) continue;
        m_set_server(t, NULL);
        t->hold_until_us = hold_us;
    }
    for (size_t i = 0; i < m->n_tablets; i++)
        if (m->tablets[i]->maybe_on == s) m->tablets[i]->maybe_on = NULL; /* its log covers it */
    for (size_t i = 0; i < m->n_zombies;)
        if (m->zombies[i].srv == s) m->zombies[i] = m->zombies[--m->n_zombies];
        else i++;
    served_forget_server(m, s);
    for (size_t i = 0; i < m->n_servers; i++)
        if (m->servers[i] == s) {
            m->servers[i] = m->servers[--m->n_servers];
            break;
        }
    /* its connections go at the next tick with no admin call running unlocked
     * (flush and compact calls may still use them) */
    char **pd = realloc(m->pending_drops, (m->n_pending_drops + 1) * sizeof *pd);
    if (pd) {
        m->pending_drops = pd;
        if ((pd[m->n_pending_drops] = strdup(s->addr))) m->n_pending_drops++;
    }
    free(s);
    m->servers_recovered++;
    m->orphans_current = false;
    /* read METADATA again before splitting its log: it may have split
     * tablets whose report never arrived, and their edits must not be
     * skipped as belonging to unknown tablets */
    for (size_t i = 0; i < m->n_tablets; i++)
        if (!strcmp(m->tablets[i]->e.table, BT_META_NAME)) m->tablets[i]->scanned = false;
    m->meta_complete = false;
}

static mserver *server_new(bt_master *m, const char *id, const char *addr, const char *logdir)
{
    if (m->n_servers == m->cap_servers) {
        size_t nc = m->cap_servers ? 2 * m->cap_servers : 16;
        mserver **p = realloc(m->servers, nc * sizeof *p);
        if (!p) return NULL;
        m->servers = p;
        m->cap_servers = nc;
    }
    mserver *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->addr, sizeof s->addr, "%s", addr);
    snprintf(s->logdir, sizeof s->logdir, "%s", logdir);
    s->last_ok_us = m_mono_us();
    m->servers[m->n_servers++] = s;
    BT_INFO("tablet server %s registered at %s", id, addr);
    m_event(m, "tablet server %s registered at %s", id, addr);
    return s;
}

/* Returns true if it read every server's file (a complete view). */
static bool refresh_servers(bt_master *m)
{
    char **names = NULL;
    size_t n = 0;
    bool complete = true;
    int rc = lk_list(m->lk, BT_LK_SERVERS, &names, &n);
    if (rc == BT_ENOTFOUND) n = 0;
    else if (rc) {
        BT_WARN("cannot list %s: %s", BT_LK_SERVERS, bt_errname(rc));
        return false;
    }
    for (size_t k = 0; k < m->n_servers; k++) m->servers[k]->seen = false;
    for (size_t i = 0; i < n; i++) {
        char path[LK_MAX_PATH];
        snprintf(path, sizeof path, "%s/%s", BT_LK_SERVERS, names[i]);
        uint8_t *data = NULL;
        size_t dl = 0;
        lk_stat st;
        mserver *s = m_find_server(m, names[i], strlen(names[i]));
        if (lk_get(m->lk, path, &data, &dl, &st)) {
            if (s) s->seen = true; /* cannot tell this time */
            complete = false;
            continue;
        }
        char addr[256], logdir[1100];
        bool ok = bt_server_file_parse(data, dl, addr, sizeof addr, logdir, sizeof logdir) == BT_OK;
        free(data);
        if (s) s->seen = true;
        if (st.lock_owner == 0) {
            if (!s) continue; /* starting (or a leftover file): not ours to judge yet */
            if (++s->unlocked_seen < 2) continue;
            if (lk_try_acquire(m->lk, path) != BT_OK) continue; /* re-registered meanwhile */
            lk_delete(m->lk, path, 0);
            server_gone(m, s, "its lock-service lock was released", 0);
            continue;
        }
        if (!ok) {
            complete = false;
            continue;
        }
        if (!s) {
            if ((s = server_new(m, names[i], addr, logdir))) {
                s->seen = true;
                list_served(m, s);
            }
            continue;
        }
        s->unlocked_seen = 0;
        if (!s->listed) list_served(m, s);
        if (strcmp(s->logdir, logdir) || strcmp(s->addr, addr)) {
            /* a new incarnation: the old one's tablets and log are orphans */
            server_gone(m, s, "it restarted (a new incarnation holds its lock)", 0);
            if ((s = server_new(m, names[i], addr, logdir))) {
                s->seen = true;
                list_served(m, s);
            }
        }
    }
    lk_free_names(names, n);
    /* known servers whose file is gone (a clean shutdown deletes it); from
     * the end, as server_gone moves the last entry into the freed slot */
    for (size_t k = m->n_servers; k-- > 0;)
        if (!m->servers[k]->seen && !m->servers[k]->doomed_until_us)
            server_gone(m, m->servers[k], "its lock file was deleted", 0);
    m->servers_complete = complete;
    return complete;
}

/* Notes the sizes of the tablets s serves (for bt_describe_table). */
static void list_sizes(bt_master *m, mserver *s)
{
    bt_buf resp = {0};
    if (m_ts_call(m, s->addr, TSP_LIST_TABLETS, NULL, &resp, PING_TIMEOUT_MS) == BT_OK) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, resp.data, resp.len);
        uint64_t n;
        int rc = bt_msg_get_varint(&r, &n);
        for (uint64_t i = 0; !rc && i < n; i++) {
            tsp_tablet_info ti;
            if ((rc = tsp_get_tablet_info(&r, &ti))) break;
            mtablet *t = m_find_tablet(m, ti.tablet.id);
            if (t && t->srv == s) {
                t->memtable_bytes = ti.memtable_bytes;
                t->sstable_bytes = ti.sstable_bytes;
            }
        }
    }
    bt_buf_free(&resp);
}

static void ping_servers(bt_master *m)
{
    int64_t now = m_mono_us();
    for (size_t i = 0; i < m->n_servers; i++) {
        mserver *s = m->servers[i];
        if (now < s->next_ping_us && !s->doomed_until_us) continue;
        s->next_ping_us = now + PING_PERIOD_US;
        bt_buf resp = {0};
        int rc = m_ts_call(m, s->addr, TSP_STATUS, NULL, &resp, PING_TIMEOUT_MS);
        if (!rc) {
            bt_msg_reader r;
            bt_msg_reader_init(&r, resp.data, resp.len);
            tsp_status st;
            if (tsp_get_status(&r, &st) == BT_OK) {
                s->tablets = st.n_tablets;
                s->memtable_bytes = st.memtable_bytes;
                s->sstable_bytes = st.sstable_bytes;
                s->reads = st.reads;
                s->writes = st.writes;
                s->compaction_queue = st.compaction_queue;
            }
            if (now >= s->next_sizes_us) {
                s->next_sizes_us = now + SIZES_PERIOD_US;
                list_sizes(m, s);
            }
            s->ping_failures = 0;
            s->last_ok_us = m_mono_us();
        } else {
            s->ping_failures++;
        }
        bt_buf_free(&resp);
        if (s->doomed_until_us && m_mono_us() >= s->doomed_until_us) {
            server_gone(m, s, "it stopped answering", 0);
            i--;
        } else if (!s->doomed_until_us && s->ping_failures &&
                   m_mono_us() - s->last_ok_us > (int64_t)m->o.server_timeout_ms * 1000) {
            /* unreachable but holding its lock: delete its file (it exits on
             * seeing that, or stops serving when its lease runs out); its log
             * stays untouched and its tablets stay put until that lease has
             * surely run out */
            char path[LK_MAX_PATH];
            snprintf(path, sizeof path, "%s/%s", BT_LK_SERVERS, s->id);
            lk_delete(m->lk, path, 0);
            s->doomed_until_us = m_mono_us() + (int64_t)m->o.lease_ms * 1000 + 500000;
            BT_WARN("tablet server %s has not answered for %u ms: deleted its lock file", s->id,
                    m->o.server_timeout_ms);
        }
    }
}

/* ---- dead logs ------------------------------------------------------------------------------ */

typedef struct split_ctx {
    bt_master *m;
    char buf[PATH_MAX];
} split_ctx;

static const char *tablet_dir_of(void *arg, uint64_t id)
{
    split_ctx *c = arg;
    mtablet *t = m_find_tablet(c->m, id);
    if (!t) return NULL;
    snprintf(c->buf, sizeof c->buf, "%s/%s", c->m->data_dir, t->e.dir);
    return c->buf;
}

static int rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT ? 0 : -1;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", path, de->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (lstat(p, &st)) { rc = -1; continue; }
        if (S_ISDIR(st.st_mode)) rc |= rm_rf(p);
        else if (unlink(p)) rc = -1;
    }
    closedir(d);
    return rmdir(path) ? -1 : rc;
}

/* An unassigned tablet whose directory holds a SPLIT marker was split by a
 * server that died before METADATA recorded it: record the children now, so
 * the dead server's log is split with their directories known (their edits
 * would otherwise be skipped as belonging to unknown tablets). */
static void adopt_split_children(bt_master *m)
{
    for (size_t i = 0; i < m->n_tablets; i++) {
        mtablet *t = m->tablets[i];
        if (t->srv || t->e.is_new) continue;
        char dir[PATH_MAX];
        if (snprintf(dir, sizeof dir, "%s/%s", m->data_dir, t->e.dir) >= (int)sizeof dir) continue;
        ts_split_marker mk;
        if (ts_split_marker_read(bt_env_posix(), dir, &mk) != BT_OK) continue;
        tsp_tablet l = { .id = mk.left.id, .table = t->e.table, .table_len = strlen(t->e.table),
                         .dir = mk.left.dir, .dir_len = strlen(mk.left.dir),
                         .start = mk.left.start.data, .start_len = mk.left.start.len,
                         .end = mk.left.end.data, .end_len = mk.left.end.len };
        tsp_tablet r = { .id = mk.right.id, .table = t->e.table, .table_len = strlen(t->e.table),
                         .dir = mk.right.dir, .dir_len = strlen(mk.right.dir),
                         .start = mk.right.start.data, .start_len = mk.right.start.len,
                         .end = mk.right.end.data, .end_len = mk.right.end.len };
        BT_INFO("tablet %" PRIu64 " was split before its server died: recording its children", t->e.id);
        bool ok = m_apply_split(m, t->e.id, mk.mid.data, mk.mid.len, &l, &r, NULL) == BT_OK;
        ts_split_marker_free(&mk);
        if (!ok) continue;
        /* a live server may still serve them: ask before they are assigned */
        for (size_t k = 0; k < m->n_servers; k++) list_served(m, m->servers[k]);
        i = (size_t)-1;
    }
}

static bool is_live_log(bt_master *m, const char *rel)
{
    for (size_t i = 0; i < m->n_servers; i++)
        if (!strcmp(m->servers[i]->logdir, rel)) return true;
    return false;
}

/* Finds log directories on disk (before reading the live servers' files, so
 * a dir created after this scan cannot be mistaken for an orphan). */
static int scan_logs(bt_master *m, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s/servers", m->data_dir);
    DIR *d = opendir(base);
    if (!d) return errno == ENOENT ? BT_OK : bt_err(BT_EIO, "cannot list %s: %s", base, strerror(errno));
    int rc = BT_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char sd[PATH_MAX];
        if (snprintf(sd, sizeof sd, "%s/%s", base, de->d_name) >= (int)sizeof sd) continue;
        DIR *d2 = opendir(sd);
        if (!d2) {
            rc = bt_err(BT_EIO, "cannot list %s: %s", sd, strerror(errno));
            break;
        }
        struct dirent *e2;
        while (!rc && (e2 = readdir(d2))) {
            if (!strncmp(e2->d_name, "deleted-", 8)) { /* a removal cut short: finish it */
                char gone[PATH_MAX + 300];
                snprintf(gone, sizeof gone, "%s/%s", sd, e2->d_name);
                rm_rf(gone);
                continue;
            }
            if (strncmp(e2->d_name, "log", 3) || (e2->d_name[3] && e2->d_name[3] != '-')) continue;
            char **p = realloc(*out, (*n + 1) * sizeof *p);
            size_t len = strlen(de->d_name) + strlen(e2->d_name) + 16;
            if (!p || !(p[*n] = malloc(len))) {
                if (p) *out = p;
                rc = BT_ENOMEM;
                break;
            }
            *out = p;
            snprintf(p[*n], len, "servers/%s/%s", de->d_name, e2->d_name);
            (*n)++;
        }
        closedir(d2);
        if (rc) break;
    }
    closedir(d);
    return rc;
}

/* found: the log directories on disk (listed before the servers' files were
 * read); servers_complete: this tick read every server file. */
static void recover_logs(bt_master *m, char **found, size_t nfound, bool servers_complete)
{
    /* orphans: found on disk, not a live server's current log; with an
     * incomplete view of the servers nothing new is called an orphan */
    for (size_t i = 0; servers_complete && i < nfound; i++) {
        if (is_live_log(m, found[i])) continue;
        bool known = false;
        for (size_t j = 0; j < m->n_orphans; j++) known |= !strcmp(m->orphans[j].rel, found[i]);
        if (known) continue;
        orphan_log *p = realloc(m->orphans, (m->n_orphans + 1) * sizeof *p);
        if (!p) return;
        m->orphans = p;
        memset(&p[m->n_orphans], 0, sizeof *p);
        snprintf(p[m->n_orphans].rel, sizeof p->rel, "%s", found[i]);
        m->n_orphans++;
        BT_INFO("commit log %s belongs to no live server: recovering it", found[i]);
    }
    if (m->n_orphans) adopt_split_children(m);
    bool all = servers_complete;
    for (size_t j = 0; j < m->n_orphans;) {
        orphan_log *o = &m->orphans[j];
        if (is_live_log(m, o->rel)) { /* never touch a live server's log */
            m->orphans[j] = m->orphans[--m->n_orphans];
            continue;
        }
        if (o->split_version != m->map_version) {
            split_ctx *c = malloc(sizeof *c);
            if (!c) { all = false; j++; continue; }
            c->m = m;
            char dir[PATH_MAX], name[1200];
            snprintf(dir, sizeof dir, "%s/%s", m->data_dir, o->rel);
            snprintf(name, sizeof name, "%s", o->rel + strlen("servers/"));
            for (char *q = name; *q; q++)
                if (*q == '/') *q = '-';
            ts_log_split_stats st;
            memset(&st, 0, sizeof st);
            int64_t t0 = m_mono_us();
            int rc = ts_log_split(bt_env_posix(), dir, name, tablet_dir_of, c, &st);
            free(c);
            if (rc && rc != BT_ENOTFOUND) {
                BT_ERROR("splitting commit log %s failed: %s: %s (retrying)", o->rel, bt_errname(rc), bt_errmsg());
                all = false;
                j++;
                continue;
            }
            BT_INFO("split commit log %s per tablet in %.1f ms", o->rel, (double)(m_mono_us() - t0) / 1000.0);
            o->split_version = m->map_version;
        }
        if (m->meta_complete && servers_complete && lk_session_valid(m->lk)) {
            /* every tablet is known: nothing in it is needed any more.
             * Renamed first (scan_logs ignores the new name), so a removal
             * cut short never leaves a partial log to be split again. */
            char dir[PATH_MAX], gone[PATH_MAX + 32];
            snprintf(dir, sizeof dir, "%s/%s", m->data_dir, o->rel);
            char *slash = strrchr(dir, '/');
            snprintf(gone, sizeof gone, "%.*s/deleted-%s", (int)(slash - dir), dir, slash + 1);
            if (rename(dir, gone)) {
                BT_WARN("could not rename %s for removal: %s (retrying)", dir, strerror(errno));
                j++;
                continue;
            }
            if (rm_rf(gone)) BT_WARN("could not remove %s: %s", gone, strerror(errno));
            BT_INFO("commit log %s recovered and removed", o->rel);
            m_event(m, "commit log %s of a dead server split and replayed", o->rel);
            m->orphans[j] = m->orphans[--m->n_orphans];
            continue;
        }
        j++;
    }
    m->orphans_current = all;
}

/* ---- discovery: root, METADATA ------------------------------------------------------------ */

static int add_row(bt_master *m, const ts_row *row, void *arg)
{
    (void)arg;
    bt_meta_entry e;
    int rc = bt_meta_entry_decode(row, &e);
    if (rc) {
        BT_WARN("skipping a malformed METADATA row: %s", bt_errmsg());
        return BT_OK;
    }
    if (m->root && e.id == m->root->e.id) {
        bt_meta_entry_free(&e);
        return BT_OK;
    }
    if (strcmp(e.table, BT_META_NAME) && !m_find_table(m, e.table, strlen(e.table))) {
        /* a table deleted half-way: finish deleting it */
        mtablet tmp = { .e = e };
        mserver *s = served_by(m, e.id);
        if (s) {
            tmp.srv = s;
            simple_cmd(m, &tmp, TSP_UNLOAD_TABLET, true, LOAD_TIMEOUT_MS);
        }
        m_meta_delete(m, &tmp);
        BT_INFO("removed METADATA row of tablet %" PRIu64 " of deleted table %s", e.id, e.table);
        bt_meta_entry_free(&e);
        return BT_OK;
    }
    mtablet *t = m_find_tablet(m, e.id);
    if (!t) {
        /* a known tablet with the same key but another id was split (the
         * right child took its key): it no longer exists */
        for (size_t i = 0; i < m->n_tablets; i++) {
            mtablet *o = m->tablets[i];
            if (o == m->root || strcmp(o->e.table, e.table) || o->e.end.len != e.end.len ||
                (e.end.len && memcmp(o->e.end.data, e.end.data, e.end.len)))
                continue;
            BT_INFO("tablet %" PRIu64 " of %s was split (METADATA names %" PRIu64 " for its key)", o->e.id,
                    o->e.table, e.id);
            m_remove_tablet(m, o);
            m->splits++;
            break;
        }
        mserver *claimed = *e.server_id ? m_find_server(m, e.server_id, strlen(e.server_id)) : NULL;
        if (claimed && !claimed->relisted && !served_by(m, e.id)) {
            /* METADATA says a live server has it (a split it made, say):
             * ask that server rather than assign it twice */
            claimed->relisted = true;
            list_served(m, claimed);
        }
        t = m_add_tablet(m, &e);
        if (t) {
            mserver *s = served_by(m, e.id);
            t->srv = NULL;
            if (s) {
                t->srv = s;
                t->dirty = strcmp(e.server, s->addr) != 0;
            } else if (claimed && !claimed->listed) {
                t->srv = claimed; /* cannot ask it: trust METADATA rather than assign it twice */
            } else if (*e.server_id && !claimed && !m->servers_complete) {
                t->hold_until_us = m_mono_us() + 2000000; /* its server may be one we could not read */
                m_set_server(t, NULL);
            } else if (*e.server) {
                m_set_server(t, NULL); /* stale location */
            }
        }
    }
    bt_meta_entry_free(&e);
    return t ? BT_OK : BT_ENOMEM;
}

static int read_root_file(bt_master *m)
{
    uint8_t *data = NULL;
    size_t n = 0;
    int rc = lk_get(m->lk, BT_LK_ROOT, &data, &n, NULL);
    if (rc) return rc;
    bt_meta_entry e;
    rc = bt_root_decode(data, n, &e);
    free(data);
    if (rc) return rc;
    mtablet *t = m_add_tablet(m, &e);
    bt_meta_entry_free(&e);
    if (!t) return BT_ENOMEM;
    m->root = t;
    mserver *s = served_by(m, t->e.id);
    mserver *claimed = *t->e.server_id ? m_find_server(m, t->e.server_id, strlen(t->e.server_id)) : NULL;
    if (!s && claimed && !claimed->listed) s = claimed; /* cannot ask it: trust /bt/root */
    if (s) {
        m_set_server(t, s);
        t->dirty = false;
    } else {
        if (*t->e.server_id && !claimed && !m->servers_complete) t->hold_until_us = m_mono_us() + 2000000;
        m_set_server(t, NULL);
    }
    return BT_OK;
}

static int new_meta_tablet(bt_master *m, const char *start, size_t sl, const char *end, size_t el, mtablet **out)
{
    bt_meta_entry e = {0};
    strcpy(e.table, BT_META_NAME);
    e.id = bt_new_tablet_id();
    char dir[256];
    bt_tablet_dir(dir, sizeof dir, BT_META_NAME, e.id);
    e.dir = strdup(dir);
    e.server = strdup("");
    e.server_id = strdup("");
    e.is_new = true;
    int rc = bt_buf_append(&e.start, start, sl);
    if (!rc) rc = bt_buf_append(&e.end, end, el);
    *out = !rc && e.dir && e.server && e.server_id ? m_add_tablet(m, &e) : NULL;
    bt_meta_entry_free(&e);
    return *out ? BT_OK : BT_ENOMEM;
}

/* First start of a cluster: the root tablet and one METADATA tablet. */
static void bootstrap(bt_master *m)
{
    if (m->n_servers == 0) return;
    mtablet *root, *meta;
    if (new_meta_tablet(m, "", 0, BT_META_ROOT_END, BT_META_ROOT_END_LEN, &root)) return;
    if (new_meta_tablet(m, BT_META_ROOT_END, BT_META_ROOT_END_LEN, "", 0, &meta)) {
        m_remove_tablet(m, root);
        return;
    }
    m->root = root;
    mserver *s1 = m_least_loaded(m, NULL);
    int rc = s1 ? m_load(m, root, s1) : bt_err(BT_EUNAVAIL, "no tablet server answers yet");
    mserver *s2 = rc ? NULL : m_least_loaded(m, NULL);
    if (!rc) rc = s2 ? m_load(m, meta, s2) : bt_err(BT_EUNAVAIL, "no tablet server answers yet");
    if (!rc) rc = m_meta_write(m, meta);  /* into the root tablet */
    if (!rc) rc = m_meta_write(m, root);  /* its own row, then /bt/root: the commit */
    if (rc) {
        BT_WARN("bootstrapping METADATA failed (%s: %s); retrying", bt_errname(rc), bt_errmsg());
        if (root->srv) m_unload(m, root);
        if (meta->srv) m_unload(m, meta);
        m_remove_tablet(m, meta);
        m_remove_tablet(m, root);
        return;
    }
    root->dirty = meta->dirty = false;
    root->scanned = meta->scanned = true;
    BT_INFO("created METADATA: root tablet %" PRIu64 " on %s, METADATA tablet %" PRIu64 " on %s",
            root->e.id, root->srv->id, meta->e.id, meta->srv->id);
}

static void discover(bt_master *m)
{
    for (size_t i = 0; i < m->n_servers; i++) m->servers[i]->relisted = false;
    if (!m->root) {
        int rc = read_root_file(m);
        if (rc == BT_ENOTFOUND) bootstrap(m);
        else if (rc) BT_WARN("cannot read %s: %s: %s", BT_LK_ROOT, bt_errname(rc), bt_errmsg());
        if (!m->root) return;
    }
    if (m->root->srv && !m->root->scanned) {
        if (m_meta_scan(m, m->root, add_row, NULL) == BT_OK) m->root->scanned = true;
    }
    /* add_row may add and remove (swap-remove) user tablets while a scan
     * runs: restart after each scan, then check every METADATA tablet */
    for (bool again = m->root->scanned; again;) {
        again = false;
        for (size_t i = 0; i < m->n_tablets && !again; i++) {
            mtablet *t = m->tablets[i];
            if (t == m->root || !is_meta_tablet(t) || t->scanned || !t->srv) continue;
            if (m_meta_scan(m, t, add_row, NULL) == BT_OK) {
                t->scanned = true;
                again = true;
            }
        }
    }
    bool complete = m->root->scanned;
    for (size_t i = 0; i < m->n_tablets; i++)
        if (is_meta_tablet(m->tablets[i]) && !m->tablets[i]->scanned) complete = false;
    if (complete && !m->meta_complete) BT_INFO("METADATA loaded: %zu tablets known", m->n_tablets);
    m->meta_complete = complete;
}

/* ---- assignment ---------------------------------------------------------------------------- */

static int tablet_rank(const bt_master *m, const mtablet *t)
{
    return t == m->root ? 0 : is_meta_tablet(t) ? 1 : 2;
}

static void assign(bt_master *m)
{
    if (!m->orphans_current || m->n_servers == 0) return;
    int64_t now = m_mono_us();
    for (int rank = 0; rank < 3; rank++) {
        for (size_t i = 0; i < m->n_tablets; i++) {
            mtablet *t = m->tablets[i];
            if (t->srv || tablet_rank(m, t) != rank || now < t->hold_until_us) continue;
            if (rank == 2 && !m->meta_complete) continue;
            mserver *s = t->maybe_on ? t->maybe_on : m_least_loaded(m, NULL);
            if (!s) return;
            size_t before = m->n_tablets;
            int rc = m_load(m, t, s);
            if (rc) {
                t->failures++;
                t->hold_until_us = now + 200000LL * (t->failures < 10 ? t->failures : 10);
            }
            if (m->n_tablets != before || (i < m->n_tablets && m->tablets[i] != t)) i = (size_t)-1; /* changed */
        }
        if (rank == 0 && (!m->root || !m->root->srv)) return; /* nothing else can be written yet */
    }
}

static void write_dirty(bt_master *m)
{
    /* METADATA tablets' rows live in the root, users' in METADATA: write in rank order */
    for (int rank = 0; rank < 3; rank++)
        for (size_t i = 0; i < m->n_tablets; i++) {
            mtablet *t = m->tablets[i];
            if (!t->dirty || tablet_rank(m, t) != rank) continue;
            if (!t->srv && t->e.is_new) continue; /* written when created */
            if (m_meta_write(m, t) == BT_OK) t->dirty = false;
        }
}

static void balance(bt_master *m)
{
    if (!m->meta_complete || m->n_servers < 2) return;
    mserver *hi = NULL, *lo = NULL;
    size_t hl = 0, ll = SIZE_MAX;
    for (size_t i = 0; i < m->n_servers; i++) {
        mserver *s = m->servers[i];
        if (s->ping_failures) continue;
        size_t l = m_server_load(m, s);
        if (!hi || l > hl || (l == hl && s->sstable_bytes > hi->sstable_bytes)) { hi = s; hl = l; }
        if (!lo || l < ll || (l == ll && s->sstable_bytes < lo->sstable_bytes)) { lo = s; ll = l; }
    }
    if (!hi || !lo || hi == lo || hl < ll + 2) return;
    /* move the smallest user tablet: least to flush and least to warm up */
    for (size_t i = 0; i < m->n_tablets; i++) {
        mtablet *t = m->tablets[i];
        if (t->srv != hi || is_meta_tablet(t)) continue;
        BT_INFO("balancing: %s serves %zu tablets, %s %zu", hi->id, hl, lo->id, ll);
        m_event(m, "balancing: %s serves %zu tablets, %s %zu", hi->id, hl, lo->id, ll);
        m_move(m, t, lo);
        return;
    }
}

/* ---- life cycle ----------------------------------------------------------------------------- */

static void on_session(void *arg, lk_session_event ev)
{
    bt_master *m = arg;
    if (ev == LK_SESSION_EXPIRED && atomic_load(&m->active)) {
        BT_ERROR("lock-service session expired while active: another master may take over; exiting");
        fflush(NULL);
        _exit(4);
    }
    if (ev == LK_SESSION_EXPIRED) {
        pthread_mutex_lock(&m->sup_mu);
        m->stop = true;
        pthread_cond_broadcast(&m->sup_cv);
        pthread_mutex_unlock(&m->sup_mu);
    }
}

static int ensure_dir(lk_client *lk, const char *p)
{
    int rc = lk_create(lk, p, NULL, 0, LK_DIR);
    return rc == BT_EEXIST ? BT_OK : rc;
}

static int load_tables(bt_master *m)
{
    char **names = NULL;
    size_t n = 0;
    int rc = lk_list(m->lk, BT_LK_SCHEMA, &names, &n);
    if (rc) return rc;
    free(m->tables);
    m->tables = calloc(n ? n : 1, sizeof *m->tables);
    m->n_tables = 0;
    if (!m->tables) rc = BT_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        char path[LK_MAX_PATH];
        snprintf(path, sizeof path, "%s/%s", BT_LK_SCHEMA, names[i]);
        uint8_t *data = NULL;
        size_t dl = 0;
        int g = lk_get(m->lk, path, &data, &dl, NULL);
        if (g == BT_ENOTFOUND) continue; /* deleted meanwhile */
        if (g) { /* never guess: a table missing here would look deleted */
            rc = g;
            break;
        }
        mtable *tb = &m->tables[m->n_tables];
        snprintf(tb->name, sizeof tb->name, "%s", names[i]);
        rc = bt_schema_from_json(data, dl, &tb->schema);
        free(data);
        if (rc) {
            rc = bt_err(rc, "schema of table %s is unreadable: %s", names[i], bt_errmsg());
            break;
        }
        m->n_tables++;
    }
    lk_free_names(names, n);
    return rc;
}

static int become_active(bt_master *m)
{
    int rc = lk_acquire(m->lk, BT_LK_MASTER, 0);
    if (rc) return rc;
    rc = lk_set(m->lk, BT_LK_MASTER, m->addr, strlen(m->addr), 0);
    if (!rc) rc = lk_get_sequencer(m->lk, BT_LK_MASTER, m->seqr, sizeof m->seqr);
    if (!rc) rc = ensure_dir(m->lk, BT_LK_SERVERS);
    if (!rc) rc = ensure_dir(m->lk, BT_LK_SCHEMA);
    pthread_mutex_lock(&m->mu);
    if (!rc) rc = load_tables(m);
    if (!rc) {
        m->active_since_us = m_wall_us();
        atomic_store(&m->active, true);
        int64_t now = m_mono_us();
        m->next_balance_us = now + (int64_t)m->o.balance_interval_ms * 1000;
        m->next_gc_us = now + (int64_t)m->o.gc_interval_s * 1000000;
    }
    pthread_mutex_unlock(&m->mu);
    if (!rc) {
        printf("bt-master: active on %s\n", m->addr);
        fflush(stdout);
        BT_INFO("active master on %s (%zu tables)", m->addr, m->n_tables);
        m_event(m, "became the active master on %s (%zu tables)", m->addr, m->n_tables);
    }
    return rc;
}

static void tick(bt_master *m)
{
    pthread_mutex_lock(&m->mu);
    char **logs = NULL;
    size_t nlogs = 0;
    bool logs_ok = scan_logs(m, &logs, &nlogs) == BT_OK; /* before reading the servers' files */
    if (!logs_ok) BT_WARN("%s; not recovering or assigning this round", bt_errmsg());
    bool servers_ok = refresh_servers(m);
    ping_servers(m);
    discover(m);
    if (logs_ok) recover_logs(m, logs, nlogs, servers_ok);
    else m->orphans_current = false;
    for (size_t i = 0; i < nlogs; i++) free(logs[i]);
    free(logs);
    assign(m);
    discover(m);                  /* METADATA tablets assigned just now */
    for (size_t i = 0; i < m->n_zombies;) { /* deleted tables' tablets not yet unloaded */
        mtablet tmp = { .srv = m->zombies[i].srv };
        tmp.e.id = m->zombies[i].id;
        int rc = m_ts_call_unload(m, &tmp);
        if (rc == BT_OK || rc == BT_ENOTSERVING) m->zombies[i] = m->zombies[--m->n_zombies];
        else i++;
    }
    if (m->unlocked_calls == 0) {
        for (size_t i = 0; i < m->n_pending_drops; i++) {
            bt_conn_pool_drop(m->pool, m->pending_drops[i]);
            free(m->pending_drops[i]);
        }
        m->n_pending_drops = 0;
    }
    write_dirty(m);
    int64_t now = m_mono_us();
    if (m->o.balance_interval_ms != UINT32_MAX && now >= m->next_balance_us) {
        m->next_balance_us = now + (int64_t)m->o.balance_interval_ms * 1000;
        balance(m);
    }
    if (m->o.gc_interval_s != UINT32_MAX && now >= m->next_gc_us && m->meta_complete) {
        m->next_gc_us = now + (int64_t)m->o.gc_interval_s * 1000000;
        uint64_t f = 0, b = 0;
        m_gc(m, m->o.gc_grace_s * 1000u, &f, &b);
    }
    pthread_mutex_unlock(&m->mu);
}

int bt_master_run(bt_master *m)
{
    printf("bt-master: standby on %s, waiting for %s\n", m->addr, BT_LK_MASTER);
    fflush(stdout);
    for (;;) {
        pthread_mutex_lock(&m->sup_mu);
        bool stop = m->stop;
        pthread_mutex_unlock(&m->sup_mu);
        if (stop) return 0;
        int rc = lk_acquire(m->lk, BT_LK_MASTER, 500);
        if (rc == BT_ETIMEDOUT) continue;
        if (rc == BT_ENOTFOUND) {
            ensure_dir(m->lk, "/bt");
            rc = lk_create(m->lk, BT_LK_MASTER, NULL, 0, 0);
            if (rc == BT_EEXIST) rc = BT_OK;
            if (!rc) continue;
        }
        if (rc) {
            BT_WARN("waiting for %s: %s: %s", BT_LK_MASTER, bt_errname(rc), bt_errmsg());
            if (rc == BT_ECLOSED) return 4;
            usleep(200000);
            continue;
        }
        break;
    }
    int rc = become_active(m);
    if (rc) {
        BT_ERROR("cannot become active: %s: %s", bt_errname(rc), bt_errmsg());
        return 1;
    }
    pthread_mutex_lock(&m->sup_mu);
    while (!m->stop) {
        pthread_mutex_unlock(&m->sup_mu);
        if (!lk_session_valid(m->lk)) on_session(m, LK_SESSION_EXPIRED);
        tick(m);
        pthread_mutex_lock(&m->sup_mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)m->o.tick_ms * 1000000L;
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        if (!m->stop) pthread_cond_timedwait(&m->sup_cv, &m->sup_mu, &ts);
    }
    pthread_mutex_unlock(&m->sup_mu);
    return 0;
}

void bt_master_request_stop(bt_master *m)
{
    pthread_mutex_lock(&m->sup_mu);
    m->stop = true;
    pthread_cond_broadcast(&m->sup_cv);
    pthread_mutex_unlock(&m->sup_mu);
}

const char *bt_master_address(const bt_master *m) { return m->addr; }

int bt_master_open(const bt_master_options *o, bt_master **out)
{
    if (!o->lock_url || !*o->lock_url) return bt_err(BT_EINVAL, "--lock is required");
    if (!o->data_dir || !*o->data_dir) return bt_err(BT_EINVAL, "--data-dir is required");
    bt_master *m = calloc(1, sizeof *m);
    if (!m) return BT_ENOMEM;
    m->o = *o;
    if (!m->o.lease_ms) m->o.lease_ms = 10000;
    if (!m->o.tick_ms) m->o.tick_ms = 100;
    if (!m->o.balance_interval_ms) m->o.balance_interval_ms = 10000;
    if (!m->o.gc_interval_s) m->o.gc_interval_s = 300;
    if (!m->o.gc_grace_s) m->o.gc_grace_s = 600;
    if (!m->o.server_timeout_ms) m->o.server_timeout_ms = 3 * m->o.lease_ms;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->ev_mu, NULL);
    pthread_mutex_init(&m->sup_mu, NULL);
    pthread_cond_init(&m->sup_cv, NULL);
    pthread_mutex_init(&m->job_mu, NULL);
    pthread_cond_init(&m->job_cv, NULL);
    int rc = BT_OK;
    if (mkdir(o->data_dir, 0755) && errno != EEXIST)
        rc = bt_err(BT_EIO, "cannot create --data-dir %s: %s", o->data_dir, strerror(errno));
    if (!rc && !(m->data_dir = realpath(o->data_dir, NULL)))
        rc = bt_err(BT_EINVAL, "--data-dir %s: %s", o->data_dir, strerror(errno));
    m->bind = strdup(o->bind && *o->bind ? o->bind : "127.0.0.1");
    m->lock_url = strdup(o->lock_url);
    if (!rc && (!m->bind || !m->lock_url)) rc = BT_ENOMEM;
    if (!rc) rc = bt_conn_pool_new(NULL, &m->pool);
    if (!rc) {
        static const uint16_t methods[] = { MP_CREATE_TABLE, MP_DELETE_TABLE, MP_ALTER_TABLE, MP_LIST_TABLES,
                                            MP_DESCRIBE, MP_MOVE_TABLET, MP_SPLIT_TABLE, MP_FLUSH_TABLE,
                                            MP_COMPACT_TABLE, MP_STATUS, MP_REPORT_SPLIT, MP_RUN_GC };
        enum { N = sizeof methods / sizeof methods[0] };
        rpc_method tab[N];
        for (int i = 0; i < N; i++) tab[i] = (rpc_method){ methods[i], m_admin_handler, m };
        rc = rpc_server_new(m->bind, o->port, tab, N, NULL, &m->rpc);
    }
    if (!rc) {
        char buf[300];
        snprintf(buf, sizeof buf, "%s:%u", m->bind, (unsigned)rpc_server_port(m->rpc));
        m->addr = strdup(o->advertise && *o->advertise ? o->advertise : buf);
        if (!m->addr) rc = BT_ENOMEM;
    }
    if (!rc) {
        lk_options lo = { .lease_ms = m->o.lease_ms, .on_session = on_session, .arg = m };
        rc = lk_open(m->lock_url, &lo, &m->lk);
        if (!rc) rc = ensure_dir(m->lk, "/bt");
    }
    if (!rc) rc = m_admin_start(m);
    if (!rc) rc = rpc_server_start(m->rpc);
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", bt_errmsg());
        bt_master_close(m);
        return bt_err(rc, "%s", msg);
    }
    *out = m;
    return BT_OK;
}

void bt_master_close(bt_master *m)
{
    if (!m) return;
    if (m->rpc) rpc_server_stop(m->rpc);
    m_admin_stop(m);
    bool was_active = atomic_exchange(&m->active, false);
    if (m->lk) {
        if (was_active) lk_release(m->lk, BT_LK_MASTER);
        lk_close(m->lk);
    }
    rpc_server_free(m->rpc);
    bt_conn_pool_free(m->pool);
    for (size_t i = 0; i < m->n_tablets; i++) {
        bt_meta_entry_free(&m->tablets[i]->e);
        free(m->tablets[i]);
    }
    for (size_t i = 0; i < m->n_servers; i++) free(m->servers[i]);
    free(m->tablets);
    free(m->servers);
    free(m->tables);
    free(m->orphans);
    free(m->served);
    free(m->zombies);
    for (size_t i = 0; i < m->n_pending_drops; i++) free(m->pending_drops[i]);
    free(m->pending_drops);
    free(m->data_dir);
    free(m->addr);
    free(m->lock_url);
    free(m->bind);
    free(m);
}

/* tabletserver/tablet.c: a tablet's lifecycle and its write path.
 *
 * Write path (ts_tablet_mutate_row):
 *   1. validate the mutation and encode it as a log payload (server time
 *      resolved here, so replay is deterministic);
 *   2. under t->mu: make room (rotate a full memtable, throttle when
 *      compaction lags), assign sequence numbers, pin the memtable;
 *   3. without the lock: ts_log_append (group commit; durable per the mode);
 *   4. under t->mu: wait until every earlier sequence is applied, insert the
 *      cells into the pinned memtable, then advance visible_seq past them.
 * Step 4's ordering is what makes a row mutation atomic for readers: a read
 * only looks at sequences <= visible_seq, and visible_seq only moves past a
 * mutation once all of its cells are in.
 */
#include "tabletserver/tablet_internal.h"
#include "common/log.h"
#include "common/status.h"
#include "tabletserver/logsplit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* ---- tables and versions -------------------------------------------------- */

void ts_table_ref(ts_table *tb) { atomic_fetch_add(&tb->refs, 1); }

void ts_table_unref(ts_table *tb)
{
    if (!tb || atomic_fetch_sub(&tb->refs, 1) != 1) return;
    sst_reader_unref(tb->reader);
    ts_file_meta_free(&tb->meta);
    free(tb->full_path);
    free(tb);
}

ts_version *ts_version_new(int n)
{
    ts_version *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->tables = calloc((size_t)(n ? n : 1), sizeof *v->tables);
    if (!v->tables) { free(v); return NULL; }
    atomic_init(&v->refs, 1);
    return v;
}

void ts_version_ref(ts_version *v) { atomic_fetch_add(&v->refs, 1); }

void ts_version_unref(ts_version *v)
{
    if (!v || atomic_fetch_sub(&v->refs, 1) != 1) return;
    for (int i = 0; i < v->n; i++) ts_table_unref(v->tables[i]);
    free(v->tables);
    free(v);
}

int ts_version_count_group(const ts_version *v, int group)
{
    int n = 0;
    for (int i = 0; i < v->n; i++) n += v->tables[i]->meta.group == group;
    return n;
}

ts_schema_ref *ts_schema_ref_new(const ts_schema *sc)
{
    ts_schema_ref *r = malloc(sizeof *r);
    if (!r) return NULL;
    atomic_init(&r->refs, 1);
    r->s = *sc;
    return r;
}

void ts_schema_ref_unref(ts_schema_ref *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) free(r);
}

int ts_table_open(ts_tablet *t, const ts_file_meta *meta, bool in_memory, ts_table **out)
{
    ts_table *tb = calloc(1, sizeof *tb);
    if (!tb) return BT_ENOMEM;
    atomic_init(&tb->refs, 1);
    int rc = ts_file_meta_copy(&tb->meta, meta);
    if (!rc) {
        size_t n = strlen(t->dir) + strlen(meta->path) + 2;
        tb->full_path = malloc(n);
        if (!tb->full_path) rc = BT_ENOMEM;
        else if (meta->inherited || meta->path[0] == '/') snprintf(tb->full_path, n, "%s", meta->path);
        else snprintf(tb->full_path, n, "%s/%s", t->dir, meta->path);
    }
    if (!rc) rc = sst_reader_open_ex(t->eng->env, tb->full_path, t->eng->cache, in_memory, &tb->reader);
    if (rc) {
        ts_table_unref(tb);
        return rc;
    }
    *out = tb;
    return BT_OK;
}

int ts_tablet_save_manifest(ts_tablet *t, ts_version *v, uint64_t flushed_seq)
{
    if (t->fenced)
        return bt_err(BT_EFAILED_PRECONDITION, "tablet %llu is fenced: its manifest may not change",
                      (unsigned long long)t->id);
    ts_manifest m;
    memset(&m, 0, sizeof m);
    m.tablet_id = t->id;
    m.start_row = t->start;
    m.end_row = t->end;
    m.schema = t->schema;
    m.flushed_seq = flushed_seq;
    m.last_seq = t->last_seq;
    m.next_file = t->next_file;
    m.n_files = v->n;
    m.files = malloc((size_t)(v->n ? v->n : 1) * sizeof *m.files);
    if (!m.files) return BT_ENOMEM;
    for (int i = 0; i < v->n; i++) m.files[i] = v->tables[i]->meta; /* shallow: only read */
    int rc = ts_manifest_write(t->eng->env, t->dir, &m);
    free(m.files);
    return rc;
}

/* ---- mutation payloads (the commit log's record body) --------------------- */
/* varint row_len, row, varint n, then n x { u8 type, lenbytes family,
 * lenbytes qualifier, fixed64 ts-or-from, fixed64 to, lenbytes value }. */

static size_t payload_size(size_t row_len, const ts_mutation *m, int n)
{
    size_t s = row_len + 2 * BT_MAX_VARINT64;
    for (int i = 0; i < n; i++)
        s += 1 + m[i].family_len + m[i].qualifier_len + m[i].value_len + 16 + 3 * BT_MAX_VARINT64;
    return s;
}

static uint8_t *put_bytes(uint8_t *p, const void *d, size_t n)
{
    p = bt_put_varint64(p, n);
    if (n) memcpy(p, d, n);
    return p + n;
}

static size_t encode_payload(uint8_t *out, const uint8_t *row, size_t row_len,
                             const ts_mutation *m, int n, int64_t now)
{
    uint8_t *p = put_bytes(out, row, row_len);
    p = bt_put_varint64(p, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        *p++ = (uint8_t)m[i].type;
        p = put_bytes(p, m[i].family, m[i].type == TS_DELETE_ROW ? 0 : m[i].family_len);
        p = put_bytes(p, m[i].qualifier, m[i].qualifier_len);
        int64_t a = m[i].type == TS_SET_CELL ? m[i].timestamp : m[i].ts_from;
        if (m[i].type == TS_SET_CELL && a == TS_SERVER_TIME) a = now;
        bt_put_fixed64(p, (uint64_t)a);
        bt_put_fixed64(p + 8, (uint64_t)(m[i].ts_to == 0 ? INT64_MAX : m[i].ts_to));
        p = put_bytes(p + 16, m[i].value, m[i].type == TS_SET_CELL ? m[i].value_len : 0);
    }
    return (size_t)(p - out);
}

/* Inserts one decoded mutation with sequence seq. */
static int apply_one(ts_memtable *mt, const uint8_t *row, size_t rl, int type,
                     const uint8_t *fam, size_t fl, const uint8_t *q, size_t ql,
                     int64_t a, int64_t b, const uint8_t *v, size_t vl, uint64_t seq)
{
    uint8_t stack[1024], range[16];
    bt_buf key = { stack, 0, sizeof stack };
    size_t need = 2 * (rl + fl + ql) + 8 + TS_IKEY_SUFFIX;
    if (need > sizeof stack) key = (bt_buf){0};
    int rc;
    switch (type) {
    case TS_SET_CELL:
        rc = ts_ikey_encode(&key, row, rl, fam, fl, q, ql, a, seq, TS_KT_PUT);
        break;
    case TS_DELETE_CELLS:
        if (b != INT64_MAX && a + 1 == b) {
            rc = ts_ikey_encode(&key, row, rl, fam, fl, q, ql, a, seq, TS_KT_DELETE_CELL);
            vl = 0;
        } else {
            rc = ts_ikey_encode(&key, row, rl, fam, fl, q, ql, INT64_MAX, seq, TS_KT_DELETE_COLUMN);
            bt_put_fixed64(range, (uint64_t)a);
            bt_put_fixed64(range + 8, (uint64_t)b);
            v = range;
            vl = 16;
        }
        break;
    case TS_DELETE_FAMILY:
        rc = ts_ikey_encode(&key, row, rl, fam, fl, NULL, 0, INT64_MAX, seq, TS_KT_DELETE_FAMILY);
        vl = 0;
        break;
    case TS_DELETE_ROW:
        rc = ts_ikey_encode(&key, row, rl, NULL, 0, NULL, 0, INT64_MAX, seq, TS_KT_DELETE_ROW);
        vl = 0;
        break;
    default:
        rc = bt_err(BT_ECORRUPT, "unknown mutation type %d in payload", type);
    }
    if (!rc) rc = ts_memtable_add(mt, key.data, key.len, v, vl);
    if (key.data != stack) bt_buf_free(&key);
    return rc;
}

uint64_t ts_row_hash(const uint8_t *row, size_t n)
{
    return XXH3_64bits(row, n);
}

int ts_apply_payload(ts_memtable *mt, const uint8_t *p, size_t n, uint64_t seq, uint64_t *last)
{
    const uint8_t *end = p + n, *row, *fam, *q, *v;
    size_t rl, fl, ql, vl;
    uint64_t count;
    if (n == 0) return bt_err(BT_ECORRUPT, "empty mutation payload");
    while (p < end) { /* one or more row mutations, back to back */
        if (bt_get_lenbytes(&p, end, &row, &rl) || !(p = bt_get_varint64(p, end, &count)) ||
            count == 0 || count > n)
            return bt_err(BT_ECORRUPT, "malformed mutation payload header");
        ts_memtable_note_hash(mt, ts_row_hash(row, rl));
        for (uint64_t i = 0; i < count; i++) {
            if (p >= end) return bt_err(BT_ECORRUPT, "truncated mutation payload");
            int type = *p++;
            if (bt_get_lenbytes(&p, end, &fam, &fl) || bt_get_lenbytes(&p, end, &q, &ql) || end - p < 16)
                return bt_err(BT_ECORRUPT, "truncated mutation payload");
            int64_t a = (int64_t)bt_get_fixed64(p), b = (int64_t)bt_get_fixed64(p + 8);
            p += 16;
            if (bt_get_lenbytes(&p, end, &v, &vl)) return bt_err(BT_ECORRUPT, "truncated mutation payload");
            int rc = apply_one(mt, row, rl, type, fam, fl, q, ql, a, b, v, vl, seq++);
            if (rc && rc != BT_EEXIST) return rc; /* EEXIST: replayed twice, harmless */
        }
    }
    if (last) *last = seq - 1;
    return BT_OK;
}

/* ---- validation ------------------------------------------------------------- */

static int validate(const ts_tablet *t, const uint8_t *row, size_t rl, const ts_mutation *m, int n)
{
    if (rl == 0 || rl > TS_MAX_ROW_KEY)
        return bt_err(BT_EINVAL, "row key must be 1..%d bytes, got %zu", TS_MAX_ROW_KEY, rl);
    if (n <= 0 || n > 100000) return bt_err(BT_EINVAL, "a row mutation needs 1..100000 mutations, got %d", n);
    if (!ts_row_in_tablet(t, row, rl))
        return bt_err(BT_ENOTSERVING, "row outside tablet %llu's range", (unsigned long long)t->id);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        const ts_mutation *x = &m[i];
        if (x->type < TS_SET_CELL || x->type > TS_DELETE_ROW)
            return bt_err(BT_EINVAL, "mutation %d: unknown type %d", i, (int)x->type);
        if (x->type == TS_DELETE_ROW) continue;
        if (ts_schema_find(&t->schema, x->family, x->family_len) < 0)
            return bt_err(BT_ENOTFOUND, "mutation %d: unknown column family \"%.*s\"", i,
                          (int)(x->family_len > 64 ? 64 : x->family_len), x->family ? x->family : "");
        if (x->qualifier_len > TS_MAX_QUALIFIER)
            return bt_err(BT_ETOOBIG, "mutation %d: qualifier of %zu bytes (max %d)", i,
                          x->qualifier_len, TS_MAX_QUALIFIER);
        if (x->type == TS_SET_CELL) {
            if (x->timestamp < 0 && x->timestamp != TS_SERVER_TIME)
                return bt_err(BT_EINVAL, "mutation %d: negative timestamp %lld", i, (long long)x->timestamp);
            if (x->timestamp == INT64_MAX)
                return bt_err(BT_EINVAL, "mutation %d: timestamp INT64_MAX is reserved", i);
            if (x->value_len > TS_MAX_VALUE)
                return bt_err(BT_ETOOBIG, "mutation %d: value of %zu bytes (max %u)", i,
                              x->value_len, TS_MAX_VALUE);
            total += x->value_len;
        }
        if (x->type == TS_DELETE_CELLS &&
            (x->ts_from < 0 || (x->ts_to != 0 && x->ts_to <= x->ts_from)))
            return bt_err(BT_EINVAL, "mutation %d: bad time range [%lld, %lld)", i,
                          (long long)x->ts_from, (long long)x->ts_to);
    }
    if (total > (uint64_t)TS_MAX_VALUE + (1u << 20))
        return bt_err(BT_ETOOBIG, "row mutation carries %llu bytes of values (max %u)",
                      (unsigned long long)total, TS_MAX_VALUE);
    return BT_OK;
}

/* ---- making room ------------------------------------------------------------ */

static void wait_ms(ts_tablet *t, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&t->cv, &t->mu, &ts);
}

static int max_group_tables(const ts_tablet *t)
{
    int m = 0;
    for (int g = 0; g < t->schema.n_groups; g++) {
        int c = ts_version_count_group(t->ver, g);
        if (c > m) m = c;
    }
    return m;
}

/* Rotates the active memtable into imm (t->mu held, imm empty). */
static int rotate(ts_tablet *t)
{
    ts_memtable *fresh = ts_memtable_new();
    if (!fresh) return BT_ENOMEM;
    t->imm = t->mem;
    t->mem.mt = fresh;
    t->mem.pending = 0;
    t->mem.max_seq = t->last_seq;
    t->bg_error = 0;
    ts_engine_schedule(t->eng, t);
    return BT_OK;
}

/* Called with t->mu held before assigning sequences.  Blocks (throttles)
 * while compaction lags; fails loudly if background work keeps failing. */
static int make_room(ts_tablet *t)
{
    const ts_engine_options *o = &t->eng->opts;
    bool slowed = false, retried = false;
    for (;;) {
        if (t->closing) return bt_err(BT_ECLOSED, "tablet %llu is closing", (unsigned long long)t->id);
        if (t->frozen)
            return bt_err(BT_ENOTSERVING, "tablet %llu is splitting", (unsigned long long)t->id);
        int tables = max_group_tables(t);
        if (tables >= o->slowdown_sstables && !slowed) {
            /* let compaction catch up a little: one 1 ms pause per write */
            slowed = true;
            t->stats.throttled_writes++;
            ts_engine_schedule(t->eng, t);
            wait_ms(t, 1);
            continue;
        }
        bool full = ts_memtable_bytes(t->mem.mt) >= o->memtable_bytes;
        if (tables < o->stop_sstables && !full) return BT_OK;
        if (full && !t->imm.mt && tables < o->stop_sstables) return rotate(t);
        if (t->bg_error && !retried && !t->bg_queued && !t->bg_running && !t->flush_running) {
            /* Nothing else retries failed background work: do it once per
             * write, so a transient failure (disk full) does not wedge us. */
            retried = true;
            t->bg_error = 0;
            ts_engine_schedule(t->eng, t);
            continue;
        }
        if (t->bg_error)
            return bt_err(t->bg_error, "tablet %llu: writes stalled, background compaction failing: %s",
                          (unsigned long long)t->id, bt_strerror(t->bg_error));
        t->stats.throttled_writes++;
        ts_engine_schedule(t->eng, t);
        wait_ms(t, 100);
    }
}

/* ---- the write path ------------------------------------------------------- */

int ts_tablet_mutate_rows(ts_tablet *t, const ts_row_mutation *rows, int nrows, int *failed)
{
    uint8_t stack[2048];
    int rc = BT_OK;
    if (failed) *failed = -1;
    if (nrows <= 0 || nrows > TS_MAX_BATCH_ROWS)
        return bt_err(BT_EINVAL, "a batch needs 1..%d rows, got %d", TS_MAX_BATCH_ROWS, nrows);
    size_t cap = 0;
    uint64_t nmuts = 0;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < nrows && !rc; i++) {
        rc = validate(t, rows[i].row, rows[i].row_len, rows[i].muts, rows[i].n);
        if (rc && failed) *failed = i;
        cap += payload_size(rows[i].row_len, rows[i].muts, rows[i].n);
        nmuts += (uint64_t)rows[i].n;
    }
    pthread_mutex_unlock(&t->mu);
    if (rc) return rc;

    uint8_t *payload = cap <= sizeof stack ? stack : malloc(cap);
    if (!payload) return BT_ENOMEM;
    size_t plen = 0;
    int64_t now = ts_engine_now(t->eng);
    for (int i = 0; i < nrows; i++)
        plen += encode_payload(payload + plen, rows[i].row, rows[i].row_len, rows[i].muts, rows[i].n, now);

    pthread_mutex_lock(&t->mu);
    rc = make_room(t);
    if (rc) {
        pthread_mutex_unlock(&t->mu);
        if (payload != stack) free(payload);
        return rc;
    }
    uint64_t seq = t->last_seq + 1;
    t->last_seq += nmuts;
    ts_memtable *mt = t->mem.mt;
    t->mem.max_seq = t->last_seq;
    t->mem.pending++;
    pthread_mutex_unlock(&t->mu);

    rc = ts_log_append(t->eng->log, t->id, seq, seq + nmuts - 1, payload, plen);

    pthread_mutex_lock(&t->mu);
    while (t->visible_seq != seq - 1) pthread_cond_wait(&t->cv, &t->mu);
    if (!rc) rc = ts_apply_payload(mt, payload, plen, seq, NULL);
    t->visible_seq = seq + nmuts - 1;
    ts_mem *slot = t->mem.mt == mt ? &t->mem : &t->imm;
    slot->pending--;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (payload != stack) free(payload);
    return rc;
}

int ts_tablet_mutate_row(ts_tablet *t, const uint8_t *row, size_t row_len,
                         const ts_mutation *muts, int n)
{
    ts_row_mutation rm = { row, row_len, muts, n };
    return ts_tablet_mutate_rows(t, &rm, 1, NULL);
}

/* ---- open / create / close ------------------------------------------------------ */

static int esc_bounds(ts_tablet *t)
{
    int rc = ts_buf_put_esc(&t->start_esc, t->start.data, t->start.len);
    if (!rc && t->end.len) rc = ts_buf_put_esc(&t->end_esc, t->end.data, t->end.len);
    return rc;
}

static void tablet_free(ts_tablet *t)
{
    ts_scanner_pool_free(t);
    ts_schema_ref_unref(t->schema_ref);
    if (t->ver) ts_version_unref(t->ver);
    ts_memtable_unref(t->mem.mt);
    ts_memtable_unref(t->imm.mt);
    bt_buf_free(&t->start);
    bt_buf_free(&t->end);
    bt_buf_free(&t->start_esc);
    bt_buf_free(&t->end_esc);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->dir);
    free(t);
}

typedef struct replay_ctx {
    ts_tablet *t;
    uint64_t max_seq;
    uint64_t records;
} replay_ctx;

static int replay_one(void *arg, uint64_t tablet_id, uint64_t seq, const uint8_t *p, size_t n)
{
    replay_ctx *rc = arg;
    uint64_t last;
    (void)tablet_id;
    int r = ts_apply_payload(rc->t->mem.mt, p, n, seq, &last);
    if (r) return r;
    if (last > rc->max_seq) rc->max_seq = last;
    rc->records++;
    return BT_OK;
}

/* Builds the in-memory tablet from a manifest (taking over nothing: m stays the caller's).
 * `reopen`: also replay the log files written since the engine opened the log,
 * which hold what the tablet wrote before an earlier close in this process. */
static int tablet_load(ts_engine *e, const char *dir, const ts_manifest *m, bool reopen, ts_tablet **out)
{
    ts_tablet *t = calloc(1, sizeof *t);
    if (!t) return BT_ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->eng = e;
    t->id = m->tablet_id;
    t->schema = m->schema;
    t->schema_ref = ts_schema_ref_new(&m->schema);
    t->flushed_seq = m->flushed_seq;
    t->last_seq = m->last_seq > m->flushed_seq ? m->last_seq : m->flushed_seq;
    t->next_file = m->next_file ? m->next_file : 1;
    int rc = (t->dir = strdup(dir)) && t->schema_ref ? BT_OK : BT_ENOMEM;
    if (!rc) rc = bt_buf_append(&t->start, m->start_row.data, m->start_row.len);
    if (!rc) rc = bt_buf_append(&t->end, m->end_row.data, m->end_row.len);
    if (!rc) rc = esc_bounds(t);
    if (!rc && !(t->mem.mt = ts_memtable_new())) rc = BT_ENOMEM;
    if (!rc && !(t->ver = ts_version_new(m->n_files))) rc = BT_ENOMEM;
    for (int i = 0; !rc && i < m->n_files; i++) {
        rc = ts_table_open(t, &m->files[i], m->schema.groups[m->files[i].group].in_memory,
                           &t->ver->tables[i]);
        if (!rc) t->ver->n++;
    }
    if (!rc) {
        replay_ctx ctx = { t, t->last_seq, 0 };
        rc = ts_log_replay(e->log, t->id, t->flushed_seq, replay_one, &ctx);
        if (!rc && reopen) rc = ts_log_replay_new(e->log, t->id, t->flushed_seq, replay_one, &ctx);
        if (!rc) {
            t->last_seq = ctx.max_seq;
            if (ctx.records)
                BT_INFO("tablet %llu: replayed %llu log records up to sequence %llu",
                        (unsigned long long)t->id, (unsigned long long)ctx.records,
                        (unsigned long long)ctx.max_seq);
        }
    }
    if (rc) {
        tablet_free(t);
        return rc;
    }
    t->visible_seq = t->last_seq;
    t->mem.max_seq = t->last_seq;
    t->stats.flushed_seq = t->flushed_seq;
    atomic_fetch_add(&e->n_tablets, 1);
    *out = t;
    return BT_OK;
}

/* ---- recovery files (tabletserver/logsplit.h) ------------------------------------ */

typedef struct name_list { char **v; size_t n, cap; int err; } name_list;

static int collect_recovery(void *arg, const char *name)
{
    name_list *nl = arg;
    size_t len = strlen(name);
    if (len < 5 || strcmp(name + len - 4, ".log") != 0) return 0;  /* .tmp and others */
    if (nl->n == nl->cap) {
        size_t cap = nl->cap ? nl->cap * 2 : 8;
        char **v = realloc(nl->v, cap * sizeof *v);
        if (!v) { nl->err = BT_ENOMEM; return 1; }
        nl->v = v;
        nl->cap = cap;
    }
    if (!(nl->v[nl->n] = strdup(name))) { nl->err = BT_ENOMEM; return 1; }
    nl->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void name_list_free(name_list *nl)
{
    for (size_t i = 0; i < nl->n; i++) free(nl->v[i]);
    free(nl->v);
}

typedef struct recover_ctx {
    ts_tablet *t;
    uint64_t max_seq, records, skipped;
} recover_ctx;

static int recover_one(void *arg, uint64_t tablet_id, uint64_t seq, uint64_t last_seq,
                       const uint8_t *p, size_t n)
{
    recover_ctx *c = arg;
    (void)last_seq;
    if (tablet_id != c->t->id || seq <= c->t->flushed_seq) {
        c->skipped++;
        return BT_OK;
    }
    uint64_t last;
    int rc = ts_apply_payload(c->t->mem.mt, p, n, seq, &last);
    if (rc) return rc;
    if (last > c->max_seq) c->max_seq = last;
    c->records++;
    return BT_OK;
}

/* Replays <dir>/recovery/<name>.log (records of this tablet past its flushed
 * sequence), flushes what it replayed, then deletes the files.  Called by
 * ts_tablet_open before anyone else can see t.  On failure the files stay. */
static int recover_from_files(ts_tablet *t)
{
    bt_env *env = t->eng->env;
    char rdir[4096];
    snprintf(rdir, sizeof rdir, "%s/%s", t->dir, TS_RECOVERY_DIR);
    name_list nl = {0};
    int rc = bt_env_list(env, rdir, collect_recovery, &nl);
    if (!rc) rc = nl.err;
    if (rc == BT_ENOTFOUND || (!rc && nl.n == 0)) {
        name_list_free(&nl);
        return BT_OK;
    }
    if (nl.n) qsort(nl.v, nl.n, sizeof *nl.v, cmp_str);
    recover_ctx c = { t, t->last_seq, 0, 0 };
    for (size_t i = 0; !rc && i < nl.n; i++) {
        char path[4096 + 256];
        snprintf(path, sizeof path, "%s/%s", rdir, nl.v[i]);
        rc = ts_log_read_file(env, path, recover_one, &c, NULL);
    }
    if (!rc && c.records) {
        pthread_mutex_lock(&t->mu);
        t->last_seq = c.max_seq;
        t->visible_seq = t->last_seq;
        t->mem.max_seq = t->last_seq;
        pthread_mutex_unlock(&t->mu);
        rc = ts_tablet_flush(t);
    }
    for (size_t i = 0; !rc && i < nl.n; i++) {
        char path[4096 + 256];
        snprintf(path, sizeof path, "%s/%s", rdir, nl.v[i]);
        rc = bt_env_remove(env, path);
        if (rc == BT_ENOTFOUND) rc = BT_OK;
    }
    if (!rc) rc = bt_env_sync_dir(env, rdir);
    if (rc) {
        BT_ERROR("tablet %llu: recovery from %zu file(s) in %s failed: %s (%s); the files stay",
                 (unsigned long long)t->id, nl.n, rdir, bt_errname(rc), bt_errmsg());
    } else {
        BT_INFO("tablet %llu: recovered %llu records up to sequence %llu from %zu file(s) in %s "
                "(%llu already flushed or not ours)%s", (unsigned long long)t->id,
                (unsigned long long)c.records, (unsigned long long)c.max_seq, nl.n, rdir,
                (unsigned long long)c.skipped, c.records ? "; flushed and deleted them" : "; deleted them");
    }
    name_list_free(&nl);
    return rc;
}

int ts_tablet_open(ts_engine *e, const char *dir, ts_tablet **out)
{
    ts_manifest m;
    ts_tablet *t = NULL;
    int rc = ts_manifest_read(e->env, dir, &m);
    if (rc) return rc;
    rc = tablet_load(e, dir, &m, true, &t);
    ts_manifest_free(&m);
    if (rc) return rc;
    rc = recover_from_files(t);
    if (rc) {
        char why[512];
        snprintf(why, sizeof why, "%s", bt_errmsg());
        ts_tablet_close(t);
        return bt_err(rc, "%s", why);
    }
    *out = t;
    return BT_OK;
}

void ts_tablet_fence(ts_tablet *t)
{
    pthread_mutex_lock(&t->mu);
    t->fenced = true;
    pthread_mutex_unlock(&t->mu);
}

int ts_tablet_create(ts_engine *e, const char *dir, uint64_t tablet_id, const ts_schema *schema,
                     const uint8_t *start, size_t start_len, const uint8_t *end, size_t end_len,
                     ts_tablet **out)
{
    int rc = ts_schema_validate(schema);
    if (rc) return rc;
    if (end_len && sst_key_cmp(start, start_len, end, end_len) >= 0)
        return bt_err(BT_EINVAL, "tablet range is empty: start >= end");
    if (start_len > TS_MAX_ROW_KEY || end_len > TS_MAX_ROW_KEY)
        return bt_err(BT_EINVAL, "tablet bounds longer than %d bytes", TS_MAX_ROW_KEY);
    char path[4096];
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    if (bt_env_exists(e->env, path)) return bt_err(BT_EEXIST, "%s already exists", path);
    rc = bt_env_mkdir(e->env, dir);
    if (rc) return rc;
    ts_manifest m;
    memset(&m, 0, sizeof m);
    m.tablet_id = tablet_id;
    m.schema = *schema;
    m.next_file = 1;
    rc = bt_buf_append(&m.start_row, start, start_len);
    if (!rc) rc = bt_buf_append(&m.end_row, end, end_len);
    if (!rc) rc = ts_manifest_write(e->env, dir, &m);
    if (!rc) rc = tablet_load(e, dir, &m, false, out);
    ts_manifest_free(&m);
    return rc;
}

static void dequeue(ts_tablet *t)
{
    ts_engine *e = t->eng;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->qlen; i++) {
        if (e->queue[i] == t) {
            memmove(e->queue + i, e->queue + i + 1, (size_t)(e->qlen - i - 1) * sizeof *e->queue);
            e->qlen--;
            t->bg_queued = false;
            break;
        }
    }
    pthread_mutex_unlock(&e->mu);
}

int ts_tablet_close(ts_tablet *t)
{
    if (!t) return BT_OK;
    pthread_mutex_lock(&t->mu);
    t->closing = true;
    while (t->visible_seq != t->last_seq) pthread_cond_wait(&t->cv, &t->mu);
    dequeue(t);
    while (t->bg_queued || t->bg_running || t->flush_running) pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    atomic_fetch_sub(&t->eng->n_tablets, 1);
    tablet_free(t);
    return BT_OK;
}

uint64_t ts_tablet_id(const ts_tablet *t) { return t->id; }

void ts_tablet_range(const ts_tablet *t, const uint8_t **start, size_t *start_len,
                     const uint8_t **end, size_t *end_len)
{
    *start = t->start.data;
    *start_len = t->start.len;
    *end = t->end.data;
    *end_len = t->end.len;
}
const ts_schema *ts_tablet_schema(const ts_tablet *t) { return &t->schema; }

int ts_tablet_set_schema(ts_tablet *t, const ts_schema *s)
{
    int rc = ts_schema_validate(s);
    if (rc) return rc;
    pthread_mutex_lock(&t->mu);
    for (int i = 0; i < t->ver->n; i++) {
        if (t->ver->tables[i]->meta.group >= s->n_groups) {
            pthread_mutex_unlock(&t->mu);
            return bt_err(BT_EINVAL, "new schema drops locality group %d that still has SSTables",
                          t->ver->tables[i]->meta.group);
        }
    }
    ts_schema_ref *snap = ts_schema_ref_new(s);
    if (!snap) {
        pthread_mutex_unlock(&t->mu);
        return BT_ENOMEM;
    }
    ts_schema old = t->schema;
    t->schema = *s;
    rc = ts_tablet_save_manifest(t, t->ver, t->flushed_seq);
    if (rc) {
        t->schema = old;
        ts_schema_ref_unref(snap);
    } else {
        ts_schema_ref_unref(t->schema_ref);
        t->schema_ref = snap;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void ts_tablet_get_stats(ts_tablet *t, ts_tablet_stats *s)
{
    pthread_mutex_lock(&t->mu);
    *s = t->stats;
    s->memtable_bytes = ts_memtable_bytes(t->mem.mt) + (t->imm.mt ? ts_memtable_bytes(t->imm.mt) : 0);
    s->n_sstables = (uint32_t)t->ver->n;
    s->sstable_bytes = 0;
    for (int i = 0; i < t->ver->n; i++) s->sstable_bytes += t->ver->tables[i]->meta.size;
    s->flushed_seq = t->flushed_seq;
    s->last_seq = t->last_seq;
    s->compaction_pending = t->bg_queued || t->bg_running;
    pthread_mutex_unlock(&t->mu);
}

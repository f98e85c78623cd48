/* tabletserver/scan.c: reading a tablet.
 *
 * A read merges the active memtable, the immutable one and the SSTables of
 * the locality groups it needs into one stream of internal keys (ikey.h),
 * then walks it row by row:
 *   1. entries newer than the read's snapshot sequence are skipped, so a
 *      row mutation is seen whole or not at all;
 *   2. the masker (ts_masker_step) applies deletion markers, same-timestamp
 *      overwrites and the families' GC policies;
 *   3. the read filters (columns, column range, timestamps, versions, value
 *      range, strip value, cells per row) pick what is returned.
 * Point reads skip SSTables whose key range or bloom filter rules the row out.
 */
#include "tabletserver/tablet_internal.h"
#include "common/status.h"

#include <stdlib.h>
#include <string.h>

/* ---- masker ------------------------------------------------------------------ */

void ts_masker_row(ts_masker *mk)
{
    mk->m.row_del_seq = 0;
    mk->m.fam = NULL;
    mk->m.fam_len = 0;
    mk->m.qual = NULL;
    mk->m.qual_len = 0;
}

void ts_masker_free(ts_masker *mk)
{
    free(mk->m.dels);
    mk->m.dels = NULL;
    mk->m.n_dels = mk->m.cap_dels = 0;
    bt_buf_free(&mk->fam_copy);
    bt_buf_free(&mk->qual_copy);
}

static bool span_eq(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    return an == bn && memcmp(a, b, an) == 0;
}

static void enter_family(ts_masker *mk, const ts_ikey *k)
{
    ts_mask *m = &mk->m;
    m->fam_del_seq = 0;
    m->qual = NULL;
    m->qual_len = 0;
    /* a new row usually starts with the family the last one had: keep the
     * copy and its schema index */
    if (mk->fam_copy.data && span_eq(mk->fam_copy.data, mk->fam_copy.len, k->family, k->family_len)) {
        m->fam = mk->fam_copy.data;
        m->fam_len = k->family_len;
        return;
    }
    bt_buf_clear(&mk->fam_copy);
    if (bt_buf_append(&mk->fam_copy, k->family, k->family_len)) {
        m->fam = k->family; /* on ENOMEM fall back to the key's own span */
        bt_buf_free(&mk->fam_copy);
    } else {
        m->fam = mk->fam_copy.data;
    }
    m->fam_len = k->family_len;
    /* family names have no zero bytes: the escaped span is name + 00 01 */
    m->fam_index = ts_schema_find(mk->schema, (const char *)k->family, k->family_len - 2);
}

static void enter_column(ts_masker *mk, const ts_ikey *k)
{
    ts_mask *m = &mk->m;
    bt_buf_clear(&mk->qual_copy);
    m->qual = bt_buf_append(&mk->qual_copy, k->qual, k->qual_len) ? k->qual : mk->qual_copy.data;
    m->qual_len = k->qual_len;
    m->n_dels = 0;
    m->have_last_ts = false;
    m->versions = 0;
    mk->new_column = true;
}

/* Records a column delete; a column may carry any number of them. */
static int add_delete(ts_mask *m, int64_t from, int64_t to, uint64_t seq)
{
    if (m->n_dels == m->cap_dels) {
        int cap = m->cap_dels ? m->cap_dels * 2 : 8;
        struct ts_col_del *d = realloc(m->dels, (size_t)cap * sizeof *d);
        if (!d) return TS_MASK_NOMEM;
        m->dels = d;
        m->cap_dels = cap;
    }
    m->dels[m->n_dels++] = (struct ts_col_del){ from, to, seq };
    return TS_MASK_MARKER;
}

static bool gc_expired(const ts_masker *mk, int64_t ts)
{
    const ts_family *f = &mk->schema->families[mk->m.fam_index];
    bool hv = f->max_versions > 0, ha = f->max_age_us > 0;
    bool by_v = hv && mk->m.versions > f->max_versions;
    bool by_a = ha && ts < mk->now - f->max_age_us;
    if (hv && ha && f->gc_intersection) return by_v && by_a;
    return by_v || by_a;
}

int ts_masker_step(ts_masker *mk, const ts_ikey *k, const uint8_t *val, size_t vn)
{
    ts_mask *m = &mk->m;
    mk->new_column = false;
    if (k->type == TS_KT_DELETE_ROW) {
        if (k->seq > m->row_del_seq) m->row_del_seq = k->seq;
        return TS_MASK_MARKER;
    }
    if (!m->fam || !span_eq(m->fam, m->fam_len, k->family, k->family_len)) enter_family(mk, k);
    if (k->type == TS_KT_DELETE_FAMILY) {
        if (k->seq > m->fam_del_seq) m->fam_del_seq = k->seq;
        return TS_MASK_MARKER;
    }
    if (!m->qual || !span_eq(m->qual, m->qual_len, k->qual, k->qual_len)) enter_column(mk, k);
    if (k->type == TS_KT_DELETE_COLUMN) {
        int64_t from = 0, to = INT64_MAX;
        if (vn >= 16) {
            from = (int64_t)bt_get_fixed64(val);
            to = (int64_t)bt_get_fixed64(val + 8);
        }
        return add_delete(m, from, to, k->seq);
    }
    if (k->type == TS_KT_DELETE_CELL) {
        return add_delete(m, k->ts, k->ts == INT64_MAX ? INT64_MAX : k->ts + 1, k->seq);
    }
    /* a put: hidden by a newer marker, or by a newer put at the same timestamp */
    bool dead = k->seq < m->row_del_seq || k->seq < m->fam_del_seq;
    for (int i = 0; !dead && i < m->n_dels; i++)
        dead = k->ts >= m->dels[i].from && k->ts < m->dels[i].to && k->seq < m->dels[i].seq;
    if (m->have_last_ts && m->last_ts == k->ts) dead = true;
    m->have_last_ts = true;
    m->last_ts = k->ts;
    if (dead || m->fam_index < 0) return TS_MASK_DEAD;
    m->versions++;
    if (mk->apply_gc && gc_expired(mk, k->ts)) return TS_MASK_DEAD;
    return TS_MASK_LIVE;
}

/* ---- range-restricted iterator ---------------------------------------------- */

typedef struct range_iter {
    sst_iter base;
    sst_iter *child;
    bt_buf lo, hi;
} range_iter;

static bool ri_valid(sst_iter *it)
{
    range_iter *r = (range_iter *)it;
    if (!sst_iter_valid(r->child)) return false;
    if (r->hi.len == 0) return true;
    size_t n;
    const uint8_t *k = sst_iter_key(r->child, &n);
    return sst_key_cmp(k, n, r->hi.data, r->hi.len) < 0;
}

static void ri_seek(sst_iter *it, const uint8_t *t, size_t n)
{
    range_iter *r = (range_iter *)it;
    if (r->lo.len && sst_key_cmp(t, n, r->lo.data, r->lo.len) < 0)
        sst_iter_seek(r->child, r->lo.data, r->lo.len);
    else
        sst_iter_seek(r->child, t, n);
}

static void ri_seek_first(sst_iter *it)
{
    range_iter *r = (range_iter *)it;
    if (r->lo.len) sst_iter_seek(r->child, r->lo.data, r->lo.len);
    else sst_iter_seek_first(r->child);
}

static void ri_next(sst_iter *it) { sst_iter_next(((range_iter *)it)->child); }
static const uint8_t *ri_key(sst_iter *it, size_t *n) { return sst_iter_key(((range_iter *)it)->child, n); }
static const uint8_t *ri_value(sst_iter *it, size_t *n) { return sst_iter_value(((range_iter *)it)->child, n); }
static int ri_status(sst_iter *it) { return sst_iter_status(((range_iter *)it)->child); }

static void ri_destroy(sst_iter *it)
{
    range_iter *r = (range_iter *)it;
    sst_iter_destroy(r->child);
    bt_buf_free(&r->lo);
    bt_buf_free(&r->hi);
    free(r);
}

static const struct sst_iter_ops range_ops = {
    ri_valid, ri_seek_first, ri_seek, ri_next, ri_key, ri_value, ri_status, ri_destroy,
};

sst_iter *ts_range_iter_new(sst_iter *child, const uint8_t *lo, size_t lo_n,
                            const uint8_t *hi, size_t hi_n)
{
    if (!child) return NULL;
    if (lo_n == 0 && hi_n == 0) return child;
    range_iter *r = calloc(1, sizeof *r);
    if (!r || bt_buf_append(&r->lo, lo, lo_n) || bt_buf_append(&r->hi, hi, hi_n)) {
        if (r) { bt_buf_free(&r->lo); free(r); }
        sst_iter_destroy(child);
        return NULL;
    }
    r->base.ops = &range_ops;
    r->child = child;
    return &r->base;
}

/* ---- bulk-loaded files: the sequence given at attach ------------------------
 * A bulk-loaded SSTable's keys carry the placeholder tag TS_BULK_TAG (all
 * 0xFF: the largest tag, so a seek lands on a key whose (row, column,
 * timestamp) equals the target's whatever the target's tag); this iterator
 * shows them with the tag of (global_seq, PUT), the sequence the tablet gave
 * the file when it attached it (docs/formats.md, "Tablet manifest"). */

typedef struct seq_iter {
    sst_iter base;
    sst_iter *child;
    uint8_t tag[8];             /* encoded (global_seq, PUT) */
    bt_buf key;                 /* the current key with its tag replaced */
    int status;
} seq_iter;

static bool si_valid(sst_iter *it)
{
    seq_iter *q = (seq_iter *)it;
    return q->status == BT_OK && sst_iter_valid(q->child);
}

/* Copies the child's current key with the real tag (if any). */
static void si_load(seq_iter *q)
{
    if (!sst_iter_valid(q->child)) return;
    size_t n;
    const uint8_t *k = sst_iter_key(q->child, &n);
    bt_buf_clear(&q->key);
    if (n < TS_IKEY_SUFFIX || bt_buf_append(&q->key, k, n)) {
        q->status = n < TS_IKEY_SUFFIX ? BT_ECORRUPT : BT_ENOMEM;
        return;
    }
    memcpy(q->key.data + n - 8, q->tag, 8);
}

static void si_seek_first(sst_iter *it)
{
    seq_iter *q = (seq_iter *)it;
    sst_iter_seek_first(q->child);
    si_load(q);
}

static void si_seek(sst_iter *it, const uint8_t *t, size_t n)
{
    seq_iter *q = (seq_iter *)it;
    sst_iter_seek(q->child, t, n);
    si_load(q);
    /* The child compared the placeholder (largest) tag: a key of the same
     * (row, column, timestamp) as t was kept even if its real tag sorts
     * before t's. */
    if (si_valid(it) && q->key.len == n && n >= 8 && !memcmp(q->key.data, t, n - 8) &&
        memcmp(q->tag, t + n - 8, 8) < 0) {
        sst_iter_next(q->child);
        si_load(q);
    }
}

static void si_next(sst_iter *it)
{
    seq_iter *q = (seq_iter *)it;
    sst_iter_next(q->child);
    si_load(q);
}

static const uint8_t *si_key(sst_iter *it, size_t *n)
{
    seq_iter *q = (seq_iter *)it;
    *n = q->key.len;
    return q->key.data;
}

static const uint8_t *si_value(sst_iter *it, size_t *n) { return sst_iter_value(((seq_iter *)it)->child, n); }

static int si_status(sst_iter *it)
{
    seq_iter *q = (seq_iter *)it;
    return q->status ? q->status : sst_iter_status(q->child);
}

static void si_destroy(sst_iter *it)
{
    seq_iter *q = (seq_iter *)it;
    sst_iter_destroy(q->child);
    bt_buf_free(&q->key);
    free(q);
}

static const struct sst_iter_ops seq_ops = {
    si_valid, si_seek_first, si_seek, si_next, si_key, si_value, si_status, si_destroy,
};

sst_iter *ts_table_iter(ts_table *tb, sst_iter *raw)
{
    if (!raw) return NULL;
    sst_iter *it = raw;
    if (tb->meta.global_seq) {
        seq_iter *q = calloc(1, sizeof *q);
        if (!q) {
            sst_iter_destroy(raw);
            return NULL;
        }
        q->base.ops = &seq_ops;
        q->child = raw;
        bt_put_fixed64_be(q->tag, ~((tb->meta.global_seq << 8) | TS_KT_PUT));
        it = &q->base;
    }
    return ts_range_iter_new(it, tb->meta.lo.data, tb->meta.lo.len, tb->meta.hi.data, tb->meta.hi.len);
}

/* ---- scanner ------------------------------------------------------------------ */

typedef struct cell_off {
    size_t fam, fam_len, qual, qual_len, val, val_len;
    int64_t ts;
} cell_off;

typedef struct col_filter {
    bt_buf fam;         /* ESC(family) */
    bt_buf qual;        /* ESC(qualifier), empty = whole family */
} col_filter;

struct ts_scanner {
    ts_tablet *t;
    sst_iter *it;
    ts_masker mk;
    ts_schema_ref *sref;    /* schema snapshot (referenced) */
    const ts_schema *sc;    /* &sref->s */
    ts_read_options o;
    uint64_t snap;
    bt_buf seek_key;        /* where the scan starts */
    bt_buf end_esc;         /* stop at rows >= this; empty = none */
    bt_buf prefix_esc;      /* ESC(prefix) without terminator */
    col_filter *cols;
    int n_cols;
    bt_buf range_fam, qfrom, qto;
    bt_buf cur_row;         /* escaped row being assembled */
    bt_buf row_key;         /* decoded row returned */
    bt_buf data;            /* bytes of returned cells */
    cell_off *offs;
    size_t n_offs, cap_offs;
    ts_cell *cells;
    size_t cap_cells;
    uint64_t rows;
    bool eof;
    int status;
    ts_memtable *mts[2];
    ts_version *ver;
    uint64_t row_hash;      /* point reads: ts_row_hash of the raw row */
};

static bool prefix_of(const bt_buf *p, const uint8_t *s, size_t n)
{
    return p->len <= n && memcmp(p->data, s, p->len) == 0;
}

static bool column_wanted(const ts_scanner *s, const ts_ikey *k)
{
    if (s->n_cols > 0) {
        bool hit = false;
        for (int i = 0; i < s->n_cols && !hit; i++) {
            const col_filter *c = &s->cols[i];
            hit = span_eq(c->fam.data, c->fam.len, k->family, k->family_len) &&
                  (c->qual.len == 0 || span_eq(c->qual.data, c->qual.len, k->qual, k->qual_len));
        }
        if (!hit) return false;
    }
    if (s->range_fam.len) {
        if (!span_eq(s->range_fam.data, s->range_fam.len, k->family, k->family_len)) return false;
        if (s->qfrom.len && sst_key_cmp(k->qual, k->qual_len, s->qfrom.data, s->qfrom.len) < 0)
            return false;
        if (s->qto.len && sst_key_cmp(k->qual, k->qual_len, s->qto.data, s->qto.len) >= 0)
            return false;
    }
    return true;
}

static bool value_wanted(const ts_read_options *o, const uint8_t *v, size_t vn)
{
    if (!o->has_value_range) return true;
    if (sst_key_cmp(v, vn, o->value_from, o->value_from_len) < 0) return false;
    return o->value_to_len == 0 || sst_key_cmp(v, vn, o->value_to, o->value_to_len) < 0;
}


static int add_cell(ts_scanner *s, const ts_ikey *k, const uint8_t *v, size_t vn)
{
    if (s->n_offs == s->cap_offs) {
        size_t cap = s->cap_offs ? s->cap_offs * 2 : 16;
        cell_off *o = realloc(s->offs, cap * sizeof *o);
        if (!o) return BT_ENOMEM;
        s->offs = o;
        s->cap_offs = cap;
    }
    if (s->o.strip_value) vn = 0;
    if (bt_buf_reserve(&s->data, k->family_len + k->qual_len + vn)) return BT_ENOMEM;
    cell_off *c = &s->offs[s->n_offs++];
    c->fam = s->data.len;
    c->fam_len = k->family_len - 2;
    memcpy(s->data.data + s->data.len, k->family, c->fam_len);
    s->data.len += c->fam_len;
    c->qual = s->data.len;
    c->qual_len = ts_unescape(k->qual, k->qual_len, s->data.data + s->data.len);
    s->data.len += c->qual_len;
    c->val = s->data.len;
    c->val_len = vn;
    if (vn) memcpy(s->data.data + s->data.len, v, vn);
    s->data.len += vn;
    c->ts = k->ts;
    return BT_OK;
}

static int finish_row(ts_scanner *s, ts_row *row)
{
    if (s->cap_cells < s->n_offs) {
        ts_cell *c = realloc(s->cells, s->n_offs * sizeof *c);
        if (!c) return BT_ENOMEM;
        s->cells = c;
        s->cap_cells = s->n_offs;
    }
    for (size_t i = 0; i < s->n_offs; i++) {
        const cell_off *o = &s->offs[i];
        ts_cell *c = &s->cells[i];
        c->family = (const char *)s->data.data + o->fam;
        c->family_len = o->fam_len;
        c->qualifier = s->data.data + o->qual;
        c->qualifier_len = o->qual_len;
        c->value = s->data.data + o->val;
        c->value_len = o->val_len;
        c->timestamp = o->ts;
    }
    bt_buf_clear(&s->row_key);
    if (bt_buf_reserve(&s->row_key, s->cur_row.len)) return BT_ENOMEM;
    s->row_key.len = ts_unescape(s->cur_row.data, s->cur_row.len, s->row_key.data);
    row->key = s->row_key.data;
    row->key_len = s->row_key.len;
    row->cells = s->cells;
    row->n_cells = s->n_offs;
    return BT_OK;
}

/* Walks the entries of the row at the iterator; fills s->offs. */
static int assemble_row(ts_scanner *s)
{
    ts_masker_row(&s->mk);
    s->n_offs = 0;
    bt_buf_clear(&s->data);
    uint32_t col_versions = 0;
    const ts_read_options *o = &s->o;
    while (sst_iter_valid(s->it)) {
        size_t kn, vn;
        const uint8_t *key = sst_iter_key(s->it, &kn);
        if (kn < s->cur_row.len || memcmp(key, s->cur_row.data, s->cur_row.len) != 0) break;
        ts_ikey k;
        if (!ts_ikey_parse_in_row(key, kn, s->cur_row.len, &k))
            return bt_err(BT_ECORRUPT, "tablet %llu: malformed internal key in row",
                          (unsigned long long)s->t->id);
        if (k.seq > s->snap) { sst_iter_next(s->it); continue; }
        const uint8_t *val = sst_iter_value(s->it, &vn);
        int r = ts_masker_step(&s->mk, &k, val, vn);
        if (r == TS_MASK_NOMEM) return bt_err(BT_ENOMEM, "tablet %llu: deletion markers",
                                               (unsigned long long)s->t->id);
        if (s->mk.new_column) col_versions = 0;
        if (r == TS_MASK_LIVE && column_wanted(s, &k) &&
            k.ts >= o->ts_from && (o->ts_to == 0 || k.ts < o->ts_to) &&
            (o->versions == 0 || col_versions < o->versions)) {
            col_versions++;
            if (value_wanted(o, val, vn) &&
                (o->cells_per_row == 0 || s->n_offs < o->cells_per_row)) {
                int rc = add_cell(s, &k, val, vn);
                if (rc) return rc;
            }
        }
        sst_iter_next(s->it);
    }
    /* a valid iterator has no error (iter.h); ask only when it stopped */
    return sst_iter_valid(s->it) ? BT_OK : sst_iter_status(s->it);
}

int ts_scanner_next(ts_scanner *s, ts_row *row)
{
    while (!s->eof) {
        if (s->o.row_limit && s->rows >= s->o.row_limit) break;
        if (!sst_iter_valid(s->it)) {
            s->status = sst_iter_status(s->it);
            break;
        }
        size_t kn;
        const uint8_t *key = sst_iter_key(s->it, &kn);
        size_t rl = ts_ikey_row_prefix(key, kn);
        if (rl == 0) {
            s->status = bt_err(BT_ECORRUPT, "tablet %llu: malformed internal key",
                               (unsigned long long)s->t->id);
            break;
        }
        if (s->end_esc.len && sst_key_cmp(key, rl, s->end_esc.data, s->end_esc.len) >= 0) break;
        if (s->prefix_esc.len && !prefix_of(&s->prefix_esc, key, rl)) break;
        bt_buf_clear(&s->cur_row);
        if (bt_buf_append(&s->cur_row, key, rl)) { s->status = BT_ENOMEM; break; }
        int rc = assemble_row(s);
        if (rc) { s->status = rc; break; }
        if (s->n_offs > 0) {
            rc = finish_row(s, row);
            if (rc) { s->status = rc; break; }
            s->rows++;
            return BT_OK;
        }
    }
    s->eof = true;
    return s->status ? s->status : BT_ENOTFOUND;
}

/* Drops what a scan holds of the tablet: iterator, memtables, version, schema. */
static void release_snapshot(ts_scanner *s)
{
    sst_iter_destroy(s->it);
    s->it = NULL;
    ts_memtable_unref(s->mts[0]);
    ts_memtable_unref(s->mts[1]);
    s->mts[0] = s->mts[1] = NULL;
    if (s->ver) ts_version_unref(s->ver);
    s->ver = NULL;
    ts_schema_ref_unref(s->sref);
    s->sref = NULL;
    for (int i = 0; i < s->n_cols; i++) {
        bt_buf_free(&s->cols[i].fam);
        bt_buf_free(&s->cols[i].qual);
    }
    free(s->cols);
    s->cols = NULL;
    s->n_cols = 0;
}

static void free_scanner(ts_scanner *s)
{
    release_snapshot(s);
    ts_masker_free(&s->mk);
    bt_buf *bufs[] = { &s->seek_key, &s->end_esc, &s->prefix_esc, &s->range_fam, &s->qfrom,
                       &s->qto, &s->cur_row, &s->row_key, &s->data };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) bt_buf_free(bufs[i]);
    free(s->offs);
    free(s->cells);
    free(s);
}

/* A scanner from the tablet's pool (buffers keep their capacity) or a new one. */
static ts_scanner *get_scanner(ts_tablet *t)
{
    ts_scanner *s = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->pool_n > 0) s = t->pool[--t->pool_n];
    pthread_mutex_unlock(&t->mu);
    if (!s) return calloc(1, sizeof(ts_scanner));
    bt_buf *bufs[] = { &s->seek_key, &s->end_esc, &s->prefix_esc, &s->range_fam, &s->qfrom,
                       &s->qto, &s->cur_row, &s->row_key, &s->data };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) bt_buf_clear(bufs[i]);
    s->n_offs = 0;
    s->rows = 0;
    s->eof = false;
    s->status = BT_OK;
    bt_buf_clear(&s->mk.fam_copy);   /* its schema index belonged to the last scan */
    ts_masker_row(&s->mk);
    return s;
}

void ts_scanner_close(ts_scanner *s)
{
    if (!s) return;
    release_snapshot(s);
    ts_tablet *t = s->t;
    pthread_mutex_lock(&t->mu);
    if (t->pool_n < TS_SCANNER_POOL && !t->closing) {
        t->pool[t->pool_n++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&t->mu);
    if (s) free_scanner(s);
}

void ts_scanner_pool_free(ts_tablet *t)
{
    for (int i = 0; i < t->pool_n; i++) free_scanner(t->pool[i]);
    t->pool_n = 0;
}

/* ---- building a scan ------------------------------------------------------------ */

static int setup_filters(ts_scanner *s, const ts_read_options *o)
{
    int rc = BT_OK;
    if (o->n_columns < 0) return bt_err(BT_EINVAL, "negative column count");
    if (o->n_columns > 0) {
        s->cols = calloc((size_t)o->n_columns, sizeof *s->cols);
        if (!s->cols) return BT_ENOMEM;
        s->n_cols = o->n_columns;
        for (int i = 0; !rc && i < o->n_columns; i++) {
            const ts_column_ref *c = &o->columns[i];
            if (ts_schema_find(s->sc, c->family, c->family_len) < 0)
                return bt_err(BT_ENOTFOUND, "unknown column family \"%.*s\"",
                              (int)c->family_len, c->family);
            rc = ts_buf_put_esc(&s->cols[i].fam, (const uint8_t *)c->family, c->family_len);
            if (!rc && c->qualifier) rc = ts_buf_put_esc(&s->cols[i].qual, c->qualifier, c->qualifier_len);
        }
    }
    if (!rc && o->range_family_len) {
        if (ts_schema_find(s->sc, o->range_family, o->range_family_len) < 0)
            return bt_err(BT_ENOTFOUND, "unknown column family \"%.*s\"",
                          (int)o->range_family_len, o->range_family);
        rc = ts_buf_put_esc(&s->range_fam, (const uint8_t *)o->range_family, o->range_family_len);
        if (!rc && o->qual_from_len) rc = ts_buf_put_esc(&s->qfrom, o->qual_from, o->qual_from_len);
        if (!rc && o->qual_to_len) rc = ts_buf_put_esc(&s->qto, o->qual_to, o->qual_to_len);
    }
    return rc;
}

/* Which locality groups the read needs (bitmask). */
static uint32_t groups_needed(const ts_scanner *s, const ts_read_options *o)
{
    if (o->n_columns == 0 && o->range_family_len == 0) return UINT32_MAX;
    uint32_t mask = 0;
    for (int i = 0; i < o->n_columns; i++)
        mask |= 1u << s->sc->families[ts_schema_find(s->sc, o->columns[i].family,
                                                        o->columns[i].family_len)].group;
    if (o->range_family_len)
        mask |= 1u << s->sc->families[ts_schema_find(s->sc, o->range_family,
                                                        o->range_family_len)].group;
    return mask;
}

/* Bytewise max of two keys into dst. */
static int set_max(bt_buf *dst, const bt_buf *a)
{
    if (sst_key_cmp(a->data, a->len, dst->data, dst->len) <= 0) return BT_OK;
    bt_buf_clear(dst);
    return bt_buf_append(dst, a->data, a->len);
}

static int setup_range(ts_scanner *s, const ts_read_options *o)
{
    ts_tablet *t = s->t;
    int rc = bt_buf_append(&s->seek_key, t->start_esc.data, t->start_esc.len);
    bt_buf tmp = {0};
    if (!rc && o->start_len) {
        rc = ts_buf_put_esc(&tmp, o->start_row, o->start_len);
        if (!rc) rc = set_max(&s->seek_key, &tmp);
    }
    if (!rc && o->prefix_len) {
        bt_buf_clear(&tmp);
        rc = ts_buf_put_esc(&tmp, o->prefix, o->prefix_len);
        if (!rc) {
            tmp.len -= 2; /* drop the terminator: a prefix of every matching row */
            rc = bt_buf_append(&s->prefix_esc, tmp.data, tmp.len);
            if (!rc) rc = set_max(&s->seek_key, &tmp);
        }
    }
    if (!rc) rc = bt_buf_append(&s->end_esc, t->end_esc.data, t->end_esc.len);
    if (!rc && o->end_len) {
        bt_buf_clear(&tmp);
        rc = ts_buf_put_esc(&tmp, o->end_row, o->end_len);
        if (!rc && (s->end_esc.len == 0 || sst_key_cmp(tmp.data, tmp.len, s->end_esc.data, s->end_esc.len) < 0)) {
            bt_buf_clear(&s->end_esc);
            rc = bt_buf_append(&s->end_esc, tmp.data, tmp.len);
        }
    }
    bt_buf_free(&tmp);
    return rc;
}

/* May table tb hold keys of the row whose escaped form is row_esc? */
static bool table_may_hold_row(const ts_table *tb, const bt_buf *row_esc, const ts_schema *sc)
{
    const sst_props *p = sst_reader_props(tb->reader);
    if (p->num_entries == 0) return false;
    size_t sl = ts_ikey_row_prefix(p->smallest, p->smallest_len);
    size_t ll = ts_ikey_row_prefix(p->largest, p->largest_len);
    if (sl && sst_key_cmp(row_esc->data, row_esc->len, p->smallest, sl) < 0) return false;
    if (ll && sst_key_cmp(row_esc->data, row_esc->len, p->largest, ll) > 0) return false;
    if (sc->groups[tb->meta.group].bloom == TS_BLOOM_ROW)
        return sst_reader_may_contain(tb->reader, row_esc->data, row_esc->len);
    return true;
}

static int build_iter(ts_scanner *s, uint32_t groups, const bt_buf *point_row)
{
    ts_version *v = s->ver;
    sst_iter **kids = calloc((size_t)v->n + 2, sizeof *kids);
    if (!kids) return BT_ENOMEM;
    int n = 0, rc = BT_OK;
    for (int i = 0; i < 2; i++) {
        if (!s->mts[i] || ts_memtable_count(s->mts[i]) == 0) continue;
        if (point_row && !ts_memtable_may_contain_hash(s->mts[i], s->row_hash)) continue;
        if (!(kids[n++] = ts_memtable_iter(s->mts[i]))) rc = BT_ENOMEM;
    }
    for (int i = 0; !rc && i < v->n; i++) {
        ts_table *tb = v->tables[i];
        if (!(groups & (1u << tb->meta.group))) continue;
        if (point_row && !table_may_hold_row(tb, point_row, s->sc)) continue;
        /* point reads fill the block cache; range scans use it but do not
         * flush it with blocks they read once */
        sst_iter *it = ts_table_iter(tb, s->o.no_io ? sst_reader_iter_no_io(tb->reader)
                                                    : sst_reader_iter(tb->reader, point_row != NULL));
        if (!it) rc = BT_ENOMEM;
        else kids[n++] = it;
    }
    if (rc) {
        for (int i = 0; i < n; i++) sst_iter_destroy(kids[i]);
        free(kids);
        return rc;
    }
    s->it = n == 1 ? kids[0] : sst_iter_new_merging(kids, n);
    free(kids);
    if (!s->it) return BT_ENOMEM;
    sst_iter_seek(s->it, s->seek_key.data, s->seek_key.len);
    return BT_OK;
}

static int scan_open(ts_tablet *t, const ts_read_options *opts, const bt_buf *point_row,
                     uint64_t row_hash, ts_scanner **out)
{
    static const ts_read_options none;
    ts_scanner *s = get_scanner(t);
    if (!s) return BT_ENOMEM;
    s->t = t;
    s->row_hash = row_hash;
    s->o = opts ? *opts : none;
    pthread_mutex_lock(&t->mu);
    s->sref = t->schema_ref;
    atomic_fetch_add(&s->sref->refs, 1);
    s->sc = &s->sref->s;
    s->snap = t->visible_seq;
    s->mts[0] = t->mem.mt;
    ts_memtable_ref(s->mts[0]);
    s->mts[1] = t->imm.mt;
    if (s->mts[1]) ts_memtable_ref(s->mts[1]);
    s->ver = t->ver;
    ts_version_ref(s->ver);
    pthread_mutex_unlock(&t->mu);

    s->mk.schema = s->sc;
    s->mk.now = ts_engine_now(t->eng);
    s->mk.apply_gc = true;
    int rc = setup_filters(s, &s->o);
    if (!rc) rc = setup_range(s, &s->o);
    if (!rc && point_row) {
        bt_buf_clear(&s->seek_key);
        rc = bt_buf_append(&s->seek_key, point_row->data, point_row->len);
        bt_buf_clear(&s->end_esc);
        /* ESC(row) is prefix-free: exactly the keys of this row start with it */
        bt_buf_clear(&s->prefix_esc);
        if (!rc) rc = bt_buf_append(&s->prefix_esc, point_row->data, point_row->len);
        s->o.row_limit = 1;
    }
    if (!rc) rc = build_iter(s, groups_needed(s, &s->o), point_row);
    if (rc) {
        ts_scanner_close(s);
        return rc;
    }
    *out = s;
    return BT_OK;
}

int ts_tablet_scan(ts_tablet *t, const ts_read_options *opts, ts_scanner **out)
{
    if (opts && opts->ts_to != 0 && opts->ts_to <= opts->ts_from)
        return bt_err(BT_EINVAL, "empty timestamp range [%lld, %lld)",
                      (long long)opts->ts_from, (long long)opts->ts_to);
    return scan_open(t, opts, NULL, 0, out);
}

int ts_tablet_read_row(ts_tablet *t, const uint8_t *row, size_t row_len,
                       const ts_read_options *opts, ts_row *out)
{
    memset(out, 0, sizeof *out);
    if (row_len == 0 || row_len > TS_MAX_ROW_KEY)
        return bt_err(BT_EINVAL, "row key must be 1..%d bytes, got %zu", TS_MAX_ROW_KEY, row_len);
    if (!ts_row_in_tablet(t, row, row_len))
        return bt_err(BT_ENOTSERVING, "row outside tablet %llu's range", (unsigned long long)t->id);
    bt_buf row_esc = {0};
    int rc = ts_buf_put_esc(&row_esc, row, row_len);
    ts_scanner *s = NULL;
    if (!rc) rc = scan_open(t, opts, &row_esc, ts_row_hash(row, row_len), &s);
    bt_buf_free(&row_esc);
    if (rc) return rc;
    ts_row r;
    rc = ts_scanner_next(s, &r);
    if (rc == BT_OK) {
        size_t cells = r.n_cells * sizeof(ts_cell);
        uint8_t *blk = malloc(cells + r.key_len + s->data.len + 1);
        if (!blk) {
            rc = BT_ENOMEM;
        } else {
            ts_cell *c = (ts_cell *)blk;
            uint8_t *key = blk + cells, *data = key + r.key_len;
            memcpy(key, r.key, r.key_len);
            memcpy(data, s->data.data, s->data.len);
            for (size_t i = 0; i < r.n_cells; i++) {
                c[i] = r.cells[i];
                c[i].family = (const char *)data + ((const uint8_t *)r.cells[i].family - s->data.data);
                c[i].qualifier = data + (r.cells[i].qualifier - s->data.data);
                c[i].value = data + (r.cells[i].value - s->data.data);
            }
            out->key = key;
            out->key_len = r.key_len;
            out->cells = c;
            out->n_cells = r.n_cells;
        }
    }
    ts_scanner_close(s);
    return rc;
}

void ts_row_free(ts_row *r)
{
    if (!r) return;
    free((void *)r->cells);
    memset(r, 0, sizeof *r);
}

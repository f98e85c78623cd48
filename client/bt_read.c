/* client/bt_read.c: filters, rows, bt_read_row, range scanners and row-set
 * scanners (client/bt.h). */
#include "client/bt_internal.h"
#include "common/rpc_codec.h"
#include "common/status.h"
#include "tabletserver/ts_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- filters ------------------------------------------------------------------------------
 * The owned bytes live in `mem` blocks (never moved); `o` points into them. */

struct bt_filter {
    ts_read_options o;
    ts_column_ref *cols;
    int cap_cols;
    uint8_t **mem;
    size_t n_mem, cap_mem;
};

bt_filter *bt_filter_new(void) { return calloc(1, sizeof(bt_filter)); }

void bt_filter_free(bt_filter *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n_mem; i++) free(f->mem[i]);
    free(f->mem);
    free(f->cols);
    free(f);
}

const ts_read_options *bt_filter_to_ts(const bt_filter *f) { return f ? &f->o : NULL; }

/* A copy of [p, p+n) owned by f (never NULL on success, even for n 0). */
static const uint8_t *keep(bt_filter *f, const void *p, size_t n)
{
    if (f->n_mem == f->cap_mem) {
        size_t cap = f->cap_mem ? 2 * f->cap_mem : 8;
        uint8_t **m = realloc(f->mem, cap * sizeof *m);
        if (!m) return NULL;
        f->mem = m;
        f->cap_mem = cap;
    }
    uint8_t *x = malloc(n + 1);
    if (!x) return NULL;
    if (n) memcpy(x, p, n);
    x[n] = 0;
    f->mem[f->n_mem++] = x;
    return x;
}

static int filter_family_ok(const char *family)
{
    if (!family || !bt_valid_name(family, strlen(family)))
        return bt_err(BT_EINVAL, "family name \"%s\" must be 1-64 of [A-Za-z0-9_.-]", family ? family : "(null)");
    return BT_OK;
}

static int add_column(bt_filter *f, const char *family, const void *q, size_t ql, bool whole_family)
{
    if (!f) return bt_err(BT_EINVAL, "filter is NULL");
    int rc = filter_family_ok(family);
    if (rc) return rc;
    if (!whole_family && ql > TS_MAX_QUALIFIER)
        return bt_err(BT_ETOOBIG, "qualifier of %zu bytes is over the limit of %d bytes", ql, TS_MAX_QUALIFIER);
    if (!whole_family && ql && !q) return bt_err(BT_EINVAL, "qualifier is NULL but its length is %zu", ql);
    if (f->o.n_columns >= TSP_MAX_COLUMNS) return bt_err(BT_ETOOBIG, "a filter names at most %d columns", TSP_MAX_COLUMNS);
    if (f->o.n_columns == f->cap_cols) {
        int cap = f->cap_cols ? 2 * f->cap_cols : 4;
        ts_column_ref *c = realloc(f->cols, (size_t)cap * sizeof *c);
        if (!c) return BT_ENOMEM;
        f->cols = c;
        f->cap_cols = cap;
        f->o.columns = c;
    }
    size_t fl = strlen(family);
    const uint8_t *fk = keep(f, family, fl), *qk = whole_family ? NULL : keep(f, q, ql);
    if (!fk || (!whole_family && !qk)) return BT_ENOMEM;
    f->cols[f->o.n_columns++] = (ts_column_ref){.family = (const char *)fk, .family_len = fl,
                                                .qualifier = qk, .qualifier_len = whole_family ? 0 : ql};
    return BT_OK;
}

int bt_filter_family(bt_filter *f, const char *family) { return add_column(f, family, NULL, 0, true); }

int bt_filter_column(bt_filter *f, const char *family, const void *qualifier, size_t qualifier_len)
{
    return add_column(f, family, qualifier, qualifier_len, false);
}

int bt_filter_column_range(bt_filter *f, const char *family, const void *from, size_t from_len, const void *to,
                           size_t to_len)
{
    if (!f) return bt_err(BT_EINVAL, "filter is NULL");
    int rc = filter_family_ok(family);
    if (rc) return rc;
    if (f->o.range_family_len) return bt_err(BT_EINVAL, "a filter holds at most one column range");
    if (from_len > TS_MAX_QUALIFIER || to_len > TS_MAX_QUALIFIER)
        return bt_err(BT_ETOOBIG, "column range bound over the qualifier limit of %d bytes", TS_MAX_QUALIFIER);
    if ((from_len && !from) || (to_len && !to)) return bt_err(BT_EINVAL, "column range bound is NULL");
    size_t fl = strlen(family);
    const uint8_t *fk = keep(f, family, fl), *a = keep(f, from, from_len), *b = keep(f, to, to_len);
    if (!fk || !a || !b) return BT_ENOMEM;
    f->o.range_family = (const char *)fk;
    f->o.range_family_len = fl;
    f->o.qual_from = a;
    f->o.qual_from_len = from_len;
    f->o.qual_to = b;
    f->o.qual_to_len = to_len;
    return BT_OK;
}

int bt_filter_timestamp_range(bt_filter *f, int64_t from, int64_t to)
{
    if (!f) return bt_err(BT_EINVAL, "filter is NULL");
    if (from < 0 || to < 0 || (to != 0 && to <= from))
        return bt_err(BT_EINVAL, "timestamp range [%lld, %lld): from must be >= 0 and to 0 (unbounded) or > from",
                      (long long)from, (long long)to);
    /* a chain: the intersection with a range set before */
    int64_t nf = from > f->o.ts_from ? from : f->o.ts_from;
    int64_t nt = f->o.ts_to == 0 ? to : to == 0 ? f->o.ts_to : (to < f->o.ts_to ? to : f->o.ts_to);
    if (nt != 0 && nt <= nf)
        return bt_err(BT_EINVAL, "timestamp range [%lld, %lld) does not overlap the range set before",
                      (long long)from, (long long)to);
    f->o.ts_from = nf;
    f->o.ts_to = nt;
    return BT_OK;
}

static int bcmp_(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int x = n ? memcmp(a, b, n) : 0;
    return x ? x : (an < bn ? -1 : an > bn);
}

int bt_filter_value_range(bt_filter *f, const void *from, size_t from_len, const void *to, size_t to_len)
{
    if (!f) return bt_err(BT_EINVAL, "filter is NULL");
    if ((from_len && !from) || (to_len && !to)) return bt_err(BT_EINVAL, "value range bound is NULL");
    if (from_len > TS_MAX_VALUE || to_len > TS_MAX_VALUE) return bt_err(BT_ETOOBIG, "value range bound over 64 MiB");
    const uint8_t *a = from, *b = to;
    size_t al = from_len, bl = to_len;
    if (f->o.has_value_range) { /* intersect with the range set before */
        if (bcmp_(f->o.value_from, f->o.value_from_len, a, al) > 0) {
            a = f->o.value_from;
            al = f->o.value_from_len;
        }
        if (bl == 0 || (f->o.value_to_len && bcmp_(f->o.value_to, f->o.value_to_len, b, bl) < 0)) {
            b = f->o.value_to;
            bl = f->o.value_to_len;
        }
    }
    const uint8_t *ka = keep(f, a, al), *kb = keep(f, b, bl);
    if (!ka || !kb) return BT_ENOMEM;
    f->o.has_value_range = true;
    f->o.value_from = ka;
    f->o.value_from_len = al;
    f->o.value_to = kb;
    f->o.value_to_len = bl;
    return BT_OK;
}

int bt_filter_versions(bt_filter *f, uint32_t n)
{
    if (!f) return bt_err(BT_EINVAL, "filter is NULL");
    if (n < 1) return bt_err(BT_EINVAL, "versions per column must be >= 1");
    if (!f->o.versions || n < f->o.versions) f->o.versions = n;
    return BT_OK;
}

int bt_filter_cells_per_row(bt_filter *f, uint32_t n)
{
    if (!f) return bt_err(BT_EINVAL, "filter is NULL");
    if (n < 1) return bt_err(BT_EINVAL, "cells per row must be >= 1");
    if (!f->o.cells_per_row || n < f->o.cells_per_row) f->o.cells_per_row = n;
    return BT_OK;
}

int bt_filter_strip_value(bt_filter *f)
{
    if (!f) return bt_err(BT_EINVAL, "filter is NULL");
    f->o.strip_value = true;
    return BT_OK;
}

/* ---- rows ------------------------------------------------------------------------------- */

int bt_row_box_set(bt_row_box *b, const ts_row *tr)
{
    if (tr->n_cells > b->cap_cells) {
        bt_cell *c = realloc(b->cells, tr->n_cells * sizeof *c);
        if (!c) return BT_ENOMEM;
        b->cells = c;
        b->cap_cells = tr->n_cells;
    }
    for (size_t i = 0; i < tr->n_cells; i++) {
        const ts_cell *x = &tr->cells[i];
        b->cells[i] = (bt_cell){.family = x->family, .family_len = x->family_len, .qualifier = x->qualifier,
                                .qualifier_len = x->qualifier_len, .timestamp = x->timestamp, .value = x->value,
                                .value_len = x->value_len};
    }
    b->row.key = tr->key;
    b->row.key_len = tr->key_len;
    b->row.cells = b->cells;
    b->row.n_cells = tr->n_cells;
    return BT_OK;
}

void bt_row_free(bt_row *r)
{
    if (!r) return;
    bt_row_box *b = (bt_row_box *)r;
    bt_buf_free(&b->payload);
    free(b->cells);
    free(b);
}

int bt_row_from_answer(bt_buf *resp, bt_row **out)
{
    bt_row_box *b = calloc(1, sizeof *b);
    if (!b) return BT_ENOMEM;
    b->payload = *resp;
    memset(resp, 0, sizeof *resp);
    bt_msg_reader r;
    bt_msg_reader_init(&r, b->payload.data, b->payload.len);
    ts_row tr;
    int rc = tsp_get_row(&r, &tr);
    if (rc) {
        bt_row_free(&b->row);
        return rc == BT_ENOMEM ? rc : bt_err(BT_ECORRUPT, "undecodable row from the tablet server: %s", bt_errmsg());
    }
    rc = bt_row_box_set(b, &tr);
    tsp_row_release(&tr);
    if (rc) {
        bt_row_free(&b->row);
        return rc;
    }
    *out = &b->row;
    return BT_OK;
}

/* ---- read_row -------------------------------------------------------------------------- */

static int read_tail(const void *row, size_t rl, const ts_read_options *ro, bt_buf *tail)
{
    bt_msg_writer w;
    bt_msg_writer_init(&w, tail);
    bt_msg_put_bytes(&w, row, rl);
    tsp_put_filter(&w, ro);
    return bt_msg_writer_status(&w);
}

int bt_read_row(bt_table *t, const void *row, size_t row_len, const bt_filter *f, bt_row **out)
{
    if (out) *out = NULL;
    if (!t || !out) return bt_err(BT_EINVAL, "bt_read_row: table or out is NULL");
    int rc = bt_check_row(row, row_len);
    if (!rc) rc = bt_table_check_families(t, NULL, 0, bt_filter_to_ts(f));
    if (rc) return rc;
    bt_buf tail = {0}, resp = {0};
    rc = read_tail(row, row_len, bt_filter_to_ts(f), &tail);
    if (!rc) rc = bt_tablet_call(t, row, row_len, TSP_READ_ROW, &tail, &resp, false);
    if (rc == BT_ENOTFOUND && !strcmp(bt_errmsg(), "row not found")) rc = bt_err(BT_ENOTFOUND, "table %s: row not found%s", t->name, f ? " (or no cell passes the filter)" : "");
    if (!rc) rc = bt_row_from_answer(&resp, out);
    bt_buf_free(&tail);
    bt_buf_free(&resp);
    return rc;
}

/* ---- scanners -------------------------------------------------------------------------------
 * A range scanner walks the tablets in row order: cur is the next row key it
 * may return; it opens a server scanner on the tablet holding cur with
 * start_row cur (the server clamps to the tablet's range), reads batches
 * until the server says done, then moves cur to the tablet's end.  When a
 * server scanner fails (moved tablet, dead server, expired scanner), it
 * re-resolves cur (the key after the last row returned) and reopens there, so
 * every row comes exactly once. */

typedef enum { SCAN_RANGE, SCAN_ROWS } scan_kind;

struct bt_scanner {
    bt_table *t;
    scan_kind kind;
    bt_filter *filter;          /* a copy (NULL: every cell) */
    int err;
    bool eof;
    bt_row_box row;
    ts_row cur_tr;              /* the row in `row` (cells array to release) */
    bool have_tr;

    /* range */
    bt_buf cur;                 /* next key (inclusive) */
    bt_buf end;                 /* exclusive; len 0 + !end_set: unbounded */
    bool end_set;
    bt_buf prefix;
    uint64_t limit, returned;
    uint32_t batch_rows, batch_bytes;
    char server[256];           /* the open server scanner, if scanner_open */
    uint64_t tablet_id, scanner_id;
    bool scanner_open;          /* a server scanner may hold more rows */
    bool tablet_open;           /* rows of the current tablet are being read */
    bt_buf tablet_end;          /* len 0: unbounded */
    bt_buf batch;               /* the last answer */
    bt_msg_reader rd;           /* rows left in batch */

    /* row set */
    bt_key *keys;               /* sorted, distinct; memory in keymem */
    uint8_t *keymem;
    size_t n_keys, next_key;
    bt_row **rows;              /* fetched window */
    size_t n_rows, next_row;
};

static bt_filter *filter_copy(const bt_filter *f)
{
    if (!f) return NULL;
    bt_filter *c = bt_filter_new();
    if (!c) return NULL;
    const ts_read_options *o = &f->o;
    int rc = BT_OK;
    for (int i = 0; !rc && i < o->n_columns; i++) {
        char fam[TS_MAX_NAME + 1];
        size_t fl = o->columns[i].family_len > TS_MAX_NAME ? TS_MAX_NAME : o->columns[i].family_len;
        memcpy(fam, o->columns[i].family, fl);
        fam[fl] = 0;
        rc = add_column(c, fam, o->columns[i].qualifier, o->columns[i].qualifier_len, o->columns[i].qualifier == NULL);
    }
    if (!rc && o->range_family_len) {
        char fam[TS_MAX_NAME + 1];
        memcpy(fam, o->range_family, o->range_family_len);
        fam[o->range_family_len] = 0;
        rc = bt_filter_column_range(c, fam, o->qual_from, o->qual_from_len, o->qual_to, o->qual_to_len);
    }
    if (!rc && o->has_value_range) rc = bt_filter_value_range(c, o->value_from, o->value_from_len, o->value_to, o->value_to_len);
    c->o.ts_from = o->ts_from;
    c->o.ts_to = o->ts_to;
    c->o.versions = o->versions;
    c->o.cells_per_row = o->cells_per_row;
    c->o.strip_value = o->strip_value;
    if (rc) {
        bt_filter_free(c);
        return NULL;
    }
    return c;
}

/* The smallest key greater than every key starting with p; false if none
 * (p is all 0xff). */
static bool prefix_successor(const uint8_t *p, size_t n, bt_buf *out)
{
    while (n > 0 && p[n - 1] == 0xff) n--;
    if (n == 0) return false;
    bt_buf_clear(out);
    if (bt_buf_append(out, p, n)) return false;
    out->data[n - 1]++;
    return true;
}

static void scanner_release_row(bt_scanner *s)
{
    if (s->have_tr) tsp_row_release(&s->cur_tr);
    s->have_tr = false;
}

int bt_scan_open(bt_table *t, const bt_scan_options *o, bt_scanner **out)
{
    if (!out) return bt_err(BT_EINVAL, "bt_scan_open: out is NULL");
    *out = NULL;
    if (!t) return bt_err(BT_EINVAL, "bt_scan_open: table is NULL");
    static const bt_scan_options all;
    if (!o) o = &all;
    if ((o->start_len && !o->start) || (o->end_len && !o->end) || (o->prefix_len && !o->prefix))
        return bt_err(BT_EINVAL, "scan bound is NULL but its length is not 0");
    if (o->start_len > TS_MAX_ROW_KEY || o->end_len > TS_MAX_ROW_KEY || o->prefix_len > TS_MAX_ROW_KEY)
        return bt_err(BT_ETOOBIG, "scan bound over the row key limit of %d bytes", TS_MAX_ROW_KEY);
    if (o->batch_bytes > TSP_SCAN_MAX_BYTES)
        return bt_err(BT_EINVAL, "batch_bytes %u: at most %u", o->batch_bytes, TSP_SCAN_MAX_BYTES);
    int rc = bt_table_check_families(t, NULL, 0, bt_filter_to_ts(o->filter));
    if (rc) return rc;
    bt_scanner *s = calloc(1, sizeof *s);
    if (!s) return BT_ENOMEM;
    s->t = t;
    s->kind = SCAN_RANGE;
    s->limit = o->limit;
    s->batch_rows = o->batch_rows ? o->batch_rows : TSP_SCAN_DEFAULT_ROWS;
    s->batch_bytes = o->batch_bytes ? o->batch_bytes : TSP_SCAN_DEFAULT_BYTES;
    if (o->filter && !(s->filter = filter_copy(o->filter))) rc = BT_ENOMEM;
    if (!rc) rc = bt_buf_append(&s->cur, o->start, o->start_len);
    if (!rc && o->end_len) {
        rc = bt_buf_append(&s->end, o->end, o->end_len);
        s->end_set = true;
    }
    if (!rc && o->prefix_len) {
        rc = bt_buf_append(&s->prefix, o->prefix, o->prefix_len);
        /* the prefix narrows [start, end) */
        if (!rc && bcmp_(s->cur.data, s->cur.len, o->prefix, o->prefix_len) < 0) {
            bt_buf_clear(&s->cur);
            rc = bt_buf_append(&s->cur, o->prefix, o->prefix_len);
        }
        bt_buf succ = {0};
        if (!rc && prefix_successor(o->prefix, o->prefix_len, &succ) &&
            (!s->end_set || bcmp_(succ.data, succ.len, s->end.data, s->end.len) < 0)) {
            bt_buf_clear(&s->end);
            rc = bt_buf_append(&s->end, succ.data, succ.len);
            s->end_set = true;
        }
        bt_buf_free(&succ);
    }
    if (!rc && s->end_set && bcmp_(s->cur.data, s->cur.len, s->end.data, s->end.len) >= 0) s->eof = true;
    if (rc) {
        bt_scanner_close(s);
        return rc;
    }
    *out = s;
    return BT_OK;
}

static void close_done(void *arg, int status, const uint8_t *payload, size_t len, bool more)
{
    (void)arg; (void)status; (void)payload; (void)len; (void)more;
}

static void close_server_scanner(bt_scanner *s)
{
    if (!s->scanner_open || !s->scanner_id) {
        s->scanner_open = false;
        return;
    }
    bt_buf req = {0};
    if (!bt_buf_put_varint64(&req, s->scanner_id)) {
        /* fire and forget: a lost close only leaves the scanner to its lease */
        bt_client *c = s->t->c;
        atomic_fetch_add(&c->st_rpcs, 1);
        bt_conn_call_async(c->pool, s->server, TSP_SCAN_CLOSE, req.data, req.len, 0, close_done, NULL);
    }
    bt_buf_free(&req);
    s->scanner_open = false;
    s->scanner_id = 0;
}

/* Takes a batch answer into s (header read, rows left in s->rd). */
static int take_batch(bt_scanner *s)
{
    bt_msg_reader_init(&s->rd, s->batch.data, s->batch.len);
    uint64_t sid = 0;
    bool done = true;
    int rc = tsp_get_scan_header(&s->rd, &sid, &done);
    if (rc) return bt_err(BT_EUNAVAIL, "undecodable scan answer from %s", s->server);
    s->scanner_id = sid;
    s->scanner_open = !done && sid != 0;
    return BT_OK;
}

/* Opens a server scanner on the tablet holding s->cur, or moves past it. */
static int open_tablet(bt_scanner *s, bt_op *op)
{
    bt_client *c = s->t->c;
    bt_loc l = {0};
    int rc = bt_locate(c, s->t->name, s->cur.data, s->cur.len, op, true, &l);
    if (rc) {
        bt_loc_free(&l);
        return rc;
    }
    ts_read_options ro = s->filter ? s->filter->o : (ts_read_options){0};
    ro.start_row = s->cur.data;
    ro.start_len = s->cur.len;
    ro.end_row = s->end_set ? s->end.data : NULL;
    ro.end_len = s->end_set ? s->end.len : 0;
    ro.prefix = s->prefix.len ? s->prefix.data : NULL;
    ro.prefix_len = s->prefix.len;
    ro.row_limit = s->limit ? s->limit - s->returned : 0;
    bt_buf req = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, l.id);
    tsp_put_filter(&w, &ro);
    bt_msg_put_varint(&w, s->batch_rows);
    bt_msg_put_varint(&w, s->batch_bytes);
    rc = bt_msg_writer_status(&w);
    if (!rc) rc = bt_client_rpc(c, l.server, TSP_SCAN_OPEN, &req, &s->batch, bt_op_attempt_ms(op));
    bt_buf_free(&req);
    if (rc) {
        if (bt_retryable(rc)) bt_loc_drop(c, s->t->name, s->cur.data, s->cur.len, l.id);
        bt_loc_free(&l);
        return rc;
    }
    snprintf(s->server, sizeof s->server, "%s", l.server);
    s->tablet_id = l.id;
    bt_buf_clear(&s->tablet_end);
    rc = bt_buf_append(&s->tablet_end, l.end.data, l.end.len);
    bt_loc_free(&l);
    if (!rc) rc = take_batch(s);
    if (!rc) s->tablet_open = true;
    return rc;
}

/* Fetches the next batch (rows in s->rd), following tablets; sets eof. */
static int fetch(bt_scanner *s)
{
    bt_client *c = s->t->c;
    bt_op op;
    bt_op_init(&op, c);
    for (;;) {
        int rc;
        if (s->tablet_open && s->scanner_open) {
            bt_buf req = {0};
            rc = bt_buf_put_varint64(&req, s->scanner_id);
            if (!rc) rc = bt_client_rpc(c, s->server, TSP_SCAN_NEXT, &req, &s->batch, bt_op_attempt_ms(&op));
            bt_buf_free(&req);
            if (!rc) return take_batch(s);
            s->scanner_open = false;
            s->tablet_open = false;
            /* an expired scanner (BT_ENOTFOUND) is reopened at once, like a moved tablet */
            if (rc == BT_ENOTFOUND) {
                atomic_fetch_add(&c->st_retries, 1);
                continue;
            }
            if (!bt_retryable(rc)) return rc;
            bt_loc_drop(c, s->t->name, s->cur.data, s->cur.len, s->tablet_id);
        } else {
            if (s->tablet_open) {
                /* the tablet is exhausted: on to the next, if the scan goes there */
                s->tablet_open = false;
                if (s->tablet_end.len == 0 ||
                    (s->end_set && bcmp_(s->tablet_end.data, s->tablet_end.len, s->end.data, s->end.len) >= 0)) {
                    s->eof = true;
                    return BT_OK;
                }
                bt_buf_clear(&s->cur);
                if (bt_buf_append(&s->cur, s->tablet_end.data, s->tablet_end.len)) return BT_ENOMEM;
            }
            rc = open_tablet(s, &op);
            if (!rc) return BT_OK;
            if (!bt_retryable(rc)) return rc;
        }
        if (!bt_op_backoff(&op, rc)) return bt_op_fail(&op, s->t->name);
    }
}

static int next_range(bt_scanner *s, const bt_row **row)
{
    for (;;) {
        if (s->limit && s->returned >= s->limit) {
            close_server_scanner(s);
            s->eof = true;
        }
        if (s->eof) return BT_ENOTFOUND;
        if (s->tablet_open && bt_msg_remaining(&s->rd) > 0) {
            scanner_release_row(s);
            int rc = tsp_get_row(&s->rd, &s->cur_tr);
            if (rc) return bt_err(BT_ECORRUPT, "undecodable row in a scan answer from %s", s->server);
            s->have_tr = true;
            rc = bt_row_box_set(&s->row, &s->cur_tr);
            if (rc) return rc;
            /* the next row to ask for, should the scanner have to reopen */
            bt_buf_clear(&s->cur);
            if (bt_buf_append(&s->cur, s->cur_tr.key, s->cur_tr.key_len) || bt_buf_append(&s->cur, "", 1))
                return BT_ENOMEM;
            s->returned++;
            *row = &s->row.row;
            return BT_OK;
        }
        int rc = fetch(s);
        if (rc) return rc;
    }
}

/* ---- row sets ---------------------------------------------------------------------------- */

#define ROWSET_WINDOW 64

static int cmp_key(const void *a, const void *b)
{
    const bt_key *x = a, *y = b;
    return bcmp_(x->data, x->len, y->data, y->len);
}

int bt_scan_rows(bt_table *t, const bt_key *rows, size_t n, const bt_filter *f, bt_scanner **out)
{
    if (!out) return bt_err(BT_EINVAL, "bt_scan_rows: out is NULL");
    *out = NULL;
    if (!t) return bt_err(BT_EINVAL, "bt_scan_rows: table is NULL");
    if (n && !rows) return bt_err(BT_EINVAL, "bt_scan_rows: rows is NULL");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = bt_check_row(rows[i].data, rows[i].len);
        if (rc) return rc;
        total += rows[i].len;
    }
    int rc = bt_table_check_families(t, NULL, 0, bt_filter_to_ts(f));
    if (rc) return rc;
    bt_scanner *s = calloc(1, sizeof *s);
    if (!s) return BT_ENOMEM;
    s->t = t;
    s->kind = SCAN_ROWS;
    s->keys = malloc((n ? n : 1) * sizeof *s->keys);
    s->keymem = malloc(total ? total : 1);
    s->rows = calloc(ROWSET_WINDOW, sizeof *s->rows);
    if (!s->keys || !s->keymem || !s->rows || (f && !(s->filter = filter_copy(f)))) {
        bt_scanner_close(s);
        return BT_ENOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(s->keymem + off, rows[i].data, rows[i].len);
        s->keys[i] = (bt_key){s->keymem + off, rows[i].len};
        off += rows[i].len;
    }
    qsort(s->keys, n, sizeof *s->keys, cmp_key);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || cmp_key(&s->keys[m - 1], &s->keys[i])) s->keys[m++] = s->keys[i];
    s->n_keys = m;
    *out = s;
    return BT_OK;
}

static void free_window(bt_scanner *s)
{
    for (size_t i = 0; i < s->n_rows; i++) bt_row_free(s->rows[i]);
    s->n_rows = s->next_row = 0;
}

/* Reads the next window of keys: one READ_ROW per key, in parallel; a key
 * whose call failed in a retryable way is read again with bt_read_row's
 * retry loop. */
static int fetch_window(bt_scanner *s)
{
    bt_client *c = s->t->c;
    free_window(s);
    size_t k0 = s->next_key, nk = s->n_keys - k0 < ROWSET_WINDOW ? s->n_keys - k0 : ROWSET_WINDOW;
    s->next_key += nk;
    bt_async_call calls[ROWSET_WINDOW];
    bt_buf reqs[ROWSET_WINDOW];
    memset(calls, 0, sizeof calls);
    memset(reqs, 0, sizeof reqs);
    bool sent[ROWSET_WINDOW] = {false};
    uint64_t ids[ROWSET_WINDOW] = {0};
    const ts_read_options *ro = bt_filter_to_ts(s->filter);
    bt_async_group g;
    bt_async_group_init(&g, c->o.max_parallel);
    bt_op op;
    bt_op_init(&op, c);
    int attempt_ms = bt_op_attempt_ms(&op);
    for (size_t i = 0; i < nk; i++) {
        const bt_key *k = &s->keys[k0 + i];
        bt_loc l = {0};
        if (bt_locate(c, s->t->name, k->data, k->len, &op, false, &l)) continue; /* read below, with retries */
        bt_msg_writer w;
        bt_msg_writer_init(&w, &reqs[i]);
        bt_msg_put_varint(&w, l.id);
        bt_msg_put_bytes(&w, k->data, k->len);
        tsp_put_filter(&w, ro);
        if (bt_msg_writer_status(&w)) continue;
        ids[i] = l.id;
        sent[i] = true;
        bt_async_start(c, &g, &calls[i], l.server, TSP_READ_ROW, &reqs[i], attempt_ms);
    }
    bt_async_wait_all(&g);
    bt_async_group_destroy(&g);
    int rc = BT_OK;
    for (size_t i = 0; i < nk; i++) {
        const bt_key *k = &s->keys[k0 + i];
        int r = sent[i] ? calls[i].status : BT_EUNAVAIL;
        bt_row *row = NULL;
        if (r == BT_OK) {
            r = bt_row_from_answer(&calls[i].resp, &row);
        } else if (bt_retryable(r)) {
            if (sent[i]) bt_loc_drop(c, s->t->name, k->data, k->len, ids[i]);
            r = bt_read_row(s->t, k->data, k->len, s->filter, &row);
        } else if (r != BT_ENOTFOUND && calls[i].resp.len) {
            bt_err(r, "%.*s", (int)(calls[i].resp.len > 300 ? 300 : calls[i].resp.len), (const char *)calls[i].resp.data);
        }
        if (r == BT_OK) s->rows[s->n_rows++] = row;
        else if (r != BT_ENOTFOUND && !rc) rc = r;
    }
    for (size_t i = 0; i < nk; i++) {
        bt_buf_free(&calls[i].resp);
        bt_buf_free(&reqs[i]);
    }
    return rc;
}

static int next_rows(bt_scanner *s, const bt_row **row)
{
    for (;;) {
        if (s->next_row < s->n_rows) {
            *row = s->rows[s->next_row++];
            return BT_OK;
        }
        if (s->next_key >= s->n_keys) {
            s->eof = true;
            return BT_ENOTFOUND;
        }
        int rc = fetch_window(s);
        if (rc) return rc;
    }
}

int bt_scanner_next(bt_scanner *s, const bt_row **row)
{
    if (!s || !row) return bt_err(BT_EINVAL, "bt_scanner_next: scanner or row is NULL");
    *row = NULL;
    if (s->err) return bt_err(s->err, "the scanner failed before with %s; close it", bt_errname(s->err));
    if (s->eof && s->kind == SCAN_RANGE) return BT_ENOTFOUND;
    int rc = s->kind == SCAN_RANGE ? next_range(s, row) : next_rows(s, row);
    if (rc && rc != BT_ENOTFOUND) s->err = rc;
    return rc;
}

void bt_scanner_close(bt_scanner *s)
{
    if (!s) return;
    if (s->kind == SCAN_RANGE) close_server_scanner(s);
    scanner_release_row(s);
    free(s->row.cells);
    bt_filter_free(s->filter);
    bt_buf_free(&s->cur);
    bt_buf_free(&s->end);
    bt_buf_free(&s->prefix);
    bt_buf_free(&s->tablet_end);
    bt_buf_free(&s->batch);
    if (s->rows) free_window(s);
    free(s->rows);
    free(s->keys);
    free(s->keymem);
    free(s);
}

/* client/bt_write.c: mutations, bt_apply, batches, check-and-mutate and
 * read-modify-write (client/bt.h). */
#include "client/bt_internal.h"
#include "common/rpc_codec.h"
#include "common/status.h"
#include "tabletserver/ts_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MUTATIONS 100000            /* per row (the tablet's limit) */
#define BATCH_MAX_ROWS 10000            /* rows per MUTATE_ROWS request */
#define BATCH_MAX_BYTES (8u << 20)      /* payload bytes per MUTATE_ROWS request */
#define MAX_REQUEST ((size_t)RPC_DEFAULT_MAX_PAYLOAD - 4096)

/* ---- mutations ------------------------------------------------------------------------- */

struct bt_mutation {
    bt_buf row;
    ts_mutation *m;         /* each change's bytes live in mem[i] */
    uint8_t **mem;
    size_t n, cap;
};

bt_mutation *bt_mutation_new(const void *row, size_t row_len)
{
    bt_mutation *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    if (row_len && bt_buf_append(&m->row, row, row_len)) {
        free(m);
        return NULL;
    }
    return m;
}

void bt_mutation_clear(bt_mutation *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) free(m->mem[i]);
    m->n = 0;
}

void bt_mutation_free(bt_mutation *m)
{
    if (!m) return;
    bt_mutation_clear(m);
    free(m->m);
    free(m->mem);
    bt_buf_free(&m->row);
    free(m);
}

size_t bt_mutation_len(const bt_mutation *m) { return m ? m->n : 0; }

int bt_mutation_to_ts(const bt_mutation *m, const ts_mutation **muts, int *n)
{
    *muts = m->m;
    *n = (int)m->n;
    return BT_OK;
}

void bt_mutation_row(const bt_mutation *m, const uint8_t **row, size_t *len)
{
    *row = m->row.data;
    *len = m->row.len;
}

static int check_family(const char *family, size_t len)
{
    if (!family || !bt_valid_name(family, len))
        return bt_err(BT_EINVAL, "family name \"%.*s\" must be 1-64 of [A-Za-z0-9_.-]", family ? (int)(len > 80 ? 80 : len) : 6,
                      family ? family : "(null)");
    return BT_OK;
}

static int check_qualifier(const void *q, size_t len)
{
    if (len > TS_MAX_QUALIFIER)
        return bt_err(BT_ETOOBIG, "qualifier of %zu bytes is over the limit of %d bytes", len, TS_MAX_QUALIFIER);
    if (len && !q) return bt_err(BT_EINVAL, "qualifier is NULL but its length is %zu", len);
    return BT_OK;
}

/* Appends x, copying its family, qualifier and value into one block. */
static int add(bt_mutation *m, const ts_mutation *x)
{
    if (m->n >= MAX_MUTATIONS)
        return bt_err(BT_ETOOBIG, "a row mutation holds at most %d changes", MAX_MUTATIONS);
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 4;
        ts_mutation *nm = realloc(m->m, cap * sizeof *nm);
        if (!nm) return BT_ENOMEM;
        m->m = nm;
        uint8_t **mem = realloc(m->mem, cap * sizeof *mem);
        if (!mem) return BT_ENOMEM;
        m->mem = mem;
        m->cap = cap;
    }
    size_t fl = x->type == TS_DELETE_ROW ? 0 : x->family_len;
    size_t ql = x->type == TS_DELETE_ROW || x->type == TS_DELETE_FAMILY ? 0 : x->qualifier_len;
    size_t vl = x->type == TS_SET_CELL ? x->value_len : 0;
    uint8_t *p = malloc(fl + ql + vl + 1);
    if (!p) return BT_ENOMEM;
    ts_mutation y = *x;
    if (fl) memcpy(p, x->family, fl);
    if (ql) memcpy(p + fl, x->qualifier, ql);
    if (vl) memcpy(p + fl + ql, x->value, vl);
    y.family = (const char *)p;
    y.family_len = fl;
    y.qualifier = p + fl;
    y.qualifier_len = ql;
    y.value = p + fl + ql;
    y.value_len = vl;
    m->m[m->n] = y;
    m->mem[m->n] = p;
    m->n++;
    return BT_OK;
}

int bt_mutation_add_ts(bt_mutation *m, const ts_mutation *x)
{
    if (!m || !x) return bt_err(BT_EINVAL, "mutation is NULL");
    int rc = BT_OK;
    switch (x->type) {
    case TS_SET_CELL:
        rc = check_family(x->family, x->family_len);
        if (!rc) rc = check_qualifier(x->qualifier, x->qualifier_len);
        if (!rc && x->timestamp != TS_SERVER_TIME && (x->timestamp < 0 || x->timestamp == INT64_MAX))
            rc = bt_err(BT_EINVAL, "timestamp %lld: must be 0..INT64_MAX-1 or BT_SERVER_TIME", (long long)x->timestamp);
        if (!rc && x->value_len > TS_MAX_VALUE)
            rc = bt_err(BT_ETOOBIG, "value of %zu bytes is over the limit of %u bytes (64 MiB)", x->value_len, TS_MAX_VALUE);
        if (!rc && x->value_len && !x->value) rc = bt_err(BT_EINVAL, "value is NULL but its length is %zu", x->value_len);
        break;
    case TS_DELETE_CELLS:
        rc = check_family(x->family, x->family_len);
        if (!rc) rc = check_qualifier(x->qualifier, x->qualifier_len);
        if (!rc && (x->ts_from < 0 || (x->ts_to != 0 && x->ts_to <= x->ts_from)))
            rc = bt_err(BT_EINVAL, "bad time range [%lld, %lld): from must be >= 0 and to 0 or > from",
                        (long long)x->ts_from, (long long)x->ts_to);
        break;
    case TS_DELETE_FAMILY:
        rc = check_family(x->family, x->family_len);
        break;
    case TS_DELETE_ROW:
        break;
    default:
        rc = bt_err(BT_EINVAL, "unknown mutation type %d", (int)x->type);
    }
    return rc ? rc : add(m, x);
}

int bt_mutation_set(bt_mutation *m, const char *family, const void *qualifier, size_t qualifier_len,
                    int64_t timestamp, const void *value, size_t value_len)
{
    ts_mutation x = {.type = TS_SET_CELL, .family = family, .family_len = family ? strlen(family) : 0,
                     .qualifier = qualifier, .qualifier_len = qualifier_len, .timestamp = timestamp,
                     .value = value, .value_len = value_len};
    return bt_mutation_add_ts(m, &x);
}

int bt_mutation_delete_cells(bt_mutation *m, const char *family, const void *qualifier, size_t qualifier_len,
                             int64_t ts_from, int64_t ts_to)
{
    ts_mutation x = {.type = TS_DELETE_CELLS, .family = family, .family_len = family ? strlen(family) : 0,
                     .qualifier = qualifier, .qualifier_len = qualifier_len, .ts_from = ts_from, .ts_to = ts_to};
    return bt_mutation_add_ts(m, &x);
}

int bt_mutation_delete_family(bt_mutation *m, const char *family)
{
    ts_mutation x = {.type = TS_DELETE_FAMILY, .family = family, .family_len = family ? strlen(family) : 0};
    return bt_mutation_add_ts(m, &x);
}

int bt_mutation_delete_row(bt_mutation *m)
{
    ts_mutation x = {.type = TS_DELETE_ROW};
    return bt_mutation_add_ts(m, &x);
}

/* ---- apply ------------------------------------------------------------------------------- */

static size_t mutation_bytes(const bt_mutation *m)
{
    size_t b = m->row.len + 16;
    for (size_t i = 0; i < m->n; i++) b += m->m[i].family_len + m->m[i].qualifier_len + m->m[i].value_len + 40;
    return b;
}

/* Client-side checks of one row mutation against t. */
static int check_mutation(bt_table *t, const bt_mutation *m)
{
    if (!m) return bt_err(BT_EINVAL, "mutation is NULL");
    int rc = bt_check_row(m->row.data, m->row.len);
    if (rc) return rc;
    if (m->n == 0) return bt_err(BT_EINVAL, "the mutation of this row has no changes");
    size_t bytes = mutation_bytes(m);
    if (bytes > MAX_REQUEST)
        return bt_err(BT_ETOOBIG, "row mutation of about %zu bytes is over the %zu-byte request limit", bytes,
                      MAX_REQUEST);
    return bt_table_check_families(t, m->m, (int)m->n, NULL);
}

int bt_apply(bt_table *t, const bt_mutation *m)
{
    if (!t) return bt_err(BT_EINVAL, "table is NULL");
    int rc = check_mutation(t, m);
    if (rc) return rc;
    bt_buf tail = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &tail);
    bt_msg_put_bytes(&w, m->row.data, m->row.len);
    tsp_put_mutations(&w, m->m, (int)m->n);
    rc = bt_msg_writer_status(&w);
    if (!rc) rc = bt_tablet_call(t, m->row.data, m->row.len, TSP_MUTATE_ROW, &tail, NULL, false);
    bt_buf_free(&tail);
    return rc;
}

/* ---- batches ---------------------------------------------------------------------------- */

typedef struct brow {
    size_t idx;             /* into muts[] */
    bt_loc loc;
} brow;

typedef struct bchunk {
    bt_async_call call;
    bt_buf req;
    brow **rows;
    size_t n;
} bchunk;

static int cmp_brow(const void *a, const void *b)
{
    const brow *x = *(brow *const *)a, *y = *(brow *const *)b;
    int c = strcmp(x->loc.server, y->loc.server);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

int bt_apply_batch(bt_table *t, bt_mutation *const *muts, size_t n, int *status)
{
    if (!t) return bt_err(BT_EINVAL, "table is NULL");
    if (n == 0) return BT_OK;
    if (!muts) return bt_err(BT_EINVAL, "mutations are NULL");
    bt_client *c = t->c;
    int *st = calloc(n, sizeof *st);
    brow *rows = calloc(n, sizeof *rows);
    char (*detail)[160] = calloc(n, sizeof *detail);
    if (!st || !rows || !detail) {
        free(st); free(rows); free(detail);
        return BT_ENOMEM;
    }
    /* client-side checks; status 1 = still to apply */
    for (size_t i = 0; i < n; i++) {
        st[i] = check_mutation(t, muts[i]);
        if (st[i]) snprintf(detail[i], sizeof detail[i], "%s", bt_errmsg());
        else st[i] = 1;
        rows[i].idx = i;
    }
    bt_op op;
    bt_op_init(&op, c);
    brow **pend = malloc(n * sizeof *pend);
    bchunk *chunks = NULL;
    size_t cap_chunks = 0;
    int last_retry_rc = BT_OK;
    if (!pend) {
        free(st); free(rows); free(detail);
        return BT_ENOMEM;
    }
    for (;;) {
        /* locate every pending row */
        size_t np = 0;
        for (size_t i = 0; i < n; i++) {
            if (st[i] != 1) continue;
            const bt_mutation *m = muts[i];
            int rc = bt_locate(c, t->name, m->row.data, m->row.len, &op, false, &rows[i].loc);
            if (rc == BT_OK) {
                pend[np++] = &rows[i];
            } else if (!bt_retryable(rc)) {
                st[i] = rc;
                snprintf(detail[i], sizeof detail[i], "%s", bt_errmsg());
            } else {
                last_retry_rc = rc;
                snprintf(op.detail, sizeof op.detail, "%s", bt_errmsg());
            }
        }
        qsort(pend, np, sizeof *pend, cmp_brow);
        /* chunks: consecutive rows of one server, bounded in rows and bytes */
        size_t nc = 0;
        for (size_t i = 0; i < np;) {
            if (nc == cap_chunks) {
                size_t cap = cap_chunks ? 2 * cap_chunks : 8;
                bchunk *x = realloc(chunks, cap * sizeof *x);
                if (!x) break;
                memset(x + cap_chunks, 0, (cap - cap_chunks) * sizeof *x);
                chunks = x;
                cap_chunks = cap;
            }
            bchunk *ch = &chunks[nc++];
            ch->rows = &pend[i];
            ch->n = 0;
            size_t bytes = 0, j = i;
            while (j < np && !strcmp(pend[j]->loc.server, pend[i]->loc.server) && ch->n < BATCH_MAX_ROWS) {
                size_t b = mutation_bytes(muts[pend[j]->idx]);
                if (ch->n && bytes + b > BATCH_MAX_BYTES) break;
                bytes += b;
                ch->n++;
                j++;
            }
            bt_buf_clear(&ch->req);
            bt_msg_writer w;
            bt_msg_writer_init(&w, &ch->req);
            bt_msg_put_varint(&w, ch->n);
            for (size_t k = 0; k < ch->n; k++) {
                const bt_mutation *m = muts[ch->rows[k]->idx];
                bt_msg_put_varint(&w, ch->rows[k]->loc.id);
                bt_msg_put_bytes(&w, m->row.data, m->row.len);
                tsp_put_mutations(&w, m->m, (int)m->n);
            }
            ch->call.status = bt_msg_writer_status(&w);
            i = j;
        }
        /* send them, at most max_parallel at once */
        bt_async_group g;
        bt_async_group_init(&g, c->o.max_parallel);
        int attempt_ms = bt_op_attempt_ms(&op);
        for (size_t k = 0; k < nc; k++) {
            if (chunks[k].call.status) continue;
            bt_async_start(c, &g, &chunks[k].call, chunks[k].rows[0]->loc.server, TSP_MUTATE_ROWS, &chunks[k].req,
                           attempt_ms);
        }
        bt_async_wait_all(&g);
        bt_async_group_destroy(&g);
        /* results */
        for (size_t k = 0; k < nc; k++) {
            bchunk *ch = &chunks[k];
            int *rs = NULL;
            size_t rn = 0;
            const uint8_t *dt = NULL;
            size_t dl = 0;
            int rc = ch->call.status;
            if (!rc) {
                bt_msg_reader r;
                bt_msg_reader_init(&r, ch->call.resp.data, ch->call.resp.len);
                rc = tsp_get_batch_result(&r, &rs, &rn, &dt, &dl);
                if (!rc && rn != ch->n) rc = bt_err(BT_ECORRUPT, "batch answer has %zu results for %zu rows", rn, ch->n);
                if (rc) rc = bt_err(BT_EUNAVAIL, "%s: undecodable batch answer", ch->rows[0]->loc.server);
            } else if (ch->call.resp.len) {
                dt = ch->call.resp.data;
                dl = ch->call.resp.len;
            }
            for (size_t x = 0; x < ch->n; x++) {
                brow *b = ch->rows[x];
                int r = rc ? rc : rs[x];
                if (r == BT_OK) {
                    st[b->idx] = BT_OK;
                } else if (bt_retryable(r)) {
                    const bt_mutation *m = muts[b->idx];
                    bt_loc_drop(c, t->name, m->row.data, m->row.len, b->loc.id);
                    last_retry_rc = r;
                    snprintf(op.detail, sizeof op.detail, "%s: %.*s", b->loc.server, (int)(dl > 200 ? 200 : dl),
                             dt ? (const char *)dt : bt_strerror(r));
                } else {
                    st[b->idx] = r;
                    snprintf(detail[b->idx], sizeof detail[b->idx], "%.*s", (int)(dl > 150 ? 150 : dl),
                             dt ? (const char *)dt : bt_strerror(r));
                }
            }
            free(rs);
        }
        bool again = false;
        for (size_t i = 0; i < n && !again; i++) again = st[i] == 1;
        if (!again) break;
        /* the backoff records the last retryable failure as the detail */
        if (!last_retry_rc) last_retry_rc = BT_EUNAVAIL;
        char keep[sizeof op.detail];
        memcpy(keep, op.detail, sizeof keep);
        bt_err(last_retry_rc, "%s", keep);
        if (!bt_op_backoff(&op, last_retry_rc)) {
            int rc = bt_op_fail(&op, t->name);
            for (size_t i = 0; i < n; i++)
                if (st[i] == 1) {
                    st[i] = rc;
                    snprintf(detail[i], sizeof detail[i], "%s", bt_errmsg());
                }
            break;
        }
    }
    int first = BT_OK;
    for (size_t i = 0; i < n; i++) {
        if (status) status[i] = st[i];
        if (st[i] && first == BT_OK) {
            first = st[i];
            bt_err(first, "row %zu of the batch: %s", i, detail[i]);
        }
        bt_loc_free(&rows[i].loc);
    }
    for (size_t k = 0; k < cap_chunks; k++) {
        bt_buf_free(&chunks[k].req);
        bt_buf_free(&chunks[k].call.resp);
    }
    free(chunks);
    free(pend);
    free(st);
    free(rows);
    free(detail);
    return first;
}

/* ---- check-and-mutate ----------------------------------------------------------------------- */

int bt_check_and_mutate(bt_table *t, const void *row, size_t row_len, const bt_filter *predicate,
                        const bt_mutation *if_true, const bt_mutation *if_false, bool *matched)
{
    if (!t) return bt_err(BT_EINVAL, "table is NULL");
    int rc = bt_check_row(row, row_len);
    if (rc) return rc;
    const ts_read_options *pred = bt_filter_to_ts(predicate);
    const ts_mutation *none = NULL;
    const ts_mutation *mt = if_true ? if_true->m : none, *mf = if_false ? if_false->m : none;
    int nt = if_true ? (int)if_true->n : 0, nf = if_false ? (int)if_false->n : 0;
    rc = bt_table_check_families(t, mt, nt, pred);
    if (!rc) rc = bt_table_check_families(t, mf, nf, NULL);
    if (rc) return rc;
    size_t bytes = (if_true ? mutation_bytes(if_true) : 0) + (if_false ? mutation_bytes(if_false) : 0);
    if (bytes > MAX_REQUEST)
        return bt_err(BT_ETOOBIG, "check-and-mutate of about %zu bytes is over the %zu-byte request limit", bytes,
                      MAX_REQUEST);
    bt_buf tail = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &tail);
    bt_msg_put_bytes(&w, row, row_len);
    tsp_put_filter(&w, pred);
    tsp_put_mutations(&w, mt, nt);
    tsp_put_mutations(&w, mf, nf);
    rc = bt_msg_writer_status(&w);
    if (!rc) rc = bt_tablet_call(t, row, row_len, TSP_CHECK_AND_MUTATE, &tail, &resp, false);
    if (!rc) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, resp.data, resp.len);
        uint64_t v = 0;
        rc = bt_msg_get_varint(&r, &v);
        if (rc) rc = bt_err(BT_ECORRUPT, "undecodable check-and-mutate answer");
        else if (matched) *matched = v != 0;
    }
    bt_buf_free(&tail);
    bt_buf_free(&resp);
    return rc;
}

/* ---- read-modify-write -------------------------------------------------------------------- */

struct bt_rmw {
    tsp_rmw_rule *r;
    uint8_t **mem;
    size_t n, cap;
};

bt_rmw *bt_rmw_new(void) { return calloc(1, sizeof(bt_rmw)); }

void bt_rmw_free(bt_rmw *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) free(r->mem[i]);
    free(r->mem);
    free(r->r);
    free(r);
}

static int rmw_add(bt_rmw *r, const char *family, const void *q, size_t ql, tsp_rmw_kind kind, const void *v,
                   size_t vl, int64_t delta)
{
    if (!r) return bt_err(BT_EINVAL, "rmw is NULL");
    size_t fl = family ? strlen(family) : 0;
    int rc = check_family(family, fl);
    if (!rc) rc = check_qualifier(q, ql);
    if (!rc && vl > TS_MAX_VALUE)
        rc = bt_err(BT_ETOOBIG, "append of %zu bytes is over the value limit of %u bytes", vl, TS_MAX_VALUE);
    if (!rc && vl && !v) rc = bt_err(BT_EINVAL, "value is NULL but its length is %zu", vl);
    if (!rc && r->n >= MAX_MUTATIONS) rc = bt_err(BT_ETOOBIG, "at most %d read-modify-write rules", MAX_MUTATIONS);
    if (rc) return rc;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 4;
        tsp_rmw_rule *nr = realloc(r->r, cap * sizeof *nr);
        if (!nr) return BT_ENOMEM;
        r->r = nr;
        uint8_t **nm = realloc(r->mem, cap * sizeof *nm);
        if (!nm) return BT_ENOMEM;
        r->mem = nm;
        r->cap = cap;
    }
    uint8_t *p = malloc(fl + ql + vl + 1);
    if (!p) return BT_ENOMEM;
    memcpy(p, family, fl);
    if (ql) memcpy(p + fl, q, ql);
    if (vl) memcpy(p + fl + ql, v, vl);
    r->r[r->n] = (tsp_rmw_rule){.family = (const char *)p, .family_len = fl, .qualifier = p + fl,
                                .qualifier_len = ql, .kind = kind, .append = p + fl + ql, .append_len = vl,
                                .increment = delta};
    r->mem[r->n++] = p;
    return BT_OK;
}

int bt_rmw_append(bt_rmw *r, const char *family, const void *qualifier, size_t qualifier_len, const void *value,
                  size_t value_len)
{
    return rmw_add(r, family, qualifier, qualifier_len, TSP_RMW_APPEND, value, value_len, 0);
}

int bt_rmw_increment(bt_rmw *r, const char *family, const void *qualifier, size_t qualifier_len, int64_t delta)
{
    return rmw_add(r, family, qualifier, qualifier_len, TSP_RMW_INCREMENT, NULL, 0, delta);
}

int bt_read_modify_write(bt_table *t, const void *row, size_t row_len, const bt_rmw *r, bt_row **out)
{
    if (out) *out = NULL;
    if (!t) return bt_err(BT_EINVAL, "table is NULL");
    if (!r || r->n == 0) return bt_err(BT_EINVAL, "read-modify-write has no rules");
    int rc = bt_check_row(row, row_len);
    if (rc) return rc;
    /* families: check them through a mutation view */
    ts_mutation *fm = calloc(r->n, sizeof *fm);
    if (!fm) return BT_ENOMEM;
    for (size_t i = 0; i < r->n; i++)
        fm[i] = (ts_mutation){.type = TS_SET_CELL, .family = r->r[i].family, .family_len = r->r[i].family_len};
    rc = bt_table_check_families(t, fm, (int)r->n, NULL);
    free(fm);
    if (rc) return rc;
    bt_buf tail = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &tail);
    bt_msg_put_bytes(&w, row, row_len);
    tsp_put_rmw_rules(&w, r->r, (int)r->n);
    rc = bt_msg_writer_status(&w);
    if (!rc && tail.len > MAX_REQUEST)
        rc = bt_err(BT_ETOOBIG, "read-modify-write of %zu bytes is over the %zu-byte request limit", tail.len,
                    MAX_REQUEST);
    if (!rc) rc = bt_tablet_call(t, row, row_len, TSP_READ_MODIFY_WRITE, &tail, &resp, true);
    if (!rc && out) rc = bt_row_from_answer(&resp, out);
    bt_buf_free(&tail);
    bt_buf_free(&resp);
    return rc;
}

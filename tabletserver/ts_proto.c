/* tabletserver/ts_proto.c: encoding of the tablet server's RPC payloads
 * (layouts in ts_proto.h).
 *
 * Decoders read a run of fields relying on the reader's sticky error, then
 * check it once.  Their own range checks fail the reader too (reject()), so
 * an error inside a nested decoder ends the whole message the same way. */
#include "tabletserver/ts_proto.h"
#include "common/status.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Smallest encoding of one list entry (bytes fields empty, varints one
 * byte): a count the rest of the message cannot hold is corrupt, whatever
 * the count limit, so no array is sized by a count alone. */
enum {
    MIN_GROUP = 4,      /* name, flags, bloom, block_size */
    MIN_FAMILY = 12,    /* name, max_versions, fixed64 max_age, gc, group */
    MIN_MUTATION = 28,  /* type, family, qualifier, 3 x fixed64, value */
    MIN_COLUMN = 3,     /* family, has_qualifier, qualifier */
    MIN_CELL = 11,      /* family, qualifier, fixed64 timestamp, value */
    MIN_RULE = 12,      /* family, qualifier, kind, append, fixed64 increment */
    MIN_STATUS = 1,
};

enum { GROUP_COMPRESS = 1, GROUP_IN_MEMORY = 2 };     /* schema group flags */
enum { FILTER_STRIP = 1, FILTER_VALUE_RANGE = 2 };    /* filter flags */

static const char *const method_names[] = {
    [TSP_STATUS - TSP_STATUS] = "status",
    [TSP_LOAD_TABLET - TSP_STATUS] = "load_tablet",
    [TSP_UNLOAD_TABLET - TSP_STATUS] = "unload_tablet",
    [TSP_LIST_TABLETS - TSP_STATUS] = "list_tablets",
    [TSP_MUTATE_ROW - TSP_STATUS] = "mutate_row",
    [TSP_MUTATE_ROWS - TSP_STATUS] = "mutate_rows",
    [TSP_READ_ROW - TSP_STATUS] = "read_row",
    [TSP_SCAN_OPEN - TSP_STATUS] = "scan_open",
    [TSP_SCAN_NEXT - TSP_STATUS] = "scan_next",
    [TSP_SCAN_CLOSE - TSP_STATUS] = "scan_close",
    [TSP_CHECK_AND_MUTATE - TSP_STATUS] = "check_and_mutate",
    [TSP_READ_MODIFY_WRITE - TSP_STATUS] = "read_modify_write",
    [TSP_FLUSH - TSP_STATUS] = "flush",
    [TSP_COMPACT - TSP_STATUS] = "compact",
    [TSP_SPLIT - TSP_STATUS] = "split",
    [TSP_BULK_PREPARE - TSP_STATUS] = "bulk_prepare",
    [TSP_BULK_ATTACH - TSP_STATUS] = "bulk_attach",
};

#define N_OF(a) (sizeof(a) / sizeof *(a))

const char *tsp_method_name(uint16_t method)
{
    size_t i = (size_t)method - TSP_STATUS;
    return method >= TSP_STATUS && i < N_OF(method_names) ? method_names[i] : NULL;
}

/* ---- shared helpers ------------------------------------------------------------ */

typedef void (*put_entry_fn)(bt_msg_writer *w, const void *entry);
typedef int (*get_entry_fn)(bt_msg_reader *r, void *entry);

/* Fails the reader with code and a detail; the error sticks like a field error. */
static int __attribute__((format(printf, 3, 4))) reject(bt_msg_reader *r, int code,
                                                        const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return r->err = bt_err(code, "%s", msg);
}

/* Zeroes a decoder's output when rc is an error; returns rc. */
static int zero_on_error(void *out, size_t size, int rc)
{
    if (rc) memset(out, 0, size);
    return rc;
}

static size_t int_count(int n) { return n > 0 ? (size_t)n : 0; }

static void put_i64(bt_msg_writer *w, int64_t v) { bt_msg_put_fixed64(w, (uint64_t)v); }

static int64_t get_i64(bt_msg_reader *r)
{
    uint64_t v;
    bt_msg_get_fixed64(r, &v);
    return (int64_t)v;
}

static void get_chars(bt_msg_reader *r, const char **s, size_t *n)
{
    const uint8_t *p;
    bt_msg_get_bytes(r, &p, n);
    *s = (const char *)p;
}

/* A varint in 0..max; a larger value is BT_EINVAL.  *v is 0 on failure. */
static int get_enum(bt_msg_reader *r, uint64_t max, const char *what, uint64_t *v)
{
    int rc = bt_msg_get_varint(r, v);
    if (rc || *v <= max) return rc;
    uint64_t bad = *v;
    *v = 0;
    return reject(r, BT_EINVAL, "%s %" PRIu64 " is out of range 0..%" PRIu64, what, bad, max);
}

/* A list length: at most max (BT_EINVAL), and no more entries of at least
 * min_entry bytes than the rest of the message holds (BT_ECORRUPT). */
static int get_count(bt_msg_reader *r, uint64_t max, size_t min_entry, const char *what, size_t *n)
{
    uint64_t v;
    *n = 0;
    int rc = bt_msg_get_varint(r, &v);
    if (rc) return rc;
    if (v > max) return reject(r, BT_EINVAL, "%" PRIu64 " %s: at most %" PRIu64, v, what, max);
    if (v > bt_msg_remaining(r) / min_entry)
        return reject(r, BT_ECORRUPT, "%" PRIu64 " %s cannot fit in the %zu bytes left", v, what,
                      bt_msg_remaining(r));
    *n = (size_t)v;
    return BT_OK;
}

static void put_list(bt_msg_writer *w, const void *arr, size_t n, size_t size, put_entry_fn put)
{
    bt_msg_put_varint(w, n);
    for (size_t i = 0; i < n; i++) put(w, (const char *)arr + i * size);
}

static int get_entries(bt_msg_reader *r, void *arr, size_t n, size_t size, get_entry_fn get)
{
    for (size_t i = 0; i < n && !bt_msg_reader_status(r); i++) get(r, (char *)arr + i * size);
    return bt_msg_reader_status(r);
}

/* A counted list into a calloc'd array (NULL when empty); nothing on failure. */
static int get_list(bt_msg_reader *r, uint64_t max, size_t min_entry, const char *what,
                    size_t size, get_entry_fn get, void **arr, size_t *n)
{
    size_t count;
    *arr = NULL;
    *n = 0;
    if (get_count(r, max, min_entry, what, &count) || count == 0) return bt_msg_reader_status(r);
    void *a = calloc(count, size);
    if (!a) return reject(r, BT_ENOMEM, "%zu %s", count, what);
    if (get_entries(r, a, count, size, get)) {
        free(a);
        return bt_msg_reader_status(r);
    }
    *arr = a;
    *n = count;
    return BT_OK;
}

/* uint64_t fields sent as consecutive varints, named by their offsets. */
static void put_varints(bt_msg_writer *w, const void *obj, const size_t *off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bt_msg_put_varint(w, *(const uint64_t *)((const char *)obj + off[i]));
}

static void get_varints(bt_msg_reader *r, void *obj, const size_t *off, size_t n)
{
    for (size_t i = 0; i < n; i++) bt_msg_get_varint(r, (uint64_t *)((char *)obj + off[i]));
}

/* ---- tablets ------------------------------------------------------------------- */

static bool valid_table_name(const char *s, size_t n)
{
    if (n == 0 || n > TS_MAX_NAME) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
        if (!alnum && c != '_' && c != '.' && c != '-') return false;
    }
    return true;
}

static bool dot_or_empty(const char *c, size_t n)
{
    return n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.');
}

/* Relative, no empty, "." or ".." component, no NUL, at most TSP_MAX_DIR bytes. */
bool tsp_valid_dir(const char *d, size_t n)
{
    if (n == 0 || n > TSP_MAX_DIR || memchr(d, '\0', n)) return false;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && d[i] != '/') continue;
        if (dot_or_empty(d + start, i - start)) return false;
        start = i + 1;
    }
    return true;
}

void tsp_put_tablet(bt_msg_writer *w, const tsp_tablet *t)
{
    bt_msg_put_bytes(w, t->table, t->table_len);
    bt_msg_put_bytes(w, t->dir, t->dir_len);
    bt_msg_put_varint(w, t->id);
    bt_msg_put_bytes(w, t->start, t->start_len);
    bt_msg_put_bytes(w, t->end, t->end_len);
}

int tsp_get_tablet(bt_msg_reader *r, tsp_tablet *t)
{
    memset(t, 0, sizeof *t);
    get_chars(r, &t->table, &t->table_len);
    get_chars(r, &t->dir, &t->dir_len);
    bt_msg_get_varint(r, &t->id);
    bt_msg_get_bytes(r, &t->start, &t->start_len);
    bt_msg_get_bytes(r, &t->end, &t->end_len);
    int rc = bt_msg_reader_status(r);
    if (!rc && !valid_table_name(t->table, t->table_len))
        rc = reject(r, BT_EINVAL, "table name \"%.*s\" must match [A-Za-z0-9_.-]{1,64}",
                    (int)(t->table_len < 80 ? t->table_len : 80), t->table);
    if (!rc && !tsp_valid_dir(t->dir, t->dir_len))
        rc = reject(r, BT_EINVAL,
                    "tablet dir \"%.*s\" must be relative, at most %d bytes, without NUL bytes "
                    "or empty, \".\" or \"..\" components",
                    (int)(t->dir_len < 200 ? t->dir_len : 200), t->dir, TSP_MAX_DIR);
    return zero_on_error(t, sizeof *t, rc);
}

static const size_t tablet_info_counters[] = {
    offsetof(tsp_tablet_info, memtable_bytes), offsetof(tsp_tablet_info, sstable_bytes),
    offsetof(tsp_tablet_info, n_sstables), offsetof(tsp_tablet_info, last_seq),
};

void tsp_put_tablet_info(bt_msg_writer *w, const tsp_tablet_info *ti)
{
    tsp_put_tablet(w, &ti->tablet);
    put_varints(w, ti, tablet_info_counters, N_OF(tablet_info_counters));
}

int tsp_get_tablet_info(bt_msg_reader *r, tsp_tablet_info *ti)
{
    memset(ti, 0, sizeof *ti);
    tsp_get_tablet(r, &ti->tablet);
    get_varints(r, ti, tablet_info_counters, N_OF(tablet_info_counters));
    return zero_on_error(ti, sizeof *ti, bt_msg_reader_status(r));
}

/* ---- load answer ----------------------------------------------------------------- */

void tsp_put_load_answer(bt_msg_writer *w, const tsp_load_answer *a)
{
    bt_msg_put_varint(w, a->state);
    if (a->state != TSP_LOAD_STATE_SPLIT) return;
    bt_msg_put_bytes(w, a->mid, a->mid_len);
    tsp_put_tablet(w, &a->left);
    tsp_put_tablet(w, &a->right);
}

int tsp_get_load_answer(bt_msg_reader *r, tsp_load_answer *a)
{
    memset(a, 0, sizeof *a);
    if (bt_msg_remaining(r) == 0 && !bt_msg_reader_status(r)) return BT_OK; /* older server */
    get_enum(r, TSP_LOAD_STATE_SPLIT, "load state", &a->state);
    if (!bt_msg_reader_status(r) && a->state == TSP_LOAD_STATE_SPLIT) {
        bt_msg_get_bytes(r, &a->mid, &a->mid_len);
        if (!bt_msg_reader_status(r)) tsp_get_tablet(r, &a->left);
        if (!bt_msg_reader_status(r)) tsp_get_tablet(r, &a->right);
    }
    return zero_on_error(a, sizeof *a, bt_msg_reader_status(r));
}

/* ---- schema -------------------------------------------------------------------- */

static void put_name(bt_msg_writer *w, const char name[TS_MAX_NAME + 1])
{
    bt_msg_put_bytes(w, name, strnlen(name, TS_MAX_NAME + 1));
}

/* A name copied into name[TS_MAX_NAME + 1]; ts_schema_validate checks the rest. */
static int get_name(bt_msg_reader *r, char name[TS_MAX_NAME + 1])
{
    const uint8_t *p;
    size_t n;
    int rc = bt_msg_get_bytes(r, &p, &n);
    if (rc) return rc;
    if (n > TS_MAX_NAME || memchr(p, '\0', n))
        return reject(r, BT_EINVAL, "schema name of %zu bytes: at most %d, no NUL byte", n,
                      TS_MAX_NAME);
    memcpy(name, p, n);
    name[n] = '\0';
    return BT_OK;
}

static void put_group(bt_msg_writer *w, const void *entry)
{
    const ts_locality_group *g = entry;
    put_name(w, g->name);
    bt_msg_put_varint(w, (g->compress ? GROUP_COMPRESS : 0u) |
                             (g->in_memory ? GROUP_IN_MEMORY : 0u));
    bt_msg_put_varint(w, (uint64_t)g->bloom);
    bt_msg_put_varint(w, g->block_size);
}

static int get_group(bt_msg_reader *r, void *entry)
{
    ts_locality_group *g = entry;
    uint64_t flags, bloom;
    get_name(r, g->name);
    get_enum(r, GROUP_COMPRESS | GROUP_IN_MEMORY, "locality group flags", &flags);
    get_enum(r, TS_BLOOM_ROW_COLUMN, "bloom setting", &bloom);
    bt_msg_get_varint32(r, &g->block_size);
    g->compress = flags & GROUP_COMPRESS;
    g->in_memory = flags & GROUP_IN_MEMORY;
    g->bloom = (ts_bloom)bloom;
    return bt_msg_reader_status(r);
}

static void put_family(bt_msg_writer *w, const void *entry)
{
    const ts_family *f = entry;
    put_name(w, f->name);
    bt_msg_put_varint(w, f->max_versions);
    put_i64(w, f->max_age_us);
    bt_msg_put_varint(w, f->gc_intersection);
    bt_msg_put_varint(w, (uint64_t)f->group);
}

static int get_family(bt_msg_reader *r, void *entry)
{
    ts_family *f = entry;
    uint64_t inter, group;
    get_name(r, f->name);
    bt_msg_get_varint32(r, &f->max_versions);
    f->max_age_us = get_i64(r);
    get_enum(r, 1, "gc_intersection", &inter);
    /* the index is checked against n_groups by ts_schema_validate */
    get_enum(r, TS_MAX_GROUPS - 1, "family locality group", &group);
    f->gc_intersection = inter;
    f->group = (int)group;
    return bt_msg_reader_status(r);
}

void tsp_put_schema(bt_msg_writer *w, const ts_schema *s)
{
    put_list(w, s->groups, int_count(s->n_groups), sizeof *s->groups, put_group);
    put_list(w, s->families, int_count(s->n_families), sizeof *s->families, put_family);
}

int tsp_get_schema(bt_msg_reader *r, ts_schema *s)
{
    size_t ng, nf;
    memset(s, 0, sizeof *s);
    if (!get_count(r, TS_MAX_GROUPS, MIN_GROUP, "locality groups", &ng) && ng == 0)
        reject(r, BT_EINVAL, "a schema needs at least one locality group");
    get_entries(r, s->groups, ng, sizeof *s->groups, get_group);
    get_count(r, TS_MAX_FAMILIES, MIN_FAMILY, "families", &nf);
    get_entries(r, s->families, nf, sizeof *s->families, get_family);
    s->n_groups = (int)ng;
    s->n_families = (int)nf;
    int rc = bt_msg_reader_status(r);
    if (!rc && (rc = ts_schema_validate(s))) r->err = rc;
    return zero_on_error(s, sizeof *s, rc);
}

/* ---- mutations ----------------------------------------------------------------- */

static void put_mutation(bt_msg_writer *w, const void *entry)
{
    const ts_mutation *m = entry;
    bt_msg_put_varint(w, (uint64_t)m->type);
    bt_msg_put_bytes(w, m->family, m->family_len);
    bt_msg_put_bytes(w, m->qualifier, m->qualifier_len);
    put_i64(w, m->timestamp);
    put_i64(w, m->ts_from);
    put_i64(w, m->ts_to);
    bt_msg_put_bytes(w, m->value, m->value_len);
}

static int get_mutation(bt_msg_reader *r, void *entry)
{
    ts_mutation *m = entry;
    uint64_t type;
    get_enum(r, TS_DELETE_ROW, "mutation type", &type);
    m->type = (ts_mutation_type)type;
    get_chars(r, &m->family, &m->family_len);
    bt_msg_get_bytes(r, &m->qualifier, &m->qualifier_len);
    m->timestamp = get_i64(r);
    m->ts_from = get_i64(r);
    m->ts_to = get_i64(r);
    bt_msg_get_bytes(r, &m->value, &m->value_len);
    return bt_msg_reader_status(r);
}

void tsp_put_mutations(bt_msg_writer *w, const ts_mutation *m, int n)
{
    put_list(w, m, int_count(n), sizeof *m, put_mutation);
}

int tsp_get_mutations(bt_msg_reader *r, ts_mutation **muts, int *n)
{
    void *a;
    size_t count;
    int rc = get_list(r, TSP_MAX_MUTATIONS, MIN_MUTATION, "mutations", sizeof **muts, get_mutation,
                      &a, &count);
    *muts = a;
    *n = (int)count;
    return rc;
}

/* ---- filters ------------------------------------------------------------------- */

static void put_column(bt_msg_writer *w, const void *entry)
{
    const ts_column_ref *c = entry;
    bt_msg_put_bytes(w, c->family, c->family_len);
    bt_msg_put_varint(w, c->qualifier != NULL);
    bt_msg_put_bytes(w, c->qualifier, c->qualifier ? c->qualifier_len : 0);
}

static int get_column(bt_msg_reader *r, void *entry)
{
    ts_column_ref *c = entry;
    uint64_t has_qualifier;
    get_chars(r, &c->family, &c->family_len);
    get_enum(r, 1, "column has_qualifier", &has_qualifier);
    bt_msg_get_bytes(r, &c->qualifier, &c->qualifier_len);
    if (bt_msg_reader_status(r) || has_qualifier) return bt_msg_reader_status(r);
    if (c->qualifier_len)
        return reject(r, BT_EINVAL, "a whole-family column carries %zu qualifier bytes",
                      c->qualifier_len);
    c->qualifier = NULL; /* the whole family */
    return BT_OK;
}

void tsp_put_filter(bt_msg_writer *w, const ts_read_options *o)
{
    static const ts_read_options none;
    if (!o) o = &none;
    bt_msg_put_varint(w, (o->strip_value ? FILTER_STRIP : 0u) |
                             (o->has_value_range ? FILTER_VALUE_RANGE : 0u));
    bt_msg_put_bytes(w, o->start_row, o->start_len);
    bt_msg_put_bytes(w, o->end_row, o->end_len);
    bt_msg_put_bytes(w, o->prefix, o->prefix_len);
    put_list(w, o->columns, int_count(o->n_columns), sizeof *o->columns, put_column);
    bt_msg_put_bytes(w, o->range_family, o->range_family_len);
    bt_msg_put_bytes(w, o->qual_from, o->qual_from_len);
    bt_msg_put_bytes(w, o->qual_to, o->qual_to_len);
    put_i64(w, o->ts_from);
    put_i64(w, o->ts_to);
    bt_msg_put_bytes(w, o->value_from, o->value_from_len);
    bt_msg_put_bytes(w, o->value_to, o->value_to_len);
    bt_msg_put_varint(w, o->versions);
    bt_msg_put_varint(w, o->cells_per_row);
    bt_msg_put_varint(w, o->row_limit);
}

int tsp_get_filter(bt_msg_reader *r, ts_read_options *o, ts_column_ref **cols)
{
    uint64_t flags;
    void *a;
    size_t n;
    memset(o, 0, sizeof *o);
    get_enum(r, FILTER_STRIP | FILTER_VALUE_RANGE, "filter flags", &flags);
    o->strip_value = flags & FILTER_STRIP;
    o->has_value_range = flags & FILTER_VALUE_RANGE;
    bt_msg_get_bytes(r, &o->start_row, &o->start_len);
    bt_msg_get_bytes(r, &o->end_row, &o->end_len);
    bt_msg_get_bytes(r, &o->prefix, &o->prefix_len);
    get_list(r, TSP_MAX_COLUMNS, MIN_COLUMN, "columns", sizeof **cols, get_column, &a, &n);
    o->columns = *cols = a;
    o->n_columns = (int)n;
    get_chars(r, &o->range_family, &o->range_family_len);
    bt_msg_get_bytes(r, &o->qual_from, &o->qual_from_len);
    bt_msg_get_bytes(r, &o->qual_to, &o->qual_to_len);
    o->ts_from = get_i64(r);
    o->ts_to = get_i64(r);
    bt_msg_get_bytes(r, &o->value_from, &o->value_from_len);
    bt_msg_get_bytes(r, &o->value_to, &o->value_to_len);
    bt_msg_get_varint32(r, &o->versions);
    bt_msg_get_varint32(r, &o->cells_per_row);
    bt_msg_get_varint(r, &o->row_limit);
    int rc = bt_msg_reader_status(r);
    if (rc) {
        free(*cols);
        *cols = NULL;
    }
    return zero_on_error(o, sizeof *o, rc);
}

/* ---- rows ---------------------------------------------------------------------- */

static void put_cell(bt_msg_writer *w, const void *entry)
{
    const ts_cell *c = entry;
    bt_msg_put_bytes(w, c->family, c->family_len);
    bt_msg_put_bytes(w, c->qualifier, c->qualifier_len);
    put_i64(w, c->timestamp);
    bt_msg_put_bytes(w, c->value, c->value_len);
}

static int get_cell(bt_msg_reader *r, void *entry)
{
    ts_cell *c = entry;
    get_chars(r, &c->family, &c->family_len);
    bt_msg_get_bytes(r, &c->qualifier, &c->qualifier_len);
    c->timestamp = get_i64(r);
    bt_msg_get_bytes(r, &c->value, &c->value_len);
    return bt_msg_reader_status(r);
}

void tsp_put_row(bt_msg_writer *w, const ts_row *row)
{
    bt_msg_put_bytes(w, row->key, row->key_len);
    put_list(w, row->cells, row->n_cells, sizeof *row->cells, put_cell);
}

int tsp_get_row(bt_msg_reader *r, ts_row *row)
{
    void *cells;
    memset(row, 0, sizeof *row);
    bt_msg_get_bytes(r, &row->key, &row->key_len);
    get_list(r, UINT64_MAX, MIN_CELL, "cells", sizeof *row->cells, get_cell, &cells, &row->n_cells);
    row->cells = cells;
    int rc = bt_msg_reader_status(r);
    if (rc) tsp_row_release(row);
    return rc;
}

void tsp_row_release(ts_row *row)
{
    free((void *)row->cells);
    memset(row, 0, sizeof *row);
}

/* ---- scan batches -------------------------------------------------------------- */

void tsp_put_scan_header(bt_msg_writer *w, uint64_t scanner_id, bool done)
{
    bt_msg_put_varint(w, scanner_id);
    bt_msg_put_varint(w, done);
}

int tsp_get_scan_header(bt_msg_reader *r, uint64_t *scanner_id, bool *done)
{
    uint64_t d;
    bt_msg_get_varint(r, scanner_id);
    get_enum(r, 1, "scan done flag", &d);
    int rc = bt_msg_reader_status(r);
    if (rc) *scanner_id = 0;
    *done = d != 0; /* get_enum zeroes d on failure */
    return rc;
}

/* ---- read-modify-write --------------------------------------------------------- */

static void put_rule(bt_msg_writer *w, const void *entry)
{
    const tsp_rmw_rule *u = entry;
    bt_msg_put_bytes(w, u->family, u->family_len);
    bt_msg_put_bytes(w, u->qualifier, u->qualifier_len);
    bt_msg_put_varint(w, (uint64_t)u->kind);
    bt_msg_put_bytes(w, u->append, u->append_len);
    put_i64(w, u->increment);
}

static int get_rule(bt_msg_reader *r, void *entry)
{
    tsp_rmw_rule *u = entry;
    uint64_t kind;
    get_chars(r, &u->family, &u->family_len);
    bt_msg_get_bytes(r, &u->qualifier, &u->qualifier_len);
    get_enum(r, TSP_RMW_INCREMENT, "read-modify-write kind", &kind);
    u->kind = (tsp_rmw_kind)kind;
    bt_msg_get_bytes(r, &u->append, &u->append_len);
    u->increment = get_i64(r);
    return bt_msg_reader_status(r);
}

void tsp_put_rmw_rules(bt_msg_writer *w, const tsp_rmw_rule *rules, int n)
{
    put_list(w, rules, int_count(n), sizeof *rules, put_rule);
}

int tsp_get_rmw_rules(bt_msg_reader *r, tsp_rmw_rule **rules, int *n)
{
    void *a;
    size_t count;
    int rc = get_list(r, TSP_MAX_MUTATIONS, MIN_RULE, "read-modify-write rules", sizeof **rules,
                      get_rule, &a, &count);
    if (!rc && count == 0) rc = reject(r, BT_EINVAL, "read-modify-write needs at least one rule");
    *rules = a;
    *n = (int)count;
    return rc;
}

/* ---- batch results ------------------------------------------------------------- */

static void put_status_code(bt_msg_writer *w, const void *entry)
{
    bt_msg_put_varint(w, (uint64_t)-(int64_t)*(const int *)entry);
}

static int get_status_code(bt_msg_reader *r, void *entry)
{
    uint64_t v;
    get_enum(r, INT_MAX, "status code", &v);
    *(int *)entry = -(int)v;
    return bt_msg_reader_status(r);
}

void tsp_put_batch_result(bt_msg_writer *w, const int *status, size_t n, const char *detail)
{
    put_list(w, status, n, sizeof *status, put_status_code);
    bt_msg_put_string(w, detail ? detail : "");
}

int tsp_get_batch_result(bt_msg_reader *r, int **status, size_t *n, const uint8_t **detail,
                         size_t *detail_len)
{
    void *a;
    get_list(r, UINT64_MAX, MIN_STATUS, "statuses", sizeof **status, get_status_code, &a, n);
    bt_msg_get_bytes(r, detail, detail_len);
    int rc = bt_msg_reader_status(r);
    if (rc) {
        free(a);
        a = NULL;
        *n = 0;
    }
    *status = a;
    return rc;
}

/* ---- server status ------------------------------------------------------------- */

static const size_t status_counters[] = {
    offsetof(tsp_status, n_tablets),     offsetof(tsp_status, memtable_bytes),
    offsetof(tsp_status, sstable_bytes), offsetof(tsp_status, reads),
    offsetof(tsp_status, writes),        offsetof(tsp_status, scanned_rows),
    offsetof(tsp_status, log_appends),   offsetof(tsp_status, log_syncs),
    offsetof(tsp_status, connections),   offsetof(tsp_status, durability),
    offsetof(tsp_status, lease_ms_left), offsetof(tsp_status, open_scanners),
};

void tsp_put_status(bt_msg_writer *w, const tsp_status *s)
{
    bt_msg_put_bytes(w, s->id, s->id_len);
    bt_msg_put_bytes(w, s->address, s->address_len);
    put_i64(w, s->start_time_us);
    put_varints(w, s, status_counters, N_OF(status_counters));
    bt_msg_put_varint(w, s->compaction_queue); /* appended later */
}

int tsp_get_status(bt_msg_reader *r, tsp_status *s)
{
    memset(s, 0, sizeof *s);
    get_chars(r, &s->id, &s->id_len);
    get_chars(r, &s->address, &s->address_len);
    s->start_time_us = get_i64(r);
    get_varints(r, s, status_counters, N_OF(status_counters));
    if (bt_msg_reader_status(r) == BT_OK && bt_msg_remaining(r)) bt_msg_get_varint(r, &s->compaction_queue);
    return zero_on_error(s, sizeof *s, bt_msg_reader_status(r));
}

/* client/meta.c: METADATA keys and rows, /bt/root, schema JSON, server files
 * and tablet ids (client/meta.h). */
#include "client/meta.h"
#include "sstable/iter.h" /* sst_key_cmp: bytewise order */
#include "common/status.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

bool bt_valid_name(const char *s, size_t n)
{
    if (!s || n == 0 || n > TS_MAX_NAME) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static bool is_meta(const char *t, size_t n)
{
    return n == strlen(BT_META_NAME) && memcmp(t, BT_META_NAME, n) == 0;
}

int bt_meta_key(bt_buf *out, const char *table, size_t tl, const uint8_t *end, size_t el)
{
    if (is_meta(table, tl)) tl = 0;
    static const uint8_t bounded[2] = { 0x00, 0x01 }, unbounded[2] = { 0x00, 0xff };
    int rc = bt_buf_append(out, table, tl);
    if (!rc) rc = bt_buf_append(out, el ? bounded : unbounded, 2);
    if (!rc && el) rc = bt_buf_append(out, end, el);
    return rc;
}

int bt_meta_lookup_key(bt_buf *out, const char *table, size_t tl, const uint8_t *row, size_t rl)
{
    /* The tablet [s, e) holding row r is described by key(e) > name 00 01 r,
     * and every earlier tablet's key(e') <= it (e' <= r).  For the empty row
     * (the table's first tablet) "name 00 01" itself works the same way. */
    if (is_meta(table, tl)) tl = 0;
    static const uint8_t bounded[2] = { 0x00, 0x01 };
    int rc = bt_buf_append(out, table, tl);
    if (!rc) rc = bt_buf_append(out, bounded, 2);
    if (!rc && rl) rc = bt_buf_append(out, row, rl);
    return rc;
}

int bt_meta_key_parse(const uint8_t *k, size_t n, const char **table, size_t *tl,
                      const uint8_t **end, size_t *el)
{
    const uint8_t *z = memchr(k, 0, n);
    if (!z || (size_t)(z - k) + 2 > n) return bt_err(BT_ECORRUPT, "malformed METADATA key");
    size_t nl = (size_t)(z - k);
    if (nl == 0) {
        *table = BT_META_NAME;
        *tl = strlen(BT_META_NAME);
    } else {
        if (!bt_valid_name((const char *)k, nl)) return bt_err(BT_ECORRUPT, "malformed METADATA key");
        *table = (const char *)k;
        *tl = nl;
    }
    if (z[1] == 0xff) {
        if (nl + 2 != n) return bt_err(BT_ECORRUPT, "malformed METADATA key");
        *end = NULL;
        *el = 0;
        return BT_OK;
    }
    if (z[1] != 0x01 || nl + 2 == n) return bt_err(BT_ECORRUPT, "malformed METADATA key");
    *end = z + 2;
    *el = n - nl - 2;
    return BT_OK;
}

/* ---- rows ---------------------------------------------------------------------- */

static bool cell_is(const ts_cell *c, const char *q)
{
    return c->family_len == strlen(BT_META_FAMILY) && !memcmp(c->family, BT_META_FAMILY, c->family_len) &&
           c->qualifier_len == strlen(q) && !memcmp(c->qualifier, q, c->qualifier_len);
}

static char *dup_n(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        if (n) memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

void bt_meta_entry_free(bt_meta_entry *e)
{
    if (!e) return;
    bt_buf_free(&e->start);
    bt_buf_free(&e->end);
    free(e->dir);
    free(e->server);
    free(e->server_id);
    memset(e, 0, sizeof *e);
}

int bt_meta_entry_decode(const ts_row *row, bt_meta_entry *e)
{
    memset(e, 0, sizeof *e);
    const char *t;
    size_t tl;
    const uint8_t *end;
    size_t el;
    int rc = bt_meta_key_parse(row->key, row->key_len, &t, &tl, &end, &el);
    if (rc) return rc;
    memcpy(e->table, t, tl);
    e->table[tl] = 0;
    if (el && bt_buf_append(&e->end, end, el)) return BT_ENOMEM;
    bool have_id = false;
    for (size_t i = 0; i < row->n_cells && !rc; i++) {
        const ts_cell *c = &row->cells[i];
        if (cell_is(c, "id")) {
            char buf[32];
            if (c->value_len == 0 || c->value_len >= sizeof buf) { rc = BT_ECORRUPT; break; }
            memcpy(buf, c->value, c->value_len);
            buf[c->value_len] = 0;
            char *ep;
            errno = 0;
            unsigned long long v = strtoull(buf, &ep, 10);
            if (*ep || errno || v == 0) { rc = BT_ECORRUPT; break; }
            e->id = v;
            have_id = true;
        } else if (cell_is(c, "start")) {
            if (bt_buf_append(&e->start, c->value, c->value_len)) rc = BT_ENOMEM;
        } else if (cell_is(c, "dir")) {
            if (!(e->dir = dup_n(c->value, c->value_len))) rc = BT_ENOMEM;
        } else if (cell_is(c, "server")) {
            if (!(e->server = dup_n(c->value, c->value_len))) rc = BT_ENOMEM;
        } else if (cell_is(c, "server_id")) {
            if (!(e->server_id = dup_n(c->value, c->value_len))) rc = BT_ENOMEM;
        } else if (cell_is(c, "state")) {
            e->is_new = c->value_len == 3 && !memcmp(c->value, "new", 3);
        }
    }
    if (!rc && (!have_id || !e->dir)) rc = BT_ECORRUPT;
    if (!rc && !e->server) rc = (e->server = strdup("")) ? BT_OK : BT_ENOMEM;
    if (!rc && !e->server_id) rc = (e->server_id = strdup("")) ? BT_OK : BT_ENOMEM;
    if (rc) {
        bt_meta_entry_free(e);
        if (rc == BT_ECORRUPT) return bt_err(rc, "METADATA row of table %.*s lacks a valid loc:id or loc:dir", (int)tl, t);
    }
    return rc;
}

int bt_meta_entry_copy(bt_meta_entry *d, const bt_meta_entry *s)
{
    memset(d, 0, sizeof *d);
    memcpy(d->table, s->table, sizeof d->table);
    d->id = s->id;
    d->is_new = s->is_new;
    int rc = bt_buf_append(&d->start, s->start.data, s->start.len);
    if (!rc) rc = bt_buf_append(&d->end, s->end.data, s->end.len);
    d->dir = strdup(s->dir ? s->dir : "");
    d->server = strdup(s->server ? s->server : "");
    d->server_id = strdup(s->server_id ? s->server_id : "");
    if (rc || !d->dir || !d->server || !d->server_id) {
        bt_meta_entry_free(d);
        return BT_ENOMEM;
    }
    return BT_OK;
}

bool bt_meta_entry_contains(const bt_meta_entry *e, const uint8_t *row, size_t n)
{
    if (sst_key_cmp(row, n, e->start.data, e->start.len) < 0) return false;
    return e->end.len == 0 || sst_key_cmp(row, n, e->end.data, e->end.len) < 0;
}

static ts_mutation set_cell(const char *q, const void *v, size_t n)
{
    return (ts_mutation){ .type = TS_SET_CELL, .family = BT_META_FAMILY, .family_len = strlen(BT_META_FAMILY),
                          .qualifier = (const uint8_t *)q, .qualifier_len = strlen(q),
                          .timestamp = TS_SERVER_TIME, .value = v, .value_len = n };
}

int bt_meta_entry_mutations(const bt_meta_entry *e, bt_buf *key, bt_buf *scratch, ts_mutation *m)
{
    bt_buf_clear(key);
    bt_buf_clear(scratch);
    int rc = bt_meta_key(key, e->table, strlen(e->table), e->end.data, e->end.len);
    if (rc) return rc;
    if (bt_buf_reserve(scratch, 32)) return BT_ENOMEM;
    int idn = snprintf((char *)scratch->data, 32, "%" PRIu64, e->id);
    scratch->len = (size_t)idn;
    const char *server = e->server ? e->server : "", *sid = e->server_id ? e->server_id : "";
    int n = 0;
    m[n++] = set_cell("id", scratch->data, (size_t)idn);
    m[n++] = set_cell("start", e->start.data, e->start.len);
    m[n++] = set_cell("dir", e->dir, strlen(e->dir));
    m[n++] = set_cell("server", server, strlen(server));
    m[n++] = set_cell("server_id", sid, strlen(sid));
    m[n++] = set_cell("state", e->is_new ? "new" : "ok", e->is_new ? 3 : 2);
    return n;
}

void bt_meta_schema(ts_schema *s)
{
    ts_schema_init(s);
    ts_schema_add_family(s, BT_META_FAMILY, 1, 0);
    s->groups[0].in_memory = true;
    s->groups[0].bloom = TS_BLOOM_ROW;
}

/* ---- /bt/root ------------------------------------------------------------------------ */

int bt_root_encode(const bt_meta_entry *r, char **json)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRIu64, r->id);
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "id", id) || !cJSON_AddStringToObject(o, "dir", r->dir) ||
        !cJSON_AddStringToObject(o, "server", r->server ? r->server : "") ||
        !cJSON_AddStringToObject(o, "server_id", r->server_id ? r->server_id : "")) {
        cJSON_Delete(o);
        return BT_ENOMEM;
    }
    *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return *json ? BT_OK : BT_ENOMEM;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int bt_root_decode(const uint8_t *data, size_t n, bt_meta_entry *r)
{
    memset(r, 0, sizeof *r);
    cJSON *o = cJSON_ParseWithLength((const char *)data, n);
    const char *id = o ? jstr(o, "id") : NULL, *dir = o ? jstr(o, "dir") : NULL;
    const char *sv = o ? jstr(o, "server") : NULL, *sid = o ? jstr(o, "server_id") : NULL;
    int rc = BT_OK;
    char *ep = NULL;
    if (!id || !dir || !sv || !sid || !(r->id = strtoull(id, &ep, 10)) || *ep) {
        rc = bt_err(BT_ECORRUPT, "%s does not hold a valid root tablet location", BT_LK_ROOT);
    } else {
        strcpy(r->table, BT_META_NAME);
        r->dir = strdup(dir);
        r->server = strdup(sv);
        r->server_id = strdup(sid);
        if (!r->dir || !r->server || !r->server_id ||
            bt_buf_append(&r->end, BT_META_ROOT_END, BT_META_ROOT_END_LEN))
            rc = BT_ENOMEM;
    }
    cJSON_Delete(o);
    if (rc) bt_meta_entry_free(r);
    return rc;
}

/* ---- schema JSON ------------------------------------------------------------------- */

static const char *bloom_name(ts_bloom b)
{
    return b == TS_BLOOM_NONE ? "none" : b == TS_BLOOM_ROW_COLUMN ? "row_column" : "row";
}

int bt_schema_to_json(const char *table, const ts_schema *s, char **json)
{
    cJSON *o = cJSON_CreateObject(), *fams = NULL, *groups = NULL;
    bool ok = o && cJSON_AddStringToObject(o, "name", table) && (fams = cJSON_AddObjectToObject(o, "families")) &&
              (groups = cJSON_AddObjectToObject(o, "groups"));
    for (int i = 0; ok && i < s->n_families; i++) {
        const ts_family *f = &s->families[i];
        cJSON *fo = cJSON_AddObjectToObject(fams, f->name);
        ok = fo && cJSON_AddNumberToObject(fo, "max_versions", f->max_versions) &&
             cJSON_AddNumberToObject(fo, "max_age_us", (double)f->max_age_us) &&
             cJSON_AddStringToObject(fo, "gc", f->gc_intersection ? "intersection" : "union") &&
             cJSON_AddStringToObject(fo, "group", s->groups[f->group].name);
    }
    for (int i = 0; ok && i < s->n_groups; i++) {
        const ts_locality_group *g = &s->groups[i];
        cJSON *go = cJSON_AddObjectToObject(groups, g->name);
        ok = go && cJSON_AddStringToObject(go, "compression", g->compress ? "snappy" : "none") &&
             cJSON_AddBoolToObject(go, "in_memory", g->in_memory) &&
             cJSON_AddStringToObject(go, "bloom", bloom_name(g->bloom)) &&
             cJSON_AddNumberToObject(go, "block_size", g->block_size);
    }
    *json = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return *json ? BT_OK : BT_ENOMEM;
}

static int num_field(const cJSON *o, const char *k, double lo, double hi, double *out, const char *what)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return BT_OK; /* keep the default */
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi)
        return bt_err(BT_EINVAL, "schema: %s of %s must be a number in [%.0f, %.0f]", k, what, lo, hi);
    *out = v->valuedouble;
    return BT_OK;
}

int bt_schema_from_json(const uint8_t *data, size_t n, ts_schema *s)
{
    ts_schema_init(s);
    cJSON *o = cJSON_ParseWithLength((const char *)data, n);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return bt_err(BT_EINVAL, "schema: not a JSON object");
    }
    int rc = BT_OK;
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(o, "groups");
    const cJSON *fams = cJSON_GetObjectItemCaseSensitive(o, "families");
    const cJSON *it;
    if (groups && !cJSON_IsObject(groups)) rc = bt_err(BT_EINVAL, "schema: \"groups\" must be an object");
    if (!rc && fams && !cJSON_IsObject(fams)) rc = bt_err(BT_EINVAL, "schema: \"families\" must be an object");
    cJSON_ArrayForEach(it, groups) {
        if (rc) break;
        if (!cJSON_IsObject(it) || !bt_valid_name(it->string, strlen(it->string))) {
            rc = bt_err(BT_EINVAL, "schema: bad locality group \"%s\"", it->string);
            break;
        }
        int gi = -1;
        for (int i = 0; i < s->n_groups; i++)
            if (!strcmp(s->groups[i].name, it->string)) gi = i;
        if (gi < 0) {
            if (s->n_groups >= TS_MAX_GROUPS) { rc = bt_err(BT_EINVAL, "schema: too many locality groups"); break; }
            gi = s->n_groups++;
            ts_locality_group *g = &s->groups[gi];
            memset(g, 0, sizeof *g);
            strcpy(g->name, it->string);
            g->compress = true;
            g->bloom = TS_BLOOM_ROW;
            g->block_size = 4096;
        }
        ts_locality_group *g = &s->groups[gi];
        const char *c = jstr(it, "compression"), *b = jstr(it, "bloom");
        const cJSON *im = cJSON_GetObjectItemCaseSensitive(it, "in_memory");
        double bs = g->block_size;
        if (c && strcmp(c, "snappy") && strcmp(c, "none")) rc = bt_err(BT_EINVAL, "schema: compression must be snappy or none");
        if (b && strcmp(b, "row") && strcmp(b, "row_column") && strcmp(b, "none")) rc = bt_err(BT_EINVAL, "schema: bloom must be row, row_column or none");
        if (im && !cJSON_IsBool(im)) rc = bt_err(BT_EINVAL, "schema: in_memory must be true or false");
        if (!rc) rc = num_field(it, "block_size", 256, 1 << 24, &bs, it->string);
        if (rc) break;
        if (c) g->compress = !strcmp(c, "snappy");
        if (b) g->bloom = !strcmp(b, "none") ? TS_BLOOM_NONE : !strcmp(b, "row") ? TS_BLOOM_ROW : TS_BLOOM_ROW_COLUMN;
        if (im) g->in_memory = cJSON_IsTrue(im);
        g->block_size = (uint32_t)bs;
    }
    cJSON_ArrayForEach(it, fams) {
        if (rc) break;
        if (!cJSON_IsObject(it)) { rc = bt_err(BT_EINVAL, "schema: family \"%s\" must be an object", it->string); break; }
        double mv = 0, age = 0;
        rc = num_field(it, "max_versions", 0, 4294967295.0, &mv, it->string);
        if (!rc) rc = num_field(it, "max_age_us", 0, 9.2e18, &age, it->string);
        if (!rc) rc = ts_schema_add_family(s, it->string, (uint32_t)mv, (int64_t)age);
        if (rc) break;
        ts_family *f = &s->families[s->n_families - 1];
        const char *gc = jstr(it, "gc"), *grp = jstr(it, "group");
        if (gc && strcmp(gc, "union") && strcmp(gc, "intersection")) { rc = bt_err(BT_EINVAL, "schema: gc must be union or intersection"); break; }
        f->gc_intersection = gc && !strcmp(gc, "intersection");
        if (grp) {
            int gi = -1;
            for (int i = 0; i < s->n_groups; i++)
                if (!strcmp(s->groups[i].name, grp)) gi = i;
            if (gi < 0) { rc = bt_err(BT_EINVAL, "schema: family %s names unknown group %s", it->string, grp); break; }
            f->group = gi;
        }
    }
    cJSON_Delete(o);
    if (!rc) rc = ts_schema_validate(s);
    return rc;
}

/* ---- server files, ids, dirs ------------------------------------------------------------- */

int bt_server_file_encode(const char *addr, const char *log_dir, char **out)
{
    size_t n = strlen(addr) + strlen(log_dir) + 3;
    if (!(*out = malloc(n))) return BT_ENOMEM;
    snprintf(*out, n, "%s\n%s\n", addr, log_dir);
    return BT_OK;
}

static int copy_line(const uint8_t **p, const uint8_t *end, char *dst, size_t cap)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    if (n >= cap || memchr(*p, 0, n)) return BT_EINVAL;
    memcpy(dst, *p, n);
    dst[n] = 0;
    *p = nl ? nl + 1 : end;
    return BT_OK;
}

int bt_server_file_parse(const uint8_t *data, size_t n, char *addr, size_t acap, char *log, size_t lcap)
{
    const uint8_t *p = data, *end = data + n;
    if (copy_line(&p, end, addr, acap) || !*addr || copy_line(&p, end, log, lcap))
        return bt_err(BT_EINVAL, "malformed server file");
    return BT_OK;
}

uint64_t bt_new_tablet_id(void)
{
    uint64_t v = 0;
    while (v == 0) {
        if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            v = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)rand() << 21);
        }
        v &= INT64_MAX;
    }
    return v;
}

void bt_tablet_dir(char *buf, size_t cap, const char *table, uint64_t id)
{
    snprintf(buf, cap, "tables/%s/%016" PRIx64, table, id);
}

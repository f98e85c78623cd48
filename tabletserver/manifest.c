/* tabletserver/manifest.c: encode, decode and atomically replace a tablet's
 * MANIFEST.  Layout (all varints unless noted), then an XXH64 of everything
 * before it as fixed64:
 *   fixed32 magic, fixed32 version, tablet_id, lenbytes start_row,
 *   lenbytes end_row, schema, flushed_seq, last_seq, next_file, n_files,
 *   n_files x { lenbytes path, group, size, max_seq, inherited, lenbytes lo,
 *   lenbytes hi, global_seq (version 2) }
 * Version 1 manifests (without global_seq) are read as global_seq 0.
 */
#include "tabletserver/manifest.h"
#include "common/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static int encode(const ts_manifest *m, bt_buf *b)
{
    int rc = bt_buf_put_fixed32(b, TS_MANIFEST_MAGIC);
    if (!rc) rc = bt_buf_put_fixed32(b, TS_MANIFEST_VERSION);
    if (!rc) rc = bt_buf_put_varint64(b, m->tablet_id);
    if (!rc) rc = bt_buf_put_lenbytes(b, m->start_row.data, m->start_row.len);
    if (!rc) rc = bt_buf_put_lenbytes(b, m->end_row.data, m->end_row.len);
    if (!rc) rc = ts_schema_encode(&m->schema, b);
    if (!rc) rc = bt_buf_put_varint64(b, m->flushed_seq);
    if (!rc) rc = bt_buf_put_varint64(b, m->last_seq);
    if (!rc) rc = bt_buf_put_varint64(b, m->next_file);
    if (!rc) rc = bt_buf_put_varint64(b, (uint64_t)m->n_files);
    for (int i = 0; !rc && i < m->n_files; i++) {
        const ts_file_meta *f = &m->files[i];
        rc = bt_buf_put_lenbytes(b, f->path, strlen(f->path));
        if (!rc) rc = bt_buf_put_varint64(b, (uint64_t)f->group);
        if (!rc) rc = bt_buf_put_varint64(b, f->size);
        if (!rc) rc = bt_buf_put_varint64(b, f->max_seq);
        if (!rc) rc = bt_buf_put_varint64(b, f->inherited);
        if (!rc) rc = bt_buf_put_lenbytes(b, f->lo.data, f->lo.len);
        if (!rc) rc = bt_buf_put_lenbytes(b, f->hi.data, f->hi.len);
        if (!rc) rc = bt_buf_put_varint64(b, f->global_seq);
    }
    if (!rc) rc = bt_buf_put_fixed64(b, XXH64(b->data, b->len, 0));
    return rc;
}

int ts_manifest_write(bt_env *env, const char *dir, const ts_manifest *m)
{
    bt_buf b = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    int rc = encode(m, &b);
    if (!rc) rc = bt_env_write_atomic(env, path, b.data, b.len);
    bt_buf_free(&b);
    return rc;
}

static int get_buf(const uint8_t **p, const uint8_t *end, bt_buf *out)
{
    const uint8_t *s;
    size_t n;
    if (bt_get_lenbytes(p, end, &s, &n)) return -1;
    return bt_buf_append(out, s, n) ? -1 : 0;
}

static int get_u64(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = bt_get_varint64(*p, end, v);
    if (!q) return -1;
    *p = q;
    return 0;
}

static int decode_file(const uint8_t **p, const uint8_t *end, int n_groups, uint32_t version, ts_file_meta *f)
{
    const uint8_t *s;
    size_t n;
    uint64_t group, inh;
    if (bt_get_lenbytes(p, end, &s, &n) || n == 0 || n > 4000) return -1;
    f->path = malloc(n + 1);
    if (!f->path) return -1;
    memcpy(f->path, s, n);
    f->path[n] = '\0';
    if (get_u64(p, end, &group) || group >= (uint64_t)n_groups || get_u64(p, end, &f->size) ||
        get_u64(p, end, &f->max_seq) || get_u64(p, end, &inh) || get_buf(p, end, &f->lo) ||
        get_buf(p, end, &f->hi) || (version >= 2 && get_u64(p, end, &f->global_seq)))
        return -1;
    f->group = (int)group;
    f->inherited = inh != 0;
    return 0;
}

static int decode(const uint8_t *data, size_t len, ts_manifest *m)
{
    if (len < 16) return -1;
    const uint8_t *end = data + len - 8;
    if (bt_get_fixed64(end) != XXH64(data, len - 8, 0)) return -1;
    uint32_t version = bt_get_fixed32(data + 4);
    if (bt_get_fixed32(data) != TS_MANIFEST_MAGIC || version < 1 || version > TS_MANIFEST_VERSION) return -1;
    const uint8_t *p = data + 8;
    uint64_t nf;
    if (get_u64(&p, end, &m->tablet_id) || get_buf(&p, end, &m->start_row) ||
        get_buf(&p, end, &m->end_row) || ts_schema_decode(&p, end, &m->schema) ||
        get_u64(&p, end, &m->flushed_seq) || get_u64(&p, end, &m->last_seq) ||
        get_u64(&p, end, &m->next_file) || get_u64(&p, end, &nf) || nf > 1000000)
        return -1;
    m->files = calloc(nf ? nf : 1, sizeof *m->files);
    if (!m->files) return -1;
    m->n_files = (int)nf;
    for (int i = 0; i < m->n_files; i++)
        if (decode_file(&p, end, m->schema.n_groups, version, &m->files[i])) return -1;
    return p == end ? 0 : -1;
}

int ts_manifest_read(bt_env *env, const char *dir, ts_manifest *m)
{
    char path[4096];
    uint8_t *data;
    size_t len;
    memset(m, 0, sizeof *m);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    int rc = bt_env_read_all(env, path, &data, &len);
    if (rc == BT_ENOTFOUND) return bt_err(BT_ENOTFOUND, "%s: no tablet manifest", path);
    if (rc) return rc;
    if (decode(data, len, m)) {
        free(data);
        ts_manifest_free(m);
        return bt_err(BT_ECORRUPT, "%s: manifest is damaged (checksum, magic or fields)", path);
    }
    free(data);
    return BT_OK;
}

void ts_file_meta_free(ts_file_meta *f)
{
    free(f->path);
    f->path = NULL;
    bt_buf_free(&f->lo);
    bt_buf_free(&f->hi);
}

int ts_file_meta_copy(ts_file_meta *dst, const ts_file_meta *src)
{
    memset(dst, 0, sizeof *dst);
    dst->path = strdup(src->path);
    dst->group = src->group;
    dst->size = src->size;
    dst->max_seq = src->max_seq;
    dst->inherited = src->inherited;
    dst->global_seq = src->global_seq;
    if (!dst->path || bt_buf_append(&dst->lo, src->lo.data, src->lo.len) ||
        bt_buf_append(&dst->hi, src->hi.data, src->hi.len)) {
        ts_file_meta_free(dst);
        return BT_ENOMEM;
    }
    return BT_OK;
}

void ts_manifest_free(ts_manifest *m)
{
    bt_buf_free(&m->start_row);
    bt_buf_free(&m->end_row);
    for (int i = 0; i < m->n_files; i++) ts_file_meta_free(&m->files[i]);
    free(m->files);
    m->files = NULL;
    m->n_files = 0;
}

/* ---- split marker ------------------------------------------------------------
 * fixed32 magic, fixed32 version, parent_id, lenbytes mid,
 * left { id, lenbytes dir, lenbytes start, lenbytes end }, right { same },
 * fixed64 XXH64 of everything before it. */

static int encode_child(bt_buf *b, const ts_split_child *c)
{
    int rc = bt_buf_put_varint64(b, c->id);
    if (!rc) rc = bt_buf_put_lenbytes(b, c->dir, c->dir ? strlen(c->dir) : 0);
    if (!rc) rc = bt_buf_put_lenbytes(b, c->start.data, c->start.len);
    if (!rc) rc = bt_buf_put_lenbytes(b, c->end.data, c->end.len);
    return rc;
}

int ts_split_marker_write(bt_env *env, const char *dir, const ts_split_marker *m)
{
    bt_buf b = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, TS_SPLIT_FILE);
    int rc = bt_buf_put_fixed32(&b, TS_SPLIT_MAGIC);
    if (!rc) rc = bt_buf_put_fixed32(&b, TS_SPLIT_VERSION);
    if (!rc) rc = bt_buf_put_varint64(&b, m->parent_id);
    if (!rc) rc = bt_buf_put_lenbytes(&b, m->mid.data, m->mid.len);
    if (!rc) rc = encode_child(&b, &m->left);
    if (!rc) rc = encode_child(&b, &m->right);
    if (!rc) rc = bt_buf_put_fixed64(&b, XXH64(b.data, b.len, 0));
    if (!rc) rc = bt_env_write_atomic(env, path, b.data, b.len);
    bt_buf_free(&b);
    return rc;
}

static int decode_child(const uint8_t **p, const uint8_t *end, ts_split_child *c)
{
    const uint8_t *s;
    size_t n;
    if (get_u64(p, end, &c->id) || bt_get_lenbytes(p, end, &s, &n) || n == 0 || n > 4000 ||
        memchr(s, '\0', n))
        return -1;
    if (!(c->dir = malloc(n + 1))) return -1;
    memcpy(c->dir, s, n);
    c->dir[n] = '\0';
    return get_buf(p, end, &c->start) || get_buf(p, end, &c->end) ? -1 : 0;
}

int ts_split_marker_read(bt_env *env, const char *dir, ts_split_marker *m)
{
    char path[4096];
    uint8_t *data;
    size_t len;
    memset(m, 0, sizeof *m);
    snprintf(path, sizeof path, "%s/%s", dir, TS_SPLIT_FILE);
    int rc = bt_env_read_all(env, path, &data, &len);
    if (rc == BT_ENOTFOUND) return bt_err(BT_ENOTFOUND, "%s: no split marker", path);
    if (rc) return rc;
    bool ok = len >= 16 && bt_get_fixed64(data + len - 8) == XXH64(data, len - 8, 0) &&
              bt_get_fixed32(data) == TS_SPLIT_MAGIC && bt_get_fixed32(data + 4) == TS_SPLIT_VERSION;
    if (ok) {
        const uint8_t *p = data + 8, *end = data + len - 8;
        ok = !get_u64(&p, end, &m->parent_id) && !get_buf(&p, end, &m->mid) &&
             !decode_child(&p, end, &m->left) && !decode_child(&p, end, &m->right) && p == end;
    }
    free(data);
    if (!ok) {
        ts_split_marker_free(m);
        return bt_err(BT_ECORRUPT, "%s: split marker is damaged (checksum, magic or fields)", path);
    }
    return BT_OK;
}

static void child_free(ts_split_child *c)
{
    free(c->dir);
    c->dir = NULL;
    bt_buf_free(&c->start);
    bt_buf_free(&c->end);
}

void ts_split_marker_free(ts_split_marker *m)
{
    bt_buf_free(&m->mid);
    child_free(&m->left);
    child_free(&m->right);
}

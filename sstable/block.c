/* sstable/block.c: block builder and bounds-checked block iterator.
 *
 * The encoding is described in block.h and docs/formats.md.  Hot paths (next
 * during a scan) avoid allocation: the current key is rebuilt in one buffer
 * that only grows, and values are returned as pointers into the block.
 */
#include "sstable/block.h"

#include "common/status.h"

#include <stdlib.h>

/* ---- builder ------------------------------------------------------------- */

void sst_block_builder_init(sst_block_builder *b, int restart_interval)
{
    memset(b, 0, sizeof *b);
    b->interval = restart_interval > 0 ? restart_interval : 1;
}

void sst_block_builder_free(sst_block_builder *b)
{
    bt_buf_free(&b->buf);
    bt_buf_free(&b->restarts);
    bt_buf_free(&b->last_key);
}

void sst_block_builder_reset(sst_block_builder *b)
{
    bt_buf_clear(&b->buf);
    bt_buf_clear(&b->restarts);
    bt_buf_clear(&b->last_key);
    b->counter = 0;
    b->entries = 0;
}

static size_t common_prefix(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t m = an < bn ? an : bn, i = 0;
    while (i < m && a[i] == b[i]) i++;
    return i;
}

int sst_block_builder_add(sst_block_builder *b, const uint8_t *key, size_t kn,
                          const uint8_t *val, size_t vn)
{
    size_t shared = 0;
    if (b->entries == 0 || b->counter >= b->interval) {
        /* A restart entry stores its whole key so seeks can bisect on it. */
        if (bt_buf_put_fixed32(&b->restarts, (uint32_t)b->buf.len)) return BT_ENOMEM;
        b->counter = 0;
    } else {
        shared = common_prefix(b->last_key.data, b->last_key.len, key, kn);
    }
    size_t ns = kn - shared;
    if (bt_buf_reserve(&b->buf, 3 * BT_MAX_VARINT32 + ns + vn)) return BT_ENOMEM;
    uint8_t *p = b->buf.data + b->buf.len;
    p = bt_put_varint32(p, (uint32_t)shared);
    p = bt_put_varint32(p, (uint32_t)ns);
    p = bt_put_varint32(p, (uint32_t)vn);
    if (ns) memcpy(p, key + shared, ns);
    p += ns;
    if (vn) memcpy(p, val, vn);
    p += vn;
    b->buf.len = (size_t)(p - b->buf.data);

    b->last_key.len = shared;
    if (bt_buf_append(&b->last_key, key + shared, ns)) return BT_ENOMEM;
    b->counter++;
    b->entries++;
    return BT_OK;
}

size_t sst_block_builder_size(const sst_block_builder *b)
{
    size_t restarts = b->restarts.len ? b->restarts.len : 4;
    return b->buf.len + restarts + 4;
}

int sst_block_builder_finish(sst_block_builder *b, const uint8_t **data, size_t *n)
{
    /* Even an empty block has restart 0 so readers can rely on it. */
    if (b->restarts.len == 0 && bt_buf_put_fixed32(&b->restarts, 0)) return BT_ENOMEM;
    if (bt_buf_append(&b->buf, b->restarts.data, b->restarts.len)) return BT_ENOMEM;
    if (bt_buf_put_fixed32(&b->buf, (uint32_t)(b->restarts.len / 4))) return BT_ENOMEM;
    *data = b->buf.data;
    *n = b->buf.len;
    return BT_OK;
}

/* ---- reader -------------------------------------------------------------- */

int sst_block_parse(sst_block *b, const uint8_t *data, size_t n)
{
    memset(b, 0, sizeof *b);
    if (n < 8 || n > UINT32_MAX)
        return bt_err(BT_ECORRUPT, "block of %zu bytes cannot hold a restart array", n);
    uint32_t nr = bt_get_fixed32(data + n - 4);
    if (nr == 0 || nr > (n - 4) / 4)
        return bt_err(BT_ECORRUPT, "block of %zu bytes: bad restart count %u", n, nr);
    uint32_t limit = (uint32_t)(n - 4 - 4 * (size_t)nr);
    if (bt_get_fixed32(data + limit) != 0)
        return bt_err(BT_ECORRUPT, "block of %zu bytes: first restart is not at 0", n);
    b->data = data;
    b->limit = limit;
    b->nrestarts = nr;
    return BT_OK;
}

static inline uint32_t restart_at(const sst_block *b, uint32_t i)
{
    return bt_get_fixed32(b->data + b->limit + 4 * (size_t)i);
}

/* Decodes the three lengths of the entry at `off` and checks that its key and
 * value bytes lie inside the entry area.  *body = offset of the key bytes. */
static inline __attribute__((always_inline)) bool decode_header(const sst_block *b, uint32_t off, uint32_t *shared,
                                 uint32_t *ns, uint32_t *vn, uint32_t *body)
{
    const uint8_t *p = b->data + off, *limit = b->data + b->limit;
    if (limit - p >= 3 && ((p[0] | p[1] | p[2]) & 0x80) == 0) {
        /* Common case: all three lengths fit in one byte each. */
        *shared = p[0];
        *ns = p[1];
        *vn = p[2];
        p += 3;
    } else {
        if (!(p = bt_get_varint32(p, limit, shared))) return false;
        if (!(p = bt_get_varint32(p, limit, ns))) return false;
        if (!(p = bt_get_varint32(p, limit, vn))) return false;
    }
    if ((uint64_t)*ns + *vn > (uint64_t)(limit - p)) return false;
    *body = (uint32_t)(p - b->data);
    return true;
}

static void set_corrupt(sst_block_iter *it, uint32_t off, const char *what)
{
    it->valid = false;
    it->status = bt_err(BT_ECORRUPT, "block entry at offset %u: %s", off, what);
}

/* Decodes the entry at it->next on top of the key currently in it->key. */
static inline void parse_next(sst_block_iter *it)
{
    uint32_t off = it->next;
    if (off >= it->blk.limit) {
        it->valid = false;
        return;
    }
    uint32_t shared, ns, vn, body;
    if (!decode_header(&it->blk, off, &shared, &ns, &vn, &body)) {
        set_corrupt(it, off, "lengths overrun the block");
        return;
    }
    if (shared > it->key.len) {
        set_corrupt(it, off, "shared prefix longer than the previous key");
        return;
    }
    /* The key buffer only grows, so after the first few entries this is a
     * bare memcpy. */
    if (it->key.cap - shared < ns && bt_buf_reserve(&it->key, shared + ns - it->key.len)) {
        it->valid = false;
        it->status = bt_err(BT_ENOMEM, "block iterator: key buffer");
        return;
    }
    if (ns) memcpy(it->key.data + shared, it->blk.data + body, ns);
    it->key.len = (size_t)shared + ns;
    it->val = it->blk.data + body + ns;
    it->vlen = vn;
    it->next = body + ns + vn;
    it->valid = true;
}

/* Positions before restart point i so that parse_next reads its entry. */
static bool jump_to_restart(sst_block_iter *it, uint32_t i)
{
    uint32_t off = restart_at(&it->blk, i);
    if (i > 0 && off >= it->blk.limit) {
        set_corrupt(it, off, "restart point outside the entries");
        return false;
    }
    it->next = off;
    it->key.len = 0;
    return true;
}

/* The full key stored at restart point i (restart entries share nothing). */
static bool restart_key(sst_block_iter *it, uint32_t i, const uint8_t **k, size_t *kn)
{
    uint32_t off = restart_at(&it->blk, i);
    uint32_t shared, ns, vn, body;
    if (off >= it->blk.limit || !decode_header(&it->blk, off, &shared, &ns, &vn, &body)) {
        set_corrupt(it, off, "bad restart point");
        return false;
    }
    if (shared != 0) {
        set_corrupt(it, off, "restart entry shares a prefix");
        return false;
    }
    *k = it->blk.data + body;
    *kn = ns;
    return true;
}

void sst_block_iter_reset(sst_block_iter *it, const sst_block *b)
{
    if (b) it->blk = *b;
    else memset(&it->blk, 0, sizeof it->blk);
    it->next = 0;
    it->valid = false;
    it->status = BT_OK;
    it->val = NULL;
    it->vlen = 0;
}

void sst_block_iter_init(sst_block_iter *it, const sst_block *b)
{
    memset(it, 0, sizeof *it);
    sst_block_iter_reset(it, b);
}

void sst_block_iter_free(sst_block_iter *it)
{
    bt_buf_free(&it->key);
}

/* A seek on an iterator without a block (failed parse) keeps its status. */
static bool usable(sst_block_iter *it)
{
    it->valid = false;
    if (!it->blk.data) return false;
    it->status = BT_OK;
    return true;
}

void sst_block_iter_seek_first(sst_block_iter *it)
{
    if (!usable(it)) return;
    if (jump_to_restart(it, 0)) parse_next(it);
}

void sst_block_iter_seek(sst_block_iter *it, const uint8_t *target, size_t n)
{
    if (!usable(it)) return;
    /* Bisect for the last restart point whose key is < target; the answer is
     * at or after it and before the next restart point's key (or the end). */
    uint32_t lo = 0, hi = it->blk.nrestarts - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        const uint8_t *k;
        size_t kn;
        if (!restart_key(it, mid, &k, &kn)) return;
        if (sst_key_cmp(k, kn, target, n) < 0) lo = mid;
        else hi = mid - 1;
    }
    if (!jump_to_restart(it, lo)) return;
    for (parse_next(it); it->valid; parse_next(it))
        if (sst_key_cmp(it->key.data, it->key.len, target, n) >= 0) return;
}

void sst_block_iter_next(sst_block_iter *it)
{
    if (it->valid) parse_next(it);
}

/* ---- the block iterator as an sst_iter ------------------------------------- */

static bool bi_valid(sst_iter *i) { return ((sst_block_iter *)i)->valid; }
static void bi_seek_first(sst_iter *i) { sst_block_iter_seek_first((sst_block_iter *)i); }
static void bi_seek(sst_iter *i, const uint8_t *t, size_t n) { sst_block_iter_seek((sst_block_iter *)i, t, n); }
static void bi_next(sst_iter *i) { sst_block_iter_next((sst_block_iter *)i); }
static int bi_status(sst_iter *i) { return ((sst_block_iter *)i)->status; }

static const uint8_t *bi_key(sst_iter *i, size_t *n)
{
    return sst_block_iter_key((sst_block_iter *)i, n);
}

static const uint8_t *bi_value(sst_iter *i, size_t *n)
{
    sst_block_iter *it = (sst_block_iter *)i;
    *n = it->vlen;
    return it->val;
}

static void bi_destroy(sst_iter *i)
{
    sst_block_iter_free((sst_block_iter *)i);
    free(i);
}

static const struct sst_iter_ops block_iter_ops = {
    .valid = bi_valid, .seek_first = bi_seek_first, .seek = bi_seek, .next = bi_next,
    .key = bi_key, .value = bi_value, .status = bi_status, .destroy = bi_destroy,
};

sst_iter *sst_block_iter_new(const uint8_t *data, size_t n)
{
    sst_block_iter *it = malloc(sizeof *it);
    if (!it) return NULL;
    sst_block blk;
    int rc = sst_block_parse(&blk, data, n);
    sst_block_iter_init(it, rc ? NULL : &blk);
    it->status = rc;
    it->base.ops = &block_iter_ops;
    return &it->base;
}

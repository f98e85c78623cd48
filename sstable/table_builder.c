/* sstable/table_builder.c: writes an SSTable (format: docs/formats.md, "SSTable").
 *
 * Data blocks are cut once they reach options.block_size.  A block's index
 * entry is only written when the next key arrives, so the separator can be
 * the shortest key between the two blocks (short index = small, fast index).
 * Encoded blocks accumulate in one large buffer that is appended to the file
 * in big chunks, so the file sees few writes.  The first I/O or allocation
 * error is sticky: every later call returns it and finish removes the file.
 */
#include "sstable/table.h"

#include "common/status.h"
#include "sstable/block.h"
#include "sstable/bloom.h"
#include "sstable/format.h"

#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

/* Appends to the file happen once this much output has accumulated. */
#define WRITE_CHUNK (256 * 1024)
#define INDEX_RESTART_INTERVAL 1
#define PROPS_RESTART_INTERVAL 16
#define MAX_BLOOM_BITS 64

typedef struct named_prop {
    char name[SST_PROP_NAME_MAX + 1];
    uint64_t v;
} named_prop;

typedef struct handle {
    uint64_t off, size;
} handle;

struct sst_builder {
    bt_env *env;
    char *path;
    bt_wfile *file;
    sst_options o;
    bt_buf out;              /* encoded bytes not yet appended to the file */
    uint64_t flushed;        /* bytes already appended */
    sst_block_builder data;
    sst_block_builder index;
    sst_bloom_builder bloom;
    bt_buf last_key;         /* for the order check and the separators */
    bt_buf scratch;          /* separator keys, filter and props contents */
    bool pending;            /* a finished data block awaits its index entry */
    handle pending_h;
    uint64_t entries, blocks, key_bytes, value_bytes, data_bytes;
    bt_buf smallest;
    named_prop *props;
    size_t nprops, capprops;
    int err;                 /* sticky I/O or allocation error */
};

void sst_options_default(sst_options *o)
{
    memset(o, 0, sizeof *o);
    o->block_size = 4096;
    o->restart_interval = 16;
    o->compress = true;
    o->bloom_bits_per_key = 10;
}

static int check_options(const sst_options *o)
{
    if (o->block_size < 1 || o->block_size > SST_MAX_BLOCK_SIZE)
        return bt_err(BT_EINVAL, "sst options: block_size %zu outside 1..%u", o->block_size,
                      (unsigned)SST_MAX_BLOCK_SIZE);
    if (o->restart_interval < 1)
        return bt_err(BT_EINVAL, "sst options: restart_interval %d < 1", o->restart_interval);
    if (o->bloom_bits_per_key < 0 || o->bloom_bits_per_key > MAX_BLOOM_BITS)
        return bt_err(BT_EINVAL, "sst options: bloom_bits_per_key %d outside 0..%d",
                      o->bloom_bits_per_key, MAX_BLOOM_BITS);
    return BT_OK;
}

int sst_builder_new(bt_env *env, const char *path, const sst_options *o, sst_builder **out)
{
    *out = NULL;
    sst_options def;
    if (!o) {
        sst_options_default(&def);
        o = &def;
    }
    int rc = check_options(o);
    if (rc) return rc;
    sst_builder *b = calloc(1, sizeof *b);
    if (!b || !(b->path = strdup(path))) {
        free(b);
        return bt_err(BT_ENOMEM, "%s: sst builder", path);
    }
    b->env = env;
    b->o = *o;
    sst_block_builder_init(&b->data, o->restart_interval);
    sst_block_builder_init(&b->index, INDEX_RESTART_INTERVAL);
    sst_bloom_builder_init(&b->bloom, o->bloom_bits_per_key);
    rc = bt_env_open_writable(env, path, BT_ENV_CREATE_TRUNC, &b->file);
    if (rc) {
        b->file = NULL;
        sst_builder_abandon(b);
        return rc;
    }
    *out = b;
    return BT_OK;
}

static int fail(sst_builder *b, int rc)
{
    if (!b->err) b->err = rc;
    return rc;
}

static int nomem(sst_builder *b)
{
    return fail(b, bt_err(BT_ENOMEM, "%s: out of memory while building", b->path));
}

/* Appends the buffered output to the file (all of it, or only when large). */
static int flush_out(sst_builder *b, bool force)
{
    if (b->out.len == 0 || (!force && b->out.len < WRITE_CHUNK)) return BT_OK;
    int rc = bt_wfile_append(b->file, b->out.data, b->out.len);
    if (rc) return fail(b, rc);
    b->flushed += b->out.len;
    b->out.len = 0;
    return BT_OK;
}

/* Encodes one block plus trailer into the output buffer; Snappy is used when
 * allowed and it shrinks the block by at least 1/8. */
static int write_block(sst_builder *b, const uint8_t *raw, size_t n, bool compress, handle *h)
{
    size_t cap = n;
    if (compress) {
        size_t m = snappy_max_compressed_length(n);
        if (m > cap) cap = m;
    }
    if (bt_buf_reserve(&b->out, cap + SST_BLOCK_TRAILER)) return nomem(b);
    uint8_t *start = b->out.data + b->out.len;
    uint8_t type = SST_COMPRESS_NONE;
    size_t len = n;
    if (compress) {
        size_t clen = cap;
        if (snappy_compress((const char *)raw, n, (char *)start, &clen) == SNAPPY_OK &&
            clen <= n - n / 8) {
            type = SST_COMPRESS_SNAPPY;
            len = clen;
        }
    }
    if (type == SST_COMPRESS_NONE && n) memcpy(start, raw, n);
    start[len] = type;
    bt_put_fixed64(start + len + 1, XXH3_64bits(start, len + 1));
    h->off = b->flushed + b->out.len;
    h->size = len;
    b->out.len += len + SST_BLOCK_TRAILER;
    return flush_out(b, false);
}

/* Sets *out to a[0..i] with a[i] bumped, for the first i >= from where a[i]
 * is not 0xff: a short key above a that keeps a[0..from).  Without such a
 * byte, *out is a itself. */
static int bump_from(const uint8_t *a, size_t an, size_t from, bt_buf *out)
{
    out->len = 0;
    for (size_t i = from; i < an; i++) {
        if (a[i] != 0xff) {
            if (bt_buf_append(out, a, i + 1)) return BT_ENOMEM;
            out->data[i]++;
            return BT_OK;
        }
    }
    return bt_buf_append(out, a, an);
}

/* Sets *out to a short key s with a <= s < b (a < b required). */
static int separator(const uint8_t *a, size_t an, const uint8_t *bk, size_t bn, bt_buf *out)
{
    size_t m = an < bn ? an : bn, p = 0;
    while (p < m && a[p] == bk[p]) p++;
    /* a a prefix of b: a itself.  a[p] + 1 < b[p]: bumping the first
     * differing byte stays below b.  a[p] + 1 == b[p]: any key above a that
     * keeps a[0..p] is below b. */
    size_t from = p == an || (unsigned)a[p] + 1 < bk[p] ? p : p + 1;
    return bump_from(a, an, from, out);
}

/* Sets *out to a short key >= a (for the last block, nothing follows). */
static int successor(const uint8_t *a, size_t an, bt_buf *out)
{
    return bump_from(a, an, 0, out);
}

static int add_index_entry(sst_builder *b, const bt_buf *sep)
{
    uint8_t enc[2 * BT_MAX_VARINT64];
    uint8_t *p = bt_put_varint64(enc, b->pending_h.off);
    p = bt_put_varint64(p, b->pending_h.size);
    if (sst_block_builder_add(&b->index, sep->data, sep->len, enc, (size_t)(p - enc)))
        return nomem(b);
    b->pending = false;
    return BT_OK;
}

static int flush_data_block(sst_builder *b)
{
    const uint8_t *raw;
    size_t n;
    if (sst_block_builder_finish(&b->data, &raw, &n)) return nomem(b);
    int rc = write_block(b, raw, n, b->o.compress, &b->pending_h);
    if (rc) return rc;
    sst_block_builder_reset(&b->data);
    b->pending = true;
    b->blocks++;
    b->data_bytes += b->pending_h.size + SST_BLOCK_TRAILER;
    return BT_OK;
}

static int add_to_filter(sst_builder *b, const uint8_t *key, size_t kn)
{
    if (b->o.bloom_bits_per_key == 0) return BT_OK;
    size_t n = kn;
    if (b->o.filter_prefix) {
        /* 0 from the prefix function means "leave this key out"; without one
         * every key goes in, the empty key included. */
        n = b->o.filter_prefix(key, kn, b->o.filter_arg);
        if (n == 0) return BT_OK;
        if (n > kn) n = kn;
    }
    if (sst_bloom_builder_add(&b->bloom, key, n)) return nomem(b);
    return BT_OK;
}

int sst_builder_add(sst_builder *b, const uint8_t *key, size_t kn, const uint8_t *val, size_t vn)
{
    if (b->err) return b->err;
    if (kn > SST_MAX_KEY || vn > SST_MAX_VALUE)
        return bt_err(BT_ETOOBIG, "%s: key of %zu or value of %zu bytes over the limit",
                      b->path, kn, vn);
    if (b->entries && sst_key_cmp(key, kn, b->last_key.data, b->last_key.len) <= 0)
        return bt_err(BT_EINVAL, "%s: keys not strictly increasing at entry %llu", b->path,
                      (unsigned long long)b->entries);
    int rc;
    if (b->pending) {
        if (separator(b->last_key.data, b->last_key.len, key, kn, &b->scratch)) return nomem(b);
        if ((rc = add_index_entry(b, &b->scratch))) return rc;
    }
    if (b->entries == 0 && bt_buf_append(&b->smallest, key, kn)) return nomem(b);
    if ((rc = add_to_filter(b, key, kn))) return rc;
    if (sst_block_builder_add(&b->data, key, kn, val, vn)) return nomem(b);
    b->last_key.len = 0;
    if (bt_buf_append(&b->last_key, key, kn)) return nomem(b);
    b->entries++;
    b->key_bytes += kn;
    b->value_bytes += vn;
    if (sst_block_builder_size(&b->data) >= b->o.block_size) return flush_data_block(b);
    return BT_OK;
}

int sst_builder_set_prop(sst_builder *b, const char *name, uint64_t v)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > SST_PROP_NAME_MAX)
        return bt_err(BT_EINVAL, "%s: property name must be 1..%d bytes", b->path,
                      SST_PROP_NAME_MAX);
    for (size_t i = 0; i < b->nprops; i++) {
        if (strcmp(b->props[i].name, name) == 0) {
            b->props[i].v = v;
            return BT_OK;
        }
    }
    if (b->nprops == b->capprops) {
        size_t cap = b->capprops ? b->capprops * 2 : 8;
        named_prop *p = realloc(b->props, cap * sizeof *p);
        if (!p) return bt_err(BT_ENOMEM, "%s: properties", b->path);
        b->props = p;
        b->capprops = cap;
    }
    memcpy(b->props[b->nprops].name, name, len + 1);
    b->props[b->nprops++].v = v;
    return BT_OK;
}

uint64_t sst_builder_size(const sst_builder *b)
{
    uint64_t pending = b->data.entries ? sst_block_builder_size(&b->data) : 0;
    return b->flushed + b->out.len + pending;
}

uint64_t sst_builder_entries(const sst_builder *b) { return b->entries; }

/* ---- finish ------------------------------------------------------------------ */

static int prop_u64(sst_block_builder *pb, const char *name, uint64_t v)
{
    uint8_t enc[BT_MAX_VARINT64];
    size_t n = (size_t)(bt_put_varint64(enc, v) - enc);
    return sst_block_builder_add(pb, (const uint8_t *)name, strlen(name), enc, n);
}

static int prop_bytes(sst_block_builder *pb, const char *name, const bt_buf *v)
{
    return sst_block_builder_add(pb, (const uint8_t *)name, strlen(name), v->data, v->len);
}

static int cmp_prop(const void *a, const void *b)
{
    return strcmp(((const named_prop *)a)->name, ((const named_prop *)b)->name);
}

/* Adds the properties in bytewise key order ("sst.*" sorts before "u.*"). */
static int fill_props(sst_builder *b, sst_block_builder *pb)
{
    if (prop_u64(pb, SST_PROP_DATA_BYTES, b->data_bytes) ||
        prop_bytes(pb, SST_PROP_LARGEST, &b->last_key) ||
        prop_u64(pb, SST_PROP_NUM_DATA_BLOCKS, b->blocks) ||
        prop_u64(pb, SST_PROP_NUM_ENTRIES, b->entries) ||
        prop_u64(pb, SST_PROP_RAW_KEY_BYTES, b->key_bytes) ||
        prop_u64(pb, SST_PROP_RAW_VALUE_BYTES, b->value_bytes) ||
        prop_bytes(pb, SST_PROP_SMALLEST, &b->smallest))
        return BT_ENOMEM;
    if (b->nprops) qsort(b->props, b->nprops, sizeof *b->props, cmp_prop);
    char key[sizeof SST_PROP_USER_PREFIX + SST_PROP_NAME_MAX];
    for (size_t i = 0; i < b->nprops; i++) {
        snprintf(key, sizeof key, "%s%s", SST_PROP_USER_PREFIX, b->props[i].name);
        if (prop_u64(pb, key, b->props[i].v)) return BT_ENOMEM;
    }
    return BT_OK;
}

static int write_props(sst_builder *b, handle *h)
{
    sst_block_builder pb;
    sst_block_builder_init(&pb, PROPS_RESTART_INTERVAL);
    const uint8_t *raw;
    size_t n;
    int rc;
    if (fill_props(b, &pb) || sst_block_builder_finish(&pb, &raw, &n)) rc = nomem(b);
    else rc = write_block(b, raw, n, false, h);
    sst_block_builder_free(&pb);
    return rc;
}

static int write_meta(sst_builder *b, handle *filter, handle *props, handle *index)
{
    int rc;
    memset(filter, 0, sizeof *filter);
    if (b->o.bloom_bits_per_key > 0) {
        b->scratch.len = 0;
        if (sst_bloom_builder_finish(&b->bloom, &b->scratch)) return nomem(b);
        if ((rc = write_block(b, b->scratch.data, b->scratch.len, false, filter))) return rc;
    }
    if ((rc = write_props(b, props))) return rc;
    const uint8_t *raw;
    size_t n;
    if (sst_block_builder_finish(&b->index, &raw, &n)) return nomem(b);
    return write_block(b, raw, n, b->o.compress, index);
}

static int write_footer(sst_builder *b, const handle *filter, const handle *props,
                        const handle *index)
{
    if (bt_buf_reserve(&b->out, SST_FOOTER_SIZE)) return nomem(b);
    uint8_t *f = b->out.data + b->out.len;
    bt_put_fixed64(f + SST_FOOTER_INDEX, index->off);
    bt_put_fixed64(f + SST_FOOTER_INDEX + 8, index->size);
    bt_put_fixed64(f + SST_FOOTER_FILTER, filter->off);
    bt_put_fixed64(f + SST_FOOTER_FILTER + 8, filter->size);
    bt_put_fixed64(f + SST_FOOTER_PROPS, props->off);
    bt_put_fixed64(f + SST_FOOTER_PROPS + 8, props->size);
    bt_put_fixed32(f + SST_FOOTER_VERSION, SST_FORMAT_VERSION);
    bt_put_fixed32(f + SST_FOOTER_CHECKSUM, (uint32_t)XXH3_64bits(f, SST_FOOTER_CHECKSUM));
    bt_put_fixed64(f + SST_FOOTER_MAGIC, SST_MAGIC);
    b->out.len += SST_FOOTER_SIZE;
    return BT_OK;
}

static int finish_blocks(sst_builder *b)
{
    int rc;
    if (b->data.entries && (rc = flush_data_block(b))) return rc;
    if (b->pending) {
        if (successor(b->last_key.data, b->last_key.len, &b->scratch)) return nomem(b);
        if ((rc = add_index_entry(b, &b->scratch))) return rc;
    }
    handle filter, props, index;
    if ((rc = write_meta(b, &filter, &props, &index))) return rc;
    if ((rc = write_footer(b, &filter, &props, &index))) return rc;
    if ((rc = flush_out(b, true))) return rc;
    return bt_wfile_sync(b->file);
}

static void free_builder(sst_builder *b)
{
    sst_block_builder_free(&b->data);
    sst_block_builder_free(&b->index);
    sst_bloom_builder_free(&b->bloom);
    bt_buf_free(&b->out);
    bt_buf_free(&b->last_key);
    bt_buf_free(&b->scratch);
    bt_buf_free(&b->smallest);
    free(b->props);
    free(b->path);
    free(b);
}

int sst_builder_finish(sst_builder *b, uint64_t *file_size)
{
    int rc = b->err ? b->err : finish_blocks(b);
    uint64_t size = b->flushed;
    bt_wfile *f = b->file;
    b->file = NULL;
    int crc = bt_wfile_close(f);
    if (!rc) rc = crc;
    if (rc) {
        /* Keep the detail of the original failure, not of the cleanup. */
        char msg[256];
        snprintf(msg, sizeof msg, "%s", bt_errmsg());
        bt_env_remove(b->env, b->path);
        bt_err(rc, "%s", msg);
    } else if (file_size) {
        *file_size = size;
    }
    free_builder(b);
    return rc;
}

void sst_builder_abandon(sst_builder *b)
{
    if (!b) return;
    if (b->file) {
        bt_wfile_close(b->file);
        bt_env_remove(b->env, b->path);
    }
    free_builder(b);
}

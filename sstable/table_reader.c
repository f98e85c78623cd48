/* sstable/table_reader.c: opens, validates and iterates SSTables
 * (format: docs/formats.md, "SSTable").
 *
 * Open reads the footer and then the whole metadata region (filter,
 * properties, index) in one read, verifies every checksum and cross-checks
 * the layout: the index must tile the data region block by block, so a data
 * block handle can never point outside it.  Data blocks are verified when
 * they are read; a bad block makes the iterator invalid with BT_ECORRUPT.
 *
 * The iterator is two-level (index block -> data block).  Without a cache, or
 * with fill_cache = false, blocks are read and decompressed into two buffers
 * owned by the iterator and reused, so a scan does no allocation per block.
 * Blocks inserted into the cache take one malloc holding the parsed block.
 */
#include "sstable/table.h"

#include "common/status.h"
#include "sstable/block.h"
#include "sstable/bloom.h"
#include "sstable/format.h"

#include <snappy-c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

/* Snappy cannot expand input more than ~21x (a 3-byte copy yields at most
 * 64 bytes), so a larger claimed length is corrupt and must not be malloc'd. */
#define SNAPPY_MAX_RATIO 24

/* Bytes a scanning iterator reads at once (see fetch()). */
#define READAHEAD (128 * 1024)
#define READAHEAD_AFTER 2

typedef struct handle {
    uint64_t off, size;
} handle;

typedef struct named_prop {
    char name[SST_PROP_NAME_MAX + 1];
    uint64_t v;
} named_prop;

struct sst_reader {
    atomic_int refs;
    bt_rfile *file;
    char *path;
    sst_cache *cache;
    uint64_t cache_id;
    uint64_t data_end;       /* the data blocks occupy [0, data_end) */
    uint8_t *index_mem;
    sst_block index;
    uint8_t *filter_mem;
    sst_bloom filter;        /* bits == NULL when the table has no filter */
    sst_props props;
    uint8_t *keys_mem;       /* smallest || largest */
    named_prop *named;
    size_t nnamed;
    bool in_memory;          /* the file is a copy in memory: reading it is no I/O */
};

/* ---- block access ------------------------------------------------------------ */

static int corrupt(const sst_reader *r, uint64_t off, const char *what)
{
    return bt_err(BT_ECORRUPT, "%s: block at %llu: %s", r->path, (unsigned long long)off, what);
}

/* Re-records the current detail prefixed with the path and block offset. */
static int wrap_err(const sst_reader *r, uint64_t off, int code)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s", bt_errmsg());
    return bt_err(code, "%s: block at %llu: %s", r->path, (unsigned long long)off, msg);
}

static int read_exact(const sst_reader *r, uint64_t off, size_t n, uint8_t *buf)
{
    size_t got = 0;
    int rc = bt_rfile_read_at(r->file, off, n, buf, &got);
    if (rc) return rc;
    if (got != n)
        return bt_err(BT_ECORRUPT, "%s: short read at %llu: %zu of %zu bytes", r->path,
                      (unsigned long long)off, got, n);
    return BT_OK;
}

/* raw holds size block bytes + trailer.  Verifies the checksum (which covers
 * the block and the type byte) and the type. */
static int check_block(const sst_reader *r, uint64_t off, const uint8_t *raw, size_t size,
                       int *type)
{
    if (XXH3_64bits(raw, size + 1) != bt_get_fixed64(raw + size + 1))
        return corrupt(r, off, "checksum mismatch");
    *type = raw[size];
    if (*type != SST_COMPRESS_NONE && *type != SST_COMPRESS_SNAPPY)
        return corrupt(r, off, "unknown compression type");
    return BT_OK;
}

static int snappy_len(const sst_reader *r, uint64_t off, const uint8_t *raw, size_t size,
                      size_t *ulen)
{
    if (snappy_uncompressed_length((const char *)raw, size, ulen) != SNAPPY_OK)
        return corrupt(r, off, "bad snappy header");
    if (*ulen > UINT32_MAX || *ulen > (uint64_t)size * SNAPPY_MAX_RATIO + 64)
        return corrupt(r, off, "implausible uncompressed length");
    return BT_OK;
}

static int snappy_into(const sst_reader *r, uint64_t off, const uint8_t *raw, size_t size,
                       uint8_t *dst, size_t ulen)
{
    size_t got = ulen;
    if (snappy_uncompress((const char *)raw, size, (char *)dst, &got) != SNAPPY_OK || got != ulen)
        return corrupt(r, off, "snappy decompression failed");
    return BT_OK;
}

/* Verifies raw (block + trailer) and returns its contents in a fresh malloc. */
static int decode_owned(const sst_reader *r, uint64_t off, const uint8_t *raw, size_t size,
                        uint8_t **mem, size_t *n)
{
    int type, rc;
    if ((rc = check_block(r, off, raw, size, &type))) return rc;
    size_t len = size;
    if (type == SST_COMPRESS_SNAPPY && (rc = snappy_len(r, off, raw, size, &len))) return rc;
    uint8_t *m = malloc(len ? len : 1);
    if (!m) return bt_err(BT_ENOMEM, "%s: block at %llu", r->path, (unsigned long long)off);
    if (type == SST_COMPRESS_NONE) {
        memcpy(m, raw, size);
    } else if ((rc = snappy_into(r, off, raw, size, m, len))) {
        free(m);
        return rc;
    }
    *mem = m;
    *n = len;
    return BT_OK;
}

/* A block handle is two varints that fill the index value exactly. */
static bool decode_handle(const uint8_t *p, size_t n, handle *h)
{
    const uint8_t *end = p + n;
    p = bt_get_varint64(p, end, &h->off);
    if (p) p = bt_get_varint64(p, end, &h->size);
    return p == end;
}

/* Does the block (plus trailer) lie inside the data region? */
static bool in_data(const sst_reader *r, const handle *h)
{
    return h->off <= r->data_end && h->size <= r->data_end - h->off &&
           SST_BLOCK_TRAILER <= r->data_end - h->off - h->size;
}

/* ---- footer and layout --------------------------------------------------------- */

typedef struct footer {
    handle index, filter, props;
} footer;

/* Is h exactly the block whose trailer ends at `end`? */
static bool ends_at(const handle *h, uint64_t end)
{
    return end >= SST_BLOCK_TRAILER && h->size <= end - SST_BLOCK_TRAILER &&
           h->off == end - SST_BLOCK_TRAILER - h->size && h->size <= UINT32_MAX;
}

static int parse_footer(sst_reader *r, const uint8_t *f, uint64_t size, footer *ft)
{
    if (bt_get_fixed64(f + SST_FOOTER_MAGIC) != SST_MAGIC)
        return bt_err(BT_ECORRUPT, "%s: bad magic (not an SSTable, or truncated)", r->path);
    if ((uint32_t)XXH3_64bits(f, SST_FOOTER_CHECKSUM) != bt_get_fixed32(f + SST_FOOTER_CHECKSUM))
        return bt_err(BT_ECORRUPT, "%s: footer checksum mismatch", r->path);
    uint32_t version = bt_get_fixed32(f + SST_FOOTER_VERSION);
    if (version != SST_FORMAT_VERSION)
        return bt_err(BT_ECORRUPT, "%s: unsupported format version %u", r->path, version);
    ft->index = (handle){bt_get_fixed64(f + SST_FOOTER_INDEX), bt_get_fixed64(f + SST_FOOTER_INDEX + 8)};
    ft->filter = (handle){bt_get_fixed64(f + SST_FOOTER_FILTER), bt_get_fixed64(f + SST_FOOTER_FILTER + 8)};
    ft->props = (handle){bt_get_fixed64(f + SST_FOOTER_PROPS), bt_get_fixed64(f + SST_FOOTER_PROPS + 8)};
    /* Layout: data | filter? | props | index | footer, with no gaps. */
    bool has_filter = ft->filter.off || ft->filter.size;
    if (!ends_at(&ft->index, size - SST_FOOTER_SIZE) || !ends_at(&ft->props, ft->index.off) ||
        (has_filter && !ends_at(&ft->filter, ft->props.off)))
        return bt_err(BT_ECORRUPT, "%s: footer block handles do not match the file layout",
                      r->path);
    r->data_end = has_filter ? ft->filter.off : ft->props.off;
    return BT_OK;
}

/* ---- properties ------------------------------------------------------------------ */

enum {
    P_DATA_BYTES = 1 << 0, P_LARGEST = 1 << 1, P_NUM_BLOCKS = 1 << 2, P_NUM_ENTRIES = 1 << 3,
    P_KEY_BYTES = 1 << 4, P_VALUE_BYTES = 1 << 5, P_SMALLEST = 1 << 6, P_ALL = (1 << 7) - 1,
};

static const struct {
    const char *name;
    int bit;
    size_t field;   /* offset of the uint64_t in sst_props; unused for keys */
} prop_table[] = {
    {SST_PROP_DATA_BYTES, P_DATA_BYTES, offsetof(sst_props, data_bytes)},
    {SST_PROP_LARGEST, P_LARGEST, 0},
    {SST_PROP_NUM_DATA_BLOCKS, P_NUM_BLOCKS, offsetof(sst_props, num_data_blocks)},
    {SST_PROP_NUM_ENTRIES, P_NUM_ENTRIES, offsetof(sst_props, num_entries)},
    {SST_PROP_RAW_KEY_BYTES, P_KEY_BYTES, offsetof(sst_props, raw_key_bytes)},
    {SST_PROP_RAW_VALUE_BYTES, P_VALUE_BYTES, offsetof(sst_props, raw_value_bytes)},
    {SST_PROP_SMALLEST, P_SMALLEST, 0},
};

static bool key_is(const uint8_t *k, size_t kn, const char *s)
{
    size_t n = strlen(s);
    return kn == n && memcmp(k, s, n) == 0;
}

static bool get_u64(const uint8_t *v, size_t n, uint64_t *out)
{
    return bt_get_varint64(v, v + n, out) == v + n;
}

typedef struct props_scan {
    int seen;
    const uint8_t *smallest, *largest;
    size_t smallest_len, largest_len;
} props_scan;

static int add_named(sst_reader *r, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    size_t plen = strlen(SST_PROP_USER_PREFIX);
    size_t len = kn - plen;
    uint64_t x;
    if (len == 0 || len > SST_PROP_NAME_MAX || memchr(k + plen, 0, len) || !get_u64(v, vn, &x))
        return bt_err(BT_ECORRUPT, "%s: malformed named property", r->path);
    named_prop *p = realloc(r->named, (r->nnamed + 1) * sizeof *p);
    if (!p) return bt_err(BT_ENOMEM, "%s: properties", r->path);
    r->named = p;
    memcpy(p[r->nnamed].name, k + plen, len);
    p[r->nnamed].name[len] = 0;
    p[r->nnamed++].v = x;
    return BT_OK;
}

/* Handles one property entry; unknown "sst." names are skipped so a newer
 * builder may add some without breaking this reader. */
static int take_prop(sst_reader *r, props_scan *s, const uint8_t *k, size_t kn,
                     const uint8_t *v, size_t vn)
{
    size_t plen = strlen(SST_PROP_USER_PREFIX);
    if (kn >= plen && memcmp(k, SST_PROP_USER_PREFIX, plen) == 0)
        return add_named(r, k, kn, v, vn);
    for (size_t i = 0; i < sizeof prop_table / sizeof prop_table[0]; i++) {
        if (!key_is(k, kn, prop_table[i].name)) continue;
        s->seen |= prop_table[i].bit;
        if (prop_table[i].bit == P_SMALLEST) {
            s->smallest = v;
            s->smallest_len = vn;
        } else if (prop_table[i].bit == P_LARGEST) {
            s->largest = v;
            s->largest_len = vn;
        } else if (!get_u64(v, vn, (uint64_t *)((char *)&r->props + prop_table[i].field))) {
            return bt_err(BT_ECORRUPT, "%s: malformed property %s", r->path, prop_table[i].name);
        }
    }
    return BT_OK;
}

static int check_props(sst_reader *r, const props_scan *s)
{
    const sst_props *p = &r->props;
    if (s->seen != P_ALL)
        return bt_err(BT_ECORRUPT, "%s: properties block lacks required entries", r->path);
    if (p->data_bytes != r->data_end || (p->num_entries == 0) != (p->num_data_blocks == 0) ||
        (p->num_entries &&
         sst_key_cmp(s->smallest, s->smallest_len, s->largest, s->largest_len) > 0))
        return bt_err(BT_ECORRUPT, "%s: properties contradict the file layout", r->path);
    uint8_t *m = malloc(s->smallest_len + s->largest_len + 1);
    if (!m) return bt_err(BT_ENOMEM, "%s: properties", r->path);
    if (s->smallest_len) memcpy(m, s->smallest, s->smallest_len);
    if (s->largest_len) memcpy(m + s->smallest_len, s->largest, s->largest_len);
    r->keys_mem = m;
    r->props.smallest = m;
    r->props.smallest_len = s->smallest_len;
    r->props.largest = m + s->smallest_len;
    r->props.largest_len = s->largest_len;
    return BT_OK;
}

static int parse_props(sst_reader *r, uint64_t off, const uint8_t *data, size_t n)
{
    sst_block blk;
    int rc = sst_block_parse(&blk, data, n);
    if (rc) return wrap_err(r, off, rc);
    sst_block_iter it;
    sst_block_iter_init(&it, &blk);
    props_scan s = {0};
    for (sst_block_iter_seek_first(&it); it.valid && !rc; sst_block_iter_next(&it))
        rc = take_prop(r, &s, it.key.data, it.key.len, it.val, it.vlen);
    if (!rc && it.status) rc = wrap_err(r, off, it.status);
    sst_block_iter_free(&it);
    return rc ? rc : check_props(r, &s);
}

/* ---- index --------------------------------------------------------------------------- */

/* Checks that the index entries are in strictly increasing key order and that
 * their handles tile [0, data_end) exactly, one block after the other. */
static int check_index(sst_reader *r, uint64_t off)
{
    sst_block_iter it;
    sst_block_iter_init(&it, &r->index);
    bt_buf prev = {0};
    uint64_t expect = 0, count = 0;
    int rc = BT_OK;
    for (sst_block_iter_seek_first(&it); it.valid; sst_block_iter_next(&it), count++) {
        handle h;
        if (!decode_handle(it.val, it.vlen, &h) || h.off != expect || !in_data(r, &h) ||
            h.size > UINT32_MAX) {
            rc = corrupt(r, off, "index entry with a bad block handle");
            break;
        }
        if (count && sst_key_cmp(prev.data, prev.len, it.key.data, it.key.len) >= 0) {
            rc = corrupt(r, off, "index keys not increasing");
            break;
        }
        prev.len = 0;
        if (bt_buf_append(&prev, it.key.data, it.key.len)) {
            rc = bt_err(BT_ENOMEM, "%s: index check", r->path);
            break;
        }
        expect = h.off + h.size + SST_BLOCK_TRAILER;
    }
    if (!rc && it.status) rc = wrap_err(r, off, it.status);
    if (!rc && (expect != r->data_end || count != r->props.num_data_blocks))
        rc = corrupt(r, off, "index does not cover the data blocks");
    bt_buf_free(&prev);
    sst_block_iter_free(&it);
    return rc;
}

/* ---- open ------------------------------------------------------------------------------ */

static int load_meta(sst_reader *r, const footer *ft, const uint8_t *meta, uint64_t meta_off)
{
    int rc;
    size_t n;
    if (ft->filter.size || ft->filter.off) {
        rc = decode_owned(r, ft->filter.off, meta + (ft->filter.off - meta_off),
                          (size_t)ft->filter.size, &r->filter_mem, &n);
        if (rc) return rc;
        if ((rc = sst_bloom_parse(&r->filter, r->filter_mem, n))) return wrap_err(r, ft->filter.off, rc);
    }
    uint8_t *pm;
    rc = decode_owned(r, ft->props.off, meta + (ft->props.off - meta_off), (size_t)ft->props.size,
                      &pm, &n);
    if (rc) return rc;
    rc = parse_props(r, ft->props.off, pm, n);
    free(pm);
    if (rc) return rc;
    rc = decode_owned(r, ft->index.off, meta + (ft->index.off - meta_off), (size_t)ft->index.size,
                      &r->index_mem, &n);
    if (rc) return rc;
    if ((rc = sst_block_parse(&r->index, r->index_mem, n))) return wrap_err(r, ft->index.off, rc);
    return check_index(r, ft->index.off);
}

static int load(sst_reader *r, uint64_t size)
{
    if (size < SST_FOOTER_SIZE)
        return bt_err(BT_ECORRUPT, "%s: file of %llu bytes is shorter than the footer", r->path,
                      (unsigned long long)size);
    uint8_t f[SST_FOOTER_SIZE];
    footer ft = {0};
    int rc = read_exact(r, size - SST_FOOTER_SIZE, SST_FOOTER_SIZE, f);
    if (rc || (rc = parse_footer(r, f, size, &ft))) return rc;
    /* One read for filter, properties and index: they are contiguous. */
    uint64_t meta_off = r->data_end;
    size_t meta_len = (size_t)(size - SST_FOOTER_SIZE - meta_off);
    uint8_t *meta = malloc(meta_len ? meta_len : 1);
    if (!meta) return bt_err(BT_ENOMEM, "%s: metadata of %zu bytes", r->path, meta_len);
    rc = read_exact(r, meta_off, meta_len, meta);
    if (!rc) rc = load_meta(r, &ft, meta, meta_off);
    free(meta);
    r->props.file_size = size;
    return rc;
}

static void destroy_reader(sst_reader *r)
{
    if (r->cache && r->cache_id) sst_cache_erase_id(r->cache, r->cache_id);
    if (r->file) bt_rfile_close(r->file);
    free(r->index_mem);
    free(r->filter_mem);
    free(r->keys_mem);
    free(r->named);
    free(r->path);
    free(r);
}

/* Reads the whole file into memory and wraps it as the reader's file. */
static int open_in_memory(bt_env *env, const char *path, bt_rfile **file, uint64_t *size)
{
    uint8_t *data;
    size_t len;
    int rc = bt_env_read_all(env, path, &data, &len);
    if (rc) return rc;
    rc = bt_rfile_from_memory(data, len, file);
    if (rc) {
        free(data);
        return bt_err(rc, "%s: in-memory copy", path);
    }
    *size = len;
    return BT_OK;
}

int sst_reader_open(bt_env *env, const char *path, sst_cache *cache, sst_reader **out)
{
    return sst_reader_open_ex(env, path, cache, false, out);
}

int sst_reader_open_ex(bt_env *env, const char *path, sst_cache *cache, bool in_memory,
                       sst_reader **out)
{
    *out = NULL;
    sst_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return bt_err(BT_ENOMEM, "%s: reader", path);
    }
    atomic_init(&r->refs, 1);
    uint64_t size = 0;
    int rc;
    if (in_memory) {
        rc = open_in_memory(env, path, &r->file, &size);
        cache = NULL;   /* the blocks are in memory already */
        r->in_memory = true;
    } else {
        rc = bt_env_file_size(env, path, &size);
        if (!rc) rc = bt_env_open_readable(env, path, &r->file);
    }
    if (rc) r->file = NULL;
    if (!rc) rc = load(r, size);
    if (rc) {
        destroy_reader(r);
        return rc;
    }
    /* Taken only once the table is valid so failed opens never touch the cache. */
    if (cache) {
        r->cache = cache;
        r->cache_id = sst_cache_new_id(cache);
    }
    *out = r;
    return BT_OK;
}

void sst_reader_ref(sst_reader *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void sst_reader_unref(sst_reader *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        destroy_reader(r);
}

const sst_props *sst_reader_props(const sst_reader *r) { return &r->props; }

int sst_reader_prop(const sst_reader *r, const char *name, uint64_t *v)
{
    for (size_t i = 0; i < r->nnamed; i++) {
        if (strcmp(r->named[i].name, name) == 0) {
            *v = r->named[i].v;
            return BT_OK;
        }
    }
    return BT_ENOTFOUND;
}

bool sst_reader_may_contain(const sst_reader *r, const uint8_t *prefix, size_t n)
{
    return sst_bloom_may_contain(&r->filter, prefix, n);
}

/* ---- two-level iterator ----------------------------------------------------------------- */

typedef struct cached_block {
    sst_block blk;           /* points into data[] */
    uint8_t data[];
} cached_block;

typedef struct table_iter {
    sst_iter base;
    sst_reader *r;
    bool fill_cache;
    bool no_io;              /* fail with BT_EBUSY instead of reading from the file */
    sst_block_iter index;
    sst_block_iter data;
    bool in_block;           /* data is set on the block at block_off */
    uint64_t block_off;
    sst_cache_handle *h;     /* pins the current block when it came from the cache */
    bt_buf raw;              /* reused read buffer: the last read, readahead included */
    uint64_t raw_off;        /* file offset of raw.data[0]; raw.len bytes valid */
    uint64_t seq_next;       /* where a sequential reader's next block starts */
    unsigned seq_run;        /* consecutive sequential block reads so far */
    bt_buf ubuf;             /* reused decompression buffer */
    int status;
} table_iter;

/* Returns the block + trailer bytes at h, from the last read if it covers
 * them.  Once READAHEAD_AFTER reads in a row each continued where the previous
 * block ended, the reader is scanning: it fetches READAHEAD bytes at once
 * (within the data region) and the next blocks come from memory without a
 * system call.  A single step into the next block (a point read peeking past
 * its row's last cell) stays a plain block read. */
static int fetch(table_iter *it, const handle *h, const uint8_t **raw)
{
    size_t need = (size_t)h->size + SST_BLOCK_TRAILER;
    it->seq_run = h->off == it->seq_next ? it->seq_run + 1 : 0;
    bool sequential = it->seq_run >= READAHEAD_AFTER;
    it->seq_next = h->off + need;
    if (h->off >= it->raw_off && h->off - it->raw_off <= it->raw.len &&
        need <= it->raw.len - (h->off - it->raw_off)) {
        *raw = it->raw.data + (h->off - it->raw_off);
        return BT_OK;
    }
    size_t want = need;
    if (sequential && want < READAHEAD) {
        uint64_t left = it->r->data_end - h->off;
        want = left < READAHEAD ? (size_t)left : READAHEAD;
    }
    it->raw.len = 0;
    if (bt_buf_reserve(&it->raw, want))
        return bt_err(BT_ENOMEM, "%s: block at %llu", it->r->path, (unsigned long long)h->off);
    int rc = read_exact(it->r, h->off, want, it->raw.data);
    if (rc) return rc;
    it->raw.len = want;
    it->raw_off = h->off;
    *raw = it->raw.data;
    return BT_OK;
}

/* Reads and verifies a block; (*data, *n) are its contents: in the read
 * buffer when stored raw, in it->ubuf or in *cb when Snappy-compressed, and
 * always in *cb when cb is given (a block bound for the cache). */
static int read_block(table_iter *it, const handle *h, const uint8_t **data, size_t *n,
                      cached_block **cb)
{
    const sst_reader *r = it->r;
    size_t size = (size_t)h->size;
    const uint8_t *raw = NULL;
    int type, rc;
    if ((rc = fetch(it, h, &raw))) return rc;
    if ((rc = check_block(r, h->off, raw, size, &type))) return rc;
    size_t len = size;
    if (type == SST_COMPRESS_SNAPPY && (rc = snappy_len(r, h->off, raw, size, &len))) return rc;
    uint8_t *dst;
    if (cb) {
        if (!(*cb = malloc(sizeof **cb + len)))
            return bt_err(BT_ENOMEM, "%s: block at %llu", r->path, (unsigned long long)h->off);
        dst = (*cb)->data;
    } else if (type == SST_COMPRESS_SNAPPY) {
        if (bt_buf_reserve(&it->ubuf, len))
            return bt_err(BT_ENOMEM, "%s: block at %llu", r->path, (unsigned long long)h->off);
        dst = it->ubuf.data;
    } else {
        *data = raw;
        *n = len;
        return BT_OK;
    }
    if (type == SST_COMPRESS_SNAPPY) rc = snappy_into(r, h->off, raw, size, dst, len);
    else memcpy(dst, raw, len);
    *data = dst;
    *n = len;
    return rc;
}

static int parse_data_block(table_iter *it, const handle *h, const uint8_t *data, size_t n,
                            sst_block *blk)
{
    int rc = sst_block_parse(blk, data, n);
    return rc ? wrap_err(it->r, h->off, rc) : BT_OK;
}

static void free_cached(void *v) { free(v); }

/* Gets the block from the cache, or reads it and (if fill_cache) inserts it. */
static int block_via_cache(table_iter *it, const handle *h, sst_block *blk)
{
    sst_reader *r = it->r;
    sst_cache_handle *ch = sst_cache_lookup(r->cache, r->cache_id, h->off);
    if (ch) {
        *blk = ((cached_block *)sst_cache_value(ch))->blk;
        it->h = ch;
        return BT_OK;
    }
    const uint8_t *data;
    size_t n;
    cached_block *cb = NULL;
    int rc = read_block(it, h, &data, &n, it->fill_cache ? &cb : NULL);
    if (!rc) rc = parse_data_block(it, h, data, n, cb ? &cb->blk : blk);
    if (rc || !cb) {
        free(cb);
        return rc;
    }
    ch = sst_cache_insert(r->cache, r->cache_id, h->off, cb, n, free_cached);
    if (!ch) return bt_err(BT_ENOMEM, "%s: block cache insert", r->path);
    *blk = cb->blk;
    it->h = ch;
    return BT_OK;
}

static void drop_block(table_iter *it)
{
    if (it->h) {
        sst_cache_release(it->r->cache, it->h);
        it->h = NULL;
    }
    it->in_block = false;
}

/* Points the data iterator at the block named by the current index entry
 * (unpositioned).  Staying on the same block costs nothing. */
static int load_block(table_iter *it)
{
    handle h;
    if (!decode_handle(it->index.val, it->index.vlen, &h) || !in_data(it->r, &h))
        return it->status = corrupt(it->r, it->r->data_end, "bad block handle in the index");
    if (it->in_block && h.off == it->block_off) return BT_OK;
    drop_block(it);
    sst_block blk;
    int rc;
    if (it->no_io && !it->r->in_memory) {
        sst_cache_handle *ch = it->r->cache ? sst_cache_lookup(it->r->cache, it->r->cache_id, h.off) : NULL;
        if (!ch)
            return it->status = bt_err(BT_EBUSY, "%s: block at %llu is not cached", it->r->path,
                                       (unsigned long long)h.off);
        blk = ((cached_block *)sst_cache_value(ch))->blk;
        it->h = ch;
        rc = BT_OK;
    } else if (it->r->cache) {
        rc = block_via_cache(it, &h, &blk);
    } else {
        const uint8_t *data;
        size_t n;
        rc = read_block(it, &h, &data, &n, NULL);
        if (!rc) rc = parse_data_block(it, &h, data, n, &blk);
    }
    if (rc) return it->status = rc;
    sst_block_iter_reset(&it->data, &blk);
    it->in_block = true;
    it->block_off = h.off;
    return BT_OK;
}

/* After the data iterator ran off its block: move to the next non-empty
 * block, or record why iteration stopped. */
static void skip_forward(table_iter *it)
{
    while (!it->data.valid) {
        if (it->data.status) {
            it->status = wrap_err(it->r, it->block_off, it->data.status);
            return;
        }
        sst_block_iter_next(&it->index);
        if (!it->index.valid) {
            if (it->index.status) it->status = it->index.status;
            return;
        }
        if (load_block(it)) return;
        sst_block_iter_seek_first(&it->data);
    }
}

static bool ti_valid(sst_iter *i)
{
    table_iter *it = (table_iter *)i;
    return it->status == BT_OK && it->in_block && it->data.valid;
}

/* Shared start of both seeks: with the index positioned, load its block. */
static bool ti_position(table_iter *it)
{
    it->data.valid = false;
    if (!it->index.valid) {
        if (it->index.status) it->status = it->index.status;
        return false;
    }
    return load_block(it) == BT_OK;
}

static void ti_seek_first(sst_iter *i)
{
    table_iter *it = (table_iter *)i;
    it->status = BT_OK;
    sst_block_iter_seek_first(&it->index);
    if (!ti_position(it)) return;
    sst_block_iter_seek_first(&it->data);
    skip_forward(it);
}

static void ti_seek(sst_iter *i, const uint8_t *target, size_t n)
{
    table_iter *it = (table_iter *)i;
    it->status = BT_OK;
    sst_block_iter_seek(&it->index, target, n);
    if (!ti_position(it)) return;
    sst_block_iter_seek(&it->data, target, n);
    skip_forward(it);
}

static void ti_next(sst_iter *i)
{
    table_iter *it = (table_iter *)i;
    sst_block_iter_next(&it->data);
    if (!it->data.valid) skip_forward(it);
}

static const uint8_t *ti_key(sst_iter *i, size_t *n)
{
    return sst_block_iter_key(&((table_iter *)i)->data, n);
}

static const uint8_t *ti_value(sst_iter *i, size_t *n)
{
    table_iter *it = (table_iter *)i;
    *n = it->data.vlen;
    return it->data.val;
}

static int ti_status(sst_iter *i) { return ((table_iter *)i)->status; }

static void ti_destroy(sst_iter *i)
{
    table_iter *it = (table_iter *)i;
    drop_block(it);
    sst_block_iter_free(&it->index);
    sst_block_iter_free(&it->data);
    bt_buf_free(&it->raw);
    bt_buf_free(&it->ubuf);
    sst_reader_unref(it->r);
    free(it);
}

static const struct sst_iter_ops table_iter_ops = {
    .valid = ti_valid, .seek_first = ti_seek_first, .seek = ti_seek, .next = ti_next,
    .key = ti_key, .value = ti_value, .status = ti_status, .destroy = ti_destroy,
};

static sst_iter *new_iter(sst_reader *r, bool fill_cache, bool no_io)
{
    table_iter *it = calloc(1, sizeof *it);
    if (!it) return NULL;
    it->base.ops = &table_iter_ops;
    it->r = r;
    it->fill_cache = fill_cache;
    it->no_io = no_io;
    it->seq_next = UINT64_MAX;
    it->seq_run = 0;
    sst_block_iter_init(&it->index, &r->index);
    sst_block_iter_init(&it->data, NULL);
    sst_reader_ref(r);
    return &it->base;
}

sst_iter *sst_reader_iter(sst_reader *r, bool fill_cache) { return new_iter(r, fill_cache, false); }

sst_iter *sst_reader_iter_no_io(sst_reader *r) { return new_iter(r, false, true); }

/* ---- size estimates ------------------------------------------------------------------- */

int sst_reader_mid_key(const sst_reader *r, bt_buf *out)
{
    uint64_t nblocks = r->props.num_data_blocks;
    if (nblocks < 2) return BT_ENOTFOUND;
    /* Block ends grow monotonically, so the distance to the middle falls and
     * then rises; the last block is excluded so both halves are non-empty. */
    uint64_t half = r->data_end / 2, best = UINT64_MAX, i = 0;
    sst_block_iter it;
    sst_block_iter_init(&it, &r->index);
    int rc = BT_OK;
    for (sst_block_iter_seek_first(&it); it.valid && i + 1 < nblocks; sst_block_iter_next(&it), i++) {
        handle h;
        if (!decode_handle(it.val, it.vlen, &h)) break;
        uint64_t end = h.off + h.size + SST_BLOCK_TRAILER;
        uint64_t dist = end > half ? end - half : half - end;
        if (dist >= best) break;
        best = dist;
        out->len = 0;
        if ((rc = bt_buf_append(out, it.key.data, it.key.len))) break;
    }
    sst_block_iter_free(&it);
    return rc;
}

uint64_t sst_reader_approx_offset(const sst_reader *r, const uint8_t *key, size_t n)
{
    sst_block_iter it;
    sst_block_iter_init(&it, &r->index);
    sst_block_iter_seek(&it, key, n);
    handle h;
    uint64_t off = r->data_end;
    if (it.valid && decode_handle(it.val, it.vlen, &h)) off = h.off;
    sst_block_iter_free(&it);
    return off;
}

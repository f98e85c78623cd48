/* client/bt_bulk.c: bulk loads (bt.h "bulk load"; the tablet's side is
 * tabletserver/bulk.h).
 *
 * Cells are buffered as sort entries: the internal key of the cell without
 * its sequence -- ESC(row) ESC(family) ESC(qualifier) TS(8) -- followed by 8
 * bytes that order later additions first, so that bytewise order is the
 * engine's order and, among duplicates, the first one seen is the one added
 * last.  A full buffer is sorted and spilled as an SSTable ("run") into a
 * private temporary directory.  bt_bulk_finish merges the in-memory entries
 * with every run (sstable's merging iterator), drops duplicates, and routes
 * the stream to the table's tablets in row order: per tablet it asks for
 * the tablet's directory (TSP_BULK_PREPARE), writes the tablet's SSTables
 * there (one builder per locality group, cut at sstable_bytes; keys with the
 * bulk placeholder tag, names carrying a random load id) and attaches them
 * (TSP_BULK_ATTACH), which gives them one sequence number.  An attach that
 * fails on the way (timeout, lost connection, the tablet moved) is repeated
 * with the same load id where the tablet is now: the tablet answers OK to a
 * load it already attached, and a tablet that moved reads the same
 * directory.  Only if the tablet split meanwhile are the files merged and
 * routed again over a fresh description of the table ("re-cut"), then
 * removed.
 */
#include "client/bt_internal.h"
#include "common/log.h"
#include "common/status.h"
#include "sstable/table.h"
#include "tabletserver/bulk.h"
#include "tabletserver/ikey.h"
#include "tabletserver/ts_proto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void (*bt_bulk_before_attach)(uint64_t tablet_id, void *arg);
void *bt_bulk_before_attach_arg;

#define SUFFIX 8                    /* insertion counter, or the final tag */
#define RECUT_DEPTH 8

/* A buffered entry: its key's first 8 bytes (big-endian, zero-padded) and
 * its offset in the arena.  Most comparisons of the sort end at the prefix,
 * without touching the arena. */
typedef struct bt_bulk_ent {
    uint64_t pfx;
    size_t off;
} bt_bulk_ent;

struct bt_bulk {
    bt_client *c;
    bt_table *t;
    ts_schema schema;
    bt_bulk_options o;
    char tmp[PATH_MAX];             /* private run directory ("" until the first spill) */
    bt_buf arena;                   /* entries: u32 klen, u32 vlen, key, value */
    bt_bulk_ent *offs;              /* entries: key prefix and offset in arena */
    size_t n, cap;
    uint64_t counter;
    int runs;
    bt_bulk_stats st;
};

/* ---- adding ----------------------------------------------------------------------- */

int bt_bulk_begin(bt_client *c, const char *table, const bt_bulk_options *o, bt_bulk **out)
{
    if (!c || !table || !out) return bt_err(BT_EINVAL, "bt_bulk_begin: NULL argument");
    *out = NULL;
    bt_bulk *b = calloc(1, sizeof *b);
    if (!b) return BT_ENOMEM;
    b->c = c;
    if (o) b->o = *o;
    if (!b->o.memory_bytes) b->o.memory_bytes = (size_t)256 << 20;
    if (b->o.memory_bytes < ((size_t)1 << 20)) b->o.memory_bytes = (size_t)1 << 20;
    if (!b->o.sstable_bytes) b->o.sstable_bytes = (uint64_t)256 << 20;
    int rc = bt_table_open(c, table, &b->t);
    if (!rc) rc = bt_table_schema(b->t, true, &b->schema);
    if (rc) {
        bt_table_close(b->t);
        free(b);
        return rc;
    }
    *out = b;
    return BT_OK;
}

static int spill(bt_bulk *b);

int bt_bulk_add(bt_bulk *b, const void *row, size_t row_len, const char *family, const void *qualifier,
                size_t qualifier_len, int64_t timestamp, const void *value, size_t value_len)
{
    if (!b || !family) return bt_err(BT_EINVAL, "bt_bulk_add: NULL argument");
    int rc = bt_check_row(row, row_len);
    if (rc) return rc;
    if (timestamp == BT_SERVER_TIME || timestamp < 0 || timestamp == INT64_MAX)
        return bt_err(BT_EINVAL, "bulk cells need a timestamp in [0, INT64_MAX) (BT_SERVER_TIME is not allowed)");
    if (qualifier_len > TS_MAX_QUALIFIER)
        return bt_err(BT_ETOOBIG, "qualifier of %zu bytes (the limit is %d)", qualifier_len, TS_MAX_QUALIFIER);
    if (value_len > TS_MAX_VALUE)
        return bt_err(BT_ETOOBIG, "value of %zu bytes (the limit is %d)", value_len, TS_MAX_VALUE);
    size_t fl = strlen(family);
    if (ts_schema_find(&b->schema, family, fl) < 0) {
        /* a family added after bt_bulk_begin */
        ts_schema s;
        if (bt_table_schema(b->t, true, &s) == BT_OK) b->schema = s;
        if (ts_schema_find(&b->schema, family, fl) < 0)
            return bt_err(BT_ENOTFOUND, "table \"%s\" has no family \"%s\"", bt_table_name(b->t), family);
    }
    size_t kn = ts_esc_len(row, row_len) + ts_esc_len((const uint8_t *)family, fl) +
                ts_esc_len(qualifier, qualifier_len) + 8 + SUFFIX;
    if (b->arena.len && b->arena.len + kn + value_len + 8 + b->n * sizeof *b->offs > b->o.memory_bytes &&
        (rc = spill(b)))
        return rc;
    if (b->n == b->cap) {
        size_t nc = b->cap ? 2 * b->cap : 65536;
        bt_bulk_ent *no = realloc(b->offs, nc * sizeof *no);
        if (!no) return BT_ENOMEM;
        b->offs = no;
        b->cap = nc;
    }
    /* the whole buffer at once: doubling would overshoot memory_bytes */
    if (!b->arena.cap && (rc = bt_buf_reserve(&b->arena, b->o.memory_bytes))) return rc;
    if ((rc = bt_buf_reserve(&b->arena, 8 + kn + value_len))) return rc;
    uint8_t *p = b->arena.data + b->arena.len;
    uint32_t k32 = (uint32_t)kn, v32 = (uint32_t)value_len;
    memcpy(p, &k32, 4);
    memcpy(p + 4, &v32, 4);
    uint8_t *k = p + 8;
    k = ts_put_esc(k, row, row_len);
    k = ts_put_esc(k, (const uint8_t *)family, fl);
    k = ts_put_esc(k, qualifier, qualifier_len);
    ts_put_ts(k, timestamp);
    bt_put_fixed64_be(k + 8, ~b->counter++);
    if (value_len) memcpy(p + 8 + kn, value, value_len);
    uint8_t pb[8] = {0};
    memcpy(pb, p + 8, kn < 8 ? kn : 8);
    b->offs[b->n++] = (bt_bulk_ent){bt_get_fixed64_be(pb), b->arena.len};
    b->arena.len += 8 + kn + value_len;
    b->st.bytes += row_len + fl + qualifier_len + value_len;
    return BT_OK;
}

/* ---- sorting and spilling ---------------------------------------------------------- */

static const uint8_t *ent_key(const bt_bulk *b, size_t off, size_t *kn)
{
    uint32_t k32;
    memcpy(&k32, b->arena.data + off, 4);
    *kn = k32;
    return b->arena.data + off + 8;
}

static const uint8_t *ent_val(const bt_bulk *b, size_t off, size_t *vn)
{
    uint32_t k32, v32;
    memcpy(&k32, b->arena.data + off, 4);
    memcpy(&v32, b->arena.data + off + 4, 4);
    *vn = v32;
    return b->arena.data + off + 8 + k32;
}

static int cmp_ent(const void *x, const void *y, void *arg)
{
    const bt_bulk_ent *ex = x, *ey = y;
    if (ex->pfx != ey->pfx) return ex->pfx < ey->pfx ? -1 : 1;
    size_t an, bn;
    const uint8_t *a = ent_key(arg, ex->off, &an);
    const uint8_t *b = ent_key(arg, ey->off, &bn);
    return sst_key_cmp(a, an, b, bn);
}

static void sort_entries(bt_bulk *b)
{
    qsort_r(b->offs, b->n, sizeof *b->offs, cmp_ent, b);
}

static void run_path(const bt_bulk *b, int i, char *out, size_t cap)
{
    snprintf(out, cap, "%s/run-%06d.sst", b->tmp, i);
}

static int spill(bt_bulk *b)
{
    if (!b->n) return BT_OK;
    if (!b->tmp[0]) {
        const char *base = b->o.tmp_dir ? b->o.tmp_dir : getenv("TMPDIR");
        if (!base || !*base) base = "/tmp";
        if (snprintf(b->tmp, sizeof b->tmp, "%s/bt-bulk-XXXXXX", base) >= (int)sizeof b->tmp)
            return bt_err(BT_EINVAL, "temporary directory path too long");
        if (!mkdtemp(b->tmp)) {
            int e = errno;
            b->tmp[0] = '\0';
            return bt_err(BT_EIO, "cannot create a directory for sorted runs under %s: %s", base, strerror(e));
        }
    }
    sort_entries(b);
    sst_options so;
    sst_options_default(&so);
    so.bloom_bits_per_key = 0;
    so.block_size = 64 << 10;
    char path[PATH_MAX + 32];
    run_path(b, b->runs, path, sizeof path);
    sst_builder *sb;
    int rc = sst_builder_new(bt_env_posix(), path, &so, &sb);
    for (size_t i = 0; !rc && i < b->n; i++) {
        size_t kn, vn;
        const uint8_t *k = ent_key(b, b->offs[i].off, &kn), *v = ent_val(b, b->offs[i].off, &vn);
        rc = sst_builder_add(sb, k, kn, v, vn);
    }
    if (!rc) rc = sst_builder_finish(sb, NULL);
    else if (sb) sst_builder_abandon(sb);
    if (rc) return bt_err(rc, "spilling a sorted run to %s: %s", path, bt_errmsg());
    b->runs++;
    b->st.runs_spilled++;
    b->n = 0;
    b->arena.len = 0;
    return BT_OK;
}

/* The sorted in-memory entries as an sst_iter. */
typedef struct mem_iter {
    sst_iter it;
    const bt_bulk *b;
    size_t i;
} mem_iter;

static bool mi_valid(sst_iter *it) { mem_iter *m = (mem_iter *)it; return m->i < m->b->n; }
static void mi_first(sst_iter *it) { ((mem_iter *)it)->i = 0; }
static void mi_seek(sst_iter *it, const uint8_t *k, size_t n)
{
    mem_iter *m = (mem_iter *)it;
    size_t lo = 0, hi = m->b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2, kn;
        const uint8_t *key = ent_key(m->b, m->b->offs[mid].off, &kn);
        if (sst_key_cmp(key, kn, k, n) < 0) lo = mid + 1;
        else hi = mid;
    }
    m->i = lo;
}
static void mi_next(sst_iter *it) { ((mem_iter *)it)->i++; }
static const uint8_t *mi_key(sst_iter *it, size_t *n) { mem_iter *m = (mem_iter *)it; return ent_key(m->b, m->b->offs[m->i].off, n); }
static const uint8_t *mi_value(sst_iter *it, size_t *n) { mem_iter *m = (mem_iter *)it; return ent_val(m->b, m->b->offs[m->i].off, n); }
static int mi_status(sst_iter *it) { (void)it; return BT_OK; }
static void mi_destroy(sst_iter *it) { free(it); }
static const struct sst_iter_ops mem_ops = { mi_valid, mi_first, mi_seek, mi_next, mi_key, mi_value, mi_status, mi_destroy };

/* Iterators over files (readers opened without a cache); NULL entries on failure. */
static int open_file_iters(char **paths, size_t n, sst_iter **its)
{
    for (size_t i = 0; i < n; i++) {
        sst_reader *r;
        int rc = sst_reader_open(bt_env_posix(), paths[i], NULL, &r);
        if (rc) return bt_err(rc, "reading %s: %s", paths[i], bt_errmsg());
        its[i] = sst_reader_iter(r, false);
        sst_reader_unref(r); /* the iterator holds its own reference */
        if (!its[i]) return BT_ENOMEM;
    }
    return BT_OK;
}

/* ---- tablets ------------------------------------------------------------------------ */

typedef struct staged { char *path; char *name; int group; } staged;

/* One tablet being written. */
typedef struct sess {
    bool open;
    uint64_t id;
    char server[256];
    uint64_t load_id;               /* random; in the files' names */
    char dir[PATH_MAX];
    sst_builder *b[TS_MAX_GROUPS];
    int cur[TS_MAX_GROUPS];         /* index in files[] of each group's open file */
    staged *files;
    int n_files, cap_files;
    int next_name;
} sess;


typedef struct router {
    bt_bulk *b;
    bt_table_desc *d;
    bt_buf *end_esc;                /* per tablet of d: ESC(end); len 0 for the last */
    size_t cur;                     /* tablet of the next cell */
    sess s;
    int depth;                      /* re-cut nesting */
    bool primary;                   /* the merged input: drop duplicates, count */
    bt_buf last;                    /* previous key without its suffix (primary) */
    bt_buf last_row;                /* its ESC(row) */
    bt_buf key;                     /* the engine key being added */
    bt_buf fam_esc;                 /* ESC(family) of fam_group's cache */
    int fam_group;
} router;

static void free_desc(router *R)
{
    for (size_t i = 0; R->d && R->end_esc && i < R->d->n_tablets; i++) bt_buf_free(&R->end_esc[i]);
    free(R->end_esc);
    R->end_esc = NULL;
    bt_table_desc_free(R->d);
    R->d = NULL;
}

/* (Re)reads the table's tablets and points cur at the tablet holding key. */
static int describe(router *R, const uint8_t *key, size_t kn)
{
    free_desc(R);
    int rc = bt_describe_table(R->b->c, bt_table_name(R->b->t), &R->d);
    if (rc) return rc;
    if (!R->d->n_tablets) return bt_err(BT_EUNAVAIL, "table %s has no tablets", R->d->name);
    if (!(R->end_esc = calloc(R->d->n_tablets, sizeof *R->end_esc))) return BT_ENOMEM;
    for (size_t i = 0; !rc && i < R->d->n_tablets; i++)
        if (R->d->tablets[i].end_len) rc = ts_buf_put_esc(&R->end_esc[i], R->d->tablets[i].end, R->d->tablets[i].end_len);
    R->cur = 0;
    while (key && R->cur + 1 < R->d->n_tablets && R->end_esc[R->cur].len &&
           sst_key_cmp(key, kn, R->end_esc[R->cur].data, R->end_esc[R->cur].len) >= 0)
        R->cur++;
    return rc;
}

static void staged_free(sess *s, bool unlink_files)
{
    for (int g = 0; g < TS_MAX_GROUPS; g++)
        if (s->b[g]) sst_builder_abandon(s->b[g]);
    for (int i = 0; i < s->n_files; i++) {
        if (unlink_files) unlink(s->files[i].path);
        free(s->files[i].path);
        free(s->files[i].name);
    }
    free(s->files);
    memset(s, 0, sizeof *s);
}

static uint64_t random_id(void)
{
    uint64_t v = 0;
    while (!v)
        if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) v = (uint64_t)bt_now_us() * 0x9e3779b97f4a7c15ull;
    return v;
}

/* Opens a session on the tablet holding key: asks its server for the
 * tablet's directory (re-describing and backing off while the tablet is
 * unassigned, moving or splitting). */
static int open_sess(router *R, const uint8_t *key, size_t kn)
{
    bt_op op;
    bt_op_init(&op, R->b->c);
    for (;;) {
        const bt_tablet_desc *td = &R->d->tablets[R->cur];
        int rc;
        if (!td->server[0]) {
            rc = bt_err(BT_EUNAVAIL, "tablet %" PRIu64 " is not assigned", td->id);
        } else {
            bt_buf req = {0}, resp = {0};
            bt_msg_writer w;
            bt_msg_writer_init(&w, &req);
            bt_msg_put_varint(&w, td->id);
            rc = bt_msg_writer_status(&w);
            if (!rc) rc = bt_client_rpc(R->b->c, td->server, TSP_BULK_PREPARE, &req, &resp, bt_op_attempt_ms(&op));
            if (!rc) {
                bt_msg_reader r;
                bt_msg_reader_init(&r, resp.data, resp.len);
                const uint8_t *dir;
                size_t dl;
                sess *s = &R->s;
                rc = bt_msg_get_bytes(&r, &dir, &dl);
                if (!rc && dl >= sizeof s->dir) rc = bt_err(BT_EINVAL, "tablet directory path too long");
                if (!rc) {
                    memcpy(s->dir, dir, dl);
                    s->dir[dl] = '\0';
                    s->id = td->id;
                    s->load_id = random_id();
                    snprintf(s->server, sizeof s->server, "%s", td->server);
                    s->open = true;
                    if (access(s->dir, W_OK) != 0)
                        rc = bt_err(BT_EIO, "bulk load: cannot write the tablet directory %s (%s): the client "
                                    "must see the servers' --data-dir at the same path", s->dir, strerror(errno));
                }
            }
            bt_buf_free(&req);
            bt_buf_free(&resp);
            if (!rc || !bt_retryable(rc)) return rc;
        }
        if (!bt_op_backoff(&op, rc)) return bt_op_fail(&op, "bulk load: finding a tablet");
        if ((rc = describe(R, key, kn))) return rc;
    }
}

static int finish_file(router *R, int g)
{
    sess *s = &R->s;
    sst_builder *sb = s->b[g];
    s->b[g] = NULL;
    int rc = sst_builder_set_prop(sb, "max_seq", 0);
    if (!rc) rc = sst_builder_set_prop(sb, "num_deletions", 0);
    if (rc) {
        sst_builder_abandon(sb);
        return rc;
    }
    rc = sst_builder_finish(sb, NULL);
    if (rc) return bt_err(rc, "writing %s: %s", s->files[s->cur[g]].path, bt_errmsg());
    return BT_OK;
}

static int add_to_sess(router *R, int g, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    sess *s = &R->s;
    int rc;
    if (!s->b[g]) {
        if (s->n_files == TS_BULK_MAX_FILES)
            return bt_err(BT_ETOOBIG, "bulk load: more than %d files for one tablet", TS_BULK_MAX_FILES);
        if (s->n_files == s->cap_files) {
            int nc = s->cap_files ? 2 * s->cap_files : 8;
            staged *nf = realloc(s->files, (size_t)nc * sizeof *nf);
            if (!nf) return BT_ENOMEM;
            s->files = nf;
            s->cap_files = nc;
        }
        char name[64], path[PATH_MAX + 64];
        snprintf(name, sizeof name, TS_BULK_PREFIX "%016" PRIx64 "-%d.sst", s->load_id, s->next_name++);
        snprintf(path, sizeof path, "%s/%s", s->dir, name);
        /* never write over another loader's file */
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) return bt_err(errno == EEXIST ? BT_EEXIST : BT_EIO, "creating %s: %s", path, strerror(errno));
        close(fd);
        staged *f = &s->files[s->n_files];
        f->name = strdup(name);
        f->path = strdup(path);
        f->group = g;
        if (!f->name || !f->path) {
            free(f->name);
            free(f->path);
            return BT_ENOMEM;
        }
        s->n_files++;
        sst_options so;
        ts_sst_options_for(&R->b->schema, g, &so);
        if ((rc = sst_builder_new(bt_env_posix(), path, &so, &s->b[g])))
            return bt_err(rc, "creating %s: %s", path, bt_errmsg());
        s->cur[g] = s->n_files - 1;
    }
    rc = sst_builder_add(s->b[g], k, kn, v, vn);
    if (!rc && sst_builder_size(s->b[g]) >= R->b->o.sstable_bytes) rc = finish_file(R, g);
    return rc;
}

static int route_stream(router *R, sst_iter *it);

/* Writes the files of a session whose tablet split before they were
 * attached again, over the table's current tablets, then removes them. */
static int recut(router *R, sess *old)
{
    if (R->depth >= RECUT_DEPTH)
        return bt_err(BT_EUNAVAIL, "bulk load: tablet %" PRIu64 " kept splitting", old->id);
    char **paths = calloc((size_t)old->n_files, sizeof *paths);
    sst_iter **its = calloc((size_t)old->n_files, sizeof *its);
    int rc = paths && its ? BT_OK : BT_ENOMEM;
    for (int i = 0; !rc && i < old->n_files; i++) {
        paths[i] = old->files[i].path;
        if (access(paths[i], F_OK) != 0)
            rc = bt_err(BT_EUNAVAIL, "bulk load of tablet %" PRIu64 ": its staged file %s is gone (an attach "
                        "whose answer was lost took it before the tablet split?); whether those rows were "
                        "loaded is unknown", old->id, old->files[i].name);
    }
    if (!rc) rc = open_file_iters(paths, (size_t)old->n_files, its);
    sst_iter *m = NULL;
    if (!rc) {
        m = sst_iter_new_merging(its, old->n_files); /* owns them, even on failure */
        memset(its, 0, (size_t)old->n_files * sizeof *its);
        if (!m) rc = BT_ENOMEM;
    }
    if (!rc) {
        router sub = { .b = R->b, .depth = R->depth + 1 };
        sst_iter_seek_first(m);
        size_t kn = 0;
        const uint8_t *k = sst_iter_valid(m) ? sst_iter_key(m, &kn) : NULL;
        rc = describe(&sub, k, kn);
        if (!rc) rc = route_stream(&sub, m);
        if (sub.s.open) staged_free(&sub.s, rc != BT_OK);
        free_desc(&sub);
        bt_buf_free(&sub.key);
        bt_buf_free(&sub.fam_esc);
    }
    sst_iter_destroy(m);
    for (int i = 0; its && i < old->n_files; i++) sst_iter_destroy(its[i]);
    free(its);
    free(paths);
    if (!rc) staged_free(old, true);
    return rc;
}

static int attach(bt_client *c, const sess *s, int timeout_ms)
{
    bt_buf req = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, s->id);
    bt_msg_put_fixed64(&w, s->load_id);
    bt_msg_put_varint(&w, (uint64_t)s->n_files);
    for (int i = 0; i < s->n_files; i++) {
        bt_msg_put_bytes(&w, s->files[i].name, strlen(s->files[i].name));
        bt_msg_put_varint(&w, (uint64_t)s->files[i].group);
    }
    int rc = bt_msg_writer_status(&w);
    if (!rc) rc = bt_client_rpc(c, s->server, TSP_BULK_ATTACH, &req, NULL, timeout_ms);
    bt_buf_free(&req);
    return rc;
}

static bool any_file_exists(const sess *s)
{
    for (int i = 0; i < s->n_files; i++)
        if (access(s->files[i].path, F_OK) == 0) return true;
    return false;
}

/* Where tablet id is now: its index in a fresh description, or -1 if it
 * is gone (split, or its table deleted). */
static int relocate(router *R, uint64_t id, size_t *idx)
{
    int rc = describe(R, NULL, 0);
    if (rc) return rc;
    for (size_t i = 0; i < R->d->n_tablets; i++)
        if (R->d->tablets[i].id == id) {
            *idx = i;
            return BT_OK;
        }
    return BT_ENOTFOUND;
}

/* Finishes the open session: its files, then the attach -- repeated where
 * the tablet is now after a failure that may have come before or after the
 * tablet attached them, and re-cut if the tablet split. */
static int finish_sess(router *R)
{
    sess *s = &R->s;
    int rc = BT_OK;
    for (int g = 0; !rc && g < TS_MAX_GROUPS; g++)
        if (s->b[g]) rc = finish_file(R, g);
    if (rc) {
        staged_free(s, true);
        return rc;
    }
    if (bt_bulk_before_attach) bt_bulk_before_attach(s->id, bt_bulk_before_attach_arg);
    bt_op op;
    bt_op_init(&op, R->b->c);
    bool maybe_attached = false;    /* an earlier attempt may have attached them */
    for (;;) {
        rc = attach(R->b->c, s, bt_op_attempt_ms(&op));
        if (rc == BT_ENOTFOUND && maybe_attached && !any_file_exists(s)) {
            /* an attach whose answer was lost took them (a failed attach
             * renames them back), and the tablet has moved since */
            rc = BT_OK;
        }
        if (!rc) {
            R->b->st.sstables += (uint64_t)s->n_files;
            R->b->st.tablets++;
            staged_free(s, false);
            return BT_OK;
        }
        if (!bt_retryable(rc)) {
            staged_free(s, true);
            return rc;
        }
        if (rc != BT_ENOTSERVING) maybe_attached = true;
        if (!bt_op_backoff(&op, rc)) {
            rc = bt_op_fail(&op, "bulk load: attaching a tablet's files");
            staged_free(s, true);
            return rc;
        }
        size_t idx = 0;
        int lr = relocate(R, s->id, &idx);
        if (lr == BT_OK) {
            /* the tablet moved or its server restarted: same directory */
            snprintf(s->server, sizeof s->server, "%s", R->d->tablets[idx].server);
            continue;
        }
        if (lr != BT_ENOTFOUND) {
            staged_free(s, true);
            return lr;
        }
        break; /* it split: re-cut */
    }
    sess old = *s;
    memset(s, 0, sizeof *s);
    R->b->st.recuts++;
    rc = recut(R, &old);
    if (rc) staged_free(&old, true);
    return rc;
}

static int group_of(router *R, const uint8_t *k, size_t kn, int *g)
{
    ts_ikey ik;
    if (!ts_ikey_parse(k, kn, &ik) || !ik.family_len) return bt_err(BT_ECORRUPT, "bulk load: malformed sort key");
    if (R->fam_esc.len == ik.family_len && !memcmp(R->fam_esc.data, ik.family, ik.family_len)) {
        *g = R->fam_group;
        return BT_OK;
    }
    char name[TS_MAX_NAME * 2 + 4];
    if (ik.family_len > sizeof name) return bt_err(BT_ECORRUPT, "bulk load: family name too long");
    size_t fl = ts_unescape(ik.family, ik.family_len, (uint8_t *)name);
    int fi = ts_schema_find(&R->b->schema, name, fl);
    if (fi < 0) return bt_err(BT_ENOTFOUND, "table %s has no family \"%.*s\" (dropped during the load?)",
                              bt_table_name(R->b->t), (int)fl, name);
    bt_buf_clear(&R->fam_esc);
    int rc = bt_buf_append(&R->fam_esc, ik.family, ik.family_len);
    if (rc) return rc;
    R->fam_group = R->b->schema.families[fi].group;
    *g = R->fam_group;
    return BT_OK;
}

static int route_cell(router *R, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    int rc;
    if (kn <= SUFFIX + 8) return bt_err(BT_ECORRUPT, "bulk load: malformed sort key");
    if (R->primary) {
        size_t pn = kn - SUFFIX;
        if (R->last.len == pn && !memcmp(R->last.data, k, pn)) return BT_OK; /* an older duplicate */
        bt_buf_clear(&R->last);
        if ((rc = bt_buf_append(&R->last, k, pn))) return rc;
        size_t rl = ts_ikey_row_prefix(k, kn);
        if (R->last_row.len != rl || memcmp(R->last_row.data, k, rl)) {
            bt_buf_clear(&R->last_row);
            if ((rc = bt_buf_append(&R->last_row, k, rl))) return rc;
            R->b->st.rows++;
        }
        R->b->st.cells++;
    }
    while (R->cur + 1 < R->d->n_tablets && R->end_esc[R->cur].len &&
           sst_key_cmp(k, kn, R->end_esc[R->cur].data, R->end_esc[R->cur].len) >= 0) {
        if (R->s.open && (rc = finish_sess(R))) return rc;
        R->cur++;
    }
    if (!R->s.open && (rc = open_sess(R, k, kn))) return rc;
    /* the file's key: the sort key with the bulk placeholder tag (a PUT tag
     * first, for parsing out the family) */
    bt_buf_clear(&R->key);
    if ((rc = bt_buf_append(&R->key, k, kn))) return rc;
    bt_put_fixed64_be(R->key.data + kn - SUFFIX, ~(uint64_t)TS_KT_PUT);
    int g = 0;
    if ((rc = group_of(R, R->key.data, kn, &g))) return rc;
    ts_bulk_put_tag(R->key.data + kn - SUFFIX);
    return add_to_sess(R, g, R->key.data, kn, v, vn);
}

static int route_stream(router *R, sst_iter *it)
{
    int rc = BT_OK;
    for (sst_iter_seek_first(it); !rc && sst_iter_valid(it); sst_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = sst_iter_key(it, &kn), *v = sst_iter_value(it, &vn);
        rc = route_cell(R, k, kn, v, vn);
    }
    if (!rc) rc = sst_iter_status(it);
    if (!rc && R->s.open) rc = finish_sess(R);
    return rc;
}

/* ---- finishing ---------------------------------------------------------------------- */

static void remove_runs(bt_bulk *b)
{
    if (!b->tmp[0]) return;
    char path[PATH_MAX + 32];
    for (int i = 0; i < b->runs; i++) {
        run_path(b, i, path, sizeof path);
        unlink(path);
    }
    rmdir(b->tmp);
    b->tmp[0] = '\0';
}

static void bulk_free(bt_bulk *b)
{
    remove_runs(b);
    bt_buf_free(&b->arena);
    free(b->offs);
    bt_table_close(b->t);
    free(b);
}

int bt_bulk_finish(bt_bulk *b, bt_bulk_stats *st)
{
    if (st) memset(st, 0, sizeof *st);
    if (!b) return bt_err(BT_EINVAL, "bt_bulk_finish: NULL bulk load");
    sort_entries(b);
    int n = 1 + b->runs, rc = BT_OK;
    sst_iter **its = calloc((size_t)n, sizeof *its);
    char **paths = calloc((size_t)n, sizeof *paths);
    mem_iter *mi = calloc(1, sizeof *mi);
    if (!its || !paths || !mi) rc = BT_ENOMEM;
    if (!rc) {
        mi->it.ops = &mem_ops;
        mi->b = b;
        its[0] = &mi->it;
        mi = NULL;
    }
    for (int i = 0; !rc && i < b->runs; i++) {
        paths[i] = malloc(PATH_MAX + 32);
        if (!paths[i]) rc = BT_ENOMEM;
        else run_path(b, i, paths[i], PATH_MAX + 32);
    }
    if (!rc) rc = open_file_iters(paths, (size_t)b->runs, its + 1);
    sst_iter *m = NULL;
    if (!rc) {
        m = sst_iter_new_merging(its, n); /* owns them, even on failure */
        memset(its, 0, (size_t)n * sizeof *its);
        if (!m) rc = BT_ENOMEM;
    }
    if (!rc) {
        router R = { .b = b, .primary = true };
        rc = describe(&R, NULL, 0);
        if (!rc) rc = route_stream(&R, m);
        if (R.s.open) staged_free(&R.s, true);
        free_desc(&R);
        bt_buf_free(&R.last);
        bt_buf_free(&R.last_row);
        bt_buf_free(&R.key);
        bt_buf_free(&R.fam_esc);
    }
    sst_iter_destroy(m);
    for (int i = 0; its && i < n; i++) sst_iter_destroy(its[i]);
    free(its);
    for (int i = 0; paths && i < b->runs; i++) free(paths[i]);
    free(paths);
    free(mi);
    if (st) *st = b->st;
    if (rc) {
        char why[400];
        snprintf(why, sizeof why, "%s", bt_errmsg());
        bulk_free(b);
        return bt_err(rc, "%s", why);
    }
    bulk_free(b);
    return BT_OK;
}

void bt_bulk_abort(bt_bulk *b)
{
    if (b) bulk_free(b);
}

/* tabletserver/split.c: the engine-level split of one tablet into two.
 *
 * The parent is frozen (new writes get BT_ENOTSERVING), flushed, and its
 * background work drained, so every mutation it acknowledged is in its
 * SSTables.  Each child then gets a manifest listing all of the parent's
 * files as inherited, each restricted to the child's half of the key space
 * ([ESC(start), ESC(mid)) and [ESC(mid), ESC(end)) in internal-key order),
 * and starts its sequence numbers after the parent's.  No data is copied:
 * the children's first major compactions rewrite their halves into files of
 * their own, after which the parent's files are garbage (the master's GC
 * deletes them; a tablet never deletes inherited files).
 *
 * The split is committed once both child manifests are durable and both
 * children opened; if anything fails before, the parent serves on.  The
 * parent directory is left as it was for the caller (the tablet server
 * writes its SPLIT marker, records the split in METADATA, then tells the
 * master).
 */
#include "tabletserver/tablet_internal.h"
#include "common/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The middle row of the tablet's biggest SSTable (t->mu held). */
static int pick_mid(ts_tablet *t, bt_buf *mid)
{
    ts_table *big = NULL;
    for (int i = 0; i < t->ver->n; i++)
        if (!big || t->ver->tables[i]->meta.size > big->meta.size) big = t->ver->tables[i];
    if (!big) return bt_err(BT_EFAILED_PRECONDITION, "tablet %llu has no data to split", (unsigned long long)t->id);
    bt_buf key = {0};
    int rc = sst_reader_mid_key(big->reader, &key);
    if (rc) {
        bt_buf_free(&key);
        return bt_err(BT_EFAILED_PRECONDITION, "tablet %llu is too small to split", (unsigned long long)t->id);
    }
    /* the index key is a separator, not always a whole internal key: take
     * its row part, the bytes up to the first 00 01 terminator */
    size_t rl = 0;
    for (size_t i = 0; i + 1 < key.len; i++) {
        if (key.data[i] == 0 && key.data[i + 1] == 1) { rl = i + 2; break; }
        if (key.data[i] == 0) i++;
    }
    if (rl == 0) rl = key.len; /* separator cut inside the row: use it whole */
    rc = bt_buf_reserve(mid, rl);
    if (!rc) {
        if (rl >= 2 && key.data[rl - 2] == 0 && key.data[rl - 1] == 1) {
            mid->len = ts_unescape(key.data, rl, mid->data);
        } else {
            memcpy(mid->data, key.data, rl);  /* unterminated: raw prefix bytes */
            mid->len = rl;
        }
    }
    bt_buf_free(&key);
    return rc;
}

static bool strictly_inside(const ts_tablet *t, const bt_buf *mid)
{
    if (mid->len == 0 || sst_key_cmp(mid->data, mid->len, t->start.data, t->start.len) <= 0) return false;
    return t->end.len == 0 || sst_key_cmp(mid->data, mid->len, t->end.data, t->end.len) < 0;
}

/* Sets dst = the intersection of [a_lo, a_hi) with [b_lo, b_hi) bound by bound. */
static int pick_lo(bt_buf *dst, const bt_buf *a, const bt_buf *b)
{
    const bt_buf *m = sst_key_cmp(a->data, a->len, b->data, b->len) >= 0 ? a : b;
    return bt_buf_append(dst, m->data, m->len);
}

static int pick_hi(bt_buf *dst, const bt_buf *a, const bt_buf *b)
{
    const bt_buf *m;
    if (a->len == 0) m = b;
    else if (b->len == 0) m = a;
    else m = sst_key_cmp(a->data, a->len, b->data, b->len) <= 0 ? a : b;
    return bt_buf_append(dst, m->data, m->len);
}

/* Writes a child manifest for rows [lo_row, hi_row) (t->mu held). */
static int write_child(ts_tablet *t, const char *dir, uint64_t id, const bt_buf *lo_row, const bt_buf *hi_row)
{
    ts_manifest m;
    memset(&m, 0, sizeof m);
    bt_buf lo_esc = {0}, hi_esc = {0};
    int rc = bt_env_mkdir(t->eng->env, dir);
    if (!rc) rc = ts_buf_put_esc(&lo_esc, lo_row->data, lo_row->len);
    if (!rc && hi_row->len) rc = ts_buf_put_esc(&hi_esc, hi_row->data, hi_row->len);
    m.tablet_id = id;
    m.schema = t->schema;
    m.flushed_seq = t->last_seq;
    m.last_seq = t->last_seq;
    m.next_file = 1;
    if (!rc) rc = bt_buf_append(&m.start_row, lo_row->data, lo_row->len);
    if (!rc) rc = bt_buf_append(&m.end_row, hi_row->data, hi_row->len);
    if (!rc && !(m.files = calloc((size_t)(t->ver->n ? t->ver->n : 1), sizeof *m.files))) rc = BT_ENOMEM;
    for (int i = 0; !rc && i < t->ver->n; i++) {
        const ts_table *tb = t->ver->tables[i];
        ts_file_meta *f = &m.files[m.n_files++];
        f->path = strdup(tb->full_path);
        f->group = tb->meta.group;
        f->size = tb->meta.size;
        f->max_seq = tb->meta.max_seq;
        f->global_seq = tb->meta.global_seq;
        f->inherited = true;
        if (!f->path) rc = BT_ENOMEM;
        if (!rc) rc = pick_lo(&f->lo, &tb->meta.lo, &lo_esc);
        if (!rc) rc = pick_hi(&f->hi, &tb->meta.hi, &hi_esc);
    }
    if (!rc) rc = ts_manifest_write(t->eng->env, dir, &m);
    ts_manifest_free(&m);
    bt_buf_free(&lo_esc);
    bt_buf_free(&hi_esc);
    return rc;
}

int ts_tablet_split(ts_tablet *t, const uint8_t *mid, size_t mid_len,
                    const char *dir_left, uint64_t left_id,
                    const char *dir_right, uint64_t right_id,
                    ts_tablet **left, ts_tablet **right)
{
    if (!dir_left || !dir_right || !strcmp(dir_left, dir_right) || !strcmp(dir_left, t->dir) ||
        !strcmp(dir_right, t->dir))
        return bt_err(BT_EINVAL, "split needs two new directories, distinct from the parent's");
    if (left_id == right_id || left_id == t->id || right_id == t->id)
        return bt_err(BT_EINVAL, "split needs two new tablet ids");

    /* freeze: refuse new writes, let in-flight ones finish, flush */
    pthread_mutex_lock(&t->mu);
    if (t->closing || t->frozen) {
        pthread_mutex_unlock(&t->mu);
        return bt_err(BT_ECLOSED, "tablet %llu is closing or splitting", (unsigned long long)t->id);
    }
    t->frozen = true;
    while (t->visible_seq != t->last_seq) pthread_cond_wait(&t->cv, &t->mu);
    pthread_mutex_unlock(&t->mu);
    int rc = ts_tablet_flush(t);
    pthread_mutex_lock(&t->mu);
    while (!rc && (t->bg_queued || t->bg_running || t->flush_running)) pthread_cond_wait(&t->cv, &t->mu);

    bt_buf m = {0}, lo = {0}, hi = {0};
    if (!rc) rc = mid_len ? bt_buf_append(&m, mid, mid_len) : pick_mid(t, &m);
    if (!rc && !strictly_inside(t, &m))
        rc = bt_err(BT_EINVAL, "split row must lie strictly inside the tablet's range");
    if (!rc) rc = bt_buf_append(&lo, t->start.data, t->start.len);
    if (!rc) rc = bt_buf_append(&hi, t->end.data, t->end.len);
    if (!rc) rc = write_child(t, dir_left, left_id, &lo, &m);
    if (!rc) rc = write_child(t, dir_right, right_id, &m, &hi);
    if (rc) t->frozen = false;  /* failed: the parent goes on serving */
    pthread_mutex_unlock(&t->mu);
    bt_buf_free(&lo);
    bt_buf_free(&hi);
    bt_buf_free(&m);
    if (rc) return rc;

    /* Open the children before the parent goes: if that fails, the parent
     * simply serves on (it is flushed and its directory untouched). */
    ts_engine *e = t->eng;
    *left = *right = NULL;
    rc = ts_tablet_open(e, dir_left, left);
    if (!rc) rc = ts_tablet_open(e, dir_right, right);
    if (rc) {
        char why[512];
        snprintf(why, sizeof why, "%s", bt_errmsg());
        ts_tablet_close(*left);
        *left = NULL;
        pthread_mutex_lock(&t->mu);
        t->frozen = false;
        pthread_mutex_unlock(&t->mu);
        return bt_err(rc, "split of tablet %llu: cannot open a child: %s", (unsigned long long)t->id, why);
    }
    uint64_t parent = t->id;
    ts_tablet_close(t);
    ts_log_forget_tablet(e->log, parent);
    return BT_OK;
}

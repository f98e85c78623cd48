/* tabletserver/compaction.c: a tablet's background work and its split.
 *
 *   minor    the immutable memtable -> one SSTable per locality group.
 *   merging  a group's newest SSTables (size-tiered: the newest
 *            merge_trigger, plus older ones no bigger than what is
 *            already chosen) -> one.  Everything is copied: markers must
 *            keep hiding data in the SSTables left out.
 *   major    every SSTable of a group -> one; deletion markers, hidden
 *            cells, GC'd versions and dropped families disappear.  A
 *            merging compaction that happens to take every table of its
 *            group is run as a major one.
 * Each result is published by writing the manifest (atomic replace), then
 * swapping the tablet's version; the tablet's own files that no version
 * needs any more are deleted afterwards.  Inherited files (shared with a
 * split sibling) are never deleted here.
 */
#include "tabletserver/tablet_internal.h"
#include "common/log.h"
#include "common/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- output files ------------------------------------------------------------ */

static size_t prefix_row(const uint8_t *k, size_t n, void *arg)
{
    (void)arg;
    return ts_ikey_row_prefix(k, n);
}

static size_t prefix_row_column(const uint8_t *k, size_t n, void *arg)
{
    (void)arg;
    (void)k;
    return n >= TS_IKEY_SUFFIX ? n - TS_IKEY_SUFFIX : 0;
}

typedef struct out_file {
    sst_builder *b;
    ts_file_meta meta;
    uint64_t max_seq;
    uint64_t deletions;
    bool in_memory;      /* the group's setting, for opening the result */
    char path[4096];
} out_file;

int ts_sst_options_for(const ts_schema *sc, int group, sst_options *so)
{
    const ts_locality_group *lg = &sc->groups[group];
    sst_options_default(so);
    so->compress = lg->compress;
    if (lg->block_size) so->block_size = lg->block_size;
    so->bloom_bits_per_key = lg->bloom == TS_BLOOM_NONE ? 0 : 10;
    so->filter_prefix = lg->bloom == TS_BLOOM_ROW_COLUMN ? prefix_row_column : prefix_row;
    return BT_OK;
}

static int out_open(ts_tablet *t, const ts_schema *sc, int group, uint64_t number, out_file *o)
{
    const ts_locality_group *lg = &sc->groups[group];
    sst_options so;
    ts_sst_options_for(sc, group, &so);
    memset(o, 0, sizeof *o);
    char name[32];
    snprintf(name, sizeof name, "%06llu.sst", (unsigned long long)number);
    snprintf(o->path, sizeof o->path, "%s/%s", t->dir, name);
    o->meta.path = strdup(name);
    o->meta.group = group;
    o->in_memory = lg->in_memory;
    if (!o->meta.path) return BT_ENOMEM;
    int rc = sst_builder_new(t->eng->env, o->path, &so, &o->b);
    if (rc) ts_file_meta_free(&o->meta);   /* callers only abandon opened outputs */
    return rc;
}

static int out_add(out_file *o, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    ts_ikey ik;
    if (ts_ikey_parse(k, kn, &ik)) {
        if (ik.seq > o->max_seq) o->max_seq = ik.seq;
        o->deletions += ik.type != TS_KT_PUT;
    }
    return sst_builder_add(o->b, k, kn, v, vn);
}

static void out_abandon(out_file *o)
{
    if (o->b) sst_builder_abandon(o->b);
    o->b = NULL;
    ts_file_meta_free(&o->meta);
}

/* Finishes the file and opens it as a table (NULL *tb if it is empty). */
static int out_finish(ts_tablet *t, out_file *o, ts_table **tb)
{
    *tb = NULL;
    if (sst_builder_entries(o->b) == 0) {
        out_abandon(o);
        return BT_OK;
    }
    int rc = sst_builder_set_prop(o->b, "max_seq", o->max_seq);
    if (!rc) rc = sst_builder_set_prop(o->b, "num_deletions", o->deletions);
    if (rc) {
        out_abandon(o);
        return rc;
    }
    rc = sst_builder_finish(o->b, &o->meta.size);
    o->b = NULL;
    o->meta.max_seq = o->max_seq;
    if (!rc) rc = ts_table_open(t, &o->meta, o->in_memory, tb);
    if (rc) bt_env_remove(t->eng->env, o->path);
    ts_file_meta_free(&o->meta);
    return rc;
}

/* ---- publishing a new version ----------------------------------------------- */

static int cmp_tables(const void *a, const void *b)
{
    const ts_table *x = *(ts_table *const *)a, *y = *(ts_table *const *)b;
    return x->meta.max_seq < y->meta.max_seq ? 1 : x->meta.max_seq > y->meta.max_seq ? -1 : 0;
}

static bool in_list(ts_table **list, int n, const ts_table *tb)
{
    for (int i = 0; i < n; i++) if (list[i] == tb) return true;
    return false;
}

/* The current version minus `drop`, plus `add` (t->mu held).  Takes over
 * the references of add[]. */
ts_version *ts_next_version(ts_tablet *t, ts_table **drop, int nd, ts_table **add, int na)
{
    ts_version *v = ts_version_new(t->ver->n + na);
    if (!v) return NULL;
    for (int i = 0; i < t->ver->n; i++) {
        ts_table *tb = t->ver->tables[i];
        if (in_list(drop, nd, tb)) continue;
        ts_table_ref(tb);
        v->tables[v->n++] = tb;
    }
    for (int i = 0; i < na; i++) if (add[i]) v->tables[v->n++] = add[i];
    qsort(v->tables, (size_t)v->n, sizeof *v->tables, cmp_tables);
    return v;
}

/* Writes the manifest for v and installs it; on failure unrefs v and
 * removes the new tables' files (t->mu held). */
int ts_install_version(ts_tablet *t, ts_version *v, uint64_t flushed_seq, ts_table **added, int na)
{
    if (t->fenced) {
        /* Another server may own the tablet by now: its output is discarded,
         * and its files, which a new owner could have reused the names of,
         * are left for the master's GC. */
        ts_version_unref(v);
        return bt_err(BT_EFAILED_PRECONDITION, "tablet %llu is fenced: compaction output discarded",
                      (unsigned long long)t->id);
    }
    int rc = ts_tablet_save_manifest(t, v, flushed_seq);
    if (rc) {
        /* The write may have failed after the new manifest took the old
         * one's place (a failed directory sync): it may name the new files.
         * Delete them only once the current state is written back. */
        char why[256];
        snprintf(why, sizeof why, "%s", bt_errmsg());
        bool restored = ts_tablet_save_manifest(t, t->ver, t->flushed_seq) == BT_OK;
        for (int i = 0; restored && i < na; i++)
            if (added[i]) bt_env_remove(t->eng->env, added[i]->full_path);
        ts_version_unref(v);
        return bt_err(rc, "%s", why);
    }
    ts_version_unref(t->ver);
    t->ver = v;
    t->flushed_seq = flushed_seq;
    return BT_OK;
}

/* Deletes the tablet's own files among `old` that are not in the current version. */
static void delete_obsolete(ts_tablet *t, ts_table **old, int n)
{
    if (t->eng->opts.keep_obsolete_files) return; /* the master's GC deletes them */
    for (int i = 0; i < n; i++) {
        ts_table *tb = old[i];
        if (tb->meta.inherited || in_list(t->ver->tables, t->ver->n, tb)) continue;
        int rc = bt_env_remove(t->eng->env, tb->full_path);
        if (rc && rc != BT_ENOTFOUND)
            BT_WARN("tablet %llu: cannot delete obsolete %s: %s", (unsigned long long)t->id,
                    tb->full_path, bt_errmsg());
    }
}

/* ---- minor compaction ------------------------------------------------------ */

static int group_of(const ts_schema *sc, const ts_ikey *k)
{
    int f = ts_schema_find(sc, (const char *)k->family, k->family_len - 2);
    return f < 0 ? 0 : sc->families[f].group;
}

/* Writes memtable mt into one file per locality group. */
static int write_memtable(ts_tablet *t, ts_memtable *mt, const ts_schema *sc, uint64_t first_file,
                          ts_table **made)
{
    out_file outs[TS_MAX_GROUPS];
    bool open[TS_MAX_GROUPS] = {0};
    int rc = BT_OK;
    sst_iter *it = ts_memtable_iter(mt);
    if (!it) return BT_ENOMEM;
    for (sst_iter_seek_first(it); !rc && sst_iter_valid(it); sst_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = sst_iter_key(it, &kn), *v = sst_iter_value(it, &vn);
        ts_ikey ik;
        if (!ts_ikey_parse(k, kn, &ik)) { rc = bt_err(BT_ECORRUPT, "malformed key in memtable"); break; }
        int lo = 0, hi = sc->n_groups;  /* row markers go to every group */
        if (ik.type != TS_KT_DELETE_ROW) { lo = group_of(sc, &ik); hi = lo + 1; }
        for (int g = lo; !rc && g < hi; g++) {
            if (!open[g]) {
                rc = out_open(t, sc, g, first_file + (uint64_t)g, &outs[g]);
                if (rc) break;
                open[g] = true;
            }
            rc = out_add(&outs[g], k, kn, v, vn);
        }
    }
    sst_iter_destroy(it);
    for (int g = 0; g < sc->n_groups; g++) {
        if (!open[g]) continue;
        if (rc) out_abandon(&outs[g]);
        else rc = out_finish(t, &outs[g], &made[g]);
    }
    if (rc)
        for (int g = 0; g < sc->n_groups; g++) { ts_table_unref(made[g]); made[g] = NULL; }
    return rc;
}

/* Flushes t->imm (t->mu held; released during I/O). */
static int minor_compaction(ts_tablet *t)
{
    while (t->imm.pending > 0) pthread_cond_wait(&t->cv, &t->mu);
    ts_memtable *mt = t->imm.mt;
    uint64_t max_seq = t->imm.max_seq;
    ts_schema sc = t->schema;
    uint64_t first = t->next_file;
    t->next_file += (uint64_t)sc.n_groups;
    ts_table *made[TS_MAX_GROUPS] = {0};
    pthread_mutex_unlock(&t->mu);
    int rc = write_memtable(t, mt, &sc, first, made);
    pthread_mutex_lock(&t->mu);
    if (rc) return rc;
    ts_version *v = ts_next_version(t, NULL, 0, made, sc.n_groups);
    if (!v) {
        for (int g = 0; g < sc.n_groups; g++) ts_table_unref(made[g]);
        return BT_ENOMEM;
    }
    rc = ts_install_version(t, v, max_seq, made, sc.n_groups);
    if (rc) return rc;
    ts_memtable_unref(t->imm.mt);
    t->imm.mt = NULL;
    t->imm.pending = 0;
    t->stats.minor_compactions++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    ts_log_tablet_flushed(t->eng->log, t->id, max_seq);
    pthread_mutex_lock(&t->mu);
    return BT_OK;
}

/* ---- merging and major compactions ------------------------------------------ */

/* Copies the merged inputs to out; with `full`, only live cells. */
static int merge_tables(ts_tablet *t, ts_table **in, int n, bool full, const ts_schema *sc,
                        out_file *out)
{
    sst_iter **kids = calloc((size_t)n, sizeof *kids);
    if (!kids) return BT_ENOMEM;
    for (int i = 0; i < n; i++) {
        kids[i] = ts_table_iter(in[i], sst_reader_iter(in[i]->reader, false));
        if (!kids[i]) {
            for (int j = 0; j < i; j++) sst_iter_destroy(kids[j]);
            free(kids);
            return BT_ENOMEM;
        }
    }
    sst_iter *it = sst_iter_new_merging(kids, n);
    free(kids);
    if (!it) return BT_ENOMEM;
    ts_masker mk = { .schema = sc, .now = ts_engine_now(t->eng), .apply_gc = true };
    bt_buf row = {0};
    int rc = BT_OK;
    for (sst_iter_seek_first(it); !rc && sst_iter_valid(it); sst_iter_next(it)) {
        size_t kn, vn;
        const uint8_t *k = sst_iter_key(it, &kn), *v = sst_iter_value(it, &vn);
        if (full) {
            ts_ikey ik;
            if (!ts_ikey_parse(k, kn, &ik)) { rc = bt_err(BT_ECORRUPT, "%s: malformed key", in[0]->full_path); break; }
            if (row.len != ik.row_len || memcmp(row.data, ik.row, ik.row_len) != 0) {
                bt_buf_clear(&row);
                rc = bt_buf_append(&row, ik.row, ik.row_len);
                ts_masker_row(&mk);
            }
            if (rc) continue;
            int r = ts_masker_step(&mk, &ik, v, vn);
            if (r == TS_MASK_NOMEM) rc = bt_err(BT_ENOMEM, "%s: deletion markers", in[0]->full_path);
            if (r != TS_MASK_LIVE) continue;
        }
        rc = out_add(out, k, kn, v, vn);
    }
    if (!rc) rc = sst_iter_status(it);
    sst_iter_destroy(it);
    ts_masker_free(&mk);
    bt_buf_free(&row);
    return rc;
}

/* Picks a group's inputs for a merging compaction (newest first); returns count. */
static int pick_merge(ts_tablet *t, int group, ts_table **in)
{
    int n = 0;
    uint64_t sum = 0;
    for (int i = 0; i < t->ver->n; i++) {
        ts_table *tb = t->ver->tables[i];
        if (tb->meta.group != group) continue;
        /* size-tiered: past the trigger count, an older table joins only if it
         * is no bigger than everything chosen so far, so a big table is
         * rewritten only when as much new data has piled up on top of it
         * (write amplification ~ log_trigger of the data size) */
        if (n >= t->eng->opts.merge_trigger && tb->meta.size > sum) break;
        in[n++] = tb;
        sum += tb->meta.size;
    }
    return n;
}

/* Compacts `n` tables of `group` (t->mu held; released during I/O). */
static int compact_group(ts_tablet *t, int group, ts_table **in, int n, bool full)
{
    if (n == 0) return BT_OK;
    if (n == ts_version_count_group(t->ver, group)) full = true;
    for (int i = 0; i < n; i++) ts_table_ref(in[i]);
    ts_schema sc = t->schema;
    uint64_t number = t->next_file++;
    pthread_mutex_unlock(&t->mu);
    out_file out;
    ts_table *made = NULL;
    int rc = out_open(t, &sc, group, number, &out);
    if (!rc) {
        rc = merge_tables(t, in, n, full, &sc, &out);
        if (rc) out_abandon(&out);
        else rc = out_finish(t, &out, &made);
    }
    pthread_mutex_lock(&t->mu);
    if (!rc) {
        ts_version *v = ts_next_version(t, in, n, &made, 1);
        if (!v) { ts_table_unref(made); rc = BT_ENOMEM; }
        else rc = ts_install_version(t, v, t->flushed_seq, &made, 1);
        if (!rc) {
            delete_obsolete(t, in, n);
            if (full) t->stats.major_compactions++;
            else t->stats.merging_compactions++;
        }
    }
    for (int i = 0; i < n; i++) ts_table_unref(in[i]);
    pthread_cond_broadcast(&t->cv);
    return rc;
}

static int major_compaction(ts_tablet *t)
{
    int rc = BT_OK;
    for (int g = 0; !rc && g < t->schema.n_groups; g++) {
        int cnt = ts_version_count_group(t->ver, g);
        if (cnt == 0) continue;
        ts_table **in = calloc((size_t)cnt, sizeof *in);
        if (!in) return BT_ENOMEM;
        int n = 0;
        for (int i = 0; i < t->ver->n; i++)
            if (t->ver->tables[i]->meta.group == g) in[n++] = t->ver->tables[i];
        rc = compact_group(t, g, in, n, true);
        free(in);
    }
    return rc;
}

static int group_needing_merge(ts_tablet *t)
{
    for (int g = 0; g < t->schema.n_groups; g++)
        if (ts_version_count_group(t->ver, g) >= t->eng->opts.merge_trigger) return g;
    return -1;
}

/* ---- the background loop ---------------------------------------------------- */

/* A minor compaction, marked so that no second one starts beside it. */
static int flush_step(ts_tablet *t)
{
    t->flush_running = true;
    int rc = minor_compaction(t);
    t->flush_running = false;
    return rc;
}

static void note_bg_error(ts_tablet *t, int rc)
{
    t->bg_error = rc;
    BT_ERROR("tablet %llu: background compaction failed: %s (%s)",
             (unsigned long long)t->id, bt_strerror(rc), bt_errmsg());
}

static int one_step(ts_tablet *t, bool *did)
{
    *did = !t->fenced;
    if (t->fenced) return BT_OK;  /* nothing it does could be installed */
    if (t->imm.mt && !t->flush_running) return flush_step(t);
    if (t->major_requested) {
        int rc = major_compaction(t);
        t->major_requested = false;
        return rc;
    }
    int g = group_needing_merge(t);
    if (g >= 0) {
        ts_table **in = calloc((size_t)t->ver->n, sizeof *in);
        if (!in) return BT_ENOMEM;
        int n = pick_merge(t, g, in);
        int rc = compact_group(t, g, in, n, false);
        free(in);
        return rc;
    }
    *did = false;
    return BT_OK;
}

void ts_tablet_background(ts_tablet *t)
{
    pthread_mutex_lock(&t->mu);
    t->bg_queued = false;
    if (t->bg_running) {
        /* another thread is merging: flush beside it (see ts_engine_schedule) */
        if (t->imm.mt && !t->flush_running && !t->closing && !t->fenced) {
            int rc = flush_step(t);
            if (rc) note_bg_error(t, rc);
        }
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
        return;
    }
    t->bg_running = true;
    while (!t->closing) {
        bool did;
        int rc = one_step(t, &did);
        if (rc) {
            note_bg_error(t, rc);
            break;
        }
        t->bg_error = 0;
        if (!did) break;
    }
    t->bg_running = false;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* ---- foreground requests ------------------------------------------------------ */

static int wait_bg(ts_tablet *t)
{
    while (t->bg_queued || t->bg_running || t->flush_running) pthread_cond_wait(&t->cv, &t->mu);
    return t->bg_error;
}

int ts_tablet_flush(ts_tablet *t)
{
    pthread_mutex_lock(&t->mu);
    if (t->fenced) {
        pthread_mutex_unlock(&t->mu);
        return bt_err(BT_EFAILED_PRECONDITION, "tablet %llu is fenced: it may not flush",
                      (unsigned long long)t->id);
    }
    wait_bg(t);
    /* A flush request retries background work that failed earlier; only
     * this attempt's failures are reported. */
    t->bg_error = 0;
    int rc = BT_OK;
    if (t->imm.mt) {  /* an earlier flush failed: retry it */
        ts_engine_schedule(t->eng, t);
        rc = wait_bg(t);
    }
    while (!rc && ts_memtable_count(t->mem.mt) > 0) {
        while (t->mem.pending > 0) pthread_cond_wait(&t->cv, &t->mu);
        if (t->imm.mt) {
            /* A writer rotated the memtable while we waited: flush that first. */
            ts_engine_schedule(t->eng, t);
            rc = wait_bg(t);
            continue;
        }
        ts_memtable *fresh = ts_memtable_new();
        if (!fresh) {
            rc = BT_ENOMEM;
            break;
        }
        t->imm = t->mem;
        t->mem.mt = fresh;
        t->mem.pending = 0;
        t->bg_error = 0;
        ts_engine_schedule(t->eng, t);
        rc = wait_bg(t);
        break;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int ts_tablet_compact(ts_tablet *t)
{
    int rc = ts_tablet_flush(t);
    if (rc) return rc;
    pthread_mutex_lock(&t->mu);
    t->major_requested = true;
    t->bg_error = 0;
    ts_engine_schedule(t->eng, t);
    rc = wait_bg(t);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int ts_tablet_wait_idle(ts_tablet *t)
{
    pthread_mutex_lock(&t->mu);
    int rc = wait_bg(t);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

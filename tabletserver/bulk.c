/* tabletserver/bulk.c: a tablet's side of a bulk load (tabletserver/bulk.h). */
#include "tabletserver/bulk.h"
#include "tabletserver/tablet_internal.h"
#include "common/log.h"
#include "common/status.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void ts_bulk_put_tag(uint8_t *p) { memset(p, TS_BULK_TAG_BYTE, 8); }

bool ts_bulk_name_ok(const char *name, uint64_t load_id)
{
    char want[32];
    size_t pl = strlen(TS_BULK_PREFIX), n = strlen(name);
    snprintf(want, sizeof want, TS_BULK_PREFIX "%016" PRIx64 "-", load_id);
    if (n <= pl + 17 + 4 || strncmp(name, want, pl + 17) || strcmp(name + n - 4, ".sst")) return false;
    for (size_t i = pl + 17; i < n - 4; i++)
        if (!isdigit((unsigned char)name[i])) return false;
    return true;
}

static bool is_bulk_tag(const uint8_t *key, size_t n)
{
    if (n < TS_IKEY_SUFFIX) return false;
    for (size_t i = n - 8; i < n; i++)
        if (key[i] != TS_BULK_TAG_BYTE) return false;
    return true;
}

/* Checks one opened file against the request and the tablet's range. */
static int check_file(const ts_tablet *t, const ts_bulk_file *f, ts_table *tb)
{
    const sst_props *pr = sst_reader_props(tb->reader);
    uint64_t dels = 0;
    if (!pr->num_entries) return bt_err(BT_EINVAL, "bulk file %s is empty", f->name);
    if (sst_reader_prop(tb->reader, "num_deletions", &dels) == BT_OK && dels)
        return bt_err(BT_EINVAL, "bulk file %s holds deletions", f->name);
    if (!is_bulk_tag(pr->smallest, pr->smallest_len) || !is_bulk_tag(pr->largest, pr->largest_len))
        return bt_err(BT_EINVAL, "bulk file %s: its keys do not carry the bulk placeholder tag", f->name);
    if (sst_key_cmp(pr->smallest, pr->smallest_len, t->start_esc.data, t->start_esc.len) < 0 ||
        (t->end.len && sst_key_cmp(pr->largest, pr->largest_len, t->end_esc.data, t->end_esc.len) >= 0))
        return bt_err(BT_EINVAL, "bulk file %s holds rows outside tablet %" PRIu64, f->name, t->id);
    return BT_OK;
}

static bool attached_before(const ts_tablet *t, uint64_t load_id, uint64_t *seq)
{
    for (int i = 0; i < TS_BULK_DONE; i++)
        if (t->bulk_done[i].load_id == load_id && t->bulk_done[i].seq) {
            if (seq) *seq = t->bulk_done[i].seq;
            return true;
        }
    return false;
}

int ts_tablet_bulk_attach(ts_tablet *t, uint64_t load_id, const ts_bulk_file *files, int n, uint64_t *seq)
{
    if (seq) *seq = 0;
    if (n < 1 || n > TS_BULK_MAX_FILES)
        return bt_err(BT_EINVAL, "a bulk attach takes 1..%d files, got %d", TS_BULK_MAX_FILES, n);
    for (int i = 0; i < n; i++) {
        if (!files[i].name || !ts_bulk_name_ok(files[i].name, load_id))
            return bt_err(BT_EINVAL, "bulk file name \"%s\" is not bulk-%016" PRIx64 "-<n>.sst",
                          files[i].name ? files[i].name : "", load_id);
        for (int j = 0; j < i; j++)
            if (!strcmp(files[i].name, files[j].name))
                return bt_err(BT_EINVAL, "bulk file %s named twice", files[i].name);
    }

    /* A retry of an attach whose answer was lost. */
    pthread_mutex_lock(&t->mu);
    bool done = attached_before(t, load_id, seq);
    bool in_memory[TS_MAX_GROUPS] = {false};
    int n_groups = t->schema.n_groups;
    for (int g = 0; g < n_groups; g++) in_memory[g] = t->schema.groups[g].in_memory;
    pthread_mutex_unlock(&t->mu);
    if (done) return BT_OK;

    /* Open and check every file without the tablet's lock (footers, indexes
     * and properties are read; no data block). */
    ts_table **add = calloc((size_t)n, sizeof *add);
    char **from = calloc((size_t)n, sizeof *from);
    if (!add || !from) {
        free(add);
        free(from);
        return BT_ENOMEM;
    }
    int rc = BT_OK, opened = 0;
    for (int i = 0; !rc && i < n; i++) {
        const ts_bulk_file *f = &files[i];
        if (f->group < 0 || f->group >= n_groups) {
            rc = bt_err(BT_EINVAL, "bulk file %s: locality group %d does not exist (the table has %d)", f->name,
                        f->group, n_groups);
            break;
        }
        size_t pn = strlen(t->dir) + strlen(f->name) + 2;
        if (!(from[i] = malloc(pn))) {
            rc = BT_ENOMEM;
            break;
        }
        snprintf(from[i], pn, "%s/%s", t->dir, f->name);
        if (access(from[i], F_OK) != 0) {
            rc = bt_err(errno == ENOENT ? BT_ENOTFOUND : BT_EIO, "bulk file %s: %s", f->name, strerror(errno));
            break;
        }
        ts_file_meta meta;
        memset(&meta, 0, sizeof meta);
        meta.path = (char *)f->name;
        meta.group = f->group;
        ts_table *tb = NULL;
        rc = ts_table_open(t, &meta, in_memory[f->group], &tb);
        if (rc) {
            rc = bt_err(rc, "bulk file %s: %s", f->name, bt_errmsg());
            break;
        }
        add[opened++] = tb;
        rc = check_file(t, f, tb);
        /* A new mtime: the master's GC spares young files, and the rename
         * below keeps the staged file's time. */
        if (!rc && utimensat(AT_FDCWD, from[i], NULL, 0) != 0)
            rc = bt_err(BT_EIO, "bulk file %s: %s", f->name, strerror(errno));
    }

    int renamed = 0;
    char **to = rc ? NULL : calloc((size_t)n, sizeof *to);
    if (!rc && !to) rc = BT_ENOMEM;
    if (!rc) {
        pthread_mutex_lock(&t->mu);
        if (t->frozen || t->closing || t->fenced) {
            rc = bt_err(BT_ENOTSERVING, "tablet %" PRIu64 " is splitting or closing", t->id);
        } else if (attached_before(t, load_id, seq)) {
            /* a concurrent retry won */
            pthread_mutex_unlock(&t->mu);
            goto out;
        }
        for (int i = 0; !rc && i < n; i++)
            if (files[i].group >= t->schema.n_groups)
                rc = bt_err(BT_EINVAL, "bulk file %s: locality group %d was dropped", files[i].name, files[i].group);
        /* One sequence for the whole load, taken like a write's and made
         * visible once every earlier write is. */
        uint64_t g = 0;
        if (!rc) {
            g = ++t->last_seq;
            t->mem.max_seq = t->last_seq;
            while (t->visible_seq != g - 1) pthread_cond_wait(&t->cv, &t->mu);
            t->visible_seq = g;
            pthread_cond_broadcast(&t->cv);
        }
        uint64_t first_file = t->next_file;
        for (int i = 0; !rc && i < n; i++) {
            char name[32];
            snprintf(name, sizeof name, "%06" PRIu64 ".sst", first_file + (uint64_t)i);
            size_t pn = strlen(t->dir) + strlen(name) + 2;
            char *np = strdup(name);
            if (!np || !(to[i] = malloc(pn))) {
                free(np);
                rc = BT_ENOMEM;
                break;
            }
            snprintf(to[i], pn, "%s/%s", t->dir, name);
            rc = bt_env_rename(t->eng->env, from[i], to[i]);
            if (rc) {
                free(np);
                rc = bt_err(rc, "bulk file %s: rename to %s: %s", files[i].name, name, bt_errmsg());
                break;
            }
            renamed++;
            ts_table *tb = add[i];
            free(tb->meta.path);
            tb->meta.path = np;
            free(tb->full_path);
            tb->full_path = strdup(to[i]);
            if (!tb->full_path) rc = BT_ENOMEM;
            tb->meta.size = sst_reader_props(tb->reader)->file_size;
            tb->meta.max_seq = g;
            tb->meta.global_seq = g;
        }
        if (!rc) {
            t->next_file = first_file + (uint64_t)n;
            rc = bt_env_sync_dir(t->eng->env, t->dir);
        }
        ts_version *v = NULL;
        if (!rc && !(v = ts_next_version(t, NULL, 0, add, n))) rc = BT_ENOMEM;
        if (!rc) {
            /* the version holds the tables now */
            opened = 0;
            rc = ts_tablet_save_manifest(t, v, t->flushed_seq);
            if (rc) {
                char why[256];
                snprintf(why, sizeof why, "%s", bt_errmsg());
                /* a failed directory sync may have left the new manifest in
                 * place: the files may be renamed back only once the old
                 * state is written again */
                if (ts_tablet_save_manifest(t, t->ver, t->flushed_seq) != BT_OK) renamed = 0;
                ts_version_unref(v);
                rc = bt_err(rc, "%s", why);
            } else {
                ts_version_unref(t->ver);
                t->ver = v;
                renamed = 0; /* attached: nothing to undo */
                t->bulk_done[t->bulk_done_next].load_id = load_id;
                t->bulk_done[t->bulk_done_next].seq = g;
                t->bulk_done_next = (t->bulk_done_next + 1) % TS_BULK_DONE;
                t->stats.bulk_files += (uint64_t)n;
                if (seq) *seq = g;
                if (ts_version_count_group(v, files[0].group) >= t->eng->opts.merge_trigger)
                    ts_engine_schedule(t->eng, t);
                BT_INFO("tablet %" PRIu64 ": attached %d bulk-loaded SSTable(s) at sequence %" PRIu64, t->id, n, g);
            }
        }
        /* undo the renames of a load that was not installed */
        for (int i = renamed - 1; i >= 0; i--)
            if (bt_env_rename(t->eng->env, to[i], from[i]))
                BT_WARN("bulk attach of tablet %" PRIu64 " failed and %s could not be renamed back to %s", t->id,
                        to[i], from[i]);
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
    }
out:
    for (int i = 0; i < opened; i++) ts_table_unref(add[i]);
    for (int i = 0; i < n; i++) {
        free(from[i]);
        if (to) free(to[i]);
    }
    free(to);
    free(from);
    free(add);
    return rc;
}

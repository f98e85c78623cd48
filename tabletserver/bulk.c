/* tabletserver/bulk.c: a tablet's side of a bulk load (tabletserver/bulk.h). */
#include "tabletserver/bulk.h"
#include "tabletserver/tablet_internal.h"
#include "common/log.h"
#include "common/status.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

bool ts_bulk_name_ok(const char *name)
{
    size_t pl = strlen(TS_BULK_PREFIX), n = strlen(name);
    if (n < pl + 16 + 2 + 4 || strncmp(name, TS_BULK_PREFIX, pl) || strcmp(name + n - 4, ".sst")) return false;
    for (size_t i = pl; i < pl + 16; i++)
        if (!isxdigit((unsigned char)name[i])) return false;
    if (name[pl + 16] != '-') return false;
    for (size_t i = pl + 17; i < n - 4; i++)
        if (!isdigit((unsigned char)name[i])) return false;
    return n - 4 > pl + 17;
}

/* The nonce of this incarnation, drawn on first use (t->mu held). */
static uint64_t nonce_of(ts_tablet *t)
{
    while (!t->bulk_nonce) {
        uint64_t v = 0;
        if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) v = (uint64_t)ts_engine_now(t->eng) ^ (uintptr_t)t;
        t->bulk_nonce = v;
    }
    return t->bulk_nonce;
}

int ts_tablet_bulk_prepare(ts_tablet *t, uint64_t *seq, uint64_t *nonce)
{
    pthread_mutex_lock(&t->mu);
    if (t->frozen || t->closing || t->fenced) {
        pthread_mutex_unlock(&t->mu);
        return bt_err(BT_ENOTSERVING, "tablet %llu is splitting or closing", (unsigned long long)t->id);
    }
    /* The sequence is taken like a write's, and made visible once every
     * earlier write is (the next writer waits for visible_seq == s). */
    uint64_t s = ++t->last_seq;
    t->mem.max_seq = t->last_seq;
    while (t->visible_seq != s - 1) pthread_cond_wait(&t->cv, &t->mu);
    t->visible_seq = s;
    pthread_cond_broadcast(&t->cv);
    *seq = s;
    *nonce = nonce_of(t);
    pthread_mutex_unlock(&t->mu);
    return BT_OK;
}

/* Was sequence s attached already (a retried attach whose answer was lost)? */
static bool attached_before(const ts_tablet *t, uint64_t s)
{
    for (int i = 0; i < TS_BULK_DONE; i++)
        if (t->bulk_done[i] == s) return true;
    return false;
}

int ts_tablet_bulk_attach(ts_tablet *t, uint64_t nonce, uint64_t seq, const ts_bulk_file *files, int n)
{
    if (n < 1 || n > TS_BULK_MAX_FILES)
        return bt_err(BT_EINVAL, "a bulk attach takes 1..%d files, got %d", TS_BULK_MAX_FILES, n);
    for (int i = 0; i < n; i++)
        if (!files[i].name || !ts_bulk_name_ok(files[i].name))
            return bt_err(BT_EINVAL, "bulk file name \"%s\" is not bulk-<16 hex>-<n>.sst",
                          files[i].name ? files[i].name : "");

    pthread_mutex_lock(&t->mu);
    int rc = BT_OK;
    if (t->frozen || t->closing || t->fenced || nonce != nonce_of(t)) {
        rc = bt_err(BT_ENOTSERVING, "tablet %llu: bulk load prepared on another incarnation of the tablet",
                    (unsigned long long)t->id);
    } else if (seq == 0 || seq > t->last_seq) {
        rc = bt_err(BT_EINVAL, "tablet %llu: bulk sequence %llu was never reserved", (unsigned long long)t->id,
                    (unsigned long long)seq);
    } else if (attached_before(t, seq)) {
        pthread_mutex_unlock(&t->mu);
        return BT_OK;
    }
    if (rc) {
        pthread_mutex_unlock(&t->mu);
        return rc;
    }
    /* Attaches are serialised with compactions by t->mu; the checks and the
     * renames below are quick (each file's footer, index and properties are
     * read, no data block). */
    ts_table **add = calloc((size_t)n, sizeof *add);
    if (!add) {
        pthread_mutex_unlock(&t->mu);
        return BT_ENOMEM;
    }
    char from[4096], to[4096];
    int opened = 0;
    for (int i = 0; !rc && i < n; i++) {
        if (files[i].group < 0 || files[i].group >= t->schema.n_groups) {
            rc = bt_err(BT_EINVAL, "%s: locality group %d does not exist (the table has %d)", files[i].name,
                        files[i].group, t->schema.n_groups);
            break;
        }
        snprintf(from, sizeof from, "%s/%s", t->dir, files[i].name);
        ts_file_meta meta;
        memset(&meta, 0, sizeof meta);
        meta.path = (char *)files[i].name;
        meta.group = files[i].group;
        meta.max_seq = seq;
        ts_table *tb = NULL;
        rc = ts_table_open(t, &meta, false, &tb);
        if (rc) {
            rc = bt_err(rc, "bulk file %s: %s", files[i].name, bt_errmsg());
            break;
        }
        uint64_t ms = 0, dels = 0;
        if (sst_reader_prop(tb->reader, "max_seq", &ms) || ms != seq ||
            (sst_reader_prop(tb->reader, "num_deletions", &dels) == BT_OK && dels)) {
            ts_table_unref(tb);
            rc = bt_err(BT_EINVAL, "bulk file %s: written for sequence %llu, not %llu, or holds deletions",
                        files[i].name, (unsigned long long)ms, (unsigned long long)seq);
            break;
        }
        const sst_props *pr = sst_reader_props(tb->reader);
        if (!pr->num_entries || sst_key_cmp(pr->smallest, pr->smallest_len, t->start_esc.data, t->start_esc.len) < 0 ||
            (t->end.len && sst_key_cmp(pr->largest, pr->largest_len, t->end_esc.data, t->end_esc.len) >= 0)) {
            ts_table_unref(tb);
            rc = bt_err(BT_EINVAL, "bulk file %s: empty, or holds rows outside tablet %llu", files[i].name,
                        (unsigned long long)t->id);
            break;
        }
        add[opened++] = tb;
    }
    /* Rename each to a name of the tablet's own, then point the table at it:
     * its reader keeps the open descriptor, only the name changes. */
    for (int i = 0; !rc && i < opened; i++) {
        ts_table *tb = add[i];
        char name[32];
        snprintf(name, sizeof name, "%06llu.sst", (unsigned long long)t->next_file++);
        snprintf(from, sizeof from, "%s/%s", t->dir, files[i].name);
        snprintf(to, sizeof to, "%s/%s", t->dir, name);
        char *np = strdup(name), *fp = strdup(to);
        if (!np || !fp) {
            free(np);
            free(fp);
            rc = BT_ENOMEM;
            break;
        }
        rc = bt_env_rename(t->eng->env, from, to);
        if (rc) {
            free(np);
            free(fp);
            rc = bt_err(rc, "bulk file %s: rename to %s: %s", files[i].name, name, bt_errmsg());
            break;
        }
        free(tb->meta.path);
        tb->meta.path = np;
        free(tb->full_path);
        tb->full_path = fp;
        tb->meta.size = sst_reader_props(tb->reader)->file_size;
    }
    if (!rc) rc = bt_env_sync_dir(t->eng->env, t->dir);
    if (!rc) {
        ts_version *v = ts_next_version(t, NULL, 0, add, opened);
        if (!v) rc = BT_ENOMEM;
        else {
            opened = 0; /* the version (or install's cleanup) owns them now */
            rc = ts_install_version(t, v, t->flushed_seq, v->tables, 0);
        }
        if (!rc) {
            t->bulk_done[t->bulk_done_next] = seq;
            t->bulk_done_next = (t->bulk_done_next + 1) % TS_BULK_DONE;
            t->stats.bulk_files += (uint64_t)n;
            BT_INFO("tablet %llu: attached %d bulk-loaded SSTable(s) at sequence %llu", (unsigned long long)t->id,
                    n, (unsigned long long)seq);
        }
    }
    for (int i = 0; i < opened; i++) ts_table_unref(add[i]);
    free(add);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* master/gc.c: mark-and-sweep garbage collection of SSTable files.
 *
 * Mark: the manifest of every tablet the master knows names the files it
 * reads (its own, and files inherited from a split parent).  Sweep: every
 * *.sst under <data-dir>/tables/ that no manifest names and that is older
 * than the grace period is deleted; so is the directory of a tablet that no
 * longer exists (split parent, deleted table, failed creation) once nothing
 * in it is referenced or young.  The grace period protects work in flight:
 * a compaction's output before its manifest names it, a split's children
 * before METADATA names them.  Any manifest that cannot be read stops the
 * collection (deleting on a partial view could destroy live data).
 */
#include "master/master_internal.h"
#include "tabletserver/manifest.h"
#include "common/log.h"
#include "common/status.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct strset { char **v; size_t n, cap; } strset;

static int set_add(strset *s, const char *p)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 256;
        char **v = realloc(s->v, nc * sizeof *v);
        if (!v) return BT_ENOMEM;
        s->v = v;
        s->cap = nc;
    }
    if (!(s->v[s->n] = strdup(p))) return BT_ENOMEM;
    s->n++;
    return BT_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool set_has(const strset *s, const char *p)
{
    return s->n && bsearch(&p, s->v, s->n, sizeof *s->v, cmp_str) != NULL;
}

static void set_free(strset *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
}

/* Marks the files of the tablet in rel (and, if it split without METADATA
 * knowing yet, of the children its SPLIT marker names). */
static int mark_dir(bt_master *m, const char *rel, strset *live, strset *dirs, int depth)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/%s", m->data_dir, rel) >= (int)sizeof dir)
        return bt_err(BT_EINVAL, "gc: path too long under %s", rel);
    int rc = set_add(dirs, rel);
    if (rc) return rc;
    ts_manifest mf;
    rc = ts_manifest_read(bt_env_posix(), dir, &mf);
    if (rc && rc != BT_ENOTFOUND) return bt_err(rc, "gc: manifest in %s: %s", dir, bt_errmsg());
    for (int k = 0; !rc && k < mf.n_files; k++) {
        char p[PATH_MAX], real[PATH_MAX];
        bool whole = mf.files[k].path[0] == '/' || mf.files[k].inherited;
        int pn = whole ? snprintf(p, sizeof p, "%s", mf.files[k].path)
                       : snprintf(p, sizeof p, "%s/%s", dir, mf.files[k].path);
        if (pn >= (int)sizeof p) rc = bt_err(BT_EINVAL, "gc: path too long in %s", dir);
        /* a file a manifest names must resolve: if it does not (a server
         * whose --data-dir path differs from ours), stop rather than guess */
        else if (!realpath(p, real))
            rc = bt_err(BT_EIO, "gc: %s (named by the manifest in %s): %s", p, dir, strerror(errno));
        else rc = set_add(live, real);
    }
    if (rc != BT_ENOTFOUND) ts_manifest_free(&mf);
    if (rc && rc != BT_ENOTFOUND) return rc;
    ts_split_marker mk;
    rc = depth < 8 ? ts_split_marker_read(bt_env_posix(), dir, &mk) : BT_ENOTFOUND;
    if (rc == BT_ENOTFOUND) return BT_OK;
    if (rc) return bt_err(rc, "gc: split marker in %s: %s", dir, bt_errmsg());
    rc = mark_dir(m, mk.left.dir, live, dirs, depth + 1);
    if (!rc) rc = mark_dir(m, mk.right.dir, live, dirs, depth + 1);
    ts_split_marker_free(&mk);
    return rc;
}

static int mark(bt_master *m, strset *live, strset *dirs)
{
    int rc = BT_OK;
    for (size_t i = 0; !rc && i < m->n_tablets; i++) rc = mark_dir(m, m->tablets[i]->e.dir, live, dirs, 0);
    for (size_t i = 0; !rc && i < m->n_zombies; i++) rc = mark_dir(m, m->zombies[i].dir, live, dirs, 0);
    return rc;
}

static bool old_enough(const struct stat *st, uint32_t grace_ms)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t age_ms = ((int64_t)now.tv_sec - st->st_mtim.tv_sec) * 1000 +
                     ((int64_t)now.tv_nsec - st->st_mtim.tv_nsec) / 1000000;
    return age_ms >= (int64_t)grace_ms;
}

/* Removes a dead tablet directory if nothing in it is live or young. */
static bool dir_removable(const char *dir, const strset *live, uint32_t grace_ms)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    struct dirent *de;
    bool ok = true;
    while (ok && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[PATH_MAX], real[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (lstat(p, &st)) { ok = false; break; }
        if (S_ISDIR(st.st_mode)) ok = dir_removable(p, live, grace_ms);
        else ok = old_enough(&st, grace_ms) && !(realpath(p, real) && set_has(live, real));
    }
    closedir(d);
    return ok;
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (!lstat(p, &st) && S_ISDIR(st.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void sweep_dir(const char *dir, const strset *live, uint32_t grace_ms, uint64_t *files, uint64_t *bytes)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".sst")) continue;
        char p[PATH_MAX], real[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (lstat(p, &st) || !S_ISREG(st.st_mode) || !old_enough(&st, grace_ms)) continue;
        if (!realpath(p, real) || set_has(live, real)) continue;
        if (unlink(p) == 0) {
            (*files)++;
            *bytes += (uint64_t)st.st_size;
            BT_INFO("gc: deleted %s (%lld bytes, referenced by no manifest)", p, (long long)st.st_size);
        }
    }
    closedir(d);
}

int m_gc(bt_master *m, uint32_t grace_ms, uint64_t *files, uint64_t *bytes)
{
    *files = *bytes = 0;
    if (!m->meta_complete) return bt_err(BT_EUNAVAIL, "gc: METADATA is not fully loaded yet");
    strset live = {0}, dirs = {0};
    int rc = mark(m, &live, &dirs);
    if (rc) {
        BT_WARN("gc skipped: %s", bt_errmsg());
        set_free(&live);
        set_free(&dirs);
        return rc;
    }
    if (!lk_session_valid(m->lk)) { /* a deposed master deletes nothing */
        set_free(&live);
        set_free(&dirs);
        return bt_err(BT_EUNAVAIL, "gc: the master's lock-service session is not valid");
    }
    if (live.n) qsort(live.v, live.n, sizeof *live.v, cmp_str);
    if (dirs.n) qsort(dirs.v, dirs.n, sizeof *dirs.v, cmp_str);
    char tables[PATH_MAX];
    snprintf(tables, sizeof tables, "%s/tables", m->data_dir);
    DIR *d = opendir(tables);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char td[PATH_MAX];
        if (snprintf(td, sizeof td, "%s/%s", tables, de->d_name) >= (int)sizeof td) continue;
        DIR *d2 = opendir(td);
        struct dirent *e2;
        while (d2 && (e2 = readdir(d2))) {
            if (e2->d_name[0] == '.') continue;
            char rel[PATH_MAX], abs[PATH_MAX * 2];
            if (snprintf(rel, sizeof rel, "tables/%s/%s", de->d_name, e2->d_name) >= (int)sizeof rel) continue;
            snprintf(abs, sizeof abs, "%s/%s", m->data_dir, rel);
            sweep_dir(abs, &live, grace_ms, files, bytes);
            if (!set_has(&dirs, rel) && dir_removable(abs, &live, grace_ms)) {
                remove_tree(abs);
                BT_INFO("gc: removed directory %s of a tablet that no longer exists", abs);
            }
        }
        if (d2) closedir(d2);
        rmdir(td); /* only if empty: a deleted table's last tablet went */
    }
    if (d) closedir(d);
    BT_INFO("gc: %" PRIu64 " files, %" PRIu64 " bytes deleted (%zu live files in %zu tablets)", *files, *bytes,
            live.n, dirs.n);
    if (*files) m_event(m, "garbage collection deleted %" PRIu64 " files (%" PRIu64 " bytes)", *files, *bytes);
    set_free(&live);
    set_free(&dirs);
    return BT_OK;
}

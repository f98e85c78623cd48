/* common/env_fault.c: a bt_env that wraps another and injects faults for
 * tests (env.h): a simulated crash that drops what was never made durable,
 * failing the Nth call, and a disk-space budget.
 *
 * The crash model reproduced by bt_env_fault_drop_unsynced:
 *  - File data.  A file opened writable through this env has a size and a
 *    synced size; a wfile sync makes every byte appended so far durable.  A
 *    crash truncates the file to its synced size.  Files never opened
 *    writable here (e.g. present before the env was made) count as durable.
 *  - Directory entries.  A file created here (open_writable of a missing
 *    path) and the target of a rename are "pending" until sync_dir of their
 *    parent directory.  A crash undoes a pending entry: if a rename replaced
 *    a durable file, that file's durable content is written back (so a crash
 *    between rename and sync_dir leaves the old version, as on a real disk);
 *    otherwise the entry is deleted.
 *  - Simplifications, all in the lenient direction: remove, the source side
 *    of a rename, truncate and mkdir are durable at once, so a crash never
 *    resurrects a removed file or a rename's old name.
 *  - Paths are compared after lexical normalisation ("d//f", "./d/f" and
 *    "d/f" are one path); ".." and symlinks are not resolved, so callers
 *    must name a directory consistently for sync_dir to match its files.
 *
 * One mutex guards all state and is held across the base call of every
 * tracked operation, so a crash can never interleave with an append and let
 * it land after the truncation.  list() runs unlocked because its callback
 * may call back into the env.
 */
#include "common/env.h"
#include "common/status.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* What this env knows about one file, shared by the path and open writers. */
struct fstate {
    struct fstate *next;  /* in fault_env.files while path != NULL */
    char *path;           /* normalised; NULL once removed or replaced */
    uint64_t size;        /* bytes written through this env */
    uint64_t synced;      /* prefix made durable by a wfile sync */
    bool pending;         /* directory entry not yet made durable */
    bool has_prior;       /* pending rename replaced a durable file ... */
    uint8_t *prior;       /* ... whose durable content was this */
    size_t prior_len;
    int refs;             /* open writers */
};

struct fault_env {
    bt_env base;
    bt_env *target;       /* the wrapped env, not owned */
    pthread_mutex_t mu;
    struct fstate *files;
    uint64_t epoch;       /* bumped by each simulated crash */
    uint64_t calls;       /* counted calls so far */
    uint64_t fail_at;     /* value of calls that fails; 0 = none */
    int fail_code;
    uint64_t space;       /* bytes appends may still add; UINT64_MAX = no limit */
};

struct fault_wfile {
    bt_wfile base;
    struct fault_env *env;
    bt_wfile *inner;
    struct fstate *st;
    uint64_t epoch;       /* a writer from before a crash is dead */
    char path[];
};

struct fault_rfile {
    bt_rfile base;
    struct fault_env *env;
    bt_rfile *inner;
    char path[];
};

static const struct bt_env_ops fault_env_ops;

static struct fault_env *as_fault(bt_env *e)
{
    return e && e->ops == &fault_env_ops ? (struct fault_env *)e : NULL;
}

/* ---- paths ---------------------------------------------------------------- */

/* Drops repeated '/', "." components and a trailing '/'; "" becomes ".". */
static char *norm_path(const char *p)
{
    char *out = malloc(strlen(p) + 2);
    if (!out) return NULL;
    size_t o = 0;
    if (p[0] == '/') out[o++] = '/';
    while (*p) {
        while (*p == '/') p++;
        size_t len = strcspn(p, "/");
        bool skip = len == 0 || (len == 1 && p[0] == '.');
        if (!skip) {
            if (o > 0 && out[o - 1] != '/') out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
        }
        p += len;
    }
    if (o == 0) out[o++] = '.';
    out[o] = '\0';
    return out;
}

/* Is normalised `dir` the directory that holds normalised `path`? */
static bool in_dir(const char *path, const char *dir)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strcmp(dir, ".") == 0;
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    return strlen(dir) == len && memcmp(path, dir, len) == 0;
}

/* ---- file states (caller holds mu) ----------------------------------------- */

static struct fstate *find_state(struct fault_env *fe, const char *npath)
{
    for (struct fstate *st = fe->files; st; st = st->next)
        if (strcmp(st->path, npath) == 0) return st;
    return NULL;
}

/* Takes ownership of npath. */
static struct fstate *link_state(struct fault_env *fe, char *npath)
{
    struct fstate *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->path = npath;
    st->next = fe->files;
    fe->files = st;
    return st;
}

static void free_state(struct fstate *st)
{
    free(st->path);
    free(st->prior);
    free(st);
}

/* Detaches st from its path; open writers keep it alive until they close. */
static void unlink_state(struct fault_env *fe, struct fstate *st)
{
    for (struct fstate **pp = &fe->files; *pp; pp = &(*pp)->next) {
        if (*pp == st) { *pp = st->next; break; }
    }
    free(st->path);
    st->path = NULL;
    st->next = NULL;
    if (st->refs == 0) free_state(st);
}

static void clear_prior(struct fstate *st)
{
    free(st->prior);
    st->prior = NULL;
    st->prior_len = 0;
    st->has_prior = false;
}

/* Counts one call for fail_nth and fails it if it is the chosen one. */
static int count_call(struct fault_env *fe, const char *op, const char *path)
{
    fe->calls++;
    if (fe->fail_at == 0 || fe->calls != fe->fail_at) return BT_OK;
    fe->fail_at = 0;
    return bt_err(fe->fail_code, "injected fault: %s %s", op, path);
}

static bool base_exists(struct fault_env *fe, const char *path, uint64_t *size)
{
    *size = 0;
    return bt_env_file_size(fe->target, path, size) == BT_OK;
}

/* ---- writable files ------------------------------------------------------- */

static int dead_err(const char *op, const char *path)
{
    return bt_err(BT_EIO, "%s %s: file dead after simulated crash", op, path);
}

static int fw_append(bt_wfile *f, const void *data, size_t n)
{
    struct fault_wfile *w = (struct fault_wfile *)f;
    struct fault_env *fe = w->env;
    pthread_mutex_lock(&fe->mu);
    int rc = count_call(fe, "append", w->path);
    if (rc == BT_OK && w->epoch != fe->epoch) rc = dead_err("append", w->path);
    if (rc == BT_OK && fe->space != UINT64_MAX && n > fe->space)
        rc = bt_err(BT_ENOSPC, "append %s: injected disk full", w->path);
    if (rc == BT_OK) {
        rc = bt_wfile_append(w->inner, data, n);
        if (rc == BT_OK) {
            w->st->size += n;
            if (fe->space != UINT64_MAX) fe->space -= n;
        } else if (w->st->path) {
            /* A failed append may have written part of the data. */
            uint64_t size;
            if (base_exists(fe, w->path, &size)) w->st->size = size;
        }
    }
    pthread_mutex_unlock(&fe->mu);
    return rc;
}

static int fw_sync(bt_wfile *f)
{
    struct fault_wfile *w = (struct fault_wfile *)f;
    struct fault_env *fe = w->env;
    pthread_mutex_lock(&fe->mu);
    int rc = count_call(fe, "sync", w->path);
    if (rc == BT_OK && w->epoch != fe->epoch) rc = dead_err("sync", w->path);
    if (rc == BT_OK) rc = bt_wfile_sync(w->inner);
    if (rc == BT_OK) w->st->synced = w->st->size;
    pthread_mutex_unlock(&fe->mu);
    return rc;
}

static int fw_close(bt_wfile *f)
{
    struct fault_wfile *w = (struct fault_wfile *)f;
    struct fault_env *fe = w->env;
    pthread_mutex_lock(&fe->mu);
    int rc = bt_wfile_close(w->inner);
    if (rc == BT_OK && w->epoch != fe->epoch) rc = dead_err("close", w->path);
    if (--w->st->refs == 0 && !w->st->path) free_state(w->st);
    pthread_mutex_unlock(&fe->mu);
    free(w);
    return rc;
}

static const struct bt_wfile_ops fault_wfile_ops = { fw_append, fw_sync, fw_close };

/* Opens in the base env and updates (or starts) tracking of npath, which
 * this takes ownership of. */
static int open_tracked(struct fault_env *fe, char *npath, int mode, struct fault_wfile *w)
{
    struct fstate *st = find_state(fe, npath);
    uint64_t old_size = 0;
    bool existed = st != NULL || base_exists(fe, w->path, &old_size);
    int rc = bt_env_open_writable(fe->target, w->path, mode, &w->inner);
    if (rc != BT_OK || st) free(npath);
    if (rc != BT_OK) return rc;
    if (!st) {
        st = link_state(fe, npath);
        if (!st) {
            free(npath);
            bt_wfile_close(w->inner);
            return bt_err(BT_ENOMEM, "open %s: out of memory", w->path);
        }
        /* A file we did not create is durable as it stands. */
        st->pending = !existed;
        st->size = st->synced = mode == BT_ENV_APPEND ? old_size : 0;
    } else if (mode != BT_ENV_APPEND) {
        st->size = st->synced = 0;
    }
    st->refs++;
    w->st = st;
    return BT_OK;
}

static int fe_open_writable(bt_env *e, const char *path, int mode, bt_wfile **out)
{
    struct fault_env *fe = (struct fault_env *)e;
    size_t plen = strlen(path) + 1;
    struct fault_wfile *w = calloc(1, sizeof *w + plen);
    char *npath = norm_path(path);
    if (!w || !npath) {
        free(w);
        free(npath);
        return bt_err(BT_ENOMEM, "open %s: out of memory", path);
    }
    memcpy(w->path, path, plen);
    w->base.ops = &fault_wfile_ops;
    w->env = fe;
    pthread_mutex_lock(&fe->mu);
    w->epoch = fe->epoch;
    int rc = count_call(fe, "open", path);
    if (rc == BT_OK) rc = open_tracked(fe, npath, mode, w);
    else free(npath);
    pthread_mutex_unlock(&fe->mu);
    if (rc != BT_OK) {
        free(w);
        return rc;
    }
    *out = &w->base;
    return BT_OK;
}

/* ---- readable files ------------------------------------------------------- */

static int fr_read_at(bt_rfile *f, uint64_t off, size_t n, void *buf, size_t *got)
{
    struct fault_rfile *r = (struct fault_rfile *)f;
    pthread_mutex_lock(&r->env->mu);
    int rc = count_call(r->env, "read", r->path);
    pthread_mutex_unlock(&r->env->mu);
    if (rc != BT_OK) {
        *got = 0;
        return rc;
    }
    /* Reads change no state, so they run unlocked and in parallel. */
    return bt_rfile_read_at(r->inner, off, n, buf, got);
}

static int fr_close(bt_rfile *f)
{
    struct fault_rfile *r = (struct fault_rfile *)f;
    int rc = bt_rfile_close(r->inner);
    free(r);
    return rc;
}

static const struct bt_rfile_ops fault_rfile_ops = { fr_read_at, fr_close };

static int fe_open_readable(bt_env *e, const char *path, bt_rfile **out)
{
    struct fault_env *fe = (struct fault_env *)e;
    size_t plen = strlen(path) + 1;
    struct fault_rfile *r = malloc(sizeof *r + plen);
    if (!r) return bt_err(BT_ENOMEM, "open %s: out of memory", path);
    memcpy(r->path, path, plen);
    r->base.ops = &fault_rfile_ops;
    r->env = fe;
    pthread_mutex_lock(&fe->mu);
    int rc = count_call(fe, "open", path);
    pthread_mutex_unlock(&fe->mu);
    if (rc == BT_OK) rc = bt_env_open_readable(fe->target, path, &r->inner);
    if (rc != BT_OK) {
        free(r);
        return rc;
    }
    *out = &r->base;
    return BT_OK;
}

/* ---- namespace operations ------------------------------------------------- */

static int fe_file_size(bt_env *e, const char *path, uint64_t *size)
{
    return bt_env_file_size(((struct fault_env *)e)->target, path, size);
}

static int fe_mkdir(bt_env *e, const char *path)
{
    return bt_env_mkdir(((struct fault_env *)e)->target, path);
}

static int fe_list(bt_env *e, const char *dir, bt_env_list_fn fn, void *arg)
{
    return bt_env_list(((struct fault_env *)e)->target, dir, fn, arg);
}

/* The content a crash must put back at `to` if a rename onto it is not made
 * durable: the durable prefix of a durable file there, else nothing.  A
 * pending entry at `to` hands over its own prior after the rename. */
static int capture_prior(struct fault_env *fe, struct fstate *dst, const char *to,
                         struct fstate *out)
{
    uint64_t size;
    if (dst ? dst->pending : !base_exists(fe, to, &size)) return BT_OK;
    int rc = bt_env_read_all(fe->target, to, &out->prior, &out->prior_len);
    if (rc != BT_OK) return rc;
    if (dst && out->prior_len > dst->synced) out->prior_len = (size_t)dst->synced;
    out->has_prior = true;
    return BT_OK;
}

/* Moves tracking from `from` to `to` after the base rename succeeded. */
static int retarget(struct fault_env *fe, struct fstate *dst, const char *to,
                    char *nfrom, char *nto, struct fstate *prior)
{
    if (dst) {
        if (dst->pending) { /* still the older durable version underneath */
            prior->prior = dst->prior;
            prior->prior_len = dst->prior_len;
            prior->has_prior = dst->has_prior;
            dst->prior = NULL;
        }
        unlink_state(fe, dst);
    }
    struct fstate *st = find_state(fe, nfrom);
    if (st) {
        free(st->path);
        st->path = nto;
        clear_prior(st); /* belonged to the old name, which is gone for good */
    } else {
        st = link_state(fe, nto);
        if (!st) {
            free(nto);
            return bt_err(BT_ENOMEM, "rename %s: out of memory", to);
        }
        base_exists(fe, to, &st->size);
        st->synced = st->size;
    }
    st->pending = true;
    st->prior = prior->prior;
    st->prior_len = prior->prior_len;
    st->has_prior = prior->has_prior;
    prior->prior = NULL;
    return BT_OK;
}

static int rename_tracked(struct fault_env *fe, const char *from, const char *to,
                          char *nfrom, char *nto)
{
    if (strcmp(nfrom, nto) == 0) { /* renaming onto itself changes nothing */
        free(nto);
        return bt_env_rename(fe->target, from, to);
    }
    struct fstate *dst = find_state(fe, nto);
    struct fstate prior = { 0 };
    int rc = capture_prior(fe, dst, to, &prior);
    if (rc == BT_OK) rc = bt_env_rename(fe->target, from, to);
    if (rc == BT_OK) rc = retarget(fe, dst, to, nfrom, nto, &prior);
    else free(nto);
    free(prior.prior);
    return rc;
}

static int fe_rename(bt_env *e, const char *from, const char *to)
{
    struct fault_env *fe = (struct fault_env *)e;
    char *nfrom = norm_path(from), *nto = norm_path(to);
    int rc = nfrom && nto ? BT_OK : bt_err(BT_ENOMEM, "rename %s: out of memory", from);
    pthread_mutex_lock(&fe->mu);
    if (rc == BT_OK) rc = count_call(fe, "rename", from);
    if (rc == BT_OK) {
        rc = rename_tracked(fe, from, to, nfrom, nto);
        nto = NULL; /* owned by rename_tracked from here */
    }
    pthread_mutex_unlock(&fe->mu);
    free(nfrom);
    free(nto);
    return rc;
}

static int fe_remove(bt_env *e, const char *path)
{
    struct fault_env *fe = (struct fault_env *)e;
    char *npath = norm_path(path);
    if (!npath) return bt_err(BT_ENOMEM, "remove %s: out of memory", path);
    pthread_mutex_lock(&fe->mu);
    int rc = count_call(fe, "remove", path);
    if (rc == BT_OK) rc = bt_env_remove(fe->target, path);
    if (rc == BT_OK) {
        struct fstate *st = find_state(fe, npath);
        if (st) unlink_state(fe, st);
    }
    pthread_mutex_unlock(&fe->mu);
    free(npath);
    return rc;
}

static int fe_sync_dir(bt_env *e, const char *path)
{
    struct fault_env *fe = (struct fault_env *)e;
    char *ndir = norm_path(path);
    if (!ndir) return bt_err(BT_ENOMEM, "sync_dir %s: out of memory", path);
    pthread_mutex_lock(&fe->mu);
    int rc = count_call(fe, "sync_dir", path);
    if (rc == BT_OK) rc = bt_env_sync_dir(fe->target, path);
    for (struct fstate *st = fe->files; rc == BT_OK && st; st = st->next) {
        if (st->pending && in_dir(st->path, ndir)) {
            st->pending = false;
            clear_prior(st);
        }
    }
    pthread_mutex_unlock(&fe->mu);
    free(ndir);
    return rc;
}

static int fe_truncate(bt_env *e, const char *path, uint64_t size)
{
    struct fault_env *fe = (struct fault_env *)e;
    char *npath = norm_path(path);
    if (!npath) return bt_err(BT_ENOMEM, "truncate %s: out of memory", path);
    pthread_mutex_lock(&fe->mu);
    int rc = count_call(fe, "truncate", path);
    if (rc == BT_OK) rc = bt_env_truncate(fe->target, path, size);
    struct fstate *st = rc == BT_OK ? find_state(fe, npath) : NULL;
    if (st) {
        st->size = size;
        if (st->synced > size) st->synced = size;
    }
    pthread_mutex_unlock(&fe->mu);
    free(npath);
    return rc;
}

static void fe_destroy(bt_env *e)
{
    struct fault_env *fe = (struct fault_env *)e;
    while (fe->files) {
        struct fstate *st = fe->files;
        fe->files = st->next;
        free_state(st);
    }
    pthread_mutex_destroy(&fe->mu);
    free(fe);
}

static const struct bt_env_ops fault_env_ops = {
    .open_writable = fe_open_writable,
    .open_readable = fe_open_readable,
    .file_size = fe_file_size,
    .rename = fe_rename,
    .remove = fe_remove,
    .mkdir = fe_mkdir,
    .sync_dir = fe_sync_dir,
    .list = fe_list,
    .truncate = fe_truncate,
    .destroy = fe_destroy,
};

bt_env *bt_env_fault_new(bt_env *base)
{
    if (!base) return NULL;
    struct fault_env *fe = calloc(1, sizeof *fe);
    if (!fe) return NULL;
    if (pthread_mutex_init(&fe->mu, NULL) != 0) {
        free(fe);
        return NULL;
    }
    fe->base.ops = &fault_env_ops;
    fe->target = base;
    fe->fail_code = BT_EIO;
    fe->space = UINT64_MAX;
    return &fe->base;
}

/* ---- the simulated crash ---------------------------------------------------- */

/* Writes back the durable content a pending rename replaced. */
static int restore_prior(struct fault_env *fe, const struct fstate *st)
{
    bt_wfile *f;
    int rc = bt_env_open_writable(fe->target, st->path, BT_ENV_CREATE_TRUNC, &f);
    if (rc != BT_OK) return rc;
    rc = bt_wfile_append(f, st->prior, st->prior_len);
    if (rc == BT_OK) rc = bt_wfile_sync(f);
    int crc = bt_wfile_close(f);
    return rc != BT_OK ? rc : crc;
}

/* Puts one file in the state a crash now would leave it in. */
static int crash_file(struct fault_env *fe, const struct fstate *st)
{
    if (st->pending && st->has_prior) return restore_prior(fe, st);
    if (st->pending) {
        int rc = bt_env_remove(fe->target, st->path);
        return rc == BT_ENOTFOUND ? BT_OK : rc;
    }
    uint64_t size;
    if (base_exists(fe, st->path, &size) && size > st->synced)
        return bt_env_truncate(fe->target, st->path, st->synced);
    return BT_OK;
}

int bt_env_fault_drop_unsynced(bt_env *e)
{
    struct fault_env *fe = as_fault(e);
    if (!fe) return bt_err(BT_EINVAL, "drop_unsynced: not a fault env");
    pthread_mutex_lock(&fe->mu);
    int rc = BT_OK;
    /* After the crash what is on disk is all there is: forget every file. */
    while (fe->files) {
        struct fstate *st = fe->files;
        int r = crash_file(fe, st);
        if (rc == BT_OK) rc = r;
        unlink_state(fe, st);
    }
    fe->epoch++; /* every writer opened before now is dead */
    pthread_mutex_unlock(&fe->mu);
    return rc;
}

void bt_env_fault_fail_nth(bt_env *e, uint64_t n, int code)
{
    struct fault_env *fe = as_fault(e);
    if (!fe) return;
    pthread_mutex_lock(&fe->mu);
    fe->fail_at = n ? fe->calls + n : 0;
    fe->fail_code = code < 0 ? code : BT_EIO; /* a "failure" must be an error */
    pthread_mutex_unlock(&fe->mu);
}

void bt_env_fault_set_space(bt_env *e, uint64_t bytes)
{
    struct fault_env *fe = as_fault(e);
    if (!fe) return;
    pthread_mutex_lock(&fe->mu);
    fe->space = bytes;
    pthread_mutex_unlock(&fe->mu);
}

uint64_t bt_env_fault_calls(bt_env *e)
{
    struct fault_env *fe = as_fault(e);
    if (!fe) return 0;
    pthread_mutex_lock(&fe->mu);
    uint64_t n = fe->calls;
    pthread_mutex_unlock(&fe->mu);
    return n;
}

/* common/env_posix.c: the POSIX bt_env (env.h) and the helpers that work over
 * any env (bt_env_read_all, bt_env_write_atomic, bt_env_exists).
 *
 * Every failure is reported as bt_err(bt_from_errno(errno), "<call> <path>:
 * <strerror>") so a log line alone tells which syscall failed on which file.
 */
#include "common/env.h"
#include "common/status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Turns the current errno into a BT_E* code with a detail naming call and path. */
static int sys_err(const char *call, const char *path)
{
    int e = errno ? errno : EIO; /* never report a failure as BT_OK */
    return bt_err(bt_from_errno(e), "%s %s: %s", call, path, strerror(e));
}

/* ---- writable files ------------------------------------------------------- */

struct posix_wfile {
    bt_wfile base;
    int fd;
    uint64_t size;  /* next write offset: appends use pwrite at this offset */
    uint64_t range_synced; /* bytes before this were handed to writeback */
    char path[];
};

/* Every RANGE_SYNC_BYTES appended, the new bytes are handed to writeback
 * (sync_file_range WRITE, which does not wait).  A large file being written
 * (a flush, a compaction) then never holds hundreds of MiB of dirty pages,
 * which an fdatasync of the commit log would otherwise have to wait for on
 * ext4's ordered journal, and which make writeback come in bursts. */
#define RANGE_SYNC_BYTES (1u << 20)

static void start_writeback(struct posix_wfile *f)
{
    if (f->size - f->range_synced < RANGE_SYNC_BYTES) return;
    /* best effort: an error here is seen by the next fdatasync */
    sync_file_range(f->fd, (off_t)f->range_synced, (off_t)(f->size - f->range_synced),
                    SYNC_FILE_RANGE_WRITE);
    f->range_synced = f->size;
}

static int pw_append(bt_wfile *wf, const void *data, size_t n)
{
    struct posix_wfile *f = (struct posix_wfile *)wf;
    const uint8_t *p = data;
    while (n > 0) {
        ssize_t w = pwrite(f->fd, p, n, (off_t)f->size);
        if (w < 0) {
            if (errno == EINTR) continue;
            return sys_err("pwrite", f->path);
        }
        /* Short writes happen (signals, quotas): advance and keep going. */
        p += w;
        n -= (size_t)w;
        f->size += (uint64_t)w;
    }
    start_writeback(f);
    return BT_OK;
}

static int pw_sync(bt_wfile *wf)
{
    struct posix_wfile *f = (struct posix_wfile *)wf;
    while (fdatasync(f->fd) != 0) {
        if (errno != EINTR) return sys_err("fdatasync", f->path);
    }
    return BT_OK;
}

static int pw_close(bt_wfile *wf)
{
    struct posix_wfile *f = (struct posix_wfile *)wf;
    int rc = BT_OK;
    /* On Linux the descriptor is released even when close reports EINTR,
     * so retrying could close an unrelated file: treat EINTR as done. */
    if (close(f->fd) != 0 && errno != EINTR) rc = sys_err("close", f->path);
    free(f);
    return rc;
}

static const struct bt_wfile_ops posix_wfile_ops = { pw_append, pw_sync, pw_close };

static int open_retry(const char *path, int flags, mode_t mode)
{
    int fd;
    do {
        fd = open(path, flags, mode);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

static int mode_flags(int mode, int *flags)
{
    int base = O_WRONLY | O_CREAT | O_CLOEXEC;
    switch (mode) {
    case BT_ENV_CREATE_TRUNC: *flags = base | O_TRUNC; return BT_OK;
    case BT_ENV_APPEND:       *flags = base; return BT_OK;
    case BT_ENV_EXCL:         *flags = base | O_EXCL; return BT_OK;
    default:                  return BT_EINVAL;
    }
}

static int px_open_writable(bt_env *e, const char *path, int mode, bt_wfile **out)
{
    (void)e;
    int flags;
    if (mode_flags(mode, &flags) != BT_OK)
        return bt_err(BT_EINVAL, "open %s: bad mode %d", path, mode);
    size_t plen = strlen(path) + 1;
    struct posix_wfile *f = malloc(sizeof *f + plen);
    if (!f) return bt_err(BT_ENOMEM, "open %s: out of memory", path);
    memcpy(f->path, path, plen);
    f->fd = open_retry(path, flags, 0644);
    if (f->fd < 0) {
        int rc = sys_err("open", path);
        free(f);
        return rc;
    }
    struct stat st;
    if (fstat(f->fd, &st) != 0) {
        int rc = sys_err("fstat", path);
        close(f->fd);
        free(f);
        return rc;
    }
    f->size = (uint64_t)st.st_size; /* 0 unless BT_ENV_APPEND kept old data */
    f->range_synced = f->size;
    f->base.ops = &posix_wfile_ops;
    *out = &f->base;
    return BT_OK;
}

/* ---- readable files ------------------------------------------------------- */

/* Files of at least MAP_MIN bytes are also mapped read-only at open (SSTables,
 * mostly): a read inside the mapping is a memcpy instead of a pread system
 * call.  Bytes past the size seen at open (a file still being appended) are
 * read with pread.  Callers never truncate a file they have open for reading
 * (SSTables are immutable), which is what makes the mapping safe. */
#define MAP_MIN (64 * 1024)
/* Large reads (scan readahead) still use pread: measured faster than copying
 * out of the mapping, which takes a page fault per newly touched page range. */
#define MAP_MAX_READ (32 * 1024)

struct posix_rfile {
    bt_rfile base;
    int fd;
    const uint8_t *map;
    size_t map_len;
    char path[];
};

static int pr_read_at(bt_rfile *rf, uint64_t off, size_t n, void *buf, size_t *got)
{
    struct posix_rfile *f = (struct posix_rfile *)rf;
    size_t done = 0;
    *got = 0;
    if (off > (uint64_t)INT64_MAX || n > (uint64_t)INT64_MAX - off)
        return bt_err(BT_EINVAL, "pread %s: offset %llu out of range", f->path,
                      (unsigned long long)off);
    if (off < f->map_len && n < MAP_MAX_READ) {
        done = f->map_len - (size_t)off < n ? f->map_len - (size_t)off : n;
        memcpy(buf, f->map + off, done);
    }
    /* pread may return less than asked before EOF; only 0 means EOF. */
    while (done < n) {
        ssize_t r = pread(f->fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return sys_err("pread", f->path);
        }
        if (r == 0) break;
        done += (size_t)r;
    }
    *got = done;
    return BT_OK;
}

static int pr_close(bt_rfile *rf)
{
    struct posix_rfile *f = (struct posix_rfile *)rf;
    int rc = BT_OK;
    if (f->map) munmap((void *)f->map, f->map_len);
    if (close(f->fd) != 0 && errno != EINTR) rc = sys_err("close", f->path);
    free(f);
    return rc;
}

static const struct bt_rfile_ops posix_rfile_ops = { pr_read_at, pr_close };

static int px_open_readable(bt_env *e, const char *path, bt_rfile **out)
{
    (void)e;
    size_t plen = strlen(path) + 1;
    struct posix_rfile *f = malloc(sizeof *f + plen);
    if (!f) return bt_err(BT_ENOMEM, "open %s: out of memory", path);
    memcpy(f->path, path, plen);
    f->fd = open_retry(path, O_RDONLY | O_CLOEXEC, 0);
    if (f->fd < 0) {
        int rc = sys_err("open", path);
        free(f);
        return rc;
    }
    f->map = NULL;
    f->map_len = 0;
    struct stat st;
    if (fstat(f->fd, &st) == 0 && st.st_size >= MAP_MIN && (uint64_t)st.st_size <= SIZE_MAX) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, f->fd, 0);
        if (m != MAP_FAILED) {   /* no mapping is fine: pread does it all */
            f->map = m;
            f->map_len = (size_t)st.st_size;
        }
    }
    f->base.ops = &posix_rfile_ops;
    *out = &f->base;
    return BT_OK;
}

/* ---- namespace operations ------------------------------------------------- */

static int px_file_size(bt_env *e, const char *path, uint64_t *size)
{
    (void)e;
    struct stat st;
    if (stat(path, &st) != 0) return sys_err("stat", path);
    *size = (uint64_t)st.st_size;
    return BT_OK;
}

static int px_rename(bt_env *e, const char *from, const char *to)
{
    (void)e;
    if (rename(from, to) != 0) {
        int err = errno;
        return bt_err(bt_from_errno(err), "rename %s -> %s: %s", from, to, strerror(err));
    }
    return BT_OK;
}

static int px_remove(bt_env *e, const char *path)
{
    (void)e;
    if (unlink(path) != 0) return sys_err("unlink", path);
    return BT_OK;
}

/* Creates one directory; an existing entry is fine here and checked at the end. */
static int mkdir_one(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return sys_err("mkdir", path);
    return BT_OK;
}

static int px_mkdir(bt_env *e, const char *path)
{
    (void)e;
    if (path[0] == '\0') return bt_err(BT_EINVAL, "mkdir: empty path");
    char *buf = strdup(path);
    if (!buf) return bt_err(BT_ENOMEM, "mkdir %s: out of memory", path);
    int rc = BT_OK;
    size_t len = strlen(buf);
    /* Create each prefix ending just before a '/', then the whole path. */
    for (size_t i = 1; i <= len && rc == BT_OK; i++) {
        if (i < len && buf[i] != '/') continue;
        if (buf[i - 1] == '/') continue; /* "a//b" or trailing '/' */
        char saved = buf[i];
        buf[i] = '\0';
        rc = mkdir_one(buf);
        buf[i] = saved;
    }
    free(buf);
    if (rc != BT_OK) return rc;
    /* EEXIST above may have been a regular file: mkdir -p must not succeed then. */
    struct stat st;
    if (stat(path, &st) != 0) return sys_err("stat", path);
    if (!S_ISDIR(st.st_mode)) return bt_err(BT_EEXIST, "mkdir %s: exists and is not a directory", path);
    return BT_OK;
}

static int px_sync_dir(bt_env *e, const char *path)
{
    (void)e;
    int fd = open_retry(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0) return sys_err("open", path);
    int rc = BT_OK;
    while (fsync(fd) != 0) {
        if (errno != EINTR) { rc = sys_err("fsync", path); break; }
    }
    close(fd);
    return rc;
}

static int px_list(bt_env *e, const char *dir, bt_env_list_fn fn, void *arg)
{
    (void)e;
    DIR *d = opendir(dir);
    if (!d) return sys_err("opendir", dir);
    int rc = BT_OK;
    for (;;) {
        errno = 0; /* readdir signals errors only through errno */
        struct dirent *ent = readdir(d);
        if (!ent) {
            if (errno != 0) rc = sys_err("readdir", dir);
            break;
        }
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        if (fn(arg, ent->d_name) != 0) break;
    }
    closedir(d);
    return rc;
}

static int px_truncate(bt_env *e, const char *path, uint64_t size)
{
    (void)e;
    if (size > (uint64_t)INT64_MAX)
        return bt_err(BT_EINVAL, "truncate %s: size %llu out of range", path, (unsigned long long)size);
    while (truncate(path, (off_t)size) != 0) {
        if (errno != EINTR) return sys_err("truncate", path);
    }
    return BT_OK;
}

static const struct bt_env_ops posix_env_ops = {
    .open_writable = px_open_writable,
    .open_readable = px_open_readable,
    .file_size = px_file_size,
    .rename = px_rename,
    .remove = px_remove,
    .mkdir = px_mkdir,
    .sync_dir = px_sync_dir,
    .list = px_list,
    .truncate = px_truncate,
    .destroy = NULL, /* static: bt_env_destroy is a no-op */
};

static bt_env posix_env = { &posix_env_ops };

bt_env *bt_env_posix(void) { return &posix_env; }

/* ---- helpers over any env ------------------------------------------------- */

/* Cleanup after a failure must not overwrite the detail of that failure. */
struct saved_msg { char text[512]; };

static void msg_save(struct saved_msg *s) { snprintf(s->text, sizeof s->text, "%s", bt_errmsg()); }
static void msg_restore(const struct saved_msg *s) { (void)bt_err(BT_OK, "%s", s->text); }

/* Reads [len, cap) of f into buf, growing it until a short read shows EOF. */
static int read_to_eof(bt_rfile *f, uint8_t **buf, size_t *len, size_t cap)
{
    for (;;) {
        size_t got;
        int rc = bt_rfile_read_at(f, *len, cap - *len, *buf + *len, &got);
        if (rc != BT_OK) return rc;
        *len += got;
        if (*len < cap) return BT_OK;
        if (cap > SIZE_MAX / 2) return bt_err(BT_ETOOBIG, "read: file too large");
        uint8_t *bigger = realloc(*buf, cap * 2);
        if (!bigger) return bt_err(BT_ENOMEM, "read: out of memory");
        *buf = bigger;
        cap *= 2;
    }
}

int bt_env_read_all(bt_env *e, const char *path, uint8_t **data, size_t *len)
{
    bt_rfile *f;
    int rc = bt_env_open_readable(e, path, &f);
    if (rc != BT_OK) return rc;
    /* One byte more than the current size lets a single read also see EOF. */
    uint64_t hint = 0;
    struct saved_msg m;
    msg_save(&m);
    if (bt_env_file_size(e, path, &hint) != BT_OK) hint = 4095;
    msg_restore(&m);
    if (hint >= SIZE_MAX / 2) {
        bt_rfile_close(f);
        return bt_err(BT_ETOOBIG, "read %s: file too large", path);
    }
    size_t cap = (size_t)hint + 1, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) rc = bt_err(BT_ENOMEM, "read %s: out of memory", path);
    else rc = read_to_eof(f, &buf, &n, cap);
    msg_save(&m);
    int crc = bt_rfile_close(f);
    if (rc != BT_OK) msg_restore(&m);
    else rc = crc;
    if (rc != BT_OK) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = n;
    return BT_OK;
}

/* Writes data to a new file at path and makes it durable (not its dir entry). */
static int write_synced(bt_env *e, const char *path, const void *data, size_t len)
{
    bt_wfile *f;
    int rc = bt_env_open_writable(e, path, BT_ENV_CREATE_TRUNC, &f);
    if (rc != BT_OK) return rc;
    rc = bt_wfile_append(f, data, len);
    if (rc == BT_OK) rc = bt_wfile_sync(f);
    struct saved_msg m;
    msg_save(&m);
    int crc = bt_wfile_close(f);
    if (rc != BT_OK) {
        msg_restore(&m);
        return rc;
    }
    return crc;
}

/* The directory holding path: "." for a bare name, "/" for a root entry. */
static char *parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

int bt_env_write_atomic(bt_env *e, const char *path, const void *data, size_t len)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".tmp");
    char *dir = parent_dir(path);
    int rc = BT_OK;
    if (!tmp || !dir) rc = bt_err(BT_ENOMEM, "write %s: out of memory", path);
    if (rc == BT_OK) {
        memcpy(tmp, path, plen);
        memcpy(tmp + plen, ".tmp", sizeof ".tmp");
        rc = write_synced(e, tmp, data, len);
        if (rc == BT_OK) rc = bt_env_rename(e, tmp, path);
        if (rc != BT_OK) {
            /* Leave no half-written temp behind; keep the real failure's detail. */
            struct saved_msg m;
            msg_save(&m);
            (void)bt_env_remove(e, tmp);
            msg_restore(&m);
        }
    }
    /* The rename is durable only once the directory entry is. */
    if (rc == BT_OK) rc = bt_env_sync_dir(e, dir);
    free(tmp);
    free(dir);
    return rc;
}

bool bt_env_exists(bt_env *e, const char *path)
{
    uint64_t size;
    struct saved_msg m;
    msg_save(&m); /* a query, not a failure: leave the caller's detail alone */
    bool found = bt_env_file_size(e, path, &size) == BT_OK;
    msg_restore(&m);
    return found;
}

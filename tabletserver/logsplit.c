/* tabletserver/logsplit.c: split a dead server's commit log per tablet (see
 * logsplit.h).
 *
 * One pass over the log files, streamed record by record
 * (ts_log_read_file).  Each known tablet's records are re-encoded into its
 * own buffer; once all buffers together hold SPLIT_BUFFER bytes they are
 * appended to the tablets' <name>.log.tmp files (created on the first
 * append, appended to later) and emptied.  At the end each temporary file is
 * fsynced, renamed to <name>.log and the recovery directory fsynced, so a
 * final name only ever holds a whole, durable file.
 */
#include "tabletserver/logsplit.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/coding.h"
#include "common/log.h"
#include "common/status.h"
#include "tabletserver/commitlog.h"

#define SPLIT_BUFFER ((size_t)16 << 20)
#define NAME_MAX_LEN 128
#define PATH_CAP 4096

typedef struct split_tab {
    uint64_t id;
    bool used;              /* hash slot taken */
    char *dir;              /* the tablet's directory; NULL: unknown tablet */
    char *tmp, *final, *rdir;
    bt_buf pending;         /* encoded records not yet appended to tmp */
    bool created;           /* tmp exists (created by this run) */
} split_tab;

typedef struct split_ctx {
    bt_env *env;
    const char *name;
    const char *(*tablet_dir)(void *arg, uint64_t tablet_id);
    void *arg;
    split_tab *tabs;        /* open-addressing hash on id */
    size_t cap, n;
    size_t buffered;
    ts_log_split_stats st;
} split_ctx;

static bool valid_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > NAME_MAX_LEN || !strcmp(n, ".") || !strcmp(n, "..")) return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-'))
            return false;
    }
    return true;
}

static size_t slot_of(uint64_t id, size_t cap)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

static int grow(split_ctx *c)
{
    size_t cap = c->cap ? c->cap * 2 : 64;
    split_tab *t = calloc(cap, sizeof *t);
    if (!t) return bt_err(BT_ENOMEM, "log split: tablet table of %zu", cap);
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->tabs[i].used) continue;
        size_t j = slot_of(c->tabs[i].id, cap);
        while (t[j].used) j = (j + 1) & (cap - 1);
        t[j] = c->tabs[i];
    }
    free(c->tabs);
    c->tabs = t;
    c->cap = cap;
    return BT_OK;
}

static char *path_join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + (c ? strlen(c) : 0) + 3;
    char *p = malloc(n);
    if (!p) return NULL;
    if (c) snprintf(p, n, "%s/%s/%s", a, b, c);
    else snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Fills in a newly seen tablet: asks the caller where it lives. */
static int tab_init(split_ctx *c, split_tab *t, uint64_t id)
{
    t->used = true;
    t->id = id;
    const char *d = c->tablet_dir(c->arg, id);
    if (!d) return BT_OK;
    if (d[0] != '/' || strlen(d) > PATH_CAP - 300)
        return bt_err(BT_EINVAL, "log split: tablet %" PRIu64 " dir \"%s\" is not an absolute path", id, d);
    char leaf[NAME_MAX_LEN + 16];
    t->dir = strdup(d);
    t->rdir = path_join(d, TS_RECOVERY_DIR, NULL);
    snprintf(leaf, sizeof leaf, "%s.log", c->name);
    t->final = path_join(d, TS_RECOVERY_DIR, leaf);
    snprintf(leaf, sizeof leaf, "%s.log.tmp", c->name);
    t->tmp = path_join(d, TS_RECOVERY_DIR, leaf);
    if (!t->dir || !t->rdir || !t->final || !t->tmp) return bt_err(BT_ENOMEM, "log split: paths");
    return BT_OK;
}

static int tab_find(split_ctx *c, uint64_t id, split_tab **out)
{
    if (c->n * 2 >= c->cap) {
        int rc = grow(c);
        if (rc) return rc;
    }
    size_t j = slot_of(id, c->cap);
    while (c->tabs[j].used && c->tabs[j].id != id) j = (j + 1) & (c->cap - 1);
    split_tab *t = &c->tabs[j];
    if (!t->used) {
        c->n++;
        int rc = tab_init(c, t, id);
        if (rc) return rc;
    }
    *out = t;
    return BT_OK;
}

/* Appends t's buffered records to its temporary file. */
static int tab_flush(split_ctx *c, split_tab *t)
{
    if (t->pending.len == 0) return BT_OK;
    int rc = BT_OK;
    if (!t->created) {
        /* recovery/ may be new: make its entry in the tablet dir durable */
        rc = bt_env_mkdir(c->env, t->rdir);
        if (!rc) rc = bt_env_sync_dir(c->env, t->dir);
        if (rc) return rc;
    }
    bt_wfile *f;
    rc = bt_env_open_writable(c->env, t->tmp, t->created ? BT_ENV_APPEND : BT_ENV_CREATE_TRUNC, &f);
    if (rc) return rc;
    t->created = true;
    rc = bt_wfile_append(f, t->pending.data, t->pending.len);
    int crc = bt_wfile_close(f);
    if (!rc) rc = crc;
    c->buffered -= t->pending.len;
    bt_buf_clear(&t->pending);
    return rc;
}

static int flush_all(split_ctx *c)
{
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->tabs[i].used || !c->tabs[i].dir) continue;
        int rc = tab_flush(c, &c->tabs[i]);
        if (rc) return rc;
    }
    return BT_OK;
}

static int on_record(void *arg, uint64_t tablet_id, uint64_t seq, uint64_t last_seq,
                     const uint8_t *payload, size_t n)
{
    split_ctx *c = arg;
    split_tab *t;
    int rc = tab_find(c, tablet_id, &t);
    if (rc) return rc;
    c->st.records++;
    if (!t->dir) {
        c->st.skipped++;
        return BT_OK;
    }
    size_t before = t->pending.len;
    rc = ts_log_encode_record(&t->pending, tablet_id, seq, last_seq, payload, n);
    if (rc) return rc;
    c->st.bytes += t->pending.len - before;
    c->buffered += t->pending.len - before;
    return c->buffered >= SPLIT_BUFFER ? flush_all(c) : BT_OK;
}

/* Makes t's temporary file durable and gives it its final name. */
static int tab_publish(split_ctx *c, split_tab *t)
{
    bt_wfile *f;
    int rc = bt_env_open_writable(c->env, t->tmp, BT_ENV_APPEND, &f);
    if (rc) return rc;
    rc = bt_wfile_sync(f);
    int crc = bt_wfile_close(f);
    if (!rc) rc = crc;
    if (!rc) rc = bt_env_rename(c->env, t->tmp, t->final);
    if (!rc) rc = bt_env_sync_dir(c->env, t->rdir);
    return rc;
}

static void ctx_free(split_ctx *c, bool remove_tmp)
{
    for (size_t i = 0; i < c->cap; i++) {
        split_tab *t = &c->tabs[i];
        if (!t->used) continue;
        if (remove_tmp && t->created && t->tmp) {
            int rc = bt_env_remove(c->env, t->tmp);
            if (rc && rc != BT_ENOTFOUND) BT_WARN("log split: cannot remove %s: %s", t->tmp, bt_errmsg());
        }
        free(t->dir);
        free(t->rdir);
        free(t->tmp);
        free(t->final);
        bt_buf_free(&t->pending);
    }
    free(c->tabs);
}

int ts_log_split(bt_env *env, const char *log_dir, const char *name,
                 const char *(*tablet_dir)(void *arg, uint64_t tablet_id), void *arg,
                 ts_log_split_stats *st)
{
    if (st) memset(st, 0, sizeof *st);
    if (!env || !log_dir || !name || !tablet_dir)
        return bt_err(BT_EINVAL, "ts_log_split: env, log_dir, name and tablet_dir are required");
    if (!valid_name(name))
        return bt_err(BT_EINVAL, "ts_log_split: name \"%.*s\" must be 1-%d of [A-Za-z0-9_.-]", 200, name,
                      NAME_MAX_LEN);
    if (strlen(log_dir) > PATH_CAP - 32) return bt_err(BT_EINVAL, "ts_log_split: log dir path too long");
    uint64_t *nums;
    size_t nn;
    int rc = ts_log_list_files(env, log_dir, &nums, &nn);
    if (rc) return rc;
    split_ctx c = { .env = env, .name = name, .tablet_dir = tablet_dir, .arg = arg };
    for (size_t i = 0; !rc && i < nn; i++) {
        char path[PATH_CAP];
        ts_log_file_path(log_dir, nums[i], path, sizeof path);
        rc = ts_log_read_file(env, path, on_record, &c, NULL);
        if (rc == BT_ENOTFOUND) rc = BT_OK;  /* removed meanwhile: nothing to split */
        else if (!rc) c.st.files++;
    }
    free(nums);
    if (!rc) rc = flush_all(&c);
    for (size_t i = 0; !rc && i < c.cap; i++) {
        split_tab *t = &c.tabs[i];
        if (!t->used || !t->dir || !t->created) continue;
        rc = tab_publish(&c, t);
        if (!rc) {
            t->created = false;  /* renamed: nothing to clean up */
            c.st.tablets++;
        }
    }
    if (rc) {
        char why[512];
        snprintf(why, sizeof why, "%s", bt_errmsg());
        ctx_free(&c, true);
        return bt_err(rc, "log split of %s: %s", log_dir, why);
    }
    BT_INFO("log split of %s: %" PRIu64 " files, %" PRIu64 " records (%" PRIu64 " bytes) into %" PRIu64
            " tablets' recovery files, %" PRIu64 " records of unknown tablets skipped",
            log_dir, c.st.files, c.st.records, c.st.bytes, c.st.tablets, c.st.skipped);
    if (st) *st = c.st;
    ctx_free(&c, false);
    return BT_OK;
}

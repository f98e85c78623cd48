/* tabletserver/commitlog.c: the shared commit log (see commitlog.h).
 *
 * On-disk record (all integers little-endian; docs/formats.md, "Commit log"):
 *
 *   fixed32 checksum   low 32 bits of XXH3_64bits over every byte after this
 *                      field (the length field and the body)
 *   fixed32 length     number of body bytes that follow
 *   body:
 *     varint tablet_id
 *     varint seq       first sequence number of the mutation
 *     varint last_seq  last sequence number (>= seq)
 *     payload          the rest of the body
 *
 * A file is a plain concatenation of records, possibly followed by zero bytes
 * (the unused, preallocated end of a mapped file that was not cut back
 * because the process died).  A reader stops at the first record that is
 * truncated, too long, fails its checksum or has malformed varints: that is
 * a torn tail (a crash during a write), and since a file is never appended to
 * after reopening, nothing valid can follow it.  If only zeros follow, that is
 * the file's clean end, not a tear: eight zero bytes never form a record (the
 * checksum of a zero length field is 0x16fc193d, and an empty body has no
 * varints), so no valid record is mistaken for the end either.
 *
 * Two ways to append:
 *
 * The write path (SYNC mode, and every mode on an env other than the POSIX
 * one, e.g. the fault-injecting env of the tests).  Group commit: an appender
 * encodes its record outside the lock, then under `mu` copies it into the
 * pending buffer and links a waiter.  If no leader is running it becomes the
 * leader: it takes the whole pending buffer (and the waiters covered by it),
 * drops `mu`, writes the batch with one append and (depending on the mode)
 * one fdatasync under `io_mu`, re-takes `mu`, marks each covered waiter done
 * with the batch's status and broadcasts.  Followers sleep on `cv` until their
 * waiter is done, or until there is no leader and they take over.  In NONE
 * mode appenders do not wait at all; the background thread (or an appender
 * that pushes the buffer past 1 MiB) leads instead.  After a failed write or
 * sync the batch reports the error, the active file is abandoned (closed where
 * it stands) and the next batch starts a new file, so no later record can
 * land behind a torn one.
 *
 * The mapped path (GROUP and NONE on the POSIX env).  A write(2) per append
 * costs more than everything else on a single-threaded write path, so these
 * modes open each file with open(2), preallocate it with posix_fallocate and
 * map it MAP_SHARED; an append is a memcpy into the mapping under `mu`, with
 * no leader and no system call.  Why that keeps the GROUP promise: the pages
 * of a MAP_SHARED file mapping are the file's page-cache pages, so a byte
 * stored there is in the kernel exactly as if write(2) had put it there; if
 * the process dies the kernel still owns the dirty pages and writes them back.
 * Only the machine going down loses them, which the background thread bounds
 * by msync(MS_SYNC)ing the written range every group_ms (GROUP).  Why
 * fallocate: writeback of a page of a sparse file needs a block, and if the
 * disk is full then, the kernel can only drop the data (or kill the process
 * with SIGBUS on the page fault); with the blocks reserved up front a full
 * disk shows up as BT_ENOSPC from posix_fallocate, on the append that needed
 * the new file, and the next append simply tries again.  A file rolls when a
 * record does not fit: the next file is created first (so appenders wait only
 * for its creation), then the old one is synced, unmapped and cut back to the
 * bytes used with ftruncate, so a cleanly closed file has no zero tail.
 */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include "tabletserver/commitlog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/coding.h"
#include "common/log.h"
#include "common/status.h"

#define HDR_BYTES        8u                       /* checksum + length */
#define MAX_VARINTS      (3u * BT_MAX_VARINT64)
#define MAX_BODY         (1u << 30)               /* hard cap on a record's body */
#define DEFAULT_GROUP_MS 5u
#define DEFAULT_ROLL     (64ull << 20)
#define DEFAULT_MAX_REC  ((size_t)80 << 20)
#define NONE_FLUSH_BYTES ((size_t)1 << 20)        /* NONE mode: write once buffered */
#define SPARE_KEEP_BYTES ((size_t)4 << 20)        /* larger spare buffers are freed */
#define NONE_RESIDENT    ((uint64_t)4 << 20)      /* mapped NONE: write back past this */
#define SMALL_RECORD     1024u                    /* encoded whole on the stack, hashed in one pass */

/* ---- small tablet -> sequence maps ----------------------------------------- */

/* A server has at most a few thousand tablets and a batch or file usually far
 * fewer, so an unsorted array beats a hash table here. */
typedef struct tab_seq { uint64_t tablet, seq; } tab_seq;
typedef struct tab_map { tab_seq *v; size_t n, cap; } tab_map;

static tab_seq *tmap_find(const tab_map *m, uint64_t tablet)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].tablet == tablet) return &m->v[i];
    return NULL;
}

/* Raises tablet's entry to at least seq, adding it if missing. */
static int tmap_raise(tab_map *m, uint64_t tablet, uint64_t seq)
{
    tab_seq *e = tmap_find(m, tablet);
    if (e) {
        if (seq > e->seq) e->seq = seq;
        return BT_OK;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4;
        tab_seq *v = realloc(m->v, cap * sizeof *v);
        if (!v) return bt_err(BT_ENOMEM, "commit log: tablet map of %zu entries", cap);
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n++] = (tab_seq){ tablet, seq };
    return BT_OK;
}

static int tmap_merge(tab_map *dst, const tab_map *src)
{
    for (size_t i = 0; i < src->n; i++) {
        int rc = tmap_raise(dst, src->v[i].tablet, src->v[i].seq);
        if (rc) return rc;
    }
    return BT_OK;
}

static void tmap_remove(tab_map *m, uint64_t tablet)
{
    tab_seq *e = tmap_find(m, tablet);
    if (e) *e = m->v[--m->n];
}

static void tmap_free(tab_map *m)
{
    free(m->v);
    *m = (tab_map){0};
}

/* ---- the log object ------------------------------------------------------- */

typedef struct log_file {
    uint64_t number;
    tab_map tabs;           /* tablet -> max last_seq of its records here */
} log_file;

/* One appender waiting for its record's batch (lives on its stack). */
typedef struct waiter {
    struct waiter *next;
    bool done;
    int status;
} waiter;

/* What a leader takes from the pending state in one round. */
typedef struct batch {
    bt_buf buf;
    tab_map tabs;
    waiter *waiters;
    bool had_unsynced;      /* the active file held unsynced bytes before it */
} batch;

/* A file of the mapped path.  Offsets only grow: dropped <= written <= used
 * and synced <= used; records live in [0, used). */
typedef struct map_file {
    uint8_t *base;          /* MAP_SHARED mapping of the whole file; NULL: none */
    size_t map_len;         /* file and mapping size (a page multiple) */
    uint64_t cap;           /* bytes records may fill: max(roll_bytes, record) */
    uint64_t used;          /* bytes of whole records copied in */
    uint64_t synced;        /* prefix made durable by msync(MS_SYNC) */
    uint64_t written;       /* prefix written back (synced, or NONE's writeback) */
    uint64_t dropped;       /* page-aligned prefix released with MADV_DONTNEED */
    uint64_t number;
    int fd;
    bool broken;            /* a sync failed here: append no more to this file */
} map_file;

struct ts_log {
    /* Immutable after open. */
    bt_env *env;
    char *dir;
    ts_durability mode;
    bool mapped;            /* GROUP/NONE on the POSIX env: the mapped path */
    uint32_t group_ms;
    uint64_t roll_bytes;
    size_t max_record;
    size_t page;            /* system page size */
    uint64_t *old;          /* files that existed at open, ascending (replay) */
    size_t nold;

    /* `mu` protects everything in this block. */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* waiters done, leadership released */
    pthread_cond_t bg_cv;   /* wakes the background thread (close) */
    bt_buf pending;         /* encoded records no leader has taken yet */
    bt_buf spare;           /* a drained buffer kept for reuse */
    tab_map pending_tabs;   /* tablets of the pending records */
    waiter *wait_head, *wait_tail;
    bool leader_active;     /* a leader round is running */
    bool unsynced;          /* the active file holds bytes not yet fdatasynced */
    bool closing;
    int lost_err;           /* acknowledged records lost to an I/O error (GROUP/NONE) */
    log_file *files;        /* every live file, ascending; the last is active */
    size_t nfiles, cap_files;
    tab_map flushed;        /* tablet -> flushed seq reported by the tablet */
    /* The mapped path's active file.  Appenders copy into it and advance
     * `used` under mu alone.  Which file it is (base, fd, number, map_len,
     * cap) changes only with io_mu and mu both held, so holding io_mu keeps
     * the mapping alive: syncs run with io_mu only, outside mu. */
    map_file map;           /* base NULL: no file (yet, or after close) */
    /* The mapped path's statistics: plain counters, as mu is held anyway (a
     * locked add right after the copy would wait for its stores to drain). */
    uint64_t map_appends, map_bytes;

    /* `io_mu` serialises the file I/O of leader rounds, rolls, syncs of the
     * mapped file and close; it protects this block.  Lock order: io_mu
     * before mu. */
    pthread_mutex_t io_mu;
    bt_wfile *wf;           /* the active file; NULL after an abandoned one */
    uint64_t active_bytes;
    uint64_t next_number;

    pthread_t bg;
    bool bg_started;

    /* Statistics: updated without a lock, read approximately. */
    _Atomic uint64_t st_appends, st_syncs, st_groups, st_bytes;
};

int ts_durability_parse(const char *s)
{
    if (!s) return -1;
    if (!strcmp(s, "sync")) return TS_DURABILITY_SYNC;
    if (!strcmp(s, "group")) return TS_DURABILITY_GROUP;
    if (!strcmp(s, "none")) return TS_DURABILITY_NONE;
    return -1;
}

const char *ts_durability_name(ts_durability d)
{
    switch (d) {
    case TS_DURABILITY_SYNC:  return "sync";
    case TS_DURABILITY_GROUP: return "group";
    case TS_DURABILITY_NONE:  return "none";
    }
    return "unknown";
}

void ts_log_file_path(const char *dir, uint64_t number, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%012" PRIu64 ".log", dir, number);
}

static void file_path(const ts_log *l, uint64_t number, char *out, size_t cap)
{
    ts_log_file_path(l->dir, number, out, cap);
}

#define PATH_CAP 4096

/* ---- record decoding ------------------------------------------------------ */

typedef struct log_rec {
    uint64_t tablet, seq, last_seq;
    const uint8_t *payload;
    size_t n;
} log_rec;

static uint32_t record_checksum(const uint8_t *p, size_t n)
{
    return (uint32_t)XXH3_64bits(p, n);
}

/* Decodes the record at p (avail bytes left in the file).  Returns its total
 * size, or 0 with *why set when the bytes are not one whole valid record. */
static size_t decode_record(const uint8_t *p, size_t avail, log_rec *r, const char **why)
{
    if (avail < HDR_BYTES) { *why = "truncated record header"; return 0; }
    uint32_t sum = bt_get_fixed32(p);
    uint32_t body = bt_get_fixed32(p + 4);
    if (body > MAX_BODY) { *why = "length too large"; return 0; }
    if (body > avail - HDR_BYTES) { *why = "record extends past end of file"; return 0; }
    if (record_checksum(p + 4, 4 + (size_t)body) != sum) { *why = "checksum mismatch"; return 0; }
    const uint8_t *q = p + HDR_BYTES, *end = q + body;
    if (!(q = bt_get_varint64(q, end, &r->tablet)) ||
        !(q = bt_get_varint64(q, end, &r->seq)) ||
        !(q = bt_get_varint64(q, end, &r->last_seq))) {
        *why = "malformed varint";
        return 0;
    }
    if (r->last_seq < r->seq) { *why = "last_seq before seq"; return 0; }
    r->payload = q;
    r->n = (size_t)(end - q);
    return HDR_BYTES + body;
}

typedef int (*rec_fn)(void *arg, const log_rec *r);

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

/* Calls fn for each valid record of data[0..len) up to the first bad one.
 * Returns fn's first non-zero result, else 0; *stop and *why tell where reading
 * stopped and why (*why NULL if the whole file was valid, or if only zero
 * bytes follow the last record: the unused end of a preallocated file). */
static int walk_records(const uint8_t *data, size_t len, rec_fn fn, void *arg,
                        size_t *stop, const char **why)
{
    size_t off = 0;
    *why = NULL;
    while (off < len) {
        log_rec r;
        size_t n = decode_record(data + off, len - off, &r, why);
        if (n == 0) break;
        int rc = fn(arg, &r);
        if (rc) { *stop = off; return rc; }
        off += n;
    }
    if (*why && all_zero(data + off, len - off)) *why = NULL;
    *stop = off;
    return 0;
}

/* ---- open: index the existing files -------------------------------------- */

static int add_file(ts_log *l, uint64_t number, tab_map *tabs)
{
    if (l->nfiles == l->cap_files) {
        size_t cap = l->cap_files ? l->cap_files * 2 : 8;
        log_file *f = realloc(l->files, cap * sizeof *f);
        if (!f) return bt_err(BT_ENOMEM, "commit log: file table of %zu", cap);
        l->files = f;
        l->cap_files = cap;
    }
    l->files[l->nfiles++] = (log_file){ number, *tabs };
    *tabs = (tab_map){0};
    return BT_OK;
}

static int index_record(void *arg, const log_rec *r)
{
    return tmap_raise(arg, r->tablet, r->last_seq);
}

/* Reads one pre-existing file and adds it, with its tablet map, to the table. */
static int index_file(ts_log *l, uint64_t number)
{
    char path[PATH_CAP];
    file_path(l, number, path, sizeof path);
    uint8_t *data = NULL;
    size_t len = 0, stop;
    const char *why;
    int rc = bt_env_read_all(l->env, path, &data, &len);
    if (rc) return rc;
    tab_map tabs = {0};
    rc = walk_records(data, len, index_record, &tabs, &stop, &why);
    free(data);
    if (!rc && why)
        BT_WARN("commit log %s: stopping at offset %zu of %zu: %s (torn or corrupt tail ignored)",
                path, stop, len, why);
    if (!rc) rc = add_file(l, number, &tabs);
    tmap_free(&tabs);
    return rc;
}

typedef struct num_list { uint64_t *v; size_t n, cap; int err; } num_list;

/* Accepts "<digits>.log" names only. */
static bool parse_log_name(const char *name, uint64_t *number)
{
    size_t len = strlen(name), digits = len - 4;
    if (len < 5 || len > 24 || strcmp(name + digits, ".log") != 0) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *number = v;
    return true;
}

static int collect_name(void *arg, const char *name)
{
    num_list *nl = arg;
    uint64_t number;
    if (!parse_log_name(name, &number)) return 0;
    if (nl->n == nl->cap) {
        size_t cap = nl->cap ? nl->cap * 2 : 16;
        uint64_t *v = realloc(nl->v, cap * sizeof *v);
        if (!v) { nl->err = bt_err(BT_ENOMEM, "commit log: listing"); return 1; }
        nl->v = v;
        nl->cap = cap;
    }
    nl->v[nl->n++] = number;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int index_existing(ts_log *l)
{
    num_list nl = {0};
    int rc = bt_env_list(l->env, l->dir, collect_name, &nl);
    if (!rc) rc = nl.err;
    if (rc) { free(nl.v); return rc; }
    if (nl.n) qsort(nl.v, nl.n, sizeof *nl.v, cmp_u64);
    l->old = nl.v;
    l->nold = nl.n;
    for (size_t i = 0; i < nl.n && !rc; i++) rc = index_file(l, nl.v[i]);
    l->next_number = nl.n ? nl.v[nl.n - 1] + 1 : 1;
    return rc;
}

/* ---- file management (io_mu held) ----------------------------------------- */

/* Creates the next file, makes its directory entry durable and makes it the
 * active file.  A failed attempt leaves nothing acknowledged in that number,
 * so the retry reuses (truncates) it. */
static int open_active(ts_log *l)
{
    char path[PATH_CAP];
    file_path(l, l->next_number, path, sizeof path);
    bt_wfile *wf;
    int rc = bt_env_open_writable(l->env, path, BT_ENV_CREATE_TRUNC, &wf);
    if (rc) return rc;
    rc = bt_env_sync_dir(l->env, l->dir);
    if (!rc) {
        tab_map none = {0};
        pthread_mutex_lock(&l->mu);
        rc = add_file(l, l->next_number, &none);
        pthread_mutex_unlock(&l->mu);
    }
    if (rc) {
        bt_wfile_close(wf);
        return rc;
    }
    l->wf = wf;
    l->active_bytes = 0;
    l->next_number++;
    return BT_OK;
}

/* Closes the active file after a failed write or sync.  If it held
 * acknowledged but unsynced bytes (GROUP mode), tries once to make them
 * durable — unless the failure was the sync itself, which must not be
 * retried (the kernel may have dropped the dirty pages and a second fdatasync
 * could falsely succeed).  Returns true if those bytes may be lost. */
static bool abandon_active(ts_log *l, int rc, bool sync_failed, bool had_unsynced)
{
    bool lost = false;
    BT_WARN("commit log %s: abandoning file %012" PRIu64 " after %s: %s",
            l->dir, l->next_number - 1, bt_errname(rc), bt_errmsg());
    if (had_unsynced && sync_failed) {
        lost = true;
    } else if (had_unsynced) {
        atomic_fetch_add_explicit(&l->st_syncs, 1, memory_order_relaxed);
        lost = bt_wfile_sync(l->wf) != BT_OK;
    }
    bt_wfile_close(l->wf);
    l->wf = NULL;
    return lost;
}

/* Adds the batch's tablets to the active file's map before the bytes reach
 * the file, so the file can never be deleted while it holds records some
 * tablet still needs. */
static int note_batch_tablets(ts_log *l, const tab_map *tabs)
{
    pthread_mutex_lock(&l->mu);
    int rc = tmap_merge(&l->files[l->nfiles - 1].tabs, tabs);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

typedef struct io_result {
    bool wrote, synced, sync_failed;
} io_result;

/* Writes the batch with one append and, if asked (or if it must), one sync. */
static int write_batch(ts_log *l, const batch *b, bool sync, io_result *res)
{
    if (b->buf.len == 0 && !(sync && b->had_unsynced)) return BT_OK;
    int rc = l->wf ? BT_OK : open_active(l);
    if (rc) return rc;
    if (b->buf.len) {
        if ((rc = note_batch_tablets(l, &b->tabs))) return rc;
        if ((rc = bt_wfile_append(l->wf, b->buf.data, b->buf.len))) return rc;
        l->active_bytes += b->buf.len;
        atomic_fetch_add_explicit(&l->st_bytes, b->buf.len, memory_order_relaxed);
        atomic_fetch_add_explicit(&l->st_groups, 1, memory_order_relaxed);
        res->wrote = true;
    }
    if (sync) {
        atomic_fetch_add_explicit(&l->st_syncs, 1, memory_order_relaxed);
        rc = bt_wfile_sync(l->wf);
        if (rc) { res->sync_failed = true; return rc; }
        res->synced = true;
    }
    return BT_OK;
}

/* Starts the next file once the active one passed roll_bytes.  Returns true
 * if acknowledged bytes of the old file may be lost. */
static bool roll_active(ts_log *l, bool dirty)
{
    bool lost = false;
    if (dirty) {
        atomic_fetch_add_explicit(&l->st_syncs, 1, memory_order_relaxed);
        if (bt_wfile_sync(l->wf) != BT_OK) {
            BT_WARN("commit log %s: sync before roll failed: %s", l->dir, bt_errmsg());
            lost = true;
        }
    }
    bt_wfile_close(l->wf);
    l->wf = NULL;
    /* If the open fails the next batch retries it. */
    if (open_active(l) != BT_OK)
        BT_WARN("commit log %s: cannot start the next file: %s", l->dir, bt_errmsg());
    return lost;
}

/* ---- leader rounds --------------------------------------------------------- */

static void take_batch(ts_log *l, batch *b)
{
    b->buf = l->pending;
    l->pending = l->spare;
    l->spare = (bt_buf){0};
    b->tabs = l->pending_tabs;
    l->pending_tabs = (tab_map){0};
    b->waiters = l->wait_head;
    l->wait_head = l->wait_tail = NULL;
    b->had_unsynced = l->unsynced;
}

/* Marks the batch's waiters, records lost acknowledged data and recycles the
 * buffer.  mu held. */
static void publish_batch(ts_log *l, batch *b, int rc, bool lost)
{
    for (waiter *w = b->waiters; w; w = w->next) {
        w->status = rc;
        w->done = true;
    }
    if (lost && !l->lost_err) l->lost_err = rc ? rc : BT_EIO;
    bt_buf_clear(&b->buf);
    if (!l->spare.data && b->buf.cap <= SPARE_KEEP_BYTES) l->spare = b->buf;
    else bt_buf_free(&b->buf);
    tmap_free(&b->tabs);
    pthread_cond_broadcast(&l->cv);
}

/* Runs one leader round: takes every pending record, writes them with one
 * append, syncs if the mode (or force_sync) asks, wakes the covered waiters,
 * then rolls the file if it is full.  Called with mu held and leader_active
 * set by the caller; returns with mu held and leadership released.  Returns
 * the batch's status. */
static int lead_round(ts_log *l, bool force_sync)
{
    batch b;
    take_batch(l, &b);
    bool sync = force_sync || l->mode != TS_DURABILITY_GROUP;
    pthread_mutex_unlock(&l->mu);

    pthread_mutex_lock(&l->io_mu);
    io_result res = {0};
    int rc = write_batch(l, &b, sync, &res);
    bool lost = false, dirty = false;
    if (rc) {
        /* Keep the failure's detail: the clean-up below may overwrite it. */
        char why[256];
        snprintf(why, sizeof why, "%s", bt_errmsg());
        /* NONE mode acknowledged these records when they were buffered. */
        lost = l->mode == TS_DURABILITY_NONE && b.buf.len > 0;
        if (l->wf && abandon_active(l, rc, res.sync_failed, b.had_unsynced)) lost = true;
        bt_err(rc, "%s", why);
    } else {
        dirty = !res.synced && (b.had_unsynced || res.wrote);
    }
    bool roll = l->wf && l->active_bytes >= l->roll_bytes;

    pthread_mutex_lock(&l->mu);
    l->unsynced = dirty;
    publish_batch(l, &b, rc, lost);
    pthread_mutex_unlock(&l->mu);

    if (roll) {
        bool roll_lost = roll_active(l, dirty);
        pthread_mutex_lock(&l->mu);
        l->unsynced = false;
        if (roll_lost && !l->lost_err) l->lost_err = BT_EIO;
        pthread_mutex_unlock(&l->mu);
    }
    pthread_mutex_unlock(&l->io_mu);

    pthread_mutex_lock(&l->mu);
    l->leader_active = false;
    pthread_cond_broadcast(&l->cv);
    return rc;
}

/* Waits for leadership and runs a round that syncs.  mu held. */
static int lead_sync_round(ts_log *l)
{
    while (l->leader_active) pthread_cond_wait(&l->cv, &l->mu);
    l->leader_active = true;
    return lead_round(l, true);
}

/* ---- the mapped path (GROUP and NONE on the POSIX env) ---------------------- */

/* Records a failed system call (error number e) as the thread's error. */
static int sys_fail(const char *call, const char *path, int e)
{
    return bt_err(bt_from_errno(e), "commit log: %s %s: %s", call, path, strerror(e));
}

static uint64_t page_floor(const ts_log *l, uint64_t off)
{
    return off & ~((uint64_t)l->page - 1);
}

/* Creates file `number` with room for cap bytes of records: open, reserve
 * every block (posix_fallocate), map it shared, make the directory entry
 * durable.  io_mu held.  On failure the file is removed again: nothing was
 * acknowledged in it, and a partly preallocated file would keep disk space
 * that a full disk needs back. */
static int map_create(ts_log *l, uint64_t number, uint64_t cap, map_file *out)
{
    char path[PATH_CAP];
    file_path(l, number, path, sizeof path);
    if (cap > (uint64_t)INT64_MAX - l->page || cap > (uint64_t)SIZE_MAX - l->page)
        return bt_err(BT_EINVAL, "commit log %s: file of %" PRIu64 " bytes", path, cap);
    size_t len = (size_t)page_floor(l, cap + l->page - 1);
    int fd;
    do fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return sys_fail("open", path, errno);
    int e, rc;
    void *m = MAP_FAILED;
    do e = posix_fallocate(fd, 0, (off_t)len);   /* returns the error, no errno */
    while (e == EINTR);
    if (e) rc = sys_fail("posix_fallocate", path, e);
    else if ((m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
        rc = sys_fail("mmap", path, errno);
    else rc = bt_env_sync_dir(l->env, l->dir);
    if (rc) {
        if (m != MAP_FAILED) munmap(m, len);
        close(fd);
        unlink(path);
        return rc;
    }
    *out = (map_file){ .base = m, .map_len = len, .cap = cap, .number = number, .fd = fd };
    return BT_OK;
}

/* Undoes map_create for a file that never became active. */
static void map_discard(ts_log *l, map_file *m)
{
    char path[PATH_CAP];
    file_path(l, m->number, path, sizeof path);
    munmap(m->base, m->map_len);
    close(m->fd);
    unlink(path);
    *m = (map_file){0};
}

/* Writes back the active file's records past what is already written back:
 * with msync(MS_SYNC) when `durable` (GROUP's period, ts_log_sync), which
 * makes them survive power loss; otherwise (NONE) with sync_file_range, which
 * waits for the writeback but promises nothing about the disk's cache and
 * only serves to keep the mapping's resident part small.  Written-back pages
 * are clean, so dropping them from this process (MADV_DONTNEED) loses
 * nothing; the page holding `used` is kept, as appenders are still filling
 * it.  io_mu held, so the mapping cannot go away; mu is not held during the
 * I/O, and appenders keep copying past the snapshot of `used`. */
static int map_writeback(ts_log *l, bool durable)
{
    pthread_mutex_lock(&l->mu);
    map_file m = l->map;
    pthread_mutex_unlock(&l->mu);
    uint64_t from = durable ? m.synced : m.written;
    if (!m.base || m.broken || m.used <= from) return BT_OK;
    uint64_t start = page_floor(l, from);
    int e = 0;
    if (durable) {
        atomic_fetch_add_explicit(&l->st_syncs, 1, memory_order_relaxed);
        if (msync(m.base + start, (size_t)(m.used - start), MS_SYNC) != 0) e = errno;
    } else if (sync_file_range(m.fd, (off_t)start, (off_t)(m.used - start),
                               SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                               SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
        e = errno;
    }
    int rc = BT_OK;
    if (e) {
        char path[PATH_CAP];
        file_path(l, m.number, path, sizeof path);
        rc = sys_fail(durable ? "msync" : "sync_file_range", path, e);
    }
    pthread_mutex_lock(&l->mu);
    if (rc) {
        /* Never retried: after a failed writeback the kernel may have
         * dropped the data, and a second attempt could succeed falsely.  The
         * next append starts a new file, so nothing lands behind a hole. */
        l->map.broken = true;
        if (!l->lost_err) l->lost_err = rc;
    } else {
        if (durable && l->map.synced < m.used) l->map.synced = m.used;
        if (l->map.written < m.used) l->map.written = m.used;
    }
    uint64_t drop_from = l->map.dropped, drop_to = page_floor(l, l->map.written);
    if (drop_to > drop_from) l->map.dropped = drop_to;
    pthread_mutex_unlock(&l->mu);
    if (drop_to > drop_from) madvise(m.base + drop_from, (size_t)(drop_to - drop_from), MADV_DONTNEED);
    return rc;
}

/* Finishes a file appenders can no longer reach: makes its records durable
 * (unless a sync already failed there), unmaps it and cuts it back to the
 * bytes used, so a reader finds the records and nothing after them (should
 * the ftruncate fail, the zero tail stays and replay reads it as the clean
 * end).  io_mu held.  Returns true if acknowledged records may be lost. */
static bool map_retire(ts_log *l, map_file *m)
{
    char path[PATH_CAP];
    file_path(l, m->number, path, sizeof path);
    bool lost = m->broken;
    if (!m->broken && m->used > m->synced) {
        uint64_t start = page_floor(l, m->synced);
        atomic_fetch_add_explicit(&l->st_syncs, 1, memory_order_relaxed);
        if (msync(m->base + start, (size_t)(m->used - start), MS_SYNC) != 0) {
            BT_WARN("commit log: msync %s: %s", path, strerror(errno));
            lost = true;
        }
    }
    munmap(m->base, m->map_len);
    if (ftruncate(m->fd, (off_t)m->used) != 0)
        BT_WARN("commit log: ftruncate %s to %" PRIu64 " bytes: %s (the zero tail stays)",
                path, m->used, strerror(errno));
    close(m->fd);
    *m = (map_file){0};
    return lost;
}

/* Makes a new file, with room for a record of `need` bytes, the active one
 * and retires the old one.  The new file comes first so appenders wait for a
 * file creation, never for the old file's sync; and if the creation fails
 * (BT_ENOSPC from posix_fallocate, say), the old file stays as it was, the
 * append that needed the room reports the error and the next one tries
 * again.  A record larger than roll_bytes gets a file sized to fit it.
 * io_mu held. */
static int map_roll(ts_log *l, size_t need)
{
    pthread_mutex_lock(&l->mu);
    bool closing = l->closing;
    bool fits = l->map.base && !l->map.broken && need <= l->map.cap - l->map.used;
    pthread_mutex_unlock(&l->mu);
    if (closing) return bt_err(BT_ECLOSED, "commit log %s: closed", l->dir);
    if (fits) return BT_OK;   /* another appender rolled while this one waited */
    map_file fresh, old = {0};
    int rc = map_create(l, l->next_number, need > l->roll_bytes ? need : l->roll_bytes, &fresh);
    if (rc) return rc;
    tab_map none = {0};
    pthread_mutex_lock(&l->mu);
    rc = add_file(l, fresh.number, &none);
    if (!rc) {
        old = l->map;
        l->map = fresh;
    }
    pthread_mutex_unlock(&l->mu);
    if (rc) {
        map_discard(l, &fresh);
        return rc;
    }
    l->next_number++;
    if (old.base && map_retire(l, &old)) {
        pthread_mutex_lock(&l->mu);
        if (!l->lost_err) l->lost_err = BT_EIO;
        pthread_mutex_unlock(&l->mu);
    }
    return BT_OK;
}

/* The mapped append: a memcpy into the active file under mu, after a roll if
 * the record does not fit.  Once it returns, the record is in the page cache. */
static int map_append(ts_log *l, const uint8_t *hdr, size_t hlen, uint64_t tablet,
                      uint64_t last_seq, const void *payload, size_t n)
{
    size_t need = hlen + n;
    int rc;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        map_file *m = &l->map;
        if (l->closing) {
            rc = bt_err(BT_ECLOSED, "commit log %s: closed", l->dir);
            break;
        }
        if (m->base && !m->broken && need <= m->cap - m->used) {
            /* The active file (always the last) lists the tablet before
             * holding its record, so it is never deleted while needed. */
            rc = tmap_raise(&l->files[l->nfiles - 1].tabs, tablet, last_seq);
            if (rc) break;
            uint8_t *dst = m->base + m->used;
            memcpy(dst, hdr, hlen);
            if (n) memcpy(dst + hlen, payload, n);
            m->used += need;
            l->map_appends++;
            l->map_bytes += need;
            break;
        }
        pthread_mutex_unlock(&l->mu);
        pthread_mutex_lock(&l->io_mu);
        rc = map_roll(l, need);
        pthread_mutex_unlock(&l->io_mu);
        pthread_mutex_lock(&l->mu);
        if (rc) break;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* Does the background thread have work on the mapped file?  mu held. */
static bool map_wants_writeback(const ts_log *l)
{
    const map_file *m = &l->map;
    if (!m->base || m->broken) return false;
    if (l->mode == TS_DURABILITY_GROUP) return m->used > m->synced;
    return m->used - m->written >= NONE_RESIDENT;
}

/* Retires the active mapped file at close; returns the error to report. */
static int map_close(ts_log *l)
{
    pthread_mutex_lock(&l->io_mu);
    pthread_mutex_lock(&l->mu);
    map_file m = l->map;
    l->map = (map_file){0};
    pthread_mutex_unlock(&l->mu);
    bool lost = m.base && map_retire(l, &m);
    pthread_mutex_unlock(&l->io_mu);
    pthread_mutex_lock(&l->mu);
    int rc = l->lost_err;
    pthread_mutex_unlock(&l->mu);
    if (!rc && lost) rc = bt_err(BT_EIO, "commit log %s: the last sync failed", l->dir);
    return rc;
}

/* ---- background flusher (GROUP and NONE modes) -----------------------------
 *
 * Write path: every group_ms, writes the pending records (NONE) and
 * fdatasyncs the active file (GROUP, NONE).  Mapped path: every group_ms,
 * msyncs what was copied since the last sync (GROUP), or, in NONE mode, only
 * writes back once NONE_RESIDENT bytes are resident, so that memory stays
 * bounded without a periodic sync. */

static void deadline_after_ms(struct timespec *ts, uint32_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) { ts->tv_sec++; ts->tv_nsec -= 1000000000L; }
}

static void *bg_main(void *arg)
{
    ts_log *l = arg;
    pthread_setname_np(pthread_self(), "bt-logsync");
    pthread_mutex_lock(&l->mu);
    while (!l->closing) {
        struct timespec ts;
        deadline_after_ms(&ts, l->group_ms);
        int w = 0;
        while (!l->closing && w != ETIMEDOUT) w = pthread_cond_timedwait(&l->bg_cv, &l->mu, &ts);
        if (l->closing) break;
        if (l->mapped) {
            if (!map_wants_writeback(l)) continue;
            pthread_mutex_unlock(&l->mu);
            pthread_mutex_lock(&l->io_mu);
            if (map_writeback(l, l->mode == TS_DURABILITY_GROUP) != BT_OK)
                BT_WARN("commit log %s: background sync failed: %s", l->dir, bt_errmsg());
            pthread_mutex_unlock(&l->io_mu);
            pthread_mutex_lock(&l->mu);
            continue;
        }
        if (l->pending.len == 0 && !l->unsynced) continue;
        if (lead_sync_round(l) != BT_OK)
            BT_WARN("commit log %s: background flush failed: %s", l->dir, bt_errmsg());
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- open / close ----------------------------------------------------------- */

static void log_free(ts_log *l)
{
    for (size_t i = 0; i < l->nfiles; i++) tmap_free(&l->files[i].tabs);
    free(l->files);
    tmap_free(&l->flushed);
    tmap_free(&l->pending_tabs);
    bt_buf_free(&l->pending);
    bt_buf_free(&l->spare);
    pthread_mutex_destroy(&l->mu);
    pthread_mutex_destroy(&l->io_mu);
    pthread_cond_destroy(&l->cv);
    pthread_cond_destroy(&l->bg_cv);
    free(l->old);
    free(l->dir);
    free(l);
}

static void init_sync(ts_log *l)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_init(&l->io_mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->bg_cv, &ca);
    pthread_condattr_destroy(&ca);
}

static ts_log *log_new(const ts_log_options *o)
{
    ts_log *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->dir = strdup(o->dir);
    if (!l->dir) { free(l); return NULL; }
    l->env = o->env;
    l->mode = o->durability;
    /* Only the real POSIX env may be bypassed: other envs (the fault env of
     * the tests) must see every byte, so they keep the write path. */
    l->mapped = o->env == bt_env_posix() && o->durability != TS_DURABILITY_SYNC;
    long page = sysconf(_SC_PAGESIZE);
    l->page = page > 0 ? (size_t)page : 4096;
    l->group_ms = o->group_ms ? o->group_ms : DEFAULT_GROUP_MS;
    l->roll_bytes = o->roll_bytes ? o->roll_bytes : DEFAULT_ROLL;
    l->max_record = o->max_record ? o->max_record : DEFAULT_MAX_REC;
    if (l->max_record > MAX_BODY - MAX_VARINTS) l->max_record = MAX_BODY - MAX_VARINTS;
    init_sync(l);
    return l;
}

int ts_log_open(const ts_log_options *o, ts_log **out)
{
    *out = NULL;
    if (!o || !o->env || !o->dir || !*o->dir)
        return bt_err(BT_EINVAL, "ts_log_open: env and dir are required");
    if ((unsigned)o->durability > TS_DURABILITY_NONE)
        return bt_err(BT_EINVAL, "ts_log_open: bad durability %d", (int)o->durability);
    if (strlen(o->dir) > PATH_CAP - 32)
        return bt_err(BT_EINVAL, "ts_log_open: directory path too long");
    ts_log *l = log_new(o);
    if (!l) return bt_err(BT_ENOMEM, "ts_log_open: out of memory");
    int rc = bt_env_mkdir(l->env, l->dir);
    if (!rc) rc = index_existing(l);
    if (!rc) {
        pthread_mutex_lock(&l->io_mu);
        rc = l->mapped ? map_roll(l, 0) : open_active(l);
        pthread_mutex_unlock(&l->io_mu);
    }
    if (!rc && l->mode != TS_DURABILITY_SYNC) {
        if (pthread_create(&l->bg, NULL, bg_main, l) != 0) {
            rc = bt_err(BT_ENOMEM, "ts_log_open: cannot start the flusher thread");
        } else {
            l->bg_started = true;
        }
    }
    if (rc) {
        if (l->wf) bt_wfile_close(l->wf);
        if (l->map.base) map_retire(l, &l->map);
        log_free(l);
        return rc;
    }
    *out = l;
    return BT_OK;
}

int ts_log_close(ts_log *l)
{
    if (!l) return BT_OK;
    pthread_mutex_lock(&l->mu);
    l->closing = true;
    pthread_cond_broadcast(&l->bg_cv);
    pthread_mutex_unlock(&l->mu);
    if (l->bg_started) pthread_join(l->bg, NULL);
    if (l->mapped) {
        int rc = map_close(l);
        log_free(l);
        return rc;
    }

    pthread_mutex_lock(&l->mu);
    int rc = lead_sync_round(l);
    if (!rc) rc = l->lost_err;
    pthread_mutex_unlock(&l->mu);

    pthread_mutex_lock(&l->io_mu);
    if (l->wf) {
        int crc = bt_wfile_close(l->wf);
        if (!rc) rc = crc;
        l->wf = NULL;
    }
    pthread_mutex_unlock(&l->io_mu);
    log_free(l);
    return rc;
}

/* ---- append / sync ------------------------------------------------------------ */

/* Encodes the record's header into rec (room for SMALL_RECORD bytes) and
 * returns its length; the checksum covers the header's tail and payload.  A
 * record of at most SMALL_RECORD bytes is encoded whole, payload included,
 * and hashed in one pass (cheaper than XXH3's streaming state); *n is then
 * set to 0, as no payload is left to copy after rec. */
static size_t encode_record(uint8_t *rec, uint64_t tablet, uint64_t seq, uint64_t last_seq,
                            const void *payload, size_t *n)
{
    uint8_t *p = rec + HDR_BYTES;
    p = bt_put_varint64(p, tablet);
    p = bt_put_varint64(p, seq);
    p = bt_put_varint64(p, last_seq);
    size_t hlen = (size_t)(p - rec);
    bt_put_fixed32(rec + 4, (uint32_t)(hlen - HDR_BYTES + *n));
    if (*n <= SMALL_RECORD - hlen) {
        if (*n) memcpy(p, payload, *n);
        hlen += *n;
        *n = 0;
        bt_put_fixed32(rec, (uint32_t)XXH3_64bits(rec + 4, hlen - 4));
        return hlen;
    }
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, rec + 4, hlen - 4);
    XXH3_64bits_update(&st, payload, *n);
    bt_put_fixed32(rec, (uint32_t)XXH3_64bits_digest(&st));
    return hlen;
}

/* Copies an encoded record into the pending buffer.  mu held. */
static int enqueue(ts_log *l, const uint8_t *hdr, size_t hlen, uint64_t tablet,
                   uint64_t last_seq, const void *payload, size_t n)
{
    if (l->closing) return bt_err(BT_ECLOSED, "commit log %s: closed", l->dir);
    int rc = bt_buf_reserve(&l->pending, hlen + n);
    if (!rc) rc = tmap_raise(&l->pending_tabs, tablet, last_seq);
    if (rc) return bt_err(BT_ENOMEM, "commit log: pending buffer of %zu bytes", l->pending.len + hlen + n);
    memcpy(l->pending.data + l->pending.len, hdr, hlen);
    if (n) memcpy(l->pending.data + l->pending.len + hlen, payload, n);
    l->pending.len += hlen + n;
    atomic_fetch_add_explicit(&l->st_appends, 1, memory_order_relaxed);
    return BT_OK;
}

/* NONE mode: the record is acknowledged once buffered; an appender only
 * writes when the buffer has grown past NONE_FLUSH_BYTES.  mu held. */
static int none_mode_flush(ts_log *l)
{
    int rc = BT_OK;
    while (l->pending.len >= NONE_FLUSH_BYTES && rc == BT_OK) {
        if (l->leader_active) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        l->leader_active = true;
        rc = lead_round(l, true);
    }
    return rc;
}

/* SYNC/GROUP: waits until a leader (maybe this thread) has covered w.  mu held. */
static int wait_covered(ts_log *l, waiter *w)
{
    bool led = false;
    while (!w->done) {
        if (l->leader_active) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        l->leader_active = true;
        lead_round(l, false);
        led = w->done;
    }
    /* The leader's thread holds the detail; give followers one too. */
    if (w->status && !led)
        bt_err(w->status, "commit log %s: the batch carrying this record failed: %s",
               l->dir, bt_strerror(w->status));
    return w->status;
}

int ts_log_append(ts_log *l, uint64_t tablet_id, uint64_t seq, uint64_t last_seq,
                  const void *payload, size_t n)
{
    if (n > l->max_record)
        return bt_err(BT_ETOOBIG, "commit log: record for tablet %" PRIu64 " has %zu payload bytes, "
                      "over max_record %zu", tablet_id, n, l->max_record);
    if (last_seq < seq)
        return bt_err(BT_EINVAL, "commit log: last_seq %" PRIu64 " < seq %" PRIu64, last_seq, seq);
    if (n && !payload) return bt_err(BT_EINVAL, "commit log: NULL payload");
    uint8_t hdr[SMALL_RECORD];   /* the header, or the whole record when small */
    size_t hlen = encode_record(hdr, tablet_id, seq, last_seq, payload, &n);
    if (l->mapped) return map_append(l, hdr, hlen, tablet_id, last_seq, payload, n);

    pthread_mutex_lock(&l->mu);
    int rc = enqueue(l, hdr, hlen, tablet_id, last_seq, payload, n);
    if (rc == BT_OK && l->mode == TS_DURABILITY_NONE) {
        rc = none_mode_flush(l);
    } else if (rc == BT_OK) {
        waiter w = {0};
        if (l->wait_tail) l->wait_tail->next = &w;
        else l->wait_head = &w;
        l->wait_tail = &w;
        rc = wait_covered(l, &w);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int ts_log_sync(ts_log *l)
{
    pthread_mutex_lock(&l->mu);
    int rc = BT_OK;
    if (l->closing) {
        rc = bt_err(BT_ECLOSED, "commit log %s: closed", l->dir);
    } else if (l->mapped) {
        /* Rolled files were synced when they rolled: only the active one. */
        pthread_mutex_unlock(&l->mu);
        pthread_mutex_lock(&l->io_mu);
        rc = map_writeback(l, true);
        pthread_mutex_unlock(&l->io_mu);
        pthread_mutex_lock(&l->mu);
    } else {
        rc = lead_sync_round(l);
    }
    if (!rc) rc = l->lost_err;
    l->lost_err = 0;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* ---- replay ------------------------------------------------------------------ */

typedef struct replay_ctx {
    uint64_t tablet, after_seq;
    ts_log_replay_fn fn;
    void *arg;
} replay_ctx;

static int replay_record(void *arg, const log_rec *r)
{
    replay_ctx *c = arg;
    if (c->tablet != TS_LOG_ALL_TABLETS && r->tablet != c->tablet) return 0;
    if (r->seq <= c->after_seq) return 0;
    return c->fn(c->arg, r->tablet, r->seq, r->payload, r->n);
}

/* Reads log file `number` whole, or only its first `limit` bytes (the active
 * mapped file: past its records lie preallocated zeros). */
static int read_log_file(ts_log *l, uint64_t number, uint64_t limit, uint8_t **data, size_t *len)
{
    char path[PATH_CAP];
    file_path(l, number, path, sizeof path);
    if (limit == UINT64_MAX) return bt_env_read_all(l->env, path, data, len);
    if (limit > SIZE_MAX) return bt_err(BT_ETOOBIG, "commit log %s: too large to read", path);
    bt_rfile *f;
    int rc = bt_env_open_readable(l->env, path, &f);
    if (rc) return rc;
    uint8_t *buf = malloc(limit ? (size_t)limit : 1);
    size_t got = 0;
    if (!buf) rc = bt_err(BT_ENOMEM, "commit log %s: read buffer of %" PRIu64 " bytes", path, limit);
    else rc = bt_rfile_read_at(f, 0, (size_t)limit, buf, &got);
    bt_rfile_close(f);
    if (rc) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = got;
    return BT_OK;
}

int ts_log_replay(ts_log *l, uint64_t tablet_id, uint64_t after_seq,
                  ts_log_replay_fn fn, void *arg)
{
    replay_ctx c = { tablet_id, after_seq, fn, arg };
    for (size_t i = 0; i < l->nold; i++) {
        uint8_t *data = NULL;
        size_t len = 0, stop;
        const char *why;
        int rc = read_log_file(l, l->old[i], UINT64_MAX, &data, &len);
        if (rc == BT_ENOTFOUND) continue;   /* deleted since open: fully flushed */
        if (rc) return rc;
        rc = walk_records(data, len, replay_record, &c, &stop, &why);
        free(data);
        if (rc) return rc;
    }
    return BT_OK;
}

typedef struct replay_file { uint64_t number, limit; } replay_file;

int ts_log_replay_new(ts_log *l, uint64_t tablet_id, uint64_t after_seq,
                      ts_log_replay_fn fn, void *arg)
{
    uint64_t first_new = l->nold ? l->old[l->nold - 1] + 1 : 0;
    pthread_mutex_lock(&l->mu);
    /* No batch in flight: each record is either pending or in a file's map.
     * (The mapped path has neither batches nor pending records.) */
    while (l->leader_active) pthread_cond_wait(&l->cv, &l->mu);
    int rc = BT_OK;
    const tab_seq *p = tmap_find(&l->pending_tabs, tablet_id);
    if (p && p->seq > after_seq && !l->closing) {
        rc = lead_sync_round(l);   /* write them out (lost_err is left to ts_log_sync) */
        while (l->leader_active) pthread_cond_wait(&l->cv, &l->mu);
    }
    replay_file *files = NULL;
    size_t n = 0;
    if (!rc && l->nfiles && !(files = malloc(l->nfiles * sizeof *files)))
        rc = bt_err(BT_ENOMEM, "commit log: replay list");
    for (size_t i = 0; !rc && i < l->nfiles; i++) {
        const log_file *f = &l->files[i];
        const tab_seq *e = tmap_find(&f->tabs, tablet_id);
        if (f->number < first_new || !e || e->seq <= after_seq) continue;
        /* Bytes below the active mapped file's `used` are whole records
         * (copied under mu); a later roll only cuts the file back to more. */
        bool active_map = l->map.base && f->number == l->map.number;
        files[n++] = (replay_file){ f->number, active_map ? l->map.used : UINT64_MAX };
    }
    pthread_mutex_unlock(&l->mu);
    replay_ctx c = { tablet_id, after_seq, fn, arg };
    for (size_t i = 0; !rc && i < n; i++) {
        uint8_t *data = NULL;
        size_t len = 0, stop;
        const char *why;
        rc = read_log_file(l, files[i].number, files[i].limit, &data, &len);
        if (rc == BT_ENOTFOUND) { rc = BT_OK; continue; }  /* deleted: fully flushed */
        /* The active file may end in a batch being written for another
         * tablet; the walk stops there, after every record of this one. */
        if (!rc) rc = walk_records(data, len, replay_record, &c, &stop, &why);
        free(data);
    }
    free(files);
    return rc;
}

/* ---- flushed tablets and file deletion ------------------------------------------ */

static bool file_needed(const ts_log *l, const log_file *f)
{
    for (size_t i = 0; i < f->tabs.n; i++) {
        const tab_seq *fl = tmap_find(&l->flushed, f->tabs.v[i].tablet);
        if (!fl || fl->seq < f->tabs.v[i].seq) return true;
    }
    return false;
}

/* Moves the numbers of deletable files (never the active, last one) into
 * *out and drops them from the table.  mu held. */
static size_t take_deletable(ts_log *l, uint64_t **out)
{
    size_t ndel = 0, keep = 0;
    uint64_t *del = l->nfiles > 1 ? malloc((l->nfiles - 1) * sizeof *del) : NULL;
    for (size_t i = 0; i < l->nfiles; i++) {
        log_file *f = &l->files[i];
        if (del && i + 1 < l->nfiles && !file_needed(l, f)) {
            del[ndel++] = f->number;
            tmap_free(&f->tabs);
        } else {
            l->files[keep++] = *f;
        }
    }
    l->nfiles = keep;
    *out = del;
    return ndel;
}

static void delete_files(ts_log *l, const uint64_t *nums, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char path[PATH_CAP];
        file_path(l, nums[i], path, sizeof path);
        int rc = bt_env_remove(l->env, path);
        if (rc && rc != BT_ENOTFOUND)
            BT_WARN("commit log: cannot delete %s: %s", path, bt_errmsg());
    }
    if (n && bt_env_sync_dir(l->env, l->dir) != BT_OK)
        BT_WARN("commit log %s: sync_dir after deleting files failed: %s", l->dir, bt_errmsg());
}

/* Deletes the files nothing needs any more; the I/O runs outside mu.  Called
 * with mu held; returns with it released. */
static void collect_garbage_and_unlock(ts_log *l)
{
    uint64_t *del;
    size_t n = take_deletable(l, &del);
    pthread_mutex_unlock(&l->mu);
    delete_files(l, del, n);
    free(del);
}

void ts_log_tablet_flushed(ts_log *l, uint64_t tablet_id, uint64_t flushed_seq)
{
    pthread_mutex_lock(&l->mu);
    if (tmap_raise(&l->flushed, tablet_id, flushed_seq) != BT_OK) {
        /* Nothing is deleted this time; a later report retries. */
        pthread_mutex_unlock(&l->mu);
        return;
    }
    collect_garbage_and_unlock(l);
}

void ts_log_forget_tablet(ts_log *l, uint64_t tablet_id)
{
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->nfiles; i++) tmap_remove(&l->files[i].tabs, tablet_id);
    tmap_remove(&l->flushed, tablet_id);
    collect_garbage_and_unlock(l);
}

void ts_log_get_stats(ts_log *l, ts_log_stats *s)
{
    s->appends = atomic_load_explicit(&l->st_appends, memory_order_relaxed);
    s->syncs = atomic_load_explicit(&l->st_syncs, memory_order_relaxed);
    s->groups = atomic_load_explicit(&l->st_groups, memory_order_relaxed);
    s->bytes = atomic_load_explicit(&l->st_bytes, memory_order_relaxed);
    pthread_mutex_lock(&l->mu);
    s->appends += l->map_appends;
    s->bytes += l->map_bytes;
    s->live_files = (uint32_t)l->nfiles;
    s->active_file = l->nfiles ? l->files[l->nfiles - 1].number : 0;
    pthread_mutex_unlock(&l->mu);
}

/* ---- reading log files offline ------------------------------------------------- */


int ts_log_list_files(bt_env *env, const char *dir, uint64_t **numbers, size_t *n)
{
    num_list nl = {0};
    *numbers = NULL;
    *n = 0;
    int rc = bt_env_list(env, dir, collect_name, &nl);
    if (!rc) rc = nl.err;
    if (rc) {
        free(nl.v);
        return rc;
    }
    if (nl.n) qsort(nl.v, nl.n, sizeof *nl.v, cmp_u64);
    *numbers = nl.v;
    *n = nl.n;
    return BT_OK;
}

int ts_log_encode_record(bt_buf *b, uint64_t tablet_id, uint64_t seq, uint64_t last_seq,
                         const void *payload, size_t n)
{
    if (n > MAX_BODY - MAX_VARINTS) return bt_err(BT_ETOOBIG, "commit log: record of %zu bytes", n);
    int rc = bt_buf_reserve(b, HDR_BYTES + MAX_VARINTS + n);
    if (rc) return rc;
    uint8_t *rec = b->data + b->len, *p = rec + HDR_BYTES;
    p = bt_put_varint64(p, tablet_id);
    p = bt_put_varint64(p, seq);
    p = bt_put_varint64(p, last_seq);
    if (n) memcpy(p, payload, n);
    p += n;
    bt_put_fixed32(rec + 4, (uint32_t)((size_t)(p - rec) - HDR_BYTES));
    bt_put_fixed32(rec, record_checksum(rec + 4, (size_t)(p - rec) - 4));
    b->len += (size_t)(p - rec);
    return BT_OK;
}

#define READ_CHUNK ((size_t)1 << 20)

/* A chunked reader over one file: buf holds file bytes [off, off + len). */
typedef struct chunk_reader {
    bt_rfile *f;
    uint8_t *buf;
    size_t cap, pos, len;   /* unread bytes are buf[pos, len) */
    uint64_t off;           /* file offset of buf[0] */
    bool eof;
} chunk_reader;

/* Makes at least `need` unread bytes available, or as many as the file has. */
static int chunk_fill(chunk_reader *cr, size_t need)
{
    while (!cr->eof && cr->len - cr->pos < need) {
        if (cr->pos) {  /* slide the unread bytes to the front */
            memmove(cr->buf, cr->buf + cr->pos, cr->len - cr->pos);
            cr->off += cr->pos;
            cr->len -= cr->pos;
            cr->pos = 0;
        }
        size_t want = need > READ_CHUNK ? need : READ_CHUNK;
        if (cr->cap < want) {
            uint8_t *nb = realloc(cr->buf, want);
            if (!nb) return bt_err(BT_ENOMEM, "commit log: read buffer of %zu bytes", want);
            cr->buf = nb;
            cr->cap = want;
        }
        size_t got = 0;
        int rc = bt_rfile_read_at(cr->f, cr->off + cr->len, cr->cap - cr->len, cr->buf + cr->len, &got);
        if (rc) return rc;
        if (got == 0) cr->eof = true;
        cr->len += got;
    }
    return BT_OK;
}

/* True if every byte from the reader's position to the end of the file is zero. */
static int rest_is_zero(chunk_reader *cr, bool *zero)
{
    *zero = true;
    for (;;) {
        if (!all_zero(cr->buf + cr->pos, cr->len - cr->pos)) { *zero = false; return BT_OK; }
        cr->pos = cr->len;
        if (cr->eof) return BT_OK;
        int rc = chunk_fill(cr, 1);
        if (rc) return rc;
        if (cr->len == cr->pos) return BT_OK;
    }
}

int ts_log_read_file(bt_env *env, const char *path, ts_log_record_fn fn, void *arg,
                     uint64_t *valid_bytes)
{
    chunk_reader cr = {0};
    uint64_t size;
    int rc = bt_env_file_size(env, path, &size);
    if (!rc) rc = bt_env_open_readable(env, path, &cr.f);
    if (rc) return rc;
    const char *why = NULL;
    while (!rc) {
        rc = chunk_fill(&cr, HDR_BYTES);
        if (rc || cr.len == cr.pos) break;  /* error, or the clean end */
        size_t avail = cr.len - cr.pos;
        if (avail >= HDR_BYTES) {
            uint32_t body = bt_get_fixed32(cr.buf + cr.pos + 4);
            /* a garbage length must not make us allocate past the file */
            uint64_t left = size > cr.off + cr.pos ? size - (cr.off + cr.pos) : 0;
            if (body <= MAX_BODY && HDR_BYTES + (uint64_t)body <= left &&
                (rc = chunk_fill(&cr, HDR_BYTES + (size_t)body)))
                break;
            avail = cr.len - cr.pos;
        }
        log_rec r;
        size_t n = decode_record(cr.buf + cr.pos, avail, &r, &why);
        if (n == 0) break;
        rc = fn(arg, r.tablet, r.seq, r.last_seq, r.payload, r.n);
        if (!rc) cr.pos += n;
    }
    uint64_t valid = cr.off + cr.pos;
    if (!rc && why) {
        bool zero;
        rc = rest_is_zero(&cr, &zero);
        if (!rc && !zero)
            BT_WARN("commit log %s: stopping at offset %" PRIu64 ": %s (torn or corrupt tail ignored)",
                    path, valid, why);
    }
    if (valid_bytes) *valid_bytes = valid;
    bt_rfile_close(cr.f);
    free(cr.buf);
    return rc;
}

/* tools/import_load.c: the import itself (import_load.h, docs/import.md).
 *
 * Online mode: the main thread reads records, builds one bt_mutation per row
 * and appends it to the batch of writer (hash of the row key) % workers, so
 * rows with the same key are written in input order by one writer.  A full
 * batch goes onto that writer's queue (at most queue_batches deep: the reader
 * blocks, memory stays bounded at about workers x (queue_batches + 2)
 * batches).  Each writer calls bt_apply_batch, which groups the rows per
 * tablet server and sends to the servers in parallel; with several writers,
 * several batches are in flight per server.  A row the cluster refuses
 * (unknown family, too big) is a reject; a failure of the cluster itself
 * (unavailable or timed out after libbt's retries) stops the import.
 *
 * Bulk mode: the main thread feeds every cell to bt_bulk_add, then
 * bt_bulk_finish sorts, writes and attaches.  A row's cells are validated
 * before the first is added, so a row is never half added. */
#include "tools/import_load.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/bt.h"
#include "tools/import_progress.h"
#include "tools/import_source.h"
#include "tools/import_split.h"

#define SHOWN_REJECTS 10                  /* reasons printed without --rejects */
#define BATCH_MAX_BYTES ((size_t)4 << 20) /* a batch is sent once it holds this much */

typedef struct imp_batch {
    bt_mutation **muts;
    uint64_t *lines;
    size_t *raw_off, *raw_len;
    uint32_t *cells;
    size_t n, cap, bytes;
    imp_buf raw;
    struct imp_batch *next;
} imp_batch;

typedef struct imp_worker {
    struct imp_ctx *ctx;
    pthread_t thread;
    pthread_mutex_t mu;         /* protects head, tail, depth, done */
    pthread_cond_t cv_put, cv_get;
    imp_batch *head, *tail;
    unsigned depth;
    bool done;
} imp_worker;

typedef struct imp_ctx {
    imp_opts *o;
    imp_counters ctr;
    imp_progress prog;
    pthread_mutex_t rej_mu;     /* protects rej, shown and the rejects file */
    FILE *rej;
    uint64_t shown;
    _Atomic int fatal;          /* 0, or the exit status of a stop */
    pthread_mutex_t fatal_mu;   /* protects fatal_msg */
    char fatal_msg[600];
    bt_client *cl;
    bt_table *t;
    imp_worker *w;
    unsigned nw;
    bool tty;
} imp_ctx;

/* ---- messages ----------------------------------------------------------------------------- */

static void clear_bar(imp_ctx *c)
{
    if (c->prog.running && c->tty) fputs("\r\033[K", stderr);
}

static int say(imp_ctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    clear_bar(c);
    fputs("bt-import: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* Records the first reason to stop (the others are dropped). */
static void set_fatal(imp_ctx *c, int code, const char *fmt, ...)
{
    pthread_mutex_lock(&c->fatal_mu);
    if (!atomic_load(&c->fatal)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->fatal_msg, sizeof c->fatal_msg, fmt, ap);
        va_end(ap);
        atomic_store(&c->fatal, code);
    }
    pthread_mutex_unlock(&c->fatal_mu);
}

static void reject(imp_ctx *c, uint64_t line, const char *why, const uint8_t *raw, size_t raw_len)
{
    pthread_mutex_lock(&c->rej_mu);
    uint64_t n = atomic_fetch_add(&c->ctr.rejected, 1) + 1;
    if (c->rej) {
        int bad = fprintf(c->rej, "%llu\t", (unsigned long long)line) < 0;
        bad |= imp_escape_write(c->rej, (const uint8_t *)why, strlen(why)) != 0;
        bad |= fputc('\t', c->rej) == EOF;
        bad |= imp_escape_write(c->rej, raw, raw_len) != 0;
        bad |= fputc('\n', c->rej) == EOF;
        if (bad) set_fatal(c, IMP_EXIT_FAILED, "writing %s: %s", c->o->rejects_path, strerror(errno));
    } else if (c->shown < SHOWN_REJECTS && !c->o->quiet) {
        c->shown++;
        clear_bar(c);
        fprintf(stderr, "bt-import: line %llu: %s\n", (unsigned long long)line, why);
    }
    pthread_mutex_unlock(&c->rej_mu);
    if (c->o->max_rejects && n > c->o->max_rejects)
        set_fatal(c, IMP_EXIT_FAILED, "more than %llu records rejected (--max-rejects); stopped",
                  (unsigned long long)c->o->max_rejects);
}

/* ---- input -------------------------------------------------------------------------------- */

static ssize_t fd_read(void *arg, void *buf, size_t n) { return read(*(int *)arg, buf, n); }

typedef struct imp_input {
    int fd;
    bool regular;
    uint64_t size;              /* regular file: its size; stdin: known only if it ended in the prefix */
    uint8_t *prefix;            /* stdin buffered for the sample */
    size_t prefix_len;
    bool prefix_is_all;
    imp_mem_src mem;
} imp_input;

static int open_input(imp_ctx *c, imp_input *in)
{
    memset(in, 0, sizeof *in);
    in->fd = -1;
    if (!strcmp(c->o->input, "-")) {
        in->fd = STDIN_FILENO;
    } else {
        in->fd = open(c->o->input, O_RDONLY | O_CLOEXEC);
        if (in->fd < 0) return say(c, IMP_EXIT_USAGE, "%s: %s", c->o->input, strerror(errno));
    }
    struct stat st;
    if (fstat(in->fd, &st) == 0 && S_ISREG(st.st_mode)) {
        in->regular = true;
        in->size = (uint64_t)st.st_size;
        posix_fadvise(in->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    }
    return 0;
}

static void close_input(imp_input *in)
{
    if (in->fd > STDIN_FILENO) close(in->fd);
    free(in->prefix);
}

/* Opens the source that the import reads: the file, or stdin (after its
 * buffered prefix, if any). */
static int open_source(imp_ctx *c, imp_input *in, imp_source *src)
{
    char err[600];
    int rc;
    if (in->prefix) {
        in->mem = (imp_mem_src){in->prefix, in->prefix_len, 0, in->prefix_is_all ? -1 : in->fd};
        rc = imp_source_open(src, c->o->fmt, &c->o->map, imp_mem_read, &in->mem, c->o->max_record, err, sizeof err);
    } else {
        rc = imp_source_open(src, c->o->fmt, &c->o->map, fd_read, &in->fd, c->o->max_record, err, sizeof err);
    }
    if (rc) {
        imp_source_close(src);
        return say(c, IMP_EXIT_USAGE, "%s: %s", c->o->input, err);
    }
    return 0;
}

/* ---- the table ---------------------------------------------------------------------------- */

/* Samples the row keys: a second pass over a regular file, or the first
 * sample_mb of stdin (kept to be replayed). */
static int sample_keys(imp_ctx *c, imp_input *in, imp_sample *smp, uint64_t *bytes)
{
    imp_source src;
    char err[600];
    int fd = -1, rc;
    if (in->regular) {
        fd = open(c->o->input, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return say(c, IMP_EXIT_USAGE, "%s: %s", c->o->input, strerror(errno));
        rc = imp_source_open(&src, c->o->fmt, &c->o->map, fd_read, &fd, c->o->max_record, err, sizeof err);
        *bytes = in->size;
    } else {
        size_t cap = (size_t)c->o->sample_mb << 20;
        in->prefix = malloc(cap ? cap : 1);
        if (!in->prefix) return say(c, IMP_EXIT_FAILED, "out of memory for the sample");
        while (in->prefix_len < cap) {
            ssize_t r = read(in->fd, in->prefix + in->prefix_len, cap - in->prefix_len);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) return say(c, IMP_EXIT_FAILED, "reading stdin: %s", strerror(errno));
            if (r == 0) {
                in->prefix_is_all = true;
                break;
            }
            in->prefix_len += (size_t)r;
        }
        in->mem = (imp_mem_src){in->prefix, in->prefix_len, 0, -1};
        rc = imp_source_open(&src, c->o->fmt, &c->o->map, imp_mem_read, &in->mem, c->o->max_record, err, sizeof err);
        /* stdin longer than the sample: assume 4 times what was buffered */
        *bytes = in->prefix_is_all ? in->prefix_len : 4 * (uint64_t)in->prefix_len;
        if (in->prefix_is_all) in->size = in->prefix_len;
    }
    int code = 0;
    if (rc) {
        code = say(c, IMP_EXIT_USAGE, "%s: %s", c->o->input, err);
    } else {
        for (;;) {
            int r = imp_source_next(&src);
            if (r == IMP_SRC_END) break;
            if (r == IMP_SRC_ERROR) {
                code = say(c, IMP_EXIT_FAILED, "reading %s: %s", c->o->input, strerror(errno));
                break;
            }
            if (r == IMP_SRC_ROW && imp_sample_add(smp, src.row.key.p, src.row.key.len)) {
                code = say(c, IMP_EXIT_FAILED, "out of memory for the sample");
                break;
            }
        }
    }
    imp_source_close(&src);
    if (fd >= 0) close(fd);
    return code;
}

static int create_table(imp_ctx *c, imp_input *in)
{
    const imp_opts *o = c->o;
    imp_sample smp;
    if (imp_sample_init(&smp, 0, (uint64_t)imp_now_us())) return say(c, IMP_EXIT_FAILED, "out of memory");
    uint64_t bytes = 0;
    int code = sample_keys(c, in, &smp, &bytes);
    if (code) {
        imp_sample_free(&smp);
        return code;
    }
    unsigned n = o->tablets ? o->tablets : imp_tablets_for(bytes, (uint64_t)o->tablet_mb << 20, o->max_tablets);
    bt_key *splits = NULL;
    size_t n_splits = 0;
    bt_schema *s = bt_schema_new();
    if (!s || imp_pick_splits(&smp, n, &splits, &n_splits)) {
        bt_schema_free(s);
        imp_sample_free(&smp);
        return say(c, IMP_EXIT_FAILED, "out of memory");
    }
    int rc = BT_OK;
    for (size_t i = 0; i < o->map.n_cols && !rc; i++) {
        bool dup = false;
        for (size_t j = 0; j < i; j++) dup |= !strcmp(o->map.cols[j].family, o->map.cols[i].family);
        if (!dup) rc = bt_schema_add_family(s, o->map.cols[i].family, o->max_versions, 0);
    }
    if (!rc) rc = bt_create_table(c->cl, o->table, s, splits, n_splits);
    if (rc == BT_EEXIST)
        code = say(c, IMP_EXIT_USAGE, "--create: table %s already exists (import into it without --create)", o->table);
    else if (rc == BT_EINVAL)
        code = say(c, IMP_EXIT_USAGE, "--create: %s", bt_errmsg());
    else if (rc)
        code = say(c, IMP_EXIT_FAILED, "creating table %s: %s: %s", o->table, bt_errname(rc), bt_errmsg());
    else if (!o->quiet)
        fprintf(stderr, "bt-import: created table %s with %zu tablet%s (sampled %llu row keys)\n", o->table,
                n_splits + 1, n_splits ? "s" : "", (unsigned long long)smp.seen);
    free(splits);
    bt_schema_free(s);
    imp_sample_free(&smp);
    return code;
}

/* Without --create: the table must exist and hold every family mapped. */
static int check_table(imp_ctx *c)
{
    bt_table_desc *d = NULL;
    int rc = bt_describe_table(c->cl, c->o->table, &d);
    if (rc == BT_ENOTFOUND)
        return say(c, IMP_EXIT_USAGE, "there is no table %s (--create makes it)", c->o->table);
    if (rc == BT_EINVAL) return say(c, IMP_EXIT_USAGE, "--table: %s", bt_errmsg());
    if (rc) return say(c, IMP_EXIT_FAILED, "table %s: %s: %s", c->o->table, bt_errname(rc), bt_errmsg());
    int code = 0;
    size_t nf = bt_schema_n_families(d->schema);
    for (size_t i = 0; i < c->o->map.n_cols && !code; i++) {
        const char *fam = c->o->map.cols[i].family;
        bool found = false;
        char list[300] = "";
        size_t off = 0;
        for (size_t k = 0; k < nf; k++) {
            bt_family_info fi;
            if (bt_schema_family(d->schema, k, &fi)) continue;
            found |= !strcmp(fi.name, fam);
            if (off < sizeof list - 1) off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", k ? ", " : "", fi.name);
        }
        if (!found) code = say(c, IMP_EXIT_USAGE, "table %s has no family %s (its families: %s)", c->o->table, fam, list);
    }
    bt_table_desc_free(d);
    return code;
}

/* ---- online ------------------------------------------------------------------------------- */

static void batch_free(imp_batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) bt_mutation_free(b->muts[i]);
    free(b->muts);
    free(b->lines);
    free(b->raw_off);
    free(b->raw_len);
    free(b->cells);
    imp_buf_free(&b->raw);
    free(b);
}

static imp_batch *batch_new(size_t cap)
{
    imp_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->cap = cap;
    b->muts = calloc(cap, sizeof *b->muts);
    b->lines = calloc(cap, sizeof *b->lines);
    b->raw_off = calloc(cap, sizeof *b->raw_off);
    b->raw_len = calloc(cap, sizeof *b->raw_len);
    b->cells = calloc(cap, sizeof *b->cells);
    if (!b->muts || !b->lines || !b->raw_off || !b->raw_len || !b->cells) {
        batch_free(b);
        return NULL;
    }
    return b;
}

static bool row_refusal(int rc)
{
    return rc == BT_EINVAL || rc == BT_ENOTFOUND || rc == BT_ETOOBIG || rc == BT_EFAILED_PRECONDITION;
}

static void apply_batch(imp_ctx *c, imp_batch *b)
{
    int *st = calloc(b->n, sizeof *st);
    if (!st) {
        set_fatal(c, IMP_EXIT_FAILED, "out of memory");
        return;
    }
    int rc = bt_apply_batch(c->t, b->muts, b->n, st);
    char first[300] = "";
    if (rc) snprintf(first, sizeof first, "%s", bt_errmsg());
    bool first_seen = false;
    uint64_t rows = 0, cells = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (st[i] == BT_OK) {
            rows++;
            cells += b->cells[i];
            continue;
        }
        const char *detail = !first_seen && st[i] == rc ? first : bt_strerror(st[i]);
        first_seen = true;
        if (row_refusal(st[i])) {
            char why[400];
            snprintf(why, sizeof why, "refused by the cluster: %s: %s", bt_errname(st[i]), detail);
            reject(c, b->lines[i], why, b->raw.p + b->raw_off[i], b->raw_len[i]);
        } else {
            set_fatal(c, IMP_EXIT_FAILED, "writing to table %s: %s: %s", c->o->table, bt_errname(st[i]), detail);
        }
    }
    atomic_fetch_add(&c->ctr.rows, rows);
    atomic_fetch_add(&c->ctr.cells, cells);
    free(st);
}

static void *worker_main(void *arg)
{
    imp_worker *w = arg;
    imp_ctx *c = w->ctx;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->done) pthread_cond_wait(&w->cv_get, &w->mu);
        imp_batch *b = w->head;
        if (b) {
            w->head = b->next;
            if (!w->head) w->tail = NULL;
            w->depth--;
            pthread_cond_signal(&w->cv_put);
        }
        pthread_mutex_unlock(&w->mu);
        if (!b) return NULL;
        if (!atomic_load(&c->fatal)) apply_batch(c, b);
        batch_free(b);
    }
}

static void push_batch(imp_ctx *c, imp_worker *w, imp_batch *b)
{
    pthread_mutex_lock(&w->mu);
    while (w->depth >= c->o->queue_batches) pthread_cond_wait(&w->cv_put, &w->mu);
    b->next = NULL;
    if (w->tail) w->tail->next = b;
    else w->head = b;
    w->tail = b;
    w->depth++;
    pthread_cond_signal(&w->cv_get);
    pthread_mutex_unlock(&w->mu);
}

static uint64_t key_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Adds the source's current row to its writer's batch (sending it when full). */
static int add_online(imp_ctx *c, imp_source *src, imp_batch **cur)
{
    const imp_row *r = &src->row;
    unsigned wi = (unsigned)(key_hash(r->key.p, r->key.len) % c->nw);
    imp_batch *b = cur[wi];
    if (!b && !(b = cur[wi] = batch_new(c->o->batch_rows))) return -1;
    bt_mutation *m = bt_mutation_new(r->key.p, r->key.len);
    if (!m) return -1;
    for (size_t i = 0; i < r->n_cells; i++) {
        const imp_cell *x = &r->cells[i];
        int rc = bt_mutation_set(m, x->col->family, x->col->qual, x->col->qual_len, r->ts, x->value, x->value_len);
        if (rc == BT_ENOMEM) {
            bt_mutation_free(m);
            return -1;
        }
        if (rc) {
            char why[400];
            snprintf(why, sizeof why, "%s: %s", bt_errname(rc), bt_errmsg());
            reject(c, src->rec.line, why, src->rec.raw, src->rec.raw_len);
            bt_mutation_free(m);
            return 0;
        }
    }
    b->raw_off[b->n] = b->raw.len;
    b->raw_len[b->n] = src->rec.raw_len;
    if (imp_buf_add(&b->raw, src->rec.raw, src->rec.raw_len)) {
        bt_mutation_free(m);
        return -1;
    }
    b->muts[b->n] = m;
    b->lines[b->n] = src->rec.line;
    b->cells[b->n] = (uint32_t)r->n_cells;
    b->n++;
    b->bytes += r->bytes;
    if (b->n == b->cap || b->bytes >= BATCH_MAX_BYTES) {
        push_batch(c, &c->w[wi], b);
        cur[wi] = NULL;
    }
    return 0;
}

static int start_workers(imp_ctx *c)
{
    c->nw = c->o->workers ? c->o->workers : 1;
    c->w = calloc(c->nw, sizeof *c->w);
    if (!c->w) return -1;
    for (unsigned i = 0; i < c->nw; i++) {
        imp_worker *w = &c->w[i];
        w->ctx = c;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv_put, NULL);
        pthread_cond_init(&w->cv_get, NULL);
        if (pthread_create(&w->thread, NULL, worker_main, w)) {
            c->nw = i;
            return -1;
        }
    }
    return 0;
}

static void stop_workers(imp_ctx *c)
{
    for (unsigned i = 0; i < c->nw; i++) {
        imp_worker *w = &c->w[i];
        pthread_mutex_lock(&w->mu);
        w->done = true;
        pthread_cond_signal(&w->cv_get);
        pthread_mutex_unlock(&w->mu);
    }
    for (unsigned i = 0; i < c->nw; i++) {
        pthread_join(c->w[i].thread, NULL);
        pthread_mutex_destroy(&c->w[i].mu);
        pthread_cond_destroy(&c->w[i].cv_put);
        pthread_cond_destroy(&c->w[i].cv_get);
    }
    free(c->w);
    c->w = NULL;
}

/* ---- the loop ----------------------------------------------------------------------------- */

/* Reads every record: rows to the writers (online) or to bulk (bulk mode).
 * Returns 0 at the end of the input, else the exit status of a stop. */
static int read_all(imp_ctx *c, imp_source *src, bt_bulk *bulk, imp_batch **cur)
{
    uint64_t n = 0;
    for (;;) {
        if (atomic_load(&c->fatal)) return atomic_load(&c->fatal);
        int r = imp_source_next(src);
        if ((++n & 255) == 0 || r == IMP_SRC_END) atomic_store(&c->ctr.bytes, imp_reader_offset(src->rd));
        if (r == IMP_SRC_END) return 0;
        if (r == IMP_SRC_ERROR) {
            set_fatal(c, IMP_EXIT_FAILED, "reading %s: %s", c->o->input, strerror(errno));
            continue;
        }
        atomic_fetch_add(&c->ctr.records, 1);
        if (r == IMP_SRC_REJECT) {
            reject(c, src->rec.line, src->why, src->rec.raw, src->rec.raw_len);
            continue;
        }
        if (!bulk) {
            if (add_online(c, src, cur)) set_fatal(c, IMP_EXIT_FAILED, "out of memory");
            continue;
        }
        const imp_row *row = &src->row;
        for (size_t i = 0; i < row->n_cells; i++) {
            const imp_cell *x = &row->cells[i];
            int rc = bt_bulk_add(bulk, row->key.p, row->key.len, x->col->family, x->col->qual, x->col->qual_len,
                                 row->ts, x->value, x->value_len);
            if (rc == BT_OK) continue;
            if (i == 0 && row_refusal(rc)) {
                char why[400];
                snprintf(why, sizeof why, "%s: %s", bt_errname(rc), bt_errmsg());
                reject(c, src->rec.line, why, src->rec.raw, src->rec.raw_len);
            } else {
                /* part of the row is in the load: it cannot go on without breaking the row */
                set_fatal(c, IMP_EXIT_FAILED, "bulk load: line %llu: %s: %s", (unsigned long long)src->rec.line,
                          bt_errname(rc), bt_errmsg());
            }
            break;
        }
        if (!atomic_load(&c->fatal)) {
            atomic_fetch_add(&c->ctr.rows, 1);
            atomic_fetch_add(&c->ctr.cells, row->n_cells);
        }
    }
}

static int run_online(imp_ctx *c, imp_source *src)
{
    int rc = bt_table_open(c->cl, c->o->table, &c->t);
    if (rc) return say(c, IMP_EXIT_FAILED, "opening table %s: %s: %s", c->o->table, bt_errname(rc), bt_errmsg());
    if (start_workers(c)) {
        stop_workers(c);
        return say(c, IMP_EXIT_FAILED, "cannot start the writer threads");
    }
    imp_batch **cur = calloc(c->nw, sizeof *cur);
    if (!cur) set_fatal(c, IMP_EXIT_FAILED, "out of memory");
    else read_all(c, src, NULL, cur);
    for (unsigned i = 0; cur && i < c->nw; i++) {
        if (cur[i] && cur[i]->n && !atomic_load(&c->fatal)) push_batch(c, &c->w[i], cur[i]);
        else batch_free(cur[i]);
    }
    free(cur);
    stop_workers(c);
    return atomic_load(&c->fatal);
}

static int run_bulk(imp_ctx *c, imp_source *src, bt_bulk_stats *bs)
{
    bt_bulk_options bo = {.memory_bytes = c->o->memory_mb << 20, .tmp_dir = c->o->tmp_dir};
    bt_bulk *b = NULL;
    int rc = bt_bulk_begin(c->cl, c->o->table, &bo, &b);
    if (rc) return say(c, IMP_EXIT_FAILED, "bulk load into %s: %s: %s", c->o->table, bt_errname(rc), bt_errmsg());
    read_all(c, src, b, NULL);
    if (atomic_load(&c->fatal)) {
        bt_bulk_abort(b);
        return atomic_load(&c->fatal);
    }
    imp_progress_phase(&c->prog, "sorting, writing and attaching SSTables");
    rc = bt_bulk_finish(b, bs);
    if (rc)
        set_fatal(c, IMP_EXIT_FAILED,
                  "bulk load failed: %s: %s (tablets attached before the failure hold whole rows; the others "
                  "hold none of this load)", bt_errname(rc), bt_errmsg());
    return atomic_load(&c->fatal);
}

/* ---- entry -------------------------------------------------------------------------------- */

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void summary(imp_ctx *c, double secs, const bt_bulk_stats *bs, bool stopped)
{
    uint64_t rows = atomic_load(&c->ctr.rows), cells = atomic_load(&c->ctr.cells);
    uint64_t bytes = atomic_load(&c->ctr.bytes), rej = atomic_load(&c->ctr.rejected);
    char hb[32];
    imp_human_bytes(bytes, hb, sizeof hb);
    double s = secs > 1e-6 ? secs : 1e-6;
    FILE *f = stopped ? stderr : stdout;
    fprintf(f, "bt-import: %s %llu rows, %llu cells, %s in %.2f s (%.0f rows/s, %.0f cells/s); %llu rejected\n",
            stopped ? (c->o->bulk ? "stopped; had read" : "stopped; acknowledged") : c->o->bulk ? "bulk-loaded" : "imported",
            (unsigned long long)rows, (unsigned long long)cells, hb, secs, (double)rows / s, (double)cells / s,
            (unsigned long long)rej);
    if (bs && !stopped)
        fprintf(f, "bt-import: %llu SSTables attached to %llu tablets; %llu sorted runs spilled\n",
                (unsigned long long)bs->sstables, (unsigned long long)bs->tablets,
                (unsigned long long)bs->runs_spilled);
    if (rej && !c->rej && !stopped)
        fprintf(stderr, "bt-import: %llu records rejected%s (--rejects FILE keeps them)\n", (unsigned long long)rej,
                rej > c->shown ? ", the first shown above" : "");
    else if (rej && !stopped)
        fprintf(stderr, "bt-import: %llu records rejected, see %s\n", (unsigned long long)rej, c->o->rejects_path);
}

int imp_run(imp_opts *o)
{
    imp_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.tty = isatty(STDERR_FILENO);
    pthread_mutex_init(&c.rej_mu, NULL);
    pthread_mutex_init(&c.fatal_mu, NULL);
    if (!o->have_default_ts) o->map.default_ts = wall_us();
    o->map.max_row = o->bulk ? 0 : IMP_MAX_ONLINE_ROW;
    imp_input in;
    int code = open_input(&c, &in);
    if (code) return code;
    bt_client_options co = {.timeout_ms = o->timeout_ms};
    int rc = bt_connect(o->lock_url, &co, &c.cl);
    if (rc) {
        close_input(&in);
        return say(&c, IMP_EXIT_FAILED, "cannot reach the cluster at %s: %s: %s", o->lock_url, bt_errname(rc),
                   bt_errmsg());
    }
    code = o->create ? create_table(&c, &in) : check_table(&c);
    imp_source src;
    memset(&src, 0, sizeof src);
    bool src_open = false;
    if (!code) {
        code = open_source(&c, &in, &src);
        src_open = !code;
    }
    if (!code && o->rejects_path) {
        c.rej = fopen(o->rejects_path, "w");
        if (!c.rej) code = say(&c, IMP_EXIT_USAGE, "--rejects %s: %s", o->rejects_path, strerror(errno));
    }
    bt_bulk_stats bs;
    memset(&bs, 0, sizeof bs);
    int64_t t0 = imp_now_us();
    if (!code) {
        c.prog = (imp_progress){.ctr = &c.ctr, .out = stderr, .tty = c.tty,
                                .interval_ms = (int)o->progress_interval_ms, .total_bytes = in.size};
        if (!o->quiet) imp_progress_start(&c.prog);
        code = o->bulk ? run_bulk(&c, &src, &bs) : run_online(&c, &src);
        imp_progress_stop(&c.prog);
        double secs = (double)(imp_now_us() - t0) / 1e6;
        if (code) {
            say(&c, code, "%s", c.fatal_msg);
            summary(&c, secs, NULL, true);
            if (o->map.ts_field < 0 && !o->bulk)
                fprintf(stderr, "bt-import: running the import again with --default-timestamp %lld rewrites the "
                                "same cells\n", (long long)o->map.default_ts);
        } else if (!o->quiet) {
            summary(&c, secs, o->bulk ? &bs : NULL, false);
        }
    }
    if (c.rej && fclose(c.rej) && !code)
        code = say(&c, IMP_EXIT_FAILED, "writing %s: %s", o->rejects_path, strerror(errno));
    if (src_open) imp_source_close(&src);
    if (c.t) bt_table_close(c.t);
    bt_close(c.cl);
    close_input(&in);
    pthread_mutex_destroy(&c.rej_mu);
    pthread_mutex_destroy(&c.fatal_mu);
    if (!code && atomic_load(&c.ctr.rejected)) code = IMP_EXIT_REJECTS;
    return code;
}

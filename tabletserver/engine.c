/* tabletserver/engine.c: what a tablet server runs beneath its tablets: the
 * shared commit log, the block cache and a small pool of background threads
 * that run every tablet's compactions.
 *
 * Scheduling: a tablet with work (an immutable memtable to flush, too many
 * SSTables, a requested major compaction) is put once on a FIFO queue; a
 * thread takes it, runs ts_tablet_background() to completion, and the
 * tablet re-queues itself if more work appeared meanwhile.
 */
#include "tabletserver/tablet_internal.h"
#include "common/log.h"
#include "common/status.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t real_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t ts_engine_now(ts_engine *e) { return e->opts.clock_us(); }

ts_log *ts_engine_log(ts_engine *e) { return e->log; }

static void *worker(void *arg)
{
    ts_engine *e = arg;
    pthread_setname_np(pthread_self(), "bt-compact");
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stop && e->qlen == 0) pthread_cond_wait(&e->cv, &e->mu);
        if (e->stop) break;
        ts_tablet *t = e->queue[0];
        memmove(e->queue, e->queue + 1, (size_t)(e->qlen - 1) * sizeof *e->queue);
        e->qlen--;
        pthread_mutex_unlock(&e->mu);
        ts_tablet_background(t);
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

void ts_engine_schedule(ts_engine *e, ts_tablet *t)
{
    /* A tablet runs one background job at a time, except that a flush may
     * run beside a long merge on a second thread, so writers never wait for
     * a merge to end before their memtable can rotate. */
    if (t->bg_queued || t->closing) return;
    if (t->bg_running && (!t->imm.mt || t->flush_running)) return;
    pthread_mutex_lock(&e->mu);
    if (e->qlen == e->qcap) {
        int cap = e->qcap ? e->qcap * 2 : 16;
        ts_tablet **q = realloc(e->queue, (size_t)cap * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&e->mu);
            return; /* retried at the next write or flush request */
        }
        e->queue = q;
        e->qcap = cap;
    }
    e->queue[e->qlen++] = t;
    t->bg_queued = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static void fill_defaults(ts_engine_options *o)
{
    if (!o->env) o->env = bt_env_posix();
    if (!o->group_ms) o->group_ms = 5;
    if (!o->log_roll_bytes) o->log_roll_bytes = 64u << 20;
    if (!o->block_cache_bytes) o->block_cache_bytes = 64u << 20;
    if (!o->memtable_bytes) o->memtable_bytes = 16u << 20;
    if (o->compaction_threads <= 0) o->compaction_threads = 1;
    if (o->merge_trigger <= 1) o->merge_trigger = 4;
    if (o->slowdown_sstables <= 0) o->slowdown_sstables = 12;
    if (o->stop_sstables <= o->slowdown_sstables) o->stop_sstables = o->slowdown_sstables + 8;
    if (!o->clock_us) o->clock_us = real_clock_us;
}

int ts_engine_open(const ts_engine_options *opts, ts_engine **out)
{
    if (!opts || !opts->log_dir || !*opts->log_dir)
        return bt_err(BT_EINVAL, "ts_engine_open: log_dir is required");
    ts_engine *e = calloc(1, sizeof *e);
    if (!e) return BT_ENOMEM;
    e->opts = *opts;
    fill_defaults(&e->opts);
    e->env = e->opts.env;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    int rc = BT_OK;
    e->cache = sst_cache_new(e->opts.block_cache_bytes);
    if (!e->cache) rc = BT_ENOMEM;
    if (!rc) {
        ts_log_options lo = {
            .env = e->env, .dir = e->opts.log_dir, .durability = e->opts.durability,
            .group_ms = e->opts.group_ms, .roll_bytes = e->opts.log_roll_bytes,
        };
        rc = ts_log_open(&lo, &e->log);
    }
    if (!rc) {
        e->threads = calloc((size_t)e->opts.compaction_threads, sizeof *e->threads);
        if (!e->threads) rc = BT_ENOMEM;
    }
    for (int i = 0; !rc && i < e->opts.compaction_threads; i++) {
        if (pthread_create(&e->threads[i], NULL, worker, e)) rc = bt_err(BT_ENOMEM, "cannot start compaction thread");
        else e->n_threads++;
    }
    if (rc) {
        ts_engine_close(e);
        return rc;
    }
    *out = e;
    return BT_OK;
}

int ts_engine_close(ts_engine *e)
{
    if (!e) return BT_OK;
    if (atomic_load(&e->n_tablets) != 0) {
        BT_ERROR("ts_engine_close: %d tablets still open", atomic_load(&e->n_tablets));
        return bt_err(BT_EBUSY, "ts_engine_close: close every tablet first");
    }
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < e->n_threads; i++) pthread_join(e->threads[i], NULL);
    free(e->threads);
    int rc = e->log ? ts_log_close(e->log) : BT_OK;
    sst_cache_free(e->cache);
    free(e->queue);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
    return rc;
}

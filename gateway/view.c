/* gateway/view.c: gw_view, the gateway's cached picture of the cluster
 * (gateway/gw_obs.h; snapshot layout in gateway/view_internal.h).
 *
 * A snapshot is the master's status, the list of tables and a description
 * of each (METADATA included), fetched through libbt.  It is immutable once
 * installed and reference-counted, so renderers read it without a lock
 * while a newer one replaces it.  At most one thread fetches at a time; a
 * caller that finds the snapshot stale while another thread is fetching
 * gets the stale one at once instead of queueing behind the master (only
 * the very first callers, with nothing to show yet, wait).
 *
 * Rates: the tablet servers report read and write totals since they
 * started; the per-second rates are the difference to the previous
 * snapshot that was up, divided by the monotonic time between the two
 * fetches (a total that went down means the server restarted: its new
 * total counts as the increase, as Prometheus' rate() does).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/view_internal.h"

struct gw_view {
    bt_client *client;          /* borrowed; NULL: never fetch (tests) */
    int64_t cache_us;
    pthread_mutex_t mu;         /* protects every field below */
    pthread_cond_t fetched;     /* signalled when a fetch ends */
    gw_snapshot *cur;           /* never NULL */
    gw_snapshot *last_up;       /* the newest snapshot that was up, or NULL (rates) */
    bool fetching;              /* a thread is fetching outside mu */
};

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- snapshots ----------------------------------------------------------- */

static void snap_free(gw_snapshot *s)
{
    bt_cluster_status_free(s->status);
    free(s->reads_ps);
    free(s->writes_ps);
    free(s->rates_known);
    for (size_t i = 0; i < s->n_tables; i++) bt_table_desc_free(s->tables[i]);
    free(s->tables);
    free(s);
}

void gw_snapshot_release(gw_snapshot *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) snap_free(s);
}

static gw_snapshot *snap_ref(gw_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

/* A new snapshot owning st and tables (both freed if allocation fails). */
static gw_snapshot *snap_new(bt_cluster_status *st, bt_table_desc **tables, size_t n, const char *error,
                             int64_t at_us, int64_t mono_us)
{
    gw_snapshot *s = calloc(1, sizeof *s);
    size_t ns = st ? st->n_servers : 0;
    if (s && ns) {
        s->reads_ps = calloc(ns, sizeof *s->reads_ps);
        s->writes_ps = calloc(ns, sizeof *s->writes_ps);
        s->rates_known = calloc(ns, sizeof *s->rates_known);
    }
    if (!s || (ns && (!s->reads_ps || !s->writes_ps || !s->rates_known))) {
        bt_cluster_status_free(st);
        for (size_t i = 0; i < n; i++) bt_table_desc_free(tables[i]);
        free(tables);
        if (s) {
            free(s->reads_ps);
            free(s->writes_ps);
            free(s->rates_known);
            free(s);
        }
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->up = st != NULL;
    s->status = st;
    s->tables = tables;
    s->n_tables = n;
    s->at_us = at_us;
    s->mono_us = mono_us;
    snprintf(s->error, sizeof s->error, "%s", error ? error : "");
    return s;
}

/* Rates of s's servers against prev (the last snapshot that was up). */
static void snap_rates(gw_snapshot *s, const gw_snapshot *prev)
{
    if (!s->up || !prev || !prev->up || s->mono_us <= prev->mono_us) return;
    double dt = (double)(s->mono_us - prev->mono_us) / 1e6;
    for (size_t i = 0; i < s->status->n_servers; i++) {
        const bt_server_status *now = &s->status->servers[i];
        for (size_t j = 0; j < prev->status->n_servers; j++) {
            const bt_server_status *then = &prev->status->servers[j];
            if (!now->id || !then->id || strcmp(now->id, then->id)) continue;
            uint64_t dr = now->reads >= then->reads ? now->reads - then->reads : now->reads;
            uint64_t dw = now->writes >= then->writes ? now->writes - then->writes : now->writes;
            s->reads_ps[i] = (double)dr / dt;
            s->writes_ps[i] = (double)dw / dt;
            s->rates_known[i] = true;
            break;
        }
    }
}

/* Makes s current (mu held); takes over the caller's reference. */
static void install_locked(gw_view *v, gw_snapshot *s)
{
    snap_rates(s, v->last_up);
    s->last_up_us = s->up ? s->at_us : v->last_up ? v->last_up->at_us : 0;
    if (s->up) {
        gw_snapshot_release(v->last_up);
        v->last_up = snap_ref(s);
    }
    gw_snapshot_release(v->cur);
    v->cur = s;
}

/* ---- fetching ------------------------------------------------------------ */

static void describe_error(char *buf, size_t cap, const char *what, int rc)
{
    const char *msg = bt_errmsg();
    snprintf(buf, cap, "%s: %s%s%s", what, bt_errname(rc), msg && *msg ? ": " : "", msg ? msg : "");
}

/* The tables of the cluster, described; a partial failure is noted in err
 * (the tables described so far are kept). */
static bt_table_desc **fetch_tables(bt_client *c, size_t *n_out, char *err, size_t cap)
{
    *n_out = 0;
    char **names = NULL;
    size_t n = 0;
    int rc = bt_list_tables(c, &names, &n);
    if (rc) {
        describe_error(err, cap, "listing tables", rc);
        names = NULL;
        n = 0;
    }
    bt_table_desc **out = calloc(n + 1, sizeof *out);
    if (!out) {
        bt_free_names(names, n);
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i <= n; i++) {
        const char *name = i < n ? names[i] : BT_METADATA_TABLE;
        if (i == n && rc) break;            /* the master is not answering: spare it one more call */
        int drc = bt_describe_table(c, name, &out[k]);
        if (drc == BT_OK) {
            k++;
        } else if (drc != BT_ENOTFOUND) {   /* dropped meanwhile: not a failure */
            char what[128];
            snprintf(what, sizeof what, "describing table %s", name);
            describe_error(err, cap, what, drc);
            if (drc == BT_EUNAVAIL || drc == BT_ETIMEDOUT) break;
        }
    }
    bt_free_names(names, n);
    *n_out = k;
    return out;
}

static gw_snapshot *fetch(bt_client *c)
{
    int64_t t0 = clock_us(CLOCK_MONOTONIC), at = clock_us(CLOCK_REALTIME);
    char err[256] = "";
    bt_cluster_status *st = NULL;
    int rc = bt_cluster_status_get(c, &st);
    bt_table_desc **tables = NULL;
    size_t n = 0;
    if (rc) {
        describe_error(err, sizeof err, "cluster status", rc);
        st = NULL;
    } else {
        tables = fetch_tables(c, &n, err, sizeof err);
    }
    int64_t t1 = clock_us(CLOCK_MONOTONIC);
    gw_snapshot *s = snap_new(st, tables, n, err, at, t1);
    if (s) s->fetch_us = t1 - t0;
    return s;
}

/* ---- the view ------------------------------------------------------------ */

gw_view *gw_view_new(bt_client *c, int cache_ms)
{
    gw_view *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->client = c;
    v->cache_us = (int64_t)(cache_ms > 0 ? cache_ms : 1000) * 1000;
    /* Until the first fetch: an empty snapshot that is already stale. */
    v->cur = snap_new(NULL, NULL, 0, c ? "not fetched yet" : "no client", 0, 0);
    if (!v->cur) {
        free(v);
        return NULL;
    }
    v->cur->mono_us = INT64_MIN / 2;
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->fetched, NULL);
    return v;
}

void gw_view_free(gw_view *v)
{
    if (!v) return;
    gw_snapshot_release(v->cur);
    gw_snapshot_release(v->last_up);
    pthread_cond_destroy(&v->fetched);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

gw_snapshot *gw_view_snapshot(gw_view *v)
{
    pthread_mutex_lock(&v->mu);
    for (;;) {
        gw_snapshot *s = v->cur;
        bool fresh = !v->client || clock_us(CLOCK_MONOTONIC) - s->mono_us < v->cache_us;
        bool fetched_ever = s->mono_us > 0;
        if (fresh || (v->fetching && fetched_ever)) {
            snap_ref(s);
            pthread_mutex_unlock(&v->mu);
            return s;
        }
        if (!v->fetching) break;
        pthread_cond_wait(&v->fetched, &v->mu);
    }
    v->fetching = true;
    pthread_mutex_unlock(&v->mu);

    gw_snapshot *s = fetch(v->client);

    pthread_mutex_lock(&v->mu);
    v->fetching = false;
    if (s) install_locked(v, s);
    s = snap_ref(v->cur);       /* out of memory: the previous one */
    pthread_cond_broadcast(&v->fetched);
    pthread_mutex_unlock(&v->mu);
    return s;
}

int gw_view_install(gw_view *v, bt_cluster_status *st, bt_table_desc **tables, size_t n, const char *error,
                    int64_t at_us)
{
    gw_snapshot *s = snap_new(st, tables, n, st ? "" : error ? error : "unreachable", at_us, at_us);
    if (!s) return BT_ENOMEM;
    if (st && error) snprintf(s->error, sizeof s->error, "%s", error);
    pthread_mutex_lock(&v->mu);
    install_locked(v, s);
    pthread_mutex_unlock(&v->mu);
    return BT_OK;
}

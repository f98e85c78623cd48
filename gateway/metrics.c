/* gateway/metrics.c: the gateway's request metrics and the Prometheus text
 * of GET /metrics (gateway/gw_obs.h).
 *
 * Hot path: gw_metrics_observe runs once per request on every loop thread.
 * It finds the endpoint's slot by a lock-free scan of the published slots
 * (the router's endpoints are created up front, so in practice the scan
 * hits), then does four relaxed atomic adds: the status class counter, one
 * histogram bucket, the latency sum and nothing else -- the histogram's
 * count is the sum of its buckets.  An endpoint string not seen before takes
 * add_mu once to publish a new slot (name first, then the slot count with
 * release order; readers load the count with acquire).  Past
 * GW_MAX_ENDPOINTS names, requests count under endpoint="_other".
 *
 * Exposition: text format 0.0.4 (https://prometheus.io/docs/instrumenting/
 * exposition_formats/), one HELP and one TYPE line per metric family, label
 * values escaped (backslash, double quote, newline).  Buckets are rendered
 * cumulative, ending with le="+Inf" equal to _count.  A scrape concurrent
 * with requests sees each counter at some instant; a histogram's _count and
 * +Inf bucket are equal by construction, its _sum may be a request ahead.
 *
 * Cluster figures come from the gw_view snapshot (gateway/view.c): up or
 * not, counts, and per server (labels server, address) and per table.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/view_internal.h"

#define GW_MAX_ENDPOINTS 64             /* the last slot is "_other" */
#define GW_N_CLASSES 6                  /* 0: outside 100..599, 1..5: 1xx..5xx */
#define GW_N_BUCKETS 14                 /* finite upper bounds; one more for +Inf */

/* Bucket upper bounds in microseconds and as rendered (seconds). */
static const uint64_t bucket_us[GW_N_BUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const bucket_le[GW_N_BUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
};
static const char *const class_name[GW_N_CLASSES] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};

/* The router's endpoints, created with the metrics so lookups never lock. */
static const char *const known_endpoints[] = {
    "get_row", "put_row", "delete_row", "scan", "mutations", "check_and_mutate", "read_modify_write",
    "list_tables", "create_table", "get_table", "delete_table", "status", "healthz", "metrics",
    "status_page", "unknown",
};

typedef struct ep_slot {
    char *name;                                         /* immutable once published */
    atomic_uint_fast64_t by_class[GW_N_CLASSES];
    atomic_uint_fast64_t buckets[GW_N_BUCKETS + 1];     /* not cumulative; last: over 10 s */
    atomic_uint_fast64_t sum_us;
} ep_slot;

struct gw_metrics {
    atomic_size_t n_slots;              /* slots[0..n) are published */
    pthread_mutex_t add_mu;             /* serialises publishing a slot */
    int64_t started_us;                 /* wall clock of gw_metrics_new */
    ep_slot slots[GW_MAX_ENDPOINTS];
};

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

gw_metrics *gw_metrics_new(void)
{
    gw_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    size_t n = sizeof known_endpoints / sizeof *known_endpoints;
    for (size_t i = 0; i < n; i++) {
        if (!(m->slots[i].name = strdup(known_endpoints[i]))) {
            for (size_t j = 0; j < i; j++) free(m->slots[j].name);
            free(m);
            return NULL;
        }
    }
    atomic_init(&m->n_slots, n);
    pthread_mutex_init(&m->add_mu, NULL);
    m->started_us = wall_us();
    return m;
}

void gw_metrics_free(gw_metrics *m)
{
    if (!m) return;
    size_t n = atomic_load(&m->n_slots);
    for (size_t i = 0; i < n; i++) free(m->slots[i].name);
    pthread_mutex_destroy(&m->add_mu);
    free(m);
}

static ep_slot *find_slot(gw_metrics *m, const char *endpoint, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(m->slots[i].name, endpoint)) return &m->slots[i];
    return NULL;
}

/* The slot of endpoint, publishing one if needed; NULL only without memory. */
static ep_slot *slot_of(gw_metrics *m, const char *endpoint)
{
    ep_slot *s = find_slot(m, endpoint, atomic_load_explicit(&m->n_slots, memory_order_acquire));
    if (s) return s;
    pthread_mutex_lock(&m->add_mu);
    size_t n = atomic_load_explicit(&m->n_slots, memory_order_relaxed);
    s = find_slot(m, endpoint, n);
    if (!s) {
        const char *name = n < GW_MAX_ENDPOINTS - 1 ? endpoint : "_other";
        s = find_slot(m, name, n);
        if (!s && (m->slots[n].name = strdup(name))) {
            s = &m->slots[n];
            atomic_store_explicit(&m->n_slots, n + 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&m->add_mu);
    return s;
}

void gw_metrics_observe(gw_metrics *m, const char *endpoint, int http_status, uint64_t latency_us)
{
    if (!m) return;
    ep_slot *s = slot_of(m, endpoint ? endpoint : "unknown");
    if (!s) return;
    int cls = http_status >= 100 && http_status <= 599 ? http_status / 100 : 0;
    int b = 0;
    while (b < GW_N_BUCKETS && latency_us > bucket_us[b]) b++;
    atomic_fetch_add_explicit(&s->by_class[cls], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, latency_us, memory_order_relaxed);
}

/* ---- text exposition ------------------------------------------------------ */

typedef struct out {
    bt_buf *b;
    int rc;                     /* the first failure; later appends are skipped */
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    if (o->rc) return;
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->rc = BT_EINVAL;
        return;
    }
    if ((size_t)n < sizeof small) {
        o->rc = bt_buf_append(o->b, small, (size_t)n);
        return;
    }
    if ((o->rc = bt_buf_reserve(o->b, (size_t)n + 1))) return;
    va_start(ap, fmt);
    vsnprintf((char *)o->b->data + o->b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    o->b->len += (size_t)n;
}

/* A label value: \ -> \\, " -> \", newline -> \n. */
static void put_label(out *o, const char *s)
{
    for (const char *p = s ? s : ""; *p && !o->rc; p++) {
        const char *run = p;
        while (*p && *p != '\\' && *p != '"' && *p != '\n') p++;
        if (p > run) o->rc = bt_buf_append(o->b, run, (size_t)(p - run));
        if (!*p) break;
        put(o, "%s", *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : "\\n");
    }
}

static void put_family(out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_seconds(out *o, uint64_t us)
{
    put(o, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
}

static void render_requests(out *o, gw_metrics *m)
{
    size_t n = atomic_load_explicit(&m->n_slots, memory_order_acquire);
    put_family(o, "bt_gateway_start_time_seconds", "gauge", "Wall clock when the gateway started (Unix seconds).");
    put(o, "bt_gateway_start_time_seconds ");
    put_seconds(o, (uint64_t)m->started_us);
    put(o, "\n");

    put_family(o, "bt_gateway_requests_total", "counter",
               "HTTP requests answered, by endpoint and status class.");
    for (size_t i = 0; i < n; i++) {
        ep_slot *s = &m->slots[i];
        for (int c = 0; c < GW_N_CLASSES; c++) {
            uint64_t v = atomic_load_explicit(&s->by_class[c], memory_order_relaxed);
            if (!v) continue;
            put(o, "bt_gateway_requests_total{endpoint=\"");
            put_label(o, s->name);
            put(o, "\",code=\"%s\"} %" PRIu64 "\n", class_name[c], v);
        }
    }

    put_family(o, "bt_gateway_request_duration_seconds", "histogram",
               "Time from a request's arrival to its last byte queued, by endpoint.");
    for (size_t i = 0; i < n; i++) {
        ep_slot *s = &m->slots[i];
        uint64_t cum = 0, counts[GW_N_BUCKETS + 1];
        for (int b = 0; b <= GW_N_BUCKETS; b++)
            cum += counts[b] = atomic_load_explicit(&s->buckets[b], memory_order_relaxed);
        if (!cum) continue;
        uint64_t sum = atomic_load_explicit(&s->sum_us, memory_order_relaxed);
        cum = 0;
        for (int b = 0; b <= GW_N_BUCKETS; b++) {
            cum += counts[b];
            put(o, "bt_gateway_request_duration_seconds_bucket{endpoint=\"");
            put_label(o, s->name);
            put(o, "\",le=\"%s\"} %" PRIu64 "\n", b < GW_N_BUCKETS ? bucket_le[b] : "+Inf", cum);
        }
        put(o, "bt_gateway_request_duration_seconds_sum{endpoint=\"");
        put_label(o, s->name);
        put(o, "\"} ");
        put_seconds(o, sum);
        put(o, "\nbt_gateway_request_duration_seconds_count{endpoint=\"");
        put_label(o, s->name);
        put(o, "\"} %" PRIu64 "\n", cum);
    }
}

/* ---- the cluster ------------------------------------------------------------ */

typedef enum { SV_TABLETS, SV_MEMTABLE, SV_SSTABLE, SV_COMPACTION, SV_READS, SV_WRITES, SV_READS_PS,
               SV_WRITES_PS, SV_COUNT } server_figure;

static const struct {
    const char *name, *type, *help;
} server_families[SV_COUNT] = {
    {"bt_server_tablets", "gauge", "Tablets the server serves."},
    {"bt_server_memtable_bytes", "gauge", "Bytes in the server's memtables."},
    {"bt_server_sstable_bytes", "gauge", "Bytes in the SSTables of the server's tablets."},
    {"bt_server_compaction_queue", "gauge", "Tablets waiting for or in a compaction."},
    {"bt_server_reads_total", "counter", "Reads the server answered since it started."},
    {"bt_server_writes_total", "counter", "Writes the server applied since it started."},
    {"bt_server_reads_per_second", "gauge", "Reads per second between the gateway's last two cluster snapshots."},
    {"bt_server_writes_per_second", "gauge", "Writes per second between the gateway's last two cluster snapshots."},
};

static void put_server_value(out *o, const gw_snapshot *s, size_t i, server_figure f)
{
    const bt_server_status *sv = &s->status->servers[i];
    switch (f) {
    case SV_TABLETS: put(o, "%" PRIu64, sv->tablets); break;
    case SV_MEMTABLE: put(o, "%" PRIu64, sv->memtable_bytes); break;
    case SV_SSTABLE: put(o, "%" PRIu64, sv->sstable_bytes); break;
    case SV_COMPACTION: put(o, "%" PRIu64, sv->compaction_queue); break;
    case SV_READS: put(o, "%" PRIu64, sv->reads); break;
    case SV_WRITES: put(o, "%" PRIu64, sv->writes); break;
    case SV_READS_PS: put(o, "%.3f", s->reads_ps[i]); break;
    case SV_WRITES_PS: put(o, "%.3f", s->writes_ps[i]); break;
    default: break;
    }
}

static void render_servers(out *o, const gw_snapshot *s)
{
    const bt_cluster_status *st = s->status;
    for (int f = 0; f < SV_COUNT; f++) {
        put_family(o, server_families[f].name, server_families[f].type, server_families[f].help);
        for (size_t i = 0; i < st->n_servers; i++) {
            /* a rate needs two snapshots: absent until then, not 0 */
            if ((f == SV_READS_PS || f == SV_WRITES_PS) && !s->rates_known[i]) continue;
            put(o, "%s{server=\"", server_families[f].name);
            put_label(o, st->servers[i].id);
            put(o, "\",address=\"");
            put_label(o, st->servers[i].address);
            put(o, "\"} ");
            put_server_value(o, s, i, (server_figure)f);
            put(o, "\n");
        }
    }
}

static void render_tables(out *o, const gw_snapshot *s)
{
    static const char *const names[3] = {"bt_table_tablets", "bt_table_memtable_bytes", "bt_table_sstable_bytes"};
    static const char *const helps[3] = {"Tablets of the table.", "Bytes in the table's memtables.",
                                         "Bytes in the table's SSTables."};
    for (int f = 0; f < 3; f++) {
        put_family(o, names[f], "gauge", helps[f]);
        for (size_t i = 0; i < s->n_tables; i++) {
            const bt_table_desc *d = s->tables[i];
            uint64_t v = 0;
            for (size_t k = 0; k < d->n_tablets; k++)
                v += f == 0 ? 1 : f == 1 ? d->tablets[k].memtable_bytes : d->tablets[k].sstable_bytes;
            put(o, "%s{table=\"", names[f]);
            put_label(o, d->name);
            put(o, "\"} %" PRIu64 "\n", v);
        }
    }
}

static void render_cluster(out *o, gw_view *v)
{
    gw_snapshot *s = gw_view_snapshot(v);
    put_family(o, "bt_cluster_up", "gauge", "1 if the master answered the gateway's last status call.");
    put(o, "bt_cluster_up %d\n", s->up ? 1 : 0);
    if (s->at_us > 0) {     /* none before the first fetch */
        put_family(o, "bt_cluster_snapshot_timestamp_seconds", "gauge",
                   "Wall clock of the cluster snapshot these figures come from (Unix seconds).");
        put(o, "bt_cluster_snapshot_timestamp_seconds ");
        put_seconds(o, (uint64_t)s->at_us);
        put(o, "\n");
    }
    if (s->up) {
        const bt_cluster_status *st = s->status;
        static const char *const cnames[] = {"bt_cluster_servers", "bt_cluster_tables", "bt_cluster_tablets",
                                             "bt_cluster_unassigned_tablets"};
        static const char *const chelps[] = {"Live tablet servers.", "User tables.",
                                             "Tablets, METADATA's included.", "Tablets no server serves."};
        uint64_t cv[] = {st->n_servers, st->tables, st->tablets, st->unassigned_tablets};
        for (int i = 0; i < 4; i++) {
            put_family(o, cnames[i], "gauge", chelps[i]);
            put(o, "%s %" PRIu64 "\n", cnames[i], cv[i]);
        }
        static const char *const tnames[] = {"bt_cluster_servers_recovered_total", "bt_cluster_tablets_moved_total",
                                             "bt_cluster_splits_total"};
        static const char *const thelps[] = {"Dead tablet servers the active master recovered.",
                                             "Tablets the active master moved.", "Tablet splits the master saw."};
        uint64_t tv[] = {st->servers_recovered, st->tablets_moved, st->splits};
        for (int i = 0; i < 3; i++) {
            put_family(o, tnames[i], "counter", thelps[i]);
            put(o, "%s %" PRIu64 "\n", tnames[i], tv[i]);
        }
        render_servers(o, s);
        render_tables(o, s);
    }
    gw_snapshot_release(s);
}

int gw_metrics_render(gw_metrics *m, gw_view *v, bt_buf *buf)
{
    out o = {buf, BT_OK};
    if (m) render_requests(&o, m);
    if (v) render_cluster(&o, v);
    return o.rc == BT_OK ? BT_OK : BT_ENOMEM;
}

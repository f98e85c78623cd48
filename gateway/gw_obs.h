/* gateway/gw_obs.h: what bt-gateway shows about itself and the cluster --
 * the request metrics, the cached view of the cluster, the Prometheus text
 * of GET /metrics and the HTML status page of GET /.
 *
 * The HTTP layer (gateway/http.c, gateway/api.c) calls these; they do not
 * know about HTTP.  All functions are thread-safe: the gateway's loop
 * threads call them concurrently.
 */
#ifndef BT_GATEWAY_GW_OBS_H
#define BT_GATEWAY_GW_OBS_H

#include <stdint.h>

#include "client/bt.h"
#include "common/coding.h"

/* ---- request metrics ------------------------------------------------------
 * Endpoint names are fixed strings of the router: "list_tables",
 * "create_table", "get_table", "delete_table", "put_row", "get_row",
 * "delete_row", "scan", "mutations", "check_and_mutate",
 * "read_modify_write", "status", "healthz", "metrics", "status_page",
 * "unknown" (no route matched).  Any other string is counted too. */
typedef struct gw_metrics gw_metrics;

gw_metrics *gw_metrics_new(void);
void gw_metrics_free(gw_metrics *m);

/* Counts one finished request: its endpoint, HTTP status and the time from
 * the request's arrival to its last byte queued, in microseconds. */
void gw_metrics_observe(gw_metrics *m, const char *endpoint, int http_status, uint64_t latency_us);

/* ---- the cluster view -----------------------------------------------------
 * A snapshot of the cluster (bt_cluster_status_get, bt_list_tables and
 * bt_describe_table of each table), fetched at most once per cache_ms so a
 * page refresh or a scrape does not hammer the master; also keeps the
 * previous snapshot's counters to derive per-second rates. */
typedef struct gw_view gw_view;

/* c is borrowed (must outlive the view). cache_ms 0 -> 1000. */
gw_view *gw_view_new(bt_client *c, int cache_ms);
void gw_view_free(gw_view *v);

/* ---- renderings -----------------------------------------------------------
 * Both append to out and return BT_OK, or BT_ENOMEM.  A cluster that cannot
 * be reached is not an error: the metrics say bt_cluster_up 0 and the page
 * says so in a banner. */

/* Prometheus text exposition format 0.0.4: the request metrics of m
 * (counters per endpoint and status class, latency histograms per
 * endpoint), then the cluster's figures from v (per server: tablets,
 * memtable bytes, SSTable bytes, compaction queue, reads and writes per
 * second and their totals; cluster: tables, tablets, unassigned tablets). */
int gw_metrics_render(gw_metrics *m, gw_view *v, bt_buf *out);

typedef struct gw_page_info {
    const char *gateway_address;    /* "127.0.0.1:8080" */
    const char *lock_url;
    int64_t started_us;             /* wall clock when the gateway started */
    int refresh_s;                  /* the page reloads itself; 0 -> 5 */
} gw_page_info;

/* The status page: one self-contained HTML document (inline CSS, no
 * scripts or external assets) listing the master, the servers with their
 * tablets and figures, the tables with their tablets (ranges, servers,
 * sizes) and the master's recent events. */
int gw_status_page_render(gw_view *v, const gw_page_info *info, bt_buf *out);

#endif

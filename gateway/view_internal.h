/* gateway/view_internal.h: the snapshot inside a gw_view (gateway/view.c),
 * read by the renderers (gateway/metrics.c, gateway/status_page.c) and set
 * directly by the unit tests (tests/unit/test_gateway_obs.c).  Not part of
 * the HTTP layer's interface (that is gateway/gw_obs.h).
 */
#ifndef BT_GATEWAY_VIEW_INTERNAL_H
#define BT_GATEWAY_VIEW_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gateway/gw_obs.h"

/* One immutable picture of the cluster.  Reference-counted: a renderer
 * holds it while it writes, so a refresh by another thread never frees it
 * underneath. */
typedef struct gw_snapshot {
    atomic_int refs;
    bool up;                        /* the master answered the status call */
    char error[256];                /* !up: why; up: "" or what failed partially
                                       (listing or describing tables) */
    int64_t at_us;                  /* wall clock of the fetch */
    int64_t mono_us;                /* monotonic clock of the fetch (rates, cache age) */
    int64_t fetch_us;               /* how long the fetch took */
    int64_t last_up_us;             /* wall clock of the last snapshot that was up; 0: never */

    bt_cluster_status *status;      /* NULL when !up */
    /* Per status->servers[i] (NULL when !up or no server): requests per
     * second since the previous snapshot that was up, when rates_known. */
    double *reads_ps, *writes_ps;
    bool *rates_known;

    /* User tables in name order, then METADATA (bt_describe_table each). */
    size_t n_tables;
    bt_table_desc **tables;
} gw_snapshot;

/* The current snapshot, fetched first if older than the view's cache_ms
 * (one fetch at a time: while another thread fetches, a caller gets the
 * previous snapshot, or waits if there is none yet).  Never NULL; release
 * with gw_snapshot_release.  The fetching caller blocks for the fetch, at
 * most the client's deadline (bt_client_options.timeout_ms) per call it
 * makes. */
gw_snapshot *gw_view_snapshot(gw_view *v);
void gw_snapshot_release(gw_snapshot *s);

/* Test hook: installs a snapshot built from st (NULL: the cluster was
 * unreachable, with `error` as the reason) and tables[0..n) as if fetched
 * at at_us (both wall and monotonic clock; rates are derived from the
 * previous snapshot that was up, as after a real fetch).  Takes ownership
 * of st, every tables[i] (freed with bt_cluster_status_free and
 * bt_table_desc_free) and of the array tables (free()d).  A view made with
 * a NULL client never fetches, so the installed snapshot stays current.
 * BT_OK or BT_ENOMEM (everything given is freed then too). */
int gw_view_install(gw_view *v, bt_cluster_status *st, bt_table_desc **tables, size_t n,
                    const char *error, int64_t at_us);

#endif

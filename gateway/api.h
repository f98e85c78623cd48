/* gateway/api.h: the /v1 JSON API of bt-gateway over libbt (design section 9,
 * documented in docs/gateway.md), plus /healthz, /metrics and the status page.
 *
 * gw_api_handle is the gw_handler_fn of the HTTP layer (gateway/http.h): it
 * routes one request (unknown path 404, known path with another method 405
 * with an Allow header), checks and parses its body, calls libbt and
 * answers.  Thread-safe: the loop threads call it concurrently; table
 * handles are opened once per table name and shared (a handle cache that
 * forgets a table when it is dropped or found gone).
 */
#ifndef BT_GATEWAY_API_H
#define BT_GATEWAY_API_H

#include <stdint.h>

#include "client/bt.h"
#include "gateway/gw_obs.h"
#include "gateway/http.h"

typedef struct gw_api gw_api;

typedef struct gw_api_options {
    int max_depth;                  /* JSON nesting of a body; 0 -> 64 */
    const char *gateway_address;    /* "127.0.0.1:8080", for the status page (copied pointer: keep alive) */
    const char *lock_url;           /* likewise */
    int64_t started_us;             /* wall clock */
} gw_api_options;

/* c, m and v are borrowed and must outlive the api.  NULL on ENOMEM. */
gw_api *gw_api_new(bt_client *c, gw_metrics *m, gw_view *v, const gw_api_options *o);
/* Closes the cached table handles.  Call after the HTTP server is freed. */
void gw_api_free(gw_api *a);

/* gw_handler_fn: arg is the gw_api. */
void gw_api_handle(void *arg, gw_req *r);

#endif

/* gateway/api_internal.h: what the files of the /v1 API (api.c, api_rows.c,
 * api_json.c) share.  Not installed, not used outside gateway/api*.c. */
#ifndef BT_GATEWAY_API_INTERNAL_H
#define BT_GATEWAY_API_INTERNAL_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/bt.h"
#include "common/coding.h"
#include "gateway/api.h"
#include "gateway/http.h"

/* The largest --max-depth: cJSON's own nesting limit (CJSON_NESTING_LIMIT). */
#define GW_MAX_DEPTH 1000

/* One cached table handle (see api.c: the handle cache). */
typedef struct gw_tref gw_tref;

struct gw_api {
    bt_client *c;
    gw_metrics *metrics;
    gw_view *view;
    gw_api_options o;
    pthread_mutex_t mu;         /* protects tabs */
    gw_tref **tabs;
    size_t n_tabs, cap_tabs;
};

/* The table handle for name (opened on first use, then shared): BT_OK and
 * *ref / *t, or the bt_table_open error.  Release with gw_table_put. */
int gw_table_get(gw_api *a, const char *name, gw_tref **ref, bt_table **t);
void gw_table_put(gw_api *a, gw_tref *ref);
/* Forgets the cached handle of name (dropped, recreated, gone). */
void gw_table_evict(gw_api *a, const char *name);

/* Answers with the HTTP status and error code of a libbt code, message
 * prefix: bt_errmsg() (read right after the failing call). */
void gw_fail(gw_req *r, int rc, const char *what);
int gw_http_status_of(int rc);
const char *gw_code_of(int rc);

/* ---- text ----------------------------------------------------------------------- */

bool gw_utf8_valid(const uint8_t *p, size_t n);
/* Percent-decodes [p, p+n) into out (binary-safe; '+' stays '+').  -1 on a
 * bad escape. */
int gw_pct_decode(const char *p, size_t n, bt_buf *out);

/* The cheap pass over a request body before cJSON sees it: valid UTF-8,
 * nesting at most max_depth, no \u0000 escape and no raw control byte
 * (< 0x20, RFC 8259) inside a string (cJSON's strings end at NUL; binary
 * data goes in *_b64 fields).  0, or -1 with why (256 bytes). */
int gw_json_prescan(const uint8_t *p, size_t n, int max_depth, char *why);
/* The body parsed as a JSON object (after gw_json_prescan); on failure it
 * answers 400 itself and returns NULL. */
cJSON *gw_parse_body(gw_api *a, gw_req *r);

/* ---- JSON output ---------------------------------------------------------------- */

/* Appends a JSON string of valid UTF-8 bytes. */
int gw_jstr(bt_buf *b, const void *p, size_t n);
/* Appends a JSON string of a message (NUL-terminated) that may hold any
 * bytes: bytes that are not valid UTF-8 are written as the text \xNN. */
int gw_jmsg(bt_buf *b, const char *msg);
int gw_jraw(bt_buf *b, const char *s);
int gw_jprintf(bt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "name":"text" when UTF-8 without NUL bytes, else "name_b64":"base64"; comma first if comma. */
int gw_jbytes(bt_buf *b, bool comma, const char *name, const void *p, size_t n);
/* A row object {"row":..,"cells":[{"column":"cf:q","timestamp":N,"value":..}]}. */
int gw_jrow(bt_buf *b, const bt_row *row);
/* The cells array; ints: 8-byte values also as "int" (big-endian int64). */
int gw_jcells(bt_buf *b, const bt_row *row, bool ints);

/* ---- JSON input ----------------------------------------------------------------- */

/* Reads bytes field `name` of obj: a JSON string "name" or a base64 string
 * "name_b64" (not both).  1 and out filled when present, 0 when absent, -1
 * with why ("<path>.<name>: ...") when malformed. */
int gw_jget_bytes(const cJSON *obj, const char *name, const char *path, bt_buf *out, char *why);
/* Reads a column "cf:q" (field "column" or "column_b64") into family (65
 * bytes) and qual.  Same returns; a missing ':' or a bad family is -1. */
int gw_jget_column(const cJSON *obj, const char *path, char *family, bt_buf *qual, char *why);
/* Integer field: 1 present, 0 absent, -1 not an integer in [min, max]. */
int gw_jget_int(const cJSON *obj, const char *name, const char *path, int64_t min, int64_t max, int64_t *out,
                char *why);

/* Appends the changes of obj's "cells" and "deletes" arrays to m (see
 * docs/gateway.md); at least one change unless allow_empty.  0 or -1 with why. */
int gw_parse_mutation(const cJSON *obj, const char *path, bt_mutation *m, bool allow_empty, char *why);

/* ---- query strings --------------------------------------------------------------- */

#define GW_MAX_PARAMS 32
typedef struct gw_query {
    struct { const char *k; size_t kl; const char *v; size_t vl; } p[GW_MAX_PARAMS];
    int n;
} gw_query;
/* Splits the query part (after '?', may be NULL).  -1 when too many. */
int gw_query_parse(const char *q, gw_query *out);
/* Raw (still encoded) value of key, or NULL (*len set). */
const char *gw_query_raw(const gw_query *q, const char *key, size_t *len);
/* Decoded value: 1 present, 0 absent, -1 bad escape. */
int gw_query_get(const gw_query *q, const char *key, bt_buf *out);
/* Unsigned integer value in [min, max]: 1 present, 0 absent, -1 bad. */
int gw_query_uint(const gw_query *q, const char *key, uint64_t min, uint64_t max, uint64_t *out);

/* A read filter from columns=cf:q,cf2 (each element percent-encoded),
 * versions=N, start_ts=, end_ts=.  *f NULL when nothing restricts.  0, or -1
 * with why. */
int gw_filter_from_query(const gw_query *q, bt_filter **f, char *why);

/* ---- endpoints (api_rows.c) ------------------------------------------------------- */

void gw_ep_put_row(gw_api *a, gw_req *r, const char *table, const bt_buf *row);
void gw_ep_get_row(gw_api *a, gw_req *r, const char *table, const bt_buf *row, const gw_query *q);
void gw_ep_delete_row(gw_api *a, gw_req *r, const char *table, const bt_buf *row, const gw_query *q);
void gw_ep_scan(gw_api *a, gw_req *r, const char *table, const gw_query *q);
void gw_ep_mutations(gw_api *a, gw_req *r, const char *table);
void gw_ep_check_and_mutate(gw_api *a, gw_req *r, const char *table, const bt_buf *row);
void gw_ep_rmw(gw_api *a, gw_req *r, const char *table, const bt_buf *row);

/* The outcome of bt_apply_batch (rc, status[] of n rows): 0 when the answer
 * is the per-row results (200), else the HTTP status of failing the whole
 * request -- when rc is an error no row records (e.g. out of memory before
 * any row was tried), or every row failed as unavailable (503). */
int gw_batch_failure_status(int rc, const int *status, size_t n);

/* Replies 200 with the JSON in b (then frees it) or 500 on ENOMEM (rc). */
void gw_reply_json(gw_req *r, int status, bt_buf *b, int rc);

#endif

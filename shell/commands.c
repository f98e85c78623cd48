/* shell/commands.c: bt-shell's commands (see shell/commands.h; the user's
 * reference is docs/shell.md).
 *
 * Every command is a function over the public SDK (client/bt.h), except
 * `lock ls|cat`, which read the lock service's namespace (lockservice/lock.h).
 * A command either fails (a negative code and a message in c->msg, which
 * always carries bt_errmsg() when the SDK failed) or prints its result
 * through emit_table/emit_done, which add the "(N rows, T ms)" footer in
 * text mode.
 */
#include "shell/commands.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/coding.h"
#include "common/status.h"
#include "shell/format.h"

/* ---- small helpers ------------------------------------------------------------- */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int fail(sh_ctx *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(sh_ctx *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    return rc < 0 ? rc : BT_EINVAL;
}

/* The SDK's detail for rc (bt_errmsg), else the code's text. */
static const char *detail(int rc)
{
    const char *m = bt_errmsg();
    return m && *m ? m : bt_strerror(rc);
}

static int fail_bt(sh_ctx *c, int rc) { return fail(c, rc, "%s", detail(rc)); }

/* w for messages, in double quotes, escaped as sh_escape does (static
 * buffer: one use per message). */
static const char *show(const sh_word *w)
{
    static char buf[256];
    bt_buf b = {0};
    if (sh_escape((const uint8_t *)w->s, w->n, false, &b) || bt_buf_append(&b, "", 1)) {
        bt_buf_free(&b);
        return "?";
    }
    const char *e = (const char *)b.data;
    if (e[0] == '"') snprintf(buf, sizeof buf, "%s", e);
    else snprintf(buf, sizeof buf, "\"%s\"", e);
    bt_buf_free(&b);
    return buf;
}

/* A word that must be a name (no NUL byte). */
static int name_arg(sh_ctx *c, const sh_word *w, const char *what, const char **out)
{
    *out = "";
    if (w->n == 0 || strlen(w->s) != w->n) return fail(c, BT_EINVAL, "bad %s name %s", what, show(w));
    *out = w->s;
    return BT_OK;
}

static int parse_i64(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 24 || strlen(s) < n) return BT_EINVAL;
    char buf[32];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end = NULL;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end || end == buf) return BT_EINVAL;
    *out = v;
    return BT_OK;
}

static int parse_u32(const char *s, size_t n, uint32_t *out)
{
    int64_t v;
    if (parse_i64(s, n, &v) || v < 0 || v > UINT32_MAX) return BT_EINVAL;
    *out = (uint32_t)v;
    return BT_OK;
}

static int parse_dur(const char *s, size_t n, int64_t *us)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf || memchr(s, '\0', n)) return BT_EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return sh_parse_duration(buf, us);
}

/* "7d", "90s", "250ms" or "Nus" for a duration; "forever" for 0. */
static void fmt_dur(int64_t us, char *buf, size_t cap)
{
    static const struct { int64_t us; const char *unit; } units[] = {
        { 86400000000LL, "d" }, { 3600000000LL, "h" }, { 60000000LL, "m" }, { 1000000LL, "s" }, { 1000LL, "ms" },
    };
    if (us == 0) { snprintf(buf, cap, "forever"); return; }
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (us % units[i].us == 0) { snprintf(buf, cap, "%" PRId64 "%s", us / units[i].us, units[i].unit); return; }
    snprintf(buf, cap, "%" PRId64 "us", us);
}

/* ---- output ------------------------------------------------------------------ */

static void footer(sh_ctx *c, size_t rows)
{
    if (!c->json) sh_print_footer(c->out, rows, now_us() - c->t0_us);
}

/* Prints t (text or JSON) and the footer with `rows` (SIZE_MAX: t's rows). */
static int emit_table(sh_ctx *c, sh_table *t, size_t rows)
{
    if (rows == SIZE_MAX) rows = sh_table_rows(t);
    if (c->json) sh_table_print_json(t, c->out);
    else sh_table_print(t, c->out);
    footer(c, rows);
    sh_table_free(t);
    return BT_OK;
}

static int emit_done(sh_ctx *c, size_t rows)
{
    footer(c, rows);
    return BT_OK;
}

static sh_table *new_table(int n, const char *const *headers)
{
    return sh_table_new(n, headers);
}

/* ---- connections ----------------------------------------------------------------- */

void sh_ctx_init(sh_ctx *c)
{
    memset(c, 0, sizeof *c);
    c->lock_url = SH_DEFAULT_LOCK;
    c->out = stdout;
    c->err = stderr;
}

void sh_ctx_close(sh_ctx *c)
{
    bt_close(c->client);
    c->client = NULL;
    lk_close(c->lock);
    c->lock = NULL;
}

#define SH_HINT "is a cluster running? start one with `make run`, or pass --lock URL (or set BT_LOCK)"

int sh_connect(sh_ctx *c)
{
    if (c->client) return BT_OK;
    bt_client_options po = { .timeout_ms = c->probe_ms ? c->probe_ms : 3000 };
    po.rpc_timeout_ms = po.timeout_ms;
    bt_client *probe = NULL;
    int rc = bt_connect(c->lock_url, &po, &probe);
    if (rc == BT_EUNAVAIL) {
        /* the name of the error is enough: the URL is already in the message */
        c->no_cluster = true;
        return fail(c, rc, "no cluster answers at %s: its lock service is unreachable (%s)\n  " SH_HINT,
                    c->lock_url, bt_errname(rc));
    }
    if (rc) {
        c->no_cluster = true;
        return fail(c, rc, "cannot connect to %s: %s\n  " SH_HINT, c->lock_url, detail(rc));
    }
    bt_cluster_status *st = NULL;
    rc = bt_cluster_status_get(probe, &st);
    bt_close(probe);
    if (rc) {
        c->no_cluster = true;
        return fail(c, rc, "no cluster answers at %s: %s\n  " SH_HINT, c->lock_url, detail(rc));
    }
    bt_cluster_status_free(st);
    bt_client_options o = { .timeout_ms = c->timeout_ms };
    rc = bt_connect(c->lock_url, &o, &c->client);
    if (rc) {
        c->no_cluster = true;
        return fail(c, rc, "cannot connect to %s: %s\n  " SH_HINT, c->lock_url, detail(rc));
    }
    return BT_OK;
}

static int need_lock(sh_ctx *c)
{
    if (c->lock) return BT_OK;
    lk_options o = { .timeout_ms = (uint32_t)(c->probe_ms ? c->probe_ms : 3000) };
    int rc = lk_open(c->lock_url, &o, &c->lock);
    if (rc) {
        c->no_cluster = true;
        return fail(c, rc, "cannot reach the lock service at %s: %s\n  " SH_HINT, c->lock_url, detail(rc));
    }
    return BT_OK;
}

static int open_table(sh_ctx *c, const sh_word *w, bt_table **t)
{
    const char *name;
    int rc = name_arg(c, w, "table", &name);
    if (rc) return rc;
    rc = bt_table_open(c->client, name, t);
    return rc ? fail_bt(c, rc) : BT_OK;
}

int sh_list_tables(sh_ctx *c, char ***names, size_t *n)
{
    if (!c->client) return BT_ECLOSED;
    return bt_list_tables(c->client, names, n);
}

int sh_list_families(sh_ctx *c, const char *table, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    if (!c->client) return BT_ECLOSED;
    bt_table_desc *d = NULL;
    int rc = bt_describe_table(c->client, table, &d);
    if (rc) return rc;
    size_t nf = bt_schema_n_families(d->schema);
    char **v = calloc(nf + 1, sizeof *v);
    if (!v) { bt_table_desc_free(d); return BT_ENOMEM; }
    for (size_t i = 0; i < nf; i++) {
        bt_family_info fi;
        if (bt_schema_family(d->schema, i, &fi) == BT_OK) v[(*n)++] = strdup(fi.name);
    }
    bt_table_desc_free(d);
    *names = v;
    return BT_OK;
}

/* ---- column lists and cells ------------------------------------------------------- */

/* Splits "cf:q" (bytes) at its first ':'; family copied into fam (65 bytes).
 * has_q false when there is no ':' (a whole family). */
static int split_column(sh_ctx *c, const char *p, size_t n, char *fam, const char **q, size_t *ql, bool *has_q)
{
    const char *colon = memchr(p, ':', n);
    size_t fl = colon ? (size_t)(colon - p) : n;
    if (fl == 0 || fl > 64 || memchr(p, '\0', fl)) {
        bt_buf b = {0};
        sh_escape((const uint8_t *)p, n, false, &b);
        bt_buf_append(&b, "", 1);
        fail(c, BT_EINVAL, "bad column %s (want family or family:qualifier)", b.data ? (char *)b.data : "?");
        bt_buf_free(&b);
        return BT_EINVAL;
    }
    memcpy(fam, p, fl);
    fam[fl] = '\0';
    *has_q = colon != NULL;
    *q = colon ? colon + 1 : p + n;
    *ql = colon ? n - fl - 1 : 0;
    return BT_OK;
}

/* Adds "cf:q,cf2,..." to the filter. */
static int add_columns(sh_ctx *c, bt_filter *f, const char *p, size_t n)
{
    size_t i = 0;
    while (i <= n) {
        const char *comma = memchr(p + i, ',', n - i);
        size_t end = comma ? (size_t)(comma - p) : n;
        if (end > i) {
            char fam[65];
            const char *q;
            size_t ql;
            bool has_q;
            int rc = split_column(c, p + i, end - i, fam, &q, &ql, &has_q);
            if (rc) return rc;
            rc = has_q ? bt_filter_column(f, fam, q, ql) : bt_filter_family(f, fam);
            if (rc) return fail_bt(c, rc);
        }
        if (!comma) break;
        i = end + 1;
    }
    return BT_OK;
}

static const char *const cell_headers[] = {"row", "column", "timestamp", "value"};

/* Adds one line per cell of r. */
static int add_row_cells(sh_table *t, const bt_row *r, bool int_values)
{
    bt_buf col = {0};
    int rc = BT_OK;
    for (size_t i = 0; i < r->n_cells && rc == BT_OK; i++) {
        const bt_cell *cl = &r->cells[i];
        bt_buf_clear(&col);
        rc = bt_buf_append(&col, cl->family, cl->family_len);
        if (!rc) rc = bt_buf_append(&col, ":", 1);
        if (!rc) rc = bt_buf_append(&col, cl->qualifier, cl->qualifier_len);
        if (rc) break;
        char ts[32], num[32];
        snprintf(ts, sizeof ts, "%" PRId64, cl->timestamp);
        const char *cells[4] = {(const char *)r->key, (const char *)col.data, ts, (const char *)cl->value};
        size_t lens[4] = {r->key_len, col.len, strlen(ts), cl->value_len};
        if (int_values && cl->value_len == 8) {
            snprintf(num, sizeof num, "%" PRId64, (int64_t)bt_get_fixed64_be(cl->value));
            cells[3] = num;
            lens[3] = strlen(num);
        }
        rc = sh_table_add(t, cells, lens);
    }
    bt_buf_free(&col);
    return rc;
}

/* ---- tables -------------------------------------------------------------------- */

static int cmd_ls(sh_ctx *c, const sh_cmd *cmd)
{
    (void)cmd;
    char **names = NULL;
    size_t n = 0;
    int rc = bt_list_tables(c->client, &names, &n);
    if (rc) return fail_bt(c, rc);
    static const char *const h[] = {"table"};
    sh_table *t = new_table(1, h);
    for (size_t i = 0; t && i < n; i++) {
        const char *cells[1] = {names[i]};
        sh_table_add(t, cells, NULL);
    }
    bt_free_names(names, n);
    if (!t) return fail(c, BT_ENOMEM, "out of memory");
    return emit_table(c, t, SIZE_MAX);
}

/* "cf[:maxversions=N][:maxage=D][:gc=union|intersection]": the family and its
 * options.  *inter is set only when gc= is given (*has_gc). */
typedef struct fam_spec {
    char name[65];
    uint32_t max_versions;
    int64_t max_age_us;
    bool has_versions, has_age, has_gc, intersection;
} fam_spec;

static int parse_opt(sh_ctx *c, fam_spec *fs, const char *p, size_t n)
{
    const char *eq = memchr(p, '=', n);
    if (!eq) return fail(c, BT_EINVAL, "family option \"%.*s\" needs a value (maxversions=N, maxage=DURATION, "
                                       "gc=union|intersection)", (int)n, p);
    size_t kl = (size_t)(eq - p), vl = n - kl - 1;
    const char *v = eq + 1;
    if (kl == 11 && !memcmp(p, "maxversions", 11)) {
        if (parse_u32(v, vl, &fs->max_versions))
            return fail(c, BT_EINVAL, "maxversions=%.*s: not a number in [0, 4294967295]", (int)vl, v);
        fs->has_versions = true;
    } else if (kl == 6 && !memcmp(p, "maxage", 6)) {
        if (parse_dur(v, vl, &fs->max_age_us))
            return fail(c, BT_EINVAL, "maxage=%.*s: not a duration (250ms, 30s, 5m, 2h, 7d or seconds)", (int)vl, v);
        fs->has_age = true;
    } else if (kl == 2 && !memcmp(p, "gc", 2)) {
        if (vl == 5 && !memcmp(v, "union", 5)) fs->intersection = false;
        else if (vl == 12 && !memcmp(v, "intersection", 12)) fs->intersection = true;
        else return fail(c, BT_EINVAL, "gc=%.*s: want gc=union or gc=intersection", (int)vl, v);
        fs->has_gc = true;
    } else {
        return fail(c, BT_EINVAL, "unknown family option \"%.*s\" (maxversions=N, maxage=DURATION, "
                                  "gc=union|intersection)", (int)kl, p);
    }
    return BT_OK;
}

static int parse_family_spec(sh_ctx *c, const sh_word *w, fam_spec *fs)
{
    memset(fs, 0, sizeof *fs);
    const char *p = w->s;
    size_t n = w->n;
    const char *colon = memchr(p, ':', n);
    size_t fl = colon ? (size_t)(colon - p) : n;
    if (fl == 0 || fl > 64 || memchr(p, '\0', fl)) return fail(c, BT_EINVAL, "bad family %s", show(w));
    memcpy(fs->name, p, fl);
    while (colon) {
        const char *o = colon + 1;
        size_t rest = n - (size_t)(o - p);
        colon = memchr(o, ':', rest);
        size_t ol = colon ? (size_t)(colon - o) : rest;
        int rc = parse_opt(c, fs, o, ol);
        if (rc) return rc;
    }
    return BT_OK;
}

static bool word_is_kv(const sh_word *w, const char *key, const char **v, size_t *vl)
{
    const char *k;
    size_t kl;
    return sh_kv(w, &k, &kl, v, vl) && kl == strlen(key) && !memcmp(k, key, kl);
}

static int cmd_create(sh_ctx *c, const sh_cmd *cmd)
{
    const char *name;
    int rc = name_arg(c, &cmd->w[1], "table", &name);
    if (rc) return rc;
    bt_schema *s = bt_schema_new();
    bt_key *splits = NULL;
    size_t n_splits = 0;
    if (!s) return fail(c, BT_ENOMEM, "out of memory");
    for (size_t i = 2; i < cmd->n && rc == BT_OK; i++) {
        const char *v;
        size_t vl;
        if (word_is_kv(&cmd->w[i], "splits", &v, &vl)) {
            free(splits);
            splits = calloc(vl + 1, sizeof *splits);
            n_splits = 0;
            if (!splits) { rc = fail(c, BT_ENOMEM, "out of memory"); break; }
            size_t at = 0;
            while (at <= vl) {
                const char *comma = memchr(v + at, ',', vl - at);
                size_t end = comma ? (size_t)(comma - v) : vl;
                if (end > at) splits[n_splits++] = (bt_key){v + at, end - at};
                if (!comma) break;
                at = end + 1;
            }
            continue;
        }
        fam_spec fs;
        rc = parse_family_spec(c, &cmd->w[i], &fs);
        if (rc) break;
        rc = bt_schema_add_family(s, fs.name, fs.max_versions, fs.max_age_us);
        if (!rc && fs.has_gc) rc = bt_schema_set_gc_intersection(s, fs.name, fs.intersection);
        if (rc) rc = fail_bt(c, rc);
    }
    if (rc == BT_OK && bt_schema_n_families(s) == 0)
        rc = fail(c, BT_EINVAL, "table %s needs at least one family (create <table> <family>...)", name);
    if (rc == BT_OK) {
        rc = bt_create_table(c->client, name, s, splits, n_splits);
        if (rc) rc = fail_bt(c, rc);
    }
    bt_schema_free(s);
    free(splits);
    return rc ? rc : emit_done(c, 0);
}

static int cmd_describe(sh_ctx *c, const sh_cmd *cmd)
{
    const char *name;
    int rc = name_arg(c, &cmd->w[1], "table", &name);
    if (rc) return rc;
    bt_table_desc *d = NULL;
    rc = bt_describe_table(c->client, name, &d);
    if (rc) return fail_bt(c, rc);
    static const char *const h[] = {"family", "max_versions", "max_age", "gc", "group",
                                    "compression", "in_memory", "bloom", "block_size"};
    sh_table *t = new_table(9, h);
    size_t nf = bt_schema_n_families(d->schema), ng = bt_schema_n_groups(d->schema);
    for (size_t i = 0; t && i < nf; i++) {
        bt_family_info fi;
        if (bt_schema_family(d->schema, i, &fi)) continue;
        bt_group_info gi = {0};
        for (size_t g = 0; g < ng; g++) {
            bt_group_info x;
            if (bt_schema_group(d->schema, g, &x) == BT_OK && fi.group && !strcmp(x.name, fi.group)) gi = x;
        }
        char mv[24], age[32], bs[24];
        if (fi.max_versions) snprintf(mv, sizeof mv, "%" PRIu32, fi.max_versions);
        else snprintf(mv, sizeof mv, "all");
        fmt_dur(fi.max_age_us, age, sizeof age);
        snprintf(bs, sizeof bs, "%" PRIu32, gi.block_size ? gi.block_size : 4096);
        const char *bloom = gi.bloom == BT_BLOOM_ROW ? "row" : gi.bloom == BT_BLOOM_ROW_COLUMN ? "row+column" : "none";
        const char *cells[9] = {fi.name, mv, age, fi.gc_intersection ? "intersection" : "union",
                                fi.group ? fi.group : "", gi.compress ? "snappy" : "none",
                                gi.in_memory ? "yes" : "no", bloom, bs};
        sh_table_add(t, cells, NULL);
    }
    size_t tablets = d->n_tablets;
    bt_table_desc_free(d);
    if (!t) return fail(c, BT_ENOMEM, "out of memory");
    if (!c->json) fprintf(c->out, "table %s: %zu tablet%s (see: tablets %s)\n", name, tablets,
                          tablets == 1 ? "" : "s", name);
    return emit_table(c, t, SIZE_MAX);
}

static int cmd_alter(sh_ctx *c, const sh_cmd *cmd)
{
    const char *name;
    int rc = name_arg(c, &cmd->w[1], "table", &name);
    if (rc) return rc;
    const char *op = cmd->w[2].s;
    if (!strcmp(op, "add")) {
        for (size_t i = 3; i < cmd->n; i++) {
            fam_spec fs;
            if ((rc = parse_family_spec(c, &cmd->w[i], &fs))) return rc;
            if ((rc = bt_alter_add_family(c->client, name, fs.name, fs.max_versions, fs.max_age_us)))
                return fail_bt(c, rc);
            if (fs.has_gc && (rc = bt_alter_gc(c->client, name, fs.name, fs.max_versions, fs.max_age_us,
                                               fs.intersection)))
                return fail_bt(c, rc);
        }
        return emit_done(c, 0);
    }
    if (!strcmp(op, "drop")) {
        for (size_t i = 3; i < cmd->n; i++) {
            const char *fam;
            if ((rc = name_arg(c, &cmd->w[i], "family", &fam))) return rc;
            if ((rc = bt_alter_drop_family(c->client, name, fam))) return fail_bt(c, rc);
        }
        return emit_done(c, 0);
    }
    if (!strcmp(op, "gc")) {
        const char *fam;
        if ((rc = name_arg(c, &cmd->w[3], "family", &fam))) return rc;
        if (strchr(fam, ':')) return fail(c, BT_EINVAL, "alter gc: write the family, then its rules: "
                                                        "alter %s gc <family> maxversions=N maxage=DURATION", name);
        /* start from the family's current rules: only what is given changes */
        bt_table_desc *d = NULL;
        if ((rc = bt_describe_table(c->client, name, &d))) return fail_bt(c, rc);
        fam_spec fs = {0};
        bool found = false;
        for (size_t i = 0; i < bt_schema_n_families(d->schema); i++) {
            bt_family_info fi;
            if (bt_schema_family(d->schema, i, &fi) == BT_OK && !strcmp(fi.name, fam)) {
                fs.max_versions = fi.max_versions;
                fs.max_age_us = fi.max_age_us;
                fs.intersection = fi.gc_intersection;
                found = true;
            }
        }
        bt_table_desc_free(d);
        if (!found) return fail(c, BT_ENOTFOUND, "table %s has no family %s", name, fam);
        for (size_t i = 4; i < cmd->n; i++)
            if ((rc = parse_opt(c, &fs, cmd->w[i].s, cmd->w[i].n))) return rc;
        if (!fs.has_versions && !fs.has_age && !fs.has_gc)
            return fail(c, BT_EINVAL, "usage: alter <table> gc <family> maxversions=N|maxage=DURATION|"
                                      "gc=union|intersection...");
        if ((rc = bt_alter_gc(c->client, name, fam, fs.max_versions, fs.max_age_us, fs.intersection)))
            return fail_bt(c, rc);
        return emit_done(c, 0);
    }
    return fail(c, BT_EINVAL, "unknown alter operation %s (add, drop or gc)", show(&cmd->w[2]));
}

static int cmd_drop(sh_ctx *c, const sh_cmd *cmd)
{
    const char *name = NULL;
    bool yes = false;
    for (size_t i = 1; i < cmd->n; i++) {
        if (!strcmp(cmd->w[i].s, "-y") || !strcmp(cmd->w[i].s, "--yes")) { yes = true; continue; }
        if (name) return fail(c, BT_EINVAL, "usage: drop <table> [-y]");
        int rc = name_arg(c, &cmd->w[i], "table", &name);
        if (rc) return rc;
    }
    if (!name) return fail(c, BT_EINVAL, "usage: drop <table> [-y]");
    if (c->confirm && !yes) {
        char q[160];
        snprintf(q, sizeof q, "drop table %s and all its data? [y/N] ", name);
        if (!c->ask || !c->ask(c->ask_arg, q)) {
            fprintf(c->out, "not dropped\n");
            return BT_OK;
        }
    }
    int rc = bt_delete_table(c->client, name);
    if (rc) return fail_bt(c, rc);
    return emit_done(c, 0);
}

/* ---- data ---------------------------------------------------------------------- */

static int cmd_put(sh_ctx *c, const sh_cmd *cmd)
{
    int64_t ts = BT_SERVER_TIME;
    for (size_t i = 3; i < cmd->n; i++) {
        const char *v;
        size_t vl;
        if (word_is_kv(&cmd->w[i], "ts", &v, &vl) && parse_i64(v, vl, &ts))
            return fail(c, BT_EINVAL, "ts=%.*s: not an integer (microseconds)", (int)vl, v);
    }
    bt_table *t = NULL;
    int rc = open_table(c, &cmd->w[1], &t);
    if (rc) return rc;
    bt_mutation *m = bt_mutation_new(cmd->w[2].s, cmd->w[2].n);
    if (!m) { bt_table_close(t); return fail(c, BT_ENOMEM, "out of memory"); }
    for (size_t i = 3; i < cmd->n && rc == BT_OK; i++) {
        const sh_word *w = &cmd->w[i];
        const char *k, *v;
        size_t kl, vl;
        if (word_is_kv(w, "ts", &v, &vl)) continue;
        if (!sh_kv(w, &k, &kl, &v, &vl) || !memchr(k, ':', kl)) {
            rc = fail(c, BT_EINVAL, "%s: want <family:qualifier>=<value> (quote a '=' that belongs to the "
                                    "qualifier)", show(w));
            break;
        }
        char fam[65];
        const char *q;
        size_t ql;
        bool has_q;
        if ((rc = split_column(c, k, kl, fam, &q, &ql, &has_q))) break;
        if ((rc = bt_mutation_set(m, fam, q, ql, ts, v, vl))) rc = fail_bt(c, rc);
    }
    if (rc == BT_OK && bt_mutation_len(m) == 0)
        rc = fail(c, BT_EINVAL, "nothing to write (put <table> <row> <family:qualifier>=<value>...)");
    if (rc == BT_OK && (rc = bt_apply(t, m))) rc = fail_bt(c, rc);
    bt_mutation_free(m);
    bt_table_close(t);
    return rc ? rc : emit_done(c, 1);
}

/* Options of get/scan/count: start= end= prefix= columns= limit= versions=. */
typedef struct read_opts {
    const char *start, *end, *prefix;
    size_t start_len, end_len, prefix_len;
    uint64_t limit;
    uint32_t versions;
    bool versions_set;
    bt_filter *f;
    bool has_columns;
} read_opts;

/* allowed: a string of option names ("start end prefix columns limit versions"). */
static int parse_read_opts(sh_ctx *c, const sh_cmd *cmd, size_t from, const char *allowed, read_opts *o)
{
    memset(o, 0, sizeof *o);
    o->versions = 1;
    o->f = bt_filter_new();
    if (!o->f) return fail(c, BT_ENOMEM, "out of memory");
    for (size_t i = from; i < cmd->n; i++) {
        const sh_word *w = &cmd->w[i];
        const char *k, *v;
        size_t kl, vl;
        char key[16] = "";
        if (sh_kv(w, &k, &kl, &v, &vl) && kl < sizeof key) {
            memcpy(key, k, kl);
            key[kl] = '\0';
        }
        const char *hit = key[0] ? strstr(allowed, key) : NULL;
        bool ok = hit && (hit == allowed || hit[-1] == ' ') && (hit[kl] == ' ' || hit[kl] == '\0');
        if (!ok) return fail(c, BT_EINVAL, "unknown option %s (options: %s, each as name=value)", show(w), allowed);
        if (!strcmp(key, "start")) { o->start = v; o->start_len = vl; }
        else if (!strcmp(key, "end")) { o->end = v; o->end_len = vl; }
        else if (!strcmp(key, "prefix")) { o->prefix = v; o->prefix_len = vl; }
        else if (!strcmp(key, "columns")) {
            int rc = add_columns(c, o->f, v, vl);
            if (rc) return rc;
            o->has_columns = true;
        } else if (!strcmp(key, "limit")) {
            int64_t n;
            if (parse_i64(v, vl, &n) || n < 0) return fail(c, BT_EINVAL, "limit=%.*s: not a count", (int)vl, v);
            o->limit = (uint64_t)n;
        } else if (!strcmp(key, "versions")) {
            if (parse_u32(v, vl, &o->versions) || o->versions == 0)
                return fail(c, BT_EINVAL, "versions=%.*s: not a number >= 1", (int)vl, v);
            o->versions_set = true;
        }
    }
    return BT_OK;
}

static int cmd_get(sh_ctx *c, const sh_cmd *cmd)
{
    read_opts o;
    int rc = parse_read_opts(c, cmd, 3, "columns versions", &o);
    bt_table *t = NULL;
    if (rc == BT_OK) rc = open_table(c, &cmd->w[1], &t);
    if (rc == BT_OK && (rc = bt_filter_versions(o.f, o.versions))) rc = fail_bt(c, rc);
    bt_row *r = NULL;
    if (rc == BT_OK) {
        rc = bt_read_row(t, cmd->w[2].s, cmd->w[2].n, o.f, &r);
        if (rc == BT_ENOTFOUND && bt_errmsg()[0] && strstr(bt_errmsg(), "has no family")) rc = fail_bt(c, rc);
        else if (rc == BT_ENOTFOUND) { rc = BT_OK; r = NULL; }
        else if (rc) rc = fail_bt(c, rc);
    }
    bt_filter_free(o.f);
    bt_table_close(t);
    if (rc) return rc;
    sh_table *tb = new_table(4, cell_headers);
    if (!tb) { bt_row_free(r); return fail(c, BT_ENOMEM, "out of memory"); }
    if (r) add_row_cells(tb, r, false);
    bt_row_free(r);
    return emit_table(c, tb, r ? 1 : 0);
}

static int cmd_scan(sh_ctx *c, const sh_cmd *cmd)
{
    read_opts o;
    int rc = parse_read_opts(c, cmd, 2, "start end prefix columns limit versions", &o);
    bt_table *t = NULL;
    if (rc == BT_OK) rc = open_table(c, &cmd->w[1], &t);
    if (rc == BT_OK && (rc = bt_filter_versions(o.f, o.versions))) rc = fail_bt(c, rc);
    bt_scanner *s = NULL;
    if (rc == BT_OK) {
        bt_scan_options so = {.start = o.start, .start_len = o.start_len, .end = o.end, .end_len = o.end_len,
                              .prefix = o.prefix, .prefix_len = o.prefix_len, .filter = o.f, .limit = o.limit};
        if ((rc = bt_scan_open(t, &so, &s))) rc = fail_bt(c, rc);
    }
    sh_table *tb = rc ? NULL : new_table(4, cell_headers);
    if (rc == BT_OK && !tb) rc = fail(c, BT_ENOMEM, "out of memory");
    size_t rows = 0;
    const bt_row *r;
    while (rc == BT_OK) {
        int nrc = bt_scanner_next(s, &r);
        if (nrc == BT_ENOTFOUND) break;
        if (nrc) { rc = fail_bt(c, nrc); break; }
        rows++;
        if (add_row_cells(tb, r, false)) rc = fail(c, BT_ENOMEM, "out of memory");
    }
    bt_scanner_close(s);
    bt_filter_free(o.f);
    bt_table_close(t);
    if (rc) { sh_table_free(tb); return rc; }
    return emit_table(c, tb, rows);
}

static int cmd_delete(sh_ctx *c, const sh_cmd *cmd)
{
    bt_table *t = NULL;
    int rc = open_table(c, &cmd->w[1], &t);
    if (rc) return rc;
    bt_mutation *m = bt_mutation_new(cmd->w[2].s, cmd->w[2].n);
    if (!m) { bt_table_close(t); return fail(c, BT_ENOMEM, "out of memory"); }
    if (cmd->n == 3 && (rc = bt_mutation_delete_row(m))) rc = fail_bt(c, rc);
    for (size_t i = 3; i < cmd->n && rc == BT_OK; i++) {
        char fam[65];
        const char *q;
        size_t ql;
        bool has_q;
        if ((rc = split_column(c, cmd->w[i].s, cmd->w[i].n, fam, &q, &ql, &has_q))) break;
        rc = has_q ? bt_mutation_delete_cells(m, fam, q, ql, 0, 0) : bt_mutation_delete_family(m, fam);
        if (rc) rc = fail_bt(c, rc);
    }
    if (rc == BT_OK && (rc = bt_apply(t, m))) rc = fail_bt(c, rc);
    bt_mutation_free(m);
    bt_table_close(t);
    return rc ? rc : emit_done(c, 1);
}

/* incr/append: one read-modify-write rule on one column; prints the new cell. */
static int rmw(sh_ctx *c, const sh_cmd *cmd, bool incr)
{
    int64_t delta = 1;
    if (incr && cmd->n > 4 && parse_i64(cmd->w[4].s, cmd->w[4].n, &delta))
        return fail(c, BT_EINVAL, "%s: not an integer", show(&cmd->w[4]));
    char fam[65];
    const char *q;
    size_t ql;
    bool has_q;
    int rc = split_column(c, cmd->w[3].s, cmd->w[3].n, fam, &q, &ql, &has_q);
    if (rc) return rc;
    if (!has_q) return fail(c, BT_EINVAL, "%s: want family:qualifier", show(&cmd->w[3]));
    bt_table *t = NULL;
    if ((rc = open_table(c, &cmd->w[1], &t))) return rc;
    bt_rmw *r = bt_rmw_new();
    bt_row *out = NULL;
    if (!r) rc = fail(c, BT_ENOMEM, "out of memory");
    if (rc == BT_OK) {
        rc = incr ? bt_rmw_increment(r, fam, q, ql, delta)
                  : bt_rmw_append(r, fam, q, ql, cmd->w[4].s, cmd->w[4].n);
        if (rc) rc = fail_bt(c, rc);
    }
    if (rc == BT_OK && (rc = bt_read_modify_write(t, cmd->w[2].s, cmd->w[2].n, r, &out))) rc = fail_bt(c, rc);
    bt_rmw_free(r);
    bt_table_close(t);
    if (rc) return rc;
    sh_table *tb = new_table(4, cell_headers);
    if (tb && out) add_row_cells(tb, out, incr);
    bt_row_free(out);
    if (!tb) return fail(c, BT_ENOMEM, "out of memory");
    return emit_table(c, tb, 1);
}

static int cmd_incr(sh_ctx *c, const sh_cmd *cmd) { return rmw(c, cmd, true); }
static int cmd_append(sh_ctx *c, const sh_cmd *cmd) { return rmw(c, cmd, false); }

static int cmd_count(sh_ctx *c, const sh_cmd *cmd)
{
    read_opts o;
    int rc = parse_read_opts(c, cmd, 2, "prefix start end", &o);
    bt_table *t = NULL;
    if (rc == BT_OK) rc = open_table(c, &cmd->w[1], &t);
    if (rc == BT_OK && ((rc = bt_filter_cells_per_row(o.f, 1)) || (rc = bt_filter_strip_value(o.f))))
        rc = fail_bt(c, rc);
    bt_scanner *s = NULL;
    if (rc == BT_OK) {
        bt_scan_options so = {.start = o.start, .start_len = o.start_len, .end = o.end, .end_len = o.end_len,
                              .prefix = o.prefix, .prefix_len = o.prefix_len, .filter = o.f};
        if ((rc = bt_scan_open(t, &so, &s))) rc = fail_bt(c, rc);
    }
    uint64_t n = 0;
    const bt_row *r;
    while (rc == BT_OK) {
        int nrc = bt_scanner_next(s, &r);
        if (nrc == BT_ENOTFOUND) break;
        if (nrc) rc = fail_bt(c, nrc);
        else n++;
    }
    bt_scanner_close(s);
    bt_filter_free(o.f);
    bt_table_close(t);
    if (rc) return rc;
    static const char *const h[] = {"rows"};
    sh_table *tb = new_table(1, h);
    if (!tb) return fail(c, BT_ENOMEM, "out of memory");
    char num[32];
    snprintf(num, sizeof num, "%" PRIu64, n);
    const char *cells[1] = {num};
    sh_table_add(tb, cells, NULL);
    return emit_table(c, tb, 1);
}

/* ---- cluster ----------------------------------------------------------------------- */

/* Exact integers (a double would round past 2^53). */
static void add_u64(cJSON *o, const char *k, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, v);
    cJSON_AddRawToObject(o, k, num);
}

static int cmd_status(sh_ctx *c, const sh_cmd *cmd)
{
    (void)cmd;
    bt_cluster_status *st = NULL;
    int rc = bt_cluster_status_get(c->client, &st);
    if (rc) return fail_bt(c, rc);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "master", st->master ? st->master : "");
        add_u64(o, "master_since_us", (uint64_t)(st->master_since_us > 0 ? st->master_since_us : 0));
        add_u64(o, "tables", st->tables);
        add_u64(o, "tablets", st->tablets);
        add_u64(o, "unassigned_tablets", st->unassigned_tablets);
        add_u64(o, "servers_recovered", st->servers_recovered);
        add_u64(o, "tablets_moved", st->tablets_moved);
        add_u64(o, "splits", st->splits);
        cJSON *a = cJSON_AddArrayToObject(o, "servers");
        for (size_t i = 0; i < st->n_servers; i++) {
            const bt_server_status *s = &st->servers[i];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "id", s->id ? s->id : "");
            cJSON_AddStringToObject(x, "address", s->address ? s->address : "");
            add_u64(x, "tablets", s->tablets);
            add_u64(x, "memtable_bytes", s->memtable_bytes);
            add_u64(x, "sstable_bytes", s->sstable_bytes);
            add_u64(x, "reads", s->reads);
            add_u64(x, "writes", s->writes);
            add_u64(x, "compaction_queue", s->compaction_queue);
            cJSON_AddItemToArray(a, x);
        }
        cJSON *ev = cJSON_AddArrayToObject(o, "events");
        for (size_t i = 0; i < st->n_events; i++) {
            cJSON *x = cJSON_CreateObject();
            add_u64(x, "time_us", (uint64_t)(st->events[i].time_us > 0 ? st->events[i].time_us : 0));
            cJSON_AddStringToObject(x, "text", st->events[i].text ? st->events[i].text : "");
            cJSON_AddItemToArray(ev, x);
        }
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) fprintf(c->out, "%s\n", txt);
        free(txt);
        cJSON_Delete(o);
        bt_cluster_status_free(st);
        return BT_OK;
    }
    fprintf(c->out, "master %s (active since %" PRId64 ")\n", st->master ? st->master : "?", st->master_since_us);
    fprintf(c->out, "%" PRIu64 " tables, %" PRIu64 " tablets, %" PRIu64 " unassigned; %" PRIu64
                    " servers recovered, %" PRIu64 " tablets moved, %" PRIu64 " splits\n",
            st->tables, st->tablets, st->unassigned_tablets, st->servers_recovered, st->tablets_moved, st->splits);
    /* the master's last few events, oldest first */
    size_t first_ev = st->n_events > 5 ? st->n_events - 5 : 0;
    for (size_t i = first_ev; i < st->n_events; i++) {
        time_t secs = (time_t)(st->events[i].time_us / 1000000);
        struct tm tm;
        char when[32] = "?";
        if (gmtime_r(&secs, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(c->out, "  %s  %s\n", when, st->events[i].text ? st->events[i].text : "");
    }
    static const char *const h[] = {"server", "address", "tablets", "memtable_bytes", "sstable_bytes", "reads",
                                    "writes", "compaction_queue"};
    sh_table *t = new_table(8, h);
    for (size_t i = 0; t && i < st->n_servers; i++) {
        const bt_server_status *s = &st->servers[i];
        char n[6][24];
        snprintf(n[0], 24, "%" PRIu64, s->tablets);
        snprintf(n[1], 24, "%" PRIu64, s->memtable_bytes);
        snprintf(n[2], 24, "%" PRIu64, s->sstable_bytes);
        snprintf(n[3], 24, "%" PRIu64, s->reads);
        snprintf(n[4], 24, "%" PRIu64, s->writes);
        snprintf(n[5], 24, "%" PRIu64, s->compaction_queue);
        const char *cells[8] = {s->id ? s->id : "", s->address ? s->address : "", n[0], n[1], n[2], n[3], n[4], n[5]};
        sh_table_add(t, cells, NULL);
    }
    bt_cluster_status_free(st);
    if (!t) return fail(c, BT_ENOMEM, "out of memory");
    return emit_table(c, t, SIZE_MAX);
}

static int cmd_tablets(sh_ctx *c, const sh_cmd *cmd)
{
    const char *name;
    int rc = name_arg(c, &cmd->w[1], "table", &name);
    if (rc) return rc;
    bt_table_desc *d = NULL;
    if ((rc = bt_describe_table(c->client, name, &d))) return fail_bt(c, rc);
    /* sizes exist per server only (bt_cluster_status_get); shown as such */
    bt_cluster_status *st = NULL;
    if (bt_cluster_status_get(c->client, &st)) st = NULL;
    static const char *const h[] = {"id", "start", "end", "server", "address", "dir",
                                    "server_memtable_bytes", "server_sstable_bytes"};
    sh_table *t = new_table(8, h);
    for (size_t i = 0; t && i < d->n_tablets; i++) {
        const bt_tablet_desc *td = &d->tablets[i];
        char id[24], mem[24] = "", sst[24] = "";
        snprintf(id, sizeof id, "%" PRIu64, td->id);
        for (size_t k = 0; st && k < st->n_servers; k++) {
            if (td->server_id && st->servers[k].id && !strcmp(td->server_id, st->servers[k].id)) {
                snprintf(mem, sizeof mem, "%" PRIu64, st->servers[k].memtable_bytes);
                snprintf(sst, sizeof sst, "%" PRIu64, st->servers[k].sstable_bytes);
            }
        }
        const char *srv = td->server_id && td->server_id[0] ? td->server_id : "(unassigned)";
        const char *cells[8] = {id, (const char *)td->start, (const char *)td->end, srv,
                                td->server ? td->server : "", td->dir ? td->dir : "", mem, sst};
        size_t lens[8] = {strlen(id), td->start_len, td->end_len, strlen(srv), strlen(cells[4]),
                          strlen(cells[5]), strlen(mem), strlen(sst)};
        sh_table_add(t, cells, lens);
    }
    bt_cluster_status_free(st);
    bt_table_desc_free(d);
    if (!t) return fail(c, BT_ENOMEM, "out of memory");
    return emit_table(c, t, SIZE_MAX);
}

static int cmd_split(sh_ctx *c, const sh_cmd *cmd)
{
    const char *name;
    int rc = name_arg(c, &cmd->w[1], "table", &name);
    if (rc) return rc;
    const sh_word *row = cmd->n > 2 ? &cmd->w[2] : NULL;
    if ((rc = bt_split_table(c->client, name, row ? row->s : NULL, row ? row->n : 0))) return fail_bt(c, rc);
    return emit_done(c, 0);
}

static int cmd_flush_compact(sh_ctx *c, const sh_cmd *cmd, bool major)
{
    const char *name;
    int rc = name_arg(c, &cmd->w[1], "table", &name);
    if (rc) return rc;
    rc = major ? bt_compact_table(c->client, name) : bt_flush_table(c->client, name);
    return rc ? fail_bt(c, rc) : emit_done(c, 0);
}

static int cmd_flush(sh_ctx *c, const sh_cmd *cmd) { return cmd_flush_compact(c, cmd, false); }
static int cmd_compact(sh_ctx *c, const sh_cmd *cmd) { return cmd_flush_compact(c, cmd, true); }

static int cmd_move(sh_ctx *c, const sh_cmd *cmd)
{
    int64_t id;
    if (parse_i64(cmd->w[1].s, cmd->w[1].n, &id) || id <= 0)
        return fail(c, BT_EINVAL, "%s: not a tablet id (see: tablets <table>)", show(&cmd->w[1]));
    const char *server = NULL;
    int rc;
    if (cmd->n > 2 && (rc = name_arg(c, &cmd->w[2], "server", &server))) return rc;
    if ((rc = bt_move_tablet(c->client, (uint64_t)id, server))) return fail_bt(c, rc);
    return emit_done(c, 0);
}

static int cmd_lock(sh_ctx *c, const sh_cmd *cmd)
{
    const char *op = cmd->w[1].s, *path;
    int rc = BT_OK;
    if (strcmp(op, "ls") && strcmp(op, "cat"))
        return fail(c, BT_EINVAL, "unknown lock operation %s (ls or cat)", show(&cmd->w[1]));
    if (cmd->n < 3) path = "/";
    else if (cmd->n > 3 || cmd->w[2].n != strlen(cmd->w[2].s)) return fail(c, BT_EINVAL, "usage: lock ls|cat <path>");
    else path = cmd->w[2].s;
    if ((rc = need_lock(c))) return rc;
    if (!strcmp(op, "cat")) {
        uint8_t *data = NULL;
        size_t n = 0;
        if ((rc = lk_get(c->lock, path, &data, &n, NULL))) return fail_bt(c, rc);
        if (c->json) {
            static const char *const h[] = {"path", "contents"};
            sh_table *t = new_table(2, h);
            const char *cells[2] = {path, (const char *)data};
            size_t lens[2] = {strlen(path), n};
            if (t) sh_table_add(t, cells, lens);
            free(data);
            return t ? emit_table(c, t, 1) : fail(c, BT_ENOMEM, "out of memory");
        }
        /* text: as is when it is text, else escaped like every other value */
        bool text = true;
        for (size_t i = 0; i < n; i++)
            if ((data[i] < 0x20 && data[i] != '\n' && data[i] != '\t') || data[i] == 0x7f) text = false;
        if (text) {
            fwrite(data, 1, n, c->out);
            if (n == 0 || data[n - 1] != '\n') fputc('\n', c->out);
        } else {
            bt_buf b = {0};
            sh_escape(data, n, false, &b);
            fwrite(b.data, 1, b.len, c->out);
            fputc('\n', c->out);
            bt_buf_free(&b);
        }
        free(data);
        return emit_done(c, 1);
    }
    lk_stat st;
    if ((rc = lk_stat_path(c->lock, path, &st))) return fail_bt(c, rc);
    static const char *const h[] = {"name", "type", "size", "generation", "locked_by", "ephemeral"};
    sh_table *t = new_table(6, h);
    if (!t) return fail(c, BT_ENOMEM, "out of memory");
    char **names = NULL;
    size_t nn = 0;
    if (st.is_dir && (rc = lk_list(c->lock, path, &names, &nn))) {
        sh_table_free(t);
        return fail_bt(c, rc);
    }
    for (size_t i = 0; i < (st.is_dir ? nn : 1); i++) {
        char child[LK_MAX_PATH + 80];
        const char *shown = path;
        lk_stat cs = st;
        if (st.is_dir) {
            snprintf(child, sizeof child, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", names[i]);
            if (lk_stat_path(c->lock, child, &cs)) continue; /* deleted meanwhile */
            shown = names[i];
        }
        char size[24], gen[24], owner[40], eph[24];
        snprintf(size, sizeof size, "%zu", cs.size);
        snprintf(gen, sizeof gen, "%" PRIu64, cs.generation);
        if (cs.lock_owner) snprintf(owner, sizeof owner, "%" PRIu64, cs.lock_owner);
        else snprintf(owner, sizeof owner, "-");
        snprintf(eph, sizeof eph, "%s", cs.ephemeral_owner ? "yes" : "no");
        const char *cells[6] = {shown, cs.is_dir ? "dir" : "file", size, gen, owner, eph};
        sh_table_add(t, cells, NULL);
    }
    lk_free_names(names, nn);
    return emit_table(c, t, SIZE_MAX);
}

/* ---- help and quit ------------------------------------------------------------------ */

static int cmd_help(sh_ctx *c, const sh_cmd *cmd);
static int cmd_quit(sh_ctx *c, const sh_cmd *cmd)
{
    (void)c;
    (void)cmd;
    return SH_QUIT;
}

#define ESCAPES \
    "Arguments are words; quote them to hold blanks or any byte: \"a b\", \"a\\x00b\",\n" \
    "'literal \\ text'.  Values print escaped the same way, so output pastes back.\n"

static const sh_command commands[] = {
    {"ls", 0, 0, true, "ls", "list the tables", "Lists the user tables, sorted by name.\n", cmd_ls, 0},
    {"create", 2, -1, true, "create <table> <family>[:maxversions=N][:maxage=DURATION][:gc=union|intersection]... "
     "[splits=k1,k2,...]",
     "create a table",
     "Creates a table with one or more column families, each with its garbage-collection\n"
     "rules (maxversions=0 and maxage=0 mean no limit; DURATION is 250ms, 30s, 5m, 2h,\n"
     "7d or seconds; gc=intersection drops a cell only when both rules say so).\n"
     "splits= pre-splits the table at the given row keys (one tablet per range).\n"
     "Example:\n    create users info:maxversions=3 log:maxage=7d splits=g,n,t\n", cmd_create, 0},
    {"describe", 1, 1, true, "describe <table>", "show a table's families and their settings",
     "Shows each family: GC rules, locality group and the group's compression,\n"
     "in-memory flag, bloom filter and block size.  The number of tablets comes\n"
     "first (text mode).\n", cmd_describe, SH_COMPLETE_TABLE},
    {"alter", 3, -1, true, "alter <table> add|drop <family>... | alter <table> gc <family> "
     "maxversions=N|maxage=DURATION|gc=union|intersection...",
     "add or drop families, change GC rules",
     "    alter <table> add <family>[:maxversions=N][:maxage=DURATION]...\n"
     "    alter <table> drop <family>...\n"
     "    alter <table> gc <family> [maxversions=N] [maxage=DURATION] [gc=union|intersection]\n"
     "A dropped family disappears from reads at once; its data goes with the next\n"
     "major compactions.  gc changes only the rules given.\n", cmd_alter, SH_COMPLETE_TABLE},
    {"drop", 1, 2, true, "drop <table> [-y]", "delete a table and all its data",
     "Deletes the table and all its data.  When standard input is a terminal it asks\n"
     "\"drop table X and all its data? [y/N]\" first, unless -y is given (or bt-shell\n"
     "was started with --yes).\n", cmd_drop, SH_COMPLETE_TABLE},
    {"put", 3, -1, true, "put <table> <row> <family:qualifier>=<value>... [ts=N]", "write cells of one row",
     "Writes one or more cells of one row atomically.  ts=N sets the timestamp\n"
     "(microseconds); without it the tablet server assigns the time.\n" ESCAPES
     "Example:\n    put users alice info:email=alice@example.com \"info:full name\"=\"Alice A\"\n",
     cmd_put, SH_COMPLETE_TABLE},
    {"get", 2, -1, true, "get <table> <row> [columns=cf:q,cf2,...] [versions=N]", "read one row",
     "Reads one row: one line per cell (row, column, timestamp, value), newest\n"
     "version only unless versions=N.  columns= restricts to families (cf) or\n"
     "columns (cf:q).  An absent row prints no line (0 rows).\n", cmd_get, SH_COMPLETE_TABLE},
    {"scan", 1, -1, true, "scan <table> [start=ROW] [end=ROW] [prefix=P] [columns=...] [limit=N] [versions=N]",
     "read a range of rows",
     "Reads rows in key order from start (inclusive) to end (exclusive), or those\n"
     "starting with prefix; at most limit rows.  One line per cell as for get; the\n"
     "footer counts rows.\n", cmd_scan, SH_COMPLETE_TABLE},
    {"delete", 2, -1, true, "delete <table> <row> [<family:qualifier>|<family>]...", "delete a row, families or columns",
     "Without columns deletes the whole row; with them, every version of each\n"
     "column (family:qualifier) or every cell of each family.  Atomic per row.\n", cmd_delete, SH_COMPLETE_TABLE},
    {"incr", 3, 4, true, "incr <table> <row> <family:qualifier> [N]", "add N (default 1) to a counter",
     "Atomically adds N (may be negative) to the column read as a big-endian 64-bit\n"
     "integer (absent: 0) and prints the new value as a decimal number.\n", cmd_incr, SH_COMPLETE_TABLE},
    {"append", 4, 4, true, "append <table> <row> <family:qualifier> <value>", "append bytes to a value",
     "Atomically appends the bytes to the newest value of the column (absent:\n"
     "empty) and prints the new value.\n", cmd_append, SH_COMPLETE_TABLE},
    {"count", 1, -1, true, "count <table> [prefix=P] [start=ROW] [end=ROW]", "count rows",
     "Counts the rows of the table (or of a prefix or range) with a key-only scan.\n", cmd_count,
     SH_COMPLETE_TABLE},
    {"status", 0, 0, true, "status", "the cluster's state",
     "The active master, counts of tables and tablets (unassigned ones too), and\n"
     "per live tablet server: tablets, memtable and SSTable bytes, reads, writes.\n"
     "--json prints one object with a \"servers\" array.\n", cmd_status, 0},
    {"tablets", 1, 1, true, "tablets <table>", "a table's tablets: ranges and servers",
     "One line per tablet in row order: id, start row (inclusive), end row\n"
     "(exclusive; empty: to the end), server id and address, directory.  Sizes are\n"
     "known per server only: server_memtable_bytes and server_sstable_bytes are\n"
     "the totals of the tablet's server (the same for every tablet it serves).\n"
     "METADATA can be inspected too.\n", cmd_tablets, SH_COMPLETE_TABLE},
    {"split", 1, 2, true, "split <table> [row]", "split a tablet at a row, or every tablet",
     "With a row, splits the tablet holding it at that row; without, splits every\n"
     "tablet of the table at its middle row (tablets too small are skipped).\n", cmd_split,
     SH_COMPLETE_TABLE},
    {"flush", 1, 1, true, "flush <table>", "minor compaction of every tablet",
     "Writes every tablet's memtable to an SSTable.\n", cmd_flush, SH_COMPLETE_TABLE},
    {"compact", 1, 1, true, "compact <table>", "major compaction of every tablet",
     "Merges every tablet's SSTables into one, dropping deleted cells and applying\n"
     "the GC rules.\n", cmd_compact, SH_COMPLETE_TABLE},
    {"move", 1, 2, true, "move <tablet-id> [server-id]", "move a tablet to another server",
     "Moves the tablet (ids from `tablets`) to the server with that id (from\n"
     "`status`), or to the least loaded other server; returns once it is served.\n", cmd_move, 0},
    {"lock", 1, 2, false, "lock ls|cat <path>", "read the lock service's namespace",
     "lock ls lists a directory (name, type, size, generation, lock holder,\n"
     "ephemeral); lock cat prints a file's contents (as is when it is text, else\n"
     "escaped).  Paths: /bt/master, /bt/servers, /bt/root, /bt/schema/<table>.\n", cmd_lock, 0},
    {"help", 0, 1, false, "help [command]", "list the commands, or explain one", "help lists every command; "
     "help <command> explains one.\n", cmd_help, SH_COMPLETE_COMMAND},
    {"quit", 0, 0, false, "quit", "leave the shell (also: exit, Ctrl-D)", "Leaves the shell.\n", cmd_quit, 0},
};

const sh_command *sh_commands(size_t *n)
{
    *n = sizeof commands / sizeof *commands;
    return commands;
}

const sh_command *sh_command_find(const char *name)
{
    if (!strcmp(name, "exit")) name = "quit";
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

static int cmd_help(sh_ctx *c, const sh_cmd *cmd)
{
    if (cmd->n > 1) {
        const sh_command *d = sh_command_find(cmd->w[1].s);
        if (!d) return fail(c, BT_EINVAL, "no command %s (type help for the list)", show(&cmd->w[1]));
        fprintf(c->out, "usage: %s\n\n%s", d->usage, d->help);
        return BT_OK;
    }
    fprintf(c->out, "Commands (help <command> for details):\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(c->out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(c->out, "\nSeparate commands with ';'; '#' starts a comment.\n" ESCAPES);
    return BT_OK;
}

/* ---- the executor ------------------------------------------------------------------- */

int sh_exec(sh_ctx *c, const sh_cmd *cmd)
{
    c->msg[0] = '\0';
    if (cmd->n == 0) return BT_OK;
    const sh_word *w0 = &cmd->w[0];
    const sh_command *d = strlen(w0->s) == w0->n ? sh_command_find(w0->s) : NULL;
    if (!d) return fail(c, BT_EINVAL, "unknown command %s (type help for the list)", show(w0));
    int nargs = (int)cmd->n - 1;
    if (nargs < d->min_args || (d->max_args >= 0 && nargs > d->max_args))
        return fail(c, BT_EINVAL, "%s: usage: %s", d->name, d->usage);
    int rc;
    if (d->cluster && (rc = sh_connect(c))) return rc;
    bt_errclear();
    c->t0_us = now_us();
    rc = d->fn(c, cmd);
    if (rc < 0) {
        char tmp[sizeof c->msg];
        snprintf(tmp, sizeof tmp, "%s", c->msg[0] ? c->msg : detail(rc));
        snprintf(c->msg, sizeof c->msg, "%s: %.2000s", d->name, tmp);
    }
    fflush(c->out);
    return rc;
}

int sh_run_text(sh_ctx *c, const char *text, size_t len, int line, int *failed)
{
    sh_cmd *cmds = NULL;
    size_t n = 0;
    char err[512];
    if (!c->out) c->out = stdout;
    if (!c->err) c->err = stderr;
    if (sh_parse(text, len, line, &cmds, &n, err, sizeof err)) {
        fflush(c->out);
        if (c->show_lines) fprintf(c->err, "bt-shell: %s\n", err);
        else fprintf(c->err, "bt-shell: %s\n", strstr(err, "column") ? strstr(err, "column") : err);
        (*failed)++;
        return c->stop_on_error ? SH_STOP : BT_OK;
    }
    int result = BT_OK;
    for (size_t i = 0; i < n; i++) {
        int rc = sh_exec(c, &cmds[i]);
        if (rc == SH_QUIT) { result = SH_QUIT; break; }
        if (rc < 0) {
            (*failed)++;
            fflush(c->out);
            if (c->show_lines) fprintf(c->err, "bt-shell: line %d: %s\n", cmds[i].line, c->msg);
            else fprintf(c->err, "bt-shell: %s\n", c->msg);
            fflush(c->err);
            if (c->stop_on_error || c->no_cluster) { result = SH_STOP; break; }
        }
    }
    sh_cmds_free(cmds, n);
    return result;
}

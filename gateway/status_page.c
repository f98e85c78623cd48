/* gateway/status_page.c: GET /, the cluster's status page (gateway/gw_obs.h),
 * in the manner of Bigtable's and HBase's master pages.
 *
 * One self-contained HTML5 document: inline CSS, no script, no external
 * asset; it reloads itself with <meta http-equiv="refresh">.  Sections:
 * header (master, active since, lock service, gateway uptime, snapshot
 * age), an "unreachable" banner when the master did not answer, summary
 * figures, the servers (with totals), each table (families, tablets with
 * their row ranges, servers and sizes) and the master's recent events,
 * newest first.
 *
 * Every text that comes from outside this file is HTML-escaped; row keys
 * are shown byte by byte with printable ASCII as itself, a backslash as
 * \\ and any other byte as \xNN (then escaped), cut after PAGE_KEY_BYTES.
 * Elements carry stable ids for tests and links: server-<id>, table-<name>.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/view_internal.h"

#define PAGE_KEY_BYTES 96           /* row key bytes shown before "..." */
#define PAGE_MAX_TABLETS 2000       /* tablets listed per table */

typedef struct out {
    bt_buf *b;
    int rc;
} out;

static void raw(out *o, const char *s, size_t n)
{
    if (!o->rc && n) o->rc = bt_buf_append(o->b, s, n);
}

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (o->rc || n < 0) return;
    if ((size_t)n < sizeof small) {
        raw(o, small, (size_t)n);
        return;
    }
    if ((o->rc = bt_buf_reserve(o->b, (size_t)n + 1))) return;
    va_start(ap, fmt);
    vsnprintf((char *)o->b->data + o->b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    o->b->len += (size_t)n;
}

/* Text or attribute value: & < > " ' escaped. */
static void esc_n(out *o, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = NULL;
        switch (s[i]) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '"': e = "&quot;"; break;
        case '\'': e = "&#39;"; break;
        default: break;
        }
        if (!e) continue;
        raw(o, s + run, i - run);
        raw(o, e, strlen(e));
        run = i + 1;
    }
    raw(o, s + run, n - run);
}

static void esc(out *o, const char *s)
{
    if (s) esc_n(o, s, strlen(s));
}

/* A row key: printable ASCII as is, \ as \\, other bytes as \xNN. */
static void key(out *o, const uint8_t *k, size_t n, const char *empty)
{
    if (!n) {
        put(o, "<span class=\"inf\">%s</span>", empty);
        return;
    }
    char tmp[PAGE_KEY_BYTES * 4 + 8];
    size_t t = 0, shown = n > PAGE_KEY_BYTES ? PAGE_KEY_BYTES : n;
    for (size_t i = 0; i < shown; i++) {
        if (k[i] == '\\') {
            tmp[t++] = '\\';
            tmp[t++] = '\\';
        } else if (k[i] >= 0x20 && k[i] < 0x7f) {
            tmp[t++] = (char)k[i];
        } else {
            t += (size_t)snprintf(tmp + t, sizeof tmp - t, "\\x%02x", k[i]);
        }
    }
    put(o, "<code>");
    esc_n(o, tmp, t);
    put(o, "</code>");
    if (shown < n) put(o, "<span class=\"inf\">&hellip; (%zu bytes)</span>", n);
}

static void bytes(out *o, uint64_t v)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (v < 1024) {
        put(o, "%" PRIu64 " B", v);
        return;
    }
    double d = (double)v;
    int u = 0;
    while (d >= 1024 && u < 5) {
        d /= 1024;
        u++;
    }
    put(o, "%.1f %s", d, unit[u]);
}

static void when(out *o, int64_t us)
{
    if (us <= 0) {
        put(o, "-");
        return;
    }
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    char s[64];
    gmtime_r(&t, &tm);
    strftime(s, sizeof s, "%Y-%m-%d %H:%M:%S", &tm);
    put(o, "<time>%s UTC</time>", s);
}

static void duration(out *o, int64_t us)
{
    int64_t s = us > 0 ? us / 1000000 : 0;
    if (s >= 86400) put(o, "%" PRId64 "d %" PRId64 "h", s / 86400, s % 86400 / 3600);
    else if (s >= 3600) put(o, "%" PRId64 "h %" PRId64 "m", s / 3600, s % 3600 / 60);
    else if (s >= 60) put(o, "%" PRId64 "m %" PRId64 "s", s / 60, s % 60);
    else put(o, "%" PRId64 "s", s);
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- sections --------------------------------------------------------------- */

static const char css[] =
    "body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1d2733;"
    "background:#f4f6f8}"
    "header{background:#1f3a5f;color:#fff;padding:12px 24px}"
    "header h1{margin:0 0 6px;font-size:20px}"
    "header dl{display:flex;flex-wrap:wrap;gap:4px 24px;margin:0}"
    "header dt{opacity:.75}header dd{margin:0 0 0 6px;font-weight:600}"
    "header div{display:flex}"
    "main{padding:12px 24px}"
    "section{background:#fff;border:1px solid #d8dee4;border-radius:6px;padding:8px 16px;margin:0 0 16px}"
    "h2{font-size:16px;margin:6px 0 10px}h3{font-size:15px;margin:14px 0 6px}"
    ".banner{background:#b3261e;color:#fff;padding:10px 24px;font-weight:600}"
    ".note{background:#fff4ce;border:1px solid #e0c36b;padding:6px 10px;border-radius:4px}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px}"
    ".card{border:1px solid #d8dee4;border-radius:6px;padding:6px 14px;min-width:110px}"
    ".card b{display:block;font-size:22px}.card.warn b{color:#b3261e}"
    "table{border-collapse:collapse;width:100%;margin:4px 0 8px}"
    "th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #e6eaee;vertical-align:top}"
    "th{background:#eef2f6;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
    "tfoot td{font-weight:600;border-top:2px solid #c9d1d9}"
    "code{font:12px ui-monospace,Menlo,Consolas,monospace;word-break:break-all}"
    ".inf{color:#6a737d;font-style:italic}"
    "ol.events{margin:0;padding-left:20px}ol.events time{color:#6a737d;margin-right:8px}"
    "footer{color:#6a737d;padding:0 24px 16px}";

static void header(out *o, const gw_snapshot *s, const gw_page_info *info, int64_t now)
{
    put(o, "<header><h1>bigtable-c");
    if (info->gateway_address) {
        put(o, " &middot; ");
        esc(o, info->gateway_address);
    }
    put(o, "</h1><dl>");
    put(o, "<div><dt>Master</dt><dd id=\"master\">");
    if (s->up && s->status->master && *s->status->master) esc(o, s->status->master);
    else put(o, "unknown");
    put(o, "</dd></div><div><dt>Active since</dt><dd>");
    if (s->up && s->status->master_since_us > 0) {
        when(o, s->status->master_since_us);
        put(o, " (");
        duration(o, now - s->status->master_since_us);
        put(o, ")");
    } else {
        put(o, "-");
    }
    put(o, "</dd></div><div><dt>Lock service</dt><dd>");
    esc(o, info->lock_url ? info->lock_url : "-");
    put(o, "</dd></div><div><dt>Gateway up</dt><dd>");
    if (info->started_us > 0) duration(o, now - info->started_us);
    else put(o, "-");
    put(o, "</dd></div><div><dt>Snapshot</dt><dd>");
    if (s->at_us > 0) {
        duration(o, now - s->at_us);
        put(o, " old, fetched in %.1f ms", (double)s->fetch_us / 1000.0);
    } else {
        put(o, "none yet");
    }
    put(o, "</dd></div></dl></header>\n");
}

static void banner(out *o, const gw_snapshot *s, int64_t now)
{
    if (s->up) return;
    put(o, "<div class=\"banner\" id=\"unreachable\" role=\"alert\">Cluster unreachable: ");
    esc(o, s->error[0] ? s->error : "the master did not answer");
    if (s->last_up_us > 0) {
        put(o, ". Last answer ");
        duration(o, now - s->last_up_us);
        put(o, " ago.");
    } else {
        put(o, ". It has not answered since the gateway started.");
    }
    put(o, "</div>\n");
}

static void card(out *o, const char *label, uint64_t v, bool warn)
{
    put(o, "<div class=\"card%s\">%s<b>%" PRIu64 "</b></div>", warn ? " warn" : "", label, v);
}

static void summary(out *o, const gw_snapshot *s)
{
    const bt_cluster_status *st = s->status;
    put(o, "<section id=\"summary\"><h2>Summary</h2><div class=\"cards\">");
    card(o, "Servers", st->n_servers, st->n_servers == 0);
    card(o, "Tables", st->tables, false);
    card(o, "Tablets", st->tablets, false);
    card(o, "Unassigned tablets", st->unassigned_tablets, st->unassigned_tablets > 0);
    card(o, "Servers recovered", st->servers_recovered, false);
    card(o, "Tablets moved", st->tablets_moved, false);
    card(o, "Splits", st->splits, false);
    put(o, "</div>");
    if (s->error[0]) {
        put(o, "<p class=\"note\">Partial snapshot: ");
        esc(o, s->error);
        put(o, "</p>");
    }
    put(o, "</section>\n");
}

static void rate(out *o, const gw_snapshot *s, size_t i, bool reads)
{
    if (!s->rates_known[i]) put(o, "<span class=\"inf\">-</span>");
    else put(o, "%.1f", reads ? s->reads_ps[i] : s->writes_ps[i]);
}

static void servers(out *o, const gw_snapshot *s)
{
    const bt_cluster_status *st = s->status;
    put(o, "<section id=\"servers\"><h2>Tablet servers (%zu)</h2>", st->n_servers);
    if (!st->n_servers) {
        put(o, "<p class=\"note\">No live tablet server.</p></section>\n");
        return;
    }
    put(o, "<table><thead><tr><th>Server</th><th>Address</th><th class=\"n\">Tablets</th>"
           "<th class=\"n\">Memtable</th><th class=\"n\">SSTables</th><th class=\"n\">Compaction queue</th>"
           "<th class=\"n\">Reads/s</th><th class=\"n\">Writes/s</th><th class=\"n\">Reads</th>"
           "<th class=\"n\">Writes</th></tr></thead><tbody>");
    uint64_t tot[6] = {0};
    double rps = 0, wps = 0;
    bool rates = true;
    for (size_t i = 0; i < st->n_servers; i++) {
        const bt_server_status *sv = &st->servers[i];
        put(o, "<tr id=\"server-");
        esc(o, sv->id);
        put(o, "\"><td class=\"server-id\">");
        esc(o, sv->id);
        put(o, "</td><td>");
        esc(o, sv->address);
        put(o, "</td><td class=\"n\">%" PRIu64 "</td><td class=\"n\">", sv->tablets);
        bytes(o, sv->memtable_bytes);
        put(o, "</td><td class=\"n\">");
        bytes(o, sv->sstable_bytes);
        put(o, "</td><td class=\"n\">%" PRIu64 "</td><td class=\"n\">", sv->compaction_queue);
        rate(o, s, i, true);
        put(o, "</td><td class=\"n\">");
        rate(o, s, i, false);
        put(o, "</td><td class=\"n\">%" PRIu64 "</td><td class=\"n\">%" PRIu64 "</td></tr>", sv->reads, sv->writes);
        tot[0] += sv->tablets;
        tot[1] += sv->memtable_bytes;
        tot[2] += sv->sstable_bytes;
        tot[3] += sv->compaction_queue;
        tot[4] += sv->reads;
        tot[5] += sv->writes;
        rates = rates && s->rates_known[i];
        rps += s->reads_ps[i];
        wps += s->writes_ps[i];
    }
    put(o, "</tbody><tfoot><tr><td>Total</td><td></td><td class=\"n\">%" PRIu64 "</td><td class=\"n\">", tot[0]);
    bytes(o, tot[1]);
    put(o, "</td><td class=\"n\">");
    bytes(o, tot[2]);
    put(o, "</td><td class=\"n\">%" PRIu64 "</td>", tot[3]);
    if (rates) put(o, "<td class=\"n\">%.1f</td><td class=\"n\">%.1f</td>", rps, wps);
    else put(o, "<td class=\"n\"></td><td class=\"n\"></td>");
    put(o, "<td class=\"n\">%" PRIu64 "</td><td class=\"n\">%" PRIu64 "</td></tr></tfoot></table></section>\n",
        tot[4], tot[5]);
}

static void families(out *o, const bt_schema *sc)
{
    size_t n = sc ? bt_schema_n_families(sc) : 0;
    put(o, "<p>Families: ");
    if (!n) put(o, "<span class=\"inf\">none</span>");
    for (size_t i = 0; i < n; i++) {
        bt_family_info f;
        if (bt_schema_family(sc, i, &f)) continue;
        put(o, "%s<code>", i ? ", " : "");
        esc(o, f.name);
        put(o, "</code> (");
        if (f.max_versions) put(o, "%" PRIu32 " version%s", f.max_versions, f.max_versions == 1 ? "" : "s");
        else put(o, "all versions");
        if (f.max_age_us) {
            put(o, f.gc_intersection ? " and " : " or ");
            put(o, "max age ");
            duration(o, f.max_age_us);
        }
        put(o, "; group ");
        esc(o, f.group ? f.group : "default");
        put(o, ")");
    }
    put(o, "</p>");
}

static void table(out *o, const bt_table_desc *d)
{
    uint64_t mem = 0, sst = 0;
    for (size_t k = 0; k < d->n_tablets; k++) {
        mem += d->tablets[k].memtable_bytes;
        sst += d->tablets[k].sstable_bytes;
    }
    put(o, "<div class=\"table\" id=\"table-");
    esc(o, d->name);
    put(o, "\"><h3>");
    esc(o, d->name);
    if (!strcmp(d->name, BT_METADATA_TABLE)) put(o, " <span class=\"inf\">(system)</span>");
    put(o, "</h3>");
    families(o, d->schema);
    put(o, "<table><thead><tr><th class=\"n\">#</th><th>Tablet</th><th>Start row</th><th>End row</th>"
           "<th>Server</th><th class=\"n\">Memtable</th><th class=\"n\">SSTables</th></tr></thead><tbody>");
    size_t shown = d->n_tablets > PAGE_MAX_TABLETS ? PAGE_MAX_TABLETS : d->n_tablets;
    for (size_t k = 0; k < shown; k++) {
        const bt_tablet_desc *t = &d->tablets[k];
        put(o, "<tr><td class=\"n\">%zu</td><td>%" PRIu64 "</td><td>", k + 1, t->id);
        key(o, t->start, t->start_len, "(first)");
        put(o, "</td><td>");
        key(o, t->end, t->end_len, "(last)");
        put(o, "</td><td>");
        if (t->server && *t->server) {
            esc(o, t->server_id && *t->server_id ? t->server_id : "?");
            put(o, " <span class=\"inf\">");
            esc(o, t->server);
            put(o, "</span>");
        } else {
            put(o, "<b>unassigned</b>");
        }
        put(o, "</td><td class=\"n\">");
        bytes(o, t->memtable_bytes);
        put(o, "</td><td class=\"n\">");
        bytes(o, t->sstable_bytes);
        put(o, "</td></tr>");
    }
    if (shown < d->n_tablets)
        put(o, "<tr><td></td><td colspan=\"6\" class=\"inf\">&hellip; %zu more tablets</td></tr>",
            d->n_tablets - shown);
    put(o, "</tbody><tfoot><tr><td></td><td colspan=\"4\">%zu tablet%s</td><td class=\"n\">", d->n_tablets,
        d->n_tablets == 1 ? "" : "s");
    bytes(o, mem);
    put(o, "</td><td class=\"n\">");
    bytes(o, sst);
    put(o, "</td></tr></tfoot></table></div>\n");
}

static void tables(out *o, const gw_snapshot *s)
{
    size_t user = 0;
    for (size_t i = 0; i < s->n_tables; i++) user += strcmp(s->tables[i]->name, BT_METADATA_TABLE) != 0;
    put(o, "<section id=\"tables\"><h2>Tables (%zu)</h2>", user);
    if (!user) put(o, "<p class=\"inf\">No user table.</p>");
    for (size_t i = 0; i < s->n_tables; i++) table(o, s->tables[i]);
    put(o, "</section>\n");
}

static void events(out *o, const gw_snapshot *s)
{
    const bt_cluster_status *st = s->status;
    put(o, "<section id=\"events\"><h2>Recent events</h2>");
    if (!st->n_events) {
        put(o, "<p class=\"inf\">No event yet.</p></section>\n");
        return;
    }
    put(o, "<ol class=\"events\">");
    for (size_t i = st->n_events; i-- > 0;) {
        put(o, "<li>");
        when(o, st->events[i].time_us);
        esc(o, st->events[i].text);
        put(o, "</li>");
    }
    put(o, "</ol></section>\n");
}

int gw_status_page_render(gw_view *v, const gw_page_info *info, bt_buf *buf)
{
    static const gw_page_info none = {0};
    if (!info) info = &none;
    out o = {buf, BT_OK};
    int64_t now = wall_us();
    gw_snapshot *s = gw_view_snapshot(v);
    put(&o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"refresh\" content=\"%d\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            "<title>bigtable-c%s",
        info->refresh_s > 0 ? info->refresh_s : 5, s->up ? "" : " (unreachable)");
    if (info->gateway_address) {
        put(&o, " &middot; ");
        esc(&o, info->gateway_address);
    }
    put(&o, "</title><style>%s</style></head><body>\n", css);
    header(&o, s, info, now);
    banner(&o, s, now);
    put(&o, "<main>\n");
    if (s->up) {
        summary(&o, s);
        servers(&o, s);
        tables(&o, s);
        events(&o, s);
    }
    put(&o, "</main><footer>Generated ");
    when(&o, now);
    put(&o, " by bt-gateway; reloads every %d s.</footer>\n</body></html>\n",
        info->refresh_s > 0 ? info->refresh_s : 5);
    gw_snapshot_release(s);
    return o.rc == BT_OK ? BT_OK : BT_ENOMEM;
}

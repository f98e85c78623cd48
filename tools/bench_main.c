/* tools/bench_main.c: bt-bench, an embedded storage benchmark that runs the
 * same workloads against the tablet engine and against LevelDB.
 *
 *   bt-bench embedded --engine tablet|leveldb --n N --dir DIR [options]
 *
 * Data: row keys are the 16-digit decimal key index ("%016llu"); values are
 * --value-size bytes cut from a pool built like LevelDB's db_bench: every
 * 100-byte piece of the pool is 50 random printable bytes repeated, so the
 * values compress to about half.  Everything is deterministic from --seed.
 *
 * Workloads (run in the order given by --workloads):
 *   fillseq     fresh database, N writes in key order
 *   fillrandom  fresh database, N writes, keys uniform in [0,N) with replacement
 *   overwrite   N random writes over the fillrandom database
 *   readrandom  N random point reads over it; reports found X/N
 *   readseq     one full scan over it; ops = entries scanned
 *   fillsync    fresh database, max(N/100,1) random writes, each durable
 *                 (tablet: TS_DURABILITY_SYNC, LevelDB: sync=1)
 * overwrite, readrandom and readseq reuse the database that fillrandom left
 * open; without a preceding fillrandom they first build it, untimed, with the
 * same key stream fillrandom would use.  A fresh database is DIR/<engine>
 * removed recursively and recreated.
 *
 * Output: a header line, one line per workload whose first two fields are
 * the workload name and ops/s, and a final "peak_rss_kb <N> engine <name>".
 * Both engines sit behind the engine_vt vtable so the workloads exist once.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <leveldb/c.h>

#include "common/status.h"
#include "tabletserver/tablet.h"
#include "tools/bench_sdk.h"
#include "tools/bench_server.h"

#define KEY_LEN        16
#define MAX_KEYS       10000000000000000ull   /* 10^16: keys stay 16 digits */
#define POOL_MIN       (1u << 20)
#define PIECE_LEN      100
#define PIECE_RAW      50
#define MAX_WORKLOADS  64

/* ---- configuration -------------------------------------------------------- */

enum engine_kind { ENGINE_TABLET, ENGINE_LEVELDB };

enum workload_id { WL_FILLSEQ, WL_FILLRANDOM, WL_OVERWRITE, WL_READRANDOM, WL_READSEQ, WL_FILLSYNC, WL_COUNT };

static const char *const workload_names[WL_COUNT] = {
    "fillseq", "fillrandom", "overwrite", "readrandom", "readseq", "fillsync",
};

typedef struct config {
    enum engine_kind engine;
    uint64_t n;
    const char *dir;
    uint64_t cache_mb;
    uint64_t memtable_mb;       /* tablet only; 0 = engine default */
    uint64_t value_size;
    ts_durability durability;
    uint64_t seed;
    int n_workloads;
    enum workload_id workloads[MAX_WORKLOADS];
} config;

/* ---- deterministic randomness ------------------------------------------- */

typedef struct rng { uint64_t s; } rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* An independent stream per purpose, so a workload's keys do not depend on
 * which workloads ran before it. */
static rng rng_stream(uint64_t seed, uint64_t stream)
{
    rng r = { seed ^ (stream * 0xd1b54a32d192ed03ull) };
    rng_next(&r);
    return r;
}

/* ---- value generator (db_bench's RandomGenerator) ----------------------- */

typedef struct valgen {
    char *pool;
    size_t size, pos;
} valgen;

static void valgen_init(valgen *g, uint64_t seed, size_t value_size)
{
    rng r = rng_stream(seed, 0);
    g->size = value_size > POOL_MIN ? value_size + POOL_MIN : POOL_MIN;
    g->pool = malloc(g->size);
    if (!g->pool) {
        fprintf(stderr, "bt-bench: out of memory for a %zu-byte value pool\n", g->size);
        exit(1);
    }
    for (size_t off = 0; off < g->size; off += PIECE_LEN) {
        char raw[PIECE_RAW];
        for (int i = 0; i < PIECE_RAW; i++)
            raw[i] = (char)(' ' + rng_next(&r) % 95);
        for (size_t i = 0; i < PIECE_LEN && off + i < g->size; i++)
            g->pool[off + i] = raw[i % PIECE_RAW];
    }
    g->pos = 0;
}

static const char *valgen_next(valgen *g, size_t len)
{
    if (g->pos + len > g->size)
        g->pos = 0;
    const char *v = g->pool + g->pos;
    g->pos += len;
    return v;
}

static void format_key(uint64_t k, char out[KEY_LEN])
{
    for (int i = KEY_LEN - 1; i >= 0; i--) {
        out[i] = (char)('0' + k % 10);
        k /= 10;
    }
}

/* ---- the benchmark context and engine vtable ---------------------------- */

typedef struct bench bench;

/* Every function returns 0 on success or -1 with bench.err filled in;
 * get returns 1 when the key was found and 0 when it was not. */
typedef struct engine_vt {
    const char *name;
    int (*open_fresh)(bench *b, bool sync);
    int (*open_existing)(bench *b, bool sync);
    int (*put)(bench *b, const char *key, size_t klen, const char *val, size_t vlen);
    int (*get)(bench *b, const char *key, size_t klen, size_t *vlen);
    int (*scan_count)(bench *b, uint64_t *entries, uint64_t *bytes);
    int (*close)(bench *b);
} engine_vt;

typedef struct tablet_state {
    ts_engine *engine;
    ts_tablet *tablet;
    int64_t next_ts;
} tablet_state;

typedef struct leveldb_state {
    leveldb_t *db;
    leveldb_options_t *options;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *filter;
    leveldb_writeoptions_t *wopts;
    leveldb_readoptions_t *ropts;
} leveldb_state;

struct bench {
    const config *cfg;
    const engine_vt *vt;
    char engine_dir[PATH_MAX];
    valgen gen;
    const char *workload;   /* for error messages */
    bool open;
    bool random_filled;     /* the open database holds the fillrandom data */
    tablet_state tab;
    leveldb_state ldb;
    char err[PATH_MAX + 1024];
};

static void check(bench *b, int rc)
{
    if (rc >= 0)
        return;
    fprintf(stderr, "bt-bench: workload %s, engine %s: %s\n", b->workload, b->vt->name, b->err);
    exit(1);
}

/* ---- filesystem helpers ------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

/* Removes the engine directory recursively and creates it empty. */
static int reset_engine_dir(bench *b)
{
    if (nftw(b->engine_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
        snprintf(b->err, sizeof b->err, "removing %s: %s", b->engine_dir, strerror(errno));
        return -1;
    }
    if (mkdir_p(b->engine_dir) != 0) {
        snprintf(b->err, sizeof b->err, "creating %s: %s", b->engine_dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- tablet engine ------------------------------------------------------- */

static int tab_fail(bench *b, const char *what, int rc)
{
    snprintf(b->err, sizeof b->err, "%s: %s: %s", what, bt_strerror(rc), bt_errmsg());
    return -1;
}

static int tab_path(bench *b, const char *leaf, char out[PATH_MAX])
{
    if (snprintf(out, PATH_MAX, "%s/%s", b->engine_dir, leaf) >= PATH_MAX) {
        snprintf(b->err, sizeof b->err, "path too long under %s", b->engine_dir);
        return -1;
    }
    return 0;
}

static int tab_open_engine(bench *b, bool sync)
{
    char log_dir[PATH_MAX];
    if (tab_path(b, "log", log_dir) != 0)
        return -1;
    ts_engine_options o;
    memset(&o, 0, sizeof o);
    o.log_dir = log_dir;
    o.durability = sync ? TS_DURABILITY_SYNC : b->cfg->durability;
    o.block_cache_bytes = (size_t)(b->cfg->cache_mb << 20);
    o.memtable_bytes = (size_t)(b->cfg->memtable_mb << 20);
    int rc = ts_engine_open(&o, &b->tab.engine);
    if (rc != BT_OK)
        return tab_fail(b, "ts_engine_open", rc);
    return 0;
}

/* Opens the engine, then the tablet with `open_tablet`; closes the engine
 * again if the tablet fails. */
static int tab_open_with(bench *b, bool sync, int (*open_tablet)(bench *b, const char *dir))
{
    char tdir[PATH_MAX];
    if (tab_path(b, "t1", tdir) != 0 || tab_open_engine(b, sync) != 0)
        return -1;
    if (open_tablet(b, tdir) != 0) {
        ts_engine_close(b->tab.engine);
        b->tab.engine = NULL;
        return -1;
    }
    return 0;
}

static int tab_create_tablet(bench *b, const char *dir)
{
    ts_schema s;
    ts_schema_init(&s);
    int rc = ts_schema_add_family(&s, "cf", 1, 0);
    if (rc != BT_OK)
        return tab_fail(b, "ts_schema_add_family", rc);
    rc = ts_tablet_create(b->tab.engine, dir, 1, &s, NULL, 0, NULL, 0, &b->tab.tablet);
    if (rc != BT_OK)
        return tab_fail(b, "ts_tablet_create", rc);
    return 0;
}

static int tab_open_tablet(bench *b, const char *dir)
{
    int rc = ts_tablet_open(b->tab.engine, dir, &b->tab.tablet);
    if (rc != BT_OK)
        return tab_fail(b, "ts_tablet_open", rc);
    return 0;
}

static int tab_open_fresh(bench *b, bool sync)
{
    if (reset_engine_dir(b) != 0)
        return -1;
    return tab_open_with(b, sync, tab_create_tablet);
}

static int tab_open_existing(bench *b, bool sync)
{
    return tab_open_with(b, sync, tab_open_tablet);
}

static int tab_put(bench *b, const char *key, size_t klen, const char *val, size_t vlen)
{
    ts_mutation m;
    memset(&m, 0, sizeof m);
    m.type = TS_SET_CELL;
    m.family = "cf";
    m.family_len = 2;
    m.qualifier = (const uint8_t *)"c";
    m.qualifier_len = 1;
    m.timestamp = b->tab.next_ts++;
    m.value = (const uint8_t *)val;
    m.value_len = vlen;
    int rc = ts_tablet_mutate_row(b->tab.tablet, (const uint8_t *)key, klen, &m, 1);
    if (rc != BT_OK)
        return tab_fail(b, "ts_tablet_mutate_row", rc);
    return 0;
}

static size_t row_value_bytes(const ts_row *row)
{
    size_t n = 0;
    for (size_t i = 0; i < row->n_cells; i++)
        n += row->cells[i].value_len;
    return n;
}

static int tab_get(bench *b, const char *key, size_t klen, size_t *vlen)
{
    ts_read_options o;
    memset(&o, 0, sizeof o);
    o.versions = 1;
    ts_row row;
    int rc = ts_tablet_read_row(b->tab.tablet, (const uint8_t *)key, klen, &o, &row);
    if (rc == BT_ENOTFOUND)
        return 0;
    if (rc != BT_OK)
        return tab_fail(b, "ts_tablet_read_row", rc);
    *vlen = row_value_bytes(&row);
    ts_row_free(&row);
    return 1;
}

static int tab_scan_count(bench *b, uint64_t *entries, uint64_t *bytes)
{
    ts_scanner *s;
    int rc = ts_tablet_scan(b->tab.tablet, NULL, &s);
    if (rc != BT_OK)
        return tab_fail(b, "ts_tablet_scan", rc);
    ts_row row;
    while ((rc = ts_scanner_next(s, &row)) == BT_OK) {
        (*entries)++;
        *bytes += row.key_len + row_value_bytes(&row);
    }
    ts_scanner_close(s);
    if (rc != BT_ENOTFOUND)
        return tab_fail(b, "ts_scanner_next", rc);
    return 0;
}

static int tab_close(bench *b)
{
    int rc = ts_tablet_close(b->tab.tablet);
    b->tab.tablet = NULL;
    int erc = ts_engine_close(b->tab.engine);
    b->tab.engine = NULL;
    if (rc != BT_OK)
        return tab_fail(b, "ts_tablet_close", rc);
    if (erc != BT_OK)
        return tab_fail(b, "ts_engine_close", erc);
    return 0;
}

static const engine_vt tablet_vt = {
    "tablet", tab_open_fresh, tab_open_existing, tab_put, tab_get, tab_scan_count, tab_close,
};

/* ---- LevelDB engine ------------------------------------------------------ */

/* Takes a LevelDB error string into b->err and frees it. */
static int ldb_fail(bench *b, const char *what, char *errptr)
{
    snprintf(b->err, sizeof b->err, "%s: %s", what, errptr);
    leveldb_free(errptr);
    return -1;
}

static void ldb_free_options(leveldb_state *l)
{
    if (l->ropts) leveldb_readoptions_destroy(l->ropts);
    if (l->wopts) leveldb_writeoptions_destroy(l->wopts);
    if (l->options) leveldb_options_destroy(l->options);
    if (l->filter) leveldb_filterpolicy_destroy(l->filter);
    if (l->cache) leveldb_cache_destroy(l->cache);
    memset(l, 0, sizeof *l);
}

static int ldb_open_existing(bench *b, bool sync)
{
    leveldb_state *l = &b->ldb;
    l->cache = leveldb_cache_create_lru((size_t)(b->cfg->cache_mb << 20));
    l->filter = leveldb_filterpolicy_create_bloom(10);
    l->options = leveldb_options_create();
    leveldb_options_set_create_if_missing(l->options, 1);
    leveldb_options_set_cache(l->options, l->cache);
    leveldb_options_set_filter_policy(l->options, l->filter);
    l->wopts = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(l->wopts, sync ? 1 : 0);
    l->ropts = leveldb_readoptions_create();
    char *err = NULL;
    l->db = leveldb_open(l->options, b->engine_dir, &err);
    if (err) {
        ldb_free_options(l);
        return ldb_fail(b, "leveldb_open", err);
    }
    return 0;
}

static int ldb_open_fresh(bench *b, bool sync)
{
    if (reset_engine_dir(b) != 0)
        return -1;
    return ldb_open_existing(b, sync);
}

static int ldb_put(bench *b, const char *key, size_t klen, const char *val, size_t vlen)
{
    char *err = NULL;
    leveldb_put(b->ldb.db, b->ldb.wopts, key, klen, val, vlen, &err);
    if (err)
        return ldb_fail(b, "leveldb_put", err);
    return 0;
}

static int ldb_get(bench *b, const char *key, size_t klen, size_t *vlen)
{
    char *err = NULL;
    char *v = leveldb_get(b->ldb.db, b->ldb.ropts, key, klen, vlen, &err);
    if (err)
        return ldb_fail(b, "leveldb_get", err);
    if (!v)
        return 0;
    leveldb_free(v);
    return 1;
}

static int ldb_scan_count(bench *b, uint64_t *entries, uint64_t *bytes)
{
    leveldb_iterator_t *it = leveldb_create_iterator(b->ldb.db, b->ldb.ropts);
    for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t klen, vlen;
        leveldb_iter_key(it, &klen);
        leveldb_iter_value(it, &vlen);
        (*entries)++;
        *bytes += klen + vlen;
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err)
        return ldb_fail(b, "leveldb iterator", err);
    return 0;
}

static int ldb_close(bench *b)
{
    leveldb_close(b->ldb.db);
    b->ldb.db = NULL;
    ldb_free_options(&b->ldb);
    return 0;
}

static const engine_vt leveldb_vt = {
    "leveldb", ldb_open_fresh, ldb_open_existing, ldb_put, ldb_get, ldb_scan_count, ldb_close,
};

/* ---- database state across workloads ------------------------------------ */

static void db_close(bench *b)
{
    if (!b->open)
        return;
    b->open = false;
    check(b, b->vt->close(b));
}

static void db_open_fresh(bench *b, bool sync)
{
    db_close(b);
    b->random_filled = false;
    check(b, b->vt->open_fresh(b, sync));
    b->open = true;
}

/* ---- timing and reporting ----------------------------------------------- */

typedef struct result {
    uint64_t ops;
    uint64_t bytes;
    double secs;
} result;

static double now_secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* For the tablet engine, a second line with the tablet's compaction state, so
 * a figure can be read against what the background threads were doing. */
static void report_tablet_stats(const bench *b)
{
    if (b->cfg->engine != ENGINE_TABLET || !b->tab.tablet) return;
    ts_tablet_stats st;
    ts_tablet_get_stats(b->tab.tablet, &st);
    printf("  tablet: sstables %u (%.1f MiB)  compactions minor %llu merging %llu major %llu"
           "  throttled_writes %llu\n",
           st.n_sstables, (double)st.sstable_bytes / 1048576.0,
           (unsigned long long)st.minor_compactions, (unsigned long long)st.merging_compactions,
           (unsigned long long)st.major_compactions, (unsigned long long)st.throttled_writes);
}

/* The workload's line (named after b->workload), then the tablet's stats. */
static void report(const bench *b, const result *r, const char *extra)
{
    double secs = r->secs > 0 ? r->secs : 1e-9;
    double us_per_op = r->ops ? secs * 1e6 / (double)r->ops : 0.0;
    printf("%-12s %10.0f ops/s  %9.3f us/op  %8.1f MB/s  %8.3f s%s%s\n",
           b->workload, (double)r->ops / secs, us_per_op,
           (double)r->bytes / 1048576.0 / secs, r->secs, extra[0] ? "  " : "", extra);
    report_tablet_stats(b);
    fflush(stdout);
}

/* ---- workload bodies ------------------------------------------------------ */

enum { STREAM_FILLRANDOM = 1, STREAM_OVERWRITE, STREAM_READRANDOM, STREAM_FILLSYNC };

/* Writes n keys: in key order when `random` is false, otherwise keys drawn
 * uniformly from [0, N) out of the given stream. */
static result do_writes(bench *b, uint64_t n, bool random, uint64_t stream)
{
    rng r = rng_stream(b->cfg->seed, stream);
    size_t vlen = (size_t)b->cfg->value_size;
    char key[KEY_LEN];
    b->gen.pos = 0;
    result res = { n, n * (KEY_LEN + vlen), 0 };
    double t0 = now_secs();
    for (uint64_t i = 0; i < n; i++) {
        format_key(random ? rng_next(&r) % b->cfg->n : i, key);
        check(b, b->vt->put(b, key, KEY_LEN, valgen_next(&b->gen, vlen), vlen));
    }
    res.secs = now_secs() - t0;
    return res;
}

/* Makes sure the open database holds the fillrandom data, building it
 * untimed if fillrandom did not run. */
static void need_random_db(bench *b)
{
    if (b->open && b->random_filled)
        return;
    if (!b->open && b->random_filled) {
        check(b, b->vt->open_existing(b, false));
        b->open = true;
        return;
    }
    db_open_fresh(b, false);
    do_writes(b, b->cfg->n, true, STREAM_FILLRANDOM);
    b->random_filled = true;
}

static void wl_fillseq(bench *b)
{
    db_open_fresh(b, false);
    result r = do_writes(b, b->cfg->n, false, 0);
    report(b, &r, "");
}

static void wl_fillrandom(bench *b)
{
    db_open_fresh(b, false);
    result r = do_writes(b, b->cfg->n, true, STREAM_FILLRANDOM);
    b->random_filled = true;
    report(b, &r, "");
}

static void wl_overwrite(bench *b)
{
    need_random_db(b);
    result r = do_writes(b, b->cfg->n, true, STREAM_OVERWRITE);
    report(b, &r, "");
}

static void wl_readrandom(bench *b)
{
    need_random_db(b);
    rng rn = rng_stream(b->cfg->seed, STREAM_READRANDOM);
    char key[KEY_LEN];
    uint64_t found = 0;
    result r = { b->cfg->n, 0, 0 };
    double t0 = now_secs();
    for (uint64_t i = 0; i < b->cfg->n; i++) {
        size_t vlen = 0;
        format_key(rng_next(&rn) % b->cfg->n, key);
        int rc = b->vt->get(b, key, KEY_LEN, &vlen);
        check(b, rc);
        if (rc == 1) {
            found++;
            r.bytes += KEY_LEN + vlen;
        }
    }
    r.secs = now_secs() - t0;
    char extra[64];
    snprintf(extra, sizeof extra, "found %" PRIu64 "/%" PRIu64, found, b->cfg->n);
    report(b, &r, extra);
}

static void wl_readseq(bench *b)
{
    need_random_db(b);
    result r = { 0, 0, 0 };
    double t0 = now_secs();
    check(b, b->vt->scan_count(b, &r.ops, &r.bytes));
    r.secs = now_secs() - t0;
    char extra[64];
    snprintf(extra, sizeof extra, "entries %" PRIu64, r.ops);
    report(b, &r, extra);
}

static void wl_fillsync(bench *b)
{
    uint64_t n = b->cfg->n / 100 ? b->cfg->n / 100 : 1;
    db_open_fresh(b, true);
    result r = do_writes(b, n, true, STREAM_FILLSYNC);
    report(b, &r, "");
}

static void (*const workload_fns[WL_COUNT])(bench *b) = {
    wl_fillseq, wl_fillrandom, wl_overwrite, wl_readrandom, wl_readseq, wl_fillsync,
};

/* ---- command line --------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bt-bench embedded --engine tablet|leveldb --n N --dir DIR [options]\n"
        "       bt-bench server --addr HOST:PORT --workload write|read|scan [options]\n"
        "               (see bt-bench server --help)\n"
        "       bt-bench sdk --lock URL --table T --workload put|get [options]\n"
        "               (see bt-bench sdk --help)\n"
        "\n"
        "  --engine E        tablet or leveldb (required)\n"
        "  --n N             number of keys and operations (required, >= 1)\n"
        "  --dir DIR         data directory; DIR/<engine> is wiped per fresh fill (required)\n"
        "  --cache-mb M      block cache size in MiB (default 8)\n"
        "  --memtable-mb M   tablet engine: memtable flush threshold in MiB (default: the engine's)\n"
        "  --value-size B    value size in bytes (default 100)\n"
        "  --durability D    tablet commit log mode: sync|group|none (default group)\n"
        "  --workloads LIST  comma-separated, run in order (default\n"
        "                    fillseq,fillrandom,overwrite,readrandom,readseq,fillsync)\n"
        "  --seed S          seed for keys and values (default 301)\n"
        "  -h, --help        show this help\n");
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bt-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    usage(stderr);
    exit(2);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

static uint64_t parse_num(const char *flag, const char *val, uint64_t lo, uint64_t hi)
{
    uint64_t v;
    if (!parse_u64(val, &v) || v < lo || v > hi)
        usage_error("%s: bad value '%s' (expected an integer in [%" PRIu64 ", %" PRIu64 "])",
                    flag, val, lo, hi);
    return v;
}

static int find_workload(const char *name, size_t len)
{
    for (int i = 0; i < WL_COUNT; i++)
        if (strlen(workload_names[i]) == len && memcmp(workload_names[i], name, len) == 0)
            return i;
    return -1;
}

static void parse_workloads(config *c, const char *list)
{
    c->n_workloads = 0;
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        int id = find_workload(p, len);
        if (id < 0)
            usage_error("--workloads: unknown workload '%.*s'", (int)len, p);
        if (c->n_workloads == MAX_WORKLOADS)
            usage_error("--workloads: more than %d entries in '%s'", MAX_WORKLOADS, list);
        c->workloads[c->n_workloads++] = (enum workload_id)id;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
}

static void set_option(config *c, const char *flag, const char *val)
{
    if (strcmp(flag, "--engine") == 0) {
        if (strcmp(val, "tablet") == 0)
            c->engine = ENGINE_TABLET;
        else if (strcmp(val, "leveldb") == 0)
            c->engine = ENGINE_LEVELDB;
        else
            usage_error("--engine: unknown engine '%s' (tablet or leveldb)", val);
    } else if (strcmp(flag, "--n") == 0) {
        c->n = parse_num(flag, val, 1, MAX_KEYS);
    } else if (strcmp(flag, "--dir") == 0) {
        if (!*val)
            usage_error("--dir: empty path");
        c->dir = val;
    } else if (strcmp(flag, "--cache-mb") == 0) {
        c->cache_mb = parse_num(flag, val, 1, 1u << 20);
    } else if (strcmp(flag, "--memtable-mb") == 0) {
        c->memtable_mb = parse_num(flag, val, 1, 1u << 16);
    } else if (strcmp(flag, "--value-size") == 0) {
        c->value_size = parse_num(flag, val, 0, TS_MAX_VALUE);
    } else if (strcmp(flag, "--durability") == 0) {
        int d = ts_durability_parse(val);
        if (d < 0)
            usage_error("--durability: unknown mode '%s' (sync, group or none)", val);
        c->durability = (ts_durability)d;
    } else if (strcmp(flag, "--workloads") == 0) {
        parse_workloads(c, val);
    } else if (strcmp(flag, "--seed") == 0) {
        c->seed = parse_num(flag, val, 0, UINT64_MAX);
    } else {
        usage_error("unknown option '%s'", flag);
    }
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    return false;
}

static void parse_args(config *c, int argc, char **argv)
{
    int engine_seen = 0;
    c->engine = ENGINE_TABLET;
    c->cache_mb = 8;
    c->value_size = 100;
    c->durability = TS_DURABILITY_GROUP;
    c->seed = 301;
    parse_workloads(c, "fillseq,fillrandom,overwrite,readrandom,readseq,fillsync");
    if (argc < 2)
        usage_error("missing mode (embedded or server)");
    if (strcmp(argv[1], "embedded") != 0)
        usage_error("unknown mode '%s' (embedded or server)", argv[1]);
    for (int i = 2; i < argc; i++) {
        char flag[32];
        const char *arg = argv[i], *val, *eq = strchr(arg, '=');
        if (strncmp(arg, "--", 2) != 0 || (eq ? (size_t)(eq - arg) : strlen(arg)) >= sizeof flag)
            usage_error("unexpected argument '%s'", arg);
        if (eq) {
            snprintf(flag, sizeof flag, "%.*s", (int)(eq - arg), arg);
            val = eq + 1;
        } else {
            snprintf(flag, sizeof flag, "%s", arg);
            if (i + 1 >= argc)
                usage_error("option '%s' needs a value", arg);
            val = argv[++i];
        }
        engine_seen |= strcmp(flag, "--engine") == 0;
        set_option(c, flag, val);
    }
    if (!engine_seen)
        usage_error("missing --engine");
    if (c->n == 0)
        usage_error("missing --n");
    if (!c->dir)
        usage_error("missing --dir");
}

/* ---- main ------------------------------------------------------------------ */

static void print_header(const bench *b)
{
    const config *c = b->cfg;
    printf("bt-bench embedded: engine %s  n %" PRIu64 "  value_size %" PRIu64 "  cache_mb %" PRIu64,
           b->vt->name, c->n, c->value_size, c->cache_mb);
    if (c->engine == ENGINE_TABLET)
        printf("  durability %s (fillsync: sync)", ts_durability_name(c->durability));
    else
        printf("  durability write sync=0 (fillsync: sync=1)");
    printf("  seed %" PRIu64 "  dir %s\n", c->seed, b->engine_dir);
    fflush(stdout);
}

static void bench_init(bench *b, const config *c)
{
    memset(b, 0, sizeof *b);
    b->cfg = c;
    b->vt = c->engine == ENGINE_TABLET ? &tablet_vt : &leveldb_vt;
    b->tab.next_ts = 1;
    b->workload = "setup";
    if (snprintf(b->engine_dir, sizeof b->engine_dir, "%s/%s", c->dir, b->vt->name)
        >= (int)sizeof b->engine_dir)
        usage_error("--dir: path too long: '%s'", c->dir);
    if (mkdir_p(c->dir) != 0) {
        fprintf(stderr, "bt-bench: creating %s: %s\n", c->dir, strerror(errno));
        exit(1);
    }
    valgen_init(&b->gen, c->seed, (size_t)c->value_size);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "server") == 0)
        return bench_server_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "sdk") == 0)
        return bench_sdk_main(argc, argv);
    if (wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    config cfg;
    memset(&cfg, 0, sizeof cfg);
    parse_args(&cfg, argc, argv);

    bench b;
    bench_init(&b, &cfg);
    print_header(&b);
    for (int i = 0; i < cfg.n_workloads; i++) {
        b.workload = workload_names[cfg.workloads[i]];
        workload_fns[cfg.workloads[i]](&b);
    }
    b.workload = "close";
    db_close(&b);
    free(b.gen.pool);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak_rss_kb %ld engine %s\n", ru.ru_maxrss, b.vt->name);
    return 0;
}

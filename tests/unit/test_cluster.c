/* tests/unit/test_cluster.c: end-to-end tests of a whole cluster of REAL
 * processes (bt-lockd, bt-master, bt-tabletserver; fixture in
 * tests/unit/cluster_fixture.h), driven through the public SDK (libbt).
 *
 *   create_write_read_scan_delete  pre-split table on 3 servers, 2000 rows by
 *                                  apply and batch, point reads, a full scan,
 *                                  delete
 *   sigkill_recovery               SIGKILL the busiest server, N rounds
 *                                  (BT_RECOVERY_ROUNDS, default 20) under 4
 *                                  writers: recovery time per round and the
 *                                  median printed (target < 5 s, recorded in
 *                                  docs/performance.md); every acknowledged
 *                                  row survives
 *   sigstop_past_lease             a stopped server's tablet moves; resumed,
 *                                  the old server acknowledges nothing
 *   master_failover                kill -9 the active master: the data path
 *                                  keeps working, the standby takes over
 *   splits_and_moves_under_load    splits and moves while writing and
 *                                  scanning: every row once, in order
 *   cold_client_round_trips        lookup round trips of an empty cache
 *   errors                         the SDK's error codes and messages
 *   balancing                      1 server -> 3: tablets spread out
 *   gc_after_compaction            GC deletes the SSTables a split parent
 *                                  left once its children compacted, the
 *                                  parent's directory, and a deleted
 *                                  table's directory (and the files a
 *                                  compaction replaced: servers keep them)
 *   gc_stops_when_a_manifest_names_a_missing_file
 *                                  GC deletes nothing on a partial view
 *
 * Figures the lead quotes (recovery times, round trips, takeover time) are
 * printed with cr_log_info ("[----]" lines).
 */
#include <ftw.h>
#include <inttypes.h>
#include <stdatomic.h>

#include "tests/unit/cluster_fixture.h"

/* ---- writers --------------------------------------------------------------------- */

typedef struct cl_writer cl_writer;
typedef void (*cl_key_fn)(const cl_writer *w, size_t n, char *out, size_t cap);

/* A thread writing distinct rows (value = key) one at a time with bt_apply
 * until *stop, recording every acknowledged row. */
struct cl_writer {
    pthread_t th;
    int idx;
    bt_table *t;
    atomic_bool *stop;
    cl_key_fn key;
    char prefix[64];
    clf_strs acked;             /* when shared is NULL */
    pthread_mutex_t *mu;        /* guards *shared */
    clf_strs *shared;
    size_t sent, fails;
    int first_rc;
    char first_msg[256];
    int64_t max_us;
    atomic_size_t ok;
};

static void *writer_main(void *arg)
{
    cl_writer *w = arg;
    while (!atomic_load(w->stop)) {
        char key[128];
        w->key(w, w->sent, key, sizeof key);
        w->sent++;
        int64_t t0 = tsf_now_us();
        int rc = clf_put(w->t, key, key);
        int64_t us = tsf_now_us() - t0;
        if (us > w->max_us) w->max_us = us;
        if (rc == BT_OK) {
            if (w->shared) {
                pthread_mutex_lock(w->mu);
                clf_strs_add(w->shared, key, strlen(key));
                pthread_mutex_unlock(w->mu);
            } else {
                clf_strs_add(&w->acked, key, strlen(key));
            }
            atomic_fetch_add(&w->ok, 1);
        } else {
            if (!w->fails++) {
                w->first_rc = rc;
                snprintf(w->first_msg, sizeof w->first_msg, "row %s: %s (%s) after %lld ms", key, bt_errname(rc),
                         bt_errmsg(), (long long)(us / 1000));
            }
            tsf_sleep_ms(5);
        }
    }
    return NULL;
}

/* shared (guarded by mu) receives the acknowledged rows if not NULL, else
 * w->acked. */
static void writer_start(cl_writer *w, int idx, bt_table *t, atomic_bool *stop, cl_key_fn key, const char *prefix,
                         pthread_mutex_t *mu, clf_strs *shared)
{
    memset(w, 0, sizeof *w);
    w->mu = mu;
    w->shared = shared;
    w->idx = idx;
    w->t = t;
    w->stop = stop;
    w->key = key;
    snprintf(w->prefix, sizeof w->prefix, "%s", prefix ? prefix : "");
    atomic_init(&w->ok, 0);
    cr_assert_eq(pthread_create(&w->th, NULL, writer_main, w), 0);
}

/* Keys spread over a..z (so over every tablet of a table split at letters). */
static void key_spread(const cl_writer *w, size_t n, char *out, size_t cap)
{
    snprintf(out, cap, "%c%d-%07zu", 'a' + (int)((n * 7 + (size_t)w->idx * 3) % 26), w->idx, n);
}

/* Keys "<prefix><writer>-<n>" (inside one tablet). */
static void key_prefixed(const cl_writer *w, size_t n, char *out, size_t cap)
{
    snprintf(out, cap, "%s%d-%07zu", w->prefix, w->idx, n);
}

/* "k" and 8 digits, a permutation of n: spread over k0.. to k9.. */
static void key_perm(const cl_writer *w, size_t n, char *out, size_t cap)
{
    (void)w;
    snprintf(out, cap, "k%08llu", (unsigned long long)(((uint64_t)n * 2654435761ull) % 100000000ull));
}

/* Fails the test if the writer saw an error (every call has a 20 s deadline,
 * far past any recovery here). */
static void writer_assert_clean(const cl_writer *w, const char *what)
{
    cr_assert_eq(w->fails, 0, "%s: writer %d: %zu of %zu writes failed (first: %s)", what, w->idx, w->fails, w->sent,
                 w->first_msg);
}

/* ---- reading many rows back ---------------------------------------------------------- */

typedef struct cl_reader {
    pthread_t th;
    bt_table *t;
    char **keys;
    size_t from, to;
    size_t missing;
    char first[256];
} cl_reader;

static void *reader_main(void *arg)
{
    cl_reader *r = arg;
    for (size_t i = r->from; i < r->to; i++) {
        char got[128] = "";
        int rc = clf_get(r->t, r->keys[i], r->keys[i], got);
        if (rc != BT_OK && !r->missing++)
            snprintf(r->first, sizeof r->first, "%s: %s (%s%s)", r->keys[i], bt_errname(rc),
                     rc == BT_ECORRUPT ? "holds " : bt_errmsg(), rc == BT_ECORRUPT ? got : "");
    }
    return NULL;
}

/* Reads every key with bt_read_row (4 threads); each must hold its own key. */
static void assert_all_readable(bt_table *t, const clf_strs *keys, const char *when)
{
    enum { NR = 4 };
    cl_reader r[NR];
    size_t per = (keys->n + NR - 1) / NR;
    for (int i = 0; i < NR; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].t = t;
        r[i].keys = keys->s;
        r[i].from = (size_t)i * per < keys->n ? (size_t)i * per : keys->n;
        r[i].to = r[i].from + per < keys->n ? r[i].from + per : keys->n;
        cr_assert_eq(pthread_create(&r[i].th, NULL, reader_main, &r[i]), 0);
    }
    size_t missing = 0;
    const char *first = NULL;
    for (int i = 0; i < NR; i++) {
        pthread_join(r[i].th, NULL);
        if (r[i].missing && !first) first = r[i].first;
        missing += r[i].missing;
    }
    cr_assert_eq(missing, 0, "%s: %zu of %zu acknowledged rows cannot be read back (first: %s)", when, missing,
                 keys->n, first ? first : "");
}

static bool has_word(const char *msg, const char *const *words)
{
    for (size_t i = 0; words[i]; i++)
        if (strcasestr(msg, words[i])) return true;
    return false;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The probe row of a tablet: its start row + "#probe" ("#probe" for the
 * first tablet), which lies in the tablet for the letter splits used here. */
static void probe_row(const bt_tablet_desc *td, char *out, size_t cap)
{
    snprintf(out, cap, "%.*s#probe", (int)td->start_len, (const char *)td->start);
    cr_assert(clf_in_tablet(td, out, strlen(out)), "probe row %s is not in its tablet", out);
}

/* ==== 1. create, write, read, scan, delete ============================================ */

CL_TEST(create_write_read_scan_delete, 120)
{
    enum { N = 2000, SINGLE = 1000, BATCH = 100 };
    clf_cluster(1, 3, 0);
    const char *splits[] = {"g", "n", "t"};
    clf_create_table(C.client, "t1", splits, 3);

    bt_table_desc *d = clf_describe(C.client, "t1");
    cr_assert_str_eq(d->name, "t1");
    cr_assert_eq(d->n_tablets, 4, "t1 has %zu tablets, want 4", d->n_tablets);
    const char *bounds[] = {"", "g", "n", "t", ""};
    char servers[4][80];
    size_t distinct = 0;
    for (size_t i = 0; i < 4; i++) {
        const bt_tablet_desc *td = &d->tablets[i];
        cr_assert(td->start_len == strlen(bounds[i]) && !memcmp(td->start, bounds[i], td->start_len),
                  "tablet %zu starts at \"%.*s\", want \"%s\"", i, (int)td->start_len, (const char *)td->start,
                  bounds[i]);
        cr_assert(td->end_len == strlen(bounds[i + 1]) && !memcmp(td->end, bounds[i + 1], td->end_len),
                  "tablet %zu ends at \"%.*s\", want \"%s\"", i, (int)td->end_len, (const char *)td->end,
                  bounds[i + 1]);
        cr_assert(td->server && td->server[0] && td->server_id && clf_ts_index(td->server_id) >= 0,
                  "tablet %zu is not assigned to a known server (server \"%s\", id \"%s\")", i,
                  td->server ? td->server : "(null)", td->server_id ? td->server_id : "(null)");
        cr_assert_str_eq(td->server, C.ts[clf_ts_index(td->server_id)].addr, "tablet %zu: address of %s", i,
                         td->server_id);
        bool seen = false;
        for (size_t k = 0; k < distinct; k++) seen |= !strcmp(servers[k], td->server_id);
        if (!seen) snprintf(servers[distinct++], sizeof servers[0], "%s", td->server_id);
    }
    cr_assert_gt(distinct, 1, "all 4 tablets are on one server (%s)", servers[0]);
    cr_log_info("create: 4 tablets over %zu servers", distinct);
    bt_table_desc_free(d);

    bt_table *t = clf_open(C.client, "t1");
    cr_assert_str_eq(bt_table_name(t), "t1");
    clf_strs want = {0};
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "%c%04d", 'a' + i % 26, i);
        clf_strs_add(&want, key, strlen(key));
    }
    for (int i = 0; i < SINGLE; i++) CL_OK(clf_put(t, want.s[i], want.s[i]));
    for (int b = SINGLE; b < N; b += BATCH) {
        bt_mutation *m[BATCH];
        int st[BATCH];
        for (int i = 0; i < BATCH; i++) {
            const char *k = want.s[b + i];
            m[i] = bt_mutation_new(k, strlen(k));
            cr_assert_not_null(m[i]);
            CL_OK(bt_mutation_set(m[i], CLF_FAMILY, "c", 1, BT_SERVER_TIME, k, strlen(k)));
            st[i] = 1;
        }
        CL_OK(bt_apply_batch(t, m, BATCH, st));
        for (int i = 0; i < BATCH; i++) {
            cr_assert_eq(st[i], BT_OK, "batch row %s: %s", want.s[b + i], bt_errname(st[i]));
            bt_mutation_free(m[i]);
        }
    }
    for (int i = 0; i < N; i++) {
        char got[128] = "";
        int rc = clf_get(t, want.s[i], want.s[i], got);
        cr_assert_eq(rc, BT_OK, "read %s: %s (%s)", want.s[i], bt_errname(rc), rc == BT_ECORRUPT ? got : bt_errmsg());
    }
    clf_strs_sort(&want);
    clf_strs got = {0};
    char why[512];
    int rc = clf_scan_keys(t, &got, true, why);
    cr_assert_eq(rc, BT_OK, "scan: %s", why);
    cr_assert_str_empty(why, "scan: %s", why);
    cr_assert_eq(got.n, want.n, "the scan returned %zu rows, want %zu", got.n, want.n);
    for (size_t i = 0; i < got.n; i++) cr_assert_str_eq(got.s[i], want.s[i], "scan row %zu", i);
    clf_strs_free(&got);
    clf_strs_free(&want);
    bt_table_close(t);

    CL_OK(bt_delete_table(C.client, "t1"));
    bt_table *gone = NULL;
    CL_RC(bt_table_open(C.client, "t1", &gone), BT_ENOTFOUND);
    char **names = NULL;
    size_t n = 0;
    CL_OK(bt_list_tables(C.client, &names, &n));
    for (size_t i = 0; i < n; i++) cr_assert_str_neq(names[i], "t1", "t1 is still listed after its deletion");
    bt_free_names(names, n);
}

/* ==== 2. SIGKILL recovery ============================================================== */

static int recovery_rounds(void)
{
    const char *e = getenv("BT_RECOVERY_ROUNDS");
    int n = e && *e ? atoi(e) : 20;
    return n < 1 ? 1 : n > 200 ? 200 : n;
}

CL_TEST(sigkill_recovery, 900)
{
    enum { NW = 4 };
    const int rounds = recovery_rounds();
    int64_t t_start = tsf_now_ms();
    clf_cluster(1, 3, 0);
    const char *splits[] = {"g", "n", "t"};
    clf_create_table(C.client, "rk", splits, 3);
    bt_table *t = clf_open(C.client, "rk");

    atomic_bool stop = false;
    cl_writer w[NW];
    for (int i = 0; i < NW; i++) writer_start(&w[i], i, t, &stop, key_spread, NULL, NULL, NULL);
    tsf_sleep_ms(500);

    int64_t *ms = calloc((size_t)rounds, sizeof *ms);
    cr_assert_not_null(ms);
    for (int r = 0; r < rounds; r++) {
        /* the victim: the server with the most tablets of rk */
        bt_table_desc *d = clf_describe(C.client, "rk");
        int victim = -1;
        size_t most = 0;
        for (int i = 0; i < CLF_MAX_TS; i++) {
            if (C.ts[i].pid <= 0) continue;
            size_t k = clf_tablets_on(d, C.ts[i].name);
            if (k > most) {
                most = k;
                victim = i;
            }
        }
        cr_assert(victim >= 0, "round %d: no live server serves a tablet of rk", r + 1);
        char probes[8][64];
        size_t np = 0;
        for (size_t i = 0; i < d->n_tablets && np < 8; i++)
            if (d->tablets[i].server_id && !strcmp(d->tablets[i].server_id, C.ts[victim].name))
                probe_row(&d->tablets[i], probes[np++], sizeof probes[0]);
        bt_table_desc_free(d);
        for (size_t i = 0; i < np; i++) CL_OK(clf_put(t, probes[i], probes[i]));

        int64_t t_kill = tsf_now_us();
        clf_kill_ts(victim);
        for (size_t i = 0; i < np; i++) {
            int64_t end = tsf_now_ms() + 30000;
            int rc;
            char got[128] = "";
            while ((rc = clf_get(t, probes[i], probes[i], got)) != BT_OK && tsf_now_ms() < end) tsf_sleep_ms(5);
            cr_assert_eq(rc, BT_OK, "round %d: %s (tablet of the killed %s) unreadable 30 s after the kill: %s (%s)",
                         r + 1, probes[i], C.ts[victim].name, bt_errname(rc), rc == BT_ECORRUPT ? got : bt_errmsg());
        }
        ms[r] = (tsf_now_us() - t_kill) / 1000;
        printf("recovery: round %d: %lld ms (killed %s, %zu tablets)\n", r + 1, (long long)ms[r], C.ts[victim].name,
               most);
        fflush(stdout);

        clf_start_ts(victim); /* same id: the cluster keeps 3 servers */
        clf_wait_ready(3, 6, CLF_READY_MS);
    }
    tsf_sleep_ms(300);
    atomic_store(&stop, true);
    clf_strs acked = {0};
    size_t sent = 0;
    for (int i = 0; i < NW; i++) {
        pthread_join(w[i].th, NULL);
        sent += w[i].sent;
        for (size_t j = 0; j < w[i].acked.n; j++) clf_strs_add(&acked, w[i].acked.s[j], strlen(w[i].acked.s[j]));
    }
    for (int i = 0; i < NW; i++) writer_assert_clean(&w[i], "sigkill_recovery");
    cr_assert_gt(acked.n, (size_t)rounds * 10, "only %zu writes acknowledged in %d rounds", acked.n, rounds);
    assert_all_readable(t, &acked, "after every kill");

    int64_t *sorted = calloc((size_t)rounds, sizeof *sorted);
    memcpy(sorted, ms, (size_t)rounds * sizeof *ms);
    qsort(sorted, (size_t)rounds, sizeof *sorted, cmp_i64);
    int64_t median = rounds % 2 ? sorted[rounds / 2] : (sorted[rounds / 2 - 1] + sorted[rounds / 2]) / 2;
    cr_log_info("recovery after SIGKILL (lease %d ms, %d rounds): min %lld ms, median %lld ms, max %lld ms; "
                "%zu of %zu writes acknowledged, all readable; test took %lld s",
                CLF_LEASE_MS, rounds, (long long)sorted[0], (long long)median, (long long)sorted[rounds - 1],
                acked.n, sent, (long long)(tsf_now_ms() - t_start) / 1000);
    printf("recovery: min %lld ms, median %lld ms, max %lld ms over %d rounds\n", (long long)sorted[0],
           (long long)median, (long long)sorted[rounds - 1], rounds);
    fflush(stdout);
    /* The target (under 5 s with a 3 s lease) is a performance figure,
     * recorded with this output in docs/performance.md, not asserted here:
     * timed assertions fail on slow machines for no fault of the code.  What
     * is asserted is that every round recovers (30 s bound above) and that
     * no acknowledged write is lost. */
    for (int i = 0; i < NW; i++) clf_strs_free(&w[i].acked);
    clf_strs_free(&acked);
    free(sorted);
    free(ms);
    bt_table_close(t);
}

/* ==== 3. SIGSTOP past the lease ========================================================== */

/* One TSP_MUTATE_ROW straight to addr (no libbt, no retry). */
static int raw_mutate(bt_conn_pool *pool, const char *addr, uint64_t tid, const char *row)
{
    bt_buf req = {0}, resp = {0};
    ts_mutation m = tsf_set(CLF_FAMILY, "c", TS_SERVER_TIME, row);
    tsf_req_mutate(&req, tid, row, strlen(row), &m, 1);
    int rc = bt_conn_call(pool, addr, TSP_MUTATE_ROW, req.data, req.len, &resp, 2000, 0);
    bt_buf_free(&req);
    bt_buf_free(&resp);
    return rc;
}

CL_TEST(sigstop_past_lease, 180)
{
    clf_cluster(1, 3, 0);
    const char *splits[] = {"g", "n", "t"};
    clf_create_table(C.client, "ss", splits, 3);

    /* a tablet on a server without a METADATA tablet, if there is one */
    bt_table_desc *meta = clf_describe(C.client, BT_METADATA_TABLE);
    bt_table_desc *d = clf_describe(C.client, "ss");
    size_t pick = 0;
    for (size_t i = d->n_tablets; i-- > 0;)
        if (d->tablets[i].server_id && clf_tablets_on(meta, d->tablets[i].server_id) == 0) pick = i;
    const bt_tablet_desc *td = &d->tablets[pick];
    uint64_t tid = td->id;
    int victim = clf_ts_index(td->server_id);
    cr_assert(victim >= 0, "tablet %zu is on unknown server \"%s\"", pick, td->server_id ? td->server_id : "");
    char old_addr[64], prefix[64];
    snprintf(old_addr, sizeof old_addr, "%s", td->server);
    snprintf(prefix, sizeof prefix, "%.*sw", (int)td->start_len, (const char *)td->start);
    if (!td->start_len) snprintf(prefix, sizeof prefix, "0w");
    char sample[96];
    snprintf(sample, sizeof sample, "%s0-0000000", prefix);
    cr_assert(clf_in_tablet(td, sample, strlen(sample)));
    bool victim_has_meta = clf_tablets_on(meta, C.ts[victim].name) > 0;
    bt_table_desc_free(meta);
    bt_table_desc_free(d);

    /* the writer's client tries a silent server for 2 s before looking again */
    bt_client *wc = clf_connect(30000, 2000);
    bt_table *wt = clf_open(wc, "ss");
    atomic_bool stop = false;
    cl_writer w;
    writer_start(&w, 0, wt, &stop, key_prefixed, prefix, NULL, NULL);
    int64_t end = tsf_now_ms() + 10000;
    while (atomic_load(&w.ok) < 20 && tsf_now_ms() < end) tsf_sleep_ms(10);
    cr_assert_geq(atomic_load(&w.ok), 20, "the writer could not write before the stop");

    clf_stop_ts(victim);
    int64_t t_stop = tsf_now_ms();
    /* the tablet moves once the master has declared the server dead */
    int64_t moved_ms = -1;
    char new_id[80] = "";
    while (tsf_now_ms() - t_stop < 30000) {
        bt_table_desc *dd = NULL;
        if (bt_describe_table(C.client, "ss", &dd) == BT_OK) {
            for (size_t i = 0; i < dd->n_tablets; i++) {
                const bt_tablet_desc *x = &dd->tablets[i];
                if (x->id == tid && x->server && x->server[0] && x->server_id && strcmp(x->server_id, C.ts[victim].name))
                    snprintf(new_id, sizeof new_id, "%s", x->server_id);
            }
            bt_table_desc_free(dd);
        }
        if (new_id[0]) {
            moved_ms = tsf_now_ms() - t_stop;
            break;
        }
        tsf_sleep_ms(100);
    }
    cr_assert_geq(moved_ms, 0, "tablet %llu still on the stopped %s 30 s after SIGSTOP", (unsigned long long)tid,
                  C.ts[victim].name);
    /* and the writer gets through again */
    size_t ok_at_move = atomic_load(&w.ok);
    int64_t t_move = tsf_now_ms(), resumed_ms = -1;
    while (atomic_load(&w.ok) < ok_at_move + 20 && tsf_now_ms() - t_move < 30000) {
        if (resumed_ms < 0 && atomic_load(&w.ok) > ok_at_move) resumed_ms = tsf_now_ms() - t_stop;
        tsf_sleep_ms(10);
    }
    cr_assert_geq(atomic_load(&w.ok), ok_at_move + 20, "the writer made no progress after tablet %llu moved to %s",
                  (unsigned long long)tid, new_id);
    if (resumed_ms < 0) resumed_ms = tsf_now_ms() - t_stop;

    /* the old server resumes: it must not acknowledge a write any more */
    bt_conn_pool *pool = NULL;
    bt_conn_pool_opts po = {.conns_per_server = 1, .request_timeout_ms = 2000, .connect_timeout_ms = 1000};
    CL_OK(bt_conn_pool_new(&po, &pool));
    clf_cont_ts(victim);
    int64_t t_cont = tsf_now_ms();
    enum { NRAW = 40 };
    char raw_keys[NRAW][96];
    int raw_rc[NRAW];
    size_t acked_raw = 0;
    for (int i = 0; i < NRAW; i++) {
        snprintf(raw_keys[i], sizeof raw_keys[i], "%sraw-%03d", prefix, i);
        raw_rc[i] = raw_mutate(pool, old_addr, tid, raw_keys[i]);
        if (raw_rc[i] == BT_OK) acked_raw++;
        tsf_sleep_ms(50);
    }
    int st = clf_wait_exit(&C.ts[victim], 15000);
    int64_t exit_ms = tsf_now_ms() - t_cont;
    int late_rc = st == -1 ? raw_mutate(pool, old_addr, tid, "late") : BT_EUNAVAIL;
    bt_conn_pool_free(pool);

    atomic_store(&stop, true);
    pthread_join(w.th, NULL);
    cr_assert_eq(acked_raw, 0, "the old server acknowledged %zu of %d writes after SIGCONT (first rc list: %s %s)",
                 acked_raw, NRAW, bt_errname(raw_rc[0]), bt_errname(raw_rc[1]));
    cr_assert_neq(late_rc, BT_OK, "the old server still acknowledges writes 15 s after SIGCONT");
    char how[64];
    clf_describe_status(st, how, sizeof how);
    if (st != -1)
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3,
                  "the old server ended with %s after SIGCONT, want exit status 3 (its lock file was deleted)", how);
    cr_log_info("sigstop: %s%s stopped; tablet moved to %s after %lld ms; writes resumed at +%lld ms; after SIGCONT "
                "the old server refused %d writes (first: %s) and %s",
                C.ts[victim].name, victim_has_meta ? " (with a METADATA tablet)" : "", new_id, (long long)moved_ms,
                (long long)resumed_ms, NRAW, bt_errname(raw_rc[0]),
                st == -1 ? "is still running (refusing writes)" : "exited with status 3");
    if (st != -1) cr_log_info("sigstop: the old server had exited within %lld ms of SIGCONT", (long long)exit_ms);

    writer_assert_clean(&w, "sigstop_past_lease");
    bt_table *t = clf_open(C.client, "ss");
    assert_all_readable(t, &w.acked, "after the move");
    /* a write the old server refused as NOT_SERVING never happened */
    for (int i = 0; i < NRAW; i++) {
        if (raw_rc[i] != BT_ENOTSERVING) continue;
        bt_row *r = NULL;
        int rc = bt_read_row(t, raw_keys[i], strlen(raw_keys[i]), NULL, &r);
        if (rc == BT_OK) bt_row_free(r);
        cr_assert_eq(rc, BT_ENOTFOUND, "%s, refused as NOT_SERVING by the old server, reads as %s", raw_keys[i],
                     bt_errname(rc));
    }
    bt_table_close(t);
    clf_strs_free(&w.acked);
    bt_table_close(wt);
    bt_close(wc);
}

/* ==== 4. master failover ================================================================= */

typedef struct cl_rw {
    pthread_t th;
    bt_table *t;
    atomic_bool *stop;
    size_t ops, fails;
    char first[256];
    int64_t max_us;
    int64_t *done_ms;           /* completion time of each successful op */
    size_t cap;
} cl_rw;

/* Writes a new row, reads it back; again until *stop. */
static void *rw_main(void *arg)
{
    cl_rw *x = arg;
    for (size_t i = 0; !atomic_load(x->stop); i++) {
        char key[64];
        snprintf(key, sizeof key, "%c-fo-%07zu", 'a' + (int)(i % 26), i);
        int64_t t0 = tsf_now_us();
        int rc = clf_put(x->t, key, key);
        char got[128] = "";
        if (!rc) rc = clf_get(x->t, key, key, got);
        int64_t us = tsf_now_us() - t0;
        if (us > x->max_us) x->max_us = us;
        if (rc) {
            if (!x->fails++)
                snprintf(x->first, sizeof x->first, "%s: %s (%s)", key, bt_errname(rc),
                         rc == BT_ECORRUPT ? got : bt_errmsg());
            tsf_sleep_ms(5);
            continue;
        }
        if (x->ops == x->cap) {
            x->cap = x->cap ? 2 * x->cap : 4096;
            int64_t *n = realloc(x->done_ms, x->cap * sizeof *n);
            if (!n) abort();
            x->done_ms = n;
        }
        x->done_ms[x->ops++] = tsf_now_ms();
    }
    return NULL;
}

CL_TEST(master_failover, 120)
{
    clf_cluster(2, 2, 0);
    const char *splits[] = {"m"};
    clf_create_table(C.client, "fo", splits, 1);
    bt_client *dc = clf_connect(30000, 0);
    bt_table *t = clf_open(dc, "fo");
    atomic_bool stop = false;
    cl_rw x = {.t = t, .stop = &stop};
    cr_assert_eq(pthread_create(&x.th, NULL, rw_main, &x), 0);
    tsf_sleep_ms(500);

    int64_t t_kill = tsf_now_ms();
    clf_kill_master(0);
    int64_t takeover = clf_wait_master_active(1, 30000);
    int64_t t_active = tsf_now_ms();
    tsf_sleep_ms(1000);
    atomic_store(&stop, true);
    pthread_join(x.th, NULL);
    size_t during = 0;
    for (size_t i = 0; i < x.ops; i++) during += x.done_ms[i] > t_kill && x.done_ms[i] < t_active;
    cr_assert_eq(x.fails, 0, "%zu of %zu write+read pairs failed while the master failed over (first: %s)", x.fails,
                 x.ops + x.fails, x.first);
    cr_assert_gt(during, 0, "no write+read completed between the kill and the takeover (%lld ms)",
                 (long long)takeover);
    cr_log_info("failover: standby active %lld ms after kill -9 of the master; %zu write+read pairs completed "
                "meanwhile, none failed (slowest %lld ms)",
                (long long)takeover, during, (long long)(x.max_us / 1000));
    free(x.done_ms);
    bt_table_close(t);
    bt_close(dc);

    /* administration through the new master */
    clf_wait_ready(2, 4, CLF_READY_MS);
    bt_cluster_status *st = NULL;
    CL_OK(bt_cluster_status_get(C.client, &st));
    cr_assert_str_eq(st->master, C.master[1].addr, "status names master %s, the standby is %s", st->master,
                     C.master[1].addr);
    bt_cluster_status_free(st);
    char **names = NULL;
    size_t n = 0;
    CL_OK(bt_list_tables(C.client, &names, &n));
    cr_assert(n == 1 && !strcmp(names[0], "fo"), "tables after the failover: %zu (first %s)", n, n ? names[0] : "-");
    bt_free_names(names, n);
    clf_create_table(C.client, "fo2", NULL, 0);
    bt_table *t2 = clf_open(C.client, "fo2");
    CL_OK(clf_put(t2, "row", "row"));
    CL_OK(clf_get(t2, "row", "row", NULL));
    bt_table_close(t2);
    CL_OK(bt_list_tables(C.client, &names, &n));
    cr_assert(n == 2 && !strcmp(names[0], "fo") && !strcmp(names[1], "fo2"), "tables: %zu", n);
    bt_free_names(names, n);
}

/* ==== 5. splits and moves under load =========================================================== */

typedef struct cl_scanner {
    pthread_t th;
    bt_table *t;
    atomic_bool *stop;
    pthread_mutex_t *mu;
    clf_strs *acked;
    int scans;
    size_t last_rows;
    char why[600];
} cl_scanner;

/* Full scans until *stop: each must hold, once and in order, every row
 * acknowledged before it started. */
static void *scanner_main(void *arg)
{
    cl_scanner *s = arg;
    while (!atomic_load(s->stop) && !s->why[0]) {
        pthread_mutex_lock(s->mu);
        size_t n0 = s->acked->n;
        char **before = malloc((n0 ? n0 : 1) * sizeof *before);
        if (!before) abort();
        memcpy(before, s->acked->s, n0 * sizeof *before); /* the strings outlive the scan */
        pthread_mutex_unlock(s->mu);
        clf_strs got = {0};
        char why[512];
        int rc = clf_scan_keys(s->t, &got, true, why);
        if (rc || why[0]) {
            snprintf(s->why, sizeof s->why, "scan %d: %s", s->scans + 1, why);
        } else {
            size_t missing = 0;
            const char *first = NULL;
            for (size_t i = 0; i < n0; i++)
                if (!clf_strs_has(&got, before[i])) {
                    if (!missing) first = before[i];
                    missing++;
                }
            if (missing)
                snprintf(s->why, sizeof s->why, "scan %d: %zu of %zu rows acknowledged before it are missing "
                         "(first: %s; %zu rows returned)", s->scans + 1, missing, n0, first, got.n);
            s->last_rows = got.n;
            s->scans++;
        }
        clf_strs_free(&got);
        free(before);
    }
    return NULL;
}

/* Moves tablet `id` to the server after its current one and checks describe. */
static void move_to_next(uint64_t id, const char *cur)
{
    int k = clf_ts_index(cur);
    cr_assert(k >= 0, "tablet %llu on unknown server %s", (unsigned long long)id, cur);
    const char *target = C.ts[(k + 1) % 3].name;
    CL_OK(bt_move_tablet(C.client, id, target));
    bt_table_desc *d = clf_describe(C.client, "sm");
    bool found = false;
    for (size_t i = 0; i < d->n_tablets; i++)
        if (d->tablets[i].id == id) {
            found = true;
            cr_assert_str_eq(d->tablets[i].server_id, target, "tablet %llu after the move",
                             (unsigned long long)id);
        }
    cr_assert(found, "tablet %llu vanished after its move", (unsigned long long)id);
    bt_table_desc_free(d);
}

CL_TEST(splits_and_moves_under_load, 180)
{
    clf_cluster(1, 3, 0);
    clf_create_table(C.client, "sm", NULL, 0);
    bt_table *t = clf_open(C.client, "sm");
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    clf_strs acked = {0};
    atomic_bool stop_w = false, stop_s = false;
    cl_writer w;
    writer_start(&w, 0, t, &stop_w, key_perm, NULL, &mu, &acked);
    tsf_sleep_ms(800);
    cl_scanner s = {.t = t, .stop = &stop_s, .mu = &mu, .acked = &acked};
    cr_assert_eq(pthread_create(&s.th, NULL, scanner_main, &s), 0);

    const char *at[] = {"k2", "k5", "k8"};
    for (size_t i = 0; i < 3; i++) {
        CL_OK(bt_split_table(C.client, "sm", at[i], strlen(at[i])));
        tsf_sleep_ms(300);
    }
    bt_table_desc *d = clf_describe(C.client, "sm");
    cr_assert_eq(d->n_tablets, 4, "sm has %zu tablets after 3 splits", d->n_tablets);
    for (size_t i = 0; i < 3; i++)
        cr_assert(d->tablets[i + 1].start_len == 2 && !memcmp(d->tablets[i + 1].start, at[i], 2),
                  "tablet %zu starts at \"%.*s\", want %s", i + 1, (int)d->tablets[i + 1].start_len,
                  (const char *)d->tablets[i + 1].start, at[i]);
    uint64_t ids[4];
    char cur[4][80];
    for (size_t i = 0; i < 4; i++) {
        ids[i] = d->tablets[i].id;
        snprintf(cur[i], sizeof cur[i], "%s", d->tablets[i].server_id ? d->tablets[i].server_id : "");
    }
    bt_table_desc_free(d);
    for (size_t i = 0; i < 3; i++) {
        move_to_next(ids[i], cur[i]);
        tsf_sleep_ms(200);
    }
    CL_OK(bt_move_tablet(C.client, ids[3], NULL));
    CL_OK(bt_split_table(C.client, "sm", "k3", 2)); /* a tablet that just moved */
    tsf_sleep_ms(300);
    CL_OK(bt_split_table(C.client, "sm", "k65", 3));
    tsf_sleep_ms(800);

    atomic_store(&stop_s, true);
    pthread_join(s.th, NULL);
    atomic_store(&stop_w, true);
    pthread_join(w.th, NULL);
    cr_assert_str_empty(s.why, "concurrent scanner: %s", s.why);
    cr_assert_geq(s.scans, 2, "only %d concurrent scans completed", s.scans);
    writer_assert_clean(&w, "splits_and_moves_under_load");
    cr_assert_gt(acked.n, 100, "only %zu rows acknowledged", acked.n);

    d = clf_describe(C.client, "sm");
    cr_assert_eq(d->n_tablets, 6, "sm has %zu tablets after 5 splits", d->n_tablets);
    cr_assert_eq(d->tablets[0].start_len, 0);
    cr_assert_eq(d->tablets[d->n_tablets - 1].end_len, 0);
    for (size_t i = 0; i + 1 < d->n_tablets; i++)
        cr_assert(d->tablets[i].end_len == d->tablets[i + 1].start_len &&
                      !memcmp(d->tablets[i].end, d->tablets[i + 1].start, d->tablets[i].end_len),
                  "tablets %zu and %zu do not meet", i, i + 1);
    bt_table_desc_free(d);

    clf_strs got = {0};
    char why[512];
    int rc = clf_scan_keys(t, &got, true, why);
    cr_assert_eq(rc, BT_OK, "final scan: %s", why);
    cr_assert_str_empty(why, "final scan: %s", why);
    size_t missing = 0;
    const char *first = NULL;
    for (size_t i = 0; i < acked.n; i++)
        if (!clf_strs_has(&got, acked.s[i])) {
            if (!missing) first = acked.s[i];
            missing++;
        }
    cr_assert_eq(missing, 0, "final scan: %zu of %zu acknowledged rows missing (first %s)", missing, acked.n, first);
    cr_assert_leq(got.n, w.sent, "final scan: %zu rows, only %zu written", got.n, w.sent);
    cr_log_info("splits/moves: %zu rows written, %d concurrent full scans, 5 splits, 4 moves; every scan complete "
                "and ordered", acked.n, s.scans);
    clf_strs_free(&got);
    clf_strs_free(&acked);
    bt_table_close(t);
}

/* ==== 6. cold client round trips ============================================================ */

CL_TEST(cold_client_round_trips, 90)
{
    clf_cluster(1, 2, 0);
    const char *splits[] = {"g", "n", "t"};
    clf_create_table(C.client, "cold", splits, 3);
    bt_table *t = clf_open(C.client, "cold");
    const char *rows[] = {"a1", "h1", "h2", "p1", "u1"};
    for (size_t i = 0; i < 5; i++) CL_OK(clf_put(t, rows[i], rows[i]));
    bt_table_close(t);

    bt_client *c = clf_connect(20000, 0);
    bt_client_stats s0, s1, s2, s3, s4;
    bt_client_get_stats(c, &s0);
    bt_table *ct = clf_open(c, "cold");
    bt_client_get_stats(c, &s1);
    CL_OK(clf_get(ct, "h1", "h1", NULL));
    bt_client_get_stats(c, &s2);
    CL_OK(clf_get(ct, "h2", "h2", NULL));
    bt_client_get_stats(c, &s3);
    CL_OK(clf_get(ct, "u1", "u1", NULL));
    bt_client_get_stats(c, &s4);
    unsigned long long open_rpcs = s1.lookup_rpcs - s0.lookup_rpcs, first = s2.lookup_rpcs - s0.lookup_rpcs,
                       second = s3.lookup_rpcs - s2.lookup_rpcs, later = s4.lookup_rpcs - s3.lookup_rpcs;
    cr_log_info("cold client: lookup round trips: table open %llu, first read %llu (since connect), second read in "
                "the same tablet %llu, a read in a later tablet %llu; tablet-server rpcs of the first read %llu",
                open_rpcs, first, second, later, (unsigned long long)(s2.rpcs - s1.rpcs));
    cr_assert_geq(first, 1, "a cold client read without any lookup round trip (stats not counted?)");
    cr_assert_leq(first, 3, "a cold client's first read took %llu lookup round trips, want <= 3 "
                            "(/bt/root, root tablet, METADATA tablet)", first);
    cr_assert_eq(second, 0, "a second read in the same tablet took %llu lookup round trips", second);
    cr_assert_gt(s3.cache_hits, s2.cache_hits, "the second read did not hit the location cache");
    cr_assert_eq(later, 0, "a read in the next tablets took %llu lookup round trips (METADATA rows not prefetched)",
                 later);
    bt_table_close(ct);
    bt_close(c);
}

/* ==== 7. errors =============================================================================== */

#define ASSERT_MSG(what, ...)                                                                \
    do {                                                                                     \
        const char *m_ = bt_errmsg();                                                        \
        static const char *const w_[] = {__VA_ARGS__, NULL};                                 \
        cr_assert(m_ && m_[0], "%s: bt_errmsg() is empty", what);                            \
        if (getenv("BT_TEST_VERBOSE")) cr_log_info("%s: \"%s\"", what, m_);                 \
        cr_assert(has_word(m_, w_), "%s: bt_errmsg() \"%s\" names none of the expected words", \
                  what, m_);                                                                 \
    } while (0)

CL_TEST(errors, 90)
{
    clf_cluster(1, 1, 0);
    bt_client *c = C.client;
    bt_table *t = NULL;

    CL_RC(bt_table_open(c, "nosuchtable", &t), BT_ENOTFOUND);
    ASSERT_MSG("open of an unknown table", "nosuchtable");

    bt_schema *s = bt_schema_new();
    CL_OK(bt_schema_add_family(s, CLF_FAMILY, 0, 0));
    CL_RC(bt_create_table(c, "bad name!", s, NULL, 0), BT_EINVAL);
    ASSERT_MSG("create with a bad name", "bad name!", "name");
    CL_OK(bt_create_table(c, "e1", s, NULL, 0));
    CL_RC(bt_create_table(c, "e1", s, NULL, 0), BT_EEXIST);
    ASSERT_MSG("create twice", "e1", "exist");
    bt_schema_free(s);

    bt_schema *empty = bt_schema_new();
    CL_RC(bt_create_table(c, "e2", empty, NULL, 0), BT_EINVAL);
    ASSERT_MSG("create without families", "famil");
    bt_schema_free(empty);
    CL_RC(bt_table_open(c, "e2", &t), BT_ENOTFOUND);

    t = clf_open(c, "e1");
    bt_mutation *m = bt_mutation_new("r", 1);
    CL_OK(bt_mutation_set(m, "nofam", "q", 1, BT_SERVER_TIME, "v", 1));
    CL_RC(bt_apply(t, m), BT_ENOTFOUND);
    ASSERT_MSG("a mutation of an unknown family", "nofam");
    bt_mutation_free(m);

    /* row keys: 4096 bytes is the limit */
    char *big = malloc(4097);
    memset(big, 'r', 4097);
    m = bt_mutation_new(big, 4096);
    CL_OK(bt_mutation_set(m, CLF_FAMILY, "q", 1, BT_SERVER_TIME, "v", 1));
    CL_OK(bt_apply(t, m));
    bt_mutation_free(m);
    bt_row *row = NULL;
    CL_OK(bt_read_row(t, big, 4096, NULL, &row));
    bt_row_free(row);
    m = bt_mutation_new(big, 4097);
    cr_assert_not_null(m);
    int rc = bt_mutation_set(m, CLF_FAMILY, "q", 1, BT_SERVER_TIME, "v", 1);
    if (rc == BT_OK) rc = bt_apply(t, m);
    cr_assert(rc == BT_ETOOBIG || rc == BT_EINVAL, "a 4097-byte row key -> %s, want TOO_BIG or INVALID",
              bt_errname(rc));
    ASSERT_MSG("a 4097-byte row key", "row", "key");
    bt_mutation_free(m);
    row = NULL;
    rc = bt_read_row(t, big, 4097, NULL, &row);
    cr_assert(rc == BT_ETOOBIG || rc == BT_EINVAL, "reading a 4097-byte row key -> %s", bt_errname(rc));
    ASSERT_MSG("reading a 4097-byte row key", "row", "key");
    free(big);

    /* values: 64 MiB is the limit */
    size_t vlen = ((size_t)64 << 20) + 1;
    char *val = malloc(vlen);
    cr_assert_not_null(val);
    memset(val, 'v', vlen);
    m = bt_mutation_new("bigvalue", 8);
    rc = bt_mutation_set(m, CLF_FAMILY, "q", 1, BT_SERVER_TIME, val, vlen);
    if (rc == BT_OK) rc = bt_apply(t, m);
    cr_assert_eq(rc, BT_ETOOBIG, "a value of 64 MiB + 1 -> %s, want TOO_BIG", bt_errname(rc));
    ASSERT_MSG("a value of 64 MiB + 1", "value", "64", "big", "large", "limit");
    bt_mutation_free(m);
    free(val);
    row = NULL;
    CL_RC(bt_read_row(t, "bigvalue", 8, NULL, &row), BT_ENOTFOUND);

    m = bt_mutation_new("r", 1);
    CL_RC(bt_apply(t, m), BT_EINVAL);
    ASSERT_MSG("an empty mutation", "empty", "no change", "mutation", "nothing");
    bt_mutation_free(m);
    bt_table_close(t);

    CL_RC(bt_delete_table(c, "nosuchtable"), BT_ENOTFOUND);
    ASSERT_MSG("delete of an unknown table", "nosuchtable");
}

/* ==== 8. balancing ================================================================================ */

CL_TEST(balancing, 150)
{
    clf_cluster(1, 1, 500);
    const char *splits[] = {"b", "d", "f", "h", "j", "l", "n"};
    clf_create_table(C.client, "bal", splits, 7);
    bt_table *t = clf_open(C.client, "bal");
    clf_strs keys = {0};
    for (int i = 0; i < 400; i++) {
        char k[32];
        snprintf(k, sizeof k, "%c%04d", 'a' + i % 16, i);
        CL_OK(clf_put(t, k, k));
        clf_strs_add(&keys, k, strlen(k));
    }
    clf_start_ts(1);
    clf_start_ts(2);
    int64_t t0 = tsf_now_ms();
    size_t on[3] = {0, 0, 0};
    bool done = false;
    while (!done && tsf_now_ms() - t0 < 60000) {
        bt_table_desc *d = NULL;
        if (bt_describe_table(C.client, "bal", &d) == BT_OK) {
            for (int i = 0; i < 3; i++) on[i] = clf_tablets_on(d, C.ts[i].name);
            done = on[0] >= 2 && on[1] >= 2 && on[2] >= 2 && on[0] + on[1] + on[2] == 8;
            bt_table_desc_free(d);
        }
        if (!done) tsf_sleep_ms(200);
    }
    cr_assert(done, "60 s after 2 servers joined the 8 tablets are spread %zu/%zu/%zu", on[0], on[1], on[2]);
    cr_log_info("balancing: 8 tablets spread %zu/%zu/%zu %lld ms after two servers joined", on[0], on[1], on[2],
                (long long)(tsf_now_ms() - t0));
    clf_wait_ready(3, 10, CLF_READY_MS);
    assert_all_readable(t, &keys, "after balancing");
    clf_strs_free(&keys);
    bt_table_close(t);
}

/* ==== 9. garbage collection ======================================================================== */

static size_t sst_count;
static int count_sst(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)f;
    size_t n = strlen(path);
    if (flag == FTW_F && n > 4 && !strcmp(path + n - 4, ".sst")) sst_count++;
    return 0;
}

/* *.sst files under data/tables/<table>. */
static size_t count_table_ssts(const char *table)
{
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/tables/%s", C.data_dir, table);
    sst_count = 0;
    nftw(dir, count_sst, 16, FTW_PHYS);
    return sst_count;
}

/* Tablet servers never delete SSTables (design section 4: a deposed server
 * must not delete a file the tablet's new owner reads); the master's GC
 * deletes what no manifest names: files a compaction replaced, a split
 * parent's SSTables once both children's major compactions replaced them,
 * and a deleted table's directory. */
CL_TEST(gc_after_compaction, 120)
{
    clf_cluster(1, 2, 0);
    clf_create_table(C.client, "gc1", NULL, 0);
    bt_table *t = clf_open(C.client, "gc1");
    clf_strs keys = {0};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 300; i++) {
            char k[32];
            snprintf(k, sizeof k, "%c%03d-%d", 'a' + i % 26, i, round);
            CL_OK(clf_put(t, k, k));
            clf_strs_add(&keys, k, strlen(k));
        }
        CL_OK(bt_flush_table(C.client, "gc1"));
    }
    bt_table_desc *d = clf_describe(C.client, "gc1");
    cr_assert_eq(d->n_tablets, 1);
    char parent_dir[PATH_MAX + 64];
    snprintf(parent_dir, sizeof parent_dir, "%s/%s", C.data_dir, d->tablets[0].dir);
    bt_table_desc_free(d);
    size_t flushed = count_table_ssts("gc1");
    cr_assert_geq(flushed, 2, "3 flushes left %zu SSTables", flushed);
    uint64_t files = 0, bytes = 0;
    CL_OK(bt_compact_table(C.client, "gc1"));
    size_t kept = count_table_ssts("gc1");
    cr_assert_eq(kept, flushed + 1, "after a major compaction: %zu SSTables on disk, want the %zu it replaced "
                 "(left for GC) plus its output", kept, flushed);
    CL_OK(bt_run_gc(C.client, 0, &files, &bytes));
    cr_assert_eq(files, flushed, "GC deleted %llu files, want the %zu the compaction replaced",
                 (unsigned long long)files, flushed);
    flushed = count_table_ssts("gc1");
    cr_assert_eq(flushed, 1, "%zu SSTables after compaction and GC", flushed);
    assert_all_readable(t, &keys, "after the first compaction and GC");
    CL_OK(bt_split_table(C.client, "gc1", "m", 1));
    d = clf_describe(C.client, "gc1");
    cr_assert_eq(d->n_tablets, 2, "gc1 has %zu tablets after the split", d->n_tablets);
    bt_table_desc_free(d);
    CL_OK(bt_compact_table(C.client, "gc1"));
    size_t compacted = count_table_ssts("gc1");
    cr_assert_geq(compacted, flushed + 2, "%zu SSTables after the split's compactions, %zu before", compacted,
                  flushed);
    CL_OK(bt_run_gc(C.client, 0, &files, &bytes));
    size_t after = count_table_ssts("gc1");
    cr_log_info("gc: %zu SSTables after 3 flushes, %zu after a split and major compactions, %zu after GC (it "
                "deleted %llu files, %llu bytes)", flushed, compacted, after, (unsigned long long)files,
                (unsigned long long)bytes);
    cr_assert_eq(after, 2, "%zu SSTables left after compaction and GC, want 1 per tablet", after);
    cr_assert_geq(files, compacted - after, "GC deleted %llu files, %zu were no longer referenced",
                  (unsigned long long)files, compacted - after);
    cr_assert_gt(bytes, 0);
    struct stat sb;
    cr_assert_neq(stat(parent_dir, &sb), 0, "the split parent's directory %s is still there after GC", parent_dir);
    assert_all_readable(t, &keys, "after compaction and GC");
    clf_strs got = {0};
    char why[512];
    CL_OK(clf_scan_keys(t, &got, true, why));
    cr_assert_str_empty(why, "%s", why);
    cr_assert_eq(got.n, keys.n, "the scan returned %zu rows, want %zu", got.n, keys.n);
    clf_strs_free(&got);
    clf_strs_free(&keys);
    bt_table_close(t);

    CL_OK(bt_delete_table(C.client, "gc1"));
    CL_OK(bt_run_gc(C.client, 0, &files, &bytes));
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/tables/gc1", C.data_dir);
    cr_assert_neq(stat(dir, &sb), 0, "%s still exists after the table was deleted and GC ran (%zu SSTables in it)",
                  dir, count_table_ssts("gc1"));
}

/* First *.sst under data/tables/<table> (for the GC safety test). */
static char first_sst[PATH_MAX];
static int find_sst(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)f;
    size_t n = strlen(path);
    if (flag == FTW_F && n > 4 && !strcmp(path + n - 4, ".sst") && !first_sst[0]) {
        snprintf(first_sst, sizeof first_sst, "%s", path);
        return 1;
    }
    return 0;
}

/* GC must delete nothing when a manifest names a file it cannot resolve
 * (a server whose --data-dir path differs, a damaged tree): deleting on a
 * partial view could destroy live data. */
CL_TEST(gc_stops_when_a_manifest_names_a_missing_file, 120)
{
    clf_cluster(1, 1, 0);
    clf_create_table(C.client, "gk", NULL, 0);
    clf_create_table(C.client, "gd", NULL, 0);
    bt_table *k = clf_open(C.client, "gk"), *d = clf_open(C.client, "gd");
    for (int i = 0; i < 50; i++) {
        char row[32];
        snprintf(row, sizeof row, "r%03d", i);
        CL_OK(clf_put(k, row, row));
        CL_OK(clf_put(d, row, row));
    }
    CL_OK(bt_flush_table(C.client, "gk"));
    CL_OK(bt_flush_table(C.client, "gd"));
    bt_table_close(d);
    CL_OK(bt_delete_table(C.client, "gd")); /* its directory is garbage now */
    char gd_dir[PATH_MAX + 64], table_dir[PATH_MAX + 64];
    snprintf(gd_dir, sizeof gd_dir, "%s/tables/gd", C.data_dir);
    snprintf(table_dir, sizeof table_dir, "%s/tables/gk", C.data_dir);
    first_sst[0] = 0;
    nftw(table_dir, find_sst, 16, FTW_PHYS);
    cr_assert(first_sst[0], "no SSTable under %s after a flush", table_dir);
    char moved[PATH_MAX + 16];
    snprintf(moved, sizeof moved, "%s.moved", first_sst);
    cr_assert_eq(rename(first_sst, moved), 0, "rename %s: %s", first_sst, strerror(errno));

    uint64_t files = 0, bytes = 0;
    int rc = bt_run_gc(C.client, 0, &files, &bytes);
    cr_assert_neq(rc, BT_OK, "GC succeeded although a manifest names the missing %s", first_sst);
    cr_assert(strstr(bt_errmsg(), "named by the manifest"), "GC error detail: %s", bt_errmsg());
    struct stat sb;
    cr_assert_eq(stat(gd_dir, &sb), 0, "GC deleted %s although it stopped", gd_dir);
    cr_log_info("gc with a dangling manifest entry: %s: %s", bt_errname(rc), bt_errmsg());

    cr_assert_eq(rename(moved, first_sst), 0);
    CL_OK(bt_run_gc(C.client, 0, &files, &bytes));
    cr_assert_neq(stat(gd_dir, &sb), 0, "%s still there after a successful GC", gd_dir);
    for (int i = 0; i < 50; i++) {
        char row[32];
        snprintf(row, sizeof row, "r%03d", i);
        bt_row *r = NULL;
        CL_OK(bt_read_row(k, row, strlen(row), NULL, &r));
        bt_row_free(r);
    }
    bt_table_close(k);
}

/* The figures status pages show: the master's recent events, per-server
 * compaction queues and per-tablet sizes. */
CL_TEST(status_events_and_sizes, 120)
{
    clf_cluster(1, 2, 0);
    const char *splits[] = {"m"};
    clf_create_table(C.client, "sz", splits, 1);
    bt_table *t = clf_open(C.client, "sz");
    char row[32], val[200];
    memset(val, 'v', sizeof val - 1);
    val[sizeof val - 1] = '\0';
    for (int i = 0; i < 500; i++) {
        snprintf(row, sizeof row, "%c%04d", 'a' + i % 26, i);
        CL_OK(clf_put(t, row, val));
    }
    CL_OK(bt_flush_table(C.client, "sz"));
    bt_cluster_status *st = NULL;
    CL_OK(bt_cluster_status_get(C.client, &st));
    bool created = false, registered = false;
    for (size_t i = 0; i < st->n_events; i++) {
        cr_assert_gt(st->events[i].time_us, 0);
        if (i) cr_assert_geq(st->events[i].time_us, st->events[i - 1].time_us, "events oldest first");
        if (strstr(st->events[i].text, "created table sz")) created = true;
        if (strstr(st->events[i].text, "registered")) registered = true;
    }
    cr_assert(created && registered, "events: %zu, none about the table or the servers", st->n_events);
    bt_cluster_status_free(st);
    /* sizes arrive with the master's next listing (every 2 s) */
    int64_t deadline = tsf_now_us() + 15000000;
    uint64_t total = 0;
    while (tsf_now_us() < deadline) {
        bt_table_desc *d = clf_describe(C.client, "sz");
        total = 0;
        bool all = true;
        for (size_t i = 0; i < d->n_tablets; i++) {
            total += d->tablets[i].sstable_bytes;
            all = all && d->tablets[i].sstable_bytes > 0;
        }
        bt_table_desc_free(d);
        if (all) break;
        usleep(200000);
    }
    cr_assert_gt(total, 4096, "tablet sizes never reported (total %" PRIu64 ")", total);
    bt_table_close(t);
}

/* A client with thread_connections (each thread its own blocking
 * connection per server, as bt-gateway runs) follows a move and a server's
 * death like the shared connections do. */
CL_TEST(thread_connections_follow_moves_and_failures, 180)
{
    clf_cluster(1, 2, 0);
    const char *splits[] = {"m"};
    clf_create_table(C.client, "tc", splits, 1);
    bt_client_options o = {.timeout_ms = 60000, .thread_connections = true};
    bt_client *c = NULL;
    CL_OK(bt_connect(C.lock_url, &o, &c));
    bt_table *t = clf_open(c, "tc");
    char row[32], got[64];
    for (int i = 0; i < 200; i++) {
        snprintf(row, sizeof row, "%c%03d", 'a' + i % 26, i);
        CL_OK(clf_put(t, row, row));
    }
    bt_table_desc *d = clf_describe(c, "tc");
    CL_OK(bt_move_tablet(c, d->tablets[0].id, NULL));
    bt_table_desc_free(d);
    for (int i = 0; i < 200; i++) {
        snprintf(row, sizeof row, "%c%03d", 'a' + i % 26, i);
        CL_OK(clf_get(t, row, row, got));
    }
    /* the server holding row "a000" dies: reads wait for recovery */
    d = clf_describe(c, "tc");
    int victim = clf_ts_index(d->tablets[0].server_id);
    bt_table_desc_free(d);
    cr_assert_geq(victim, 0);
    clf_kill_ts(victim);
    for (int i = 0; i < 200; i++) {
        snprintf(row, sizeof row, "%c%03d", 'a' + i % 26, i);
        CL_OK(clf_get(t, row, row, got));
    }
    bt_scanner *s = NULL;
    CL_OK(bt_scan_open(t, NULL, &s));
    const bt_row *r;
    int n = 0, rc;
    while ((rc = bt_scanner_next(s, &r)) == BT_OK) n++;
    cr_assert_eq(rc, BT_ENOTFOUND);
    cr_assert_eq(n, 200);
    bt_scanner_close(s);
    bt_table_close(t);
    bt_close(c);
    clf_start_ts(victim);
}

/* tests/unit/test_lock_etcd.c: the etcd backend of lock.h (lock_etcd.c)
 * against a real etcd started by etcd_fixture.h (one per test process).
 *
 * The semantics every backend shares run from lock_suite.h (suite "lock");
 * the extras here (suite "etcd") cover what is specific to etcd or to this
 * backend's key layout: several endpoints with one dead, no endpoint
 * answering -> BT_EUNAVAIL, an etcd restart under a live session with a
 * watch, a frozen etcd driving the session through jeopardy to expiry or
 * back to safe, children of "/a" vs "/ab", ephemeral files staying attached
 * to their owner's lease when another session sets them, one client used by
 * many threads.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/status.h"
#include "lockservice/lock.h"
#include "etcd_fixture.h"
#include "lock_suite.h"

TestSuite(etcd, .fini = etcd_fx_stop, .timeout = 30);

static lk_client *open_client(uint32_t lease_ms)
{
    lk_options o = {.lease_ms = lease_ms, .timeout_ms = 2000};
    lk_client *c = NULL;
    int rc = lk_open(lock_suite_url(), &o, &c);
    cr_assert_eq(rc, BT_OK, "lk_open: %s %s", bt_strerror(rc), bt_errmsg());
    return c;
}

static void sleep_ms(long ms) { etcd_fx_sleep_ms(ms); }

#define OK(expr) do { int rc_ = (expr); cr_assert_eq(rc_, BT_OK, "%s: %s (%s)", #expr, bt_errname(rc_), bt_errmsg()); } while (0)
#define RC(expr, want) do { int rc_ = (expr); cr_assert_eq(rc_, (want), "%s: got %s want %s (%s)", #expr, bt_errname(rc_), bt_errname(want), bt_errmsg()); } while (0)

/* ---- namespace --------------------------------------------------------------- */

Test(etcd, create_get_set_delete)
{
    lk_client *c = open_client(0);
    OK(lk_create(c, "/a", NULL, 0, LK_DIR));
    RC(lk_create(c, "/a", NULL, 0, LK_DIR), BT_EEXIST);
    RC(lk_create(c, "/nodir/x", "v", 1, 0), BT_ENOTFOUND);
    OK(lk_create(c, "/a/f", "hello", 5, 0));
    RC(lk_create(c, "/a/f/g", "x", 1, 0), BT_EFAILED_PRECONDITION); /* parent is a file */
    OK(lk_create(c, "/a/eph", NULL, 0, LK_DIR | LK_EPHEMERAL));
    RC(lk_create(c, "/a/eph/g", "x", 1, 0), BT_EFAILED_PRECONDITION); /* parent is ephemeral */
    OK(lk_delete(c, "/a/eph", 0));
    uint8_t *d = NULL;
    size_t n = 0;
    lk_stat st;
    OK(lk_get(c, "/a/f", &d, &n, &st));
    cr_assert_eq(n, 5);
    cr_assert(!memcmp(d, "hello", 5));
    free(d);
    cr_assert(!st.is_dir);
    cr_assert_eq(st.size, 5);
    cr_assert_gt(st.generation, 0);
    uint64_t g1 = st.generation;
    OK(lk_set(c, "/a/f", "world!", 6, g1));
    RC(lk_set(c, "/a/f", "stale", 5, g1), BT_EFAILED_PRECONDITION);
    OK(lk_stat_path(c, "/a/f", &st));
    cr_assert_gt(st.generation, g1);
    cr_assert_eq(st.size, 6);
    OK(lk_set(c, "/a/f", NULL, 0, 0));
    OK(lk_get(c, "/a/f", &d, &n, NULL));
    cr_assert_eq(n, 0);
    free(d);
    RC(lk_set(c, "/a", "x", 1, 0), BT_EINVAL);
    RC(lk_set(c, "/nope", "x", 1, 0), BT_ENOTFOUND);
    RC(lk_delete(c, "/a", 0), BT_EFAILED_PRECONDITION); /* not empty */
    OK(lk_stat_path(c, "/a/f", &st));
    RC(lk_delete(c, "/a/f", st.generation + 1000), BT_EFAILED_PRECONDITION);
    OK(lk_delete(c, "/a/f", st.generation));
    RC(lk_delete(c, "/a/f", 0), BT_ENOTFOUND);
    RC(lk_get(c, "/a/f", &d, &n, NULL), BT_ENOTFOUND);
    OK(lk_delete(c, "/a", 0));
    OK(lk_stat_path(c, "/", &st));
    cr_assert(st.is_dir);
    RC(lk_create(c, "/", NULL, 0, LK_DIR), BT_EEXIST);
    RC(lk_create(c, "bad", NULL, 0, 0), BT_EINVAL);
    lk_close(c);
}

Test(etcd, list_children_only)
{
    lk_client *c = open_client(0);
    OK(lk_create(c, "/a", NULL, 0, LK_DIR));
    OK(lk_create(c, "/ab", NULL, 0, LK_DIR));
    OK(lk_create(c, "/ab/x", NULL, 0, 0));
    OK(lk_create(c, "/a/z", NULL, 0, 0));
    OK(lk_create(c, "/a/b", NULL, 0, LK_DIR));
    OK(lk_create(c, "/a/b/deep", NULL, 0, 0));
    OK(lk_create(c, "/a/m", "1", 1, 0));
    char **names;
    size_t n;
    OK(lk_list(c, "/a", &names, &n));
    cr_assert_eq(n, 3);
    cr_assert_str_eq(names[0], "b");
    cr_assert_str_eq(names[1], "m");
    cr_assert_str_eq(names[2], "z");
    lk_free_names(names, n);
    OK(lk_list(c, "/", &names, &n));
    cr_assert_eq(n, 2);
    cr_assert_str_eq(names[0], "a");
    cr_assert_str_eq(names[1], "ab");
    lk_free_names(names, n);
    RC(lk_list(c, "/nope", &names, &n), BT_ENOTFOUND);
    OK(lk_delete(c, "/a/m", 0));
    OK(lk_list(c, "/a", &names, &n));
    cr_assert_eq(n, 2);
    lk_free_names(names, n);
    lk_close(c);
}

Test(etcd, ephemeral_files_go_with_the_session)
{
    lk_client *a = open_client(0), *b = open_client(0);
    OK(lk_create(a, "/d", NULL, 0, LK_DIR));
    OK(lk_create(a, "/d/eph", "x", 1, LK_EPHEMERAL));
    OK(lk_create(a, "/d/keep", "y", 1, 0));
    lk_stat st;
    OK(lk_stat_path(b, "/d/eph", &st));
    cr_assert_eq(st.ephemeral_owner, lk_session_id(a));
    OK(lk_set(b, "/d/eph", "zz", 2, 0)); /* stays attached to a's session */
    OK(lk_stat_path(b, "/d/keep", &st));
    cr_assert_eq(st.ephemeral_owner, 0);
    lk_close(a);
    RC(lk_stat_path(b, "/d/eph", &st), BT_ENOTFOUND);
    OK(lk_stat_path(b, "/d/keep", &st));
    char **names;
    size_t n;
    OK(lk_list(b, "/d", &names, &n));
    cr_assert_eq(n, 1);
    cr_assert_str_eq(names[0], "keep");
    lk_free_names(names, n);
    lk_close(b);
}

/* ---- locks and sequencers ------------------------------------------------------ */

struct waiter { lk_client *c; int rc; atomic_int done; };

static void *acquire_thread(void *arg)
{
    struct waiter *w = arg;
    w->rc = lk_acquire(w->c, "/m", 10000);
    atomic_store(&w->done, 1);
    return NULL;
}

Test(etcd, acquire_waits_for_release_and_session_end)
{
    lk_client *a = open_client(0), *b = open_client(0);
    OK(lk_create(a, "/m", NULL, 0, 0));
    OK(lk_acquire(a, "/m", 0));
    struct waiter w = {.c = b};
    pthread_t t;
    pthread_create(&t, NULL, acquire_thread, &w);
    sleep_ms(300);
    cr_assert_eq(atomic_load(&w.done), 0);
    OK(lk_release(a, "/m"));
    pthread_join(t, NULL);
    OK(w.rc);
    /* b's session ends: the lock goes with it. */
    lk_close(b);
    int64_t t0 = time(NULL);
    OK(lk_acquire(a, "/m", 5000));
    cr_assert_lt(time(NULL) - t0, 3);
    lk_close(a);
}

/* ---- watches ------------------------------------------------------------------- */

struct events { pthread_mutex_t mu; int counts[9]; char last[64]; };

static void on_event(void *arg, lk_watch_kind kind, const char *path)
{
    struct events *ev = arg;
    pthread_mutex_lock(&ev->mu);
    ev->counts[kind]++;
    snprintf(ev->last, sizeof ev->last, "%s", path);
    pthread_mutex_unlock(&ev->mu);
}

static int count(struct events *ev, int kind)
{
    pthread_mutex_lock(&ev->mu);
    int n = ev->counts[kind];
    pthread_mutex_unlock(&ev->mu);
    return n;
}

static bool wait_count(struct events *ev, int kind, int want)
{
    for (int i = 0; i < 100; i++) {
        if (count(ev, kind) >= want) return true;
        sleep_ms(30);
    }
    return false;
}

/* ---- sessions ------------------------------------------------------------------ */

struct sess { pthread_mutex_t mu; int jeopardy, safe, expired; };

static void on_session(void *arg, lk_session_event e)
{
    struct sess *s = arg;
    pthread_mutex_lock(&s->mu);
    if (e == LK_SESSION_JEOPARDY) s->jeopardy++;
    if (e == LK_SESSION_SAFE) s->safe++;
    if (e == LK_SESSION_EXPIRED) s->expired++;
    pthread_mutex_unlock(&s->mu);
}

static int sess_get(struct sess *s, int which)
{
    pthread_mutex_lock(&s->mu);
    int v = which == 0 ? s->jeopardy : which == 1 ? s->safe : s->expired;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

Test(etcd, lease_view_is_conservative_and_renewed)
{
    lk_client *c = open_client(3000);
    cr_assert(lk_session_valid(c));
    int64_t until = lk_lease_valid_until_us(c), now = mono_us();
    cr_assert_gt(until, now);
    cr_assert_leq(until - now, 3000000);
    sleep_ms(3500); /* longer than the lease: keep-alives must have extended it */
    cr_assert(lk_session_valid(c));
    cr_assert_gt(lk_lease_valid_until_us(c), mono_us());
    lk_close(c);
}

Test(etcd, frozen_etcd_jeopardy_then_expiry)
{
    struct sess s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    lk_options o = {.lease_ms = 2000, .timeout_ms = 500, .on_session = on_session, .arg = &s};
    lk_client *c = NULL;
    OK(lk_open(lock_suite_url(), &o, &c));
    OK(lk_create(c, "/x", NULL, 0, 0));
    etcd_fx_pause();
    for (int i = 0; i < 100 && !sess_get(&s, 2); i++) sleep_ms(50);
    etcd_fx_resume();
    cr_assert_geq(sess_get(&s, 0), 1, "no jeopardy before expiry");
    cr_assert_eq(sess_get(&s, 2), 1, "no expiry");
    cr_assert(!lk_session_valid(c));
    cr_assert_eq(lk_lease_valid_until_us(c), 0);
    lk_stat st;
    RC(lk_stat_path(c, "/x", &st), BT_ECLOSED);
    RC(lk_create(c, "/y", NULL, 0, 0), BT_ECLOSED);
    lk_close(c);
}

Test(etcd, jeopardy_then_safe)
{
    struct sess s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    lk_options o = {.lease_ms = 6000, .timeout_ms = 500, .on_session = on_session, .arg = &s};
    lk_client *c = NULL;
    OK(lk_open(lock_suite_url(), &o, &c));
    etcd_fx_pause();
    for (int i = 0; i < 100 && !sess_get(&s, 0); i++) sleep_ms(50);
    etcd_fx_resume();
    cr_assert_eq(sess_get(&s, 0), 1);
    for (int i = 0; i < 100 && !sess_get(&s, 1); i++) sleep_ms(50);
    cr_assert_eq(sess_get(&s, 1), 1);
    cr_assert_eq(sess_get(&s, 2), 0);
    cr_assert(lk_session_valid(c));
    lk_close(c);
}

/* ---- etcd-specific: endpoints, outages, restarts ---------------------------------- */

Test(etcd, several_endpoints_one_dead)
{
    lock_suite_url();
    int dead = etcd_fx_free_port();
    char url[160];
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d,127.0.0.1:%d", dead, etcd_fx.cport);
    lk_client *c = NULL;
    OK(lk_open(url, NULL, &c));
    OK(lk_create(c, "/multi", "v", 1, 0));
    OK(lk_try_acquire(c, "/multi"));
    lk_stat st;
    OK(lk_stat_path(c, "/multi", &st));
    cr_assert_eq(st.lock_owner, lk_session_id(c));
    lk_close(c);
}

Test(etcd, nothing_answers_is_unavail)
{
    int p1 = etcd_fx_free_port(), p2 = etcd_fx_free_port();
    char url[160];
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d,127.0.0.1:%d", p1, p2);
    lk_client *c = NULL;
    RC(lk_open(url, NULL, &c), BT_EUNAVAIL);
    cr_assert(strstr(bt_errmsg(), "127.0.0.1") != NULL, "%s", bt_errmsg());
    RC(lk_open("etcd://", NULL, &c), BT_EINVAL);
    RC(lk_open("etcd://hostonly", NULL, &c), BT_EINVAL);
}

Test(etcd, etcd_down_then_restart)
{
    lk_client *c = open_client(10000);
    struct events ev = {.mu = PTHREAD_MUTEX_INITIALIZER};
    OK(lk_create(c, "/r", "v", 1, 0));
    uint64_t w;
    OK(lk_watch(c, "/r", LK_WATCH_CHANGED, on_event, &ev, &w));
    OK(lk_try_acquire(c, "/r"));
    char seq[LK_MAX_SEQUENCER];
    OK(lk_get_sequencer(c, "/r", seq, sizeof seq));
    etcd_fx_kill(SIGKILL);
    lk_stat st;
    RC(lk_stat_path(c, "/r", &st), BT_EUNAVAIL);
    lock_suite_restart();
    /* The lease survives the restart (etcd persists it and renews it). */
    OK(lk_stat_path(c, "/r", &st));
    cr_assert_eq(st.lock_owner, lk_session_id(c));
    OK(lk_check_sequencer(c, seq));
    uint8_t *d;
    size_t n;
    OK(lk_get(c, "/r", &d, &n, NULL));
    cr_assert_eq(n, 1);
    free(d);
    cr_assert(lk_session_valid(c));
    /* The watch stream reconnects after the restart and misses nothing. */
    OK(lk_set(c, "/r", "w", 1, 0));
    OK(lk_set(c, "/r", "x", 1, 0));
    cr_assert(wait_count(&ev, LK_WATCH_CHANGED, 2));
    sleep_ms(200);
    cr_assert_eq(count(&ev, LK_WATCH_CHANGED), 2);
    lk_close(c);
}

struct targ { lk_client *c; int id; int fails; };

static void *creator(void *arg)
{
    struct targ *a = arg;
    for (int i = 0; i < 10; i++) {
        char path[64];
        snprintf(path, sizeof path, "/t/f%d-%d", a->id, i);
        if (lk_create(a->c, path, path, strlen(path), 0)) a->fails++;
    }
    return NULL;
}

Test(etcd, many_threads_one_client)
{
    lk_client *c = open_client(0);
    OK(lk_create(c, "/t", NULL, 0, LK_DIR));
    struct events ev = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t w;
    OK(lk_watch(c, "/t", LK_WATCH_CHILDREN, on_event, &ev, &w));
    enum { T = 4 };
    pthread_t th[T];
    struct targ args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (struct targ){.c = c, .id = i};
        pthread_create(&th[i], NULL, creator, &args[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].fails, 0);
    }
    char **names;
    size_t n;
    OK(lk_list(c, "/t", &names, &n));
    cr_assert_eq(n, T * 10);
    lk_free_names(names, n);
    cr_assert(wait_count(&ev, LK_WATCH_CHILDREN, T * 10));
    lk_close(c);
}

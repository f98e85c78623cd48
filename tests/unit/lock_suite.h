/* tests/unit/lock_suite.h: THE semantic test suite of lockservice/lock.h,
 * shared by every backend so that bt-lockd and etcd are held to the same
 * contract.  A test binary includes this header after defining nothing; it
 * must provide the backend-neutral fixture declared below:
 *
 *   lock_suite_init()     per test: a running service (fresh or not: every
 *                         test works under its own "/<test>-<pid>" directory)
 *   lock_suite_fini()     per test: stop it and clean up (also on failure)
 *   lock_suite_url()      the URL to pass to lk_open
 *   lock_suite_restart()  restart the service keeping its data; a backend
 *                         that cannot calls cr_skip_test()
 *
 * Leases are short (1-2 s) so the whole suite runs in well under a minute.
 * Tests that need a second, killable session holder fork a child BEFORE the
 * parent opens any session (no client threads are alive across fork).
 */
#ifndef BT_TESTS_LOCK_SUITE_H
#define BT_TESTS_LOCK_SUITE_H

#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/status.h"
#include "lockservice/lock.h"

void lock_suite_init(void);
void lock_suite_fini(void);
const char *lock_suite_url(void);
void lock_suite_restart(void);

#define LS_LEASE_MS 1000u

static int64_t ls_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t ls_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void ls_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* fork() for a test child that must not outlive the test process: the child
 * dies with it, even if a timeout kills it before it can reap the child
 * (SIGKILL also ends a stopped child).  Returns like fork(). */
static pid_t ls_fork_tied(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(9);
    }
    return pid;
}

static lk_client *ls_open_opts(uint32_t lease_ms, void (*cb)(void *, lk_session_event), void *arg)
{
    lk_options o = {.lease_ms = lease_ms, .timeout_ms = 3000, .on_session = cb, .arg = arg};
    lk_client *c = NULL;
    int rc = lk_open(lock_suite_url(), &o, &c);
    cr_assert_eq(rc, BT_OK, "lk_open(%s): %s %s", lock_suite_url(), bt_errname(rc), bt_errmsg());
    return c;
}

static lk_client *ls_open(uint32_t lease_ms) { return ls_open_opts(lease_ms, NULL, NULL); }

/* out = "/<name>-<pid>" + suffix */
static void ls_path(char *out, size_t cap, const char *name, const char *suffix)
{
    snprintf(out, cap, "/%s-%d%s", name, (int)getpid(), suffix);
}

static void ls_mkroot(lk_client *c, const char *name)
{
    char p[256];
    ls_path(p, sizeof p, name, "");
    int rc = lk_create(c, p, NULL, 0, LK_DIR);
    cr_assert_eq(rc, BT_OK, "mkdir %s: %s", p, bt_errmsg());
}

#define LS_OK(expr) do { int rc_ = (expr); cr_assert_eq(rc_, BT_OK, "%s: %s %s", #expr, bt_errname(rc_), bt_errmsg()); } while (0)
#define LS_RC(expr, want) do { int rc_ = (expr); cr_assert_eq(rc_, (want), "%s: got %s (%s), want %s", #expr, \
                                   bt_errname(rc_), bt_errmsg(), bt_errname(want)); } while (0)

TestSuite(lock, .init = lock_suite_init, .fini = lock_suite_fini, .timeout = 40);

Test(lock, namespace_generations)
{
    lk_client *c = ls_open(LS_LEASE_MS);
    char f[256], root[256];
    ls_mkroot(c, "ns");
    ls_path(root, sizeof root, "ns", "");
    ls_path(f, sizeof f, "ns", "/f");
    LS_OK(lk_create(c, f, "one", 3, 0));
    LS_RC(lk_create(c, f, "x", 1, 0), BT_EEXIST);
    uint8_t *data = NULL;
    size_t n = 0;
    lk_stat st;
    LS_OK(lk_get(c, f, &data, &n, &st));
    cr_assert_eq(n, 3);
    cr_assert(!memcmp(data, "one", 3));
    free(data);
    cr_assert_eq(st.generation, 1);
    cr_assert_eq(st.size, 3);
    cr_assert(!st.is_dir);
    cr_assert_eq(st.lock_owner, 0);
    cr_assert_eq(st.ephemeral_owner, 0);
    LS_OK(lk_set(c, f, "two!", 4, 0));
    LS_RC(lk_set(c, f, "bad", 3, 1), BT_EFAILED_PRECONDITION);
    LS_OK(lk_set(c, f, "three", 5, 2));
    LS_OK(lk_stat_path(c, f, &st));
    cr_assert_eq(st.generation, 3);
    cr_assert_eq(st.size, 5);
    LS_OK(lk_set(c, f, NULL, 0, 3));
    LS_OK(lk_get(c, f, &data, &n, &st));
    cr_assert_eq(n, 0);
    free(data);
    cr_assert_eq(st.generation, 4);
    char **names = NULL;
    size_t nn = 0;
    LS_OK(lk_list(c, root, &names, &nn));
    cr_assert_eq(nn, 1);
    cr_assert_str_eq(names[0], "f");
    lk_free_names(names, nn);
    LS_RC(lk_delete(c, f, 3), BT_EFAILED_PRECONDITION);
    LS_OK(lk_delete(c, f, 4));
    LS_RC(lk_get(c, f, &data, &n, NULL), BT_ENOTFOUND);
    LS_RC(lk_stat_path(c, f, &st), BT_ENOTFOUND);
    LS_RC(lk_set(c, f, "x", 1, 0), BT_ENOTFOUND);
    LS_RC(lk_delete(c, f, 0), BT_ENOTFOUND);
    char orphan[256];
    ls_path(orphan, sizeof orphan, "ns", "/nodir/f");
    LS_RC(lk_create(c, orphan, "x", 1, 0), BT_ENOTFOUND);
    LS_OK(lk_stat_path(c, "/", &st));
    cr_assert(st.is_dir);
    lk_close(c);
}

Test(lock, directories)
{
    lk_client *c = ls_open(LS_LEASE_MS);
    char d[256], p[300];
    ls_mkroot(c, "dir");
    ls_path(d, sizeof d, "dir", "/d");
    LS_OK(lk_create(c, d, NULL, 0, LK_DIR));
    const char *kids[] = {"b", "a", "c-1", "a.x"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", d, kids[i]);
        LS_OK(lk_create(c, p, "v", 1, 0));
    }
    snprintf(p, sizeof p, "%s/sub", d);
    LS_OK(lk_create(c, p, NULL, 0, LK_DIR));
    snprintf(p, sizeof p, "%s/sub/deep", d);
    LS_OK(lk_create(c, p, "v", 1, 0));
    char **names = NULL;
    size_t n = 0;
    LS_OK(lk_list(c, d, &names, &n));
    cr_assert_eq(n, 5, "list gave %zu names", n);
    const char *want[] = {"a", "a.x", "b", "c-1", "sub"};
    for (size_t i = 0; i < 5; i++) cr_assert_str_eq(names[i], want[i]);
    lk_free_names(names, n);
    lk_stat st;
    LS_OK(lk_stat_path(c, d, &st));
    cr_assert(st.is_dir);
    LS_RC(lk_delete(c, d, 0), BT_EFAILED_PRECONDITION);
    snprintf(p, sizeof p, "%s/sub", d);
    LS_RC(lk_delete(c, p, 0), BT_EFAILED_PRECONDITION);
    snprintf(p, sizeof p, "%s/sub/deep", d);
    LS_OK(lk_delete(c, p, 0));
    snprintf(p, sizeof p, "%s/sub", d);
    LS_OK(lk_delete(c, p, 0));
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", d, kids[i]);
        LS_OK(lk_delete(c, p, 0));
    }
    LS_OK(lk_list(c, d, &names, &n));
    cr_assert_eq(n, 0);
    lk_free_names(names, n);
    LS_OK(lk_delete(c, d, 0));
    lk_close(c);
}

Test(lock, bad_paths_and_sizes)
{
    lk_client *c = ls_open(LS_LEASE_MS);
    char longcomp[80], longpath[1100];
    memset(longcomp, 'a', 66);
    longcomp[0] = '/';
    longcomp[66] = '\0'; /* "/" and 65 letters */
    longpath[0] = '\0';
    while (strlen(longpath) < 1030) strcat(longpath, "/abcdefghij");
    const char *bad[] = {"", "rel", "/a/", "//", "/a//b", "/a b", "/a:b", "/a\xc3\xa9", longcomp, longpath};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        LS_RC(lk_create(c, bad[i], "x", 1, 0), BT_EINVAL);
        LS_RC(lk_stat_path(c, bad[i], NULL), BT_EINVAL);
        LS_RC(lk_acquire(c, bad[i], 10), BT_EINVAL);
    }
    ls_mkroot(c, "size");
    char f[256];
    ls_path(f, sizeof f, "size", "/f");
    uint8_t *big = calloc(1, LK_MAX_CONTENTS + 1);
    cr_assert_not_null(big);
    LS_RC(lk_create(c, f, big, LK_MAX_CONTENTS + 1, 0), BT_ETOOBIG);
    LS_OK(lk_create(c, f, big, LK_MAX_CONTENTS, 0));
    LS_RC(lk_set(c, f, big, LK_MAX_CONTENTS + 1, 0), BT_ETOOBIG);
    uint8_t *data = NULL;
    size_t n = 0;
    LS_OK(lk_get(c, f, &data, &n, NULL));
    cr_assert_eq(n, LK_MAX_CONTENTS);
    free(data);
    free(big);
    LS_RC(lk_delete(c, "/", 0), BT_EINVAL);
    LS_RC(lk_check_sequencer(c, "nonsense"), BT_EINVAL);
    lk_client *x = NULL;
    LS_RC(lk_open("nope://host:1", NULL, &x), BT_EINVAL);
    lk_close(c);
}

Test(lock, ephemeral_vanishes_on_close)
{
    lk_client *a = ls_open(LS_LEASE_MS), *b = ls_open(LS_LEASE_MS);
    char e[256];
    ls_mkroot(a, "eph");
    ls_path(e, sizeof e, "eph", "/e");
    LS_OK(lk_create(b, e, "me", 2, LK_EPHEMERAL));
    lk_stat st;
    LS_OK(lk_stat_path(a, e, &st));
    cr_assert_eq(st.ephemeral_owner, lk_session_id(b));
    lk_close(b);
    LS_RC(lk_stat_path(a, e, &st), BT_ENOTFOUND);
    lk_close(a);
}

/* A child that opens a session, runs `what` on it, reports 'r' on the pipe and
 * then sleeps until killed. */
static pid_t ls_spawn_holder(const char *path, bool ephemeral, bool lock, int *rd)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = ls_fork_tied();
    if (pid == 0) {
        close(p[0]);
        lk_options o = {.lease_ms = LS_LEASE_MS, .timeout_ms = 3000};
        lk_client *c = NULL;
        if (lk_open(lock_suite_url(), &o, &c)) _exit(3);
        if (ephemeral && lk_create(c, path, "e", 1, LK_EPHEMERAL)) _exit(4);
        if (lock && lk_acquire(c, path, 5000)) _exit(5);
        if (write(p[1], "r", 1) != 1) _exit(6);
        for (;;) pause();
    }
    close(p[1]);
    *rd = p[0];
    return pid;
}

static void ls_wait_ready(int rd, pid_t pid)
{
    char ch = 0;
    ssize_t r = read(rd, &ch, 1);
    if (r != 1) {
        int status = 0;
        waitpid(pid, &status, 0);
        cr_assert_fail("holder child failed (status 0x%x)", status);
    }
}

static void ls_reap(pid_t pid)
{
    kill(pid, SIGCONT);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

Test(lock, ephemeral_vanishes_on_expiry)
{
    char e[256];
    ls_path(e, sizeof e, "ephx", "/e");
    lk_client *a = ls_open(LS_LEASE_MS);
    ls_mkroot(a, "ephx");
    lk_close(a);
    int rd;
    pid_t pid = ls_spawn_holder(e, true, false, &rd);
    ls_wait_ready(rd, pid);
    a = ls_open(LS_LEASE_MS);
    LS_OK(lk_stat_path(a, e, NULL));
    kill(pid, SIGSTOP);
    int64_t t0 = ls_now_ms();
    int rc;
    while ((rc = lk_stat_path(a, e, NULL)) == BT_OK && ls_now_ms() - t0 < LS_LEASE_MS + 5000) ls_sleep_ms(20);
    ls_reap(pid);
    close(rd);
    cr_assert_eq(rc, BT_ENOTFOUND, "ephemeral file still there %lld ms after its owner stopped",
                 (long long)(ls_now_ms() - t0));
    lk_close(a);
}

Test(lock, exclusive_try_timeout_release)
{
    lk_client *a = ls_open(LS_LEASE_MS), *b = ls_open(LS_LEASE_MS);
    char f[256];
    ls_mkroot(a, "lk");
    ls_path(f, sizeof f, "lk", "/f");
    LS_RC(lk_acquire(a, f, 100), BT_ENOTFOUND);
    LS_OK(lk_create(a, f, "x", 1, 0));
    LS_OK(lk_try_acquire(a, f));
    LS_OK(lk_try_acquire(a, f));
    LS_OK(lk_acquire(a, f, 100));
    LS_RC(lk_try_acquire(b, f), BT_EBUSY);
    int64_t t0 = ls_now_ms();
    LS_RC(lk_acquire(b, f, 300), BT_ETIMEDOUT);
    int64_t dt = ls_now_ms() - t0;
    cr_assert(dt >= 250 && dt < 3000, "acquire timeout took %lld ms", (long long)dt);
    LS_RC(lk_release(b, f), BT_EFAILED_PRECONDITION);
    char seq[LK_MAX_SEQUENCER];
    LS_RC(lk_get_sequencer(b, f, seq, sizeof seq), BT_EFAILED_PRECONDITION);
    lk_stat st;
    LS_OK(lk_stat_path(b, f, &st));
    cr_assert_eq(st.lock_owner, lk_session_id(a));
    uint64_t g1 = st.lock_generation;
    cr_assert_gt(g1, 0);
    LS_OK(lk_get_sequencer(a, f, seq, sizeof seq));
    LS_OK(lk_check_sequencer(b, seq));
    LS_OK(lk_release(a, f));
    LS_RC(lk_release(a, f), BT_EFAILED_PRECONDITION);
    LS_RC(lk_check_sequencer(b, seq), BT_EFAILED_PRECONDITION);
    LS_OK(lk_try_acquire(b, f));
    LS_OK(lk_stat_path(a, f, &st));
    cr_assert_eq(st.lock_owner, lk_session_id(b));
    cr_assert_gt(st.lock_generation, g1);
    LS_RC(lk_check_sequencer(a, seq), BT_EFAILED_PRECONDITION);
    lk_close(a);
    lk_close(b);
}

struct ls_fifo_arg {
    lk_client *c;
    const char *path;
    atomic_int *order;
    int got;
    int rc;
};

static void *ls_fifo_waiter(void *p)
{
    struct ls_fifo_arg *a = p;
    a->rc = lk_acquire(a->c, a->path, 10000);
    a->got = atomic_fetch_add(a->order, 1);
    ls_sleep_ms(100);
    if (a->rc == BT_OK) lk_release(a->c, a->path);
    return NULL;
}

Test(lock, fifo_handoff)
{
    lk_client *a = ls_open(LS_LEASE_MS), *b = ls_open(LS_LEASE_MS), *c = ls_open(LS_LEASE_MS);
    char f[256];
    ls_mkroot(a, "fifo");
    ls_path(f, sizeof f, "fifo", "/f");
    LS_OK(lk_create(a, f, "x", 1, 0));
    LS_OK(lk_acquire(a, f, 1000));
    atomic_int order = 0;
    struct ls_fifo_arg ab = {b, f, &order, -1, -1}, ac = {c, f, &order, -1, -1};
    pthread_t tb, tc;
    pthread_create(&tb, NULL, ls_fifo_waiter, &ab);
    ls_sleep_ms(250);
    pthread_create(&tc, NULL, ls_fifo_waiter, &ac);
    ls_sleep_ms(250);
    LS_OK(lk_release(a, f));
    pthread_join(tb, NULL);
    pthread_join(tc, NULL);
    cr_assert_eq(ab.rc, BT_OK);
    cr_assert_eq(ac.rc, BT_OK);
    cr_assert_eq(ab.got, 0, "first waiter got the lock in position %d", ab.got);
    cr_assert_eq(ac.got, 1);
    lk_close(a);
    lk_close(b);
    lk_close(c);
}

#define LS_PROCS 4
#define LS_ITERS 25

struct ls_shared {
    int64_t enter[LS_PROCS][LS_ITERS];
    int64_t leave[LS_PROCS][LS_ITERS];
    atomic_int stale_accepted;
    atomic_int errors;
};

static int ls_cmp_i64(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

static void ls_mutex_child(struct ls_shared *sh, int id, const char *lockp, const char *counter)
{
    lk_options o = {.lease_ms = 2000, .timeout_ms = 3000};
    lk_client *c = NULL;
    if (lk_open(lock_suite_url(), &o, &c)) _exit(3);
    char prev[LK_MAX_SEQUENCER] = "";
    for (int i = 0; i < LS_ITERS; i++) {
        if (lk_acquire(c, lockp, 20000)) { atomic_fetch_add(&sh->errors, 1); _exit(4); }
        sh->enter[id][i] = ls_now_us();
        char seq[LK_MAX_SEQUENCER];
        if (lk_get_sequencer(c, lockp, seq, sizeof seq)) atomic_fetch_add(&sh->errors, 1);
        if (prev[0] && lk_check_sequencer(c, prev) == BT_OK) atomic_fetch_add(&sh->stale_accepted, 1);
        uint8_t *data = NULL;
        size_t n = 0;
        lk_stat st;
        if (lk_get(c, counter, &data, &n, &st)) atomic_fetch_add(&sh->errors, 1);
        char buf[32] = "";
        if (n && n < sizeof buf) memcpy(buf, data, n);
        free(data);
        long v = strtol(buf, NULL, 10);
        if (lk_check_sequencer(c, seq) != BT_OK) atomic_fetch_add(&sh->errors, 1);
        int len = snprintf(buf, sizeof buf, "%ld", v + 1);
        if (lk_set(c, counter, buf, (size_t)len, st.generation)) atomic_fetch_add(&sh->errors, 1);
        sh->leave[id][i] = ls_now_us();
        snprintf(prev, sizeof prev, "%s", seq);
        if (lk_release(c, lockp)) atomic_fetch_add(&sh->errors, 1);
    }
    lk_close(c);
    _exit(0);
}

Test(lock, mutual_exclusion_4_processes)
{
    char lockp[256], counter[256];
    ls_path(lockp, sizeof lockp, "mx", "/lock");
    ls_path(counter, sizeof counter, "mx", "/counter");
    lk_client *a = ls_open(LS_LEASE_MS);
    ls_mkroot(a, "mx");
    LS_OK(lk_create(a, lockp, NULL, 0, 0));
    LS_OK(lk_create(a, counter, "0", 1, 0));
    lk_close(a);
    struct ls_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    pid_t pids[LS_PROCS];
    for (int i = 0; i < LS_PROCS; i++) {
        pids[i] = ls_fork_tied();
        if (pids[i] == 0) ls_mutex_child(sh, i, lockp, counter);
    }
    int bad = 0;
    for (int i = 0; i < LS_PROCS; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status)) bad++;
    }
    cr_assert_eq(bad, 0, "%d children failed", bad);
    cr_assert_eq(atomic_load(&sh->errors), 0, "%d operations failed in critical sections", atomic_load(&sh->errors));
    cr_assert_eq(atomic_load(&sh->stale_accepted), 0);
    int64_t iv[LS_PROCS * LS_ITERS][2];
    for (int p = 0; p < LS_PROCS; p++)
        for (int i = 0; i < LS_ITERS; i++) {
            iv[p * LS_ITERS + i][0] = sh->enter[p][i];
            iv[p * LS_ITERS + i][1] = sh->leave[p][i];
        }
    qsort(iv, LS_PROCS * LS_ITERS, sizeof iv[0], ls_cmp_i64);
    for (int k = 1; k < LS_PROCS * LS_ITERS; k++)
        cr_assert_geq(iv[k][0], iv[k - 1][1], "critical sections overlap at %d", k);
    a = ls_open(LS_LEASE_MS);
    uint8_t *data = NULL;
    size_t n = 0;
    LS_OK(lk_get(a, counter, &data, &n, NULL));
    char buf[32] = "";
    memcpy(buf, data, n < 31 ? n : 31);
    free(data);
    cr_assert_eq(atol(buf), LS_PROCS * LS_ITERS, "counter is %s", buf);
    lk_close(a);
    munmap(sh, sizeof *sh);
}

Test(lock, killed_holder_loses_lock)
{
    char f[256];
    ls_path(f, sizeof f, "kill", "/f");
    lk_client *a = ls_open(LS_LEASE_MS);
    ls_mkroot(a, "kill");
    LS_OK(lk_create(a, f, NULL, 0, 0));
    lk_close(a);
    int rd;
    pid_t pid = ls_spawn_holder(f, false, true, &rd);
    ls_wait_ready(rd, pid);
    a = ls_open(LS_LEASE_MS);
    LS_RC(lk_try_acquire(a, f), BT_EBUSY);
    int64_t t0 = ls_now_ms();
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(rd);
    int rc = lk_acquire(a, f, LS_LEASE_MS + 5000);
    int64_t dt = ls_now_ms() - t0;
    fprintf(stderr, "lock lost after %lld ms (lease %u ms)\n", (long long)dt, LS_LEASE_MS);
    cr_assert_eq(rc, BT_OK, "%s", bt_errmsg());
    cr_assert_lt(dt, LS_LEASE_MS + 1500);
    lk_close(a);
}

static atomic_int ls_expired_events;
static void ls_on_session(void *arg, lk_session_event ev)
{
    (void)arg;
    if (ev == LK_SESSION_EXPIRED) atomic_fetch_add(&ls_expired_events, 1);
}

struct ls_stop_report {
    int valid, rc_release, rc_try, rc_seq, expired_events;
};

Test(lock, stopped_holder_learns_it_lost)
{
    char f[256];
    ls_path(f, sizeof f, "stop", "/f");
    lk_client *a = ls_open(LS_LEASE_MS);
    ls_mkroot(a, "stop");
    LS_OK(lk_create(a, f, NULL, 0, 0));
    lk_close(a);
    int c2p[2], p2c[2];
    cr_assert_eq(pipe(c2p), 0);
    cr_assert_eq(pipe(p2c), 0);
    pid_t pid = ls_fork_tied();
    if (pid == 0) {
        close(c2p[0]);
        close(p2c[1]);
        lk_client *c = NULL;
        lk_options o = {.lease_ms = LS_LEASE_MS, .timeout_ms = 3000, .on_session = ls_on_session};
        if (lk_open(lock_suite_url(), &o, &c) || lk_acquire(c, f, 5000)) _exit(3);
        char seq[LK_MAX_SEQUENCER];
        if (lk_get_sequencer(c, f, seq, sizeof seq)) _exit(4);
        if (write(c2p[1], seq, sizeof seq) != (ssize_t)sizeof seq) _exit(5);
        char go;
        if (read(p2c[0], &go, 1) != 1) _exit(6);
        struct ls_stop_report r;
        r.valid = lk_session_valid(c);
        r.rc_release = lk_release(c, f);
        r.rc_try = lk_try_acquire(c, f);
        r.rc_seq = lk_get_sequencer(c, f, seq, sizeof seq);
        int64_t t0 = ls_now_ms();
        while (atomic_load(&ls_expired_events) == 0 && ls_now_ms() - t0 < 3000) ls_sleep_ms(10);
        r.expired_events = atomic_load(&ls_expired_events);
        if (write(c2p[1], &r, sizeof r) != (ssize_t)sizeof r) _exit(7);
        lk_close(c);
        _exit(0);
    }
    close(c2p[1]);
    close(p2c[0]);
    char seq[LK_MAX_SEQUENCER];
    if (read(c2p[0], seq, sizeof seq) != (ssize_t)sizeof seq) {
        ls_reap(pid);
        cr_assert_fail("holder child failed");
    }
    kill(pid, SIGSTOP);
    a = ls_open(LS_LEASE_MS);
    LS_OK(lk_check_sequencer(a, seq));
    int rc = lk_acquire(a, f, LS_LEASE_MS + 5000);
    if (rc) ls_reap(pid);
    cr_assert_eq(rc, BT_OK, "the stopped holder kept its lock: %s", bt_errmsg());
    LS_RC(lk_check_sequencer(a, seq), BT_EFAILED_PRECONDITION);
    char mine[LK_MAX_SEQUENCER];
    LS_OK(lk_get_sequencer(a, f, mine, sizeof mine));
    cr_assert_str_neq(mine, seq);
    LS_OK(lk_check_sequencer(a, mine));
    kill(pid, SIGCONT);
    cr_assert_eq(write(p2c[1], "g", 1), 1);
    struct ls_stop_report r;
    ssize_t got = read(c2p[0], &r, sizeof r);
    int status = 0;
    waitpid(pid, &status, 0);
    cr_assert_eq(got, (ssize_t)sizeof r, "child status 0x%x", status);
    cr_assert_not(r.valid, "the stopped holder still believes its session is valid");
    cr_assert_eq(r.rc_release, BT_ECLOSED, "release after expiry: %s", bt_errname(r.rc_release));
    cr_assert_eq(r.rc_try, BT_ECLOSED);
    cr_assert_eq(r.rc_seq, BT_ECLOSED);
    cr_assert_eq(r.expired_events, 1, "LK_SESSION_EXPIRED fired %d times", r.expired_events);
    lk_stat st;
    LS_OK(lk_stat_path(a, f, &st));
    cr_assert_eq(st.lock_owner, lk_session_id(a));
    lk_close(a);
}

struct ls_watch_log {
    pthread_mutex_t mu;
    int counts[9];
    char kinds[64];
    int n;
};

static void ls_watch_cb(void *arg, lk_watch_kind kind, const char *path)
{
    (void)path;
    struct ls_watch_log *l = arg;
    pthread_mutex_lock(&l->mu);
    l->counts[kind]++;
    if (l->n < 63) l->kinds[l->n++] = "?CD?H???L"[kind];
    pthread_mutex_unlock(&l->mu);
}

static int ls_total(struct ls_watch_log *l)
{
    pthread_mutex_lock(&l->mu);
    int t = l->n;
    pthread_mutex_unlock(&l->mu);
    return t;
}

static void ls_wait_total(struct ls_watch_log *l, int want)
{
    int64_t t0 = ls_now_ms();
    while (ls_total(l) < want && ls_now_ms() - t0 < 5000) ls_sleep_ms(10);
    ls_sleep_ms(300); /* anything extra would show up now */
}

Test(lock, watches_fire_exactly_once)
{
    lk_client *a = ls_open(LS_LEASE_MS), *b = ls_open(LS_LEASE_MS);
    char d[256], f[256], g[256], h[256];
    ls_mkroot(a, "w");
    ls_path(d, sizeof d, "w", "");
    ls_path(f, sizeof f, "w", "/f");
    ls_path(g, sizeof g, "w", "/g");
    ls_path(h, sizeof h, "w", "/h");
    struct ls_watch_log fl = {.mu = PTHREAD_MUTEX_INITIALIZER}, dl = {.mu = PTHREAD_MUTEX_INITIALIZER},
                        hl = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t wf, wd, wh;
    LS_OK(lk_watch(a, f, LK_WATCH_CHANGED | LK_WATCH_DELETED | LK_WATCH_LOCK_RELEASED, ls_watch_cb, &fl, &wf));
    LS_OK(lk_watch(a, d, LK_WATCH_CHILDREN, ls_watch_cb, &dl, &wd));
    LS_OK(lk_create(b, f, "0", 1, 0));           /* f: C   d: H */
    for (int i = 0; i < 3; i++) LS_OK(lk_set(b, f, "x", 1, 0)); /* f: CCC */
    for (int i = 0; i < 2; i++) {
        LS_OK(lk_acquire(b, f, 1000));
        LS_OK(lk_release(b, f));                 /* f: L L */
    }
    LS_OK(lk_create(b, g, NULL, 0, 0));          /* d: H */
    LS_OK(lk_delete(b, g, 0));                   /* d: H */
    LS_OK(lk_delete(b, f, 0));                   /* f: D   d: H */
    ls_wait_total(&fl, 7);
    ls_wait_total(&dl, 4);
    cr_assert_eq(fl.counts[LK_WATCH_CHANGED], 4);
    cr_assert_eq(fl.counts[LK_WATCH_LOCK_RELEASED], 2);
    cr_assert_eq(fl.counts[LK_WATCH_DELETED], 1);
    cr_assert_str_eq(fl.kinds, "CCCCLLD");
    cr_assert_eq(dl.counts[LK_WATCH_CHILDREN], 4);
    cr_assert_eq(dl.n, 4);
    /* lock released because the holder's session ended */
    LS_OK(lk_create(a, h, NULL, 0, 0));          /* d: H */
    ls_wait_total(&dl, 5);
    cr_assert_eq(ls_total(&dl), 5);
    LS_OK(lk_watch(a, h, LK_WATCH_LOCK_RELEASED, ls_watch_cb, &hl, &wh));
    LS_OK(lk_acquire(b, h, 1000));
    lk_close(b);
    ls_wait_total(&hl, 1);
    cr_assert_eq(hl.counts[LK_WATCH_LOCK_RELEASED], 1);
    cr_assert_eq(hl.n, 1);
    /* nothing after unwatch */
    LS_OK(lk_unwatch(a, wd));
    LS_OK(lk_create(a, g, NULL, 0, 0));
    ls_sleep_ms(300);
    cr_assert_eq(ls_total(&dl), 5);
    cr_assert_neq(lk_unwatch(a, wd), BT_OK);
    lk_close(a);
}

Test(lock, restart_grace)
{
    char p[256], l1[256], l2[256], e[256];
    ls_path(p, sizeof p, "rs", "/persist");
    ls_path(l1, sizeof l1, "rs", "/l1");
    ls_path(l2, sizeof l2, "rs", "/l2");
    ls_path(e, sizeof e, "rs", "/eph");
    lk_client *a = ls_open(LS_LEASE_MS);
    ls_mkroot(a, "rs");
    LS_OK(lk_create(a, p, "kept", 4, 0));
    LS_OK(lk_set(a, p, "kept2", 5, 0));
    LS_OK(lk_create(a, l1, NULL, 0, 0));
    LS_OK(lk_create(a, l2, NULL, 0, 0));
    lk_close(a);
    int rd;
    pid_t pid = ls_spawn_holder(l2, false, true, &rd);
    ls_wait_ready(rd, pid);
    close(rd);
    a = ls_open(2000);
    LS_OK(lk_create(a, e, "e", 1, LK_EPHEMERAL));
    LS_OK(lk_acquire(a, l1, 1000));
    ls_reap(pid); /* its session cannot reconnect */
    lock_suite_restart();
    /* a reconnects (keep-alives) within the grace period */
    lk_stat st;
    int64_t t0 = ls_now_ms();
    int rc;
    while ((rc = lk_stat_path(a, l1, &st)) == BT_EUNAVAIL && ls_now_ms() - t0 < 3000) ls_sleep_ms(20);
    cr_assert_eq(rc, BT_OK, "%s %s", bt_errname(rc), bt_errmsg());
    cr_assert_eq(st.lock_owner, lk_session_id(a));
    uint8_t *data = NULL;
    size_t n = 0;
    LS_OK(lk_get(a, p, &data, &n, &st));
    cr_assert_eq(n, 5);
    cr_assert(!memcmp(data, "kept2", 5));
    free(data);
    cr_assert_eq(st.generation, 2);
    lk_client *b = ls_open(LS_LEASE_MS);
    /* wait out the grace period: the dead holder's lock comes free */
    t0 = ls_now_ms();
    while ((rc = lk_try_acquire(b, l2)) == BT_EBUSY && ls_now_ms() - t0 < 10000) ls_sleep_ms(50);
    cr_assert_eq(rc, BT_OK, "dead session's lock not released after the grace period: %s", bt_errname(rc));
    cr_assert(lk_session_valid(a));
    LS_RC(lk_try_acquire(b, l1), BT_EBUSY);
    LS_OK(lk_stat_path(b, e, &st));
    cr_assert_eq(st.ephemeral_owner, lk_session_id(a));
    LS_OK(lk_stat_path(b, l1, &st));
    cr_assert_eq(st.lock_owner, lk_session_id(a));
    lk_close(a);
    LS_RC(lk_stat_path(b, e, &st), BT_ENOTFOUND);
    lk_close(b);
}

#endif

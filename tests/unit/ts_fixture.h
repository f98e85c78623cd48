/* tests/unit/ts_fixture.h: the per-test fixture of the bt-tabletserver
 * integration tests (tests/unit/test_tabletserver.c), which run REAL
 * processes on 127.0.0.1.  Not a test binary of its own (only test_*.c are).
 *
 * Per test (tsf_init / tsf_fini, or tsf_init_scanner_lease for a short
 * scanner lease):
 *   - a temporary directory /tmp/bt-ts-test-XXXXXX holding lockd/ (bt-lockd's
 *     data), data/ (the tablet server's --data-dir), ts.stderr and
 *     lockd.stderr (the children's stderr: logs and sanitizer reports);
 *   - bt-lockd on an ephemeral port (its "bt-lockd: listening on ..." line
 *     gives the port);
 *   - a "master" lock-service session that created /bt and /bt/master and
 *     holds /bt/master: F.seqr is its sequencer for load/unload/split;
 *   - bt-tabletserver --port 0 --data-dir D --lock bt://127.0.0.1:P
 *     --lease-ms 1000 --id ts1, started after its "serving on" line (bounded
 *     wait), reachable at F.addr;
 *   - a bt_conn_pool F.pool for calls to it.
 * Binaries come from BUILD/bin next to this binary's BUILD/tests.  Children
 * are forked from the test's main thread with PR_SET_PDEATHSIG, so a test
 * killed by its timeout takes them along; tsf_fini and an atexit handler also
 * SIGKILL them and remove the directory.
 *
 * With TSF_KEEP set in the environment the directory is kept (and named on
 * stderr) for a post-mortem.
 *
 * TS_TEST(name, init, seconds) declares a test whose body, when it returns,
 * is followed by tsf_finish(): the server is stopped with SIGTERM and must
 * exit 0, and its stderr must hold no AddressSanitizer, UndefinedBehavior-
 * Sanitizer or LeakSanitizer report (that check covers every server process of
 * the test, also the killed ones, as they all append to ts.stderr).  This is
 * done in the test body rather than in .fini because Criterion 2.4 does not
 * count assertion failures in .fini.
 *
 * Helper threads (writers, pollers) must not use cr_assert: they record, the
 * main thread asserts after joining them.
 */
#ifndef BT_TESTS_TS_FIXTURE_H
#define BT_TESTS_TS_FIXTURE_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ftw.h>

#include "client/conn.h"
#include "client/meta.h"
#include "common/rpc.h"
#include "common/status.h"
#include "lockservice/lock.h"
#include "tabletserver/logsplit.h"
#include "tabletserver/manifest.h"
#include "tabletserver/ts_proto.h"
#include "tests/unit/testutil.h"

#define TSF_FN static __attribute__((unused))

#define TSF_LEASE_MS 1000
#define TSF_ID "ts1"
#define TSF_LOCK_FILE "/bt/servers/" TSF_ID
#define TSF_TABLE "t"
#define TSF_CALL_MS 10000      /* per call, through the pool */
#define TSF_START_MS 20000     /* bound on a server's start (lock wait included) */

typedef struct tsf_state {
    char root[PATH_MAX];
    char lockd_dir[PATH_MAX + 16], data_dir[PATH_MAX + 16];
    char ts_err[PATH_MAX + 16], lockd_err[PATH_MAX + 16];
    pid_t lockd, ts;          /* children, -1 when not running */
    int ts_status;            /* wait status of the last server that ended; -1: none */
    char lock_url[64];
    char addr[64];            /* the running (or last) server's address */
    unsigned scanner_lease_ms;/* 0: the server's default */
    lk_client *master;
    char seqr[LK_MAX_SEQUENCER];
    bt_conn_pool *pool;
    bool atexit_set;
    bool finished;            /* tsf_finish passed: the test succeeded */
} tsf_state;

static tsf_state F = {.lockd = -1, .ts = -1, .ts_status = -1};

/* The error detail of the last failed call on this thread (the server's text). */
static _Thread_local char tsf_detail[512];

/* ---- time ------------------------------------------------------------------- */

TSF_FN int64_t tsf_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

TSF_FN int64_t tsf_now_ms(void) { return tsf_now_us() / 1000; }

TSF_FN void tsf_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* ---- children ------------------------------------------------------------------ */

TSF_FN void tsf_bin(const char *name, char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert(n > 0, "readlink /proc/self/exe");
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    snprintf(out, cap, "%s/../bin/%s", self, name);
    cr_assert_eq(access(out, X_OK), 0, "%s is not built", out);
}

#if defined(__SANITIZE_THREAD__)
#define TSF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSF_TSAN 1
#endif
#endif

extern char **environ;

/* The children's environment.  Under ThreadSanitizer the server runs with
 * detect_deadlocks=0 added to TSAN_OPTIONS: it holds one mutex per row stripe
 * of a write batch at once (up to 1024, always in order), and TSan's deadlock
 * detector aborts ("CHECK failed: sanitizer_deadlock_detector.h") past 64
 * held mutexes.  Data races are still reported (and fail the test through
 * tsf_check_sanitizer_log).  Built before fork: the child may not allocate. */
TSF_FN char **tsf_env(void)
{
#ifdef TSF_TSAN
    static char **env;
    static char opt[2048];
    if (!env) {
        size_t n = 0;
        while (environ[n]) n++;
        env = calloc(n + 2, sizeof *env);
        cr_assert_not_null(env);
        const char *old = getenv("TSAN_OPTIONS");
        snprintf(opt, sizeof opt, "TSAN_OPTIONS=%s%sdetect_deadlocks=0", old ? old : "", old && *old ? " " : "");
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (strncmp(environ[i], "TSAN_OPTIONS=", 13)) env[k++] = environ[i];
        env[k++] = opt;
        env[k] = NULL;
    }
    return env;
#else
    return environ;
#endif
}

/* fork+exec tied to this thread (PR_SET_PDEATHSIG), stdout to out_fd and
 * stderr to err_fd (-1: inherit).  The child closes every other descriptor
 * (the test's sockets, Criterion's pipes) and starts with default SIGTERM /
 * SIGINT handling and an empty signal mask.  Only async-signal-safe calls
 * between fork and exec: the test has threads. */
TSF_FN pid_t tsf_spawn(char *const argv[], int out_fd, int err_fd)
{
    char **envp = tsf_env();
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(9);
        if (out_fd >= 0 && out_fd != 1) dup2(out_fd, 1);
        if (err_fd >= 0 && err_fd != 2) dup2(err_fd, 2);
        close_range(3, ~0u, 0);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    return pid;
}

/* Reads one line (without the newline) from fd within timeout_ms.  Returns its
 * length, or -1 on EOF or timeout (line holds what came). */
TSF_FN int tsf_read_line(int fd, char *line, size_t cap, int timeout_ms)
{
    size_t len = 0;
    int64_t end = tsf_now_ms() + timeout_ms;
    int rc = -1;
    while (len < cap - 1) {
        int64_t left = end - tsf_now_ms();
        if (left <= 0) break;
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, left > 100 ? 100 : (int)left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) continue;
        ssize_t r = read(fd, line + len, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (line[len] == '\n') {
            rc = (int)len;
            break;
        }
        len++;
    }
    line[len] = '\0';
    return rc;
}

/* Waits up to timeout_ms for *pid to end; returns its wait status (and sets
 * *pid to -1) or -1 on timeout. */
TSF_FN int tsf_wait_pid(pid_t *pid, int timeout_ms)
{
    if (*pid <= 0) return -1;
    int64_t end = tsf_now_ms() + timeout_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(*pid, &st, WNOHANG);
        if (r == *pid) {
            *pid = -1;
            return st;
        }
        if (r < 0 && errno != EINTR) {
            *pid = -1;
            return -1;
        }
        if (tsf_now_ms() >= end) return -1;
        tsf_sleep_ms(10);
    }
}

TSF_FN void tsf_kill(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        *pid = -1;
    }
}

/* The whole file (NUL-terminated, malloc'd) or NULL. */
TSF_FN char *tsf_slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += r;
        if (cap - len - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
}

/* Prints the last `tail` bytes of a child's stderr to ours (for failures). */
TSF_FN void tsf_dump(const char *path, size_t tail)
{
    size_t len = 0;
    char *s = tsf_slurp(path, &len);
    if (!s) return;
    const char *p = len > tail ? s + len - tail : s;
    fprintf(stderr, "---- last %zu bytes of %s ----\n%s\n---- end ----\n", len > tail ? tail : len, path, p);
    free(s);
}

/* ---- bt-lockd ------------------------------------------------------------------ */

TSF_FN void tsf_start_lockd(void)
{
    char bin[PATH_MAX + 32];
    tsf_bin("bt-lockd", bin, sizeof bin);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    int err = open(F.lockd_err, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    cr_assert(err >= 0);
    char *argv[] = {bin, "--port", "0", "--data-dir", F.lockd_dir, "--lease-ms", "1000", NULL};
    F.lockd = tsf_spawn(argv, p[1], err);
    close(p[1]);
    close(err);
    char line[256];
    int n = tsf_read_line(p[0], line, sizeof line, 10000);
    close(p[0]);
    unsigned port = 0;
    if (n < 0 || sscanf(line, "bt-lockd: listening on 127.0.0.1:%u", &port) != 1) {
        tsf_kill(&F.lockd);
        tsf_dump(F.lockd_err, 2000);
        cr_assert_fail("bt-lockd did not start (line \"%s\")", line);
    }
    snprintf(F.lock_url, sizeof F.lock_url, "bt://127.0.0.1:%u", port);
}

TSF_FN lk_client *tsf_lk_open(void)
{
    lk_options o = {.lease_ms = 10000, .timeout_ms = 5000};
    lk_client *c = NULL;
    int rc = lk_open(F.lock_url, &o, &c);
    cr_assert_eq(rc, BT_OK, "lk_open %s: %s (%s)", F.lock_url, bt_errname(rc), bt_errmsg());
    return c;
}

/* Creates /bt and /bt/master if needed, acquires /bt/master with c and writes
 * its sequencer to seqr (LK_MAX_SEQUENCER bytes). */
TSF_FN void tsf_acquire_master(lk_client *c, char *seqr)
{
    int rc = lk_create(c, "/bt", NULL, 0, LK_DIR);
    cr_assert(rc == BT_OK || rc == BT_EEXIST, "create /bt: %s", bt_errname(rc));
    rc = lk_create(c, "/bt/master", NULL, 0, 0);
    cr_assert(rc == BT_OK || rc == BT_EEXIST, "create /bt/master: %s", bt_errname(rc));
    rc = lk_acquire(c, "/bt/master", 5000);
    cr_assert_eq(rc, BT_OK, "acquire /bt/master: %s (%s)", bt_errname(rc), bt_errmsg());
    rc = lk_get_sequencer(c, "/bt/master", seqr, LK_MAX_SEQUENCER);
    cr_assert_eq(rc, BT_OK, "sequencer: %s", bt_errname(rc));
}

/* ---- bt-tabletserver ------------------------------------------------------------- */

/* Starts the server (same id and data dir every time) and waits for its
 * "serving on" line; F.addr is its address.  The previous address, if any,
 * is dropped from the pool (no call may be running). */
TSF_FN void tsf_start_ts_as(const char *server_id)
{
    cr_assert(F.ts <= 0, "a tablet server is already running");
    char bin[PATH_MAX + 32], lease[16], slease[16];
    tsf_bin("bt-tabletserver", bin, sizeof bin);
    snprintf(lease, sizeof lease, "%d", TSF_LEASE_MS);
    snprintf(slease, sizeof slease, "%u", F.scanner_lease_ms);
    char *argv[16] = {bin, "--port", "0", "--data-dir", F.data_dir, "--lock", F.lock_url,
                      "--lease-ms", lease, "--id", (char *)server_id};
    int argc = 11;
    if (F.scanner_lease_ms) {
        argv[argc++] = "--scanner-lease-ms";
        argv[argc++] = slease;
    }
    argv[argc] = NULL;
    int p[2];
    cr_assert_eq(pipe(p), 0);
    int err = open(F.ts_err, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    cr_assert(err >= 0);
    F.ts = tsf_spawn(argv, p[1], err);
    close(p[1]);
    close(err);
    char line[256];
    int n = tsf_read_line(p[0], line, sizeof line, TSF_START_MS);
    close(p[0]);
    char addr[64] = "", id[80] = "";
    if (n < 0 || sscanf(line, "bt-tabletserver: serving on %63s as %79s", addr, id) != 2) {
        int st = tsf_wait_pid(&F.ts, 0);
        tsf_kill(&F.ts);
        tsf_dump(F.ts_err, 3000);
        cr_assert_fail("bt-tabletserver did not start (line \"%s\", wait status %d)", line, st);
    }
    cr_assert_str_eq(id, server_id);
    cr_assert_eq(strncmp(addr, "127.0.0.1:", 10), 0, "address %s", addr);
    if (F.pool && F.addr[0] && strcmp(F.addr, addr)) bt_conn_pool_drop(F.pool, F.addr);
    snprintf(F.addr, sizeof F.addr, "%s", addr);
}

TSF_FN void tsf_start_ts(void) { tsf_start_ts_as(TSF_ID); }

/* Sends sig to the server and waits up to timeout_ms for it to end; returns
 * the wait status (also kept in F.ts_status), -1 on timeout. */
TSF_FN int tsf_stop_ts(int sig, int timeout_ms)
{
    cr_assert(F.ts > 0, "no tablet server running");
    kill(F.ts, sig);
    int st = tsf_wait_pid(&F.ts, timeout_ms);
    if (st != -1) F.ts_status = st;
    return st;
}

/* If the server has died on its own (a crash, a sanitizer abort), reaps it
 * and describes how in why (cap bytes); returns true.  False while it runs. */
TSF_FN bool tsf_ts_died(char *why, size_t cap)
{
    if (F.ts <= 0) {
        snprintf(why, cap, "the server is not running (last wait status %d)", F.ts_status);
        return true;
    }
    int st = 0;
    if (waitpid(F.ts, &st, WNOHANG) != F.ts) return false;
    F.ts = -1;
    F.ts_status = st;
    if (WIFSIGNALED(st)) snprintf(why, cap, "the server died of signal %d (see its stderr above)", WTERMSIG(st));
    else snprintf(why, cap, "the server exited with status %d (see its stderr above)", WEXITSTATUS(st));
    return true;
}

/* Fails the test at once if the server has died. */
#define TS_ALIVE()                                                                          \
    do {                                                                                    \
        char why_[128];                                                                     \
        if (tsf_ts_died(why_, sizeof why_)) cr_assert_fail("%s", why_);                     \
    } while (0)

/* True once every thread of pid is stopped (state T or t). */
TSF_FN bool tsf_all_threads_stopped(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return false;
    bool all = true;
    int seen = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char sp[320], buf[512];
        snprintf(sp, sizeof sp, "/proc/%d/task/%s/stat", (int)pid, de->d_name);
        FILE *f = fopen(sp, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        if (!rp || rp[1] != ' ') continue;
        seen++;
        if (rp[2] != 'T' && rp[2] != 't') all = false;
    }
    closedir(d);
    return all && seen > 0;
}

/* Fails the test if path holds a sanitizer report. */
TSF_FN void tsf_check_sanitizer_log(const char *path, bool leaks_too)
{
    static const char *pats[] = {"ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                                 "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer"};
    size_t len = 0;
    char *s = tsf_slurp(path, &len);
    if (!s) return;
    for (size_t i = 0; i < sizeof pats / sizeof *pats; i++) {
        if (!leaks_too && !strcmp(pats[i], "LeakSanitizer")) continue;
        char *hit = strstr(s, pats[i]);
        if (hit) {
            const char *from = hit - s > 300 ? hit - 300 : s;
            char excerpt[3000];
            snprintf(excerpt, sizeof excerpt, "%s", from);
            free(s);
            cr_assert_fail("%s holds a sanitizer report (\"%s\"):\n%s", path, pats[i], excerpt);
        }
    }
    free(s);
}

/* ---- recovery: what the master does with a dead incarnation's log ----------------------- */

/* The live incarnation's log dir (relative), from /bt/servers/<id> while its
 * lock is held; "" when no server holds it. */
TSF_FN void tsf_live_log_dir_of(const char *server_id, char *out, size_t cap)
{
    uint8_t *data = NULL;
    size_t n = 0;
    lk_stat st;
    char lock_file[128];
    snprintf(lock_file, sizeof lock_file, "/bt/servers/%s", server_id);
    out[0] = '\0';
    int rc = lk_get(F.master, lock_file, &data, &n, &st);
    if (rc == BT_OK && st.lock_owner != 0) {
        char addr[128];
        cr_assert_eq(bt_server_file_parse(data, n, addr, sizeof addr, out, cap), BT_OK,
                     "%s holds \"%.*s\"", lock_file, (int)n, (const char *)data);
    }
    free(data);
}

TSF_FN void tsf_live_log_dir(char *out, size_t cap) { tsf_live_log_dir_of(TSF_ID, out, cap); }

/* Tablet directories found under DATA/tables (by their manifests), for the split. */
typedef struct tsf_tabdirs { uint64_t id[512]; char *dir[512]; size_t n; } tsf_tabdirs;
static tsf_tabdirs tsf_dirs;

static int tsf_find_manifest(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    if (flag != FTW_F || strcmp(path + ftw->base, "MANIFEST") != 0 || tsf_dirs.n == 512) return 0;
    char *dir = strndup(path, (size_t)ftw->base - 1);
    ts_manifest m;
    if (dir && ts_manifest_read(bt_env_posix(), dir, &m) == BT_OK) {
        tsf_dirs.id[tsf_dirs.n] = m.tablet_id;
        tsf_dirs.dir[tsf_dirs.n++] = dir;
        ts_manifest_free(&m);
        return 0;
    }
    free(dir);
    return 0;
}

static const char *tsf_dir_of_tablet(void *arg, uint64_t id)
{
    (void)arg;
    for (size_t i = 0; i < tsf_dirs.n; i++)
        if (tsf_dirs.id[i] == id) return tsf_dirs.dir[i];
    return NULL;
}

/* Splits every log dir of servers/<id> that its lock file does not name
 * (dead incarnations) into recovery files of the tablets under DATA/tables,
 * then deletes it, as the master does before reassigning.  Returns how many. */
TSF_FN int tsf_recover_logs_of(const char *server_id)
{
    char live[PATH_MAX], sdir[PATH_MAX + 64], tables[PATH_MAX + 64];
    tsf_live_log_dir_of(server_id, live, sizeof live);
    const char *live_base = strrchr(live, '/') ? strrchr(live, '/') + 1 : live;
    snprintf(tables, sizeof tables, "%s/tables", F.data_dir);
    memset(&tsf_dirs, 0, sizeof tsf_dirs);
    nftw(tables, tsf_find_manifest, 16, FTW_PHYS);
    snprintf(sdir, sizeof sdir, "%s/servers/%s", F.data_dir, server_id);
    DIR *d = opendir(sdir);
    cr_assert_not_null(d, "opendir %s", sdir);
    int done = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "log-", 4) != 0 || !strcmp(de->d_name, live_base)) continue;
        char path[PATH_MAX + 400], name[300];
        snprintf(path, sizeof path, "%s/%s", sdir, de->d_name);
        snprintf(name, sizeof name, "%s-%s", server_id, de->d_name);
        ts_log_split_stats st;
        int rc = ts_log_split(bt_env_posix(), path, name, tsf_dir_of_tablet, NULL, &st);
        cr_assert_eq(rc, BT_OK, "ts_log_split %s: %s", path, bt_errmsg());
        test_rm_rf(path);
        done++;
    }
    closedir(d);
    for (size_t i = 0; i < tsf_dirs.n; i++) free(tsf_dirs.dir[i]);
    memset(&tsf_dirs, 0, sizeof tsf_dirs);
    return done;
}

TSF_FN int tsf_recover_logs(void) { return tsf_recover_logs_of(TSF_ID); }

/* ---- fixture ------------------------------------------------------------------------ */

static void tsf_cleanup(void)
{
    if (F.pool) {
        bt_conn_pool_free(F.pool);
        F.pool = NULL;
    }
    if (F.master) {
        lk_close(F.master);
        F.master = NULL;
    }
    tsf_kill(&F.ts);
    tsf_kill(&F.lockd);
    if (F.root[0]) {
        if (getenv("TSF_KEEP")) fprintf(stderr, "keeping %s (TSF_KEEP)\n", F.root);
        else test_rm_rf(F.root);
        F.root[0] = '\0';
    }
}

TSF_FN void tsf_init(void)
{
    if (!F.atexit_set) {
        atexit(tsf_cleanup);
        F.atexit_set = true;
    }
    snprintf(F.root, sizeof F.root, "/tmp/bt-ts-test-XXXXXX");
    cr_assert_not_null(mkdtemp(F.root), "mkdtemp: %s", strerror(errno));
    snprintf(F.lockd_dir, sizeof F.lockd_dir, "%s/lockd", F.root);
    snprintf(F.data_dir, sizeof F.data_dir, "%s/data", F.root);
    snprintf(F.ts_err, sizeof F.ts_err, "%s/ts.stderr", F.root);
    snprintf(F.lockd_err, sizeof F.lockd_err, "%s/lockd.stderr", F.root);
    cr_assert_eq(mkdir(F.data_dir, 0755), 0);
    tsf_start_lockd();
    F.master = tsf_lk_open();
    tsf_acquire_master(F.master, F.seqr);
    tsf_start_ts();
    bt_conn_pool_opts po = {.conns_per_server = 2, .request_timeout_ms = TSF_CALL_MS, .connect_timeout_ms = 2000};
    cr_assert_eq(bt_conn_pool_new(&po, &F.pool), BT_OK);
}

TSF_FN void tsf_init_scanner_lease(void)
{
    F.scanner_lease_ms = 300;
    tsf_init();
}

TSF_FN void tsf_fini(void)
{
    /* A failed test: say whether the server died, show the end of its stderr. */
    if (F.root[0] && !F.finished) {
        char why[128];
        if (F.ts > 0 && tsf_ts_died(why, sizeof why)) fprintf(stderr, "%s\n", why);
        tsf_dump(F.ts_err, 3000);
    }
    tsf_cleanup();
}

/* End of every successful test body: a clean SIGTERM shutdown (exit 0) and
 * no sanitizer report from any server (or bt-lockd, leaks aside: it is
 * SIGKILLed) of this test. */
TSF_FN void tsf_finish(void)
{
    if (F.pool) {
        bt_conn_pool_free(F.pool);
        F.pool = NULL;
    }
    if (F.ts > 0) {
        int st = tsf_stop_ts(SIGTERM, 20000);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) tsf_dump(F.ts_err, 4000);
        cr_assert_neq(st, -1, "the server did not exit within 20 s of SIGTERM");
        cr_assert(WIFEXITED(st), "the server died of signal %d after SIGTERM", WTERMSIG(st));
        cr_assert_eq(WEXITSTATUS(st), 0, "exit status %d after SIGTERM", WEXITSTATUS(st));
    }
    tsf_check_sanitizer_log(F.ts_err, true);
    tsf_check_sanitizer_log(F.lockd_err, false);
    F.finished = true;
}

#define TS_TEST(name, init_fn, secs)                                                        \
    static void name##_body(void);                                                          \
    Test(ts, name, .init = init_fn, .fini = tsf_fini, .timeout = secs)                      \
    {                                                                                       \
        name##_body();                                                                      \
        tsf_finish();                                                                       \
    }                                                                                       \
    static void name##_body(void)

/* ---- calls ----------------------------------------------------------------------------- */

/* One call to the server, never retried; on error tsf_detail holds the
 * server's detail text.  req may be NULL (empty payload), resp too. */
TSF_FN int tsf_call_to(const char *addr, uint16_t m, const void *req, size_t len, bt_buf *resp, int timeout_ms)
{
    bt_buf local = {0};
    bt_buf *r = resp ? resp : &local;
    int rc = bt_conn_call(F.pool, addr, m, req, len, r, timeout_ms, 0);
    if (rc) snprintf(tsf_detail, sizeof tsf_detail, "%.*s", (int)(r->len > 500 ? 500 : r->len),
                     r->data ? (const char *)r->data : "");
    else tsf_detail[0] = '\0';
    bt_buf_free(&local);
    return rc;
}

TSF_FN int tsf_call(uint16_t m, const bt_buf *req, bt_buf *resp)
{
    return tsf_call_to(F.addr, m, req ? req->data : NULL, req ? req->len : 0, resp, TSF_CALL_MS);
}

#define TS_RC(expr, want)                                                                   \
    do {                                                                                    \
        int rc_ = (expr);                                                                   \
        int want_ = (want);                                                                 \
        cr_assert_eq(rc_, want_, "%s -> %s, want %s (detail: %s)", #expr, bt_errname(rc_),  \
                     bt_errname(want_), tsf_detail);                                        \
    } while (0)
#define TS_OK(expr) TS_RC(expr, BT_OK)

/* The test schema: families cf (every version kept) and meta. */
TSF_FN void tsf_schema(ts_schema *s)
{
    ts_schema_init(s);
    cr_assert_eq(ts_schema_add_family(s, "cf", 0, 0), BT_OK);
    cr_assert_eq(ts_schema_add_family(s, "meta", 0, 0), BT_OK);
}

TSF_FN void tsf_put_seqr(bt_msg_writer *w, const char *seqr)
{
    bt_msg_put_bytes(w, seqr, seqr ? strlen(seqr) : 0);
}

TSF_FN void tsf_req_load(bt_buf *b, const char *seqr, uint64_t id, const char *dir, const char *start,
                         const char *end, bool create)
{
    ts_schema sc;
    tsf_schema(&sc);
    tsp_tablet t = {.id = id, .table = TSF_TABLE, .table_len = strlen(TSF_TABLE), .dir = dir,
                    .dir_len = strlen(dir), .start = (const uint8_t *)start, .start_len = strlen(start),
                    .end = (const uint8_t *)end, .end_len = strlen(end)};
    bt_msg_writer w;
    bt_msg_writer_init(&w, b);
    tsf_put_seqr(&w, seqr);
    tsp_put_tablet(&w, &t);
    tsp_put_schema(&w, &sc);
    bt_msg_put_varint(&w, create ? TSP_LOAD_CREATE : 0);
    cr_assert_eq(bt_msg_writer_status(&w), BT_OK);
}

/* TSP_LOAD_TABLET of tablet id [start, end) in dir (relative to the data dir). */
TSF_FN int tsf_load(uint64_t id, const char *dir, const char *start, const char *end, bool create,
                    const char *seqr)
{
    bt_buf req = {0};
    tsf_req_load(&req, seqr, id, dir, start, end, create);
    int rc = tsf_call(TSP_LOAD_TABLET, &req, NULL);
    bt_buf_free(&req);
    return rc;
}

TSF_FN void tsf_req_unload(bt_buf *b, const char *seqr, uint64_t id)
{
    bt_msg_writer w;
    bt_msg_writer_init(&w, b);
    tsf_put_seqr(&w, seqr);
    bt_msg_put_varint(&w, id);
}

TSF_FN int tsf_unload(uint64_t id, const char *seqr)
{
    bt_buf req = {0};
    tsf_req_unload(&req, seqr, id);
    int rc = tsf_call(TSP_UNLOAD_TABLET, &req, NULL);
    bt_buf_free(&req);
    return rc;
}

TSF_FN void tsf_req_split(bt_buf *b, const char *seqr, uint64_t id, const char *mid, uint64_t lid,
                          const char *ldir, uint64_t rid, const char *rdir)
{
    bt_msg_writer w;
    bt_msg_writer_init(&w, b);
    tsf_put_seqr(&w, seqr);
    bt_msg_put_varint(&w, id);
    bt_msg_put_bytes(&w, mid, strlen(mid));
    bt_msg_put_varint(&w, lid);
    bt_msg_put_bytes(&w, ldir, strlen(ldir));
    bt_msg_put_varint(&w, rid);
    bt_msg_put_bytes(&w, rdir, strlen(rdir));
}

/* TSP_SPLIT; on success mid_out (if not NULL, 256 bytes) gets the answer. */
TSF_FN int tsf_split(const char *seqr, uint64_t id, const char *mid, uint64_t lid, const char *ldir, uint64_t rid,
                     const char *rdir, char *mid_out)
{
    bt_buf req = {0}, resp = {0};
    tsf_req_split(&req, seqr, id, mid, lid, ldir, rid, rdir);
    int rc = tsf_call(TSP_SPLIT, &req, &resp);
    if (!rc && mid_out) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, resp.data, resp.len);
        const uint8_t *p;
        size_t n;
        cr_assert_eq(bt_msg_get_bytes(&r, &p, &n), BT_OK);
        cr_assert_eq(bt_msg_reader_done(&r), BT_OK);
        cr_assert_lt(n, 256);
        memcpy(mid_out, p, n);
        mid_out[n] = '\0';
    }
    bt_buf_free(&req);
    bt_buf_free(&resp);
    return rc;
}

/* A method whose request is one varint (flush, compact, scan_next, scan_close). */
TSF_FN int tsf_id_call(uint16_t m, uint64_t id, bt_buf *resp)
{
    bt_buf req = {0};
    bt_buf_put_varint64(&req, id);
    int rc = tsf_call(m, &req, resp);
    bt_buf_free(&req);
    return rc;
}

/* TSP_STATUS decoded into *st (pointing into resp, which the caller frees). */
TSF_FN int tsf_status(tsp_status *st, bt_buf *resp)
{
    int rc = tsf_call(TSP_STATUS, NULL, resp);
    if (rc) return rc;
    bt_msg_reader r;
    bt_msg_reader_init(&r, resp->data, resp->len);
    rc = tsp_get_status(&r, st);
    if (!rc) rc = bt_msg_reader_done(&r);
    return rc;
}

/* TSP_LIST_TABLETS decoded into a malloc'd array (free() it) pointing into resp. */
TSF_FN int tsf_list(tsp_tablet_info **out, size_t *n, bt_buf *resp)
{
    *out = NULL;
    *n = 0;
    int rc = tsf_call(TSP_LIST_TABLETS, NULL, resp);
    if (rc) return rc;
    bt_msg_reader r;
    bt_msg_reader_init(&r, resp->data, resp->len);
    uint64_t cnt;
    rc = bt_msg_get_varint(&r, &cnt);
    if (rc) return rc;
    if (cnt > 1000) return BT_ECORRUPT;
    tsp_tablet_info *ti = calloc(cnt ? cnt : 1, sizeof *ti);
    for (uint64_t i = 0; !rc && i < cnt; i++) rc = tsp_get_tablet_info(&r, &ti[i]);
    if (!rc) rc = bt_msg_reader_done(&r);
    if (rc) {
        free(ti);
        return rc;
    }
    *out = ti;
    *n = cnt;
    return BT_OK;
}

/* The entry for tablet id in a list, or NULL. */
TSF_FN const tsp_tablet_info *tsf_find_tablet(const tsp_tablet_info *ti, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ti[i].tablet.id == id) return &ti[i];
    return NULL;
}

TSF_FN bool tsf_bytes_eq(const void *p, size_t n, const char *s)
{
    return n == strlen(s) && (n == 0 || !memcmp(p, s, n));
}

TSF_FN ts_mutation tsf_set(const char *fam, const char *qual, int64_t ts, const char *val)
{
    return (ts_mutation){.type = TS_SET_CELL, .family = fam, .family_len = strlen(fam),
                         .qualifier = (const uint8_t *)qual, .qualifier_len = strlen(qual), .timestamp = ts,
                         .value = (const uint8_t *)val, .value_len = strlen(val)};
}

TSF_FN void tsf_req_mutate(bt_buf *b, uint64_t tid, const void *row, size_t rl, const ts_mutation *m, int n)
{
    bt_msg_writer w;
    bt_msg_writer_init(&w, b);
    bt_msg_put_varint(&w, tid);
    bt_msg_put_bytes(&w, row, rl);
    tsp_put_mutations(&w, m, n);
    cr_assert_eq(bt_msg_writer_status(&w), BT_OK);
}

/* TSP_MUTATE_ROW on the server at addr (calls from helper threads pass it). */
TSF_FN int tsf_mutate_to(const char *addr, uint64_t tid, const void *row, size_t rl, const ts_mutation *m, int n,
                         int timeout_ms)
{
    bt_buf req = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, tid);
    bt_msg_put_bytes(&w, row, rl);
    tsp_put_mutations(&w, m, n);
    int rc = bt_msg_writer_status(&w);
    if (!rc) rc = tsf_call_to(addr, TSP_MUTATE_ROW, req.data, req.len, NULL, timeout_ms);
    bt_buf_free(&req);
    return rc;
}

TSF_FN int tsf_mutate(uint64_t tid, const void *row, size_t rl, const ts_mutation *m, int n)
{
    return tsf_mutate_to(F.addr, tid, row, rl, m, n, TSF_CALL_MS);
}

/* One SetCell of fam:qual at ts (TS_SERVER_TIME allowed). */
TSF_FN int tsf_put(uint64_t tid, const char *row, const char *fam, const char *qual, int64_t ts, const char *val)
{
    ts_mutation m = tsf_set(fam, qual, ts, val);
    return tsf_mutate(tid, row, strlen(row), &m, 1);
}

typedef struct tsf_rowmut {
    uint64_t tid;
    const char *row;
    const ts_mutation *m;
    int n;
} tsf_rowmut;

/* TSP_MUTATE_ROWS; on BT_OK *status (malloc'd, free() it) has one code per row
 * and detail (256 bytes) the first failure's text. */
TSF_FN int tsf_mutate_rows(const tsf_rowmut *rows, size_t n, int **status, size_t *nst, char *detail)
{
    bt_buf req = {0}, resp = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, n);
    for (size_t i = 0; i < n; i++) {
        bt_msg_put_varint(&w, rows[i].tid);
        bt_msg_put_bytes(&w, rows[i].row, strlen(rows[i].row));
        tsp_put_mutations(&w, rows[i].m, rows[i].n);
    }
    cr_assert_eq(bt_msg_writer_status(&w), BT_OK);
    int rc = tsf_call(TSP_MUTATE_ROWS, &req, &resp);
    *status = NULL;
    *nst = 0;
    if (!rc) {
        bt_msg_reader r;
        bt_msg_reader_init(&r, resp.data, resp.len);
        const uint8_t *d;
        size_t dl;
        rc = tsp_get_batch_result(&r, status, nst, &d, &dl);
        if (!rc) rc = bt_msg_reader_done(&r);
        if (!rc && detail) snprintf(detail, 256, "%.*s", (int)(dl > 255 ? 255 : dl), (const char *)d);
    }
    bt_buf_free(&req);
    bt_buf_free(&resp);
    return rc;
}

/* Writes rows "<prefix>NNN" for NNN in [from, to) with one MUTATE_ROWS, each
 * one cell cf:c = its key at server time; every row must succeed. */
TSF_FN void tsf_fill(uint64_t tid, const char *prefix, int from, int to)
{
    int n = to - from;
    char (*keys)[64] = calloc((size_t)n, sizeof *keys);
    ts_mutation *m = calloc((size_t)n, sizeof *m);
    tsf_rowmut *rows = calloc((size_t)n, sizeof *rows);
    for (int i = 0; i < n; i++) {
        snprintf(keys[i], sizeof keys[i], "%s%03d", prefix, from + i);
        m[i] = tsf_set("cf", "c", TS_SERVER_TIME, keys[i]);
        rows[i] = (tsf_rowmut){tid, keys[i], &m[i], 1};
    }
    int *st = NULL;
    size_t nst = 0;
    char detail[256];
    TS_OK(tsf_mutate_rows(rows, (size_t)n, &st, &nst, detail));
    cr_assert_eq(nst, (size_t)n);
    for (int i = 0; i < n; i++) cr_assert_eq(st[i], BT_OK, "row %s: %s (%s)", keys[i], bt_errname(st[i]), detail);
    free(st);
    free(rows);
    free(m);
    free(keys);
}

/* TSP_READ_ROW with filter ro (NULL: none); on BT_OK *row is decoded (points
 * into resp; tsp_row_release it). */
TSF_FN int tsf_read_to(const char *addr, uint64_t tid, const void *key, size_t kl, const ts_read_options *ro,
                       bt_buf *resp, ts_row *row)
{
    bt_buf req = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, tid);
    bt_msg_put_bytes(&w, key, kl);
    tsp_put_filter(&w, ro);
    int rc = bt_msg_writer_status(&w);
    if (!rc) rc = tsf_call_to(addr, TSP_READ_ROW, req.data, req.len, resp, TSF_CALL_MS);
    bt_buf_free(&req);
    if (rc) return rc;
    bt_msg_reader r;
    bt_msg_reader_init(&r, resp->data, resp->len);
    rc = tsp_get_row(&r, row);
    if (!rc && bt_msg_reader_done(&r)) {
        tsp_row_release(row);
        rc = BT_ECORRUPT;
    }
    if (!rc && !(row->key_len == kl && !memcmp(row->key, key, kl))) {
        tsp_row_release(row);
        rc = BT_ECORRUPT;
    }
    return rc;
}

TSF_FN int tsf_read(uint64_t tid, const char *key, const ts_read_options *ro, bt_buf *resp, ts_row *row)
{
    return tsf_read_to(F.addr, tid, key, strlen(key), ro, resp, row);
}

/* Reads row key of tablet tid and returns its status only. */
TSF_FN int tsf_read_rc(uint64_t tid, const char *key)
{
    bt_buf resp = {0};
    ts_row row;
    int rc = tsf_read(tid, key, NULL, &resp, &row);
    if (!rc) tsp_row_release(&row);
    bt_buf_free(&resp);
    return rc;
}

/* Cell i of row matches (fam, qual, ts (INT64_MIN: any), value). */
TSF_FN void tsf_assert_cell(const ts_row *row, size_t i, const char *fam, const char *qual, int64_t ts,
                            const char *val)
{
    cr_assert_lt(i, row->n_cells, "row has %zu cells, wanted cell %zu", row->n_cells, i);
    const ts_cell *c = &row->cells[i];
    cr_assert(tsf_bytes_eq(c->family, c->family_len, fam), "cell %zu family %.*s, want %s", i,
              (int)c->family_len, c->family, fam);
    cr_assert(tsf_bytes_eq(c->qualifier, c->qualifier_len, qual), "cell %zu qualifier %.*s, want %s", i,
              (int)c->qualifier_len, (const char *)c->qualifier, qual);
    if (ts != INT64_MIN) cr_assert_eq(c->timestamp, ts, "cell %zu ts %lld, want %lld", i, (long long)c->timestamp,
                                      (long long)ts);
    if (val) cr_assert(tsf_bytes_eq(c->value, c->value_len, val), "cell %zu value \"%.*s\", want \"%s\"", i,
                       (int)c->value_len, (const char *)c->value, val);
}

/* ---- scans -------------------------------------------------------------------------------- */

/* A decoded scan batch: rows point into the response. */
typedef struct tsf_batch {
    bt_buf resp;
    uint64_t scanner;
    bool done;
    ts_row *rows;
    size_t n;
} tsf_batch;

TSF_FN void tsf_batch_free(tsf_batch *b)
{
    for (size_t i = 0; i < b->n; i++) tsp_row_release(&b->rows[i]);
    free(b->rows);
    bt_buf_free(&b->resp);
    memset(b, 0, sizeof *b);
}

TSF_FN int tsf_batch_decode(tsf_batch *b)
{
    bt_msg_reader r;
    bt_msg_reader_init(&r, b->resp.data, b->resp.len);
    int rc = tsp_get_scan_header(&r, &b->scanner, &b->done);
    size_t cap = 0;
    while (!rc && bt_msg_remaining(&r) > 0) {
        if (b->n == cap) {
            cap = cap ? 2 * cap : 16;
            b->rows = realloc(b->rows, cap * sizeof *b->rows);
        }
        rc = tsp_get_row(&r, &b->rows[b->n]);
        if (!rc) b->n++;
    }
    return rc;
}

/* TSP_SCAN_OPEN of tablet tid; *b is the first batch (tsf_batch_free it). */
TSF_FN int tsf_scan_open(uint64_t tid, const ts_read_options *ro, uint64_t max_rows, uint64_t max_bytes,
                         tsf_batch *b)
{
    memset(b, 0, sizeof *b);
    bt_buf req = {0};
    bt_msg_writer w;
    bt_msg_writer_init(&w, &req);
    bt_msg_put_varint(&w, tid);
    tsp_put_filter(&w, ro);
    bt_msg_put_varint(&w, max_rows);
    bt_msg_put_varint(&w, max_bytes);
    int rc = tsf_call(TSP_SCAN_OPEN, &req, &b->resp);
    bt_buf_free(&req);
    if (!rc) rc = tsf_batch_decode(b);
    return rc;
}

TSF_FN int tsf_scan_next(uint64_t scanner, tsf_batch *b)
{
    memset(b, 0, sizeof *b);
    int rc = tsf_id_call(TSP_SCAN_NEXT, scanner, &b->resp);
    if (!rc) rc = tsf_batch_decode(b);
    return rc;
}

/* Growable list of row keys (with the value of each row's first cell). */
typedef struct tsf_keys {
    char **key;
    char **val;
    size_t n, cap;
} tsf_keys;

TSF_FN void tsf_keys_add(tsf_keys *k, const void *key, size_t kl, const void *val, size_t vl)
{
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 256;
        k->key = realloc(k->key, k->cap * sizeof *k->key);
        k->val = realloc(k->val, k->cap * sizeof *k->val);
    }
    k->key[k->n] = strndup(key, kl);
    k->val[k->n] = val ? strndup(val, vl) : strdup("");
    k->n++;
}

TSF_FN void tsf_keys_free(tsf_keys *k)
{
    for (size_t i = 0; i < k->n; i++) {
        free(k->key[i]);
        free(k->val[i]);
    }
    free(k->key);
    free(k->val);
    memset(k, 0, sizeof *k);
}

/* Scans tablet tid (filter ro) to the end with batches of max_rows rows and
 * collects every row; returns the number of batches (asserts on errors).
 * Checks the batch protocol: at most max_rows rows per batch, a scanner id on
 * every batch but the last, id 0 on the last. */
TSF_FN int tsf_scan_all(uint64_t tid, const ts_read_options *ro, uint64_t max_rows, tsf_keys *out)
{
    tsf_batch b;
    TS_OK(tsf_scan_open(tid, ro, max_rows, 0, &b));
    int batches = 1;
    for (;;) {
        if (max_rows) cr_assert_leq(b.n, max_rows, "batch of %zu rows, max_rows %llu", b.n,
                                    (unsigned long long)max_rows);
        for (size_t i = 0; i < b.n; i++) {
            const ts_row *r = &b.rows[i];
            tsf_keys_add(out, r->key, r->key_len, r->n_cells ? r->cells[0].value : NULL,
                         r->n_cells ? r->cells[0].value_len : 0);
        }
        bool done = b.done;
        uint64_t id = b.scanner;
        tsf_batch_free(&b);
        if (done) {
            cr_assert_eq(id, 0, "the last batch names scanner %llu", (unsigned long long)id);
            break;
        }
        cr_assert_neq(id, 0, "a batch that is not the last has no scanner id");
        cr_assert_lt(batches, 100000);
        TS_OK(tsf_scan_next(id, &b));
        batches++;
    }
    return batches;
}

#endif

/* tests/unit/test_lock_bt.c: lock.h over bt-lockd.  Provides the fixture of
 * tests/unit/lock_suite.h (a real bt-lockd process per test, started from
 * BUILD/bin next to this binary's BUILD/tests, on an ephemeral port and a
 * temporary data directory), runs that suite, and adds what only bt-lockd
 * has: raw-socket malformed frames, unknown session ids on the wire, flag
 * handling, and persistence across SIGKILL of the server.  Those live in the
 * same "lock" suite so they get the same per-test fixture.
 *
 * Cleanup: the server is SIGKILLed and its directory removed in the fixture's
 * fini and, should a test die before that, in an atexit handler; a test
 * killed by its timeout takes the server with it (PR_SET_PDEATHSIG).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "common/rpc.h"
#include "lockservice/lockd_proto.h"
#include "tests/unit/lock_suite.h"
#include "tests/unit/testutil.h"

/* Criterion 2.4's runner leaks a small allocation when tests from two source
 * files (lock_suite.h and this one) run in one binary; that is not ours, and
 * LeakSanitizer would fail the ASan build for it.  This sanitizer hook
 * suppresses leaks allocated inside libcriterion only (unused without ASan). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libcriterion.so\n"; }

static pid_t g_srv = -1;     /* the bt-lockd child, or -1 */
static char g_dir[PATH_MAX]; /* its data directory ("" if none) */
static uint16_t g_port;
static char g_url[64];
static bool g_atexit;

static void server_path(char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert(n > 0);
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    snprintf(out, cap, "%s/../bin/bt-lockd", self);
}

static void kill_server(void)
{
    if (g_srv > 0) {
        kill(g_srv, SIGKILL);
        waitpid(g_srv, NULL, 0);
        g_srv = -1;
    }
}

static void cleanup(void)
{
    kill_server();
    if (g_dir[0]) {
        test_rm_rf(g_dir);
        g_dir[0] = '\0';
    }
}

/* Starts bt-lockd on `port` (0: ephemeral) and waits for its address line. */
static int start_server(uint16_t port)
{
    char bin[PATH_MAX + 32], portarg[16];
    server_path(bin, sizeof bin);
    snprintf(portarg, sizeof portarg, "%u", (unsigned)port);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = ls_fork_tied(); /* the server dies with the test, even on a timeout */
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        setenv("BT_LOG_LEVEL", "warn", 0);
        execl(bin, bin, "--port", portarg, "--data-dir", g_dir, "--grace-ms", "2500", "--lease-ms", "1000",
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    g_srv = pid;
    char line[256];
    size_t len = 0;
    int64_t t0 = ls_now_ms();
    while (len < sizeof line - 1 && ls_now_ms() - t0 < 10000) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t r = read(p[0], line + len, 1);
        if (r <= 0) break;
        if (line[len] == '\n') break;
        len++;
    }
    line[len] = '\0';
    close(p[0]);
    unsigned got = 0;
    if (sscanf(line, "bt-lockd: listening on 127.0.0.1:%u", &got) != 1) {
        kill_server();
        return -1;
    }
    g_port = (uint16_t)got;
    snprintf(g_url, sizeof g_url, "bt://127.0.0.1:%u", got);
    return 0;
}

void lock_suite_init(void)
{
    if (!g_atexit) {
        atexit(cleanup);
        g_atexit = true;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/bt-lockd-test-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    cr_assert_eq(start_server(0), 0, "bt-lockd did not start");
}

void lock_suite_fini(void) { cleanup(); }

const char *lock_suite_url(void) { return g_url; }

void lock_suite_restart(void)
{
    kill_server();
    int rc = -1;
    for (int i = 0; i < 20 && rc; i++) {
        rc = start_server(g_port);
        if (rc) ls_sleep_ms(100);
    }
    cr_assert_eq(rc, 0, "bt-lockd did not restart on port %u", (unsigned)g_port);
}

/* ---- bt-lockd specific ------------------------------------------------------- */


static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(g_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* True if the server closes fd within 3 s (reads until EOF). */
static bool closed_by_peer(int fd)
{
    int64_t t0 = ls_now_ms();
    char buf[256];
    while (ls_now_ms() - t0 < 3000) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
    }
    return false;
}

Test(lock, malformed_frames_close_only_that_connection, .timeout = 30)
{
    lk_client *a = ls_open(LS_LEASE_MS);
    ls_mkroot(a, "raw");
    /* unknown flag bits */
    int fd = raw_connect();
    uint8_t hdr[RPC_HDR_LEN];
    rpc_frame f = {.id = 1, .method = LKD_STAT, .flags = 0};
    rpc_frame_put_header(hdr, &f);
    hdr[18] = 0x80;
    cr_assert_eq(write(fd, hdr, sizeof hdr), (ssize_t)sizeof hdr);
    cr_assert(closed_by_peer(fd), "server kept a connection that sent bad flags");
    close(fd);
    /* an oversize length field, and a length below the header */
    uint8_t huge[4] = {0xff, 0xff, 0xff, 0x7f}, tiny[19] = {3, 0, 0, 0};
    fd = raw_connect();
    cr_assert_eq(write(fd, huge, 4), 4);
    cr_assert(closed_by_peer(fd));
    close(fd);
    fd = raw_connect();
    cr_assert_eq(write(fd, tiny, sizeof tiny), (ssize_t)sizeof tiny);
    cr_assert(closed_by_peer(fd));
    close(fd);
    /* a well-framed request with an undecodable payload gets BT_EINVAL */
    fd = raw_connect();
    bt_buf out = {0};
    uint8_t junk = 0xff;
    rpc_frame g = {.id = 7, .method = LKD_CREATE, .payload = &junk, .payload_len = 1};
    cr_assert_eq(rpc_frame_encode(&out, &g, RPC_DEFAULT_MAX_FRAME), BT_OK);
    cr_assert_eq(write(fd, out.data, out.len), (ssize_t)out.len);
    bt_buf_free(&out);
    uint8_t resp[512];
    size_t got = 0;
    int64_t t0 = ls_now_ms();
    while (got < RPC_HDR_LEN && ls_now_ms() - t0 < 3000) {
        ssize_t r = read(fd, resp + got, sizeof resp - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    cr_assert_geq(got, RPC_HDR_LEN);
    rpc_frame rf;
    size_t flen;
    const char *why;
    cr_assert_eq(rpc_frame_decode(resp, got, RPC_DEFAULT_MAX_FRAME, &rf, &flen, &why), RPC_DECODE_FRAME);
    cr_assert_eq(rf.id, 7);
    cr_assert_eq(rf.status, BT_EINVAL);
    close(fd);
    /* the well-behaved client never noticed */
    char p[256];
    ls_path(p, sizeof p, "raw", "/still-works");
    LS_OK(lk_create(a, p, "ok", 2, 0));
    LS_OK(lk_stat_path(a, p, NULL));
    cr_assert(lk_session_valid(a));
    lk_close(a);
}

Test(lock, unknown_session_is_closed, .timeout = 30)
{
    rpc_client *c = NULL;
    LS_OK(rpc_client_new("127.0.0.1", g_port, NULL, &c));
    bt_buf req = {0}, resp = {0};
    bt_buf_put_varint64(&req, 987654321);
    bt_buf_put_lenbytes(&req, "/", 1);
    int rc = rpc_call(c, LKD_STAT, req.data, req.len, &resp, 3000);
    cr_assert_eq(rc, BT_ECLOSED, "%s", bt_errname(rc));
    bt_buf_clear(&req);
    bt_buf_put_varint64(&req, 987654321);
    rc = rpc_call(c, LKD_KEEPALIVE, req.data, req.len, &resp, 3000);
    cr_assert_eq(rc, BT_ECLOSED);
    cr_assert(resp.len == 0 || memmem(resp.data, resp.len, "unknown", 7) != NULL);
    rc = rpc_call(c, 99, req.data, req.len, &resp, 3000);
    cr_assert_eq(rc, BT_EINVAL, "unassigned method: %s", bt_errname(rc));
    bt_buf_free(&req);
    bt_buf_free(&resp);
    rpc_client_free(c);
}

static int run_server(const char *a1, const char *a2, const char *a3, char *out, size_t cap)
{
    char bin[PATH_MAX + 32];
    server_path(bin, sizeof bin);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        execl(bin, bin, a1, a2, a3, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t r;
    while (len < cap - 1 && (r = read(p[0], out + len, cap - 1 - len)) > 0) len += (size_t)r;
    out[len] = '\0';
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(lock, flags, .timeout = 30)
{
    static char out[16384];
    cr_assert_eq(run_server("--help", NULL, NULL, out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "SYNOPSIS"));
    cr_assert_not_null(strstr(out, "--data-dir"));
    cr_assert_eq(run_server("--bogus", NULL, NULL, out, sizeof out), 2);
    cr_assert_not_null(strstr(out, "unknown option"));
    cr_assert_eq(run_server("--port", "nope", NULL, out, sizeof out), 2);
    cr_assert_not_null(strstr(out, "--port"));
    cr_assert_eq(run_server("--port", "0", NULL, out, sizeof out), 2);
    cr_assert_not_null(strstr(out, "--data-dir is required"));
    cr_assert_eq(run_server("--data-dir", "/tmp/x", "--lease-ms", out, sizeof out), 2);
    cr_assert_eq(run_server("--lease-ms", "5", NULL, out, sizeof out), 2);
}

Test(lock, acknowledged_creates_survive_sigkill, .timeout = 30)
{
    lk_client *a = ls_open(LS_LEASE_MS);
    ls_mkroot(a, "dur");
    char p[256], name[32];
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof name, "/f%02d", i);
        ls_path(p, sizeof p, "dur", name);
        LS_OK(lk_create(a, p, name, strlen(name), 0));
    }
    lock_suite_restart(); /* SIGKILL, then start again on the same data */
    lk_close(a);
    lk_client *b = ls_open(LS_LEASE_MS);
    char root[256];
    ls_path(root, sizeof root, "dur", "");
    char **names = NULL;
    size_t n = 0;
    LS_OK(lk_list(b, root, &names, &n));
    cr_assert_eq(n, 50);
    lk_free_names(names, n);
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof name, "/f%02d", i);
        ls_path(p, sizeof p, "dur", name);
        uint8_t *data = NULL;
        size_t len = 0;
        LS_OK(lk_get(b, p, &data, &len, NULL));
        cr_assert_eq(len, strlen(name));
        cr_assert(!memcmp(data, name, len));
        free(data);
    }
    lk_close(b);
}

static atomic_int g_jeopardy, g_safe, g_expired;
static void on_session_count(void *arg, lk_session_event ev)
{
    (void)arg;
    if (ev == LK_SESSION_JEOPARDY) atomic_fetch_add(&g_jeopardy, 1);
    if (ev == LK_SESSION_SAFE) atomic_fetch_add(&g_safe, 1);
    if (ev == LK_SESSION_EXPIRED) atomic_fetch_add(&g_expired, 1);
}

/* The server is down for longer than one keep-alive interval but less than
 * the lease: the holder goes to jeopardy, then back to safe once the
 * restarted server accepts its keep-alive, and it never stops holding. */
Test(lock, jeopardy_then_safe_across_a_short_outage, .timeout = 30)
{
    lk_client *a = ls_open_opts(6000, on_session_count, NULL);
    char f[256];
    ls_mkroot(a, "jp");
    ls_path(f, sizeof f, "jp", "/f");
    LS_OK(lk_create(a, f, NULL, 0, 0));
    LS_OK(lk_acquire(a, f, 1000));
    kill_server();
    ls_sleep_ms(2100); /* longer than the 2 s keep-alive interval */
    cr_assert_eq(start_server(g_port), 0);
    int64_t t0 = ls_now_ms();
    while (atomic_load(&g_safe) == 0 && ls_now_ms() - t0 < 3000) ls_sleep_ms(20);
    cr_assert_eq(atomic_load(&g_jeopardy), 1, "JEOPARDY fired %d times", atomic_load(&g_jeopardy));
    cr_assert_eq(atomic_load(&g_safe), 1, "SAFE fired %d times", atomic_load(&g_safe));
    cr_assert_eq(atomic_load(&g_expired), 0);
    cr_assert(lk_session_valid(a));
    lk_stat st;
    LS_OK(lk_stat_path(a, f, &st));
    cr_assert_eq(st.lock_owner, lk_session_id(a));
    lk_close(a);
    cr_assert_eq(atomic_load(&g_expired), 0, "closing is not expiring");
}

/* Watches and undelivered events are persisted with the change that caused
 * them: across a SIGKILL of the server every change is reported exactly once,
 * whether its event was delivered before the crash or not. */
Test(lock, watches_survive_restart_exactly_once, .timeout = 30)
{
    lk_client *a = ls_open(3000), *b = ls_open(3000);
    char f[256];
    ls_mkroot(a, "wr");
    ls_path(f, sizeof f, "wr", "/f");
    LS_OK(lk_create(b, f, "0", 1, 0));
    struct ls_watch_log l = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t w;
    LS_OK(lk_watch(a, f, LK_WATCH_CHANGED | LK_WATCH_DELETED, ls_watch_cb, &l, &w));
    LS_OK(lk_set(b, f, "1", 1, 0));
    lock_suite_restart();
    int rc;
    int64_t t0 = ls_now_ms();
    while ((rc = lk_set(b, f, "2", 1, 0)) == BT_EUNAVAIL && ls_now_ms() - t0 < 3000) ls_sleep_ms(20);
    LS_OK(rc);
    LS_OK(lk_set(b, f, "3", 1, 0));
    LS_OK(lk_delete(b, f, 0));
    ls_wait_total(&l, 4);
    ls_sleep_ms(300);
    cr_assert_str_eq(l.kinds, "CCCD", "events after the restart: \"%s\"", l.kinds);
    lk_close(a);
    lk_close(b);
}

/* bt-lockd keeps ephemeral directories empty (they vanish with their
 * session) and refuses children under a file. */
Test(lock, no_children_under_files_or_ephemeral_dirs, .timeout = 30)
{
    lk_client *a = ls_open(LS_LEASE_MS);
    char d[256], f[256], kid[300];
    ls_mkroot(a, "nk");
    ls_path(d, sizeof d, "nk", "/edir");
    ls_path(f, sizeof f, "nk", "/file");
    LS_OK(lk_create(a, d, NULL, 0, LK_DIR | LK_EPHEMERAL));
    LS_OK(lk_create(a, f, "x", 1, 0));
    snprintf(kid, sizeof kid, "%s/kid", d);
    LS_RC(lk_create(a, kid, "x", 1, 0), BT_EFAILED_PRECONDITION);
    snprintf(kid, sizeof kid, "%s/kid", f);
    LS_RC(lk_create(a, kid, "x", 1, 0), BT_EFAILED_PRECONDITION);
    lk_close(a);
}

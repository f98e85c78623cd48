/* tests/unit/test_cluster_tool.c: bt-cluster (tools/cluster_main.c) and the
 * installed SDK, run as real processes.
 *
 *   - flags: --help everywhere, unknown options and commands (exit 2);
 *   - status and down on an empty or missing directory;
 *   - up refusing a port that is taken, naming the port and its owner;
 *   - a whole cluster: up --servers 2, status, a libbt client creating a
 *     table and writing a row, a second up refused, down leaving no process;
 *     up naming a tablet server that cannot start (with its log) and
 *     stopping the rest; run stopped by SIGINT;
 *   - scripts/check-install.sh: make install into a temporary DESTDIR, then
 *     examples/hello.c built with pkg-config only.
 *
 * Each test has its own directory /tmp/bt-cluster-test-XXXXXX and its own
 * ports (picked free by the kernel); the fixture's fini stops whatever a
 * failed test left running (bt-cluster down, then SIGKILL from the pid files)
 * and removes the directory.
 *
 * The whole-cluster tests need bt-master: until it is built they are skipped
 * with a message saying so (TEMPORARY guard, see need_master()). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/bt.h"
#include "tests/unit/testutil.h"

#define FN static __attribute__((unused))
#define OUT_CAP (256 * 1024)

static char dir[PATH_MAX];          /* this test's cluster directory */
static char out_buf[OUT_CAP], err_buf[OUT_CAP];

/* ---- helpers ------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* BUILD/bin/<name>, next to this test's BUILD/tests. */
static void bin_path(const char *name, char *out, size_t cap)
{
    char self[PATH_MAX - 64]; /* room for "/../bin/NAME" in a PATH_MAX out */
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) abort();
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(out, cap, "%s/../bin/%s", self, name);
}

/* Runs argv with stdout/stderr captured into out_buf/err_buf; returns the
 * exit status (128+N for a signal, -1 if it ran past timeout_ms and was
 * killed). */
static int run_argv(char *const argv[], int timeout_ms)
{
    int po[2], pe[2];
    cr_assert_eq(pipe2(po, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(pe, O_CLOEXEC), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        close_range(3, ~0u, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    size_t lo = 0, le = 0;
    bool open_o = true, open_e = true;
    int64_t end = now_ms() + timeout_ms;
    bool killed = false;
    while (open_o || open_e) {
        int64_t left = end - now_ms();
        if (left <= 0 && !killed) {
            kill(pid, SIGKILL);
            killed = true;
        }
        struct pollfd pf[2] = {{open_o ? po[0] : -1, POLLIN, 0}, {open_e ? pe[0] : -1, POLLIN, 0}};
        if (poll(pf, 2, 100) <= 0) continue;
        if (pf[0].revents) {
            ssize_t r = read(po[0], out_buf + lo, lo < OUT_CAP - 1 ? OUT_CAP - 1 - lo : 0);
            if (r <= 0) open_o = false;
            else lo += (size_t)r;
        }
        if (pf[1].revents) {
            ssize_t r = read(pe[0], err_buf + le, le < OUT_CAP - 1 ? OUT_CAP - 1 - le : 0);
            if (r <= 0) open_e = false;
            else le += (size_t)r;
        }
    }
    out_buf[lo] = err_buf[le] = '\0';
    close(po[0]);
    close(pe[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (killed) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* bt-cluster ARGS... (NULL-terminated), bounded by 120 s. */
static int tool(const char *first, ...)
{
    static char bin[PATH_MAX];
    bin_path("bt-cluster", bin, sizeof bin);
    char *argv[64] = {bin, (char *)first};
    int n = 2;
    va_list ap;
    va_start(ap, first);
    const char *a;
    while (first && n < 63 && (a = va_arg(ap, const char *)) != NULL) argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    return run_argv(argv, 120000);
}

/* A TCP port that is free on 127.0.0.1 right now (with `next` more free
 * after it when next > 0). */
static uint16_t free_port(int next)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
        cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        close(fd);
        uint16_t port = ntohs(a.sin_port);
        bool ok = (int)port + next <= 65535;
        for (int i = 1; ok && i <= next; i++) {
            int f2 = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in b = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(port + i)),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            ok = bind(f2, (struct sockaddr *)&b, sizeof b) == 0;
            close(f2);
        }
        if (ok) return port;
    }
    cr_assert_fail("no free port");
    return 0;
}

/* The port flags of a cluster on fresh ports: --lock-port ... --gateway-port. */
typedef struct ports {
    char lock[8], master[8], server[8], gateway[8];
} ports;

static ports pick_ports(int servers)
{
    ports p;
    snprintf(p.lock, sizeof p.lock, "%u", (unsigned)free_port(0));
    snprintf(p.master, sizeof p.master, "%u", (unsigned)free_port(0));
    snprintf(p.server, sizeof p.server, "%u", (unsigned)free_port(servers - 1));
    snprintf(p.gateway, sizeof p.gateway, "%u", (unsigned)free_port(0));
    return p;
}

/* The pids of DIR/run/NAME.pid files (names in names[i]); returns the count. */
static int read_pids(pid_t *pids, char names[][32], int cap)
{
    char run[PATH_MAX + 8];
    snprintf(run, sizeof run, "%s/run", dir);
    DIR *d = opendir(run);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while (n < cap && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || len - 4 >= 32 || strcmp(e->d_name + len - 4, ".pid")) continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", run, e->d_name);
        FILE *f = fopen(path, "r");
        long pid = 0;
        if (!f) continue;
        if (fscanf(f, "%ld", &pid) != 1) pid = 0;
        fclose(f);
        if (pid <= 1) continue;
        pids[n] = (pid_t)pid;
        memcpy(names[n], e->d_name, len - 4);
        names[n][len - 4] = '\0';
        n++;
    }
    closedir(d);
    return n;
}

/* Whether pid is a running process (a zombie, waiting for a parent that
 * does not reap, counts as ended). */
static bool running(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

/* No process of the cluster reported a sanitizer error in its log (asan and
 * tsan builds; the daemons' stderr goes to DIR/logs/NAME.log). */
static void assert_clean_logs(void)
{
    static const char *marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                                  "WARNING: ThreadSanitizer"};
    char logs[PATH_MAX + 8];
    snprintf(logs, sizeof logs, "%s/logs", dir);
    DIR *d = opendir(logs);
    cr_assert_not_null(d, "no %s", logs);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", logs, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(out_buf, 1, OUT_CAP - 1, f);
        fclose(f);
        out_buf[n] = '\0';
        for (size_t i = 0; i < sizeof marks / sizeof *marks; i++) {
            const char *hit = strstr(out_buf, marks[i]);
            cr_assert_null(hit, "%s reports \"%s\":\n%.3000s", path, marks[i], hit);
        }
    }
    closedir(d);
}

/* ---- fixture ---------------------------------------------------------------------- */

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/bt-cluster-test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    pid_t pids[80];
    char names[80][32];
    if (read_pids(pids, names, 80) > 0) {
        char bin[PATH_MAX];
        bin_path("bt-cluster", bin, sizeof bin);
        char *argv[] = {bin, "down", "--dir", dir, "--timeout-s", "5", NULL};
        run_argv(argv, 60000);
        int n = read_pids(pids, names, 80);
        for (int i = 0; i < n; i++) kill(pids[i], SIGKILL);
    }
    test_rm_rf(dir);
}

TestSuite(cluster_tool, .init = setup, .fini = teardown, .timeout = 180);

/* TEMPORARY: the whole-cluster tests need bt-master, which is being
 * written; they skip until BUILD/bin/bt-master exists.  Remove this guard
 * once the master is in the tree. */
static void need_master(void)
{
    char master[PATH_MAX];
    bin_path("bt-master", master, sizeof master);
    if (access(master, X_OK) != 0)
        cr_skip_test("%s is not built yet: the whole-cluster test of bt-cluster needs the master", master);
}

/* ---- flags ----------------------------------------------------------------------- */

Test(cluster_tool, help_everywhere)
{
    cr_assert_eq(tool("--help", NULL), 0);
    cr_assert(strstr(out_buf, "SYNOPSIS") && strstr(out_buf, "bt-cluster up"), "%s", out_buf);
    cr_assert_str_empty(err_buf);
    const char *cmds[] = {"up", "run", "status", "down"};
    for (size_t i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "bt-cluster %s - ", cmds[i]);
        cr_assert_eq(tool(cmds[i], "--help", NULL), 0, "%s --help", cmds[i]);
        cr_assert(strstr(out_buf, name), "%s --help printed:\n%s", cmds[i], out_buf);
        cr_assert_eq(tool("help", cmds[i], NULL), 0);
        cr_assert(strstr(out_buf, name));
    }
    /* --help wins over everything else on the line, even a bad flag after it. */
    cr_assert_eq(tool("up", "--help", "--bogus", NULL), 0);
    cr_assert(strstr(out_buf, "--servers N"));
}

Test(cluster_tool, bad_flags_exit_2)
{
    cr_assert_eq(tool(NULL), 2);
    cr_assert(strstr(err_buf, "a command is required"), "%s", err_buf);

    cr_assert_eq(tool("frobnicate", NULL), 2);
    cr_assert(strstr(err_buf, "unknown command \"frobnicate\""), "%s", err_buf);
    cr_assert_eq(tool("--bogus", NULL), 2);
    cr_assert(strstr(err_buf, "unknown option \"--bogus\""), "%s", err_buf);
    cr_assert_eq(tool("help", "frobnicate", NULL), 2);

    cr_assert_eq(tool("up", "--dir", dir, "--bogus", "1", NULL), 2);
    cr_assert(strstr(err_buf, "bt-cluster up: unknown option \"--bogus\""), "%s", err_buf);
    cr_assert(strstr(err_buf, "bt-cluster up --help"), "%s", err_buf);
    cr_assert_eq(tool("status", "--dir", dir, "--servers", "2", NULL), 2, "status takes no --servers");
    cr_assert(strstr(err_buf, "unknown option \"--servers\""), "%s", err_buf);
    cr_assert_eq(tool("down", "--dir", dir, "extra", NULL), 2);
    cr_assert(strstr(err_buf, "unexpected argument \"extra\""), "%s", err_buf);

    cr_assert_eq(tool("up", NULL), 2);
    cr_assert(strstr(err_buf, "--dir is required"), "%s", err_buf);
    cr_assert_eq(tool("up", "--dir", NULL), 2);
    cr_assert(strstr(err_buf, "--dir needs a value"), "%s", err_buf);
    cr_assert_eq(tool("up", "--dir", dir, "--servers", "0", NULL), 2);
    cr_assert(strstr(err_buf, "--servers: \"0\" is not a number in [1, 64]"), "%s", err_buf);
    cr_assert_eq(tool("up", "--dir", dir, "--lock-port=70000", NULL), 2);
    cr_assert_eq(tool("up", "--dir", dir, "--durability", "fast", NULL), 2);
    cr_assert(strstr(err_buf, "not sync, group or none"), "%s", err_buf);
    cr_assert_eq(tool("up", "--dir", dir, "--lock-port", "7100", NULL), 2, "collides with the server ports");
    cr_assert_eq(tool("up", "--dir", dir, "--server-port", "65535", "--servers", "2", NULL), 2);
    cr_assert_eq(tool("down", "--dir", dir, "--timeout-s", "0", NULL), 2);

    /* Nothing was started or written by a refused command line. */
    char run[PATH_MAX + 8];
    snprintf(run, sizeof run, "%s/run", dir);
    cr_assert_neq(access(run, F_OK), 0);
}

/* ---- empty directories -------------------------------------------------------------- */

Test(cluster_tool, status_and_down_without_a_cluster)
{
    cr_assert_eq(tool("status", "--dir", dir, NULL), 1);
    cr_assert(strstr(err_buf, "no cluster in"), "%s", err_buf);
    cr_assert_eq(tool("down", "--dir", dir, NULL), 0);
    cr_assert(strstr(out_buf, "nothing to stop"), "%s", out_buf);

    char missing[PATH_MAX + 16];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    cr_assert_eq(tool("status", "--dir", missing, NULL), 1);
    cr_assert(strstr(err_buf, "does not exist"), "%s", err_buf);
    cr_assert_eq(tool("down", "--dir", missing, NULL), 0);
    cr_assert(strstr(out_buf, "nothing to stop"), "%s", out_buf);
    cr_assert_neq(access(missing, F_OK), 0, "down must not create the directory");

    /* A stale pid file (a process that is gone) is cleaned up, not obeyed. */
    char run[PATH_MAX + 8], pidf[PATH_MAX + 32];
    snprintf(run, sizeof run, "%s/run", dir);
    cr_assert_eq(mkdir(run, 0755), 0);
    snprintf(pidf, sizeof pidf, "%s/master.pid", run);
    FILE *f = fopen(pidf, "w");
    cr_assert_not_null(f);
    fprintf(f, "%ld\n", (long)getpid()); /* alive, but not bt-master */
    fclose(f);
    cr_assert_eq(tool("status", "--dir", dir, NULL), 1);
    cr_assert(strstr(out_buf, "master") && strstr(out_buf, "dead"), "%s", out_buf);
    cr_assert_eq(tool("down", "--dir", dir, NULL), 0);
    cr_assert(strstr(out_buf, "already stopped"), "%s", out_buf);
    cr_assert_neq(access(pidf, F_OK), 0, "the stale pid file stays");
    cr_assert_eq(kill(getpid(), 0), 0);
}

/* ---- a port in use ------------------------------------------------------------------ */

Test(cluster_tool, up_refuses_a_busy_port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 4), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char busy[8];
    snprintf(busy, sizeof busy, "%u", (unsigned)ntohs(a.sin_port));
    ports p = pick_ports(1);

    int rc = tool("up", "--dir", dir, "--servers", "1", "--lock-port", busy, "--master-port", p.master, "--server-port", p.server,
                  "--gateway-port", p.gateway, "--wait-s", "5", NULL);
    cr_assert_eq(rc, 1, "up on a busy port: exit %d\n%s%s", rc, out_buf, err_buf);
    char want[128];
    snprintf(want, sizeof want, "port %s for lockd is already in use by pid %ld", busy, (long)getpid());
    cr_assert(strstr(err_buf, want), "expected \"%s\" in:\n%s", want, err_buf);
    cr_assert(strstr(err_buf, "--lock-port"), "%s", err_buf);

    /* Nothing started. */
    pid_t pids[8];
    char names[8][32];
    cr_assert_eq(read_pids(pids, names, 8), 0);
    close(fd);
}

/* ---- a whole cluster ------------------------------------------------------------------ */

/* Creates table "t" (family "cf"), writes a row and reads it back. */
static void client_round_trip(const char *lock_url)
{
    bt_client *c = NULL;
    int rc = bt_connect(lock_url, NULL, &c);
    cr_assert_eq(rc, BT_OK, "bt_connect %s: %s", lock_url, bt_errmsg());
    bt_schema *s = bt_schema_new();
    cr_assert_eq(bt_schema_add_family(s, "cf", 1, 0), BT_OK);
    rc = bt_create_table(c, "t", s, NULL, 0);
    bt_schema_free(s);
    cr_assert_eq(rc, BT_OK, "create table: %s (%s)", bt_errname(rc), bt_errmsg());

    bt_table *t = NULL;
    cr_assert_eq(bt_table_open(c, "t", &t), BT_OK, "%s", bt_errmsg());
    bt_mutation *m = bt_mutation_new("row1", 4);
    cr_assert_eq(bt_mutation_set(m, "cf", "q", 1, 1000, "v1", 2), BT_OK);
    rc = bt_apply(t, m);
    bt_mutation_free(m);
    cr_assert_eq(rc, BT_OK, "apply: %s (%s)", bt_errname(rc), bt_errmsg());
    bt_row *r = NULL;
    rc = bt_read_row(t, "row1", 4, NULL, &r);
    cr_assert_eq(rc, BT_OK, "read: %s (%s)", bt_errname(rc), bt_errmsg());
    cr_assert_eq(r->n_cells, 1);
    cr_assert_eq(r->cells[0].value_len, 2);
    cr_assert_eq(memcmp(r->cells[0].value, "v1", 2), 0);
    bt_row_free(r);
    bt_table_close(t);

    char **names = NULL;
    size_t n = 0;
    cr_assert_eq(bt_list_tables(c, &names, &n), BT_OK, "%s", bt_errmsg());
    bool found = false;
    for (size_t i = 0; i < n; i++) found |= !strcmp(names[i], "t");
    bt_free_names(names, n);
    cr_assert(found, "table t is not listed");
    bt_close(c);
}

Test(cluster_tool, up_status_client_down)
{
    need_master();
    ports p = pick_ports(2);
    int rc = tool("up", "--dir", dir, "--servers", "2", "--lock-port", p.lock, "--master-port", p.master,
                  "--server-port", p.server, "--gateway-port", p.gateway, "--lease-ms", "2000", "--wait-s", "60",
                  NULL);
    cr_assert_eq(rc, 0, "up: exit %d\n--- stdout\n%s--- stderr\n%s", rc, out_buf, err_buf);
    char lock_url[64], want[96];
    snprintf(lock_url, sizeof lock_url, "bt://127.0.0.1:%s", p.lock);
    snprintf(want, sizeof want, "export BT_LOCK=%s", lock_url);
    cr_assert(strstr(out_buf, want), "up printed:\n%s", out_buf);
    cr_assert(strstr(out_buf, "ts1") && strstr(out_buf, "/logs/master.log"), "%s", out_buf);

    pid_t pids[80];
    char names[80][32];
    int n = read_pids(pids, names, 80);
    cr_assert_geq(n, 4, "lockd, master, ts0, ts1 (+ gateway): %d pid files", n);
    for (int i = 0; i < n; i++) cr_assert(running(pids[i]), "%s (pid %ld) is not running", names[i], (long)pids[i]);

    rc = tool("status", "--dir", dir, NULL);
    cr_assert_eq(rc, 0, "status: exit %d\n%s%s", rc, out_buf, err_buf);
    cr_assert_eq(count(out_buf, " alive"), n, "%s", out_buf);
    cr_assert(strstr(out_buf, "2 live tablet servers"), "%s", out_buf);

    /* The same directory cannot be started twice. */
    rc = tool("up", "--dir", dir, "--servers", "2", "--lock-port", p.lock, "--master-port", p.master,
              "--server-port", p.server, "--gateway-port", p.gateway, NULL);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(err_buf, "already has running processes"), "%s", err_buf);

    client_round_trip(lock_url);

    rc = tool("down", "--dir", dir, NULL);
    cr_assert_eq(rc, 0, "down: exit %d\n%s%s", rc, out_buf, err_buf);
    cr_assert_eq(count(out_buf, "stopped "), n, "%s", out_buf);
    for (int i = 0; i < n; i++) cr_assert_not(running(pids[i]), "%s (pid %ld) still runs", names[i], (long)pids[i]);
    cr_assert_eq(read_pids(pids, names, 80), 0, "pid files left behind");
    char data[PATH_MAX + 8];
    snprintf(data, sizeof data, "%s/data", dir);
    cr_assert_eq(access(data, F_OK), 0, "down keeps the data");

    cr_assert_eq(tool("status", "--dir", dir, NULL), 1);
    cr_assert_eq(tool("down", "--dir", dir, NULL), 0);
    cr_assert(strstr(out_buf, "nothing to stop"), "%s", out_buf);
    assert_clean_logs();
}

/* Whether 127.0.0.1:port can be bound (as the daemons bind: SO_REUSEADDR). */
static bool port_bindable(const char *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

Test(cluster_tool, up_reports_a_dead_process_and_stops_the_rest)
{
    need_master();
    /* A file where the tablet servers' commit-log directories go: ts0 cannot start. */
    char data[PATH_MAX + 8], servers[PATH_MAX + 16];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(servers, sizeof servers, "%s/servers", data);
    cr_assert_eq(mkdir(data, 0755), 0);
    FILE *f = fopen(servers, "w");
    cr_assert_not_null(f);
    fclose(f);

    ports p = pick_ports(1);
    int rc = tool("up", "--dir", dir, "--servers", "1", "--lock-port", p.lock, "--master-port", p.master,
                  "--server-port", p.server, "--gateway-port", p.gateway, "--wait-s", "30", NULL);
    cr_assert_eq(rc, 1, "up with a broken data dir: exit %d\n%s%s", rc, out_buf, err_buf);
    cr_assert(strstr(err_buf, "bt-cluster: ts0 (pid ") && strstr(err_buf, "exited with status 1"), "%s", err_buf);
    cr_assert(strstr(err_buf, "last lines of ") && strstr(err_buf, "/logs/ts0.log"), "%s", err_buf);
    cr_assert(strstr(err_buf, "Not a directory"), "the log tail shows the server's reason:\n%s", err_buf);
    cr_assert(strstr(err_buf, "stopping what was started"), "%s", err_buf);

    pid_t pids[8];
    char names[8][32];
    cr_assert_eq(read_pids(pids, names, 8), 0, "pid files left behind");
    cr_assert(port_bindable(p.lock), "bt-lockd still holds port %s", p.lock);
}

Test(cluster_tool, run_stops_on_sigint)
{
    need_master();
    ports p = pick_ports(1);
    char bin[PATH_MAX];
    bin_path("bt-cluster", bin, sizeof bin);
    /* one server: only its port was checked free (the default 3 would also
     * take the two ports above it, which something else may hold) */
    char *argv[] = {bin, "run", "--dir", dir, "--servers", "1", "--lock-port", p.lock, "--master-port", p.master,
                    "--server-port", p.server, "--gateway-port", p.gateway, "--wait-s", "60", NULL};
    int po[2];
    cr_assert_eq(pipe2(po, O_CLOEXEC), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(po[1], 2);
        close_range(3, ~0u, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    /* Wait for "Running in the foreground". */
    size_t len = 0;
    int64_t end = now_ms() + 90000;
    while (!strstr(out_buf, "Running in the foreground") && now_ms() < end && len < OUT_CAP - 1) {
        struct pollfd pf = {po[0], POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0) continue;
        ssize_t r = read(po[0], out_buf + len, OUT_CAP - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
        out_buf[len] = '\0';
    }
    if (!strstr(out_buf, "Running in the foreground")) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        cr_assert_fail("run did not come up:\n%s", out_buf);
    }
    pid_t pids[80];
    char names[80][32];
    int n = read_pids(pids, names, 80);
    cr_assert_geq(n, 3);

    kill(pid, SIGINT);
    end = now_ms() + 90000;
    int st = 0;
    pid_t r = 0;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && now_ms() < end) {
        char buf[4096];
        struct pollfd pf = {po[0], POLLIN, 0};
        if (poll(&pf, 1, 100) > 0 && read(po[0], buf, sizeof buf) <= 0) usleep(50000);
    }
    close(po[0]);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        cr_assert_fail("run did not stop after SIGINT");
    }
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run ended with wait status %d", st);
    for (int i = 0; i < n; i++) cr_assert_not(running(pids[i]), "%s (pid %ld) still runs", names[i], (long)pids[i]);
    cr_assert_eq(read_pids(pids, names, 80), 0, "pid files left behind");
    assert_clean_logs();
}

/* ---- make install -------------------------------------------------------------------- */

Test(cluster_tool, install_and_build_hello_with_pkg_config)
{
    /* The source tree: BUILD/tests/.. /.. when BUILD sits in it, else the
     * working directory (make test runs from the top). */
    char self[PATH_MAX], build[PATH_MAX], root[PATH_MAX], script[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert(n > 0);
    self[n] = '\0';
    *strrchr(self, '/') = '\0';            /* BUILD/tests */
    snprintf(build, sizeof build, "%s", self);
    *strrchr(build, '/') = '\0';           /* BUILD */
    snprintf(root, sizeof root, "%s", build);
    *strrchr(root, '/') = '\0';            /* BUILD's parent */
    snprintf(script, sizeof script, "%s/scripts/check-install.sh", root);
    if (access(script, X_OK) != 0) {
        cr_assert_not_null(getcwd(root, sizeof root));
        snprintf(script, sizeof script, "%s/scripts/check-install.sh", root);
    }
    cr_assert_eq(access(script, X_OK), 0, "no scripts/check-install.sh next to %s or in the working directory", build);
    char *argv[] = {"/bin/sh", script, build, NULL};
    int64_t t0 = now_ms();
    int rc = run_argv(argv, 110000);
    cr_assert_eq(rc, 0, "check-install.sh: exit %d\n--- stdout\n%s--- stderr\n%s", rc, out_buf, err_buf);
    cr_assert(strstr(out_buf, "check-install: ok"), "%s", out_buf);
    (void)t0;
}

/* tests/unit/etcd_fixture.h: a real etcd (/usr/bin/etcd) for lock service
 * tests.  Include once per test binary.
 *
 * Each test process (Criterion forks one per test) starts its own etcd on
 * first use of lock_suite_url() (or lock_suite_init(), the lock_suite.h
 * fixture; processes forked by a test reuse it), so tests are isolated and may run in
 * parallel: free loopback ports (bind port 0, read it back, close), a data
 * dir from mkdtemp, quiet logging into <dir>/etcd.log.  It is stopped and its
 * directory removed by etcd_fx_stop(), which runs from atexit() and may also
 * be used as a Criterion .fini; if the test process dies without running
 * either, PR_SET_PDEATHSIG kills etcd with it (only the directory is left).
 *
 * lock_suite_restart() stops etcd (SIGTERM) and starts it again on the same
 * ports and data dir, as a server restart looks to clients (also after the
 * test stopped it with etcd_fx_kill()).
 * etcd_fx_pause()/etcd_fx_resume() freeze it (SIGSTOP/SIGCONT) to make
 * keep-alives fail without closing connections.
 */
#ifndef BT_TESTS_ETCD_FIXTURE_H
#define BT_TESTS_ETCD_FIXTURE_H

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

void lock_suite_init(void);
void lock_suite_fini(void);
const char *lock_suite_url(void);
void lock_suite_restart(void);

static struct {
    pid_t pid;        /* running etcd, 0 if none */
    pid_t owner;      /* process that started it (the only one that stops it) */
    int cport, pport; /* client and peer ports */
    char dir[64];     /* temp dir: data/ and etcd.log */
    char url[64];     /* "etcd://127.0.0.1:<cport>" */
    bool atexit_set;
} etcd_fx;

static int etcd_fx_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (!bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &len))
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static size_t etcd_fx_sink(char *d, size_t sz, size_t nm, void *u)
{
    size_t n = sz * nm, *have = u;
    if (n >= 4 && memmem(d, n, "true", 4)) *have = 1;
    return n;
}

/* True once GET /health answers {"health":"true"}. */
static bool etcd_fx_healthy(int port)
{
    CURL *h = curl_easy_init();
    if (!h) return false;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", port);
    size_t ok = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, etcd_fx_sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &ok);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 500L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    return cc == CURLE_OK && ok;
}

static void etcd_fx_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

/* Starts etcd on the fixture's ports; true when healthy within 10 s. */
static bool etcd_fx_spawn(void)
{
    char data[96], log[96], curls[48], purls[48], cluster[80];
    snprintf(data, sizeof data, "%s/data", etcd_fx.dir);
    snprintf(log, sizeof log, "%s/etcd.log", etcd_fx.dir);
    snprintf(curls, sizeof curls, "http://127.0.0.1:%d", etcd_fx.cport);
    snprintf(purls, sizeof purls, "http://127.0.0.1:%d", etcd_fx.pport);
    snprintf(cluster, sizeof cluster, "default=%s", purls);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        setpgid(0, 0); /* signals aimed at the test's group do not reach etcd */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        execl("/usr/bin/etcd", "etcd", "--name", "default", "--data-dir", data,
              "--listen-client-urls", curls, "--advertise-client-urls", curls,
              "--listen-peer-urls", purls, "--initial-advertise-peer-urls", purls,
              "--initial-cluster", cluster, "--log-level", "error", "--logger", "zap",
              /* a 500 ms election timeout makes etcd's minimum lease TTL 1 s
               * (1.5 x election timeout, rounded up) so 1 s test leases hold */
              "--heartbeat-interval", "50", "--election-timeout", "500",
              (char *)NULL);
        _exit(127);
    }
    etcd_fx.pid = pid;
    for (int i = 0; i < 200; i++) {
        if (etcd_fx_healthy(etcd_fx.cport)) return true;
        if (waitpid(pid, NULL, WNOHANG) == pid) { etcd_fx.pid = 0; return false; }
        etcd_fx_sleep_ms(50);
    }
    return false;
}

static void etcd_fx_kill(int sig)
{
    if (etcd_fx.pid <= 0) return;
    kill(etcd_fx.pid, SIGCONT);
    kill(etcd_fx.pid, sig);
    for (int i = 0; i < 100; i++) {
        if (waitpid(etcd_fx.pid, NULL, WNOHANG) == etcd_fx.pid) { etcd_fx.pid = 0; return; }
        etcd_fx_sleep_ms(50);
    }
    kill(etcd_fx.pid, SIGKILL);
    waitpid(etcd_fx.pid, NULL, 0);
    etcd_fx.pid = 0;
}

/* Stops etcd and removes its directory (only in the process that started it). */
static void etcd_fx_stop(void)
{
    if (etcd_fx.owner != getpid()) return;
    etcd_fx_kill(SIGKILL);
    if (etcd_fx.dir[0]) test_rm_rf(etcd_fx.dir);
    etcd_fx.dir[0] = 0;
    etcd_fx.owner = 0;
}

const char *lock_suite_url(void)
{
    /* Started already (possibly by the parent of a forked helper, or stopped
     * by the test meanwhile): same URL. */
    if (etcd_fx.dir[0]) return etcd_fx.url;
    memset(&etcd_fx, 0, sizeof etcd_fx);
    for (int attempt = 0; attempt < 5; attempt++) {
        snprintf(etcd_fx.dir, sizeof etcd_fx.dir, "/tmp/bt-test-etcd-XXXXXX");
        if (!mkdtemp(etcd_fx.dir)) { perror("mkdtemp"); abort(); }
        etcd_fx.owner = getpid();
        if (!etcd_fx.atexit_set) { atexit(etcd_fx_stop); etcd_fx.atexit_set = true; }
        etcd_fx.cport = etcd_fx_free_port();
        etcd_fx.pport = etcd_fx_free_port();
        if (etcd_fx.cport > 0 && etcd_fx.pport > 0 && etcd_fx.cport != etcd_fx.pport && etcd_fx_spawn()) {
            snprintf(etcd_fx.url, sizeof etcd_fx.url, "etcd://127.0.0.1:%d", etcd_fx.cport);
            return etcd_fx.url;
        }
        etcd_fx_stop(); /* port taken meanwhile, or a slow start: fresh ports */
    }
    fprintf(stderr, "etcd_fixture: cannot start /usr/bin/etcd\n");
    abort();
}

void lock_suite_restart(void)
{
    lock_suite_url();
    etcd_fx_kill(SIGTERM);
    for (int attempt = 0; attempt < 20 && !etcd_fx_spawn(); attempt++) etcd_fx_sleep_ms(100);
    if (!etcd_fx.pid) {
        fprintf(stderr, "etcd_fixture: cannot restart etcd\n");
        abort();
    }
}

/* The lock_suite.h fixture: a fresh etcd per test, gone afterwards. */
void lock_suite_init(void) { lock_suite_url(); }
void lock_suite_fini(void) { etcd_fx_stop(); }

static void etcd_fx_pause(void) { if (etcd_fx.pid) kill(etcd_fx.pid, SIGSTOP); }
static void etcd_fx_resume(void) { if (etcd_fx.pid) kill(etcd_fx.pid, SIGCONT); }

#endif

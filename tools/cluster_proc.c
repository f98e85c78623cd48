/* tools/cluster_proc.c: starting, watching and stopping the daemons of a
 * local cluster, their pid files and logs, and port checks.  See
 * tools/cluster_proc.h for the directory layout. */
#include "tools/cluster_proc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- time ------------------------------------------------------------------- */

int64_t cl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cl_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* ---- names and paths ------------------------------------------------------- */

/* Tablet server number of "ts<i>", or -1. */
static int ts_number(const char *name)
{
    if (strncmp(name, "ts", 2) || !isdigit((unsigned char)name[2])) return -1;
    char *end = NULL;
    long v = strtol(name + 2, &end, 10);
    return *end || v > 100000 ? -1 : (int)v;
}

int cl_rank(const char *name)
{
    if (!strcmp(name, "lockd")) return 0;
    if (!strcmp(name, "master")) return 1;
    if (ts_number(name) >= 0) return 2;
    if (!strcmp(name, "gateway")) return 3;
    return 4;
}

int cl_proc_cmp(const void *a, const void *b)
{
    const cl_proc *x = a, *y = b;
    int rx = cl_rank(x->name), ry = cl_rank(y->name);
    if (rx != ry) return rx - ry;
    if (rx == 2) return ts_number(x->name) - ts_number(y->name);
    return strcmp(x->name, y->name);
}

const char *cl_binary_for(const char *name)
{
    switch (cl_rank(name)) {
    case 0: return "bt-lockd";
    case 1: return "bt-master";
    case 2: return "bt-tabletserver";
    case 3: return "bt-gateway";
    default: return NULL;
    }
}

static bool executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int cl_find_binary(const char *base, bool next_only, char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            if ((size_t)snprintf(out, cap, "%s/%s", self, base) < cap && executable(out)) return 0;
        }
    }
    if (next_only) return -1;
    const char *path = getenv("PATH");
    if (!path) return -1;
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len > 0 && path[0] == '/' && (size_t)snprintf(out, cap, "%.*s/%s", (int)len, path, base) < cap &&
            executable(out))
            return 0;
        path += len;
        if (*path == ':') path++;
    }
    return -1;
}

int cl_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf) {
        fprintf(stderr, "bt-cluster: path too long: %s\n", path);
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "bt-cluster: cannot create %s: %s\n", buf, strerror(errno));
            return -1;
        }
        *p = c;
        if (!c) break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "bt-cluster: %s is not a directory\n", path);
        return -1;
    }
    return 0;
}

void cl_log_path(const char *dir, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/logs/%s.log", dir, name);
}

static void pid_path(const char *dir, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/run/%s.pid", dir, name);
}

/* ---- argv ------------------------------------------------------------------- */

void cl_arg(cl_proc *p, const char *fmt, ...)
{
    if (p->argc >= CL_MAX_ARGS - 1) abort(); /* a programming error: CL_MAX_ARGS is ample */
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) abort();
    va_end(ap);
    p->argv[p->argc++] = s;
    p->argv[p->argc] = NULL;
}

void cl_proc_free(cl_proc *p)
{
    for (int i = 0; i < p->argc; i++) free(p->argv[i]);
    p->argc = 0;
    p->argv[0] = NULL;
}

/* ---- pid files -------------------------------------------------------------- */

static int write_file_atomic(const char *path, const char *text)
{
    char tmp[CL_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "bt-cluster: cannot write %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    fputs(text, f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "bt-cluster: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void cl_remove_pidfile(const char *dir, const char *name)
{
    char path[CL_PATH_MAX];
    pid_path(dir, name, path, sizeof path);
    unlink(path);
}

static void info_path(const char *dir, char *out, size_t cap)
{
    snprintf(out, cap, "%s/run/cluster.info", dir);
}

int cl_write_info(const char *dir, const char *lock_url, const cl_proc *procs, size_t n)
{
    char text[8192], path[CL_PATH_MAX];
    size_t len = (size_t)snprintf(text, sizeof text, "lock %s\n", lock_url);
    for (size_t i = 0; i < n && len < sizeof text; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "proc %s %s\n", procs[i].name, procs[i].addr);
    info_path(dir, path, sizeof path);
    return write_file_atomic(path, text);
}

/* Calls fn for each "key rest" line of cluster.info; -1 if it is missing. */
static int read_info(const char *dir, void (*fn)(void *, const char *, const char *), void *arg)
{
    char path[CL_PATH_MAX], line[512];
    info_path(dir, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        *sp = '\0';
        fn(arg, line, sp + 1);
    }
    fclose(f);
    return 0;
}

typedef struct { char *out; size_t cap; bool found; } url_arg;

static void take_lock_url(void *arg, const char *key, const char *rest)
{
    url_arg *u = arg;
    if (!strcmp(key, "lock")) {
        snprintf(u->out, u->cap, "%s", rest);
        u->found = true;
    }
}

int cl_read_lock_url(const char *dir, char *out, size_t cap)
{
    url_arg u = {out, cap, false};
    return read_info(dir, take_lock_url, &u) == 0 && u.found ? 0 : -1;
}

typedef struct { cl_proc *procs; size_t n; } addr_arg;

static void take_addr(void *arg, const char *key, const char *rest)
{
    addr_arg *a = arg;
    char name[CL_NAME_MAX];
    const char *sp = strchr(rest, ' ');
    if (strcmp(key, "proc") || !sp || (size_t)(sp - rest) >= sizeof name) return;
    memcpy(name, rest, (size_t)(sp - rest));
    name[sp - rest] = '\0';
    for (size_t i = 0; i < a->n; i++)
        if (!strcmp(a->procs[i].name, name)) snprintf(a->procs[i].addr, sizeof a->procs[i].addr, "%s", sp + 1);
}

void cl_remove_info(const char *dir)
{
    char path[CL_PATH_MAX];
    info_path(dir, path, sizeof path);
    unlink(path);
}

int cl_load_pidfiles(const char *dir, cl_proc *procs, size_t cap)
{
    char run[CL_PATH_MAX];
    snprintf(run, sizeof run, "%s/run", dir);
    DIR *d = opendir(run);
    if (!d) return 0;
    size_t n = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".pid") || len - 4 >= CL_NAME_MAX) continue;
        if (n == cap) {
            fprintf(stderr, "bt-cluster: more than %zu pid files in %s\n", cap, run);
            rc = -1;
            break;
        }
        cl_proc *p = &procs[n];
        memset(p, 0, sizeof *p);
        memcpy(p->name, e->d_name, len - 4);
        p->name[len - 4] = '\0';
        char path[CL_PATH_MAX], buf[64] = "";
        pid_path(dir, p->name, path, sizeof path);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* removed meanwhile */
        bool got = fgets(buf, sizeof buf, f) != NULL;
        fclose(f);
        char *end = NULL;
        long pid = got ? strtol(buf, &end, 10) : 0;
        if (!got || pid <= 1 || (*end != '\n' && *end != '\0')) {
            fprintf(stderr, "bt-cluster: %s does not hold a process id\n", path);
            rc = -1;
            break;
        }
        p->pid = (pid_t)pid;
        n++;
    }
    closedir(d);
    if (rc) return -1;
    addr_arg a = {procs, n};
    read_info(dir, take_addr, &a);
    qsort(procs, n, sizeof *procs, cl_proc_cmp);
    return (int)n;
}

void cl_mark_down(const char *dir, bool on)
{
    char path[CL_PATH_MAX];
    snprintf(path, sizeof path, "%s/run/down", dir);
    if (on) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) close(fd);
    } else {
        unlink(path);
    }
}

bool cl_is_down(const char *dir)
{
    char path[CL_PATH_MAX];
    snprintf(path, sizeof path, "%s/run/down", dir);
    return access(path, F_OK) == 0;
}

/* ---- starting ----------------------------------------------------------------- */

int cl_spawn(cl_proc *p, const char *dir)
{
    char log[CL_PATH_MAX], pidf[CL_PATH_MAX];
    cl_log_path(dir, p->name, log, sizeof log);
    int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (lfd < 0) {
        fprintf(stderr, "bt-cluster: cannot open %s: %s\n", log, strerror(errno));
        return -1;
    }
    int nfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nfd < 0) {
        fprintf(stderr, "bt-cluster: cannot open /dev/null: %s\n", strerror(errno));
        close(lfd);
        return -1;
    }
    /* A header per start, so a log appended over several runs reads clearly. */
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
    dprintf(lfd, "==== %s bt-cluster starts %s:", when, p->name);
    for (int i = 0; i < p->argc; i++) dprintf(lfd, " %s", p->argv[i]);
    dprintf(lfd, "\n");

    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "bt-cluster: fork: %s\n", strerror(errno));
        close(lfd);
        close(nfd);
        return -1;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls from here to exec. */
        setsid();
        dup2(nfd, 0);
        dup2(lfd, 1);
        dup2(lfd, 2);
        close_range(3, ~0u, 0);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT};
        for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(p->argv[0], p->argv);
        static const char msg[] = "bt-cluster: exec failed\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    close(lfd);
    close(nfd);
    p->pid = pid;
    p->child = true;
    p->ended = false;
    p->status = 0;
    char text[32];
    snprintf(text, sizeof text, "%ld\n", (long)pid);
    pid_path(dir, p->name, pidf, sizeof pidf);
    return write_file_atomic(pidf, text);
}

/* ---- liveness ------------------------------------------------------------------ */

/* The state letter of /proc/PID/stat ('R', 'S', 'Z', ...), or 0. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *rp = strrchr(buf, ')'); /* the command name may hold spaces and parens */
    return rp && rp[1] == ' ' ? rp[2] : 0;
}

/* Whether /proc/PID/cmdline's argv[0] ends in "/want" (or is "want").
 * Unreadable: assume it is (do not declare a live process dead). */
static bool runs_binary(pid_t pid, const char *want)
{
    char path[64], buf[PATH_MAX];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return true;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return n == 0 ? false : true; /* empty cmdline: a zombie or kernel thread */
    buf[n] = '\0';
    const char *slash = strrchr(buf, '/');
    return !strcmp(slash ? slash + 1 : buf, want);
}

bool cl_alive(cl_proc *p)
{
    if (p->pid <= 0 || p->ended) return false;
    if (p->child) {
        int st = 0;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->ended = true;
            p->status = st;
            return false;
        }
        if (r == 0) return true;
        p->child = false; /* ECHILD: not ours (any more) */
    }
    if (kill(p->pid, 0) != 0 && errno == ESRCH) {
        p->ended = true;
        return false;
    }
    char st = proc_state(p->pid);
    const char *want = cl_binary_for(p->name);
    if (st == 'Z' || st == 'X' || st == 0 || (want && !runs_binary(p->pid, want))) {
        p->ended = true;
        return false;
    }
    return true;
}

void cl_describe_end(const cl_proc *p, char *out, size_t cap)
{
    if (!p->child || !p->ended)
        snprintf(out, cap, "is not running");
    else if (WIFEXITED(p->status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(p->status));
    else if (WIFSIGNALED(p->status))
        snprintf(out, cap, "was killed by signal %d (%s)", WTERMSIG(p->status), strsignal(WTERMSIG(p->status)));
    else
        snprintf(out, cap, "ended (wait status %d)", p->status);
}

/* ---- stopping ------------------------------------------------------------------ */

/* Waits until every process of procs[0..n) is dead or deadline_ms passes;
 * returns how many are still alive. */
static size_t wait_group(cl_proc **procs, size_t n, int64_t deadline_ms)
{
    for (;;) {
        size_t alive = 0;
        for (size_t i = 0; i < n; i++) alive += cl_alive(procs[i]);
        if (!alive || cl_now_ms() >= deadline_ms) return alive;
        cl_sleep_ms(20);
    }
}

int cl_stop_group(cl_proc **procs, size_t n, int timeout_s, bool verbose)
{
    bool was_alive[CL_MAX_PROCS] = {false};
    size_t any = 0;
    for (size_t i = 0; i < n && i < CL_MAX_PROCS; i++) {
        if (!cl_alive(procs[i])) continue;
        was_alive[i] = true;
        any++;
        if (kill(procs[i]->pid, SIGTERM) != 0 && errno != ESRCH)
            fprintf(stderr, "bt-cluster: cannot signal %s (pid %ld): %s\n", procs[i]->name, (long)procs[i]->pid,
                    strerror(errno));
    }
    if (!any) return 0;
    int64_t t0 = cl_now_ms();
    wait_group(procs, n, t0 + (int64_t)timeout_s * 1000);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cl_alive(procs[i])) continue;
        fprintf(stderr, "bt-cluster: %s (pid %ld) did not stop within %d s after SIGTERM; sending SIGKILL\n",
                procs[i]->name, (long)procs[i]->pid, timeout_s);
        kill(procs[i]->pid, SIGKILL);
    }
    if (wait_group(procs, n, cl_now_ms() + 5000)) rc = -1;
    for (size_t i = 0; i < n; i++) {
        if (!was_alive[i]) continue;
        if (cl_alive(procs[i])) {
            fprintf(stderr, "bt-cluster: %s (pid %ld) is still running\n", procs[i]->name, (long)procs[i]->pid);
        } else if (verbose) {
            char how[96] = "";
            if (procs[i]->child && WIFSIGNALED(procs[i]->status) && WTERMSIG(procs[i]->status) != SIGTERM)
                cl_describe_end(procs[i], how, sizeof how);
            else if (procs[i]->child && WIFEXITED(procs[i]->status) && WEXITSTATUS(procs[i]->status) != 0)
                cl_describe_end(procs[i], how, sizeof how);
            printf("stopped %-8s (pid %ld)%s%s\n", procs[i]->name, (long)procs[i]->pid, *how ? ": " : "", how);
        }
    }
    fflush(stdout);
    return rc;
}

int cl_stop_all(cl_proc *procs, size_t n, const char *dir, int timeout_s, bool verbose)
{
    /* Highest rank first: anything unknown, gateway, servers, master, lockd
     * (servers need lockd to unregister cleanly). */
    int rc = 0;
    for (int rank = 4; rank >= 0; rank--) {
        cl_proc *group[CL_MAX_PROCS];
        size_t k = 0;
        for (size_t i = 0; i < n && k < CL_MAX_PROCS; i++)
            if (cl_rank(procs[i].name) == rank) group[k++] = &procs[i];
        if (k && cl_stop_group(group, k, timeout_s, verbose)) rc = -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!cl_alive(&procs[i])) cl_remove_pidfile(dir, procs[i].name);
    return rc;
}

/* ---- logs ---------------------------------------------------------------------- */

void cl_log_tail(const char *path, int lines, FILE *f)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(f, "    (no log: %s)\n", strerror(errno));
        return;
    }
    struct stat st;
    static char buf[65536];
    off_t from = fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof buf - 1 ? st.st_size - (off_t)(sizeof buf - 1) : 0;
    ssize_t n = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (n <= 0) {
        fprintf(f, "    (the log is empty)\n");
        return;
    }
    buf[n] = '\0';
    /* Only this run's lines: from the last header cl_spawn wrote. */
    size_t base = 0;
    for (char *h = buf; (h = strstr(h, "==== ")) != NULL; h++)
        if (h == buf || h[-1] == '\n') base = (size_t)(h - buf);
    size_t end = (size_t)n;
    if (end > base && buf[end - 1] == '\n') buf[--end] = '\0';
    size_t start = end;
    int seen = 0;
    while (start > base && seen < lines) {
        start--;
        if (buf[start] == '\n' && ++seen == lines) {
            start++;
            break;
        }
    }
    fprintf(f, "    last lines of %s:\n", path);
    for (char *line = buf + start; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        fprintf(f, "    | %s\n", line);
        line = nl ? nl + 1 : NULL;
    }
}

/* ---- ports ---------------------------------------------------------------------- */

/* Inode of a socket bound to local `port` in /proc/net/tcp or tcp6
 * (a listening one preferred), or 0. */
static unsigned long socket_inode(uint16_t port)
{
    static const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    unsigned long found = 0;
    for (size_t f = 0; f < 2; f++) {
        FILE *fp = fopen(files[f], "r");
        if (!fp) continue;
        char line[512];
        while (fgets(line, sizeof line, fp)) {
            char local[128];
            unsigned st = 0;
            unsigned long inode = 0;
            /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
            if (sscanf(line, " %*d: %127s %*s %x %*s %*s %*s %*d %*d %lu", local, &st, &inode) != 3) continue;
            char *colon = strrchr(local, ':');
            if (!colon || strtoul(colon + 1, NULL, 16) != port || inode == 0) continue;
            if (st == 0x0A) { /* LISTEN */
                fclose(fp);
                return inode;
            }
            if (!found) found = inode;
        }
        fclose(fp);
    }
    return found;
}

/* The pid holding socket `inode` (scanning /proc/PID/fd), or 0. */
static pid_t socket_owner(unsigned long inode)
{
    char want[64];
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    DIR *proc = opendir("/proc");
    if (!proc) return 0;
    pid_t owner = 0;
    struct dirent *e;
    while (!owner && (e = readdir(proc)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        char fdir[300];
        snprintf(fdir, sizeof fdir, "/proc/%s/fd", e->d_name);
        DIR *fds = opendir(fdir);
        if (!fds) continue;
        struct dirent *fe;
        while ((fe = readdir(fds)) != NULL) {
            char link[600], target[128];
            snprintf(link, sizeof link, "%s/%s", fdir, fe->d_name);
            ssize_t n = readlink(link, target, sizeof target - 1);
            if (n <= 0) continue;
            target[n] = '\0';
            if (!strcmp(target, want)) {
                owner = (pid_t)atol(e->d_name);
                break;
            }
        }
        closedir(fds);
    }
    closedir(proc);
    return owner;
}

int cl_port_free(uint16_t port, char *why, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, cap, "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    /* The daemons set SO_REUSEADDR too, so a TIME_WAIT left by the last run
     * does not count as busy. */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    int err = errno;
    close(fd);
    if (rc == 0) return 0;
    if (err != EADDRINUSE) {
        snprintf(why, cap, "cannot be bound: %s", strerror(err));
        return -1;
    }
    unsigned long inode = socket_inode(port);
    pid_t owner = inode ? socket_owner(inode) : 0;
    if (!owner) {
        snprintf(why, cap, "is already in use (by a process this user cannot see)");
        return -1;
    }
    char comm[64] = "?", path[64];
    snprintf(path, sizeof path, "/proc/%ld/comm", (long)owner);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(comm, sizeof comm, f)) comm[strcspn(comm, "\n")] = '\0';
        fclose(f);
    }
    snprintf(why, cap, "is already in use by pid %ld (%s)", (long)owner, comm);
    return -1;
}

bool cl_port_accepts(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

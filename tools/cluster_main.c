/* tools/cluster_main.c: bt-cluster, which starts, watches and stops a local
 * cluster (bt-lockd, bt-master, N bt-tabletserver, bt-gateway when built)
 * as daemons under one directory; `make run` uses `bt-cluster run`.
 *
 * This file holds the flags, the four commands and the readiness check
 * (through libbt, client/bt.h: the master's status must show every tablet
 * server live and no unassigned tablet).  Processes, pid files, logs and
 * ports are tools/cluster_proc.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cli.h"
#include "client/bt.h"
#include "tools/cluster_proc.h"

/* ---- usage ------------------------------------------------------------------ */

#define UP_OPTIONS \
    "    --dir DIR           the cluster's directory (required; created if missing):\n" \
    "                        DIR/logs/NAME.log, DIR/run/NAME.pid, DIR/lockd (lock\n" \
    "                        service store), DIR/data (tablets, commit logs)\n" \
    "    --servers N         tablet servers, 1-64 (default 3)\n" \
    "    --lock-port P       bt-lockd's port (default 7000)\n" \
    "    --master-port P     bt-master's port (default 7001)\n" \
    "    --server-port P     first tablet server's port; server i uses P+i\n" \
    "                        (default 7100)\n" \
    "    --gateway-port P    bt-gateway's port (default 8080), if bt-gateway is built\n" \
    "    --lease-ms MS       lock-service lease of the master and the tablet servers\n" \
    "                        (default: theirs, 10000)\n" \
    "    --durability M      the tablet servers' durability: sync (default), group, none\n" \
    "    --wait-s S          how long to wait for the cluster to serve (default 30)\n"

static void usage_main(FILE *f)
{
    fprintf(f,
        "NAME\n"
        "    bt-cluster - start, check and stop a local bigtable-c cluster\n"
        "\n"
        "SYNOPSIS\n"
        "    bt-cluster up     --dir DIR [--servers N] [PORT OPTIONS] [--lease-ms MS]\n"
        "                      [--durability sync|group|none] [--wait-s S]\n"
        "    bt-cluster run    --dir DIR [up options] [--timeout-s S]\n"
        "    bt-cluster status --dir DIR\n"
        "    bt-cluster down   --dir DIR [--timeout-s S]\n"
        "    bt-cluster help [COMMAND]    (or COMMAND --help)\n"
        "\n"
        "DESCRIPTION\n"
        "    Runs a whole cluster on 127.0.0.1 from one directory: bt-lockd (the\n"
        "    lock service), bt-master, N bt-tabletserver and, when it is built,\n"
        "    bt-gateway.  Each runs as a daemon in its own session with its output\n"
        "    in DIR/logs/NAME.log and its pid in DIR/run/NAME.pid.  Binaries are\n"
        "    taken from the directory of bt-cluster itself, else from $PATH.\n"
        "\n"
        "    up      starts the cluster and returns once it serves: the master\n"
        "            answers with every tablet server live and no unassigned tablet\n"
        "    run     up, then stays in the foreground until Ctrl-C or SIGTERM, then\n"
        "            down; reports any process that dies meanwhile (`make run`)\n"
        "    status  whether each process is alive, and the master's view\n"
        "    down    stops every process (gateway, tablet servers, master, lock\n"
        "            service last); the data stays\n"
        "\n"
        "    Clients reach the cluster through the lock service:\n"
        "        export BT_LOCK=bt://127.0.0.1:7000\n"
        "\n"
        "EXIT STATUS\n"
        "    0 on success, 1 on failure (status: a process is not alive),\n"
        "    2 on bad flags.\n");
}

static void usage_up(FILE *f)
{
    fprintf(f,
        "NAME\n"
        "    bt-cluster up - start a local cluster and wait until it serves\n"
        "\n"
        "SYNOPSIS\n"
        "    bt-cluster up --dir DIR [--servers N] [--lock-port P] [--master-port P]\n"
        "                  [--server-port P] [--gateway-port P] [--lease-ms MS]\n"
        "                  [--durability sync|group|none] [--wait-s S]\n"
        "\n"
        "DESCRIPTION\n"
        "    Starts bt-lockd, bt-master, N bt-tabletserver (ids ts0..ts<N-1>) and\n"
        "    bt-gateway (if built) as daemons, then waits until the master reports\n"
        "    N live tablet servers and no unassigned tablet.  Refuses to start if\n"
        "    DIR already has live processes or if a port is taken.  On timeout,\n"
        "    names the process that is missing or dead, shows the end of its log,\n"
        "    stops everything it started and exits 1.\n"
        "\n"
        "OPTIONS\n"
        UP_OPTIONS
        "    --help              print this text and exit\n"
        "\n"
        "OUTPUT\n"
        "    Each process with its address, pid and log, and the lock URL clients\n"
        "    use (export BT_LOCK=bt://127.0.0.1:PORT).\n"
        "\n"
        "EXIT STATUS\n"
        "    0 once the cluster serves, 1 if it cannot start, 2 on bad flags.\n");
}

static void usage_run(FILE *f)
{
    fprintf(f,
        "NAME\n"
        "    bt-cluster run - run a local cluster in the foreground\n"
        "\n"
        "SYNOPSIS\n"
        "    bt-cluster run --dir DIR [up options] [--timeout-s S]\n"
        "\n"
        "DESCRIPTION\n"
        "    Does `bt-cluster up`, then waits until SIGINT (Ctrl-C) or SIGTERM and\n"
        "    does `bt-cluster down`.  While it waits, a process that dies is\n"
        "    reported with the end of its log (it is not restarted).  If\n"
        "    `bt-cluster down` is run from elsewhere, it exits once every process\n"
        "    has stopped.  This is what `make run` runs.\n"
        "\n"
        "OPTIONS\n"
        UP_OPTIONS
        "    --timeout-s S       on stop, how long each process has to exit after\n"
        "                        SIGTERM before SIGKILL (default 20)\n"
        "    --help              print this text and exit\n"
        "\n"
        "EXIT STATUS\n"
        "    0 after a clean stop, 1 if the cluster cannot start or cannot be\n"
        "    stopped, 2 on bad flags.\n");
}

static void usage_status(FILE *f)
{
    fprintf(f,
        "NAME\n"
        "    bt-cluster status - is the local cluster running?\n"
        "\n"
        "SYNOPSIS\n"
        "    bt-cluster status --dir DIR\n"
        "\n"
        "DESCRIPTION\n"
        "    For every pid file in DIR/run, whether the process is alive; then, if\n"
        "    the master answers, its view: live tablet servers, tables, tablets and\n"
        "    unassigned tablets.\n"
        "\n"
        "OPTIONS\n"
        "    --dir DIR           the cluster's directory (required)\n"
        "    --help              print this text and exit\n"
        "\n"
        "EXIT STATUS\n"
        "    0 if every process is alive, 1 otherwise (also when DIR has no\n"
        "    cluster), 2 on bad flags.\n");
}

static void usage_down(FILE *f)
{
    fprintf(f,
        "NAME\n"
        "    bt-cluster down - stop the local cluster\n"
        "\n"
        "SYNOPSIS\n"
        "    bt-cluster down --dir DIR [--timeout-s S]\n"
        "\n"
        "DESCRIPTION\n"
        "    Sends SIGTERM to the gateway, then the tablet servers, then the\n"
        "    master, then the lock service (last: the servers need it to\n"
        "    unregister cleanly), waiting for each to exit; a process still\n"
        "    running after the timeout gets SIGKILL.  Removes the pid files; the\n"
        "    data (DIR/data, DIR/lockd) and logs stay.  Stopping a stopped cluster\n"
        "    is not an error.\n"
        "\n"
        "OPTIONS\n"
        "    --dir DIR           the cluster's directory (required)\n"
        "    --timeout-s S       how long each process has to exit after SIGTERM\n"
        "                        (default 20)\n"
        "    --help              print this text and exit\n"
        "\n"
        "EXIT STATUS\n"
        "    0 once nothing runs, 1 if a process could not be stopped, 2 on bad\n"
        "    flags.\n");
}

/* ---- flags ------------------------------------------------------------------- */

typedef struct opts {
    const char *cmd;
    const char *dir;
    unsigned long servers, lock_port, master_port, server_port, gateway_port;
    unsigned long lease_ms;            /* 0: not given */
    unsigned long wait_s, timeout_s;
    const char *durability;            /* NULL: not given */
} opts;

enum { F_UP = 1, F_RUN = 2, F_STATUS = 4, F_DOWN = 8 };

typedef struct flagdef {
    const char *name;
    int cmds;                          /* F_* where it is accepted */
    const char **str;                  /* a string flag, or */
    unsigned long *num, min, max;      /* a number in [min, max] */
} flagdef;

static int bad(const opts *o, const char *fmt, const char *arg)
{
    fprintf(stderr, "bt-cluster%s%s: ", o->cmd ? " " : "", o->cmd ? o->cmd : "");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see bt-cluster %s%s--help)\n", o->cmd ? o->cmd : "", o->cmd ? " " : "");
    return 2;
}

/* Parses argv[2..] for command bit `cmd`.  0, or the exit status (2 on an
 * error; -1 when --help was printed, meaning exit 0). */
static int parse_flags(opts *o, int cmd, int argc, char **argv, void (*usage)(FILE *))
{
    const flagdef defs[] = {
        {"--dir", F_UP | F_RUN | F_STATUS | F_DOWN, &o->dir, NULL, 0, 0},
        {"--servers", F_UP | F_RUN, NULL, &o->servers, 1, CL_MAX_SERVERS},
        {"--lock-port", F_UP | F_RUN, NULL, &o->lock_port, 1, 65535},
        {"--master-port", F_UP | F_RUN, NULL, &o->master_port, 1, 65535},
        {"--server-port", F_UP | F_RUN, NULL, &o->server_port, 1, 65535},
        {"--gateway-port", F_UP | F_RUN, NULL, &o->gateway_port, 1, 65535},
        {"--lease-ms", F_UP | F_RUN, NULL, &o->lease_ms, 1000, 60000},
        {"--durability", F_UP | F_RUN, &o->durability, NULL, 0, 0},
        {"--wait-s", F_UP | F_RUN, NULL, &o->wait_s, 1, 3600},
        {"--timeout-s", F_RUN | F_DOWN, NULL, &o->timeout_s, 1, 3600},
    };
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return -1;
        }
        char name[64];
        const char *v = bt_cli_split(a, name, sizeof name);
        const flagdef *d = NULL;
        for (size_t k = 0; k < sizeof defs / sizeof *defs; k++)
            if ((defs[k].cmds & cmd) && !strcmp(name, defs[k].name)) d = &defs[k];
        if (!d) return bad(o, a[0] == '-' ? "unknown option \"%s\"" : "unexpected argument \"%s\"", a);
        if (!v) {
            if (i + 1 >= argc) return bad(o, "%s needs a value", name);
            v = argv[++i];
        }
        if (d->str) {
            if (!*v) return bad(o, "%s: empty value", name);
            *d->str = v;
        } else if (bt_parse_ulong(v, d->min, d->max, d->num)) {
            char msg[128];
            snprintf(msg, sizeof msg, "%s: \"%%s\" is not a number in [%lu, %lu]", name, d->min, d->max);
            return bad(o, msg, v);
        }
    }
    if (!o->dir) return bad(o, "--dir is required%s", "");
    if (o->durability && strcmp(o->durability, "sync") && strcmp(o->durability, "group") &&
        strcmp(o->durability, "none"))
        return bad(o, "--durability: \"%s\" is not sync, group or none", o->durability);
    if (cmd & (F_UP | F_RUN)) {
        if (o->server_port + o->servers - 1 > 65535)
            return bad(o, "--server-port: the tablet servers' ports (one per server) go past 65535%s", "");
        unsigned long fixed[3] = {o->lock_port, o->master_port, o->gateway_port};
        const char *names[3] = {"--lock-port", "--master-port", "--gateway-port"};
        for (int a = 0; a < 3; a++) {
            for (int b = a + 1; b < 3; b++)
                if (fixed[a] == fixed[b]) return bad(o, "%s and another port flag name the same port", names[a]);
            if (fixed[a] >= o->server_port && fixed[a] < o->server_port + o->servers)
                return bad(o, "%s falls in the tablet servers' port range", names[a]);
        }
    }
    return 0;
}

/* ---- the cluster being started ------------------------------------------------ */

typedef struct cluster {
    char dir[PATH_MAX];
    char lock_url[64];
    cl_proc procs[CL_MAX_PROCS];
    size_t n;
    int lock_fd;                   /* flock on DIR/run/lock while starting/stopping */
    sigset_t sigs;                 /* SIGINT, SIGTERM, SIGHUP: blocked, taken with sigtimedwait */
} cluster;

static cluster C = {.lock_fd = -1};

static cl_proc *find_proc(const char *name)
{
    for (size_t i = 0; i < C.n; i++)
        if (!strcmp(C.procs[i].name, name)) return &C.procs[i];
    return NULL;
}

/* Takes DIR/run/lock so two bt-cluster commands never start or stop the
 * same directory at once. */
static int lock_dir(const char *dir)
{
    char path[CL_PATH_MAX];
    snprintf(path, sizeof path, "%s/run/lock", dir);
    C.lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (C.lock_fd < 0) {
        fprintf(stderr, "bt-cluster: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(C.lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "bt-cluster: another bt-cluster command is starting or stopping %s\n", dir);
        close(C.lock_fd);
        C.lock_fd = -1;
        return -1;
    }
    return 0;
}

static void unlock_dir(void)
{
    if (C.lock_fd >= 0) close(C.lock_fd);
    C.lock_fd = -1;
}

/* A pending SIGINT/SIGTERM/SIGHUP (waiting up to ms for one), or 0. */
static int take_signal(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    int sig = sigtimedwait(&C.sigs, NULL, &ts);
    return sig > 0 ? sig : 0;
}

/* Resolves --dir to an absolute path.  create: mkdir -p it first.  0, or -1
 * (printed unless the directory is merely missing and !create). */
static int resolve_dir(const char *dir, bool create, char *out)
{
    if (create && cl_mkdirs(dir)) return -1;
    if (!realpath(dir, out)) {
        if (create || errno != ENOENT) fprintf(stderr, "bt-cluster: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static void add_proc(const char *name, const char *bin, uint16_t port)
{
    cl_proc *p = &C.procs[C.n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->addr, sizeof p->addr, "127.0.0.1:%u", (unsigned)port);
    p->port = port;
    cl_arg(p, "%s", bin);
}

/* Fills C.procs with the commands of every daemon.  0, or -1 when a
 * binary is missing (printed; C.procs is filled all the same, so the ports
 * can still be checked). */
static int plan(const opts *o)
{
    char lockd[PATH_MAX], master[PATH_MAX], ts[PATH_MAX], gw[PATH_MAX];
    const char *need[3] = {"bt-lockd", "bt-master", "bt-tabletserver"};
    char *paths[3] = {lockd, master, ts};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        if (cl_find_binary(need[i], false, paths[i], PATH_MAX)) {
            fprintf(stderr, "bt-cluster: cannot find %s next to bt-cluster or in $PATH (build it with make)\n",
                    need[i]);
            snprintf(paths[i], PATH_MAX, "%s", need[i]);
            rc = -1;
        }
    }
    bool have_gw = cl_find_binary("bt-gateway", true, gw, sizeof gw) == 0;
    snprintf(C.lock_url, sizeof C.lock_url, "bt://127.0.0.1:%lu", o->lock_port);
    C.n = 0;

    add_proc("lockd", lockd, (uint16_t)o->lock_port);
    cl_proc *p = &C.procs[C.n - 1];
    cl_arg(p, "--data-dir");
    cl_arg(p, "%s/lockd", C.dir);
    cl_arg(p, "--port");
    cl_arg(p, "%lu", o->lock_port);

    add_proc("master", master, (uint16_t)o->master_port);
    p = &C.procs[C.n - 1];
    cl_arg(p, "--lock");
    cl_arg(p, "%s", C.lock_url);
    cl_arg(p, "--data-dir");
    cl_arg(p, "%s/data", C.dir);
    cl_arg(p, "--port");
    cl_arg(p, "%lu", o->master_port);
    if (o->lease_ms) {
        cl_arg(p, "--lease-ms");
        cl_arg(p, "%lu", o->lease_ms);
    }

    for (unsigned long i = 0; i < o->servers; i++) {
        char name[CL_NAME_MAX];
        snprintf(name, sizeof name, "ts%lu", i);
        add_proc(name, ts, (uint16_t)(o->server_port + i));
        p = &C.procs[C.n - 1];
        cl_arg(p, "--lock");
        cl_arg(p, "%s", C.lock_url);
        cl_arg(p, "--data-dir");
        cl_arg(p, "%s/data", C.dir);
        cl_arg(p, "--port");
        cl_arg(p, "%lu", o->server_port + i);
        cl_arg(p, "--id");
        cl_arg(p, "%s", name);
        if (o->lease_ms) {
            cl_arg(p, "--lease-ms");
            cl_arg(p, "%lu", o->lease_ms);
        }
        if (o->durability) {
            cl_arg(p, "--durability");
            cl_arg(p, "%s", o->durability);
        }
    }

    if (have_gw) {
        add_proc("gateway", gw, (uint16_t)o->gateway_port);
        p = &C.procs[C.n - 1];
        cl_arg(p, "--lock");
        cl_arg(p, "%s", C.lock_url);
        cl_arg(p, "--port");
        cl_arg(p, "%lu", o->gateway_port);
    }
    return rc;
}

static void free_plan(void)
{
    for (size_t i = 0; i < C.n; i++) cl_proc_free(&C.procs[i]);
}

/* Refuses a directory whose pid files name live processes; removes stale
 * pid files.  0 or -1 (printed). */
static int check_not_running(void)
{
    static cl_proc old[CL_MAX_PROCS];
    int n = cl_load_pidfiles(C.dir, old, CL_MAX_PROCS);
    if (n < 0) return -1;
    char live[1024] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (cl_alive(&old[i]))
            len += (size_t)snprintf(live + len, len < sizeof live ? sizeof live - len : 0, "%s%s (pid %ld)",
                                    len ? ", " : "", old[i].name, (long)old[i].pid);
        else
            cl_remove_pidfile(C.dir, old[i].name);
    }
    if (!len) return 0;
    fprintf(stderr,
            "bt-cluster: %s already has running processes: %s\n"
            "  stop them first with: bt-cluster down --dir %s\n",
            C.dir, live, C.dir);
    return -1;
}

/* Every port the plan needs must be free.  0 or -1 (each busy one printed). */
static int check_ports(void)
{
    int rc = 0;
    for (size_t i = 0; i < C.n; i++) {
        char why[160];
        if (cl_port_free(C.procs[i].port, why, sizeof why) == 0) continue;
        const char *flag = cl_rank(C.procs[i].name) == 0 ? "--lock-port"
                           : cl_rank(C.procs[i].name) == 1 ? "--master-port"
                           : cl_rank(C.procs[i].name) == 2 ? "--server-port"
                                                           : "--gateway-port";
        fprintf(stderr, "bt-cluster: port %u for %s %s; choose another with %s or stop that process\n",
                (unsigned)C.procs[i].port, C.procs[i].name, why, flag);
        rc = -1;
    }
    return rc;
}

/* Reports a process that died: how, and the end of its log. */
static void report_dead(const cl_proc *p, const char *when)
{
    char how[128], log[CL_PATH_MAX];
    cl_describe_end(p, how, sizeof how);
    cl_log_path(C.dir, p->name, log, sizeof log);
    fprintf(stderr, "bt-cluster: %s (pid %ld) %s%s\n", p->name, (long)p->pid, how, when);
    cl_log_tail(log, CL_TAIL_LINES, stderr);
}

static void report_stuck(const cl_proc *p, const char *what)
{
    char log[CL_PATH_MAX];
    cl_log_path(C.dir, p->name, log, sizeof log);
    fprintf(stderr, "bt-cluster: %s (pid %ld) is running but %s\n", p->name, (long)p->pid, what);
    cl_log_tail(log, CL_TAIL_LINES, stderr);
}

/* The readiness state seen by the last poll, for the timeout report. */
typedef struct ready_state {
    bool lockd_up;
    bool master_answered;
    char master_err[256];
    bt_cluster_status *st;         /* last status, or NULL */
} ready_state;

static bool server_listed(const bt_cluster_status *st, const char *id)
{
    for (size_t i = 0; st && i < st->n_servers; i++)
        if (st->servers[i].id && !strcmp(st->servers[i].id, id)) return true;
    return false;
}

/* One readiness poll: true once every tablet server is live at the master,
 * no tablet is unassigned and the gateway (if any) accepts connections. */
static bool poll_ready(bt_client **client, ready_state *rs, size_t servers)
{
    if (!*client) {
        bt_client_options co = {.timeout_ms = 2000, .rpc_timeout_ms = 1000};
        if (bt_connect(C.lock_url, &co, client) != BT_OK) {
            snprintf(rs->master_err, sizeof rs->master_err, "cannot reach the lock service: %s", bt_errmsg());
            *client = NULL;
            return false;
        }
    }
    bt_cluster_status *st = NULL;
    int rc = bt_cluster_status_get(*client, &st);
    if (rc != BT_OK) {
        snprintf(rs->master_err, sizeof rs->master_err, "%s (%s)", *bt_errmsg() ? bt_errmsg() : bt_strerror(rc),
                 bt_errname(rc));
        return false;
    }
    rs->master_answered = true;
    if (rs->st) bt_cluster_status_free(rs->st);
    rs->st = st;
    if (st->unassigned_tablets) return false;
    for (size_t i = 0; i < servers; i++) {
        char id[CL_NAME_MAX];
        snprintf(id, sizeof id, "ts%zu", i);
        if (!server_listed(st, id)) return false;
    }
    cl_proc *gw = find_proc("gateway");
    return !gw || cl_port_accepts(gw->port);
}

/* After a timeout: says what is missing, with the relevant logs. */
static void report_not_ready(const ready_state *rs, int wait_s)
{
    fprintf(stderr, "bt-cluster: the cluster did not serve within %d s\n", wait_s);
    bool blamed = false;
    for (size_t i = 0; i < C.n; i++) {
        cl_proc *p = &C.procs[i];
        if (!p->pid) {
            fprintf(stderr, "bt-cluster: %s was not started\n", p->name);
            continue;
        }
        if (!cl_alive(p)) {
            report_dead(p, "");
            blamed = true;
            continue;
        }
        int rank = cl_rank(p->name);
        if (rank == 0 && !rs->lockd_up) {
            report_stuck(p, "does not accept connections");
            blamed = true;
        } else if (rank == 1 && !rs->master_answered) {
            char what[400];
            snprintf(what, sizeof what, "did not answer a status request: %s", rs->master_err);
            report_stuck(p, what);
            blamed = true;
        } else if (rank == 1 && rs->st && rs->st->unassigned_tablets) {
            char what[160];
            snprintf(what, sizeof what, "reports %llu unassigned tablets",
                     (unsigned long long)rs->st->unassigned_tablets);
            report_stuck(p, what);
            blamed = true;
        } else if (rank == 2 && rs->st && !server_listed(rs->st, p->name)) {
            report_stuck(p, "is not among the master's live tablet servers");
            blamed = true;
        } else if (rank == 3 && !cl_port_accepts(p->port)) {
            report_stuck(p, "does not accept connections");
            blamed = true;
        }
    }
    if (!blamed) fprintf(stderr, "bt-cluster: every process runs; the last status error: %s\n", rs->master_err);
}

/* Stops whatever this command started and drops the run files. */
static void abort_start(void)
{
    fprintf(stderr, "bt-cluster: stopping what was started\n");
    cl_stop_all(C.procs, C.n, C.dir, 10, false);
    cl_remove_info(C.dir);
}

static void print_table(double secs, const bt_cluster_status *st)
{
    size_t servers = 0;
    for (size_t i = 0; i < C.n; i++) servers += cl_rank(C.procs[i].name) == 2;
    unsigned long long tablets = st ? (unsigned long long)st->tablets : 0ULL;
    printf("bt-cluster: cluster serving after %.1f s in %s: %zu tablet server%s, %llu tablet%s\n", secs, C.dir,
           servers, servers == 1 ? "" : "s", tablets, tablets == 1 ? "" : "s");
    printf("  %-8s %-22s %-8s %s\n", "PROCESS", "ADDRESS", "PID", "LOG");
    for (size_t i = 0; i < C.n; i++) {
        char log[CL_PATH_MAX], addr[80];
        cl_log_path(C.dir, C.procs[i].name, log, sizeof log);
        snprintf(addr, sizeof addr, "%s%s", cl_rank(C.procs[i].name) == 3 ? "http://" : "", C.procs[i].addr);
        printf("  %-8s %-22s %-8ld %s\n", C.procs[i].name, addr, (long)C.procs[i].pid, log);
    }
    if (!find_proc("gateway")) printf("  (no bt-gateway next to bt-cluster: no HTTP gateway started)\n");
    printf("Clients find the cluster through its lock service:\n"
           "  export BT_LOCK=%s\n",
           C.lock_url);
    fflush(stdout);
}

/* `up`: everything but the foreground wait.  0, or the exit status. */
static int cluster_up(const opts *o, bool for_run)
{
    int64_t t0 = cl_now_ms(), deadline = t0 + (int64_t)o->wait_s * 1000;
    if (resolve_dir(o->dir, true, C.dir)) return 1;
    const char *subs[] = {"logs", "run", "data", "lockd"};
    for (size_t i = 0; i < 4; i++) {
        char sub[CL_PATH_MAX];
        snprintf(sub, sizeof sub, "%s/%s", C.dir, subs[i]);
        if (cl_mkdirs(sub)) return 1;
    }
    if (lock_dir(C.dir)) return 1;
    if (check_not_running()) return 1;
    int planned = plan(o), ports = check_ports();
    if (planned || ports) return 1;
    cl_mark_down(C.dir, false);

    /* The lock service first: everyone else needs it to start. */
    ready_state rs = {.master_err = "no answer yet"};
    cl_proc *lockd = &C.procs[0];
    if (cl_spawn(lockd, C.dir)) return abort_start(), 1;
    while (!(rs.lockd_up = cl_port_accepts(lockd->port))) {
        int sig = take_signal(50);
        if (sig || !cl_alive(lockd) || cl_now_ms() >= deadline) {
            if (sig) fprintf(stderr, "bt-cluster: interrupted (%s)\n", strsignal(sig));
            else report_not_ready(&rs, (int)o->wait_s);
            abort_start();
            return sig ? 130 : 1;
        }
    }
    if (cl_write_info(C.dir, C.lock_url, C.procs, C.n)) return abort_start(), 1;
    for (size_t i = 1; i < C.n; i++)
        if (cl_spawn(&C.procs[i], C.dir)) return abort_start(), 1;

    /* Then wait until the master sees them all. */
    bt_client *client = NULL;
    size_t servers = o->servers;
    int rc = 1;
    for (;;) {
        bool dead = false;
        for (size_t i = 0; i < C.n; i++) {
            if (!cl_alive(&C.procs[i])) {
                report_dead(&C.procs[i], " while the cluster was starting");
                dead = true;
            }
        }
        if (dead) break;
        if (poll_ready(&client, &rs, servers)) {
            rc = 0;
            break;
        }
        int sig = take_signal(100);
        if (sig) {
            fprintf(stderr, "bt-cluster: interrupted (%s)\n", strsignal(sig));
            rc = 130;
            break;
        }
        if (cl_now_ms() >= deadline) {
            report_not_ready(&rs, (int)o->wait_s);
            break;
        }
    }
    bt_close(client);
    if (rc) {
        if (rs.st) bt_cluster_status_free(rs.st);
        abort_start();
        return rc;
    }
    print_table((double)(cl_now_ms() - t0) / 1000.0, rs.st);
    if (rs.st) bt_cluster_status_free(rs.st);
    if (!for_run) printf("Stop it with: bt-cluster down --dir %s\n", C.dir);
    fflush(stdout);
    unlock_dir();
    return 0;
}

/* `run`'s foreground wait; returns the exit status. */
static int cluster_wait(const opts *o)
{
    printf("Running in the foreground: Ctrl-C stops every process.\n");
    fflush(stdout);
    bool reported[CL_MAX_PROCS] = {false};
    for (;;) {
        int sig = take_signal(250);
        if (sig) {
            printf("\nbt-cluster: %s: stopping the cluster\n", strsignal(sig));
            fflush(stdout);
            break;
        }
        bool stopping = cl_is_down(C.dir);
        size_t alive = 0;
        for (size_t i = 0; i < C.n; i++) {
            if (reported[i]) continue;
            if (cl_alive(&C.procs[i])) {
                alive++;
                continue;
            }
            reported[i] = true;
            if (!stopping) report_dead(&C.procs[i], " unexpectedly (not restarted)");
        }
        if (!alive) {
            static cl_proc left[CL_MAX_PROCS];
            if (stopping || cl_load_pidfiles(C.dir, left, CL_MAX_PROCS) == 0) {
                printf("bt-cluster: the cluster was stopped by bt-cluster down\n");
                return 0;
            }
            fprintf(stderr, "bt-cluster: every process has ended\n");
            cl_stop_all(C.procs, C.n, C.dir, 1, false); /* removes the pid files */
            cl_remove_info(C.dir);
            return 1;
        }
    }
    if (lock_dir(C.dir)) return 1;
    cl_mark_down(C.dir, true);
    int rc = cl_stop_all(C.procs, C.n, C.dir, (int)o->timeout_s, true);
    cl_remove_info(C.dir);
    unlock_dir();
    printf("bt-cluster: stopped; the data stays in %s\n", C.dir);
    return rc ? 1 : 0;
}

/* ---- status and down ---------------------------------------------------------- */

static void print_master_view(const char *lock_url)
{
    bt_client_options co = {.timeout_ms = 3000, .rpc_timeout_ms = 2000};
    bt_client *c = NULL;
    bt_cluster_status *st = NULL;
    int rc = bt_connect(lock_url, &co, &c);
    if (rc == BT_OK) rc = bt_cluster_status_get(c, &st);
    if (rc != BT_OK) {
        printf("master: no answer through %s: %s (%s)\n", lock_url, *bt_errmsg() ? bt_errmsg() : bt_strerror(rc),
               bt_errname(rc));
        bt_close(c);
        return;
    }
    char since[64] = "?";
    time_t t = (time_t)(st->master_since_us / 1000000);
    struct tm tm;
    if (st->master_since_us > 0) strftime(since, sizeof since, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    printf("master: %s, active since %s\n", st->master ? st->master : "?", since);
    printf("  %zu live tablet server%s, %llu tables, %llu tablets (%llu unassigned)\n", st->n_servers,
           st->n_servers == 1 ? "" : "s", (unsigned long long)st->tables, (unsigned long long)st->tablets,
           (unsigned long long)st->unassigned_tablets);
    for (size_t i = 0; i < st->n_servers; i++) {
        const bt_server_status *s = &st->servers[i];
        printf("  %-8s %-22s %llu tablet%s\n", s->id ? s->id : "?", s->address ? s->address : "?",
               (unsigned long long)s->tablets, s->tablets == 1 ? "" : "s");
    }
    printf("Clients: export BT_LOCK=%s\n", lock_url);
    bt_cluster_status_free(st);
    bt_close(c);
}

static int cmd_status(const opts *o)
{
    if (resolve_dir(o->dir, false, C.dir)) {
        fprintf(stderr, "bt-cluster: no cluster in %s (the directory does not exist)\n", o->dir);
        return 1;
    }
    int n = cl_load_pidfiles(C.dir, C.procs, CL_MAX_PROCS);
    if (n < 0) return 1;
    if (n == 0) {
        fprintf(stderr, "bt-cluster: no cluster in %s (no pid files in %s/run)\n", C.dir, C.dir);
        return 1;
    }
    C.n = (size_t)n;
    size_t alive = 0;
    bool lockd_alive = false;
    printf("cluster in %s\n", C.dir);
    printf("  %-8s %-22s %-8s %s\n", "PROCESS", "ADDRESS", "PID", "STATE");
    for (size_t i = 0; i < C.n; i++) {
        cl_proc *p = &C.procs[i];
        bool up = cl_alive(p);
        alive += up;
        if (up && cl_rank(p->name) == 0) lockd_alive = true;
        printf("  %-8s %-22s %-8ld %s\n", p->name, *p->addr ? p->addr : "?", (long)p->pid, up ? "alive" : "dead");
    }
    char url[128];
    if (lockd_alive && cl_read_lock_url(C.dir, url, sizeof url) == 0) print_master_view(url);
    else printf("master: not asked (the lock service is not running)\n");
    if (alive < C.n) printf("%zu of %zu processes are not running\n", C.n - alive, C.n);
    fflush(stdout);
    return alive == C.n ? 0 : 1;
}

static int cmd_down(const opts *o)
{
    if (resolve_dir(o->dir, false, C.dir)) {
        printf("bt-cluster: nothing to stop: %s does not exist\n", o->dir);
        return 0;
    }
    int n = cl_load_pidfiles(C.dir, C.procs, CL_MAX_PROCS);
    if (n < 0) return 1;
    C.n = (size_t)n;
    size_t alive = 0;
    for (size_t i = 0; i < C.n; i++) alive += cl_alive(&C.procs[i]);
    if (!alive) {
        for (size_t i = 0; i < C.n; i++) cl_remove_pidfile(C.dir, C.procs[i].name);
        cl_remove_info(C.dir);
        if (n) printf("bt-cluster: the cluster in %s is already stopped (removed %d stale pid file%s)\n", C.dir, n,
                      n == 1 ? "" : "s");
        else printf("bt-cluster: no cluster running in %s: nothing to stop\n", C.dir);
        return 0;
    }
    if (lock_dir(C.dir)) return 1;
    cl_mark_down(C.dir, true);
    int rc = cl_stop_all(C.procs, C.n, C.dir, (int)o->timeout_s, true);
    cl_remove_info(C.dir);
    unlock_dir();
    if (rc) return 1;
    printf("bt-cluster: stopped; the data stays in %s\n", C.dir);
    return 0;
}

/* ---- main ------------------------------------------------------------------------ */

typedef struct command {
    const char *name;
    int bit;
    void (*usage)(FILE *);
} command;

static const command commands[] = {
    {"up", F_UP, usage_up},
    {"run", F_RUN, usage_run},
    {"status", F_STATUS, usage_status},
    {"down", F_DOWN, usage_down},
};

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    opts o = {.servers = 3, .lock_port = 7000, .master_port = 7001, .server_port = 7100, .gateway_port = 8080,
              .wait_s = 30, .timeout_s = 20};
    if (argc < 2) {
        fprintf(stderr, "bt-cluster: a command is required\n\n");
        usage_main(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage_main(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "help")) {
        const command *c = argc > 2 ? find_command(argv[2]) : NULL;
        if (argc > 2 && !c) {
            fprintf(stderr, "bt-cluster: unknown command \"%s\" (commands: up, run, status, down)\n", argv[2]);
            return 2;
        }
        (c ? c->usage : usage_main)(stdout);
        return 0;
    }
    const command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "bt-cluster: unknown %s \"%s\" (commands: up, run, status, down; see bt-cluster --help)\n",
                argv[1][0] == '-' ? "option" : "command", argv[1]);
        return 2;
    }
    o.cmd = c->name;
    int rc = parse_flags(&o, c->bit, argc, argv, c->usage);
    if (rc) return rc < 0 ? 0 : rc;

    /* Before any thread (libbt starts some): SIGINT/SIGTERM/SIGHUP are taken
     * with sigtimedwait, so Ctrl-C during up/run stops the cluster cleanly. */
    sigemptyset(&C.sigs);
    sigaddset(&C.sigs, SIGINT);
    sigaddset(&C.sigs, SIGTERM);
    sigaddset(&C.sigs, SIGHUP); /* the terminal went away: stop too, not leave daemons behind */
    if (c->bit & (F_UP | F_RUN)) pthread_sigmask(SIG_BLOCK, &C.sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    switch (c->bit) {
    case F_UP:
        rc = cluster_up(&o, false);
        break;
    case F_RUN:
        rc = cluster_up(&o, true);
        if (!rc) rc = cluster_wait(&o);
        break;
    case F_STATUS:
        rc = cmd_status(&o);
        break;
    default:
        rc = cmd_down(&o);
        break;
    }
    free_plan();
    return rc;
}

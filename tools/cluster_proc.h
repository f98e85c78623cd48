/* tools/cluster_proc.h: the process side of bt-cluster (tools/cluster_proc.c):
 * starting daemons, pid files, liveness, stopping, ports and log tails.
 * Nothing here talks to the cluster; tools/cluster_main.c does that with
 * libbt.
 *
 * A cluster directory DIR (always absolute) holds:
 *     DIR/run/<name>.pid     one line: the process id
 *     DIR/run/cluster.info   the lock URL and every process's address
 *     DIR/run/down           made when `bt-cluster down` starts, removed by `up`
 *     DIR/logs/<name>.log    the process's stdout and stderr (appended)
 *     DIR/lockd/             bt-lockd's store
 *     DIR/data/              the master's and tablet servers' --data-dir
 * Process names: "lockd", "master", "ts0".."ts<N-1>", "gateway".
 *
 * Errors are printed to stderr by the function that meets them (this is a
 * command-line tool, not a library); functions return 0 or -1. */
#ifndef BT_TOOLS_CLUSTER_PROC_H
#define BT_TOOLS_CLUSTER_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define CL_MAX_SERVERS 64
#define CL_MAX_PROCS (CL_MAX_SERVERS + 3)   /* lockd, master, gateway + servers */
#define CL_MAX_ARGS 24
#define CL_NAME_MAX 32
#define CL_TAIL_LINES 20                    /* log lines shown when a process fails */
#define CL_PATH_MAX (PATH_MAX + 64)         /* DIR (<= PATH_MAX) plus a file under it */

/* One daemon of the cluster. */
typedef struct cl_proc {
    char name[CL_NAME_MAX];     /* "lockd", "master", "ts3", "gateway" */
    char addr[64];              /* "127.0.0.1:7000" ("" if unknown) */
    uint16_t port;
    char *argv[CL_MAX_ARGS];    /* argv[0]: absolute path of the binary; owned */
    int argc;
    pid_t pid;                  /* 0: not started / unknown */
    bool child;                 /* forked by this bt-cluster: reaped with waitpid */
    bool ended;                 /* seen dead (status valid if child) */
    int status;                 /* wait status when a child ended */
} cl_proc;

/* ---- names and paths ------------------------------------------------------- */

/* Order of a process in listings (lockd, master, ts0.., gateway); stops run
 * the other way round. */
int cl_rank(const char *name);
/* qsort comparator over cl_proc by cl_rank, then tablet server number. */
int cl_proc_cmp(const void *a, const void *b);
/* The binary a process name runs: "bt-lockd", "bt-master", "bt-tabletserver",
 * "bt-gateway"; NULL for an unknown name. */
const char *cl_binary_for(const char *name);

/* Finds binary `base` ("bt-master") next to this executable
 * (/proc/self/exe), then, unless next_only, in $PATH.  0 and the absolute
 * path in out, or -1 (nothing printed). */
int cl_find_binary(const char *base, bool next_only, char *out, size_t cap);

/* mkdir -p; 0 or -1 (printed). */
int cl_mkdirs(const char *path);

/* ---- argv ------------------------------------------------------------------- */

/* Appends a printf-formatted argument (copied) to p->argv. */
void cl_arg(cl_proc *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cl_proc_free(cl_proc *p);

/* ---- starting, watching, stopping ------------------------------------------ */

/* Starts p as a daemon: its own session (setsid), stdin /dev/null, stdout
 * and stderr appended to DIR/logs/<name>.log (after a header line naming
 * the command), default signal dispositions and an empty signal mask, no
 * other inherited descriptor.  Writes DIR/run/<name>.pid.  0 or -1. */
int cl_spawn(cl_proc *p, const char *dir);

/* Whether p's process is alive.  A child of this process is reaped here
 * (p->ended and p->status set); for another process, a zombie or a process
 * that is no longer p's binary (pid reused) counts as dead. */
bool cl_alive(cl_proc *p);

/* "exited with status 1", "killed by signal 9 (Killed)", or "exited" when
 * the status is unknown (not our child). */
void cl_describe_end(const cl_proc *p, char *out, size_t cap);

/* Sends SIGTERM to every live process in procs[0..n), waits up to
 * timeout_s for all to end, then SIGKILLs (and reports) the rest and waits
 * for them briefly.  Prints one line per process when verbose.  Returns 0,
 * or -1 if a process could not be stopped. */
int cl_stop_group(cl_proc **procs, size_t n, int timeout_s, bool verbose);

/* Stops every process of procs[0..n) in cluster order (gateway, tablet
 * servers, master, lockd), group by group, then removes their pid files. */
int cl_stop_all(cl_proc *procs, size_t n, const char *dir, int timeout_s, bool verbose);

/* Prints the last `lines` lines of a log file, indented, to f. */
void cl_log_tail(const char *path, int lines, FILE *f);
void cl_log_path(const char *dir, const char *name, char *out, size_t cap);

/* ---- pid files and cluster.info -------------------------------------------- */

/* Loads the DIR/run/NAME.pid files into procs (sorted by cl_proc_cmp, argv empty, addr
 * from cluster.info when known).  Returns the count (0 if DIR/run is
 * missing), or -1 on a malformed file (printed). */
int cl_load_pidfiles(const char *dir, cl_proc *procs, size_t cap);
void cl_remove_pidfile(const char *dir, const char *name);

/* DIR/run/cluster.info: "lock URL" then "proc NAME ADDR" lines. */
int cl_write_info(const char *dir, const char *lock_url, const cl_proc *procs, size_t n);
/* Reads the lock URL (0) or returns -1 if there is no cluster.info. */
int cl_read_lock_url(const char *dir, char *out, size_t cap);
void cl_remove_info(const char *dir);

/* DIR/run/down: made when a `down` starts and left there until the next
 * `up`, so a `run` whose processes end because of it stays quiet. */
void cl_mark_down(const char *dir, bool on);
bool cl_is_down(const char *dir);

/* ---- ports ------------------------------------------------------------------ */

/* Tries to bind 127.0.0.1:port.  0 if free; -1 if not, with a sentence in
 * why ("in use by pid 123 (bt-lockd)"). */
int cl_port_free(uint16_t port, char *why, size_t cap);
/* Whether something accepts TCP connections on 127.0.0.1:port. */
bool cl_port_accepts(uint16_t port);

/* ---- time ------------------------------------------------------------------- */

int64_t cl_now_ms(void);
void cl_sleep_ms(int ms);

#endif

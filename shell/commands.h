/* shell/commands.h: bt-shell's commands (docs/shell.md): the command table
 * and an executor, independent of the terminal, so tools/shell_main.c (the
 * binary) and tests can both drive them.
 *
 * A context (sh_ctx) holds the settings (lock URL, --json, ...), the
 * connections, made lazily by the first command that needs them, and the
 * message of the last error.  sh_exec runs one parsed command (shell/parse.h)
 * and prints its output on ctx->out: an aligned table and a footer
 * "(N rows, T ms)" (shell/format.h), or JSON with no footer when ctx->json.
 * sh_run_text parses a line and runs its commands, printing errors on
 * ctx->err as "bt-shell: line N: put: table t has no family cf9".
 *
 * Not thread-safe: one thread uses a context at a time.
 */
#ifndef BT_SHELL_COMMANDS_H
#define BT_SHELL_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client/bt.h"
#include "lockservice/lock.h"
#include "shell/parse.h"

#define SH_DEFAULT_LOCK "bt://127.0.0.1:7000"

/* sh_exec / sh_run_text results besides BT_OK and the negative BT_E* codes. */
enum {
    SH_QUIT = 1,        /* `quit` ran */
    SH_STOP = 2,        /* sh_run_text: stop now (error with stop_on_error, or no cluster) */
};

typedef struct sh_ctx sh_ctx;

/* Asks a yes/no question (e.g. before `drop`); true for yes. */
typedef bool (*sh_ask_fn)(void *arg, const char *question);

struct sh_ctx {
    /* settings: the caller sets them after sh_ctx_init */
    const char *lock_url;       /* default SH_DEFAULT_LOCK */
    bool json;                  /* --json */
    bool show_lines;            /* errors name the script line */
    bool stop_on_error;         /* sh_run_text: SH_STOP after the first failure */
    bool confirm;               /* ask before `drop` (stdin is a tty and no --yes) */
    sh_ask_fn ask;              /* used when confirm; NULL: answer no */
    void *ask_arg;
    int timeout_ms;             /* per SDK call, retries included; 0: 30000 */
    int probe_ms;               /* the first call that checks the cluster answers; 0: 3000 */
    FILE *out, *err;            /* default stdout, stderr */

    /* state */
    bt_client *client;          /* NULL until a command needs the cluster */
    lk_client *lock;            /* NULL until `lock ...` */
    bool no_cluster;            /* connecting failed: sh_run_text stops */
    int64_t t0_us;              /* start of the running command (monotonic) */
    char msg[2048];             /* the last error, "put: table t has no family cf9" */
};

typedef int (*sh_cmd_fn)(sh_ctx *c, const sh_cmd *cmd);

/* One entry of the command table. */
typedef struct sh_command {
    const char *name;
    int min_args, max_args;     /* words after the name; max -1: no limit */
    bool cluster;               /* needs a connection to the cluster */
    const char *usage;          /* "put <table> <row> <family:qualifier>=<value>... [ts=N]" */
    const char *summary;        /* one line */
    const char *help;           /* the detailed text of `help <command>` */
    sh_cmd_fn fn;
    int complete;               /* what tab completion offers for the first argument
                                   (SH_COMPLETE_*); later arguments: families if the
                                   first is a table */
} sh_command;

enum {
    SH_COMPLETE_NONE = 0,
    SH_COMPLETE_TABLE = 1,      /* first argument is a table; later ones columns */
    SH_COMPLETE_COMMAND = 2,    /* help <command> */
};

/* The command table, in the order `help` lists it. */
const sh_command *sh_commands(size_t *n);
/* The command named name (or an alias such as "exit"), or NULL. */
const sh_command *sh_command_find(const char *name);

void sh_ctx_init(sh_ctx *c);
/* Closes the connections. */
void sh_ctx_close(sh_ctx *c);

/* Connects to ctx->lock_url unless connected: bt_connect, then a first call
 * bounded by probe_ms.  On failure the message (which URL, what failed, "is
 * a cluster running? start one with `make run`...") is in c->msg and
 * c->no_cluster is set. */
int sh_connect(sh_ctx *c);

/* Runs one command.  BT_OK, SH_QUIT, or a negative code with the message in
 * c->msg (prefixed with the command's name). */
int sh_exec(sh_ctx *c, const sh_cmd *cmd);

/* Parses text (line: number of its first line) and runs its commands in
 * order, printing each error on c->err ("bt-shell: line N: msg" when
 * show_lines, else "bt-shell: msg") and counting failures in *failed.
 * Returns BT_OK, SH_QUIT (after `quit`) or SH_STOP (a failure with
 * stop_on_error, or the cluster cannot be reached). */
int sh_run_text(sh_ctx *c, const char *text, size_t len, int line, int *failed);

/* Table names / family names for completion (free with bt_free_names).
 * BT_OK or an error (nothing connected, unknown table...). */
int sh_list_tables(sh_ctx *c, char ***names, size_t *n);
int sh_list_families(sh_ctx *c, const char *table, char ***names, size_t *n);

#endif

/* tools/shell_main.c: bt-shell, the interactive shell of bigtable-c
 * (docs/shell.md).  Parses flags and picks the mode:
 *   -c 'cmd; cmd'          run the commands, then exit
 *   -f FILE / stdin not a tty   run a script line by line (no prompt, no libedit)
 *   otherwise              interactive (tools/shell_edit.c: libedit, history,
 *                          completion)
 * The commands themselves are shell/commands.c. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/status.h"
#include "shell/commands.h"
#include "tools/shell_edit.h"

static void usage(FILE *f)
{
    fprintf(f,
        "NAME\n"
        "    bt-shell - interactive shell of bigtable-c\n"
        "\n"
        "SYNOPSIS\n"
        "    bt-shell [--lock URL] [--json] [--stop-on-error] [-y] [--timeout-ms MS]\n"
        "             [-c 'COMMAND; COMMAND...' | -f FILE]\n"
        "\n"
        "DESCRIPTION\n"
        "    Administers tables and reads and writes data of a bigtable-c cluster\n"
        "    through libbt.  With -c it runs the given commands; with -f, or when\n"
        "    standard input is not a terminal, it runs the script line by line\n"
        "    (no prompt); otherwise it is interactive, with line editing, history\n"
        "    (~/.bt_shell_history, or $BT_SHELL_HISTORY) and tab completion of\n"
        "    commands, tables and families.  Type `help` for the commands; every\n"
        "    one is described in docs/shell.md.\n"
        "\n"
        "OPTIONS\n"
        "    --lock URL          the cluster's lock service: bt://HOST:PORT or\n"
        "                        etcd://HOST:PORT[,...] (default $BT_LOCK, else\n"
        "                        bt://127.0.0.1:7000)\n"
        "    --json              results as JSON (one document per command, no footer)\n"
        "    -c COMMANDS         run these commands (separated by ';') and exit\n"
        "    -f FILE             run the script FILE and exit\n"
        "    --stop-on-error     stop at the first failing command (exit status 1)\n"
        "    -y, --yes           do not ask before `drop`\n"
        "    --timeout-ms MS     deadline of one call, retries included (default 30000)\n"
        "    --help              print this text and exit\n"
        "\n"
        "OUTPUT\n"
        "    Results on stdout: an aligned table and a footer \"(N rows, T ms)\", or\n"
        "    JSON with --json.  Errors on stderr, with the line number in scripts:\n"
        "        bt-shell: line 3: put: table t has no family cf9\n"
        "\n"
        "EXIT STATUS\n"
        "    0 if every command succeeded, 1 if any failed (with --stop-on-error:\n"
        "    at the first), 2 on bad flags, 3 when no cluster answers.\n");
}

static int bad(const char *fmt, const char *arg)
{
    bt_cli_bad("bt-shell", fmt, arg);
    return 2;
}

/* `drop` confirmation when not interactive but stdin is a terminal (-c). */
static bool ask_stdin(void *arg, const char *question)
{
    (void)arg;
    fputs(question, stdout);
    fflush(stdout);
    char buf[64];
    if (!fgets(buf, sizeof buf, stdin)) return false;
    return buf[0] == 'y' || buf[0] == 'Y';
}

static int finish(sh_ctx *c, int rc, int failed)
{
    bool no_cluster = c->no_cluster;
    sh_ctx_close(c);
    fflush(stdout);
    if (no_cluster) return 3;
    (void)rc;
    return failed ? 1 : 0;
}

/* Runs a script from f line by line. */
static int run_script(sh_ctx *c, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, failed = 0, rc = BT_OK;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        rc = sh_run_text(c, line, (size_t)len, lineno, &failed);
        if (rc == SH_QUIT || rc == SH_STOP) break;
    }
    free(line);
    return finish(c, rc, failed);
}

int main(int argc, char **argv)
{
    sh_ctx c;
    sh_ctx_init(&c);
    const char *env_lock = getenv("BT_LOCK");
    if (env_lock && *env_lock) c.lock_url = env_lock;
    const char *command = NULL, *file = NULL;
    bool yes = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { c.json = true; continue; }
        if (!strcmp(a, "--stop-on-error")) { c.stop_on_error = true; continue; }
        if (!strcmp(a, "-y") || !strcmp(a, "--yes")) { yes = true; continue; }
        char name[64];
        const char *v = NULL, *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            v = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
        if (strcmp(name, "--lock") && strcmp(name, "-c") && strcmp(name, "-f") && strcmp(name, "--timeout-ms"))
            return bad("unknown option \"%s\"", a);
        if (!v) {
            if (i + 1 >= argc) return bad("%s needs a value", name);
            v = argv[++i];
        }
        if (!strcmp(name, "--lock")) {
            if (!*v) return bad("%s needs a non-empty value", name);
            c.lock_url = v;
        } else if (!strcmp(name, "-c")) {
            command = v;
        } else if (!strcmp(name, "-f")) {
            file = v;
        } else {
            unsigned long ms;
            if (bt_parse_ulong(v, 100, 3600000, &ms)) return bad("--timeout-ms: \"%s\" is not a number in [100, 3600000]", v);
            c.timeout_ms = (int)ms;
        }
    }
    if (command && file) return bad("%s", "-c and -f exclude each other");
    signal(SIGPIPE, SIG_IGN);
    bool tty = isatty(STDIN_FILENO);
    c.confirm = tty && !yes;
    c.ask = ask_stdin;

    if (command) {
        c.show_lines = true;
        int failed = 0;
        int rc = sh_run_text(&c, command, strlen(command), 1, &failed);
        return finish(&c, rc, failed);
    }
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f) {
            fprintf(stderr, "bt-shell: %s: %s\n", file, strerror(errno));
            return 2;
        }
        c.show_lines = true;
        int code = run_script(&c, f);
        fclose(f);
        return code;
    }
    if (!tty) {
        c.show_lines = true;
        return run_script(&c, stdin);
    }
    /* interactive: check the cluster first, so a typo in --lock shows at once */
    if (sh_connect(&c)) {
        fprintf(stderr, "bt-shell: %s\n", c.msg);
        sh_ctx_close(&c);
        return 3;
    }
    printf("bt-shell: connected to %s; type help for the commands, quit to leave\n", c.lock_url);
    int code = sh_interactive(&c);
    sh_ctx_close(&c);
    return code;
}

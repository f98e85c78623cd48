/* tools/lockd_main.c: bt-lockd, the single-node lock service daemon.  This
 * file only parses flags, prints the listening address and waits for a
 * signal; the service itself is lockservice/lockd_server.c. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "lockservice/lockd.h"
#include "lockservice/lockd_proto.h"

static void usage(FILE *f)
{
    fprintf(f,
        "NAME\n"
        "    bt-lockd - bigtable-c lock service (sessions, small files, locks, watches)\n"
        "\n"
        "SYNOPSIS\n"
        "    bt-lockd --data-dir DIR [--port N] [--bind ADDR] [--lease-ms MS] [--grace-ms MS]\n"
        "\n"
        "DESCRIPTION\n"
        "    Serves the lockservice/lock.h API (URL bt://ADDR:PORT) over the bigtable-c\n"
        "    wire protocol.  The namespace (files, directories, generations, lock\n"
        "    holders, ephemeral owners) and the list of live sessions persist in a\n"
        "    LevelDB under DIR; every change is synced before it is acknowledged.\n"
        "    After a restart, persisted sessions have the grace period to send a\n"
        "    keep-alive; those that do keep their locks and ephemeral files, the\n"
        "    others expire.\n"
        "\n"
        "OPTIONS\n"
        "    --data-dir DIR   where the store lives (required; created if missing)\n"
        "    --port N         TCP port (default 7000; 0 picks a free port)\n"
        "    --bind ADDR      address to listen on (default 127.0.0.1)\n"
        "    --lease-ms MS    default session lease (default 10000); a client may ask\n"
        "                     for another, clamped to [1000, 60000]\n"
        "    --grace-ms MS    time restored sessions have to reconnect after a restart\n"
        "                     (default 60000, the longest lease)\n"
        "    --help           print this text and exit\n"
        "\n"
        "OUTPUT\n"
        "    Once listening, prints \"bt-lockd: listening on ADDR:PORT\" on stdout.\n"
        "    Logs go to stderr (level from BT_LOG_LEVEL: debug|info|warn|error).\n"
        "\n"
        "EXIT STATUS\n"
        "    0 after SIGINT/SIGTERM or --help, 1 if the service cannot start,\n"
        "    2 on bad flags.\n");
}

static int bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "bt-lockd: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n");
    usage(stderr);
    return 2;
}

static int parse_u32(const char *s, unsigned long max, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    if (!s || !*s || *s == '-') return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = (uint32_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    lockd_opts o = {.bind = "127.0.0.1", .port = 7000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        const char *v = NULL;
        const char *eq = strchr(a, '=');
        char name[64];
        if (eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = '\0';
            v = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
        }
        bool known = !strcmp(name, "--port") || !strcmp(name, "--bind") || !strcmp(name, "--data-dir") ||
                     !strcmp(name, "--lease-ms") || !strcmp(name, "--grace-ms");
        if (!known) return bad("unknown option \"%s\"", a);
        if (!v) {
            if (i + 1 >= argc) return bad("%s needs a value", name);
            v = argv[++i];
        }
        uint32_t n = 0;
        if (!strcmp(name, "--port")) {
            if (parse_u32(v, 65535, &n)) return bad("--port: \"%s\" is not a port number (0-65535)", v);
            o.port = (uint16_t)n;
        } else if (!strcmp(name, "--bind")) {
            if (!*v) return bad("--bind: empty address%s", "");
            o.bind = v;
        } else if (!strcmp(name, "--data-dir")) {
            if (!*v) return bad("--data-dir: empty path%s", "");
            o.data_dir = v;
        } else if (!strcmp(name, "--lease-ms")) {
            if (parse_u32(v, LKD_MAX_LEASE_MS, &n) || n < LKD_MIN_LEASE_MS)
                return bad("--lease-ms: \"%s\" is not in [1000, 60000]", v);
            o.lease_ms = n;
        } else {
            if (parse_u32(v, 3600000, &n) || n == 0) return bad("--grace-ms: \"%s\" is not in [1, 3600000]", v);
            o.grace_ms = n;
        }
    }
    if (!o.data_dir) return bad("--data-dir is required%s", "");

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts */
    signal(SIGPIPE, SIG_IGN);

    lockd *d = NULL;
    int rc = lockd_open(&o, &d);
    if (rc) {
        fprintf(stderr, "bt-lockd: cannot start: %s (%s)\n", bt_errmsg(), bt_errname(rc));
        return 1;
    }
    printf("bt-lockd: listening on %s:%u\n", o.bind, (unsigned)lockd_port(d));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "bt-lockd: signal %d, shutting down\n", sig);
    lockd_close(d);
    return 0;
}

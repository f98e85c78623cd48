/* tools/master_main.c: bt-master.  Parses flags, opens the master
 * (master/master.c), waits for /bt/master as a standby, then runs the control
 * loop until SIGINT/SIGTERM. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/status.h"
#include "master/master.h"

static void usage(FILE *f)
{
    fprintf(f,
        "NAME\n"
        "    bt-master - bigtable-c master: assigns tablets, recovers failed servers\n"
        "\n"
        "SYNOPSIS\n"
        "    bt-master --data-dir DIR [--lock URL] [--port N] [--bind ADDR]\n"
        "              [--advertise HOST:PORT] [--lease-ms MS] [--balance-interval-ms MS]\n"
        "              [--gc-interval-s S] [--gc-grace-s S] [--server-timeout-ms MS]\n"
        "\n"
        "DESCRIPTION\n"
        "    One master is active at a time: the one holding /bt/master in the lock\n"
        "    service.  Start several for availability; the others wait as standbys\n"
        "    and one takes over within a lease when the active one dies.  The active\n"
        "    master assigns tablets to the tablet servers registered under\n"
        "    /bt/servers, creates the METADATA table on a new cluster, recovers\n"
        "    the commit logs of dead servers (split per tablet) before assigning\n"
        "    their tablets elsewhere, answers table administration (create,\n"
        "    delete, alter, describe, split, flush, compact, move), balances\n"
        "    tablets across servers and garbage-collects unreferenced SSTables.\n"
        "    Clients never send data through it.\n"
        "\n"
        "OPTIONS\n"
        "    --data-dir DIR          the tablet servers' shared --data-dir (required):\n"
        "                            the master splits dead servers' logs and\n"
        "                            collects garbage there\n"
        "    --lock URL              bt://HOST:PORT or etcd://HOST:PORT[,...]\n"
        "                            (default $BT_LOCK, else bt://127.0.0.1:7000)\n"
        "    --port N                TCP port (default 7001; 0 picks a free port)\n"
        "    --bind ADDR             address to listen on (default 127.0.0.1)\n"
        "    --advertise H:P         address clients use to reach it (default ADDR:PORT)\n"
        "    --lease-ms MS           lock-service session lease (default 10000)\n"
        "    --balance-interval-ms MS  how often to even out tablets per server\n"
        "                            (default 10000; 0 disables balancing)\n"
        "    --gc-interval-s S       how often to collect garbage (default 300;\n"
        "                            0 disables it)\n"
        "    --gc-grace-s S          never delete files younger than S (default 600)\n"
        "    --server-timeout-ms MS  a server that does not answer for MS is declared\n"
        "                            dead (default 3 x lease)\n"
        "    --help                  print this text and exit\n"
        "\n"
        "OUTPUT\n"
        "    \"bt-master: standby on HOST:PORT, waiting for /bt/master\" at start and\n"
        "    \"bt-master: active on HOST:PORT\" once it holds the lock, on stdout.\n"
        "    Logs go to stderr (level from BT_LOG_LEVEL).\n"
        "\n"
        "EXIT STATUS\n"
        "    0 after SIGINT/SIGTERM or --help, 1 if it cannot start, 2 on bad flags,\n"
        "    4 when its lock-service session expired while active (a standby takes\n"
        "    over; restart it to stand by again).\n");
}

static int bad(const char *fmt, const char *arg)
{
    bt_cli_bad("bt-master", fmt, arg);
    return 2;
}

static void *signal_thread(void *arg)
{
    bt_master *m = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "bt-master: signal %d, shutting down\n", sig);
    bt_master_request_stop(m);
    return NULL;
}

int main(int argc, char **argv)
{
    bt_master_options o = { .port = 7001 };
    const char *env_lock = getenv("BT_LOCK");
    o.lock_url = env_lock && *env_lock ? env_lock : "bt://127.0.0.1:7000";
    static const struct { const char *name; unsigned long min, max; } nums[] = {
        { "--port", 0, 65535 }, { "--lease-ms", 200, 600000 }, { "--balance-interval-ms", 0, 86400000 },
        { "--gc-interval-s", 0, 31536000 }, { "--gc-grace-s", 1, 31536000 }, { "--server-timeout-ms", 100, 3600000 },
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        char name[64];
        const char *v = bt_cli_split(a, name, sizeof name);
        int num = -1;
        for (size_t k = 0; k < sizeof nums / sizeof *nums; k++)
            if (!strcmp(name, nums[k].name)) num = (int)k;
        bool str = !strcmp(name, "--data-dir") || !strcmp(name, "--lock") || !strcmp(name, "--bind") ||
                   !strcmp(name, "--advertise");
        if (num < 0 && !str) return bad("unknown option \"%s\"", a);
        if (!v) {
            if (i + 1 >= argc) return bad("%s needs a value", name);
            v = argv[++i];
        }
        if (str) {
            if (!*v) return bad("%s needs a non-empty value", name);
            if (!strcmp(name, "--data-dir")) o.data_dir = v;
            else if (!strcmp(name, "--lock")) o.lock_url = v;
            else if (!strcmp(name, "--bind")) o.bind = v;
            else o.advertise = v;
            continue;
        }
        unsigned long n;
        if (bt_parse_ulong(v, nums[num].min, nums[num].max, &n)) {
            fprintf(stderr, "bt-master: %s: \"%s\" is not a number in [%lu, %lu]\n(see bt-master --help)\n",
                    name, v, nums[num].min, nums[num].max);
            return 2;
        }
        switch (num) {
        case 0: o.port = (uint16_t)n; break;
        case 1: o.lease_ms = (uint32_t)n; break;
        case 2: o.balance_interval_ms = n ? (uint32_t)n : UINT32_MAX; break;
        case 3: o.gc_interval_s = n ? (uint32_t)n : UINT32_MAX; break;
        case 4: o.gc_grace_s = (uint32_t)n; break;
        default: o.server_timeout_ms = (uint32_t)n; break;
        }
    }
    if (!o.data_dir) return bad("%s is required", "--data-dir");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits it; one sigwaits */
    signal(SIGPIPE, SIG_IGN);
    bt_master *m = NULL;
    int rc = bt_master_open(&o, &m);
    if (rc) {
        fprintf(stderr, "bt-master: cannot start: %s: %s\n", bt_errname(rc), bt_errmsg());
        return 1;
    }
    pthread_t sig;
    pthread_create(&sig, NULL, signal_thread, m);
    pthread_detach(sig);
    int code = bt_master_run(m);
    bt_master_close(m);
    return code;
}

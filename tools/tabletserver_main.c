/* tools/tabletserver_main.c: bt-tabletserver.  Parses flags, raises the
 * open-file limit, starts the server (tabletserver/server.c), prints the
 * address line and supervises until SIGINT/SIGTERM or until the master
 * deletes this server's lock file. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/cli.h"
#include "common/status.h"
#include "tabletserver/server.h"
#include "tools/tabletserver_split.h"

static void usage(FILE *f)
{
    fprintf(f,
        "NAME\n"
        "    bt-tabletserver - bigtable-c tablet server\n"
        "\n"
        "SYNOPSIS\n"
        "    bt-tabletserver --data-dir DIR [--lock URL] [--port N] [--bind ADDR]\n"
        "                    [--advertise HOST:PORT] [--id ID] [--memtable-mb N]\n"
        "                    [--cache-mb N] [--durability sync|group|none] [--lease-ms MS]\n"
        "                    [--split-mb N]\n"
        "\n"
        "DESCRIPTION\n"
        "    Serves tablets (sorted row ranges of tables) over the bigtable-c wire\n"
        "    protocol: reads, writes, scans, conditional writes, flushes,\n"
        "    compactions and splits.  The master assigns tablets with the\n"
        "    load-tablet RPC.  The server registers in the lock service as\n"
        "    /bt/servers/ID, holding that file's lock; it serves only while its\n"
        "    lock-service lease is valid, stops serving when its session expires\n"
        "    and exits when the file is deleted.  All tablets share one commit log,\n"
        "    a new one per registration: DIR/servers/ID/log-<start time in us, hex>,\n"
        "    named in the lock file; the master recovers the logs of dead servers.\n"
        "\n"
        "OPTIONS\n"
        "    --data-dir DIR     root of the tablet directories, shared by every tablet\n"
        "                       server of the cluster (required; created if missing)\n"
        "    --lock URL         lock service: bt://HOST:PORT or etcd://HOST:PORT[,...]\n"
        "                       (default $BT_LOCK, else bt://127.0.0.1:7000)\n"
        "    --port N           TCP port (default 7100; 0 picks a free port)\n"
        "    --bind ADDR        address to listen on (default 127.0.0.1)\n"
        "    --advertise H:P    address other processes use to reach this server\n"
        "                       (default ADDR:PORT)\n"
        "    --id ID            server id, [A-Za-z0-9_.-]{1,64} (default ADDR-PORT);\n"
        "                       keep it stable across restarts so the master can\n"
        "                       tell a restart from a new server\n"
        "    --memtable-mb N    memtable size that triggers a flush, per tablet\n"
        "                       (default 64)\n"
        "    --cache-mb N       block cache size (default 256)\n"
        "    --durability M     sync: a write is acknowledged once fsynced (default);\n"
        "                       group: once in the page cache, fsynced every 5 ms;\n"
        "                       none: once in the page cache\n"
        "    --lease-ms MS      lock-service session lease (default 10000)\n"
        "    --scanner-lease-ms MS  idle scanners are closed after MS (default 60000)\n"
        "    --split-mb N       split a tablet (not of METADATA) once its SSTables\n"
        "                       pass N MiB (default 256; 0 = never)\n"
        "    --help             print this text and exit\n"
        "\n"
        "OUTPUT\n"
        "    Once serving, prints \"bt-tabletserver: serving on HOST:PORT as ID\" on\n"
        "    stdout.  Logs go to stderr (level from BT_LOG_LEVEL).\n"
        "\n"
        "EXIT STATUS\n"
        "    0 after SIGINT/SIGTERM (tablets flushed, lock file deleted) or --help,\n"
        "    1 if the server cannot start, 2 on bad flags, 3 when the lock file was\n"
        "    deleted (the master declared this server dead).\n");
}

static int bad(const char *fmt, const char *arg)
{
    bt_cli_bad("bt-tabletserver", fmt, arg);
    return 2;
}

static void *signal_thread(void *arg)
{
    ts_server *s = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "bt-tabletserver: signal %d, shutting down\n", sig);
    ts_server_request_stop(s);
    return NULL;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    ts_server_options o = { .port = 7100, .split_bytes = (uint64_t)256 << 20 };
    const char *env_lock = getenv("BT_LOCK");
    o.lock_url = env_lock && *env_lock ? env_lock : "bt://127.0.0.1:7000";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        char name[64];
        const char *v = bt_cli_split(a, name, sizeof name);
        static const char *known[] = { "--data-dir", "--lock", "--port", "--bind", "--advertise", "--id",
                                       "--memtable-mb", "--cache-mb", "--durability", "--lease-ms",
                                       "--scanner-lease-ms", "--split-mb" };
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof *known; k++) ok |= !strcmp(name, known[k]);
        if (!ok) return bad("unknown option \"%s\"", a);
        if (!v) {
            if (i + 1 >= argc) return bad("%s needs a value", name);
            v = argv[++i];
        }
        unsigned long n = 0;
        if (!strcmp(name, "--port")) {
            if (bt_parse_ulong(v, 0, 65535, &n)) return bad("--port: \"%s\" is not a port number (0-65535)", v);
            o.port = (uint16_t)n;
        } else if (!strcmp(name, "--memtable-mb")) {
            if (bt_parse_ulong(v, 1, 4096, &n)) return bad("--memtable-mb: \"%s\" is not in [1, 4096]", v);
            o.memtable_bytes = (size_t)n << 20;
        } else if (!strcmp(name, "--cache-mb")) {
            if (bt_parse_ulong(v, 1, 1 << 20, &n)) return bad("--cache-mb: \"%s\" is not in [1, 1048576]", v);
            o.cache_bytes = (size_t)n << 20;
        } else if (!strcmp(name, "--lease-ms")) {
            if (bt_parse_ulong(v, 1000, 60000, &n)) return bad("--lease-ms: \"%s\" is not in [1000, 60000]", v);
            o.lease_ms = (uint32_t)n;
        } else if (!strcmp(name, "--scanner-lease-ms")) {
            if (bt_parse_ulong(v, 100, 3600000, &n)) return bad("--scanner-lease-ms: \"%s\" is not in [100, 3600000]", v);
            o.scanner_lease_ms = (uint32_t)n;
        } else if (!strcmp(name, "--split-mb")) {
            if (bt_parse_ulong(v, 0, 1 << 20, &n)) return bad("--split-mb: \"%s\" is not in [0, 1048576]", v);
            o.split_bytes = (uint64_t)n << 20;
        } else if (!strcmp(name, "--durability")) {
            int d = ts_durability_parse(v);
            if (d < 0) return bad("--durability: \"%s\" is not sync, group or none", v);
            o.durability = (ts_durability)d;
        } else if (!*v) {
            return bad("%s: empty value", name);
        } else if (!strcmp(name, "--data-dir")) {
            o.data_dir = v;
        } else if (!strcmp(name, "--lock")) {
            o.lock_url = v;
        } else if (!strcmp(name, "--bind")) {
            o.bind = v;
        } else if (!strcmp(name, "--advertise")) {
            o.advertise = v;
        } else {
            o.id = v;
        }
    }
    if (!o.data_dir) return bad("--data-dir is required%s", "");

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread starts */
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    ts_split_committer *sc = NULL;
    if (ts_split_committer_new(o.lock_url, &sc)) {
        fprintf(stderr, "bt-tabletserver: out of memory\n");
        return 1;
    }
    o.commit_split = ts_split_commit;
    o.commit_arg = sc;
    ts_server *s = NULL;
    int rc = ts_server_open(&o, &s);
    if (rc) {
        fprintf(stderr, "bt-tabletserver: cannot start: %s (%s)\n", bt_errmsg(), bt_errname(rc));
        ts_split_committer_free(sc);
        return 1;
    }
    ts_split_committer_set_server(sc, s);
    printf("bt-tabletserver: serving on %s as %s\n", ts_server_address(s), ts_server_id(s));
    fflush(stdout);
    pthread_t th;
    if (pthread_create(&th, NULL, signal_thread, s)) {
        fprintf(stderr, "bt-tabletserver: cannot start the signal thread\n");
        ts_server_close(s);
        ts_split_committer_free(sc);
        return 1;
    }
    pthread_detach(th);
    int code = ts_server_run(s);
    ts_server_close(s);
    ts_split_committer_free(sc);
    return code;
}

/* tools/gateway_main.c: bt-gateway, the HTTP JSON gateway (docs/gateway.md).
 * Parses flags, connects to the cluster through libbt, starts the HTTP
 * server (gateway/http.c) with the /v1 API (gateway/api.c) and serves until
 * SIGINT/SIGTERM. */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/bt.h"
#include "common/cli.h"
#include "common/status.h"
#include "gateway/api.h"
#include "gateway/gw_obs.h"
#include "gateway/http.h"

static void usage(FILE *f)
{
    fprintf(f,
        "NAME\n"
        "    bt-gateway - HTTP JSON gateway of bigtable-c\n"
        "\n"
        "SYNOPSIS\n"
        "    bt-gateway [--lock URL] [--host ADDR] [--port N] [--threads N]\n"
        "               [--max-body-mb N] [--max-header-kb N] [--max-depth N]\n"
        "               [--max-connections N] [--idle-timeout-s S] [--timeout-ms MS]\n"
        "\n"
        "DESCRIPTION\n"
        "    Serves the cluster over HTTP/1.1 and JSON: tables, rows, scans (paged\n"
        "    or streamed as NDJSON), batch mutations, check-and-mutate,\n"
        "    read-modify-write, cluster status, /healthz, Prometheus /metrics and a\n"
        "    status page at /.  Every endpoint is described in docs/gateway.md.\n"
        "    Requests are served by --threads event-loop threads; connections are\n"
        "    kept alive.\n"
        "\n"
        "OPTIONS\n"
        "    --lock URL             the cluster's lock service: bt://HOST:PORT or\n"
        "                           etcd://HOST:PORT[,...] (default $BT_LOCK, else\n"
        "                           bt://127.0.0.1:7000)\n"
        "    --host ADDR            IPv4 address to listen on (default 127.0.0.1)\n"
        "    --port N               TCP port (default 8080; 0 picks a free port)\n"
        "    --threads N            event-loop threads, i.e. requests served at once\n"
        "                           (default 64)\n"
        "    --max-body-mb N        request body limit, MiB (default 16; over: 413)\n"
        "    --max-header-kb N      request line + headers limit, KiB (default 16;\n"
        "                           over: 400)\n"
        "    --max-depth N          JSON nesting limit of a body, at most 1000 (the\n"
        "                           JSON parser's own limit; default 64; over: 400)\n"
        "    --max-connections N    open connections (default 1024; over: 503, closed)\n"
        "    --idle-timeout-s S     close a connection idle or stalled for S (default 60)\n"
        "    --timeout-ms MS        deadline of one cluster call, retries included\n"
        "                           (default 10000; past it: 503)\n"
        "    --help                 print this text and exit\n"
        "\n"
        "OUTPUT\n"
        "    \"bt-gateway: listening on HOST:PORT\" on stderr once it serves.\n"
        "    Logs go to stderr.\n"
        "\n"
        "EXIT STATUS\n"
        "    0 after SIGINT/SIGTERM or --help, 1 if it cannot start, 2 on bad flags.\n");
}

static int bad(const char *fmt, const char *arg)
{
    bt_cli_bad("bt-gateway", fmt, arg);
    return 2;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
    const char *env_lock = getenv("BT_LOCK");
    const char *lock = env_lock && *env_lock ? env_lock : "bt://127.0.0.1:7000";
    const char *host = "127.0.0.1";
    unsigned long port = 8080, threads = 64, body_mb = 16, header_kb = 16, depth = 64, conns = 1024, idle = 60,
                  timeout_ms = 10000;
    static const struct { const char *name; unsigned long min, max; } nums[] = {
        {"--port", 0, 65535}, {"--threads", 1, 256}, {"--max-body-mb", 1, 1024}, {"--max-header-kb", 1, 1024},
        {"--max-depth", 1, 1000}, {"--max-connections", 1, 1000000}, {"--idle-timeout-s", 1, 86400},
        {"--timeout-ms", 100, 3600000},
    };
    unsigned long *dst[] = {&port, &threads, &body_mb, &header_kb, &depth, &conns, &idle, &timeout_ms};
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
        bool str = !strcmp(name, "--lock") || !strcmp(name, "--host");
        if (num < 0 && !str) return bad("unknown option \"%s\"", a);
        if (!v) {
            if (i + 1 >= argc) return bad("%s needs a value", name);
            v = argv[++i];
        }
        if (str) {
            if (!*v) return bad("%s needs a non-empty value", name);
            if (!strcmp(name, "--lock")) lock = v;
            else host = v;
            continue;
        }
        if (bt_parse_ulong(v, nums[num].min, nums[num].max, dst[num])) {
            fprintf(stderr, "bt-gateway: %s: \"%s\" is not a number in [%lu, %lu]\n(see bt-gateway --help)\n", name,
                    v, nums[num].min, nums[num].max);
            return 2;
        }
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits it; one sigwaits */
    signal(SIGPIPE, SIG_IGN);

    /* every loop thread makes one blocking call at a time: its own
     * connections save two thread switches per call */
    bt_client_options co = {.timeout_ms = (int)timeout_ms,
                            .rpc_timeout_ms = timeout_ms < 10000 ? (int)timeout_ms : 10000,
                            .thread_connections = true};
    bt_client *c = NULL;
    int rc = bt_connect(lock, &co, &c);
    if (rc) {
        fprintf(stderr, "bt-gateway: cannot connect to %s: %s: %s\n", lock, bt_errname(rc), bt_errmsg());
        return 1;
    }
    gw_metrics *m = gw_metrics_new();
    gw_view *view = gw_view_new(c, 1000);
    char addr[96] = "";
    gw_api_options ao = {.max_depth = (int)depth, .gateway_address = addr, .lock_url = lock, .started_us = wall_us()};
    gw_api *api = m && view ? gw_api_new(c, m, view, &ao) : NULL;
    gw_http *h = NULL;
    if (!api) {
        rc = BT_ENOMEM;
    } else {
        gw_http_options ho = {.host = host, .port = (uint16_t)port, .threads = (int)threads,
                              .max_body = (size_t)body_mb << 20, .max_header = (size_t)header_kb << 10,
                              .max_connections = (int)conns, .idle_timeout_s = (int)idle, .metrics = m,
                              .handler = gw_api_handle, .handler_arg = api,
                              .address_out = addr, .address_len = sizeof addr};
        /* the address shown on the status page (ao.gateway_address points at
         * addr) is known once bound: gw_http_start fills addr before its loop
         * threads start, so they never read it while it is written */
        rc = gw_http_start(&ho, &h);
    }
    if (rc) {
        fprintf(stderr, "bt-gateway: cannot start: %s: %s\n", bt_errname(rc), bt_errmsg());
        gw_api_free(api);
        gw_view_free(view);
        gw_metrics_free(m);
        bt_close(c);
        return 1;
    }
    fprintf(stderr, "bt-gateway: listening on %s\n", addr);
    fflush(stderr);
    int sig = 0;
    sigwait(&set, &sig); /* the loop threads serve meanwhile */
    fprintf(stderr, "bt-gateway: signal %d, shutting down\n", sig);
    gw_http_stop(h);
    gw_http_free(h);
    gw_api_free(api);
    gw_view_free(view);
    gw_metrics_free(m);
    bt_close(c);
    return 0;
}

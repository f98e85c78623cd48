/* tools/bench_server.h: `bt-bench server` (tools/bench_server.c), the tablet
 * server benchmark, called from bt-bench's main with the whole argv. */
#ifndef BT_TOOLS_BENCH_SERVER_H
#define BT_TOOLS_BENCH_SERVER_H

/* argv[1] is "server".  Returns the process exit status. */
int bench_server_main(int argc, char **argv);

#endif

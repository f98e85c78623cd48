/* tools/bench_server.h: `bt-bench server` (tools/bench_server.c), the tablet
 * server benchmark, called from bt-bench's main with the whole argv. */
#ifndef BT_TOOLS_BENCH_SERVER_H
#define BT_TOOLS_BENCH_SERVER_H

#include <stdint.h>

/* argv[1] is "server".  Returns the process exit status. */
int bench_server_main(int argc, char **argv);

/* Shared with bt-bench sdk (tools/bench_sdk.c): CLOCK_MONOTONIC in
 * microseconds, and the splitmix64 finaliser that makes the key sequences. */
int64_t bench_now_us(void);
uint64_t bench_mix64(uint64_t z);

#endif

/* tools/bench_sdk.h: `bt-bench sdk` (tools/bench_sdk.c), single-row
 * operations through the public SDK (libbt) against a running cluster,
 * called from bt-bench's main with the whole argv. */
#ifndef BT_TOOLS_BENCH_SDK_H
#define BT_TOOLS_BENCH_SDK_H

/* argv[1] is "sdk".  Returns the process exit status. */
int bench_sdk_main(int argc, char **argv);

#endif

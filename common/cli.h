/* common/cli.h: small helpers the command-line tools share. */
#ifndef BT_COMMON_CLI_H
#define BT_COMMON_CLI_H

/* Parses a decimal flag value in [min, max] ("-5", "", "12x" and overflow
 * are refused).  0 and *out set, or -1. */
int bt_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out);

#include <stddef.h>

/* Splits a command-line argument "--name=value" into its name (copied into
 * name, cap bytes) and value (returned, pointing into arg).  An argument
 * without '=' (or whose name would not fit) is copied whole and NULL is
 * returned: the value, if the option takes one, is the next argument. */
const char *bt_cli_split(const char *arg, char *name, size_t cap);

/* Prints "PROG: <fmt with arg>" and "(see PROG --help)" on stderr: a tool's
 * message for a bad flag (it then exits with status 2). */
void bt_cli_bad(const char *prog, const char *fmt, const char *arg);

#endif

/* common/cli.h: small helpers the command-line tools share. */
#ifndef BT_COMMON_CLI_H
#define BT_COMMON_CLI_H

/* Parses a decimal flag value in [min, max] ("-5", "", "12x" and overflow
 * are refused).  0 and *out set, or -1. */
int bt_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out);

#endif

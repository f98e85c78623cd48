/* common/cli.c: small helpers the command-line tools share (common/cli.h). */
#include "common/cli.h"

#include <errno.h>
#include <stdlib.h>

int bt_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    errno = 0;
    if (!s || !*s || *s == '-') return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

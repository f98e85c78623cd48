/* common/cli.c: small helpers the command-line tools share (common/cli.h). */
#include "common/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

const char *bt_cli_split(const char *arg, char *name, size_t cap)
{
    const char *eq = strchr(arg, '=');
    if (eq && (size_t)(eq - arg) < cap) {
        memcpy(name, arg, (size_t)(eq - arg));
        name[eq - arg] = '\0';
        return eq + 1;
    }
    snprintf(name, cap, "%s", arg);
    return NULL;
}

void bt_cli_bad(const char *prog, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see %s --help)\n", prog);
}

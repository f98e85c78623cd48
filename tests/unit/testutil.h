/* tests/unit/testutil.h: small helpers shared by the unit test files (not a
 * test binary of its own: only test_*.c are).  Header-only; every function is
 * static and marked unused so each file takes what it needs under
 * -Wall -Werror.  No Criterion dependency, so fixtures that must not assert
 * (atexit handlers, forked helpers) can use it too. */
#ifndef BT_TESTS_TESTUTIL_H
#define BT_TESTS_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static __attribute__((unused)) int test_rm_entry(const char *path, const struct stat *st, int flag,
                                                 struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path); /* best effort: keep walking past an entry that will not go */
    return 0;
}

/* Removes `path` and everything under it (like rm -rf, without a shell);
 * symlinks are removed, not followed.  Missing paths are fine. */
static __attribute__((unused)) void test_rm_rf(const char *path)
{
    nftw(path, test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif

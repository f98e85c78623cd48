#!/bin/sh
# Checks `make install` the way a user meets it: installs BUILD's binaries,
# libbt.a, <bt/bt.h> and bt.pc into a temporary DESTDIR with PREFIX=/usr,
# then compiles and links examples/hello.c using nothing but
#     pkg-config --cflags --libs bt
# pointed at that tree (PKG_CONFIG_PATH + PKG_CONFIG_SYSROOT_DIR), and runs
# it against a port where nothing listens (it must fail cleanly, exit 1).
#
#   scripts/check-install.sh [BUILD]      (BUILD defaults to build; must be built)
#
# Run by tests/unit/test_cluster_tool.c (cluster_tool/install), so it counts
# in `make test`.  Exit 0 when everything holds, 1 with the reason otherwise.
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bt-check-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
dest=$tmp/root

fail() {
    echo "check-install: $*" >&2
    exit 1
}

# A make started from a test inherits the outer make's jobserver settings.
unset MAKEFLAGS MFLAGS MAKELEVEL || true
# -o all: install what BUILD holds (make test has just built it) instead of
# rebuilding the whole tree from inside a test.
make -C "$root" --no-print-directory -s BUILD="$build" -o all install DESTDIR="$dest" PREFIX=/usr \
    >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; fail "make install failed"; }

# The layout users rely on, and nothing internal.
for f in usr/bin/bt-cluster usr/bin/bt-lockd usr/bin/bt-tabletserver usr/lib/libbt.a \
         usr/include/bt/bt.h usr/include/bt/bt_status.h usr/lib/pkgconfig/bt.pc; do
    [ -e "$dest/$f" ] || fail "make install did not install /$f"
done
[ ! -e "$dest/usr/include/bigtable-c" ] || fail "internal headers installed under /usr/include/bigtable-c"
case "$build" in /*) build_dir=$build ;; *) build_dir=$root/$build ;; esac
cmp -s "$dest/usr/lib/libbt.a" "$build_dir/lib/libbtcore.a" || fail "libbt.a differs from $build/lib/libbtcore.a"
grep -q '^prefix=/usr$' "$dest/usr/lib/pkgconfig/bt.pc" || fail "bt.pc does not say prefix=/usr"

flags=$(PKG_CONFIG_PATH="$dest/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest" \
        pkg-config --cflags --libs bt) || fail "pkg-config does not find bt.pc"
case "$flags" in
    *"-I$dest/usr/include"*"-L$dest/usr/lib"*"-lbt"*) ;;
    *) fail "pkg-config --cflags --libs bt gave \"$flags\": no -I/-L inside $dest" ;;
esac

# A library built with a sanitizer needs the same runtime in the program.
san=""
if grep -qa __tsan_init "$dest/usr/lib/libbt.a"; then
    san="-fsanitize=thread"
elif grep -qa __asan_init "$dest/usr/lib/libbt.a"; then
    san="-fsanitize=address,undefined"
fi

# Compile outside the tree so only the installed headers can be found, and
# check that <bt/bt.h> came from the installed copy.
cp "$root/examples/hello.c" "$tmp/hello.c"
cd "$tmp"
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror $san hello.c $flags -o hello >"$tmp/cc.log" 2>&1 ||
    { cat "$tmp/cc.log" >&2; fail "examples/hello.c does not compile and link with: cc hello.c $flags"; }
# shellcheck disable=SC2086
cc -std=c11 -M $flags hello.c 2>/dev/null | grep -q "$dest/usr/include/bt/bt.h" ||
    fail "<bt/bt.h> did not resolve to the installed $dest/usr/include/bt/bt.h"

# The program starts and reports an unreachable cluster as an error.
rc=0
BT_LOCK=bt://127.0.0.1:1 timeout 30 ./hello >"$tmp/run.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || { cat "$tmp/run.out" >&2; fail "hello against no cluster exited $rc, expected 1"; }
grep -q '^hello: ' "$tmp/run.out" || { cat "$tmp/run.out" >&2; fail "hello printed no error message"; }

echo "check-install: ok (make install PREFIX=/usr, pkg-config --cflags --libs bt, examples/hello.c builds and runs)"

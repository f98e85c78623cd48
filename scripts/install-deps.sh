#!/bin/sh
# Installs the Debian packages that the build, the tests and `make run` need.
# Idempotent: when every package is present it prints nothing and exits 0.
# Usage: scripts/install-deps.sh [--check]
#   --check   only report what is missing (exit 1 if anything is)
set -eu

PKGS="build-essential pkg-config libleveldb-dev libsnappy-dev libcurl4-openssl-dev
libcjson-dev libcriterion-dev libxxhash-dev libevent-dev libedit-dev
clang libclang-rt-dev etcd-server wrk chromium"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

if [ "${1:-}" = "--check" ]; then
    echo "missing packages:$missing" >&2
    exit 1
fi

echo "install-deps: installing:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo"
    else
        echo "install-deps: not root. Run this, then re-run make:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
        exit 1
    fi
else
    SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $missing >/dev/null
echo "install-deps: done" >&2

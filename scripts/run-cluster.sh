#!/bin/sh
# `make run`: runs a local cluster in the foreground (make has built
# everything and installed missing packages before this runs).
#
#   scripts/run-cluster.sh [BUILD [DIR [bt-cluster run options...]]]
#
# BUILD defaults to build, DIR to ./var.  bt-cluster starts bt-lockd,
# bt-master, the tablet servers and (when built) bt-gateway as daemons with
# their logs in DIR/logs, prints where each listens, then waits: Ctrl-C (or
# SIGTERM) stops every process cleanly, the data stays in DIR for the next
# run.  See `bt-cluster run --help` and docs/operations.md.
set -eu
build=${1:-build}
dir=${2:-./var}
[ $# -gt 2 ] && shift 2 || set --
if [ ! -x "$build/bin/bt-cluster" ]; then
    echo "run-cluster: $build/bin/bt-cluster is missing; build it with: make BUILD=$build" >&2
    exit 1
fi
exec "$build/bin/bt-cluster" run --dir "$dir" "$@"

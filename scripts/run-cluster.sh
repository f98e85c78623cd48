#!/bin/sh
# `make run`: builds (done by make before this runs) and starts a local cluster.
#
# The cluster binaries (bt-lockd, bt-master, bt-tabletserver, bt-gateway,
# bt-cluster) do not exist yet: this step of the project delivers the storage
# engine only.  Until they do, this script says so plainly and shows what can
# be run today, instead of pretending to start anything.
set -eu
build=${1:-build}
if [ -x "$build/bin/bt-cluster" ]; then
    exec "$build/bin/bt-cluster" start
fi
cat <<MSG
bigtable-c: built into $build/.

The local cluster (bt-lockd, bt-master, bt-tabletserver, bt-gateway) is not
part of this build yet: it arrives with the lock service and tablet server
issues. Nothing has been started.

What you can run today:
  $build/bin/bt-bench embedded --engine tablet  --n 100000 --dir /tmp/bt-bench
  $build/bin/bt-bench embedded --engine leveldb --n 100000 --dir /tmp/bt-bench
  make test        # the unit and integration suite
MSG

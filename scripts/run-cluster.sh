#!/bin/sh
# `make run`: builds (done by make before this runs) and starts a local cluster.
#
# The cluster binaries (bt-master, bt-tabletserver, bt-gateway, bt-cluster)
# do not exist yet: so far the project has the storage engine and the lock
# service.  Until they do, this script says so plainly and shows what can
# be run today, instead of pretending to start anything.
set -eu
build=${1:-build}
if [ -x "$build/bin/bt-cluster" ]; then
    exec "$build/bin/bt-cluster" start
fi
cat <<MSG
bigtable-c: built into $build/.

The local cluster (bt-master, bt-tabletserver, bt-gateway) is not part of
this build yet: it arrives with the tablet server and master issues, so
nothing has been started.

What you can run today:
  $build/bin/bt-lockd --data-dir /tmp/bt-lockd          # the lock service, port 7000
  $build/bin/bt-bench embedded --engine tablet  --n 100000 --dir /tmp/bt-bench
  $build/bin/bt-bench embedded --engine leveldb --n 100000 --dir /tmp/bt-bench
  make test        # the unit and integration suite
MSG

#!/usr/bin/env bash
# scripts/bench-gateway.sh: single-row GET and PUT through bt-gateway (wrk,
# keep-alive) against the same workload through the SDK (bt-bench sdk), plus
# bt-bench server for reference.  Figures in docs/performance.md, "Gateway".
#
#   scripts/bench-gateway.sh [BUILD]          (BUILD: build directory, default build)
#
# Environment (defaults in brackets):
#   DURATION [20s]    each wrk run          CONNS [16]     wrk connections
#   WRK_THREADS [2]   wrk threads           SDK_THREADS [16] bt-bench sdk threads
#   SDK_N [100000]    bt-bench sdk operations per run
#   ROWS [100000]     rows preloaded (GETs pick among them)
#   VALUE [100]       value bytes           SERVERS [1]    tablet servers
#   DURABILITY [sync] the servers' durability (sync, group, none)
#   ROUNDS [1]        repetitions of the four runs
#   LOCK, GATEWAY     use a running cluster (bt://host:port, http://host:port)
#                     instead of starting one; TABLE [gwbench] its table
#   SERVER_BENCH [1]  also run bt-bench server (own bt-lockd + tablet server)
#   GW_THREADS        start a second bt-gateway with --threads GW_THREADS on
#                     the same cluster and drive that one (bt-cluster's
#                     gateway runs with its default, 64 loop threads)
#   PERF [0]          1: record the gateway with perf during the wrk runs
#                     (reports in ./perf-gateway-get.txt, -put.txt)
#
# Without LOCK/GATEWAY a cluster (bt-lockd, bt-master, SERVERS tablet
# servers, bt-gateway) starts with `bt-cluster up` on free ports of
# 127.0.0.1 in a temporary directory, removed at the end.
set -euo pipefail

BUILD=${1:-build}
BIN=$(cd "$(dirname "$0")/.." && pwd)/$BUILD/bin
LUA=$(cd "$(dirname "$0")" && pwd)/wrk/gateway.lua
DURATION=${DURATION:-20s}
CONNS=${CONNS:-16}
WRK_THREADS=${WRK_THREADS:-2}
SDK_THREADS=${SDK_THREADS:-16}
SDK_N=${SDK_N:-100000}
ROWS=${ROWS:-100000}
VALUE=${VALUE:-100}
SERVERS=${SERVERS:-1}
DURABILITY=${DURABILITY:-sync}
ROUNDS=${ROUNDS:-1}
TABLE=${TABLE:-gwbench}
SERVER_BENCH=${SERVER_BENCH:-1}
PERF=${PERF:-0}

for b in bt-cluster bt-bench bt-gateway bt-lockd bt-tabletserver; do
    [ -x "$BIN/$b" ] || { echo "bench-gateway: $BIN/$b is not built (make BUILD=$BUILD)" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "bench-gateway: wrk is missing (scripts/install-deps.sh)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/bt-bench-gateway-XXXXXX)
CLUSTER_UP=0
SB_PIDS=()
cleanup() {
    if [ "$CLUSTER_UP" = 1 ]; then "$BIN/bt-cluster" down --dir "$TMP/cluster" >/dev/null 2>&1 || true; fi
    for p in "${SB_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${SB_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

# n free TCP ports of 127.0.0.1 (consecutive when CONSEC=1), one per line
free_ports() {
    python3 - "$1" "${2:-0}" <<'EOF'
import socket, sys, random
n, consec = int(sys.argv[1]), sys.argv[2] == "1"
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(1000):
    base = random.randrange(20000, 60000 - n)
    ports = list(range(base, base + n)) if consec else random.sample(range(20000, 60000), n)
    if all(free(p) for p in ports):
        print("\n".join(map(str, ports))); break
EOF
}

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) CPUs, build $BUILD"
if [ -z "${LOCK:-}" ]; then
    read -r LP MP GP < <(free_ports 3 | paste -sd' ')
    SP=$(free_ports "$SERVERS" 1 | head -1)
    "$BIN/bt-cluster" up --dir "$TMP/cluster" --servers "$SERVERS" --lock-port "$LP" --master-port "$MP" \
        --server-port "$SP" --gateway-port "$GP" --durability "$DURABILITY" >"$TMP/up.log" 2>&1 \
        || { cat "$TMP/up.log" >&2; exit 1; }
    CLUSTER_UP=1
    LOCK=bt://127.0.0.1:$LP
    GATEWAY=http://127.0.0.1:$GP
    echo "cluster: $SERVERS tablet server(s), durability $DURABILITY, lock $LOCK, gateway $GATEWAY"
fi
: "${GATEWAY:?set GATEWAY with LOCK}"
GW_PID=""
if [ -n "${GW_THREADS:-}" ]; then
    GWP=$(free_ports 1)
    "$BIN/bt-gateway" --lock "$LOCK" --port "$GWP" --threads "$GW_THREADS" >"$TMP/gateway2.log" 2>&1 &
    GW_PID=$!
    SB_PIDS+=("$GW_PID")
    GATEWAY=http://127.0.0.1:$GWP
    for _ in $(seq 100); do grep -q "listening on" "$TMP/gateway2.log" 2>/dev/null && break; sleep 0.1; done
    echo "\$ bt-gateway --lock $LOCK --port $GWP --threads $GW_THREADS"
elif [ -f "$TMP/cluster/run/gateway.pid" ]; then
    GW_PID=$(cat "$TMP/cluster/run/gateway.pid")
fi
curl -sf "$GATEWAY/healthz" >/dev/null || { echo "bench-gateway: $GATEWAY/healthz does not answer" >&2; exit 1; }

echo "-- preload: $ROWS rows of $VALUE B into $TABLE"
echo "\$ bt-bench sdk --lock $LOCK --table $TABLE --create --workload put --threads 16 --n $ROWS --value-size $VALUE"
"$BIN/bt-bench" sdk --lock "$LOCK" --table "$TABLE" --create --workload put --threads 16 --n "$ROWS" \
    --value-size "$VALUE"

[ "$PERF" = 1 ] || GW_PID=""

run_wrk() {     # mode first
    local cmd=(wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$LUA" "$GATEWAY" -- "$1" "$TABLE" "$ROWS" "$VALUE" "$2")
    echo "\$ ${cmd[*]}"
    if [ -n "$GW_PID" ]; then
        perf record -g -o "$TMP/perf-$1.data" -p "$GW_PID" -- sleep "${DURATION%s}" >/dev/null 2>&1 &
        local perf_pid=$!
        "${cmd[@]}" | tee "$TMP/wrk-$1.out"
        wait "$perf_pid" || true
        perf report -i "$TMP/perf-$1.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null \
            | grep -v '^$' | head -60 > "perf-gateway-$1.txt" || true
        echo "(perf report of the gateway: perf-gateway-$1.txt)"
    else
        "${cmd[@]}" | tee "$TMP/wrk-$1.out"
    fi
}

run_sdk() {     # workload, first key, then extra flags
    local cmd=("$BIN/bt-bench" sdk --lock "$LOCK" --table "$TABLE" --workload "$1" --threads "$SDK_THREADS" \
               --n "$SDK_N" --value-size "$VALUE" --keys "$ROWS" --first "$2" "${@:3}")
    echo "\$ ${cmd[*]#$BIN/}"
    "${cmd[@]}"
}

# The SDK runs twice per workload: with its default shared, pipelined
# connections, and with --thread-connections (what bt-gateway uses).
for round in $(seq 1 "$ROUNDS"); do
    echo "-- round $round"
    run_wrk get 0
    run_sdk get 0
    run_sdk get 0 --thread-connections
    run_wrk put $((round * 1000000000000 / 10))
    run_sdk put $((round * 1000000000000 / 10 + 50000000000))
    run_sdk put $((round * 1000000000000 / 10 + 70000000000)) --thread-connections
done

if [ "$CLUSTER_UP" = 1 ] && [ "$SERVER_BENCH" = 1 ]; then
    "$BIN/bt-cluster" down --dir "$TMP/cluster" >/dev/null 2>&1 || true
    CLUSTER_UP=0
    echo "-- bt-bench server (one bt-tabletserver, no master; durability $DURABILITY)"
    read -r LP SP < <(free_ports 2 | paste -sd' ')
    mkdir -p "$TMP/sb/lock" "$TMP/sb/data"
    "$BIN/bt-lockd" --data-dir "$TMP/sb/lock" --port "$LP" >"$TMP/sb/lockd.log" 2>&1 &
    SB_PIDS+=($!)
    sleep 0.5
    "$BIN/bt-tabletserver" --data-dir "$TMP/sb/data" --lock "bt://127.0.0.1:$LP" --port "$SP" \
        --durability "$DURABILITY" >"$TMP/sb/ts.log" 2>&1 &
    SB_PIDS+=($!)
    for _ in $(seq 100); do grep -q "serving on" "$TMP/sb/ts.log" 2>/dev/null && break; sleep 0.1; done
    for wl in write read; do
        echo "\$ bt-bench server --addr 127.0.0.1:$SP --lock bt://127.0.0.1:$LP --workload $wl --n $SDK_N --threads 2 --depth 8 --value-size $VALUE"
        "$BIN/bt-bench" server --addr "127.0.0.1:$SP" --lock "bt://127.0.0.1:$LP" --workload "$wl" --n "$SDK_N" \
            --threads 2 --depth 8 --value-size "$VALUE"
    done
fi

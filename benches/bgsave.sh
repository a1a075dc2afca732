#!/usr/bin/env bash
# BGSAVE of N keys (default 1,000,000), Ember beside redis-server, in one
# run: how long the save takes, the longest pause a client sees while it
# runs (a probe doing PING then GET in a loop, one request at a time,
# recording each round trip), the p99 of a concurrent redis-benchmark, and
# the peak RSS of the server during the save. For Redis also its
# `latest_fork_usec` (the fork is where Redis's clients wait).
#
#   benches/bgsave.sh [KEYS] [EMBER_PORT] [REDIS_PORT] [WHOLE_PORT]
#
# With SAVE=BGREWRITEAOF both servers run with the AOF on (`everysec`,
# automatic rewrites off) and the rewrite is measured instead of BGSAVE.
#
# With WHOLE_PORT, a second Ember runs there whose snapshot walker holds a
# shard's lock for the whole shard (EMBER_SNAPSHOT_SLICE set huge), as
# before the walk was sliced: the rows named `whole` are that one.
#
# Needs target/release/ember-server (or EMBER_BIN), redis-server,
# redis-cli, redis-benchmark and python3. Not a test: it prints figures.
set -euo pipefail

KEYS=${1:-1000000}
EPORT=${2:-7510}
RPORT=${3:-7511}
WPORT=${4:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EMBER_BIN=${EMBER_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/ember-server}
WORK=$(mktemp -d /tmp/ember-bgsave-bench.XXXXXX)
SAVE=${SAVE:-BGSAVE}
case $SAVE in
BGSAVE)
    AOF=(--appendonly no)
    RUNNING=rdb_bgsave_in_progress
    ;;
BGREWRITEAOF)
    AOF=(--appendonly yes --appendfsync everysec --auto-aof-rewrite-percentage 0)
    RUNNING=aof_rewrite_in_progress
    ;;
*)
    echo "SAVE is BGSAVE or BGREWRITEAOF" >&2
    exit 1
    ;;
esac
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/ember" "$WORK/redis"
"$EMBER_BIN" --port "$EPORT" --dir "$WORK/ember" --save "" "${AOF[@]}" --logfile "$WORK/ember/log" &
PIDS+=($!)
EPID=$!
redis-server --port "$RPORT" --dir "$WORK/redis" --save "" "${AOF[@]}" \
    --daemonize no --logfile "$WORK/redis/log" &
PIDS+=($!)
RPID=$!
if [ -n "$WPORT" ]; then
    mkdir -p "$WORK/whole"
    EMBER_SNAPSHOT_SLICE=1000000000000 "$EMBER_BIN" --port "$WPORT" --dir "$WORK/whole" \
        --save "" "${AOF[@]}" --logfile "$WORK/whole/log" &
    PIDS+=($!)
    WPID=$!
fi

wait_up() {
    for _ in $(seq 1 200); do
        redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "server on $1 did not start" >&2
    exit 1
}
wait_up "$EPORT"
wait_up "$RPORT"
[ -n "$WPORT" ] && wait_up "$WPORT"

# N keys of 18-byte values, through redis-cli --pipe, named as
# redis-benchmark names its random keys (`key:` and 12 digits), so that its
# SET load overwrites them (every write changes a key the snapshot has).
populate() {
    python3 - "$KEYS" <<'EOF' | redis-cli -p "$1" --pipe >/dev/null
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
chunk = []
for i in range(n):
    k = b"key:%012d" % i
    v = b"value-%012d" % i
    chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
    if len(chunk) == 10000:
        out.write(b"".join(chunk))
        chunk = []
out.write(b"".join(chunk))
EOF
}

# The probe: PING and GET, one at a time, until the file STOP exists;
# prints the longest round trip and the 99th percentile, in ms.
probe() {
    python3 - "$1" "$2" <<'EOF'
import os, socket, sys, time
port, stop = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
lat = []
reqs = [b"*1\r\n$4\r\nPING\r\n", b"*2\r\n$3\r\nGET\r\n$16\r\nkey:000000000042\r\n"]
i = 0
while not os.path.exists(stop):
    t = time.perf_counter()
    s.sendall(reqs[i % 2])
    buf = b""
    while not buf.endswith(b"\r\n") or (buf.startswith(b"$") and buf.count(b"\r\n") < 2):
        buf += s.recv(4096)
    lat.append(time.perf_counter() - t)
    i += 1
lat.sort()
print("%.2f %.3f %d" % (lat[-1] * 1000, lat[int(len(lat) * 0.99)] * 1000, len(lat)))
EOF
}

peak_rss_kb() { # PID STOPFILE: the largest VmRSS seen until STOPFILE exists
    local max=0 v
    while [ ! -e "$2" ]; do
        v=$(awk '/VmRSS/ {print $2}' "/proc/$1/status")
        [ "$v" -gt "$max" ] && max=$v
        sleep 0.01
    done
    echo "$max"
}

measure() { # NAME PORT PID
    local name=$1 port=$2 pid=$3 stop="$WORK/stop-$1"
    rm -f "$stop"
    local rss_before
    rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    probe "$port" "$stop" >"$WORK/probe-$name" &
    local probe_pid=$!
    peak_rss_kb "$pid" "$stop" >"$WORK/rss-$name" &
    local rss_pid=$!
    redis-benchmark -p "$port" -t "$([ -n "${WRITES:-}" ] && echo set || echo get)" \
        -r "$KEYS" -c 20 -n 100000000 -q --csv >/dev/null 2>&1 &
    local bench_pid=$!
    sleep 1
    # A benchmark of its own for the p99: as long as the save, roughly.
    local t0 t1
    t0=$(date +%s.%N)
    redis-cli -p "$port" "$SAVE" >/dev/null
    while [ "$(redis-cli -p "$port" INFO persistence | tr -d '\r' | awk -F: "/$RUNNING/ {print \$2}")" = 1 ]; do
        sleep 0.01
    done
    t1=$(date +%s.%N)
    touch "$stop"
    kill "$bench_pid" 2>/dev/null || true
    wait "$probe_pid" "$rss_pid" 2>/dev/null || true
    local fork_usec
    fork_usec=$(redis-cli -p "$port" INFO stats | tr -d '\r' | awk -F: '/latest_fork_usec/ {print $2}')
    read -r max p99 n <"$WORK/probe-$name"
    printf '%-6s keys=%s save=%.2fs probe_max=%sms probe_p99=%sms probes=%s rss_before=%dMB rss_peak=%dMB latest_fork_usec=%s\n' \
        "$name" "$(redis-cli -p "$port" DBSIZE)" "$(echo "$t1 - $t0" | bc)" "$max" "$p99" "$n" \
        $((rss_before / 1024)) $(($(cat "$WORK/rss-$name") / 1024)) "${fork_usec:-n/a}"
}

# The same probe and load for 2 s with no save: the noise floor.
baseline() { # NAME PORT
    local stop="$WORK/stop-base-$1"
    rm -f "$stop"
    probe "$2" "$stop" >"$WORK/probe-base-$1" &
    local probe_pid=$!
    redis-benchmark -p "$2" -t "$([ -n "${WRITES:-}" ] && echo set || echo get)" \
        -r "$KEYS" -c 20 -n 100000000 -q >/dev/null 2>&1 &
    local bench_pid=$!
    sleep 3
    touch "$stop"
    kill "$bench_pid" 2>/dev/null || true
    wait "$probe_pid" 2>/dev/null || true
    read -r max p99 n <"$WORK/probe-base-$1"
    printf '%-6s no save:  probe_max=%sms probe_p99=%sms probes=%s\n' "$1" "$max" "$p99" "$n"
}

# redis-benchmark's own p99 while a BGSAVE runs.
bench_p99() { # PORT
    local stop="$WORK/stop-bench-$1"
    rm -f "$stop"
    (
        sleep 1
        redis-cli -p "$1" "$SAVE" >/dev/null
        while [ "$(redis-cli -p "$1" INFO persistence | tr -d '\r' | awk -F: "/$RUNNING/ {print \$2}")" = 1 ]; do
            sleep 0.01
        done
        touch "$stop"
    ) &
    local waiter=$!
    redis-benchmark -p "$1" -t get -r "$KEYS" -c 20 -n 400000 2>/dev/null |
        tr '\r' '\n' | grep -A2 'latency summary' | tail -1
    wait "$waiter" 2>/dev/null || true
}

echo "populating $KEYS keys..."
populate "$EPORT"
populate "$RPORT"
[ -n "$WPORT" ] && populate "$WPORT"
baseline ember "$EPORT"
baseline redis "$RPORT"
measure ember "$EPORT" "$EPID"
[ -n "$WPORT" ] && measure whole "$WPORT" "$WPID"
measure redis "$RPORT" "$RPID"
# The noise floor under writes.
WRITES=1 baseline ember-w "$EPORT"
WRITES=1 baseline redis-w "$RPORT"
# Writes during the save: SET on random keys makes the server keep the
# old values of keys ahead of the walker, and wait for the walker's hold
# of a shard's lock (Ember), or copy pages (Redis).
WRITES=1 measure ember-w "$EPORT" "$EPID"
[ -n "$WPORT" ] && WRITES=1 measure whole-w "$WPORT" "$WPID"
WRITES=1 measure redis-w "$RPORT" "$RPID"
echo "redis-benchmark GET -c 20 during a $SAVE (avg min p50 p95 p99 max, ms):"
echo "ember $(bench_p99 "$EPORT")"
echo "redis $(bench_p99 "$RPORT")"

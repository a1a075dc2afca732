#!/usr/bin/env bash
# Startup load times, Ember beside redis-server, from the same files: an
# RDB of N keys (default 10,000,000) and an AOF of M keys (default
# 1,000,000) with and without the RDB preamble. The files are written by
# redis-server (populated through redis-cli --pipe, then SAVE or
# BGREWRITEAOF); each server then starts on a copy of them, alone, and the
# time from its start until DBSIZE answers the full count (both answer
# -LOADING meanwhile) is the load time, polled every 10 ms.
#
#   benches/load.sh [RDB_KEYS] [AOF_KEYS] [EMBER_PORT] [REDIS_PORT]
#
# Needs target/release/ember-server (or EMBER_BIN), redis-server,
# redis-cli and python3. Not a test: it prints figures.
set -euo pipefail

RDB_KEYS=${1:-10000000}
AOF_KEYS=${2:-1000000}
EPORT=${3:-7520}
RPORT=${4:-7521}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EMBER_BIN=${EMBER_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/ember-server}
WORK=$(mktemp -d /tmp/ember-load-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_up() { # PORT
    for _ in $(seq 1 400); do
        redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "server on $1 did not start" >&2
    exit 1
}

# N keys of 16-byte values, through redis-cli --pipe.
populate() { # PORT N
    python3 - "$2" <<'PY' | redis-cli -p "$1" --pipe >/dev/null
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
chunk = []
for i in range(n):
    k = b"key:%010d" % i
    v = b"value-%010d" % i
    chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
    if len(chunk) == 10000:
        out.write(b"".join(chunk))
        chunk = []
out.write(b"".join(chunk))
PY
}

info() { # PORT SECTION FIELD
    redis-cli -p "$1" INFO "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f {print $2}'
}

# Writes the files with redis-server into $WORK/src-NAME.
make_files() {
    local dir="$WORK/src-rdb"
    mkdir -p "$dir"
    redis-server --port "$RPORT" --dir "$dir" --save "" --appendonly no \
        --daemonize no --logfile "$dir/log" &
    local pid=$!
    wait_up "$RPORT"
    populate "$RPORT" "$RDB_KEYS"
    redis-cli -p "$RPORT" SAVE >/dev/null
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -f "$dir/log"
    for preamble in yes no; do
        dir="$WORK/src-aof-$preamble"
        mkdir -p "$dir"
        redis-server --port "$RPORT" --dir "$dir" --save "" --appendonly yes \
            --aof-use-rdb-preamble "$preamble" --daemonize no --logfile "$dir/log" &
        pid=$!
        wait_up "$RPORT"
        populate "$RPORT" "$AOF_KEYS"
        redis-cli -p "$RPORT" BGREWRITEAOF >/dev/null
        sleep 0.2
        while [ "$(info "$RPORT" persistence aof_rewrite_in_progress)" != 0 ] ||
            [ "$(info "$RPORT" persistence aof_rewrite_scheduled)" != 0 ]; do
            sleep 0.05
        done
        kill "$pid"; wait "$pid" 2>/dev/null || true
        rm -f "$dir/log"
    done
}

# Starts server NAME (ember or redis) on a copy of files SRC, AOF on or
# off, and prints the seconds until DBSIZE says WANT.
load() { # NAME SRC APPENDONLY WANT
    local name=$1 src=$2 aof=$3 want=$4 dir="$WORK/run"
    rm -rf "$dir"
    cp -r "$WORK/$src" "$dir"
    local t0 pid n
    t0=$(date +%s.%N)
    if [ "$name" = ember ]; then
        "$EMBER_BIN" --port "$EPORT" --dir "$dir" --save "" --appendonly "$aof" \
            --logfile "$dir/log" &
        pid=$!
        port=$EPORT
    else
        redis-server --port "$RPORT" --dir "$dir" --save "" --appendonly "$aof" \
            --daemonize no --logfile "$dir/log" &
        pid=$!
        port=$RPORT
    fi
    PIDS+=("$pid")
    while true; do
        n=$(redis-cli -p "$port" DBSIZE 2>/dev/null || true)
        [ "$n" = "$want" ] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited while loading $src:" >&2
            cat "$dir/log" >&2
            exit 1
        fi
        sleep 0.01
    done
    local t1 rss
    t1=$(date +%s.%N)
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    printf '%-6s %-14s keys=%s load=%.2fs rss=%dMB\n' "$name" "$src" "$want" \
        "$(echo "$t1 - $t0" | bc)" $((rss / 1024))
}

echo "writing the files with redis-server ($RDB_KEYS keys RDB, $AOF_KEYS keys AOF)..."
make_files
ls -l "$WORK"/src-rdb "$WORK"/src-aof-*/appendonlydir | grep -v '^total'
for round in 1 2; do
    echo "round $round"
    load ember src-rdb no "$RDB_KEYS"
    load redis src-rdb no "$RDB_KEYS"
    load ember src-aof-yes yes "$AOF_KEYS"
    load redis src-aof-yes yes "$AOF_KEYS"
    load ember src-aof-no yes "$AOF_KEYS"
    load redis src-aof-no yes "$AOF_KEYS"
done

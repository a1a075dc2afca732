#!/usr/bin/env bash
# Instructions and simulated cache misses per request on a keyspace of
# realistic size, Redis beside Ember, from valgrind's callgrind: counts,
# not times, so they repeat whatever else the machine runs (this machine's
# perf sees no hardware counters). Each server loads the same RDB file of
# KEYS string keys at start, under callgrind, then serves REQUESTS of one
# test from redis-benchmark (outside valgrind); callgrind simulates the
# caches from the first request, and counts only the second REQUESTS (the
# first warm the caches up). The active expiry cycle is off in both (no key
# has a deadline): under valgrind it would add work in proportion to the
# run's length, not its requests.
#
# Usage: benches/cache-per-request.sh [KEYS] [REQUESTS] [TESTS] [PIPELINE]
#   KEYS      preloaded keys `key:NNNNNNNNNNNN` holding "1" (default 1000000)
#   REQUESTS  requests per run (default 200000)
#   TESTS     comma-separated: get, set, incr, evalsha, eval (default
#             get,incr; the scripts run `redis.call('INCR', KEYS[1])`)
#   PIPELINE  redis-benchmark's -P (default 16)
#   SERVERS   (environment) which to run, default "redis ember"
#   EMBER_BIN (environment) another ember-server binary to measure (an
#             A/B of a change: build the other commit elsewhere)
#   KEEP      (environment) a directory to keep callgrind's output in
#
# The simulated caches: 32 KiB 8-way L1 data and instruction caches and a
# 32 MiB 16-way last level, this machine's (`lscpu`); callgrind has no L2.
set -euo pipefail
cd "$(dirname "$0")/.."

keys=${1:-1000000}
requests=${2:-200000}
tests=${3:-get,incr}
pipeline=${4:-16}

for tool in valgrind redis-server redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null || {
        echo "needs $tool (apt-get install valgrind redis-server redis-tools)" >&2
        exit 1
    }
done
cargo build --release -q -p ember-server
workdir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$workdir"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
    for _ in $(seq 1200); do
        [[ $(redis-cli -p "$1" ping 2>/dev/null) == PONG ]] && return
        sleep 0.5
    done
    echo "server on $1 never answered" >&2
    exit 1
}

# The RDB file: written once by a native redis-server, loaded by both.
python3 - "$keys" > "$workdir/preload.resp" <<'PY'
import sys
out = sys.stdout.buffer
for i in range(int(sys.argv[1])):
    key = b"key:%012d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(key), key))
PY
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir" >/dev/null &
pids+=($!)
wait_ready "$port"
redis-cli -p "$port" --pipe < "$workdir/preload.resp" >/dev/null
redis-cli -p "$port" save >/dev/null
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
wait "${pids[-1]}" 2>/dev/null || true

script="return redis.call('INCR', KEYS[1])"
sha=$(printf '%s' "$script" | sha1sum | cut -d' ' -f1)
command_of() {
    case $1 in
        get) echo "GET key:__rand_int__" ;;
        set) echo "SET key:__rand_int__ 1" ;;
        incr) echo "INCR key:__rand_int__" ;;
        evalsha) echo "EVALSHA $sha 1 key:__rand_int__" ;;
        *) echo "unknown test $1" >&2; exit 1 ;;
    esac
}

# One run under callgrind with its cache simulation: start from the file
# (not instrumented), then count only while `n` requests of `test` are
# served (`callgrind_control -i`), stop. Prints the totals: instructions,
# L1 data misses, last-level data misses.
run() {
    local server=$1 test=$2 n=$3 dir out port
    dir=$(mktemp -d -p "$workdir")
    cp "$workdir/dump.rdb" "$dir/"
    out="$dir/cg.out"
    port=$(free_port)
    local cg=(valgrind --tool=callgrind --cache-sim=yes --instr-atstart=no --I1=32768,8,64
        --D1=32768,8,64 --LL=33554432,16,64 --callgrind-out-file="$out")
    if [[ $server == redis ]]; then
        "${cg[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$dir" --dbfilename dump.rdb --enable-debug-command local >/dev/null 2>&1 &
    else
        "${cg[@]}" "${EMBER_BIN:-target/release/ember-server}" --port "$port" --threads 1 --dir "$dir" \
            --dbfilename dump.rdb --save '' >/dev/null 2>&1 &
    fi
    local pid=$!
    pids+=("$pid")
    wait_ready "$port"
    # Loading is over once the keys are all there.
    until [[ $(redis-cli -p "$port" dbsize) == "$keys" ]]; do sleep 0.5; done
    # No key has a deadline, but the expiry cycle would still visit the
    # keyspace ten times a second, and under valgrind a run lasts minutes:
    # work that depends on how long the run takes, not on its requests.
    redis-cli -p "$port" debug set-active-expire 0 >/dev/null
    redis-cli -p "$port" script load "$script" >/dev/null
    callgrind_control -i on "$pid" >/dev/null 2>&1
    # A first run warms the simulated caches (they start empty when the
    # instrumentation starts), then the counts start again from zero.
    local round
    for round in warm count; do
        # shellcheck disable=SC2046
        if [[ $test == eval ]]; then
            redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n "$n" -P "$pipeline" -r "$keys" -q \
                EVAL "$script" 1 key:__rand_int__ >/dev/null 2>&1
        else
            redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n "$n" -P "$pipeline" -r "$keys" -q \
                $(command_of "$test") >/dev/null 2>&1
        fi
        [[ $round == warm ]] && callgrind_control -z "$pid" >/dev/null 2>&1
    done
    callgrind_control -i off "$pid" >/dev/null 2>&1
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait "$pid" 2>/dev/null || true
    # KEEP=DIR (environment) keeps each run's callgrind output, for
    # callgrind_annotate.
    [[ -n ${KEEP:-} ]] && cp "$out"* "$KEEP/callgrind.$server.$test.out"
    # events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
    awk '/^events:/ { for (i = 2; i <= NF; i++) col[$i] = i }
         /^totals:/ { print $col["Ir"], $col["D1mr"] + $col["D1mw"], $col["DLmr"] + $col["DLmw"] }' \
        "$out"*
}

printf '%-6s %-6s %12s %12s %12s\n' test server "Ir/req" "D1miss/req" "LLmiss/req"
for test in ${tests//,/ }; do
    for server in ${SERVERS:-redis ember}; do
        read -r ir d1 ll < <(run "$server" "$test" "$requests")
        awk -v t="$test" -v s="$server" -v n="$requests" -v i="$ir" -v d="$d1" -v l="$ll" \
            'BEGIN { printf "%-6s %-6s %12.0f %12.2f %12.2f\n", t, s, i / n, d / n, l / n }'
    done
done

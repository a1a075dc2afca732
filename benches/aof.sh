#!/usr/bin/env bash
# SET and INCR with the append-only file on, Ember beside redis-server,
# pinned: both servers on core 1, redis-benchmark on core 0, one server
# at a time, a fresh AOF directory for each run.
#
#   benches/aof.sh [REQUESTS_P1]
#
# Environment: POLICIES (default "everysec always"), TESTS ("set incr"),
# PIPELINES ("1 16"), ROUNDS (2; rounds alternate the servers),
# EMBER_BIN (default: a release build of this checkout), CLIENTS (50),
# KEYS (-r, 100000). Pipeline 16 runs ten times REQUESTS_P1 requests.
# Prints requests/s and each server's CPU per request (all its threads,
# from /proc schedstat, so the AOF threads count).
set -euo pipefail
cd "$(dirname "$0")/.."

n1=${1:-200000}
policies=${POLICIES:-everysec always}
tests=${TESTS:-set incr}
pipelines=${PIPELINES:-1 16}
rounds=${ROUNDS:-2}
clients=${CLIENTS:-50}
keys=${KEYS:-100000}

if [[ -z ${EMBER_BIN:-} ]]; then
    cargo build --release -q -p ember-server
    EMBER_BIN=${CARGO_TARGET_DIR:-target}/release/ember-server
fi
pin_server=""
pin_client=""
if command -v taskset >/dev/null && (($(nproc) >= 2)); then
    pin_server="taskset -c 1"
    pin_client="taskset -c 0"
fi
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

workdir=$(mktemp -d)
pid=""
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$workdir"' EXIT

# run SERVER POLICY TEST P: prints "rps cpu_us_per_request".
run() {
    local server=$1 policy=$2 test=$3 p=$4 port dir n
    port=$(free_port)
    dir=$workdir/$server-$policy-$test-$p
    rm -rf "$dir"
    mkdir -p "$dir"
    if [[ $server == redis ]]; then
        $pin_server redis-server --port "$port" --bind 127.0.0.1 --save '' --dir "$dir" \
            --appendonly yes --appendfsync "$policy" >/dev/null &
    else
        $pin_server "$EMBER_BIN" --port "$port" --save '' --dir "$dir" \
            --appendonly yes --appendfsync "$policy" >/dev/null 2>&1 &
    fi
    pid=$!
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    n=$n1
    ((p > 1)) && n=$((n1 * 10))
    local before after out
    before=$(cpu_ns "$pid")
    out=$($pin_client redis-benchmark -p "$port" -c "$clients" -n "$n" -r "$keys" -P "$p" -t "$test" --csv)
    after=$(cpu_ns "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
    local rps
    rps=$(echo "$out" | awk -F'","' 'NR == 2 { print $2 }')
    awk -v r="$rps" -v c=$((after - before)) -v n="$n" 'BEGIN { printf "%.0f %.3f\n", r, c / n / 1000 }'
}

echo "| appendfsync | test | P | round | Redis rps | Ember rps | Ember / Redis | CPU µs/req Redis / Ember |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for policy in $policies; do
    for test in $tests; do
        for p in $pipelines; do
            for round in $(seq "$rounds"); do
                if ((round % 2)); then
                    r=$(run redis "$policy" "$test" "$p")
                    e=$(run ember "$policy" "$test" "$p")
                else
                    e=$(run ember "$policy" "$test" "$p")
                    r=$(run redis "$policy" "$test" "$p")
                fi
                read -r rr rc <<<"$r"
                read -r er ec <<<"$e"
                awk -v pol="$policy" -v t="$test" -v p="$p" -v k="$round" \
                    -v rr="$rr" -v er="$er" -v rc="$rc" -v ec="$ec" \
                    'BEGIN { printf "| %s | %s | %d | %d | %d | %d | %.2fx | %.2f / %.2f |\n", pol, t, p, k, rr, er, er / rr, rc, ec }'
            done
        done
    done
done

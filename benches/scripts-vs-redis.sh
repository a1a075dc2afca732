#!/usr/bin/env bash
# Scripts side by side: redis-benchmark's EVALSHA of a one-key script
# (`return redis.call('INCR', KEYS[1])`) and EVAL of the same script,
# against redis-server and a release ember-server started here, runs
# interleaved so both see the same machine state. Prints requests/s for
# both, the ratio (Ember / Redis), and each server's CPU time per request
# (all its threads, from /proc), each the median of ROUNDS runs.
#
# Usage: benches/scripts-vs-redis.sh [REQUESTS]
#   REQUESTS  requests per run at pipeline 1 (default 100000; ten times as
#             many at pipeline 16)
#   ROUNDS    (environment) runs per row and server (default 3)
#   REDIS_PORT, EMBER_PORT (environment) the ports to start them on
#             (default 7601, 7602)
#   EMBER     (environment) the ember-server binary (default: built here)
#   PIN=1     (environment) both servers on core 1, redis-benchmark on
#             core 0, so that neither competes with the load for a core
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${1:-100000}
rounds=${ROUNDS:-3}
redis_port=${REDIS_PORT:-7601}
ember_port=${EMBER_PORT:-7602}
clients=50
script="return redis.call('INCR', KEYS[1])"

if [[ -z ${EMBER:-} ]]; then
    cargo build --release -q -p ember-server
    EMBER=${CARGO_TARGET_DIR:-target}/release/ember-server
fi
pin_server=(); pin_client=()
if [[ ${PIN:-0} == 1 ]] && (($(nproc) >= 2)); then
    pin_server=(taskset -c 1); pin_client=(taskset -c 0)
fi
workdir=$(mktemp -d)
"${pin_server[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir" >/dev/null &
redis_pid=$!
"${pin_server[@]}" "$EMBER" --port "$ember_port" --save "" --dir "$workdir" >/dev/null 2>&1 &
ember_pid=$!
trap 'kill $redis_pid $ember_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$workdir"' EXIT
for port in "$redis_port" "$ember_port"; do
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
done
sha=$(redis-cli -p "$redis_port" script load "$script")
[[ $(redis-cli -p "$ember_port" script load "$script") == "$sha" ]]

# Nanoseconds a process's threads have run, from /proc.
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

# One run: requests/s, and the server's CPU time per request in
# microseconds (steadier than requests/s when the machine is shared).
run() {
    local port=$1 pid=$2 pipeline=$3 n=$requests before after
    shift 3
    ((pipeline > 1)) && n=$((requests * 10))
    before=$(cpu_ns "$pid")
    "${pin_client[@]}" redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n "$n" -P "$pipeline" --csv "$@" 2>/dev/null |
        awk -F, 'NR==2 { gsub(/"/, ""); printf "%s ", $(NF - 6) }'
    after=$(cpu_ns "$pid")
    awk -v a="$before" -v b="$after" -v n="$n" 'BEGIN { printf "%.2f\n", (b - a) / n / 1000 }'
}

# The median of a column of lines.
median() { awk -v c="$1" '{ print $c }' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '%-8s %3s %12s %12s %7s %18s\n' command P redis_rps ember_rps ratio "CPU us/req R/E"
for pipeline in 16 1; do
    for cmd in evalsha eval; do
        body=$sha
        [[ $cmd == eval ]] && body=$script
        r=""; e=""
        for _ in $(seq "$rounds"); do
            r+="$(run "$redis_port" "$redis_pid" "$pipeline" "$cmd" "$body" 1 key:__rand_int__)"$'\n'
            e+="$(run "$ember_port" "$ember_pid" "$pipeline" "$cmd" "$body" 1 key:__rand_int__)"$'\n'
        done
        r_rps=$(printf '%s' "$r" | grep . | median 1)
        e_rps=$(printf '%s' "$e" | grep . | median 1)
        r_cpu=$(printf '%s' "$r" | grep . | median 2)
        e_cpu=$(printf '%s' "$e" | grep . | median 2)
        printf '%-8s %3s %12s %12s %6.2fx %18s\n' "$cmd" "$pipeline" "$r_rps" "$e_rps" \
            "$(awk -v e="$e_rps" -v r="$r_rps" 'BEGIN { print e / r }')" "$r_cpu/$e_cpu"
    done
done

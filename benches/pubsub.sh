#!/usr/bin/env bash
# Pub/sub side by side: publish throughput and delivery latency with 1, 10
# and 1,000 subscribers on one channel and on a pattern, against
# redis-server and a release ember-server started here (benches/servers.sh),
# runs alternating between them. The load is benches/src/bin/pubsub-load.rs:
# 50 publishers with one PUBLISH in flight each (as `redis-benchmark -c 50
# -- PUBLISH ch msg`), payloads carrying their send time, every delivery's
# latency measured by its subscriber.
#
# Usage: benches/pubsub.sh [DELIVERIES]
#   DELIVERIES  messages x subscribers per run (default 2000000); messages
#               per run are DELIVERIES / subscribers, at most 100000
#   ROUNDS      (environment) runs per row and server; the row is the run
#               with the median publish rate (default 3)
#   PIN=1       (environment) the load tool on the first core, the servers
#               on the others
#   TARGETS, SUBS (environment) the rows to run (default "channel pattern"
#               and "1 10 1000")
#
# Columns: publishes/s and deliveries/s for each server, the ratio
# (Ember / Redis) of publishes/s, and delivery latency p50/p99 in ms.
set -euo pipefail
cd "$(dirname "$0")/.."

deliveries=${1:-2000000}
rounds=${ROUNDS:-3}
cargo build --release -q -p ember-benches --bin pubsub-load
bin=${CARGO_TARGET_DIR:-target}/release/pubsub-load
source benches/servers.sh
start_servers
# 1,000 subscribers and 50 publishers need more than the default 1,024
# descriptors on the tool's side.
ulimit -n 4096 2>/dev/null || true

median() {
    printf '%s\n' "$1" | grep . | sort -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'
}

printf '%-8s %5s %12s %12s %6s %14s %14s %16s %16s\n' target subs redis_pub/s ember_pub/s ratio redis_deliv/s ember_deliv/s "redis p50/p99" "ember p50/p99"
for target in ${TARGETS:-channel pattern}; do
    for subs in ${SUBS:-1 10 1000}; do
        messages=$((deliveries / subs))
        ((messages > 100000)) && messages=100000
        flags=(--subscribers "$subs" --messages "$messages")
        [[ $target == pattern ]] && flags+=(--pattern)
        r_runs="" e_runs=""
        for _ in $(seq "$rounds"); do
            r_runs+=$($client_cpus "$bin" --addr 127.0.0.1:"$redis_port" "${flags[@]}")$'\n'
            e_runs+=$($client_cpus "$bin" --addr 127.0.0.1:"$ember_port" "${flags[@]}")$'\n'
        done
        r=$(median "$r_runs")
        e=$(median "$e_runs")
        read -r rp rd r50 r99 _ <<<"$r"
        read -r ep ed e50 e99 _ <<<"$e"
        printf '%-8s %5s %12s %12s %6s %14s %14s %16s %16s\n' "$target" "$subs" "$rp" "$ep" \
            "$(awk -v a="$ep" -v b="$rp" 'BEGIN { printf "%.2fx", a / b }')" "$rd" "$ed" \
            "$r50/$r99" "$e50/$e99"
    done
done

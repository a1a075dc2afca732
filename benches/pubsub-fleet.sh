#!/usr/bin/env bash
# Pub/sub through ember-client on two 2 x 2 fleets started here, one of
# redis-server and one of release ember-server (persistence off, free
# loopback ports), runs alternating between them: the same load as
# benches/pubsub.sh (benches/src/bin/pubsub-load.rs with --replica), but
# publishers share one Client (each publish goes to the channel's shard in
# both groups) and every subscriber is a Subscription of a second Client.
#
# Usage: benches/pubsub-fleet.sh [DELIVERIES]
#   DELIVERIES  messages x subscribers per run (default 1000000); messages
#               per run are DELIVERIES / subscribers, at most 50000
#   ROUNDS      (environment) runs per row and fleet; the row is the run
#               with the median publish rate (default 3)
#   PIN=1       (environment) the load tool on the first core, the servers
#               on the others
set -euo pipefail
cd "$(dirname "$0")/.."

deliveries=${1:-1000000}
rounds=${ROUNDS:-3}
cargo build --release -q -p ember-server -p ember-benches --bin pubsub-load --bin ember-server
out=${CARGO_TARGET_DIR:-target}/release
server_cpus="" client_cpus=""
if [[ ${PIN:-0} == 1 ]] && command -v taskset >/dev/null && (($(nproc) >= 2)); then
    server_cpus="taskset -c 1-$(($(nproc) - 1))"
    client_cpus="taskset -c 0"
fi
workdir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$workdir"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A 2 x 2 fleet of one kind, its --replica flags left in $replicas (not
# run in a command substitution: its pids must reach the trap).
fleet() {
    local kind=$1 g s port groups=()
    for g in 0 1; do
        local shards=()
        for s in 0 1; do
            port=$(free_port)
            if [[ $kind == redis ]]; then
                $server_cpus redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
                    --dir "$workdir" >/dev/null 2>&1 &
            else
                $server_cpus "$out/ember-server" --port "$port" --save "" >/dev/null 2>&1 &
            fi
            pids+=($!)
            for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
            shards+=("127.0.0.1:$port")
        done
        groups+=(--replica "$(IFS=,; echo "${shards[*]}")")
    done
    replicas="${groups[*]}"
}
fleet redis
redis_fleet=$replicas
fleet ember
ember_fleet=$replicas
ulimit -n 8192 2>/dev/null || true

median() {
    printf '%s\n' "$1" | grep . | sort -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'
}

printf '%-8s %5s %12s %12s %6s %14s %14s %16s %16s\n' target subs redis_pub/s ember_pub/s ratio redis_deliv/s ember_deliv/s "redis p50/p99" "ember p50/p99"
for target in channel pattern; do
    for subs in 1 10 1000; do
        messages=$((deliveries / subs))
        ((messages > 50000)) && messages=50000
        flags=(--subscribers "$subs" --messages "$messages")
        [[ $target == pattern ]] && flags+=(--pattern)
        r_runs="" e_runs=""
        for _ in $(seq "$rounds"); do
            # shellcheck disable=SC2086 # the fleets' flags split on purpose
            r_runs+=$($client_cpus "$out/pubsub-load" $redis_fleet "${flags[@]}")$'\n'
            # shellcheck disable=SC2086
            e_runs+=$($client_cpus "$out/pubsub-load" $ember_fleet "${flags[@]}")$'\n'
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

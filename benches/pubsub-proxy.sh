#!/usr/bin/env bash
# Pub/sub through ember-proxy against one redis-server directly: publishes/s
# and delivery latency with 1 and 10 subscribers on one channel. The load is
# benches/src/bin/pubsub-load.rs (50 publishers, one PUBLISH in flight each),
# pointed once at a redis-server and once at a release ember-proxy in front
# of a second redis-server (one group of one shard: the same work for the
# node, plus the proxy's hop), runs alternating.
#
# Usage: benches/pubsub-proxy.sh [MESSAGES]
#   MESSAGES    published per run (default 50000)
#   ROUNDS      (environment) runs per row and target; the row is the run
#               with the median publish rate (default 3)
#   PORT_BASE   (environment) the three servers on PORT_BASE..PORT_BASE+2
#               (default: free ports)
#   PIN=1       (environment) the load tool on the first core, the servers
#               on the others
set -euo pipefail
cd "$(dirname "$0")/.."

messages=${1:-50000}
rounds=${ROUNDS:-3}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p ember-benches --bin pubsub-load
cargo build --release -q -p ember-proxy
bin=$target/release/pubsub-load

server_cpus=""
client_cpus=""
if [[ ${PIN:-0} == 1 ]] && command -v taskset >/dev/null && (($(nproc) >= 2)); then
    server_cpus="taskset -c 1-$(($(nproc) - 1))"
    client_cpus="taskset -c 0"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
if [[ -n ${PORT_BASE:-} ]]; then
    direct=$PORT_BASE node=$((PORT_BASE + 1)) proxy=$((PORT_BASE + 2))
else
    direct=$(free_port) node=$(free_port) proxy=$(free_port)
fi
workdir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$workdir"' EXIT
for port in "$direct" "$node"; do
    $server_cpus redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir" >/dev/null &
    pids+=($!)
done
for port in "$direct" "$node"; do
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
done
$server_cpus "$target"/release/ember-proxy --port "$proxy" --replica 127.0.0.1:"$node" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$proxy" ping >/dev/null 2>&1 && break; sleep 0.05; done

median() {
    printf '%s\n' "$1" | grep . | sort -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'
}

printf '%5s %12s %12s %6s %16s %16s\n' subs redis_pub/s proxy_pub/s ratio "redis p50/p99" "proxy p50/p99"
for subs in 1 10; do
    flags=(--subscribers "$subs" --messages "$messages")
    r_runs="" p_runs=""
    for _ in $(seq "$rounds"); do
        r_runs+=$($client_cpus "$bin" --addr 127.0.0.1:"$direct" "${flags[@]}")$'\n'
        p_runs+=$($client_cpus "$bin" --addr 127.0.0.1:"$proxy" "${flags[@]}")$'\n'
    done
    read -r rp _ r50 r99 _ <<<"$(median "$r_runs")"
    read -r pp _ p50 p99 _ <<<"$(median "$p_runs")"
    printf '%5s %12s %12s %6s %16s %16s\n' "$subs" "$rp" "$pp" \
        "$(awk -v a="$pp" -v b="$rp" 'BEGIN { printf "%.2fx", a / b }')" "$r50/$r99" "$p50/$p99"
done

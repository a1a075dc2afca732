#!/usr/bin/env bash
# What one server does per publish with many subscribers: its write
# system calls, epoll waits and CPU time for one run of the pub/sub load
# tool (benches/src/bin/pubsub-load.rs), the server pinned to core 1 and
# the tool to core 0. With 1,000 subscribers the tool is the bottleneck,
# so the publish rate says less than what the server spends on each.
#
# Usage: benches/pubsub-writes.sh BIN [PORT]
#   BIN   an ember-server binary, or `redis` for redis-server
#   SUBS, MSGS (environment) subscribers (default 1000) and messages
#         (default 2000); PATTERN=1 subscribes to a pattern
# Prints the tool's line (publish/s, deliveries/s, latency p50/p99/p99.9 ms)
# then writes, epoll waits and server CPU microseconds per publish.
# Needs perf (linux-perf) with tracepoint access.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1
port=${2:-7841}
subs=${SUBS:-1000}
msgs=${MSGS:-2000}
cargo build --release -q -p ember-benches --bin pubsub-load
tool=${CARGO_TARGET_DIR:-target}/release/pubsub-load
if [[ $bin == redis ]]; then
    taskset -c 1 redis-server --port "$port" --save '' --appendonly no >/dev/null &
else
    taskset -c 1 "$bin" --port "$port" --save "" >/dev/null 2>&1 &
fi
pid=$!
stats=$(mktemp)
trap 'kill $pid 2>/dev/null; wait 2>/dev/null; rm -f "$stats"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
ulimit -n 4096 2>/dev/null || true
flags=(--subscribers "$subs" --messages "$msgs")
[[ ${PATTERN:-0} == 1 ]] && flags+=(--pattern)
cpu() { cat /proc/"$pid"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f", s }'; }
before=$(cpu)
perf stat -x, -o "$stats" -p "$pid" \
    -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait' &
perf_pid=$!
sleep 0.3
out=$(taskset -c 0 "$tool" --addr 127.0.0.1:"$port" "${flags[@]}")
kill -INT $perf_pid
wait $perf_pid 2>/dev/null || true
after=$(cpu)
awk -F, -v m="$msgs" -v cpu=$((after - before)) -v out="$out" '
    /sendto|write/ { w += $1 }
    /epoll_wait/ { e += $1 }
    END { printf "%s | writes/publish %.1f, epoll waits/publish %.2f, server CPU %.0f us/publish\n", out, w / m, e / m, cpu / m / 1000 }
' "$stats"

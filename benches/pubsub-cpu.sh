#!/usr/bin/env bash
# Server CPU per publish and per delivery, two servers side by side, under
# the pub/sub load of benches/src/bin/pubsub-load.rs (50 publishers, one
# PUBLISH in flight each): each server pinned to core 1, the load tool on
# core 0, rounds alternating A and B. CPU from /proc schedstat (user and
# system time of all the server's threads) over the whole run, so it counts
# the work done, not how fast a shared machine let it run.
#
# Usage: benches/pubsub-cpu.sh BIN_A BIN_B [ROUNDS] [SUBS] [MESSAGES]
#   BIN_A, BIN_B  an ember-server binary, or `redis` for redis-server
#   SUBS          subscribers (default 1); MESSAGES published per run
#                 (default 100000)
#   PATTERN=1     (environment) subscribe to `bench:*` instead
#   PORTS         (environment) the two servers' ports (default "7751 7752")
#   LOAD          (environment) the pubsub-load binary
#                 (default $CARGO_TARGET_DIR/release/pubsub-load)
#
# Per round and server: publishes/s, deliveries/s, latency p50/p99 ms, and
# server CPU µs per publish and ns per delivery.
set -euo pipefail
A=$1; B=$2; rounds=${3:-3}; subs=${4:-1}; n=${5:-100000}
read -r pa_port pb_port <<<"${PORTS:-7751 7752}"
load=${LOAD:-${CARGO_TARGET_DIR:-target}/release/pubsub-load}
flags=(--subscribers "$subs" --messages "$n")
[[ ${PATTERN:-0} == 1 ]] && flags+=(--pattern)
ulimit -n 4096 2>/dev/null || true
start() { local bin=$1 port=$2
  if [[ $bin == redis ]]; then
    taskset -c 1 redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
  else
    taskset -c 1 "$bin" --port "$port" --bind 127.0.0.1 --save '' >/dev/null 2>&1 &
  fi
  echo $!; }
cpu() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f", s }'; }
pa=$(start "$A" "$pa_port"); pb=$(start "$B" "$pb_port")
# The servers are not this shell's children (started in a subshell): wait
# for them to be gone, so that the next run finds its ports free.
stop() { kill "$pa" "$pb" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pa" 2>/dev/null || kill -0 "$pb" 2>/dev/null || break; sleep 0.1; done; }
trap stop EXIT
for port in "$pa_port" "$pb_port"; do
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
done
run() { local port=$1 pid=$2
  local before; before=$(cpu "$pid")
  local line; line=$(taskset -c 0 "$load" --addr 127.0.0.1:"$port" "${flags[@]}")
  local after; after=$(cpu "$pid")
  read -r pubs delivs p50 p99 _ <<<"$line"
  awk -v b="$before" -v a="$after" -v n="$n" -v s="$subs" -v p="$pubs" -v d="$delivs" -v p50="$p50" -v p99="$p99" \
    'BEGIN { printf "%8.0f pub/s %9.0f deliv/s %7.2f/%-7.2f ms %7.2f us/pub %6.0f ns/deliv", p, d, p50, p99, (a-b)/n/1000, (a-b)/(n*s) }'; }
for _ in $(seq "$rounds"); do echo "A $(run "$pa_port" "$pa")   B $(run "$pb_port" "$pb")"; done

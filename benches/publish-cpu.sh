#!/usr/bin/env bash
# Server CPU per PUBLISH, two servers side by side: each pinned to core 1,
# redis-benchmark (50 connections, one PUBLISH in flight each) and SUBS
# `redis-cli SUBSCRIBE ch` subscribers on core 0; rounds alternate A and B.
# CPU from /proc schedstat over N publishes.
#
# Usage: benches/publish-cpu.sh BIN_A BIN_B [ROUNDS] [SUBS]
#   BIN_A, BIN_B  an ember-server binary, or `redis` for redis-server
#   N             (environment) publishes per round (default 200000)
#   PORTS         (environment) the two servers' ports (default "7821 7822")
A=$1; B=$2; rounds=${3:-3}; subs=${4:-1}; n=${N:-200000}
read -r port_a port_b <<<"${PORTS:-7821 7822}"
start() { local bin=$1 port=$2
  if [[ $bin == redis ]]; then taskset -c 1 redis-server --port $port --save '' --appendonly no >/dev/null & else taskset -c 1 $bin --port $port --threads 1 --save "" >/dev/null 2>&1 & fi
  echo $!; }
cpu() { cat /proc/$1/task/*/schedstat | awk '{s+=$1} END {printf "%.0f", s}'; }
pa=$(start $A $port_a); pb=$(start $B $port_b)
for port in $port_a $port_b; do for i in $(seq 100); do redis-cli -p $port ping >/dev/null 2>&1 && break; sleep 0.05; done; done
run() { local port=$1 pid=$2; local sp=()
  for s in $(seq $subs); do taskset -c 0 redis-cli -p $port subscribe ch >/dev/null & sp+=($!); done
  for i in $(seq 100); do [[ $(redis-cli -p $port pubsub numsub ch | tail -1) == $subs ]] && break; sleep 0.05; done
  local b=$(cpu $pid)
  local rps=$(taskset -c 0 redis-benchmark -p $port -c 50 -n $n -q PUBLISH ch hello-subscriber 2>/dev/null | grep -o '[0-9.]* requests per second' | awk '{print $1}')
  local a=$(cpu $pid)
  kill ${sp[@]} 2>/dev/null; wait ${sp[@]} 2>/dev/null
  awk -v a=$b -v b=$a -v n=$n -v r=$rps 'BEGIN{printf "%8.0f rps %6.3f us/pub", r, (b-a)/n/1000}'; }
for r in $(seq $rounds); do echo "A $(run $port_a $pa)   B $(run $port_b $pb)"; done
kill $pa $pb; wait $pa $pb 2>/dev/null

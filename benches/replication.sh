#!/usr/bin/env bash
# Replication side by side: the same N keys (redis-benchmark's key shape,
# loaded through `redis-cli --pipe`) in a redis-server master and an Ember
# master, then for each:
#   1. full sync: a fresh replica of the same kind runs REPLICAOF; the time
#      until its link is up with every key loaded;
#   2. load: redis-benchmark SET (pipeline 16, 50 clients) on the master
#      with the replica attached; requests/s, and the replication lag
#      (master_repl_offset - the replica's offset, sampled every 50 ms):
#      mean and max, and how long the replica took to catch up after the
#      load stopped.
# The Redis master runs with repl-diskless-sync-delay 0 (Redis 7.0 waits 5 s
# by default for more replicas to join a diskless sync).
#
# Usage: benches/replication.sh [KEYS] [REQUESTS]   (defaults: 1000000 2000000)
set -euo pipefail
cd "$(dirname "$0")/.."

keys=${1:-1000000}
requests=${2:-2000000}
source benches/servers.sh
start_servers
redis-cli -p "$redis_port" config set repl-diskless-sync-delay 0 >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_replica_port=$(free_port)
ember_replica_port=$(free_port)
mkdir -p "$workdir/replica"
redis-server --port "$redis_replica_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$workdir/replica" >/dev/null &
redis_replica_pid=$!
target/release/ember-server --port "$ember_replica_port" --save "" >/dev/null 2>&1 &
ember_replica_pid=$!
trap 'kill $redis_pid $ember_pid $redis_replica_pid $ember_replica_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$workdir"' EXIT
for port in "$redis_replica_port" "$ember_replica_port"; do
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
done

python3 - "$keys" > "$workdir/load.resp" <<'PY'
import sys
keys = int(sys.argv[1])
out = sys.stdout.buffer
for i in range(keys):
    key = b"key:%012d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n" % (len(key), key))
PY

field() { redis-cli -p "$1" info replication | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }
now_ms() { date +%s%3N; }

printf '%-6s %10s %14s %14s %12s %12s %14s\n' master keys "full sync ms" "SET req/s" "lag mean B" "lag max B" "catch-up ms"
for name in ${ORDER:-redis ember}; do
    if [[ $name == redis ]]; then mport=$redis_port; rport=$redis_replica_port
    else mport=$ember_port; rport=$ember_replica_port; fi
    redis-cli -p "$mport" --pipe < "$workdir/load.resp" >/dev/null
    start=$(now_ms)
    redis-cli -p "$rport" replicaof 127.0.0.1 "$mport" >/dev/null
    until [[ $(field "$rport" master_link_status) == up && $(redis-cli -p "$rport" dbsize) == "$keys" ]]; do
        sleep 0.01
    done
    synced=$(( $(now_ms) - start ))
    # Load, sampling the lag meanwhile.
    redis-benchmark -p "$mport" -t set -n "$requests" -r 1000000 -P 16 -c 50 -q --csv \
        > "$workdir/bench.csv" 2>/dev/null &
    bench=$!
    samples=()
    while kill -0 "$bench" 2>/dev/null; do
        # The replica first: the lag is never underestimated.
        r=$(field "$rport" slave_repl_offset); m=$(field "$mport" master_repl_offset)
        [[ -n $m && -n $r ]] && samples+=($((m - r)))
        sleep 0.05
    done
    wait "$bench"
    stop=$(now_ms)
    target=$(field "$mport" master_repl_offset)
    until (( $(field "$rport" slave_repl_offset) >= target )); do sleep 0.005; done
    catchup=$(( $(now_ms) - stop ))
    rps=$(awk -F'","' '/SET/ { gsub(/"/, "", $2); print $2 }' "$workdir/bench.csv")
    stats=$(printf '%s\n' "${samples[@]:-0}" | awk '{ s += $1; if ($1 > m) m = $1 } END { printf "%.0f %d", s / NR, m }')
    printf '%-6s %10s %14s %14s %12s %12s %14s\n' "$name" "$keys" "$synced" "$rps" ${stats} "$catchup"
done

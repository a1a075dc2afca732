#!/usr/bin/env bash
# Side-by-side throughput: redis-benchmark against redis-server and a release
# ember-server, started here on free loopback ports, runs interleaved so both
# see the same machine state. Prints requests/s for both, the ratio
# (Ember / Redis), p50/p99 latency at pipeline 1, and the geometric mean.
#
# Usage: benches/vs-redis.sh [REQUESTS] [TESTS] [THREADS]
#   REQUESTS  requests per run at pipeline 1 (default 200000; ten times as
#             many at pipeline 16)
#   TESTS     comma-separated redis-benchmark tests (default set,get,incr,mset)
#   THREADS   ember-server --threads (default: its own, one per core but one); 1 gives
#             Ember the one thread Redis executes commands on
#   ROUNDS    (environment) runs per row and server, alternating between the
#             servers; each server's row is the run with its median rps
#             (default 3). One run of a row moves by up to 10% on a shared
#             two-core machine; the median of three moves far less.
#   PIN=1     (environment) load generator on the first core, servers on the
#             others (see benches/servers.sh)
#   KEYSPACE=N (environment) spread the keys over N random ones
#             (redis-benchmark -r N); each server is first loaded with them
#             (one SET per key), so that GET finds values and INCR counts
#
# The last column is each server's CPU time per request (all its threads,
# from /proc), Redis's then Ember's: steadier than requests/s when the load
# generator, not the server, is what saturates.
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${1:-200000}
tests=${2:-set,get,incr,mset}
threads=${3:-}
rounds=${ROUNDS:-3}
clients=50

command -v redis-benchmark >/dev/null || {
    echo "needs redis-benchmark (apt-get install redis-tools)" >&2
    exit 1
}
keyspace=${KEYSPACE:-}
source benches/servers.sh
start_servers ${threads:+--threads "$threads"}
if [[ -n $keyspace ]]; then
    # redis-benchmark's keys are `key:` (GET, SET, INCR's `counter:`...)
    # and twelve digits: load both families, numbers in INCR's range.
    python3 - "$keyspace" > "$workdir/preload.resp" <<'PY'
import sys
out = sys.stdout.buffer
for i in range(int(sys.argv[1])):
    for key in (b"key:%012d" % i, b"counter:%012d" % i):
        out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(key), key))
PY
    for port in "$redis_port" "$ember_port"; do
        redis-cli -p "$port" --pipe < "$workdir/preload.resp" >/dev/null
    done
fi

# One run: prints "rps p50 p99 cpu" for a test against a server, cpu being
# the server's CPU time per request in microseconds.
run() {
    local port=$1 pid=$2 test=$3 pipeline=$4 before after requests=$requests
    # Pipelined runs are ten times as long: 200,000 pipelined requests take
    # a tenth of a second, which start-up and scheduling blur.
    ((pipeline > 1)) && requests=$((requests * 10))
    before=$(cpu_ns "$pid")
    $client_cpus redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n "$requests" -P "$pipeline" \
        ${keyspace:+-r "$keyspace"} -t "$test" --csv 2>/dev/null |
        awk -F, 'NR==2 { gsub(/"/, ""); printf "%s %s %s ", $2, $5, $7 }'
    after=$(cpu_ns "$pid")
    awk -v a="$before" -v b="$after" -v n="$requests" 'BEGIN { printf "%.2f\n", (b - a) / n / 1000 }'
}

# The run with the median rps among lines of "rps p50 p99 cpu", with the
# median cpu of all of them.
median() {
    local cpu
    cpu=$(printf '%s' "$1" | grep . | awk '{ print $4 }' | sort -n | awk '{ v[NR] = $0 } END { print v[int((NR + 1) / 2)] }')
    printf '%s' "$1" | grep . | sort -n | awk -v cpu="$cpu" '{ line[NR] = $1 " " $2 " " $3 } END { print line[int((NR + 1) / 2)], cpu }'
}

printf '%-6s %3s %12s %12s %7s %18s %18s %11s\n' test P redis_rps ember_rps ratio "redis p50/p99 ms" "ember p50/p99 ms" "CPU us/req"
log_sum=0
rows=0
for pipeline in 1 16; do
    for test in ${tests//,/ }; do
        r_runs=""; e_runs=""
        for _ in $(seq "$rounds"); do
            r_runs+="$(run "$redis_port" "$redis_pid" "$test" "$pipeline")"$'\n'
            e_runs+="$(run "$ember_port" "$ember_pid" "$test" "$pipeline")"$'\n'
        done
        read -r r_rps r_p50 r_p99 r_cpu < <(median "$r_runs")
        read -r e_rps e_p50 e_p99 e_cpu < <(median "$e_runs")
        ratio=$(awk -v e="$e_rps" -v r="$r_rps" 'BEGIN { printf "%.2f", e / r }')
        log_sum=$(awk -v s="$log_sum" -v x="$ratio" 'BEGIN { print s + log(x) }')
        rows=$((rows + 1))
        lat_r="-"; lat_e="-"
        if [[ $pipeline == 1 ]]; then lat_r="$r_p50/$r_p99"; lat_e="$e_p50/$e_p99"; fi
        printf '%-6s %3s %12s %12s %7s %18s %18s %11s\n' "$test" "$pipeline" "$r_rps" "$e_rps" "${ratio}x" "$lat_r" "$lat_e" "$r_cpu/$e_cpu"
    done
done
awk -v s="$log_sum" -v n="$rows" 'BEGIN { printf "geometric mean ratio (Ember / Redis): %.2fx over %d rows\n", exp(s / n), n }'

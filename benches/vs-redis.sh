#!/usr/bin/env bash
# Side-by-side throughput: redis-benchmark against redis-server and a release
# ember-server, started here on free loopback ports, runs interleaved so both
# see the same machine state. Prints requests/s for both, the ratio
# (Ember / Redis), p50/p99 latency at pipeline 1, and the geometric mean.
#
# Usage: benches/vs-redis.sh [REQUESTS] [TESTS] [THREADS]
#   REQUESTS  requests per run (default 200000)
#   TESTS     comma-separated redis-benchmark tests (default set,get,incr,mset)
#   THREADS   ember-server --threads (default: its own, one per core but one); 1 gives
#             Ember the one thread Redis executes commands on
#   ROUNDS    (environment) runs per row and server, alternating between the
#             servers; each server's row is the run with its median rps
#             (default 3). One run of a row moves by up to 10% on a shared
#             two-core machine; the median of three moves far less.
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
source benches/servers.sh
start_servers ${threads:+--threads "$threads"}

# One run: prints "rps p50 p99" for a test against a port.
run() {
    local port=$1 test=$2 pipeline=$3
    redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n "$requests" -P "$pipeline" \
        -t "$test" --csv 2>/dev/null |
        awk -F, 'NR==2 { gsub(/"/, ""); print $2, $5, $7 }'
}

# The run with the median rps among lines of "rps p50 p99".
median() {
    printf '%s' "$1" | grep . | sort -n | awk '{ line[NR] = $0 } END { print line[int((NR + 1) / 2)] }'
}

printf '%-6s %3s %12s %12s %7s %18s %18s\n' test P redis_rps ember_rps ratio "redis p50/p99 ms" "ember p50/p99 ms"
log_sum=0
rows=0
for pipeline in 1 16; do
    for test in ${tests//,/ }; do
        r_runs=""; e_runs=""
        for _ in $(seq "$rounds"); do
            r_runs+="$(run "$redis_port" "$test" "$pipeline")"$'\n'
            e_runs+="$(run "$ember_port" "$test" "$pipeline")"$'\n'
        done
        read -r r_rps r_p50 r_p99 < <(median "$r_runs")
        read -r e_rps e_p50 e_p99 < <(median "$e_runs")
        ratio=$(awk -v e="$e_rps" -v r="$r_rps" 'BEGIN { printf "%.2f", e / r }')
        log_sum=$(awk -v s="$log_sum" -v x="$ratio" 'BEGIN { print s + log(x) }')
        rows=$((rows + 1))
        lat_r="-"; lat_e="-"
        if [[ $pipeline == 1 ]]; then lat_r="$r_p50/$r_p99"; lat_e="$e_p50/$e_p99"; fi
        printf '%-6s %3s %12s %12s %7s %18s %18s\n' "$test" "$pipeline" "$r_rps" "$e_rps" "${ratio}x" "$lat_r" "$lat_e"
    done
done
awk -v s="$log_sum" -v n="$rows" 'BEGIN { printf "geometric mean ratio (Ember / Redis): %.2fx over %d rows\n", exp(s / n), n }'

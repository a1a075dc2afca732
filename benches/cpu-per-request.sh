#!/usr/bin/env bash
# Server CPU per request on a keyspace of realistic size, Redis beside
# Ember: both servers pinned to the second core, redis-benchmark to the
# first (PIN=1 is forced), each server preloaded with the same KEYS keys,
# then the same commands over them, runs alternating between the servers.
# The CPU is each server's own (all its threads, from /proc schedstat),
# divided by the requests: steadier than requests/s, which on two cores the
# load generator bounds first.
#
# Usage: benches/cpu-per-request.sh [KEYS] [REQUESTS] [TESTS]
#   KEYS      preloaded keys (default 1000000); 1 measures one hot key
#   REQUESTS  requests per run (default 2000000)
#   TESTS     comma-separated (default get,set,incr,mget10,exists,expire,hget,hset);
#             also zadd (ZADD into one sorted set, random members, which
#             grows to KEYS members), zrange100 (ZRANGE of a 100-member set)
#   ROUNDS    (environment) runs per row and server, alternating; the
#             median counts (default 3)
#   PIPELINES (environment) default "1 16"
#   SPLIT     (environment) 1: also each server's user and system CPU per
#             request (from /proc/PID/stat, in clock ticks: use enough
#             requests that a run takes seconds), medians of the rounds
#
# Keys are `key:NNNNNNNNNNNN` (redis-benchmark's -r form) holding "1", and
# `hash:NNNNNNNNNNNN` holding one field `f`; INCR, EXPIRE and HSET work on
# those same keys, so the keyspace keeps its size during the runs.
#
# Cache misses per request are not reported: this machine's perf sees no
# hardware counters (a VM); where `perf stat -e cache-misses` works, run it
# with -p on each server around one row.
set -euo pipefail
cd "$(dirname "$0")/.."

keys=${1:-1000000}
requests=${2:-2000000}
tests=${3:-get,set,incr,mget10,exists,expire,hget,hset}
rounds=${ROUNDS:-3}
pipelines=${PIPELINES:-1 16}
clients=50
export PIN=1

command -v redis-benchmark >/dev/null || {
    echo "needs redis-benchmark (apt-get install redis-tools)" >&2
    exit 1
}
source benches/servers.sh
# One thread serving connections: Redis executes commands on one.
start_servers --threads 1

# The preload, written once and replayed to both servers.
python3 - "$keys" > "$workdir/preload.resp" <<'PY'
import sys
out = sys.stdout.buffer
for i in range(int(sys.argv[1])):
    key = b"key:%012d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(key), key))
    h = b"hash:%012d" % i
    out.write(b"*4\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n$1\r\nf\r\n$1\r\n1\r\n" % (len(h), h))
for i in range(100):
    m = b"member:%d" % i
    out.write(b"*4\r\n$4\r\nZADD\r\n$2\r\nzr\r\n$%d\r\n%d\r\n$%d\r\n%s\r\n" % (len(b"%d" % i), i, len(m), m))
PY
for port in "$redis_port" "$ember_port"; do
    redis-cli -p "$port" --pipe < "$workdir/preload.resp" >/dev/null
done

# The command line of a test, with -r for the keyspace.
command_of() {
    local k="key:__rand_int__" h="hash:__rand_int__"
    case $1 in
        get) echo "GET $k" ;;
        set) echo "SET $k 1" ;;
        incr) echo "INCR $k" ;;
        mget10) echo "MGET $k $k $k $k $k $k $k $k $k $k" ;;
        exists) echo "EXISTS $k" ;;
        expire) echo "EXPIRE $k 100000" ;;
        hget) echo "HGET $h f" ;;
        hset) echo "HSET $h f 2" ;;
        zadd) echo "ZADD zbig __rand_int__ member:__rand_int__" ;;
        zrange100) echo "ZRANGE zr 0 99" ;;
        *) echo "unknown test $1" >&2; exit 1 ;;
    esac
}

# A process's user and system CPU (all its threads), in clock ticks.
ticks() { awk '{ print $14, $15 }' /proc/"$1"/stat; }

# One run: the server's CPU microseconds per request, then its user and
# system parts.
run() {
    local port=$1 pid=$2 test=$3 pipeline=$4 before after t0 t1
    before=$(cpu_ns "$pid")
    t0=$(ticks "$pid")
    # shellcheck disable=SC2046
    $client_cpus redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n "$requests" -P "$pipeline" \
        -r "$keys" -q $(command_of "$test") >/dev/null 2>&1
    after=$(cpu_ns "$pid")
    t1=$(ticks "$pid")
    awk -v a="$before" -v b="$after" -v n="$requests" -v t0="$t0" -v t1="$t1" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN {
            split(t0, x, " "); split(t1, y, " ")
            printf "%.3f %.3f %.3f\n", (b - a) / n / 1000,
                (y[1] - x[1]) * 1e6 / hz / n, (y[2] - x[2]) * 1e6 / hz / n
        }'
}

# The median of column $1 of the runs.
median() { awk -v c="$1" '{ print $c }' | sort -n | awk '{ v[NR] = $0 } END { print v[int((NR + 1) / 2)] }'; }

if [[ ${SPLIT:-0} == 1 ]]; then
    printf '%-8s %3s %10s %16s %16s %8s %10s %10s %10s %10s\n' test P keys "redis us/req" \
        "ember us/req" "E / R" "R user" "R sys" "E user" "E sys"
else
    printf '%-8s %3s %10s %16s %16s %8s\n' test P keys "redis us/req" "ember us/req" "E / R"
fi
for pipeline in $pipelines; do
    for test in ${tests//,/ }; do
        r_runs=""; e_runs=""
        for _ in $(seq "$rounds"); do
            r_runs+="$(run "$redis_port" "$redis_pid" "$test" "$pipeline")"$'\n'
            e_runs+="$(run "$ember_port" "$ember_pid" "$test" "$pipeline")"$'\n'
        done
        r=$(printf '%s' "$r_runs" | grep . | median 1)
        e=$(printf '%s' "$e_runs" | grep . | median 1)
        printf '%-8s %3s %10s %16s %16s %7sx' "$test" "$pipeline" "$keys" "$r" "$e" \
            "$(awk -v e="$e" -v r="$r" 'BEGIN { printf "%.2f", e / r }')"
        if [[ ${SPLIT:-0} == 1 ]]; then
            for runs in "$r_runs" "$e_runs"; do
                for column in 2 3; do
                    printf ' %10s' "$(printf '%s' "$runs" | grep . | median "$column")"
                done
            done
        fi
        printf '\n'
    done
done

#!/usr/bin/env bash
# ember-proxy against twemproxy (Debian's nutcracker 0.5.0), both in front
# of the same two redis-server shards (one replica group, so both do the
# same work), with redis-benchmark -c 50 at pipeline 1 and 16. Then
# ember-proxy with two replica groups (twemproxy has none): the cost of
# replication. Prints requests/s, the ratio (Ember / twemproxy), and each
# proxy's CPU time per request (from /proc).
#
# Usage: PIN=1 benches/proxy-vs-twemproxy.sh [REQUESTS] [ROUNDS]
#   REQUESTS  per run at pipeline 1 (default 100000; ten times as many at 16)
#   ROUNDS    runs per row and proxy, alternating; the median is shown (3)
#   PIN=1     redis-benchmark on core 0, servers and proxies on the others
#   TESTS     the rows, space-separated (default: set get incr mset mget)
#   PIPELINES the pipeline depths, space-separated (default: 1 16)
#   PROXY     the ember-proxy binary (default: a release build of this tree,
#             in $CARGO_TARGET_DIR if set), to compare two builds
#   GROUPS2=0 skips the two-group ember-proxy column
#   PORT_BASE ports from this one up (default: any free ports)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-100000}
rounds=${2:-3}
for tool in redis-server redis-benchmark nutcracker; do
    command -v $tool >/dev/null || { echo "needs $tool (apt-get install redis-server redis-tools nutcracker)" >&2; exit 1; }
done
server_cpus="" client_cpus=""
if [[ ${PIN:-0} == 1 ]] && (($(nproc) >= 2)); then
    server_cpus="taskset -c 1-$(($(nproc) - 1))"
    client_cpus="taskset -c 0"
fi
if [[ -z ${PROXY:-} ]]; then
    cargo build --release -q -p ember-proxy
    PROXY=${CARGO_TARGET_DIR:-target}/release/ember-proxy
fi
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
# PORT_BASE=N: ports N, N+1... (else any free port).
free_port() {
    if [[ -n ${PORT_BASE:-} ]]; then
        local n; n=$(cat "$workdir/next-port" 2>/dev/null || echo "$PORT_BASE")
        echo $((n + 1)) >"$workdir/next-port"; echo "$n"
    else
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    fi
}
wait_port() { for _ in $(seq 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.05; done; echo "port $1 never answered" >&2; exit 1; }

workdir=$(mktemp -d)
pids=()
trap 'kill ${pids[@]} 2>/dev/null; wait 2>/dev/null; rm -rf "$workdir"' EXIT
# Starts a redis-server and sets the variable named $1 to its port.
redis() {
    local port; port=$(free_port)
    mkdir -p "$workdir/$port"
    $server_cpus redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir/$port" >/dev/null &
    pids+=($!); wait_port "$port"; printf -v "$1" '%s' "$port"
}
redis s1; redis s2; redis r1; redis r2

twem_port=$(free_port)
cat > "$workdir/nutcracker.yml" <<YML
pool:
  listen: 127.0.0.1:$twem_port
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  servers:
   - 127.0.0.1:$s1:1
   - 127.0.0.1:$s2:1
YML
$server_cpus nutcracker -c "$workdir/nutcracker.yml" -o "$workdir/nutcracker.log" >/dev/null 2>&1 &
twem_pid=$!; pids+=($twem_pid); wait_port "$twem_port"

ember_port=$(free_port)
$server_cpus "$PROXY" --port "$ember_port" --threads 1 \
    --replica "127.0.0.1:$s1,127.0.0.1:$s2" >/dev/null 2>&1 &
ember_pid=$!; pids+=($ember_pid); wait_port "$ember_port"

ember2_port=$ember_port ember2_pid=$ember_pid
if [[ ${GROUPS2:-1} != 0 ]]; then
    ember2_port=$(free_port)
    $server_cpus "$PROXY" --port "$ember2_port" --threads 1 \
        --replica "127.0.0.1:$s1,127.0.0.1:$s2" --replica "127.0.0.1:$r1,127.0.0.1:$r2" >/dev/null 2>&1 &
    ember2_pid=$!; pids+=($ember2_pid); wait_port "$ember2_port"
fi

# One run: "rps cpu_us_per_request".
run() {
    local port=$1 pid=$2 test=$3 pipeline=$4 n=$requests before after
    ((pipeline > 1)) && n=$((requests * 10))
    before=$(cpu_ns "$pid")
    if [[ $test == mget ]]; then
        $client_cpus redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n "$n" -P "$pipeline" -r 100000 --csv \
            MGET key:__rand_int__ key:__rand_int__ key:__rand_int__ key:__rand_int__ key:__rand_int__ \
            key:__rand_int__ key:__rand_int__ key:__rand_int__ key:__rand_int__ key:__rand_int__ 2>/dev/null |
            awk -F, 'NR==2 { gsub(/"/, ""); printf "%s ", $2 }'
    else
        $client_cpus redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -n "$n" -P "$pipeline" -r 100000 -t "$test" --csv 2>/dev/null |
            awk -F, 'NR==2 { gsub(/"/, ""); printf "%s ", $2 }'
    fi
    after=$(cpu_ns "$pid")
    awk -v a="$before" -v b="$after" -v n="$n" 'BEGIN { printf "%.2f\n", (b - a) / n / 1000 }'
}
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $0 } END { print v[int((NR + 1) / 2)] }'; }

printf '%-6s %3s %12s %12s %6s %9s %9s %14s %9s\n' test P twemproxy ember ratio "twem µs" "ember µs" "ember 2 groups" "µs"
for test in ${TESTS:-set get incr mset mget}; do
    for pipeline in ${PIPELINES:-1 16}; do
        t=() e=() e2=()
        for _ in $(seq "$rounds"); do
            t+=("$(run "$twem_port" "$twem_pid" $test $pipeline)")
            e+=("$(run "$ember_port" "$ember_pid" $test $pipeline)")
            if [[ ${GROUPS2:-1} != 0 ]]; then
                e2+=("$(run "$ember2_port" "$ember2_pid" $test $pipeline)")
            else
                e2+=("0 0")
            fi
        done
        tm=$(median "${t[@]}") em=$(median "${e[@]}") e2m=$(median "${e2[@]}")
        read -r trps tcpu <<<"$tm"; read -r erps ecpu <<<"$em"; read -r e2rps e2cpu <<<"$e2m"
        printf '%-6s %3s %12.0f %12.0f %6.2f %9s %9s %14.0f %9s\n' $test $pipeline "$trps" "$erps" \
            "$(awk -v a="$erps" -v b="$trps" 'BEGIN { print a / b }')" "$tcpu" "$ecpu" "$e2rps" "$e2cpu"
    done
done

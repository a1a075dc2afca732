# Sourced by the side-by-side scripts: builds a release ember-server, starts
# it and redis-server on free loopback ports (persistence off), waits until
# both answer, and stops both on exit.
#
# After `start_servers [EMBER_FLAGS...]`: redis_port, ember_port, redis_pid,
# ember_pid and workdir (a scratch directory removed on exit). EMBER
# (environment) names an ember-server binary to run instead of building one
# (scripts/build-pgo's, or another commit's).

# With PIN=1 (and two cores or more), the servers run on every core but the
# first and load generators (run through $client_cpus) on the first, so that
# neither migrates onto the other's core mid-run: runs then vary by about 2%
# instead of 10% on a two-core machine.
server_cpus=""
client_cpus=""
if [[ ${PIN:-0} == 1 ]] && command -v taskset >/dev/null && (($(nproc) >= 2)); then
    server_cpus="taskset -c 1-$(($(nproc) - 1))"
    client_cpus="taskset -c 0"
fi

# Nanoseconds a process's threads have run, from /proc.
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

start_servers() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
        echo "needs redis-server and redis-cli (apt-get install redis-server redis-tools)" >&2
        exit 1
    }
    local ember=${EMBER:-}
    if [[ -z $ember ]]; then
        cargo build --release -q -p ember-server
        ember=${CARGO_TARGET_DIR:-target}/release/ember-server
    fi
    local free_port='import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    # REDIS_PORT and EMBER_PORT (environment) pick them instead.
    redis_port=${REDIS_PORT:-$(python3 -c "$free_port")}
    ember_port=${EMBER_PORT:-$(python3 -c "$free_port")}
    workdir=$(mktemp -d)
    $server_cpus redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir" >/dev/null &
    redis_pid=$!
    $server_cpus "$ember" --port "$ember_port" --save "" "$@" >/dev/null 2>&1 &
    ember_pid=$!
    trap 'kill $redis_pid $ember_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$workdir"' EXIT
    local port
    for port in "$redis_port" "$ember_port"; do
        for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    done
}

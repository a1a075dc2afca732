# Sourced by the side-by-side scripts: builds a release ember-server, starts
# it and redis-server on free loopback ports (persistence off), waits until
# both answer, and stops both on exit.
#
# After `start_servers [EMBER_FLAGS...]`: redis_port, ember_port, redis_pid,
# ember_pid and workdir (a scratch directory removed on exit).

start_servers() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
        echo "needs redis-server and redis-cli (apt-get install redis-server redis-tools)" >&2
        exit 1
    }
    cargo build --release -q -p ember-server
    local free_port='import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    redis_port=$(python3 -c "$free_port")
    ember_port=$(python3 -c "$free_port")
    workdir=$(mktemp -d)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir" >/dev/null &
    redis_pid=$!
    target/release/ember-server --port "$ember_port" "$@" >/dev/null 2>&1 &
    ember_pid=$!
    trap 'kill $redis_pid $ember_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$workdir"' EXIT
    local port
    for port in "$redis_port" "$ember_port"; do
        for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    done
}

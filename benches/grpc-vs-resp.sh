#!/usr/bin/env bash
# gRPC against RESP on the same server: requests/s and latency percentiles
# with 50 concurrent gRPC streams (one HTTP/2 channel) and with 50 RESP
# connections, Get then Set, through ember-server's own gRPC side and
# through ember-proxy's (in front of the same server). PIN=1 puts the
# servers on the second core and the load generator on the first.
#
# Usage: benches/grpc-vs-resp.sh [REQUESTS] [STREAMS]   (defaults 200000 50)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-200000}
streams=${2:-50}
cargo build --release -q -p ember-server -p ember-proxy -p ember-benches
free_port='import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
server_cpus=""; client_cpus=""
if [[ ${PIN:-0} == 1 ]] && (($(nproc) >= 2)); then
    server_cpus="taskset -c 1-$(($(nproc) - 1))"; client_cpus="taskset -c 0"
fi
port=$(python3 -c "$free_port"); grpc=$(python3 -c "$free_port")
pport=$(python3 -c "$free_port"); pgrpc=$(python3 -c "$free_port")
workdir=$(mktemp -d)
repo=$(pwd)
(cd "$workdir" && exec $server_cpus "$repo"/target/release/ember-server --port "$port" --grpc-port "$grpc" >/dev/null 2>&1) &
server=$!
trap 'kill $server ${proxy:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$workdir"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
$server_cpus target/release/ember-proxy --port "$pport" --grpc-port "$pgrpc" --replica "127.0.0.1:$port" >/dev/null 2>&1 &
proxy=$!
for _ in $(seq 100); do redis-cli -p "$pport" ping >/dev/null 2>&1 && break; sleep 0.05; done
echo "# ember-server (RESP and its own gRPC), $streams tasks, $requests requests per row"
$client_cpus target/release/grpc-load --resp "127.0.0.1:$port" --grpc "127.0.0.1:$grpc" \
    --streams "$streams" --requests "$requests"
echo "# ember-proxy in front of it (RESP and gRPC)"
$client_cpus target/release/grpc-load --resp "127.0.0.1:$pport" --grpc "127.0.0.1:$pgrpc" \
    --streams "$streams" --requests "$requests"

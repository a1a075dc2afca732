#!/usr/bin/env bash
# The seed's two numbers for one large value (100 MiB by default): the time
# to SET it and to GET it, and the time to the first byte of the GET, over
# RESP (straight to redis-server and ember-server, and through ember-proxy)
# and over gRPC through ember-proxy (unary Get/Set, and GetStream/SetStream
# in 1 MiB chunks). Median of ROUNDS runs (default 5).
#
# Usage: benches/big-value-grpc.sh [MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-100}
rounds=${ROUNDS:-5}
source benches/servers.sh
start_servers
cargo build --release -q -p ember-proxy
free_port='import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
proxy_port=$(python3 -c "$free_port")
grpc_port=$(python3 -c "$free_port")
$server_cpus target/release/ember-proxy --port "$proxy_port" --grpc-port "$grpc_port" \
    --replica "127.0.0.1:$ember_port" --timeout 60s >/dev/null 2>&1 &
proxy_pid=$!
trap 'kill $redis_pid $ember_pid $proxy_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$workdir"' EXIT
for _ in $(seq 100); do redis-cli -p "$proxy_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
stubs=$(mktemp -d)
python3 -m grpc_tools.protoc -I proto --python_out "$stubs" --grpc_python_out "$stubs" proto/ember/v1/ember.proto

$client_cpus python3 - "$redis_port" "$ember_port" "$proxy_port" "$grpc_port" "$mib" "$rounds" "$stubs" <<'PY'
import socket, statistics, sys, time
redis_port, ember_port, proxy_port, grpc_port, mib, rounds = map(int, sys.argv[1:7])
sys.path.insert(0, sys.argv[7])
import grpc
from ember.v1 import ember_pb2 as pb, ember_pb2_grpc as rpc

value = bytes(range(256)) * (mib * 1024 * 1024 // 256)

def resp(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def set_():
        t = time.perf_counter()
        s.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % len(value) + value + b"\r\n")
        assert s.recv(64) == b"+OK\r\n"
        return time.perf_counter() - t, None
    def get():
        t = time.perf_counter()
        s.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")
        first = s.recv(1 << 20)
        ttfb = time.perf_counter() - t
        header = first.index(b"\r\n")
        want = int(first[1:header]) + header + 4
        got = len(first)
        while got < want:
            got += len(s.recv(1 << 20))
        return time.perf_counter() - t, ttfb
    return set_, get

def grpc_ops(port, streamed):
    ch = grpc.insecure_channel("127.0.0.1:%d" % port, options=[
        ("grpc.max_receive_message_length", 1 << 30), ("grpc.max_send_message_length", 1 << 30)])
    cache = rpc.CacheStub(ch)
    chunk = 1 << 20
    def set_():
        t = time.perf_counter()
        if streamed:
            def chunks():
                yield pb.SetStreamChunk(key=b"big", data=value[:chunk])
                for at in range(chunk, len(value), chunk):
                    yield pb.SetStreamChunk(data=value[at:at + chunk])
            assert cache.SetStream(chunks()).stored
        else:
            assert cache.Set(pb.SetRequest(key=b"big", value=value)).stored
        return time.perf_counter() - t, None
    def get():
        t = time.perf_counter()
        if streamed:
            ttfb, n = None, 0
            for part in cache.GetStream(pb.GetStreamRequest(key=b"big", chunk_size=chunk)):
                if ttfb is None:
                    ttfb = time.perf_counter() - t
                n += len(part.data)
            assert n == len(value)
        else:
            r = cache.Get(pb.GetRequest(key=b"big"))
            ttfb = time.perf_counter() - t
            assert len(r.value) == len(value)
        return time.perf_counter() - t, ttfb
    return set_, get

rows = [
    ("RESP redis-server", resp(redis_port)),
    ("RESP ember-server", resp(ember_port)),
    ("RESP ember-proxy", resp(proxy_port)),
    ("gRPC unary (proxy)", grpc_ops(grpc_port, False)),
    ("gRPC streamed (proxy)", grpc_ops(grpc_port, True)),
]
print("%d MiB: median of %d runs, milliseconds" % (mib, rounds))
print("%-24s %10s %10s %14s" % ("path", "SET", "GET", "GET 1st byte"))
for name, (set_, get) in rows:
    sets, gets, firsts = [], [], []
    for _ in range(rounds):
        sets.append(set_()[0])
        total, first = get()
        gets.append(total)
        firsts.append(first)
    ms = lambda xs: statistics.median(xs) * 1000
    print("%-24s %10.1f %10.1f %14.1f" % (name, ms(sets), ms(gets), ms(firsts)))
PY

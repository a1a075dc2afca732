#!/usr/bin/env bash
# Time to SET and to GET one large value (100 MiB by default) on
# redis-server and a release ember-server, side by side: a client on a raw
# socket sends the whole command and waits for the whole reply. Prints the
# median of ROUNDS runs (default 5) for each server and the ratio.
#
# Usage: benches/big-value.sh [MIB]
set -euo pipefail
cd "$(dirname "$0")/.."

mib=${1:-100}
rounds=${ROUNDS:-5}
source benches/servers.sh
start_servers

python3 - "$redis_port" "$ember_port" "$mib" "$rounds" <<'PY'
import socket, statistics, sys, time

redis_port, ember_port, mib, rounds = map(int, sys.argv[1:])
value = bytes(range(256)) * (mib * 1024 * 1024 // 256)

def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def read_exactly(s, n):
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = s.recv_into(view[got:], n - got)
        if k == 0:
            raise SystemExit("connection closed")
        got += k
    return bytes(buf)

def timed_set(port):
    s = connect(port)
    cmd = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n" % len(value)
    start = time.perf_counter()
    s.sendall(cmd)
    s.sendall(value)
    s.sendall(b"\r\n")
    reply = read_exactly(s, 5)
    elapsed = time.perf_counter() - start
    assert reply == b"+OK\r\n", reply
    s.close()
    return elapsed

def timed_get(port):
    s = connect(port)
    header = b"$%d\r\n" % len(value)
    start = time.perf_counter()
    s.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")
    reply = read_exactly(s, len(header) + len(value) + 2)
    elapsed = time.perf_counter() - start
    assert reply[: len(header)] == header and reply[len(header) : -2] == value
    s.close()
    return elapsed

results = {}
for name, port in (("redis", redis_port), ("ember", ember_port)):
    results[name] = {"set": [], "get": []}
for _ in range(rounds):
    for name, port in (("redis", redis_port), ("ember", ember_port)):
        results[name]["set"].append(timed_set(port))
        results[name]["get"].append(timed_get(port))

print(f"{mib} MiB value, median of {rounds} runs")
print(f"{'op':4} {'redis ms':>10} {'ember ms':>10} {'redis/ember':>12}")
for op in ("set", "get"):
    r = statistics.median(results["redis"][op]) * 1000
    e = statistics.median(results["ember"][op]) * 1000
    print(f"{op.upper():4} {r:10.1f} {e:10.1f} {r / e:11.2f}x")
PY

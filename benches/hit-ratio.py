#!/usr/bin/env python3
"""Hit ratio at equal maxmemory: redis-server against ember-server, same
policies, same reproducible traces (docs/memory.md).

Each trace is a sequence of key reads; a client GETs each key and, on a
miss, SETs it (a cache in front of a slower store). Every (server, policy,
trace) run starts a fresh server with `maxmemory` and the policy, replays
the trace in pipelined chunks, and counts hits after a warm-up (the first
fifth of the trace).

Traces (seeded: the same keys in the same order every run):
  zipf-0.8, zipf-1.0   Zipf-distributed reads over KEYS keys
  zipf-scan            Zipf 1.0, and every REQUESTS/20 reads a scan of
                       KEYS/10 keys (at most REQUESTS/20) read once and
                       never again
  shifting             Zipf 1.0 over a working set that moves by KEYS/4
                       keys four times

Usage: benches/hit-ratio.py EMBER_BIN [KEYS] [REQUESTS] [MAXMEMORY_MB] [SVG]
   (defaults: 200000 1000000 16; needs redis-server and the redis module)
   With SVG, also writes the results as a bar chart to that file.
   TRACES=zipf-0.8,... runs only those traces; RUNS=0,1,6 only those
   columns (numbered as printed), for the long runs at 10M keys.
   DUMP_TRACES=DIR writes the traces to DIR/NAME.bin for
   `policy-sim` (src/bin/policy-sim.rs) instead, and runs nothing.
Prints one row per trace: each server and policy's hit ratio, in %, at
equal maxmemory, and Ember's again at the maxmemory where it holds as many
keys as Redis (its per-key overhead and startup memory differ: the second
pair compares the eviction policies alone); then Ember's own policy,
allkeys-s3fifo, at both.
"""

import array
import bisect
import itertools
import os
import random
import math
import socket
import subprocess
import sys
import time

import redis

VALUE = b"v" * 100
CHUNK = 500


def zipf_cdf(n, s):
    # Arrays of doubles, not lists of floats: at 10M keys a list would
    # take 320 MB a distribution.
    total = math.fsum(1.0 / (i + 1) ** s for i in range(n))
    cdf = array.array("d", itertools.accumulate((1.0 / (i + 1) ** s) / total for i in range(n)))
    return cdf


def draw(rng, cdf):
    return min(bisect.bisect_left(cdf, rng.random()), len(cdf) - 1)


def traces(keys, requests):
    rng = random.Random(16)
    # Ranks are spread over key names at random, so popular keys are not
    # neighbours in any table.
    names = array.array("q", range(keys * 2))
    rng.shuffle(names)
    c08, c10 = zipf_cdf(keys, 0.8), zipf_cdf(keys, 1.0)
    yield "zipf-0.8", [names[draw(rng, c08)] for _ in range(requests)]
    yield "zipf-1.0", [names[draw(rng, c10)] for _ in range(requests)]
    scan, out, fresh = requests // 20, [], keys
    scanned = min(keys // 10, scan)
    for i in range(requests):
        if i % scan == 0 and i > 0:
            out.extend(("scan", fresh + j) for j in range(scanned))
            fresh += scanned
        out.append(names[draw(rng, c10)])
    yield "zipf-scan", out
    out = []
    for i in range(requests):
        shift = (i * 4 // requests) * (keys // 4)
        out.append(names[(draw(rng, c10) + shift) % len(names)])
    yield "shifting", out


# HIT_RATIO_PORT=N: servers take ports N, N+1, ... (a range of one's own)
# instead of whatever port the system has free.
PORTS = itertools.count(int(os.environ["HIT_RATIO_PORT"])) if os.environ.get("HIT_RATIO_PORT") else None


def free_port():
    if PORTS is not None:
        return next(PORTS)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(kind, binary, memory, policy):
    port = free_port()
    if kind == "redis":
        cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    else:
        cmd = [binary, "--port", str(port), "--save", ""]
    cmd += ["--maxmemory", str(memory), "--maxmemory-policy", policy]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    con = redis.Redis(port=port)
    for _ in range(200):
        try:
            con.ping()
            return proc, con
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"{kind} did not start")


def calibrate(kind, binary, memory, policy="noeviction"):
    """The memory at which `kind` holds as many keys as Redis does within
    `memory`: each server's startup memory and bytes per key of the
    traces' shape, measured by filling 50,000 keys without a limit (under
    `policy` for `kind`: allkeys-s3fifo counts its queues)."""
    per = {}
    for k in ("redis", kind):
        proc, con = start(k, binary, 0, policy if k == kind else "noeviction")
        try:
            before = con.info("memory")["used_memory"]
            pipe = con.pipeline(transaction=False)
            for i in range(50_000):
                pipe.set(f"k:{i}", VALUE)
            pipe.execute()
            after = con.info("memory")["used_memory"]
            per[k] = (before, (after - before) / 50_000)
        finally:
            proc.terminate()
            proc.wait()
    (r0, rk), (e0, ek) = per["redis"], per[kind]
    keys = (memory - r0) / rk
    return int(e0 + keys * ek), per


def replay(con, trace):
    warm = len(trace) // 5
    hits = reads = 0
    for at in range(0, len(trace), CHUNK):
        chunk = trace[at : at + CHUNK]
        names = [f"s:{k[1]}" if isinstance(k, tuple) else f"k:{k}" for k in chunk]
        pipe = con.pipeline(transaction=False)
        for n in names:
            pipe.get(n)
        got = pipe.execute()
        pipe = con.pipeline(transaction=False)
        for i, (n, v) in enumerate(zip(names, got)):
            if v is None:
                pipe.set(n, VALUE)
            if at + i >= warm and not isinstance(chunk[i], tuple):
                reads += 1
                hits += v is not None
        pipe.execute()
    return 100.0 * hits / max(reads, 1)


def chart(path, runs, results):
    """A grouped bar chart (one group per trace, one bar per run) as SVG,
    written without any plotting library."""
    colors = ["#c0392b", "#e67e22", "#2980b9", "#16a085", "#8e44ad", "#2c3e50", "#27ae60", "#7f8c8d"]
    bar, gap, top, left, height = 14, 30, 30, 50, 260
    lo = min(min(r) for _, r in results) // 10 * 10
    hi = 100
    width = left + len(results) * (len(runs) * bar + gap) + 20
    y = lambda v: top + height - (v - lo) / (hi - lo) * height
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + height + 110}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="18" font-size="13">Hit ratio (%), Redis and Ember, same traces</text>',
    ]
    for v in range(int(lo), hi + 1, 5):
        out.append(f'<line x1="{left}" x2="{width - 10}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for g, (name, row) in enumerate(results):
        x0 = left + 10 + g * (len(runs) * bar + gap)
        for i, v in enumerate(row):
            x = x0 + i * bar
            out.append(
                f'<rect x="{x}" y="{y(v):.1f}" width="{bar - 2}" height="{top + height - y(v):.1f}" '
                f'fill="{colors[i % len(colors)]}"><title>{v:.2f}</title></rect>'
            )
        out.append(f'<text x="{x0}" y="{top + height + 15}">{name}</text>')
    for i, (kind, policy, mem) in enumerate(runs):
        yy = top + height + 35 + (i // 2) * 16
        xx = left + (i % 2) * 260
        out.append(f'<rect x="{xx}" y="{yy - 9}" width="10" height="10" fill="{colors[i % len(colors)]}"/>')
        out.append(f'<text x="{xx + 14}" y="{yy}">{kind} {policy} {mem / 2**20:.1f} MB</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def only(runs):
    """EMBER_ONLY=policy,... restricts the runs (for trying one policy)."""
    want = os.environ.get("EMBER_ONLY")
    if not want:
        return runs
    return [r for r in runs if r[1] in want.split(",")]


def dump(directory, keys, requests):
    """Writes each trace to DIR/NAME.bin, for policy-sim: 8 bytes a read,
    little-endian, a scanned key with its top bit set."""
    os.makedirs(directory, exist_ok=True)
    for name, trace in traces(keys, requests):
        out = array.array("Q", ((1 << 63) | k[1] if isinstance(k, tuple) else k for k in trace))
        if sys.byteorder != "little":
            out.byteswap()
        with open(os.path.join(directory, f"{name}.bin"), "wb") as f:
            out.tofile(f)
        print(f"{directory}/{name}.bin: {len(out)} reads")


def main():
    binary = sys.argv[1]
    keys = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    requests = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    if os.environ.get("DUMP_TRACES"):
        dump(os.environ["DUMP_TRACES"], keys, requests)
        return
    memory_mb = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    memory = memory_mb << 20
    equal_keys, per = calibrate("ember", binary, memory)
    equal_keys_s3, per_s3 = calibrate("ember", binary, memory, "allkeys-s3fifo")
    per["ember allkeys-s3fifo"] = per_s3["ember"]
    runs = [
        ("redis", "allkeys-lru", memory),
        ("redis", "allkeys-lfu", memory),
        ("ember", "allkeys-lru", memory),
        ("ember", "allkeys-lfu", memory),
        ("ember", "allkeys-lru", equal_keys),
        ("ember", "allkeys-lfu", equal_keys),
        ("ember", "allkeys-s3fifo", memory),
        ("ember", "allkeys-s3fifo", equal_keys_s3),
    ]
    runs = only(runs)
    if os.environ.get("RUNS"):
        runs = [runs[int(i)] for i in os.environ["RUNS"].split(",")]
    print(f"keys={keys} requests={requests} maxmemory={memory_mb}mb value=100B")
    for k, (startup, bpk) in per.items():
        print(f"{k}: startup {startup} bytes, {bpk:.1f} bytes per key")
    print(f"equal keys: ember at maxmemory {equal_keys} holds as many keys as redis at {memory}")
    print(f"equal keys: ember allkeys-s3fifo at maxmemory {equal_keys_s3}, its queues included")
    print("| trace | " + " | ".join(f"{k} {p} {m / 2**20:.1f}mb" for k, p, m in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    results = []
    wanted = os.environ.get("TRACES")
    for name, trace in traces(keys, requests):
        if wanted and name not in wanted.split(","):
            continue
        row = []
        for kind, policy, mem in runs:
            proc, con = start(kind, binary, mem, policy)
            try:
                row.append(replay(con, trace))
            finally:
                proc.terminate()
                proc.wait()
        print(f"| {name} | " + " | ".join(f"{r:.2f}" for r in row) + " |", flush=True)
        results.append((name, row))
    if len(sys.argv) > 5:
        chart(sys.argv[5], runs, results)


if __name__ == "__main__":
    main()

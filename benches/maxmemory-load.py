#!/usr/bin/env python3
"""A write load at `maxmemory 100mb` under each policy, redis-server beside
ember-server (docs/memory.md, "Under a write load").

For each policy, a fresh server of each kind gets twice its `maxmemory`
in SETs of VALUE-byte values, pipelined in batches of 1,000. Under a
volatile policy, a third of the keys have a deadline (the first third
written): once those are all evicted, writes without one are refused, as
Redis refuses them. After every batch the script reads `used_memory`; it
prints, per policy and server, the most `used_memory` was over the limit
after a batch and at its peak (`used_memory_peak`), the OOM errors, the
keys evicted, the keys left, and whether every key written is either
there or evicted.

Usage: benches/maxmemory-load.py EMBER_BIN [MAXMEMORY_MB] [VALUE]
   (defaults: 100 400; needs redis-server and the redis module)
"""

import importlib.util
import os
import sys

import redis

POLICIES = [
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-s3fifo",
]
BATCH = 1000


def hit_ratio_module():
    """hit-ratio.py, for its way of starting a server of either kind."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hit-ratio.py")
    spec = importlib.util.spec_from_file_location("hit_ratio", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


start = hit_ratio_module().start


def run(kind, binary, memory, policy, value):
    proc, con = start(kind, binary, memory, policy)
    try:
        volatile = policy.startswith("volatile")
        total = int(memory * 2) // (len(value) + 100)
        over = 0
        refused = 0
        written = 0
        for first in range(0, total, BATCH):
            pipe = con.pipeline(transaction=False)
            for i in range(first, min(first + BATCH, total)):
                if volatile and i < total // 3:
                    pipe.set(f"key:{i}", value, ex=100_000)
                else:
                    pipe.set(f"key:{i}", value)
            for reply in pipe.execute(raise_on_error=False):
                if isinstance(reply, redis.ResponseError):
                    # redis-py drops the error's code (OOM) from its text.
                    assert "command not allowed when used memory" in str(reply), reply
                    refused += 1
                else:
                    written += 1
            used = int(con.info("memory")["used_memory"])
            over = max(over, used - memory)
        peak = int(con.info("memory")["used_memory_peak"]) - memory
        evicted = int(con.info("stats")["evicted_keys"])
        keys = con.dbsize()
        return over, peak, refused, evicted, keys, keys + evicted == written
    finally:
        proc.kill()
        proc.wait()


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    binary = sys.argv[1]
    memory = int(sys.argv[2] if len(sys.argv) > 2 else 100) << 20
    value = "v" * int(sys.argv[3] if len(sys.argv) > 3 else 400)
    print(f"maxmemory {memory} bytes, {len(value)}-byte values, 2x written")
    print("| policy | server | over after a batch (KB) | peak over (KB) | OOM errors | evicted | keys left | all accounted |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for policy in POLICIES:
        for kind in ["redis", "ember"]:
            if kind == "redis" and policy == "allkeys-s3fifo":
                continue
            over, peak, refused, evicted, keys, whole = run(kind, binary, memory, policy, value)
            print(
                f"| {policy} | {kind} | {max(over, 0) / 1024:.0f} | {max(peak, 0) / 1024:.0f}"
                f" | {refused} | {evicted} | {keys} | {'yes' if whole else 'NO'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

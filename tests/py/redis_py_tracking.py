"""redis-py's CLIENT TRACKING helpers and RESP3 invalidation pushes
against a server: every check must hold on Redis 7.0.

Usage: python3 redis_py_tracking.py PORT PROTOCOL   (tracking pushes need
RESP3; PROTOCOL is accepted for symmetry with the other scripts)
Exits non-zero, with the failing check, on the first difference.
"""
import sys
import time

import redis

port = int(sys.argv[1])
WAIT = 5.0

writer = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
writer.flushall()
writer.set("k", "1")
writer.set("other", "x")

tracked = redis.Redis(
    host="127.0.0.1", port=port, protocol=3, decode_responses=True,
    single_connection_client=True,
)
invalidated = []
tracked.ping()
tracked.connection._parser.set_invalidation_push_handler(invalidated.append)


def until(what):
    """Waits up to WAIT seconds for one more invalidation: pushes are read
    before the next reply, so the client keeps asking."""
    seen = len(invalidated)
    deadline = time.time() + WAIT
    while len(invalidated) == seen:
        assert time.time() < deadline, f"no invalidation for {what}"
        tracked.ping()
        time.sleep(0.01)
    return invalidated[-1]


assert tracked.client_tracking_on() in (True, "OK"), "CLIENT TRACKING ON"
assert tracked.client_getredir() == 0
assert tracked.get("k") == "1"
writer.set("other", "y")
writer.set("k", "2")
assert until("SET") == ["invalidate", ["k"]], invalidated
# Told once per read: a second write says nothing until the key is read again.
writer.set("k", "3")
tracked.ping()
assert tracked.get("k") == "3"
writer.delete("k")
assert until("DEL") == ["invalidate", ["k"]], invalidated
writer.flushall()
assert until("FLUSHALL") == ["invalidate", None], invalidated
info = tracked.client_trackinginfo()
assert info["redirect"] == 0 and info["prefixes"] == [], info
assert tracked.client_tracking_off() in (True, "OK")
assert tracked.client_getredir() == -1

# BCAST with prefixes: every changed key under them, none other.
assert tracked.client_tracking_on(bcast=True, prefix=["user:"]) in (True, "OK")
writer.mset({"user:1": "a", "item:1": "b"})
assert until("BCAST") == ["invalidate", ["user:1"]], invalidated
assert tracked.client_trackinginfo()["prefixes"] == ["user:"]
print("redis-py tracking: ok")

"""redis-py's PubSub against a server: every check must hold on Redis 7.0.

Usage: python3 redis_py_pubsub.py PORT PROTOCOL   (PROTOCOL 2 or 3)
Exits non-zero, with the failing check, on the first difference.
"""
import sys
import threading

import redis

port, protocol = int(sys.argv[1]), int(sys.argv[2])
r = redis.Redis(host="127.0.0.1", port=port, protocol=protocol, decode_responses=True)
WAIT = 5.0


def next_message(p, ignore_subscribe_messages=False):
    """The next message, waiting up to WAIT seconds for it."""
    m = p.get_message(ignore_subscribe_messages=ignore_subscribe_messages, timeout=WAIT)
    assert m is not None, "no message arrived"
    return m


# get_message: confirmations, messages, pattern messages, in order.
p = r.pubsub()
p.subscribe("news", "sport")
assert next_message(p) == {"type": "subscribe", "pattern": None, "channel": "news", "data": 1}
assert next_message(p) == {"type": "subscribe", "pattern": None, "channel": "sport", "data": 2}
p.psubscribe("n*")
assert next_message(p) == {"type": "psubscribe", "pattern": None, "channel": "n*", "data": 3}
assert r.publish("news", "first") == 2
assert next_message(p) == {"type": "message", "pattern": None, "channel": "news", "data": "first"}
assert next_message(p) == {"type": "pmessage", "pattern": "n*", "channel": "news", "data": "first"}
assert r.pubsub_numsub("news", "none") == [("news", 1), ("none", 0)]
assert r.pubsub_numpat() == 1
assert sorted(r.pubsub_channels()) == ["news", "sport"]
assert r.pubsub_channels("s*") == ["sport"]
for i in range(100):
    r.publish("sport", str(i))
got = [next_message(p)["data"] for _ in range(100)]
assert got == [str(i) for i in range(100)], got
p.unsubscribe("sport")
assert next_message(p)["type"] == "unsubscribe"
p.punsubscribe()
assert next_message(p) == {"type": "punsubscribe", "pattern": None, "channel": "n*", "data": 1}
p.close()

# listen(), with handlers on a thread of its own.
p = r.pubsub(ignore_subscribe_messages=True)
received = []
done = threading.Event()


def handler(message):
    received.append(message["data"])
    if message["data"] == "stop":
        done.set()


p.subscribe(**{"jobs": handler})
p.psubscribe(**{"job*": handler})
worker = p.run_in_thread(sleep_time=0.01, daemon=True)
# Wait for the pattern subscription before publishing.
for _ in range(500):
    if r.pubsub_numpat() == 1:
        break
    threading.Event().wait(0.01)
r.publish("jobs", "one")
r.publish("jobs", "stop")
assert done.wait(WAIT), received
for _ in range(500):
    if len(received) == 4:
        break
    threading.Event().wait(0.01)
worker.stop()
worker.join(WAIT)
# Each message twice: through the channel and through the pattern.
assert received == ["one", "one", "stop", "stop"], received
p.close()

# listen() as a generator.
p = r.pubsub()
p.subscribe("feed")
stream = p.listen()
assert next(stream)["type"] == "subscribe"
r.publish("feed", "a")
r.publish("feed", "b")
assert next(stream)["data"] == "a"
assert next(stream)["data"] == "b"
p.close()

# Sharded channels (redis-py 5+).
if hasattr(p, "ssubscribe"):
    p = r.pubsub()
    p.ssubscribe("shard")
    assert next_message(p)["type"] == "ssubscribe"
    assert r.spublish("shard", "s") == 1
    m = p.get_sharded_message(timeout=WAIT)
    assert m["type"] == "smessage" and m["data"] == "s", m
    p.close()

# Closed subscribers are gone.
for _ in range(500):
    if r.pubsub_numsub("news", "feed", "jobs") == [("news", 0), ("feed", 0), ("jobs", 0)]:
        break
    threading.Event().wait(0.01)
assert r.pubsub_numsub("news", "feed", "jobs") == [("news", 0), ("feed", 0), ("jobs", 0)]
print(f"redis-py pubsub RESP{protocol}: ok")

"""redis-py against a server: every call below must behave as on Redis 7.0.

Usage: python3 redis_py_smoke.py PORT PROTOCOL   (PROTOCOL 2 or 3)
Exits non-zero, with the failing check, on the first difference.
"""
import sys
import time

import redis

port, protocol = int(sys.argv[1]), int(sys.argv[2])
r = redis.Redis(host="127.0.0.1", port=port, protocol=protocol, decode_responses=True)
raw = redis.Redis(host="127.0.0.1", port=port, protocol=protocol)

assert r.ping() is True
r.flushall()
assert r.dbsize() == 0

# strings
assert r.set("s", "v") is True
assert r.get("s") == "v"
assert r.set("s", "w", nx=True) is None
assert r.set("s", "w", xx=True, get=True) == "v"
assert r.set("ttl", "x", ex=100) is True
assert 99 <= r.ttl("ttl") <= 100
assert r.pttl("ttl") > 99_000
assert r.incr("n") == 1 and r.incrby("n", 41) == 42 and r.decr("n") == 41
assert abs(r.incrbyfloat("f", 1.5) - 1.5) < 1e-9
assert r.mset({"a": "1", "b": "2"}) is True
assert r.mget("a", "b", "missing") == ["1", "2", None]
assert r.append("a", "23") == 3 and r.strlen("a") == 3
assert r.getrange("a", 0, 1) == "12"
assert r.getdel("b") == "2" and r.exists("b") == 0
big = b"\x00\xff" * 100_000
assert raw.set("big", big) and raw.get("big") == big

# keys and expiry
assert r.type("s") == "string"
assert r.expire("s", 50) is True and r.persist("s") is True and r.ttl("s") == -1
assert r.rename("s", "s2") is True and r.exists("s", "s2") == 1
assert sorted(r.keys("s*")) == ["s2"]
assert sorted(r.scan_iter(match="*", count=2)) == sorted(r.keys("*"))
assert r.object("encoding", "n") == "int"
assert r.delete("a", "s2", "nope") == 2

# lists, blocking included
assert r.rpush("l", "a", "b", "c") == 3 and r.lpush("l", "z") == 4
assert r.lrange("l", 0, -1) == ["z", "a", "b", "c"]
assert r.lpop("l") == "z" and r.rpop("l", 2) == ["c", "b"]
assert list(r.blpop(["empty", "l"], timeout=1)) == ["l", "a"]
start = time.monotonic()
assert r.blpop(["empty"], timeout=0.2) is None
assert time.monotonic() - start >= 0.15
assert r.lmove("nolist", "dst") is None

# pipelining (no MULTI: transaction=False)
with r.pipeline(transaction=False) as p:
    p.set("p1", "1").incr("p1").get("p1").lpush("pl", "x").llen("pl")
    assert p.execute() == [True, 2, "2", 1, 1]

# server and connection commands, as redis-py parses them
info = r.info()
assert info["redis_version"].startswith("7.0") and info["connected_clients"] >= 1
assert "db0" in r.info("keyspace")
assert r.config_get("maxclients") == {"maxclients": "10000"}
assert r.client_setname("smoke") is True and r.client_getname() == "smoke"
assert any(c["name"] == "smoke" for c in r.client_list())
assert isinstance(r.client_id(), int)
assert len(r.time()) == 2
assert r.echo("hi") == "hi"

# errors
try:
    r.lpush("p1", "x")
    raise AssertionError("no WRONGTYPE")
except redis.ResponseError as e:
    assert str(e).startswith("WRONGTYPE"), e
try:
    r.execute_command("NOSUCHCOMMAND", "a")
    raise AssertionError("no error")
except redis.ResponseError as e:
    assert "unknown command" in str(e), e

r.flushall()
print(f"redis-py {redis.__version__} over RESP{protocol}: ok")

"""redis-py's Lock against a server: acquire, extend, reacquire, release,
blocking timeouts, and locks competing across threads.

Usage: redis_py_lock.py PORT. Prints "lock: ok" when every check passes.
"""

import sys
import threading

import redis
from redis.exceptions import LockError, LockNotOwnedError


def main() -> None:
    port = int(sys.argv[1])
    r = redis.Redis(host="127.0.0.1", port=port)
    r.flushall()
    r.script_flush()

    lock = r.lock("resource", timeout=10)
    assert lock.acquire(blocking=False)
    assert lock.owned()
    assert r.pttl("resource") > 0
    # Another holder cannot take it.
    other = r.lock("resource", timeout=10)
    assert not other.acquire(blocking=False)
    assert not other.acquire(blocking=True, blocking_timeout=0.05)
    # Extend adds to the time left; replace_ttl sets it.
    assert lock.extend(20)
    assert r.pttl("resource") > 20_000
    assert lock.extend(5, replace_ttl=True)
    assert r.pttl("resource") <= 5_000
    assert lock.reacquire()
    assert r.pttl("resource") > 5_000
    # A lock that is not held cannot be extended or released.
    try:
        other.extend(10)
        raise AssertionError("extended a lock it does not hold")
    except LockError:
        pass
    lock.release()
    assert not lock.owned()
    assert r.get("resource") is None
    try:
        lock.release()
        raise AssertionError("released a lock twice")
    except LockError:
        pass
    # A lock whose key was taken over is not owned.
    lock = r.lock("resource", timeout=10)
    assert lock.acquire(blocking=False)
    r.set("resource", "someone else")
    try:
        lock.release()
        raise AssertionError("released a lock it no longer owns")
    except LockNotOwnedError:
        pass
    r.delete("resource")

    # Threads competing: each increments a counter under the lock with a
    # read, a pause and a write; none is lost.
    r.set("counter", 0)
    errors = []

    def worker() -> None:
        try:
            c = redis.Redis(host="127.0.0.1", port=port)
            for _ in range(20):
                with c.lock("shared", timeout=5, blocking_timeout=30, sleep=0.001):
                    value = int(c.get("counter"))
                    c.set("counter", value + 1)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert int(r.get("counter")) == 80, r.get("counter")
    print("lock: ok")


if __name__ == "__main__":
    main()

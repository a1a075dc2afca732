#!/usr/bin/env bash
# Resident memory with N small keys: loads the same N `SET key:NNNNNNNNNN xxx`
# commands (redis-benchmark's key and value shape) into redis-server and a
# release ember-server through `redis-cli --pipe`, then prints each server's
# RSS before and after, the growth per key, and the ratio (Ember / Redis).
# With KIND `list`, the N values are pushed onto one list instead (RPUSH,
# 100 at a time) and the growth is per element. The other kinds, per
# element too:
#   hashes    N/10 hashes of 10 fields `f0`..`f9` (listpack-encoded)
#   hash      one hash of N fields `field:NNNNNNNNNN` (hashtable)
#   intset    one set of N integers (hashtable beyond 512)
#   set       one set of N short strings `member:NNNNNNNNNN`
#   zset      one sorted set of N members `member:NNNNNNNNNN`, score N
#   zsets     N/10 sorted sets of 10 members `m0`..`m9` (listpack)
#
# Usage: benches/memory.sh [N] [VALUE_SIZE] [KIND]   (defaults: 1000000 3 keys)
set -euo pipefail
cd "$(dirname "$0")/.."

keys=${1:-1000000}
size=${2:-3}
kind=${3:-keys}
source benches/servers.sh
start_servers

# The commands, in RESP, written once and replayed to both servers.
python3 - "$keys" "$size" "$kind" > "$workdir/load.resp" <<'PY'
import sys
keys, size, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
value = b"x" * size
out = sys.stdout.buffer
def command(*args):
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        out.write(b"$%d\r\n%s\r\n" % (len(a), a))
if kind == "list":
    for start in range(0, keys, 100):
        n = min(100, keys - start)
        out.write(b"*%d\r\n$5\r\nRPUSH\r\n$4\r\nlist\r\n" % (n + 2))
        out.write((b"$%d\r\n%s\r\n" % (len(value), value)) * n)
elif kind == "hashes":
    for h in range(keys // 10):
        args = [b"HSET", b"hash:%010d" % h]
        for f in range(10):
            args += [b"f%d" % f, value]
        command(*args)
elif kind == "hash":
    for start in range(0, keys, 100):
        args = [b"HSET", b"hash"]
        for i in range(start, min(keys, start + 100)):
            args += [b"field:%010d" % i, value]
        command(*args)
elif kind == "zset":
    for start in range(0, keys, 100):
        args = [b"ZADD", b"zset"]
        for i in range(start, min(keys, start + 100)):
            args += [b"%d" % i, b"member:%010d" % i]
        command(*args)
elif kind == "zsets":
    for z in range(keys // 10):
        args = [b"ZADD", b"zset:%010d" % z]
        for m in range(10):
            args += [b"%d" % m, b"m%d" % m]
        command(*args)
elif kind in ("intset", "set"):
    for start in range(0, keys, 100):
        args = [b"SADD", b"set"]
        for i in range(start, min(keys, start + 100)):
            args.append(b"%d" % i if kind == "intset" else b"member:%010d" % i)
        command(*args)
else:
    for i in range(keys):
        key = b"key:%010d" % i
        out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value))
PY

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
printf '%-6s %12s %12s %12s %14s\n' server "$kind" "rss before" "rss after" "bytes per one"
declare -A grown
for name in redis ember; do
    if [[ $name == redis ]]; then port=$redis_port; pid=$redis_pid; else port=$ember_port; pid=$ember_pid; fi
    before=$(rss_kb "$pid")
    redis-cli -p "$port" --pipe < "$workdir/load.resp" >/dev/null
    case $kind in
        list) count=$(redis-cli -p "$port" llen list) ;;
        hashes) count=$(($(redis-cli -p "$port" dbsize) * 10)) ;;
        hash) count=$(redis-cli -p "$port" hlen hash) ;;
        intset | set) count=$(redis-cli -p "$port" scard set) ;;
        zset) count=$(redis-cli -p "$port" zcard zset) ;;
        zsets) count=$(($(redis-cli -p "$port" dbsize) * 10)) ;;
        *) count=$(redis-cli -p "$port" dbsize) ;;
    esac
    [[ $count == "$keys" ]] || { echo "$name holds $count, not $keys" >&2; exit 1; }
    after=$(rss_kb "$pid")
    grown[$name]=$((after - before))
    printf '%-6s %12s %9s MiB %9s MiB %14s\n' "$name" "$count" $((before / 1024)) $((after / 1024)) \
        "$(awk -v g="${grown[$name]}" -v k="$keys" 'BEGIN { printf "%.1f", g * 1024 / k }')"
done
awk -v e="${grown[ember]}" -v r="${grown[redis]}" \
    'BEGIN { printf "memory, Ember / Redis: %.2fx\n", e / r }'

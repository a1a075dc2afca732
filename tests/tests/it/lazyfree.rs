//! Lazy free of what the server drops on its own (`lazyfree-lazy-expire`,
//! `lazyfree-lazy-server-del`, `replica-lazy-flush`) and the replica
//! class's soft output limit, each next to a real redis-server where the
//! INFO counters compare: both count one `lazyfreed_objects` per large
//! value (over 64 allocations to free) and one per key of a flushed
//! database.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ember_tests::{EmberServer, RedisServer};
use redis::Connection;

use crate::redis_crate::{connect, info, q};

/// Waits until `check` holds, or fails with `what`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Keys in database 0 as INFO keyspace counts them (expired keys not yet
/// deleted included), without looking any key up.
fn keys_in_db0(con: &mut Connection) -> i64 {
    let text: String = q(con, &["INFO", "keyspace"]);
    text.lines()
        .find_map(|l| l.strip_prefix("db0:keys="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn freed(con: &mut Connection) -> i64 {
    info(con, "memory", "lazyfreed_objects")
}

/// Waits until `lazyfreed_objects` is `n` and nothing is pending; returns
/// it once settled.
fn freed_settles_at(con: &mut Connection, n: i64) {
    eventually(&format!("lazyfreed_objects to reach {n}"), || {
        freed(con) >= n && info(con, "memory", "lazyfree_pending_objects") == 0
    });
    assert_eq!(freed(con), n, "lazyfreed_objects");
}

/// Makes `key` a hash of 1,000 fields: a hashtable on both servers, so a
/// value whose free effort (1,000) is over the threshold.
fn big_hash(con: &mut Connection, key: &str) {
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key);
    for i in 0..1000 {
        cmd.arg(format!("field{i}")).arg(format!("value{i}"));
    }
    let _: i64 = cmd.query(con).expect("HSET");
}

/// Makes `key` a set of 1,000 strings (a hashtable on both servers).
fn big_set(con: &mut Connection, key: &str) {
    let mut cmd = redis::cmd("SADD");
    cmd.arg(key);
    for i in 0..1000 {
        cmd.arg(format!("member{i}"));
    }
    let _: i64 = cmd.query(con).expect("SADD");
}

/// The servers under comparison: Ember (in this process) and Redis, both
/// started with `lines` (redis.conf style).
fn both(lines: &[&str]) -> (EmberServer, RedisServer) {
    let ember = EmberServer::start(lines);
    let args: Vec<String> = lines
        .iter()
        .flat_map(|l| {
            let (k, v) = l.split_once(' ').expect("a setting and its value");
            [format!("--{k}"), v.to_string()]
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (ember, RedisServer::start(&args))
}

/// What the server deletes or replaces on its own: SET over a big hash,
/// RENAME over a big set, RESTORE REPLACE over a big hash, SUNIONSTORE of
/// nothing over a big set; and small values, which are freed in place.
fn server_deletes(con: &mut Connection) {
    big_hash(con, "h");
    q::<()>(con, &["SET", "h", "now a string"]);
    big_set(con, "s");
    q::<()>(con, &["SET", "src", "x"]);
    q::<()>(con, &["RENAME", "src", "s"]);
    big_hash(con, "r");
    q::<i64>(con, &["HSET", "tiny", "f", "v"]);
    let dump: Vec<u8> = q(con, &["DUMP", "tiny"]);
    let _: () = redis::cmd("RESTORE")
        .arg("r")
        .arg(0)
        .arg(dump)
        .arg("REPLACE")
        .query(con)
        .expect("RESTORE");
    big_set(con, "u");
    q::<i64>(con, &["SUNIONSTORE", "u", "nothing-here", "nor-here"]);
    // Small values: one allocation each, never handed over.
    q::<i64>(con, &["HSET", "small", "f", "v"]);
    q::<()>(con, &["SET", "small", "v"]);
    q::<()>(con, &["SET", "src2", "x"]);
    q::<()>(con, &["RENAME", "src2", "small"]);
}

#[test]
fn lazy_server_del_frees_overwritten_values_on_the_thread_as_redis_counts_them() {
    let (ember, redis) = both(&["lazyfree-lazy-server-del yes"]);
    for addr in [ember.addr(), redis.addr()] {
        let mut con = connect(addr);
        q::<()>(&mut con, &["CONFIG", "RESETSTAT"]);
        server_deletes(&mut con);
        // Four large values replaced or deleted, each one object.
        freed_settles_at(&mut con, 4);
        assert_eq!(q::<String>(&mut con, &["GET", "h"]), "now a string");
        assert_eq!(q::<i64>(&mut con, &["EXISTS", "u"]), 0);
        assert_eq!(q::<i64>(&mut con, &["HLEN", "r"]), 1);
    }
}

#[test]
fn without_lazy_server_del_overwritten_values_are_freed_in_place() {
    let ember = EmberServer::start(&[]);
    let mut con = connect(ember.addr());
    server_deletes(&mut con);
    // A value handed over now is the first the thread ever frees: had any
    // of the above gone to it, it would have been freed first.
    big_hash(&mut con, "marker");
    q::<i64>(&mut con, &["UNLINK", "marker"]);
    freed_settles_at(&mut con, 1);
}

#[test]
fn lazy_expire_frees_expired_values_on_the_thread_as_redis_counts_them() {
    let (ember, redis) = both(&["lazyfree-lazy-expire yes"]);
    for addr in [ember.addr(), redis.addr()] {
        let mut con = connect(addr);
        // Found expired by a lookup.
        big_hash(&mut con, "looked-up");
        q::<i64>(&mut con, &["PEXPIRE", "looked-up", "1"]);
        eventually("the key to expire", || {
            q::<i64>(&mut con, &["EXISTS", "looked-up"]) == 0
        });
        freed_settles_at(&mut con, 1);
        // Found by the expiry cycle (nothing looks it up).
        big_set(&mut con, "cycled");
        q::<i64>(&mut con, &["PEXPIRE", "cycled", "1"]);
        eventually("the expiry cycle to delete the key", || {
            keys_in_db0(&mut con) == 0
        });
        freed_settles_at(&mut con, 2);
        // A deadline in the past deletes at once, as an expiry.
        big_hash(&mut con, "past");
        q::<i64>(&mut con, &["EXPIRE", "past", "-1"]);
        freed_settles_at(&mut con, 3);
        // A small value expiring is freed in place.
        q::<()>(&mut con, &["SET", "small", "v", "PX", "1"]);
        eventually("the small key to expire", || {
            q::<i64>(&mut con, &["EXISTS", "small"]) == 0
        });
        big_hash(&mut con, "marker");
        q::<i64>(&mut con, &["UNLINK", "marker"]);
        freed_settles_at(&mut con, 4);
    }
}

/// A master with one key and a replica that already holds `keys` keys of
/// its own (one of them a big hash) before it follows the master: its
/// full sync flushes them.
fn replica_flush(master: SocketAddr, replica: SocketAddr, keys: usize) -> (Connection, Connection) {
    let mut m = connect(master);
    q::<()>(&mut m, &["SET", "from-master", "1"]);
    let mut r = connect(replica);
    big_hash(&mut r, "mine");
    for i in 1..keys {
        q::<()>(&mut r, &["SET", &format!("mine{i}"), "v"]);
    }
    q::<()>(&mut r, &["CONFIG", "RESETSTAT"]);
    q::<()>(
        &mut r,
        &["REPLICAOF", "127.0.0.1", &master.port().to_string()],
    );
    eventually("the replica to load the master's data", || {
        q::<Option<String>>(&mut r, &["GET", "from-master"]).is_some()
    });
    (m, r)
}

#[test]
fn replica_lazy_flush_frees_the_old_dataset_on_the_thread_as_redis_counts_it() {
    let lines = ["replica-lazy-flush yes", "repl-diskless-sync-delay 0"];
    let (ember_master, redis_master) = both(&lines);
    let (ember_replica, redis_replica) = both(&lines);
    for (master, replica) in [
        (ember_master.addr(), ember_replica.addr()),
        (redis_master.addr(), redis_replica.addr()),
    ] {
        let (_m, mut r) = replica_flush(master, replica, 3);
        // Each key of the flushed database counts, as Redis's
        // `emptyDbAsync` counts them.
        freed_settles_at(&mut r, 3);
        assert_eq!(q::<i64>(&mut r, &["DBSIZE"]), 1);
    }
    // Without it, the flush frees in place.
    let master = EmberServer::start(&["repl-diskless-sync-delay 0"]);
    let replica = EmberServer::start(&[]);
    let (_m, mut r) = replica_flush(master.addr(), replica.addr(), 3);
    assert_eq!(q::<i64>(&mut r, &["DBSIZE"]), 1);
    q::<()>(&mut r, &["REPLICAOF", "NO", "ONE"]);
    big_hash(&mut r, "marker");
    q::<i64>(&mut r, &["UNLINK", "marker"]);
    freed_settles_at(&mut r, 1);
}

/// `client-output-buffer-limit replica 0 1mb 1`: no hard limit, so only
/// the soft one can drop a replica that stopped reading; it does, once it
/// has been over 1 MB behind for more than a second, even with nothing
/// more written meanwhile.
#[test]
fn a_replica_over_the_soft_output_limit_for_its_seconds_is_dropped() {
    let master = EmberServer::start(&["client-output-buffer-limit replica 0 1mb 1"]);
    let mut m = connect(master.addr());
    let mut stuck = crate::replication::stuck_replica(&master);
    eventually("the replica to be listed", || {
        info(&mut m, "replication", "connected_slaves") == 1
    });
    // 32 MB of writes: more than the socket buffers hold, so the stream
    // stays more than 1 MB ahead of what the replica took.
    let value = "v".repeat(1 << 20);
    for i in 0..32 {
        q::<()>(&mut m, &["SET", &format!("big{i}"), &value]);
    }
    eventually("the stuck replica to be dropped", || {
        info(&mut m, "replication", "connected_slaves") == 0
    });
    assert_eq!(q::<i64>(&mut m, &["DBSIZE"]), 32);
    crate::replication::link_closed(&mut stuck);
}

/// The same replica with the soft limit's bytes never reached stays: a
/// healthy replica that keeps up is not dropped by a soft limit.
#[test]
fn a_replica_that_keeps_up_is_not_dropped_by_the_soft_limit() {
    let master = EmberServer::start(&[
        "client-output-buffer-limit replica 0 64kb 0",
        "repl-diskless-sync-delay 0",
    ]);
    let replica = EmberServer::start(&[]);
    let mut m = connect(master.addr());
    let mut r = connect(replica.addr());
    q::<()>(
        &mut r,
        &["REPLICAOF", "127.0.0.1", &master.addr().port().to_string()],
    );
    eventually("the replica to be online", || {
        info(&mut m, "replication", "connected_slaves") == 1
            && q::<i64>(&mut m, &["WAIT", "1", "100"]) == 1
    });
    // Small writes, each acknowledged before the next: the replica is
    // never 64 KB behind.
    for i in 0..200 {
        q::<()>(&mut m, &["SET", &format!("k{i}"), "v"]);
        assert_eq!(q::<i64>(&mut m, &["WAIT", "1", "5000"]), 1, "write {i}");
    }
    assert_eq!(info(&mut m, "stats", "sync_full"), 1);
    assert_eq!(q::<i64>(&mut r, &["DBSIZE"]), 200);
}

/// A key the server drops on its own reaches replicas as `UNLINK` when it
/// is freed lazily (`lazyfree-lazy-expire`, `lazyfree-lazy-eviction`) and
/// as `DEL` otherwise, in redis-server's stream as in Ember's: Redis's
/// `propagateDeletion` picks the command by the same settings.
#[test]
fn lazily_dropped_keys_reach_replicas_as_unlink() {
    use crate::replication::{attach_to_stream, read_stream};
    let mut streams = Vec::new();
    for lazy in ["yes", "no"] {
        let (ember, redis) = both(&[
            "enable-debug-command yes",
            &format!("lazyfree-lazy-expire {lazy}"),
            &format!("lazyfree-lazy-eviction {lazy}"),
        ]);
        for addr in [redis.addr(), ember.addr()] {
            let (mut s, mut buf) = attach_to_stream(addr);
            let mut con = connect(addr);
            // Expired, met by a read.
            q::<()>(&mut con, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
            q::<()>(&mut con, &["SET", "gone", "v", "PX", "1"]);
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(q::<Option<String>>(&mut con, &["GET", "gone"]), None);
            // Evicted: the only key, under a limit nothing fits in (the
            // write that needs room is refused once nothing is left).
            q::<()>(&mut con, &["SET", "evicted", "v"]);
            q::<()>(
                &mut con,
                &["CONFIG", "SET", "maxmemory-policy", "allkeys-random"],
            );
            q::<()>(&mut con, &["CONFIG", "SET", "maxmemory", "1"]);
            let refused = redis::cmd("SET").arg("x").arg("y").query::<()>(&mut con);
            assert!(refused.is_err(), "{refused:?}");
            q::<()>(&mut con, &["CONFIG", "SET", "maxmemory", "0"]);
            q::<()>(&mut con, &["SET", "end", "1"]);
            streams.push(read_stream(&mut s, &mut buf, "end"));
        }
    }
    let (unlink, del) = (
        vec![
            "select 0",
            "set gone v PXAT <t>",
            "unlink gone",
            "set evicted v",
            "unlink evicted",
        ],
        vec![
            "select 0",
            "set gone v PXAT <t>",
            "del gone",
            "set evicted v",
            "del evicted",
        ],
    );
    assert_eq!(streams[0], unlink, "redis, lazy");
    assert_eq!(streams[1], unlink, "ember, lazy");
    assert_eq!(streams[2], del, "redis, not lazy");
    assert_eq!(streams[3], del, "ember, not lazy");
}

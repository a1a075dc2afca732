//! Master–replica replication against real processes, both ways with
//! real Redis: Ember → Ember, Ember → redis-server, redis-server → Ember.
//! Each test loads data of every type Ember holds, with deadlines, in
//! several databases, writes more while the link is up (through commands
//! whose effect must be propagated, not their text: relative deadlines,
//! INCRBYFLOAT, blocking pops, transactions, lazily expired keys), then
//! compares both datasets key by key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ember_tests::{EmberServer, RedisServer};
use redis::Connection;

fn conn(addr: SocketAddr) -> Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
    let con = client.get_connection().expect("connection");
    con.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    con
}

fn cmd<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

fn info_field(con: &mut Connection, section: &str, field: &str) -> String {
    let info: String = cmd(con, &["INFO", section]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .to_string()
}

/// Waits until `check` holds, or fails with `what`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// Waits until the replica has everything the master wrote: after a write
/// of its own, WAIT on the master counts it.
fn caught_up(master: &mut Connection) {
    cmd::<i64>(master, &["INCR", "sync-marker"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if cmd::<i64>(master, &["WAIT", "1", "1000"]) == 1 {
            return;
        }
    }
    let info: String = cmd(master, &["INFO", "replication"]);
    panic!("timed out waiting for the replica to acknowledge the master's offset:\n{info}");
}

/// What a key holds, as compared: type, value, and deadline in ms.
#[derive(Debug, PartialEq)]
enum Held {
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
    /// Members, sorted.
    Set(Vec<Vec<u8>>),
    /// Members and scores, in order.
    ZSet(Vec<(Vec<u8>, String)>),
}

type Dataset = BTreeMap<(usize, Vec<u8>), (Held, i64)>;

fn dataset(con: &mut Connection) -> Dataset {
    let mut all = BTreeMap::new();
    for db in 0..16 {
        cmd::<()>(con, &["SELECT", &db.to_string()]);
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(con).expect("KEYS");
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(con).expect("TYPE");
            let held = match kind.as_str() {
                "string" => Held::Str(redis::cmd("GET").arg(&key).query(con).expect("GET")),
                "list" => Held::List(
                    redis::cmd("LRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query(con)
                        .expect("LRANGE"),
                ),
                "set" => {
                    let mut members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
                        .arg(&key)
                        .query(con)
                        .expect("SMEMBERS");
                    members.sort();
                    Held::Set(members)
                }
                "zset" => Held::ZSet(
                    redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query(con)
                        .expect("ZRANGE"),
                ),
                "none" => continue, // expired between KEYS and TYPE
                other => panic!("unexpected type {other}"),
            };
            // The deadline itself, not the time left: the two datasets are
            // read one after the other, as far apart as a busy machine makes
            // them.
            let deadline: i64 = redis::cmd("PEXPIRETIME")
                .arg(&key)
                .query(con)
                .expect("PEXPIRETIME");
            all.insert((db, key), (held, deadline));
        }
    }
    cmd::<()>(con, &["SELECT", "0"]);
    all
}

/// Compares two datasets: same keys, types and values; deadlines within a
/// second of each other.
fn assert_same(master: &Dataset, replica: &Dataset) {
    let show = |k: &(usize, Vec<u8>)| format!("db{} {}", k.0, String::from_utf8_lossy(&k.1));
    let only_master: Vec<_> = master
        .keys()
        .filter(|k| !replica.contains_key(*k))
        .map(show)
        .collect();
    let only_replica: Vec<_> = replica
        .keys()
        .filter(|k| !master.contains_key(*k))
        .map(show)
        .collect();
    assert!(
        only_master.is_empty() && only_replica.is_empty(),
        "keys only on the master: {only_master:?}; only on the replica: {only_replica:?}"
    );
    for (key, (held, ttl)) in master {
        let (rheld, rttl) = &replica[key];
        assert!(held == rheld, "value of {}", show(key));
        if *ttl < 0 || *rttl < 0 {
            assert_eq!(ttl, rttl, "deadline of {}", show(key));
        } else {
            assert!(
                (ttl - rttl).abs() <= 1000,
                "deadline of {}: {ttl} vs {rttl}",
                show(key)
            );
        }
    }
}

/// Data of every type Ember holds, before the replica exists.
fn load_initial(con: &mut Connection) {
    for db in ["0", "3", "15"] {
        cmd::<()>(con, &["SELECT", db]);
        for i in 0..200 {
            let k = format!("s{i}");
            cmd::<()>(
                con,
                &["SET", &k, &format!("value-{i}-{}", "x".repeat(i % 50))],
            );
        }
        cmd::<()>(con, &["SET", "int", "12345"]);
        cmd::<()>(con, &["SET", "big", &"y".repeat(100_000)]);
        cmd::<()>(con, &["SET", "ttl", "v", "EX", "1000"]);
        cmd::<()>(con, &["SET", "pttl", "v", "PX", "500000"]);
        for i in 0..20 {
            cmd::<i64>(con, &["RPUSH", &format!("l{i}"), "a", "b", &i.to_string()]);
        }
        let many: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
        let mut rpush = vec!["RPUSH", "long"];
        rpush.extend(many.iter().map(String::as_str));
        cmd::<i64>(con, &rpush);
        cmd::<i64>(con, &["EXPIRE", "l3", "3000"]);
        // Sets: an intset, a hashtable, and one big enough to pop from.
        cmd::<i64>(con, &["SADD", "ints", "3", "1", "2", "70000"]);
        cmd::<i64>(con, &["SADD", "tags", "red", "blue", "1"]);
        let mut sadd = vec!["SADD", "members"];
        sadd.extend(many.iter().map(String::as_str));
        cmd::<i64>(con, &sadd);
        cmd::<i64>(con, &["EXPIRE", "tags", "3000"]);
        // Sorted sets: a listpack and a skiplist.
        cmd::<i64>(con, &["ZADD", "board", "1", "a", "2.5", "b", "-inf", "c"]);
        let mut zadd = vec!["ZADD", "scores"];
        for m in &many[..300] {
            zadd.push("7");
            zadd.push(m);
        }
        cmd::<i64>(con, &zadd);
    }
    cmd::<()>(con, &["SELECT", "0"]);
}

/// More writes while the link is up, through commands a replica must see
/// as their effect.
fn write_more(con: &mut Connection, blocker: &mut Connection) {
    cmd::<()>(con, &["SET", "live", "1"]);
    cmd::<i64>(con, &["INCR", "live"]);
    cmd::<String>(con, &["INCRBYFLOAT", "float", "1.25"]);
    cmd::<String>(con, &["INCRBYFLOAT", "float", "0.1"]);
    cmd::<()>(con, &["SETEX", "setex", "100", "v"]);
    cmd::<()>(con, &["PSETEX", "psetex", "100000", "v"]);
    cmd::<()>(con, &["SET", "setex2", "v", "EX", "200"]);
    cmd::<i64>(con, &["EXPIRE", "s1", "300"]);
    cmd::<i64>(con, &["PEXPIRE", "s2", "400000"]);
    cmd::<i64>(con, &["PERSIST", "ttl"]);
    cmd::<Option<String>>(con, &["GETEX", "s3", "EX", "500"]);
    cmd::<Option<String>>(con, &["GETDEL", "s4"]);
    cmd::<i64>(con, &["DEL", "s5", "s6", "nothing"]);
    cmd::<()>(con, &["RENAME", "s7", "renamed"]);
    cmd::<Option<String>>(con, &["LPOP", "l1"]);
    cmd::<Option<String>>(con, &["RPOPLPUSH", "l2", "l1"]);
    cmd::<Option<String>>(con, &["LMOVE", "l2", "moved", "LEFT", "RIGHT"]);
    let _: redis::Value = cmd(con, &["LMPOP", "2", "none", "l4", "RIGHT", "COUNT", "2"]);
    cmd::<()>(con, &["LSET", "l5", "0", "set"]);
    cmd::<()>(con, &["LTRIM", "long", "10", "4000"]);
    cmd::<i64>(con, &["LREM", "long", "0", "100"]);
    cmd::<i64>(con, &["LINSERT", "long", "BEFORE", "200", "inserted"]);
    // Set writes, random ones included: the replica gets what they did.
    cmd::<i64>(con, &["SADD", "ints", "4", "x"]);
    cmd::<i64>(con, &["SREM", "ints", "1"]);
    cmd::<Option<String>>(con, &["SPOP", "ints"]);
    cmd::<Vec<String>>(con, &["SPOP", "members", "10"]);
    cmd::<Vec<String>>(con, &["SPOP", "members", "4980"]);
    cmd::<Vec<String>>(con, &["SPOP", "tags", "10"]);
    cmd::<i64>(con, &["SMOVE", "members", "moved-set", "4999"]);
    cmd::<i64>(con, &["SINTERSTORE", "inter", "ints", "members"]);
    cmd::<i64>(con, &["SUNIONSTORE", "union", "ints", "members"]);
    cmd::<i64>(con, &["SDIFFSTORE", "diff", "members", "ints"]);
    // Sorted-set writes.
    cmd::<i64>(
        con,
        &["ZADD", "board", "gt", "ch", "3", "a", "0", "b", "9", "new"],
    );
    cmd::<String>(con, &["ZINCRBY", "board", "0.1", "a"]);
    cmd::<i64>(con, &["ZREM", "board", "c"]);
    cmd::<i64>(con, &["ZREMRANGEBYRANK", "scores", "0", "99"]);
    cmd::<i64>(con, &["ZREMRANGEBYLEX", "scores", "-", "(member:3"]);
    cmd::<i64>(con, &["ZREMRANGEBYSCORE", "scores", "(7", "+inf"]);
    cmd::<i64>(con, &["ZRANGESTORE", "top", "scores", "0", "9", "REV"]);
    cmd::<Vec<String>>(con, &["ZPOPMIN", "scores", "3"]);
    cmd::<Vec<String>>(con, &["ZPOPMAX", "top"]);
    cmd::<redis::Value>(con, &["ZMPOP", "2", "none", "top", "MIN", "COUNT", "100"]);
    cmd::<i64>(
        con,
        &[
            "ZUNIONSTORE",
            "zu",
            "2",
            "board",
            "ints",
            "WEIGHTS",
            "2",
            "3",
        ],
    );
    // A blocked sorted-set pop served by a ZADD: the replica sees the
    // ZADD and a ZPOPMIN.
    let blocked = std::thread::scope(|s| {
        let waiter = s.spawn(|| cmd::<Vec<String>>(blocker, &["BZPOPMIN", "zqueue", "10"]));
        eventually("the client to block", || {
            info_field(con, "clients", "blocked_clients") == "1"
        });
        cmd::<i64>(con, &["ZADD", "zqueue", "2", "second", "1", "first"]);
        waiter.join().expect("blocked client")
    });
    assert_eq!(blocked, ["zqueue", "first", "1"]);
    // A blocked pop served by a push: the replica sees the push and the pop.
    let blocked = std::thread::scope(|s| {
        let waiter = s.spawn(|| cmd::<Vec<String>>(blocker, &["BLPOP", "queue", "10"]));
        eventually("the client to block", || {
            info_field(con, "clients", "blocked_clients") == "1"
        });
        cmd::<i64>(con, &["RPUSH", "queue", "first", "second"]);
        waiter.join().expect("blocked client")
    });
    assert_eq!(blocked, ["queue", "first"]);
    // A transaction.
    let _: redis::Value = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("tx1")
        .arg("a")
        .cmd("INCR")
        .arg("tx2")
        .cmd("EXPIRE")
        .arg("tx1")
        .arg(900)
        .query(con)
        .expect("MULTI/EXEC");
    // Keys that expire on the master: a replica drops them only when told.
    cmd::<()>(con, &["SET", "short", "v", "PX", "50"]);
    cmd::<()>(con, &["SET", "short2", "v", "PX", "50"]);
    std::thread::sleep(Duration::from_millis(120));
    // A write to a key that expired: the replica must not see the old value.
    cmd::<()>(con, &["SET", "short2", "new", "NX"]);
    cmd::<Option<String>>(con, &["GET", "short"]);
    // Another database, and a database swap.
    cmd::<()>(con, &["SELECT", "5"]);
    cmd::<()>(con, &["SET", "in5", "v"]);
    cmd::<()>(con, &["SWAPDB", "5", "6"]);
    cmd::<()>(con, &["SELECT", "15"]);
    cmd::<()>(con, &["FLUSHDB"]);
    cmd::<()>(con, &["SELECT", "0"]);
}

/// Waits for the master to have reclaimed its expired keys (so DBSIZE and
/// KEYS agree on both sides), then compares.
fn compare(master: &mut Connection, replica: &mut Connection) {
    eventually("the master's expired keys to be reclaimed", || {
        cmd::<i64>(master, &["EXISTS", "short"]) == 0
    });
    caught_up(master);
    assert_same(&dataset(master), &dataset(replica));
}

#[test]
fn ember_master_to_ember_replica() {
    let master = EmberServer::start(&[]);
    let mut m = conn(master.addr());
    load_initial(&mut m);
    let port = master.addr().port();
    let replica = EmberServer::start(&[&format!("replicaof 127.0.0.1 {port}")]);
    let mut r = conn(replica.addr());
    caught_up(&mut m);
    assert_same(&dataset(&mut m), &dataset(&mut r));
    let mut blocker = conn(master.addr());
    write_more(&mut m, &mut blocker);
    compare(&mut m, &mut r);

    // Replicas are read-only.
    let err = redis::cmd("SET")
        .arg("x")
        .arg("1")
        .query::<()>(&mut r)
        .unwrap_err();
    assert_eq!(err.code(), Some("READONLY"), "{err}");
    let role: Vec<redis::Value> = cmd(&mut r, &["ROLE"]);
    assert_eq!(role[0], redis::Value::BulkString(b"slave".to_vec()));
    assert_eq!(
        info_field(&mut r, "replication", "master_link_status"),
        "up"
    );

    // A broken link resumes with a partial resync, writes in the gap
    // included.
    let before: u64 = info_field(&mut m, "stats", "sync_partial_ok")
        .parse()
        .unwrap();
    assert_eq!(cmd::<i64>(&mut r, &["CLIENT", "KILL", "TYPE", "master"]), 1);
    cmd::<()>(&mut m, &["SET", "during-gap", "1"]);
    eventually("a partial resync", || {
        info_field(&mut m, "stats", "sync_partial_ok")
            .parse::<u64>()
            .unwrap()
            == before + 1
    });
    compare(&mut m, &mut r);
    assert_eq!(info_field(&mut m, "stats", "sync_full"), "1");

    // A gap larger than the backlog needs a full resync.
    cmd::<()>(&mut m, &["CONFIG", "SET", "repl-backlog-size", "16384"]);
    for i in 0..200 {
        cmd::<()>(&mut m, &["SET", &format!("fill{i}"), &"z".repeat(200)]);
    }
    caught_up(&mut m);
    assert_eq!(cmd::<i64>(&mut r, &["CLIENT", "KILL", "TYPE", "master"]), 1);
    for i in 0..200 {
        cmd::<()>(&mut m, &["SET", &format!("gap{i}"), &"z".repeat(200)]);
    }
    eventually("a full resync", || {
        info_field(&mut m, "stats", "sync_full") == "2"
    });
    compare(&mut m, &mut r);

    // WAIT counts replicas that have the writes.
    cmd::<()>(&mut m, &["SET", "w", "1"]);
    assert_eq!(cmd::<i64>(&mut m, &["WAIT", "1", "5000"]), 1);
    assert_eq!(cmd::<i64>(&mut m, &["WAIT", "2", "200"]), 1);
    assert_eq!(cmd::<i64>(&mut m, &["WAIT", "0", "0"]), 1);

    // REPLICAOF NO ONE promotes it: writable, with a new history that
    // continues the old one.
    let replid = info_field(&mut m, "replication", "master_replid");
    // A transaction queued before the server became a replica cannot write.
    let mut queued = conn(master.addr());
    cmd::<()>(&mut queued, &["MULTI"]);
    let _: redis::Value = cmd(&mut queued, &["SET", "queued", "1"]);
    cmd::<()>(&mut r, &["REPLICAOF", "NO", "ONE"]);
    cmd::<()>(&mut r, &["SET", "x", "1"]);
    assert_eq!(info_field(&mut r, "replication", "role"), "master");
    assert_eq!(info_field(&mut r, "replication", "master_replid2"), replid);

    // Switch over and back: the old master follows the promoted replica,
    // continuing its history, then takes the lead again.
    let partial: u64 = info_field(&mut r, "stats", "sync_partial_ok")
        .parse()
        .unwrap();
    let r_port = replica.addr().port().to_string();
    cmd::<()>(&mut m, &["REPLICAOF", "127.0.0.1", &r_port]);
    let err = redis::cmd("EXEC").query::<()>(&mut queued).unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    eventually("the old master to continue from the new one", || {
        info_field(&mut r, "stats", "sync_partial_ok")
            .parse::<u64>()
            .unwrap()
            == partial + 1
    });
    cmd::<()>(&mut r, &["SET", "from-new-master", "1"]);
    compare(&mut r, &mut m);
    cmd::<()>(&mut m, &["REPLICAOF", "NO", "ONE"]);
    let m_port = master.addr().port().to_string();
    cmd::<()>(&mut r, &["REPLICAOF", "127.0.0.1", &m_port]);
    cmd::<()>(&mut m, &["SET", "back", "1"]);
    cmd::<i64>(&mut m, &["RPUSH", "l1", "after-failback"]);
    compare(&mut m, &mut r);
}

#[test]
fn master_restarted_with_a_new_history_forces_a_full_resync() {
    let port = ember_tests::free_port();
    let master = EmberServer::start_on(port, &[]);
    let mut m = conn(master.addr());
    cmd::<()>(&mut m, &["SET", "old", "1"]);
    let replica = EmberServer::start(&[&format!("replicaof 127.0.0.1 {port}")]);
    let mut r = conn(replica.addr());
    caught_up(&mut m);
    assert_eq!(
        cmd::<Option<String>>(&mut r, &["GET", "old"]).as_deref(),
        Some("1")
    );
    drop(m);
    drop(master);
    let master = EmberServer::start_on(port, &[]);
    let mut m = conn(master.addr());
    cmd::<()>(&mut m, &["SET", "new", "2"]);
    caught_up(&mut m);
    assert_eq!(info_field(&mut m, "stats", "sync_full"), "1");
    assert_eq!(info_field(&mut m, "stats", "sync_partial_err"), "1");
    assert_same(&dataset(&mut m), &dataset(&mut r));
}

#[test]
fn ember_master_to_redis_replica() {
    let master = EmberServer::start(&[]);
    let mut m = conn(master.addr());
    load_initial(&mut m);
    let port = master.addr().port().to_string();
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &port]);
    let mut r = conn(replica.addr());
    caught_up(&mut m);
    assert_same(&dataset(&mut m), &dataset(&mut r));
    let mut blocker = conn(master.addr());
    write_more(&mut m, &mut blocker);
    compare(&mut m, &mut r);
    // Redis reconnects after a kill with a partial resync.
    assert_eq!(
        cmd::<i64>(&mut m, &["CLIENT", "KILL", "TYPE", "replica"]),
        1
    );
    cmd::<()>(&mut m, &["SET", "during-gap", "1"]);
    eventually("a partial resync", || {
        info_field(&mut m, "stats", "sync_partial_ok") == "1"
    });
    compare(&mut m, &mut r);
}

#[test]
fn redis_master_to_ember_replica() {
    let master = RedisServer::start(&["--repl-diskless-sync-delay", "0"]);
    let mut m = conn(master.addr());
    load_initial(&mut m);
    let port = master.addr().port();
    let replica = EmberServer::start(&[&format!("replicaof 127.0.0.1 {port}")]);
    let mut r = conn(replica.addr());
    caught_up(&mut m);
    assert_same(&dataset(&mut m), &dataset(&mut r));
    let mut blocker = conn(master.addr());
    write_more(&mut m, &mut blocker);
    compare(&mut m, &mut r);
    // Ember reconnects after a kill with a partial resync.
    assert_eq!(cmd::<i64>(&mut r, &["CLIENT", "KILL", "TYPE", "master"]), 1);
    cmd::<()>(&mut m, &["SET", "during-gap", "1"]);
    eventually("a partial resync", || {
        info_field(&mut m, "stats", "sync_partial_ok") == "1"
    });
    compare(&mut m, &mut r);
}

#[test]
fn replica_restarted_from_its_file_continues_with_a_partial_resync() {
    let master = EmberServer::start(&[]);
    let mut m = conn(master.addr());
    load_initial(&mut m);
    let dir = std::env::temp_dir().join(format!("ember-replica-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let lines = [
        format!("replicaof 127.0.0.1 {}", master.addr().port()),
        format!("dir {}", dir.display()),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let port = ember_tests::free_port();
    let replica = EmberServer::start_on(port, &lines);
    let mut r = conn(replica.addr());
    caught_up(&mut m);
    cmd::<()>(&mut m, &["SELECT", "3"]);
    cmd::<()>(&mut m, &["SET", "before-restart", "1"]);
    caught_up(&mut m);
    // A graceful stop saves the dataset with the history it stands at.
    let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<()>(&mut r);
    drop(r);
    drop(replica);
    // Writes while it is down: in database 3, where the stream stands.
    cmd::<()>(&mut m, &["SET", "while-down", "1"]);
    cmd::<i64>(&mut m, &["RPUSH", "l1", "more"]);
    cmd::<()>(&mut m, &["SELECT", "0"]);
    let replica = EmberServer::start_on(port, &lines);
    let mut r = conn(replica.addr());
    eventually("a partial resync", || {
        info_field(&mut m, "stats", "sync_partial_ok") == "1"
    });
    assert_eq!(info_field(&mut m, "stats", "sync_full"), "1");
    compare(&mut m, &mut r);
    cmd::<()>(&mut r, &["SELECT", "3"]);
    assert_eq!(
        cmd::<Option<String>>(&mut r, &["GET", "while-down"]).as_deref(),
        Some("1")
    );
    // Stopped without saving, it comes back with nothing and a history the
    // master does not know: a full resync.
    drop(r);
    drop(replica);
    std::fs::remove_dir_all(&dir).expect("remove the saved file");
    std::fs::create_dir_all(&dir).expect("a directory");
    cmd::<()>(&mut m, &["SET", "while-down-again", "1"]);
    let replica = EmberServer::start_on(port, &lines);
    let mut r = conn(replica.addr());
    eventually("a full resync", || {
        info_field(&mut m, "stats", "sync_full") == "2"
    });
    compare(&mut m, &mut r);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_replica_that_stops_reading_is_dropped_and_the_master_keeps_serving() {
    let master = EmberServer::start(&["client-output-buffer-limit replica 1mb 0 0"]);
    let mut m = conn(master.addr());
    // A replica that asks for the stream, then never reads again.
    let mut stuck = stuck_replica(&master);
    eventually("the replica to be listed", || {
        info_field(&mut m, "replication", "connected_slaves") == "1"
    });
    // 32 MB of writes: more than the socket buffers and the limit hold.
    let value = "v".repeat(1 << 20);
    for i in 0..32 {
        cmd::<()>(&mut m, &["SET", &format!("big{i}"), &value]);
    }
    eventually("the stuck replica to be dropped", || {
        info_field(&mut m, "replication", "connected_slaves") == "0"
    });
    assert_eq!(cmd::<i64>(&mut m, &["DBSIZE"]), 32);
    link_closed(&mut stuck);
}

/// Asserts that the master closes the link of a replica that stopped
/// reading: reading drains what was sent, then ends (within a bound).
pub(crate) fn link_closed(stuck: &mut std::net::TcpStream) {
    use std::io::Read;
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match stuck.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => panic!("the master did not close the stuck replica's link: {e}"),
        }
    }
}

#[test]
fn an_ember_replica_authenticates_to_a_redis_master() {
    let master =
        RedisServer::start(&["--requirepass", "s3cret", "--repl-diskless-sync-delay", "0"]);
    let client =
        redis::Client::open(format!("redis://:s3cret@{}/", master.addr())).expect("client");
    let mut m = client.get_connection().expect("connection");
    cmd::<()>(&mut m, &["SET", "k", "v"]);
    let port = master.addr().port();
    let replica =
        EmberServer::start(&[&format!("replicaof 127.0.0.1 {port}"), "masterauth s3cret"]);
    let mut r = conn(replica.addr());
    caught_up(&mut m);
    assert_eq!(
        cmd::<Option<String>>(&mut r, &["GET", "k"]).as_deref(),
        Some("v")
    );
    // Without the password the link stays down. "down" alone is also what
    // a replica that never reached the master reports, so first see the
    // master refuse its handshake's PSYNC, twice: it tried, and tries
    // again.
    let lost = EmberServer::start(&[&format!("replicaof 127.0.0.1 {port}")]);
    let mut l = conn(lost.addr());
    eventually("the master to refuse the replica's PSYNC twice", || {
        rejected_psyncs(&mut m) >= 2
    });
    assert_eq!(
        info_field(&mut l, "replication", "master_link_status"),
        "down"
    );
    assert_eq!(
        info_field(&mut l, "replication", "master_sync_in_progress"),
        "0"
    );
    // The replica with the password is the master's only one.
    assert_eq!(info_field(&mut m, "replication", "connected_slaves"), "1");
    assert_eq!(cmd::<i64>(&mut l, &["DBSIZE"]), 0);
}

/// How many `PSYNC`s a Redis master refused before running them (without
/// AUTH, say).
fn rejected_psyncs(master: &mut Connection) -> u64 {
    let stats: String = cmd(master, &["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_psync:"))
        .and_then(|l| l.split(',').find_map(|f| f.strip_prefix("rejected_calls=")))
        .map_or(0, |n| n.parse().expect("a count"))
}

/// The error texts of writes without enough replicas and of a stale
/// replica, compared with redis-server's.
#[test]
fn noreplicas_and_masterdown_match_redis() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let dead = ember_tests::free_port().to_string();
    let mut seen = Vec::new();
    for addr in [redis.addr(), ember.addr()] {
        let mut c = conn(addr);
        let mut errors = Vec::new();
        let mut err = |c: &mut Connection, args: &[&str]| {
            let mut q = redis::cmd(args[0]);
            for a in &args[1..] {
                q.arg(*a);
            }
            let e = q.query::<redis::Value>(c).map(|v| format!("{v:?}"));
            errors.push(e.unwrap_or_else(|e| e.to_string()));
        };
        cmd::<()>(&mut c, &["CONFIG", "SET", "min-replicas-to-write", "1"]);
        err(&mut c, &["SET", "k", "v"]);
        cmd::<()>(&mut c, &["MULTI"]);
        err(&mut c, &["INCR", "n"]);
        err(&mut c, &["EXEC"]);
        err(&mut c, &["GET", "k"]);
        cmd::<()>(&mut c, &["CONFIG", "SET", "min-replicas-to-write", "0"]);
        cmd::<()>(&mut c, &["CONFIG", "SET", "replica-serve-stale-data", "no"]);
        cmd::<()>(&mut c, &["REPLICAOF", "127.0.0.1", &dead]);
        err(&mut c, &["GET", "k"]);
        err(&mut c, &["PING"]);
        err(&mut c, &["ECHO", "still"]);
        err(&mut c, &["SET", "k", "v"]);
        cmd::<()>(&mut c, &["REPLICAOF", "NO", "ONE"]);
        err(&mut c, &["GET", "k"]);
        seen.push(errors);
    }
    assert_eq!(seen[0], seen[1]);
}

/// Attaches to `addr` as a replica with SYNC, skips the RDB payload, and
/// returns the connection with what it read past the payload.
pub(crate) fn attach_to_stream(addr: SocketAddr) -> (std::net::TcpStream, bytes::BytesMut) {
    use std::io::{Read, Write};
    let mut s = ember_tests::connect(addr);
    s.write_all(b"SYNC\r\n").expect("write SYNC");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let read = |s: &mut std::net::TcpStream, buf: &mut Vec<u8>, chunk: &mut [u8]| {
        let n = s.read(chunk).expect("read the payload");
        assert!(n > 0, "closed during the payload");
        buf.extend_from_slice(&chunk[..n]);
    };
    // Newlines keep the link alive while the master prepares the payload.
    loop {
        while buf.first() == Some(&b'\n') {
            buf.remove(0);
        }
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let header = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = header
                .strip_prefix('$')
                .and_then(|l| l.parse().ok())
                .unwrap_or_else(|| panic!("payload header {header:?}"));
            while buf.len() < end + 2 + len {
                read(&mut s, &mut buf, &mut chunk);
            }
            let rest = bytes::BytesMut::from(&buf[end + 2 + len..]);
            return (s, rest);
        }
        read(&mut s, &mut buf, &mut chunk);
    }
}

/// Reads commands from a replication stream until one is `SET <marker> 1`,
/// leaving out PINGs, as lower-case words with deadlines replaced by `<t>`
/// once checked to lie within a day of now.
pub(crate) fn read_stream(
    s: &mut std::net::TcpStream,
    buf: &mut bytes::BytesMut,
    marker: &str,
) -> Vec<String> {
    use std::io::Read;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let mut decoder = resp::Decoder::new();
    let mut out = Vec::new();
    loop {
        while let Some(frame) = decoder.decode(buf).expect("a valid stream") {
            let resp::Frame::Array(items) = frame else {
                panic!("not a command: {frame:?}");
            };
            let words: Vec<String> = items
                .iter()
                .map(|f| match f {
                    resp::Frame::Bulk(b) => String::from_utf8_lossy(b).to_string(),
                    other => panic!("not a bulk string: {other:?}"),
                })
                .collect();
            let mut line: Vec<String> = Vec::new();
            for w in &words {
                let time_arg = line.last().is_some_and(|p| p.eq_ignore_ascii_case("pxat"))
                    || line.first().is_some_and(|c| c == "pexpireat") && line.len() == 2;
                match w.parse::<i64>() {
                    Ok(t) if time_arg && (t - now_ms).abs() < 86_400_000 => line.push("<t>".into()),
                    _ if line.is_empty() => line.push(w.to_lowercase()),
                    _ => line.push(w.clone()),
                }
            }
            if line == ["set", marker, "1"] {
                return out;
            }
            if line[0] != "ping" {
                out.push(line.join(" "));
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = s.read(&mut chunk).expect("read the stream");
        assert!(n > 0, "the stream closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sorts the lines that start with `prefix` among their own places, for
/// deletions a server makes in an order of its own.
fn sort_lines(stream: &mut [String], prefix: &str) {
    let at: Vec<usize> = (0..stream.len())
        .filter(|&i| stream[i].starts_with(prefix))
        .collect();
    let mut lines: Vec<String> = at.iter().map(|&i| stream[i].clone()).collect();
    lines.sort();
    for (&i, line) in at.iter().zip(lines) {
        stream[i] = line;
    }
}

/// What a master sends its replicas for each kind of write — effects, not
/// the commands' text — compared command by command with redis-server's
/// stream for the same writes.
#[test]
fn replication_stream_matches_redis() {
    let redis = RedisServer::start(&["--enable-debug-command", "yes"]);
    let ember = EmberServer::start(&[]);
    let mut streams = Vec::new();
    for addr in [redis.addr(), ember.addr()] {
        let (mut s, mut buf) = attach_to_stream(addr);
        let mut c = conn(addr);
        let mut blocker = conn(addr);
        let run = |c: &mut Connection, line: &str| {
            let args: Vec<&str> = line.split(' ').collect();
            let mut q = redis::cmd(args[0]);
            for a in &args[1..] {
                q.arg(*a);
            }
            let _ = q.query::<redis::Value>(c);
        };
        // Keys that expire here are met by reads and writes, not by the
        // expiry cycle, which on a busy machine could reach them first on
        // one server only; the cycle has its turn below.
        cmd::<()>(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
        for line in [
            "SET a 1",
            "SET b v EX 100",
            "SET c v PX 5000 NX",
            "SET c w XX KEEPTTL",
            "SET c x EXAT 4000000000",
            "SET c y PXAT 4000000000000 GET",
            "SETEX d 100 v",
            "PSETEX e 100000 v",
            "SETNX e v",
            "SETNX e2 v",
            "EXPIRE a 100",
            "PEXPIRE a 200000 GT",
            "PEXPIRE a 100000 XX",
            "EXPIREAT a 4000000000",
            "PEXPIREAT a 4000000000000 LT",
            "EXPIRE a 100 NX",
            "PERSIST a",
            "PERSIST a",
            "INCRBYFLOAT f 1.5",
            "INCRBYFLOAT f 1e3",
            "INCR n",
            "INCRBY n 5",
            "DECR n",
            "DECRBY n 2",
            "APPEND a x",
            "SETRANGE a 5 zz",
            "GETSET a y",
            "GETDEL a",
            "GETDEL a",
            "GETEX b EX 200",
            "GETEX b PERSIST",
            "GETEX b",
            "MSET m1 1 m2 2",
            "MSETNX m1 1 m3 3",
            "MSETNX m4 4 m3 3",
            "RPUSH l a b c d e f",
            "LPOP l",
            "RPOP l 2",
            "LMPOP 1 l LEFT COUNT 10",
            "LMPOP 1 l LEFT COUNT 10",
            "LPUSH l2 x",
            "LPUSHX l9 x",
            "RPUSHX l2 w",
            "LMOVE l2 l3 LEFT RIGHT",
            "RPOPLPUSH l3 l2",
            "BLMOVE l2 l3 RIGHT LEFT 0",
            "BRPOPLPUSH l3 l2 0",
            "BLPOP l2 0",
            "RPUSH l2 p q r",
            "BLMPOP 0 2 l9 l2 RIGHT COUNT 5",
            "RPUSH l2 s t u",
            "LSET l2 0 z",
            "LINSERT l2 BEFORE z y",
            "LREM l2 0 y",
            "LTRIM l2 0 0",
            "RENAME l2 l4",
            "RENAMENX l4 m1",
            "RENAMENX l4 l5",
            "COPY l5 l6",
            "COPY l5 l6 REPLACE",
            "DEL l5 nothing",
            "UNLINK l6",
            "DEL nothing",
            "MULTI",
            "SET x 1",
            "INCR x",
            "EXPIRE x 100",
            "EXEC",
            "MULTI",
            "GET x",
            "EXEC",
            "SELECT 3",
            "SET y 1",
            "SELECT 0",
            "SWAPDB 0 3",
            "FLUSHDB",
            "SELECT 3",
            "SET z v PX 1",
        ] {
            run(&mut c, line);
        }
        run(&mut c, "SET z2 v PX 1");
        run(&mut c, "RPUSH z3 v");
        run(&mut c, "PEXPIRE z3 1");
        run(&mut c, "MULTI");
        run(&mut c, "SET one 1");
        run(&mut c, "EXEC");
        std::thread::sleep(Duration::from_millis(20));
        // Expired keys met by a read, a write and a push.
        run(&mut c, "GET z");
        run(&mut c, "SET z2 w");
        run(&mut c, "RPUSH z3 w");
        // Keys the expiry cycle reclaims (Redis samples ten times a
        // second).
        cmd::<()>(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
        run(&mut c, "SELECT 5");
        // In one transaction: on a busy machine the cycle could otherwise
        // reclaim the first key between the SETs on one server and not on
        // the other.
        run(&mut c, "MULTI");
        for i in 0..3 {
            run(&mut c, &format!("SET gone{i} v PX 1"));
        }
        run(&mut c, "EXEC");
        eventually("the expiry cycle", || {
            !cmd::<String>(&mut blocker, &["INFO", "keyspace"]).contains("db5:")
        });
        // A blocked pop served by a push from another client.
        run(&mut c, "SELECT 0");
        let mut q = redis::cmd("BLPOP");
        q.arg("bl").arg(0);
        let blocked = q.get_packed_command();
        {
            use std::io::Write;
            let mut raw = ember_tests::connect(addr);
            raw.write_all(&blocked).expect("send BLPOP");
            eventually("a blocked client", || {
                info_field(&mut blocker, "clients", "blocked_clients") == "1"
            });
            run(&mut c, "RPUSH bl one two");
            let reply = ember_tests::read_reply(&mut raw);
            assert_eq!(&reply[..], b"*2\r\n$2\r\nbl\r\n$3\r\none\r\n");
        }
        run(&mut c, "SET end 1");
        let mut stream = read_stream(&mut s, &mut buf, "end");
        // The expiry cycle samples keys in no particular order.
        sort_lines(&mut stream, "del gone");
        streams.push(stream);
    }
    let (theirs, ours) = (&streams[0], &streams[1]);
    for (i, (r, e)) in theirs.iter().zip(ours).enumerate() {
        assert_eq!(
            r, e,
            "command {i} differs; redis sent:\n{theirs:#?}\nember sent:\n{ours:#?}"
        );
    }
    assert_eq!(
        theirs.len(),
        ours.len(),
        "redis sent:\n{theirs:#?}\nember sent:\n{ours:#?}"
    );
}

/// Expired keys met by blocked clients woken for them (the pop they
/// cannot make leaves the key's DEL, after the command that woke them and
/// apart from it), by SCAN and by RANDOMKEY: the DELs reach replicas as
/// Redis sends them.
#[test]
fn expired_keys_met_by_blocked_clients_and_scans_stream_like_redis() {
    use std::io::Write;
    let redis = RedisServer::start(&["--enable-debug-command", "yes"]);
    let ember = EmberServer::start(&[]);
    let mut streams = Vec::new();
    for addr in [redis.addr(), ember.addr()] {
        let (mut s, mut buf) = attach_to_stream(addr);
        let mut c = conn(addr);
        let mut watcher = conn(addr);
        let blocked = |watcher: &mut Connection, n: &str| {
            eventually("a blocked client", || {
                info_field(watcher, "clients", "blocked_clients") == n
            });
        };
        cmd::<()>(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
        // SWAPDB brings in a list that has expired.
        cmd::<()>(&mut c, &["SELECT", "1"]);
        cmd::<i64>(&mut c, &["RPUSH", "k", "hello"]);
        cmd::<i64>(&mut c, &["PEXPIRE", "k", "50"]);
        let mut rd = ember_tests::connect(addr);
        rd.write_all(
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n9\r\n*3\r\n$5\r\nBRPOP\r\n$1\r\nk\r\n$1\r\n0\r\n",
        )
        .expect("send BRPOP");
        assert_eq!(&ember_tests::read_reply(&mut rd)[..], b"+OK\r\n");
        blocked(&mut watcher, "1");
        std::thread::sleep(Duration::from_millis(80));
        cmd::<()>(&mut c, &["SWAPDB", "1", "9"]);
        drop(rd);
        blocked(&mut watcher, "0");
        // A transaction pushes, sets a deadline and outlives it.
        cmd::<()>(&mut c, &["SELECT", "0"]);
        let mut rd = ember_tests::connect(addr);
        rd.write_all(b"*3\r\n$5\r\nBRPOP\r\n$1\r\nm\r\n$1\r\n0\r\n")
            .expect("send BRPOP");
        blocked(&mut watcher, "1");
        redis::pipe()
            .atomic()
            .cmd("RPUSH")
            .arg("m")
            .arg("hello")
            .cmd("PEXPIRE")
            .arg("m")
            .arg(50)
            .cmd("DEBUG")
            .arg("SLEEP")
            .arg(0.1)
            .query::<redis::Value>(&mut c)
            .expect("transaction");
        drop(rd);
        blocked(&mut watcher, "0");
        // SCAN and RANDOMKEY delete the expired keys they meet, each DEL
        // on its own.
        cmd::<()>(&mut c, &["SELECT", "2"]);
        for key in ["s1", "s2", "r1", "r2"] {
            cmd::<()>(&mut c, &["SET", key, "v", "PX", "1"]);
            if key == "s2" {
                std::thread::sleep(Duration::from_millis(20));
                let (next, keys): (String, Vec<String>) = cmd(&mut c, &["SCAN", "0"]);
                assert_eq!((next.as_str(), keys.len()), ("0", 0));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(cmd::<Option<String>>(&mut c, &["RANDOMKEY"]), None);
        cmd::<()>(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
        cmd::<()>(&mut c, &["SET", "end", "1"]);
        let mut stream = read_stream(&mut s, &mut buf, "end");
        // Each server meets the keys in an order of its own.
        sort_lines(&mut stream, "del s");
        sort_lines(&mut stream, "del r");
        streams.push(stream);
    }
    assert_eq!(
        streams[0], streams[1],
        "redis sent the first, ember the second"
    );
}

/// A replica whose master died says `ROLE` → `slave HOST PORT connect -1`,
/// as a redis-server replica says it: no offset while the link is down.
#[test]
fn role_of_a_replica_whose_master_died() {
    let mut roles = Vec::new();
    for ember_replica in [false, true] {
        let mut master = ember_tests::NodeProcess::start(ember_tests::NodeKind::Redis);
        let port = master.addr().rsplit_once(':').unwrap().1.to_owned();
        let line = format!("replicaof 127.0.0.1 {port}");
        let (replica_addr, _redis, _ember);
        if ember_replica {
            let e = EmberServer::start(&[&line]);
            replica_addr = e.addr();
            _ember = Some(e);
        } else {
            let r = RedisServer::start(&["--replicaof", "127.0.0.1", &port]);
            replica_addr = r.addr();
            _redis = Some(r);
        }
        let mut r = conn(replica_addr);
        eventually("the link", || {
            info_field(&mut r, "replication", "master_link_status") == "up"
        });
        let role: Vec<redis::Value> = cmd(&mut r, &["ROLE"]);
        assert!(
            matches!(role[4], redis::Value::Int(n) if n >= 0),
            "{role:?}"
        );
        master.kill();
        let mut role: Vec<redis::Value> = Vec::new();
        eventually("the replica to see its master gone", || {
            role = cmd(&mut r, &["ROLE"]);
            role[3] == redis::Value::BulkString(b"connect".to_vec())
        });
        roles.push((role[3].clone(), role[4].clone()));
    }
    assert_eq!(roles[0], roles[1], "redis, then ember");
    assert_eq!(roles[1].1, redis::Value::Int(-1));
}

/// What set writes send replicas, compared with redis-server's stream:
/// SPOP as SREM of what it popped (one SREM per member, in a MULTI/EXEC
/// when there are several) or as DEL when it takes everything, the STORE
/// forms and SMOVE as themselves, and nothing for writes that change
/// nothing. Popped members are random: each SREM's member is checked to
/// be one the set held, then written as `<m>`.
#[test]
fn set_writes_stream_like_redis() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let mut streams = Vec::new();
    for addr in [redis.addr(), ember.addr()] {
        let (mut s, mut buf) = attach_to_stream(addr);
        let mut c = conn(addr);
        for line in [
            "SADD s 1 2 3 4 5 6 7 8 9 10",
            "SADD s 1",
            "SPOP s 3",
            "SPOP s 7",
            "SADD t a b c d e f g h i j",
            "SPOP t 9",
            "SADD t k l m n o p q r s",
            "SPOP t 1",
            "SPOP t",
            "SPOP t 0",
            "SPOP none 3",
            "SPOP none",
            "SADD u x",
            "SPOP u",
            "SADD v 1 2 3",
            "SRANDMEMBER v 2",
            "SMOVE v w 1",
            "SMOVE v w 9",
            "SMOVE v v 2",
            "SREM v 2 9",
            "SREM v 9",
            "SINTERSTORE d v w",
            "SADD w 3",
            "SINTERSTORE d v w",
            "SUNIONSTORE e v w none",
            "SDIFFSTORE e v v",
            "SDIFFSTORE e v v",
            "SINTERSTORE none2 none",
            "SREM v 3",
        ] {
            let args: Vec<&str> = line.split(' ').collect();
            let mut q = redis::cmd(args[0]);
            for a in &args[1..] {
                q.arg(*a);
            }
            let _ = q.query::<redis::Value>(&mut c);
        }
        cmd::<()>(&mut c, &["SET", "end", "1"]);
        let stream = read_stream(&mut s, &mut buf, "end");
        let popped: Vec<String> = stream
            .into_iter()
            .map(|line| {
                let words: Vec<&str> = line.split(' ').collect();
                match words[..] {
                    ["srem", key @ ("s" | "t" | "u"), m] => {
                        let held = match key {
                            "s" => (1..=10).any(|i| m == i.to_string()),
                            "u" => m == "x",
                            _ => m.len() == 1 && m.as_bytes()[0].is_ascii_lowercase(),
                        };
                        assert!(held, "{line} pops a member {key} never held");
                        format!("srem {key} <m>")
                    }
                    _ => line,
                }
            })
            .collect();
        streams.push(popped);
    }
    assert_eq!(
        streams[0], streams[1],
        "redis sent the first, ember the second"
    );
}

/// A connection to `master` that asks for the replication stream (PSYNC
/// from scratch), reads the `+FULLRESYNC` line, and is then left for the
/// caller, who usually never reads from it again.
pub(crate) fn stuck_replica(master: &EmberServer) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut stuck = master.connect();
    stuck.write_all(b"PSYNC ? -1\r\n").expect("write");
    let mut first = [0u8; 11];
    stuck.read_exact(&mut first).expect("the master answers");
    assert_eq!(&first, b"+FULLRESYNC");
    stuck
}

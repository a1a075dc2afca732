//! CLIENT PAUSE and CLIENT UNPAUSE, on Ember and on a real
//! `redis-server` 7.0 side by side: held-back commands wait (they are not
//! refused) and run after the pause, in order; reads go on under a WRITE
//! pause; expiry stands still; and the failover procedure a client runs
//! (pause writes on the master, wait for the replica's offset to match,
//! promote the replica) works with Ember and Redis replicas.
//!
//! No test measures time: each waits (bounded) for the server to report
//! the state it needs (`blocked_clients`, offsets), then checks order.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ember_tests::{EmberServer, RedisServer, call, connect, read_reply};

fn send(conn: &mut TcpStream, args: &[&[u8]]) {
    let mut request = bytes::BytesMut::new();
    resp::encode_command(&mut request, args);
    conn.write_all(&request).expect("write");
}

/// Whether `conn` has no reply waiting: a held-back command must not have
/// answered. (A short wait can only miss a reply that is wrongly sent
/// late; it never fails a correct server.)
fn nothing_yet(conn: &mut TcpStream) -> bool {
    conn.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let quiet = matches!(conn.read(&mut byte), Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
    conn.set_read_timeout(Some(ember_tests::REPLY_TIMEOUT))
        .expect("timeout");
    quiet
}

fn info_field(conn: &mut TcpStream, section: &str, field: &str) -> String {
    let info = call(conn, &[b"INFO", section.as_bytes()]);
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .to_string()
}

/// Waits (bounded) until `check` holds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn blocked(admin: &mut TcpStream, n: usize) {
    eventually(&format!("{n} blocked clients"), || {
        info_field(admin, "clients", "blocked_clients") == n.to_string()
    });
}

/// Reads exactly `want`'s length and compares (pipelined replies may
/// arrive in one read).
fn expect(conn: &mut TcpStream, want: &[u8]) {
    let mut got = vec![0u8; want.len()];
    conn.read_exact(&mut got).expect("the replies");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

/// Both servers, for the same script.
fn servers() -> (RedisServer, EmberServer) {
    (RedisServer::start(&[]), EmberServer::start(&[]))
}

/// A write held back by CLIENT PAUSE WRITE runs after CLIENT UNPAUSE;
/// reads from other clients go on meanwhile and see the old value.
fn write_waits_for_unpause(addr: SocketAddr) {
    let (mut admin, mut writer, mut reader) = (connect(addr), connect(addr), connect(addr));
    call(&mut reader, &[b"SET", b"k", b"old"]);
    assert_eq!(
        &call(&mut admin, &[b"CLIENT", b"PAUSE", b"100000", b"WRITE"])[..],
        b"+OK\r\n"
    );
    // Pipelined: the read waits behind the held-back write.
    send(&mut writer, &[b"SET", b"k", b"new"]);
    send(&mut writer, &[b"GET", b"k"]);
    blocked(&mut admin, 1);
    assert_eq!(&call(&mut reader, &[b"GET", b"k"])[..], b"$3\r\nold\r\n");
    assert_eq!(&call(&mut reader, &[b"PING"])[..], b"+PONG\r\n");
    let list = call(&mut reader, &[b"CLIENT", b"LIST"]);
    assert!(
        String::from_utf8_lossy(&list).contains("flags=b "),
        "{list:?}"
    );
    assert!(nothing_yet(&mut writer));
    // Queueing a write inside MULTI waits too; queueing a read does not.
    let mut multi = connect(addr);
    assert_eq!(&call(&mut multi, &[b"MULTI"])[..], b"+OK\r\n");
    assert_eq!(&call(&mut multi, &[b"GET", b"k"])[..], b"+QUEUED\r\n");
    send(&mut multi, &[b"INCR", b"n"]);
    blocked(&mut admin, 2);
    assert_eq!(&call(&mut admin, &[b"CLIENT", b"UNPAUSE"])[..], b"+OK\r\n");
    expect(&mut writer, b"+OK\r\n$3\r\nnew\r\n");
    assert_eq!(&read_reply(&mut multi)[..], b"+QUEUED\r\n");
    assert_eq!(
        &call(&mut multi, &[b"EXEC"])[..],
        b"*2\r\n$3\r\nnew\r\n:1\r\n"
    );
    blocked(&mut admin, 0);
    // A blocking pop held back by the pause runs after it, then blocks
    // until an element comes.
    call(&mut admin, &[b"CLIENT", b"PAUSE", b"100000", b"WRITE"]);
    send(&mut writer, &[b"BLPOP", b"q", b"0"]);
    blocked(&mut admin, 1);
    let list = call(&mut admin, &[b"CLIENT", b"LIST"]);
    assert!(
        String::from_utf8_lossy(&list).contains("flags=b db=0"),
        "{list:?}"
    );
    assert!(
        String::from_utf8_lossy(&list).contains("cmd=blpop"),
        "{list:?}"
    );
    call(&mut admin, &[b"CLIENT", b"UNPAUSE"]);
    call(&mut reader, &[b"RPUSH", b"q", b"x"]);
    expect(&mut writer, b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
}

#[test]
fn a_write_held_by_a_pause_runs_after_unpause() {
    let (redis, ember) = servers();
    write_waits_for_unpause(redis.addr());
    write_waits_for_unpause(ember.addr());
}

/// EXEC of a transaction that writes waits out a WRITE pause; one that
/// only reads does not. A pause that ends by itself releases its clients.
fn exec_and_deadlines(addr: SocketAddr) {
    let (mut admin, mut a, mut b) = (connect(addr), connect(addr), connect(addr));
    call(&mut a, &[b"MULTI"]);
    call(&mut a, &[b"SET", b"t", b"1"]);
    call(&mut b, &[b"MULTI"]);
    call(&mut b, &[b"GET", b"t"]);
    call(&mut admin, &[b"CLIENT", b"PAUSE", b"100000", b"WRITE"]);
    send(&mut a, &[b"EXEC"]);
    blocked(&mut admin, 1);
    assert_eq!(&call(&mut b, &[b"EXEC"])[..], b"*1\r\n$-1\r\n");
    assert!(nothing_yet(&mut a));
    call(&mut admin, &[b"CLIENT", b"UNPAUSE"]);
    assert_eq!(&read_reply(&mut a)[..], b"*1\r\n+OK\r\n");
    // A short ALL pause: even PING waits, and is answered when it ends.
    call(&mut admin, &[b"CLIENT", b"PAUSE", b"200", b"ALL"]);
    assert_eq!(&call(&mut b, &[b"PING"])[..], b"+PONG\r\n");
    assert_eq!(&call(&mut b, &[b"GET", b"t"])[..], b"$1\r\n1\r\n");
    // A pause of 0 ends at once.
    call(&mut admin, &[b"CLIENT", b"PAUSE", b"0", b"WRITE"]);
    assert_eq!(&call(&mut b, &[b"SET", b"t", b"2"])[..], b"+OK\r\n");
}

#[test]
fn exec_waits_only_if_it_writes_and_pauses_end_on_their_own() {
    let (redis, ember) = servers();
    exec_and_deadlines(redis.addr());
    exec_and_deadlines(ember.addr());
}

#[test]
fn pause_errors_match_redis() {
    let (redis, ember) = servers();
    let (mut r, mut e) = (redis.connect(), ember.connect());
    for args in [
        &[&b"CLIENT"[..], b"PAUSE", b"x"][..],
        &[b"CLIENT", b"PAUSE", b"-1"],
        &[b"CLIENT", b"PAUSE", b"1.5"],
        &[b"CLIENT", b"PAUSE", b"x", b"bogus"],
        &[b"CLIENT", b"PAUSE", b"10", b"bogus"],
        &[b"CLIENT", b"PAUSE", b"10", b"write", b"more"],
        &[b"CLIENT", b"PAUSE"],
        &[b"CLIENT", b"UNPAUSE", b"x"],
        &[b"CLIENT", b"UNPAUSE"],
        &[b"CLIENT", b"PAUSE", b"0"],
        &[b"CLIENT", b"PAUSE", b"0", b"all"],
    ] {
        let want: Bytes = call(&mut r, args);
        assert_eq!(call(&mut e, args), want, "{args:?}");
    }
}

/// Under a pause an expired key is reported missing but not deleted:
/// DBSIZE still counts it and nothing reaches the replication stream
/// until the pause ends.
fn expiry_stands_still(addr: SocketAddr) {
    let (mut admin, mut c) = (connect(addr), connect(addr));
    call(&mut c, &[b"SET", b"e", b"v", b"PX", b"1000"]);
    call(&mut admin, &[b"CLIENT", b"PAUSE", b"100000", b"WRITE"]);
    eventually("the key to expire", || {
        &call(&mut c, &[b"PTTL", b"e"])[..] == b":-2\r\n"
    });
    assert_eq!(&call(&mut c, &[b"GET", b"e"])[..], b"$-1\r\n");
    assert_eq!(&call(&mut c, &[b"EXISTS", b"e"])[..], b":0\r\n");
    let _ = call(&mut c, &[b"SCAN", b"0"]);
    assert_eq!(&call(&mut c, &[b"DBSIZE"])[..], b":1\r\n");
    call(&mut admin, &[b"CLIENT", b"UNPAUSE"]);
    assert_eq!(&call(&mut c, &[b"GET", b"e"])[..], b"$-1\r\n");
    assert_eq!(&call(&mut c, &[b"DBSIZE"])[..], b":0\r\n");
}

#[test]
fn expiry_stands_still_while_paused() {
    let (redis, ember) = servers();
    expiry_stands_still(redis.addr());
    expiry_stands_still(ember.addr());
}

/// The failover a client runs: CLIENT PAUSE WRITE on the master, wait
/// until each replica's offset equals the master's, promote one replica
/// (REPLICAOF NO ONE); it has every write acknowledged before the pause
/// and none of the held-back ones. WAIT during the pause sends no GETACK
/// (it would move the offsets), yet counts the replicas.
fn failover(master: SocketAddr) {
    let port = master.port().to_string();
    let redis = RedisServer::start(&["--replicaof", "127.0.0.1", &port]);
    let ember = EmberServer::start(&[&format!("replicaof 127.0.0.1 {port}")]);
    let mut m = connect(master);
    let mut writer = connect(master);
    eventually("two replicas", || {
        info_field(&mut m, "replication", "connected_slaves") == "2"
    });
    for i in 0..200 {
        let k = format!("key{i}");
        call(&mut m, &[b"SET", k.as_bytes(), b"v", b"PX", b"100000"]);
        call(&mut m, &[b"RPUSH", b"list", k.as_bytes()]);
    }
    call(&mut m, &[b"CLIENT", b"PAUSE", b"100000", b"WRITE"]);
    send(&mut writer, &[b"SET", b"late", b"1"]);
    blocked(&mut m, 1);
    let offset = info_field(&mut m, "replication", "master_repl_offset");
    let mut replicas = [redis.connect(), ember.connect()];
    for r in &mut replicas {
        // The master's PINGs (every repl-ping-replica-period) may move
        // both offsets; they meet again each time.
        eventually("the replica to catch up", || {
            info_field(r, "replication", "master_repl_offset")
                == info_field(&mut m, "replication", "master_repl_offset")
        });
    }
    assert_eq!(&call(&mut m, &[b"WAIT", b"2", b"5000"])[..], b":2\r\n");
    // Nothing but PINGs moved the master meanwhile: the held-back write
    // is not in the stream, and WAIT sent no GETACK.
    let now: i64 = info_field(&mut m, "replication", "master_repl_offset")
        .parse()
        .expect("an offset");
    let before: i64 = offset.parse().expect("an offset");
    assert_eq!((now - before) % 14, 0, "only PINGs (14 bytes each)");
    let [redis_replica, ember_replica] = &mut replicas;
    for r in [&mut *ember_replica, &mut *redis_replica] {
        assert_eq!(&call(r, &[b"REPLICAOF", b"NO", b"ONE"])[..], b"+OK\r\n");
        assert_eq!(&call(r, &[b"DBSIZE"])[..], b":201\r\n");
        assert_eq!(&call(r, &[b"LLEN", b"list"])[..], b":200\r\n");
        assert_eq!(&call(r, &[b"EXISTS", b"late"])[..], b":0\r\n");
        assert_eq!(&call(r, &[b"SET", b"promoted", b"1"])[..], b"+OK\r\n");
    }
    call(&mut m, &[b"CLIENT", b"UNPAUSE"]);
    assert_eq!(&read_reply(&mut writer)[..], b"+OK\r\n");
}

#[test]
fn failover_under_a_write_pause_on_an_ember_master() {
    let master = EmberServer::start(&[]);
    failover(master.addr());
}

#[test]
fn failover_under_a_write_pause_on_a_redis_master() {
    let master = RedisServer::start(&["--repl-diskless-sync-delay", "0"]);
    failover(master.addr());
}

//! MIGRATE between real processes: Ember → redis-server, redis-server →
//! Ember, Ember → Ember, each run through the same script with Redis's
//! exact replies; errors side by side with Redis; and the DEL replicas get.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ember_tests::{EmberServer, RedisServer, SilentNode, call, connect, free_port};

fn cmd(conn: &mut TcpStream, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    String::from_utf8_lossy(&call(conn, &args)).into_owned()
}

/// The same script for every direction: `src` moves keys to `dst`.
fn script(src: SocketAddr, dst: SocketAddr) {
    let (mut s, mut d) = (connect(src), connect(dst));
    let host = "127.0.0.1";
    let port = dst.port().to_string();
    let port = port.as_str();
    cmd(&mut s, &["FLUSHALL"]);
    cmd(&mut d, &["FLUSHALL"]);
    cmd(&mut s, &["SET", "k1", "v1"]);
    cmd(&mut s, &["RPUSH", "l", "a", "b", "1"]);
    cmd(&mut s, &["SET", "t", "v", "PX", "100000"]);
    let migrate = |s: &mut TcpStream, rest: &[&str]| {
        let mut args = vec!["MIGRATE", host, port];
        args.extend_from_slice(rest);
        cmd(s, &args)
    };
    assert_eq!(migrate(&mut s, &["k1", "0", "5000"]), "+OK\r\n");
    assert_eq!(cmd(&mut s, &["EXISTS", "k1"]), ":0\r\n");
    assert_eq!(cmd(&mut d, &["GET", "k1"]), "$2\r\nv1\r\n");
    assert_eq!(
        migrate(&mut s, &["", "0", "5000", "KEYS", "l", "t", "missing"]),
        "+OK\r\n"
    );
    assert_eq!(
        cmd(&mut d, &["LRANGE", "l", "0", "-1"]),
        "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\n1\r\n"
    );
    let pttl: i64 = cmd(&mut d, &["PTTL", "t"])[1..]
        .trim()
        .parse()
        .expect("pttl");
    assert!((90_000..=100_000).contains(&pttl), "pttl {pttl}");
    assert_eq!(cmd(&mut s, &["EXISTS", "l", "t"]), ":0\r\n");
    // COPY keeps the source; an existing target key is an error unless
    // REPLACE.
    cmd(&mut s, &["SET", "c", "1"]);
    assert_eq!(migrate(&mut s, &["c", "0", "5000", "COPY"]), "+OK\r\n");
    assert_eq!(cmd(&mut s, &["GET", "c"]), "$1\r\n1\r\n");
    cmd(&mut s, &["SET", "c", "2"]);
    assert_eq!(
        migrate(&mut s, &["c", "0", "5000", "COPY"]),
        "-ERR Target instance replied with error: BUSYKEY Target key name already exists.\r\n"
    );
    assert_eq!(cmd(&mut s, &["GET", "c"]), "$1\r\n2\r\n");
    assert_eq!(migrate(&mut s, &["c", "0", "5000", "REPLACE"]), "+OK\r\n");
    assert_eq!(cmd(&mut d, &["GET", "c"]), "$1\r\n2\r\n");
    assert_eq!(cmd(&mut s, &["EXISTS", "c"]), ":0\r\n");
    assert_eq!(migrate(&mut s, &["nothing", "0", "5000"]), "+NOKEY\r\n");
    // Another database on the target.
    cmd(&mut s, &["SET", "db3", "x"]);
    assert_eq!(migrate(&mut s, &["db3", "3", "5000"]), "+OK\r\n");
    cmd(&mut d, &["SELECT", "3"]);
    assert_eq!(cmd(&mut d, &["GET", "db3"]), "$1\r\nx\r\n");
    cmd(&mut d, &["SELECT", "0"]);
    cmd(&mut s, &["SET", "bad-db", "x"]);
    assert_eq!(
        migrate(&mut s, &["bad-db", "99", "5000"]),
        "-ERR Target instance replied with error: ERR DB index is out of range\r\n"
    );
    assert_eq!(cmd(&mut s, &["EXISTS", "bad-db"]), ":1\r\n");
    // One key refused: the others still move and are deleted.
    cmd(&mut s, &["MSET", "x", "1", "y", "1"]);
    cmd(&mut d, &["SET", "x", "0"]);
    assert_eq!(
        migrate(&mut s, &["", "0", "5000", "KEYS", "x", "y"]),
        "-ERR Target instance replied with error: BUSYKEY Target key name already exists.\r\n"
    );
    assert_eq!(cmd(&mut s, &["EXISTS", "x", "y"]), ":1\r\n");
    assert_eq!(
        cmd(&mut d, &["MGET", "x", "y"]),
        "*2\r\n$1\r\n0\r\n$1\r\n1\r\n"
    );
}

#[test]
fn migrate_moves_keys_in_every_direction() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let other = EmberServer::start(&[]);
    script(ember.addr(), redis.addr());
    script(redis.addr(), ember.addr());
    script(ember.addr(), other.addr());
}

/// The target asks for a password: every way of giving it, or not.
fn auth_script(src: SocketAddr, dst: SocketAddr) {
    let mut s = connect(src);
    let port = dst.port().to_string();
    cmd(&mut s, &["SET", "a", "1"]);
    let base = [
        "MIGRATE",
        "127.0.0.1",
        port.as_str(),
        "a",
        "0",
        "5000",
        "COPY",
    ];
    let with = |s: &mut TcpStream, more: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(more);
        cmd(s, &args)
    };
    assert_eq!(
        with(&mut s, &[]),
        "-ERR Target instance replied with error: NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        with(&mut s, &["AUTH", "wrong"]),
        "-ERR Target instance replied with error: WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(with(&mut s, &["AUTH", "secret"]), "+OK\r\n");
    assert_eq!(
        with(&mut s, &["REPLACE", "AUTH2", "default", "secret"]),
        "+OK\r\n"
    );
    assert_eq!(cmd(&mut s, &["EXISTS", "a"]), ":1\r\n");
}

#[test]
fn migrate_authenticates_to_its_target() {
    let redis = RedisServer::start(&["--requirepass", "secret"]);
    let ember = EmberServer::start(&["requirepass secret"]);
    let plain_redis = RedisServer::start(&[]);
    let plain_ember = EmberServer::start(&[]);
    auth_script(plain_ember.addr(), redis.addr());
    auth_script(plain_redis.addr(), ember.addr());
}

#[test]
fn migrate_errors_match_redis() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let silent = SilentNode::start();
    let silent_port = silent.addr().rsplit(':').next().expect("port").to_string();
    let closed = free_port().to_string();
    let (mut r, mut e) = (redis.connect(), ember.connect());
    for conn in [&mut r, &mut e] {
        cmd(conn, &["SET", "k", "v"]);
    }
    let cases: Vec<Vec<&str>> = vec![
        vec!["MIGRATE", "127.0.0.1", "1", "k", "0"],
        vec!["MIGRATE", "127.0.0.1", "1", "k", "0", "10", "bogus"],
        vec!["MIGRATE", "127.0.0.1", "1", "k", "0", "10", "AUTH"],
        vec!["MIGRATE", "127.0.0.1", "1", "k", "0", "10", "AUTH2", "u"],
        vec!["MIGRATE", "127.0.0.1", "1", "k", "0", "10", "KEYS", "k"],
        vec!["MIGRATE", "127.0.0.1", "1", "k", "x", "10"],
        vec!["MIGRATE", "127.0.0.1", "1", "k", "0", "x"],
        vec!["MIGRATE", "127.0.0.1", "1", "k", "x", "x"],
        vec!["MIGRATE", "127.0.0.1", "1", "missing", "0", "10"],
        vec!["MIGRATE", "127.0.0.1", "1", "", "0", "10", "KEYS"],
        vec!["MIGRATE", "127.0.0.1", &closed, "k", "0", "1000"],
        vec!["MIGRATE", "127.0.0.1", "junk", "k", "0", "1000"],
        vec!["MIGRATE", "127.0.0.1", &silent_port, "k", "0", "100"],
        vec![
            "MIGRATE",
            "127.0.0.1",
            &silent_port,
            "k",
            "0",
            "100",
            "AUTH",
            "pw",
        ],
        vec!["GET", "k"],
    ];
    for args in &cases {
        assert_eq!(cmd(&mut e, args), cmd(&mut r, args), "{args:?}");
    }
    // To itself: Redis waits for its own answer until the timeout; Ember
    // fails at once, with the same error, and keeps the key.
    for (conn, port) in [(&mut r, redis.addr().port()), (&mut e, ember.addr().port())] {
        let port = port.to_string();
        let args = ["MIGRATE", "127.0.0.1", &port, "k", "0", "100", "REPLACE"];
        assert_eq!(
            cmd(conn, &args),
            "-IOERR error or timeout reading to target instance\r\n"
        );
        assert_eq!(cmd(conn, &["GET", "k"]), "$1\r\nv\r\n");
    }
}

#[test]
fn migrate_reaches_replicas_as_del() {
    let master = EmberServer::start(&[]);
    let target = RedisServer::start(&[]);
    let port = master.addr().port().to_string();
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &port]);
    let (mut m, mut r) = (master.connect(), replica.connect());
    cmd(&mut m, &["MSET", "a", "1", "b", "2", "c", "3"]);
    let target_port = target.addr().port().to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    while cmd(&mut r, &["DBSIZE"]) != ":3\r\n" {
        assert!(Instant::now() < deadline, "the replica never caught up");
        std::thread::sleep(Duration::from_millis(10));
    }
    let migrate = [
        "MIGRATE",
        "127.0.0.1",
        &target_port,
        "",
        "0",
        "5000",
        "KEYS",
        "a",
        "b",
    ];
    assert_eq!(cmd(&mut m, &migrate), "+OK\r\n");
    let copy = [
        "MIGRATE",
        "127.0.0.1",
        &target_port,
        "c",
        "0",
        "5000",
        "COPY",
    ];
    assert_eq!(cmd(&mut m, &copy), "+OK\r\n");
    cmd(&mut m, &["SET", "marker", "1"]);
    while cmd(&mut r, &["EXISTS", "marker"]) != ":1\r\n" {
        assert!(Instant::now() < deadline, "the replica never caught up");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cmd(&mut r, &["EXISTS", "a", "b", "c"]), ":1\r\n");
}

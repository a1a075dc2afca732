//! Keyspace notifications: the same command sequences against redis-server
//! and Ember, with a subscriber on `__key*__:*`, and the messages it
//! receives compared in order, byte for byte, for every command family
//! and several `notify-keyspace-events` settings; expired keys (lazily and
//! by the expiry cycle); events raised inside MULTI/EXEC; events on a
//! replica for what it applies.

use std::net::SocketAddr;
use std::time::Duration;

use ember_tests::{EmberServer, RedisServer};

use crate::pubsub::{Conn, show, wait_for_link};

/// The channel of the message that ends a run: nothing but the test
/// publishes on it.
const END: &str = "__keyevent@99__:end-of-script";

/// Sets `classes`, subscribes to every keyspace channel, runs `script`
/// (one reply per command) on a fresh database and returns every message
/// the subscriber received, in order.
fn events(addr: SocketAddr, classes: &str, script: &[&[&str]]) -> Vec<String> {
    let mut ctl = Conn::new(addr);
    ctl.call(&["CONFIG", "SET", "notify-keyspace-events", ""], 1);
    ctl.call(&["FLUSHALL"], 1);
    ctl.call(&["CONFIG", "SET", "notify-keyspace-events", classes], 1);
    let mut sub = Conn::new(addr);
    sub.call(&["PSUBSCRIBE", "__key*__:*"], 1);
    for cmd in script {
        ctl.call(cmd, 1);
    }
    until_end(&mut ctl, &mut sub)
}

/// Publishes the end message with `ctl` and returns what `sub` received
/// before it.
fn until_end(ctl: &mut Conn, sub: &mut Conn) -> Vec<String> {
    ctl.call(&["PUBLISH", END, "end"], 1);
    let mut got = Vec::new();
    loop {
        let frame = show(&sub.frame());
        if frame.contains(END) {
            return got;
        }
        got.push(frame);
    }
}

/// Runs `script` against both servers with each of `classes` and
/// compares the messages.
fn same_events(redis: &RedisServer, ember: &EmberServer, classes: &[&str], script: &[&[&str]]) {
    for c in classes {
        let want = events(redis.addr(), c, script);
        let got = events(ember.addr(), c, script);
        if got != want {
            let at = got.iter().zip(&want).take_while(|(g, w)| g == w).count();
            panic!(
                "notify-keyspace-events {c:?}, script starting {:?}: {} messages, Redis sent {}; \
                 first difference at {at}: {:?} where Redis sent {:?}",
                script.first(),
                got.len(),
                want.len(),
                got.get(at),
                want.get(at)
            );
        }
    }
}

/// The settings every family is compared under: all, all with `new`,
/// keyspace only, keyevent only, and single classes that keep some
/// events and drop others.
const CLASSES: &[&str] = &[
    "KEA", "KEAn", "KA", "EA", "Kg$", "El", "Es", "Eh", "Ez", "En", "Ex", "Kgn",
];

#[test]
fn string_commands_raise_the_events_redis_raises() {
    let (redis, ember) = (RedisServer::start(&[]), EmberServer::start(&[]));
    let script: &[&[&str]] = &[
        &["SET", "s", "1"],
        &["SET", "s", "2", "EX", "100"],
        &["SET", "s", "3", "KEEPTTL"],
        &["SET", "s", "4", "NX"],
        &["SET", "t", "4", "XX"],
        &["SET", "s", "5", "GET"],
        &["SETNX", "n", "1"],
        &["SETNX", "n", "2"],
        &["SETEX", "e", "100", "v"],
        &["PSETEX", "e", "100000", "v"],
        &["GETSET", "g", "1"],
        &["GETDEL", "g"],
        &["GETDEL", "g"],
        &["MSET", "m1", "a", "m2", "b"],
        &["MSETNX", "m1", "a", "m3", "b"],
        &["MSETNX", "m4", "a", "m5", "b"],
        &["APPEND", "a", "x"],
        &["APPEND", "a", "y"],
        &["INCR", "i"],
        &["DECR", "i"],
        &["INCRBY", "i", "5"],
        &["DECRBY", "i", "5"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["INCR", "a"],
        &["SETRANGE", "r", "2", "xy"],
        &["SETRANGE", "r", "0", ""],
        &["GETEX", "s", "PERSIST"],
        &["GETEX", "s", "PERSIST"],
        &["GETEX", "s", "EX", "100"],
        &["GETEX", "s", "PXAT", "1"],
        &["SETBIT", "b", "7", "1"],
        &["SETBIT", "b", "7", "1"],
        &["BITFIELD", "bf", "SET", "u8", "0", "255"],
        &["BITFIELD", "bf", "GET", "u8", "0"],
        &["BITOP", "AND", "bo", "b", "bf"],
        &["BITOP", "AND", "bo", "nothing"],
        &["LPUSH", "wrong", "x"],
        &["SET", "wrong", "x", "GET"],
    ];
    same_events(&redis, &ember, CLASSES, script);
}

#[test]
fn generic_commands_raise_the_events_redis_raises() {
    let (redis, ember) = (RedisServer::start(&[]), EmberServer::start(&[]));
    let script: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["SET", "b", "2"],
        &["DEL", "a", "b", "c"],
        &["SET", "a", "1"],
        &["UNLINK", "a"],
        &["SET", "k", "1"],
        &["EXPIRE", "k", "100"],
        &["PEXPIRE", "k", "200000", "GT"],
        &["EXPIRE", "k", "10", "GT"],
        &["EXPIREAT", "k", "4000000000"],
        &["PERSIST", "k"],
        &["PERSIST", "k"],
        &["PEXPIREAT", "k", "1"],
        &["EXPIRE", "nothing", "100"],
        &["SET", "k", "1"],
        &["RENAME", "k", "k2"],
        &["SET", "k3", "x"],
        &["RENAME", "k2", "k3"],
        &["RENAMENX", "k3", "k4"],
        &["SET", "k5", "x"],
        &["RENAMENX", "k4", "k5"],
        &["COPY", "k4", "k6"],
        &["COPY", "k4", "k6"],
        &["COPY", "k4", "k6", "REPLACE"],
        &["COPY", "k4", "k6", "DB", "2"],
        &["MOVE", "k6", "1"],
        &["MOVE", "k5", "1"],
        &["SELECT", "1"],
        &["SET", "one", "1"],
        &["DEL", "k6"],
        &["SELECT", "0"],
        &["SORT", "nothing", "STORE", "st"],
        &["RPUSH", "l", "3", "1", "2"],
        &["SORT", "l", "STORE", "st"],
        &["SORT", "nothing", "STORE", "st"],
        &["SET", "d", "v"],
        &["RESTORE", "d", "0", "\u{0}"],
    ];
    same_events(&redis, &ember, CLASSES, script);
}

/// RESTORE's events: each server restores its own DUMP of a string.
fn restore_events(addr: SocketAddr) -> Vec<String> {
    let mut ctl = Conn::new(addr);
    ctl.call(&["FLUSHALL"], 1);
    ctl.call(&["SET", "src", "value"], 1);
    let dumped = ctl.call(&["DUMP", "src"], 1);
    // `$<len>\r\n<payload>\r\n`
    let start = dumped
        .iter()
        .position(|&b| b == b'\n')
        .expect("a bulk reply")
        + 1;
    let payload = &dumped[start..dumped.len() - 2];
    ctl.call(&["CONFIG", "SET", "notify-keyspace-events", "KEAn"], 1);
    let mut sub = Conn::new(addr);
    sub.call(&["PSUBSCRIBE", "__key*__:*"], 1);
    let script: &[&[&[u8]]] = &[
        &[b"RESTORE", b"r", b"0", payload],
        &[b"RESTORE", b"r", b"0", payload],
        &[b"RESTORE", b"r", b"0", payload, b"REPLACE"],
        &[b"RESTORE", b"r", b"100000", payload, b"REPLACE"],
        &[b"RESTORE", b"r", b"1", payload, b"REPLACE", b"ABSTTL"],
        &[b"RESTORE", b"x", b"1", payload, b"ABSTTL"],
    ];
    for cmd in script {
        ctl.send_bytes(cmd);
        ctl.frame();
    }
    until_end(&mut ctl, &mut sub)
}

#[test]
fn restore_raises_the_events_redis_raises() {
    let (redis, ember) = (RedisServer::start(&[]), EmberServer::start(&[]));
    let want = restore_events(redis.addr());
    assert!(!want.is_empty());
    assert_eq!(restore_events(ember.addr()), want);
}

#[test]
fn list_commands_raise_the_events_redis_raises() {
    let (redis, ember) = (RedisServer::start(&[]), EmberServer::start(&[]));
    let script: &[&[&str]] = &[
        &["LPUSH", "l", "a", "b"],
        &["RPUSH", "l", "c"],
        &["LPUSHX", "l", "d"],
        &["RPUSHX", "l", "e"],
        &["LPUSHX", "none", "d"],
        &["LSET", "l", "0", "x"],
        &["LINSERT", "l", "BEFORE", "x", "y"],
        &["LINSERT", "l", "BEFORE", "nope", "y"],
        &["LREM", "l", "0", "nope"],
        &["LREM", "l", "1", "y"],
        &["LPOP", "l"],
        &["RPOP", "l"],
        &["LPOP", "l", "2"],
        &["LPOP", "l", "0"],
        &["RPUSH", "l", "a", "b", "c"],
        &["LTRIM", "l", "0", "-1"],
        &["LTRIM", "l", "0", "0"],
        &["LTRIM", "l", "5", "6"],
        &["RPUSH", "src", "1", "2"],
        &["LMOVE", "src", "dst", "LEFT", "RIGHT"],
        &["RPOPLPUSH", "src", "dst"],
        &["RPOPLPUSH", "src", "dst"],
        &["LMOVE", "dst", "dst", "LEFT", "RIGHT"],
        &["RPUSH", "one", "x"],
        &["LMOVE", "one", "one", "LEFT", "LEFT"],
        &["LMPOP", "2", "none", "dst", "LEFT", "COUNT", "5"],
        &["RPUSH", "b", "x"],
        &["BLPOP", "b", "0"],
        &["RPUSH", "b", "x", "y"],
        &["BRPOPLPUSH", "b", "c", "0"],
        &["BLMOVE", "b", "c", "LEFT", "LEFT", "0"],
        &["BLMPOP", "0", "1", "c", "RIGHT", "COUNT", "1"],
        &["RPUSH", "lr", "a"],
        &["LREM", "lr", "0", "a"],
    ];
    same_events(&redis, &ember, CLASSES, script);
}

#[test]
fn hash_set_and_sorted_set_commands_raise_the_events_redis_raises() {
    let (redis, ember) = (RedisServer::start(&[]), EmberServer::start(&[]));
    let script: &[&[&str]] = &[
        &["HSET", "h", "a", "1", "b", "2"],
        &["HSET", "h", "a", "1"],
        &["HMSET", "h", "c", "3"],
        &["HSETNX", "h", "a", "9"],
        &["HSETNX", "h", "d", "9"],
        &["HINCRBY", "h", "n", "2"],
        &["HINCRBYFLOAT", "h", "f", "1.5"],
        &["HDEL", "h", "nope"],
        &["HDEL", "h", "a", "b"],
        &["HDEL", "h", "c", "d", "n", "f"],
        &["SADD", "s", "a", "b", "c"],
        &["SADD", "s", "a"],
        &["SREM", "s", "nope"],
        &["SREM", "s", "a"],
        &["SMOVE", "s", "t", "b"],
        &["SMOVE", "s", "t", "nope"],
        &["SMOVE", "s", "s", "c"],
        &["SMOVE", "s", "t", "c"],
        &["SADD", "u", "1", "2"],
        &["SINTERSTORE", "d", "t", "u"],
        &["SUNIONSTORE", "d", "t", "u"],
        &["SDIFFSTORE", "d", "t", "u"],
        &["SINTERSTORE", "d", "t", "u"],
        &["SINTERSTORE", "d", "t", "u"],
        &["SADD", "p", "only"],
        &["SPOP", "p"],
        &["SADD", "p", "x", "y"],
        &["SPOP", "p", "0"],
        &["SPOP", "p", "5"],
        &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
        &["ZADD", "z", "1", "a"],
        &["ZADD", "z", "NX", "5", "a"],
        &["ZADD", "z", "INCR", "5", "a"],
        &["ZINCRBY", "z", "1", "b"],
        &["ZADD", "z", "XX", "CH", "9", "c"],
        &["ZREM", "z", "nope"],
        &["ZREM", "z", "d"],
        &["ZPOPMIN", "z"],
        &["ZPOPMAX", "z", "0"],
        &["ZADD", "y", "1", "a", "2", "b", "3", "c"],
        &["ZRANGESTORE", "ys", "y", "0", "1"],
        &["ZRANGESTORE", "ys", "y", "5", "6"],
        &["ZUNIONSTORE", "zu", "2", "y", "z"],
        &["ZINTERSTORE", "zu", "2", "y", "z"],
        &["ZDIFFSTORE", "zu", "2", "y", "z"],
        &["ZDIFFSTORE", "zu", "2", "y", "y"],
        &["ZREMRANGEBYSCORE", "y", "5", "6"],
        &["ZREMRANGEBYSCORE", "y", "1", "1"],
        &["ZREMRANGEBYRANK", "y", "0", "0"],
        &["ZADD", "y", "0", "a", "0", "b"],
        &["ZREMRANGEBYLEX", "y", "-", "+"],
        &["ZADD", "w", "1", "a", "2", "b"],
        &["ZMPOP", "1", "w", "MAX"],
        &["BZPOPMIN", "w", "0"],
        &["ZADD", "w", "1", "a"],
        &["BZMPOP", "0", "1", "w", "MIN", "COUNT", "3"],
        &["ZPOPMIN", "w", "2"],
        &["ZADD", "z", "nan", "x"],
        &["HSET", "z", "f", "v"],
    ];
    same_events(&redis, &ember, CLASSES, script);
}

#[test]
fn transactions_and_scripts_send_events_as_redis_does() {
    let (redis, ember) = (RedisServer::start(&[]), EmberServer::start(&[]));
    let script: &[&[&str]] = &[
        &["MULTI"],
        &["SET", "a", "1"],
        &["LPUSH", "l", "x"],
        &["DEL", "a"],
        &["LPOP", "l"],
        &["EXEC"],
        &[
            "EVAL",
            "redis.call('SET', KEYS[1], 'v'); redis.call('INCR', KEYS[2]); return 1",
            "2",
            "e1",
            "e2",
        ],
        &[
            "EVAL",
            "redis.call('DEL', KEYS[1]); return redis.call('GET', KEYS[1])",
            "1",
            "e1",
        ],
    ];
    same_events(&redis, &ember, &["KEA", "KEAn", "Eg"], script);
}

#[test]
fn key_misses_raise_keymiss_as_in_redis() {
    let (redis, ember) = (RedisServer::start(&[]), EmberServer::start(&[]));
    let script: &[&[&str]] = &[
        &["SET", "s", "1"],
        &["GET", "s"],
        &["GET", "nope"],
        &["MGET", "s", "n1", "n2"],
        &["GETBIT", "nope", "0"],
        &["BITCOUNT", "nope"],
        &["BITPOS", "nope", "1"],
        &["BITFIELD", "nope", "GET", "u8", "0"],
        &["BITOP", "OR", "dst", "n1", "s"],
        &["LCS", "s", "nope"],
        &["DUMP", "nope"],
        &["HGET", "nope", "f"],
        &["HMGET", "nope", "f"],
        &["SISMEMBER", "nope", "m"],
        &["SCARD", "nope"],
        &["SMEMBERS", "nope"],
        &["ZSCORE", "nope", "m"],
        &["ZCARD", "nope"],
        &["ZUNION", "2", "nope", "n2"],
        &["STRLEN", "nope"],
        &["GETRANGE", "nope", "0", "1"],
        &["SUBSTR", "nope", "0", "1"],
        &["EXISTS", "s", "nope"],
        &["TOUCH", "nope"],
        &["TYPE", "nope"],
        &["TTL", "nope"],
        &["PTTL", "nope"],
        &["EXPIRETIME", "nope"],
        &["LLEN", "nope"],
        &["LRANGE", "nope", "0", "1"],
        &["LINDEX", "nope", "0"],
        &["LPOS", "nope", "a"],
        &["SORT", "nope"],
        &["SORT_RO", "nope"],
        &["GETDEL", "nope"],
        &["GETEX", "nope"],
        &["GETSET", "gs", "v"],
        &["SET", "sg", "v", "GET"],
        &["SET", "sg", "w", "GET"],
        &["OBJECT", "ENCODING", "nope"],
        &["HGETALL", "nope"],
        &["HLEN", "nope"],
        &["SRANDMEMBER", "nope"],
        &["SINTER", "nope", "n2"],
        &["ZRANGE", "nope", "0", "1"],
        &["ZRANK", "nope", "a"],
        &["SINTERSTORE", "d", "nope"],
        &["LMOVE", "nope", "x", "LEFT", "LEFT"],
        // Writes are no misses.
        &["INCR", "fresh"],
        &["DEL", "nope"],
    ];
    same_events(&redis, &ember, &["KEm", "Em", "Km", "KEA"], script);
}

/// Events of a push that serves blocked clients: the push's, then each
/// served pop's (and the moves' pushes), as Redis raises them.
fn served_events(addr: SocketAddr) -> Vec<String> {
    let mut ctl = Conn::new(addr);
    ctl.call(&["FLUSHALL"], 1);
    ctl.call(&["CONFIG", "SET", "notify-keyspace-events", "KEAn"], 1);
    let mut sub = Conn::new(addr);
    sub.call(&["PSUBSCRIBE", "__key*__:*"], 1);
    let mut popper = Conn::new(addr);
    let mut mover = Conn::new(addr);
    popper.send(&["BLPOP", "q", "0"]);
    // Blocked in order: the popper first (CLIENT LIST shows both waiting).
    wait_blocked(&mut ctl, 1);
    mover.send(&["BLMOVE", "q", "dst", "RIGHT", "LEFT", "0"]);
    wait_blocked(&mut ctl, 2);
    ctl.call(&["RPUSH", "q", "a", "b", "c"], 1);
    popper.frame();
    mover.frame();
    let mut zpopper = Conn::new(addr);
    zpopper.send(&["BZPOPMIN", "z", "0"]);
    wait_blocked(&mut ctl, 1);
    ctl.call(&["ZADD", "z", "1", "m"], 1);
    zpopper.frame();
    until_end(&mut ctl, &mut sub)
}

/// Waits until `n` clients are blocked (INFO's `blocked_clients`).
fn wait_blocked(ctl: &mut Conn, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    for _ in 0..500 {
        if show(&ctl.call(&["INFO", "clients"], 1)).contains(&want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never {n} blocked clients");
}

#[test]
fn serving_blocked_clients_raises_events_as_in_redis() {
    let (redis, ember) = (RedisServer::start(&[]), EmberServer::start(&[]));
    let want = served_events(redis.addr());
    assert!(want.len() > 8, "{want:?}");
    assert_eq!(served_events(ember.addr()), want);
}

#[test]
fn nothing_is_published_without_k_or_e_or_for_other_classes() {
    let ember = EmberServer::start(&[]);
    let script: &[&[&str]] = &[&["SET", "a", "1"], &["LPUSH", "l", "x"], &["DEL", "a"]];
    assert!(events(ember.addr(), "A", script).is_empty());
    assert!(events(ember.addr(), "", script).is_empty());
    assert!(events(ember.addr(), "Kz", script).is_empty());
    assert_eq!(events(ember.addr(), "Kg", script).len(), 1, "only DEL's");
}

/// Reads messages from `sub` until `n` have arrived.
fn messages(sub: &mut Conn, n: usize) -> Vec<String> {
    (0..n).map(|_| show(&sub.frame())).collect()
}

/// The `expired` events of keys that expire lazily (found by a read after
/// their deadline, the expiry cycle turned off) and by the expiry cycle.
fn expiry_events(addr: SocketAddr, lazy: bool) -> Vec<String> {
    let mut ctl = Conn::new(addr);
    ctl.call(&["FLUSHALL"], 1);
    ctl.call(&["CONFIG", "RESETSTAT"], 1);
    ctl.call(&["CONFIG", "SET", "notify-keyspace-events", "Ex"], 1);
    let active = if lazy { "0" } else { "1" };
    ctl.call(&["DEBUG", "SET-ACTIVE-EXPIRE", active], 1);
    let mut sub = Conn::new(addr);
    sub.call(&["PSUBSCRIBE", "__key*__:*"], 1);
    let keys = ["x1", "x2", "x3"];
    for k in keys {
        ctl.call(&["SET", k, "v", "PX", "30"], 1);
    }
    if lazy {
        // Past every deadline (the clock only moves forward), each read
        // deletes one key.
        std::thread::sleep(Duration::from_millis(60));
        ctl.call(&["GET", "x1"], 1);
        ctl.call(&["EXISTS", "x2"], 1);
        ctl.call(&["SET", "x3", "new"], 1);
    }
    // The cycle's order is its own: compared as a set.
    let mut got = messages(&mut sub, keys.len());
    got.sort();
    ctl.call(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"], 1);
    // INFO counts them all, found by a command or by the cycle.
    let info = show(&ctl.call(&["INFO", "stats"], 1));
    let counted = info.lines().find(|l| l.starts_with("expired_keys:"));
    got.push(counted.unwrap_or("no expired_keys").to_owned());
    got
}

#[test]
fn expired_keys_raise_expired_events_as_in_redis() {
    // DEBUG SET-ACTIVE-EXPIRE makes the lazy run lazy on both.
    let redis = RedisServer::start(&["--enable-debug-command", "yes"]);
    let ember = EmberServer::start(&[]);
    for lazy in [true, false] {
        let want = expiry_events(redis.addr(), lazy);
        let got = expiry_events(ember.addr(), lazy);
        assert_eq!(got, want, "lazy: {lazy}");
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], "expired_keys:3");
    }
}

#[test]
fn a_replica_raises_the_events_of_what_it_applies() {
    let master = EmberServer::start(&[]);
    let port = master.addr().port();
    let replica = EmberServer::start(&[
        &format!("replicaof 127.0.0.1 {port}"),
        "notify-keyspace-events KEA",
    ]);
    wait_for_link(replica.addr());
    let mut sub = Conn::new(replica.addr());
    sub.call(&["PSUBSCRIBE", "__keyevent@*__:*"], 1);
    let mut ctl = Conn::new(master.addr());
    ctl.call(&["SELECT", "2"], 1);
    ctl.call(&["SET", "k", "v"], 1);
    ctl.call(&["LPUSH", "l", "a"], 1);
    ctl.call(&["DEL", "k"], 1);
    let got = messages(&mut sub, 3);
    let names: Vec<&str> = got
        .iter()
        .map(|m| m.split("__keyevent@2__:").nth(1).unwrap_or(m))
        .collect();
    assert!(names[0].starts_with("set\r\n"), "{got:?}");
    assert!(names[1].starts_with("lpush\r\n"), "{got:?}");
    assert!(names[2].starts_with("del\r\n"), "{got:?}");
}

/// Keys that have expired but are still in the table (the expiry cycle
/// off, nothing has looked them up), each met by a command that
/// overwrites, moves or reads it: the setup (databases 0 and 1), the keys
/// to expire (database, key) and the commands.
type InPlace<'a> = (
    &'a [&'a [&'a str]],
    &'a [(&'a str, &'a str)],
    &'a [&'a [&'a str]],
);

/// Runs the setup with notifications off, gives the keys to expire one
/// deadline a little ahead and waits until it has passed (a sentinel key
/// with the same deadline is polled with PTTL until it is gone; the keys
/// themselves are never looked at), then subscribes and runs the commands
/// under `classes`. Returns what the subscriber received.
fn expired_in_place_events(
    addr: SocketAddr,
    classes: &str,
    (setup, expire, script): InPlace<'_>,
) -> Vec<String> {
    let mut ctl = Conn::new(addr);
    ctl.call(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"], 1);
    // A deadline the setup is sure to beat: more room on each try (a busy
    // machine may take long between the TIME and the PEXPIREATs).
    let mut ahead_ms = 100;
    let sizes = loop {
        ctl.call(&["CONFIG", "SET", "notify-keyspace-events", ""], 1);
        ctl.call(&["FLUSHALL"], 1);
        for cmd in setup {
            ctl.call(cmd, 1);
        }
        let sizes = dbsizes(&mut ctl);
        let time = show(&ctl.call(&["TIME"], 1));
        let parts: Vec<i64> = time.split("\r\n").filter_map(|l| l.parse().ok()).collect();
        let deadline = (parts[0] * 1000 + parts[1] / 1000 + ahead_ms).to_string();
        for &(db, key) in expire.iter().chain(&[("0", "in-place:clock")]) {
            ctl.call(&["SELECT", db], 1);
            if key == "in-place:clock" {
                ctl.call(&["SET", key, "tick"], 1);
            }
            ctl.call(&["PEXPIREAT", key, &deadline], 1);
        }
        ctl.call(&["SELECT", "0"], 1);
        let waited = std::time::Instant::now() + Duration::from_secs(10);
        while show(&ctl.call(&["PTTL", "in-place:clock"], 1)) != ":-2\r\n" {
            assert!(
                std::time::Instant::now() < waited,
                "the deadline never passed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Every key still in the table (none was deleted by a deadline
        // already past when it was set).
        if dbsizes(&mut ctl) == sizes {
            break sizes;
        }
        assert!(ahead_ms < 5_000, "the setup never beat its deadline");
        ahead_ms *= 4;
    };
    assert!(sizes.iter().sum::<usize>() > 0);
    ctl.call(&["CONFIG", "SET", "notify-keyspace-events", classes], 1);
    let mut sub = Conn::new(addr);
    sub.call(&["PSUBSCRIBE", "__key*__:*"], 1);
    for cmd in script {
        // Each command's events end with a message naming it and its
        // reply (a command that fails or does nothing must do so on both).
        let reply = show(&ctl.call(cmd, 1));
        let step = format!("{cmd:?} -> {reply:?}");
        ctl.call(&["PUBLISH", "__keyevent@99__:step", &step], 1);
    }
    let got = until_end(&mut ctl, &mut sub);
    ctl.call(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"], 1);
    got
}

/// DBSIZE of databases 0 and 1 (which count expired keys not yet
/// deleted); leaves database 0 selected.
fn dbsizes(ctl: &mut Conn) -> Vec<usize> {
    let mut sizes = Vec::new();
    for db in ["1", "0"] {
        ctl.call(&["SELECT", db], 1);
        let n = show(&ctl.call(&["DBSIZE"], 1));
        sizes.push(
            n.trim_start_matches(':')
                .trim_end()
                .parse()
                .expect("DBSIZE"),
        );
    }
    sizes
}

/// A command that meets a key past its deadline but still in the table
/// raises `expired` for it first (the lookup that deletes it), then its
/// own events (`new` where the key is then added), as Redis does: MSET,
/// MSETNX, RENAME, COPY, MOVE, SMOVE, the STORE commands, the pushes and
/// sets that create a key.
#[test]
fn keys_expired_in_place_raise_expired_first_as_in_redis() {
    let redis = RedisServer::start(&["--enable-debug-command", "yes"]);
    let ember = EmberServer::start(&[]);
    let setup: &[&[&str]] = &[
        &["MSET", "m1", "1", "m2", "1", "mn1", "1", "md", "1"],
        &[
            "MSET", "rs", "1", "rd", "1", "rs2", "1", "ns", "1", "nd", "1",
        ],
        &[
            "MSET", "cs", "1", "cd", "1", "cs2", "1", "cd2", "1", "cs3", "1",
        ],
        &[
            "MSET", "mv", "1", "mv2", "1", "gs", "1", "sn", "1", "st", "1",
        ],
        &[
            "MSET", "se", "1", "ud", "1", "id", "1", "sd2", "1", "zd", "1",
        ],
        &[
            "MSET", "zrd", "1", "bs", "a", "bd", "1", "d1", "1", "d2", "1",
        ],
        &[
            "MSET", "in", "1", "ap", "1", "sr", "1", "bit", "1", "gd", "1",
        ],
        &["MSET", "ex", "1", "ge", "1", "ps", "1", "ifl", "1"],
        &["SADD", "ss", "a", "b"],
        &["SADD", "sd", "x"],
        &["SADD", "ss2", "a"],
        &["SADD", "us", "a"],
        &["SADD", "is", "a"],
        &["SADD", "sa", "a"],
        &["RPUSH", "ls", "a"],
        &["RPUSH", "ld", "x"],
        &["RPUSH", "rls", "a"],
        &["RPUSH", "rld", "x"],
        &["RPUSH", "srt", "2", "1"],
        &["RPUSH", "lp", "x"],
        &["ZADD", "z", "1", "a"],
        &["ZADD", "z2", "1", "a"],
        &["ZADD", "za", "1", "a"],
        &["HSET", "hs", "f", "v"],
        &["HSET", "hi", "f", "1"],
        &["SELECT", "1"],
        &["SET", "mv", "2"],
        &["SELECT", "0"],
    ];
    let expire: &[(&str, &str)] = &[
        ("0", "m1"),
        ("0", "mn1"),
        ("0", "md"),
        ("0", "rd"),
        ("0", "rs2"),
        ("0", "nd"),
        ("0", "cd"),
        ("0", "cd2"),
        ("0", "cs3"),
        ("1", "mv"),
        ("0", "mv2"),
        ("0", "sd"),
        ("0", "ss2"),
        ("0", "gs"),
        ("0", "sn"),
        ("0", "st"),
        ("0", "se"),
        ("0", "ud"),
        ("0", "id"),
        ("0", "ld"),
        ("0", "rld"),
        ("0", "sd2"),
        ("0", "zd"),
        ("0", "zrd"),
        ("0", "bd"),
        ("0", "d1"),
        ("0", "lp"),
        ("0", "in"),
        ("0", "ap"),
        ("0", "hs"),
        ("0", "sa"),
        ("0", "za"),
        ("0", "sr"),
        ("0", "bit"),
        ("0", "gd"),
        ("0", "ex"),
        ("0", "ge"),
        ("0", "ps"),
        ("0", "ifl"),
        ("0", "hi"),
    ];
    let script: &[&[&str]] = &[
        &["MSET", "m1", "2", "m2", "2", "m3", "2"],
        &["MSETNX", "mn1", "2", "mn3", "2"],
        &["MSET", "md", "2", "md", "3"],
        &["RENAME", "rs", "rd"],
        &["RENAME", "rs2", "rd2"],
        &["RENAMENX", "ns", "nd"],
        &["COPY", "cs", "cd"],
        &["COPY", "cs2", "cd2", "REPLACE"],
        &["COPY", "cs3", "cd3"],
        &["MOVE", "mv", "1"],
        &["MOVE", "mv2", "1"],
        &["SMOVE", "ss", "sd", "a"],
        &["SMOVE", "ss2", "sd3", "a"],
        &["GETSET", "gs", "2"],
        &["SETNX", "sn", "2"],
        &["SET", "st", "2"],
        &["SETEX", "se", "100", "2"],
        &["SUNIONSTORE", "ud", "us"],
        &["SINTERSTORE", "id", "is"],
        &["LMOVE", "ls", "ld", "LEFT", "RIGHT"],
        &["RPOPLPUSH", "rls", "rld"],
        &["SORT", "srt", "STORE", "sd2"],
        &["ZUNIONSTORE", "zd", "1", "z"],
        &["ZRANGESTORE", "zrd", "z2", "0", "-1"],
        &["BITOP", "NOT", "bd", "bs"],
        &["DEL", "d1", "d2"],
        &["LPUSH", "lp", "a"],
        &["INCR", "in"],
        &["APPEND", "ap", "x"],
        &["HSET", "hs", "g", "v"],
        &["SADD", "sa", "b"],
        &["ZADD", "za", "2", "b"],
        &["SETRANGE", "sr", "0", "x"],
        &["SETBIT", "bit", "0", "1"],
        &["GETDEL", "gd"],
        &["EXPIRE", "ex", "100"],
        &["GETEX", "ge", "PERSIST"],
        &["PERSIST", "ps"],
        &["INCRBYFLOAT", "ifl", "1.5"],
        &["HINCRBY", "hi", "f", "1"],
    ];
    for classes in ["KEA", "KEAn", "Eg$n", "Kx"] {
        let want = expired_in_place_events(redis.addr(), classes, (setup, expire, script));
        let got = expired_in_place_events(ember.addr(), classes, (setup, expire, script));
        if got != want {
            let at = got.iter().zip(&want).take_while(|(g, w)| g == w).count();
            panic!(
                "notify-keyspace-events {classes:?}: {} lines, Redis {}; first difference at \
                 {at}: {:?} where Redis has {:?}",
                got.len(),
                want.len(),
                got.get(at),
                want.get(at)
            );
        }
    }
}

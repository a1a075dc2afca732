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
        assert_eq!(got.len(), 3);
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

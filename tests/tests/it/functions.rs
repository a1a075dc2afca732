//! Functions (FUNCTION, FCALL, FCALL_RO) against a real redis-server 7.0:
//! every reply compared byte for byte in RESP2 and RESP3, including the
//! errors of loading and calling; FUNCTION DUMP payloads restored across
//! Redis and Ember both ways; what replicas hear (FUNCTION LOAD and the
//! rest as themselves, FCALL by its effects), and Ember and Redis
//! replicas of an Ember master serving the functions it loaded.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ember_tests::{EmberServer, RedisServer, call};

use super::scripting::Pair;

const LIB: &str = "#!lua name=lib
redis.log(redis.LOG_NOTICE, 'loading')
local function echo(keys, args) return {keys, args, redis.REDIS_VERSION} end
redis.register_function('echo', echo)
redis.register_function('Set', function(keys, args) return redis.call('set', keys[1], args[1]) end)
redis.register_function{function_name='ro', callback=function(keys) return redis.call('get', keys[1]) end,
    flags={'no-writes', 'allow-stale'}, description='reads'}
redis.register_function{function_name='bad_ro', callback=function() return redis.call('set', 'x', 1) end,
    flags={'no-writes'}}
redis.register_function('fail', function() return redis.call('nosuch') end)
redis.register_function('boom', function() error('boom') end)
redis.register_function('pfail', function() return redis.pcall('incr', 'k', 'x') end)
redis.register_function('resp3', function() redis.setresp(3); return redis.call('hgetall', 'h') end)
redis.register_function('reg', function() return redis.register_function end)
redis.register_function('math', function() return math.floor(2.5) end)
";

const ONE: &str = "#!lua name=one
redis.register_function{function_name='one', callback=function() return 1 end,
    flags={'allow-oom', 'no-writes', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys'}, description='one'}
";

#[test]
fn functions_match_redis() {
    let mut p = Pair::start();
    p.check(&[
        &["FUNCTION", "LOAD", LIB],
        &["FUNCTION", "LOAD", LIB],
        &["FUNCTION", "LOAD", "REPLACE", LIB],
        // One function a library: Redis lists a library's functions in
        // its hash table's order.
        &["FUNCTION", "LOAD", ONE],
        &["FUNCTION", "LIST", "LIBRARYNAME", "o*"],
        &["FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "one"],
        &["FUNCTION", "LIST", "LIBRARYNAME", "x*"],
        &["FUNCTION", "DELETE", "one"],
        &["FUNCTION", "LIST", "LIBRARYNAME"],
        &["FUNCTION", "LIST", "WITHCODE", "WITHCODE"],
        &["FUNCTION", "LIST", "foo"],
        &["FUNCTION", "STATS"],
        &["FCALL", "echo", "2", "a", "b", "c"],
        &["FCALL", "ECHO", "0"],
        &["FCALL", "set", "1", "k", "v"],
        &["FCALL_RO", "set", "1", "k", "v"],
        &["FCALL_RO", "ro", "1", "k"],
        &["FCALL", "ro", "1", "k"],
        &["FCALL", "bad_ro", "0"],
        &["FCALL", "fail", "0"],
        &["FCALL", "boom", "0"],
        &["FCALL", "pfail", "0"],
        &["HSET", "h", "f", "v"],
        &["FCALL", "resp3", "0"],
        &["FCALL", "reg", "0"],
        &["FCALL", "math", "0"],
        &["FCALL", "nosuch", "0"],
        &["FCALL", "echo", "x"],
        &["FCALL", "echo", "-1"],
        &["FCALL", "echo", "3", "a"],
        &["FCALL", "nosuch", "x"],
        &["FCALL", "echo"],
        &["FUNCTION", "DELETE", "nosuch"],
        &["FUNCTION", "DELETE", "lib"],
        &["FUNCTION", "LIST"],
        &["FCALL", "echo", "0"],
        &["FUNCTION", "KILL"],
        &["SCRIPT", "KILL"],
        &["FUNCTION", "FLUSH", "x"],
        &["FUNCTION", "FLUSH", "SYNC", "x"],
        &["FUNCTION", "FLUSH", "ASYNC"],
        &["FUNCTION", "RESTORE", "x", "y", "z"],
        &["FUNCTION", "RESTORE", "x", "y"],
        &["FUNCTION", "RESTORE", "x"],
        &["FUNCTION", "NOSUCH"],
        &["FUNCTION", "HELP"],
        &["FUNCTION", "LOAD", "REPLACE", "x", "#!lua name=x\n"],
        &["FUNCTION", "LOAD", "return 1"],
        &["FUNCTION", "LOAD", "#!lua name=x"],
        &["FUNCTION", "LOAD", "#!lua  name=x foo\n"],
        &["FUNCTION", "LOAD", "#!lua name=a name=b\n"],
        &["FUNCTION", "LOAD", "#!lua\n"],
        &["FUNCTION", "LOAD", "#!lua name=a-b\n"],
        &["FUNCTION", "LOAD", "#!luax name=a\n"],
        &["FUNCTION", "LOAD", "#!lua name=a\n"],
        &["FUNCTION", "LOAD", "#!lua name=a\nbad code"],
        &["FUNCTION", "LOAD", "#!lua name=a\nreturn redis.call('ping')"],
        &["FUNCTION", "LOAD", "#!lua name=a\nreturn redis.setresp(3)"],
        &["FUNCTION", "LOAD", "#!lua name=a\nreturn math.random()"],
        &["FUNCTION", "LOAD", "#!lua name=a\nx = 1"],
        &["FUNCTION", "LOAD", "#!lua name=a\nredis.register_function('f')"],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=a\nredis.register_function('f', 1)",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=a\nredis.register_function(1, function() end)",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=a\nredis.register_function('f-1', function() end)",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=a\nredis.register_function('f', function() end)\nredis.register_function('F', function() end)",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=a\nredis.register_function{function_name='f', callback=function() end, flags={'bad'}}",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=a\nredis.register_function{function_name='f', callback=function() end, flags='no-writes'}",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=a\nredis.register_function{function_name='f', callback=1}",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=a\nredis.register_function{function_name='f', callback=function() end, x=1}",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=a\nredis.register_function{callback=function() end}",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=a\nredis.register_function{function_name='f'}",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=a\nredis.register_function{function_name='f', callback=function() end, description=function() end}",
        ],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=a\nlocal a = 1 while 1 do a = a + 1 end",
        ],
        &["FUNCTION", "LOAD", LIB],
        &[
            "FUNCTION",
            "LOAD",
            "#!lua name=other\nredis.register_function('echo', function() end)",
        ],
        &["FUNCTION", "STATS"],
    ]);
}

fn bulk(reply: &Bytes) -> Vec<u8> {
    let start = reply.iter().position(|&b| b == b'\n').expect("a header") + 1;
    reply[start..reply.len() - 2].to_vec()
}

/// FUNCTION DUMP of one server restores in the other, both ways, with
/// each policy.
#[test]
fn dump_and_restore_across_redis_and_ember() {
    let mut p = Pair::start();
    let (r, e) = p.both_raw(&[b"FUNCTION", b"LOAD", LIB.as_bytes()]);
    assert_eq!(r, e);
    let (from_redis, from_ember) = p.both_raw(&[b"FUNCTION", b"DUMP"]);
    let (from_redis, from_ember) = (bulk(&from_redis), bulk(&from_ember));
    for payload in [&from_redis, &from_ember] {
        for policy in [&b"APPEND"[..], b"REPLACE", b"FLUSH"] {
            let args: &[&[u8]] = &[b"FUNCTION", b"RESTORE", payload, policy];
            let (r, e) = p.both_raw(args);
            assert_eq!(r, e, "{}", String::from_utf8_lossy(policy));
        }
        let (r, e) = p.both_raw(&[b"FCALL", b"echo", b"1", b"k", b"a"]);
        assert_eq!(r, e);
        assert_eq!(
            &e[..],
            b"*3\r\n*1\r\n$1\r\nk\r\n*1\r\n$1\r\na\r\n$6\r\n7.0.15\r\n"
        );
    }
    let mut bad = from_redis.clone();
    bad[4] ^= 1;
    let (r, e) = p.both_raw(&[b"FUNCTION", b"RESTORE", &bad]);
    assert_eq!(r, e);
    let (r, e) = p.both_raw(&[b"FUNCTION", b"RESTORE", b"0123456789"]);
    assert_eq!(r, e);
}

/// What replicas hear: FUNCTION LOAD, DELETE, FLUSH and RESTORE as they
/// came; FCALL by what it did.
#[test]
fn functions_reach_replicas_as_redis_sends_them() {
    use crate::replication::{attach_to_stream, read_stream};
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let mut payload = Vec::new();
    {
        let mut c = redis.connect();
        call(&mut c, &[b"FUNCTION", b"LOAD", LIB.as_bytes()]);
        payload = bulk(&call(&mut c, &[b"FUNCTION", b"DUMP"]))
            .into_iter()
            .chain(payload)
            .collect();
        call(&mut c, &[b"FUNCTION", b"FLUSH"]);
    }
    let mut streams = Vec::new();
    for addr in [redis.addr(), ember.addr()] {
        let (mut s, mut buf) = attach_to_stream(addr);
        let mut c = ember_tests::connect(addr);
        for args in [
            &[&b"FUNCTION"[..], b"LOAD", LIB.as_bytes()][..],
            &[b"FCALL", b"set", b"1", b"k", b"v"],
            &[b"FCALL", b"ro", b"1", b"k"],
            &[b"FCALL", b"echo", b"0"],
            &[b"FUNCTION", b"LOAD", b"#!lua name=bad\n"],
            &[b"FUNCTION", b"DELETE", b"lib"],
            &[b"FUNCTION", b"DELETE", b"lib"],
            &[b"FUNCTION", b"RESTORE", &payload],
            &[b"FUNCTION", b"FLUSH"],
            &[b"FUNCTION", b"RESTORE", &payload, b"FLUSH"],
        ] {
            call(&mut c, args);
        }
        call(&mut c, &[b"SET", b"end", b"1"]);
        streams.push(read_stream(&mut s, &mut buf, "end"));
    }
    assert_eq!(
        streams[0], streams[1],
        "redis sent the first, ember the second"
    );
}

/// Waits until `check` holds; fails after a generous bound (the bound is
/// a safety net, not a measurement).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(reply: &Bytes) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

fn link_up(addr: SocketAddr) -> bool {
    let mut c = ember_tests::connect(addr);
    text(&call(&mut c, &[b"INFO", b"replication"])).contains("master_link_status:up")
}

/// An Ember replica and a Redis replica of an Ember master: the library
/// loaded before they connect reaches them in the full sync's RDB file
/// (a `FUNCTION2` record), the one loaded after in the stream; both are
/// served, FCALL's writes reach them, and so does DELETE.
#[test]
fn replicas_of_ember_serve_its_functions() {
    let master = EmberServer::start(&[]);
    let mut m = master.connect();
    assert_eq!(
        text(&call(&mut m, &[b"FUNCTION", b"LOAD", ONE.as_bytes()])),
        "$3\r\none\r\n"
    );
    let port = master.addr().port().to_string();
    let line = format!("replicaof 127.0.0.1 {port}");
    let ember_replica = EmberServer::start(&[&line]);
    let redis_replica = RedisServer::start(&["--replicaof", "127.0.0.1", &port]);
    let replicas = [ember_replica.addr(), redis_replica.addr()];
    for addr in replicas {
        eventually("the link", || link_up(addr));
    }
    assert_eq!(
        text(&call(&mut m, &[b"FUNCTION", b"LOAD", LIB.as_bytes()])),
        "$3\r\nlib\r\n"
    );
    assert_eq!(
        text(&call(&mut m, &[b"FCALL", b"set", b"1", b"k", b"v"])),
        "+OK\r\n"
    );
    call(&mut m, &[b"SET", b"end", b"1"]);
    for addr in replicas {
        let mut r = ember_tests::connect(addr);
        eventually("the stream", || {
            text(&call(&mut r, &[b"GET", b"end"])) == "$1\r\n1\r\n"
        });
        assert_eq!(
            text(&call(&mut r, &[b"FCALL_RO", b"one", b"0"])),
            ":1\r\n",
            "{addr}"
        );
        assert_eq!(
            text(&call(&mut r, &[b"FCALL_RO", b"ro", b"1", b"k"])),
            "$1\r\nv\r\n",
            "{addr}"
        );
        assert!(
            text(&call(&mut r, &[b"FCALL", b"set", b"1", b"k", b"w"])).starts_with("-READONLY"),
            "{addr}"
        );
    }
    call(&mut m, &[b"FUNCTION", b"DELETE", b"lib"]);
    call(&mut m, &[b"SET", b"end", b"2"]);
    for addr in replicas {
        let mut r = ember_tests::connect(addr);
        eventually("the stream", || {
            text(&call(&mut r, &[b"GET", b"end"])) == "$1\r\n2\r\n"
        });
        assert_eq!(
            text(&call(&mut r, &[b"FUNCTION", b"STATS"])),
            text(&call(
                &mut ember_tests::connect(master.addr()),
                &[b"FUNCTION", b"STATS"]
            )),
            "{addr}"
        );
    }
}

/// An Ember replica of a Redis master gets the master's libraries from
/// Redis's RDB file, and they replace its own.
#[test]
fn ember_replica_of_redis_loads_its_libraries() {
    let master = RedisServer::start(&[]);
    let mut m = master.connect();
    call(&mut m, &[b"FUNCTION", b"LOAD", ONE.as_bytes()]);
    call(&mut m, &[b"FUNCTION", b"LOAD", LIB.as_bytes()]);
    let replica = EmberServer::start(&[]);
    let mut r = replica.connect();
    let own = "#!lua name=own\nredis.register_function('own', function() return 2 end)";
    call(&mut r, &[b"FUNCTION", b"LOAD", own.as_bytes()]);
    let port = master.addr().port().to_string();
    call(&mut r, &[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]);
    eventually("the link", || link_up(replica.addr()));
    assert_eq!(text(&call(&mut r, &[b"FCALL_RO", b"one", b"0"])), ":1\r\n");
    assert_eq!(
        text(&call(&mut r, &[b"FCALL_RO", b"own", b"0"])),
        "-ERR Function not found\r\n"
    );
    assert_eq!(
        text(&call(&mut r, &[b"FUNCTION", b"STATS"])),
        text(&call(&mut m, &[b"FUNCTION", b"STATS"]))
    );
}

/// Sends `args` and reads the reply on a fresh connection to `addr`.
fn once(addr: SocketAddr, args: &[&[u8]]) -> String {
    text(&call(&mut ember_tests::connect(addr), args))
}

/// Starts `body` (a looping EVAL or FCALL) on its own connection, and
/// waits until other clients get `-BUSY`; the connection, to read the
/// script's reply from.
fn start_busy(addr: SocketAddr, body: &[&[u8]]) -> TcpStream {
    let mut c = ember_tests::connect(addr);
    c.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut out = Vec::new();
    out.extend_from_slice(format!("*{}\r\n", body.len()).as_bytes());
    for a in body {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    std::io::Write::write_all(&mut c, &out).expect("send");
    eventually("-BUSY", || once(addr, &[b"PING"]).starts_with("-BUSY"));
    c
}

/// A script that runs past busy-reply-threshold: others get `-BUSY`
/// (SCRIPT KILL's or FUNCTION KILL's), the commands Redis allows are
/// served, SCRIPT KILL and FUNCTION KILL stop what has not written, with
/// Redis's error to the script's caller, and a script that wrote is
/// UNKILLABLE until SHUTDOWN NOSAVE. Redis and Ember, same replies.
#[test]
fn busy_scripts_are_killed_as_in_redis() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let mut seen = Vec::new();
    for addr in [redis.addr(), ember.addr()] {
        let mut r = Vec::new();
        r.push(once(addr, &[b"CONFIG", b"SET", b"lua-time-limit", b"50"]));
        r.push(once(addr, &[b"CONFIG", b"GET", b"busy-reply-threshold"]));
        let spin = b"local a = 1 while true do a = a + 1 end";
        let mut c = start_busy(addr, &[b"EVAL", spin, b"0"]);
        r.push(once(addr, &[b"GET", b"x"]));
        r.push(once(addr, &[b"FUNCTION", b"KILL"]));
        r.push(once(addr, &[b"FUNCTION", b"STATS"]));
        r.push(once(addr, &[b"SCRIPT", b"KILL"]));
        r.push(text(&ember_tests::read_reply(&mut c)));
        r.push(once(addr, &[b"PING"]));
        let lib = b"#!lua name=spin\nredis.register_function('spin', function() local a = 1 while true do a = a + 1 end end)";
        r.push(once(addr, &[b"FUNCTION", b"LOAD", lib]));
        let mut c = start_busy(addr, &[b"FCALL", b"spin", b"0"]);
        r.push(once(addr, &[b"GET", b"x"]));
        r.push(once(addr, &[b"SCRIPT", b"KILL"]));
        r.push(once(addr, &[b"FUNCTION", b"KILL"]));
        r.push(text(&ember_tests::read_reply(&mut c)));
        let wrote = b"redis.call('set', 'x', 1) local a = 1 while true do a = a + 1 end";
        let _c = start_busy(addr, &[b"EVAL", wrote, b"0"]);
        r.push(once(addr, &[b"SCRIPT", b"KILL"]));
        // No reply: the connection closes as the server stops.
        let mut s = ember_tests::connect(addr);
        std::io::Write::write_all(&mut s, b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
            .expect("send");
        eventually("the server to stop", || TcpStream::connect(addr).is_err());
        seen.push(r);
    }
    assert_eq!(seen[0], seen[1], "redis first, ember second");
}

/// Scripts that declare only some of their keys, or none, stay atomic: a
/// script that reaches an undeclared key before writing runs again
/// holding every shard; one that writes first takes the other key's
/// shard then. Movers of each kind move units between two keys while a
/// reader checks, with MGET and with a script, that the sum never
/// changes.
#[test]
fn scripts_with_undeclared_keys_stay_atomic() {
    let ember = EmberServer::start(&[]);
    let addr = ember.addr();
    let (a, b) = ("undeclared-a", "undeclared-b-elsewhere");
    // Reads both, then writes both: declares nothing.
    let read_first = "local x = tonumber(redis.call('get', ARGV[1]) or '0') \
                      local y = tonumber(redis.call('get', ARGV[2]) or '0') \
                      redis.call('set', ARGV[1], x - 1) \
                      redis.call('set', ARGV[2], y + 1) return 1";
    // Writes its declared key, then the undeclared one.
    let write_first = "redis.call('incrby', KEYS[1], -1) \
                       redis.call('incrby', ARGV[1], 1) return 1";
    let movers: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = ember_tests::connect(addr);
                for _ in 0..300 {
                    let r = if i % 2 == 0 {
                        call(
                            &mut c,
                            &[
                                b"EVAL",
                                read_first.as_bytes(),
                                b"0",
                                a.as_bytes(),
                                b.as_bytes(),
                            ],
                        )
                    } else {
                        call(
                            &mut c,
                            &[
                                b"EVAL",
                                write_first.as_bytes(),
                                b"1",
                                a.as_bytes(),
                                b.as_bytes(),
                            ],
                        )
                    };
                    assert_eq!(&r[..], b":1\r\n", "{}", String::from_utf8_lossy(&r));
                }
            })
        })
        .collect();
    let sum = "return (tonumber(redis.call('get', ARGV[1]) or '0') + \
               tonumber(redis.call('get', ARGV[2]) or '0'))";
    let mut reader = ember_tests::connect(addr);
    for _ in 0..300 {
        let r = call(
            &mut reader,
            &[b"EVAL", sum.as_bytes(), b"0", a.as_bytes(), b.as_bytes()],
        );
        assert_eq!(&r[..], b":0\r\n", "a script saw half a move");
        let r = text(&call(&mut reader, &[b"MGET", a.as_bytes(), b.as_bytes()]));
        let nums: Vec<i64> = r.split("\r\n").filter_map(|l| l.parse().ok()).collect();
        assert!(
            nums.len() < 2 || nums[0] + nums[1] == 0,
            "MGET saw half a move: {r:?}"
        );
    }
    for m in movers {
        m.join().expect("a mover");
    }
    let r = text(&call(&mut reader, &[b"MGET", a.as_bytes(), b.as_bytes()]));
    assert_eq!(r, "*2\r\n$5\r\n-1200\r\n$4\r\n1200\r\n");
}

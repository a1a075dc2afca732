//! Hashes against a real `redis-server` 7.0: every command's replies and
//! errors byte for byte; replies whose order Redis leaves to its table
//! (HGETALL of a `hashtable` hash, HSCAN's cursors, random picks) compared
//! as sets, by shape, or by what a whole scan returns; encodings and their
//! conversions under CONFIG SET; DUMP, RESTORE and RDB files both ways; and
//! what replicas are sent.

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::PathBuf;

use bytes::Bytes;
use ember_tests::{EmberServer, RedisServer, call};
use resp::Frame;

use crate::diff::{Mode, Pair, Setup, decode, normalize};

/// `HSET key f0 v0 ... f{n-1} v{n-1}` with `prefix`ed fields.
fn hset_line(key: &str, n: usize, prefix: &str) -> String {
    let mut line = format!("HSET {key}");
    for i in 0..n {
        line.push_str(&format!(" {prefix}{i} v{i}"));
    }
    line
}

#[test]
fn hash_commands_match_redis() {
    let mut b = Pair::start(&Setup::PLAIN);
    let cases: &[&[&str]] = &[
        // Small (listpack) hashes: insertion order, updates in place.
        &[
            "HSET h a 1 b 2 c 3",
            "HSET h a 10 d 4",
            "HSET h a 10",
            "HGETALL h",
            "HKEYS h",
            "HVALS h",
            "HLEN h",
            "HGET h a",
            "HGET h zz",
            "HGET nokey a",
            "HMGET h a zz b",
            "HMGET nokey a b",
            "HEXISTS h a",
            "HEXISTS h zz",
            "HEXISTS nokey a",
            "HSTRLEN h a",
            "HSTRLEN h zz",
            "HSTRLEN nokey a",
            "HSETNX h a x",
            "HSETNX h e 5",
            "HSETNX newkey f v",
            "HGETALL newkey",
            "HMSET h x 1 y 2",
            "HMSET h x 3",
            "HDEL h a zz b",
            "HDEL h nothing",
            "HDEL nokey a",
            "HGETALL h",
            "OBJECT ENCODING h",
            "TYPE h",
            "HDEL h c d e x y more",
            "EXISTS h",
            "HGETALL h",
            "HKEYS nokey",
            "HVALS nokey",
            "HLEN nokey",
            "HSET h \"\" \"\"",
            "HGET h \"\"",
            "HSTRLEN h \"\"",
            "HSET h -9223372036854775808 9223372036854775807 n 9223372036854775808",
            "HGETALL h",
            "HSTRLEN h -9223372036854775808",
            "HSTRLEN h n",
        ],
        // Arity, and the checks beyond it.
        &[
            "HSET h",
            "HSET h a",
            "HSET h a 1 b",
            "HMSET h a",
            "HMSET h a 1 b",
            "HSETNX h a",
            "HSETNX h a b c",
            "HGET h",
            "HGET h a b",
            "HMGET h",
            "HGETALL",
            "HGETALL a b",
            "HKEYS",
            "HVALS a b",
            "HLEN",
            "HEXISTS h",
            "HDEL h",
            "HSTRLEN h",
            "HINCRBY h f",
            "HINCRBYFLOAT h f",
            "HINCRBYFLOAT h f 1 2",
            "HRANDFIELD",
            "HSCAN h",
            "EXISTS h",
        ],
        // Wrong type, and which check comes first.
        &[
            "SET s v",
            "HSET s a 1",
            "HSETNX s a 1",
            "HMSET s a 1",
            "HGET s a",
            "HMGET s a",
            "HGETALL s",
            "HKEYS s",
            "HVALS s",
            "HLEN s",
            "HEXISTS s a",
            "HDEL s a",
            "HSTRLEN s a",
            "HINCRBY s a 1",
            "HINCRBYFLOAT s a 1",
            "HRANDFIELD s",
            "HRANDFIELD s 3",
            "HRANDFIELD s -3 WITHVALUES",
            "HSCAN s 0",
            "HINCRBY s a x",
            "HINCRBYFLOAT s a x",
            "HINCRBYFLOAT s a inf",
            "HSCAN s x",
            "HSCAN s 0 COUNT 0",
            "HRANDFIELD s x",
            "HRANDFIELD s 1 foo",
            "RPUSH l x",
            "HGET l a",
            "HSET h f v",
            "GET h",
            "LPUSH h x",
            "INCR h",
            "GET s",
        ],
        // HINCRBY.
        &[
            "HINCRBY h f 5",
            "HINCRBY h f -10",
            "HINCRBY h f x",
            "HINCRBY h f 1.5",
            "HINCRBY h f \"\"",
            "HINCRBY h f 99999999999999999999",
            "HINCRBY h f 9223372036854775807",
            "HSET h g abc",
            "HINCRBY h g 1",
            "HSET h sp \" 1\"",
            "HINCRBY h sp 1",
            "HSET h big 9223372036854775807",
            "HINCRBY h big 1",
            "HINCRBY h big -1",
            "HSET h neg -9223372036854775808",
            "HINCRBY h neg -1",
            "HINCRBY h neg 0",
            "HSET h z 007",
            "HINCRBY h z 1",
            "HSET h m -0",
            "HINCRBY h m 1",
            "HINCRBY nokey f 3",
            "HGETALL nokey",
            "HGETALL h",
        ],
        // HINCRBYFLOAT.
        &[
            "HINCRBYFLOAT h f 1.5",
            "HINCRBYFLOAT h f 0.1",
            "HINCRBYFLOAT h f -1.6",
            "HINCRBYFLOAT h f x",
            "HINCRBYFLOAT h f inf",
            "HINCRBYFLOAT h f -inf",
            "HINCRBYFLOAT h f +inf",
            "HINCRBYFLOAT h f nan",
            "HINCRBYFLOAT h f \"\"",
            "HINCRBYFLOAT h f \" 1\"",
            "HINCRBYFLOAT h f 1e",
            "HSET h g abc",
            "HINCRBYFLOAT h g 1",
            "HSET h sp \" 1\"",
            "HINCRBYFLOAT h sp 1",
            "HSET h nul \"1\\x002\"",
            "HINCRBYFLOAT h nul 1",
            "HINCRBYFLOAT h i 1e3",
            "HINCRBYFLOAT h e 3.0e3",
            "HINCRBYFLOAT h hex 0x10",
            "HSET h int 5",
            "HINCRBYFLOAT h int 10",
            "HINCRBYFLOAT h int 0.0000005",
            "HINCRBYFLOAT h huge 1.1e4932",
            "HINCRBYFLOAT h huge 1e4931",
            "HINCRBYFLOAT h huge 1.1e4932",
            "HINCRBYFLOAT h huge 1e4932",
            "HINCRBYFLOAT h tiny 1e-4960",
            "HINCRBYFLOAT h z 0",
            "HINCRBYFLOAT h z -0",
            // The huge value made the hash a hashtable.
            "OBJECT ENCODING h",
            "pairs HGETALL h",
            "HINCRBYFLOAT nokey f 2.5",
            "HGETALL nokey",
        ],
        // HRANDFIELD: what is not random.
        &[
            "HSET h a 1 b 2 c 3",
            "HRANDFIELD h 0",
            "HRANDFIELD h 0 WITHVALUES",
            "HRANDFIELD h 3",
            "HRANDFIELD h 100",
            "HRANDFIELD h 100 WITHVALUES",
            "HRANDFIELD h 100 withvalues",
            "HRANDFIELD nokey",
            "HRANDFIELD nokey 5",
            "HRANDFIELD nokey -5 WITHVALUES",
            "HRANDFIELD nokey 0",
            "HRANDFIELD nokey x",
            "HRANDFIELD nokey 1 foo",
            "HRANDFIELD h x",
            "HRANDFIELD h 1.5",
            "HRANDFIELD h 1 foo",
            "HRANDFIELD h 1 WITHVALUES x",
            "HRANDFIELD h -9223372036854775808",
            "HRANDFIELD h -9223372036854775808 WITHVALUES",
            "HRANDFIELD h -4611686018427387904 WITHVALUES",
            "HRANDFIELD h 4611686018427387904 WITHVALUES",
            "HRANDFIELD h 4611686018427387903 WITHVALUES",
            "HRANDFIELD h 9223372036854775807",
            "HSET one f v",
            "HRANDFIELD one",
            "HRANDFIELD one 1",
            "HRANDFIELD one -3",
            "HRANDFIELD one -3 WITHVALUES",
            "shape HRANDFIELD h",
            "shape HRANDFIELD h 2",
            "shape HRANDFIELD h -10",
            "shape HRANDFIELD h -10 WITHVALUES",
            "shape HRANDFIELD h 2 WITHVALUES",
        ],
        // HSCAN of a listpack: everything at once, cursor 0.
        &[
            "HSET h a 1 b 2 c 3 ab 4",
            "HSCAN h 0",
            "HSCAN h 0 COUNT 1",
            "HSCAN h 7",
            "HSCAN h 0 MATCH a*",
            "HSCAN h 0 MATCH *",
            "HSCAN h 0 MATCH nothing*",
            "HSCAN h 0 MATCH [ab] COUNT 100",
            "HSCAN h 0 match a* count 2 match b*",
            "HSCAN h -1",
            "HSCAN h +0",
            "HSCAN h \"\"",
            "HSCAN h x",
            "HSCAN h \" 0\"",
            "HSCAN h \"0 \"",
            "HSCAN h 1.0",
            "HSCAN h 18446744073709551615",
            "HSCAN h 18446744073709551616",
            "HSCAN h 0 COUNT 0",
            "HSCAN h 0 COUNT -1",
            "HSCAN h 0 COUNT x",
            "HSCAN h 0 COUNT",
            "HSCAN h 0 MATCH",
            "HSCAN h 0 TYPE hash",
            "HSCAN h 0 foo bar",
            "HSCAN nokey 0",
            "HSCAN nokey 0 COUNT 0",
            "HSCAN nokey 0 foo",
            "HSCAN nokey x",
        ],
        // RESP3 shapes.
        &[
            "~ HELLO 3",
            "HSET h a 1 b 2",
            "HSET one f v",
            "HGETALL h",
            "HGETALL nokey",
            "HKEYS nokey",
            "HGET nokey a",
            "HMGET nokey a",
            "HMGET h a zz",
            "HRANDFIELD h 100 WITHVALUES",
            "HRANDFIELD h 100",
            "HRANDFIELD one -2 WITHVALUES",
            "HRANDFIELD nokey",
            "HRANDFIELD nokey 2",
            "HRANDFIELD nokey 2 WITHVALUES",
            "HRANDFIELD h 0 WITHVALUES",
            "shape HRANDFIELD h -5 WITHVALUES",
            "HSCAN h 0",
            "HSCAN nokey 0",
            "~ HELLO 2",
        ],
        // Keys holding hashes.
        &[
            "HSET h a 1 b 2",
            "COPY h h2",
            "HGETALL h2",
            "OBJECT ENCODING h2",
            "HSET h2 c 3",
            "HLEN h",
            "RENAME h2 h3",
            "HGETALL h3",
            "MOVE h3 1",
            "SELECT 1",
            "HGETALL h3",
            "TYPE h3",
            "SELECT 0",
            "SET s v",
            "RPUSH l x",
            "sorted SCAN 0 TYPE hash",
            "sorted SCAN 0 TYPE HASH COUNT 100",
            "sorted SCAN 0 TYPE string",
            "EXPIRE h 100",
            "TTL h",
            "HSET h c 3",
            "TTL h",
            "HDEL h a b c",
            "TTL h",
            "sorted KEYS *",
        ],
    ];
    for case in cases {
        b.check(case);
    }
}

/// Encodings, and the conversions the limits make, as CONFIG SET changes
/// them.
#[test]
fn encodings_and_conversions_match_redis() {
    let mut b = Pair::start(&Setup::PLAIN);
    let at_limit = hset_line("full", 512, "f");
    let over_limit = hset_line("over", 513, "f");
    let long = "x".repeat(64);
    let longer = "x".repeat(65);
    let value_64 = format!("HSET v64 f {long}");
    let value_65 = format!("HSET v65 f {longer}");
    let field_65 = format!("HSET f65 {longer} v");
    let mixed = format!("HSET mixed a 1 b {longer}");
    let nx = format!("HSETNX nx f {longer}");
    b.check(&[
        &at_limit,
        "OBJECT ENCODING full",
        &over_limit,
        "OBJECT ENCODING over",
        "HSET full one more",
        "OBJECT ENCODING full",
        &value_64,
        "OBJECT ENCODING v64",
        &value_65,
        "OBJECT ENCODING v65",
        &field_65,
        "OBJECT ENCODING f65",
        &mixed,
        "OBJECT ENCODING mixed",
        "HGET mixed a",
        &nx,
        "OBJECT ENCODING nx",
        "HSET small a 1",
        "OBJECT ENCODING small",
        "OBJECT ENCODING nokey",
    ]);
    b.check(&[
        "CONFIG SET hash-max-listpack-entries 4",
        "CONFIG GET hash-max-ziplist-entries",
        "HSET e a 1 b 2 c 3 d 4",
        "OBJECT ENCODING e",
        "HSET e x 5",
        "OBJECT ENCODING e",
        "HDEL e x a b c",
        "OBJECT ENCODING e",
        "HSET e2 a 1 b 2 c 3 d 4 e 5",
        "OBJECT ENCODING e2",
        "CONFIG SET hash-max-ziplist-value 3",
        "CONFIG GET hash-max-listpack-value",
        "HSET v a abc",
        "OBJECT ENCODING v",
        "HSET v b abcd",
        "OBJECT ENCODING v",
        "HSET w abcd 1",
        "OBJECT ENCODING w",
        "HSETNX w2 f abcd",
        "OBJECT ENCODING w2",
        "HSETNX w3 f abc",
        "HSETNX w3 f abcdef",
        "OBJECT ENCODING w3",
        "HINCRBYFLOAT x f 1.5",
        "OBJECT ENCODING x",
        "HINCRBYFLOAT x f 0.25",
        "OBJECT ENCODING x",
        "HINCRBY y abcd 1",
        "OBJECT ENCODING y",
        "HINCRBY z f 999",
        "OBJECT ENCODING z",
        "HINCRBY z f 1",
        "OBJECT ENCODING z",
        "CONFIG SET hash-max-listpack-entries 0",
        "HSET zero a 1",
        "OBJECT ENCODING zero",
        "CONFIG SET hash-max-listpack-entries 128",
        "CONFIG SET hash-max-listpack-value 64",
        "HSET after a 1",
        "OBJECT ENCODING after",
        "OBJECT ENCODING e",
    ]);
}

/// Big (hashtable) hashes: the same contents, in an order of each
/// server's own.
#[test]
fn hashtable_hashes_match_redis_as_sets() {
    let mut b = Pair::start(&Setup::PLAIN);
    let big = hset_line("big", 1000, "field:");
    b.check(&[
        &big,
        "OBJECT ENCODING big",
        "HLEN big",
        "pairs HGETALL big",
        "sorted HKEYS big",
        "sorted HVALS big",
        "HGET big field:7",
        "HMGET big field:1 nope field:999",
        "HDEL big field:0 field:1 nope",
        "HLEN big",
        "HSTRLEN big field:5",
        "HEXISTS big field:0",
        "HEXISTS big field:2",
        "HINCRBY big field:10 5",
        "HSET big field:10 41",
        "HINCRBY big field:10 1",
        "HINCRBYFLOAT big field:10 0.5",
        "HSETNX big field:10 x",
        "HSETNX big new x",
        "pairs HRANDFIELD big 5000 WITHVALUES",
        "sorted HRANDFIELD big 5000",
        "shape HRANDFIELD big 5",
        "shape HRANDFIELD big 5 WITHVALUES",
        "shape HRANDFIELD big 400",
        "shape HRANDFIELD big 990 WITHVALUES",
        "shape HRANDFIELD big -5",
        "shape HRANDFIELD big -500 WITHVALUES",
        "scanall HSCAN big",
        "scanall HSCAN big COUNT 1",
        "scanall HSCAN big COUNT 1000",
        "scanall HSCAN big MATCH field:1*",
        "scanall HSCAN big MATCH nothing",
        "HSCAN big x",
        "HSCAN big 0 COUNT 0",
        "~ HELLO 3",
        "pairs HGETALL big",
        "shape HRANDFIELD big 3 WITHVALUES",
        "~ HELLO 2",
        "COPY big big2",
        "OBJECT ENCODING big2",
        "pairs HGETALL big2",
        "HDEL big2 field:2 field:3",
        "HLEN big",
        "HLEN big2",
    ]);
}

/// HRANDFIELD's picks, beyond their shape: fields of the hash, with their
/// own values, distinct when the count is positive; every field comes up.
#[test]
fn random_fields_are_members_and_distinct_when_asked() {
    let ember = EmberServer::start(&[]);
    let mut e = ember.connect();
    for (key, n) in [("small", 10usize), ("big", 1000)] {
        call(&mut e, &args_of(&hset_line(key, n, "f")));
        let mut seen = HashSet::new();
        for count in [1i64, 2, 3, 5, n as i64 / 2, n as i64 - 1, -1, -7, -1000] {
            for proto in [2, 3] {
                call(&mut e, &[b"HELLO", proto.to_string().as_bytes()]);
                let reply = call(
                    &mut e,
                    &[
                        b"HRANDFIELD",
                        key.as_bytes(),
                        count.to_string().as_bytes(),
                        b"WITHVALUES",
                    ],
                );
                let Frame::Array(items) = decode(&reply) else {
                    panic!("not an array: {reply:?}");
                };
                let picks: Vec<(Bytes, Bytes)> = if proto == 3 {
                    items
                        .iter()
                        .map(|p| match p {
                            Frame::Array(p) => match &p[..] {
                                [Frame::Bulk(f), Frame::Bulk(v)] => (f.clone(), v.clone()),
                                other => panic!("not a pair: {other:?}"),
                            },
                            other => panic!("not a pair: {other:?}"),
                        })
                        .collect()
                } else {
                    items
                        .chunks(2)
                        .map(|p| match p {
                            [Frame::Bulk(f), Frame::Bulk(v)] => (f.clone(), v.clone()),
                            other => panic!("not a pair: {other:?}"),
                        })
                        .collect()
                };
                assert_eq!(picks.len(), count.unsigned_abs() as usize);
                for (f, v) in &picks {
                    let i: usize = std::str::from_utf8(&f[1..]).unwrap().parse().unwrap();
                    assert!(i < n, "{f:?} is no field of {key}");
                    assert_eq!(&v[..], format!("v{i}").as_bytes());
                    seen.insert(i);
                }
                if count > 0 {
                    let distinct: HashSet<_> = picks.iter().map(|p| &p.0).collect();
                    assert_eq!(distinct.len(), picks.len(), "repeats in {picks:?}");
                }
            }
        }
        call(&mut e, &[b"HELLO", b"2"]);
        assert_eq!(seen.len(), n, "fields of {key} never picked");
    }
    // A count whose reply could not be built is refused, not attempted.
    let reply = call(&mut e, &[b"HRANDFIELD", b"big", b"-9223372036854775807"]);
    assert!(
        reply.starts_with(b"-ERR value is out of range"),
        "{reply:?}"
    );
    let reply = call(&mut e, &[b"HRANDFIELD", b"big", b"-67108865"]);
    assert!(
        reply.starts_with(b"-ERR value is out of range"),
        "{reply:?}"
    );
    let reply = call(&mut e, &[b"HRANDFIELD", b"big", b"-100000"]);
    assert!(reply.starts_with(b"*100000\r\n"));
}

fn args_of(line: &str) -> Vec<&[u8]> {
    // The lines built here have no quotes: split on spaces.
    line.split(' ').map(str::as_bytes).collect()
}

/// The bulk string in a raw reply.
fn bulk(reply: &[u8]) -> Vec<u8> {
    let Frame::Bulk(b) = decode(reply) else {
        panic!("not a bulk string: {reply:?}");
    };
    b.to_vec()
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// DUMP of a listpack hash is Redis's payload, byte for byte (fields that
/// LZF cannot shrink, since compressors differ); payloads of both
/// encodings restore in both directions to the same contents and
/// encoding.
#[test]
fn dump_and_restore_match_redis() {
    let mut b = Pair::start(&Setup::PLAIN);
    let mut samples: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![
        vec![(b"f".to_vec(), b"v".to_vec())],
        // Integers of every listpack width, as fields and values.
        [
            "0",
            "-1",
            "127",
            "128",
            "-4096",
            "4095",
            "-32768",
            "32767",
            "8388607",
            "-8388608",
            "2147483647",
            "-2147483648",
            "9223372036854775807",
            "-9223372036854775808",
            "007",
            "-0",
        ]
        .iter()
        .map(|s| (s.as_bytes().to_vec(), s.as_bytes().to_vec()))
        .collect(),
        (0..20u64)
            .map(|i| (noise(10, i + 1), noise(63, i + 100)))
            .collect(),
        // A long listpack, compressed; hashtables: many fields, and long
        // values.
        (0..500)
            .map(|i| {
                (
                    format!("field:{i}").into_bytes(),
                    format!("{i}").into_bytes(),
                )
            })
            .collect(),
        (0..600)
            .map(|i| {
                (
                    format!("field:{i}").into_bytes(),
                    format!("{i}").into_bytes(),
                )
            })
            .collect(),
        vec![
            (b"short".to_vec(), b"v".to_vec()),
            (b"long".to_vec(), noise(10_000, 9)),
        ],
    ];
    samples.push(vec![(noise(200, 3), b"".to_vec())]);
    for (i, pairs) in samples.iter().enumerate() {
        let key = format!("k{i}");
        let mut argv: Vec<&[u8]> = vec![b"HSET", key.as_bytes()];
        for (f, v) in pairs {
            argv.push(f);
            argv.push(v);
        }
        b.both(&argv);
        let r = bulk(&call(&mut b.redis, &[b"DUMP", key.as_bytes()]));
        let e = bulk(&call(&mut b.ember, &[b"DUMP", key.as_bytes()]));
        let (encoding, _) = b.both(&[b"OBJECT", b"ENCODING", key.as_bytes()]);
        // A listpack is one RDB string: LZF-compressed (0xC3) if that
        // saves room, and compressors differ in their bytes.
        let packed = &encoding[..] == b"$8\r\nlistpack\r\n";
        if packed && r[1] != 0xC3 {
            assert_eq!(r, e, "DUMP of hash {i}");
        } else if packed {
            assert_eq!(e[1], 0xC3, "DUMP of hash {i} is compressed by both");
        }
        let (want, _) = b.both_as(Mode::Pairs, &[b"HGETALL", key.as_bytes()]);
        for (to_redis, payload, who) in [
            (true, &e, "redis restores ember's"),
            (false, &r, "ember restores redis's"),
            (false, &e, "ember restores its own"),
        ] {
            let conn = if to_redis { &mut b.redis } else { &mut b.ember };
            let copy = format!("copy{i}");
            assert_eq!(
                &call(conn, &[b"RESTORE", copy.as_bytes(), b"0", payload])[..],
                b"+OK\r\n",
                "{who} (hash {i})"
            );
            let got = normalize(Mode::Pairs, &call(conn, &[b"HGETALL", copy.as_bytes()]));
            assert_eq!(got, want, "{who} (hash {i})");
            assert_eq!(
                call(conn, &[b"OBJECT", b"ENCODING", copy.as_bytes()]),
                encoding,
                "{who} (hash {i})"
            );
            call(conn, &[b"DEL", copy.as_bytes()]);
        }
    }
}

/// A private directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ember-hashes-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    fn str(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Hashes of both encodings, with deadlines: written by commands.
fn fill(conn: &mut TcpStream) {
    for line in [
        hset_line("small", 5, "f"),
        hset_line("big", 1000, "field:"),
        "HSET ints 1 100 -5 70000 big 9223372036854775807".to_string(),
        format!("HSET long f {}", "y".repeat(100)),
    ] {
        call(conn, &args_of(&line));
    }
    call(conn, &[b"PEXPIRE", b"small", b"86400000"]);
    call(conn, &[b"HSET", b"bin\x00", b"\x00\xff", b"\r\n"]);
}

/// What the hashes [`fill`] wrote read back as: contents, encodings and
/// whether each has a deadline.
fn contents(conn: &mut TcpStream) -> Vec<(Bytes, Bytes, Bytes)> {
    let mut out = Vec::new();
    for key in [&b"small"[..], b"big", b"ints", b"long", b"bin\x00"] {
        out.push((
            normalize(Mode::Pairs, &call(conn, &[b"HGETALL", key])),
            call(conn, &[b"OBJECT", b"ENCODING", key]),
            call(conn, &[b"TTL", key]).slice(..2),
        ));
    }
    out
}

/// RDB files with hashes, both ways: Redis's file loads into Ember, and
/// Ember's into Redis (and passes `redis-check-rdb`); DEBUG RELOAD keeps
/// hashes as they were.
#[test]
fn rdb_files_with_hashes_load_both_ways() {
    let from_redis = TempDir::new("from-redis");
    let want = {
        let redis = RedisServer::start(&["--dir", from_redis.str()]);
        let mut r = redis.connect();
        fill(&mut r);
        assert_eq!(&call(&mut r, &[b"SAVE"])[..], b"+OK\r\n");
        contents(&mut r)
    };
    {
        let ember = EmberServer::start(&[&format!("dir {}", from_redis.str())]);
        let mut e = ember.connect();
        assert_eq!(contents(&mut e), want, "ember loading redis's file");
        assert_eq!(
            &call(&mut e, &[b"DEBUG", b"RELOAD"])[..],
            b"+OK\r\n",
            "DEBUG RELOAD"
        );
        assert_eq!(contents(&mut e), want, "ember after DEBUG RELOAD");
    }
    let from_ember = TempDir::new("from-ember");
    {
        let ember = EmberServer::start(&[&format!("dir {}", from_ember.str())]);
        let mut e = ember.connect();
        fill(&mut e);
        assert_eq!(contents(&mut e), want);
        assert_eq!(&call(&mut e, &[b"SAVE"])[..], b"+OK\r\n");
    }
    let file = from_ember.0.join("dump.rdb");
    if let Ok(out) = std::process::Command::new("redis-check-rdb")
        .arg(&file)
        .output()
    {
        assert!(
            out.status.success(),
            "redis-check-rdb refused Ember's file:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let redis = RedisServer::start(&["--dir", from_ember.str()]);
    let mut r = redis.connect();
    assert_eq!(contents(&mut r), want, "redis loading ember's file");
}

/// What replicas are sent for hash writes, compared with Redis's stream:
/// HINCRBYFLOAT as HSET of its result, writes that change nothing not at
/// all.
#[test]
fn replication_stream_of_hash_writes_matches_redis() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let mut streams = Vec::new();
    for addr in [redis.addr(), ember.addr()] {
        let (mut s, mut buf) = crate::replication::attach_to_stream(addr);
        let mut c = ember_tests::connect(addr);
        for line in [
            "HSET h a 1 b 2",
            "HSET h a 1",
            "HMSET h c 3",
            "HSETNX h a 9",
            "HSETNX h d 4",
            "HDEL h nothing",
            "HDEL h d nothing",
            "HINCRBY h a 5",
            "HINCRBY h a x",
            "HINCRBYFLOAT h f 1.5",
            "HINCRBYFLOAT h f 0.1",
            "HINCRBYFLOAT h f 1e3",
            "HINCRBYFLOAT h b x",
            "HINCRBYFLOAT h2 f 3.0e1",
            "HGET h a",
            "HRANDFIELD h -3",
            "HDEL h a b c f",
            "HDEL h2 f",
            "SET end 1",
        ] {
            call(&mut c, &args_of(line));
        }
        streams.push(crate::replication::read_stream(&mut s, &mut buf, "end"));
    }
    assert_eq!(streams[0], streams[1]);
}

/// RESTORE loads a hash under the configured `hash-max-listpack-*`, as
/// Redis does: the encoding OBJECT ENCODING shows afterwards is Redis's,
/// under several limits, for packed and table payloads.
#[test]
fn restored_hashes_follow_the_configured_limits() {
    let mut both = Pair::start(&Setup::PLAIN);
    let mut big: Vec<Vec<u8>> = vec![b"HSET".to_vec(), b"big".to_vec()];
    for i in 0..200 {
        big.push(format!("f{i}").into_bytes());
        big.push(b"v".to_vec());
    }
    let big: Vec<&[u8]> = big.iter().map(Vec::as_slice).collect();
    let long = "x".repeat(100);
    for args in [
        &[&b"HSET"[..], b"small", b"a", b"1", b"b", b"2"][..],
        &big,
        &[b"HSET", b"long", b"f", long.as_bytes()],
    ] {
        both.both(args);
    }
    both.restore_under(
        &[
            &[
                "CONFIG SET hash-max-listpack-entries 1",
                "CONFIG SET hash-max-listpack-value 64",
            ],
            &[
                "CONFIG SET hash-max-listpack-entries 1000",
                "CONFIG SET hash-max-listpack-value 200",
            ],
            &[
                "CONFIG SET hash-max-listpack-entries 512",
                "CONFIG SET hash-max-listpack-value 64",
            ],
            &[
                "CONFIG SET hash-max-listpack-entries 0",
                "CONFIG SET hash-max-listpack-value 64",
            ],
        ],
        &[b"small", b"big", b"long"],
    );
}

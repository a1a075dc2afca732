//! Sets against a real redis-server 7.0: every set command's options,
//! errors and edge cases, replies compared byte for byte (the members of a
//! hashtable set compared as a set: its order is its table's), encodings
//! (OBJECT ENCODING) as they change, DUMP payloads of intsets byte for byte
//! and hashtables through RESTORE both ways, the shapes of random picks,
//! and whole SSCANs.

use std::collections::BTreeSet;

use bytes::Bytes;
use ember_tests::call;
use resp::Frame;

use crate::diff::{Mode, Pair, Setup, decode, encode, normalize, slices};

/// Ember with a directory of its own for DEBUG RELOAD's file; each script
/// starts from the default intset limit.
const SETUP: Setup = Setup {
    redis: &["--enable-debug-command", "local"],
    ember: &["save \"\"", "appendonly no"],
    dir: Some("sets"),
    reset: &["CONFIG SET set-max-intset-entries 512"],
    rule,
};

/// The members of the commands that return a set's members in its table's
/// order compared as a multiset (for an intset, which both servers return
/// in ascending order, sorting changes nothing); SSCAN's and SCAN's pages
/// with the cursor kept and the elements as a multiset (SCAN's keys come
/// in each server's own order too).
fn rule(args: &[&[u8]]) -> Mode {
    let name = String::from_utf8_lossy(args[0]).to_ascii_lowercase();
    match name.as_str() {
        "smembers" | "sinter" | "sunion" | "sdiff" | "spop" | "srandmember" => Mode::Sorted,
        "sscan" | "scan" => Mode::ScanSorted,
        _ => Mode::Exact,
    }
}

#[test]
fn set_commands_match_redis() {
    let mut pair = Pair::start(&SETUP);
    let cases: &[&[&str]] = &[
        // SADD, SCARD, SISMEMBER, SMISMEMBER, SMEMBERS; arity and types.
        &[
            "SADD",
            "SADD s",
            "SADD s 3 1 2 1",
            "SADD s 2",
            "SCARD s",
            "SMEMBERS s",
            "OBJECT ENCODING s",
            "TYPE s",
            "SISMEMBER s 1",
            "SISMEMBER s 01",
            "SISMEMBER s +1",
            "SISMEMBER s x",
            "SISMEMBER s",
            "SISMEMBER s 1 2",
            "SISMEMBER none 1",
            "SMISMEMBER s 1 01 3 x",
            "SMISMEMBER none a b",
            "SMISMEMBER s",
            "SCARD none",
            "SCARD",
            "SMEMBERS none",
            "SMEMBERS",
            "SET str v",
            "SADD str a",
            "SCARD str",
            "SISMEMBER str a",
            "SMISMEMBER str a",
            "SMEMBERS str",
            "SREM str a",
            "RPUSH l a",
            "SADD l a",
            "SMEMBERS l",
        ],
        // Encodings: intset widths and the conversions to hashtable, which
        // never go back.
        &[
            "SADD i 1",
            "OBJECT ENCODING i",
            "DUMP i",
            "SADD i 40000",
            "DUMP i",
            "SADD i -3000000000",
            "DUMP i",
            "SREM i -3000000000 40000",
            "DUMP i",
            "SMEMBERS i",
            "SADD i 9223372036854775807 -9223372036854775808",
            "SMEMBERS i",
            "SADD i 9223372036854775808",
            "OBJECT ENCODING i",
            "SISMEMBER i 9223372036854775807",
            "SADD j 1 2 x",
            "OBJECT ENCODING j",
            "SREM j x",
            "OBJECT ENCODING j",
            "SADD k 01",
            "OBJECT ENCODING k",
            "SADD m -0",
            "OBJECT ENCODING m",
            "SADD n \"\"",
            "OBJECT ENCODING n",
            "SMEMBERS n",
            "SADD long aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bb",
            "SISMEMBER long aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "SMEMBERS long",
        ],
        // set-max-intset-entries.
        &[
            "CONFIG GET set-max-intset-entries",
            "CONFIG SET set-max-intset-entries 3",
            "CONFIG GET set-max-intset-entries",
            "SADD s 1 2 3",
            "OBJECT ENCODING s",
            "SADD s 3",
            "OBJECT ENCODING s",
            "SADD s 4",
            "OBJECT ENCODING s",
            "SREM s 1 2 3",
            "OBJECT ENCODING s",
            "SADD t 1 2 3 4",
            "OBJECT ENCODING t",
            "CONFIG SET set-max-intset-entries 0",
            "SADD u 1",
            "OBJECT ENCODING u",
            "CONFIG SET set-max-intset-entries -1",
            "CONFIG SET set-max-intset-entries x",
            "CONFIG GET set-max-intset-entries",
        ],
        // SREM.
        &[
            "SREM none a",
            "SREM s",
            "SADD s a b c 1",
            "SREM s x y",
            "SREM s a a",
            "SREM s b c 1 zz",
            "EXISTS s",
            "SADD i 1 2",
            "SREM i 1 x 01",
            "SREM i 2",
            "EXISTS i",
        ],
        // SMOVE.
        &[
            "SMOVE",
            "SMOVE a b",
            "SMOVE a b c d",
            "SET str v",
            "SMOVE none str m",
            "SMOVE str none m",
            "SADD src 1 2 x",
            "SMOVE src str 1",
            "SMOVE src none 9",
            "SMOVE src src 1",
            "SMOVE src src 9",
            "SMOVE none none 1",
            "SMOVE src dst 1",
            "OBJECT ENCODING dst",
            "SMOVE src dst x",
            "OBJECT ENCODING dst",
            "SMOVE src dst 1",
            "SMOVE src dst 2",
            "EXISTS src",
            "SMEMBERS dst",
            "SADD ints 5",
            "SMOVE dst ints 1",
            "OBJECT ENCODING ints",
            "SMEMBERS ints",
            "SMOVE dst ints x",
            "OBJECT ENCODING ints",
            "SADD dst 1",
            "SMOVE dst ints 1",
            "SCARD ints",
        ],
        // SPOP: errors, missing keys, counts 0, whole set, huge.
        &[
            "SPOP",
            "SPOP s 1 2",
            "SPOP s -1",
            "SPOP s abc",
            "SPOP s 1.5",
            "SPOP none",
            "SPOP none 0",
            "SPOP none 5",
            "SET str v",
            "SPOP str",
            "SPOP str 1",
            "SPOP str -1",
            "SADD s 7",
            "SPOP s 0",
            "SPOP s",
            "EXISTS s",
            "SADD s 1 2 3",
            "SPOP s 3",
            "EXISTS s",
            "SADD s a b c",
            "SPOP s 9223372036854775807",
            "EXISTS s",
            "SADD s a",
            "SPOP s 1",
            "EXISTS s",
            "CONFIG SET set-max-intset-entries 2",
            "SADD big 1 2 3",
            "SREM big 1",
            "OBJECT ENCODING big",
            "SPOP big 2",
        ],
        // SRANDMEMBER: errors, missing keys, whole set, repeats.
        &[
            "SRANDMEMBER",
            "SRANDMEMBER s 1 2",
            "SRANDMEMBER s abc",
            "SRANDMEMBER s -9223372036854775808",
            "SRANDMEMBER s 1.0",
            "SRANDMEMBER none",
            "SRANDMEMBER none 3",
            "SRANDMEMBER none -3",
            "SRANDMEMBER none 0",
            "SET str v",
            "SRANDMEMBER str",
            "SRANDMEMBER str 2",
            "SADD one x",
            "SRANDMEMBER one",
            "SRANDMEMBER one -5",
            "SRANDMEMBER one 5",
            "SRANDMEMBER one 0",
            "SADD s 3 1 2",
            "SRANDMEMBER s 3",
            "SRANDMEMBER s 9223372036854775807",
            "SADD h a b c",
            "SRANDMEMBER h 100",
        ],
        // SINTER, SINTERSTORE, SINTERCARD.
        &[
            "SADD a 1 2 3 4 x",
            "SADD b 2 3 4 5 x",
            "SADD c 3 4 5 6",
            "SADD d 3 4",
            "SINTER",
            "SINTER a",
            "SINTER a b",
            "SINTER a b c",
            "SINTER c d",
            "SINTER a a",
            "SINTER a none",
            "SINTER none a",
            "SET str v",
            "SINTER a str",
            "SINTER none str",
            "SINTER str none",
            "SINTERSTORE",
            "SINTERSTORE dst",
            "SINTERSTORE dst a b",
            "SMEMBERS dst",
            "OBJECT ENCODING dst",
            "SINTERSTORE dst b c d",
            "OBJECT ENCODING dst",
            "SMEMBERS dst",
            "SINTERSTORE dst a b str",
            "SMEMBERS dst",
            "EXPIRE dst 100",
            "SINTERSTORE dst c d",
            "TTL dst",
            "SINTERSTORE dst a none",
            "EXISTS dst",
            "SINTERSTORE str a b",
            "TYPE str",
            "SINTERSTORE a a b",
            "SMEMBERS a",
            "SINTERCARD",
            "SINTERCARD 1",
            "SINTERCARD 0 a",
            "SINTERCARD -1 a",
            "SINTERCARD x a",
            "SINTERCARD 3 a b",
            "SINTERCARD 1 a",
            "SINTERCARD 2 b c",
            "SINTERCARD 2 b c LIMIT 0",
            "SINTERCARD 2 b c LIMIT 1",
            "SINTERCARD 2 b c LIMIT 100",
            "SINTERCARD 2 b c LIMIT -1",
            "SINTERCARD 2 b c LIMIT x",
            "SINTERCARD 2 b c LIMIT",
            "SINTERCARD 2 b c LIMIT 1 LIMIT 0",
            "SINTERCARD 2 b c FOO 1",
            "SINTERCARD 2 b none",
            "SINTERCARD 2 none str",
            "SINTERCARD 2 b str",
        ],
        // SUNION, SUNIONSTORE, SDIFF, SDIFFSTORE.
        &[
            "SADD a 1 2 3",
            "SADD b 3 4 5",
            "SADD h x y 3",
            "SUNION",
            "SUNION a b",
            "SUNION a none b",
            "SUNION a h",
            "SUNION none",
            "SET str v",
            "SUNION a str",
            "SUNION none str",
            "SUNIONSTORE dst a b",
            "OBJECT ENCODING dst",
            "SMEMBERS dst",
            "SUNIONSTORE dst a h",
            "OBJECT ENCODING dst",
            "SUNIONSTORE dst none",
            "EXISTS dst",
            "SUNIONSTORE dst a str",
            "SDIFF",
            "SDIFF a",
            "SDIFF a b",
            "SDIFF b a h",
            "SDIFF h a",
            "SDIFF a none",
            "SDIFF none a",
            "SDIFF a a",
            "SDIFF a b a",
            "SDIFF a str",
            "SDIFF none str",
            "SDIFFSTORE dst a b",
            "SMEMBERS dst",
            "OBJECT ENCODING dst",
            "SDIFFSTORE dst h a",
            "OBJECT ENCODING dst",
            "SDIFFSTORE dst a a",
            "EXISTS dst",
            "SET dst v",
            "SDIFFSTORE dst none",
            "EXISTS dst",
            "SDIFFSTORE dst a str",
        ],
        // Which SDIFF algorithm Redis picks shows in the stored encoding.
        &[
            "CONFIG SET set-max-intset-entries 10",
            "SADD big 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19",
            "SADD small 0 1 2 3 4 5 6 7 8 9 10 11",
            "SDIFFSTORE r1 big small",
            "OBJECT ENCODING r1",
            "SDIFFSTORE r2 big small small",
            "OBJECT ENCODING r2",
            "SADD tiny 0",
            "SDIFFSTORE r3 big tiny tiny tiny",
            "OBJECT ENCODING r3",
            "SDIFFSTORE r4 small big",
            "EXISTS r4",
            "SREM big 19",
            "SDIFFSTORE r5 big small small small",
            "OBJECT ENCODING r5",
            "SMEMBERS r5",
        ],
        // SSCAN: an intset answers whole, with cursor 0.
        &[
            "SSCAN",
            "SSCAN s",
            "SADD s 1 2 3 10 20 30",
            "SSCAN s 0",
            "SSCAN s 77",
            "SSCAN s 0 COUNT 1",
            "SSCAN s 0 MATCH 1*",
            "SSCAN s 0 MATCH * COUNT 2",
            "SSCAN s 0 MATCH",
            "SSCAN s 0 COUNT",
            "SSCAN s 0 COUNT 0",
            "SSCAN s 0 COUNT -1",
            "SSCAN s 0 COUNT x",
            "SSCAN s 0 TYPE set",
            "SSCAN s 0 FOO bar",
            "SSCAN s x",
            "SSCAN s -1",
            "SSCAN s +0",
            "SSCAN s \"\"",
            "SSCAN s 18446744073709551615",
            "SSCAN s 18446744073709551616",
            "SSCAN none 0",
            "SSCAN none 0 COUNT 0",
            "SSCAN none x",
            "SET str v",
            "SSCAN str 0",
            "SSCAN str 0 COUNT 0",
            "SSCAN str x",
            "SADD h a b c ab",
            "SSCAN h 0 MATCH a* COUNT 100",
            "SSCAN h 0 MATCH [ab] COUNT 100",
        ],
        // RESP3: set replies are sets, SRANDMEMBER's an array.
        &[
            "~ HELLO 3",
            "SADD s 1 2 3",
            "SADD h a b",
            "SMEMBERS s",
            "SMEMBERS none",
            "SINTER s h",
            "SINTER s none",
            "SUNION s h",
            "SDIFF s h",
            "SPOP none 2",
            "SPOP none",
            "SPOP s 0",
            "SPOP s 5",
            "SRANDMEMBER h 5",
            "SRANDMEMBER none 5",
            "SRANDMEMBER none",
            "SMISMEMBER h a z",
            "SSCAN h 0 COUNT 100",
        ],
        // Keys: TYPE, SCAN TYPE, COPY, RENAME, MOVE, EXPIRE, transactions.
        &[
            "SADD s 1 2",
            "SADD h a b",
            "SET str v",
            "SCAN 0 TYPE set COUNT 100",
            "SCAN 0 TYPE SET COUNT 100",
            "COPY s s2",
            "OBJECT ENCODING s2",
            "SMEMBERS s2",
            "SADD s2 3",
            "SCARD s",
            "COPY h h2",
            "SMEMBERS h2",
            "RENAME h h3",
            "SMEMBERS h3",
            "MOVE h3 1",
            "SELECT 1",
            "SMEMBERS h3",
            "SELECT 0",
            "EXPIRE s 100",
            "SREM s 1",
            "TTL s",
            "MULTI",
            "SADD t 1",
            "SINTERCARD 2 s t",
            "SMOVE t s 1",
            "SUNIONSTORE u s t h2",
            "EXEC",
            "SMEMBERS u",
        ],
    ];
    for case in cases {
        pair.check(case);
    }
}

/// The members of a reply (array or set) of bulk strings.
fn members(reply: &[u8]) -> Vec<Bytes> {
    match decode(reply) {
        Frame::Array(items) | Frame::Set(items) => items
            .into_iter()
            .map(|f| f.as_bytes().cloned().expect("a bulk member"))
            .collect(),
        other => panic!("not a list of members: {other:?}"),
    }
}

/// SPOP and SRANDMEMBER with counts smaller than the set pick at random:
/// what is compared is the shape (how many, whether distinct, whether all
/// belong), and what is left (SPOP's count and the encoding of the set it
/// leaves, which Redis rebuilds when few members stay).
#[test]
fn random_picks_have_redis_s_shapes() {
    let mut pair = Pair::start(&SETUP);
    let sizes = [
        (3usize, "int"),
        (20, "int"),
        (600, "int"),
        (20, "str"),
        (600, "str"),
    ];
    for (size, kind) in sizes {
        let mut counts = vec![1usize, 2, size / 5, size / 3, size / 2, size - 1];
        counts.retain(|&c| c > 0);
        counts.dedup();
        for count in counts {
            for pop in [false, true] {
                pair.reset();
                let universe: Vec<String> = (0..size)
                    .map(|i| match kind {
                        "int" => (i * 3).to_string(),
                        _ => format!("m{i}"),
                    })
                    .collect();
                let mut sadd: Vec<&[u8]> = vec![b"SADD", b"s"];
                sadd.extend(universe.iter().map(|m| m.as_bytes()));
                pair.both(&sadd);
                let count_arg = count.to_string();
                let (cmd, neg): (&[u8], String) = if pop {
                    (b"SPOP", String::new())
                } else {
                    (b"SRANDMEMBER", format!("-{}", count * 3))
                };
                let (r, e) = pair.both(&[cmd, b"s", count_arg.as_bytes()]);
                let shape = |reply: &[u8]| {
                    let got = members(reply);
                    let distinct: BTreeSet<&Bytes> = got.iter().collect();
                    let belong = got
                        .iter()
                        .all(|m| universe.iter().any(|u| u.as_bytes() == &m[..]));
                    (got.len(), distinct.len(), belong, reply[0])
                };
                let context = format!(
                    "{} s {count} on {size} {kind}",
                    String::from_utf8_lossy(cmd)
                );
                assert_eq!(shape(&r), shape(&e), "{context}");
                assert_eq!(shape(&e), (count, count, true, b'*'), "{context}");
                if pop {
                    for probe in [&[&b"SCARD"[..], b"s"][..], &[b"OBJECT", b"ENCODING", b"s"]] {
                        let (r, e) = pair.both(probe);
                        assert_eq!(r, e, "{context}, then {probe:?}");
                    }
                    // What was popped is gone, what was not is there.
                    let popped = members(&e);
                    let (_, left) = pair.both(&[b"SMEMBERS", b"s"]);
                    let left = members(&left);
                    assert_eq!(popped.len() + left.len(), size);
                    assert!(popped.iter().all(|m| !left.contains(m)));
                } else {
                    let (r, e) = pair.both(&[b"SRANDMEMBER", b"s", neg.as_bytes()]);
                    let (rl, el) = (members(&r), members(&e));
                    assert_eq!(rl.len(), el.len(), "{context}, negative");
                    assert_eq!(el.len(), count * 3);
                    assert!(
                        el.iter()
                            .all(|m| universe.iter().any(|u| u.as_bytes() == &m[..]))
                    );
                }
            }
        }
    }
}

/// A whole SSCAN of a hashtable set, on each server, returns every member
/// (cursors differ: each server's table has its own hash function), with
/// and without MATCH, at several COUNTs, while the set grows and shrinks
/// between calls.
#[test]
fn whole_sscans_return_every_member() {
    let mut pair = Pair::start(&SETUP);
    pair.reset();
    let mut sadd: Vec<Vec<u8>> = vec![b"SADD".to_vec(), b"s".to_vec()];
    sadd.extend((0..1000).map(|i| format!("member:{i}").into_bytes()));
    let args = slices(&sadd);
    pair.both(&args);
    for (count, pattern) in [
        (1, None),
        (10, None),
        (100, Some("member:1*")),
        (5000, None),
    ] {
        let mut results = Vec::new();
        for (n, conn) in [&mut pair.redis, &mut pair.ember].into_iter().enumerate() {
            let mut seen = BTreeSet::new();
            let mut cursor = b"0".to_vec();
            let mut calls = 0;
            loop {
                let count = count.to_string();
                let mut args: Vec<&[u8]> =
                    vec![b"SSCAN", b"s", &cursor, b"COUNT", count.as_bytes()];
                if let Some(p) = pattern {
                    args.extend([&b"MATCH"[..], p.as_bytes()]);
                }
                let Frame::Array(parts) = decode(&call(conn, &args)) else {
                    panic!("not a scan reply");
                };
                cursor = parts[0].as_bytes().expect("a cursor").to_vec();
                seen.extend(members(&encode(&parts[1])));
                calls += 1;
                // Members added and removed meanwhile need not be seen;
                // those present throughout must be.
                let churn = format!("churn:{calls}");
                call(conn, &[b"SADD", b"s", churn.as_bytes()]);
                call(conn, &[b"SREM", b"s", churn.as_bytes()]);
                if cursor == b"0" {
                    break;
                }
                assert!(calls < 100_000, "server {n} never ends its scan");
            }
            results.push(seen);
        }
        let want: BTreeSet<Bytes> = (0..1000)
            .map(|i| format!("member:{i}"))
            .filter(|m| pattern.is_none_or(|p| m.starts_with(&p[..p.len() - 1])))
            .map(Bytes::from)
            .collect();
        assert_eq!(results[0], want, "redis, COUNT {count}");
        assert_eq!(results[1], want, "ember, COUNT {count}");
    }
}

/// DUMP of an intset is Redis's to the byte; a hashtable's member order
/// is its table's, so its payload is checked by RESTORE on the other
/// server, both ways.
#[test]
fn dump_and_restore_sets_both_ways() {
    let mut pair = Pair::start(&SETUP);
    pair.reset();
    let mut hundred: Vec<Vec<u8>> = vec![b"SADD".to_vec(), b"hundred".to_vec()];
    hundred.extend((1..=100).map(|i| i.to_string().into_bytes()));
    let hundred = slices(&hundred);
    let mut wide: Vec<Vec<u8>> = vec![b"SADD".to_vec(), b"wide".to_vec()];
    wide.extend((0..50).map(|i| (i * 1_000_003).to_string().into_bytes()));
    let wide = slices(&wide);
    let mut many: Vec<Vec<u8>> = vec![b"SADD".to_vec(), b"many".to_vec()];
    many.extend((0..2000).map(|i| i.to_string().into_bytes()));
    let many = slices(&many);
    let setup: &[&[&[u8]]] = &[
        &[b"SADD", b"small", b"1", b"-2", b"300"],
        &hundred,
        &wide,
        &[b"SADD", b"shrunk", b"1", b"-5000000000"],
        &[b"SREM", b"shrunk", b"-5000000000"],
        &[
            b"SADD",
            b"strings",
            b"a",
            b"bb",
            b"a longer member than a slot holds",
            b"7",
        ],
        &many,
    ];
    for args in setup {
        pair.both(args);
    }
    for key in [&b"small"[..], b"hundred", b"wide", b"shrunk"] {
        let (r, e) = pair.both(&[b"DUMP", key]);
        assert_eq!(r, e, "DUMP {}", String::from_utf8_lossy(key));
    }
    // Each server's payload, restored on both, is the same set with the
    // same encoding on both.
    for key in [&b"small"[..], b"wide", b"shrunk", b"strings", b"many"] {
        let payloads = pair.both(&[b"DUMP", key]);
        for (whose, payload) in [("redis's", &payloads.0), ("ember's", &payloads.1)] {
            let payload = decode(payload).as_bytes().expect("a payload").clone();
            let context = format!("{whose} DUMP of {}", String::from_utf8_lossy(key));
            let (r, e) = pair.both(&[b"RESTORE", b"copy", b"0", &payload, b"REPLACE"]);
            assert_eq!(
                (&r[..], &e[..]),
                (&b"+OK\r\n"[..], &b"+OK\r\n"[..]),
                "{context}"
            );
            let (r, e) = pair.both(&[b"SMEMBERS", b"copy"]);
            let (original, _) = pair.both(&[b"SMEMBERS", key]);
            let sorted_of = |b: &Bytes| normalize(Mode::Sorted, b);
            assert_eq!(sorted_of(&r), sorted_of(&original), "{context}");
            assert_eq!(sorted_of(&e), sorted_of(&original), "{context}");
            let (r, e) = pair.both(&[b"OBJECT", b"ENCODING", b"copy"]);
            assert_eq!(r, e, "{context}");
        }
    }
}

/// LZF as Redis compresses: DUMP payloads of compressible intsets and
/// strings, byte for byte, over many shapes and sizes (Redis compresses a
/// string over 20 bytes when liblzf saves at least 4, and liblzf's choices
/// of matches are its own).
#[test]
fn compressed_payloads_are_redis_s() {
    let mut pair = Pair::start(&SETUP);
    pair.reset();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut values: Vec<Vec<u8>> = Vec::new();
    for len in [
        21, 22, 24, 25, 30, 33, 40, 64, 100, 257, 1000, 8200, 20_000, 70_000,
    ] {
        values.push(b"ab".repeat(len / 2 + 1)[..len].to_vec());
        values.push((0..len).map(|i| b"hello world, "[i % 13]).collect());
        // Noise over a few letters: short matches at every distance.
        for alphabet in [2u64, 4, 16] {
            values.push((0..len).map(|_| b'a' + (next() % alphabet) as u8).collect());
        }
        // Runs and copies from far back.
        values.push(
            (0..len)
                .map(|i| {
                    if (i / 37) % 3 == 0 {
                        b'x'
                    } else {
                        (i % 251) as u8
                    }
                })
                .collect(),
        );
    }
    for (n, value) in values.iter().enumerate() {
        let (r, e) = pair.both(&[b"SET", b"k", value]);
        assert_eq!(r, e);
        let (r, e) = pair.both(&[b"DUMP", b"k"]);
        assert!(
            r == e,
            "string {n} ({} bytes) dumps differently",
            value.len()
        );
    }
    // Intsets whose blobs compress: wide members with many zero bytes.
    for (step, count) in [(65_536i64, 101), (1 << 32, 300), (3, 512), (1 << 20, 40)] {
        let mut sadd: Vec<Vec<u8>> = vec![b"SADD".to_vec(), b"i".to_vec()];
        sadd.extend((0..count).map(|i| (i * step).to_string().into_bytes()));
        let args = slices(&sadd);
        pair.both(&[b"DEL", b"i"]);
        pair.both(&args);
        let (r, e) = pair.both(&[b"DUMP", b"i"]);
        assert!(
            r == e,
            "intset of {count} multiples of {step} dumps differently"
        );
    }
}

/// A set loaded from a file or a payload takes the encoding Redis would
/// give it under the configured `set-max-intset-entries`, whatever limit
/// it was written under: an intset over the limit becomes a hashtable,
/// and a hashtable of few enough integers an intset.
#[test]
fn loaded_sets_follow_the_configured_limit() {
    let mut pair = Pair::start(&SETUP);
    let mut big: Vec<Vec<u8>> = vec![b"SADD".to_vec(), b"big".to_vec()];
    big.extend((0..600).map(|i| i.to_string().into_bytes()));
    let big = slices(&big);
    let keys: [&[u8]; 4] = [b"a", b"big", b"b", b"h0"];
    pair.reset();
    for args in [
        &[&b"SADD"[..], b"a", b"1", b"2", b"3", b"4", b"5"][..],
        &big,
        &[b"SADD", b"b", b"1", b"2", b"x"],
        &[b"CONFIG", b"SET", b"set-max-intset-entries", b"0"],
        &[b"SADD", b"h0", b"1", b"2", b"3"],
    ] {
        pair.both(args);
    }
    pair.same_encodings(&keys, "as written");
    let limits: [&[&str]; 4] = [
        &["CONFIG SET set-max-intset-entries 3"],
        &["CONFIG SET set-max-intset-entries 1000"],
        &["CONFIG SET set-max-intset-entries 512"],
        &["CONFIG SET set-max-intset-entries 0"],
    ];
    pair.reload_under(&limits, &keys);
    // Payloads: the same rule under each limit.
    pair.run(&[
        "CONFIG SET set-max-intset-entries 0",
        "SADD h1 1 2 3",
        "CONFIG SET set-max-intset-entries 512",
        "SADD i1 1 2 3 4",
    ]);
    pair.restore_under(&limits[..3], &[b"h1", b"i1", b"big", b"b"]);
}

/// INFO's keyspace hits and misses count the set commands' reads as
/// Redis's `lookupKeyRead` does (the sources of the STORE forms too; the
/// writes' own lookups not at all).
#[test]
fn keyspace_hits_and_misses_count_like_redis() {
    let mut pair = Pair::start(&SETUP);
    pair.reset();
    let script = [
        "SADD s 1 2 3",
        "SADD h a b",
        "SET str v",
        "SISMEMBER s 1",
        "SISMEMBER none 1",
        "SMISMEMBER s 1 2",
        "SCARD none",
        "SMEMBERS h",
        "SRANDMEMBER s",
        "SRANDMEMBER none 2",
        "SSCAN s 0",
        "SSCAN none 0",
        "SINTER s h none",
        "SINTERCARD 2 s none",
        "SUNION s s none",
        "SDIFF none s",
        "SINTERSTORE d s h",
        "SUNIONSTORE d s none",
        "SDIFFSTORE d s h",
        "SISMEMBER str 1",
        "SINTER s str",
        "SPOP none",
        "SPOP s 0",
        "SMOVE none s 1",
        "SMOVE s none 9",
        "SREM none 1",
        "SADD s 4",
    ];
    pair.check_info("stats", &["keyspace_hits", "keyspace_misses"], &script);
}

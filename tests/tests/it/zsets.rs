//! Sorted sets against a real redis-server 7.0: every sorted-set
//! command's options, errors and edge cases, replies compared byte for
//! byte in RESP2 and RESP3, encodings (OBJECT ENCODING) as they change
//! under the listpack limits, DUMP payloads byte for byte and RESTORE
//! both ways.

use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use ember_tests::{call, read_reply};
use resp::Frame;

use crate::diff::{Mode, Pair, Setup, decode, slices};

/// Ember with a directory of its own for DEBUG RELOAD's file; each script
/// starts from the default listpack limits.
const SETUP: Setup = Setup {
    redis: &["--enable-debug-command", "local"],
    ember: &["save \"\"", "appendonly no"],
    dir: Some("zsets"),
    reset: &[
        "CONFIG SET zset-max-listpack-entries 128",
        "CONFIG SET zset-max-listpack-value 64",
    ],
    rule,
};

/// ZSCAN's page (of a big set, in its table's order) with its cursor kept
/// and its members compared as a set of pairs; everything else byte for
/// byte (a sorted set's replies are in its order).
fn rule(args: &[&[u8]]) -> Mode {
    if args[0].eq_ignore_ascii_case(b"zscan") {
        Mode::ScanPairs
    } else {
        Mode::Exact
    }
}

#[test]
fn zset_basic_commands_match_redis() {
    let mut pair = Pair::start(&SETUP);
    let cases: &[&[&str]] = &[
        // ZADD's options and their errors, in Redis's order.
        &[
            "ZADD",
            "ZADD z",
            "ZADD z 1",
            "ZADD z 1 a 2",
            "ZADD z nx",
            "ZADD z nx xx 1 a",
            "ZADD z gt nx 1 a",
            "ZADD z lt nx 1 a",
            "ZADD z gt lt 1 a",
            "ZADD z incr 1 a 2 b",
            "ZADD z nx xx 1 a 2",
            "ZADD z x a",
            "ZADD z 1 a x b",
            "ZADD z nan a",
            "ZADD z xx 1 a",
            "ZADD z xx incr 1 a",
            "EXISTS z",
            "ZADD z 1 a 2 b 3 c",
            "ZADD z 1 a 5 b",
            "ZADD z ch 1 a 6 b 7 d",
            "ZADD z nx 10 a 11 e",
            "ZADD z xx ch 10 a 11 f",
            "ZADD z gt ch 0 a 20 b",
            "ZADD z lt ch 100 a 0 b",
            "ZADD z gt 1 new",
            "ZADD z incr 5 a",
            "ZADD z incr nx 5 a",
            "ZADD z incr xx 5 zz",
            "ZADD z incr gt -1 a",
            "ZADD z incr lt -1 a",
            "ZADD z +inf inf -inf ninf 1e300 big 0.1 tenth -0 mzero",
            "ZADD z incr -inf inf",
            "ZSCORE z inf",
            "ZRANGE z 0 -1 WITHSCORES",
            "ZADD z INCR 1.5 x",
            "ZADD z 0x10 hex",
            "ZADD z \" 1\" sp",
            "ZADD z 1e400 over",
            "ZADD z inF upper",
            "ZSCORE z hex",
            "ZSCORE z upper",
            "SET str v",
            "ZADD str 1 a",
            "ZADD str xx 1 a",
            "ZINCRBY str 1 a",
            "ZADD z 1",
        ],
        // ZINCRBY, ZREM, ZCARD, ZSCORE, ZMSCORE, ZRANK, ZREVRANK.
        &[
            "ZINCRBY z",
            "ZINCRBY z 1 a b",
            "ZINCRBY z x a",
            "ZINCRBY z 1 a",
            "ZINCRBY z 2.5 a",
            "ZINCRBY z -3.5 a",
            "ZINCRBY z inf a",
            "ZINCRBY z -inf a",
            "ZSCORE z a",
            "ZADD z 1 b 2 c 3 d",
            "ZCARD z",
            "ZCARD none",
            "ZCARD",
            "ZSCORE z b",
            "ZSCORE z nope",
            "ZSCORE none a",
            "ZMSCORE z b nope c",
            "ZMSCORE none a b",
            "ZMSCORE z",
            "ZRANK z b",
            "ZRANK z a",
            "ZRANK z nope",
            "ZRANK none a",
            "ZREVRANK z b",
            "ZREVRANK z a",
            "ZRANK z",
            "ZREM z",
            "ZREM z nope",
            "ZREM z b b c nope",
            "ZREM none a",
            "ZREM z a d",
            "EXISTS z",
            "SET str v",
            "ZREM str a",
            "ZCARD str",
            "ZSCORE str a",
            "ZMSCORE str a",
            "ZRANK str a",
            "ZCOUNT str 0 1",
            "ZLEXCOUNT str - +",
            "ZRANGE str 0 1",
            "TYPE str",
            "ZADD t 1 a",
            "TYPE t",
            "OBJECT ENCODING t",
        ],
        // ZCOUNT and ZLEXCOUNT: ranges, exclusive ends, bad ends (read
        // before the key).
        &[
            "ZADD z 1 a 2 b 3 c 4 d 5 e",
            "ZCOUNT z 2 4",
            "ZCOUNT z (2 4",
            "ZCOUNT z (2 (4",
            "ZCOUNT z -inf +inf",
            "ZCOUNT z 4 2",
            "ZCOUNT z (3 (3",
            "ZCOUNT z x 1",
            "ZCOUNT none x 1",
            "ZCOUNT none 0 1",
            "ZCOUNT z \"\" 3",
            "ZCOUNT z ( 3",
            "ZCOUNT z 1e1 inf",
            "ZCOUNT z 1 nan",
            "ZADD l 0 a 0 b 0 c 0 d 0 e",
            "ZLEXCOUNT l - +",
            "ZLEXCOUNT l [b [d",
            "ZLEXCOUNT l (b (d",
            "ZLEXCOUNT l + -",
            "ZLEXCOUNT l b d",
            "ZLEXCOUNT none b d",
            "ZLEXCOUNT none - +",
            "ZLEXCOUNT l [a +",
            "ZLEXCOUNT l (e +",
            "ZLEXCOUNT l - (a",
        ],
        // Encodings and the listpack limits.
        &[
            "CONFIG GET zset-max-listpack-entries",
            "CONFIG SET zset-max-listpack-entries 3",
            "ZADD z 1 a 2 b 3 c",
            "OBJECT ENCODING z",
            "ZADD z 4 d",
            "OBJECT ENCODING z",
            "ZREM z a b c",
            "OBJECT ENCODING z",
            "CONFIG SET zset-max-ziplist-value 4",
            "ZADD v 1 abcd",
            "OBJECT ENCODING v",
            "ZADD v 1 abcde",
            "OBJECT ENCODING v",
            "ZADD w 1 abcdefgh",
            "OBJECT ENCODING w",
            "CONFIG SET zset-max-listpack-entries 0",
            "ZADD y 1 a",
            "OBJECT ENCODING y",
            "ZRANGE y 0 -1 WITHSCORES",
        ],
        // COMMAND GETKEYS finds the keys of the movable-key commands.
        &[
            "COMMAND GETKEYS ZUNIONSTORE target 3 a b c WEIGHTS 1 2 3",
            "COMMAND GETKEYS ZUNION 2 a b WITHSCORES",
            "COMMAND GETKEYS ZDIFFSTORE d 1 a",
            "COMMAND GETKEYS ZMPOP 2 a b MIN",
            "COMMAND GETKEYS BZMPOP 0 2 a b MIN COUNT 2",
            "COMMAND GETKEYS ZINTERCARD 2 a b LIMIT 1",
            "COMMAND GETKEYS LMPOP 2 a b LEFT",
            "COMMAND GETKEYS SINTERCARD 2 a b",
            "COMMAND GETKEYS ZRANGESTORE d s 0 1",
            "COMMAND GETKEYS BZPOPMIN a b 0",
            "COMMAND GETKEYS ZADD z 1 a",
        ],
        // RESP3: doubles.
        &[
            "~ HELLO 3",
            "ZADD z 1 a 2.5 b inf c -inf d",
            "ZSCORE z b",
            "ZSCORE z c",
            "ZSCORE z nope",
            "ZMSCORE z a nope d",
            "ZINCRBY z 1 a",
            "ZADD z incr 1 a",
            "ZADD z incr nx 1 a",
            "ZRANK z nope",
        ],
    ];
    for case in cases {
        pair.check(case);
    }
}

#[test]
fn zset_ranges_match_redis() {
    let mut pair = Pair::start(&SETUP);
    let setup = [
        "ZADD z 1 a 2 b 3 c 4 d 5 e 6 f 0.1 g -inf h +inf i",
        "ZADD l 0 alpha 0 bar 0 cool 0 down 0 elephant 0 foo 0 great 0 hill 0 omega",
    ];
    let ranges = [
        "ZRANGE z 0 -1",
        "ZRANGE z 0 -1 WITHSCORES",
        "ZRANGE z 2 4 withscores",
        "ZRANGE z -3 -1",
        "ZRANGE z 5 2",
        "ZRANGE z 100 200",
        "ZRANGE z -100 100",
        "ZRANGE z 0 -1 REV",
        "ZRANGE z 0 2 REV WITHSCORES",
        "ZRANGE z x 1",
        "ZRANGE z 0 1 LIMIT 0 1",
        "ZRANGE z 0 1 LIMIT 5 -1",
        "ZREVRANGE z 0 3 LIMIT 1 -1 WITHSCORES",
        "ZRANGE z 0 1 foo",
        "ZRANGE z 0 1 LIMIT 0",
        "ZRANGE z (1 5 BYSCORE",
        "ZRANGE z 1 5 BYSCORE WITHSCORES",
        "ZRANGE z 5 1 BYSCORE REV WITHSCORES",
        "ZRANGE z -inf +inf BYSCORE LIMIT 1 3",
        "ZRANGE z -inf +inf BYSCORE LIMIT 1 -1",
        "ZRANGE z -inf +inf BYSCORE LIMIT -1 3",
        "ZRANGE z -inf +inf BYSCORE LIMIT 0 0",
        "ZRANGE z +inf -inf BYSCORE REV LIMIT 2 2 WITHSCORES",
        "ZRANGE z x 5 BYSCORE",
        "ZRANGE z 0 5 BYSCORE BYLEX",
        "ZRANGE z 0 5 BYSCORE REV REV",
        "ZRANGE z 0 5 BYSCORE LIMIT a 1",
        "ZRANGE l [b [f BYLEX",
        "ZRANGE l - + BYLEX LIMIT 2 3",
        "ZRANGE l + - BYLEX REV",
        "ZRANGE l [f (b BYLEX REV LIMIT 1 10",
        "ZRANGE l b f BYLEX",
        "ZRANGE l - + BYLEX WITHSCORES",
        "ZRANGE none 0 -1",
        "ZRANGE none 0 -1 WITHSCORES",
        "ZRANGE none x y",
        "ZRANGE none 0 1 BYSCORE LIMIT 0 1",
        "ZREVRANGE z 0 -1",
        "ZREVRANGE z 0 3 WITHSCORES",
        "ZREVRANGE z 0 3 REV",
        "ZREVRANGE z 0 3 BYSCORE",
        "ZREVRANGE z 0 3 LIMIT 0 1",
        "ZRANGEBYSCORE z 1 5",
        "ZRANGEBYSCORE z (1 (5 WITHSCORES",
        "ZRANGEBYSCORE z -inf inf LIMIT 2 2",
        "ZRANGEBYSCORE z -inf inf WITHSCORES LIMIT 2 2",
        "ZRANGEBYSCORE z 1 5 REV",
        "ZRANGEBYSCORE z 1 5 BYSCORE",
        "ZRANGEBYSCORE z a 5",
        "ZREVRANGEBYSCORE z 5 1",
        "ZREVRANGEBYSCORE z 5 1 WITHSCORES LIMIT 1 2",
        "ZREVRANGEBYSCORE z 1 5",
        "ZREVRANGEBYSCORE z +inf -inf",
        "ZRANGEBYLEX l [b [f",
        "ZRANGEBYLEX l - + LIMIT 1 2",
        "ZRANGEBYLEX l - + WITHSCORES",
        "ZRANGEBYLEX l a b",
        "ZREVRANGEBYLEX l [f [b",
        "ZREVRANGEBYLEX l + - LIMIT 0 3",
        "ZREVRANGEBYLEX l [b [f",
        "ZRANGEBYLEX none - +",
        "ZRANGEBYSCORE none 0 1",
        "ZRANGEBYSCORE str 0 1",
        "ZRANGE z 0 1 WITHSCORES WITHSCORES",
    ];
    for big in [false, true] {
        let mut lines: Vec<&str> = Vec::new();
        if big {
            lines.push("CONFIG SET zset-max-listpack-entries 1");
        }
        lines.extend(setup);
        lines.push("SET str v");
        lines.push("OBJECT ENCODING z");
        lines.extend(ranges);
        lines.push("~ HELLO 3");
        lines.extend(ranges);
        pair.check(&lines);
    }
}

#[test]
fn zset_range_writes_match_redis() {
    let mut pair = Pair::start(&SETUP);
    let cases: &[&[&str]] = &[
        &[
            "ZADD z 1 a 2 b 3 c 4 d 5 e",
            "ZRANGESTORE d z 0 -1",
            "ZRANGE d 0 -1 WITHSCORES",
            "OBJECT ENCODING d",
            "ZRANGESTORE d z 1 3 REV",
            "ZRANGE d 0 -1 WITHSCORES",
            "ZRANGESTORE d z (1 4 BYSCORE LIMIT 1 2",
            "ZRANGE d 0 -1 WITHSCORES",
            "ZRANGESTORE d z 5 1 BYSCORE REV",
            "ZRANGE d 0 -1 WITHSCORES",
            "ZRANGESTORE d z [a [c BYLEX",
            "ZRANGESTORE d z 0 -1 WITHSCORES",
            "ZRANGESTORE d z 0 -1 LIMIT 0 1",
            "ZRANGESTORE d z 10 20",
            "EXISTS d",
            "ZRANGESTORE d none 0 -1",
            "SET str v",
            "ZRANGESTORE d str 0 -1",
            "ZRANGESTORE str z 0 1",
            "TYPE str",
            "ZRANGESTORE z z 1 2",
            "ZRANGE z 0 -1",
            "ZRANGESTORE d z",
            "SET d v EX 100",
            "ZRANGESTORE d z 0 -1",
            "TTL d",
        ],
        &[
            "ZADD z 1 a 2 b 3 c 4 d 5 e",
            "ZREMRANGEBYRANK z 1 2",
            "ZRANGE z 0 -1",
            "ZREMRANGEBYRANK z -1 -1",
            "ZREMRANGEBYRANK z 5 10",
            "ZREMRANGEBYRANK z x 1",
            "ZREMRANGEBYRANK none x 1",
            "ZREMRANGEBYRANK none 0 1",
            "ZREMRANGEBYRANK z 0 -1",
            "EXISTS z",
            "ZADD z 1 a 2 b 3 c 4 d 5 e",
            "ZREMRANGEBYSCORE z (1 3",
            "ZREMRANGEBYSCORE z x 3",
            "ZREMRANGEBYSCORE none x 3",
            "ZREMRANGEBYSCORE z 10 20",
            "ZRANGE z 0 -1",
            "ZREMRANGEBYSCORE z -inf +inf",
            "EXISTS z",
            "ZADD l 0 a 0 b 0 c 0 d",
            "ZREMRANGEBYLEX l (a [c",
            "ZREMRANGEBYLEX l a c",
            "ZREMRANGEBYLEX none a c",
            "ZRANGE l 0 -1",
            "ZREMRANGEBYLEX l - +",
            "EXISTS l",
            "SET str v",
            "ZREMRANGEBYRANK str 0 1",
            "ZREMRANGEBYSCORE str 0 1",
            "ZREMRANGEBYLEX str - +",
            "ZREMRANGEBYRANK z 0",
        ],
    ];
    for big in [false, true] {
        for case in cases {
            let mut lines: Vec<&str> = Vec::new();
            if big {
                lines.push("CONFIG SET zset-max-listpack-entries 2");
            }
            lines.extend(case.iter());
            pair.check(&lines);
        }
    }
}

/// DUMP payloads are Redis's to the byte in both encodings (a listpack
/// as Redis holds it; a skiplist written from the highest score down),
/// and each server's payload restores on the other as the same set.
#[test]
fn dump_and_restore_zsets_both_ways() {
    let mut pair = Pair::start(&SETUP);
    pair.reset();
    let mut many: Vec<Vec<u8>> = vec![b"ZADD".to_vec(), b"many".to_vec()];
    for i in 0..300 {
        many.push(format!("{}", (i * 7919) % 1000).into_bytes());
        many.push(format!("member:{i}").into_bytes());
    }
    let many = slices(&many);
    let setup: &[&[&[u8]]] = &[
        &[
            b"ZADD", b"small", b"1", b"a", b"2.5", b"b", b"-3", b"c", b"1e17", b"d",
        ],
        &[
            b"ZADD", b"odd", b"inf", b"a", b"-inf", b"b", b"0.1", b"c", b"-0", b"d",
        ],
        &[
            b"ZADD",
            b"long",
            b"1",
            b"a member longer than sixty-four bytes, so that the set is a skiplist",
        ],
        &many,
    ];
    for args in setup {
        pair.both(args);
    }
    for key in [&b"small"[..], b"odd", b"long", b"many"] {
        let (r, e) = pair.both(&[b"OBJECT", b"ENCODING", key]);
        assert_eq!(r, e, "OBJECT ENCODING {}", String::from_utf8_lossy(key));
        let (r, e) = pair.both(&[b"DUMP", key]);
        assert_eq!(r, e, "DUMP {}", String::from_utf8_lossy(key));
        let payloads = (r, e);
        for (whose, payload) in [("redis's", &payloads.0), ("ember's", &payloads.1)] {
            let payload = decode(payload).as_bytes().expect("a payload").clone();
            let context = format!("{whose} DUMP of {}", String::from_utf8_lossy(key));
            let (r, e) = pair.both(&[b"RESTORE", b"copy", b"0", &payload, b"REPLACE"]);
            assert_eq!(
                (&r[..], &e[..]),
                (&b"+OK\r\n"[..], &b"+OK\r\n"[..]),
                "{context}"
            );
            for args in [
                &[&b"ZRANGE"[..], b"copy", b"0", b"-1", b"WITHSCORES"][..],
                &[b"OBJECT", b"ENCODING", b"copy"],
            ] {
                let (r, e) = pair.both(args);
                assert_eq!(r, e, "{context}");
            }
        }
    }
}

#[test]
fn zset_pops_and_algebra_match_redis() {
    let mut pair = Pair::start(&SETUP);
    let cases: &[&[&str]] = &[
        // ZPOPMIN, ZPOPMAX: counts, errors, the last pop deletes the key.
        &[
            "ZADD z 1 a 2 b 3 c 4 d 5 e",
            "ZPOPMIN z",
            "ZPOPMAX z",
            "ZPOPMIN z 2",
            "ZPOPMIN z 0",
            "ZPOPMIN z -1",
            "ZPOPMIN z x",
            "ZPOPMIN z 1 2",
            "ZPOPMAX z 10",
            "EXISTS z",
            "ZPOPMIN z",
            "ZPOPMIN z 3",
            "ZPOPMIN none 0",
            "ZPOPMIN none x",
            "SET str v",
            "ZPOPMIN str",
            "ZPOPMAX str 0",
            "ZADD z 1 a 2 b 3 c",
            "~ HELLO 3",
            "ZPOPMIN z",
            "ZPOPMAX z 1",
            "ZPOPMAX z 0",
            "ZPOPMIN none 2",
        ],
        // ZMPOP.
        &[
            "ZMPOP",
            "ZMPOP 1",
            "ZMPOP 0 z MIN",
            "ZMPOP x z MIN",
            "ZMPOP 2 z MIN",
            "ZMPOP 1 z LEFT",
            "ZMPOP 1 z MIN COUNT",
            "ZMPOP 1 z MIN COUNT 0",
            "ZMPOP 1 z MIN COUNT x",
            "ZMPOP 1 z MIN COUNT 1 COUNT 1",
            "ZMPOP 1 z MIN foo",
            "ZMPOP 2 none z MIN",
            "ZADD z 1 a 2 b 3 c",
            "ZADD y 9 q",
            "ZMPOP 2 none z MIN",
            "ZMPOP 2 y z max COUNT 5",
            "ZMPOP 2 y z MAX COUNT 5",
            "EXISTS y z",
            "SET str v",
            "ZMPOP 2 none str MIN",
            "ZADD z 1 a 2 b 3 c",
            "ZMPOP 2 z str MIN",
            "~ HELLO 3",
            "ZMPOP 1 z MAX COUNT 2",
            "ZMPOP 1 none MAX",
        ],
        // ZRANDMEMBER: errors and missing keys.
        &[
            "ZRANDMEMBER",
            "ZRANDMEMBER none",
            "ZRANDMEMBER none 5",
            "ZRANDMEMBER none -5 WITHSCORES",
            "ZRANDMEMBER none x",
            "ZRANDMEMBER none 1 foo",
            "ZRANDMEMBER none 1 withscores x",
            "ZRANDMEMBER none -9223372036854775808",
            "ZRANDMEMBER none 9223372036854775807 WITHSCORES",
            "ZRANDMEMBER none -9223372036854775807 WITHSCORES",
            "ZADD z 1 a",
            "ZRANDMEMBER z",
            "ZRANDMEMBER z 0",
            "ZRANDMEMBER z 0 WITHSCORES",
            "ZRANDMEMBER z 1",
            "ZRANDMEMBER z -3",
            "ZRANDMEMBER z -3 WITHSCORES",
            "ZRANDMEMBER z 5 WITHSCORES",
            "SET str v",
            "ZRANDMEMBER str",
            "ZRANDMEMBER str 1",
            "~ HELLO 3",
            "ZRANDMEMBER z -2 WITHSCORES",
            "ZRANDMEMBER z 2 WITHSCORES",
            "ZRANDMEMBER none",
        ],
        // ZSCAN.
        &[
            "ZSCAN none 0",
            "ZSCAN none x",
            "ZSCAN none 0 COUNT 0",
            "ZADD z 1 a 2.5 b 100000000000000000 c -inf d",
            "ZSCAN z 0",
            "ZSCAN z 0 MATCH a*",
            "ZSCAN z 0 MATCH *",
            "ZSCAN z 0 COUNT 0",
            "ZSCAN z 0 COUNT x",
            "ZSCAN z 0 foo",
            "ZSCAN z 0 COUNT",
            "ZSCAN z abc",
            "SET str v",
            "ZSCAN str 0",
            "~ HELLO 3",
            "ZSCAN z 0",
        ],
        // ZUNION, ZINTER, ZDIFF, ZINTERCARD and the STORE forms.
        &[
            "ZADD a 1 x 2 y 3 z",
            "ZADD b 10 y 20 z 30 w",
            "SADD s y w q",
            "SADD i 1 2",
            "SET str v",
            "ZUNION 2 a b",
            "ZUNION 2 a b WITHSCORES",
            "ZUNION 3 a b s WITHSCORES",
            "ZUNION 2 a b WEIGHTS 2 0.5 WITHSCORES",
            "ZUNION 2 a b AGGREGATE MIN WITHSCORES",
            "ZUNION 2 a b AGGREGATE max WITHSCORES",
            "ZUNION 2 a b AGGREGATE avg",
            "ZUNION 2 a b WEIGHTS 1",
            "ZUNION 2 a b WEIGHTS 1 x",
            "ZUNION 2 a b WEIGHTS inf -inf WITHSCORES",
            "ZUNION 0 a",
            "ZUNION -1 a",
            "ZUNION x a",
            "ZUNION 3 a b",
            "ZUNION 2 a str",
            "ZUNION 2 a str foo",
            "ZUNION 2 a none WITHSCORES",
            "ZUNION 1 i WITHSCORES",
            "ZINTER 2 a b WITHSCORES",
            "ZINTER 2 a s WITHSCORES",
            "ZINTER 2 a none",
            "ZINTER 2 a b WEIGHTS 1 2 AGGREGATE MAX WITHSCORES",
            "ZDIFF 2 a b WITHSCORES",
            "ZDIFF 2 b s",
            "ZDIFF 2 a a",
            "ZDIFF 1 none",
            "ZDIFF 2 a b WEIGHTS 1 2",
            "ZDIFF 2 a b AGGREGATE MIN",
            "ZINTERCARD 2 a b",
            "ZINTERCARD 2 a b LIMIT 1",
            "ZINTERCARD 2 a b LIMIT 0",
            "ZINTERCARD 2 a b LIMIT -1",
            "ZINTERCARD 2 a b WITHSCORES",
            "ZINTERCARD 0 a",
            "ZINTERCARD 3 a b",
            "ZINTERCARD 2 a str",
            "ZUNIONSTORE d 2 a b",
            "ZRANGE d 0 -1 WITHSCORES",
            "OBJECT ENCODING d",
            "ZUNIONSTORE d 2 a b WITHSCORES",
            "ZINTERSTORE d 2 a b WEIGHTS 2 3",
            "ZRANGE d 0 -1 WITHSCORES",
            "ZDIFFSTORE d 2 a b",
            "ZRANGE d 0 -1 WITHSCORES",
            "ZDIFFSTORE d 2 a a",
            "EXISTS d",
            "ZINTERSTORE str 2 a none",
            "EXISTS str",
            "ZUNIONSTORE a 2 a b",
            "ZRANGE a 0 -1 WITHSCORES",
            "ZUNIONSTORE d 0 a",
            "ZDIFFSTORE d 0 a",
            "~ HELLO 3",
            "ZUNION 2 a b WITHSCORES",
            "ZINTER 2 a b",
        ],
    ];
    for big in [false, true] {
        for case in cases {
            let mut lines: Vec<&str> = Vec::new();
            if big {
                lines.push("CONFIG SET zset-max-listpack-entries 1");
            }
            lines.extend(case.iter());
            pair.check(&lines);
        }
    }
}

/// ZRANDMEMBER's picks: the right number, members of the set with their
/// scores, distinct when the count is positive, in each encoding.
#[test]
fn random_members_have_redis_s_shapes() {
    let mut pair = Pair::start(&SETUP);
    for big in [false, true] {
        pair.reset();
        let mut zadd: Vec<Vec<u8>> = vec![b"ZADD".to_vec(), b"z".to_vec()];
        let n = if big { 500 } else { 50 };
        for i in 0..n {
            zadd.push(i.to_string().into_bytes());
            zadd.push(format!("m{i}").into_bytes());
        }
        let zadd = slices(&zadd);
        pair.both(&zadd);
        for count in [1i64, 5, 20, 49, 50, 1000, -1, -5, -3000] {
            let c = count.to_string();
            let (r, e) = pair.both(&[b"ZRANDMEMBER", b"z", c.as_bytes(), b"WITHSCORES"]);
            for (who, reply) in [("redis", r), ("ember", e)] {
                let Frame::Array(items) = decode(&reply) else {
                    panic!("{who}: not an array");
                };
                let want = if count > 0 { count.min(n) } else { -count } as usize;
                assert_eq!(items.len(), want * 2, "{who} ZRANDMEMBER {count}");
                let mut seen = std::collections::BTreeSet::new();
                for pair in items.chunks(2) {
                    let m =
                        String::from_utf8_lossy(pair[0].as_bytes().expect("a member")).into_owned();
                    let s =
                        String::from_utf8_lossy(pair[1].as_bytes().expect("a score")).into_owned();
                    assert_eq!(format!("m{s}"), m, "{who}: score of {m}");
                    if count > 0 {
                        assert!(seen.insert(m), "{who}: a repeat with count {count}");
                    }
                }
            }
        }
    }
}

/// Sends a command without waiting for its reply.
fn send(stream: &mut TcpStream, args: &[&str]) {
    use std::io::Write;
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let mut request = BytesMut::new();
    resp::encode_command(&mut request, &args);
    stream.write_all(&request).expect("write");
}

/// The number of blocked clients INFO reports.
fn blocked_clients(conn: &mut TcpStream) -> usize {
    let info = call(conn, &[b"INFO", b"clients"]);
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) until `n` clients are blocked.
fn until_blocked(conn: &mut TcpStream, n: usize) {
    for _ in 0..1000 {
        if blocked_clients(conn) == n {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("{n} clients never blocked");
}

/// BZPOPMIN, BZPOPMAX and BZMPOP on both servers: answered at once when a
/// key holds a sorted set, the null array inside MULTI, errors in Redis's
/// order, and, when blocked, served by a ZADD (not by a push of the other
/// type), oldest first, with the same replies in RESP2 and RESP3.
#[test]
fn blocking_pops_match_redis() {
    let mut pair = Pair::start(&SETUP);
    pair.check(&[
        "BZPOPMIN",
        "BZPOPMIN z",
        "BZPOPMIN z x",
        "BZPOPMIN z -1",
        "BZMPOP 0",
        "BZMPOP 0 1 z",
        "BZMPOP x 1 z MIN",
        "BZMPOP -1 1 z MIN",
        "BZMPOP 0 0 z MIN",
        "BZMPOP 0 1 z LEFT",
        "BZMPOP 0 1 z MIN COUNT 0",
        "ZADD z 1 a 2 b 3 c",
        "ZADD y 5 q",
        "BZPOPMIN none z 0",
        "BZPOPMAX z y 0",
        "BZMPOP 0 2 none z MAX COUNT 10",
        "EXISTS z",
        "SET str v",
        "BZPOPMIN str 0",
        "BZMPOP 0 1 str MIN",
        "MULTI",
        "BZPOPMIN none 0",
        "BZMPOP 0 1 none MIN",
        "BZPOPMAX y 0",
        "EXEC",
        "~ HELLO 3",
        "ZADD z 1 a 2 b",
        "BZPOPMIN z 0",
        "BZMPOP 1 1 z MIN COUNT 3",
    ]);
    for proto in ["2", "3"] {
        pair.reset();
        let mut results: Vec<Vec<Bytes>> = Vec::new();
        for which in 0..2 {
            let connect = || {
                if which == 0 {
                    pair.connect_redis()
                } else {
                    pair.connect_ember()
                }
            };
            let mut conn = connect();
            let mut blocked: Vec<TcpStream> = Vec::new();
            let waits: [&[&str]; 4] = [
                &["BZPOPMIN", "k1", "k2", "0"],
                &["BZMPOP", "0", "2", "k2", "k1", "MAX", "COUNT", "2"],
                &["BZPOPMAX", "k1", "0"],
                &["BLPOP", "k1", "0"],
            ];
            for (i, args) in waits.iter().enumerate() {
                let mut c = connect();
                call(&mut c, &[b"HELLO", proto.as_bytes()]);
                send(&mut c, args);
                until_blocked(&mut conn, i + 1);
                blocked.push(c);
            }
            // A list on k1 serves the list's client only.
            call(&mut conn, &[b"RPUSH", b"k1", b"x"]);
            let mut replies = vec![read_reply(&mut blocked[3])];
            until_blocked(&mut conn, 3);
            // Three members: the first two clients take them all, the
            // third waits for the next.
            call(
                &mut conn,
                &[b"ZADD", b"k1", b"1", b"a", b"2", b"b", b"3", b"c"],
            );
            replies.push(read_reply(&mut blocked[0]));
            replies.push(read_reply(&mut blocked[1]));
            until_blocked(&mut conn, 1);
            call(&mut conn, &[b"EXISTS", b"k1"]);
            call(&mut conn, &[b"ZADD", b"k1", b"1.5", b"z"]);
            replies.push(read_reply(&mut blocked[2]));
            results.push(replies);
        }
        assert_eq!(results[0], results[1], "RESP{proto}: redis, then ember");
    }
}

/// A sorted set loaded from a file or a payload takes the encoding Redis
/// gives it under the configured `zset-max-listpack-*`: a listpack over
/// the entries limit becomes a skiplist, a skiplist that fits becomes a
/// listpack.
#[test]
fn loaded_zsets_follow_the_configured_limits() {
    let mut pair = Pair::start(&SETUP);
    let mut big: Vec<Vec<u8>> = vec![b"ZADD".to_vec(), b"big".to_vec()];
    for i in 0..200 {
        big.push(i.to_string().into_bytes());
        big.push(format!("m{i}").into_bytes());
    }
    let big = slices(&big);
    let keys: [&[u8]; 4] = [b"small", b"big", b"long", b"s0"];
    pair.reset();
    let long = "x".repeat(100);
    for args in [
        &[&b"ZADD"[..], b"small", b"1", b"a", b"2", b"b", b"3", b"c"][..],
        &big,
        &[b"ZADD", b"long", b"1", long.as_bytes(), b"2", b"y"],
        &[b"CONFIG", b"SET", b"zset-max-listpack-entries", b"0"],
        &[b"ZADD", b"s0", b"1", b"a", b"2", b"b"],
    ] {
        pair.both(args);
    }
    pair.same_encodings(&keys, "as written");
    pair.reload_under(
        &[
            &[
                "CONFIG SET zset-max-listpack-entries 2",
                "CONFIG SET zset-max-listpack-value 64",
            ],
            &[
                "CONFIG SET zset-max-listpack-entries 1000",
                "CONFIG SET zset-max-listpack-value 200",
            ],
            &[
                "CONFIG SET zset-max-listpack-entries 128",
                "CONFIG SET zset-max-listpack-value 64",
            ],
            &[
                "CONFIG SET zset-max-listpack-entries 0",
                "CONFIG SET zset-max-listpack-value 64",
            ],
        ],
        &keys,
    );
    pair.run(&[
        "CONFIG SET zset-max-listpack-entries 128",
        "CONFIG SET zset-max-listpack-value 64",
        "ZADD p1 1 a 2 b 3 c",
        "CONFIG SET zset-max-listpack-entries 0",
        "ZADD p2 1 a 2 b 3 c",
    ]);
    pair.restore_under(
        &[
            &["CONFIG SET zset-max-listpack-entries 2"],
            &["CONFIG SET zset-max-listpack-entries 1000"],
            &["CONFIG SET zset-max-listpack-entries 128"],
        ],
        &[b"p1", b"p2", b"big", b"long"],
    );
}

/// INFO's keyspace hits and misses count the sorted-set commands' reads
/// as Redis's `lookupKeyRead` does (the sources of ZRANGESTORE and the
/// STORE forms too; writes' and pops' own lookups not at all).
#[test]
fn keyspace_hits_and_misses_count_like_redis() {
    let mut pair = Pair::start(&SETUP);
    pair.reset();
    let script = [
        "ZADD z 1 a 2 b 3 c",
        "SADD s a",
        "SET str v",
        "ZSCORE z a",
        "ZSCORE none a",
        "ZMSCORE z a b",
        "ZCARD none",
        "ZRANK z a",
        "ZCOUNT z 0 5",
        "ZLEXCOUNT none - +",
        "ZRANGE z 0 -1",
        "ZRANGEBYSCORE none 0 1",
        "ZRANGESTORE d z 0 1",
        "ZRANGESTORE d none 0 1",
        "ZRANDMEMBER z",
        "ZRANDMEMBER none 2",
        "ZSCAN z 0",
        "ZSCAN none 0",
        "ZUNION 3 z s none",
        "ZINTERCARD 2 z none",
        "ZDIFFSTORE d 2 z s",
        "ZSCORE str a",
        "ZPOPMIN none",
        "ZPOPMIN z",
        "ZMPOP 2 none z MIN",
        "ZREM none a",
        "ZADD z 4 d",
        "ZINCRBY z 1 d",
        "ZREMRANGEBYRANK z 0 0",
    ];
    pair.check_info("stats", &["keyspace_hits", "keyspace_misses"], &script);
}

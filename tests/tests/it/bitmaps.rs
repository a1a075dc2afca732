//! Bitmaps and LCS against a real redis-server 7.0: every command's
//! options, errors and edge cases, in RESP2 and RESP3, replies compared
//! byte for byte; encodings as strings are changed in place; and a seeded
//! random run of bit operations compared reply by reply.

use std::net::TcpStream;

use ember_tests::{EmberServer, RedisServer, call};

use crate::diff::{Pair, Setup, slices, words};

/// Every reply byte for byte; each script starts from the default
/// `proto-max-bulk-len`.
const SETUP: Setup = Setup {
    ember: &["save \"\"", "appendonly no"],
    reset: &["CONFIG SET proto-max-bulk-len 536870912"],
    ..Setup::PLAIN
};

#[test]
fn setbit_and_getbit_match_redis() {
    let mut p = Pair::start(&SETUP);
    p.check(&[
        "SETBIT k 7 1",
        "SETBIT k 7 1",
        "SETBIT k 7 0",
        "GET k",
        "SETBIT k 100 1",
        "STRLEN k",
        "GETBIT k 100",
        "GETBIT k 99",
        "GETBIT k 4294967296",
        "GETBIT nokey 0",
        "OBJECT ENCODING k",
        // Errors: bad offsets, bad bits, wrong types.
        "SETBIT k -1 1",
        "SETBIT k abc 1",
        "SETBIT k #1 1",
        "SETBIT k 4294967296 1",
        "SETBIT k 4294967295 1",
        "~ SETBIT k 4294967295 0",
        "DEL k",
        "SETBIT k 0 2",
        "SETBIT k 0 -1",
        "SETBIT k 0 x",
        "GETBIT k -1",
        "GETBIT k 1.5",
        "RPUSH l a",
        "SETBIT l 0 1",
        "GETBIT l 0",
        "SETBIT k",
        "GETBIT k 1 2",
        // On integers and short strings, which then become raw.
        "SET n 12",
        "OBJECT ENCODING n",
        "GETBIT n 2",
        "SETBIT n 2 1",
        "GET n",
        "OBJECT ENCODING n",
        "SET e hello",
        "SETBIT e 0 0",
        "OBJECT ENCODING e",
        // Growing past the inline room, and a long shared string.
        "SET s abc",
        "SETBIT s 300 1",
        "GET s",
        "SET big \"0123456789012345678901234567890123456789012345678901234567890123456789\"",
        "SETBIT big 3 1",
        "SETBIT big 600 1",
        "GET big",
        "OBJECT ENCODING big",
        // proto-max-bulk-len bounds the offset.
        "CONFIG SET proto-max-bulk-len 1024",
        "SETBIT m 8191 1",
        "SETBIT m 8192 1",
        "GETBIT m 8192",
        "STRLEN m",
    ]);
}

#[test]
fn bitcount_matches_redis() {
    let mut p = Pair::start(&SETUP);
    p.check(&[
        "SET k foobar",
        "BITCOUNT k",
        "BITCOUNT k 0 0",
        "BITCOUNT k 1 1",
        "BITCOUNT k 1 1 BYTE",
        "BITCOUNT k 5 30 BIT",
        "BITCOUNT k 5 30 bit",
        "BITCOUNT k -1 -1",
        "BITCOUNT k -2 -1 BIT",
        "BITCOUNT k -1 -2",
        "BITCOUNT k -1 -2 nonsense",
        "BITCOUNT k 0 100",
        "BITCOUNT k 100 200",
        "BITCOUNT k -100 -50",
        "BITCOUNT k -100 100 BIT",
        "BITCOUNT k 0 -1 BIT",
        "BITCOUNT k 7 7 BIT",
        "BITCOUNT k 8 8 BIT",
        "BITCOUNT k 9223372036854775807 -9223372036854775808 BIT",
        "BITCOUNT k -9223372036854775808 9223372036854775807 BIT",
        "BITCOUNT k 0",
        "BITCOUNT k 0 1 BIT extra",
        "BITCOUNT k a 1",
        "BITCOUNT k 0 b",
        "BITCOUNT k 0 1 WORD",
        "BITCOUNT nokey",
        "BITCOUNT nokey 0",
        "BITCOUNT nokey a b c d e",
        "SET empty \"\"",
        "BITCOUNT empty",
        "BITCOUNT empty 0 -1 BIT",
        "SET n 12345",
        "BITCOUNT n",
        "HSET h a b",
        "BITCOUNT h",
        "BITCOUNT h 0",
    ]);
}

#[test]
fn bitpos_matches_redis() {
    let mut p = Pair::start(&SETUP);
    p.check(&[
        "SET k \"\\xff\\xf0\\x00\"",
        "BITPOS k 0",
        "BITPOS k 1",
        "BITPOS k 1 2",
        "BITPOS k 0 1",
        "BITPOS k 0 1 1",
        "BITPOS k 1 2 -1 BYTE",
        "BITPOS k 1 7 15 BIT",
        "BITPOS k 0 7 15 BIT",
        "BITPOS k 0 7 11 BIT",
        "BITPOS k 0 12 15 bit",
        "BITPOS k 1 -3 -1 BIT",
        "BITPOS k 1 5 3",
        "BITPOS k 1 100",
        "BITPOS k 0 -100",
        "BITPOS k 2",
        "BITPOS k -1",
        "BITPOS k x",
        "BITPOS k 1 a",
        "BITPOS k 1 0 b",
        "BITPOS k 1 0 1 WORD",
        "BITPOS k 1 0 1 BIT extra",
        "BITPOS k 1 0 WORD 3",
        // Ones all the way: a clear bit just past the end, unless an end
        // is given.
        "SET ones \"\\xff\\xff\\xff\"",
        "BITPOS ones 0",
        "BITPOS ones 0 1",
        "BITPOS ones 0 -1",
        "BITPOS ones 0 0 -1",
        "BITPOS ones 0 0 -1 BIT",
        "BITPOS ones 1 0 -1 BIT",
        "SET zeros \"\\x00\\x00\"",
        "BITPOS zeros 1",
        "BITPOS zeros 0",
        "BITPOS zeros 0 1",
        "BITPOS nokey 1",
        "BITPOS nokey 0",
        "BITPOS nokey 0 5 junk",
        "SET empty \"\"",
        "BITPOS empty 0",
        "BITPOS empty 1",
        "BITPOS empty 0 0",
        "SET long \"\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01\"",
        "BITPOS long 1",
        "BITPOS long 1 3",
        "BITPOS long 1 0 -2",
        "BITPOS long 1 100 279 BIT",
        "BITPOS long 1 100 278 BIT",
        "LPUSH l a",
        "BITPOS l 1",
        "BITPOS l 2",
    ]);
}

#[test]
fn bitop_matches_redis() {
    let mut p = Pair::start(&SETUP);
    p.check(&[
        "SET a \"\\xff\\x0f\\xaa\"",
        "SET b \"\\xf0\"",
        "BITOP AND d a b",
        "GET d",
        "OBJECT ENCODING d",
        "BITOP or d a b",
        "GET d",
        "BITOP XOR d a b nokey",
        "GET d",
        "BITOP NOT d b",
        "GET d",
        "BITOP NOT d a b",
        "BITOP NAND d a b",
        "BITOP AND d",
        // An empty result deletes the destination, whatever it held.
        "BITOP AND d nokey1 nokey2",
        "EXISTS d",
        "SET d x EX 100",
        "BITOP OR d a",
        "TTL d",
        "RPUSH d2 x",
        "BITOP OR d2 a",
        "TYPE d2",
        "RPUSH l x",
        "BITOP OR d a l",
        "BITOP NOT d l",
        "SET n 12",
        "BITOP NOT d n",
        "GET d",
        "SET e \"\"",
        "BITOP AND d e",
        "EXISTS d",
        "SET x1 \"0123456789abcdef0123456789abcdef0123456789\"",
        "SET x2 \"abcdefghijklmnopqrstuvwxyz0123456789abcdefgh\"",
        "BITOP AND d x1 x2",
        "GET d",
        "BITOP XOR d x1 x2 a",
        "GET d",
    ]);
}

#[test]
fn bitfield_matches_redis() {
    let mut p = Pair::start(&SETUP);
    p.check(&[
        "BITFIELD k SET i8 0 100 GET u4 0 INCRBY i5 100 1 GET u4 0",
        "GET k",
        "OBJECT ENCODING k",
        "BITFIELD k INCRBY u2 100 1 OVERFLOW SAT INCRBY u2 102 1",
        "BITFIELD k INCRBY u2 100 1 OVERFLOW SAT INCRBY u2 102 1",
        "BITFIELD k INCRBY u2 100 1 OVERFLOW SAT INCRBY u2 102 1",
        "BITFIELD k OVERFLOW FAIL INCRBY u2 102 1",
        "BITFIELD k OVERFLOW fail INCRBY i8 0 200 INCRBY i8 0 -10 OVERFLOW wrap INCRBY i8 0 200",
        "BITFIELD k SET u8 #1 255 GET u8 8 GET i8 #1 GET u8 #2",
        "BITFIELD k GET i64 0 GET u63 1 GET i1 0 GET u1 0",
        "BITFIELD k SET i64 0 -1 INCRBY i64 0 1 INCRBY i64 0 9223372036854775807 OVERFLOW SAT INCRBY i64 0 1",
        "BITFIELD k OVERFLOW WRAP INCRBY i64 0 1",
        "BITFIELD k SET u8 0 -1 OVERFLOW SAT SET u8 0 -1 SET u8 0 300 SET i8 0 -300 OVERFLOW FAIL SET u8 0 256",
        "BITFIELD k SET u63 0 -1 GET u63 0",
        "BITFIELD k GET u8 1000",
        "BITFIELD nokey GET u8 0 GET i16 5",
        "EXISTS nokey",
        "BITFIELD nokey",
        "BITFIELD k",
        // Errors, in Redis's order.
        "BITFIELD k GET i65 0",
        "BITFIELD k GET u64 0",
        "BITFIELD k GET u0 0",
        "BITFIELD k GET x8 0",
        "BITFIELD k GET i08 0",
        "BITFIELD k GET \"\" 0",
        "BITFIELD k GET u8 -1",
        "BITFIELD k GET u8 #-1",
        "BITFIELD k GET u8 abc",
        "BITFIELD k GET u8 4294967296",
        "BITFIELD k GET u8 #536870912",
        "BITFIELD k GET u8 #4611686018427387904",
        "BITFIELD k SET u8 0 abc",
        "BITFIELD k INCRBY u8 0 1.5",
        "BITFIELD k SET u8 0",
        "BITFIELD k GET u8",
        "BITFIELD k OVERFLOW",
        "BITFIELD k OVERFLOW BOUNCE GET u8 0",
        "BITFIELD k FOO u8 0",
        "BITFIELD k SET u8 0 1 GET i99 0",
        "RPUSH l a",
        "BITFIELD l GET u8 0",
        "BITFIELD l SET u8 0 1",
        "BITFIELD l GET u8 0 SET x 0 1",
        // BITFIELD_RO: GET only.
        "BITFIELD_RO k GET u8 0 GET i4 #3",
        "BITFIELD_RO k GET u8 0 SET u8 0 1",
        "BITFIELD_RO k INCRBY u8 0 1",
        "BITFIELD_RO nokey GET u8 0",
        "BITFIELD_RO l GET u8 0",
        "BITFIELD_RO l SET u8 0 1",
        "BITFIELD_RO k",
        // A FAIL that applies nothing on a missing key.
        "BITFIELD f OVERFLOW FAIL INCRBY u2 0 5",
        "GET f",
        "SET n 7",
        "BITFIELD n INCRBY u8 0 1",
        "GET n",
        "OBJECT ENCODING n",
    ]);
}

#[test]
fn lcs_matches_redis() {
    let mut p = Pair::start(&SETUP);
    let script = [
        "MSET a ohmytext b mynewtext",
        "LCS a b",
        "LCS a b LEN",
        "LCS a b IDX",
        "LCS a b idx MINMATCHLEN 4",
        "LCS a b IDX WITHMATCHLEN",
        "LCS a b IDX MINMATCHLEN 3 WITHMATCHLEN",
        "LCS a b IDX MINMATCHLEN -3",
        "LCS a b LEN IDX",
        "LCS a b IDX LEN",
        "LCS a b MINMATCHLEN",
        "LCS a b MINMATCHLEN x",
        "LCS a b FOO",
        "LCS a nokey",
        "LCS nokey1 nokey2 IDX",
        "LCS a a IDX WITHMATCHLEN",
        "MSET c \"rosettacode\" d \"raisethysword\"",
        "LCS c d IDX WITHMATCHLEN",
        "LCS d c IDX",
        "MSET n1 12345 n2 2345",
        "LCS n1 n2",
        "RPUSH l x",
        "LCS a l",
        "LCS l a IDX LEN",
        "LCS a",
        "CONFIG SET proto-max-bulk-len 1024",
        "SET big1 \"0123456789012345678901234567890123456789\"",
        "LCS big1 big1 LEN",
        "LCS a b LEN",
    ];
    p.check(&script);
    let mut resp3 = vec!["~ HELLO 3"];
    resp3.extend(script);
    p.check(&resp3);
}

#[test]
fn resp3_replies_match_redis() {
    let mut p = Pair::start(&SETUP);
    p.check(&[
        "~ HELLO 3",
        "BITFIELD k OVERFLOW FAIL INCRBY u2 0 5 SET i8 8 -3 GET i8 8",
        "BITFIELD_RO k GET u8 0",
        "SETBIT k 3 1",
        "GETBIT k 3",
        "BITCOUNT k",
        "BITPOS k 1",
        "BITOP NOT d k",
        "GET d",
    ]);
}

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A range bound: mostly small, sometimes negative or far.
    fn bound(&mut self) -> i64 {
        match self.below(6) {
            0 => -(self.below(80) as i64),
            1 => self.below(1000) as i64,
            _ => self.below(80) as i64,
        }
    }
}

#[test]
fn random_bit_operations_match_redis() {
    let mut p = Pair::start(&SETUP);
    for conn in [&mut p.redis, &mut p.ember] {
        call(conn, &[b"FLUSHALL"]);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let keys = ["k0", "k1", "k2"];
    let types = [
        "u1", "u3", "i5", "u8", "i8", "i13", "u31", "i32", "i64", "u63",
    ];
    for step in 0..3000 {
        let key = keys[rng.below(3) as usize];
        let line = match rng.below(9) {
            0 | 1 => format!("SETBIT {key} {} {}", rng.below(400), rng.below(2)),
            2 => format!("GETBIT {key} {}", rng.below(420)),
            3 => match rng.below(3) {
                0 => format!("BITCOUNT {key}"),
                1 => format!("BITCOUNT {key} {} {}", rng.bound(), rng.bound()),
                _ => format!("BITCOUNT {key} {} {} BIT", rng.bound(), rng.bound()),
            },
            4 => {
                let bit = rng.below(2);
                match rng.below(4) {
                    0 => format!("BITPOS {key} {bit}"),
                    1 => format!("BITPOS {key} {bit} {}", rng.bound()),
                    2 => format!("BITPOS {key} {bit} {} {}", rng.bound(), rng.bound()),
                    _ => format!("BITPOS {key} {bit} {} {} BIT", rng.bound(), rng.bound()),
                }
            }
            5 => {
                let op = ["AND", "OR", "XOR", "NOT"][rng.below(4) as usize];
                let dest = keys[rng.below(3) as usize];
                if op == "NOT" {
                    format!("BITOP NOT {dest} {key}")
                } else {
                    format!("BITOP {op} {dest} {key} {}", keys[rng.below(3) as usize])
                }
            }
            6 | 7 => {
                let mut line = format!("BITFIELD {key}");
                for _ in 0..1 + rng.below(3) {
                    let ty = types[rng.below(types.len() as u64) as usize];
                    let offset = if rng.below(4) == 0 {
                        format!("#{}", rng.below(8))
                    } else {
                        rng.below(300).to_string()
                    };
                    let value = match rng.below(3) {
                        0 => (rng.below(20) as i64 - 10).to_string(),
                        1 => (rng.next() as i64).to_string(),
                        _ => (rng.below(1 << 20) as i64 - (1 << 19)).to_string(),
                    };
                    let part = match rng.below(5) {
                        0 => format!(" GET {ty} {offset}"),
                        1 => format!(" SET {ty} {offset} {value}"),
                        2 => format!(" INCRBY {ty} {offset} {value}"),
                        3 => format!(
                            " OVERFLOW {} INCRBY {ty} {offset} {value}",
                            ["WRAP", "SAT", "FAIL"][rng.below(3) as usize]
                        ),
                        _ => format!(" GET {ty} {offset} INCRBY {ty} {offset} {value}"),
                    };
                    line.push_str(&part);
                }
                line
            }
            _ => match rng.below(3) {
                0 => format!("GET {key}"),
                1 => format!("LCS {key} {} IDX WITHMATCHLEN", keys[rng.below(3) as usize]),
                _ => format!("STRLEN {key}"),
            },
        };
        let args = words(&line);
        let args = slices(&args);
        let (r, e) = p.both(&args);
        assert_eq!(
            String::from_utf8_lossy(&r),
            String::from_utf8_lossy(&e),
            "step {step}: {line}"
        );
    }
}

/// What replicas hear of bit writes, compared with redis-server's stream:
/// SETBIT and BITFIELD as themselves when a bit changed, nothing when none
/// did (or a BITFIELD only read), BITOP as itself, a DEL-like BITOP when
/// its result is empty and the destination existed.
#[test]
fn bit_writes_stream_like_redis() {
    use crate::replication::{attach_to_stream, read_stream};
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let mut streams = Vec::new();
    for addr in [redis.addr(), ember.addr()] {
        let (mut s, mut buf) = attach_to_stream(addr);
        let mut c = ember_tests::connect(addr);
        for line in [
            "SETBIT k 7 1",
            "SETBIT k 7 1",
            "SETBIT k 7 0",
            "SETBIT k 100 0",
            "SETBIT k 100 0",
            "SETBIT k -1 1",
            "GETBIT k 7",
            "BITFIELD k GET u8 0",
            "BITFIELD k SET u8 0 0",
            "BITFIELD k SET u8 0 5 GET u8 0",
            "BITFIELD k OVERFLOW FAIL INCRBY u2 0 9",
            "BITFIELD k OVERFLOW FAIL INCRBY u2 0 9 INCRBY u8 8 1",
            "BITFIELD k INCRBY i5 0 0",
            "BITFIELD_RO k GET u8 0",
            "BITOP NOT d k",
            "BITOP AND d none",
            "BITOP AND d none",
            "BITCOUNT k",
            "BITPOS k 1",
            "LCS k d",
        ] {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            call(&mut c, &args);
        }
        call(&mut c, &[b"SET", b"end", b"1"]);
        streams.push(read_stream(&mut s, &mut buf, "end"));
    }
    assert_eq!(
        streams[0], streams[1],
        "redis sent the first, ember the second"
    );
}

/// `rdb_changes_since_last_save` moves only when a write changed
/// something, as Redis's does: a SETBIT or BITFIELD that leaves every bit
/// as it was is no change.
#[test]
fn only_changes_count_as_changes() {
    let mut p = Pair::start(&SETUP);
    let changes = |conn: &mut TcpStream| -> i64 {
        let info = call(conn, &[b"INFO", b"persistence"]);
        let text = String::from_utf8_lossy(&info).to_string();
        text.lines()
            .find_map(|l| l.strip_prefix("rdb_changes_since_last_save:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("the field")
    };
    let mut seen = Vec::new();
    for conn in [&mut p.redis, &mut p.ember] {
        let start = changes(conn);
        let mut deltas = Vec::new();
        for line in [
            "SETBIT k 0 0",
            "SETBIT k 0 0",
            "SETBIT k 0 1",
            "SETBIT k 0 1",
            "SETBIT k 100 0",
            "BITFIELD f SET i5 0 0",
            "BITFIELD f SET i5 0 0",
            "BITFIELD f SET i5 0 1",
            "BITFIELD f GET i5 0",
            "BITFIELD f INCRBY i5 0 1",
            "BITFIELD f OVERFLOW FAIL INCRBY u2 0 9",
            "BITOP AND none1 none2",
            "BITOP OR d k",
            "DEL nothing",
        ] {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            call(conn, &args);
            deltas.push(changes(conn) - start);
        }
        seen.push(deltas);
    }
    assert_eq!(seen[0], seen[1], "redis's counts first, ember's second");
}

/// Keyspace hits and misses as Redis counts them: the reads (GETBIT,
/// BITCOUNT, BITPOS, BITOP's sources, BITFIELD of GETs, LCS) count, the
/// writes' own lookups do not; compared after every command.
#[test]
fn keyspace_hits_and_misses_count_like_redis() {
    let mut p = Pair::start(&SETUP);
    p.check_info(
        "stats",
        &["keyspace_hits", "keyspace_misses"],
        &[
            "SETBIT k 0 1",
            "SETBIT k 1 1",
            "GETBIT k 0",
            "GETBIT none 0",
            "BITCOUNT k",
            "BITCOUNT none",
            "BITPOS k 1",
            "BITPOS none 1",
            "BITOP OR d k none",
            "BITFIELD k GET u8 0",
            "BITFIELD none GET u8 0",
            "BITFIELD k SET u8 0 1",
            "BITFIELD_RO k GET u8 0",
            "LCS k none",
            "LCS k d",
        ],
    );
}

//! DUMP and RESTORE against a real `redis-server` 7.0: payloads travel
//! both ways, errors match byte for byte, and RESTORE reaches replicas as
//! Redis sends it (deadlines made absolute).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ember_tests::{EmberServer, RedisServer, call};

/// Redis's CRC64 (Jones polynomial, reflected), bit by bit: the test's own,
/// so that a payload it crafts does not depend on the server's code.
fn crc64(data: &[u8]) -> u64 {
    let mut crc = 0u64;
    for &b in data {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x95AC_9329_AC4B_C9B5
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// A payload with a correct trailer around `body`, claiming `version`.
fn payload(body: &[u8], version: u16) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&version.to_le_bytes());
    let crc = crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

/// The bulk string in a raw reply (`$n\r\n...\r\n`), `None` for a null.
fn bulk(reply: &[u8]) -> Option<Vec<u8>> {
    if reply.starts_with(b"$-1") {
        return None;
    }
    let start = reply.iter().position(|&b| b == b'\n').expect("a bulk") + 1;
    Some(reply[start..reply.len() - 2].to_vec())
}

fn int(reply: &[u8]) -> i64 {
    std::str::from_utf8(&reply[1..reply.len() - 2])
        .expect("ascii")
        .parse()
        .expect("an integer reply")
}

struct Both {
    _redis: RedisServer,
    _ember: EmberServer,
    r: TcpStream,
    e: TcpStream,
}

impl Both {
    fn start() -> Both {
        let redis = RedisServer::start(&[]);
        let ember = EmberServer::start(&[]);
        Both {
            r: redis.connect(),
            e: ember.connect(),
            _redis: redis,
            _ember: ember,
        }
    }

    /// Runs `args` on both; the replies must be the same bytes.
    fn same(&mut self, args: &[&[u8]]) -> Bytes {
        let r = call(&mut self.r, args);
        let e = call(&mut self.e, args);
        assert_eq!(
            String::from_utf8_lossy(&r),
            String::from_utf8_lossy(&e),
            "{:?}",
            args.iter()
                .map(|a| String::from_utf8_lossy(&a[..a.len().min(40)]))
                .collect::<Vec<_>>()
        );
        r
    }
}

/// Values of every string and list encoding Redis 7.0 has: integers of
/// each width, short strings, strings LZF compresses, lists of one node
/// and of many, elements larger than a node.
fn samples() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let mut out: Vec<(&'static str, Vec<Vec<u8>>)> = Vec::new();
    for s in [
        "0",
        "-1",
        "127",
        "-128",
        "300",
        "-32768",
        "70000",
        "2147483647",
        "-2147483648",
        "3000000000",
        "007",
        "-0",
        "+5",
        "bar",
        "",
        "hello world",
    ] {
        out.push(("string", vec![s.as_bytes().to_vec()]));
    }
    out.push(("string", vec![vec![b'a'; 30]]));
    out.push(("string", vec![b"abcdefghij".repeat(1000)]));
    let noise: Vec<u8> = (0u32..5000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    out.push(("string", vec![noise.clone()]));
    out.push((
        "list",
        vec![b"a".to_vec(), b"1".to_vec(), b"-70000".to_vec()],
    ));
    out.push((
        "list",
        (0..2000)
            .map(|i| format!("item-{i}").into_bytes())
            .collect(),
    ));
    out.push(("list", (0..300).map(|i| vec![b'x'; 50 + i]).collect()));
    out.push((
        "list",
        vec![b"small".to_vec(), vec![b'y'; 20_000], noise, b"9".to_vec()],
    ));
    out
}

fn store(conn: &mut TcpStream, key: &[u8], kind: &str, value: &[Vec<u8>]) {
    if kind == "string" {
        call(conn, &[b"SET", key, &value[0]]);
    } else {
        let mut args: Vec<&[u8]> = vec![b"RPUSH", key];
        args.extend(value.iter().map(Vec::as_slice));
        call(conn, &args);
    }
}

fn read_back(conn: &mut TcpStream, key: &[u8], kind: &str) -> Bytes {
    if kind == "string" {
        call(conn, &[b"GET", key])
    } else {
        call(conn, &[b"LRANGE", key, b"0", b"-1"])
    }
}

#[test]
fn dump_payloads_restore_in_both_directions() {
    let mut b = Both::start();
    for (i, (kind, value)) in samples().iter().enumerate() {
        let key = format!("k{i}").into_bytes();
        store(&mut b.r, &key, kind, value);
        store(&mut b.e, &key, kind, value);
        let from_redis = bulk(&call(&mut b.r, &[b"DUMP", &key])).expect("a payload");
        let from_ember = bulk(&call(&mut b.e, &[b"DUMP", &key])).expect("a payload");
        // Nothing to compress: the same bytes as Redis's.
        let short = value.iter().map(Vec::len).sum::<usize>() <= 20;
        if short {
            assert_eq!(from_redis, from_ember, "payloads of {value:?}");
        }
        let want = read_back(&mut b.r, &key, kind);
        let mut encodings = Vec::new();
        for (to_redis, payload, name) in [
            (true, &from_ember, "redis restores ember's"),
            (false, &from_redis, "ember restores redis's"),
            (false, &from_ember, "ember restores its own"),
        ] {
            let conn = if to_redis { &mut b.r } else { &mut b.e };
            let copy = format!("copy{i}").into_bytes();
            assert_eq!(
                &call(conn, &[b"RESTORE", &copy, b"0", payload])[..],
                b"+OK\r\n",
                "{name} ({kind} {i})"
            );
            assert_eq!(read_back(conn, &copy, kind), want, "{name} ({kind} {i})");
            assert_eq!(&call(conn, &[b"TTL", &copy])[..], b":-1\r\n");
            encodings.push(call(conn, &[b"OBJECT", b"ENCODING", &copy]));
            call(conn, &[b"DEL", &copy]);
        }
        // A restored value takes the encoding Redis gives it.
        assert!(
            encodings.iter().all(|e| *e == encodings[0]),
            "{kind} {i}: {encodings:?}"
        );
    }
    b.same(&[b"DUMP", b"missing"]);
}

#[test]
fn restore_errors_and_options_match_redis() {
    let mut b = Both::start();
    b.same(&[b"SET", b"s", b"value"]);
    let good = bulk(&b.same(&[b"DUMP", b"s"])).expect("a payload");
    let good = &good[..];
    // Checks in Redis's order: options, existing key, TTL, payload.
    b.same(&[b"RESTORE", b"s", b"0", good]);
    b.same(&[b"RESTORE", b"s", b"-1", b"junk", b"bogus"]);
    b.same(&[b"RESTORE", b"s", b"x", b"junk"]);
    b.same(&[b"RESTORE", b"n", b"x", b"junk"]);
    b.same(&[b"RESTORE", b"n", b"-5", good]);
    b.same(&[b"RESTORE", b"n", b"0", b"junk"]);
    b.same(&[b"RESTORE", b"n", b"0", b""]);
    b.same(&[b"RESTORE", b"n", b"0", good, b"IDLETIME"]);
    b.same(&[b"RESTORE", b"n", b"0", good, b"IDLETIME", b"-1"]);
    b.same(&[b"RESTORE", b"n", b"0", good, b"IDLETIME", b"x"]);
    b.same(&[b"RESTORE", b"n", b"0", good, b"FREQ", b"256"]);
    b.same(&[b"RESTORE", b"n", b"0", good, b"FREQ", b"-1"]);
    b.same(&[
        b"RESTORE",
        b"n",
        b"0",
        good,
        b"IDLETIME",
        b"1",
        b"FREQ",
        b"1",
    ]);
    b.same(&[
        b"RESTORE",
        b"n",
        b"0",
        good,
        b"FREQ",
        b"1",
        b"IDLETIME",
        b"1",
    ]);
    b.same(&[b"RESTORE", b"n", b"0", good, b"REPLACE", b"extra"]);
    let mut flipped = good.to_vec();
    flipped[1] ^= 1;
    b.same(&[b"RESTORE", b"n", b"0", &flipped]);
    // A newer RDB version, a string longer than the payload, an unknown
    // type, empty lists: refused, and nothing is created.
    b.same(&[b"RESTORE", b"n", b"0", &payload(b"\x00\x01a", 11)]);
    b.same(&[b"RESTORE", b"n", b"0", &payload(b"\x00\x3fa", 10)]);
    b.same(&[b"RESTORE", b"n", b"0", &payload(b"\x42\x01a", 10)]);
    b.same(&[b"RESTORE", b"n", b"0", &payload(b"\x12\x00", 10)]);
    b.same(&[b"RESTORE", b"n", b"0", &payload(b"\x01\x00", 10)]);
    b.same(&[b"RESTORE", b"n", b"0", &payload(b"\x00\x01a", 9)]);
    b.same(&[b"GET", b"n"]);
    b.same(&[b"EXISTS", b"n"]);
    // REPLACE, with and without a deadline; ABSTTL in the past creates
    // nothing and, with REPLACE, deletes the old value.
    b.same(&[b"SET", b"s", b"other"]);
    b.same(&[
        b"RESTORE",
        b"s",
        b"0",
        good,
        b"REPLACE",
        b"IDLETIME",
        b"1000",
    ]);
    // Read before any access resets it.
    for conn in [&mut b.r, &mut b.e] {
        let idle = int(&call(conn, &[b"OBJECT", b"IDLETIME", b"s"]));
        assert!((1000..1010).contains(&idle), "idle {idle}");
    }
    b.same(&[b"GET", b"s"]);
    b.same(&[b"TTL", b"s"]);
    b.same(&[b"RESTORE", b"t", b"100000", good]);
    for conn in [&mut b.r, &mut b.e] {
        let pttl = int(&call(conn, &[b"PTTL", b"t"]));
        assert!((90_000..=100_000).contains(&pttl), "pttl {pttl}");
    }
    b.same(&[b"RESTORE", b"a", b"1", good, b"ABSTTL"]);
    b.same(&[b"EXISTS", b"a"]);
    b.same(&[b"RESTORE", b"s", b"1", good, b"ABSTTL", b"REPLACE"]);
    b.same(&[b"EXISTS", b"s"]);
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 3_600_000)
        .to_string();
    b.same(&[b"RESTORE", b"a", later.as_bytes(), good, b"ABSTTL"]);
    b.same(&[b"PEXPIRETIME", b"a"]);
    b.same(&[b"RESTORE", b"a", b"0", good, b"REPLACE", b"FREQ", b"5"]);
    b.same(&[b"TTL", b"a"]);
    // Wrong arity and types TYPE reports.
    b.same(&[b"RESTORE", b"a", b"0"]);
    b.same(&[b"DUMP"]);
    b.same(&[b"DUMP", b"a", b"b"]);
    b.same(&[b"TYPE", b"a"]);
}

#[test]
fn restore_of_types_ember_lacks_is_a_clear_error() {
    let mut b = Both::start();
    call(&mut b.r, &[b"XADD", b"x", b"*", b"f", b"v"]);
    let (key, kind) = (&b"x"[..], "stream");
    let p = bulk(&call(&mut b.r, &[b"DUMP", key])).expect("a payload");
    let reply = call(&mut b.e, &[b"RESTORE", key, b"0", &p]);
    let want = format!(
        "-ERR Bad data format: the payload holds a {kind}, which this server does not store\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&reply), want);
    assert_eq!(&call(&mut b.e, &[b"EXISTS", key])[..], b":0\r\n");
}

/// Waits until `check` holds (bounded).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn restore_reaches_replicas_with_absolute_deadlines() {
    let master = EmberServer::start(&[]);
    let port = master.addr().port().to_string();
    let redis = RedisServer::start(&["--replicaof", "127.0.0.1", &port]);
    let ember = EmberServer::start(&[&format!("replicaof 127.0.0.1 {port}")]);
    let mut m = master.connect();
    let mut replicas = [redis.connect(), ember.connect()];
    eventually("two replicas", || {
        String::from_utf8_lossy(&call(&mut m, &[b"INFO", b"replication"]))
            .contains("connected_slaves:2")
    });
    call(&mut m, &[b"SET", b"src", b"v"]);
    let good = bulk(&call(&mut m, &[b"DUMP", b"src"])).expect("a payload");
    call(&mut m, &[b"SET", b"old", b"x"]);
    for args in [
        &[&b"RESTORE"[..], b"rel", b"100000", &good][..],
        &[b"RESTORE", b"plain", b"0", &good, b"IDLETIME", b"10"],
        &[b"RESTORE", b"old", b"1", &good, b"REPLACE", b"ABSTTL"],
        &[b"RESTORE", b"never", b"1", &good, b"ABSTTL"],
    ] {
        assert_eq!(&call(&mut m, args)[..], b"+OK\r\n");
    }
    call(&mut m, &[b"SET", b"marker", b"done"]);
    let at = call(&mut m, &[b"PEXPIRETIME", b"rel"]);
    assert!(int(&at) > 0);
    for r in &mut replicas {
        eventually("the marker", || {
            &call(r, &[b"GET", b"marker"])[..] == b"$4\r\ndone\r\n"
        });
        assert_eq!(call(r, &[b"PEXPIRETIME", b"rel"]), at);
        assert_eq!(&call(r, &[b"GET", b"plain"])[..], b"$1\r\nv\r\n");
        assert_eq!(&call(r, &[b"EXISTS", b"old", b"never"])[..], b":0\r\n");
    }
}

/// RESTORE is a write like any other: it fails a transaction watching its
/// key, and runs queued inside MULTI.
fn watch_script(addr: std::net::SocketAddr) {
    let (mut a, mut b) = (ember_tests::connect(addr), ember_tests::connect(addr));
    call(&mut a, &[b"SET", b"k", b"v"]);
    let p = bulk(&call(&mut a, &[b"DUMP", b"k"])).expect("a payload");
    assert_eq!(&call(&mut a, &[b"WATCH", b"k"])[..], b"+OK\r\n");
    assert_eq!(
        &call(&mut b, &[b"RESTORE", b"k", b"0", &p, b"REPLACE"])[..],
        b"+OK\r\n"
    );
    call(&mut a, &[b"MULTI"]);
    call(&mut a, &[b"GET", b"k"]);
    assert_eq!(&call(&mut a, &[b"EXEC"])[..], b"*-1\r\n");
    call(&mut a, &[b"MULTI"]);
    assert_eq!(
        &call(&mut a, &[b"RESTORE", b"n", b"0", &p])[..],
        b"+QUEUED\r\n"
    );
    call(&mut a, &[b"DUMP", b"n"]);
    let exec = call(&mut a, &[b"EXEC"]);
    let mut want = b"*2\r\n+OK\r\n".to_vec();
    want.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
    want.extend_from_slice(&p);
    want.extend_from_slice(b"\r\n");
    assert_eq!(exec, want);
}

#[test]
fn restore_touches_watched_keys_and_runs_in_transactions() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    watch_script(redis.addr());
    watch_script(ember.addr());
}

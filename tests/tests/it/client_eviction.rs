//! Clients that do not read, and `maxmemory-clients` (docs/memory.md,
//! "Client eviction"): requests are still run while a client's replies
//! wait, as in Redis, and once ordinary clients hold the limit the largest
//! are closed. Against real server processes, Redis's where a behaviour
//! is compared.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use ember_tests::{NodeKind, NodeProcess};
use redis::Connection;

use crate::client_memory::{WAIT, client_line, wait_for};
use crate::redis_crate::{connect, info, q};

/// Field `field` of a CLIENT LIST line.
fn field<'a>(line: &'a str, field: &str) -> &'a str {
    line.split(' ')
        .find_map(|f| f.strip_prefix(&format!("{field}=")))
        .unwrap_or_else(|| panic!("no {field} in {line}"))
}

/// A raw connection named `name`.
fn named(addr: &str, name: &str) -> TcpStream {
    crate::client_memory::named(addr, name, WAIT)
}

/// Whether the server closed `stream`: reads what is pending until the
/// end of the stream or an error.
fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

/// A client that writes a million requests before it reads a single
/// reply is served by both servers: neither
/// stops reading it while its replies wait. Before, Ember stopped reading
/// a client whose replies the socket did not take, and such a client
/// (blocked in its write, the server in its flush) waited forever.
#[test]
fn a_client_that_writes_all_before_it_reads_is_served() {
    // 24 MB of requests, 107 MB of replies: far more than the sockets'
    // buffers hold either way.
    const N: usize = 1_000_000;
    const VALUE: usize = 100;
    for kind in [NodeKind::Ember, NodeKind::Redis] {
        let node = NodeProcess::start(kind);
        let mut con = connect(node.addr());
        let () = q(&mut con, &["SET", "v", &"x".repeat(VALUE)]);
        let mut stream = TcpStream::connect(node.addr()).expect("connect");
        // A stall fails the test rather than hanging it.
        stream.set_write_timeout(Some(WAIT)).expect("write timeout");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        let requests = b"*2\r\n$3\r\nGET\r\n$1\r\nv\r\n".repeat(N);
        stream
            .write_all(&requests)
            .unwrap_or_else(|e| panic!("{kind:?}: the requests were not all taken: {e}"));
        let reply = format!("${VALUE}\r\n{}\r\n", "x".repeat(VALUE));
        let mut got = vec![0u8; reply.len() * N];
        stream
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("{kind:?}: replies: {e}"));
        assert!(
            got.chunks(reply.len()).all(|c| c == reply.as_bytes()),
            "{kind:?}: replies out of order"
        );
    }
}

/// `maxmemory-clients` as CONFIG SET and GET take and show it: bytes or a
/// percentage of `maxmemory`, and the errors, byte for byte Redis's.
#[test]
fn maxmemory_clients_is_set_as_in_redis() {
    let mut seen = Vec::new();
    for kind in [NodeKind::Ember, NodeKind::Redis] {
        let node = NodeProcess::start(kind);
        let mut con = connect(node.addr());
        let mut out = Vec::new();
        for value in [
            "3mb", "7%", "0", "100%", "101%", "-5%", "abc", "%", "1k", "0%",
        ] {
            let set: redis::RedisResult<()> = redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory-clients")
                .arg(value)
                .query(&mut con);
            let get: Vec<String> = q(&mut con, &["CONFIG", "GET", "maxmemory-clients"]);
            out.push(format!(
                "{value}: {:?} -> {get:?}",
                set.map_err(|e| e.to_string())
            ));
        }
        seen.push(out);
    }
    assert_eq!(seen[0], seen[1], "Ember, then Redis");
}

/// Three clients each hold a request still arriving (100 KB, 400 KB and
/// 1 MB of it): a limit under what they hold together closes the largest
/// and no other, counts it in `evicted_clients`, and takes it out of
/// CLIENT LIST at once; a client with CLIENT NO-EVICT (flag `e`) is never
/// closed, however large; lowering the limit again closes the next.
#[test]
fn the_largest_clients_are_evicted_until_under_the_limit() {
    let node = NodeProcess::start(NodeKind::Ember);
    let addr = node.addr();
    let mut con = connect(&addr);
    let () = q(&mut con, &["CLIENT", "SETNAME", "control"]);
    let () = q(&mut con, &["CLIENT", "NO-EVICT", "on"]);
    let control = client_line(&mut con, "control").expect("control");
    assert_eq!(field(&control, "flags"), "e");
    let mut clients = Vec::new();
    for (name, size) in [
        ("small", 100_000),
        ("middle", 400_000),
        ("large", 1_000_000),
        ("kept", 2_000_000),
    ] {
        let mut stream = named(&addr, name);
        if name == "kept" {
            stream
                .write_all(b"*3\r\n$6\r\nCLIENT\r\n$8\r\nNO-EVICT\r\n$2\r\non\r\n")
                .expect("write");
            let mut ok = [0u8; 5];
            stream.read_exact(&mut ok).expect("NO-EVICT's reply");
        }
        // A SET whose value never ends arriving.
        let head = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", size + 10);
        stream.write_all(head.as_bytes()).expect("write");
        stream.write_all(&vec![b'v'; size]).expect("write");
        wait_for(&format!("{name}'s request to arrive"), || {
            client_line(&mut con, name)
                .is_some_and(|l| field(&l, "qbuf").parse::<usize>().unwrap() == size)
        });
        clients.push((name, stream));
    }
    let tot = |con: &mut Connection, name: &str| -> i64 {
        field(&client_line(con, name).expect(name), "tot-mem")
            .parse()
            .unwrap()
    };
    // What every client but the largest evictable one holds.
    let others: i64 = ["control", "small", "middle", "kept"]
        .iter()
        .map(|n| tot(&mut con, n))
        .sum();
    let large = tot(&mut con, "large");
    assert!(large >= 1_000_000, "large holds {large}");
    // A margin far under what the large one holds, far over what the
    // others may grow by meanwhile (a reply buffer).
    let limit = others + 100_000;
    let () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-clients", &limit.to_string()],
    );
    // The next command evicts before it runs.
    assert!(client_line(&mut con, "large").is_none(), "large is evicted");
    for name in ["small", "middle", "kept"] {
        assert!(client_line(&mut con, name).is_some(), "{name} stays");
    }
    assert_eq!(info(&mut con, "stats", "evicted_clients"), 1);
    let (_, large) = clients.remove(2);
    let mut large = large;
    assert!(closed(&mut large), "large's connection is closed");
    // Under the limit by less than the middle one holds: it goes next, and
    // the no-evict client never does.
    let () = q(
        &mut con,
        &[
            "CONFIG",
            "SET",
            "maxmemory-clients",
            &(others - 200_000).to_string(),
        ],
    );
    assert!(
        client_line(&mut con, "middle").is_none(),
        "middle is evicted"
    );
    assert!(client_line(&mut con, "small").is_some(), "small stays");
    assert!(client_line(&mut con, "kept").is_some(), "kept stays");
    assert_eq!(info(&mut con, "stats", "evicted_clients"), 2);
    // Limit lifted: nothing more goes.
    let () = q(&mut con, &["CONFIG", "SET", "maxmemory-clients", "0"]);
    assert!(client_line(&mut con, "small").is_some(), "small stays");
}

/// A subscriber that reads nothing while 100 KB messages are published to
/// it is evicted once clients hold `maxmemory-clients`; the publisher,
/// small, is not.
#[test]
fn a_subscriber_whose_messages_pile_up_is_evicted() {
    let node = NodeProcess::start(NodeKind::Ember);
    let addr = node.addr();
    let mut con = connect(&addr);
    let () = q(&mut con, &["CONFIG", "SET", "maxmemory-clients", "4mb"]);
    let mut sub = named(&addr, "sub");
    sub.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n")
        .expect("write");
    let mut confirm = [0u8; 31];
    sub.read_exact(&mut confirm).expect("SUBSCRIBE's reply");
    let message = "m".repeat(100_000);
    let started = Instant::now();
    while client_line(&mut con, "sub").is_some() {
        assert!(started.elapsed() < WAIT, "the subscriber was never evicted");
        let _: i64 = q(&mut con, &["PUBLISH", "ch", &message]);
    }
    assert_eq!(info(&mut con, "stats", "evicted_clients"), 1);
    assert!(closed(&mut sub), "the subscriber's connection is closed");
    // Clients hold far less again.
    wait_for("the evicted client's memory to be given back", || {
        info(&mut con, "memory", "mem_clients_normal") < 1 << 20
    });
}

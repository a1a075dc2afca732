//! Clients' memory (docs/memory.md, "Clients" and "Lazy free"): output
//! buffer limits, CLIENT LIST's buffer figures, `mem_clients_normal`, and
//! values freed by the lazy-free thread. Against real server processes,
//! Redis's where a behaviour is compared.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ember_tests::{NodeKind, NodeProcess};
use redis::Connection;

/// How long a condition may take to come true.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

use crate::redis_crate::{connect, info, q};

/// The CLIENT LIST line of the client named `name`, if it is connected.
pub(crate) fn client_line(con: &mut Connection, name: &str) -> Option<String> {
    let list: String = q(con, &["CLIENT", "LIST"]);
    list.lines()
        .find(|l| l.contains(&format!(" name={name} ")))
        .map(str::to_string)
}

/// Field `field` of a CLIENT LIST line, as a number.
fn field(line: &str, field: &str) -> i64 {
    line.split(' ')
        .find_map(|f| f.strip_prefix(&format!("{field}=")))
        .unwrap_or_else(|| panic!("no {field} in {line}"))
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number in {line}"))
}

/// Waits until `cond` holds, failing after [`WAIT`].
pub(crate) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw connection named `name` (CLIENT SETNAME), whose reads time out
/// after `timeout`.
pub(crate) fn named(addr: &str, name: &str, timeout: Duration) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(timeout))
        .expect("read timeout");
    let setname = format!(
        "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n${}\r\n{name}\r\n",
        name.len()
    );
    stream.write_all(setname.as_bytes()).expect("write");
    let mut ok = [0u8; 5];
    stream.read_exact(&mut ok).expect("CLIENT SETNAME's reply");
    assert_eq!(&ok, b"+OK\r\n");
    stream
}

/// A raw connection named `name` that then sends `GET big` `count` times
/// from a thread of its own, never reading a reply. Returns the stream
/// (to read what arrived) and the writer.
fn hog(addr: &str, name: &str, count: usize) -> (TcpStream, std::thread::JoinHandle<()>) {
    let stream = named(addr, name, Duration::from_secs(5));
    let mut writer = stream.try_clone().expect("clone");
    let thread = std::thread::spawn(move || {
        let one = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(100);
        for _ in 0..count / 100 {
            // The server closing the connection ends the writes.
            if writer.write_all(&one).is_err() {
                return;
            }
        }
    });
    (stream, thread)
}

/// Reads until the server closes `stream`; returns the bytes read, or
/// `None` if it stayed open.
fn read_to_close(stream: &mut TcpStream) -> Option<usize> {
    let started = Instant::now();
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    while started.elapsed() < WAIT {
        match stream.read(&mut buf) {
            Ok(0) => return Some(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return None,
            // Reset: closed with unread requests in its socket.
            Err(_) => return Some(total),
        }
    }
    None
}

/// `client-output-buffer-limit normal 1mb 0 0`: a client that asks for a
/// 100 KB value thousands of times without reading is closed once 1 MB of
/// replies waits for it, on Ember as on Redis; another client is served
/// all along, and the server's memory never grows by much more than the
/// limit.
#[test]
fn a_client_past_the_hard_limit_is_closed_and_others_are_served() {
    for kind in [NodeKind::Ember, NodeKind::Redis] {
        let node = NodeProcess::start_with(kind, &["client-output-buffer-limit normal 1mb 0 0"]);
        let addr = node.addr();
        let mut con = connect(&addr);
        let big = "x".repeat(100_000);
        let () = q(&mut con, &["SET", "big", &big]);
        let before = info(&mut con, "memory", "used_memory");
        let (mut stream, writer) = hog(&addr, "hog", 20_000);
        let mut peak = before;
        wait_for("the hog to be closed", || {
            // The other client keeps being served meanwhile.
            let pong: String = q(&mut con, &["PING"]);
            assert_eq!(pong, "PONG");
            peak = peak.max(info(&mut con, "memory", "used_memory"));
            client_line(&mut con, "hog").is_none()
        });
        let got = read_to_close(&mut stream);
        let got = got.unwrap_or_else(|| panic!("{kind:?}: the hog's connection stayed open"));
        // At most what was sent before the limit: far fewer than the
        // 20,000 replies asked for.
        assert!(got < 100 * 100_010, "{kind:?}: {got} bytes reached the hog");
        writer.join().expect("writer");
        let len: i64 = q(&mut con, &["STRLEN", "big"]);
        assert_eq!(len, 100_000);
        if kind == NodeKind::Ember {
            // Replies to a batch are counted as they are produced, and
            // the batch stops at the limit: 1 MB and one reply more,
            // plus the read buffers and the allocator's per-thread
            // slack.
            assert!(
                peak - before < 8 << 20,
                "used_memory grew by {} bytes",
                peak - before
            );
        }
    }
}

/// The soft limit: over it for longer than its seconds, the client is
/// closed; under the hard limit nothing happens at once.
#[test]
fn a_client_over_the_soft_limit_for_its_seconds_is_closed() {
    let node = NodeProcess::start_with(
        NodeKind::Ember,
        &["client-output-buffer-limit normal 0 500kb 2"],
    );
    let addr = node.addr();
    let mut con = connect(&addr);
    let big = "x".repeat(100_000);
    let () = q(&mut con, &["SET", "big", &big]);
    let (mut stream, writer) = hog(&addr, "slow", 20_000);
    // Stuck with more than the soft limit unsent...
    wait_for("the client to be over the soft limit", || {
        client_line(&mut con, "slow").is_some_and(|l| field(&l, "omem") >= 500 * 1024)
    });
    // ... until its second has passed.
    wait_for("the client to be closed", || {
        client_line(&mut con, "slow").is_none()
    });
    assert!(read_to_close(&mut stream).is_some());
    writer.join().expect("writer");
}

/// Without a limit (the default, `normal 0 0 0`), a client that does not
/// read is never closed, what it sends meanwhile is still run (as Redis
/// does), and its pending output shows in CLIENT LIST's `omem`, `oll` and
/// `tot-mem`, and in INFO's `mem_clients_normal`, which
/// `used_memory_dataset` leaves out.
#[test]
fn pending_output_shows_in_client_list_and_info() {
    let node = NodeProcess::start(NodeKind::Ember);
    let addr = node.addr();
    let mut con = connect(&addr);
    let big = "x".repeat(100_000);
    let () = q(&mut con, &["SET", "big", &big]);
    let idle = info(&mut con, "memory", "mem_clients_normal");
    assert!(idle > 0, "mem_clients_normal counts the connection itself");
    let (stream, writer) = hog(&addr, "stuck", 2_000);
    let mut line = String::new();
    wait_for("output to pile up", || {
        line = client_line(&mut con, "stuck").expect("the client stays connected");
        field(&line, "omem") > 4 << 20
    });
    // Values of 64 KB and more are queued by reference, not copied, but
    // the client holds them until they are sent (a value overwritten
    // meanwhile lives on): `tot-mem` counts them, as Redis counts its
    // copies, and `maxmemory-clients` with it. `mem_clients_normal` does
    // not: it is what clients allocated, part of `used_memory`.
    assert!(field(&line, "oll") > 0, "{line}");
    let tot = field(&line, "tot-mem");
    assert!(tot >= field(&line, "omem"), "{line}");
    let normal = info(&mut con, "memory", "mem_clients_normal");
    let besides_output = tot - field(&line, "omem");
    assert!(
        normal > 0 && normal < 4 << 20 && normal >= besides_output,
        "mem_clients_normal {normal}, tot-mem {tot}"
    );
    let used = info(&mut con, "memory", "used_memory");
    let dataset = info(&mut con, "memory", "used_memory_dataset");
    assert!(
        dataset <= used - normal,
        "dataset {dataset} includes clients"
    );
    // Still connected: no limit is set.
    assert!(client_line(&mut con, "stuck").is_some());
    drop(stream);
    writer.join().expect("writer");
    wait_for("the client to leave", || {
        client_line(&mut con, "stuck").is_none()
    });
}

/// CLIENT LIST's buffer fields of the client asking, next to Redis's: the
/// request is still in the query buffer (`qbuf=26` for `CLIENT LIST`),
/// its arguments are `argv-mem`, and no output is pending.
#[test]
fn client_list_buffer_fields_match_redis() {
    let mut lines = Vec::new();
    for kind in [NodeKind::Ember, NodeKind::Redis] {
        let node = NodeProcess::start(kind);
        let mut con = connect(node.addr());
        let list: String = q(&mut con, &["CLIENT", "LIST"]);
        // Its own line (the harness may have a connection of its own).
        let line = list
            .lines()
            .find(|l| l.contains("cmd=client|list"))
            .unwrap_or_else(|| panic!("{kind:?}: no line of its own in {list}"))
            .to_string();
        let info_line: String = q(&mut con, &["CLIENT", "INFO"]);
        lines.push((kind, line, info_line));
    }
    for name in ["qbuf", "argv-mem", "multi-mem", "obl", "oll", "omem"] {
        let ember = field(&lines[0].1, name);
        let redis = field(&lines[1].1, name);
        assert_eq!(ember, redis, "CLIENT LIST {name}");
        let ember = field(&lines[0].2, name);
        let redis = field(&lines[1].2, name);
        assert_eq!(ember, redis, "CLIENT INFO {name}");
    }
    for (kind, line, _) in &lines {
        assert!(field(line, "qbuf-free") > 0, "{kind:?}: {line}");
        assert!(field(line, "tot-mem") > 0, "{kind:?}: {line}");
    }
}

/// Pushes `n` elements to list `key` in pipelined batches.
fn big_list(con: &mut Connection, key: &str, n: usize) {
    for chunk in 0..n / 10_000 {
        let mut pipe = redis::pipe();
        let mut cmd = redis::cmd("RPUSH");
        cmd.arg(key);
        for i in 0..10_000 {
            cmd.arg(chunk * 10_000 + i);
        }
        pipe.add_command(cmd).ignore();
        let () = pipe.query(con).expect("RPUSH");
    }
}

/// UNLINK and the lazy-free settings: large values are freed by the
/// lazy-free thread (`lazyfreed_objects` counts them), small ones in
/// place; FLUSHALL ASYNC hands every key over; DEL is lazy with
/// `lazyfree-lazy-user-del yes`, FLUSHDB with `lazyfree-lazy-user-flush
/// yes`.
#[test]
fn large_values_are_freed_lazily() {
    let node = NodeProcess::start(NodeKind::Ember);
    let mut con = connect(node.addr());
    let freed = |con: &mut Connection| info(con, "memory", "lazyfreed_objects");
    assert_eq!(freed(&mut con), 0);
    big_list(&mut con, "list", 200_000);
    let n: i64 = q(&mut con, &["UNLINK", "list"]);
    assert_eq!(n, 1);
    // Gone at once for every client, freed soon after.
    let exists: i64 = q(&mut con, &["EXISTS", "list"]);
    assert_eq!(exists, 0);
    wait_for("the list to be freed", || freed(&mut con) == 1);
    assert_eq!(info(&mut con, "memory", "lazyfree_pending_objects"), 0);
    // A small value is freed in place.
    let () = q(&mut con, &["SET", "small", "x"]);
    let n: i64 = q(&mut con, &["UNLINK", "small"]);
    assert_eq!(n, 1);
    // Plain DEL frees in place...
    big_list(&mut con, "list", 200_000);
    let _: i64 = q(&mut con, &["DEL", "list"]);
    assert_eq!(freed(&mut con), 1);
    // ... unless told otherwise.
    let () = q(
        &mut con,
        &["CONFIG", "SET", "lazyfree-lazy-user-del", "yes"],
    );
    big_list(&mut con, "list", 200_000);
    let _: i64 = q(&mut con, &["DEL", "list"]);
    wait_for("DEL's list to be freed", || freed(&mut con) == 2);
    // FLUSHALL ASYNC hands every key over.
    for i in 0..1000 {
        let () = q(&mut con, &["SET", &format!("k{i}"), "v"]);
    }
    let () = q(&mut con, &["FLUSHALL", "ASYNC"]);
    let size: i64 = q(&mut con, &["DBSIZE"]);
    assert_eq!(size, 0);
    wait_for("the flushed keys to be freed", || freed(&mut con) == 1002);
    // FLUSHDB without a mode follows lazyfree-lazy-user-flush.
    for i in 0..10 {
        let () = q(&mut con, &["SET", &format!("k{i}"), "v"]);
    }
    let () = q(&mut con, &["FLUSHDB"]);
    assert_eq!(freed(&mut con), 1002);
    let () = q(
        &mut con,
        &["CONFIG", "SET", "lazyfree-lazy-user-flush", "yes"],
    );
    for i in 0..10 {
        let () = q(&mut con, &["SET", &format!("k{i}"), "v"]);
    }
    let () = q(&mut con, &["FLUSHDB"]);
    wait_for("FLUSHDB's keys to be freed", || freed(&mut con) == 1012);
    let () = q(&mut con, &["FLUSHALL", "SYNC"]);
    // CONFIG RESETSTAT clears the count, as in Redis.
    let () = q(&mut con, &["CONFIG", "RESETSTAT"]);
    assert_eq!(freed(&mut con), 0);
}

/// `lazyfree-lazy-eviction yes`: evicted large values go to the thread.
#[test]
fn evicted_large_values_are_freed_lazily() {
    let node = NodeProcess::start(NodeKind::Ember);
    let mut con = connect(node.addr());
    let used = info(&mut con, "memory", "used_memory");
    let limit = (used + (6 << 20)).to_string();
    let () = q(
        &mut con,
        &["CONFIG", "SET", "lazyfree-lazy-eviction", "yes"],
    );
    let () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-random"],
    );
    let () = q(&mut con, &["CONFIG", "SET", "maxmemory", &limit]);
    for i in 0..10 {
        big_list(&mut con, &format!("list{i}"), 200_000);
    }
    let evicted = info(&mut con, "stats", "evicted_keys");
    assert!(evicted > 0, "nothing was evicted");
    wait_for("evicted lists to be freed", || {
        info(&mut con, "memory", "lazyfreed_objects") > 0
            && info(&mut con, "memory", "lazyfree_pending_objects") == 0
    });
}

/// The new settings exist, with Redis's defaults.
#[test]
fn lazyfree_settings_have_redis_defaults() {
    let node = NodeProcess::start(NodeKind::Ember);
    let mut con = connect(node.addr());
    for name in [
        "lazyfree-lazy-eviction",
        "lazyfree-lazy-expire",
        "lazyfree-lazy-server-del",
        "lazyfree-lazy-user-del",
        "lazyfree-lazy-user-flush",
        "replica-lazy-flush",
    ] {
        let got: Vec<String> = q(&mut con, &["CONFIG", "GET", name]);
        assert_eq!(got, vec![name.to_string(), "no".to_string()]);
    }
    let got: Vec<String> = q(&mut con, &["CONFIG", "GET", "client-output-buffer-limit"]);
    assert_eq!(
        got[1],
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
}

/// A big request grows its connection's read buffer; the next batch, far
/// smaller, gives the room back, as Redis's cron resizes a query buffer
/// twice its recent peak (unit/lazyfree's "UNLINK can reclaim memory in
/// background" measures `used_memory` after such a request).
#[test]
fn a_big_requests_read_buffer_is_given_back() {
    let node = NodeProcess::start(NodeKind::Ember);
    let mut con = connect(node.addr());
    let _: () = q(&mut con, &["CLIENT", "SETNAME", "big"]);
    let before = info(&mut con, "memory", "used_memory");
    let members: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
    let mut sadd = redis::cmd("SADD");
    sadd.arg("myset").arg(&members);
    let added: i64 = sadd.query(&mut con).expect("SADD");
    assert_eq!(added, 100_000);
    let _: i64 = q(&mut con, &["DEL", "myset"]);
    let line = client_line(&mut con, "big").expect("listed");
    assert!(field(&line, "qbuf-free") < 64 * 1024, "{line}");
    let after = info(&mut con, "memory", "used_memory");
    assert!(
        after < before + 256 * 1024,
        "used_memory {before} before, {after} after"
    );
}

//! MONITOR against Redis: the same commands, the same lines (the time and
//! the client's port aside).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use ember_tests::{NodeKind, NodeProcess};

use crate::redis_crate::{connect, q};

/// A raw connection to `addr`, and a reader of its lines.
fn raw(addr: impl std::net::ToSocketAddrs) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let lines = BufReader::new(stream.try_clone().expect("clone"));
    (stream, lines)
}

/// What a monitor of `kind` is sent while another client runs a mix of
/// commands: one line each, the time and the client's address replaced.
fn monitored(kind: NodeKind) -> Vec<String> {
    let node = NodeProcess::start(kind);
    let mut con = connect(node.addr());
    let (mut monitor, mut lines) = raw(node.addr());
    monitor.write_all(b"MONITOR\r\n").expect("MONITOR");
    let mut ok = String::new();
    lines.read_line(&mut ok).expect("MONITOR's reply");
    assert_eq!(ok, "+OK\r\n", "{kind:?}");
    let () = q(&mut con, &["SET", "foo", "bar \"quoted\"\n\u{1}"]);
    let _: Option<String> = q(&mut con, &["GET", "foo"]);
    // Administrative: never shown.
    let _: Vec<String> = q(&mut con, &["CONFIG", "GET", "maxmemory"]);
    let _: () = q(
        &mut con,
        &["EVAL", "redis.call('set', KEYS[1], ARGV[1])", "1", "k", "v"],
    );
    let _: () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("a")
        .arg("1")
        .ignore()
        .cmd("INCR")
        .arg("a")
        .ignore()
        .query(&mut con)
        .expect("MULTI");
    // Refused before it runs (arity): not shown.
    let _ = redis::cmd("GET").query::<()>(&mut con);
    // Secrets redacted, the command failing or not.
    let _ = redis::cmd("AUTH").arg("not-real").query::<()>(&mut con);
    let _ = redis::cmd("AUTH")
        .arg("user")
        .arg("pass")
        .query::<()>(&mut con);
    let _ = redis::cmd("HELLO")
        .arg("2")
        .arg("AUTH")
        .arg("user")
        .arg("pass")
        .query::<redis::Value>(&mut con);
    let () = q(&mut con, &["SELECT", "3"]);
    let () = q(&mut con, &["SET", "in3", "x"]);
    let _: String = q(&mut con, &["PING"]);
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        if let Err(e) = lines.read_line(&mut line) {
            panic!("{kind:?}: {e} after {seen:#?}");
        }
        let line = line.trim_end().to_string();
        let done = line.ends_with("\"PING\"");
        // `+1733551234.123456 [0 127.0.0.1:50312] "set" ...`
        let (time, rest) = line.split_once(' ').expect("time");
        assert!(time.starts_with('+') && time.contains('.'), "{line}");
        let (who, args) = rest.split_once("] ").expect("who");
        let (db, addr) = who.trim_start_matches('[').split_once(' ').expect("db");
        let addr = if addr == "lua" { "lua" } else { "client" };
        seen.push(format!("[{db} {addr}] {args}"));
        if done {
            break;
        }
    }
    seen
}

#[test]
fn monitor_lines_match_redis() {
    let ember = monitored(NodeKind::Ember);
    let redis = monitored(NodeKind::Redis);
    assert_eq!(ember, redis, "Ember's lines, then Redis's");
    // What the test means to cover is in them.
    let text = redis.join("\n").to_lowercase();
    for want in [
        "\"eval\"",
        "[0 lua] \"set\" \"k\" \"v\"",
        "\"multi\"",
        "\"exec\"",
        "\"auth\" \"(redacted)\" \"(redacted)\"",
        "[3 client] \"set\" \"in3\"",
        "\\\"quoted\\\"\\n\\x01",
    ] {
        assert!(text.contains(want), "{want} not in {text}");
    }
    assert!(!text.contains("config"), "{text}");
}

/// CLIENT LIST shows a monitor with flag `O`, RESET makes it an ordinary
/// client again, and a second MONITOR is ignored without a reply.
#[test]
fn a_monitor_in_client_list_and_after_reset() {
    for kind in [NodeKind::Ember, NodeKind::Redis] {
        let node = NodeProcess::start(kind);
        let mut con = connect(node.addr());
        let (mut monitor, mut lines) = raw(node.addr());
        monitor
            .write_all(b"CLIENT SETNAME mon\r\nMONITOR\r\nMONITOR\r\nRESET\r\n")
            .expect("write");
        let mut replies = Vec::new();
        for _ in 0..3 {
            let mut line = String::new();
            lines.read_line(&mut line).expect("reply");
            replies.push(line);
        }
        assert_eq!(replies, ["+OK\r\n", "+OK\r\n", "+RESET\r\n"], "{kind:?}");
        // RESET dropped the name; the connection is an ordinary one again.
        let list: String = q(&mut con, &["CLIENT", "LIST"]);
        // (Not a count of lines: the harness's own first connection may
        // still be listed while its close is on the way.)
        assert!(!list.contains("name=mon "), "{kind:?}: {list}");
        assert!(!list.contains("flags=O"), "{kind:?}: {list}");
        // Monitoring again: flag O, of type normal (Redis marks a monitor
        // a replica, and shows it as a normal client).
        monitor
            .write_all(b"CLIENT SETNAME mon2\r\nMONITOR\r\n")
            .expect("write");
        for _ in 0..2 {
            let mut line = String::new();
            lines.read_line(&mut line).expect("reply");
        }
        let list: String = q(&mut con, &["CLIENT", "LIST", "TYPE", "normal"]);
        assert!(
            list.contains("name=mon2 ") && list.contains("flags=O "),
            "{kind:?}: {list}"
        );
        let replicas: String = q(&mut con, &["CLIENT", "LIST", "TYPE", "replica"]);
        assert!(replicas.is_empty(), "{kind:?}: {replicas}");
    }
}

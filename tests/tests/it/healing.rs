//! Self-healing end to end: a node that restarts empty or misses writes
//! never makes a key read as missing, and `ember-cli repair` brings it back,
//! with real server processes and fresh `ember-cli` runs (each its own
//! client, knowing nothing of the ones before).

use ::client::{Connection, Frame};
use ember_tests::{NodeKind, NodeProcess};

use crate::client::ember_cli;

fn topology_args(nodes: &[&NodeProcess]) -> Vec<String> {
    nodes
        .iter()
        .flat_map(|n| ["--replica".to_owned(), n.addr()])
        .collect()
}

/// `SET k<i> v<i>` for `range`, every third key with a TTL.
fn sets(range: std::ops::Range<usize>) -> String {
    range
        .map(|i| match i % 3 {
            0 => format!("SET k{i} v{i} EX 5000\n"),
            _ => format!("SET k{i} v{i}\n"),
        })
        .collect()
}

fn run_cli(topology: &[String], extra: &[&str], stdin: &str) -> (u8, String, String) {
    let mut args: Vec<&str> = topology.iter().map(String::as_str).collect();
    // Nodes that answer must not time out on a busy machine.
    if !extra.contains(&"--timeout") {
        args.extend(["--timeout", "10s"]);
    }
    args.extend(extra);
    ember_cli(&args, stdin.as_bytes())
}

/// Reads `GET k<i>` for `range` through a fresh client and returns the
/// lines that are not `v<i>`.
fn wrong_reads(topology: &[String], range: std::ops::Range<usize>) -> Vec<String> {
    let gets: String = range.clone().map(|i| format!("GET k{i}\n")).collect();
    let (code, out, err) = run_cli(topology, &["--repair", "off"], &gets);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), range.len(), "{err}");
    range
        .zip(lines)
        .filter(|(i, line)| *line != format!("v{i}"))
        .map(|(i, line)| format!("k{i}: {line:?}"))
        .collect()
}

/// Checks, on the node itself, every key's value and that the keys with a
/// TTL have one.
fn node_holds(node: &NodeProcess, range: std::ops::Range<usize>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // A debug-build node on a busy machine: time is not under test.
        let mut options = ::client::Options::default();
        options.timeout = std::time::Duration::from_secs(60);
        let conn = Connection::connect_with(node.addr(), options)
            .await
            .expect("connect");
        let mut replies = Vec::new();
        let keys: Vec<usize> = range.clone().collect();
        for chunk in keys.chunks(1000) {
            let gets = chunk.iter().flat_map(|i| {
                [
                    vec![
                        bytes::Bytes::from("GET"),
                        bytes::Bytes::from(format!("k{i}")),
                    ],
                    vec![
                        bytes::Bytes::from("TTL"),
                        bytes::Bytes::from(format!("k{i}")),
                    ],
                ]
            });
            replies.extend(conn.pipeline(gets).await);
        }
        for (i, pair) in range.zip(replies.chunks(2)) {
            let value = pair[0].as_ref().expect("GET");
            assert_eq!(
                value,
                &Frame::bulk(format!("v{i}")),
                "k{i} on {}",
                node.addr()
            );
            let ttl = match pair[1].as_ref().expect("TTL") {
                Frame::Integer(t) => *t,
                other => panic!("TTL {other:?}"),
            };
            if i % 3 == 0 {
                assert!((4000..=5000).contains(&ttl), "k{i} TTL {ttl}");
            } else {
                assert_eq!(ttl, -1, "k{i}");
            }
        }
    });
}

fn restart_empty_heals(kind: NodeKind) {
    let mut first = NodeProcess::start(kind);
    let second = NodeProcess::start(kind);
    let t = topology_args(&[&first, &second]);
    let (code, _, err) = run_cli(&t, &[], &sets(0..10_000));
    assert_eq!(code, 0, "{err}");
    first.kill();
    // Policy one: group 1 takes them, and keeps hints for group 0.
    let (code, _, err) = run_cli(&t, &[], &sets(10_000..20_000));
    assert_eq!(code, 0, "{err}");
    first.restart();
    // Fresh clients, which never saw the node fail: no nil, no wrong value.
    assert_eq!(wrong_reads(&t, 0..20_000), Vec::<String>::new());
    let (code, out, err) = run_cli(&t, &["repair"], "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "{}: full copy from {}",
            first.addr(),
            second.addr()
        )),
        "{out}"
    );
    let (code, out, _) = run_cli(&t, &["repair"], "");
    assert_eq!((code, out.as_str()), (0, "every node is verified\n"));
    node_holds(&first, 0..20_000);
    assert_eq!(wrong_reads(&t, 0..20_000), Vec::<String>::new());
    let (code, out, err) = run_cli(&t, &["check"], "");
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn an_ember_node_that_restarts_empty_heals() {
    restart_empty_heals(NodeKind::Ember);
}

#[test]
fn a_redis_node_that_restarts_empty_heals() {
    restart_empty_heals(NodeKind::Redis);
}

fn paused_node_gets_hinted_handoff(kind: NodeKind) {
    let first = NodeProcess::start(kind);
    let second = NodeProcess::start(kind);
    let t = topology_args(&[&first, &second]);
    let (code, _, err) = run_cli(&t, &[], &sets(0..1_000));
    assert_eq!(code, 0, "{err}");
    first.pause();
    // The writing process is gone before the node comes back.
    let (code, _, err) = run_cli(&t, &["--timeout", "1s"], &sets(1_000..1_300));
    assert_eq!(code, 0, "{err}");
    first.resume();
    assert_eq!(wrong_reads(&t, 0..1_300), Vec::<String>::new());
    let (code, out, err) = run_cli(&t, &["repair"], "");
    assert_eq!(code, 0, "{out}{err}");
    // Only the keys it missed were copied, not the shard.
    let want = format!(
        "{}: 300 hinted keys copied and 0 deleted from {}",
        first.addr(),
        second.addr()
    );
    assert!(out.starts_with(&want), "{out}");
    node_holds(&first, 0..1_300);
    let (code, out, err) = run_cli(&t, &["check"], "");
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_paused_ember_node_gets_hinted_handoff() {
    paused_node_gets_hinted_handoff(NodeKind::Ember);
}

#[test]
fn a_paused_redis_node_gets_hinted_handoff() {
    paused_node_gets_hinted_handoff(NodeKind::Redis);
}

//! Self-healing end to end: a node that restarts empty or misses writes
//! never makes a key read as missing, and `ember-cli repair` brings it back,
//! with real server processes and fresh `ember-cli` runs (each its own
//! client, knowing nothing of the ones before).

use std::future::Future;
use std::time::Duration;

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
        let conn = patient_connection(node).await;
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

/// A connection to `node` for reading it back: a debug-build node on a
/// busy machine may take seconds to answer thousands of commands, and time
/// is not under test (with the default timeout of 1 s, the tail of a long
/// pipeline would time out and read as missing).
async fn patient_connection(node: &NodeProcess) -> Connection {
    let mut options = ::client::Options::default();
    options.timeout = Duration::from_secs(60);
    Connection::connect_with(node.addr(), options)
        .await
        .expect("connect")
}

/// The keys of `keys` that `node` does not hold with their own name as
/// value (as the writers of [`auto_repair_under_load`] set them). A read
/// that fails is a failure of the test, never a key reported missing.
async fn lacking<'k>(node: &NodeProcess, keys: &'k [String]) -> Vec<&'k String> {
    let conn = patient_connection(node).await;
    let mut lacking = Vec::new();
    for chunk in keys.chunks(1000) {
        let gets = chunk
            .iter()
            .map(|k| vec![bytes::Bytes::from("GET"), bytes::Bytes::from(k.clone())]);
        let replies = conn.pipeline(gets).await;
        assert_eq!(replies.len(), chunk.len());
        for (key, reply) in chunk.iter().zip(replies) {
            match reply {
                Ok(Frame::Bulk(v)) if v == key.as_bytes() => {}
                Ok(_) => lacking.push(key),
                Err(e) => panic!("GET {key} on {}: {e}", node.addr()),
            }
        }
    }
    lacking
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
    // Long enough that the node that answers always does, on a machine
    // busy running every other test; the paused one times out once, is
    // taken as down, and then gets hints.
    let (code, _, err) = run_cli(&t, &["--timeout", "5s"], &sets(1_000..1_300));
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

// ---- repairs with a Client, under load and under faults ----

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Options for clients that must not time out on a busy machine.
fn patient() -> ::client::Options {
    let mut options = ::client::Options::default();
    options.timeout = Duration::from_secs(10);
    options.backoff = ::client::Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
        jitter: 0.25,
    };
    options
}

async fn connect(nodes: &[&NodeProcess], options: ::client::Options) -> ::client::Client {
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr()).collect();
    connect_to(&addrs, options).await
}

/// A client of one shard, one group per address.
async fn connect_to(addrs: &[String], options: ::client::Options) -> ::client::Client {
    let topology = ::client::Topology::new(addrs.iter().map(|a| [a.clone()])).expect("topology");
    ::client::Client::connect(topology, options)
        .await
        .expect("connect")
}

/// Waits, within a bound, for `client` to see `node` verified.
async fn verified(client: &::client::Client, node: ::client::NodeId) {
    for _ in 0..600 {
        if client.trust(node) == Some(::client::Trust::Verified) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node {} never verified: {:?}", node.0, client.trust(node));
}

async fn load(client: &::client::Client, range: std::ops::Range<usize>) {
    // As `sets`: every third key with a TTL.
    let sets = range.map(|i| {
        let mut set = vec![
            bytes::Bytes::from("SET"),
            bytes::Bytes::from(format!("k{i}")),
            bytes::Bytes::from(format!("v{i}")),
        ];
        if i % 3 == 0 {
            set.extend([bytes::Bytes::from("EX"), bytes::Bytes::from("5000")]);
        }
        set
    });
    // In pipelines of a thousand: each command's timeout runs from when it
    // is sent, and a debug-build node on a busy machine took over 10 s for
    // 20,000 at once.
    let sets: Vec<_> = sets.collect();
    for chunk in sets.chunks(1000) {
        for reply in client.pipeline(chunk.iter().cloned()).await {
            reply.expect("SET");
        }
    }
    // Under policy `one` a write is answered once one node took it: wait
    // until every node has (a test that kills a node next must not lose
    // the writes only that node took).
    client.flush().await;
}

/// A long-lived client repairs a node that came back empty by itself, and
/// while it does, two other clients keep writing: every write they had
/// acknowledged is on both nodes once the fleet has settled.
fn auto_repair_under_load(kind: NodeKind) {
    ember_tests::log_if_asked();
    let mut first = NodeProcess::start(kind);
    let second = NodeProcess::start(kind);
    block_on(async {
        let watcher = connect(&[&first, &second], patient()).await;
        load(&watcher, 0..20_000).await;
        first.kill();
        first.restart();
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let nodes = [first.addr(), second.addr()];
                tokio::spawn(async move {
                    let topology = ::client::Topology::new(nodes.map(|n| [n])).unwrap();
                    let client = ::client::Client::connect(topology, patient())
                        .await
                        .unwrap();
                    let mut acked = Vec::new();
                    for i in 0..3_000 {
                        let key = format!("w{w}:{i}");
                        if client.set(&key, &key).await.is_ok() {
                            acked.push(key);
                        }
                        if i % 100 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    client.flush().await;
                    acked
                })
            })
            .collect();
        // The watcher meets the restarted node (a write reaches it) and
        // repairs it by itself.
        watcher.set("poke", "1").await.expect("SET");
        verified(&watcher, ::client::NodeId(0)).await;
        let mut acked = Vec::new();
        for w in writers {
            acked.extend(w.await.expect("writer"));
        }
        // No error beyond the policy's: under `one`, every write succeeded.
        assert_eq!(acked.len(), 6_000);
        // Hints left while the node was a replica are replayed by whoever
        // repairs next: here a fresh client.
        // Under load a writer may also have timed out on the other node, and
        // left hints for it: every node not verified is repaired, from
        // hints only.
        let fresh = connect(&[&first, &second], patient()).await;
        for n in [0, 1] {
            let node = ::client::NodeId(n);
            if fresh.trust(node) != Some(::client::Trust::Verified) {
                let report = fresh.repair(node).await.expect("repair");
                assert_ne!(report.kind, ::client::RepairKind::Full, "{report:?}");
            }
        }
        for node in [&first, &second] {
            let lost = lacking(node, &acked).await;
            assert!(
                lost.is_empty(),
                "{} (first {}) lost {} writes: {:?}; trust {:?}",
                node.addr(),
                first.addr(),
                lost.len(),
                &lost[..lost.len().min(5)],
                [0, 1].map(|n| fresh.trust(::client::NodeId(n))),
            );
        }
        // The keys with a TTL have the same deadline on both nodes, to the
        // millisecond: the sync and the hints' copies carry instants.
        let (a, b) = (
            deadlines(&first, 0..20_000).await,
            deadlines(&second, 0..20_000).await,
        );
        let differ: Vec<String> = (0..20_000)
            .zip(a.iter().zip(&b))
            .filter(|(_, (x, y))| x != y)
            .map(|(i, (x, y))| format!("k{i}: {x} {y}"))
            .collect();
        assert!(
            differ.is_empty(),
            "{} deadlines differ: {:?}",
            differ.len(),
            &differ[..differ.len().min(5)]
        );
    });
    node_holds(&first, 0..20_000);
    let t = topology_args(&[&first, &second]);
    // Verbose: a difference names its key and what differs. Time is not
    // under test: a 10 s timeout ran out on the busy machine, and `check`
    // reads each node's PTTL at its own moment, there seconds apart (the
    // deadlines were compared exactly above).
    let (code, out, err) = run_cli(
        &t,
        &[
            "--timeout",
            "60s",
            "check",
            "--verbose",
            "--ttl-tolerance",
            "60000",
        ],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
}

/// `PEXPIRETIME k<i>` on `node` for `range`.
async fn deadlines(node: &NodeProcess, range: std::ops::Range<usize>) -> Vec<i64> {
    let conn = patient_connection(node).await;
    let keys: Vec<usize> = range.collect();
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(1000) {
        let reads = chunk.iter().map(|i| {
            vec![
                bytes::Bytes::from("PEXPIRETIME"),
                bytes::Bytes::from(format!("k{i}")),
            ]
        });
        for reply in conn.pipeline(reads).await {
            match reply {
                Ok(Frame::Integer(at)) => out.push(at),
                other => panic!("PEXPIRETIME on {}: {other:?}", node.addr()),
            }
        }
    }
    out
}

#[test]
fn a_redis_node_is_repaired_automatically_under_load() {
    auto_repair_under_load(NodeKind::Redis);
}

#[test]
fn an_ember_node_is_repaired_automatically_under_load() {
    auto_repair_under_load(NodeKind::Ember);
}

/// Two clients repair the same node at once: one copies, the other waits
/// and finds it done.
fn two_clients_repair_one_node_once(kind: NodeKind) {
    let mut first = NodeProcess::start(kind);
    let second = NodeProcess::start(kind);
    block_on(async {
        let mut options = patient();
        options.repair = false;
        let a = connect(&[&first, &second], options.clone()).await;
        load(&a, 0..5_000).await;
        first.kill();
        first.restart();
        let a = connect(&[&first, &second], options.clone()).await;
        let b = connect(&[&first, &second], options).await;
        let node = ::client::NodeId(0);
        let (ra, rb) = tokio::join!(a.repair(node), b.repair(node));
        let mut kinds = [ra.expect("a").kind, rb.expect("b").kind];
        kinds.sort_by_key(|k| format!("{k:?}"));
        assert_eq!(
            kinds,
            [::client::RepairKind::Full, ::client::RepairKind::Nothing]
        );
        assert_eq!(a.trust(node), Some(::client::Trust::Verified));
        assert_eq!(b.trust(node), Some(::client::Trust::Verified));
    });
    node_holds(&first, 0..5_000);
}

#[test]
fn two_clients_repair_one_redis_node_once() {
    two_clients_repair_one_node_once(NodeKind::Redis);
}

#[test]
fn two_clients_repair_one_ember_node_once() {
    two_clients_repair_one_node_once(NodeKind::Ember);
}

/// A repair whose source dies during the sync, and one whose node dies:
/// each says what happened, leaves the node a master and the source
/// unpaused, and the fleet readable.
#[test]
fn a_repair_that_fails_half_way_leaves_the_fleet_serving() {
    for victim in ["source", "node"] {
        let mut first = NodeProcess::start(NodeKind::Redis);
        let mut second = NodeProcess::start(NodeKind::Redis);
        let third = NodeProcess::start(NodeKind::Redis);
        block_on(async {
            let mut options = patient();
            options.repair = false;
            options.repair_timeout = Duration::from_secs(60);
            let nodes = [first.addr(), second.addr(), third.addr()];
            let client = connect_to(&nodes, options.clone()).await;
            load(&client, 0..3_000).await;
            first.kill();
            first.restart();
            // A slow sync (1 ms a key), so that it can be interrupted.
            let source = Connection::connect(second.addr()).await.unwrap();
            source
                .cmd(["CONFIG", "SET", "rdb-key-save-delay", "1000"])
                .await
                .unwrap();
            let client = connect_to(&nodes, options).await;
            // The repair picks a source among the peers this client has
            // verified: on a loaded machine a fresh client may not have
            // yet, and the repair would fail before it starts.
            verified(&client, ::client::NodeId(1)).await;
            verified(&client, ::client::NodeId(2)).await;
            let repair = {
                let client = client.clone();
                tokio::spawn(async move { client.repair(::client::NodeId(0)).await })
            };
            let node = Connection::connect(first.addr()).await.unwrap();
            for _ in 0..600 {
                let info = node.cmd(["INFO", "replication"]).await.unwrap();
                let text = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
                if text.contains("master_sync_in_progress:1") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            match victim {
                "source" => second.kill(),
                _ => first.kill(),
            }
            let err = repair.await.unwrap().expect_err("the repair must fail");
            let text = err.to_string();
            assert!(text.starts_with("repair: "), "{text}");
            // It names the node that failed.
            let dead = if victim == "source" {
                second.addr()
            } else {
                first.addr()
            };
            assert!(text.contains(&dead), "{text}");
            if victim == "source" {
                // The node is promoted back, not left a replica of a dead
                // node; reads still work from the third group.
                let role = node.cmd(["ROLE"]).await.unwrap();
                assert_eq!(role.as_slice().unwrap()[0], Frame::bulk("master"), "{text}");
                assert_eq!(client.get("k7").await.unwrap().as_deref(), Some(&b"v7"[..]));
            } else {
                // The source is not left paused: a write answers at once.
                let mut quick = ::client::Options::default();
                quick.timeout = Duration::from_millis(500);
                let source = Connection::connect_with(second.addr(), quick)
                    .await
                    .unwrap();
                source
                    .cmd(["SET", "after", "1"])
                    .await
                    .expect("the source takes writes");
                assert_eq!(client.get("k7").await.unwrap().as_deref(), Some(&b"v7"[..]));
            }
        });
        drop((first, second, third));
    }
}

/// Two nodes of a shard that each missed a write the other took (both
/// slow for a moment under load): neither is verified, yet both are
/// repaired, each given the key it missed by the other.
#[test]
fn two_nodes_that_each_missed_a_write_repair_each_other() {
    let first = NodeProcess::start(NodeKind::Redis);
    let second = NodeProcess::start(NodeKind::Redis);
    block_on(async {
        let mut options = patient();
        options.repair = false;
        // A repair waits one timeout for writes in flight before it checks
        // its copies again.
        options.timeout = Duration::from_secs(1);
        let client = connect(&[&first, &second], options.clone()).await;
        load(&client, 0..100).await;
        // What the writers' clients left: each node took a write the other
        // missed, and holds the hint for it.
        let (a, b) = (
            Connection::connect(first.addr()).await.unwrap(),
            Connection::connect(second.addr()).await.unwrap(),
        );
        a.cmd(["SET", "k1", "new1"]).await.unwrap();
        b.cmd(["SET", "k2", "new2"]).await.unwrap();
        let hint = |addr: String, key: &'static str| {
            vec![
                bytes::Bytes::from("RPUSH"),
                bytes::Bytes::from(route_hint_key(&addr)),
                bytes::Bytes::from(key),
            ]
        };
        let (a_meta, b_meta) = (meta(&first).await, meta(&second).await);
        a_meta.cmd_bytes(hint(second.addr(), "k1")).await.unwrap();
        b_meta.cmd_bytes(hint(first.addr(), "k2")).await.unwrap();
        let fresh = connect(&[&first, &second], options).await;
        for n in [0, 1] {
            assert_eq!(
                fresh.trust(::client::NodeId(n)),
                Some(::client::Trust::Unverified(::client::Doubt::Hinted))
            );
        }
        let r = fresh
            .repair(::client::NodeId(0))
            .await
            .expect("node 0 from node 1");
        assert_eq!((r.kind, r.copied), (::client::RepairKind::Hints, 1));
        let r = fresh
            .repair(::client::NodeId(1))
            .await
            .expect("node 1 from node 0");
        assert_eq!((r.kind, r.copied), (::client::RepairKind::Hints, 1));
        for conn in [&a, &b] {
            assert_eq!(conn.cmd(["GET", "k1"]).await.unwrap(), Frame::bulk("new1"));
            assert_eq!(conn.cmd(["GET", "k2"]).await.unwrap(), Frame::bulk("new2"));
        }
        assert_eq!(
            fresh.trust(::client::NodeId(0)),
            Some(::client::Trust::Verified)
        );
        assert_eq!(
            fresh.trust(::client::NodeId(1)),
            Some(::client::Trust::Verified)
        );
    });
}

/// A hinted key's deadline reaches the node as the instant it is on the
/// peer, to the millisecond, even when the node takes the copy late (its
/// writes paused for a second): a time to live read on the peer and set on
/// the node later would move the deadline later by the wait.
fn a_hinted_keys_deadline_is_copied_exactly(kind: NodeKind) {
    let first = NodeProcess::start(kind);
    let second = NodeProcess::start(kind);
    block_on(async {
        let mut options = patient();
        options.repair = false;
        // Longer than the pause below; the repair waits one timeout for
        // writes in flight before it checks its copies again.
        options.timeout = Duration::from_secs(3);
        let client = connect(&[&first, &second], options.clone()).await;
        load(&client, 0..10).await;
        verified(&client, ::client::NodeId(0)).await;
        verified(&client, ::client::NodeId(1)).await;
        // What a writer's client left: the second node took a write with a
        // deadline (1 January 2100) that the first missed, and holds its
        // hint.
        let deadline = 4_102_444_800_000_i64;
        let (a, b) = (
            Connection::connect(first.addr()).await.unwrap(),
            Connection::connect(second.addr()).await.unwrap(),
        );
        let at = deadline.to_string();
        b.cmd(["SET", "k1", "new1", "PXAT", at.as_str()])
            .await
            .unwrap();
        let hint = vec![
            bytes::Bytes::from("RPUSH"),
            bytes::Bytes::from(route_hint_key(&first.addr())),
            bytes::Bytes::from("k1"),
        ];
        meta(&second).await.cmd_bytes(hint).await.unwrap();
        let fresh = connect(&[&first, &second], options).await;
        assert_eq!(
            fresh.trust(::client::NodeId(0)),
            Some(::client::Trust::Unverified(::client::Doubt::Hinted))
        );
        // The copy's RESTORE waits for the pause to end; its reads do not.
        a.cmd(["CLIENT", "PAUSE", "1000", "WRITE"]).await.unwrap();
        let r = fresh
            .repair(::client::NodeId(0))
            .await
            .expect("node 0 from node 1");
        assert_eq!((r.kind, r.copied), (::client::RepairKind::Hints, 1));
        assert_eq!(a.cmd(["GET", "k1"]).await.unwrap(), Frame::bulk("new1"));
        for conn in [&a, &b] {
            assert_eq!(
                conn.cmd(["PEXPIRETIME", "k1"]).await.unwrap(),
                Frame::Integer(deadline)
            );
        }
    });
}

#[test]
fn a_hinted_keys_deadline_is_copied_exactly_to_redis() {
    a_hinted_keys_deadline_is_copied_exactly(NodeKind::Redis);
}

#[test]
fn a_hinted_keys_deadline_is_copied_exactly_to_ember() {
    a_hinted_keys_deadline_is_copied_exactly(NodeKind::Ember);
}

/// A connection to `node`'s fleet database.
async fn meta(node: &NodeProcess) -> Connection {
    let mut options = ::client::Options::default();
    options.database = 15;
    Connection::connect_with(node.addr(), options)
        .await
        .unwrap()
}

fn route_hint_key(addr: &str) -> String {
    format!("__ember__:hints:0:{addr}")
}

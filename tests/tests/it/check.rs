//! `ember-cli check` against 2 replica groups of real `redis-server` and
//! Ember processes: groups made to differ by writing to single nodes, the
//! report (summary and `--verbose` lines), `--fix --from-group 0` and what
//! the nodes hold afterwards, keys expiring during a check, 50,000 keys, and
//! `AUTH`/`SELECT`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::client::cli::{self, Io};
use ::client::{Client, Connection, Error, Frame, Options, SetOptions, Topology, WritePolicy};
use bytes::Bytes;
use ember_tests::{NodeCluster, NodeKind, RedisServer};

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Runs ember-cli in this process.
fn ember_cli(args: &[String]) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let io = Io {
        stdin: Box::new(std::io::empty()),
        stdin_is_terminal: false,
        stdout: &mut out,
        stdout_is_terminal: false,
        stderr: &mut err,
        stderr_is_terminal: false,
    };
    let mut argv = vec![OsString::from("ember-cli")];
    argv.extend(args.iter().map(OsString::from));
    let code = cli::run(argv, io);
    let text = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
    (code, text(out), text(err))
}

/// `--replica a,b --replica c,d --timeout 10s` then `rest`: a generous
/// timeout, as the machine may be busy with other tests.
fn cli_args(groups: &[Vec<String>], rest: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for g in groups {
        args.push("--replica".to_owned());
        args.push(g.join(","));
    }
    args.extend(["--timeout".to_owned(), "10s".to_owned()]);
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

async fn client(groups: &[Vec<String>]) -> Client {
    let mut options = Options::default();
    options.write_policy = WritePolicy::All;
    options.timeout = Duration::from_secs(10);
    let topology = Topology::new(groups.to_vec()).expect("a topology");
    Client::connect(topology, options).await.expect("connect")
}

/// A connection to `key`'s node in `group`.
async fn node_of(topology: &Topology, group: usize, key: &str) -> Connection {
    let node = topology.locate(key.as_bytes()).1[group];
    Connection::connect(topology.addr(node).unwrap())
        .await
        .expect("connect to a node")
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Splits ember-cli's output into its `--verbose` key lines (sorted: batches
/// finish in any order) and its summary lines (in order).
fn split(out: &str) -> (BTreeSet<String>, Vec<String>) {
    let (keys, summary): (Vec<&str>, Vec<&str>) = out.lines().partition(|l| l.contains(" key "));
    (
        keys.into_iter().map(str::to_owned).collect(),
        summary.into_iter().map(str::to_owned).collect(),
    )
}

/// Whether the nodes answer `DUMP` (Ember's server may not have it yet).
async fn dump_works(addr: &str) -> Result<(), String> {
    let conn = Connection::connect(addr).await.expect("connect");
    match conn.cmd(["DUMP", "no-such-key"]).await {
        Ok(_) => Ok(()),
        Err(Error::Redis(text)) => Err(text),
        Err(e) => panic!("{addr}: {e}"),
    }
}

/// What a difference made on purpose looks like in the report.
struct Expected {
    /// Key, what `--verbose` says about it, and what `--fix` says.
    lines: Vec<(&'static str, &'static str, &'static str)>,
}

fn differences_then_fix(kind: NodeKind) {
    let cluster = NodeCluster::start(kind, 2, 2);
    let groups = cluster.groups();
    let topology = Topology::new(groups.clone()).unwrap();
    // Every key written through the client, on both groups.
    let mut written: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    written.extend(
        [
            "list",
            "ttl",
            "persist",
            "lost",
            "lost-ttl",
            "changed",
            "retyped",
            "bin key\n",
        ]
        .map(String::from),
    );
    written.extend(["hash", "set", "zset", "list-order"].map(String::from));
    let mut expected = Expected {
        lines: vec![
            (
                "lost",
                "missing in group 1",
                "copied from group 0 to group 1",
            ),
            (
                "bin key\n",
                "missing in group 1",
                "copied from group 0 to group 1",
            ),
            (
                "lost-ttl",
                "missing in group 1",
                "copied from group 0 to group 1",
            ),
            (
                "changed",
                "different in group 1 (value)",
                "copied from group 0 to group 1",
            ),
            (
                "retyped",
                "different in group 1 (type)",
                "copied from group 0 to group 1",
            ),
            (
                "persist",
                "different in group 1 (ttl)",
                "copied from group 0 to group 1",
            ),
            (
                "ttl",
                "different in group 1 (ttl)",
                "copied from group 0 to group 1",
            ),
            ("extra", "missing in group 0", "deleted from group 1"),
        ],
    };
    expected.lines.extend([
        (
            "hash",
            "different in group 1 (value)",
            "copied from group 0 to group 1",
        ),
        (
            "set",
            "different in group 1 (value)",
            "copied from group 0 to group 1",
        ),
        (
            "zset",
            "different in group 1 (value, ttl)",
            "copied from group 0 to group 1",
        ),
        (
            "list-order",
            "different in group 1 (value)",
            "copied from group 0 to group 1",
        ),
    ]);
    block_on(async {
        let client = client(&groups).await;
        for i in 0..40 {
            client.set(format!("k{i}"), format!("v{i}")).await.unwrap();
        }
        client.rpush("list", ["a", "b", "c"]).await.unwrap();
        let ex = SetOptions::new().ex(1000);
        client.set_with("ttl", "t", &ex).await.unwrap();
        client.set("persist", "p").await.unwrap();
        client.set("lost", "l").await.unwrap();
        client.set("bin key\n", "b").await.unwrap();
        client
            .set_with("lost-ttl", "x", &SetOptions::new().ex(500))
            .await
            .unwrap();
        client.set("changed", "before").await.unwrap();
        client.set("retyped", "s").await.unwrap();
        client.hset("hash", [("f", "1"), ("g", "2")]).await.unwrap();
        client.cmd(["SADD", "set", "a", "b", "c"]).await.unwrap();
        client
            .cmd(["ZADD", "zset", "1", "a", "2", "b"])
            .await
            .unwrap();
        client.rpush("list-order", ["a", "b"]).await.unwrap();
        // Now make group 1 differ, node by node.
        let g1 = |key: &'static str| node_of(&topology, 1, key);
        g1("lost").await.del(["lost"]).await.unwrap();
        g1("bin key\n").await.del(["bin key\n"]).await.unwrap();
        g1("lost-ttl").await.del(["lost-ttl"]).await.unwrap();
        g1("changed").await.set("changed", "after").await.unwrap();
        let retyped = g1("retyped").await;
        retyped.del(["retyped"]).await.unwrap();
        retyped.rpush("retyped", ["s"]).await.unwrap();
        g1("persist")
            .await
            .pexpire("persist", 500_000)
            .await
            .unwrap();
        g1("ttl").await.expire("ttl", 900).await.unwrap();
        g1("extra").await.set("extra", "x").await.unwrap();
        // The fleet's own keys differ, and do not count.
        g1("__ember__:x")
            .await
            .set("__ember__:x", "x")
            .await
            .unwrap();
        let h = g1("hash").await;
        h.hset("hash", [("g", "3")]).await.unwrap();
        g1("set").await.cmd(["SADD", "set", "d"]).await.unwrap();
        let z = g1("zset").await;
        z.cmd(["ZADD", "zset", "5", "b"]).await.unwrap();
        z.cmd(["EXPIRE", "zset", "1000"]).await.unwrap();
        let l = g1("list-order").await;
        l.del(["list-order"]).await.unwrap();
        l.rpush("list-order", ["b", "a"]).await.unwrap();
    });

    // The report: one line per difference, one per shard, one in all.
    let shard_of = |k: &str| topology.shard_for(k.as_bytes()).0;
    let verbose = |fix: bool| -> BTreeSet<String> {
        let mut lines = BTreeSet::new();
        for (key, what, fixed) in &expected.lines {
            let s = shard_of(key);
            // Keys that are not plain text are quoted, as redis-cli does.
            let shown = if key.contains(' ') {
                format!("{key:?}")
            } else {
                key.to_string()
            };
            lines.insert(format!("shard {s} key {shown}: {what}"));
            if fix {
                lines.insert(format!("shard {s} key {shown}: {fixed}"));
            }
        }
        lines
    };
    let summary = |fix: bool| -> Vec<String> {
        let mut lines = Vec::new();
        let (mut all, mut differences, mut copied, mut deleted) = (0, 0, 0, 0);
        for s in 0..2 {
            let here = |what: &str| {
                expected
                    .lines
                    .iter()
                    .filter(|(k, w, _)| shard_of(k) == s && w.starts_with(what))
                    .count()
            };
            let held = written.iter().filter(|k| shard_of(k) == s).count();
            let (extra, lost, different) = (
                here("missing in group 0"),
                here("missing in group 1"),
                here("different in group 1"),
            );
            let mut parts = Vec::new();
            if extra > 0 {
                parts.push(format!("{extra} missing in group 0"));
            }
            if lost > 0 {
                parts.push(format!("{lost} missing in group 1"));
            }
            if different > 0 {
                parts.push(format!("{different} different in group 1"));
            }
            let mut text = if parts.is_empty() {
                "in agreement".to_owned()
            } else {
                parts.join(", ")
            };
            if fix && !parts.is_empty() {
                text.push_str(&format!(
                    "; fixed: {} copied, {extra} deleted",
                    lost + different
                ));
            }
            lines.push(format!(
                "shard {s}: group 0 {held} keys, group 1 {} keys: {text}",
                held - lost + extra
            ));
            all += held + extra;
            differences += extra + lost + different;
            copied += lost + different;
            deleted += extra;
        }
        let fixed = if fix {
            format!("; fixed: {copied} copied, {deleted} deleted")
        } else {
            String::new()
        };
        lines.push(format!(
            "2 shards, {all} keys checked: {differences} differences{fixed}"
        ));
        lines
    };

    let (code, out, err) = ember_cli(&cli_args(&groups, &["check"]));
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(split(&out), (BTreeSet::new(), summary(false)), "{err}");
    let (code, out, err) = ember_cli(&cli_args(&groups, &["check", "--verbose"]));
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(split(&out), (verbose(false), summary(false)), "{err}");
    // From group 1's side the same keys differ; `extra` is now the one
    // missing (in group 0), `lost` the extra ones.
    let (code, out, _) = ember_cli(&cli_args(&groups, &["check", "--from-group", "1", "-v"]));
    assert_eq!(code, 1);
    let shard = shard_of("extra");
    assert!(
        out.contains(&format!("shard {shard} key extra: missing in group 0\n")),
        "{out}"
    );
    let shard = shard_of("lost");
    assert!(
        out.contains(&format!("shard {shard} key lost: missing in group 1\n")),
        "{out}"
    );
    assert_eq!(
        out.lines().last(),
        summary(false).last().map(String::as_str)
    );
    // A tolerance wider than the gap between the TTLs of `ttl`: it agrees;
    // `persist` does not (no TTL against one).
    let (_, out, _) = ember_cli(&cli_args(
        &groups,
        &["check", "-v", "--ttl-tolerance", "200000"],
    ));
    assert!(!out.contains(" key ttl: "), "{out}");
    let s = shard_of("persist");
    assert!(
        out.contains(&format!(
            "shard {s} key persist: different in group 1 (ttl)\n"
        )),
        "{out}"
    );

    if let Err(why) = block_on(dump_works(&groups[0][0])) {
        eprintln!("check --fix on {kind:?} nodes skipped: the nodes do not answer DUMP ({why})");
        return;
    }
    let (code, out, err) = ember_cli(&cli_args(
        &groups,
        &["check", "--fix", "--from-group", "0", "--verbose"],
    ));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(split(&out), (verbose(true), summary(true)), "{err}");
    let (code, out, err) = ember_cli(&cli_args(&groups, &["check"]));
    assert_eq!(code, 0, "{out}{err}");
    let held = |s: u32| written.iter().filter(|k| shard_of(k) == s).count();
    assert_eq!(
        out,
        format!(
            "shard 0: group 0 {0} keys, group 1 {0} keys: in agreement\n\
             shard 1: group 0 {1} keys, group 1 {1} keys: in agreement\n\
             2 shards, {2} keys checked: in agreement\n",
            held(0),
            held(1),
            written.len()
        )
    );
    // What group 1's nodes hold now, read directly.
    block_on(async {
        let g1 = |key: &'static str| node_of(&topology, 1, key);
        assert_eq!(g1("lost").await.get("lost").await.unwrap(), Some(b("l")));
        assert_eq!(
            g1("bin key\n").await.get("bin key\n").await.unwrap(),
            Some(b("b"))
        );
        let ttl = g1("lost-ttl").await.pttl("lost-ttl").await.unwrap();
        assert!((400_000..=500_000).contains(&ttl), "{ttl}");
        assert_eq!(
            g1("changed").await.get("changed").await.unwrap(),
            Some(b("before"))
        );
        let retyped = g1("retyped").await;
        assert_eq!(
            retyped.cmd(["TYPE", "retyped"]).await.unwrap(),
            Frame::simple("string")
        );
        assert_eq!(retyped.get("retyped").await.unwrap(), Some(b("s")));
        assert_eq!(g1("persist").await.pttl("persist").await.unwrap(), -1);
        assert_eq!(g1("extra").await.exists(["extra"]).await.unwrap(), 0);
        // Left alone.
        assert_eq!(
            g1("__ember__:x").await.get("__ember__:x").await.unwrap(),
            Some(b("x"))
        );
        assert!(g1("ttl").await.pttl("ttl").await.unwrap() > 900_000);
        // A copied key keeps the reference's deadline to the millisecond.
        for key in ["ttl", "lost-ttl"] {
            let (g0, g1) = (
                node_of(&topology, 0, key).await,
                node_of(&topology, 1, key).await,
            );
            let at0 = g0.cmd(["PEXPIRETIME", key]).await.unwrap();
            assert_eq!(g1.cmd(["PEXPIRETIME", key]).await.unwrap(), at0, "{key}");
        }
        let mut h = g1("hash").await.hgetall("hash").await.unwrap();
        h.sort();
        assert_eq!(h, [(b("f"), b("1")), (b("g"), b("2"))]);
        assert_eq!(
            g1("set").await.cmd(["SCARD", "set"]).await.unwrap(),
            Frame::Integer(3)
        );
        let z = g1("zset").await;
        assert_eq!(
            z.cmd(["ZSCORE", "zset", "b"]).await.unwrap(),
            Frame::bulk("2")
        );
        assert_eq!(z.pttl("zset").await.unwrap(), -1);
        assert_eq!(
            g1("list-order")
                .await
                .lrange("list-order", 0, -1)
                .await
                .unwrap(),
            [b("a"), b("b")]
        );
    });
}

#[test]
fn check_and_fix_redis_nodes() {
    differences_then_fix(NodeKind::Redis);
}

#[test]
fn check_and_fix_ember_nodes() {
    differences_then_fix(NodeKind::Ember);
}

/// 50,000 keys over 2 × 2 nodes: many batches in flight, a few of them
/// differing.
fn many_keys(kind: NodeKind) {
    let cluster = NodeCluster::start(kind, 2, 2);
    let groups = cluster.groups();
    let topology = Topology::new(groups.clone()).unwrap();
    let n = 50_000;
    block_on(async {
        let client = client(&groups).await;
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let mut args = vec![b("MSET")];
            for i in chunk {
                args.push(Bytes::from(format!("key:{i}")));
                args.push(Bytes::from(format!("value {i}")));
            }
            client.cmd_bytes(args).await.unwrap();
        }
        // Three missing in group 1, two different in group 0.
        for key in ["key:1", "key:20000", "key:49999"] {
            node_of(&topology, 1, key).await.del([key]).await.unwrap();
        }
        for key in ["key:7", "key:30000"] {
            node_of(&topology, 0, key)
                .await
                .set(key, "changed")
                .await
                .unwrap();
        }
    });
    let (code, out, err) = ember_cli(&cli_args(&groups, &["check"]));
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        lines[2],
        format!("2 shards, {n} keys checked: 5 differences"),
        "{out}"
    );
    // Each shard's line counts its own keys.
    let (mut group0, mut group1) = (0, 0);
    for (s, line) in lines[..2].iter().enumerate() {
        let count = |g: usize| -> usize {
            let words: Vec<&str> = line.split(' ').collect();
            let at = words
                .windows(2)
                .position(|w| w == ["group", &g.to_string()])
                .unwrap_or_else(|| panic!("{line}"));
            words[at + 2].parse().unwrap()
        };
        let here = (0..n)
            .filter(|i| topology.shard_for(format!("key:{i}").as_bytes()).0 == s as u32)
            .count();
        assert_eq!(count(0), here, "{line}");
        group0 += count(0);
        group1 += count(1);
    }
    assert_eq!((group0, group1), (n, n - 3));
    // Small batches say the same.
    let (code, out2, _) = ember_cli(&cli_args(&groups, &["check", "--batch", "333"]));
    assert_eq!((code, out2.as_str()), (1, out.as_str()));
    if let Err(why) = block_on(dump_works(&groups[0][0])) {
        eprintln!("check --fix on {kind:?} nodes skipped: the nodes do not answer DUMP ({why})");
        return;
    }
    let (code, out, err) = ember_cli(&cli_args(&groups, &["check", "--fix", "--from-group", "0"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.ends_with("5 differences; fixed: 5 copied, 0 deleted\n"),
        "{out}"
    );
    let (code, out, err) = ember_cli(&cli_args(&groups, &["check"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.ends_with(&format!("2 shards, {n} keys checked: in agreement\n")),
        "{out}"
    );
    block_on(async {
        // Group 0's value won, and the deleted keys are back.
        let conn = node_of(&topology, 1, "key:7").await;
        assert_eq!(conn.get("key:7").await.unwrap(), Some(b("changed")));
        let conn = node_of(&topology, 1, "key:1").await;
        assert_eq!(conn.get("key:1").await.unwrap(), Some(b("value 1")));
    });
}

#[test]
fn check_many_keys_on_redis_nodes() {
    many_keys(NodeKind::Redis);
}

#[test]
fn check_many_keys_on_ember_nodes() {
    many_keys(NodeKind::Ember);
}

/// Keys that expire, vanish or change type while they are being checked
/// do not stop the check, and are not blamed on the keys that stay put:
/// keys with short TTLs, and a writer that keeps setting, deleting and
/// retyping keys on both groups during the check.
#[test]
fn check_while_keys_change() {
    let cluster = NodeCluster::start(NodeKind::Redis, 2, 2);
    let groups = cluster.groups();
    block_on(async {
        let client = client(&groups).await;
        for i in 0..3000u64 {
            let key = format!("short:{i}");
            client
                .set_with(&key, "v", &SetOptions::new().px(1 + i % 300))
                .await
                .unwrap();
        }
        for i in 0..1000 {
            client.set(format!("stays:{i}"), "v").await.unwrap();
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (groups, stop) = (groups.clone(), stop.clone());
        std::thread::spawn(move || {
            block_on(async {
                let client = client(&groups).await;
                let mut writes = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("churn:{}", writes % 300);
                    // Errors (RPUSH on a string) are part of the churn.
                    let _ = match writes % 4 {
                        0 => client.cmd(["SET", &key, "v", "PX", "3"]).await,
                        1 => client.cmd(["DEL", &key]).await,
                        2 => client.cmd(["RPUSH", &key, "a", "b"]).await,
                        _ => client.cmd(["SET", &key, "w"]).await,
                    };
                    writes += 1;
                }
                writes
            })
        })
    };
    for _ in 0..3 {
        let (code, out, err) = ember_cli(&cli_args(&groups, &["check", "-v", "--batch", "50"]));
        assert!(code <= 1, "{code}: {out}{err}");
        assert_eq!(err, "");
        assert!(!out.contains("key stays:"), "{out}");
        let last = out.lines().last().unwrap_or_default();
        let checked: usize = last
            .strip_prefix("2 shards, ")
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{out}"));
        assert!(checked >= 1000, "{out}");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
}

/// `-a` and `-n` as for every other command; a node that cannot be read
/// stops the check with its address.
#[test]
fn check_with_auth_and_database_and_a_dead_node() {
    let a = RedisServer::start(&["--requirepass", "s3cret"]);
    let second = RedisServer::start(&["--requirepass", "s3cret"]);
    let groups = vec![vec![a.addr().to_string()], vec![second.addr().to_string()]];
    block_on(async {
        let mut options = Options::default();
        options.password = Some("s3cret".into());
        options.database = 2;
        let conn = Connection::connect_with(a.addr().to_string(), options)
            .await
            .unwrap();
        conn.set("only-in-0", "v").await.unwrap();
    });
    let (code, out, err) = ember_cli(&cli_args(
        &groups,
        &["-a", "s3cret", "-n", "2", "check", "-v"],
    ));
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        out,
        "shard 0 key only-in-0: missing in group 1\n\
         shard 0: group 0 1 key, group 1 0 keys: 1 missing in group 1\n\
         1 shard, 1 key checked: 1 difference\n"
    );
    let (code, out, err) = ember_cli(&cli_args(&groups, &["-a", "s3cret", "check"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "shard 0: group 0 0 keys, group 1 0 keys: in agreement\n\
         1 shard, 0 keys checked: in agreement\n"
    );
    let dead = second.addr().to_string();
    drop(second);
    let (code, out, err) = ember_cli(&cli_args(&groups, &["-a", "s3cret", "-n", "2", "check"]));
    assert_eq!(code, 1, "{out}");
    assert!(
        err.starts_with(&format!("ember-cli check: shard 0: group 1 ({dead}): ")),
        "{err}"
    );
    // Bad usage.
    let (code, _, err) = ember_cli(&cli_args(&groups, &["check", "--fix"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = ember_cli(&cli_args(&groups, &["check", "--from-group", "2"]));
    assert_eq!(code, 2);
    assert!(err.contains("groups 0 to 1"), "{err}");
}

/// `--fix` from a group that holds nothing on a shard (most likely the one
/// that came back empty, named by mistake) deletes nothing from the others;
/// from the right group it copies.
#[test]
fn check_fix_from_an_empty_group_deletes_nothing() {
    let full = RedisServer::start(&[]);
    let empty = RedisServer::start(&[]);
    let groups = vec![
        vec![full.addr().to_string()],
        vec![empty.addr().to_string()],
    ];
    block_on(async {
        let conn = Connection::connect(full.addr().to_string()).await.unwrap();
        for k in ["k1", "k2", "k3"] {
            conn.set(k, "v").await.unwrap();
        }
    });
    let (code, out, err) = ember_cli(&cli_args(
        &groups,
        &["check", "--fix", "--from-group", "1", "-v"],
    ));
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        err,
        "ember-cli check: shard 0: group 1 holds no keys there, so --fix deleted nothing \
         from the other groups (is --from-group right?)\n"
    );
    assert!(
        out.contains(
            "shard 0 key k2: not fixed in group 0: not deleted: group 1 holds no keys on this shard\n"
        ),
        "{out}"
    );
    assert!(
        out.ends_with(
            "1 shard, 3 keys checked: 3 differences; fixed: 0 copied, 0 deleted, 3 failed\n"
        ),
        "{out}"
    );
    let (code, out, err) = ember_cli(&cli_args(&groups, &["check", "--fix", "--from-group", "0"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.ends_with("3 differences; fixed: 3 copied, 0 deleted\n"),
        "{out}"
    );
    let (code, _, _) = ember_cli(&cli_args(&groups, &["check"]));
    assert_eq!(code, 0);
}

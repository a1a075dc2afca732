//! Pub/sub across a fleet, through `ember-client` and `ember-cli`: 2 x 2
//! fleets of real `ember-server` and `redis-server` processes, channels on
//! both shards, patterns that span them, order per publisher, a subscriber
//! whose node is SIGKILLed, the same over RESP3 (`Options::pubsub_resp3`),
//! and `ember-cli SUBSCRIBE` (a process of its own, interrupted with
//! SIGINT) printing what `redis-cli` prints.

use std::ffi::OsString;
use std::future::Future;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ::client::cli::{self, Io};
use ::client::{Backoff, Client, Frame, Kind, Message, NodeId, Options, Subscription, Topology};
use bytes::Bytes;
use ember_tests::{NodeCluster, NodeKind, RedisServer, TempDir};

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A client that notices failures and recoveries quickly.
async fn connect(groups: Vec<Vec<String>>) -> Client {
    connect_with(groups, false).await
}

/// [`connect`], its subscriptions speaking RESP3 when `resp3` is set.
async fn connect_with(groups: Vec<Vec<String>>, resp3: bool) -> Client {
    let mut options = Options::default();
    options.pubsub_resp3 = resp3;
    options.timeout = Duration::from_secs(1);
    options.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
        jitter: 0.25,
    };
    let topology = Topology::new(groups).expect("a topology");
    Client::connect(topology, options).await.expect("connect")
}

/// How long anything here may take to arrive.
const WAIT: Duration = Duration::from_secs(10);

/// The next message, within [`WAIT`].
async fn next(sub: &mut Subscription) -> Message {
    tokio::time::timeout(WAIT, sub.recv())
        .await
        .expect("a message within the wait")
        .expect("the subscription is open")
}

/// A channel name with `prefix` that lives on `shard`.
fn channel_on(topology: &Topology, shard: u32, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|c| topology.shard_for(c.as_bytes()).0 == shard)
        .expect("some channel lands on every shard")
}

/// How many subscribers of `channel` each node has (`PUBSUB NUMSUB`); 0
/// for a node that does not answer.
async fn numsub(client: &Client, channel: &str) -> Vec<i64> {
    let mut counts = Vec::new();
    for node in 0..client.topology().len() as u32 {
        let Ok(reply) = client
            .cmd_on(NodeId(node), ["PUBSUB", "NUMSUB", channel])
            .await
        else {
            counts.push(0);
            continue;
        };
        match reply {
            Frame::Array(items) => match items.get(1) {
                Some(Frame::Integer(n)) => counts.push(*n),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }
    counts
}

fn payload(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

/// Per node, its subscribed connections (CLIENT LIST's `sub`, `psub` or
/// `ssub` above 0) by protocol: (RESP2, RESP3). Nothing for a node that
/// does not answer.
async fn subscribers_by_protocol(client: &Client) -> Vec<(usize, usize)> {
    let mut counts = Vec::new();
    for node in 0..client.topology().len() as u32 {
        let Ok(Frame::Bulk(list)) = client.cmd_on(NodeId(node), ["CLIENT", "LIST"]).await else {
            counts.push((0, 0));
            continue;
        };
        let (mut resp2, mut resp3) = (0, 0);
        for line in String::from_utf8_lossy(&list).lines() {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or("0")
                    .to_string()
            };
            if ["sub", "psub", "ssub"].iter().all(|f| field(f) == "0") {
                continue;
            }
            match field("resp").as_str() {
                "3" => resp3 += 1,
                _ => resp2 += 1,
            }
        }
        counts.push((resp2, resp3));
    }
    counts
}

/// How many subscribed connections speak RESP3, and how many RESP2, over
/// all nodes.
async fn subscriber_protocols(client: &Client) -> (usize, usize) {
    subscribers_by_protocol(client)
        .await
        .into_iter()
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
}

fn subscriber_hears_every_shard(kind: NodeKind, resp3: bool) {
    let cluster = NodeCluster::start(kind, 2, 2);
    block_on(async {
        let publisher = connect(cluster.groups()).await;
        let listener = connect_with(cluster.groups(), resp3).await;
        let t = publisher.topology().clone();
        let (a, b) = (channel_on(&t, 0, "chan:"), channel_on(&t, 1, "chan:"));
        let mut sub = listener.subscribe([&a, &b]).await.expect("subscribe");
        // One subscriber in one group: each publish reaches it once.
        assert_eq!(numsub(&publisher, &a).await.iter().sum::<i64>(), 1);
        // One connection per shard, in the protocol asked for.
        let want = if resp3 { (0, 2) } else { (2, 0) };
        assert_eq!(subscriber_protocols(&publisher).await, want);
        // Channels of different shards come over different connections, in
        // no set order between them: one at a time.
        assert_eq!(publisher.publish(&a, "to a").await.unwrap(), 1);
        let m = next(&mut sub).await;
        let got = (m.kind, &m.channel[..], payload(&m));
        assert_eq!(got, (Kind::Channel, a.as_bytes(), "to a".into()));
        assert_eq!(publisher.publish(&b, "to b").await.unwrap(), 1);
        let m = next(&mut sub).await;
        assert_eq!((&m.channel[..], payload(&m)), (b.as_bytes(), "to b".into()));

        // Order per publisher, publishes pipelined through the router.
        let n = 300;
        let publishes = (0..n).map(|i| {
            vec![
                Bytes::from("PUBLISH"),
                Bytes::from(a.clone()),
                Bytes::from(i.to_string()),
            ]
        });
        for answer in publisher.pipeline(publishes).await {
            assert_eq!(answer.unwrap(), Frame::Integer(1));
        }
        for i in 0..n {
            assert_eq!(payload(&next(&mut sub).await), i.to_string());
        }

        // Patterns span the shards: a pattern subscription hears channels
        // of both, once each, alongside the channel subscription.
        sub.psubscribe(["chan:*"]).await.expect("psubscribe");
        assert_eq!(sub.count(), 3);
        assert_eq!(publisher.publish(&b, "both").await.unwrap(), 2);
        let mut got: Vec<(Kind, Option<Bytes>)> = Vec::new();
        for _ in 0..2 {
            let m = next(&mut sub).await;
            assert_eq!(payload(&m), "both");
            got.push((m.kind, m.pattern));
        }
        got.sort_by_key(|(k, _)| *k == Kind::Pattern);
        assert_eq!(
            got,
            [
                (Kind::Channel, None),
                (Kind::Pattern, Some(Bytes::from("chan:*")))
            ]
        );
        let other = channel_on(&t, 0, "chan:x");
        assert_eq!(publisher.publish(&other, "pattern only").await.unwrap(), 1);
        let m = next(&mut sub).await;
        assert_eq!((m.kind, &m.channel[..]), (Kind::Pattern, other.as_bytes()));

        // Shard channels, and SPUBLISH through cmd.
        let mut shard_sub = listener.ssubscribe([&b]).await.expect("ssubscribe");
        let reply = publisher.cmd(["SPUBLISH", &b, "sharded"]).await.unwrap();
        assert_eq!(reply, Frame::Integer(1));
        let m = next(&mut shard_sub).await;
        assert_eq!((m.kind, payload(&m)), (Kind::Shard, "sharded".into()));

        // Unsubscribing and dropping take the subscriptions off the nodes.
        sub.unsubscribe([&a]).await.expect("unsubscribe");
        sub.punsubscribe(Vec::<&str>::new())
            .await
            .expect("punsubscribe");
        assert_eq!(publisher.publish(&a, "nobody").await.unwrap(), 0);
        assert_eq!(publisher.publish(&b, "last").await.unwrap(), 1);
        let m = next(&mut sub).await;
        assert_eq!(payload(&m), "last", "nothing from {a} or the pattern");
        drop(sub);
        drop(shard_sub);
        let deadline = Instant::now() + WAIT;
        while numsub(&publisher, &b).await.iter().sum::<i64>() != 0 {
            assert!(
                Instant::now() < deadline,
                "the dropped subscription stays on a node"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn subscriber_hears_every_shard_on_ember_nodes() {
    subscriber_hears_every_shard(NodeKind::Ember, false);
}

#[test]
fn subscriber_hears_every_shard_on_redis_nodes() {
    subscriber_hears_every_shard(NodeKind::Redis, false);
}

#[test]
fn resp3_subscriber_hears_every_shard_on_ember_nodes() {
    subscriber_hears_every_shard(NodeKind::Ember, true);
}

#[test]
fn resp3_subscriber_hears_every_shard_on_redis_nodes() {
    subscriber_hears_every_shard(NodeKind::Redis, true);
}

/// How the subscribed node fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// SIGKILL: its connections close at once.
    Kill,
    /// SIGSTOP: its connections stay open and nothing comes back; only the
    /// subscription's `PING` finds it out.
    Hang,
}

/// A subscriber whose node fails moves to the other group: what is
/// published once it has moved arrives, in order, and nothing twice.
fn subscriber_survives_its_node(kind: NodeKind, failure: Failure, resp3: bool) {
    let mut cluster = NodeCluster::start(kind, 2, 2);
    let node = block_on(async {
        let publisher = connect(cluster.groups()).await;
        let listener = connect_with(cluster.groups(), resp3).await;
        let t = publisher.topology().clone();
        let (a, b) = (channel_on(&t, 0, "live:"), channel_on(&t, 1, "live:"));
        let mut sub = listener.subscribe([&a]).await.expect("subscribe");
        sub.psubscribe(["live:*"]).await.expect("psubscribe");
        let counts = numsub(&publisher, &a).await;
        let node = counts
            .iter()
            .position(|&n| n == 1)
            .expect("subscribed on one node");
        assert_eq!(counts.iter().sum::<i64>(), 1, "{counts:?}");

        match failure {
            Failure::Kill => cluster.nodes[node].kill(),
            Failure::Hang => {
                cluster.nodes[node].pause();
                // A stop is not always instant on a busy machine: go on
                // once the node has stopped answering.
                let deadline = Instant::now() + WAIT;
                while publisher
                    .cmd_on(NodeId(node as u32), ["PING"])
                    .await
                    .is_ok()
                {
                    assert!(Instant::now() < deadline, "the node still answers");
                }
            }
        }

        // Publish probes until one arrives: the subscription has moved.
        let deadline = Instant::now() + WAIT;
        let mut probe = 0;
        'moved: loop {
            assert!(Instant::now() < deadline, "the subscription never moved");
            let _ = publisher.publish(&a, format!("probe {probe}")).await;
            probe += 1;
            let wait = tokio::time::sleep(Duration::from_millis(100));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    m = sub.recv() => {
                        let m = m.expect("open");
                        if m.kind == Kind::Channel {
                            break 'moved;
                        }
                    }
                }
            }
        }
        let moved = numsub(&publisher, &a).await;
        assert_eq!(moved.iter().sum::<i64>(), 1, "{moved:?}");
        assert_eq!(moved[node], 0, "{moved:?}");
        // The new connection speaks the protocol asked for too.
        let protocols = subscribers_by_protocol(&publisher).await;
        let at = moved.iter().position(|&n| n == 1).unwrap_or(0);
        let (resp2, resp3_conns) = protocols[at];
        assert_eq!(resp3_conns > 0, resp3, "{protocols:?}");
        assert_eq!(resp2 > 0, !resp3, "{protocols:?}");
        // Drain what the probes left (their pattern copies too).
        while tokio::time::timeout(Duration::from_millis(300), sub.recv())
            .await
            .is_ok()
        {}

        let n = 200;
        for i in 0..n {
            publisher
                .publish(&a, format!("after {i}"))
                .await
                .expect("publish");
            publisher
                .publish(&b, format!("other {i}"))
                .await
                .expect("publish");
        }
        let (mut on_a, mut by_pattern_a, mut by_pattern_b) = (Vec::new(), Vec::new(), Vec::new());
        while on_a.len() + by_pattern_a.len() + by_pattern_b.len() < 3 * n {
            let m = next(&mut sub).await;
            match (m.kind, m.channel == a.as_bytes()) {
                (Kind::Channel, true) => on_a.push(payload(&m)),
                (Kind::Pattern, true) => by_pattern_a.push(payload(&m)),
                (Kind::Pattern, false) => by_pattern_b.push(payload(&m)),
                other => panic!("unexpected {other:?} {m:?}"),
            }
        }
        let want = |p: &str| (0..n).map(|i| format!("{p} {i}")).collect::<Vec<_>>();
        assert_eq!(on_a, want("after"));
        assert_eq!(by_pattern_a, want("after"));
        assert_eq!(by_pattern_b, want("other"));
        assert!(
            tokio::time::timeout(Duration::from_millis(300), sub.recv())
                .await
                .is_err(),
            "a message arrived twice"
        );
        node
    });
    if failure == Failure::Hang {
        cluster.nodes[node].resume();
    }
}

#[test]
fn subscriber_survives_its_ember_node() {
    subscriber_survives_its_node(NodeKind::Ember, Failure::Kill, false);
}

#[test]
fn subscriber_survives_its_redis_node() {
    subscriber_survives_its_node(NodeKind::Redis, Failure::Kill, false);
}

#[test]
fn subscriber_leaves_a_hung_ember_node() {
    subscriber_survives_its_node(NodeKind::Ember, Failure::Hang, false);
}

#[test]
fn subscriber_leaves_a_hung_redis_node() {
    subscriber_survives_its_node(NodeKind::Redis, Failure::Hang, false);
}

#[test]
fn resp3_subscriber_survives_its_ember_node() {
    subscriber_survives_its_node(NodeKind::Ember, Failure::Kill, true);
}

#[test]
fn resp3_subscriber_survives_its_redis_node() {
    subscriber_survives_its_node(NodeKind::Redis, Failure::Kill, true);
}

/// A hung node is found out by the `PING` the link sends, answered in
/// RESP3 by an ordinary reply among the pushes.
#[test]
fn resp3_subscriber_leaves_a_hung_redis_node() {
    subscriber_survives_its_node(NodeKind::Redis, Failure::Hang, true);
}

/// The environment variable that makes [`ember_cli_process`] run
/// `ember-cli` with these arguments (separated by newlines), writing to
/// the file named by [`CLI_OUT_ENV`].
const CLI_ARGS_ENV: &str = "EMBER_TEST_CLI_ARGS";
const CLI_OUT_ENV: &str = "EMBER_TEST_CLI_OUT";

/// Not a test: the body of the `ember-cli` processes the tests below start
/// (this binary run again with `--ignored`): `ember-cli` with a file for
/// its standard output, as when it is redirected.
#[test]
#[ignore = "not a test: the body of the ember-cli processes started below"]
fn ember_cli_process() {
    let (Some(args), Some(out)) = (
        std::env::var_os(CLI_ARGS_ENV),
        std::env::var_os(CLI_OUT_ENV),
    ) else {
        return;
    };
    let mut argv = vec![OsString::from("ember-cli")];
    argv.extend(args.to_string_lossy().lines().map(OsString::from));
    let mut file = std::fs::File::create(out).expect("the output file");
    let mut err = std::io::stderr();
    let io = Io {
        stdin: Box::new(std::io::Cursor::new(Vec::new())),
        stdin_is_terminal: false,
        stdout: &mut file,
        stdout_is_terminal: false,
        stderr: &mut err,
        stderr_is_terminal: false,
    };
    // A subscriber runs until it is interrupted: returning is a failure.
    let code = cli::run(argv, io);
    panic!("ember-cli returned {code}");
}

/// `ember-cli args...` in a process of its own, its output going to `out`.
fn spawn_ember_cli(args: &[String], out: &Path) -> Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "fleet_pubsub::ember_cli_process",
            "--ignored",
            "--nocapture",
            "-q",
        ])
        .env(CLI_ARGS_ENV, args.join("\n"))
        .env(CLI_OUT_ENV, out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn ember-cli")
}

/// `redis-cli args...`, its output going to `out`.
fn spawn_redis_cli(args: &[String], out: &Path) -> Child {
    Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).expect("the output file"))
        .spawn()
        .expect("spawn redis-cli")
}

/// Waits until `out` holds `lines` lines.
fn wait_lines(out: &Path, lines: usize) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if text.lines().count() >= lines {
            return text;
        }
        assert!(Instant::now() < deadline, "only this arrived:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Interrupts a subscriber as Ctrl-C would; returns the signal that ended it.
fn interrupt(mut child: Child) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    child.wait().expect("wait").signal()
}

/// `ember-cli SUBSCRIBE`/`PSUBSCRIBE`/`SSUBSCRIBE` on a 2 x 2 fleet prints
/// exactly what `redis-cli` prints on one `redis-server` for the same
/// subscriptions and publishes, raw and formatted, and ends on SIGINT as
/// `redis-cli` does; `ember-cli PUBLISH` reaches it.
#[test]
fn ember_cli_subscribe_prints_like_redis_cli() {
    let cluster = NodeCluster::start(NodeKind::Ember, 2, 2);
    let redis = RedisServer::start(&[]);
    let groups: Vec<String> = cluster.groups().iter().map(|g| g.join(",")).collect();
    let fleet = ["--replica", &groups[0], "--replica", &groups[1]].map(String::from);
    let t = Topology::new(cluster.groups()).unwrap();
    let (a, b) = (channel_on(&t, 0, "c"), channel_on(&t, 1, "c"));
    let dir = TempDir::new("fleet-pubsub-cli");
    let cases: [(&str, Vec<String>, Option<&str>); 3] = [
        ("SUBSCRIBE", vec![a.clone(), b.clone(), a.clone()], None),
        (
            "PSUBSCRIBE",
            vec!["c*".into(), "?x".into()],
            Some("--no-raw"),
        ),
        ("SSUBSCRIBE", vec![b.clone()], Some("--no-raw")),
    ];
    for (i, (command, names, flag)) in cases.into_iter().enumerate() {
        let mut args: Vec<String> = flag.into_iter().map(String::from).collect();
        args.push(command.into());
        args.extend(names.iter().cloned());
        let ours = dir.path().join(format!("ember-{i}"));
        let theirs = dir.path().join(format!("redis-{i}"));
        let ember = spawn_ember_cli(&[fleet.to_vec(), args.clone()].concat(), &ours);
        let port = redis.addr().port().to_string();
        let reference = spawn_redis_cli(&[vec!["-p".into(), port.clone()], args].concat(), &theirs);
        // The confirmations (and the banner, formatted) come first.
        let header = if flag.is_some() {
            1 + 3 * names.len()
        } else {
            3 * names.len()
        };
        wait_lines(&ours, header);
        wait_lines(&theirs, header);
        let publish = if command == "SSUBSCRIBE" {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let messages = [
            (a.as_str(), "hello"),
            (b.as_str(), "tw\u{e9} \"words\"\n"),
            ("nox", "-"),
            (b.as_str(), "end"),
        ];
        for (channel, text) in messages {
            let mut cmd = fleet.to_vec();
            cmd.extend([publish, channel, text].map(String::from));
            let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let (code, _, err) = crate::client::ember_cli(&cmd, b"");
            assert_eq!(code, 0, "{err}");
            let status = Command::new("redis-cli")
                .args(["-p", &port, publish, channel, text])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            // Channels of different shards reach ember-cli over different
            // connections, in no set order between them: one at a time.
            let delivered = match command {
                "SSUBSCRIBE" => channel == b,
                _ => channel != "nox",
            };
            if delivered {
                let marker = &text[..2];
                for file in [&ours, &theirs] {
                    let deadline = Instant::now() + WAIT;
                    while !std::fs::read_to_string(file)
                        .unwrap_or_default()
                        .contains(marker)
                    {
                        assert!(
                            Instant::now() < deadline,
                            "{command}: {text:?} never arrived"
                        );
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
        // Every message has been published: wait for the last to arrive.
        let deadline = Instant::now() + WAIT;
        let mut text = String::new();
        while Instant::now() < deadline {
            let reference_text = std::fs::read_to_string(&theirs).unwrap_or_default();
            text = std::fs::read_to_string(&ours).unwrap_or_default();
            if text.contains("end") && reference_text.contains("end") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (sig_ember, sig_redis) = (interrupt(ember), interrupt(reference));
        let reference_text = std::fs::read_to_string(&theirs).unwrap();
        assert_eq!(
            text, reference_text,
            "{command}: ember-cli (left) and redis-cli differ"
        );
        assert!(
            text.lines().count() > header,
            "{command}: no message printed:\n{text}"
        );
        assert_eq!(sig_ember, sig_redis, "{command}: both end by SIGINT");
        assert_eq!(sig_ember, Some(2));
    }
}

/// With no node of the shard up, subscribing fails but the subscription
/// keeps its channel and keeps trying: once a node is back, it is
/// subscribed there and hears what is published.
#[test]
fn a_subscription_waits_out_a_shard_with_no_node() {
    let mut cluster = NodeCluster::start(NodeKind::Ember, 2, 1);
    block_on(async {
        let publisher = connect(cluster.groups()).await;
        let listener = connect(cluster.groups()).await;
        for node in &mut cluster.nodes {
            node.kill();
        }
        let mut sub = listener.subscription();
        let err = sub.subscribe(["waiting"]).await.expect_err("no node is up");
        assert!(err.to_string().contains("could be subscribed on"), "{err}");
        assert_eq!(sub.count(), 1, "the channel is kept");
        cluster.nodes[1].restart();
        let deadline = Instant::now() + WAIT;
        while publisher.publish("waiting", "back").await.unwrap_or(0) != 1 {
            assert!(Instant::now() < deadline, "never subscribed again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let m = next(&mut sub).await;
        assert_eq!(
            (&m.channel[..], payload(&m)),
            (&b"waiting"[..], "back".into())
        );
    });
}

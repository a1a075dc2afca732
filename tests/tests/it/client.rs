//! The client end to end: replica groups of real server processes (Ember's
//! and `redis-server`), nodes killed with SIGKILL under load, a node that
//! never answers, the single-node connection, and `ember-cli` against
//! `redis-cli`.
//!
//! Ember nodes are this test binary run again as [`ember_node_process`]
//! (see `ember_tests::NodeProcess`), so they run this build's server and
//! can be killed like any process.

use std::collections::HashMap;
use std::ffi::OsString;
use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ::client::cli::{self, Io};
use ::client::{
    Backoff, Client, Connection, Error, Frame, NodeEvent, NodeId, Options, RouteError, SetOptions,
    SetReply, Topology, WritePolicy,
};
use bytes::Bytes;
use ember_tests::{NodeCluster, NodeKind, RedisServer, SilentNode, serve_if_node_process};

/// Not a test: the body of the Ember node processes the other tests start
/// (`ember_tests::NodeProcess` runs it with `--ignored`). Run otherwise, it
/// returns at once, checking nothing, so it is ignored.
#[test]
#[ignore = "not a test: the body of the Ember node processes NodeProcess starts"]
fn ember_node_process() {
    serve_if_node_process();
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Settings that notice failures and recoveries quickly.
fn options(policy: WritePolicy) -> Options {
    let mut options = Options::default();
    options.write_policy = policy;
    options.timeout = Duration::from_secs(1);
    options.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
        jitter: 0.25,
    };
    options
}

async fn connect(groups: Vec<Vec<String>>, options: Options) -> Client {
    let topology = Topology::new(groups).expect("a topology");
    Client::connect(topology, options).await.expect("connect")
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Keys whose shard is `shard` in `topology`.
fn keys_on(topology: &Topology, shard: u32, n: usize, prefix: &str) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| topology.shard_for(k.as_bytes()).0 == shard)
        .take(n)
        .collect()
}

async fn typed_round_trips(client: &Client) {
    client.flushall().await.unwrap();
    client.ping().await.unwrap();
    client.set("greeting", "hello").await.unwrap();
    assert_eq!(client.get("greeting").await.unwrap(), Some(b("hello")));
    assert_eq!(client.get("missing").await.unwrap(), None);
    // SET's options.
    let ex = SetOptions::new().ex(100);
    assert_eq!(
        client.set_with("s", "1", &ex).await.unwrap(),
        SetReply::Stored
    );
    assert!((1..=100).contains(&client.ttl("s").await.unwrap()));
    let nx = SetOptions::new().nx();
    assert_eq!(
        client.set_with("s", "2", &nx).await.unwrap(),
        SetReply::NotStored
    );
    let xx = SetOptions::new().xx().keep_ttl().get();
    assert_eq!(
        client.set_with("s", "3", &xx).await.unwrap(),
        SetReply::Old(Some(b("1")))
    );
    assert!(client.ttl("s").await.unwrap() > 0, "KEEPTTL kept it");
    let fresh = SetOptions::new().px(50_000).get();
    assert_eq!(
        client.set_with("fresh", "v", &fresh).await.unwrap(),
        SetReply::Old(None)
    );
    assert!(client.pttl("fresh").await.unwrap() > 1000);
    assert_eq!(
        client.set_with("nope", "v", &xx).await.unwrap(),
        SetReply::Old(None)
    );
    assert_eq!(client.get("nope").await.unwrap(), None);
    // Keys.
    assert!(client.persist("s").await.unwrap());
    assert_eq!(client.ttl("s").await.unwrap(), -1);
    assert!(client.expire("s", 50).await.unwrap());
    assert!(client.pexpire("s", 50_000).await.unwrap());
    assert_eq!(client.ttl("missing").await.unwrap(), -2);
    assert!(!client.expire("missing", 5).await.unwrap());
    // Counters.
    assert_eq!(client.incr("n").await.unwrap(), 1);
    assert_eq!(client.incrby("n", 41).await.unwrap(), 42);
    assert_eq!(client.decr("n").await.unwrap(), 41);
    assert_eq!(client.decrby("n", 40).await.unwrap(), 1);
    assert_eq!(client.append("greeting", " world").await.unwrap(), 11);
    assert_eq!(client.strlen("greeting").await.unwrap(), 11);
    // Lists.
    assert_eq!(client.rpush("list", ["b", "c"]).await.unwrap(), 2);
    assert_eq!(client.lpush("list", ["a"]).await.unwrap(), 3);
    assert_eq!(client.llen("list").await.unwrap(), 3);
    assert_eq!(
        client.lrange("list", 0, -1).await.unwrap(),
        [b("a"), b("b"), b("c")]
    );
    assert_eq!(client.lpop("list").await.unwrap(), Some(b("a")));
    assert_eq!(client.rpop("list").await.unwrap(), Some(b("c")));
    assert_eq!(client.lpop("empty").await.unwrap(), None);
    assert_eq!(
        client.lrange("empty", 0, -1).await.unwrap(),
        Vec::<Bytes>::new()
    );
    // Many keys, over every shard.
    let pairs: Vec<(String, String)> = (0..30)
        .map(|i| (format!("m{i}"), format!("v{i}")))
        .collect();
    client
        .mset(pairs.iter().map(|(k, v)| (k, v)))
        .await
        .unwrap();
    let keys = ["m3", "nothing", "m0", "m29", "m3", "m17"];
    let got = client.mget(keys).await.unwrap();
    let want: Vec<Option<Bytes>> = keys
        .iter()
        .map(|k| pairs.iter().find(|(pk, _)| pk == k).map(|(_, v)| b(v)))
        .collect();
    assert_eq!(got, want, "MGET answers in the order asked");
    assert_eq!(
        client.exists(["m1", "m2", "nothing", "m1"]).await.unwrap(),
        3
    );
    assert_eq!(client.del(["m1", "m2", "nothing"]).await.unwrap(), 2);
    // greeting s fresh n list m0 m3..m29 (minus m1 m2).
    assert_eq!(client.dbsize().await.unwrap(), 5 + 28);
    // The generic call, and an error reply that leaves things working.
    assert_eq!(
        client
            .cmd(["SETRANGE", "greeting", "0", "J"])
            .await
            .unwrap(),
        Frame::Integer(11)
    );
    assert_eq!(
        client.cmd(["GET", "greeting"]).await.unwrap(),
        Frame::bulk("Jello world")
    );
    let err = client.incr("list").await.unwrap_err();
    assert!(
        matches!(&err, Error::Redis(text) if text.starts_with("WRONGTYPE")),
        "{err:?}"
    );
    let err = client.cmd(["NOSUCHCOMMAND", "x"]).await.unwrap_err();
    assert!(
        matches!(err, Error::Route(RouteError::UnknownCommand(_))),
        "{err:?}"
    );
    assert_eq!(client.get("n").await.unwrap(), Some(b("1")));
}

/// Hashes and sets (the seed's "collections") through the typed methods,
/// over keys on every shard.
async fn collections_round_trip(client: &Client) {
    assert_eq!(client.hset("h", [("f", "1"), ("g", "2")]).await.unwrap(), 2);
    assert_eq!(client.hget("h", "g").await.unwrap(), Some(b("2")));
    assert_eq!(client.hdel("h", ["f", "x"]).await.unwrap(), 1);
    assert_eq!(client.hgetall("h").await.unwrap(), [(b("g"), b("2"))]);
    assert_eq!(client.hincrby("h", "g", 40).await.unwrap(), 42);
    assert_eq!(client.hlen("h").await.unwrap(), 1);
    assert!(client.hexists("h", "g").await.unwrap());
    assert!(!client.hexists("h", "f").await.unwrap());
    for i in 0..30 {
        let key = format!("tags:{i}");
        assert_eq!(client.sadd(&key, ["a", "b", "b", "c"]).await.unwrap(), 3);
        assert_eq!(client.srem(&key, ["c", "z"]).await.unwrap(), 1);
        let mut members = client.smembers(&key).await.unwrap();
        members.sort();
        assert_eq!(members, [b("a"), b("b")]);
        assert!(client.sismember(&key, "a").await.unwrap());
        assert!(!client.sismember(&key, "c").await.unwrap());
        assert_eq!(client.scard(&key).await.unwrap(), 2);
        let session = format!("session:{i}");
        client
            .hset(
                &session,
                [("user", i.to_string().as_str()), ("state", "on")],
            )
            .await
            .unwrap();
    }
    for i in 0..30 {
        let mut fields = client.hgetall(format!("session:{i}")).await.unwrap();
        fields.sort();
        assert_eq!(
            fields,
            [(b("state"), b("on")), (b("user"), b(&i.to_string()))]
        );
    }
    assert_eq!(
        client.smembers("nothing").await.unwrap(),
        Vec::<Bytes>::new()
    );
    assert_eq!(client.scard("nothing").await.unwrap(), 0);
}

#[test]
fn typed_round_trips_on_ember_nodes() {
    let cluster = NodeCluster::start(NodeKind::Ember, 2, 3);
    block_on(async {
        // No fault here: a timeout could only be the machine being busy.
        let mut options = options(WritePolicy::All);
        options.timeout = Duration::from_secs(10);
        let client = connect(cluster.groups(), options).await;
        typed_round_trips(&client).await;
        collections_round_trip(&client).await;
        // Every group holds every write: read each group alone.
        for g in 0..2 {
            for s in 0..3 {
                let node = NodeId(g * 3 + s);
                let size = client.cmd_on(node, ["DBSIZE"]).await.unwrap();
                assert!(
                    matches!(size, Frame::Integer(n) if n > 0),
                    "{node}: {size:?}"
                );
            }
        }
    });
}

#[test]
fn typed_round_trips_on_redis_nodes() {
    let cluster = NodeCluster::start(NodeKind::Redis, 2, 3);
    block_on(async {
        // No fault here: a timeout could only be the machine being busy.
        let mut options = options(WritePolicy::All);
        options.timeout = Duration::from_secs(10);
        let client = connect(cluster.groups(), options).await;
        typed_round_trips(&client).await;
        collections_round_trip(&client).await;
        // A transaction on one shard.
        let tx = vec![vec![b("SET"), b("t"), b("1")], vec![b("INCR"), b("t")]];
        assert_eq!(
            client.transaction(tx).await.unwrap(),
            Frame::Array(vec![Frame::simple("OK"), Frame::Integer(2)])
        );
    });
}

/// How long a test waits for something that takes a moment on an idle
/// machine: a bound on a hang, not a measure of speed.
const HANG: Duration = Duration::from_secs(30);

/// Progress the workers of [`kill_a_node_under_load`] report as they go.
#[derive(Debug, Default)]
struct Load {
    /// Acknowledged writes to keys on the victim's shard.
    victim_writes: AtomicUsize,
    /// Reads of earlier acknowledged writes (checked by the worker).
    reads: AtomicUsize,
    /// Failed writes and wrong or failed reads, which the workers report
    /// in full when they stop.
    errors: AtomicUsize,
}

impl Load {
    /// Waits until at least `writes` writes to the victim's shard and
    /// `reads` reads have been done, however long the machine takes, or
    /// until an error, which the caller's checks then show.
    async fn reach(&self, writes: usize, reads: usize) {
        let reached = tokio::time::timeout(HANG, async {
            while (self.victim_writes.load(Ordering::Relaxed) < writes
                || self.reads.load(Ordering::Relaxed) < reads)
                && self.errors.load(Ordering::Relaxed) == 0
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            reached.is_ok(),
            "the load stalled: {self:?}, waiting for {writes} writes and {reads} reads"
        );
    }
}

/// Writers and readers hammer the cluster while node 1 (group 0, shard 1)
/// is killed: every acknowledged write must stay readable, reads must keep
/// succeeding (they fail over to group 1), and writes keep being accepted
/// under `One`. Under `All`, writes to the dead node's shard fail, and say
/// why. The node's return, empty, is noticed.
///
/// The load is counted, not timed: at least 100 writes reach the victim's
/// shard before the kill, and 100 more (and 100 reads) after the client
/// marked it down, however slow the machine.
fn kill_a_node_under_load(kind: NodeKind) {
    let mut cluster = NodeCluster::start(kind, 2, 3);
    let victim = NodeId(1);
    block_on(async {
        let client = connect(cluster.groups(), options(WritePolicy::One)).await;
        let mut events = client.node_events();
        let stop = Arc::new(AtomicBool::new(false));
        let load = Arc::new(Load::default());
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (client, stop, load) = (client.clone(), stop.clone(), load.clone());
                tokio::spawn(async move {
                    let mut acked = HashMap::new();
                    let (mut write_errors, mut read_errors) = (Vec::new(), Vec::new());
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let (key, value) = (format!("w{w}:{i}"), format!("v{i}"));
                        match client.set(&key, &value).await {
                            Ok(()) => {
                                if client.topology().shard_for(key.as_bytes()).0 == 1 {
                                    load.victim_writes.fetch_add(1, Ordering::Relaxed);
                                }
                                acked.insert(key, value);
                            }
                            Err(e) => {
                                load.errors.fetch_add(1, Ordering::Relaxed);
                                write_errors.push(e.to_string());
                            }
                        }
                        // Read back an earlier write.
                        if i % 2 == 1 {
                            let key = format!("w{w}:{}", i / 2);
                            if let Some(want) = acked.get(&key) {
                                match client.get(&key).await {
                                    Ok(Some(got)) if got == want.as_bytes() => {}
                                    other => {
                                        load.errors.fetch_add(1, Ordering::Relaxed);
                                        read_errors.push(format!("{key}: {other:?}"));
                                    }
                                }
                                load.reads.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        i += 1;
                    }
                    (acked, write_errors, read_errors)
                })
            })
            .collect();
        load.reach(100, 0).await;
        tokio::task::block_in_place(|| cluster.nodes[1].kill());
        // The node is marked down once its connections keep failing.
        let down = tokio::time::timeout(HANG, async {
            while let Some(event) = events.recv().await {
                if event == NodeEvent::Down(victim) {
                    return;
                }
            }
        })
        .await;
        assert!(down.is_ok(), "no NodeDown for the killed node");
        assert!(!client.is_up(victim));
        let writes = load.victim_writes.load(Ordering::Relaxed);
        let reads = load.reads.load(Ordering::Relaxed);
        load.reach(writes + 100, reads + 100).await;
        stop.store(true, Ordering::Relaxed);
        let mut acked = HashMap::new();
        for worker in workers {
            let (a, write_errors, read_errors) = worker.await.unwrap();
            assert!(
                write_errors.is_empty(),
                "writes failed under One: {write_errors:?}"
            );
            assert!(read_errors.is_empty(), "reads failed: {read_errors:?}");
            acked.extend(a);
        }
        // Every acknowledged write is readable, through group 1 for the
        // dead node's shard.
        let keys: Vec<&String> = acked.keys().collect();
        for chunk in keys.chunks(500) {
            let values = client.mget(chunk).await.unwrap();
            for (key, value) in chunk.iter().zip(values) {
                assert_eq!(value.as_deref(), Some(acked[*key].as_bytes()), "{key}");
            }
        }
        // Under All, a write to the dead node's shard fails and says so;
        // other shards still take writes.
        let strict = connect(cluster.groups(), options(WritePolicy::All)).await;
        let topology = strict.topology().clone();
        let err = strict
            .set(&keys_on(&topology, 1, 1, "strict")[0], "x")
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, Error::Route(RouteError::WriteFailed { .. })),
            "{err:?}"
        );
        assert!(text.contains("all policy"), "{text}");
        strict
            .set(&keys_on(&topology, 0, 1, "strict")[0], "x")
            .await
            .unwrap();
        strict
            .set(&keys_on(&topology, 2, 1, "strict")[0], "x")
            .await
            .unwrap();
        // Bring it back on the same port: a probe notices.
        tokio::task::block_in_place(|| cluster.nodes[1].restart());
        let up = tokio::time::timeout(HANG, async {
            while let Some(event) = events.recv().await {
                if event == NodeEvent::Up(victim) {
                    return;
                }
            }
        })
        .await;
        assert!(up.is_ok(), "no NodeUp after the restart");
        assert!(client.is_up(victim));
        // It is empty (no resync), but it takes writes again.
        let key = &keys_on(client.topology(), 1, 1, "back")[0];
        strict.set(key, "again").await.unwrap();
        assert_eq!(
            client.cmd_on(victim, ["GET", key]).await.unwrap(),
            Frame::bulk("again")
        );
    });
}

#[test]
fn kill_an_ember_node_under_load() {
    kill_a_node_under_load(NodeKind::Ember);
}

#[test]
fn kill_a_redis_node_under_load() {
    kill_a_node_under_load(NodeKind::Redis);
}

/// A node that accepts connections and never answers: commands time out,
/// reads fail over, the connection is dropped and opened again, and the node
/// is marked down.
#[test]
fn a_silent_node_times_out() {
    let silent = SilentNode::start();
    let redis = RedisServer::start(&[]);
    block_on(async {
        let mut opts = options(WritePolicy::One);
        opts.timeout = Duration::from_millis(200);
        // The timeouts themselves are under test: with self-healing, a node
        // that never answered its handshake is not verified, and reads
        // would skip it from the start.
        opts.healing = false;
        let groups = vec![vec![silent.addr()], vec![redis.addr().to_string()]];
        let client = connect(groups.clone(), opts.clone()).await;
        client.set("k", "v").await.unwrap();
        // Reads try group 0 first: each waits out the timeout, then group 1
        // answers.
        let start = Instant::now();
        assert_eq!(client.get("k").await.unwrap(), Some(b("v")));
        // (The write's own timeout, just before, resets that connection.)
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "{:?}",
            start.elapsed()
        );
        for _ in 0..3 {
            assert_eq!(client.get("k").await.unwrap(), Some(b("v")));
        }
        assert!(!client.is_up(NodeId(0)), "three timeouts mark it down");
        // Down, it is skipped: the read is not even sent there (so it
        // cannot wait there), which the node itself tells, with no clock.
        let tried = gets_of_k(&silent);
        assert!(tried > 0, "the reads before did reach the silent node");
        assert_eq!(client.get("k").await.unwrap(), Some(b("v")));
        assert_eq!(gets_of_k(&silent), tried, "a read went to the down node");
        // Each timeout replaced the connection.
        assert!(silent.accepted() >= 3, "accepted {}", silent.accepted());
        // Under All the write cannot be acknowledged by group 0.
        let mut all = opts.clone();
        all.write_policy = WritePolicy::All;
        let strict = connect(groups, all).await;
        let err = strict.set("k", "w").await.unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(err.to_string().contains("timed out"), "{err}");
        // The single-node connection: a timeout is Error::Timeout.
        let mut single = opts;
        single.timeout = Duration::from_millis(100);
        let conn = Connection::connect_with(silent.addr(), single.clone())
            .await
            .unwrap();
        let before = silent.accepted();
        for _ in 0..2 {
            let start = Instant::now();
            let err = tokio::time::timeout(HANG, conn.get("k"))
                .await
                .expect("the request's timeout fired")
                .unwrap_err();
            assert!(matches!(err, Error::Timeout), "{err:?}");
            // Not before the timeout: a lower bound is certain.
            assert!(start.elapsed() >= single.timeout, "{:?}", start.elapsed());
        }
        assert!(silent.accepted() > before, "the connection was rebuilt");
    });
}

/// How many `GET k` the silent node has been sent.
fn gets_of_k(silent: &SilentNode) -> usize {
    let get = b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n";
    silent
        .received()
        .to_ascii_lowercase()
        .windows(get.len())
        .filter(|w| w == get)
        .count()
}

/// `Connection`: one Redis server, any command, pipelining.
#[test]
fn single_connection_against_redis() {
    let redis = RedisServer::start(&[]);
    block_on(async {
        let conn = Connection::connect(redis.addr().to_string()).await.unwrap();
        conn.set("k", "v").await.unwrap();
        assert_eq!(conn.get("k").await.unwrap(), Some(b("v")));
        // Commands the router would refuse go through as they are.
        assert_eq!(
            conn.cmd(["CLIENT", "SETNAME", "me"]).await.unwrap(),
            Frame::simple("OK")
        );
        assert_eq!(
            conn.cmd(["CLIENT", "GETNAME"]).await.unwrap(),
            Frame::bulk("me")
        );
        let err = conn.cmd(["NOSUCH"]).await.unwrap_err();
        assert!(
            matches!(&err, Error::Redis(t) if t.starts_with("ERR unknown command")),
            "{err:?}"
        );
        // A pipeline of 1000 answered in order.
        let replies = conn
            .pipeline((0..1000).map(|_| vec![b("INCR"), b("counter")]))
            .await;
        let values: Vec<i64> = replies
            .into_iter()
            .map(|r| match r.unwrap() {
                Frame::Integer(n) => n,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(values, (1..=1000).collect::<Vec<_>>());
        // Many tasks at once share the one connection.
        let tasks: Vec<_> = (0..50)
            .map(|t| {
                let conn = conn.clone();
                tokio::spawn(async move {
                    for i in 0..100 {
                        let key = format!("t{t}:{i}");
                        conn.set(&key, &key).await.unwrap();
                        assert_eq!(conn.get(&key).await.unwrap(), Some(b(&key)));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(conn.dbsize().await.unwrap(), 5002);
        // A blocking pop waits on its own connection, not in front of the
        // others: with the pop blocked for good on the server, a GET is
        // answered, and the pop is still waiting. (Queued behind it, the
        // GET would wait for the push below, which never comes.)
        let waiter = {
            let conn = conn.clone();
            tokio::spawn(async move { conn.cmd(["BLPOP", "queue", "0"]).await })
        };
        let mut admin = redis.connect();
        let blocked = tokio::time::timeout(HANG, async {
            while !String::from_utf8_lossy(&ember_tests::call(&mut admin, &[b"INFO", b"clients"]))
                .contains("blocked_clients:1\r\n")
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(blocked.is_ok(), "the BLPOP never blocked");
        let got = tokio::time::timeout(HANG, conn.get("k")).await;
        assert_eq!(
            got.expect("a GET behind a blocked BLPOP").unwrap(),
            Some(b("v"))
        );
        assert!(!waiter.is_finished());
        conn.rpush("queue", ["job"]).await.unwrap();
        assert_eq!(
            waiter.await.unwrap().unwrap(),
            Frame::Array(vec![Frame::bulk("queue"), Frame::bulk("job")])
        );
        // A server that went away: an I/O error, then a reconnection.
        drop(redis);
        let err = conn.get("k").await.unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err:?}");
    });
    let err = block_on(Connection::connect("127.0.0.1:1")).unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err:?}");
}

/// Runs ember-cli in this process (a client of its own, as a new process
/// would have), its standard input `stdin`.
pub(crate) fn ember_cli(args: &[&str], stdin: &[u8]) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let io = Io {
        stdin: Box::new(std::io::Cursor::new(stdin.to_vec())),
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

#[test]
fn ember_cli_prints_like_redis_cli() {
    let redis = RedisServer::start(&[]);
    let port = redis.addr().port().to_string();
    let node = redis.addr().to_string();
    block_on(async {
        let conn = Connection::connect(node.clone()).await.unwrap();
        conn.set("sp", b"a\"b\\c\n\r\t\x01\x7f\xc3\xa9 z")
            .await
            .unwrap();
        conn.set("n", "41").await.unwrap();
        conn.rpush("twelve", (1..=12).map(|i| i.to_string()))
            .await
            .unwrap();
        conn.hset("h", [("f", "v")]).await.unwrap();
    });
    let nested = "return {1,'a',{2,{}},{},{'x',{'y','z'}},{err='E2 inner'}}";
    let wide = "local t={} for i=1,11 do t[i]={i,'v'} end return t";
    let cases: &[&[&str]] = &[
        &["SET", "s", "hello world"],
        &["GET", "s"],
        &["GET", "sp"],
        &["INCRBY", "n", "0"],
        &["GET", "missing"],
        &["LPUSH", "s", "x"],
        &["NOSUCH", "a"],
        &["GET"],
        &["EVAL", nested, "0"],
        &["EVAL", wide, "0"],
        &["LRANGE", "twelve", "0", "-1"],
        &["LRANGE", "empty", "0", "-1"],
        &["MGET", "s", "missing", "n"],
        &["HGETALL", "h"],
    ];
    for case in cases {
        for raw in [false, true] {
            let mode = if raw { "--raw" } else { "--no-raw" };
            let redis_cli = Command::new("redis-cli")
                .args(["-p", &port, mode])
                .args(*case)
                .output()
                .expect("redis-cli runs (scripts/test installs redis-tools)");
            let want = String::from_utf8_lossy(&redis_cli.stdout).into_owned();
            let mut args = vec!["--replica", &node, mode];
            args.extend(*case);
            let (code, got, err) = ember_cli(&args, b"");
            assert_eq!(got, want, "{case:?} {mode}; stderr: {err}");
            assert_eq!(code, 0, "{case:?}");
        }
    }
}

#[test]
fn ember_cli_locate() {
    let groups = ["a:1,b:1,c:1", "d:1,e:1,f:1"];
    let (code, out, _) = ember_cli(
        &[
            "--replica",
            groups[0],
            "--replica",
            groups[1],
            "locate",
            "foo",
            "bar",
            "{x}1",
        ],
        b"",
    );
    assert_eq!(code, 0);
    let topology = Topology::new([["a:1", "b:1", "c:1"], ["d:1", "e:1", "f:1"]]).unwrap();
    let want: String = ["foo", "bar", "{x}1"]
        .iter()
        .map(|k| {
            let (shard, nodes) = topology.locate(k.as_bytes());
            let addrs: Vec<&str> = nodes.iter().map(|n| topology.addr(*n).unwrap()).collect();
            format!("{k}\t{}\t{}\n", shard.0, addrs.join("\t"))
        })
        .collect();
    assert_eq!(out, want);
    // Go's client places "foo" on shard 8 of 10 (see ember-route's tests).
    let ten: Vec<String> = (0..10).map(|i| format!("n{i}:1")).collect();
    let (_, out, _) = ember_cli(&["--replica", &ten.join(","), "locate", "foo"], b"");
    assert_eq!(out, "foo\t8\tn8:1\n");
    // Hash tags put keys with one tag together.
    let (_, out, _) = ember_cli(
        &[
            "--replica",
            &ten.join(","),
            "--hash-tags",
            "locate",
            "{u}a",
            "{u}b",
        ],
        b"",
    );
    let shards: Vec<&str> = out.lines().map(|l| l.split('\t').nth(1).unwrap()).collect();
    assert_eq!(shards[0], shards[1]);
    // A topology file says the same as the flags.
    let path = std::env::temp_dir().join(format!("ember-topology-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "replicas = [\n  [\"a:1\", \"b:1\", \"c:1\"],\n  [\"d:1\", \"e:1\", \"f:1\"],\n]\nwrite_policy = \"quorum\"\n",
    )
    .unwrap();
    let (_, from_file, _) = ember_cli(
        &[
            "--topology",
            path.to_str().unwrap(),
            "locate",
            "foo",
            "bar",
            "{x}1",
        ],
        b"",
    );
    let _ = std::fs::remove_file(&path);
    assert_eq!(from_file, want);
}

#[test]
fn ember_cli_bulk_load_through_the_cluster() {
    let cluster = NodeCluster::start(NodeKind::Ember, 2, 3);
    let groups: Vec<String> = cluster.groups().iter().map(|g| g.join(",")).collect();
    let n = 5000;
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&format!("SET bulk:{i} \"value {i}\"\n"));
        // Read each key right after its write: order per key is kept.
        input.push_str(&format!("GET bulk:{i}\n"));
    }
    input.push_str("\n   \nGET \"unbalanced\nINCR bulk:0\nMGET bulk:1 nothing bulk:2\n");
    let args = ["--replica", &groups[0], "--replica", &groups[1]];
    let (code, out, err) = ember_cli(&args, input.as_bytes());
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    for i in 0..n {
        assert_eq!(lines[2 * i], "OK", "line {}", 2 * i);
        assert_eq!(lines[2 * i + 1], format!("value {i}"), "line {}", 2 * i + 1);
    }
    assert_eq!(
        &lines[2 * n..],
        [
            "ERR Protocol error: unbalanced quotes in request",
            "",
            "ERR value is not an integer or out of range",
            "",
            "value 1",
            "",
            "value 2"
        ]
    );
    // Every write reached both groups.
    block_on(async {
        let client = connect(cluster.groups(), options(WritePolicy::One)).await;
        for g in 0..2u32 {
            let mut total = 0;
            for s in 0..3 {
                match client.cmd_on(NodeId(g * 3 + s), ["DBSIZE"]).await.unwrap() {
                    Frame::Integer(k) => total += k,
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(total, n as i64, "group {g}");
        }
    });
}

/// Nodes that ask for a password, and a database other than 0: `Client`,
/// `Connection` and `ember-cli` authenticate and select on every
/// connection, against Redis and Ember alike; a wrong password is a clear
/// error, not a hang.
#[test]
fn auth_and_select_on_every_connection() {
    let redis = RedisServer::start(&["--requirepass", "s3cret"]);
    let ember = ember_tests::EmberServer::start(&["requirepass s3cret"]);
    for addr in [redis.addr().to_string(), ember.addr().to_string()] {
        let mut opts = options(WritePolicy::One);
        opts.timeout = Duration::from_secs(10);
        opts.password = Some("s3cret".into());
        opts.database = 3;
        block_on(async {
            let topology = Topology::new(vec![vec![addr.clone()]]).expect("a topology");
            let client = Client::connect(topology, opts.clone())
                .await
                .expect("connect");
            client.set("k", "v").await.unwrap();
            let conn = Connection::connect_with(addr.clone(), opts.clone())
                .await
                .unwrap();
            assert_eq!(conn.get("k").await.unwrap(), Some(b("v")));
            // The key is in database 3, not 0.
            let mut zero = opts.clone();
            zero.database = 0;
            let conn0 = Connection::connect_with(addr.clone(), zero).await.unwrap();
            assert_eq!(conn0.get("k").await.unwrap(), None);
            // A wrong password.
            let mut wrong = opts.clone();
            wrong.password = Some("nope".into());
            let err = Connection::connect_with(addr.clone(), wrong)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("AUTH"), "{err}");
        });
        let (code, out, err) = ember_cli(
            &["--replica", &addr, "-a", "s3cret", "-n", "3", "GET", "k"],
            b"",
        );
        assert_eq!((code, out.as_str()), (0, "v\n"), "{err}");
    }
}

/// The seed's "collections" through `ember-cli` across a fleet: hashes and
/// sets on keys of every shard, written to both groups, read back as
/// redis-cli prints them, and present in each group alone.
fn ember_cli_collections_across_a_fleet(kind: NodeKind) {
    let cluster = NodeCluster::start(kind, 2, 3);
    let groups: Vec<String> = cluster.groups().iter().map(|g| g.join(",")).collect();
    let n = 50;
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&format!("HSET user:{i} name \"user {i}\" visits 1\n"));
        input.push_str(&format!("HINCRBY user:{i} visits 2\n"));
        input.push_str(&format!("SADD tags:{i} red blue blue\n"));
    }
    // Answers whose order is fixed: a listpack hash keeps insertion order,
    // and an intset is sorted.
    input.push_str("HGETALL user:7\nSADD nums:{x} 3 1 2\nSMEMBERS nums:{x}\nSCARD tags:3\n");
    input.push_str("SADD nums2:{x} 2 3 4\nSINTER nums:{x} nums2:{x}\nTYPE tags:0\n");
    let args = [
        "--replica",
        &groups[0],
        "--replica",
        &groups[1],
        "--no-raw",
        "--hash-tags",
    ];
    let (code, out, err) = ember_cli(&args, input.as_bytes());
    assert_eq!(code, 0, "{err}\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    for i in 0..n {
        assert_eq!(lines[3 * i], "(integer) 2", "line {}", 3 * i);
        assert_eq!(lines[3 * i + 1], "(integer) 3");
        assert_eq!(lines[3 * i + 2], "(integer) 2");
    }
    assert_eq!(
        &lines[3 * n..],
        [
            "1) \"name\"",
            "2) \"user 7\"",
            "3) \"visits\"",
            "4) \"3\"",
            "(integer) 3",
            "1) \"1\"",
            "2) \"2\"",
            "3) \"3\"",
            "(integer) 2",
            "(integer) 3",
            "1) \"2\"",
            "2) \"3\"",
            "set",
        ]
    );
    // Each group alone holds every key.
    block_on(async {
        let client = connect(cluster.groups(), options(WritePolicy::One)).await;
        for g in 0..2u32 {
            let mut total = 0;
            for s in 0..3 {
                match client.cmd_on(NodeId(g * 3 + s), ["DBSIZE"]).await.unwrap() {
                    Frame::Integer(k) => total += k,
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(total, 2 * n as i64 + 2, "group {g}");
        }
    });
}

#[test]
fn ember_cli_collections_across_redis_nodes() {
    ember_cli_collections_across_a_fleet(NodeKind::Redis);
}

#[test]
fn ember_cli_collections_across_ember_nodes() {
    ember_cli_collections_across_a_fleet(NodeKind::Ember);
}

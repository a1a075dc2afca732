//! Pub/sub through ember-proxy (issues 14 and 17): `redis-cli SUBSCRIBE`
//! and redis-py's `PubSub` through the proxy to 2 x 2 fleets, every frame
//! of subscriber mode (RESP2) and of pushes mixed with replies (RESP3)
//! compared byte for byte with a redis-server's, subscriber-mode errors,
//! `PUBSUB` answered across the fleet, and a subscriber whose node is
//! SIGKILLed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ::client::Topology;
use bytes::{Bytes, BytesMut};
use ember_tests::{NodeCluster, NodeKind, RedisServer, TempDir};
use proxy::ProxyConfig;

use crate::proxy::Proxy;

/// How long anything here may take to arrive.
const WAIT: Duration = Duration::from_secs(10);

/// A connection that reads one frame at a time, keeping what came after.
struct Wire {
    stream: TcpStream,
    buf: BytesMut,
    decoder: resp::Decoder,
}

impl Wire {
    fn connect(addr: SocketAddr) -> Wire {
        Wire {
            stream: ember_tests::connect(addr),
            buf: BytesMut::new(),
            decoder: resp::Decoder::new(),
        }
    }

    fn send(&mut self, args: &[&str]) {
        let mut request = BytesMut::new();
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        resp::encode_command(&mut request, &args);
        self.stream.write_all(&request).expect("write");
    }

    /// The next frame's bytes, if one arrives within `wait`.
    fn frame_within(&mut self, wait: Duration) -> Option<Bytes> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(frame) = self
                .decoder
                .decode_raw(&mut self.buf)
                .expect("a valid frame")
            {
                return Some(frame.as_bytes().clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("closed before a frame ({:?})", self.buf),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The next frame, within [`WAIT`].
    fn frame(&mut self) -> Bytes {
        self.frame_within(WAIT).expect("a frame within the wait")
    }

    /// Sends `args` and reads `frames` frames.
    fn call(&mut self, args: &[&str], frames: usize) -> Vec<Bytes> {
        self.send(args);
        (0..frames).map(|_| self.frame()).collect()
    }
}

fn show(frames: &[Bytes]) -> String {
    frames
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// A channel name with `prefix` that lives on `shard`.
fn channel_on(topology: &Topology, shard: u32, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|c| topology.shard_for(c.as_bytes()).0 == shard)
        .expect("some channel lands on every shard")
}

/// One step of a conversation: a command on the subscriber's connection
/// and the frames it brings, or a command on a second connection (a
/// publisher) and the frames the subscriber then receives.
enum Step<'a> {
    Sub(Vec<&'a str>, usize),
    Pub(Vec<&'a str>, usize),
}

/// Plays `steps` against `addr` (after `hello` on both connections): every
/// frame each connection received, in order.
fn converse(addr: SocketAddr, hello: &str, steps: &[Step<'_>]) -> Vec<String> {
    let mut sub = Wire::connect(addr);
    let mut publisher = Wire::connect(addr);
    for wire in [&mut sub, &mut publisher] {
        let answer = wire.call(&["HELLO", hello], 1);
        assert!(!answer[0].starts_with(b"-"), "{}", show(&answer));
        wire.call(&["DEL", "k"], 1);
    }
    let mut seen = Vec::new();
    for step in steps {
        match step {
            Step::Sub(args, n) => {
                seen.push(format!("{args:?} -> {}", show(&sub.call(args, *n))));
            }
            Step::Pub(args, n) => {
                let reply = show(&publisher.call(args, 1));
                let heard: Vec<Bytes> = (0..*n).map(|_| sub.frame()).collect();
                seen.push(format!("{args:?} -> {reply} / {}", show(&heard)));
            }
        }
    }
    seen
}

/// RESP2 subscriber mode and RESP3 pushes mixed with replies, through the
/// proxy, frame for frame as redis-server sends them: confirmations and
/// their counts (channels and patterns together, shard channels apart,
/// duplicates, names not held, unsubscribing from nothing), messages,
/// pattern and shard messages (binary payloads), PING's subscriber form,
/// the errors of commands subscriber mode refuses (with Redis's full
/// names for subcommands), the arity error before them, leaving subscriber
/// mode when the last shard channel goes, and RESET.
#[test]
fn subscriber_frames_match_redis_byte_for_byte() {
    use Step::{Pub, Sub};
    // One group: PUBLISH's count is a single node's, as on the reference.
    let fleet = NodeCluster::start(NodeKind::Redis, 1, 2);
    let topology = Topology::new(fleet.groups()).unwrap();
    let reference = RedisServer::start(&[]);
    let proxy = Proxy::start(fleet.groups(), ProxyConfig::new());
    let (a, b) = (channel_on(&topology, 0, "c"), channel_on(&topology, 1, "c"));
    let s = channel_on(&topology, 1, "s");
    let (a, b, s) = (a.as_str(), b.as_str(), s.as_str());
    let resp2 = vec![
        Sub(vec!["SUBSCRIBE", a, b, a], 3),
        Sub(vec!["PSUBSCRIBE", "c*"], 1),
        Pub(vec!["PUBLISH", a, "hello"], 2),
        Pub(vec!["PUBLISH", b, "x y\r\nz\0"], 2),
        Pub(vec!["PUBLISH", "nox", "-"], 0),
        Pub(vec!["PUBLISH", "cx", ""], 1),
        Sub(vec!["PING"], 1),
        Sub(vec!["PING", "hi"], 1),
        Sub(vec!["PING", "a", "b"], 1),
        Sub(vec!["GET", "k"], 1),
        Sub(vec!["GET"], 1),
        Sub(vec!["CLIENT", "ID"], 1),
        Sub(vec!["PUBSUB", "NUMPAT"], 1),
        Sub(vec!["MULTI"], 1),
        Sub(vec!["HELLO", "3"], 1),
        Sub(vec!["SUBSCRIBE"], 1),
        Sub(vec!["SSUBSCRIBE", s], 1),
        Pub(vec!["SPUBLISH", s, "sharded"], 1),
        Sub(vec!["UNSUBSCRIBE", "zz"], 1),
        Sub(vec!["UNSUBSCRIBE", a], 1),
        Sub(vec!["PUNSUBSCRIBE"], 1),
        Sub(vec!["PUNSUBSCRIBE"], 1),
        Pub(vec!["PUBLISH", a, "gone"], 0),
        Pub(vec!["PUBLISH", b, "still"], 1),
        Sub(vec!["UNSUBSCRIBE", b], 1),
        Sub(vec!["GET", "k"], 1),
        Sub(vec!["SUNSUBSCRIBE"], 1),
        Sub(vec!["GET", "k"], 1),
        Sub(vec!["UNSUBSCRIBE"], 1),
        Sub(vec!["PING"], 1),
        Sub(vec!["SUBSCRIBE", a], 1),
        Sub(vec!["RESET"], 1),
        Pub(vec!["PUBLISH", a, "after reset"], 0),
        Sub(vec!["GET", "k"], 1),
        // PUBSUB across the fleet, with nothing subscribed, and its errors
        // and help as a node gives them.
        Sub(vec!["PUBSUB", "NUMSUB", a, b], 1),
        Sub(vec!["PUBSUB", "NUMPAT"], 1),
        Sub(vec!["PUBSUB", "CHANNELS"], 1),
        Sub(vec!["PUBSUB", "SHARDCHANNELS", "c*"], 1),
        Sub(vec!["PUBSUB", "HELP"], 1),
        Sub(vec!["PUBSUB", "FOO"], 1),
        Sub(vec!["PUBSUB", "NUMPAT", "x"], 1),
        Sub(vec!["PUBSUB", "CHANNELS", "a", "b"], 1),
        Sub(vec!["PUBSUB"], 1),
        Sub(vec!["RESET", "x"], 1),
    ];
    let resp3 = vec![
        Sub(vec!["SUBSCRIBE", a], 1),
        Sub(vec!["SET", "k", "v"], 1),
        Pub(vec!["PUBLISH", a, "m1"], 1),
        Sub(vec!["GET", "k"], 1),
        Sub(vec!["GET", "nope"], 1),
        Sub(vec!["HGETALL", "nope"], 1),
        Sub(vec!["PING"], 1),
        Sub(vec!["PSUBSCRIBE", "c*"], 1),
        Pub(vec!["PUBLISH", b, "m2"], 1),
        Pub(vec!["PUBLISH", a, "m3"], 2),
        Sub(vec!["UNSUBSCRIBE", "zz"], 1),
        Sub(vec!["PUNSUBSCRIBE"], 1),
        Sub(vec!["PUNSUBSCRIBE"], 1),
        Sub(vec!["SSUBSCRIBE", s], 1),
        Pub(vec!["SPUBLISH", s, "m4"], 1),
        Sub(vec!["RESET"], 1),
        Sub(vec!["GET", "k"], 1),
        Pub(vec!["PUBLISH", a, "after reset"], 0),
    ];
    for (hello, steps) in [("2", resp2), ("3", resp3)] {
        let want = converse(reference.addr(), hello, &steps);
        let got = converse(proxy.addr, hello, &steps);
        for (want, got) in want.iter().zip(&got) {
            assert_eq!(
                got, want,
                "RESP{hello}: the proxy (left) and redis-server differ"
            );
        }
        assert_eq!(got.len(), want.len());
    }
}

/// Subscribes and unsubscribes inside MULTI are queued and run by EXEC as
/// redis-server runs them, frame for frame in RESP2 and RESP3: EXEC's
/// array header counts commands while a SUBSCRIBE of two channels brings
/// two confirmations, SSUBSCRIBE fails with Redis's error at EXEC, RESP2's
/// subscriber mode starts after it, an arity error aborts the
/// transaction, and the other commands run as one transaction.
#[test]
fn subscribing_inside_multi_matches_redis() {
    use Step::{Pub, Sub};
    let fleet = NodeCluster::start(NodeKind::Redis, 1, 2);
    let topology = Topology::new(fleet.groups()).unwrap();
    let reference = RedisServer::start(&[]);
    let proxy = Proxy::start(fleet.groups(), ProxyConfig::new());
    let (a, b) = (channel_on(&topology, 0, "c"), channel_on(&topology, 1, "c"));
    let s = channel_on(&topology, 1, "s");
    let (a, b, s) = (a.as_str(), b.as_str(), s.as_str());
    let resp2 = vec![
        Sub(vec!["MULTI"], 1),
        Sub(vec!["UNSUBSCRIBE"], 1),
        Sub(vec!["PUNSUBSCRIBE", "x"], 1),
        Sub(vec!["SUNSUBSCRIBE"], 1),
        Sub(vec!["EXEC"], 1),
        Sub(vec!["MULTI"], 1),
        Sub(vec!["SUBSCRIBE", a, b], 1),
        Sub(vec!["PSUBSCRIBE", "c*"], 1),
        Sub(vec!["SSUBSCRIBE", s], 1),
        Sub(vec!["SET", "k", "v"], 1),
        Sub(vec!["UNSUBSCRIBE", "zz"], 1),
        // *5 [sub a, sub b, psub, error, OK], then the unsubscribe's
        // confirmation past the array's end, as Redis writes it.
        Sub(vec!["EXEC"], 2),
        Pub(vec!["PUBLISH", a, "m1"], 2),
        Sub(vec!["PING"], 1),
        Sub(vec!["GET", "k"], 1),
        Sub(vec!["RESET"], 1),
        Sub(vec!["MULTI"], 1),
        Sub(vec!["SUBSCRIBE"], 1),
        Sub(vec!["EXEC"], 1),
        Sub(vec!["GET", "k"], 1),
    ];
    let resp3 = vec![
        Sub(vec!["SUBSCRIBE", a], 1),
        Sub(vec!["MULTI"], 1),
        Sub(vec!["UNSUBSCRIBE"], 1),
        Sub(vec!["SET", "k", "w"], 1),
        Sub(vec!["PSUBSCRIBE", "c*"], 1),
        Sub(vec!["GET", "k"], 1),
        // One key: the fleet's transactions live on one shard.
        Sub(vec!["LLEN", "k"], 1),
        Sub(vec!["EXEC"], 1),
        Pub(vec!["PUBLISH", b, "m2"], 1),
        Sub(vec!["PING"], 1),
    ];
    for (hello, steps) in [("2", resp2), ("3", resp3)] {
        let want = converse(reference.addr(), hello, &steps);
        let got = converse(proxy.addr, hello, &steps);
        for (want, got) in want.iter().zip(&got) {
            assert_eq!(
                got, want,
                "RESP{hello}: the proxy (left) and redis-server differ"
            );
        }
        assert_eq!(got.len(), want.len());
    }
}

/// A subscriber that never reads, while a publisher sends 26 MB of 64 KiB
/// messages: the proxy keeps taking its messages from the fleet and
/// closes it once the bytes waiting for it pass its
/// `client-output-buffer-limit pubsub` (1 MiB hard here), counting it in
/// INFO; a second subscriber of the same channel receives every message,
/// in order.
#[test]
fn a_subscriber_that_never_reads_is_cut_at_its_output_limit() {
    const MESSAGES: usize = 400;
    const SIZE: usize = 64 * 1024;
    let fleet = NodeCluster::start(NodeKind::Redis, 1, 1);
    let mut config = ProxyConfig::new();
    config.pubsub_output_limit = "pubsub 1mb 0 0".parse().unwrap();
    let proxy = Proxy::start(fleet.groups(), config);
    let mut slow = Wire::connect(proxy.addr);
    assert!(show(&slow.call(&["SUBSCRIBE", "big"], 1)).contains("subscribe"));
    let mut fast = Wire::connect(proxy.addr);
    assert!(show(&fast.call(&["SUBSCRIBE", "big"], 1)).contains("subscribe"));
    let payload = |i: usize| format!("{i:06}{}", "x".repeat(SIZE - 6));
    // The publisher stays at most four messages ahead of the reader, so
    // the reader never nears the limit however slowly a loaded machine
    // runs its thread.
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = taken.clone();
    let reader = std::thread::spawn(move || {
        for i in 0..MESSAGES {
            let want = format!(
                "*3\r\n$7\r\nmessage\r\n$3\r\nbig\r\n${SIZE}\r\n{}\r\n",
                payload(i)
            );
            let got = fast.frame();
            assert!(got == want.as_bytes(), "message {i} differs");
            progress.store(i + 1, std::sync::atomic::Ordering::Release);
        }
    });
    let mut publisher = Wire::connect(proxy.addr);
    for i in 0..MESSAGES {
        let deadline = Instant::now() + WAIT;
        while taken.load(std::sync::atomic::Ordering::Acquire) + 4 < i {
            assert!(Instant::now() < deadline, "the reader stopped receiving");
            std::thread::sleep(Duration::from_millis(1));
        }
        let answer = show(&publisher.call(&["PUBLISH", "big", &payload(i)], 1));
        assert!(answer == ":2\r\n" || answer == ":1\r\n", "{answer}");
    }
    reader
        .join()
        .expect("the reading subscriber got every message");
    // The slow one was closed: what it holds ends, short of everything.
    let mut received = slow.buf.len();
    let deadline = Instant::now() + WAIT;
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        slow.stream.set_read_timeout(Some(left)).unwrap();
        let mut chunk = vec![0u8; 256 * 1024];
        match slow.stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(closed, "the subscriber that never read is still connected");
    assert!(
        received < MESSAGES * SIZE,
        "it got everything ({received} bytes)"
    );
    let mut c = Wire::connect(proxy.addr);
    let info = show(&c.call(&["INFO", "stats"], 1));
    assert!(
        info.contains("client_output_buffer_limit_disconnections:1\r\n"),
        "{info}"
    );
}

/// redis-py's own pub/sub checks (`tests/py/redis_py_pubsub.py`: listen,
/// get_message, patterns, run_in_thread, sharded channels, PUBSUB NUMSUB,
/// NUMPAT and CHANNELS) hold through the proxy on a 2 x 2 fleet, in RESP2
/// and RESP3.
#[test]
fn redis_py_pubsub_through_the_proxy() {
    let fleet = NodeCluster::start(NodeKind::Ember, 2, 2);
    let proxy = Proxy::start(fleet.groups(), ProxyConfig::new());
    for protocol in [2, 3] {
        match crate::python::run_py("redis_py_pubsub.py", proxy.addr, protocol) {
            Ok(text) => assert!(text.contains(": ok"), "{text}"),
            Err(text) => panic!("redis-py pubsub through the proxy (RESP{protocol}):\n{text}"),
        }
    }
}

/// `redis-cli args...`, its output going to `out`.
fn spawn_redis_cli(port: u16, args: &[&str], out: &Path) -> Child {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).expect("the output file"))
        .spawn()
        .expect("spawn redis-cli")
}

/// Waits until `out` holds `text`.
fn wait_for(out: &Path, text: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = std::fs::read_to_string(out).unwrap_or_default();
        if got.contains(text) {
            return got;
        }
        assert!(Instant::now() < deadline, "{text:?} never came:\n{got}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `redis-cli SUBSCRIBE` and `PSUBSCRIBE` through the proxy (a 2 x 2 fleet
/// of Ember nodes) print exactly what they print against one
/// redis-server, and `redis-cli PUBLISH` through the proxy answers what it
/// answers there.
#[test]
fn redis_cli_subscribes_through_the_proxy() {
    let fleet = NodeCluster::start(NodeKind::Ember, 2, 2);
    let topology = Topology::new(fleet.groups()).unwrap();
    let proxy = Proxy::start(fleet.groups(), ProxyConfig::new());
    let reference = RedisServer::start(&[]);
    let (a, b) = (channel_on(&topology, 0, "n"), channel_on(&topology, 1, "n"));
    let dir = TempDir::new("proxy-pubsub-cli");
    for (i, args) in [
        vec!["SUBSCRIBE", a.as_str(), b.as_str()],
        vec!["--no-raw", "PSUBSCRIBE", "n*", "x"],
    ]
    .into_iter()
    .enumerate()
    {
        let ports = [proxy.addr.port(), reference.addr().port()];
        let files = ports.map(|p| dir.path().join(format!("{i}-{p}")));
        let mut children: Vec<Child> = ports
            .iter()
            .zip(&files)
            .map(|(&port, file)| spawn_redis_cli(port, &args, file))
            .collect();
        // Subscribed once the last confirmation is printed.
        let last = if args[0] == "SUBSCRIBE" {
            "2\n"
        } else {
            "(integer) 2\n"
        };
        for file in &files {
            wait_for(file, last);
        }
        // One message at a time: channels of different shards reach the
        // proxy over different connections.
        for (channel, text) in [
            (a.as_str(), "hello"),
            (b.as_str(), "tw\u{e9} words"),
            (a.as_str(), "end"),
        ] {
            let answers = ports.map(|port| redis_cli(port, &["PUBLISH", channel, text]));
            assert_eq!(answers[0], answers[1], "PUBLISH {channel}");
            assert_eq!(answers[0], "1\n");
            // redis-cli --no-raw escapes what is not ASCII.
            for file in &files {
                wait_for(file, &text[..2]);
            }
        }
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let [ours, theirs] = files.map(|f| std::fs::read_to_string(f).unwrap());
        assert_eq!(
            ours, theirs,
            "{args:?}: through the proxy (left) and on redis-server"
        );
    }
}

/// Subscriptions of proxy clients, counted across the fleet: `PUBSUB
/// NUMSUB` sums a channel's shard over the groups, `NUMPAT` counts a
/// pattern once though it is on every shard, `CHANNELS` is the union.
/// Then the subscriber's node is SIGKILLed: the proxy's subscription moves
/// to the other group, and every message published after it moved
/// arrives, in order, once.
fn subscriber_survives_its_node(kind: NodeKind) {
    let mut fleet = NodeCluster::start(kind, 2, 2);
    let topology = Topology::new(fleet.groups()).unwrap();
    let proxy = Proxy::start(fleet.groups(), ProxyConfig::new());
    let (a, b) = (
        channel_on(&topology, 0, "live:"),
        channel_on(&topology, 1, "live:"),
    );
    let mut sub = Wire::connect(proxy.addr);
    let mut other = Wire::connect(proxy.addr);
    let mut publisher = Wire::connect(proxy.addr);
    sub.call(&["SUBSCRIBE", &a], 1);
    sub.call(&["PSUBSCRIBE", "live:*"], 1);
    other.call(&["SUBSCRIBE", &a, &b], 2);
    let ask = |p: &mut Wire, args: &[&str]| show(&p.call(args, 1));
    let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());
    assert_eq!(
        ask(&mut publisher, &["PUBSUB", "NUMSUB", &a, &b, "none"]),
        format!(
            "*6\r\n{}:2\r\n{}:1\r\n{}:0\r\n",
            bulk(&a),
            bulk(&b),
            bulk("none")
        )
    );
    assert_eq!(ask(&mut publisher, &["PUBSUB", "NUMPAT"]), ":1\r\n");
    let mut sorted = [a.clone(), b.clone()];
    sorted.sort();
    assert_eq!(
        ask(&mut publisher, &["PUBSUB", "CHANNELS"]),
        format!("*2\r\n{}{}", bulk(&sorted[0]), bulk(&sorted[1]))
    );
    assert_eq!(
        ask(&mut publisher, &["PUBSUB", "CHANNELS", &b]),
        format!("*1\r\n{}", bulk(&b))
    );
    assert_eq!(ask(&mut publisher, &["PUBSUB", "SHARDCHANNELS"]), "*0\r\n");
    assert_eq!(
        ask(&mut publisher, &["PUBSUB", "SHARDNUMSUB", &a]),
        format!("*2\r\n{}:0\r\n", bulk(&a))
    );
    drop(other);
    // Which node holds the subscriber's channel: ask each node.
    let numsub = |addr: &str| -> i64 {
        let Ok(stream) = TcpStream::connect(addr) else {
            return 0;
        };
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut node = Wire {
            stream,
            buf: BytesMut::new(),
            decoder: resp::Decoder::new(),
        };
        let reply = show(&node.call(&["PUBSUB", "NUMSUB", &a], 1));
        reply
            .rsplit(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{reply}"))
    };
    let deadline = Instant::now() + WAIT;
    let node = loop {
        let counts: Vec<i64> = fleet.nodes.iter().map(|n| numsub(&n.addr())).collect();
        // The other client's subscription is gone once it closed.
        if counts.iter().sum::<i64>() == 1 {
            break counts.iter().position(|&n| n == 1).unwrap();
        }
        assert!(Instant::now() < deadline, "{counts:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    fleet.nodes[node].kill();

    // Probes until one arrives: the subscription has moved.
    let deadline = Instant::now() + WAIT;
    let mut probe = 0;
    'moved: loop {
        assert!(Instant::now() < deadline, "the subscription never moved");
        publisher.call(&["PUBLISH", &a, &format!("probe {probe}")], 1);
        probe += 1;
        while let Some(frame) = sub.frame_within(Duration::from_millis(100)) {
            if frame.starts_with(b"*3\r\n$7\r\nmessage\r\n") {
                break 'moved;
            }
        }
    }
    // What the probes left (their pattern copies too).
    while sub.frame_within(Duration::from_millis(300)).is_some() {}

    let n = 100;
    let message = |channel: &str, text: &str| {
        format!("*3\r\n$7\r\nmessage\r\n{}{}", bulk(channel), bulk(text))
    };
    let pmessage = |channel: &str, text: &str| {
        format!(
            "*4\r\n$8\r\npmessage\r\n{}{}{}",
            bulk("live:*"),
            bulk(channel),
            bulk(text)
        )
    };
    // Pipelined: one publisher's order is kept through the proxy.
    let mut requests = BytesMut::new();
    for i in 0..n {
        let text = format!("after {i}");
        resp::encode_command(&mut requests, &[b"PUBLISH", a.as_bytes(), text.as_bytes()]);
    }
    publisher.stream.write_all(&requests).unwrap();
    for _ in 0..n {
        assert_eq!(show(&[publisher.frame()]), ":2\r\n");
    }
    for i in 0..n {
        let text = format!("after {i}");
        assert_eq!(show(&[sub.frame()]), message(&a, &text));
        assert_eq!(show(&[sub.frame()]), pmessage(&a, &text));
    }
    // Nothing twice: the next frames are the last message's.
    assert_eq!(ask(&mut publisher, &["PUBLISH", &b, "last"]), ":1\r\n");
    assert_eq!(show(&[sub.frame()]), pmessage(&b, "last"));
    // The proxy counts the moved subscription where it now is.
    assert_eq!(
        ask(&mut publisher, &["PUBSUB", "NUMSUB", &a]),
        format!("*2\r\n{}:1\r\n", bulk(&a))
    );
}

#[test]
fn a_subscriber_survives_its_ember_node_behind_the_proxy() {
    subscriber_survives_its_node(NodeKind::Ember);
}

#[test]
fn a_subscriber_survives_its_redis_node_behind_the_proxy() {
    subscriber_survives_its_node(NodeKind::Redis);
}

//! Pub/sub: the same subscribe and publish sequences against redis-server
//! and Ember, frames compared byte for byte in RESP2 and RESP3; redis-py's
//! PubSub; a subscriber that never reads cut off at its output limit while
//! the others keep receiving; PUBLISH reaching a replica's subscribers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ember_tests::{EmberServer, RedisServer, connect};

use crate::python::run_py;

/// A connection that reads one frame at a time, keeping what arrived
/// beyond it for the next.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    decoder: resp::Decoder,
}

impl Conn {
    pub(crate) fn new(addr: SocketAddr) -> Conn {
        Conn {
            stream: connect(addr),
            buf: BytesMut::new(),
            decoder: resp::Decoder::new(),
        }
    }

    pub(crate) fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut request = BytesMut::new();
        resp::encode_command(&mut request, &args);
        self.stream.write_all(&request).expect("write");
    }

    /// Sends `commands` in one write: a pipeline that arrives at once.
    pub(crate) fn send_many(&mut self, commands: &[&[&str]]) {
        let mut request = BytesMut::new();
        for args in commands {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            resp::encode_command(&mut request, &args);
        }
        self.stream.write_all(&request).expect("write");
    }

    /// Sends a command of binary arguments.
    pub(crate) fn send_bytes(&mut self, args: &[&[u8]]) {
        let mut request = BytesMut::new();
        resp::encode_command(&mut request, args);
        self.stream.write_all(&request).expect("write");
    }

    /// The next frame's raw bytes.
    pub(crate) fn frame(&mut self) -> Vec<u8> {
        loop {
            if let Some(frame) = self.decoder.decode_raw(&mut self.buf).expect("valid RESP") {
                return frame.as_bytes().to_vec();
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).expect("read a frame");
            assert!(n > 0, "connection closed before a full frame");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends `args` and returns the next `frames` frames, concatenated.
    pub(crate) fn call(&mut self, args: &[&str], frames: usize) -> Vec<u8> {
        if !args.is_empty() {
            self.send(args);
        }
        (0..frames).flat_map(|_| self.frame()).collect()
    }
}

/// One step of a script: on connection `conn`, send `args` (nothing if
/// empty) and read `frames` frames.
type Step = (usize, &'static [&'static str], usize);

/// Runs `steps` on fresh connections to `addr` (each switched to `proto`
/// first) and returns what each step read.
fn run_script(addr: SocketAddr, proto: u8, steps: &[Step]) -> Vec<Vec<u8>> {
    let conns = steps.iter().map(|s| s.0).max().unwrap_or(0) + 1;
    let mut conns: Vec<Conn> = (0..conns).map(|_| Conn::new(addr)).collect();
    for c in &mut conns {
        // The reply names the client id, which differs; not compared.
        c.call(&["HELLO", &proto.to_string()], 1);
    }
    steps
        .iter()
        .map(|&(c, args, frames)| conns[c].call(args, frames))
        .collect()
}

/// Subscriber 0 and 2, publisher 1. Every step's frames are determined:
/// no reply depends on hash order (one channel per unsubscribe-all, one
/// channel per listing).
const SCRIPT: &[Step] = &[
    (0, &["SUBSCRIBE", "news"], 1),
    (0, &["SUBSCRIBE", "news", "news"], 2),
    (0, &["PING"], 1),
    (0, &["PING", "hi"], 1),
    (0, &["GET", "k"], 1),
    (0, &["CLIENT", "GETNAME"], 1),
    (0, &["PSUBSCRIBE", "n?ws", "x*"], 2),
    (1, &["PUBLISH", "news", "hello"], 1),
    (0, &[], 2),
    (1, &["PUBLISH", "xyz", ""], 1),
    (0, &[], 1),
    (1, &["PUBLISH", "nothing", "lost"], 1),
    (1, &["PUBSUB", "CHANNELS"], 1),
    (1, &["PUBSUB", "CHANNELS", "n*"], 1),
    (1, &["PUBSUB", "CHANNELS", "x*"], 1),
    (1, &["PUBSUB", "NUMSUB", "news", "xyz"], 1),
    (1, &["PUBSUB", "NUMSUB"], 1),
    (1, &["PUBSUB", "NUMPAT"], 1),
    (2, &["PSUBSCRIBE", "x*"], 1),
    (1, &["PUBSUB", "NUMPAT"], 1),
    (1, &["PUBLISH", "xx", "both"], 1),
    (0, &[], 1),
    (2, &[], 1),
    (0, &["PUNSUBSCRIBE", "x*", "never"], 2),
    (0, &["PUNSUBSCRIBE"], 1),
    (0, &["PUNSUBSCRIBE"], 1),
    (0, &["UNSUBSCRIBE"], 1),
    (0, &["UNSUBSCRIBE"], 1),
    (0, &["PING"], 1),
    (0, &["GET", "k"], 1),
    (2, &["SSUBSCRIBE", "shard"], 1),
    (1, &["SPUBLISH", "shard", "s1"], 1),
    (1, &["PUBLISH", "shard", "not-to-shard-subscribers"], 1),
    (2, &[], 1),
    (1, &["PUBSUB", "SHARDCHANNELS"], 1),
    (1, &["PUBSUB", "SHARDNUMSUB", "shard", "other"], 1),
    (2, &["SUNSUBSCRIBE"], 1),
    (2, &["SUNSUBSCRIBE"], 1),
    (2, &["PUNSUBSCRIBE"], 1),
    (2, &["SUBSCRIBE", "me"], 1),
    (2, &["RESET"], 1),
    (1, &["PUBSUB", "NUMSUB", "me"], 1),
    (2, &["GET", "k"], 1),
    // Transactions: SUBSCRIBE is allowed in EXEC, SSUBSCRIBE is not.
    (1, &["MULTI"], 1),
    (1, &["SUBSCRIBE", "t"], 1),
    (1, &["SSUBSCRIBE", "t"], 1),
    (1, &["EXEC"], 1),
    (1, &["UNSUBSCRIBE", "t"], 1),
    // Errors.
    (1, &["SUBSCRIBE"], 1),
    (1, &["PUBLISH", "a"], 1),
    (1, &["PUBSUB"], 1),
    (1, &["PUBSUB", "NOPE"], 1),
    (1, &["PUBSUB", "CHANNELS", "a", "b"], 1),
    (1, &["PUBSUB", "NUMPAT", "a"], 1),
    (1, &["PUBSUB", "HELP"], 1),
];

/// RESP3 only, where a subscriber may publish: its own message comes
/// before the count, and pushes mix with replies.
const RESP3_SCRIPT: &[Step] = &[
    (0, &["SUBSCRIBE", "me"], 1),
    (0, &["SET", "k", "v"], 1),
    (0, &["PUBLISH", "me", "self"], 2),
    (1, &["PUBLISH", "me", "other"], 1),
    (0, &["GET", "k"], 2),
    (0, &["PING"], 1),
    (0, &["CLIENT", "GETNAME"], 1),
    (0, &["PSUBSCRIBE", "m*"], 1),
    (0, &["SPUBLISH", "me", "shard"], 1),
    (0, &["PUBLISH", "me", "twice"], 3),
    (0, &["RESET"], 1),
    (0, &["PING"], 1),
];

/// CLIENT REPLY: replies dropped, pushes kept. A step that reads nothing
/// is checked by the next one: a reply sent by mistake is read there
/// instead of the expected frame.
const REPLY_SCRIPT: &[Step] = &[
    (0, &["CLIENT", "REPLY", "OFF"], 0),
    (0, &["SET", "k", "v"], 0),
    (0, &["SUBSCRIBE", "c"], 1),
    (0, &["SSUBSCRIBE", "s"], 1),
    (0, &["PSUBSCRIBE", "c*"], 1),
    (1, &["PUBLISH", "c", "m"], 1),
    (1, &["SPUBLISH", "s", "m"], 1),
    (0, &[], 3),
    (0, &["PING"], 0),
    (0, &["UNSUBSCRIBE"], 1),
    (0, &["PUNSUBSCRIBE"], 1),
    (0, &["SUNSUBSCRIBE"], 1),
    (0, &["CLIENT", "REPLY", "ON"], 1),
    (0, &["GET", "k"], 1),
    (0, &["CLIENT", "REPLY", "SKIP"], 0),
    (0, &["PING", "x"], 0),
    (0, &["PING", "y"], 1),
    (0, &["CLIENT", "REPLY", "SKIP"], 0),
    (0, &["CLIENT", "REPLY", "SKIP"], 0),
    (0, &["PING", "a"], 0),
    (0, &["PING", "b"], 1),
    (0, &["CLIENT", "REPLY", "OFF"], 0),
    (0, &["CLIENT", "REPLY", "SKIP"], 0),
    (0, &["RESET"], 1),
    (0, &["PING"], 1),
    (0, &["CLIENT", "REPLY", "SKIP"], 0),
    (0, &["RESET"], 0),
    (0, &["CLIENT", "REPLY", "MAYBE"], 1),
];

pub(crate) fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn frames_match_redis_in_resp2_and_resp3() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    for (proto, script) in [
        (2, SCRIPT),
        (3, SCRIPT),
        (2, REPLY_SCRIPT),
        (3, REPLY_SCRIPT),
    ] {
        let want = run_script(redis.addr(), proto, script);
        let got = run_script(ember.addr(), proto, script);
        for ((step, want), got) in script.iter().zip(&want).zip(&got) {
            assert_eq!(
                show(got),
                show(want),
                "RESP{proto}, connection {} sent {:?}",
                step.0,
                step.1
            );
        }
    }
    let want = run_script(redis.addr(), 3, RESP3_SCRIPT);
    let got = run_script(ember.addr(), 3, RESP3_SCRIPT);
    for ((step, want), got) in RESP3_SCRIPT.iter().zip(&want).zip(&got) {
        assert_eq!(show(got), show(want), "RESP3 {:?}", step.1);
    }
}

/// Replies whose order is a hash table's in Redis: compared as sets of
/// frames.
#[test]
fn unordered_replies_hold_the_same_frames_as_redis() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let frames = |addr: SocketAddr| {
        let mut sub = Conn::new(addr);
        let mut other = Conn::new(addr);
        sub.call(&["SUBSCRIBE", "a", "b", "c"], 3);
        sub.call(&["PSUBSCRIBE", "*", "a*"], 2);
        let mut channels = other.call(&["PUBSUB", "CHANNELS"], 1);
        let mut listed: Vec<String> = show(&channels).split("\r\n").map(String::from).collect();
        listed.sort();
        channels = listed.join("\n").into_bytes();
        other.call(&["PUBLISH", "a", "m"], 1);
        let mut delivered: Vec<Vec<u8>> = (0..3).map(|_| sub.frame()).collect();
        delivered.sort();
        let mut unsubscribed: Vec<Vec<u8>> = {
            sub.send(&["UNSUBSCRIBE"]);
            (0..3).map(|_| sub.frame()).collect()
        };
        // Each names the count after it: keep only the channel names.
        unsubscribed
            .iter_mut()
            .for_each(|f| f.truncate(f.len() - 4));
        unsubscribed.sort();
        (channels, delivered, unsubscribed)
    };
    assert_eq!(frames(ember.addr()), frames(redis.addr()));
}

#[test]
fn client_list_info_and_closing_connections() {
    let ember = EmberServer::start(&[]);
    let mut sub = Conn::new(ember.addr());
    let mut admin = Conn::new(ember.addr());
    sub.call(&["SUBSCRIBE", "a", "b"], 2);
    sub.call(&["PSUBSCRIBE", "p*"], 1);
    sub.call(&["SSUBSCRIBE", "s"], 1);
    let list = show(&admin.call(&["CLIENT", "LIST", "TYPE", "pubsub"], 1));
    assert!(list.contains("flags=P "), "{list}");
    assert!(list.contains(" sub=2 psub=1 ssub=1 "), "{list}");
    assert_eq!(list.matches("id=").count(), 1, "{list}");
    let normal = show(&admin.call(&["CLIENT", "LIST", "TYPE", "normal"], 1));
    assert_eq!(normal.matches("id=").count(), 1, "{normal}");
    let info = show(&admin.call(&["INFO", "stats"], 1));
    for field in [
        "pubsub_channels:2\r",
        "pubsub_patterns:1\r",
        "pubsubshard_channels:1\r",
    ] {
        assert!(info.contains(field), "{field} in {info}");
    }
    // A closed connection leaves everything.
    drop(sub);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = show(&admin.call(&["INFO", "stats"], 1));
        if info.contains("pubsub_channels:0\r")
            && info.contains("pubsub_patterns:0\r")
            && info.contains("pubsubshard_channels:0\r")
        {
            break;
        }
        assert!(Instant::now() < deadline, "subscriptions left: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One publisher's messages reach every subscriber in publish order,
/// through channel and pattern subscriptions alike, however they are
/// pipelined.
#[test]
fn one_publishers_messages_arrive_in_order() {
    let ember = EmberServer::start(&[]);
    let mut a = Conn::new(ember.addr());
    let mut b = Conn::new(ember.addr());
    a.call(&["SUBSCRIBE", "ordered"], 1);
    b.call(&["PSUBSCRIBE", "ord*"], 1);
    let mut publisher = connect(ember.addr());
    const N: usize = 5000;
    let mut batch = BytesMut::new();
    for i in 0..N {
        let n = i.to_string();
        resp::encode_command(&mut batch, &[b"PUBLISH", b"ordered", n.as_bytes()]);
    }
    publisher.write_all(&batch).expect("write");
    for i in 0..N {
        let n = i.to_string();
        let want = format!(
            "*3\r\n$7\r\nmessage\r\n$7\r\nordered\r\n${}\r\n{n}\r\n",
            n.len()
        );
        assert_eq!(show(&a.frame()), want);
        let want = format!(
            "*4\r\n$8\r\npmessage\r\n$4\r\nord*\r\n$7\r\nordered\r\n${}\r\n{n}\r\n",
            n.len()
        );
        assert_eq!(show(&b.frame()), want);
    }
}

/// A channel with more subscribers than `pubsub::WIDE` (their writes wait
/// for the end of the worker's turn): two publishers pipelining at once,
/// every subscriber gets each one's messages in order, a subscriber's own
/// PING reply keeps its place among them, and one subscriber that never
/// reads holds nobody up.
///
/// The subscribers are read one after the other, so each waits unread
/// while the ones before it are read: the output limit is above what a
/// subscriber is sent in all (600 messages of about 2 KB), so that none
/// of them can be cut off, however the kernel's buffers and the threads'
/// timing fall (the limit's cut is tested by
/// `a_subscriber_that_never_reads_is_cut_off_at_the_hard_limit`).
#[test]
fn many_subscribers_get_every_message_in_order() {
    let ember = EmberServer::start(&["client-output-buffer-limit pubsub 4mb 0 0"]);
    const SUBS: usize = 100;
    const N: usize = 300;
    let mut subs: Vec<Conn> = (0..SUBS)
        .map(|i| {
            let mut c = Conn::new(ember.addr());
            if i % 10 == 0 {
                c.call(&["PSUBSCRIBE", "fan*"], 1);
            } else {
                c.call(&["SUBSCRIBE", "fanout"], 1);
            }
            c
        })
        .collect();
    let mut stalled = Conn::new(ember.addr());
    stalled.call(&["SUBSCRIBE", "fanout"], 1);
    let publishers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let mut publisher = connect(ember.addr());
            std::thread::spawn(move || {
                let payload = "y".repeat(2048);
                let mut batch = BytesMut::new();
                for i in 0..N {
                    let message = format!("{name}{i}:{payload}");
                    resp::encode_command(
                        &mut batch,
                        &[&b"PUBLISH"[..], b"fanout", message.as_bytes()],
                    );
                }
                publisher.write_all(&batch).expect("write");
                let mut replies = Conn {
                    stream: publisher,
                    buf: BytesMut::new(),
                    decoder: resp::Decoder::new(),
                };
                for _ in 0..N {
                    let reply = show(&replies.frame());
                    assert!(reply.starts_with(':'), "{reply}");
                }
            })
        })
        .collect();
    // One subscriber asks for a PING mid-stream: its reply comes between
    // messages, whole.
    subs[1].send(&["PING", "mid"]);
    for (i, sub) in subs.iter_mut().enumerate() {
        let mut next = [0usize; 2];
        let mut pinged = false;
        while next != [N, N] {
            let frame = show(&sub.frame());
            if frame == "*2\r\n$4\r\npong\r\n$3\r\nmid\r\n" {
                assert_eq!(i, 1, "a PING reply to the wrong subscriber");
                pinged = true;
                continue;
            }
            let body = frame
                .split("fanout\r\n$")
                .nth(1)
                .and_then(|rest| rest.split("\r\n").nth(1))
                .unwrap_or_else(|| panic!("not a message: {frame}"));
            let (from, rest) = body.split_at(1);
            let n: usize = rest
                .split(':')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("number");
            let from = usize::from(from == "b");
            assert_eq!(n, next[from], "subscriber {i}: out of order");
            next[from] += 1;
        }
        assert_eq!(pinged, i == 1, "subscriber {i}");
    }
    for publisher in publishers {
        publisher.join().expect("publisher");
    }
    // Every subscriber is still there, the one that never read too.
    let mut admin = Conn::new(ember.addr());
    let list = show(&admin.call(&["CLIENT", "LIST", "TYPE", "pubsub"], 1));
    assert_eq!(list.matches("id=").count(), SUBS + 1, "{list}");
    drop(stalled);
}

/// One message reaches a RESP2 and a RESP3 subscriber, through a channel,
/// a pattern and a shard channel, each framed for its receiver; empty,
/// small and large payloads (a large one is shared by its subscribers
/// rather than copied for each), byte for byte as Redis sends them.
#[test]
fn one_message_reaches_resp2_and_resp3_subscribers_as_in_redis() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let frames = |addr: SocketAddr| {
        let mut subs: Vec<Conn> = (0..2).map(|_| Conn::new(addr)).collect();
        subs[1].call(&["HELLO", "3"], 1);
        for sub in &mut subs {
            sub.call(&["SUBSCRIBE", "big"], 1);
            sub.call(&["PSUBSCRIBE", "b*"], 1);
            sub.call(&["SSUBSCRIBE", "big"], 1);
        }
        let mut publisher = Conn::new(addr);
        let mut got = Vec::new();
        for len in [0, 10, 70_000] {
            let payload = vec![b'p'; len];
            for command in [&b"PUBLISH"[..], b"SPUBLISH"] {
                publisher.send_bytes(&[command, b"big", &payload]);
                got.push(publisher.frame());
            }
            for sub in &mut subs {
                got.extend((0..3).map(|_| sub.frame()));
            }
        }
        got
    };
    let want = frames(redis.addr());
    let got = frames(ember.addr());
    assert_eq!(got.len(), want.len());
    for (i, (got, want)) in got.iter().zip(&want).enumerate() {
        assert!(got == want, "frame {i}: {} != {}", show(got), show(want));
    }
}

/// A subscriber that never reads while a publisher floods is cut off at
/// the hard limit of `client-output-buffer-limit pubsub`; a subscriber
/// that reads keeps receiving everything.
#[test]
fn a_subscriber_that_never_reads_is_cut_off_at_the_hard_limit() {
    let ember = EmberServer::start(&["client-output-buffer-limit pubsub 1mb 0 0"]);
    let mut stalled = Conn::new(ember.addr());
    stalled.call(&["SUBSCRIBE", "flood"], 1);
    let mut reader = Conn::new(ember.addr());
    reader.call(&["SUBSCRIBE", "flood"], 1);
    let payload = "x".repeat(64 * 1024);
    // How many messages the reader has taken: the publisher stays at most
    // four messages (256 KB) ahead of it, so the reader never nears the
    // limit however slowly a loaded machine runs its thread (before, a
    // starved reader was now and then cut off too).
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = taken.clone();
    let reading = std::thread::spawn(move || {
        let mut n = 0usize;
        loop {
            let frame = reader.frame();
            if frame.ends_with(b"$4\r\nstop\r\n") {
                return n;
            }
            n += 1;
            progress.store(n, std::sync::atomic::Ordering::Release);
        }
    });
    let mut publisher = Conn::new(ember.addr());
    // The kernel's socket buffers take some megabytes before the stalled
    // client's output starts to count; 256 MB is far past them.
    let mut published = 0;
    loop {
        let deadline = Instant::now() + Duration::from_secs(30);
        while taken.load(std::sync::atomic::Ordering::Acquire) + 4 < published {
            assert!(Instant::now() < deadline, "the reader stopped receiving");
            std::thread::sleep(Duration::from_millis(1));
        }
        let receivers = publisher.call(&["PUBLISH", "flood", &payload], 1);
        published += 1;
        if receivers == b":1\r\n" {
            break;
        }
        assert_eq!(show(&receivers), ":2\r\n");
        // What the server holds for it never passes the limit by more than
        // the message that crossed it.
        let list = show(&publisher.call(&["CLIENT", "LIST", "TYPE", "pubsub"], 1));
        for omem in list.split(" omem=").skip(1) {
            let omem: usize = omem
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("omem");
            assert!(omem <= (1 << 20) + payload.len() + 100, "{list}");
        }
        assert!(published < 4096, "the stalled subscriber was never cut off");
    }
    // The cut-off client is gone: counted nowhere, its connection closed.
    let list = show(&publisher.call(&["CLIENT", "LIST", "TYPE", "pubsub"], 1));
    assert_eq!(list.matches("id=").count(), 1, "{list}");
    publisher.call(&["PUBLISH", "flood", "stop"], 1);
    assert_eq!(reading.join().expect("reader"), published);
    let _ = stalled
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)));
    let mut sink = Vec::new();
    let closed = stalled.stream.read_to_end(&mut sink);
    assert!(
        closed.is_ok() || closed.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the stalled subscriber's connection was not closed"
    );
}

/// Waits until the replica at `replica` has synced with its master.
pub(crate) fn wait_for_link(replica: SocketAddr) {
    let mut c = Conn::new(replica);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !show(&c.call(&["INFO", "replication"], 1)).contains("master_link_status:up") {
        assert!(Instant::now() < deadline, "the replica never synced");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn publish_reaches_replica_subscribers(master: SocketAddr, replica: SocketAddr) {
    wait_for_link(replica);
    let mut sub = Conn::new(replica);
    sub.call(&["SUBSCRIBE", "events"], 1);
    sub.call(&["SSUBSCRIBE", "shard-events"], 1);
    let mut publisher = Conn::new(master);
    // SELECT: the stream names the database, which must not matter.
    publisher.call(&["SELECT", "3"], 1);
    for (cmd, channel, payload) in [
        ("PUBLISH", "events", "one"),
        ("SPUBLISH", "shard-events", "two"),
        ("PUBLISH", "events", "three"),
    ] {
        publisher.call(&[cmd, channel, payload], 1);
    }
    // A transaction's PUBLISH goes with it.
    publisher.call(&["MULTI"], 1);
    publisher.call(&["SET", "k", "v"], 1);
    publisher.call(&["PUBLISH", "events", "four"], 1);
    publisher.call(&["EXEC"], 1);
    assert_eq!(
        show(&sub.call(&[], 4)),
        "*3\r\n$7\r\nmessage\r\n$6\r\nevents\r\n$3\r\none\r\n\
         *3\r\n$8\r\nsmessage\r\n$12\r\nshard-events\r\n$3\r\ntwo\r\n\
         *3\r\n$7\r\nmessage\r\n$6\r\nevents\r\n$5\r\nthree\r\n\
         *3\r\n$7\r\nmessage\r\n$6\r\nevents\r\n$4\r\nfour\r\n"
    );
}

#[test]
fn publish_reaches_the_subscribers_of_an_ember_replica() {
    let master = EmberServer::start(&[]);
    let port = master.addr().port();
    let replica = EmberServer::start(&[&format!("replicaof 127.0.0.1 {port}")]);
    publish_reaches_replica_subscribers(master.addr(), replica.addr());
}

#[test]
fn publish_from_a_redis_master_reaches_an_ember_replica() {
    let master = RedisServer::start(&[]);
    let port = master.addr().port();
    let replica = EmberServer::start(&[&format!("replicaof 127.0.0.1 {port}")]);
    publish_reaches_replica_subscribers(master.addr(), replica.addr());
}

#[test]
fn an_ember_master_streams_publish_like_redis() {
    // A Redis replica of an Ember master delivers what Ember sent.
    let master = EmberServer::start(&[]);
    let port = master.addr().port();
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &port.to_string()]);
    publish_reaches_replica_subscribers(master.addr(), replica.addr());
}

#[test]
fn redis_py_pubsub_works_unchanged() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    for protocol in [2, 3] {
        if let Err(text) = run_py("redis_py_pubsub.py", redis.addr(), protocol) {
            panic!("the script fails against redis-server itself (RESP{protocol}):\n{text}");
        }
        match run_py("redis_py_pubsub.py", ember.addr(), protocol) {
            Ok(text) => assert!(text.contains(": ok"), "{text}"),
            Err(text) => panic!("redis-py pubsub against Ember (RESP{protocol}):\n{text}"),
        }
    }
}

/// PUBLISH reaches replicas, so a WRITE pause holds it back, as Redis
/// does (its `may-replicate` flag); reads go on.
#[test]
fn a_write_pause_holds_publish_back() {
    let ember = EmberServer::start(&[]);
    let mut admin = Conn::new(ember.addr());
    let mut publisher = Conn::new(ember.addr());
    admin.call(&["CLIENT", "PAUSE", "100000", "WRITE"], 1);
    publisher.send(&["PUBLISH", "c", "m"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !show(&admin.call(&["INFO", "clients"], 1)).contains("blocked_clients:1\r") {
        assert!(Instant::now() < deadline, "PUBLISH was not held back");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(show(&admin.call(&["PUBSUB", "NUMPAT"], 1)), ":0\r\n");
    admin.call(&["CLIENT", "UNPAUSE"], 1);
    assert_eq!(show(&publisher.frame()), ":0\r\n");
}

/// `notify-keyspace-events` is parsed and written back as Redis does
/// (notifications themselves are not sent yet).
#[test]
fn notify_keyspace_events_config_matches_redis() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let answers = |addr: SocketAddr| {
        let mut c = Conn::new(addr);
        let mut out = Vec::new();
        for value in [
            "",
            "KEA",
            "AKE",
            "An",
            "gn",
            "Kg$lshzxetdm",
            "zhsl$gK",
            "E",
            "x",
            "KEAm",
            "q",
            "Kq",
            "KA$",
            "nmdtexzhsl$gEK",
        ] {
            out.push(show(
                &c.call(&["CONFIG", "SET", "notify-keyspace-events", value], 1),
            ));
            out.push(show(
                &c.call(&["CONFIG", "GET", "notify-keyspace-events"], 1),
            ));
        }
        out
    };
    assert_eq!(answers(ember.addr()), answers(redis.addr()));
}

//! ember-proxy forwards a node's reply as the node sent it (issue 17's
//! raw forwarding): the driver hands a reply the router passed on
//! unchanged to `Client::start_raw` as the node's own bytes, and the proxy
//! writes them without decoding and encoding again. What the router
//! builds (a split MGET, an integer, an error) still comes as a frame.
//! Every answer is compared, byte for byte, with what the node itself (or
//! a redis-server fed the same commands) sends.

use std::net::SocketAddr;

use ::client::{Answer, Client, Error, Options, Topology};
use ember_tests::{NodeCluster, NodeKind};
use proxy::ProxyConfig;

use crate::proxy::Proxy;

/// A value of `len` bytes that is not all one byte.
fn big(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The first key `k<i>` that lives on `shard` of `topology`.
fn key_on(topology: &Topology, shard: u32, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| topology.shard_for(k.as_bytes()).0 == shard)
        .unwrap_or_default()
}

/// Fills the fleet (through `c`, a client of the proxy or of the
/// reference) with what the cases read.
fn fill(c: &mut std::net::TcpStream, value: &[u8], keys: &[String; 2]) {
    let [a, b] = keys;
    let calls: Vec<Vec<&[u8]>> = vec![
        vec![
            b"DEL",
            a.as_bytes(),
            b.as_bytes(),
            b"list",
            b"stream",
            b"hash",
            b"set",
            b"counter",
            b"s",
        ],
        vec![b"SET", a.as_bytes(), value],
        vec![b"SET", b.as_bytes(), b"small"],
        vec![b"RPUSH", b"list", b"x", b"", b"zz", value],
        vec![b"RPUSH", b"stream", b"a", b"", value, b"b"],
        vec![b"HSET", b"hash", b"f", b"v"],
        vec![b"SADD", b"set", b"m"],
    ];
    for args in calls {
        let reply = ember_tests::call(c, &args);
        assert!(!reply.starts_with(b"-"), "{reply:?}");
    }
}

/// Through the proxy, in RESP2 and in RESP3, every answer is the bytes
/// redis-server sends for the same commands: a 3 MB bulk, nested arrays
/// (LMPOP), empty strings, nulls, errors, and MGET split across shards.
#[test]
fn the_proxy_forwards_replies_byte_for_byte() {
    let fleet = NodeCluster::start(NodeKind::Redis, 1, 2);
    let topology = Topology::new(fleet.groups()).unwrap();
    let reference = ember_tests::RedisServer::start(&[]);
    let proxy = Proxy::start(fleet.groups(), ProxyConfig::new());
    let keys = [key_on(&topology, 0, "k"), key_on(&topology, 1, "k")];
    let value = big(3 << 20);
    let [a, b] = &keys;
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"GET", a.as_bytes()],
        vec![b"GET", b.as_bytes()],
        vec![b"GET", b"nope"],
        vec![b"STRLEN", a.as_bytes()],
        vec![b"LRANGE", b"list", b"0", b"-1"],
        vec![b"LRANGE", b"nope", b"0", b"-1"],
        vec![b"LMPOP", b"1", b"stream", b"LEFT", b"COUNT", b"3"],
        vec![b"LMPOP", b"1", b"stream", b"RIGHT"],
        vec![b"LMPOP", b"1", b"stream", b"RIGHT"],
        vec![b"HGETALL", b"hash"],
        vec![b"HMGET", b"hash", b"f", b"nope"],
        vec![b"SMEMBERS", b"set"],
        vec![b"GET", b"list"],
        vec![b"LPUSH", b"hash", b"x"],
        vec![b"LMPOP", b"1", b"hash", b"LEFT"],
        vec![b"MGET", a.as_bytes(), b"nope", b.as_bytes()],
        vec![b"INCR", b"counter"],
        vec![b"SET", b"s", b"v"],
        vec![b"GETDEL", b"s"],
    ];
    let mut forwarded = Vec::new();
    for proto in [&b"2"[..], b"3"] {
        let mut answers: Vec<Vec<bytes::Bytes>> = Vec::new();
        for addr in [reference.addr(), proxy.addr] {
            let mut c = ember_tests::connect(addr);
            let hello = ember_tests::call(&mut c, &[b"HELLO", proto]);
            assert!(!hello.starts_with(b"-"), "{addr}: {hello:?}");
            fill(&mut c, &value, &keys);
            answers.push(
                cases
                    .iter()
                    .map(|args| ember_tests::call(&mut c, args))
                    .collect(),
            );
        }
        // The proxy's answers were its nodes' bytes, not frames encoded
        // again: GET of a string, LRANGE, LMPOP, HGETALL, HMGET and
        // SMEMBERS (only those without a nil in RESP3).
        let mut c = ember_tests::connect(proxy.addr);
        let info = ember_tests::call(&mut c, &[b"INFO", b"stats"]);
        let info = String::from_utf8_lossy(&info);
        let raw: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("replies_forwarded_raw:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{info}"));
        forwarded.push(raw);
        for (i, case) in cases.iter().enumerate() {
            let case: Vec<_> = case.iter().map(|a| String::from_utf8_lossy(a)).collect();
            let (want, got) = (&answers[0][i], &answers[1][i]);
            assert!(
                want == got,
                "RESP{}: {case:?}: redis sent {} bytes ({:?}...), the proxy {} ({:?}...)",
                proto[0] - b'0',
                want.len(),
                String::from_utf8_lossy(&want[..want.len().min(80)]),
                got.len(),
                String::from_utf8_lossy(&got[..got.len().min(80)]),
            );
        }
    }
    // RESP2: 2 GETs, LRANGE, 2 LMPOPs, HGETALL, HMGET, SMEMBERS, SET's
    // +OK (x2) and GETDEL at least; RESP3 adds those without a nil.
    assert!(forwarded[0] >= 10, "{forwarded:?}");
    assert!(forwarded[1] >= forwarded[0] + 5, "{forwarded:?}");
}

/// `Client::start_raw` gives a node's reply that the router passed on
/// unchanged as the very bytes the node sends, and what the router built
/// or cannot keep raw as a frame: the mechanism the proxy's raw
/// forwarding stands on, checked against the node answering directly.
#[test]
fn start_raw_gives_the_nodes_own_bytes() {
    let fleet = NodeCluster::start(NodeKind::Redis, 1, 2);
    let groups = fleet.groups();
    let topology = Topology::new(groups.clone()).unwrap();
    let node_of = |key: &str| -> SocketAddr {
        let shard = topology.shard_for(key.as_bytes()).0 as usize;
        groups[0][shard].parse().unwrap()
    };
    let keys = [key_on(&topology, 0, "k"), key_on(&topology, 1, "k")];
    let value = big(1 << 20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::connect(topology.clone(), Options::default())
            .await
            .unwrap();
        let [a, b] = &keys;
        let args = |list: &[&[u8]]| -> Vec<bytes::Bytes> {
            list.iter()
                .map(|s| bytes::Bytes::copy_from_slice(s))
                .collect()
        };
        for setup in [
            args(&[b"SET", a.as_bytes(), &value]),
            args(&[b"SET", b.as_bytes(), b"small"]),
            args(&[b"RPUSH", b"list", b"x", b"", &value]),
            args(&[b"RPUSH", b"stream", b"x", b""]),
        ] {
            client.start(setup).await.unwrap();
        }
        // Forwarded raw: the node's bytes, exactly.
        for (key, case) in [
            (a.as_str(), args(&[b"GET", a.as_bytes()])),
            (b.as_str(), args(&[b"GET", b.as_bytes()])),
            ("list", args(&[b"LRANGE", b"list", b"0", b"-1"])),
            ("s", args(&[b"SET", b"s", b"v"])),
        ] {
            let answer = client.start_raw(case.clone()).await.unwrap();
            let Answer::Raw(raw) = answer else {
                panic!("{case:?}: not raw: {answer:?}");
            };
            let mut direct = ember_tests::connect(node_of(key));
            let refs: Vec<&[u8]> = case.iter().map(|a| &a[..]).collect();
            let want = ember_tests::call(&mut direct, &refs);
            assert_eq!(raw.as_bytes(), &want, "{case:?}");
        }
        // Nested: the bytes Redis writes for LMPOP's [key, [elements]].
        let answer = client
            .start_raw(args(&[b"LMPOP", b"1", b"stream", b"LEFT", b"COUNT", b"5"]))
            .await
            .unwrap();
        let Answer::Raw(raw) = answer else {
            panic!("LMPOP: not raw: {answer:?}");
        };
        assert_eq!(
            &raw.as_bytes()[..],
            b"*2\r\n$6\r\nstream\r\n*2\r\n$1\r\nx\r\n$0\r\n\r\n"
        );
        // Built by the router, or nothing to keep raw: frames.
        let merged = client
            .start_raw(args(&[b"MGET", a.as_bytes(), b.as_bytes()]))
            .await
            .unwrap();
        let Answer::Frame(frame) = merged else {
            panic!("a split MGET is merged by the router: {merged:?}");
        };
        assert_eq!(
            frame,
            ::client::Frame::Array(vec![
                ::client::Frame::Bulk(value.clone().into()),
                ::client::Frame::bulk("small"),
            ])
        );
        let answer = client.start_raw(args(&[b"INCR", b"n"])).await.unwrap();
        assert!(
            matches!(answer, Answer::Frame(::client::Frame::Integer(1))),
            "{answer:?}"
        );
        let answer = client.start_raw(args(&[b"GET", b"nope"])).await.unwrap();
        assert!(
            matches!(answer, Answer::Frame(::client::Frame::NullBulk)),
            "{answer:?}"
        );
        match client.start_raw(args(&[b"GET", b"list"])).await {
            Err(Error::Redis(text)) => assert!(text.starts_with("WRONGTYPE "), "{text}"),
            other => panic!("{other:?}"),
        }
    });
}

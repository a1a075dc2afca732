//! ember-proxy end to end: real Redis clients (`redis-cli`, the `redis`
//! crate, redis-py) through the proxy to 2 × 2 fleets of `redis-server`
//! and of Ember nodes, a node killed under load, and a node restarted
//! empty and healed behind the proxy.

use std::future::Future;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use ::client::{Client, Options, Topology};
use ember_tests::{NodeCluster, NodeKind};
use proxy::ProxyConfig;
use transport::Shutdown;

/// A proxy in front of `groups`, served by a runtime of its own; stopped
/// (gracefully) on drop.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub(crate) fn start(groups: Vec<Vec<String>>, config: ProxyConfig) -> Proxy {
        Proxy::serve(groups, move |listener, client, stop| async move {
            proxy::run(listener, client, config, stop).await;
        })
    }

    /// Runs `serve` with a listener on a free port and a client of
    /// `groups`, on a runtime of its own, until the proxy is dropped.
    pub(crate) fn serve<F, Fut>(groups: Vec<Vec<String>>, serve: F) -> Proxy
    where
        F: FnOnce(tokio::net::TcpListener, Client, Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let mut options = Options::default();
                options.timeout = Duration::from_secs(5);
                options.backoff = ::client::Backoff {
                    initial: Duration::from_millis(50),
                    max: Duration::from_millis(400),
                    jitter: 0.25,
                };
                let topology = Topology::new(groups).unwrap();
                let client = Client::connect(topology, options).await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                serve(listener, client, stop).await;
            });
        });
        let addr = rx.recv().expect("the proxy started");
        Proxy {
            addr,
            shutdown,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Proxy {
    /// Waits, at most 30 s, for the proxy's `run` to return after
    /// `shutdown.trigger()`; whether it did.
    fn stopped(&mut self) -> bool {
        let Some(t) = self.thread.take() else {
            return true;
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // One that never stops is left running: the test fails, not hangs.
        t.is_finished() && t.join().is_ok()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown.trigger();
        self.stopped();
    }
}

fn conn(proxy: &Proxy) -> redis::Connection {
    redis::Client::open(proxy.url())
        .expect("client")
        .get_connection()
        .expect("connect to the proxy")
}

/// Keys that live on shard 0 of a 2-shard topology, and one on shard 1.
fn same_shard_keys(topology: &Topology) -> (Vec<String>, String) {
    let on = |shard: u32| {
        (0..)
            .map(|i| format!("t{i}"))
            .filter(move |k| topology.shard_for(k.as_bytes()).0 == shard)
    };
    (on(0).take(2).collect(), on(1).next().unwrap())
}

fn clients_through_the_proxy(kind: NodeKind) {
    let fleet = NodeCluster::start(kind, 2, 2);
    let topology = Topology::new(fleet.groups()).unwrap();
    let proxy = Proxy::start(fleet.groups(), ProxyConfig::new());
    let mut con = conn(&proxy);
    let q = |con: &mut redis::Connection, args: &[&str]| -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let _ = q(&mut con, &["FLUSHALL"]);
    let _ = q(&mut con, &["MSET", "a", "1", "b", "2", "c", "3", "d", "4"]);
    let got: Vec<String> = redis::cmd("MGET")
        .arg(&["d", "a", "nope", "c"])
        .query::<Vec<Option<String>>>(&mut con)
        .unwrap()
        .into_iter()
        .map(|v| v.unwrap_or_else(|| "(nil)".into()))
        .collect();
    assert_eq!(got, ["4", "1", "(nil)", "3"]);
    let n: i64 = redis::cmd("INCRBY")
        .arg("a")
        .arg(41)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 42);
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 4);
    let n: i64 = redis::cmd("DEL")
        .arg(&["a", "b", "zz"])
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 2);
    // Every node's share of every shard: both groups hold c and d.
    for addr in fleet.groups().concat() {
        let out = Command::new("redis-cli")
            .args(["-u", &format!("redis://{addr}/"), "DBSIZE"])
            .output()
            .unwrap();
        let n: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(n <= 2, "{addr}: {n}");
    }
    // A pipeline answers in order.
    let (a, b): (i64, String) = redis::pipe()
        .cmd("RPUSH")
        .arg("list")
        .arg(&["x", "y", "z"])
        .cmd("LINDEX")
        .arg("list")
        .arg(1)
        .query(&mut con)
        .unwrap();
    assert_eq!((a, b.as_str()), (3, "y"));
    // A transaction on one shard runs; one across shards is refused and
    // names the shards.
    let (same, other) = same_shard_keys(&topology);
    let (x, y): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg(&same[0])
        .cmd("INCR")
        .arg(&same[1])
        .query(&mut con)
        .unwrap();
    assert_eq!((x, y), (1, 1));
    // As Redis Cluster: the key on another shard is refused as it is
    // queued, naming the shards, and EXEC aborts.
    let script = format!("MULTI\nINCR {}\nINCR {other}\nEXEC\n", same[0]);
    let out = Command::new("redis-cli")
        .args(["-p", &proxy.addr.port().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(script.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    // (redis-cli follows each error with an empty line.)
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[..2], ["OK", "QUEUED"], "{out}");
    assert!(
        lines[2].starts_with(
            "CROSSSLOT keys of the transaction live on different shards (shard 0 and shard 1)"
        ),
        "{out}"
    );
    assert_eq!(
        lines[3], "EXECABORT Transaction discarded because of previous errors.",
        "{out}"
    );
    // A blocking pop waits on a connection of its own, and is served.
    let url = proxy.url();
    let waiter = std::thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        redis::cmd("BLPOP")
            .arg("queue")
            .arg(10)
            .query::<(String, String)>(&mut con)
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(200));
    let _: i64 = redis::cmd("LPUSH")
        .arg("queue")
        .arg("job")
        .query(&mut con)
        .unwrap();
    assert_eq!(waiter.join().unwrap(), ("queue".into(), "job".into()));
    // redis-cli, formatted as from a Redis server.
    assert_eq!(proxy.cli(&["SET", "greeting", "hello"]), "OK\n");
    assert_eq!(proxy.cli(&["GET", "greeting"]), "hello\n");
    assert_eq!(proxy.cli(&["PING"]), "PONG\n");
    assert_eq!(
        proxy.cli(&["SELECT", "1"]),
        "ERR ember-proxy serves database 0 only\n\n"
    );
    let info = proxy.cli(&["INFO", "fleet"]);
    assert!(info.contains("groups:2\r\nshards:2\r\n"), "{info}");
    assert_eq!(info.matches("trust=verified").count(), 4, "{info}");
    // SCAN through the proxy walks every shard.
    let mut keys: Vec<String> = redis::cmd("SCAN")
        .cursor_arg(0)
        .clone()
        .iter::<String>(&mut con)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    keys.sort();
    let mut want = vec!["c", "d", "greeting", "list", "queue"]
        .into_iter()
        .map(String::from)
        .chain(same.iter().cloned())
        .collect::<Vec<_>>();
    want.sort();
    want.retain(|k| k != "queue");
    assert_eq!(keys, want);
    // redis-py, unchanged.
    let script = format!(
        "import redis\n\
         r = redis.Redis(host='127.0.0.1', port={})\n\
         assert r.ping()\n\
         r.set('py', 'thon', ex=100)\n\
         assert r.get('py') == b'thon'\n\
         assert 0 < r.ttl('py') <= 100\n\
         assert r.mget(['py', 'c', 'none']) == [b'thon', b'3', None]\n\
         p = r.pipeline(transaction=False)\n\
         for i in range(100): p.set('k%d' % i, i)\n\
         p.execute()\n\
         assert [int(v) for v in r.mget(['k%d' % i for i in range(100)])] == list(range(100))\n\
         print('ok')\n",
        proxy.addr.port()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn clients_through_the_proxy_to_redis_nodes() {
    clients_through_the_proxy(NodeKind::Redis);
}

#[test]
fn clients_through_the_proxy_to_ember_nodes() {
    clients_through_the_proxy(NodeKind::Ember);
}

/// The proxy's own password, told as redis-server tells it (checked
/// against a real one with the same `requirepass`).
#[test]
fn the_proxy_asks_for_its_password() {
    let fleet = NodeCluster::start(NodeKind::Redis, 1, 1);
    let mut config = ProxyConfig::new();
    config.requirepass = Some("sesame".into());
    let proxy = Proxy::start(fleet.groups(), config);
    let redis = ember_tests::RedisServer::start(&["--requirepass", "sesame"]);
    let cli = |port: u16, args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "--no-auth-warning"])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for args in [
        &["GET", "k"][..],
        &["-a", "wrong", "GET", "k"],
        &["-a", "sesame", "SET", "k", "v"],
        &["-a", "sesame", "GET", "k"],
        &["AUTH", "sesame", "extra", "args"],
    ] {
        assert_eq!(
            cli(proxy.addr.port(), args),
            cli(redis.addr().port(), args),
            "{args:?}"
        );
    }
}

/// A node killed under load behind the proxy: writes go on (policy one),
/// reads keep answering, and every acknowledged write reads back.
#[test]
fn a_node_killed_under_load_behind_the_proxy() {
    let mut fleet = NodeCluster::start(NodeKind::Redis, 2, 2);
    let proxy = Proxy::start(fleet.groups(), ProxyConfig::new());
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = proxy.url();
            std::thread::spawn(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                let mut acked = Vec::new();
                for i in 0..2_000 {
                    let key = format!("w{w}:{i}");
                    if redis::cmd("SET")
                        .arg(&key)
                        .arg(&key)
                        .query::<()>(&mut con)
                        .is_ok()
                    {
                        acked.push(key);
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    fleet.nodes[0].kill();
    let acked: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(
        acked.len(),
        8_000,
        "policy one: every write is acknowledged"
    );
    let mut con = conn(&proxy);
    for chunk in acked.chunks(500) {
        let got: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query(&mut con).unwrap();
        for (k, v) in chunk.iter().zip(got) {
            assert_eq!(v.as_deref(), Some(k.as_str()));
        }
    }
}

/// A node restarted empty behind the proxy: no read answers nil for a key
/// it lost, and the proxy's client repairs it by itself.
#[test]
fn a_node_restarted_empty_heals_behind_the_proxy() {
    let mut fleet = NodeCluster::start(NodeKind::Redis, 2, 1);
    let proxy = Proxy::start(fleet.groups(), ProxyConfig::new());
    let mut con = conn(&proxy);
    let keys: Vec<String> = (0..2_000).map(|i| format!("k{i}")).collect();
    for chunk in keys.chunks(500) {
        let pairs: Vec<(&String, &String)> = chunk.iter().map(|k| (k, k)).collect();
        redis::cmd("MSET")
            .arg(&pairs)
            .query::<()>(&mut con)
            .unwrap();
    }
    fleet.nodes[0].restart();
    for chunk in keys.chunks(500) {
        let got: Vec<Option<String>> = redis::cmd("MGET").arg(chunk).query(&mut con).unwrap();
        for (k, v) in chunk.iter().zip(got) {
            assert_eq!(v.as_deref(), Some(k.as_str()), "a wrong nil");
        }
    }
    // The write reaches the restarted node; the proxy's client sees who it
    // is now and repairs it.
    redis::cmd("SET")
        .arg("poke")
        .arg("1")
        .query::<()>(&mut con)
        .unwrap();
    let mut healed = false;
    for _ in 0..300 {
        let info = proxy.cli(&["INFO", "fleet"]);
        if info.matches("trust=verified").count() == 2 {
            healed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(healed, "{}", proxy.cli(&["INFO", "fleet"]));
    let node = redis::Client::open(format!("redis://{}/", fleet.nodes[0].addr()))
        .unwrap()
        .get_connection()
        .map(|mut c| redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap())
        .unwrap();
    assert_eq!(node, 2_001);
}

/// RESP3 through the proxy (`HELLO 3`): every answer as redis-server
/// itself gives it to a RESP3 client, byte for byte: nulls, maps, sets,
/// doubles (with Redis's own text), WITHSCORES and WITHVALUES pairs, pops,
/// and EXEC's answers each in its command's shape. The fleet is one
/// redis-server; the reference another, fed the same commands.
#[test]
fn resp3_through_the_proxy_matches_redis() {
    let fleet = NodeCluster::start(NodeKind::Redis, 1, 1);
    let reference = ember_tests::RedisServer::start(&[]);
    let proxy = Proxy::start(fleet.groups(), ProxyConfig::new());
    let cases: &[&[&str]] = &[
        &["SET", "s", "v"],
        &["GET", "s"],
        &["GET", "nope"],
        &["MGET", "s", "nope"],
        &["LPOP", "nope"],
        &["HSET", "h", "f", "v", "g", "w"],
        &["HGETALL", "h"],
        &["HGETALL", "nope"],
        &["HSET", "h1", "f", "v"],
        &["HRANDFIELD", "h1", "-2", "WITHVALUES"],
        &["HMGET", "h", "f", "x"],
        &["SADD", "set", "a"],
        &["SMEMBERS", "set"],
        &["SINTER", "set"],
        &["SUNION", "set", "nope"],
        &["SDIFF", "nope"],
        &["SPOP", "nope", "2"],
        &[
            "ZADD", "z", "1", "a", "2", "b", "0.1", "c", "1e300", "d", "-inf", "e",
        ],
        &["ZSCORE", "z", "c"],
        &["ZSCORE", "z", "nope"],
        &["ZMSCORE", "z", "a", "nope", "d"],
        &["ZINCRBY", "z", "2.5", "a"],
        &["ZADD", "z", "INCR", "1", "b"],
        &["ZADD", "z", "XX", "INCR", "1", "nope"],
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["ZRANGE", "z", "0", "-1"],
        &["ZREVRANGE", "z", "0", "1", "WITHSCORES"],
        &[
            "ZRANGEBYSCORE",
            "z",
            "-inf",
            "+inf",
            "WITHSCORES",
            "LIMIT",
            "0",
            "2",
        ],
        &["ZRANDMEMBER", "nope", "2", "WITHSCORES"],
        &["ZUNION", "1", "z", "WITHSCORES"],
        &["ZPOPMIN", "z"],
        &["ZPOPMAX", "z", "2"],
        &["ZPOPMIN", "nope"],
        &["ZMPOP", "1", "z", "MIN", "COUNT", "1"],
        &["ZMPOP", "1", "nope", "MIN"],
        &["BZPOPMIN", "z", "0.01"],
        &["BZPOPMIN", "nope", "0.01"],
        &["BLPOP", "nope", "0.01"],
        &["INCRBYFLOAT", "n", "1.5"],
        &["EXISTS", "s", "nope"],
        &["TYPE", "z"],
        &["OBJECT", "ENCODING", "nope"],
        &["MULTI"],
        &["HGETALL", "h"],
        &["GET", "nope"],
        &["ZSCORE", "z", "b"],
        &["EXEC"],
    ];
    let mut answers: Vec<Vec<Vec<u8>>> = Vec::new();
    for addr in [reference.addr(), proxy.addr] {
        let mut c = ember_tests::connect(addr);
        let hello = ember_tests::call(&mut c, &[b"HELLO", b"3"]);
        assert!(hello.starts_with(b"%"), "{addr}: {hello:?}");
        answers.push(
            cases
                .iter()
                .map(|case| {
                    let args: Vec<&[u8]> = case.iter().map(|a| a.as_bytes()).collect();
                    ember_tests::call(&mut c, &args).to_vec()
                })
                .collect(),
        );
    }
    for (i, case) in cases.iter().enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&answers[1][i]),
            String::from_utf8_lossy(&answers[0][i]),
            "{case:?}"
        );
    }
}

/// Stopping the proxy: a request it already read is still answered (a
/// BLPOP waiting on its node, answered once the node has something), an
/// idle client is closed, and the proxy's `run` returns.
#[test]
fn stopping_the_proxy_answers_what_it_read_then_closes() {
    use std::io::{Read, Write};
    let fleet = NodeCluster::start(NodeKind::Ember, 1, 1);
    let node = fleet.groups()[0][0].clone();
    let mut proxy = Proxy::start(fleet.groups(), ProxyConfig::new());
    let connect = || {
        let s = std::net::TcpStream::connect(proxy.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    };
    let mut idle = connect();
    idle.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    idle.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    let mut waiting = connect();
    waiting
        .write_all(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")
        .unwrap();
    let node_cli = |args: &[&str]| {
        let (host, port) = node.rsplit_once(':').unwrap();
        let out = Command::new("redis-cli")
            .args(["-h", host, "-p", port])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The BLPOP is on the node: the proxy read it and sent it on.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !node_cli(&["INFO", "clients"]).contains("blocked_clients:1") {
        assert!(
            std::time::Instant::now() < deadline,
            "BLPOP never reached the node"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy.shutdown.trigger();
    // The idle client is closed...
    let mut rest = Vec::new();
    assert_eq!(
        idle.read_to_end(&mut rest).expect("closed, not timed out"),
        0
    );
    // ...and the waiting one is answered once the node has a value, then
    // closed.
    assert_eq!(node_cli(&["RPUSH", "q", "v"]).trim(), "1");
    let mut answer = Vec::new();
    waiting
        .read_to_end(&mut answer)
        .expect("answered and closed");
    assert_eq!(answer, b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n");
    assert!(proxy.stopped(), "the proxy's run returned");
}

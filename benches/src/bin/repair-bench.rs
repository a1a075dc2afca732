//! How long self-healing takes, and what it costs the rest of the fleet.
//!
//! For each kind of node (`redis-server`, `ember-server`) and each size, on
//! one shard of two groups started here on free loopback ports:
//!
//! - **full**: `--keys` keys are loaded, node 0 is killed and started again
//!   empty, and `Client::repair` copies the shard back (`REPLICAOF`, then
//!   the `CLIENT PAUSE` catch-up): the time from its start to verified.
//! - **hinted**: node 0 is stopped (SIGSTOP), `--hinted` keys are written
//!   past it, it runs again (SIGCONT), and the repair copies just those
//!   keys: the time to verified (which includes one settle wait of the
//!   client's timeout, here 100 ms).
//! - **load**: two shards of two groups; `--tasks` tasks run `SET`s and
//!   `GET`s over all shards for `--seconds`, once undisturbed and once while
//!   node 0 (shard 0, group 0) is restarted empty and repaired: requests/s.
//!
//! ```text
//! cargo build --release -p ember-server -p ember-benches
//! taskset -c 0 target/release/repair-bench --keys 100000,1000000 --pin 1
//! ```

// The report on standard output is what this program is for.
#![allow(clippy::print_stdout)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use client::{Client, Connection, NodeId, Options, RepairKind, Topology, WritePolicy};

#[derive(Debug, Parser)]
#[command(name = "repair-bench")]
struct Args {
    /// Keys per shard for the full copy, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100000")]
    keys: Vec<usize>,
    /// Keys written past a stopped node, for the hinted repair.
    #[arg(long, default_value_t = 10_000)]
    hinted: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 16)]
    data_size: usize,
    /// Which servers: redis, ember (default: both).
    #[arg(long, value_delimiter = ',', default_value = "redis,ember")]
    kinds: Vec<String>,
    /// The ember-server binary.
    #[arg(long, default_value = "target/release/ember-server")]
    ember_bin: String,
    /// Run the servers on this core (`taskset -c`); run this program on
    /// another.
    #[arg(long)]
    pin: Option<u32>,
    /// Tasks of the load test.
    #[arg(long, default_value_t = 50)]
    tasks: usize,
    /// Seconds of each load run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

/// A server process, killed on drop.
struct Server {
    kind: String,
    port: u16,
    bin: String,
    pin: Option<u32>,
    child: Option<Child>,
}

impl Server {
    fn start(kind: &str, args: &Args) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut server = Server {
            kind: kind.to_owned(),
            port,
            bin: args.ember_bin.clone(),
            pin: args.pin,
            child: None,
        };
        server.restart();
        server
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let mut argv: Vec<String> = Vec::new();
        if let Some(core) = self.pin {
            argv.extend(["taskset".into(), "-c".into(), core.to_string()]);
        }
        if self.kind == "redis" {
            argv.extend(["redis-server", "--port", &port, "--bind", "127.0.0.1"].map(String::from));
            // A directory of its own: a replica keeps the RDB file of its
            // sync there, which a server started later would load.
            let dir =
                std::env::temp_dir().join(format!("repair-bench-{}-{port}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("a directory");
            argv.extend(["--save", "", "--appendonly", "no", "--dir"].map(String::from));
            argv.push(dir.display().to_string());
        } else {
            argv.extend(
                [self.bin.as_str(), "--port", &port, "--bind", "127.0.0.1"].map(String::from),
            );
            argv.extend(["--threads", "1", "--loglevel", "warning"].map(String::from));
        }
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", argv[0]));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.addr()).is_err() {
            assert!(Instant::now() < deadline, "{} did not start", self.kind);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = &self.child {
            // With taskset the child is taskset, which exec'd the server:
            // the same pid.
            let _ = Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let dir =
            std::env::temp_dir().join(format!("repair-bench-{}-{}", std::process::id(), self.port));
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn options(timeout: Duration) -> Options {
    let mut options = Options::default();
    options.timeout = timeout;
    options.repair = false;
    options.write_policy = WritePolicy::One;
    options
}

async fn client(groups: Vec<Vec<String>>, options: Options) -> Client {
    let topology = Topology::new(groups).expect("topology");
    Client::connect(topology, options).await.expect("connect")
}

async fn load(client: &Client, from: usize, count: usize, size: usize) {
    let value = Bytes::from(vec![b'x'; size]);
    let keys: Vec<usize> = (from..from + count).collect();
    for chunk in keys.chunks(10_000) {
        let sets = chunk.iter().map(|i| {
            vec![
                Bytes::from("SET"),
                Bytes::from(format!("key:{i}")),
                value.clone(),
            ]
        });
        for reply in client.pipeline(sets).await {
            reply.expect("SET");
        }
    }
}

async fn full(kind: &str, keys: usize, args: &Args) -> Duration {
    let mut a = Server::start(kind, args);
    let b = Server::start(kind, args);
    let groups = vec![vec![a.addr()], vec![b.addr()]];
    let writer = client(groups.clone(), options(Duration::from_secs(10))).await;
    load(&writer, 0, keys, args.data_size).await;
    writer.flush().await;
    drop(writer);
    a.restart();
    let c = client(groups, options(Duration::from_secs(10))).await;
    let report = c.repair(NodeId(0)).await.expect("repair");
    assert_eq!(report.kind, RepairKind::Full);
    let dbsize = Connection::connect(a.addr())
        .await
        .unwrap()
        .cmd(["DBSIZE"])
        .await
        .unwrap();
    assert_eq!(
        dbsize,
        client::Frame::Integer(keys as i64),
        "the copy is whole"
    );
    report.elapsed
}

async fn hinted(kind: &str, keys: usize, args: &Args) -> (Duration, u64) {
    let a = Server::start(kind, args);
    let b = Server::start(kind, args);
    let groups = vec![vec![a.addr()], vec![b.addr()]];
    let writer = client(groups.clone(), options(Duration::from_secs(10))).await;
    load(&writer, 0, keys, args.data_size).await;
    drop(writer);
    a.signal("-STOP");
    let writer = client(groups.clone(), options(Duration::from_millis(200))).await;
    load(&writer, keys, args.hinted, args.data_size).await;
    writer.flush().await;
    drop(writer);
    a.signal("-CONT");
    let c = client(groups, options(Duration::from_millis(100))).await;
    let report = c.repair(NodeId(0)).await.expect("repair");
    assert_eq!(report.kind, RepairKind::Hints);
    (report.elapsed, report.copied)
}

/// Each task's step through the keys: a prime, so tasks spread.
const STRIDE: usize = 104_729;

/// Requests/s over all shards for `--seconds`; with `repair`, over the
/// time from node 0's restart to its repair's end instead.
async fn throughput(kind: &str, keys: usize, repair: bool, args: &Args) -> f64 {
    let mut servers: Vec<Server> = (0..4).map(|_| Server::start(kind, args)).collect();
    let groups = vec![
        vec![servers[0].addr(), servers[1].addr()],
        vec![servers[2].addr(), servers[3].addr()],
    ];
    let c = client(groups.clone(), options(Duration::from_secs(10))).await;
    load(&c, 0, keys * 2, args.data_size).await;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..args.tasks)
        .map(|t| {
            let (c, done, stop) = (c.clone(), done.clone(), stop.clone());
            let keyspace = keys * 2;
            tokio::spawn(async move {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("key:{}", (i * 7919) % keyspace);
                    let ok = if i % 2 == 0 {
                        c.set(&key, "v").await.is_ok()
                    } else {
                        c.get(&key).await.is_ok()
                    };
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    i += STRIDE;
                }
            })
        })
        .collect();
    let rate;
    if repair {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (before, started) = (done.load(Ordering::Relaxed), Instant::now());
        servers[0].restart();
        let repairer = client(groups, options(Duration::from_secs(10))).await;
        repairer.repair(NodeId(0)).await.expect("repair");
        let count = done.load(Ordering::Relaxed) - before;
        rate = count as f64 / started.elapsed().as_secs_f64();
    } else {
        let (before, started) = (done.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        let count = done.load(Ordering::Relaxed) - before;
        rate = count as f64 / started.elapsed().as_secs_f64();
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    rate
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!("kind    keys/shard   full copy s   hinted keys   hinted s");
        for kind in &args.kinds {
            for &keys in &args.keys {
                let f = full(kind, keys, &args).await;
                let (h, copied) = hinted(kind, keys, &args).await;
                println!(
                    "{kind:<7} {keys:>10} {:>13.3} {copied:>13} {:>10.3}",
                    f.as_secs_f64(),
                    h.as_secs_f64()
                );
            }
        }
        println!();
        println!("kind    keys/shard   load ops/s   during a repair   ratio");
        for kind in &args.kinds {
            let keys = args.keys[0];
            let quiet = throughput(kind, keys, false, &args).await;
            let busy = throughput(kind, keys, true, &args).await;
            println!(
                "{kind:<7} {keys:>10} {quiet:>12.0} {busy:>17.0} {:>7.2}",
                busy / quiet
            );
        }
    });
}

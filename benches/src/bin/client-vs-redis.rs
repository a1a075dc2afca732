//! Ember's client against the `redis` crate's multiplexed connection, on the
//! same server: `--tasks` tasks share one client and each sends `SET`s (then
//! `GET`s) one at a time, as an application's request handlers would.
//! Prints ops/s for each client and the ratio to the `redis` crate.
//!
//! ```text
//! cargo build --release -p ember-server -p ember-benches
//! target/release/ember-server --port 7379 &          # or: redis-server --port 7379 --save ''
//! target/release/client-vs-redis --addr 127.0.0.1:7379
//! ```

// The report on standard output is what this program is for.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use client::{Client, Connection, Options, Topology};

#[derive(Debug, Parser)]
#[command(name = "client-vs-redis")]
struct Args {
    /// The server, Ember or Redis.
    #[arg(long, default_value = "127.0.0.1:6379")]
    addr: String,
    /// Tasks sending at once through one shared client.
    #[arg(long, default_value_t = 50)]
    tasks: usize,
    /// Requests per measurement.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 3)]
    data_size: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keyspace: u64,
    /// Measurements per client and command; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measure only these clients: ember, connection, redis (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The runtime's worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Set,
    Get,
}

/// One of the clients compared; every task gets a clone.
#[derive(Clone)]
enum Contender {
    Ember(Client),
    EmberConnection(Connection),
    Redis(redis::aio::MultiplexedConnection),
}

impl Contender {
    fn name(&self) -> &'static str {
        match self {
            Contender::Ember(_) => "ember Client (1 node)",
            Contender::EmberConnection(_) => "ember Connection",
            Contender::Redis(_) => "redis MultiplexedConnection",
        }
    }

    /// Sends one command; whether it succeeded.
    async fn call(&mut self, op: Op, key: Bytes, value: &Bytes) -> bool {
        match (self, op) {
            (Contender::Ember(c), Op::Set) => c.set(key, value).await.is_ok(),
            (Contender::Ember(c), Op::Get) => c.get(key).await.is_ok(),
            (Contender::EmberConnection(c), Op::Set) => c.set(key, value).await.is_ok(),
            (Contender::EmberConnection(c), Op::Get) => c.get(key).await.is_ok(),
            (Contender::Redis(c), Op::Set) => redis::cmd("SET")
                .arg(&key[..])
                .arg(&value[..])
                .query_async::<()>(c)
                .await
                .is_ok(),
            (Contender::Redis(c), Op::Get) => redis::cmd("GET")
                .arg(&key[..])
                .query_async::<Option<Vec<u8>>>(c)
                .await
                .is_ok(),
        }
    }
}

/// Runs `requests` commands from `tasks` tasks; returns ops/s.
async fn measure(contender: &Contender, op: Op, args: &Args, value: &Bytes) -> f64 {
    let issued = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.tasks)
        .map(|t| {
            let (mut contender, issued, failed) =
                (contender.clone(), issued.clone(), failed.clone());
            let (requests, keyspace, value) = (args.requests, args.keyspace.max(1), value.clone());
            tokio::spawn(async move {
                let mut x = (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                while issued.fetch_add(1, Ordering::Relaxed) < requests {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = Bytes::from(format!("key:{:012}", x % keyspace));
                    if !contender.call(op, key, &value).await {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a benchmark task");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    assert_eq!(
        failed,
        0,
        "{} {op:?}: {failed} requests failed",
        contender.name()
    );
    args.requests as f64 / elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

async fn run(args: Args) {
    let topology = Topology::new([[args.addr.clone()]]).expect("an address");
    let ember = Client::connect(topology, Options::default())
        .await
        .expect("ember client connects");
    let single = Connection::connect(args.addr.clone())
        .await
        .expect("ember connection connects");
    let redis_client = redis::Client::open(format!("redis://{}/", args.addr)).expect("a redis URL");
    let redis = redis_client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connects");
    let contenders = [
        Contender::Ember(ember),
        Contender::EmberConnection(single),
        Contender::Redis(redis),
    ];
    let value = Bytes::from(vec![b'x'; args.data_size]);
    let wanted = |c: &Contender| {
        let key = match c {
            Contender::Ember(_) => "ember",
            Contender::EmberConnection(_) => "connection",
            Contender::Redis(_) => "redis",
        };
        args.only.is_empty() || args.only.iter().any(|o| o == key)
    };
    let ops = [Op::Set, Op::Get];
    // samples[contender][op]
    let mut samples = vec![vec![Vec::new(); ops.len()]; contenders.len()];
    // Interleaved, so that drift on the machine hits every client alike.
    for round in 0..args.rounds.max(1) {
        for (c, contender) in contenders.iter().enumerate() {
            if !wanted(contender) {
                continue;
            }
            for (o, &op) in ops.iter().enumerate() {
                let rate = measure(contender, op, &args, &value).await;
                eprintln!(
                    "round {round}: {:<28} {op:?} {rate:>10.0} ops/s",
                    contender.name()
                );
                samples[c][o].push(rate);
            }
        }
    }
    let medians: Vec<Vec<f64>> = samples
        .into_iter()
        .map(|per_op| per_op.into_iter().map(median).collect())
        .collect();
    if !args.only.is_empty() {
        return;
    }
    println!(
        "{} tasks, {} requests, {}-byte values, {} keys, server {} (median of {})",
        args.tasks,
        args.requests,
        args.data_size,
        args.keyspace,
        args.addr,
        args.rounds.max(1)
    );
    println!("{:<30} {:>12} {:>12}", "client", "SET ops/s", "GET ops/s");
    for (contender, m) in contenders.iter().zip(&medians) {
        println!("{:<30} {:>12.0} {:>12.0}", contender.name(), m[0], m[1]);
    }
    let redis = &medians[2];
    for (i, label) in [(0, "ember Client / redis"), (1, "ember Connection / redis")] {
        println!(
            "{:<30} {:>11.2}x {:>11.2}x",
            label,
            medians[i][0] / redis[0],
            medians[i][1] / redis[1]
        );
    }
}

fn main() {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        builder.worker_threads(n);
    }
    let runtime = builder.enable_all().build().expect("a runtime");
    runtime.block_on(run(args));
}

//! gRPC against RESP on the same server: `--streams` tasks each send Get
//! (then Set) one at a time, over gRPC (`ember.v1.Cache`, every task's
//! calls on one shared HTTP/2 channel, so that many streams are open at
//! once) and over RESP (one connection per task, as `redis-benchmark -c`
//! does). Prints requests/s and the latency percentiles of each.
//!
//! ```text
//! cargo build --release -p ember-server -p ember-benches
//! target/release/ember-server --port 7379 --grpc-port 7380 &
//! target/release/grpc-load --resp 127.0.0.1:7379 --grpc 127.0.0.1:7380
//! ```

// The report on standard output is what this program is for.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use grpc::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
#[command(name = "grpc-load")]
struct Args {
    /// The server's RESP address.
    #[arg(long, default_value = "127.0.0.1:6379")]
    resp: String,
    /// The server's gRPC address.
    #[arg(long, default_value = "127.0.0.1:6380")]
    grpc: String,
    /// Tasks sending at once: gRPC streams open at once, RESP connections.
    #[arg(long, default_value_t = 50)]
    streams: usize,
    /// Requests per measurement.
    #[arg(long, default_value_t = 200_000)]
    requests: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 3)]
    data_size: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keyspace: usize,
    /// gRPC channels the tasks share (HTTP/2 connections).
    #[arg(long, default_value_t = 1)]
    channels: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Set,
    Get,
}

/// What a task sends through.
enum Link {
    Grpc(pb::cache_client::CacheClient<tonic::transport::Channel>),
    Resp(BufReader<TcpStream>),
}

impl Link {
    async fn call(&mut self, op: Op, key: Bytes, value: &Bytes) {
        match self {
            Link::Grpc(client) => match op {
                Op::Get => {
                    let reply = client.get(pb::GetRequest { key }).await.expect("Get");
                    assert!(reply.into_inner().found, "preloaded");
                }
                Op::Set => {
                    client
                        .set(pb::SetRequest {
                            key,
                            value: value.clone(),
                            ..Default::default()
                        })
                        .await
                        .expect("Set");
                }
            },
            Link::Resp(conn) => {
                let mut wire = bytes::BytesMut::with_capacity(64);
                match op {
                    Op::Get => resp::encode_command(&mut wire, &[&b"GET"[..], &key]),
                    Op::Set => resp::encode_command(&mut wire, &[&b"SET"[..], &key, value]),
                }
                conn.get_mut().write_all(&wire).await.expect("write");
                read_reply(conn).await;
            }
        }
    }
}

/// Reads one `+...` or `$n` reply.
async fn read_reply(conn: &mut BufReader<TcpStream>) {
    let mut line = Vec::new();
    loop {
        let b = conn.read_u8().await.expect("reply");
        line.push(b);
        if line.ends_with(b"\r\n") {
            break;
        }
    }
    if line[0] == b'$' {
        let n: usize = std::str::from_utf8(&line[1..line.len() - 2])
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("a found value");
        let mut rest = vec![0; n + 2];
        conn.read_exact(&mut rest).await.expect("value");
    } else {
        assert_eq!(line[0], b'+', "{:?}", String::from_utf8_lossy(&line));
    }
}

/// Runs `requests` calls over `links`, one task per link; the latencies.
async fn measure(links: Vec<Link>, op: Op, args: &Args) -> (Duration, Vec<Duration>) {
    let per_task = args.requests / links.len();
    let value = Bytes::from(vec![b'x'; args.data_size]);
    let keyspace = args.keyspace;
    let started = Instant::now();
    let tasks: Vec<_> = links
        .into_iter()
        .enumerate()
        .map(|(t, mut link)| {
            let value = value.clone();
            tokio::spawn(async move {
                let mut took = Vec::with_capacity(per_task);
                for i in 0..per_task {
                    let key = Bytes::from(format!("key:{}", (t * 7919 + i * 31) % keyspace));
                    let at = Instant::now();
                    link.call(op, key, &value).await;
                    took.push(at.elapsed());
                }
                took
            })
        })
        .collect();
    let mut all = Vec::with_capacity(args.requests);
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    (started.elapsed(), all)
}

fn report(what: &str, op: Op, elapsed: Duration, mut took: Vec<Duration>) {
    took.sort_unstable();
    let at = |p: f64| took[((took.len() as f64 * p) as usize).min(took.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:<5} {op:<4} {:>10.0} req/s   p50 {:>6.3} ms   p99 {:>6.3} ms   p99.9 {:>6.3} ms",
        took.len() as f64 / elapsed.as_secs_f64(),
        ms(at(0.50)),
        ms(at(0.99)),
        ms(at(0.999)),
        op = format!("{op:?}"),
    );
}

async fn links(args: &Args, grpc: bool) -> Vec<Link> {
    let mut out = Vec::with_capacity(args.streams);
    if grpc {
        let mut channels = Vec::new();
        for _ in 0..args.channels.max(1) {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", args.grpc))
                .expect("endpoint")
                .connect()
                .await
                .expect("gRPC connect");
            channels.push(channel);
        }
        for i in 0..args.streams {
            let client = pb::cache_client::CacheClient::new(channels[i % channels.len()].clone());
            out.push(Link::Grpc(client));
        }
    } else {
        for _ in 0..args.streams {
            let stream = TcpStream::connect(&args.resp).await.expect("RESP connect");
            stream.set_nodelay(true).expect("nodelay");
            out.push(Link::Resp(BufReader::new(stream)));
        }
    }
    out
}

/// Sets every key once, pipelined on one connection, so that Get finds
/// values on either side.
async fn preload(args: &Args) {
    let stream = TcpStream::connect(&args.resp).await.expect("RESP connect");
    let mut conn = BufReader::new(stream);
    let value = vec![b'x'; args.data_size];
    for start in (0..args.keyspace).step_by(1000) {
        let end = (start + 1000).min(args.keyspace);
        let mut wire = bytes::BytesMut::new();
        for i in start..end {
            let key = format!("key:{i}");
            resp::encode_command(&mut wire, &[&b"SET"[..], key.as_bytes(), &value]);
        }
        conn.get_mut().write_all(&wire).await.expect("write");
        for _ in start..end {
            read_reply(&mut conn).await;
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    preload(&args).await;
    for op in [Op::Get, Op::Set] {
        for grpc in [false, true] {
            let (elapsed, took) = measure(links(&args, grpc).await, op, &args).await;
            report(if grpc { "gRPC" } else { "RESP" }, op, elapsed, took);
        }
    }
}

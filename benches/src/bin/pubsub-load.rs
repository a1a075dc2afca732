//! Pub/sub load on one server: `--subscribers` connections subscribe to one
//! channel (or, with `--pattern`, to a pattern matching it), then
//! `--publishers` connections each publish their share of `--messages`,
//! one at a time as `redis-benchmark -c N -- PUBLISH ch msg` would. Every
//! payload carries the time it was sent, so each subscriber measures the
//! delivery latency of every message it gets.
//!
//! Prints one line: publishes/s, deliveries/s (messages times subscribers,
//! over the time until the last subscriber had them all), and the delivery
//! latency's p50, p99 and p99.9 in milliseconds.
//!
//! ```text
//! cargo build --release -p ember-server -p ember-benches
//! target/release/ember-server --port 7379 &          # or: redis-server --port 7379 --save ''
//! target/release/pubsub-load --addr 127.0.0.1:7379 --subscribers 10 --messages 100000
//! ```
//! `benches/pubsub.sh` runs it against Ember and Redis side by side.
//!
//! With `--replica HOST:PORT,...` (once per replica group) it measures a
//! fleet through `ember-client` instead: publishers share one `Client` and
//! call `publish` (one `PUBLISH` per group), each subscriber is a
//! `Subscription` of a second `Client` (`benches/pubsub-fleet.sh`).

// The report on standard output is what this program is for.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
#[command(name = "pubsub-load")]
struct Args {
    /// The server, Ember or Redis.
    #[arg(long, default_value = "127.0.0.1:6379")]
    addr: String,
    /// Subscriber connections.
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// Subscribe to the pattern `bench:*` instead of the channel.
    #[arg(long)]
    pattern: bool,
    /// Publisher connections, each with one `PUBLISH` in flight.
    #[arg(long, default_value_t = 50)]
    publishers: usize,
    /// Messages published in all.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// A replica group of a fleet, its shards in order: measure through
    /// ember-client instead of on one server (give it once per group).
    #[arg(long = "replica", value_name = "HOST:PORT,...")]
    replicas: Vec<String>,
    /// How long to wait for the last deliveries before giving up.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

const CHANNEL: &[u8] = b"bench:channel";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

/// Reads one frame from `stream` into `decoder`'s buffer.
async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<resp::Frame, Box<dyn std::error::Error + Send + Sync>> {
    loop {
        if let Some(frame) = resp::decode(buf)? {
            return Ok(frame);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err("the server closed the connection".into());
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if !args.replicas.is_empty() {
        return fleet(args).await;
    }
    let base = Instant::now();
    // Subscribe everyone before the first publish.
    let mut subscribers = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        let mut stream = TcpStream::connect(&args.addr).await?;
        stream.set_nodelay(true)?;
        let mut out = BytesMut::new();
        if args.pattern {
            resp::encode_command(&mut out, &[&b"PSUBSCRIBE"[..], b"bench:*"]);
        } else {
            resp::encode_command(&mut out, &[&b"SUBSCRIBE"[..], CHANNEL]);
        }
        stream.write_all(&out).await?;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        read_frame(&mut stream, &mut buf)
            .await
            .map_err(|e| e.to_string())?;
        subscribers.push((stream, buf));
    }
    let messages = args.messages;
    let mut readers = Vec::with_capacity(subscribers.len());
    for (mut stream, mut buf) in subscribers {
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(messages);
            while latencies.len() < messages {
                let frame = read_frame(&mut stream, &mut buf)
                    .await
                    .map_err(|e| e.to_string())?;
                let resp::Frame::Array(items) = frame else {
                    continue;
                };
                let Some(resp::Frame::Bulk(payload)) = items.last() else {
                    continue;
                };
                let sent: u64 = std::str::from_utf8(payload)
                    .ok()
                    .and_then(|p| p.parse().ok())
                    .ok_or("a payload that is not a time")?;
                let now = base.elapsed().as_nanos() as u64;
                latencies.push(now.saturating_sub(sent));
            }
            Ok::<_, String>((latencies, Instant::now()))
        }));
    }

    let publishers = args.publishers.max(1);
    let start = Instant::now();
    let mut senders = Vec::with_capacity(publishers);
    for p in 0..publishers {
        let share = messages / publishers + usize::from(p < messages % publishers);
        let addr = args.addr.clone();
        senders.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let mut out = BytesMut::new();
            let mut buf = BytesMut::with_capacity(1024);
            for _ in 0..share {
                out.clear();
                let now = base.elapsed().as_nanos().to_string();
                resp::encode_command(&mut out, &[&b"PUBLISH"[..], CHANNEL, now.as_bytes()]);
                stream.write_all(&out).await.map_err(|e| e.to_string())?;
                read_frame(&mut stream, &mut buf)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }));
    }
    for sender in senders {
        sender.await??;
    }
    let published = start.elapsed();
    let mut all = Vec::with_capacity(messages * args.subscribers);
    let mut last = start;
    let deadline = Duration::from_secs(args.timeout_secs);
    for reader in readers {
        let (latencies, done) = tokio::time::timeout(deadline, reader)
            .await
            .map_err(|_| "deliveries did not all arrive in time")???;
        all.extend(latencies);
        last = last.max(done);
    }
    report(
        messages,
        args.subscribers,
        published,
        last.duration_since(start),
        all,
    );
    Ok(())
}

/// Prints the line: publishes/s, deliveries/s, latency p50, p99, p99.9.
fn report(
    messages: usize,
    subscribers: usize,
    published: Duration,
    delivered: Duration,
    mut all: Vec<u64>,
) {
    all.sort_unstable();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len().max(1)) - 1;
        all.get(i).copied().unwrap_or(0) as f64 / 1e6
    };
    println!(
        "{:.0} {:.0} {:.3} {:.3} {:.3}",
        messages as f64 / published.as_secs_f64(),
        (messages * subscribers) as f64 / delivered.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(0.999),
    );
}

/// The same load on a fleet, through ember-client.
async fn fleet(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let groups: Vec<Vec<String>> = args
        .replicas
        .iter()
        .map(|g| g.split(',').map(str::to_owned).collect())
        .collect();
    let topology = client::Topology::new(groups)?;
    let mut options = client::Options::default();
    // The load alone: no markers or hints to read on the side.
    options.healing = false;
    let publisher = client::Client::connect(topology.clone(), options.clone()).await?;
    let listener = client::Client::connect(topology, options).await?;
    let base = Instant::now();
    let messages = args.messages;
    let mut readers = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        let mut sub = if args.pattern {
            listener.psubscribe(["bench:*"]).await?
        } else {
            listener.subscribe([CHANNEL]).await?
        };
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(messages);
            while latencies.len() < messages {
                let message = sub.recv().await.ok_or("the subscription ended")?;
                let sent: u64 = std::str::from_utf8(&message.payload)
                    .ok()
                    .and_then(|p| p.parse().ok())
                    .ok_or("a payload that is not a time")?;
                let now = base.elapsed().as_nanos() as u64;
                latencies.push(now.saturating_sub(sent));
            }
            Ok::<_, String>((latencies, Instant::now()))
        }));
    }
    let publishers = args.publishers.max(1);
    let start = Instant::now();
    let mut senders = Vec::with_capacity(publishers);
    for p in 0..publishers {
        let share = messages / publishers + usize::from(p < messages % publishers);
        let publisher = publisher.clone();
        senders.push(tokio::spawn(async move {
            for _ in 0..share {
                let now = base.elapsed().as_nanos().to_string();
                publisher
                    .publish(CHANNEL, now)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }));
    }
    for sender in senders {
        sender.await??;
    }
    let published = start.elapsed();
    let mut all = Vec::with_capacity(messages * args.subscribers);
    let mut last = start;
    let deadline = Duration::from_secs(args.timeout_secs);
    for reader in readers {
        let (latencies, done) = tokio::time::timeout(deadline, reader)
            .await
            .map_err(|_| "deliveries did not all arrive in time")???;
        all.extend(latencies);
        last = last.max(done);
    }
    report(
        messages,
        args.subscribers,
        published,
        last.duration_since(start),
        all,
    );
    Ok(())
}

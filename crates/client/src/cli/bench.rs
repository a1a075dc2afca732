//! `ember-cli bench`: `SET` and `GET` throughput and latency through the
//! client, from many tasks at once.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;

use super::Io;
use crate::Client;

/// Measures `SET` and `GET` through the client: each test sends
/// `--requests` commands from `--clients` tasks, on random keys out of
/// `--keyspace`.
#[derive(Debug, Parser)]
#[command(name = "ember-cli bench")]
pub(super) struct BenchArgs {
    /// Requests per test.
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Tasks sending requests at once, each waiting for its answer before
    /// sending the next.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 3)]
    data_size: usize,
    /// Distinct keys (`key:000000000042`...).
    #[arg(long, default_value_t = 100_000)]
    keyspace: u64,
    /// The tests to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "set,get")]
    tests: Vec<Test>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Test {
    Set,
    Get,
}

/// What one test measured.
struct Report {
    name: &'static str,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    /// Every latency, sorted.
    latencies: Vec<Duration>,
}

pub(super) async fn run(client: Client, args: BenchArgs, io: Io<'_>) -> u8 {
    let clients = args.clients.max(1);
    let value = Bytes::from(vec![b'x'; args.data_size]);
    let mut reports = Vec::new();
    for &test in &args.tests {
        let report = one_test(
            &client,
            test,
            &args,
            clients,
            &value,
            &mut *io.stderr,
            io.stderr_is_terminal,
        )
        .await;
        reports.push(report);
    }
    let mut out = String::new();
    out.push_str(&format!(
        "{} requests per test, {} clients, {}-byte values, {} keys\n",
        args.requests, clients, args.data_size, args.keyspace
    ));
    out.push_str(&format!(
        "{:<8} {:>12} {:>10} {:>10} {:>10} {:>8}\n",
        "command", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"
    ));
    let mut failed = false;
    for r in &reports {
        let ops = r.requests as f64 / r.elapsed.as_secs_f64().max(1e-9);
        out.push_str(&format!(
            "{:<8} {:>12.0} {:>10.3} {:>10.3} {:>10.3} {:>8}\n",
            r.name,
            ops,
            ms(percentile(&r.latencies, 0.50)),
            ms(percentile(&r.latencies, 0.99)),
            ms(percentile(&r.latencies, 0.999)),
            r.errors,
        ));
        failed |= r.errors > 0;
    }
    let _ = io.stdout.write_all(out.as_bytes());
    let _ = io.stdout.flush();
    u8::from(failed)
}

async fn one_test(
    client: &Client,
    test: Test,
    args: &BenchArgs,
    clients: usize,
    value: &Bytes,
    stderr: &mut dyn Write,
    progress: bool,
) -> Report {
    let name = match test {
        Test::Set => "SET",
        Test::Get => "GET",
    };
    let issued = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (client, issued, done, value) =
                (client.clone(), issued.clone(), done.clone(), value.clone());
            let (requests, keyspace) = (args.requests, args.keyspace.max(1));
            tokio::spawn(async move {
                let mut rng =
                    0x9e37_79b9_7f4a_7c15u64 ^ (i as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                while issued.fetch_add(1, Ordering::Relaxed) < requests {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let key = Bytes::from(format!("key:{:012}", rng % keyspace));
                    let args = match test {
                        Test::Set => vec![Bytes::from_static(b"SET"), key, value.clone()],
                        Test::Get => vec![Bytes::from_static(b"GET"), key],
                    };
                    let sent = Instant::now();
                    let result = client.cmd_bytes(args).await;
                    latencies.push(sent.elapsed());
                    errors += u64::from(result.is_err());
                    done.fetch_add(1, Ordering::Relaxed);
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let all = async {
        let mut latencies = Vec::with_capacity(args.requests as usize);
        let mut errors = 0;
        for task in tasks {
            if let Ok((l, e)) = task.await {
                latencies.extend(l);
                errors += e;
            }
        }
        (latencies, errors)
    };
    tokio::pin!(all);
    let (mut latencies, errors) = loop {
        tokio::select! {
            result = &mut all => break result,
            _ = ticker.tick(), if progress => {
                let n = done.load(Ordering::Relaxed);
                let rate = n as f64 / start.elapsed().as_secs_f64().max(1e-9);
                let _ = write!(stderr, "\r{name}: {n}/{} requests, {rate:.0} ops/s   ", args.requests);
                let _ = stderr.flush();
            }
        }
    };
    let elapsed = start.elapsed();
    if progress {
        let _ = write!(stderr, "\r{:60}\r", "");
        let _ = stderr.flush();
    }
    latencies.sort_unstable();
    Report {
        name,
        requests: latencies.len() as u64,
        errors,
        elapsed,
        latencies,
    }
}

/// The latency below which `q` of them fall (nearest rank).
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let l: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        assert_eq!(percentile(&l, 0.5), Duration::from_micros(500));
        assert_eq!(percentile(&l, 0.99), Duration::from_micros(990));
        assert_eq!(percentile(&l, 0.999), Duration::from_micros(999));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
        assert_eq!(percentile(&l[..1], 0.999), Duration::from_micros(1));
    }

    #[test]
    fn arguments() {
        let b = BenchArgs::try_parse_from(["bench", "--requests", "10", "--tests", "get"]).unwrap();
        assert_eq!(
            (b.requests, b.clients, b.tests.as_slice()),
            (10, 50, &[Test::Get][..])
        );
        assert!(BenchArgs::try_parse_from(["bench", "--tests", "del"]).is_err());
    }
}

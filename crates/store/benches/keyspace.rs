//! The keyspace alone, with criterion and nothing else of Ember's: what a
//! GET, an INCR and a SET of a new key cost between a command's arguments
//! and its entry, through the same calls the server makes (lock the key's
//! shard, lend the database with the command's effects, look up or store),
//! on keyspaces of 10,000 keys (cached) and 1,000,000 (not), keys picked at
//! random as `redis-benchmark -r` picks them. A change to the table, the
//! slot or the locks (issue 18) is measured here first, without a network.
//!
//! `cargo bench -p ember-store --bench keyspace`; `EMBER_BENCH_QUICK=1`
//! for a short look.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use ember_store::keyspace::{Entry, Keyspace, Shards};
use ember_store::{Rng, Str, Value, value::Form};

fn config() -> Criterion {
    let c = Criterion::default();
    if std::env::var_os("EMBER_BENCH_QUICK").is_some() {
        c.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
    } else {
        c
    }
}

/// redis-benchmark's key for `i`.
fn key(i: usize) -> Vec<u8> {
    format!("key:{i:012}").into_bytes()
}

fn string(v: &[u8]) -> Entry {
    Entry::new(Value::Str(Str::from_slice(v, Form::Auto)))
}

/// A keyspace of one database holding `n` keys `key:NNNNNNNNNNNN` = "1".
fn filled(n: usize) -> Keyspace<()> {
    let ks = Keyspace::new(1);
    let mut shards = Shards::new(&ks);
    for i in 0..n {
        let k = key(i);
        shards.lock_key(&k).db(0).put(&k, string(b"1"));
    }
    drop(shards);
    ks
}

/// 1,024 random keys of `0..n`, the requests of one batch.
fn picks(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..1024)
        .map(|_| key(rng.below(n).expect("keys")))
        .collect()
}

fn lookups(c: &mut Criterion) {
    for n in [10_000, 1_000_000] {
        let ks = filled(n);
        let keys = picks(n, 7);
        let mut g = c.benchmark_group(format!("keyspace_{n}"));
        g.throughput(Throughput::Elements(keys.len() as u64));
        g.bench_function("get", |b| {
            b.iter(|| {
                for k in &keys {
                    let mut shards = Shards::new(&ks);
                    let mut shard = shards.lock_key(k);
                    let mut db = shard.db(0);
                    black_box(db.get(k, 0).is_some());
                }
            })
        });
        g.bench_function("incr", |b| {
            b.iter(|| {
                for k in &keys {
                    let mut shards = Shards::new(&ks);
                    let mut shard = shards.lock_key(k);
                    let mut db = shard.db(0);
                    if let Some(Entry {
                        value: Value::Str(s),
                        ..
                    }) = db.get(k, 0)
                    {
                        let v: i64 = std::str::from_utf8(s.bytes())
                            .ok()
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0);
                        *s = Str::from_i64(v.wrapping_add(1));
                    }
                    db.modified(k);
                }
            })
        });
        g.bench_function("set_existing", |b| {
            b.iter(|| {
                for k in &keys {
                    let mut shards = Shards::new(&ks);
                    shards.lock_key(k).db(0).put(k, string(b"2"));
                }
            })
        });
        g.finish();
    }
    // New keys: inserts that grow the tables, then deletes.
    let mut g = c.benchmark_group("keyspace_new_keys");
    let fresh: Vec<Bytes> = (0..100_000).map(|i| Bytes::from(key(i))).collect();
    g.throughput(Throughput::Elements(fresh.len() as u64));
    g.bench_function("insert_100k", |b| {
        b.iter_batched(
            || Keyspace::<()>::new(1),
            |ks| {
                let mut shards = Shards::new(&ks);
                for k in &fresh {
                    shards.lock_key(k).db(0).insert(k.clone(), string(b"1"));
                }
                drop(shards);
                ks
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("remove_100k", |b| {
        b.iter_batched(
            || filled(fresh.len()),
            |ks| {
                let mut shards = Shards::new(&ks);
                for k in &fresh {
                    black_box(shards.lock_key(k).db(0).remove(k));
                }
                drop(shards);
                ks
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion::criterion_group! {
    name = benches;
    config = config();
    targets = lookups
}
criterion::criterion_main!(benches);

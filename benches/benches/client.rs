//! The client's CPU costs without a network: placing a key, planning and
//! merging a 100-key `MGET`, and a router's round trip for one command.
//!
//! Run with `cargo bench -p ember-benches --bench client`. Set
//! `EMBER_BENCH_QUICK=1` for a shorter run. The end-to-end comparison with
//! the `redis` crate is `src/bin/client-vs-redis.rs`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use resp::Frame;
use route::{Config, Event, Merge, Router, Topology, plan};

mod common;

/// A topology of `groups` groups of `shards` made-up nodes.
fn topology(groups: usize, shards: usize) -> Topology {
    Topology::new((0..groups).map(|g| (0..shards).map(move |s| format!("10.0.{g}.{s}:6379"))))
        .expect("a topology")
}

/// `n` distinct 16-byte keys.
fn keys16(n: usize) -> Vec<[u8; 16]> {
    (0..n)
        .map(|i| {
            let mut k = *b"user:0000000000x";
            k[5..15].copy_from_slice(format!("{i:010}").as_bytes());
            k
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    // Placement: xxh64 of the key, then the jump hash over S shards.
    let mut g = c.benchmark_group("placement_16b_key");
    g.throughput(Throughput::Elements(1));
    let keys = keys16(1024);
    for shards in [3, 16, 1000] {
        let topo = topology(2, shards);
        let mut i = 0;
        g.bench_function(format!("{shards}_shards"), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(topo.shard_for(black_box(&keys[i])))
            })
        });
    }
    let tagged = topology(2, 16).with_hash_tags(true);
    let mut i = 0;
    g.bench_function("16_shards_hash_tags", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(tagged.shard_for(black_box(&keys[i])))
        })
    });
    g.finish();

    // MGET of 100 keys over 2 x 16: split by shard, then the parts' answers
    // put back in the caller's order.
    let mut g = c.benchmark_group("mget_100_keys");
    g.throughput(Throughput::Elements(100));
    let topo = topology(2, 16);
    let mut args = vec![Bytes::from_static(b"MGET")];
    args.extend(keys16(100).iter().map(|k| Bytes::copy_from_slice(k)));
    g.bench_function("plan", |b| {
        b.iter_batched(
            || args.clone(),
            |args| black_box(plan(&topo, args).expect("a plan")),
            BatchSize::SmallInput,
        )
    });
    let planned = plan(&topo, args.clone()).expect("a plan");
    let replies: Vec<Frame> = planned
        .parts
        .iter()
        .map(|part| {
            let n = part.commands[0].len() - 1;
            Frame::Array((0..n).map(|i| Frame::bulk(format!("value{i}"))).collect())
        })
        .collect();
    let merge: Merge = planned.merge.clone();
    g.bench_function("merge", |b| {
        b.iter_batched(
            || replies.clone(),
            |replies| black_box(merge.apply(replies).expect("merged")),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("plan_and_merge", |b| {
        b.iter_batched(
            || (args.clone(), replies.clone()),
            |(args, replies)| {
                let planned = plan(&topo, args).expect("a plan");
                black_box(planned.merge.apply(replies).expect("merged"))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // One `GET` or `SET` through a router, as the driver sees it: submit,
    // take the transmit and encode it, hand in the reply, take the event.
    // Here is the router's whole share of a request's CPU.
    let mut g = c.benchmark_group("router_round_trip");
    g.throughput(Throughput::Elements(1));
    let keys = keys16(1024);
    for (name, groups, shards) in [("1_node", 1, 1), ("3x2_nodes", 3, 2)] {
        let mut router = Router::new(topology(groups, shards), Config::default());
        // A fixed instant: the router never reads the clock, and this one
        // is far from any deadline.
        #[allow(clippy::disallowed_methods)]
        let now = std::time::Instant::now();
        let mut out = bytes::BytesMut::with_capacity(4096);
        for (command, reply) in [("GET", Frame::bulk("value")), ("SET", Frame::simple("OK"))] {
            let mut i = 0;
            g.bench_function(format!("{command}_{name}"), |b| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    let mut args = vec![
                        Bytes::from_static(command.as_bytes()),
                        Bytes::copy_from_slice(&keys[i]),
                    ];
                    if command == "SET" {
                        args.push(Bytes::from_static(b"xyz"));
                    }
                    let id = router.submit(now, args).expect("routed");
                    while let Some(tx) = router.poll_transmit() {
                        tx.encode(&mut out);
                        router.handle_reply(now, tx.node, tx.token, reply.clone());
                    }
                    out.clear();
                    let mut answered = false;
                    while let Some(event) = router.poll_event() {
                        if let Event::Completed { id: done, result } = event {
                            answered |= done == id && result.is_ok();
                        }
                    }
                    assert!(answered);
                })
            });
        }
    }
    g.finish();
}

criterion::criterion_group! {
    name = client;
    config = common::config();
    targets = benches
}
criterion::criterion_main!(client);

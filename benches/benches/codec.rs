//! Decode throughput of ember-resp against the redis-protocol crate, on the
//! same bytes.
//!
//! Run with `cargo bench -p ember-benches --bench codec`. Set
//! `EMBER_BENCH_QUICK=1` for a shorter run.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use ember_benches::{big_bulk, bulk_array, set_pipeline};
use resp::{Decoder, RequestDecoder};

mod common;

/// Decodes every frame in `buf` with ember-resp; returns the frame count.
fn ember_all(decoder: &mut Decoder, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some(frame) = decoder.decode(buf).expect("valid input") {
        black_box(frame);
        n += 1;
    }
    n
}

/// Decodes every frame in `buf` with ember-resp into raw frames (one buffer
/// and an index per frame); returns the frame count.
fn ember_raw_all(decoder: &mut Decoder, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some(frame) = decoder.decode_raw(buf).expect("valid input") {
        black_box(frame);
        n += 1;
    }
    n
}

/// redis-protocol's cheapest complete decode: frame ranges, then the frame's
/// bytes split off the buffer, as a connection must do.
fn peer_range_all(buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some((frame, len)) =
        redis_protocol::resp2::decode::decode_range(buf).expect("valid input")
    {
        black_box(frame);
        black_box(buf.split_to(len).freeze());
        n += 1;
    }
    n
}

/// Decodes every frame in `buf` with redis-protocol (RESP2, zero-copy).
fn peer_all(buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some((frame, _, _)) =
        redis_protocol::resp2::decode::decode_bytes_mut(buf).expect("valid input")
    {
        black_box(frame);
        n += 1;
    }
    n
}

/// Feeds `input` in `chunk`-byte pieces to ember-resp, decoding after each.
fn ember_chunked(input: &[u8], chunk: usize) -> usize {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut n = 0;
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        n += ember_all(&mut decoder, &mut buf);
    }
    n
}

/// Feeds `input` in `chunk`-byte pieces to redis-protocol, decoding after each.
fn peer_chunked(input: &[u8], chunk: usize) -> usize {
    let mut buf = BytesMut::new();
    let mut n = 0;
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        n += peer_all(&mut buf);
    }
    n
}

/// One whole-buffer measurement: `decode_all` drains a freshly filled
/// buffer (filled outside the timing) and must find `frames` frames.
fn drain(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    input: &[u8],
    frames: usize,
    mut decode_all: impl FnMut(&mut BytesMut) -> usize,
) {
    group.bench_function(name, |b| {
        b.iter_batched_ref(
            || BytesMut::from(input),
            |buf| assert_eq!(decode_all(buf), frames),
            BatchSize::LargeInput,
        )
    });
}

/// The whole-buffer cases, for every decoder.
fn whole(group: &mut BenchmarkGroup<'_, WallTime>, input: &[u8], frames: usize) {
    group.throughput(Throughput::Bytes(input.len() as u64));
    let mut decoder = Decoder::new();
    drain(group, "ember-resp", input, frames, |buf| {
        ember_all(&mut decoder, buf)
    });
    drain(group, "redis-protocol", input, frames, peer_all);
    drain(group, "ember-resp/raw", input, frames, |buf| {
        ember_raw_all(&mut decoder, buf)
    });
    drain(group, "redis-protocol/range", input, frames, peer_range_all);
}

/// The chunked cases: both the whole and the chunked variant copy the input
/// into the read buffer inside the timing, as a connection's reads would.
fn chunked(group: &mut BenchmarkGroup<'_, WallTime>, input: &[u8], chunk: usize, peer: bool) {
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("ember-resp/whole", |b| {
        b.iter(|| assert_eq!(ember_chunked(input, input.len()), 1))
    });
    group.bench_function("ember-resp/chunked", |b| {
        b.iter(|| assert_eq!(ember_chunked(input, chunk), 1))
    });
    if peer {
        group.bench_function("redis-protocol/whole", |b| {
            b.iter(|| assert_eq!(peer_chunked(input, input.len()), 1))
        });
        group.bench_function("redis-protocol/chunked", |b| {
            b.iter(|| assert_eq!(peer_chunked(input, chunk), 1))
        });
    }
}

fn benches(c: &mut Criterion) {
    let pipeline = set_pipeline(1000);
    let mut g = c.benchmark_group("a_set_pipeline_1000");
    whole(&mut g, &pipeline, 1000);
    // The server's path: the request decoder, straight to argument lists.
    let mut requests = RequestDecoder::new();
    drain(&mut g, "ember-resp/requests", &pipeline, 1000, |buf| {
        let mut n = 0;
        while let Some(request) = requests.decode(buf).expect("valid input") {
            black_box(&request[0]);
            black_box(request);
            n += 1;
        }
        n
    });
    g.finish();

    let mut g = c.benchmark_group("b_bulk_1mib");
    whole(&mut g, &big_bulk(1 << 20), 1);
    g.finish();

    let mut g = c.benchmark_group("c_array_10000_bulks");
    whole(&mut g, &bulk_array(10_000), 1);
    g.finish();

    let mut g = c.benchmark_group("d_bulk_100mib_16kib_pieces");
    g.sample_size(10);
    chunked(&mut g, &big_bulk(100 << 20), 16 << 10, true);
    g.finish();

    // redis-protocol re-parses an incomplete array from its start on every
    // read, so the million-element case is quadratic for it; it is measured
    // against the same bytes in 100,000 elements, and the million only when
    // EMBER_BENCH_SLOW is set.
    let slow = std::env::var_os("EMBER_BENCH_SLOW").is_some();
    let mut g = c.benchmark_group("d_array_1m_4kib_pieces");
    g.sample_size(10);
    chunked(&mut g, &bulk_array(1_000_000), 4 << 10, slow);
    g.finish();

    let mut g = c.benchmark_group("d_array_100k_4kib_pieces");
    g.sample_size(10);
    chunked(&mut g, &bulk_array(100_000), 4 << 10, true);
    g.finish();
}

criterion::criterion_group! {
    name = codec;
    config = common::config();
    targets = benches
}
criterion::criterion_main!(codec);

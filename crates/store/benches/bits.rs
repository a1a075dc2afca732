//! The bit arithmetic of the bitmap commands over a 1 MB string: BITCOUNT's
//! popcount (whole and by a bit range), BITPOS looking for a set and a
//! clear bit that sit at the very end, BITOP over three sources, and
//! BITFIELD's reads and increments.
//!
//! `cargo bench -p ember-store --bench bits`; `EMBER_BENCH_QUICK=1` for a
//! short look.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use ember_store::bits::{self, BitOp, Field, Overflow, Unit};

const MB: usize = 1 << 20;

fn config() -> Criterion {
    let c = Criterion::default();
    if std::env::var_os("EMBER_BENCH_QUICK").is_some() {
        c.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
    } else {
        c
    }
}

/// `n` bytes of a fixed pseudo-random pattern.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn count(c: &mut Criterion) {
    let data = noise(MB, 1);
    let mut g = c.benchmark_group("bits");
    g.throughput(Throughput::Bytes(MB as u64));
    g.bench_function("popcount_1mb", |b| {
        b.iter(|| bits::popcount(black_box(&data)))
    });
    g.bench_function("bitcount_bit_range_1mb", |b| {
        b.iter(|| bits::bitcount(black_box(&data), Some((3, -5, Unit::Bit))))
    });
    // The wanted bit is the last one: the whole string is scanned.
    let mut zeros = vec![0u8; MB];
    zeros[MB - 1] = 1;
    let mut ones = vec![0xffu8; MB];
    ones[MB - 1] = 0xfe;
    g.bench_function("bitpos_1_1mb", |b| {
        b.iter(|| bits::bitpos(black_box(&zeros), true, None, None, Unit::Byte))
    });
    g.bench_function("bitpos_0_1mb", |b| {
        b.iter(|| bits::bitpos(black_box(&ones), false, None, None, Unit::Byte))
    });
    let (x, y, z) = (noise(MB, 2), noise(MB, 3), noise(MB / 2, 4));
    for (name, op) in [("and", BitOp::And), ("or", BitOp::Or), ("xor", BitOp::Xor)] {
        g.bench_function(format!("bitop_{name}_3x1mb"), |b| {
            b.iter(|| bits::bitop(op, black_box(&[&x[..], &y[..], &z[..]])))
        });
    }
    g.bench_function("bitop_not_1mb", |b| {
        b.iter(|| bits::bitop(BitOp::Not, black_box(&[&x[..]])))
    });
    g.finish();

    let mut g = c.benchmark_group("bitfield");
    let fields = 1000u64;
    g.throughput(Throughput::Elements(fields));
    let i13 = Field::parse(b"i13").unwrap_or(Field {
        signed: true,
        bits: 13,
    });
    g.bench_function("get_i13_x1000", |b| {
        b.iter(|| {
            (0..fields)
                .map(|i| bits::get_field(black_box(&data), i * 13, i13))
                .sum::<i64>()
        })
    });
    let mut buf = data.clone();
    g.bench_function("incrby_i13_sat_x1000", |b| {
        b.iter(|| {
            for i in 0..fields {
                let old = bits::get_field(&buf, i * 13, i13);
                if let Some(new) = bits::incr_value(i13, old, 7, Overflow::Sat) {
                    bits::set_field(&mut buf, i * 13, i13, new);
                }
            }
        })
    });
    g.finish();
}

criterion::criterion_group! {
    name = benches;
    config = config();
    targets = count
}
criterion::criterion_main!(benches);

//! Measures the floor every zero-copy decoder pays per bulk string: one
//! `Bytes::slice` (an atomic increment) and one drop (an atomic decrement).

#![allow(clippy::print_stdout)] // an example reports what it measured
use std::hint::black_box;
use std::time::Instant;

use bytes::BytesMut;

fn main() {
    let buf = BytesMut::from(&vec![7u8; 1 << 16][..]).split().freeze();
    let n = 10_000;
    let rounds = 2000;
    let start = Instant::now();
    for _ in 0..rounds {
        let v: Vec<bytes::Bytes> = (0..n).map(|i| buf.slice(i..i + 6)).collect();
        black_box(v);
    }
    let per = start.elapsed().as_nanos() as f64 / (n * rounds) as f64;
    println!("slice + drop: {per:.1} ns per bulk");
}

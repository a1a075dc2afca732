//! Splits the cost of decoding a large frame in pieces into decoding and
//! read-buffer growth: the same 1,000,000-element array fed in 4 KiB pieces
//! into a buffer that grows as it fills, and into one reserved up front.

#![allow(clippy::print_stdout)] // an example reports what it measured

use std::time::Instant;

use bytes::BytesMut;
use resp::Decoder;

fn run(input: &[u8], chunk: usize, mut buf: BytesMut) -> std::time::Duration {
    let start = Instant::now();
    let mut decoder = Decoder::new();
    let mut frames = 0;
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(frame) = decoder.decode(&mut buf).expect("valid input") {
            drop(frame);
            frames += 1;
        }
    }
    assert_eq!(frames, 1);
    start.elapsed()
}

fn main() {
    let input = ember_benches::bulk_array(1_000_000);
    for _ in 0..3 {
        let whole = run(&input, input.len(), BytesMut::new());
        let growing = run(&input, 4096, BytesMut::new());
        let reserved = run(&input, 4096, BytesMut::with_capacity(input.len()));
        println!(
            "whole {whole:?}  pieces, growing buffer {growing:?}  pieces, reserved buffer {reserved:?}"
        );
    }
}

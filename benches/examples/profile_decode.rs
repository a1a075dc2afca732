//! Runs one decode case in a loop, for a profiler: `perf record` or
//! `valgrind --tool=callgrind`. Usage: `profile_decode CASE ITERATIONS`
//! with CASE `pipeline` or `array`.

use std::hint::black_box;

use bytes::BytesMut;
use resp::Decoder;

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "array".into());
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let input = match case.as_str() {
        "pipeline" => ember_benches::set_pipeline(1000),
        _ => ember_benches::bulk_array(10_000),
    };
    let mut decoder = Decoder::new();
    for _ in 0..iterations {
        let mut buf = BytesMut::from(&input[..]);
        while let Some(frame) = decoder.decode(&mut buf).expect("valid input") {
            black_box(frame);
        }
    }
}

//! The frame decoder on arbitrary bytes, whole and split at a fuzzed point:
//! it never panics, an incomplete or failed decode leaves the buffer as it
//! was, a split gives the same frames as the whole, and every decoded frame
//! re-encodes and decodes to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use resp::{Decoder, Frame};

fuzz_target!(|data: &[u8]| {
    let (split, data) = match data.split_first() {
        Some((&s, rest)) => (usize::from(s), rest),
        None => return,
    };
    let whole = decode_all(data, data.len());
    let pieces = decode_all(data, split.max(1));
    assert_eq!(format!("{whole:?}"), format!("{pieces:?}"));
    for frame in whole.0 {
        let mut wire = BytesMut::new();
        frame.encode(&mut wire);
        let again = Decoder::new().decode(&mut wire).expect("own encoding decodes");
        assert_eq!(format!("{again:?}"), format!("{:?}", Some(frame)));
    }
});

/// Feeds `data` in `chunk`-byte pieces; returns the frames and how the input
/// ended (error or leftover bytes).
fn decode_all(data: &[u8], chunk: usize) -> (Vec<Frame>, String) {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.clone();
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => {
                    assert_eq!(buf, before);
                    break;
                }
                Err(e) => {
                    assert_eq!(buf, before);
                    return (frames, format!("error {e:?}"));
                }
            }
        }
    }
    (frames, format!("left {}", buf.len()))
}

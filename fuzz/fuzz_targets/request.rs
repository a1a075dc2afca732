//! The request decoder on arbitrary bytes, whole and split at a fuzzed
//! point, authenticated or not: it never panics, leaves the buffer as it was
//! when it stops, and splitting changes nothing.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use resp::RequestDecoder;

fuzz_target!(|data: &[u8]| {
    let (flags, data) = match data.split_first() {
        Some((&s, rest)) => (s, rest),
        None => return,
    };
    let authenticated = flags & 1 == 0;
    let split = usize::from(flags >> 1).max(1);
    let whole = decode_all(data, data.len(), authenticated);
    let pieces = decode_all(data, split, authenticated);
    assert_eq!(whole, pieces);
});

fn decode_all(data: &[u8], chunk: usize, authenticated: bool) -> String {
    let mut decoder = RequestDecoder::new();
    decoder.set_authenticated(authenticated);
    let mut buf = BytesMut::new();
    let mut out = String::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.clone();
            match decoder.decode(&mut buf) {
                Ok(Some(request)) => out.push_str(&format!("{:?}\n", request.to_vec())),
                Ok(None) => {
                    assert_eq!(buf, before);
                    break;
                }
                Err(e) => {
                    assert_eq!(buf, before);
                    let reply = e.to_redis_error();
                    assert!(!reply.contains(&b'\r') && !reply.contains(&b'\n'));
                    return out + &format!("error {e:?}");
                }
            }
        }
    }
    out
}

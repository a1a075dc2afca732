//! Inputs shared by Ember's benchmarks: the same bytes are fed to Ember and
//! to the peers it is measured against.

use bytes::BytesMut;

/// A pipeline of `n` commands `SET key:N value`, as a client sends them.
pub fn set_pipeline(n: usize) -> Vec<u8> {
    let mut out = BytesMut::new();
    for i in 0..n {
        let key = format!("key:{i}");
        resp::encode_command(&mut out, &[&b"SET"[..], key.as_bytes(), b"value"]);
    }
    out.to_vec()
}

/// One bulk string reply of `len` bytes.
pub fn big_bulk(len: usize) -> Vec<u8> {
    let mut out = format!("${len}\r\n").into_bytes();
    out.extend((0..len).map(|i| b'a' + (i % 26) as u8));
    out.extend_from_slice(b"\r\n");
    out
}

/// A reply array of `n` short bulk strings (`item:N`), like `LRANGE` or
/// `KEYS` return.
pub fn bulk_array(n: usize) -> Vec<u8> {
    let mut out = BytesMut::new();
    resp::write_header(&mut out, b'*', n);
    for i in 0..n {
        resp::write_bulk(&mut out, format!("item:{i}").as_bytes());
    }
    out.to_vec()
}

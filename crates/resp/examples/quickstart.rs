//! The README's tour of ember-resp: `cargo run -p ember-resp --example quickstart`.

use bytes::BytesMut;
use ember_resp::{DecodeError, Decoder, Frame, RequestDecoder, encode_command};

fn main() -> Result<(), DecodeError> {
    // A client writes commands straight from argument slices...
    let mut wire = BytesMut::new();
    encode_command(&mut wire, &["SET", "greeting", "hello"]);

    // ...a server reads them as Redis does, arguments sharing the read buffer...
    let request = RequestDecoder::new().decode(&mut wire.clone())?;
    assert_eq!(
        request.map(|r| r.to_vec()),
        Some(vec!["SET".into(), "greeting".into(), "hello".into()])
    );

    // ...and any RESP2/RESP3 frame decodes, resuming where it stopped when
    // the bytes arrive in pieces (Ok(None) means "need more").
    let mut decoder = Decoder::new();
    let mut partial = wire.split_to(10);
    assert_eq!(decoder.decode(&mut partial)?, None);
    partial.unsplit(wire);
    let frame = decoder.decode(&mut partial)?;
    assert_eq!(frame, Some(Frame::command(["SET", "greeting", "hello"])));
    Ok(())
}

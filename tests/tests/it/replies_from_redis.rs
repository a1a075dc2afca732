//! The frame decoder on what a real `redis-server` 7.0 sends: every RESP3
//! type (through `DEBUG PROTOCOL`), push messages, large replies arriving in
//! many reads. Each reply must decode whole, its raw bytes must be the wire
//! bytes, re-encoding must give the wire bytes back, and our RESP2
//! downgrade of the RESP3 reply must be what Redis sends a RESP2 client.

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use ember_tests::RedisServer;
use resp::{Decoder, Frame, Protocol, RawFrame};

use crate::protocol_vs_redis::read_frame;

/// Sends `args` and reads `n` frames, raw, however the bytes arrive.
fn call_raw(conn: &mut TcpStream, args: &[&str], n: usize) -> Vec<RawFrame> {
    let mut request = BytesMut::new();
    resp::encode_command(&mut request, args);
    conn.write_all(&request).expect("write");
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    while frames.len() < n {
        if let Some(frame) = decoder.decode_raw(&mut buf).expect("a valid reply") {
            frames.push(frame);
            continue;
        }
        let mut chunk = [0u8; 16 * 1024];
        let read = conn.read(&mut chunk).expect("read a reply");
        assert!(read > 0, "connection closed mid-reply");
        buf.extend_from_slice(&chunk[..read]);
    }
    assert!(
        buf.is_empty(),
        "unexpected bytes after the replies: {buf:?}"
    );
    frames
}

fn encoded(frame: &Frame, proto: Protocol) -> Bytes {
    let mut out = BytesMut::new();
    frame.encode_as(proto, &mut out);
    out.freeze()
}

#[test]
fn every_resp3_type_from_redis() {
    let redis = RedisServer::start(&["--enable-debug-command", "yes"]);
    let mut resp3 = redis.connect();
    let hello = call_raw(&mut resp3, &["HELLO", "3"], 1)
        .remove(0)
        .to_frame();
    let Frame::Map(fields) = hello else {
        panic!("HELLO 3 is not a map: {hello:?}")
    };
    assert!(fields.contains(&(Frame::bulk("proto"), Frame::Integer(3))));
    let mut resp2 = redis.connect();

    let types = [
        "string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib",
        "verbatim", "true", "false", "push",
    ];
    for ty in types {
        // Push is followed by an ordinary reply, so it is two frames.
        let n = if ty == "push" { 2 } else { 1 };
        let raws = call_raw(&mut resp3, &["DEBUG", "PROTOCOL", ty], n);
        let frame = raws[0].to_frame();
        let wire = raws[0].as_bytes();
        assert_eq!(
            &encoded(&frame, Protocol::Resp3),
            wire,
            "{ty}: re-encoding changed the bytes"
        );
        let expected_type = match ty {
            "string" => b'$',
            "integer" => b':',
            "double" => b',',
            "bignum" => b'(',
            "null" => b'_',
            "array" => b'*',
            "set" => b'~',
            "map" => b'%',
            "attrib" => b'|',
            "verbatim" => b'=',
            "true" | "false" => b'#',
            _ => b'>',
        };
        assert_eq!(frame.type_byte(), expected_type, "{ty}: {frame:?}");
        if ty == "push" {
            continue; // Redis refuses DEBUG PROTOCOL push to RESP2 clients.
        }
        let resp2_reply = call_raw(&mut resp2, &["DEBUG", "PROTOCOL", ty], 1);
        assert_eq!(
            encoded(&frame, Protocol::Resp2),
            resp2_reply[0].as_bytes(),
            "{ty}: our RESP2 form of {frame:?} differs from Redis's"
        );
    }

    let attrib = call_raw(&mut resp3, &["DEBUG", "PROTOCOL", "attrib"], 1).remove(0);
    let Frame::Attribute { attrs, frame } = attrib.to_frame() else {
        panic!("not an attribute")
    };
    assert_eq!(attrs.len(), 1);
    assert!(matches!(*frame, Frame::Bulk(_)));
    let verbatim = call_raw(&mut resp3, &["DEBUG", "PROTOCOL", "verbatim"], 1).remove(0);
    assert!(matches!(verbatim.to_frame(), Frame::Verbatim { format, .. } if &format == b"txt"));
}

#[test]
fn push_invalidations_from_redis() {
    let redis = RedisServer::start(&[]);
    let mut tracked = redis.connect();
    call_raw(&mut tracked, &["HELLO", "3"], 1);
    let on = call_raw(&mut tracked, &["CLIENT", "TRACKING", "on"], 1);
    assert_eq!(on[0].to_frame(), Frame::simple("OK"));
    call_raw(&mut tracked, &["GET", "watched"], 1);

    let mut writer = redis.connect();
    call_raw(&mut writer, &["SET", "watched", "new"], 1);

    // The invalidation arrives unasked on the tracking connection.
    let push = call_raw(&mut tracked, &["PING"], 2);
    assert_eq!(
        push[0].to_frame(),
        Frame::Push(vec![
            Frame::bulk("invalidate"),
            Frame::Array(vec![Frame::bulk("watched")]),
        ])
    );
    assert_eq!(push[1].to_frame(), Frame::simple("PONG"));
}

#[test]
fn replies_of_many_shapes_and_sizes() {
    let redis = RedisServer::start(&[]);
    let mut conn = redis.connect();
    let big = "x".repeat(3 << 20);
    let mut cmd = |args: &[&str]| {
        let mut request = BytesMut::new();
        resp::encode_command(&mut request, args);
        read_frame(&mut conn, &request)
    };
    assert_eq!(cmd(&["SET", "big", &big]), Frame::simple("OK"));
    // Three mebibytes arrive in many reads; the decoder resumes each time.
    assert_eq!(cmd(&["GET", "big"]), Frame::bulk(Bytes::from(big.clone())));
    assert_eq!(cmd(&["GET", "missing"]), Frame::NullBulk);
    assert_eq!(cmd(&["BLPOP", "nothing", "0.01"]), Frame::NullArray);
    assert_eq!(cmd(&["INCRBY", "n", "-7"]), Frame::Integer(-7));
    let Frame::Error(e) = cmd(&["NOSUCHCOMMAND", "a"]) else {
        panic!("not an error")
    };
    assert!(
        e.starts_with(b"ERR unknown command 'NOSUCHCOMMAND'"),
        "{e:?}"
    );
    let values: Vec<String> = (0..20_000).map(|i| format!("v{i}")).collect();
    let mut push = vec!["RPUSH", "list"];
    push.extend(values.iter().map(String::as_str));
    assert_eq!(cmd(&push), Frame::Integer(20_000));
    let Frame::Array(items) = cmd(&["LRANGE", "list", "0", "-1"]) else {
        panic!("not an array")
    };
    assert_eq!(items.len(), 20_000);
    assert_eq!(items[19_999], Frame::bulk("v19999"));
}

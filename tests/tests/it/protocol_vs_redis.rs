//! The request decoder against a real `redis-server` 7.0: the same bytes
//! must be accepted, split and refused the same way, with the same error
//! texts byte for byte.

use bytes::BytesMut;
use ember_tests::{RedisServer, exchange, is_closed};
use resp::{Decoder, Frame, RequestDecoder};

/// What our decoder makes of `input` as a whole: the error reply Redis
/// would send, if it is an error.
fn our_error(input: &[u8], authenticated: bool) -> Vec<u8> {
    let mut decoder = RequestDecoder::new();
    decoder.set_authenticated(authenticated);
    let mut buf = BytesMut::from(input);
    match decoder.decode(&mut buf) {
        Err(e) => [&b"-"[..], &e.to_redis_error(), b"\r\n"].concat(),
        Ok(other) => panic!("{input:?} decoded as {other:?}, not an error"),
    }
}

fn long(prefix: &[u8], byte: u8, n: usize) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.resize(prefix.len() + n, byte);
    v
}

#[test]
fn protocol_errors_are_redis_errors() {
    let redis = RedisServer::start(&[]);
    let cases: Vec<Vec<u8>> = vec![
        b"*abc\r\n".to_vec(),
        b"*2147483648\r\n".to_vec(),
        b"*01\r\n".to_vec(),
        b"*1\r\n$-1\r\n".to_vec(),
        b"*1\r\n$abc\r\n".to_vec(),
        b"*1\r\n$+1\r\n".to_vec(),
        b"*1\r\n$536870913\r\n".to_vec(),
        b"*1\r\nfoo\r\n".to_vec(),
        b"*1\r\n\r0\r".to_vec(),
        b"*1\r\n\n\r\n".to_vec(),
        b"*1\r\n\xff\r\n".to_vec(),
        b"*2\r\n$1\r\na\r\n*1\r\n".to_vec(),
        b"SET k \"a\r\n".to_vec(),
        b"SET k 'a\r\n".to_vec(),
        b"ECHO \"a\"b\r\n".to_vec(),
        long(b"", b'a', 70_000),
        long(b"*", b'1', 70_000),
        long(b"*1\r\n$", b'1', 70_000),
    ];
    for input in cases {
        let mut conn = redis.connect();
        let want = our_error(&input, true);
        let got = exchange(&mut conn, &input, want.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "input {:?}",
            String::from_utf8_lossy(&input[..input.len().min(40)])
        );
        assert!(
            is_closed(&mut conn),
            "redis kept the connection open after {input:?}"
        );
    }
}

#[test]
fn unauthenticated_limits_are_redis_limits() {
    let redis = RedisServer::start(&["--requirepass", "secret"]);
    let cases: &[&[u8]] = &[
        b"*11\r\n",
        b"*1\r\n$16385\r\n",
        b"*2\r\n$4\r\nAUTH\r\n$100000\r\n",
    ];
    for input in cases {
        let mut conn = redis.connect();
        let want = our_error(input, false);
        let got = exchange(&mut conn, input, want.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }
    // At the limits exactly, Redis reads the request and answers it.
    let mut conn = redis.connect();
    let mut ten = BytesMut::new();
    resp::encode_command(&mut ten, &[&b"AUTH"[..], b"secret"]);
    let got = exchange(&mut conn, &ten, 5);
    assert_eq!(got, b"+OK\r\n");
}

#[test]
fn lenient_requests_are_accepted_like_redis() {
    let redis = RedisServer::start(&[]);
    // Redis skips the byte after each header's CR and the two bytes after
    // a payload without looking at them; an inline line may end in LF.
    let cases: &[&[u8]] = &[
        b"*1\rX$4\rXPINGXX",
        b"*1\r\n$4\r\nPING\r\n",
        b"PING\n",
        b"  PING  \r\n",
        b"*0\r\n*-1\r\n\r\nPING\r\n",
    ];
    for input in cases {
        let mut conn = redis.connect();
        let got = exchange(&mut conn, input, 7);
        assert_eq!(got, b"+PONG\r\n", "{input:?}");
        let mut decoder = RequestDecoder::new();
        let mut buf = BytesMut::from(*input);
        let mut commands = Vec::new();
        while let Some(request) = decoder.decode(&mut buf).unwrap() {
            if !request.is_empty() {
                commands.push(request.to_vec());
            }
        }
        assert_eq!(
            commands,
            [vec![bytes::Bytes::from_static(b"PING")]],
            "{input:?}"
        );
    }
}

/// Inline lines are split by Redis and by `split_args` into the same
/// arguments: RPUSH them into a list, read the list back.
#[test]
fn inline_splitting_matches_redis() {
    let redis = RedisServer::start(&[]);
    let lines: &[&[u8]] = &[
        b"a b c",
        b"\"a b\" 'c d'",
        b"\"\\x41\\x4A\\x4a\" \"\\x4\" \"\\xzz\"",
        b"\"\\n\\r\\t\\b\\a\\\\\\\"\\q\"",
        b"'it\\'s' 'a\\nb' '\\x41'",
        b"x\"y z\" \"\" ''",
        b"a\x0bb \x0c c\td",
        b"\xff\xfe \"\xc3\xa9\"",
    ];
    let mut conn = redis.connect();
    for (i, line) in lines.iter().enumerate() {
        let key = format!("list:{i}");
        let mut request = format!("RPUSH {key} ").into_bytes();
        request.extend_from_slice(line);
        request.extend_from_slice(b"\r\n");
        let want = resp::split_args(line).expect("balanced");
        let reply = exchange(&mut conn, &request, format!(":{}\r\n", want.len()).len());
        assert_eq!(reply, format!(":{}\r\n", want.len()).as_bytes(), "{line:?}");

        let mut range = BytesMut::new();
        resp::encode_command(&mut range, &[b"LRANGE", key.as_bytes(), b"0", b"-1"]);
        let frame = read_frame(&mut conn, &range);
        assert_eq!(
            frame,
            Frame::Array(want.into_iter().map(Frame::Bulk).collect()),
            "{line:?}"
        );
    }
}

/// Sends `request` and reads exactly one frame with our decoder, however
/// the bytes arrive.
pub(crate) fn read_frame(conn: &mut std::net::TcpStream, request: &[u8]) -> Frame {
    use std::io::{Read, Write};
    conn.write_all(request).expect("write");
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    loop {
        if let Some(frame) = decoder.decode(&mut buf).expect("a valid reply") {
            assert!(buf.is_empty(), "unexpected bytes after the reply: {buf:?}");
            return frame;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = conn.read(&mut chunk).expect("read a reply");
        assert!(n > 0, "connection closed mid-reply");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Everything a server sends back to `input`, written at once, up to the
/// connection's end (`input` ends with a protocol error, which closes it).
fn replies_to(stream: &mut std::net::TcpStream, input: &[u8]) -> Vec<u8> {
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("set a read timeout");
    exchange(stream, input, usize::MAX)
}

/// Ember decodes a pipelined batch ahead of running it (to prefetch its
/// keys); what comes back must be what Redis sends for the same bytes:
/// database switches, transactions, blocking-free list moves, a request
/// Redis's unauthenticated limits refuse once AUTH in the same batch has
/// passed, and a protocol error at the end of it all.
#[test]
fn pipelined_batches_read_ahead_answer_like_redis() {
    let mut plain = BytesMut::new();
    let cmds: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["GET", "a"],
        &["MGET", "a", "b", "c", "a"],
        &["SELECT", "1"],
        &["GET", "a"],
        &["SET", "a", "2"],
        &["SELECT", "0"],
        &["GET", "a"],
        &["MULTI"],
        &["INCR", "a"],
        &["GET", "a"],
        &["EXEC"],
        &["RPUSH", "l", "x", "y", "z"],
        &["LMOVE", "l", "m", "LEFT", "RIGHT"],
        &["LRANGE", "m", "0", "-1"],
        &["WATCH", "a"],
        &["SET", "a", "3"],
        &["MULTI"],
        &["GET", "a"],
        &["EXEC"],
        &["DEL", "a", "b", "l", "m"],
        &["EXISTS", "a", "l"],
        &["GET"],
        &["NOSUCHCOMMAND", "a"],
    ];
    for _ in 0..3 {
        for cmd in cmds {
            resp::encode_command(&mut plain, cmd);
        }
    }
    for i in 0..200 {
        let k = format!("k{i}");
        resp::encode_command(&mut plain, &["SET", &k, &k]);
        resp::encode_command(&mut plain, &["GET", &k]);
    }
    plain.extend_from_slice(b"*1\r\n$x\r\n");

    let mut guarded = BytesMut::new();
    resp::encode_command(&mut guarded, &["GET", "a"]);
    resp::encode_command(&mut guarded, &["AUTH", "secret"]);
    // Eleven arguments: more than Redis reads before AUTH.
    resp::encode_command(
        &mut guarded,
        &["MSET", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5"],
    );
    resp::encode_command(&mut guarded, &["MGET", "a", "b", "c", "d", "e"]);
    guarded.extend_from_slice(b"*1\r\n$x\r\n");

    for (input, args) in [(&plain, &[][..]), (&guarded, &["requirepass secret"][..])] {
        let redis_args: Vec<String> = args
            .iter()
            .flat_map(|l| {
                let (k, v) = l.split_once(' ').expect("a configuration line");
                [format!("--{k}"), v.to_string()]
            })
            .collect();
        let redis_args: Vec<&str> = redis_args.iter().map(String::as_str).collect();
        let redis = RedisServer::start(&redis_args);
        let ember = ember_tests::EmberServer::start(args);
        let want = replies_to(&mut redis.connect(), input);
        let got = replies_to(&mut ember.connect(), input);
        assert!(want.len() > 100, "{}", String::from_utf8_lossy(&want));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }
}

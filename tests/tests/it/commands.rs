//! The command table against Redis's own: for every command Ember knows,
//! COMMAND INFO's name, arity, flags and key positions are Redis 7.0's, so
//! clients and proxies that route by COMMAND (redis-py's cluster client,
//! Envoy) see the same commands; and what decides whether a command is
//! served while loading or stale, or refused over `maxmemory`, is those
//! flags.

use bytes::{Bytes, BytesMut};
use ember_tests::{EmberServer, RedisServer, call};
use resp::Frame;

fn frame(bytes: Bytes) -> Frame {
    let mut buf = BytesMut::from(&bytes[..]);
    resp::decode(&mut buf)
        .expect("a valid reply")
        .expect("a whole reply")
}

/// COMMAND INFO's first six fields for `name`: name, arity, flags, first
/// key, last key, step.
fn info(conn: &mut std::net::TcpStream, name: &[u8]) -> Option<Vec<Frame>> {
    let Frame::Array(mut entries) = frame(call(conn, &[b"COMMAND", b"INFO", name])) else {
        panic!("COMMAND INFO answers an array");
    };
    match entries.pop()? {
        Frame::Array(mut fields) => {
            fields.truncate(6);
            Some(fields)
        }
        _ => None,
    }
}

#[test]
fn every_command_is_described_as_redis_describes_it() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let (mut r, mut e) = (redis.connect(), ember.connect());
    let Frame::Array(names) = frame(call(&mut e, &[b"COMMAND", b"LIST"])) else {
        panic!("COMMAND LIST answers an array");
    };
    assert!(names.len() > 150, "{} commands", names.len());
    let mut differ = Vec::new();
    for name in names {
        let Frame::Bulk(name) = name else {
            panic!("names are bulk strings");
        };
        let ours = info(&mut e, &name).expect("Ember describes what it lists");
        // Every command Ember has, Redis 7.0 has.
        let theirs = info(&mut r, &name).expect("a command of Redis's");
        if ours != theirs {
            differ.push(format!(
                "{}: {ours:?} != {theirs:?}",
                String::from_utf8_lossy(&name)
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

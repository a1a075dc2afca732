//! The value encodings alone: strings, quicklist nodes, DUMP payloads.
//! Whole files are the server's to test (`crates/server/src/rdb/tests.rs`).

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::list::List;
use crate::value::{Form, Str};

fn string(s: impl Into<Bytes>) -> Value {
    Value::Str(Str::new(s.into(), Form::Auto))
}

fn list(items: impl IntoIterator<Item = Vec<u8>>) -> Value {
    let mut l = List::new();
    items.into_iter().for_each(|i| l.push_back(Bytes::from(i)));
    Value::List(Box::new(l))
}

/// A comparable form of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum V {
    S(Vec<u8>),
    L(Vec<Vec<u8>>),
    /// A set's members and its encoding.
    Set(std::collections::BTreeSet<Vec<u8>>, &'static str),
    /// A hash: its encoding and its pairs, sorted.
    H(&'static str, Vec<(Vec<u8>, Vec<u8>)>),
    /// A sorted set: its encoding and its pairs in order (scores as bits).
    Z(&'static str, Vec<(Vec<u8>, u64)>),
}

fn v(value: &Value) -> V {
    match value {
        Value::Str(s) => V::S(s.bytes().to_vec()),
        Value::List(l) => V::L(l.iter().map(|b| b.to_vec()).collect()),
        Value::Set(s) => V::Set(
            s.iter().map(|e| e.to_bytes().to_vec()).collect(),
            s.encoding(),
        ),
        Value::Hash(h) => {
            let mut pairs: Vec<_> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            pairs.sort();
            V::H(h.encoding(), pairs)
        }
        Value::ZSet(z) => V::Z(
            z.encoding(),
            z.iter().map(|(m, s)| (m.to_vec(), s.to_bits())).collect(),
        ),
    }
}

fn hash<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Value {
    let mut h = crate::hash::Hash::new();
    let limits = crate::hash::Limits::default();
    for (f, v) in pairs {
        h.set(f, v, &limits);
    }
    Value::Hash(h)
}

/// A payload around `body` (a type byte and a value), with its trailer.
fn payload(body: &[u8]) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&10u16.to_le_bytes());
    let crc = crc::crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

/// The bytes of one string as the writer encodes it.
fn encoded(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out, 1 << 30);
    w.string(s).unwrap();
    w.finish().unwrap();
    out.truncate(out.len() - 8);
    out
}

#[test]
fn strings_use_redis_encodings() {
    assert_eq!(encoded(b"0"), [0xC0, 0]);
    assert_eq!(encoded(b"-128"), [0xC0, 0x80]);
    assert_eq!(encoded(b"127"), [0xC0, 0x7F]);
    assert_eq!(encoded(b"128"), [0xC1, 0x80, 0x00]);
    assert_eq!(encoded(b"-32768"), [0xC1, 0x00, 0x80]);
    assert_eq!(encoded(b"32768"), [0xC2, 0x00, 0x80, 0, 0]);
    assert_eq!(encoded(b"2147483647"), [0xC2, 0xFF, 0xFF, 0xFF, 0x7F]);
    // Past 32 bits, or not canonical: the text.
    assert_eq!(encoded(b"2147483648"), b"\x0a2147483648");
    assert_eq!(encoded(b"-0"), b"\x02-0");
    assert_eq!(encoded(b"01"), b"\x0201");
    assert_eq!(encoded(b"+1"), b"\x02+1");
    assert_eq!(encoded(b""), [0]);
    // 20 bytes are never compressed; 21 are if it saves 4 bytes.
    assert_eq!(encoded(&[b'a'; 20])[0], 20);
    assert_eq!(encoded(&[b'a'; 21])[0], 0xC3);
    let mut rng = crate::Rng::new(9);
    let noise: Vec<u8> = (0..100).map(|_| rng.next_u64() as u8).collect();
    assert_eq!(&encoded(&noise)[..2], &[0x40, 100]);
    // Lengths: 6, 14 and 32 bits.
    let noise: Vec<u8> = (0..20_000).map(|_| rng.next_u64() as u8).collect();
    assert_eq!(&encoded(&noise[..64])[..2], &[0x40, 64]);
    assert_eq!(&encoded(&noise)[..5], &[0x80, 0, 0, 0x4E, 0x20]);
}

#[test]
fn lists_split_like_redis_quicklists() {
    let elements: Vec<Bytes> = (0..3000)
        .map(|i| Bytes::from(format!("value-{i:05}")))
        .collect();
    let nodes = split(elements.iter().map(|e| &e[..]), 1 << 30);
    let mut total = 0;
    let mut previous: Option<usize> = None;
    for node in &nodes {
        let Node::Packed(lp) = node else {
            panic!("no plain nodes below the threshold");
        };
        let items = listpack::decode(lp).unwrap();
        assert!(lp.len() <= 8192);
        // The node before was closed because this node's first element
        // did not fit: 8 bytes of slack per element, as Redis allows.
        if let Some(prev) = previous {
            assert!(prev + 11 + 8 > 8192, "node of {prev} bytes closed early");
        }
        previous = Some(lp.len());
        total += items.len();
    }
    assert_eq!(total, 3000);
    assert!(nodes.len() > 3);
    // An element longer than a node gets a node of its own.
    let big = Bytes::from(vec![b'b'; 9000]);
    let small = Bytes::from_static(b"s");
    let nodes = split([&small[..], &big, &small].into_iter(), 1 << 30);
    assert_eq!(nodes.len(), 3);
    let nodes = split([&small[..], &big, &small].into_iter(), 5000);
    assert!(matches!(nodes[1], Node::Plain(b) if b.len() == 9000));
}

#[test]
fn strict_integers_match_string2ll() {
    for (s, want) in [
        (&b"0"[..], Some(0)),
        (b"-1", Some(-1)),
        (b"9223372036854775807", Some(i64::MAX)),
        (b"-9223372036854775808", Some(i64::MIN)),
        (b"9223372036854775808", None),
        (b"-0", None),
        (b"00", None),
        (b"01", None),
        (b"+1", None),
        (b" 1", None),
        (b"1 ", None),
        (b"-", None),
        (b"", None),
        (b"1a", None),
    ] {
        assert_eq!(strict_i64(s), want, "{:?}", String::from_utf8_lossy(s));
    }
}

#[test]
fn dump_payloads_round_trip_and_check_their_trailer() {
    let values = [
        string("bar"),
        string("12345"),
        string(vec![b'z'; 100]),
        list((0..3000).map(|i| format!("e{i}").into_bytes())),
    ];
    for value in &values {
        let payload = dump(value);
        let restored = restore(&payload).expect("a valid payload");
        assert_eq!(v(&restored), v(value));
        // Redis's layout: the value, version 10, then the CRC64 of both.
        let n = payload.len();
        assert_eq!(&payload[n - 10..n - 8], &[10, 0]);
        assert_eq!(
            crc::crc64(&payload[..n - 8]).to_le_bytes(),
            payload[n - 8..]
        );
        for cut in 0..n {
            assert!(restore(&payload[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = payload.clone();
        bad[0] ^= 0x40;
        assert_eq!(restore(&bad).err(), Some(PayloadError::Trailer));
    }
    // "bar" encodes exactly as Redis 7.0 dumps it.
    assert_eq!(
        dump(&values[0]),
        b"\x00\x03bar\x0a\x00\xe6\xbeI`\xeef\xfd\x17"
    );
}

fn set(members: impl IntoIterator<Item = String>, max_intset: usize) -> Value {
    let mut s = crate::Set::new();
    for m in members {
        s.add(m.as_bytes(), max_intset);
    }
    Value::Set(s)
}

#[test]
fn sets_dump_as_redis_7_0_does() {
    // Bytes from Redis 7.0.15: SADD s 1 -2 300, DUMP s (an intset), and
    // SADD h a b, DUMP h (a hashtable; Redis's order, b then a).
    let intset = set(["1", "-2", "300"].map(String::from), 512);
    assert_eq!(
        dump(&intset),
        b"\x0b\x0e\x02\x00\x00\x00\x03\x00\x00\x00\xfe\xff\x01\x00,\x01\n\x00[\n\xa8b\xf7\x94`\n"
    );
    let redis_hashtable = b"\x02\x02\x01b\x01a\n\x00u\xd9\x9d\x83^\xf8_e";
    let restored = restore(redis_hashtable).expect("Redis's payload");
    assert_eq!(v(&restored), v(&set(["a", "b"].map(String::from), 512)));
    // 1..=100: a 208-byte blob neither compressor shrinks, as one string.
    let hundred = set((1..=100).map(|i| i.to_string()), 512);
    let payload = dump(&hundred);
    assert_eq!(&payload[..3], b"\x0b\x40\xd0");
    assert_eq!(&payload[3..11], &[2, 0, 0, 0, 100, 0, 0, 0]);
}

#[test]
fn sets_round_trip_in_both_encodings() {
    let values = [
        set(["1", "-2", "300"].map(String::from), 512),
        set((0..600).map(|i| (i * 1000).to_string()), 512),
        set((0..50).map(|i| format!("member:{i}")), 512),
        set([i64::MIN.to_string(), "7".into()], 512),
        set([String::new(), "x".repeat(100)], 512),
    ];
    for value in &values {
        let payload = dump(value);
        let restored = restore(&payload).expect("a valid payload");
        assert_eq!(v(&restored), v(value));
        for cut in 0..payload.len() {
            assert!(restore(&payload[..cut]).is_err(), "cut at {cut}");
        }
    }
    // A hashtable of integers within the default limit loads as Redis
    // loads it: an intset (a server with another limit refits it).
    let small = set(["1", "2"].map(String::from), 0);
    assert_eq!(dump(&small)[0], kind::SET);
    let Value::Set(small) = restore(&dump(&small)).unwrap() else {
        panic!("a set");
    };
    assert_eq!(small.encoding(), "intset");
}

#[test]
fn corrupt_sets_are_refused() {
    let payload = |body: &[u8]| {
        let mut p = body.to_vec();
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc::crc64(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    };
    // A member twice, as a list of members and as an intset.
    assert_eq!(
        restore(&payload(b"\x02\x02\x01a\x01a")).err(),
        Some(PayloadError::BadFormat)
    );
    assert_eq!(
        restore(&payload(b"\x02\x02\xc0\x01\x01\x31")).err(),
        Some(PayloadError::BadFormat)
    );
    let dup_intset = b"\x0b\x0c\x02\x00\x00\x00\x02\x00\x00\x00\x01\x00\x01\x00";
    assert_eq!(
        restore(&payload(dup_intset)).err(),
        Some(PayloadError::BadFormat)
    );
    // Empty: Redis refuses an empty set in a payload.
    assert_eq!(
        restore(&payload(b"\x02\x00")).err(),
        Some(PayloadError::BadFormat)
    );
}

#[test]
fn hashes_dump_as_redis_and_load_every_encoding() {
    // HSET h f v num 123 big -70000, dumped by Redis 7.0.
    let small = hash([
        (&b"f"[..], &b"v"[..]),
        (b"num", b"123"),
        (b"big", b"-70000"),
    ]);
    assert_eq!(
        dump(&small),
        b"\x10\x1e\x1e\x00\x00\x00\x06\x00\x81f\x02\x81v\x02\x83num\x04{\x01\x83big\x04\xf2\x90\xee\xfe\x04\xff\n\x00\x08\xf9D\xc1\xd8)\x0f\x91"
    );
    let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..600)
        .map(|i| {
            (
                format!("field:{i}").into_bytes(),
                format!("{i}").into_bytes(),
            )
        })
        .collect();
    let big = hash(fields.iter().map(|(f, v)| (&f[..], &v[..])));
    let long = hash([(&b"f"[..], &[b'x'; 100][..])]);
    for value in [&small, &big, &long] {
        let payload = dump(value);
        let restored = restore(&payload).expect("a valid payload");
        assert_eq!(v(&restored), v(value));
        for cut in 0..payload.len().min(300) {
            assert!(restore(&payload[..cut]).is_err(), "cut at {cut}");
        }
    }
    assert_eq!(dump(&big)[0], kind::HASH);
    assert_eq!(dump(&long)[0], kind::HASH);
    // The plain type with few short pairs loads packed, as Redis does.
    let plain = payload(b"\x04\x02\x01a\x011\x01b\xc0\x02");
    let want = V::H(
        "listpack",
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
        ],
    );
    assert_eq!(v(&restore(&plain).unwrap()), want);
    // A ziplist of the same pairs (Redis 6), and a zipmap (Redis 2.4).
    let zl = ziplist::build(&[b"\x01a", b"\x011", b"\x01b", b"\x012"]);
    let mut body = vec![kind::HASH_ZIPLIST, zl.len() as u8];
    body.extend_from_slice(&zl);
    assert_eq!(v(&restore(&payload(&body)).unwrap()), want);
    let zm = b"\x02\x01a\x01\x001\x01b\x01\x002\xff";
    let mut body = vec![kind::HASH_ZIPMAP, zm.len() as u8];
    body.extend_from_slice(zm);
    assert_eq!(v(&restore(&payload(&body)).unwrap()), want);
    // Duplicate fields, in every encoding, are bad data.
    assert_eq!(
        restore(&payload(b"\x04\x02\x01a\x011\x01a\x012")).err(),
        Some(PayloadError::BadFormat)
    );
    let zl = ziplist::build(&[b"\x01a", b"\x011", b"\x01a", b"\x012"]);
    let mut body = vec![kind::HASH_ZIPLIST, zl.len() as u8];
    body.extend_from_slice(&zl);
    assert_eq!(
        restore(&payload(&body)).err(),
        Some(PayloadError::BadFormat)
    );
    let mut lp = listpack::Builder::new();
    for e in [b"a", b"1", b"a", b"2"] {
        lp.push(e);
    }
    let lp = lp.finish();
    let mut body = vec![kind::HASH_LISTPACK, lp.len() as u8];
    body.extend_from_slice(&lp);
    assert_eq!(
        restore(&payload(&body)).err(),
        Some(PayloadError::BadFormat)
    );
    // An empty hash is bad data for RESTORE, as in Redis.
    assert_eq!(
        restore(&payload(b"\x04\x00")).err(),
        Some(PayloadError::BadFormat)
    );
}

#[test]
fn hash_loads_follow_the_limits() {
    let mut lp = listpack::Builder::new();
    lp.push(b"f");
    lp.push(&[b'x'; 100]);
    let lp = lp.finish();
    // A length of 14 bits.
    let mut body = vec![kind::HASH_LISTPACK, 0x40, lp.len() as u8];
    body.extend_from_slice(&lp);
    // A listpack keeps a long value packed (Redis checks only its count).
    let mut r = Reader::new(&body);
    let ty = r.byte().unwrap();
    let loaded = r.object(ty, b"k", 0).unwrap().unwrap();
    assert_eq!(loaded.encoding(), "listpack");
    // More fields than the limit: a table.
    let mut r = Reader::new(&body);
    r.set_limits(Limits {
        hash: crate::hash::Limits {
            entries: 0,
            value: 64,
        },
        ..Default::default()
    });
    let ty = r.byte().unwrap();
    assert_eq!(
        r.object(ty, b"k", 0).unwrap().unwrap().encoding(),
        "hashtable"
    );
}

proptest! {
    /// Hash payloads of any contents, whole or cut, valid or not, never
    /// make restoring panic: the plain type's pairs, and a zipmap,
    /// ziplist or listpack blob.
    #[test]
    fn hash_payloads_never_panic(
        ty in prop::sample::select(vec![kind::HASH, kind::HASH_ZIPMAP, kind::HASH_ZIPLIST, kind::HASH_LISTPACK]),
        pairs in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..3), proptest::collection::vec(any::<u8>(), 0..70)), 0..20),
        cut in any::<usize>(),
        flip in any::<(usize, u8)>(),
    ) {
        let mut body = vec![ty];
        match ty {
            kind::HASH => {
                body.push(pairs.len() as u8);
                for (f, v) in &pairs {
                    for s in [f, v] {
                        body.push(s.len() as u8);
                        body.extend_from_slice(s);
                    }
                }
            }
            _ => {
                let mut lp = listpack::Builder::new();
                for (f, v) in &pairs {
                    lp.push(f);
                    lp.push(v);
                }
                let mut blob = lp.finish();
                if ty != kind::HASH_LISTPACK && !blob.is_empty() {
                    // Not a zipmap or a ziplist: bytes that claim to be.
                    let at = flip.0 % blob.len();
                    blob[at] ^= flip.1;
                }
                body.push(0x80);
                body.extend_from_slice(&(blob.len() as u32).to_be_bytes());
                body.extend_from_slice(&blob);
            }
        }
        let _ = restore(&payload(&body));
        let _ = restore(&payload(&body[..cut % (body.len() + 1)]));
        let mut flipped = body.clone();
        let at = flip.0 % flipped.len();
        flipped[at] ^= flip.1;
        let _ = restore(&payload(&flipped));
    }

    /// Whatever the bytes, with a valid trailer or not, restoring never
    /// panics.
    #[test]
    fn restore_never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = restore(&body);
        let mut p = body.clone();
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc::crc64(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        let _ = restore(&p);
    }
}

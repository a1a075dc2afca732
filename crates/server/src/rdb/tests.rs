//! Round trips, hand-made files of every supported encoding, and corrupt
//! input.

use bytes::Bytes;
use proptest::prelude::*;

use store::rdb::{crc, listpack, ziplist};
use store::value::{Form, Str, Value};

use super::write::write_with;
use super::*;
use crate::db::{Entry, Keyspace};

/// A comparable form of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum V {
    S(Vec<u8>),
    L(Vec<Vec<u8>>),
    /// A set's members, sorted, and its encoding.
    Set(Vec<Vec<u8>>, &'static str),
    /// A hash: its encoding and its pairs, sorted.
    H(&'static str, Vec<(Vec<u8>, Vec<u8>)>),
    /// A sorted set: its encoding and its pairs in order (scores as bits).
    Z(&'static str, Vec<(Vec<u8>, u64)>),
}

fn v(value: &Value) -> V {
    match value {
        Value::Str(s) => V::S(s.bytes().to_vec()),
        Value::List(l) => V::L(l.iter().map(|b| b.to_vec()).collect()),
        Value::Set(s) => {
            let mut members: Vec<Vec<u8>> = s.iter().map(|e| e.to_bytes().to_vec()).collect();
            members.sort();
            V::Set(members, s.encoding())
        }
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

/// Every key of `dbs`, sorted, in comparable form.
fn flat(dbs: &[(usize, Vec<(Bytes, Entry)>)]) -> Vec<(usize, Vec<u8>, V, Option<i64>)> {
    let mut out: Vec<_> = dbs
        .iter()
        .flat_map(|(db, keys)| {
            keys.iter()
                .map(move |(k, e)| (*db, k.to_vec(), v(&e.value), e.expire_at()))
        })
        .collect();
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

fn string(s: impl Into<Bytes>, expire_at: Option<i64>) -> Entry {
    Entry::with(Value::Str(Str::new(s.into(), Form::Auto)), expire_at)
}

fn list(items: impl IntoIterator<Item = Vec<u8>>, expire_at: Option<i64>) -> Entry {
    Entry::with(
        Value::List(Box::new(items.into_iter().map(Bytes::from).fold(
            store::list::List::new(),
            |mut l, i| {
                l.push_back(i);
                l
            },
        ))),
        expire_at,
    )
}

fn set<M: AsRef<[u8]>>(members: impl IntoIterator<Item = M>, expire_at: Option<i64>) -> Entry {
    let mut s = store::Set::new();
    for m in members {
        s.add(m.as_ref(), store::set::MAX_INTSET_ENTRIES);
    }
    Entry::with(Value::Set(s), expire_at)
}

/// A snapshot with every kind of string and list, and sets in both
/// encodings, in four databases.
fn sample() -> Snapshot {
    let mut rng = store::Rng::new(42);
    let noise: Vec<u8> = (0..5000).map(|_| rng.next_u64() as u8).collect();
    let db0 = vec![
        (Bytes::from_static(b"int8"), string("-12", None)),
        (Bytes::from_static(b"int16"), string("30000", None)),
        (
            Bytes::from_static(b"int32"),
            string("-2000000000", Some(4_000_000_000_000)),
        ),
        (
            Bytes::from_static(b"int64"),
            string("9223372036854775807", None),
        ),
        (Bytes::from_static(b"not-int"), string("007", None)),
        (Bytes::from_static(b"minus-zero"), string("-0", None)),
        (Bytes::from_static(b"empty"), string("", None)),
        (Bytes::from_static(b"short"), string("hello", None)),
        (
            Bytes::from_static(b"compressible"),
            string(vec![b'z'; 10_000], None),
        ),
        (Bytes::from_static(b"noise"), string(noise.clone(), Some(1))),
        (
            Bytes::from_static(b"binary\x00\xff"),
            string(&b"\x00\x01\xfe\xff"[..], None),
        ),
        (Bytes::from(vec![b'k'; 300]), string("long key", None)),
        (Bytes::from_static(b"123"), string("an integer key", None)),
    ];
    let db3 = vec![
        (
            Bytes::from_static(b"small"),
            list(
                [
                    b"a".to_vec(),
                    b"1".to_vec(),
                    b"-70000".to_vec(),
                    b"".to_vec(),
                ],
                Some(5_000_000_000_000),
            ),
        ),
        (
            Bytes::from_static(b"many-nodes"),
            list(
                (0..20_000).map(|i| format!("element-{i}").into_bytes()),
                None,
            ),
        ),
        (
            Bytes::from_static(b"ints"),
            list(
                (0..5_000i64).map(|i| (i * i * 997 - 3_000_000).to_string().into_bytes()),
                None,
            ),
        ),
        (
            Bytes::from_static(b"huge-elements"),
            list(
                [
                    b"x".to_vec(),
                    vec![b'h'; 100_000],
                    noise.clone(),
                    b"y".to_vec(),
                    vec![b'q'; 8_200],
                ],
                None,
            ),
        ),
    ];
    let db15 = vec![(Bytes::from_static(b"k"), string("in the last db", Some(-5)))];
    let db5 = vec![
        (
            Bytes::from_static(b"intset"),
            set(["3", "-1", "70000"], Some(7)),
        ),
        (
            Bytes::from_static(b"hashtable"),
            set(["a", "1", "a longer member than fits a slot"], None),
        ),
        (
            Bytes::from_static(b"many-ints"),
            set((0..2000).map(|i| (i * 7).to_string()), None),
        ),
    ];
    let mut dbs = vec![Vec::new(); 16];
    dbs[0] = db0;
    dbs[3] = db3;
    dbs[5] = db5;
    dbs[15] = db15;
    Snapshot { dbs }
}

fn to_loaded_form(s: &Snapshot) -> Vec<(usize, Vec<(Bytes, Entry)>)> {
    s.dbs
        .iter()
        .enumerate()
        .filter(|(_, keys)| !keys.is_empty())
        .map(|(i, keys)| (i, keys.clone()))
        .collect()
}

fn encode(s: &Snapshot, aux: &Aux) -> Vec<u8> {
    let mut out = Vec::new();
    write(s, aux, &mut out).expect("write to memory");
    out
}

#[test]
fn round_trip_strings_and_lists_across_databases() {
    let snapshot = sample();
    let aux = Aux {
        repl_id: Some("a".repeat(40)),
        repl_offset: Some(12345),
        repl_stream_db: Some(3),
        aof_base: false,
        functions: vec![Bytes::from_static(
            b"#!lua name=lib\nredis.register_function('f', function() return 1 end)",
        )],
    };
    let file = encode(&snapshot, &aux);
    assert_eq!(&file[..9], b"REDIS0010");
    let loaded = read(&file).expect("reads back");
    assert_eq!(flat(&loaded.dbs), flat(&to_loaded_form(&snapshot)));
    assert_eq!(loaded.repl_id.as_deref(), Some(&*"a".repeat(40)));
    assert_eq!(loaded.repl_offset, Some(12345));
    assert_eq!(loaded.functions.len(), 1);
    assert_eq!(&loaded.functions[0][..], &aux.functions[0][..]);
    let aux_keys: Vec<&[u8]> = loaded.aux.iter().map(|(k, _)| &k[..]).collect();
    assert_eq!(
        aux_keys,
        [
            &b"redis-ver"[..],
            b"redis-bits",
            b"ctime",
            b"used-mem",
            b"repl-stream-db",
            b"repl-id",
            b"repl-offset",
            b"aof-base"
        ]
    );
    assert_eq!(&loaded.aux[0].1[..], b"7.0.15");
    // No repl fields when there is no replication.
    let loaded = read(&encode(&snapshot, &Aux::default())).unwrap();
    assert_eq!(loaded.aux.len(), 5);
    assert_eq!(loaded.repl_id, None);
    // An empty keyspace is a valid file too.
    let empty = encode(&Snapshot::default(), &Aux::default());
    assert!(read(&empty).unwrap().dbs.is_empty());
}

#[test]
fn plain_nodes_round_trip() {
    let snapshot = sample();
    let mut file = Vec::new();
    write_with(&snapshot, &Aux::default(), &mut file, 1000).unwrap();
    let loaded = read(&file).unwrap();
    assert_eq!(flat(&loaded.dbs), flat(&to_loaded_form(&snapshot)));
}

/// A file of `version` around `body`, with a checksum if `version >= 5`.
fn file(version: u32, body: &[u8]) -> Vec<u8> {
    let mut f = format!("REDIS{version:04}").into_bytes();
    f.extend_from_slice(body);
    f.push(0xFF);
    if version >= 5 {
        let crc = crc::crc64(&f);
        f.extend_from_slice(&crc.to_le_bytes());
    }
    f
}

/// An RDB string of `s`, raw.
fn s(s: &[u8]) -> Vec<u8> {
    assert!(s.len() < 64);
    [&[s.len() as u8][..], s].concat()
}

fn keys_of(data: &[u8]) -> Vec<(usize, Vec<u8>, V, Option<i64>)> {
    flat(&read(data).expect("loads").dbs)
}

#[test]
fn old_versions_and_encodings() {
    // Version 3: a plain list, EXPIRETIME in seconds, an integer key, no
    // checksum.
    let body = [
        &[0xFE, 0x01][..],
        &[0xFD],
        &100i32.to_le_bytes(),
        &[0x01],
        &[0xC0, 0x07],
        &[0x02],
        &s(b"a"),
        &[0xC1, 0x10, 0x27],
    ]
    .concat();
    assert_eq!(
        keys_of(&file(3, &body)),
        [(
            1,
            b"7".to_vec(),
            V::L(vec![b"a".to_vec(), b"10000".to_vec()]),
            Some(100_000)
        )]
    );
    // Version 6: a ziplist list, a quicklist of ziplists; IDLE, FREQ,
    // RESIZEDB and unknown AUX fields are skipped.
    let zl = ziplist::build(&[b"\x03one", &[0xF3]]);
    let zl2 = ziplist::build(&[&[0xFE, 0x80]]);
    let body = [
        &[0xFA][..],
        &s(b"lua"),
        &s(b"ignored"),
        &[0xFB, 2, 0],
        &[0xF8, 0x05, 0xF9, 0x07],
        &[10],
        &s(b"zl"),
        &s(&zl),
        &[14],
        &s(b"ql"),
        &[2],
        &s(&zl),
        &s(&zl2),
    ]
    .concat();
    assert_eq!(
        keys_of(&file(6, &body)),
        [
            (
                0,
                b"ql".to_vec(),
                V::L(vec![b"one".to_vec(), b"2".to_vec(), b"-128".to_vec()]),
                None
            ),
            (
                0,
                b"zl".to_vec(),
                V::L(vec![b"one".to_vec(), b"2".to_vec()]),
                None
            ),
        ]
    );
    // Version 10: quicklist 2 with a PLAIN node and a PACKED node, an LZF
    // string and an int32 string, EXPIRETIME_MS.
    let mut lp = listpack::Builder::new();
    lp.push(b"p1");
    lp.push(b"-5");
    let lp = lp.finish();
    let body = [
        &[0xFC][..],
        &1_700_000_000_123i64.to_le_bytes(),
        &[18],
        &s(b"l"),
        &[2, 1],
        &s(b"plain"),
        &[2],
        &s(&lp),
        &[0],
        &s(b"lzf"),
        &[0xC3, 5, 52, 0x00, b'a', 0xE0, 42, 0x00],
        &[0],
        &s(b"i32"),
        &[0xC2, 0xFF, 0xFF, 0xFF, 0xFF],
    ]
    .concat();
    assert_eq!(
        keys_of(&file(10, &body)),
        [
            (0, b"i32".to_vec(), V::S(b"-1".to_vec()), None),
            (
                0,
                b"l".to_vec(),
                V::L(vec![b"plain".to_vec(), b"p1".to_vec(), b"-5".to_vec()]),
                Some(1_700_000_000_123)
            ),
            (0, b"lzf".to_vec(), V::S(vec![b'a'; 52]), None),
        ]
    );
    // Lengths in 14, 32 and 64 bits.
    let long = vec![b'L'; 100];
    let body = [
        &[0][..],
        &s(b"a"),
        &[0x40, 100],
        &long,
        &[0],
        &s(b"b"),
        &[0x80, 0, 0, 0, 100],
        &long,
        &[0],
        &s(b"c"),
        &[0x81, 0, 0, 0, 0, 0, 0, 0, 100],
        &long,
    ]
    .concat();
    assert_eq!(keys_of(&file(9, &body)).len(), 3);
}

#[test]
fn empty_collections_are_skipped_like_redis() {
    let empty_lp = listpack::Builder::new().finish();
    let body = [
        &[1][..],
        &s(b"empty"),
        &[0],
        &[18],
        &s(b"q"),
        &[1, 2],
        &s(&empty_lp),
        &[4],
        &s(b"h"),
        &[0],
    ]
    .concat();
    assert!(keys_of(&file(10, &body)).is_empty());
}

/// Hashes in every encoding an RDB file may hold them in: the plain type,
/// a zipmap (Redis 2.4), a ziplist (Redis 6), a listpack (Redis 7).
#[test]
fn hashes_of_every_encoding_load() {
    let pairs = vec![
        (b"f".to_vec(), b"v".to_vec()),
        (b"n".to_vec(), b"-70000".to_vec()),
    ];
    let want = |encoding| V::H(encoding, pairs.clone());
    let zl = ziplist::build(&[b"\x01f", b"\x01v", b"\x01n", b"\xf0\x90\xee\xfe"]);
    let mut lp = listpack::Builder::new();
    for e in [&b"f"[..], b"v", b"n", b"-70000"] {
        lp.push(e);
    }
    let lp = lp.finish();
    let body = [
        &[4][..],
        &s(b"plain"),
        &[2],
        &s(b"f"),
        &s(b"v"),
        &s(b"n"),
        &s(b"-70000"),
        &[9],
        &s(b"zipmap"),
        &s(b"\x02\x01f\x01\x00v\x01n\x06\x00-70000\xff"),
        &[13],
        &s(b"ziplist"),
        &s(&zl),
        &[16],
        &s(b"listpack"),
        &s(&lp),
    ]
    .concat();
    let keys = keys_of(&file(10, &body));
    let names: Vec<&[u8]> = keys.iter().map(|k| &k.1[..]).collect();
    assert_eq!(names, [&b"listpack"[..], b"plain", b"ziplist", b"zipmap"]);
    for k in &keys {
        assert_eq!(k.2, want("listpack"), "{:?}", String::from_utf8_lossy(&k.1));
    }
    // More fields than hash-max-listpack-entries: a hashtable.
    let mut big = vec![0x42, 0x58];
    let mut want_big = Vec::new();
    for i in 0..600 {
        let (f, v) = (format!("f{i}").into_bytes(), format!("{i}").into_bytes());
        big.extend_from_slice(&s(&f));
        big.extend_from_slice(&s(&v));
        want_big.push((f, v));
    }
    want_big.sort();
    let body = [&[4][..], &s(b"big"), &big].concat();
    assert_eq!(keys_of(&file(10, &body))[0].2, V::H("hashtable", want_big));
}

fn err(data: &[u8]) -> String {
    match read(data) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn types_the_keyspace_cannot_hold_are_refused_by_name() {
    let refused = |ty: u8, value: &[u8]| err(&file(10, &[&[ty][..], &s(b"h"), value].concat()));
    // Sorted sets load in each of their encodings.
    let one = |ty: u8, value: &[u8]| keys_of(&file(10, &[&[ty][..], &s(b"h"), value].concat()));
    let zset_of = |pairs: &[(&str, f64)], enc: &'static str| {
        vec![(
            0,
            b"h".to_vec(),
            V::Z(
                enc,
                pairs
                    .iter()
                    .map(|(m, sc)| (m.as_bytes().to_vec(), sc.to_bits()))
                    .collect(),
            ),
            None,
        )]
    };
    assert_eq!(
        one(3, &[&[1][..], &s(b"m"), &[1, b'1']].concat()),
        zset_of(&[("m", 1.0)], "listpack")
    );
    assert_eq!(
        one(5, &[&[1][..], &s(b"m"), &1.5f64.to_le_bytes()].concat()),
        zset_of(&[("m", 1.5)], "listpack")
    );
    let zl = ziplist::build(&[b"\x01f", b"\x012"]);
    assert_eq!(one(12, &s(&zl)), zset_of(&[("f", 2.0)], "listpack"));
    let mut lp = listpack::Builder::new();
    lp.push(b"f");
    lp.push(b"v");
    let lp = lp.finish();
    // Validated before refused: a corrupt hash is a corruption.
    assert!(refused(16, &s(&lp[..lp.len() - 1])).starts_with("corrupt RDB data at offset"));
    assert_eq!(
        refused(15, &[]),
        "unsupported RDB type 15 (stream) for key 'h'"
    );
    assert_eq!(
        refused(19, &[]),
        "unsupported RDB type 19 (stream) for key 'h'"
    );
    assert_eq!(
        refused(7, &[]),
        "unsupported RDB type 7 (module) for key 'h'"
    );
    assert!(refused(8, &[]).contains("unknown RDB type 8"));
    assert!(err(&file(10, &[0xF7, 1, 2, 3])).contains("module aux data"));
    assert!(
        err(&file(10, &[&[0xF6][..], &s(b"#!lua name=x")].concat())).contains("function library")
    );
    // Libraries (FUNCTION2) are read, for the server to load.
    let loaded = read(&file(10, &[&[0xF5][..], &s(b"#!lua name=x")].concat())).expect("loads");
    assert_eq!(loaded.functions, vec![b"#!lua name=x".to_vec()]);
}

#[test]
fn sets_load_in_every_encoding_redis_writes() {
    let one = |ty: u8, value: &[u8]| keys_of(&file(10, &[&[ty][..], &s(b"h"), value].concat()));
    let set_of = |members: &[&str], enc: &'static str| {
        vec![(
            0,
            b"h".to_vec(),
            V::Set(members.iter().map(|m| m.as_bytes().to_vec()).collect(), enc),
            None,
        )]
    };
    // RDB_TYPE_SET: integers within the limit become an intset, as Redis
    // loads them; anything else a hashtable.
    let listed = [&[2][..], &s(b"5"), &[0xC0, 3]].concat();
    assert_eq!(one(2, &listed), set_of(&["3", "5"], "intset"));
    let listed = [&[2][..], &s(b"5"), &s(b"x")].concat();
    assert_eq!(one(2, &listed), set_of(&["5", "x"], "hashtable"));
    // RDB_TYPE_SET_INTSET, and Redis 7.2's RDB_TYPE_SET_LISTPACK.
    let is = [2u8, 0, 0, 0, 2, 0, 0, 0, 5, 0, 9, 0];
    assert_eq!(one(11, &s(&is)), set_of(&["5", "9"], "intset"));
    let mut lp = listpack::Builder::new();
    lp.push(b"f");
    lp.push(b"7");
    assert_eq!(one(20, &s(&lp.finish())), set_of(&["7", "f"], "hashtable"));
    // A member twice is corrupt, as Redis finds it; an empty set is
    // skipped.
    let twice = [&[2][..], &s(b"m"), &s(b"m")].concat();
    assert!(err(&file(10, &[&[2][..], &s(b"h"), &twice].concat())).contains("duplicate"));
    assert!(one(2, &[0]).is_empty());
}

#[test]
fn header_checksum_and_duplicates() {
    let good = encode(&sample(), &Aux::default());
    let mut v11 = good.clone();
    v11[5..9].copy_from_slice(b"0011");
    assert_eq!(err(&v11), "Can't handle RDB format version 11");
    let mut v0 = good.clone();
    v0[5..9].copy_from_slice(b"abcd");
    assert_eq!(err(&v0), "Can't handle RDB format version 0");
    assert!(err(b"RADIS0010\xff").contains("signature"));
    assert_eq!(err(b"RED"), "unexpected end of RDB data at offset 0");
    // A flipped bit in a value: the checksum catches it.
    let mut flipped = good.clone();
    let at = flipped.windows(5).position(|w| w == b"hello").unwrap();
    flipped[at] = b'j';
    assert!(err(&flipped).starts_with("RDB checksum mismatch"));
    // A zero checksum is not checked (rdbchecksum no).
    let n = flipped.len();
    flipped[n - 8..].fill(0);
    assert!(read(&flipped).is_ok());
    // The same key twice in a database.
    let body = [&[0][..], &s(b"k"), &s(b"1"), &[0], &s(b"k"), &s(b"2")].concat();
    // Found when installed, and then nothing of the file stays.
    let ks = Keyspace::new(16);
    let mut shards = Shards::new(&ks);
    let loaded = read(&file(10, &body)).unwrap();
    assert_eq!(
        install(&mut shards, loaded, None).unwrap_err().to_string(),
        "RDB has duplicated key 'k' in DB 0"
    );
    assert!(!shards.lock_key(b"k").db(0).contains(b"k", 0));
    let body = [
        &[0][..],
        &s(b"k"),
        &s(b"1"),
        &[0xFE, 1, 0],
        &s(b"k"),
        &s(b"2"),
    ]
    .concat();
    assert_eq!(read(&file(10, &body)).unwrap().len(), 2);
}

#[test]
fn every_truncation_is_an_error() {
    let mut small = Snapshot {
        dbs: vec![Vec::new(); 2],
    };
    small.dbs[0].push((
        Bytes::from_static(b"s"),
        string("some text that compresses compresses compresses", Some(7)),
    ));
    small.dbs[1].push((
        Bytes::from_static(b"l"),
        list([b"a".to_vec(), b"12".to_vec(), vec![b'c'; 70]], None),
    ));
    small.dbs[1].push((Bytes::from_static(b"i"), string("42", None)));
    let good = encode(&small, &Aux::default());
    assert_eq!(read(&good).unwrap().len(), 3);
    for n in 0..good.len() {
        assert!(read(&good[..n]).is_err(), "a prefix of {n} bytes loaded");
    }
    // Trailing bytes after the checksum are ignored, as by Redis.
    let mut longer = good.clone();
    longer.extend_from_slice(b"junk");
    assert!(read(&longer).is_ok());
}

#[test]
fn claims_larger_than_the_data_are_refused_without_allocating() {
    // A list of 2^62 elements, a string of 2^40 bytes, an LZF string that
    // claims 4 GiB from 5 bytes.
    for body in [
        [&[1][..], &s(b"k"), &[0x81, 0x40, 0, 0, 0, 0, 0, 0, 0]].concat(),
        [&[0][..], &s(b"k"), &[0x81, 0, 0, 1, 0, 0, 0, 0, 0]].concat(),
        [
            &[0][..],
            &s(b"k"),
            &[0xC3, 5, 0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0, b'a', 0xE0, 42, 0],
        ]
        .concat(),
        [&[18][..], &s(b"k"), &[0x80, 0x7F, 0xFF, 0xFF, 0xFF]].concat(),
    ] {
        assert!(read(&file(10, &body)).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn corruption_never_panics(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        static GOOD: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let good = GOOD.get_or_init(|| {
            let mut s = Snapshot { dbs: vec![Vec::new(); 3] };
            s.dbs[0].push((Bytes::from_static(b"str"), string("value value value value value", Some(99))));
            s.dbs[0].push((Bytes::from_static(b"n"), string("-1234", None)));
            s.dbs[2].push((Bytes::from_static(b"list"), list((0..40).map(|i| format!("{i}-{}", "x".repeat(i)).into_bytes()), None)));
            encode(&s, &Aux::default())
        });
        let mut data = good.clone();
        for (at, b) in flips {
            let at = at % data.len();
            data[at] = b;
        }
        // Without the checksum to catch it, the parser sees the damage.
        let n = data.len();
        data[n - 8..].fill(0);
        let _ = read(&data);
    }

    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut data = b"REDIS0010".to_vec();
        data.extend_from_slice(&body);
        let _ = read(&data);
    }

    #[test]
    fn strings_round_trip(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 1..20)) {
        let mut snapshot = Snapshot { dbs: vec![Vec::new()] };
        for (i, value) in values.iter().enumerate() {
            snapshot.dbs[0].push((Bytes::from(format!("k{i}")), string(value.clone(), None)));
        }
        snapshot.dbs[0].push((Bytes::from_static(b"list"), list(values.clone(), None)));
        let loaded = read(&encode(&snapshot, &Aux::default())).unwrap();
        prop_assert_eq!(flat(&loaded.dbs), flat(&to_loaded_form(&snapshot)));
    }
}

#[test]
fn snapshot_and_install() {
    let ks = Keyspace::new(4);
    let mut shards = Shards::new(&ks);
    shards
        .lock_key(b"a")
        .db(0)
        .insert(Bytes::from_static(b"a"), string("1", None));
    shards.lock_key(b"b").db(2).insert(
        Bytes::from_static(b"b"),
        list([b"x".to_vec()], Some(i64::MAX)),
    );
    shards
        .lock_key(b"gone")
        .db(2)
        .insert(Bytes::from_static(b"gone"), string("old", Some(1)));
    let (snapshot, extra) = Snapshot::take(&mut shards, || 7);
    assert_eq!(extra, 7);
    assert_eq!(snapshot.dbs.len(), 4);
    assert_eq!(snapshot.len(), 2, "the expired key is left out");
    let loaded = read(&encode(&snapshot, &Aux::default())).unwrap();

    // Install over other contents: they are flushed.
    shards
        .lock_key(b"c")
        .db(1)
        .insert(Bytes::from_static(b"c"), string("3", None));
    install(&mut shards, loaded, Some(0)).unwrap();
    let mut count = 0;
    shards.for_each_shard(|s| count += s.dbs.iter().map(crate::db::Db::len).sum::<usize>());
    assert_eq!(count, 2);
    assert!(shards.lock_key(b"b").db(2).contains(b"b", 0));

    // A database the server does not have: nothing changes.
    let mut far = Loaded::default();
    far.dbs
        .push((0, vec![(Bytes::from_static(b"z"), string("z", None))]));
    far.dbs
        .push((9, vec![(Bytes::from_static(b"y"), string("y", None))]));
    assert_eq!(
        install(&mut shards, far, None).unwrap_err().to_string(),
        "the RDB file has data in DB 9, but this server is configured with 4 databases"
    );
    assert!(!shards.lock_key(b"z").db(0).contains(b"z", 0));
    assert!(shards.lock_key(b"a").db(0).contains(b"a", 0));

    // A master drops expired keys; a replica keeps them.
    let mut expiring = Loaded::default();
    expiring.dbs.push((
        0,
        vec![
            (Bytes::from_static(b"old"), string("o", Some(100))),
            (Bytes::from_static(b"new"), string("n", Some(300))),
        ],
    ));
    assert_eq!(expiring.expired(Some(200)), 1);
    assert_eq!(expiring.expired(None), 0);
    install(&mut shards, expiring, Some(200)).unwrap();
    let mut count = 0;
    shards.for_each_shard(|s| count += s.dbs[0].len());
    assert_eq!(count, 1);
}

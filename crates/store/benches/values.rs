//! The value types alone, with criterion and nothing else of Ember's: the
//! packed list (pushes, pops, indexing, iteration), hashes in both
//! encodings (sets, lookups, iteration, random picks), sets (adds,
//! lookups, random picks, intersection, scans, DUMP and RESTORE), glob
//! matching, and the RDB encodings (a list's quicklist nodes, LZF, DUMP
//! and RESTORE).
//!
//! `cargo bench -p ember-store`; `EMBER_BENCH_QUICK=1` for a short look.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use ember_store::set::MAX_INTSET_ENTRIES;
use ember_store::{self as store, Hash, List, Rng, Set, Str, Value, value::Form};

fn config() -> Criterion {
    let c = Criterion::default();
    if std::env::var_os("EMBER_BENCH_QUICK").is_some() {
        c.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
    } else {
        c
    }
}

/// `n` short elements, as LPUSH of counters or ids gives them.
fn elements(n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| Bytes::from(format!("element:{i:08}")))
        .collect()
}

fn filled(items: &[Bytes]) -> List {
    let mut list = List::new();
    items.iter().for_each(|i| list.push_back(i.clone()));
    list
}

fn list(c: &mut Criterion) {
    let items = elements(10_000);
    let mut g = c.benchmark_group("list");
    g.throughput(Throughput::Elements(items.len() as u64));
    g.bench_function("push_front_10k", |b| {
        b.iter(|| {
            let mut list = List::new();
            for i in &items {
                list.push(true, i);
            }
            list
        })
    });
    g.bench_function("pop_back_10k", |b| {
        b.iter_batched(
            || filled(&items),
            |mut list| {
                while let Some(i) = list.pop(false) {
                    black_box(i);
                }
            },
            BatchSize::LargeInput,
        )
    });
    let full = filled(&items);
    g.bench_function("iter_10k", |b| {
        b.iter(|| full.iter().map(<[u8]>::len).sum::<usize>())
    });
    g.throughput(Throughput::Elements(1));
    let mut rng = Rng::new(7);
    g.bench_function("index_in_10k", |b| {
        b.iter(|| {
            full.get(rng.below(items.len()).unwrap_or(0))
                .map(<[u8]>::len)
        })
    });
    g.finish();
}

/// `n` field names, as HSET of ids gives them.
fn fields(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("field:{i:010}").into_bytes())
        .collect()
}

fn hash(c: &mut Criterion) {
    let limits = store::hash::Limits::default();
    let mut g = c.benchmark_group("hash");
    // A small hash, packed: ten fields, then every field looked up.
    let ten = fields(10);
    g.throughput(Throughput::Elements(10));
    g.bench_function("packed_set_10", |b| {
        b.iter(|| {
            let mut h = Hash::new();
            for f in &ten {
                h.set(f, b"xxx", &limits);
            }
            h
        })
    });
    let mut small = Hash::new();
    ten.iter().for_each(|f| {
        small.set(f, b"xxx", &limits);
    });
    g.bench_function("packed_get_10", |b| {
        b.iter(|| ten.iter().filter_map(|f| small.get(f)).count())
    });
    // A big hash, a table: 100k fields set, looked up, iterated.
    let many = fields(100_000);
    g.throughput(Throughput::Elements(many.len() as u64));
    g.bench_function("table_set_100k", |b| {
        b.iter(|| {
            let mut h = Hash::new();
            for f in &many {
                h.set(f, b"xxx", &limits);
            }
            h
        })
    });
    let mut big = Hash::new();
    many.iter().for_each(|f| {
        big.set(f, b"xxx", &limits);
    });
    g.bench_function("table_get_100k", |b| {
        b.iter(|| many.iter().filter_map(|f| big.get(f)).count())
    });
    g.bench_function("table_iter_100k", |b| {
        b.iter(|| big.iter().map(|(f, v)| f.len() + v.len()).sum::<usize>())
    });
    g.throughput(Throughput::Elements(100));
    let mut rng = Rng::new(7);
    g.bench_function("table_random_100_unique", |b| {
        b.iter(|| big.random_pairs(100, true, &mut rng).len())
    });
    g.finish();
}

fn glob(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..1000)
        .map(|i| format!("user:{i}:session:{}", i * 7).into_bytes())
        .collect();
    let mut g = c.benchmark_group("glob");
    g.throughput(Throughput::Elements(keys.len() as u64));
    for pattern in [&b"user:*:session:*"[..], b"user:1?:*", b"*[0-3]"] {
        g.bench_function(String::from_utf8_lossy(pattern).into_owned(), |b| {
            b.iter(|| {
                keys.iter()
                    .filter(|k| store::glob::matches(pattern, k, false))
                    .count()
            })
        });
    }
    g.finish();
}

fn rdb(c: &mut Criterion) {
    let list = Value::List(Box::new(filled(&elements(10_000))));
    let dumped = store::rdb::dump(&list);
    let mut g = c.benchmark_group("rdb");
    g.throughput(Throughput::Bytes(dumped.len() as u64));
    g.bench_function("dump_list_10k", |b| b.iter(|| store::rdb::dump(&list)));
    g.bench_function("restore_list_10k", |b| {
        b.iter(|| store::rdb::restore(&dumped).is_ok())
    });
    let text: Vec<u8> = (0..64 * 1024u32)
        .map(|i| b"the quick brown fox jumps over the lazy dog "[i as usize % 44])
        .collect();
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("lzf_compress_64k", |b| {
        b.iter(|| store::rdb::lzf::compress(&text, text.len()))
    });
    let string = Value::Str(Str::new(Bytes::from(text.clone()), Form::Auto));
    g.bench_function("dump_string_64k", |b| b.iter(|| store::rdb::dump(&string)));
    // Many short compressible strings, as an RDB file of 40-byte values
    // has them: the cost of each call, not of each byte.
    let short = &text[..40];
    g.throughput(Throughput::Elements(1));
    g.bench_function("lzf_compress_40b", |b| {
        b.iter(|| store::rdb::lzf::compress(short, short.len() - 4))
    });
    g.finish();
}

/// `n` members `member:NNNNNNNNNN`, as benches/memory.sh adds them.
fn members(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("member:{i:010}").into_bytes())
        .collect()
}

fn set_of(items: &[Vec<u8>]) -> Set {
    let mut s = Set::new();
    items.iter().for_each(|m| {
        s.add(m, MAX_INTSET_ENTRIES);
    });
    s
}

fn sets(c: &mut Criterion) {
    let strings = members(10_000);
    let ints: Vec<Vec<u8>> = (0..512).map(|i| (i * 7).to_string().into_bytes()).collect();
    let mut g = c.benchmark_group("set");
    g.throughput(Throughput::Elements(strings.len() as u64));
    g.bench_function("sadd_10k_strings", |b| b.iter(|| set_of(&strings)));
    g.throughput(Throughput::Elements(ints.len() as u64));
    g.bench_function("sadd_512_ints_intset", |b| b.iter(|| set_of(&ints)));
    let full = set_of(&strings);
    let intset = set_of(&ints);
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("sismember_in_10k", |b| {
        b.iter(|| {
            i = (i + 7919) % strings.len();
            full.contains(&strings[i])
        })
    });
    g.bench_function("sismember_in_intset_512", |b| {
        b.iter(|| {
            i = (i + 7919) % ints.len();
            intset.contains(&ints[i])
        })
    });
    let mut rng = Rng::new(3);
    g.bench_function("srandmember_10k", |b| {
        b.iter(|| full.random(&mut rng).map(|e| e.with(<[u8]>::len)))
    });
    g.throughput(Throughput::Elements(strings.len() as u64));
    g.bench_function("spop_all_10k", |b| {
        b.iter_batched(
            || full.clone(),
            |mut s| {
                while let Some(m) = s.pop_random(&mut rng) {
                    black_box(m);
                }
            },
            BatchSize::LargeInput,
        )
    });
    let other = set_of(&strings[5_000..]);
    g.bench_function("sinter_10k_5k", |b| {
        b.iter(|| {
            let mut n = 0;
            Set::intersect(&[&full, &other], |_| {
                n += 1;
                true
            });
            n
        })
    });
    g.bench_function("sscan_10k", |b| {
        b.iter(|| {
            let (mut cursor, mut n) = (0, 0);
            loop {
                cursor = full.scan(cursor, 10, |_| n += 1);
                if cursor == 0 {
                    break n;
                }
            }
        })
    });
    let value = Value::Set(full.clone());
    let dumped = store::rdb::dump(&value);
    g.bench_function("dump_10k", |b| b.iter(|| store::rdb::dump(&value)));
    g.bench_function("restore_10k", |b| {
        b.iter(|| store::rdb::restore(&dumped).is_ok())
    });
    g.finish();
}

criterion::criterion_group! {
    name = values;
    config = config();
    targets = list, hash, glob, rdb, sets
}
criterion::criterion_main!(values);

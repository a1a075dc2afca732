//! The sorted set's big encoding against Redis's design: Ember's
//! [`ZSet`] (a `Dict` for member to score, a B+tree with counts for order)
//! beside a span skiplist written here the way Redis's `t_zset.c` has it
//! (a node per member with its levels, `span`s for ranks, a backward
//! pointer), with the same `Dict` beside it for member lookups. Both at a
//! thousand and at a million members: building by insertion, ZRANK,
//! ZRANGEBYSCORE with LIMIT 0 10, ZRANGE of ten by rank. Before the timings
//! it prints the heap bytes per member of each, counted by a counting
//! allocator.
//!
//! `cargo bench -p ember-store --bench zset`; `EMBER_BENCH_QUICK=1` for a
//! short look.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use ember_store::Rng;
use ember_store::dict::{Dict, Item};
use ember_store::zset::{AddFlags, Limit, Limits, ScoreRange, ZSet};
use smallvec::SmallVec;

/// Counts the heap bytes live, so memory per member is what the
/// allocator was asked for, not an estimate.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes straight to the system allocator; the counter
// only watches.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: a pointer this allocator gave out, with its layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn config() -> Criterion {
    let c = Criterion::default();
    if std::env::var_os("EMBER_BENCH_QUICK").is_some() {
        c.warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
    } else {
        c
    }
}

// -- A span skiplist, as Redis's t_zset.c builds one. --

const MAX_LEVEL: usize = 32;
const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Level {
    forward: u32,
    span: usize,
}

struct SkipNode {
    score: f64,
    member: Box<[u8]>,
    backward: u32,
    /// Inside the node for up to 4 levels (all but 1 in 256 nodes), as
    /// Redis's node has its levels inside its one allocation: a step reads
    /// one node.
    levels: SmallVec<[Level; 4]>,
}

/// What the dict beside the skiplist holds: a member and its score.
struct Scored(Box<[u8]>, f64);

impl Item for Scored {
    fn key(&self) -> &[u8] {
        &self.0
    }
}

/// Redis's `zset`: a dict and a skiplist. Nodes live in an arena (node 0
/// is the header) in the order they were added, which once members arrive
/// in random order is as scattered as Redis's separate allocations.
struct SkipZset {
    dict: Dict<Scored>,
    nodes: Vec<SkipNode>,
    tail: u32,
    len: usize,
    level: usize,
    rng: Rng,
}

fn before(score: f64, member: &[u8], node: &SkipNode) -> bool {
    node.score < score || (node.score == score && &*node.member < member)
}

impl SkipZset {
    fn new() -> SkipZset {
        let header = SkipNode {
            score: 0.0,
            member: Box::default(),
            backward: NIL,
            levels: smallvec::smallvec![
                Level {
                    forward: NIL,
                    span: 0
                };
                MAX_LEVEL
            ],
        };
        SkipZset {
            dict: Dict::new(),
            nodes: vec![header],
            tail: NIL,
            len: 0,
            level: 1,
            rng: Rng::new(99),
        }
    }

    /// Redis's `zslRandomLevel`: p = 1/4.
    fn random_level(&mut self) -> usize {
        let mut level = 1;
        while level < MAX_LEVEL && self.rng.next_u64() & 0xFFFF < 0xFFFF / 4 {
            level += 1;
        }
        level
    }

    /// `zslInsert`, after the dict says the member is new.
    fn add(&mut self, member: &[u8], score: f64) {
        if self.dict.insert(Scored(member.into(), score)).is_some() {
            return;
        }
        let mut update = [0u32; MAX_LEVEL];
        let mut rank = [0usize; MAX_LEVEL];
        let mut x = 0u32;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let next = self.nodes[x as usize].levels[i].forward;
                if next != NIL && before(score, member, &self.nodes[next as usize]) {
                    rank[i] += self.nodes[x as usize].levels[i].span;
                    x = next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        let level = self.random_level();
        if level > self.level {
            for i in self.level..level {
                rank[i] = 0;
                update[i] = 0;
                self.nodes[0].levels[i].span = self.len;
            }
            self.level = level;
        }
        let id = self.nodes.len() as u32;
        let mut levels: SmallVec<[Level; 4]> = smallvec::smallvec![
            Level {
                forward: NIL,
                span: 0
            };
            level
        ];
        for (i, l) in levels.iter_mut().enumerate() {
            let u = &mut self.nodes[update[i] as usize].levels[i];
            l.forward = u.forward;
            u.forward = id;
            l.span = u.span - (rank[0] - rank[i]);
            u.span = (rank[0] - rank[i]) + 1;
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(level) {
            self.nodes[u as usize].levels[i].span += 1;
        }
        let backward = if update[0] == 0 { NIL } else { update[0] };
        let next = levels[0].forward;
        self.nodes.push(SkipNode {
            score,
            member: member.into(),
            backward,
            levels,
        });
        if next != NIL {
            self.nodes[next as usize].backward = id;
        } else {
            self.tail = id;
        }
        self.len += 1;
    }

    /// ZRANK: the dict's score, then `zslGetRank`.
    fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.dict.get(member)?.1;
        let mut rank = 0;
        let mut x = 0u32;
        for i in (0..self.level).rev() {
            loop {
                let next = self.nodes[x as usize].levels[i].forward;
                if next == NIL {
                    break;
                }
                let n = &self.nodes[next as usize];
                if n.score < score || (n.score == score && &*n.member <= member) {
                    rank += self.nodes[x as usize].levels[i].span;
                    x = next;
                } else {
                    break;
                }
            }
            if x != 0 && &*self.nodes[x as usize].member == member {
                return Some(rank - 1);
            }
        }
        None
    }

    /// `zslGetElementByRank` (1-based, as Redis's).
    fn by_rank(&self, rank: usize) -> u32 {
        let mut traversed = 0;
        let mut x = 0u32;
        for i in (0..self.level).rev() {
            loop {
                let l = self.nodes[x as usize].levels[i];
                if l.forward != NIL && traversed + l.span <= rank {
                    traversed += l.span;
                    x = l.forward;
                } else {
                    break;
                }
            }
            if traversed == rank {
                return x;
            }
        }
        NIL
    }

    /// `zslFirstInRange` for an inclusive minimum.
    fn first_at_least(&self, min: f64) -> u32 {
        let mut x = 0u32;
        for i in (0..self.level).rev() {
            loop {
                let next = self.nodes[x as usize].levels[i].forward;
                if next != NIL && self.nodes[next as usize].score < min {
                    x = next;
                } else {
                    break;
                }
            }
        }
        self.nodes[x as usize].levels[0].forward
    }

    /// Up to `count` members from `node` on, while at most `max`: the sum
    /// of their lengths.
    fn walk(&self, mut node: u32, count: usize, max: f64) -> usize {
        let (mut n, mut seen) = (0, 0);
        while node != NIL && seen < count {
            seen += 1;
            let x = &self.nodes[node as usize];
            if x.score > max {
                break;
            }
            n += touch(&x.member);
            node = x.levels[0].forward;
        }
        n
    }
}

// -- The workloads. --

/// Reads a member as a reply would (its length and its bytes).
#[inline]
fn touch(member: &[u8]) -> usize {
    member.len() + usize::from(member.last().copied().unwrap_or(0))
}

/// `n` members ("member:00000000", 15 bytes, as Redis's own benchmarks
/// name keys) with random 53-bit integer scores.
fn data(n: usize) -> Vec<(Vec<u8>, f64)> {
    let mut rng = Rng::new(n as u64);
    (0..n)
        .map(|i| {
            (
                format!("member:{i:08}").into_bytes(),
                (rng.next_u64() >> 11) as f64,
            )
        })
        .collect()
}

/// A ZSet built by ZADDs, big from its first member (limits of 0), so
/// that the structures compare and not the packed phase.
fn build_zset(data: &[(Vec<u8>, f64)]) -> ZSet {
    let l = Limits {
        entries: 0,
        value: 0,
    };
    let mut z = ZSet::new();
    for (m, s) in data {
        let _ = z.add(m, *s, AddFlags::default(), &l);
    }
    z
}

fn build_skip(data: &[(Vec<u8>, f64)]) -> SkipZset {
    let mut z = SkipZset::new();
    for (m, s) in data {
        z.add(m, *s);
    }
    z
}

/// Heap bytes a structure built by `build` holds, per member.
fn bytes_per_member<T>(data: &[(Vec<u8>, f64)], build: impl Fn(&[(Vec<u8>, f64)]) -> T) -> f64 {
    let before = LIVE.load(Ordering::Relaxed);
    let built = build(data);
    let after = LIVE.load(Ordering::Relaxed);
    drop(black_box(built));
    (after - before) as f64 / data.len() as f64
}

fn memory() {
    for n in [1_000usize, 1_000_000] {
        let d = data(n);
        let z = bytes_per_member(&d, build_zset);
        let s = bytes_per_member(&d, build_skip);
        eprintln!(
            "heap bytes per member, {n} members of 15 bytes: ZSet (B+tree) {z:.1}, skiplist {s:.1}"
        );
    }
}

fn zset(c: &mut Criterion) {
    memory();
    let mut g = c.benchmark_group("zset");
    for n in [1_000usize, 1_000_000] {
        let d = data(n);
        if n > 10_000 {
            g.sample_size(10);
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("insert/btree", n), &d, |b, d| {
            b.iter_batched(|| (), |()| build_zset(d), BatchSize::PerIteration)
        });
        g.bench_with_input(BenchmarkId::new("insert/skiplist", n), &d, |b, d| {
            b.iter_batched(|| (), |()| build_skip(d), BatchSize::PerIteration)
        });
        let z = build_zset(&d);
        let s = build_skip(&d);
        g.sample_size(50);
        g.throughput(Throughput::Elements(1));
        let mut rng = Rng::new(5);
        g.bench_function(BenchmarkId::new("rank/btree", n), |b| {
            b.iter(|| {
                let (m, _) = &d[rng.below(n).unwrap_or(0)];
                z.rank(m, false)
            })
        });
        g.bench_function(BenchmarkId::new("rank/skiplist", n), |b| {
            b.iter(|| {
                let (m, _) = &d[rng.below(n).unwrap_or(0)];
                s.rank(m)
            })
        });
        // ZRANGEBYSCORE key min +inf LIMIT 0 10, from a random member's
        // score.
        g.bench_function(BenchmarkId::new("range_by_score_10/btree", n), |b| {
            b.iter(|| {
                let min = d[rng.below(n).unwrap_or(0)].1;
                let r = ScoreRange {
                    min,
                    ..ScoreRange::ALL
                };
                z.range_by_score(&r, Limit::new(0, 10), false)
                    .map(|(m, _)| touch(m))
                    .sum::<usize>()
            })
        });
        g.bench_function(BenchmarkId::new("range_by_score_10/skiplist", n), |b| {
            b.iter(|| {
                let min = d[rng.below(n).unwrap_or(0)].1;
                s.walk(s.first_at_least(min), 10, f64::INFINITY)
            })
        });
        // ZRANGE key r r+9.
        g.bench_function(BenchmarkId::new("range_by_rank_10/btree", n), |b| {
            b.iter(|| {
                let r = rng.below(n - 10).unwrap_or(0) as i64;
                z.range_by_rank(r, r + 9, false)
                    .map(|(m, _)| touch(m))
                    .sum::<usize>()
            })
        });
        g.bench_function(BenchmarkId::new("range_by_rank_10/skiplist", n), |b| {
            b.iter(|| {
                let r = rng.below(n - 10).unwrap_or(0);
                s.walk(s.by_rank(r + 1), 10, f64::INFINITY)
            })
        });
        // Sanity: both agree.
        for (m, _) in d.iter().step_by(n / 10) {
            assert_eq!(z.rank(m, false), s.rank(m));
        }
    }
    g.finish();
}

criterion::criterion_group! {
    name = benches;
    config = config();
    targets = zset
}
criterion::criterion_main!(benches);

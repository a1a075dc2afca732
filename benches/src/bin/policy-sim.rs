//! Eviction policies simulated over `benches/hit-ratio.py`'s traces, at a
//! given number of keys: what a policy can reach on a trace, apart from
//! the memory its bookkeeping costs (docs/memory.md, "What a policy can
//! reach"). The same replay as the script: each read a GET, a miss a SET,
//! hits counted after the first fifth; scanned keys are read but not
//! counted.
//!
//! ```text
//! DUMP_TRACES=/tmp/traces python3 benches/hit-ratio.py BIN 10000000 3000000
//! cargo run --release -p ember-benches --bin policy-sim -- \
//!     /tmp/traces/shifting.bin lru@351667 s3fifo@340019 opt@340019
//! ```
//!
//! Policies (`name[:option]@keys`):
//! - `lru`: exact LRU (Redis's sampled LRU comes within 0.05 of it here);
//! - `s3fifo`: Ember's `allkeys-s3fifo` (a small FIFO of a tenth, a main
//!   FIFO with reinsertion, reads counted to 3, a direct-mapped ghost of
//!   8-bit fingerprints about as large as main); `s3fifo:age=K` also moves
//!   main's hand one key per eviction and evicts a main key idle for more
//!   than K times the small queue's age (an aging variant, not Ember's);
//! - `arc`: ARC (Megiddo and Modha), with its ghost lists;
//! - `tinylfu:W`: W-TinyLFU as Caffeine builds it (a window LRU of W of
//!   the keys, 0.01 by default, then a segmented LRU, a 4-bit count-min
//!   sketch of 16 counters a key, halved every 10 keys' worth of reads);
//!   `tinylfu:climb` starts at 1% and moves the window with Caffeine's
//!   hill climber (see [`Climber`]);
//! - `opt`: Belady's optimum (evicts the key read again last).

// The report on standard output is what this program is for.
#![allow(clippy::print_stdout)]

use std::collections::{BinaryHeap, HashMap, VecDeque};

/// A key's hash, splitmix64's finaliser (the keyspace's hash is as well
/// spread).
fn mix(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A cache of keys: `access` reads a key, and on a miss writes it.
trait Policy {
    /// Whether the read hit.
    fn access(&mut self, key: u64) -> bool;
}

const NIL: u32 = u32::MAX;

/// Doubly linked lists in one arena, by list number: front is the most
/// recent.
#[derive(Debug, Default)]
struct Lists {
    key: Vec<u64>,
    prev: Vec<u32>,
    next: Vec<u32>,
    list: Vec<u8>,
    free: Vec<u32>,
    head: [u32; 5],
    tail: [u32; 5],
    len: [usize; 5],
}

impl Lists {
    fn new() -> Self {
        Lists {
            head: [NIL; 5],
            tail: [NIL; 5],
            ..Lists::default()
        }
    }

    fn push_front(&mut self, l: u8, key: u64) -> u32 {
        let i = match self.free.pop() {
            Some(i) => {
                self.key[i as usize] = key;
                i
            }
            None => {
                self.key.push(key);
                self.prev.push(NIL);
                self.next.push(NIL);
                self.list.push(l);
                (self.key.len() - 1) as u32
            }
        };
        self.link(l, i);
        i
    }

    fn link(&mut self, l: u8, i: u32) {
        let li = l as usize;
        self.list[i as usize] = l;
        self.prev[i as usize] = NIL;
        self.next[i as usize] = self.head[li];
        match self.head[li] {
            NIL => self.tail[li] = i,
            h => self.prev[h as usize] = i,
        }
        self.head[li] = i;
        self.len[li] += 1;
    }

    fn unlink(&mut self, i: u32) {
        let li = self.list[i as usize] as usize;
        let (p, n) = (self.prev[i as usize], self.next[i as usize]);
        match p {
            NIL => self.head[li] = n,
            p => self.next[p as usize] = n,
        }
        match n {
            NIL => self.tail[li] = p,
            n => self.prev[n as usize] = p,
        }
        self.len[li] -= 1;
    }

    /// Moves `i` to the front of list `l`.
    fn move_to(&mut self, l: u8, i: u32) {
        self.unlink(i);
        self.link(l, i);
    }

    /// Takes list `l`'s last node out; its key.
    fn pop_back(&mut self, l: u8) -> Option<u64> {
        let i = self.tail[l as usize];
        if i == NIL {
            return None;
        }
        self.unlink(i);
        self.free.push(i);
        Some(self.key[i as usize])
    }
}

/// Exact LRU.
#[derive(Debug)]
struct Lru {
    cap: usize,
    at: HashMap<u64, u32>,
    lists: Lists,
}

impl Policy for Lru {
    fn access(&mut self, key: u64) -> bool {
        if let Some(&i) = self.at.get(&key) {
            self.lists.move_to(0, i);
            return true;
        }
        let i = self.lists.push_front(0, key);
        self.at.insert(key, i);
        if self.at.len() > self.cap
            && let Some(old) = self.lists.pop_back(0)
        {
            self.at.remove(&old);
        }
        false
    }
}

/// A key in main (else small), in its state byte.
const MAIN: u8 = 0x80;

/// Ember's S3-FIFO (`crates/store/src/keyspace/s3fifo.rs`), optionally
/// with main aging (see the module's documentation).
#[derive(Debug)]
struct S3Fifo {
    cap: usize,
    /// State (reads, `MAIN`), the read before last's time, insertion time.
    keys: HashMap<u64, (u8, u64, u64)>,
    small: VecDeque<u64>,
    main: VecDeque<u64>,
    ghost: Vec<u8>,
    age: Option<f64>,
    now: u64,
}

impl S3Fifo {
    fn fingerprint(key: u64) -> (u8, usize) {
        let h = mix(key);
        (((h >> 56) as u8).max(1), h as usize)
    }

    fn evict(&mut self) {
        if let (Some(k), Some(&head)) = (self.age, self.small.front()) {
            let horizon = (self.now - self.keys[&head].2) as f64 * k;
            if let Some(m) = self.main.pop_front() {
                if (self.now - self.keys[&m].1) as f64 > horizon {
                    self.keys.remove(&m);
                    return;
                }
                self.main.push_back(m);
            }
        }
        loop {
            let n = self.keys.len();
            if !self.small.is_empty()
                && (self.small.len() >= (n / 10).max(1) || self.main.is_empty())
            {
                let Some(k) = self.small.pop_front() else {
                    return;
                };
                let state = self.keys[&k].0;
                if state & 3 != 0 {
                    self.keys.entry(k).and_modify(|s| s.0 = MAIN);
                    self.main.push_back(k);
                    continue;
                }
                self.keys.remove(&k);
                // About as many places as main holds keys, to a power of two.
                let want = (n - n / 10).max(8).next_power_of_two();
                if self.ghost.len() != want {
                    self.ghost = vec![0; want];
                }
                let (fp, at) = Self::fingerprint(k);
                let len = self.ghost.len();
                self.ghost[at & (len - 1)] = fp;
                return;
            }
            let Some(k) = self.main.pop_front() else {
                return;
            };
            let state = self.keys[&k].0;
            if state & 3 != 0 {
                self.keys.entry(k).and_modify(|s| s.0 = state - 1);
                self.main.push_back(k);
                continue;
            }
            self.keys.remove(&k);
            return;
        }
    }
}

impl Policy for S3Fifo {
    fn access(&mut self, key: u64) -> bool {
        self.now += 1;
        if let Some(s) = self.keys.get_mut(&key) {
            if s.0 & 3 < 3 {
                s.0 += 1;
            }
            s.1 = self.now;
            return true;
        }
        let (fp, at) = Self::fingerprint(key);
        let len = self.ghost.len();
        if len > 0 && self.ghost[at & (len - 1)] == fp {
            self.ghost[at & (len - 1)] = 0;
            self.keys.insert(key, (MAIN, self.now, self.now));
            self.main.push_back(key);
        } else {
            self.keys.insert(key, (0, self.now, self.now));
            self.small.push_back(key);
        }
        while self.keys.len() > self.cap {
            self.evict();
        }
        false
    }
}

/// ARC's lists: recent (T1), frequent (T2), and their ghosts (B1, B2).
const T1: u8 = 1;
const T2: u8 = 2;
const B1: u8 = 3;
const B2: u8 = 4;

/// ARC.
#[derive(Debug)]
struct Arc {
    cap: usize,
    target: f64,
    at: HashMap<u64, u32>,
    lists: Lists,
}

impl Arc {
    fn replace(&mut self, in_b2: bool) {
        let t1 = self.lists.len[T1 as usize];
        let from_t1 = t1 > 0 && ((in_b2 && t1 as f64 == self.target) || t1 as f64 > self.target);
        let (from, to) = if from_t1 || self.lists.len[T2 as usize] == 0 {
            (T1, B1)
        } else {
            (T2, B2)
        };
        let i = self.lists.tail[from as usize];
        if i != NIL {
            self.lists.move_to(to, i);
        }
    }

    fn drop_last(&mut self, l: u8) {
        if let Some(k) = self.lists.pop_back(l) {
            self.at.remove(&k);
        }
    }
}

impl Policy for Arc {
    fn access(&mut self, key: u64) -> bool {
        let len = |a: &Arc, l: u8| a.lists.len[l as usize];
        if let Some(&i) = self.at.get(&key) {
            let l = self.lists.list[i as usize];
            if l == T1 || l == T2 {
                self.lists.move_to(T2, i);
                return true;
            }
            let (b1, b2) = (len(self, B1) as f64, len(self, B2) as f64);
            if l == B1 {
                self.target = (self.target + (b2 / b1).max(1.0)).min(self.cap as f64);
            } else {
                self.target = (self.target - (b1 / b2).max(1.0)).max(0.0);
            }
            self.replace(l == B2);
            self.lists.move_to(T2, i);
            return false;
        }
        let l1 = len(self, T1) + len(self, B1);
        if l1 == self.cap {
            if len(self, T1) < self.cap {
                self.drop_last(B1);
                self.replace(false);
            } else {
                self.drop_last(T1);
            }
        } else {
            let total = l1 + len(self, T2) + len(self, B2);
            if total >= self.cap {
                if total == 2 * self.cap {
                    self.drop_last(B2);
                }
                self.replace(false);
            }
        }
        let i = self.lists.push_front(T1, key);
        self.at.insert(key, i);
        false
    }
}

/// A count-min sketch of 4-bit counters, four rows in one table.
#[derive(Debug)]
struct Sketch {
    table: Vec<u64>,
    added: usize,
    period: usize,
}

impl Sketch {
    fn places(&self, key: u64) -> [(usize, u32); 4] {
        let h = mix(key);
        std::array::from_fn(|i| {
            let x = mix(h ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            (x as usize & (self.table.len() - 1), ((x >> 60) as u32) * 4)
        })
    }

    fn count(&self, key: u64) -> u64 {
        self.places(key)
            .iter()
            .map(|&(w, s)| (self.table[w] >> s) & 15)
            .min()
            .unwrap_or(0)
    }

    /// Counts a read (the smallest counters only, as Caffeine's
    /// conservative update), halving every counter each `period` reads.
    fn add(&mut self, key: u64) {
        let min = self.count(key);
        if min == 15 {
            return;
        }
        for (w, s) in self.places(key) {
            if (self.table[w] >> s) & 15 == min {
                self.table[w] += 1 << s;
            }
        }
        self.added += 1;
        if self.added >= self.period {
            for w in &mut self.table {
                *w = (*w >> 1) & 0x7777_7777_7777_7777;
            }
            self.added /= 2;
        }
    }
}

const WINDOW: u8 = 0;
const PROBATION: u8 = 1;
const PROTECTED: u8 = 2;

/// W-TinyLFU.
#[derive(Debug)]
struct TinyLfu {
    cap: usize,
    window: usize,
    protected: usize,
    at: HashMap<u64, u32>,
    lists: Lists,
    sketch: Sketch,
    /// The hill climber, if on (`tinylfu:climb`).
    climber: Option<Climber>,
}

/// Caffeine's hill climber, sampling every `period` reads (Caffeine's is
/// ten caches' worth of reads; here one, so that it can follow the
/// shifting trace's phases): if the last sample's hit ratio was better
/// than the one before, the window keeps moving the same way, else it
/// turns; the step starts at 6.25% of the keys and decays by 2% a sample.
#[derive(Debug)]
struct Climber {
    period: usize,
    reads: usize,
    hits: usize,
    previous: f64,
    step: f64,
}

impl TinyLfu {
    /// Evicts main's victim (probation's oldest, else protected's).
    fn evict_main(&mut self) {
        let v = match self.lists.tail[PROBATION as usize] {
            NIL => self.lists.tail[PROTECTED as usize],
            v => v,
        };
        if v == NIL {
            return;
        }
        let vk = self.lists.key[v as usize];
        self.lists.unlink(v);
        self.lists.free.push(v);
        self.at.remove(&vk);
    }

    fn climb(&mut self, hit: bool) {
        let Some(c) = &mut self.climber else { return };
        c.reads += 1;
        c.hits += usize::from(hit);
        if c.reads < c.period {
            return;
        }
        let ratio = c.hits as f64 / c.reads as f64;
        if ratio < c.previous {
            c.step = -c.step;
        }
        c.previous = ratio;
        c.reads = 0;
        c.hits = 0;
        let window = (self.window as f64 + c.step).clamp(1.0, (self.cap - 1) as f64);
        c.step *= 0.98;
        self.window = window as usize;
        self.protected = (self.cap - self.window) * 8 / 10;
    }
}

impl Policy for TinyLfu {
    fn access(&mut self, key: u64) -> bool {
        self.sketch.add(key);
        let hit = self.at.contains_key(&key);
        self.climb(hit);
        if let Some(&i) = self.at.get(&key) {
            match self.lists.list[i as usize] {
                PROBATION => {
                    self.lists.move_to(PROTECTED, i);
                    while self.lists.len[PROTECTED as usize] > self.protected {
                        let t = self.lists.tail[PROTECTED as usize];
                        self.lists.move_to(PROBATION, t);
                    }
                }
                l => self.lists.move_to(l, i),
            }
            return true;
        }
        let i = self.lists.push_front(WINDOW, key);
        self.at.insert(key, i);
        while self.lists.len[WINDOW as usize] > self.window {
            let c = self.lists.tail[WINDOW as usize];
            if self.at.len() <= self.cap {
                self.lists.move_to(PROBATION, c);
                continue;
            }
            // The window's oldest against main's victim: the more
            // frequent stays.
            let v = match self.lists.tail[PROBATION as usize] {
                NIL => self.lists.tail[PROTECTED as usize],
                v => v,
            };
            let (ck, vk) = (self.lists.key[c as usize], self.lists.key[v as usize]);
            let loser = if self.sketch.count(ck) > self.sketch.count(vk) {
                self.lists.move_to(PROBATION, c);
                v
            } else {
                c
            };
            let lk = self.lists.key[loser as usize];
            self.lists.unlink(loser);
            self.lists.free.push(loser);
            self.at.remove(&lk);
        }
        // A window grown by the climber: main gives up its oldest.
        while self.at.len() > self.cap {
            self.evict_main();
        }
        false
    }
}

/// Belady's optimum's hit ratio over `trace` with `cap` keys.
fn opt(trace: &[u64], cap: usize) -> f64 {
    let mut next = vec![usize::MAX; trace.len()];
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for (i, &k) in trace.iter().enumerate().rev() {
        if let Some(&j) = seen.get(&k) {
            next[i] = j;
        }
        seen.insert(k, i);
    }
    let mut held: HashMap<u64, usize> = HashMap::new();
    let mut by_next: BinaryHeap<(usize, u64)> = BinaryHeap::new();
    let (warm, mut hits, mut reads) = (trace.len() / 5, 0u64, 0u64);
    for (i, &k) in trace.iter().enumerate() {
        let hit = held.contains_key(&k);
        if i >= warm && k >> 63 == 0 {
            reads += 1;
            hits += u64::from(hit);
        }
        held.insert(k, next[i]);
        by_next.push((next[i], k));
        while held.len() > cap {
            let Some((n, key)) = by_next.pop() else { break };
            if held.get(&key) == Some(&n) {
                held.remove(&key);
            }
        }
    }
    100.0 * hits as f64 / reads.max(1) as f64
}

/// Replays `trace` through `policy`: its hit ratio in %.
fn replay(policy: &mut dyn Policy, trace: &[u64]) -> f64 {
    let (warm, mut hits, mut reads) = (trace.len() / 5, 0u64, 0u64);
    for (i, &k) in trace.iter().enumerate() {
        let hit = policy.access(k);
        if i >= warm && k >> 63 == 0 {
            reads += 1;
            hits += u64::from(hit);
        }
    }
    100.0 * hits as f64 / reads.max(1) as f64
}

fn policy(name: &str, cap: usize) -> Option<Box<dyn Policy>> {
    let (name, option) = name.split_once(':').unwrap_or((name, ""));
    Some(match name {
        "lru" => Box::new(Lru {
            cap,
            at: HashMap::new(),
            lists: Lists::new(),
        }),
        "s3fifo" => Box::new(S3Fifo {
            cap,
            keys: HashMap::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: Vec::new(),
            age: option.strip_prefix("age=").and_then(|k| k.parse().ok()),
            now: 0,
        }),
        "arc" => Box::new(Arc {
            cap,
            target: 0.0,
            at: HashMap::new(),
            lists: Lists::new(),
        }),
        "tinylfu" => {
            let share: f64 = option.parse().unwrap_or(0.01);
            let climber = (option == "climb").then(|| Climber {
                period: cap,
                reads: 0,
                hits: 0,
                previous: 0.0,
                step: cap as f64 / 16.0,
            });
            let window = ((cap as f64 * share) as usize).max(1);
            Box::new(TinyLfu {
                cap,
                window,
                protected: (cap - window) * 8 / 10,
                at: HashMap::new(),
                lists: Lists::new(),
                sketch: Sketch {
                    table: vec![0; cap.next_power_of_two()],
                    added: 0,
                    period: 10 * cap,
                },
                climber,
            })
        }
        _ => return None,
    })
}

fn main() -> std::process::ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("policy-sim: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let Some((path, specs)) = args.split_first() else {
        return Err("usage: policy-sim TRACE.bin POLICY@KEYS...".into());
    };
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let trace: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    for spec in specs {
        let (name, cap) = spec
            .split_once('@')
            .and_then(|(n, c)| Some((n, c.parse::<usize>().ok()?)))
            .ok_or_else(|| format!("{spec}: expected POLICY@KEYS"))?;
        let ratio = if name == "opt" {
            opt(&trace, cap)
        } else {
            let mut p = policy(name, cap).ok_or_else(|| format!("{name}: unknown policy"))?;
            replay(p.as_mut(), &trace)
        };
        println!("{path} {name}@{cap} {ratio:.2}");
    }
    Ok(())
}

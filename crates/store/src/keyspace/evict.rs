//! What eviction needs from the keyspace: each key's access frequency
//! (Redis's LFU counter, kept beside its access clock), sampling a
//! database for candidates, and the pool of the best candidates seen.
//!
//! Deciding when to evict, and deleting, is the server's: it measures
//! memory and owns the locks. This module only answers "how good a victim
//! is this key" and remembers the best answers across samples.
//!
//! Scores are "higher evicts first", whatever the policy: idle seconds for
//! LRU, `255 - frequency` for LFU, `u64::MAX - deadline` for TTL.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use super::db::{Db, Slot, lru_clock};
use super::s3fifo::{Fifo, Head, MAIN, Verdict, compact, expand};
use crate::Rng;

/// A new key's frequency counter, as Redis's `LFU_INIT_VAL`: a new key is
/// not the first to go just because it is new.
pub const LFU_INIT: u8 = 5;

/// What accesses count beyond the clock: frequencies ([`COUNT_LFU`], an
/// LFU policy is in force) and S3-FIFO reads ([`COUNT_S3`]). Read on every
/// access, beside the clock: one relaxed load, and one branch while no
/// such policy is in force.
static COUNTING: AtomicU8 = AtomicU8::new(0);
/// [`COUNTING`]: an LFU policy.
const COUNT_LFU: u8 = 1;
/// [`COUNTING`]: `allkeys-s3fifo`.
const COUNT_S3: u8 = 2;
/// `lfu-log-factor`.
static LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
/// `lfu-decay-time`, in minutes.
static DECAY_TIME: AtomicU32 = AtomicU32::new(1);

/// Sets how accesses are counted: `lfu` turns frequency counting on (an
/// LFU policy), with `lfu-log-factor` and `lfu-decay-time`.
pub fn set_lfu(lfu: bool, log_factor: u32, decay_minutes: u32) {
    LOG_FACTOR.store(log_factor, Ordering::Relaxed);
    DECAY_TIME.store(decay_minutes, Ordering::Relaxed);
    match lfu {
        true => COUNTING.fetch_or(COUNT_LFU, Ordering::Relaxed),
        false => COUNTING.fetch_and(!COUNT_LFU, Ordering::Relaxed),
    };
}

/// Whether an LFU policy is in force.
#[inline]
pub fn lfu_enabled() -> bool {
    COUNTING.load(Ordering::Relaxed) & COUNT_LFU != 0
}

/// Turns S3-FIFO's bookkeeping on or off (`allkeys-s3fifo` in force): new
/// keys join a database's queues once it has them, reads are counted.
/// Queues left from an earlier time the policy was in force must be
/// dropped ([`Db::drop_s3fifo`]) when it changes.
pub fn set_s3fifo(on: bool) {
    let was = match on {
        true => COUNTING.fetch_or(COUNT_S3, Ordering::Relaxed),
        false => COUNTING.fetch_and(!COUNT_S3, Ordering::Relaxed),
    };
    if (was & COUNT_S3 != 0) != on {
        // Queues built before this change miss what came in meanwhile.
        S3_EPOCH.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts the times `allkeys-s3fifo` was turned on or off: queues built
/// under an earlier count are stale, and are rebuilt or dropped when met.
static S3_EPOCH: AtomicU32 = AtomicU32::new(0);

/// Whether `allkeys-s3fifo` is in force.
#[inline]
pub fn s3fifo_enabled() -> bool {
    COUNTING.load(Ordering::Relaxed) & COUNT_S3 != 0
}

/// `counter` as it stands after the minutes since `last_access` (on
/// [`lru_clock`]) decayed it: one less per `lfu-decay-time` minutes
/// (Redis's `LFUDecrAndReturn`, with minutes counted the way Redis's
/// 16-bit minute clock counts them).
pub fn lfu_decayed(counter: u8, last_access: u32) -> u8 {
    lfu_decayed_at(counter, last_access, lru_clock())
}

/// [`lfu_decayed`] with the clock reading `now`.
fn lfu_decayed_at(counter: u8, last_access: u32, now: u32) -> u8 {
    let period = DECAY_TIME.load(Ordering::Relaxed);
    if period == 0 {
        return counter;
    }
    let minutes = (now / 60).wrapping_sub(last_access / 60);
    // A clock stamped in the future (RESTORE's IDLETIME never does that,
    // but a wrapped clock might) reads as no time passed.
    let minutes = if minutes > u32::MAX / 2 { 0 } else { minutes };
    let periods = minutes / period;
    counter.saturating_sub(periods.min(255) as u8)
}

thread_local! {
    /// The per-thread generator the logarithmic increment draws from.
    static DRAW: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) };
}

/// A uniform draw in `[0, 1)`, from a per-thread xorshift.
fn draw() -> f64 {
    DRAW.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// `counter` after one more access: incremented with probability
/// `1 / ((counter - LFU_INIT) * lfu-log-factor + 1)`, so that it grows
/// with the logarithm of the accesses (Redis's `LFULogIncr`).
pub fn lfu_incremented(counter: u8) -> u8 {
    if counter == u8::MAX {
        return counter;
    }
    let base = f64::from(counter.saturating_sub(LFU_INIT));
    let p = 1.0 / (base * f64::from(LOG_FACTOR.load(Ordering::Relaxed)) + 1.0);
    if draw() < p { counter + 1 } else { counter }
}

/// Records an access on a slot: its clock, and under an LFU policy its
/// frequency (decayed first, from the previous access's time).
#[inline]
pub(super) fn touch(slot: &mut Slot) {
    let now = lru_clock();
    let counting = COUNTING.load(Ordering::Relaxed);
    if counting != 0 {
        if counting & COUNT_LFU != 0 {
            slot.freq = lfu_incremented(lfu_decayed(slot.freq, slot.lru));
        }
        if counting & COUNT_S3 != 0 {
            slot.s3 = super::s3fifo::read(slot.s3);
        }
    }
    slot.lru = now;
}

/// The keys of `map` as S3-FIFO's queues take them: each key's hash, and
/// whether its slot says it is in the main queue.
fn queued(map: &super::table::Table<Box<Slot>>) -> impl Iterator<Item = (u64, bool)> + '_ {
    map.iter()
        .map(|s| (super::hash_key(&s.key), s.s3 & MAIN != 0))
}

/// What eviction ranks keys by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// Least recently used first (idle time).
    Lru,
    /// Least frequently used first (the decayed counter).
    Lfu,
    /// Nearest deadline first.
    Ttl,
}

/// One candidate for eviction: where it is, and how good a victim it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Higher evicts first.
    pub score: u64,
    /// Its database.
    pub db: usize,
    /// Its key.
    pub key: super::Key,
}

impl<W> Db<W> {
    /// Samples up to `n` keys at random (only those with a deadline when
    /// `volatile`) and hands each to `out` as a [`Candidate`] ranked by
    /// `rank`. Keys are drawn from random places of the table (or of the
    /// list of keys with a deadline), so every key is as likely to be
    /// drawn, as Redis's `dictGetSomeKeys` intends.
    pub fn evict_sample(
        &self,
        n: usize,
        volatile: bool,
        rank: Rank,
        rng: &mut Rng,
        out: &mut impl FnMut(Candidate),
    ) {
        let now = lru_clock();
        let score = |slot: &Slot| match rank {
            Rank::Lru => u64::from(now.wrapping_sub(slot.lru)),
            Rank::Lfu => 255 - u64::from(lfu_decayed(slot.freq, slot.lru)),
            Rank::Ttl => {
                // Only keys with a deadline are sampled for TTL.
                let at = slot.entry.expire_at().unwrap_or(i64::MAX);
                u64::MAX - (at as u64 ^ (1 << 63))
            }
        };
        if volatile || rank == Rank::Ttl {
            let keys = self.volatile.keys();
            for _ in 0..n.min(keys.len()) {
                let Some(i) = rng.below(keys.len()) else {
                    return;
                };
                let key = &keys[i];
                if let Some(slot) = self.map.find(super::hash_key(key), |s| s.key == *key) {
                    out(Candidate {
                        score: score(slot),
                        db: self.index,
                        key: key.clone(),
                    });
                }
            }
            return;
        }
        // Consecutive places from a random one, as Redis's
        // `dictGetSomeKeys` walks consecutive buckets: places are in hash
        // order, so neighbours are as random as any keys, and the walk
        // reads a few lines where random places would miss the cache at
        // every draw.
        let buckets = self.map.num_buckets();
        let want = n.min(self.map.len());
        let Some(mut b) = rng.below(buckets) else {
            return;
        };
        // First the slots, each prefetched as found, then their scores:
        // the samples' cache misses overlap instead of following one
        // another (reading a slot's clock is what sampling waits on).
        let mut slots: smallvec::SmallVec<[&Slot; 16]> = smallvec::SmallVec::new();
        // The table is at least 44% full: the walk stops long before this.
        for _ in 0..buckets.min(want * 16 + 64) {
            if slots.len() == want {
                break;
            }
            if let Some(slot) = self.map.get_bucket(b) {
                super::table::prefetch_line(&**slot as *const Slot as *const u8);
                slots.push(slot);
            }
            b += 1;
            if b == buckets {
                b = 0;
            }
        }
        for slot in slots {
            out(Candidate {
                score: score(slot),
                db: self.index,
                key: slot.key.clone(),
            });
        }
    }

    /// A key picked at random (among those with a deadline when
    /// `volatile`), for the random policies; expired or not.
    pub fn evict_random(&self, volatile: bool, rng: &mut Rng) -> Option<super::Key> {
        if volatile {
            let keys = self.volatile.keys();
            return keys.get(rng.below(keys.len())?).cloned();
        }
        let buckets = self.map.num_buckets();
        for _ in 0..64 {
            if let Some(slot) = self.map.get_bucket(rng.below(buckets)?) {
                return Some(slot.key.clone());
            }
        }
        let n = rng.below(self.map.len())?;
        self.map.iter().nth(n).map(|s| s.key.clone())
    }

    /// How many keys eviction may choose from (those with a deadline when
    /// `volatile`).
    pub fn evictable(&self, volatile: bool) -> usize {
        if volatile {
            self.volatile.len()
        } else {
            self.map.len()
        }
    }

    /// `key`'s access frequency as OBJECT FREQ reports it (decayed, not
    /// counted as an access).
    pub fn freq(&self, key: &[u8]) -> Option<u8> {
        let slot = self.map.find(super::hash_key(key), |s| s.key[..] == *key)?;
        Some(lfu_decayed(slot.freq, slot.lru))
    }

    /// The key S3-FIFO evicts next from this database (`allkeys-s3fifo`),
    /// or `None` if it has none. The queues move on (keys go round, or
    /// from small to main) but the key is not deleted: the caller deletes
    /// it as an eviction. The first call builds the queues from the table.
    pub fn s3fifo_victim(&mut self) -> Option<super::Key> {
        if self.map.is_empty() {
            // A database that emptied keeps no queues: built again from
            // its table should it fill (and need them) again.
            self.fifo = None;
            return None;
        }
        self.s3fifo_queues();
        let (map, Some(fifo)) = (&mut self.map, self.fifo.as_mut()) else {
            return None;
        };
        // Each entry is met at most four times (three reads to spend, then
        // evicted); stale entries once.
        let mut budget = 4 * fifo.len() + 16;
        let mut rebuilt = false;
        while budget > 0 {
            budget -= 1;
            let Some(head) = fifo.next(map.len()) else {
                // Keys but no entries (cannot happen while every new key
                // joins): once, queue them as they are.
                if rebuilt {
                    return None;
                }
                rebuilt = true;
                **fifo = Fifo::build(fifo.epoch(), queued(map));
                budget = 4 * fifo.len() + 16;
                continue;
            };
            let (Head::Small(entry) | Head::Main(entry)) = head;
            let at = map.find_index(expand(entry), |s| compact(super::hash_key(&s.key)) == entry);
            match fifo.decide(head, at.map(|i| map.at(i).s3)) {
                Verdict::Evict => return at.map(|i| map.at(i).key.clone()),
                Verdict::Keep(s3) => {
                    if let Some(i) = at {
                        map.at_mut(i).s3 = s3;
                    }
                }
                Verdict::Skip => {}
            }
        }
        None
    }

    /// This database's queues, built from its table if it has none of
    /// the policy's current epoch: keys that came before the policy (or
    /// before the queues were dropped) join them as they stand.
    fn s3fifo_queues(&mut self) -> &mut Fifo {
        let epoch = S3_EPOCH.load(Ordering::Relaxed);
        if self.fifo.as_ref().is_none_or(|f| f.epoch() != epoch) {
            self.fifo = Some(Box::new(Fifo::build(epoch, queued(&self.map))));
        }
        self.fifo.get_or_insert_default()
    }

    /// A new key hashed `hash` joins the queues (`allkeys-s3fifo`, the
    /// key not in the table yet); returns its slot's S3-FIFO state.
    pub(super) fn s3fifo_admit(&mut self, hash: u64) -> u8 {
        let keys = self.map.len();
        self.s3fifo_queues();
        let (map, Some(fifo)) = (&self.map, self.fifo.as_mut()) else {
            return 0;
        };
        // Entries of keys deleted by commands stay until met: when they
        // outnumber the keys, drop them (each sweep follows at least as
        // many deletions as it costs lookups).
        if fifo.len() > 2 * keys + 64 {
            fifo.sweep(|e, main| {
                map.find(expand(e), |s| compact(super::hash_key(&s.key)) == e)
                    .is_some_and(|s| (s.s3 & MAIN != 0) == main)
            });
        }
        fifo.admit(hash)
    }

    /// Drops this database's S3-FIFO queues (the policy changed).
    pub fn drop_s3fifo(&mut self) {
        self.fifo = None;
    }

    /// Sets `key`'s access frequency (RESTORE's FREQ, DEBUG).
    pub fn set_freq(&mut self, key: &[u8], freq: u8) {
        if let Some(slot) = self
            .map
            .find_mut(super::hash_key(key), |s| s.key[..] == *key)
        {
            slot.freq = freq;
            slot.lru = lru_clock();
        }
    }
}

/// The best candidates seen so far, best last (Redis's eviction pool of
/// 16): each sampling round adds its keys, and a victim is taken from the
/// top. A key seen in a round keeps its place across rounds, so the pool
/// compares keys over many more samples than one round draws.
#[derive(Debug, Default)]
pub struct Pool {
    best: Vec<Candidate>,
}

impl Pool {
    /// How many candidates the pool keeps, as Redis's `EVPOOL_SIZE`.
    pub const SIZE: usize = 16;

    /// Offers `c`: kept if the pool has room or `c` beats its worst. A key
    /// already in the pool has its score refreshed.
    pub fn offer(&mut self, c: Candidate) {
        if let Some(i) = self
            .best
            .iter()
            .position(|o| o.db == c.db && o.key == c.key)
        {
            self.best.remove(i);
        }
        if self.best.len() == Self::SIZE {
            if self.best[0].score >= c.score {
                return;
            }
            self.best.remove(0);
        }
        let at = self.best.partition_point(|o| o.score <= c.score);
        self.best.insert(at, c);
    }

    /// Takes the best candidate.
    pub fn pop(&mut self) -> Option<Candidate> {
        self.best.pop()
    }

    /// Whether the pool holds no candidate.
    pub fn is_empty(&self) -> bool {
        self.best.is_empty()
    }

    /// Forgets every candidate (the policy changed, the keyspace was
    /// flushed).
    pub fn clear(&mut self) {
        self.best.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Key;

    fn cand(score: u64, key: &str) -> Candidate {
        Candidate {
            score,
            db: 0,
            key: Key::from_slice(key.as_bytes()),
        }
    }

    #[test]
    fn the_pool_keeps_the_best_sixteen_and_gives_the_best_first() {
        let mut pool = Pool::default();
        for i in 0..40u64 {
            pool.offer(cand((i * 7) % 40, &format!("k{i}")));
        }
        let mut got = vec![];
        while let Some(c) = pool.pop() {
            got.push(c.score);
        }
        assert_eq!(got, (24..40).rev().collect::<Vec<u64>>());
        // A key offered again is not kept twice.
        pool.offer(cand(1, "a"));
        pool.offer(cand(3, "a"));
        assert_eq!(pool.pop(), Some(cand(3, "a")));
        assert!(pool.is_empty());
    }

    #[test]
    fn frequencies_grow_logarithmically_and_decay_by_the_minute() {
        set_lfu(true, 10, 1);
        let mut c = LFU_INIT;
        for _ in 0..100 {
            c = lfu_incremented(c);
        }
        // With factor 10, 100 accesses reach about 10 (Redis's table: 100
        // hits give 10 at factor 10).
        assert!((7..=14).contains(&c), "{c}");
        let mut d = 0;
        for _ in 0..1_000_000 {
            d = lfu_incremented(d);
        }
        assert!(d > 200, "{d}");
        // Three minutes ago, decay 1 minute: three less.
        let now = 1_000_000;
        assert_eq!(lfu_decayed_at(10, now - 180, now), 7);
        assert_eq!(lfu_decayed_at(2, now - 600, now), 0);
        assert_eq!(lfu_decayed_at(2, now + 60, now), 2);
        set_lfu(false, 10, 1);
    }
}

//! Per-command latency histograms, for INFO's `latencystats` section
//! (Redis 7.0's `latency-tracking`).
//!
//! Redis keeps an HdrHistogram per command with two significant digits.
//! This is the same idea, smaller: log-linear buckets over nanoseconds,
//! exact below 32 ns, then 16 buckets per power of two (so a reported
//! percentile is at most 1/16 above the true one), up to about 68
//! seconds. A command's histogram is allocated the first time it is called.
//! Calls are counted in the connection's [`Local`] batch and added to the
//! shared atomics when the batch is flushed, as the other counters are.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Values below this are their own bucket.
const EXACT: u64 = 32;
/// Buckets per power of two above [`EXACT`].
const SUB: u64 = 16;
/// log2 of [`EXACT`].
const EXACT_BITS: u32 = 5;
/// The largest value kept apart: 2^36 ns, about 68 s; longer calls count
/// in the last bucket.
const MAX_BITS: u32 = 36;
/// How many buckets a histogram has.
pub(crate) const BUCKETS: usize = (EXACT + (MAX_BITS - EXACT_BITS) as u64 * SUB) as usize;

/// The bucket of a duration of `ns` nanoseconds.
#[inline]
pub(crate) fn bucket(ns: u64) -> usize {
    if ns < EXACT {
        return ns as usize;
    }
    let ns = ns.min((1 << MAX_BITS) - 1);
    let bits = 63 - ns.leading_zeros(); // EXACT_BITS..MAX_BITS
    let sub = (ns >> (bits - 4)) & (SUB - 1);
    (EXACT + u64::from(bits - EXACT_BITS) * SUB + sub) as usize
}

/// The largest value bucket `i` holds, in nanoseconds (what a percentile
/// reports, as HdrHistogram reports a bucket's highest equivalent value).
pub(crate) fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let bits = (i - EXACT) / SUB + u64::from(EXACT_BITS);
    let sub = (i - EXACT) % SUB;
    let width = 1u64 << (bits - 4);
    (1u64 << bits) + (sub + 1) * width - 1
}

/// One command's histogram.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: OnceLock<Box<[AtomicU64]>>,
}

impl Histogram {
    fn buckets(&self) -> &[AtomicU64] {
        self.buckets
            .get_or_init(|| (0..BUCKETS).map(|_| AtomicU64::new(0)).collect())
    }

    /// Adds `n` calls to bucket `i`.
    fn add(&self, i: usize, n: u64) {
        self.buckets()[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Forgets every call (CONFIG RESETSTAT).
    pub(crate) fn reset(&self) {
        if let Some(b) = self.buckets.get() {
            b.iter().for_each(|c| c.store(0, Ordering::Relaxed));
        }
    }

    /// The calls counted, and the value (ns) at each of `percentiles`, or
    /// `None` if there were none.
    pub(crate) fn percentiles(&self, percentiles: &[f64]) -> Option<Vec<u64>> {
        let counts: Vec<u64> = self
            .buckets
            .get()?
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        Some(
            percentiles
                .iter()
                .map(|p| {
                    // The smallest value with at least p% of the calls at
                    // or below it.
                    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
                    let mut seen = 0;
                    let at = counts
                        .iter()
                        .position(|&c| {
                            seen += c;
                            seen >= rank
                        })
                        .unwrap_or(BUCKETS - 1);
                    upper(at)
                })
                .collect(),
        )
    }
}

/// Calls of one command gathered by a connection, not yet in its
/// [`Histogram`]: usually one or two buckets.
#[derive(Debug, Default)]
pub(crate) struct Local {
    counts: smallvec::SmallVec<[(u16, u32); 4]>,
}

impl Local {
    /// Counts a call that took `ns` nanoseconds.
    #[inline]
    pub(crate) fn record(&mut self, ns: u64) {
        let b = bucket(ns) as u16;
        match self.counts.iter_mut().find(|(i, _)| *i == b) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((b, 1)),
        }
    }

    /// Adds the gathered calls to `into` and forgets them.
    pub(crate) fn flush(&mut self, into: &Histogram) {
        for (i, n) in self.counts.drain(..) {
            into.add(usize::from(i), u64::from(n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for ns in (0..5000).chain([1 << 20, 123_456_789, 1 << 35, u64::MAX]) {
            let b = bucket(ns);
            assert!(b < BUCKETS);
            assert!(b >= last || ns > 5000, "bucket of {ns} went back");
            if ns < (1 << MAX_BITS) {
                assert!(upper(b) >= ns, "{ns} above its bucket's top {}", upper(b));
                // At most 1/16 above.
                assert!(upper(b) - ns <= ns / 16, "bucket of {ns} too wide");
                if b > 0 {
                    assert!(upper(b - 1) < ns);
                }
            }
            last = b;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_read_the_gathered_calls() {
        let h = Histogram::default();
        assert_eq!(h.percentiles(&[50.0]), None);
        let mut local = Local::default();
        for _ in 0..98 {
            local.record(1000);
        }
        local.record(50_000);
        local.record(2_000_000);
        local.flush(&h);
        let p = h.percentiles(&[50.0, 99.0, 99.9, 100.0]).unwrap();
        assert_eq!(p[0], upper(bucket(1000)));
        assert!((1000..=1063).contains(&p[0]));
        assert_eq!(p[1], upper(bucket(50_000)));
        assert_eq!(p[2], upper(bucket(2_000_000)));
        assert_eq!(p[3], p[2]);
        h.reset();
        assert_eq!(h.percentiles(&[50.0]), None);
    }
}

//! The router's settings.

use std::fmt;
use std::time::Duration;

/// How many replica groups must acknowledge a write before it succeeds.
///
/// Every write is sent to every group that is not marked down; the policy
/// only decides when the caller hears back. Groups that answer after that
/// still count for their node's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum WritePolicy {
    /// One group.
    #[default]
    One,
    /// A majority of groups: `R / 2 + 1`.
    Quorum,
    /// Every group.
    All,
}

impl WritePolicy {
    /// The acknowledgements needed out of `groups`.
    pub fn needed(self, groups: u32) -> usize {
        let groups = groups as usize;
        match self {
            WritePolicy::One => groups.min(1),
            WritePolicy::Quorum => groups / 2 + 1,
            WritePolicy::All => groups,
        }
    }
}

impl fmt::Display for WritePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WritePolicy::One => "one",
            WritePolicy::Quorum => "quorum",
            WritePolicy::All => "all",
        })
    }
}

/// Which replica a read tries first; the others follow, in group order, when
/// it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ReadPreference {
    /// Group 0, then 1, and so on.
    #[default]
    Fixed,
    /// Each read starts one group further than the last.
    RoundRobin,
    /// The node with the lowest recent latency: an exponentially weighted
    /// moving average (weight 1/4) of the time from sending a command to its
    /// reply, where a timeout counts as the whole timeout. Nodes not yet
    /// measured come first, so each is measured. Writes reach every group,
    /// so they keep every node's figure fresh.
    FastestRecently,
}

/// When to probe a node that is down: exponential backoff with jitter.
///
/// Retry `n` (from 0) waits `min(initial * 2^n, max)`, shortened by a random
/// fraction of up to `jitter` of itself, so nodes that failed together are
/// not all probed at the same instant. With `jitter` at most one half, each
/// wait is at least as long as the one before while `initial * 2^n` is
/// below `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// The largest fraction, from 0 to 1, cut from a wait at random.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            jitter: 0.25,
        }
    }
}

impl Backoff {
    /// The wait before retry `attempt`, where `unit` is a random number in
    /// `[0, 1)` (anything outside is clamped, NaN counts as 0).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let factor = 1u32 << attempt.min(31);
        let nominal = self.initial.saturating_mul(factor).min(self.max);
        let fraction = |x: f64| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
        let cut = nominal.as_nanos() as f64 * fraction(self.jitter) * fraction(unit);
        // `as` saturates, and `cut` is at most `nominal`.
        nominal.saturating_sub(Duration::from_nanos(cut as u64))
    }
}

/// The router's settings. Build one with [`Config::default`] and change the
/// fields you need.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// How many groups must acknowledge a write.
    pub write_policy: WritePolicy,
    /// Which replica a read tries first.
    pub read_preference: ReadPreference,
    /// How long a node has to answer a command (a blocking command gets its
    /// own timeout on top). Past it, the connection is reset.
    pub timeout: Duration,
    /// How many failures in a row (lost connections and timeouts, each
    /// counted once however many commands it took down) mark a node down.
    /// Zero counts as one.
    pub failure_threshold: u32,
    /// When to probe a node that is down.
    pub backoff: Backoff,
    /// The seed of the jitter: the same seed gives the same waits.
    pub seed: u64,
    /// Self-healing: where the fleet keeps its markers and hints (see
    /// [`Trust`](crate::Trust)). `None` takes every node's data on trust.
    pub healing: Option<crate::Healing>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            write_policy: WritePolicy::One,
            read_preference: ReadPreference::Fixed,
            timeout: Duration::from_secs(1),
            failure_threshold: 3,
            backoff: Backoff::default(),
            seed: 0,
            healing: None,
        }
    }
}

/// A small deterministic generator (SplitMix64) for the jitter: the crate
/// wants repeatable waits, not secrecy.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed() {
        let n = |p: WritePolicy| [1, 2, 3, 4, 5].map(|g| p.needed(g));
        assert_eq!(n(WritePolicy::One), [1, 1, 1, 1, 1]);
        assert_eq!(n(WritePolicy::Quorum), [1, 2, 2, 3, 3]);
        assert_eq!(n(WritePolicy::All), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: 0.5,
        };
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(b.delay(0, 0.0)), 100);
        assert_eq!(ms(b.delay(0, 0.999_999)), 50);
        assert_eq!(ms(b.delay(3, 0.0)), 800);
        assert_eq!(ms(b.delay(4, 0.0)), 1000);
        assert_eq!(ms(b.delay(u32::MAX, 0.0)), 1000);
        assert_eq!(ms(b.delay(2, f64::NAN)), 400);
        assert_eq!(ms(b.delay(2, 7.0)), 200);
        let mut rng = SplitMix64::new(7);
        let mut last = Duration::ZERO;
        for attempt in 0..40 {
            let d = b.delay(attempt, rng.unit());
            assert!(d <= b.max);
            if b.initial * (1 << attempt.min(20)) <= b.max {
                assert!(d >= last);
            }
            last = d;
        }
        let wild = Backoff {
            initial: Duration::MAX,
            max: Duration::MAX,
            jitter: f64::INFINITY,
        };
        assert!(wild.delay(40, 0.5) < Duration::MAX);
    }

    #[test]
    fn splitmix_is_seeded() {
        let draw = |seed| {
            let mut r = SplitMix64::new(seed);
            [r.next_u64(), r.next_u64()]
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        let mut r = SplitMix64::new(3);
        assert!((0..1000).map(|_| r.unit()).all(|u| (0.0..1.0).contains(&u)));
    }
}

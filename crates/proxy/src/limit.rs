//! `client-output-buffer-limit pubsub`, as Redis enforces it on its own
//! subscribers: a client whose unsent output reaches the hard limit, or
//! stays at or above the soft limit for longer than the soft seconds, is
//! disconnected. No I/O and no clock here: the session passes the bytes it
//! holds and the time.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// One class's limit: `hard soft seconds`, 0 meaning none (Redis's
/// `client-output-buffer-limit pubsub 32mb 8mb 60` by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutputLimit {
    /// Unsent bytes at which the client is closed at once; 0: none.
    pub hard: u64,
    /// Unsent bytes the client may hold for at most `soft_seconds`; 0:
    /// none.
    pub soft: u64,
    /// How long the soft limit may be exceeded.
    pub soft_seconds: u64,
}

impl OutputLimit {
    /// Redis's default for subscribers: 32 MiB hard, 8 MiB for 60 s.
    pub const PUBSUB: OutputLimit = OutputLimit {
        hard: 32 << 20,
        soft: 8 << 20,
        soft_seconds: 60,
    };

    /// No limit at all.
    pub const NONE: OutputLimit = OutputLimit {
        hard: 0,
        soft: 0,
        soft_seconds: 0,
    };
}

impl Default for OutputLimit {
    fn default() -> Self {
        OutputLimit::PUBSUB
    }
}

impl fmt::Display for OutputLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.hard, self.soft, self.soft_seconds)
    }
}

/// A size as Redis's configuration reads one: digits and an optional unit,
/// `b`, `k` (1000), `kb` (1024), `m`, `mb`, `g`, `gb`, in any case.
fn size(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let mul: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(mul)
}

impl FromStr for OutputLimit {
    type Err = String;

    /// `pubsub <hard> <soft> <seconds>`, as in redis.conf, or the three
    /// numbers alone. Only the `pubsub` class is the proxy's to limit.
    fn from_str(text: &str) -> Result<OutputLimit, String> {
        let mut words: Vec<&str> = text.split_whitespace().collect();
        if let Some(class) = words.first()
            && class.starts_with(|c: char| c.is_ascii_alphabetic())
        {
            if !class.eq_ignore_ascii_case("pubsub") {
                return Err(format!(
                    "client-output-buffer-limit: ember-proxy limits the pubsub class only, not '{class}'"
                ));
            }
            words.remove(0);
        }
        let [hard, soft, seconds] = words[..] else {
            return Err(format!(
                "client-output-buffer-limit: want 'pubsub <hard> <soft> <seconds>', got '{text}'"
            ));
        };
        let bad =
            |what: &str, word: &str| format!("client-output-buffer-limit: bad {what} '{word}'");
        Ok(OutputLimit {
            hard: size(hard).ok_or_else(|| bad("hard limit", hard))?,
            soft: size(soft).ok_or_else(|| bad("soft limit", soft))?,
            soft_seconds: seconds
                .parse()
                .map_err(|_| bad("number of seconds", seconds))?,
        })
    }
}

/// One client's standing against its limit: since when it has held at
/// least the soft limit.
#[derive(Debug, Default)]
pub(crate) struct LimitState {
    soft_since: Option<Instant>,
}

impl LimitState {
    /// Whether a client holding `used` unsent bytes at `now` is over
    /// `limit` and must be closed. As Redis: the hard limit at once; the
    /// soft limit once it has been reached continuously for more than its
    /// seconds (the clock starts when it is first seen reached, and stops
    /// when the client drops below it).
    pub(crate) fn exceeded(&mut self, limit: &OutputLimit, used: usize, now: Instant) -> bool {
        let used = used as u64;
        if limit.hard != 0 && used >= limit.hard {
            return true;
        }
        if limit.soft == 0 || used < limit.soft {
            self.soft_since = None;
            return false;
        }
        match self.soft_since {
            None => {
                self.soft_since = Some(now);
                false
            }
            Some(since) => {
                now.saturating_duration_since(since) > Duration::from_secs(limit.soft_seconds)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_redis_conf() {
        assert_eq!(
            "pubsub 32mb 8mb 60".parse::<OutputLimit>(),
            Ok(OutputLimit::PUBSUB)
        );
        assert_eq!(
            "PubSub 1gb 2k 0".parse::<OutputLimit>(),
            Ok(OutputLimit {
                hard: 1 << 30,
                soft: 2000,
                soft_seconds: 0
            })
        );
        assert_eq!(
            "0 0 0".parse::<OutputLimit>(),
            Ok(OutputLimit::NONE),
            "the class may be left out"
        );
        assert_eq!(
            "1048576 1kb 5"
                .parse::<OutputLimit>()
                .map(|l| (l.hard, l.soft)),
            Ok((1 << 20, 1024))
        );
        for bad in [
            "normal 0 0 0",
            "pubsub 1mb 1mb",
            "pubsub x 1 1",
            "pubsub 1tb 1 1",
            "pubsub 1 1 -1",
            "pubsub -1 1 1",
            "",
        ] {
            assert!(bad.parse::<OutputLimit>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hard_at_once_soft_after_its_seconds() {
        let limit = OutputLimit {
            hard: 100,
            soft: 10,
            soft_seconds: 2,
        };
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s * 100);
        let mut state = LimitState::default();
        assert!(!state.exceeded(&limit, 99, at(0)), "soft starts its clock");
        assert!(!state.exceeded(&limit, 50, at(20)), "2 s are allowed");
        assert!(state.exceeded(&limit, 50, at(21)), "past 2 s");
        let mut state = LimitState::default();
        assert!(!state.exceeded(&limit, 10, at(0)));
        assert!(!state.exceeded(&limit, 9, at(15)), "dropping below resets");
        assert!(!state.exceeded(&limit, 10, at(30)));
        assert!(!state.exceeded(&limit, 10, at(50)));
        assert!(state.exceeded(&limit, 10, at(51)));
        assert!(LimitState::default().exceeded(&limit, 100, at(0)), "hard");
        let mut none = LimitState::default();
        assert!(!none.exceeded(&OutputLimit::NONE, usize::MAX, at(0)));
        assert!(!none.exceeded(&OutputLimit::NONE, usize::MAX, at(1000)));
    }
}

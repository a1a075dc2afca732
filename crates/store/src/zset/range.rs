//! The ranges sorted-set commands take: scores (`(1.5`, `-inf`), members
//! (`[a`, `(a`, `-`, `+`), and LIMIT's window.

use std::cmp::Ordering;

use super::{ZsetError, num};

/// A score range, Redis's `zrangespec`: `min` to `max`, each end included
/// unless marked exclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    /// The low end.
    pub min: f64,
    /// The high end.
    pub max: f64,
    /// Whether `min` itself is out (`(min`).
    pub min_exclusive: bool,
    /// Whether `max` itself is out (`(max`).
    pub max_exclusive: bool,
}

impl ScoreRange {
    /// Every score.
    pub const ALL: ScoreRange = ScoreRange {
        min: f64::NEG_INFINITY,
        max: f64::INFINITY,
        min_exclusive: false,
        max_exclusive: false,
    };

    /// Parses `min` and `max` as ZRANGEBYSCORE, ZCOUNT and
    /// ZREMRANGEBYSCORE do (`zslParseRange`): a number, `(` before it for
    /// an exclusive end; `inf`, `+inf`, `-inf` and their long forms; any
    /// text `strtod` takes whole up to its first NUL (the empty string is
    /// 0). ZREVRANGEBYSCORE passes its `max` argument first here as `max`.
    pub fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, ZsetError> {
        let end = |arg: &[u8]| -> Result<(f64, bool), ZsetError> {
            let (text, exclusive) = match arg.split_first() {
                Some((b'(', rest)) => (rest, true),
                _ => (arg, false),
            };
            let v = num::range_bound(text).ok_or(ZsetError::RangeNotFloat)?;
            Ok((v, exclusive))
        };
        let (min, min_exclusive) = end(min)?;
        let (max, max_exclusive) = end(max)?;
        Ok(ScoreRange {
            min,
            max,
            min_exclusive,
            max_exclusive,
        })
    }

    /// Whether `score` is at or above the low end (`zslValueGteMin`).
    #[inline]
    pub fn above_min(&self, score: f64) -> bool {
        if self.min_exclusive {
            score > self.min
        } else {
            score >= self.min
        }
    }

    /// Whether `score` is at or below the high end (`zslValueLteMax`).
    #[inline]
    pub fn below_max(&self, score: f64) -> bool {
        if self.max_exclusive {
            score < self.max
        } else {
            score <= self.max
        }
    }

    /// Whether `score` is in the range.
    #[inline]
    pub fn contains(&self, score: f64) -> bool {
        self.above_min(score) && self.below_max(score)
    }

    /// Whether no score can be in it (Redis's first test in
    /// `zslIsInRange`).
    pub fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.min_exclusive || self.max_exclusive))
    }
}

/// One end of a member range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    /// `-`: below every member.
    Min,
    /// `+`: above every member.
    Max,
    /// `[member`: the member itself is in.
    Inclusive(Vec<u8>),
    /// `(member`: the member itself is out.
    Exclusive(Vec<u8>),
}

impl LexBound {
    /// Parses one end as `zslParseLexRangeItem` does.
    fn parse(arg: &[u8]) -> Result<LexBound, ZsetError> {
        // Redis reads `+` and `-` as C strings: anything after a NUL does
        // not count.
        let alone = |rest: &[u8]| rest.first().is_none_or(|&b| b == 0);
        match arg.split_first() {
            Some((b'+', rest)) if alone(rest) => Ok(LexBound::Max),
            Some((b'-', rest)) if alone(rest) => Ok(LexBound::Min),
            Some((b'(', rest)) => Ok(LexBound::Exclusive(rest.to_vec())),
            Some((b'[', rest)) => Ok(LexBound::Inclusive(rest.to_vec())),
            _ => Err(ZsetError::LexRange),
        }
    }

    /// How `member` compares with this end (`sdscmplex`, with `-` and `+`
    /// below and above everything).
    fn cmp_member(&self, member: &[u8]) -> Ordering {
        match self {
            LexBound::Min => Ordering::Greater,
            LexBound::Max => Ordering::Less,
            LexBound::Inclusive(b) | LexBound::Exclusive(b) => member.cmp(b),
        }
    }

    fn is_exclusive(&self) -> bool {
        // `-` and `+` are exclusive in Redis, which only matters for the
        // empty-range test.
        !matches!(self, LexBound::Inclusive(_))
    }

    /// Orders two ends the way `sdscmplex` does.
    fn cmp_bound(&self, other: &LexBound) -> Ordering {
        use LexBound::*;
        match (self, other) {
            (Min, Min) | (Max, Max) => Ordering::Equal,
            (Min, _) | (_, Max) => Ordering::Less,
            (Max, _) | (_, Min) => Ordering::Greater,
            (Inclusive(a) | Exclusive(a), Inclusive(b) | Exclusive(b)) => a.cmp(b),
        }
    }
}

/// A member range, Redis's `zlexrangespec`, for ZRANGEBYLEX, ZLEXCOUNT and
/// ZREMRANGEBYLEX. Meaningful when every score is equal, as Redis
/// documents; with mixed scores the members in it are found as each
/// encoding finds them (see [`ZSet::range_by_lex`](super::ZSet::range_by_lex)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexRange {
    /// The low end.
    pub min: LexBound,
    /// The high end.
    pub max: LexBound,
}

impl LexRange {
    /// Every member.
    pub const ALL: LexRange = LexRange {
        min: LexBound::Min,
        max: LexBound::Max,
    };

    /// Parses `min` and `max` (`zslParseLexRange`): each `[member`,
    /// `(member`, `-` or `+`. ZREVRANGEBYLEX passes its `max` argument
    /// first here as `max`.
    pub fn parse(min: &[u8], max: &[u8]) -> Result<LexRange, ZsetError> {
        Ok(LexRange {
            min: LexBound::parse(min)?,
            max: LexBound::parse(max)?,
        })
    }

    /// Whether `member` is at or above the low end (`zslLexValueGteMin`).
    #[inline]
    pub fn above_min(&self, member: &[u8]) -> bool {
        match self.min.cmp_member(member) {
            Ordering::Greater => true,
            Ordering::Equal => !self.min.is_exclusive(),
            Ordering::Less => false,
        }
    }

    /// Whether `member` is at or below the high end (`zslLexValueLteMax`).
    #[inline]
    pub fn below_max(&self, member: &[u8]) -> bool {
        match self.max.cmp_member(member) {
            Ordering::Less => true,
            Ordering::Equal => !self.max.is_exclusive(),
            Ordering::Greater => false,
        }
    }

    /// Whether `member` is in the range.
    #[inline]
    pub fn contains(&self, member: &[u8]) -> bool {
        self.above_min(member) && self.below_max(member)
    }

    /// Whether no member can be in it (the first test of Redis's
    /// `zslIsInLexRange`).
    pub fn is_empty(&self) -> bool {
        match self.min.cmp_bound(&self.max) {
            Ordering::Greater => true,
            Ordering::Equal => self.min.is_exclusive() || self.max.is_exclusive(),
            Ordering::Less => false,
        }
    }
}

/// LIMIT's window over a score or member range: skip `offset` members,
/// then take at most `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Members skipped first.
    pub offset: usize,
    /// The most members taken.
    pub count: usize,
}

impl Limit {
    /// No LIMIT: everything in the range.
    pub const ALL: Limit = Limit {
        offset: 0,
        count: usize::MAX,
    };

    /// LIMIT's arguments as Redis reads them: a negative offset gives
    /// nothing (Redis's loop walks off the end), a negative count gives
    /// everything from the offset on.
    pub fn new(offset: i64, count: i64) -> Limit {
        if offset < 0 {
            return Limit {
                offset: 0,
                count: 0,
            };
        }
        Limit {
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            count: usize::try_from(count).unwrap_or(usize::MAX),
        }
    }
}

impl Default for Limit {
    fn default() -> Self {
        Limit::ALL
    }
}

/// ZRANGE's (and ZREMRANGEBYRANK's) `start` and `stop` against a length:
/// negative ones count from the end; `None` when nothing is in between,
/// else the first and last rank, both in `0..len`.
pub fn rank_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let start = if start < 0 {
        len.saturating_add(start)
    } else {
        start
    }
    .max(0);
    let stop = if stop < 0 {
        len.saturating_add(stop)
    } else {
        stop
    };
    if start > stop || start >= len {
        return None;
    }
    let stop = stop.min(len - 1);
    Some((start as usize, stop as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_ranges_parse_as_redis() {
        let r = ScoreRange::parse(b"(1.5", b"+inf").unwrap();
        assert_eq!(
            r,
            ScoreRange {
                min: 1.5,
                max: f64::INFINITY,
                min_exclusive: true,
                max_exclusive: false
            }
        );
        assert!(!r.contains(1.5) && r.contains(1.6) && r.contains(f64::INFINITY));
        let r = ScoreRange::parse(b"(-inf", b"(+inf").unwrap();
        assert!(r.contains(0.0) && !r.contains(f64::INFINITY));
        assert_eq!(ScoreRange::parse(b"(", b"").unwrap().min, 0.0);
        for (a, b) in [
            (&b"1 "[..], &b"2"[..]),
            (b"nan", b"1"),
            (b"1", b"(x"),
            (b"[1", b"2"),
        ] {
            assert_eq!(ScoreRange::parse(a, b), Err(ZsetError::RangeNotFloat));
        }
        assert!(ScoreRange::parse(b"(1", b"1").unwrap().is_empty());
        assert!(ScoreRange::parse(b"2", b"1").unwrap().is_empty());
        assert!(!ScoreRange::parse(b"1", b"1").unwrap().is_empty());
    }

    #[test]
    fn lex_ranges_parse_as_redis() {
        // Checked against redis-server 7.0.15's ZRANGEBYLEX.
        for bad in [&b""[..], b"a", b"-a", b"+a", b"]a"] {
            assert_eq!(
                LexRange::parse(bad, b"+"),
                Err(ZsetError::LexRange),
                "{bad:?}"
            );
        }
        let r = LexRange::parse(b"[a", b"(c").unwrap();
        assert!(r.contains(b"a") && r.contains(b"bzz") && !r.contains(b"c"));
        assert!(!r.contains(b"") && !r.contains(b"0"));
        assert_eq!(LexRange::parse(b"-\0x", b"+").unwrap(), LexRange::ALL);
        assert!(LexRange::parse(b"+", b"-").unwrap().is_empty());
        assert!(LexRange::parse(b"(a", b"[a").unwrap().is_empty());
        assert!(!LexRange::parse(b"[a", b"[a").unwrap().is_empty());
        assert!(!LexRange::parse(b"[", b"+").unwrap().is_empty());
        // "(" alone is every member but the empty one.
        let r = LexRange::parse(b"(", b"+").unwrap();
        assert!(!r.contains(b"") && r.contains(b"\0"));
        assert!(LexRange::ALL.contains(b"") && !LexRange::ALL.is_empty());
    }

    #[test]
    fn ranks_normalize_as_zrange_does() {
        assert_eq!(rank_range(0, -1, 5), Some((0, 4)));
        assert_eq!(rank_range(-100, 100, 5), Some((0, 4)));
        assert_eq!(rank_range(2, 1, 5), None);
        assert_eq!(rank_range(5, 10, 5), None);
        assert_eq!(rank_range(-2, -1, 5), Some((3, 4)));
        assert_eq!(rank_range(0, -6, 5), None);
        assert_eq!(rank_range(0, 0, 0), None);
        assert_eq!(rank_range(i64::MIN, i64::MAX, 3), Some((0, 2)));
    }

    #[test]
    fn limits_follow_redis_loops() {
        assert_eq!(Limit::new(-1, 5).count, 0);
        assert_eq!(
            Limit::new(2, -1),
            Limit {
                offset: 2,
                count: usize::MAX
            }
        );
        assert_eq!(Limit::new(0, 0).count, 0);
    }
}

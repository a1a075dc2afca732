//! ZUNION, ZINTER, ZDIFF (and their STORE forms) and ZINTERCARD, over
//! sorted sets and plain sets alike, as Redis's
//! `zunionInterDiffGenericCommand` computes them.

use std::borrow::Cow;

use super::{Members, ZSet, cmp_key};
use crate::dict::{Dict, Item};

/// What the set operations read: a sorted set, or a plain set whose
/// members all score 1 (Redis accepts both). A missing key is an empty
/// source.
pub trait Source {
    /// The number of members.
    fn len(&self) -> usize;

    /// Whether it has none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The score of `member`, if it is there.
    fn score(&self, member: &[u8]) -> Option<f64>;

    /// Calls `visit` with every member and its score, in any order, until
    /// it returns `false`; members are borrowed where they can be (an
    /// integer set's members are made as they are visited).
    fn visit<'s>(&'s self, visit: &mut dyn FnMut(Cow<'s, [u8]>, f64) -> bool);
}

impl Source for ZSet {
    fn len(&self) -> usize {
        ZSet::len(self)
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        ZSet::score(self, member)
    }

    fn visit<'s>(&'s self, visit: &mut dyn FnMut(Cow<'s, [u8]>, f64) -> bool) {
        for (m, s) in self.iter() {
            if !visit(Cow::Borrowed(m), s) {
                return;
            }
        }
    }
}

/// One input of ZUNION or ZINTER: a source and its WEIGHTS factor (1 by
/// default).
#[derive(Clone, Copy)]
pub struct Input<'a> {
    /// The source.
    pub source: &'a dyn Source,
    /// Its weight.
    pub weight: f64,
}

impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("len", &self.source.len())
            .field("weight", &self.weight)
            .finish()
    }
}

/// AGGREGATE: how the scores of a member found in several inputs
/// combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Aggregate {
    /// Their sum (the default); `inf` plus `-inf` is 0, as in Redis.
    #[default]
    Sum,
    /// The least.
    Min,
    /// The greatest.
    Max,
}

impl Aggregate {
    /// Folds `value` into `target` (Redis's `zunionInterAggregate`).
    #[inline]
    pub fn apply(self, target: &mut f64, value: f64) {
        match self {
            Aggregate::Sum => {
                *target += value;
                if target.is_nan() {
                    *target = 0.0;
                }
            }
            // Written as Redis compares, so a NaN value keeps the target.
            Aggregate::Min => {
                if value < *target {
                    *target = value;
                }
            }
            Aggregate::Max => {
                if value > *target {
                    *target = value;
                }
            }
        }
    }
}

/// A source's score times its weight, with NaN (0 times infinity) as 0.
#[inline]
fn weighted(score: f64, weight: f64) -> f64 {
    let v = score * weight;
    if v.is_nan() { 0.0 } else { v }
}

/// Sorts a result into a sorted set's order.
fn sorted(mut out: Members<'_>) -> Members<'_> {
    out.sort_unstable_by(|a, b| cmp_key(a.1, &a.0, b.1, &b.0));
    out
}

/// The inputs' positions from the smallest to the largest (a stable sort,
/// as Redis's qsort on glibc is for inputs of equal size): the order in
/// which scores combine, which decides a floating-point sum's last bits.
fn by_size(inputs: &[Input<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| inputs[i].source.len());
    order
}

/// A member being accumulated.
struct Acc<'a> {
    member: Cow<'a, [u8]>,
    score: f64,
}

impl Item for Acc<'_> {
    fn key(&self) -> &[u8] {
        &self.member
    }
}

/// ZUNION: every member of any input, its weighted scores combined by
/// `aggregate`, in order. [`ZSet::from_sorted`] stores it (ZUNIONSTORE).
pub fn union<'a>(inputs: &[Input<'a>], aggregate: Aggregate) -> Members<'a> {
    let order = by_size(inputs);
    let largest = order.last().map_or(0, |&i| inputs[i].source.len());
    let mut acc: Dict<Acc<'a>> = Dict::with_capacity(largest);
    for &i in &order {
        let input = inputs[i];
        input.source.visit(&mut |member, score| {
            let score = weighted(score, input.weight);
            match acc.get_mut(&member) {
                Some(a) => aggregate.apply(&mut a.score, score),
                None => {
                    acc.insert(Acc { member, score });
                }
            }
            true
        });
    }
    sorted(
        acc.into_items()
            .into_iter()
            .map(|a| (a.member, a.score))
            .collect(),
    )
}

/// ZINTER: the members of every input, their weighted scores combined
/// by `aggregate` (starting from the smallest input's), in order.
pub fn inter<'a>(inputs: &[Input<'a>], aggregate: Aggregate) -> Members<'a> {
    let order = by_size(inputs);
    let Some((&first, rest)) = order.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let head = inputs[first];
    head.source.visit(&mut |member, score| {
        let mut score = weighted(score, head.weight);
        for &j in rest {
            let other = inputs[j];
            match other.source.score(&member) {
                // Redis does not clear a NaN here: the aggregate does.
                Some(s) => aggregate.apply(&mut score, s * other.weight),
                None => return true,
            }
        }
        out.push((member, score));
        true
    });
    sorted(out)
}

/// ZINTERCARD: how many members every source has, counting no further
/// than `limit` (0 for no limit).
pub fn inter_card(sources: &[&dyn Source], limit: usize) -> usize {
    let mut order: Vec<&dyn Source> = sources.to_vec();
    order.sort_by_key(|s| s.len());
    let Some((first, rest)) = order.split_first() else {
        return 0;
    };
    let mut count = 0;
    first.visit(&mut |member, _| {
        if rest.iter().all(|s| s.score(&member).is_some()) {
            count += 1;
        }
        limit == 0 || count < limit
    });
    count
}

/// ZDIFF: the members of the first source that no other has, with their
/// scores, in order.
pub fn diff<'a>(sources: &[&'a dyn Source]) -> Members<'a> {
    let Some((first, rest)) = sources.split_first() else {
        return Vec::new();
    };
    // Largest first: a member found early is dropped early (Redis's
    // first algorithm).
    let mut rest: Vec<&dyn Source> = rest.to_vec();
    rest.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = Vec::new();
    first.visit(&mut |member, score| {
        if rest.iter().all(|s| s.score(&member).is_none()) {
            out.push((member, score));
        }
        true
    });
    sorted(out)
}

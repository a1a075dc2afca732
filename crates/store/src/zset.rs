//! Sorted sets: members with scores, kept in order of score then member
//! bytes, in Redis's two encodings.
//!
//! A small sorted set is **packed** (OBJECT ENCODING says `listpack`): one
//! buffer of member, score, member, score... in order (`zset/packed.rs`
//! has the layout). It stays packed while it has at most
//! `zset-max-listpack-entries` members and none longer than
//! `zset-max-listpack-value` bytes ([`Limits`], which the caller reads from
//! its configuration). The first addition that breaks either converts it,
//! once, to the **big** encoding (`skiplist`); like Redis, nothing converts
//! it back, except that sets built whole from a result get the encoding
//! their final size calls for: [`ZSet::from_sorted`] for ZUNIONSTORE,
//! ZINTERSTORE, ZDIFFSTORE and RDB values, [`ZSet::from_range`] for
//! ZRANGESTORE.
//!
//! The big encoding is two structures over the same members, as in Redis:
//! a [`Dict`] from member to score (ZSCORE, ZMSCORE, ZADD's lookup, SCAN's
//! cursor, uniform random picks by index) and an order-statistic tree of
//! (score, member id) for everything positional: rank, select, ranges by
//! score, member and rank, pops (`zset/tree.rs`).
//!
//! **Why a B+tree and not Redis's skiplist.** Both answer rank and select
//! in O(log n): Redis's skiplist keeps a `span` beside each forward
//! pointer, a B+tree keeps the number of entries under each child. The
//! skiplist costs a heap node per member (48 to 64 bytes with its levels)
//! and a dependent load per step, about 2·log₂(n) node visits a search,
//! each a cache miss once the set outgrows the cache; the tree keeps 64
//! entries to a leaf as two arrays (scores, then member ids), so a search
//! reads a few contiguous nodes and fetches a member only when scores tie,
//! and a range is a walk along arrays. `benches/zset.rs` sets the two side
//! by side, the skiplist written there as `t_zset.c` has it (spans,
//! backward pointers, levels inside the node, the same dict beside it),
//! both fed the same 15-byte members with random scores. On a busy
//! 2-core machine (medians):
//!
//! | | 1,000 members | | 1,000,000 members | |
//! |---|---|---|---|---|
//! | | B+tree | skiplist | B+tree | skiplist |
//! | insert (per member) | 72 ns | 112 ns | 0.88 µs | 3.8 µs |
//! | ZRANK | 102 ns | 142 ns | 1.43 µs | 6.6 µs |
//! | ZRANGEBYSCORE min +inf LIMIT 0 10 | 155 ns | 144 ns | 1.46 µs | 7.2 µs |
//! | ZRANGE r r+9 | 92 ns | 120 ns | 0.87 µs | 7.5 µs |
//!
//! At a thousand members everything is in cache and the two are close
//! (the skiplist's walk along ten nodes edges out the tree's small range
//! by score); at a million the tree is 4 to 9 times faster. The cost is
//! code: splits, merges and separators, which the tests check invariant by
//! invariant.
//!
//! **Memory.** A member of up to 22 bytes lives inside its dict entry
//! (32 bytes: score and member), longer ones in a heap buffer of their
//! own; the dict adds 8 bytes of links and 4 to 8 of bucket, the tree 12
//! to 18 bytes of leaf (12 when full, 18 at the 70% a B+tree settles at
//! under random inserts). Counted by the bench's allocator, 15-byte
//! members with random scores take 65 bytes each at a thousand and at a
//! million members, 78 at a hundred thousand and 80 just after conversion
//! (the dict's vector of items grows by doubling, and where it stands in
//! its doubling is most of the difference); Redis 7.0 takes 118 to 120
//! for the same members (`MEMORY USAGE`: its skiplist node, sds string,
//! `dictEntry` and bucket), and the test `memory_per_member_is_below_redis`
//! keeps it that way. Packed, the same members take 18 bytes each, where
//! Redis's listpack takes 19.
//!
//! Ranges by member (ZRANGEBYLEX and friends) assume, as Redis documents,
//! that every score is equal. When they are not, each encoding finds the
//! members its own way, as Redis's do (a listpack walks from one end, the
//! tree searches), so answers may differ between encodings, as they do in
//! Redis; they never panic.

mod num;
mod ops;
mod packed;
mod range;
mod rdb;
mod tree;

use std::borrow::Cow;

pub use num::{ScoreText, format_score};
pub use ops::{Aggregate, Input, Source, diff, inter, inter_card, union};
pub use range::{LexBound, LexRange, Limit, ScoreRange, rank_range};
pub use rdb::{load, rdb_type, save, to_listpack};

use crate::dict::{Dict, Item};
use crate::rng::Rng;
use packed::{Packed, cmp_key};
use tree::Tree;

/// Redis's `LISTPACK_MAX_SAFETY_SIZE`: a packed set never grows past this
/// many bytes, whatever the limits allow (Redis's `lpSafeToAdd`).
const MAX_PACKED_BYTES: usize = 1 << 30;

/// When a sorted set stops being packed: `zset-max-listpack-entries` and
/// `zset-max-listpack-value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most members a packed set holds.
    pub entries: usize,
    /// The longest member a packed set holds, in bytes.
    pub value: usize,
}

impl Default for Limits {
    /// Redis 7.0's defaults: 128 members, 64 bytes.
    fn default() -> Self {
        Limits {
            entries: 128,
            value: 64,
        }
    }
}

/// What sorted-set arguments and operations refuse, with Redis's reply
/// text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZsetError {
    /// A score (ZADD, ZINCRBY) that is not a number.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// A NaN score, or an increment that gives one (`+inf` plus `-inf`).
    #[error("ERR resulting score is not a number (NaN)")]
    Nan,
    /// A score range's end that is not a number.
    #[error("ERR min or max is not a float")]
    RangeNotFloat,
    /// A member range's end that is not `[`, `(`, `-` or `+`.
    #[error("ERR min or max not valid string range item")]
    LexRange,
    /// A WEIGHTS argument that is not a number.
    #[error("ERR weight value is not a float")]
    WeightNotFloat,
}

/// A score argument as ZADD and ZINCRBY read it (Redis's `string2d`): the
/// whole argument one number, `inf` and `-inf` included, without spaces,
/// not out of range, not NaN.
pub fn parse_score(arg: &[u8]) -> Result<f64, ZsetError> {
    num::string2d(arg).ok_or(ZsetError::NotFloat)
}

/// A WEIGHTS argument, read as [`parse_score`] reads scores.
pub fn parse_weight(arg: &[u8]) -> Result<f64, ZsetError> {
    num::string2d(arg).ok_or(ZsetError::WeightNotFloat)
}

/// ZADD's options (ZINCRBY is `incr`). The server refuses the
/// combinations Redis refuses (NX with XX, GT or LT; GT with LT; INCR with
/// more than one pair) before it gets here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddFlags {
    /// Only add new members.
    pub nx: bool,
    /// Only update existing members.
    pub xx: bool,
    /// Update an existing member only to a greater score.
    pub gt: bool,
    /// Update an existing member only to a lesser score.
    pub lt: bool,
    /// Add the score to the member's (0 for a new member).
    pub incr: bool,
}

/// What [`ZSet::add`] did. ZADD counts `Added` (and `Updated` with CH);
/// ZINCRBY and `ZADD INCR` reply with the score unless `Skipped`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// A new member, with this score.
    Added(f64),
    /// An existing member, now with this score.
    Updated(f64),
    /// An existing member whose score this is and stays (the same score
    /// again, or an increment of 0).
    Unchanged(f64),
    /// Nothing done because of NX, XX, GT or LT (Redis's `ZADD_OUT_NOP`).
    Skipped,
}

impl Outcome {
    /// The member's score after the call, unless it was skipped.
    pub fn score(self) -> Option<f64> {
        match self {
            Outcome::Added(s) | Outcome::Updated(s) | Outcome::Unchanged(s) => Some(s),
            Outcome::Skipped => None,
        }
    }

    /// Whether the set changed.
    pub fn changed(self) -> bool {
        matches!(self, Outcome::Added(_) | Outcome::Updated(_))
    }
}

/// The longest member kept inside a dict entry.
const INLINE: usize = 22;

/// A member and its score as the big encoding's dict holds them: 32 bytes,
/// the member inside when it has at most [`INLINE`] bytes.
#[derive(Clone)]
struct Entry {
    score: f64,
    member: Member,
}

#[derive(Clone)]
enum Member {
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Entry {
    fn new(member: &[u8], score: f64) -> Entry {
        let member = if member.len() <= INLINE {
            let mut data = [0; INLINE];
            data[..member.len()].copy_from_slice(member);
            Member::Inline {
                len: member.len() as u8,
                data,
            }
        } else {
            Member::Heap(member.into())
        };
        Entry { score, member }
    }

    #[inline]
    fn member(&self) -> &[u8] {
        match &self.member {
            Member::Inline { len, data } => &data[..usize::from(*len)],
            Member::Heap(b) => b,
        }
    }

    /// Heap bytes beyond the entry itself.
    fn heap(&self) -> usize {
        match &self.member {
            Member::Inline { .. } => 0,
            Member::Heap(b) => b.len(),
        }
    }

    fn into_member(self) -> Vec<u8> {
        match self.member {
            Member::Inline { len, data } => data[..usize::from(len)].to_vec(),
            Member::Heap(b) => b.into_vec(),
        }
    }
}

impl Item for Entry {
    #[inline]
    fn key(&self) -> &[u8] {
        self.member()
    }
}

/// The big encoding: a dict for lookups, a tree for order.
#[derive(Clone, Default)]
struct Big {
    dict: Dict<Entry>,
    tree: Tree,
}

/// The member bytes of a dict id (empty for an id that is not there, which
/// never happens while the two agree).
#[inline]
fn key_fn<'d>(dict: &'d Dict<Entry>) -> impl Fn(u32) -> &'d [u8] + 'd {
    move |id| dict.get_index(id as usize).map_or(&[][..], Entry::member)
}

impl Big {
    /// Built from sorted, distinct pairs, with room for `room` more.
    fn from_sorted<'a>(pairs: impl ExactSizeIterator<Item = (&'a [u8], f64)>, room: usize) -> Big {
        let mut dict = Dict::with_capacity(pairs.len() + room);
        let mut order = Vec::with_capacity(pairs.len());
        for (member, score) in pairs {
            order.push((score, dict.len() as u32));
            dict.insert(Entry::new(member, score));
        }
        let tree = Tree::from_sorted(order, &key_fn(&dict));
        Big { dict, tree }
    }

    fn insert(&mut self, member: &[u8], score: f64) {
        let id = self.dict.len() as u32;
        self.dict.insert(Entry::new(member, score));
        self.tree.insert(score, id, &key_fn(&self.dict));
    }

    fn rank_of(&self, member: &[u8], score: f64) -> usize {
        self.tree.rank_of(score, member, &key_fn(&self.dict))
    }

    /// Removes the entry at `rank` from the tree and the dict.
    fn remove_rank(&mut self, rank: usize) -> Option<Entry> {
        let (_, id) = self.tree.remove(rank, &key_fn(&self.dict))?;
        let id = id as usize;
        let last = self.dict.len().checked_sub(1)?;
        if id > last {
            // The tree and the dict always agree; were they not to, this
            // is no place to panic.
            return None;
        }
        // The dict fills the hole with its last entry: find that entry in
        // the tree while every id still names its member, then rename it.
        let moved = if id != last {
            self.dict
                .get_index(last)
                .map(|e| self.tree.rank_of(e.score, e.member(), &key_fn(&self.dict)))
        } else {
            None
        };
        let entry = self.dict.swap_remove_index(id);
        if let Some(rank) = moved {
            self.tree.set_id(rank, id as u32);
        }
        Some(entry)
    }

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.dict.get(member)?.score;
        let rank = self.rank_of(member, score);
        self.remove_rank(rank).map(|e| e.score)
    }

    /// Gives `member` (there, at `old`) the score `new`.
    fn update(&mut self, member: &[u8], old: f64, new: f64) {
        let rank = self.rank_of(member, old);
        let Some((_, id)) = self.tree.remove(rank, &key_fn(&self.dict)) else {
            return;
        };
        if let Some(e) = self.dict.get_mut(member) {
            e.score = new;
        }
        self.tree.insert(new, id, &key_fn(&self.dict));
    }

    /// The entries after the run where `below` holds and within the run
    /// where `within` holds (the ranks `[lo, hi)` of a range), through
    /// LIMIT's window, from `lo` up or from `hi` down. `lo` and `hi` may
    /// be known already (an infinite end); the one the iteration starts
    /// from is found by a descent that leaves the cursor there.
    fn window<'a>(
        &'a self,
        below: impl Fn(f64, tree::Probe<'_>) -> bool,
        within: impl Fn(f64, tree::Probe<'_>) -> bool,
        known: (Option<usize>, Option<usize>),
        limit: Limit,
        reverse: bool,
    ) -> Iter<'a> {
        let len = self.tree.len();
        let (lo, hi, cursor) = if reverse {
            let lo = known.0.unwrap_or_else(|| self.tree.partition(&below));
            let (hi, cursor) = match known.1 {
                Some(hi) if limit.offset > 0 || hi == len => (hi, None),
                _ => {
                    let (hi, c) = self.tree.seek(&within);
                    (hi, Some(c))
                }
            };
            (lo, hi, cursor)
        } else {
            let hi = known.1.unwrap_or_else(|| self.tree.partition(&within));
            let (lo, cursor) = match known.0 {
                Some(lo) if limit.offset > 0 || lo == 0 => (lo, None),
                _ => {
                    let (lo, c) = self.tree.seek(&below);
                    (lo, Some(c))
                }
            };
            (lo, hi, cursor)
        };
        let n = hi.saturating_sub(lo);
        let it = if limit.offset >= n || limit.count == 0 {
            self.tree.iter_from(0, 0, false)
        } else {
            let count = limit.count.min(n - limit.offset);
            match cursor {
                Some(c) if limit.offset == 0 && reverse => c.backward(count),
                Some(c) if limit.offset == 0 => c.forward(count),
                _ if reverse => self.tree.iter_from(hi - 1 - limit.offset, count, true),
                _ => self.tree.iter_from(lo + limit.offset, count, false),
            }
        };
        Iter(IterRepr::Big(it, &self.dict))
    }

    /// Removes the entries of ranks `from..to`.
    fn remove_ranks(&mut self, from: usize, to: usize) -> usize {
        let n = to.saturating_sub(from);
        if n == 0 {
            return 0;
        }
        if n * 4 >= self.tree.len() {
            // A quarter or more goes: rebuilding from what stays, in one
            // pass and with full nodes, beats that many removals.
            let len = self.tree.len();
            let keep: Vec<(Vec<u8>, f64)> = self
                .tree
                .iter_from(0, from, false)
                .chain(self.tree.iter_from(to, len - to.min(len), false))
                .filter_map(|(s, id)| {
                    self.dict
                        .get_index(id as usize)
                        .map(|e| (e.member().to_vec(), s))
                })
                .collect();
            *self = Big::from_sorted(keep.iter().map(|(m, s)| (&m[..], *s)), 0);
            return n;
        }
        for _ in 0..n {
            self.remove_rank(from);
        }
        n
    }

    fn bytes(&self) -> usize {
        size_of::<Big>()
            + self.dict.bytes()
            + self.dict.iter().map(Entry::heap).sum::<usize>()
            + self.tree.bytes()
    }
}

#[derive(Clone)]
enum Repr {
    Packed(Packed),
    /// Boxed: a sorted set lives inside the key's value, which stays small.
    Big(Box<Big>),
}

/// A sorted set: see the module's notes.
#[derive(Clone)]
pub struct ZSet {
    repr: Repr,
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet {
            repr: Repr::Packed(Packed::default()),
        }
    }
}

impl std::fmt::Debug for ZSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZSet")
            .field("encoding", &self.encoding())
            .field("len", &self.len())
            .finish()
    }
}

impl ZSet {
    /// An empty, packed sorted set. ZADD on a missing key can start here:
    /// its first addition converts it at once when the limits call for the
    /// big encoding (`zset-max-listpack-entries 0`, or a long first
    /// member), as Redis's ZADD creates it.
    pub fn new() -> ZSet {
        ZSet::default()
    }

    /// A sorted set of `pairs`, in the encoding their number and lengths
    /// call for: packed if there are at most `limits.entries`, none longer
    /// than `limits.value` and their size is safe for a listpack, else big.
    /// What ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE and ZRANGESTORE store, and
    /// what an RDB value of the plain types loads as. The pairs are
    /// expected in order (by score, then member) and distinct, as results
    /// come; anything else (a ZRANGESTORE REV's descending range, a member
    /// twice) is sorted first, a member's last score winning, as repeated
    /// ZADDs would leave it.
    pub fn from_sorted<M: AsRef<[u8]>>(pairs: &[(M, f64)], limits: &Limits) -> ZSet {
        let ordered = pairs.windows(2).all(|w| {
            cmp_key(w[0].1, w[0].0.as_ref(), w[1].1, w[1].0.as_ref()) == std::cmp::Ordering::Less
        });
        if !ordered {
            let mut fixed: Vec<(&[u8], f64)> =
                pairs.iter().map(|(m, s)| (m.as_ref(), *s)).collect();
            // By member, stably, so that the last of each member is the
            // last of its run.
            fixed.sort_by(|a, b| a.0.cmp(b.0));
            let mut unique: Vec<(&[u8], f64)> = Vec::with_capacity(fixed.len());
            for pair in fixed {
                match unique.last_mut() {
                    Some(last) if last.0 == pair.0 => *last = pair,
                    _ => unique.push(pair),
                }
            }
            unique.retain(|p| !p.1.is_nan());
            unique.sort_unstable_by(|a, b| cmp_key(a.1, a.0, b.1, b.0));
            return ZSet::from_sorted(&unique, limits);
        }
        let iter = pairs.iter().map(|(m, s)| (m.as_ref(), *s));
        let mut longest = 0;
        let mut total = 0usize;
        for (m, _) in iter.clone() {
            longest = longest.max(m.len());
            total = total.saturating_add(m.len());
        }
        let packed =
            pairs.len() <= limits.entries && longest <= limits.value && total <= MAX_PACKED_BYTES;
        let repr = if packed {
            Repr::Packed(Packed::from_sorted(iter))
        } else {
            Repr::Big(Box::new(Big::from_sorted(iter, 0)))
        };
        ZSet { repr }
    }

    /// ZRANGESTORE's result, built as Redis builds it: packed to start
    /// with (big when `len`, the length a rank range knows in advance, is
    /// over `limits.entries`), then each pair added in the order the range
    /// gives it, converting on the way as any addition does. The encoding
    /// comes out as [`ZSet::from_sorted`] would choose it; what differs is
    /// that a score of `-0` added while the set was still packed reads `0`
    /// afterwards, as in Redis.
    pub fn from_range<'a>(
        pairs: impl IntoIterator<Item = (&'a [u8], f64)>,
        len: Option<usize>,
        limits: &Limits,
    ) -> ZSet {
        let mut zset = ZSet::new();
        if len.is_some_and(|n| n > limits.entries) {
            zset.convert();
        }
        for (member, score) in pairs {
            // Scores from a set are never NaN.
            let _ = zset.add(member, score, AddFlags::default(), limits);
        }
        zset
    }

    /// Packed, exactly as given (sorted, distinct), whatever the members'
    /// lengths: an RDB listpack, which Redis keeps as it is.
    fn packed_from_sorted<'a>(pairs: impl IntoIterator<Item = (&'a [u8], f64)>) -> ZSet {
        ZSet {
            repr: Repr::Packed(Packed::from_sorted(pairs)),
        }
    }

    /// The number of members (ZCARD).
    #[inline]
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.len(),
            Repr::Big(b) => b.dict.len(),
        }
    }

    /// Whether it has no member. A key never holds an empty sorted set:
    /// the command that empties it deletes the key.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it is packed rather than big.
    #[inline]
    pub fn is_packed(&self) -> bool {
        matches!(self.repr, Repr::Packed(_))
    }

    /// The encoding OBJECT ENCODING reports: `listpack` or `skiplist`.
    pub fn encoding(&self) -> &'static str {
        if self.is_packed() {
            "listpack"
        } else {
            "skiplist"
        }
    }

    /// Converts a packed set to the big encoding (a big one stays).
    pub fn convert(&mut self) {
        self.convert_with_room(0);
    }

    /// Converts, with room in the dict for `room` more members (the one
    /// whose addition converts: without it, the dict's first insertion
    /// would double it at once).
    fn convert_with_room(&mut self, room: usize) {
        if let Repr::Packed(p) = &self.repr {
            let pairs: Vec<(&[u8], f64)> = p.iter().map(|a| (a.member, a.score)).collect();
            let big = Big::from_sorted(pairs.into_iter(), room);
            self.repr = Repr::Big(Box::new(big));
        }
    }

    /// The score of `member` (ZSCORE).
    #[inline]
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Packed(p) => p.find(member).map(|(_, at)| at.score),
            Repr::Big(b) => b.dict.get(member).map(|e| e.score),
        }
    }

    /// Whether `member` is there.
    pub fn contains(&self, member: &[u8]) -> bool {
        self.score(member).is_some()
    }

    /// Adds `member` with `score`, or changes its score, under ZADD's
    /// options (Redis's `zsetAdd`): NaN, or an increment that gives NaN,
    /// is [`ZsetError::Nan`] and changes nothing. A new member converts a
    /// packed set first when the set would then be over `limits`.
    pub fn add(
        &mut self,
        member: &[u8],
        score: f64,
        flags: AddFlags,
        limits: &Limits,
    ) -> Result<Outcome, ZsetError> {
        if score.is_nan() {
            return Err(ZsetError::Nan);
        }
        let Some(current) = self.score(member) else {
            if flags.xx {
                return Ok(Outcome::Skipped);
            }
            self.insert_new(member, score, limits);
            return Ok(Outcome::Added(score));
        };
        if flags.nx {
            return Ok(Outcome::Skipped);
        }
        let mut new = score;
        if flags.incr {
            new += current;
            if new.is_nan() {
                return Err(ZsetError::Nan);
            }
        }
        if (flags.lt && new >= current) || (flags.gt && new <= current) {
            return Ok(Outcome::Skipped);
        }
        if new == current {
            return Ok(Outcome::Unchanged(new));
        }
        match &mut self.repr {
            Repr::Packed(p) => {
                if let Some((_, at)) = p.find(member) {
                    let (start, end) = (at.start, at.end);
                    p.remove_at(start, end);
                    p.insert(member, new);
                }
            }
            Repr::Big(b) => b.update(member, current, new),
        }
        // The score as computed, as Redis replies with it, even where a
        // packed set stores -0 as 0.
        Ok(Outcome::Updated(new))
    }

    /// Adds a member that is not there, converting first if need be.
    fn insert_new(&mut self, member: &[u8], score: f64, limits: &Limits) {
        if let Repr::Packed(p) = &self.repr {
            let over = p.len() + 1 > limits.entries
                || member.len() > limits.value
                || p.bytes() + member.len() > MAX_PACKED_BYTES;
            if over {
                self.convert_with_room(1);
            }
        }
        match &mut self.repr {
            Repr::Packed(p) => p.insert(member, score),
            Repr::Big(b) => b.insert(member, score),
        }
    }

    /// Removes `member` (ZREM); its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.repr {
            Repr::Packed(p) => {
                let (_, at) = p.find(member)?;
                let (start, end, score) = (at.start, at.end, at.score);
                p.remove_at(start, end);
                Some(score)
            }
            Repr::Big(b) => b.remove(member),
        }
    }

    /// The rank of `member` (ZRANK), from the highest score down when
    /// `reverse` (ZREVRANK).
    pub fn rank(&self, member: &[u8], reverse: bool) -> Option<usize> {
        let rank = match &self.repr {
            Repr::Packed(p) => p.find(member)?.0,
            Repr::Big(b) => {
                let score = b.dict.get(member)?.score;
                b.rank_of(member, score)
            }
        };
        Some(if reverse { self.len() - 1 - rank } else { rank })
    }

    /// The member at `rank` (counted from the lowest score) and its score.
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        match &self.repr {
            Repr::Packed(p) => p.iter().nth(rank).map(|at| (at.member, at.score)),
            Repr::Big(b) => {
                let (score, id) = b.tree.get(rank)?;
                Some((key_fn(&b.dict)(id), score))
            }
        }
    }

    /// Every member with its score, in order.
    pub fn iter(&self) -> Iter<'_> {
        self.window(0, usize::MAX, false)
    }

    /// Every member with its score, from the highest down.
    pub fn iter_rev(&self) -> Iter<'_> {
        self.window(self.len().saturating_sub(1), usize::MAX, true)
    }

    /// Up to `count` members from rank `first` on (counted from the lowest
    /// score), going up, or down from it when `reverse`.
    fn window(&self, first: usize, count: usize, reverse: bool) -> Iter<'_> {
        let len = self.len();
        let count = if first >= len {
            0
        } else if reverse {
            count.min(first + 1)
        } else {
            count.min(len - first)
        };
        Iter(match &self.repr {
            Repr::Packed(p) if count == 0 => IterRepr::PackedBack(p, Vec::new()),
            Repr::Packed(p) => {
                if reverse {
                    let lo = first + 1 - count;
                    let mut offsets = p.offsets();
                    offsets.truncate(first + 1);
                    offsets.drain(..lo);
                    IterRepr::PackedBack(p, offsets)
                } else {
                    let mut entries = p.iter();
                    if first > 0 && count > 0 {
                        entries.nth(first - 1);
                    }
                    IterRepr::Packed(entries, count)
                }
            }
            Repr::Big(b) => IterRepr::Big(b.tree.iter_from(first, count, reverse), &b.dict),
        })
    }

    /// The members between ranks `lo` (included) and `hi` (excluded),
    /// through LIMIT's window, from `lo` up or from `hi` down.
    fn in_window(&self, lo: usize, hi: usize, limit: Limit, reverse: bool) -> Iter<'_> {
        let n = hi.saturating_sub(lo);
        if limit.offset >= n || limit.count == 0 {
            return self.window(0, 0, false);
        }
        let count = limit.count.min(n - limit.offset);
        if reverse {
            self.window(hi - 1 - limit.offset, count, true)
        } else {
            self.window(lo + limit.offset, count, false)
        }
    }

    /// ZRANGE by rank (and ZREVRANGE, ZRANGESTORE): `start` and `stop`
    /// as given, negative ones from the end; when `reverse`, ranks count
    /// from the highest score down.
    pub fn range_by_rank(&self, start: i64, stop: i64, reverse: bool) -> Iter<'_> {
        let len = self.len();
        match rank_range(start, stop, len) {
            None => self.window(0, 0, false),
            Some((a, b)) if reverse => self.window(len - 1 - a, b - a + 1, true),
            Some((a, b)) => self.window(a, b - a + 1, false),
        }
    }

    /// The ranks `[lo, hi)` of the members whose scores are in `range`.
    fn score_bounds(&self, range: &ScoreRange) -> (usize, usize) {
        match &self.repr {
            Repr::Packed(p) => {
                let mut lo = 0;
                let mut hi = 0;
                for at in p.iter() {
                    if !range.above_min(at.score) {
                        lo += 1;
                    }
                    if range.below_max(at.score) {
                        hi += 1;
                    }
                }
                (lo, hi.max(lo))
            }
            Repr::Big(b) => {
                let lo = if range.min == f64::NEG_INFINITY && !range.min_exclusive {
                    0
                } else {
                    b.tree.partition(|s, _| !range.above_min(s))
                };
                let hi = if range.max == f64::INFINITY && !range.max_exclusive {
                    b.tree.len()
                } else {
                    b.tree.partition(|s, _| range.below_max(s))
                };
                (lo, hi.max(lo))
            }
        }
    }

    /// Whether some member may be in `range` (Redis's `zslIsInLexRange`
    /// and `zzlIsInLexRange`): the range is not empty, the last member is
    /// at or above its low end and the first at or below its high end.
    fn may_have_lex(&self, range: &LexRange) -> bool {
        let len = self.len();
        !range.is_empty()
            && len > 0
            && self.get(len - 1).is_some_and(|(m, _)| range.above_min(m))
            && self.get(0).is_some_and(|(m, _)| range.below_max(m))
    }

    /// The ranks `[lo, hi)` of the members in `range`, found going up
    /// as Redis's forward walks find them.
    fn lex_bounds(&self, range: &LexRange) -> (usize, usize) {
        if !self.may_have_lex(range) {
            return (0, 0);
        }
        match &self.repr {
            Repr::Packed(p) => {
                // A listpack's walk: the first member at or above the low
                // end, which must be at or below the high end, then on
                // while at or below it.
                let mut it = p.iter().enumerate();
                let Some((lo, _)) = it.find(|(_, at)| range.above_min(at.member)) else {
                    return (0, 0);
                };
                let mut hi = lo;
                for (i, at) in p.iter().enumerate().skip(lo) {
                    if !range.below_max(at.member) {
                        break;
                    }
                    hi = i + 1;
                }
                (lo, hi)
            }
            Repr::Big(b) => {
                let key_of = key_fn(&b.dict);
                let lo = b
                    .tree
                    .partition(|_, probe| !range.above_min(probe.member(&key_of)));
                let hi = b
                    .tree
                    .partition(|_, probe| range.below_max(probe.member(&key_of)));
                (lo, hi.max(lo))
            }
        }
    }

    /// The same ranks found going down: the last member at or below the
    /// high end, which must be at or above the low end, then down while
    /// at or above it.
    fn lex_bounds_rev(&self, range: &LexRange) -> (usize, usize) {
        if !self.may_have_lex(range) {
            return (0, 0);
        }
        match &self.repr {
            Repr::Packed(p) => {
                let all: Vec<&[u8]> = p.iter().map(|at| at.member).collect();
                let Some(hi) = all.iter().rposition(|m| range.below_max(m)) else {
                    return (0, 0);
                };
                let mut lo = hi + 1;
                while lo > 0 && range.above_min(all[lo - 1]) {
                    lo -= 1;
                }
                (lo, hi + 1)
            }
            Repr::Big(_) => self.lex_bounds(range),
        }
    }

    /// The number of members with scores in `range` (ZCOUNT).
    pub fn count_by_score(&self, range: &ScoreRange) -> usize {
        let (lo, hi) = self.score_bounds(range);
        hi - lo
    }

    /// The number of members in `range` (ZLEXCOUNT).
    pub fn count_by_lex(&self, range: &LexRange) -> usize {
        let (lo, hi) = self.lex_bounds(range);
        hi - lo
    }

    /// The members with scores in `range` (ZRANGEBYSCORE, ZRANGE BYSCORE,
    /// ZRANGESTORE), through LIMIT's window; from the highest down when
    /// `reverse` (ZREVRANGEBYSCORE, whose first argument is `range.max`).
    pub fn range_by_score(&self, range: &ScoreRange, limit: Limit, reverse: bool) -> Iter<'_> {
        let Repr::Big(b) = &self.repr else {
            let (lo, hi) = self.score_bounds(range);
            return self.in_window(lo, hi, limit, reverse);
        };
        // `-inf` and `+inf` (the usual ends of "since" and "until" queries)
        // need no search.
        let known = (
            (range.min == f64::NEG_INFINITY && !range.min_exclusive).then_some(0),
            (range.max == f64::INFINITY && !range.max_exclusive).then_some(self.len()),
        );
        b.window(
            |s, _| !range.above_min(s),
            |s, _| range.below_max(s),
            known,
            limit,
            reverse,
        )
    }

    /// The members in `range` (ZRANGEBYLEX, ZRANGE BYLEX), through LIMIT's
    /// window; from the highest down when `reverse` (ZREVRANGEBYLEX).
    pub fn range_by_lex(&self, range: &LexRange, limit: Limit, reverse: bool) -> Iter<'_> {
        if let Repr::Big(b) = &self.repr
            && self.may_have_lex(range)
        {
            let key_of = key_fn(&b.dict);
            let known = (
                (range.min == LexBound::Min).then_some(0),
                (range.max == LexBound::Max).then_some(self.len()),
            );
            return b.window(
                |_, probe| !range.above_min(probe.member(&key_of)),
                |_, probe| range.below_max(probe.member(&key_of)),
                known,
                limit,
                reverse,
            );
        }
        let (lo, hi) = if reverse {
            self.lex_bounds_rev(range)
        } else {
            self.lex_bounds(range)
        };
        self.in_window(lo, hi, limit, reverse)
    }

    /// Removes the members of ranks `from..to`; how many.
    fn remove_ranks(&mut self, from: usize, to: usize) -> usize {
        match &mut self.repr {
            Repr::Packed(p) => p.remove_ranks(from, to),
            Repr::Big(b) => b.remove_ranks(from, to),
        }
    }

    /// ZREMRANGEBYRANK: removes the members from `start` to `stop`
    /// (negative ones from the end); how many.
    pub fn remove_range_by_rank(&mut self, start: i64, stop: i64) -> usize {
        match rank_range(start, stop, self.len()) {
            Some((a, b)) => self.remove_ranks(a, b + 1),
            None => 0,
        }
    }

    /// ZREMRANGEBYSCORE: removes the members with scores in `range`; how
    /// many.
    pub fn remove_range_by_score(&mut self, range: &ScoreRange) -> usize {
        let (lo, hi) = self.score_bounds(range);
        self.remove_ranks(lo, hi)
    }

    /// ZREMRANGEBYLEX: removes the members in `range`; how many.
    pub fn remove_range_by_lex(&mut self, range: &LexRange) -> usize {
        let (lo, hi) = self.lex_bounds(range);
        self.remove_ranks(lo, hi)
    }

    /// Removes up to `count` members from the low end, or the high end
    /// when `max` (ZPOPMIN, ZPOPMAX, BZPOP*, ZMPOP), and returns them in
    /// the order popped.
    pub fn pop(&mut self, max: bool, count: usize) -> Vec<(Vec<u8>, f64)> {
        let n = count.min(self.len());
        let mut out = Vec::with_capacity(n);
        match &mut self.repr {
            Repr::Packed(p) => {
                let mut all: Vec<(Vec<u8>, f64)> = Vec::with_capacity(n);
                let len = p.len();
                let from = if max { len - n } else { 0 };
                for at in p.iter().skip(from).take(n) {
                    all.push((at.member.to_vec(), at.score));
                }
                if max {
                    all.reverse();
                }
                p.remove_ranks(from, from + n);
                out = all;
            }
            Repr::Big(b) => {
                for _ in 0..n {
                    let rank = if max { b.tree.len() - 1 } else { 0 };
                    if let Some(e) = b.remove_rank(rank) {
                        let score = e.score;
                        out.push((e.into_member(), score));
                    }
                }
            }
        }
        out
    }

    /// A member picked uniformly at random, with its score (ZRANDMEMBER
    /// without a count).
    pub fn random(&self, rng: &mut Rng) -> Option<(&[u8], f64)> {
        let i = rng.below(self.len())?;
        match &self.repr {
            Repr::Packed(p) => p.iter().nth(i).map(|at| (at.member, at.score)),
            Repr::Big(b) => b.dict.get_index(i).map(|e| (e.member(), e.score)),
        }
    }

    /// ZRANDMEMBER with a count, by Redis's four cases: `count`
    /// independent picks in random order when `!unique` (a negative count;
    /// the server asks for a very large count in batches, as Redis answers
    /// it 1000 at a time) or when `count` is 1; otherwise distinct members:
    /// all of them (from the highest score down, Redis's iteration order)
    /// when `count` reaches the size; a copy thinned at random to `count`
    /// when `count` is more than a third of the size; else, packed, one
    /// ordered pass that keeps each member with the probability still
    /// needed (`lpRandomPairsUnique`), and big, random picks until `count`
    /// distinct ones are found, in the order found.
    pub fn random_members(&self, count: usize, unique: bool, rng: &mut Rng) -> Vec<(&[u8], f64)> {
        let size = self.len();
        if size == 0 || count == 0 {
            return Vec::new();
        }
        // A packed set is short: index it once.
        let packed: Vec<(&[u8], f64)> = match &self.repr {
            Repr::Packed(p) => p.iter().map(|at| (at.member, at.score)).collect(),
            Repr::Big(_) => Vec::new(),
        };
        let at = |i: usize| -> (&[u8], f64) {
            match &self.repr {
                Repr::Packed(_) => packed[i],
                Repr::Big(b) => b
                    .dict
                    .get_index(i)
                    .map_or((&[][..], 0.0), |e| (e.member(), e.score)),
            }
        };
        let mut below = |n: usize| rng.below(n).unwrap_or(0);
        if !unique || count == 1 {
            return (0..count).map(|_| at(below(size))).collect();
        }
        if count >= size {
            return self.iter_rev().collect();
        }
        if count * 3 > size {
            let mut left: Vec<usize> = (0..size).collect();
            while left.len() > count {
                let i = below(left.len());
                left.swap_remove(i);
            }
            return left.into_iter().map(at).collect();
        }
        if self.is_packed() {
            let mut out = Vec::with_capacity(count);
            for (i, pair) in packed.iter().enumerate() {
                if out.len() == count {
                    break;
                }
                // Keep it with probability still-wanted / not-yet-visited.
                if below(size - i) < count - out.len() {
                    out.push(*pair);
                }
            }
            return out;
        }
        let mut seen = hashbrown::HashTable::with_capacity(count);
        let hash = |i: &usize| (*i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let i = below(size);
            if let hashbrown::hash_table::Entry::Vacant(slot) =
                seen.entry(hash(&i), |&j| j == i, hash)
            {
                slot.insert(i);
                out.push(at(i));
            }
        }
        out
    }

    /// One step of ZSCAN from `cursor`: visits some members and returns
    /// the next cursor, 0 when done (the reply's scores are
    /// [`ZSet::scan_score_text`]'s). A packed set is visited whole at once
    /// (as Redis answers a listpack in one call); a big one a dict bucket
    /// at a time, with Redis's guarantee that a member there throughout
    /// is visited (see [`Dict::scan`]).
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&[u8], f64)) -> u64 {
        match &self.repr {
            Repr::Packed(p) => {
                p.iter().for_each(|at| visit(at.member, at.score));
                0
            }
            Repr::Big(b) => b.dict.scan(cursor, |e| visit(e.member(), e.score)),
        }
    }

    /// The text ZSCAN replies with for a score of this set: a packed set
    /// answers with what its listpack holds, so an integer score comes
    /// whole (`100000000000000000`, where ZSCORE says `1e+17`); a big one
    /// answers with [`format_score`]'s text.
    pub fn scan_score_text(&self, score: f64) -> ScoreText {
        match (&self.repr, num::double2ll(score)) {
            (Repr::Packed(_), Some(i)) => ScoreText::integer(i),
            _ => format_score(score),
        }
    }

    /// Heap bytes the set owns (memory reports, tests): its buffer when
    /// packed; when big, its dict, the members too long to live inside it,
    /// and its tree.
    pub fn bytes(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.bytes(),
            Repr::Big(b) => b.bytes(),
        }
    }
}

/// Members and their scores in a range, in the range's direction.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    /// Forward through a packed set, with how many are left.
    Packed(packed::Entries<'a>, usize),
    /// Backward through a packed set: the entries' offsets, popped.
    PackedBack(&'a Packed, Vec<u32>),
    Big(tree::Iter<'a>, &'a Dict<Entry>),
}

impl std::fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter").field("left", &self.len()).finish()
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Packed(entries, left) => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                entries.next().map(|at| (at.member, at.score))
            }
            IterRepr::PackedBack(p, offsets) => {
                let at = p.entry(offsets.pop()?);
                Some((at.member, at.score))
            }
            IterRepr::Big(it, dict) => {
                let (score, id) = it.next()?;
                let member = dict.get_index(id as usize).map_or(&[][..], Entry::member);
                Some((member, score))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            IterRepr::Packed(_, left) => *left,
            IterRepr::PackedBack(_, offsets) => offsets.len(),
            IterRepr::Big(it, _) => it.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// The members of a result, borrowed where they can be.
pub type Members<'a> = Vec<(Cow<'a, [u8]>, f64)>;

#[cfg(test)]
mod tests;

//! Sets, in Redis 7.0's two encodings.
//!
//! - **intset**: while every member is an integer written the canonical way
//!   (`strict_i64`: no `+`, no leading zeros, no `-0`) and there are at most
//!   `set-max-intset-entries` of them, the members are a sorted array of
//!   integers of the narrowest width (16, 32 or 64 bits) that has held them
//!   all. As in Redis's `intset.c`, an integer too wide for the array
//!   upgrades all of it, and removing members never narrows it again, so
//!   that the RDB blob (and DUMP) is byte for byte Redis's.
//! - **hashtable**: anything else, in a [`Dict`] of [`Member`]s. A member of
//!   up to [`INLINE_MEMBER`] bytes lives inside its 24-byte slot, with no
//!   allocation of its own; a longer one has an exact-size heap block.
//!
//! A set only ever converts from intset to hashtable (a non-integer, or one
//! member too many), never back, as in Redis: what a set looks like depends
//! on its history, and OBJECT ENCODING shows it.
//!
//! The limit is an argument, never read from anywhere: this crate has no
//! configuration. Random picks take an [`Rng`] and are uniform; SPOP and
//! SRANDMEMBER with a count choose between Redis's strategies by the same
//! thresholds (`t_set.c`), and the set operations choose between Redis's
//! algorithms where the choice shows in the result's encoding (SDIFF).

use std::fmt;

use bytes::Bytes;

use crate::dict::{Dict, Item};
use crate::rdb::{intset, strict_i64};
use crate::rng::Rng;

/// Redis's default `set-max-intset-entries`.
pub const MAX_INTSET_ENTRIES: usize = 512;

/// Redis caps `set-max-intset-entries` at 2^30 whatever it is set to.
const INTSET_CAP: usize = 1 << 30;

/// Members up to this long are stored inside their slot.
pub const INLINE_MEMBER: usize = 22;

/// SPOP with a count keeps the popped-from set and removes random members
/// while more than a fifth as many members stay as are popped (Redis's
/// `SPOP_MOVE_STRATEGY_MUL`); otherwise it moves the few that stay into a
/// new set and returns the rest.
const SPOP_MOVE_STRATEGY_MUL: usize = 5;

/// SRANDMEMBER with a count copies the whole set and removes random members
/// when the count is more than a third of the set (Redis's
/// `SRANDMEMBER_SUB_STRATEGY_MUL`); otherwise it picks until it has enough
/// distinct ones.
const SRANDMEMBER_SUB_STRATEGY_MUL: usize = 3;

/// A set of byte strings.
#[derive(Debug, Clone, Default)]
pub struct Set {
    enc: Enc,
}

#[derive(Debug, Clone)]
enum Enc {
    Ints(Ints),
    /// Boxed: a set is held inside its key's entry, and a small set (an
    /// intset) should not pay for a table's two vectors there.
    Table(Box<Dict<Member>>),
}

impl Default for Enc {
    fn default() -> Self {
        Enc::Ints(Ints::default())
    }
}

/// A member as a set yields it: an integer of an intset, or the bytes of
/// a hashtable's member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem<'a> {
    /// An intset's member.
    Int(i64),
    /// A hashtable's member.
    Bytes(&'a [u8]),
}

/// Room for any `i64` in decimal.
type IntBuf = [u8; 20];

/// `v` in decimal, written into `buf`.
fn format_int(v: i64, buf: &mut IntBuf) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

impl Elem<'_> {
    /// Calls `f` with the member's bytes (an integer formatted on the
    /// stack, no allocation).
    pub fn with<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Elem::Int(v) => f(format_int(v, &mut [0; 20])),
            Elem::Bytes(b) => f(b),
        }
    }

    /// The member's bytes, as a handle of their own.
    pub fn to_bytes(self) -> Bytes {
        self.with(Bytes::copy_from_slice)
    }
}

/// A hashtable's member: up to [`INLINE_MEMBER`] bytes inside the slot,
/// longer ones in an exact-size heap block. 24 bytes either way.
#[derive(Clone, PartialEq, Eq)]
pub struct Member(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, data: [u8; INLINE_MEMBER] },
    Heap(Box<[u8]>),
}

impl Member {
    /// A copy of `bytes`.
    pub fn new(bytes: &[u8]) -> Member {
        if bytes.len() <= INLINE_MEMBER {
            let mut data = [0; INLINE_MEMBER];
            data[..bytes.len()].copy_from_slice(bytes);
            Member(Repr::Inline {
                len: bytes.len() as u8,
                data,
            })
        } else {
            Member(Repr::Heap(bytes.into()))
        }
    }

    /// The member's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, data } => &data[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }

    /// Bytes on the heap beyond the slot.
    fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Inline { .. } => 0,
            Repr::Heap(b) => b.len(),
        }
    }
}

impl Item for Member {
    fn key(&self) -> &[u8] {
        self.bytes()
    }
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", Bytes::copy_from_slice(self.bytes()))
    }
}

/// An intset's members, ascending, in the narrowest width that has held
/// them all, laid out as Redis's intset is but for its count: the width
/// (2, 4 or 8) in the first byte, then the members, little-endian, in one
/// buffer sized exactly (each change reallocates it, as Redis's
/// `intsetResize` does), so that a set is 16 bytes and a key's value 24.
/// An empty buffer is an empty set of width 2.
#[derive(Debug, Clone, Default)]
struct Ints(Box<[u8]>);

/// The bytes an intset needs for `v`: 2, 4 or 8 (Redis's
/// `_intsetValueEncoding`).
fn width_of(v: i64) -> usize {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

/// A member stored in `bytes.len()` (2, 4 or 8) bytes.
#[inline]
fn read_int(bytes: &[u8]) -> i64 {
    match *bytes {
        [a, b] => i64::from(i16::from_le_bytes([a, b])),
        [a, b, c, d] => i64::from(i32::from_le_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => 0,
    }
}

impl Ints {
    fn len(&self) -> usize {
        self.0.len().saturating_sub(1) / self.width()
    }

    fn width(&self) -> usize {
        self.0.first().map_or(2, |&w| usize::from(w))
    }

    fn get(&self, i: usize) -> i64 {
        let w = self.width();
        let at = 1 + i * w;
        read_int(&self.0[at..at + w])
    }

    /// Where `x` is (`Ok`), or where it would go (`Err`).
    fn search(&self, x: i64) -> Result<usize, usize> {
        if width_of(x) > self.width() {
            // Beyond every member's width: below them all or above.
            return Err(if x < 0 { 0 } else { self.len() });
        }
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).cmp(&x) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    fn contains(&self, x: i64) -> bool {
        self.search(x).is_ok()
    }

    /// Widens every member to `width` bytes.
    fn upgrade(&mut self, width: usize) {
        let all: Vec<i64> = (0..self.len()).map(|i| self.get(i)).collect();
        *self = Ints::with_width(width, all);
    }

    /// `sorted` (ascending, distinct, each fitting `width`) as an intset of
    /// that width.
    fn with_width(width: usize, sorted: Vec<i64>) -> Ints {
        // Values that do not fit cannot occur (callers check), and would
        // only be truncated, never a panic.
        let mut buf = Vec::with_capacity(1 + sorted.len() * width);
        buf.push(width as u8);
        for x in sorted {
            buf.extend_from_slice(&x.to_le_bytes()[..width]);
        }
        Ints(buf.into_boxed_slice())
    }

    /// Adds `x`; false if it was there.
    fn insert(&mut self, x: i64) -> bool {
        let need = width_of(x);
        if need > self.width() {
            self.upgrade(need);
        }
        let Err(at) = self.search(x) else {
            return false;
        };
        let w = self.width();
        let mut v = std::mem::take(&mut self.0).into_vec();
        if v.is_empty() {
            v.push(w as u8);
        }
        v.reserve_exact(w);
        let pos = 1 + at * w;
        v.splice(pos..pos, x.to_le_bytes()[..w].iter().copied());
        self.0 = v.into_boxed_slice();
        true
    }

    /// Removes `x`; false if it was not there. The width stays.
    fn remove(&mut self, x: i64) -> bool {
        let Ok(at) = self.search(x) else {
            return false;
        };
        let w = self.width();
        let mut v = std::mem::take(&mut self.0).into_vec();
        let pos = 1 + at * w;
        v.drain(pos..pos + w);
        self.0 = v.into_boxed_slice();
        true
    }

    /// Removes the member at `i` and returns it.
    fn remove_at(&mut self, i: usize) -> i64 {
        let x = self.get(i);
        self.remove(x);
        x
    }

    /// Redis's intset blob: width and count (u32 LE), then the members LE.
    fn blob(&self) -> Vec<u8> {
        let members = self.0.get(1..).unwrap_or_default();
        let mut out = Vec::with_capacity(8 + members.len());
        out.extend_from_slice(&(self.width() as u32).to_le_bytes());
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        out.extend_from_slice(members);
        out
    }

    fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

/// Why a set cannot be built from the members an RDB file lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// A member is there twice (Redis: "Duplicate set members detected").
    Duplicate,
    /// An intset blob that does not decode.
    Corrupt(&'static str),
}

impl Set {
    /// An empty set: an intset, as Redis creates one for a first integer
    /// (a first member that is not one converts it at once).
    pub fn new() -> Set {
        Set::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.enc {
            Enc::Ints(ints) => ints.len(),
            Enc::Table(d) => d.len(),
        }
    }

    /// Whether the set is empty (a key never holds an empty set).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// OBJECT ENCODING's name for it.
    pub fn encoding(&self) -> &'static str {
        match &self.enc {
            Enc::Ints(_) => "intset",
            Enc::Table(_) => "hashtable",
        }
    }

    /// Whether it is an intset (adding may then need the limit).
    pub fn is_intset(&self) -> bool {
        matches!(self.enc, Enc::Ints(_))
    }

    /// Whether `member` is in the set.
    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.enc {
            Enc::Ints(ints) => strict_i64(member).is_some_and(|x| ints.contains(x)),
            Enc::Table(d) => d.contains(member),
        }
    }

    /// Whether `e` (a member of some set) is in this one.
    pub fn contains_elem(&self, e: Elem<'_>) -> bool {
        match (&self.enc, e) {
            (Enc::Ints(ints), Elem::Int(x)) => ints.contains(x),
            (Enc::Table(d), e) => e.with(|b| d.contains(b)),
            (Enc::Ints(_), Elem::Bytes(b)) => self.contains(b),
        }
    }

    /// Adds `member`; false if it was there already. An intset becomes a
    /// hashtable when `member` is not an integer or when it would hold
    /// more than `max_intset` members (`set-max-intset-entries`).
    pub fn add(&mut self, member: &[u8], max_intset: usize) -> bool {
        if self.is_intset()
            && let Some(x) = strict_i64(member)
        {
            return self.add_int(x, max_intset);
        }
        self.table().insert(Member::new(member)).is_none()
    }

    /// [`Set::add`] for a member yielded by a set.
    pub fn add_elem(&mut self, e: Elem<'_>, max_intset: usize) -> bool {
        match e {
            Elem::Int(x) if self.is_intset() => self.add_int(x, max_intset),
            e => e.with(|b| self.add(b, max_intset)),
        }
    }

    fn add_int(&mut self, x: i64, max_intset: usize) -> bool {
        let Enc::Ints(ints) = &mut self.enc else {
            return self.add(format_int(x, &mut [0; 20]), max_intset);
        };
        if !ints.insert(x) {
            return false;
        }
        if ints.len() > max_intset.min(INTSET_CAP) {
            self.table();
        }
        true
    }

    /// The hashtable, converting an intset to one first (Redis's
    /// `setTypeConvert`, sized for what is there).
    fn table(&mut self) -> &mut Dict<Member> {
        if let Enc::Ints(ints) = &self.enc {
            let mut d = Dict::with_capacity(ints.len());
            let mut buf = [0; 20];
            for i in 0..ints.len() {
                d.insert(Member::new(format_int(ints.get(i), &mut buf)));
            }
            self.enc = Enc::Table(Box::new(d));
        }
        match &mut self.enc {
            Enc::Table(d) => d,
            Enc::Ints(_) => unreachable!("converted just above"),
        }
    }

    /// Removes `member`; false if it was not there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.enc {
            Enc::Ints(ints) => strict_i64(member).is_some_and(|x| ints.remove(x)),
            Enc::Table(d) => d.remove(member).is_some(),
        }
    }

    /// [`Set::remove`] for a member yielded by a set.
    pub fn remove_elem(&mut self, e: Elem<'_>) -> bool {
        match (&mut self.enc, e) {
            (Enc::Ints(ints), Elem::Int(x)) => ints.remove(x),
            (_, e) => e.with(|b| self.remove(b)),
        }
    }

    /// The member at position `i` of [`Set::iter`]'s order (below `len`).
    fn elem_at(&self, i: usize) -> Elem<'_> {
        match &self.enc {
            Enc::Ints(ints) => Elem::Int(ints.get(i)),
            Enc::Table(d) => Elem::Bytes(d.get_index(i).map_or(&[][..], Member::bytes)),
        }
    }

    /// Every member: an intset's in ascending order, a hashtable's in its
    /// table's order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Elem<'_>> + '_ {
        (0..self.len()).map(|i| self.elem_at(i))
    }

    /// A member picked uniformly at random, or `None` if empty.
    pub fn random(&self, rng: &mut Rng) -> Option<Elem<'_>> {
        rng.below(self.len()).map(|i| self.elem_at(i))
    }

    /// Removes a member picked uniformly at random and returns it.
    pub fn pop_random(&mut self, rng: &mut Rng) -> Option<Bytes> {
        let i = rng.below(self.len())?;
        Some(match &mut self.enc {
            Enc::Ints(ints) => Elem::Int(ints.remove_at(i)).to_bytes(),
            Enc::Table(d) => Bytes::copy_from_slice(d.swap_remove_index(i).bytes()),
        })
    }

    /// SPOP with a `count` below the set's size: the popped members, in
    /// reply order. Redis's two strategies: remove random members one by
    /// one while many stay; when few stay, move random members that stay
    /// into a new set (built as SADD builds one, so it may be an intset
    /// again, under `max_intset`) and pop everything else.
    pub fn pop_many(&mut self, count: usize, max_intset: usize, rng: &mut Rng) -> Vec<Bytes> {
        let size = self.len();
        if count >= size {
            let all = self.iter().map(Elem::to_bytes).collect();
            *self = Set::new();
            return all;
        }
        let remaining = size - count;
        if remaining.saturating_mul(SPOP_MOVE_STRATEGY_MUL) > count {
            return (0..count).filter_map(|_| self.pop_random(rng)).collect();
        }
        let mut kept = Set::new();
        for _ in 0..remaining {
            if let Some(m) = self.pop_random(rng) {
                kept.add(&m, max_intset);
            }
        }
        let popped = self.iter().map(Elem::to_bytes).collect();
        *self = kept;
        popped
    }

    /// SRANDMEMBER with a positive `count`: that many distinct members (all
    /// of them if the set is smaller), each subset equally likely. Redis's
    /// cases: the whole set; a copy that loses random members until
    /// `count` are left (when `count` is over a third of the set); or
    /// random picks until `count` distinct ones are found.
    pub fn sample(&self, count: usize, rng: &mut Rng) -> Vec<Elem<'_>> {
        let size = self.len();
        if count == 0 || size == 0 {
            return Vec::new();
        }
        if count == 1 {
            return self.random(rng).into_iter().collect();
        }
        if count >= size {
            return self.iter().collect();
        }
        if count.saturating_mul(SRANDMEMBER_SUB_STRATEGY_MUL) > size {
            let mut all: Vec<Elem<'_>> = self.iter().collect();
            while all.len() > count {
                if let Some(i) = rng.below(all.len()) {
                    all.swap_remove(i);
                }
            }
            return all;
        }
        let mut seen = std::collections::HashSet::with_capacity(count);
        let mut picked = Vec::with_capacity(count);
        while picked.len() < count {
            if let Some(i) = rng.below(size)
                && seen.insert(i)
            {
                picked.push(self.elem_at(i));
            }
        }
        picked
    }

    /// One step of SSCAN from `cursor`: visits members (at least `count`
    /// unless the scan ends or ten times `count` buckets were empty, as in
    /// Redis) and returns the next cursor, 0 when done. An intset is
    /// visited whole, with cursor 0, whatever the cursor given.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(Elem<'_>)) -> u64 {
        match &self.enc {
            Enc::Ints(ints) => {
                (0..ints.len()).for_each(|i| visit(Elem::Int(ints.get(i))));
                0
            }
            Enc::Table(d) => {
                let mut cursor = cursor;
                let mut found = 0usize;
                let mut budget = count.saturating_mul(10);
                loop {
                    cursor = d.scan(cursor, |m| {
                        visit(Elem::Bytes(m.bytes()));
                        found += 1;
                    });
                    if cursor == 0 || budget == 0 || found >= count {
                        return cursor;
                    }
                    budget -= 1;
                }
            }
        }
    }

    /// The members of the sets of `sets` that are in all of them, from the
    /// smallest set (ties in the order given) in its order, as SINTER walks
    /// them; `visit` returns false to stop early (SINTERCARD's LIMIT). The
    /// same set given twice is one set.
    pub fn intersect<'a>(sets: &[&'a Set], mut visit: impl FnMut(Elem<'a>) -> bool) {
        let mut order: Vec<&'a Set> = sets.to_vec();
        order.sort_by_key(|s| s.len());
        let Some((&first, rest)) = order.split_first() else {
            return;
        };
        for e in first.iter() {
            let everywhere = rest
                .iter()
                .all(|s| std::ptr::eq(*s, first) || s.contains_elem(e));
            if everywhere && !visit(e) {
                return;
            }
        }
    }

    /// SINTERSTORE's result: the common members, added to a new intset one
    /// by one as Redis adds them (so the result is an intset when they all
    /// are integers and at most `max_intset`).
    pub fn intersection(sets: &[&Set], max_intset: usize) -> Set {
        let mut out = Set::new();
        Set::intersect(sets, |e| {
            out.add_elem(e, max_intset);
            true
        });
        out
    }

    /// SUNION's result: every member of every set, added to a new intset in
    /// the order given (a missing key is an empty set).
    pub fn union(sets: &[Option<&Set>], max_intset: usize) -> Set {
        let mut out = Set::new();
        for set in sets.iter().flatten() {
            for e in set.iter() {
                out.add_elem(e, max_intset);
            }
        }
        out
    }

    /// SDIFF's result: the members of the first set in none of the others
    /// (a missing key is an empty set; `first_repeated` when the first key
    /// is given again, which makes the result empty). Redis's two
    /// algorithms, chosen by its estimate of their work, give the same
    /// members but may give different encodings: one adds only what
    /// survives to a new set, the other adds the whole first set and
    /// removes the rest from it (an intset that overflowed on the way stays
    /// a hashtable, and an intset keeps its widest width).
    pub fn difference(sets: &[Option<&Set>], first_repeated: bool, max_intset: usize) -> Set {
        let mut out = Set::new();
        let Some((Some(first), rest)) = sets.split_first() else {
            return out;
        };
        if first_repeated {
            return out;
        }
        let present = || sets.iter().flatten();
        let one_work = (first.len() * present().count()) / 2;
        let two_work: usize = present().map(|s| s.len()).sum();
        if one_work <= two_work {
            // Largest first: more likely to rule a member out early.
            let mut others: Vec<&Set> = rest.iter().flatten().copied().collect();
            others.sort_by_key(|s| std::cmp::Reverse(s.len()));
            for e in first.iter() {
                if !others.iter().any(|s| s.contains_elem(e)) {
                    out.add_elem(e, max_intset);
                }
            }
        } else {
            for e in first.iter() {
                out.add_elem(e, max_intset);
            }
            for set in rest.iter().flatten() {
                for e in set.iter() {
                    out.remove_elem(e);
                }
                if out.is_empty() {
                    break;
                }
            }
        }
        out
    }

    /// The intset's RDB blob (RDB_TYPE_SET_INTSET), or `None` for a
    /// hashtable.
    pub fn intset_blob(&self) -> Option<Vec<u8>> {
        match &self.enc {
            Enc::Ints(ints) => Some(ints.blob()),
            Enc::Table(_) => None,
        }
    }

    /// An intset from its RDB blob, checked as Redis's deep sanitization
    /// checks it, keeping its width. Empty blobs are refused.
    pub fn from_intset_blob(blob: &[u8]) -> Result<Set, LoadError> {
        let members = intset::decode(blob).map_err(LoadError::Corrupt)?;
        let width = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        Ok(Set {
            enc: Enc::Ints(Ints::with_width(width, members)),
        })
    }

    /// An empty set for the `n` members an RDB file lists (RDB_TYPE_SET),
    /// as Redis loads one: a hashtable sized for them if more than
    /// `max_intset`, else an intset (which the first member that is not an
    /// integer converts). The loader then adds each with no limit
    /// (`usize::MAX`); an add that returns false is a duplicate, which
    /// Redis refuses.
    pub fn for_load(n: usize, max_intset: usize) -> Set {
        let mut set = Set::new();
        if n > max_intset.min(INTSET_CAP) {
            set.enc = Enc::Table(Box::new(Dict::with_capacity(n)));
        }
        set
    }

    /// A set of `members` as [`Set::for_load`] builds it (for tests and
    /// tools), or [`LoadError::Duplicate`].
    pub fn from_members<M: AsRef<[u8]>>(
        members: impl ExactSizeIterator<Item = M>,
        max_intset: usize,
    ) -> Result<Set, LoadError> {
        let mut set = Set::for_load(members.len(), max_intset);
        for m in members {
            if !set.add(m.as_ref(), usize::MAX) {
                return Err(LoadError::Duplicate);
            }
        }
        Ok(set)
    }

    /// Brings a set just loaded (from a file or RESTORE) to the encoding
    /// Redis would have loaded it with under `max_intset`: an intset if
    /// every member is an integer and there are at most `max_intset`,
    /// otherwise a hashtable. (Loading an intset keeps it while it fits; a
    /// list of members becomes an intset while they are integers and fit.)
    /// Readers build with the default limit; a server configured otherwise
    /// calls this.
    pub fn fit_loaded(&mut self, max_intset: usize) {
        let max = max_intset.min(INTSET_CAP);
        match &self.enc {
            Enc::Ints(ints) if ints.len() > max => {
                self.table();
            }
            Enc::Table(d) if d.len() <= max => {
                let mut ints = Vec::with_capacity(d.len());
                for m in d.iter() {
                    match strict_i64(m.bytes()) {
                        Some(x) => ints.push(x),
                        None => return,
                    }
                }
                ints.sort_unstable();
                let width = ints.iter().map(|&x| width_of(x)).max().unwrap_or(2);
                self.enc = Enc::Ints(Ints::with_width(width, ints));
            }
            _ => {}
        }
    }

    /// Memory the set owns beyond its own 32 bytes: the table or array,
    /// and members too long to live in their slot.
    pub fn heap_bytes(&self) -> usize {
        match &self.enc {
            Enc::Ints(ints) => ints.heap_bytes(),
            Enc::Table(d) => {
                size_of::<Dict<Member>>()
                    + d.bytes()
                    + d.iter().map(Member::heap_bytes).sum::<usize>()
            }
        }
    }
}

/// A plain set as ZUNION, ZINTER and ZDIFF read it, as Redis does: every
/// member scores 1.
impl crate::zset::Source for Set {
    fn len(&self) -> usize {
        Set::len(self)
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        self.contains(member).then_some(1.0)
    }

    fn visit<'s>(&'s self, visit: &mut dyn FnMut(std::borrow::Cow<'s, [u8]>, f64) -> bool) {
        for e in self.iter() {
            let member = match e {
                Elem::Bytes(b) => std::borrow::Cow::Borrowed(b),
                Elem::Int(x) => std::borrow::Cow::Owned(format_int(x, &mut [0; 20]).to_vec()),
            };
            if !visit(member, 1.0) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! The keyspace's hash table: open addressing over groups of one cache
//! line, each holding seven values (the keyspace's are pointers to slots)
//! beside their seven one-byte tags.
//!
//! A lookup reads one line of the table, the group its hash points to,
//! where the tags and the pointers sit together, and then the value found
//! there; a SwissTable (hashbrown) keeps its control bytes and its values
//! in two regions, so a lookup on a table bigger than the cache misses
//! three times (control bytes, value pointer, slot) where this one misses
//! twice. Because where a key's group lies follows from its hash alone,
//! the keys of a pipelined batch can be prefetched in two passes before
//! the batch runs: their groups ([`Table::prefetch`]), then the values the
//! groups point to ([`Table::prefetch_value`]).
//!
//! Layout and probing (in the manner of folly's F14): a group is 7 tag
//! bytes (0 for an empty place, else the hash's top 7 bits with the high
//! bit set), one overflow count and 7 values. A key lives in the first
//! group from its home group (the hash's low [`HOME_BITS`] bits scaled to
//! the number of groups) with an empty place; each
//! group it passed, full, counts one more overflow. A lookup stops at the
//! first group whose overflow count is zero, so a miss usually reads one
//! group. Removing a key counts the overflows on its path back down (a
//! count that reached 255 stays there, costing only longer misses until
//! the table grows). At most 6 of 7 places are used before the table
//! grows (86% full), to the next size of 4 or 6 times a power of two
//! groups with room: steps of a half and a third, not doublings, so a
//! table is on average about 20% larger than it must be, not about 40%
//! (at a million keys over 1,024 shards, 12.6 bytes a key instead of
//! 16.8). Growing moves every value, about 2.4 times per key over a
//! table's life where doubling moves it once; it asks for the values a
//! few groups ahead of the one it moves, whose keys it rehashes.

use std::mem::MaybeUninit;

/// Places per group.
const WIDTH: usize = 7;
/// How many groups ahead [`Table::iter_prefetched`] asks for values.
const AHEAD: usize = 2;
/// Keys per group, on average, before the table grows.
const MAX_PER_GROUP: usize = 6;
/// Low bits of a hash that choose its home group, whatever the number of
/// groups (up to 2^25 of them: 200 million keys in one table). S3-FIFO's
/// queues keep exactly these bits of each hash (`s3fifo::compact`).
pub(crate) const HOME_BITS: u32 = 25;
/// The tag bytes of a group word (its 8th byte is the overflow count).
const TAG_BYTES: u64 = 0x00ff_ffff_ffff_ffff;
const LOW7: u64 = 0x007f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x0080_8080_8080_8080;

#[repr(C, align(64))]
struct Group<T> {
    /// Tags of the 7 places, then the overflow count (byte 7).
    meta: [u8; 8],
    values: [MaybeUninit<T>; WIDTH],
}

impl<T> Group<T> {
    fn empty() -> Self {
        Group {
            meta: [0; 8],
            values: [const { MaybeUninit::uninit() }; WIDTH],
        }
    }

    #[inline]
    fn word(&self) -> u64 {
        u64::from_le_bytes(self.meta)
    }

    /// Places whose tag is `tag`, as a bit mask of their bytes' high bits.
    #[inline]
    fn matches(&self, tag: u8) -> u64 {
        let x = (self.word() ^ (u64::from(tag) * 0x0101_0101_0101_0101)) & TAG_BYTES;
        // A byte of x is zero exactly where the tag matches.
        !(((x & LOW7) + LOW7) | x) & HIGH
    }

    /// Empty places, as [`Group::matches`] gives them.
    #[inline]
    fn empties(&self) -> u64 {
        !self.word() & HIGH
    }

    #[inline]
    fn overflow(&self) -> u8 {
        self.meta[7]
    }
}

/// The place of the lowest bit of a mask from [`Group::matches`].
#[inline]
fn first(mask: u64) -> usize {
    mask.trailing_zeros() as usize / 8
}

#[inline]
fn tag_of(hash: u64) -> u8 {
    0x80 | (hash >> 57) as u8
}

/// A hash table of `T`s found by a hash the caller computes; see the
/// module's notes. A place is named by an index, `group * 7 + place`.
pub(crate) struct Table<T> {
    /// The groups ([`size_at_least`] of them), or none. (No field for
    /// their number beside the slice's: a table's header is 24 bytes, and
    /// an empty database, of which a server has 16,384, costs 8 less.)
    groups: Box<[Group<T>]>,
    len: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table::new()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.len)
            .field("groups", &self.groups.len())
            .finish()
    }
}

impl<T> Table<T> {
    /// An empty table, which allocates nothing.
    pub(crate) fn new() -> Self {
        Table {
            groups: Box::new([]),
            len: 0,
        }
    }

    /// A hash's home group (0 with no groups): its low [`HOME_BITS`]
    /// bits, multiplied by the number of groups and shifted down, which
    /// spreads them over any number of groups without a division.
    #[inline]
    fn home(&self, hash: u64) -> usize {
        (((hash & ((1 << HOME_BITS) - 1)) * self.groups.len() as u64) >> HOME_BITS) as usize
    }

    /// The group after `g`, the first after the last.
    #[inline]
    fn after(&self, g: usize) -> usize {
        if g + 1 == self.groups.len() { 0 } else { g + 1 }
    }

    /// Number of values.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of places (full or not): indexes run below it.
    pub(crate) fn num_buckets(&self) -> usize {
        self.groups.len() * WIDTH
    }

    /// How many values can be added before the table grows (and every
    /// value moves to a new index).
    pub(crate) fn room(&self) -> usize {
        (self.groups.len() * MAX_PER_GROUP).saturating_sub(self.len)
    }

    /// The index of the value whose hash is `hash` and for which `eq` holds.
    #[inline]
    pub(crate) fn find_index(&self, hash: u64, mut eq: impl FnMut(&T) -> bool) -> Option<usize> {
        if self.groups.is_empty() {
            return None;
        }
        let tag = tag_of(hash);
        let mut g = self.home(hash);
        for _ in 0..self.groups.len() {
            let group = &self.groups[g];
            let mut m = group.matches(tag);
            while m != 0 {
                let i = first(m);
                // SAFETY: a place with a non-zero tag holds a value.
                if eq(unsafe { group.values[i].assume_init_ref() }) {
                    return Some(g * WIDTH + i);
                }
                m &= m - 1;
            }
            if group.overflow() == 0 {
                return None;
            }
            g = self.after(g);
        }
        None
    }

    /// The value whose hash is `hash` and for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&T> {
        let i = self.find_index(hash, eq)?;
        Some(self.at(i))
    }

    /// [`Table::find`], mutable.
    #[inline]
    pub(crate) fn find_mut(&mut self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&mut T> {
        let i = self.find_index(hash, eq)?;
        Some(self.at_mut(i))
    }

    /// The value at `index`, which must hold one (from
    /// [`Table::find_index`]); panics otherwise.
    #[inline]
    pub(crate) fn at(&self, index: usize) -> &T {
        self.get_bucket(index).expect("an empty place")
    }

    /// [`Table::at`], mutable.
    #[inline]
    pub(crate) fn at_mut(&mut self, index: usize) -> &mut T {
        let group = &mut self.groups[index / WIDTH];
        assert!(group.meta[index % WIDTH] != 0, "an empty place");
        // SAFETY: a place with a non-zero tag holds a value.
        unsafe { group.values[index % WIDTH].assume_init_mut() }
    }

    /// The value at `index`, if that place holds one.
    #[inline]
    pub(crate) fn get_bucket(&self, index: usize) -> Option<&T> {
        let group = self.groups.get(index / WIDTH)?;
        if group.meta[index % WIDTH] == 0 {
            return None;
        }
        // SAFETY: a place with a non-zero tag holds a value.
        Some(unsafe { group.values[index % WIDTH].assume_init_ref() })
    }

    /// Adds `value`, whose hash is `hash`, known not to be in the table;
    /// `hasher` gives the hash of any value (to move them when the table
    /// grows). Returns its index.
    pub(crate) fn insert_unique(&mut self, hash: u64, value: T, hasher: impl Fn(&T) -> u64) -> usize
    where
        T: std::ops::Deref<Target: Sized>,
    {
        if self.len >= self.groups.len() * MAX_PER_GROUP {
            self.grow(self.len + 1, &hasher);
        }
        self.len += 1;
        self.place(hash, value)
    }

    /// Puts `value` in the first group with room from its home, counting
    /// the overflows on the way; the table has room.
    fn place(&mut self, hash: u64, value: T) -> usize {
        let mut g = self.home(hash);
        loop {
            let group = &mut self.groups[g];
            let e = group.empties();
            if e != 0 {
                let i = first(e);
                group.meta[i] = tag_of(hash);
                group.values[i].write(value);
                return g * WIDTH + i;
            }
            group.meta[7] = group.meta[7].saturating_add(1);
            g = self.after(g);
        }
    }

    /// Takes out the value at `index` (which must hold one; panics
    /// otherwise), whose hash is `hash`.
    pub(crate) fn remove_at(&mut self, index: usize, hash: u64) -> T {
        let (g, i) = (index / WIDTH, index % WIDTH);
        assert!(self.groups[g].meta[i] != 0, "an empty place");
        self.groups[g].meta[i] = 0;
        // SAFETY: the tag said the place was full; it is now marked empty,
        // so the value is read out once.
        let value = unsafe { self.groups[g].values[i].assume_init_read() };
        self.len -= 1;
        let mut h = self.home(hash);
        while h != g {
            let over = &mut self.groups[h].meta[7];
            if *over != u8::MAX {
                *over -= 1;
            }
            h = self.after(h);
        }
        value
    }

    /// Makes room for `additional` more values without growing.
    pub(crate) fn reserve(&mut self, additional: usize, hasher: impl Fn(&T) -> u64)
    where
        T: std::ops::Deref<Target: Sized>,
    {
        let want = self.len + additional;
        if want > self.groups.len() * MAX_PER_GROUP {
            self.grow(want, &hasher);
        }
    }

    /// Moves every value into a table of the next size with room for
    /// `want`.
    #[cold]
    fn grow(&mut self, want: usize, hasher: &impl Fn(&T) -> u64)
    where
        T: std::ops::Deref<Target: Sized>,
    {
        let n = size_at_least((self.groups.len() + 1).max(want.div_ceil(MAX_PER_GROUP)));
        let mut old = std::mem::replace(&mut self.groups, (0..n).map(|_| Group::empty()).collect());
        for g in 0..old.len() {
            // The hasher reads what a value points to: a cache miss each,
            // one after another, unless asked for ahead.
            if let Some(ahead) = old.get(g + AHEAD) {
                for i in 0..WIDTH {
                    if ahead.meta[i] != 0 {
                        // SAFETY: a place with a non-zero tag holds a value.
                        let value = unsafe { ahead.values[i].assume_init_ref() };
                        prefetch_line(&**value as *const T::Target as *const u8);
                    }
                }
            }
            let group = &mut old[g];
            for i in 0..WIDTH {
                if group.meta[i] != 0 {
                    group.meta[i] = 0;
                    // SAFETY: full place, read once (its tag is cleared and
                    // the old groups drop nothing).
                    let value = unsafe { group.values[i].assume_init_read() };
                    self.place(hasher(&value), value);
                }
            }
        }
    }

    /// Every value, in place order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.groups.iter().flat_map(|group| {
            (0..WIDTH)
                .filter(|&i| group.meta[i] != 0)
                // SAFETY: a place with a non-zero tag holds a value.
                .map(|i| unsafe { group.values[i].assume_init_ref() })
        })
    }

    /// Like [`Table::iter`], asking the CPU meanwhile for what the values
    /// of the group [`AHEAD`] groups on point to (`target` gives the
    /// address): a walk of the whole table (a snapshot's) whose values
    /// are pointers would otherwise wait for one cache miss per value,
    /// one after another.
    pub(crate) fn iter_prefetched<'a>(
        &'a self,
        target: impl Fn(&T) -> *const u8 + 'a,
    ) -> impl Iterator<Item = &'a T> + 'a {
        self.groups.iter().enumerate().flat_map(move |(g, group)| {
            if let Some(ahead) = self.groups.get(g + AHEAD) {
                for i in 0..WIDTH {
                    if ahead.meta[i] != 0 {
                        // SAFETY: a place with a non-zero tag holds a value.
                        prefetch_line(target(unsafe { ahead.values[i].assume_init_ref() }));
                    }
                }
            }
            (0..WIDTH)
                .filter(|&i| group.meta[i] != 0)
                // SAFETY: a place with a non-zero tag holds a value.
                .map(|i| unsafe { group.values[i].assume_init_ref() })
        })
    }

    /// Asks the CPU to bring in the group where a value hashed `hash` is
    /// looked for first. Does nothing else; any hash is fine.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        if let Some(group) = self.groups.get(self.home(hash)) {
            prefetch_line(group as *const Group<T> as *const u8);
        }
    }

    /// Passes the first value of `hash`'s home group whose tag matches
    /// (not checked against any key: the likely one) to `f`, which may
    /// prefetch what it points to. Reads the group: call it once
    /// [`Table::prefetch`] has brought the group in.
    #[inline]
    pub(crate) fn prefetch_value(&self, hash: u64, f: impl FnOnce(&T)) {
        if let Some(group) = self.groups.get(self.home(hash)) {
            let m = group.matches(tag_of(hash));
            if m != 0 {
                // SAFETY: a place with a non-zero tag holds a value.
                f(unsafe { group.values[first(m)].assume_init_ref() });
            }
        }
    }
}

/// The number of groups a table of at least `n` groups has: 1, 2 or 3,
/// else 4 or 6 times a power of two.
fn size_at_least(n: usize) -> usize {
    if n <= 3 {
        return n.max(1);
    }
    // n >> shift is 4 to 7.
    let shift = usize::BITS - 3 - n.leading_zeros();
    match n.div_ceil(1 << shift) {
        4 => 4 << shift,
        5 | 6 => 6 << shift,
        _ => 8 << shift,
    }
}

impl<T> Drop for Table<T> {
    fn drop(&mut self) {
        if std::mem::needs_drop::<T>() {
            for group in self.groups.iter_mut() {
                for i in 0..WIDTH {
                    if group.meta[i] != 0 {
                        group.meta[i] = 0;
                        // SAFETY: full place, dropped once.
                        unsafe { group.values[i].assume_init_drop() };
                    }
                }
            }
        }
    }
}

/// Asks the CPU to bring the cache line at `p` into every level, if the
/// target has a way to ask; a hint, never a read.
#[inline]
pub(crate) fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn h(k: &u64) -> u64 {
        // A poor hash on purpose for some keys: many share a home group.
        if k.is_multiple_of(3) {
            (k % 16).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        } else {
            k.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
        }
    }

    #[test]
    fn a_group_is_one_line_for_pointer_values() {
        assert_eq!(size_of::<Group<Box<u64>>>(), 64);
        assert_eq!(align_of::<Group<Box<u64>>>(), 64);
    }

    #[test]
    fn iter_prefetched_visits_what_iter_visits() {
        let mut table: Table<Box<u64>> = Table::new();
        for k in 0..1000u64 {
            table.insert_unique(h(&k), Box::new(k), |v| h(v));
        }
        for k in (0..1000u64).step_by(7) {
            if let Some(i) = table.find_index(h(&k), |v| **v == k) {
                table.remove_at(i, h(&k));
            }
        }
        let plain: Vec<u64> = table.iter().map(|v| **v).collect();
        let ahead: Vec<u64> = table
            .iter_prefetched(|v| &**v as *const u64 as *const u8)
            .map(|v| **v)
            .collect();
        assert_eq!(plain.len(), 1000 - 143);
        assert_eq!(plain, ahead);
    }

    #[test]
    fn matches_finds_exactly_the_tags() {
        let mut g = Group::<u8>::empty();
        g.meta = [0x81, 0, 0xff, 0x81, 0x80, 0, 0x82, 200];
        assert_eq!(g.matches(0x81), 0x80 | 0x80 << 24);
        assert_eq!(g.matches(0xff), 0x80 << 16);
        assert_eq!(g.matches(0x80), 0x80 << 32);
        // The overflow byte is never a tag.
        assert_eq!(g.matches(200), 0);
        assert_eq!(g.empties(), 0x80 << 8 | 0x80 << 40);
    }

    #[test]
    fn agrees_with_a_hash_map_through_inserts_and_removes() {
        let mut table: Table<Box<u64>> = Table::new();
        let mut model: HashMap<u64, ()> = HashMap::new();
        let mut x = 12345u64;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = x % 5000;
            let found = table.find_index(h(&k), |v| **v == k);
            assert_eq!(found.is_some(), model.contains_key(&k), "step {step}");
            match found {
                Some(i) if x.is_multiple_of(2) => {
                    assert_eq!(*table.remove_at(i, h(&k)), k);
                    model.remove(&k);
                }
                Some(i) => assert_eq!(**table.at(i), k),
                None => {
                    let i = table.insert_unique(h(&k), Box::new(k), |v| h(v));
                    assert_eq!(**table.at(i), k);
                    model.insert(k, ());
                }
            }
            assert_eq!(table.len(), model.len());
        }
        let mut seen: Vec<u64> = table.iter().map(|v| **v).collect();
        seen.sort_unstable();
        let mut want: Vec<u64> = model.keys().copied().collect();
        want.sort_unstable();
        assert_eq!(seen, want);
        // Every key is found, and by index.
        for k in want {
            let i = table.find_index(h(&k), |v| **v == k).unwrap();
            assert_eq!(**table.get_bucket(i).unwrap(), k);
        }
    }

    #[test]
    fn misses_stop_early_once_removals_clear_the_overflows() {
        let mut table: Table<Box<u64>> = Table::new();
        // All in one home group: they spill into the next ones.
        for k in 0..20 {
            table.insert_unique(0, Box::new(k), |_| 0);
        }
        assert!(table.groups[0].overflow() > 0);
        for k in 0..20 {
            let i = table.find_index(0, |v| **v == k).unwrap();
            table.remove_at(i, 0);
        }
        assert!(table.is_empty());
        assert!(table.groups.iter().all(|g| g.overflow() == 0));
        assert_eq!(table.find_index(0, |_| true), None);
    }

    #[test]
    fn drops_every_value_once() {
        use std::rc::Rc;
        let counter = Rc::new(());
        {
            let mut table = Table::new();
            for k in 0..1000u64 {
                table.insert_unique(h(&k), Box::new((k, counter.clone())), |v| h(&v.0));
            }
            for k in (0..1000u64).step_by(2) {
                let i = table.find_index(h(&k), |v| v.0 == k).unwrap();
                drop(table.remove_at(i, h(&k)));
            }
            assert_eq!(Rc::strong_count(&counter), 501);
        }
        assert_eq!(Rc::strong_count(&counter), 1);
    }

    #[test]
    fn sizes_step_by_a_half_then_a_third() {
        let sizes: Vec<usize> = (1..=25).map(size_at_least).collect();
        assert_eq!(
            sizes,
            [
                1, 2, 3, 4, 6, 6, 8, 8, 12, 12, 12, 12, 16, 16, 16, 16, 24, 24, 24, 24, 24, 24, 24,
                24, 32
            ]
        );
        for n in 1..100_000 {
            let s = size_at_least(n);
            assert!(s >= n && s <= n + n / 2, "{n} -> {s}");
            assert_eq!(size_at_least(s), s);
        }
    }

    #[test]
    fn a_million_keys_over_the_shards_take_192_groups_each() {
        // 1,000,000 keys over 1,024 shards: about 977 a shard.
        let mut table: Table<Box<u64>> = Table::new();
        let hash = |k: u64| k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for k in 0..977u64 {
            table.insert_unique(hash(k), Box::new(k), |v| hash(**v));
        }
        assert_eq!(table.groups.len(), 192);
        for k in 0..977u64 {
            assert_eq!(table.find(hash(k), |v| **v == k).map(|v| **v), Some(k));
        }
    }

    #[test]
    fn reserve_grows_once() {
        let mut table: Table<Box<u64>> = Table::new();
        table.reserve(10_000, |v| h(v));
        let groups = table.groups.len();
        for k in 0..10_000u64 {
            table.insert_unique(h(&k), Box::new(k), |v| h(v));
        }
        assert_eq!(table.groups.len(), groups);
        assert!(table.num_buckets() >= 10_000);
    }
}

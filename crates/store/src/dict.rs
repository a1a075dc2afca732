//! The hash table under big hashes and sets (`hashtable` in OBJECT
//! ENCODING).
//!
//! Why not hashbrown, which the keyspace uses: HSCAN and SSCAN promise
//! that an element present from a scan's first call to its last is
//! returned, even when the table grows or shrinks in between, and Redis
//! keeps that promise with a cursor that walks power-of-two bucket indexes
//! in reverse-binary order (`dictScan`). An open-addressing table moves
//! elements away from their home bucket, so it cannot keep it. And SPOP,
//! SRANDMEMBER and HRANDFIELD want an element picked uniformly at random,
//! which a table with empty slots only approximates.
//!
//! So this table chains, Redis's way, but by index: items live densely in
//! one vector (a random pick is one index), each with its hash and the
//! index of the next item in its bucket, and the buckets are a vector of
//! `u32` heads. Per item that is the item itself plus 8 bytes, and 4 to 8
//! bytes of bucket, where Redis spends a 24-byte `dictEntry` and an 8-byte
//! bucket. Removing an item moves the last one into its place and
//! relinks it, so the items stay dense.
//!
//! The table grows (doubling, all at once) when it holds as many items as
//! buckets, and shrinks when fewer than one bucket in eight is used, as
//! Redis's dict does (Redis rehashes incrementally; a rehash here is one
//! pass over the items, without hashing any key again).

use crate::keyspace::hash_key;

/// What a [`Dict`] holds: something found by a key of bytes.
pub trait Item {
    /// The key the item is found by (a set's member, a hash's field).
    fn key(&self) -> &[u8];
}

/// No item (end of a bucket's chain, or an empty bucket).
const NONE: u32 = u32::MAX;

/// The fewest buckets a table that has any has.
const MIN_BUCKETS: usize = 4;

/// One item with its links.
#[derive(Debug, Clone)]
struct Slot<T> {
    item: T,
    /// The low 32 bits of the key's [`hash_key`]: enough to pick among up
    /// to 2^32 buckets, kept so that a rehash never hashes a key again.
    hash: u32,
    /// The next item in the same bucket, or [`NONE`].
    next: u32,
}

/// A hash table of items found by their keys; see the module's notes.
#[derive(Debug, Clone)]
pub struct Dict<T> {
    slots: Vec<Slot<T>>,
    /// Bucket heads: empty, or a power of two of them.
    buckets: Vec<u32>,
}

impl<T> Default for Dict<T> {
    fn default() -> Self {
        Dict {
            slots: Vec::new(),
            buckets: Vec::new(),
        }
    }
}

#[inline]
fn hash32(key: &[u8]) -> u32 {
    hash_key(key) as u32
}

impl<T: Item> Dict<T> {
    /// An empty table.
    pub fn new() -> Self {
        Dict::default()
    }

    /// An empty table with room for `n` items.
    pub fn with_capacity(n: usize) -> Self {
        let mut dict = Dict::new();
        dict.reserve(n);
        dict
    }

    /// Makes room for `n` more items.
    pub fn reserve(&mut self, n: usize) {
        self.slots.reserve(n);
        let want = self.slots.len().saturating_add(n);
        if want > self.buckets.len() {
            self.rehash(want);
        }
    }

    /// How many items it holds.
    #[inline]
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether it holds none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    /// The index of the item with `key`, if there is one.
    fn find(&self, key: &[u8], hash: u32) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut at = self.buckets[hash as usize & self.mask()];
        while at != NONE {
            let slot = &self.slots[at as usize];
            if slot.hash == hash && slot.item.key() == key {
                return Some(at as usize);
            }
            at = slot.next;
        }
        None
    }

    /// The item with `key`.
    pub fn get(&self, key: &[u8]) -> Option<&T> {
        let i = self.find(key, hash32(key))?;
        Some(&self.slots[i].item)
    }

    /// The item with `key`, to change. Its key must stay as it is.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        let i = self.find(key, hash32(key))?;
        Some(&mut self.slots[i].item)
    }

    /// Whether an item has `key`.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(key, hash32(key)).is_some()
    }

    /// Adds `item`, replacing the item with the same key, which it
    /// returns.
    pub fn insert(&mut self, item: T) -> Option<T> {
        let hash = hash32(item.key());
        if let Some(i) = self.find(item.key(), hash) {
            return Some(std::mem::replace(&mut self.slots[i].item, item));
        }
        if self.slots.len() >= self.buckets.len() {
            self.rehash(self.slots.len() + 1);
        }
        // Beyond u32::MAX - 1 items the indexes would not fit: 4 billion
        // items of at least 24 bytes are 96 GiB in one value.
        let at = self.slots.len() as u32;
        let bucket = hash as usize & self.mask();
        self.slots.push(Slot {
            item,
            hash,
            next: self.buckets[bucket],
        });
        self.buckets[bucket] = at;
        None
    }

    /// Removes the item with `key` and returns it.
    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        let i = self.find(key, hash32(key))?;
        Some(self.swap_remove_index(i))
    }

    /// The item at `i` of the dense order `0..len()`: a uniformly random
    /// item is `get_index(rng.below(len))`.
    #[inline]
    pub fn get_index(&self, i: usize) -> Option<&T> {
        self.slots.get(i).map(|s| &s.item)
    }

    /// Removes the item at `i` of the dense order (the last item takes
    /// its place) and returns it.
    ///
    /// # Panics
    /// If `i` is not below [`Dict::len`].
    pub fn swap_remove_index(&mut self, i: usize) -> T {
        assert!(
            i < self.slots.len(),
            "index {i} beyond {}",
            self.slots.len()
        );
        self.unlink(i);
        let last = self.slots.len() - 1;
        if i != last {
            // The last item moves to `i`: whatever pointed at it must
            // point at `i` now.
            let hash = self.slots[last].hash;
            let link = self.link_to(last, hash);
            *link = i as u32;
        }
        let slot = self.slots.swap_remove(i);
        self.shrink_if_sparse();
        slot.item
    }

    /// Takes the item at `i` out of its bucket's chain.
    fn unlink(&mut self, i: usize) {
        let (hash, next) = (self.slots[i].hash, self.slots[i].next);
        *self.link_to(i, hash) = next;
    }

    /// The link (a bucket head or an item's `next`) that points at item
    /// `i`, whose hash is `hash`.
    fn link_to(&mut self, i: usize, hash: u32) -> &mut u32 {
        let bucket = hash as usize & self.mask();
        if self.buckets[bucket] == i as u32 {
            return &mut self.buckets[bucket];
        }
        let mut at = self.buckets[bucket] as usize;
        while self.slots[at].next != i as u32 {
            at = self.slots[at].next as usize;
        }
        &mut self.slots[at].next
    }

    /// Every item, in the dense order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &T> + Clone {
        self.slots.iter().map(|s| &s.item)
    }

    /// Visits the items of the bucket `cursor` names and returns the
    /// cursor of the next, or 0 when every bucket has been visited: Redis's
    /// `dictScan`. The cursor counts with its bits reversed, so that a
    /// table that grows or shrinks between calls still has every item that
    /// was in it throughout visited (some perhaps twice).
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&T)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = self.mask() as u64;
        let mut at = self.buckets[(cursor & mask) as usize];
        while at != NONE {
            let slot = &self.slots[at as usize];
            visit(&slot.item);
            at = slot.next;
        }
        // Set the bits above the mask, so that adding one to the reversed
        // cursor carries into the first bit the table uses.
        let v = (cursor | !mask).reverse_bits().wrapping_add(1);
        v.reverse_bits()
    }

    /// The bytes the table itself owns: its items' slots and its buckets,
    /// not what the items point to.
    pub fn bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Slot<T>>() + self.buckets.capacity() * size_of::<u32>()
    }

    /// The items, in the dense order.
    pub fn into_items(self) -> Vec<T> {
        self.slots.into_iter().map(|s| s.item).collect()
    }

    /// Gives the table a power of two of buckets, at least `n` (and at
    /// least [`MIN_BUCKETS`]), and relinks every item.
    fn rehash(&mut self, n: usize) {
        let size = n.max(MIN_BUCKETS).next_power_of_two();
        self.buckets.clear();
        self.buckets.resize(size, NONE);
        self.buckets.shrink_to_fit();
        let mask = size - 1;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let bucket = slot.hash as usize & mask;
            slot.next = self.buckets[bucket];
            self.buckets[bucket] = i as u32;
        }
    }

    /// Shrinks when fewer than one bucket in eight would be used (Redis's
    /// `HASHTABLE_MIN_FILL` is one in ten), and gives back item room when
    /// fewer than a quarter of it is used.
    fn shrink_if_sparse(&mut self) {
        let len = self.slots.len();
        if len == 0 {
            *self = Dict::default();
            return;
        }
        if self.buckets.len() > MIN_BUCKETS && len * 8 < self.buckets.len() {
            self.rehash(len);
        }
        if self.slots.capacity() > 16 && len * 4 < self.slots.capacity() {
            self.slots.shrink_to(len * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Pair(Vec<u8>, u32);

    impl Item for Pair {
        fn key(&self) -> &[u8] {
            &self.0
        }
    }

    fn key(n: u32) -> Vec<u8> {
        format!("member:{n}").into_bytes()
    }

    /// Every link is consistent: each item is reached once, from the
    /// bucket its hash names.
    fn check(d: &Dict<Pair>) {
        let mut seen = vec![false; d.len()];
        for (b, &head) in d.buckets.iter().enumerate() {
            let mut at = head;
            while at != NONE {
                let slot = &d.slots[at as usize];
                assert_eq!(slot.hash as usize & d.mask(), b);
                assert_eq!(slot.hash, hash32(&slot.item.0));
                assert!(!seen[at as usize], "item {at} linked twice");
                seen[at as usize] = true;
                at = slot.next;
            }
        }
        assert!(seen.iter().all(|&s| s), "an item is unreachable");
        assert!(d.is_empty() || d.buckets.len().is_power_of_two());
        assert!(d.len() <= d.buckets.len());
    }

    #[test]
    fn grows_and_shrinks_keeping_every_link() {
        let mut d = Dict::new();
        for n in 0..1000 {
            assert_eq!(d.insert(Pair(key(n), n)), None);
        }
        check(&d);
        assert_eq!(d.buckets.len(), 1024);
        assert_eq!(d.insert(Pair(key(7), 70)), Some(Pair(key(7), 7)));
        assert_eq!(d.get(&key(7)), Some(&Pair(key(7), 70)));
        for n in 0..990 {
            assert_eq!(
                d.remove(&key(n)).map(|p| p.1),
                Some(if n == 7 { 70 } else { n })
            );
        }
        check(&d);
        assert_eq!(d.len(), 10);
        assert!(
            d.buckets.len() <= 16,
            "{} buckets for 10 items",
            d.buckets.len()
        );
        for n in 990..1000 {
            assert!(d.contains(&key(n)));
        }
        for n in 990..1000 {
            d.remove(&key(n));
        }
        assert!(d.is_empty());
        assert_eq!(d.bytes(), 0);
        assert_eq!(d.scan(0, |_| panic!("empty")), 0);
    }

    #[test]
    fn a_scan_sees_every_item_present_throughout_while_the_table_resizes() {
        let mut d = Dict::new();
        // Stable items, then churn between calls: growth to 8x, then
        // shrinking back below the start.
        for n in 0..100 {
            d.insert(Pair(key(n), n));
        }
        let mut seen = HashSet::new();
        let mut cursor = 0;
        let mut step = 0u32;
        loop {
            cursor = d.scan(cursor, |p| {
                seen.insert(p.1);
            });
            step += 1;
            if step < 40 {
                for n in 0..20 {
                    d.insert(Pair(key(1000 + step * 20 + n), 0));
                }
            } else {
                for n in 0..40 {
                    d.remove(&key(1000 + (step - 40) * 40 + n));
                }
            }
            check(&d);
            if cursor == 0 {
                break;
            }
            assert!(step < 100_000, "the scan does not end");
        }
        for n in 0..100 {
            assert!(seen.contains(&n), "item {n} was never returned");
        }
    }

    #[test]
    fn random_access_is_dense() {
        let mut d = Dict::new();
        for n in 0..50 {
            d.insert(Pair(key(n), n));
        }
        let mut all: Vec<u32> = (0..d.len()).map(|i| d.get_index(i).unwrap().1).collect();
        all.sort_unstable();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        assert_eq!(d.get_index(50), None);
        let mut popped = HashSet::new();
        while !d.is_empty() {
            let p = d.swap_remove_index(d.len() / 2);
            assert!(popped.insert(p.1));
            check(&d);
        }
        assert_eq!(popped.len(), 50);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        Remove(u8),
        RemoveIndex(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<u8>(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => any::<u8>().prop_map(Op::Remove),
            1 => any::<u16>().prop_map(Op::RemoveIndex),
        ]
    }

    proptest! {
        /// The table answers as a map does, whatever is done to it.
        #[test]
        fn behaves_as_a_map(ops in prop::collection::vec(op(), 0..400)) {
            let mut d = Dict::new();
            let mut model: HashMap<Vec<u8>, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let k = key(u32::from(k));
                        let old = d.insert(Pair(k.clone(), v)).map(|p| p.1);
                        prop_assert_eq!(old, model.insert(k, v));
                    }
                    Op::Remove(k) => {
                        let k = key(u32::from(k));
                        prop_assert_eq!(d.remove(&k).map(|p| p.1), model.remove(&k));
                    }
                    Op::RemoveIndex(i) => {
                        if !d.is_empty() {
                            let p = d.swap_remove_index(usize::from(i) % d.len());
                            prop_assert_eq!(model.remove(&p.0), Some(p.1));
                        }
                    }
                }
                prop_assert_eq!(d.len(), model.len());
            }
            check(&d);
            for (k, v) in &model {
                prop_assert_eq!(d.get(k).map(|p| p.1), Some(*v));
            }
            let mut scanned = Vec::new();
            let mut cursor = 0;
            loop {
                cursor = d.scan(cursor, |p| scanned.push(p.0.clone()));
                if cursor == 0 {
                    break;
                }
            }
            // Without changes in between, a scan returns each item once.
            prop_assert_eq!(scanned.len(), model.len());
            let scanned: HashSet<_> = scanned.into_iter().collect();
            prop_assert_eq!(scanned, model.keys().cloned().collect::<HashSet<_>>());
        }
    }
}

//! The keys that have a deadline, for the active expiry cycle's sampling.

use hashbrown::HashTable;

use super::{Key, hash_key};

/// The keys with a deadline, in a form that can be sampled at random in
/// O(1): a vector of keys (copies, inline for keys of up to 22 bytes) and,
/// to find a key's place in it, a table of positions that compares through
/// the vector. About 32 bytes per key with a deadline.
///
/// Every method takes the key's [`hash_key`], which its caller has
/// computed already for its own table: no key is hashed twice.
///
/// One pointer while no key has a deadline (most databases of most
/// servers: 16,384 of them at startup), the vector and table once one
/// does.
#[derive(Debug, Default)]
pub struct Volatile(Option<Box<Inner>>);

#[derive(Debug, Default)]
struct Inner {
    keys: Vec<Key>,
    pos: HashTable<u32>,
}

impl Volatile {
    /// Adds `key` (whose hash is `hash`) if it is not there yet.
    pub fn insert(&mut self, hash: u64, key: &[u8]) {
        let inner = self.0.get_or_insert_default();
        let keys = &inner.keys;
        if inner
            .pos
            .find(hash, |&i| keys[i as usize][..] == *key)
            .is_none()
        {
            inner
                .pos
                .insert_unique(hash, keys.len() as u32, |&i| hash_key(&keys[i as usize]));
            inner.keys.push(Key::from_slice(key));
        }
    }

    /// Removes `key` (whose hash is `hash`) if it is there.
    pub fn remove(&mut self, hash: u64, key: &[u8]) {
        let Some(inner) = self.0.as_deref_mut() else {
            return;
        };
        let keys = &inner.keys;
        let Ok(slot) = inner
            .pos
            .find_entry(hash, |&i| keys[i as usize][..] == *key)
        else {
            return;
        };
        let (i, _) = slot.remove();
        let last = (inner.keys.len() - 1) as u32;
        if i != last {
            // The last key moves into the hole: repoint its position.
            let moved = hash_key(&inner.keys[last as usize]);
            if let Some(p) = inner.pos.find_mut(moved, |&j| j == last) {
                *p = i;
            }
        }
        inner.keys.swap_remove(i as usize);
        if inner.keys.is_empty() {
            // Back to one pointer: the vector and the table may have grown
            // large.
            self.0 = None;
        }
    }

    /// Every key with a deadline, in no useful order: `keys()[i]` for a
    /// random `i` is a uniform sample.
    #[inline]
    pub fn keys(&self) -> &[Key] {
        self.0.as_ref().map_or(&[], |v| &v.keys)
    }

    /// Number of keys with a deadline.
    #[inline]
    pub fn len(&self) -> usize {
        self.keys().len()
    }

    /// Whether no key has a deadline.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    /// Every key is found at its position, and nothing else is there.
    fn check(v: &Volatile, model: &HashSet<Vec<u8>>) {
        assert_eq!(v.len(), model.len());
        assert_eq!(v.0.as_ref().map_or(0, |i| i.pos.len()), model.len());
        assert_eq!(v.is_empty(), model.is_empty());
        let keys: HashSet<Vec<u8>> = v.keys().iter().map(|k| k.to_vec()).collect();
        assert_eq!(&keys, model);
        for (i, key) in v.keys().iter().enumerate() {
            let pos = &v.0.as_ref().expect("a key").pos;
            let found = pos.find(hash_key(key), |&j| j as usize == i);
            assert!(found.is_some(), "{key:?} is not found at {i}");
        }
    }

    #[test]
    fn no_deadline_is_one_pointer() {
        assert_eq!(size_of::<Volatile>(), 8);
        let mut v = Volatile::default();
        v.insert(hash_key(b"k"), b"k");
        v.remove(hash_key(b"k"), b"k");
        assert!(v.0.is_none());
    }

    proptest! {
        #[test]
        fn matches_a_set(ops in proptest::collection::vec((any::<bool>(), 0u8..40), 0..300)) {
            let mut v = Volatile::default();
            let mut model = HashSet::new();
            for (add, k) in ops {
                // Short keys and keys longer than a slot's inline room.
                let key = if k % 2 == 0 { vec![k; 3] } else { vec![k; 40] };
                if add {
                    v.insert(hash_key(&key), &key);
                    model.insert(key);
                } else {
                    v.remove(hash_key(&key), &key);
                    model.remove(&key);
                }
            }
            check(&v, &model);
        }
    }
}

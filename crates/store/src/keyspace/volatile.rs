//! The keys that have a deadline, for the active expiry cycle's sampling.

use hashbrown::HashTable;

use super::{Key, hash_key};

/// The keys with a deadline, in a form that can be sampled at random in
/// O(1): a vector of keys (copies, inline for keys of up to 24 bytes) and,
/// to find a key's place in it, a table of positions that compares through
/// the vector. About 40 bytes per key with a deadline.
///
/// Every method takes the key's [`hash_key`], which its caller has
/// computed already for its own table: no key is hashed twice.
#[derive(Debug, Default)]
pub struct Volatile {
    keys: Vec<Key>,
    pos: HashTable<u32>,
}

impl Volatile {
    /// Adds `key` (whose hash is `hash`) if it is not there yet.
    pub fn insert(&mut self, hash: u64, key: &[u8]) {
        let keys = &self.keys;
        if self
            .pos
            .find(hash, |&i| keys[i as usize][..] == *key)
            .is_none()
        {
            self.pos
                .insert_unique(hash, keys.len() as u32, |&i| hash_key(&keys[i as usize]));
            self.keys.push(Key::from_slice(key));
        }
    }

    /// Removes `key` (whose hash is `hash`) if it is there.
    pub fn remove(&mut self, hash: u64, key: &[u8]) {
        if self.keys.is_empty() {
            return;
        }
        let keys = &self.keys;
        let Ok(slot) = self.pos.find_entry(hash, |&i| keys[i as usize][..] == *key) else {
            return;
        };
        let (i, _) = slot.remove();
        let last = (self.keys.len() - 1) as u32;
        if i != last {
            // The last key moves into the hole: repoint its position.
            let moved = hash_key(&self.keys[last as usize]);
            if let Some(p) = self.pos.find_mut(moved, |&j| j == last) {
                *p = i;
            }
        }
        self.keys.swap_remove(i as usize);
    }

    /// Every key with a deadline, in no useful order: `keys()[i]` for a
    /// random `i` is a uniform sample.
    #[inline]
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Number of keys with a deadline.
    #[inline]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key has a deadline.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
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
        assert_eq!(v.pos.len(), model.len());
        let keys: HashSet<Vec<u8>> = v.keys().iter().map(|k| k.to_vec()).collect();
        assert_eq!(&keys, model);
        for (i, key) in v.keys().iter().enumerate() {
            let found = v.pos.find(hash_key(key), |&j| j as usize == i);
            assert!(found.is_some(), "{key:?} is not found at {i}");
        }
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

//! TEMPORARY stand-in for the lead's `Dict` (same API), so that sets can be
//! built and tested before it lands. Deleted before merging main.

use hashbrown::HashTable;

use crate::keyspace::hash_key;

/// An element stored in a [`Dict`].
pub trait Item {
    /// The element's lookup key.
    fn key(&self) -> &[u8];
}

/// Stand-in hash table: dense items and an index.
#[derive(Debug, Clone)]
pub struct Dict<T> {
    items: Vec<T>,
    index: HashTable<u32>,
}

impl<T> Default for Dict<T> {
    fn default() -> Self {
        Dict {
            items: Vec::new(),
            index: HashTable::new(),
        }
    }
}

impl<T: Item> Dict<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }
    /// An empty table with room for `n` items.
    pub fn with_capacity(n: usize) -> Self {
        Dict {
            items: Vec::with_capacity(n),
            index: HashTable::with_capacity(n),
        }
    }
    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    fn find(&self, key: &[u8]) -> Option<usize> {
        self.index
            .find(hash_key(key), |&i| self.items[i as usize].key() == key)
            .map(|&i| i as usize)
    }
    /// The item with `key`.
    pub fn get(&self, key: &[u8]) -> Option<&T> {
        self.find(key).map(|i| &self.items[i])
    }
    /// The item with `key`, mutably.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        self.find(key).map(|i| &mut self.items[i])
    }
    /// Whether an item has `key`.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }
    /// Inserts, replacing.
    pub fn insert(&mut self, item: T) -> Option<T> {
        if let Some(i) = self.find(item.key()) {
            return Some(std::mem::replace(&mut self.items[i], item));
        }
        let h = hash_key(item.key());
        let i = self.items.len() as u32;
        self.items.push(item);
        let items = &self.items;
        self.index
            .insert_unique(h, i, |&j| hash_key(items[j as usize].key()));
        None
    }
    /// Removes.
    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        let i = self.find(key)?;
        Some(self.swap_remove_index(i))
    }
    /// Item `i`.
    pub fn get_index(&self, i: usize) -> Option<&T> {
        self.items.get(i)
    }
    /// Removes item `i`.
    pub fn swap_remove_index(&mut self, i: usize) -> T {
        let h = hash_key(self.items[i].key());
        if let Ok(e) = self.index.find_entry(h, |&j| j as usize == i) {
            e.remove();
        }
        let last = self.items.len() - 1;
        if i != last {
            let hl = hash_key(self.items[last].key());
            if let Some(slot) = self.index.find_mut(hl, |&j| j as usize == last) {
                *slot = i as u32;
            }
        }
        self.items.swap_remove(i)
    }
    /// Dense order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }
    /// Visits one item.
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&T)) -> u64 {
        let i = cursor as usize;
        if let Some(item) = self.items.get(i) {
            visit(item);
        }
        if i + 1 >= self.items.len() {
            0
        } else {
            i as u64 + 1
        }
    }
    /// Table bytes.
    pub fn bytes(&self) -> usize {
        self.items.capacity() * size_of::<T>() + self.index.capacity() * 5
    }
    /// The items.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

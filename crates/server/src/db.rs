//! The keyspace: every database, split into independently locked shards.
//!
//! A key lives in the same shard (a slice of its [`hash_key`]) in every
//! database, so a command on one key takes one shard's lock, and commands
//! on different shards run in parallel. A command on several keys locks their shards in
//! ascending order (so two such commands can never deadlock) and holds them
//! all while it runs, which makes it atomic, as in Redis. Commands on the
//! whole keyspace (FLUSHALL, KEYS, SWAPDB) lock every shard, in order.
//!
//! Expiry is lazy (a key read after its deadline is deleted on the spot)
//! and active (`active_expire_cycle` samples keys with a deadline, the way
//! Redis's `activeExpireCycle` does).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use hashbrown::HashTable;

use crate::blocking::Waiter;
use crate::value::Value;

/// Shards per keyspace. A power of two; enough that SCAN, which returns one
/// shard per step, keeps steps small, and that two cores rarely meet on the
/// same lock.
pub(crate) const SHARDS: usize = 1024;

/// The keyspace's hash of a key: xxh3 with a seed chosen at random when the
/// server starts, so that nobody can prepare keys that collide (Redis seeds
/// its SipHash the same way). One hash gives both the shard (middle bits)
/// and the slot within the shard's table (hashbrown uses the low and the top
/// bits).
pub(crate) fn hash_key(key: &[u8]) -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let mut rng = Rng::new(
            crate::server::now_ms() as u64
                ^ u64::from(std::process::id()).rotate_left(40)
                ^ (&SEED as *const _ as u64).rotate_left(20),
        );
        rng.next()
    });
    twox_hash::XxHash3_64::oneshot_with_seed(seed, key)
}

/// One key's value and deadline.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    /// Unix time in milliseconds after which the key no longer exists.
    pub(crate) expire_at: Option<i64>,
}

impl Entry {
    pub(crate) fn new(value: Value) -> Self {
        Entry {
            value,
            expire_at: None,
        }
    }

    fn is_expired(&self, now: i64) -> bool {
        self.expire_at.is_some_and(|at| at <= now)
    }
}

/// A key and its entry, as the table holds them.
#[derive(Debug)]
struct Slot {
    key: Bytes,
    entry: Entry,
}

/// One database's keys within one shard.
#[derive(Debug, Default)]
pub(crate) struct Db {
    /// Keys and entries, found by [`hash_key`]: a table rather than a map so
    /// that a lookup hashes the key once and an expired entry is deleted
    /// through the slot that found it. The table holds pointers, as Redis's
    /// dict does: a table is between 44% and 87% full, and empty slots of
    /// 8 bytes waste less than empty slots of a whole entry.
    map: HashTable<Box<Slot>>,
    /// The keys that have a deadline, for sampling; see [`Volatile`].
    volatile: Volatile,
    /// Clients blocked on keys of this shard, oldest first. They belong to
    /// the database index, not its contents: SWAPDB leaves them in place.
    pub(crate) waiters: HashMap<Bytes, VecDeque<Arc<Waiter>>>,
}

impl Db {
    /// The live entry for `key`, deleting it first if it has expired.
    pub(crate) fn get(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        let hash = hash_key(key);
        match self.map.find_entry(hash, |s| s.key[..] == *key) {
            Ok(slot) if !slot.get().entry.is_expired(now) => Some(&mut slot.into_mut().entry),
            Ok(slot) => {
                let (slot, _) = slot.remove();
                self.volatile.remove(hash, &slot.key);
                None
            }
            Err(_) => None,
        }
    }

    /// Looks `key` up once for a write that depends on the old value (SET
    /// with NX, XX, GET or KEEPTTL): `decide` sees the live entry, if any,
    /// and returns what to store (`None` leaves the key as it is) and a
    /// result. The key is copied only when it is new.
    pub(crate) fn update<R>(
        &mut self,
        key: &[u8],
        now: i64,
        decide: impl FnOnce(Option<&Entry>) -> (Option<Entry>, R),
    ) -> R {
        let hash = hash_key(key);
        let slot = self
            .map
            .entry(hash, |s| s.key[..] == *key, |s| hash_key(&s.key));
        match slot {
            hashbrown::hash_table::Entry::Occupied(mut slot) => {
                let old = &slot.get().entry;
                let live = !old.is_expired(now);
                let had_deadline = old.expire_at.is_some();
                let (new, result) = decide(live.then_some(old));
                match new {
                    Some(new) => {
                        match (had_deadline, new.expire_at.is_some()) {
                            (false, true) => self.volatile.insert(hash, &slot.get().key),
                            (true, false) => self.volatile.remove(hash, key),
                            _ => {}
                        }
                        slot.get_mut().entry = new;
                    }
                    None if !live => {
                        slot.remove();
                        if had_deadline {
                            self.volatile.remove(hash, key);
                        }
                    }
                    None => {}
                }
                result
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                let (new, result) = decide(None);
                if let Some(entry) = new {
                    let key = Bytes::copy_from_slice(key);
                    if entry.expire_at.is_some() {
                        self.volatile.insert(hash, &key);
                    }
                    slot.insert(Box::new(Slot { key, entry }));
                }
                result
            }
        }
    }

    /// Whether `key` exists (and has not expired).
    pub(crate) fn contains(&mut self, key: &[u8], now: i64) -> bool {
        self.get(key, now).is_some()
    }

    /// Stores `entry` under `key`, replacing any old value and deadline.
    pub(crate) fn insert(&mut self, key: Bytes, entry: Entry) {
        let hash = hash_key(&key);
        if entry.expire_at.is_some() {
            self.volatile.insert(hash, &key);
        } else {
            self.volatile.remove(hash, &key);
        }
        match self.map.find_entry(hash, |s| s.key == key) {
            Ok(mut slot) => slot.get_mut().entry = entry,
            Err(_) => {
                self.map
                    .insert_unique(hash, Box::new(Slot { key, entry }), |s| hash_key(&s.key));
            }
        }
    }

    /// Removes `key`, returning its entry (expired or not).
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let hash = hash_key(key);
        let slot = self.map.find_entry(hash, |s| s.key[..] == *key).ok()?;
        let (slot, _) = slot.remove();
        let entry = slot.entry;
        if entry.expire_at.is_some() {
            self.volatile.remove(hash, key);
        }
        Some(entry)
    }

    /// Sets or clears the deadline of an existing key. Returns false if the
    /// key does not exist.
    pub(crate) fn set_expire(&mut self, key: &[u8], at: Option<i64>) -> bool {
        let hash = hash_key(key);
        let Some(Slot { key: k, entry }) = self
            .map
            .find_mut(hash, |s| s.key[..] == *key)
            .map(|s| &mut **s)
        else {
            return false;
        };
        match (entry.expire_at, at) {
            (None, Some(_)) => self.volatile.insert(hash, k),
            (Some(_), None) => self.volatile.remove(hash, key),
            _ => {}
        }
        entry.expire_at = at;
        true
    }

    /// Number of keys, counting ones expired but not yet reclaimed (as
    /// Redis's DBSIZE does).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Number of keys with a deadline.
    pub(crate) fn volatile_len(&self) -> usize {
        self.volatile.keys.len()
    }

    /// Every live key, with its entry.
    pub(crate) fn iter(&self, now: i64) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.map
            .iter()
            .filter(move |s| !s.entry.is_expired(now))
            .map(|s| (&s.key, &s.entry))
    }

    pub(crate) fn clear(&mut self) {
        self.map = HashTable::new();
        self.volatile = Volatile::default();
    }

    /// Exchanges contents (keys and deadlines, not blocked clients) with
    /// `other`, for SWAPDB.
    pub(crate) fn swap_contents(&mut self, other: &mut Db) {
        std::mem::swap(&mut self.map, &mut other.map);
        std::mem::swap(&mut self.volatile, &mut other.volatile);
    }

    /// Keys some client is blocked on.
    pub(crate) fn waited_keys(&self) -> Vec<Bytes> {
        self.waiters.keys().cloned().collect()
    }

    /// A key picked at random among the live ones, or `None` if none is.
    pub(crate) fn random_key(&mut self, now: i64, rng: &mut Rng) -> Option<Bytes> {
        // Expired keys met on the way are deleted, as Redis's RANDOMKEY does.
        for _ in 0..self.map.len().min(100) {
            let key = self.random_slot(rng)?;
            let key = key.clone();
            if self.get(&key, now).is_some() {
                return Some(key);
            }
        }
        None
    }

    /// The key of a slot picked at random: random buckets until one is
    /// full (a table is at least about 40% full unless it shrank by
    /// deletes), then, rarely, a walk to a random position.
    fn random_slot(&self, rng: &mut Rng) -> Option<&Bytes> {
        let buckets = self.map.num_buckets();
        for _ in 0..32 {
            if let Some(slot) = self.map.get_bucket(rng.below(buckets)?) {
                return Some(&slot.key);
            }
        }
        let n = rng.below(self.map.len())?;
        self.map.iter().nth(n).map(|s| &s.key)
    }

    /// Deletes sampled expired keys: up to `samples` keys with a deadline,
    /// chosen at random. Returns (sampled, expired).
    pub(crate) fn expire_sample(
        &mut self,
        samples: usize,
        now: i64,
        rng: &mut Rng,
    ) -> (usize, usize) {
        let mut expired = 0;
        let n = samples.min(self.volatile.keys.len());
        for _ in 0..n {
            let Some(i) = rng.below(self.volatile.keys.len()) else {
                break;
            };
            let key = self.volatile.keys[i].clone();
            if self.get(&key, now).is_none() {
                expired += 1;
            }
        }
        (n, expired)
    }
}

/// The keys with a deadline, in a form that can be sampled at random in
/// O(1): a vector of keys (`Bytes` sharing the table's key storage) and,
/// to find a key's place in it, a table of positions that compares through
/// the vector. About 40 bytes per key with a deadline.
#[derive(Debug, Default)]
struct Volatile {
    keys: Vec<Bytes>,
    pos: HashTable<u32>,
}

impl Volatile {
    fn insert(&mut self, hash: u64, key: &Bytes) {
        let keys = &self.keys;
        if self.pos.find(hash, |&i| keys[i as usize] == key).is_none() {
            self.pos
                .insert_unique(hash, keys.len() as u32, |&i| hash_key(&keys[i as usize]));
            self.keys.push(key.clone());
        }
    }

    fn remove(&mut self, hash: u64, key: &[u8]) {
        if self.keys.is_empty() {
            return;
        }
        let keys = &self.keys;
        let Ok(slot) = self.pos.find_entry(hash, |&i| keys[i as usize] == key) else {
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
}

/// One shard: its part of every database.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) dbs: Vec<Db>,
}

/// All databases, sharded.
#[derive(Debug)]
pub(crate) struct Keyspace {
    shards: Box<[Mutex<Shard>]>,
    databases: usize,
}

impl Keyspace {
    pub(crate) fn new(databases: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    dbs: (0..databases).map(|_| Db::default()).collect(),
                })
            })
            .collect();
        Keyspace { shards, databases }
    }

    pub(crate) fn databases(&self) -> usize {
        self.databases
    }

    /// The shard `key` lives in.
    pub(crate) fn shard_of(key: &[u8]) -> usize {
        (hash_key(key) >> 32) as usize & (SHARDS - 1)
    }

    /// Locks the shard `key` lives in.
    pub(crate) fn lock_key(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        self.lock(Self::shard_of(key))
    }

    /// Locks one shard. A poisoned lock (a command panicked while holding
    /// it) is taken anyway: a shard's maps are valid after any panic.
    pub(crate) fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        self.shards[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Locks the shards of `keys`, in ascending order, each once.
    pub(crate) fn lock_keys<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> Locked<'_> {
        let mut ids: Vec<usize> = keys.into_iter().map(Self::shard_of).collect();
        ids.sort_unstable();
        ids.dedup();
        let guards = ids.iter().map(|&i| self.lock(i)).collect();
        Locked { ids, guards }
    }

    /// Locks every shard, in order.
    pub(crate) fn lock_all(&self) -> Locked<'_> {
        let ids: Vec<usize> = (0..SHARDS).collect();
        let guards = ids.iter().map(|&i| self.lock(i)).collect();
        Locked { ids, guards }
    }

    /// Runs `f` on each shard in turn, each under its own lock: for
    /// whole-keyspace reads that need no atomicity across shards.
    pub(crate) fn for_each_shard(&self, mut f: impl FnMut(&mut Shard)) {
        for i in 0..SHARDS {
            f(&mut self.lock(i));
        }
    }
}

/// A set of locked shards.
#[derive(Debug)]
pub(crate) struct Locked<'a> {
    ids: Vec<usize>,
    guards: Vec<MutexGuard<'a, Shard>>,
}

impl<'a> Locked<'a> {
    /// The database `db` of the shard holding `key`, which must be one of
    /// the locked keys.
    pub(crate) fn db(&mut self, db: usize, key: &[u8]) -> &mut Db {
        let shard = Keyspace::shard_of(key);
        let i = self.ids.binary_search(&shard).unwrap_or(0);
        &mut self.guards[i].dbs[db]
    }

    /// Every locked shard.
    pub(crate) fn shards(&mut self) -> impl Iterator<Item = &mut Shard> {
        self.guards.iter_mut().map(|g| &mut **g)
    }

    /// Whether the shard of `key` is locked.
    pub(crate) fn holds(&self, key: &[u8]) -> bool {
        self.ids.binary_search(&Keyspace::shard_of(key)).is_ok()
    }

    /// Adds the shard of `key` if it can be locked without waiting: taking
    /// a lock out of order is safe only as a try, never as a wait.
    pub(crate) fn try_add(&mut self, ks: &'a Keyspace, key: &[u8]) -> bool {
        let shard = Keyspace::shard_of(key);
        let Err(at) = self.ids.binary_search(&shard) else {
            return true;
        };
        match ks.shards[shard].try_lock() {
            Ok(guard) => {
                self.ids.insert(at, shard);
                self.guards.insert(at, guard);
                true
            }
            Err(std::sync::TryLockError::Poisoned(p)) => {
                self.ids.insert(at, shard);
                self.guards.insert(at, p.into_inner());
                true
            }
            Err(std::sync::TryLockError::WouldBlock) => false,
        }
    }
}

/// A small, fast random number generator (xorshift64*) for sampling keys;
/// not for anything that needs to be unpredictable.
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`, or `None` when `n` is 0.
    pub(crate) fn below(&mut self, n: usize) -> Option<usize> {
        (n > 0).then(|| (self.next() % n as u64) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &'static str, expire_at: Option<i64>) -> Entry {
        Entry {
            value: Value::from_bytes(Bytes::from_static(v.as_bytes())),
            expire_at,
        }
    }

    #[test]
    fn lazy_expiry_and_volatile_tracking() {
        let mut db = Db::default();
        db.insert(Bytes::from_static(b"a"), entry("1", Some(100)));
        db.insert(Bytes::from_static(b"b"), entry("2", None));
        assert_eq!(db.volatile_len(), 1);
        assert!(db.get(b"a", 99).is_some());
        assert!(db.get(b"a", 100).is_none());
        assert_eq!(db.len(), 1);
        assert_eq!(db.volatile_len(), 0);
        assert!(db.set_expire(b"b", Some(50)));
        assert_eq!(db.volatile_len(), 1);
        assert!(db.set_expire(b"b", None));
        assert_eq!(db.volatile_len(), 0);
        assert!(!db.set_expire(b"zz", None));
    }

    #[test]
    fn sampling_reclaims_expired_keys() {
        let mut db = Db::default();
        for i in 0..100 {
            let at = if i % 2 == 0 { Some(10) } else { Some(1_000) };
            db.insert(Bytes::from(format!("k{i}")), entry("v", at));
        }
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            db.expire_sample(20, 500, &mut rng);
        }
        assert_eq!(db.len(), 50);
        assert_eq!(db.volatile_len(), 50);
    }

    #[test]
    fn multi_key_locks_are_ordered_and_deduplicated() {
        let ks = Keyspace::new(2);
        let keys: Vec<&[u8]> = vec![b"x", b"y", b"x", b"z"];
        let mut locked = ks.lock_keys(keys.iter().copied());
        assert!(locked.ids.windows(2).all(|w| w[0] < w[1]));
        locked
            .db(1, b"y")
            .insert(Bytes::from_static(b"y"), entry("v", None));
        drop(locked);
        assert_eq!(ks.lock(Keyspace::shard_of(b"y")).dbs[1].len(), 1);
    }
}

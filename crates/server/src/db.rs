//! The keyspace: every database, split into independently locked shards.
//!
//! A key lives in the same shard (a slice of its [`hash_key`]) in every
//! database, so a command on one key takes one shard's lock, and commands
//! on different shards run in parallel. A command on several keys locks their shards in
//! ascending order (so two such commands can never deadlock) and holds them
//! all while it runs, which makes it atomic, as in Redis. Commands on the
//! whole keyspace (FLUSHALL, KEYS, SWAPDB) lock every shard, in order.
//!
//! Shards are reached only through [`Shards`], which a command finds in its
//! context: outside a transaction it locks shards as asked, and inside EXEC
//! it hands out the shards the transaction already holds (a
//! `std::sync::Mutex` is not reentrant, so a second lock of a held shard
//! would deadlock). The keyspace's own lock methods are private to this
//! file for that reason.
//!
//! Expiry is lazy (a key read after its deadline is deleted on the spot)
//! and active (`active_expire_cycle` samples keys with a deadline, the way
//! Redis's `activeExpireCycle` does).
//!
//! WATCH is a registry per database of who watches which key. Every change
//! to a key made through [`Db`] (insert, remove, a new deadline, an expired
//! key deleted) marks its watchers; a command that changes a value in place
//! calls [`Db::modified`]. Nobody watching costs one length check.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use hashbrown::HashTable;
use smallvec::SmallVec;
use store::keyspace::Volatile;
use store::value::Value;

use crate::blocking::Waiter;

pub(crate) use store::Rng;
pub(crate) use store::keyspace::{Entry, Key, hash_key};

/// Shards per keyspace. A power of two; enough that SCAN, which returns one
/// shard per step, keeps steps small, and that two cores rarely meet on the
/// same lock.
pub(crate) const SHARDS: usize = 1024;

/// A key and its entry, as the table holds them.
#[derive(Debug)]
struct Slot {
    key: Key,
    entry: Entry,
    /// When the key was last accessed, on [`lru_clock`] (OBJECT IDLETIME).
    lru: u32,
}

/// Seconds since the epoch, as a `u32` that wraps (in 2106), refreshed by
/// [`tick_lru_clock`] ten times a second: what each access stamps on its
/// key, like Redis's LRU clock, without reading a clock per access.
static LRU_CLOCK: AtomicU32 = AtomicU32::new(0);

/// Whether clients may wait for a value of this type (BLPOP and friends
/// for lists, BZPOPMIN and friends for sorted sets).
fn waitable(value: &Value) -> bool {
    matches!(value, Value::List(_) | Value::ZSet(_))
}

/// The current [`LRU_CLOCK`].
#[inline]
pub(crate) fn lru_clock() -> u32 {
    LRU_CLOCK.load(Ordering::Relaxed)
}

/// Refreshes the clock keys' last accesses are stamped with.
pub(crate) fn tick_lru_clock() {
    let secs = crate::server::now_ms().max(0) / 1000;
    LRU_CLOCK.store(secs as u32, Ordering::Relaxed);
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
    /// Clients watching keys of this shard. Like the waiters, they stay
    /// with the database index.
    watched: HashMap<Bytes, Vec<Watcher>>,
    /// This database's number (SWAPDB exchanges contents, not numbers).
    pub(crate) index: usize,
    /// Expired keys are hidden instead of deleted, unless the running
    /// command records what it changes for replicas (see
    /// [`crate::repl::prop`]). A replica sets it, as it leaves deletions to
    /// its master; a master feeding replicas sets it so that only commands
    /// whose deletions reach the stream, in order, delete.
    pub(crate) hide_expired: bool,
    /// The end (Unix ms) of the CLIENT PAUSE in force, `i64::MIN` for
    /// none, shared by every database: while a pause is on, expired keys
    /// are hidden, not deleted, so the keyspace and replication stream stay
    /// still (Redis's `expireIfNeeded` under a pause).
    expiry_paused_until: Arc<AtomicI64>,
    /// Keys of this database that became lists while clients waited on
    /// them (Redis's `signalKeyAsReady`), each with its place in the order
    /// keys became ready anywhere in the keyspace: noted where a key is
    /// added or replaced, served by whoever holds the shard when the
    /// command ends ([`Locked::take_ready`]).
    ready: Vec<(u64, Bytes)>,
    /// The order of [`Db::ready`]'s notes across databases and shards.
    ready_seq: Arc<AtomicU64>,
}

/// A client's WATCH state as the keyspace sees it: set when a key it
/// watches changes, read by its EXEC (Redis's `CLIENT_DIRTY_CAS`). It is
/// set under the lock of the changed key's shard, and EXEC reads it holding
/// the shards of every watched key.
#[derive(Debug, Default)]
pub(crate) struct WatchFlag(AtomicBool);

impl WatchFlag {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(crate) fn clear(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Redis's `touchWatchedKey`: marks the clients watching `key`. `expiry`
/// says the key was deleted because it had expired: for a client that
/// watched it already expired, that is no change.
#[cold]
fn touch(watched: &mut HashMap<Bytes, Vec<Watcher>>, key: &[u8], expiry: bool) {
    let Some(watchers) = watched.get_mut(key) else {
        return;
    };
    for w in watchers {
        if expiry && w.expired {
            // Stale when watched, gone now: logically unchanged. From now
            // on the key is watched as a missing key.
            w.expired = false;
        } else {
            w.flag.set();
        }
    }
}

/// One client watching one key.
#[derive(Debug)]
struct Watcher {
    flag: Arc<WatchFlag>,
    /// The key had expired, but was not yet deleted, when WATCH was called:
    /// its deletion is then no change (Redis 7.0's "stale keys" rule).
    expired: bool,
}

impl Db {
    /// The live entry for `key`, deleting it first if it has expired.
    pub(crate) fn get(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.lookup(key, now, true)
    }

    /// [`Db::get`] without counting as an access: what OBJECT, TYPE, TTL and
    /// EXISTS use, so that OBJECT IDLETIME is not reset by them (Redis's
    /// `LOOKUP_NOTOUCH`).
    pub(crate) fn peek(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.lookup(key, now, false)
    }

    /// Seconds since `key` was last accessed, if it exists.
    pub(crate) fn idle_secs(&self, key: &[u8]) -> Option<u64> {
        let slot = self.map.find(hash_key(key), |s| s.key[..] == *key)?;
        Some(u64::from(lru_clock().wrapping_sub(slot.lru)))
    }

    /// Makes `key` look idle for `secs` seconds (RESTORE's IDLETIME).
    pub(crate) fn set_idle(&mut self, key: &[u8], secs: i64) {
        if let Some(slot) = self.map.find_mut(hash_key(key), |s| s.key[..] == *key) {
            // The clock wraps; an idle time beyond half its range would
            // read as a recent access.
            let secs = secs.clamp(0, i64::from(u32::MAX / 2)) as u32;
            slot.lru = lru_clock().wrapping_sub(secs);
        }
    }

    /// [`Db::get`] of a key whose [`hash_key`] is `hash`.
    pub(crate) fn get_hashed(&mut self, key: &[u8], hash: u64, now: i64) -> Option<&mut Entry> {
        self.lookup_hashed(key, hash, now, true)
    }

    fn lookup(&mut self, key: &[u8], now: i64, access: bool) -> Option<&mut Entry> {
        self.lookup_hashed(key, hash_key(key), now, access)
    }

    fn lookup_hashed(
        &mut self,
        key: &[u8],
        hash: u64,
        now: i64,
        access: bool,
    ) -> Option<&mut Entry> {
        match self.map.find_entry(hash, |s| s.key[..] == *key) {
            Ok(slot) if !slot.get().entry.is_expired(now) => {
                let slot = slot.into_mut();
                if access {
                    slot.lru = lru_clock();
                }
                Some(&mut slot.entry)
            }
            Ok(slot) => {
                if self.hide_expired && !crate::repl::prop::recording() {
                    return None;
                }
                if self.expiry_paused_until.load(Ordering::Relaxed) >= now {
                    return None;
                }
                let (slot, _) = slot.remove();
                self.volatile.remove(hash, &slot.key);
                if !self.watched.is_empty() {
                    touch(&mut self.watched, &slot.key, true);
                }
                if self.hide_expired {
                    crate::repl::prop::expired(self.index, &slot.key);
                }
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
                slot.get_mut().lru = lru_clock();
                let old = &slot.get().entry;
                let live = !old.is_expired(now);
                let had_deadline = old.expire_at().is_some();
                let (new, result) = decide(live.then_some(old));
                if !live && self.hide_expired {
                    // Whether it is replaced or kept, a replica must drop
                    // the expired value first: its copy never expires.
                    if !crate::repl::prop::recording() {
                        if new.is_none() {
                            return result;
                        }
                    } else {
                        crate::repl::prop::expired(self.index, key);
                    }
                }
                match new {
                    Some(new) => {
                        match (had_deadline, new.expire_at().is_some()) {
                            (false, true) => self.volatile.insert(hash, &slot.get().key),
                            (true, false) => self.volatile.remove(hash, key),
                            _ => {}
                        }
                        let list = waitable(&new.value);
                        slot.get_mut().entry = new;
                        self.modified(key);
                        self.added(key, list);
                    }
                    None if !live => {
                        slot.remove();
                        if had_deadline {
                            self.volatile.remove(hash, key);
                        }
                        self.expired(key);
                    }
                    None => {}
                }
                result
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                let (new, result) = decide(None);
                if let Some(entry) = new {
                    let owned = Key::from_slice(key);
                    if entry.expire_at().is_some() {
                        self.volatile.insert(hash, key);
                    }
                    let list = waitable(&entry.value);
                    slot.insert(Box::new(Slot {
                        key: owned,
                        entry,
                        lru: lru_clock(),
                    }));
                    self.modified(key);
                    self.added(key, list);
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
    /// Stores `entry` under `key`, as [`Db::insert`] does, copying the key
    /// only when it is new (MSET's common case is overwriting).
    pub(crate) fn put(&mut self, key: &[u8], entry: Entry) {
        self.store(key, Key::from_slice, entry);
    }

    /// Stores `entry` under `key`, replacing any old value and deadline.
    pub(crate) fn insert(&mut self, key: Bytes, entry: Entry) {
        self.store(key, |k| Key::from_slice(&k), entry);
    }

    /// [`Db::put`] and [`Db::insert`]: `owned` makes the key to keep when
    /// it is new.
    fn store<K: AsRef<[u8]>>(&mut self, key: K, owned: impl FnOnce(K) -> Key, entry: Entry) {
        let k = key.as_ref();
        let hash = hash_key(k);
        let deadline = entry.expire_at().is_some();
        self.modified(k);
        self.added(k, waitable(&entry.value));
        match self.map.find_entry(hash, |s| s.key[..] == *k) {
            Ok(mut slot) => {
                let slot = slot.get_mut();
                let had = slot.entry.expire_at().is_some();
                slot.entry = entry;
                slot.lru = lru_clock();
                match (had, deadline) {
                    (false, true) => self.volatile.insert(hash, &slot.key),
                    (true, false) => self.volatile.remove(hash, &slot.key),
                    _ => {}
                }
            }
            Err(_) => {
                let key = owned(key);
                if deadline {
                    self.volatile.insert(hash, &key);
                }
                self.add_slot(hash, key, entry);
            }
        }
    }

    /// Adds a key known to be absent.
    fn add_slot(&mut self, hash: u64, key: Key, entry: Entry) {
        let slot = Box::new(Slot {
            key,
            entry,
            lru: lru_clock(),
        });
        self.map.insert_unique(hash, slot, |s| hash_key(&s.key));
    }

    /// Makes room for `n` more keys.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.map.reserve(n, |s| hash_key(&s.key));
    }

    /// Stores a new key whose [`hash_key`] is `hash` (loading a file);
    /// gives the key back if it is already there.
    pub(crate) fn insert_new(&mut self, hash: u64, key: Bytes, entry: Entry) -> Result<(), Bytes> {
        if self.map.find(hash, |s| s.key[..] == key[..]).is_some() {
            return Err(key);
        }
        if entry.expire_at().is_some() {
            self.volatile.insert(hash, &key);
        }
        self.modified(&key);
        self.added(&key, waitable(&entry.value));
        self.add_slot(hash, Key::from_slice(&key), entry);
        Ok(())
    }

    /// Removes `key`, returning its entry (expired or not).
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let hash = hash_key(key);
        let slot = self.map.find_entry(hash, |s| s.key[..] == *key).ok()?;
        let (slot, _) = slot.remove();
        let entry = slot.entry;
        if entry.expire_at().is_some() {
            self.volatile.remove(hash, key);
        }
        self.modified(key);
        Some(entry)
    }

    /// Sets or clears the deadline of an existing key. Returns false if the
    /// key does not exist. Clearing a deadline the key does not have is no
    /// change (for WATCH).
    pub(crate) fn set_expire(&mut self, key: &[u8], at: Option<i64>) -> bool {
        let hash = hash_key(key);
        let Some(Slot { key: k, entry, .. }) = self
            .map
            .find_mut(hash, |s| s.key[..] == *key)
            .map(|s| &mut **s)
        else {
            return false;
        };
        let changed = match (entry.expire_at(), at) {
            (None, Some(_)) => {
                self.volatile.insert(hash, k);
                true
            }
            (Some(_), None) => {
                self.volatile.remove(hash, key);
                true
            }
            (None, None) => false,
            (Some(_), Some(_)) => true,
        };
        entry.set_expire_at(at);
        if changed {
            self.modified(key);
        }
        true
    }

    /// Marks the clients watching `key` (their EXEC will fail): the
    /// command changed its value in place. Changes made through this
    /// type's own methods mark them already.
    #[inline]
    pub(crate) fn modified(&mut self, key: &[u8]) {
        crate::repl::prop::dirty();
        if !self.watched.is_empty() {
            touch(&mut self.watched, key, false);
        }
    }

    /// `key` now holds `entry`: if that is a list or a sorted set
    /// (`waitable`) and clients wait on the key, it is ready for them
    /// (each waiter is served only by the type it waits for). Nobody
    /// waiting costs one length check.
    #[inline]
    fn added(&mut self, key: &[u8], list: bool) {
        if list && !self.waiters.is_empty() {
            self.signal_ready(key);
        }
    }

    /// Notes `key` as ready if clients wait on it, once.
    #[cold]
    fn signal_ready(&mut self, key: &[u8]) {
        if self.waiters.contains_key(key) && !self.ready.iter().any(|(_, k)| k == key) {
            let seq = self.ready_seq.fetch_add(1, Ordering::Relaxed);
            self.ready.push((seq, Bytes::copy_from_slice(key)));
        }
    }

    /// The keys noted ready, with their order, emptying the notes.
    pub(crate) fn take_ready(&mut self) -> Vec<(u64, Bytes)> {
        std::mem::take(&mut self.ready)
    }

    /// An expired `key` was just deleted.
    #[inline]
    fn expired(&mut self, key: &[u8]) {
        if !self.watched.is_empty() {
            touch(&mut self.watched, key, true);
        }
    }

    /// Whether `key` is in the table, live or expired.
    fn present(&self, key: &[u8]) -> bool {
        self.map
            .find(hash_key(key), |s| s.key[..] == *key)
            .is_some()
    }

    /// Whether `key` is in the table and past its deadline (Redis's
    /// `keyIsExpired`): it does not delete it.
    fn is_stale(&self, key: &[u8], now: i64) -> bool {
        self.map
            .find(hash_key(key), |s| s.key[..] == *key)
            .is_some_and(|s| s.entry.is_expired(now))
    }

    /// Registers `flag` as watching `key` (the caller has checked that it
    /// does not yet).
    pub(crate) fn watch(&mut self, key: &[u8], flag: &Arc<WatchFlag>, now: i64) {
        let expired = self.is_stale(key, now);
        self.watched
            .entry(Bytes::copy_from_slice(key))
            .or_default()
            .push(Watcher {
                flag: flag.clone(),
                expired,
            });
    }

    /// Forgets that `flag` watches `key`.
    pub(crate) fn unwatch(&mut self, key: &[u8], flag: &Arc<WatchFlag>) {
        if let Some(watchers) = self.watched.get_mut(key) {
            watchers.retain(|w| !Arc::ptr_eq(&w.flag, flag));
            if watchers.is_empty() {
                self.watched.remove(key);
            }
        }
    }

    /// Whether `key`, watched through `flag` when it was live, has expired
    /// since, without being deleted yet: EXEC then fails, as in Redis's
    /// `isWatchedKeyExpired`.
    pub(crate) fn watched_key_expired(&self, key: &[u8], flag: &Arc<WatchFlag>, now: i64) -> bool {
        let stale_when_watched = self
            .watched
            .get(key)
            .and_then(|ws| ws.iter().find(|w| Arc::ptr_eq(&w.flag, flag)))
            .is_none_or(|w| w.expired);
        !stale_when_watched && self.is_stale(key, now)
    }

    /// Redis's `touchAllWatchedKeysInDb`: this database is about to be
    /// emptied (FLUSHDB, FLUSHALL) or to take the contents of `replaced_with`
    /// (SWAPDB). A watched key changes if it exists on either side; a key
    /// that was stale when watched, and is missing or stale afterwards, does
    /// not.
    fn touch_all(&mut self, replaced_with: Option<&Db>, now: i64) {
        if self.watched.is_empty() {
            return;
        }
        for (key, watchers) in self.watched.iter_mut() {
            let hash = hash_key(key);
            let exists = self.map.find(hash, |s| s.key[..] == key[..]).is_some();
            let after = replaced_with.map(|r| (r.present(key), r.is_stale(key, now)));
            let (exists_after, stale_after) = after.unwrap_or((false, false));
            if !exists && !exists_after {
                continue;
            }
            for w in watchers.iter_mut() {
                if w.expired {
                    if !exists_after {
                        w.expired = false;
                        continue;
                    } else if stale_after {
                        continue;
                    }
                } else if !exists && stale_after {
                    // A missing key replaced with a stale one.
                    w.expired = true;
                    continue;
                }
                w.flag.set();
            }
        }
    }

    /// Number of keys, counting ones expired but not yet reclaimed (as
    /// Redis's DBSIZE does).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Number of keys with a deadline.
    pub(crate) fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// Every live key, with its entry.
    pub(crate) fn iter(&self, now: i64) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.map
            .iter()
            .filter(move |s| !s.entry.is_expired(now))
            .map(|s| (&s.key[..], &s.entry))
    }

    /// Deletes every key (FLUSHDB, FLUSHALL).
    pub(crate) fn clear(&mut self) {
        self.touch_all(None, 0);
        self.map = HashTable::new();
        self.volatile = Volatile::default();
    }

    /// Exchanges contents (keys and deadlines, not blocked or watching
    /// clients) with `other`, for SWAPDB.
    pub(crate) fn swap_contents(&mut self, other: &mut Db, now: i64) {
        self.touch_all(Some(other), now);
        other.touch_all(Some(self), now);
        std::mem::swap(&mut self.map, &mut other.map);
        std::mem::swap(&mut self.volatile, &mut other.volatile);
        // Clients blocked in either database may now find their lists.
        self.signal_waited_lists();
        other.signal_waited_lists();
    }

    /// Notes every waited key that holds a list or a sorted set as ready.
    fn signal_waited_lists(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        let lists: Vec<Bytes> = self
            .waiters
            .keys()
            .filter(|k| {
                self.map
                    .find(hash_key(k), |s| s.key[..] == k[..])
                    .is_some_and(|s| waitable(&s.entry.value))
            })
            .cloned()
            .collect();
        for key in lists {
            self.signal_ready(&key);
        }
    }

    /// A key picked at random among the live ones, or `None` if none is.
    pub(crate) fn random_key(&mut self, now: i64, rng: &mut Rng) -> Option<Bytes> {
        // Expired keys met on the way are deleted, as Redis's RANDOMKEY does.
        for _ in 0..self.map.len().min(100) {
            let key = self.random_slot(rng)?;
            let key = Bytes::copy_from_slice(key);
            if self.get(&key, now).is_some() {
                return Some(key);
            }
        }
        None
    }

    /// The key of a slot picked at random: random buckets until one is
    /// full (a table is at least about 40% full unless it shrank by
    /// deletes), then, rarely, a walk to a random position.
    fn random_slot(&self, rng: &mut Rng) -> Option<&[u8]> {
        let buckets = self.map.num_buckets();
        for _ in 0..32 {
            if let Some(slot) = self.map.get_bucket(rng.below(buckets)?) {
                return Some(&slot.key);
            }
        }
        let n = rng.below(self.map.len())?;
        self.map.iter().nth(n).map(|s| &s.key[..])
    }

    /// The keys past their deadline, still in the table.
    pub(crate) fn expired_keys(&self, now: i64) -> Vec<Key> {
        self.volatile
            .keys()
            .iter()
            .filter(|k| self.is_stale(k, now))
            .cloned()
            .collect()
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
        let n = samples.min(self.volatile.len());
        for _ in 0..n {
            let Some(i) = rng.below(self.volatile.len()) else {
                break;
            };
            let key = self.volatile.keys()[i].clone();
            if self.get(&key, now).is_none() {
                expired += 1;
            }
        }
        (n, expired)
    }
}

/// One shard: its part of every database.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) dbs: Vec<Db>,
    /// The snapshot this shard was last copied for (see
    /// [`Keyspace::begin_snapshot`]), and the copy, until the snapshot
    /// collects it.
    snap_done: u64,
    snap_copy: Option<Vec<Vec<(Bytes, Entry)>>>,
    /// Blocked clients registered on keys of this shard (once per key they
    /// wait on), changed under its lock: a write that locks the shard and
    /// finds clients here holds its shards until it has served the keys
    /// it made ready ([`Shards::begin_write`]).
    pub(crate) waiting: usize,
}

/// What [`Shard::snapshot_view`] gives.
#[derive(Debug)]
pub(crate) enum ShardView<'s> {
    /// A copy made before a command changed the shard, per database.
    Copied(Vec<Vec<(Bytes, Entry)>>),
    /// The shard as it is, unchanged since the snapshot's instant.
    Live(&'s [Db]),
}

impl Shard {
    /// Copies this shard's live keys for snapshot `epoch` (taken at `now`),
    /// once.
    fn copy_for_snapshot(&mut self, epoch: u64, now: i64) {
        if self.snap_done == epoch {
            return;
        }
        self.snap_done = epoch;
        // Where expired keys are hidden rather than deleted (a replica, a
        // master feeding replicas) they are kept: a replica's clock runs
        // ahead of its master's stream, which may still make them live.
        let copy = self
            .dbs
            .iter()
            .map(|db| {
                let now = if db.hide_expired { i64::MIN } else { now };
                db.iter(now)
                    .map(|(k, e)| (Bytes::copy_from_slice(k), e.clone()))
                    .collect()
            })
            .collect();
        self.snap_copy = Some(copy);
    }

    /// This shard as snapshot `epoch` must see it: the copy a command made
    /// when it touched the shard first, or, if none did, the shard itself,
    /// which is then marked done (the caller reads it under this lock, so
    /// no later command needs to copy it).
    pub(crate) fn snapshot_view(&mut self, epoch: u64) -> ShardView<'_> {
        if self.snap_done == epoch {
            ShardView::Copied(self.snap_copy.take().unwrap_or_default())
        } else {
            self.snap_done = epoch;
            ShardView::Live(&self.dbs)
        }
    }

    /// This shard's part of snapshot `epoch`: the copy made when it was
    /// first locked after the snapshot began, or one made now.
    pub(crate) fn snapshot_part(&mut self, epoch: u64, now: i64) -> Vec<Vec<(Bytes, Entry)>> {
        self.copy_for_snapshot(epoch, now);
        self.snap_copy.take().unwrap_or_default()
    }
}

/// All databases, sharded. Its shards are locked only through [`Shards`].
#[derive(Debug)]
pub(crate) struct Keyspace {
    shards: Box<[Mutex<Shard>]>,
    databases: usize,
    /// Changes are recorded for replicas (see `crate::repl`). Set and
    /// cleared only while every shard is locked, so a command that reads
    /// it holding a shard's lock sees the truth for that shard.
    feeding: AtomicBool,
    /// The snapshot being taken (0 for none) and the time it stands at:
    /// see [`Keyspace::begin_snapshot`].
    snap_epoch: AtomicU64,
    snap_now: AtomicI64,
    /// One snapshot at a time.
    snap_lock: Mutex<()>,
    /// What every database reads to know whether a CLIENT PAUSE freezes
    /// expiry (see [`crate::pause`]).
    expiry_pause: Arc<AtomicI64>,
    /// Snapshots taken so far, for their epochs.
    snap_count: AtomicU64,
}

impl Keyspace {
    pub(crate) fn new(databases: usize) -> Self {
        // Keys are hashed under a seed nobody can guess, so that nobody can
        // prepare keys that collide (Redis seeds its SipHash the same way).
        static SEEDED: std::sync::Once = std::sync::Once::new();
        SEEDED.call_once(|| {
            store::keyspace::seed_hash(
                crate::server::now_ms() as u64
                    ^ u64::from(std::process::id()).rotate_left(40)
                    ^ (&SEEDED as *const _ as u64).rotate_left(20),
            );
        });
        let expiry_pause = Arc::new(AtomicI64::new(i64::MIN));
        let ready_seq = Arc::new(AtomicU64::new(0));
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    dbs: (0..databases)
                        .map(|index| Db {
                            index,
                            expiry_paused_until: expiry_pause.clone(),
                            ready_seq: ready_seq.clone(),
                            ..Db::default()
                        })
                        .collect(),
                    snap_done: 0,
                    snap_copy: None,
                    waiting: 0,
                })
            })
            .collect();
        Keyspace {
            shards,
            databases,
            expiry_pause,
            feeding: AtomicBool::new(false),
            snap_epoch: AtomicU64::new(0),
            snap_now: AtomicI64::new(0),
            snap_lock: Mutex::new(()),
            snap_count: AtomicU64::new(0),
        }
    }

    /// The end of the pause that freezes expiry, shared with every
    /// database: [`crate::pause::Pause`] sets it.
    pub(crate) fn expiry_pause(&self) -> Arc<AtomicI64> {
        self.expiry_pause.clone()
    }

    /// A snapshot without stopping the world, copy-on-first-lock: the
    /// caller holds every shard when it calls this, so the snapshot stands
    /// at that instant. From then on, whoever locks a shard first (a
    /// command about to change it, or the snapshot collecting it) copies it
    /// before anything else happens to it; the snapshot then collects the
    /// copies one shard at a time ([`Shard::snapshot_part`]). Each shard is
    /// copied once, by whoever gets there first, and no command waits for
    /// more than its own shards' copies. Returns the snapshot's epoch;
    /// [`Keyspace::end_snapshot`] ends it. The caller holds
    /// [`Keyspace::snapshot_guard`].
    pub(crate) fn begin_snapshot(&self, now: i64, epoch: u64) {
        self.snap_now.store(now, Ordering::Release);
        self.snap_epoch.store(epoch, Ordering::Release);
    }

    pub(crate) fn end_snapshot(&self) {
        self.snap_epoch.store(0, Ordering::Release);
    }

    /// A new snapshot's epoch, never used before (nor 0).
    pub(crate) fn next_snapshot_epoch(&self) -> u64 {
        self.snap_count.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Runs `f` on shard `i` as snapshot `epoch` must see it, under the
    /// shard's lock but without copying it first: the snapshot's own visit
    /// reads the shard in place.
    pub(crate) fn visit_for_snapshot<R>(
        &self,
        i: usize,
        epoch: u64,
        f: impl FnOnce(ShardView<'_>) -> R,
    ) -> R {
        let mut guard = self.shards[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(guard.snapshot_view(epoch))
    }

    /// Serializes snapshots.
    pub(crate) fn snapshot_guard(&self) -> MutexGuard<'_, ()> {
        self.snap_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Copies a shard just locked for the running snapshot, if any and if
    /// not done yet.
    #[inline]
    fn on_lock(&self, guard: &mut MutexGuard<'_, Shard>) {
        let epoch = self.snap_epoch.load(Ordering::Acquire);
        if epoch != 0 && guard.snap_done != epoch {
            guard.copy_for_snapshot(epoch, self.snap_now.load(Ordering::Acquire));
        }
    }

    /// Whether writes are recorded for replicas.
    pub(crate) fn feeding(&self) -> bool {
        self.feeding.load(Ordering::Acquire)
    }

    /// Starts or stops recording writes for replicas. The caller holds
    /// every shard.
    pub(crate) fn set_feeding(&self, on: bool) {
        self.feeding.store(on, Ordering::Release);
    }

    /// The shard `key` lives in.
    pub(crate) fn shard_of(key: &[u8]) -> usize {
        Self::shard_of_hash(hash_key(key))
    }

    /// The shard of a key whose [`hash_key`] is `hash`.
    pub(crate) fn shard_of_hash(hash: u64) -> usize {
        (hash >> 32) as usize & (SHARDS - 1)
    }

    /// Locks one shard. A poisoned lock (a command panicked while holding
    /// it) is taken anyway: a shard's maps are valid after any panic.
    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        let mut guard = self.shards[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.on_lock(&mut guard);
        guard
    }

    /// Locks one shard if that needs no waiting.
    fn try_lock(&self, shard: usize) -> Option<MutexGuard<'_, Shard>> {
        let mut guard = match self.shards[shard].try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        self.on_lock(&mut guard);
        Some(guard)
    }

    /// Locks the shards of `keys`, in ascending order, each once.
    fn lock_keys<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> Locked<'_> {
        self.lock_shards(keys.into_iter().map(Self::shard_of))
    }

    /// Locks shards by number, in ascending order, each once.
    fn lock_shards(&self, shards: impl IntoIterator<Item = usize>) -> Locked<'_> {
        let mut ids: Ids = shards.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        self.lock_ids(ids)
    }

    /// Locks every shard, in order.
    fn lock_all(&self) -> Locked<'_> {
        self.lock_ids((0..SHARDS).collect())
    }

    /// Locks `ids`, which must be ascending and distinct.
    fn lock_ids(&self, ids: Ids) -> Locked<'_> {
        let guards = ids.iter().map(|&i| self.lock(i)).collect();
        Locked {
            ks: self,
            ids,
            guards,
        }
    }
}

/// Locked shard numbers: most commands lock one or two, without allocating.
type Ids = SmallVec<[usize; 2]>;

/// How code reaches the keyspace's shards: a command through its context
/// (`ctx.shards`), background work through a `Shards` of its own.
///
/// Outside a transaction each call locks what it names, exactly as a direct
/// lock would. Inside EXEC the transaction has locked, in ascending order,
/// every shard its commands name ([`Shards::hold_keys`], or all of them), and
/// each call hands out a view of those locks instead: the commands of a
/// transaction run with no other client's command in between, and never
/// wait for a lock they hold.
#[derive(Debug)]
pub(crate) struct Shards<'a> {
    ks: &'a Keyspace,
    held: Option<Locked<'a>>,
    /// A write command that started while nothing was recorded for
    /// replicas: should a lock it takes show that recording has begun since,
    /// it holds all its keys instead and records (see [`Shards::upgrade`]).
    write: Option<Write<'a>>,
}

/// A write command, as [`Shards`] needs it to find its keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Write<'a> {
    pub(crate) cmd: &'static crate::cmd::Command,
    pub(crate) req: &'a resp::Request,
    /// Recorded for replicas when they are fed (not the master's stream
    /// on a replica, which reaches sub-replicas as it came).
    pub(crate) record: bool,
}

impl<'a> Shards<'a> {
    /// Direct access: each call takes its own locks. A command must use the
    /// `Shards` of its context instead, which knows about transactions.
    pub(crate) fn new(ks: &'a Keyspace) -> Self {
        Shards {
            ks,
            held: None,
            write: None,
        }
    }

    /// For a write command outside EXEC: holds its keys' shards until
    /// [`Shards::release`] while replicas are fed (recording it, if
    /// `write.record`) or when a shard it locks has blocked clients, so
    /// that what it did reaches the stream and the clients it made ready
    /// are served before anyone else sees its keys. Otherwise it notes the
    /// command, and switches to holding should a lock it takes show
    /// either.
    pub(crate) fn begin_write(&mut self, write: Write<'a>) {
        self.write = Some(write);
        if self.ks.feeding() {
            self.upgrade();
        }
    }

    /// Whether a lock just taken, outside EXEC, shows that the running
    /// write must hold its shards while it does not yet (`waited`: the
    /// shards just locked have blocked clients); if so the caller drops the
    /// lock, and the command then holds its keys.
    #[inline]
    fn must_upgrade(&self, waited: bool) -> bool {
        self.write.is_some() && (waited || self.ks.feeding())
    }

    /// Holds the write command's keys (or every shard for a command on whole
    /// databases) and, if replicas are fed, starts recording.
    fn upgrade(&mut self) {
        let Some(w) = self.write.take() else {
            return;
        };
        if w.cmd.flags & crate::cmd::flags::KEYSPACE != 0 {
            self.hold_all();
        } else {
            let mut keys = Vec::new();
            crate::cmd::command_keys(w.cmd, w.req, &mut keys);
            self.hold_keys(keys);
        }
        if w.record && self.ks.feeding() {
            crate::repl::prop::start();
        }
    }

    pub(crate) fn databases(&self) -> usize {
        self.ks.databases
    }

    /// The keyspace itself.
    pub(crate) fn keyspace(&self) -> &'a Keyspace {
        self.ks
    }

    /// The shard `key` lives in, locked.
    pub(crate) fn lock_key(&mut self, key: &[u8]) -> ShardRef<'_> {
        if self.held.is_none() {
            let guard = self.ks.lock(Keyspace::shard_of(key));
            if !self.must_upgrade(guard.waiting > 0) {
                return ShardRef::Own(guard);
            }
            drop(guard);
            self.upgrade();
        }
        match &mut self.held {
            None => ShardRef::Own(self.ks.lock(Keyspace::shard_of(key))),
            Some(held) => ShardRef::Held(held.shard_mut(Keyspace::shard_of(key))),
        }
    }

    /// One shard by number, locked (SCAN walks them in turn).
    pub(crate) fn lock_shard(&mut self, shard: usize) -> ShardRef<'_> {
        if self.held.is_none() {
            let guard = self.ks.lock(shard);
            if !self.must_upgrade(guard.waiting > 0) {
                return ShardRef::Own(guard);
            }
            drop(guard);
            self.upgrade();
        }
        match &mut self.held {
            None => ShardRef::Own(self.ks.lock(shard)),
            Some(held) => ShardRef::Held(held.shard_mut(shard)),
        }
    }

    /// The shards of `keys`, locked in ascending order, each once.
    pub(crate) fn lock_keys<'k>(
        &mut self,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> LockedRef<'_, 'a> {
        self.lock_shards(keys.into_iter().map(Keyspace::shard_of))
    }

    /// The shards of keys whose [`hash_key`]s are `hashes` (a command that
    /// hashed its keys once, to look them up with [`Locked::db_of_hash`]
    /// and [`Db::get_hashed`]), locked as [`Shards::lock_keys`] locks.
    pub(crate) fn lock_hashes(
        &mut self,
        hashes: impl IntoIterator<Item = u64>,
    ) -> LockedRef<'_, 'a> {
        self.lock_shards(hashes.into_iter().map(Keyspace::shard_of_hash))
    }

    fn lock_shards(&mut self, shards: impl IntoIterator<Item = usize>) -> LockedRef<'_, 'a> {
        if self.held.is_none() {
            let locked = self.ks.lock_shards(shards);
            if !self.must_upgrade(locked.waited()) {
                return LockedRef::Own(locked);
            }
            drop(locked);
            self.upgrade();
            // The keys named are the command's own, now all held.
            return match &mut self.held {
                Some(held) => LockedRef::Held(held),
                None => LockedRef::Own(self.ks.lock_all()),
            };
        }
        let Some(held) = &mut self.held else {
            return LockedRef::Own(self.ks.lock_all());
        };
        for shard in shards {
            held.position(shard);
        }
        LockedRef::Held(held)
    }

    /// Every shard, locked in order.
    pub(crate) fn lock_all(&mut self) -> LockedRef<'_, 'a> {
        if self.held.is_none() {
            let locked = self.ks.lock_all();
            if !self.must_upgrade(locked.waited()) {
                return LockedRef::Own(locked);
            }
            drop(locked);
            self.upgrade();
        }
        match &mut self.held {
            None => LockedRef::Own(self.ks.lock_all()),
            Some(held) => {
                for shard in 0..SHARDS {
                    held.position(shard);
                }
                LockedRef::Held(held)
            }
        }
    }

    /// Runs `f` on each shard in turn, each under its own lock: for
    /// whole-keyspace reads that need no atomicity across shards.
    pub(crate) fn for_each_shard(&mut self, mut f: impl FnMut(&mut Shard)) {
        for shard in 0..SHARDS {
            f(&mut self.lock_shard(shard));
        }
    }

    /// EXEC: locks the shards of `keys`, in ascending order, and holds them
    /// until [`Shards::release`]; the keys made ready for blocked clients
    /// meanwhile are served from what the transaction left
    /// ([`Locked::take_ready`]).
    pub(crate) fn hold_keys<'k>(&mut self, keys: impl IntoIterator<Item = &'k [u8]>) {
        debug_assert!(self.held.is_none(), "transactions do not nest");
        self.held = Some(self.ks.lock_keys(keys));
    }

    /// EXEC of a command on the whole keyspace: holds every shard.
    pub(crate) fn hold_all(&mut self) {
        debug_assert!(self.held.is_none(), "transactions do not nest");
        self.held = Some(self.ks.lock_all());
    }

    /// The locks held by EXEC, if any.
    pub(crate) fn held(&mut self) -> Option<&mut Locked<'a>> {
        self.held.as_mut()
    }

    /// Ends EXEC's hold, handing back its locks (dropping them unlocks).
    pub(crate) fn release(&mut self) -> Option<Locked<'a>> {
        self.held.take()
    }
}

/// A locked shard: locked for this call, or one of a transaction's.
#[derive(Debug)]
pub(crate) enum ShardRef<'s> {
    Own(MutexGuard<'s, Shard>),
    Held(&'s mut Shard),
}

impl std::ops::Deref for ShardRef<'_> {
    type Target = Shard;

    fn deref(&self) -> &Shard {
        match self {
            ShardRef::Own(guard) => guard,
            ShardRef::Held(shard) => shard,
        }
    }
}

impl std::ops::DerefMut for ShardRef<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        match self {
            ShardRef::Own(guard) => guard,
            ShardRef::Held(shard) => shard,
        }
    }
}

/// A set of locked shards: locked for this call, or a transaction's.
#[derive(Debug)]
pub(crate) enum LockedRef<'s, 'a> {
    Own(Locked<'a>),
    Held(&'s mut Locked<'a>),
}

impl<'a> std::ops::Deref for LockedRef<'_, 'a> {
    type Target = Locked<'a>;

    fn deref(&self) -> &Locked<'a> {
        match self {
            LockedRef::Own(locked) => locked,
            LockedRef::Held(locked) => locked,
        }
    }
}

impl<'a> std::ops::DerefMut for LockedRef<'_, 'a> {
    fn deref_mut(&mut self) -> &mut Locked<'a> {
        match self {
            LockedRef::Own(locked) => locked,
            LockedRef::Held(locked) => locked,
        }
    }
}

/// A set of locked shards.
#[derive(Debug)]
pub(crate) struct Locked<'a> {
    ks: &'a Keyspace,
    ids: Ids,
    guards: SmallVec<[MutexGuard<'a, Shard>; 2]>,
}

impl<'a> Locked<'a> {
    /// The database `db` of the shard holding `key`, which must be one of
    /// the locked keys.
    pub(crate) fn db(&mut self, db: usize, key: &[u8]) -> &mut Db {
        let i = self.position(Keyspace::shard_of(key));
        &mut self.guards[i].dbs[db]
    }

    /// [`Locked::db`] for a key whose [`hash_key`] is `hash`.
    pub(crate) fn db_of_hash(&mut self, db: usize, hash: u64) -> &mut Db {
        let i = self.position(Keyspace::shard_of_hash(hash));
        &mut self.guards[i].dbs[db]
    }

    /// A locked shard by number.
    fn shard_mut(&mut self, shard: usize) -> &mut Shard {
        let i = self.position(shard);
        &mut self.guards[i]
    }

    /// Where `shard` is among the locked ones. Every caller names shards it
    /// locked (a transaction locks what its commands name, see
    /// `cmd::command_keys`); should one not, it is added if that needs no
    /// waiting, and otherwise waited for, out of order: a bug, caught in
    /// debug builds.
    fn position(&mut self, shard: usize) -> usize {
        match self.ids.binary_search(&shard) {
            Ok(i) => i,
            Err(at) => {
                debug_assert!(false, "shard {shard} is used but was not locked");
                let ks = self.ks;
                let guard = ks.try_lock(shard).unwrap_or_else(|| ks.lock(shard));
                self.ids.insert(at, shard);
                self.guards.insert(at, guard);
                at
            }
        }
    }

    /// Every locked shard.
    pub(crate) fn shards(&mut self) -> impl Iterator<Item = &mut Shard> {
        self.guards.iter_mut().map(|g| &mut **g)
    }

    /// Whether clients are blocked on keys of a locked shard.
    fn waited(&self) -> bool {
        self.guards.iter().any(|g| g.waiting > 0)
    }

    /// The locked shard of `key`.
    pub(crate) fn shard_of_key(&mut self, key: &[u8]) -> &mut Shard {
        self.shard_mut(Keyspace::shard_of(key))
    }

    /// Whether the shard of `key` is locked.
    pub(crate) fn holds(&self, key: &[u8]) -> bool {
        self.ids.binary_search(&Keyspace::shard_of(key)).is_ok()
    }

    /// Adds the shard of `key` if it can be locked without waiting: taking
    /// a lock out of order is safe only as a try, never as a wait.
    pub(crate) fn try_add(&mut self, key: &[u8]) -> bool {
        let shard = Keyspace::shard_of(key);
        let Err(at) = self.ids.binary_search(&shard) else {
            return true;
        };
        match self.ks.try_lock(shard) {
            Some(guard) => {
                self.ids.insert(at, shard);
                self.guards.insert(at, guard);
                true
            }
            None => false,
        }
    }

    /// The keys of the locked shards that became lists while clients
    /// waited on them, in the order they did (database, key), emptying
    /// the notes: the command or transaction that holds these locks serves
    /// them before it releases them, as Redis serves its ready keys after
    /// each command. Nobody blocked costs one length check per database.
    pub(crate) fn take_ready(&mut self) -> Vec<(usize, Bytes)> {
        let mut ready: Vec<(u64, usize, Bytes)> = Vec::new();
        for shard in &mut self.guards {
            for (i, db) in shard.dbs.iter_mut().enumerate() {
                if !db.ready.is_empty() {
                    ready.extend(db.take_ready().into_iter().map(|(seq, k)| (seq, i, k)));
                }
            }
        }
        ready.sort_unstable_by_key(|(seq, _, _)| *seq);
        ready.into_iter().map(|(_, db, key)| (db, key)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &'static str, expire_at: Option<i64>) -> Entry {
        Entry::with(
            Value::Str(store::value::Str::from_slice(
                v.as_bytes(),
                store::value::Form::Auto,
            )),
            expire_at,
        )
    }

    fn snapshot_values(ks: &Keyspace, epoch: u64) -> Vec<(Bytes, Bytes)> {
        let mut out = Vec::new();
        for i in 0..SHARDS {
            for db in ks.lock(i).snapshot_part(epoch, 0) {
                for (k, e) in db {
                    let Value::Str(s) = e.value else {
                        panic!("a string")
                    };
                    out.push((k, s.to_bytes()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_snapshot_sees_the_keyspace_as_it_was_when_it_began() {
        let ks = Keyspace::new(1);
        let mut shards = Shards::new(&ks);
        let key = |k: &'static str| Bytes::from_static(k.as_bytes());
        shards.lock_key(b"a").dbs[0].insert(key("a"), entry("old", None));
        shards.lock_key(b"b").dbs[0].insert(key("b"), entry("kept", None));
        let _one = ks.snapshot_guard();
        let epoch = ks.next_snapshot_epoch();
        {
            let _all = shards.lock_all();
            ks.begin_snapshot(0, epoch);
        }
        // Changes after the instant: the shard is copied before they land.
        shards.lock_key(b"a").dbs[0].insert(key("a"), entry("new", None));
        shards.lock_key(b"c").dbs[0].insert(key("c"), entry("later", None));
        shards.lock_key(b"b").dbs[0].remove(b"b");
        let seen = snapshot_values(&ks, epoch);
        ks.end_snapshot();
        assert_eq!(seen, [(key("a"), key("old")), (key("b"), key("kept"))]);
        // The keyspace itself has the changes, and the next snapshot too.
        assert!(shards.lock_key(b"c").dbs[0].contains(b"c", 0));
        let next = ks.next_snapshot_epoch();
        {
            let _all = shards.lock_all();
            ks.begin_snapshot(0, next);
        }
        let seen = snapshot_values(&ks, next);
        ks.end_snapshot();
        assert_eq!(seen, [(key("a"), key("new")), (key("c"), key("later"))]);
    }

    #[test]
    fn accesses_but_not_peeks_reset_the_idle_time() {
        let mut db = Db::default();
        LRU_CLOCK.store(1_000, Ordering::Relaxed);
        db.insert(Bytes::from_static(b"k"), entry("v", None));
        LRU_CLOCK.store(1_007, Ordering::Relaxed);
        assert!(db.peek(b"k", 0).is_some());
        assert_eq!(db.idle_secs(b"k"), Some(7));
        assert!(db.get(b"k", 0).is_some());
        assert_eq!(db.idle_secs(b"k"), Some(0));
        assert_eq!(db.idle_secs(b"missing"), None);
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

    /// A key that becomes a list while clients wait on it is noted once,
    /// in order, wherever it comes from; nothing is noted with nobody
    /// waiting, or for another type.
    #[test]
    fn keys_made_lists_for_waiting_clients_are_noted_in_order() {
        let ks = Keyspace::new(2);
        let mut shards = Shards::new(&ks);
        let list = || Entry::new(Value::List(Box::default()));
        let keys = [&b"k"[..], b"j"];
        let mut locked = shards.lock_keys(keys);
        locked.db(0, b"k").insert(Bytes::from_static(b"k"), list());
        assert!(locked.take_ready().is_empty(), "nobody waits");
        locked.db(0, b"k").remove(b"k");
        let (waiter, _rx) = Waiter::new(
            0,
            vec![Bytes::from_static(b"j"), Bytes::from_static(b"k")],
            crate::blocking::BlockOp::Pop {
                left: true,
                count: None,
            },
            resp::Protocol::Resp2,
        );
        crate::blocking::register(&mut locked, &waiter);
        assert!(locked.waited(), "a blocked client makes writes hold");
        locked
            .db(0, b"j")
            .insert(Bytes::from_static(b"j"), entry("a string", None));
        locked.db(0, b"k").put(b"k", list());
        locked.db(0, b"k").put(b"k", list());
        locked.db(0, b"j").put(b"j", list());
        assert_eq!(
            locked.take_ready(),
            [(0, Bytes::from_static(b"k")), (0, Bytes::from_static(b"j"))]
        );
        assert!(locked.take_ready().is_empty(), "taken once");
        // SWAPDB brings a list to a waited key.
        locked.db(0, b"k").remove(b"k");
        locked.db(1, b"k").put(b"k", list());
        for shard in locked.shards() {
            let (left, right) = shard.dbs.split_at_mut(1);
            left[0].swap_contents(&mut right[0], 0);
        }
        assert!(locked.take_ready().contains(&(0, Bytes::from_static(b"k"))));
        drop(locked);
        crate::blocking::unregister(&ks, &waiter);
        crate::blocking::unregister(&ks, &waiter);
        let mut shards = Shards::new(&ks);
        assert!(
            !shards.lock_keys(keys).waited(),
            "counted once, uncounted once"
        );
    }

    #[test]
    fn a_transaction_lends_its_locks_instead_of_locking_again() {
        let ks = Keyspace::new(1);
        let mut shards = Shards::new(&ks);
        shards.hold_keys([&b"a"[..], b"b"]);
        // A second lock of a held std mutex would deadlock here.
        shards.lock_key(b"a").dbs[0].insert(Bytes::from_static(b"a"), entry("1", None));
        let mut locked = shards.lock_keys([&b"b"[..], b"a"]);
        locked
            .db(0, b"b")
            .insert(Bytes::from_static(b"b"), entry("2", None));
        assert!(locked.db(0, b"a").contains(b"a", 0));
        drop(locked);
        let released = shards.release().expect("held");
        drop(released);
        // Released: other code locks the shards again.
        assert!(Shards::new(&ks).lock_key(b"b").dbs[0].contains(b"b", 0));
    }

    fn watched(db: &mut Db, key: &'static [u8], now: i64) -> Arc<WatchFlag> {
        let flag = Arc::new(WatchFlag::default());
        db.watch(key, &flag, now);
        flag
    }

    #[test]
    fn watch_sees_changes_of_its_key_only() {
        let mut db = Db::default();
        db.insert(Bytes::from_static(b"k"), entry("v", None));
        let flag = watched(&mut db, b"k", 0);
        db.insert(Bytes::from_static(b"other"), entry("v", None));
        db.remove(b"other");
        db.modified(b"other");
        assert!(!flag.is_set());
        // Reads and no-op writes are no change.
        assert!(db.get(b"k", 0).is_some());
        db.update(b"k", 0, |_| (None, ()));
        db.set_expire(b"k", None);
        assert!(!flag.is_set());
        db.set_expire(b"k", Some(100));
        assert!(flag.is_set());
        for change in [
            |db: &mut Db| db.insert(Bytes::from_static(b"k"), entry("v", None)),
            |db: &mut Db| drop(db.remove(b"k")),
            |db: &mut Db| db.modified(b"k"),
            |db: &mut Db| db.update(b"k", 0, |_| (Some(entry("w", None)), ())),
            |db: &mut Db| {
                db.get(b"k", 1_000);
            },
            |db: &mut Db| db.clear(),
        ] {
            let mut db = Db::default();
            db.insert(Bytes::from_static(b"k"), entry("v", Some(500)));
            let flag = watched(&mut db, b"k", 0);
            change(&mut db);
            assert!(flag.is_set());
            db.unwatch(b"k", &flag);
            assert!(db.watched.is_empty());
        }
    }

    #[test]
    fn a_key_stale_when_watched_changes_only_if_it_comes_back() {
        // Expired (at 10) but not deleted when watched at 20.
        let mut db = Db::default();
        db.insert(Bytes::from_static(b"k"), entry("v", Some(10)));
        let flag = watched(&mut db, b"k", 20);
        assert!(!db.watched_key_expired(b"k", &flag, 20));
        // Its deletion is no change; a new value is.
        assert!(db.get(b"k", 20).is_none());
        assert!(!flag.is_set());
        db.insert(Bytes::from_static(b"k"), entry("v", None));
        assert!(flag.is_set());

        // Live when watched, expired by EXEC: EXEC fails.
        let mut db = Db::default();
        db.insert(Bytes::from_static(b"k"), entry("v", Some(10)));
        let flag = watched(&mut db, b"k", 5);
        assert!(db.watched_key_expired(b"k", &flag, 20));
        // Deleted by expiry meanwhile: a change.
        db.get(b"k", 20);
        assert!(flag.is_set());

        // FLUSHDB of a stale key is no change.
        let mut db = Db::default();
        db.insert(Bytes::from_static(b"k"), entry("v", Some(10)));
        let stale = watched(&mut db, b"k", 20);
        let missing = watched(&mut db, b"gone", 20);
        db.clear();
        assert!(!stale.is_set() && !missing.is_set());
    }

    #[test]
    fn swapdb_touches_keys_that_exist_on_either_side() {
        let now = 20;
        let case = |mine: Option<Option<i64>>, theirs: Option<Option<i64>>| {
            let mut a = Db::default();
            let mut b = Db::default();
            if let Some(at) = mine {
                a.insert(Bytes::from_static(b"x"), entry("a", at));
            }
            if let Some(at) = theirs {
                b.insert(Bytes::from_static(b"x"), entry("b", at));
            }
            let flag = watched(&mut a, b"x", now);
            a.swap_contents(&mut b, now);
            flag.is_set() || a.watched_key_expired(b"x", &flag, now)
        };
        let (live, stale) = (Some(None), Some(Some(10)));
        assert!(case(live, None));
        assert!(case(None, live));
        assert!(case(live, live));
        assert!(!case(None, None));
        // Redis 7.0's stale-key rules.
        assert!(!case(stale, None));
        assert!(!case(None, stale));
        assert!(!case(stale, stale));
        assert!(case(stale, live));
    }
}

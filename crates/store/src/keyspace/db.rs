use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

use bytes::Bytes;

use super::table::{Table, prefetch_line};
use super::{Effects, Entry, Key, Volatile, class, hash_key};
use crate::Rng;
use crate::value::Value;

/// A key and its entry, as the table holds them: 80 bytes, exactly
/// jemalloc's 80-byte class (a 24-byte [`Key`], 8 bytes of clock and
/// flags, a 48-byte [`Entry`]), 16 bytes per key less than the 96-byte
/// class a slot with a 32-byte key took. What a lookup reads and writes
/// (the key, the access clock, the deadline, the start of the value) is
/// kept within the first 64 bytes (`repr(C)`, the entry's deadline
/// first), so that it spans two lines wherever the slot starts, not
/// three.
#[derive(Debug)]
#[repr(C)]
pub(super) struct Slot {
    pub(super) key: Key,
    /// When the key was last accessed, on [`lru_clock`] (OBJECT IDLETIME).
    pub(super) lru: u32,
    /// Its access frequency under an LFU policy (Redis's logarithmic
    /// counter; see `evict.rs`), in what was padding after `lru`.
    pub(super) freq: u8,
    /// Its reads and queue under `allkeys-s3fifo` (see `s3fifo.rs`), in
    /// what was padding after `freq`.
    pub(super) s3: u8,
    /// Kept for the running snapshot, or added since its instant: the
    /// walker skips it (see `snapshot.rs`), in what was padding.
    pub(super) snap: bool,
    pub(super) entry: Entry,
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

/// The clock keys are stamped with (see [`tick_lru_clock`]).
#[inline]
pub fn lru_clock() -> u32 {
    LRU_CLOCK.load(Ordering::Relaxed)
}

/// Sets the clock keys' last accesses are stamped with to `now_ms` (Unix
/// ms); the server calls it ten times a second.
pub fn tick_lru_clock(now_ms: i64) {
    let secs = now_ms.max(0) / 1000;
    LRU_CLOCK.store(secs as u32, Ordering::Relaxed);
}

/// One database's keys within one shard. `W` is the server's blocked
/// client, which the keyspace only queues per key.
///
/// Laid out (`repr(C)`) so that what every lookup and change reads first,
/// the table's header and whether anyone watches or waits, comes first: a
/// shard's database 0 sits in the same cache line as the shard's lock (see
/// `Shard`), so a command on a keyspace of millions of keys misses the
/// cache on its key, not on the way to it.
///
/// 96 bytes: a server has 16 of them per shard, 16,384 in all, most of
/// them empty for good, so whatever is rarely used (blocked clients,
/// deadlines, S3-FIFO queues, snapshot saves) is one pointer, null until
/// needed. A shard's databases other than 0 then take 1,440 bytes, in
/// jemalloc's 1,536-byte class.
#[derive(Debug)]
#[repr(C)]
pub struct Db<W> {
    /// Keys and entries, found by [`hash_key`]: a table rather than a map so
    /// that a lookup hashes the key once and an expired entry is deleted
    /// through the slot that found it. The table holds pointers, as Redis's
    /// dict does: a table is between 44% and 87% full, and empty slots of
    /// 8 bytes waste less than empty slots of a whole entry.
    pub(super) map: Table<Box<Slot>>,
    /// Clients watching keys of this shard. Like the waiters, they stay
    /// with the database index.
    watched: Watched,
    /// Clients blocked on keys of this shard, oldest first, and the keys
    /// made ready for them. They belong to the database index, not its
    /// contents: SWAPDB leaves them in place.
    pub waiters: Waiters<W>,
    /// The keys that have a deadline, for sampling; see [`Volatile`].
    pub(super) volatile: Volatile,
    /// This database's number (SWAPDB exchanges contents, not numbers).
    pub index: usize,
    /// Expired keys are hidden instead of deleted, unless the running
    /// command records what it changes for replicas (see
    /// [`Effects::recording`]). A replica sets it, as it leaves deletions to
    /// its master; a master feeding replicas sets it so that only commands
    /// whose deletions reach the stream, in order, delete.
    pub hide_expired: bool,
    /// The end (Unix ms) of the CLIENT PAUSE in force, `i64::MIN` for
    /// none, shared by every database: while a pause is on, expired keys
    /// are hidden, not deleted, so the keyspace and replication stream stay
    /// still (Redis's `expireIfNeeded` under a pause).
    pub(super) expiry_paused_until: Arc<AtomicI64>,
    /// The order of the ready notes (see [`Waiters`]) across databases
    /// and shards.
    pub(super) ready_seq: Arc<AtomicU64>,
    /// The S3-FIFO queues, while `allkeys-s3fifo` is in force and
    /// eviction has picked in this database (see `evict.rs`).
    pub(super) fifo: Option<Box<super::s3fifo::Fifo>>,
    /// What this database keeps for the running snapshot until its walker
    /// passes (see `snapshot.rs`); `None` while none runs.
    pub(super) snap: Option<Box<super::snapshot::KeySaves>>,
}

/// A client's WATCH state as the keyspace sees it: set when a key it
/// watches changes, read by its EXEC (Redis's `CLIENT_DIRTY_CAS`). It is
/// set under the lock of the changed key's shard, and EXEC reads it holding
/// the shards of every watched key.
#[derive(Debug, Default)]
pub struct WatchFlag(AtomicBool);

impl WatchFlag {
    /// Whether a watched key changed since the flag was cleared.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Forgets changes seen so far (EXEC, UNWATCH).
    pub fn clear(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// The clients blocked on a database's keys, oldest first per key: a null
/// pointer while nobody waits (nearly every database), a map once someone
/// does. It also holds the keys of its database that became lists (or
/// sorted sets) while clients waited on them (Redis's
/// `signalKeyAsReady`), each with its place in the order keys became
/// ready anywhere in the keyspace: noted where a key is added or
/// replaced, served by whoever holds the shard when the command ends
/// (`Locked::take_ready`).
#[derive(Debug)]
pub struct Waiters<W>(Option<Box<Blocked<W>>>);

#[derive(Debug)]
struct Blocked<W> {
    queues: HashMap<Bytes, VecDeque<W>>,
    ready: Vec<(u64, Bytes)>,
}

impl<W> Default for Waiters<W> {
    fn default() -> Self {
        Waiters(None)
    }
}

impl<W> Waiters<W> {
    /// Whether no client waits on any key.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|b| b.queues.is_empty())
    }

    /// Whether clients wait on `key`.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        Bytes: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.as_ref().is_some_and(|b| b.queues.contains_key(key))
    }

    /// The clients waiting on `key`.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut VecDeque<W>>
    where
        Bytes: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.as_mut()?.queues.get_mut(key)
    }

    /// The place of `key`'s queue, to add a client to.
    pub fn entry(
        &mut self,
        key: Bytes,
    ) -> std::collections::hash_map::Entry<'_, Bytes, VecDeque<W>> {
        let blocked = self.0.get_or_insert_with(|| {
            Box::new(Blocked {
                queues: HashMap::new(),
                ready: Vec::new(),
            })
        });
        blocked.queues.entry(key)
    }

    /// Forgets `key`'s queue, and everything once nothing is left.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<VecDeque<W>>
    where
        Bytes: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let queue = self.0.as_mut()?.queues.remove(key);
        self.shrink();
        queue
    }

    /// The keys clients wait on.
    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.0.iter().flat_map(|b| b.queues.keys())
    }

    /// Back to a null pointer if nobody waits and no note is left.
    fn shrink(&mut self) {
        if self
            .0
            .as_ref()
            .is_some_and(|b| b.queues.is_empty() && b.ready.is_empty())
        {
            self.0 = None;
        }
    }
}

/// Who watches which key of a database: nothing but a null pointer while
/// nobody does (every change checks), the registry once someone does.
/// (Boxed so that the empty case is one pointer, not a whole map, in the
/// line a lookup reads.)
#[derive(Debug, Default)]
#[allow(clippy::box_collection)]
struct Watched(Option<Box<HashMap<Bytes, Vec<Watcher>>>>);

impl Watched {
    #[inline]
    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn get(&self, key: &[u8]) -> Option<&Vec<Watcher>> {
        self.0.as_ref()?.get(key)
    }

    fn get_mut(&mut self, key: &[u8]) -> Option<&mut Vec<Watcher>> {
        self.0.as_mut()?.get_mut(key)
    }

    /// The watchers of `key`, registered or not.
    fn entry(&mut self, key: &[u8]) -> &mut Vec<Watcher> {
        self.0
            .get_or_insert_with(Box::default)
            .entry(Bytes::copy_from_slice(key))
            .or_default()
    }

    /// Forgets `key`, and the registry once it is empty.
    fn remove(&mut self, key: &[u8]) {
        if let Some(map) = &mut self.0 {
            map.remove(key);
            if map.is_empty() {
                self.0 = None;
            }
        }
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&Bytes, &mut Vec<Watcher>)> {
        self.0.iter_mut().flat_map(|m| m.iter_mut())
    }
}

/// Redis's `touchWatchedKey`: marks the clients watching `key`. `expiry`
/// says the key was deleted because it had expired: for a client that
/// watched it already expired, that is no change.
#[cold]
fn touch(watched: &mut Watched, key: &[u8], expiry: bool) {
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

impl<W> Db<W> {
    /// An empty database number `index`, reading the end of the pause
    /// that freezes expiry from `expiry_paused_until` and numbering the
    /// keys it notes ready from `ready_seq` (both shared by every database
    /// of the keyspace).
    pub fn new(
        index: usize,
        expiry_paused_until: Arc<AtomicI64>,
        ready_seq: Arc<AtomicU64>,
    ) -> Self {
        Db {
            map: Table::new(),
            volatile: Volatile::default(),
            waiters: Waiters::default(),
            watched: Watched::default(),
            index,
            hide_expired: false,
            expiry_paused_until,
            ready_seq,
            fifo: None,
            snap: None,
        }
    }

    /// This database with the effects of the command that holds it: what
    /// every lookup and change goes through.
    #[inline]
    pub fn with<'s>(&'s mut self, fx: &'s mut Effects) -> DbMut<'s, W> {
        DbMut { db: self, fx }
    }

    /// Asks the CPU to bring in the table's line where the key hashed
    /// `hash` is looked for first; see [`Keyspace::prefetch`].
    ///
    /// [`Keyspace::prefetch`]: super::Keyspace::prefetch
    #[inline]
    pub(super) fn prefetch_group(&self, hash: u64) {
        self.map.prefetch(hash);
    }

    /// Asks the CPU to bring in the start of the slot that the key hashed
    /// `hash` most likely has (the first in its group with its tag: what
    /// a lookup reads, the key, the clock, the deadline and the value's
    /// start, spans two lines). Reads the group: call it after
    /// [`Db::prefetch_group`] has had time to bring it in.
    #[inline]
    pub(super) fn prefetch_slot(&self, hash: u64) {
        self.map.prefetch_value(hash, |slot| {
            let p = &**slot as *const Slot as *const u8;
            prefetch_line(p);
            prefetch_line(p.wrapping_add(63));
        });
    }

    /// Seconds since `key` was last accessed, if it exists.
    pub fn idle_secs(&self, key: &[u8]) -> Option<u64> {
        let slot = self.map.find(hash_key(key), |s| s.key[..] == *key)?;
        Some(u64::from(lru_clock().wrapping_sub(slot.lru)))
    }

    /// Makes `key` look idle for `secs` seconds (RESTORE's IDLETIME).
    pub fn set_idle(&mut self, key: &[u8], secs: i64) {
        if let Some(slot) = self.map.find_mut(hash_key(key), |s| s.key[..] == *key) {
            // The clock wraps; an idle time beyond half its range would
            // read as a recent access.
            let secs = secs.clamp(0, i64::from(u32::MAX / 2)) as u32;
            slot.lru = lru_clock().wrapping_sub(secs);
        }
    }

    /// Adds a key known to be absent.
    fn add_slot(&mut self, hash: u64, key: Key, entry: Entry) {
        let s3 = match super::evict::s3fifo_enabled() {
            true => self.s3fifo_admit(hash),
            false => 0,
        };
        let mut slot = Box::new(Slot {
            key,
            entry,
            lru: lru_clock(),
            freq: super::evict::LFU_INIT,
            s3,
            snap: false,
        });
        self.mark_new(&mut slot);
        self.before_moving_keys(1);
        self.map.insert_unique(hash, slot, |s| hash_key(&s.key));
    }

    /// Makes room for `n` more keys.
    pub fn reserve(&mut self, n: usize) {
        self.before_moving_keys(n);
        self.map.reserve(n, |s| hash_key(&s.key));
    }

    /// Stores a new key whose [`hash_key`] is `hash` (loading a file, which
    /// is no command's change); gives the key back if it is already there.
    pub fn insert_new(&mut self, hash: u64, key: Bytes, entry: Entry) -> Result<(), Bytes> {
        if self.map.find(hash, |s| s.key[..] == key[..]).is_some() {
            return Err(key);
        }
        if entry.expire_at().is_some() {
            self.volatile.insert(hash, &key);
        }
        self.touched(&key);
        self.added(&key, waitable(&entry.value));
        self.add_slot(hash, Key::from_slice(&key), entry);
        Ok(())
    }

    /// Marks the clients watching `key`: it changed.
    #[inline]
    fn touched(&mut self, key: &[u8]) {
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
        // Clients wait on the key: the notes exist.
        let Some(blocked) = self.waiters.0.as_deref_mut() else {
            return;
        };
        if blocked.queues.contains_key(key) && !blocked.ready.iter().any(|(_, k)| k == key) {
            let seq = self.ready_seq.fetch_add(1, Ordering::Relaxed);
            blocked.ready.push((seq, Bytes::copy_from_slice(key)));
        }
    }

    /// The keys noted ready, with their order, emptying the notes.
    pub fn take_ready(&mut self) -> Vec<(u64, Bytes)> {
        let Some(blocked) = self.waiters.0.as_deref_mut() else {
            return Vec::new();
        };
        let ready = std::mem::take(&mut blocked.ready);
        self.waiters.shrink();
        ready
    }

    /// Whether keys were noted ready since the last [`Db::take_ready`].
    pub fn has_ready(&self) -> bool {
        self.waiters.0.as_ref().is_some_and(|b| !b.ready.is_empty())
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
    pub fn watch(&mut self, key: &[u8], flag: &Arc<WatchFlag>, now: i64) {
        let expired = self.is_stale(key, now);
        self.watched.entry(key).push(Watcher {
            flag: flag.clone(),
            expired,
        });
    }

    /// Forgets that `flag` watches `key`.
    pub fn unwatch(&mut self, key: &[u8], flag: &Arc<WatchFlag>) {
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
    pub fn watched_key_expired(&self, key: &[u8], flag: &Arc<WatchFlag>, now: i64) -> bool {
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
    fn touch_all(&mut self, replaced_with: Option<&Self>, now: i64) {
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
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the database has no key, live or expired.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of keys with a deadline.
    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// Every live key, with its entry.
    pub fn iter(&self, now: i64) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.map
            .iter()
            .filter(move |s| !s.entry.is_expired(now))
            .map(|s| (&s.key[..], &s.entry))
    }

    /// [`Db::iter`] for a walk of every key (a snapshot's): the slots a
    /// few keys ahead are brought into the cache meanwhile.
    pub fn iter_prefetched(&self, now: i64) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.map
            .iter_prefetched(|s| &**s as *const Slot as *const u8)
            .filter(move |s| !s.entry.is_expired(now))
            .map(|s| (&s.key[..], &s.entry))
    }

    /// Whether the database holds nothing that would be lost if it were
    /// dropped and made again empty: no key (expired ones included), no
    /// client blocked or watching, nothing kept for a snapshot.
    pub fn is_blank(&self) -> bool {
        self.map.is_empty()
            && self.watched.is_empty()
            && self.waiters.0.is_none()
            && self.snap.is_none()
    }

    /// Deletes every key (FLUSHDB, FLUSHALL).
    pub fn clear(&mut self) {
        self.keep_whole();
        self.touch_all(None, 0);
        self.map = Table::new();
        self.volatile = Volatile::default();
        self.fifo = None;
    }

    /// Deletes every key as [`Db::clear`] does, and hands the keys back
    /// instead of freeing them, for the caller to free elsewhere
    /// (FLUSHALL ASYNC frees them on another thread).
    pub fn take_all(&mut self) -> Contents {
        self.keep_whole();
        self.touch_all(None, 0);
        let volatile = std::mem::take(&mut self.volatile);
        Contents {
            map: std::mem::take(&mut self.map),
            _volatile: volatile,
        }
    }

    /// Exchanges contents (keys and deadlines, not blocked or watching
    /// clients) with `other`, for SWAPDB.
    pub fn swap_contents(&mut self, other: &mut Self, now: i64) {
        self.keep_whole();
        other.keep_whole();
        self.touch_all(Some(other), now);
        other.touch_all(Some(self), now);
        std::mem::swap(&mut self.map, &mut other.map);
        std::mem::swap(&mut self.volatile, &mut other.volatile);
        std::mem::swap(&mut self.fifo, &mut other.fifo);
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
    pub fn expired_keys(&self, now: i64) -> Vec<Key> {
        self.volatile
            .keys()
            .iter()
            .filter(|k| self.is_stale(k, now))
            .cloned()
            .collect()
    }
}

/// A database's keys taken out of it by [`Db::take_all`]: dropping it frees
/// them.
#[derive(Debug)]
pub struct Contents {
    map: Table<Box<Slot>>,
    _volatile: Volatile,
}

impl Contents {
    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }
}

/// A database lent to a command, with the command's [`Effects`]: every
/// lookup that may delete an expired key and every change goes through
/// it, so that what happened reaches the effects. It derefs to the
/// [`Db`] for what has no effect.
#[derive(Debug)]
pub struct DbMut<'s, W> {
    db: &'s mut Db<W>,
    fx: &'s mut Effects,
}

impl<W> std::ops::Deref for DbMut<'_, W> {
    type Target = Db<W>;

    fn deref(&self) -> &Db<W> {
        self.db
    }
}

impl<W> std::ops::DerefMut for DbMut<'_, W> {
    fn deref_mut(&mut self) -> &mut Db<W> {
        self.db
    }
}

impl<W> DbMut<'_, W> {
    /// The command's effects.
    pub fn effects(&mut self) -> &mut Effects {
        self.fx
    }

    /// The live entry for `key`, deleting it first if it has expired.
    pub fn get(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.lookup_hashed(key, hash_key(key), now, true)
    }

    /// [`DbMut::get`] without counting as an access: what OBJECT, TYPE,
    /// TTL and EXISTS use, so that OBJECT IDLETIME is not reset by them
    /// (Redis's `LOOKUP_NOTOUCH`).
    pub fn peek(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.lookup_hashed(key, hash_key(key), now, false)
    }

    /// [`DbMut::get`] of a key whose [`hash_key`] is `hash`.
    pub fn get_hashed(&mut self, key: &[u8], hash: u64, now: i64) -> Option<&mut Entry> {
        self.lookup_hashed(key, hash, now, true)
    }

    fn lookup_hashed(
        &mut self,
        key: &[u8],
        hash: u64,
        now: i64,
        access: bool,
    ) -> Option<&mut Entry> {
        let db = &mut *self.db;
        let i = db.map.find_index(hash, |s| s.key[..] == *key)?;
        match db.map.at(i).entry.is_expired(now) {
            false => {
                // The caller may change it: kept first (see `snapshot.rs`).
                if !self.fx.reads {
                    db.keep_at(i);
                }
                let slot = db.map.at_mut(i);
                if access {
                    super::evict::touch(slot);
                }
                Some(&mut slot.entry)
            }
            true => {
                if db.hide_expired && !self.fx.recording() {
                    return None;
                }
                if db.expiry_paused_until.load(Ordering::Relaxed) >= now {
                    return None;
                }
                db.keep_at(i);
                let slot = db.map.remove_at(i, hash);
                db.volatile.remove(hash, &slot.key);
                if !db.watched.is_empty() {
                    touch(&mut db.watched, &slot.key, true);
                }
                if db.hide_expired {
                    self.fx.expired(db.index, &slot.key);
                }
                self.fx.count_expired();
                self.fx
                    .event(class::EXPIRED, "expired", db.index, &slot.key);
                self.fx.key_changed(&slot.key);
                self.fx.discard(slot.entry.value, super::lazy::EXPIRE);
                None
            }
        }
    }

    /// Looks `key` up once for a write that depends on the old value (SET
    /// with NX, XX, GET or KEEPTTL): `decide` sees the live entry, if any,
    /// and returns what to store (`None` leaves the key as it is) and a
    /// result. The key is copied only when it is new.
    pub fn update<R>(
        &mut self,
        key: &[u8],
        now: i64,
        decide: impl FnOnce(Option<&Entry>) -> (Option<Entry>, R),
    ) -> R {
        let hash = hash_key(key);
        let db = &mut *self.db;
        match db.map.find_index(hash, |s| s.key[..] == *key) {
            Some(i) => {
                db.keep_at(i);
                let slot = db.map.at_mut(i);
                super::evict::touch(slot);
                let old = &slot.entry;
                let live = !old.is_expired(now);
                let had_deadline = old.expire_at().is_some();
                let (new, result) = decide(live.then_some(old));
                if !live && db.hide_expired {
                    // Whether it is replaced or kept, a replica must drop
                    // the expired value first: its copy never expires.
                    if !self.fx.recording() {
                        if new.is_none() {
                            return result;
                        }
                    } else {
                        self.fx.expired(db.index, key);
                    }
                }
                if !live {
                    // Deleted, then (if `new`) added again, as Redis does.
                    self.fx.key_changed(key);
                    self.fx.count_expired();
                    self.fx.event(class::EXPIRED, "expired", db.index, key);
                    if new.is_some() {
                        self.fx.event(class::NEW, "new", db.index, key);
                    }
                }
                match new {
                    Some(new) => {
                        match (had_deadline, new.expire_at().is_some()) {
                            (false, true) => db.volatile.insert(hash, key),
                            (true, false) => db.volatile.remove(hash, key),
                            _ => {}
                        }
                        let list = waitable(&new.value);
                        let old = std::mem::replace(&mut db.map.at_mut(i).entry, new);
                        // Redis frees an overwritten value as the server's
                        // own deletion, an expired one as an expiry.
                        let why = match live {
                            true => super::lazy::SERVER_DEL,
                            false => super::lazy::EXPIRE,
                        };
                        self.fx.discard(old.value, why);
                        self.fx.changed();
                        self.fx.key_changed(key);
                        db.touched(key);
                        db.added(key, list);
                    }
                    None if !live => {
                        let slot = db.map.remove_at(i, hash);
                        self.fx.discard(slot.entry.value, super::lazy::EXPIRE);
                        if had_deadline {
                            db.volatile.remove(hash, key);
                        }
                        db.expired(key);
                    }
                    None => {}
                }
                result
            }
            None => {
                let (new, result) = decide(None);
                if let Some(entry) = new {
                    let owned = Key::from_slice(key);
                    if entry.expire_at().is_some() {
                        db.volatile.insert(hash, key);
                    }
                    let list = waitable(&entry.value);
                    db.add_slot(hash, owned, entry);
                    self.fx.changed();
                    self.fx.event(class::NEW, "new", db.index, key);
                    self.fx.key_changed(key);
                    db.touched(key);
                    db.added(key, list);
                }
                result
            }
        }
    }

    /// Whether `key` exists (and has not expired).
    pub fn contains(&mut self, key: &[u8], now: i64) -> bool {
        self.get(key, now).is_some()
    }

    /// Stores `entry` under `key`, as [`DbMut::insert`] does, copying the
    /// key only when it is new (MSET's common case is overwriting).
    pub fn put(&mut self, key: &[u8], entry: Entry) {
        self.store(key, Key::from_slice, entry);
    }

    /// Stores `entry` under `key` as Redis's `setKey` does: an old value
    /// past its deadline (still in the table, nothing having looked it up)
    /// is deleted first, as a lookup deletes it (its `expired` event), so
    /// that the key is then added anew (`new`). [`DbMut::put`] overwrites
    /// it as it is, and probes the table once where this probes twice.
    pub fn set_key(&mut self, key: &[u8], entry: Entry, now: i64) {
        let hash = hash_key(key);
        if self
            .db
            .map
            .find(hash, |s| s.key[..] == *key)
            .is_some_and(|s| s.entry.is_expired(now))
        {
            self.lookup_hashed(key, hash, now, false);
        }
        self.put(key, entry);
    }

    /// Stores `entry` under `key`, replacing any old value and deadline.
    pub fn insert(&mut self, key: Bytes, entry: Entry) {
        self.store(key, |k| Key::from_slice(&k), entry);
    }

    /// [`DbMut::put`] and [`DbMut::insert`]: `owned` makes the key to keep
    /// when it is new.
    fn store<K: AsRef<[u8]>>(&mut self, key: K, owned: impl FnOnce(K) -> Key, entry: Entry) {
        let k = key.as_ref();
        let hash = hash_key(k);
        let deadline = entry.expire_at().is_some();
        self.modified(k);
        let db = &mut *self.db;
        db.keep(hash, k);
        db.added(k, waitable(&entry.value));
        match db.map.find_mut(hash, |s| s.key[..] == *k) {
            Some(slot) => {
                let had = slot.entry.expire_at().is_some();
                let old = std::mem::replace(&mut slot.entry, entry);
                self.fx.discard(old.value, super::lazy::SERVER_DEL);
                super::evict::touch(slot);
                match (had, deadline) {
                    (false, true) => db.volatile.insert(hash, &slot.key),
                    (true, false) => db.volatile.remove(hash, &slot.key),
                    _ => {}
                }
            }
            None => {
                self.fx.event(class::NEW, "new", db.index, k);
                let key = owned(key);
                if deadline {
                    db.volatile.insert(hash, &key);
                }
                db.add_slot(hash, key, entry);
            }
        }
    }

    /// Removes `key`, returning its entry (expired or not).
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let hash = hash_key(key);
        let i = self.db.map.find_index(hash, |s| s.key[..] == *key)?;
        self.db.keep_at(i);
        let slot = self.db.map.remove_at(i, hash);
        let entry = slot.entry;
        if entry.expire_at().is_some() {
            self.db.volatile.remove(hash, key);
        }
        self.modified(key);
        Some(entry)
    }

    /// Removes `key` as the server's own deletion (the old destination
    /// of RENAME, RESTORE REPLACE, a `*STORE` command with an empty
    /// result; a deadline set in the past), whose value goes to the
    /// lazy-free thread if `why` ([`super::lazy::SERVER_DEL`] or
    /// [`super::lazy::EXPIRE`]) is lazy and the value large. Returns
    /// whether the key was there (expired or not).
    pub fn delete(&mut self, key: &[u8], why: u8) -> bool {
        match self.remove(key) {
            Some(entry) => {
                self.fx.discard(entry.value, why);
                true
            }
            None => false,
        }
    }

    /// Sets or clears the deadline of an existing key. Returns false if the
    /// key does not exist. Clearing a deadline the key does not have is no
    /// change (for WATCH).
    pub fn set_expire(&mut self, key: &[u8], at: Option<i64>) -> bool {
        let hash = hash_key(key);
        let db = &mut *self.db;
        db.keep(hash, key);
        let Some(Slot { key: k, entry, .. }) = db
            .map
            .find_mut(hash, |s| s.key[..] == *key)
            .map(|s| &mut **s)
        else {
            return false;
        };
        let changed = match (entry.expire_at(), at) {
            (None, Some(_)) => {
                db.volatile.insert(hash, k);
                true
            }
            (Some(_), None) => {
                db.volatile.remove(hash, key);
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

    /// Counts `n` changes more than the one the change itself counted: a
    /// command that adds or removes several elements (RPUSH, SADD, HSET...)
    /// counts each, as Redis's `server.dirty` does.
    #[inline]
    pub fn count_changes(&mut self, n: usize) {
        self.fx.changed_by(n as u64);
    }

    /// The command changed `key`'s value in place: counts the change and
    /// marks the clients watching `key` (their EXEC will fail). Changes
    /// made through this type's own methods do both already.
    #[inline]
    pub fn modified(&mut self, key: &[u8]) {
        self.fx.changed();
        self.fx.key_changed(key);
        self.db.touched(key);
    }

    /// A key picked at random among the live ones, or `None` if none is.
    pub fn random_key(&mut self, now: i64, rng: &mut Rng) -> Option<Bytes> {
        // Expired keys met on the way are deleted, as Redis's RANDOMKEY does.
        for _ in 0..self.db.map.len().min(100) {
            let key = self.db.random_slot(rng)?;
            let key = Bytes::copy_from_slice(key);
            if self.get(&key, now).is_some() {
                return Some(key);
            }
        }
        None
    }

    /// Deletes sampled expired keys: up to `samples` keys with a deadline,
    /// chosen at random. Returns (sampled, expired).
    pub fn expire_sample(&mut self, samples: usize, now: i64, rng: &mut Rng) -> (usize, usize) {
        let mut expired = 0;
        let n = samples.min(self.db.volatile.len());
        for _ in 0..n {
            let Some(i) = rng.below(self.db.volatile.len()) else {
                break;
            };
            let key = self.db.volatile.keys()[i].clone();
            if self.get(&key, now).is_none() {
                expired += 1;
            }
        }
        (n, expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::tests::entry;

    fn new_db() -> Db<()> {
        Db::new(0, Arc::new(AtomicI64::new(i64::MIN)), Arc::default())
    }

    #[test]
    fn a_slot_fills_the_64_byte_class() {
        // A 24-byte key; the access frequency, the S3-FIFO bits and the
        // snapshot mark sit in what was padding after the clock.
        assert_eq!(size_of::<Key>(), 24);
        assert_eq!(size_of::<Slot>(), 64);
    }

    #[test]
    fn an_empty_database_is_96_bytes() {
        // 15 of them (a shard's databases but 0) in jemalloc's 1,536-byte
        // class; see `Db`.
        assert_eq!(size_of::<Db<Arc<()>>>(), 96);
        assert_eq!(size_of::<Waiters<()>>(), 8);
    }

    fn entry_list() -> Entry {
        let mut list = crate::list::List::new();
        list.push(false, b"x");
        Entry::new(Value::List(Box::new(list)))
    }

    #[test]
    fn ready_notes_outlive_the_waiter_until_taken() {
        let mut db: Db<u8> = Db::new(0, Arc::new(AtomicI64::new(i64::MIN)), Arc::default());
        let mut fx = Effects::new();
        db.waiters
            .entry(Bytes::from_static(b"l"))
            .or_default()
            .push_back(1);
        let mut dbm = db.with(&mut fx);
        dbm.insert(Bytes::from_static(b"l"), entry_list());
        assert!(dbm.has_ready());
        // The client gave up meanwhile: the note stays until taken.
        assert_eq!(dbm.waiters.remove(&b"l"[..]).map(|q| q.len()), Some(1));
        assert!(dbm.waiters.is_empty() && dbm.has_ready());
        let ready = dbm.take_ready();
        assert_eq!(ready.len(), 1);
        assert_eq!(&ready[0].1[..], b"l");
        assert!(!dbm.has_ready());
        assert!(dbm.waiters.0.is_none(), "back to a null pointer");
    }

    #[test]
    fn accesses_but_not_peeks_reset_the_idle_time() {
        let mut db = new_db();
        let mut fx = Effects::new();
        let mut db = db.with(&mut fx);
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
        let mut db = new_db();
        let mut fx = Effects::new();
        let mut db = db.with(&mut fx);
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
        let mut db = new_db();
        let mut fx = Effects::new();
        let mut db = db.with(&mut fx);
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

    fn watched(db: &mut Db<()>, key: &'static [u8], now: i64) -> Arc<WatchFlag> {
        let flag = Arc::new(WatchFlag::default());
        db.watch(key, &flag, now);
        flag
    }

    #[test]
    fn watch_sees_changes_of_its_key_only() {
        let mut db = new_db();
        let mut fx = Effects::new();
        let mut db = db.with(&mut fx);
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
            |db: &mut DbMut<'_, ()>| db.insert(Bytes::from_static(b"k"), entry("v", None)),
            |db: &mut DbMut<'_, ()>| drop(db.remove(b"k")),
            |db: &mut DbMut<'_, ()>| db.modified(b"k"),
            |db: &mut DbMut<'_, ()>| db.update(b"k", 0, |_| (Some(entry("w", None)), ())),
            |db: &mut DbMut<'_, ()>| {
                db.get(b"k", 1_000);
            },
            |db: &mut DbMut<'_, ()>| db.clear(),
        ] {
            let mut db = new_db();
            let mut fx = Effects::new();
            let mut db = db.with(&mut fx);
            let mut fx = Effects::new();
            let mut db = db.with(&mut fx);
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
        let mut db = new_db();
        let mut fx = Effects::new();
        let mut db = db.with(&mut fx);
        db.insert(Bytes::from_static(b"k"), entry("v", Some(10)));
        let flag = watched(&mut db, b"k", 20);
        assert!(!db.watched_key_expired(b"k", &flag, 20));
        // Its deletion is no change; a new value is.
        assert!(db.get(b"k", 20).is_none());
        assert!(!flag.is_set());
        db.insert(Bytes::from_static(b"k"), entry("v", None));
        assert!(flag.is_set());

        // Live when watched, expired by EXEC: EXEC fails.
        let mut db = new_db();
        let mut fx = Effects::new();
        let mut db = db.with(&mut fx);
        db.insert(Bytes::from_static(b"k"), entry("v", Some(10)));
        let flag = watched(&mut db, b"k", 5);
        assert!(db.watched_key_expired(b"k", &flag, 20));
        // Deleted by expiry meanwhile: a change.
        db.get(b"k", 20);
        assert!(flag.is_set());

        // FLUSHDB of a stale key is no change.
        let mut db = new_db();
        let mut fx = Effects::new();
        let mut db = db.with(&mut fx);
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
            let (mut a, mut b) = (new_db(), new_db());
            let (mut fa, mut fb) = (Effects::new(), Effects::new());
            let (mut a, mut b) = (a.with(&mut fa), b.with(&mut fb));
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

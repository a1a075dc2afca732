//! The keyspace's shards and their locks: every database, split into
//! independently locked shards.
//!
//! A key lives in the same shard (a slice of its [`hash_key`]) in every
//! database, so a command on one key takes one shard's lock, and commands
//! on different shards run in parallel. A command on several keys locks
//! their shards in ascending order (so two such commands can never
//! deadlock) and holds them all while it runs, which makes it atomic, as in
//! Redis. Commands on the whole keyspace (FLUSHALL, KEYS, SWAPDB) lock
//! every shard, in order.
//!
//! Shards are reached only through [`Shards`], a command's lock set: outside
//! a transaction it locks shards as asked, and inside EXEC it hands out the
//! shards the transaction already holds (a `std::sync::Mutex` is not
//! reentrant, so a second lock of a held shard would deadlock). It also
//! owns the command's [`Effects`], which every database it hands out
//! ([`DbMut`]) reports to. The keyspace's own lock methods are private to
//! this file for that reason.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use smallvec::SmallVec;

use super::snapshot::{Encoder, Running};
use super::{Db, DbMut, Effects, hash_key};

/// Shards per keyspace. A power of two; enough that SCAN, which returns one
/// shard per step, keeps steps small, and that two cores rarely meet on the
/// same lock.
pub const SHARDS: usize = 1024;

/// The shard `key` lives in.
#[inline]
pub fn shard_of(key: &[u8]) -> usize {
    shard_of_hash(hash_key(key))
}

/// The shard of a key whose [`hash_key`] is `hash`.
#[inline]
pub fn shard_of_hash(hash: u64) -> usize {
    (hash >> 32) as usize & (SHARDS - 1)
}

/// One shard: its part of every database. `repr(C)` with the count of
/// blocked clients and database 0 first, and the table's header first in
/// it, so that the shard's lock, what a write checks on locking and what
/// a lookup in database 0 reads first share a cache line (the
/// keyspace's shard array is aligned to lines; see [`Keyspace`]).
#[derive(Debug)]
#[repr(C)]
pub struct Shard<W> {
    /// Blocked clients registered on keys of this shard (once per key they
    /// wait on), changed under its lock: a write that locks the shard and
    /// finds clients here holds its shards until it has served the keys
    /// it made ready ([`Shards::begin_write`]). Every write reads it, so
    /// it shares the lock's line too.
    pub waiting: usize,
    /// Its part of each database, by number.
    pub dbs: Dbs<W>,
    /// The snapshot whose walker has visited this shard (see
    /// [`Keyspace::begin_snapshot`]), and the one its databases are armed
    /// for (0 for none): they keep each key's old value as it first
    /// changes, until the walker comes (see `snapshot.rs`).
    snap_done: u64,
    snap_armed: u64,
}

/// A shard's databases, by number: database 0 inside the shard itself,
/// the others in one allocation beside it, made the first time one of them
/// is used (most servers only ever use database 0, and 1,024 shards of
/// fifteen empty databases would be 1.4 MB before the first key). Until
/// then, reads see empty databases shared by every shard. Indexed and
/// iterated like a slice; indexing to change a database makes the others.
#[derive(Debug)]
#[repr(C)]
pub struct Dbs<W> {
    first: Db<W>,
    /// Databases 1 and up, once one was changed.
    rest: Option<Box<[Db<W>]>>,
    /// Empty databases 1 and up, shared by every shard and never changed:
    /// what reads see while `rest` is not made.
    empty: Arc<[Db<W>]>,
    /// The snapshot the databases are armed for, if any: databases made
    /// while it runs are armed for it too.
    armed: Option<Arc<Running>>,
}

impl<W> Dbs<W> {
    /// Database 0, and the empty databases 1 and up all shards share.
    fn new(first: Db<W>, empty: Arc<[Db<W>]>) -> Self {
        Dbs {
            first,
            rest: None,
            empty,
            armed: None,
        }
    }

    /// Number of databases.
    pub fn len(&self) -> usize {
        1 + self.empty.len()
    }

    /// Never: a shard has database 0 at least.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// How many databases, from 0, have been made (and may hold keys): 1
    /// until one of the others is changed, then all.
    pub fn made(&self) -> usize {
        1 + self.rest.as_ref().map_or(0, |rest| rest.len())
    }

    /// The databases, in order (the ones not made yet as empty ones).
    pub fn iter(&self) -> std::iter::Chain<std::iter::Once<&Db<W>>, std::slice::Iter<'_, Db<W>>> {
        std::iter::once(&self.first).chain(self.rest.as_deref().unwrap_or(&self.empty).iter())
    }

    /// The databases that have been made, in order, to change. The others
    /// are empty, and made with database 0's settings when first changed.
    pub fn iter_mut(
        &mut self,
    ) -> std::iter::Chain<std::iter::Once<&mut Db<W>>, std::slice::IterMut<'_, Db<W>>> {
        std::iter::once(&mut self.first)
            .chain(self.rest.as_deref_mut().unwrap_or_default().iter_mut())
    }

    /// Database `i` if it has been made, without making it.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Db<W>> {
        match i {
            0 => Some(&mut self.first),
            _ => self.rest.as_deref_mut()?.get_mut(i - 1),
        }
    }

    /// Databases 1 and up, made now if they were not: empty, sharing
    /// database 0's pause and ready counter, hiding expired keys as it
    /// does, and armed for the running snapshot if the shard is.
    fn rest_mut(&mut self) -> &mut [Db<W>] {
        if self.rest.is_none() {
            self.rest = Some(self.make_rest());
        }
        self.rest.as_deref_mut().unwrap_or_default()
    }

    #[cold]
    #[inline(never)]
    fn make_rest(&self) -> Box<[Db<W>]> {
        (1..self.len())
            .map(|index| {
                let mut db = Db::new(
                    index,
                    self.first.expiry_paused_until.clone(),
                    self.first.ready_seq.clone(),
                );
                db.hide_expired = self.first.hide_expired;
                if let Some(running) = &self.armed {
                    db.arm(running);
                }
                db
            })
            .collect()
    }

    /// Gives back databases 1 and up once none of them holds anything: no
    /// key, no client blocked or watching, and no snapshot armed. A shard
    /// pays about 1.4 KB for them from its first key in any database but
    /// 0, which keys that were evicted or deleted do not give back
    /// otherwise: a server that used database 9 for a while would stay
    /// 1.4 MB over the keys it holds (and, under `maxmemory`, evict every
    /// key of that database without getting under the limit). They are
    /// made again, empty, when next needed. True if they were dropped.
    pub fn reclaim(&mut self) -> bool {
        if self.armed.is_some() {
            return false;
        }
        match &self.rest {
            Some(rest) if rest.iter().all(Db::is_blank) => {
                self.rest = None;
                true
            }
            _ => false,
        }
    }

    /// Arms the databases made for snapshot `running` (and those made
    /// while it runs).
    fn arm(&mut self, running: &Arc<Running>) {
        for db in self.iter_mut() {
            db.arm(running);
        }
        self.armed = Some(running.clone());
    }

    /// Drops what the databases keep for a snapshot that has ended.
    fn disarm(&mut self) {
        for db in self.iter_mut() {
            db.disarm();
        }
        self.armed = None;
    }

    /// Databases `a` and `b` at once (SWAPDB); they must differ.
    pub fn pair_mut(&mut self, a: usize, b: usize) -> (&mut Db<W>, &mut Db<W>) {
        assert_ne!(a, b, "two different databases");
        let (lo, hi) = (a.min(b), a.max(b));
        self.rest_mut();
        let (low, high) = if lo == 0 {
            let rest = self.rest.as_deref_mut().unwrap_or_default();
            (&mut self.first, &mut rest[hi - 1])
        } else {
            let rest = self.rest.as_deref_mut().unwrap_or_default();
            let (left, right) = rest.split_at_mut(hi - 1);
            (&mut left[lo - 1], &mut right[0])
        };
        if a < b { (low, high) } else { (high, low) }
    }
}

impl<W> std::ops::Index<usize> for Dbs<W> {
    type Output = Db<W>;

    #[inline]
    fn index(&self, i: usize) -> &Db<W> {
        match i {
            0 => &self.first,
            _ => &self.rest.as_deref().unwrap_or(&self.empty)[i - 1],
        }
    }
}

impl<W> std::ops::IndexMut<usize> for Dbs<W> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Db<W> {
        match i {
            0 => &mut self.first,
            _ => &mut self.rest_mut()[i - 1],
        }
    }
}

impl<'s, W> IntoIterator for &'s Dbs<W> {
    type Item = &'s Db<W>;
    type IntoIter = std::iter::Chain<std::iter::Once<&'s Db<W>>, std::slice::Iter<'s, Db<W>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'s, W> IntoIterator for &'s mut Dbs<W> {
    type Item = &'s mut Db<W>;
    type IntoIter =
        std::iter::Chain<std::iter::Once<&'s mut Db<W>>, std::slice::IterMut<'s, Db<W>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

/// A shard's lock on a cache line (or two) of its own: the lock and the
/// start of database 0 share the first, and two cores working on
/// neighbouring shards never write to the same line.
#[derive(Debug)]
#[repr(align(64))]
struct Line<T>(T);

impl<W> Shard<W> {
    /// Arms every database for the running snapshot (their keys' old
    /// values are kept as they first change), once.
    #[cold]
    fn arm_for_snapshot(&mut self, running: &Arc<Running>) {
        if self.snap_done == running.epoch || self.snap_armed == running.epoch {
            return;
        }
        self.dbs.arm(running);
        self.snap_armed = running.epoch;
    }

    /// Drops what the databases keep for a snapshot that has ended.
    #[cold]
    fn disarm(&mut self) {
        self.dbs.disarm();
        self.snap_armed = 0;
    }

    /// This shard's bytes, per database, for snapshot `epoch`, at `now`,
    /// with `encoder`, and its count of keys; the walker's visit, once.
    fn encode_for_walk(
        &mut self,
        epoch: u64,
        now: i64,
        encoder: &dyn Encoder,
    ) -> (Vec<Vec<u8>>, usize) {
        self.snap_done = epoch;
        self.snap_armed = 0;
        let keys = self.dbs.iter().map(Db::len).sum();
        let mut parts: Vec<Vec<u8>> = self
            .dbs
            .iter_mut()
            .map(|db| db.encode_for_walk(epoch, now, encoder))
            .collect();
        // The databases not made are empty.
        parts.resize(self.dbs.len(), Vec::new());
        (parts, keys)
    }
}

/// How many times the walker yields its thread, at most, for a lock set
/// waiting for the shard it walks (see [`Keyspace::walk_shard`]).
const LET_IN_YIELDS: usize = 2;

/// The walker's visit of one shard, a slice at a time (see
/// [`Keyspace::walk_shard`]).
#[derive(Debug)]
pub(super) struct ShardWalk {
    shard: usize,
    epoch: u64,
    now: i64,
    started: bool,
    /// The database being walked.
    db: usize,
    /// The bytes so far, per database.
    parts: Vec<Vec<u8>>,
    /// Keys in the shard when the visit began.
    keys: usize,
}

impl ShardWalk {
    pub(super) fn new(shard: usize, epoch: u64, now: i64) -> Self {
        ShardWalk {
            shard,
            epoch,
            now,
            started: false,
            db: 0,
            parts: Vec::new(),
            keys: 0,
        }
    }

    /// The bytes per database, once done.
    #[cfg(test)]
    pub(super) fn into_parts(self) -> Vec<Vec<u8>> {
        self.parts
    }
}

/// All databases, sharded. Its shards are locked only through [`Shards`].
#[derive(Debug)]
pub struct Keyspace<W> {
    shards: Box<[Line<Mutex<Shard<W>>>]>,
    databases: usize,
    /// Changes are recorded for replicas (see `crate::repl`). Set and
    /// cleared only while every shard is locked, so a command that reads
    /// it holding a shard's lock sees the truth for that shard.
    feeding: AtomicBool,
    /// The snapshot being taken (0 for none): see
    /// [`Keyspace::begin_snapshot`]. The one field every lock reads.
    snap_epoch: AtomicU64,
    /// Its instant and encoder.
    snap_running: Mutex<Option<Arc<Running>>>,
    /// One snapshot at a time: claimed by [`Keyspace::claim_snapshot`].
    snap_busy: AtomicBool,
    /// What every database reads to know whether a CLIENT PAUSE freezes
    /// expiry (see [`crate::pause`]).
    expiry_pause: Arc<AtomicI64>,
    /// Snapshots taken so far, for their epochs.
    snap_count: AtomicU64,
    /// The keyspace event classes every lock set's effects record (see
    /// [`Effects::want_events`]); 0 while nobody wants notifications.
    notify: AtomicU32,
    /// Whether lock sets record changed keys (someone tracks keys).
    track: AtomicBool,
    /// The counter every database draws its ready keys' order from (see
    /// [`Keyspace::ready_count`]).
    ready_seq: Arc<AtomicU64>,
    /// Out-of-order locking (see [`Shards::begin_reach`]): the token, held
    /// by the one lock set that may take shards in any order; whether
    /// that holder reaches (set while it holds the token); and how many
    /// lock sets are waiting for a shard while they hold another.
    reach: Mutex<()>,
    reaching: AtomicBool,
    stalled: AtomicUsize,
    /// A shard a lock set is waiting for (its number plus one; 0 for
    /// none), set only when a lock has to wait: a hint to the snapshot's
    /// walker to let it in between two slices ([`Keyspace::walk_shard`]).
    wanted: AtomicUsize,
    /// Where lock sets hand the large values the keyspace dropped (see
    /// `lazy.rs`).
    disposer: super::lazy::DisposerCell,
    /// Keys deleted because they were met past their deadline, by a
    /// command or the expiry cycle (INFO's `expired_keys`).
    expired_on_access: AtomicU64,
}

impl<W> Keyspace<W> {
    /// `databases` empty databases. Keys are hashed under the seed of
    /// [`super::seed_hash`], which the server sets first.
    pub fn new(databases: usize) -> Self {
        let expiry_pause = Arc::new(AtomicI64::new(i64::MIN));
        let ready_seq = Arc::new(AtomicU64::new(0));
        let empty: Arc<[Db<W>]> = (1..databases.max(1))
            .map(|index| Db::new(index, expiry_pause.clone(), ready_seq.clone()))
            .collect();
        let shards = (0..SHARDS)
            .map(|_| {
                Line(Mutex::new(Shard {
                    dbs: Dbs::new(
                        Db::new(0, expiry_pause.clone(), ready_seq.clone()),
                        empty.clone(),
                    ),
                    snap_done: 0,
                    snap_armed: 0,
                    waiting: 0,
                }))
            })
            .collect();
        Keyspace {
            shards,
            databases,
            expiry_pause,
            feeding: AtomicBool::new(false),
            snap_epoch: AtomicU64::new(0),
            snap_running: Mutex::new(None),
            snap_busy: AtomicBool::new(false),
            snap_count: AtomicU64::new(0),
            notify: AtomicU32::new(0),
            track: AtomicBool::new(false),
            ready_seq,
            reach: Mutex::new(()),
            reaching: AtomicBool::new(false),
            stalled: AtomicUsize::new(0),
            wanted: AtomicUsize::new(0),
            disposer: Default::default(),
            expired_on_access: AtomicU64::new(0),
        }
    }

    /// How many keys were deleted because they were met past their
    /// deadline, by a command or the expiry cycle, since the start or
    /// [`Keyspace::reset_expired_count`].
    pub fn expired_count(&self) -> u64 {
        self.expired_on_access.load(Ordering::Relaxed)
    }

    /// Starts [`Keyspace::expired_count`] again from zero (CONFIG RESETSTAT).
    pub fn reset_expired_count(&self) {
        self.expired_on_access.store(0, Ordering::Relaxed);
    }

    /// Sets where the large values the keyspace drops on its own go (the
    /// server's lazy-free thread; see `lazy.rs`). Only the first call
    /// counts.
    pub fn set_disposer(&self, disposer: Box<dyn super::lazy::Disposer>) {
        self.disposer.set(disposer);
    }

    /// Sets which of the keyspace's own drops go to the disposer
    /// ([`super::lazy::bits`]: `lazyfree-lazy-expire`,
    /// `lazyfree-lazy-server-del`); lock sets made from now on follow it.
    pub fn set_lazy(&self, bits: u8) {
        self.disposer.set_lazy(bits);
    }

    /// How many times a key was noted ready for blocked clients, ever: a
    /// holder of many shards (a script holds them all) compares it before
    /// and after its work to know whether `take_ready` would find
    /// anything, without visiting every database of every shard.
    pub fn ready_count(&self) -> u64 {
        self.ready_seq.load(Ordering::Relaxed)
    }

    /// The end (Unix ms) of the pause that freezes expiry, shared with
    /// every database: the server's CLIENT PAUSE sets it.
    pub fn expiry_pause(&self) -> Arc<AtomicI64> {
        self.expiry_pause.clone()
    }

    /// Claims the right to take a snapshot, if no other runs: one at a
    /// time. Never waits. The claimer begins it at once
    /// ([`Keyspace::begin_snapshot`]); [`Keyspace::end_snapshot`] gives it
    /// back.
    pub fn claim_snapshot(&self) -> bool {
        self.snap_busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether a snapshot is claimed.
    pub fn snapshot_running(&self) -> bool {
        self.snap_busy.load(Ordering::Relaxed)
    }

    /// Fixes a claimed snapshot's instant (see `snapshot.rs`): the caller
    /// holds every shard, and `now` is the instant's clock (what has
    /// expired). From here on whoever locks a shard first arms it: each
    /// key's value is kept, encoded with `encoder`, before it first
    /// changes, until the walker has visited the shard
    /// ([`Keyspace::walk_shard`]). Returns the snapshot's epoch.
    pub fn begin_snapshot(&self, now: i64, encoder: Arc<dyn Encoder>) -> u64 {
        let epoch = self.snap_count.fetch_add(1, Ordering::Relaxed) + 1;
        *self
            .snap_running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(Running {
            epoch,
            now,
            encoder,
        }));
        self.snap_epoch.store(epoch, Ordering::Release);
        epoch
    }

    /// Ends snapshot `epoch`, if it is the one running (so ending one
    /// twice is harmless, and never ends a later one). What was kept
    /// ahead of a walker that stopped early is dropped (a shard locked
    /// right now keeps it until its next lock). Never waits for a shard's
    /// lock.
    pub fn end_snapshot(&self, epoch: u64) {
        {
            let mut running = self
                .snap_running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if running.as_ref().is_none_or(|r| r.epoch != epoch) {
                return;
            }
            *running = None;
            self.snap_epoch.store(0, Ordering::Release);
        }
        for line in self.shards.iter() {
            if let Ok(mut shard) = line.0.try_lock()
                && shard.snap_armed != 0
            {
                shard.disarm();
            }
        }
        self.snap_busy.store(false, Ordering::Release);
    }

    /// The walker's visit of shard `i` for snapshot `epoch` (whose instant
    /// is `now` and encoder `encoder`): its bytes per database (the keys
    /// that did not change since the instant, and the old values kept of
    /// those that did) and its count of keys when the visit began. The
    /// shard's lock is held for at most `slice` keys at a time
    /// ([`WALK_SLICE`] unless a benchmark says otherwise), and commands
    /// run on the shard in between (see `snapshot.rs`).
    ///
    /// [`WALK_SLICE`]: super::WALK_SLICE
    pub fn walk_shard(
        &self,
        i: usize,
        epoch: u64,
        now: i64,
        encoder: &dyn Encoder,
        slice: usize,
    ) -> (Vec<Vec<u8>>, usize) {
        let mut walk = ShardWalk::new(i, epoch, now);
        while !self.walk_step(&mut walk, encoder, slice) {
            self.let_waiter_in(i);
        }
        (walk.parts, walk.keys)
    }

    /// Between two slices of shard `i`, with its lock free: if a lock set
    /// is waiting for it, gives it the time to wake up and take the lock
    /// (a bounded number of yields). Without this the walker, already
    /// running, would lock the shard again before the waiter ran, and the
    /// waiter would wait for the whole shard after all.
    fn let_waiter_in(&self, i: usize) {
        for _ in 0..LET_IN_YIELDS {
            if self.wanted.load(Ordering::Relaxed) != i + 1 {
                return;
            }
            std::thread::yield_now();
        }
    }

    /// One hold of the lock of the shard `walk` visits: the whole shard if
    /// it has at most `slice` keys, otherwise at most `slice` keys' worth
    /// of it. Returns whether the shard is done.
    pub(super) fn walk_step(
        &self,
        walk: &mut ShardWalk,
        encoder: &dyn Encoder,
        slice: usize,
    ) -> bool {
        let mut guard = self.shards[walk.shard]
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let slice = slice.max(1);
        if !walk.started {
            walk.started = true;
            walk.keys = guard.dbs.iter().map(Db::len).sum();
            let running = self
                .snap_running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
                .filter(|r| r.epoch == walk.epoch);
            let Some(running) = running else {
                // The snapshot has ended: nothing to write, and a later
                // one's state is left alone.
                walk.parts = vec![Vec::new(); guard.dbs.len()];
                return true;
            };
            if walk.keys <= slice {
                (walk.parts, _) = guard.encode_for_walk(walk.epoch, walk.now, encoder);
                return true;
            }
            // Armed for the walk, if no write did it: between slices,
            // writes keep the old values of the keys not yet walked.
            if guard.snap_armed != walk.epoch {
                if guard.snap_armed != 0 {
                    guard.disarm();
                }
                guard.arm_for_snapshot(&running);
            }
            walk.parts = vec![Vec::new(); guard.dbs.len()];
        }
        let mut budget = slice;
        while walk.db < walk.parts.len() {
            let db = walk.db;
            // A database not made is empty (one made during the walk was
            // armed for it, and holds no key of its instant).
            if let Some(d) = guard.dbs.get_mut(db)
                && !d.walk_slice(walk.epoch, &mut budget, &mut walk.parts[db])
            {
                return false;
            }
            walk.db += 1;
        }
        // Unless a later snapshot armed the shard since (this one having
        // ended), the walker has been here.
        if guard.snap_armed == walk.epoch {
            guard.snap_done = walk.epoch;
            guard.snap_armed = 0;
        }
        true
    }

    /// Arms a shard just locked for the running snapshot, if one runs and
    /// the walker has not been there; drops what an ended one left.
    #[inline]
    fn on_lock(&self, guard: &mut MutexGuard<'_, Shard<W>>) {
        // The one branch a lock pays while no snapshot runs (both 0).
        let epoch = self.snap_epoch.load(Ordering::Acquire);
        if guard.snap_armed != epoch && (guard.snap_armed != 0 || guard.snap_done != epoch) {
            self.snapshot_slow(guard, epoch);
        }
    }

    #[cold]
    #[inline(never)]
    fn snapshot_slow(&self, guard: &mut MutexGuard<'_, Shard<W>>, epoch: u64) {
        if guard.snap_armed != 0 && guard.snap_armed != epoch {
            guard.disarm();
        }
        if epoch == 0 || guard.snap_done == epoch {
            return;
        }
        let running = self
            .snap_running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(running) = running.filter(|r| r.epoch == epoch) {
            guard.arm_for_snapshot(&running);
        }
    }

    /// Sets the keyspace event classes ([`super::class`] bits) that lock
    /// sets made from now on record (`notify-keyspace-events`).
    pub fn set_notify_classes(&self, classes: u32) {
        self.notify.store(classes, Ordering::Relaxed);
    }

    /// The keyspace event classes lock sets record.
    #[inline]
    pub fn notify_classes(&self) -> u32 {
        self.notify.load(Ordering::Relaxed)
    }

    /// Sets whether lock sets made from now on record the keys they
    /// change (client-side caching).
    pub fn set_tracking(&self, on: bool) {
        self.track.store(on, Ordering::Relaxed);
    }

    /// Whether lock sets record the keys they change.
    #[inline]
    pub fn tracking(&self) -> bool {
        self.track.load(Ordering::Relaxed)
    }

    /// Whether writes are recorded for replicas.
    pub fn feeding(&self) -> bool {
        self.feeding.load(Ordering::Acquire)
    }

    /// Starts or stops recording writes for replicas. The caller holds
    /// every shard.
    pub fn set_feeding(&self, on: bool) {
        self.feeding.store(on, Ordering::Release);
    }

    /// The shard `key` lives in.
    pub fn shard_of(key: &[u8]) -> usize {
        shard_of(key)
    }

    /// The shard of a key whose [`hash_key`] is `hash`.
    pub fn shard_of_hash(hash: u64) -> usize {
        shard_of_hash(hash)
    }

    /// Brings into the cache, ahead of time, what looking up the keys
    /// hashed `hashes` in database `db` will read: a pipelined batch's
    /// keys are known before its commands run, and the cache misses of
    /// their lookups, each a wait on memory when the keyspace is bigger
    /// than the cache, then overlap instead of following one another.
    /// Two passes: every key's table line, then (those lines having
    /// arrived meanwhile) the slot each line points to. Only hints: a
    /// shard busy elsewhere is skipped, nothing is changed, and what was
    /// fetched may be stale by the time it is used.
    pub fn prefetch(&self, db: usize, hashes: &[u64]) {
        for &hash in hashes {
            if let Ok(shard) = self.shards[shard_of_hash(hash)].0.try_lock()
                && db < shard.dbs.len()
            {
                shard.dbs[db].prefetch_group(hash);
            }
        }
        for &hash in hashes {
            if let Ok(shard) = self.shards[shard_of_hash(hash)].0.try_lock()
                && db < shard.dbs.len()
            {
                shard.dbs[db].prefetch_slot(hash);
            }
        }
    }

    /// Locks one shard. A poisoned lock (a command panicked while holding
    /// it) is taken anyway: a shard's maps are valid after any panic.
    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard<W>> {
        let mut guard = match self.shards[shard].0.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => self.lock_waiting(shard),
        };
        self.on_lock(&mut guard);
        guard
    }

    /// [`Keyspace::lock`] of a shard someone holds: says so (`wanted`)
    /// while it waits, for the snapshot's walker.
    #[cold]
    #[inline(never)]
    fn lock_waiting(&self, shard: usize) -> MutexGuard<'_, Shard<W>> {
        self.wanted.store(shard + 1, Ordering::Relaxed);
        let guard = self.shards[shard]
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = self
            .wanted
            .compare_exchange(shard + 1, 0, Ordering::Relaxed, Ordering::Relaxed);
        guard
    }

    /// Locks one shard for a command that only reads it. It arms the
    /// shard for a running snapshot like any lock (arming encodes
    /// nothing), so that an expired key the read deletes is kept first;
    /// its lookups keep nothing else (see [`Shards::read_only`]).
    fn lock_for_read(&self, shard: usize) -> MutexGuard<'_, Shard<W>> {
        self.lock(shard)
    }

    /// [`Keyspace::lock`], or [`Keyspace::lock_for_read`] when `read`.
    fn lock_as(&self, shard: usize, read: bool) -> MutexGuard<'_, Shard<W>> {
        if read {
            self.lock_for_read(shard)
        } else {
            self.lock(shard)
        }
    }

    /// [`Keyspace::try_lock`] for a command that only reads the shard when
    /// `read`.
    fn try_lock_as(&self, shard: usize, read: bool) -> Option<MutexGuard<'_, Shard<W>>> {
        // Reads arm a shard too (see `lock_for_read`).
        let _ = read;
        self.try_lock(shard)
    }

    /// Locks one shard if that needs no waiting.
    fn try_lock(&self, shard: usize) -> Option<MutexGuard<'_, Shard<W>>> {
        let mut guard = match self.shards[shard].0.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        self.on_lock(&mut guard);
        Some(guard)
    }

    /// Locks the shards of `keys`, in ascending order, each once.
    #[cfg(test)]
    fn lock_keys<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> Locked<'_, W> {
        self.lock_shards(keys.into_iter().map(shard_of), false)
    }

    /// Locks shards by number, in ascending order, each once (`token`: the
    /// caller holds the reach token).
    fn lock_shards(&self, shards: impl IntoIterator<Item = usize>, token: bool) -> Locked<'_, W> {
        self.lock_shards_for(shards, false, token)
    }

    /// [`Keyspace::lock_shards`], for a command that only reads them when
    /// `read` (a running snapshot need not encode them first).
    fn lock_shards_for(
        &self,
        shards: impl IntoIterator<Item = usize>,
        read: bool,
        token: bool,
    ) -> Locked<'_, W> {
        let mut ids: Ids = shards.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        if token {
            self.lock_ids_waiting(ids, read)
        } else {
            self.lock_ids(ids, read)
        }
    }

    /// Locks every shard, in order.
    fn lock_all(&self) -> Locked<'_, W> {
        self.lock_ids((0..SHARDS).collect(), false)
    }

    /// Locks `ids`, which must be ascending and distinct. Waiting for a
    /// shard while holding another is what can deadlock with a lock set
    /// that reaches ([`Shards::begin_reach`]): a caller that would wait so
    /// counts itself as stalled first, then waits only if nobody reaches;
    /// otherwise it lets its shards go and takes the reach token before it
    /// locks them all again (the holder of the token waits for no one who
    /// waits for it).
    /// `read`: the caller only reads them (see [`Keyspace::lock_for_read`]).
    fn lock_ids(&self, ids: Ids, read: bool) -> Locked<'_, W> {
        let mut guards: SmallVec<[MutexGuard<'_, Shard<W>>; 2]> =
            SmallVec::with_capacity(ids.len());
        for &i in &ids {
            if guards.is_empty() {
                guards.push(self.lock_as(i, read));
                continue;
            }
            if let Some(guard) = self.try_lock_as(i, read) {
                guards.push(guard);
                continue;
            }
            // Both sequentially consistent, against `begin_reach`'s store
            // then load: either it sees this wait, or this sees it reach.
            self.stalled.fetch_add(1, Ordering::SeqCst);
            if !self.reaching.load(Ordering::SeqCst) {
                guards.push(self.lock_as(i, read));
                self.stalled.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            self.stalled.fetch_sub(1, Ordering::SeqCst);
            drop(guards);
            let _token = self
                .reach
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return self.lock_ids_waiting(ids, read);
        }
        Locked {
            ks: self,
            ids,
            guards,
        }
    }

    /// Locks `ids` (ascending and distinct) waiting for each in turn: for
    /// the holder of the reach token, whom no stalled lock set waits for.
    fn lock_ids_waiting(&self, ids: Ids, read: bool) -> Locked<'_, W> {
        let guards = ids.iter().map(|&i| self.lock_as(i, read)).collect();
        Locked {
            ks: self,
            ids,
            guards,
        }
    }
}

/// The reach token, held by a lock set that may lock shards in any order
/// (see [`Shards::begin_reach`]); dropping it ends the reach.
#[derive(Debug)]
struct ReachToken<'a> {
    reaching: &'a AtomicBool,
    _guard: MutexGuard<'a, ()>,
}

impl Drop for ReachToken<'_> {
    fn drop(&mut self) {
        self.reaching.store(false, Ordering::SeqCst);
    }
}

/// Locked shard numbers: most commands lock one or two, without allocating.
type Ids = SmallVec<[usize; 2]>;

/// How code reaches the keyspace's shards: a command's lock set, with its
/// [`Effects`]. A command finds it in its context; background work makes
/// one of its own.
///
/// Outside a transaction each call locks what it names, exactly as a direct
/// lock would. Inside EXEC the transaction has locked, in ascending order,
/// every shard its commands name ([`Shards::hold_keys`], or all of them), and
/// each call hands out a view of those locks instead: the commands of a
/// transaction run with no other client's command in between, and never
/// wait for a lock they hold.
#[derive(Debug)]
pub struct Shards<'a, W> {
    ks: &'a Keyspace<W>,
    held: Option<Locked<'a, W>>,
    /// Held while this lock set may lock shards out of order (dropped
    /// after `held`, by field order).
    reach: Option<ReachToken<'a>>,
    /// A write command that started while nothing was recorded for
    /// replicas: should a lock it takes show that recording has begun since,
    /// it holds all its keys instead and records (see [`Shards::upgrade`]).
    write: Option<Write<'a>>,
    /// What the command (or transaction) did, so far.
    fx: Effects,
    /// The command only reads (see [`Shards::read_only`]).
    reads: bool,
}

/// The keys of a write command, which [`Shards`] asks for only when the
/// command must hold them (the server knows how to find a command's keys;
/// the keyspace does not).
pub trait WriteKeys {
    /// Whether the command works on whole databases (FLUSHALL, SWAPDB,
    /// SORT with patterns): it then holds every shard.
    fn whole_keyspace(&self) -> bool;

    /// Appends the command's keys to `out`.
    fn keys<'k>(&'k self, out: &mut Vec<&'k [u8]>);
}

/// A write command, as [`Shards::begin_write`] takes it.
#[derive(Clone, Copy)]
pub struct Write<'a> {
    /// Its keys.
    pub keys: &'a dyn WriteKeys,
    /// Recorded for replicas when they are fed (not the master's stream
    /// on a replica, which reaches sub-replicas as it came).
    pub record: bool,
}

impl std::fmt::Debug for Write<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
            .field("whole_keyspace", &self.keys.whole_keyspace())
            .field("record", &self.record)
            .finish()
    }
}

impl<W> Drop for Shards<'_, W> {
    fn drop(&mut self) {
        let expired = self.fx.take_expired_count();
        if expired > 0 {
            self.ks
                .expired_on_access
                .fetch_add(expired, Ordering::Relaxed);
        }
        let garbage = self.fx.take_garbage();
        if !garbage.is_empty() {
            // Handed over once the locks are released, so nobody waits
            // on the hand-over.
            self.held = None;
            self.reach = None;
            self.ks.disposer.dispose(garbage);
        }
    }
}

impl<'a, W> Shards<'a, W> {
    /// A lock set of its own, holding nothing yet: each call takes its own
    /// locks. A command uses the `Shards` of its context instead, which
    /// knows about transactions.
    pub fn new(ks: &'a Keyspace<W>) -> Self {
        Shards {
            ks,
            held: None,
            reach: None,
            write: None,
            fx: {
                let mut fx = Effects::with_events(ks.notify_classes(), ks.tracking());
                fx.set_lazy_bits(ks.disposer.lazy());
                fx
            },
            reads: false,
        }
    }

    /// The command only reads: its lookups in the shards it locks one by
    /// one (not those it holds, as EXEC and scripts do) keep no old value
    /// for a running snapshot, since it changes nothing the snapshot
    /// keeps. Only its lazy deletion of an expired key does, and that
    /// keeps the key first (see `snapshot.rs`).
    pub fn read_only(&mut self) {
        self.reads = true;
        self.fx.reads = true;
    }

    /// What the command did so far.
    pub fn effects(&mut self) -> &mut Effects {
        &mut self.fx
    }

    /// For a write command outside EXEC: holds its keys' shards until
    /// [`Shards::release`] while replicas are fed (recording it, if
    /// `write.record`) or when a shard it locks has blocked clients, so
    /// that what it did reaches the stream and the clients it made ready
    /// are served before anyone else sees its keys. Otherwise it notes the
    /// command, and switches to holding should a lock it takes show
    /// either.
    pub fn begin_write(&mut self, write: Write<'a>) {
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
        if w.keys.whole_keyspace() {
            self.hold_all();
        } else {
            let mut keys = Vec::new();
            w.keys.keys(&mut keys);
            self.hold_keys(keys);
        }
        if w.record && self.ks.feeding() {
            self.fx.start();
        }
    }

    /// Number of databases.
    pub fn databases(&self) -> usize {
        self.ks.databases
    }

    /// The keyspace itself.
    pub fn keyspace(&self) -> &'a Keyspace<W> {
        self.ks
    }

    /// The shard `key` lives in, locked.
    pub fn lock_key(&mut self, key: &[u8]) -> ShardRef<'_, W> {
        self.lock_shard(shard_of(key))
    }

    /// One shard by number, locked (SCAN walks them in turn).
    pub fn lock_shard(&mut self, shard: usize) -> ShardRef<'_, W> {
        if self.held.is_none() {
            let guard = if self.reads {
                self.ks.lock_for_read(shard)
            } else {
                self.ks.lock(shard)
            };
            if !self.must_upgrade(guard.waiting > 0) {
                return ShardRef {
                    guard: Guard::Own(guard),
                    fx: &mut self.fx,
                };
            }
            drop(guard);
            self.upgrade();
        }
        let guard = match &mut self.held {
            None => Guard::Own(self.ks.lock(shard)),
            Some(held) => Guard::Held(held.shard_mut(shard)),
        };
        ShardRef {
            guard,
            fx: &mut self.fx,
        }
    }

    /// One shard by number, locked only if that needs no waiting: the
    /// expiry cycle skips the shards a long script holds rather than wait
    /// for it. Inside EXEC the held shard is lent as by `lock_shard`.
    pub fn try_lock_shard(&mut self, shard: usize) -> Option<ShardRef<'_, W>> {
        if self.held.is_some() {
            return Some(self.lock_shard(shard));
        }
        let guard = self.ks.try_lock(shard)?;
        if self.must_upgrade(guard.waiting > 0) {
            return None;
        }
        Some(ShardRef {
            guard: Guard::Own(guard),
            fx: &mut self.fx,
        })
    }

    /// The shards of `keys`, locked in ascending order, each once.
    pub fn lock_keys<'k>(
        &mut self,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> LockedRef<'_, 'a, W> {
        self.lock_shards(keys.into_iter().map(shard_of))
    }

    /// The shards of keys whose [`hash_key`]s are `hashes` (a command that
    /// hashed its keys once, to look them up with [`LockedRef::db_of_hash`]
    /// and [`DbMut::get_hashed`]), locked as [`Shards::lock_keys`] locks.
    pub fn lock_hashes(&mut self, hashes: impl IntoIterator<Item = u64>) -> LockedRef<'_, 'a, W> {
        self.lock_shards(hashes.into_iter().map(shard_of_hash))
    }

    fn lock_shards(&mut self, shards: impl IntoIterator<Item = usize>) -> LockedRef<'_, 'a, W> {
        let mut named = None;
        if self.held.is_none() {
            let locked = self
                .ks
                .lock_shards_for(shards, self.reads, self.reach.is_some());
            if !self.must_upgrade(locked.waited()) {
                return LockedRef {
                    inner: Inner::Own(locked),
                    fx: &mut self.fx,
                };
            }
            drop(locked);
            // The keys named are the command's own, all held from now on.
            self.upgrade();
        } else {
            named = Some(shards);
        }
        let inner = match &mut self.held {
            None => Inner::Own(self.ks.lock_all()),
            Some(held) => {
                for shard in named.into_iter().flatten() {
                    held.position(shard);
                }
                Inner::Held(held)
            }
        };
        LockedRef {
            inner,
            fx: &mut self.fx,
        }
    }

    /// Every shard, locked in order.
    pub fn lock_all(&mut self) -> LockedRef<'_, 'a, W> {
        self.lock_shards(0..SHARDS)
    }

    /// Runs `f` on each shard in turn, each under its own lock: for
    /// whole-keyspace reads that need no atomicity across shards.
    pub fn for_each_shard(&mut self, mut f: impl FnMut(&mut Shard<W>)) {
        for shard in 0..SHARDS {
            f(&mut self.lock_shard(shard));
        }
    }

    /// EXEC: locks the shards of `keys`, in ascending order, and holds them
    /// until [`Shards::release`]; the keys made ready for blocked clients
    /// meanwhile are served from what the transaction left
    /// ([`Locked::take_ready`]).
    pub fn hold_keys<'k>(&mut self, keys: impl IntoIterator<Item = &'k [u8]>) {
        debug_assert!(self.held.is_none(), "transactions do not nest");
        let token = self.reach.is_some();
        self.held = Some(self.ks.lock_shards(keys.into_iter().map(shard_of), token));
        // What a holder runs may write (EXEC and scripts are no reads).
        self.fx.reads = false;
    }

    /// Makes this lock set the one that may lock shards in any order,
    /// waiting for each (a script holds its declared keys' shards, then
    /// takes the shards of the other keys it reaches as it reaches them),
    /// until it is dropped or [`Shards::end_reach`]. Call it holding no
    /// shard.
    ///
    /// Why that cannot deadlock: a wait cycle needs a lock set that waits
    /// for a shard while it holds one that a waiter behind it needs.
    /// Others do so only in ascending order, which alone never closes a
    /// cycle, and never while someone reaches: this takes the token (one
    /// reacher at a time), says it reaches, then waits until no lock set
    /// is stalled (waiting for a shard while holding another); from then
    /// on a lock set that would stall lets its shards go and waits for
    /// the token instead (see `Keyspace::lock_ids`). So whoever holds a
    /// shard the reacher waits for is running, not waiting for the
    /// reacher, and will let it go. The reacher must not wait, holding
    /// shards, for anything else a shard holder may hold (the caller's
    /// part: a script takes its engine's lock after its shards, and EXEC
    /// of a script takes the token before its shards).
    pub fn begin_reach(&mut self) {
        debug_assert!(self.held.is_none(), "reach holding nothing");
        if self.reach.is_some() {
            return;
        }
        let guard = self
            .ks
            .reach
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.ks.reaching.store(true, Ordering::SeqCst);
        let token = ReachToken {
            reaching: &self.ks.reaching,
            _guard: guard,
        };
        // Lock sets stalled before they could see the reach: each waits
        // for a shard in ascending order, held by someone running, so
        // they end.
        while self.ks.stalled.load(Ordering::SeqCst) > 0 {
            std::thread::yield_now();
        }
        self.reach = Some(token);
    }

    /// Ends what [`Shards::begin_reach`] began; call it once the held
    /// shards are released.
    pub fn end_reach(&mut self) {
        self.reach = None;
    }

    /// Whether `shard` is among the held ones (a script that holds its
    /// declared keys' shards asks before each command it runs).
    pub fn holds_shard(&self, shard: usize) -> bool {
        self.held
            .as_ref()
            .is_some_and(|h| h.ids.binary_search(&shard).is_ok())
    }

    /// How many shards are held.
    pub fn held_count(&self) -> usize {
        self.held.as_ref().map_or(0, |h| h.ids.len())
    }

    /// Adds `shard` to the held ones, waiting for it if it is busy: only
    /// for a lock set that reaches ([`Shards::begin_reach`]) and holds
    /// (it may be below the held ones). False, doing nothing, otherwise.
    pub fn hold_shard(&mut self, shard: usize) -> bool {
        let (Some(held), Some(_)) = (self.held.as_mut(), self.reach.as_ref()) else {
            return false;
        };
        if let Err(at) = held.ids.binary_search(&shard) {
            held.ids.insert(at, shard);
            held.guards.insert(at, self.ks.lock(shard));
        }
        true
    }

    /// EXEC of a command on the whole keyspace: holds every shard.
    pub fn hold_all(&mut self) {
        debug_assert!(self.held.is_none(), "transactions do not nest");
        let token = self.reach.is_some();
        self.held = Some(self.ks.lock_shards(0..SHARDS, token));
        self.fx.reads = false;
    }

    /// The locks held by EXEC, if any.
    pub fn held(&mut self) -> Option<LockedRef<'_, 'a, W>> {
        let held = self.held.as_mut()?;
        Some(LockedRef {
            inner: Inner::Held(held),
            fx: &mut self.fx,
        })
    }

    /// Ends EXEC's hold, handing back its locks (dropping them unlocks)
    /// with the effects.
    pub fn release(&mut self) -> Option<LockedRef<'_, 'a, W>> {
        let held = self.held.take()?;
        Some(LockedRef {
            inner: Inner::Own(held),
            fx: &mut self.fx,
        })
    }
}

/// A locked shard (locked for this call, or one of a transaction's), with
/// the command's effects. It derefs to the [`Shard`].
#[derive(Debug)]
pub struct ShardRef<'s, W> {
    guard: Guard<'s, W>,
    fx: &'s mut Effects,
}

#[derive(Debug)]
enum Guard<'s, W> {
    Own(MutexGuard<'s, Shard<W>>),
    Held(&'s mut Shard<W>),
}

impl<W> ShardRef<'_, W> {
    /// Database `db` of this shard, reporting to the command's effects.
    #[inline]
    pub fn db(&mut self, db: usize) -> DbMut<'_, W> {
        let shard: &mut Shard<W> = match &mut self.guard {
            Guard::Own(guard) => guard,
            Guard::Held(shard) => shard,
        };
        shard.dbs[db].with(self.fx)
    }

    /// Database `db` of this shard if it has been made (see [`Dbs`]):
    /// for the eviction and expiry cycles, which look at every database
    /// and should not make the ones never used. One not made is empty.
    #[inline]
    pub fn db_made(&mut self, db: usize) -> Option<DbMut<'_, W>> {
        let shard: &mut Shard<W> = match &mut self.guard {
            Guard::Own(guard) => guard,
            Guard::Held(shard) => shard,
        };
        Some(shard.dbs.get_mut(db)?.with(self.fx))
    }

    /// The command's effects.
    pub fn effects(&mut self) -> &mut Effects {
        self.fx
    }
}

impl<W> std::ops::Deref for ShardRef<'_, W> {
    type Target = Shard<W>;

    fn deref(&self) -> &Shard<W> {
        match &self.guard {
            Guard::Own(guard) => guard,
            Guard::Held(shard) => shard,
        }
    }
}

impl<W> std::ops::DerefMut for ShardRef<'_, W> {
    fn deref_mut(&mut self) -> &mut Shard<W> {
        match &mut self.guard {
            Guard::Own(guard) => guard,
            Guard::Held(shard) => shard,
        }
    }
}

/// A set of locked shards (locked for this call, or a transaction's), with
/// the command's effects. It derefs to the [`Locked`] set.
#[derive(Debug)]
pub struct LockedRef<'s, 'a, W> {
    inner: Inner<'s, 'a, W>,
    fx: &'s mut Effects,
}

#[derive(Debug)]
enum Inner<'s, 'a, W> {
    Own(Locked<'a, W>),
    Held(&'s mut Locked<'a, W>),
}

impl<'a, W> LockedRef<'_, 'a, W> {
    fn locked(&mut self) -> &mut Locked<'a, W> {
        match &mut self.inner {
            Inner::Own(locked) => locked,
            Inner::Held(locked) => locked,
        }
    }

    /// The database `db` of the shard holding `key`, which must be one of
    /// the locked keys, reporting to the command's effects.
    #[inline]
    pub fn db(&mut self, db: usize, key: &[u8]) -> DbMut<'_, W> {
        self.db_of_hash(db, hash_key(key))
    }

    /// [`LockedRef::db`] for a key whose [`hash_key`] is `hash`.
    #[inline]
    pub fn db_of_hash(&mut self, db: usize, hash: u64) -> DbMut<'_, W> {
        let inner = match &mut self.inner {
            Inner::Own(locked) => locked,
            Inner::Held(locked) => &mut **locked,
        };
        let i = inner.position(shard_of_hash(hash));
        inner.guards[i].dbs[db].with(self.fx)
    }

    /// The command's effects.
    pub fn effects(&mut self) -> &mut Effects {
        self.fx
    }

    /// The keys of the locked shards that became lists while clients
    /// waited on them; see [`Locked::take_ready`].
    pub fn take_ready(&mut self) -> Vec<(usize, Bytes)> {
        self.locked().take_ready()
    }
}

impl<'a, W> std::ops::Deref for LockedRef<'_, 'a, W> {
    type Target = Locked<'a, W>;

    fn deref(&self) -> &Locked<'a, W> {
        match &self.inner {
            Inner::Own(locked) => locked,
            Inner::Held(locked) => locked,
        }
    }
}

impl<'a, W> std::ops::DerefMut for LockedRef<'_, 'a, W> {
    fn deref_mut(&mut self) -> &mut Locked<'a, W> {
        self.locked()
    }
}

/// A set of locked shards.
#[derive(Debug)]
pub struct Locked<'a, W> {
    ks: &'a Keyspace<W>,
    ids: Ids,
    guards: SmallVec<[MutexGuard<'a, Shard<W>>; 2]>,
}

impl<'a, W> Locked<'a, W> {
    /// A locked shard by number.
    fn shard_mut(&mut self, shard: usize) -> &mut Shard<W> {
        let i = self.position(shard);
        &mut self.guards[i]
    }

    /// Where `shard` is among the locked ones. Every caller names shards it
    /// locked (a transaction locks what its commands name, see
    /// [`WriteKeys`]); should one not, it is added if that needs no
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
    pub fn shards(&mut self) -> impl Iterator<Item = &mut Shard<W>> {
        self.guards.iter_mut().map(|g| &mut **g)
    }

    /// Whether clients are blocked on keys of a locked shard.
    pub fn waited(&self) -> bool {
        self.guards.iter().any(|g| g.waiting > 0)
    }

    /// The locked shard of `key`.
    pub fn shard_of_key(&mut self, key: &[u8]) -> &mut Shard<W> {
        self.shard_mut(shard_of(key))
    }

    /// Whether the shard of `key` is locked.
    pub fn holds(&self, key: &[u8]) -> bool {
        self.ids.binary_search(&shard_of(key)).is_ok()
    }

    /// Adds the shard of `key` if it can be locked without waiting: taking
    /// a lock out of order is safe only as a try, never as a wait.
    pub fn try_add(&mut self, key: &[u8]) -> bool {
        let shard = shard_of(key);
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
    pub fn take_ready(&mut self) -> Vec<(usize, Bytes)> {
        let mut ready: Vec<(u64, usize, Bytes)> = Vec::new();
        for shard in &mut self.guards {
            // Notes are only made for keys clients wait on: a shard
            // nobody waits in has none, and its sixteen databases (as
            // many cache lines) are not visited on every write.
            if shard.waiting == 0 {
                continue;
            }
            for (i, db) in shard.dbs.iter_mut().enumerate() {
                if db.has_ready() {
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
    use std::time::Duration;

    use super::*;
    use crate::keyspace::tests::entry;
    use crate::value::Value;

    /// Encodes string keys as `key=value;`.
    struct Pairs;

    impl Encoder for Pairs {
        fn encode(
            &self,
            _db: usize,
            keys: &mut dyn Iterator<Item = (&[u8], &crate::keyspace::Entry)>,
            out: &mut Vec<u8>,
        ) {
            for (k, e) in keys {
                let Value::Str(s) = &e.value else {
                    panic!("a string")
                };
                out.extend_from_slice(k);
                out.push(b'=');
                out.extend_from_slice(&s.to_bytes());
                out.push(b';');
            }
        }
    }

    fn snapshot_values(ks: &Keyspace<()>, epoch: u64) -> Vec<String> {
        let mut bytes = Vec::new();
        for i in 0..SHARDS {
            let (dbs, _) = ks.walk_shard(i, epoch, 0, &Pairs, crate::keyspace::WALK_SLICE);
            dbs.iter().for_each(|d| bytes.extend_from_slice(d));
        }
        crate::keyspace::snapshot::tests::lines(&bytes)
    }

    #[test]
    fn a_snapshot_sees_the_keyspace_as_it_was_when_it_began() {
        let ks = Keyspace::<()>::new(1);
        let mut shards = Shards::new(&ks);
        let key = |k: &'static str| Bytes::from_static(k.as_bytes());
        shards
            .lock_key(b"a")
            .db(0)
            .insert(key("a"), entry("old", None));
        shards
            .lock_key(b"b")
            .db(0)
            .insert(key("b"), entry("kept", None));
        assert!(ks.claim_snapshot());
        assert!(!ks.claim_snapshot(), "one snapshot at a time");
        let epoch = {
            let _all = shards.lock_all();
            ks.begin_snapshot(0, Arc::new(Pairs))
        };
        // Changes after the instant: the shard is encoded before they land.
        shards
            .lock_key(b"a")
            .db(0)
            .insert(key("a"), entry("new", None));
        shards
            .lock_key(b"c")
            .db(0)
            .insert(key("c"), entry("later", None));
        shards.lock_key(b"b").db(0).remove(b"b");
        let seen = snapshot_values(&ks, epoch);
        ks.end_snapshot(epoch);
        ks.end_snapshot(epoch);
        assert_eq!(seen, ["a=old", "b=kept"]);
        // The keyspace itself has the changes, and the next snapshot too.
        assert!(shards.lock_key(b"c").db(0).contains(b"c", 0));
        assert!(ks.claim_snapshot());
        let next = {
            let _all = shards.lock_all();
            ks.begin_snapshot(0, Arc::new(Pairs))
        };
        ks.end_snapshot(epoch);
        assert!(ks.snapshot_running(), "an older epoch ends nothing");
        let seen = snapshot_values(&ks, next);
        ks.end_snapshot(next);
        assert!(!ks.snapshot_running());
        assert_eq!(seen, ["a=new", "c=later"]);
    }

    /// A lookup in database 0 finds the shard's lock, the table's header
    /// and whether anyone watches in one cache line.
    #[test]
    fn the_lock_and_database_0_share_a_line() {
        let ks = Keyspace::<()>::new(16);
        for line in ks.shards.iter().take(3) {
            let start = line as *const Line<Mutex<Shard<()>>> as usize;
            assert_eq!(start % 64, 0);
            let guard = line.0.lock().expect("not poisoned");
            let waiting = &guard.waiting as *const usize as usize;
            assert!(waiting - start + 8 <= 64, "waiting at {}", waiting - start);
            let db0 = &guard.dbs[0] as *const Db<()> as usize;
            // The table's header and the watchers' pointer, in that order.
            let hot = size_of::<super::super::table::Table<()>>() + 8;
            assert!(db0 - start + hot <= 64, "database 0 at {}", db0 - start);
        }
    }

    #[test]
    fn databases_index_and_pair_like_a_slice() {
        let ks = Keyspace::<()>::new(4);
        let mut shards = Shards::new(&ks);
        let mut shard = shards.lock_shard(0);
        assert_eq!(shard.dbs.len(), 4);
        assert_eq!(
            shard.dbs.iter().map(|d| d.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        for (a, b) in [(0, 3), (3, 0), (1, 2), (2, 1)] {
            let (x, y) = shard.dbs.pair_mut(a, b);
            assert_eq!((x.index, y.index), (a, b));
        }
        assert_eq!(shard.dbs[2].index, 2);
    }

    /// Databases 1 and up, made by a key, are given back once nothing is
    /// in them: not while a key, a watching client or a snapshot needs
    /// them.
    #[test]
    fn databases_made_by_a_key_are_given_back_once_blank() {
        let ks = Keyspace::<()>::new(16);
        let mut shards = Shards::new(&ks);
        let key = Bytes::from_static(b"k");
        let mut shard = shards.lock_key(b"k");
        assert!(!shard.dbs.reclaim(), "nothing made yet");
        shard.db(9).insert(key.clone(), entry("v", None));
        assert_eq!(shard.dbs.made(), 16);
        assert!(!shard.dbs.reclaim(), "a key is there");
        shard.db(9).remove(b"k");
        let flag = Arc::new(crate::keyspace::WatchFlag::default());
        shard.db(3).watch(b"w", &flag, 0);
        assert!(!shard.dbs.reclaim(), "a client watches");
        shard.db(3).unwatch(b"w", &flag);
        assert!(shard.dbs.reclaim());
        assert_eq!(shard.dbs.made(), 1);
        // Made again, empty, when next used.
        shard.db(9).insert(key, entry("again", None));
        assert_eq!(shard.dbs[9].len(), 1);
        drop(shard);
        // Not while a snapshot is armed in the shard.
        shards.lock_key(b"k").db(9).remove(b"k");
        assert!(ks.claim_snapshot());
        let epoch = {
            let _all = shards.lock_all();
            ks.begin_snapshot(0, Arc::new(Pairs))
        };
        let mut shard = shards.lock_key(b"k");
        assert!(!shard.dbs.reclaim(), "armed for the snapshot");
        drop(shard);
        ks.end_snapshot(epoch);
    }

    #[test]
    fn multi_key_locks_are_ordered_and_deduplicated() {
        let ks = Keyspace::<()>::new(2);
        let keys: Vec<&[u8]> = vec![b"x", b"y", b"x", b"z"];
        let locked = ks.lock_keys(keys.iter().copied());
        assert_eq!(locked.ids.len(), 3);
        assert!(locked.ids.windows(2).all(|w| w[0] < w[1]));
        drop(locked);
        let mut shards = Shards::new(&ks);
        let mut locked = shards.lock_keys(keys.iter().copied());
        locked
            .db(1, b"y")
            .insert(Bytes::from_static(b"y"), entry("v", None));
        assert_eq!(locked.effects().dirty(), 1);
        drop(locked);
        assert_eq!(ks.lock(shard_of(b"y")).dbs[1].len(), 1);
    }

    /// A reacher holding a high shard waits for a low one that a lock set
    /// taking every shard in order holds while it waits for the high one:
    /// that lock set lets its shards go instead of waiting (it would be a
    /// deadlock otherwise), and both end.
    #[test]
    fn a_reacher_takes_a_lower_shard_from_an_ascending_locker() {
        let ks = Arc::new(Keyspace::<()>::new(1));
        let high = (0u32..)
            .map(|i| i.to_string())
            .find(|k| shard_of(k.as_bytes()) > SHARDS / 2)
            .expect("a key on a high shard");
        for _ in 0..200 {
            let (done, finished) = std::sync::mpsc::channel();
            let (ks1, done1, high) = (ks.clone(), done.clone(), high.clone());
            let (held, hold) = std::sync::mpsc::channel();
            let reacher = std::thread::spawn(move || {
                let mut reacher = Shards::new(&ks1);
                reacher.begin_reach();
                reacher.hold_keys([high.as_bytes()]);
                held.send(()).expect("the test waits");
                // Let the locker get going (it may or may not hold shard 0
                // by now: the runs cover both).
                std::thread::yield_now();
                assert!(reacher.hold_shard(0));
                assert!(reacher.holds_shard(0) && reacher.held_count() == 2);
                drop(reacher.release());
                reacher.end_reach();
                done1.send(()).expect("the test waits");
            });
            hold.recv().expect("the reacher holds its shard");
            let ks2 = ks.clone();
            let locker = std::thread::spawn(move || {
                drop(Shards::new(&ks2).lock_all());
                done.send(()).expect("the test waits");
            });
            for _ in 0..2 {
                // A deadlock fails here (its threads are left behind).
                finished
                    .recv_timeout(Duration::from_secs(10))
                    .expect("the reacher and the ascending locker both end");
            }
            reacher.join().expect("the reacher");
            locker.join().expect("the locker");
        }
    }

    #[test]
    fn a_transaction_lends_its_locks_instead_of_locking_again() {
        let ks = Keyspace::<()>::new(1);
        let mut shards = Shards::new(&ks);
        shards.hold_keys([&b"a"[..], b"b"]);
        // A second lock of a held std mutex would deadlock here.
        shards
            .lock_key(b"a")
            .db(0)
            .insert(Bytes::from_static(b"a"), entry("1", None));
        let mut locked = shards.lock_keys([&b"b"[..], b"a"]);
        locked
            .db(0, b"b")
            .insert(Bytes::from_static(b"b"), entry("2", None));
        assert!(locked.db(0, b"a").contains(b"a", 0));
        drop(locked);
        let released = shards.release().expect("held");
        drop(released);
        // Released: other code locks the shards again.
        assert!(Shards::new(&ks).lock_key(b"b").db(0).contains(b"b", 0));
    }
}

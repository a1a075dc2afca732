//! Point-in-time snapshots without stopping the world.
//!
//! A snapshot (BGSAVE, an AOF rewrite's base, a replica's full resync)
//! stands at one instant, fixed while every shard is locked
//! ([`Keyspace::begin_snapshot`]): that costs one pass over the shard
//! locks, whatever the size of the data. From then on the snapshot's
//! walker visits the shards one at a time ([`Keyspace::walk_shard`]),
//! and commands run meanwhile.
//!
//! **Copy on first write, per key.** The first lock of a shard the walker
//! has not reached yet *arms* its databases: it hands each the snapshot
//! ([`KeySaves`]) and costs no encoding. From then on, until the walker passes, every
//! change of a key in an armed database keeps the key's value as it was
//! at the instant before it lands: the keyspace's one mutable way to a key
//! (`DbMut`: `get`, `update`, `put`, `remove`, `set_expire`, and the
//! deletion of an expired key) first encodes that one key with the
//! snapshot's [`Encoder`], beside the database, and marks its slot. A key
//! created meanwhile is marked as it is added (it was not there at the
//! instant, or its old value was kept when it went). The walker encodes a
//! database's unmarked keys, which are as they were, and appends the kept
//! bytes; then it clears the marks. So a write pays for its own key, once
//! per snapshot, and never for the rest of its shard.
//!
//! **Walking in slices.** A shard bigger than [`WALK_SLICE`] keys is not
//! encoded in one hold of its lock: the walker arms it (as a write would)
//! and encodes a database a slice at a time, in table order, releasing the
//! lock between slices, so a write to that shard waits for one slice. In
//! between, it remembers how far it came (`KeySaves::walked`, an index
//! into the table): the keys below it are in the snapshot, so a change
//! there keeps nothing ([`Db::keep_at`]), and the keys from it on are
//! kept, marked and skipped as in an unwalked database. Keys never move
//! in the table except when it grows (removals only empty a place; a key
//! deleted and added again is a new slot, marked). Growing moves every
//! key, so [`Db::before_moving_keys`] runs first: it marks the unmarked
//! keys below `walked` (in the snapshot already) and sets `walked` back
//! to 0; the walk then goes over the new table from its start, skipping
//! every mark. A whole-database change part way through encodes only what
//! lies from `walked` on. When a database is done, its marks are cleared
//! by the names noted with them, the walked ones among them.
//!
//! Whole-database changes (FLUSHDB, FLUSHALL, SWAPDB) cannot keep one key
//! at a time: they encode the armed database as it was at the instant
//! first ([`Db::keep_whole`]), as the walker would, and the walker takes
//! those bytes. A read (`Shards::read_only`) keeps nothing, but for a key
//! whose deadline has passed that it deletes.
//!
//! Memory stays bounded by what is kept ahead of the walker: the encoded
//! old values of the keys changed before it came (a few bytes a key, not
//! a copy of the entries), and the marked keys' names; both go when the
//! walker passes the shard. When no snapshot runs, locking a shard costs
//! one load and one predictable branch more, and a change one null check.
//!
//! **Architecture Invariant:** a key is part of a snapshot exactly as it
//! was at the snapshot's instant: its value is kept before anything that
//! may change or delete it runs, and never twice. In an armed database, a
//! key of the instant is in the snapshot already exactly when its slot is
//! marked or lies below `walked`; every mark is noted (`marked`) so that
//! it is cleared; nothing moves slots in a table without calling
//! [`Db::before_moving_keys`] first.
//!
//! [`Keyspace::begin_snapshot`]: super::Keyspace::begin_snapshot
//! [`Keyspace::walk_shard`]: super::Keyspace::walk_shard

use std::sync::Arc;

use super::db::Slot;
use super::table::prefetch_line;
use super::{Db, Entry, Key, hash_key};

/// How many keys the walker encodes per hold of a shard's lock, at most:
/// a write to the shard being walked waits for one slice, not the shard.
pub const WALK_SLICE: usize = 256;

/// How many places ahead a sliced walk asks for slots (two table groups,
/// as `Db::iter_prefetched` does).
const PREFETCH_AHEAD: usize = 14;

/// How a snapshot turns keys into bytes (an RDB file's entries, an AOF's
/// commands). Called under a shard's lock, by the walker or by whichever
/// command changes a key first: it must not lock anything of the
/// keyspace. Bytes of separate calls for one database are concatenated.
pub trait Encoder: Send + Sync {
    /// Appends the live `keys` of database `db` of one shard to `out`.
    fn encode(&self, db: usize, keys: &mut dyn Iterator<Item = (&[u8], &Entry)>, out: &mut Vec<u8>);
}

/// The snapshot running: its epoch (never 0), its instant (Unix ms, for
/// what has expired) and its encoder.
pub(super) struct Running {
    pub(super) epoch: u64,
    pub(super) now: i64,
    pub(super) encoder: Arc<dyn Encoder>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("epoch", &self.epoch)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// What an armed database keeps for the running snapshot until the walker
/// passes (see the module's notes).
#[derive(Debug)]
pub(super) struct KeySaves {
    running: Arc<Running>,
    /// The encoded values, as of the instant, of the keys changed since.
    saved: Vec<u8>,
    /// The keys whose slots are marked: the walker clears their marks.
    marked: Vec<Key>,
    /// The whole database as of the instant, once a whole-database change
    /// encoded it: then nothing more is kept.
    whole: Option<Vec<u8>>,
    /// How far the walker has come in the table: the keys at lower
    /// indexes are in the snapshot already (see the module's notes).
    walked: usize,
}

impl KeySaves {
    fn new(running: Arc<Running>) -> Box<Self> {
        Box::new(KeySaves {
            running,
            saved: Vec::new(),
            marked: Vec::new(),
            whole: None,
            walked: 0,
        })
    }
}

/// The instant's clock for database `db`: every key where expired keys are
/// hidden rather than deleted (a replica, or a master feeding replicas,
/// whose stream may still make them live).
fn instant<W>(db: &Db<W>, now: i64) -> i64 {
    if db.hide_expired { i64::MIN } else { now }
}

impl<W> Db<W> {
    /// Arms this database for snapshot `running`, dropping what an older
    /// one left.
    pub(super) fn arm(&mut self, running: &Arc<Running>) {
        self.disarm();
        self.snap = Some(KeySaves::new(running.clone()));
    }

    /// Forgets what this database keeps for a snapshot, clearing the marks.
    pub(super) fn disarm(&mut self) -> Option<Box<KeySaves>> {
        let saves = self.snap.take()?;
        for key in &saves.marked {
            if let Some(slot) = self.map.find_mut(hash_key(key), |s| s.key == *key) {
                slot.snap = false;
            }
        }
        Some(saves)
    }

    /// Before the key at table index `i` changes: keeps its value for the
    /// running snapshot, if this database is armed and the key not yet
    /// kept.
    #[inline]
    pub(super) fn keep_at(&mut self, i: usize) {
        if self.snap.is_some() {
            self.keep_slow(i);
        }
    }

    /// [`Db::keep_at`] for `key` (hashed `hash`), if it is in the table.
    #[inline]
    pub(super) fn keep(&mut self, hash: u64, key: &[u8]) {
        if self.snap.is_some()
            && let Some(i) = self.map.find_index(hash, |s| s.key[..] == *key)
        {
            self.keep_slow(i);
        }
    }

    #[cold]
    #[inline(never)]
    fn keep_slow(&mut self, i: usize) {
        let at = self.snap.as_ref().map(|s| instant(self, s.running.now));
        let (Some(saves), Some(at)) = (self.snap.as_deref_mut(), at) else {
            return;
        };
        let slot = self.map.at_mut(i);
        // Below `walked`, the walker has encoded it already.
        if slot.snap || saves.whole.is_some() || i < saves.walked {
            return;
        }
        slot.snap = true;
        saves.marked.push(slot.key.clone());
        if !slot.entry.is_expired(at) {
            let one = (&slot.key[..], &slot.entry);
            saves
                .running
                .encoder
                .encode(self.index, &mut std::iter::once(one), &mut saves.saved);
        }
    }

    /// A slot about to be added: marked, if this database is armed (the
    /// key was not there at the instant, or its value was kept when it
    /// went).
    #[inline]
    pub(super) fn mark_new(&mut self, slot: &mut Slot) {
        if let Some(saves) = self.snap.as_deref_mut()
            && saves.whole.is_none()
        {
            slot.snap = true;
            saves.marked.push(slot.key.clone());
        }
    }

    /// Before `n` keys are added: if that grows the table while the walker
    /// is part way through it, every key moves to a new index, so the keys
    /// it has encoded (those below `walked`) are marked instead, and its
    /// walk starts again from index 0, skipping them.
    #[inline]
    pub(super) fn before_moving_keys(&mut self, n: usize) {
        if self.snap.as_ref().is_some_and(|s| s.walked > 0) && self.map.room() < n {
            self.walked_to_marks();
        }
    }

    #[cold]
    #[inline(never)]
    fn walked_to_marks(&mut self) {
        let Some(saves) = self.snap.as_deref_mut() else {
            return;
        };
        let walked = std::mem::take(&mut saves.walked);
        if saves.whole.is_some() {
            return;
        }
        for i in 0..walked.min(self.map.num_buckets()) {
            if self.map.get_bucket(i).is_some_and(|s| !s.snap) {
                let slot = self.map.at_mut(i);
                slot.snap = true;
                saves.marked.push(slot.key.clone());
            }
        }
    }

    /// Encodes the live unmarked keys from index `walked` on into `out`,
    /// until `budget` runs out (each key visited costs one, each empty
    /// place an eighth), and moves `walked` past them. Returns whether the
    /// walk reached the table's end.
    fn encode_unwalked(
        &mut self,
        running: &Running,
        budget: &mut usize,
        out: &mut Vec<u8>,
    ) -> bool {
        let start = self.snap.as_ref().map_or(0, |s| s.walked);
        let end = self.map.num_buckets();
        if self.map.is_empty() {
            if let Some(saves) = self.snap.as_deref_mut() {
                saves.walked = end;
            }
            return true;
        }
        let at = instant(self, running.now);
        let map = &self.map;
        let (mut i, mut seen, mut empty) = (start, 0usize, 0usize);
        {
            let limit = *budget;
            let mut keys = std::iter::from_fn(|| {
                while i < end && seen + empty / 8 < limit {
                    // As `Db::iter_prefetched` does: the slot two groups
                    // on is asked for now, to be in the cache when needed.
                    if let Some(ahead) = map.get_bucket(i + PREFETCH_AHEAD) {
                        prefetch_line(&**ahead as *const Slot as *const u8);
                    }
                    let here = map.get_bucket(i);
                    i += 1;
                    match here {
                        None => empty += 1,
                        Some(slot) => {
                            seen += 1;
                            if !slot.snap && !slot.entry.is_expired(at) {
                                return Some((&slot.key[..], &slot.entry));
                            }
                        }
                    }
                }
                None
            });
            running.encoder.encode(self.index, &mut keys, out);
        }
        *budget = budget.saturating_sub(seen + empty / 8);
        if let Some(saves) = self.snap.as_deref_mut() {
            saves.walked = i;
        }
        i >= end
    }

    /// One slice of the walker's visit of this database for snapshot
    /// `epoch`: appends to `out` what was kept since the last slice and
    /// the bytes of the next keys, as many as `budget` allows (taken from
    /// it). Returns true once the database is done: then it is disarmed,
    /// its marks cleared. A database not armed for `epoch` (the snapshot
    /// ended meanwhile) is done at once, with nothing.
    pub(super) fn walk_slice(&mut self, epoch: u64, budget: &mut usize, out: &mut Vec<u8>) -> bool {
        let Some(saves) = self
            .snap
            .as_deref_mut()
            .filter(|s| s.running.epoch == epoch)
        else {
            return true;
        };
        if let Some(mut whole) = saves.whole.take() {
            out.append(&mut whole);
            self.disarm();
            return true;
        }
        out.append(&mut saves.saved);
        let running = saves.running.clone();
        if !self.encode_unwalked(&running, budget, out) {
            return false;
        }
        if let Some(mut saves) = self.disarm() {
            out.append(&mut saves.saved);
        }
        true
    }

    /// Before a change of the whole database (FLUSHDB, FLUSHALL, SWAPDB):
    /// encodes it as the running snapshot must see it, if armed, and keeps
    /// nothing per key from then on.
    pub(super) fn keep_whole(&mut self) {
        if self.snap.as_ref().is_none_or(|s| s.whole.is_some()) {
            return;
        }
        let bytes = self.encode_armed();
        if let Some(saves) = self.snap.as_deref_mut() {
            saves.whole = Some(bytes);
        }
    }

    /// The armed database's bytes for the snapshot (its unmarked live
    /// keys, then the kept ones), its marks cleared and its kept bytes
    /// taken; the state stays armed.
    fn encode_armed(&mut self) -> Vec<u8> {
        let Some(running) = self.snap.as_ref().map(|s| s.running.clone()) else {
            return Vec::new();
        };
        if let Some(whole) = self.snap.as_deref_mut().and_then(|s| s.whole.take()) {
            return whole;
        }
        let mut out = Vec::new();
        let walked = self.snap.as_ref().is_some_and(|s| s.walked > 0);
        if walked {
            // Part way through a sliced walk: only what lies ahead.
            let mut unbounded = usize::MAX;
            self.encode_unwalked(&running, &mut unbounded, &mut out);
        } else if !self.map.is_empty() {
            let at = instant(self, running.now);
            let mut keys = self
                .map
                .iter_prefetched(|s| &**s as *const Slot as *const u8)
                .filter(move |s| !s.snap && !s.entry.is_expired(at))
                .map(|s| (&s.key[..], &s.entry));
            running.encoder.encode(self.index, &mut keys, &mut out);
        }
        if let Some(mut saves) = self.disarm() {
            out.append(&mut saves.saved);
        }
        self.snap = Some(KeySaves::new(running));
        out
    }

    /// This database's bytes for snapshot `epoch` (the walker's visit):
    /// as kept and marked if armed for it, otherwise all its live keys at
    /// `now`; disarmed afterwards.
    pub(super) fn encode_for_walk(
        &mut self,
        epoch: u64,
        now: i64,
        encoder: &dyn Encoder,
    ) -> Vec<u8> {
        if self.snap.as_ref().is_some_and(|s| s.running.epoch == epoch) {
            let out = self.encode_armed();
            self.snap = None;
            return out;
        }
        self.disarm();
        let mut out = Vec::new();
        if !self.is_empty() {
            encoder.encode(
                self.index,
                &mut self.iter_prefetched(instant(self, now)),
                &mut out,
            );
        }
        out
    }
}

/// Encodes every database of `dbs` with `encoder`, keys live at `now`
/// (all of them where expired keys are hidden rather than deleted): a
/// walk of shards a lock set holds already, where nothing changes
/// meanwhile.
pub fn encode_dbs<W>(dbs: &super::shards::Dbs<W>, now: i64, encoder: &dyn Encoder) -> Vec<Vec<u8>> {
    dbs.iter()
        .map(|db| {
            let mut out = Vec::new();
            if !db.is_empty() {
                encoder.encode(
                    db.index,
                    &mut db.iter_prefetched(instant(db, now)),
                    &mut out,
                );
            }
            out
        })
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;
    use crate::Rng;
    use crate::keyspace::shards::ShardWalk;
    use crate::keyspace::{Keyspace, SHARDS, Shards, shard_of};
    use crate::value::{Form, Str, Value};

    /// Encodes string keys as `db:key=value@deadline;`.
    struct Lines;

    impl Encoder for Lines {
        fn encode(
            &self,
            db: usize,
            keys: &mut dyn Iterator<Item = (&[u8], &Entry)>,
            out: &mut Vec<u8>,
        ) {
            for (k, e) in keys {
                let Value::Str(s) = &e.value else {
                    panic!("a string")
                };
                let line = format!(
                    "{db}:{}={}@{:?};",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(&s.to_bytes()),
                    e.expire_at()
                );
                out.extend_from_slice(line.as_bytes());
            }
        }
    }

    type Model = BTreeMap<(usize, String), (String, Option<i64>)>;

    fn value(v: &str, at: Option<i64>) -> Entry {
        Entry::with(Value::Str(Str::from_slice(v.as_bytes(), Form::Auto)), at)
    }

    /// One of the changes both walks' tests make to key `k` of database
    /// `db`, mirrored in `model`, at time 2,000 (past the test keys' early
    /// deadlines): 0 the value changed in place through a lookup, 1
    /// replaced through `update`, 2 put with a deadline, 3 removed, 4 its
    /// deadline set to `deadline` if it is live, 5 read (an expired key
    /// goes, nothing else changes). `v` is the new value.
    fn simple_change(
        ks: &Keyspace<()>,
        shards: &mut Shards<'_, ()>,
        model: &mut Model,
        op: usize,
        (db, k): (usize, String),
        v: String,
        deadline: Option<i64>,
    ) {
        let now = 2_000;
        match op {
            0 => {
                let mut shard = shards.lock_key(k.as_bytes());
                let mut d = shard.db(db);
                if let Some(e) = d.get(k.as_bytes(), now) {
                    e.value = Value::Str(Str::from_slice(v.as_bytes(), Form::Auto));
                    model.get_mut(&(db, k)).expect("in the model").0 = v;
                } else {
                    model.remove(&(db, k));
                }
            }
            1 => {
                let mut shard = shards.lock_key(k.as_bytes());
                let mut d = shard.db(db);
                d.update(k.as_bytes(), now, |_| (Some(value(&v, None)), ()));
                model.insert((db, k), (v, None));
            }
            2 => {
                shards
                    .lock_key(k.as_bytes())
                    .db(db)
                    .put(k.as_bytes(), value(&v, Some(9_000)));
                model.insert((db, k), (v, Some(9_000)));
            }
            3 => {
                shards.lock_key(k.as_bytes()).db(db).remove(k.as_bytes());
                model.remove(&(db, k));
            }
            4 => {
                let mut shard = shards.lock_key(k.as_bytes());
                let mut d = shard.db(db);
                if d.get(k.as_bytes(), now).is_some() {
                    assert!(d.set_expire(k.as_bytes(), deadline));
                    model.get_mut(&(db, k)).expect("in the model").1 = deadline;
                } else {
                    model.remove(&(db, k));
                }
            }
            _ => {
                let mut s = Shards::new(ks);
                s.read_only();
                let live = s
                    .lock_key(k.as_bytes())
                    .db(db)
                    .get(k.as_bytes(), now)
                    .is_some();
                if !live {
                    model.remove(&(db, k));
                }
            }
        }
    }

    /// What a snapshot of `model` at `now` holds, as [`Lines`] writes it.
    fn lines_of(model: &Model, now: i64) -> Vec<String> {
        let mut out: Vec<String> = model
            .iter()
            .filter(|(_, (_, at))| at.is_none_or(|at| at > now))
            .map(|((db, k), (v, at))| format!("{db}:{k}={v}@{at:?}"))
            .collect();
        out.sort();
        out
    }

    /// Asserts `got == want`, naming a few differences.
    fn same(got: &[String], want: &[String], what: &str) {
        let missing: Vec<_> = want.iter().filter(|l| !got.contains(l)).take(5).collect();
        let extra: Vec<_> = got.iter().filter(|l| !want.contains(l)).take(5).collect();
        assert!(
            got == want,
            "{what}: missing {missing:?}, not expected {extra:?} ({} against {} keys)",
            got.len(),
            want.len()
        );
    }

    /// The `key=value;` pairs the tests' encoder writes, sorted.
    pub(in crate::keyspace) fn lines(bytes: &[u8]) -> Vec<String> {
        let mut out: Vec<String> = String::from_utf8(bytes.to_vec())
            .expect("utf-8")
            .split_terminator(';')
            .map(str::to_string)
            .collect();
        out.sort();
        out
    }

    /// Every way a key changes, at random, while the walker goes: the
    /// snapshot is the model as it was at the instant, key for key, and
    /// the keyspace is the model as it is now. Run for several seeds and
    /// with the walk stopped half way (the next snapshot must still be
    /// right: no mark left behind).
    #[test]
    fn every_change_keeps_the_old_value_first() {
        for seed in 1..=6u64 {
            let ks = Keyspace::<()>::new(2);
            let mut shards = Shards::new(&ks);
            let mut rng = Rng::new(seed);
            let mut model = Model::new();
            let key = |i: usize| format!("k{i}");
            for i in 0..3000 {
                let db = i % 2;
                let at = (i % 7 == 0).then_some(1_500);
                shards
                    .lock_key(key(i).as_bytes())
                    .db(db)
                    .insert(Bytes::from(key(i)), value("v0", at));
                model.insert((db, key(i)), ("v0".into(), at));
            }
            for round in 0..2 {
                let instant = 1_000 + round;
                assert!(ks.claim_snapshot());
                let epoch = {
                    let _all = shards.lock_all();
                    ks.begin_snapshot(instant, Arc::new(Lines))
                };
                let expected = lines_of(&model, instant);
                let mut bytes = Vec::new();
                // The first round stops its walk half way.
                let walk_to = if round == 0 && seed % 2 == 0 {
                    SHARDS / 2
                } else {
                    SHARDS
                };
                let mut walked = 0;
                let mut n = 0;
                let mut sampled = false;
                while walked < walk_to {
                    if rng.below(3) == Some(0) {
                        let (dbs, _) = ks.walk_shard(walked, epoch, instant, &Lines, WALK_SLICE);
                        dbs.iter().for_each(|d| bytes.extend_from_slice(d));
                        walked += 1;
                        continue;
                    }
                    n += 1;
                    let i = rng.below(3300).expect("some");
                    let k = key(i);
                    let db = rng.below(2).expect("some");
                    let v = format!("r{round}n{n}");
                    // Past the keys' deadline: a lookup deletes them.
                    let now = 2_000;
                    match rng.below(if n % 97 == 0 { 10 } else { 8 }).expect("some") {
                        op @ 0..=5 => {
                            simple_change(&ks, &mut shards, &mut model, op, (db, k), v, None)
                        }
                        6 => {
                            // A rename: gone here, there with the value.
                            let to = key(rng.below(3300).expect("some"));
                            let mut locked = shards.lock_keys([k.as_bytes(), to.as_bytes()]);
                            let moved = locked.db(db, k.as_bytes()).remove(k.as_bytes());
                            let old = model.remove(&(db, k));
                            if let Some(e) = moved
                                && !e.is_expired(now)
                            {
                                locked
                                    .db(db, to.as_bytes())
                                    .insert(Bytes::from(to.clone()), e);
                                model.insert((db, to), old.expect("in the model"));
                            }
                        }
                        7 => {
                            // The expiry cycle.
                            let mut shard = shards.lock_key(k.as_bytes());
                            shard.db(db).expire_sample(5, now, &mut rng);
                            sampled = true;
                        }
                        8 => {
                            let mut all = shards.lock_all();
                            for shard in all.shards() {
                                let (a, b) = shard.dbs.pair_mut(0, 1);
                                a.swap_contents(b, now);
                            }
                            let swapped: Model = std::mem::take(&mut model)
                                .into_iter()
                                .map(|((db, k), v)| ((1 - db, k), v))
                                .collect();
                            model = swapped;
                        }
                        _ => {
                            let mut all = shards.lock_all();
                            for shard in all.shards() {
                                if db == 0 {
                                    shard.dbs[db].clear();
                                } else {
                                    drop(shard.dbs[db].take_all());
                                }
                            }
                            model.retain(|(d, _), _| *d != db);
                        }
                    }
                    // The expiry cycle's deletions, known afterwards.
                    if !std::mem::take(&mut sampled) {
                        continue;
                    }
                    let stale: Vec<(usize, String)> = model
                        .iter()
                        .filter(|(_, (_, at))| at.is_some_and(|at| at <= 2_000))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for (d, k) in stale {
                        let shard = shards.lock_key(k.as_bytes());
                        if !shard.dbs[d]
                            .iter(i64::MIN)
                            .any(|(kk, _)| kk == k.as_bytes())
                        {
                            model.remove(&(d, k));
                        }
                    }
                }
                ks.end_snapshot(epoch);
                if walk_to == SHARDS {
                    same(
                        &lines(&bytes),
                        &expected,
                        &format!("seed {seed} round {round}"),
                    );
                }
                assert!(!ks.snapshot_running());
            }
            // The keyspace is the model, and a snapshot with no change
            // meanwhile says so.
            let bytes = quiet_snapshot(&ks, &mut shards, 0, WALK_SLICE);
            assert_eq!(
                lines(&bytes),
                lines_of(&model, 0),
                "seed {seed}: the keyspace"
            );
        }
    }

    /// A database first used while a snapshot runs (see `Dbs`: databases
    /// 1 and up are made on their first change) is armed as the others
    /// are: what is written to it after the instant stays out.
    #[test]
    fn a_database_made_during_a_snapshot_keeps_its_new_keys_out() {
        let ks = Keyspace::<()>::new(2);
        let mut shards = Shards::new(&ks);
        shards
            .lock_key(b"a")
            .db(0)
            .insert(Bytes::from_static(b"a"), value("v0", None));
        assert_eq!(shards.lock_key(b"a").dbs.made(), 1);
        assert!(ks.claim_snapshot());
        let epoch = {
            let _all = shards.lock_all();
            ks.begin_snapshot(5, Arc::new(Lines))
        };
        shards
            .lock_key(b"a")
            .db(1)
            .insert(Bytes::from_static(b"a"), value("v1", None));
        assert_eq!(shards.lock_key(b"a").dbs.made(), 2);
        let (dbs, _) = ks.walk_shard(shard_of(b"a"), epoch, 5, &Lines, WALK_SLICE);
        ks.end_snapshot(epoch);
        assert_eq!(dbs.len(), 2);
        assert_eq!(lines(&dbs.concat()), ["0:a=v0@None"]);
        // Afterwards it is an ordinary database.
        let bytes = quiet_snapshot(&ks, &mut shards, 6, WALK_SLICE);
        assert_eq!(lines(&bytes), ["0:a=v0@None", "1:a=v1@None"]);
    }

    /// A whole snapshot at `instant` with nothing changing meanwhile,
    /// walked in slices of `slice` keys: its bytes.
    fn quiet_snapshot(
        ks: &Keyspace<()>,
        shards: &mut Shards<'_, ()>,
        instant: i64,
        slice: usize,
    ) -> Vec<u8> {
        assert!(ks.claim_snapshot());
        let epoch = {
            let _all = shards.lock_all();
            ks.begin_snapshot(instant, Arc::new(Lines))
        };
        let mut bytes = Vec::new();
        for i in 0..SHARDS {
            let (dbs, _) = ks.walk_shard(i, epoch, instant, &Lines, slice);
            dbs.iter().for_each(|d| bytes.extend_from_slice(d));
        }
        ks.end_snapshot(epoch);
        bytes
    }

    /// The keys of `want` shards, `per` names each, named `k<n>`.
    fn names_in(want: &[usize], per: usize) -> Vec<Vec<String>> {
        let mut out = vec![Vec::new(); want.len()];
        let mut n = 0u64;
        while out.iter().any(|v| v.len() < per) {
            let name = format!("k{n}");
            n += 1;
            if let Some(at) = want.iter().position(|&s| s == shard_of(name.as_bytes()))
                && out[at].len() < per
            {
                out[at].push(name);
            }
        }
        out
    }

    /// A walk in slices of a few keys, with changes between the slices
    /// to the shard being walked: writes to keys walked and not yet
    /// walked, deletes, new keys, expiry, renames across shards and
    /// databases, SWAPDB, FLUSHDB, and enough new keys at once to grow
    /// the table (every key moves) or deletes of most of them. The
    /// snapshot is the model as it was at the instant; the keyspace, and
    /// the next snapshot, the model as it is now.
    #[test]
    fn a_sliced_walk_sees_the_instant_whatever_changes_between_slices() {
        const HOT: [usize; 3] = [0, 1, 2];
        let pools = names_in(&HOT, 700);
        let all: Vec<&String> = pools.iter().flatten().collect();
        let mut grew_mid_walk = 0;
        for seed in 1..=8u64 {
            let ks = Keyspace::<()>::new(2);
            let mut shards = Shards::new(&ks);
            let mut rng = Rng::new(seed);
            let mut model = Model::new();
            // With odd seeds database 1 starts unmade (see `Dbs`): the
            // first write to it, mid-walk, makes it armed.
            let dbs = if seed % 2 == 1 { 1 } else { 2 };
            for pool in &pools {
                for (i, k) in pool.iter().take(150).enumerate() {
                    for db in 0..dbs {
                        let at = match i % 11 {
                            0 => Some(900),
                            1..=3 => Some(1_500),
                            _ => None,
                        };
                        shards
                            .lock_key(k.as_bytes())
                            .db(db)
                            .insert(Bytes::from(k.clone()), value("v0", at));
                        model.insert((db, k.clone()), ("v0".into(), at));
                    }
                }
            }
            let now = 2_000;
            for round in 0..3 {
                let instant = 1_000 + round;
                assert!(ks.claim_snapshot());
                let epoch = {
                    let _all = shards.lock_all();
                    ks.begin_snapshot(instant, Arc::new(Lines))
                };
                let expected = lines_of(&model, instant);
                // Some walks stop in the middle of a hot shard.
                let stop_at = (round == 0 && seed % 3 == 0).then_some(HOT[seed as usize % 3]);
                let mut bytes = Vec::new();
                let mut n = 0;
                'walk: for shard in 0..SHARDS {
                    let mut walk = ShardWalk::new(shard, epoch, instant);
                    let slice = 1 + rng.below(8).expect("some");
                    let mut steps = 0;
                    while !ks.walk_step(&mut walk, &Lines, slice) {
                        steps += 1;
                        if stop_at == Some(shard) && steps == 5 {
                            break 'walk;
                        }
                        let pool = &pools[HOT.iter().position(|&h| h == shard).expect("hot")];
                        for _ in 0..rng.below(3).expect("some") {
                            n += 1;
                            let v = format!("r{round}n{n}");
                            let k = pool[rng.below(pool.len()).expect("some")].clone();
                            let db = rng.below(2).expect("some");
                            let op = rng.below(if n % 41 == 0 { 13 } else { 11 }).expect("some");
                            match op {
                                0..=5 => simple_change(
                                    &ks,
                                    &mut shards,
                                    &mut model,
                                    op,
                                    (db, k),
                                    v,
                                    Some(8_000),
                                ),
                                6 => {
                                    // RENAME or MOVE, to any shard and database.
                                    let to = all[rng.below(all.len()).expect("some")].clone();
                                    let to_db = rng.below(2).expect("some");
                                    let mut locked =
                                        shards.lock_keys([k.as_bytes(), to.as_bytes()]);
                                    let moved = locked.db(db, k.as_bytes()).remove(k.as_bytes());
                                    let old = model.remove(&(db, k));
                                    if let Some(e) = moved
                                        && !e.is_expired(now)
                                    {
                                        locked
                                            .db(to_db, to.as_bytes())
                                            .insert(Bytes::from(to.clone()), e);
                                        model.insert((to_db, to), old.expect("in the model"));
                                    }
                                }
                                7 | 8 => {
                                    // Many new keys at once: the table grows.
                                    let mut shard = shards.lock_key(k.as_bytes());
                                    let d = &mut shard.dbs[db];
                                    let buckets = d.map.num_buckets();
                                    let walked = d.snap.as_ref().is_some_and(|s| s.walked > 0);
                                    let mut d = shard.db(db);
                                    let add = 1 + rng.below(250).expect("some");
                                    for _ in 0..add {
                                        let k = pool[rng.below(pool.len()).expect("some")].clone();
                                        d.put(k.as_bytes(), value(&v, None));
                                        model.insert((db, k), (v.clone(), None));
                                    }
                                    if walked && d.map.num_buckets() != buckets {
                                        grew_mid_walk += 1;
                                    }
                                }
                                9 => {
                                    // Most keys deleted at once.
                                    let mut shard = shards.lock_key(k.as_bytes());
                                    let mut d = shard.db(db);
                                    for k in pool.iter().filter(|_| rng.below(5) != Some(0)) {
                                        d.remove(k.as_bytes());
                                        model.remove(&(db, k.clone()));
                                    }
                                }
                                10 => {
                                    // The expiry cycle, its deletions known afterwards.
                                    shards
                                        .lock_key(k.as_bytes())
                                        .db(db)
                                        .expire_sample(20, now, &mut rng);
                                    let shard = shards.lock_key(k.as_bytes());
                                    model.retain(|(d, key), (_, at)| {
                                        *d != db
                                            || shard_of(key.as_bytes()) != shard_of(k.as_bytes())
                                            || at.is_none_or(|at| at > now)
                                            || shard.dbs[db]
                                                .map
                                                .find(hash_key(key.as_bytes()), |s| {
                                                    s.key[..] == *key.as_bytes()
                                                })
                                                .is_some()
                                    });
                                }
                                11 => {
                                    let mut all = shards.lock_all();
                                    for shard in all.shards() {
                                        let (a, b) = shard.dbs.pair_mut(0, 1);
                                        a.swap_contents(b, now);
                                    }
                                    model = std::mem::take(&mut model)
                                        .into_iter()
                                        .map(|((db, k), v)| ((1 - db, k), v))
                                        .collect();
                                }
                                _ => {
                                    let mut all = shards.lock_all();
                                    for shard in all.shards() {
                                        shard.dbs[db].clear();
                                    }
                                    model.retain(|(d, _), _| *d != db);
                                }
                            }
                        }
                    }
                    walk.into_parts()
                        .iter()
                        .for_each(|d| bytes.extend_from_slice(d));
                }
                ks.end_snapshot(epoch);
                if stop_at.is_none() {
                    same(
                        &lines(&bytes),
                        &expected,
                        &format!("seed {seed} round {round}"),
                    );
                }
                assert!(!ks.snapshot_running());
            }
            // No mark left behind: a snapshot with nothing changing is
            // the keyspace, which is the model.
            let bytes = quiet_snapshot(&ks, &mut shards, now, 3);
            same(
                &lines(&bytes),
                &lines_of(&model, now),
                &format!("seed {seed}: the keyspace"),
            );
        }
        assert!(grew_mid_walk > 0, "no table grew part way through a walk");
    }
}

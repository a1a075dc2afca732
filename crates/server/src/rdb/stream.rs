//! Snapshots written while they are walked, without stopping the server:
//! [`fix`] fixes the instant under every shard lock (ember-store's
//! `keyspace/snapshot.rs` says how the shards keep to it), then [`walk`]
//! visits the shards one at a time, each encoded a slice of keys per hold
//! of its lock (with the old values commands kept of the keys they changed
//! first), and hands the bytes out between shards. The file formats around the bytes are
//! [`write_rdb`] (an RDB file: BGSAVE, SAVE, a replica's full resync, an
//! AOF base with the RDB preamble) and the AOF's commands (`aof::rewrite`).
//!
//! A lock set that already holds every shard (EXEC, DEBUG RELOAD, or a
//! foreground save while another snapshot runs) walks them in place with
//! [`walk_held`] instead: nothing else runs meanwhile.

use std::io::{self, Write};
use std::sync::Arc;

use store::keyspace::{Encoder, Entry, encode_dbs};
use store::rdb::{PLAIN_THRESHOLD, Writer, opcode};

use super::{Aux, write::header};
use crate::db::{Keyspace, SHARDS, Shards};

/// RDB entries, as Redis 7.0 writes them.
#[derive(Debug)]
pub(crate) struct RdbEncoder;

impl Encoder for RdbEncoder {
    fn encode(
        &self,
        _db: usize,
        keys: &mut dyn Iterator<Item = (&[u8], &Entry)>,
        out: &mut Vec<u8>,
    ) {
        // A fragment: the file's writer checksums it when it joins it.
        let mut w = Writer::fragment(out, PLAIN_THRESHOLD);
        // Writing into a Vec does not fail.
        for (key, entry) in keys {
            let _ = w.entry(key, entry.expire_at(), &entry.value);
        }
        let _ = w.flush();
    }
}

/// A snapshot whose instant is fixed, for [`walk`] (or, with epoch 0,
/// [`walk_held`]).
pub(crate) struct Fixed {
    epoch: u64,
    /// The instant's clock: keys expired by then are left out.
    now: i64,
    /// Keys, and keys with a deadline, per database at the instant (the
    /// RESIZEDB hints; which databases have keys).
    pub(crate) sizes: Vec<(usize, usize)>,
    encoder: Arc<dyn Encoder>,
}

impl std::fmt::Debug for Fixed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixed")
            .field("epoch", &self.epoch)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Fixed {
    /// Its epoch (see `Keyspace::end_snapshot`).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Keys at the instant, in every database.
    pub(crate) fn keys(&self) -> usize {
        self.sizes.iter().map(|s| s.0).sum()
    }
}

/// Counts the keys of every database under the locks `shards` holds or
/// takes.
fn sizes(shards: &mut Shards<'_>) -> Vec<(usize, usize)> {
    let mut sizes = vec![(0usize, 0usize); shards.databases()];
    let mut all = shards.lock_all();
    for shard in all.shards() {
        for (size, db) in sizes.iter_mut().zip(shard.dbs.iter()) {
            size.0 += db.len();
            size.1 += db.volatile_len();
        }
    }
    sizes
}

/// Claims a snapshot and fixes its instant under every shard lock (those
/// `shards` holds, inside EXEC), running `under_lock` at that instant (so
/// that, say, a replication offset matches the data exactly). `None`,
/// with nothing done, when another snapshot runs: one at a time. Never
/// waits for one. The caller must [`walk`] the result (which ends it) or
/// end it with `Keyspace::end_snapshot` (ending it twice is harmless).
pub(crate) fn fix<T>(
    shards: &mut Shards<'_>,
    encoder: Arc<dyn Encoder>,
    under_lock: impl FnOnce() -> T,
) -> Option<(Fixed, T)> {
    let ks = shards.keyspace();
    if !ks.claim_snapshot() {
        return None;
    }
    let now = crate::server::now_ms();
    let mut sizes = vec![(0usize, 0usize); shards.databases()];
    let (epoch, extra) = {
        let mut all = shards.lock_all();
        for shard in all.shards() {
            for (size, db) in sizes.iter_mut().zip(shard.dbs.iter()) {
                size.0 += db.len();
                size.1 += db.volatile_len();
            }
        }
        (ks.begin_snapshot(now, encoder.clone()), under_lock())
    };
    Some((
        Fixed {
            epoch,
            now,
            sizes,
            encoder,
        },
        extra,
    ))
}

/// Like [`fix`], waiting (a few milliseconds at a time) for a running
/// snapshot to end: for a thread of its own (a replica's full resync),
/// never for one that holds shard locks.
pub(crate) fn fix_waiting<T>(
    shards: &mut Shards<'_>,
    encoder: Arc<dyn Encoder>,
    under_lock: impl FnOnce() -> T,
) -> (Fixed, T) {
    let mut under_lock = Some(under_lock);
    loop {
        if let Some((fixed, Some(extra))) =
            fix(shards, encoder.clone(), || under_lock.take().map(|f| f()))
        {
            return (fixed, extra);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Visits every shard of the snapshot `fixed` in order, giving each one's
/// bytes (per database) to `each` with no lock held, then ends the
/// snapshot. `pace` runs after each shard with its count of keys (for
/// `rdb-key-save-delay`) and returns false to stop the walk (shutdown,
/// cancellation), which then fails with `Interrupted`.
pub(crate) fn walk(
    ks: &Keyspace,
    fixed: &Fixed,
    pace: &mut dyn FnMut(usize) -> bool,
    each: &mut dyn FnMut(Vec<Vec<u8>>) -> io::Result<()>,
) -> io::Result<()> {
    let slice = walk_slice();
    let result = (|| {
        for i in 0..SHARDS {
            let (parts, keys) =
                ks.walk_shard(i, fixed.epoch, fixed.now, fixed.encoder.as_ref(), slice);
            each(parts)?;
            if !pace(keys) {
                return Err(stopped());
            }
        }
        Ok(())
    })();
    ks.end_snapshot(fixed.epoch);
    result
}

/// Keys the walker encodes per hold of a shard's lock: ember-store's
/// `WALK_SLICE`, unless the environment variable `EMBER_SNAPSHOT_SLICE`
/// says otherwise. Not a setting (Redis has none): `benches/bgsave.sh`
/// sets it huge to compare with a walk that holds a shard's lock for the
/// whole shard.
fn walk_slice() -> usize {
    static SLICE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SLICE.get_or_init(|| {
        std::env::var("EMBER_SNAPSHOT_SLICE")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(store::keyspace::WALK_SLICE)
    })
}

/// The error of a walk stopped by its `pace`.
pub(crate) fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "the snapshot was stopped")
}

/// A walk over shards `shards` holds already (every one of them): each is
/// encoded in place with `encoder`, as of `now`.
pub(crate) fn walk_held(
    shards: &mut Shards<'_>,
    encoder: &dyn Encoder,
    now: i64,
    each: &mut dyn FnMut(Vec<Vec<u8>>) -> io::Result<()>,
) -> io::Result<()> {
    for i in 0..SHARDS {
        let parts = encode_dbs(&shards.lock_shard(i).dbs, now, encoder);
        each(parts)?;
    }
    Ok(())
}

/// A foreground snapshot's walk: the instant fixed without stopping the
/// server when no other snapshot runs; otherwise (and inside EXEC) under
/// every shard lock, held for the whole walk. `run` gets what
/// `under_lock` gave at the instant, the instant's sizes and the walk.
pub(crate) fn foreground<T>(
    shards: &mut Shards<'_>,
    encoder: Arc<dyn Encoder>,
    under_lock: impl FnOnce() -> T,
    pace: &mut dyn FnMut(usize) -> bool,
    run: impl FnOnce(&T, &[(usize, usize)], &mut dyn Walker) -> io::Result<()>,
) -> io::Result<T> {
    let mut under_lock = Some(under_lock);
    let mut at_instant = || under_lock.take().map(|f| f());
    if shards.held().is_none() {
        if let Some((fixed, extra)) = fix(shards, encoder.clone(), &mut at_instant) {
            let ks = shards.keyspace();
            let epoch = fixed.epoch;
            let result = match &extra {
                Some(extra) => {
                    let mut walker = |each: &mut dyn FnMut(Vec<Vec<u8>>) -> io::Result<()>| {
                        walk(ks, &fixed, pace, each)
                    };
                    run(extra, &fixed.sizes, &mut walker)
                }
                None => Err(stopped()),
            };
            // Ended by the walk, unless `run` failed before it.
            ks.end_snapshot(epoch);
            result?;
            return extra.ok_or_else(stopped);
        }
        shards.hold_all();
        let result = held(shards, encoder, &mut at_instant, run);
        drop(shards.release());
        return result?.ok_or_else(stopped);
    }
    held(shards, encoder, &mut at_instant, run)?.ok_or_else(stopped)
}

fn held<T>(
    shards: &mut Shards<'_>,
    encoder: Arc<dyn Encoder>,
    under_lock: &mut dyn FnMut() -> Option<T>,
    run: impl FnOnce(&T, &[(usize, usize)], &mut dyn Walker) -> io::Result<()>,
) -> io::Result<Option<T>> {
    let now = crate::server::now_ms();
    let sizes = sizes(shards);
    let Some(extra) = under_lock() else {
        return Ok(None);
    };
    let mut walker = |each: &mut dyn FnMut(Vec<Vec<u8>>) -> io::Result<()>| {
        walk_held(shards, encoder.as_ref(), now, each)
    };
    run(&extra, &sizes, &mut walker)?;
    Ok(Some(extra))
}

/// A walk, as the file formats take it: it gives each shard's bytes to
/// the function it is given.
pub(crate) trait Walker {
    /// Walks every shard.
    fn walk(&mut self, each: &mut dyn FnMut(Vec<Vec<u8>>) -> io::Result<()>) -> io::Result<()>;
}

impl<F> Walker for F
where
    F: FnMut(&mut dyn FnMut(Vec<Vec<u8>>) -> io::Result<()>) -> io::Result<()>,
{
    fn walk(&mut self, each: &mut dyn FnMut(Vec<Vec<u8>>) -> io::Result<()>) -> io::Result<()> {
        self(each)
    }
}

/// What [`walk_by_database`] hands on, in the order a file takes it.
#[derive(Debug)]
pub(crate) enum Part<'a> {
    /// The keys of database `db` follow.
    Select(usize),
    /// Encoded keys of the database last selected.
    Bytes(&'a [u8]),
    /// One shard is done (a place to flush what is buffered).
    ShardDone,
}

/// Walks the shards and orders their bytes by database, as both file
/// formats group keys: the first database with keys as the shards come,
/// then every other's (kept, encoded, until the walk ends). `sizes` are
/// the instant's counts.
pub(crate) fn walk_by_database(
    sizes: &[(usize, usize)],
    walker: &mut dyn Walker,
    out: &mut dyn FnMut(Part<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let first = sizes.iter().position(|s| s.0 > 0);
    if let Some(db) = first {
        out(Part::Select(db))?;
    }
    let mut later: Vec<Vec<u8>> = vec![Vec::new(); sizes.len()];
    walker.walk(&mut |parts| {
        for (db, bytes) in parts.into_iter().enumerate() {
            if bytes.is_empty() {
                continue;
            }
            if Some(db) == first {
                out(Part::Bytes(&bytes))?;
            } else if let Some(l) = later.get_mut(db) {
                l.extend_from_slice(&bytes);
            }
        }
        out(Part::ShardDone)
    })?;
    for (db, bytes) in later.iter().enumerate() {
        if !bytes.is_empty() {
            out(Part::Select(db))?;
            out(Part::Bytes(bytes))?;
        }
    }
    Ok(())
}

/// Writes an RDB file into `out` from a walk of RDB-encoded shards
/// ([`RdbEncoder`]): the header and `aux`, the databases as
/// [`walk_by_database`] orders them, then the trailer. `sizes` are the
/// instant's counts.
pub(crate) fn write_rdb(
    aux: &Aux,
    sizes: &[(usize, usize)],
    walker: &mut dyn Walker,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut w = Writer::new(out, PLAIN_THRESHOLD);
    header(&mut w, aux)?;
    walk_by_database(sizes, walker, &mut |part| match part {
        Part::Select(db) => w.select_db(db, sizes[db].0, sizes[db].1),
        Part::Bytes(bytes) => w.raw(bytes),
        // What is buffered leaves now, between shards.
        Part::ShardDone => w.flush(),
    })?;
    w.byte(opcode::EOF)?;
    w.finish()
}

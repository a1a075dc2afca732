//! Point-in-time snapshots without stopping the world.
//!
//! A snapshot (BGSAVE, an AOF rewrite's base, a replica's full resync)
//! stands at one instant, fixed while every shard is locked
//! ([`Keyspace::begin_snapshot`]): that costs one pass over the shard
//! locks, whatever the size of the data. From then on the snapshot's
//! walker visits the shards one at a time, encoding each under its own
//! lock ([`Keyspace::visit_for_snapshot`]), and commands run meanwhile.
//! Whoever locks a shard first after the instant, before the walker has
//! been there, to change it (a write, EXEC, a script, the expiry cycle;
//! reads are marked `Shards::read_only` and skip this), encodes it first,
//! as it stands, with the snapshot's [`Encoder`]: the shard's part is then
//! bytes kept beside it until the walker collects them. So every shard is
//! encoded exactly once, as it was at the instant, and the snapshot is
//! that instant's (Dragonfly's fork-less snapshot, with a shard as its
//! unit where Dragonfly has a bucket).
//!
//! Memory stays bounded by what is encoded ahead of the walker, which is
//! the encoded form (a few bytes a key, not a copy of the entries); a
//! client waits at most for the encoding of one shard (about a thousandth
//! of the keyspace) the first time it touches it. When no snapshot runs,
//! locking a shard costs one load and one predictable branch more.
//!
//! **Architecture Invariant:** a shard is part of a snapshot exactly as
//! it was at the snapshot's instant (but for keys whose deadline passes
//! meanwhile, which a read may delete): it is encoded before anything that
//! may change it runs, and never twice.

use std::sync::Arc;

use super::Entry;

/// How a snapshot turns keys into bytes (an RDB file's entries, an AOF's
/// commands). Called under a shard's lock, by the walker or by whichever
/// command locks a shard first: it must not lock anything of the
/// keyspace.
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

/// What a shard is to the snapshot's walker ([`super::Shard::snapshot_view`]).
#[derive(Debug)]
pub enum ShardView<'s, W> {
    /// Encoded, per database, by a command that locked the shard before
    /// the walker came.
    Encoded(Vec<Vec<u8>>),
    /// The shard as it is, unchanged since the snapshot's instant: the
    /// walker encodes it under this lock.
    Live(&'s super::shards::Dbs<W>),
}

/// Encodes every database of `dbs` with `encoder`, keys live at `now`
/// (all of them where expired keys are hidden rather than deleted: a
/// replica, or a master feeding replicas, whose stream may still make
/// them live).
pub fn encode_dbs<W>(dbs: &super::shards::Dbs<W>, now: i64, encoder: &dyn Encoder) -> Vec<Vec<u8>> {
    dbs.iter()
        .enumerate()
        .map(|(i, db)| {
            let mut out = Vec::new();
            if !db.is_empty() {
                let at = if db.hide_expired { i64::MIN } else { now };
                encoder.encode(i, &mut db.iter(at), &mut out);
            }
            out
        })
        .collect()
}

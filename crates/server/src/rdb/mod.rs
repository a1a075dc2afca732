//! RDB files: version 10, as Redis 7.0 writes them.
//!
//! [`write`] turns a [`Snapshot`] of the keyspace into a file Redis 7.0
//! loads; [`read`] parses a whole file held in memory into [`Loaded`], and
//! [`install`] swaps it in for the keyspace. `disk.rs` adds the file
//! handling SAVE, BGSAVE and startup need (temporary file, fsync, rename).
//! The values inside, their encodings and DUMP payloads are `store::rdb`'s;
//! this module is the file around them and the keyspace's side.
//!
//! Module aux data and Redis 7.0 release candidates' function records are
//! refused: a file Ember cannot hold completely is an error, never loaded
//! in part. Function libraries (`FUNCTION2` records) are read and written.

mod disk;
mod read;
pub(crate) mod stream;
mod write;

use bytes::Bytes;
use store::rdb::{RdbError, printable};

use crate::db::{Entry, Keyspace, SHARDS, Shards};

pub(crate) use disk::{Persistence, file_path, load_file};
#[cfg(test)]
pub(crate) use read::read;
pub(crate) use read::read_with;
pub(crate) use write::stream_snapshot;
#[cfg(test)]
pub(crate) use write::write;

/// The `redis-ver` aux field: the Redis release whose files ours match.
pub(crate) const REDIS_VER: &str = "7.0.15";

/// Why a file cannot be loaded. Nothing in the keyspace has changed when
/// one of these is returned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// The data does not decode.
    #[error(transparent)]
    Rdb(#[from] RdbError),
    /// The same key twice in one database (Redis aborts too).
    #[error("RDB has duplicated key '{key}' in DB {db}")]
    DuplicateKey {
        /// The key, printable.
        key: String,
        /// Its database.
        db: usize,
    },
    /// A database index this server does not have.
    #[error(
        "the RDB file has data in DB {db}, but this server is configured with {databases} databases"
    )]
    DbIndex {
        /// The index in the file.
        db: usize,
        /// `databases`.
        databases: usize,
    },
    /// The file could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A copy of every database, taken under all shard locks (DEBUG DIGEST,
/// tests).
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Keys and entries, index = database number.
    pub(crate) dbs: Vec<Vec<(Bytes, Entry)>>,
}

impl Snapshot {
    /// A copy of every live key as of one instant, with `under_lock` run
    /// at that instant, made under every shard lock (those `shards` holds
    /// inside EXEC): the world stops for the copy. For DEBUG DIGEST and
    /// tests; saves stream instead (`stream.rs`). Keys past their deadline
    /// but not yet reclaimed are left out: they no longer exist for any
    /// client.
    pub(crate) fn take<T>(
        shards: &mut Shards<'_>,
        under_lock: impl FnOnce() -> T,
    ) -> (Snapshot, T) {
        let now = crate::server::now_ms();
        let own = shards.held().is_none();
        if own {
            shards.hold_all();
        }
        let extra = under_lock();
        let mut dbs: Vec<Vec<(Bytes, Entry)>> = vec![Vec::new(); shards.databases()];
        for i in 0..SHARDS {
            let shard = shards.lock_shard(i);
            for (out, db) in dbs.iter_mut().zip(shard.dbs.iter()) {
                let at = if db.hide_expired { i64::MIN } else { now };
                out.extend(
                    db.iter(at)
                        .map(|(k, e)| (Bytes::copy_from_slice(k), e.clone())),
                );
            }
        }
        if own {
            drop(shards.release());
        }
        (Snapshot { dbs }, extra)
    }

    /// Number of keys in every database.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.dbs.iter().map(Vec::len).sum()
    }
}

/// Aux fields for the header.
#[derive(Debug, Clone, Default)]
pub(crate) struct Aux {
    /// `repl-id`: the replication id the data belongs to.
    pub(crate) repl_id: Option<String>,
    /// `repl-offset`: the replication offset the data corresponds to.
    pub(crate) repl_offset: Option<i64>,
    /// `repl-stream-db`: the database the replication stream last selected.
    pub(crate) repl_stream_db: Option<i64>,
    /// `aof-base` 1: the file is the base of an append-only file.
    pub(crate) aof_base: bool,
    /// The function libraries' codes, saved as `FUNCTION2` records after
    /// the aux fields, as Redis 7.0 saves them.
    pub(crate) functions: Vec<Bytes>,
}

/// A parsed file.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Keys by database, in the order the file has them; each database
    /// appears once.
    pub(crate) dbs: Vec<(usize, Vec<(Bytes, Entry)>)>,
    /// Every aux field, in file order.
    pub(crate) aux: Vec<(Bytes, Bytes)>,
    /// `repl-id`, if it is a valid one (40 characters).
    pub(crate) repl_id: Option<String>,
    /// `repl-offset`.
    pub(crate) repl_offset: Option<i64>,
    /// Where the file's RDB data ends (after the checksum): an old-style
    /// AOF continues with commands there.
    pub(crate) end: usize,
    /// The function libraries' codes (`FUNCTION2` records), in file order.
    pub(crate) functions: Vec<Vec<u8>>,
}

impl Loaded {
    /// `repl-stream-db`: the database the master's stream had selected when
    /// the file was written (0 if the file does not say).
    pub(crate) fn stream_db(&self) -> usize {
        self.aux
            .iter()
            .find(|(k, _)| &k[..] == b"repl-stream-db")
            .and_then(|(_, v)| resp::parse_int(v))
            .and_then(|db| usize::try_from(db).ok())
            .unwrap_or(0)
    }

    /// Number of keys in every database.
    pub(crate) fn len(&self) -> usize {
        self.dbs.iter().map(|(_, keys)| keys.len()).sum()
    }

    /// Brings the sets just read to the encodings Redis would load them
    /// with under `set-max-intset-entries` = `max_intset`: the reader
    /// builds them under the default, so only another limit changes
    /// anything.
    pub(crate) fn fit_sets(&mut self, max_intset: usize) {
        if max_intset == store::set::MAX_INTSET_ENTRIES {
            return;
        }
        for (_, keys) in &mut self.dbs {
            for (_, entry) in keys {
                if let store::value::Value::Set(set) = &mut entry.value {
                    set.fit_loaded(max_intset);
                }
            }
        }
    }

    /// Number of keys [`install`] would leave out as expired.
    pub(crate) fn expired(&self, drop_expired_before: Option<i64>) -> usize {
        self.dbs
            .iter()
            .flat_map(|(_, keys)| keys)
            .filter(|(_, e)| is_expired(e, drop_expired_before))
            .count()
    }
}

/// Replaces the whole keyspace with `loaded` atomically (all shards
/// locked: flush every db, then insert), dropping keys whose deadline is
/// before `drop_expired_before` when that is `Some` (a master drops them,
/// a replica keeps them). Fails, changing nothing, if a database index is
/// not below the number of databases.
pub(crate) fn install(
    shards: &mut Shards<'_>,
    loaded: Loaded,
    drop_expired_before: Option<i64>,
) -> Result<(), LoadError> {
    install_taking(shards, loaded, drop_expired_before, None)
}

/// [`install`], handing the databases it replaces to `taken` (with their
/// number of keys) instead of freeing them, when given: a replica's flush
/// for the lazy-free thread (`replica-lazy-flush`).
pub(crate) fn install_taking(
    shards: &mut Shards<'_>,
    loaded: Loaded,
    drop_expired_before: Option<i64>,
    taken: Option<&mut (Vec<store::keyspace::Contents>, usize)>,
) -> Result<(), LoadError> {
    let databases = shards.databases();
    if let Some(&(db, _)) = loaded.dbs.iter().find(|(db, _)| *db >= databases) {
        return Err(LoadError::DbIndex { db, databases });
    }
    let mut locked = shards.lock_all();
    match taken {
        Some((contents, keys)) => {
            for shard in locked.shards() {
                *keys += shard.dbs.iter().map(crate::db::Db::len).sum::<usize>();
                contents.extend(shard.dbs.iter_mut().map(crate::db::Db::take_all));
            }
        }
        None => {
            for shard in locked.shards() {
                shard.dbs.iter_mut().for_each(crate::db::Db::clear);
            }
        }
    }
    for (db, keys) in loaded.dbs {
        // Tables sized once, not grown (and rehashed) step by step.
        let per_shard = keys.len() / SHARDS;
        for shard in locked.shards() {
            shard.dbs[db].reserve(per_shard + per_shard / 4 + 1);
        }
        // One hash per key finds both its shard and its slot. A large
        // database is filled on two threads, each with half of the shards.
        let mut halves: [Vec<(u64, Bytes, Entry)>; 2] = Default::default();
        for (key, entry) in keys {
            if is_expired(&entry, drop_expired_before) {
                continue;
            }
            let hash = crate::db::hash_key(&key);
            let half = usize::from(Keyspace::shard_of_hash(hash) >= SHARDS / 2);
            halves[half].push((hash, key, entry));
        }
        let mut all: Vec<&mut crate::db::Shard> = locked.shards().collect();
        let (low, high) = all.split_at_mut(SHARDS / 2);
        let [low_keys, high_keys] = halves;
        let filled = if low_keys.len() + high_keys.len() < 10_000 {
            fill(low, 0, db, low_keys).and_then(|()| fill(high, SHARDS / 2, db, high_keys))
        } else {
            std::thread::scope(|s| {
                let other = s.spawn(move || fill(low, 0, db, low_keys));
                let mine = fill(high, SHARDS / 2, db, high_keys);
                let theirs = other.join().unwrap_or(Err(Bytes::new()));
                theirs.and(mine)
            })
        };
        drop(all);
        if let Err(key) = filled {
            // Redis refuses such a file; nothing of it stays.
            for shard in locked.shards() {
                shard.dbs.iter_mut().for_each(crate::db::Db::clear);
            }
            return Err(LoadError::DuplicateKey {
                key: printable(&key),
                db,
            });
        }
    }
    // Clients blocked on a key that is now a list get it, as after SWAPDB.
    crate::blocking::serve_ready(&mut locked, crate::server::now_ms());
    Ok(())
}

/// Inserts `entries` into database `db` of `shards`, which are the shards
/// numbered from `first`; gives back a key that is there twice.
fn fill(
    shards: &mut [&mut crate::db::Shard],
    first: usize,
    db: usize,
    entries: Vec<(u64, Bytes, Entry)>,
) -> Result<(), Bytes> {
    for (hash, key, entry) in entries {
        let shard = &mut shards[Keyspace::shard_of_hash(hash) - first];
        shard.dbs[db].insert_new(hash, key, entry)?;
    }
    Ok(())
}

/// Whether [`install`] leaves `entry` out.
fn is_expired(entry: &Entry, drop_expired_before: Option<i64>) -> bool {
    matches!((entry.expire_at(), drop_expired_before), (Some(at), Some(before)) if at < before)
}

#[cfg(test)]
mod tests;

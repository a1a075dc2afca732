//! RDB, Redis's snapshot format: version 10, as Redis 7.0 writes it.
//!
//! [`write`] turns a [`Snapshot`] of the keyspace into a file Redis 7.0
//! loads; [`read`] parses a whole file held in memory into [`Loaded`], and
//! [`install`] swaps it in for the keyspace. `disk.rs` adds the file
//! handling SAVE, BGSAVE and startup need (temporary file, fsync, rename).
//!
//! What is read: every version from 1 to 10, every encoding Redis 7.0 or an
//! older Redis writes for strings and lists (plain lists, ziplists,
//! quicklists of ziplists, quicklists of listpacks with packed and plain
//! nodes). Sets, hashes and sorted sets, in all their encodings (intset,
//! zipmap, ziplist, listpack), are decoded and validated, then refused by
//! name, because the keyspace cannot hold them yet; so are streams, module
//! values, module aux data and function libraries. Nothing is ever dropped
//! silently: a file Ember cannot hold completely is an error.
//!
//! What is written: exactly what Redis 7.0 writes for the same data
//! (integer-encoded and LZF-compressed strings, lists as quicklists of
//! listpacks split the way `list-max-listpack-size -2` splits them), with a
//! CRC64 trailer.
//!
//! This module does no I/O of its own beyond the `Write` it is handed, and
//! reading never panics, whatever the input: every length is checked
//! against the bytes that are really there before anything is allocated.
//!
//! Crates: the checksum is the `crc` crate's `CRC_64_REDIS` (the same
//! polynomial and reflection as Redis's `crc64.c`, table-driven). LZF is our
//! own ~150 lines in `lzf.rs`: the one LZF crate on crates.io (`lzf`) is
//! marked deprecated, and the format is small enough to own, test and fuzz.

mod crc;
mod disk;
mod intset;
mod listpack;
mod lzf;
mod read;
mod write;
mod ziplist;
mod zipmap;

use bytes::Bytes;

use crate::db::{Entry, Keyspace, SHARDS, Shards};

pub(crate) use disk::{Persistence, file_path, load_file};
pub(crate) use read::read;
pub(crate) use write::{dump, stream_snapshot, write};

/// The version [`write`] produces and the newest [`read`] accepts.
pub(crate) const RDB_VERSION: u32 = 10;

/// The `redis-ver` aux field: the Redis release whose files ours match.
pub(crate) const REDIS_VER: &str = "7.0.15";

/// Opcodes: bytes that stand where a value type would and mean something
/// else.
mod opcode {
    pub(super) const FUNCTION2: u8 = 0xF5;
    pub(super) const FUNCTION: u8 = 0xF6;
    pub(super) const MODULE_AUX: u8 = 0xF7;
    pub(super) const IDLE: u8 = 0xF8;
    pub(super) const FREQ: u8 = 0xF9;
    pub(super) const AUX: u8 = 0xFA;
    pub(super) const RESIZEDB: u8 = 0xFB;
    pub(super) const EXPIRETIME_MS: u8 = 0xFC;
    pub(super) const EXPIRETIME: u8 = 0xFD;
    pub(super) const SELECTDB: u8 = 0xFE;
    pub(super) const EOF: u8 = 0xFF;
}

/// Value types, Redis's `RDB_TYPE_*`.
mod kind {
    pub(super) const STRING: u8 = 0;
    pub(super) const LIST: u8 = 1;
    pub(super) const SET: u8 = 2;
    pub(super) const ZSET: u8 = 3;
    pub(super) const HASH: u8 = 4;
    pub(super) const ZSET_2: u8 = 5;
    pub(super) const MODULE: u8 = 6;
    pub(super) const MODULE_2: u8 = 7;
    pub(super) const HASH_ZIPMAP: u8 = 9;
    pub(super) const LIST_ZIPLIST: u8 = 10;
    pub(super) const SET_INTSET: u8 = 11;
    pub(super) const ZSET_ZIPLIST: u8 = 12;
    pub(super) const HASH_ZIPLIST: u8 = 13;
    pub(super) const LIST_QUICKLIST: u8 = 14;
    pub(super) const STREAM_LISTPACKS: u8 = 15;
    pub(super) const HASH_LISTPACK: u8 = 16;
    pub(super) const ZSET_LISTPACK: u8 = 17;
    pub(super) const LIST_QUICKLIST_2: u8 = 18;
    pub(super) const STREAM_LISTPACKS_2: u8 = 19;
    /// Redis 7.2 (RDB 11): never in a file we accept, but harmless to read.
    pub(super) const SET_LISTPACK: u8 = 20;
    /// Redis 7.2 (RDB 11).
    pub(super) const STREAM_LISTPACKS_3: u8 = 21;
}

/// Quicklist node containers (RDB type 18).
mod container {
    /// One element stored as is.
    pub(super) const PLAIN: u64 = 1;
    /// A listpack of elements.
    pub(super) const PACKED: u64 = 2;
}

/// Why a file cannot be loaded. Nothing in the keyspace has changed when
/// one of these is returned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RdbError {
    /// The data ends in the middle of something.
    #[error("unexpected end of RDB data at offset {0}")]
    Truncated(usize),
    /// The file does not start with `REDIS`.
    #[error("wrong signature trying to load DB from file: not an RDB file")]
    Signature,
    /// A version we cannot read (Redis's wording).
    #[error("Can't handle RDB format version {0}")]
    Version(u32),
    /// The CRC64 trailer does not match the contents.
    #[error(
        "RDB checksum mismatch: the file says {stored:016x}, its contents give {computed:016x}"
    )]
    Checksum {
        /// The trailer.
        stored: u64,
        /// What the contents give.
        computed: u64,
    },
    /// Bytes that do not decode.
    #[error("corrupt RDB data at offset {offset}: {what}")]
    Corrupt {
        /// Where the bad item starts in the file.
        offset: usize,
        /// What is wrong with it.
        what: String,
    },
    /// A value type this server cannot even decode (streams, modules).
    #[error("unsupported RDB type {ty} ({name}) for key '{key}'")]
    UnsupportedType {
        /// The RDB type byte.
        ty: u8,
        /// What it holds.
        name: &'static str,
        /// The key, printable.
        key: String,
    },
    /// A value that decodes but that the keyspace cannot hold yet.
    #[error("key '{key}' holds a {kind}; this server stores strings and lists only")]
    UnsupportedValue {
        /// The key, printable.
        key: String,
        /// Its type, as TYPE names it.
        kind: &'static str,
    },
    /// Data outside the keyspace that this server cannot keep (module aux
    /// data, function libraries).
    #[error("{0}")]
    Unsupported(String),
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

/// Why RESTORE refuses a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PayloadError {
    /// Shorter than its trailer, from a newer RDB version, or a checksum
    /// that does not match (Redis's wording).
    #[error("ERR DUMP payload version or checksum are wrong")]
    Trailer,
    /// The value does not decode, or is an empty collection.
    #[error("ERR Bad data format")]
    BadFormat,
    /// A valid value of a type this server cannot hold yet.
    #[error(
        "ERR Bad data format: the payload holds a {0}, and this server stores strings and lists only"
    )]
    Unsupported(&'static str),
}

/// The value in a DUMP payload (see [`dump`]), its trailer checked the
/// way Redis's `verifyDumpPayload` checks it.
pub(crate) fn restore(payload: &[u8]) -> Result<crate::value::Value, PayloadError> {
    let Some(body_len) = payload.len().checked_sub(10) else {
        return Err(PayloadError::Trailer);
    };
    let trailer = &payload[body_len..];
    let version = u16::from_le_bytes([trailer[0], trailer[1]]);
    if u32::from(version) > RDB_VERSION {
        return Err(PayloadError::Trailer);
    }
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&trailer[2..]);
    // The checksum covers the version too.
    if crc::crc64(&payload[..body_len + 2]) != u64::from_le_bytes(stored) {
        return Err(PayloadError::Trailer);
    }
    match read::read_value(payload) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(PayloadError::BadFormat),
        Err(RdbError::UnsupportedValue { kind, .. }) => Err(PayloadError::Unsupported(kind)),
        Err(RdbError::UnsupportedType { name, .. }) => Err(PayloadError::Unsupported(name)),
        Err(_) => Err(PayloadError::BadFormat),
    }
}

/// A copy of every database, taken under all shard locks.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Keys and entries, index = database number.
    pub(crate) dbs: Vec<Vec<(Bytes, Entry)>>,
}

impl Snapshot {
    /// A copy of every live key as of one instant, with `under_lock` run
    /// at that instant (every shard locked), so that, for example, a
    /// replication offset matches the copy exactly.
    ///
    /// Outside a transaction the world does not stop for the copy: the
    /// keyspace copies each shard when it is next locked
    /// (`Keyspace::begin_snapshot`), and clients wait only for the copies
    /// of the shards they touch. Inside EXEC, which holds every shard, the
    /// copy is made at once. Keys past their deadline but not yet
    /// reclaimed are left out: they no longer exist for any client.
    pub(crate) fn take<T>(
        shards: &mut Shards<'_>,
        under_lock: impl FnOnce() -> T,
    ) -> (Snapshot, T) {
        let now = crate::server::now_ms();
        let databases = shards.databases();
        let ks = shards.keyspace();
        let held = shards.held().is_some();
        // Inside EXEC the locks are already held: no other snapshot may be
        // waited for (it could be waiting for them).
        let guard = (!held).then(|| ks.snapshot_guard());
        let epoch = ks.next_snapshot_epoch();
        let mut sizes = vec![0usize; databases];
        let extra = {
            let mut all = shards.lock_all();
            for shard in all.shards() {
                for (size, db) in sizes.iter_mut().zip(&shard.dbs) {
                    *size += db.len();
                }
            }
            if !held {
                ks.begin_snapshot(now, epoch);
            }
            under_lock()
        };
        let mut dbs: Vec<Vec<(Bytes, Entry)>> = sizes.into_iter().map(Vec::with_capacity).collect();
        for i in 0..SHARDS {
            let mut shard = shards.lock_shard(i);
            let part = shard.snapshot_part(epoch, now);
            drop(shard);
            for (db, keys) in dbs.iter_mut().zip(part) {
                db.extend(keys);
            }
        }
        if !held {
            ks.end_snapshot();
        }
        drop(guard);
        (Snapshot { dbs }, extra)
    }

    /// Number of keys in every database.
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
) -> Result<(), RdbError> {
    let databases = shards.databases();
    if let Some(&(db, _)) = loaded.dbs.iter().find(|(db, _)| *db >= databases) {
        return Err(RdbError::DbIndex { db, databases });
    }
    let mut locked = shards.lock_all();
    for shard in locked.shards() {
        shard.dbs.iter_mut().for_each(crate::db::Db::clear);
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
            return Err(RdbError::DuplicateKey {
                key: printable(&key),
                db,
            });
        }
    }
    // Clients blocked on a key that is now a list get it, as after SWAPDB.
    let now = crate::server::now_ms();
    let mut waited = Vec::new();
    for shard in locked.shards() {
        for (i, db) in shard.dbs.iter().enumerate() {
            waited.extend(db.waited_keys().into_iter().map(|k| (i, k)));
        }
    }
    for (db, key) in waited {
        crate::blocking::serve(&mut locked, db, &key, now);
    }
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

/// Redis's `string2ll`: the integer `s` spells exactly, with no sign but
/// `-`, no leading zeros and no `-0`, so that printing it back gives `s`.
/// Both the RDB string encoder and listpacks store such strings as
/// integers.
pub(crate) fn strict_i64(s: &[u8]) -> Option<i64> {
    // LONG_STR_SIZE: 20 digits and a sign fit, anything longer does not.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        if v > 1 << 63 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// A key as error messages show it: printable ASCII as is, other bytes
/// escaped, long keys cut.
pub(crate) fn printable(key: &[u8]) -> String {
    const MAX: usize = 128;
    let mut out = String::new();
    for &b in key.iter().take(MAX) {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if key.len() > MAX {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests;

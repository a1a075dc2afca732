//! The keyspace: every database, split into independently locked shards
//! ([`Keyspace`], reached through a command's lock set, [`Shards`]), and
//! its building blocks: a key's [`Entry`] (value and deadline), how keys
//! are stored ([`Key`]) and hashed ([`hash_key`]), and the index of keys
//! with a deadline that the active expiry cycle samples ([`Volatile`]).
//!
//! What the keyspace does that others must hear about leaves it as values,
//! never as calls into the server:
//!
//! - **Effects, per command.** A command's [`Shards`] owns its
//!   [`Effects`] and lends them with every database it hands out
//!   ([`DbMut`]): changes (Redis's `server.dirty`), keys deleted because
//!   they had expired (reaching replicas as DELs before the command's own
//!   effect), and what the command asks replicas to run instead of itself.
//!   They are dropped with the command, so a panic leaves nothing set.
//! - **Policy in, not asked for.** Whether an expired key is deleted,
//!   hidden, or deleted and reported is decided by the database's
//!   `hide_expired` (set by the server on replicas and on a master feeding
//!   replicas) and whether the command records ([`Effects::recording`]),
//!   which the server turns on for the commands whose deletions must reach
//!   the stream in order.
//! - **Ready keys.** A database notes a key that becomes a list or a sorted
//!   set while clients wait on it (Redis's `signalKeyAsReady`, in one place:
//!   where a key is added or replaced, and on SWAPDB and loads); whoever
//!   holds the shard takes the notes ([`Locked::take_ready`]) and serves
//!   them before releasing it.
//! - **Blocked clients and WATCH.** The keyspace queues the server's
//!   blocked clients per key as values of the server's type `W`, and sets
//!   the [`WatchFlag`]s of the clients watching a key that changes.

mod db;
mod effects;
mod entry;
mod evict;
pub mod lazy;
mod s3fifo;
mod shards;
mod snapshot;
mod table;
mod volatile;

use std::sync::OnceLock;

pub use db::{Contents, Db, DbMut, Waiters, WatchFlag, lru_clock, tick_lru_clock};
pub use effects::{Effects, Event, Op, class, encode_into};
pub use entry::{Entry, KEY_INLINE, Key};
pub use evict::{
    Candidate, LFU_INIT, Pool, Rank, lfu_decayed, lfu_enabled, lfu_incremented, s3fifo_enabled,
    set_lfu, set_s3fifo,
};
pub use shards::{
    Keyspace, Locked, LockedRef, SHARDS, Shard, ShardRef, Shards, Write, WriteKeys, shard_of,
    shard_of_hash,
};
pub use snapshot::{Encoder, WALK_SLICE, encode_dbs};
pub use volatile::Volatile;

/// The seed of [`hash_key`], set once.
static SEED: OnceLock<u64> = OnceLock::new();

/// Seeds [`hash_key`] with `seed`, something an attacker cannot guess (the
/// server mixes its clock, process id and addresses, as Redis seeds its
/// SipHash at start), so that nobody can prepare keys that collide. Only
/// the first call counts, and only if no key was hashed before it (then a
/// seed made of this process's id and an address stands); returns whether
/// `seed` is the one in use.
pub fn seed_hash(seed: u64) -> bool {
    SEED.set(seed).is_ok() || SEED.get() == Some(&seed)
}

/// The keyspace's hash of a key: xxh3 under the seed of [`seed_hash`]. One
/// hash gives both the shard (middle bits) and the slot within the
/// shard's table (hashbrown uses the low and the top bits).
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    let seed = *SEED.get_or_init(|| {
        // Nobody seeded: still not a constant (ASLR moves the address).
        u64::from(std::process::id()).rotate_left(40) ^ (&SEED as *const _ as u64)
    });
    twox_hash::XxHash3_64::oneshot_with_seed(seed, key)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A string entry for tests.
    pub(crate) fn entry(v: &'static str, expire_at: Option<i64>) -> Entry {
        Entry::with(
            crate::value::Value::Str(crate::value::Str::from_slice(
                v.as_bytes(),
                crate::value::Form::Auto,
            )),
            expire_at,
        )
    }

    #[test]
    fn hashing_is_seeded_once() {
        let before = hash_key(b"k");
        // Whatever seeded first stays.
        let current = *SEED.get().expect("seeded by the first hash");
        assert!(seed_hash(current));
        assert!(!seed_hash(current ^ 1));
        assert_eq!(hash_key(b"k"), before);
        assert_ne!(hash_key(b"k"), hash_key(b"l"));
    }
}

//! The keyspace's building blocks: a key's [`Entry`] (value and
//! deadline), how keys are stored ([`Key`]) and hashed ([`hash_key`]), and
//! the index of keys with a deadline that the active expiry cycle samples
//! ([`Volatile`]).
//!
//! The databases, shards and their locks still live in the server
//! (`crates/server/src/db.rs`) and move here next (issue 11). What they do
//! that others must hear about will leave the keyspace as values it
//! returns, never as calls into the server. The design, for that move:
//!
//! - **Effects, per command.** A command's lock set (the server's
//!   `Shards`) owns one `Effects` and lends it, with the command's expiry
//!   policy, to every database it reaches (`shard.db(i)` pairs `&mut Db`
//!   with `&mut Effects`). The keyspace appends as things happen, in
//!   order: `dirty` (changes, Redis's `server.dirty`), `expired` (keys
//!   deleted because they had expired, each to reach replicas as a DEL
//!   before the command's own effect) and `ready` (keys that became lists
//!   while clients waited on them, deduplicated: Redis's
//!   `signalKeyAsReady`, raised in one place, where a key is added or
//!   replaced, and by SWAPDB, FLUSH and loads for waited keys). No
//!   thread-locals: the queue is dropped with the command, so a panic
//!   leaves nothing set.
//! - **Policy in, not asked for.** Whether an expired key is deleted,
//!   hidden, or deleted and reported is an argument chosen by the server
//!   for the command (replica, master feeding replicas, recording), not a
//!   question the keyspace asks the replication module.
//! - **Drained under the locks.** The server's `execute` drains the
//!   effects after the handler and before the locks drop: serves ready
//!   keys (which may queue more), turns expired keys and the command into
//!   the replication stream, then releases. A write holds its keys for its
//!   whole run only when replicas are fed or a shard it locks has blocked
//!   clients, as EXEC and recording writes do; otherwise it runs as now
//!   and its effects are one counter, with no allocation and no extra
//!   hash. Ready keys already
//!   work this way, inside the server's `db.rs` (`Db`'s notes,
//!   `Locked::take_ready`, `blocking::serve_ready`, each shard's count of
//!   blocked clients); `dirty` and `expired` still go through
//!   `repl::prop`'s thread-locals.
//! - **Blocked clients.** The keyspace keeps, per key, the queue of waiter
//!   ids under the shard lock; the server keeps the waiters themselves
//!   (their tokio channels) by id.

mod entry;
mod volatile;

use std::sync::OnceLock;

pub use entry::{Entry, Key};
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
mod tests {
    use super::*;

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

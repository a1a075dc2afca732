//! The keyspace's building blocks: a key's [`Entry`] (value and
//! deadline), how keys are stored ([`Key`]) and hashed ([`hash_key`]), and
//! the index of keys with a deadline that the active expiry cycle samples
//! ([`Volatile`]).
//!
//! The databases, shards and their locks still live in the server
//! (`crates/server/src/db.rs`) and move here next (issue 11). What they do
//! that others must hear about (a key deleted because it expired, a key
//! changed, a key made ready for blocked clients) will leave the keyspace
//! as values it returns, never as calls into the server: see
//! `docs/architecture.md`.

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

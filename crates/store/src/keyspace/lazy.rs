//! Values the keyspace drops on its own, set aside for the server's
//! lazy-free thread instead of being freed under the shard's lock.
//!
//! Redis frees a large value on its background thread not only when a
//! client asks (`UNLINK`, `FLUSHALL ASYNC`, which the server handles) but
//! also when the server itself drops one, if told to:
//!
//! - `lazyfree-lazy-expire` ([`EXPIRE`]): a key deleted because its
//!   deadline passed, found by a lookup or by the expiry cycle;
//! - `lazyfree-lazy-server-del` ([`SERVER_DEL`]): a value a command
//!   replaces (SET over a big list, the destination of RENAME, RESTORE
//!   REPLACE, a `*STORE` command's destination).
//!
//! The keyspace does not know about threads: where it drops such a value
//! it asks [`Effects::discard`], which keeps the value in the command's
//! effects when the setting is on and the value is large
//! ([`free_effort`] above [`THRESHOLD`]); the lock set hands what was kept
//! to the keyspace's [`Disposer`] once its locks are released (see
//! [`super::Shards`]). Small values, and every value while the setting
//! is off, are dropped in place, as before.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use super::Effects;
use crate::value::Value;

/// [`set_lazy`]: a key dropped because it expired.
pub const EXPIRE: u8 = 1;
/// [`set_lazy`]: a value replaced or deleted by the server on its own.
pub const SERVER_DEL: u8 = 2;

/// Values whose [`free_effort`] is above this are worth a hand-over
/// (Redis's `LAZYFREE_THRESHOLD`).
pub const THRESHOLD: usize = 64;

/// The [`EXPIRE`] and [`SERVER_DEL`] bits for `lazyfree-lazy-expire` and
/// `lazyfree-lazy-server-del` (see [`super::Keyspace::set_lazy`]).
pub fn bits(expire: bool, server_del: bool) -> u8 {
    (if expire { EXPIRE } else { 0 }) | (if server_del { SERVER_DEL } else { 0 })
}

/// How many allocations freeing `value` takes, as Redis's
/// `lazyfreeGetFreeEffort` counts them: a list's nodes, the elements of a
/// hash, set or sorted set in a table (a compact encoding is one
/// allocation), one for a string.
pub fn free_effort(value: &Value) -> usize {
    match value {
        Value::Str(_) => 1,
        Value::List(l) => l.nodes(),
        Value::Set(s) if s.encoding() == "hashtable" => s.len(),
        Value::Hash(h) if h.encoding() == "hashtable" => h.len(),
        Value::ZSet(z) if z.encoding() == "skiplist" => z.len(),
        Value::Set(_) | Value::Hash(_) | Value::ZSet(_) => 1,
    }
}

/// Where a lock set's kept values go once its locks are released: the
/// server's lazy-free thread. Set once per keyspace
/// ([`super::Keyspace::set_disposer`]); without one, kept values are
/// freed where the lock set drops.
pub trait Disposer: Send + Sync {
    /// Frees `values` (each above [`THRESHOLD`]) in the background.
    fn dispose(&self, values: Vec<Value>);
}

/// A keyspace's [`Disposer`], once the server sets it, and which drops
/// are lazy: read once per lock set, copied into its [`Effects`].
#[derive(Default)]
pub(super) struct DisposerCell(OnceLock<Box<dyn Disposer>>, AtomicU8);

impl std::fmt::Debug for DisposerCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Disposer"
        } else {
            "None"
        })
    }
}

impl DisposerCell {
    /// Sets the disposer; only the first call counts.
    pub(super) fn set(&self, disposer: Box<dyn Disposer>) {
        let _ = self.0.set(disposer);
    }

    /// Sets which drops are lazy ([`bits`]).
    pub(super) fn set_lazy(&self, bits: u8) {
        self.1.store(bits, Ordering::Relaxed);
    }

    /// Which drops are lazy.
    #[inline]
    pub(super) fn lazy(&self) -> u8 {
        self.1.load(Ordering::Relaxed)
    }

    /// Hands `values` to the disposer, or drops them here without one.
    pub(super) fn dispose(&self, values: Vec<Value>) {
        match self.0.get() {
            Some(d) => d.dispose(values),
            None => drop(values),
        }
    }
}

impl Effects {
    /// The keyspace drops `value` for reason `why` ([`EXPIRE`] or
    /// [`SERVER_DEL`]): kept for the lazy-free thread if that reason is
    /// lazy and the value is large, dropped here otherwise.
    #[inline]
    pub fn discard(&mut self, value: Value, why: u8) {
        if self.lazy_bits() & why != 0 && free_effort(&value) > THRESHOLD {
            self.keep_garbage(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_large_values_of_a_lazy_kind_are_kept() {
        let mut list = crate::list::List::new();
        for i in 0..200_000u32 {
            list.push(false, &i.to_le_bytes());
        }
        let big = Value::List(Box::new(list));
        assert!(free_effort(&big) > THRESHOLD);
        let small = Value::Str(crate::value::Str::from_i64(1));
        assert_eq!(free_effort(&small), 1);
        let mut fx = Effects::new();
        fx.set_lazy_bits(bits(true, false));
        fx.discard(small, EXPIRE);
        assert_eq!(fx.take_garbage().len(), 0);
        let mut list = crate::list::List::new();
        for i in 0..200_000u32 {
            list.push(false, &i.to_le_bytes());
        }
        fx.discard(Value::List(Box::new(list)), SERVER_DEL);
        assert_eq!(fx.take_garbage().len(), 0);
        fx.discard(big, EXPIRE);
        assert_eq!(fx.take_garbage().len(), 1);
    }
}

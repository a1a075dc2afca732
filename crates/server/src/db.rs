//! The keyspace as the server uses it: ember-store's databases, shards and
//! locks (`store::keyspace`), with the server's blocked client
//! ([`Waiter`]) as what the keyspace queues per waited key.
//!
//! What a command did reaches the server as its lock set's
//! [`store::keyspace::Effects`]: `cmd::execute` turns them into the
//! replication stream and serves the clients made ready before the locks
//! drop.

use std::sync::Arc;

use crate::blocking::Waiter;

pub(crate) use store::Rng;
pub(crate) use store::keyspace::{Entry, Key, SHARDS, WatchFlag, hash_key, lru_clock};

pub(crate) type Db = store::keyspace::Db<Arc<Waiter>>;
pub(crate) type DbMut<'s> = store::keyspace::DbMut<'s, Arc<Waiter>>;
pub(crate) type Shard = store::keyspace::Shard<Arc<Waiter>>;
pub(crate) type Keyspace = store::keyspace::Keyspace<Arc<Waiter>>;
pub(crate) type Shards<'a> = store::keyspace::Shards<'a, Arc<Waiter>>;
pub(crate) type LockedRef<'s, 'a> = store::keyspace::LockedRef<'s, 'a, Arc<Waiter>>;

/// The keyspace for `databases` databases, its hash seeded first (once
/// per process) with something an attacker cannot guess, so that nobody
/// can prepare keys that collide (Redis seeds its SipHash the same way).
pub(crate) fn keyspace(databases: usize) -> Keyspace {
    static SEEDED: std::sync::Once = std::sync::Once::new();
    SEEDED.call_once(|| {
        store::keyspace::seed_hash(
            crate::server::now_ms() as u64
                ^ u64::from(std::process::id()).rotate_left(40)
                ^ (&SEEDED as *const _ as u64).rotate_left(20),
        );
    });
    Keyspace::new(databases)
}

/// Refreshes the clock keys' last accesses are stamped with.
pub(crate) fn tick_lru_clock() {
    store::keyspace::tick_lru_clock(crate::server::now_ms());
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use store::value::Value;

    use super::*;

    fn entry(v: &'static str) -> Entry {
        Entry::new(Value::Str(store::value::Str::from_slice(
            v.as_bytes(),
            store::value::Form::Auto,
        )))
    }

    /// A key that becomes a list while clients wait on it is noted once,
    /// in order, wherever it comes from; nothing is noted with nobody
    /// waiting, or for another type.
    #[test]
    fn keys_made_lists_for_waiting_clients_are_noted_in_order() {
        let ks = Keyspace::new(2);
        let mut shards = Shards::new(&ks);
        let list = || Entry::new(Value::List(Box::default()));
        let keys = [&b"k"[..], b"j"];
        let mut locked = shards.lock_keys(keys);
        locked.db(0, b"k").insert(Bytes::from_static(b"k"), list());
        assert!(locked.take_ready().is_empty(), "nobody waits");
        locked.db(0, b"k").remove(b"k");
        let (waiter, _rx) = Waiter::new(
            0,
            vec![Bytes::from_static(b"j"), Bytes::from_static(b"k")],
            crate::blocking::BlockOp::Pop {
                left: true,
                count: None,
            },
            resp::Protocol::Resp2,
        );
        crate::blocking::register(&mut locked, &waiter);
        assert!(locked.waited(), "a blocked client makes writes hold");
        locked
            .db(0, b"j")
            .insert(Bytes::from_static(b"j"), entry("a string"));
        locked.db(0, b"k").put(b"k", list());
        locked.db(0, b"k").put(b"k", list());
        locked.db(0, b"j").put(b"j", list());
        assert_eq!(
            locked.take_ready(),
            [(0, Bytes::from_static(b"k")), (0, Bytes::from_static(b"j"))]
        );
        assert!(locked.take_ready().is_empty(), "taken once");
        // SWAPDB brings a list to a waited key.
        locked.db(0, b"k").remove(b"k");
        locked.db(1, b"k").put(b"k", list());
        for shard in locked.shards() {
            let (zero, one) = shard.dbs.pair_mut(0, 1);
            zero.swap_contents(one, 0);
        }
        assert!(locked.take_ready().contains(&(0, Bytes::from_static(b"k"))));
        drop(locked);
        crate::blocking::unregister(&ks, &waiter);
        crate::blocking::unregister(&ks, &waiter);
        let mut shards = Shards::new(&ks);
        assert!(
            !shards.lock_keys(keys).waited(),
            "counted once, uncounted once"
        );
    }
}

//! Clients blocked on lists (BLPOP and friends) and on sorted sets
//! (BZPOPMIN, BZPOPMAX, BZMPOP), and handing what arrives to them.
//!
//! A blocking command that finds all its lists empty registers one
//! [`Waiter`] in the queue of every key it waits on, under the same shard
//! locks it checked the lists with, so no push can slip between the check
//! and the registration, and counts itself in those shards.
//!
//! Nothing that makes a waited-on key a list (a push, a move, RENAME,
//! MOVE, COPY, RESTORE, SWAPDB, a load...) calls in here: the keyspace
//! notes the key itself, where a key is added or replaced (Redis's
//! `signalKeyAsReady`), and a write that locks a shard with blocked
//! clients holds its shards until the end of its command. Whoever holds
//! the locks then calls [`serve_ready`] once, before releasing them
//! (`cmd::execute` after each command, EXEC after its transaction, a load
//! after it): waiters are
//! served oldest first, each exactly once, from the state the command or
//! transaction left, and the elements they take never become visible to
//! anyone else, as in Redis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use resp::Protocol;
use store::list::List;
use store::value::Value;
use tokio::sync::oneshot;
use transport::Output;

use crate::notify::Notify;
use store::keyspace::class;

use crate::db::{DbMut, Entry, Keyspace, LockedRef, Shards};
use crate::reply::Reply;
use store::keyspace::Op;

/// What a blocked client is waiting to do.
#[derive(Debug, Clone)]
pub(crate) enum BlockOp {
    /// BLPOP/BRPOP (`count: None`, reply `[key, element]`) or BLMPOP
    /// (`Some(n)`, reply `[key, [elements]]`).
    Pop { left: bool, count: Option<usize> },
    /// BLMOVE/BRPOPLPUSH: pop from the waited key, push to `dst`.
    Move {
        from_left: bool,
        to_left: bool,
        dst: Bytes,
    },
    /// BZPOPMIN/BZPOPMAX (`count: None`, reply `[key, member, score]`) or
    /// BZMPOP (`Some(n)`, reply `[key, [[member, score]...]]`).
    ZPop { max: bool, count: Option<usize> },
}

impl BlockOp {
    /// Whether this wait is for a sorted set rather than a list.
    fn wants_zset(&self) -> bool {
        matches!(self, BlockOp::ZPop { .. })
    }
}

/// How a wait ends, besides timing out.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The reply, encoded for the client's protocol.
    Reply(Output),
    /// The client must run its command again (the destination of a move
    /// was busy); it blocks again if the list is empty by then.
    Retry,
    /// CLIENT UNBLOCK: answer as a timeout, or with the UNBLOCKED error.
    Unblocked { error: bool },
}

/// One blocked client.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) db: usize,
    pub(crate) keys: Vec<Bytes>,
    pub(crate) op: BlockOp,
    pub(crate) proto: Protocol,
    claimed: AtomicBool,
    /// Counted among the keyspace's blocked clients (see [`register`]).
    counted: AtomicBool,
    tx: Mutex<Option<oneshot::Sender<Outcome>>>,
}

impl Waiter {
    pub(crate) fn new(
        db: usize,
        keys: Vec<Bytes>,
        op: BlockOp,
        proto: Protocol,
    ) -> (Arc<Waiter>, oneshot::Receiver<Outcome>) {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            db,
            keys,
            op,
            proto,
            claimed: AtomicBool::new(false),
            counted: AtomicBool::new(false),
            tx: Mutex::new(Some(tx)),
        };
        (Arc::new(waiter), rx)
    }

    /// Takes the right to end this wait; only one party ever gets it (a
    /// server of one of its keys, or the client's own timeout).
    pub(crate) fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// Ends the wait from outside (CLIENT UNBLOCK). Returns whether it was
    /// still waiting.
    pub(crate) fn unblock(&self, error: bool) -> bool {
        if !self.claim() {
            return false;
        }
        self.send(Outcome::Unblocked { error });
        true
    }

    fn send(&self, outcome: Outcome) {
        if let Some(tx) = self.tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(outcome);
        }
    }
}

/// Registers `waiter` on each of its keys. The caller holds their shards,
/// so a write that locks one of them later finds the shard's count of
/// blocked clients raised, and holds its shards until it has served the
/// keys it made ready. Every registered waiter is [`unregister`]ed.
pub(crate) fn register(locked: &mut LockedRef<'_, '_>, waiter: &Arc<Waiter>) {
    if !waiter.counted.swap(true, Ordering::AcqRel) {
        for key in &waiter.keys {
            locked.shard_of_key(key).waiting += 1;
        }
    }
    for key in &waiter.keys {
        locked
            .db(waiter.db, key)
            .waiters
            .entry(key.clone())
            .or_default()
            .push_back(waiter.clone());
    }
}

/// Removes a finished waiter from its keys' queues (once; again is
/// harmless).
pub(crate) fn unregister(ks: &Keyspace, waiter: &Arc<Waiter>) {
    let mut shards = Shards::new(ks);
    let mut locked = shards.lock_keys(waiter.keys.iter().map(|k| &k[..]));
    if waiter.counted.swap(false, Ordering::AcqRel) {
        for key in &waiter.keys {
            let shard = locked.shard_of_key(key);
            shard.waiting = shard.waiting.saturating_sub(1);
        }
    }
    for key in &waiter.keys {
        let mut db = locked.db(waiter.db, key);
        if let Some(queue) = db.waiters.get_mut(key) {
            queue.retain(|w| !Arc::ptr_eq(w, waiter));
            if queue.is_empty() {
                db.waiters.remove(key);
            }
        }
    }
}

/// Serves clients blocked on `key` in `db` while it holds a non-empty
/// list, oldest first. The caller holds `key`'s shard in `locked`.
pub(crate) fn serve(locked: &mut LockedRef<'_, '_>, db: usize, key: &[u8], now: i64) {
    if !locked.db(db, key).waiters.contains_key(key) {
        return;
    }
    serve_depth(locked, db, key, now, 0);
}

/// Serves the clients blocked on every key the holder of `locked` made
/// ready (see `Locked::take_ready`), in the order the keys became ready,
/// as Redis's `handleClientsBlockedOnKeys` does after each command; the
/// holder calls it before it releases its locks.
pub(crate) fn serve_ready(locked: &mut LockedRef<'_, '_>, now: i64) {
    for (db, key) in locked.take_ready() {
        serve(locked, db, &key, now);
    }
    // Moves served above noted their destinations, which they served
    // themselves, as deep as chains are followed.
    locked.take_ready();
}

/// A move can make its destination ready, which may feed another move:
/// chains are followed this deep, like Redis's loop over ready keys.
const MAX_CHAIN: usize = 64;

fn serve_depth(locked: &mut LockedRef<'_, '_>, db: usize, key: &[u8], now: i64, depth: usize) {
    loop {
        // What serving does (a pop, or the DEL of a key found expired)
        // reaches replicas apart from the command that made the key ready.
        locked.effects().begin_unit();
        let Some(waiter) = next_waiter(&mut locked.db(db, key), key, now) else {
            return;
        };
        match waiter.op.clone() {
            BlockOp::Pop { left, count } => {
                if !waiter.claim() {
                    continue;
                }
                let items = pop(&mut locked.db(db, key), key, left, count.unwrap_or(1));
                if locked.effects().recording() {
                    locked
                        .effects()
                        .also(pop_op(db, key, left, count.map(|_| items.len())));
                }
                let mut out = Output::new();
                let mut reply = Reply {
                    out: &mut out,
                    proto: waiter.proto,
                };
                reply.array(2);
                reply.bulk(key);
                match count {
                    None => reply.bulk(&items[0]),
                    Some(_) => {
                        reply.array(items.len());
                        items.iter().for_each(|i| reply.bulk(i));
                    }
                }
                waiter.send(Outcome::Reply(out));
            }
            BlockOp::ZPop { max, count } => {
                if !waiter.claim() {
                    continue;
                }
                let popped = zpop(&mut locked.db(db, key), key, max, count.unwrap_or(1));
                if locked.effects().recording() {
                    locked
                        .effects()
                        .also(zpop_op(db, key, max, count.map(|_| popped.len())));
                }
                let mut out = Output::new();
                let mut reply = Reply {
                    out: &mut out,
                    proto: waiter.proto,
                };
                match count {
                    None => {
                        reply.array(1 + popped.len() * 2);
                        reply.bulk(key);
                        for (m, s) in &popped {
                            reply.bulk(m);
                            reply.double(*s);
                        }
                    }
                    Some(_) => {
                        reply.array(2);
                        reply.bulk(key);
                        reply.array(popped.len());
                        for (m, s) in &popped {
                            reply.array(2);
                            reply.bulk(m);
                            reply.double(*s);
                        }
                    }
                }
                waiter.send(Outcome::Reply(out));
            }
            BlockOp::Move {
                from_left,
                to_left,
                dst,
            } => {
                if !locked.holds(&dst) && !locked.try_add(&dst) {
                    // The destination's shard is busy and may not be waited
                    // for out of order: let the client retry by itself.
                    if waiter.claim() {
                        waiter.send(Outcome::Retry);
                    }
                    continue;
                }
                // The destination's lazy DEL, if it expired, and the move
                // reach replicas together, apart from the push before.
                locked.effects().begin_unit();
                let dst_is_other_type = locked
                    .db(db, &dst)
                    .get(&dst, now)
                    .is_some_and(|e| !matches!(e.value, Value::List(_)));
                if !waiter.claim() {
                    continue;
                }
                let mut out = Output::new();
                let mut reply = Reply {
                    out: &mut out,
                    proto: waiter.proto,
                };
                if dst_is_other_type {
                    reply
                        .error("WRONGTYPE Operation against a key holding the wrong kind of value");
                    waiter.send(Outcome::Reply(out));
                    continue;
                }
                let item = move_one(locked, (db, now), key, &dst, from_left, to_left);
                if locked.effects().recording() {
                    let side = |left| if left { &b"LEFT"[..] } else { b"RIGHT" };
                    locked.effects().extend([Op::new(
                        Some(db),
                        &[b"LMOVE", key, &dst, side(from_left), side(to_left)],
                    )]);
                }
                reply.bulk(&item);
                waiter.send(Outcome::Reply(out));
                if depth < MAX_CHAIN {
                    serve_depth(locked, db, &dst, now, depth + 1);
                }
            }
        }
    }
}

/// The oldest unclaimed waiter on `key` that waits for the type `key`
/// holds (a non-empty list or sorted set), as Redis serves a ready key's
/// clients blocked for its type; claimed waiters met on the way are
/// dropped from the queue, waiters for the other type stay.
fn next_waiter(db: &mut DbMut<'_>, key: &[u8], now: i64) -> Option<Arc<Waiter>> {
    let holds = match db.get(key, now) {
        Some(Entry {
            value: Value::List(l),
            ..
        }) if !l.is_empty() => Some(false),
        Some(Entry {
            value: Value::ZSet(z),
            ..
        }) if !z.is_empty() => Some(true),
        _ => None,
    };
    let queue = db.waiters.get_mut(key)?;
    queue.retain(|w| !w.is_claimed());
    let found = holds.and_then(|zset| {
        let at = queue.iter().position(|w| w.op.wants_zset() == zset)?;
        queue.remove(at)
    });
    if queue.is_empty() {
        db.waiters.remove(key);
    }
    found
}

/// A pop as replicas must run it: `LPOP key` for BLPOP's one element,
/// `LPOP key count` for LMPOP's, with the count it popped (as Redis
/// propagates it).
pub(crate) fn pop_op(db: usize, key: &[u8], left: bool, count: Option<usize>) -> Op {
    let name = if left { &b"LPOP"[..] } else { b"RPOP" };
    match count {
        None => Op::new(Some(db), &[name, key]),
        Some(n) => Op::new(Some(db), &[name, key, n.to_string().as_bytes()]),
    }
}

/// Pops up to `n` elements from the list at `key`, deleting the key when it
/// empties. The caller knows it is a non-empty list.
pub(crate) fn pop(db: &mut DbMut<'_>, key: &[u8], left: bool, n: usize) -> Vec<Bytes> {
    let mut items = Vec::new();
    let mut empty = false;
    if let Some(Entry {
        value: Value::List(list),
        ..
    }) = db.get(key, i64::MIN)
    {
        for _ in 0..n {
            match list.pop(left) {
                Some(i) => items.push(i),
                None => break,
            }
        }
        empty = list.is_empty();
    }
    if !items.is_empty() {
        db.notify(class::LIST, if left { "lpop" } else { "rpop" }, key);
    }
    if empty {
        db.remove(key);
        db.notify(class::GENERIC, "del", key);
    } else if !items.is_empty() {
        db.modified(key);
    }
    items
}

/// LMOVE's step, for the command and for a client blocked in BLMOVE:
/// moves one element of the non-empty list at `src` to the list (or
/// nothing) at `dst`, and returns it. Events as Redis raises them: the
/// push to `dst` (after `new` if it is created), then the pop from `src`
/// and its `del` if it empties; a list rotated onto itself is never
/// deleted in between.
pub(crate) fn move_one(
    locked: &mut LockedRef<'_, '_>,
    (db, now): (usize, i64),
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
) -> Bytes {
    let mut source = locked.db(db, src);
    let Some(Entry {
        value: Value::List(list),
        ..
    }) = source.get(src, now)
    else {
        return Bytes::new();
    };
    let Some(item) = list.pop(from_left) else {
        return Bytes::new();
    };
    let empty = list.is_empty();
    let push_event = if to_left { "lpush" } else { "rpush" };
    let pop_event = if from_left { "lpop" } else { "rpop" };
    if src == dst {
        list.push_bytes(to_left, item.clone());
        source.modified(src);
        source.notify(class::LIST, push_event, dst);
        source.notify(class::LIST, pop_event, src);
        return item;
    }
    if empty {
        source.remove(src);
    } else {
        source.modified(src);
    }
    let mut target = locked.db(db, dst);
    push(&mut target, dst, now, |list| {
        list.push_bytes(to_left, item.clone())
    });
    target.notify(class::LIST, push_event, dst);
    let mut source = locked.db(db, src);
    source.notify(class::LIST, pop_event, src);
    if empty {
        source.notify(class::GENERIC, "del", src);
    }
    item
}

/// Pushes onto the list at `key` with `fill`, creating the list, and
/// returns its new length. The caller knows the key holds a list or
/// nothing.
pub(crate) fn push(
    db: &mut DbMut<'_>,
    key: &[u8],
    now: i64,
    fill: impl FnOnce(&mut List),
) -> usize {
    let created = db.get(key, now).is_none();
    if created {
        db.insert(
            Bytes::copy_from_slice(key),
            Entry::new(Value::List(Box::default())),
        );
    }
    match db.get(key, now) {
        Some(Entry {
            value: Value::List(list),
            ..
        }) => {
            fill(list);
            let len = list.len();
            // A new key's insertion counted as its change already.
            if !created {
                db.modified(key);
            }
            len
        }
        _ => 0,
    }
}

/// A sorted-set pop as replicas must run it: `ZPOPMIN key` for
/// BZPOPMIN's one member, `ZPOPMIN key count` for BZMPOP's, with the
/// count it popped (as Redis propagates them).
pub(crate) fn zpop_op(db: usize, key: &[u8], max: bool, count: Option<usize>) -> Op {
    let name = if max { &b"ZPOPMAX"[..] } else { b"ZPOPMIN" };
    match count {
        None => Op::new(Some(db), &[name, key]),
        Some(n) => Op::new(Some(db), &[name, key, n.to_string().as_bytes()]),
    }
}

/// Pops up to `n` members from the sorted set at `key`, from the high end
/// when `max`, deleting the key when it empties. The caller knows it is a
/// non-empty sorted set.
pub(crate) fn zpop(db: &mut DbMut<'_>, key: &[u8], max: bool, n: usize) -> Vec<(Vec<u8>, f64)> {
    let mut popped = Vec::new();
    let mut empty = false;
    if let Some(Entry {
        value: Value::ZSet(zset),
        ..
    }) = db.get(key, i64::MIN)
    {
        popped = zset.pop(max, n);
        empty = zset.is_empty();
    }
    if !popped.is_empty() {
        db.notify(class::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
    }
    if empty {
        db.remove(key);
        db.notify(class::GENERIC, "del", key);
    } else if !popped.is_empty() {
        db.modified(key);
    }
    popped
}

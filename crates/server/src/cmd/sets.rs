//! Set commands.
//!
//! The sets themselves (encodings, random picks, the algebra) are
//! `store::set`'s; this file reads arguments, finds keys, replies, and
//! tells replicas what happened where that is not the command itself:
//! SPOP reaches them as SREM of what it popped, or as DEL when it popped
//! everything, as Redis 7.0 propagates it.
//!
//! Commands on several sets (SINTER, SUNION, SDIFF and their STORE forms,
//! SINTERCARD) lock all their keys' shards, then take the sets out of
//! their entries for the time they read them together (a database lends
//! one entry at a time) and put them back before anything else can see
//! the keys.

use std::cell::RefCell;
use std::collections::HashMap;

use bytes::Bytes;
use resp::Request;
use store::set::{Elem, Set};
use store::value::Value;

use super::{CmdError, CmdResult, Ctx};
use crate::args::{eq, parse_i64};
use crate::db::{DbMut, Entry, LockedRef, Rng};
use crate::notify::Notify;
use crate::reply::Reply;
use crate::server::{LocalStats, Shared};
use store::keyspace::{Op, class};

/// The set at `key`: `Ok(None)` if absent, WRONGTYPE if another type.
fn get_set<'d>(
    db: &'d mut DbMut<'_>,
    key: &[u8],
    now: i64,
) -> Result<Option<&'d mut Set>, CmdError> {
    super::typed(db, key, now, |v| match v {
        Value::Set(x) => Some(x),
        _ => None,
    })
}

/// [`get_set`] for a command that reads the key, as Redis's
/// `lookupKeyRead` does: a keyspace hit or miss for INFO (a key of another
/// type is a hit).
fn read_set<'d>(
    db: &'d mut DbMut<'_>,
    key: &[u8],
    now: i64,
    stats: &mut LocalStats,
) -> Result<Option<&'d mut Set>, CmdError> {
    super::read_typed(db, key, now, stats, |v| match v {
        Value::Set(x) => Some(x),
        _ => None,
    })
}

/// `set-max-intset-entries`.
pub(crate) fn max_intset(shared: &Shared) -> usize {
    shared.encodings.intset()
}

thread_local! {
    /// Each thread's generator for random members: seeded from the clock,
    /// the thread and the process, so servers and threads differ.
    static RNG: RefCell<Rng> = RefCell::new(Rng::new(
        crate::server::now_ms() as u64
            ^ u64::from(std::process::id()).rotate_left(32)
            ^ (&RNG as *const _ as u64).rotate_left(17),
    ));
}

fn with_rng<R>(f: impl FnOnce(&mut Rng) -> R) -> R {
    RNG.with(|r| f(&mut r.borrow_mut()))
}

/// Replies with a member.
fn bulk(reply: &mut Reply<'_>, e: Elem<'_>) {
    e.with(|b| reply.bulk(b));
}

pub(super) fn sadd(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let shared = ctx.shared;
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let members = (2..req.len()).map(|i| &req[i]);
    let added = match get_set(&mut db, key, ctx.now)? {
        Some(set) => {
            let max = if set.is_intset() {
                max_intset(shared)
            } else {
                usize::MAX
            };
            let added = members.filter(|m| set.add(m, max)).count();
            if added > 0 {
                db.modified(key);
            }
            added
        }
        None => {
            let mut set = Set::new();
            let max = max_intset(shared);
            let added = members.filter(|m| set.add(m, max)).count();
            db.put(key, Entry::new(Value::Set(set)));
            added
        }
    };
    if added > 0 {
        db.count_changes(added - 1);
        db.notify(class::SET, "sadd", key);
    }
    ctx.reply.int(added as i64);
    Ok(())
}

pub(super) fn srem(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let Some(set) = get_set(&mut db, key, ctx.now)? else {
        ctx.reply.int(0);
        return Ok(());
    };
    let mut removed = 0;
    for i in 2..req.len() {
        if set.remove(&req[i]) {
            removed += 1;
            if set.is_empty() {
                break;
            }
        }
    }
    let empty = set.is_empty();
    if removed > 0 {
        db.count_changes(removed as usize - 1);
        db.notify(class::SET, "srem", key);
    }
    if empty {
        db.remove(key);
        db.notify(class::GENERIC, "del", key);
    } else if removed > 0 {
        db.modified(key);
    }
    ctx.reply.int(removed);
    Ok(())
}

pub(super) fn smove(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let (src, dst, member) = (&req[1], &req[2], &req[3]);
    let (db, now, shared) = (ctx.client.db, ctx.now, ctx.shared);
    let mut locked = ctx.shards.lock_keys([src, dst]);
    // A missing source answers 0 before the destination's type is looked
    // at, as in Redis.
    if get_set(&mut locked.db(db, src), src, now)?.is_none() {
        ctx.reply.int(0);
        return Ok(());
    }
    get_set(&mut locked.db(db, dst), dst, now)?;
    let mut source = locked.db(db, src);
    let Some(set) = get_set(&mut source, src, now)? else {
        ctx.reply.int(0);
        return Ok(());
    };
    if src == dst {
        ctx.reply.int(i64::from(set.contains(member)));
        return Ok(());
    }
    if !set.remove(member) {
        ctx.reply.int(0);
        return Ok(());
    }
    let empty = set.is_empty();
    source.notify(class::SET, "srem", src);
    if empty {
        source.remove(src);
        source.notify(class::GENERIC, "del", src);
    } else {
        source.modified(src);
    }
    let mut target = locked.db(db, dst);
    let added = match get_set(&mut target, dst, now)? {
        Some(set) => {
            let max = if set.is_intset() {
                max_intset(shared)
            } else {
                usize::MAX
            };
            let added = set.add(member, max);
            if added {
                target.modified(dst);
            }
            added
        }
        None => {
            let mut set = Set::new();
            set.add(member, max_intset(shared));
            target.put(dst, Entry::new(Value::Set(set)));
            true
        }
    };
    if added {
        target.notify(class::SET, "sadd", dst);
    }
    ctx.reply.int(1);
    Ok(())
}

pub(super) fn sismember(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let set = read_set(&mut db, key, ctx.now, &mut ctx.client.stats)?;
    ctx.reply
        .int(i64::from(set.is_some_and(|s| s.contains(&req[2]))));
    Ok(())
}

pub(super) fn smismember(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let set = read_set(&mut db, key, ctx.now, &mut ctx.client.stats)?;
    ctx.reply.array(req.len() - 2);
    for i in 2..req.len() {
        let found = set.as_ref().is_some_and(|s| s.contains(&req[i]));
        ctx.reply.int(i64::from(found));
    }
    Ok(())
}

pub(super) fn scard(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let set = read_set(&mut db, key, ctx.now, &mut ctx.client.stats)?;
    ctx.reply.int(set.map_or(0, |s| s.len()) as i64);
    Ok(())
}

pub(super) fn smembers(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let Some(set) = read_set(&mut db, key, ctx.now, &mut ctx.client.stats)? else {
        ctx.reply.set(0);
        return Ok(());
    };
    ctx.reply.set(set.len());
    set.iter().for_each(|e| bulk(&mut ctx.reply, e));
    Ok(())
}

pub(super) fn spop(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    if req.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match req.get(2) {
        Some(arg) => Some(
            resp::parse_int(arg)
                .filter(|&n| n >= 0)
                .ok_or_else(|| CmdError::other("ERR value is out of range, must be positive"))?
                as usize,
        ),
        None => None,
    };
    let key = &req[1];
    let (dbi, now, shared) = (ctx.client.db, ctx.now, ctx.shared);
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(dbi);
    let Some(set) = get_set(&mut db, key, now)? else {
        match count {
            Some(_) => ctx.reply.set(0),
            None => ctx.reply.null(),
        }
        return Ok(());
    };
    let srem = |members: &[Bytes]| -> Vec<Op> {
        members
            .iter()
            .map(|m| Op::new(Some(dbi), &[&b"SREM"[..], key, &m[..]]))
            .collect()
    };
    let Some(count) = count else {
        let Some(member) = with_rng(|rng| set.pop_random(rng)) else {
            ctx.reply.null();
            return Ok(());
        };
        let empty = set.is_empty();
        db.notify(class::SET, "spop", key);
        if empty {
            db.remove(key);
            db.notify(class::GENERIC, "del", key);
        } else {
            db.modified(key);
        }
        db.effects().rewrite(srem(std::slice::from_ref(&member)));
        ctx.reply.bulk(&member);
        return Ok(());
    };
    if count == 0 {
        ctx.reply.set(0);
        return Ok(());
    }
    db.notify(class::SET, "spop", key);
    let set = match get_set(&mut db, key, now)? {
        Some(set) => set,
        None => return Ok(()),
    };
    if count >= set.len() {
        // Everything: replied as SUNION of the one set would reply it, the
        // key deleted, and replicas told to delete it.
        if !set.is_intset() && set.len() <= max_intset(shared) {
            let all = Set::union(&[Some(set)], max_intset(shared));
            reply_set(&mut ctx.reply, &all);
        } else {
            reply_set(&mut ctx.reply, set);
        }
        db.remove(key);
        db.notify(class::GENERIC, "del", key);
        db.effects()
            .rewrite(vec![Op::new(Some(dbi), &[&b"DEL"[..], key])]);
        return Ok(());
    }
    let max = max_intset(shared);
    let popped = with_rng(|rng| set.pop_many(count, max, rng));
    db.modified(key);
    db.effects().rewrite(srem(&popped));
    ctx.reply.set(popped.len());
    popped.iter().for_each(|m| ctx.reply.bulk(m));
    Ok(())
}

/// Replies with every member of `set`, as a set.
fn reply_set(reply: &mut Reply<'_>, set: &Set) {
    reply.set(set.len());
    set.iter().for_each(|e| bulk(reply, e));
}

pub(super) fn srandmember(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    if req.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match req.get(2) {
        Some(arg) => {
            let n = parse_i64(arg)?;
            if n == i64::MIN {
                return Err(CmdError::other(format!(
                    "ERR value is out of range, value must between {} and {}",
                    -i64::MAX,
                    i64::MAX
                )));
            }
            super::check_random_picks(n)?;
            Some(n)
        }
        None => None,
    };
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let set = read_set(&mut db, key, ctx.now, &mut ctx.client.stats)?.map(|s| &*s);
    let reply = &mut ctx.reply;
    let Some(count) = count else {
        match set.and_then(|s| with_rng(|rng| s.random(rng))) {
            Some(e) => bulk(reply, e),
            None => reply.null(),
        }
        return Ok(());
    };
    let Some(set) = set else {
        reply.array(0);
        return Ok(());
    };
    if count < 0 {
        // The same member may come several times: each pick is of the whole
        // set.
        let n = count.unsigned_abs();
        reply.array(n as usize);
        with_rng(|rng| {
            for _ in 0..n {
                if let Some(e) = set.random(rng) {
                    bulk(reply, e);
                }
            }
        });
        return Ok(());
    }
    let picked = with_rng(|rng| set.sample(count as usize, rng));
    reply.array(picked.len());
    picked.into_iter().for_each(|e| bulk(reply, e));
    Ok(())
}

/// Runs `f` on the sets at `keys` together (`None` for a missing key; the
/// same key twice gives the same set), after looking each up as a read,
/// in order, and checking that each existing key holds a set. The sets are taken out of their entries
/// for the time `f` runs, then put back.
fn with_sets<R>(
    locked: &mut LockedRef<'_, '_>,
    (db, now): (usize, i64),
    stats: &mut LocalStats,
    keys: &[&[u8]],
    f: impl FnOnce(&[Option<&Set>]) -> R,
) -> Result<R, CmdError> {
    for key in keys {
        read_set(&mut locked.db(db, key), key, now, stats)?;
    }
    let mut distinct: Vec<&[u8]> = Vec::new();
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    let slots: Vec<usize> = keys
        .iter()
        .map(|&key| {
            *index.entry(key).or_insert_with(|| {
                distinct.push(key);
                distinct.len() - 1
            })
        })
        .collect();
    let taken: Vec<Option<Set>> = distinct
        .iter()
        .map(|key| match locked.db(db, key).peek(key, now) {
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => Some(std::mem::take(s)),
            _ => None,
        })
        .collect();
    let result = {
        let sets: Vec<Option<&Set>> = slots.iter().map(|&i| taken[i].as_ref()).collect();
        f(&sets)
    };
    for (key, set) in distinct.iter().zip(taken) {
        if let Some(set) = set
            && let Some(Entry {
                value: Value::Set(s),
                ..
            }) = locked.db(db, key).peek(key, now)
        {
            *s = set;
        }
    }
    Ok(result)
}

/// Stores a STORE command's result at `dst` (replacing whatever is there,
/// deadline included) and replies with its size; an empty result deletes
/// `dst` instead.
fn store_result(
    reply: &mut Reply<'_>,
    (db, now): (&mut DbMut<'_>, i64),
    dst: &[u8],
    result: Set,
    event: &'static str,
) {
    let n = result.len();
    if n == 0 {
        if db.delete(dst, store::keyspace::lazy::SERVER_DEL) {
            db.notify(class::GENERIC, "del", dst);
        }
    } else {
        db.set_key(dst, Entry::new(Value::Set(result)), now);
        db.notify(class::SET, event, dst);
    }
    reply.int(n as i64);
}

/// The arguments from `from` on.
fn keys_from(req: &Request, from: usize) -> Vec<&[u8]> {
    (from..req.len()).map(|i| &req[i]).collect()
}

pub(super) fn sinter(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let keys = keys_from(req, 1);
    let (db, now) = (ctx.client.db, ctx.now);
    let mut locked = ctx.shards.lock_keys(keys.iter().copied());
    let reply = &mut ctx.reply;
    with_sets(
        &mut locked,
        (db, now),
        &mut ctx.client.stats,
        &keys,
        |sets| {
            let Some(sets) = sets.iter().copied().collect::<Option<Vec<&Set>>>() else {
                reply.set(0);
                return;
            };
            let mut common = Vec::new();
            Set::intersect(&sets, |e| {
                common.push(e);
                true
            });
            reply.set(common.len());
            common.into_iter().for_each(|e| bulk(reply, e));
        },
    )
}

pub(super) fn sinterstore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let dst = &req[1];
    let keys = keys_from(req, 2);
    let (db, now, shared) = (ctx.client.db, ctx.now, ctx.shared);
    let mut locked = ctx
        .shards
        .lock_keys(std::iter::once(dst).chain(keys.iter().copied()));
    let result = with_sets(
        &mut locked,
        (db, now),
        &mut ctx.client.stats,
        &keys,
        |sets| match sets.iter().copied().collect::<Option<Vec<&Set>>>() {
            Some(sets) => Set::intersection(&sets, max_intset(shared)),
            None => Set::new(),
        },
    )?;
    store_result(
        &mut ctx.reply,
        (&mut locked.db(db, dst), now),
        dst,
        result,
        "sinterstore",
    );
    Ok(())
}

pub(super) fn sintercard(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let numkeys = resp::parse_int(&req[1])
        .filter(|&n| n > 0)
        .ok_or_else(|| CmdError::other("ERR numkeys should be greater than 0"))?;
    if numkeys > req.len() as i64 - 2 {
        return Err(CmdError::other(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let end = 2 + numkeys as usize;
    let mut limit = 0usize;
    let mut i = end;
    while i < req.len() {
        if eq(&req[i], "limit") && i + 1 < req.len() {
            limit = resp::parse_int(&req[i + 1])
                .filter(|&n| n >= 0)
                .ok_or_else(|| CmdError::other("ERR LIMIT can't be negative"))?
                as usize;
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let keys: Vec<&[u8]> = (2..end).map(|i| &req[i]).collect();
    let (db, now) = (ctx.client.db, ctx.now);
    let mut locked = ctx.shards.lock_keys(keys.iter().copied());
    let n = with_sets(
        &mut locked,
        (db, now),
        &mut ctx.client.stats,
        &keys,
        |sets| {
            let Some(sets) = sets.iter().copied().collect::<Option<Vec<&Set>>>() else {
                return 0;
            };
            let mut n = 0usize;
            Set::intersect(&sets, |_| {
                n += 1;
                limit == 0 || n < limit
            });
            n
        },
    )?;
    ctx.reply.int(n as i64);
    Ok(())
}

/// SUNION or SDIFF of `keys`.
fn union_or_diff(sets: &[Option<&Set>], keys: &[&[u8]], diff: bool, max: usize) -> Set {
    if diff {
        let first_repeated = keys.iter().skip(1).any(|k| *k == keys[0]);
        Set::difference(sets, first_repeated, max)
    } else {
        Set::union(sets, max)
    }
}

fn sunion_diff(ctx: &mut Ctx<'_>, req: &Request, diff: bool) -> CmdResult {
    let keys = keys_from(req, 1);
    let (db, now, shared) = (ctx.client.db, ctx.now, ctx.shared);
    let mut locked = ctx.shards.lock_keys(keys.iter().copied());
    let reply = &mut ctx.reply;
    with_sets(
        &mut locked,
        (db, now),
        &mut ctx.client.stats,
        &keys,
        |sets| {
            let result = union_or_diff(sets, &keys, diff, max_intset(shared));
            reply_set(reply, &result);
        },
    )
}

fn sunion_diff_store(ctx: &mut Ctx<'_>, req: &Request, diff: bool) -> CmdResult {
    let dst = &req[1];
    let keys = keys_from(req, 2);
    let (db, now, shared) = (ctx.client.db, ctx.now, ctx.shared);
    let mut locked = ctx
        .shards
        .lock_keys(std::iter::once(dst).chain(keys.iter().copied()));
    let result = with_sets(
        &mut locked,
        (db, now),
        &mut ctx.client.stats,
        &keys,
        |sets| union_or_diff(sets, &keys, diff, max_intset(shared)),
    )?;
    let event = if diff { "sdiffstore" } else { "sunionstore" };
    store_result(
        &mut ctx.reply,
        (&mut locked.db(db, dst), now),
        dst,
        result,
        event,
    );
    Ok(())
}

pub(super) fn sunion(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    sunion_diff(ctx, req, false)
}

pub(super) fn sdiff(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    sunion_diff(ctx, req, true)
}

pub(super) fn sunionstore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    sunion_diff_store(ctx, req, false)
}

pub(super) fn sdiffstore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    sunion_diff_store(ctx, req, true)
}

/// A SCAN cursor as Redis reads it (`strtoul`): digits with an optional
/// sign (a negative one wraps), nothing else; the empty string is 0.
pub(super) fn parse_cursor(arg: &[u8]) -> Result<u64, CmdError> {
    let invalid = || CmdError::other("ERR invalid cursor");
    if arg.is_empty() {
        return Ok(0);
    }
    let (negative, digits) = match arg[0] {
        b'-' => (true, &arg[1..]),
        b'+' => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(invalid());
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if negative { v.wrapping_neg() } else { v })
}

pub(super) fn sscan(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let cursor = parse_cursor(&req[2])?;
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let Some(set) = read_set(&mut db, key, ctx.now, &mut ctx.client.stats)? else {
        // Redis answers a missing key before it reads the options.
        ctx.reply.array(2);
        ctx.reply.bulk(b"0");
        ctx.reply.array(0);
        return Ok(());
    };
    let (mut pattern, mut count) = (None, 10usize);
    let mut i = 3;
    while i < req.len() {
        let more = i + 1 < req.len();
        if eq(&req[i], "count") && more {
            let n = parse_i64(&req[i + 1])?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if eq(&req[i], "match") && more {
            // "*" matches everything: no pattern at all.
            pattern = (&req[i + 1][..] != b"*").then_some(&req[i + 1][..]);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let mut found: Vec<Bytes> = Vec::new();
    let next = set.scan(cursor, count, |e| {
        e.with(|m| {
            if pattern.is_none_or(|p| store::glob::matches(p, m, false)) {
                found.push(Bytes::copy_from_slice(m));
            }
        });
    });
    ctx.reply.array(2);
    ctx.reply.bulk(next.to_string().as_bytes());
    ctx.reply.array(found.len());
    found.iter().for_each(|m| ctx.reply.bulk(m));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_as_strtoul_reads_them() {
        assert_eq!(parse_cursor(b"0"), Ok(0));
        assert_eq!(parse_cursor(b""), Ok(0));
        assert_eq!(parse_cursor(b"+5"), Ok(5));
        assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        for bad in [
            &b"18446744073709551616"[..],
            b"abc",
            b" 1",
            b"1 ",
            b"-",
            b"+",
            b"1.5",
        ] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }
}

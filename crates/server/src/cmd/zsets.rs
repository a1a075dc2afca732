//! Sorted-set commands.
//!
//! The sorted sets themselves (encodings, ranges, pops, random picks, the
//! algebra) are `store::zset`'s; this file reads Redis's arguments in the
//! order `t_zset.c` reads them (so that the same bad command fails with the
//! same error), finds keys, replies in RESP2 or RESP3 as Redis 7.0 does,
//! and tells replicas what happened where that is not the command itself.
//! A sorted set is never empty: the command that removes its last member
//! deletes its key.

use resp::{Protocol, Request};
use store::value::Value;
use store::zset::{
    AddFlags, LexRange, Limit, Limits, Outcome, ScoreRange, ZSet, ZsetError, parse_score,
};

use bytes::Bytes;

use super::{CmdError, CmdResult, Ctx};
use crate::args::{eq, parse_i64};
use crate::blocking::{self, BlockOp};
use crate::db::{DbMut, Entry, LockedRef};
use crate::notify::Notify;
use crate::reply::Reply;
use crate::server::{LocalStats, Shared};
use store::keyspace::class;

impl From<ZsetError> for CmdError {
    fn from(e: ZsetError) -> Self {
        CmdError::other(e.to_string())
    }
}

/// The sorted set at `key`: `Ok(None)` if absent, WRONGTYPE if another
/// type.
pub(super) fn get_zset<'d>(
    db: &'d mut DbMut<'_>,
    key: &[u8],
    now: i64,
) -> Result<Option<&'d mut ZSet>, CmdError> {
    super::typed(db, key, now, |v| match v {
        Value::ZSet(x) => Some(x),
        _ => None,
    })
}

/// [`get_zset`] for a command that reads the key, as Redis's
/// `lookupKeyRead` does: a keyspace hit or miss for INFO.
fn read_zset<'d>(
    db: &'d mut DbMut<'_>,
    key: &[u8],
    now: i64,
    stats: &mut LocalStats,
) -> Result<Option<&'d mut ZSet>, CmdError> {
    super::read_typed(db, key, now, stats, |v| match v {
        Value::ZSet(x) => Some(x),
        _ => None,
    })
}

/// `zset-max-listpack-entries` and `zset-max-listpack-value`.
pub(crate) fn limits(shared: &Shared) -> Limits {
    shared.encodings.zset()
}

/// After a removal: deletes `key` if its set is now empty, else marks it
/// changed when `changed`.
fn settle(db: &mut DbMut<'_>, key: &[u8], empty: bool, changed: bool) {
    if empty {
        db.remove(key);
        db.notify(class::GENERIC, "del", key);
    } else if changed {
        db.modified(key);
    }
}

/// Replies with members and, when `withscores`, their scores: a flat
/// array in RESP2 (scores as bulk strings), pairs with doubles in RESP3,
/// as Redis 7.0's range replies are.
fn reply_members<'a>(
    reply: &mut Reply<'_>,
    members: impl ExactSizeIterator<Item = (&'a [u8], f64)>,
    withscores: bool,
) {
    let n = members.len();
    if !withscores {
        reply.array(n);
        members.for_each(|(m, _)| reply.bulk(m));
        return;
    }
    match reply.proto {
        Protocol::Resp2 => {
            reply.array(n * 2);
            for (m, s) in members {
                reply.bulk(m);
                reply.double(s);
            }
        }
        _ => {
            reply.array(n);
            for (m, s) in members {
                reply.array(2);
                reply.bulk(m);
                reply.double(s);
            }
        }
    }
}

/// ZADD and ZINCRBY (`zaddGenericCommand`): options from `at` on, then
/// score and member pairs.
fn zadd_generic(ctx: &mut Ctx<'_>, req: &Request, mut flags: AddFlags, mut at: usize) -> CmdResult {
    let mut ch = false;
    while at < req.len() {
        let opt = &req[at];
        if eq(opt, "nx") {
            flags.nx = true;
        } else if eq(opt, "xx") {
            flags.xx = true;
        } else if eq(opt, "ch") {
            ch = true;
        } else if eq(opt, "incr") {
            flags.incr = true;
        } else if eq(opt, "gt") {
            flags.gt = true;
        } else if eq(opt, "lt") {
            flags.lt = true;
        } else {
            break;
        }
        at += 1;
    }
    let elements = req.len() - at;
    if elements == 0 || !elements.is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if flags.nx && flags.xx {
        return Err(CmdError::other(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
        return Err(CmdError::other(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if flags.incr && elements > 2 {
        return Err(CmdError::other(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let pairs = (at..req.len())
        .step_by(2)
        .map(|i| Ok((parse_score(&req[i])?, &req[i + 1][..])))
        .collect::<Result<Vec<(f64, &[u8])>, ZsetError>>()?;
    let key = &req[1];
    let limits = limits(ctx.shared);
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let existing = get_zset(&mut db, key, ctx.now)?;
    if existing.is_none() && flags.xx {
        if flags.incr {
            ctx.reply.null();
        } else {
            ctx.reply.int(0);
        }
        return Ok(());
    }
    let (mut added, mut updated, mut last) = (0i64, 0i64, None);
    let mut error = None;
    let mut apply = |zset: &mut ZSet| {
        for &(score, member) in &pairs {
            match zset.add(member, score, flags, &limits) {
                Ok(outcome) => {
                    match outcome {
                        Outcome::Added(_) => added += 1,
                        Outcome::Updated(_) => updated += 1,
                        _ => {}
                    }
                    last = outcome.score();
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
    };
    match existing {
        Some(zset) => {
            apply(zset);
            if added + updated > 0 {
                db.modified(key);
            }
        }
        None => {
            let mut zset = ZSet::new();
            apply(&mut zset);
            if !zset.is_empty() {
                db.put(key, Entry::new(Value::ZSet(zset)));
            }
        }
    }
    if added + updated > 0 {
        db.count_changes((added + updated - 1) as usize);
        db.notify(class::ZSET, if flags.incr { "zincr" } else { "zadd" }, key);
    }
    if let Some(e) = error {
        return Err(e.into());
    }
    if flags.incr {
        match last {
            Some(score) => ctx.reply.double(score),
            None => ctx.reply.null(),
        }
    } else {
        ctx.reply.int(if ch { added + updated } else { added });
    }
    Ok(())
}

pub(super) fn zadd(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zadd_generic(ctx, req, AddFlags::default(), 2)
}

pub(super) fn zincrby(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let flags = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    zadd_generic(ctx, req, flags, 2)
}

pub(super) fn zrem(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let Some(zset) = get_zset(&mut db, key, ctx.now)? else {
        ctx.reply.int(0);
        return Ok(());
    };
    let mut removed = 0;
    for i in 2..req.len() {
        if zset.remove(&req[i]).is_some() {
            removed += 1;
            if zset.is_empty() {
                break;
            }
        }
    }
    let empty = zset.is_empty();
    if removed > 0 {
        db.count_changes(removed as usize - 1);
        db.notify(class::ZSET, "zrem", key);
    }
    settle(&mut db, key, empty, removed > 0);
    ctx.reply.int(removed);
    Ok(())
}

pub(super) fn zcard(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let zset = read_zset(&mut db, key, ctx.now, &mut ctx.client.stats)?;
    ctx.reply.int(zset.map_or(0, |z| z.len()) as i64);
    Ok(())
}

pub(super) fn zscore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let zset = read_zset(&mut db, key, ctx.now, &mut ctx.client.stats)?;
    match zset.and_then(|z| z.score(&req[2])) {
        Some(s) => ctx.reply.double(s),
        None => ctx.reply.null(),
    }
    Ok(())
}

pub(super) fn zmscore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let zset = read_zset(&mut db, key, ctx.now, &mut ctx.client.stats)?;
    ctx.reply.array(req.len() - 2);
    for i in 2..req.len() {
        match zset.as_ref().and_then(|z| z.score(&req[i])) {
            Some(s) => ctx.reply.double(s),
            None => ctx.reply.null(),
        }
    }
    Ok(())
}

fn zrank_generic(ctx: &mut Ctx<'_>, req: &Request, reverse: bool) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let zset = read_zset(&mut db, key, ctx.now, &mut ctx.client.stats)?;
    match zset.and_then(|z| z.rank(&req[2], reverse)) {
        Some(r) => ctx.reply.int(r as i64),
        None => ctx.reply.null(),
    }
    Ok(())
}

pub(super) fn zrank(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zrank_generic(ctx, req, false)
}

pub(super) fn zrevrank(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zrank_generic(ctx, req, true)
}

pub(super) fn zcount(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    // The range is read before the key is looked up, as in Redis.
    let range = ScoreRange::parse(&req[2], &req[3])?;
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let zset = read_zset(&mut db, key, ctx.now, &mut ctx.client.stats)?;
    ctx.reply
        .int(zset.map_or(0, |z| z.count_by_score(&range)) as i64);
    Ok(())
}

pub(super) fn zlexcount(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let range = LexRange::parse(&req[2], &req[3])?;
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let zset = read_zset(&mut db, key, ctx.now, &mut ctx.client.stats)?;
    ctx.reply
        .int(zset.map_or(0, |z| z.count_by_lex(&range)) as i64);
    Ok(())
}

/// What a range command ranges over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    /// Not said yet (ZRANGE and ZRANGESTORE before their options).
    Auto,
    Rank,
    Score,
    Lex,
}

/// A range parsed: which kind, with its bounds.
enum Range {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// ZRANGE and its older forms, ZRANGESTORE (`zrangeGenericCommand`): the
/// source key at `src`, its `min` and `max` after it, then options. `by`
/// and `rev` are fixed by the older commands (`None` for "ZRANGE's
/// options decide"). Writes the reply; returns the range's members when
/// `store`, for the caller to store.
fn zrange_generic(
    ctx: &mut Ctx<'_>,
    req: &Request,
    src: usize,
    store: Option<&[u8]>,
    mut by: By,
    rev: Option<bool>,
) -> CmdResult {
    let (mut withscores, mut limit): (bool, Option<(i64, i64)>) = (false, None);
    let mut reverse = rev;
    let mut j = src + 3;
    while j < req.len() {
        let left = req.len() - j - 1;
        let arg = &req[j];
        if store.is_none() && eq(arg, "withscores") {
            withscores = true;
        } else if eq(arg, "limit") && left >= 2 {
            limit = Some((parse_i64(&req[j + 1])?, parse_i64(&req[j + 2])?));
            j += 2;
        } else if reverse.is_none() && eq(arg, "rev") {
            reverse = Some(true);
        } else if by == By::Auto && eq(arg, "bylex") {
            by = By::Lex;
        } else if by == By::Auto && eq(arg, "byscore") {
            by = By::Score;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let reverse = reverse.unwrap_or(false);
    if by == By::Auto {
        by = By::Rank;
    }
    // A count of -1 is Redis's "no LIMIT given" (`opt_limit`'s default),
    // so `LIMIT 5 -1` passes with a rank range, the offset unused.
    if limit.is_some_and(|(_, count)| count != -1) && by == By::Rank {
        return Err(CmdError::other(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && by == By::Lex {
        return Err(CmdError::other(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut min, mut max) = (&req[src + 1], &req[src + 2]);
    if reverse && by != By::Rank {
        std::mem::swap(&mut min, &mut max);
    }
    let range = match by {
        By::Score => Range::Score(ScoreRange::parse(min, max)?),
        By::Lex => Range::Lex(LexRange::parse(min, max)?),
        _ => Range::Rank(parse_i64(min)?, parse_i64(max)?),
    };
    let limit = limit.map_or(Limit::ALL, |(offset, count)| Limit::new(offset, count));
    let key = &req[src];
    let (dbi, now) = (ctx.client.db, ctx.now);
    let zlimits = limits(ctx.shared);
    let keys: Vec<&[u8]> = std::iter::once(key).chain(store).collect();
    let mut locked = ctx.shards.lock_keys(keys);
    let mut db = locked.db(dbi, key);
    let zset = read_zset(&mut db, key, now, &mut ctx.client.stats)?;
    let Some(dst) = store else {
        let Some(zset) = zset else {
            ctx.reply.array(0);
            return Ok(());
        };
        let members = match &range {
            Range::Rank(start, stop) => zset.range_by_rank(*start, *stop, reverse),
            Range::Score(r) => zset.range_by_score(r, limit, reverse),
            Range::Lex(r) => zset.range_by_lex(r, limit, reverse),
        };
        reply_members(&mut ctx.reply, members, withscores);
        return Ok(());
    };
    let result = zset.map(|zset| {
        let (members, len) = match &range {
            Range::Rank(start, stop) => {
                let m = zset.range_by_rank(*start, *stop, reverse);
                let n = m.len();
                (m, Some(n))
            }
            Range::Score(r) => (zset.range_by_score(r, limit, reverse), None),
            Range::Lex(r) => (zset.range_by_lex(r, limit, reverse), None),
        };
        ZSet::from_range(members, len, &zlimits)
    });
    let mut db = locked.db(dbi, dst);
    let n = result.as_ref().map_or(0, ZSet::len);
    match result {
        Some(z) if !z.is_empty() => {
            db.set_key(dst, Entry::new(Value::ZSet(z)), now);
            db.notify(class::ZSET, "zrangestore", dst);
        }
        _ => {
            if db.delete(dst, store::keyspace::lazy::SERVER_DEL) {
                db.notify(class::GENERIC, "del", dst);
            }
        }
    }
    ctx.reply.int(n as i64);
    Ok(())
}

pub(super) fn zrange(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zrange_generic(ctx, req, 1, None, By::Auto, None)
}

pub(super) fn zrangestore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zrange_generic(ctx, req, 2, Some(&req[1]), By::Auto, None)
}

pub(super) fn zrevrange(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zrange_generic(ctx, req, 1, None, By::Rank, Some(true))
}

pub(super) fn zrangebyscore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zrange_generic(ctx, req, 1, None, By::Score, Some(false))
}

pub(super) fn zrevrangebyscore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zrange_generic(ctx, req, 1, None, By::Score, Some(true))
}

pub(super) fn zrangebylex(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zrange_generic(ctx, req, 1, None, By::Lex, Some(false))
}

pub(super) fn zrevrangebylex(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zrange_generic(ctx, req, 1, None, By::Lex, Some(true))
}

/// ZREMRANGEBYRANK, ZREMRANGEBYSCORE and ZREMRANGEBYLEX: the range is
/// read before the key is looked up, as in Redis.
fn zremrange_generic(ctx: &mut Ctx<'_>, req: &Request, by: By) -> CmdResult {
    let range = match by {
        By::Score => Range::Score(ScoreRange::parse(&req[2], &req[3])?),
        By::Lex => Range::Lex(LexRange::parse(&req[2], &req[3])?),
        _ => Range::Rank(parse_i64(&req[2])?, parse_i64(&req[3])?),
    };
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let Some(zset) = get_zset(&mut db, key, ctx.now)? else {
        ctx.reply.int(0);
        return Ok(());
    };
    let removed = match &range {
        Range::Rank(start, stop) => zset.remove_range_by_rank(*start, *stop),
        Range::Score(r) => zset.remove_range_by_score(r),
        Range::Lex(r) => zset.remove_range_by_lex(r),
    };
    let empty = zset.is_empty();
    if removed > 0 {
        let event = match by {
            By::Score => "zremrangebyscore",
            By::Lex => "zremrangebylex",
            _ => "zremrangebyrank",
        };
        db.notify(class::ZSET, event, key);
    }
    settle(&mut db, key, empty, removed > 0);
    ctx.reply.int(removed as i64);
    Ok(())
}

pub(super) fn zremrangebyrank(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zremrange_generic(ctx, req, By::Rank)
}

pub(super) fn zremrangebyscore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zremrange_generic(ctx, req, By::Score)
}

pub(super) fn zremrangebylex(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zremrange_generic(ctx, req, By::Lex)
}

/// A COUNT or numkeys argument read as Redis's `getRangeLongFromObject`
/// with a message: at least `min`, else `msg` (for text that is no
/// integer too).
fn parse_at_least(arg: &[u8], min: i64, msg: &str) -> Result<i64, CmdError> {
    resp::parse_int(arg)
        .filter(|&n| n >= min)
        .ok_or_else(|| CmdError::other(format!("ERR {msg}")))
}

/// Pops up to `count` members from `key`'s set, from the low end or the
/// high end when `max`; deletes the key when it empties. `None` when
/// the key holds no sorted set (checked by the caller).
fn pop_from(
    db: &mut DbMut<'_>,
    key: &[u8],
    now: i64,
    max: bool,
    count: usize,
) -> Vec<(Vec<u8>, f64)> {
    let Ok(Some(zset)) = get_zset(db, key, now) else {
        return Vec::new();
    };
    let popped = zset.pop(max, count);
    let empty = zset.is_empty();
    if !popped.is_empty() {
        db.notify(class::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
    }
    settle(db, key, empty, !popped.is_empty());
    popped
}

/// ZPOPMIN and ZPOPMAX (`zpopMinMaxCommand`): a flat array of member,
/// score... in RESP2 and without a count; pairs in RESP3 with a count.
fn zpop(ctx: &mut Ctx<'_>, req: &Request, max: bool) -> CmdResult {
    if req.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match req.get(2) {
        Some(arg) => Some(parse_at_least(
            arg,
            0,
            "value is out of range, must be positive",
        )?),
        None => None,
    };
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    if get_zset(&mut db, key, ctx.now)?.is_none() || count == Some(0) {
        ctx.reply.array(0);
        return Ok(());
    }
    let popped = pop_from(&mut db, key, ctx.now, max, count.unwrap_or(1) as usize);
    let nested = ctx.reply.proto != Protocol::Resp2 && count.is_some();
    reply_popped(&mut ctx.reply, &popped, nested);
    Ok(())
}

/// Popped pairs: flat, or as pairs when `nested`.
fn reply_popped(reply: &mut Reply<'_>, popped: &[(Vec<u8>, f64)], nested: bool) {
    if nested {
        reply.array(popped.len());
    } else {
        reply.array(popped.len() * 2);
    }
    for (m, s) in popped {
        if nested {
            reply.array(2);
        }
        reply.bulk(m);
        reply.double(*s);
    }
}

pub(super) fn zpopmin(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zpop(ctx, req, false)
}

pub(super) fn zpopmax(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zpop(ctx, req, true)
}

/// ZMPOP's and BZMPOP's arguments from `numkeys` on: the keys, whether
/// MAX, and the count (`zmpopGenericCommand`).
pub(super) fn mpop_args(
    req: &Request,
    numkeys_at: usize,
) -> Result<(Vec<&[u8]>, bool, usize), CmdError> {
    let numkeys = parse_at_least(&req[numkeys_at], 1, "numkeys should be greater than 0")?;
    let where_at = (numkeys_at as i64)
        .saturating_add(numkeys)
        .saturating_add(1);
    if where_at >= req.len() as i64 {
        return Err(CmdError::Syntax);
    }
    let where_at = where_at as usize;
    let max = if eq(&req[where_at], "min") {
        false
    } else if eq(&req[where_at], "max") {
        true
    } else {
        return Err(CmdError::Syntax);
    };
    let mut count = None;
    let mut j = where_at + 1;
    while j < req.len() {
        if count.is_none() && eq(&req[j], "count") && j + 1 < req.len() {
            count = Some(parse_at_least(
                &req[j + 1],
                1,
                "count should be greater than 0",
            )?);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let keys = (numkeys_at + 1..where_at).map(|i| &req[i]).collect();
    Ok((keys, max, count.unwrap_or(1) as usize))
}

/// Pops from the first of `keys` that holds a sorted set (their shards
/// locked in `locked`), replying with the key and what it popped: flat
/// `[key, member, score]` for BZPOPMIN and BZPOPMAX (`count: None`),
/// `[key, [[member, score]...]]` for ZMPOP and BZMPOP; replicas are told
/// it was a ZPOPMIN or ZPOPMAX of that key (with the count popped when
/// there was a count), as Redis rewrites them. `false` when no key holds
/// one (nothing replied); WRONGTYPE for a key of another type met first.
fn zpop_first(
    reply: &mut Reply<'_>,
    locked: &mut LockedRef<'_, '_>,
    (db, now): (usize, i64),
    keys: &[Bytes],
    max: bool,
    count: Option<usize>,
) -> Result<bool, CmdError> {
    for key in keys {
        if get_zset(&mut locked.db(db, key), key, now)?.is_none() {
            continue;
        }
        let popped = blocking::zpop(&mut locked.db(db, key), key, max, count.unwrap_or(1));
        if locked.effects().recording() {
            locked.effects().rewrite(vec![blocking::zpop_op(
                db,
                key,
                max,
                count.map(|_| popped.len()),
            )]);
        }
        match count {
            None => {
                reply.array(1 + popped.len() * 2);
                reply.bulk(key);
                reply_popped_flat(reply, &popped);
            }
            Some(_) => {
                reply.array(2);
                reply.bulk(key);
                reply_popped(reply, &popped, true);
            }
        }
        return Ok(true);
    }
    Ok(false)
}

/// Popped pairs, without an array header of their own.
fn reply_popped_flat(reply: &mut Reply<'_>, popped: &[(Vec<u8>, f64)]) {
    for (m, s) in popped {
        reply.bulk(m);
        reply.double(*s);
    }
}

/// The keys as the waiter keeps them.
fn owned_keys(keys: &[&[u8]]) -> Vec<Bytes> {
    keys.iter().map(|k| Bytes::copy_from_slice(k)).collect()
}

pub(super) fn zmpop(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let (keys, max, count) = mpop_args(req, 1)?;
    let keys = owned_keys(&keys);
    let mut locked = ctx.shards.lock_keys(keys.iter().map(|k| &k[..]));
    let at = (ctx.client.db, ctx.now);
    if !zpop_first(&mut ctx.reply, &mut locked, at, &keys, max, Some(count))? {
        ctx.reply.null_array();
    }
    Ok(())
}

/// BZPOPMIN, BZPOPMAX and BZMPOP once their arguments are read: pops at
/// once if one of `keys` holds a sorted set, answers the null array
/// inside a transaction (which may not block), else blocks the client.
fn bzpop_generic(
    ctx: &mut Ctx<'_>,
    keys: Vec<Bytes>,
    max: bool,
    count: Option<usize>,
    deadline: Option<i64>,
) -> CmdResult {
    let mut locked = ctx.shards.lock_keys(keys.iter().map(|k| &k[..]));
    let at = (ctx.client.db, ctx.now);
    if zpop_first(&mut ctx.reply, &mut locked, at, &keys, max, count)? {
        return Ok(());
    }
    if ctx.client.in_exec {
        ctx.reply.null_array();
        return Ok(());
    }
    ctx.next = Some(super::lists::block(
        ctx.client,
        &mut locked,
        keys,
        BlockOp::ZPop { max, count },
        deadline,
    ));
    Ok(())
}

fn bzpop(ctx: &mut Ctx<'_>, req: &Request, max: bool) -> CmdResult {
    let deadline = super::lists::timeout(&req[req.len() - 1], ctx.now)?;
    let keys: Vec<&[u8]> = (1..req.len() - 1).map(|i| &req[i]).collect();
    bzpop_generic(ctx, owned_keys(&keys), max, None, deadline)
}

pub(super) fn bzpopmin(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    bzpop(ctx, req, false)
}

pub(super) fn bzpopmax(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    bzpop(ctx, req, true)
}

pub(super) fn bzmpop(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    // The timeout is read after the other arguments, as Redis reads it.
    let (keys, max, count) = mpop_args(req, 2)?;
    let deadline = super::lists::timeout(&req[1], ctx.now)?;
    bzpop_generic(ctx, owned_keys(&keys), max, Some(count), deadline)
}

thread_local! {
    /// Each thread's generator for random members.
    static RNG: std::cell::RefCell<crate::db::Rng> = std::cell::RefCell::new(crate::db::Rng::new(
        crate::server::now_ms() as u64
            ^ u64::from(std::process::id()).rotate_left(32)
            ^ (&RNG as *const _ as u64).rotate_left(23),
    ));
}

/// The most output ZRANDMEMBER with a negative count writes before it
/// gives up on the client (as SRANDMEMBER does).
const REPLY_CAP: usize = 1 << 30;

pub(super) fn zrandmember(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let mut count = None;
    let mut withscores = false;
    if req.len() >= 3 {
        let n = parse_i64(&req[2])?;
        if n == i64::MIN {
            return Err(CmdError::other(format!(
                "ERR value is out of range, value must between {} and {}",
                -i64::MAX,
                i64::MAX
            )));
        }
        if req.len() > 4 || (req.len() == 4 && !eq(&req[3], "withscores")) {
            return Err(CmdError::Syntax);
        }
        if req.len() == 4 {
            withscores = true;
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
                return Err(CmdError::other("ERR value is out of range"));
            }
        }
        count = Some(n);
    }
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let zset = read_zset(&mut db, key, ctx.now, &mut ctx.client.stats)?;
    let reply = &mut ctx.reply;
    let Some(count) = count else {
        match zset.and_then(|z| {
            RNG.with(|r| z.random(&mut r.borrow_mut()))
                .map(|(m, _)| m.to_vec())
        }) {
            Some(m) => reply.bulk(&m),
            None => reply.null(),
        }
        return Ok(());
    };
    let Some(zset) = zset else {
        reply.array(0);
        return Ok(());
    };
    if count == 0 {
        reply.array(0);
        return Ok(());
    }
    if count > 0 {
        let picked = RNG.with(|r| zset.random_members(count as usize, true, &mut r.borrow_mut()));
        reply_members(reply, picked.into_iter(), withscores);
        return Ok(());
    }
    // Repeats allowed: picked and written a thousand at a time, as Redis
    // does, so a huge count never holds its picks at once.
    let n = count.unsigned_abs() as usize;
    let nested = withscores && reply.proto != Protocol::Resp2;
    if withscores && !nested {
        reply.array(n.saturating_mul(2));
    } else {
        reply.array(n);
    }
    let mut left = n;
    while left > 0 {
        if reply.out.len() > REPLY_CAP {
            tracing::warn!("ZRANDMEMBER reply over {REPLY_CAP} bytes: closing the connection");
            ctx.next = Some(super::Next::Close);
            return Ok(());
        }
        let batch = left.min(1000);
        let picked = RNG.with(|r| zset.random_members(batch, false, &mut r.borrow_mut()));
        for (m, s) in picked {
            if nested {
                reply.array(2);
            }
            reply.bulk(m);
            if withscores {
                reply.double(s);
            }
        }
        left -= batch;
    }
    Ok(())
}

pub(super) fn zscan(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let cursor = super::sets::parse_cursor(&req[2])?;
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let Some(zset) = read_zset(&mut db, key, ctx.now, &mut ctx.client.stats)? else {
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
            pattern = (&req[i + 1][..] != b"*").then_some(&req[i + 1][..]);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    // Redis counts a member and its score as two of COUNT's items, and
    // stops after ten times COUNT empty steps.
    let mut found: Vec<(Vec<u8>, f64)> = Vec::new();
    let mut items = 0usize;
    let mut budget = count.saturating_mul(10);
    let mut cursor = cursor;
    loop {
        cursor = zset.scan(cursor, |m, s| {
            items += 2;
            if pattern.is_none_or(|p| store::glob::matches(p, m, false)) {
                found.push((m.to_vec(), s));
            }
        });
        if cursor == 0 || budget == 0 || items >= count {
            break;
        }
        budget -= 1;
    }
    ctx.reply.array(2);
    ctx.reply.bulk(cursor.to_string().as_bytes());
    ctx.reply.array(found.len() * 2);
    for (m, s) in &found {
        ctx.reply.bulk(m);
        ctx.reply.bulk(zset.scan_score_text(*s).as_bytes());
    }
    Ok(())
}

/// ZUNION, ZINTER, ZDIFF, their STORE forms and ZINTERCARD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
    Card,
}

/// A source taken out of its entry for the time an operation reads it.
enum Taken {
    ZSet(ZSet),
    Set(store::set::Set),
}

/// `zunionInterDiffGenericCommand`: `dst` for the STORE forms, the
/// number of keys at `numkeys_at`.
fn zsetop(
    ctx: &mut Ctx<'_>,
    req: &Request,
    op: SetOp,
    dst: Option<&[u8]>,
    numkeys_at: usize,
) -> CmdResult {
    let setnum = parse_i64(&req[numkeys_at])?;
    if setnum < 1 {
        return Err(CmdError::other(format!(
            "ERR at least 1 input key is needed for '{}' command",
            ctx.cmd.name
        )));
    }
    if setnum > (req.len() - numkeys_at - 1) as i64 {
        return Err(CmdError::Syntax);
    }
    let setnum = setnum as usize;
    let keys: Vec<&[u8]> = (numkeys_at + 1..numkeys_at + 1 + setnum)
        .map(|i| &req[i])
        .collect();
    let (dbi, now) = (ctx.client.db, ctx.now);
    let zlimits = limits(ctx.shared);
    let mut locked = ctx
        .shards
        .lock_keys(dst.into_iter().chain(keys.iter().copied()));
    // Every key is looked up, in order, before the options are read.
    for key in &keys {
        let mut db = locked.db(dbi, key);
        crate::notify::read_miss(&mut db, key, now);
        let found = db.get(key, now);
        ctx.client.stats.hit(found.is_some());
        if let Some(e) = found
            && !matches!(e.value, Value::ZSet(_) | Value::Set(_))
        {
            return Err(CmdError::WrongType);
        }
    }
    let mut weights = vec![1.0f64; setnum];
    let mut aggregate = store::zset::Aggregate::Sum;
    let (mut withscores, mut limit) = (false, 0usize);
    let mut j = numkeys_at + 1 + setnum;
    let card = op == SetOp::Card;
    while j < req.len() {
        let remaining = req.len() - j;
        let arg = &req[j];
        if op != SetOp::Diff && !card && remaining > setnum && eq(arg, "weights") {
            for (i, w) in weights.iter_mut().enumerate() {
                *w = store::zset::parse_weight(&req[j + 1 + i])?;
            }
            j += 1 + setnum;
        } else if op != SetOp::Diff && !card && remaining >= 2 && eq(arg, "aggregate") {
            let how = &req[j + 1];
            aggregate = if eq(how, "sum") {
                store::zset::Aggregate::Sum
            } else if eq(how, "min") {
                store::zset::Aggregate::Min
            } else if eq(how, "max") {
                store::zset::Aggregate::Max
            } else {
                return Err(CmdError::Syntax);
            };
            j += 2;
        } else if dst.is_none() && !card && eq(arg, "withscores") {
            withscores = true;
            j += 1;
        } else if card && remaining >= 2 && eq(arg, "limit") {
            limit = parse_at_least(&req[j + 1], 0, "LIMIT can't be negative")? as usize;
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    // Take the sources out of their entries (each distinct key once).
    let mut distinct: Vec<&[u8]> = Vec::new();
    for key in &keys {
        if !distinct.contains(key) {
            distinct.push(key);
        }
    }
    let taken: Vec<Option<Taken>> = distinct
        .iter()
        .map(|key| match locked.db(dbi, key).peek(key, now) {
            Some(Entry {
                value: Value::ZSet(z),
                ..
            }) => Some(Taken::ZSet(std::mem::take(z))),
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => Some(Taken::Set(std::mem::take(s))),
            _ => None,
        })
        .collect();
    let empty = ZSet::new();
    let sources: Vec<&dyn store::zset::Source> = keys
        .iter()
        .map(|key| {
            let at = distinct.iter().position(|d| d == key).unwrap_or(0);
            match taken.get(at) {
                Some(Some(Taken::ZSet(z))) => z as &dyn store::zset::Source,
                Some(Some(Taken::Set(s))) => s as &dyn store::zset::Source,
                _ => &empty as &dyn store::zset::Source,
            }
        })
        .collect();
    let mut stored = None;
    match op {
        SetOp::Card => {
            let n = store::zset::inter_card(&sources, limit);
            ctx.reply.int(n as i64);
        }
        _ => {
            let result = match op {
                SetOp::Diff => store::zset::diff(&sources),
                _ => {
                    let inputs: Vec<store::zset::Input<'_>> = sources
                        .iter()
                        .zip(&weights)
                        .map(|(&source, &weight)| store::zset::Input { source, weight })
                        .collect();
                    if op == SetOp::Union {
                        store::zset::union(&inputs, aggregate)
                    } else {
                        store::zset::inter(&inputs, aggregate)
                    }
                }
            };
            if dst.is_some() {
                stored = Some(ZSet::from_sorted(&result, &zlimits));
            } else {
                reply_members(
                    &mut ctx.reply,
                    result.iter().map(|(m, s)| (&m[..], *s)),
                    withscores,
                );
            }
        }
    }
    drop(sources);
    // Put the sources back before anything else can see the keys.
    for (key, value) in distinct.iter().zip(taken) {
        match (value, locked.db(dbi, key).peek(key, now)) {
            (
                Some(Taken::ZSet(z)),
                Some(Entry {
                    value: Value::ZSet(slot),
                    ..
                }),
            ) => *slot = z,
            (
                Some(Taken::Set(s)),
                Some(Entry {
                    value: Value::Set(slot),
                    ..
                }),
            ) => *slot = s,
            _ => {}
        }
    }
    if let (Some(dst), Some(result)) = (dst, stored) {
        let mut db = locked.db(dbi, dst);
        let n = result.len();
        if n == 0 {
            if db.delete(dst, store::keyspace::lazy::SERVER_DEL) {
                db.notify(class::GENERIC, "del", dst);
            }
        } else {
            db.set_key(dst, Entry::new(Value::ZSet(result)), now);
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                _ => "zdiffstore",
            };
            db.notify(class::ZSET, event, dst);
        }
        ctx.reply.int(n as i64);
    }
    Ok(())
}

pub(super) fn zunion(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zsetop(ctx, req, SetOp::Union, None, 1)
}

pub(super) fn zinter(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zsetop(ctx, req, SetOp::Inter, None, 1)
}

pub(super) fn zdiff(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zsetop(ctx, req, SetOp::Diff, None, 1)
}

pub(super) fn zintercard(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zsetop(ctx, req, SetOp::Card, None, 1)
}

pub(super) fn zunionstore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zsetop(ctx, req, SetOp::Union, Some(&req[1]), 2)
}

pub(super) fn zinterstore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zsetop(ctx, req, SetOp::Inter, Some(&req[1]), 2)
}

pub(super) fn zdiffstore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    zsetop(ctx, req, SetOp::Diff, Some(&req[1]), 2)
}

//! List commands, blocking ones included.

use bytes::Bytes;
use resp::Request;
use store::list::{self, List};
use store::value::Value;

use super::{CmdError, CmdResult, Ctx};
use crate::args::{Args, eq, parse_f64, parse_i64, stored_arg};
use crate::blocking::{self, BlockOp, Waiter};
use crate::client::{Blocked, Client};
use crate::db::{DbMut, Entry, LockedRef};
use crate::notify::Notify;
use crate::reply::Reply;
use store::keyspace::class;

/// The list at `key`: `Ok(None)` if absent, WRONGTYPE if another type.
fn get_list<'d>(
    db: &'d mut DbMut<'_>,
    key: &[u8],
    now: i64,
) -> Result<Option<&'d mut List>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(Entry {
            value: Value::List(l),
            ..
        }) => Ok(Some(l)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// LEFT or RIGHT.
fn side(arg: &[u8]) -> Result<bool, CmdError> {
    if eq(arg, "left") {
        Ok(true)
    } else if eq(arg, "right") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

fn push_generic(ctx: &mut Ctx<'_>, req: &Request, left: bool, only_existing: bool) -> CmdResult {
    let key = &req[1];
    let mut locked = ctx.shards.lock_keys([key]);
    let mut db = locked.db(ctx.client.db, key);
    let exists = get_list(&mut db, key, ctx.now)?.is_some();
    if only_existing && !exists {
        ctx.reply.int(0);
        return Ok(());
    }
    let len = blocking::push(&mut db, key, ctx.now, |list| {
        for i in 2..req.len() {
            let item = &req[i];
            if item.len() >= list::BIG {
                list.push_bytes(left, stored_arg(req, i));
            } else {
                list.push(left, item);
            }
        }
    });
    // One change per element, as Redis counts them.
    db.count_changes(req.len() - 3);
    db.notify(class::LIST, if left { "lpush" } else { "rpush" }, key);
    ctx.reply.int(len as i64);
    Ok(())
}

pub(super) fn lpush(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    push_generic(ctx, req, true, false)
}

pub(super) fn rpush(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    push_generic(ctx, req, false, false)
}

pub(super) fn lpushx(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    push_generic(ctx, req, true, true)
}

pub(super) fn rpushx(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    push_generic(ctx, req, false, true)
}

fn pop_generic(ctx: &mut Ctx<'_>, req: &Request, left: bool) -> CmdResult {
    if req.len() > 3 {
        return Err(CmdError::other(format!(
            "ERR wrong number of arguments for '{}' command",
            ctx.cmd.name
        )));
    }
    let count = match req.get(2) {
        Some(c) => Some(
            resp::parse_int(c)
                .filter(|&n| n >= 0)
                .ok_or_else(|| CmdError::other("ERR value is out of range, must be positive"))?
                as usize,
        ),
        None => None,
    };
    let key = &req[1];
    let mut locked = ctx.shards.lock_keys([key]);
    let mut db = locked.db(ctx.client.db, key);
    if get_list(&mut db, key, ctx.now)?.is_none() {
        match count {
            Some(_) => ctx.reply.null_array(),
            None => ctx.reply.null(),
        }
        return Ok(());
    }
    match count {
        None => {
            let items = blocking::pop(&mut db, key, left, 1);
            ctx.reply.bulk(&items[0]);
        }
        Some(n) => {
            let items = blocking::pop(&mut db, key, left, n);
            ctx.reply.array(items.len());
            items.iter().for_each(|i| ctx.reply.bulk(i));
        }
    }
    Ok(())
}

pub(super) fn lpop(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    pop_generic(ctx, req, true)
}

pub(super) fn rpop(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    pop_generic(ctx, req, false)
}

pub(super) fn llen(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut locked = ctx.shards.lock_keys([key]);
    crate::notify::read_miss(&mut locked.db(ctx.client.db, key), key, ctx.now);
    let len = get_list(&mut locked.db(ctx.client.db, key), key, ctx.now)?.map_or(0, |l| l.len());
    ctx.reply.int(len as i64);
    Ok(())
}

/// Redis's inclusive `start..=stop` over a list of `len`, or `None` if empty.
fn list_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    if start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop as usize))
}

pub(super) fn lrange(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let start = parse_i64(&req[2])?;
    let stop = parse_i64(&req[3])?;
    let key = &req[1];
    let mut locked = ctx.shards.lock_keys([key]);
    let mut db = locked.db(ctx.client.db, key);
    crate::notify::read_miss(&mut db, key, ctx.now);
    let Some(list) = get_list(&mut db, key, ctx.now)? else {
        ctx.reply.array(0);
        return Ok(());
    };
    match list_range(start, stop, list.len()) {
        Some((a, b)) => {
            ctx.reply.array(b - a + 1);
            list.iter_from(a)
                .take(b - a + 1)
                .for_each(|i| ctx.reply.bulk(i));
        }
        None => ctx.reply.array(0),
    }
    Ok(())
}

/// A Redis list index (negative from the end) resolved against `len`.
fn index(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

pub(super) fn lindex(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let i = parse_i64(&req[2])?;
    let key = &req[1];
    let mut locked = ctx.shards.lock_keys([key]);
    let mut db = locked.db(ctx.client.db, key);
    crate::notify::read_miss(&mut db, key, ctx.now);
    let list = get_list(&mut db, key, ctx.now)?;
    match list.and_then(|l| index(i, l.len()).and_then(|i| l.get(i))) {
        Some(item) => ctx.reply.bulk(item),
        None => ctx.reply.null(),
    }
    Ok(())
}

pub(super) fn lset(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let i = parse_i64(&req[2])?;
    let key = &req[1];
    let mut locked = ctx.shards.lock_keys([key]);
    let mut db = locked.db(ctx.client.db, key);
    let Some(list) = get_list(&mut db, key, ctx.now)? else {
        return Err(CmdError::other("ERR no such key"));
    };
    let i = index(i, list.len()).ok_or_else(|| CmdError::other("ERR index out of range"))?;
    list.set(i, stored_arg(req, 3));
    db.modified(key);
    db.notify(class::LIST, "lset", key);
    ctx.reply.ok();
    Ok(())
}

pub(super) fn linsert(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let before = if eq(&req[2], "before") {
        true
    } else if eq(&req[2], "after") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let key = &req[1];
    let mut locked = ctx.shards.lock_keys([key]);
    let mut db = locked.db(ctx.client.db, key);
    let Some(list) = get_list(&mut db, key, ctx.now)? else {
        ctx.reply.int(0);
        return Ok(());
    };
    let Some(at) = list.iter().position(|i| *i == req[3]) else {
        ctx.reply.int(-1);
        return Ok(());
    };
    let item = stored_arg(req, 4);
    list.insert(if before { at } else { at + 1 }, item);
    ctx.reply.int(list.len() as i64);
    db.modified(key);
    db.notify(class::LIST, "linsert", key);
    Ok(())
}

pub(super) fn lrem(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let count = parse_i64(&req[2])?;
    let key = &req[1];
    let target = &req[3];
    let mut locked = ctx.shards.lock_keys([key]);
    let mut db = locked.db(ctx.client.db, key);
    let Some(list) = get_list(&mut db, key, ctx.now)? else {
        ctx.reply.int(0);
        return Ok(());
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    let removed = list.remove_matching(target, limit, count >= 0);
    let empty = list.is_empty();
    if removed > 0 {
        db.notify(class::LIST, "lrem", key);
    }
    if empty {
        db.remove(key);
        db.notify(class::GENERIC, "del", key);
    } else if removed > 0 {
        db.modified(key);
    }
    ctx.reply.int(removed as i64);
    Ok(())
}

pub(super) fn ltrim(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let start = parse_i64(&req[2])?;
    let stop = parse_i64(&req[3])?;
    let key = &req[1];
    let mut locked = ctx.shards.lock_keys([key]);
    let mut db = locked.db(ctx.client.db, key);
    if let Some(list) = get_list(&mut db, key, ctx.now)? {
        match list_range(start, stop, list.len()) {
            Some((a, b)) => list.trim(a, b),
            None => list.clear(),
        }
        // Redis counts LTRIM of an existing list as a change, even when
        // nothing was trimmed.
        let empty = list.is_empty();
        db.notify(class::LIST, "ltrim", key);
        if empty {
            db.remove(key);
            db.notify(class::GENERIC, "del", key);
        } else {
            db.modified(key);
        }
    }
    ctx.reply.ok();
    Ok(())
}

pub(super) fn lpos(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let mut args = Args::new(req);
    let key = args.next()?;
    let target = args.next()?;
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0i64);
    while let Some(opt) = args.peek() {
        args.next()?;
        if eq(opt, "rank") && args.remaining() > 0 {
            rank = parse_i64(args.next()?)?;
            if rank == 0 {
                return Err(CmdError::other(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if eq(opt, "count") && args.remaining() > 0 {
            let c = parse_i64(args.next()?)?;
            if c < 0 {
                return Err(CmdError::other("ERR COUNT can't be negative"));
            }
            count = Some(c);
        } else if eq(opt, "maxlen") && args.remaining() > 0 {
            maxlen = parse_i64(args.next()?)?;
            if maxlen < 0 {
                return Err(CmdError::other("ERR MAXLEN can't be negative"));
            }
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut locked = ctx.shards.lock_keys([key]);
    let mut db = locked.db(ctx.client.db, key);
    crate::notify::read_miss(&mut db, key, ctx.now);
    let Some(list) = get_list(&mut db, key, ctx.now)? else {
        match count {
            Some(_) => ctx.reply.array(0),
            None => ctx.reply.null(),
        }
        return Ok(());
    };
    let len = list.len();
    let want = match count {
        Some(0) => usize::MAX,
        Some(c) => c as usize,
        None => 1,
    };
    let scan_limit = if maxlen == 0 {
        len
    } else {
        (maxlen as usize).min(len)
    };
    // Redis negates RANK in a C `long`; the most negative rank stays
    // negative there and takes the first match from the tail.
    let mut skip = if rank == i64::MIN {
        0
    } else {
        rank.unsigned_abs() - 1
    };
    let mut found = Vec::new();
    let items = if rank > 0 {
        list.iter()
    } else {
        list.iter_rev()
    };
    for (step, item) in items.take(scan_limit).enumerate() {
        let i = if rank > 0 { step } else { len - 1 - step };
        if item == target {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(i as i64);
            if found.len() >= want {
                break;
            }
        }
    }
    match count {
        Some(_) => {
            ctx.reply.array(found.len());
            found.iter().for_each(|&i| ctx.reply.int(i));
        }
        None => match found.first() {
            Some(&i) => ctx.reply.int(i),
            None => ctx.reply.null(),
        },
    }
    Ok(())
}

/// LMOVE's work, shared by the blocking forms: `Ok(None)` if the source is
/// empty. Serves clients blocked on the destination.
fn lmove_locked(
    locked: &mut LockedRef<'_, '_>,
    db: usize,
    now: i64,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
) -> Result<Option<Bytes>, CmdError> {
    if get_list(&mut locked.db(db, src), src, now)?.is_none() {
        return Ok(None);
    }
    get_list(&mut locked.db(db, dst), dst, now)?;
    let item = blocking::move_one(locked, (db, now), src, dst, from_left, to_left);
    Ok(Some(item))
}

fn lmove_generic(
    ctx: &mut Ctx<'_>,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
) -> CmdResult {
    let mut locked = ctx.shards.lock_keys([src, dst]);
    let (db, now) = (ctx.client.db, ctx.now);
    match lmove_locked(&mut locked, db, now, src, dst, from_left, to_left)? {
        Some(item) => {
            ctx.reply.bulk(&item);
        }
        None => ctx.reply.null(),
    }
    Ok(())
}

pub(super) fn lmove(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let from_left = side(&req[3])?;
    let to_left = side(&req[4])?;
    lmove_generic(ctx, &req[1], &req[2], from_left, to_left)
}

pub(super) fn rpoplpush(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    lmove_generic(ctx, &req[1], &req[2], false, true)
}

/// LMPOP and BLMPOP arguments from `numkeys` on: keys, side, count.
fn mpop_args(req: &Request, numkeys_at: usize) -> Result<(Vec<Bytes>, bool, usize), CmdError> {
    let bad_numkeys = || CmdError::other("ERR numkeys should be greater than 0");
    let numkeys = resp::parse_int(&req[numkeys_at])
        .filter(|&n| n > 0)
        .ok_or_else(bad_numkeys)?;
    let side_at = numkeys_at as i64 + numkeys + 1;
    if side_at >= req.len() as i64 {
        return Err(CmdError::Syntax);
    }
    let side_at = side_at as usize;
    let left = side(&req[side_at])?;
    let mut count = None;
    let mut i = side_at + 1;
    while i < req.len() {
        if count.is_none() && eq(&req[i], "count") && i + 1 < req.len() {
            let c = resp::parse_int(&req[i + 1])
                .filter(|&n| n > 0)
                .ok_or_else(|| CmdError::other("ERR count should be greater than 0"))?;
            count = Some(c as usize);
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let keys = (numkeys_at + 1..side_at)
        .map(|i| req.arg_bytes(i).unwrap_or_default())
        .collect();
    Ok((keys, left, count.unwrap_or(1)))
}

/// Pops from the first non-empty list of `keys` of `db`, replying as
/// BLPOP (`count: None`) or LMPOP (`Some(count)`). Returns whether it
/// popped.
fn pop_first(
    reply: &mut Reply<'_>,
    locked: &mut LockedRef<'_, '_>,
    (db, now): (usize, i64),
    keys: &[Bytes],
    left: bool,
    count: Option<usize>,
) -> Result<bool, CmdError> {
    for key in keys {
        if get_list(&mut locked.db(db, key), key, now)?.is_some() {
            let items = blocking::pop(&mut locked.db(db, key), key, left, count.unwrap_or(1));
            if locked.effects().recording() {
                locked.effects().rewrite(vec![blocking::pop_op(
                    db,
                    key,
                    left,
                    count.map(|_| items.len()),
                )]);
            }
            reply.array(2);
            reply.bulk(key);
            if count.is_some() {
                reply.array(items.len());
                items.iter().for_each(|i| reply.bulk(i));
            } else {
                reply.bulk(&items[0]);
            }
            return Ok(true);
        }
    }
    Ok(false)
}

pub(super) fn lmpop(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let (keys, left, count) = mpop_args(req, 1)?;
    let mut locked = ctx.shards.lock_keys(keys.iter().map(|k| &k[..]));
    let at = (ctx.client.db, ctx.now);
    if !pop_first(&mut ctx.reply, &mut locked, at, &keys, left, Some(count))? {
        ctx.reply.null_array();
    }
    Ok(())
}

/// A blocking timeout in seconds: the deadline in Unix ms, or `None` to
/// wait forever.
pub(super) fn timeout(arg: &[u8], now: i64) -> Result<Option<i64>, CmdError> {
    let secs = parse_f64(arg)
        .map_err(|_| CmdError::other("ERR timeout is not a float or out of range"))?;
    let ms = (secs * 1000.0) as i64;
    if ms < 0 {
        return Err(CmdError::other("ERR timeout is negative"));
    }
    if ms == 0 {
        return Ok(None);
    }
    now.checked_add(ms)
        .map(Some)
        .ok_or_else(|| CmdError::other("ERR timeout is out of range"))
}

/// Blocks the client on `keys` (their shards locked by the caller, all
/// found empty): what the handler's context's `next` then holds.
pub(super) fn block(
    client: &Client,
    locked: &mut LockedRef<'_, '_>,
    keys: Vec<Bytes>,
    op: BlockOp,
    deadline: Option<i64>,
) -> super::Next {
    let (waiter, rx) = Waiter::new(client.db, keys, op, client.proto);
    blocking::register(locked, &waiter);
    super::Next::Block(Blocked {
        waiter,
        rx,
        deadline,
    })
}

fn bpop(ctx: &mut Ctx<'_>, req: &Request, left: bool) -> CmdResult {
    let deadline = timeout(&req[req.len() - 1], ctx.now)?;
    let keys: Vec<Bytes> = (1..req.len() - 1)
        .map(|i| req.arg_bytes(i).unwrap_or_default())
        .collect();
    let mut locked = ctx.shards.lock_keys(keys.iter().map(|k| &k[..]));
    let at = (ctx.client.db, ctx.now);
    if pop_first(&mut ctx.reply, &mut locked, at, &keys, left, None)? {
        return Ok(());
    }
    if ctx.client.in_exec {
        ctx.reply.null_array();
        return Ok(());
    }
    ctx.next = Some(block(
        ctx.client,
        &mut locked,
        keys,
        BlockOp::Pop { left, count: None },
        deadline,
    ));
    Ok(())
}

pub(super) fn blpop(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    bpop(ctx, req, true)
}

pub(super) fn brpop(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    bpop(ctx, req, false)
}

pub(super) fn blmpop(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let deadline = timeout(&req[1], ctx.now)?;
    let (keys, left, count) = mpop_args(req, 2)?;
    let mut locked = ctx.shards.lock_keys(keys.iter().map(|k| &k[..]));
    let at = (ctx.client.db, ctx.now);
    if pop_first(&mut ctx.reply, &mut locked, at, &keys, left, Some(count))? {
        return Ok(());
    }
    if ctx.client.in_exec {
        ctx.reply.null_array();
        return Ok(());
    }
    ctx.next = Some(block(
        ctx.client,
        &mut locked,
        keys,
        BlockOp::Pop {
            left,
            count: Some(count),
        },
        deadline,
    ));
    Ok(())
}

fn bmove(
    ctx: &mut Ctx<'_>,
    src: &Bytes,
    dst: &Bytes,
    from_left: bool,
    to_left: bool,
    deadline: Option<i64>,
) -> CmdResult {
    let mut locked = ctx.shards.lock_keys([&src[..], &dst[..]]);
    let (db, now) = (ctx.client.db, ctx.now);
    if let Some(item) = lmove_locked(&mut locked, db, now, src, dst, from_left, to_left)? {
        ctx.reply.bulk(&item);
        return Ok(());
    }
    if ctx.client.in_exec {
        ctx.reply.null();
        return Ok(());
    }
    let op = BlockOp::Move {
        from_left,
        to_left,
        dst: dst.clone(),
    };
    ctx.next = Some(block(
        ctx.client,
        &mut locked,
        vec![src.clone()],
        op,
        deadline,
    ));
    Ok(())
}

pub(super) fn blmove(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let from_left = side(&req[3])?;
    let to_left = side(&req[4])?;
    let deadline = timeout(&req[5], ctx.now)?;
    let (src, dst) = (
        req.arg_bytes(1).unwrap_or_default(),
        req.arg_bytes(2).unwrap_or_default(),
    );
    bmove(ctx, &src, &dst, from_left, to_left, deadline)
}

pub(super) fn brpoplpush(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let deadline = timeout(&req[3], ctx.now)?;
    let (src, dst) = (
        req.arg_bytes(1).unwrap_or_default(),
        req.arg_bytes(2).unwrap_or_default(),
    );
    bmove(ctx, &src, &dst, false, true, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(list_range(0, -1, 3), Some((0, 2)));
        assert_eq!(list_range(-2, -1, 3), Some((1, 2)));
        assert_eq!(list_range(1, 100, 3), Some((1, 2)));
        assert_eq!(list_range(2, 1, 3), None);
        assert_eq!(list_range(5, 10, 3), None);
        assert_eq!(list_range(-100, -50, 3), None);
        assert_eq!(index(-1, 3), Some(2));
        assert_eq!(index(3, 3), None);
        assert_eq!(index(-4, 3), None);
    }
}

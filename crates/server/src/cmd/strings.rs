//! String commands.

use bytes::Bytes;
use resp::Request;
use smallvec::SmallVec;
use store::longdouble;
use store::value::{Form, Str, Value};

use super::{CmdError, CmdResult, Ctx};
use crate::args::{Args, eq, parse_i64, stored_str};
use crate::db::{DbMut, Entry, hash_key};
use crate::notify::Notify;
use store::keyspace::class;

/// The string at `key`: `Ok(None)` if absent, WRONGTYPE if another type.
pub(super) fn get_str<'d>(
    db: &'d mut DbMut<'_>,
    key: &[u8],
    now: i64,
) -> Result<Option<&'d mut Str>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => Ok(Some(s)),
        Some(_) => Err(CmdError::WrongType),
    }
}

fn string_entry(s: Str) -> Entry {
    Entry::new(Value::Str(s))
}

pub(super) fn get(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    crate::notify::read_miss(&mut db, key, ctx.now);
    let found = get_str(&mut db, key, ctx.now)?;
    ctx.client.stats.hit(found.is_some());
    match found {
        Some(s) => match s.shared() {
            Some(b) => ctx.reply.bulk_shared(b),
            None => ctx.reply.bulk(s.bytes()),
        },
        None => ctx.reply.null(),
    }
    Ok(())
}

/// The expiry options shared by SET and GETEX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Keep,
    /// Relative seconds or milliseconds, or an absolute time.
    Ex(i64),
    Px(i64),
    ExAt(i64),
    PxAt(i64),
    Persist,
}

impl Expiry {
    /// The absolute deadline in ms, Redis's checks and error included.
    fn deadline(self, now: i64, command: &str) -> Result<Option<i64>, CmdError> {
        let invalid = || CmdError::other(format!("ERR invalid expire time in '{command}' command"));
        let (ms, relative) = match self {
            Expiry::Keep | Expiry::Persist => return Ok(None),
            Expiry::Ex(s) | Expiry::ExAt(s) => {
                if s <= 0 || s > i64::MAX / 1000 {
                    return Err(invalid());
                }
                (s * 1000, matches!(self, Expiry::Ex(_)))
            }
            Expiry::Px(ms) | Expiry::PxAt(ms) => {
                if ms <= 0 {
                    return Err(invalid());
                }
                (ms, matches!(self, Expiry::Px(_)))
            }
        };
        let at = if relative {
            ms.checked_add(now).ok_or_else(invalid)?
        } else {
            ms
        };
        Ok(Some(at))
    }
}

/// Reads one `EX n`, `PX n`, `EXAT n`, `PXAT n` option if `opt` is one.
fn expiry_option(opt: &[u8], args: &mut Args<'_>) -> Result<Option<Expiry>, CmdError> {
    let make: fn(i64) -> Expiry = if eq(opt, "ex") {
        Expiry::Ex
    } else if eq(opt, "px") {
        Expiry::Px
    } else if eq(opt, "exat") {
        Expiry::ExAt
    } else if eq(opt, "pxat") {
        Expiry::PxAt
    } else {
        return Ok(None);
    };
    // The value is checked later, after every option has been read, as in
    // Redis: a syntax error anywhere wins over a bad number.
    let value = args.next()?;
    Ok(Some(make(resp::parse_int(value).unwrap_or(i64::MIN))))
}

pub(super) fn set(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let mut args = Args::new(req);
    let key = args.next()?;
    args.next()?; // the value, stored below
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut opts = ExpiryOpts::default();
    while let Some(opt) = args.peek() {
        args.next()?;
        if eq(opt, "nx") && !xx {
            nx = true;
        } else if eq(opt, "xx") && !nx {
            xx = true;
        } else if eq(opt, "get") {
            get = true;
        } else if eq(opt, "keepttl") && matches!(opts.expiry, None | Some(Expiry::Keep)) {
            opts.expiry = Some(Expiry::Keep);
        } else if !opts.take(opt, &mut args)? {
            return Err(CmdError::Syntax);
        }
    }
    let keep_ttl = opts.expiry == Some(Expiry::Keep);
    let deadline = opts.deadline(ctx.now, "set")?;
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    if get {
        // SET ... GET reads the key first, as GET does.
        crate::notify::read_miss(&mut db, key, ctx.now);
    }
    let reply = &mut ctx.reply;
    let mut stored = false;
    // One lookup decides everything: the old value for GET, NX and XX,
    // the old deadline for KEEPTTL.
    let result = db.update(key, ctx.now, |old| {
        if get {
            match old.map(|e| &e.value) {
                Some(Value::Str(old)) => reply.bulk(old.bytes()),
                Some(_) => return (None, Err(CmdError::WrongType)),
                None => reply.null(),
            }
        }
        if (nx && old.is_some()) || (xx && old.is_none()) {
            if !get {
                reply.null();
            }
            return (None, Ok(()));
        }
        let mut entry = string_entry(stored_str(req, 2));
        entry.set_expire_at(deadline.or(old.filter(|_| keep_ttl).and_then(Entry::expire_at)));
        if !get {
            reply.ok();
        }
        stored = true;
        (Some(entry), Ok(()))
    });
    if stored {
        db.notify(class::STRING, "set", key);
        if deadline.is_some() {
            db.notify(class::GENERIC, "expire", key);
        }
    }
    result
}

/// The expiry options of SET and GETEX as they are read.
#[derive(Debug, Default)]
struct ExpiryOpts<'a> {
    expiry: Option<Expiry>,
    /// The text of the last amount given, checked once all options are in.
    raw: Option<&'a [u8]>,
}

impl<'a> ExpiryOpts<'a> {
    /// Takes `EX n`, `PX n`, `EXAT n` or `PXAT n` if `opt` is one and may
    /// come here: first of its kind, or a repeat of the same kind (the last
    /// wins, as in Redis). Returns whether it took it.
    fn take(&mut self, opt: &[u8], args: &mut Args<'a>) -> Result<bool, CmdError> {
        let is_amount = ["ex", "px", "exat", "pxat"].iter().any(|o| eq(opt, o));
        let allowed = self.expiry.is_none() || same_kind(self.expiry, opt);
        if !is_amount || !allowed || args.remaining() == 0 {
            return Ok(false);
        }
        self.raw = args.peek();
        self.expiry = expiry_option(opt, args)?;
        Ok(true)
    }

    /// The deadline, after checking the amount is an integer.
    fn deadline(&self, now: i64, command: &str) -> Result<Option<i64>, CmdError> {
        if self.raw.is_some_and(|raw| resp::parse_int(raw).is_none()) {
            return Err(CmdError::NotInteger);
        }
        match self.expiry {
            Some(e) => e.deadline(now, command),
            None => Ok(None),
        }
    }
}

/// Whether `opt` repeats the expiry option already given (`EX 1 EX 2` is
/// allowed: the last wins).
fn same_kind(expiry: Option<Expiry>, opt: &[u8]) -> bool {
    match expiry {
        Some(Expiry::Ex(_)) => eq(opt, "ex"),
        Some(Expiry::Px(_)) => eq(opt, "px"),
        Some(Expiry::ExAt(_)) => eq(opt, "exat"),
        Some(Expiry::PxAt(_)) => eq(opt, "pxat"),
        _ => false,
    }
}

pub(super) fn setnx(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = Bytes::copy_from_slice(&req[1]);
    let value = stored_str(req, 2);
    let mut shard = ctx.shards.lock_key(&key);
    let mut db = shard.db(ctx.client.db);
    if db.contains(&key, ctx.now) {
        ctx.reply.int(0);
    } else {
        db.insert(key.clone(), string_entry(value));
        db.notify(class::STRING, "set", &key);
        ctx.reply.int(1);
    }
    Ok(())
}

fn set_with_expiry(ctx: &mut Ctx<'_>, req: &Request, millis: bool) -> CmdResult {
    let amount = parse_i64(&req[2])?;
    let expiry = if millis {
        Expiry::Px(amount)
    } else {
        Expiry::Ex(amount)
    };
    let deadline = expiry.deadline(ctx.now, ctx.cmd.name)?;
    let key = Bytes::copy_from_slice(&req[1]);
    let value = stored_str(req, 3);
    let mut entry = string_entry(value);
    entry.set_expire_at(deadline);
    let mut shard = ctx.shards.lock_key(&key);
    let mut db = shard.db(ctx.client.db);
    db.set_key(&key, entry, ctx.now);
    db.notify(class::STRING, "set", &key);
    db.notify(class::GENERIC, "expire", &key);
    ctx.reply.ok();
    Ok(())
}

pub(super) fn setex(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    set_with_expiry(ctx, req, false)
}

pub(super) fn psetex(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    set_with_expiry(ctx, req, true)
}

pub(super) fn getset(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = Bytes::copy_from_slice(&req[1]);
    let value = stored_str(req, 2);
    let mut shard = ctx.shards.lock_key(&key);
    let mut db = shard.db(ctx.client.db);
    crate::notify::read_miss(&mut db, &key, ctx.now);
    match get_str(&mut db, &key, ctx.now)? {
        Some(old) => ctx.reply.bulk(old.bytes()),
        None => ctx.reply.null(),
    }
    db.insert(key.clone(), string_entry(value));
    db.notify(class::STRING, "set", &key);
    Ok(())
}

pub(super) fn getdel(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    crate::notify::read_miss(&mut db, key, ctx.now);
    match get_str(&mut db, key, ctx.now)? {
        Some(old) => {
            ctx.reply.bulk(old.bytes());
            db.remove(key);
            db.notify(class::GENERIC, "del", key);
        }
        None => ctx.reply.null(),
    }
    Ok(())
}

pub(super) fn getex(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let mut args = Args::new(req);
    let key = args.next()?;
    let mut opts = ExpiryOpts::default();
    while let Some(opt) = args.peek() {
        args.next()?;
        if eq(opt, "persist") && opts.expiry.is_none() {
            opts.expiry = Some(Expiry::Persist);
        } else if !opts.take(opt, &mut args)? {
            return Err(CmdError::Syntax);
        }
    }
    let expiry = opts.expiry;
    let deadline = opts.deadline(ctx.now, "getex")?;
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    crate::notify::read_miss(&mut db, key, ctx.now);
    let Some(s) = get_str(&mut db, key, ctx.now)? else {
        ctx.reply.null();
        return Ok(());
    };
    ctx.reply.bulk(s.bytes());
    match expiry {
        Some(Expiry::Persist) => {
            let had = db
                .get(key, ctx.now)
                .is_some_and(|e| e.expire_at().is_some());
            db.set_expire(key, None);
            if had {
                db.notify(class::GENERIC, "persist", key);
            }
        }
        Some(_) => {
            // A deadline already past deletes the key, as in Redis.
            match deadline {
                Some(at) if at <= ctx.now => {
                    db.remove(key);
                    db.notify(class::GENERIC, "del", key);
                }
                at => {
                    db.set_expire(key, at);
                    db.notify(class::GENERIC, "expire", key);
                }
            }
        }
        None => {}
    }
    Ok(())
}

pub(super) fn mget(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    // Each key hashed once: for its shard, its lock and its lookup.
    let keys: SmallVec<[(&[u8], u64); 16]> = req.iter().skip(1).map(|k| (k, hash_key(k))).collect();
    let mut locked = ctx.shards.lock_hashes(keys.iter().map(|&(_, h)| h));
    ctx.reply.array(keys.len());
    for (key, hash) in keys {
        let mut db = locked.db_of_hash(ctx.client.db, hash);
        crate::notify::read_miss(&mut db, key, ctx.now);
        match db.get_hashed(key, hash, ctx.now) {
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => ctx.reply.bulk(s.bytes()),
            _ => ctx.reply.null(),
        }
    }
    Ok(())
}

/// MSET's and MSETNX's keys, after the arity check (an odd number of
/// arguments after the name).
fn mset_keys<'r>(
    name: &str,
    req: &'r Request,
) -> Result<impl Iterator<Item = &'r [u8]> + Clone + use<'r>, CmdError> {
    if req.len().is_multiple_of(2) {
        return Err(CmdError::other(format!(
            "ERR wrong number of arguments for '{name}' command"
        )));
    }
    Ok((1..req.len()).step_by(2).map(|i| &req[i]))
}

pub(super) fn mset(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let keys = mset_keys(ctx.cmd.name, req)?;
    let db = ctx.client.db;
    let mut locked = ctx.shards.lock_keys(keys);
    for i in (1..req.len()).step_by(2) {
        let key = &req[i];
        let mut d = locked.db(db, key);
        // An expired key still in the table is deleted first (`expired`),
        // as Redis's lookup in `setKey` does.
        d.set_key(key, string_entry(stored_str(req, i + 1)), ctx.now);
        d.notify(class::STRING, "set", key);
    }
    ctx.reply.ok();
    Ok(())
}

pub(super) fn msetnx(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let keys = mset_keys(ctx.cmd.name, req)?;
    let db = ctx.client.db;
    let mut locked = ctx.shards.lock_keys(keys.clone());
    if keys.clone().any(|k| locked.db(db, k).contains(k, ctx.now)) {
        ctx.reply.int(0);
        return Ok(());
    }
    for i in (1..req.len()).step_by(2) {
        let key = &req[i];
        let mut d = locked.db(db, key);
        d.put(key, string_entry(stored_str(req, i + 1)));
        d.notify(class::STRING, "set", key);
    }
    ctx.reply.int(1);
    Ok(())
}

/// Fails if a string would grow past `proto-max-bulk-len`.
fn check_size(shared: &crate::server::Shared, len: u64) -> CmdResult {
    if len
        > shared
            .max_bulk_len
            .load(std::sync::atomic::Ordering::Relaxed) as u64
    {
        return Err(CmdError::other(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    Ok(())
}

pub(super) fn append(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let extra = &req[2];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    match get_str(&mut db, key, ctx.now)? {
        Some(s) => {
            let len = (s.bytes().len() + extra.len()) as u64;
            check_size(ctx.shared, len)?;
            s.append(extra);
            db.modified(key);
            ctx.reply.int(len as i64);
        }
        None => {
            let value = stored_str(req, 2);
            db.insert(Bytes::copy_from_slice(key), string_entry(value));
            ctx.reply.int(extra.len() as i64);
        }
    }
    db.notify(class::STRING, "append", key);
    Ok(())
}

pub(super) fn strlen(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    crate::notify::read_miss(&mut shard.db(ctx.client.db), key, ctx.now);
    let len = get_str(&mut shard.db(ctx.client.db), key, ctx.now)?.map_or(0, |s| s.bytes().len());
    ctx.reply.int(len as i64);
    Ok(())
}

/// INCR and friends: the new value, keeping the key's deadline.
fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> CmdResult {
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let new = match get_str(&mut db, key, ctx.now)? {
        Some(s) => {
            let new = parse_i64(s.bytes())?
                .checked_add(by)
                .ok_or(CmdError::Overflow)?;
            s.set_i64(new);
            db.modified(key);
            new
        }
        None => {
            db.insert(Bytes::copy_from_slice(key), string_entry(Str::from_i64(by)));
            by
        }
    };
    db.notify(class::STRING, "incrby", key);
    ctx.reply.int(new);
    Ok(())
}

pub(super) fn incr(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    incr_by(ctx, &req[1], 1)
}

pub(super) fn decr(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    incr_by(ctx, &req[1], -1)
}

pub(super) fn incrby(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let by = parse_i64(&req[2])?;
    incr_by(ctx, &req[1], by)
}

pub(super) fn decrby(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let by = parse_i64(&req[2])?;
    let by = by
        .checked_neg()
        .ok_or_else(|| CmdError::other("ERR decrement would overflow"))?;
    incr_by(ctx, &req[1], by)
}

pub(super) fn incrbyfloat(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    // Redis checks the key's type and value before the increment (INCRBY
    // checks its increment first).
    let current = match get_str(&mut db, key, ctx.now)? {
        Some(s) => longdouble::parse(s.bytes()).ok_or(CmdError::NotFloat)?,
        None => longdouble::ZERO,
    };
    let by = longdouble::parse(&req[2]).ok_or(CmdError::NotFloat)?;
    let new = longdouble::add(current, by);
    if !longdouble::is_finite(new) {
        return Err(CmdError::other(
            "ERR increment would produce NaN or Infinity",
        ));
    }
    let text = Bytes::from(longdouble::format(new));
    ctx.reply.bulk(&text);
    match get_str(&mut db, key, ctx.now)? {
        Some(s) => {
            *s = Str::new(text, Form::Plain);
            db.modified(key);
        }
        None => db.insert(
            Bytes::copy_from_slice(key),
            Entry::new(Value::Str(Str::new(text, Form::Plain))),
        ),
    }
    db.notify(class::STRING, "incrbyfloat", key);
    Ok(())
}

/// Resolves Redis's inclusive, possibly negative `start..=end` over `len`.
fn range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (s, e) = (norm(start), norm(end).min(len - 1));
    if start < 0 && end < 0 && start > end || len == 0 || s > e {
        return None;
    }
    Some((s as usize, e as usize))
}

pub(super) fn getrange(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let start = parse_i64(&req[2])?;
    let end = parse_i64(&req[3])?;
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    crate::notify::read_miss(&mut db, key, ctx.now);
    let Some(s) = get_str(&mut db, key, ctx.now)? else {
        ctx.reply.bulk(b"");
        return Ok(());
    };
    match range(start, end, s.bytes().len()) {
        Some((a, b)) => ctx.reply.bulk(&s.bytes()[a..=b]),
        None => ctx.reply.bulk(b""),
    }
    Ok(())
}

pub(super) fn setrange(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let offset = parse_i64(&req[2])?;
    if offset < 0 {
        return Err(CmdError::other("ERR offset is out of range"));
    }
    let value = &req[3];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let existing = get_str(&mut db, key, ctx.now)?;
    let current_len = existing.as_ref().map_or(0, |s| s.bytes().len());
    if value.is_empty() {
        ctx.reply.int(current_len as i64);
        return Ok(());
    }
    let end = offset as u64 + value.len() as u64;
    check_size(ctx.shared, end)?;
    let end = end as usize;
    let offset = offset as usize;
    // Written where the string lies (grown in place if the allocator
    // can), or a new string of zeros up to `offset`.
    let len = match existing {
        Some(s) => {
            let len = s.modify(end, |b| {
                b[offset..end].copy_from_slice(value);
                b.len()
            });
            db.modified(key);
            len
        }
        None => {
            let mut buf = vec![0; end];
            buf[offset..end].copy_from_slice(value);
            db.insert(
                Bytes::copy_from_slice(key),
                Entry::new(Value::Str(Str::from_vec(buf, Form::Raw))),
            );
            end
        }
    };
    db.notify(class::STRING, "setrange", key);
    ctx.reply.int(len as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_like_redis() {
        assert_eq!(range(0, -1, 5), Some((0, 4)));
        assert_eq!(range(-3, -1, 5), Some((2, 4)));
        assert_eq!(range(3, 100, 5), Some((3, 4)));
        assert_eq!(range(4, 2, 5), None);
        assert_eq!(range(-1, -3, 5), None);
        assert_eq!(range(0, 0, 0), None);
        assert_eq!(range(-100, 0, 5), Some((0, 0)));
    }
}

//! Hash commands: HSET HSETNX HMSET HGET HMGET HGETALL HKEYS HVALS HLEN
//! HEXISTS HDEL HSTRLEN HINCRBY HINCRBYFLOAT HRANDFIELD HSCAN.
//!
//! The value is `store::Hash`; here are Redis's arguments, replies, errors
//! and the order it checks them in. A hash is never empty: the last HDEL
//! deletes its key.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use resp::{Protocol, Request};
use store::hash::{Hash, Limits};
use store::longdouble;
use store::value::Value;

use super::{CmdError, CmdResult, Ctx};
use crate::args::{eq, parse_i64};
use crate::config::Config;
use crate::db::{DbMut, Entry, Rng};
use crate::notify::Notify;
use crate::reply::Reply;
use crate::server::LocalStats;
use store::keyspace::{Op, class};

/// The limits that decide values' encodings (`hash-max-listpack-*`,
/// `set-max-intset-entries`, `zset-max-listpack-*`), read by every write that may convert a
/// value, so kept outside the config's lock (CONFIG SET updates them).
#[derive(Debug)]
pub(crate) struct Encodings {
    hash_entries: AtomicUsize,
    hash_value: AtomicUsize,
    intset_entries: AtomicUsize,
    zset_entries: AtomicUsize,
    zset_value: AtomicUsize,
}

impl Encodings {
    pub(crate) fn new(config: &Config) -> Self {
        let limits = Encodings {
            hash_entries: AtomicUsize::new(0),
            hash_value: AtomicUsize::new(0),
            intset_entries: AtomicUsize::new(0),
            zset_entries: AtomicUsize::new(0),
            zset_value: AtomicUsize::new(0),
        };
        limits.update(config);
        limits
    }

    /// Takes the values `config` has now.
    pub(crate) fn update(&self, config: &Config) {
        let read = |name| usize::try_from(config.get_i64(name)).unwrap_or(0);
        self.hash_entries
            .store(read("hash-max-listpack-entries"), Ordering::Relaxed);
        self.hash_value
            .store(read("hash-max-listpack-value"), Ordering::Relaxed);
        self.intset_entries
            .store(read("set-max-intset-entries"), Ordering::Relaxed);
        self.zset_entries
            .store(read("zset-max-listpack-entries"), Ordering::Relaxed);
        self.zset_value
            .store(read("zset-max-listpack-value"), Ordering::Relaxed);
    }

    /// A packed hash's limits.
    pub(crate) fn hash(&self) -> Limits {
        Limits {
            entries: self.hash_entries.load(Ordering::Relaxed),
            value: self.hash_value.load(Ordering::Relaxed),
        }
    }

    /// The limits values are loaded under (RESTORE, files, full syncs),
    /// as Redis loads them under its configuration.
    pub(crate) fn load_limits(&self) -> store::rdb::Limits {
        store::rdb::Limits {
            hash: self.hash(),
            zset: self.zset(),
        }
    }

    /// `set-max-intset-entries`.
    pub(crate) fn intset(&self) -> usize {
        self.intset_entries.load(Ordering::Relaxed)
    }

    /// A packed sorted set's limits (`zset-max-listpack-*`).
    pub(crate) fn zset(&self) -> store::zset::Limits {
        store::zset::Limits {
            entries: self.zset_entries.load(Ordering::Relaxed),
            value: self.zset_value.load(Ordering::Relaxed),
        }
    }
}

/// The hash at `key`: `Ok(None)` if absent, WRONGTYPE if another type.
fn get_hash<'d>(
    db: &'d mut DbMut<'_>,
    key: &[u8],
    now: i64,
) -> Result<Option<&'d mut Hash>, CmdError> {
    super::typed(db, key, now, |v| match v {
        Value::Hash(x) => Some(x),
        _ => None,
    })
}

/// Runs `f` on the hash at `key`, made empty if the key is absent (and
/// stored, if `f` left it non-empty): Redis's
/// `hashTypeLookupWriteOrCreate`. Marks the key changed if `f` says so.
fn write_hash<R>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(&mut Hash) -> Result<(R, bool), CmdError>,
) -> Result<R, CmdError> {
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    match get_hash(&mut db, key, ctx.now)? {
        Some(h) => {
            let (r, changed) = f(h)?;
            if changed {
                db.modified(key);
            }
            Ok(r)
        }
        None => {
            let mut h = Hash::new();
            let (r, _) = f(&mut h)?;
            if !h.is_empty() {
                db.put(key, Entry::new(Value::Hash(h)));
            }
            Ok(r)
        }
    }
}

/// Redis's arity error, for the checks a command makes beyond its arity.
fn arity(ctx: &Ctx<'_>) -> CmdError {
    CmdError::other(format!(
        "ERR wrong number of arguments for '{}' command",
        ctx.cmd.name
    ))
}

/// HSET and HMSET: the new fields, or OK.
fn hset_generic(ctx: &mut Ctx<'_>, req: &Request, hmset: bool) -> CmdResult {
    if req.len() % 2 == 1 {
        return Err(arity(ctx));
    }
    let limits = ctx.shared.encodings.hash();
    let created = write_hash(ctx, &req[1], |h| {
        h.prepare((2..req.len()).map(|i| req[i].len()), &limits);
        let mut created = 0;
        for i in (2..req.len()).step_by(2) {
            created += i64::from(h.set(&req[i], &req[i + 1], &limits));
        }
        Ok((created, true))
    })?;
    // One change per pair, as Redis counts them.
    ctx.shards.effects().changed_by((req.len() / 2 - 2) as u64);
    ctx.notify(class::HASH, "hset", &req[1]);
    if hmset {
        ctx.reply.ok();
    } else {
        ctx.reply.int(created);
    }
    Ok(())
}

pub(super) fn hset(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    hset_generic(ctx, req, false)
}

pub(super) fn hmset(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    hset_generic(ctx, req, true)
}

pub(super) fn hsetnx(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let limits = ctx.shared.encodings.hash();
    let (field, value) = (&req[2], &req[3]);
    let set = write_hash(ctx, &req[1], |h| {
        if h.contains(field) {
            return Ok((false, false));
        }
        h.prepare([field.len(), value.len()], &limits);
        h.set(field, value, &limits);
        Ok((true, true))
    })?;
    if set {
        ctx.notify(class::HASH, "hset", &req[1]);
    }
    ctx.reply.int(i64::from(set));
    Ok(())
}

/// A read of the hash at `key`, counted as a keyspace hit or miss.
fn read_hash<'d>(
    db: &'d mut DbMut<'_>,
    key: &[u8],
    now: i64,
    stats: &mut LocalStats,
) -> Result<Option<&'d mut Hash>, CmdError> {
    super::read_typed(db, key, now, stats, |v| match v {
        Value::Hash(x) => Some(x),
        _ => None,
    })
}

pub(super) fn hget(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    match read_hash(&mut db, key, ctx.now, &mut ctx.client.stats)?.and_then(|h| h.get(&req[2])) {
        Some(v) => ctx.reply.bulk(v),
        None => ctx.reply.null(),
    }
    Ok(())
}

pub(super) fn hmget(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let hash = read_hash(&mut db, key, ctx.now, &mut ctx.client.stats)?;
    ctx.reply.array(req.len() - 2);
    for field in req.iter().skip(2) {
        match hash.as_ref().and_then(|h| h.get(field)) {
            Some(v) => ctx.reply.bulk(v),
            None => ctx.reply.null(),
        }
    }
    Ok(())
}

/// HGETALL, HKEYS, HVALS.
fn getall_generic(ctx: &mut Ctx<'_>, req: &Request, fields: bool, values: bool) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let Some(hash) = read_hash(&mut db, key, ctx.now, &mut ctx.client.stats)? else {
        if fields && values {
            ctx.reply.map(0);
        } else {
            ctx.reply.array(0);
        }
        return Ok(());
    };
    if fields && values {
        ctx.reply.map(hash.len());
    } else {
        ctx.reply.array(hash.len());
    }
    for (f, v) in hash.iter() {
        if fields {
            ctx.reply.bulk(f);
        }
        if values {
            ctx.reply.bulk(v);
        }
    }
    Ok(())
}

pub(super) fn hgetall(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    getall_generic(ctx, req, true, true)
}

pub(super) fn hkeys(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    getall_generic(ctx, req, true, false)
}

pub(super) fn hvals(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    getall_generic(ctx, req, false, true)
}

/// HLEN, HEXISTS and HSTRLEN: an integer read off the hash, 0 if absent.
fn read_int(ctx: &mut Ctx<'_>, req: &Request, f: impl FnOnce(&Hash) -> usize) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let n = read_hash(&mut db, key, ctx.now, &mut ctx.client.stats)?.map_or(0, |h| f(h));
    ctx.reply.int(n as i64);
    Ok(())
}

pub(super) fn hlen(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    read_int(ctx, req, Hash::len)
}

pub(super) fn hexists(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    read_int(ctx, req, |h| usize::from(h.contains(&req[2])))
}

pub(super) fn hstrlen(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    read_int(ctx, req, |h| h.get(&req[2]).map_or(0, <[u8]>::len))
}

pub(super) fn hdel(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let Some(hash) = get_hash(&mut db, key, ctx.now)? else {
        ctx.reply.int(0);
        return Ok(());
    };
    let mut deleted = 0;
    let mut emptied = false;
    for field in req.iter().skip(2) {
        if hash.remove(field) {
            deleted += 1;
            // Fields after the last one are not looked for, as in Redis.
            if hash.is_empty() {
                emptied = true;
                break;
            }
        }
    }
    if deleted > 0 {
        db.count_changes(deleted as usize - 1);
        db.notify(class::HASH, "hdel", key);
    }
    if emptied {
        db.remove(key);
        db.notify(class::GENERIC, "del", key);
    } else if deleted > 0 {
        db.modified(key);
    }
    ctx.reply.int(deleted);
    Ok(())
}

pub(super) fn hincrby(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let by = parse_i64(&req[3])?;
    let limits = ctx.shared.encodings.hash();
    let field = &req[2];
    let value = write_hash(ctx, &req[1], |h| {
        let old = match h.get(field) {
            Some(v) => store::rdb::strict_i64(v)
                .ok_or_else(|| CmdError::other("ERR hash value is not an integer"))?,
            None => 0,
        };
        let new = old.checked_add(by).ok_or(CmdError::Overflow)?;
        h.set(field, new.to_string().as_bytes(), &limits);
        Ok((new, true))
    })?;
    ctx.notify(class::HASH, "hincrby", &req[1]);
    ctx.reply.int(value);
    Ok(())
}

pub(super) fn hincrbyfloat(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let by = longdouble::parse(&req[3]).ok_or(CmdError::NotFloat)?;
    if !longdouble::is_finite(by) {
        return Err(CmdError::other("ERR value is NaN or Infinity"));
    }
    let limits = ctx.shared.encodings.hash();
    let (key, field) = (&req[1], &req[2]);
    let text = write_hash(ctx, key, |h| {
        let old = match h.get(field) {
            Some(v) => longdouble::parse(v)
                .ok_or_else(|| CmdError::other("ERR hash value is not a float"))?,
            None => longdouble::ZERO,
        };
        let new = longdouble::add(old, by);
        if !longdouble::is_finite(new) {
            return Err(CmdError::other(
                "ERR increment would produce NaN or Infinity",
            ));
        }
        let text = longdouble::format(new);
        h.set(field, text.as_bytes(), &limits);
        Ok((text, true))
    })?;
    ctx.notify(class::HASH, "hincrbyfloat", key);
    ctx.reply.bulk(text.as_bytes());
    // Replicas get the result, not the sum to redo: formatting or
    // precision could differ there (Redis sends HSET too).
    let db = ctx.client.db;
    ctx.shards.effects().rewrite(vec![Op::new(
        Some(db),
        &[&b"HSET"[..], key, field, text.as_bytes()],
    )]);
    Ok(())
}

/// A generator for one command's random picks: calls within the same
/// millisecond on the same client still differ (a Weyl sequence).
fn rng(ctx: &Ctx<'_>) -> Rng {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    Rng::new(ctx.now as u64 ^ ctx.client.id().rotate_left(23) ^ call)
}

pub(super) fn hrandfield(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let Some(count_arg) = req.get(2) else {
        let mut rng = rng(ctx);
        let mut shard = ctx.shards.lock_key(key);
        let mut db = shard.db(ctx.client.db);
        match read_hash(&mut db, key, ctx.now, &mut ctx.client.stats)?
            .and_then(|h| h.random(&mut rng))
        {
            Some((f, _)) => ctx.reply.bulk(f),
            None => ctx.reply.null(),
        }
        return Ok(());
    };
    let count = parse_i64(count_arg)?;
    if count == i64::MIN {
        return Err(CmdError::other(format!(
            "ERR value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        )));
    }
    let with_values = match req.get(3) {
        None => false,
        Some(w) if req.len() == 4 && eq(w, "withvalues") => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    if with_values && !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
        return Err(CmdError::other("ERR value is out of range"));
    }
    super::check_random_picks(count)?;
    let mut rng = rng(ctx);
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let Some(hash) = read_hash(&mut db, key, ctx.now, &mut ctx.client.stats)? else {
        ctx.reply.array(0);
        return Ok(());
    };
    let nested = with_values && ctx.reply.proto != Protocol::Resp2;
    let header = |n: usize| if with_values && !nested { n * 2 } else { n };
    let write = |reply: &mut Reply<'_>, f: &[u8], v: &[u8]| {
        if nested {
            reply.array(2);
        }
        reply.bulk(f);
        if with_values {
            reply.bulk(v);
        }
    };
    if count < 0 {
        // Repeats: written as they are picked, nothing collected.
        let n = count.unsigned_abs() as usize;
        ctx.reply.array(header(n));
        let reply = &mut ctx.reply;
        hash.random_repeats(n, &mut rng, |f, v| write(reply, f, v));
        return Ok(());
    }
    let picks = hash.random_pairs(count as usize, true, &mut rng);
    ctx.reply.array(header(picks.len()));
    for (f, v) in picks {
        write(&mut ctx.reply, f, v);
    }
    Ok(())
}

/// A SCAN cursor as Redis reads it (`strtoul`, base 10): an optional sign
/// (a minus wraps), digits, nothing else; no leading space; the empty
/// string is 0; a NUL ends the text, as in C.
fn parse_cursor(arg: &[u8]) -> Option<u64> {
    let arg = arg.split(|&b| b == 0).next().unwrap_or_default();
    if arg.first().is_some_and(u8::is_ascii_whitespace) || arg.first() == Some(&0x0b) {
        return None;
    }
    let (negative, digits) = match arg.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, arg),
    };
    if digits.is_empty() {
        // No digits: 0 only if there was nothing at all.
        return arg.is_empty().then_some(0);
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if negative { v.wrapping_neg() } else { v })
}

pub(super) fn hscan(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let cursor = parse_cursor(&req[2]).ok_or_else(|| CmdError::other("ERR invalid cursor"))?;
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let Some(hash) = read_hash(&mut db, key, ctx.now, &mut ctx.client.stats)? else {
        ctx.reply.array(2);
        ctx.reply.bulk(b"0");
        ctx.reply.array(0);
        return Ok(());
    };
    // Options are read after the key, as Redis reads them.
    let (mut count, mut pattern) = (10i64, None);
    let mut i = 3;
    while i < req.len() {
        let has_arg = req.len() - i >= 2;
        if eq(&req[i], "count") && has_arg {
            count = parse_i64(&req[i + 1])?;
            if count < 1 {
                return Err(CmdError::Syntax);
            }
        } else if eq(&req[i], "match") && has_arg {
            let p = &req[i + 1];
            // "*" matches everything: no filter.
            pattern = (p != b"*").then_some(p);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    // What is found is copied out: the table's scan lends its items only
    // for the visit. Fields and values, one after the other.
    let mut found = Found::default();
    let mut keep = |f: &[u8], v: &[u8]| {
        if pattern.is_none_or(|p| store::glob::matches(p, f, false)) {
            found.push(f);
            found.push(v);
        }
    };
    let next = if hash.is_packed() {
        hash.scan(cursor, &mut keep)
    } else {
        // Redis counts fields and values against COUNT twice over, and
        // stops after ten times as many buckets as that, so a sparse
        // table does not hold the caller long. It counts before MATCH
        // filters.
        let want = count.saturating_mul(2).unsigned_abs();
        let mut budget = count.saturating_mul(2).saturating_mul(10);
        let mut seen = 0u64;
        let mut cursor = cursor;
        loop {
            cursor = hash.scan(cursor, |f, v| {
                seen += 2;
                keep(f, v);
            });
            if cursor == 0 || budget == 0 || seen >= want {
                break cursor;
            }
            budget -= 1;
        }
    };
    ctx.reply.array(2);
    ctx.reply.bulk(next.to_string().as_bytes());
    ctx.reply.array(found.ends.len());
    let mut start = 0;
    for &end in &found.ends {
        ctx.reply.bulk(&found.bytes[start..end]);
        start = end;
    }
    Ok(())
}

/// Strings copied one after another into one buffer.
#[derive(Default)]
struct Found {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Found {
    fn push(&mut self, s: &[u8]) {
        self.bytes.extend_from_slice(s);
        self.ends.push(self.bytes.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_as_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"+7"), Some(7));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_cursor(b"5\0x"), Some(5));
        for bad in [&b" 1"[..], b"1 ", b"x", b"+", b"-", b"0x10", b"1.0"] {
            assert_eq!(parse_cursor(bad), None, "{bad:?}");
        }
    }
}

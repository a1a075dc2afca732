//! Bitmap commands (SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD
//! BITFIELD_RO) and LCS.
//!
//! The bit arithmetic is ember-store's (`store::bits`, `store::lcs`);
//! here are the arguments, Redis's errors in Redis's order, and the
//! keyspace. Reads work on the stored bytes where they lie; writes change
//! them in place (`Str::modify`), copying only a handle someone else still
//! holds.

use bytes::Bytes;
use resp::Request;
use store::bits::{self, BitOp, Field, Overflow, Unit};
use store::value::{Form, Str, Value};

use super::strings::get_str;
use super::{CmdError, CmdResult, Ctx};
use crate::args::{eq, parse_i64};
use crate::db::Entry;
use crate::notify::Notify;
use store::keyspace::class;

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const BAD_BIT: &str = "ERR bit is not an integer or out of range";
const BAD_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

/// `proto-max-bulk-len`.
fn max_bulk_len(ctx: &Ctx<'_>) -> i64 {
    ctx.shared
        .max_bulk_len
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// A bit offset: a non-negative integer whose byte lies within
/// `proto-max-bulk-len` (the master's stream is trusted, as in Redis). For
/// BITFIELD, `field` allows `#N`: the N-th field of that width.
fn bit_offset(ctx: &Ctx<'_>, arg: &[u8], field: Option<Field>) -> Result<u64, CmdError> {
    let bad = || CmdError::other(BAD_OFFSET);
    let offset = match (arg.split_first(), field) {
        // Redis multiplies without a check; on its platforms the product
        // wraps, and so does this one.
        (Some((b'#', n)), Some(f)) => resp::parse_int(n)
            .ok_or_else(bad)?
            .wrapping_mul(i64::from(f.bits)),
        _ => resp::parse_int(arg).ok_or_else(bad)?,
    };
    if offset < 0 || (!ctx.client.is_master && (offset >> 3) >= max_bulk_len(ctx)) {
        return Err(bad());
    }
    Ok(offset as u64)
}

pub(super) fn setbit(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let offset = bit_offset(ctx, &req[2], None)?;
    let on = match resp::parse_int(&req[3]) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(CmdError::other(BAD_BIT)),
    };
    let need = (offset >> 3) as usize + 1;
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let old = match get_str(&mut db, key, ctx.now)? {
        Some(s) => {
            let grows = s.bytes().len() < need;
            let old = s.modify(need, |b| bits::set_bit(b, offset, on));
            if grows || old != on {
                db.modified(key);
                db.notify(class::STRING, "setbit", key);
            }
            old
        }
        None => {
            let mut buf = vec![0u8; need];
            bits::set_bit(&mut buf, offset, on);
            let value = Str::from_vec(buf, Form::Raw);
            db.insert(Bytes::copy_from_slice(key), Entry::new(Value::Str(value)));
            db.notify(class::STRING, "setbit", key);
            false
        }
    };
    ctx.reply.int(i64::from(old));
    Ok(())
}

pub(super) fn getbit(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let offset = bit_offset(ctx, &req[2], None)?;
    let mut shard = ctx.shards.lock_key(key);
    let mut binding = shard.db(ctx.client.db);
    crate::notify::read_miss(&mut binding, key, ctx.now);
    let found = get_str(&mut binding, key, ctx.now)?;
    ctx.client.stats.hit(found.is_some());
    let on = found.is_some_and(|s| bits::get_bit(s.bytes(), offset));
    ctx.reply.int(i64::from(on));
    Ok(())
}

/// `BYTE` or `BIT`.
fn unit(arg: &[u8]) -> Result<Unit, CmdError> {
    if eq(arg, "bit") {
        Ok(Unit::Bit)
    } else if eq(arg, "byte") {
        Ok(Unit::Byte)
    } else {
        Err(CmdError::Syntax)
    }
}

pub(super) fn bitcount(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut binding = shard.db(ctx.client.db);
    crate::notify::read_miss(&mut binding, key, ctx.now);
    let found = get_str(&mut binding, key, ctx.now)?;
    ctx.client.stats.hit(found.is_some());
    // A missing key answers 0 before the arguments are looked at, as in
    // Redis.
    let Some(s) = found else {
        ctx.reply.int(0);
        return Ok(());
    };
    let range = match req.len() {
        2 => None,
        4 | 5 => {
            let start = parse_i64(&req[2])?;
            let end = parse_i64(&req[3])?;
            if start < 0 && end < 0 && start > end {
                ctx.reply.int(0);
                return Ok(());
            }
            let u = if req.len() == 5 {
                unit(&req[4])?
            } else {
                Unit::Byte
            };
            Some((start, end, u))
        }
        _ => return Err(CmdError::Syntax),
    };
    ctx.reply.int(bits::bitcount(s.bytes(), range) as i64);
    Ok(())
}

pub(super) fn bitpos(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let bit = match parse_i64(&req[2])? {
        0 => false,
        1 => true,
        _ => return Err(CmdError::other("ERR The bit argument must be 1 or 0.")),
    };
    let mut shard = ctx.shards.lock_key(key);
    let mut binding = shard.db(ctx.client.db);
    crate::notify::read_miss(&mut binding, key, ctx.now);
    let found = get_str(&mut binding, key, ctx.now)?;
    ctx.client.stats.hit(found.is_some());
    // A missing key is an endless run of zeros.
    let Some(s) = found else {
        ctx.reply.int(if bit { -1 } else { 0 });
        return Ok(());
    };
    let (start, end, u) = match req.len() {
        3 => (None, None, Unit::Byte),
        4..=6 => {
            let start = parse_i64(&req[3])?;
            // The unit is read before the end, as Redis does.
            let u = if req.len() == 6 {
                unit(&req[5])?
            } else {
                Unit::Byte
            };
            let end = if req.len() >= 5 {
                Some(parse_i64(&req[4])?)
            } else {
                None
            };
            (Some(start), end, u)
        }
        _ => return Err(CmdError::Syntax),
    };
    ctx.reply.int(bits::bitpos(s.bytes(), bit, start, end, u));
    Ok(())
}

pub(super) fn bitop(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let name = &req[1];
    let op = if eq(name, "and") {
        BitOp::And
    } else if eq(name, "or") {
        BitOp::Or
    } else if eq(name, "xor") {
        BitOp::Xor
    } else if eq(name, "not") {
        BitOp::Not
    } else {
        return Err(CmdError::Syntax);
    };
    if op == BitOp::Not && req.len() != 4 {
        return Err(CmdError::other(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let dest = &req[2];
    let sources: Vec<&[u8]> = (3..req.len()).map(|i| &req[i]).collect();
    let db = ctx.client.db;
    let now = ctx.now;
    let mut locked = ctx.shards.lock_keys(sources.iter().copied().chain([dest]));
    // Handles, not copies: a long string's bytes are shared, a short one's
    // copied out of its entry (at most 30 bytes).
    let mut values = Vec::with_capacity(sources.len());
    for key in &sources {
        let mut d = locked.db(db, key);
        crate::notify::read_miss(&mut d, key, now);
        let found = get_str(&mut d, key, now)?;
        ctx.client.stats.hit(found.is_some());
        values.push(found.map(|s| s.to_bytes()).unwrap_or_default());
    }
    let refs: Vec<&[u8]> = values.iter().map(|v| &v[..]).collect();
    let result = bits::bitop(op, &refs);
    drop(values);
    let len = result.len();
    let mut target = locked.db(db, dest);
    if len > 0 {
        let value = Str::from_vec(result, Form::Raw);
        target.set_key(dest, Entry::new(Value::Str(value)), now);
        target.notify(class::STRING, "set", dest);
    } else {
        // An empty result deletes the destination, without a lookup: an
        // expired one too (`del`, not `expired`), as in Redis.
        if target.delete(dest, store::keyspace::lazy::SERVER_DEL) {
            target.notify(class::GENERIC, "del", dest);
        }
    }
    ctx.reply.int(len as i64);
    Ok(())
}

/// One BITFIELD operation.
#[derive(Debug, Clone, Copy)]
enum FieldOp {
    Get,
    Set(i64),
    Incr(i64),
}

/// Reads BITFIELD's operations, with Redis's errors in Redis's order.
fn field_ops(
    ctx: &Ctx<'_>,
    req: &Request,
) -> Result<Vec<(FieldOp, Field, u64, Overflow)>, CmdError> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < req.len() {
        let sub = &req[j];
        let more = req.len() - j - 1;
        let takes_value = if eq(sub, "get") && more >= 2 {
            false
        } else if (eq(sub, "set") || eq(sub, "incrby")) && more >= 3 {
            true
        } else if eq(sub, "overflow") && more >= 1 {
            let kind = &req[j + 1];
            overflow = if eq(kind, "wrap") {
                Overflow::Wrap
            } else if eq(kind, "sat") {
                Overflow::Sat
            } else if eq(kind, "fail") {
                Overflow::Fail
            } else {
                return Err(CmdError::other("ERR Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(CmdError::Syntax);
        };
        let field = Field::parse(&req[j + 1]).ok_or_else(|| CmdError::other(BAD_TYPE))?;
        let offset = bit_offset(ctx, &req[j + 2], Some(field))?;
        let op = if !takes_value {
            FieldOp::Get
        } else if eq(sub, "set") {
            FieldOp::Set(parse_i64(&req[j + 3])?)
        } else {
            FieldOp::Incr(parse_i64(&req[j + 3])?)
        };
        ops.push((op, field, offset, overflow));
        j += if takes_value { 4 } else { 3 };
    }
    Ok(ops)
}

fn bitfield_generic(ctx: &mut Ctx<'_>, req: &Request, read_only: bool) -> CmdResult {
    let ops = field_ops(ctx, req)?;
    let key = &req[1];
    let writes = ops.iter().any(|(op, ..)| !matches!(op, FieldOp::Get));
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    if !writes {
        crate::notify::read_miss(&mut db, key, ctx.now);
        let found = get_str(&mut db, key, ctx.now)?;
        ctx.client.stats.hit(found.is_some());
        let bytes = found.map(|s| s.bytes()).unwrap_or_default();
        ctx.reply.array(ops.len());
        for (_, field, offset, _) in &ops {
            ctx.reply.int(bits::get_field(bytes, *offset, *field));
        }
        return Ok(());
    }
    if read_only {
        return Err(CmdError::other(
            "ERR BITFIELD_RO only supports the GET subcommand",
        ));
    }
    // Room for the farthest bit written.
    let last_bit = ops
        .iter()
        .filter(|(op, ..)| !matches!(op, FieldOp::Get))
        .map(|(_, f, offset, _)| offset + u64::from(f.bits) - 1)
        .max()
        .unwrap_or(0);
    let need = (last_bit >> 3) as usize + 1;
    let existing = get_str(&mut db, key, ctx.now)?;
    let grows = existing.as_ref().is_none_or(|s| s.bytes().len() < need);
    let run = |b: &mut [u8]| {
        let mut changes = 0;
        let replies: Vec<Option<i64>> = ops
            .iter()
            .map(|&(op, field, offset, overflow)| {
                let old = bits::get_field(b, offset, field);
                let (new, reply) = match op {
                    FieldOp::Get => return Some(old),
                    FieldOp::Set(v) => (bits::set_value(field, v, overflow)?, old),
                    FieldOp::Incr(by) => {
                        let new = bits::incr_value(field, old, by, overflow)?;
                        (new, new)
                    }
                };
                bits::set_field(b, offset, field, new);
                if grows || new != old {
                    changes += 1;
                }
                Some(reply)
            })
            .collect();
        (replies, changes)
    };
    // Replicas hear of it (the command as it came) only if a field
    // changed, as in Redis.
    let (replies, changes) = match existing {
        Some(s) => {
            let (replies, changes) = s.modify(need, run);
            if changes > 0 {
                db.modified(key);
            }
            (replies, changes)
        }
        None => {
            let mut buf = vec![0u8; need];
            let (replies, changes) = run(&mut buf);
            let value = Str::from_vec(buf, Form::Raw);
            db.insert(Bytes::copy_from_slice(key), Entry::new(Value::Str(value)));
            (replies, changes)
        }
    };
    if changes > 0 {
        db.notify(class::STRING, "setbit", key);
    }
    ctx.reply.array(replies.len());
    for r in replies {
        match r {
            Some(v) => ctx.reply.int(v),
            None => ctx.reply.null(),
        }
    }
    Ok(())
}

pub(super) fn bitfield(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    bitfield_generic(ctx, req, false)
}

pub(super) fn bitfield_ro(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    bitfield_generic(ctx, req, true)
}

pub(super) fn lcs(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let (ka, kb) = (&req[1], &req[2]);
    let db = ctx.client.db;
    let now = ctx.now;
    let mut locked = ctx.shards.lock_keys([ka, kb]);
    let stats = &mut ctx.client.stats;
    let mut value = |key: &[u8]| -> Result<Bytes, CmdError> {
        let mut binding = locked.db(db, key);
        crate::notify::read_miss(&mut binding, key, now);
        let found = binding.get(key, now);
        stats.hit(found.is_some());
        match found {
            None => Ok(Bytes::new()),
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => Ok(s.to_bytes()),
            Some(_) => Err(CmdError::other(
                "ERR The specified keys must contain string values",
            )),
        }
    };
    let a = value(ka)?;
    let b = value(kb)?;
    drop(locked);
    let (mut len_only, mut idx, mut with_len) = (false, false, false);
    let mut min_len = 0i64;
    let mut j = 3;
    while j < req.len() {
        let opt = &req[j];
        if eq(opt, "idx") {
            idx = true;
        } else if eq(opt, "len") {
            len_only = true;
        } else if eq(opt, "withmatchlen") {
            with_len = true;
        } else if eq(opt, "minmatchlen") && j + 1 < req.len() {
            min_len = parse_i64(&req[j + 1])?.max(0);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if len_only && idx {
        return Err(CmdError::other(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let limit = u64::from(u32::MAX - 1);
    if a.len() as u64 >= limit || b.len() as u64 >= limit {
        return Err(CmdError::other("ERR String too long for LCS"));
    }
    match store::lcs::table_bytes(a.len(), b.len()) {
        Some(n) if n <= max_bulk_len(ctx).max(0) as u64 => {}
        _ => {
            return Err(CmdError::other(
                "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
            ));
        }
    }
    let found = store::lcs::lcs(&a, &b);
    let total = found.text.len() as i64;
    if idx {
        let shown: Vec<_> = found
            .matches
            .iter()
            .filter(|m| i64::from(m.len()) >= min_len)
            .collect();
        ctx.reply.map(2);
        ctx.reply.bulk(b"matches");
        ctx.reply.array(shown.len());
        for m in shown {
            ctx.reply.array(if with_len { 3 } else { 2 });
            ctx.reply.array(2);
            ctx.reply.int(i64::from(m.a.0));
            ctx.reply.int(i64::from(m.a.1));
            ctx.reply.array(2);
            ctx.reply.int(i64::from(m.b.0));
            ctx.reply.int(i64::from(m.b.1));
            if with_len {
                ctx.reply.int(i64::from(m.len()));
            }
        }
        ctx.reply.bulk(b"len");
        ctx.reply.int(total);
    } else if len_only {
        ctx.reply.int(total);
    } else {
        ctx.reply.bulk(&found.text);
    }
    Ok(())
}

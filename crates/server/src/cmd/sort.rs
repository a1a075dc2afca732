//! SORT and SORT_RO, as Redis 7.0's `sort.c` does them: the elements of a
//! list, set or sorted set (unsorted, a sorted set keeps its score order), ordered by their own value or by the keys a
//! `BY` pattern names (`weight_*`, or a hash field `weight_*->f`),
//! numerically or with `ALPHA`, `LIMIT`ed, each replaced by what `GET`
//! patterns name (`#` for the element itself), and answered or `STORE`d
//! as a list.
//!
//! A `BY` or `GET` pattern can name any key, on any shard: such a SORT
//! locks every shard, as a command on whole databases does (and carries
//! the table's `KEYSPACE` flag, so that a transaction holding one locks
//! them all too); without patterns it locks its key and destination only.
//! A Redis Cluster refuses the patterns for the same reason; Ember, not a
//! cluster, serves them.

use bytes::Bytes;
use resp::Request;
use store::list::List;
use store::value::Value;

use super::{CmdError, CmdResult, Ctx};
use crate::args::{eq, parse_i64};
use crate::db::{Entry, LockedRef};
use crate::notify::Notify;
use store::keyspace::class;

pub(super) fn sort(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    sort_generic(ctx, req, false)
}

pub(super) fn sort_ro(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    sort_generic(ctx, req, true)
}

/// What a SORT asks for, read from its arguments.
struct Options<'r> {
    desc: bool,
    alpha: bool,
    limit: (i64, i64),
    store: Option<&'r [u8]>,
    by: Option<&'r [u8]>,
    /// `BY` a pattern without `*`: nothing to sort by.
    dont_sort: bool,
    gets: Vec<&'r [u8]>,
}

fn options(req: &Request, readonly: bool) -> Result<Options<'_>, CmdError> {
    let mut o = Options {
        desc: false,
        alpha: false,
        limit: (0, -1),
        store: None,
        by: None,
        dont_sort: false,
        gets: Vec::new(),
    };
    let mut j = 2;
    while j < req.len() {
        let left = req.len() - j - 1;
        let arg = &req[j];
        if eq(arg, "asc") {
            o.desc = false;
        } else if eq(arg, "desc") {
            o.desc = true;
        } else if eq(arg, "alpha") {
            o.alpha = true;
        } else if eq(arg, "limit") && left >= 2 {
            o.limit = (parse_i64(&req[j + 1])?, parse_i64(&req[j + 2])?);
            j += 2;
        } else if !readonly && eq(arg, "store") && left >= 1 {
            o.store = Some(&req[j + 1]);
            j += 1;
        } else if eq(arg, "by") && left >= 1 {
            let pattern = &req[j + 1];
            o.dont_sort = !pattern.contains(&b'*');
            o.by = Some(pattern);
            j += 1;
        } else if eq(arg, "get") && left >= 1 {
            o.gets.push(&req[j + 1]);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// What a pattern names for `element`: the element itself for `#`, else
/// the string at the key the pattern makes (its first `*` replaced by the
/// element), or the field after `->` of the hash there. `None` when the
/// pattern has no `*`, or the key is missing or of another type.
fn lookup(
    locked: &mut LockedRef<'_, '_>,
    (db, now): (usize, i64),
    pattern: &[u8],
    element: &[u8],
) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(Bytes::copy_from_slice(element));
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let field = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&at| at + 2 < after.len());
    let (middle, field) = match field {
        Some(at) => (&after[..at], Some(&after[at + 2..])),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + element.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(middle);
    let mut d = locked.db(db, &key);
    let entry = d.get(&key, now)?;
    match (&entry.value, field) {
        (Value::Str(s), None) => Some(Bytes::copy_from_slice(s.bytes())),
        (Value::Hash(h), Some(f)) => h.get(f).map(Bytes::copy_from_slice),
        _ => None,
    }
}

/// Redis's `strtod` test of a sort weight: the whole text must be a
/// number (leading white space allowed, an empty text is 0), neither NaN
/// nor out of a double's range.
fn weight(text: &[u8]) -> Option<f64> {
    if text.is_empty() {
        return Some(0.0);
    }
    let trimmed = text.trim_ascii_start();
    let s = std::str::from_utf8(trimmed).ok()?;
    let v: f64 = s.parse().ok()?;
    let lower = s.to_ascii_lowercase();
    let spelled_inf = lower.trim_start_matches(['+', '-']).starts_with("inf");
    // strtod reports overflow (ERANGE) where Rust rounds to infinity, and
    // underflow where Rust rounds to zero.
    let digits_nonzero = lower
        .split(['e'])
        .next()
        .is_some_and(|m| m.bytes().any(|b| (b'1'..=b'9').contains(&b)));
    if v.is_nan() || (v.is_infinite() && !spelled_inf) || (v == 0.0 && digits_nonzero) {
        return None;
    }
    Some(v)
}

/// One element to sort, and what it is sorted by.
struct Item {
    element: Bytes,
    score: f64,
    by: Option<Bytes>,
}

fn sort_generic(ctx: &mut Ctx<'_>, req: &Request, readonly: bool) -> CmdResult {
    let mut o = options(req, readonly)?;
    let key = &req[1];
    let (db, now) = (ctx.client.db, ctx.now);
    // Patterns name keys anywhere: then every shard is locked.
    let patterns = (o.by.is_some() && !o.dont_sort) || o.gets.iter().any(|g| *g != b"#");
    let mut locked = if patterns {
        ctx.shards.lock_all()
    } else {
        ctx.shards
            .lock_keys(std::iter::once(key).chain(o.store.iter().copied()))
    };
    enum Kind {
        List,
        Set,
        ZSet,
    }
    crate::notify::read_miss(&mut locked.db(db, key), key, now);
    let (kind, len) = match locked.db(db, key).get(key, now) {
        None => (Kind::List, 0),
        Some(Entry { value, .. }) => match value {
            Value::List(l) => (Kind::List, l.len()),
            Value::Set(s) => (Kind::Set, s.len()),
            Value::ZSet(z) => (Kind::ZSet, z.len()),
            Value::Str(_) | Value::Hash(_) => return Err(CmdError::WrongType),
        },
    };
    // A set's order is its table's: sorted anyway when stored or read by
    // a script, so that what replicas store, and what a script's effects
    // make of it, is the same.
    if o.dont_sort && matches!(kind, Kind::Set) && (o.store.is_some() || ctx.scripted) {
        o.dont_sort = false;
        o.alpha = true;
        o.by = None;
    }
    // LIMIT, as sort.c clamps it.
    let vectorlen = len as i64;
    let mut start = o.limit.0.max(0).min(vectorlen);
    let count = o.limit.1.max(-1).min(vectorlen);
    let mut end = if count < 0 {
        vectorlen - 1
    } else {
        start + count - 1
    };
    if start >= vectorlen {
        start = vectorlen - 1;
        end = vectorlen - 2;
    }
    if end >= vectorlen {
        end = vectorlen - 1;
    }
    let element = |b: &[u8]| Item {
        element: Bytes::copy_from_slice(b),
        score: 0.0,
        by: None,
    };
    let mut items: Vec<Item> = match locked.db(db, key).get(key, now).map(|e| &e.value) {
        Some(Value::List(l)) if o.dont_sort => {
            // The list's own order (backwards for DESC), only the range.
            let taken = (end - start + 1).max(0) as usize;
            let items = list_range(l, start as usize, taken, o.desc, element);
            end -= start;
            start = 0;
            items
        }
        Some(Value::List(l)) => l.iter().map(element).collect(),
        Some(Value::Set(s)) => s.iter().map(|e| e.with(element)).collect(),
        Some(Value::ZSet(z)) if o.dont_sort => {
            // The score order (backwards for DESC), only the range, found
            // by rank as ZRANGE and ZREVRANGE find it.
            let members: Vec<Item> = if end >= start {
                z.range_by_rank(start, end, o.desc)
                    .map(|(m, _)| element(m))
                    .collect()
            } else {
                Vec::new()
            };
            end -= start;
            start = 0;
            members
        }
        Some(Value::ZSet(z)) => z.iter().map(|(m, _)| element(m)).collect(),
        _ => Vec::new(),
    };
    let mut unconvertible = false;
    if !o.dont_sort {
        for item in &mut items {
            let by = match o.by {
                Some(pattern) => match lookup(&mut locked, (db, now), pattern, &item.element) {
                    Some(v) => v,
                    None => continue,
                },
                None => item.element.clone(),
            };
            if o.alpha {
                if o.by.is_some() {
                    item.by = Some(by);
                }
            } else {
                match weight(&by) {
                    Some(v) => item.score = v,
                    None => unconvertible = true,
                }
            }
        }
        let (alpha, by_pattern, desc) = (o.alpha, o.by.is_some(), o.desc);
        items.sort_by(|a, b| {
            let ord = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.element.cmp(&b.element))
            } else if by_pattern {
                // A missing weight sorts first; two missing are equal.
                a.by.cmp(&b.by)
            } else {
                a.element.cmp(&b.element)
            };
            if desc { ord.reverse() } else { ord }
        });
    }
    if unconvertible {
        return Err(CmdError::other(
            "ERR One or more scores can't be converted into double",
        ));
    }
    let range = if end >= start {
        &items[start as usize..=end as usize]
    } else {
        &items[..0]
    };
    let per = o.gets.len().max(1);
    let outputlen = range.len() * per;
    let Some(dest) = o.store else {
        ctx.reply.array(outputlen);
        for item in range {
            if o.gets.is_empty() {
                ctx.reply.bulk(&item.element);
            }
            for pattern in &o.gets {
                match lookup(&mut locked, (db, now), pattern, &item.element) {
                    Some(v) => ctx.reply.bulk(&v),
                    None => ctx.reply.null(),
                }
            }
        }
        return Ok(());
    };
    let mut list = List::new();
    for item in range {
        if o.gets.is_empty() {
            list.push_back(item.element.clone());
        }
        for pattern in &o.gets {
            let v = lookup(&mut locked, (db, now), pattern, &item.element).unwrap_or_default();
            list.push_back(v);
        }
    }
    let mut target = locked.db(db, dest);
    if outputlen > 0 {
        target.set_key(dest, Entry::new(Value::List(Box::new(list))), now);
        target.notify(class::LIST, "sortstore", dest);
    } else if target.delete(dest, store::keyspace::lazy::SERVER_DEL) {
        // Deleted without a lookup, expired or not (`del`), as in Redis.
        target.notify(class::GENERIC, "del", dest);
    }
    ctx.reply.int(outputlen as i64);
    Ok(())
}

/// `taken` elements of `l` from `start`, forwards, or from the end
/// backwards for DESC.
fn list_range(
    l: &List,
    start: usize,
    taken: usize,
    desc: bool,
    element: impl Fn(&[u8]) -> Item,
) -> Vec<Item> {
    if desc {
        l.iter_rev().skip(start).take(taken).map(element).collect()
    } else {
        l.iter_from(start).take(taken).map(element).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_parse_as_strtod_does() {
        assert_eq!(weight(b""), Some(0.0));
        assert_eq!(weight(b"1.5"), Some(1.5));
        assert_eq!(weight(b"  -2"), Some(-2.0));
        assert_eq!(weight(b"inf"), Some(f64::INFINITY));
        assert_eq!(weight(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(weight(b"1e-2"), Some(0.01));
        for bad in [&b"2 "[..], b" ", b"x", b"nan", b"1e400", b"1e-400", b"1,5"] {
            assert_eq!(weight(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}

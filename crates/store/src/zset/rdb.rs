//! Sorted sets in RDB files and DUMP payloads: read in every encoding
//! Redis has written (types 3, 5, 12 and 17), written as Redis 7.0 writes
//! them (17 for a packed set, byte for byte Redis's listpack; 5 for a big
//! one, from the highest score down, as `rdbSaveObject` walks its
//! skiplist from the tail so that loading prepends).
//!
//! Reading is stricter than Redis where Redis would keep something it
//! cannot use: a score that is NaN or not a number, a member given twice,
//! and a listpack whose entries are out of order are refused as corrupt
//! (Redis refuses the first two for types 3 and 5, and keeps the others
//! as they are, to misbehave later).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::io::{self, Write};

use super::{Limits, ZSet, cmp_key, num};
use crate::rdb::listpack::{self, Builder, Item};
use crate::rdb::{RdbError, Reader, Writer, kind, ziplist};

/// The RDB type byte Redis 7.0 writes `zset` with: `ZSET_LISTPACK` (17)
/// when packed, `ZSET_2` (5) otherwise.
pub fn rdb_type(zset: &ZSet) -> u8 {
    if zset.is_packed() {
        kind::ZSET_LISTPACK
    } else {
        kind::ZSET_2
    }
}

/// The listpack Redis 7.0 holds for the same members and scores: member,
/// score, member, score..., in order; members and integer scores (in
/// `double2ll`'s range, `-0` as 0) in listpack's integer encodings where
/// they spell one, other scores as their `%.17g` text (`d2string`).
pub fn to_listpack(zset: &ZSet) -> Vec<u8> {
    let mut b = Builder::new();
    for (member, score) in zset.iter() {
        b.push(member);
        match num::double2ll(score) {
            Some(i) => b.push(i.to_string().as_bytes()),
            None => b.push(num::format_score(score).as_bytes()),
        }
    }
    b.finish()
}

/// Writes `zset`'s encoding (without its type byte, which is
/// [`rdb_type`]), as Redis 7.0's `rdbSaveObject` writes it.
pub fn save<W: Write>(w: &mut Writer<'_, W>, zset: &ZSet) -> io::Result<()> {
    if zset.is_packed() {
        return w.string(&to_listpack(zset));
    }
    w.len(zset.len() as u64)?;
    for (member, score) in zset.iter_rev() {
        w.string(member)?;
        w.raw(&score.to_le_bytes())?;
    }
    Ok(())
}

/// Reads a sorted set of RDB type `ty` (3, 5, 12 or 17; the caller
/// dispatches on the type byte) into the encoding Redis would give it:
/// a listpack or ziplist stays packed unless it has more than
/// `limits.entries` members; a plain one is packed when it could have been
/// (count, longest member, total size), as Redis converts it after
/// loading. `None` for an empty one, which Redis skips.
pub fn load(r: &mut Reader<'_>, ty: u8, limits: &Limits) -> Result<Option<ZSet>, RdbError> {
    let start = r.pos();
    let corrupt = |offset: usize, what: String| RdbError::Corrupt { offset, what };
    match ty {
        kind::ZSET | kind::ZSET_2 => {
            let n = r.length()?;
            // Never trust the count with memory: grow as members arrive.
            let mut pairs: Vec<(Cow<'_, [u8]>, f64)> =
                Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(1024));
            for _ in 0..n {
                let member = r.string()?;
                let at = r.pos();
                let score = if ty == kind::ZSET_2 {
                    let b = r.take(8)?;
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(b);
                    f64::from_le_bytes(bytes)
                } else {
                    text_score(r)?
                };
                if score.is_nan() {
                    return Err(corrupt(at, "zset with a NaN score".into()));
                }
                pairs.push((member, score));
            }
            check_unique(&pairs).map_err(|what| corrupt(start, what))?;
            pairs.sort_unstable_by(|a, b| cmp_key(a.1, &a.0, b.1, &b.0));
            Ok((!pairs.is_empty()).then(|| ZSet::from_sorted(&pairs, limits)))
        }
        kind::ZSET_ZIPLIST | kind::ZSET_LISTPACK => {
            let blob = r.string()?;
            let items = if ty == kind::ZSET_ZIPLIST {
                ziplist::decode(&blob)
            } else {
                listpack::decode(&blob)
            }
            .map_err(|e| corrupt(start, e.into()))?;
            if items.len() % 2 != 0 {
                return Err(corrupt(
                    start,
                    "odd number of elements in a zset listpack".into(),
                ));
            }
            let mut pairs: Vec<(Cow<'_, [u8]>, f64)> = Vec::with_capacity(items.len() / 2);
            for pair in items.chunks_exact(2) {
                let member: Cow<'_, [u8]> = match pair[0] {
                    Item::Str(s) => Cow::Borrowed(s),
                    Item::Int(v) => Cow::Owned(v.to_string().into_bytes()),
                };
                let score = match pair[1] {
                    Item::Int(v) => v as f64,
                    Item::Str(s) => {
                        let p = num::strtod(s);
                        if p.len == 0 || p.len != s.len() || p.value.is_nan() {
                            return Err(corrupt(
                                start,
                                format!(
                                    "zset score '{}' is not a number",
                                    crate::rdb::printable(s)
                                ),
                            ));
                        }
                        p.value
                    }
                };
                pairs.push((member, score));
            }
            let ordered = pairs
                .windows(2)
                .all(|w| cmp_key(w[0].1, &w[0].0, w[1].1, &w[1].0) == Ordering::Less);
            if !ordered {
                return Err(corrupt(start, "zset listpack entries out of order".into()));
            }
            check_unique(&pairs).map_err(|what| corrupt(start, what))?;
            if pairs.is_empty() {
                return Ok(None);
            }
            let iter = pairs.iter().map(|(m, s)| (&m[..], *s));
            let mut zset = ZSet::packed_from_sorted(iter);
            if zset.len() > limits.entries {
                zset.convert();
            }
            Ok(Some(zset))
        }
        _ => Err(corrupt(start, format!("RDB type {ty} is not a sorted set"))),
    }
}

/// A score as `rdbLoadDoubleValue` reads it: a length byte, then that
/// much text for `sscanf("%lg")` (253, 254 and 255 stand for NaN, `inf`
/// and `-inf`).
fn text_score(r: &mut Reader<'_>) -> Result<f64, RdbError> {
    let at = r.pos();
    let len = r.byte()?;
    match len {
        253 => Ok(f64::NAN),
        254 => Ok(f64::INFINITY),
        255 => Ok(f64::NEG_INFINITY),
        _ => {
            let text = r.take(usize::from(len))?;
            // C reads it as a string: up to a NUL.
            let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            let p = num::strtod(&text[..end]);
            if p.len == 0 {
                return Err(RdbError::Corrupt {
                    offset: at,
                    what: format!(
                        "zset score '{}' is not a number",
                        crate::rdb::printable(text)
                    ),
                });
            }
            Ok(p.value)
        }
    }
}

/// Refuses a member given twice.
fn check_unique(pairs: &[(Cow<'_, [u8]>, f64)]) -> Result<(), String> {
    let mut members: Vec<&[u8]> = pairs.iter().map(|(m, _)| &m[..]).collect();
    members.sort_unstable();
    match members.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(format!(
            "duplicate zset member '{}'",
            crate::rdb::printable(w[0])
        )),
        None => Ok(()),
    }
}

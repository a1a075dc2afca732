//! The packed encoding (`listpack` in OBJECT ENCODING): every member and
//! score in one buffer, in order (score, then member bytes).
//!
//! An entry is the member's length (a varint, 7 bits a byte), its bytes,
//! then the score: a varint of the zigzagged integer shifted left by one
//! when the score is an integer of at most 61 bits (so its first byte is
//! even), else the byte `0x01` and the score's 8 bytes, little endian. A
//! listpack spends a header and a back-length on each of the two elements
//! (4 bytes) and stores a non-integer score as its `%.17g` text (3 to 24
//! bytes, read back with `strtod` at every comparison); here an entry
//! costs 2 to 8 bytes beyond its member for the integer scores most sorted
//! sets hold (counters, timestamps in seconds or milliseconds: up to 2^47)
//! and 10 for others, which compare without parsing.
//!
//! Like a listpack, a score of `-0` is stored as the integer 0 and comes
//! back as `0`: Redis's ZSCORE answers `0` for it in a listpack and `-0`
//! in a skiplist, and so does Ember.

use crate::hash::{HEAD, head_count, set_head_count};
use std::cmp::Ordering;

/// Bytes a length takes as a varint.
#[inline]
fn varint_len(mut n: u64) -> usize {
    let mut size = 1;
    while n >= 0x80 {
        n >>= 7;
        size += 1;
    }
    size
}

#[inline]
fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The varint at `pos`, and where it ends.
#[inline]
fn read_varint(buf: &[u8], mut pos: usize) -> (u64, usize) {
    let (mut n, mut shift) = (0u64, 0);
    loop {
        let b = buf[pos];
        n |= u64::from(b & 0x7f) << shift;
        pos += 1;
        if b & 0x80 == 0 {
            return (n, pos);
        }
        shift += 7;
    }
}

/// Integers up to this magnitude are stored as varints.
const INT_LIMIT: f64 = (1u64 << 61) as f64;

/// How `score` is stored: the integer form's varint value, or `None` for
/// the 8-byte form.
#[inline]
fn int_form(score: f64) -> Option<u64> {
    if score.fract() != 0.0 || score.abs() >= INT_LIMIT {
        return None;
    }
    let i = score as i64;
    let zigzag = ((i << 1) ^ (i >> 63)) as u64;
    Some(zigzag << 1)
}

/// Bytes a stored score takes.
#[inline]
fn score_size(score: f64) -> usize {
    match int_form(score) {
        Some(v) => varint_len(v),
        None => 9,
    }
}

fn push_score(out: &mut Vec<u8>, score: f64) {
    match int_form(score) {
        Some(v) => push_varint(out, v),
        None => {
            out.push(0x01);
            out.extend_from_slice(&score.to_le_bytes());
        }
    }
}

/// The score stored at `pos`, and where it ends.
#[inline]
fn read_score(buf: &[u8], pos: usize) -> (f64, usize) {
    if buf[pos] & 1 == 1 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&buf[pos + 1..pos + 9]);
        (f64::from_le_bytes(bytes), pos + 9)
    } else {
        let (v, end) = read_varint(buf, pos);
        let zigzag = v >> 1;
        let i = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        (i as f64, end)
    }
}

/// Bytes the entry for `member` and `score` takes.
#[inline]
pub(super) fn entry_size(member: &[u8], score: f64) -> usize {
    varint_len(member.len() as u64) + member.len() + score_size(score)
}

/// Appends the entry for `member` and `score`.
pub(super) fn push_entry(out: &mut Vec<u8>, member: &[u8], score: f64) {
    push_varint(out, member.len() as u64);
    out.extend_from_slice(member);
    push_score(out, score);
}

/// The order of sorted sets: by score, then by member bytes.
#[inline]
pub(super) fn cmp_key(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    // Scores are never NaN.
    match a_score.partial_cmp(&b_score) {
        Some(Ordering::Equal) | None => a_member.cmp(b_member),
        Some(o) => o,
    }
}

/// One entry, where it lies in the buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct At<'a> {
    /// Where the entry starts.
    pub(super) start: usize,
    /// Where it ends (the next entry starts).
    pub(super) end: usize,
    pub(super) member: &'a [u8],
    pub(super) score: f64,
}

/// A packed sorted set; see the module's notes. The buffer is sized
/// exactly: each change reallocates it, as Redis's listpack does. It
/// starts with the count of entries (`hash::HEAD`, as a packed hash's), so
/// that the set is one boxed slice and a key's value stays 24 bytes.
#[derive(Clone, Default)]
pub(super) struct Packed {
    buf: Box<[u8]>,
}

impl Packed {
    /// A packed set of `entries`, which must be sorted and distinct.
    pub(super) fn from_sorted<'a>(entries: impl IntoIterator<Item = (&'a [u8], f64)>) -> Packed {
        let mut buf = vec![0; HEAD];
        let mut count = 0u32;
        for (member, score) in entries {
            push_entry(&mut buf, member, score);
            count = count.saturating_add(1);
        }
        set_head_count(&mut buf, count);
        Packed {
            buf: buf.into_boxed_slice(),
        }
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        head_count(&self.buf) as usize
    }

    /// Adds `n` to the count (which wraps as a `u32` would).
    fn add_count(&mut self, n: i64) {
        let count = i64::from(head_count(&self.buf)) + n;
        set_head_count(&mut self.buf, count as u32);
    }

    /// The end of the entries.
    fn end(&self) -> usize {
        self.buf.len().max(HEAD)
    }

    /// Bytes the buffer holds.
    #[inline]
    pub(super) fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The entry starting at `pos`.
    #[inline]
    fn at(&self, pos: usize) -> At<'_> {
        let (len, m) = read_varint(&self.buf, pos);
        let m_end = m + len as usize;
        let (score, end) = read_score(&self.buf, m_end);
        At {
            start: pos,
            end,
            member: &self.buf[m..m_end],
            score,
        }
    }

    /// Every entry, in order.
    #[inline]
    pub(super) fn iter(&self) -> Entries<'_> {
        Entries {
            packed: self,
            pos: HEAD,
        }
    }

    /// The entry of `member` and its rank.
    pub(super) fn find(&self, member: &[u8]) -> Option<(usize, At<'_>)> {
        self.iter().enumerate().find(|(_, at)| at.member == member)
    }

    /// Where the entry for (`score`, `member`) would go: the first entry
    /// above it, or the end.
    fn insert_pos(&self, member: &[u8], score: f64) -> usize {
        self.iter()
            .find(|at| cmp_key(at.score, at.member, score, member) == Ordering::Greater)
            .map_or(self.end(), |at| at.start)
    }

    /// Puts `with` in place of the bytes `a..b`, with one reallocation.
    fn splice(&mut self, a: usize, b: usize, with: &[u8]) {
        let old: &[u8] = if self.buf.len() < HEAD {
            &[0; HEAD]
        } else {
            &self.buf
        };
        let mut v = Vec::with_capacity(old.len() - (b - a) + with.len());
        v.extend_from_slice(&old[..a]);
        v.extend_from_slice(with);
        v.extend_from_slice(&old[b..]);
        self.buf = v.into_boxed_slice();
    }

    /// Adds `member`, which must not be there yet.
    pub(super) fn insert(&mut self, member: &[u8], score: f64) {
        let pos = self.insert_pos(member, score);
        let mut entry = Vec::with_capacity(entry_size(member, score));
        push_entry(&mut entry, member, score);
        self.splice(pos, pos, &entry);
        self.add_count(1);
    }

    /// Removes the entry at `start..end`.
    pub(super) fn remove_at(&mut self, start: usize, end: usize) {
        self.splice(start, end, &[]);
        self.add_count(-1);
    }

    /// Removes the entries of ranks `from..to` (which must be entries);
    /// returns how many.
    pub(super) fn remove_ranks(&mut self, from: usize, to: usize) -> usize {
        if from >= to {
            return 0;
        }
        let mut it = self.iter();
        let start = it.nth(from).map_or(self.end(), |at| at.start);
        let end = if to - from > 1 {
            it.nth(to - from - 2).map_or(self.end(), |at| at.end)
        } else {
            self.at(start).end
        };
        self.splice(start, end, &[]);
        self.add_count(-((to - from) as i64));
        to - from
    }

    /// The start of every entry, so that ranks and reverse walks need
    /// one pass.
    pub(super) fn offsets(&self) -> Vec<u32> {
        self.iter().map(|at| at.start as u32).collect()
    }

    /// The entry starting at `pos` (an offset from [`Packed::offsets`]).
    #[inline]
    pub(super) fn entry(&self, pos: u32) -> At<'_> {
        self.at(pos as usize)
    }
}

/// The entries of a packed set, in order.
#[derive(Clone)]
pub(super) struct Entries<'a> {
    packed: &'a Packed,
    pos: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = At<'a>;

    #[inline]
    fn next(&mut self) -> Option<At<'a>> {
        if self.pos >= self.packed.buf.len() {
            return None;
        }
        let at = self.packed.at(self.pos);
        self.pos = at.end;
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_round_trip_in_the_smallest_form() {
        for (score, size) in [
            (0.0, 1),
            (-0.0, 1),
            (1.0, 1),
            (-1.0, 1),
            (31.0, 1),
            (32.0, 2),
            (1_700_000_000.0, 5),
            (1.5, 9),
            (f64::INFINITY, 9),
            (f64::NEG_INFINITY, 9),
            (INT_LIMIT, 9),
            (-INT_LIMIT, 9),
            (INT_LIMIT * 4.0, 9),
            (f64::MIN_POSITIVE, 9),
        ] {
            let mut buf = Vec::new();
            push_score(&mut buf, score);
            assert_eq!(buf.len(), size, "{score}");
            assert_eq!(score_size(score), size);
            let (back, end) = read_score(&buf, 0);
            assert_eq!(end, size);
            assert_eq!(back, score);
            assert!(
                !back.is_sign_negative() || score != 0.0,
                "-0 is stored as 0"
            );
        }
    }

    #[test]
    fn stays_sorted() {
        let mut p = Packed::default();
        for (m, s) in [
            (&b"b"[..], 1.0),
            (b"a", 1.0),
            (b"c", 0.5),
            (&[b'x'; 200], -3.0),
            (b"", 1.0),
        ] {
            p.insert(m, s);
        }
        let got: Vec<(Vec<u8>, f64)> = p.iter().map(|a| (a.member.to_vec(), a.score)).collect();
        assert_eq!(
            got,
            vec![
                (vec![b'x'; 200], -3.0),
                (b"c".to_vec(), 0.5),
                (b"".to_vec(), 1.0),
                (b"a".to_vec(), 1.0),
                (b"b".to_vec(), 1.0)
            ]
        );
        assert_eq!(p.find(b"a").map(|(r, _)| r), Some(3));
        assert_eq!(p.remove_ranks(1, 3), 2);
        let got: Vec<&[u8]> = p.iter().map(|a| a.member).collect();
        assert_eq!(got, [&[b'x'; 200][..], b"a", b"b"]);
        let (_, at) = p.find(b"a").unwrap();
        p.remove_at(at.start, at.end);
        assert_eq!(p.len(), 2);
    }
}

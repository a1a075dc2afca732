//! Hashes: maps from fields to values, in Redis's two encodings.
//!
//! A small hash is **packed** (OBJECT ENCODING says `listpack`): one
//! buffer holding field, value, field, value..., each a length (a varint, 7
//! bits a byte) and its bytes, in the order fields were added, as Redis's
//! listpack keeps them (a new field goes to the end, a changed value stays
//! where it was). Lookups walk the buffer, which is short by construction.
//! Against a listpack an element costs one byte less of header and no
//! back-length (nothing here walks backwards), and against a vector of
//! pairs it costs no handle and no allocation of its own.
//!
//! A hash stays packed while it has at most `hash-max-listpack-entries`
//! fields and no field or value is longer than `hash-max-listpack-value`
//! bytes ([`Limits`], which the caller reads from its configuration). The
//! first write that breaks either converts it to a **table**
//! (`hashtable`): a [`Dict`] of [`Pair`]s. It never converts back, as
//! Redis never does.
//!
//! A pair in a table is 32 bytes: field and value inside it when together
//! they take up to [`Pair::INLINE`] bytes (most do), else in one heap
//! buffer of their own. With the table's 8 bytes of links and 4 to 8 of
//! bucket per item, a short pair costs about 45 bytes, where Redis spends a
//! `dictEntry`, two sds strings and a bucket (72 bytes or more).

use crate::dict::{Dict, Item};
use crate::rng::Rng;

/// Redis's `LISTPACK_MAX_SAFETY_SIZE`: a packed hash never grows past this
/// many bytes, whatever the limits allow (Redis's `lpSafeToAdd`).
const MAX_PACKED_BYTES: usize = 1 << 30;

/// When a hash stops being packed: `hash-max-listpack-entries` and
/// `hash-max-listpack-value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most fields a packed hash holds.
    pub entries: usize,
    /// The longest field or value a packed hash holds, in bytes.
    pub value: usize,
}

impl Default for Limits {
    /// Redis 7.0's defaults: 512 entries, 64 bytes.
    fn default() -> Self {
        Limits {
            entries: 512,
            value: 64,
        }
    }
}

/// A hash: see the module's notes.
#[derive(Clone, Default)]
pub struct Hash {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Packed(Packed),
    /// Boxed: a hash lives inside the key's value, which stays 40 bytes.
    Table(Box<Dict<Pair>>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Packed(Packed::default())
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hash")
            .field("encoding", &self.encoding())
            .field("len", &self.len())
            .finish()
    }
}

/// Bytes a length takes as a varint.
#[inline]
fn varint_len(mut n: usize) -> usize {
    let mut size = 1;
    while n >= 0x80 {
        n >>= 7;
        size += 1;
    }
    size
}

/// Bytes an element of `n` bytes takes in a packed hash.
#[inline]
fn entry_size(n: usize) -> usize {
    varint_len(n) + n
}

/// Writes the entry for `data` at the start of `out`; returns its size.
fn write_entry(out: &mut [u8], data: &[u8]) -> usize {
    let mut n = data.len();
    let mut at = 0;
    while n >= 0x80 {
        out[at] = (n & 0x7f) as u8 | 0x80;
        n >>= 7;
        at += 1;
    }
    out[at] = n as u8;
    at += 1;
    out[at..at + data.len()].copy_from_slice(data);
    at + data.len()
}

/// The entry at `pos`: where its bytes start and end (the next entry
/// starts at the end).
#[inline]
fn read_entry(buf: &[u8], pos: usize) -> (usize, usize) {
    let (mut n, mut shift, mut i) = (0usize, 0, pos);
    loop {
        let b = buf[i];
        n |= usize::from(b & 0x7f) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (i, i + n)
}

/// A packed hash: entries `varint(len) bytes`, field then value, in one
/// buffer sized exactly (each change reallocates it, as Redis's listpack
/// does, which keeps a small hash's memory at what it holds).
///
/// The buffer starts with the count of pairs (a `u32`, little-endian;
/// an empty buffer counts none), so that the hash is one boxed slice and
/// a key's value stays 24 bytes.
#[derive(Clone, Default)]
struct Packed {
    buf: Box<[u8]>,
}

/// The bytes of a packed buffer's header (hashes' and sorted sets'): the
/// count of its pairs or entries.
pub(crate) const HEAD: usize = 4;

/// The count in a packed buffer's header; 0 for an empty buffer.
#[inline]
pub(crate) fn head_count(buf: &[u8]) -> u32 {
    match buf.get(..HEAD) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Writes the count into a packed buffer's header, if it has one.
pub(crate) fn set_head_count(buf: &mut [u8], count: u32) {
    if let Some(head) = buf.get_mut(..HEAD) {
        head.copy_from_slice(&count.to_le_bytes());
    }
}

/// Where a pair is in a packed buffer.
struct Found {
    /// The field's entry starts here.
    field: usize,
    /// The value's entry starts here.
    value: usize,
    /// And ends here.
    end: usize,
}

impl Packed {
    /// The number of pairs.
    #[inline]
    fn count(&self) -> u32 {
        head_count(&self.buf)
    }

    /// Sets the number of pairs (the buffer has its header: every change
    /// goes through [`Packed::splice`], which makes it).
    fn set_count(&mut self, count: u32) {
        set_head_count(&mut self.buf, count);
    }

    /// Where the next pair goes: the end of the entries.
    fn end(&self) -> usize {
        self.buf.len().max(HEAD)
    }

    fn find(&self, field: &[u8]) -> Option<Found> {
        let buf = &self.buf[..];
        let mut pos = HEAD;
        while pos < buf.len() {
            let (fa, fb) = read_entry(buf, pos);
            let (_, vb) = read_entry(buf, fb);
            if buf[fa..fb] == *field {
                return Some(Found {
                    field: pos,
                    value: fb,
                    end: vb,
                });
            }
            pos = vb;
        }
        None
    }

    fn get(&self, field: &[u8]) -> Option<&[u8]> {
        let found = self.find(field)?;
        let (a, b) = read_entry(&self.buf, found.value);
        Some(&self.buf[a..b])
    }

    /// Puts entries for `items` in place of the bytes `a..b`, with one
    /// reallocation at most.
    fn splice(&mut self, a: usize, b: usize, items: &[&[u8]]) {
        let add: usize = items.iter().map(|e| entry_size(e.len())).sum();
        let removed = b - a;
        let mut v = std::mem::take(&mut self.buf).into_vec();
        if v.len() < HEAD {
            v.resize(HEAD, 0);
        }
        let old_len = v.len();
        if add > removed {
            let grow = add - removed;
            v.reserve_exact(grow);
            v.resize(old_len + grow, 0);
            v.copy_within(b..old_len, b + grow);
        } else if add < removed {
            v.copy_within(b..old_len, a + add);
            v.truncate(old_len - (removed - add));
        }
        let mut at = a;
        for item in items {
            at += write_entry(&mut v[at..], item);
        }
        self.buf = v.into_boxed_slice();
    }

    /// Sets `field` to `value`; whether the field is new.
    fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        match self.find(field) {
            Some(found) => {
                self.splice(found.value, found.end, &[value]);
                false
            }
            None => {
                let end = self.end();
                self.splice(end, end, &[field, value]);
                self.set_count(self.count() + 1);
                true
            }
        }
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        match self.find(field) {
            Some(found) => {
                self.splice(found.field, found.end, &[]);
                self.set_count(self.count() - 1);
                true
            }
            None => false,
        }
    }

    fn iter(&self) -> PackedIter<'_> {
        PackedIter {
            buf: &self.buf,
            pos: HEAD,
        }
    }
}

/// The pairs of a packed hash, in order.
#[derive(Clone)]
struct PackedIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let (fa, fb) = read_entry(self.buf, self.pos);
        let (va, vb) = read_entry(self.buf, fb);
        self.pos = vb;
        Some((&self.buf[fa..fb], &self.buf[va..vb]))
    }
}

/// A field and its value, as a table holds them: 32 bytes, with both
/// inside when they fit ([`Pair::INLINE`] bytes together), else in one
/// buffer of their own.
#[derive(Clone)]
pub struct Pair(PairRepr);

#[derive(Clone)]
enum PairRepr {
    Inline {
        field_len: u8,
        value_len: u8,
        data: [u8; Pair::INLINE],
    },
    Heap {
        field_len: usize,
        /// The field's bytes, then the value's.
        data: Box<[u8]>,
    },
}

impl Pair {
    /// The most bytes field and value take together inside a pair.
    pub const INLINE: usize = 29;

    /// A pair of copies of `field` and `value`.
    pub fn new(field: &[u8], value: &[u8]) -> Pair {
        let total = field.len() + value.len();
        if total <= Pair::INLINE {
            let mut data = [0; Pair::INLINE];
            data[..field.len()].copy_from_slice(field);
            data[field.len()..total].copy_from_slice(value);
            Pair(PairRepr::Inline {
                field_len: field.len() as u8,
                value_len: value.len() as u8,
                data,
            })
        } else {
            let mut data = Vec::with_capacity(total);
            data.extend_from_slice(field);
            data.extend_from_slice(value);
            Pair(PairRepr::Heap {
                field_len: field.len(),
                data: data.into_boxed_slice(),
            })
        }
    }

    /// The field.
    #[inline]
    pub fn field(&self) -> &[u8] {
        match &self.0 {
            PairRepr::Inline {
                field_len, data, ..
            } => &data[..usize::from(*field_len)],
            PairRepr::Heap { field_len, data } => &data[..*field_len],
        }
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &[u8] {
        match &self.0 {
            PairRepr::Inline {
                field_len,
                value_len,
                data,
            } => {
                let f = usize::from(*field_len);
                &data[f..f + usize::from(*value_len)]
            }
            PairRepr::Heap { field_len, data } => &data[*field_len..],
        }
    }

    /// Heap bytes the pair owns beyond its own 32.
    fn heap(&self) -> usize {
        match &self.0 {
            PairRepr::Inline { .. } => 0,
            PairRepr::Heap { data, .. } => data.len(),
        }
    }
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pair")
            .field(&String::from_utf8_lossy(self.field()))
            .field(&String::from_utf8_lossy(self.value()))
            .finish()
    }
}

impl Item for Pair {
    #[inline]
    fn key(&self) -> &[u8] {
        self.field()
    }
}

/// A hash's pairs, in its order: insertion order when packed, the table's
/// order otherwise.
#[derive(Clone)]
pub struct Iter<'a>(IterRepr<'a>);

#[derive(Clone)]
enum IterRepr<'a> {
    Packed(PackedIter<'a>),
    Table(&'a Dict<Pair>, usize),
}

impl std::fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Packed(p) => p.next(),
            IterRepr::Table(dict, i) => {
                let pair = dict.get_index(*i)?;
                *i += 1;
                Some((pair.field(), pair.value()))
            }
        }
    }
}

/// Why pairs do not make a hash (RDB loading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A field appears twice.
    #[error("duplicate hash field")]
    Duplicate,
}

impl Hash {
    /// An empty hash (packed).
    pub fn new() -> Hash {
        Hash::default()
    }

    /// The number of fields.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.count() as usize,
            Repr::Table(t) => t.len(),
        }
    }

    /// Whether it has no field.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it is packed (`listpack`) rather than a table.
    #[inline]
    pub fn is_packed(&self) -> bool {
        matches!(self.repr, Repr::Packed(_))
    }

    /// The encoding OBJECT ENCODING reports: `listpack` or `hashtable`.
    pub fn encoding(&self) -> &'static str {
        if self.is_packed() {
            "listpack"
        } else {
            "hashtable"
        }
    }

    /// The value of `field`.
    #[inline]
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Packed(p) => p.get(field),
            Repr::Table(t) => t.get(field).map(Pair::value),
        }
    }

    /// Whether `field` is there.
    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Before a write of strings of these lengths (fields and values), as
    /// Redis's `hashTypeTryConversion`: converts the hash to a table if
    /// one of them is longer than `limits.value`, or if together they
    /// could take a packed hash past its safe size.
    pub fn prepare(&mut self, lengths: impl IntoIterator<Item = usize>, limits: &Limits) {
        let Repr::Packed(p) = &self.repr else {
            return;
        };
        let mut sum = 0usize;
        for len in lengths {
            if len > limits.value {
                self.convert();
                return;
            }
            sum = sum.saturating_add(len);
        }
        if p.buf.len().saturating_add(sum) > MAX_PACKED_BYTES {
            self.convert();
        }
    }

    /// Sets `field` to `value`; whether the field is new. Converts to a
    /// table first if either is longer than `limits.value`, and after if
    /// the hash then has more than `limits.entries` fields (Redis's
    /// `hashTypeSet`).
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: &Limits) -> bool {
        if let Repr::Packed(p) = &self.repr {
            let too_big = field.len() > limits.value
                || value.len() > limits.value
                || p.buf.len() + entry_size(field.len()) + entry_size(value.len())
                    > MAX_PACKED_BYTES;
            if too_big {
                self.convert();
            }
        }
        match &mut self.repr {
            Repr::Packed(p) => {
                let new = p.set(field, value);
                if p.count() as usize > limits.entries || p.count() == u32::MAX {
                    self.convert();
                }
                new
            }
            Repr::Table(t) => t.insert(Pair::new(field, value)).is_none(),
        }
    }

    /// Removes `field`; whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Packed(p) => p.remove(field),
            Repr::Table(t) => t.remove(field).is_some(),
        }
    }

    /// Converts a packed hash to a table (a table stays as it is).
    pub fn convert(&mut self) {
        if let Repr::Packed(p) = &self.repr {
            let mut table = Dict::with_capacity(p.count() as usize);
            for (f, v) in p.iter() {
                table.insert(Pair::new(f, v));
            }
            self.repr = Repr::Table(Box::new(table));
        }
    }

    /// Every pair, in the hash's order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(match &self.repr {
            Repr::Packed(p) => IterRepr::Packed(p.iter()),
            Repr::Table(t) => IterRepr::Table(t, 0),
        })
    }

    /// One step of HSCAN from `cursor`: visits some pairs and returns the
    /// next cursor, 0 when done. A packed hash is visited whole at once (as
    /// Redis answers a listpack in one call); a table one bucket at a time,
    /// with Redis's cursor guarantee (see [`Dict::scan`]).
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&[u8], &[u8])) -> u64 {
        match &self.repr {
            Repr::Packed(p) => {
                p.iter().for_each(|(f, v)| visit(f, v));
                0
            }
            Repr::Table(t) => t.scan(cursor, |pair| visit(pair.field(), pair.value())),
        }
    }

    /// A pair picked uniformly at random, or `None` if empty.
    pub fn random(&self, rng: &mut Rng) -> Option<(&[u8], &[u8])> {
        let i = rng.below(self.len())?;
        match &self.repr {
            Repr::Packed(p) => p.iter().nth(i),
            Repr::Table(t) => t.get_index(i).map(|p| (p.field(), p.value())),
        }
    }

    /// `count` independent uniform picks, repeats possible, each handed to
    /// `visit` as it is made (HRANDFIELD with a negative count, whose reply
    /// may be far larger than the hash: nothing is collected here).
    pub fn random_repeats<'a>(
        &'a self,
        count: usize,
        rng: &mut Rng,
        mut visit: impl FnMut(&'a [u8], &'a [u8]),
    ) {
        let size = self.len();
        if size == 0 {
            return;
        }
        match &self.repr {
            Repr::Packed(p) => {
                // Indexed once: a pick is then one index, not a walk.
                let pairs: Vec<(&[u8], &[u8])> = p.iter().collect();
                for _ in 0..count {
                    let (f, v) = pairs[rng.below(size).unwrap_or(0)];
                    visit(f, v);
                }
            }
            Repr::Table(t) => {
                for _ in 0..count {
                    if let Some(pair) = t.get_index(rng.below(size).unwrap_or(0)) {
                        visit(pair.field(), pair.value());
                    }
                }
            }
        }
    }

    /// HRANDFIELD's picks for a count: `count` independent picks if
    /// `!unique` (repeats possible, random order); otherwise up to `count`
    /// distinct pairs, by Redis's strategies: the whole hash when `count`
    /// reaches its size; a copy thinned at random down to `count` when
    /// `count` is more than a third of it; else, packed, one ordered pass
    /// that keeps each pair with the probability still needed (Redis's
    /// `lpRandomPairsUnique`), and for a table random picks until `count`
    /// distinct ones are found.
    pub fn random_pairs(&self, count: usize, unique: bool, rng: &mut Rng) -> Vec<(&[u8], &[u8])> {
        let size = self.len();
        if size == 0 || count == 0 {
            return Vec::new();
        }
        // A packed hash is short: index it once.
        let packed: Vec<(&[u8], &[u8])> = match &self.repr {
            Repr::Packed(p) => p.iter().collect(),
            Repr::Table(_) => Vec::new(),
        };
        let at = |i: usize| -> (&[u8], &[u8]) {
            match &self.repr {
                Repr::Packed(_) => packed[i],
                Repr::Table(t) => t
                    .get_index(i)
                    .map_or((&[][..], &[][..]), |p| (p.field(), p.value())),
            }
        };
        let mut below = |n: usize| rng.below(n).unwrap_or(0);
        if !unique || count == 1 {
            let mut out = Vec::with_capacity(count);
            self.random_repeats(count, rng, |f, v| out.push((f, v)));
            return out;
        }
        if count >= size {
            return (0..size).map(at).collect();
        }
        if count * 3 > size {
            // Thin a copy of the indexes out at random.
            let mut left: Vec<usize> = (0..size).collect();
            while left.len() > count {
                let i = below(left.len());
                left.swap_remove(i);
            }
            return left.into_iter().map(at).collect();
        }
        if self.is_packed() {
            let mut out = Vec::with_capacity(count);
            for (i, pair) in packed.iter().enumerate() {
                if out.len() == count {
                    break;
                }
                let remaining = count - out.len();
                // Keep it with probability remaining / unvisited.
                if below(size - i) < remaining {
                    out.push(*pair);
                }
            }
            return out;
        }
        let mut seen = std::collections::HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let i = below(size);
            if seen.insert(i) {
                out.push(at(i));
            }
        }
        out
    }

    /// An empty hash to load an RDB value of the plain hash type into,
    /// pair by pair ([`Hash::load`]): packed if `packed` (Redis packs one
    /// of at most `hash-max-listpack-entries` fields).
    pub fn loading(packed: bool) -> Hash {
        let mut hash = Hash::new();
        if !packed {
            hash.convert();
        }
        hash
    }

    /// Adds a pair read from an RDB file to a hash made by
    /// [`Hash::loading`], converting it as soon as a field or value is
    /// longer than `limits.value`, as Redis converts while loading. A
    /// field given twice is an error, found here or by
    /// [`Hash::finish_loading`].
    pub fn load(&mut self, field: &[u8], value: &[u8], limits: &Limits) -> Result<(), LoadError> {
        if let Repr::Packed(p) = &mut self.repr {
            let size = p.buf.len() + entry_size(field.len()) + entry_size(value.len());
            let fits = field.len() <= limits.value
                && value.len() <= limits.value
                && size <= MAX_PACKED_BYTES
                && (p.count() as usize) < limits.entries;
            if fits {
                // Appended without a search: duplicates are found once, at
                // the end (a sort, not a search per field).
                let end = p.end();
                p.splice(end, end, &[field, value]);
                p.set_count(p.count() + 1);
                return Ok(());
            }
            self.check_unique()?;
            self.convert();
        }
        if self.set(field, value, limits) {
            Ok(())
        } else {
            Err(LoadError::Duplicate)
        }
    }

    /// Ends a load: checks a hash still packed for duplicate fields.
    pub fn finish_loading(self) -> Result<Hash, LoadError> {
        self.check_unique()?;
        Ok(self)
    }

    /// A hash of `pairs`, loaded as [`Hash::load`] loads them.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        packed: bool,
        limits: &Limits,
    ) -> Result<Hash, LoadError> {
        let mut hash = Hash::loading(packed);
        for (f, v) in pairs {
            hash.load(f, v, limits)?;
        }
        hash.finish_loading()
    }

    /// A packed hash exactly as an RDB listpack or ziplist held it
    /// (Redis keeps those as they are, whatever their values' lengths),
    /// converted only if it has more than `limits.entries` fields.
    pub fn from_packed<'a>(
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        limits: &Limits,
    ) -> Result<Hash, LoadError> {
        let mut buf = vec![0; HEAD];
        let mut count = 0u32;
        for (f, v) in pairs {
            for item in [f, v] {
                let at = buf.len();
                buf.resize(at + entry_size(item.len()), 0);
                write_entry(&mut buf[at..], item);
            }
            count = count.saturating_add(1);
        }
        let mut p = Packed {
            buf: buf.into_boxed_slice(),
        };
        p.set_count(count);
        let mut hash = Hash {
            repr: Repr::Packed(p),
        };
        hash.check_unique()?;
        if hash.len() > limits.entries {
            hash.convert();
        }
        Ok(hash)
    }

    /// For a packed hash: no field twice.
    fn check_unique(&self) -> Result<(), LoadError> {
        if let Repr::Packed(p) = &self.repr {
            let mut fields: Vec<&[u8]> = p.iter().map(|(f, _)| f).collect();
            fields.sort_unstable();
            if fields.windows(2).any(|w| w[0] == w[1]) {
                return Err(LoadError::Duplicate);
            }
        }
        Ok(())
    }

    /// Heap bytes the hash owns (for memory reports and tests): its buffer
    /// when packed; its table and the pairs' own buffers otherwise.
    pub fn bytes(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.buf.len(),
            Repr::Table(t) => {
                size_of::<Dict<Pair>>() + t.bytes() + t.iter().map(Pair::heap).sum::<usize>()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use proptest::prelude::*;

    use super::*;
    use crate::rng::Rng;

    fn limits(entries: usize, value: usize) -> Limits {
        Limits { entries, value }
    }

    #[test]
    fn sizes_stay_small() {
        assert_eq!(size_of::<Pair>(), 32);
        assert_eq!(size_of::<Hash>(), 16);
    }

    #[test]
    fn pairs_inline_or_on_the_heap() {
        for (f, v) in [
            (&b""[..], &b""[..]),
            (b"f", b"v"),
            (&[b'a'; 20], &[b'b'; 9]),
            (&[b'a'; 20], &[b'b'; 10]),
            (&[b'a'; 300], b""),
            (b"", &[b'z'; 1000]),
        ] {
            let p = Pair::new(f, v);
            assert_eq!((p.field(), p.value()), (f, v));
            assert_eq!(p.heap() == 0, f.len() + v.len() <= Pair::INLINE);
        }
    }

    #[test]
    fn packed_keeps_insertion_order_and_updates_in_place() {
        let l = Limits::default();
        let mut h = Hash::new();
        assert!(h.set(b"a", b"1", &l));
        assert!(h.set(b"b", b"2", &l));
        assert!(h.set(b"c", b"3", &l));
        assert!(!h.set(b"a", &[b'x'; 60], &l));
        assert!(!h.set(b"b", b"", &l));
        let got: Vec<_> = h.iter().collect();
        assert_eq!(
            got,
            [(&b"a"[..], &[b'x'; 60][..]), (b"b", b""), (b"c", b"3")]
        );
        assert!(h.remove(b"b"));
        assert!(!h.remove(b"b"));
        assert_eq!(h.len(), 2);
        assert_eq!(h.get(b"c"), Some(&b"3"[..]));
        assert_eq!(h.get(b"b"), None);
        assert_eq!(h.encoding(), "listpack");
        assert_eq!(h.bytes(), HEAD + 2 + 61 + 2 + 2);
    }

    #[test]
    fn converts_once_on_either_limit() {
        let l = limits(4, 8);
        let mut h = Hash::new();
        for i in 0..4 {
            h.set(format!("f{i}").as_bytes(), b"v", &l);
        }
        assert!(h.is_packed());
        h.set(b"f4", b"v", &l);
        assert_eq!(h.encoding(), "hashtable");
        // Never back.
        for i in 0..5 {
            h.remove(format!("f{i}").as_bytes());
        }
        h.set(b"x", b"y", &l);
        assert!(!h.is_packed());

        let mut h = Hash::new();
        h.set(b"field", b"12345678", &l);
        assert!(h.is_packed());
        h.set(b"field", b"123456789", &l);
        assert!(!h.is_packed());
        assert_eq!(h.get(b"field"), Some(&b"123456789"[..]));

        let mut h = Hash::new();
        h.set(b"a", b"b", &l);
        h.prepare([1, 9], &l);
        assert!(!h.is_packed());
        assert_eq!(h.get(b"a"), Some(&b"b"[..]));
    }

    #[test]
    fn long_entries_have_long_varints() {
        let l = limits(128, 1 << 20);
        let mut h = Hash::new();
        let big = vec![b'q'; 70_000];
        h.set(&big, &big[..200], &l);
        h.set(b"s", &big, &l);
        assert!(h.is_packed());
        assert_eq!(h.get(&big), Some(&big[..200]));
        assert_eq!(h.get(b"s"), Some(&big[..]));
        assert!(h.remove(&big));
        assert_eq!(h.iter().count(), 1);
    }

    #[test]
    fn random_picks_follow_the_strategies() {
        let l = limits(128, 64);
        let mut rng = Rng::new(7);
        for fields in [10usize, 300] {
            let mut h = Hash::new();
            for i in 0..fields {
                h.set(format!("f{i}").as_bytes(), format!("v{i}").as_bytes(), &l);
            }
            assert_eq!(h.is_packed(), fields <= 128);
            // Repeats allowed.
            assert_eq!(h.random_pairs(1000, false, &mut rng).len(), 1000);
            for count in [1, 2, fields / 3, fields / 2, fields - 1, fields, fields + 5] {
                let picks = h.random_pairs(count, true, &mut rng);
                assert_eq!(picks.len(), count.min(fields));
                let distinct: HashSet<_> = picks.iter().map(|p| p.0).collect();
                assert_eq!(distinct.len(), picks.len());
                for (f, v) in picks {
                    assert_eq!(h.get(f), Some(v));
                }
            }
            // Every field comes up.
            let mut seen = HashSet::new();
            for _ in 0..fields * 20 {
                seen.insert(h.random(&mut rng).unwrap().0);
            }
            assert_eq!(seen.len(), fields);
        }
        assert!(Hash::new().random(&mut rng).is_none());
    }

    #[test]
    fn loading_refuses_duplicates_and_converts_as_redis() {
        let l = limits(128, 64);
        let pairs = |n: usize| -> Vec<(Vec<u8>, Vec<u8>)> {
            (0..n)
                .map(|i| (format!("f{i}").into_bytes(), b"v".to_vec()))
                .collect()
        };
        fn as_refs(p: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
            p.iter().map(|(f, v)| (&f[..], &v[..])).collect()
        }
        let small = pairs(3);
        let h = Hash::from_pairs(as_refs(&small), true, &l).unwrap();
        assert!(h.is_packed());
        let big = pairs(200);
        assert!(
            !Hash::from_pairs(as_refs(&big), true, &l)
                .unwrap()
                .is_packed()
        );
        assert!(!Hash::from_packed(as_refs(&big), &l).unwrap().is_packed());
        let mut dup = pairs(3);
        dup.push(dup[0].clone());
        assert_eq!(
            Hash::from_pairs(as_refs(&dup), true, &l).unwrap_err(),
            LoadError::Duplicate
        );
        assert_eq!(
            Hash::from_packed(as_refs(&dup), &l).unwrap_err(),
            LoadError::Duplicate
        );
        // A duplicate before and after the conversion.
        let mut dup = pairs(3);
        dup.push((b"long".to_vec(), vec![b'x'; 100]));
        dup.push(dup[1].clone());
        assert!(Hash::from_pairs(as_refs(&dup), true, &l).is_err());
        let mut dup = pairs(3);
        dup.push(dup[1].clone());
        dup.push((b"long".to_vec(), vec![b'x'; 100]));
        assert!(Hash::from_pairs(as_refs(&dup), true, &l).is_err());
        // A listpack keeps long values packed; a plain hash does not.
        let long = vec![(b"f".to_vec(), vec![b'x'; 100])];
        assert!(Hash::from_packed(as_refs(&long), &l).unwrap().is_packed());
        assert!(
            !Hash::from_pairs(as_refs(&long), true, &l)
                .unwrap()
                .is_packed()
        );
    }

    #[test]
    fn scan_visits_a_table_by_buckets() {
        let l = limits(128, 64);
        let mut h = Hash::new();
        for i in 0..1000 {
            h.set(format!("f{i}").as_bytes(), b"v", &l);
        }
        let mut seen = HashSet::new();
        let (mut cursor, mut calls) = (0, 0);
        loop {
            cursor = h.scan(cursor, |f, _| {
                seen.insert(f.to_vec());
            });
            calls += 1;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 1000);
        assert!(calls > 1);
        let mut small = Hash::new();
        small.set(b"a", b"b", &l);
        let mut n = 0;
        assert_eq!(small.scan(0, |_, _| n += 1), 0);
        assert_eq!(n, 1);
    }

    /// An operation on a hash and on its model.
    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, Vec<u8>),
        Remove(u8),
        Prepare(usize),
        Get(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let value = prop_oneof![
            8 => prop::collection::vec(any::<u8>(), 0..12),
            2 => prop::collection::vec(any::<u8>(), 12..40),
            1 => prop::collection::vec(any::<u8>(), 150..300),
        ];
        prop_oneof![
            6 => (0u8..40, value).prop_map(|(f, v)| Op::Set(f, v)),
            3 => (0u8..40).prop_map(Op::Remove),
            1 => (0usize..20).prop_map(Op::Prepare),
            2 => (0u8..40).prop_map(Op::Get),
        ]
    }

    /// Field names of every length around the inline limit.
    fn field(f: u8) -> Vec<u8> {
        vec![b'a' + f % 26; usize::from(f)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// A hash answers as an insertion-ordered map does; while packed,
        /// in the map's order exactly.
        #[test]
        fn behaves_like_an_ordered_map(
            ops in prop::collection::vec(op(), 0..300),
            entries in 1usize..40,
            value in 1usize..64,
        ) {
            let l = limits(entries, value);
            let mut h = Hash::new();
            // Insertion order, as a listpack keeps it.
            let mut model: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let mut converted = false;
            for op in ops {
                match op {
                    Op::Set(f, v) => {
                        let f = field(f);
                        let existing = model.iter().position(|(k, _)| *k == f);
                        let must = f.len() > value || v.len() > value
                            || model.len() + usize::from(existing.is_none()) > entries;
                        prop_assert_eq!(h.set(&f, &v, &l), existing.is_none());
                        match existing {
                            Some(i) => model[i].1 = v,
                            None => model.push((f, v)),
                        }
                        converted |= must;
                    }
                    Op::Remove(f) => {
                        let f = field(f);
                        let existing = model.iter().position(|(k, _)| *k == f);
                        prop_assert_eq!(h.remove(&f), existing.is_some());
                        if let Some(i) = existing {
                            model.remove(i);
                        }
                    }
                    Op::Prepare(n) => {
                        h.prepare([n, 1], &l);
                        converted |= n > value;
                    }
                    Op::Get(f) => {
                        let f = field(f);
                        let want = model.iter().find(|(k, _)| *k == f).map(|(_, v)| &v[..]);
                        prop_assert_eq!(h.get(&f), want);
                    }
                }
                prop_assert_eq!(h.is_packed(), !converted);
                prop_assert_eq!(h.len(), model.len());
            }
            let got: Vec<(Vec<u8>, Vec<u8>)> =
                h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            if h.is_packed() {
                prop_assert_eq!(got, model);
            } else {
                let got: BTreeMap<_, _> = got.into_iter().collect();
                let want: BTreeMap<_, _> = model.into_iter().collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}

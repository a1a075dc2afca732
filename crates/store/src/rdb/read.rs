//! Reading: the pieces of an RDB file (lengths, strings, values) from a
//! slice held in memory.

use std::borrow::Cow;

use bytes::Bytes;

use super::{RdbError, container, kind, listpack, lzf, printable, ziplist, zipmap};
use crate::hash::{self, Hash};
use crate::list::List;
use crate::set::{self, Set};
use crate::value::{Form, Str, Value};
use crate::zset;

/// The value in a DUMP payload whose trailer was checked already: a type
/// byte, then the value's encoding. Like Redis, reads from the start of
/// the payload and ignores what follows the value; `None` for an empty
/// collection (which Redis refuses too).
pub fn read_value(payload: &[u8]) -> Result<Option<Value>, RdbError> {
    read_value_with(payload, super::Limits::default())
}

/// [`read_value`], hashes and sorted sets loaded under `limits` as Redis
/// loads them under its `*-max-listpack-*`.
pub fn read_value_with(payload: &[u8], limits: super::Limits) -> Result<Option<Value>, RdbError> {
    let mut r = Reader::new(payload);
    r.set_limits(limits);
    let ty = r.byte()?;
    r.object(ty, b"", 0)
}

/// A cursor over a file or a payload. Every read checks its length
/// against the bytes that are really there before anything relies on it,
/// so no input makes it panic or allocate what a length merely claims.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// When a hash loaded stays packed (Redis reads its configuration).
    hash_limits: hash::Limits,
    /// When a sorted set loaded stays packed.
    zset_limits: zset::Limits,
}

/// How a length field reads.
enum Len {
    Len(u64),
    /// A special string encoding (`11xxxxxx`): integer or LZF.
    Encoded(u8),
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader {
            data,
            pos: 0,
            hash_limits: hash::Limits::default(),
            zset_limits: zset::Limits::default(),
        }
    }

    /// Hashes and sorted sets loaded from now on stay packed within
    /// `limits` (`hash-max-listpack-*`, `zset-max-listpack-*`; Redis's
    /// defaults until set).
    pub fn set_limits(&mut self, limits: super::Limits) {
        self.hash_limits = limits.hash;
        self.zset_limits = limits.zset;
    }

    /// Where the next read starts.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The error for data that ends here.
    pub fn short(&self) -> RdbError {
        RdbError::Truncated(self.pos)
    }

    fn corrupt(&self, offset: usize, what: impl Into<String>) -> RdbError {
        RdbError::Corrupt {
            offset,
            what: what.into(),
        }
    }

    /// The next byte.
    pub fn byte(&mut self) -> Result<u8, RdbError> {
        let b = *self.data.get(self.pos).ok_or_else(|| self.short())?;
        self.pos += 1;
        Ok(b)
    }

    /// The next `n` bytes; checks `n` against what is left before anything
    /// relies on it.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| self.short())?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Redis's `rdbLoadLen`.
    fn len(&mut self) -> Result<Len, RdbError> {
        let at = self.pos;
        let first = self.byte()?;
        Ok(match first >> 6 {
            0 => Len::Len(u64::from(first & 0x3F)),
            1 => Len::Len(u64::from(first & 0x3F) << 8 | u64::from(self.byte()?)),
            3 => Len::Encoded(first & 0x3F),
            _ => match first {
                0x80 => {
                    let b = self.take(4)?;
                    Len::Len(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
                }
                0x81 => {
                    let b = self.take(8)?;
                    Len::Len(u64::from_be_bytes(b.try_into().map_err(|_| self.short())?))
                }
                _ => {
                    return Err(self.corrupt(at, format!("unknown length encoding 0x{first:02x}")));
                }
            },
        })
    }

    /// A plain length (not a string encoding).
    pub fn length(&mut self) -> Result<u64, RdbError> {
        let at = self.pos;
        match self.len()? {
            Len::Len(n) => Ok(n),
            Len::Encoded(e) => {
                Err(self.corrupt(at, format!("string encoding {e} where a length belongs")))
            }
        }
    }

    /// A count of items that each take at least `min_size` bytes: a count
    /// the remaining data cannot hold is a truncated file, found before
    /// anything is allocated for it.
    fn count(&mut self, min_size: usize) -> Result<usize, RdbError> {
        let n = self.length()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_size) <= self.remaining() => Ok(n),
            _ => Err(self.short()),
        }
    }

    /// A string: raw, integer-encoded (as its decimal text) or LZF.
    pub fn string(&mut self) -> Result<Cow<'a, [u8]>, RdbError> {
        let at = self.pos;
        match self.len()? {
            Len::Len(n) => {
                let n = usize::try_from(n).map_err(|_| self.short())?;
                Ok(Cow::Borrowed(self.take(n)?))
            }
            Len::Encoded(0) => Ok(Cow::Owned((self.byte()? as i8).to_string().into_bytes())),
            Len::Encoded(1) => {
                let b = self.take(2)?;
                Ok(Cow::Owned(
                    i16::from_le_bytes([b[0], b[1]]).to_string().into_bytes(),
                ))
            }
            Len::Encoded(2) => {
                let b = self.take(4)?;
                let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                Ok(Cow::Owned(v.to_string().into_bytes()))
            }
            Len::Encoded(3) => {
                let clen = self.length()?;
                let len = self.length()?;
                let clen = usize::try_from(clen).map_err(|_| self.short())?;
                let packed = self.take(clen)?;
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                lzf::decompress(packed, len)
                    .map(Cow::Owned)
                    .map_err(|e| self.corrupt(at, e))
            }
            Len::Encoded(e) => Err(self.corrupt(at, format!("unknown string encoding {e}"))),
        }
    }

    /// A value of type `ty` for `key` (whose record starts at `at`), or
    /// `None` for an empty collection, which Redis skips.
    pub fn object(&mut self, ty: u8, key: &[u8], at: usize) -> Result<Option<Value>, RdbError> {
        // Packed encodings are a string holding a structure; a bad one is
        // reported where its string starts.
        let bad = |offset: usize, what: &str| RdbError::Corrupt {
            offset,
            what: format!("{what} (key '{}')", printable(key)),
        };
        match ty {
            kind::STRING => {
                let s = self.string()?;
                Ok(Some(Value::Str(Str::from_vec(s.into_owned(), Form::Auto))))
            }
            kind::LIST => {
                let n = self.count(1)?;
                let mut list = List::new();
                for _ in 0..n {
                    list.push_back(Bytes::from(self.string()?.into_owned()));
                }
                Ok(non_empty(list))
            }
            kind::LIST_ZIPLIST => {
                let start = self.pos;
                let zl = self.string()?;
                let items = ziplist::decode(&zl).map_err(|e| bad(start, e))?;
                let mut list = List::new();
                items.into_iter().for_each(|i| list.push_back(i.to_bytes()));
                Ok(non_empty(list))
            }
            kind::LIST_QUICKLIST | kind::LIST_QUICKLIST_2 => {
                let nodes = self.count(2)?;
                let mut list = List::new();
                for _ in 0..nodes {
                    let mut packing = container::PACKED;
                    if ty == kind::LIST_QUICKLIST_2 {
                        let c_at = self.pos;
                        packing = self.length()?;
                        if packing != container::PACKED && packing != container::PLAIN {
                            return Err(bad(
                                c_at,
                                &format!("unknown quicklist container {packing}"),
                            ));
                        }
                    }
                    let start = self.pos;
                    let node = self.string()?;
                    if node.is_empty() {
                        return Err(bad(start, "empty quicklist node"));
                    }
                    if packing == container::PLAIN {
                        list.push_back(Bytes::from(node.into_owned()));
                        continue;
                    }
                    let items = if ty == kind::LIST_QUICKLIST_2 {
                        listpack::decode(&node)
                    } else {
                        ziplist::decode(&node)
                    }
                    .map_err(|e| bad(start, e))?;
                    items.into_iter().for_each(|i| list.push_back(i.to_bytes()));
                }
                Ok(non_empty(list))
            }
            // Sets are built as Redis 7.0 loads them under its default
            // `set-max-intset-entries`; a server configured otherwise refits
            // them (`Set::fit_loaded`).
            kind::SET => {
                let n = self.count(1)?;
                if n == 0 {
                    return Ok(None);
                }
                let mut set = Set::for_load(n, set::MAX_INTSET_ENTRIES);
                for _ in 0..n {
                    let start = self.pos;
                    let member = self.string()?;
                    if !set.add(&member, usize::MAX) {
                        return Err(bad(start, "duplicate set member"));
                    }
                }
                Ok(Some(Value::Set(set)))
            }
            kind::SET_INTSET => {
                let start = self.pos;
                let mut set = Set::from_intset_blob(&self.string()?).map_err(|e| match e {
                    set::LoadError::Corrupt(what) => bad(start, what),
                    set::LoadError::Duplicate => bad(start, "duplicate set member"),
                })?;
                // Kept as it is while it fits, as Redis keeps it.
                set.fit_loaded(set::MAX_INTSET_ENTRIES);
                Ok(Some(Value::Set(set)))
            }
            // Redis 7.2's small sets: never in a version 10 file, but read
            // as the list of members they are.
            kind::SET_LISTPACK => {
                let start = self.pos;
                let blob = self.string()?;
                let items = listpack::decode(&blob).map_err(|e| bad(start, e))?;
                if items.is_empty() {
                    return Ok(None);
                }
                let mut set = Set::for_load(items.len(), set::MAX_INTSET_ENTRIES);
                for item in items {
                    if !set.add(&item.to_bytes(), usize::MAX) {
                        return Err(bad(start, "duplicate set member"));
                    }
                }
                set.fit_loaded(set::MAX_INTSET_ENTRIES);
                Ok(Some(Value::Set(set)))
            }
            kind::HASH => {
                let n = self.count(2)?;
                let limits = self.hash_limits;
                let mut hash = Hash::loading(n <= limits.entries);
                for _ in 0..n {
                    let start = self.pos;
                    let field = self.string()?;
                    let value = self.string()?;
                    hash.load(&field, &value, &limits)
                        .map_err(|e| bad(start, &e.to_string()))?;
                }
                let hash = hash.finish_loading().map_err(|e| bad(at, &e.to_string()))?;
                Ok(non_empty_hash(hash))
            }
            kind::HASH_ZIPMAP => {
                let start = self.pos;
                let blob = self.string()?;
                let pairs = zipmap::decode(&blob).map_err(|e| bad(start, e))?;
                let limits = self.hash_limits;
                let mut hash = Hash::from_packed(pairs.iter().copied(), &limits)
                    .map_err(|e| bad(start, &e.to_string()))?;
                // A zipmap converts on its longest string too.
                let longest = pairs.iter().map(|(f, v)| f.len().max(v.len())).max();
                if longest.is_some_and(|l| l > limits.value) {
                    hash.convert();
                }
                Ok(non_empty_hash(hash))
            }
            kind::HASH_ZIPLIST | kind::HASH_LISTPACK => {
                let start = self.pos;
                let blob = self.string()?;
                let items = if ty == kind::HASH_ZIPLIST {
                    ziplist::decode(&blob)
                } else {
                    listpack::decode(&blob)
                }
                .map_err(|e| bad(start, e))?;
                if items.len() % 2 != 0 {
                    return Err(bad(start, "odd number of elements in a pairs encoding"));
                }
                let text: Vec<Cow<'_, [u8]>> = items.iter().map(|i| i.text()).collect();
                let pairs = text.chunks_exact(2).map(|p| (&p[0][..], &p[1][..]));
                // Kept packed as they are, whatever their values' lengths,
                // unless they have too many fields: as Redis loads them.
                let hash = Hash::from_packed(pairs, &self.hash_limits)
                    .map_err(|e| bad(start, &e.to_string()))?;
                Ok(non_empty_hash(hash))
            }
            // Sorted sets are built as Redis loads them under the limits
            // set here (Redis's defaults unless told otherwise).
            kind::ZSET | kind::ZSET_2 | kind::ZSET_ZIPLIST | kind::ZSET_LISTPACK => {
                let limits = self.zset_limits;
                Ok(zset::load(self, ty, &limits)?.map(Value::ZSet))
            }
            kind::STREAM_LISTPACKS | kind::STREAM_LISTPACKS_2 | kind::STREAM_LISTPACKS_3 => {
                Err(RdbError::UnsupportedType {
                    ty,
                    name: "stream",
                    key: printable(key),
                })
            }
            kind::MODULE | kind::MODULE_2 => Err(RdbError::UnsupportedType {
                ty,
                name: "module",
                key: printable(key),
            }),
            _ => Err(self.corrupt(at, format!("unknown RDB type {ty}"))),
        }
    }
}

/// A hash value, or `None` if it is empty.
fn non_empty_hash(hash: Hash) -> Option<Value> {
    (!hash.is_empty()).then_some(Value::Hash(hash))
}

/// A list value, or `None` if it is empty.
fn non_empty(list: List) -> Option<Value> {
    (!list.is_empty()).then(|| Value::List(Box::new(list)))
}

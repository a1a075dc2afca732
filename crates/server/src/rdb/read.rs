//! Reading: a whole RDB file, held in memory, into [`Loaded`].

use std::borrow::Cow;
use std::collections::HashMap;

use bytes::Bytes;

use super::{
    Loaded, RDB_VERSION, RdbError, container, crc, intset, kind, listpack, lzf, opcode, printable,
    ziplist, zipmap,
};
use crate::db::Entry;
use crate::list::List;
use crate::value::{Form, Str, Value};

/// Parses a whole RDB file held in memory. Never panics; corrupt,
/// truncated or unsupported input is an [`RdbError`].
pub(crate) fn read(data: &[u8]) -> Result<Loaded, RdbError> {
    let mut r = Reader { data, pos: 0 };
    let magic = r.take(9)?;
    if &magic[..5] != b"REDIS" {
        return Err(RdbError::Signature);
    }
    // atoi: the leading digits, 0 if none.
    let version = magic[5..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
    if !(1..=RDB_VERSION).contains(&version) {
        return Err(RdbError::Version(version));
    }
    let mut loaded = Loaded::default();
    // Where each database's keys are in `loaded.dbs`.
    let mut slot: HashMap<usize, usize> = HashMap::new();
    let mut db = 0usize;
    let mut expire_at: Option<i64> = None;
    loop {
        let at = r.pos;
        let ty = r.byte()?;
        match ty {
            opcode::EOF => break,
            opcode::EXPIRETIME => {
                let b = r.take(4)?;
                let secs = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                expire_at = Some(i64::from(secs) * 1000);
            }
            opcode::EXPIRETIME_MS => {
                let b = r.take(8)?;
                expire_at = Some(i64::from_le_bytes(b.try_into().map_err(|_| r.short())?));
            }
            // LFU frequency and LRU idle time: Ember keeps neither.
            opcode::FREQ => {
                r.byte()?;
            }
            opcode::IDLE => {
                r.length()?;
            }
            opcode::SELECTDB => {
                // Checked against `databases` when installed.
                db = usize::try_from(r.length()?).unwrap_or(usize::MAX);
            }
            // A sizing hint.
            opcode::RESIZEDB => {
                r.length()?;
                r.length()?;
            }
            opcode::AUX => {
                let key = r.string()?;
                let value = r.string()?;
                match &key[..] {
                    b"repl-id" if value.len() == 40 => {
                        loaded.repl_id = Some(String::from_utf8_lossy(&value).into_owned());
                    }
                    b"repl-offset" => {
                        loaded.repl_offset = std::str::from_utf8(&value)
                            .ok()
                            .and_then(|v| v.parse().ok());
                    }
                    _ => {}
                }
                loaded.aux.push((
                    Bytes::from(key.into_owned()),
                    Bytes::from(value.into_owned()),
                ));
            }
            opcode::MODULE_AUX => {
                return Err(RdbError::Unsupported(format!(
                    "the RDB file has module aux data (at offset {at}); this server loads no modules"
                )));
            }
            opcode::FUNCTION | opcode::FUNCTION2 => {
                return Err(RdbError::Unsupported(format!(
                    "the RDB file has a function library (at offset {at}); this server has no \
                     functions (FUNCTION FLUSH on the source server, then save again)"
                )));
            }
            _ => {
                let key = Bytes::from(r.string()?.into_owned());
                let value = r.object(ty, &key, at)?;
                let deadline = expire_at.take();
                let Some(value) = value else {
                    // An empty collection: Redis skips it too.
                    continue;
                };
                // A duplicate key is refused when installed (`install`),
                // where the keyspace's table finds it for free.
                let i = *slot.entry(db).or_insert_with(|| {
                    loaded.dbs.push((db, Vec::new()));
                    loaded.dbs.len() - 1
                });
                loaded.dbs[i].1.push((key, Entry::with(value, deadline)));
            }
        }
    }
    // Version 5 added the checksum; zero means it was not computed
    // (rdbchecksum no).
    if version >= 5 {
        let end = r.pos;
        let b = r.take(8)?;
        let stored = u64::from_le_bytes(b.try_into().map_err(|_| r.short())?);
        if stored != 0 {
            let computed = crc::crc64(&data[..end]);
            if computed != stored {
                return Err(RdbError::Checksum { stored, computed });
            }
        }
    }
    Ok(loaded)
}

/// The value in a DUMP payload whose trailer was checked already: a type
/// byte, then the value's encoding. Like Redis, reads from the start of
/// the payload and ignores what follows the value; `None` for an empty
/// collection (which Redis refuses too).
pub(crate) fn read_value(payload: &[u8]) -> Result<Option<Value>, RdbError> {
    let mut r = Reader {
        data: payload,
        pos: 0,
    };
    let ty = r.byte()?;
    r.object(ty, b"", 0)
}

/// A cursor over the file.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

/// How a length field reads.
enum Len {
    Len(u64),
    /// A special string encoding (`11xxxxxx`): integer or LZF.
    Encoded(u8),
}

impl<'a> Reader<'a> {
    fn short(&self) -> RdbError {
        RdbError::Truncated(self.pos)
    }

    fn corrupt(&self, offset: usize, what: impl Into<String>) -> RdbError {
        RdbError::Corrupt {
            offset,
            what: what.into(),
        }
    }

    fn byte(&mut self) -> Result<u8, RdbError> {
        let b = *self.data.get(self.pos).ok_or_else(|| self.short())?;
        self.pos += 1;
        Ok(b)
    }

    /// The next `n` bytes; checks `n` against what is left before anything
    /// relies on it.
    fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
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
    fn length(&mut self) -> Result<u64, RdbError> {
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
    fn string(&mut self) -> Result<Cow<'a, [u8]>, RdbError> {
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
    fn object(&mut self, ty: u8, key: &[u8], at: usize) -> Result<Option<Value>, RdbError> {
        let refuse = |kind: &'static str| RdbError::UnsupportedValue {
            key: printable(key),
            kind,
        };
        // Packed encodings are a string holding a structure; a bad one is
        // reported where its string starts.
        let bad = |offset: usize, what: &str| RdbError::Corrupt {
            offset,
            what: format!("{what} (key '{}')", printable(key)),
        };
        match ty {
            kind::STRING => {
                let s = self.string()?;
                Ok(Some(Value::Str(Str::new(
                    Bytes::from(s.into_owned()),
                    Form::Auto,
                ))))
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
            kind::SET => {
                let n = self.count(1)?;
                for _ in 0..n {
                    self.string()?;
                }
                if n == 0 { Ok(None) } else { Err(refuse("set")) }
            }
            kind::SET_INTSET => {
                let start = self.pos;
                intset::decode(&self.string()?).map_err(|e| bad(start, e))?;
                Err(refuse("set"))
            }
            kind::SET_LISTPACK => {
                let start = self.pos;
                let items = listpack::decode(&self.string()?)
                    .map_err(|e| bad(start, e))?
                    .len();
                if items == 0 {
                    Ok(None)
                } else {
                    Err(refuse("set"))
                }
            }
            kind::HASH => {
                let n = self.count(2)?;
                for _ in 0..n * 2 {
                    self.string()?;
                }
                if n == 0 {
                    Ok(None)
                } else {
                    Err(refuse("hash"))
                }
            }
            kind::HASH_ZIPMAP => {
                let start = self.pos;
                zipmap::decode(&self.string()?).map_err(|e| bad(start, e))?;
                Err(refuse("hash"))
            }
            kind::HASH_ZIPLIST | kind::HASH_LISTPACK | kind::ZSET_ZIPLIST | kind::ZSET_LISTPACK => {
                let start = self.pos;
                let blob = self.string()?;
                let items = if ty == kind::HASH_ZIPLIST || ty == kind::ZSET_ZIPLIST {
                    ziplist::decode(&blob)
                } else {
                    listpack::decode(&blob)
                }
                .map_err(|e| bad(start, e))?;
                if items.len() % 2 != 0 {
                    return Err(bad(start, "odd number of elements in a pairs encoding"));
                }
                let name = if ty == kind::HASH_ZIPLIST || ty == kind::HASH_LISTPACK {
                    "hash"
                } else {
                    "zset"
                };
                if items.is_empty() {
                    Ok(None)
                } else {
                    Err(refuse(name))
                }
            }
            kind::ZSET | kind::ZSET_2 => {
                let n = self.count(2)?;
                for _ in 0..n {
                    self.string()?;
                    if ty == kind::ZSET_2 {
                        self.take(8)?;
                    } else {
                        // A length byte, then that much text; 253..=255
                        // stand for NaN and the infinities.
                        let len = self.byte()?;
                        if len < 253 {
                            self.take(usize::from(len))?;
                        }
                    }
                }
                if n == 0 {
                    Ok(None)
                } else {
                    Err(refuse("zset"))
                }
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

/// A list value, or `None` if it is empty.
fn non_empty(list: List) -> Option<Value> {
    (!list.is_empty()).then(|| Value::List(Box::new(list)))
}

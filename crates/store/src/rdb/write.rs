//! Writing: the pieces of an RDB version 10 file, byte for byte what
//! Redis 7.0 writes for the same data (LZF included: `lzf.rs` is liblzf's
//! algorithm), but for the order of a hashtable set's members or a
//! hashtable hash's fields, which is its table's.

use std::io::{self, Write};

use super::crc::Crc64;
use super::listpack::Builder;
use super::{RDB_VERSION, container, kind, lzf, opcode, strict_i64};
use crate::hash::Hash;
use crate::set::Set;
use crate::value::Value;

/// Redis's default `list-max-listpack-size -2`: a quicklist node's
/// listpack holds up to 8 KiB.
const NODE_MAX_BYTES: usize = 8192;
/// Redis's `SIZE_ESTIMATE_OVERHEAD`: what it allows per element beyond
/// its length when deciding whether it fits in a node.
const NODE_ELEMENT_OVERHEAD: usize = 8;
/// Elements at least this long get a PLAIN node of their own: Redis's
/// `packed_threshold` (1 GiB). Smaller elements that do not fit a node get
/// a PACKED node of their own, as in Redis, so that our files hold only
/// the node shapes Redis itself produces.
pub const PLAIN_THRESHOLD: usize = 1 << 30;

/// The RDB type byte a value is written with.
pub fn value_type(value: &Value) -> u8 {
    match value {
        Value::Str(_) => kind::STRING,
        Value::List(_) => kind::LIST_QUICKLIST_2,
        Value::Set(s) if s.is_intset() => kind::SET_INTSET,
        Value::Set(_) => kind::SET,
        Value::Hash(h) if h.is_packed() => kind::HASH_LISTPACK,
        Value::Hash(_) => kind::HASH,
        Value::ZSet(z) => crate::zset::rdb_type(z),
    }
}

/// DUMP's payload for `value`: its type byte and encoding as in a file,
/// then the RDB version (2 bytes) and the CRC64 of everything before it
/// (8 bytes), both little endian, as Redis's `createDumpPayload` makes it.
pub fn dump(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out, PLAIN_THRESHOLD);
    let written = w
        .byte(value_type(value))
        .and_then(|()| w.value(value))
        .and_then(|()| w.raw(&(RDB_VERSION as u16).to_le_bytes()))
        .and_then(|()| w.finish());
    // Writing into a Vec does not fail.
    debug_assert!(written.is_ok());
    out
}

impl Writer<'_, Vec<u8>> {
    /// What has been written out so far (the unflushed buffer stays), so
    /// a file can leave in pieces as it is made.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(self.out)
    }
}

/// Buffers output and keeps the running checksum of everything written:
/// a file's writer, or a DUMP payload's.
pub struct Writer<'w, W: Write> {
    out: &'w mut W,
    buf: Vec<u8>,
    crc: Crc64,
    /// Whether `crc` is kept (not for a fragment).
    checksum: bool,
    plain_threshold: usize,
}

impl<W: Write> std::fmt::Debug for Writer<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("buffered", &self.buf.len())
            .field("plain_threshold", &self.plain_threshold)
            .finish_non_exhaustive()
    }
}

/// Bytes buffered before they go to the checksum and the output.
const BUF: usize = 64 * 1024;

impl<'w, W: Write> Writer<'w, W> {
    /// A writer into `out`; list elements at least `plain_threshold` long
    /// get a node of their own ([`PLAIN_THRESHOLD`] but in tests).
    pub fn new(out: &'w mut W, plain_threshold: usize) -> Self {
        Writer {
            out,
            buf: Vec::with_capacity(BUF),
            crc: Crc64::new(),
            checksum: true,
            plain_threshold,
        }
    }

    /// A writer of a fragment of a file (a snapshot's shard, encoded
    /// under its lock), joined to the file later with [`Writer::raw`]:
    /// no checksum (the file's writer computes it), and no buffer
    /// reserved up front.
    pub fn fragment(out: &'w mut W, plain_threshold: usize) -> Self {
        Writer {
            out,
            buf: Vec::new(),
            crc: Crc64::new(),
            checksum: false,
            plain_threshold,
        }
    }

    /// The magic and the version: how a file starts.
    pub fn magic(&mut self) -> io::Result<()> {
        self.raw(format!("REDIS{RDB_VERSION:04}").as_bytes())
    }

    /// SELECTDB and the RESIZEDB hint.
    pub fn select_db(&mut self, db: usize, keys: usize, expires: usize) -> io::Result<()> {
        self.byte(opcode::SELECTDB)?;
        self.len(db as u64)?;
        self.byte(opcode::RESIZEDB)?;
        self.len(keys as u64)?;
        self.len(expires as u64)
    }

    /// One key: its deadline, type, name and value.
    pub fn entry(&mut self, key: &[u8], expire_at: Option<i64>, value: &Value) -> io::Result<()> {
        if let Some(at) = expire_at {
            self.byte(opcode::EXPIRETIME_MS)?;
            self.raw(&at.to_le_bytes())?;
        }
        self.byte(value_type(value))?;
        self.string(key)?;
        self.value(value)
    }

    /// A value's encoding, without its type byte.
    pub fn value(&mut self, value: &Value) -> io::Result<()> {
        match value {
            Value::Str(s) => self.string(s.bytes()),
            Value::List(list) => self.quicklist(list.iter()),
            Value::Set(set) => self.set(set),
            Value::Hash(hash) => self.hash(hash),
            Value::ZSet(zset) => crate::zset::save(self, zset),
        }
    }

    /// A hash as Redis 7.0 writes it: a packed one as the listpack Redis
    /// would hold (the same pairs in the same order give the same bytes),
    /// a table as its count and its pairs.
    fn hash(&mut self, hash: &Hash) -> io::Result<()> {
        if hash.is_packed() {
            let mut lp = Builder::new();
            for (f, v) in hash.iter() {
                lp.push(f);
                lp.push(v);
            }
            return self.string(&lp.finish());
        }
        self.len(hash.len() as u64)?;
        for (f, v) in hash.iter() {
            self.string(f)?;
            self.string(v)?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if self.checksum {
            self.crc.update(&self.buf);
        }
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// One byte.
    pub fn byte(&mut self, b: u8) -> io::Result<()> {
        self.buf.push(b);
        if self.buf.len() >= BUF {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Bytes as they are.
    pub fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() <= BUF {
            self.buf.extend_from_slice(bytes);
            return Ok(());
        }
        // Large values go straight through, uncopied.
        self.flush_buf()?;
        if self.checksum {
            self.crc.update(bytes);
        }
        self.out.write_all(bytes)
    }

    /// Redis's `rdbSaveLen`.
    pub fn len(&mut self, n: u64) -> io::Result<()> {
        if n < 1 << 6 {
            self.byte(n as u8)
        } else if n < 1 << 14 {
            self.raw(&[0x40 | (n >> 8) as u8, n as u8])
        } else if let Ok(n) = u32::try_from(n) {
            self.byte(0x80)?;
            self.raw(&n.to_be_bytes())
        } else {
            self.byte(0x81)?;
            self.raw(&n.to_be_bytes())
        }
    }

    /// Redis's `rdbSaveRawString`: an integer encoding when the string is
    /// a canonical integer that fits 32 bits, LZF when longer than 20 bytes
    /// and it saves at least 4 bytes, else the bytes as they are.
    pub fn string(&mut self, s: &[u8]) -> io::Result<()> {
        if s.len() <= 11
            && let Some(v) = strict_i64(s)
        {
            if let Ok(v) = i8::try_from(v) {
                return self.raw(&[0xC0, v as u8]);
            } else if let Ok(v) = i16::try_from(v) {
                let b = v.to_le_bytes();
                return self.raw(&[0xC1, b[0], b[1]]);
            } else if let Ok(v) = i32::try_from(v) {
                let b = v.to_le_bytes();
                return self.raw(&[0xC2, b[0], b[1], b[2], b[3]]);
            }
        }
        if s.len() > 20
            && let Some(packed) = lzf::compress(s, s.len() - 4)
        {
            self.byte(0xC3)?;
            self.len(packed.len() as u64)?;
            self.len(s.len() as u64)?;
            return self.raw(&packed);
        }
        self.len(s.len() as u64)?;
        self.raw(s)
    }

    /// An aux field of the header.
    pub fn aux(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.byte(opcode::AUX)?;
        self.string(key)?;
        self.string(value)
    }

    /// A set as Redis 7.0 writes it: an intset's blob as one string
    /// (RDB_TYPE_SET_INTSET), a hashtable's count and members (RDB_TYPE_SET).
    fn set(&mut self, set: &Set) -> io::Result<()> {
        if let Some(blob) = set.intset_blob() {
            return self.string(&blob);
        }
        self.len(set.len() as u64)?;
        for member in set.iter() {
            member.with(|m| self.string(m))?;
        }
        Ok(())
    }

    /// A list as RDB_TYPE_LIST_QUICKLIST_2: nodes split as Redis's
    /// `quicklistPushTail` splits them under `list-max-listpack-size -2`.
    fn quicklist<'a>(&mut self, list: impl Iterator<Item = &'a [u8]>) -> io::Result<()> {
        let nodes = split(list, self.plain_threshold);
        self.len(nodes.len() as u64)?;
        for node in nodes {
            match node {
                Node::Plain(element) => {
                    self.len(container::PLAIN)?;
                    self.string(element)?;
                }
                Node::Packed(lp) => {
                    self.len(container::PACKED)?;
                    self.string(&lp)?;
                }
            }
        }
        Ok(())
    }

    /// Hands everything buffered to the output (and the checksum), as a
    /// file's pieces written apart are joined later with [`Writer::raw`].
    pub fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()
    }

    /// Ends the file: the checksum of everything before it, little endian.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush_buf()?;
        let crc = self.crc.finish();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.flush()
    }
}

/// A quicklist node to write.
#[derive(Debug)]
pub enum Node<'a> {
    /// One element, stored as is.
    Plain(&'a [u8]),
    /// A listpack.
    Packed(Vec<u8>),
}

/// Splits a list into nodes: an element joins the current node while the
/// node's listpack plus the element's length plus 8 stays within 8 KiB
/// (Redis's `_quicklistNodeAllowInsert` with fill -2); a node always
/// takes its first element, however long.
pub fn split<'a>(list: impl Iterator<Item = &'a [u8]>, plain_threshold: usize) -> Vec<Node<'a>> {
    let mut nodes = Vec::new();
    let mut current = Builder::new();
    for element in list {
        if element.len() >= plain_threshold {
            if !current.is_empty() {
                nodes.push(Node::Packed(std::mem::take(&mut current).finish()));
            }
            nodes.push(Node::Plain(element));
            continue;
        }
        let fits = current.bytes() + element.len() + NODE_ELEMENT_OVERHEAD <= NODE_MAX_BYTES;
        if !current.is_empty() && !fits {
            nodes.push(Node::Packed(std::mem::take(&mut current).finish()));
        }
        current.push(element);
    }
    if !current.is_empty() {
        nodes.push(Node::Packed(current.finish()));
    }
    nodes
}

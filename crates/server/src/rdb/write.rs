//! Writing: a [`Snapshot`] as an RDB version 10 file, byte for byte what
//! Redis 7.0 writes for the same data (but for the order of keys and the
//! LZF bytes, which differ between compressors).

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::crc::Crc64;
use super::listpack::Builder;
use super::{Aux, RDB_VERSION, REDIS_VER, Snapshot, container, kind, lzf, opcode, strict_i64};
use crate::db::{Entry, ShardView, Shards};
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
const PLAIN_THRESHOLD: usize = 1 << 30;

/// Writes a complete RDB v10 file (header; aux fields redis-ver,
/// redis-bits, ctime, used-mem, then the repl-* fields that are set, then
/// aof-base; SELECTDB and RESIZEDB for each non-empty database; entries
/// with EXPIRETIME_MS; EOF; CRC64 trailer) into `out`.
pub(crate) fn write(snapshot: &Snapshot, aux: &Aux, out: &mut impl Write) -> io::Result<()> {
    write_with(snapshot, aux, out, PLAIN_THRESHOLD)
}

/// [`write`], with the plain-node threshold as a parameter for tests.
pub(super) fn write_with(
    snapshot: &Snapshot,
    aux: &Aux,
    out: &mut impl Write,
    plain_threshold: usize,
) -> io::Result<()> {
    let mut w = Writer::new(out, plain_threshold);
    w.header(aux)?;
    for (i, keys) in snapshot.dbs.iter().enumerate() {
        if keys.is_empty() {
            continue;
        }
        let expires = keys.iter().filter(|(_, e)| e.expire_at().is_some()).count();
        w.select_db(i, keys.len(), expires)?;
        for (key, entry) in keys {
            w.entry(key, entry)?;
        }
    }
    w.byte(opcode::EOF)?;
    w.finish()
}

/// Streams an RDB file of the keyspace as of one instant into `out`, the
/// way a replica's full resync wants it: the snapshot's instant is fixed
/// under every shard lock (where `under_lock` runs and gives the aux
/// fields), then each shard is encoded in place under its own lock, or
/// from the copy a command made when it touched the shard first (see
/// `Keyspace::begin_snapshot`). Nothing is copied but what commands touch
/// meanwhile, and the first bytes leave before the last shard is read. The
/// first non-empty database streams this way; any other one is copied
/// during the walk and written after it (the format groups keys by
/// database).
///
/// The bytes go to `send` between shard visits, never while a shard is
/// locked: `send` may wait (for a slow replica) without holding up the
/// clients of any shard.
pub(crate) fn stream_snapshot<T>(
    shards: &mut Shards<'_>,
    under_lock: impl FnOnce() -> (T, Aux),
    mut send: impl FnMut(Vec<u8>) -> io::Result<()>,
) -> io::Result<T> {
    let now = crate::server::now_ms();
    let ks = shards.keyspace();
    let databases = shards.databases();
    let _one = ks.snapshot_guard();
    let epoch = ks.next_snapshot_epoch();
    let mut sizes = vec![(0usize, 0usize); databases];
    let (extra, aux) = {
        let mut all = shards.lock_all();
        for shard in all.shards() {
            for (size, db) in sizes.iter_mut().zip(&shard.dbs) {
                size.0 += db.len();
                size.1 += db.volatile_len();
            }
        }
        ks.begin_snapshot(now, epoch);
        under_lock()
    };
    let mut out = Vec::new();
    let result = (|| {
        let mut w = Writer::new(&mut out, PLAIN_THRESHOLD);
        w.header(&aux)?;
        let first = sizes.iter().position(|s| s.0 > 0);
        let mut later: Vec<Vec<(Bytes, Entry)>> = vec![Vec::new(); databases];
        if let Some(first) = first {
            w.select_db(first, sizes[first].0, sizes[first].1)?;
        }
        for i in 0..crate::db::SHARDS {
            ks.visit_for_snapshot(i, epoch, |view| -> io::Result<()> {
                match view {
                    ShardView::Copied(parts) => {
                        for (db, keys) in parts.into_iter().enumerate() {
                            if Some(db) == first {
                                for (key, entry) in &keys {
                                    w.entry(key, entry)?;
                                }
                            } else {
                                later[db].extend(keys);
                            }
                        }
                    }
                    ShardView::Live(dbs) => {
                        for (db, d) in dbs.iter().enumerate() {
                            let at = if d.hide_expired { i64::MIN } else { now };
                            if Some(db) == first {
                                for (key, entry) in d.iter(at) {
                                    w.entry(key, entry)?;
                                }
                            } else if d.len() > 0 {
                                later[db].extend(
                                    d.iter(at)
                                        .map(|(k, e)| (Bytes::copy_from_slice(k), e.clone())),
                                );
                            }
                        }
                    }
                }
                Ok(())
            })?;
            let ready = w.take_output();
            if !ready.is_empty() {
                send(ready)?;
            }
        }
        for (db, keys) in later.iter().enumerate() {
            if keys.is_empty() {
                continue;
            }
            let expires = keys.iter().filter(|(_, e)| e.expire_at().is_some()).count();
            w.select_db(db, keys.len(), expires)?;
            for (key, entry) in keys {
                w.entry(key, entry)?;
            }
        }
        w.byte(opcode::EOF)?;
        w.finish()
    })();
    ks.end_snapshot();
    result?;
    if !out.is_empty() {
        send(out)?;
    }
    Ok(extra)
}

/// The RDB type byte a value is written with.
fn value_type(value: &Value) -> u8 {
    match value {
        Value::Str(_) => kind::STRING,
        Value::List(_) => kind::LIST_QUICKLIST_2,
    }
}

/// DUMP's payload for `value`: its type byte and encoding as in a file,
/// then the RDB version (2 bytes) and the CRC64 of everything before it
/// (8 bytes), both little endian, as Redis's `createDumpPayload` makes it.
pub(crate) fn dump(value: &Value) -> Vec<u8> {
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
    /// What has been written out so far (the unflushed buffer stays).
    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(self.out)
    }
}

/// Buffers output and keeps the running checksum of everything written.
pub(super) struct Writer<'w, W: Write> {
    out: &'w mut W,
    buf: Vec<u8>,
    crc: Crc64,
    plain_threshold: usize,
}

/// Bytes buffered before they go to the checksum and the output.
const BUF: usize = 64 * 1024;

impl<'w, W: Write> Writer<'w, W> {
    pub(super) fn new(out: &'w mut W, plain_threshold: usize) -> Self {
        Writer {
            out,
            buf: Vec::with_capacity(BUF),
            crc: Crc64::new(),
            plain_threshold,
        }
    }

    /// The magic, the version and the aux fields.
    fn header(&mut self, aux: &Aux) -> io::Result<()> {
        self.raw(format!("REDIS{RDB_VERSION:04}").as_bytes())?;
        let ctime = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.aux(b"redis-ver", REDIS_VER.as_bytes())?;
        self.aux(b"redis-bits", b"64")?;
        self.aux(b"ctime", ctime.to_string().as_bytes())?;
        let used = crate::server::resident_memory();
        self.aux(b"used-mem", used.to_string().as_bytes())?;
        if let Some(db) = aux.repl_stream_db {
            self.aux(b"repl-stream-db", db.to_string().as_bytes())?;
        }
        if let Some(id) = &aux.repl_id {
            self.aux(b"repl-id", id.as_bytes())?;
        }
        if let Some(offset) = aux.repl_offset {
            self.aux(b"repl-offset", offset.to_string().as_bytes())?;
        }
        self.aux(b"aof-base", b"0")
    }

    /// SELECTDB and the RESIZEDB hint.
    fn select_db(&mut self, db: usize, keys: usize, expires: usize) -> io::Result<()> {
        self.byte(opcode::SELECTDB)?;
        self.len(db as u64)?;
        self.byte(opcode::RESIZEDB)?;
        self.len(keys as u64)?;
        self.len(expires as u64)
    }

    /// One key: its deadline, type, name and value.
    fn entry(&mut self, key: &[u8], entry: &Entry) -> io::Result<()> {
        if let Some(at) = entry.expire_at() {
            self.byte(opcode::EXPIRETIME_MS)?;
            self.raw(&at.to_le_bytes())?;
        }
        self.byte(value_type(&entry.value))?;
        self.string(key)?;
        self.value(&entry.value)
    }

    /// A value's encoding, without its type byte.
    fn value(&mut self, value: &Value) -> io::Result<()> {
        match value {
            Value::Str(s) => self.string(s.bytes()),
            Value::List(list) => self.quicklist(list.iter()),
        }
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.crc.update(&self.buf);
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn byte(&mut self, b: u8) -> io::Result<()> {
        self.buf.push(b);
        if self.buf.len() >= BUF {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() <= BUF {
            self.buf.extend_from_slice(bytes);
            return Ok(());
        }
        // Large values go straight through, uncopied.
        self.flush_buf()?;
        self.crc.update(bytes);
        self.out.write_all(bytes)
    }

    /// Redis's `rdbSaveLen`.
    fn len(&mut self, n: u64) -> io::Result<()> {
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
    pub(super) fn string(&mut self, s: &[u8]) -> io::Result<()> {
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

    fn aux(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.byte(opcode::AUX)?;
        self.string(key)?;
        self.string(value)
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

    /// Ends the file: the checksum of everything before it, little endian.
    pub(super) fn finish(mut self) -> io::Result<()> {
        self.flush_buf()?;
        let crc = self.crc.finish();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.flush()
    }
}

/// A quicklist node to write.
pub(super) enum Node<'a> {
    /// One element, stored as is.
    Plain(&'a [u8]),
    /// A listpack.
    Packed(Vec<u8>),
}

/// Splits a list into nodes: an element joins the current node while the
/// node's listpack plus the element's length plus 8 stays within 8 KiB
/// (Redis's `_quicklistNodeAllowInsert` with fill -2); a node always
/// takes its first element, however long.
pub(super) fn split<'a>(
    list: impl Iterator<Item = &'a [u8]>,
    plain_threshold: usize,
) -> Vec<Node<'a>> {
    let mut nodes = Vec::new();
    let mut current = Builder::new();
    for element in list {
        if element.len() >= plain_threshold {
            if !current.is_empty() {
                nodes.push(Node::Packed(
                    std::mem::replace(&mut current, Builder::new()).finish(),
                ));
            }
            nodes.push(Node::Plain(element));
            continue;
        }
        let fits = current.bytes() + element.len() + NODE_ELEMENT_OVERHEAD <= NODE_MAX_BYTES;
        if !current.is_empty() && !fits {
            nodes.push(Node::Packed(
                std::mem::replace(&mut current, Builder::new()).finish(),
            ));
        }
        current.push(element);
    }
    if !current.is_empty() {
        nodes.push(Node::Packed(current.finish()));
    }
    nodes
}

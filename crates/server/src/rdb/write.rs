//! Writing: a [`Snapshot`] as an RDB version 10 file, byte for byte what
//! Redis 7.0 writes for the same data (but for the order of keys and the
//! LZF bytes, which differ between compressors). The values inside are
//! `store::rdb`'s to encode; this is the file around them, and the walk
//! over the keyspace that streams one to a replica.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(test)]
use store::rdb::PLAIN_THRESHOLD;
use store::rdb::{Writer, opcode};

#[cfg(test)]
use super::Snapshot;
use super::{Aux, REDIS_VER, stream};
use crate::db::Shards;

/// Writes a complete RDB v10 file (header; aux fields redis-ver,
/// redis-bits, ctime, used-mem, then the repl-* fields that are set, then
/// aof-base; SELECTDB and RESIZEDB for each non-empty database; entries
/// with EXPIRETIME_MS; EOF; CRC64 trailer) into `out`.
#[cfg(test)]
pub(crate) fn write(snapshot: &Snapshot, aux: &Aux, out: &mut impl Write) -> io::Result<()> {
    write_with(snapshot, aux, out, PLAIN_THRESHOLD)
}

/// [`write`], with the plain-node threshold as a parameter for tests.
#[cfg(test)]
pub(super) fn write_with(
    snapshot: &Snapshot,
    aux: &Aux,
    out: &mut impl Write,
    plain_threshold: usize,
) -> io::Result<()> {
    let mut w = Writer::new(out, plain_threshold);
    header(&mut w, aux)?;
    for (i, keys) in snapshot.dbs.iter().enumerate() {
        if keys.is_empty() {
            continue;
        }
        let expires = keys.iter().filter(|(_, e)| e.expire_at().is_some()).count();
        w.select_db(i, keys.len(), expires)?;
        for (key, entry) in keys {
            w.entry(key, entry.expire_at(), &entry.value)?;
        }
    }
    w.byte(opcode::EOF)?;
    w.finish()
}

/// Streams an RDB file of the keyspace as of one instant, the way a
/// replica's full resync wants it: the instant is fixed under every shard
/// lock (where `under_lock` runs and gives the aux fields; a snapshot
/// already running is waited for), then the shards are walked one at a
/// time (see `stream.rs`), and the bytes go to `send` between shard
/// visits, never while a shard is locked: `send` may wait (for a slow
/// replica) without holding up the clients of any shard.
pub(crate) fn stream_snapshot<T>(
    shards: &mut Shards<'_>,
    under_lock: impl FnOnce() -> (T, Aux),
    send: impl FnMut(Vec<u8>) -> io::Result<()>,
) -> io::Result<T> {
    let (fixed, (extra, aux)) =
        stream::fix_waiting(shards, std::sync::Arc::new(stream::RdbEncoder), under_lock);
    let ks = shards.keyspace();
    let mut walker = |each: &mut dyn FnMut(Vec<Vec<u8>>) -> io::Result<()>| {
        stream::walk(ks, &fixed, &mut |_| true, each)
    };
    stream::write_rdb(&aux, &fixed.sizes, &mut walker, &mut Sink(send))?;
    Ok(extra)
}

/// An `io::Write` that hands each piece written to a function.
struct Sink<F>(F);

impl<F: FnMut(Vec<u8>) -> io::Result<()>> Write for Sink<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !buf.is_empty() {
            (self.0)(buf.to_vec())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The magic, the version and the aux fields.
pub(super) fn header<W: Write>(w: &mut Writer<'_, W>, aux: &Aux) -> io::Result<()> {
    w.magic()?;
    let ctime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    w.aux(b"redis-ver", REDIS_VER.as_bytes())?;
    w.aux(b"redis-bits", b"64")?;
    w.aux(b"ctime", ctime.to_string().as_bytes())?;
    let used = crate::server::resident_memory();
    w.aux(b"used-mem", used.to_string().as_bytes())?;
    if let Some(db) = aux.repl_stream_db {
        w.aux(b"repl-stream-db", db.to_string().as_bytes())?;
    }
    if let Some(id) = &aux.repl_id {
        w.aux(b"repl-id", id.as_bytes())?;
    }
    if let Some(offset) = aux.repl_offset {
        w.aux(b"repl-offset", offset.to_string().as_bytes())?;
    }
    w.aux(b"aof-base", if aux.aof_base { b"1" } else { b"0" })?;
    for code in &aux.functions {
        w.byte(opcode::FUNCTION2)?;
        w.string(code)?;
    }
    Ok(())
}

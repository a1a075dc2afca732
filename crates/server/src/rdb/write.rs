//! Writing: a [`Snapshot`] as an RDB version 10 file, byte for byte what
//! Redis 7.0 writes for the same data (but for the order of keys and the
//! LZF bytes, which differ between compressors). The values inside are
//! `store::rdb`'s to encode; this is the file around them, and the walk
//! over the keyspace that streams one to a replica.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use store::rdb::{PLAIN_THRESHOLD, Writer, opcode};

use super::{Aux, REDIS_VER, Snapshot};
use crate::db::{Entry, Shards};
use store::keyspace::ShardView;

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
        header(&mut w, &aux)?;
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
                                    w.entry(key, entry.expire_at(), &entry.value)?;
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
                                    w.entry(key, entry.expire_at(), &entry.value)?;
                                }
                            } else if !d.is_empty() {
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
                w.entry(key, entry.expire_at(), &entry.value)?;
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

/// The magic, the version and the aux fields.
fn header<W: Write>(w: &mut Writer<'_, W>, aux: &Aux) -> io::Result<()> {
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

//! Reading: a whole RDB file, held in memory, into [`Loaded`]. The
//! values inside are `store::rdb`'s to decode; this is the file around
//! them (header, databases, deadlines, aux fields, checksum).

use std::collections::HashMap;

use bytes::Bytes;
use store::rdb::{RDB_VERSION, RdbError, Reader, crc, opcode};

use super::Loaded;
use crate::db::Entry;

/// Parses a whole RDB file held in memory, with Redis's default
/// encoding limits. Never panics; corrupt, truncated or unsupported input
/// is an [`RdbError`].
#[cfg(test)]
pub(crate) fn read(data: &[u8]) -> Result<Loaded, RdbError> {
    read_with(data, store::rdb::Limits::default())
}

/// [`read`], its hashes and sorted sets loaded under `limits`
/// (`*-max-listpack-*`) as Redis loads them under its configuration.
pub(crate) fn read_with(data: &[u8], limits: store::rdb::Limits) -> Result<Loaded, RdbError> {
    let mut r = Reader::new(data);
    r.set_limits(limits);
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
        let at = r.pos();
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
            // A library's code; the caller loads it (`script::Functions`).
            opcode::FUNCTION2 => {
                loaded.functions.push(r.string()?.into_owned());
            }
            opcode::FUNCTION => {
                return Err(RdbError::Unsupported(format!(
                    "the RDB file has a function library in the format of Redis 7.0's release \
                     candidates (at offset {at}), which Redis 7.0 does not load either"
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
        let end = r.pos();
        let b = r.take(8)?;
        let stored = u64::from_le_bytes(b.try_into().map_err(|_| r.short())?);
        if stored != 0 {
            let computed = crc::crc64(&data[..end]);
            if computed != stored {
                return Err(RdbError::Checksum { stored, computed });
            }
        }
    }
    // An AOF's RDB preamble is followed by commands: they start here.
    loaded.end = r.pos();
    Ok(loaded)
}

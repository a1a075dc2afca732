//! RDB, Redis's snapshot format, as far as values go: version 10, as Redis
//! 7.0 writes it.
//!
//! [`dump`] and [`restore`] are DUMP and RESTORE's payloads. A file is
//! made of the same pieces: [`Writer`] writes them (lengths, strings, a
//! value in Redis's encoding, aux fields, SELECTDB, a key with its
//! deadline) with a running CRC64, and [`Reader`] reads them back. The
//! server keeps the file around them: its header fields (which need a
//! clock and the process's memory), the walk over the keyspace, files on
//! disk, BGSAVE and the replication transport.
//!
//! What is read: every encoding Redis 7.0 or an older Redis writes for
//! strings, lists (plain lists, ziplists, quicklists of ziplists,
//! quicklists of listpacks with packed and plain nodes), sets (lists of
//! members, intsets, 7.2's listpacks) and hashes (plain, zipmap, ziplist,
//! listpack). Sorted sets, in all their encodings (ziplist, listpack), are
//! decoded and validated, then refused by name, because the keyspace
//! cannot hold them yet; so are streams and module values. Nothing is
//! ever dropped silently.
//!
//! What is written: exactly what Redis 7.0 writes for the same data
//! (integer-encoded and LZF-compressed strings, lists as quicklists of
//! listpacks split the way `list-max-listpack-size -2` splits them, sets
//! as intset blobs or lists of members, packed hashes as the listpack
//! Redis would hold, others as field-value pairs).
//!
//! No I/O beyond the `Write` a writer is handed, and reading never panics,
//! whatever the input: every length is checked against the bytes that are
//! really there before anything is allocated.
//!
//! Crates: the checksum is the `crc` crate's `CRC_64_REDIS` (the same
//! polynomial and reflection as Redis's `crc64.c`, table-driven). LZF is our
//! own ~150 lines in `lzf.rs`: the one LZF crate on crates.io (`lzf`) is
//! marked deprecated, and the format is small enough to own, test and fuzz.

pub mod crc;
pub mod intset;
pub mod listpack;
pub mod lzf;
mod read;
mod write;
pub mod ziplist;
pub mod zipmap;

pub use read::{Reader, read_value, read_value_with};
pub use write::{Node, PLAIN_THRESHOLD, Writer, dump, split, value_type};

use crate::value::Value;

/// The version [`Writer`] produces and the newest [`Reader`] accepts.
pub const RDB_VERSION: u32 = 10;

/// Opcodes: bytes that stand where a value type would and mean something
/// else.
pub mod opcode {
    /// Redis's `RDB_OPCODE_FUNCTION2`.
    pub const FUNCTION2: u8 = 0xF5;
    /// Redis's `RDB_OPCODE_FUNCTION_PRE_GA`.
    pub const FUNCTION: u8 = 0xF6;
    /// Redis's `RDB_OPCODE_MODULE_AUX`.
    pub const MODULE_AUX: u8 = 0xF7;
    /// Redis's `RDB_OPCODE_IDLE`.
    pub const IDLE: u8 = 0xF8;
    /// Redis's `RDB_OPCODE_FREQ`.
    pub const FREQ: u8 = 0xF9;
    /// Redis's `RDB_OPCODE_AUX`.
    pub const AUX: u8 = 0xFA;
    /// Redis's `RDB_OPCODE_RESIZEDB`.
    pub const RESIZEDB: u8 = 0xFB;
    /// Redis's `RDB_OPCODE_EXPIRETIME_MS`.
    pub const EXPIRETIME_MS: u8 = 0xFC;
    /// Redis's `RDB_OPCODE_EXPIRETIME`.
    pub const EXPIRETIME: u8 = 0xFD;
    /// Redis's `RDB_OPCODE_SELECTDB`.
    pub const SELECTDB: u8 = 0xFE;
    /// Redis's `RDB_OPCODE_EOF`.
    pub const EOF: u8 = 0xFF;
}

/// Value types, Redis's `RDB_TYPE_*`.
pub mod kind {
    /// Redis's `RDB_TYPE_STRING`.
    pub const STRING: u8 = 0;
    /// Redis's `RDB_TYPE_LIST`.
    pub const LIST: u8 = 1;
    /// Redis's `RDB_TYPE_SET`.
    pub const SET: u8 = 2;
    /// Redis's `RDB_TYPE_ZSET`.
    pub const ZSET: u8 = 3;
    /// Redis's `RDB_TYPE_HASH`.
    pub const HASH: u8 = 4;
    /// Redis's `RDB_TYPE_ZSET_2`.
    pub const ZSET_2: u8 = 5;
    /// Redis's `RDB_TYPE_MODULE`.
    pub const MODULE: u8 = 6;
    /// Redis's `RDB_TYPE_MODULE_2`.
    pub const MODULE_2: u8 = 7;
    /// Redis's `RDB_TYPE_HASH_ZIPMAP`.
    pub const HASH_ZIPMAP: u8 = 9;
    /// Redis's `RDB_TYPE_LIST_ZIPLIST`.
    pub const LIST_ZIPLIST: u8 = 10;
    /// Redis's `RDB_TYPE_SET_INTSET`.
    pub const SET_INTSET: u8 = 11;
    /// Redis's `RDB_TYPE_ZSET_ZIPLIST`.
    pub const ZSET_ZIPLIST: u8 = 12;
    /// Redis's `RDB_TYPE_HASH_ZIPLIST`.
    pub const HASH_ZIPLIST: u8 = 13;
    /// Redis's `RDB_TYPE_LIST_QUICKLIST`.
    pub const LIST_QUICKLIST: u8 = 14;
    /// Redis's `RDB_TYPE_STREAM_LISTPACKS`.
    pub const STREAM_LISTPACKS: u8 = 15;
    /// Redis's `RDB_TYPE_HASH_LISTPACK`.
    pub const HASH_LISTPACK: u8 = 16;
    /// Redis's `RDB_TYPE_ZSET_LISTPACK`.
    pub const ZSET_LISTPACK: u8 = 17;
    /// Redis's `RDB_TYPE_LIST_QUICKLIST_2`.
    pub const LIST_QUICKLIST_2: u8 = 18;
    /// Redis's `RDB_TYPE_STREAM_LISTPACKS_2`.
    pub const STREAM_LISTPACKS_2: u8 = 19;
    /// Redis 7.2 (RDB 11): never in a file we accept, but harmless to read.
    pub const SET_LISTPACK: u8 = 20;
    /// Redis 7.2 (RDB 11).
    pub const STREAM_LISTPACKS_3: u8 = 21;
}

/// Quicklist node containers (RDB type 18).
pub mod container {
    /// One element stored as is.
    pub const PLAIN: u64 = 1;
    /// A listpack of elements.
    pub const PACKED: u64 = 2;
}

/// Why RDB data does not decode: a file, or a value inside one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RdbError {
    /// The data ends in the middle of something.
    #[error("unexpected end of RDB data at offset {0}")]
    Truncated(usize),
    /// The file does not start with `REDIS`.
    #[error("wrong signature trying to load DB from file: not an RDB file")]
    Signature,
    /// A version we cannot read (Redis's wording).
    #[error("Can't handle RDB format version {0}")]
    Version(u32),
    /// The CRC64 trailer does not match the contents.
    #[error(
        "RDB checksum mismatch: the file says {stored:016x}, its contents give {computed:016x}"
    )]
    Checksum {
        /// The trailer.
        stored: u64,
        /// What the contents give.
        computed: u64,
    },
    /// Bytes that do not decode.
    #[error("corrupt RDB data at offset {offset}: {what}")]
    Corrupt {
        /// Where the bad item starts in the file.
        offset: usize,
        /// What is wrong with it.
        what: String,
    },
    /// A value type this server cannot even decode (streams, modules).
    #[error("unsupported RDB type {ty} ({name}) for key '{key}'")]
    UnsupportedType {
        /// The RDB type byte.
        ty: u8,
        /// What it holds.
        name: &'static str,
        /// The key, printable.
        key: String,
    },
    /// Data outside the keyspace that this server cannot keep (module aux
    /// data, function libraries).
    #[error("{0}")]
    Unsupported(String),
}

/// Why RESTORE refuses a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// Shorter than its trailer, from a newer RDB version, or a checksum
    /// that does not match (Redis's wording).
    #[error("ERR DUMP payload version or checksum are wrong")]
    Trailer,
    /// The value does not decode, or is an empty collection.
    #[error("ERR Bad data format")]
    BadFormat,
    /// A value of a type this server does not hold (a stream, a module's).
    #[error("ERR Bad data format: the payload holds a {0}, which this server does not store")]
    Unsupported(&'static str),
}

/// The value in a DUMP payload (see [`dump`]), its trailer checked the
/// way Redis's `verifyDumpPayload` checks it.
pub fn restore(payload: &[u8]) -> Result<Value, PayloadError> {
    restore_with(payload, Limits::default())
}

/// The limits values are loaded under, as Redis loads them under its
/// configuration: a hash or sorted set stays packed within them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `hash-max-listpack-*`.
    pub hash: crate::hash::Limits,
    /// `zset-max-listpack-*`.
    pub zset: crate::zset::Limits,
}

/// [`restore`], hashes and sorted sets loaded under `limits` as Redis's
/// RESTORE loads them.
pub fn restore_with(payload: &[u8], limits: Limits) -> Result<Value, PayloadError> {
    let Some(body_len) = payload.len().checked_sub(10) else {
        return Err(PayloadError::Trailer);
    };
    let trailer = &payload[body_len..];
    let version = u16::from_le_bytes([trailer[0], trailer[1]]);
    if u32::from(version) > RDB_VERSION {
        return Err(PayloadError::Trailer);
    }
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&trailer[2..]);
    // The checksum covers the version too.
    if crc::crc64(&payload[..body_len + 2]) != u64::from_le_bytes(stored) {
        return Err(PayloadError::Trailer);
    }
    match read_value_with(payload, limits) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(PayloadError::BadFormat),
        Err(RdbError::UnsupportedType { name, .. }) => Err(PayloadError::Unsupported(name)),
        Err(_) => Err(PayloadError::BadFormat),
    }
}

/// Redis's `string2ll`: the integer `s` spells exactly, with no sign but
/// `-`, no leading zeros and no `-0`, so that printing it back gives `s`.
/// Both the RDB string encoder and listpacks store such strings as
/// integers.
pub fn strict_i64(s: &[u8]) -> Option<i64> {
    // LONG_STR_SIZE: 20 digits and a sign fit, anything longer does not.
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        if v > 1 << 63 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// A key as error messages show it: printable ASCII as is, other bytes
/// escaped, long keys cut.
pub fn printable(key: &[u8]) -> String {
    const MAX: usize = 128;
    let mut out = String::new();
    for &b in key.iter().take(MAX) {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if key.len() > MAX {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests;

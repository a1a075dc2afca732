//! A base file as commands (`aof-use-rdb-preamble no`), the way Redis's
//! `rewriteAppendOnlyFileRio` writes one: SELECT per database, then per
//! key SET, RPUSH, SADD, HMSET or ZADD with at most 64 elements a command,
//! and PEXPIREAT for a key with a deadline.

use std::io::{self, Write};

use store::keyspace::encode_into;
use store::value::Value;

use crate::rdb::Snapshot;

/// Elements per command (Redis's `AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_CMD: usize = 64;

/// Writes every key of `snapshot` as commands.
pub(super) fn commands(snapshot: &Snapshot, out: &mut impl Write) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    for (db, keys) in snapshot.dbs.iter().enumerate() {
        if keys.is_empty() {
            continue;
        }
        let n = db.to_string();
        emit(&mut buf, &[b"SELECT", n.as_bytes()]);
        for (key, entry) in keys {
            match &entry.value {
                Value::Str(s) => emit(&mut buf, &[b"SET", key, s.bytes()]),
                Value::List(list) => {
                    let items: Vec<&[u8]> = list.iter().collect();
                    batches(&mut buf, b"RPUSH", key, &items);
                }
                Value::Set(set) => {
                    let members: Vec<Vec<u8>> =
                        set.iter().map(|m| m.with(<[u8]>::to_vec)).collect();
                    let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
                    batches(&mut buf, b"SADD", key, &refs);
                }
                Value::Hash(hash) => {
                    let mut flat: Vec<&[u8]> = Vec::with_capacity(hash.len() * 2);
                    for (f, v) in hash.iter() {
                        flat.push(f);
                        flat.push(v);
                    }
                    pairs(&mut buf, b"HMSET", key, &flat);
                }
                Value::ZSet(zset) => {
                    let scores: Vec<store::zset::ScoreText> = zset
                        .iter()
                        .map(|(_, s)| store::zset::format_score(s))
                        .collect();
                    let mut flat: Vec<&[u8]> = Vec::with_capacity(zset.len() * 2);
                    for ((m, _), s) in zset.iter().zip(&scores) {
                        flat.push(s.as_bytes());
                        flat.push(m);
                    }
                    pairs(&mut buf, b"ZADD", key, &flat);
                }
            }
            if let Some(at) = entry.expire_at() {
                let at = at.to_string();
                emit(&mut buf, &[b"PEXPIREAT", key, at.as_bytes()]);
            }
            if buf.len() >= 64 * 1024 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
    }
    out.write_all(&buf)
}

fn emit(buf: &mut Vec<u8>, args: &[&[u8]]) {
    encode_into(buf, args.iter().copied());
}

/// `cmd key item...`, at most [`ITEMS_PER_CMD`] items a command.
fn batches(buf: &mut Vec<u8>, cmd: &[u8], key: &[u8], items: &[&[u8]]) {
    for chunk in items.chunks(ITEMS_PER_CMD) {
        let mut args: Vec<&[u8]> = Vec::with_capacity(chunk.len() + 2);
        args.push(cmd);
        args.push(key);
        args.extend_from_slice(chunk);
        emit(buf, &args);
    }
}

/// `cmd key a b ...` for items that go in pairs, at most
/// [`ITEMS_PER_CMD`] pairs a command.
fn pairs(buf: &mut Vec<u8>, cmd: &[u8], key: &[u8], flat: &[&[u8]]) {
    for chunk in flat.chunks(ITEMS_PER_CMD * 2) {
        let mut args: Vec<&[u8]> = Vec::with_capacity(chunk.len() + 2);
        args.push(cmd);
        args.push(key);
        args.extend_from_slice(chunk);
        emit(buf, &args);
    }
}

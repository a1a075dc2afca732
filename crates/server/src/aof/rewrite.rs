//! A base file as commands (`aof-use-rdb-preamble no`), the way Redis's
//! `rewriteAppendOnlyFileRio` writes one: SELECT per database, then per
//! key SET, RPUSH, SADD, HMSET or ZADD with at most 64 elements a command,
//! and PEXPIREAT for a key with a deadline.

use std::io::{self, Write};

use store::keyspace::{Encoder, Entry, encode_into};
use store::value::Value;

use crate::rdb::stream::{Part, Walker, walk_by_database};

/// Elements per command (Redis's `AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_CMD: usize = 64;

/// Keys as commands, for a snapshot's walk (`rdb::stream`).
#[derive(Debug)]
pub(super) struct Commands;

impl Encoder for Commands {
    fn encode(
        &self,
        _db: usize,
        keys: &mut dyn Iterator<Item = (&[u8], &Entry)>,
        out: &mut Vec<u8>,
    ) {
        for (key, entry) in keys {
            key_commands(out, key, entry);
        }
    }
}

/// Writes a walk of [`Commands`]-encoded shards, SELECT before each
/// database's keys (ordered as `rdb::stream::walk_by_database` orders them).
pub(super) fn write_commands(
    sizes: &[(usize, usize)],
    walker: &mut dyn Walker,
    out: &mut impl Write,
) -> io::Result<()> {
    walk_by_database(sizes, walker, &mut |part| match part {
        Part::Select(db) => {
            let n = db.to_string();
            let mut buf = Vec::new();
            emit(&mut buf, &[b"SELECT", n.as_bytes()]);
            out.write_all(&buf)
        }
        Part::Bytes(bytes) => out.write_all(bytes),
        Part::ShardDone => Ok(()),
    })
}

/// One key's commands: its value, then its deadline.
fn key_commands(buf: &mut Vec<u8>, key: &[u8], entry: &Entry) {
    match &entry.value {
        Value::Str(s) => emit(buf, &[b"SET", key, s.bytes()]),
        Value::List(list) => {
            let items: Vec<&[u8]> = list.iter().collect();
            batches(buf, b"RPUSH", key, &items);
        }
        Value::Set(set) => {
            let members: Vec<Vec<u8>> = set.iter().map(|m| m.with(<[u8]>::to_vec)).collect();
            let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
            batches(buf, b"SADD", key, &refs);
        }
        Value::Hash(hash) => {
            let mut flat: Vec<&[u8]> = Vec::with_capacity(hash.len() * 2);
            for (f, v) in hash.iter() {
                flat.push(f);
                flat.push(v);
            }
            pairs(buf, b"HMSET", key, &flat);
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
            pairs(buf, b"ZADD", key, &flat);
        }
    }
    if let Some(at) = entry.expire_at() {
        let at = at.to_string();
        emit(buf, &[b"PEXPIREAT", key, at.as_bytes()]);
    }
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

//! MEMORY USAGE (and MEMORY HELP): what a key costs, estimated; and
//! DEBUG OBJECT, which tells a value's encoding and serialized length.
//!
//! Redis asks its allocator for each allocation's size; Ember adds up
//! what its types say they hold on the heap, plus the key's slot in the
//! keyspace. The figure is an estimate, as Redis's sampled one is; what
//! it is for (the test suite, a client's rough look) needs no more.

use resp::Request;
use store::value::Value;

use super::keys::unknown_subcommand;
use super::{CmdError, CmdResult, Ctx};
use crate::args::{eq, parse_i64};

/// What a key costs before its value's own heap: its slot (key inline up
/// to 24 bytes, entry, access time), the table's pointer to it, and the
/// allocator's rounding.
const SLOT_BYTES: usize = 112;

/// Heap bytes a value holds beyond its place in the entry.
fn value_bytes(value: &Value) -> usize {
    match value {
        Value::Str(s) => s.shared().map_or(0, |b| b.len()),
        // Each element's bytes and its two length varints.
        Value::List(l) => l.iter().map(|e| e.len() + 2).sum(),
        Value::Hash(h) => h.bytes(),
        // Its table or array, and members too long for a slot.
        Value::Set(s) => s.heap_bytes(),
        Value::ZSet(z) => z.bytes(),
    }
}

pub(super) fn memory(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let sub = &req[1];
    if eq(sub, "help") {
        let lines = [
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
            "HELP",
            "    Prints this help.",
        ];
        ctx.reply.array(lines.len());
        for line in lines {
            ctx.reply.simple(line);
        }
        return Ok(());
    }
    if !eq(sub, "usage") {
        return Err(unknown_subcommand(&req[0], sub));
    }
    // SAMPLES is checked, then ignored: every element is counted.
    let mut i = 3;
    while i < req.len() {
        if eq(&req[i], "samples") && i + 1 < req.len() {
            if parse_i64(&req[i + 1])? < 0 {
                return Err(CmdError::Syntax);
            }
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let key = &req[2];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    match db.peek(key, ctx.now) {
        Some(entry) => {
            let key_heap = if key.len() > 24 { key.len() } else { 0 };
            let total = SLOT_BYTES + key_heap + value_bytes(&entry.value);
            ctx.reply.int(total as i64);
        }
        None => ctx.reply.null(),
    }
    Ok(())
}

/// DEBUG OBJECT `key`: Redis's line about a value (the quicklist details
/// it adds for lists are left out).
pub(super) fn debug_object(ctx: &mut Ctx<'_>, key: &[u8]) -> CmdResult {
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let idle = db.idle_secs(key).unwrap_or(0);
    let Some(entry) = db.peek(key, ctx.now) else {
        return Err(CmdError::other("ERR no such key"));
    };
    // The payload without its type byte and its 10-byte trailer: what
    // Redis's `rdbSavedObjectLen` counts.
    let serialized = store::rdb::dump(&entry.value).len().saturating_sub(11);
    // Redis's LRU stamps are 24 bits of seconds.
    let lru = crate::db::lru_clock().wrapping_sub(idle as u32) & 0xFF_FFFF;
    let line = format!(
        "Value at:{:p} refcount:1 encoding:{} serializedlength:{serialized} lru:{lru} lru_seconds_idle:{idle}",
        &entry.value as *const Value,
        entry.value.encoding(),
    );
    ctx.reply.simple(&line);
    Ok(())
}

//! MEMORY USAGE (and MEMORY HELP): what a key costs, estimated; and
//! DEBUG OBJECT, which tells a value's encoding and serialized length.
//!
//! Redis asks its allocator for each allocation's size; Ember adds up
//! what its types say they hold on the heap, rounded to the allocator's
//! size classes, plus the key's slot in the keyspace. The figure is an
//! estimate, as Redis's sampled one is (docs/memory.md compares both with
//! what `used_memory` moves by).

use resp::Request;
use store::value::Value;

use super::keys::unknown_subcommand;
use super::{CmdError, CmdResult, Ctx};
use crate::args::{eq, parse_i64};

/// What a key costs before its value's own heap: its slot (key inline up
/// to 22 bytes, access time, deadline, value: 64 bytes, exactly
/// jemalloc's 64-byte class), and its share of the table (an 8-byte
/// pointer in a group of 7 in one line, the table between 44% and 87%
/// full: about 16 bytes).
pub(crate) const SLOT_BYTES: usize = 80;

/// Heap bytes a value holds beyond its place in the entry; a list's
/// elements are sampled (`samples` of them, 0 for all) and the average
/// extrapolated, as Redis does.
pub(crate) fn value_bytes(value: &Value, samples: usize) -> usize {
    use crate::memory::size_class;
    match value {
        Value::Str(s) => s
            .heap_sizes()
            .into_iter()
            .filter(|&n| n > 0)
            .map(size_class)
            .sum(),
        // Each element's bytes and its two length varints.
        Value::List(l) => {
            let n = l.len();
            let take = if samples == 0 { n } else { samples.min(n) };
            let sampled: usize = l.iter().take(take).map(|e| e.len() + 2).sum();
            (sampled * n).checked_div(take).unwrap_or(0)
        }
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
    if eq(sub, "stats") {
        return stats(ctx);
    }
    if eq(sub, "doctor") {
        let text = doctor(ctx);
        ctx.reply.verbatim(text.as_bytes());
        return Ok(());
    }
    if eq(sub, "purge") {
        crate::memory::purge();
        ctx.reply.ok();
        return Ok(());
    }
    if eq(sub, "malloc-stats") {
        let text = crate::memory::malloc_stats();
        ctx.reply.verbatim(text.as_bytes());
        return Ok(());
    }
    if !eq(sub, "usage") {
        return Err(unknown_subcommand(&req[0], sub));
    }
    let mut samples = 5;
    let mut i = 3;
    while i < req.len() {
        if eq(&req[i], "samples") && i + 1 < req.len() {
            let n = parse_i64(&req[i + 1])?;
            if n < 0 {
                return Err(CmdError::Syntax);
            }
            samples = n as usize;
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
            let key_heap = if key.len() > store::keyspace::KEY_INLINE {
                crate::memory::size_class(key.len())
            } else {
                0
            };
            let total = SLOT_BYTES + key_heap + value_bytes(&entry.value, samples);
            ctx.reply.int(total as i64);
        }
        None => ctx.reply.null(),
    }
    Ok(())
}

/// What MEMORY STATS counts for each key's place in the keyspace, beside
/// its value: its slot and its share of the table ([`SLOT_BYTES`]), and
/// for a key with a deadline its place in the list the expiry cycle
/// samples (a 24-byte key copy in a vector that doubles as it grows, and
/// a 4-byte position in a table at most 87% full: about 40 bytes;
/// `used_memory` moves by 40.5 for 100,000 deadlines).
const EXPIRES_BYTES: u64 = 40;

/// Keys and keys with a deadline, per database.
fn key_counts(ctx: &mut Ctx<'_>) -> Vec<(u64, u64)> {
    let mut counts = vec![(0u64, 0u64); ctx.shards.databases()];
    ctx.shards.for_each_shard(|s| {
        for (i, db) in s.dbs.iter().enumerate() {
            counts[i].0 += db.len() as u64;
            counts[i].1 += db.volatile_len() as u64;
        }
    });
    counts
}

/// MEMORY STATS: Redis's fields, in its order.
fn stats(ctx: &mut Ctx<'_>) -> CmdResult {
    let f = crate::memory::Figures::read(ctx.shared);
    let counts = key_counts(ctx);
    let lua = ctx.shared.scripts.bodies();
    let functions = ctx.shared.scripts.functions.memory();
    let per_db: Vec<(usize, u64, u64)> = counts
        .iter()
        .enumerate()
        .filter(|(_, (keys, _))| *keys > 0)
        .map(|(i, (keys, expires))| (i, keys * SLOT_BYTES as u64, expires * EXPIRES_BYTES))
        .collect();
    let keys: u64 = counts.iter().map(|c| c.0).sum();
    let overhead = (f.startup
        + f.backlog
        + f.clients_normal
        + f.clients_slaves
        + lua
        + functions
        + per_db.iter().map(|d| d.1 + d.2).sum::<u64>())
    .min(f.used);
    let net = f.used.saturating_sub(f.startup);
    let dataset = f.used - overhead;
    let percent = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    let r = &mut ctx.reply;
    r.map(27 + per_db.len());
    let int = |r: &mut crate::reply::Reply<'_>, name: &str, v: i64| {
        r.bulk(name.as_bytes());
        r.int(v);
    };
    int(r, "peak.allocated", f.peak as i64);
    int(r, "total.allocated", f.used as i64);
    int(r, "startup.allocated", f.startup as i64);
    int(r, "replication.backlog", f.backlog as i64);
    int(r, "clients.slaves", f.clients_slaves as i64);
    int(r, "clients.normal", f.clients_normal as i64);
    int(r, "cluster.links", 0);
    int(r, "aof.buffer", 0);
    int(r, "lua.caches", lua as i64);
    int(r, "functions.caches", functions as i64);
    for (i, main, expires) in &per_db {
        r.bulk(format!("db.{i}").as_bytes());
        r.map(3);
        int(r, "overhead.hashtable.main", *main as i64);
        int(r, "overhead.hashtable.expires", *expires as i64);
        int(r, "overhead.hashtable.slot-to-keys", 0);
    }
    int(r, "overhead.total", overhead as i64);
    int(r, "keys.count", keys as i64);
    int(
        r,
        "keys.bytes-per-key",
        net.checked_div(keys).unwrap_or(0) as i64,
    );
    int(r, "dataset.bytes", dataset as i64);
    r.bulk(b"dataset.percentage");
    r.double(percent(dataset, net));
    r.bulk(b"peak.percentage");
    r.double(percent(f.used, f.peak));
    int(r, "allocator.allocated", f.allocator.allocated as i64);
    int(r, "allocator.active", f.allocator.active as i64);
    int(r, "allocator.resident", f.allocator.resident as i64);
    for (name, (ratio, bytes)) in [
        ("allocator-fragmentation", f.allocator_frag()),
        ("allocator-rss", f.allocator_rss()),
        ("rss-overhead", f.rss_overhead()),
    ] {
        r.bulk(format!("{name}.ratio").as_bytes());
        r.double(ratio);
        int(r, &format!("{name}.bytes"), bytes);
    }
    let (ratio, bytes) = f.fragmentation();
    r.bulk(b"fragmentation");
    r.double(ratio);
    int(r, "fragmentation.bytes", bytes);
    Ok(())
}

/// MEMORY DOCTOR: Redis's report, from the same thresholds.
fn doctor(ctx: &mut Ctx<'_>) -> String {
    let f = crate::memory::Figures::read(ctx.shared);
    if f.used < 5 << 20 {
        return "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".into();
    }
    let big = |(ratio, bytes): (f64, i64), over: f64| ratio > over && bytes > 10 << 20;
    let mut found = Vec::new();
    if f.peak as f64 / f.used as f64 > 1.5 {
        found.push(" * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n".to_string());
    }
    if big(f.fragmentation(), 1.4) {
        found.push(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"jemalloc-5.3.0\".\n\n".to_string());
    }
    if big(f.allocator_frag(), 1.1) {
        found.push(" * High allocator fragmentation: This instance has an allocator external fragmentation greater than 1.1. This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. You can try enabling 'activedefrag' config option.\n\n".to_string());
    }
    if big(f.allocator_rss(), 1.1) {
        found.push(" * High allocator RSS overhead: This instance has an RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the allocator is much larger than the sum what the allocator actually holds). This problem is usually due to a large peak memory (check if there is a peak memory entry above in the report), you can try the MEMORY PURGE command to reclaim it.\n\n".to_string());
    }
    if big(f.rss_overhead(), 1.1) {
        found.push(" * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the Redis process is much larger than the RSS the allocator holds). This problem may be due to Lua scripts or Modules.\n\n".to_string());
    }
    if ctx.shared.scripts.cached() > 1000 {
        found.push(" * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.\n\n".to_string());
    }
    if found.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".into();
    }
    let mut text =
        "Sam, I detected a few issues in this Redis instance memory implants:\n\n".to_string();
    for f in found {
        text.push_str(&f);
    }
    text.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
    text
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
    let refcount = super::keys::refcount(ctx.shared, &entry.value);
    let line = format!(
        "Value at:{:p} refcount:{refcount} encoding:{} serializedlength:{serialized} lru:{lru} lru_seconds_idle:{idle}",
        &entry.value as *const Value,
        entry.value.encoding(),
    );
    ctx.reply.simple(&line);
    Ok(())
}

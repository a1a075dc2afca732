//! Commands on keys of any type: deletion, existence, renaming, expiry,
//! iteration.

use bytes::Bytes;
use resp::Request;

use super::{CmdError, CmdResult, Ctx};
use crate::args::{Args, eq, parse_i64};
use crate::db::{Rng, SHARDS};
use crate::notify::Notify;
use store::keyspace::class;

pub(super) fn del(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let keys: Vec<&[u8]> = req.iter().skip(1).collect();
    // UNLINK, and DEL with `lazyfree-lazy-user-del`, leave large values
    // to the lazy-free thread (`lazyfree.rs`).
    let lazy = ctx.cmd.name == "unlink"
        || ctx
            .shared
            .lazyfree
            .user_del
            .load(std::sync::atomic::Ordering::Relaxed);
    let mut removed = Vec::new();
    let mut locked = ctx.shards.lock_keys(keys.iter().copied());
    let mut n = 0;
    for key in keys {
        let mut db = locked.db(ctx.client.db, key);
        // An expired key counts as absent.
        if db.contains(key, ctx.now) {
            removed.extend(db.remove(key));
            db.notify(class::GENERIC, "del", key);
            n += 1;
        }
    }
    drop(locked);
    // Freed after the shards are unlocked, so other clients of them do
    // not wait for it.
    for entry in removed {
        if lazy {
            ctx.shared.lazyfree.free(entry.value);
        }
    }
    ctx.reply.int(n);
    Ok(())
}

/// EXISTS and TOUCH: how many of the keys exist, repeats counted.
pub(super) fn exists(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    // TOUCH counts as an access (OBJECT IDLETIME); EXISTS does not.
    let access = ctx.cmd.name == "touch";
    if req.len() == 2 {
        // One key, the common case: one lock and one hash of the key, as
        // GET, rather than a lock set.
        let key = &req[1];
        let mut shard = ctx.shards.lock_key(key);
        let mut db = shard.db(ctx.client.db);
        crate::notify::read_miss(&mut db, key, ctx.now);
        let found = match access {
            true => db.get(key, ctx.now).is_some(),
            false => db.peek(key, ctx.now).is_some(),
        };
        ctx.reply.int(i64::from(found));
        return Ok(());
    }
    let keys: Vec<&[u8]> = req.iter().skip(1).collect();
    let mut locked = ctx.shards.lock_keys(keys.iter().copied());
    let n = keys
        .iter()
        .filter(|k| {
            let mut db = locked.db(ctx.client.db, k);
            crate::notify::read_miss(&mut db, k, ctx.now);
            if access {
                db.get(k, ctx.now).is_some()
            } else {
                db.peek(k, ctx.now).is_some()
            }
        })
        .count();
    ctx.reply.int(n as i64);
    Ok(())
}

pub(super) fn type_(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    crate::notify::read_miss(&mut shard.db(ctx.client.db), key, ctx.now);
    let name = shard
        .db(ctx.client.db)
        .peek(key, ctx.now)
        .map_or("none", |e| e.value.type_name());
    ctx.reply.simple(name);
    Ok(())
}

pub(super) fn keys(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let pattern = &req[1];
    let all = pattern == b"*";
    let mut found = Vec::new();
    let db = ctx.client.db;
    let mut locked = ctx.shards.lock_all();
    for shard in locked.shards() {
        found.extend(
            shard.dbs[db]
                .iter(ctx.now)
                .filter(|(k, _)| all || store::glob::matches(pattern, k, false))
                .map(|(k, _)| crate::db::Key::from_slice(k)),
        );
    }
    drop(locked);
    ctx.reply.array(found.len());
    for key in found {
        ctx.reply.bulk(&key);
    }
    Ok(())
}

/// SCAN's cursor is the next shard to visit; each step returns whole
/// shards until COUNT keys are collected, so a key present for the whole
/// scan is returned exactly once.
pub(super) fn scan(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let mut args = Args::new(req);
    let cursor = args.next()?;
    let cursor: u64 = std::str::from_utf8(cursor)
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| CmdError::other("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut type_filter) = (None, 10i64, None);
    while let Some(opt) = args.peek() {
        args.next()?;
        if eq(opt, "match") && args.remaining() > 0 {
            pattern = Some(args.next()?);
        } else if eq(opt, "count") && args.remaining() > 0 {
            count = parse_i64(args.next()?)?;
            if count < 1 {
                return Err(CmdError::Syntax);
            }
        } else if eq(opt, "type") && args.remaining() > 0 {
            type_filter = Some(args.next()?);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut shard_id = cursor as usize;
    let mut found = Vec::new();
    while shard_id < SHARDS && (found.len() as i64) < count {
        let mut shard = ctx.shards.lock_shard(shard_id);
        let mut db = shard.db(ctx.client.db);
        // Expired keys SCAN meets are deleted, as Redis's SCAN deletes them.
        let expired = db.expired_keys(ctx.now);
        if !expired.is_empty() {
            deleting_expired(ctx.shared, &mut db, |db| {
                for key in &expired {
                    db.get(key, ctx.now);
                }
            });
        }
        found.extend(
            db.iter(ctx.now)
                .filter(|(k, _)| pattern.is_none_or(|p| store::glob::matches(p, k, false)))
                .filter(|(_, e)| type_filter.is_none_or(|t| eq(t, e.value.type_name())))
                .map(|(k, _)| crate::db::Key::from_slice(k)),
        );
        shard_id += 1;
    }
    let next = if shard_id >= SHARDS { 0 } else { shard_id };
    ctx.reply.array(2);
    ctx.reply.bulk(next.to_string().as_bytes());
    ctx.reply.array(found.len());
    for key in found {
        ctx.reply.bulk(&key);
    }
    Ok(())
}

pub(super) fn randomkey(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    // Calls within the same millisecond must not repeat one another: each
    // call moves a shared seed on (a Weyl sequence).
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(0x9e37_79b9_7f4a_7c15, std::sync::atomic::Ordering::Relaxed);
    let mut rng = Rng::new(ctx.now as u64 ^ ctx.client.id().rotate_left(17) ^ call);
    let start = rng.below(SHARDS).unwrap_or(0);
    for i in 0..SHARDS {
        let mut shard = ctx.shards.lock_shard((start + i) % SHARDS);
        let mut db = shard.db(ctx.client.db);
        let now = ctx.now;
        if let Some(key) = deleting_expired(ctx.shared, &mut db, |db| db.random_key(now, &mut rng))
        {
            ctx.reply.bulk(&key);
            return Ok(());
        }
    }
    ctx.reply.null();
    Ok(())
}

/// Runs `f`, which may delete expired keys of `db`, for a command that
/// names no keys (SCAN, RANDOMKEY): a master with replicas sends each DEL on
/// its own; a replica only hides them, leaving the DELs to its master.
fn deleting_expired<R>(
    shared: &crate::server::Shared,
    db: &mut crate::db::DbMut<'_>,
    f: impl FnOnce(&mut crate::db::DbMut<'_>) -> R,
) -> R {
    let record = db.hide_expired && !db.effects().recording() && !shared.repl.is_replica();
    if record {
        db.effects().start();
    }
    let result = f(db);
    if record {
        shared.repl.append_expired(db.effects());
    }
    result
}

fn rename_generic(ctx: &mut Ctx<'_>, req: &Request, nx: bool) -> CmdResult {
    let (src, dst) = (&req[1], &req[2]);
    let mut locked = ctx.shards.lock_keys([src, dst]);
    let db = ctx.client.db;
    if !locked.db(db, src).contains(src, ctx.now) {
        return Err(CmdError::other("ERR no such key"));
    }
    if src == dst {
        if nx {
            ctx.reply.int(0);
        } else {
            ctx.reply.ok();
        }
        return Ok(());
    }
    // Looked up whatever the mode, as Redis does: an expired destination
    // is deleted (`expired`) before the key replaces it.
    if locked.db(db, dst).contains(dst, ctx.now) && nx {
        ctx.reply.int(0);
        return Ok(());
    }
    if let Some(entry) = locked.db(db, src).remove(src) {
        // Redis deletes the old destination and adds the key anew (a
        // `new` event).
        let mut target = locked.db(db, dst);
        target.delete(dst, store::keyspace::lazy::SERVER_DEL);
        target.insert(Bytes::copy_from_slice(dst), entry);
        locked
            .db(db, src)
            .notify(class::GENERIC, "rename_from", src);
        locked.db(db, dst).notify(class::GENERIC, "rename_to", dst);
    }
    if nx {
        ctx.reply.int(1);
    } else {
        ctx.reply.ok();
    }
    Ok(())
}

pub(super) fn rename(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    rename_generic(ctx, req, false)
}

pub(super) fn renamenx(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    rename_generic(ctx, req, true)
}

/// A database index argument.
fn db_index(ctx: &Ctx<'_>, arg: &[u8]) -> Result<usize, CmdError> {
    let n = parse_i64(arg)?;
    if n < 0 || n >= ctx.shards.databases() as i64 || n > i64::from(i32::MAX) {
        return Err(CmdError::other("ERR DB index is out of range"));
    }
    Ok(n as usize)
}

pub(super) fn copy(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let mut args = Args::new(req);
    let src = args.next()?;
    let dst = args.next()?;
    let (mut target_db, mut replace) = (ctx.client.db, false);
    while let Some(opt) = args.peek() {
        args.next()?;
        if eq(opt, "replace") {
            replace = true;
        } else if eq(opt, "db") && args.remaining() > 0 {
            target_db = db_index(ctx, args.next()?)?;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if src == dst && target_db == ctx.client.db {
        return Err(CmdError::other(
            "ERR source and destination objects are the same",
        ));
    }
    let mut locked = ctx.shards.lock_keys([src, dst]);
    let Some(entry) = locked.db(ctx.client.db, src).get(src, ctx.now).cloned() else {
        ctx.reply.int(0);
        return Ok(());
    };
    let mut target = locked.db(target_db, dst);
    if target.contains(dst, ctx.now) && !replace {
        ctx.reply.int(0);
        return Ok(());
    }
    // The old destination goes first: the copy is a `new` key, as in Redis.
    target.delete(dst, store::keyspace::lazy::SERVER_DEL);
    target.insert(Bytes::copy_from_slice(dst), entry);
    target.notify(class::GENERIC, "copy_to", dst);
    ctx.reply.int(1);
    Ok(())
}

pub(super) fn move_(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let target = db_index(ctx, &req[2])?;
    if target == ctx.client.db {
        return Err(CmdError::other(
            "ERR source and destination objects are the same",
        ));
    }
    let mut shard = ctx.shards.lock_key(key);
    let now = ctx.now;
    if !shard.db(ctx.client.db).contains(key, now) || shard.db(target).contains(key, now) {
        ctx.reply.int(0);
        return Ok(());
    }
    if let Some(entry) = shard.db(ctx.client.db).remove(key) {
        shard.db(target).insert(Bytes::copy_from_slice(key), entry);
        shard
            .db(ctx.client.db)
            .notify(class::GENERIC, "move_from", key);
        shard.db(target).notify(class::GENERIC, "move_to", key);
    }
    ctx.reply.int(1);
    Ok(())
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: `unit_ms` is 1000 for seconds,
/// `relative` adds the current time.
fn expire_generic(ctx: &mut Ctx<'_>, req: &Request, unit_ms: i64, relative: bool) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in req.iter().skip(3) {
        if eq(opt, "nx") {
            nx = true;
        } else if eq(opt, "xx") {
            xx = true;
        } else if eq(opt, "gt") {
            gt = true;
        } else if eq(opt, "lt") {
            lt = true;
        } else {
            let mut text = b"ERR Unsupported option ".to_vec();
            text.extend_from_slice(opt);
            return Err(CmdError::other(String::from_utf8_lossy(&text)));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::other(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CmdError::other(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let invalid = || {
        CmdError::other(format!(
            "ERR invalid expire time in '{}' command",
            ctx.cmd.name
        ))
    };
    let when = parse_i64(&req[2])?;
    let when = when.checked_mul(unit_ms).ok_or_else(invalid)?;
    let when = if relative {
        when.checked_add(ctx.now).ok_or_else(invalid)?
    } else {
        when
    };
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let Some(entry) = db.get(key, ctx.now) else {
        ctx.reply.int(0);
        return Ok(());
    };
    let current = entry.expire_at();
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| when <= c))
        || (lt && current.is_some_and(|c| when >= c));
    if refused {
        ctx.reply.int(0);
        return Ok(());
    }
    if when <= ctx.now {
        db.delete(key, store::keyspace::lazy::EXPIRE);
        db.notify(class::GENERIC, "del", key);
    } else {
        db.set_expire(key, Some(when));
        db.notify(class::GENERIC, "expire", key);
    }
    ctx.reply.int(1);
    Ok(())
}

pub(super) fn expire(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    expire_generic(ctx, req, 1000, true)
}

pub(super) fn pexpire(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    expire_generic(ctx, req, 1, true)
}

pub(super) fn expireat(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    expire_generic(ctx, req, 1000, false)
}

pub(super) fn pexpireat(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    expire_generic(ctx, req, 1, false)
}

/// The key's deadline: `Err(-2)` if absent, `Err(-1)` if it has none.
fn deadline(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<i64, i64> {
    let mut shard = ctx.shards.lock_key(key);
    crate::notify::read_miss(&mut shard.db(ctx.client.db), key, ctx.now);
    match shard.db(ctx.client.db).peek(key, ctx.now) {
        None => Err(-2),
        Some(e) => e.expire_at().ok_or(-1),
    }
}

pub(super) fn ttl(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let v = deadline(ctx, &req[1]).map_or_else(|e| e, |at| ((at - ctx.now).max(0) + 500) / 1000);
    ctx.reply.int(v);
    Ok(())
}

pub(super) fn pttl(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let v = deadline(ctx, &req[1]).map_or_else(|e| e, |at| (at - ctx.now).max(0));
    ctx.reply.int(v);
    Ok(())
}

pub(super) fn expiretime(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let v = deadline(ctx, &req[1]).map_or_else(|e| e, |at| at / 1000);
    ctx.reply.int(v);
    Ok(())
}

pub(super) fn pexpiretime(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let v = deadline(ctx, &req[1]).unwrap_or_else(|e| e);
    ctx.reply.int(v);
    Ok(())
}

pub(super) fn persist(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let had = db
        .get(key, ctx.now)
        .is_some_and(|e| e.expire_at().is_some());
    if had {
        db.set_expire(key, None);
        db.notify(class::GENERIC, "persist", key);
    }
    ctx.reply.int(i64::from(had));
    Ok(())
}

pub(super) fn object(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let sub = &req[1];
    if eq(sub, "help") {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Prints this help.",
        ];
        ctx.reply.array(lines.len());
        for line in lines {
            ctx.reply.simple(line);
        }
        return Ok(());
    }
    let known = ["encoding", "freq", "idletime", "refcount"];
    let Some(name) = known.iter().find(|k| eq(sub, k)) else {
        return Err(unknown_subcommand(&req[0], sub));
    };
    if req.len() != 3 {
        return Err(subcommand_arity("object", name));
    }
    let key = &req[2];
    let lfu_policy = ctx.shared.config_get("maxmemory-policy").contains("lfu");
    let lfu = eq(sub, "freq") && lfu_policy;
    let mut shard = ctx.shards.lock_key(key);
    let mut db = shard.db(ctx.client.db);
    let Some(entry) = db.peek(key, ctx.now) else {
        ctx.reply.null();
        return Ok(());
    };
    // As in Redis, a missing key is answered before the policy is checked.
    if eq(sub, "freq") && !lfu {
        return Err(CmdError::other(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ));
    }
    if eq(sub, "encoding") {
        ctx.reply.bulk(entry.value.encoding().as_bytes());
    } else if eq(sub, "refcount") {
        ctx.reply.int(refcount(ctx.shared, &entry.value));
    } else if eq(sub, "idletime") {
        if lfu_policy {
            return Err(CmdError::other(
                "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ));
        }
        let idle = db.idle_secs(key).unwrap_or(0);
        ctx.reply.int(idle as i64);
    } else {
        let freq = db.freq(key).unwrap_or(0);
        ctx.reply.int(i64::from(freq));
    }
    Ok(())
}

/// Redis's shared integers (`OBJ_SHARED_INTEGERS`): a string value of
/// 0 to 9999 is one of them, whose count Redis reports as `INT_MAX`.
const SHARED_INTEGERS: i64 = 10_000;

/// What OBJECT REFCOUNT (and DEBUG OBJECT) report for `value`. Ember
/// shares no values, but Redis keeps one object for each of the integers
/// 0 to 9999 and stores them in place of equal values, unless `maxmemory`
/// is set under a policy that keeps per-key state in the object (LRU and
/// LFU; S3-FIFO is counted with them here), where a shared object would
/// mix the keys' clocks: clients and Redis's suite read the difference.
/// Redis decides when the value is stored; Ember, when it is asked, so a
/// key written before the policy changed reads as written after.
pub(super) fn refcount(shared: &crate::server::Shared, value: &store::Value) -> i64 {
    let store::Value::Str(s) = value else {
        return 1;
    };
    let small = value.encoding() == "int"
        && std::str::from_utf8(s.bytes())
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|n| (0..SHARED_INTEGERS).contains(&n));
    if !small {
        return 1;
    }
    let limited = shared
        .eviction
        .limit
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0;
    let per_key = {
        let policy = shared.config_get("maxmemory-policy");
        policy.contains("lru") || policy.contains("lfu") || policy.contains("s3fifo")
    };
    if limited && per_key {
        1
    } else {
        i64::from(i32::MAX)
    }
}

/// Redis's error for an unknown subcommand of `command` (as typed).
pub(super) fn unknown_subcommand(command: &[u8], sub: &[u8]) -> CmdError {
    CmdError::other(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)]),
        String::from_utf8_lossy(command).to_ascii_uppercase()
    ))
}

/// Redis's arity error for a subcommand.
pub(super) fn subcommand_arity(command: &str, sub: &str) -> CmdError {
    CmdError::other(format!(
        "ERR wrong number of arguments for '{command}|{sub}' command"
    ))
}

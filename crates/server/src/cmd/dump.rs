//! Moving keys between servers: DUMP, RESTORE and MIGRATE.
//!
//! A DUMP payload is one value as an RDB file holds it, followed by the RDB
//! version and a CRC64 (see `crate::rdb::dump`), so payloads travel between
//! Ember and Redis 7.0 in both directions.

use bytes::Bytes;
use resp::Request;

use super::{CmdError, CmdResult, Ctx};
use crate::args::{eq, parse_i64};
use crate::db::Entry;
use crate::repl::prop::{self, Op};

pub(super) fn dump(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    let payload = shard.dbs[ctx.client.db]
        .get(key, ctx.now)
        .map(|e| crate::rdb::dump(&e.value));
    drop(shard);
    ctx.client.stats.hit(payload.is_some());
    match payload {
        Some(payload) => ctx.reply.bulk(&payload),
        None => ctx.reply.null(),
    }
    Ok(())
}

/// RESTORE's options after the payload.
#[derive(Debug, Default, PartialEq, Eq)]
struct RestoreOptions {
    replace: bool,
    absttl: bool,
    /// IDLETIME, in seconds.
    idle: Option<i64>,
    /// FREQ: accepted and checked, but Ember keeps no access frequencies.
    freq: Option<i64>,
}

/// Reads RESTORE's options as Redis does: IDLETIME and FREQ exclude each
/// other (the second one is a syntax error), and a bad value is reported
/// as soon as it is met.
fn restore_options(req: &Request) -> Result<RestoreOptions, CmdError> {
    let mut opts = RestoreOptions::default();
    let mut i = 4;
    while let Some(opt) = req.get(i) {
        let value = req.get(i + 1);
        if eq(opt, "replace") {
            opts.replace = true;
        } else if eq(opt, "absttl") {
            opts.absttl = true;
        } else if let (true, Some(v), None) = (eq(opt, "idletime"), value, opts.freq) {
            let idle = parse_i64(v)?;
            if idle < 0 {
                return Err(CmdError::other("ERR Invalid IDLETIME value, must be >= 0"));
            }
            opts.idle = Some(idle);
            i += 1;
        } else if let (true, Some(v), None) = (eq(opt, "freq"), value, opts.idle) {
            let freq = parse_i64(v)?;
            if !(0..=255).contains(&freq) {
                return Err(CmdError::other(
                    "ERR Invalid FREQ value, must be >= 0 and <= 255",
                ));
            }
            opts.freq = Some(freq);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    Ok(opts)
}

/// `RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]`, in
/// Redis's order of checks: options, an existing key, the TTL, then the
/// payload.
pub(super) fn restore(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let opts = restore_options(req)?;
    let key = &req[1];
    let db = ctx.client.db;
    let mut locked = ctx.shards.lock_keys([key]);
    if !opts.replace && locked.db(db, key).contains(key, ctx.now) {
        return Err(CmdError::other("BUSYKEY Target key name already exists."));
    }
    let ttl = parse_i64(&req[2])?;
    if ttl < 0 {
        return Err(CmdError::other("ERR Invalid TTL value, must be >= 0"));
    }
    let value = crate::rdb::restore(&req[3]).map_err(|e| CmdError::other(e.to_string()))?;
    // An old value goes even if it had expired, as Redis's dbDelete does.
    let deleted = opts.replace && locked.db(db, key).remove(key).is_some();
    // The master's stream runs with its clock stopped; its RESTOREs carry
    // absolute deadlines anyway.
    let wall = if ctx.now == i64::MIN {
        crate::server::now_ms()
    } else {
        ctx.now
    };
    let at = match (ttl, opts.absttl) {
        (0, _) => None,
        (ttl, true) => Some(ttl),
        (ttl, false) => Some(ttl.saturating_add(wall)),
    };
    // A deadline already past creates nothing, but on a replica, which
    // leaves expiry to its master.
    let replica = ctx.client.is_master || ctx.shared.repl.is_replica();
    if let Some(at) = at
        && at <= wall
        && !replica
    {
        if deleted {
            prop::rewrite(vec![Op::new(Some(db), &[&b"DEL"[..], key])]);
        }
        ctx.reply.ok();
        return Ok(());
    }
    let target = locked.db(db, key);
    target.insert(Bytes::copy_from_slice(key), Entry::with(value, at));
    let lfu = ctx.shared.config_get("maxmemory-policy").contains("lfu");
    if let (Some(idle), false) = (opts.idle, lfu) {
        target.set_idle(key, idle);
    }
    if let (Some(at), false) = (at, opts.absttl) {
        // Replicas get the deadline, not the time to live.
        let at = at.to_string();
        let mut args: Vec<&[u8]> = req.iter().collect();
        args[2] = at.as_bytes();
        args.push(b"ABSTTL");
        prop::rewrite(vec![Op::new(Some(db), &args)]);
    }
    crate::blocking::serve(&mut locked, db, key, ctx.now);
    ctx.reply.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(line: &str) -> Result<RestoreOptions, CmdError> {
        let args: Vec<&str> = line.split(' ').collect();
        restore_options(&Request::from_args(&args))
    }

    #[test]
    fn restore_options_follow_redis() {
        assert_eq!(opts("RESTORE k 0 p"), Ok(RestoreOptions::default()));
        let all = opts("RESTORE k 0 p replace ABSTTL idletime 5").expect("valid");
        assert!(all.replace && all.absttl);
        assert_eq!(all.idle, Some(5));
        assert_eq!(opts("RESTORE k 0 p freq 7").map(|o| o.freq), Ok(Some(7)));
        assert_eq!(
            opts("RESTORE k 0 p idletime 1 freq 1"),
            Err(CmdError::Syntax)
        );
        assert_eq!(
            opts("RESTORE k 0 p freq 1 idletime 1"),
            Err(CmdError::Syntax)
        );
        assert_eq!(opts("RESTORE k 0 p idletime"), Err(CmdError::Syntax));
        assert_eq!(opts("RESTORE k 0 p what"), Err(CmdError::Syntax));
        assert_eq!(opts("RESTORE k 0 p idletime x"), Err(CmdError::NotInteger));
        assert_eq!(
            opts("RESTORE k 0 p idletime -1"),
            Err(CmdError::other("ERR Invalid IDLETIME value, must be >= 0"))
        );
        assert_eq!(
            opts("RESTORE k 0 p freq 256"),
            Err(CmdError::other(
                "ERR Invalid FREQ value, must be >= 0 and <= 255"
            ))
        );
    }
}

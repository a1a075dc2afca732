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
use crate::notify::Notify;
use store::keyspace::{Op, class};

pub(super) fn dump(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let key = &req[1];
    let mut shard = ctx.shards.lock_key(key);
    crate::notify::read_miss(&mut shard.db(ctx.client.db), key, ctx.now);
    let payload = shard
        .db(ctx.client.db)
        .get(key, ctx.now)
        .map(|e| store::rdb::dump(&e.value));
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
    /// FREQ: the access frequency to set under an LFU policy.
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
    let mut value = store::rdb::restore_with(&req[3], ctx.shared.encodings.load_limits())
        .map_err(|e| CmdError::other(e.to_string()))?;
    if let store::value::Value::Set(set) = &mut value {
        set.fit_loaded(super::sets::max_intset(ctx.shared));
    }
    // An old value goes even if it had expired, as Redis's dbDelete does.
    let deleted = opts.replace
        && locked
            .db(db, key)
            .delete(key, store::keyspace::lazy::SERVER_DEL);
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
            ctx.shards
                .effects()
                .rewrite(vec![Op::new(Some(db), &[&b"DEL"[..], key])]);
            ctx.notify(class::GENERIC, "del", key);
        }
        ctx.reply.ok();
        return Ok(());
    }
    let mut target = locked.db(db, key);
    target.insert(Bytes::copy_from_slice(key), Entry::with(value, at));
    target.notify(class::GENERIC, "restore", key);
    let lfu = ctx.shared.config_get("maxmemory-policy").contains("lfu");
    if let (Some(idle), false) = (opts.idle, lfu) {
        target.set_idle(key, idle);
    }
    if let (Some(freq), true) = (opts.freq, lfu) {
        target.set_freq(key, freq.clamp(0, 255) as u8);
    }
    if let (Some(at), false) = (at, opts.absttl) {
        // Replicas get the deadline, not the time to live.
        let at = at.to_string();
        let mut args: Vec<&[u8]> = req.iter().collect();
        args[2] = at.as_bytes();
        args.push(b"ABSTTL");
        ctx.shards.effects().rewrite(vec![Op::new(Some(db), &args)]);
    }
    ctx.reply.ok();
    Ok(())
}

/// MIGRATE's options after the timeout.
#[derive(Debug, Default)]
struct MigrateOptions<'r> {
    copy: bool,
    replace: bool,
    /// AUTH's password, or AUTH2's user name and password.
    auth: Option<(Option<&'r [u8]>, &'r [u8])>,
    /// The keys to move: the key argument, or what follows KEYS.
    keys: Vec<&'r [u8]>,
}

fn migrate_options(req: &Request) -> Result<MigrateOptions<'_>, CmdError> {
    let mut opts = MigrateOptions {
        keys: vec![&req[3]],
        ..MigrateOptions::default()
    };
    let mut j = 6;
    while let Some(opt) = req.get(j) {
        let more = req.len() - 1 - j;
        if eq(opt, "copy") {
            opts.copy = true;
        } else if eq(opt, "replace") {
            opts.replace = true;
        } else if eq(opt, "auth") {
            let password = req.get(j + 1).ok_or(CmdError::Syntax)?;
            opts.auth = Some((None, password));
            j += 1;
        } else if eq(opt, "auth2") {
            if more < 2 {
                return Err(CmdError::Syntax);
            }
            opts.auth = Some((Some(&req[j + 1]), &req[j + 2]));
            j += 2;
        } else if eq(opt, "keys") {
            if !req[3].is_empty() {
                return Err(CmdError::other(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            opts.keys = req.iter().skip(j + 1).collect();
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(opts)
}

/// Redis's errors for a failed transfer.
const CONNECT_FAILED: &str = "IOERR error or timeout connecting to the client";
const WRITE_FAILED: &str = "IOERR error or timeout writing to target instance";
const READ_FAILED: &str = "IOERR error or timeout reading to target instance";

/// `MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw]
/// [AUTH2 user pw] [KEYS key...]`: sends the keys to another server as
/// RESTOREs and, without COPY, deletes those it accepted (reaching replicas
/// as one DEL).
///
/// Like Redis, it waits for the target in the command itself, with
/// blocking socket calls each bounded by the timeout: the thread running
/// it serves nothing else meanwhile (Redis's whole server waits). The
/// keys' shards are not locked while it waits, unless a transaction,
/// replication or a client blocked on a key of theirs (whom a write may
/// serve) makes the command hold them. A fresh connection is made each time (Redis
/// keeps one open for 10 s).
pub(super) fn migrate(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let opts = migrate_options(req)?;
    let timeout = parse_i64(&req[5])?;
    let target_db = parse_i64(&req[4])?;
    let timeout = if timeout <= 0 { 1000 } else { timeout };
    let db = ctx.client.db;
    let wall = if ctx.now == i64::MIN {
        crate::server::now_ms()
    } else {
        ctx.now
    };
    // What to send: each live key's payload and its time to live.
    let mut found: Vec<(&[u8], Vec<u8>, i64)> = Vec::new();
    {
        let mut locked = ctx.shards.lock_keys(opts.keys.iter().copied());
        for &key in &opts.keys {
            let mut d = locked.db(db, key);
            crate::notify::read_miss(&mut d, key, ctx.now);
            let entry = d.get(key, ctx.now);
            ctx.client.stats.hit(entry.is_some());
            let Some(entry) = entry else {
                continue;
            };
            let ttl = entry.expire_at().map_or(0, |at| (at - wall).max(1));
            found.push((key, store::rdb::dump(&entry.value), ttl));
        }
    }
    if found.is_empty() {
        ctx.reply.simple("NOKEY");
        return Ok(());
    }
    let mut out = Vec::new();
    if let Some((user, password)) = opts.auth {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        args.extend(user);
        args.push(password);
        store::keyspace::encode_into(&mut out, args.into_iter());
    }
    let target_db = target_db.to_string();
    store::keyspace::encode_into(&mut out, [&b"SELECT"[..], target_db.as_bytes()].into_iter());
    for (key, payload, ttl) in &found {
        let ttl = ttl.to_string();
        let mut args: Vec<&[u8]> = vec![b"RESTORE", key, ttl.as_bytes(), payload];
        if opts.replace {
            args.push(b"REPLACE");
        }
        store::keyspace::encode_into(&mut out, args.into_iter());
    }
    let timeout = std::time::Duration::from_millis(timeout as u64);
    let me = (ctx.client.info.laddr, ctx.shared.port);
    let mut conn = Target::connect(&req[1], &req[2], timeout, me).map_err(CmdError::other)?;
    if conn.send(&out).is_err() {
        return Err(CmdError::other(WRITE_FAILED));
    }
    // The replies to AUTH and SELECT, then one per RESTORE. As in Redis, a
    // key the target accepted is deleted even if another one failed.
    let mut failed: Option<Vec<u8>> = None;
    let mut early = Vec::new();
    for _ in 0..1 + usize::from(opts.auth.is_some()) {
        match conn.line() {
            Some(line) => early.push(line),
            None => return Err(CmdError::other(READ_FAILED)),
        }
    }
    // A refused AUTH or SELECT fails every key.
    let early_error = early.iter().any(|l| l.first() == Some(&b'-'));
    if let Some(line) = early.iter().find(|l| l.first() == Some(&b'-')) {
        failed = Some(line.clone());
    }
    let mut accepted: Vec<&[u8]> = Vec::new();
    let mut socket_error = false;
    for (key, _, _) in &found {
        let Some(line) = conn.line() else {
            socket_error = true;
            break;
        };
        if early_error || line.first() == Some(&b'-') {
            failed.get_or_insert(line);
        } else {
            accepted.push(key);
        }
    }
    if !opts.copy && !accepted.is_empty() {
        let mut locked = ctx.shards.lock_keys(accepted.iter().copied());
        for &key in &accepted {
            let mut d = locked.db(db, key);
            if d.remove(key).is_some() {
                d.notify(class::GENERIC, "del", key);
            }
        }
        drop(locked);
        let mut args: Vec<&[u8]> = vec![b"DEL"];
        args.extend(accepted.iter().copied());
        ctx.shards.effects().rewrite(vec![Op::new(Some(db), &args)]);
    }
    if let Some(line) = failed {
        let mut text = b"ERR Target instance replied with error: ".to_vec();
        text.extend_from_slice(&line[1..]);
        return Err(CmdError::other(String::from_utf8_lossy(&text)));
    }
    if socket_error {
        return Err(CmdError::other(READ_FAILED));
    }
    ctx.reply.ok();
    Ok(())
}

/// A blocking connection to MIGRATE's target.
struct Target {
    stream: std::io::BufReader<std::net::TcpStream>,
}

impl Target {
    /// Connects within `timeout`; reads and writes then time out after it
    /// too. The error is Redis's: an address that does not resolve or a
    /// connection that times out fails "connecting"; one refused fails
    /// "writing", because Redis only learns of the refusal when it writes.
    ///
    /// `me` is this server (a client's local address, and the port it
    /// listens on): a server migrating to itself would, in Redis, wait for
    /// its own answer until the timeout; in Ember another thread would
    /// answer, and the key would be deleted once restored over itself. It
    /// fails at once, with the error Redis gives after the wait.
    fn connect(
        host: &[u8],
        port: &[u8],
        timeout: std::time::Duration,
        me: (std::net::SocketAddr, u16),
    ) -> Result<Target, &'static str> {
        use std::net::ToSocketAddrs;
        let host = std::str::from_utf8(host).map_err(|_| CONNECT_FAILED)?;
        // Redis reads the port with atoi: its leading digits, else 0.
        let port = port
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .try_fold(0u16, |p, d| {
                p.checked_mul(10)?.checked_add(u16::from(d - b'0'))
            })
            .unwrap_or(0);
        let addr = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or(CONNECT_FAILED)?;
        let (laddr, listening) = me;
        let loopback = addr.ip().is_loopback() && laddr.ip().is_loopback();
        if addr == laddr || (loopback && addr.port() == listening) {
            return Err(READ_FAILED);
        }
        let stream = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                CONNECT_FAILED
            } else {
                WRITE_FAILED
            }
        })?;
        let set = stream
            .set_nodelay(true)
            .and_then(|()| stream.set_read_timeout(Some(timeout)))
            .and_then(|()| stream.set_write_timeout(Some(timeout)));
        set.map_err(|_| WRITE_FAILED)?;
        Ok(Target {
            stream: std::io::BufReader::new(stream),
        })
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.stream.get_mut().write_all(bytes)
    }

    /// One reply line without its CRLF; `None` on a timeout, an error or
    /// the end of the stream. Lines are cut at 1 KiB, as Redis reads them.
    fn line(&mut self) -> Option<Vec<u8>> {
        use std::io::{BufRead, Read};
        let mut line = Vec::new();
        let n = Read::take(&mut self.stream, 64 * 1024)
            .read_until(b'\n', &mut line)
            .ok()?;
        if n == 0 || line.last() != Some(&b'\n') {
            return None;
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        line.truncate(1023);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(line: &str) -> Result<RestoreOptions, CmdError> {
        let args: Vec<&str> = line.split(' ').collect();
        restore_options(&Request::from_args(&args))
    }

    #[test]
    fn migrate_options_follow_redis() {
        let args = |line: &str| -> Request {
            let mut args: Vec<&str> = line.split(' ').collect();
            // An empty key argument.
            if args[3] == "-" {
                args[3] = "";
            }
            Request::from_args(&args)
        };
        let req = args("MIGRATE h 1 - 0 10 copy AUTH2 u p REPLACE KEYS a b");
        let o = migrate_options(&req).expect("valid");
        assert!(o.copy && o.replace);
        assert_eq!(o.auth, Some((Some(&b"u"[..]), &b"p"[..])));
        assert_eq!(o.keys, [&b"a"[..], b"b"]);
        let req = args("MIGRATE h 1 k 0 10 AUTH pw");
        let o = migrate_options(&req).expect("valid");
        assert_eq!(
            (o.auth, o.keys),
            (Some((None, &b"pw"[..])), vec![&b"k"[..]])
        );
        for bad in ["AUTH", "AUTH2 u", "nope", "COPY x"] {
            let req = args(&format!("MIGRATE h 1 k 0 10 {bad}"));
            assert_eq!(migrate_options(&req).err(), Some(CmdError::Syntax), "{bad}");
        }
        let req = args("MIGRATE h 1 k 0 10 KEYS a");
        assert!(migrate_options(&req).is_err());
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

//! Connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO, CLIENT, RESET.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use resp::{Protocol, Request};

use super::keys::{subcommand_arity, unknown_subcommand};
use super::{CmdError, CmdResult, Ctx};
use crate::args::{Args, eq, parse_i64};
use crate::client::ClientInfo;

/// The version this server reports, the Redis release it matches.
pub(crate) const REDIS_VERSION: &str = "7.0.15";

pub(super) fn ping(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    match req.len() {
        1 => ctx.reply.simple("PONG"),
        2 => ctx.reply.bulk(&req[1]),
        _ => return Err(arity(ctx)),
    }
    Ok(())
}

fn arity(ctx: &Ctx<'_>) -> CmdError {
    CmdError::other(format!(
        "ERR wrong number of arguments for '{}' command",
        ctx.cmd.name
    ))
}

pub(super) fn echo(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    ctx.reply.bulk(&req[1]);
    Ok(())
}

pub(super) fn quit(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    ctx.reply.ok();
    ctx.next = Some(super::Next::Close);
    Ok(())
}

pub(super) fn select(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let n = parse_i64(&req[1])?;
    if n < 0 || n >= ctx.shards.databases() as i64 {
        return Err(CmdError::other("ERR DB index is out of range"));
    }
    ctx.client.db = n as usize;
    ctx.reply.ok();
    Ok(())
}

/// Checks a user and password against `requirepass` (the only user is
/// `default`).
fn check_password(ctx: &mut Ctx<'_>, user: &[u8], pass: &[u8]) -> CmdResult {
    let required = ctx.shared.config_get("requirepass");
    if user == b"default" && !required.is_empty() && pass == required.as_bytes() {
        ctx.client.authenticated = true;
        return Ok(());
    }
    Err(CmdError::other(
        "WRONGPASS invalid username-password pair or user is disabled.",
    ))
}

pub(super) fn auth(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    if req.len() > 3 {
        return Err(CmdError::Syntax);
    }
    if req.len() == 2 && ctx.shared.config_get("requirepass").is_empty() {
        return Err(CmdError::other(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ));
    }
    let (user, pass) = if req.len() == 3 {
        (&req[1], &req[2])
    } else {
        (&b"default"[..], &req[1])
    };
    check_password(ctx, user, pass)?;
    ctx.reply.ok();
    Ok(())
}

pub(super) fn hello(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let mut args = Args::new(req);
    let mut proto = None;
    if let Some(ver) = args.peek() {
        args.next()?;
        let v = resp::parse_int(ver).ok_or_else(|| {
            CmdError::other("ERR Protocol version is not an integer or out of range")
        })?;
        proto = Some(match v {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => return Err(CmdError::other("NOPROTO unsupported protocol version")),
        });
    }
    let mut name = None;
    while let Some(opt) = args.peek() {
        args.next()?;
        if eq(opt, "auth") && args.remaining() >= 2 {
            let user = args.next()?;
            let pass = args.next()?;
            check_password(ctx, user, pass)?;
        } else if eq(opt, "setname") && args.remaining() >= 1 {
            let n = args.next()?;
            valid_name(n)?;
            name = Some(Bytes::copy_from_slice(n));
        } else {
            let mut text = b"ERR Syntax error in HELLO option '".to_vec();
            text.extend_from_slice(opt);
            text.push(b'\'');
            return Err(CmdError::other(String::from_utf8_lossy(&text)));
        }
    }
    if !ctx.client.authenticated {
        return Err(CmdError::other(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(n) = name {
        ctx.client.name = n;
    }
    if let Some(p) = proto {
        ctx.client.proto = p;
        ctx.reply.proto = p;
    }
    let proto_num = if ctx.client.proto == Protocol::Resp3 {
        3
    } else {
        2
    };
    ctx.reply.map(7);
    ctx.reply.bulk(b"server");
    ctx.reply.bulk(b"redis");
    ctx.reply.bulk(b"version");
    ctx.reply.bulk(REDIS_VERSION.as_bytes());
    ctx.reply.bulk(b"proto");
    ctx.reply.int(proto_num);
    ctx.reply.bulk(b"id");
    ctx.reply.int(ctx.client.id() as i64);
    ctx.reply.bulk(b"mode");
    ctx.reply.bulk(b"standalone");
    ctx.reply.bulk(b"role");
    ctx.reply.bulk(b"master");
    ctx.reply.bulk(b"modules");
    ctx.reply.array(0);
    Ok(())
}

/// Client names: no spaces, newlines or other special characters.
fn valid_name(name: &[u8]) -> CmdResult {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(CmdError::other(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

/// `MONITOR`: from now on the client is sent every command the server runs
/// (`monitor.rs`). Ignored, with no reply, by a client that monitors
/// already, as Redis ignores it; refused inside EXEC, as Redis refuses it
/// to a client that expects a reply per command.
pub(super) fn monitor(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    if ctx.client.in_exec {
        return Err(CmdError::other(
            "ERR MONITOR isn't allowed for DENY BLOCKING client",
        ));
    }
    let info = &ctx.client.info;
    if info.kind.load(std::sync::atomic::Ordering::Relaxed) != crate::client::NORMAL
        || !ctx.shared.monitors.add(info)
    {
        return Ok(());
    }
    info.kind
        .store(crate::client::MONITOR, std::sync::atomic::Ordering::Relaxed);
    // Its lines come as pushes: the connection waits for them while idle.
    info.pubsub.expect_pushes();
    ctx.reply.ok();
    Ok(())
}

pub(super) fn reset(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    // A monitor becomes an ordinary client again, as in Redis.
    if ctx.shared.monitors.remove(ctx.client.id()) {
        ctx.client
            .info
            .kind
            .store(crate::client::NORMAL, std::sync::atomic::Ordering::Relaxed);
    }
    super::transactions::discard_transaction(&mut ctx.shards, ctx.client);
    ctx.client.db = 0;
    ctx.client.proto = Protocol::Resp2;
    ctx.reply.proto = Protocol::Resp2;
    ctx.client.name = Bytes::new();
    ctx.client.authenticated = ctx.shared.config_get("requirepass").is_empty();
    ctx.reply.simple("RESET");
    Ok(())
}

pub(super) fn client(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let sub = &req[1];
    let argc = req.len();
    let want = |n: usize, name: &str| {
        if argc == n {
            Ok(())
        } else {
            Err(subcommand_arity("client", name))
        }
    };
    if eq(sub, "id") {
        want(2, "id")?;
        ctx.reply.int(ctx.client.id() as i64);
    } else if eq(sub, "setname") {
        want(3, "setname")?;
        valid_name(&req[2])?;
        ctx.client.name = Bytes::copy_from_slice(&req[2]);
        ctx.reply.ok();
    } else if eq(sub, "getname") {
        want(2, "getname")?;
        if ctx.client.name.is_empty() {
            ctx.reply.null();
        } else {
            let name = ctx.client.name.clone();
            ctx.reply.bulk(&name);
        }
    } else if eq(sub, "list") {
        let mut ids: Option<Vec<u64>> = None;
        let mut kind: Option<u8> = None;
        let mut args = Args::new(req);
        args.next()?;
        while let Some(opt) = args.peek() {
            args.next()?;
            if eq(opt, "type") && args.remaining() > 0 {
                kind = Some(client_kind(args.next()?)?);
            } else if eq(opt, "id") && args.remaining() > 0 {
                let mut list = Vec::new();
                for id in args.rest() {
                    let n = resp::parse_int(id)
                        .filter(|&n| n > 0)
                        .ok_or_else(|| CmdError::other("ERR Invalid client ID"))?;
                    list.push(n as u64);
                }
                ids = Some(list);
            } else {
                return Err(CmdError::Syntax);
            }
        }
        let mut clients: Vec<Arc<ClientInfo>> = ctx
            .shared
            .clients
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        clients.sort_by_key(|c| c.id);
        let mut text = String::new();
        for c in clients {
            if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id))
                || kind.is_some_and(|k| k != crate::pubsub::client_type(&c))
            {
                continue;
            }
            text.push_str(&client_line(ctx, req, &c));
            text.push('\n');
        }
        ctx.reply.verbatim(text.as_bytes());
    } else if eq(sub, "info") {
        want(2, "info")?;
        let me = ctx.client.info.clone();
        let mut line = client_line(ctx, req, &me);
        line.push('\n');
        ctx.reply.verbatim(line.as_bytes());
    } else if eq(sub, "kill") {
        client_kill(ctx, req)?;
    } else if eq(sub, "unblock") {
        if !(3..=4).contains(&argc) {
            return Err(subcommand_arity("client", "unblock"));
        }
        let id = parse_i64(&req[2])?;
        let error = match req.get(3) {
            None => false,
            Some(m) if eq(m, "timeout") => false,
            Some(m) if eq(m, "error") => true,
            Some(_) => {
                return Err(CmdError::other(
                    "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
                ));
            }
        };
        let target = ctx
            .shared
            .clients
            .lock()
            .ok()
            .and_then(|c| c.get(&(id as u64)).cloned());
        let waiter = target.and_then(|t| t.blocked_on.lock().ok().and_then(|w| w.clone()));
        let done = waiter.is_some_and(|w| w.unblock(error));
        ctx.reply.int(i64::from(done));
    } else if eq(sub, "pause") {
        client_pause(ctx, req)?;
    } else if eq(sub, "unpause") {
        want(2, "unpause")?;
        ctx.shared.pause.unpause();
        ctx.reply.ok();
    } else if eq(sub, "no-evict") {
        want(3, "no-evict")?;
        let on = if eq(&req[2], "on") {
            true
        } else if eq(&req[2], "off") {
            false
        } else {
            return Err(CmdError::Syntax);
        };
        ctx.client
            .info
            .mem
            .no_evict
            .store(on, std::sync::atomic::Ordering::Relaxed);
        if !on {
            ctx.shared.client_memory.reconsider();
        }
        ctx.reply.ok();
    } else {
        return Err(unknown_subcommand(&req[0], sub));
    }
    Ok(())
}

/// `CLIENT PAUSE timeout [WRITE|ALL]`: the mode is checked before the
/// timeout, as in Redis.
fn client_pause(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    if !(3..=4).contains(&req.len()) {
        // Redis's `addReplySubcommandSyntaxError`, the subcommand as typed.
        return Err(CmdError::other(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
            String::from_utf8_lossy(&req[1][..req[1].len().min(128)]),
            String::from_utf8_lossy(&req[0]).to_ascii_uppercase()
        )));
    }
    let kind = match req.get(3) {
        None => crate::pause::Kind::All,
        Some(m) if eq(m, "write") => crate::pause::Kind::Write,
        Some(m) if eq(m, "all") => crate::pause::Kind::All,
        Some(_) => {
            return Err(CmdError::other(
                "ERR CLIENT PAUSE mode must be WRITE or ALL",
            ));
        }
    };
    let ms = resp::parse_int(&req[2])
        .ok_or_else(|| CmdError::other("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CmdError::other("ERR timeout is negative"));
    }
    let now = crate::server::now_ms();
    // Redis's end time: 0 stays 0, which has passed already.
    let end = if ms > 0 { ms.saturating_add(now) } else { 0 };
    ctx.shared.pause.pause(kind, end, now);
    ctx.reply.ok();
    Ok(())
}

/// The buffers of the client running the command, as CLIENT LIST shows
/// them: the request is still in its read buffer (Redis trims the query
/// buffer after the command), its arguments count as `argv-mem`, and the
/// output so far of its batch is pending.
struct Own {
    qbuf: usize,
    qbuf_free: usize,
    argv_mem: usize,
    obl: usize,
    oll: usize,
    omem: usize,
    rbs: usize,
}

/// One CLIENT LIST line, with Redis 7.0's fields.
fn client_line(ctx: &Ctx<'_>, req: &Request, c: &ClientInfo) -> String {
    let own = (c.id == ctx.client.id()).then(|| {
        let out = &*ctx.reply.out;
        Own {
            qbuf: wire_len(req) + ctx.client.qbuf.0,
            qbuf_free: ctx.client.qbuf.1,
            argv_mem: req.iter().map(<[u8]>::len).sum(),
            obl: out.len() - out.queued(),
            oll: out.pieces(),
            omem: out.len(),
            rbs: out.capacity(),
        }
    });
    describe(ctx.shared, Some(ctx.client), own, c)
}

/// How long `req` was as a multibulk request.
fn wire_len(req: &Request) -> usize {
    let digits = |n: usize| n.checked_ilog10().map_or(1, |d| d as usize + 1);
    let args: usize = req
        .iter()
        .map(|a| 1 + digits(a.len()) + 2 + a.len() + 2)
        .sum();
    1 + digits(req.len()) + 2 + args
}

/// A client as CLIENT LIST and the log describe it, from what it last
/// published (its connection's task may be anywhere).
pub(crate) fn describe_client(shared: &crate::server::Shared, c: &ClientInfo) -> String {
    describe(shared, None, None, c)
}

/// One CLIENT LIST line; `me` is the client running the command, `own` its
/// buffers when the line is its own.
fn describe(
    shared: &crate::server::Shared,
    me: Option<&crate::client::Client>,
    own: Option<Own>,
    c: &ClientInfo,
) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mine = me.filter(|m| m.id() == c.id);
    let (name, db, cmd, idle, proto, multi, multi_mem) = if let Some(client) = mine {
        let multi = client.multi.as_ref();
        (
            client.name.clone(),
            client.db,
            // The command that came from the connection: EXEC while it
            // runs the queue, as in Redis.
            client.last_command.to_string() + &client.last_sub,
            0,
            client.proto,
            multi.map_or(-1, |m| m.len() as i64),
            multi.map_or(0, |m| m.memory()),
        )
    } else {
        let m = c.meta();
        (
            m.name.clone(),
            m.db,
            m.last_command.clone(),
            m.last_active.elapsed().as_secs(),
            m.proto,
            m.multi,
            m.multi_mem,
        )
    };
    // Redis's letters, in its order: O a monitor, S a replica, M a master, P
    // subscribed, x in MULTI, b blocked, t tracking (R its redirect gone,
    // B in BCAST mode), d a watched key changed, e CLIENT NO-EVICT; N for
    // none.
    let mut flags = String::new();
    match c.kind.load(Relaxed) {
        crate::client::MONITOR => flags.push('O'),
        crate::client::REPLICA => flags.push('S'),
        crate::client::MASTER => flags.push('M'),
        _ => {}
    }
    if c.pubsub.active() {
        flags.push('P');
    }
    if multi >= 0 {
        flags.push('x');
    }
    if c.blocked_on.lock().is_ok_and(|b| b.is_some()) || c.postponed.load(Relaxed) {
        flags.push('b');
    }
    let tracking = shared.tracking.describe(c.id);
    if let Some((_, broken, bcast)) = tracking {
        flags.push('t');
        if broken {
            flags.push('R');
        }
        if bcast {
            flags.push('B');
        }
    }
    if c.watch.is_set() {
        flags.push('d');
    }
    if c.mem.no_evict.load(Relaxed) {
        flags.push('e');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let (sub, psub, ssub) = c.pubsub.counts();
    let mem = &c.mem;
    let own = own.unwrap_or_else(|| Own {
        qbuf: mem.qbuf.load(Relaxed),
        qbuf_free: mem.qbuf_free.load(Relaxed),
        argv_mem: mem.argv.load(Relaxed),
        obl: mem.obl.load(Relaxed),
        oll: mem.oll.load(Relaxed),
        omem: mem.omem.load(Relaxed),
        rbs: mem.rbs.load(Relaxed),
    });
    // Messages published to the client and not yet sent count too (those
    // drained into its output are in both figures).
    let omem = own.omem.max(c.pubsub.pending());
    let rbp = mem.rbp.load(Relaxed).max(own.obl);
    // The client's own memory (see `outbuf::Usage::total`).
    let tot_mem = match mine {
        Some(client) => {
            let queued = own.omem - own.obl;
            own.qbuf
                + own.qbuf_free
                + own.argv_mem
                + crate::client::state_memory(client)
                + (own.rbs.max(own.obl) + queued).max(c.pubsub.pending())
                + crate::outbuf::CLIENT_OVERHEAD
        }
        None => c.mem.total(c.pubsub.pending()),
    };
    let Own {
        qbuf,
        qbuf_free,
        argv_mem,
        obl,
        oll,
        rbs,
        ..
    } = own;
    let redir = tracking.map_or(-1, |(redirect, ..)| redirect as i64);
    let mut line = String::new();
    let _ = write!(
        line,
        "id={} addr={} laddr={} fd=8 name={} age={} idle={idle} flags={flags} db={db} sub={sub} psub={psub} ssub={ssub} multi={multi} qbuf={qbuf} qbuf-free={qbuf_free} argv-mem={argv_mem} multi-mem={multi_mem} rbs={rbs} rbp={rbp} obl={obl} oll={oll} omem={omem} tot-mem={tot_mem} events=r cmd={cmd} user=default redir={redir} resp={}",
        c.id,
        c.addr,
        c.laddr,
        String::from_utf8_lossy(&name),
        c.created.elapsed().as_secs(),
        if proto == Protocol::Resp3 { 3 } else { 2 },
    );
    line
}

fn client_kill(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let clients: Vec<Arc<ClientInfo>> = ctx
        .shared
        .clients
        .lock()
        .map(|c| c.values().cloned().collect())
        .unwrap_or_default();
    // The old form: CLIENT KILL addr:port.
    if req.len() == 3 {
        let addr = String::from_utf8_lossy(&req[2]).into_owned();
        let Some(target) = clients.iter().find(|c| c.addr.to_string() == addr) else {
            return Err(CmdError::other("ERR No such client"));
        };
        kill(ctx, target);
        ctx.reply.ok();
        return Ok(());
    }
    let mut args = Args::new(req);
    args.next()?;
    let (mut id, mut addr, mut laddr, mut skipme) = (None, None, None, true);
    let mut kind: Option<u8> = None;
    if !args.remaining().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    while let Some(opt) = args.peek() {
        args.next()?;
        let value = args.next()?;
        if eq(opt, "id") {
            let n = resp::parse_int(value)
                .filter(|&n| n > 0)
                .ok_or_else(|| CmdError::other("ERR client-id should be greater than 0"))?;
            id = Some(n as u64);
        } else if eq(opt, "addr") {
            addr = Some(String::from_utf8_lossy(value).into_owned());
        } else if eq(opt, "laddr") {
            laddr = Some(String::from_utf8_lossy(value).into_owned());
        } else if eq(opt, "skipme") {
            skipme = if eq(value, "yes") {
                true
            } else if eq(value, "no") {
                false
            } else {
                return Err(CmdError::Syntax);
            };
        } else if eq(opt, "type") {
            kind = Some(client_kind(value)?);
        } else if eq(opt, "user") {
            // Every client is a client of the default user, the only one
            // there is without ACLs.
            if value != b"default" {
                return Err(CmdError::other(format!(
                    "ERR No such user '{}'",
                    String::from_utf8_lossy(value)
                )));
            }
        } else if eq(opt, "maxage") {
            // Every client is a client of the default user.
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut killed = 0;
    for c in &clients {
        let matched = id.is_none_or(|id| c.id == id)
            && kind.is_none_or(|k| k == crate::pubsub::client_type(c))
            && addr.as_ref().is_none_or(|a| *a == c.addr.to_string())
            && laddr.as_ref().is_none_or(|a| *a == c.laddr.to_string());
        if matched && !(skipme && c.id == ctx.client.id()) {
            kill(ctx, c);
            killed += 1;
        }
    }
    ctx.reply.int(killed);
    Ok(())
}

/// The kind CLIENT LIST TYPE and CLIENT KILL TYPE name.
fn client_kind(name: &[u8]) -> Result<u8, CmdError> {
    if eq(name, "normal") {
        Ok(crate::client::NORMAL)
    } else if eq(name, "master") {
        Ok(crate::client::MASTER)
    } else if eq(name, "replica") || eq(name, "slave") {
        Ok(crate::client::REPLICA)
    } else if eq(name, "pubsub") {
        Ok(crate::pubsub::PUBSUB)
    } else {
        Err(CmdError::other(format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(name)
        )))
    }
}

fn kill(ctx: &mut Ctx<'_>, target: &ClientInfo) {
    if target.id == ctx.client.id() {
        // Killing oneself: the reply still goes out, then the connection
        // closes.
        ctx.next = Some(super::Next::Close);
    } else {
        target.kill.cancel();
    }
}

//! Scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT.
//!
//! A script is atomic across every shard without holding them all: it
//! holds its declared keys' shards, and takes the shard of any other key
//! it reaches when it reaches it, keeping every shard it took until it
//! ends (see [`holding`] and `Shards::begin_reach` for why waiting for
//! those cannot deadlock). Each `redis.call` goes through [`call`], the
//! path EXEC's queued commands take, so statistics, WATCH and
//! replication see each command. Feeding replicas, the script's effects
//! are recorded under those locks and reach the stream as one unit
//! (MULTI/EXEC when there are several), as Redis 7.0 replicates scripts
//! by their effects. Inside MULTI, EXEC already holds every shard (EVAL is
//! flagged `KEYSPACE`), and the reach token, and records.
//!
//! Locks are taken in one order: the reach token, then shards, then the
//! Lua engine's lock.

use bytes::{Bytes, BytesMut};
use resp::{Frame, Protocol, Request};

use super::{
    COMMANDS, CONTAINER, CmdError, CmdResult, Ctx, DENYOOM, KEYSPACE, WRITE, call,
    check_subcommand, lookup_index,
};
use crate::args::{eq, parse_i64};
use crate::reply::Reply;
use crate::script::{Flags, Host};

pub(super) fn eval(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    run(ctx, req, false, false)
}

pub(super) fn eval_ro(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    run(ctx, req, false, true)
}

pub(super) fn evalsha(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    run(ctx, req, true, false)
}

pub(super) fn evalsha_ro(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    run(ctx, req, true, true)
}

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// A script's keys or arguments: most scripts have a few, kept inline.
type Args = smallvec::SmallVec<[Bytes; 4]>;

/// The SHA1 an EVALSHA names, lowercase: borrowed from the request when it
/// already is (as clients send it).
fn sha_of(arg: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(arg) {
        Ok(text) if !text.bytes().any(|b| b.is_ascii_uppercase()) => text.into(),
        _ => String::from_utf8_lossy(arg).to_ascii_lowercase().into(),
    }
}

/// The script's keys and arguments, after Redis's checks of `numkeys`.
fn keys_and_args(req: &Request) -> Result<(Args, Args), CmdError> {
    let numkeys = parse_i64(&req[2])?;
    if numkeys > req.len() as i64 - 3 {
        return Err(CmdError::other(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(CmdError::other("ERR Number of keys can't be negative"));
    }
    let split = 3 + numkeys as usize;
    // Slices of the request, not copies: they live as long as the script.
    let take = |from: usize, to: usize| {
        (from..to)
            .filter_map(|i| req.arg_bytes(i))
            .collect::<Args>()
    };
    Ok((take(3, split), take(split, req.len())))
}

/// Whether the command at `index` runs a script (EVAL, FCALL and their
/// variants).
pub(super) fn is_script(index: usize) -> bool {
    matches!(
        COMMANDS[index].name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    )
}

/// The refusals Redis makes before running a script that declared flags
/// (a script without a shebang is checked command by command instead).
pub(super) fn refusal(ctx: &Ctx<'_>, flags: Flags, ro: bool) -> Option<&'static str> {
    if !flags.shebang {
        return None;
    }
    let master = ctx.client.is_master;
    let stale = !master && ctx.shared.repl.stale();
    if stale && !flags.allow_stale {
        return Some(super::MASTERDOWN);
    }
    if !flags.no_writes {
        if !master && ctx.shared.repl.read_only() {
            return Some("READONLY Can not run script with write flag on readonly replica");
        }
        if ro {
            return Some("ERR Can not execute a script with write flag using *_ro command.");
        }
        if !master && ctx.shared.repl.too_few_replicas() {
            return Some(super::NOREPLICAS);
        }
    }
    if ctx.client.oom && !master && !flags.allow_oom && !flags.no_writes {
        return Some(
            "OOM allow-oom flag is not set on the script, can not run it when used memory > \
             'maxmemory'",
        );
    }
    None
}

fn run(ctx: &mut Ctx<'_>, req: &Request, by_sha: bool, ro: bool) -> CmdResult {
    let (keys, argv) = keys_and_args(req)?;
    // Most servers have no wide script: then the SHA1 is not needed here.
    let wide = ctx.shared.scripts.any_wide() && {
        let sha = if by_sha {
            sha_of(&req[1])
        } else {
            crate::script::sha1hex(&req[1]).into()
        };
        ctx.shared.scripts.is_wide(&sha)
    };
    let frame = holding(ctx, &keys, wide, |ctx, scope| {
        run_held(ctx, req, &keys, &argv, by_sha, ro, scope)
    })?;
    write_frame(&mut ctx.reply, &frame);
    Ok(())
}

/// A script's reply as the command's result: an error is the command's
/// error, counted in errorstats unless a command the script called raised
/// it (and was counted then), as Redis counts it.
pub(super) fn script_reply((frame, counted): (Frame, bool)) -> Result<Frame, CmdError> {
    match frame {
        Frame::Error(text) => {
            let text = String::from_utf8_lossy(&text).into_owned();
            Err(if counted {
                CmdError::Counted(text)
            } else {
                CmdError::Other(text)
            })
        }
        frame => Ok(frame),
    }
}

/// Which shards a script holds while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Its declared keys' shards, and those of the other keys it reaches
    /// as it reaches them (see [`Runner::reach`]).
    Declared,
    /// Every shard: inside EXEC, or a script that ran a command on the
    /// whole keyspace before.
    All,
}

/// Runs `f` holding the shards of the declared `keys` (or every shard,
/// inside EXEC or when `wide`), recording its effects for replicas and
/// sending them to the stream as one unit when it is done.
///
/// Outside EXEC the script first becomes the keyspace's one reacher
/// ([`Shards::begin_reach`](crate::db::Shards::begin_reach)): one script
/// at a time, which may then wait for the shard of any key it reaches.
/// The shards are taken before the engine, and EXEC of a script takes the
/// token before its shards, so a script never waits for shards while it
/// holds an engine, nor for an engine while it holds shards someone else
/// waits for.
pub(super) fn holding(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    wide: bool,
    f: impl FnOnce(&mut Ctx<'_>, Scope) -> Result<Frame, CmdError>,
) -> Result<Frame, CmdError> {
    let outer = ctx.shards.held().is_some();
    let scope = if outer || wide {
        Scope::All
    } else {
        Scope::Declared
    };
    if !outer {
        ctx.shards.begin_reach();
        match scope {
            Scope::Declared => ctx.shards.hold_keys(keys.iter().map(|k| &k[..])),
            Scope::All => ctx.shards.hold_all(),
        }
        if ctx.shared.keyspace.feeding() && !ctx.client.is_master {
            ctx.shards.effects().start();
        }
    }
    // Keys noted ready are counted: serving them visits every database of
    // every held shard, which most scripts need not pay for.
    let ready = ctx.shared.keyspace.ready_count();
    let result = f(ctx, scope);
    let made_ready = ctx.shared.keyspace.ready_count() != ready;
    if !outer {
        if let Some(mut locked) = ctx.shards.release() {
            if made_ready {
                super::served_ready(ctx.client, &mut locked, super::serving_time(ctx.now));
            }
            if let Some(offset) = ctx.shared.repl.append_recorded(locked.effects()) {
                ctx.client.woff = offset;
                ctx.client.aof_off = ctx.shared.repl.aof.appended();
            }
        }
        ctx.shards.end_reach();
    }
    result
}

fn run_held(
    ctx: &mut Ctx<'_>,
    req: &Request,
    keys: &[Bytes],
    argv: &[Bytes],
    by_sha: bool,
    ro: bool,
    scope: Scope,
) -> Result<Frame, CmdError> {
    let mut engine = ctx.shared.scripts.lock().map_err(CmdError::other)?;
    let sha = if by_sha {
        sha_of(&req[1])
    } else {
        engine.load(&req[1]).map_err(CmdError::other)?.into()
    };
    let Some(script) = engine.script(&sha) else {
        return Err(CmdError::other(NOSCRIPT));
    };
    let flags = script.flags();
    if let Some(why) = refusal(ctx, flags, ro) {
        return Err(CmdError::other(why));
    }
    let read_only = ro || flags.no_writes;
    script_reply(with_runner(
        ctx,
        read_only,
        flags,
        scope,
        &sha,
        None,
        keys,
        |runner| engine.run_script(&sha, script, keys, argv, runner),
    ))
}

/// Runs a script (`function` names the function FCALL runs) through `f`
/// with the server as its host, and puts back what the script may change
/// of the connection (its database, its protocol).
#[allow(clippy::too_many_arguments)] // each is one fact about the run; a struct would only rename them
pub(super) fn with_runner(
    ctx: &mut Ctx<'_>,
    read_only: bool,
    flags: Flags,
    scope: Scope,
    wide_name: &str,
    function: Option<(&str, &Request)>,
    keys: &[Bytes],
    f: impl FnOnce(&mut dyn Host) -> (Frame, bool),
) -> (Frame, bool) {
    let (cmd, db, in_exec, proto) = (ctx.cmd, ctx.client.db, ctx.client.in_exec, ctx.reply.proto);
    // Blocking commands answer at once inside scripts, as inside EXEC.
    ctx.client.in_exec = true;
    // Client-side caching: the script's commands remember no keys of their
    // own; a read among them remembers the script's keys (below).
    let tracking = ctx.client.tracking.take();
    let watch = ctx.shared.scripts.watch.clone();
    match function {
        Some((name, req)) => {
            watch.begin(true, name, req.iter().map(Bytes::copy_from_slice).collect())
        }
        None => watch.begin_eval(wide_name),
    }
    let mut runner = Runner {
        ctx,
        read_only,
        allow_oom: flags.allow_oom,
        wrote: false,
        read: false,
        scope,
        whole: false,
        scratch: SCRATCH.take(),
    };
    // A script that runs long hands its worker's other connections to
    // another thread (see `script::watch`'s hook).
    let scripted = std::mem::replace(&mut runner.ctx.scripted, true);
    let frame = f(&mut runner);
    runner.ctx.scripted = scripted;
    keep_scratch(std::mem::take(&mut runner.scratch));
    let read = runner.read;
    // Next time it holds every shard from the start, rather than take
    // them one by one again.
    if runner.whole {
        runner.ctx.shared.scripts.mark_wide(wide_name);
    }
    watch.end();
    ctx.client.tracking = tracking;
    if read {
        super::tracking::remember_keys(ctx, keys);
    }
    // SELECT inside a script changes only the script's database.
    ctx.cmd = cmd;
    ctx.client.db = db;
    ctx.client.in_exec = in_exec;
    ctx.client.proto = proto;
    ctx.reply.proto = proto;
    frame
}

/// The error for a command another client sends while a script has run
/// past `busy-reply-threshold` (`lua-time-limit`), checked before the
/// command takes any lock: the script holds every shard.
pub(super) fn busy(shared: &crate::server::Shared) -> Option<&'static str> {
    let watch = &shared.scripts.watch;
    // One atomic load when no script runs.
    watch.running_for()?;
    let ms = shared
        .config_get("busy-reply-threshold")
        .parse::<u64>()
        .unwrap_or(5000);
    watch.busy(std::time::Duration::from_millis(ms))
}

thread_local! {
    /// The output scripts' commands write their replies into, kept
    /// between scripts run on this thread (see [`keep_scratch`]).
    static SCRATCH: std::cell::Cell<transport::Output> = std::cell::Cell::default();
}

/// Keeps a script's reply buffer for the next script run on this thread,
/// so that a script's first `redis.call` does not allocate one again;
/// a buffer grown past 16 KiB, or holding anything, is let go.
fn keep_scratch(mut scratch: transport::Output) {
    if scratch.is_empty() && scratch.capacity() <= 16 * 1024 {
        scratch.clear();
        SCRATCH.set(scratch);
    }
}

/// The server as a script's `redis.*` functions see it.
struct Runner<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    read_only: bool,
    allow_oom: bool,
    /// A write command ran: later ones are no longer refused for the
    /// server's state (a script cannot stop half way), as in Redis.
    wrote: bool,
    /// A read-only command ran (a tracking caller then has the script's
    /// keys remembered).
    read: bool,
    scope: Scope,
    /// It ran a command on the whole keyspace.
    whole: bool,
    /// Where each command's reply is written, to be read back.
    scratch: transport::Output,
}

/// Keyless commands that touch no shard: a script holding only its
/// declared keys' shards runs them as they are. Any other keyless command
/// may reach any key (KEYS, SCAN, FLUSHALL, RANDOMKEY, SORT's patterns
/// with a key...), and needs every shard.
const KEYLESS_OK: &[&str] = &["ping", "echo", "time", "select", "publish", "lastsave"];

impl Runner<'_, '_> {
    /// Makes sure the shards the command at `index` touches are held,
    /// waiting for those of keys the script did not declare: the script is
    /// the keyspace's reacher (see [`holding`]), so that cannot deadlock,
    /// and it holds every shard it took until it ends, so no one sees a
    /// key it changed, or changes a key it read, before it is done.
    fn reach(&mut self, index: usize, req: &Request) {
        if self.scope == Scope::All {
            return;
        }
        let cmd = &COMMANDS[index];
        // Most commands a script calls name one key, first: found without
        // the list (an allocation per call, and its code, on the path of
        // every `redis.call`).
        let mut keys = Vec::new();
        let one = match (&cmd.extra.keys, cmd.keys) {
            (super::Keys::Positions, (1, 1, 1)) => req.get(1),
            _ => {
                super::command_keys(cmd, req, &mut keys);
                None
            }
        };
        let whole = cmd.flags & KEYSPACE != 0
            || matches!(cmd.name, "sort" | "sort_ro")
            || (one.is_none()
                && keys.is_empty()
                && cmd.keys.0 <= 0
                && !KEYLESS_OK.contains(&cmd.name));
        let shards = &mut self.ctx.shards;
        // A script that declared no key held no shard until now, so
        // replicas may have started to be fed since it began: it records
        // from here on (what it ran before touched no shard, and PUBLISH
        // reached the stream itself).
        let held_none = shards.held_count() == 0;
        let mut took = false;
        if whole {
            self.whole = true;
            for shard in 0..crate::db::SHARDS {
                took |= !shards.holds_shard(shard);
                shards.hold_shard(shard);
            }
        } else {
            for key in one.into_iter().chain(keys.iter().copied()) {
                let shard = store::keyspace::shard_of(key);
                took |= !shards.holds_shard(shard);
                shards.hold_shard(shard);
            }
        }
        let ctx = &mut *self.ctx;
        if took
            && held_none
            && !ctx.client.is_master
            && ctx.shared.keyspace.feeding()
            && !ctx.shards.effects().recording()
        {
            ctx.shards.effects().start();
        }
    }

    /// Why a script may not run the command at `index` now, in Redis's
    /// order and words.
    fn refusal(&self, index: usize, req: &Request) -> Option<String> {
        let ctx = &*self.ctx;
        let cmd = &COMMANDS[index];
        if !cmd.arity_ok(req.len()) {
            return Some("Wrong number of args calling Redis command from script".into());
        }
        if cmd.flags & CONTAINER != 0 && check_subcommand(cmd, req).is_some() {
            return Some("Unknown Redis command called from script".into());
        }
        if not_in_scripts_at(index, req) {
            return Some("This Redis command is not allowed from script".into());
        }
        if cmd.flags & WRITE != 0 {
            if self.read_only {
                return Some("Write commands are not allowed from read-only scripts.".into());
            }
            if !self.wrote && !ctx.client.is_master {
                if ctx.shared.repl.read_only() {
                    return Some("-READONLY You can't write against a read only replica.".into());
                }
                if ctx.shared.repl.too_few_replicas() {
                    return Some(format!("-{}", super::NOREPLICAS));
                }
            }
        }
        if !self.allow_oom
            && !self.wrote
            && !ctx.client.is_master
            && ctx.client.oom
            && cmd.flags & DENYOOM != 0
        {
            return Some(format!("-{}", super::OOM));
        }
        None
    }
}

impl Host for Runner<'_, '_> {
    fn call(&mut self, req: &Request, resp3: bool) -> Result<Frame, String> {
        let Some(index) = lookup_index(&req[0]) else {
            return Err("Unknown Redis command called from script".into());
        };
        // A refusal counts as the command's rejected call, as in Redis.
        let refused = self.refusal(index, req);
        if refused.is_some()
            && let Some(stat) = super::stat_index(index, req)
        {
            self.ctx.shared.stats.commands[stat]
                .rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(text) = refused {
            // Counted now, as Redis counts it, whether or not the script
            // lets the error reach its caller.
            match text.strip_prefix('-') {
                Some(coded) => self.ctx.shared.stats.error(coded.as_bytes()),
                None => self
                    .ctx
                    .shared
                    .stats
                    .error(format!("ERR {text}").as_bytes()),
            }
            return Err(text);
        }
        self.reach(index, req);
        let ctx = &mut *self.ctx;
        let cmd = &COMMANDS[index];
        if cmd.flags & WRITE != 0 {
            self.wrote = true;
            ctx.shared.scripts.watch.wrote();
        }
        if super::flags_of(cmd, req) & super::flags::READONLY != 0 {
            self.read = true;
        }
        let proto = if resp3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        let (saved_proto, client_proto) = (ctx.reply.proto, ctx.client.proto);
        ctx.reply.proto = proto;
        ctx.client.proto = proto;
        // The command's reply goes to an output of its own (kept for the
        // script's next call), read back as a frame.
        std::mem::swap(&mut *ctx.reply.out, &mut self.scratch);
        call(ctx, index, req);
        std::mem::swap(&mut *ctx.reply.out, &mut self.scratch);
        ctx.reply.proto = saved_proto;
        ctx.client.proto = client_proto;
        let buf: &mut BytesMut = &mut self.scratch;
        let decoded = if buf.len() == self.scratch.len() {
            // All in the buffer (no large value shared by reference).
            let buf: &mut BytesMut = &mut self.scratch;
            let frame = match quick_frame(buf) {
                Some(frame) => Ok(Some(frame)),
                None => resp::decode(buf),
            };
            buf.clear();
            frame
        } else {
            let mut buf = BytesMut::new();
            for piece in std::mem::take(&mut self.scratch).into_pieces() {
                buf.extend_from_slice(&piece);
            }
            resp::decode(&mut buf)
        };
        match decoded {
            Ok(Some(frame)) => Ok(frame),
            _ => Err("-ERR the command gave no reply a script can read".into()),
        }
    }

    fn log(&mut self, level: u8, message: &str) {
        match level {
            0 => tracing::debug!(target: "script", "{message}"),
            1 | 2 => tracing::info!(target: "script", "{message}"),
            _ => tracing::warn!(target: "script", "{message}"),
        }
    }

    fn set_repl(&mut self, _flags: u8) {
        // Ember replicates every effect of a script: REPL_NONE and the
        // others are accepted and have no effect yet.
    }
}

/// [`not_in_scripts`] for the command at `index`, from a table made once
/// (the containers, whose answer depends on the subcommand, asked each
/// time).
/// The reply in `buf` when it is exactly one integer, bulk string, null
/// bulk or status line, the commonest replies a script reads, without the
/// general decoder (which costs more than the command). `None` for
/// anything else.
fn quick_frame(buf: &mut BytesMut) -> Option<Frame> {
    let (&kind, rest) = buf.split_first()?;
    let line = rest.iter().position(|&b| b == b'\r')?;
    if rest.get(line + 1) != Some(&b'\n') {
        return None;
    }
    let head = &rest[..line];
    let after = line + 3;
    match kind {
        b':' if after == buf.len() => quick_int(head).map(Frame::Integer),
        b'+' if after == buf.len() => Some(Frame::Simple(Bytes::copy_from_slice(head))),
        b'$' if head == b"-1" && after == buf.len() => Some(Frame::NullBulk),
        b'$' => {
            let len = usize::try_from(quick_int(head)?).ok()?;
            if buf.len() != after + len + 2 || &buf[after + len..] != b"\r\n" {
                return None;
            }
            let all = buf.split_to(after + len).freeze();
            Some(Frame::Bulk(all.slice(after..)))
        }
        _ => None,
    }
}

/// A decimal integer as the server writes one (an optional minus, then
/// digits), or `None`.
fn quick_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

fn not_in_scripts_at(index: usize, req: &Request) -> bool {
    static DENIED: std::sync::OnceLock<Vec<Option<bool>>> = std::sync::OnceLock::new();
    let denied = DENIED.get_or_init(|| {
        COMMANDS
            .iter()
            .map(|c| {
                let container = matches!(c.name, "client" | "config" | "function" | "script");
                (!container).then(|| not_in_scripts(c.name, None))
            })
            .collect()
    });
    match denied.get(index).copied().flatten() {
        Some(denied) => denied,
        None => not_in_scripts(COMMANDS[index].name, req.get(1)),
    }
}

/// Commands Redis 7.0 flags `noscript` (those Ember has), and of the
/// containers the subcommands it flags so.
fn not_in_scripts(name: &str, sub: Option<&[u8]>) -> bool {
    const NAMES: &[&str] = &[
        "auth",
        "bgrewriteaof",
        "bgsave",
        "blmove",
        "blpop",
        "brpop",
        "brpoplpush",
        "bzpopmax",
        "bzpopmin",
        "debug",
        "discard",
        "eval",
        "eval_ro",
        "evalsha",
        "evalsha_ro",
        "exec",
        "hello",
        "multi",
        "psync",
        "quit",
        "replconf",
        "replicaof",
        "reset",
        "role",
        "save",
        "shutdown",
        "slaveof",
        "sync",
        "unwatch",
        "wait",
        "watch",
        "subscribe",
        "psubscribe",
        "unsubscribe",
        "punsubscribe",
        "ssubscribe",
        "sunsubscribe",
        "monitor",
        "fcall",
        "fcall_ro",
    ];
    if NAMES.contains(&name) {
        return true;
    }
    // Every subcommand of these but HELP (and CONFIG's, FUNCTION's).
    matches!(name, "client" | "config" | "function" | "script")
        && !sub.is_some_and(|s| eq(s, "help"))
}

/// Writes a script's reply in the client's protocol: RESP3's types are
/// turned into RESP2's for a RESP2 client, as Redis's reply functions do.
pub(super) fn write_frame(reply: &mut Reply<'_>, frame: &Frame) {
    let resp2 = reply.proto == Protocol::Resp2;
    match frame {
        Frame::Simple(s) => resp::write_simple(reply.out, s),
        Frame::Error(e) | Frame::BulkError(e) => resp::write_error(reply.out, e),
        Frame::Integer(i) => reply.int(*i),
        Frame::Bulk(b) => reply.bulk(b),
        Frame::Array(items) | Frame::Push(items) => {
            reply.array(items.len());
            items.iter().for_each(|f| write_frame(reply, f));
        }
        Frame::Map(pairs) => {
            reply.map(pairs.len());
            for (k, v) in pairs {
                write_frame(reply, k);
                write_frame(reply, v);
            }
        }
        Frame::Set(items) => {
            reply.set(items.len());
            items.iter().for_each(|f| write_frame(reply, f));
        }
        Frame::Boolean(b) if resp2 => reply.int(i64::from(*b)),
        Frame::Boolean(b) => reply
            .out
            .extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Frame::Double(d) => reply.double(*d),
        Frame::BigNumber(n) if resp2 => reply.bulk(n),
        Frame::BigNumber(n) => {
            reply.out.extend_from_slice(b"(");
            reply.out.extend_from_slice(n);
            reply.out.extend_from_slice(b"\r\n");
        }
        Frame::Verbatim { text, .. } if resp2 => reply.bulk(text),
        Frame::Verbatim { format, text } => {
            resp::write_header(reply.out, b'=', text.len() + 4);
            reply.out.extend_from_slice(format);
            reply.out.extend_from_slice(b":");
            reply.out.extend_from_slice(text);
            reply.out.extend_from_slice(b"\r\n");
        }
        Frame::Attribute { frame, .. } => write_frame(reply, frame),
        _ => reply.null(),
    }
}

pub(super) fn script(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let sub = &req[1];
    if eq(sub, "help") {
        let lines = [
            "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
            "HELP",
            "    Prints this help.",
        ];
        ctx.reply.array(lines.len());
        for line in lines {
            ctx.reply.simple(line);
        }
        return Ok(());
    }
    if eq(sub, "flush") {
        if req.len() > 3 || (req.len() == 3 && !eq(&req[2], "sync") && !eq(&req[2], "async")) {
            return Err(CmdError::other(
                "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
            ));
        }
        ctx.shared.scripts.flush();
        ctx.reply.ok();
        return Ok(());
    }
    if eq(sub, "exists") {
        let engine = ctx.shared.scripts.lock().map_err(CmdError::other)?;
        let found: Vec<bool> = (2..req.len())
            .map(|i| engine.exists(&String::from_utf8_lossy(&req[i]).to_ascii_lowercase()))
            .collect();
        drop(engine);
        ctx.reply.array(found.len());
        for f in found {
            ctx.reply.int(i64::from(f));
        }
        return Ok(());
    }
    if eq(sub, "load") {
        let sha = ctx
            .shared
            .scripts
            .lock()
            .map_err(CmdError::other)?
            .load(&req[2])
            .map_err(CmdError::other)?;
        ctx.reply.bulk(sha.as_bytes());
        return Ok(());
    }
    if eq(sub, "kill") {
        // The running script is on another connection's thread: this
        // only asks it to stop, through the watch its Lua hook reads.
        ctx.shared
            .scripts
            .watch
            .kill(false)
            .map_err(CmdError::other)?;
        ctx.reply.ok();
        return Ok(());
    }
    if eq(sub, "debug") {
        return Err(CmdError::other(
            "ERR SCRIPT DEBUG (the Lua debugger) is not supported by Ember",
        ));
    }
    Err(super::keys::unknown_subcommand(&req[0], sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever `quick_frame` reads, the general decoder reads alike; what
    /// it declines, it leaves to the decoder.
    #[test]
    fn quick_frames_agree_with_the_decoder() {
        let cases: &[&[u8]] = &[
            b":0\r\n",
            b":-1\r\n",
            b":9223372036854775807\r\n",
            b":-9223372036854775808\r\n",
            b":9223372036854775808\r\n",
            b"+OK\r\n",
            b"$-1\r\n",
            b"$0\r\n\r\n",
            b"$5\r\nhello\r\n",
            b"$5\r\nhel\r\n\r\n",
            b"$4\r\nhello\r\n",
            b":1\r\n:2\r\n",
            b"*1\r\n:1\r\n",
            b"-ERR no\r\n",
            b":1\r",
            b"",
        ];
        for &case in cases {
            let quick = quick_frame(&mut BytesMut::from(case));
            let general = resp::decode(&mut BytesMut::from(case)).ok().flatten();
            if let Some(frame) = quick {
                assert_eq!(Some(frame), general, "{:?}", String::from_utf8_lossy(case));
            }
        }
        assert_eq!(
            quick_frame(&mut BytesMut::from(&b":-42\r\n"[..])),
            Some(Frame::Integer(-42))
        );
        assert_eq!(
            quick_frame(&mut BytesMut::from(&b"$5\r\nhello\r\n"[..])),
            Some(Frame::Bulk(Bytes::from_static(b"hello")))
        );
        assert_eq!(quick_frame(&mut BytesMut::from(&b":1\r\n:2\r\n"[..])), None);
        assert_eq!(
            quick_frame(&mut BytesMut::from(&b":9223372036854775808\r\n"[..])),
            None
        );
    }
}

//! The command table and dispatch.
//!
//! Each command family has its own file; a handler reads its arguments with
//! [`Args`](crate::args::Args), works on the keyspace, and writes its reply
//! into the connection's output buffer. Handlers never touch a socket, so
//! each is a plain function of its input.

mod connection;
mod keys;
mod lists;
mod server;
mod strings;

use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::Ordering::Relaxed;

use resp::Request;

use crate::client::Client;
use crate::reply::Reply;
use crate::server::Shared;

/// A command's failure, written back as an error reply. The connection
/// stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CmdError {
    /// `ERR syntax error`.
    #[error("ERR syntax error")]
    Syntax,
    /// `ERR value is not an integer or out of range`.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// `ERR value is not a valid float`.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// The key holds another type.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// An increment left `i64`.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// Any other error, its full text (code first).
    #[error("{0}")]
    Other(String),
}

impl CmdError {
    pub(crate) fn other(text: impl Into<String>) -> Self {
        CmdError::Other(text.into())
    }
}

/// What a handler returns.
pub(crate) type CmdResult = Result<(), CmdError>;

/// Everything a handler may use.
pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) client: &'a mut Client,
    pub(crate) reply: Reply<'a>,
    /// The time the command started, in Unix milliseconds: one command sees
    /// one instant, as in Redis.
    pub(crate) now: i64,
    pub(crate) cmd: &'static Command,
}

/// A handler.
type Handler = fn(&mut Ctx<'_>, &Request) -> CmdResult;

/// Command flags, Redis's names.
pub(crate) mod flags {
    /// Changes the keyspace.
    pub(crate) const WRITE: u32 = 1;
    /// Only reads.
    pub(crate) const READONLY: u32 = 1 << 1;
    /// Allowed before authentication.
    pub(crate) const NO_AUTH: u32 = 1 << 2;
    /// Fast (O(1) or O(log N)).
    pub(crate) const FAST: u32 = 1 << 3;
    /// Administrative.
    pub(crate) const ADMIN: u32 = 1 << 4;
    /// Does not touch keys but may load the server (KEYS, FLUSHALL...).
    pub(crate) const SLOW: u32 = 1 << 5;
}

/// One command's description.
#[derive(Debug)]
pub(crate) struct Command {
    /// Lowercase name.
    pub(crate) name: &'static str,
    /// Redis's arity: `n` exactly n arguments (name included), `-n` at
    /// least n.
    pub(crate) arity: i32,
    pub(crate) flags: u32,
    /// Key positions: first, last (negative counts from the end), step.
    pub(crate) keys: (i32, i32, i32),
    handler: Handler,
}

impl Command {
    /// Whether `argc` arguments (name included) fit the arity.
    fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    pub(crate) fn flag_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        for (bit, name) in [
            (WRITE, "write"),
            (READONLY, "readonly"),
            (ADMIN, "admin"),
            (NO_AUTH, "no_auth"),
            (FAST, "fast"),
        ] {
            if self.flags & bit != 0 {
                names.push(name);
            }
        }
        names
    }
}

macro_rules! commands {
    ($($name:literal, $arity:expr, $flags:expr, $keys:expr, $handler:path;)*) => {
        &[$(Command { name: $name, arity: $arity, flags: $flags, keys: $keys, handler: $handler },)*]
    };
}

use flags::*;

const NOKEY: (i32, i32, i32) = (0, 0, 0);
const KEY1: (i32, i32, i32) = (1, 1, 1);

/// Every command the server knows.
pub(crate) static COMMANDS: &[Command] = commands! {
    // connection
    "ping", -1, FAST, NOKEY, connection::ping;
    "echo", 2, FAST, NOKEY, connection::echo;
    "quit", -1, NO_AUTH | FAST, NOKEY, connection::quit;
    "select", 2, FAST, NOKEY, connection::select;
    "auth", -2, NO_AUTH | FAST, NOKEY, connection::auth;
    "hello", -1, NO_AUTH | FAST, NOKEY, connection::hello;
    "client", -2, SLOW, NOKEY, connection::client;
    "reset", 1, NO_AUTH | FAST, NOKEY, connection::reset;
    // server
    "dbsize", 1, READONLY | FAST, NOKEY, server::dbsize;
    "flushdb", -1, WRITE, NOKEY, server::flushdb;
    "flushall", -1, WRITE, NOKEY, server::flushall;
    "swapdb", 3, WRITE | FAST, NOKEY, server::swapdb;
    "time", 1, FAST, NOKEY, server::time;
    "info", -1, SLOW, NOKEY, server::info;
    "config", -2, ADMIN, NOKEY, server::config;
    "command", -1, SLOW, NOKEY, server::command;
    "shutdown", -1, ADMIN, NOKEY, server::shutdown;
    "debug", -2, ADMIN, NOKEY, server::debug;
    "function", -2, SLOW, NOKEY, server::function;
    // keys
    "del", -2, WRITE, (1, -1, 1), keys::del;
    "unlink", -2, WRITE | FAST, (1, -1, 1), keys::del;
    "exists", -2, READONLY | FAST, (1, -1, 1), keys::exists;
    "touch", -2, READONLY | FAST, (1, -1, 1), keys::exists;
    "type", 2, READONLY | FAST, KEY1, keys::type_;
    "keys", 2, READONLY | SLOW, NOKEY, keys::keys;
    "scan", -2, READONLY, NOKEY, keys::scan;
    "randomkey", 1, READONLY, NOKEY, keys::randomkey;
    "rename", 3, WRITE, (1, 2, 1), keys::rename;
    "renamenx", 3, WRITE | FAST, (1, 2, 1), keys::renamenx;
    "copy", -3, WRITE, (1, 2, 1), keys::copy;
    "move", 3, WRITE | FAST, KEY1, keys::move_;
    "expire", -3, WRITE | FAST, KEY1, keys::expire;
    "pexpire", -3, WRITE | FAST, KEY1, keys::pexpire;
    "expireat", -3, WRITE | FAST, KEY1, keys::expireat;
    "pexpireat", -3, WRITE | FAST, KEY1, keys::pexpireat;
    "ttl", 2, READONLY | FAST, KEY1, keys::ttl;
    "pttl", 2, READONLY | FAST, KEY1, keys::pttl;
    "expiretime", 2, READONLY | FAST, KEY1, keys::expiretime;
    "pexpiretime", 2, READONLY | FAST, KEY1, keys::pexpiretime;
    "persist", 2, WRITE | FAST, KEY1, keys::persist;
    "object", -2, READONLY | SLOW, (2, 2, 1), keys::object;
    // strings
    "get", 2, READONLY | FAST, KEY1, strings::get;
    "set", -3, WRITE, KEY1, strings::set;
    "setnx", 3, WRITE | FAST, KEY1, strings::setnx;
    "setex", 4, WRITE, KEY1, strings::setex;
    "psetex", 4, WRITE, KEY1, strings::psetex;
    "getset", 3, WRITE | FAST, KEY1, strings::getset;
    "getdel", 2, WRITE | FAST, KEY1, strings::getdel;
    "getex", -2, WRITE | FAST, KEY1, strings::getex;
    "mget", -2, READONLY | FAST, (1, -1, 1), strings::mget;
    "mset", -3, WRITE, (1, -1, 2), strings::mset;
    "msetnx", -3, WRITE, (1, -1, 2), strings::msetnx;
    "append", 3, WRITE | FAST, KEY1, strings::append;
    "strlen", 2, READONLY | FAST, KEY1, strings::strlen;
    "incr", 2, WRITE | FAST, KEY1, strings::incr;
    "decr", 2, WRITE | FAST, KEY1, strings::decr;
    "incrby", 3, WRITE | FAST, KEY1, strings::incrby;
    "decrby", 3, WRITE | FAST, KEY1, strings::decrby;
    "incrbyfloat", 3, WRITE | FAST, KEY1, strings::incrbyfloat;
    "getrange", 4, READONLY, KEY1, strings::getrange;
    "substr", 4, READONLY, KEY1, strings::getrange;
    "setrange", 4, WRITE, KEY1, strings::setrange;
    // lists
    "lpush", -3, WRITE | FAST, KEY1, lists::lpush;
    "rpush", -3, WRITE | FAST, KEY1, lists::rpush;
    "lpushx", -3, WRITE | FAST, KEY1, lists::lpushx;
    "rpushx", -3, WRITE | FAST, KEY1, lists::rpushx;
    "lpop", -2, WRITE | FAST, KEY1, lists::lpop;
    "rpop", -2, WRITE | FAST, KEY1, lists::rpop;
    "llen", 2, READONLY | FAST, KEY1, lists::llen;
    "lrange", 4, READONLY, KEY1, lists::lrange;
    "lindex", 3, READONLY, KEY1, lists::lindex;
    "lset", 4, WRITE, KEY1, lists::lset;
    "linsert", 5, WRITE, KEY1, lists::linsert;
    "lrem", 4, WRITE, KEY1, lists::lrem;
    "ltrim", 4, WRITE, KEY1, lists::ltrim;
    "lpos", -3, READONLY, KEY1, lists::lpos;
    "lmove", 5, WRITE, (1, 2, 1), lists::lmove;
    "rpoplpush", 3, WRITE, (1, 2, 1), lists::rpoplpush;
    "lmpop", -4, WRITE, NOKEY, lists::lmpop;
    "blpop", -3, WRITE, (1, -2, 1), lists::blpop;
    "brpop", -3, WRITE, (1, -2, 1), lists::brpop;
    "blmove", 6, WRITE, (1, 2, 1), lists::blmove;
    "brpoplpush", 4, WRITE, (1, 2, 1), lists::brpoplpush;
    "blmpop", -5, WRITE, NOKEY, lists::blmpop;
};

/// Commands whose first argument is a subcommand, reported as
/// `client|list` and the like.
const CONTAINERS: &[&str] = &["client", "config", "object", "command", "function", "debug"];

static BY_NAME: LazyLock<HashMap<&'static [u8], usize>> = LazyLock::new(|| {
    COMMANDS
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_bytes(), i))
        .collect()
});

/// The command named `name`, in any case.
pub(crate) fn lookup(name: &[u8]) -> Option<&'static Command> {
    lookup_index(name).map(|i| &COMMANDS[i])
}

/// The position in [`COMMANDS`] of the command named `name`.
fn lookup_index(name: &[u8]) -> Option<usize> {
    let mut lower = [0u8; 32];
    let lower = lower.get_mut(..name.len())?;
    for (l, b) in lower.iter_mut().zip(name) {
        *l = b.to_ascii_lowercase();
    }
    BY_NAME.get(&*lower).copied()
}

/// What the connection should do after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// Read the next command.
    Continue,
    /// Send what is buffered, then close.
    Close,
    /// The command blocked: wait for `Client::blocked`.
    Block,
}

/// Runs one request and appends its reply to `out`.
pub(crate) fn execute(
    shared: &Shared,
    client: &mut Client,
    out: &mut transport::Output,
    req: &Request,
) -> After {
    let Some(name) = req.get(0) else {
        return After::Continue;
    };
    let mut reply = Reply {
        out,
        proto: client.proto,
    };
    let Some(index) = lookup_index(name) else {
        shared.stats.error(b"ERR");
        reply.error(unknown_command(req));
        return After::Continue;
    };
    let cmd = &COMMANDS[index];
    let rejected = if !client.authenticated && cmd.flags & NO_AUTH == 0 {
        Some("NOAUTH Authentication required.".to_string())
    } else if !cmd.arity_ok(req.len()) {
        Some(format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.name
        ))
    } else {
        None
    };
    if let Some(text) = rejected {
        shared.stats.error(text.as_bytes());
        shared.stats.commands[index].rejected.fetch_add(1, Relaxed);
        reply.error(text);
        return After::Continue;
    }
    client.last_command = cmd.name;
    client.last_sub.clear();
    if CONTAINERS.contains(&cmd.name) && req.len() > 1 {
        client.last_sub.push('|');
        client
            .last_sub
            .push_str(&String::from_utf8_lossy(&req[1]).to_ascii_lowercase());
    }
    let now = client.clock.now_ms();
    let mut ctx = Ctx {
        shared,
        client,
        reply,
        now,
        cmd,
    };
    let result = (cmd.handler)(&mut ctx, req);
    let usec = ctx.client.clock.tick().as_micros() as u64;
    ctx.client.stats.call(&shared.stats, index, usec);
    if let Err(e) = result {
        let text = e.to_string();
        shared.stats.error(text.as_bytes());
        shared.stats.commands[index].failed.fetch_add(1, Relaxed);
        ctx.reply.error(text);
    }
    if ctx.client.closing {
        After::Close
    } else if ctx.client.blocked.is_some() {
        After::Block
    } else {
        After::Continue
    }
}

/// Redis's text for an unknown command: the name and the start of its
/// arguments, each quoted, within 128 bytes.
fn unknown_command(req: &Request) -> Vec<u8> {
    let mut args = Vec::new();
    for arg in req.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push(b'\'');
        args.extend_from_slice(&arg[..arg.len().min(room)]);
        args.extend_from_slice(b"' ");
    }
    let name = &req[0][..req[0].len().min(128)];
    [
        &b"ERR unknown command '"[..],
        name,
        b"', with args beginning with: ",
        &args,
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case_and_long_names() {
        assert_eq!(lookup(b"GeT").map(|c| c.name), Some("get"));
        assert!(lookup(b"nope").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
    }

    #[test]
    fn table_is_consistent() {
        let mut names: Vec<_> = COMMANDS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len(), "a command is listed twice");
        for c in COMMANDS {
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(c.arity != 0, "{}", c.name);
        }
    }
}

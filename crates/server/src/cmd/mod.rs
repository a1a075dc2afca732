//! The command table and dispatch.
//!
//! Each command family has its own file; a handler reads its arguments with
//! [`Args`](crate::args::Args), works on the keyspace, and writes its reply
//! into the connection's output buffer. Handlers never touch a socket, so
//! each is a plain function of its input.

mod bitmaps;
mod client_reply;
mod connection;
mod digest;
mod dump;
mod functions;
mod hashes;
mod keys;
mod lists;
pub(crate) mod memory;
mod persistence;
mod pubsub;
mod replication;
mod scripting;
mod server;
pub(crate) mod sets;
mod sort;
mod strings;
mod tracking;
mod transactions;
pub(crate) mod zsets;

use std::sync::LazyLock;
use std::sync::atomic::Ordering::Relaxed;

use resp::Request;

use crate::client::{Blocked, Client, Psync, WaitAcks};
use crate::db::Shards;
use crate::reply::Reply;
use crate::server::Shared;
use store::keyspace::{Op, Write};

pub(crate) use client_reply::Replies;
pub(crate) use connection::describe_client;
pub(crate) use hashes::Encodings;
pub(crate) use transactions::{Multi, unwatch_all};

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
    /// An error already counted in errorstats: a script's, raised by a
    /// command it called (Redis counts it once, when the command failed).
    #[error("{0}")]
    Counted(String),
}

impl CmdError {
    pub(crate) fn other(text: impl Into<String>) -> Self {
        CmdError::Other(text.into())
    }
}

/// The most picks HRANDFIELD, SRANDMEMBER or ZRANDMEMBER with a negative
/// count (picks with repeats) may ask for. Redis streams any number until
/// the client's output limit closes it or memory runs out; Ember builds a
/// reply before sending it, and 2^26 picks of even one-byte members are
/// half a gigabyte of it.
pub(crate) const MAX_RANDOM_PICKS: u64 = 1 << 26;

/// Refuses a negative count past [`MAX_RANDOM_PICKS`].
pub(crate) fn check_random_picks(count: i64) -> Result<(), CmdError> {
    if count < 0 && count.unsigned_abs() > MAX_RANDOM_PICKS {
        return Err(CmdError::other(format!(
            "ERR value is out of range: at most {MAX_RANDOM_PICKS} random picks at once"
        )));
    }
    Ok(())
}

/// The value at `key` if it is the type `pick` takes from a [`Value`]:
/// `Ok(None)` if the key is absent, WRONGTYPE if it holds another type.
/// Each type's commands look their key up through this.
pub(crate) fn typed<'d, T>(
    db: &'d mut crate::db::DbMut<'_>,
    key: &[u8],
    now: i64,
    pick: impl FnOnce(&'d mut store::Value) -> Option<&'d mut T>,
) -> Result<Option<&'d mut T>, CmdError> {
    match db.get(key, now) {
        None => Ok(None),
        Some(entry) => pick(&mut entry.value).map(Some).ok_or(CmdError::WrongType),
    }
}

/// [`typed`] for a command that reads the key, as Redis's
/// `lookupKeyRead` does: a keyspace hit or miss for INFO (a key of another
/// type is a hit).
pub(crate) fn read_typed<'d, T>(
    db: &'d mut crate::db::DbMut<'_>,
    key: &[u8],
    now: i64,
    stats: &mut crate::server::LocalStats,
    pick: impl FnOnce(&'d mut store::Value) -> Option<&'d mut T>,
) -> Result<Option<&'d mut T>, CmdError> {
    crate::notify::read_miss(db, key, now);
    let found = typed(db, key, now, pick);
    stats.hit(!matches!(found, Ok(None)));
    found
}

/// What a handler returns.
pub(crate) type CmdResult = Result<(), CmdError>;

/// What a handler asks to happen once it has answered, when it is not just
/// to read the next command: it sets its context's `next`, and `execute`
/// returns it to the connection as an [`After`].
#[derive(Debug)]
pub(crate) enum Next {
    /// Close after the reply (QUIT, CLIENT KILL of oneself, SHUTDOWN, a
    /// reply too big to send).
    Close,
    /// Wait on keys (the blocking commands on empty keys).
    Block(Blocked),
    /// Wait for replicas (WAIT).
    Wait(WaitAcks),
    /// Become a replica's link (PSYNC, SYNC).
    Replica(Psync),
}

/// Everything a handler may use.
pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) client: &'a mut Client,
    pub(crate) reply: Reply<'a>,
    /// The time the command started, in Unix milliseconds: one command sees
    /// one instant, as in Redis (a transaction's commands share EXEC's).
    pub(crate) now: i64,
    pub(crate) cmd: &'static Command,
    /// The only way to the keyspace: it locks shards, or, inside EXEC,
    /// lends the transaction's locks.
    pub(crate) shards: Shards<'a>,
    /// What the handler asks to happen after its reply.
    pub(crate) next: Option<Next>,
    /// The command runs from a script (`redis.call`).
    pub(crate) scripted: bool,
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
    /// Refused inside MULTI (Redis's `no-multi`).
    pub(crate) const NO_MULTI: u32 = 1 << 6;
    /// Runs at once inside MULTI instead of being queued: EXEC, DISCARD,
    /// MULTI, WATCH, QUIT, RESET.
    pub(crate) const NOT_QUEUED: u32 = 1 << 7;
    /// Works on whole databases (FLUSHDB, KEYS, SWAPDB, INFO's key
    /// counts...): a transaction that runs it locks every shard. Ember's
    /// own flag, not reported by COMMAND.
    pub(crate) const KEYSPACE: u32 = 1 << 8;
    /// Has subcommands, checked (name, arity) before the command runs or
    /// is queued, as Redis does with its subcommand table.
    pub(crate) const CONTAINER: u32 = 1 << 9;
    /// May grow memory: refused while over `maxmemory` (Redis's
    /// `denyoom`).
    pub(crate) const DENYOOM: u32 = 1 << 10;
    /// Served by a replica whose link to its master is down while
    /// `replica-serve-stale-data` is `no` (Redis's `stale`).
    pub(crate) const OK_STALE: u32 = 1 << 11;
    /// Served while the RDB file loads (Redis's `loading`).
    pub(crate) const OK_LOADING: u32 = 1 << 12;
    /// Its keys are found by parsing its arguments, not by position alone
    /// (Redis's `movablekeys`, which COMMAND reports).
    pub(crate) const MOVABLEKEYS: u32 = 1 << 13;
    /// Refused inside scripts (Redis's `noscript`).
    pub(crate) const NOSCRIPT: u32 = 1 << 14;
    /// May block the client (Redis's `blocking`).
    pub(crate) const BLOCKING: u32 = 1 << 15;
    /// Publish/subscribe (Redis's `pubsub`).
    pub(crate) const PUBSUB: u32 = 1 << 16;
    /// Not shown to MONITOR (Redis's `skip_monitor`).
    pub(crate) const SKIP_MONITOR: u32 = 1 << 17;
    /// Not logged by SLOWLOG (Redis's `skip_slowlog`).
    pub(crate) const SKIP_SLOWLOG: u32 = 1 << 18;
    /// Its keys are optional (Redis's `no_mandatory_keys`).
    pub(crate) const NO_MANDATORY_KEYS: u32 = 1 << 19;
    /// Refused while a replica loads its master's data in the background
    /// (Redis's `no_async_loading`).
    pub(crate) const NO_ASYNC_LOADING: u32 = 1 << 20;
    /// Served while a script runs too long (Redis's `allow_busy`).
    pub(crate) const ALLOW_BUSY: u32 = 1 << 21;
    /// Not a write, but reaches replicas (PUBLISH): a WRITE pause holds
    /// it back (Redis's `may-replicate`, which COMMAND does not report).
    pub(crate) const MAY_REPLICATE: u32 = 1 << 22;
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
    /// What the positions and flags do not say.
    extra: Extra,
}

/// What a command's row says beyond its name, arity, flags and key
/// positions: where its keys are when they move, and how it reaches
/// replicas when not as it came.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extra {
    keys: Keys,
    propagate: Propagate,
}

/// Where a command's keys are.
#[derive(Debug, Clone, Copy)]
enum Keys {
    /// At the table's positions.
    Positions,
    /// The `numkeys` argument at `at` counts the keys that follow it (LMPOP,
    /// ZUNION...); with `key_first`, the argument before it is a key too
    /// (ZUNIONSTORE's destination).
    Counted { at: usize, key_first: bool },
    /// Found by parsing the arguments (SORT, MIGRATE).
    Parsed(for<'r> fn(&'r Request, &mut Vec<&'r [u8]>)),
}

/// How a write command reaches replicas (and, later, the append-only file)
/// when it changed something, besides what a handler asks for itself
/// (`Effects::rewrite`): commands whose arguments depend on the moment or
/// on the state are sent as what they did, as Redis sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Propagate {
    /// As it came.
    Itself,
    /// As itself even when it changed nothing (FLUSHALL, FLUSHDB, SWAPDB:
    /// Redis counts them as a change whatever they found).
    Always,
    /// As `SET key value PXAT deadline` (plain SET without a deadline, DEL
    /// if the key is gone), the value at argument `value`: SETEX, PSETEX,
    /// and SET when `if_option` and it names an expiry option.
    SetDeadline { value: usize, if_option: bool },
    /// As the key's deadline: `PEXPIREAT key ms` (with the EXPIRE
    /// family's NX/XX/GT/LT kept), PERSIST, or DEL if the key is gone.
    Deadline { keep_flags: bool },
    /// As `SET key value KEEPTTL` with the value it left (INCRBYFLOAT), or
    /// DEL.
    Value,
    /// As another command on its first `args` arguments (GETDEL as DEL,
    /// BLMOVE as LMOVE without its timeout).
    As(&'static str, usize),
}

impl Extra {
    /// Keys at their positions, sent as they came.
    const NONE: Extra = Extra {
        keys: Keys::Positions,
        propagate: Propagate::Itself,
    };

    const fn numkeys(at: usize) -> Extra {
        Extra {
            keys: Keys::Counted {
                at,
                key_first: false,
            },
            ..Extra::NONE
        }
    }

    const fn key_then_numkeys(at: usize) -> Extra {
        Extra {
            keys: Keys::Counted {
                at,
                key_first: true,
            },
            ..Extra::NONE
        }
    }

    const fn parsed(find: for<'r> fn(&'r Request, &mut Vec<&'r [u8]>)) -> Extra {
        Extra {
            keys: Keys::Parsed(find),
            ..Extra::NONE
        }
    }

    const fn propagate(propagate: Propagate) -> Extra {
        Extra {
            propagate,
            ..Extra::NONE
        }
    }
}

impl Command {
    /// Whether `argc` arguments (name included) fit the arity.
    fn arity_ok(&self, argc: usize) -> bool {
        arity_fits(self.arity, argc)
    }

    /// The flags COMMAND reports, as Redis names and orders them (Ember's
    /// own flags, such as [`KEYSPACE`], are not reported). A container's
    /// are its own (COMMAND's `loading` and `stale`, for its bare form);
    /// its subcommands carry the rest, as in Redis.
    pub(crate) fn flag_names(&self) -> Vec<&'static str> {
        [
            (WRITE, "write"),
            (READONLY, "readonly"),
            (DENYOOM, "denyoom"),
            (ADMIN, "admin"),
            (PUBSUB, "pubsub"),
            (NOSCRIPT, "noscript"),
            (BLOCKING, "blocking"),
            (OK_LOADING, "loading"),
            (OK_STALE, "stale"),
            (SKIP_MONITOR, "skip_monitor"),
            (SKIP_SLOWLOG, "skip_slowlog"),
            (FAST, "fast"),
            (NO_AUTH, "no_auth"),
            (NO_MANDATORY_KEYS, "no_mandatory_keys"),
            (NO_ASYNC_LOADING, "no_async_loading"),
            (NO_MULTI, "no_multi"),
            (MOVABLEKEYS, "movablekeys"),
            (ALLOW_BUSY, "allow_busy"),
        ]
        .into_iter()
        .filter(|&(bit, _)| self.flags & bit != 0)
        .map(|(_, name)| name)
        .collect()
    }

    /// The key positions COMMAND reports: a container's are its
    /// subcommands', so it reports none, as in Redis.
    pub(crate) fn reported_keys(&self) -> (i32, i32, i32) {
        if self.flags & CONTAINER != 0 {
            NOKEY
        } else {
            self.keys
        }
    }
}

macro_rules! commands {
    ($($name:literal, $arity:expr, $flags:expr, $keys:expr, $handler:path $(, $extra:expr)?;)*) => {
        &[$(Command {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            handler: $handler,
            extra: extra!($($extra)?),
        },)*]
    };
}

/// A row's optional last column.
macro_rules! extra {
    () => {
        Extra::NONE
    };
    ($extra:expr) => {
        $extra
    };
}

use flags::*;

const NOKEY: (i32, i32, i32) = (0, 0, 0);
const KEY1: (i32, i32, i32) = (1, 1, 1);

/// Every command the server knows.
pub(crate) static COMMANDS: &[Command] = commands! {
    // connection
    "ping", -1, FAST, NOKEY, pubsub::ping;
    "echo", 2, OK_LOADING | OK_STALE | FAST, NOKEY, connection::echo;
    "quit", -1, NOSCRIPT | OK_LOADING | OK_STALE | FAST | NO_AUTH | ALLOW_BUSY | NOT_QUEUED, NOKEY, connection::quit;
    "select", 2, OK_LOADING | OK_STALE | FAST, NOKEY, connection::select;
    "auth", -2, NOSCRIPT | OK_LOADING | OK_STALE | FAST | NO_AUTH | ALLOW_BUSY, NOKEY, connection::auth;
    "hello", -1, NOSCRIPT | OK_LOADING | OK_STALE | FAST | NO_AUTH | ALLOW_BUSY, NOKEY, connection::hello;
    "client", -2, SLOW | CONTAINER, NOKEY, client_reply::client;
    "reset", 1, NOSCRIPT | OK_LOADING | OK_STALE | FAST | NO_AUTH | ALLOW_BUSY | NOT_QUEUED, NOKEY, pubsub::reset;
    // transactions
    "multi", 1, NOSCRIPT | OK_LOADING | OK_STALE | FAST | ALLOW_BUSY | NOT_QUEUED, NOKEY, transactions::multi;
    "exec", 1, NOSCRIPT | OK_LOADING | OK_STALE | SKIP_SLOWLOG | NOT_QUEUED, NOKEY, transactions::exec;
    "discard", 1, NOSCRIPT | OK_LOADING | OK_STALE | FAST | ALLOW_BUSY | NOT_QUEUED, NOKEY, transactions::discard;
    "watch", -2, NOSCRIPT | OK_LOADING | OK_STALE | FAST | ALLOW_BUSY | NOT_QUEUED, (1, -1, 1), transactions::watch;
    "unwatch", 1, NOSCRIPT | OK_LOADING | OK_STALE | FAST | ALLOW_BUSY, NOKEY, transactions::unwatch;
    // server
    "dbsize", 1, READONLY | FAST | KEYSPACE, NOKEY, server::dbsize;
    "flushdb", -1, WRITE | KEYSPACE, NOKEY, server::flushdb, Extra::propagate(Propagate::Always);
    "flushall", -1, WRITE | KEYSPACE, NOKEY, server::flushall, Extra::propagate(Propagate::Always);
    "swapdb", 3, WRITE | FAST | KEYSPACE, NOKEY, server::swapdb, Extra::propagate(Propagate::Always);
    "time", 1, OK_LOADING | OK_STALE | FAST, NOKEY, server::time;
    "info", -1, OK_LOADING | OK_STALE | SLOW | KEYSPACE, NOKEY, server::info;
    "config", -2, SLOW | CONTAINER, NOKEY, server::config;
    "command", -1, OK_LOADING | OK_STALE | SLOW | CONTAINER, NOKEY, server::command;
    "shutdown", -1, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE | NO_MULTI | ALLOW_BUSY, NOKEY, server::shutdown;
    "monitor", 1, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE, NOKEY, connection::monitor;
    "debug", -2, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE | KEYSPACE, NOKEY, server::debug;
    "function", -2, SLOW | CONTAINER, NOKEY, functions::function;
    // persistence
    "save", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, NOKEY, persistence::save;
    "bgsave", -1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | KEYSPACE, NOKEY, persistence::bgsave;
    "lastsave", 1, OK_LOADING | OK_STALE | FAST, NOKEY, persistence::lastsave;
    "bgrewriteaof", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | KEYSPACE, NOKEY, persistence::bgrewriteaof;
    // keys
    "del", -2, WRITE, (1, -1, 1), keys::del;
    "unlink", -2, WRITE | FAST, (1, -1, 1), keys::del;
    "exists", -2, READONLY | FAST, (1, -1, 1), keys::exists;
    "touch", -2, READONLY | FAST, (1, -1, 1), keys::exists;
    "type", 2, READONLY | FAST, KEY1, keys::type_;
    "keys", 2, READONLY | SLOW | KEYSPACE, NOKEY, keys::keys;
    "scan", -2, READONLY | KEYSPACE, NOKEY, keys::scan;
    "randomkey", 1, READONLY | KEYSPACE, NOKEY, keys::randomkey;
    "rename", 3, WRITE, (1, 2, 1), keys::rename;
    "renamenx", 3, WRITE | FAST, (1, 2, 1), keys::renamenx;
    "copy", -3, WRITE | DENYOOM, (1, 2, 1), keys::copy;
    "move", 3, WRITE | FAST, KEY1, keys::move_;
    "expire", -3, WRITE | FAST, KEY1, keys::expire, Extra::propagate(Propagate::Deadline { keep_flags: true });
    "pexpire", -3, WRITE | FAST, KEY1, keys::pexpire, Extra::propagate(Propagate::Deadline { keep_flags: true });
    "expireat", -3, WRITE | FAST, KEY1, keys::expireat, Extra::propagate(Propagate::Deadline { keep_flags: true });
    "pexpireat", -3, WRITE | FAST, KEY1, keys::pexpireat, Extra::propagate(Propagate::Deadline { keep_flags: true });
    "ttl", 2, READONLY | FAST, KEY1, keys::ttl;
    "pttl", 2, READONLY | FAST, KEY1, keys::pttl;
    "expiretime", 2, READONLY | FAST, KEY1, keys::expiretime;
    "pexpiretime", 2, READONLY | FAST, KEY1, keys::pexpiretime;
    "persist", 2, WRITE | FAST, KEY1, keys::persist;
    "object", -2, SLOW | CONTAINER, (2, 2, 1), keys::object;
    "dump", 2, READONLY, KEY1, dump::dump;
    "restore", -4, WRITE | DENYOOM, KEY1, dump::restore;
    "migrate", -6, WRITE | MOVABLEKEYS, (3, 3, 1), dump::migrate, Extra::parsed(migrate_keys);
    // strings
    "get", 2, READONLY | FAST, KEY1, strings::get;
    "set", -3, WRITE | DENYOOM, KEY1, strings::set, Extra::propagate(Propagate::SetDeadline { value: 2, if_option: true });
    "setnx", 3, WRITE | DENYOOM | FAST, KEY1, strings::setnx;
    "setex", 4, WRITE | DENYOOM, KEY1, strings::setex, Extra::propagate(Propagate::SetDeadline { value: 3, if_option: false });
    "psetex", 4, WRITE | DENYOOM, KEY1, strings::psetex, Extra::propagate(Propagate::SetDeadline { value: 3, if_option: false });
    "getset", 3, WRITE | DENYOOM | FAST, KEY1, strings::getset, Extra::propagate(Propagate::As("SET", 2));
    "getdel", 2, WRITE | FAST, KEY1, strings::getdel, Extra::propagate(Propagate::As("DEL", 1));
    "getex", -2, WRITE | FAST, KEY1, strings::getex, Extra::propagate(Propagate::Deadline { keep_flags: false });
    "mget", -2, READONLY | FAST, (1, -1, 1), strings::mget;
    "mset", -3, WRITE | DENYOOM, (1, -1, 2), strings::mset;
    "msetnx", -3, WRITE | DENYOOM, (1, -1, 2), strings::msetnx;
    "append", 3, WRITE | DENYOOM | FAST, KEY1, strings::append;
    "strlen", 2, READONLY | FAST, KEY1, strings::strlen;
    "incr", 2, WRITE | DENYOOM | FAST, KEY1, strings::incr;
    "decr", 2, WRITE | DENYOOM | FAST, KEY1, strings::decr;
    "incrby", 3, WRITE | DENYOOM | FAST, KEY1, strings::incrby;
    "decrby", 3, WRITE | DENYOOM | FAST, KEY1, strings::decrby;
    "incrbyfloat", 3, WRITE | DENYOOM | FAST, KEY1, strings::incrbyfloat, Extra::propagate(Propagate::Value);
    "getrange", 4, READONLY, KEY1, strings::getrange;
    "substr", 4, READONLY, KEY1, strings::getrange;
    "setrange", 4, WRITE | DENYOOM, KEY1, strings::setrange;
    // sort: patterns may name any key, so the whole keyspace is locked
    // (KEYSPACE) when one is used.
    "sort", -2, WRITE | DENYOOM | MOVABLEKEYS | KEYSPACE, KEY1, sort::sort, Extra::parsed(sort_keys);
    "sort_ro", -2, READONLY | MOVABLEKEYS | KEYSPACE, KEY1, sort::sort_ro;
    // bitmaps and LCS
    "setbit", 4, WRITE | DENYOOM, KEY1, bitmaps::setbit;
    "getbit", 3, READONLY | FAST, KEY1, bitmaps::getbit;
    "bitcount", -2, READONLY, KEY1, bitmaps::bitcount;
    "bitpos", -3, READONLY, KEY1, bitmaps::bitpos;
    "bitop", -4, WRITE | DENYOOM, (2, -1, 1), bitmaps::bitop;
    "bitfield", -2, WRITE | DENYOOM, KEY1, bitmaps::bitfield;
    "bitfield_ro", -2, READONLY | FAST, KEY1, bitmaps::bitfield_ro;
    "lcs", -3, READONLY, (1, 2, 1), bitmaps::lcs;
    // lists
    "lpush", -3, WRITE | DENYOOM | FAST, KEY1, lists::lpush;
    "rpush", -3, WRITE | DENYOOM | FAST, KEY1, lists::rpush;
    "lpushx", -3, WRITE | DENYOOM | FAST, KEY1, lists::lpushx;
    "rpushx", -3, WRITE | DENYOOM | FAST, KEY1, lists::rpushx;
    "lpop", -2, WRITE | FAST, KEY1, lists::lpop;
    "rpop", -2, WRITE | FAST, KEY1, lists::rpop;
    "llen", 2, READONLY | FAST, KEY1, lists::llen;
    "lrange", 4, READONLY, KEY1, lists::lrange;
    "lindex", 3, READONLY, KEY1, lists::lindex;
    "lset", 4, WRITE | DENYOOM, KEY1, lists::lset;
    "linsert", 5, WRITE | DENYOOM, KEY1, lists::linsert;
    "lrem", 4, WRITE, KEY1, lists::lrem;
    "ltrim", 4, WRITE, KEY1, lists::ltrim;
    "lpos", -3, READONLY, KEY1, lists::lpos;
    "lmove", 5, WRITE | DENYOOM, (1, 2, 1), lists::lmove;
    "rpoplpush", 3, WRITE | DENYOOM, (1, 2, 1), lists::rpoplpush;
    "lmpop", -4, WRITE | MOVABLEKEYS, NOKEY, lists::lmpop, Extra::numkeys(1);
    "blpop", -3, WRITE | NOSCRIPT | BLOCKING, (1, -2, 1), lists::blpop;
    "brpop", -3, WRITE | NOSCRIPT | BLOCKING, (1, -2, 1), lists::brpop;
    "blmove", 6, WRITE | DENYOOM | NOSCRIPT | BLOCKING, (1, 2, 1), lists::blmove, Extra::propagate(Propagate::As("LMOVE", 4));
    "brpoplpush", 4, WRITE | DENYOOM | NOSCRIPT | BLOCKING, (1, 2, 1), lists::brpoplpush, Extra::propagate(Propagate::As("RPOPLPUSH", 2));
    "blmpop", -5, WRITE | BLOCKING | MOVABLEKEYS, NOKEY, lists::blmpop, Extra::numkeys(2);
    // sets
    "sadd", -3, WRITE | DENYOOM | FAST, KEY1, sets::sadd;
    "srem", -3, WRITE | FAST, KEY1, sets::srem;
    "smove", 4, WRITE | FAST, (1, 2, 1), sets::smove;
    "sismember", 3, READONLY | FAST, KEY1, sets::sismember;
    "smismember", -3, READONLY | FAST, KEY1, sets::smismember;
    "scard", 2, READONLY | FAST, KEY1, sets::scard;
    "smembers", 2, READONLY, KEY1, sets::smembers;
    "spop", -2, WRITE | FAST, KEY1, sets::spop;
    "srandmember", -2, READONLY, KEY1, sets::srandmember;
    "sinter", -2, READONLY, (1, -1, 1), sets::sinter;
    "sintercard", -3, READONLY | MOVABLEKEYS, NOKEY, sets::sintercard, Extra::numkeys(1);
    "sinterstore", -3, WRITE | DENYOOM, (1, -1, 1), sets::sinterstore;
    "sunion", -2, READONLY, (1, -1, 1), sets::sunion;
    "sunionstore", -3, WRITE | DENYOOM, (1, -1, 1), sets::sunionstore;
    "sdiff", -2, READONLY, (1, -1, 1), sets::sdiff;
    "sdiffstore", -3, WRITE | DENYOOM, (1, -1, 1), sets::sdiffstore;
    "sscan", -3, READONLY, KEY1, sets::sscan;
    // hashes
    "hset", -4, WRITE | DENYOOM | FAST, KEY1, hashes::hset;
    "hsetnx", 4, WRITE | DENYOOM | FAST, KEY1, hashes::hsetnx;
    "hmset", -4, WRITE | DENYOOM | FAST, KEY1, hashes::hmset;
    "hget", 3, READONLY | FAST, KEY1, hashes::hget;
    "hmget", -3, READONLY | FAST, KEY1, hashes::hmget;
    "hgetall", 2, READONLY, KEY1, hashes::hgetall;
    "hkeys", 2, READONLY, KEY1, hashes::hkeys;
    "hvals", 2, READONLY, KEY1, hashes::hvals;
    "hlen", 2, READONLY | FAST, KEY1, hashes::hlen;
    "hexists", 3, READONLY | FAST, KEY1, hashes::hexists;
    "hdel", -3, WRITE | FAST, KEY1, hashes::hdel;
    "hstrlen", 3, READONLY | FAST, KEY1, hashes::hstrlen;
    "hincrby", 4, WRITE | DENYOOM | FAST, KEY1, hashes::hincrby;
    "hincrbyfloat", 4, WRITE | DENYOOM | FAST, KEY1, hashes::hincrbyfloat;
    "hrandfield", -2, READONLY, KEY1, hashes::hrandfield;
    "hscan", -3, READONLY, KEY1, hashes::hscan;
    // sorted sets
    "zadd", -4, WRITE | DENYOOM | FAST, KEY1, zsets::zadd;
    "zincrby", 4, WRITE | DENYOOM | FAST, KEY1, zsets::zincrby;
    "zrem", -3, WRITE | FAST, KEY1, zsets::zrem;
    "zcard", 2, READONLY | FAST, KEY1, zsets::zcard;
    "zscore", 3, READONLY | FAST, KEY1, zsets::zscore;
    "zmscore", -3, READONLY | FAST, KEY1, zsets::zmscore;
    "zrank", 3, READONLY | FAST, KEY1, zsets::zrank;
    "zrevrank", 3, READONLY | FAST, KEY1, zsets::zrevrank;
    "zcount", 4, READONLY | FAST, KEY1, zsets::zcount;
    "zlexcount", 4, READONLY | FAST, KEY1, zsets::zlexcount;
    "zrange", -4, READONLY, KEY1, zsets::zrange;
    "zrangestore", -5, WRITE | DENYOOM, (1, 2, 1), zsets::zrangestore;
    "zrevrange", -4, READONLY, KEY1, zsets::zrevrange;
    "zrangebyscore", -4, READONLY, KEY1, zsets::zrangebyscore;
    "zrevrangebyscore", -4, READONLY, KEY1, zsets::zrevrangebyscore;
    "zrangebylex", -4, READONLY, KEY1, zsets::zrangebylex;
    "zrevrangebylex", -4, READONLY, KEY1, zsets::zrevrangebylex;
    "zremrangebyrank", 4, WRITE, KEY1, zsets::zremrangebyrank;
    "zremrangebyscore", 4, WRITE, KEY1, zsets::zremrangebyscore;
    "zremrangebylex", 4, WRITE, KEY1, zsets::zremrangebylex;
    "zpopmin", -2, WRITE | FAST, KEY1, zsets::zpopmin;
    "zpopmax", -2, WRITE | FAST, KEY1, zsets::zpopmax;
    "zmpop", -4, WRITE | MOVABLEKEYS, NOKEY, zsets::zmpop, Extra::numkeys(1);
    "bzpopmin", -3, WRITE | NOSCRIPT | BLOCKING | FAST, (1, -2, 1), zsets::bzpopmin;
    "bzpopmax", -3, WRITE | NOSCRIPT | BLOCKING | FAST, (1, -2, 1), zsets::bzpopmax;
    "bzmpop", -5, WRITE | BLOCKING | MOVABLEKEYS, NOKEY, zsets::bzmpop, Extra::numkeys(2);
    "zrandmember", -2, READONLY, KEY1, zsets::zrandmember;
    "zscan", -3, READONLY, KEY1, zsets::zscan;
    "zunion", -3, READONLY | MOVABLEKEYS, NOKEY, zsets::zunion, Extra::numkeys(1);
    "zinter", -3, READONLY | MOVABLEKEYS, NOKEY, zsets::zinter, Extra::numkeys(1);
    "zdiff", -3, READONLY | MOVABLEKEYS, NOKEY, zsets::zdiff, Extra::numkeys(1);
    "zintercard", -3, READONLY | MOVABLEKEYS, NOKEY, zsets::zintercard, Extra::numkeys(1);
    "zunionstore", -4, WRITE | DENYOOM | MOVABLEKEYS, KEY1, zsets::zunionstore, Extra::key_then_numkeys(2);
    "zinterstore", -4, WRITE | DENYOOM | MOVABLEKEYS, KEY1, zsets::zinterstore, Extra::key_then_numkeys(2);
    "zdiffstore", -4, WRITE | DENYOOM | MOVABLEKEYS, KEY1, zsets::zdiffstore, Extra::key_then_numkeys(2);
    // replication
    "replicaof", 3, ADMIN | NOSCRIPT | OK_STALE | NO_ASYNC_LOADING | KEYSPACE, NOKEY, replication::replicaof;
    "slaveof", 3, ADMIN | NOSCRIPT | OK_STALE | NO_ASYNC_LOADING | KEYSPACE, NOKEY, replication::replicaof;
    "replconf", -1, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE | ALLOW_BUSY, NOKEY, replication::replconf;
    "psync", -3, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, NOKEY, replication::psync;
    "sync", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, NOKEY, replication::sync;
    "wait", 3, NOSCRIPT, NOKEY, replication::wait;
    "role", 1, NOSCRIPT | OK_LOADING | OK_STALE | FAST, NOKEY, replication::role;
    // memory
    "memory", -2, SLOW | CONTAINER, (2, 2, 1), memory::memory;
    // pub/sub (PING and RESET above go through pubsub.rs for subscribers)
    "subscribe", -2, PUBSUB | NOSCRIPT | OK_LOADING | OK_STALE, NOKEY, pubsub::subscribe;
    "unsubscribe", -1, PUBSUB | NOSCRIPT | OK_LOADING | OK_STALE, NOKEY, pubsub::unsubscribe;
    "psubscribe", -2, PUBSUB | NOSCRIPT | OK_LOADING | OK_STALE, NOKEY, pubsub::psubscribe;
    "punsubscribe", -1, PUBSUB | NOSCRIPT | OK_LOADING | OK_STALE, NOKEY, pubsub::punsubscribe;
    // A shard channel is placed like a key (Redis Cluster's slots).
    "ssubscribe", -2, PUBSUB | NOSCRIPT | OK_LOADING | OK_STALE, (1, -1, 1), pubsub::ssubscribe;
    "sunsubscribe", -1, PUBSUB | NOSCRIPT | OK_LOADING | OK_STALE, (1, -1, 1), pubsub::sunsubscribe;
    "publish", 3, PUBSUB | OK_LOADING | OK_STALE | FAST | MAY_REPLICATE, NOKEY, pubsub::publish;
    "spublish", 3, PUBSUB | OK_LOADING | OK_STALE | FAST | MAY_REPLICATE, KEY1, pubsub::spublish;
    "pubsub", -2, SLOW | CONTAINER, NOKEY, pubsub::pubsub;
    // scripting: a script may touch any key, so it holds every shard
    // (KEYSPACE), inside EXEC too; its declared keys follow `numkeys`.
    "eval", -3, NOSCRIPT | OK_STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS | MAY_REPLICATE | SLOW | KEYSPACE, NOKEY, scripting::eval, Extra::numkeys(2);
    "evalsha", -3, NOSCRIPT | OK_STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS | MAY_REPLICATE | SLOW | KEYSPACE, NOKEY, scripting::evalsha, Extra::numkeys(2);
    "eval_ro", -3, READONLY | NOSCRIPT | OK_STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS | SLOW | KEYSPACE, NOKEY, scripting::eval_ro, Extra::numkeys(2);
    "evalsha_ro", -3, READONLY | NOSCRIPT | OK_STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS | SLOW | KEYSPACE, NOKEY, scripting::evalsha_ro, Extra::numkeys(2);
    "script", -2, SLOW | CONTAINER, NOKEY, scripting::script;
    // functions: run as scripts do (every shard held); their keys follow
    // `numkeys`.
    "fcall", -3, NOSCRIPT | OK_STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS | MAY_REPLICATE | SLOW | KEYSPACE, NOKEY, functions::fcall, Extra::numkeys(2);
    "fcall_ro", -3, READONLY | NOSCRIPT | OK_STALE | SKIP_MONITOR | NO_MANDATORY_KEYS | MOVABLEKEYS | SLOW | KEYSPACE, NOKEY, functions::fcall_ro, Extra::numkeys(2);
};

/// Redis 7.0's subcommands of the [`CONTAINER`] commands, with their
/// arities (the container's name counted). Redis checks them before a
/// command runs or is queued; so does [`execute`]. Subcommands Ember does
/// not implement are listed too: inside MULTI they are queued, as in
/// Redis, and fail when EXEC runs them.
/// A subcommand: name, arity (the container's name counted), flags.
type Subcommand = (&'static str, i32, u32);

const SUBCOMMANDS: &[(&str, &[Subcommand])] = &[
    (
        "memory",
        &[
            ("doctor", 2, 0),
            ("help", 2, OK_LOADING | OK_STALE),
            ("malloc-stats", 2, 0),
            ("purge", 2, 0),
            ("stats", 2, 0),
            ("usage", -3, READONLY),
        ],
    ),
    (
        "client",
        &[
            ("caching", 3, NOSCRIPT | OK_LOADING | OK_STALE),
            ("getname", 2, NOSCRIPT | OK_LOADING | OK_STALE),
            ("getredir", 2, NOSCRIPT | OK_LOADING | OK_STALE),
            ("help", 2, OK_LOADING | OK_STALE),
            ("id", 2, NOSCRIPT | OK_LOADING | OK_STALE),
            ("info", 2, NOSCRIPT | OK_LOADING | OK_STALE),
            ("kill", -3, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE),
            ("list", -2, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE),
            ("no-evict", 3, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE),
            ("pause", -3, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE),
            ("reply", 3, NOSCRIPT | OK_LOADING | OK_STALE),
            ("setname", 3, NOSCRIPT | OK_LOADING | OK_STALE),
            ("tracking", -3, NOSCRIPT | OK_LOADING | OK_STALE),
            ("trackinginfo", 2, NOSCRIPT | OK_LOADING | OK_STALE),
            ("unblock", -3, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE),
            ("unpause", 2, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE),
        ],
    ),
    (
        "config",
        &[
            ("get", -3, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE),
            ("help", 2, OK_LOADING | OK_STALE),
            ("resetstat", 2, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE),
            ("rewrite", 2, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE),
            ("set", -4, ADMIN | NOSCRIPT | OK_LOADING | OK_STALE),
        ],
    ),
    (
        "object",
        &[
            ("encoding", 3, READONLY),
            ("freq", 3, READONLY),
            ("help", 2, OK_LOADING | OK_STALE),
            ("idletime", 3, READONLY),
            ("refcount", 3, READONLY),
        ],
    ),
    (
        "command",
        &[
            ("count", 2, OK_LOADING | OK_STALE),
            ("docs", -2, OK_LOADING | OK_STALE),
            ("getkeys", -4, OK_LOADING | OK_STALE),
            ("getkeysandflags", -4, OK_LOADING | OK_STALE),
            ("help", 2, OK_LOADING | OK_STALE),
            ("info", -2, OK_LOADING | OK_STALE),
            ("list", -2, OK_LOADING | OK_STALE),
        ],
    ),
    (
        "script",
        &[
            ("debug", 3, NOSCRIPT),
            ("exists", -3, NOSCRIPT),
            ("flush", -2, NOSCRIPT),
            ("help", 2, OK_LOADING | OK_STALE),
            ("kill", 2, NOSCRIPT | ALLOW_BUSY),
            ("load", 3, NOSCRIPT | OK_STALE),
        ],
    ),
    (
        "function",
        &[
            ("delete", 3, WRITE | NOSCRIPT),
            ("dump", 2, NOSCRIPT),
            ("flush", -2, WRITE | NOSCRIPT),
            ("help", 2, OK_LOADING | OK_STALE),
            ("kill", 2, NOSCRIPT | ALLOW_BUSY),
            ("list", -2, NOSCRIPT),
            ("load", -3, WRITE | DENYOOM | NOSCRIPT),
            ("restore", -3, WRITE | DENYOOM | NOSCRIPT),
            ("stats", 2, NOSCRIPT | ALLOW_BUSY),
        ],
    ),
    (
        "pubsub",
        &[
            ("channels", -2, PUBSUB | OK_LOADING | OK_STALE),
            ("help", 2, OK_LOADING | OK_STALE),
            ("numpat", 2, PUBSUB | OK_LOADING | OK_STALE),
            ("numsub", -2, PUBSUB | OK_LOADING | OK_STALE),
            ("shardchannels", -2, PUBSUB | OK_LOADING | OK_STALE),
            ("shardnumsub", -2, PUBSUB | OK_LOADING | OK_STALE),
        ],
    ),
];

/// Whether `argc` arguments fit Redis's `arity`: `n` exactly n, `-n` at
/// least n.
fn arity_fits(arity: i32, argc: usize) -> bool {
    let argc = argc.min(i32::MAX as usize) as i32;
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// The error for a subcommand that does not exist or has the wrong number
/// of arguments, as Redis's command lookup gives it.
fn check_subcommand(cmd: &Command, req: &Request) -> Option<Vec<u8>> {
    let sub = req.get(1)?;
    let (_, subs) = SUBCOMMANDS.iter().find(|(name, _)| *name == cmd.name)?;
    let Some((name, arity, _)) = subs
        .iter()
        .find(|(name, _, _)| sub.eq_ignore_ascii_case(name.as_bytes()))
    else {
        let mut text = b"ERR unknown subcommand '".to_vec();
        text.extend(sub[..sub.len().min(128)].iter().map(|&b| no_newline(b)));
        text.extend_from_slice(b"'. Try ");
        text.extend(req[0].iter().map(|&b| no_newline(b.to_ascii_uppercase())));
        text.extend_from_slice(b" HELP.");
        return Some(text);
    };
    (!arity_fits(*arity, req.len())).then(|| {
        format!(
            "ERR wrong number of arguments for '{}|{name}' command",
            cmd.name
        )
        .into_bytes()
    })
}

/// The flags of `req`: its subcommand's for a container (Redis flags
/// subcommands, not containers: OBJECT HELP is served while loading, OBJECT
/// ENCODING is not), the command's otherwise.
fn flags_of(cmd: &Command, req: &Request) -> u32 {
    if cmd.flags & CONTAINER == 0 {
        return cmd.flags;
    }
    let sub = req.get(1);
    SUBCOMMANDS
        .iter()
        .find(|(name, _)| *name == cmd.name)
        .and_then(|(_, subs)| {
            subs.iter()
                .find(|(name, _, _)| sub.is_some_and(|s| s.eq_ignore_ascii_case(name.as_bytes())))
        })
        .map_or(cmd.flags, |&(_, _, flags)| flags)
}

/// Redis replaces newlines in error texts built from arguments.
fn no_newline(b: u8) -> u8 {
    if b == b'\r' || b == b'\n' { b' ' } else { b }
}

/// The names statistics are kept under, as INFO commandstats shows them:
/// every command of [`COMMANDS`] in order, then every subcommand of
/// [`SUBCOMMANDS`] as `container|sub`. A container's calls count on its
/// subcommands, as in Redis 7.0.
pub(crate) static STAT_NAMES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut names: Vec<String> = COMMANDS.iter().map(|c| c.name.to_string()).collect();
    for (container, subs) in SUBCOMMANDS {
        names.extend(subs.iter().map(|(sub, _, _)| format!("{container}|{sub}")));
    }
    names
});

/// Where the statistics of the command at `index` of [`COMMANDS`], called
/// as `req`, are kept in [`STAT_NAMES`]; `None` for an unknown subcommand
/// (Redis counts such a call nowhere but in errorstats).
fn stat_index(index: usize, req: &Request) -> Option<usize> {
    let cmd = &COMMANDS[index];
    if cmd.flags & CONTAINER == 0 {
        return Some(index);
    }
    let mut base = COMMANDS.len();
    for (container, subs) in SUBCOMMANDS {
        if *container == cmd.name {
            let sub = req.get(1)?;
            return subs
                .iter()
                .position(|(name, _, _)| sub.eq_ignore_ascii_case(name.as_bytes()))
                .map(|i| base + i);
        }
        base += subs.len();
    }
    Some(index)
}

/// Positions in [`COMMANDS`], found by [`name_hash`] of the name in any
/// case: every request looks its command up here.
static BY_NAME: LazyLock<hashbrown::HashTable<usize>> = LazyLock::new(|| {
    let mut table = hashbrown::HashTable::with_capacity(COMMANDS.len());
    for (i, c) in COMMANDS.iter().enumerate() {
        table.insert_unique(name_hash(c.name.as_bytes()), i, |&j| {
            name_hash(COMMANDS[j].name.as_bytes())
        });
    }
    table
});

/// A hash of a command name that ignores ASCII case: FNV-1a over each byte
/// with its case bit set, so `GET`, `get` and `GeT` hash alike (as do some
/// names that differ in other characters; the lookup compares the names
/// after). A name is a few bytes: a byte loop beats copying it to lower
/// case and running a general hash over it (SipHash, std's default, was a
/// measurable share of a pipelined INCR; xxh3 with the copy was about 170
/// instructions a request at pipeline 1).
fn name_hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h = (h ^ u64::from(b | 0x20)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    // hashbrown takes its tag from the top bits, where FNV's last byte
    // hardly reaches: an odd multiplier carries every bit upwards.
    h.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The command named `name`, in any case.
pub(crate) fn lookup(name: &[u8]) -> Option<&'static Command> {
    lookup_index(name).map(|i| &COMMANDS[i])
}

/// The position in [`COMMANDS`] of the command named `name`, in any case.
pub(crate) fn lookup_index(name: &[u8]) -> Option<usize> {
    // No command's name is longer; a long argument is not hashed.
    if name.len() > 32 {
        return None;
    }
    BY_NAME
        .find(name_hash(name), |&i| {
            same_name(COMMANDS[i].name.as_bytes(), name)
        })
        .copied()
}

/// A connection's memory of the last command name it looked up: a client
/// mostly sends the same command again (a pipeline of GETs, a benchmark, a
/// worker's loop), and comparing a few bytes costs less than a probe of
/// [`BY_NAME`].
#[derive(Debug, Default)]
pub(crate) struct LastName {
    name: [u8; 16],
    len: usize,
    index: Option<usize>,
}

impl LastName {
    /// [`lookup_index`], remembering the answer for a short name.
    #[inline]
    pub(crate) fn lookup(&mut self, name: &[u8]) -> Option<usize> {
        if name.len() == self.len && name == &self.name[..self.len] {
            return self.index;
        }
        let index = lookup_index(name);
        if name.len() <= self.name.len() {
            self.name[..name.len()].copy_from_slice(name);
            self.len = name.len();
            self.index = index;
        }
        index
    }
}

/// Whether `name` is `lower` (a table name, lower case) in any case: one
/// conversion a byte, where `eq_ignore_ascii_case` makes two.
#[inline]
fn same_name(lower: &[u8], name: &[u8]) -> bool {
    lower.len() == name.len()
        && lower
            .iter()
            .zip(name)
            .all(|(&l, &n)| l == n.to_ascii_lowercase())
}

/// The keys `req` names, as its handler will lock them: the table's key
/// positions, or, for LMPOP and BLMPOP, the keys after their `numkeys`. A
/// transaction locks the shards of all its commands' keys up front.
pub(crate) fn command_keys<'r>(cmd: &Command, req: &'r Request, keys: &mut Vec<&'r [u8]>) {
    let argc = req.len();
    match cmd.extra.keys {
        Keys::Positions => {}
        Keys::Counted { at, key_first } => {
            if key_first {
                keys.extend(req.get(at - 1));
            }
            // A bad count fails in the handler before it locks anything.
            let n = req
                .get(at)
                .and_then(resp::parse_int)
                .filter(|&n| n > 0)
                .unwrap_or(0);
            let end = (at as i64 + 1).saturating_add(n).min(argc as i64) as usize;
            keys.extend((at + 1..end).filter_map(|i| req.get(i)));
            return;
        }
        Keys::Parsed(find) => {
            find(req, keys);
            return;
        }
    }
    let (first, last, step) = cmd.keys;
    if first <= 0 {
        return;
    }
    let last = if last < 0 {
        argc as i64 + i64::from(last)
    } else {
        i64::from(last)
    };
    let mut i = i64::from(first);
    while i <= last && i < argc as i64 {
        keys.extend(req.get(i as usize));
        i += i64::from(step.max(1));
    }
}

/// For reading a pipelined batch ahead: whether `req`, the command at
/// `index` in [`COMMANDS`] (see [`lookup_index`]), names its keys by
/// position and leaves the connection's state as it was (so the requests
/// after it may be decoded before it runs), passing its keys, at most `max`
/// of them, to `key` for prefetching. Anything else (MULTI, SELECT, AUTH,
/// PSYNC...) ends the batch.
pub(crate) fn prefetch_keys(
    index: Option<usize>,
    req: &Request,
    max: usize,
    mut key: impl FnMut(&[u8]),
) -> bool {
    let Some(cmd) = index.map(|i| &COMMANDS[i]) else {
        return false;
    };
    let (first, last, step) = cmd.keys;
    if first <= 0 || !matches!(cmd.extra.keys, Keys::Positions) || !cmd.arity_ok(req.len()) {
        return false;
    }
    let argc = req.len() as i64;
    let last = if last < 0 {
        argc + i64::from(last)
    } else {
        i64::from(last)
    };
    let mut i = i64::from(first);
    let mut n = 0;
    while i <= last && i < argc && n < max {
        if let Some(k) = req.get(i as usize) {
            key(k);
        }
        i += i64::from(step.max(1));
        n += 1;
    }
    true
}

/// MIGRATE's keys, as Redis's `migrateGetKeys` finds them: the key
/// argument, or what follows KEYS (nothing if the key argument is not
/// empty then, which the handler refuses).
/// SORT's keys as Redis's `sortGetKeys` finds them: the key, and the
/// destination of the last STORE, skipping LIMIT's, GET's and BY's
/// arguments.
fn sort_keys<'r>(req: &'r Request, keys: &mut Vec<&'r [u8]>) {
    let Some(key) = req.get(1) else {
        return;
    };
    keys.push(key);
    let mut store = None;
    let mut i = 2;
    while i < req.len() {
        let arg = &req[i];
        if arg.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if arg.eq_ignore_ascii_case(b"get") || arg.eq_ignore_ascii_case(b"by") {
            i += 1;
        } else if arg.eq_ignore_ascii_case(b"store") && i + 1 < req.len() {
            store = Some(&req[i + 1]);
        }
        i += 1;
    }
    keys.extend(store);
}

fn migrate_keys<'r>(req: &'r Request, keys: &mut Vec<&'r [u8]>) {
    let mut i = 6;
    while let Some(arg) = req.get(i) {
        if arg.eq_ignore_ascii_case(b"keys") {
            if req.get(3).is_some_and(|k| k.is_empty()) {
                keys.extend((i + 1..req.len()).filter_map(|j| req.get(j)));
            }
            return;
        }
        i += match arg.to_ascii_lowercase().as_slice() {
            b"auth" => 2,
            b"auth2" => 3,
            _ => 1,
        };
    }
    keys.extend(req.get(3));
}

/// What the connection should do after a command.
#[derive(Debug)]
pub(crate) enum After {
    /// Read the next command.
    Continue,
    /// Send what is buffered, then close.
    Close,
    /// The command blocked on keys: wait for them, then answer.
    Block(Blocked),
    /// WAIT: wait for replicas' acknowledgements, then answer.
    Wait(WaitAcks),
    /// PSYNC or SYNC: the connection now serves a replica.
    Replica(Psync),
    /// CLIENT PAUSE holds the command back: nothing ran and nothing was
    /// answered; run it again once the pause is over for it
    /// (`Pause::wait_over` with [`may_write`]).
    Postpone,
}

/// Whether a pause of kind WRITE holds `req` back (Redis's
/// `is_may_replicate_command`): a write command, or EXEC of a transaction
/// that queued one.
pub(crate) fn may_write(client: &Client, req: &Request) -> bool {
    req.get(0)
        .and_then(lookup)
        .is_some_and(|cmd| writes(cmd, client))
}

fn writes(cmd: &Command, client: &Client) -> bool {
    cmd.flags & (WRITE | MAY_REPLICATE) != 0
        || (cmd.name == "exec" && client.multi.as_ref().is_some_and(Multi::writes))
}

/// Runs one request and appends its reply to `out`. Inside MULTI, queues
/// it instead (or refuses it, which makes EXEC fail).
pub(crate) fn execute(
    shared: &Shared,
    client: &mut Client,
    out: &mut transport::Output,
    req: &Request,
) -> After {
    let index = req.get(0).and_then(lookup_index);
    execute_command(shared, client, out, req, index)
}

/// [`execute`] for a request whose command was already looked up:
/// `index` is `lookup_index` of its name (a pipeline read ahead looks each
/// command up once, for its keys).
pub(crate) fn execute_command(
    shared: &Shared,
    client: &mut Client,
    out: &mut transport::Output,
    req: &Request,
    index: Option<usize>,
) -> After {
    let after = execute_one(shared, client, out, req, index);
    // BCAST invalidations go out once per batch of a connection (Redis:
    // once per event-loop turn), which sends them as the batch ends; at
    // once when the client will wait (blocked, paused, WAIT) or is not a
    // connection's (a script's caller, the AOF, gRPC, a master's stream).
    if !client.bcast_batched || !matches!(after, After::Continue) {
        shared.tracking.command_done(shared, Some(client.id()));
    }
    after
}

/// [`execute_command`] but for the BCAST invalidations it caused.
fn execute_one(
    shared: &Shared,
    client: &mut Client,
    out: &mut transport::Output,
    req: &Request,
    index: Option<usize>,
) -> After {
    if req.is_empty() {
        return After::Continue;
    }
    // CLIENT REPLY OFF or SKIP: the command's replies are dropped.
    if client.replies.silenced() {
        return client_reply::run_silenced(shared, client, out, req);
    }
    let mut reply = Reply {
        out,
        proto: client.proto,
    };
    let Some(index) = index else {
        shared.stats.error(b"ERR");
        reply.error(unknown_command(req));
        if let Some(multi) = &mut client.multi {
            multi.refused();
        }
        return After::Continue;
    };
    let cmd = &COMMANDS[index];
    // A container's subcommand carries the flags, as in Redis.
    let flags = flags_of(cmd, req);
    // Redis's order: existence and arity, then authentication, then the
    // rest.
    let invalid = if !cmd.arity_ok(req.len()) {
        Some(format!("ERR wrong number of arguments for '{}' command", cmd.name).into_bytes())
    } else if cmd.flags & CONTAINER != 0 {
        check_subcommand(cmd, req)
    } else {
        None
    };
    // The AOF's own client runs the file's commands while it loads.
    let loading = shared.loading.load(std::sync::atomic::Ordering::Acquire) && !client.is_master;
    let rejected = if invalid.is_some() {
        invalid
    } else if !client.authenticated && flags & NO_AUTH == 0 {
        Some(b"NOAUTH Authentication required.".to_vec())
    } else if flags & NO_MULTI != 0 && client.multi.is_some() {
        Some(b"ERR Command not allowed inside a transaction".to_vec())
    } else if {
        // Before every command while `maxmemory` is set, as Redis's
        // `performEvictions`: evict what the policy allows.
        client.oom = !client.is_master && crate::memory::before_command(shared, client, &mut reply);
        client.oom
    } && refused_when_out_of_memory(cmd, flags, client)
    {
        Some(OOM.as_bytes().to_vec())
    } else if !client.is_master
        && let Some(text) = crate::save::refused_writes(shared)
        && refused_on_disk_error(cmd, flags, client)
    {
        // -MISCONF: the disk failed a save or the AOF.
        Some(text)
    } else if flags & WRITE != 0 && !client.is_master && shared.repl.too_few_replicas() {
        Some(NOREPLICAS.as_bytes().to_vec())
    } else if flags & WRITE != 0 && !client.is_master && shared.repl.read_only() {
        Some(b"READONLY You can't write against a read only replica.".to_vec())
    } else if let Some(text) = pubsub::refused_in_subscriber_mode(client, cmd, req) {
        // A RESP2 subscriber's other commands.
        Some(text)
    } else if !client.is_master && shared.repl.stale() && !stale_ok(cmd, req) {
        Some(MASTERDOWN.as_bytes().to_vec())
    } else if loading
        && !loading_ok(cmd, req)
        && !(cmd.name == "exec"
            && client
                .multi
                .as_ref()
                .is_some_and(|m| m.all(|i, r| loading_ok(&COMMANDS[i], r))))
    {
        Some(LOADING.as_bytes().to_vec())
    } else if flags & ALLOW_BUSY == 0
        && !client.is_master
        && let Some(text) = scripting::busy(shared)
    {
        // A script has run too long: only what Redis allows meanwhile.
        Some(text.as_bytes().to_vec())
    } else {
        None
    };
    if let Some(mut text) = rejected {
        // EXEC refused while a script is busy discards the transaction,
        // as Redis's `rejectCommand` does.
        if text.starts_with(b"BUSY") && cmd.name == "exec" && client.multi.is_some() {
            text = [&b"EXECABORT Transaction discarded because of: "[..], &text].concat();
            unwatch_all(&mut Shards::new(&shared.keyspace), client);
            client.multi = None;
        }
        shared.stats.error(&text);
        if let Some(stat) = stat_index(index, req) {
            shared.stats.commands[stat].rejected.fetch_add(1, Relaxed);
        }
        reply.error(text);
        if let Some(multi) = &mut client.multi {
            multi.refused();
        }
        return After::Continue;
    }
    client.last_command = cmd.name;
    client.last_sub.clear();
    // A container's subcommand is part of its name (`client|list`), as
    // CLIENT LIST shows it; DEBUG is not a container in Redis 7.0.
    if cmd.flags & CONTAINER != 0 && req.len() > 1 {
        client.last_sub.push('|');
        client
            .last_sub
            .push_str(&String::from_utf8_lossy(&req[1]).to_ascii_lowercase());
    }
    // Checked last, as in Redis: a command refused anyway is refused at
    // once. The master's stream and replicas' links are never held back.
    // CLIENT LIST shows the held-back command, as Redis does.
    if !client.is_master
        && shared
            .pause
            .holds(|| writes(cmd, client), client.clock.now_ms())
            .is_some()
    {
        return After::Postpone;
    }
    if let Some(multi) = &mut client.multi
        && cmd.flags & NOT_QUEUED == 0
    {
        multi.queue(index, req, &client.info.watch);
        reply.simple("QUEUED");
        return After::Continue;
    }
    // The master's stream runs as if no key had expired: expiry on a
    // replica is the master's DELs.
    let now = if client.is_master {
        i64::MIN
    } else {
        client.clock.now_ms()
    };
    let keys = CmdKeys { cmd, req };
    let mut ctx = Ctx {
        shared,
        client,
        reply,
        now,
        cmd,
        shards: Shards::new(&shared.keyspace),
        next: None,
        scripted: false,
    };
    if cmd.flags & WRITE != 0 {
        // The master's stream reaches sub-replicas as it came: it is not
        // recorded, but holds its keys like any write while clients are
        // blocked, so that they are served from what it did.
        let record = !ctx.client.is_master;
        ctx.shards.begin_write(Write {
            keys: &keys,
            record,
        });
    } else if cmd.keys.0 > 0
        && cmd.flags & KEYSPACE == 0
        && !ctx.client.is_master
        && shared.keyspace.feeding()
        && !shared.repl.is_replica()
    {
        // A read that meets an expired key on a master with replicas
        // deletes it and sends replicas the DEL, as Redis's lookups do: it
        // records like a write (a read that began just before feeding did
        // leaves the key hidden, for the next access or the expiry cycle).
        ctx.shards.begin_write(Write {
            keys: &keys,
            record: true,
        });
    } else {
        // A running snapshot need not encode what a read locks.
        ctx.shards.read_only();
    }
    call(&mut ctx, index, req);
    // A write that holds its keys (replicas fed, or clients blocked) serves
    // the clients it made ready, and puts what it changed in the stream,
    // before anyone else sees its keys: Redis's `handleClientsBlockedOnKeys`
    // after each command.
    if let Some(mut locked) = ctx.shards.release() {
        served_ready(ctx.client, &mut locked, serving_time(now));
        if let Some(offset) = shared.repl.append_recorded(locked.effects()) {
            ctx.client.woff = offset;
            ctx.client.aof_off = shared.repl.aof.appended();
        }
        // What serving blocked clients raised.
        crate::notify::flush(shared, locked.effects());
        crate::tracking::flush(shared, Some(ctx.client.id()), locked.effects());
    }
    // CLIENT CACHING counts for the next command only (a transaction's,
    // through EXEC), as in Redis.
    if let Some(mode) = &mut ctx.client.tracking
        && ctx.client.multi.is_none()
        && cmd.name != "client"
    {
        mode.caching = false;
    }
    match ctx.next {
        None => After::Continue,
        Some(Next::Close) => After::Close,
        Some(Next::Block(blocked)) => After::Block(blocked),
        Some(Next::Wait(wait)) => After::Wait(wait),
        Some(Next::Replica(psync)) => After::Replica(psync),
    }
}

/// A command's keys, for the keyspace to hold should the command turn out
/// to need them all (see `Shards::begin_write`).
struct CmdKeys<'r> {
    cmd: &'static Command,
    req: &'r Request,
}

impl store::keyspace::WriteKeys for CmdKeys<'_> {
    fn whole_keyspace(&self) -> bool {
        self.cmd.flags & KEYSPACE != 0
    }

    fn keys<'k>(&'k self, out: &mut Vec<&'k [u8]>) {
        command_keys(self.cmd, self.req, out);
    }
}

/// Serves the clients blocked on keys made ready; their pops count as a
/// change of the command that made them ready.
pub(crate) fn served_ready(
    client: &mut Client,
    locked: &mut crate::db::LockedRef<'_, '_>,
    now: i64,
) {
    let dirty = locked.effects().dirty();
    crate::blocking::serve_ready(locked, now);
    let changes = locked.effects().dirty().wrapping_sub(dirty);
    if changes > 0 {
        client.stats.changed_by(changes);
    }
}

/// When clients blocked on keys a command made ready are served after it:
/// then, as Redis serves them, so that a transaction that slept past a
/// deadline it set leaves them an expired key rather than an element. A
/// master's stream (`now` of `i64::MIN`) keeps its clock stopped.
pub(crate) fn serving_time(now: i64) -> i64 {
    if now == i64::MIN {
        now
    } else {
        crate::server::now_ms()
    }
}

/// Redis's error for a command a replica refuses while its link is down
/// and `replica-serve-stale-data` is `no`.
pub(crate) const MASTERDOWN: &str =
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";

/// Whether a stale replica still serves `req`: the table's [`OK_STALE`],
/// of the subcommand for a container.
fn stale_ok(cmd: &Command, req: &Request) -> bool {
    flags_of(cmd, req) & OK_STALE != 0
}

/// Redis's error for a command refused while the RDB file loads.
pub(crate) const LOADING: &str = "LOADING Redis is loading the dataset in memory";

/// Whether `req` is served while the RDB file loads: the table's
/// [`OK_LOADING`], of the subcommand for a container; but not DEBUG
/// RELOAD, which would save the half-loaded keyspace over the file.
fn loading_ok(cmd: &Command, req: &Request) -> bool {
    let reload = cmd.name == "debug"
        && req
            .get(1)
            .is_some_and(|s| s.eq_ignore_ascii_case(b"reload"));
    flags_of(cmd, req) & OK_LOADING != 0 && !reload
}

/// Whether a queued command may run on a stale replica.
pub(crate) fn stale_ok_at(index: usize, req: &Request) -> bool {
    stale_ok(&COMMANDS[index], req)
}

/// Redis's error for a write refused for want of replicas
/// (`min-replicas-to-write`).
pub(crate) const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";

/// Redis's error for a command refused over `maxmemory`.
pub(crate) const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Over `maxmemory`, Redis refuses commands that may grow memory and,
/// inside MULTI, queueing anything but EXEC, DISCARD, QUIT and RESET (EXEC
/// itself fails if it holds such a command).
fn refused_when_out_of_memory(cmd: &Command, flags: u32, client: &Client) -> bool {
    if client.multi.is_some() {
        !matches!(cmd.name, "exec" | "discard" | "quit" | "reset")
    } else {
        flags & DENYOOM != 0
    }
}

/// What Redis refuses while it cannot persist (`-MISCONF`): writes, EXEC
/// of a transaction holding one, and PING (so that monitoring notices).
fn refused_on_disk_error(cmd: &Command, flags: u32, client: &Client) -> bool {
    flags & WRITE != 0
        || cmd.name == "ping"
        || (cmd.name == "exec"
            && client
                .multi
                .as_ref()
                .is_some_and(|m| !m.all(|i, r| flags_of(&COMMANDS[i], r) & WRITE == 0)))
}

/// Runs the command at `index` of the table with `ctx`, counts the call,
/// and writes its error if it fails. EXEC calls it for each queued command.
fn call(ctx: &mut Ctx<'_>, index: usize, req: &Request) {
    let cmd = &COMMANDS[index];
    ctx.cmd = cmd;
    // MONITOR shows a script's command before the commands it runs.
    let monitored = ctx.shared.monitors.active() && monitored(ctx, cmd, req);
    if monitored && cmd.flags & SKIP_MONITOR != 0 {
        feed_monitors(ctx, req);
    }
    let dirty = ctx.shards.effects().dirty();
    let result = (cmd.handler)(ctx, req);
    if monitored && cmd.flags & SKIP_MONITOR == 0 {
        feed_monitors(ctx, req);
    }
    // Its keyspace events, in the order raised (inside EXEC and scripts,
    // each command's after it, as Redis sends them).
    crate::notify::flush(ctx.shared, ctx.shards.effects());
    // Client-side caching: the keys it changed are invalidated, the keys
    // a tracking client read remembered.
    let by = Some(ctx.client.id());
    crate::tracking::flush(ctx.shared, by, ctx.shards.effects());
    if ctx.client.tracking.is_some() && flags_of(cmd, req) & READONLY != 0 {
        tracking::remember(ctx, cmd, req);
    }
    let changed = ctx.shards.effects().dirty() != dirty;
    if ctx.shards.effects().recording() {
        record(ctx, cmd, req, result.is_ok(), changed);
    }
    if cmd.flags & WRITE != 0 {
        // Each change counts, as in Redis's `server.dirty` (an MSET of
        // three keys is three); a command Redis always propagates counts
        // at least one.
        let changes = ctx.shards.effects().dirty().wrapping_sub(dirty);
        if changes > 0 {
            ctx.client.stats.changed_by(changes);
        } else if forced(cmd, result.is_ok()) {
            ctx.client.stats.changed();
        }
    }
    let took = ctx.client.clock.tick();
    // A container's calls count on its subcommand (`config|get`).
    let stat = stat_index(index, req).unwrap_or(index);
    ctx.client.stats.call(&ctx.shared.stats, stat, took);
    if let Err(e) = result {
        let text = e.to_string();
        if !matches!(e, CmdError::Counted(_)) {
            ctx.shared.stats.error(text.as_bytes());
        }
        ctx.shared.stats.commands[stat].failed.fetch_add(1, Relaxed);
        ctx.reply.error(text);
    }
}

/// Whether MONITOR shows `cmd` (nobody monitors the AOF as it loads, and
/// administrative commands are never shown, as in Redis).
fn monitored(ctx: &Ctx<'_>, cmd: &Command, req: &Request) -> bool {
    flags_of(cmd, req) & ADMIN == 0 && !ctx.shared.loading.load(Relaxed)
}

/// Sends `req` to the monitors, as run by this client, or by a script.
fn feed_monitors(ctx: &Ctx<'_>, req: &Request) {
    let from = (!ctx.scripted).then_some(&*ctx.client.info);
    ctx.shared
        .monitors
        .feed(ctx.shared, from, ctx.client.db, req);
}

/// Whether Redis counts `cmd` as a change, and sends it to replicas, even
/// when it changed nothing.
fn forced(cmd: &Command, ok: bool) -> bool {
    ok && cmd.extra.propagate == Propagate::Always
}

/// Records what a command did for replicas: what it asked to be
/// propagated as, or, if it changed anything, its effect, as its row's
/// [`Propagate`] says.
fn record(ctx: &mut Ctx<'_>, cmd: &Command, req: &Request, ok: bool, changed: bool) {
    if let Some(ops) = ctx.shards.effects().take_rewrite() {
        ctx.shards.effects().extend(ops);
        return;
    }
    if cmd.flags & WRITE == 0 {
        return;
    }
    if !changed && !forced(cmd, ok) {
        return;
    }
    let db = ctx.client.db;
    let op = |args: &[&[u8]]| vec![Op::new(Some(db), args)];
    let ops = match cmd.extra.propagate {
        Propagate::SetDeadline { value, if_option }
            if !if_option || has_relative_or_absolute_expiry(req) =>
        {
            set_as_pxat(ctx, db, &req[1], &req[value])
        }
        Propagate::Deadline { keep_flags } => {
            let key = &req[1];
            match deadline_of(ctx, db, key) {
                None => op(&[b"DEL", key]),
                Some(None) => op(&[b"PERSIST", key]),
                // The EXPIRE family keeps its NX/XX/GT/LT flags, as Redis
                // sends them.
                Some(Some(at)) => {
                    let at = at.to_string();
                    let mut args = vec![&b"PEXPIREAT"[..], key, at.as_bytes()];
                    if keep_flags {
                        args.extend(req.iter().skip(3));
                    }
                    op(&args)
                }
            }
        }
        Propagate::Value => {
            let key = &req[1];
            match string_of(ctx, db, key) {
                Some(value) => op(&[b"SET", key, &value, b"KEEPTTL"]),
                None => op(&[b"DEL", key]),
            }
        }
        Propagate::As(name, args) => {
            let mut line = vec![name.as_bytes()];
            line.extend(req.iter().skip(1).take(args));
            op(&line)
        }
        Propagate::Itself | Propagate::Always | Propagate::SetDeadline { .. } => {
            vec![Op::from_iter(Some(db), req.iter())]
        }
    };
    ctx.shards.effects().extend(ops);
}

/// Whether a SET names a deadline (EX, PX, EXAT or PXAT).
fn has_relative_or_absolute_expiry(req: &Request) -> bool {
    req.iter().skip(3).any(|a| {
        [&b"ex"[..], b"px", b"exat", b"pxat"]
            .iter()
            .any(|o| a.eq_ignore_ascii_case(o))
    })
}

/// A SET with a deadline as replicas must run it: `SET key value PXAT ms`.
fn set_as_pxat(ctx: &mut Ctx<'_>, db: usize, key: &[u8], value: &[u8]) -> Vec<Op> {
    match deadline_of(ctx, db, key) {
        Some(Some(at)) => vec![Op::new(
            Some(db),
            &[b"SET", key, value, b"PXAT", at.to_string().as_bytes()],
        )],
        Some(None) => vec![Op::new(Some(db), &[b"SET", key, value])],
        None => vec![Op::new(Some(db), &[&b"DEL"[..], key])],
    }
}

/// The deadline of `key` as the command left it: `None` if the key is
/// gone, `Some(None)` if it has none. The command holds its shard.
fn deadline_of(ctx: &mut Ctx<'_>, db: usize, key: &[u8]) -> Option<Option<i64>> {
    let mut shard = ctx.shards.lock_key(key);
    shard.db(db).get(key, i64::MIN).map(|e| e.expire_at())
}

/// The string at `key` as the command left it.
fn string_of(ctx: &mut Ctx<'_>, db: usize, key: &[u8]) -> Option<bytes::Bytes> {
    let mut shard = ctx.shards.lock_key(key);
    match &shard.db(db).get(key, i64::MIN)?.value {
        store::value::Value::Str(s) => Some(s.to_bytes()),
        _ => None,
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

    /// Every command is found by its name in any case, and only by a name
    /// equal to it but for case: the hash sets the case bit of every byte,
    /// so names that differ in that bit of a non-letter (`@` and `` ` ``,
    /// `\x01` and `!`) hash alike and must still be told apart.
    #[test]
    fn every_command_is_found_in_any_case() {
        for (i, c) in COMMANDS.iter().enumerate() {
            let lower = c.name.as_bytes();
            assert_eq!(c.name, c.name.to_ascii_lowercase(), "names are lower case");
            let upper = c.name.to_ascii_uppercase().into_bytes();
            let mixed: Vec<u8> = lower
                .iter()
                .enumerate()
                .map(|(j, b)| {
                    if j % 2 == 0 {
                        b.to_ascii_uppercase()
                    } else {
                        *b
                    }
                })
                .collect();
            for name in [lower, &upper[..], &mixed[..]] {
                assert_eq!(lookup_index(name), Some(i), "{}", c.name);
            }
            let mut flipped = lower.to_vec();
            flipped.push(b'@');
            let mut other = lower.to_vec();
            other.push(b'`');
            assert_eq!(name_hash(&flipped), name_hash(&other));
            assert_eq!(lookup_index(&flipped), None);
            assert_eq!(lookup_index(&other), None);
        }
        assert_eq!(lookup_index(b""), None);
    }

    #[test]
    fn the_last_name_is_remembered_exactly() {
        let mut last = LastName::default();
        assert_eq!(last.lookup(b""), None);
        let get = lookup_index(b"get");
        assert_eq!(last.lookup(b"GET"), get);
        assert_eq!(last.lookup(b"GET"), get);
        assert_eq!(last.lookup(b"get"), get);
        assert_eq!(last.lookup(b"GEX"), None);
        assert_eq!(last.lookup(b"GEX"), None);
        assert_eq!(last.lookup(b"set"), lookup_index(b"set"));
        let long = b"averyveryverylongname";
        assert_eq!(last.lookup(long), None);
        assert_eq!(last.lookup(b"set"), lookup_index(b"set"));
        assert_eq!(last.lookup(b""), None);
    }

    /// What a stale replica and a loading server serve is the table's
    /// `stale` and `loading` flags (the integration test `commands`
    /// compares every row with Redis's COMMAND INFO), of the subcommand for
    /// a container.
    #[test]
    fn stale_and_loading_follow_the_subcommand() {
        let req = |line: &str| Request::from_args(&line.split(' ').collect::<Vec<_>>());
        let get = |name: &str| lookup(name.as_bytes()).expect("a command");
        assert!(stale_ok(get("object"), &req("object help")));
        assert!(!stale_ok(get("object"), &req("object encoding k")));
        assert!(stale_ok(get("config"), &req("config get x")));
        assert!(loading_ok(get("command"), &req("command")));
        assert!(!loading_ok(get("memory"), &req("memory usage k")));
        assert!(!stale_ok(get("get"), &req("get k")));
        assert!(loading_ok(get("debug"), &req("debug sleep 0")));
        assert!(!loading_ok(get("debug"), &req("debug reload")));
        assert!(loading_ok(get("function"), &req("function help")));
        assert!(!loading_ok(get("set"), &req("set k v")));
        assert_eq!(get("migrate").flag_names(), ["write", "movablekeys"]);
    }

    fn keys_of(line: &str) -> Vec<String> {
        let args: Vec<&str> = line.split(' ').collect();
        let req = Request::from_args(&args);
        let mut keys = Vec::new();
        command_keys(lookup(&req[0]).expect("known"), &req, &mut keys);
        keys.iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    #[test]
    fn transactions_lock_the_keys_handlers_use() {
        assert_eq!(keys_of("DEL a b c"), ["a", "b", "c"]);
        assert_eq!(keys_of("MSET a 1 b 2"), ["a", "b"]);
        assert_eq!(keys_of("MSET a 1 b"), ["a", "b"]);
        assert_eq!(keys_of("BLPOP a b 0"), ["a", "b"]);
        assert_eq!(keys_of("BLMOVE a b LEFT LEFT 0"), ["a", "b"]);
        assert_eq!(keys_of("LMPOP 2 a b LEFT"), ["a", "b"]);
        assert_eq!(keys_of("LMPOP 5 a b"), ["a", "b"]);
        assert_eq!(keys_of("LMPOP x a LEFT"), Vec::<String>::new());
        assert_eq!(keys_of("BLMPOP 0 1 a LEFT COUNT 2"), ["a"]);
        assert_eq!(keys_of("SINTERCARD 2 a b LIMIT 1"), ["a", "b"]);
        assert_eq!(keys_of("SINTERSTORE d a b"), ["d", "a", "b"]);
        assert_eq!(keys_of("OBJECT HELP"), Vec::<String>::new());
        assert_eq!(keys_of("OBJECT ENCODING k"), ["k"]);
        assert_eq!(keys_of("PING"), Vec::<String>::new());
        assert_eq!(keys_of("MIGRATE h 1 k 0 10"), ["k"]);
        assert_eq!(
            keys_of("MIGRATE h 1 k 0 10 COPY KEYS a"),
            Vec::<String>::new()
        );
        assert_eq!(
            keys_of("MIGRATE h 1  0 10 AUTH keys AUTH2 keys keys KEYS a b"),
            ["a", "b"]
        );
    }

    #[test]
    fn subcommands_belong_to_containers() {
        for (name, subs) in SUBCOMMANDS {
            let c = lookup(name.as_bytes()).expect("a command");
            assert!(c.flags & CONTAINER != 0, "{name}");
            assert!(subs.iter().all(|(_, arity, _)| *arity != 0));
        }
        for c in COMMANDS.iter().filter(|c| c.flags & CONTAINER != 0) {
            assert!(SUBCOMMANDS.iter().any(|(n, _)| *n == c.name), "{}", c.name);
        }
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

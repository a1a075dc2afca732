//! What the router knows about each command: where its keys are, whether it
//! writes or blocks, and how a request for it is planned.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;
use std::time::Duration;

use crate::RouteError;

/// Where a command's keys are among its arguments (the name is argument 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySpec {
    /// No keys.
    None,
    /// Redis's legacy `(first, last, step)` triple from `COMMAND INFO`: keys
    /// at `first`, `first + step`, ... up to `last`, where a negative `last`
    /// counts from the end (`-1` is the last argument, `-2` the one before,
    /// as for `BLPOP key... timeout`).
    Range {
        /// Index of the first key.
        first: usize,
        /// Index of the last key; negative counts from the end.
        last: isize,
        /// Distance between keys (`2` for `MSET key value ...`).
        step: usize,
    },
    /// A count of keys at `numkeys`, then that many keys (`EVAL script
    /// numkeys key...`, `LMPOP numkeys key...`), after a destination key at
    /// index 1 when `dest` is set (`ZUNIONSTORE dest numkeys key...`).
    NumKeys {
        /// Index of the count.
        numkeys: usize,
        /// Whether argument 1 is a destination key.
        dest: bool,
    },
    /// `SORT key [BY p] [LIMIT o c] [GET p]... [ASC|DESC] [ALPHA] [STORE dest]`:
    /// the key, and the destination when there is a `STORE`. (`BY` and `GET`
    /// patterns name other keys too; as in Redis Cluster, they are read from
    /// the key's own node.)
    Sort,
}

/// How the router turns a request for a command into sub-requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Route {
    /// Every key must live on one shard; the command goes there unchanged.
    /// With no keys at all (`EVAL` with `numkeys` 0) it goes to any shard.
    Keyed,
    /// Split by shard, each part carrying its own keys (and their values,
    /// for a step above one), then merged.
    Split(Reduce),
    /// No keys: any one node answers (`PING`, `TIME`, `INFO`).
    AnyNode,
    /// No keys: every shard runs it and the answers are merged (`DBSIZE`,
    /// `KEYS`, and `FLUSHALL` on every replica too).
    EveryShard(Reduce),
    /// `SCAN`: one shard at a time; the cursor says which.
    Scan,
    /// The router does not route it; the text says why and what to do.
    Refused(&'static str),
}

/// How the answers of a command's parts become one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reduce {
    /// Arrays with one value per key, put back in the caller's key order
    /// (`MGET`).
    Ordered,
    /// Integers, added (`DEL`, `EXISTS`, `DBSIZE`).
    Sum,
    /// Every part must succeed; the answer is the first part's (`MSET`,
    /// `FLUSHALL`).
    AllOk,
    /// Arrays, concatenated in shard order (`KEYS`).
    Concat,
}

/// When a blocking command gives up waiting, from its timeout argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// After this long.
    For(Duration),
    /// Never (a timeout of `0`).
    Forever,
}

/// The positions of a command's keys, in argument order, from
/// [`CommandInfo::key_iter`].
#[derive(Debug)]
pub(crate) enum KeyIter {
    /// Every `step`th argument of a range.
    Range(std::iter::StepBy<std::ops::RangeInclusive<usize>>),
    /// A destination, maybe, then a run of keys after their count.
    Listed(std::iter::Chain<std::option::IntoIter<usize>, std::ops::Range<usize>>),
    /// `SORT`'s key and its `STORE` destinations.
    Sort(std::vec::IntoIter<usize>),
}

impl Iterator for KeyIter {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            KeyIter::Range(r) => r.next(),
            KeyIter::Listed(l) => l.next(),
            KeyIter::Sort(s) => s.next(),
        }
    }

    // So that `key_positions` allocates its `Vec` once.
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            KeyIter::Range(r) => r.size_hint(),
            KeyIter::Listed(l) => l.size_hint(),
            KeyIter::Sort(s) => s.size_hint(),
        }
    }
}

// Flags.
const W: u8 = 1; // changes data or server state: every replica runs it
const R: u8 = 1 << 1; // only reads: one replica answers
const BL: u8 = 1 << 2; // blocks; the timeout is the last argument
const B1: u8 = 1 << 3; // blocks; the timeout is argument 1
const SUB: u8 = 1 << 4; // a container: `name sub` is looked up as `name|sub`

/// One command's entry in the table.
#[derive(Debug)]
pub struct CommandInfo {
    name: &'static str,
    arity: i32,
    flags: u8,
    keys: KeySpec,
    route: Route,
}

impl CommandInfo {
    /// The lowercase name; `container|subcommand` for subcommands.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Redis's arity, counting the name (and the container's name for a
    /// subcommand): `n` means exactly `n` arguments, `-n` at least `n`.
    pub fn arity(&self) -> i32 {
        self.arity
    }

    /// Whether `argc` arguments fit the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let need = self.arity.unsigned_abs() as usize;
        if self.arity >= 0 {
            argc == need
        } else {
            argc >= need
        }
    }

    /// Whether it changes data or server state, so every replica group must
    /// run it.
    pub fn is_write(&self) -> bool {
        self.flags & W != 0
    }

    /// Whether it only reads data, so one replica may answer.
    pub fn is_readonly(&self) -> bool {
        self.flags & R != 0
    }

    /// Whether it may block waiting for data (`BLPOP`, `BZMPOP`...).
    pub fn is_blocking(&self) -> bool {
        self.flags & (BL | B1) != 0
    }

    /// Whether it never has keys.
    pub fn is_keyless(&self) -> bool {
        self.keys == KeySpec::None
    }

    /// Where its keys are.
    pub fn keys(&self) -> KeySpec {
        self.keys
    }

    /// How the router plans it.
    pub fn route(&self) -> Route {
        self.route
    }

    /// The indices of the keys in `args` (the whole command, name first),
    /// in argument order. `PUBLISH` and `SPUBLISH` report their channel,
    /// which the router places like a key.
    ///
    /// `args` must fit the arity; [`resolve`] checks it.
    pub fn key_positions<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<Vec<usize>, RouteError> {
        Ok(self.key_iter(args)?.collect())
    }

    /// As [`key_positions`](CommandInfo::key_positions), one at a time: the
    /// router places a single-key command without collecting its one key.
    pub(crate) fn key_iter<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<KeyIter, RouteError> {
        let n = args.len();
        let bad = |reason| RouteError::BadArguments {
            command: self.name.to_owned(),
            reason,
        };
        match self.keys {
            KeySpec::None => Ok(KeyIter::Listed(None.into_iter().chain(0..0))),
            KeySpec::Range { first, last, step } => {
                let last = if last < 0 {
                    n as isize + last
                } else {
                    last.min(n as isize - 1)
                };
                if last < first as isize {
                    return Ok(KeyIter::Listed(None.into_iter().chain(0..0)));
                }
                let (last, step) = (last as usize, step.max(1));
                // `MSET k v k` would be half a pair: Redis calls it arity.
                if (last + 1 - first) % step != 0 {
                    return Err(RouteError::WrongArity(self.name.to_owned()));
                }
                Ok(KeyIter::Range((first..=last).step_by(step)))
            }
            KeySpec::NumKeys { numkeys, dest } => {
                let count = args
                    .get(numkeys)
                    .and_then(|a| std::str::from_utf8(a.as_ref()).ok())
                    .and_then(|s| s.parse::<usize>().ok())
                    .ok_or(bad("numkeys is not a non-negative integer"))?;
                if count > n - numkeys - 1 {
                    return Err(bad("numkeys is greater than the number of arguments"));
                }
                let dest = dest.then_some(1);
                Ok(KeyIter::Listed(
                    dest.into_iter().chain(numkeys + 1..numkeys + 1 + count),
                ))
            }
            KeySpec::Sort if n < 2 => Ok(KeyIter::Listed(None.into_iter().chain(0..0))),
            KeySpec::Sort => {
                let mut keys = vec![1];
                let mut i = 2;
                while i < n {
                    let arg = args[i].as_ref();
                    i += if arg.eq_ignore_ascii_case(b"limit") {
                        3
                    } else if arg.eq_ignore_ascii_case(b"by") || arg.eq_ignore_ascii_case(b"get") {
                        2
                    } else if arg.eq_ignore_ascii_case(b"store") {
                        if i + 1 < n {
                            keys.push(i + 1);
                        }
                        2
                    } else {
                        1
                    };
                }
                Ok(KeyIter::Sort(keys.into_iter()))
            }
        }
    }

    /// How long a blocking command may wait, from its timeout argument (in
    /// seconds, fractions allowed). `None` when it does not block, or the
    /// timeout is not a number or negative, which the node refuses at once.
    /// Zero, and timeouts too long for a [`Duration`], wait forever.
    pub fn block<A: AsRef<[u8]>>(&self, args: &[A]) -> Option<Block> {
        let at = if self.flags & BL != 0 {
            args.len().checked_sub(1)?
        } else if self.flags & B1 != 0 {
            1
        } else {
            return None;
        };
        let secs: f64 = std::str::from_utf8(args.get(at)?.as_ref())
            .ok()?
            .parse()
            .ok()?;
        if secs.is_nan() || secs < 0.0 {
            None
        } else if secs == 0.0 {
            Some(Block::Forever)
        } else {
            Some(Duration::try_from_secs_f64(secs).map_or(Block::Forever, Block::For))
        }
    }
}

/// Looks a command up by name, in any case. Subcommands are found as
/// `container|subcommand` (`config|get`).
pub fn lookup(name: &[u8]) -> Option<&'static CommandInfo> {
    let mut buf = [0u8; 48];
    let lower = buf.get_mut(..name.len())?;
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    TABLE.get(std::str::from_utf8(lower).ok()?).copied()
}

/// Finds the entry for a whole command (name first), descending into a
/// container's subcommand, and checks the arity.
pub fn resolve<A: AsRef<[u8]>>(args: &[A]) -> Result<&'static CommandInfo, RouteError> {
    let name = args.first().ok_or(RouteError::EmptyCommand)?.as_ref();
    let base = lookup(name).ok_or_else(|| RouteError::UnknownCommand(printable(name)))?;
    let info = match args.get(1) {
        Some(sub) if base.flags & SUB != 0 => {
            let mut full = Vec::with_capacity(name.len() + 1 + sub.as_ref().len());
            full.extend_from_slice(name);
            full.push(b'|');
            full.extend_from_slice(sub.as_ref());
            lookup(&full).ok_or_else(|| RouteError::UnknownCommand(printable(&full)))?
        }
        _ => base,
    };
    if !info.arity_ok(args.len()) {
        return Err(RouteError::WrongArity(info.name.to_owned()));
    }
    Ok(info)
}

/// A command name for an error message: lowercase, lossy, and short.
fn printable(name: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(&name[..name.len().min(64)]).to_lowercase();
    if name.len() > 64 {
        s.push_str("...");
    }
    s
}

/// Every entry, by lowercase name.
static TABLE: LazyLock<
    HashMap<&'static str, &'static CommandInfo, BuildHasherDefault<NameHasher>>,
> = LazyLock::new(|| COMMANDS.iter().map(|c| (c.name, c)).collect());

/// FNV-1a: the table's keys are a few hundred short names fixed at compile
/// time, so SipHash's defence against chosen keys buys nothing, and every
/// request pays for a lookup.
#[derive(Debug)]
struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> NameHasher {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The whole table, in family order.
pub fn commands() -> impl Iterator<Item = &'static CommandInfo> {
    COMMANDS.iter()
}

const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u8,
    keys: KeySpec,
    route: Route,
) -> CommandInfo {
    CommandInfo {
        name,
        arity,
        flags,
        keys,
        route,
    }
}

const fn range(first: usize, last: isize, step: usize) -> KeySpec {
    KeySpec::Range { first, last, step }
}

const NONE: KeySpec = KeySpec::None;
const K1: KeySpec = range(1, 1, 1);
const K2: KeySpec = range(2, 2, 1);
const K12: KeySpec = range(1, 2, 1);
const KALL: KeySpec = range(1, -1, 1);
const KBLOCK: KeySpec = range(1, -2, 1);
const NK1: KeySpec = KeySpec::NumKeys {
    numkeys: 1,
    dest: false,
};
const NK2: KeySpec = KeySpec::NumKeys {
    numkeys: 2,
    dest: false,
};
const NKDEST: KeySpec = KeySpec::NumKeys {
    numkeys: 2,
    dest: true,
};

use Reduce::{AllOk, Concat, Ordered, Sum};
use Route::{AnyNode, EveryShard, Keyed, Refused, Scan, Split};

const CONN: Route =
    Refused("connection state belongs to the driver, which sets it up on each connection");
const DEDICATED: Route = Refused("it needs a dedicated connection");
const NODE: Route = Refused("it acts on one node's own state; send it with Router::submit_to");
const TX: Route = Refused("transactions go through Router::submit_transaction");
const SUBCMD: Route = Refused("it needs a subcommand");

/// Redis 7.0's commands for connections, the server, keys, strings, bitmaps,
/// HyperLogLog, lists, hashes, sets, sorted sets, pub/sub, transactions and
/// scripting.
static COMMANDS: &[CommandInfo] = &[
    // connection
    cmd("auth", -2, 0, NONE, CONN),
    cmd("client", -2, 0, NONE, CONN),
    cmd("echo", 2, 0, NONE, AnyNode),
    cmd("hello", -1, 0, NONE, CONN),
    cmd("ping", -1, 0, NONE, AnyNode),
    cmd("quit", -1, 0, NONE, CONN),
    cmd("reset", 1, 0, NONE, CONN),
    cmd("select", 2, 0, NONE, CONN),
    // server
    cmd("acl", -2, 0, NONE, NODE),
    cmd("bgrewriteaof", 1, 0, NONE, NODE),
    cmd("bgsave", -1, 0, NONE, NODE),
    cmd("command", -1, SUB, NONE, AnyNode),
    cmd("command|count", 2, 0, NONE, AnyNode),
    cmd("command|docs", -2, 0, NONE, AnyNode),
    cmd("command|getkeys", -3, 0, NONE, AnyNode),
    cmd("command|getkeysandflags", -3, 0, NONE, AnyNode),
    cmd("command|help", 2, 0, NONE, AnyNode),
    cmd("command|info", -2, 0, NONE, AnyNode),
    cmd("command|list", -2, 0, NONE, AnyNode),
    cmd("config", -2, SUB, NONE, SUBCMD),
    cmd("config|get", -3, 0, NONE, AnyNode),
    cmd("config|help", 2, 0, NONE, AnyNode),
    cmd("config|resetstat", 2, W, NONE, EveryShard(AllOk)),
    cmd("config|rewrite", 2, W, NONE, EveryShard(AllOk)),
    cmd("config|set", -4, W, NONE, EveryShard(AllOk)),
    cmd("dbsize", 1, R, NONE, EveryShard(Sum)),
    cmd("debug", -2, 0, NONE, NODE),
    cmd("failover", -1, 0, NONE, NODE),
    cmd("flushall", -1, W, NONE, EveryShard(AllOk)),
    cmd("flushdb", -1, W, NONE, EveryShard(AllOk)),
    cmd("info", -1, 0, NONE, AnyNode),
    cmd("lastsave", 1, 0, NONE, AnyNode),
    cmd("latency", -2, 0, NONE, NODE),
    cmd("lolwut", -1, R, NONE, AnyNode),
    cmd("memory", -2, SUB, NONE, SUBCMD),
    cmd("memory|doctor", 2, 0, NONE, NODE),
    cmd("memory|help", 2, 0, NONE, AnyNode),
    cmd("memory|malloc-stats", 2, 0, NONE, NODE),
    cmd("memory|purge", 2, 0, NONE, NODE),
    cmd("memory|stats", 2, 0, NONE, NODE),
    cmd("memory|usage", -3, R, K2, Keyed),
    cmd("module", -2, 0, NONE, NODE),
    cmd("monitor", 1, 0, NONE, DEDICATED),
    cmd("psync", -3, 0, NONE, NODE),
    cmd("replicaof", 3, 0, NONE, NODE),
    cmd("role", 1, 0, NONE, NODE),
    cmd("save", 1, 0, NONE, NODE),
    cmd("shutdown", -1, 0, NONE, NODE),
    cmd("slaveof", 3, 0, NONE, NODE),
    cmd("slowlog", -2, 0, NONE, NODE),
    cmd("swapdb", 3, W, NONE, EveryShard(AllOk)),
    cmd("sync", 1, 0, NONE, NODE),
    cmd("time", 1, 0, NONE, AnyNode),
    // keys
    cmd("copy", -3, W, K12, Keyed),
    cmd("del", -2, W, KALL, Split(Sum)),
    cmd("dump", 2, R, K1, Keyed),
    cmd("exists", -2, R, KALL, Split(Sum)),
    cmd("expire", -3, W, K1, Keyed),
    cmd("expireat", -3, W, K1, Keyed),
    cmd("expiretime", 2, R, K1, Keyed),
    cmd("keys", 2, R, NONE, EveryShard(Concat)),
    cmd("migrate", -6, 0, NONE, NODE),
    cmd("move", 3, W, K1, Keyed),
    cmd("object", -2, SUB, NONE, SUBCMD),
    cmd("object|encoding", 3, R, K2, Keyed),
    cmd("object|freq", 3, R, K2, Keyed),
    cmd("object|help", 2, 0, NONE, AnyNode),
    cmd("object|idletime", 3, R, K2, Keyed),
    cmd("object|refcount", 3, R, K2, Keyed),
    cmd("persist", 2, W, K1, Keyed),
    cmd("pexpire", -3, W, K1, Keyed),
    cmd("pexpireat", -3, W, K1, Keyed),
    cmd("pexpiretime", 2, R, K1, Keyed),
    cmd("pttl", 2, R, K1, Keyed),
    cmd("randomkey", 1, R, NONE, AnyNode),
    cmd("rename", 3, W, K12, Keyed),
    cmd("renamenx", 3, W, K12, Keyed),
    cmd("restore", -4, W, K1, Keyed),
    cmd("scan", -2, R, NONE, Scan),
    cmd("sort", -2, W, KeySpec::Sort, Keyed),
    cmd("sort_ro", -2, R, K1, Keyed),
    cmd("touch", -2, R, KALL, Split(Sum)),
    cmd("ttl", 2, R, K1, Keyed),
    cmd("type", 2, R, K1, Keyed),
    cmd("unlink", -2, W, KALL, Split(Sum)),
    cmd("wait", 3, 0, NONE, NODE),
    // strings
    cmd("append", 3, W, K1, Keyed),
    cmd("decr", 2, W, K1, Keyed),
    cmd("decrby", 3, W, K1, Keyed),
    cmd("get", 2, R, K1, Keyed),
    cmd("getdel", 2, W, K1, Keyed),
    cmd("getex", -2, W, K1, Keyed),
    cmd("getrange", 4, R, K1, Keyed),
    cmd("getset", 3, W, K1, Keyed),
    cmd("incr", 2, W, K1, Keyed),
    cmd("incrby", 3, W, K1, Keyed),
    cmd("incrbyfloat", 3, W, K1, Keyed),
    cmd("lcs", -3, R, K12, Keyed),
    cmd("mget", -2, R, KALL, Split(Ordered)),
    cmd("mset", -3, W, range(1, -1, 2), Split(AllOk)),
    // All or nothing: it cannot be split without losing that.
    cmd("msetnx", -3, W, range(1, -1, 2), Keyed),
    cmd("psetex", 4, W, K1, Keyed),
    cmd("set", -3, W, K1, Keyed),
    cmd("setex", 4, W, K1, Keyed),
    cmd("setnx", 3, W, K1, Keyed),
    cmd("setrange", 4, W, K1, Keyed),
    cmd("strlen", 2, R, K1, Keyed),
    cmd("substr", 4, R, K1, Keyed),
    // bitmaps
    cmd("bitcount", -2, R, K1, Keyed),
    cmd("bitfield", -2, W, K1, Keyed),
    cmd("bitfield_ro", -2, R, K1, Keyed),
    cmd("bitop", -4, W, range(2, -1, 1), Keyed),
    cmd("bitpos", -3, R, K1, Keyed),
    cmd("getbit", 3, R, K1, Keyed),
    cmd("setbit", 4, W, K1, Keyed),
    // HyperLogLog: a count over several keys is of their union, not a sum.
    cmd("pfadd", -2, W, K1, Keyed),
    cmd("pfcount", -2, R, KALL, Keyed),
    cmd("pfdebug", 3, 0, NONE, NODE),
    cmd("pfmerge", -2, W, KALL, Keyed),
    cmd("pfselftest", 1, 0, NONE, AnyNode),
    // lists
    cmd("blmove", 6, W | BL, K12, Keyed),
    cmd("blmpop", -5, W | B1, NK2, Keyed),
    cmd("blpop", -3, W | BL, KBLOCK, Keyed),
    cmd("brpop", -3, W | BL, KBLOCK, Keyed),
    cmd("brpoplpush", 4, W | BL, K12, Keyed),
    cmd("lindex", 3, R, K1, Keyed),
    cmd("linsert", 5, W, K1, Keyed),
    cmd("llen", 2, R, K1, Keyed),
    cmd("lmove", 5, W, K12, Keyed),
    cmd("lmpop", -4, W, NK1, Keyed),
    cmd("lpop", -2, W, K1, Keyed),
    cmd("lpos", -3, R, K1, Keyed),
    cmd("lpush", -3, W, K1, Keyed),
    cmd("lpushx", -3, W, K1, Keyed),
    cmd("lrange", 4, R, K1, Keyed),
    cmd("lrem", 4, W, K1, Keyed),
    cmd("lset", 4, W, K1, Keyed),
    cmd("ltrim", 4, W, K1, Keyed),
    cmd("rpop", -2, W, K1, Keyed),
    cmd("rpoplpush", 3, W, K12, Keyed),
    cmd("rpush", -3, W, K1, Keyed),
    cmd("rpushx", -3, W, K1, Keyed),
    // hashes
    cmd("hdel", -3, W, K1, Keyed),
    cmd("hexists", 3, R, K1, Keyed),
    cmd("hget", 3, R, K1, Keyed),
    cmd("hgetall", 2, R, K1, Keyed),
    cmd("hincrby", 4, W, K1, Keyed),
    cmd("hincrbyfloat", 4, W, K1, Keyed),
    cmd("hkeys", 2, R, K1, Keyed),
    cmd("hlen", 2, R, K1, Keyed),
    cmd("hmget", -3, R, K1, Keyed),
    cmd("hmset", -4, W, K1, Keyed),
    cmd("hrandfield", -2, R, K1, Keyed),
    cmd("hscan", -3, R, K1, Keyed),
    cmd("hset", -4, W, K1, Keyed),
    cmd("hsetnx", 4, W, K1, Keyed),
    cmd("hstrlen", 3, R, K1, Keyed),
    cmd("hvals", 2, R, K1, Keyed),
    // sets
    cmd("sadd", -3, W, K1, Keyed),
    cmd("scard", 2, R, K1, Keyed),
    cmd("sdiff", -2, R, KALL, Keyed),
    cmd("sdiffstore", -3, W, KALL, Keyed),
    cmd("sinter", -2, R, KALL, Keyed),
    cmd("sintercard", -3, R, NK1, Keyed),
    cmd("sinterstore", -3, W, KALL, Keyed),
    cmd("sismember", 3, R, K1, Keyed),
    cmd("smembers", 2, R, K1, Keyed),
    cmd("smismember", -3, R, K1, Keyed),
    cmd("smove", 4, W, K12, Keyed),
    cmd("spop", -2, W, K1, Keyed),
    cmd("srandmember", -2, R, K1, Keyed),
    cmd("srem", -3, W, K1, Keyed),
    cmd("sscan", -3, R, K1, Keyed),
    cmd("sunion", -2, R, KALL, Keyed),
    cmd("sunionstore", -3, W, KALL, Keyed),
    // sorted sets
    cmd("bzmpop", -5, W | B1, NK2, Keyed),
    cmd("bzpopmax", -3, W | BL, KBLOCK, Keyed),
    cmd("bzpopmin", -3, W | BL, KBLOCK, Keyed),
    cmd("zadd", -4, W, K1, Keyed),
    cmd("zcard", 2, R, K1, Keyed),
    cmd("zcount", 4, R, K1, Keyed),
    cmd("zdiff", -3, R, NK1, Keyed),
    cmd("zdiffstore", -4, W, NKDEST, Keyed),
    cmd("zincrby", 4, W, K1, Keyed),
    cmd("zinter", -3, R, NK1, Keyed),
    cmd("zintercard", -3, R, NK1, Keyed),
    cmd("zinterstore", -4, W, NKDEST, Keyed),
    cmd("zlexcount", 4, R, K1, Keyed),
    cmd("zmpop", -4, W, NK1, Keyed),
    cmd("zmscore", -3, R, K1, Keyed),
    cmd("zpopmax", -2, W, K1, Keyed),
    cmd("zpopmin", -2, W, K1, Keyed),
    cmd("zrandmember", -2, R, K1, Keyed),
    cmd("zrange", -4, R, K1, Keyed),
    cmd("zrangebylex", -4, R, K1, Keyed),
    cmd("zrangebyscore", -4, R, K1, Keyed),
    cmd("zrangestore", -5, W, K12, Keyed),
    cmd("zrank", -3, R, K1, Keyed),
    cmd("zrem", -3, W, K1, Keyed),
    cmd("zremrangebylex", 4, W, K1, Keyed),
    cmd("zremrangebyrank", 4, W, K1, Keyed),
    cmd("zremrangebyscore", 4, W, K1, Keyed),
    cmd("zrevrange", -4, R, K1, Keyed),
    cmd("zrevrangebylex", -4, R, K1, Keyed),
    cmd("zrevrangebyscore", -4, R, K1, Keyed),
    cmd("zrevrank", -3, R, K1, Keyed),
    cmd("zscan", -3, R, K1, Keyed),
    cmd("zscore", 3, R, K1, Keyed),
    cmd("zunion", -3, R, NK1, Keyed),
    cmd("zunionstore", -4, W, NKDEST, Keyed),
    // pub/sub. A channel is placed like a key. ember-client sends PUBLISH
    // and SPUBLISH to the channel's shard in every group and subscribes in
    // one (crates/client/src/pubsub.rs); planned here, they go to one
    // replica, as a read.
    cmd("psubscribe", -2, 0, NONE, DEDICATED),
    cmd("publish", 3, 0, K1, Keyed),
    cmd("pubsub", -2, 0, NONE, NODE),
    cmd("punsubscribe", -1, 0, NONE, DEDICATED),
    cmd("spublish", 3, 0, K1, Keyed),
    cmd("ssubscribe", -2, 0, NONE, DEDICATED),
    cmd("subscribe", -2, 0, NONE, DEDICATED),
    cmd("sunsubscribe", -1, 0, NONE, DEDICATED),
    cmd("unsubscribe", -1, 0, NONE, DEDICATED),
    // transactions
    cmd("discard", 1, 0, NONE, TX),
    cmd("exec", 1, 0, NONE, TX),
    cmd("multi", 1, 0, NONE, TX),
    cmd("unwatch", 1, 0, NONE, DEDICATED),
    cmd("watch", -2, 0, NONE, DEDICATED),
    // scripting: scripts and functions are loaded on every node, so any
    // node can run them.
    cmd("eval", -3, W, NK2, Keyed),
    cmd("eval_ro", -3, R, NK2, Keyed),
    cmd("evalsha", -3, W, NK2, Keyed),
    cmd("evalsha_ro", -3, R, NK2, Keyed),
    cmd("fcall", -3, W, NK2, Keyed),
    cmd("fcall_ro", -3, R, NK2, Keyed),
    cmd("function", -2, SUB, NONE, SUBCMD),
    cmd("function|delete", 3, W, NONE, EveryShard(AllOk)),
    cmd("function|dump", 2, R, NONE, AnyNode),
    cmd("function|flush", -2, W, NONE, EveryShard(AllOk)),
    cmd("function|help", 2, 0, NONE, AnyNode),
    cmd("function|kill", 2, 0, NONE, NODE),
    cmd("function|list", -2, R, NONE, AnyNode),
    cmd("function|load", -3, W, NONE, EveryShard(AllOk)),
    cmd("function|restore", -3, W, NONE, EveryShard(AllOk)),
    cmd("function|stats", 2, 0, NONE, NODE),
    cmd("script", -2, SUB, NONE, SUBCMD),
    cmd("script|exists", -3, R, NONE, AnyNode),
    cmd("script|flush", -2, W, NONE, EveryShard(AllOk)),
    cmd("script|help", 2, 0, NONE, AnyNode),
    cmd("script|kill", 2, 0, NONE, NODE),
    cmd("script|load", 3, W, NONE, EveryShard(AllOk)),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(cmd: &str) -> Result<Vec<usize>, RouteError> {
        let args: Vec<&str> = cmd.split(' ').collect();
        resolve(&args)?.key_positions(&args)
    }

    #[test]
    fn table_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for c in commands() {
            assert!(seen.insert(c.name), "{} twice", c.name);
            assert_eq!(c.name, c.name.to_lowercase());
            assert!(c.name.len() <= 48);
            assert!(!(c.is_write() && c.is_readonly()), "{}", c.name);
            if let Some((base, _)) = c.name.split_once('|') {
                assert!(
                    lookup(base.as_bytes()).unwrap().flags & SUB != 0,
                    "{}",
                    c.name
                );
            }
            // Split and fan-out routes need keyless or key-only argument lists.
            if let Split(_) = c.route {
                assert!(matches!(
                    c.keys,
                    KeySpec::Range {
                        first: 1,
                        last: -1,
                        ..
                    }
                ));
            }
            if matches!(c.route, AnyNode | EveryShard(_) | Scan) {
                assert!(c.is_keyless(), "{}", c.name);
            }
        }
        assert!(seen.len() > 200);
    }

    #[test]
    fn lookup_any_case() {
        assert_eq!(lookup(b"GeT").unwrap().name(), "get");
        assert!(lookup(b"nope").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
        assert!(lookup(b"\xff\xfe").is_none());
        assert_eq!(
            resolve(&["CONFIG", "Get", "maxmemory"]).unwrap().name(),
            "config|get"
        );
        assert_eq!(resolve(&["COMMAND"]).unwrap().name(), "command");
        assert_eq!(
            resolve(&["config", "nope"]).unwrap_err(),
            RouteError::UnknownCommand("config|nope".into())
        );
        assert_eq!(
            resolve(&["config"]).unwrap_err(),
            RouteError::WrongArity("config".into())
        );
        assert_eq!(resolve::<&str>(&[]).unwrap_err(), RouteError::EmptyCommand);
        assert_eq!(
            resolve(&["get"]).unwrap_err().to_string(),
            "wrong number of arguments for 'get' command"
        );
        assert_eq!(
            resolve(&["FOO", "x"]).unwrap_err().to_string(),
            "unknown command 'foo'"
        );
    }

    #[test]
    fn key_positions() {
        assert_eq!(keys("get k").unwrap(), [1]);
        assert_eq!(keys("ping").unwrap(), [] as [usize; 0]);
        assert_eq!(keys("mget a b c").unwrap(), [1, 2, 3]);
        assert_eq!(keys("mset a 1 b 2").unwrap(), [1, 3]);
        assert_eq!(
            keys("mset a 1 b").unwrap_err(),
            RouteError::WrongArity("mset".into())
        );
        assert_eq!(keys("blpop a b 0").unwrap(), [1, 2]);
        assert_eq!(keys("brpoplpush a b 5").unwrap(), [1, 2]);
        assert_eq!(keys("bitop and dest a b").unwrap(), [2, 3, 4]);
        assert_eq!(keys("eval s 2 a b x y").unwrap(), [3, 4]);
        assert_eq!(keys("eval s 0").unwrap(), [] as [usize; 0]);
        assert_eq!(keys("lmpop 2 a b left").unwrap(), [2, 3]);
        assert_eq!(keys("blmpop 0 2 a b left").unwrap(), [3, 4]);
        assert_eq!(keys("zunionstore d 2 a b weights 1 2").unwrap(), [1, 3, 4]);
        assert_eq!(keys("sintercard 1 a limit 3").unwrap(), [2]);
        assert_eq!(keys("object encoding k").unwrap(), [2]);
        assert_eq!(keys("memory usage k samples 5").unwrap(), [2]);
        assert_eq!(
            keys("sort k by w_* limit 0 10 get store store d").unwrap(),
            [1, 10]
        );
        assert_eq!(keys("sort k alpha").unwrap(), [1]);
        assert_eq!(keys("sort k STORE").unwrap(), [1]);
        let bad = RouteError::BadArguments {
            command: "eval".into(),
            reason: "numkeys is greater than the number of arguments",
        };
        assert_eq!(keys("eval s 3 a b").unwrap_err(), bad);
        assert!(matches!(
            keys("eval s -1 a"),
            Err(RouteError::BadArguments { .. })
        ));
        assert!(matches!(
            keys("zunion x a"),
            Err(RouteError::BadArguments { .. })
        ));
    }

    #[test]
    fn flags_and_blocking() {
        let info = |n: &str| lookup(n.as_bytes()).unwrap();
        assert!(info("get").is_readonly() && !info("get").is_write());
        assert!(info("set").is_write());
        assert!(info("ping").is_keyless());
        assert!(info("blpop").is_blocking() && !info("lpop").is_blocking());
        assert_eq!(
            info("blpop").block(&["blpop", "a", "1.5"]),
            Some(Block::For(Duration::from_millis(1500)))
        );
        assert_eq!(
            info("blpop").block(&["blpop", "a", "0"]),
            Some(Block::Forever)
        );
        assert_eq!(
            info("bzmpop").block(&["bzmpop", "2", "1", "z", "min"]),
            Some(Block::For(Duration::from_secs(2)))
        );
        assert_eq!(info("blpop").block(&["blpop", "a", "x"]), None);
        assert_eq!(info("blpop").block(&["blpop", "a", "-1"]), None);
        assert_eq!(
            info("blpop").block(&["blpop", "a", "1e300"]),
            Some(Block::Forever)
        );
        assert_eq!(info("get").block(&["get", "a"]), None);
    }
}

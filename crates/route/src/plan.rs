//! Planning a request into per-shard parts, and merging the parts' answers.
//!
//! Both are pure functions of the topology and the arguments, so a driver
//! can use them without a [`Router`](crate::Router), and they can be tested
//! and benchmarked alone.

use bytes::Bytes;
use resp::Frame;

use crate::command::{Block, CommandInfo, Reduce, Route, resolve};
use crate::{RouteError, ShardId, Topology};

/// A request, cut into the parts that go to different shards, and how their
/// answers combine.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One part per shard involved, in the order [`Merge`] expects them.
    pub parts: Vec<Part>,
    /// How the parts' answers become the request's answer.
    pub merge: Merge,
}

/// The commands one shard must run.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The shard, or `None` when any shard will do (`PING`, `TIME`).
    pub shard: Option<ShardId>,
    /// One replica, or every replica group.
    pub target: Target,
    /// The commands, written back to back on one connection. There is one,
    /// except for a transaction: `MULTI`, its commands, `EXEC`. The part's
    /// answer is the answer to the last.
    pub commands: Vec<Vec<Bytes>>,
    /// How long a blocking command may wait before it answers, on top of
    /// the usual timeout.
    pub block: Option<Block>,
}

/// Which replicas of a shard run a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Any one replica answers: reads, and keyless commands like `PING`.
    OneReplica,
    /// Every replica group runs it, subject to the write policy: writes.
    EveryReplica,
}

/// How the answers of a plan's parts, in part order, become one answer.
///
/// A Redis error reply from any part is the answer as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Merge {
    /// One part, whose answer is the answer.
    Single,
    /// `MGET`: each part answered an array with a value per key; part `p`'s
    /// values go to `positions[p]` in an array of `len`.
    Ordered {
        /// The number of keys asked for.
        len: usize,
        /// For each part, where its values go.
        positions: Vec<Vec<usize>>,
    },
    /// Integers, added.
    Sum,
    /// Every part must succeed; the answer is the first part's.
    AllOk,
    /// Arrays, concatenated.
    Concat,
    /// `SCAN` on one shard: the node's cursor is turned back into the
    /// router's (see [`plan`]).
    Scan {
        /// The shard scanned.
        shard: ShardId,
        /// The number of shards, `S`.
        shards: u32,
    },
}

/// Plans a request: finds the command, its keys and their shards, and cuts
/// it into parts.
///
/// - Single-key commands, and multi-key ones whose keys share a shard, go to
///   that shard unchanged. Multi-key commands that cannot be split (`RENAME`,
///   `SMOVE`, `BLPOP`...) fail with [`RouteError::CrossShard`] when their keys
///   are spread.
/// - `MGET`, `MSET`, `DEL`, `EXISTS`, `UNLINK` and `TOUCH` are split by shard,
///   each part keeping its keys in the caller's order.
/// - `DBSIZE`, `KEYS`, `FLUSHALL`, `SCRIPT LOAD`... run on every shard.
/// - `SCAN`'s cursor names the shard too: cursor `c` is node cursor `c / S`
///   on shard `c % S`. The first call (`0`) scans shard 0 from its start;
///   when a shard is done the next cursor is the next shard's number (node
///   cursor 0), and `0` comes back only when the last shard is done. Redis
///   cursors stay far below `2^64 / S`, so the router's cursor fits the
///   `u64` that clients expect.
/// - Unknown commands, and those the table refuses, are errors: a router
///   that guessed would send them to the wrong place.
pub fn plan(topology: &Topology, args: Vec<Bytes>) -> Result<Plan, RouteError> {
    Ok(match plan_request(topology, &args)? {
        Planned::One {
            shard,
            target,
            block,
            merge,
            rewritten,
        } => Plan {
            parts: vec![Part {
                shard,
                target,
                commands: vec![rewritten.unwrap_or(args)],
                block,
            }],
            merge,
        },
        Planned::Many(plan) => plan,
    })
}

/// A [`Plan`] as the router takes it. Nearly every request is one command
/// for one shard, sent as it came; the router takes that without a `Vec`
/// of parts, or a copy of the arguments.
#[derive(Debug)]
pub(crate) enum Planned {
    /// One part: the command as it came, or `rewritten` (`SCAN`'s cursor).
    One {
        shard: Option<ShardId>,
        target: Target,
        block: Option<Block>,
        merge: Merge,
        rewritten: Option<Vec<Bytes>>,
    },
    /// Anything else.
    Many(Plan),
}

/// [`plan`], borrowing the arguments.
pub(crate) fn plan_request(topology: &Topology, args: &[Bytes]) -> Result<Planned, RouteError> {
    let info = resolve(args)?;
    let target = target(info);
    match info.route() {
        Route::Refused(reason) => Err(unsupported(info, reason)),
        Route::AnyNode => Ok(single(None, target, info, args)),
        Route::Keyed => {
            let keys = info.key_iter(args)?.map(|i| &args[i][..]);
            let shard = common_shard(topology, info.name(), keys)?;
            Ok(single(shard, target, info, args))
        }
        Route::Split(reduce) => split(topology, info, args, reduce),
        Route::EveryShard(reduce) => Ok(Planned::Many(Plan {
            parts: (0..topology.shards())
                .map(|s| Part {
                    shard: Some(ShardId(s)),
                    target,
                    commands: vec![args.to_vec()],
                    block: None,
                })
                .collect(),
            merge: match reduce {
                Reduce::Sum => Merge::Sum,
                Reduce::AllOk => Merge::AllOk,
                Reduce::Concat | Reduce::Ordered => Merge::Concat,
            },
        })),
        Route::Scan => Ok(scan(topology, args)?),
    }
}

/// Plans a transaction: `MULTI`, the commands, `EXEC`, sent back to back to
/// one shard (every replica if any command writes). All keys of all
/// commands must live on one shard; commands that run on every shard, or
/// that the router refuses, cannot be part of it. The answer is `EXEC`'s.
pub fn plan_transaction(
    topology: &Topology,
    commands: Vec<Vec<Bytes>>,
) -> Result<Plan, RouteError> {
    let mut write = false;
    let mut all_keys = Vec::new();
    for args in &commands {
        let info = resolve(args)?;
        match info.route() {
            Route::Keyed | Route::Split(_) | Route::AnyNode => {}
            Route::Refused(reason) => return Err(unsupported(info, reason)),
            Route::EveryShard(_) | Route::Scan => {
                return Err(unsupported(
                    info,
                    "it runs on every shard, so it cannot be part of a transaction",
                ));
            }
        }
        write |= info.is_write();
        all_keys.extend(info.key_positions(args)?.into_iter().map(|i| &args[i][..]));
    }
    let shard = common_shard(topology, "multi", all_keys.into_iter())?;
    let mut wrapped = Vec::with_capacity(commands.len() + 2);
    wrapped.push(vec![Bytes::from_static(b"MULTI")]);
    wrapped.extend(commands);
    wrapped.push(vec![Bytes::from_static(b"EXEC")]);
    Ok(Plan {
        parts: vec![Part {
            shard,
            target: if write {
                Target::EveryReplica
            } else {
                Target::OneReplica
            },
            commands: wrapped,
            block: None,
        }],
        merge: Merge::Single,
    })
}

fn target(info: &CommandInfo) -> Target {
    if info.is_write() {
        Target::EveryReplica
    } else {
        Target::OneReplica
    }
}

fn unsupported(info: &CommandInfo, reason: &'static str) -> RouteError {
    RouteError::Unsupported {
        command: info.name().to_owned(),
        reason,
    }
}

fn single(shard: Option<ShardId>, target: Target, info: &CommandInfo, args: &[Bytes]) -> Planned {
    Planned::One {
        shard,
        target,
        block: info.block(args),
        merge: Merge::Single,
        rewritten: None,
    }
}

/// The one shard all `keys` live on (`None` without keys).
fn common_shard<'a>(
    topology: &Topology,
    command: &str,
    keys: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<ShardId>, RouteError> {
    let mut shard = None;
    for key in keys {
        let s = topology.shard_for(key);
        match shard {
            None => shard = Some(s),
            Some(first) if first != s => {
                return Err(RouteError::CrossShard {
                    command: command.to_owned(),
                    first,
                    second: s,
                });
            }
            Some(_) => {}
        }
    }
    Ok(shard)
}

fn split(
    topology: &Topology,
    info: &CommandInfo,
    args: &[Bytes],
    reduce: Reduce,
) -> Result<Planned, RouteError> {
    let keys = info.key_positions(args)?;
    let step = match info.keys() {
        crate::KeySpec::Range { step, .. } => step.max(1),
        _ => 1,
    };
    let shards: Vec<ShardId> = keys.iter().map(|&i| topology.shard_for(&args[i])).collect();
    if shards.windows(2).all(|w| w[0] == w[1]) {
        let target = target(info);
        return Ok(single(shards.first().copied(), target, info, args));
    }
    // Parts in the order their shards first appear; each keeps its keys (and
    // values) in the caller's order.
    let mut part_of = vec![usize::MAX; topology.shards() as usize];
    let mut parts: Vec<(ShardId, Vec<Bytes>, Vec<usize>)> = Vec::new();
    for (ordinal, (&at, &shard)) in keys.iter().zip(&shards).enumerate() {
        let p = &mut part_of[shard.0 as usize];
        if *p == usize::MAX {
            *p = parts.len();
            parts.push((shard, vec![args[0].clone()], Vec::new()));
        }
        let (_, part_args, ordinals) = &mut parts[*p];
        part_args.extend(args.get(at..at + step).into_iter().flatten().cloned());
        ordinals.push(ordinal);
    }
    let merge = match reduce {
        Reduce::Ordered => Merge::Ordered {
            len: keys.len(),
            positions: parts.iter().map(|(_, _, o)| o.clone()).collect(),
        },
        Reduce::Sum => Merge::Sum,
        Reduce::AllOk => Merge::AllOk,
        Reduce::Concat => Merge::Concat,
    };
    let target = target(info);
    Ok(Planned::Many(Plan {
        parts: parts
            .into_iter()
            .map(|(shard, args, _)| Part {
                shard: Some(shard),
                target,
                commands: vec![args],
                block: None,
            })
            .collect(),
        merge,
    }))
}

fn scan(topology: &Topology, args: &[Bytes]) -> Result<Planned, RouteError> {
    let bad = || RouteError::BadArguments {
        command: "scan".to_owned(),
        reason: "invalid cursor",
    };
    let cursor: u128 = parse_digits(&args[1]).ok_or_else(bad)?;
    let shards = topology.shards();
    let shard = ShardId((cursor % u128::from(shards)) as u32);
    let node_cursor = u64::try_from(cursor / u128::from(shards)).map_err(|_| bad())?;
    let mut args = args.to_vec();
    args[1] = Bytes::from(node_cursor.to_string());
    Ok(Planned::One {
        shard: Some(shard),
        target: Target::OneReplica,
        block: None,
        merge: Merge::Scan { shard, shards },
        rewritten: Some(args),
    })
}

/// An unsigned decimal, digits only.
fn parse_digits<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

impl Merge {
    /// Combines the parts' answers, given in part order.
    pub fn apply(&self, mut replies: Vec<Frame>) -> Result<Frame, RouteError> {
        // A node's error reply is an answer: pass the first one on.
        if let Some(i) = replies.iter().position(Frame::is_error) {
            return Ok(replies.swap_remove(i));
        }
        match self {
            Merge::Single | Merge::AllOk => replies
                .into_iter()
                .next()
                .ok_or_else(|| unexpected("no reply".into())),
            Merge::Ordered { len, positions } => {
                if replies.len() != positions.len() {
                    return Err(unexpected(format!(
                        "{} replies for {} parts",
                        replies.len(),
                        positions.len()
                    )));
                }
                let mut out = vec![Frame::NullBulk; *len];
                for (reply, at) in replies.into_iter().zip(positions) {
                    let values = items(reply)?;
                    if values.len() != at.len() {
                        return Err(unexpected(format!(
                            "an array of {} values for {} keys",
                            values.len(),
                            at.len()
                        )));
                    }
                    for (value, &i) in values.into_iter().zip(at) {
                        if let Some(slot) = out.get_mut(i) {
                            *slot = value;
                        }
                    }
                }
                Ok(Frame::Array(out))
            }
            Merge::Sum => {
                let mut total = 0i64;
                for reply in replies {
                    match reply {
                        Frame::Integer(n) => total = total.saturating_add(n),
                        other => return Err(shape("an integer", &other)),
                    }
                }
                Ok(Frame::Integer(total))
            }
            Merge::Concat => {
                let mut out = Vec::new();
                for reply in replies {
                    out.extend(items(reply)?);
                }
                Ok(Frame::Array(out))
            }
            Merge::Scan { shard, shards } => {
                let reply = replies
                    .into_iter()
                    .next()
                    .ok_or_else(|| unexpected("no reply".into()))?;
                let mut parts = match reply {
                    Frame::Array(parts) if parts.len() == 2 => parts,
                    other => return Err(shape("a two-element array", &other)),
                };
                let keys = parts.pop().unwrap_or(Frame::Null);
                let node_next: u64 = parts[0]
                    .as_bytes()
                    .and_then(|b| parse_digits(b))
                    .ok_or_else(|| shape("a cursor", &parts[0]))?;
                let next = if node_next != 0 {
                    u128::from(node_next) * u128::from(*shards) + u128::from(shard.0)
                } else if shard.0 + 1 < *shards {
                    u128::from(shard.0 + 1)
                } else {
                    0
                };
                Ok(Frame::Array(vec![Frame::bulk(next.to_string()), keys]))
            }
        }
    }
}

fn items(reply: Frame) -> Result<Vec<Frame>, RouteError> {
    match reply {
        Frame::Array(v) | Frame::Set(v) => Ok(v),
        other => Err(shape("an array", &other)),
    }
}

fn unexpected(what: String) -> RouteError {
    RouteError::UnexpectedReply(what)
}

fn shape(expected: &str, got: &Frame) -> RouteError {
    unexpected(format!(
        "expected {expected}, got a '{}' frame",
        char::from(got.type_byte())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cmd: &str) -> Vec<Bytes> {
        cmd.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn topo(shards: usize) -> Topology {
        let names = |g: usize| (0..shards).map(move |s| format!("{g}:{s}"));
        Topology::new([names(0), names(1)]).unwrap()
    }

    /// Two keys on different shards of `topo(4)`, and one sharing the first's.
    fn spread(t: &Topology) -> (String, String, String) {
        let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
        let a = &keys[0];
        let b = keys
            .iter()
            .find(|k| t.shard_for(k.as_bytes()) != t.shard_for(a.as_bytes()));
        let c = keys[1..]
            .iter()
            .find(|k| t.shard_for(k.as_bytes()) == t.shard_for(a.as_bytes()));
        (a.clone(), b.unwrap().clone(), c.unwrap().clone())
    }

    #[test]
    fn single_key() {
        let t = topo(4);
        let p = plan(&t, args("GET foo")).unwrap();
        assert_eq!(p.merge, Merge::Single);
        assert_eq!(p.parts[0].shard, Some(t.shard_for(b"foo")));
        assert_eq!(p.parts[0].target, Target::OneReplica);
        assert_eq!(p.parts[0].commands, [args("GET foo")]);
        let p = plan(&t, args("set foo bar")).unwrap();
        assert_eq!(p.parts[0].target, Target::EveryReplica);
        let p = plan(&t, args("ping")).unwrap();
        assert_eq!(p.parts[0].shard, None);
    }

    #[test]
    fn cross_shard_is_refused() {
        let t = topo(4);
        let (a, b, c) = spread(&t);
        let err = plan(&t, args(&format!("rename {a} {b}"))).unwrap_err();
        assert!(matches!(err, RouteError::CrossShard { ref command, .. } if command == "rename"));
        assert!(plan(&t, args(&format!("rename {a} {c}"))).is_ok());
        assert!(plan(&t, args(&format!("blpop {a} {b} 0"))).is_err());
        let p = plan(&t, args(&format!("blpop {a} {c} 0"))).unwrap();
        assert_eq!(p.parts[0].block, Some(Block::Forever));
        assert!(plan(&t, args(&format!("eval s 2 {a} {b}"))).is_err());
        assert!(matches!(
            plan(&t, args("subscribe ch")),
            Err(RouteError::Unsupported { .. })
        ));
        assert!(matches!(
            plan(&t, args("multi")),
            Err(RouteError::Unsupported { .. })
        ));
    }

    #[test]
    fn mget_splits_and_restores_order() {
        let t = topo(4);
        let (a, b, c) = spread(&t);
        let p = plan(&t, args(&format!("MGET {a} {b} {c}"))).unwrap();
        assert_eq!(p.parts.len(), 2);
        assert_eq!(p.parts[0].commands, [args(&format!("MGET {a} {c}"))]);
        assert_eq!(p.parts[1].commands, [args(&format!("MGET {b}"))]);
        let merged = p
            .merge
            .apply(vec![
                Frame::Array(vec![Frame::bulk("A"), Frame::bulk("C")]),
                Frame::Array(vec![Frame::NullBulk]),
            ])
            .unwrap();
        assert_eq!(
            merged,
            Frame::Array(vec![Frame::bulk("A"), Frame::NullBulk, Frame::bulk("C")])
        );
        let short = p.merge.apply(vec![
            Frame::Array(vec![Frame::bulk("A")]),
            Frame::Array(vec![Frame::NullBulk]),
        ]);
        assert!(matches!(short, Err(RouteError::UnexpectedReply(_))));
        // Same shard: unchanged.
        let p = plan(&t, args(&format!("MGET {a} {c}"))).unwrap();
        assert_eq!(p.merge, Merge::Single);
    }

    #[test]
    fn mset_keeps_values_with_keys() {
        let t = topo(4);
        let (a, b, c) = spread(&t);
        let p = plan(&t, args(&format!("MSET {a} 1 {b} 2 {c} 3"))).unwrap();
        assert_eq!(p.merge, Merge::AllOk);
        assert_eq!(p.parts[0].commands, [args(&format!("MSET {a} 1 {c} 3"))]);
        assert_eq!(p.parts[1].commands, [args(&format!("MSET {b} 2"))]);
        assert_eq!(p.parts[0].target, Target::EveryReplica);
        let err = Frame::error("ERR oom");
        assert_eq!(
            p.merge.apply(vec![Frame::simple("OK"), err.clone()]),
            Ok(err)
        );
    }

    #[test]
    fn sums_and_fan_outs() {
        let t = topo(4);
        assert_eq!(
            Merge::Sum.apply(vec![Frame::Integer(2), Frame::Integer(3)]),
            Ok(Frame::Integer(5))
        );
        assert!(Merge::Sum.apply(vec![Frame::bulk("x")]).is_err());
        let p = plan(&t, args("dbsize")).unwrap();
        assert_eq!(p.parts.len(), 4);
        assert_eq!(p.parts[3].shard, Some(ShardId(3)));
        assert_eq!(p.parts[3].target, Target::OneReplica);
        let p = plan(&t, args("flushall")).unwrap();
        assert_eq!(
            (p.parts.len(), p.parts[0].target),
            (4, Target::EveryReplica)
        );
        let p = plan(&t, args("keys *")).unwrap();
        assert_eq!(
            p.merge.apply(vec![
                Frame::Array(vec![Frame::bulk("a")]),
                Frame::Array(vec![]),
                Frame::Array(vec![Frame::bulk("b")]),
                Frame::Array(vec![]),
            ]),
            Ok(Frame::Array(vec![Frame::bulk("a"), Frame::bulk("b")]))
        );
    }

    #[test]
    fn scan_cursor_encodes_the_shard() {
        let t = topo(4);
        let reply =
            |cursor: &str| Frame::Array(vec![Frame::bulk(cursor.to_owned()), Frame::Array(vec![])]);
        let cursor_of = |f: Frame| match f {
            Frame::Array(v) => v[0].as_bytes().unwrap().clone(),
            _ => unreachable!(),
        };
        let p = plan(&t, args("scan 0 COUNT 10")).unwrap();
        assert_eq!(p.parts[0].shard, Some(ShardId(0)));
        assert_eq!(p.parts[0].commands, [args("scan 0 COUNT 10")]);
        assert_eq!(cursor_of(p.merge.apply(vec![reply("12")]).unwrap()), "48");
        assert_eq!(cursor_of(p.merge.apply(vec![reply("0")]).unwrap()), "1");
        let p = plan(&t, args("scan 49")).unwrap();
        assert_eq!(p.parts[0].shard, Some(ShardId(1)));
        assert_eq!(p.parts[0].commands, [args("scan 12")]);
        let p = plan(&t, args("scan 3")).unwrap();
        assert_eq!(cursor_of(p.merge.apply(vec![reply("0")]).unwrap()), "0");
        assert_eq!(
            cursor_of(p.merge.apply(vec![reply(&u64::MAX.to_string())]).unwrap()),
            (u128::from(u64::MAX) * 4 + 3).to_string()
        );
        for bad in [
            "scan x",
            "scan -1",
            "scan +1",
            "scan 999999999999999999999999999999999",
        ] {
            assert!(matches!(
                plan(&t, args(bad)),
                Err(RouteError::BadArguments { .. })
            ));
        }
        assert!(p.merge.apply(vec![Frame::Integer(1)]).is_err());
    }

    #[test]
    fn transactions() {
        let t = topo(4);
        let (a, b, c) = spread(&t);
        let p = plan_transaction(
            &t,
            vec![args(&format!("set {a} 1")), args(&format!("get {c}"))],
        )
        .unwrap();
        assert_eq!(p.parts[0].target, Target::EveryReplica);
        assert_eq!(p.parts[0].commands.len(), 4);
        assert_eq!(p.parts[0].commands[0], args("MULTI"));
        assert_eq!(p.parts[0].commands[3], args("EXEC"));
        let err = plan_transaction(
            &t,
            vec![args(&format!("get {a}")), args(&format!("get {b}"))],
        );
        assert!(
            matches!(err, Err(RouteError::CrossShard { ref command, .. }) if command == "multi")
        );
        assert!(plan_transaction(&t, vec![args("flushall")]).is_err());
        assert!(plan_transaction(&t, vec![args("multi")]).is_err());
        let p = plan_transaction(&t, vec![args("ping")]).unwrap();
        assert_eq!(
            (p.parts[0].shard, p.parts[0].target),
            (None, Target::OneReplica)
        );
    }

    #[test]
    fn no_panics_on_odd_input() {
        let t = topo(3);
        for cmd in [
            vec![],
            vec![Bytes::new()],
            args("get"),
            args("mset a"),
            args("eval s"),
            args("eval s 99999999999999999999"),
            args("object"),
            args("sort k limit"),
            args("scan"),
        ] {
            let _ = plan(&t, cmd.clone());
            let _ = plan_transaction(&t, vec![cmd]);
        }
    }
}

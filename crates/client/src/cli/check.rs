//! `ember-cli check`: compares the replica groups key by key, shard by
//! shard, and with `--fix` copies one group's keys over the others.
//!
//! The groups are compared with a reference group (`--from-group`, else
//! group 0), in two sweeps per shard:
//!
//! 1. The reference's node is scanned (`SCAN cursor COUNT batch`). Each batch
//!    of keys is read on every group's node with pipelines: one `MGET` of the
//!    whole batch and a `PTTL` per key; then `TYPE` of the keys `MGET` found
//!    no string for, and the values of those of other types where the groups
//!    hold the same type (`LRANGE`, `HGETALL`, `SMEMBERS`,
//!    `ZRANGE ... WITHSCORES`, or `DUMP` for the other types). Values are
//!    compared as data, not as `DUMP` bytes: Ember and Redis encode the same
//!    value differently.
//! 2. Every other group's node is scanned for keys the reference lacks. One
//!    `EXISTS k1 k2 ...` on the reference per batch usually says that it holds
//!    them all; only when it does not is each key asked about, and a key that
//!    neither the reference nor a group scanned before holds is read from
//!    every group as in the first sweep.
//!
//! A batch whose keys differ is read once more: a key that expired or was
//! written while it was being read is not reported, if the second reading
//! agrees. Up to [`IN_FLIGHT`] batches are read at once, while the next
//! `SCAN` is on its way. Memory is bounded by those batches (their keys and
//! values, from every group), whatever the number of keys.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use resp::Frame;
use route::{GroupId, NodeId, ShardId, Topology};
use tokio::task::JoinHandle;

use super::Io;
use crate::{Client, Error, Options};

/// Batches read at once, each by a task of its own.
const IN_FLIGHT: usize = 8;

/// Keys the fleet keeps for its own bookkeeping: never compared.
const OWN_PREFIX: &[u8] = b"__ember__:";

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Compares the replica groups key by key: type, value and TTL. Exit
/// status 0 when they agree (or `--fix` repaired every difference), 1 when
/// they differ or a node could not be read, 2 for bad usage.
#[derive(Debug, Parser)]
#[command(name = "ember-cli check")]
pub(super) struct CheckArgs {
    /// Print one line per key that differs (and, with --fix, per key fixed).
    #[arg(short, long)]
    verbose: bool,
    /// Copy the keys that differ from --from-group to the other groups
    /// (DUMP, then RESTORE ... REPLACE), and delete from them the keys that
    /// --from-group lacks.
    #[arg(long, requires = "from_group")]
    fix: bool,
    /// The group the others are compared with, and copied from with --fix
    /// [default: 0].
    #[arg(long, value_name = "G")]
    from_group: Option<u32>,
    /// How far apart two TTLs may be and still agree, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    ttl_tolerance: u64,
    /// Keys per SCAN (its COUNT) and per batch of reads.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch: u64,
}

/// Parses `check`'s arguments (those after `check`), then runs it.
pub(super) fn main(topology: Topology, options: Options, args: &[Bytes], io: Io<'_>) -> u8 {
    let mut argv = vec![OsString::from("ember-cli check")];
    argv.extend(
        args.iter()
            .map(|a| OsString::from(String::from_utf8_lossy(a).into_owned())),
    );
    let args = match CheckArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => return super::usage_error(e, io.stdout, io.stderr),
    };
    if let Some(g) = args.from_group
        && g >= topology.groups()
    {
        let _ = writeln!(
            io.stderr,
            "ember-cli check: --from-group {g}: the topology has groups 0 to {}",
            topology.groups() - 1
        );
        return 2;
    }
    super::with_client(topology, options, io, |client, io| async move {
        run(client, args, io).await
    })
}

async fn run(client: Client, args: CheckArgs, io: Io<'_>) -> u8 {
    let topology = client.topology().clone();
    let checker = Arc::new(Checker {
        client,
        topology,
        reference: args.from_group.unwrap_or(0) as usize,
        tolerance: i64::try_from(args.ttl_tolerance).unwrap_or(i64::MAX),
        fix: args.fix,
    });
    let groups = checker.groups();
    let shards = checker.topology.shards();
    let now = Instant::now();
    let mut out = Out {
        stdout: io.stdout,
        stderr: io.stderr,
        verbose: args.verbose,
        reference: checker.reference,
        progress: io.stderr_is_terminal.then_some(Progress {
            group: 0,
            start: now,
            last: now,
            scanned: 0,
        }),
        shard: 0,
        shards,
    };
    let mut total = Tally::new(groups);
    for shard in 0..shards {
        out.shard = shard;
        let tally = match checker
            .check_shard(ShardId(shard), args.batch, &mut out)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                out.clear_progress();
                let _ = out.stdout.flush();
                let _ = writeln!(out.stderr, "ember-cli check: shard {shard}: {e}");
                return 1;
            }
        };
        let line = format!(
            "shard {shard}: {}: {}\n",
            tally.sizes(),
            tally.summary(checker.fix)
        );
        out.clear_progress();
        let _ = out.stdout.write_all(line.as_bytes());
        let _ = out.stdout.flush();
        total.add(&tally);
    }
    let line = format!(
        "{}, {} checked: {}\n",
        plural(u64::from(shards), "shard"),
        plural(total.checked, "key"),
        total.totals(checker.fix)
    );
    let broken = out
        .stdout
        .write_all(line.as_bytes())
        .and_then(|()| out.stdout.flush())
        .is_err();
    let agree = total.differences() == 0 || (checker.fix && total.failed == 0);
    u8::from(!agree || broken)
}

/// What every batch's task needs.
#[derive(Debug)]
struct Checker {
    client: Client,
    topology: Topology,
    /// The group the others are compared with (and copied from).
    reference: usize,
    /// Milliseconds two TTLs may differ by.
    tolerance: i64,
    fix: bool,
}

/// Where a command's reply will come (see [`Checker::answer`]).
type Answer = tokio::sync::oneshot::Receiver<Result<Frame, Error>>;

/// A key as one group's node holds it.
#[derive(Debug, Clone, PartialEq)]
enum State {
    Missing,
    Present {
        /// Its type, as `TYPE` names it.
        kind: Bytes,
        /// `PTTL`'s answer: -1 without expiry, -2 if it vanished meanwhile.
        ttl: i64,
        value: Value,
    },
}

/// A value in a form that compares equal when the data is.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// Not read: no other group holds a key of that type to compare with.
    Unread,
    /// A string, or `DUMP`'s payload for a type not compared as data.
    Bytes(Bytes),
    List(Vec<Bytes>),
    /// A set's members, sorted.
    Set(Vec<Bytes>),
    /// A hash's fields and values, sorted by field.
    Hash(Vec<(Bytes, Bytes)>),
    /// A sorted set's members and scores, in `ZRANGE` order.
    Zset(Vec<(Bytes, f64)>),
    /// Gone, or changed type, between two reads (nil, empty, `WRONGTYPE`).
    Gone,
    /// An error reply to the read.
    Error(String),
}

/// How one group's copy of a key differs from the reference's.
#[derive(Debug, Clone, PartialEq)]
enum Difference {
    Missing,
    /// What differs: `type`, `value` (or `unreadable`: an error reply to
    /// the read), `ttl`.
    Different(Vec<&'static str>),
}

/// What `--fix` did for one key on one group.
#[derive(Debug)]
enum Fixed {
    Copied,
    Deleted,
    Failed(String),
}

/// A key that differs.
#[derive(Debug)]
struct KeyReport {
    key: Bytes,
    /// Per group that differs from the reference, how. A key the reference
    /// lacks has one entry: the reference, missing.
    differences: Vec<(usize, Difference)>,
    /// Which groups hold the key.
    present: Vec<bool>,
    /// With `--fix`, what was done on each group.
    fixed: Vec<(usize, Fixed)>,
}

/// What one batch found.
#[derive(Debug, Default)]
struct Found {
    /// Keys read.
    checked: u64,
    /// Per group, how many of those keys it holds.
    present: Vec<u64>,
    reports: Vec<KeyReport>,
}

/// Which sweep a batch belongs to.
#[derive(Debug, Clone)]
enum Sweep {
    /// Keys scanned on the reference.
    Reference,
    /// Keys scanned on another group: only those that neither the reference
    /// nor `earlier` (groups already swept) holds are new. `--fix` deletes
    /// them only if `deletions`.
    Other {
        earlier: Arc<[usize]>,
        deletions: bool,
    },
}

impl Checker {
    fn groups(&self) -> usize {
        self.topology.groups() as usize
    }

    /// Shard `shard`'s node in each group.
    fn nodes(&self, shard: ShardId) -> Vec<NodeId> {
        (0..self.topology.groups())
            .map(|g| {
                self.topology
                    .node(GroupId(g), shard)
                    .expect("the shard is in the topology")
            })
            .collect()
    }

    fn send(&self, node: NodeId, args: Vec<Bytes>) -> Answer {
        self.client.send(Some(node), args)
    }

    /// Waits for an answer. An error reply is an answer (`Ok(Err(text))`);
    /// no answer at all stops the check.
    async fn answer(&self, node: NodeId, answer: Answer) -> Result<Result<Frame, String>, String> {
        match answer.await.unwrap_or(Err(Error::Closed)) {
            Ok(frame) => Ok(Ok(frame)),
            Err(Error::Redis(text)) => Ok(Err(text)),
            Err(e) if e.is_timeout() => Err(format!(
                "{}: {e} (a longer --timeout may help)",
                self.name(node)
            )),
            Err(e) => Err(format!("{}: {e}", self.name(node))),
        }
    }

    /// An integer answer, or the reason the check stops.
    async fn integer(&self, node: NodeId, command: &str, answer: Answer) -> Result<i64, String> {
        match self.answer(node, answer).await? {
            Ok(Frame::Integer(n)) => Ok(n),
            Ok(other) => Err(format!(
                "{}: unexpected reply to {command}: {other:?}",
                self.name(node)
            )),
            Err(text) => Err(format!("{}: {command}: {text}", self.name(node))),
        }
    }

    /// `group 1 (127.0.0.1:7101)`.
    fn name(&self, node: NodeId) -> String {
        let group = self.topology.position(node).map_or(0, |(g, _)| g.0);
        let addr = self.topology.addr(node).unwrap_or("?");
        format!("group {group} ({addr})")
    }

    /// Both sweeps of one shard.
    async fn check_shard(
        self: &Arc<Self>,
        shard: ShardId,
        batch: u64,
        out: &mut Out<'_>,
    ) -> Result<Tally, String> {
        let mut tally = Tally::new(self.groups());
        self.sweep(
            shard,
            self.reference,
            Sweep::Reference,
            batch,
            &mut tally,
            out,
        )
        .await?;
        // A reference that holds nothing on this shard is more likely the
        // group that came back empty (a wrong --from-group) than a shard
        // whose keys were all deleted: it must not wipe the other groups.
        let deletions = tally.keys[self.reference] > 0;
        let mut earlier = Vec::new();
        for group in (0..self.groups()).filter(|&g| g != self.reference) {
            let sweep = Sweep::Other {
                earlier: earlier.clone().into(),
                deletions,
            };
            self.sweep(shard, group, sweep, batch, &mut tally, out)
                .await?;
            earlier.push(group);
        }
        if self.fix && !deletions && tally.differences() > 0 {
            out.clear_progress();
            let _ = writeln!(
                out.stderr,
                "ember-cli check: shard {}: group {} holds no keys there, so --fix deleted \
                 nothing from the other groups (is --from-group right?)",
                shard.0, self.reference
            );
        }
        Ok(tally)
    }

    /// Scans `group`'s node of `shard` and checks each batch of keys with a
    /// task of its own, up to [`IN_FLIGHT`] at once; takes their findings in
    /// order.
    async fn sweep(
        self: &Arc<Self>,
        shard: ShardId,
        group: usize,
        sweep: Sweep,
        batch: u64,
        tally: &mut Tally,
        out: &mut Out<'_>,
    ) -> Result<(), String> {
        let node = self.nodes(shard)[group];
        out.start_sweep(group);
        let count = Bytes::from(batch.to_string());
        let mut cursor = Bytes::from_static(b"0");
        let mut tasks: VecDeque<JoinHandle<Result<Found, String>>> = VecDeque::new();
        let result = async {
            loop {
                let args = vec![
                    Bytes::from_static(b"SCAN"),
                    cursor.clone(),
                    Bytes::from_static(b"COUNT"),
                    count.clone(),
                ];
                let reply = self.answer(node, self.send(node, args)).await?;
                let (next, keys) =
                    scan_reply(reply).map_err(|e| format!("{}: SCAN: {e}", self.name(node)))?;
                let keys: Vec<Bytes> = keys
                    .into_iter()
                    .filter(|k| !k.starts_with(OWN_PREFIX))
                    .collect();
                out.scanned(keys.len() as u64);
                // Even batches: SCAN's COUNT is a hint, and a batch of a
                // few keys costs as many round trips as a full one.
                let size = keys
                    .len()
                    .div_ceil(keys.len().div_ceil(batch as usize).max(1));
                for chunk in keys.chunks(size.max(1)) {
                    if tasks.len() >= IN_FLIGHT
                        && let Some(task) = tasks.pop_front()
                    {
                        tally.record(shard, joined(task.await)?, out);
                        out.show_progress();
                    }
                    let (checker, sweep, keys) = (self.clone(), sweep.clone(), chunk.to_vec());
                    tasks.push_back(tokio::spawn(async move {
                        match sweep {
                            Sweep::Reference => checker.check_batch(shard, keys, true).await,
                            Sweep::Other { earlier, deletions } => {
                                checker.new_keys(shard, &earlier, deletions, keys).await
                            }
                        }
                    }));
                }
                if next.as_ref() == b"0" {
                    break;
                }
                cursor = next;
            }
            while let Some(task) = tasks.pop_front() {
                tally.record(shard, joined(task.await)?, out);
                out.show_progress();
            }
            Ok(())
        }
        .await;
        for task in tasks {
            task.abort();
        }
        result
    }

    /// Reads `keys` on every group, then once more those that differ, and
    /// with `--fix` repairs those that still do (deleting keys the reference
    /// lacks only if `deletions`).
    async fn check_batch(
        &self,
        shard: ShardId,
        keys: Vec<Bytes>,
        deletions: bool,
    ) -> Result<Found, String> {
        let groups = self.groups();
        let mut found = Found {
            checked: keys.len() as u64,
            present: vec![0; groups],
            reports: Vec::new(),
        };
        let first = self.read(shard, &keys).await?;
        let mut suspects = Vec::new();
        for (key, states) in keys.into_iter().zip(first) {
            if self.differences(&states).is_empty() {
                count_present(&states, &mut found.present);
            } else {
                suspects.push(key);
            }
        }
        if suspects.is_empty() {
            return Ok(found);
        }
        // A key may have expired, or been written, while it was read.
        let second = self.read(shard, &suspects).await?;
        for (key, states) in suspects.into_iter().zip(second) {
            count_present(&states, &mut found.present);
            let differences = self.differences(&states);
            if !differences.is_empty() {
                found.reports.push(KeyReport {
                    key,
                    differences,
                    present: states.iter().map(|s| s != &State::Missing).collect(),
                    fixed: Vec::new(),
                });
            }
        }
        if self.fix && !found.reports.is_empty() {
            self.repair(shard, &mut found.reports, deletions).await?;
        }
        Ok(found)
    }

    /// The second sweep's batch: keys scanned on another group. Checks
    /// those that neither the reference nor a group swept before holds.
    async fn new_keys(
        &self,
        shard: ShardId,
        earlier: &[usize],
        deletions: bool,
        keys: Vec<Bytes>,
    ) -> Result<Found, String> {
        let nodes = self.nodes(shard);
        let none = || Found {
            present: vec![0; self.groups()],
            ..Found::default()
        };
        let reference = nodes[self.reference];
        let mut args = Vec::with_capacity(keys.len() + 1);
        args.push(Bytes::from_static(b"EXISTS"));
        args.extend(keys.iter().cloned());
        let held = self
            .integer(reference, "EXISTS", self.send(reference, args))
            .await?;
        // Usually the reference holds them all: one command per batch.
        if held >= keys.len() as i64 {
            return Ok(none());
        }
        let mut lacking = keys;
        for &group in std::iter::once(&self.reference).chain(earlier) {
            let node = nodes[group];
            let answers: Vec<Answer> = lacking
                .iter()
                .map(|k| self.send(node, vec![Bytes::from_static(b"EXISTS"), k.clone()]))
                .collect();
            let mut still = Vec::new();
            for (key, answer) in lacking.into_iter().zip(answers) {
                if self.integer(node, "EXISTS", answer).await? == 0 {
                    still.push(key);
                }
            }
            lacking = still;
            if lacking.is_empty() {
                return Ok(none());
            }
        }
        self.check_batch(shard, lacking, deletions).await
    }

    /// Every group's copy of each key, `[key][group]`.
    ///
    /// Most keys are strings, so each group is asked first for one `MGET`
    /// of the whole batch and a `PTTL` per key; only the keys `MGET`
    /// answers nil for (missing, or not strings) are asked their `TYPE`,
    /// then the values of the other types are read where the reference and
    /// another group hold the same type.
    async fn read(&self, shard: ShardId, keys: &[Bytes]) -> Result<Vec<Vec<State>>, String> {
        let nodes = self.nodes(shard);
        let mut mgets = Vec::with_capacity(nodes.len());
        let mut ttls = Vec::with_capacity(nodes.len() * keys.len());
        for &node in &nodes {
            let mut args = Vec::with_capacity(keys.len() + 1);
            args.push(Bytes::from_static(b"MGET"));
            args.extend(keys.iter().cloned());
            mgets.push(self.send(node, args));
            for key in keys {
                ttls.push(self.send(node, vec![Bytes::from_static(b"PTTL"), key.clone()]));
            }
        }
        let mut states = vec![vec![State::Missing; nodes.len()]; keys.len()];
        // Keys that are not strings (or not there), by group.
        let mut unknown: Vec<(usize, usize, i64)> = Vec::new();
        let mut ttls = ttls.into_iter();
        for ((g, &node), mget) in nodes.iter().enumerate().zip(mgets) {
            let values = match self.answer(node, mget).await? {
                Ok(Frame::Array(items)) if items.len() == keys.len() => items,
                Ok(other) => {
                    return Err(format!(
                        "{}: unexpected reply to MGET: {other:?}",
                        self.name(node)
                    ));
                }
                Err(text) => return Err(format!("{}: MGET: {text}", self.name(node))),
            };
            for (k, value) in values.into_iter().enumerate() {
                let ttl = ttls.next().expect("one PTTL per key and group");
                let ttl = self.integer(node, "PTTL", ttl).await?;
                match value {
                    Frame::Bulk(value) => {
                        states[k][g] = State::Present {
                            kind: Bytes::from_static(b"string"),
                            ttl,
                            value: Value::Bytes(value),
                        };
                    }
                    _ => unknown.push((k, g, ttl)),
                }
            }
        }
        let types: Vec<Answer> = unknown
            .iter()
            .map(|&(k, g, _)| {
                self.send(nodes[g], vec![Bytes::from_static(b"TYPE"), keys[k].clone()])
            })
            .collect();
        for ((k, g, ttl), answer) in unknown.into_iter().zip(types) {
            let kind = match self.answer(nodes[g], answer).await? {
                Ok(Frame::Simple(t) | Frame::Bulk(t)) => t,
                Ok(other) => {
                    return Err(format!(
                        "{}: unexpected reply to TYPE: {other:?}",
                        self.name(nodes[g])
                    ));
                }
                Err(text) => return Err(format!("{}: TYPE: {text}", self.name(nodes[g]))),
            };
            if kind.as_ref() != b"none" {
                // A string here was written since MGET: read again.
                let value = if kind.as_ref() == b"string" {
                    Value::Gone
                } else {
                    Value::Unread
                };
                states[k][g] = State::Present { kind, ttl, value };
            }
        }
        // Values of the other types, where the reference and another group
        // hold the same type.
        let mut reads = Vec::new();
        for (k, key_states) in states.iter().enumerate() {
            let State::Present {
                kind,
                value: Value::Unread,
                ..
            } = &key_states[self.reference]
            else {
                continue;
            };
            let same: Vec<usize> = (0..nodes.len())
                .filter(|&g| {
                    matches!(&key_states[g], State::Present { kind: other, .. } if other == kind)
                })
                .collect();
            if same.len() < 2 {
                continue;
            }
            for g in same {
                let args = value_command(kind, &keys[k]);
                reads.push((k, g, kind.clone(), self.send(nodes[g], args)));
            }
        }
        for (k, g, kind, answer) in reads {
            let value = match self.answer(nodes[g], answer).await? {
                Ok(frame) => value_of(&kind, frame),
                Err(text) if text.starts_with("WRONGTYPE") => Value::Gone,
                Err(text) => Value::Error(text),
            };
            set_value(&mut states[k][g], value);
        }
        Ok(states)
    }

    /// How each group's copy of one key differs from the reference's.
    fn differences(&self, states: &[State]) -> Vec<(usize, Difference)> {
        differences(states, self.reference, self.tolerance)
    }

    /// Makes the other groups hold what the reference holds: `DUMP` and
    /// `PEXPIRETIME` on the reference, then `RESTORE key at payload REPLACE
    /// ABSTTL` on
    /// each group that differs; or `DEL` where the reference lacks the key,
    /// if `deletions`.
    async fn repair(
        &self,
        shard: ShardId,
        reports: &mut [KeyReport],
        deletions: bool,
    ) -> Result<(), String> {
        let nodes = self.nodes(shard);
        let reference = nodes[self.reference];
        let dumps: Vec<Option<(Answer, Answer)>> = reports
            .iter()
            .map(|r| {
                r.present[self.reference].then(|| {
                    let key = r.key.clone();
                    (
                        self.send(reference, vec![Bytes::from_static(b"DUMP"), key.clone()]),
                        self.send(reference, vec![Bytes::from_static(b"PEXPIRETIME"), key]),
                    )
                })
            })
            .collect();
        let mut writes = Vec::new();
        for (i, (report, dump)) in reports.iter_mut().zip(dumps).enumerate() {
            let copy = match dump {
                None => None,
                Some((payload, ttl)) => {
                    let payload = self.answer(reference, payload).await?;
                    let ttl = self.integer(reference, "PEXPIRETIME", ttl).await?;
                    match payload {
                        Ok(Frame::Bulk(payload)) if ttl != -2 => Some((payload, ttl)),
                        Err(text) => {
                            for &(g, _) in &report.differences {
                                report
                                    .fixed
                                    .push((g, Fixed::Failed(format!("DUMP: {text}"))));
                            }
                            continue;
                        }
                        // Gone from the reference since it was read: gone
                        // from the others too.
                        _ => None,
                    }
                }
            };
            let targets: Vec<usize> = match copy {
                Some(_) => report.differences.iter().map(|&(g, _)| g).collect(),
                None => (0..nodes.len())
                    .filter(|&g| g != self.reference && report.present[g])
                    .collect(),
            };
            if copy.is_none() && !deletions {
                let why = format!(
                    "not deleted: group {} holds no keys on this shard",
                    self.reference
                );
                for g in targets {
                    report.fixed.push((g, Fixed::Failed(why.clone())));
                }
                continue;
            }
            for g in targets {
                let args = match &copy {
                    // The reference's deadline itself (a TTL read there
                    // and set here would move it later by the time between):
                    // RESTORE's 0 is no expiry, ABSTTL takes the instant.
                    Some((payload, at)) => {
                        let mut args = vec![
                            Bytes::from_static(b"RESTORE"),
                            report.key.clone(),
                            Bytes::from((*at).max(0).to_string()),
                            payload.clone(),
                            Bytes::from_static(b"REPLACE"),
                        ];
                        if *at > 0 {
                            args.push(Bytes::from_static(b"ABSTTL"));
                        }
                        args
                    }
                    None => vec![Bytes::from_static(b"DEL"), report.key.clone()],
                };
                writes.push((i, g, copy.is_some(), self.send(nodes[g], args)));
            }
        }
        for (i, g, copy, answer) in writes {
            let fixed = match answer.await.unwrap_or(Err(Error::Closed)) {
                Ok(_) if copy => Fixed::Copied,
                Ok(_) => Fixed::Deleted,
                Err(e) => Fixed::Failed(e.to_string()),
            };
            reports[i].fixed.push((g, fixed));
        }
        Ok(())
    }
}

/// How each group's copy of one key differs from the reference's.
fn differences(states: &[State], reference: usize, tolerance: i64) -> Vec<(usize, Difference)> {
    let State::Present { kind, ttl, value } = &states[reference] else {
        return if states.iter().any(|s| s != &State::Missing) {
            vec![(reference, Difference::Missing)]
        } else {
            Vec::new()
        };
    };
    let mut out = Vec::new();
    for (g, state) in states.iter().enumerate() {
        if g == reference {
            continue;
        }
        let State::Present {
            kind: other_kind,
            ttl: other_ttl,
            value: other_value,
        } = state
        else {
            out.push((g, Difference::Missing));
            continue;
        };
        let mut what = Vec::new();
        if other_kind != kind {
            what.push("type");
        } else if matches!(value, Value::Error(_)) || matches!(other_value, Value::Error(_)) {
            // Two equal error replies are not two equal values.
            what.push("unreadable");
        } else if other_value != value {
            what.push("value");
        }
        if !ttls_agree(*ttl, *other_ttl, tolerance) {
            what.push("ttl");
        }
        if !what.is_empty() {
            out.push((g, Difference::Different(what)));
        }
    }
    out
}

fn joined(task: Result<Result<Found, String>, tokio::task::JoinError>) -> Result<Found, String> {
    task.unwrap_or_else(|e| Err(format!("a batch's task failed: {e}")))
}

fn count_present(states: &[State], present: &mut [u64]) {
    for (count, state) in present.iter_mut().zip(states) {
        *count += u64::from(state != &State::Missing);
    }
}

fn set_value(state: &mut State, new: Value) {
    if let State::Present { value, .. } = state {
        *value = new;
    }
}

/// Whether two `PTTL`s agree: both without expiry, both gone, or both
/// expiring within `tolerance` milliseconds of each other.
fn ttls_agree(a: i64, b: i64, tolerance: i64) -> bool {
    if a < 0 || b < 0 {
        a == b
    } else {
        a.abs_diff(b) <= tolerance.unsigned_abs()
    }
}

/// The command that reads a value of type `kind` (not a string: those come
/// from one `MGET` per batch).
fn value_command(kind: &[u8], key: &Bytes) -> Vec<Bytes> {
    let s = Bytes::from_static;
    match kind {
        b"list" => vec![s(b"LRANGE"), key.clone(), s(b"0"), s(b"-1")],
        b"hash" => vec![s(b"HGETALL"), key.clone()],
        b"set" => vec![s(b"SMEMBERS"), key.clone()],
        b"zset" => vec![
            s(b"ZRANGE"),
            key.clone(),
            s(b"0"),
            s(b"-1"),
            s(b"WITHSCORES"),
        ],
        _ => vec![s(b"DUMP"), key.clone()],
    }
}

/// A read's reply as a [`Value`]: collections sorted where their order is
/// not part of the data.
fn value_of(kind: &[u8], frame: Frame) -> Value {
    let items = match frame {
        Frame::Bulk(b) => return Value::Bytes(b),
        Frame::Array(items) | Frame::Set(items) => items,
        Frame::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return Value::Gone,
    };
    // A collection is never empty in Redis: it was deleted meanwhile.
    if items.is_empty() {
        return Value::Gone;
    }
    let mut bulks: Vec<Bytes> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Frame::Bulk(b) | Frame::Simple(b) => bulks.push(b),
            Frame::Integer(n) => bulks.push(Bytes::from(n.to_string())),
            Frame::Double(d) => bulks.push(Bytes::from(d.to_string())),
            other => return Value::Error(format!("unexpected element {other:?}")),
        }
    }
    let pairs = |bulks: Vec<Bytes>| -> Vec<(Bytes, Bytes)> {
        let mut it = bulks.into_iter();
        let mut out = Vec::new();
        while let (Some(a), Some(b)) = (it.next(), it.next()) {
            out.push((a, b));
        }
        out
    };
    match kind {
        b"list" => Value::List(bulks),
        b"set" => {
            bulks.sort_unstable();
            Value::Set(bulks)
        }
        b"hash" => {
            let mut fields = pairs(bulks);
            fields.sort_unstable();
            Value::Hash(fields)
        }
        b"zset" => Value::Zset(
            pairs(bulks)
                .into_iter()
                .map(|(member, score)| {
                    // Compare scores as numbers: `1` and `1.0` are one score.
                    let score = std::str::from_utf8(&score)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(f64::NAN);
                    (member, score)
                })
                .collect(),
        ),
        _ => Value::Error("unexpected array".into()),
    }
}

/// `SCAN`'s `[cursor, [key...]]`.
fn scan_reply(reply: Result<Frame, String>) -> Result<(Bytes, Vec<Bytes>), String> {
    let frame = reply?;
    let Frame::Array(mut parts) = frame else {
        return Err(format!("unexpected reply {frame:?}"));
    };
    if parts.len() != 2 {
        return Err(format!("unexpected reply {parts:?}"));
    }
    let keys = parts.pop();
    let cursor = parts.pop();
    match (cursor, keys) {
        (Some(Frame::Bulk(cursor)), Some(Frame::Array(keys))) => {
            let keys = keys
                .into_iter()
                .map(|k| match k {
                    Frame::Bulk(k) => Ok(k),
                    other => Err(format!("unexpected key {other:?}")),
                })
                .collect::<Result<_, _>>()?;
            Ok((cursor, keys))
        }
        (cursor, keys) => Err(format!("unexpected reply [{cursor:?}, {keys:?}]")),
    }
}

/// Counts for one shard, or for all of them.
#[derive(Debug)]
struct Tally {
    /// Keys read, each once.
    checked: u64,
    /// Per group, how many of those keys it holds.
    keys: Vec<u64>,
    /// Per group, keys the reference holds and it lacks; for the
    /// reference, keys it lacks and another group holds.
    missing: Vec<u64>,
    /// Per group, keys it holds differently from the reference.
    different: Vec<u64>,
    copied: u64,
    deleted: u64,
    failed: u64,
}

impl Tally {
    fn new(groups: usize) -> Tally {
        Tally {
            checked: 0,
            keys: vec![0; groups],
            missing: vec![0; groups],
            different: vec![0; groups],
            copied: 0,
            deleted: 0,
            failed: 0,
        }
    }

    /// Counts a batch's findings, and prints them with `--verbose`.
    fn record(&mut self, shard: ShardId, found: Found, out: &mut Out<'_>) {
        self.checked += found.checked;
        for (total, n) in self.keys.iter_mut().zip(&found.present) {
            *total += n;
        }
        let (verbose, reference) = (out.verbose, out.reference);
        let mut text = Vec::new();
        for report in &found.reports {
            // Formatted only with --verbose.
            let mut line = |what: std::fmt::Arguments<'_>| {
                if verbose {
                    let _ = write!(text, "shard {} key ", shard.0);
                    key_text(&report.key, &mut text);
                    let _ = writeln!(text, ": {what}");
                }
            };
            for (g, difference) in &report.differences {
                match difference {
                    Difference::Missing => {
                        self.missing[*g] += 1;
                        line(format_args!("missing in group {g}"));
                    }
                    Difference::Different(what) => {
                        self.different[*g] += 1;
                        line(format_args!("different in group {g} ({})", what.join(", ")));
                    }
                }
            }
            for (g, fixed) in &report.fixed {
                match fixed {
                    Fixed::Copied => {
                        self.copied += 1;
                        line(format_args!("copied from group {reference} to group {g}"));
                    }
                    Fixed::Deleted => {
                        self.deleted += 1;
                        line(format_args!("deleted from group {g}"));
                    }
                    Fixed::Failed(e) => {
                        self.failed += 1;
                        line(format_args!("not fixed in group {g}: {e}"));
                    }
                }
            }
        }
        if !text.is_empty() {
            out.clear_progress();
            let _ = out.stdout.write_all(&text);
        }
    }

    fn add(&mut self, other: &Tally) {
        self.checked += other.checked;
        let sum = |a: &mut Vec<u64>, b: &[u64]| a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        sum(&mut self.keys, &other.keys);
        sum(&mut self.missing, &other.missing);
        sum(&mut self.different, &other.different);
        self.copied += other.copied;
        self.deleted += other.deleted;
        self.failed += other.failed;
    }

    fn differences(&self) -> u64 {
        self.missing.iter().chain(&self.different).sum()
    }

    /// `group 0 1000 keys, group 1 998 keys`.
    fn sizes(&self) -> String {
        let parts: Vec<String> = self
            .keys
            .iter()
            .enumerate()
            .map(|(g, &n)| format!("group {g} {}", plural(n, "key")))
            .collect();
        parts.join(", ")
    }

    /// `2 missing in group 1, 1 different in group 1`, or `in agreement`;
    /// with `--fix`, what was done.
    fn summary(&self, fix: bool) -> String {
        let mut parts = Vec::new();
        for g in 0..self.keys.len() {
            if self.missing[g] > 0 {
                parts.push(format!("{} missing in group {g}", self.missing[g]));
            }
            if self.different[g] > 0 {
                parts.push(format!("{} different in group {g}", self.different[g]));
            }
        }
        if parts.is_empty() {
            return "in agreement".into();
        }
        let mut text = parts.join(", ");
        if fix {
            text.push_str(&self.fixes());
        }
        text
    }

    /// `3 differences`, or `in agreement`; with `--fix`, what was done.
    fn totals(&self, fix: bool) -> String {
        match self.differences() {
            0 => "in agreement".into(),
            n if fix => format!("{}{}", plural(n, "difference"), self.fixes()),
            n => plural(n, "difference"),
        }
    }

    /// `; fixed: 2 copied, 1 deleted` (`, 1 failed`).
    fn fixes(&self) -> String {
        let mut text = format!("; fixed: {} copied, {} deleted", self.copied, self.deleted);
        if self.failed > 0 {
            text.push_str(&format!(", {} failed", self.failed));
        }
        text
    }
}

/// `1 key`, `2 keys`.
fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A key as it is when it is plain printable text, else quoted with escapes
/// as `redis-cli` quotes it.
fn key_text(key: &[u8], out: &mut Vec<u8>) {
    let plain = !key.is_empty()
        && key
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b'\'');
    if plain {
        out.extend_from_slice(key);
    } else {
        super::format::quote(key, out);
    }
}

/// Where the results and the progress go.
struct Out<'a> {
    stdout: &'a mut dyn Write,
    stderr: &'a mut dyn Write,
    verbose: bool,
    /// The group the others are compared with.
    reference: usize,
    /// Only when standard error is a terminal.
    progress: Option<Progress>,
    shard: u32,
    shards: u32,
}

/// The progress of the current sweep.
struct Progress {
    group: usize,
    start: Instant,
    last: Instant,
    scanned: u64,
}

impl Out<'_> {
    /// A sweep of `group`'s node starts: the progress line counts its keys.
    fn start_sweep(&mut self, group: usize) {
        if let Some(p) = &mut self.progress {
            let now = Instant::now();
            *p = Progress {
                group,
                start: now,
                last: now,
                scanned: 0,
            };
        }
    }

    fn scanned(&mut self, n: u64) {
        if let Some(p) = &mut self.progress {
            p.scanned += n;
        }
        self.show_progress();
    }

    /// Redraws the progress line, at most every [`PROGRESS_EVERY`].
    fn show_progress(&mut self) {
        let Some(p) = &mut self.progress else {
            return;
        };
        if p.last.elapsed() < PROGRESS_EVERY {
            return;
        }
        p.last = Instant::now();
        let rate = p.scanned as f64 / p.start.elapsed().as_secs_f64().max(1e-9);
        let _ = write!(
            self.stderr,
            "\rshard {} of {}, group {}: {} keys scanned, {rate:.0} keys/s   ",
            self.shard + 1,
            self.shards,
            p.group,
            p.scanned
        );
        let _ = self.stderr.flush();
    }

    fn clear_progress(&mut self) {
        if self.progress.is_some() {
            let _ = write!(self.stderr, "\r{:72}\r", "");
            let _ = self.stderr.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls() {
        assert!(ttls_agree(-1, -1, 1000));
        assert!(ttls_agree(-2, -2, 1000));
        assert!(!ttls_agree(-1, -2, 1000));
        assert!(!ttls_agree(-1, 5000, 1000));
        assert!(ttls_agree(5000, 4000, 1000));
        assert!(!ttls_agree(5000, 3999, 1000));
        assert!(ttls_agree(0, 0, 0));
    }

    #[test]
    fn values_compare_as_data() {
        let b = |s: &str| Frame::bulk(s.to_owned());
        let arr = |items: &[&str]| Frame::Array(items.iter().map(|s| b(s)).collect());
        // Sets and hashes in any order; lists in theirs.
        assert_eq!(
            value_of(b"set", arr(&["a", "b"])),
            value_of(b"set", arr(&["b", "a"]))
        );
        assert_eq!(
            value_of(b"hash", arr(&["f", "1", "g", "2"])),
            value_of(b"hash", arr(&["g", "2", "f", "1"]))
        );
        assert_ne!(
            value_of(b"hash", arr(&["f", "1", "g", "2"])),
            value_of(b"hash", arr(&["f", "2", "g", "1"]))
        );
        assert_ne!(
            value_of(b"list", arr(&["a", "b"])),
            value_of(b"list", arr(&["b", "a"]))
        );
        // Scores as numbers.
        assert_eq!(
            value_of(b"zset", arr(&["m", "1"])),
            value_of(b"zset", arr(&["m", "1.0"]))
        );
        assert_ne!(
            value_of(b"zset", arr(&["m", "1"])),
            value_of(b"zset", arr(&["m", "2"]))
        );
        assert_eq!(value_of(b"list", arr(&[])), Value::Gone);
        assert_eq!(value_of(b"stream", b("x")), Value::Bytes(Bytes::from("x")));
    }

    #[test]
    fn differences_from_the_reference() {
        let string = |v: &str, ttl: i64| State::Present {
            kind: Bytes::from_static(b"string"),
            ttl,
            value: Value::Bytes(Bytes::copy_from_slice(v.as_bytes())),
        };
        let list = State::Present {
            kind: Bytes::from_static(b"list"),
            ttl: -1,
            value: Value::Unread,
        };
        let error = |ttl: i64| State::Present {
            kind: Bytes::from_static(b"stream"),
            ttl,
            value: Value::Error("ERR unknown command 'DUMP'".into()),
        };
        let diff = |states: &[State], reference| differences(states, reference, 1000);
        let different = |what: &[&'static str]| Difference::Different(what.to_vec());
        assert_eq!(diff(&[string("a", -1), string("a", -1)], 0), []);
        assert_eq!(diff(&[State::Missing, State::Missing], 0), []);
        assert_eq!(
            diff(&[string("a", -1), State::Missing, string("b", 5000)], 0),
            [(1, Difference::Missing), (2, different(&["value", "ttl"]))]
        );
        // Missing in the reference: said once, of the reference.
        assert_eq!(
            diff(&[string("a", -1), State::Missing, string("a", -1)], 1),
            [(1, Difference::Missing)]
        );
        assert_eq!(
            diff(&[string("a", -1), list.clone()], 0),
            [(1, different(&["type"]))]
        );
        assert_eq!(
            diff(&[error(-1), error(-1)], 0),
            [(1, different(&["unreadable"]))]
        );
        assert_eq!(diff(&[string("a", 3000), string("a", 3900)], 0), []);
    }

    #[test]
    fn keys_print_plain_or_quoted() {
        let text = |k: &[u8]| {
            let mut out = Vec::new();
            key_text(k, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(b"user:1"), "user:1");
        assert_eq!(text(b"a b"), "\"a b\"");
        assert_eq!(text(b""), "\"\"");
        assert_eq!(text(b"\x00\n"), "\"\\x00\\n\"");
    }

    #[test]
    fn summaries() {
        let mut t = Tally::new(2);
        t.keys = vec![1000, 998];
        assert_eq!(t.sizes(), "group 0 1000 keys, group 1 998 keys");
        assert_eq!(t.summary(false), "in agreement");
        t.missing[1] = 2;
        t.different[1] = 1;
        t.missing[0] = 1;
        assert_eq!(
            t.summary(false),
            "1 missing in group 0, 2 missing in group 1, 1 different in group 1"
        );
        t.copied = 3;
        t.deleted = 1;
        assert_eq!(t.totals(true), "4 differences; fixed: 3 copied, 1 deleted");
        assert_eq!(plural(1, "key"), "1 key");
    }

    #[test]
    fn arguments() {
        let a = CheckArgs::try_parse_from(["check"]).unwrap();
        assert_eq!(
            (a.verbose, a.fix, a.from_group, a.ttl_tolerance, a.batch),
            (false, false, None, 1000, 1000)
        );
        assert!(CheckArgs::try_parse_from(["check", "--fix"]).is_err());
        assert!(CheckArgs::try_parse_from(["check", "--batch", "0"]).is_err());
        let a = CheckArgs::try_parse_from(["check", "--fix", "--from-group", "1", "-v"]).unwrap();
        assert_eq!((a.verbose, a.fix, a.from_group), (true, true, Some(1)));
    }
}

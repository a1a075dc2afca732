//! The router: requests in, commands to nodes out, answers back.
//!
//! Nearly every request is one command for one shard (`GET`, `SET`,
//! `HINCRBY`), so that case allocates nothing here: its arguments are
//! shared with its transmits rather than copied, its one part is kept in
//! place rather than in a `Vec`, a read's replicas are worked out as it
//! fails over rather than listed up front, and a write's per-group outcomes
//! fit in a few bytes. Multi-shard requests take the general path.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use resp::Frame;

use crate::command::{Block, resolve};
use crate::config::SplitMix64;
use crate::error::{Failure, GroupOutcome, Outcome};
use crate::id::SeqHasher;
use crate::plan::{Merge, Planned, Target, plan_request, plan_transaction};
use crate::{
    Config, Epoch, GroupId, NodeId, ReadPreference, RequestId, RouteError, ShardId, Token, Topology,
};

/// A command's arguments, name first.
///
/// Cloning one is cheap: a request and every transmit of it (one per
/// replica group for a write, one per attempt for a read) share the
/// arguments instead of copying them. Make one from a `Vec<Bytes>`, or from
/// an array to skip the `Vec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(Arc<[Bytes]>);

impl Command {
    /// The arguments.
    pub fn args(&self) -> &[Bytes] {
        &self.0
    }
}

impl Deref for Command {
    type Target = [Bytes];

    fn deref(&self) -> &[Bytes] {
        &self.0
    }
}

impl From<Vec<Bytes>> for Command {
    fn from(args: Vec<Bytes>) -> Command {
        Command(args.into())
    }
}

impl<const N: usize> From<[Bytes; N]> for Command {
    fn from(args: [Bytes; N]) -> Command {
        Command(Arc::new(args))
    }
}

impl FromIterator<Bytes> for Command {
    fn from_iter<I: IntoIterator<Item = Bytes>>(args: I) -> Command {
        Command(args.into_iter().collect())
    }
}

/// A command to write to a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    /// The node.
    pub node: NodeId,
    /// Names the command when its reply comes back. Its
    /// [`epoch`](Token::epoch) says which connection to write it on.
    pub token: Token,
    /// The command, name first.
    pub command: Command,
    /// Whether the command may block for a long time (`BLPOP`...). A driver
    /// that pipelines many callers over one connection may want to give it
    /// a connection of its own; replies are matched by token either way.
    pub blocking: bool,
}

impl Transmit {
    /// Appends the command to `dst` in RESP.
    pub fn encode(&self, dst: &mut BytesMut) {
        resp::encode_command(dst, &self.command);
    }
}

/// Something the driver must know.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A request is done: here is its answer, or why there is none. A Redis
    /// error reply is an answer (`Ok(Frame::Error(..))`).
    Completed {
        /// The request, as [`Router::submit`] named it.
        id: RequestId,
        /// The answer.
        result: Result<Frame, RouteError>,
    },
    /// The node failed too many times in a row; requests avoid it until a
    /// probe finds it again.
    NodeDown {
        /// The node.
        node: NodeId,
    },
    /// A node that was down answered again.
    NodeUp {
        /// The node.
        node: NodeId,
    },
    /// A command to this node timed out: close the connection now, and drop
    /// the tokens queued on it. Its replies may still be on their way, and
    /// on that connection they would be taken for the answers to later
    /// commands; the router ignores any that the driver still hands in. The
    /// next command for the node carries `epoch`, on a new connection.
    ResetConnection {
        /// The node.
        node: NodeId,
        /// The epoch of the connection to open next.
        epoch: Epoch,
    },
}

/// The sans-I/O core of the distributed client.
///
/// The router never does I/O and never reads the clock. A driver feeds it
/// input and carries out its output:
///
/// - Input: [`submit`](Router::submit) (and [`submit_transaction`](Router::submit_transaction),
///   [`submit_to`](Router::submit_to)) for a caller's request;
///   [`handle_reply`](Router::handle_reply) for each reply a node sends;
///   [`handle_failure`](Router::handle_failure) when a connection cannot be
///   made or breaks; [`handle_timeout`](Router::handle_timeout) when the
///   instant from [`poll_timeout`](Router::poll_timeout) has come. The
///   `now` handed in never goes backwards.
/// - Output, after every input: write each [`poll_transmit`](Router::poll_transmit)
///   to its node, re-arm one timer from `poll_timeout`, and deliver each
///   [`poll_event`](Router::poll_event).
///
/// Connections: one per node at a time, opened on demand. Each transmit
/// carries the [`Epoch`] of the connection it belongs to; when it is newer
/// than the driver's connection to that node, the driver replaces the
/// connection (dropping the tokens queued on the old one) before writing.
/// A transmit whose epoch is older than [`Router::epoch`] has been given up
/// on and may be dropped. Replies are matched FIFO per connection (see
/// [`Token`]); RESP3 push frames are not replies and must not be handed in.
/// A transaction's transmits come out back to back: write them on one
/// connection, in order.
///
/// Health: a lost connection or a timeout is one failure of its node,
/// however many commands it took down, and any reply clears the count.
/// [`Config::failure_threshold`] failures in a row mark the node down
/// ([`Event::NodeDown`]): reads skip it and writes count it as failed. When
/// its [`Backoff`](crate::Backoff) runs out, `handle_timeout` emits a probe,
/// a `PING` transmit like any other (on a new epoch, so the driver connects
/// afresh). A reply brings the node back ([`Event::NodeUp`]); a failure, an
/// error reply or a timeout sets the next, longer, wait.
#[derive(Debug)]
pub struct Router {
    topology: Topology,
    config: Config,
    nodes: Vec<Node>,
    requests: HashMap<RequestId, Request, BuildHasherDefault<SeqHasher>>,
    /// Commands awaiting replies, by their first token's sequence number.
    subs: HashMap<u64, Sub, BuildHasherDefault<SeqHasher>>,
    /// `(deadline, sub)` of blocking commands, soonest first. Other
    /// commands' deadlines are kept per node (see [`Node::deadlines`]).
    blocking_deadlines: BTreeSet<(Instant, u64)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_request: u64,
    next_token: u64,
    /// Where the next round-robin read starts.
    read_turn: u64,
    /// The shard the next any-shard command goes to.
    any_turn: u64,
    rng: SplitMix64,
}

#[derive(Debug)]
struct Node {
    epoch: Epoch,
    failures: u32,
    health: Health,
    latency: Option<Duration>,
    /// `(deadline, sub)` of the node's commands that do not block, in the
    /// order they were sent. They share one connection, which answers in
    /// that order, and one timeout, so this is soonest first too and the
    /// command answered is almost always the front: no search, no tree.
    deadlines: VecDeque<(Instant, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Up,
    /// Avoided until `retry_at` (`None`: a wait too long to represent).
    Down {
        attempt: u32,
        retry_at: Option<Instant>,
    },
    /// Down, with a `PING` on its way.
    Probing {
        attempt: u32,
    },
}

#[derive(Debug)]
struct Request {
    parts: Parts,
    merge: Merge,
    /// Parts without a result yet.
    open: usize,
}

/// A request's parts: one, kept in place, or several.
#[derive(Debug)]
enum Parts {
    One(PartState),
    Many(Vec<PartState>),
}

impl Parts {
    fn len(&self) -> usize {
        match self {
            Parts::One(_) => 1,
            Parts::Many(parts) => parts.len(),
        }
    }

    fn get(&self, p: usize) -> Option<&PartState> {
        match self {
            Parts::One(part) => (p == 0).then_some(part),
            Parts::Many(parts) => parts.get(p),
        }
    }

    fn get_mut(&mut self, p: usize) -> Option<&mut PartState> {
        match self {
            Parts::One(part) => (p == 0).then_some(part),
            Parts::Many(parts) => parts.get_mut(p),
        }
    }
}

#[derive(Debug)]
struct PartState {
    shard: ShardId,
    commands: Commands,
    block: Option<Block>,
    result: Option<Result<Frame, RouteError>>,
    mode: Mode,
}

/// What a part writes to a node: one command, or a transaction's run.
#[derive(Debug, Clone)]
enum Commands {
    One(Command),
    Run(Vec<Command>),
}

impl Commands {
    fn as_slice(&self) -> &[Command] {
        match self {
            Commands::One(command) => std::slice::from_ref(command),
            Commands::Run(run) => run,
        }
    }
}

impl From<Vec<Vec<Bytes>>> for Commands {
    fn from(mut commands: Vec<Vec<Bytes>>) -> Commands {
        if commands.len() == 1
            && let Some(command) = commands.pop()
        {
            return Commands::One(command.into());
        }
        Commands::Run(commands.into_iter().map(Command::from).collect())
    }
}

#[derive(Debug)]
enum Mode {
    /// One replica at a time, in `candidates` order.
    Read {
        candidates: Candidates,
        /// The next candidate to try; the one in flight is `next - 1`.
        next: usize,
        /// `submit_to`: try the node even if it is down.
        forced: bool,
        /// The candidates that failed or were down, in order. The attempt
        /// in flight, if any, is number `failed.len()`.
        failed: Vec<GroupOutcome>,
    },
    /// Every group at once.
    Write {
        outcomes: Outcomes,
        acks: usize,
        needed: usize,
        first: Option<Frame>,
    },
}

/// The replicas a read may try, best first.
#[derive(Debug)]
enum Candidates {
    /// Every group, from `start` on and around.
    Rotated { start: u32 },
    /// This list (the fastest first).
    Listed(Vec<(GroupId, NodeId)>),
    /// One node (`submit_to`).
    Node(GroupId, NodeId),
}

impl Candidates {
    /// Candidate `i` for `shard`.
    fn get(&self, i: usize, shard: ShardId, topology: &Topology) -> Option<(GroupId, NodeId)> {
        match self {
            Candidates::Rotated { start } => {
                let groups = topology.groups();
                let i = u32::try_from(i).ok().filter(|&i| i < groups)?;
                let g = (start + i) % groups;
                Some((GroupId(g), NodeId(g * topology.shards() + shard.0)))
            }
            Candidates::Listed(list) => list.get(i).copied(),
            Candidates::Node(group, node) => (i == 0).then_some((*group, *node)),
        }
    }
}

/// A write part's outcome in each group, by group: in place for up to
/// eight groups, which covers any replication factor in use.
#[derive(Debug)]
enum Outcomes {
    Inline { len: u8, items: [Outcome; 8] },
    Heap(Vec<Outcome>),
}

impl Outcomes {
    fn new(groups: usize) -> Outcomes {
        match u8::try_from(groups) {
            Ok(len) if len <= 8 => Outcomes::Inline {
                len,
                items: [Outcome::Pending; 8],
            },
            _ => Outcomes::Heap(vec![Outcome::Pending; groups]),
        }
    }

    fn as_slice(&self) -> &[Outcome] {
        match self {
            Outcomes::Inline { len, items } => &items[..usize::from(*len)],
            Outcomes::Heap(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Outcome] {
        match self {
            Outcomes::Inline { len, items } => &mut items[..usize::from(*len)],
            Outcomes::Heap(v) => v,
        }
    }
}

/// One part sent to one node: one command, or a transaction's run of them.
#[derive(Debug)]
struct Sub {
    owner: Owner,
    node: NodeId,
    epoch: Epoch,
    sent_at: Instant,
    deadline: Option<Instant>,
    /// The token whose reply comes next, and one past the last.
    next: u64,
    end: u64,
    blocking: bool,
}

#[derive(Debug, Clone, Copy)]
enum Owner {
    /// `slot` numbers the part's attempt (reads) or is its group (writes).
    Part {
        request: RequestId,
        part: usize,
        slot: usize,
    },
    Probe,
}

impl Router {
    /// A router for `topology`, with every node up.
    pub fn new(topology: Topology, config: Config) -> Router {
        let nodes = (0..topology.len())
            .map(|_| Node {
                epoch: Epoch(0),
                failures: 0,
                health: Health::Up,
                latency: None,
                deadlines: VecDeque::new(),
            })
            .collect();
        Router {
            rng: SplitMix64::new(config.seed),
            topology,
            config,
            nodes,
            requests: HashMap::default(),
            subs: HashMap::default(),
            blocking_deadlines: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_request: 0,
            next_token: 0,
            read_turn: 0,
            any_turn: 0,
        }
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Submits a command (name first), planned by [`plan`](crate::plan).
    ///
    /// Fails at once when the command cannot be routed: unknown, refused,
    /// the wrong arity, keys on different shards for a command that cannot
    /// be split. Otherwise the answer comes as [`Event::Completed`], maybe
    /// already by the next `poll_event` (when every replica is down).
    pub fn submit(
        &mut self,
        now: Instant,
        args: impl Into<Command>,
    ) -> Result<RequestId, RouteError> {
        let command = args.into();
        let planned = plan_request(&self.topology, &command)?;
        Ok(self.start(now, planned, command))
    }

    /// Submits a transaction: the commands are sent between `MULTI` and
    /// `EXEC` to one shard, whose keys they must all share. The answer is
    /// `EXEC`'s. `WATCH` is not supported: it needs a connection of its own.
    pub fn submit_transaction(
        &mut self,
        now: Instant,
        commands: Vec<Vec<Bytes>>,
    ) -> Result<RequestId, RouteError> {
        let plan = plan_transaction(&self.topology, commands)?;
        Ok(self.start_many(now, plan))
    }

    /// Sends a command to one node as it is: no command table, no failover,
    /// even if the node is down. For commands the router does not route
    /// (`CLIENT LIST`, `INFO` of a given node, unknown commands).
    pub fn submit_to(
        &mut self,
        now: Instant,
        node: NodeId,
        args: impl Into<Command>,
    ) -> Result<RequestId, RouteError> {
        let (group, shard) = self
            .topology
            .position(node)
            .ok_or(RouteError::UnknownNode(node))?;
        let command = args.into();
        if command.is_empty() {
            return Err(RouteError::EmptyCommand);
        }
        let block = resolve(&command).ok().and_then(|info| info.block(&command));
        let part = PartState {
            shard,
            commands: Commands::One(command),
            block,
            result: None,
            mode: Mode::Read {
                candidates: Candidates::Node(group, node),
                next: 0,
                forced: true,
                failed: Vec::new(),
            },
        };
        Ok(self.start_parts(now, Parts::One(part), Merge::Single))
    }

    /// A node replied. `token` is the front of the node's connection queue:
    /// the oldest command written on it and not yet answered.
    ///
    /// Replies for tokens the router gave up on (a past epoch, a timeout)
    /// are ignored.
    pub fn handle_reply(&mut self, now: Instant, node: NodeId, token: Token, frame: Frame) {
        let first = token.sub;
        let Some(sub) = self.subs.get_mut(&first) else {
            return;
        };
        if sub.node != node || sub.epoch != token.epoch || sub.next != token.seq {
            return;
        }
        if token.seq + 1 < sub.end {
            // A transaction's `+OK` or `+QUEUED`: `EXEC` answers for all.
            sub.next += 1;
            return;
        }
        let Some(sub) = self.subs.remove(&first) else {
            return;
        };
        self.forget_deadline(first, &sub);
        if !sub.blocking {
            self.sample_latency(node, now.saturating_duration_since(sub.sent_at));
        }
        match sub.owner {
            // A node answering `PING` with an error (`-LOADING`) is not back.
            Owner::Probe if frame.is_error() => self.count_failure(now, node),
            Owner::Probe => self.node_alive(node),
            Owner::Part {
                request,
                part,
                slot,
            } => {
                self.node_alive(node);
                self.part_reply(request, part, slot, frame);
            }
        }
    }

    /// The connection to `node` of epoch `epoch` failed: it could not be
    /// opened ([`Failure::Connect`]), it broke ([`Failure::Closed`]), or the
    /// node sent something that is not RESP ([`Failure::Protocol`]).
    ///
    /// Every command on that connection fails over or fails, and the next
    /// one opens a new connection. Reports about an older epoch are ignored.
    /// A connection closed while idle does not count against the node's
    /// health.
    pub fn handle_failure(&mut self, now: Instant, node: NodeId, epoch: Epoch, failure: Failure) {
        let Some(state) = self.nodes.get(node.0 as usize) else {
            return;
        };
        if state.epoch != epoch {
            return;
        }
        let busy = self.subs.values().any(|s| s.node == node);
        let count = busy || failure == Failure::Connect;
        self.incident(now, node, failure, None, count);
    }

    /// Time has come to `now`: commands past their deadline time out (their
    /// connections are reset, see [`Event::ResetConnection`]), and nodes
    /// whose backoff has run out are probed with a `PING`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Soonest first across all nodes, as one queue would have them; a
        // failover sent meanwhile may be due already (a zero timeout).
        loop {
            let mut expired: Vec<(Instant, u64)> = self
                .blocking_deadlines
                .range(..=(now, u64::MAX))
                .copied()
                .collect();
            for node in &self.nodes {
                expired.extend(node.deadlines.iter().take_while(|&&(d, _)| d <= now));
            }
            expired.sort_unstable();
            let mut fired = false;
            for (deadline, first) in expired {
                // An earlier timeout may have reset this one's connection.
                let Some(sub) = self.subs.get(&first) else {
                    continue;
                };
                if sub.deadline != Some(deadline) {
                    continue;
                }
                fired = true;
                let (node, sent_at, blocking) = (sub.node, sub.sent_at, sub.blocking);
                if !blocking {
                    self.sample_latency(node, now.saturating_duration_since(sent_at));
                }
                self.incident(now, node, Failure::Timeout, Some(first), true);
            }
            if !fired {
                break;
            }
        }
        for i in 0..self.nodes.len() {
            if let Health::Down {
                attempt,
                retry_at: Some(at),
            } = self.nodes[i].health
                && at <= now
            {
                self.nodes[i].health = Health::Probing { attempt };
                let ping = [Command::from([Bytes::from_static(b"PING")])];
                self.send(now, NodeId(i as u32), &ping, None, Owner::Probe);
            }
        }
    }

    /// The next command to write, if any.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When to call [`handle_timeout`](Router::handle_timeout) next, if
    /// anything waits on time.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let blocking = self.blocking_deadlines.first().map(|&(d, _)| d);
        let nodes = self.nodes.iter().filter_map(|n| {
            let deadline = n.deadlines.front().map(|&(d, _)| d);
            let retry = match n.health {
                Health::Down { retry_at, .. } => retry_at,
                _ => None,
            };
            deadline.into_iter().chain(retry).min()
        });
        blocking.into_iter().chain(nodes).min()
    }

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The current connection epoch of `node`.
    pub fn epoch(&self, node: NodeId) -> Option<Epoch> {
        self.nodes.get(node.0 as usize).map(|n| n.epoch)
    }

    /// Whether `node` is up (not down, not being probed).
    pub fn is_up(&self, node: NodeId) -> bool {
        self.nodes
            .get(node.0 as usize)
            .is_some_and(|n| n.health == Health::Up)
    }

    /// The recent latency of `node`, as [`ReadPreference::FastestRecently`]
    /// sees it.
    pub fn latency(&self, node: NodeId) -> Option<Duration> {
        self.nodes.get(node.0 as usize).and_then(|n| n.latency)
    }

    /// Requests not yet completed.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// Commands (and runs of commands) sent and not yet answered, including
    /// those of completed requests and probes.
    pub fn in_flight(&self) -> usize {
        self.subs.len()
    }

    fn start(&mut self, now: Instant, planned: Planned, command: Command) -> RequestId {
        match planned {
            Planned::One {
                shard,
                target,
                block,
                merge,
                rewritten,
            } => {
                let command = rewritten.map_or(command, Command::from);
                let part = self.part(shard, target, Commands::One(command), block);
                self.start_parts(now, Parts::One(part), merge)
            }
            Planned::Many(plan) => self.start_many(now, plan),
        }
    }

    fn start_many(&mut self, now: Instant, plan: crate::Plan) -> RequestId {
        let mut parts: Vec<PartState> = plan
            .parts
            .into_iter()
            .map(|p| self.part(p.shard, p.target, p.commands.into(), p.block))
            .collect();
        let parts = match parts.len() {
            1 => Parts::One(parts.remove(0)),
            _ => Parts::Many(parts),
        };
        self.start_parts(now, parts, plan.merge)
    }

    /// A part's state before anything is sent; `None` picks the next
    /// shard in turn.
    fn part(
        &mut self,
        shard: Option<ShardId>,
        target: Target,
        commands: Commands,
        block: Option<Block>,
    ) -> PartState {
        let shard = shard.unwrap_or_else(|| {
            self.any_turn = self.any_turn.wrapping_add(1);
            ShardId(((self.any_turn - 1) % u64::from(self.topology.shards())) as u32)
        });
        let mode = match target {
            Target::OneReplica => Mode::Read {
                candidates: self.read_order(shard),
                next: 0,
                forced: false,
                failed: Vec::new(),
            },
            Target::EveryReplica => Mode::Write {
                outcomes: Outcomes::new(self.topology.groups() as usize),
                acks: 0,
                needed: self.config.write_policy.needed(self.topology.groups()),
                first: None,
            },
        };
        PartState {
            shard,
            commands,
            block,
            result: None,
            mode,
        }
    }

    fn start_parts(&mut self, now: Instant, parts: Parts, merge: Merge) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let count = parts.len();
        self.requests.insert(
            id,
            Request {
                parts,
                merge,
                open: count,
            },
        );
        if count == 0 {
            self.finish(id);
        }
        for part in 0..count {
            let write = matches!(
                self.requests.get(&id).and_then(|r| r.parts.get(part)),
                Some(PartState {
                    mode: Mode::Write { .. },
                    ..
                })
            );
            if write {
                self.write_all(now, id, part);
            } else {
                self.read_next(now, id, part);
            }
        }
        id
    }

    /// The groups to read shard `shard` from, best first.
    fn read_order(&mut self, shard: ShardId) -> Candidates {
        let groups = self.topology.groups();
        match self.config.read_preference {
            ReadPreference::RoundRobin => {
                let start = self.read_turn % u64::from(groups.max(1));
                self.read_turn = self.read_turn.wrapping_add(1);
                Candidates::Rotated {
                    start: start as u32,
                }
            }
            ReadPreference::FastestRecently if groups > 1 => {
                let shards = self.topology.shards();
                let latency = |g: u32| self.nodes[(g * shards + shard.0) as usize].latency;
                let mut order: Vec<u32> = (0..groups).collect();
                order.sort_by_key(|&g| (latency(g).unwrap_or(Duration::ZERO), g));
                Candidates::Listed(
                    order
                        .into_iter()
                        .map(|g| (GroupId(g), NodeId(g * shards + shard.0)))
                        .collect(),
                )
            }
            _ => Candidates::Rotated { start: 0 },
        }
    }

    /// Sends a read part to its next candidate that is up, or fails it.
    fn read_next(&mut self, now: Instant, id: RequestId, p: usize) {
        let (nodes, topology) = (&self.nodes, &self.topology);
        let Some(part) = self.requests.get_mut(&id).and_then(|r| r.parts.get_mut(p)) else {
            return;
        };
        let Mode::Read {
            candidates,
            next,
            forced,
            failed,
        } = &mut part.mode
        else {
            return;
        };
        while let Some((group, node)) = candidates.get(*next, part.shard, topology) {
            *next += 1;
            if !*forced && nodes[node.0 as usize].health != Health::Up {
                failed.push(GroupOutcome {
                    group,
                    node,
                    outcome: Outcome::Failed(Failure::Down),
                });
                continue;
            }
            let owner = Owner::Part {
                request: id,
                part: p,
                slot: failed.len(),
            };
            let (commands, block) = (part.commands.clone(), part.block);
            self.send(now, node, commands.as_slice(), block, owner);
            return;
        }
        let err = RouteError::Unavailable {
            shard: part.shard,
            attempts: failed.clone(),
        };
        self.part_done(id, p, Err(err));
    }

    /// Sends a write part to every group that is up.
    fn write_all(&mut self, now: Instant, id: RequestId, p: usize) {
        let Some(part) = self.requests.get(&id).and_then(|r| r.parts.get(p)) else {
            return;
        };
        let (shard, commands, block) = (part.shard, part.commands.clone(), part.block);
        for g in 0..self.topology.groups() {
            let node = NodeId(g * self.topology.shards() + shard.0);
            let outcome = if self.nodes[node.0 as usize].health == Health::Up {
                let owner = Owner::Part {
                    request: id,
                    part: p,
                    slot: g as usize,
                };
                self.send(now, node, commands.as_slice(), block, owner);
                Outcome::Pending
            } else {
                Outcome::Failed(Failure::Down)
            };
            if let Some(Mode::Write { outcomes, .. }) = self
                .requests
                .get_mut(&id)
                .and_then(|r| r.parts.get_mut(p))
                .map(|part| &mut part.mode)
                && let Some(o) = outcomes.as_mut_slice().get_mut(g as usize)
            {
                *o = outcome;
            }
        }
        self.check_write(id, p);
    }

    /// Fails a write part once its policy can no longer be met.
    fn check_write(&mut self, id: RequestId, p: usize) {
        let Some(part) = self.requests.get(&id).and_then(|r| r.parts.get(p)) else {
            return;
        };
        let Mode::Write {
            outcomes,
            acks,
            needed,
            ..
        } = &part.mode
        else {
            return;
        };
        let pending = outcomes
            .as_slice()
            .iter()
            .filter(|&&o| o == Outcome::Pending)
            .count();
        if part.result.is_none() && acks + pending < *needed {
            let shards = self.topology.shards();
            let outcomes = (0u32..)
                .zip(outcomes.as_slice())
                .map(|(g, &outcome)| GroupOutcome {
                    group: GroupId(g),
                    node: NodeId(g * shards + part.shard.0),
                    outcome,
                })
                .collect();
            let err = RouteError::WriteFailed {
                shard: part.shard,
                policy: self.config.write_policy,
                acks: *acks,
                needed: *needed,
                outcomes,
            };
            self.part_done(id, p, Err(err));
        }
    }

    /// Writes `commands` to `node` back to back and waits for the last reply.
    fn send(
        &mut self,
        now: Instant,
        node: NodeId,
        commands: &[Command],
        block: Option<Block>,
        owner: Owner,
    ) {
        debug_assert!(!commands.is_empty());
        let epoch = self.nodes[node.0 as usize].epoch;
        let first = self.next_token;
        for command in commands {
            self.transmits.push_back(Transmit {
                node,
                token: Token {
                    seq: self.next_token,
                    sub: first,
                    epoch,
                },
                command: command.clone(),
                blocking: block.is_some(),
            });
            self.next_token += 1;
        }
        let timeout = self.config.timeout;
        // A deadline too far to represent is no deadline.
        let mut deadline = match block {
            None => now.checked_add(timeout),
            Some(Block::For(wait)) => wait.checked_add(timeout).and_then(|d| now.checked_add(d)),
            Some(Block::Forever) => None,
        };
        if let Some(at) = deadline {
            if block.is_some() {
                self.blocking_deadlines.insert((at, first));
            } else {
                let queue = &mut self.nodes[node.0 as usize].deadlines;
                // Kept in order even if `now` went backwards.
                let at = queue.back().map_or(at, |&(last, _)| at.max(last));
                queue.push_back((at, first));
                deadline = Some(at);
            }
        }
        self.subs.insert(
            first,
            Sub {
                owner,
                node,
                epoch,
                sent_at: now,
                deadline,
                next: first,
                end: self.next_token,
                blocking: block.is_some(),
            },
        );
    }

    /// Takes a sub that is leaving `subs` off the deadline queues.
    fn forget_deadline(&mut self, first: u64, sub: &Sub) {
        let Some(deadline) = sub.deadline else {
            return;
        };
        if sub.blocking {
            self.blocking_deadlines.remove(&(deadline, first));
            return;
        }
        let queue = &mut self.nodes[sub.node.0 as usize].deadlines;
        if queue.front().is_some_and(|&(_, f)| f == first) {
            queue.pop_front();
        } else if let Some(i) = queue.iter().position(|&(_, f)| f == first) {
            queue.remove(i);
        }
    }

    fn part_reply(&mut self, id: RequestId, p: usize, slot: usize, frame: Frame) {
        let Some(part) = self.requests.get_mut(&id).and_then(|r| r.parts.get_mut(p)) else {
            return;
        };
        if part.result.is_some() {
            // A write the policy had already decided.
            return;
        }
        let done = match &mut part.mode {
            Mode::Read { .. } => Some(frame),
            Mode::Write {
                outcomes,
                acks,
                needed,
                first,
            } => {
                if let Some(o) = outcomes.as_mut_slice().get_mut(slot) {
                    *o = Outcome::Replied;
                }
                *acks += 1;
                // The first group to answer speaks for all.
                first.get_or_insert(frame);
                if *acks >= *needed { first.take() } else { None }
            }
        };
        if let Some(frame) = done {
            self.part_done(id, p, Ok(frame));
        }
    }

    fn part_failed(&mut self, now: Instant, id: RequestId, p: usize, slot: usize, why: Failure) {
        let topology = &self.topology;
        let Some(part) = self.requests.get_mut(&id).and_then(|r| r.parts.get_mut(p)) else {
            return;
        };
        if part.result.is_some() {
            return;
        }
        match &mut part.mode {
            Mode::Read {
                candidates,
                next,
                failed,
                ..
            } => {
                if slot == failed.len()
                    && let Some((group, node)) = next
                        .checked_sub(1)
                        .and_then(|i| candidates.get(i, part.shard, topology))
                {
                    failed.push(GroupOutcome {
                        group,
                        node,
                        outcome: Outcome::Failed(why),
                    });
                }
                self.read_next(now, id, p);
            }
            Mode::Write { outcomes, .. } => {
                if let Some(o) = outcomes.as_mut_slice().get_mut(slot) {
                    *o = Outcome::Failed(why);
                }
                self.check_write(id, p);
            }
        }
    }

    fn part_done(&mut self, id: RequestId, p: usize, result: Result<Frame, RouteError>) {
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        let Some(part) = request.parts.get_mut(p) else {
            return;
        };
        if part.result.is_none() {
            part.result = Some(result);
            request.open -= 1;
        }
        if request.open == 0 {
            self.finish(id);
        }
    }

    fn finish(&mut self, id: RequestId) {
        let Some(request) = self.requests.remove(&id) else {
            return;
        };
        let parts = match request.parts {
            Parts::One(part) => match (part.result, &request.merge) {
                // The usual answer: one part's, as it is.
                (Some(Ok(frame)), Merge::Single) => {
                    let result = Ok(frame);
                    self.events.push_back(Event::Completed { id, result });
                    return;
                }
                (Some(Err(err)), _) => {
                    let result = Err(err);
                    self.events.push_back(Event::Completed { id, result });
                    return;
                }
                (result, _) => vec![PartState { result, ..part }],
            },
            Parts::Many(parts) => parts,
        };
        let mut frames = Vec::with_capacity(parts.len());
        let mut succeeded = Vec::new();
        let mut failed = Vec::new();
        let single = parts.len() == 1;
        for part in parts {
            match part.result {
                Some(Ok(frame)) => {
                    frames.push(frame);
                    succeeded.push(part.shard);
                }
                Some(Err(err)) if single => {
                    let result = Err(err);
                    self.events.push_back(Event::Completed { id, result });
                    return;
                }
                Some(Err(err)) => failed.push((part.shard, err)),
                None => {}
            }
        }
        let result = if failed.is_empty() {
            request.merge.apply(frames)
        } else {
            Err(RouteError::Partial { succeeded, failed })
        };
        self.events.push_back(Event::Completed { id, result });
    }

    /// The connection to `node` is gone (`culprit` timed out, or the driver
    /// said so): start a new epoch, and fail every command that was on it.
    fn incident(
        &mut self,
        now: Instant,
        node: NodeId,
        cause: Failure,
        culprit: Option<u64>,
        count: bool,
    ) {
        let state = &mut self.nodes[node.0 as usize];
        state.epoch = Epoch(state.epoch.0.wrapping_add(1));
        state.deadlines.clear();
        if culprit.is_some() {
            let epoch = state.epoch;
            self.events
                .push_back(Event::ResetConnection { node, epoch });
        }
        // Health first, so that failovers below already avoid the node.
        if count {
            self.count_failure(now, node);
        }
        // Oldest first, as they were sent.
        let mut lost: Vec<u64> = self
            .subs
            .iter()
            .filter(|(_, s)| s.node == node)
            .map(|(&first, _)| first)
            .collect();
        lost.sort_unstable();
        for first in lost {
            let Some(sub) = self.subs.remove(&first) else {
                continue;
            };
            if sub.blocking {
                self.forget_deadline(first, &sub);
            }
            // Commands queued behind one that timed out are lost because
            // their connection is reset.
            let why = match culprit {
                Some(c) if c != first => Failure::Reset,
                _ => cause,
            };
            if let Owner::Part {
                request,
                part,
                slot,
            } = sub.owner
            {
                self.part_failed(now, request, part, slot, why);
            }
        }
    }

    /// One more failure in a row: maybe mark the node down, or push its
    /// next probe further away.
    fn count_failure(&mut self, now: Instant, node: NodeId) {
        let threshold = self.config.failure_threshold.max(1);
        let state = &mut self.nodes[node.0 as usize];
        state.failures = state.failures.saturating_add(1);
        let attempt = match state.health {
            Health::Up if state.failures >= threshold => {
                self.events.push_back(Event::NodeDown { node });
                0
            }
            Health::Probing { attempt } => attempt.saturating_add(1),
            Health::Up | Health::Down { .. } => return,
        };
        let wait = self.config.backoff.delay(attempt, self.rng.unit());
        state.health = Health::Down {
            attempt,
            retry_at: now.checked_add(wait),
        };
    }

    fn node_alive(&mut self, node: NodeId) {
        let state = &mut self.nodes[node.0 as usize];
        state.failures = 0;
        if state.health != Health::Up {
            state.health = Health::Up;
            self.events.push_back(Event::NodeUp { node });
        }
    }

    fn sample_latency(&mut self, node: NodeId, sample: Duration) {
        let state = &mut self.nodes[node.0 as usize];
        state.latency = Some(match state.latency {
            None => sample,
            Some(old) => (old.saturating_mul(3) / 4).saturating_add(sample / 4),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(config: Config) -> Router {
        Router::new(Topology::new([["a", "b"], ["c", "d"]]).unwrap(), config)
    }

    fn cmd(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn drain(r: &mut Router) -> Vec<Transmit> {
        std::iter::from_fn(|| r.poll_transmit()).collect()
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn stale_and_mismatched_replies_are_ignored() {
        // The one clock read in this crate, as a starting point for a test.
        let t0 = Instant::now();
        let mut r = router(Config::default());
        let id = r.submit(t0, cmd("GET k")).unwrap();
        let tx = drain(&mut r);
        assert_eq!(tx.len(), 1);
        let (node, token) = (tx[0].node, tx[0].token);
        let other = NodeId(node.0 ^ 1);
        r.handle_reply(t0, other, token, Frame::bulk("wrong node"));
        let stale = Token {
            epoch: Epoch(9),
            ..token
        };
        r.handle_reply(t0, node, stale, Frame::bulk("wrong epoch"));
        r.handle_reply(t0, NodeId(99), token, Frame::bulk("no such node"));
        r.handle_failure(t0, NodeId(99), Epoch(0), Failure::Closed);
        r.handle_failure(t0, node, Epoch(5), Failure::Closed);
        assert_eq!(r.poll_event(), None);
        r.handle_reply(t0, node, token, Frame::bulk("v"));
        assert_eq!(
            r.poll_event(),
            Some(Event::Completed {
                id,
                result: Ok(Frame::bulk("v"))
            })
        );
        // A second reply for the same token answers nothing.
        r.handle_reply(t0, node, token, Frame::bulk("again"));
        assert_eq!(r.poll_event(), None);
        assert_eq!(r.in_flight(), 0);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn submit_errors_are_synchronous() {
        let t0 = Instant::now();
        let mut r = router(Config::default());
        assert_eq!(r.submit(t0, vec![]), Err(RouteError::EmptyCommand));
        assert!(matches!(
            r.submit(t0, cmd("NOPE x")),
            Err(RouteError::UnknownCommand(_))
        ));
        assert_eq!(
            r.submit_to(t0, NodeId(4), cmd("PING")),
            Err(RouteError::UnknownNode(NodeId(4)))
        );
        assert_eq!(
            r.submit_to(t0, NodeId(3), vec![]),
            Err(RouteError::EmptyCommand)
        );
        assert_eq!(r.poll_transmit(), None);
        assert_eq!(r.pending_requests(), 0);
        let id = r.submit_to(t0, NodeId(3), cmd("NOPE x")).unwrap();
        let tx = drain(&mut r);
        assert_eq!((tx.len(), tx[0].node), (1, NodeId(3)));
        let mut wire = BytesMut::new();
        tx[0].encode(&mut wire);
        assert_eq!(&wire[..], b"*2\r\n$4\r\nNOPE\r\n$1\r\nx\r\n");
        r.handle_reply(
            t0,
            NodeId(3),
            tx[0].token,
            Frame::error("ERR unknown command"),
        );
        assert_eq!(
            r.poll_event(),
            Some(Event::Completed {
                id,
                result: Ok(Frame::error("ERR unknown command"))
            })
        );
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn a_node_queue_of_deadlines_survives_replies_out_of_order() {
        let t0 = Instant::now();
        let config = Config::default();
        let timeout = config.timeout;
        let mut r = Router::new(Topology::new([["a"]]).unwrap(), config);
        let ids: Vec<RequestId> = (0..3)
            .map(|i| {
                let now = t0 + Duration::from_millis(i);
                r.submit(now, [Bytes::from("GET"), Bytes::from(format!("k{i}"))])
                    .unwrap()
            })
            .collect();
        let tx = drain(&mut r);
        assert_eq!(r.poll_timeout(), Some(t0 + timeout));
        // The middle one first: a well-behaved node never does this, but
        // the router must not lose track of the others.
        r.handle_reply(t0, tx[1].node, tx[1].token, Frame::bulk("1"));
        assert_eq!(r.poll_timeout(), Some(t0 + timeout));
        r.handle_reply(t0, tx[0].node, tx[0].token, Frame::bulk("0"));
        assert_eq!(
            r.poll_timeout(),
            Some(t0 + Duration::from_millis(2) + timeout)
        );
        let done: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
        assert_eq!(done.len(), 2);
        // The last one times out on time, and alone.
        r.handle_timeout(t0 + Duration::from_millis(1) + timeout);
        assert_eq!(r.poll_event(), None);
        r.handle_timeout(t0 + Duration::from_millis(2) + timeout);
        assert!(matches!(
            r.poll_event(),
            Some(Event::ResetConnection {
                epoch: Epoch(1),
                ..
            })
        ));
        assert!(matches!(
            r.poll_event(),
            Some(Event::Completed { id, result: Err(RouteError::Unavailable { .. }) }) if id == ids[2]
        ));
        assert_eq!((r.in_flight(), r.poll_timeout()), (0, None));
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn writes_to_more_than_eight_groups_report_every_group() {
        let t0 = Instant::now();
        let config = Config {
            write_policy: crate::WritePolicy::All,
            ..Config::default()
        };
        let groups: Vec<[String; 1]> = (0..9).map(|g| [format!("n{g}")]).collect();
        let mut r = Router::new(Topology::new(groups).unwrap(), config);
        let id = r.submit(t0, cmd("SET k v")).unwrap();
        let tx = drain(&mut r);
        assert_eq!(tx.len(), 9);
        for t in &tx[..8] {
            r.handle_reply(t0, t.node, t.token, Frame::simple("OK"));
        }
        r.handle_failure(t0, tx[8].node, tx[8].token.epoch(), Failure::Closed);
        let Some(Event::Completed {
            id: done,
            result: Err(RouteError::WriteFailed { acks, outcomes, .. }),
        }) = r.poll_event()
        else {
            panic!("the write should fail");
        };
        assert_eq!((done, acks, outcomes.len()), (id, 8, 9));
        assert_eq!(outcomes[8].node, NodeId(8));
        assert_eq!(outcomes[8].outcome, Outcome::Failed(Failure::Closed));
        assert!(outcomes[..8].iter().all(|o| o.outcome == Outcome::Replied));
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn a_transaction_shares_one_command_list_with_its_transmits() {
        let t0 = Instant::now();
        let topology = Topology::new([["a"], ["b"]]).unwrap();
        let mut r = Router::new(topology, Config::default());
        let id = r
            .submit_transaction(t0, vec![cmd("INCR a"), cmd("INCR b")])
            .unwrap();
        let tx = drain(&mut r);
        // Every group runs it (a write), back to back on one connection;
        // the first group's EXEC answers.
        let first = tx[0].node;
        let names: Vec<&[u8]> = tx.iter().map(|t| &t.command[0][..]).collect();
        let run = [&b"MULTI"[..], b"INCR", b"INCR", b"EXEC"];
        assert_eq!(names, [run, run].concat());
        assert!(tx[..4].iter().all(|t| t.node == first));
        for t in tx.iter().filter(|t| t.node == first) {
            let reply = if &t.command[0][..] == b"EXEC" {
                Frame::Array(vec![Frame::Integer(1), Frame::Integer(1)])
            } else {
                Frame::simple("QUEUED")
            };
            r.handle_reply(t0, t.node, t.token, reply);
        }
        assert_eq!(
            r.poll_event(),
            Some(Event::Completed {
                id,
                result: Ok(Frame::Array(vec![Frame::Integer(1), Frame::Integer(1)]))
            })
        );
    }
}

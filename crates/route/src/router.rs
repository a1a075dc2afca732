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
use crate::trust::{self, Doubt, Identity, Trust};
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
    /// What the router believes of a node's data changed (see [`Trust`]).
    /// A node that became [`Trust::Unverified`] while up wants a repair.
    Trust {
        /// The node.
        node: NodeId,
        /// What it is now.
        trust: Trust,
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
    /// When every node's marker and hints are read again.
    recheck_at: Option<Instant>,
}

#[derive(Debug)]
struct Node {
    epoch: Epoch,
    failures: u32,
    health: Health,
    latency: Option<Duration>,
    trust: Trust,
    /// The `run_id` of the node's process, as its last connection said.
    run_id: Option<Bytes>,
    /// Whether it missed a write of this router's since it was last
    /// verified, and which keys (all of them once there are too many to
    /// keep, or the write had none): its answers for those are not taken
    /// even as a last resort.
    missed: bool,
    missed_keys: std::collections::HashSet<Bytes>,
    missed_all: bool,
    /// Keys hinted for it since it was last verified; past the limit, the
    /// resync flag instead.
    hinted: u64,
    /// Resync flags set for it: each flag's value is the router's nonce
    /// and this count.
    flags: u64,
    /// Whether a marker for its `run_id` is on its way (adoption).
    marking: bool,
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
        /// The candidate in flight.
        current: Option<(GroupId, NodeId)>,
        /// An empty answer from a node that was not verified: the answer if
        /// no other replica has a better one.
        fallback: Option<Frame>,
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
    /// How many there are.
    fn len(&self, topology: &Topology) -> usize {
        match self {
            Candidates::Rotated { .. } => topology.groups() as usize,
            Candidates::Listed(list) => list.len(),
            Candidates::Node(..) => 1,
        }
    }

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
    /// A write's commands, to say what the node missed if it fails.
    write: Option<Commands>,
    /// Whether a reply of the run (a transaction's `QUEUED`...) was an
    /// error, and whether one was a "cannot serve now" error.
    flawed: bool,
    unready: bool,
}

#[derive(Debug, Clone)]
enum Owner {
    /// `slot` numbers the part's attempt (reads) or is its group (writes).
    Part {
        request: RequestId,
        part: usize,
        slot: usize,
    },
    Probe,
    /// A hint of a missed write, left on a peer; its answer changes nothing.
    Hint,
    /// Marks the node as holding its shard's data (`run_id`).
    Mark(Bytes),
    /// A recheck's reading of the node's marker, or of the hints it holds
    /// for a peer.
    Recheck(NodeId, Option<NodeId>),
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
                // Without self-healing every node is taken on trust.
                trust: match config.healing {
                    Some(_) => Trust::Unknown,
                    None => Trust::Verified,
                },
                run_id: None,
                missed: false,
                missed_keys: Default::default(),
                missed_all: false,
                hinted: 0,
                flags: 0,
                marking: false,
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
            recheck_at: None,
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
                current: None,
                fallback: None,
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
            if frame.is_error() {
                sub.flawed = true;
                sub.unready |= trust::is_unready(&frame);
            }
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
        let unready = sub.unready || trust::is_unready(&frame);
        if self.config.healing.is_some()
            && matches!(&frame, Frame::Error(t) if t.starts_with(b"LOADING "))
        {
            self.doubt(node, Doubt::Loading);
        }
        match sub.owner {
            // A node answering `PING` with an error (`-LOADING`) is not back.
            Owner::Probe if frame.is_error() => self.count_failure(now, node),
            Owner::Probe | Owner::Hint => self.node_alive(node),
            Owner::Mark(run_id) => {
                self.node_alive(node);
                self.marked(node, run_id, !sub.flawed && !frame.is_error());
            }
            Owner::Recheck(of, peer) => {
                self.node_alive(node);
                self.rechecked(of, peer, &frame);
            }
            Owner::Part {
                request,
                part,
                slot,
            } => {
                self.node_alive(node);
                if unready && let Some(commands) = &sub.write {
                    self.missed(now, node, commands);
                }
                self.part_reply(now, request, part, slot, frame, unready);
            }
        }
    }

    /// A connection to `node` opened and the node said who it is: its
    /// `run_id`, its marker, and which of its peers it holds hints for.
    /// Call it before handing in any reply from that connection. Ignored
    /// without [`Config::healing`], and for an epoch not current.
    ///
    /// A node whose `run_id` changed, or that lacks the marker of its own
    /// `run_id`, becomes [`Trust::Unverified`]; one that holds it, and
    /// missed nothing, [`Trust::Verified`]. When every node of a shard is
    /// unmarked and none is known to have missed anything (a new fleet, or
    /// one first used with self-healing), there is nothing to repair from:
    /// the router adopts their data as it is and marks them all.
    pub fn handle_identity(
        &mut self,
        now: Instant,
        node: NodeId,
        epoch: Epoch,
        identity: Identity,
    ) {
        if self.config.healing.is_none() {
            return;
        }
        let Some((_, shard)) = self.topology.position(node) else {
            return;
        };
        let marked = identity.is_marked();
        if self.recheck_at.is_none()
            && let Some(every) = self.config.healing.and_then(|h| h.recheck)
        {
            self.recheck_at = now.checked_add(every);
        }
        let state = &mut self.nodes[node.0 as usize];
        if state.epoch != epoch {
            return;
        }
        let restarted = state
            .run_id
            .as_ref()
            .is_some_and(|old| *old != identity.run_id);
        if restarted {
            state.marking = false;
        }
        state.run_id = Some(identity.run_id);
        let trust = match state.trust {
            Trust::Repairing => Trust::Repairing,
            _ if marked && state.missed => Trust::Unverified(Doubt::Missed),
            Trust::Unverified(Doubt::Hinted) if marked => Trust::Unverified(Doubt::Hinted),
            _ if marked => Trust::Verified,
            _ if restarted => Trust::Unverified(Doubt::Restarted),
            Trust::Unverified(why @ (Doubt::Restarted | Doubt::Missed | Doubt::Hinted)) => {
                Trust::Unverified(why)
            }
            _ => Trust::Unverified(Doubt::Unmarked),
        };
        self.set_trust(node, trust);
        for peer in identity.hints_for {
            let same_shard = self
                .topology
                .position(peer)
                .is_some_and(|(_, s)| s == shard);
            if same_shard && peer != node {
                self.doubt(peer, Doubt::Hinted);
            }
        }
        self.try_adopt(now, shard);
    }

    /// What the router believes of `node`'s data.
    pub fn trust(&self, node: NodeId) -> Option<Trust> {
        self.nodes.get(node.0 as usize).map(|n| n.trust)
    }

    /// Whether `node` wants a repair now: doubted, up, and not being
    /// adopted as it is.
    pub fn wants_repair(&self, node: NodeId) -> bool {
        self.nodes.get(node.0 as usize).is_some_and(|n| {
            matches!(n.trust, Trust::Unverified(_)) && n.health == Health::Up && !n.marking
        })
    }

    /// The `run_id` `node` last said it has.
    pub fn run_id(&self, node: NodeId) -> Option<&Bytes> {
        self.nodes
            .get(node.0 as usize)
            .and_then(|n| n.run_id.as_ref())
    }

    /// Sets what the router believes of `node`: a repair calls it with
    /// [`Trust::Repairing`] as it starts (reads and writes then leave the
    /// node alone, and writes leave hints for it on its peers), and with
    /// [`Trust::Verified`] once the node holds its peers' data (which also
    /// forgets what it missed), or [`Trust::Unverified`] if it gave up.
    pub fn set_trust(&mut self, node: NodeId, trust: Trust) {
        let Some(state) = self.nodes.get_mut(node.0 as usize) else {
            return;
        };
        if trust == Trust::Verified {
            state.missed = false;
            state.missed_all = false;
            state.missed_keys = Default::default();
            state.hinted = 0;
        }
        if state.trust != trust {
            state.trust = trust;
            self.events.push_back(Event::Trust { node, trust });
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
        if self.recheck_at.is_some_and(|at| at <= now) {
            self.recheck(now);
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
                self.send(now, NodeId(i as u32), &ping, None, Owner::Probe, false);
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
        blocking
            .into_iter()
            .chain(nodes)
            .chain(self.recheck_at)
            .min()
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
                current: None,
                fallback: None,
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
    ///
    /// With self-healing the candidates are gone through twice: verified
    /// nodes first, in order, then the others (unknown, unverified) as a
    /// last resort. A node being repaired is never read.
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
            current,
            fallback,
        } = &mut part.mode
        else {
            return;
        };
        let count = candidates.len(topology).max(1);
        let passes = if *forced || self.config.healing.is_none() {
            1
        } else {
            2
        };
        *current = None;
        while *next < count * passes {
            let (pass, i) = (*next / count, *next % count);
            *next += 1;
            let Some((group, node)) = candidates.get(i, part.shard, topology) else {
                continue;
            };
            let state = &nodes[node.0 as usize];
            if !*forced {
                let last = pass + 1 == passes;
                let why = if state.health != Health::Up {
                    Some(Failure::Down)
                } else if state.trust == Trust::Repairing {
                    Some(Failure::Repairing)
                } else if state.missed && missed_key(state, &part.commands) {
                    Some(Failure::Stale)
                } else {
                    None
                };
                let verified = state.trust == Trust::Verified;
                match why {
                    // Said once, on the last pass.
                    Some(why) if last => {
                        failed.push(GroupOutcome {
                            group,
                            node,
                            outcome: Outcome::Failed(why),
                        });
                        continue;
                    }
                    Some(_) => continue,
                    // Verified nodes on the first pass, the others after.
                    None if passes == 2 && verified != (pass == 0) => continue,
                    None => {}
                }
            }
            let owner = Owner::Part {
                request: id,
                part: p,
                slot: failed.len(),
            };
            *current = Some((group, node));
            let (commands, block) = (part.commands.clone(), part.block);
            self.send(now, node, commands.as_slice(), block, owner, false);
            return;
        }
        let result = match fallback.take() {
            Some(frame) => Ok(frame),
            None => Err(RouteError::Unavailable {
                shard: part.shard,
                attempts: failed.clone(),
            }),
        };
        self.part_done(id, p, result);
    }

    /// Sends a write part to every group that is up.
    fn write_all(&mut self, now: Instant, id: RequestId, p: usize) {
        let Some(part) = self.requests.get(&id).and_then(|r| r.parts.get(p)) else {
            return;
        };
        let (shard, commands, block) = (part.shard, part.commands.clone(), part.block);
        let skipped = |node: &Node| match (node.health, node.trust) {
            (Health::Up, Trust::Repairing) => Some(Failure::Repairing),
            (Health::Up, _) => None,
            _ => Some(Failure::Down),
        };
        let healing = self.config.healing;
        // FLUSHALL empties the fleet's database too: its markers and hints.
        let wipes = healing.is_some()
            && commands.as_slice().iter().any(|c| {
                c.first()
                    .is_some_and(|name| name.eq_ignore_ascii_case(b"flushall"))
            });
        // The hints go first, on the same connections as the write, so no
        // peer can hold the write without its hint; after it for FLUSHALL,
        // which would wipe them.
        let hint = |router: &mut Router| {
            for g in 0..router.topology.groups() {
                let node = NodeId(g * router.topology.shards() + shard.0);
                if skipped(&router.nodes[node.0 as usize]).is_some() {
                    router.missed(now, node, &commands);
                }
            }
        };
        if healing.is_some() && !wipes {
            hint(self);
        }
        for g in 0..self.topology.groups() {
            let node = NodeId(g * self.topology.shards() + shard.0);
            let outcome = if let Some(why) = skipped(&self.nodes[node.0 as usize]) {
                Outcome::Failed(why)
            } else {
                let owner = Owner::Part {
                    request: id,
                    part: p,
                    slot: g as usize,
                };
                self.send(now, node, commands.as_slice(), block, owner, true);
                // A verified node keeps its marker through FLUSHALL: empty,
                // it still holds its shard's data.
                let state = &self.nodes[node.0 as usize];
                if wipes
                    && state.trust == Trust::Verified
                    && let (Some(healing), Some(run_id)) = (healing, state.run_id.clone())
                {
                    let run = meta_run(healing, mark_command(&run_id));
                    self.send(now, node, &run, None, Owner::Mark(run_id), false);
                }
                Outcome::Pending
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
        if wipes {
            hint(self);
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
        write: bool,
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
                write: write.then(|| match commands {
                    [one] => Commands::One(one.clone()),
                    run => Commands::Run(run.to_vec()),
                }),
                flawed: false,
                unready: false,
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

    fn part_reply(
        &mut self,
        now: Instant,
        id: RequestId,
        p: usize,
        slot: usize,
        frame: Frame,
        unready: bool,
    ) {
        let healing = self.config.healing.is_some();
        let nodes = &self.nodes;
        let Some(part) = self.requests.get_mut(&id).and_then(|r| r.parts.get_mut(p)) else {
            return;
        };
        if part.result.is_some() {
            // A write the policy had already decided.
            return;
        }
        let forced = matches!(part.mode, Mode::Read { forced: true, .. });
        if unready && !forced {
            self.part_failed(now, id, p, slot, Failure::Unready);
            return;
        }
        let done = match &mut part.mode {
            Mode::Read {
                forced: false,
                current: Some((group, node)),
                failed,
                fallback,
                ..
            } if healing
                && nodes[node.0 as usize].trust != Trust::Verified
                && empty_answer(&part.commands, &frame) =>
            {
                // Proves nothing from a node that may have lost data: ask
                // the next replica, and keep this in case none knows more.
                failed.push(GroupOutcome {
                    group: *group,
                    node: *node,
                    outcome: Outcome::Replied,
                });
                fallback.get_or_insert(frame);
                self.read_next(now, id, p);
                return;
            }
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
        let Some(part) = self.requests.get_mut(&id).and_then(|r| r.parts.get_mut(p)) else {
            return;
        };
        if part.result.is_some() {
            return;
        }
        match &mut part.mode {
            Mode::Read {
                failed, current, ..
            } => {
                if slot == failed.len()
                    && let Some((group, node)) = *current
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
            if let Some(commands) = &sub.write {
                self.missed(now, node, commands);
            }
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

    /// Doubts `node`'s data for `why`, unless it is being repaired.
    fn doubt(&mut self, node: NodeId, why: Doubt) {
        let Some(state) = self.nodes.get(node.0 as usize) else {
            return;
        };
        match state.trust {
            // The first reason stays: it says more.
            Trust::Repairing | Trust::Unverified(_) => {}
            _ => self.set_trust(node, Trust::Unverified(why)),
        }
    }

    /// `node` missed a write of `commands` (it was down, being repaired,
    /// failed, or refused it): doubt it, and leave a hint with each of its
    /// peers that is up, naming the keys (or, for a write without keys,
    /// asking for a full copy).
    fn missed(&mut self, now: Instant, node: NodeId, commands: &Commands) {
        if self.config.healing.is_none() || node.0 as usize >= self.nodes.len() {
            return;
        }
        self.nodes[node.0 as usize].missed = true;
        self.doubt(node, Doubt::Missed);
        let keys = self.leave_hints(now, node, commands);
        let state = &mut self.nodes[node.0 as usize];
        match keys {
            Some(keys) if state.missed_keys.len() + keys.len() <= MISSED_KEYS => {
                if !state.missed_all {
                    state.missed_keys.extend(keys);
                }
            }
            _ => {
                state.missed_all = true;
                state.missed_keys = Default::default();
            }
        }
    }

    /// Leaves a hint with each of `node`'s peers that is up, naming the
    /// keys `commands` write (or, for a write without keys, asking for a
    /// full copy). Returns the keys, `None` for a write without keys.
    fn leave_hints(
        &mut self,
        now: Instant,
        node: NodeId,
        commands: &Commands,
    ) -> Option<Vec<Bytes>> {
        let healing = self.config.healing?;
        let (_, shard) = self.topology.position(node)?;
        let mut keys: Vec<Bytes> = Vec::new();
        let mut keyless = false;
        for command in commands.as_slice() {
            let Ok(info) = resolve(command) else {
                continue;
            };
            if matches!(info.name(), "multi" | "exec" | "discard") {
                continue;
            }
            match info.key_positions(command) {
                Ok(at) if !at.is_empty() => {
                    keys.extend(at.into_iter().filter_map(|i| command.get(i).cloned()));
                }
                _ => keyless = true,
            }
        }
        let addr = self.topology.addr(node)?;
        // Past the limit, the flag for a full copy says it all. It is set
        // again for every write missed, each time to a value of its own, so
        // that a repair clears only the flags its sync covers.
        let state = &mut self.nodes[node.0 as usize];
        state.hinted = state.hinted.saturating_add(keys.len() as u64);
        if !keyless && state.hinted > healing.hint_limit {
            keyless = true;
        }
        let body: Vec<Bytes> = if keyless {
            let key = trust::resync_key(healing.db, addr);
            state.flags = state.flags.wrapping_add(1);
            vec![
                Bytes::from_static(b"SET"),
                Bytes::from(key),
                Bytes::from(format!("{:x}:{:x}", healing.nonce, state.flags)),
            ]
        } else {
            let key = trust::hint_key(healing.db, addr);
            let mut args = Vec::with_capacity(keys.len() + 2);
            args.extend([Bytes::from_static(b"RPUSH"), Bytes::from(key)]);
            args.extend(keys.iter().cloned());
            args
        };
        let run = meta_run(healing, Command::from(body));
        for g in 0..self.topology.groups() {
            let Some(peer) = self.topology.node(GroupId(g), shard) else {
                continue;
            };
            let state = &self.nodes[peer.0 as usize];
            if peer != node && state.health == Health::Up && state.trust != Trust::Repairing {
                self.send(now, peer, &run, None, Owner::Hint, false);
            }
        }
        (!keyless).then_some(keys)
    }

    /// Adopts the data of `shard`'s nodes as it is when none of them is
    /// marked and none is known to lack anything: there is nothing to
    /// repair from, so each gets the marker of its `run_id`.
    fn try_adopt(&mut self, now: Instant, shard: ShardId) {
        let Some(healing) = self.config.healing else {
            return;
        };
        let nodes: Vec<NodeId> = (0..self.topology.groups())
            .filter_map(|g| self.topology.node(GroupId(g), shard))
            .collect();
        let adoptable = nodes.iter().all(|n| {
            let state = &self.nodes[n.0 as usize];
            state.run_id.is_some()
                && state.health == Health::Up
                && !state.missed
                && !state.marking
                && matches!(
                    state.trust,
                    Trust::Unverified(Doubt::Unmarked | Doubt::Restarted)
                )
        });
        if !adoptable {
            return;
        }
        for node in nodes {
            let state = &mut self.nodes[node.0 as usize];
            let Some(run_id) = state.run_id.clone() else {
                continue;
            };
            state.marking = true;
            let run = meta_run(healing, mark_command(&run_id));
            self.send(now, node, &run, None, Owner::Mark(run_id), false);
        }
    }

    /// Reads every node's marker and the hints it holds for its peers
    /// again, on its connection, so that what other clients saw reaches
    /// this one: `SELECT meta`, `GET` the marker, `EXISTS` each peer's hint
    /// keys, `SELECT db`, each its own command so that each answer counts.
    fn recheck(&mut self, now: Instant) {
        let Some(healing) = self.config.healing else {
            return;
        };
        self.recheck_at = healing.recheck.and_then(|every| now.checked_add(every));
        let select =
            |db: u32| Command::from([Bytes::from_static(b"SELECT"), Bytes::from(db.to_string())]);
        for i in 0..self.nodes.len() {
            let node = NodeId(i as u32);
            let state = &self.nodes[i];
            if state.health != Health::Up
                || state.trust == Trust::Repairing
                || state.run_id.is_none()
            {
                continue;
            }
            let Some((_, shard)) = self.topology.position(node) else {
                continue;
            };
            let mut reads = vec![(
                Command::from([
                    Bytes::from_static(b"GET"),
                    Bytes::from_static(trust::MARKER.as_bytes()),
                ]),
                None,
            )];
            for g in 0..self.topology.groups() {
                let Some(peer) = self.topology.node(GroupId(g), shard) else {
                    continue;
                };
                let Some(addr) = self.topology.addr(peer) else {
                    continue;
                };
                if peer != node {
                    let keys = [
                        trust::hint_key(healing.db, addr),
                        trust::resync_key(healing.db, addr),
                    ];
                    let mut exists = vec![Bytes::from_static(b"EXISTS")];
                    exists.extend(keys.map(Bytes::from));
                    reads.push((Command::from(exists), Some(peer)));
                }
            }
            let separate = healing.meta_db != healing.db;
            if separate {
                self.send(
                    now,
                    node,
                    &[select(healing.meta_db)],
                    None,
                    Owner::Hint,
                    false,
                );
            }
            for (command, peer) in reads {
                self.send(
                    now,
                    node,
                    &[command],
                    None,
                    Owner::Recheck(node, peer),
                    false,
                );
            }
            if separate {
                self.send(now, node, &[select(healing.db)], None, Owner::Hint, false);
            }
        }
    }

    /// A recheck's answer: a marker that is gone or not the node's own, or
    /// hints for a peer, doubt the node concerned.
    fn rechecked(&mut self, node: NodeId, peer: Option<NodeId>, frame: &Frame) {
        match peer {
            None => {
                let state = &self.nodes[node.0 as usize];
                let own = matches!(frame, Frame::Bulk(v) if state.run_id.as_ref() == Some(v));
                if !own && !frame.is_error() && state.trust == Trust::Verified && !state.marking {
                    self.doubt(node, Doubt::Unmarked);
                }
            }
            Some(peer) => {
                if matches!(frame, Frame::Integer(n) if *n > 0) {
                    self.doubt(peer, Doubt::Hinted);
                }
            }
        }
    }

    /// A marker sent by [`Router::try_adopt`] was answered.
    fn marked(&mut self, node: NodeId, run_id: Bytes, ok: bool) {
        let state = &mut self.nodes[node.0 as usize];
        state.marking = false;
        let current = state.run_id.as_ref() == Some(&run_id);
        let adoptable = matches!(
            state.trust,
            Trust::Unverified(Doubt::Unmarked | Doubt::Restarted)
        );
        if ok && current && adoptable && !state.missed {
            self.set_trust(node, Trust::Verified);
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

/// How many missed keys a router remembers per node before it distrusts
/// all of the node's answers until it is repaired.
const MISSED_KEYS: usize = 100_000;

/// Whether the part reads a key `node` missed a write to.
fn missed_key(node: &Node, commands: &Commands) -> bool {
    if node.missed_all {
        return true;
    }
    commands.as_slice().iter().any(|command| {
        resolve(command)
            .and_then(|info| info.key_positions(command))
            .is_ok_and(|at| {
                at.iter()
                    .any(|&i| command.get(i).is_some_and(|k| node.missed_keys.contains(k)))
            })
    })
}

/// `SET` the marker to `run_id`.
fn mark_command(run_id: &Bytes) -> Command {
    Command::from([
        Bytes::from_static(b"SET"),
        Bytes::from_static(trust::MARKER.as_bytes()),
        run_id.clone(),
    ])
}

/// `command` run in the fleet's own database: `SELECT meta`, the command,
/// `SELECT db` back (the `SELECT`s left out when they are the same).
fn meta_run(healing: crate::Healing, command: Command) -> Vec<Command> {
    if healing.meta_db == healing.db {
        return vec![command];
    }
    let select =
        |db: u32| Command::from([Bytes::from_static(b"SELECT"), Bytes::from(db.to_string())]);
    vec![select(healing.meta_db), command, select(healing.db)]
}

/// Whether `frame` is an empty answer (see [`trust::is_empty_answer`]) to
/// the part's one command.
fn empty_answer(commands: &Commands, frame: &Frame) -> bool {
    let Commands::One(command) = commands else {
        return false;
    };
    let Some(name) = command.first() else {
        return false;
    };
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    trust::is_empty_answer(&name, frame)
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

//! The driver: one task that owns the router and every socket.
//!
//! Callers hand requests to the driver through a channel, each with a
//! oneshot for its answer. The driver is a hand-written future in the manner
//! of quinn's `ConnectionDriver`: every time it is woken it takes all the
//! input that is ready (new requests, connections that opened, bytes from
//! nodes, the timer), feeds it to the [`Router`], and then carries out the
//! router's output: it encodes every pending transmit into its connection's
//! output buffer, writes each buffer once, re-arms its one timer from
//! `poll_timeout`, and answers the callers whose requests completed.
//!
//! Everything happens on one task, so a reply never crosses a channel
//! between a socket and the router, and commands that arrive together leave
//! together: a hundred callers' `GET`s for one node become one `write`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use resp::{Frame, FrameRef, RawFrame};
use route::{
    Command, Epoch, Event, Failure, Identity, NodeId, Outcome, RequestId, RouteError, Router,
    SeqHasher, Token, Topology, Trust,
};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Sleep;
use tokio_util::io::{poll_read_buf, poll_write_buf};

use crate::{Error, NodeEvent, Options};

/// The answer to one request.
pub(crate) type Reply = oneshot::Sender<Result<Frame, Error>>;

/// The answer to one request that takes a node's reply as it came
/// ([`Answer::Raw`]) when the router passed it on unchanged.
pub(crate) type RawReply = oneshot::Sender<Result<Answer, Error>>;

/// An answer from [`Client::start_raw`](crate::Client::start_raw).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Answer {
    /// The node's reply, byte for byte as it arrived: the router passed it
    /// on unchanged.
    Raw(RawFrame),
    /// A reply the router built, merged or changed (or one too small to
    /// be worth keeping raw, such as an integer).
    Frame(Frame),
}

impl Answer {
    /// The answer as an owned [`Frame`] (zero-copy for a raw one).
    pub fn into_frame(self) -> Frame {
        match self {
            Answer::Raw(raw) => raw.to_frame(),
            Answer::Frame(frame) => frame,
        }
    }
}

/// Who waits for a request's answer.
#[derive(Debug)]
enum Waiter {
    Frame(Reply),
    Raw(RawReply),
}

/// The raw replies read since the router's events were last drained, by
/// the address of what their frames hold (see [`payload`]). A completed
/// request whose answer holds the same address, and is the same value, is
/// one the router passed on unchanged.
type RawIndex = HashMap<usize, RawFrame, BuildHasherDefault<SeqHasher>>;

/// The address of what `frame` holds on the heap, if it holds anything: a
/// string's bytes or an aggregate's elements. Moving a frame keeps it.
fn payload(frame: &Frame) -> Option<usize> {
    match frame {
        Frame::Bulk(b) | Frame::Simple(b) if !b.is_empty() => Some(b.as_ptr() as usize),
        Frame::Array(items) if !items.is_empty() => Some(items.as_ptr() as usize),
        _ => None,
    }
}

/// Whether `frame` is the value `raw` encodes (strings compared by address
/// first: a frame built from `raw` shares its bytes).
fn same(frame: &Frame, raw: FrameRef<'_>) -> bool {
    let bytes =
        |a: &[u8], b: &[u8]| a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b);
    match (frame, raw) {
        (Frame::Bulk(a), FrameRef::Bulk(b)) | (Frame::Simple(a), FrameRef::Simple(b)) => {
            bytes(a, b)
        }
        (Frame::Integer(a), FrameRef::Integer(b)) => *a == b,
        (Frame::NullBulk, FrameRef::NullBulk) | (Frame::NullArray, FrameRef::NullArray) => true,
        (Frame::Array(items), FrameRef::Array(elements)) => {
            items.len() == elements.len()
                && items.iter().zip(elements.iter()).all(|(f, r)| same(f, r))
        }
        _ => false,
    }
}

/// A request from a caller.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A command for the router to place.
    Routed { args: Command, reply: Reply },
    /// A command for the router to place, answered raw where it can be.
    RoutedRaw { args: Command, reply: RawReply },
    /// A command for one node, as it is.
    To {
        node: NodeId,
        args: Command,
        reply: Reply,
    },
    /// `MULTI`, the commands, `EXEC`, on one shard.
    Transaction {
        commands: Vec<Vec<Bytes>>,
        reply: Reply,
    },
    /// A repair changed what the router should believe of a node.
    SetTrust { node: NodeId, trust: Trust },
    /// An automatic repair of the node ended (whatever came of it).
    RepairDone { node: NodeId },
    /// Answer once nothing is in flight: every write settled on every
    /// group, and the hints of those that failed written.
    Flush { reply: oneshot::Sender<()> },
    /// Answer once every message before this one has been acted on (their
    /// effects on [`Shared`] visible).
    Barrier { reply: oneshot::Sender<()> },
}

/// How failures are reported to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A distributed client: routing errors as they are, naming every node.
    Cluster,
    /// One node: a timeout is [`Error::Timeout`], a lost connection the
    /// [`Error::Io`] that lost it.
    Single,
}

/// What the driver shares with the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) topology: Topology,
    pub(crate) up: Vec<AtomicBool>,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    /// What the router believes of each node.
    pub(crate) trust: std::sync::Mutex<Vec<Trust>>,
    /// Whether a repair of each node runs in this client.
    pub(crate) repairing: Vec<AtomicBool>,
    /// Automatic repairs of each node that failed in a row.
    pub(crate) repair_failures: Vec<std::sync::atomic::AtomicU32>,
    pub(crate) options: Options,
}

/// Starts a driver on the current tokio runtime. The receiver answers once
/// every node has been tried: `Ok` if any connection opened.
pub(crate) fn spawn(
    topology: Topology,
    options: &Options,
    mode: Mode,
) -> (
    mpsc::UnboundedSender<Msg>,
    Arc<Shared>,
    oneshot::Receiver<Result<(), Error>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let (events, _) = broadcast::channel(64);
    let mut config = options.router_config();
    if mode == Mode::Single {
        // One node, commands as they are: nothing to heal from.
        config.healing = None;
    }
    let healing = config.healing.is_some();
    let initial = if healing {
        Trust::Unknown
    } else {
        Trust::Verified
    };
    let shared = Arc::new(Shared {
        up: topology.nodes().map(|_| AtomicBool::new(true)).collect(),
        trust: std::sync::Mutex::new(vec![initial; topology.len()]),
        repairing: topology.nodes().map(|_| AtomicBool::new(false)).collect(),
        repair_failures: topology.nodes().map(|_| Default::default()).collect(),
        topology: topology.clone(),
        events,
        options: options.clone(),
    });
    let router = Router::new(topology.clone(), config);
    let mut driver = Driver {
        nodes: topology
            .nodes()
            .map(|(_, addr)| NodeIo {
                addr: Arc::from(addr),
                main: None,
                dedicated: Vec::new(),
                last_error: None,
            })
            .collect(),
        router,
        rx,
        rx_closed: false,
        pending: HashMap::default(),
        raw_waiting: 0,
        raws: HashMap::default(),
        deferred: false,
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        armed: None,
        replies: Vec::new(),
        dead: Vec::new(),
        shared: shared.clone(),
        dial: Arc::new(Dial::new(options, &topology, healing)),
        mode,
        tx: tx.downgrade(),
        auto_repair: healing && options.repair,
        identities: Vec::new(),
        flushes: Vec::new(),
        barriers: Vec::new(),
        startup: Some(Startup {
            waiting: vec![true; topology.len()],
            left: topology.len(),
            opened: 0,
            error: None,
            ready: ready_tx,
        }),
    };
    for i in 0..driver.nodes.len() {
        let node = NodeId(i as u32);
        let epoch = driver.router.epoch(node).unwrap_or_default();
        let conn = Conn::connect(
            driver.nodes[i].addr.clone(),
            epoch,
            &driver.dial,
            Some(node),
        );
        driver.nodes[i].main = Some(conn);
    }
    tokio::spawn(driver);
    (tx, shared, ready_rx)
}

/// The task.
struct Driver {
    router: Router,
    nodes: Vec<NodeIo>,
    rx: mpsc::UnboundedReceiver<Msg>,
    rx_closed: bool,
    /// Callers waiting, by request.
    pending: HashMap<RequestId, Waiter, BuildHasherDefault<SeqHasher>>,
    /// How many of `pending` want raw answers: replies are kept raw only
    /// while some do.
    raw_waiting: usize,
    /// Raw replies read and not yet matched to an answer.
    raws: RawIndex,
    timer: Pin<Box<Sleep>>,
    /// The instant `timer` is set to, if it is armed.
    armed: Option<Instant>,
    /// Scratch: replies read in this round.
    replies: Vec<(NodeId, Token, Frame)>,
    /// Scratch: connections that died in this round.
    dead: Vec<(NodeId, Epoch, Dead)>,
    shared: Arc<Shared>,
    /// How connections are opened.
    dial: Arc<Dial>,
    mode: Mode,
    startup: Option<Startup>,
    /// Whether the last poll put off writing what it encoded, to let the
    /// callers that are ready run first and add their commands.
    deferred: bool,
    /// The driver's own channel, for the repairs it starts (weak, so that
    /// the driver still ends when every handle is gone).
    tx: mpsc::WeakUnboundedSender<Msg>,
    auto_repair: bool,
    /// Scratch: what nodes said of themselves on connections opened in
    /// this round.
    identities: Vec<(NodeId, Epoch, Identity)>,
    /// Callers waiting for nothing to be in flight.
    flushes: Vec<oneshot::Sender<()>>,
    /// Callers waiting for this round's events to be handled.
    barriers: Vec<oneshot::Sender<()>>,
}

/// `Client::connect` waits until every node's first connection opened or
/// failed.
struct Startup {
    waiting: Vec<bool>,
    left: usize,
    opened: usize,
    error: Option<io::Error>,
    ready: oneshot::Sender<Result<(), Error>>,
}

/// One node's connections.
struct NodeIo {
    addr: Arc<str>,
    /// The pipelined connection every ordinary command shares.
    main: Option<Conn>,
    /// One connection per blocking command in flight (`BLPOP`...), so that
    /// its wait does not hold up the commands behind it.
    dedicated: Vec<Conn>,
    /// Why the last connection failed, for [`Mode::Single`]'s errors.
    last_error: Option<(io::ErrorKind, String)>,
}

/// How many rounds of input the driver takes in one wake-up before it
/// yields to the runtime, so that a flood of replies cannot starve the
/// tasks waiting for them.
const ROUNDS: usize = 32;

/// How many requests one round takes from the channel.
const INTAKE: usize = 4096;

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // Write coalescing across tasks: a caller's request wakes this
        // task, which tokio then runs right after that caller, before the
        // other callers that are ready. Writing at once would send one
        // command per write. Instead a poll that finds only a few commands
        // to send puts the write off and yields; the next one, after the
        // other callers have added theirs, writes them all. A connection
        // with `EAGER_WRITE` commands waiting writes them at once.
        let may_write = std::mem::take(&mut this.deferred);
        for _ in 0..ROUNDS {
            let now = Instant::now();
            let mut progress = this.take_requests(cx, now);
            progress |= this.poll_connections(cx, now, may_write, &mut false);
            progress |= this.poll_timer(cx);
            progress |= this.run_output();
            for b in this.barriers.drain(..) {
                let _ = b.send(());
            }
            let mut held = false;
            progress |= this.poll_connections(cx, now, may_write, &mut held);
            if held {
                this.deferred = true;
                this.settle_startup();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            progress |= this.rearm();
            this.settle_startup();
            if !this.flushes.is_empty() && this.router.in_flight() == 0 {
                for f in this.flushes.drain(..) {
                    let _ = f.send(());
                }
            }
            if this.rx_closed && this.pending.is_empty() {
                // Every handle is gone and every caller answered: close
                // the sockets by dropping them.
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Driver {
    /// Submits the requests waiting in the channel.
    fn take_requests(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        for _ in 0..INTAKE {
            if self.rx_closed {
                break;
            }
            let msg = match self.rx.poll_recv(cx) {
                Poll::Ready(Some(msg)) => msg,
                Poll::Ready(None) => {
                    self.rx_closed = true;
                    progress = true;
                    break;
                }
                Poll::Pending => break,
            };
            progress = true;
            let (submitted, reply) = match msg {
                Msg::Routed { args, reply } => {
                    (self.router.submit(now, args), Waiter::Frame(reply))
                }
                Msg::RoutedRaw { args, reply } => {
                    (self.router.submit(now, args), Waiter::Raw(reply))
                }
                Msg::To { node, args, reply } => {
                    (self.router.submit_to(now, node, args), Waiter::Frame(reply))
                }
                Msg::Transaction { commands, reply } => (
                    self.router.submit_transaction(now, commands),
                    Waiter::Frame(reply),
                ),
                Msg::SetTrust { node, trust } => {
                    self.router.set_trust(node, trust);
                    continue;
                }
                Msg::Flush { reply } => {
                    self.flushes.push(reply);
                    continue;
                }
                Msg::Barrier { reply } => {
                    self.barriers.push(reply);
                    continue;
                }
                Msg::RepairDone { node } => {
                    if let Some(flag) = self.shared.repairing.get(node.0 as usize) {
                        flag.store(false, Ordering::Release);
                    }
                    self.maybe_repair();
                    continue;
                }
            };
            match submitted {
                Ok(id) => {
                    self.raw_waiting += usize::from(matches!(reply, Waiter::Raw(_)));
                    self.pending.insert(id, reply);
                }
                Err(e) => match reply {
                    Waiter::Frame(reply) => {
                        let _ = reply.send(Err(Error::Route(e)));
                    }
                    Waiter::Raw(reply) => {
                        let _ = reply.send(Err(Error::Route(e)));
                    }
                },
            }
        }
        progress
    }

    /// Connects, writes and reads every connection, and hands the router
    /// what came of it. A connection writes if `may_write`, or if it has
    /// `EAGER_WRITE` commands waiting; `held` is set if one kept its output
    /// back for the next poll.
    fn poll_connections(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        may_write: bool,
        held: &mut bool,
    ) -> bool {
        let mut progress = false;
        let mut raws = (self.raw_waiting > 0).then_some(&mut self.raws);
        for (i, io) in self.nodes.iter_mut().enumerate() {
            let node = NodeId(i as u32);
            let conns = io.main.iter_mut().chain(io.dedicated.iter_mut());
            for conn in conns {
                let was_open = conn.is_open();
                match conn.poll_io(
                    cx,
                    node,
                    may_write,
                    held,
                    &mut self.replies,
                    raws.as_deref_mut(),
                ) {
                    Ok(p) => progress |= p,
                    Err(dead) => {
                        progress = true;
                        self.dead.push((node, conn.epoch, dead));
                        conn.failed = true;
                    }
                }
                if !was_open && conn.is_open() {
                    tracing::debug!(node = node.0, addr = %io.addr, "connected");
                    if let Some(s) = &mut self.startup {
                        s.opened(i);
                    }
                    if let Some(identity) = conn.identity.take() {
                        self.identities.push((node, conn.epoch, identity));
                    }
                }
            }
            // A dedicated connection is done with its one command.
            io.dedicated.retain(|c| !c.failed && !c.fifo.is_empty());
            if io.main.as_ref().is_some_and(|c| c.failed) {
                io.main = None;
            }
        }
        if self.replies.is_empty() && self.dead.is_empty() && self.identities.is_empty() {
            return progress;
        }
        // Who a node is, before anything it answered on that connection.
        for (node, epoch, identity) in self.identities.drain(..) {
            self.router.handle_identity(now, node, epoch, identity);
        }
        for (node, token, frame) in self.replies.drain(..) {
            self.router.handle_reply(now, node, token, frame);
        }
        for (node, epoch, dead) in std::mem::take(&mut self.dead) {
            let (failure, err) = match dead {
                Dead::Connect(e) => (Failure::Connect, e),
                Dead::Closed(e) => (Failure::Closed, e),
                Dead::Protocol(e) => (Failure::Protocol, e),
            };
            let io = &mut self.nodes[node.0 as usize];
            tracing::debug!(node = node.0, addr = %io.addr, %epoch, "connection lost: {err}");
            io.last_error = Some((err.kind(), err.to_string()));
            if let Some(s) = &mut self.startup {
                s.failed(node.0 as usize, &io.addr, err);
            }
            self.router.handle_failure(now, node, epoch, failure);
            self.prune(node);
        }
        true
    }

    /// Fires the timer if its instant has come.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        if self.armed.is_none() || self.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.armed = None;
        self.router.handle_timeout(Instant::now());
        true
    }

    /// Carries out the router's output: events to callers, transmits into
    /// output buffers. Returns whether anything happened.
    fn run_output(&mut self) -> bool {
        let mut progress = false;
        while let Some(event) = self.router.poll_event() {
            progress = true;
            self.event(event);
        }
        // What the router did not pass on as it came is not kept.
        self.raws.clear();
        while let Some(tx) = self.router.poll_transmit() {
            progress = true;
            let node = tx.node;
            let epoch = tx.token.epoch();
            if self.router.epoch(node).is_some_and(|now| epoch < now) {
                // Given up on by the router already.
                continue;
            }
            let dial = &self.dial;
            let io = &mut self.nodes[node.0 as usize];
            let conn = if tx.blocking {
                io.dedicated
                    .push(Conn::connect(io.addr.clone(), epoch, dial, None));
                io.dedicated.last_mut()
            } else {
                if io.main.as_ref().is_none_or(|c| c.epoch != epoch) {
                    // A newer epoch: whatever was queued on the old
                    // connection was given up on.
                    io.main = Some(Conn::connect(io.addr.clone(), epoch, dial, Some(node)));
                }
                io.main.as_mut()
            };
            if let Some(conn) = conn {
                tx.encode(&mut conn.out);
                conn.fifo.push_back(tx.token);
                conn.unsent += 1;
            }
        }
        progress
    }

    /// Sets the timer to the router's next deadline.
    fn rearm(&mut self) -> bool {
        let next = self.router.poll_timeout();
        if next == self.armed {
            return false;
        }
        self.armed = next;
        if let Some(at) = next {
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(at));
            // Polled (and so registered) by the next round.
            return true;
        }
        false
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Completed { id, result } => {
                let Some(waiter) = self.pending.remove(&id) else {
                    return;
                };
                let result = match result {
                    Ok(Frame::Error(text) | Frame::BulkError(text)) => {
                        Err(Error::Redis(String::from_utf8_lossy(&text).into_owned()))
                    }
                    Ok(frame) => Ok(frame),
                    Err(e) => Err(self.route_error(e)),
                };
                match waiter {
                    Waiter::Frame(reply) => {
                        let _ = reply.send(result);
                    }
                    Waiter::Raw(reply) => {
                        self.raw_waiting -= 1;
                        let _ = reply.send(result.map(|frame| self.answer(frame)));
                    }
                }
            }
            Event::NodeDown { node } => {
                let addr = &self.nodes[node.0 as usize].addr;
                tracing::warn!(node = node.0, %addr, "node down");
                self.shared.up[node.0 as usize].store(false, Ordering::Relaxed);
                let _ = self.shared.events.send(NodeEvent::Down(node));
            }
            Event::NodeUp { node } => {
                let addr = &self.nodes[node.0 as usize].addr;
                tracing::info!(node = node.0, %addr, "node up");
                self.shared.up[node.0 as usize].store(true, Ordering::Relaxed);
                let _ = self.shared.events.send(NodeEvent::Up(node));
                self.maybe_repair();
            }
            Event::Trust { node, trust } => {
                let addr = &self.nodes[node.0 as usize].addr;
                match trust {
                    Trust::Unverified(why) => {
                        tracing::warn!(node = node.0, %addr, %why, "node unverified");
                    }
                    _ => tracing::info!(node = node.0, %addr, %trust, "node trust"),
                }
                if let Ok(mut all) = self.shared.trust.lock()
                    && let Some(t) = all.get_mut(node.0 as usize)
                {
                    *t = trust;
                }
                let _ = self.shared.events.send(NodeEvent::Trust(node, trust));
                self.maybe_repair();
            }
            Event::ResetConnection { node, epoch } => {
                let addr = &self.nodes[node.0 as usize].addr;
                tracing::debug!(node = node.0, %addr, %epoch, "command timed out: reconnecting");
                self.prune(node);
            }
            _ => {}
        }
    }

    /// `frame` as a raw answer if it is a node's reply the router passed on
    /// unchanged.
    fn answer(&mut self, frame: Frame) -> Answer {
        let raw = payload(&frame).and_then(|at| self.raws.remove(&at));
        match raw {
            Some(raw) if same(&frame, raw.view()) => Answer::Raw(raw),
            _ => Answer::Frame(frame),
        }
    }

    /// Drops the node's connections of epochs the router has left behind:
    /// their replies, if any still come, must never be matched to a later
    /// command.
    fn prune(&mut self, node: NodeId) {
        let Some(current) = self.router.epoch(node) else {
            return;
        };
        let io = &mut self.nodes[node.0 as usize];
        if io.main.as_ref().is_some_and(|c| c.epoch < current) {
            io.main = None;
        }
        io.dedicated.retain(|c| c.epoch >= current);
        if let Some(s) = &mut self.startup
            && io.main.is_none()
        {
            let err = io::Error::new(io::ErrorKind::TimedOut, "no answer in time");
            s.failed(node.0 as usize, &io.addr, err);
        }
    }

    /// Starts a repair of every node that wants one and can have one now:
    /// unverified, up, not being repaired here already, with a verified
    /// peer that is up to copy from.
    fn maybe_repair(&mut self) {
        if !self.auto_repair {
            return;
        }
        for i in 0..self.nodes.len() {
            let node = NodeId(i as u32);
            if !self.router.wants_repair(node) {
                continue;
            }
            let Some(source) = crate::repair::source(&self.router, node) else {
                continue;
            };
            let Some(tx) = self.tx.upgrade() else {
                return;
            };
            if self.shared.repairing[i]
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let shared = self.shared.clone();
            tokio::spawn(crate::repair::auto(shared, tx, node, source));
        }
    }

    /// What a caller sees of a routing failure.
    fn route_error(&self, e: RouteError) -> Error {
        if self.mode == Mode::Cluster {
            return Error::Route(e);
        }
        let RouteError::Unavailable { attempts, .. } = &e else {
            return Error::Route(e);
        };
        match attempts.last().map(|a| (a.node, a.outcome)) {
            Some((_, Outcome::Failed(Failure::Timeout | Failure::Reset))) => Error::Timeout,
            Some((
                node,
                Outcome::Failed(Failure::Connect | Failure::Closed | Failure::Protocol),
            )) => match &self.nodes[node.0 as usize].last_error {
                Some((kind, text)) => Error::Io(io::Error::new(*kind, text.clone())),
                None => Error::Route(e),
            },
            _ => Error::Route(e),
        }
    }
}

impl Startup {
    fn opened(&mut self, node: usize) {
        if std::mem::take(&mut self.waiting[node]) {
            self.opened += 1;
            self.left -= 1;
        }
    }

    fn failed(&mut self, node: usize, addr: &str, err: io::Error) {
        if std::mem::take(&mut self.waiting[node]) {
            self.left -= 1;
            self.error = Some(io::Error::new(err.kind(), format!("{addr}: {err}")));
        }
    }
}

impl Driver {
    /// Answers `Client::connect` once every node has been tried, after
    /// passing on what the router made of their identities: a caller that
    /// reads [`Client::trust`](crate::Client::trust) next sees every node
    /// that answered doubted by its peers' hints, not verified for a moment.
    fn settle_startup(&mut self) {
        let done = self.startup.as_ref().is_some_and(|s| s.left == 0);
        if !done {
            return;
        }
        self.run_output();
        if let Some(s) = self.startup.take() {
            let result = if s.opened > 0 {
                Ok(())
            } else {
                Err(Error::Io(s.error.unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::NotConnected, "no node to connect to")
                })))
            };
            let _ = s.ready.send(result);
        }
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum Dead {
    Connect(io::Error),
    Closed(io::Error),
    Protocol(io::Error),
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<(TcpStream, Option<Identity>)>> + Send>>;

enum State {
    Connecting(Connecting),
    Open(TcpStream),
}

/// One connection to a node: its socket, the commands waiting to be
/// written, the bytes read and not yet decoded, and the tokens of the
/// commands written and not yet answered, oldest first.
struct Conn {
    epoch: Epoch,
    state: State,
    out: BytesMut,
    input: BytesMut,
    decoder: resp::Decoder,
    fifo: VecDeque<Token>,
    /// Commands in `out` not written yet (roughly: a partial write leaves
    /// the count as it was).
    unsent: usize,
    failed: bool,
    /// What the node said of itself as the connection opened, until the
    /// router has it.
    identity: Option<Identity>,
}

/// Bytes asked of the socket per read, as Redis reads.
const READ_CHUNK: usize = 16 * 1024;

/// Reads per connection per round, before giving the others a turn.
const READS: usize = 8;

/// Commands waiting on a connection that are written at once rather than
/// after a yield. Waiting for every ready caller makes the largest writes,
/// but leaves the node idle meanwhile and costs a yield, which in a
/// multi-threaded runtime often wakes another worker. Eight commands
/// already pay for their `write`; with 50 tasks on two cores this was
/// about 10% faster than always waiting (4 and 16 did less well), and
/// with 5 or 200 tasks it made no difference.
const EAGER_WRITE: usize = 8;

/// How a connection is opened: within a timeout, then, if the options say
/// so, `AUTH` and `SELECT` before any command, on every connection and
/// reconnection; with self-healing, the node is also asked who it is.
#[derive(Debug)]
pub(crate) struct Dial {
    timeout: Duration,
    /// How long the handshake's replies may take: a command's timeout.
    reply_timeout: Duration,
    /// `AUTH` and `SELECT`, encoded, and what their replies are.
    hello: (Bytes, Vec<Expect>),
    /// Per node, with self-healing: `AUTH`, `SELECT meta`, `INFO server`,
    /// `GET` the marker, `EXISTS` each peer's hint keys, `SELECT db`.
    identify: Vec<(Bytes, Vec<Expect>)>,
}

/// What a reply of the handshake is.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `+OK` (`AUTH`, `SELECT`).
    Ok,
    /// `INFO server`, with the `run_id`.
    Info,
    /// The marker's value.
    Marker,
    /// How many of a peer's hint keys exist.
    Hints(NodeId),
}

impl Dial {
    pub(crate) fn new(options: &Options, topology: &Topology, healing: bool) -> Dial {
        let mut auth = BytesMut::new();
        let mut expect = Vec::new();
        if let Some(password) = &options.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &options.username {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            resp::encode_command(&mut auth, &args);
            expect.push(Expect::Ok);
        }
        let db = options.database.to_string();
        let select = |buf: &mut BytesMut, db: &str| {
            resp::encode_command(buf, &[&b"SELECT"[..], db.as_bytes()]);
        };
        let mut hello = auth.clone();
        let mut hello_expect = expect.clone();
        if options.database != 0 {
            select(&mut hello, &db);
            hello_expect.push(Expect::Ok);
        }
        let identify = if healing {
            topology
                .nodes()
                .map(|(node, _)| {
                    let (mut buf, mut exp) = (auth.clone(), expect.clone());
                    select(&mut buf, &options.meta_database.to_string());
                    exp.push(Expect::Ok);
                    resp::encode_command(&mut buf, &[&b"INFO"[..], b"server"]);
                    exp.push(Expect::Info);
                    resp::encode_command(&mut buf, &[&b"GET"[..], route::MARKER.as_bytes()]);
                    exp.push(Expect::Marker);
                    let shard = topology.position(node).map(|(_, s)| s);
                    for (peer, addr) in topology.nodes() {
                        if peer == node || topology.position(peer).map(|(_, s)| s) != shard {
                            continue;
                        }
                        let hints = route::hint_key(options.database, addr);
                        let resync = route::resync_key(options.database, addr);
                        resp::encode_command(
                            &mut buf,
                            &[&b"EXISTS"[..], hints.as_bytes(), resync.as_bytes()],
                        );
                        exp.push(Expect::Hints(peer));
                    }
                    select(&mut buf, &db);
                    exp.push(Expect::Ok);
                    (buf.freeze(), exp)
                })
                .collect()
        } else {
            Vec::new()
        };
        Dial {
            timeout: options.connect_timeout,
            reply_timeout: options.timeout,
            hello: (hello.freeze(), hello_expect),
            identify,
        }
    }

    /// Opens a connection to `addr`; for `node`, with self-healing, also
    /// learns who the node is.
    pub(crate) async fn open(
        &self,
        addr: &str,
        node: Option<NodeId>,
    ) -> io::Result<(TcpStream, Option<Identity>)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        // Commands are batched by the driver already; Nagle would only add
        // latency.
        stream.set_nodelay(true)?;
        let (hello, expect) = match node.and_then(|n| self.identify.get(n.0 as usize)) {
            Some(identify) => identify,
            None => &self.hello,
        };
        if expect.is_empty() {
            return Ok((stream, None));
        }
        let handshake = async {
            stream.write_all(hello).await?;
            let mut input = BytesMut::new();
            let mut decoder = resp::Decoder::new();
            let mut identity: Option<Identity> = None;
            for &want in expect {
                let frame = loop {
                    match decoder.decode(&mut input) {
                        Ok(Some(frame)) => break frame,
                        Ok(None) => {}
                        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                    }
                    if input.len() > 1 << 20 {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "handshake reply too long",
                        ));
                    }
                    if stream.read_buf(&mut input).await? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "closed during the handshake",
                        ));
                    }
                };
                handshake_reply(want, frame, &mut identity)?;
            }
            Ok(identity)
        };
        let identity = tokio::time::timeout(self.reply_timeout, handshake)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "handshake timed out"))??;
        Ok((stream, identity))
    }
}

/// Checks one reply of the handshake and keeps what it says.
fn handshake_reply(want: Expect, frame: Frame, identity: &mut Option<Identity>) -> io::Result<()> {
    let refused = |what: &str, frame: &Frame| {
        let text = match frame {
            Frame::Error(t) | Frame::BulkError(t) => String::from_utf8_lossy(t).into_owned(),
            other => format!("{other:?}"),
        };
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("the node refused {what}: {text}"),
        )
    };
    match want {
        Expect::Ok if matches!(&frame, Frame::Simple(_)) => {}
        Expect::Ok => return Err(refused("AUTH or SELECT", &frame)),
        Expect::Info => {
            let text = frame.as_bytes().ok_or_else(|| refused("INFO", &frame))?;
            let run_id = text
                .split(|&b| b == b'\n')
                .find_map(|line| line.strip_prefix(b"run_id:"))
                .map(|id| Bytes::copy_from_slice(id.trim_ascii()))
                .ok_or_else(|| refused("INFO (no run_id)", &frame))?;
            *identity = Some(Identity {
                run_id,
                marker: None,
                hints_for: Vec::new(),
            });
        }
        // A node still loading answers -LOADING: it is not marked.
        Expect::Marker => {
            if let (Some(id), Frame::Bulk(value)) = (identity.as_mut(), frame) {
                id.marker = Some(value);
            }
        }
        Expect::Hints(peer) => {
            if let (Some(id), Frame::Integer(n)) = (identity.as_mut(), frame)
                && n > 0
            {
                id.hints_for.push(peer);
            }
        }
    }
    Ok(())
}

impl Conn {
    fn connect(addr: Arc<str>, epoch: Epoch, dial: &Arc<Dial>, node: Option<NodeId>) -> Conn {
        let dial = dial.clone();
        let connecting: Connecting = Box::pin(async move { dial.open(&addr, node).await });
        Conn {
            epoch,
            state: State::Connecting(connecting),
            out: BytesMut::new(),
            input: BytesMut::new(),
            decoder: resp::Decoder::new(),
            fifo: VecDeque::new(),
            unsent: 0,
            failed: false,
            identity: None,
        }
    }

    fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Moves the connection forward as far as it goes without waiting:
    /// finish connecting, write the output (if `may_write` or there is
    /// enough of it; else `held` is set), read and decode replies.
    /// Returns whether anything happened.
    fn poll_io(
        &mut self,
        cx: &mut Context<'_>,
        node: NodeId,
        may_write: bool,
        held: &mut bool,
        replies: &mut Vec<(NodeId, Token, Frame)>,
        mut raws: Option<&mut RawIndex>,
    ) -> Result<bool, Dead> {
        if self.failed {
            return Ok(false);
        }
        let mut progress = false;
        let stream = match &mut self.state {
            State::Connecting(connecting) => match connecting.as_mut().poll(cx) {
                Poll::Pending => return Ok(false),
                Poll::Ready(Err(e)) => return Err(Dead::Connect(e)),
                Poll::Ready(Ok((stream, identity))) => {
                    progress = true;
                    self.identity = identity;
                    self.state = State::Open(stream);
                    match &mut self.state {
                        State::Open(s) => s,
                        State::Connecting(_) => unreachable!("just opened"),
                    }
                }
            },
            State::Open(stream) => stream,
        };
        let write = may_write || self.unsent >= EAGER_WRITE;
        if !write && !self.out.is_empty() {
            *held = true;
        }
        while write && !self.out.is_empty() {
            match poll_write_buf(Pin::new(&mut *stream), cx, &mut self.out) {
                Poll::Pending => break,
                Poll::Ready(Ok(0)) => return Err(Dead::Closed(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(_)) => progress = true,
                Poll::Ready(Err(e)) => return Err(Dead::Closed(e)),
            }
        }
        if self.out.is_empty() {
            // Keep the allocation; writing moved its start.
            self.out.clear();
            self.unsent = 0;
        }
        for _ in 0..READS {
            self.input.reserve(READ_CHUNK);
            // `poll_read` (unlike `try_read`) takes a short read to mean the
            // socket is drained, which saves a read that would block.
            match poll_read_buf(Pin::new(&mut *stream), cx, &mut self.input) {
                Poll::Pending => return Ok(progress),
                Poll::Ready(Ok(0)) => {
                    let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "closed by the node");
                    return Err(Dead::Closed(eof));
                }
                Poll::Ready(Ok(_)) => progress = true,
                Poll::Ready(Err(e)) => return Err(Dead::Closed(e)),
            }
            loop {
                let decoded = match raws.as_deref_mut() {
                    // Kept raw, for callers that forward replies as they
                    // came; the router gets a frame sharing its bytes.
                    Some(raws) => self.decoder.decode_raw(&mut self.input).map(|raw| {
                        raw.map(|raw| {
                            let frame = raw.to_frame();
                            if let Some(at) = payload(&frame) {
                                raws.insert(at, raw);
                            }
                            frame
                        })
                    }),
                    None => self.decoder.decode(&mut self.input),
                };
                let frame = match decoded {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => {
                        return Err(Dead::Protocol(io::Error::new(
                            io::ErrorKind::InvalidData,
                            e,
                        )));
                    }
                };
                // Pushes are not replies; we never ask for them (RESP2),
                // but a proxy might send them anyway.
                if matches!(frame, Frame::Push(_)) {
                    continue;
                }
                let Some(token) = self.fifo.pop_front() else {
                    let stray = io::Error::new(io::ErrorKind::InvalidData, "a reply to no command");
                    return Err(Dead::Protocol(stray));
                };
                replies.push((node, token, frame));
            }
        }
        // Out of turns with bytes perhaps still waiting: come back.
        Ok(true)
    }
}

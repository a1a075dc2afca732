//! Pub/sub across the fleet.
//!
//! A channel is placed like a key: channel `c` lives on shard
//! `jump(xxh64(c), S)`, so `SPUBLISH`/`SSUBSCRIBE` and `PUBLISH`/`SUBSCRIBE`
//! both meet on the channel's shard. Patterns match channels of every shard,
//! so a pattern is subscribed on every shard.
//!
//! **Publish to every group, subscribe in one.** A [`Subscription`] listens
//! on one node per shard it needs (one replica group's), and
//! [`Client::publish`](crate::Client::publish) sends the message to the
//! channel's shard in every replica group that is up. So a subscriber hears
//! each message once, from one node, in the order that node received it,
//! which for one publisher is the order it published in. The other choice,
//! subscribing in every group and publishing to one, saves the publisher
//! `R - 1` sends, but a subscriber would then merge `R` connections: a
//! publisher whose next message goes to another group (round-robin reads, a
//! failover) could be heard out of order, and a publish retried on another
//! group after a timeout would be heard twice.
//!
//! **Failover.** When the subscribed node's connection breaks, its `PING`
//! goes unanswered for a timeout, or the client marks the node down, the
//! subscription moves to the shard's node in the next group (nodes the
//! client believes up first) and subscribes there again to everything it
//! held. Publishers were already sending there, so only the messages
//! published between the old node's last delivery and the new subscription
//! taking effect are missed (see docs/client.md, *Pub/sub*).
//!
//! Each subscription has connections of its own, one per shard, never the
//! pipelined ones of the client; dropping the [`Subscription`] closes them.
//! With [`Options::pubsub_resp3`](crate::Options::pubsub_resp3) each one
//! says `HELLO 3` first: messages and confirmations come as RESP3 pushes,
//! and the node answers the link's other commands (its `PING`) with
//! ordinary replies between them, as Redis 6 and later allow; a node that
//! refuses `HELLO 3` is spoken to in RESP2 on that connection.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use resp::Frame;
use route::{GroupId, NodeId, ShardId, Trust};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use crate::driver::{Dial, Shared};
use crate::{Error, NodeEvent};

/// How a [`Message`] reached the subscriber: which kind of subscription
/// matched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `SUBSCRIBE`: a `message`.
    Channel,
    /// `PSUBSCRIBE`: a `pmessage`, with the pattern that matched.
    Pattern,
    /// `SSUBSCRIBE`: an `smessage`.
    Shard,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Channel, Kind::Pattern, Kind::Shard];

    fn index(self) -> usize {
        match self {
            Kind::Channel => 0,
            Kind::Pattern => 1,
            Kind::Shard => 2,
        }
    }

    /// The command that subscribes to this kind, as Redis names it.
    pub fn subscribe_command(self) -> &'static str {
        match self {
            Kind::Channel => "subscribe",
            Kind::Pattern => "psubscribe",
            Kind::Shard => "ssubscribe",
        }
    }

    /// The command that unsubscribes from this kind.
    pub fn unsubscribe_command(self) -> &'static str {
        match self {
            Kind::Channel => "unsubscribe",
            Kind::Pattern => "punsubscribe",
            Kind::Shard => "sunsubscribe",
        }
    }

    /// The name of a message of this kind (`message`, `pmessage`,
    /// `smessage`).
    pub fn message_name(self) -> &'static str {
        match self {
            Kind::Channel => "message",
            Kind::Pattern => "pmessage",
            Kind::Shard => "smessage",
        }
    }

    /// The kind a subscribe or unsubscribe confirmation is about.
    fn of_confirmation(name: &[u8]) -> Option<Kind> {
        let name = name.to_ascii_lowercase();
        Kind::ALL.into_iter().find(|k| {
            name == k.subscribe_command().as_bytes() || name == k.unsubscribe_command().as_bytes()
        })
    }
}

/// A message published to a channel the [`Subscription`] listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// Which subscription matched it.
    pub kind: Kind,
    /// The pattern that matched, for [`Kind::Pattern`].
    pub pattern: Option<Bytes>,
    /// The channel it was published to.
    pub channel: Bytes,
    /// What was published.
    pub payload: Bytes,
}

impl Message {
    /// The message as Redis pushes it: `["message", channel, payload]`,
    /// `["pmessage", pattern, channel, payload]` or
    /// `["smessage", channel, payload]`.
    pub fn to_frame(&self) -> Frame {
        let mut items = vec![Frame::Bulk(Bytes::from_static(
            self.kind.message_name().as_bytes(),
        ))];
        if let Some(pattern) = &self.pattern {
            items.push(Frame::Bulk(pattern.clone()));
        }
        items.push(Frame::Bulk(self.channel.clone()));
        items.push(Frame::Bulk(self.payload.clone()));
        Frame::Array(items)
    }
}

/// The answer to one subscribe or unsubscribe.
type Done = oneshot::Sender<Result<(), Error>>;

/// A change asked of one shard's link.
#[derive(Debug)]
struct Op {
    kind: Kind,
    subscribe: bool,
    names: Vec<Bytes>,
    done: Done,
}

/// Messages queued between the links and [`Subscription::recv`]. When the
/// subscriber falls this far behind, the links stop reading and the nodes
/// hold the rest, up to their `client-output-buffer-limit pubsub`.
const QUEUE: usize = 4096;

/// The first and longest wait before trying a shard's nodes again, when
/// none of them could be subscribed on.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// A set of subscriptions across the fleet, from
/// [`Client::subscribe`](crate::Client::subscribe),
/// [`psubscribe`](crate::Client::psubscribe) or
/// [`ssubscribe`](crate::Client::ssubscribe); read its messages with
/// [`recv`](Subscription::recv).
///
/// It keeps one connection per shard it listens on, of its own, and moves
/// it to another replica group when its node fails (see docs/client.md).
/// Dropping it closes them.
///
/// ```no_run
/// # async fn example(client: ember_client::Client) -> Result<(), ember_client::Error> {
/// let mut sub = client.subscribe(["news"]).await?;
/// sub.psubscribe(["user.*"]).await?;
/// while let Some(message) = sub.recv().await {
///     // message.kind, message.pattern, message.channel, message.payload
///     if &message.payload[..] == b"bye" {
///         sub.unsubscribe(["news"]).await?;
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Subscription {
    shared: Arc<Shared>,
    dial: Arc<Dial>,
    links: HashMap<ShardId, mpsc::UnboundedSender<Op>>,
    tx: mpsc::Sender<Message>,
    rx: mpsc::Receiver<Message>,
    names: [BTreeSet<Bytes>; 3],
}

impl Subscription {
    pub(crate) fn new(shared: Arc<Shared>) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        // The handshake of a plain connection: `AUTH` (and `SELECT`, which
        // pub/sub ignores) when the options ask for it.
        let dial = Arc::new(Dial::new(&shared.options, &shared.topology, false));
        Subscription {
            shared,
            dial,
            links: HashMap::new(),
            tx,
            rx,
            names: Default::default(),
        }
    }

    /// The next message; `None` only if every link stopped (which they do
    /// not while the subscription lives).
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// The next message if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        self.rx.try_recv().ok()
    }

    /// Subscribes to more `names` of one kind: what
    /// [`subscribe`](Subscription::subscribe),
    /// [`psubscribe`](Subscription::psubscribe) and
    /// [`ssubscribe`](Subscription::ssubscribe) do.
    pub(crate) async fn add<I>(&mut self, kind: Kind, names: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.change(kind, true, self::names(names)).await
    }

    /// Subscribes to more channels (`SUBSCRIBE`). Returns once every
    /// channel's shard confirmed it.
    pub async fn subscribe<I>(&mut self, channels: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.add(Kind::Channel, channels).await
    }

    /// Subscribes to more patterns (`PSUBSCRIBE`), on every shard.
    pub async fn psubscribe<I>(&mut self, patterns: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.add(Kind::Pattern, patterns).await
    }

    /// Subscribes to more shard channels (`SSUBSCRIBE`).
    pub async fn ssubscribe<I>(&mut self, channels: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.add(Kind::Shard, channels).await
    }

    /// Unsubscribes from channels; from every channel when none is named.
    pub async fn unsubscribe<I>(&mut self, channels: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.change(Kind::Channel, false, names(channels)).await
    }

    /// Unsubscribes from patterns; from every pattern when none is named.
    pub async fn punsubscribe<I>(&mut self, patterns: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.change(Kind::Pattern, false, names(patterns)).await
    }

    /// Unsubscribes from shard channels; from all when none is named.
    pub async fn sunsubscribe<I>(&mut self, channels: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.change(Kind::Shard, false, names(channels)).await
    }

    /// What is subscribed to, of one kind, sorted.
    pub fn subscribed(&self, kind: Kind) -> impl Iterator<Item = &Bytes> {
        self.names[kind.index()].iter()
    }

    /// How many channels and patterns are subscribed to, as Redis counts
    /// them in a `subscribe` or `psubscribe` confirmation.
    pub fn count(&self) -> usize {
        self.names[0].len() + self.names[1].len()
    }

    /// How many shard channels are subscribed to, as Redis counts them in
    /// an `ssubscribe` confirmation.
    pub fn shard_count(&self) -> usize {
        self.names[2].len()
    }

    async fn change(
        &mut self,
        kind: Kind,
        subscribe: bool,
        names: Vec<Bytes>,
    ) -> Result<(), Error> {
        let set = &mut self.names[kind.index()];
        let names = if !subscribe && names.is_empty() {
            set.iter().cloned().collect()
        } else {
            names
        };
        if names.is_empty() {
            return Ok(());
        }
        for name in &names {
            if subscribe {
                set.insert(name.clone());
            } else {
                set.remove(name);
            }
        }
        // Which shards hear of it: a channel's own, or every shard for a
        // pattern.
        let topology = &self.shared.topology;
        let mut per_shard: HashMap<ShardId, Vec<Bytes>> = HashMap::new();
        match kind {
            Kind::Pattern => {
                for s in 0..topology.shards() {
                    per_shard.insert(ShardId(s), names.clone());
                }
            }
            Kind::Channel | Kind::Shard => {
                for name in names {
                    per_shard
                        .entry(topology.shard_for(&name))
                        .or_default()
                        .push(name);
                }
            }
        }
        let mut answers = Vec::with_capacity(per_shard.len());
        for (shard, names) in per_shard {
            // Nothing to take back from a shard never subscribed on.
            if !subscribe && !self.links.contains_key(&shard) {
                continue;
            }
            let link = self.links.entry(shard).or_insert_with(|| {
                let (ops, rx) = mpsc::unbounded_channel();
                let link = Link {
                    shard,
                    shared: self.shared.clone(),
                    dial: self.dial.clone(),
                    out: self.tx.clone(),
                    ops: rx,
                    names: Default::default(),
                    group: first_group(&self.shared, shard),
                };
                tokio::spawn(link.run());
                ops
            });
            let (done, answer) = oneshot::channel();
            let op = Op {
                kind,
                subscribe,
                names,
                done,
            };
            if link.send(op).is_err() {
                return Err(Error::Closed);
            }
            answers.push(answer);
        }
        let mut result = Ok(());
        for answer in answers {
            let r = answer.await.unwrap_or(Err(Error::Closed));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

fn names<I>(items: I) -> Vec<Bytes>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    items
        .into_iter()
        .map(|n| Bytes::copy_from_slice(n.as_ref()))
        .collect()
}

/// The group a shard's link starts in: the first whose node is up.
fn first_group(shared: &Shared, shard: ShardId) -> u32 {
    (0..shared.topology.groups())
        .find(|&g| {
            shared
                .topology
                .node(GroupId(g), shard)
                .is_some_and(|n| is_up(shared, n))
        })
        .unwrap_or(0)
}

fn is_up(shared: &Shared, node: NodeId) -> bool {
    shared
        .up
        .get(node.0 as usize)
        .is_some_and(|up| up.load(std::sync::atomic::Ordering::Relaxed))
}

/// Commands sent on a link whose confirmations have not all come.
#[derive(Debug)]
struct Sent {
    /// Confirmations still to come (Redis sends one per name).
    remaining: usize,
    /// Who waits for them.
    done: Vec<Done>,
}

/// Why a link's connection ended.
enum Exit {
    /// The subscription was dropped.
    Closed,
    /// Nothing is subscribed to any more on this shard.
    Idle,
    /// The node failed: subscribe elsewhere. Whether anything had come
    /// from it first.
    Failed(String, bool),
}

/// One shard's connection of a subscription, and what it holds there.
struct Link {
    shard: ShardId,
    shared: Arc<Shared>,
    dial: Arc<Dial>,
    out: mpsc::Sender<Message>,
    ops: mpsc::UnboundedReceiver<Op>,
    names: [BTreeSet<Bytes>; 3],
    /// The group subscribed in, or to try first.
    group: u32,
}

impl Link {
    fn is_empty(&self) -> bool {
        self.names.iter().all(BTreeSet::is_empty)
    }

    /// Records an op's change; returns the names to send (those named, or
    /// for an unsubscribe without names, all of its kind).
    fn apply(&mut self, op: &Op) -> Vec<Bytes> {
        let set = &mut self.names[op.kind.index()];
        let names = if !op.subscribe && op.names.is_empty() {
            set.iter().cloned().collect()
        } else {
            op.names.clone()
        };
        for name in &names {
            if op.subscribe {
                set.insert(name.clone());
            } else {
                set.remove(name);
            }
        }
        names
    }

    async fn run(mut self) {
        // Who waits for a subscription that is not on a node yet.
        let mut waiting: Vec<Done> = Vec::new();
        let mut events = self.shared.events.subscribe();
        let mut backoff = BACKOFF.0;
        loop {
            if self.is_empty() {
                for done in waiting.drain(..) {
                    let _ = done.send(Ok(()));
                }
                let Some(op) = self.ops.recv().await else {
                    return;
                };
                self.apply(&op);
                waiting.push(op.done);
                continue;
            }
            let (stream, node) = match self.connect().await {
                Ok(found) => found,
                Err(reason) => {
                    tracing::warn!(shard = self.shard.0, "pub/sub: {reason}");
                    for done in waiting.drain(..) {
                        let _ = done.send(Err(Error::Io(io::Error::new(
                            io::ErrorKind::NotConnected,
                            reason.clone(),
                        ))));
                    }
                    if !self.wait(backoff, &mut waiting).await {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF.1);
                    continue;
                }
            };
            match self.serve(stream, node, &mut waiting, &mut events).await {
                Exit::Closed => return,
                Exit::Idle => backoff = BACKOFF.0,
                Exit::Failed(reason, heard) => {
                    tracing::warn!(
                        shard = self.shard.0,
                        node = node.0,
                        "pub/sub: subscribing elsewhere: {reason}"
                    );
                    self.group = (self.group + 1) % self.shared.topology.groups().max(1);
                    // A connection that served moves at once, so that
                    // little is missed; nodes that take connections and
                    // drop them before a word are not tried in a busy loop.
                    if heard {
                        backoff = BACKOFF.0;
                    } else {
                        if !self.wait(backoff, &mut waiting).await {
                            return;
                        }
                        backoff = (backoff * 2).min(BACKOFF.1);
                    }
                }
            }
        }
    }

    /// Waits `delay`, taking the changes asked meanwhile (made on the next
    /// connection); `false` if the subscription was dropped.
    async fn wait(&mut self, delay: Duration, waiting: &mut Vec<Done>) -> bool {
        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = &mut wake => return true,
                op = self.ops.recv() => match op {
                    None => return false,
                    Some(op) => {
                        self.apply(&op);
                        waiting.push(op.done);
                    }
                },
            }
        }
    }

    /// Opens a connection to the shard's node in the first group that
    /// takes one: from `self.group` on, nodes the client believes up first.
    async fn connect(&mut self) -> Result<(TcpStream, NodeId), String> {
        let topology = &self.shared.topology;
        let groups = topology.groups();
        let order: Vec<(u32, NodeId)> = (0..groups)
            .map(|i| (self.group + i) % groups)
            .filter_map(|g| topology.node(GroupId(g), self.shard).map(|n| (g, n)))
            .collect();
        let (up, down): (Vec<_>, Vec<_>) = order
            .into_iter()
            .partition(|&(_, n)| is_up(&self.shared, n));
        let mut errors = Vec::new();
        for (g, node) in up.into_iter().chain(down) {
            let addr = topology.addr(node).unwrap_or_default();
            match self.dial.open(addr, None).await {
                Ok((stream, _)) => {
                    self.group = g;
                    return Ok((stream, node));
                }
                Err(e) => errors.push(format!("node {} ({addr}): {e}", node.0)),
            }
        }
        Err(format!(
            "no node of shard {} could be subscribed on: {}",
            self.shard.0,
            errors.join("; ")
        ))
    }

    /// Subscribes on `stream` to everything the link holds, then passes
    /// messages on and changes on until the connection ends.
    async fn serve(
        &mut self,
        mut stream: TcpStream,
        node: NodeId,
        waiting: &mut Vec<Done>,
        events: &mut broadcast::Receiver<NodeEvent>,
    ) -> Exit {
        let timeout = self.shared.options.timeout;
        let mut sent: VecDeque<Sent> = VecDeque::new();
        let mut output = BytesMut::new();
        // RESP3, asked for in the same write as the subscriptions: the
        // first reply is `HELLO`'s.
        let mut hello = self.shared.options.pubsub_resp3;
        if hello {
            resp::encode_command(&mut output, &[&b"HELLO"[..], b"3"]);
        }
        for kind in Kind::ALL {
            let set = &self.names[kind.index()];
            if set.is_empty() {
                continue;
            }
            encode(&mut output, kind.subscribe_command(), set.iter());
            sent.push_back(Sent {
                remaining: set.len(),
                done: Vec::new(),
            });
        }
        // Those waiting hear back once all of it is confirmed.
        if let Some(last) = sent.back_mut() {
            last.done.append(waiting);
        }
        if let Err(e) = write(&mut stream, &mut output, timeout).await {
            waiting.extend(sent.into_iter().flat_map(|s| s.done));
            return Exit::Failed(e, false);
        }
        let mut input = BytesMut::with_capacity(16 * 1024);
        let mut decoder = resp::Decoder::new();
        let mut ticks = tokio::time::interval_at(Instant::now() + timeout, timeout);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A `PING` went and nothing came since.
        let mut ping: Option<()> = None;
        // Whether anything came from the node.
        let mut heard = false;
        let exit = 'conn: loop {
            tokio::select! {
                op = self.ops.recv() => {
                    let Some(op) = op else { break 'conn Exit::Closed };
                    let names = self.apply(&op);
                    if names.is_empty() {
                        let _ = op.done.send(Ok(()));
                        continue;
                    }
                    let command = if op.subscribe {
                        op.kind.subscribe_command()
                    } else {
                        op.kind.unsubscribe_command()
                    };
                    encode(&mut output, command, names.iter());
                    sent.push_back(Sent { remaining: names.len(), done: vec![op.done] });
                    if let Err(e) = write(&mut stream, &mut output, timeout).await {
                        break 'conn Exit::Failed(e, heard);
                    }
                }
                read = stream.read_buf(&mut input) => {
                    match read {
                        Ok(0) => {
                            let reason = "the node closed the connection".into();
                            break 'conn Exit::Failed(reason, heard);
                        }
                        Ok(_) => {}
                        Err(e) => break 'conn Exit::Failed(e.to_string(), heard),
                    }
                    ping = None;
                    heard = true;
                    loop {
                        let frame = match decoder.decode(&mut input) {
                            Ok(Some(frame)) => frame,
                            Ok(None) => break,
                            Err(e) => break 'conn Exit::Failed(format!("bad reply: {e}"), heard),
                        };
                        if hello {
                            hello = false;
                            if let Frame::Error(text) | Frame::BulkError(text) = &frame {
                                // An older node: it stays in RESP2, and so
                                // do the subscriptions that follow.
                                tracing::warn!(
                                    node = node.0,
                                    "pub/sub: HELLO 3 refused, RESP2 it is: {}",
                                    String::from_utf8_lossy(text)
                                );
                            }
                            continue;
                        }
                        if let Some(message) = message(&frame) {
                            if self.out.send(message).await.is_err() {
                                break 'conn Exit::Closed;
                            }
                        } else {
                            confirm(&mut sent, frame);
                        }
                    }
                    if self.is_empty() && sent.is_empty() {
                        break 'conn Exit::Idle;
                    }
                }
                _ = ticks.tick() => {
                    // Nothing came in a whole period since the `PING` went.
                    if ping.is_some() {
                        break 'conn Exit::Failed("no answer to PING".into(), heard);
                    }
                    encode(&mut output, "PING", std::iter::empty());
                    if let Err(e) = write(&mut stream, &mut output, timeout).await {
                        break 'conn Exit::Failed(e, heard);
                    }
                    ping = Some(());
                }
                event = events.recv() => {
                    if let Ok(NodeEvent::Down(down)) = event
                        && down == node
                    {
                        break 'conn Exit::Failed("the client marked the node down".into(), heard);
                    }
                }
            }
        };
        // Changes not confirmed yet are made again on the next node.
        waiting.extend(sent.into_iter().flat_map(|s| s.done));
        exit
    }
}

/// Encodes `command name...`.
fn encode<'a>(output: &mut BytesMut, command: &str, names: impl Iterator<Item = &'a Bytes>) {
    let mut args: Vec<&[u8]> = vec![command.as_bytes()];
    args.extend(names.map(|n| &n[..]));
    resp::encode_command(output, &args);
}

/// Writes out `output`, within `timeout`.
async fn write(
    stream: &mut TcpStream,
    output: &mut BytesMut,
    timeout: Duration,
) -> Result<(), String> {
    let result = tokio::time::timeout(timeout, stream.write_all(output)).await;
    output.clear();
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("write timed out".into()),
    }
}

/// The message a pushed frame carries, if it is one.
fn message(frame: &Frame) -> Option<Message> {
    let (Frame::Array(items) | Frame::Push(items)) = frame else {
        return None;
    };
    let bulk = |i: usize| match items.get(i) {
        Some(Frame::Bulk(b)) => Some(b.clone()),
        _ => None,
    };
    let name = bulk(0)?.to_ascii_lowercase();
    let (kind, pattern, first) = match &name[..] {
        b"message" if items.len() == 3 => (Kind::Channel, None, 1),
        b"smessage" if items.len() == 3 => (Kind::Shard, None, 1),
        b"pmessage" if items.len() == 4 => (Kind::Pattern, Some(bulk(1)?), 2),
        _ => return None,
    };
    Some(Message {
        kind,
        pattern,
        channel: bulk(first)?,
        payload: bulk(first + 1)?,
    })
}

/// Counts a confirmation (or an error reply) against the oldest command
/// still waiting for them; a `PING`'s answer counts for nothing.
fn confirm(sent: &mut VecDeque<Sent>, frame: Frame) {
    let Some(front) = sent.front_mut() else {
        return;
    };
    match frame {
        Frame::Array(items) | Frame::Push(items) => {
            let is_confirmation = matches!(
                items.first(),
                Some(Frame::Bulk(name)) if Kind::of_confirmation(name).is_some()
            );
            if !is_confirmation {
                return;
            }
            front.remaining = front.remaining.saturating_sub(1);
            if front.remaining == 0
                && let Some(done) = sent.pop_front()
            {
                for d in done.done {
                    let _ = d.send(Ok(()));
                }
            }
        }
        Frame::Error(text) | Frame::BulkError(text) => {
            if let Some(done) = sent.pop_front() {
                let text = String::from_utf8_lossy(&text).into_owned();
                for d in done.done {
                    let _ = d.send(Err(Error::Redis(text.clone())));
                }
            }
        }
        _ => {}
    }
}

/// Where `PUBLISH` and `SPUBLISH` go: the channel's shard in every group
/// that is up and not being repaired (a node under repair is a replica and
/// hears its peer's publishes through replication; sending it one too would
/// deliver it twice). When no node is up, every one, so that the caller
/// hears why they failed.
pub(crate) fn publish_targets(shared: &Shared, channel: &[u8]) -> Vec<NodeId> {
    let topology = &shared.topology;
    let shard = topology.shard_for(channel);
    let all: Vec<NodeId> = (0..topology.groups())
        .filter_map(|g| topology.node(GroupId(g), shard))
        .collect();
    let trust = shared.trust.lock().map(|t| t.clone()).unwrap_or_default();
    let live: Vec<NodeId> = all
        .iter()
        .copied()
        .filter(|&n| is_up(shared, n) && trust.get(n.0 as usize) != Some(&Trust::Repairing))
        .collect();
    if live.is_empty() { all } else { live }
}

/// Whether `args` is a `PUBLISH` or `SPUBLISH` to fan out over the groups.
pub(crate) fn is_publish(args: &[Bytes]) -> bool {
    args.len() == 3
        && (args[0].eq_ignore_ascii_case(b"publish") || args[0].eq_ignore_ascii_case(b"spublish"))
}

/// Adds up the groups' answers to one publish: how many subscribers got
/// it in all. An error only if no group answered.
pub(crate) async fn merge_publish(
    answers: Vec<oneshot::Receiver<Result<Frame, Error>>>,
) -> Result<Frame, Error> {
    let mut total = 0i64;
    let mut answered = false;
    let mut first_error = None;
    for answer in answers {
        match answer.await.unwrap_or(Err(Error::Closed)) {
            Ok(Frame::Integer(n)) => {
                total = total.saturating_add(n);
                answered = true;
            }
            Ok(other) => {
                first_error.get_or_insert(Ok(other));
            }
            Err(e) => {
                first_error.get_or_insert(Err(e));
            }
        }
    }
    if answered {
        Ok(Frame::Integer(total))
    } else {
        first_error.unwrap_or(Err(Error::Closed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn pushed_messages() {
        let m = message(&Frame::Array(vec![bulk("message"), bulk("ch"), bulk("hi")])).unwrap();
        assert_eq!(
            (m.kind, m.pattern, &m.channel[..]),
            (Kind::Channel, None, &b"ch"[..])
        );
        let p = Frame::Array(vec![bulk("pmessage"), bulk("c*"), bulk("ch"), bulk("hi")]);
        let m = message(&p).unwrap();
        assert_eq!(m.pattern.as_deref(), Some(&b"c*"[..]));
        assert_eq!(m.to_frame(), p);
        assert!(
            message(&Frame::Array(vec![
                bulk("subscribe"),
                bulk("ch"),
                Frame::Integer(1)
            ]))
            .is_none()
        );
        assert!(message(&Frame::Array(vec![bulk("pmessage"), bulk("ch")])).is_none());
        assert!(message(&bulk("message")).is_none());
    }

    #[test]
    fn resp3_pushes_are_messages_and_confirmations() {
        let push = Frame::Push(vec![bulk("smessage"), bulk("ch"), bulk("hi")]);
        let m = message(&push).unwrap();
        assert_eq!((m.kind, &m.payload[..]), (Kind::Shard, &b"hi"[..]));
        let mut sent = VecDeque::new();
        let (a, mut ra) = oneshot::channel();
        sent.push_back(Sent {
            remaining: 1,
            done: vec![a],
        });
        // A RESP3 `PING`'s reply is no confirmation.
        confirm(&mut sent, Frame::Simple(Bytes::from_static(b"PONG")));
        assert!(ra.try_recv().is_err());
        let conf = Frame::Push(vec![bulk("psubscribe"), bulk("c*"), Frame::Integer(1)]);
        confirm(&mut sent, conf);
        assert!(matches!(ra.try_recv(), Ok(Ok(()))));
    }

    #[test]
    fn confirmations_answer_in_order() {
        let mut sent = VecDeque::new();
        let (a, mut ra) = oneshot::channel();
        let (b, mut rb) = oneshot::channel();
        sent.push_back(Sent {
            remaining: 2,
            done: vec![a],
        });
        sent.push_back(Sent {
            remaining: 1,
            done: vec![b],
        });
        let conf = |name: &str| Frame::Array(vec![bulk(name), bulk("x"), Frame::Integer(1)]);
        confirm(&mut sent, conf("subscribe"));
        assert!(ra.try_recv().is_err());
        confirm(&mut sent, Frame::Array(vec![bulk("pong"), bulk("")]));
        confirm(&mut sent, conf("subscribe"));
        assert!(matches!(ra.try_recv(), Ok(Ok(()))));
        confirm(&mut sent, Frame::Error(Bytes::from_static(b"ERR no")));
        assert!(matches!(rb.try_recv(), Ok(Err(Error::Redis(t))) if t == "ERR no"));
        assert!(sent.is_empty());
    }

    #[test]
    fn publish_is_recognised() {
        let args = |s: &[&str]| {
            s.iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect::<Vec<_>>()
        };
        assert!(is_publish(&args(&["PUBLISH", "ch", "m"])));
        assert!(is_publish(&args(&["spublish", "ch", "m"])));
        assert!(!is_publish(&args(&["PUBLISH", "ch"])));
        assert!(!is_publish(&args(&["PUBSUB", "ch", "m"])));
    }
}

//! The handles: [`Client`] for a topology, [`Connection`] for one node.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use resp::Frame;
use route::{Command, NodeId, Topology};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::commands::{
    SetOptions, SetReply, arg, boolean, int, integer, list, name, ok, opt_bytes, opt_list, pairs,
    set_reply, typed_commands,
};
use crate::driver::{self, Answer, Mode, Msg, Shared};
use crate::{Error, Options};

/// A client for Ember's replicated, sharded keyspace: `R` replica groups of
/// `S` Redis (or Ember) servers each, as a [`Topology`] describes them.
///
/// Writes go to every group, reads to one replica, multi-key commands are
/// split by shard and merged, and failing nodes are avoided and probed back
/// (see [`Router`](route::Router) for the rules). `Client` is cheap to clone
/// and every clone shares one driver task and one pipelined connection per
/// node, so many tasks can use it at once:
///
/// ```no_run
/// use ember_client::{Client, Options, Topology};
///
/// # async fn example() -> Result<(), ember_client::Error> {
/// let topology = Topology::new([
///     ["10.0.0.1:6379", "10.0.0.2:6379"],
///     ["10.0.1.1:6379", "10.0.1.2:6379"],
/// ])?;
/// let client = Client::connect(topology, Options::default()).await?;
/// client.set("greeting", "hello").await?;
/// assert_eq!(client.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
/// let reply = client.cmd(["LPUSH", "list", "a", "b"]).await?;
/// # let _ = reply;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    tx: mpsc::UnboundedSender<Msg>,
    shared: Arc<Shared>,
}

/// A node's change of health, as a [`Client`] saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node failed too many times in a row: requests avoid it, and it
    /// is probed with backoff until it answers.
    Down(NodeId),
    /// A node that was down answered a probe.
    Up(NodeId),
    /// What the client believes of a node's data changed: it restarted or
    /// missed writes ([`Trust::Unverified`](route::Trust)), is being
    /// repaired, or was verified.
    Trust(NodeId, route::Trust),
}

/// The stream of a client's [`NodeEvent`]s, from [`Client::node_events`].
#[derive(Debug)]
pub struct NodeEvents(broadcast::Receiver<NodeEvent>);

impl NodeEvents {
    /// The next event; `None` once the client's driver has stopped. Events
    /// missed while the receiver lagged far behind are skipped.
    pub async fn recv(&mut self) -> Option<NodeEvent> {
        loop {
            match self.0.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("topology", &self.shared.topology)
            .finish_non_exhaustive()
    }
}

/// Sends one message and waits for its answer.
async fn request(
    tx: &mpsc::UnboundedSender<Msg>,
    make: impl FnOnce(driver::Reply) -> Msg,
) -> Result<Frame, Error> {
    let (reply, answer) = oneshot::channel();
    // If the driver is gone the message (and `reply`) is dropped, and the
    // receiver says so.
    let _ = tx.send(make(reply));
    answer.await.unwrap_or(Err(Error::Closed))
}

/// Sends every message before waiting for the first answer, so that they
/// leave together.
async fn pipeline(
    tx: &mpsc::UnboundedSender<Msg>,
    commands: impl IntoIterator<Item = Vec<Bytes>>,
    make: impl Fn(Vec<Bytes>, driver::Reply) -> Msg,
) -> Vec<Result<Frame, Error>> {
    let answers: Vec<_> = commands
        .into_iter()
        .map(|args| {
            let (reply, answer) = oneshot::channel();
            let _ = tx.send(make(args, reply));
            answer
        })
        .collect();
    let mut out = Vec::with_capacity(answers.len());
    for answer in answers {
        out.push(answer.await.unwrap_or(Err(Error::Closed)));
    }
    out
}

fn to_args<I>(args: I) -> Command
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    args.into_iter().map(arg).collect()
}

impl Client {
    /// Starts a client for `topology` on the current tokio runtime (which
    /// needs its time and I/O drivers) and opens a connection to every node.
    ///
    /// Returns once every node has been tried: it fails only if no node at
    /// all could be reached. With self-healing on, what the client believes
    /// of every node it reached is known by then ([`Client::trust`]). Nodes that could not be are tried again when a
    /// request needs them, and probed with backoff once they count as down.
    pub async fn connect(topology: Topology, options: Options) -> Result<Client, Error> {
        let (tx, shared, ready) = driver::spawn(topology, &options, Mode::Cluster);
        ready.await.unwrap_or(Err(Error::Closed))?;
        Ok(Client { tx, shared })
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.shared.topology
    }

    /// Whether `node` is up, as far as the client knows: not marked down
    /// after failing, or back since.
    pub fn is_up(&self, node: NodeId) -> bool {
        self.shared
            .up
            .get(node.0 as usize)
            .is_some_and(|up| up.load(Ordering::Relaxed))
    }

    /// Nodes going down and coming back from now on.
    pub fn node_events(&self) -> NodeEvents {
        NodeEvents(self.shared.events.subscribe())
    }

    /// Waits until nothing is in flight: every write answered (or failed)
    /// on every group, and the hints for the groups that missed one
    /// written to their peers. A short-lived process should call it before
    /// it exits, or a node that missed its last writes may not learn of
    /// them. Gives up after twice the timeout.
    pub async fn flush(&self) {
        let (reply, done) = oneshot::channel();
        let _ = self.tx.send(Msg::Flush { reply });
        let wait = self.shared.options.timeout.saturating_mul(2);
        let _ = tokio::time::timeout(wait, done).await;
    }

    /// What the client believes of `node`'s data (see docs/client.md):
    /// verified, unverified and why, or being repaired.
    pub fn trust(&self, node: NodeId) -> Option<route::Trust> {
        let trust = self.shared.trust.lock().ok()?;
        trust.get(node.0 as usize).copied()
    }

    /// Brings `node` back to its peers' data, now: the hinted keys it
    /// missed if it kept its process, or a full copy by replication if it
    /// restarted (see [`RepairKind`](crate::RepairKind)). Needs a verified
    /// peer of its shard that is up, or, for the keys a node missed only, a
    /// peer doubted only for writes it missed in turn. With [`Options::repair`] on (the
    /// default) the client does this by itself when a doubted node answers
    /// again.
    pub async fn repair(&self, node: NodeId) -> Result<crate::RepairReport, Error> {
        let shared = &self.shared;
        shared
            .topology
            .position(node)
            .ok_or(route::RouteError::UnknownNode(node))?;
        let source = crate::repair::pick_source(&shared.topology, node, |n| {
            self.is_up(n).then(|| self.trust(n)).flatten()
        })
        .ok_or_else(|| {
            Error::Repair(format!(
                "no verified peer of node {} is up to repair it from",
                node.0
            ))
        })?;
        // One repair of a node at a time in a client: wait for an automatic
        // one to end (this one then finds what it left, often nothing).
        let flag = &shared.repairing[node.0 as usize];
        let deadline = std::time::Instant::now() + shared.options.repair_timeout;
        while flag
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            if std::time::Instant::now() >= deadline {
                return Err(Error::Repair(format!(
                    "node {} has been under repair by this client for too long",
                    node.0
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let result = crate::repair::run(shared, &self.tx, node, source).await;
        flag.store(false, Ordering::Release);
        // What the repair told the driver is visible once it returns.
        let (reply, done) = oneshot::channel();
        let _ = self.tx.send(Msg::Barrier { reply });
        let _ = done.await;
        result
    }

    /// Runs any command the router knows, name first:
    /// `client.cmd(["HINCRBY", "h", "f", "2"])`.
    ///
    /// The answer is the reply frame, merged over shards for commands
    /// split by shard. An error reply comes back as [`Error::Redis`]; errors
    /// nested in an array stay frames.
    pub async fn cmd<I>(&self, args: I) -> Result<Frame, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.call(to_args(args)).await
    }

    /// As [`cmd`](Client::cmd), taking the arguments as they are.
    pub async fn cmd_bytes(&self, args: Vec<Bytes>) -> Result<Frame, Error> {
        self.call(args).await
    }

    /// Sends a command to one node as it is, without the command table or
    /// failover: for node-level commands (`INFO`, `CLIENT LIST`) and for
    /// commands the router does not know.
    pub async fn cmd_on<I>(&self, node: NodeId, args: I) -> Result<Frame, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let args = to_args(args);
        request(&self.tx, |reply| Msg::To { node, args, reply }).await
    }

    /// Sends many commands at once, and answers each in order. They are
    /// independent requests (for atomicity, see
    /// [`transaction`](Client::transaction)), but they leave together.
    pub async fn pipeline(
        &self,
        commands: impl IntoIterator<Item = Vec<Bytes>>,
    ) -> Vec<Result<Frame, Error>> {
        let answers: Vec<_> = commands
            .into_iter()
            .map(|args| {
                let (reply, answer) = oneshot::channel();
                self.route(args.into(), reply);
                answer
            })
            .collect();
        let mut out = Vec::with_capacity(answers.len());
        for answer in answers {
            out.push(answer.await.unwrap_or(Err(Error::Closed)));
        }
        out
    }

    /// Runs the commands between `MULTI` and `EXEC` on one shard (every
    /// replica group, if any of them writes). Their keys must all live on
    /// that shard: use hash tags. The answer is `EXEC`'s array.
    pub async fn transaction(&self, commands: Vec<Vec<Bytes>>) -> Result<Frame, Error> {
        request(&self.tx, |reply| Msg::Transaction { commands, reply }).await
    }

    async fn call(&self, args: impl Into<Command>) -> Result<Frame, Error> {
        let (reply, answer) = oneshot::channel();
        self.route(args.into(), reply);
        answer.await.unwrap_or(Err(Error::Closed))
    }

    /// Hands a routed command to the driver; `PUBLISH` and `SPUBLISH` go to
    /// every replica group instead (see [`publish`](Client::publish)).
    fn route(&self, args: Command, reply: driver::Reply) {
        if self.shared.topology.groups() > 1
            && crate::pubsub::is_publish(args.args())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let answers = self.publish_sends(&args);
            runtime.spawn(async move {
                let _ = reply.send(crate::pubsub::merge_publish(answers).await);
            });
            return;
        }
        let _ = self.tx.send(Msg::Routed { args, reply });
    }

    /// Sends a publish to its channel's shard in every group that is up,
    /// now, so that publishes leave in the order they were made.
    fn publish_sends(&self, args: &Command) -> Vec<oneshot::Receiver<Result<Frame, Error>>> {
        crate::pubsub::publish_targets(&self.shared, &args.args()[1])
            .into_iter()
            .map(|node| {
                let (reply, answer) = oneshot::channel();
                let args = args.clone();
                let _ = self.tx.send(Msg::To { node, args, reply });
                answer
            })
            .collect()
    }

    /// Publishes `message` to `channel` and answers how many subscribers
    /// received it, summed over the replica groups.
    ///
    /// The channel lives on a shard, as a key would; the message goes to
    /// that shard's node in **every** replica group that is up, where the
    /// channel's subscribers may listen (a [`Subscription`](crate::Subscription)
    /// listens in one group). It fails only if no group answered. `PUBLISH`
    /// sent through [`cmd`](Client::cmd), [`start`](Client::start) or
    /// [`pipeline`](Client::pipeline) travels the same way.
    pub async fn publish(
        &self,
        channel: impl AsRef<[u8]>,
        message: impl AsRef<[u8]>,
    ) -> Result<i64, Error> {
        let reply = self
            .call(vec![name("PUBLISH"), arg(channel), arg(message)])
            .await?;
        integer("PUBLISH", reply)
    }

    /// As [`publish`](Client::publish), with `SPUBLISH`: heard by
    /// [`ssubscribe`](Client::ssubscribe)rs of the channel.
    pub async fn spublish(
        &self,
        channel: impl AsRef<[u8]>,
        message: impl AsRef<[u8]>,
    ) -> Result<i64, Error> {
        let reply = self
            .call(vec![name("SPUBLISH"), arg(channel), arg(message)])
            .await?;
        integer("SPUBLISH", reply)
    }

    /// Subscribes to `channels` (`SUBSCRIBE`), each on its shard's node in
    /// one replica group, on connections of the subscription's own. Returns
    /// once every shard confirmed; read the messages with
    /// [`Subscription::recv`](crate::Subscription::recv). When that node
    /// fails, the subscription moves to another group (docs/client.md says
    /// what may be missed meanwhile).
    pub async fn subscribe<I>(&self, channels: I) -> Result<crate::Subscription, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.subscribed(crate::Kind::Channel, channels).await
    }

    /// Subscribes to glob-style `patterns` (`PSUBSCRIBE`) on every shard,
    /// since the channels they match live on any of them.
    pub async fn psubscribe<I>(&self, patterns: I) -> Result<crate::Subscription, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.subscribed(crate::Kind::Pattern, patterns).await
    }

    /// Subscribes to shard `channels` (`SSUBSCRIBE`), each on its shard.
    pub async fn ssubscribe<I>(&self, channels: I) -> Result<crate::Subscription, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.subscribed(crate::Kind::Shard, channels).await
    }

    /// A new subscription to `names` of one kind, once confirmed.
    async fn subscribed<I>(&self, kind: crate::Kind, names: I) -> Result<crate::Subscription, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut sub = self.subscription();
        sub.add(kind, names).await?;
        Ok(sub)
    }

    /// An empty subscription, to add channels, patterns and shard channels
    /// to as needed.
    pub fn subscription(&self) -> crate::Subscription {
        crate::Subscription::new(self.shared.clone())
    }

    /// Sends a routed command now, without waiting: the answer comes
    /// through the returned [`Pending`]. For callers that keep many
    /// requests in flight and take their answers in order (a proxy
    /// forwarding a client's pipeline).
    pub fn start(&self, args: impl Into<Command>) -> Pending {
        Pending(self.send(None, args))
    }

    /// As [`start`](Client::start), for a caller that forwards answers
    /// (a proxy): a node's reply that the router passes on unchanged comes
    /// as [`Answer::Raw`], its bytes exactly as the node sent them, to be
    /// written on without encoding it again; any other as a frame.
    pub fn start_raw(&self, args: impl Into<Command>) -> RawPending {
        let (reply, answer) = oneshot::channel();
        let args = args.into();
        if self.shared.topology.groups() > 1
            && crate::pubsub::is_publish(args.args())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let answers = self.publish_sends(&args);
            runtime.spawn(async move {
                let merged = crate::pubsub::merge_publish(answers).await;
                let _ = reply.send(merged.map(Answer::Frame));
            });
            return Pending(answer);
        }
        let _ = self.tx.send(Msg::RoutedRaw { args, reply });
        Pending(answer)
    }

    /// As [`transaction`](Client::transaction), sent now; the answer comes
    /// through the returned [`Pending`].
    pub fn start_transaction(&self, commands: Vec<Vec<Bytes>>) -> Pending {
        let (reply, answer) = oneshot::channel();
        let _ = self.tx.send(Msg::Transaction { commands, reply });
        Pending(answer)
    }

    /// Sends a command now, routed or to `node`, and returns where its
    /// answer will come: for callers that keep many in flight in order.
    pub(crate) fn send(
        &self,
        node: Option<NodeId>,
        args: impl Into<Command>,
    ) -> oneshot::Receiver<Result<Frame, Error>> {
        let (reply, answer) = oneshot::channel();
        let args = args.into();
        match node {
            Some(node) => {
                let _ = self.tx.send(Msg::To { node, args, reply });
            }
            None => self.route(args, reply),
        }
        answer
    }

    typed_commands!();
}

/// A request sent by [`Client::start`], whose answer is on its way.
#[derive(Debug)]
pub struct Pending<T = Frame>(oneshot::Receiver<Result<T, Error>>);

impl<T> Future for Pending<T> {
    type Output = Result<T, Error>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(Error::Closed)))
    }
}

/// A request sent by [`Client::start_raw`], whose answer is on its way.
pub type RawPending = Pending<Answer>;

/// A connection to one Redis server (or any server that speaks RESP2).
///
/// It is the [`Client`]'s machinery for a topology of one node, sending
/// every command as it is: any command works, including those the router
/// does not know. Cheap to clone; concurrent requests are pipelined on one
/// socket. A command that gets no answer within the timeout fails with
/// [`Error::Timeout`] and the socket is replaced; a broken socket fails its
/// commands with [`Error::Io`] and the next command reconnects.
///
/// Connection state (`SELECT`, `AUTH`, `CLIENT SETNAME`) does not survive a
/// reconnection.
///
/// ```no_run
/// use ember_client::Connection;
///
/// # async fn example() -> Result<(), ember_client::Error> {
/// let conn = Connection::connect("127.0.0.1:6379").await?;
/// conn.set("k", "v").await?;
/// let replies = conn.pipeline([
///     vec!["INCR".into(), "n".into()],
///     vec!["INCR".into(), "n".into()],
/// ]).await;
/// # let _ = replies;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Connection {
    tx: mpsc::UnboundedSender<Msg>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`) with the default options.
    pub async fn connect(addr: impl Into<String>) -> Result<Connection, Error> {
        Connection::connect_with(addr, Options::default()).await
    }

    /// Connects to `addr` (`host:port`) with `options`; only the timeouts,
    /// the failure threshold and the backoff apply to one node.
    pub async fn connect_with(
        addr: impl Into<String>,
        options: Options,
    ) -> Result<Connection, Error> {
        let topology = Topology::new([[addr.into()]])?;
        let (tx, shared, ready) = driver::spawn(topology, &options, Mode::Single);
        ready.await.unwrap_or(Err(Error::Closed))?;
        Ok(Connection { tx, shared })
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        self.shared.topology.addr(NodeId(0)).unwrap_or_default()
    }

    /// Runs a command, name first: `conn.cmd(["CONFIG", "GET", "maxmemory"])`.
    /// An error reply comes back as [`Error::Redis`].
    pub async fn cmd<I>(&self, args: I) -> Result<Frame, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.call(to_args(args)).await
    }

    /// As [`cmd`](Connection::cmd), taking the arguments as they are.
    pub async fn cmd_bytes(&self, args: Vec<Bytes>) -> Result<Frame, Error> {
        self.call(args).await
    }

    /// Writes every command at once, then answers each in order.
    pub async fn pipeline(
        &self,
        commands: impl IntoIterator<Item = Vec<Bytes>>,
    ) -> Vec<Result<Frame, Error>> {
        pipeline(&self.tx, commands, |args, reply| Msg::To {
            node: NodeId(0),
            args: args.into(),
            reply,
        })
        .await
    }

    async fn call(&self, args: impl Into<Command>) -> Result<Frame, Error> {
        let args = args.into();
        request(&self.tx, |reply| Msg::To {
            node: NodeId(0),
            args,
            reply,
        })
        .await
    }

    typed_commands!();
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use bytes::BytesMut;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A node that answers each command with its last argument, except on
    /// its first connection, where every answer comes `late`.
    async fn echo_node(late: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let first = count.fetch_add(1, Ordering::SeqCst) == 0;
                let _ = socket.set_nodelay(true);
                tokio::spawn(async move {
                    let mut buf = BytesMut::new();
                    let mut decoder = resp::Decoder::new();
                    loop {
                        while let Ok(Some(Frame::Array(args))) = decoder.decode(&mut buf) {
                            let last = args.last().and_then(Frame::as_bytes).cloned();
                            let mut out = BytesMut::new();
                            Frame::Bulk(last.unwrap_or_default()).encode(&mut out);
                            if first && !late.is_zero() {
                                tokio::time::sleep(late).await;
                            }
                            if socket.write_all(&out).await.is_err() {
                                return;
                            }
                        }
                        match socket.read_buf(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_reply_never_answers_a_later_request() {
        let (addr, accepted) = echo_node(Duration::from_millis(300)).await;
        let options = Options {
            timeout: Duration::from_millis(100),
            ..Options::default()
        };
        let conn = Connection::connect_with(addr, options).await.unwrap();
        let err = conn.cmd(["ECHO", "a"]).await.unwrap_err();
        assert!(matches!(err, Error::Timeout), "{err:?}");
        // The next request goes on a new connection; "a" arrives on the
        // old one, which is closed.
        assert_eq!(conn.cmd(["ECHO", "b"]).await.unwrap(), Frame::bulk("b"));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(conn.cmd(["ECHO", "c"]).await.unwrap(), Frame::bulk("c"));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_connection_in_order() {
        let (addr, accepted) = echo_node(Duration::ZERO).await;
        let conn = Connection::connect(addr).await.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|t| {
                let conn = conn.clone();
                tokio::spawn(async move {
                    for i in 0..200 {
                        let word = format!("{t}-{i}");
                        let got = conn.cmd(["ECHO", &word]).await.unwrap();
                        assert_eq!(got, Frame::bulk(word));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let replies = conn
            .pipeline((0..100).map(|i| vec![Bytes::from("ECHO"), Bytes::from(i.to_string())]))
            .await;
        for (i, r) in replies.into_iter().enumerate() {
            assert_eq!(r.unwrap(), Frame::bulk(i.to_string()));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn nothing_to_connect_to() {
        let err = Connection::connect("127.0.0.1:1").await.unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err:?}");
        assert!(err.to_string().starts_with("127.0.0.1:1: "), "{err}");
        let topology = Topology::new([["127.0.0.1:1"], ["127.0.0.1:2"]]).unwrap();
        assert!(Client::connect(topology, Options::default()).await.is_err());
        let bad = Connection::connect("").await;
        assert!(bad.is_err());
    }
}

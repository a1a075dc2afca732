//! One client connection: read a pipeline of requests, answer the proxy's
//! own commands at once, send the others to the fleet without waiting,
//! then write every answer in order.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, Bytes, BytesMut};
use client::{Answer as Fleet, Command, Error, Frame, Pending, RawPending, Trust};
use resp::{FrameRef, RawFrame, Request, RequestDecoder};
use route::RouteError;
use tokio::net::TcpStream;
use transport::Connection;

use crate::Ctx;
use crate::exec::PubSubExec;
use crate::limit::LimitState;
use crate::pubsub::{self, Change, Introspect, PubSub};
use crate::resp3::Shape;

/// The proxy's counters, for `INFO`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Clients connected now.
    pub connected: AtomicU64,
    /// Connections accepted since start.
    pub connections: AtomicU64,
    /// Connections refused for `maxclients`.
    pub rejected: AtomicU64,
    /// Commands answered.
    pub commands: AtomicU64,
    /// Answers that were errors.
    pub errors: AtomicU64,
    /// Answers written as the node sent them, without encoding them again.
    pub forwarded_raw: AtomicU64,
    /// Subscribers disconnected for passing `client-output-buffer-limit
    /// pubsub`.
    pub output_limit_disconnections: AtomicU64,
}

/// An answer, ready or on its way from the fleet.
enum Slot {
    Ready(Frame),
    Fleet(Pending),
    /// A routed command whose answer may come as the node's own bytes.
    Raw(RawPending),
    /// A subscribe or unsubscribe: made, and its confirmations written,
    /// before the requests after it are read.
    Change(Change),
    /// A question asked of several nodes (`PUBSUB NUMSUB`), in a task.
    Spawned(tokio::task::JoinHandle<Frame>),
    /// `RESET` of a client that subscribed: answered once its
    /// subscriptions are off the nodes.
    Reset(client::Subscription),
    /// `EXEC` of a transaction that subscribes or unsubscribes: made,
    /// like a `Change`, before the requests after it are read.
    Exec(PubSubExec),
}

/// An answer and how it is written: RESP2 as it is, or RESP3 in a shape.
struct Answer {
    slot: Slot,
    resp3: Option<Shape>,
}

/// A client's state.
struct Session {
    id: u64,
    peer: SocketAddr,
    authenticated: bool,
    name: Option<Bytes>,
    /// Commands queued since `MULTI`, and whether one was refused.
    multi: Option<(Vec<Vec<Bytes>>, bool)>,
    /// The shard the queued commands' keys live on.
    multi_shard: Option<route::ShardId>,
    quit: bool,
    /// HELLO 3 was asked for: answers are written in RESP3.
    resp3: bool,
    /// The commands of the last EXEC, for the shapes of its answers.
    executed: Vec<Vec<Bytes>>,
    /// Channels, patterns and shard channels subscribed to.
    pubsub: PubSub,
}

/// Tells a client over the limit so, and closes.
pub(crate) async fn refuse(stream: TcpStream) {
    let mut conn = Connection::new(stream);
    conn.write_buffer()
        .extend_from_slice(b"-ERR max number of clients reached\r\n");
    let _ = conn.flush().await;
}

/// Serves one client until it leaves, breaks the protocol, or the proxy
/// shuts down (after answering what it had read).
pub(crate) async fn serve(stream: TcpStream, peer: SocketAddr, ctx: &Ctx) {
    let mut conn = Connection::new(stream);
    let mut decoder = RequestDecoder::new();
    let mut session = Session {
        id: ctx.next_id.fetch_add(1, Ordering::Relaxed),
        peer,
        authenticated: ctx.config.requirepass.is_none(),
        name: None,
        multi: None,
        multi_shard: None,
        quit: false,
        resp3: false,
        executed: Vec::new(),
        pubsub: PubSub::default(),
    };
    let mut slots: VecDeque<Answer> = VecDeque::new();
    let stop = Stop::register(ctx, session.id);
    let mut writer = Writer {
        spare: BytesMut::new(),
        state: LimitState::default(),
        id: session.id,
        peer,
    };
    tracing::debug!(id = session.id, %peer, "client connected");
    loop {
        decoder.set_authenticated(session.authenticated);
        // Set after a subscribe or unsubscribe: the requests after it are
        // read once it is made, since it changes how they are answered
        // (subscriber mode, the counts in confirmations).
        let mut paused = false;
        loop {
            let request = match decoder.decode(conn.read_buffer()) {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(e) => {
                    let out = conn.write_buffer();
                    out.extend_from_slice(b"-");
                    out.extend_from_slice(&e.to_redis_error());
                    out.extend_from_slice(b"\r\n");
                    let _ = conn.flush().await;
                    return;
                }
            };
            if request.is_empty() {
                continue;
            }
            let slot = session.handle(ctx, &request);
            paused = matches!(slot, Slot::Change(_) | Slot::Exec(_));
            // Shaped after the command ran: HELLO 3 is answered in RESP3.
            let resp3 = session.resp3.then(|| session.shape(&request));
            slots.push_back(Answer { slot, resp3 });
            decoder.set_authenticated(session.authenticated);
            if session.quit || paused {
                break;
            }
        }
        for Answer { slot, resp3 } in slots.drain(..) {
            ctx.stats.commands.fetch_add(1, Ordering::Relaxed);
            let frame = match slot {
                Slot::Ready(frame) => frame,
                Slot::Change(change) => {
                    let resp3 = session.resp3;
                    let out = conn.write_buffer();
                    if session.pubsub.apply(&ctx.client, change, resp3, out).await {
                        ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                Slot::Exec(exec) => {
                    let resp3 = session.resp3;
                    let out = conn.write_buffer();
                    let errors = exec.run(&ctx.client, &mut session.pubsub, resp3, out).await;
                    ctx.stats.errors.fetch_add(errors, Ordering::Relaxed);
                    continue;
                }
                Slot::Reset(sub) => {
                    pubsub::close(sub).await;
                    Frame::simple("RESET")
                }
                Slot::Spawned(task) => {
                    let io = (&mut session.pubsub, &mut conn, &mut writer);
                    let Ok(joined) = settle(ctx, task, io, session.resp3).await else {
                        return;
                    };
                    joined.unwrap_or_else(|e| Frame::error(format!("ERR {e}")))
                }
                Slot::Fleet(pending) => {
                    let io = (&mut session.pubsub, &mut conn, &mut writer);
                    let Ok(settled) = settle(ctx, pending, io, session.resp3).await else {
                        return;
                    };
                    answer(settled)
                }
                Slot::Raw(pending) => {
                    let io = (&mut session.pubsub, &mut conn, &mut writer);
                    let Ok(settled) = settle(ctx, pending, io, session.resp3).await else {
                        return;
                    };
                    match settled {
                        // The node's reply as it came, when the client reads
                        // it as it is: no decoding into frames, no encoding.
                        Ok(Fleet::Raw(raw)) if forwardable(&raw, resp3.as_ref()) => {
                            conn.write_buffer().extend_from_slice(raw.as_bytes());
                            ctx.stats.forwarded_raw.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Ok(fleet) => fleet.into_frame(),
                        Err(e) => answer(Err(e)),
                    }
                }
            };
            if frame.is_error() {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            match resp3 {
                Some(shape) => crate::resp3::write(conn.write_buffer(), &frame, &shape),
                None => frame.encode(conn.write_buffer()),
            }
        }
        let flushed = writer
            .flush(ctx, &stop, &mut conn, &mut session.pubsub, session.resp3)
            .await;
        if flushed.is_err() || session.quit {
            return;
        }
        if paused {
            continue;
        }
        // Requests that already arrived are answered even when the proxy
        // is stopping: reading comes first.
        tokio::select! {
            biased;
            read = conn.fill_socket() => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            () = std::future::poll_fn(|cx| stop.poll(ctx, cx)) => {
                tracing::debug!(id = session.id, "stopping: client closed");
                return;
            }
            message = session.pubsub.recv() => {
                // What else has come goes out in the same write.
                write_messages(&mut session.pubsub, message, session.resp3, conn.write_buffer());
                if writer.over_limit(ctx, &mut conn, &session.pubsub) {
                    return;
                }
            }
        }
    }
}

/// Writes `first` and the messages already waiting behind it (a batch),
/// up to [`BATCH_BYTES`] of output: the limit is checked after each
/// batch, so a client is never more than one batch past it.
fn write_messages(pubsub: &mut PubSub, first: client::Message, resp3: bool, out: &mut BytesMut) {
    pubsub.write(&first, resp3, out);
    for _ in 0..MESSAGE_BATCH {
        if out.len() >= BATCH_BYTES {
            break;
        }
        let Some(message) = pubsub.try_recv() else {
            break;
        };
        pubsub.write(&message, resp3, out);
    }
}

/// Why a session's output could not be written.
#[derive(Debug)]
enum End {
    /// The client's socket failed, or the proxy is stopping.
    Gone,
    /// The client passed `client-output-buffer-limit pubsub` and was cut.
    Cut,
}

/// Writes a session's output to its client without ever waiting on a
/// client that does not read: meanwhile its messages keep being taken
/// from the fleet (so its nodes never see it lag), and it is held to the
/// proxy's `client-output-buffer-limit pubsub`, as Redis holds its own
/// subscribers, counting the bytes not yet taken by the socket.
struct Writer {
    /// The other half of the output buffer, swapped in while writing.
    spare: BytesMut,
    state: LimitState,
    id: u64,
    peer: SocketAddr,
}

/// Output buffers above this capacity are given back once written, so one
/// large reply does not pin memory for the life of the connection.
const KEEP_CAPACITY: usize = 64 * 1024;

impl Writer {
    /// Writes what the socket takes now, without waiting. Fails if the
    /// socket does.
    fn write_now(&mut self, conn: &mut Connection<TcpStream>) -> std::io::Result<()> {
        if conn.write_buffer().is_empty() {
            return Ok(());
        }
        // The bytes are written from `spare` while the connection's buffer
        // is the (empty) other half: the socket and the bytes are then two
        // borrows. The proxy never queues shared pieces, so the buffer is
        // all there is.
        std::mem::swap::<BytesMut>(conn.write_buffer(), &mut self.spare);
        let mut result = Ok(());
        while !self.spare.is_empty() {
            match conn.stream().try_write(&self.spare) {
                Ok(0) => {
                    result = Err(std::io::ErrorKind::WriteZero.into());
                    break;
                }
                Ok(n) => self.spare.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        std::mem::swap::<BytesMut>(conn.write_buffer(), &mut self.spare);
        let out: &mut BytesMut = conn.write_buffer();
        if out.is_empty() && out.capacity() > KEEP_CAPACITY {
            *out = BytesMut::new();
        }
        result
    }

    /// Whether a subscribed client's unsent output is past the limit; if
    /// so, says so in the log and counts it: the caller closes it.
    fn over_limit(&mut self, ctx: &Ctx, conn: &mut Connection<TcpStream>, pubsub: &PubSub) -> bool {
        let used = conn.write_buffer().len();
        // As Redis: the pubsub class is a client's while it is subscribed.
        if used == 0 || !pubsub.active() {
            self.state = LimitState::default();
            return false;
        }
        let limit = &ctx.config.pubsub_output_limit;
        if !self.state.exceeded(limit, used, std::time::Instant::now()) {
            return false;
        }
        tracing::warn!(
            id = self.id,
            peer = %self.peer,
            "closing a subscriber that does not read: {used} bytes waiting for it, past \
             client-output-buffer-limit pubsub {} {} {}",
            limit.hard,
            limit.soft,
            limit.soft_seconds
        );
        ctx.stats
            .output_limit_disconnections
            .fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Writes the whole output. While the client does not take it, its
    /// messages are added behind it and the limit is checked; the wait
    /// ends when it is all written, the client is cut or gone, or the
    /// proxy stops.
    async fn flush(
        &mut self,
        ctx: &Ctx,
        stop: &Stop<'_>,
        conn: &mut Connection<TcpStream>,
        pubsub: &mut PubSub,
        resp3: bool,
    ) -> Result<(), End> {
        loop {
            self.write_now(conn).map_err(|_| End::Gone)?;
            if conn.write_buffer().is_empty() {
                return Ok(());
            }
            if self.over_limit(ctx, conn, pubsub) {
                return Err(End::Cut);
            }
            tokio::select! {
                biased;
                ready = conn.stream().writable() => ready.map_err(|_| End::Gone)?,
                () = std::future::poll_fn(|cx| stop.poll(ctx, cx)) => return Err(End::Gone),
                message = pubsub.recv() => {
                    write_messages(pubsub, message, resp3, conn.write_buffer());
                }
            }
        }
    }
}

/// Messages written to a subscriber at most per write.
const MESSAGE_BATCH: usize = 1024;

/// Output past which a batch of messages takes no more: enough for one
/// write to pay for itself.
const BATCH_BYTES: usize = 64 * 1024;

/// Awaits an answer; meanwhile, to a client that has subscribed, writes
/// the messages that come, as redis-server pushes them between replies (a
/// RESP3 client's BLPOP does not hold its messages back), as far as the
/// client takes them: fails if that leaves it past its output limit.
async fn settle<F: Future>(
    ctx: &Ctx,
    answer: F,
    (pubsub, conn, writer): (&mut PubSub, &mut Connection<TcpStream>, &mut Writer),
    resp3: bool,
) -> Result<F::Output, End> {
    let mut answer = std::pin::pin!(answer);
    if !pubsub.listening() {
        return Ok(answer.await);
    }
    loop {
        tokio::select! {
            biased;
            out = &mut answer => return Ok(out),
            message = pubsub.recv() => {
                write_messages(pubsub, message, resp3, conn.write_buffer());
                if writer.write_now(conn).is_err() {
                    // The client is gone: its answer no longer matters.
                    return Ok(answer.await);
                }
                if writer.over_limit(ctx, conn, pubsub) {
                    return Err(End::Cut);
                }
            }
        }
    }
}

/// A session's idle wait for the proxy to stop: one atomic waker, woken by
/// `run` after it sets `Ctx::stopping`; unregistered when the session ends.
struct Stop<'c> {
    ctx: &'c Ctx,
    id: u64,
    waker: std::sync::Arc<atomic_waker::AtomicWaker>,
}

impl<'c> Stop<'c> {
    fn register(ctx: &'c Ctx, id: u64) -> Stop<'c> {
        let waker = std::sync::Arc::new(atomic_waker::AtomicWaker::new());
        if let Ok(mut sessions) = ctx.sessions.lock() {
            sessions.insert(id, waker.clone());
        }
        Stop { ctx, id, waker }
    }

    fn poll(&self, ctx: &Ctx, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        // Registered before the flag is read: a stop after the read wakes it.
        self.waker.register(cx.waker());
        if ctx.stopping.load(Ordering::SeqCst) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }
}

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        if let Ok(mut sessions) = self.ctx.sessions.lock() {
            sessions.remove(&self.id);
        }
    }
}

/// Whether a node's reply can be written to the client as it came: always
/// to a RESP2 client (the nodes speak RESP2); to a RESP3 client when its
/// answer keeps RESP2's shape and holds no null (RESP3 writes `_`).
fn forwardable(raw: &RawFrame, resp3: Option<&Shape>) -> bool {
    fn has_null(frame: FrameRef<'_>) -> bool {
        match frame {
            FrameRef::NullBulk | FrameRef::NullArray | FrameRef::Null => true,
            FrameRef::Array(items) => items.iter().any(has_null),
            _ => false,
        }
    }
    match resp3 {
        None => true,
        Some(Shape::Plain) => !has_null(raw.view()),
        Some(_) => false,
    }
}

/// What a client sees of the fleet's answer.
pub(crate) fn answer(result: Result<Frame, Error>) -> Frame {
    match result {
        Ok(frame) => frame,
        Err(Error::Redis(text)) => Frame::error(text),
        Err(Error::Route(e @ RouteError::CrossShard { .. })) => {
            Frame::error(format!("CROSSSLOT {e}"))
        }
        Err(e) => Frame::error(format!("ERR {e}")),
    }
}

fn lower(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_lowercase()
}

fn wrong_arity(name: &str) -> Frame {
    Frame::error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

impl Session {
    /// The RESP3 shape of the answer to `request`: the fleet's commands as
    /// Redis shapes them, the proxy's own as Redis shapes its.
    fn shape(&self, request: &Request) -> Shape {
        let args: Vec<&[u8]> = request.iter().collect();
        let name = lower(args.first().copied().unwrap_or_default());
        match name.as_str() {
            "hello" => Shape::Map,
            "info" => Shape::Verbatim,
            "client" if args.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"info")) => {
                Shape::Verbatim
            }
            // The answer to EXEC is the queued commands' answers.
            "exec" => Shape::Exec(self.executed.iter().map(|a| Shape::of(a)).collect()),
            _ if self.multi.is_some() => Shape::Plain,
            _ => Shape::of(&args),
        }
    }

    /// Answers the proxy's own commands, and sends the others to the fleet.
    fn handle(&mut self, ctx: &Ctx, request: &Request) -> Slot {
        // The name, lowercased on the stack: every request is matched
        // against the proxy's own commands, and none is longer than this.
        let raw = request.get(0).unwrap_or_default();
        let mut folded = [0u8; 16];
        let name = match folded.get_mut(..raw.len()) {
            Some(buf) => {
                buf.copy_from_slice(raw);
                buf.make_ascii_lowercase();
                std::str::from_utf8(buf).unwrap_or_default()
            }
            None => "",
        };
        let argc = request.len();
        if !self.authenticated && !matches!(name, "auth" | "hello" | "quit" | "reset") {
            return Slot::Ready(Frame::error("NOAUTH Authentication required."));
        }
        // RESP2's subscriber mode, as redis-server's: a command it knows
        // with the right arity, other than these, is refused (unknown
        // commands and wrong arities get their usual errors).
        if self.pubsub.active()
            && !self.resp3
            && !matches!(
                name,
                "ping"
                    | "subscribe"
                    | "psubscribe"
                    | "ssubscribe"
                    | "unsubscribe"
                    | "punsubscribe"
                    | "sunsubscribe"
                    | "quit"
                    | "reset"
            )
        {
            let args: Vec<&[u8]> = request.iter().collect();
            if let Ok(info) = route::resolve(&args) {
                return Slot::Ready(pubsub::not_in_subscriber_mode(&fullname(
                    info.name(),
                    &args,
                )));
            }
        }
        if let Some((queued, refused)) = &mut self.multi
            && !matches!(
                name,
                "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
            )
        {
            let args: Vec<Bytes> = (0..argc).filter_map(|i| request.arg_bytes(i)).collect();
            let name = lower(raw);
            let topology = ctx.client.topology();
            return Slot::Ready(match route::resolve(&args) {
                // Queued as Redis queues them; EXEC makes them on the
                // client's own subscription (see `exec`), not on the
                // transaction's node connection.
                Ok(info) if info.arity_ok(argc) && crate::exec::is_pubsub(&args) => {
                    queued.push(args);
                    Frame::simple("QUEUED")
                }
                Ok(info) if info.arity_ok(argc) => {
                    // As Redis Cluster: a key on another shard than the
                    // transaction's is refused as it is queued.
                    let shards = info.key_positions(&args).unwrap_or_default().into_iter();
                    let mut clash = None;
                    for shard in shards
                        .filter_map(|i| args.get(i))
                        .map(|k| topology.shard_for(k))
                    {
                        match self.multi_shard {
                            Some(first) if first != shard => clash = Some((first, shard)),
                            _ => self.multi_shard = Some(shard),
                        }
                    }
                    if let Some((a, b)) = clash {
                        *refused = true;
                        Frame::error(format!(
                            "CROSSSLOT keys of the transaction live on different shards ({a} and {b}); hash tags can keep them together"
                        ))
                    } else {
                        queued.push(args);
                        Frame::simple("QUEUED")
                    }
                }
                Ok(_) => {
                    *refused = true;
                    wrong_arity(&name)
                }
                Err(e) => {
                    *refused = true;
                    Frame::error(format!("ERR {e}"))
                }
            });
        }
        let ready = match name {
            "ping" if self.pubsub.active() && !self.resp3 => match argc {
                1 | 2 => pubsub::subscriber_pong(request.arg_bytes(1)),
                _ => wrong_arity("ping"),
            },
            "ping" => match argc {
                1 => Frame::simple("PONG"),
                2 => Frame::Bulk(request.arg_bytes(1).unwrap_or_default()),
                _ => wrong_arity("ping"),
            },
            "echo" if argc == 2 => Frame::Bulk(request.arg_bytes(1).unwrap_or_default()),
            "echo" => wrong_arity("echo"),
            "quit" => {
                self.quit = true;
                Frame::simple("OK")
            }
            "auth" => self.auth(ctx, request),
            "hello" => self.hello(ctx, request),
            "select" => match request.get(1) {
                Some(b"0") if argc == 2 => Frame::simple("OK"),
                Some(_) if argc == 2 => Frame::error("ERR ember-proxy serves database 0 only"),
                _ => wrong_arity("select"),
            },
            "command" => command(request),
            "config" => Frame::Array(Vec::new()),
            "client" => self.client_command(request),
            "info" => Frame::bulk(info(ctx, request.get(1))),
            "multi" if self.multi.is_some() => Frame::error("ERR MULTI calls can not be nested"),
            "multi" => {
                self.multi = Some((Vec::new(), false));
                self.multi_shard = None;
                Frame::simple("OK")
            }
            "exec" => match self.multi.take() {
                None => Frame::error("ERR EXEC without MULTI"),
                Some((_, true)) => {
                    Frame::error("EXECABORT Transaction discarded because of previous errors.")
                }
                Some((queued, false)) if queued.is_empty() => Frame::Array(Vec::new()),
                Some((queued, false)) if queued.iter().any(|c| crate::exec::is_pubsub(c)) => {
                    return Slot::Exec(PubSubExec::start(&ctx.client, queued, self.resp3));
                }
                Some((queued, false)) => {
                    if self.resp3 {
                        self.executed.clone_from(&queued);
                    }
                    return Slot::Fleet(ctx.client.start_transaction(queued));
                }
            },
            "discard" => match self.multi.take() {
                None => Frame::error("ERR DISCARD without MULTI"),
                Some(_) => Frame::simple("OK"),
            },
            "watch" | "unwatch" if self.multi.is_some() && name == "watch" => {
                Frame::error("ERR WATCH inside MULTI is not allowed")
            }
            "watch" => Frame::error(
                "ERR ember-proxy does not support WATCH: it needs one connection to one node",
            ),
            "unwatch" => Frame::simple("OK"),
            "subscribe" | "psubscribe" | "ssubscribe" | "unsubscribe" | "punsubscribe"
            | "sunsubscribe" => {
                let args: Vec<Bytes> = (0..argc).filter_map(|i| request.arg_bytes(i)).collect();
                match Change::parse(name, args) {
                    Some(change) if !change.lacks_names() => return Slot::Change(change),
                    _ => wrong_arity(name),
                }
            }
            "pubsub" => {
                let args: Vec<Bytes> = (0..argc).filter_map(|i| request.arg_bytes(i)).collect();
                let question = Introspect::parse(args);
                return Slot::Spawned(tokio::spawn(question.run(ctx.client.clone())));
            }
            "reset" if argc == 1 => {
                self.multi = None;
                self.multi_shard = None;
                self.resp3 = false;
                self.name = None;
                self.executed.clear();
                self.authenticated = ctx.config.requirepass.is_none();
                match self.pubsub.take() {
                    Some(sub) => return Slot::Reset(sub),
                    None => Frame::simple("RESET"),
                }
            }
            "reset" => wrong_arity("reset"),
            _ => {
                // One allocation: the arguments straight into the shared
                // command the router and its transmits hold.
                let command: Command = (0..argc).filter_map(|i| request.arg_bytes(i)).collect();
                return Slot::Raw(ctx.client.start_raw(command));
            }
        };
        Slot::Ready(ready)
    }

    fn auth(&mut self, ctx: &Ctx, request: &Request) -> Frame {
        let password = match request.len() {
            2 => request.get(1),
            3 => request.get(2),
            0 | 1 => return wrong_arity("auth"),
            _ => return Frame::error("ERR syntax error"),
        };
        match &ctx.config.requirepass {
            None => Frame::error(
                "ERR AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            ),
            Some(want) if password == Some(want.as_bytes()) => {
                self.authenticated = true;
                Frame::simple("OK")
            }
            Some(_) => {
                Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
            }
        }
    }

    /// `HELLO [2 [AUTH user pass] [SETNAME name]]`: RESP2 only.
    fn hello(&mut self, ctx: &Ctx, request: &Request) -> Frame {
        let mut i = 1;
        let mut resp3 = self.resp3;
        if let Some(proto) = request.get(1) {
            match std::str::from_utf8(proto)
                .ok()
                .and_then(|p| p.parse::<i64>().ok())
            {
                Some(2) => resp3 = false,
                Some(3) => resp3 = true,
                Some(_) => {
                    return Frame::error("NOPROTO sorry, this protocol version is not supported");
                }
                None => {
                    return Frame::error("ERR Protocol version is not an integer or out of range");
                }
            }
            i = 2;
        }
        while i < request.len() {
            match lower(request.get(i).unwrap_or_default()).as_str() {
                "auth" if i + 2 < request.len() => {
                    let want = ctx.config.requirepass.as_deref().map(str::as_bytes);
                    if want.is_some_and(|w| request.get(i + 2) != Some(w)) {
                        return Frame::error(
                            "WRONGPASS invalid username-password pair or user is disabled.",
                        );
                    }
                    self.authenticated = true;
                    i += 3;
                }
                "setname" if i + 1 < request.len() => {
                    self.name = request.arg_bytes(i + 1);
                    i += 2;
                }
                _ => return Frame::error("ERR Syntax error in HELLO option"),
            }
        }
        if !self.authenticated {
            return Frame::error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
                 HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
                 select the RESP protocol version at the same time",
            );
        }
        self.resp3 = resp3;
        Frame::Array(vec![
            Frame::bulk("server"),
            Frame::bulk("ember-proxy"),
            Frame::bulk("version"),
            Frame::bulk(env!("CARGO_PKG_VERSION")),
            Frame::bulk("proto"),
            Frame::Integer(if resp3 { 3 } else { 2 }),
            Frame::bulk("id"),
            Frame::Integer(self.id as i64),
            Frame::bulk("mode"),
            Frame::bulk("proxy"),
            Frame::bulk("role"),
            Frame::bulk("master"),
            Frame::bulk("modules"),
            Frame::Array(Vec::new()),
        ])
    }

    fn client_command(&mut self, request: &Request) -> Frame {
        let sub = lower(request.get(1).unwrap_or_default());
        match (sub.as_str(), request.len()) {
            ("id", 2) => Frame::Integer(self.id as i64),
            ("getname", 2) => self.name.clone().map_or(Frame::NullBulk, Frame::Bulk),
            ("setname", 3) => {
                let name = request.arg_bytes(2).unwrap_or_default();
                if name.iter().any(|&b| b <= b' ' || b > b'~') {
                    return Frame::error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                self.name = (!name.is_empty()).then_some(name);
                Frame::simple("OK")
            }
            ("info", 2) => Frame::bulk(format!(
                "id={} addr={} name={}\n",
                self.id,
                self.peer,
                String::from_utf8_lossy(self.name.as_deref().unwrap_or_default())
            )),
            ("setinfo", 4) | ("no-evict", 3) | ("no-touch", 3) => Frame::simple("OK"),
            _ => Frame::error(format!(
                "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try CLIENT HELP."
            )),
        }
    }
}

/// A command's name as Redis reports it in errors: `container|sub` for
/// the subcommands of Redis's container commands.
fn fullname(name: &str, args: &[&[u8]]) -> String {
    const CONTAINERS: [&str; 16] = [
        "acl", "client", "cluster", "command", "config", "function", "latency", "memory", "module",
        "object", "pubsub", "script", "sentinel", "slowlog", "xgroup", "xinfo",
    ];
    match args.get(1) {
        Some(sub) if !name.contains('|') && CONTAINERS.contains(&name) => {
            format!("{name}|{}", lower(sub))
        }
        _ => name.to_owned(),
    }
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS`: what clients ask on
/// connecting. The proxy lists no command details.
fn command(request: &Request) -> Frame {
    match request.get(1).map(lower).as_deref() {
        Some("count") => Frame::Integer(route::commands().count() as i64),
        None | Some("docs") | Some("info") => Frame::Array(Vec::new()),
        Some(other) => Frame::error(format!(
            "ERR unknown subcommand '{other}'. Try COMMAND HELP."
        )),
    }
}

/// `INFO [section]`: the proxy's own sections, and its view of every node.
fn info(ctx: &Ctx, section: Option<&[u8]>) -> String {
    let want = section.map(lower).unwrap_or_else(|| "default".to_owned());
    let all = matches!(want.as_str(), "default" | "all" | "everything");
    let stats = &ctx.stats;
    let mut out = String::new();
    if all || want == "server" {
        let _ = write!(
            out,
            "# Server\r\nember_proxy_version:{}\r\nprocess_id:{}\r\nuptime_in_seconds:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            ctx.started.elapsed().as_secs()
        );
    }
    if all || want == "clients" {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n",
            stats.connected.load(Ordering::Relaxed),
            ctx.config.maxclients
        );
    }
    if all || want == "stats" {
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\n\
             total_commands_processed:{}\r\ntotal_error_replies:{}\r\n\
             replies_forwarded_raw:{}\r\nclient_output_buffer_limit_disconnections:{}\r\n\r\n",
            stats.connections.load(Ordering::Relaxed),
            stats.rejected.load(Ordering::Relaxed),
            stats.commands.load(Ordering::Relaxed),
            stats.errors.load(Ordering::Relaxed),
            stats.forwarded_raw.load(Ordering::Relaxed),
            stats.output_limit_disconnections.load(Ordering::Relaxed)
        );
    }
    if all || want == "fleet" {
        let topology = ctx.client.topology();
        let _ = write!(
            out,
            "# Fleet\r\ngroups:{}\r\nshards:{}\r\n",
            topology.groups(),
            topology.shards()
        );
        for (node, addr) in topology.nodes() {
            let Some((group, shard)) = topology.position(node) else {
                continue;
            };
            let trust = match ctx.client.trust(node) {
                Some(Trust::Verified) => "verified".to_owned(),
                Some(Trust::Unverified(why)) => format!("unverified ({why})"),
                Some(Trust::Repairing) => "repairing".to_owned(),
                _ => "unknown".to_owned(),
            };
            let _ = write!(
                out,
                "node{}:addr={addr},group={},shard={},up={},trust={trust}\r\n",
                node.0,
                group.0,
                shard.0,
                u8::from(ctx.client.is_up(node)),
            );
        }
        out.push_str("\r\n");
    }
    out
}

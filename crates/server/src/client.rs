//! One client connection: its state and its read–execute–write loop.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use resp::{Protocol, RequestDecoder};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use transport::{Connection, ConnectionLimits};

use crate::cmd::{self, After, Multi};
use crate::db::{Shards, WatchFlag};
use crate::server::{Clock, LocalStats, Shared};
use crate::turn::others_ready;

/// What other connections may see of a client (CLIENT LIST, CLIENT KILL).
#[derive(Debug)]
pub(crate) struct ClientInfo {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) laddr: SocketAddr,
    pub(crate) created: Instant,
    pub(crate) meta: Mutex<Meta>,
    /// Pulled by CLIENT KILL.
    pub(crate) kill: crate::kill::Kill,
    /// What the client is blocked on, for CLIENT UNBLOCK.
    pub(crate) blocked_on: Mutex<Option<Arc<crate::blocking::Waiter>>>,
    /// Set when a key the client watches changes (CLIENT LIST's `d`).
    pub(crate) watch: Arc<WatchFlag>,
    /// What kind of client it is: [`NORMAL`], [`REPLICA`] or [`MASTER`].
    pub(crate) kind: std::sync::atomic::AtomicU8,
    /// A CLIENT PAUSE holds its command back (CLIENT LIST's `b`).
    pub(crate) postponed: std::sync::atomic::AtomicBool,
    /// Its subscriptions and the messages published to it.
    pub(crate) pubsub: Arc<crate::pubsub::Subscriber>,
    /// Its buffers' sizes, as of its last batch (CLIENT LIST, INFO).
    pub(crate) mem: crate::outbuf::Usage,
}

/// A client's kind (CLIENT LIST's flags, CLIENT KILL TYPE): an ordinary
/// client.
pub(crate) const NORMAL: u8 = 0;
/// A replica's link to this server (flag `S`).
pub(crate) const REPLICA: u8 = 1;
/// This replica's link to its master (flag `M`).
pub(crate) const MASTER: u8 = 2;
/// A client in MONITOR mode (flag `O`; shown as of type normal, as Redis
/// shows it).
pub(crate) const MONITOR: u8 = 3;

/// Whether a client of `kind` is an ordinary one, as Redis's type
/// `normal` (or `pubsub`): not a replica's link nor a master's.
pub(crate) fn ordinary(kind: u8) -> bool {
    kind == NORMAL || kind == MONITOR
}

/// The changing part of [`ClientInfo`], updated after each batch of
/// commands.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) name: Bytes,
    pub(crate) db: usize,
    pub(crate) last_command: String,
    pub(crate) last_active: Instant,
    pub(crate) proto: Protocol,
    /// Commands queued since MULTI, or -1 outside MULTI.
    pub(crate) multi: i64,
    /// An estimate of the memory the queued commands take.
    pub(crate) multi_mem: usize,
}

impl ClientInfo {
    pub(crate) fn meta(&self) -> std::sync::MutexGuard<'_, Meta> {
        self.meta
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A client waiting in a blocking command.
#[derive(Debug)]
pub(crate) struct Blocked {
    pub(crate) waiter: Arc<crate::blocking::Waiter>,
    pub(crate) rx: tokio::sync::oneshot::Receiver<crate::blocking::Outcome>,
    /// Unix ms, or `None` to wait forever.
    pub(crate) deadline: Option<i64>,
}

/// A connection's own state, which its commands read and change.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) info: Arc<ClientInfo>,
    pub(crate) db: usize,
    pub(crate) proto: Protocol,
    pub(crate) authenticated: bool,
    pub(crate) name: Bytes,
    pub(crate) last_command: &'static str,
    /// The subcommand of the running command, for CLIENT LIST's `cmd=`
    /// (`|list`), empty when it has none.
    pub(crate) last_sub: String,
    /// The transaction being queued, between MULTI and EXEC.
    pub(crate) multi: Option<Multi>,
    /// EXEC is running the queue: blocking commands do not block.
    pub(crate) in_exec: bool,
    /// The keys WATCH registered, by database.
    pub(crate) watching: HashSet<(usize, Bytes)>,
    /// Memory was over `maxmemory` when the batch began.
    pub(crate) oom: bool,
    /// Dates and times the commands of the current batch.
    pub(crate) clock: Clock,
    /// Counters of the current batch, not yet in the shared ones.
    pub(crate) stats: LocalStats,
    /// This is a replica's link to its master: its commands come from the
    /// replication stream and are never refused as writes.
    pub(crate) is_master: bool,
    /// The port a replica said it listens on (REPLCONF listening-port).
    pub(crate) repl_port: u16,
    /// The replica reads an RDB of unknown length (REPLCONF capa eof).
    pub(crate) repl_capa_eof: bool,
    /// The stream offset after this client's last write: what WAIT waits
    /// for.
    pub(crate) woff: i64,
    /// The AOF's length after this client's last write: its replies leave
    /// only once the file holds that much (`Aof::settle`).
    pub(crate) aof_off: u64,
    /// CLIENT REPLY's switch.
    pub(crate) replies: cmd::Replies,
    /// CLIENT TRACKING's options while tracking is on.
    pub(crate) tracking: Option<crate::tracking::Mode>,
    /// The read buffer as the running command began: bytes left after its
    /// request, and free room (CLIENT LIST's `qbuf` of itself).
    pub(crate) qbuf: (usize, usize),
    /// Its connection's loop sends the BCAST invalidations its commands
    /// cause once per batch, not after each (see `cmd::execute_command`).
    pub(crate) bcast_batched: bool,
    /// The most subscribers one of this batch's commands published to
    /// (PUBLISH, SPUBLISH): the reply waits for the subscribers' writes.
    pub(crate) published_to: usize,
    /// The end of its worker's turn, which a subscriber waits for before it
    /// writes what was published to it (none off the workers).
    pub(crate) turn: Option<Arc<crate::turn::Turn>>,
    /// The command name [`ClientInfo::meta`] shows, as last published
    /// without a subcommand (the empty string otherwise, which no
    /// command's name is).
    published: &'static str,
}

/// A replica's request for the stream.
#[derive(Debug, Clone)]
pub(crate) struct Psync {
    /// The history it has (`?` for none).
    pub(crate) replid: String,
    /// The first byte it lacks, or -1.
    pub(crate) offset: i64,
    /// SYNC, not PSYNC: no `+FULLRESYNC` line before the RDB.
    pub(crate) old: bool,
}

/// WAIT, waiting for acknowledgements.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitAcks {
    /// The stream offset replicas must reach.
    pub(crate) target: i64,
    pub(crate) numreplicas: usize,
    /// Unix ms, or `None` to wait forever.
    pub(crate) deadline: Option<i64>,
}

impl ClientInfo {
    /// A new client's public part, listed in the client registry.
    pub(crate) fn register(
        shared: &Shared,
        addr: SocketAddr,
        laddr: SocketAddr,
    ) -> Arc<ClientInfo> {
        let id = shared.next_client_id();
        let kill = crate::kill::Kill::new();
        let info = Arc::new(ClientInfo {
            id,
            addr,
            laddr,
            created: Instant::now(),
            meta: Mutex::new(Meta {
                name: Bytes::new(),
                db: 0,
                last_command: "NULL".to_string(),
                last_active: Instant::now(),
                proto: Protocol::Resp2,
                multi: -1,
                multi_mem: 0,
            }),
            pubsub: crate::pubsub::Subscriber::new(id, kill.clone()),
            kill,
            blocked_on: Mutex::new(None),
            watch: Arc::new(WatchFlag::default()),
            kind: std::sync::atomic::AtomicU8::new(NORMAL),
            postponed: std::sync::atomic::AtomicBool::new(false),
            mem: crate::outbuf::Usage::default(),
        });
        if let Ok(mut clients) = shared.clients.lock() {
            clients.insert(info.id, info.clone());
        }
        info
    }
}

impl Client {
    pub(crate) fn new(info: Arc<ClientInfo>, authenticated: bool) -> Client {
        Client {
            info,
            db: 0,
            proto: Protocol::Resp2,
            authenticated,
            name: Bytes::new(),
            last_command: "NULL",
            last_sub: String::new(),
            multi: None,
            in_exec: false,
            watching: HashSet::new(),
            oom: false,
            clock: Clock::new(),
            stats: LocalStats::default(),
            is_master: false,
            repl_port: 0,
            repl_capa_eof: false,
            woff: 0,
            aof_off: 0,
            replies: cmd::Replies::default(),
            tracking: None,
            qbuf: (0, 0),
            published_to: 0,
            turn: None,
            bcast_batched: false,
            published: "",
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.info.id
    }
}

/// Serves one connection until the peer leaves, a protocol error, a kill,
/// or shutdown. `permit` is the client's slot under `maxclients`; without
/// one, the client is told the server is full, as Redis does.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
    turn: Option<Arc<crate::turn::Turn>>,
) {
    let _ = stream.set_nodelay(true);
    let laddr = stream.local_addr().unwrap_or(peer);
    let mut conn = Connection::with_limits(stream, ConnectionLimits::default());
    let Some(_permit) = permit else {
        conn.write_buffer()
            .extend_from_slice(b"-ERR max number of clients reached\r\n");
        let _ = conn.flush().await;
        return;
    };
    let info = ClientInfo::register(&shared, peer, laddr);
    let requirepass = !shared.config_get("requirepass").is_empty();
    let mut client = Client::new(info.clone(), !requirepass);
    client.bcast_batched = true;
    client.turn = turn;
    let ended = run(&shared, &mut conn, &mut client).await;
    // What its last batch changed, should it have ended mid-batch.
    shared.tracking.command_done(&shared, Some(info.id));
    let reason = match ended {
        Ended::Closed(reason) => reason,
        Ended::Replica(psync) => {
            client.bcast_batched = false;
            info.kind.store(REPLICA, Ordering::Relaxed);
            // The replication buffer counts it from now on.
            info.mem.release(&shared.client_memory);
            crate::repl::master::serve(&shared, &mut conn, &mut client, psync).await
        }
    };
    tracing::debug!(id = info.id, %peer, "client closed: {reason}");
    info.mem.release(&shared.client_memory);
    info.pubsub.release();
    shared.monitors.remove(info.id);
    cmd::unwatch_all(&mut Shards::new(&shared.keyspace), &mut client);
    shared.pubsub.leave(&info.pubsub);
    shared.tracking.disable(&shared, info.id);
    if let Ok(mut clients) = shared.clients.lock() {
        clients.remove(&info.id);
    }
}

/// How a blocking wait ended.
pub(crate) enum Wait {
    /// The reply (an element or the timeout's null) is in the output.
    Done,
    /// Run the command again.
    Retry,
    /// The connection is over.
    Gone(String),
}

/// Waits for a blocked command to be served, to time out, or for the
/// client to go away. Output already produced is sent first, as Redis
/// sends replies to earlier pipelined commands before blocking.
async fn wait(
    shared: &Shared,
    conn: &mut Connection<TcpStream>,
    client: &mut Client,
    blocked: Blocked,
) -> Wait {
    shared.repl.aof.settle(client.aof_off).await;
    let _ = conn.flush().await;
    let gone = async {
        loop {
            match conn.fill_socket().await {
                Ok(0) | Err(_) => return "closed while blocked".to_string(),
                // Later commands wait in the buffer until this one ends.
                Ok(_) => {}
            }
        }
    };
    let outcome = match wait_blocked(shared, client, blocked, gone).await {
        Ok(outcome) => outcome,
        Err(reason) => return Wait::Gone(reason),
    };
    // Served by another client's write: the pop is in the AOF's stream
    // already, and the reply waits for the file like that write's.
    client.aof_off = client.aof_off.max(shared.repl.aof.appended());
    write_outcome(conn.write_buffer(), client.proto, outcome)
}

/// The waiting itself, whoever the client is (a connection, a gRPC call):
/// the outcome of a blocked command, or why the client went away
/// (`gone` completing, CLIENT KILL, shutdown). Should the caller stop
/// waiting (a gRPC call cancelled drops this future), the wait is
/// withdrawn all the same.
pub(crate) async fn wait_blocked(
    shared: &Shared,
    client: &Client,
    blocked: Blocked,
    gone: impl Future<Output = String>,
) -> Result<Option<crate::blocking::Outcome>, String> {
    let Blocked {
        waiter,
        mut rx,
        deadline,
    } = blocked;
    /// Withdraws the wait when dropped, however the wait ended.
    struct Withdraw<'a> {
        shared: &'a Shared,
        client: &'a Client,
        waiter: Arc<crate::blocking::Waiter>,
    }
    impl Drop for Withdraw<'_> {
        fn drop(&mut self) {
            // Claimed already when served; otherwise nobody may serve it now.
            self.waiter.claim();
            crate::blocking::unregister(&self.shared.keyspace, &self.waiter);
            self.shared
                .stats
                .blocked_clients
                .fetch_sub(1, Ordering::Relaxed);
            if let Ok(mut on) = self.client.info.blocked_on.lock() {
                *on = None;
            }
        }
    }
    shared.stats.blocked_clients.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut on) = client.info.blocked_on.lock() {
        *on = Some(waiter.clone());
    }
    let _withdraw = Withdraw {
        shared,
        client,
        waiter: waiter.clone(),
    };
    let sleep = async {
        match deadline {
            Some(at) => {
                let ms = (at - crate::server::now_ms()).max(0) as u64;
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(sleep);
    tokio::pin!(gone);
    let kill = client.info.kill.clone();
    loop {
        tokio::select! {
            outcome = &mut rx => return Ok(outcome.ok()),
            () = &mut sleep => {
                if waiter.claim() {
                    return Ok(None);
                }
                // Served at the last moment: the reply is on its way.
            }
            reason = &mut gone => return Err(reason),
            () = kill.cancelled() => return Err("killed".into()),
            () = shared.shutdown.triggered() => return Err("server shutdown".into()),
        }
    }
}

/// Writes what a blocked command ends with: its reply, CLIENT UNBLOCK's
/// error, or the timeout's null.
pub(crate) fn write_outcome(
    out: &mut transport::Output,
    proto: Protocol,
    outcome: Option<crate::blocking::Outcome>,
) -> Wait {
    use crate::blocking::Outcome;
    match outcome {
        Some(Outcome::Reply(reply)) => {
            out.append(reply);
            Wait::Done
        }
        Some(Outcome::Retry) => Wait::Retry,
        Some(Outcome::Unblocked { error: true }) => {
            out.extend_from_slice(b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n");
            Wait::Done
        }
        Some(Outcome::Unblocked { error: false }) | None => {
            let mut reply = crate::reply::Reply { out, proto };
            // Redis answers a timed-out list wait with the null array, for
            // the moves as well.
            reply.null_array();
            Wait::Done
        }
    }
}

/// Updates what other clients see of this one (CLIENT LIST): after each
/// batch, and before a wait.
fn publish_meta(client: &mut Client) {
    let mut meta = client.info.meta();
    meta.db = client.db;
    // Mostly the same command as the batch before (the same name in the
    // table, no subcommand): then the text is there already.
    let command = client.last_command;
    if !(client.last_sub.is_empty() && std::ptr::eq(command, client.published)) {
        meta.last_command.clear();
        meta.last_command.push_str(command);
        meta.last_command.push_str(&client.last_sub);
        client.published = if client.last_sub.is_empty() {
            command
        } else {
            ""
        };
    }
    meta.last_active = client.clock.last();
    meta.proto = client.proto;
    // Mostly both empty: no comparison of bytes then.
    if !(meta.name.is_empty() && client.name.is_empty()) && meta.name != client.name {
        meta.name = client.name.clone();
    }
    meta.multi = client.multi.as_ref().map_or(-1, |m| m.len() as i64);
    meta.multi_mem = client.multi.as_ref().map_or(0, Multi::memory);
    drop(meta);
    let state = state_memory(client);
    if client.info.mem.state.load(Ordering::Relaxed) != state {
        client.info.mem.state.store(state, Ordering::Relaxed);
    }
}

/// What one watched key, subscription or tracking prefix is counted for in
/// a client's memory: its entry in the client's set and in the server's
/// (Redis counts its list node and entry, not the name, which is shared).
pub(crate) const ENTRY_COST: usize = 64;

/// The memory a client's state takes beside its buffers (`tot-mem`'s part
/// that is not a buffer): the commands MULTI queued, and an entry for each
/// key it watches, each subscription and each tracking prefix.
pub(crate) fn state_memory(client: &Client) -> usize {
    let multi = client.multi.as_ref().map_or(0, Multi::memory);
    let subs = if client.info.pubsub.active() {
        let (sub, psub, ssub) = client.info.pubsub.counts();
        sub + psub + ssub
    } else {
        0
    };
    let prefixes = client.tracking.as_ref().map_or(0, |t| t.prefixes.len());
    multi + (client.watching.len() + subs + prefixes) * ENTRY_COST
}

/// Waits while CLIENT PAUSE holds `request` back, as a blocked client
/// (INFO's `blocked_clients`, CLIENT LIST's `b`). Replies to earlier
/// commands go out first. `Err` says why the connection ended meanwhile.
async fn postponed(
    shared: &Shared,
    conn: &mut Connection<TcpStream>,
    client: &mut Client,
    request: &resp::Request,
) -> Result<(), String> {
    shared.repl.aof.settle(client.aof_off).await;
    if let Err(e) = conn.flush().await {
        return Err(format!("write failed: {e}"));
    }
    let write = cmd::may_write(client, request);
    publish_meta(client);
    shared.stats.blocked_clients.fetch_add(1, Ordering::Relaxed);
    client.info.postponed.store(true, Ordering::Relaxed);
    let kill = client.info.kill.clone();
    let result = loop {
        tokio::select! {
            () = shared.pause.wait_over(write) => break Ok(()),
            read = conn.fill_socket() => match read {
                Ok(0) | Err(_) => break Err("closed while paused".to_string()),
                // Later commands wait in the buffer until this one runs.
                Ok(_) => {}
            },
            () = kill.cancelled() => break Err("killed".to_string()),
            () = shared.shutdown.triggered() => break Err("server shutdown".to_string()),
        }
    };
    client.info.postponed.store(false, Ordering::Relaxed);
    shared.stats.blocked_clients.fetch_sub(1, Ordering::Relaxed);
    result
}

/// The loop: read, execute every complete request, write all replies at
/// once. Returns why it stopped.
/// Requests of a pipelined batch decoded before they run, so that their
/// keys' lookups can be prefetched together (see `Keyspace::prefetch`):
/// what follows a request that names keys by position is decoded too, up
/// to [`Ahead::MAX`] requests, and stops after any other request (one that
/// may change how the rest is read, such as AUTH, or where the rest goes,
/// such as PSYNC). A decoding error met ahead waits its turn.
/// What the decoder gives: a request, not yet a whole one, or an error.
type Decoded = Result<Option<resp::Request>, resp::DecodeError>;

#[derive(Default)]
struct Ahead {
    /// Each request with its command's index (`cmd::lookup_index`).
    queue: std::collections::VecDeque<(Decoded, Option<usize>)>,
    hashes: Vec<u64>,
}

impl Ahead {
    /// Requests read ahead at most (a pipeline of 16 is common; past that
    /// the first prefetched lines may be evicted before their turn).
    const MAX: usize = 16;
    /// Keys of one request prefetched at most (MGET, DEL, EXISTS...).
    const MAX_KEYS: usize = 16;

    fn next(&mut self) -> Option<(Decoded, Option<usize>)> {
        self.queue.pop_front()
    }

    /// `first`, the command at `index`, was just decoded: decodes what
    /// follows it, if it may, and prefetches the keys of the lot in
    /// database `db`.
    fn read(
        &mut self,
        shared: &Shared,
        db: usize,
        decoder: &mut RequestDecoder,
        conn: &mut Connection<TcpStream>,
        names: &mut cmd::LastName,
        (first, index): (&resp::Request, Option<usize>),
    ) {
        let hashes = &mut self.hashes;
        hashes.clear();
        let hash = |k: &[u8]| crate::db::hash_key(k);
        if !cmd::prefetch_keys(index, first, Self::MAX_KEYS, |k| hashes.push(hash(k))) {
            return;
        }
        while self.queue.len() < Self::MAX - 1 {
            let decoded = decoder.decode(conn.read_buffer());
            let (more, index) = match &decoded {
                Ok(Some(request)) => {
                    let index = request.get(0).and_then(|name| names.lookup(name));
                    let more = cmd::prefetch_keys(index, request, Self::MAX_KEYS, |k| {
                        hashes.push(hash(k))
                    });
                    (more, index)
                }
                Ok(None) => break,
                Err(_) => (false, None),
            };
            self.queue.push_back((decoded, index));
            if !more {
                break;
            }
        }
        if hashes.len() > 1 {
            shared.keyspace.prefetch(db, hashes);
        }
    }
}

/// How a connection's loop ended.
enum Ended {
    /// The connection is done, for this reason.
    Closed(String),
    /// PSYNC or SYNC: it is now a replica's link.
    Replica(Psync),
}

async fn run(shared: &Shared, conn: &mut Connection<TcpStream>, client: &mut Client) -> Ended {
    let mut decoder = RequestDecoder::new();
    let kill = client.info.kill.clone();
    let mut ahead = Ahead::default();
    let mut names = cmd::LastName::default();
    let mut over = crate::outbuf::Check::default();
    loop {
        // The waits below favour reading: a client killed, or a server
        // stopping, while requests keep coming ends here.
        if kill.is_cancelled() {
            return Ended::Closed("killed".into());
        }
        if shared.stopping.load(Ordering::Relaxed) {
            return Ended::Closed("server shutdown".into());
        }
        // `client-output-buffer-limit normal`, for this batch.
        let limit = shared.output_limits.load();
        client.clock = Clock::new();
        decoder.set_authenticated(client.authenticated);
        let mut limits = *decoder.limits();
        limits.max_bulk_len = shared.max_bulk_len.load(Ordering::Relaxed).max(0) as u64;
        decoder.set_limits(limits);
        // Messages published before these commands arrived go out before
        // their replies, as in Redis.
        client.info.pubsub.drain(conn.write_buffer(), client.proto);
        let batch_input = conn.read_buffer().len();
        let mut ran = 0usize;
        loop {
            let (decoded, index) = match ahead.next() {
                Some(next) => next,
                // All read is decoded (the decoder keeps no partial
                // request once the buffer is empty): the batch is over.
                None if conn.read_buffer().is_empty() => break,
                None => {
                    let decoded = decoder.decode(conn.read_buffer());
                    let mut index = None;
                    if let Ok(Some(request)) = &decoded {
                        index = request.get(0).and_then(|name| names.lookup(name));
                        // Nothing more buffered (a pipeline of one): no
                        // batch to prefetch for.
                        if client.authenticated && !conn.read_buffer().is_empty() {
                            ahead.read(
                                shared,
                                client.db,
                                &mut decoder,
                                conn,
                                &mut names,
                                (request, index),
                            );
                        }
                    }
                    (decoded, index)
                }
            };
            let request = match decoded {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(e) => {
                    let mut reply = b"-".to_vec();
                    reply.extend_from_slice(&e.to_redis_error());
                    reply.extend_from_slice(b"\r\n");
                    conn.write_buffer().extend_from_slice(&reply);
                    let _ = conn.flush().await;
                    return Ended::Closed(format!("protocol error: {e}"));
                }
            };
            if request.is_empty() {
                continue;
            }
            ran += 1;
            let read = conn.read_buffer();
            client.qbuf = (read.len(), read.capacity() - read.len());
            // Redis evicts clients before each command, once the last one
            // has grown someone's output; a big request counts itself
            // first, as its arguments are the client's memory now.
            if shared.client_memory.enabled() {
                if request.size() >= resp::BIG_ARG {
                    let read = crate::outbuf::Read {
                        len: client.qbuf.0,
                        capacity: client.qbuf.0 + client.qbuf.1,
                        consumed: 0,
                        argv: request.iter().map(<[u8]>::len).sum(),
                    };
                    client.info.mem.publish(read, conn.write_buffer());
                    account(shared, client);
                } else {
                    crate::outbuf::evict_clients(shared);
                }
                if kill.is_cancelled() {
                    return Ended::Closed("evicted".into());
                }
            }
            let mut after =
                cmd::execute_command(shared, client, conn.write_buffer(), &request, index);
            // A command run again after a wait may block or be held back
            // in turn.
            loop {
                match after {
                    After::Postpone => {
                        client.stats.flush(&shared.stats);
                        if let Err(reason) = postponed(shared, conn, client, &request).await {
                            return Ended::Closed(reason);
                        }
                        client.clock = Clock::new();
                        after = cmd::execute(shared, client, conn.write_buffer(), &request);
                    }
                    After::Wait(wait) => {
                        client.stats.flush(&shared.stats);
                        shared.repl.aof.settle(client.aof_off).await;
                        let _ = conn.flush().await;
                        let acked = crate::repl::master::wait_acks(shared, wait, &kill).await;
                        let mut reply = crate::reply::Reply {
                            out: conn.write_buffer(),
                            proto: client.proto,
                        };
                        reply.int(acked as i64);
                        client.clock = Clock::new();
                        after = After::Continue;
                    }
                    After::Block(blocked) => {
                        client.stats.flush(&shared.stats);
                        let waited = wait(shared, conn, client, blocked).await;
                        client.clock = Clock::new();
                        match waited {
                            Wait::Done => after = After::Continue,
                            Wait::Retry => {
                                after = cmd::execute(shared, client, conn.write_buffer(), &request);
                            }
                            Wait::Gone(reason) => return Ended::Closed(reason),
                        }
                    }
                    After::Continue | After::Close | After::Replica(_) => break,
                }
            }
            // AUTH and HELLO change what the next request may be.
            decoder.set_authenticated(client.authenticated);
            match after {
                After::Close => {
                    shared.repl.aof.settle(client.aof_off).await;
                    let _ = conn.flush().await;
                    return Ended::Closed("quit".into());
                }
                After::Replica(psync) => {
                    client.stats.flush(&shared.stats);
                    return Ended::Replica(psync);
                }
                _ => {}
            }
            // As Redis, the client is closed as its output passes the
            // limit, before anything more runs or is sent.
            if limit.any() && over_limit(shared, conn, client, limit, &mut over) {
                client.stats.flush(&shared.stats);
                return Ended::Closed("output buffer limits".into());
            }
        }
        // The batch's BCAST invalidations, one message per prefix.
        shared.tracking.command_done(shared, Some(client.id()));
        publish_meta(client);
        client.stats.flush(&shared.stats);
        // Messages published to the client go out with the replies.
        client.info.pubsub.drain(conn.write_buffer(), client.proto);
        let pending = conn.write_buffer().len();
        let read = conn.read_buffer();
        // A read buffer a big request grew, twice what this batch read:
        // its room goes back (Redis's clientsCron resizes a query buffer
        // over twice its recent peak). A client whose requests are all
        // big keeps it.
        if read.is_empty()
            && read.capacity() > READ_BUFFER_KEEP
            && read.capacity() / 2 > batch_input
        {
            *read = bytes::BytesMut::new();
        }
        // A big argument arriving: its buffer is sized for it once.
        conn.expect(decoder.needed());
        let (consumed, argv) = decoder.progress();
        let read = conn.read_buffer();
        let read = crate::outbuf::Read {
            len: read.len(),
            capacity: read.capacity(),
            consumed,
            argv,
        };
        client.info.mem.publish(read, conn.write_buffer());
        if account(shared, client) {
            // Evicted itself: its connection ends at the top of the loop.
            continue;
        }
        // Replies to writes leave once the AOF holds them.
        shared.repl.aof.settle(client.aof_off).await;
        // A pipelined batch's replies wait until the worker's other ready
        // connections have run theirs, then all go out together, as Redis
        // writes every client's replies at the end of its loop's turn: a
        // peer that is still reading the first reply needs no wake-up for
        // the next, and on loopback that wake-up is paid by the sender
        // (about 0.3 µs a request for EVALSHA at pipeline 16, in
        // `_raw_spin_unlock_irqrestore` under `sock_def_readable`). One
        // request alone goes at once (no gain was measured there), unless
        // it published to subscribers, whose tasks it woke: a publisher
        // answered before they write publishes again sooner, and the
        // messages waiting in their queues, so the delivery latency,
        // grow (with one subscriber, a median of 0.52 ms before, 0.16
        // after; Redis 0.36, which answers and delivers in one pass).
        //
        // A publish to many subscribers (`pubsub::WIDE`) waits for the end
        // of the worker's turn instead, as they do: it is answered as their
        // pass of writes starts, as Redis answers in the same pass.
        let published = std::mem::take(&mut client.published_to);
        match &client.turn {
            Some(turn) if published >= crate::pubsub::WIDE => turn.end_first().await,
            _ if (ran > 1 || published > 0) && others_ready() => {
                tokio::task::yield_now().await;
            }
            _ => {}
        }
        // Output over the soft limit may wait on the socket for the
        // limit's seconds only.
        let soft = if limit.any() && is_normal(client) {
            over.soft_deadline(limit, pending)
        } else {
            None
        };
        let soft_expired = async {
            match soft {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        // A client that does not read holds its flush up, and what it
        // sends meanwhile is read and run all the same, as Redis does (its
        // output grows, bounded by the output limits and
        // `maxmemory-clients`); a kill (a subscriber past its output
        // limit, a client evicted) ends it.
        let flushed = tokio::select! {
            // The flush first: when it completes at once, as it mostly
            // does, the kill is not waited on at all.
            biased;
            flushed = conn.flush_or_read() => flushed,
            () = kill.cancelled() => return Ended::Closed("killed".into()),
            () = soft_expired => {
                crate::outbuf::log_closed(&cmd::describe_client(shared, &client.info));
                return Ended::Closed("output buffer limits".into());
            }
        };
        let flushed = match flushed {
            Ok(flushed) => flushed,
            Err(e) => return Ended::Closed(format!("write failed: {e}")),
        };
        let sent = pending - conn.write_buffer().len().min(pending);
        if sent > 0 {
            let stats = &shared.stats;
            stats
                .net_output_bytes
                .fetch_add(sent as u64, Ordering::Relaxed);
            stats.writes_processed.fetch_add(1, Ordering::Relaxed);
        }
        match flushed {
            transport::Flushed::Done => {}
            transport::Flushed::Read(0) => return Ended::Closed("closed by peer".into()),
            transport::Flushed::Read(n) => {
                shared
                    .stats
                    .net_input_bytes
                    .fetch_add(n as u64, Ordering::Relaxed);
                shared.stats.reads_processed.fetch_add(1, Ordering::Relaxed);
                // The output not sent stays, and the new requests' replies
                // join it.
                continue;
            }
        }
        over.flushed();
        client.info.mem.flushed(conn.write_buffer().capacity());
        client.info.pubsub.flushed();
        account(shared, client);
        let stopping = &shared.stopping;
        // A big request grew the read buffer: once the client has been
        // idle for a while, the room goes back (Redis's clientsCron
        // resizes a query buffer idle for 2 s). Only such a client waits
        // on a timer.
        let oversized = {
            let read = conn.read_buffer();
            read.is_empty() && read.capacity() > READ_BUFFER_KEEP
        };
        let idle = async {
            if oversized {
                tokio::time::sleep(READ_BUFFER_IDLE).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            // The read first; the kill and the shutdown are one wait (see
            // `kill`), and a killed client's loop meets the kill below.
            biased;
            read = conn.fill_socket() => match read {
                Ok(0) => return Ended::Closed("closed by peer".into()),
                Ok(n) => {
                    shared.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    shared.stats.reads_processed.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Ended::Closed(format!("read failed: {e}")),
            },
            stop = std::future::poll_fn(|cx| kill.poll_stopped(stopping, cx)) => {
                return Ended::Closed(match stop {
                    crate::kill::Stop::Killed => "killed",
                    crate::kill::Stop::Shutdown => "server shutdown",
                }.into());
            }
            // A message to deliver: back round the loop, which sends it.
            // Only a subscriber, or a client that may get invalidations
            // (CLIENT TRACKING), waits for one (a waiter costs a lock).
            () = client.info.pubsub.notified(), if client.info.pubsub.listening() => {
                // Woken by a publisher's task, this one runs next; letting
                // the other ready tasks (more publishers) run first sends
                // their messages in one write, as Redis's event loop does.
                // Many subscribers of one publish write in one pass at the
                // end of the worker's turn (`turn.rs`).
                match &client.turn {
                    Some(turn) if client.info.pubsub.take_wide() => turn.end().await,
                    _ => tokio::task::yield_now().await,
                }
            }
            () = idle => {
                *conn.read_buffer() = bytes::BytesMut::new();
                let read = crate::outbuf::Read::default();
                client.info.mem.publish(read, conn.write_buffer());
                account(shared, client);
            }
        }
    }
}

/// Brings the client's part of what clients hold up to date after it
/// published its buffers, and evicts clients if they hold too much
/// (`maxmemory-clients`); whether this client was evicted.
fn account(shared: &Shared, client: &Client) -> bool {
    let info = &client.info;
    if !ordinary(info.kind.load(Ordering::Relaxed)) {
        return false;
    }
    // Only a client that may be sent messages has a queue worth a lock.
    let pubsub = if info.pubsub.listening() {
        info.pubsub.pending()
    } else {
        0
    };
    info.mem.account(&shared.client_memory, pubsub);
    crate::outbuf::evict_clients(shared);
    info.kill.is_cancelled()
}

/// A read buffer with more room than this is given back once its client
/// has been idle for [`READ_BUFFER_IDLE`] (Redis's `PROTO_RESIZE_THRESHOLD`
/// is 32 KB; a read takes 16 KB at a time).
const READ_BUFFER_KEEP: usize = 64 * 1024;

/// How long a client with an oversized read buffer must be idle before the
/// buffer goes (Redis: 2 s).
const READ_BUFFER_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the output limits of normal clients apply to `client`: not to a
/// subscriber (`pubsub`'s limits apply) or a replica's link.
fn is_normal(client: &Client) -> bool {
    client.info.kind.load(Ordering::Relaxed) == NORMAL && !client.info.pubsub.active()
}

/// Checks the client's pending output against `limit` after a command;
/// logs Redis's line if it is over.
fn over_limit(
    shared: &Shared,
    conn: &mut Connection<TcpStream>,
    client: &mut Client,
    limit: crate::outbuf::Limit,
    check: &mut crate::outbuf::Check,
) -> bool {
    let pending = conn.write_buffer().len();
    if !is_normal(client) || !check.over(limit, pending) {
        return false;
    }
    let read = conn.read_buffer();
    let read = crate::outbuf::Read {
        len: read.len(),
        capacity: read.capacity(),
        ..Default::default()
    };
    client.info.mem.publish(read, conn.write_buffer());
    publish_meta(client);
    crate::outbuf::log_closed(&cmd::describe_client(shared, &client.info));
    true
}

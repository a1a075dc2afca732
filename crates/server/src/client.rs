//! One client connection: its state and its read–execute–write loop.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use resp::{Protocol, RequestDecoder};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use transport::{Connection, ConnectionLimits};

use crate::cmd::{self, After};
use crate::server::Shared;

/// What other connections may see of a client (CLIENT LIST, CLIENT KILL).
#[derive(Debug)]
pub(crate) struct ClientInfo {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) laddr: SocketAddr,
    pub(crate) created: Instant,
    pub(crate) meta: Mutex<Meta>,
    /// Cancelled by CLIENT KILL.
    pub(crate) kill: CancellationToken,
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
}

impl ClientInfo {
    pub(crate) fn meta(&self) -> std::sync::MutexGuard<'_, Meta> {
        self.meta
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection's own state, which its commands read and change.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) info: Arc<ClientInfo>,
    pub(crate) db: usize,
    pub(crate) proto: Protocol,
    pub(crate) authenticated: bool,
    pub(crate) name: Bytes,
    /// Set by QUIT and by CLIENT KILL of oneself: close after the reply.
    pub(crate) closing: bool,
    pub(crate) last_command: &'static str,
    /// The subcommand of the running command, for CLIENT LIST's `cmd=`
    /// (`|list`), empty when it has none.
    pub(crate) last_sub: String,
}

impl Client {
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
    let info = Arc::new(ClientInfo {
        id: shared.next_client_id(),
        addr: peer,
        laddr,
        created: Instant::now(),
        meta: Mutex::new(Meta {
            name: Bytes::new(),
            db: 0,
            last_command: "NULL".to_string(),
            last_active: Instant::now(),
            proto: Protocol::Resp2,
        }),
        kill: CancellationToken::new(),
    });
    if let Ok(mut clients) = shared.clients.lock() {
        clients.insert(info.id, info.clone());
    }
    let requirepass = !shared.config_get("requirepass").is_empty();
    let mut client = Client {
        info: info.clone(),
        db: 0,
        proto: Protocol::Resp2,
        authenticated: !requirepass,
        name: Bytes::new(),
        closing: false,
        last_command: "NULL",
        last_sub: String::new(),
    };
    let reason = run(&shared, &mut conn, &mut client).await;
    tracing::debug!(id = info.id, %peer, "client closed: {reason}");
    if let Ok(mut clients) = shared.clients.lock() {
        clients.remove(&info.id);
    }
}

/// The loop: read, execute every complete request, write all replies at
/// once. Returns why it stopped.
async fn run(shared: &Shared, conn: &mut Connection<TcpStream>, client: &mut Client) -> String {
    let mut decoder = RequestDecoder::new();
    let kill = client.info.kill.clone();
    loop {
        decoder.set_authenticated(client.authenticated);
        let mut limits = *decoder.limits();
        limits.max_bulk_len = shared.config_i64("proto-max-bulk-len").max(0) as u64;
        decoder.set_limits(limits);
        loop {
            let request = match decoder.decode(conn.read_buffer()) {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(e) => {
                    let mut reply = b"-".to_vec();
                    reply.extend_from_slice(&e.to_redis_error());
                    reply.extend_from_slice(b"\r\n");
                    conn.write_buffer().extend_from_slice(&reply);
                    let _ = conn.flush().await;
                    return format!("protocol error: {e}");
                }
            };
            if request.is_empty() {
                continue;
            }
            let after = cmd::execute(shared, client, conn.write_buffer(), &request);
            // AUTH and HELLO change what the next request may be.
            decoder.set_authenticated(client.authenticated);
            if after == After::Close {
                let _ = conn.flush().await;
                return "quit".into();
            }
        }
        {
            let mut meta = client.info.meta();
            meta.db = client.db;
            meta.last_command.clear();
            meta.last_command.push_str(client.last_command);
            meta.last_command.push_str(&client.last_sub);
            meta.last_active = Instant::now();
            meta.proto = client.proto;
            meta.name = client.name.clone();
        }
        let pending = conn.write_buffer().len();
        if let Err(e) = conn.flush().await {
            return format!("write failed: {e}");
        }
        shared
            .stats
            .net_output_bytes
            .fetch_add(pending as u64, Ordering::Relaxed);
        tokio::select! {
            read = conn.fill() => match read {
                Ok(0) => return "closed by peer".into(),
                Ok(n) => {
                    shared.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => return format!("read failed: {e}"),
            },
            () = kill.cancelled() => return "killed".into(),
            () = shared.shutdown.triggered() => return "server shutdown".into(),
        }
    }
}

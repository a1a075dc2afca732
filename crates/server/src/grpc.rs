//! The gRPC API (`ember.v1.Cache`, see `ember-grpc`) served by the server
//! itself (`--grpc-port`).
//!
//! Every call runs through the command table as a command of a client of
//! its own, listed in CLIENT LIST while it runs: `requirepass` (the call's
//! `authorization: Bearer <password>`), the checks of every command (arity,
//! OOM, stale replicas, CLIENT PAUSE), replication, statistics and
//! blocking commands (a BLPOP waits; a cancelled call withdraws its wait)
//! hold as for a RESP client. Replies are read in RESP3, so every type
//! reaches the caller as itself; a large value leaves in the memory it is
//! stored in. Commands that only make sense on a connection that lives on
//! (MULTI, WATCH, SELECT, SUBSCRIBE...) are refused: a call is one command.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use grpc::{Backend, Failure};
use resp::{Frame, Protocol, Request};
use tokio::net::TcpListener;

use crate::client::{Client, ClientInfo, Wait, wait_blocked, write_outcome};
use crate::cmd::{self, After};
use crate::db::Shards;
use crate::server::{Clock, Shared};

/// Commands that keep state on a connection for the commands after them.
const CONNECTION_STATE: &[&str] = &[
    "auth",
    "discard",
    "exec",
    "hello",
    "monitor",
    "multi",
    "psubscribe",
    "psync",
    "punsubscribe",
    "quit",
    "replconf",
    "reset",
    "select",
    "ssubscribe",
    "subscribe",
    "sunsubscribe",
    "sync",
    "unsubscribe",
    "unwatch",
    "watch",
];

/// The server as a gRPC backend.
#[derive(Debug, Clone)]
struct Local {
    shared: Arc<Shared>,
    /// Where calls arrive, for CLIENT LIST.
    addr: SocketAddr,
}

impl Backend for Local {
    fn execute(&self, args: Vec<Bytes>) -> impl Future<Output = Result<Frame, Failure>> + Send {
        let this = self.clone();
        async move { this.call(args).await }
    }

    fn authorize(&self, password: Option<&[u8]>) -> Result<(), Failure> {
        let want = self.shared.config_get("requirepass");
        match password {
            _ if want.is_empty() => Ok(()),
            Some(got) if got == want.as_bytes() => Ok(()),
            None => Err(Failure::Redis("NOAUTH Authentication required.".into())),
            Some(_) => Err(Failure::Redis(
                "WRONGPASS invalid username-password pair or user is disabled.".into(),
            )),
        }
    }
}

impl Local {
    async fn call(&self, args: Vec<Bytes>) -> Result<Frame, Failure> {
        let shared = &*self.shared;
        let name =
            String::from_utf8_lossy(args.first().map_or(&b""[..], |a| &a[..])).to_ascii_lowercase();
        if CONNECTION_STATE.contains(&name.as_str()) {
            return Err(Failure::Invalid(format!(
                "ERR '{name}' is not served over gRPC: each call is one command on a connection of its own"
            )));
        }
        let request = Request::from_args(&args);
        let info = ClientInfo::register(shared, self.addr, self.addr);
        // Authorized already (see `authorize`).
        let mut client = Client::new(info.clone(), true);
        client.proto = Protocol::Resp3;
        let mut out = transport::Output::new();
        let result = run(shared, &mut client, &mut out, &request).await;
        // A write's reply leaves once the AOF holds it, as on a connection.
        shared.repl.aof.settle(client.aof_off).await;
        client.stats.flush(&shared.stats);
        cmd::unwatch_all(&mut Shards::new(&shared.keyspace), &mut client);
        if let Ok(mut clients) = shared.clients.lock() {
            clients.remove(&info.id);
        }
        result?;
        reply(out)
    }
}

/// Runs `request` for `client` to its end: again after a CLIENT PAUSE
/// that held it back, after a wait for a blocking command or for WAIT's
/// acknowledgements.
async fn run(
    shared: &Shared,
    client: &mut Client,
    out: &mut transport::Output,
    request: &Request,
) -> Result<(), Failure> {
    let gone = |why: String| Failure::Unavailable(format!("ERR {why}"));
    let mut after = cmd::execute(shared, client, out, request);
    loop {
        match after {
            After::Continue | After::Close => return Ok(()),
            // Refused above (PSYNC, SYNC); nothing else turns a call into
            // a replica.
            After::Replica(_) => return Err(Failure::Invalid("ERR not served over gRPC".into())),
            After::Postpone => {
                let write = cmd::may_write(client, request);
                let kill = client.info.kill.clone();
                client.info.postponed.store(true, Ordering::Relaxed);
                let waited = tokio::select! {
                    () = shared.pause.wait_over(write) => Ok(()),
                    () = kill.cancelled() => Err(gone("killed".into())),
                    () = shared.shutdown.triggered() => Err(gone("server shutdown".into())),
                };
                client.info.postponed.store(false, Ordering::Relaxed);
                waited?;
                client.clock = Clock::new();
                after = cmd::execute(shared, client, out, request);
            }
            After::Wait(wait) => {
                let kill = client.info.kill.clone();
                let acked = crate::repl::master::wait_acks(shared, wait, &kill).await;
                crate::reply::Reply {
                    out,
                    proto: client.proto,
                }
                .int(acked as i64);
                return Ok(());
            }
            After::Block(blocked) => {
                client.stats.flush(&shared.stats);
                // A call has no connection that could close under it: a
                // cancelled call drops this future, which withdraws the wait.
                let outcome = wait_blocked(shared, client, blocked, std::future::pending())
                    .await
                    .map_err(gone)?;
                // Served by another client's write: wait for its record too.
                client.aof_off = client.aof_off.max(shared.repl.aof.appended());
                client.clock = Clock::new();
                match write_outcome(out, client.proto, outcome) {
                    Wait::Retry => after = cmd::execute(shared, client, out, request),
                    Wait::Done | Wait::Gone(_) => return Ok(()),
                }
            }
        }
    }
}

/// The one reply in `out`, as a frame; an error reply as a failure. A
/// large bulk string is taken as the memory it was queued from.
fn reply(out: transport::Output) -> Result<Frame, Failure> {
    let pieces = out.into_pieces();
    if let [head, value, tail] = &pieces[..]
        && head.len() >= 4
        && head.first() == Some(&b'$')
        && &tail[..] == b"\r\n"
        && head[1..head.len() - 2] == *value.len().to_string().as_bytes()
    {
        return Ok(Frame::Bulk(value.clone()));
    }
    let mut buf = BytesMut::new();
    for piece in &pieces {
        buf.extend_from_slice(piece);
    }
    match resp::decode(&mut buf) {
        Ok(Some(Frame::Error(text) | Frame::BulkError(text))) => {
            Err(Failure::Redis(String::from_utf8_lossy(&text).into_owned()))
        }
        Ok(Some(frame)) => Ok(frame),
        Ok(None) | Err(_) => Err(Failure::Invalid(
            "ERR the command gave no reply".to_string(),
        )),
    }
}

/// Serves the gRPC API on `listener` until the server shuts down.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let stop = shared.clone();
    let stopped = async move { stop.shutdown.triggered().await };
    if let Err(e) = grpc::serve(listener, Local { shared, addr }, stopped).await {
        tracing::error!("gRPC: {e}");
    }
}

//! `ember-proxy`: a RESP server in front of an Ember fleet.
//!
//! Any Redis client (`redis-cli`, redis-py, a Go or Java client) connects
//! to the proxy as to one Redis server, and every command it sends goes
//! through one shared [`Client`]: the same routing, write policies, read
//! failover and self-healing as `ember-cli` and the Rust library, with one
//! pipelined connection per node shared by every client of the proxy.
//!
//! What it does itself, without the fleet: `PING`, `ECHO`, `QUIT`, `AUTH`
//! and `HELLO 2` (its own `--requirepass`), `SELECT 0`, `COMMAND`,
//! `CLIENT SETNAME/GETNAME/ID`, `INFO` (its own sections), and `MULTI` ...
//! `EXEC`, which it queues and sends as one transaction when every key
//! lives on one shard. Pub/sub (`SUBSCRIBE` and its siblings, RESP2's
//! subscriber mode, `RESET`, `PUBSUB` merged across the nodes) runs on a
//! fleet `Subscription` per subscribing client. Everything else is routed;
//! what cannot be routed gets an error saying why.
//!
//! What it refuses to do: own any routing or failover logic (that is
//! `ember-route`'s and `ember-client`'s, pub/sub failover included).
#![warn(missing_docs)]

mod exec;
mod grpc_backend;
mod limit;
mod pubsub;
mod resp3;
mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use client::Client;
use tokio::net::TcpListener;
use transport::Shutdown;

pub use grpc_backend::serve_grpc;
pub use limit::OutputLimit;
pub use session::Stats;

/// The proxy's own settings (the fleet's are the [`Client`]'s).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The password clients must give (`AUTH`, `HELLO ... AUTH`); none by
    /// default.
    pub requirepass: Option<String>,
    /// The most clients at once (10,000).
    pub maxclients: usize,
    /// `client-output-buffer-limit pubsub`: a subscribed client whose
    /// unsent output passes it is disconnected, as Redis disconnects its
    /// own (32 MiB at once, 8 MiB for 60 s, by default).
    pub pubsub_output_limit: OutputLimit,
}

impl ProxyConfig {
    /// No password, 10,000 clients, Redis's pub/sub output limit.
    pub fn new() -> ProxyConfig {
        ProxyConfig {
            requirepass: None,
            maxclients: 10_000,
            pubsub_output_limit: OutputLimit::PUBSUB,
        }
    }
}

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) config: ProxyConfig,
    pub(crate) stats: Stats,
    pub(crate) started: Instant,
    pub(crate) next_id: AtomicU64,
    /// Set when the proxy stops; every session's idle wait is then woken
    /// (`sessions`) and ends. A session waiting on the shutdown token
    /// itself would take that shared token's locks after every reply.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
    /// Each live session's idle wait, by session id.
    pub(crate) sessions:
        std::sync::Mutex<std::collections::HashMap<u64, Arc<atomic_waker::AtomicWaker>>>,
}

/// Serves `listener` until `shutdown` is triggered, then stops accepting
/// and returns once every connection has answered what it had read.
pub async fn run(listener: TcpListener, client: Client, config: ProxyConfig, shutdown: Shutdown) {
    let ctx = Arc::new(Ctx {
        client,
        config,
        stats: Stats::default(),
        started: Instant::now(),
        next_id: AtomicU64::new(1),
        stopping: std::sync::atomic::AtomicBool::new(false),
        sessions: std::sync::Mutex::new(std::collections::HashMap::new()),
    });
    let token = shutdown.token();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = token.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let connected = ctx.stats.connected.fetch_add(1, Ordering::Relaxed);
        if connected >= ctx.config.maxclients as u64 {
            ctx.stats.connected.fetch_sub(1, Ordering::Relaxed);
            ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
            session::refuse(stream).await;
            continue;
        }
        ctx.stats.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        shutdown.spawn(async move {
            session::serve(stream, peer, &ctx).await;
            ctx.stats.connected.fetch_sub(1, Ordering::Relaxed);
        });
    }
    // Sessions spawned but not yet waiting see the flag at their first wait.
    ctx.stopping.store(true, Ordering::SeqCst);
    let sessions: Vec<_> = match ctx.sessions.lock() {
        Ok(sessions) => sessions.values().cloned().collect(),
        Err(_) => Vec::new(),
    };
    for waker in sessions {
        waker.wake();
    }
    shutdown.wait().await;
    ctx.client.flush().await;
}

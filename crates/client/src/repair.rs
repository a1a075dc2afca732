//! Repair: bringing a doubted node back to its peers' data.
//!
//! Two ways, chosen by what the node lacks:
//!
//! - **Hints.** The node kept its process (same `run_id`, marker in place)
//!   and missed some writes, whose keys its peers hold in hint lists. Each
//!   key's current value and deadline is copied from the peer (`DUMP`,
//!   `PEXPIRETIME`, then `RESTORE … REPLACE ABSTTL` or `DEL` on the node),
//!   the copy is checked again once writes in flight have landed, and the
//!   hints are trimmed.
//! - **Full.** The node restarted (or missed a write without keys, or more
//!   hints than [`Options::hint_limit`](crate::Options::hint_limit)): it
//!   becomes a replica of a verified peer (`REPLICAOF`), and once the sync
//!   is done the peer's writes are paused (`CLIENT PAUSE … WRITE`) until the
//!   node's replication offset reaches the peer's, the node is promoted
//!   (`REPLICAOF NO ONE`), marked, and the peer unpaused — the dance of
//!   Redis's `FAILOVER`. Writes clients sent the node meanwhile were
//!   refused or skipped and left hints, which are replayed as above.
//!
//! A lock on the peer (`SET … NX PX`) keeps two clients from repairing one
//! node at once; the loser waits, then finds the node verified. Whatever
//! goes wrong, the peer is unpaused and the node promoted back before the
//! error is returned.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use resp::Frame;
use route::{Doubt, GroupId, NodeId, Router, Trust};
use tokio::sync::mpsc;

use crate::driver::{Msg, Shared};
use crate::{Connection, Error};

/// What a repair did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairKind {
    /// Nothing was missing (or another client had repaired it already).
    Nothing,
    /// Only the hinted keys were copied.
    Hints,
    /// A full copy by replication, then the hints left meanwhile.
    Full,
}

/// The outcome of [`Client::repair`](crate::Client::repair).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// The node repaired.
    pub node: NodeId,
    /// The peer it was repaired from.
    pub source: NodeId,
    /// How.
    pub kind: RepairKind,
    /// Keys copied from the peer one by one (hints).
    pub copied: u64,
    /// Keys deleted because the peer no longer had them.
    pub deleted: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// How long a full repair waits, after reading the hints the sync is to
/// cover, before it pauses the source: one client timeout, for every write
/// sent before to land or fail, and a quarter more for a server that read
/// a command just before its client gave up.
fn settle_time(timeout: Duration) -> Duration {
    timeout.saturating_add(timeout / 4)
}

/// How many hints are read and copied at a time.
const BATCH: usize = 1000;

/// How often a repair looks again at something it waits for.
const POLL: Duration = Duration::from_millis(50);

/// How long the repair lock lives unless renewed: a client that dies
/// mid-repair holds others up no longer than this.
const LOCK_TTL: Duration = Duration::from_secs(15);

/// A peer of `node` that is up, to repair it from: a verified one, or,
/// when none is, one doubted only for writes it missed (see
/// [`pick_source`]).
pub(crate) fn source(router: &Router, node: NodeId) -> Option<NodeId> {
    pick_source(router.topology(), node, |n| {
        router.is_up(n).then(|| router.trust(n)).flatten()
    })
}

/// The peer to repair `node` from, given each node's trust when it is up.
///
/// A verified peer if there is one. Otherwise a peer doubted only because
/// it missed writes (its own, or hinted by others): two nodes of a shard
/// can each have missed what the other took (both slow for a moment under
/// load), and neither would ever be repaired if each waited for the other.
/// Such a peer can give the node the keys the node missed (it took those
/// writes), never a full copy; the repair checks that.
pub(crate) fn pick_source(
    topology: &route::Topology,
    node: NodeId,
    trust: impl Fn(NodeId) -> Option<Trust>,
) -> Option<NodeId> {
    let (_, shard) = topology.position(node)?;
    let peers: Vec<NodeId> = (0..topology.groups())
        .filter_map(|g| topology.node(GroupId(g), shard))
        .filter(|&peer| peer != node)
        .collect();
    let verified = peers
        .iter()
        .copied()
        .find(|&p| trust(p) == Some(Trust::Verified));
    verified.or_else(|| {
        peers.into_iter().find(|&p| {
            matches!(
                trust(p),
                Some(Trust::Unverified(Doubt::Missed | Doubt::Hinted))
            )
        })
    })
}

/// An automatic repair, started by the driver: runs, logs, and waits a
/// while after a failure before saying it is done (so a node that cannot
/// be repaired is not retried in a loop).
pub(crate) async fn auto(
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Msg>,
    node: NodeId,
    source: NodeId,
) {
    let addr = shared.topology.addr(node).unwrap_or_default().to_owned();
    match run(&shared, &tx, node, source).await {
        Ok(report) => {
            tracing::info!(node = node.0, %addr, kind = ?report.kind, copied = report.copied,
                deleted = report.deleted, elapsed = ?report.elapsed, "node repaired");
            shared.repair_failures[node.0 as usize].store(0, Ordering::Relaxed);
        }
        Err(e) => {
            let failures = shared.repair_failures[node.0 as usize].fetch_add(1, Ordering::Relaxed);
            let wait = Duration::from_millis(500 << failures.min(7));
            tracing::warn!(node = node.0, %addr, "repair failed, next try in {wait:?}: {e}");
            tokio::time::sleep(wait).await;
        }
    }
    let _ = tx.send(Msg::RepairDone { node });
}

/// Repairs `node` from `source`, telling the driver what to believe of it
/// as it goes.
pub(crate) async fn run(
    shared: &Shared,
    tx: &mpsc::UnboundedSender<Msg>,
    node: NodeId,
    source: NodeId,
) -> Result<RepairReport, Error> {
    let started = Instant::now();
    let before = shared
        .trust
        .lock()
        .ok()
        .and_then(|t| t.get(node.0 as usize).copied())
        .unwrap_or(Trust::Unknown);
    let source_verified = shared
        .trust
        .lock()
        .ok()
        .and_then(|t| t.get(source.0 as usize).copied())
        == Some(Trust::Verified);
    let mut job = Job::open(shared, node, source).await?;
    job.source_verified = source_verified;
    // Names this repair in the lock: only its owner lets it go.
    let nonce =
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), node.0);
    let token = Bytes::from(format!("{}:{nonce:x}", std::process::id()));
    let outcome = async {
        job.lock(&token).await?;
        let result = job.repair(tx).await;
        job.unlock(&token).await;
        result
    }
    .await;
    match outcome {
        Ok((kind, copied, deleted)) => {
            let _ = tx.send(Msg::SetTrust {
                node,
                trust: Trust::Verified,
            });
            Ok(RepairReport {
                node,
                source,
                kind,
                copied,
                deleted,
                elapsed: started.elapsed(),
            })
        }
        Err(e) => {
            let e = match e {
                Error::Repair(_) => e,
                other => repair_error(format!(
                    "repairing {} from {}: {other}",
                    shared.topology.addr(node).unwrap_or_default(),
                    shared.topology.addr(source).unwrap_or_default()
                )),
            };
            let trust = match before {
                Trust::Unverified(why) => Trust::Unverified(why),
                _ => Trust::Unverified(Doubt::Unmarked),
            };
            let _ = tx.send(Msg::SetTrust { node, trust });
            Err(e)
        }
    }
}

/// The connections and names one repair works with.
struct Job<'a> {
    shared: &'a Shared,
    node: NodeId,
    addr: String,
    source_addr: String,
    /// The node and the source, in the data's database and the fleet's.
    node_data: Connection,
    node_meta: Connection,
    source_data: Connection,
    source_meta: Connection,
    /// The node's other peers, in the fleet's database (hints may be there
    /// too), those that answer.
    peers: Vec<(Connection, Connection)>,
    /// Whether the client had the source verified; if not, it may only give
    /// the node the keys the node missed.
    source_verified: bool,
}

fn repair_error(text: impl Into<String>) -> Error {
    Error::Repair(text.into())
}

impl<'a> Job<'a> {
    async fn open(shared: &'a Shared, node: NodeId, source: NodeId) -> Result<Job<'a>, Error> {
        let topology = &shared.topology;
        let addr_of = |n: NodeId| topology.addr(n).unwrap_or_default().to_owned();
        let connect = |addr: String, db: u32| {
            let mut options = shared.options.clone();
            options.database = db;
            options.healing = false;
            Connection::connect_with(addr, options)
        };
        let (data, meta) = (shared.options.database, shared.options.meta_database);
        let (addr, source_addr) = (addr_of(node), addr_of(source));
        let mut peers = Vec::new();
        if let Some((_, shard)) = topology.position(node) {
            for g in 0..topology.groups() {
                let Some(peer) = topology.node(GroupId(g), shard) else {
                    continue;
                };
                if peer == node || peer == source {
                    continue;
                }
                let peer_addr = addr_of(peer);
                // A peer that does not answer holds no hint we can use now;
                // clients that reach it later will find them.
                if let (Ok(d), Ok(m)) = (
                    connect(peer_addr.clone(), data).await,
                    connect(peer_addr, meta).await,
                ) {
                    peers.push((d, m));
                }
            }
        }
        Ok(Job {
            shared,
            node,
            node_data: connect(addr.clone(), data).await?,
            node_meta: connect(addr.clone(), meta).await?,
            source_data: connect(source_addr.clone(), data).await?,
            source_meta: connect(source_addr.clone(), meta).await?,
            addr,
            source_addr,
            peers,
            source_verified: true,
        })
    }

    fn hint_key(&self) -> String {
        route::hint_key(self.shared.options.database, &self.addr)
    }

    fn resync_key(&self) -> String {
        route::resync_key(self.shared.options.database, &self.addr)
    }

    /// Takes the repair lock on the source, waiting while another client
    /// holds it.
    async fn lock(&self, token: &Bytes) -> Result<(), Error> {
        let key = route::lock_key(&self.addr);
        let ms = LOCK_TTL.as_millis().to_string();
        let deadline = Instant::now() + self.shared.options.repair_timeout;
        loop {
            let set = self
                .source_meta
                .cmd([
                    &b"SET"[..],
                    key.as_bytes(),
                    token,
                    b"NX",
                    b"PX",
                    ms.as_bytes(),
                ])
                .await?;
            if !set.is_null() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(repair_error(format!(
                    "another client has been repairing {} for too long (lock {key} on {})",
                    self.addr, self.source_addr
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Keeps the lock alive through a long sync or many hints.
    async fn renew(&self) -> Result<(), Error> {
        let key = route::lock_key(&self.addr);
        let ms = LOCK_TTL.as_millis().to_string();
        self.source_meta
            .cmd(["PEXPIRE", key.as_str(), ms.as_str()])
            .await?;
        Ok(())
    }

    /// Lets the lock go if it is still ours.
    async fn unlock(&self, token: &Bytes) {
        let key = route::lock_key(&self.addr);
        if let Ok(Frame::Bulk(held)) = self.source_meta.cmd([&b"GET"[..], key.as_bytes()]).await
            && held == *token
        {
            let _ = self.source_meta.cmd([&b"DEL"[..], key.as_bytes()]).await;
        }
    }

    /// The node's `run_id`.
    async fn run_id(&self) -> Result<Bytes, Error> {
        let info = self.node_data.cmd(["INFO", "server"]).await?;
        info_field(&info, "run_id")
            .map(Bytes::from)
            .ok_or_else(|| repair_error(format!("{} sent no run_id in INFO", self.addr)))
    }

    /// What to do: a full copy, the hints, or nothing.
    async fn plan(&self, run_id: &Bytes) -> Result<RepairKind, Error> {
        let marker = self.node_meta.cmd(["GET", route::MARKER]).await?;
        if marker.as_bytes() != Some(run_id) {
            return Ok(RepairKind::Full);
        }
        let (hints, resync) = (self.hint_key(), self.resync_key());
        let mut total = 0u64;
        for meta in self.metas() {
            let [len, flag] = two(meta
                .pipeline([
                    vec![Bytes::from("LLEN"), Bytes::from(hints.clone())],
                    vec![Bytes::from("EXISTS"), Bytes::from(resync.clone())],
                ])
                .await)?;
            if flag == Frame::Integer(1) {
                return Ok(RepairKind::Full);
            }
            if let Frame::Integer(n) = len {
                total += n.max(0) as u64;
            }
        }
        Ok(match total {
            0 => RepairKind::Nothing,
            n if n > self.shared.options.hint_limit => RepairKind::Full,
            _ => RepairKind::Hints,
        })
    }

    /// The fleet-database connections of every peer that may hold hints:
    /// the source first.
    fn metas(&self) -> impl Iterator<Item = &Connection> {
        std::iter::once(&self.source_meta).chain(self.peers.iter().map(|(_, m)| m))
    }

    async fn repair(
        &mut self,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Result<(RepairKind, u64, u64), Error> {
        let run_id = self.run_id().await?;
        let kind = self.plan(&run_id).await?;
        if kind == RepairKind::Full && !self.source_verified {
            return Err(repair_error(format!(
                "{} needs a full copy, and its peer {} is not verified either (it missed writes too)",
                self.addr, self.source_addr
            )));
        }
        if kind == RepairKind::Full {
            let _ = tx.send(Msg::SetTrust {
                node: self.node,
                trust: Trust::Repairing,
            });
            self.full().await?;
            self.node_meta
                .cmd([&b"SET"[..], route::MARKER.as_bytes(), &run_id])
                .await?;
        }
        let (mut copied, mut deleted) = (0, 0);
        let hints = self.hint_key();
        for i in 0..=self.peers.len() {
            let (data, meta) = match i {
                0 => (&self.source_data, &self.source_meta),
                _ => (&self.peers[i - 1].0, &self.peers[i - 1].1),
            };
            let (c, d) = self.replay(data, meta, &hints).await?;
            copied += c;
            deleted += d;
        }
        let kind = match kind {
            RepairKind::Nothing if copied + deleted > 0 => RepairKind::Hints,
            kind => kind,
        };
        Ok((kind, copied, deleted))
    }

    /// The full copy by replication, and the promotion.
    async fn full(&self) -> Result<(), Error> {
        let options = &self.shared.options;
        let deadline = Instant::now() + options.repair_timeout;
        let (host, port) = self
            .source_addr
            .rsplit_once(':')
            .ok_or_else(|| repair_error(format!("{} is not HOST:PORT", self.source_addr)))?;
        if let Some(password) = &options.password {
            self.node_data
                .cmd(["CONFIG", "SET", "masterauth", password])
                .await?;
            if let Some(user) = &options.username {
                self.node_data
                    .cmd(["CONFIG", "SET", "masteruser", user])
                    .await?;
            }
        }
        // Redis waits `repl-diskless-sync-delay` (5 s) for more replicas
        // before a diskless sync: none are coming.
        let delay = match self
            .source_data
            .cmd(["CONFIG", "GET", "repl-diskless-sync-delay"])
            .await
        {
            Ok(Frame::Array(pair)) => pair.get(1).and_then(|v| v.as_bytes().cloned()),
            _ => None,
        };
        let quick = delay.as_ref().is_some_and(|d| &d[..] != b"0");
        if quick {
            let _ = self
                .source_data
                .cmd(["CONFIG", "SET", "repl-diskless-sync-delay", "0"])
                .await;
        }
        self.node_data.cmd(["REPLICAOF", host, port]).await?;
        tracing::debug!(addr = %self.addr, source = %self.source_addr, "repair: replicating");
        let result = self.sync_and_promote(deadline).await;
        if let (true, Some(delay)) = (quick, delay) {
            let _ = self
                .source_data
                .cmd([&b"CONFIG"[..], b"SET", b"repl-diskless-sync-delay", &delay])
                .await;
        }
        if result.is_err() {
            // Never leave the node a replica, nor the source paused.
            let _ = self.node_data.cmd(["REPLICAOF", "NO", "ONE"]).await;
            let _ = self.source_data.cmd(["CLIENT", "UNPAUSE"]).await;
        }
        result
    }

    async fn sync_and_promote(&self, deadline: Instant) -> Result<(), Error> {
        let options = &self.shared.options;
        // The full sync.
        let mut renewed = Instant::now();
        loop {
            if renewed.elapsed() >= Duration::from_secs(1) {
                self.renew().await?;
                renewed = Instant::now();
            }
            if let Err(e) = self.source_data.cmd(["PING"]).await {
                return Err(repair_error(format!(
                    "the source {} failed during the sync: {e}",
                    self.source_addr
                )));
            }
            let info = self
                .node_data
                .cmd(["INFO", "replication"])
                .await
                .map_err(|e| repair_error(format!("{} failed during the sync: {e}", self.addr)))?;
            let up = info_field(&info, "master_link_status").as_deref() == Some("up");
            let syncing = info_field(&info, "master_sync_in_progress").as_deref() == Some("1");
            if up && !syncing {
                break;
            }
            if Instant::now() >= deadline {
                return Err(repair_error(format!(
                    "{} did not finish its sync from {} within {:?}",
                    self.addr, self.source_addr, options.repair_timeout
                )));
            }
            tokio::time::sleep(POLL).await;
        }
        // The hints and the resync flag the source holds for the node now.
        // A write a client sent the node before this instant went to the
        // source too, at the same time; a hint left for it went before it
        // (the node skipped) or after it (the node refused it), on the same
        // connection as the write. So once one more timeout has passed,
        // every such write has landed on the source or failed (clients of
        // a fleet share their timeout), and the sync's stream up to the
        // pause below carries it: these hints can go. Writes the node took
        // before it became a replica (or in its life before the restart),
        // whose copy on the source was still on its way, are covered by the
        // same wait. Hints and flags left later stay, and are replayed.
        let (hints, resync) = (self.hint_key(), self.resync_key());
        let [covered, flagged] = two(self
            .source_meta
            .pipeline([
                vec![Bytes::from("LLEN"), Bytes::from(hints.clone())],
                vec![Bytes::from("GET"), Bytes::from(resync.clone())],
            ])
            .await)?;
        let settled = Instant::now() + settle_time(options.timeout);
        while Instant::now() < settled {
            self.renew().await?;
            tokio::time::sleep(
                settled
                    .saturating_duration_since(Instant::now())
                    .min(LOCK_TTL / 4),
            )
            .await;
        }
        self.renew().await?;
        // The catch-up, with the source's writes paused.
        let pause = options.repair_pause;
        let ms = pause.as_millis().max(1).to_string();
        self.source_data
            .cmd(["CLIENT", "PAUSE", ms.as_str(), "WRITE"])
            .await?;
        let paused_at = Instant::now();
        tracing::debug!(addr = %self.addr, source = %self.source_addr, "repair: synced, source paused");
        let info = self.source_data.cmd(["INFO", "replication"]).await?;
        let target: u64 = info_field(&info, "master_repl_offset")
            .and_then(|o| o.parse().ok())
            .ok_or_else(|| {
                repair_error(format!("{} sent no master_repl_offset", self.source_addr))
            })?;
        loop {
            let info = self.node_data.cmd(["INFO", "replication"]).await?;
            let offset: u64 = info_field(&info, "slave_repl_offset")
                .and_then(|o| o.parse().ok())
                .unwrap_or(0);
            if offset >= target {
                break;
            }
            if paused_at.elapsed() >= pause {
                return Err(repair_error(format!(
                    "{} did not catch up with {} (offset {offset} of {target}) within the {pause:?} pause",
                    self.addr, self.source_addr
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.node_data.cmd(["REPLICAOF", "NO", "ONE"]).await?;
        tracing::debug!(addr = %self.addr, %target, ?covered, "repair: caught up, promoted");
        // The node now holds the source's own bookkeeping: hints about
        // itself and the lock of its repair. They are not its.
        self.node_meta
            .cmd([
                "DEL",
                hints.as_str(),
                resync.as_str(),
                route::lock_key(&self.addr).as_str(),
            ])
            .await?;
        self.source_data.cmd(["CLIENT", "UNPAUSE"]).await?;
        tracing::debug!(addr = %self.addr, source = %self.source_addr, "repair: source unpaused");
        if let Frame::Integer(n) = covered
            && n > 0
        {
            let from = n.to_string();
            self.source_meta
                .cmd(["LTRIM", hints.as_str(), from.as_str(), "-1"])
                .await?;
        }
        if let Frame::Bulk(value) = flagged {
            self.clear_flag(&resync, &value).await?;
        }
        Ok(())
    }

    /// Deletes the source's resync flag for the node if it still holds
    /// `value`, the one read before the settling wait: a flag set since
    /// (each sets a value of its own) names writes the sync may not carry,
    /// and stays for the next repair.
    async fn clear_flag(&self, resync: &str, value: &Bytes) -> Result<(), Error> {
        let meta = &self.source_meta;
        meta.cmd(["WATCH", resync]).await?;
        let now = meta.cmd(["GET", resync]).await?;
        if now.as_bytes() != Some(value) {
            meta.cmd(["UNWATCH"]).await?;
            return Ok(());
        }
        meta.cmd(["MULTI"]).await?;
        meta.cmd(["DEL", resync]).await?;
        // A nil EXEC: the flag was set again in between, and stays.
        meta.cmd(["EXEC"]).await?;
        Ok(())
    }

    /// Copies the keys `meta`'s hint list names from `data` to the node,
    /// batch by batch, trimming the list as it goes.
    async fn replay(
        &self,
        data: &Connection,
        meta: &Connection,
        hints: &str,
    ) -> Result<(u64, u64), Error> {
        let (mut copied, mut deleted) = (0, 0);
        let last = (BATCH - 1).to_string();
        let mut all: Vec<Bytes> = Vec::new();
        loop {
            let entries = match meta.cmd(["LRANGE", hints, "0", last.as_str()]).await? {
                Frame::Array(items) => items,
                other => return Err(repair_error(format!("LRANGE {hints} answered {other:?}"))),
            };
            if entries.is_empty() {
                break;
            }
            self.renew().await?;
            let mut keys: Vec<Bytes> = entries
                .iter()
                .filter_map(|f| f.as_bytes().cloned())
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let (c, d) = self.copy(data, &keys).await?;
            copied += c;
            deleted += d;
            let from = entries.len().to_string();
            meta.cmd(["LTRIM", hints, from.as_str(), "-1"]).await?;
            all.extend(keys);
        }
        // Writes in flight when a key was read from the peer may reach the
        // node before the copy and the peer after it: once they have landed
        // (they take at most the timeout, or their writer leaves a hint),
        // copy again whatever still differs.
        all.sort_unstable();
        all.dedup();
        for _ in 0..3 {
            if all.is_empty() {
                break;
            }
            self.renew().await?;
            tokio::time::sleep(self.shared.options.timeout.min(LOCK_TTL / 2)).await;
            let mut differ = Vec::new();
            for chunk in all.chunks(BATCH) {
                differ.extend(self.differing(data, chunk).await?);
            }
            for chunk in differ.chunks(BATCH) {
                self.copy(data, chunk).await?;
            }
            all = differ;
        }
        Ok((copied, deleted))
    }

    /// Copies `keys` from `data` to the node: value and deadline, or
    /// deletion.
    ///
    /// The deadline is copied as the instant it is (`PEXPIRETIME`, then
    /// `RESTORE … ABSTTL`), as replication carries it: a time to live read
    /// on the peer and set on the node later would move it later by the
    /// time in between, seconds on a busy machine.
    async fn copy(&self, data: &Connection, keys: &[Bytes]) -> Result<(u64, u64), Error> {
        let reads = keys.iter().flat_map(|k| {
            [
                vec![Bytes::from_static(b"DUMP"), k.clone()],
                vec![Bytes::from_static(b"PEXPIRETIME"), k.clone()],
            ]
        });
        let answers = data.pipeline(reads).await;
        let mut writes = Vec::with_capacity(keys.len());
        let (mut copied, mut deleted) = (0, 0);
        for (key, pair) in keys.iter().zip(answers.chunks(2)) {
            let (dump, ttl) = match pair {
                [Ok(dump), Ok(ttl)] => (dump, ttl),
                [Err(e), _] | [_, Err(e)] => {
                    return Err(repair_error(format!(
                        "DUMP or PEXPIRETIME on the peer: {e}"
                    )));
                }
                _ => return Err(repair_error("a reply missing from the peer")),
            };
            match (dump, ttl) {
                (Frame::Bulk(payload), Frame::Integer(at)) if *at != -2 => {
                    let mut restore = vec![
                        Bytes::from_static(b"RESTORE"),
                        key.clone(),
                        Bytes::from((*at).max(0).to_string()),
                        payload.clone(),
                        Bytes::from_static(b"REPLACE"),
                    ];
                    // A deadline already past leaves the key deleted, as
                    // it is on the peer.
                    if *at > 0 {
                        restore.push(Bytes::from_static(b"ABSTTL"));
                    }
                    writes.push(restore);
                    copied += 1;
                }
                _ => {
                    writes.push(vec![Bytes::from_static(b"DEL"), key.clone()]);
                    deleted += 1;
                }
            }
        }
        for answer in self.node_data.pipeline(writes).await {
            if let Err(e) = answer {
                return Err(repair_error(format!("copying to {}: {e}", self.addr)));
            }
        }
        Ok((copied, deleted))
    }

    /// The keys whose `DUMP` differs between `data` and the node.
    async fn differing(&self, data: &Connection, keys: &[Bytes]) -> Result<Vec<Bytes>, Error> {
        let dumps = || {
            keys.iter()
                .map(|k| vec![Bytes::from_static(b"DUMP"), k.clone()])
        };
        let (theirs, ours) = tokio::join!(data.pipeline(dumps()), self.node_data.pipeline(dumps()));
        let mut differ = Vec::new();
        for ((key, a), b) in keys.iter().zip(theirs).zip(ours) {
            if a? != b? {
                differ.push(key.clone());
            }
        }
        Ok(differ)
    }
}

/// Two answers of a pipeline of two.
fn two(answers: Vec<Result<Frame, Error>>) -> Result<[Frame; 2], Error> {
    let mut it = answers.into_iter();
    match (it.next(), it.next()) {
        (Some(a), Some(b)) => Ok([a?, b?]),
        _ => Err(repair_error("a reply missing")),
    }
}

/// A field of an `INFO` reply.
pub(crate) fn info_field(info: &Frame, name: &str) -> Option<String> {
    let text = info.as_bytes()?;
    text.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_prefix(name.as_bytes())?.strip_prefix(b":")?;
        Some(String::from_utf8_lossy(line.trim_ascii()).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verified_peer_first_then_one_that_only_missed_writes() {
        let topology = route::Topology::new([["a"], ["b"], ["c"]]).unwrap();
        let (a, b, c) = (NodeId(0), NodeId(1), NodeId(2));
        let trusts = |tb: Option<Trust>, tc: Option<Trust>| {
            move |n: NodeId| {
                if n == b {
                    tb
                } else if n == c {
                    tc
                } else {
                    None
                }
            }
        };
        let missed = Some(Trust::Unverified(Doubt::Missed));
        let verified = Some(Trust::Verified);
        assert_eq!(pick_source(&topology, a, trusts(missed, verified)), Some(c));
        assert_eq!(pick_source(&topology, a, trusts(missed, None)), Some(b));
        let restarted = Some(Trust::Unverified(Doubt::Restarted));
        let repairing = Some(Trust::Repairing);
        assert_eq!(
            pick_source(&topology, a, trusts(restarted, repairing)),
            None
        );
        let hinted = Some(Trust::Unverified(Doubt::Hinted));
        assert_eq!(
            pick_source(&topology, a, trusts(restarted, hinted)),
            Some(c)
        );
    }

    #[test]
    fn info_fields() {
        let info = Frame::bulk(
            "# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nslave_repl_offset:42\r\nmaster_repl_offset:42\r\n",
        );
        assert_eq!(
            info_field(&info, "master_link_status").as_deref(),
            Some("up")
        );
        assert_eq!(
            info_field(&info, "slave_repl_offset").as_deref(),
            Some("42")
        );
        assert_eq!(info_field(&info, "master_repl"), None);
        assert_eq!(info_field(&Frame::Integer(1), "role"), None);
    }
}

//! The replica's side: following a master (REPLICAOF, `--replicaof`).
//!
//! A task keeps the link up: connect, the handshake Redis replicas make
//! (PING, AUTH with `masterauth`, REPLCONF listening-port and capa, PSYNC
//! with the history and offset this server has), then either `+CONTINUE`
//! or `+FULLRESYNC` and an RDB (sized `$<len>` or diskless `$EOF:<mark>`),
//! loaded in place of the whole dataset. After that, every command of the
//! stream runs as the master's client, silently, and the offset counts
//! its bytes; `REPLCONF ACK` goes back every second and on `GETACK`. A
//! broken link is retried every second with PSYNC, so a short break costs
//! a partial resync only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use resp::RequestDecoder;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use transport::Connection;

use super::{LinkStatus, MasterLink, Repl};
use crate::client::{Client, ClientInfo};
use crate::db::Shards;
use crate::rdb;
use crate::server::Shared;

/// Starts following `host:port`, dropping any other master and every
/// replica of this server.
///
/// `shards` is the caller's: inside EXEC it lends the transaction's locks
/// (every shard, as REPLICAOF works on the whole keyspace), and the link's
/// task, which cannot take a shard meanwhile, is not waited for.
pub(crate) fn follow(shared: &Shared, shards: &mut Shards<'_>, host: String, port: u16) {
    let Some(me) = shared.me.upgrade() else {
        return;
    };
    let cancel = CancellationToken::new();
    // No batch of an old link's stream is half applied meanwhile.
    let paused = shards.held().is_none().then(|| shared.repl.pause_apply());
    {
        let mut st = shared.repl.state();
        let old = st.master.take();
        if let Some(old) = &old {
            old.cancel.cancel();
        }
        // The database the stream stands in, kept for a link that
        // continues the same history.
        let db = old.map_or(st.resume_db, |o| o.db);
        for f in st.replicas.values_mut() {
            f.dropped = true;
        }
        // A replica keeps no backlog: a later promotion starts a fresh one
        // at the offset it reached.
        st.backlog = None;
        st.master = Some(MasterLink {
            host: host.clone(),
            port,
            status: LinkStatus::Connect,
            last_io: Instant::now(),
            cancel: cancel.clone(),
            db,
            synced: false,
            transfer: None,
        });
    }
    shared.repl.set_replica(true);
    shared.repl.data.notify_waiters();
    hide_expired(shards, true);
    drop(paused);
    tracing::info!("connecting to MASTER {host}:{port}");
    shared.shutdown.spawn(link(me, cancel));
}

/// REPLICAOF NO ONE: stops following and becomes a master whose history
/// continues the old master's, so its former siblings can continue with
/// a partial resync.
pub(crate) fn promote(shared: &Shared, shards: &mut Shards<'_>) {
    // The link's task stops between batches: nothing of the old stream
    // lands after this.
    let _paused = shards.held().is_none().then(|| shared.repl.pause_apply());
    let Some(link) = shared.repl.state().master.take() else {
        return;
    };
    link.cancel.cancel();
    shared.repl.state().resume_db = link.db;
    shared.repl.shift_replid();
    // Recording starts before clients may write.
    shared
        .repl
        .start_feeding(shards, shared.config_i64("repl-backlog-size"));
    shared.repl.set_replica(false);
    tracing::info!("MASTER MODE enabled");
}

/// A replica never deletes expired keys itself: it hides them from
/// clients and waits for its master's DEL. Stops recording writes too.
fn hide_expired(shards: &mut Shards<'_>, hide: bool) {
    let ks = shards.keyspace();
    let mut locked = shards.lock_all();
    for shard in locked.shards() {
        for db in &mut shard.dbs {
            db.hide_expired = hide;
        }
    }
    ks.set_feeding(false);
}

fn set_status(repl: &Repl, status: LinkStatus) {
    if let Some(m) = &mut repl.state().master {
        m.status = status;
        if status != LinkStatus::Sync {
            m.transfer = None;
        }
    }
}

/// Keeps the link to the master up until cancelled.
async fn link(shared: Arc<Shared>, cancel: CancellationToken) {
    loop {
        let Some((host, port)) = shared
            .repl
            .state()
            .master
            .as_ref()
            .map(|m| (m.host.clone(), m.port))
        else {
            return;
        };
        set_status(&shared.repl, LinkStatus::Connecting);
        let result = tokio::select! {
            r = session(&shared, &host, port, &cancel) => r,
            () = cancel.cancelled() => return,
            () = shared.shutdown.triggered() => return,
        };
        if let Err(e) = result {
            tracing::warn!("replication link with {host}:{port} broke: {e}");
        }
        set_status(&shared.repl, LinkStatus::Connect);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = cancel.cancelled() => return,
            () = shared.shutdown.triggered() => return,
        }
    }
}

type Link = Connection<TcpStream>;

/// The longest silence tolerated from the master (`repl-timeout`).
fn repl_timeout(shared: &Shared) -> Duration {
    Duration::from_secs(shared.config_i64("repl-timeout").max(1) as u64)
}

/// One connection to the master, from the handshake to the break.
async fn session(
    shared: &Shared,
    host: &str,
    port: u16,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let timeout = repl_timeout(shared);
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| "timeout connecting to the master".to_string())?
        .map_err(|e| format!("error connecting to the master: {e}"))?;
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().map_err(|e| e.to_string())?;
    let laddr = stream.local_addr().map_err(|e| e.to_string())?;
    let mut conn = Connection::new(stream);
    // PING: any reply but a timeout will do (-NOAUTH means AUTH comes next).
    command(&mut conn, &[b"PING"]).await?;
    let pong = line(&mut conn, timeout).await?;
    if pong.starts_with(b"-") && !pong.starts_with(b"-NOAUTH") && !pong.starts_with(b"-NOPERM") {
        return Err(format!(
            "error reply to PING from master: '{}'",
            String::from_utf8_lossy(&pong)
        ));
    }
    let pass = shared.config_get("masterauth");
    if !pass.is_empty() {
        let user = shared.config_get("masteruser");
        if user.is_empty() {
            command(&mut conn, &[b"AUTH", pass.as_bytes()]).await?;
        } else {
            command(&mut conn, &[b"AUTH", user.as_bytes(), pass.as_bytes()]).await?;
        }
        let ok = line(&mut conn, timeout).await?;
        if ok.starts_with(b"-") {
            return Err(format!(
                "unable to AUTH to MASTER: {}",
                String::from_utf8_lossy(&ok)
            ));
        }
    }
    let my_port = shared.port.to_string();
    command(
        &mut conn,
        &[b"REPLCONF", b"listening-port", my_port.as_bytes()],
    )
    .await?;
    line(&mut conn, timeout).await?;
    command(
        &mut conn,
        &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"],
    )
    .await?;
    line(&mut conn, timeout).await?;
    let (replid, offset) = {
        let st = shared.repl.state();
        (st.replid.clone(), st.offset)
    };
    let next = (offset + 1).to_string();
    command(&mut conn, &[b"PSYNC", replid.as_bytes(), next.as_bytes()]).await?;
    let reply = line(&mut conn, timeout).await?;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let mut words = reply.split(' ');
    match words.next() {
        Some("+FULLRESYNC") => {
            let (Some(id), Some(off)) = (words.next(), words.next().and_then(|o| o.parse().ok()))
            else {
                return Err(format!("bad FULLRESYNC reply: '{reply}'"));
            };
            full_resync(shared, &mut conn, id.to_string(), off, cancel).await?;
        }
        Some("+CONTINUE") => {
            let mut st = shared.repl.state();
            if let Some(id) = words.next().filter(|id| id.len() == 40 && *id != st.replid) {
                // The master's history forked from ours at our offset.
                st.replid2 = std::mem::replace(&mut st.replid, id.to_string());
                st.second_offset = st.offset + 1;
            }
            tracing::info!("successful partial resynchronization with master");
        }
        _ => return Err(format!("unexpected reply to PSYNC: '{reply}'")),
    }
    let db = {
        let mut st = shared.repl.state();
        let Some(m) = &mut st.master else {
            return Ok(());
        };
        m.status = LinkStatus::Connected;
        m.synced = true;
        m.last_io = Instant::now();
        m.db
    };
    tracing::info!("MASTER <-> REPLICA sync: finished with success");
    let info = ClientInfo::register(shared, peer, laddr);
    // Listed in CLIENT LIST until this function ends, however it ends
    // (cancellation included).
    let _listed = Listed {
        shared,
        id: info.id,
    };
    let mut master = Client::new(info.clone(), true);
    master.is_master = true;
    master.db = db;
    info.kind
        .store(crate::client::MASTER, std::sync::atomic::Ordering::Relaxed);
    apply_stream(shared, &mut conn, &mut master, cancel).await
}

/// Removes the master's client from the registry when dropped.
struct Listed<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        if let Ok(mut clients) = self.shared.clients.lock() {
            clients.remove(&self.id);
        }
    }
}

/// Sends one command.
async fn command(conn: &mut Link, args: &[&[u8]]) -> Result<(), String> {
    let mut out = Vec::new();
    store::keyspace::encode_into(&mut out, args.iter().copied());
    conn.write_buffer().extend_from_slice(&out);
    conn.flush()
        .await
        .map_err(|e| format!("write to master failed: {e}"))
}

/// Reads one reply line, skipping the empty lines a master sends to keep
/// the link alive while it prepares an RDB.
async fn line(conn: &mut Link, timeout: Duration) -> Result<Vec<u8>, String> {
    loop {
        if let Some(pos) = conn.read_buffer().iter().position(|&b| b == b'\n') {
            let raw = conn.read_buffer().split_to(pos + 1);
            let text = raw.strip_suffix(b"\n").unwrap_or(&raw);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.is_empty() {
                continue;
            }
            return Ok(text.to_vec());
        }
        if conn.read_buffer().len() > 64 * 1024 {
            return Err("reply line too long from master".into());
        }
        fill(conn, timeout).await?;
    }
}

/// Reads more from the master, within `timeout`.
async fn fill(conn: &mut Link, timeout: Duration) -> Result<usize, String> {
    match tokio::time::timeout(timeout, conn.fill_socket()).await {
        Err(_) => Err("timeout reading from master".into()),
        Ok(Ok(0)) => Err("connection closed by master".into()),
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(format!("read from master failed: {e}")),
    }
}

/// Receives the master's RDB and loads it in place of every database.
async fn full_resync(
    shared: &Shared,
    conn: &mut Link,
    replid: String,
    offset: i64,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let timeout = repl_timeout(shared);
    set_status(&shared.repl, LinkStatus::Sync);
    let header = line(conn, timeout).await?;
    let payload = if let Some(mark) = header.strip_prefix(b"$EOF:") {
        if mark.len() != 40 {
            return Err("bad EOF mark from master".into());
        }
        read_until_mark(shared, conn, mark, timeout).await?
    } else if let Some(len) = header.strip_prefix(b"$").and_then(resp::parse_int) {
        if len < 0 {
            return Err("bad RDB length from master".into());
        }
        read_exact(shared, conn, len as usize, timeout).await?
    } else {
        return Err(format!(
            "bad protocol from master, the first byte is not '$': '{}'",
            String::from_utf8_lossy(&header)
        ));
    };
    tracing::info!(
        "MASTER <-> REPLICA sync: receiving {} bytes of RDB done",
        payload.len()
    );
    let ks_shared = shared.me.upgrade().ok_or("server gone")?;
    let cancel = cancel.clone();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        let shared = &*ks_shared;
        let started = Instant::now();
        let mut loaded = rdb::read_with(&payload, shared.encodings.load_limits())
            .map_err(|e| format!("cannot load the master's RDB: {e}"))?;
        loaded.fit_sets(crate::cmd::sets::max_intset(shared));
        let parsed = started.elapsed();
        let stream_db = loaded.stream_db();
        // Installed as one step with the new history, and only if this
        // link still stands (REPLICAOF may have moved on meanwhile).
        let _paused = shared.repl.pause_apply();
        if cancel.is_cancelled() {
            return Err("the link was cancelled".into());
        }
        let mut shards = Shards::new(&shared.keyspace);
        let functions = std::mem::take(&mut loaded.functions);
        // With `replica-lazy-flush`, the old dataset is freed on the
        // lazy-free thread, as Redis's `emptyData` with EMPTYDB_ASYNC.
        let lazy = shared
            .lazyfree
            .replica_flush
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut taken = (Vec::new(), 0);
        rdb::install_taking(&mut shards, loaded, None, lazy.then_some(&mut taken))
            .map_err(|e| format!("cannot load the master's RDB: {e}"))?;
        shared.lazyfree.free_contents(taken.0, taken.1);
        // The master's libraries replace this server's, as in Redis.
        shared
            .scripts
            .functions
            .install(&shared.scripts.watch, &functions)
            .map_err(|e| format!("cannot load the master's RDB: {e}"))?;
        // The AOF restarts from the new dataset (Redis's
        // `restartAOFAfterSYNC`).
        crate::aof::restart_after_sync(shared, &mut shards);
        let mut st = shared.repl.state();
        Repl::reset_history(&mut st, replid, offset);
        if let Some(m) = &mut st.master {
            m.db = stream_db;
        }
        drop(st);
        tracing::info!(
            "MASTER <-> REPLICA sync: RDB parsed in {parsed:?}, loaded in {:?}",
            started.elapsed()
        );
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Reads a `$<len>` payload.
async fn read_exact(
    shared: &Shared,
    conn: &mut Link,
    len: usize,
    timeout: Duration,
) -> Result<BytesMut, String> {
    while conn.read_buffer().len() < len {
        let have = conn.read_buffer().len();
        conn.read_buffer()
            .reserve((len - have).min(16 * 1024 * 1024));
        fill(conn, timeout).await?;
        progress(shared, len as i64, conn.read_buffer().len().min(len) as i64);
    }
    Ok(conn.read_buffer().split_to(len))
}

/// Reads a diskless payload, which ends with the 40-byte `mark`.
async fn read_until_mark(
    shared: &Shared,
    conn: &mut Link,
    mark: &[u8],
    timeout: Duration,
) -> Result<BytesMut, String> {
    let mut data = BytesMut::new();
    loop {
        data.extend_from_slice(&conn.read_buffer().split());
        if data.ends_with(mark) {
            data.truncate(data.len() - mark.len());
            return Ok(data);
        }
        fill(conn, timeout).await?;
        progress(
            shared,
            -1,
            data.len() as i64 + conn.read_buffer().len() as i64,
        );
    }
}

fn progress(shared: &Shared, total: i64, read: i64) {
    if let Some(m) = &mut shared.repl.state().master {
        m.transfer = Some((total, read));
        m.last_io = Instant::now();
    }
}

/// Runs the master's stream until the link breaks.
///
/// The offset counts every byte read, but the one this replica reports
/// and saves (`committed`) stops short of a transaction still being
/// queued, as Redis's does: a replica that reconnects or restarts in the
/// middle of one asks for it again from its MULTI.
async fn apply_stream(
    shared: &Shared,
    conn: &mut Link,
    master: &mut Client,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let timeout = repl_timeout(shared);
    let mut decoder = RequestDecoder::new();
    decoder.set_authenticated(true);
    let mut limits = *decoder.limits();
    limits.max_bulk_len = u64::MAX / 2;
    decoder.set_limits(limits);
    let mut ack = tokio::time::interval(Duration::from_secs(1));
    let mut sink = transport::Output::new();
    let mut offset = shared.repl.state().offset;
    let mut committed = (offset, master.db);
    let mut last_io = Instant::now();
    let kill = master.info.kill.clone();
    loop {
        let paused = shared.repl.pause_apply();
        if cancel.is_cancelled() {
            return Err("the link was cancelled".into());
        }
        let mut failed = None;
        loop {
            let before = conn.read_buffer().len();
            let req = match decoder.decode(conn.read_buffer()) {
                Ok(Some(req)) => req,
                Ok(None) => break,
                Err(e) => {
                    failed = Some(format!("protocol error from master: {e}"));
                    break;
                }
            };
            let consumed = (before - conn.read_buffer().len()) as i64;
            if req.len() >= 2
                && req[0].eq_ignore_ascii_case(b"replconf")
                && req[1].eq_ignore_ascii_case(b"getack")
            {
                send_ack(conn, committed.0);
            } else if !req.is_empty() {
                master.clock = crate::server::Clock::new();
                let db = master.db;
                let after = crate::cmd::execute(shared, master, &mut sink, &req);
                // A replica's AOF is its master's stream, as it came.
                shared.repl.aof.append_replicated(db, &req);
                sink = transport::Output::new();
                forget_waits(shared, after);
            }
            offset = offset.saturating_add(consumed);
            if master.multi.is_none() {
                committed = (offset, master.db);
            }
        }
        master.stats.flush(&shared.stats);
        {
            let mut st = shared.repl.state();
            st.offset = committed.0;
            if let Some(m) = &mut st.master {
                m.last_io = last_io;
                m.db = committed.1;
            }
        }
        drop(paused);
        if let Some(e) = failed {
            return Err(e);
        }
        if !conn.write_buffer().is_empty() {
            conn.flush()
                .await
                .map_err(|e| format!("write to master failed: {e}"))?;
        }
        tokio::select! {
            read = conn.fill_socket() => match read {
                Ok(0) => return Err("connection closed by master".into()),
                Ok(_) => last_io = Instant::now(),
                Err(e) => return Err(format!("read from master failed: {e}")),
            },
            () = kill.cancelled() => return Err("killed".into()),
            () = cancel.cancelled() => return Err("the link was cancelled".into()),
            _ = ack.tick() => {
                if last_io.elapsed() > timeout {
                    return Err("timeout: no data from master".into());
                }
                send_ack(conn, committed.0);
            }
        }
    }
}

/// The master's client never waits: a blocking command it sent on an
/// empty list (Redis masters send none) is forgotten, not left to take
/// later pushes; WAIT and PSYNC from it are ignored.
fn forget_waits(shared: &Shared, after: crate::cmd::After) {
    if let crate::cmd::After::Block(blocked) = after {
        blocked.waiter.claim();
        crate::blocking::unregister(&shared.keyspace, &blocked.waiter);
    }
}

/// Queues `REPLCONF ACK <offset>`.
fn send_ack(conn: &mut Link, offset: i64) {
    let mut out = Vec::new();
    let offset = offset.to_string();
    store::keyspace::encode_into(
        &mut out,
        [&b"REPLCONF"[..], b"ACK", offset.as_bytes()].into_iter(),
    );
    conn.write_buffer().extend_from_slice(&out);
}

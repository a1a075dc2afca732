//! The master's side: a connection that sent PSYNC (or SYNC) becomes a
//! replica's link. It gets a partial resync from the backlog when its
//! history and offset allow, a full one otherwise (an RDB of a snapshot
//! taken under every shard lock, at a known offset), then the stream; its
//! `REPLCONF ACK`s are read on the way.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use resp::RequestDecoder;
use tokio::net::TcpStream;
use transport::Connection;

use super::{Follower, Repl};
use crate::client::{Client, Psync, WaitAcks};
use crate::db::Shards;
use crate::rdb;
use crate::server::Shared;
use store::keyspace::Op;

/// Serves a replica until its link breaks; returns why it ended.
pub(crate) async fn serve(
    shared: &Shared,
    conn: &mut Connection<TcpStream>,
    client: &mut Client,
    psync: Psync,
) -> String {
    let repl = &shared.repl;
    let id = client.id();
    let follower = Follower {
        ip: client.info.addr.ip(),
        port: client.repl_port,
        sent: 0,
        ack: 0,
        last_ack: Instant::now(),
        online: false,
        dropped: false,
        soft_since: None,
        kill: client.info.kill.clone(),
        written: 0,
        copied: 0,
    };
    if repl.is_replica() {
        return "this server became a replica".into();
    }
    repl.start_feeding(
        &mut Shards::new(&shared.keyspace),
        shared.config_i64("repl-backlog-size"),
    );
    let eof = client.repl_capa_eof;
    let mut decoder = RequestDecoder::new();
    let reason = match sync(shared, conn, psync, id, follower, eof, &mut decoder).await {
        Ok(()) => stream(shared, conn, client, &mut decoder).await,
        Err(e) => e,
    };
    repl.state().replicas.remove(&id);
    repl.acks.notify_waiters();
    tracing::info!(
        "connection with replica {} lost: {reason}",
        client.info.addr
    );
    reason
}

/// The resync: `+CONTINUE` and the missing bytes, or `+FULLRESYNC`, an RDB
/// and the stream from the snapshot's offset.
async fn sync(
    shared: &Shared,
    conn: &mut Connection<TcpStream>,
    psync: Psync,
    id: u64,
    mut follower: Follower,
    eof: bool,
    decoder: &mut RequestDecoder,
) -> Result<(), String> {
    let repl = &shared.repl;
    // Checked and registered under one lock, so the bytes it needs cannot be
    // trimmed in between.
    let continued = {
        let mut st = repl.state();
        if !psync.old && Repl::can_continue(&st, &psync.replid, psync.offset) {
            follower.sent = psync.offset - 1;
            follower.written = psync.offset - 1;
            follower.ack = psync.offset - 1;
            follower.online = true;
            st.replicas.insert(id, follower);
            Ok(format!("+CONTINUE {}\r\n", st.replid))
        } else {
            Err(follower)
        }
    };
    let follower = match continued {
        Ok(line) => {
            repl.sync_partial_ok.fetch_add(1, Relaxed);
            tracing::info!(
                "partial resynchronization accepted from offset {}",
                psync.offset
            );
            conn.write_buffer().extend_from_slice(line.as_bytes());
            return conn.flush().await.map_err(|e| e.to_string());
        }
        Err(follower) => follower,
    };
    if psync.replid != "?" && !psync.old {
        repl.sync_partial_err.fetch_add(1, Relaxed);
    }
    // The snapshot's instant and the offset it stands at are fixed under
    // every shard lock: the stream from that offset holds exactly the later
    // writes. The RDB is encoded on a blocking thread as the shards are
    // read, and sent as it comes: in Redis's diskless form, ended by a
    // random mark, to a replica that reads it (`capa eof`), else whole
    // after a `$<length>` header.
    let started = Instant::now();
    let me = shared.me.upgrade().ok_or("server gone")?;
    let (start_tx, start_rx) = tokio::sync::oneshot::channel();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(64);
    let encoder = tokio::task::spawn_blocking(move || {
        let repl = &me.repl;
        let mut shards = Shards::new(&me.keyspace);
        let saved = rdb::stream_snapshot(
            &mut shards,
            || {
                let (replid, offset) = repl.begin_full_sync(id, follower);
                let _ = start_tx.send((replid.clone(), offset));
                let aux = rdb::Aux {
                    repl_id: Some(replid),
                    repl_offset: Some(offset),
                    repl_stream_db: Some(0),
                    aof_base: false,
                    // Under every shard lock and before the stream's
                    // offset: a FUNCTION LOAD is either here or after it.
                    functions: me.scripts.functions.codes(),
                };
                ((), aux)
            },
            |bytes| {
                tx.blocking_send(bytes.into())
                    .map_err(|_| std::io::Error::other("the replica's link closed"))
            },
        );
        // This thread may idle for a while before it exits.
        store::rdb::lzf::release_table();
        saved
    });
    let (replid, offset) = start_rx
        .await
        .map_err(|_| "the snapshot failed".to_string())?;
    tracing::info!("full resync requested by a replica, at offset {offset}");
    if !psync.old {
        conn.write_buffer()
            .extend_from_slice(format!("+FULLRESYNC {replid} {offset}\r\n").as_bytes());
    }
    let timeout = Duration::from_secs(shared.config_i64("repl-timeout").max(1) as u64);
    let mark = super::new_replid();
    let mut total = 0usize;
    if eof {
        conn.write_buffer()
            .extend_from_slice(format!("$EOF:{mark}\r\n").as_bytes());
        while let Some(chunk) = rx.recv().await {
            total += chunk.len();
            conn.write_buffer().put_shared(chunk);
            send(shared, conn, timeout).await?;
        }
        conn.write_buffer().extend_from_slice(mark.as_bytes());
    } else {
        let mut payload = Vec::new();
        while let Some(chunk) = rx.recv().await {
            payload.extend_from_slice(&chunk);
        }
        total = payload.len();
        conn.write_buffer()
            .extend_from_slice(format!("${}\r\n", payload.len()).as_bytes());
        conn.write_buffer().put_shared(payload.into());
    }
    encoder
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot write the RDB: {e}"))?;
    send(shared, conn, timeout).await?;
    tracing::info!("RDB of {total} bytes sent in {:?}", started.elapsed());
    if eof {
        // A replica finds the end of a diskless payload by its last bytes:
        // nothing more may follow until it has loaded it and says so with
        // its first acknowledgement (Redis waits for it too).
        let first_ack = async {
            loop {
                match conn.fill_socket().await {
                    Ok(0) => return Err("closed by the replica".to_string()),
                    Ok(_) => {
                        read_acks(repl, id, decoder, conn)?;
                        let acked = repl
                            .state()
                            .replicas
                            .get(&id)
                            .is_some_and(|f| f.last_ack >= started);
                        if acked {
                            return Ok(());
                        }
                    }
                    Err(e) => return Err(format!("read failed: {e}")),
                }
            }
        };
        tokio::select! {
            done = tokio::time::timeout(timeout, first_ack) => {
                done.map_err(|_| "timeout waiting for the replica to load the RDB".to_string())??;
            }
            () = shared.shutdown.triggered() => return Err("server shutdown".into()),
        }
    }
    if let Some(f) = repl.state().replicas.get_mut(&id) {
        f.online = true;
        f.last_ack = Instant::now();
    }
    repl.sync_full.fetch_add(1, Relaxed);
    tracing::info!(
        "synchronization with replica succeeded in {:?}",
        started.elapsed()
    );
    Ok(())
}

/// Sends what is buffered, within `timeout`, unless the server stops.
async fn send(
    shared: &Shared,
    conn: &mut Connection<TcpStream>,
    timeout: Duration,
) -> Result<(), String> {
    tokio::select! {
        done = tokio::time::timeout(timeout, conn.flush()) => match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timeout sending the RDB to the replica".into()),
        },
        () = shared.shutdown.triggered() => Err("server shutdown".into()),
    }
}

/// Sends the stream as it grows and reads the replica's acknowledgements.
/// A replica that neither reads nor acknowledges for `repl-timeout`
/// seconds is disconnected, as Redis does.
async fn stream(
    shared: &Shared,
    conn: &mut Connection<TcpStream>,
    client: &mut Client,
    decoder: &mut RequestDecoder,
) -> String {
    let repl = &shared.repl;
    let id = client.id();
    let kill = client.info.kill.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let timeout = Duration::from_secs(shared.config_i64("repl-timeout").max(1) as u64);
        if kill.is_cancelled() {
            return "killed".into();
        }
        if shared.shutdown.is_triggered() {
            return "server shutdown".into();
        }
        let notified = repl.data.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some((chunks, end)) = repl.take_for(id) else {
            return "the replica fell too far behind".into();
        };
        if !chunks.is_empty() {
            for chunk in chunks {
                conn.write_buffer().put_shared(chunk);
            }
            tokio::select! {
                done = tokio::time::timeout(timeout, conn.flush()) => match done {
                    Ok(Ok(())) => repl.written(id, end),
                    Ok(Err(e)) => return format!("write failed: {e}"),
                    Err(_) => return "timeout writing to the replica".into(),
                },
                () = kill.cancelled() => return "killed, or too far behind".into(),
            }
            // Acknowledgements that arrived meanwhile, without waiting.
            if let Ok(read) = tokio::time::timeout(Duration::ZERO, conn.fill_socket()).await {
                match read {
                    Ok(0) => return "closed by the replica".into(),
                    Ok(_) => {
                        if let Err(e) = read_acks(repl, id, decoder, conn) {
                            return e;
                        }
                    }
                    Err(e) => return format!("read failed: {e}"),
                }
            }
            continue;
        }
        tokio::select! {
            () = &mut notified => {}
            read = conn.fill_socket() => match read {
                Ok(0) => return "closed by the replica".into(),
                Ok(_) => {
                    if let Err(e) = read_acks(repl, id, decoder, conn) {
                        return e;
                    }
                }
                Err(e) => return format!("read failed: {e}"),
            },
            _ = tick.tick() => {
                let silent = repl
                    .state()
                    .replicas
                    .get(&id)
                    .is_none_or(|f| f.last_ack.elapsed() > timeout);
                if silent {
                    return "timeout: no acknowledgement from the replica".into();
                }
            }
            () = kill.cancelled() => return "killed".into(),
            () = shared.shutdown.triggered() => return "server shutdown".into(),
        }
    }
}

/// Handles what a replica sent: `REPLCONF ACK <offset>` (anything else is
/// ignored, as Redis does on a replica's link).
fn read_acks(
    repl: &Repl,
    id: u64,
    decoder: &mut RequestDecoder,
    conn: &mut Connection<TcpStream>,
) -> Result<(), String> {
    loop {
        match decoder.decode(conn.read_buffer()) {
            Ok(Some(req)) => {
                let is_ack = req.len() >= 3
                    && req[0].eq_ignore_ascii_case(b"replconf")
                    && req[1].eq_ignore_ascii_case(b"ack");
                if let Some(offset) = is_ack.then(|| resp::parse_int(&req[2])).flatten() {
                    if let Some(f) = repl.state().replicas.get_mut(&id) {
                        f.ack = f.ack.max(offset);
                        f.last_ack = Instant::now();
                    }
                    repl.acks.notify_waiters();
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("protocol error from the replica: {e}")),
        }
    }
}

/// WAIT: asks the replicas for their offsets and waits until `numreplicas`
/// reached `target`, or the deadline; returns how many did.
pub(crate) async fn wait_acks(shared: &Shared, wait: WaitAcks, kill: &crate::kill::Kill) -> usize {
    let repl = &shared.repl;
    // Not while clients are paused, as Redis: it would move the offsets a
    // failover waits to see equal. Replicas acknowledge every second
    // anyway.
    if !shared.pause.active(crate::server::now_ms()) {
        repl.append(vec![Op::new(None, &["REPLCONF", "GETACK", "*"])]);
    }
    let sleep = async {
        match wait.deadline {
            Some(at) => {
                let ms = (at - crate::server::now_ms()).max(0) as u64;
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    loop {
        let notified = repl.acks.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let acked = repl.acked(wait.target);
        if acked >= wait.numreplicas {
            return acked;
        }
        tokio::select! {
            () = &mut notified => {}
            () = &mut sleep => return repl.acked(wait.target),
            () = shared.shutdown.triggered() => return acked,
            () = kill.cancelled() => return acked,
        }
    }
}

/// Sends PING to replicas every `repl-ping-replica-period` seconds, so they
/// can tell a quiet master from a dead link.
pub(crate) async fn ping_replicas(shared: std::sync::Arc<Shared>) {
    let mut last = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.shutdown.triggered() => return,
        }
        let period = shared.config_i64("repl-ping-replica-period").max(1) as u64;
        if last.elapsed() < Duration::from_secs(period) {
            continue;
        }
        last = Instant::now();
        let any = !shared.repl.state().replicas.is_empty();
        if any && !shared.repl.read_only() {
            shared.repl.append(vec![Op::new(None, &["PING"])]);
        }
    }
}

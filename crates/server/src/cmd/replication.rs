//! Replication commands: REPLICAOF (SLAVEOF), REPLCONF, PSYNC, SYNC,
//! WAIT, ROLE. The work happens in `crate::repl`; these parse and answer.

use resp::Request;

use super::{CmdError, CmdResult, Ctx};
use crate::args::parse_i64;
use crate::client::{Psync, WaitAcks};
use crate::repl::{self, LinkStatus};

pub(super) fn replicaof(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let (host, port) = (&req[1], &req[2]);
    if host.eq_ignore_ascii_case(b"no") && port.eq_ignore_ascii_case(b"one") {
        repl::replica::promote(ctx.shared, &mut ctx.shards);
        ctx.reply.ok();
        return Ok(());
    }
    let port = parse_i64(port)?;
    let port = u16::try_from(port).map_err(|_| CmdError::other("ERR Invalid master port"))?;
    let host = String::from_utf8_lossy(host).into_owned();
    {
        let st = ctx.shared.repl.state();
        if let Some(m) = &st.master
            && m.host.eq_ignore_ascii_case(&host)
            && m.port == port
        {
            drop(st);
            ctx.reply.simple("OK Already connected to specified master");
            return Ok(());
        }
    }
    repl::replica::follow(ctx.shared, &mut ctx.shards, host, port);
    ctx.reply.ok();
    Ok(())
}

pub(super) fn replconf(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    if req.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let mut i = 1;
    while i + 1 < req.len() {
        let (opt, value) = (&req[i], &req[i + 1]);
        let lower = opt.to_ascii_lowercase();
        match &lower[..] {
            b"listening-port" => {
                let port = parse_i64(value)?;
                ctx.client.repl_port = u16::try_from(port).unwrap_or(0);
            }
            b"capa" => {
                if value.eq_ignore_ascii_case(b"eof") {
                    ctx.client.repl_capa_eof = true;
                }
            }
            b"ip-address" | b"rdb-only" | b"rdb-filter-only" => {}
            // Acknowledgements arrive on the replica's link, which reads
            // them itself; from anyone else they are ignored, unanswered.
            b"ack" | b"fack" => return Ok(()),
            b"getack" => {
                // A master asks its replicas; a client asking gets nothing.
                return Ok(());
            }
            _ => {
                return Err(CmdError::other(format!(
                    "ERR Unrecognized REPLCONF option: {}",
                    String::from_utf8_lossy(opt)
                )));
            }
        }
        i += 2;
    }
    ctx.reply.ok();
    Ok(())
}

pub(super) fn psync(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let offset = parse_i64(&req[2]).unwrap_or(-1);
    start_sync(
        ctx,
        String::from_utf8_lossy(&req[1]).into_owned(),
        offset,
        false,
    )
}

pub(super) fn sync(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    start_sync(ctx, "?".into(), -1, true)
}

fn start_sync(ctx: &mut Ctx<'_>, replid: String, offset: i64, old: bool) -> CmdResult {
    if ctx.shared.repl.is_replica() {
        return Err(CmdError::other(
            "ERR Ember replicas do not serve replicas of their own (chained replication is not supported)",
        ));
    }
    if ctx.next.is_some() {
        return Ok(());
    }
    ctx.next = Some(super::Next::Replica(Psync {
        replid,
        offset,
        old,
    }));
    Ok(())
}

pub(super) fn wait(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    if ctx.shared.repl.is_replica() {
        return Err(CmdError::other(
            "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
        ));
    }
    let numreplicas = parse_i64(&req[1])?;
    let timeout = parse_i64(&req[2])
        .map_err(|_| CmdError::other("ERR timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(CmdError::other("ERR timeout is negative"));
    }
    // Redis's `woff`: the stream offset of this client's last write.
    let target = ctx.client.woff;
    let acked = ctx.shared.repl.acked(target);
    if acked as i64 >= numreplicas || ctx.client.in_exec {
        ctx.reply.int(acked as i64);
        return Ok(());
    }
    ctx.next = Some(super::Next::Wait(WaitAcks {
        target,
        numreplicas: numreplicas.max(0) as usize,
        deadline: (timeout > 0).then(|| ctx.now.saturating_add(timeout)),
    }));
    Ok(())
}

pub(super) fn role(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    let st = ctx.shared.repl.state();
    match &st.master {
        Some(m) => {
            ctx.reply.array(5);
            ctx.reply.bulk(b"slave");
            ctx.reply.bulk(m.host.as_bytes());
            ctx.reply.int(i64::from(m.port));
            ctx.reply.bulk(m.status.name().as_bytes());
            // Redis shows the offset only while the link is up: a replica
            // whose master died says `connect -1`.
            let up = m.synced && m.status == LinkStatus::Connected;
            let offset = if up { st.offset } else { -1 };
            ctx.reply.int(offset);
        }
        None => {
            let online: Vec<_> = st.replicas.values().filter(|f| f.online).collect();
            ctx.reply.array(3);
            ctx.reply.bulk(b"master");
            ctx.reply.int(st.offset);
            ctx.reply.array(online.len());
            for f in online {
                ctx.reply.array(3);
                ctx.reply.bulk(f.ip.to_string().as_bytes());
                ctx.reply.bulk(f.port.to_string().as_bytes());
                ctx.reply.bulk(f.ack.to_string().as_bytes());
            }
        }
    }
    Ok(())
}

/// INFO's replication section.
pub(super) fn info(ctx: &Ctx<'_>, w: &mut dyn FnMut(String)) {
    let st = ctx.shared.repl.state();
    w("# Replication".into());
    match &st.master {
        Some(m) => {
            w("role:slave".into());
            w(format!("master_host:{}", m.host));
            w(format!("master_port:{}", m.port));
            let up = m.status == LinkStatus::Connected;
            w(format!(
                "master_link_status:{}",
                if up { "up" } else { "down" }
            ));
            let io = if m.synced {
                m.last_io.elapsed().as_secs() as i64
            } else {
                -1
            };
            w(format!("master_last_io_seconds_ago:{io}"));
            w(format!(
                "master_sync_in_progress:{}",
                i32::from(m.status == LinkStatus::Sync)
            ));
            w(format!("slave_read_repl_offset:{}", st.offset));
            w(format!("slave_repl_offset:{}", st.offset));
            if let Some((size, read)) = m.transfer {
                w(format!("master_sync_total_bytes:{size}"));
                w(format!("master_sync_read_bytes:{read}"));
                w(format!("master_sync_left_bytes:{}", (size - read).max(0)));
            }
            w("slave_priority:100".into());
            w("slave_read_only:1".into());
            w("replica_announced:1".into());
        }
        None => w("role:master".into()),
    }
    let live: Vec<_> = st.replicas.values().filter(|f| !f.dropped).collect();
    w(format!("connected_slaves:{}", live.len()));
    for (i, f) in live.iter().enumerate() {
        let state = if f.online { "online" } else { "wait_bgsave" };
        w(format!(
            "slave{i}:ip={},port={},state={state},offset={},lag={}",
            f.ip,
            f.port,
            f.ack,
            f.last_ack.elapsed().as_secs()
        ));
    }
    w("master_failover_state:no-failover".into());
    w(format!("master_replid:{}", st.replid));
    w(format!("master_replid2:{}", st.replid2));
    w(format!("master_repl_offset:{}", st.offset));
    w(format!("second_repl_offset:{}", st.second_offset));
    match repl::Repl::backlog_info(&st) {
        Some((size, first, histlen)) => {
            w("repl_backlog_active:1".into());
            w(format!("repl_backlog_size:{size}"));
            w(format!("repl_backlog_first_byte_offset:{first}"));
            w(format!("repl_backlog_histlen:{histlen}"));
        }
        None => {
            w("repl_backlog_active:0".into());
            w(format!(
                "repl_backlog_size:{}",
                ctx.shared.config_i64("repl-backlog-size")
            ));
            w("repl_backlog_first_byte_offset:0".into());
            w("repl_backlog_histlen:0".into());
        }
    }
}

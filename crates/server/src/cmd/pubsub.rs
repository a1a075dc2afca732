//! Pub/sub commands: SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE
//! SSUBSCRIBE SUNSUBSCRIBE PUBLISH SPUBLISH PUBSUB, and PING and RESET as a
//! subscriber sees them. The registry and delivery are in
//! [`crate::pubsub`].

use resp::{Protocol, Request};

use super::keys::unknown_subcommand;
use super::{CmdError, CmdResult, Ctx};
use crate::args::eq;
use crate::pubsub::{Kind, push_header};
use crate::reply::Reply;
use store::keyspace::Op;

/// Redis's refusal of a command other than (P|S)SUBSCRIBE,
/// (P|S)UNSUBSCRIBE, PING, QUIT and RESET from a RESP2 client with a
/// subscription; `None` if it may run. `name` is the command's full name
/// (`client|list`).
pub(crate) fn refused_in_subscriber_mode(
    client: &crate::client::Client,
    cmd: &super::Command,
    req: &Request,
) -> Option<Vec<u8>> {
    if client.proto != Protocol::Resp2 || !client.info.pubsub.active() {
        return None;
    }
    let allowed = [
        "ping",
        "subscribe",
        "ssubscribe",
        "unsubscribe",
        "sunsubscribe",
        "psubscribe",
        "punsubscribe",
        "quit",
        "reset",
    ];
    if allowed.contains(&cmd.name) {
        return None;
    }
    let mut name = cmd.name.to_string();
    if cmd.flags & super::CONTAINER != 0
        && let Some(sub) = req.get(1)
    {
        name.push('|');
        name.push_str(&String::from_utf8_lossy(sub).to_ascii_lowercase());
    }
    Some(
        format!(
            "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        )
        .into_bytes(),
    )
}

/// Where pushes go: the output, or, while CLIENT REPLY silences the
/// command's replies, the pushes kept apart from them.
fn pushes<'c>(ctx: &'c mut Ctx<'_>) -> Reply<'c> {
    let proto = ctx.reply.proto;
    let out = match &mut ctx.client.replies.pushes {
        Some(pushes) => pushes,
        None => &mut *ctx.reply.out,
    };
    Reply { out, proto }
}

/// One (un)subscribe confirmation: `kind name count`, the name a null
/// when an unsubscribe from everything found nothing.
fn confirm(ctx: &mut Ctx<'_>, what: &str, name: Option<&[u8]>, count: usize) {
    let mut push = pushes(ctx);
    push_header(push.out, push.proto, 3);
    push.bulk(what.as_bytes());
    match name {
        Some(name) => push.bulk(name),
        None => push.null(),
    }
    push.int(count as i64);
}

/// Messages published to this client before the command are sent before
/// its reply, as Redis has them in the output buffer already.
fn deliver_queued(ctx: &mut Ctx<'_>) {
    let sub = ctx.client.info.pubsub.clone();
    let push = pushes(ctx);
    sub.drain(push.out, push.proto);
}

fn subscribe_to(ctx: &mut Ctx<'_>, req: &Request, kind: Kind, what: &str) -> CmdResult {
    deliver_queued(ctx);
    let sub = ctx.client.info.pubsub.clone();
    for name in req.iter().skip(1) {
        let count = ctx.shared.pubsub.subscribe(&sub, kind, name);
        confirm(ctx, what, Some(name), count);
    }
    Ok(())
}

fn unsubscribe_from(ctx: &mut Ctx<'_>, req: &Request, kind: Kind, what: &str) -> CmdResult {
    deliver_queued(ctx);
    let sub = ctx.client.info.pubsub.clone();
    let hub = &ctx.shared.pubsub;
    if req.len() > 1 {
        for name in req.iter().skip(1) {
            let count = hub.unsubscribe(&sub, kind, name);
            confirm(ctx, what, Some(name), count);
        }
        return Ok(());
    }
    let names = sub.names(kind);
    if names.is_empty() {
        let count = hub.unsubscribe(&sub, kind, b"");
        confirm(ctx, what, None, count);
    }
    for name in names {
        let count = hub.unsubscribe(&sub, kind, &name);
        confirm(ctx, what, Some(&name), count);
    }
    Ok(())
}

pub(super) fn subscribe(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    subscribe_to(ctx, req, Kind::Channel, "subscribe")
}

pub(super) fn psubscribe(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    subscribe_to(ctx, req, Kind::Pattern, "psubscribe")
}

pub(super) fn ssubscribe(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    // Redis refuses it to a client that may not block, which a transaction
    // is while EXEC runs it (SUBSCRIBE and PSUBSCRIBE are let through there
    // for old clients' sake).
    if ctx.client.in_exec {
        return Err(CmdError::other(
            "ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client",
        ));
    }
    subscribe_to(ctx, req, Kind::Shard, "ssubscribe")
}

pub(super) fn unsubscribe(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    unsubscribe_from(ctx, req, Kind::Channel, "unsubscribe")
}

pub(super) fn punsubscribe(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    unsubscribe_from(ctx, req, Kind::Pattern, "punsubscribe")
}

pub(super) fn sunsubscribe(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    unsubscribe_from(ctx, req, Kind::Shard, "sunsubscribe")
}

fn publish_to(ctx: &mut Ctx<'_>, req: &Request, shard: bool) -> CmdResult {
    // The message is framed once from the request's own bytes.
    let receivers = ctx.shared.pubsub.publish(shard, &req[1], &req[2]);
    ctx.client.published_to = ctx.client.published_to.max(receivers);
    propagate(ctx, req);
    // A client publishing to itself sees the message before the count, as
    // in Redis.
    deliver_queued(ctx);
    ctx.reply.int(receivers as i64);
    Ok(())
}

/// PUBLISH and SPUBLISH reach replicas, whose subscribers receive them
/// too. Inside a recording transaction they take their place among its
/// writes; otherwise they go to the stream at once, and only while
/// replicas are fed, so a server without replicas takes no stream lock to
/// publish. The master's own stream reaches sub-replicas as it came.
fn propagate(ctx: &mut Ctx<'_>, req: &Request) {
    if ctx.client.is_master {
        return;
    }
    // The command is encoded for the stream only when something takes it.
    let op = || Op::from_iter(Some(ctx.client.db), req.iter());
    if ctx.shards.effects().recording() {
        ctx.shards.effects().rewrite(vec![op()]);
    } else if ctx.shared.keyspace.feeding() {
        ctx.shared.repl.append(vec![op()]);
    }
}

pub(super) fn publish(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    publish_to(ctx, req, false)
}

pub(super) fn spublish(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    publish_to(ctx, req, true)
}

/// PING: in RESP2 with a subscription, `pong` and the message (empty by
/// default) as an array, as Redis answers there.
pub(super) fn ping(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    if ctx.client.proto == Protocol::Resp2 && ctx.client.info.pubsub.active() && req.len() <= 2 {
        ctx.reply.array(2);
        ctx.reply.bulk(b"pong");
        ctx.reply.bulk(req.get(1).unwrap_or_default());
        return Ok(());
    }
    super::connection::ping(ctx, req)
}

/// RESET also leaves every subscription, without a word, and turns
/// replies back on (CLIENT REPLY), as Redis does.
pub(super) fn reset(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    ctx.shared.pubsub.leave(&ctx.client.info.pubsub);
    // And tracking.
    if ctx.client.tracking.take().is_some() {
        ctx.shared.tracking.disable(ctx.shared, ctx.client.id());
    }
    super::client_reply::reset(ctx.client);
    super::connection::reset(ctx, req)
}

pub(super) fn pubsub(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let sub = &req[1];
    let argc = req.len();
    let hub = &ctx.shared.pubsub;
    if eq(sub, "help") {
        let lines = [
            "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
            "HELP",
            "    Prints this help.",
        ];
        ctx.reply.array(lines.len());
        for line in lines {
            ctx.reply.simple(line);
        }
    } else if (eq(sub, "channels") || eq(sub, "shardchannels")) && argc <= 3 {
        let names = hub.channels(eq(sub, "shardchannels"), req.get(2));
        ctx.reply.array(names.len());
        for name in names {
            ctx.reply.bulk(&name);
        }
    } else if eq(sub, "numsub") || eq(sub, "shardnumsub") {
        let shard = eq(sub, "shardnumsub");
        ctx.reply.array((argc - 2) * 2);
        for channel in req.iter().skip(2) {
            let n = hub.subscribers(shard, channel);
            ctx.reply.bulk(channel);
            ctx.reply.int(n as i64);
        }
    } else if eq(sub, "numpat") && argc == 2 {
        let n = hub.pattern_count();
        ctx.reply.int(n as i64);
    } else if eq(sub, "channels") || eq(sub, "shardchannels") {
        // Redis's `addReplySubcommandSyntaxError`.
        return Err(CmdError::other(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
            String::from_utf8_lossy(&sub[..sub.len().min(128)]),
            String::from_utf8_lossy(&req[0]).to_ascii_uppercase()
        )));
    } else {
        return Err(unknown_subcommand(&req[0], sub));
    }
    Ok(())
}

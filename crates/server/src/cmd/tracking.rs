//! CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO (client-side
//! caching; the state and the invalidations are in `crate::tracking`).

use std::collections::BTreeSet;

use bytes::Bytes;
use resp::Request;

use super::{CmdError, CmdResult, Ctx};
use crate::args::eq;
use crate::tracking::Mode;

/// The tracking subcommands of CLIENT; the others go on to their handler.
pub(super) fn client(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let sub = &req[1];
    if eq(sub, "tracking") && req.len() >= 3 {
        tracking(ctx, req)
    } else if eq(sub, "caching") && req.len() >= 3 {
        caching(ctx, req)
    } else if eq(sub, "getredir") && req.len() == 2 {
        let redirect = ctx
            .client
            .tracking
            .as_ref()
            .map_or(-1, |m| m.redirect as i64);
        ctx.reply.int(redirect);
        Ok(())
    } else if eq(sub, "trackinginfo") && req.len() == 2 {
        trackinginfo(ctx);
        Ok(())
    } else {
        super::connection::client(ctx, req)
    }
}

fn err(text: &str) -> CmdError {
    CmdError::other(format!("ERR {text}"))
}

/// Whether two prefixes would both match some key.
fn overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn tracking(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let mut mode = Mode::default();
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut j = 3;
    while j < req.len() {
        let opt = &req[j];
        let more = j + 1 < req.len();
        if eq(opt, "redirect") && more {
            j += 1;
            if mode.redirect != 0 {
                return Err(err("A client can only redirect to a single other client"));
            }
            let id = resp::parse_int(&req[j]).ok_or(CmdError::NotInteger)?;
            let exists = ctx
                .shared
                .clients
                .lock()
                .is_ok_and(|c| c.contains_key(&(id as u64)));
            if !exists {
                return Err(err("The client ID you want redirect to does not exist"));
            }
            mode.redirect = id as u64;
        } else if eq(opt, "bcast") {
            mode.bcast = true;
        } else if eq(opt, "optin") {
            mode.optin = true;
        } else if eq(opt, "optout") {
            mode.optout = true;
        } else if eq(opt, "noloop") {
            mode.noloop = true;
        } else if eq(opt, "prefix") && more {
            j += 1;
            prefixes.push(Bytes::copy_from_slice(&req[j]));
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let on = &req[2];
    if eq(on, "off") {
        if ctx.client.tracking.take().is_some() {
            ctx.shared.tracking.disable(ctx.shared, ctx.client.id());
        }
        ctx.reply.ok();
        return Ok(());
    }
    if !eq(on, "on") {
        return Err(CmdError::Syntax);
    }
    // Redis's checks, in its order.
    if !mode.bcast && !prefixes.is_empty() {
        return Err(err("PREFIX option requires BCAST mode to be enabled"));
    }
    let old = ctx.client.tracking.as_ref();
    if old.is_some_and(|o| o.bcast != mode.bcast) {
        return Err(err(
            "You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    if mode.bcast && (mode.optin || mode.optout) {
        return Err(err("OPTIN and OPTOUT are not compatible with BCAST"));
    }
    if mode.optin && mode.optout {
        return Err(err("You can't specify both OPTIN mode and OPTOUT mode"));
    }
    if old.is_some_and(|o| (mode.optin && o.optout) || (mode.optout && o.optin)) {
        return Err(err(
            "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    if mode.bcast {
        let existing = old.map(|o| o.prefixes.clone()).unwrap_or_default();
        for (i, p) in prefixes.iter().enumerate() {
            if let Some(e) = existing.iter().find(|e| overlap(e, p)) {
                return Err(err(&format!(
                    "Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(e)
                )));
            }
            if let Some(q) = prefixes[i + 1..].iter().find(|q| overlap(p, q)) {
                return Err(err(&format!(
                    "Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(q)
                )));
            }
        }
        let mut all: BTreeSet<Bytes> = existing;
        if prefixes.is_empty() {
            all.insert(Bytes::new());
        }
        all.extend(prefixes);
        mode.prefixes = all;
    }
    ctx.shared
        .tracking
        .enable(ctx.shared, ctx.client.id(), &mode);
    // The receiver waits for invalidations from now on.
    ctx.client.info.pubsub.expect_pushes();
    if mode.redirect != 0
        && let Ok(clients) = ctx.shared.clients.lock()
        && let Some(target) = clients.get(&mode.redirect)
    {
        target.pubsub.expect_pushes();
    }
    ctx.client.tracking = Some(mode);
    ctx.reply.ok();
    Ok(())
}

fn caching(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let Some(mode) = ctx.client.tracking.as_mut() else {
        return Err(err(
            "CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ));
    };
    let opt = &req[2];
    if eq(opt, "yes") {
        if !mode.optin {
            return Err(err(
                "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if eq(opt, "no") {
        if !mode.optout {
            return Err(err(
                "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(CmdError::Syntax);
    }
    mode.caching = true;
    ctx.reply.ok();
    Ok(())
}

fn trackinginfo(ctx: &mut Ctx<'_>) {
    let mode = ctx.client.tracking.clone();
    let broken = mode.is_some() && ctx.shared.tracking.broken_redirect(ctx.client.id());
    let mut flags = vec![if mode.is_some() { "on" } else { "off" }];
    if let Some(m) = &mode {
        if m.bcast {
            flags.push("bcast");
        }
        if m.optin {
            flags.push("optin");
            if m.caching {
                flags.push("caching-yes");
            }
        }
        if m.optout {
            flags.push("optout");
            if m.caching {
                flags.push("caching-no");
            }
        }
        if m.noloop {
            flags.push("noloop");
        }
        if broken {
            flags.push("broken_redirect");
        }
    }
    ctx.reply.map(3);
    ctx.reply.bulk(b"flags");
    ctx.reply.set(flags.len());
    for f in flags {
        ctx.reply.bulk(f.as_bytes());
    }
    ctx.reply.bulk(b"redirect");
    ctx.reply
        .int(mode.as_ref().map_or(-1, |m| m.redirect as i64));
    ctx.reply.bulk(b"prefixes");
    let prefixes = mode.map(|m| m.prefixes).unwrap_or_default();
    ctx.reply.array(prefixes.len());
    for p in prefixes {
        ctx.reply.bulk(&p);
    }
}

/// Whether the client's reads are remembered now: tracking in the default
/// mode, and not OPTIN without CACHING YES nor OPTOUT with CACHING NO.
fn remembers(ctx: &Ctx<'_>) -> bool {
    ctx.client
        .tracking
        .as_ref()
        .is_some_and(|m| !(m.bcast || (m.optin && !m.caching) || (m.optout && m.caching)))
}

/// After a read-only command of a tracking client in the default mode:
/// remembers its keys, unless OPTIN without CACHING YES or OPTOUT with
/// CACHING NO (Redis's `trackingRememberKeys`).
pub(super) fn remember(ctx: &mut Ctx<'_>, cmd: &super::Command, req: &Request) {
    if !remembers(ctx) {
        return;
    }
    // Shard channels are not keys to cache; the read-only scripts count
    // by the commands they run (see `remember_keys`).
    if cmd.flags & super::flags::PUBSUB != 0
        || matches!(cmd.name, "eval_ro" | "evalsha_ro" | "fcall_ro")
    {
        return;
    }
    let mut keys = Vec::new();
    super::command_keys(cmd, req, &mut keys);
    if !keys.is_empty() {
        ctx.shared
            .tracking
            .remember(ctx.shared, ctx.client.id(), &keys);
    }
}

/// A script that ran a read-only command: its declared `keys` are
/// remembered for its tracking caller, as Redis does.
pub(super) fn remember_keys(ctx: &mut Ctx<'_>, keys: &[Bytes]) {
    if !remembers(ctx) {
        return;
    }
    let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    if !keys.is_empty() {
        ctx.shared
            .tracking
            .remember(ctx.shared, ctx.client.id(), &keys);
    }
}

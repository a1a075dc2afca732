//! Functions: FUNCTION and FCALL, FCALL_RO.
//!
//! A function runs as EVAL's scripts do (`scripting.rs`): holding its
//! declared keys' shards and taking others as it reaches them, through
//! the same host, its effects reaching replicas as one
//! unit. FUNCTION LOAD, DELETE, FLUSH and RESTORE reach replicas as
//! themselves, as in Redis 7.0; FCALL never does, only what it ran.

use bytes::Bytes;
use resp::{Frame, Request};
use store::keyspace::Op;

use super::scripting::{Scope, holding, refusal, with_runner, write_frame};
use super::{CmdError, CmdResult, Ctx};
use crate::args::{eq, parse_i64};
use crate::script::functions::{LOAD_TIMEOUT, Policy};
use crate::script::watch::BUSY_EVAL;

pub(super) fn fcall(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    fcall_generic(ctx, req, false)
}

pub(super) fn fcall_ro(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    fcall_generic(ctx, req, true)
}

fn fcall_generic(ctx: &mut Ctx<'_>, req: &Request, ro: bool) -> CmdResult {
    // The declared keys, for the shards to hold; a bad count fails in
    // `fcall_held`, with Redis's error, holding none.
    let keys: Vec<Bytes> = match parse_i64(&req[2]) {
        Ok(n) if n >= 0 && n <= req.len() as i64 - 3 => (3..3 + n as usize)
            .map(|i| Bytes::copy_from_slice(&req[i]))
            .collect(),
        _ => Vec::new(),
    };
    let wide = ctx.shared.scripts.is_wide(&wide_name(req));
    let frame = holding(ctx, &keys, wide, |ctx, scope| {
        fcall_held(ctx, req, ro, scope)
    })?;
    write_frame(&mut ctx.reply, &frame);
    Ok(())
}

fn fcall_held(ctx: &mut Ctx<'_>, req: &Request, ro: bool, scope: Scope) -> Result<Frame, CmdError> {
    let shared = ctx.shared;
    let watch = shared.scripts.watch.clone();
    let state = shared
        .scripts
        .functions
        .lock(&watch)
        .map_err(CmdError::other)?;
    let Some(f) = state.catalogue.get(&req[1]) else {
        return Err(CmdError::other("ERR Function not found"));
    };
    let (name, func, flags) = (f.name.clone(), f.func.clone(), f.flags);
    let numkeys =
        parse_i64(&req[2]).map_err(|_| CmdError::other("ERR Bad number of keys provided"))?;
    if numkeys > req.len() as i64 - 3 {
        return Err(CmdError::other(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(CmdError::other("ERR Number of keys can't be negative"));
    }
    if let Some(why) = refusal(ctx, flags, ro) {
        return Err(CmdError::other(why));
    }
    let split = 3 + numkeys as usize;
    let take = |from: usize, to: usize| {
        (from..to)
            .map(|i| Bytes::copy_from_slice(&req[i]))
            .collect::<Vec<_>>()
    };
    let (keys, argv) = (take(3, split), take(split, req.len()));
    let read_only = ro || flags.no_writes;
    super::scripting::script_reply(with_runner(
        ctx,
        read_only,
        flags,
        scope,
        &wide_name(req),
        Some((&name, req)),
        &keys,
        |host| state.engine.call_function(&name, &func, &keys, &argv, host),
    ))
}

/// The name a function is known by among the scripts that reach keys
/// they did not declare.
fn wide_name(req: &Request) -> String {
    format!(
        "fcall:{}",
        String::from_utf8_lossy(&req[1]).to_ascii_lowercase()
    )
}

/// FUNCTION LOAD, DELETE, FLUSH and RESTORE reach replicas and the AOF as they came,
/// after a SELECT of the client's database as Redis sends them (a
/// master's stream reaches sub-replicas as it came already).
fn propagate(ctx: &mut Ctx<'_>, req: &Request) {
    if ctx.client.is_master {
        return;
    }
    let op = Op::from_iter(Some(ctx.client.db), req.iter());
    if ctx.shards.effects().recording() {
        ctx.shards.effects().extend([op]);
    } else if ctx.shared.keyspace.feeding() {
        // To replicas and to the AOF, which Redis also gives them.
        ctx.shared.repl.append_write(vec![op]);
    }
}

fn syntax_error(req: &Request) -> CmdError {
    CmdError::other(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        String::from_utf8_lossy(&req[1][..req[1].len().min(128)])
    ))
}

pub(super) fn function(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let sub = &req[1];
    if eq(sub, "help") {
        return help(ctx);
    }
    if eq(sub, "kill") {
        ctx.shared
            .scripts
            .watch
            .kill(true)
            .map_err(CmdError::other)?;
        ctx.reply.ok();
        return Ok(());
    }
    if eq(sub, "stats") {
        return stats(ctx);
    }
    let shared = ctx.shared;
    let watch = shared.scripts.watch.clone();
    let mut state = shared
        .scripts
        .functions
        .lock(&watch)
        .map_err(CmdError::other)?;
    if eq(sub, "load") {
        let mut replace = false;
        let mut at = 2;
        while at < req.len() - 1 {
            if !eq(&req[at], "replace") {
                return Err(CmdError::other(format!(
                    "ERR Unknown option given: {}",
                    String::from_utf8_lossy(&req[at])
                )));
            }
            replace = true;
            at += 1;
        }
        // A master's stream loads whatever it takes.
        let timeout = (!ctx.client.is_master).then_some(LOAD_TIMEOUT);
        let name = state
            .load(&req[at], replace, timeout, &watch)
            .map_err(CmdError::other)?;
        // Sent while the lock is held: a replica's full sync (which takes
        // the libraries under it) sees the change and its record together.
        propagate(ctx, req);
        drop(state);
        ctx.client.stats.changed();
        ctx.reply.bulk(name.as_bytes());
        return Ok(());
    }
    if eq(sub, "delete") {
        let name = String::from_utf8_lossy(&req[2]).into_owned();
        if !state.catalogue.delete(&name) {
            return Err(CmdError::other("ERR Library not found"));
        }
        // Sent while the lock is held: a replica's full sync (which takes
        // the libraries under it) sees the change and its record together.
        propagate(ctx, req);
        drop(state);
        ctx.client.stats.changed();
        ctx.reply.ok();
        return Ok(());
    }
    if eq(sub, "flush") {
        if req.len() > 3 {
            return Err(syntax_error(req));
        }
        if req.len() == 3 && !eq(&req[2], "sync") && !eq(&req[2], "async") {
            return Err(CmdError::other(
                "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
            ));
        }
        state.catalogue = Default::default();
        // Sent while the lock is held: a replica's full sync (which takes
        // the libraries under it) sees the change and its record together.
        propagate(ctx, req);
        drop(state);
        ctx.client.stats.changed();
        ctx.reply.ok();
        return Ok(());
    }
    if eq(sub, "dump") {
        let payload = state.catalogue.dump();
        drop(state);
        ctx.reply.bulk(&payload);
        return Ok(());
    }
    if eq(sub, "restore") {
        if req.len() > 4 {
            return Err(syntax_error(req));
        }
        let policy = match req.get(3) {
            None => Policy::Append,
            Some(p) if eq(p, "append") => Policy::Append,
            Some(p) if eq(p, "replace") => Policy::Replace,
            Some(p) if eq(p, "flush") => Policy::Flush,
            Some(_) => {
                return Err(CmdError::other(
                    "ERR Wrong restore policy given, value should be either FLUSH, APPEND or \
                     REPLACE.",
                ));
            }
        };
        state.restore(&req[2], policy).map_err(CmdError::other)?;
        // Sent while the lock is held: a replica's full sync (which takes
        // the libraries under it) sees the change and its record together.
        propagate(ctx, req);
        drop(state);
        ctx.client.stats.changed();
        ctx.reply.ok();
        return Ok(());
    }
    if eq(sub, "list") {
        let mut with_code = false;
        let mut pattern: Option<&[u8]> = None;
        let mut i = 2;
        while i < req.len() {
            let arg = &req[i];
            if !with_code && eq(arg, "withcode") {
                with_code = true;
            } else if pattern.is_none() && eq(arg, "libraryname") {
                if i + 1 >= req.len() {
                    return Err(CmdError::other("ERR library name argument was not given"));
                }
                i += 1;
                pattern = Some(&req[i]);
            } else {
                return Err(CmdError::other(format!(
                    "ERR Unknown argument {}",
                    String::from_utf8_lossy(arg)
                )));
            }
            i += 1;
        }
        let catalogue = &state.catalogue;
        let libs: Vec<_> = catalogue
            .libraries
            .iter()
            .filter(|(name, _)| {
                pattern.is_none_or(|p| store::glob::matches(p, name.as_bytes(), false))
            })
            .collect();
        let reply = &mut ctx.reply;
        reply.array(libs.len());
        for (name, lib) in libs {
            reply.map(if with_code { 4 } else { 3 });
            reply.bulk(b"library_name");
            reply.bulk(name.as_bytes());
            reply.bulk(b"engine");
            reply.bulk(b"LUA");
            reply.bulk(b"functions");
            reply.array(lib.functions.len());
            for f in lib
                .functions
                .iter()
                .filter_map(|f| catalogue.functions.get(f))
            {
                reply.map(3);
                reply.bulk(b"name");
                reply.bulk(f.name.as_bytes());
                reply.bulk(b"description");
                match &f.desc {
                    Some(d) => reply.bulk(d),
                    None => reply.null(),
                }
                reply.bulk(b"flags");
                let names = f.flags.names();
                reply.set(names.len());
                for n in names {
                    reply.simple(n);
                }
            }
            if with_code {
                reply.bulk(b"library_code");
                reply.bulk(&lib.code);
            }
        }
        return Ok(());
    }
    Err(super::keys::unknown_subcommand(&req[0], sub))
}

/// FUNCTION STATS: served while a function runs, so it reads only what
/// the watch and the counters say, never the functions' lock.
fn stats(ctx: &mut Ctx<'_>) -> CmdResult {
    let watch = &ctx.shared.scripts.watch;
    if watch.running_for().is_some() && !watch.is_function() {
        return Err(CmdError::other(BUSY_EVAL));
    }
    let (libraries, functions) = ctx.shared.scripts.functions.counts();
    let reply = &mut ctx.reply;
    reply.map(2);
    reply.bulk(b"running_script");
    match watch.current() {
        None => reply.null(),
        Some((name, command, running)) => {
            reply.map(3);
            reply.bulk(b"name");
            reply.bulk(name.as_bytes());
            reply.bulk(b"command");
            reply.array(command.len());
            for arg in &command {
                reply.bulk(arg);
            }
            reply.bulk(b"duration_ms");
            reply.int(i64::try_from(running.as_millis()).unwrap_or(i64::MAX));
        }
    }
    reply.bulk(b"engines");
    reply.map(1);
    reply.bulk(b"LUA");
    reply.map(2);
    reply.bulk(b"libraries_count");
    reply.int(libraries as i64);
    reply.bulk(b"functions_count");
    reply.int(functions as i64);
    Ok(())
}

fn help(ctx: &mut Ctx<'_>) -> CmdResult {
    let lines = [
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library with the given library name and code.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library.",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries:",
        "    * Library name",
        "    * The engine used to run the Library",
        "    * Library description",
        "    * Functions list",
        "    * Library code (if WITHCODE is given)",
        "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
        "STATS",
        "    Return information about the current function running:",
        "    * Function name",
        "    * Command used to run the function",
        "    * Duration in MS that the function is running",
        "    If no function is running, return nil",
        "    In addition, returns a list of available engines.",
        "KILL",
        "    Kill the current running function.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the libraries.",
        "    * SYNC: Synchronously flush the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
        "    control how to handle existing libraries (default APPEND):",
        "    * FLUSH: delete all existing libraries.",
        "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
        "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
        "      libraries with the new libraries (notice that even on this option there is a chance of failure",
        "      in case of functions name collision with another library).",
        "HELP",
        "    Prints this help.",
    ];
    ctx.reply.array(lines.len());
    for line in lines {
        ctx.reply.simple(line);
    }
    Ok(())
}

//! Persistence commands: SAVE, BGSAVE, LASTSAVE, BGREWRITEAOF, and the
//! persistence parts of DEBUG RELOAD, SHUTDOWN SAVE and INFO persistence.
//!
//! Saves take a point-in-time snapshot (`crate::save`, `rdb::Snapshot`);
//! automatic save points and the shutdown sequence are `crate::save`, the
//! AOF is `crate::aof`.

use std::sync::atomic::Ordering::Relaxed;

use resp::Request;

use super::{CmdError, CmdResult, Ctx};
use crate::args::eq;

/// SAVE: writes the RDB file before replying.
pub(super) fn save(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    save_now(ctx)?;
    ctx.reply.ok();
    Ok(())
}

/// Saves in the foreground; the error is the reply.
fn save_now(ctx: &mut Ctx<'_>) -> CmdResult {
    let shared = ctx.shared;
    if shared.persistence.bgsave_in_progress() {
        return Err(CmdError::other("ERR Background save already in progress"));
    }
    // The master's own stream holds the pause a save takes.
    let in_exec = ctx.shards.held().is_some() || ctx.client.is_master;
    crate::save::save_as(shared, &mut ctx.shards, in_exec)
        .map_err(|e| CmdError::other(format!("ERR error saving the DB on disk: {e}")))
}

/// Where SAVE and BGSAVE write: `dir`/`dbfilename`.
fn rdb_path(shared: &crate::server::Shared) -> std::path::PathBuf {
    crate::rdb::file_path(
        &shared
            .config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

/// BGSAVE [SCHEDULE]: the snapshot of this instant, written on a thread
/// of its own. While an AOF rewrite runs, Redis (which forks one child
/// at a time) refuses a plain BGSAVE and runs a SCHEDULEd one after it;
/// so does Ember.
pub(super) fn bgsave(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let schedule = match req.len() {
        1 => false,
        2 if eq(&req[1], "schedule") => true,
        _ => return Err(CmdError::Syntax),
    };
    let shared = ctx.shared;
    if shared.persistence.bgsave_in_progress() {
        return Err(CmdError::other("ERR Background save already in progress"));
    }
    if shared.repl.aof.rewriting() {
        if schedule {
            shared.persistence.schedule();
            ctx.reply.simple("Background saving scheduled");
            return Ok(());
        }
        return Err(CmdError::other(
            "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
        ));
    }
    // Inside EXEC Redis cannot fork and answers "scheduled"; the snapshot
    // here is taken under the transaction's locks, right away.
    let in_exec = ctx.shards.held().is_some() || ctx.client.is_master;
    match crate::save::bgsave(shared, &mut ctx.shards, in_exec) {
        Ok(()) => {}
        Err(crate::save::BgsaveError::InProgress) => {
            return Err(CmdError::other("ERR Background save already in progress"));
        }
        Err(crate::save::BgsaveError::Busy) if schedule => {
            shared.persistence.schedule();
            ctx.reply.simple("Background saving scheduled");
            return Ok(());
        }
        Err(crate::save::BgsaveError::Busy) => {
            return Err(CmdError::other(
                "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
            ));
        }
        Err(crate::save::BgsaveError::Spawn(e)) => {
            return Err(CmdError::other(format!(
                "ERR can't save in background: {e}"
            )));
        }
    }
    ctx.reply.simple(if ctx.shards.held().is_some() {
        "Background saving scheduled"
    } else {
        "Background saving started"
    });
    Ok(())
}

pub(super) fn lastsave(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    ctx.reply.int(ctx.shared.persistence.last_save());
    Ok(())
}

/// DEBUG RELOAD [NOSAVE]: saves (unless NOSAVE), then replaces the
/// keyspace with what the file holds, as a restart would. Unlike Redis,
/// a file that fails to load leaves the keyspace as it was.
pub(super) fn debug_reload(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let mut save = true;
    for opt in req.iter().skip(2) {
        if eq(opt, "nosave") {
            save = false;
        } else if eq(opt, "merge") || eq(opt, "noflush") {
            return Err(CmdError::other(
                "ERR DEBUG RELOAD MERGE and NOFLUSH are not supported",
            ));
        } else {
            return Err(CmdError::other(
                "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
            ));
        }
    }
    // Under every lock from the save to the end of the load, so that no
    // write falls between them (Redis is single-threaded; so is this).
    let own = ctx.shards.held().is_none();
    if own {
        ctx.shards.hold_all();
    }
    let result = reload(ctx, save);
    if own && let Some(mut locked) = ctx.shards.release() {
        crate::blocking::serve_ready(&mut locked, ctx.now);
    }
    result?;
    tracing::warn!("DB reloaded by DEBUG RELOAD");
    ctx.reply.ok();
    Ok(())
}

/// DEBUG RELOAD's work, under all locks.
fn reload(ctx: &mut Ctx<'_>, save: bool) -> CmdResult {
    if save {
        save_now(ctx)?;
    }
    let shared = ctx.shared;
    let path = rdb_path(shared);
    let mut loaded = match crate::rdb::load_file(&path, shared.encodings.load_limits()) {
        Ok(Some(loaded)) => loaded,
        Ok(None) => {
            return Err(CmdError::other(
                "ERR Error trying to load the RDB dump: no such file",
            ));
        }
        Err(e) => {
            tracing::warn!("DEBUG RELOAD: {e}");
            return Err(CmdError::other(format!(
                "ERR Error trying to load the RDB dump: {e}"
            )));
        }
    };
    loaded.fit_sets(crate::cmd::sets::max_intset(shared));
    let now = crate::server::now_ms();
    let (keys, expired) = (loaded.len(), loaded.expired(Some(now)));
    let functions = std::mem::take(&mut loaded.functions);
    crate::rdb::install(&mut ctx.shards, loaded, Some(now))
        .map_err(|e| CmdError::other(format!("ERR Error trying to load the RDB dump: {e}")))?;
    shared
        .scripts
        .functions
        .install(&shared.scripts.watch, &functions)
        .map_err(|e| CmdError::other(format!("ERR Error trying to load the RDB dump: {e}")))?;
    shared
        .persistence
        .loaded(keys - expired, expired, shared.stats.dirty.load(Relaxed));
    Ok(())
}

/// DEBUG LOADAOF: writes and fsyncs what the AOF buffers, then replaces
/// the keyspace with what its files hold, replaying them under every
/// shard lock (nothing falls between the write and the load). The
/// commands run in this client's context with their replies dropped and
/// expiry off, as Redis's AOF client runs them; nothing is appended.
pub(super) fn debug_loadaof(ctx: &mut Ctx<'_>) -> CmdResult {
    let own = ctx.shards.held().is_none();
    if own {
        ctx.shards.hold_all();
    }
    // Meanwhile other clients get -LOADING and INFO says `loading:1`, as
    // in Redis (a command that reached a key already waits for it).
    let shared = ctx.shared;
    let loading = &shared.loading;
    let was_loading = loading.swap(true, std::sync::atomic::Ordering::AcqRel);
    let result = loadaof(ctx);
    if !was_loading {
        loading.store(false, std::sync::atomic::Ordering::Release);
    }
    if own && let Some(mut locked) = ctx.shards.release() {
        crate::blocking::serve_ready(&mut locked, ctx.now);
    }
    result?;
    tracing::warn!("Append Only File loaded by DEBUG LOADAOF");
    ctx.reply.ok();
    Ok(())
}

/// DEBUG LOADAOF's work, under all locks.
fn loadaof(ctx: &mut Ctx<'_>) -> CmdResult {
    let shared = ctx.shared;
    let files = crate::aof::read_all(shared)
        .map_err(|e| CmdError::other(format!("ERR Error loading the AOF: {e}")))?;
    {
        let mut locked = ctx.shards.lock_all();
        for shard in locked.shards() {
            shard.dbs.iter_mut().for_each(crate::db::Db::clear);
        }
    }
    let (out, db, now, cmd) = (
        std::mem::take(&mut *ctx.reply.out),
        ctx.client.db,
        ctx.now,
        ctx.cmd,
    );
    ctx.client.db = 0;
    // The AOF's client sees no key expire.
    ctx.now = i64::MIN;
    let mut failed = None;
    'files: for file in files {
        if let Some(loaded) = file.rdb
            && let Err(e) =
                crate::rdb::install(&mut ctx.shards, loaded, Some(crate::server::now_ms()))
        {
            failed = Some(format!("ERR Error loading the AOF base: {e}"));
            break;
        }
        for args in file.commands {
            // Everything runs under every lock already: a transaction's
            // markers have nothing left to do.
            if args[0].eq_ignore_ascii_case(b"multi") || args[0].eq_ignore_ascii_case(b"exec") {
                continue;
            }
            let Some(index) = super::lookup_index(&args[0]) else {
                failed = Some(format!(
                    "ERR Unknown command '{}' reading the append only file",
                    String::from_utf8_lossy(&args[0])
                ));
                break 'files;
            };
            let req = Request::from_args(&args);
            super::call(ctx, index, &req);
            ctx.next = None;
        }
    }
    *ctx.reply.out = out;
    ctx.client.db = db;
    ctx.now = now;
    ctx.cmd = cmd;
    match failed {
        Some(e) => Err(CmdError::other(e)),
        None => Ok(()),
    }
}

/// INFO persistence.
pub(super) fn info(ctx: &Ctx<'_>, w: &mut impl FnMut(String)) {
    let shared = ctx.shared;
    w("# Persistence".into());
    let loading = ctx
        .shared
        .loading
        .load(std::sync::atomic::Ordering::Acquire);
    w(format!("loading:{}", u8::from(loading)));
    w("async_loading:0".into());
    for line in [
        "current_cow_peak:0",
        "current_cow_size:0",
        "current_cow_size_age:0",
        "current_fork_perc:0.00",
        "current_save_keys_processed:0",
        "current_save_keys_total:0",
    ] {
        w(line.into());
    }
    for line in shared
        .persistence
        .info_lines(shared.stats.dirty.load(Relaxed))
    {
        w(line);
    }
    for line in shared.repl.aof.info_lines() {
        w(line);
    }
}

/// BGREWRITEAOF: a new base from a snapshot of this instant, written on a
/// thread of its own (see `aof::start_rewrite`).
pub(super) fn bgrewriteaof(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    match crate::aof::start_rewrite(ctx.shared, &mut ctx.shards) {
        Ok(()) => {}
        Err(e) if e == crate::aof::BUSY => {
            ctx.reply
                .simple("Background append only file rewriting scheduled");
            return Ok(());
        }
        Err(e) => return Err(CmdError::other(e)),
    }
    ctx.reply
        .simple("Background append only file rewriting started");
    Ok(())
}

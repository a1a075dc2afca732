//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Between MULTI and EXEC, [`execute`](super::execute) queues commands
//! instead of running them (after the checks Redis makes at that point:
//! name, arity, subcommand; a refusal makes EXEC fail). EXEC locks, in
//! ascending order and once, the shards of every key its commands name and
//! of every key the client watches, or every shard when a command works on
//! whole databases; then it checks the watched keys and runs the queue
//! with those locks lent to each command (see [`Shards`]), so no other
//! client's command runs in between on any of those keys.
//!
//! WATCH registers the client on each key in the keyspace (see
//! `db.rs`); any change to one of them sets the client's flag, and EXEC
//! reads the flag while it holds the watched keys' shards, so a change
//! cannot slip in between the check and the commands.

use std::sync::Arc;

use bytes::Bytes;
use resp::Request;

use super::{
    COMMANDS, CmdError, CmdResult, Ctx, DENYOOM, KEYSPACE, MAY_REPLICATE, NOREPLICAS, OOM, WRITE,
    call, command_keys,
};
use crate::client::Client;
use crate::db::{Shards, WatchFlag};
use crate::server::Shared;

/// A client's transaction, from MULTI to EXEC or DISCARD.
#[derive(Debug, Default)]
pub(crate) struct Multi {
    /// The queued commands: position in the command table, and request.
    queued: Vec<(usize, Request)>,
    /// How many were queued (CLIENT LIST's `multi=`), kept while EXEC runs
    /// them.
    count: usize,
    /// The queued arguments' bytes, roughly what Redis reports as
    /// `multi-mem=` in CLIENT LIST.
    memory: usize,
    /// A command was refused while queueing: EXEC will fail with
    /// EXECABORT (Redis's `CLIENT_DIRTY_EXEC`).
    aborted: bool,
}

impl Multi {
    /// Whether every queued command passes `ok` (by its index in the
    /// command table and its request).
    pub(crate) fn all(&self, ok: impl Fn(usize, &Request) -> bool) -> bool {
        self.queued.iter().all(|(i, req)| ok(*i, req))
    }

    /// Whether a queued command writes: EXEC then waits out a WRITE pause.
    pub(crate) fn writes(&self) -> bool {
        self.queued
            .iter()
            .any(|&(i, _)| COMMANDS[i].flags & (WRITE | MAY_REPLICATE) != 0)
    }

    /// Queues a command. Once the transaction cannot succeed (a refused
    /// command, a touched watched key) commands are answered but not kept,
    /// as in Redis.
    pub(crate) fn queue(&mut self, index: usize, req: &Request, watch: &WatchFlag) {
        if self.aborted || watch.is_set() {
            return;
        }
        self.memory += req.iter().map(|a| a.len() + 8).sum::<usize>();
        self.queued.push((index, req.clone()));
        self.count += 1;
    }

    /// A command was refused while queueing.
    pub(crate) fn refused(&mut self) {
        self.aborted = true;
    }

    /// How many commands are queued.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// An estimate of the memory the queue takes, for CLIENT LIST's
    /// `multi-mem=`.
    pub(crate) fn memory(&self) -> usize {
        self.memory
    }
}

pub(super) fn multi(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::other("ERR MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Multi::default());
    ctx.reply.ok();
    Ok(())
}

pub(super) fn discard(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(CmdError::other("ERR DISCARD without MULTI"));
    }
    discard_transaction(&mut ctx.shards, ctx.client);
    ctx.reply.ok();
    Ok(())
}

/// Leaves MULTI and forgets the watched keys (DISCARD, RESET, a failed
/// EXEC).
pub(super) fn discard_transaction(shards: &mut Shards<'_>, client: &mut Client) {
    client.multi = None;
    unwatch_all(shards, client);
}

pub(super) fn exec(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    let Some(multi) = &mut ctx.client.multi else {
        return Err(CmdError::other("ERR EXEC without MULTI"));
    };
    if let Some(reason) = refusal(ctx.shared, ctx.client.oom, ctx.client.is_master, multi) {
        discard_transaction(&mut ctx.shards, ctx.client);
        return Err(CmdError::other(reason));
    }
    let Some(multi) = &mut ctx.client.multi else {
        return Err(CmdError::other("ERR EXEC without MULTI"));
    };
    let queued = std::mem::take(&mut multi.queued);
    let watching: Vec<(usize, Bytes)> = ctx.client.watching.drain().collect();
    let whole = queued
        .iter()
        .any(|(i, _)| COMMANDS[*i].flags & KEYSPACE != 0);
    // A script waits for its engine's lock, which the running script
    // holds, while that one may wait for any shard: the transaction takes
    // the reach token first, so a script runs inside it as the only one.
    if queued.iter().any(|(i, _)| super::scripting::is_script(*i)) {
        ctx.shards.begin_reach();
    }
    if whole {
        ctx.shards.hold_all();
    } else {
        let mut keys: Vec<&[u8]> = watching.iter().map(|(_, k)| &k[..]).collect();
        for (i, req) in &queued {
            command_keys(&COMMANDS[*i], req, &mut keys);
        }
        ctx.shards.hold_keys(keys);
    }
    // Under the locks of every watched key: no change can come between this
    // check and the commands.
    let flag = ctx.client.info.watch.clone();
    let mut dirty = flag.is_set();
    if let Some(mut locked) = ctx.shards.held() {
        for (db, key) in &watching {
            let mut db = locked.db(*db, key);
            dirty = dirty || db.watched_key_expired(key, &flag, ctx.now);
            db.unwatch(key, &flag);
        }
    }
    flag.clear();
    if dirty {
        ctx.client.multi = None;
        ctx.shards.release();
        ctx.reply.null_array();
        return Ok(());
    }
    // Feeding replicas, the transaction's changes reach the stream, as one
    // MULTI/EXEC, before its locks are released.
    if ctx.shared.keyspace.feeding() && !ctx.client.is_master {
        ctx.shards.effects().start();
    }
    let exec = ctx.cmd;
    ctx.reply.array(queued.len());
    // Blocking commands answer at once inside EXEC.
    ctx.client.in_exec = true;
    for (index, req) in &queued {
        call(ctx, *index, req);
    }
    ctx.client.in_exec = false;
    ctx.cmd = exec;
    ctx.client.multi = None;
    if let Some(mut locked) = ctx.shards.release() {
        // Clients blocked on keys the transaction filled are served now,
        // still under its locks, from what the transaction left.
        super::served_ready(ctx.client, &mut locked, super::serving_time(ctx.now));
        if let Some(offset) = ctx.shared.repl.append_recorded(locked.effects()) {
            ctx.client.woff = offset;
            ctx.client.aof_off = ctx.shared.repl.aof.appended();
        }
    }
    Ok(())
}

/// Why EXEC must discard the transaction instead of running it, if it
/// must, in Redis's order and words: memory, a server that became a
/// read-only or stale replica, too few replicas, a command refused while
/// queueing.
fn refusal(shared: &Shared, oom: bool, from_master: bool, multi: &Multi) -> Option<String> {
    let any =
        |test: &dyn Fn(usize, &Request) -> bool| multi.queued.iter().any(|(i, r)| test(*i, r));
    let writes = any(&|i, _| COMMANDS[i].flags & WRITE != 0);
    let abort = |why: &str| Some(format!("EXECABORT Transaction discarded because of: {why}"));
    if oom && any(&|i, _| COMMANDS[i].flags & DENYOOM != 0) {
        abort(OOM)
    } else if from_master {
        multi.aborted.then(previous_errors)
    } else if writes && shared.repl.read_only() {
        Some(
            "ERR Transaction contains write commands but instance is now a read-only slave. \
             EXEC aborted."
                .into(),
        )
    } else if any(&|i, r| !super::stale_ok_at(i, r)) && shared.repl.stale() {
        abort(super::MASTERDOWN)
    } else if writes && shared.repl.too_few_replicas() {
        abort(NOREPLICAS)
    } else {
        multi.aborted.then(previous_errors)
    }
}

fn previous_errors() -> String {
    "EXECABORT Transaction discarded because of previous errors.".into()
}

pub(super) fn watch(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::other("ERR WATCH inside MULTI is not allowed"));
    }
    // A transaction already doomed needs no more watching.
    if !ctx.client.info.watch.is_set() {
        let db = ctx.client.db;
        let mut locked = ctx.shards.lock_keys(req.iter().skip(1));
        for key in req.iter().skip(1) {
            let entry = (db, Bytes::copy_from_slice(key));
            if ctx.client.watching.contains(&entry) {
                continue;
            }
            locked
                .db(db, key)
                .watch(key, &ctx.client.info.watch, ctx.now);
            ctx.client.watching.insert(entry);
        }
    }
    ctx.reply.ok();
    Ok(())
}

pub(super) fn unwatch(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    unwatch_all(&mut ctx.shards, ctx.client);
    ctx.reply.ok();
    Ok(())
}

/// Forgets every key `client` watches and clears its flag (UNWATCH,
/// DISCARD, RESET, a closed connection).
pub(crate) fn unwatch_all(shards: &mut Shards<'_>, client: &mut Client) {
    let flag: &Arc<WatchFlag> = &client.info.watch;
    if !client.watching.is_empty() {
        let mut locked = shards.lock_keys(client.watching.iter().map(|(_, k)| &k[..]));
        for (db, key) in client.watching.drain() {
            locked.db(db, &key).unwatch(&key, flag);
        }
    }
    // Nobody can set the flag once no key lists it.
    flag.clear();
}

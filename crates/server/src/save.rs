//! When the server saves by itself, and what it does when saving fails:
//! automatic save points (`save <seconds> <changes> ...`, checked ten
//! times a second as Redis's `serverCron` checks them), BGSAVE SCHEDULE,
//! `stop-writes-on-bgsave-error` (`-MISCONF`, also after an AOF write
//! error, as Redis refuses writes then), and the shutdown sequence that
//! SHUTDOWN, SIGTERM and SIGINT share (Redis's `prepareForShutdown` and
//! `finishShutdown`): stop a running BGSAVE or AOF rewrite and remove its
//! temporary file, fsync the AOF, and save the final snapshot when save
//! points are set.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::db::Shards;
use crate::rdb::Aux;
use crate::rdb::stream;
use crate::server::Shared;

/// How long a failed BGSAVE waits before the save points try again
/// (Redis's `CONFIG_BGSAVE_RETRY_DELAY`).
const RETRY_DELAY_SECS: i64 = 5;

/// The RDB half of Redis's `-MISCONF` (its `shared.bgsaveerr`).
pub(crate) const MISCONF_RDB: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Why writes are refused, if they are: the last BGSAVE failed with
/// `stop-writes-on-bgsave-error` on and save points set, or the AOF
/// cannot be written (Redis's `writeCommandsDeniedByDiskError`). Two
/// relaxed loads when all is well.
#[inline]
pub(crate) fn refused_writes(shared: &Shared) -> Option<Vec<u8>> {
    if shared.persistence.refuses_writes() {
        return Some(MISCONF_RDB.as_bytes().to_vec());
    }
    let aof = &shared.repl.aof;
    if let Some(reason) = aof.write_error() {
        return Some(format!("MISCONF Errors writing to the AOF file: {reason}").into_bytes());
    }
    None
}

/// Unix time in seconds.
fn now_secs() -> i64 {
    crate::server::now_ms() / 1000
}

/// What a save records at its instant: the change count, and the
/// replication history it stands at (a replica that restarts from the
/// file asks its master to continue from there). `in_exec` (the caller
/// holds shard locks, or is the master's own stream) records no history:
/// the master's stream cannot be paused to match it.
fn at_instant(shared: &Shared, in_exec: bool) -> (u64, Aux) {
    let mut aux = if in_exec {
        Aux::default()
    } else {
        shared.repl.save_info()
    };
    aux.functions = shared.scripts.functions.codes();
    (shared.stats.dirty.load(Relaxed), aux)
}

/// Redis's `rdb-key-save-delay` (microseconds per key, for tests), reread
/// as the walk goes so that CONFIG SET can cut a wait short, and `stop`:
/// the pace of a snapshot's walk (see `rdb::stream::walk`).
pub(crate) fn pace<'a>(
    shared: &'a Shared,
    stop: impl Fn() -> bool + 'a,
) -> impl FnMut(usize) -> bool + 'a {
    move |keys| {
        const STEP: Duration = Duration::from_millis(10);
        let mut left: Option<Duration> = None;
        loop {
            if stop() || shared.shutdown.is_triggered() {
                return false;
            }
            let delay = shared.config_i64("rdb-key-save-delay");
            if delay <= 0 {
                return true;
            }
            let l = left.get_or_insert(Duration::from_micros(delay as u64 * keys as u64));
            if l.is_zero() {
                return true;
            }
            let step = (*l).min(STEP);
            std::thread::sleep(step);
            *l -= step;
        }
    }
}

/// Why a BGSAVE did not start.
#[derive(Debug)]
pub(crate) enum BgsaveError {
    /// One is running already.
    InProgress,
    /// Another snapshot runs (an AOF rewrite, a replica's full resync):
    /// Redis's "another child process is active".
    Busy,
    /// The writing thread could not start.
    Spawn(std::io::Error),
}

/// Starts a BGSAVE: the instant fixed now (every shard locked for a
/// moment, or under the transaction's locks inside EXEC), the snapshot
/// walked and written to `dir`/`dbfilename` on a thread of its own while
/// clients go on (see `rdb::stream`).
pub(crate) fn bgsave(
    shared: &Shared,
    shards: &mut Shards<'_>,
    in_exec: bool,
) -> Result<(), BgsaveError> {
    let p = &shared.persistence;
    if p.bgsave_in_progress() {
        return Err(BgsaveError::InProgress);
    }
    let Some(me) = shared.me.upgrade() else {
        return Err(BgsaveError::Busy);
    };
    let path = crate::rdb::file_path(
        &shared
            .config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let fixed = {
        // On a replica the master's stream waits meanwhile, so the offset
        // matches the data.
        let _paused = (!in_exec).then(|| shared.repl.pause_apply());
        stream::fix(shards, Arc::new(stream::RdbEncoder), || {
            at_instant(shared, in_exec)
        })
    };
    let Some((fixed, (dirty, aux))) = fixed else {
        return Err(BgsaveError::Busy);
    };
    let epoch = fixed.epoch();
    if !p.begin_background() {
        shared.keyspace.end_snapshot(epoch);
        return Err(BgsaveError::InProgress);
    }
    let keys = fixed.keys();
    let job = Box::new(move |file: &mut std::fs::File| {
        let shared = &*me;
        let mut pace = pace(shared, || shared.persistence.cancelled());
        let mut walker = |each: &mut dyn FnMut(Vec<Vec<u8>>) -> std::io::Result<()>| {
            stream::walk(&shared.keyspace, &fixed, &mut pace, each)
        };
        // Ended by the walk; and here too, should the file fail first.
        let result = stream::write_rdb(&aux, &fixed.sizes, &mut walker, file);
        shared.keyspace.end_snapshot(epoch);
        result
    });
    p.spawn_background(path, dirty, keys, job).map_err(|e| {
        shared.keyspace.end_snapshot(epoch);
        BgsaveError::Spawn(e)
    })
}

/// Checks the save points ten times a second until shutdown, and starts
/// a scheduled BGSAVE once nothing else snapshots.
pub(crate) async fn cron(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.shutdown.triggered() => return,
        }
        if shared.loading.load(std::sync::atomic::Ordering::Acquire) {
            continue;
        }
        check(&shared);
    }
}

/// One look at the save points (Redis's `serverCron`): a point is
/// reached when at least its count of changes was made and more than its
/// seconds passed since the last successful save; after a failed BGSAVE,
/// only once [`RETRY_DELAY_SECS`] have passed since it was tried.
fn check(shared: &Shared) {
    let p = &shared.persistence;
    if p.bgsave_in_progress() || shared.repl.aof.rewriting() || shared.keyspace.snapshot_running() {
        return;
    }
    if p.take_scheduled() {
        start(shared);
        return;
    }
    if shared.repl.aof.take_scheduled() {
        let mut shards = Shards::new(&shared.keyspace);
        if let Err(e) = crate::aof::start_rewrite(shared, &mut shards)
            && e != crate::aof::BUSY
        {
            tracing::warn!("{e}");
        }
        return;
    }
    let points = shared
        .config
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .save_points_list();
    if points.is_empty() {
        return;
    }
    let changes = p.changes_since_save(shared.stats.dirty.load(Relaxed));
    let now = now_secs();
    for (seconds, count) in points {
        if changes >= count as u64
            && now - p.last_save() > seconds
            && (now - p.last_try() > RETRY_DELAY_SECS || p.last_ok())
        {
            tracing::info!("{count} changes in {seconds} seconds. Saving...");
            start(shared);
            return;
        }
    }
}

fn start(shared: &Shared) {
    let mut shards = Shards::new(&shared.keyspace);
    match bgsave(shared, &mut shards, false) {
        Ok(()) | Err(BgsaveError::InProgress | BgsaveError::Busy) => {}
        Err(BgsaveError::Spawn(e)) => tracing::warn!("Can't save in background: {e}"),
    }
}

/// SHUTDOWN's options, and what SIGTERM and SIGINT stand for
/// (`shutdown-on-sigterm`, `shutdown-on-sigint`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ShutdownFlags {
    /// Save even without save points.
    pub(crate) save: bool,
    /// Never save.
    pub(crate) nosave: bool,
    /// Exit even if the save fails.
    pub(crate) force: bool,
}

impl ShutdownFlags {
    /// A signal's flags from `shutdown-on-sigterm`/`-sigint`'s words.
    pub(crate) fn from_config(words: &str) -> ShutdownFlags {
        let mut flags = ShutdownFlags::default();
        for w in words.split_ascii_whitespace() {
            match w {
                "save" => flags.save = true,
                "nosave" => flags.nosave = true,
                "force" => flags.force = true,
                _ => {}
            }
        }
        flags
    }
}

/// The shutdown sequence up to the point of no return (Redis's
/// `finishShutdown`): a running BGSAVE or AOF rewrite is stopped and its
/// temporary file removed, the AOF written and fsynced, and the final
/// snapshot saved when save points are set (or `save`), unless `nosave`.
/// Writes are held back from the start (a paused client waits, as for
/// CLIENT PAUSE WRITE), so nothing is acknowledged after the snapshot.
/// A failed save (without `force`) gives the writes back and returns
/// `Err`: the server keeps running, as Redis does.
pub(crate) fn prepare_shutdown(
    shared: &Shared,
    shards: &mut Shards<'_>,
    flags: ShutdownFlags,
) -> Result<(), ()> {
    let mut flags = flags;
    // While the file loads, the keyspace is not yet the file's.
    if shared.loading.load(std::sync::atomic::Ordering::Acquire) {
        flags.save = false;
        flags.nosave = true;
    }
    tracing::warn!("User requested shutdown...");
    let now = crate::server::now_ms();
    let paused_before = shared.pause.active(now);
    shared.pause.pause(crate::pause::Kind::Write, i64::MAX, now);
    stop_background_work(shared);
    if shared.repl.aof.enabled() {
        tracing::info!("Calling fsync() on the AOF file.");
    }
    crate::aof::shutdown(shared);
    let points = !shared
        .config
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .save_points_list()
        .is_empty();
    if (points && !flags.nosave) || flags.save {
        tracing::info!("Saving the final RDB snapshot before exiting.");
        if let Err(e) = save_now(shared, shards) {
            if flags.force {
                tracing::warn!("Error trying to save the DB. Exit anyway.");
            } else {
                tracing::warn!("Error trying to save the DB, can't exit.");
                tracing::debug!("the save failed: {e}");
                if !paused_before {
                    shared.pause.unpause();
                }
                return Err(());
            }
        }
    }
    Ok(())
}

/// A foreground save of this instant to `dir`/`dbfilename`: the caller
/// waits, other clients do not (unless another snapshot runs, or inside
/// EXEC: then every shard stays locked for the save, as Redis's SAVE
/// blocks everyone).
pub(crate) fn save_now(shared: &Shared, shards: &mut Shards<'_>) -> std::io::Result<()> {
    let in_exec = shards.held().is_some();
    save_as(shared, shards, in_exec)
}

/// [`save_now`], `in_exec` saying whether the save may record the
/// replication history (see [`at_instant`]).
pub(crate) fn save_as(
    shared: &Shared,
    shards: &mut Shards<'_>,
    in_exec: bool,
) -> std::io::Result<()> {
    let path = crate::rdb::file_path(
        &shared
            .config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let _paused = (!in_exec).then(|| shared.repl.pause_apply());
    let keys = std::cell::Cell::new(0);
    let mut pace = pace(shared, || false);
    shared
        .persistence
        .save(&path, &|| keys.get(), &mut |file: &mut std::fs::File| {
            let (dirty, _) = stream::foreground(
                shards,
                Arc::new(stream::RdbEncoder),
                || at_instant(shared, in_exec),
                &mut pace,
                |(_, aux), sizes, walker| {
                    keys.set(sizes.iter().map(|s| s.0).sum());
                    stream::write_rdb(aux, sizes, walker, file)
                },
            )?;
            Ok(dirty)
        })
}

/// After FLUSHALL: with save points set, a running BGSAVE is stopped and
/// the empty dataset saved at once (Redis's `flushAllDataAndResetRDB`).
/// `Err` when nothing was saved.
pub(crate) fn flushed_all(shared: &Shared, shards: &mut Shards<'_>) -> Result<(), ()> {
    let points = !shared
        .config
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .save_points_list()
        .is_empty();
    if !points {
        return Err(());
    }
    if shared.persistence.bgsave_in_progress() {
        // It stops before it renames its file: never over this one.
        shared.persistence.cancel_background();
    }
    save_now(shared, shards).map_err(|_| ())
}

/// Stops a running BGSAVE and AOF rewrite, waiting (a bounded while) for
/// their threads to remove their temporary files.
fn stop_background_work(shared: &Shared) {
    let p = &shared.persistence;
    let aof = &shared.repl.aof;
    if p.bgsave_in_progress() {
        tracing::warn!("There is a child saving an .rdb. Killing it!");
        p.cancel_background();
    }
    if aof.rewriting() {
        tracing::warn!("There is a child rewriting the AOF. Killing it!");
        aof.cancel_rewrite();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while (p.bgsave_in_progress() || aof.rewriting()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

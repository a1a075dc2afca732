//! Files on disk: saving through a temporary file (write, fsync, rename,
//! fsync the directory, as Redis's `rdbSave`), loading at startup, and the
//! state SAVE, BGSAVE, LASTSAVE and INFO persistence share.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{LoadError, Loaded, read_with};
use crate::config::Config;

/// Where SAVE writes and startup reads: `dir`/`dbfilename`.
pub(crate) fn file_path(config: &Config) -> PathBuf {
    Path::new(config.get("dir").unwrap_or(".")).join(config.get("dbfilename").unwrap_or("dump.rdb"))
}

/// What writes a background save's file.
pub(crate) type WriteFile = Box<dyn FnMut(&mut File) -> io::Result<()> + Send>;

/// Saves told apart, so that two never write the same temporary file.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes a file to `path` atomically: `write` fills `path.tmp-PID-N`
/// beside it, which is synced, then renamed over `path` (unless `stop`
/// says otherwise by then), and the directory synced. A failure leaves
/// `path` as it was and removes the temporary file. The check and the
/// rename happen under `renaming`, so a save stopped in favour of
/// another never lands after it.
pub(crate) fn save_file(
    path: &Path,
    renaming: &Mutex<()>,
    write: &mut dyn FnMut(&mut File) -> io::Result<()>,
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "dbfilename is empty"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        // The writers buffer in 64 KiB chunks themselves.
        let mut file = File::create(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        drop(file);
        let _renaming = renaming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if stop() {
            return Err(super::stream::stopped());
        }
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory is.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads and parses the file at `path`, its sorted sets under
/// `limits`; `None` if there is none.
pub(crate) fn load_file(
    path: &Path,
    limits: store::rdb::Limits,
) -> Result<Option<Loaded>, LoadError> {
    match std::fs::read(path) {
        Ok(data) => Ok(Some(read_with(&data, limits)?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LoadError::Io(e)),
    }
}

/// Unix time in seconds.
fn now_secs() -> i64 {
    crate::server::now_ms() / 1000
}

/// What SAVE, BGSAVE, LASTSAVE and INFO persistence share.
#[derive(Debug)]
pub(crate) struct Persistence {
    /// Held while a save checks whether it was stopped and renames its
    /// file, so that a stopped BGSAVE never lands after the save that
    /// replaced it.
    writing: Mutex<()>,
    bgsave_in_progress: AtomicBool,
    /// When the running BGSAVE started, in Unix seconds.
    bgsave_started: AtomicI64,
    /// How long the last BGSAVE took, in seconds; -1 before the first.
    last_bgsave_secs: AtomicI64,
    last_bgsave_ok: AtomicBool,
    /// LASTSAVE: the last successful save, in Unix seconds; startup time
    /// until then, as in Redis.
    last_save: AtomicI64,
    /// Saves attempted, foreground and background (`rdb_saves`).
    saves: AtomicU64,
    /// The write counter (`Stats::dirty`) as of the last successful
    /// save's snapshot.
    dirty_at_save: AtomicU64,
    /// Keys the last load put in the keyspace, and left out as expired.
    loaded_keys: AtomicU64,
    expired_keys: AtomicU64,
    /// When the last BGSAVE was tried, in Unix seconds (a failed one is
    /// retried by the save points only after a while, as in Redis).
    last_bgsave_try: AtomicI64,
    /// A BGSAVE SCHEDULE waits for the running snapshot to end.
    scheduled: AtomicBool,
    /// Asks the running BGSAVE to stop and remove its temporary file
    /// (shutdown).
    cancel: AtomicBool,
    /// `stop-writes-on-bgsave-error yes` and save points set: a failed
    /// BGSAVE refuses writes (`-MISCONF`).
    stop_writes: AtomicBool,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            writing: Mutex::new(()),
            bgsave_in_progress: AtomicBool::new(false),
            bgsave_started: AtomicI64::new(0),
            last_bgsave_secs: AtomicI64::new(-1),
            last_bgsave_ok: AtomicBool::new(true),
            last_save: AtomicI64::new(now_secs()),
            saves: AtomicU64::new(0),
            dirty_at_save: AtomicU64::new(0),
            loaded_keys: AtomicU64::new(0),
            expired_keys: AtomicU64::new(0),
            last_bgsave_try: AtomicI64::new(0),
            scheduled: AtomicBool::new(false),
            cancel: AtomicBool::new(false),
            stop_writes: AtomicBool::new(true),
        }
    }
}

impl Persistence {
    /// Saves in the calling thread (SAVE, DEBUG RELOAD, SHUTDOWN SAVE):
    /// `write` writes the file (of `keys` keys) and gives the write
    /// counter as of its instant.
    pub(crate) fn save(
        &self,
        path: &Path,
        keys: &dyn Fn() -> usize,
        write: &mut dyn FnMut(&mut File) -> io::Result<u64>,
    ) -> io::Result<()> {
        self.saves.fetch_add(1, Relaxed);
        let started = Instant::now();
        let mut dirty = 0;
        let result = save_file(
            path,
            &self.writing,
            &mut |f| write(f).map(|d| dirty = d),
            &|| false,
        );
        match &result {
            Ok(()) => {
                self.saved(dirty);
                tracing::info!(
                    "DB saved on disk ({} keys, {:?})",
                    keys(),
                    started.elapsed()
                );
            }
            Err(e) => tracing::warn!("Write error saving DB on disk ({}): {e}", path.display()),
        }
        result
    }

    fn saved(&self, dirty: u64) {
        self.last_save.store(now_secs(), Relaxed);
        self.dirty_at_save.store(dirty, Relaxed);
        self.last_bgsave_ok.store(true, Relaxed);
    }

    /// Claims the right to run a BGSAVE: false if one is running.
    pub(crate) fn begin_background(&self) -> bool {
        let claimed = !self.bgsave_in_progress.swap(true, Relaxed);
        if claimed {
            self.bgsave_started.store(now_secs(), Relaxed);
            self.last_bgsave_try.store(now_secs(), Relaxed);
            self.cancel.store(false, Relaxed);
            self.scheduled.store(false, Relaxed);
        }
        claimed
    }

    /// Takes what the configuration says about failed saves.
    pub(crate) fn configure(&self, config: &Config) {
        let points = !config.save_points_list().is_empty();
        let stop = config.get("stop-writes-on-bgsave-error") == Some("yes");
        self.stop_writes.store(points && stop, Relaxed);
    }

    /// Whether writes are refused because the last BGSAVE failed (Redis's
    /// `DISK_ERROR_TYPE_RDB`).
    #[inline]
    pub(crate) fn refuses_writes(&self) -> bool {
        !self.last_bgsave_ok.load(Relaxed) && self.stop_writes.load(Relaxed)
    }

    /// Whether the last BGSAVE (or SAVE) succeeded.
    pub(crate) fn last_ok(&self) -> bool {
        self.last_bgsave_ok.load(Relaxed)
    }

    /// When the last BGSAVE was tried, in Unix seconds.
    pub(crate) fn last_try(&self) -> i64 {
        self.last_bgsave_try.load(Relaxed)
    }

    /// Asks for a BGSAVE as soon as no snapshot runs (BGSAVE SCHEDULE).
    pub(crate) fn schedule(&self) {
        self.scheduled.store(true, Relaxed);
    }

    /// Takes a scheduled BGSAVE's request.
    pub(crate) fn take_scheduled(&self) -> bool {
        self.scheduled.swap(false, Relaxed)
    }

    /// Asks the running BGSAVE to stop, its temporary file removed.
    pub(crate) fn cancel_background(&self) {
        self.cancel.store(true, Relaxed);
    }

    /// Whether the running BGSAVE was asked to stop.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Relaxed)
    }

    /// The changes since the last successful save, given the write
    /// counter now.
    pub(crate) fn changes_since_save(&self, dirty: u64) -> u64 {
        dirty.saturating_sub(self.dirty_at_save.load(Relaxed))
    }

    /// Runs `write` on a thread of its own to save `path` (a BGSAVE of
    /// `keys` keys whose instant was fixed, at write counter `dirty`),
    /// after [`Persistence::begin_background`] succeeded. `write` stops
    /// early when [`Persistence::cancelled`] says so. When the thread
    /// cannot start, `write` is dropped unrun and the error returned.
    pub(crate) fn spawn_background(
        self: &Arc<Self>,
        path: PathBuf,
        dirty: u64,
        keys: usize,
        mut write: WriteFile,
    ) -> io::Result<()> {
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("ember-bgsave".into())
            .spawn(move || {
                let _flush = crate::memory::FlushOnExit;
                this.saves.fetch_add(1, Relaxed);
                let started = Instant::now();
                let result = save_file(&path, &this.writing, &mut *write, &|| this.cancelled());
                drop(write);
                if this.cancelled() {
                    // Stopped at shutdown or by FLUSHALL: not a failure
                    // (Redis kills its child with SIGUSR1 then).
                    tracing::warn!("Background saving stopped, its temporary file removed");
                    this.bgsave_in_progress.store(false, Relaxed);
                    return;
                }
                match &result {
                    Ok(()) => {
                        this.saved(dirty);
                        tracing::info!("DB saved on disk ({keys} keys, {:?})", started.elapsed());
                        tracing::info!("Background saving terminated with success");
                    }
                    Err(e) => {
                        tracing::warn!("Write error saving DB on disk ({}): {e}", path.display());
                        tracing::warn!("Background saving error");
                    }
                }
                this.end_background(result.is_ok());
            });
        match spawned {
            Ok(_) => {
                tracing::info!("Background saving started");
                Ok(())
            }
            Err(e) => {
                tracing::warn!("Can't save in background: {e}");
                self.end_background(false);
                Err(e)
            }
        }
    }

    fn end_background(&self, ok: bool) {
        let took = now_secs() - self.bgsave_started.load(Relaxed);
        self.last_bgsave_secs.store(took.max(0), Relaxed);
        self.last_bgsave_ok.store(ok, Relaxed);
        self.bgsave_in_progress.store(false, Relaxed);
    }

    pub(crate) fn bgsave_in_progress(&self) -> bool {
        self.bgsave_in_progress.load(Relaxed)
    }

    /// LASTSAVE.
    pub(crate) fn last_save(&self) -> i64 {
        self.last_save.load(Relaxed)
    }

    /// Records a load: `dirty` is the write counter now, since a freshly
    /// loaded keyspace equals its file.
    pub(crate) fn loaded(&self, keys: usize, expired: usize, dirty: u64) {
        self.loaded_keys.store(keys as u64, Relaxed);
        self.expired_keys.store(expired as u64, Relaxed);
        self.dirty_at_save.store(dirty, Relaxed);
    }

    /// The INFO persistence lines about RDB, given the write counter now.
    pub(crate) fn info_lines(&self, dirty: u64) -> Vec<String> {
        let in_progress = self.bgsave_in_progress();
        let current = if in_progress {
            (now_secs() - self.bgsave_started.load(Relaxed)).max(0)
        } else {
            -1
        };
        let status = if self.last_bgsave_ok.load(Relaxed) {
            "ok"
        } else {
            "err"
        };
        vec![
            format!(
                "rdb_changes_since_last_save:{}",
                dirty.saturating_sub(self.dirty_at_save.load(Relaxed))
            ),
            format!("rdb_bgsave_in_progress:{}", u8::from(in_progress)),
            format!("rdb_last_save_time:{}", self.last_save()),
            format!("rdb_last_bgsave_status:{status}"),
            format!(
                "rdb_last_bgsave_time_sec:{}",
                self.last_bgsave_secs.load(Relaxed)
            ),
            format!("rdb_current_bgsave_time_sec:{current}"),
            format!("rdb_saves:{}", self.saves.load(Relaxed)),
            // No fork, so no copy-on-write.
            "rdb_last_cow_size:0".to_string(),
            format!(
                "rdb_last_load_keys_expired:{}",
                self.expired_keys.load(Relaxed)
            ),
            format!(
                "rdb_last_load_keys_loaded:{}",
                self.loaded_keys.load(Relaxed)
            ),
        ]
    }
}

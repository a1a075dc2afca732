//! Files on disk: saving through a temporary file (write, fsync, rename,
//! fsync the directory, as Redis's `rdbSave`), loading at startup, and the
//! state SAVE, BGSAVE, LASTSAVE and INFO persistence share.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Aux, LoadError, Loaded, Snapshot, read_with, write};
use crate::config::Config;

/// Where SAVE writes and startup reads: `dir`/`dbfilename`.
pub(crate) fn file_path(config: &Config) -> PathBuf {
    Path::new(config.get("dir").unwrap_or(".")).join(config.get("dbfilename").unwrap_or("dump.rdb"))
}

/// Writes `snapshot` to `path` atomically: into `path.tmp-PID` beside it,
/// synced, then renamed over `path`. A failure leaves `path` as it was
/// and removes the temporary file.
pub(crate) fn save_file(path: &Path, snapshot: &Snapshot, aux: &Aux) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "dbfilename is empty"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        // The writer buffers in 64 KiB chunks itself.
        let mut file = File::create(&tmp)?;
        write(snapshot, aux, &mut file)?;
        file.sync_all()?;
        drop(file);
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
    /// Held while a file is written, so two saves never write the same
    /// temporary file at once (SAVE on two connections runs in parallel
    /// here, unlike in Redis).
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
        }
    }
}

impl Persistence {
    /// Saves in the calling thread (SAVE, DEBUG RELOAD, SHUTDOWN SAVE).
    /// `dirty` is the write counter as of `snapshot`.
    pub(crate) fn save(
        &self,
        path: &Path,
        snapshot: &Snapshot,
        aux: &Aux,
        dirty: u64,
    ) -> io::Result<()> {
        let _writing = self
            .writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.saves.fetch_add(1, Relaxed);
        let started = Instant::now();
        let result = save_file(path, snapshot, aux);
        match &result {
            Ok(()) => {
                self.saved(dirty);
                tracing::info!(
                    "DB saved on disk ({} keys, {:?})",
                    snapshot.len(),
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
        }
        claimed
    }

    /// Writes `snapshot` on a thread of its own, after
    /// [`Persistence::begin_background`] succeeded.
    pub(crate) fn spawn_background(
        self: &Arc<Self>,
        path: PathBuf,
        snapshot: Snapshot,
        aux: Aux,
        dirty: u64,
    ) -> io::Result<()> {
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("ember-bgsave".into())
            .spawn(move || {
                let ok = this.save(&path, &snapshot, &aux, dirty).is_ok();
                // Dropping a large snapshot takes a while: not on the clock.
                drop(snapshot);
                this.end_background(ok);
                if ok {
                    tracing::info!("Background saving terminated with success");
                } else {
                    tracing::warn!("Background saving error");
                }
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

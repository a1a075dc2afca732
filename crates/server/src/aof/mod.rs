//! The append-only file, Redis 7.0's multi-part layout: in
//! `dir`/`appenddirname`, a manifest names one base file (an RDB file, or
//! commands) and the incremental files of commands written since, so that
//! Redis 7.0 starts from Ember's directory and Ember from Redis's.
//!
//! - What is appended is what replicas are sent: [`Aof::append_units`] is
//!   called by the replication stream (`Repl::append_units`) under the
//!   stream's lock, with the same units in the same order (expiries as
//!   DEL, MULTI/EXEC units whole), and SELECT when the file's database
//!   changes. PING, REPLCONF and PUBLISH go to replicas only, as in Redis.
//! - The bytes wait in a buffer until written: before its replies leave
//!   a client writes the buffer itself (`everysec`, `no`: a crash of the
//!   process loses nothing acknowledged), or, with `always`, writes and
//!   fsyncs it once its worker's other ready connections have appended
//!   theirs (group commit, see [`Aof::settle`]). The writer thread fsyncs
//!   once a second under `everysec`, writes what no client did (the
//!   expiry cycle's deletions), and starts automatic rewrites.
//! - A rewrite ([`start_rewrite`]) opens a new incremental file at the
//!   instant of a point-in-time snapshot (every shard locked), writes the
//!   snapshot as the new base on a thread of its own, then switches the
//!   manifest (temporary file, fsync, rename) and deletes what it
//!   replaced.
//! - [`load`] loads a directory at startup.
//! - A replica appends its master's stream as it applies it
//!   ([`Aof::append_replicated`]).

pub(crate) mod load;
pub(crate) mod manifest;

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use store::keyspace::Op;

use crate::db::Shards;
use crate::rdb::Aux;
use crate::server::Shared;

/// Why a rewrite did not start: another snapshot runs (it is scheduled).
pub(crate) const BUSY: &str = "another snapshot is being taken";
use manifest::Manifest;

/// `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Fsync {
    No = 0,
    Always = 1,
    Everysec = 2,
}

impl Fsync {
    fn parse(v: &str) -> Fsync {
        match v {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::Everysec,
        }
    }

    fn from_u8(v: u8) -> Fsync {
        match v {
            1 => Fsync::Always,
            0 => Fsync::No,
            _ => Fsync::Everysec,
        }
    }
}

/// How often the writer thread looks for work when nobody wakes it.
const TICK: Duration = Duration::from_millis(100);

/// The AOF's state, shared by every connection (it lives in `Repl`, beside
/// the stream that feeds it).
#[derive(Debug)]
pub(crate) struct Aof {
    /// Appends are taken: the AOF is on, or being turned on.
    on: AtomicBool,
    /// What was appended and not yet written. Taken under the stream's
    /// lock; always after `files` when both are held.
    pending: Mutex<Pending>,
    /// Wakes the writer thread (with `pending`).
    wake: Condvar,
    files: Mutex<Files>,
    /// Bytes appended, written and fsynced since the server started,
    /// whatever file they went to.
    written: AtomicU64,
    synced: tokio::sync::watch::Sender<u64>,
    policy: AtomicU8,
    no_fsync_on_rewrite: AtomicBool,
    rewrite_perc: AtomicI64,
    rewrite_min: AtomicI64,
    /// The writer thread runs.
    thread: AtomicBool,
    /// INFO persistence.
    current_size: AtomicU64,
    base_size: AtomicU64,
    last_write_ok: AtomicBool,
    rewriting: AtomicBool,
    rewrite_started: AtomicI64,
    last_rewrite_secs: AtomicI64,
    last_rewrite_ok: AtomicBool,
    rewrites: AtomicU64,
    failures: AtomicU64,
    /// DEBUG AOF-FLUSH-SLEEP: microseconds to wait before each write of
    /// the buffer, for tests.
    flush_sleep: AtomicU64,
    /// `aof-timestamp-enabled`: `#TS:<unix seconds>` annotations.
    timestamps: AtomicBool,
    /// The running rewrite must stop (the AOF was turned off).
    cancel: AtomicBool,
    /// A BGREWRITEAOF waits for the running snapshot to end.
    scheduled: AtomicBool,
    /// Why the last write or fsync failed, as C's `strerror` says it
    /// (`-MISCONF Errors writing to the AOF file: ...`).
    write_error: Mutex<String>,
    /// The background fsync of `everysec` runs (`aof_pending_bio_fsync`).
    fsyncing: AtomicBool,
    /// Since when writes of the buffer wait for that fsync (see
    /// [`Aof::postpone`]).
    postponed: Mutex<Option<Instant>>,
    /// Writes that went ahead after waiting [`POSTPONE_LIMIT`] for the
    /// fsync (`aof_delayed_fsync`).
    delayed: AtomicU64,
    /// DEBUG AOF-FSYNC-HOLD: while set, the background fsync waits before
    /// it starts (a disk that does not answer, for tests).
    hold: Mutex<bool>,
    held: Condvar,
    /// The last write of the buffer took more than one append: a client
    /// about to write yields first so that others append too.
    crowd: AtomicBool,
    /// Counts the writes that did not yield, to try once in a while.
    probe: AtomicU32,
    /// `pending.appended`, read without its lock.
    tail: AtomicU64,
    /// `aof-disable-auto-gc`: the files a rewrite replaced stay, named
    /// as history in the manifest.
    no_gc: AtomicBool,
    /// The writer thread waits on `wake` (set and cleared under
    /// `pending`'s lock, so an append made after it went to sleep sees
    /// it set).
    asleep: AtomicBool,
}

/// How long a write of the buffer waits for a running background fsync
/// under `everysec` (Redis's two seconds).
const POSTPONE_LIMIT: Duration = Duration::from_secs(2);

/// The buffer of appended bytes.
#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    /// Bytes appended so far (the end of `buf`).
    appended: u64,
    /// The database the file has selected, `None` at a new file's start.
    db: Option<usize>,
    /// The last `#TS:` annotation's time.
    ts: i64,
    /// Appends since the buffer was last taken to be written.
    appends: u32,
}

/// The files and the manifest.
#[derive(Debug, Default)]
struct Files {
    dir: PathBuf,
    /// `appendfilename`.
    prefix: String,
    manifest: Manifest,
    /// The incremental file appended to.
    current: Option<Arc<File>>,
    /// Files switched away from, still to be fsynced.
    retired: Vec<Arc<File>>,
    /// Bytes in `current`.
    incr_size: u64,
    /// Bytes in the manifest's other files.
    others_size: u64,
}

impl Default for Aof {
    fn default() -> Self {
        Aof {
            on: AtomicBool::new(false),
            pending: Mutex::default(),
            wake: Condvar::new(),
            files: Mutex::default(),
            written: AtomicU64::new(0),
            synced: tokio::sync::watch::Sender::new(0),
            policy: AtomicU8::new(Fsync::Everysec as u8),
            no_fsync_on_rewrite: AtomicBool::new(false),
            rewrite_perc: AtomicI64::new(100),
            rewrite_min: AtomicI64::new(64 * 1024 * 1024),
            thread: AtomicBool::new(false),
            current_size: AtomicU64::new(0),
            base_size: AtomicU64::new(0),
            last_write_ok: AtomicBool::new(true),
            rewriting: AtomicBool::new(false),
            rewrite_started: AtomicI64::new(0),
            last_rewrite_secs: AtomicI64::new(-1),
            last_rewrite_ok: AtomicBool::new(true),
            rewrites: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            flush_sleep: AtomicU64::new(0),
            timestamps: AtomicBool::new(false),
            cancel: AtomicBool::new(false),
            scheduled: AtomicBool::new(false),
            write_error: Mutex::default(),
            fsyncing: AtomicBool::new(false),
            postponed: Mutex::default(),
            delayed: AtomicU64::new(0),
            hold: Mutex::new(false),
            crowd: AtomicBool::new(false),
            probe: AtomicU32::new(0),
            asleep: AtomicBool::new(false),
            tail: AtomicU64::new(0),
            no_gc: AtomicBool::new(false),
            held: Condvar::new(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_secs() -> i64 {
    crate::server::now_ms() / 1000
}

/// `dir`/`appenddirname`.
fn aof_dir(shared: &Shared) -> PathBuf {
    Path::new(&shared.config_get("dir")).join(shared.config_get("appenddirname"))
}

impl Aof {
    /// Applies the settings CONFIG SET may change.
    pub(crate) fn configure(&self, config: &crate::config::Config) {
        self.policy.store(
            Fsync::parse(config.get("appendfsync").unwrap_or("everysec")) as u8,
            Relaxed,
        );
        self.no_fsync_on_rewrite.store(
            config.get("no-appendfsync-on-rewrite") == Some("yes"),
            Relaxed,
        );
        self.rewrite_perc
            .store(config.get_i64("auto-aof-rewrite-percentage"), Relaxed);
        self.rewrite_min
            .store(config.get_i64("auto-aof-rewrite-min-size"), Relaxed);
        self.timestamps
            .store(config.get("aof-timestamp-enabled") == Some("yes"), Relaxed);
        self.no_gc
            .store(config.get("aof-disable-auto-gc") == Some("yes"), Relaxed);
    }

    /// `#TS:<now>` before what is appended next, once a second, under
    /// `aof-timestamp-enabled` (Redis's annotation; loaders skip it).
    fn annotate(&self, p: &mut Pending) {
        if self.timestamps.load(Relaxed) {
            let now = now_secs();
            if now > p.ts {
                p.ts = now;
                p.buf.extend_from_slice(format!("#TS:{now}\r\n").as_bytes());
            }
        }
    }

    fn policy(&self) -> Fsync {
        Fsync::from_u8(self.policy.load(Relaxed))
    }

    /// Whether the AOF is on (INFO's `aof_enabled`).
    pub(crate) fn enabled(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// Appends units of commands, each wrapped in MULTI/EXEC if it holds
    /// more than one. Called under the stream's lock, so the file's order
    /// is the stream's.
    pub(crate) fn append_units(&self, units: &[Vec<Op>]) {
        if !self.on.load(Relaxed) {
            return;
        }
        let mut p = lock(&self.pending);
        let before = p.buf.len();
        self.annotate(&mut p);
        for ops in units {
            let wrap = ops.len() > 1;
            if wrap {
                p.push(ops[0].db, b"*1\r\n$5\r\nMULTI\r\n");
            }
            for op in ops {
                p.push(op.db, &op.bytes);
            }
            if wrap {
                p.push(None, b"*1\r\n$4\r\nEXEC\r\n");
            }
        }
        p.appended += (p.buf.len() - before) as u64;
        p.appends += 1;
        self.tail.store(p.appended, Relaxed);
    }

    /// A command of the master's stream, applied by this replica, in
    /// database `db`: appended as it came (its SELECTs are the file's own,
    /// so a new file starts with the right one).
    pub(crate) fn append_replicated(&self, db: usize, req: &resp::Request) {
        if !self.on.load(Relaxed) || req.is_empty() || req[0].eq_ignore_ascii_case(b"select") {
            return;
        }
        let op = Op::from_iter(Some(db), req.iter());
        let mut p = lock(&self.pending);
        let before = p.buf.len();
        self.annotate(&mut p);
        p.push(op.db, &op.bytes);
        p.appended += (p.buf.len() - before) as u64;
        p.appends += 1;
        self.tail.store(p.appended, Relaxed);
    }

    /// Bytes appended so far: a client that wrote notes this, and its
    /// replies wait until the file holds that much ([`Aof::settle`]).
    pub(crate) fn appended(&self) -> u64 {
        if !self.on.load(Relaxed) {
            return 0;
        }
        lock(&self.pending).appended
    }

    /// Waits until everything up to `upto` (from [`Aof::appended`]) is
    /// in the file, and on disk under `appendfsync always`.
    pub(crate) async fn settle(&self, upto: u64) {
        if upto == 0 || !self.on.load(Relaxed) {
            return;
        }
        if self.policy() == Fsync::Always {
            if *self.synced.borrow() >= upto {
                return;
            }
            // Group commit: the worker's other ready connections append
            // theirs first (a yield runs after them and after the next
            // look at the sockets; while each look brings more appends,
            // another, at most eight so that arrivals cannot hold the
            // fsync up); then the first of them to resume writes and
            // fsyncs for all, on the worker itself, as Redis does once
            // per turn of its event loop. The worker serves nobody
            // meanwhile, so requests gather for the next fsync. A writer
            // thread fsyncing as soon as one client waited took 1.4
            // requests an fsync at pipeline 1 with 50 clients; this
            // takes about 23 (Redis: 50, strace).
            let mut seen = self.tail.load(Relaxed);
            for _ in 0..8 {
                tokio::task::yield_now().await;
                if *self.synced.borrow() >= upto {
                    return;
                }
                let now = self.tail.load(Relaxed);
                if now == seen {
                    break;
                }
                seen = now;
            }
            if !(self.no_fsync_on_rewrite.load(Relaxed) && self.rewriting()) {
                self.sync();
                if *self.synced.borrow() >= upto {
                    return;
                }
            }
            // Held by a rewrite, or the disk failed: the writer thread
            // writes (and retries) and releases the reply.
            let mut rx = self.synced.subscribe();
            // A notify is a system call: only when the thread sleeps.
            if self.asleep.load(Relaxed) {
                self.wake.notify_one();
            }
            let _ = rx.wait_for(|s| *s >= upto).await;
        } else if self.written.load(Relaxed) < upto {
            // Let the other connections the worker has ready append
            // theirs first (a yield runs after them and after the next
            // look at the sockets), so that one write takes them all, as
            // Redis writes its buffer once per turn of its event loop.
            // Worth it while writes take several appends each; with one
            // client writing it only costs, so then one write in 16 tries.
            if self.crowd.load(Relaxed) || self.probe.fetch_add(1, Relaxed).is_multiple_of(16) {
                tokio::task::yield_now().await;
                if self.written.load(Relaxed) >= upto {
                    return;
                }
            }
            let mut files = lock(&self.files);
            if self.policy() == Fsync::Everysec && self.postpone() {
                return;
            }
            self.write_locked(&mut files);
        }
    }

    /// Redis's rule for `everysec` on a slow disk: while the background
    /// fsync runs, a write to the same file may block until it ends, so
    /// the buffer waits (the reply leaves, the bytes stay buffered, the
    /// writer thread writes them once the fsync is done). After
    /// [`POSTPONE_LIMIT`] of waiting the write goes ahead anyway, counted
    /// in `aof_delayed_fsync`. True when this write is to wait.
    fn postpone(&self) -> bool {
        let mut since = lock(&self.postponed);
        if !self.fsyncing.load(Acquire) {
            *since = None;
            return false;
        }
        match *since {
            None => {
                *since = Some(Instant::now());
                true
            }
            Some(t) if t.elapsed() < POSTPONE_LIMIT => true,
            Some(_) => {
                *since = None;
                self.delayed.fetch_add(1, Relaxed);
                tracing::info!(
                    "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis."
                );
                false
            }
        }
    }

    /// DEBUG AOF-FSYNC-HOLD: `true` makes the next background fsync wait
    /// before it starts, `false` lets it go.
    pub(crate) fn set_fsync_hold(&self, on: bool) {
        *lock(&self.hold) = on;
        self.held.notify_all();
    }

    /// The background fsync of `everysec`: the buffer written, then the
    /// fsync, during which writes of the buffer are postponed.
    fn sync_background(&self) {
        self.fsyncing.store(true, Release);
        self.sync_with(&|| {
            let mut hold = lock(&self.hold);
            while *hold {
                hold = self
                    .held
                    .wait(hold)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        });
        self.fsyncing.store(false, Release);
    }

    /// Writes the buffer to the current file. Under `files`' lock, so
    /// buffers reach the file in the order they were taken.
    fn write_locked(&self, files: &mut Files) {
        let (buf, end) = {
            let mut p = lock(&self.pending);
            if p.buf.is_empty() {
                return;
            }
            self.crowd
                .store(std::mem::take(&mut p.appends) > 1, Relaxed);
            (std::mem::take(&mut p.buf), p.appended)
        };
        let sleep = self.flush_sleep.load(Relaxed);
        if sleep > 0 {
            std::thread::sleep(Duration::from_micros(sleep));
        }
        let Some(file) = files.current.clone() else {
            // Being switched off: nothing to write to.
            self.written.store(end, Relaxed);
            return;
        };
        match (&*file).write_all(&buf) {
            Ok(()) => {
                files.incr_size += buf.len() as u64;
                self.current_size
                    .store(files.incr_size + files.others_size, Relaxed);
                self.written.store(end, Relaxed);
                if !self.last_write_ok.swap(true, Relaxed) {
                    tracing::warn!("AOF write error looks solved, Redis can write again.");
                }
            }
            Err(e) => {
                tracing::warn!("Error writing to the AOF file: {e}");
                self.failed(&e);
                // Drop a partial write, and keep the bytes for the next
                // try. Redis exits here under `always`; Ember keeps the
                // replies waiting until the disk takes the bytes.
                let _ = file.set_len(files.incr_size);
                let mut p = lock(&self.pending);
                let mut buf = buf;
                buf.extend_from_slice(&p.buf);
                p.buf = buf;
            }
        }
    }

    /// Writes the buffer, then fsyncs every file written since the last
    /// fsync, and releases the replies waiting for it.
    fn sync(&self) {
        self.sync_with(&|| {});
    }

    /// [`Aof::sync`], running `before_fsync` between the write and the
    /// fsync.
    fn sync_with(&self, before_fsync: &dyn Fn()) {
        let (targets, upto) = {
            let mut files = lock(&self.files);
            self.write_locked(&mut files);
            let mut targets: Vec<Arc<File>> = files.retired.drain(..).collect();
            targets.extend(files.current.clone());
            (targets, self.written.load(Relaxed))
        };
        if upto <= *self.synced.borrow() {
            return;
        }
        before_fsync();
        for f in &targets {
            if let Err(e) = f.sync_data() {
                tracing::warn!("Error fsyncing the AOF file: {e}");
                self.failed(&e);
                return;
            }
        }
        self.synced.send_if_modified(|s| {
            let moved = upto > *s;
            *s = (*s).max(upto);
            moved
        });
    }

    /// Releases every reply waiting for the file: the AOF was switched
    /// off, after a last write and fsync.
    fn release_all(&self) {
        let end = lock(&self.pending).appended;
        self.written.store(end, Relaxed);
        self.synced.send_modify(|s| *s = (*s).max(end));
    }

    /// INFO persistence's AOF lines.
    pub(crate) fn info_lines(&self) -> Vec<String> {
        let rewriting = self.rewriting.load(Relaxed);
        let current = if rewriting {
            (now_secs() - self.rewrite_started.load(Relaxed)).max(0)
        } else {
            -1
        };
        let status = |ok: bool| if ok { "ok" } else { "err" };
        let mut lines = vec![
            format!("aof_enabled:{}", u8::from(self.enabled())),
            format!("aof_rewrite_in_progress:{}", u8::from(rewriting)),
            format!(
                "aof_rewrite_scheduled:{}",
                u8::from(self.scheduled.load(Relaxed))
            ),
            format!(
                "aof_last_rewrite_time_sec:{}",
                self.last_rewrite_secs.load(Relaxed)
            ),
            format!("aof_current_rewrite_time_sec:{current}"),
            format!(
                "aof_last_bgrewrite_status:{}",
                status(self.last_rewrite_ok.load(Relaxed))
            ),
            format!("aof_rewrites:{}", self.rewrites.load(Relaxed)),
            format!(
                "aof_rewrites_consecutive_failures:{}",
                self.failures.load(Relaxed)
            ),
            format!(
                "aof_last_write_status:{}",
                status(self.last_write_ok.load(Relaxed))
            ),
            "aof_last_cow_size:0".to_string(),
            "module_fork_in_progress:0".to_string(),
            "module_fork_last_cow_size:0".to_string(),
        ];
        if self.enabled() {
            let buffered = lock(&self.pending).buf.len();
            lines.extend([
                format!("aof_current_size:{}", self.current_size.load(Relaxed)),
                format!("aof_base_size:{}", self.base_size.load(Relaxed)),
                "aof_pending_rewrite:0".to_string(),
                format!("aof_buffer_length:{buffered}"),
                format!(
                    "aof_pending_bio_fsync:{}",
                    u8::from(self.fsyncing.load(Relaxed))
                ),
                format!("aof_delayed_fsync:{}", self.delayed.load(Relaxed)),
            ]);
        }
        lines
    }

    /// DEBUG AOF-FLUSH-SLEEP.
    pub(crate) fn set_flush_sleep(&self, usec: u64) {
        self.flush_sleep.store(usec, Relaxed);
    }

    /// Whether a rewrite runs (BGSAVE and BGREWRITEAOF exclude each other
    /// in Redis; here only rewrites exclude rewrites).
    pub(crate) fn rewriting(&self) -> bool {
        self.rewriting.load(Relaxed)
    }

    /// Takes a scheduled BGREWRITEAOF's request.
    pub(crate) fn take_scheduled(&self) -> bool {
        self.scheduled.swap(false, Relaxed)
    }

    /// Stops the running rewrite (shutdown): its base is not installed
    /// and its temporary file is removed.
    pub(crate) fn cancel_rewrite(&self) {
        self.cancel.store(true, Relaxed);
    }

    /// Why writes are refused, while the AOF is on and its last write or
    /// fsync failed (Redis's `DISK_ERROR_TYPE_AOF`).
    #[inline]
    pub(crate) fn write_error(&self) -> Option<String> {
        if self.last_write_ok.load(Relaxed) || !self.enabled() {
            return None;
        }
        Some(lock(&self.write_error).clone())
    }

    fn failed(&self, e: &io::Error) {
        *lock(&self.write_error) = strerror(e);
        self.last_write_ok.store(false, Relaxed);
    }
}

/// An I/O error as C's `strerror` words it: Rust's text without its
/// `(os error N)`.
pub(crate) fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

impl Pending {
    fn push(&mut self, db: Option<usize>, bytes: &[u8]) {
        if let Some(db) = db
            && self.db != Some(db)
        {
            let n = db.to_string();
            let select = Op::new(None, &[&b"SELECT"[..], n.as_bytes()]);
            self.buf.extend_from_slice(&select.bytes);
            self.db = Some(db);
        }
        self.buf.extend_from_slice(bytes);
    }
}

impl Files {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `manifest` atomically: a temporary file, fsynced, renamed
    /// over the manifest, then the directory fsynced.
    fn persist(&self, manifest: &Manifest) -> io::Result<()> {
        let name = format!("{}.manifest", self.prefix);
        let tmp = self.path(&format!("temp-{name}"));
        let mut f = File::create(&tmp)?;
        f.write_all(manifest.format().as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, self.path(&name))?;
        File::open(&self.dir)?.sync_all()
    }

    /// Sizes of the manifest's files but the current one.
    fn measure(&mut self) {
        let last = self.manifest.incr.last().map(|f| f.name.clone());
        self.others_size = self
            .manifest
            .replay()
            .filter(|f| Some(&f.name) != last.as_ref())
            .map(|f| file_size(&self.path(&f.name)))
            .sum();
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn open_append(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Starts recording the keyspace's changes (the stream the AOF is fed
/// from), as when a replica first asks for it: expired keys are deleted
/// only by commands that record the deletion.
fn start_recording(shards: &mut Shards<'_>) {
    let ks = shards.keyspace();
    if ks.feeding() {
        return;
    }
    let mut locked = shards.lock_all();
    for shard in locked.shards() {
        for db in &mut shard.dbs {
            db.hide_expired = true;
        }
    }
    ks.set_feeding(true);
}

/// Stops recording, unless replicas still need the stream.
fn stop_recording(shared: &Shared, shards: &mut Shards<'_>) {
    if shared.repl.has_backlog() || shared.repl.is_replica() {
        return;
    }
    let ks = shards.keyspace();
    let mut locked = shards.lock_all();
    for shard in locked.shards() {
        for db in &mut shard.dbs {
            db.hide_expired = false;
        }
    }
    ks.set_feeding(false);
}

/// Reads the manifest in `dir`, if there is one.
fn read_manifest(dir: &Path, prefix: &str) -> Result<Option<Manifest>, String> {
    let path = dir.join(format!("{prefix}.manifest"));
    match std::fs::read(&path) {
        Ok(text) => Manifest::parse(&text).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "Fatal error: can't open the AOF manifest file {} for reading: {e}",
            path.display()
        )),
    }
}

/// Loads the AOF at startup (`appendonly yes`; the AOF takes precedence
/// over the RDB file, as in Redis), then opens it for appending. The
/// error is what is wrong, with the file and offset.
pub(crate) fn load(shared: &Shared) -> Result<(), String> {
    let dir = aof_dir(shared);
    let prefix = shared.config_get("appendfilename");
    let truncated_ok = shared.config_get("aof-load-truncated") == "yes";
    let mut manifest = read_manifest(&dir, &prefix)?;
    // Redis 7.0's upgrade: an old-style `appendfilename` in `dir` becomes
    // the base of a new directory, when there is no directory, or no
    // manifest, or the manifest of an upgrade interrupted before the file
    // was moved (its base alone, under the old name, not yet in the
    // directory).
    let old = Path::new(&shared.config_get("dir")).join(&prefix);
    let upgrade = old.is_file()
        && (!dir.is_dir()
            || manifest
                .as_ref()
                .is_none_or(|m| m.base.is_none() && m.incr.is_empty())
            || manifest.as_ref().is_some_and(|m| {
                m.incr.is_empty()
                    && m.base.as_ref().is_some_and(|b| b.name == prefix)
                    && !dir.join(&prefix).exists()
            }));
    if upgrade {
        std::fs::create_dir_all(&dir).map_err(|e| {
            format!(
                "Can't open or create append-only dir {}: {e}",
                dir.display()
            )
        })?;
        let m = Manifest {
            base_seq: 1,
            base: Some(manifest::FileInfo {
                name: prefix.clone(),
                seq: 1,
                kind: manifest::Kind::Base,
            }),
            ..Manifest::default()
        };
        let files = Files {
            dir: dir.clone(),
            prefix: prefix.clone(),
            ..Files::default()
        };
        files.persist(&m).map_err(|e| e.to_string())?;
        std::fs::rename(&old, dir.join(&prefix)).map_err(|e| {
            format!(
                "Error trying to move the old AOF file {prefix} into dir {}: {e}",
                dir.display()
            )
        })?;
        tracing::info!(
            "Successfully migrated an old-style AOF file ({prefix}) into the AOF directory ({}).",
            dir.display()
        );
        manifest = Some(m);
    }
    let manifest = manifest.unwrap_or_default();
    let started = Instant::now();
    let names: Vec<String> = manifest.replay().map(|f| f.name.clone()).collect();
    let mut loader = load::Loader::new(shared);
    let mut loaded_any = false;
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        let path = dir.join(name);
        let data = match std::fs::read(&path) {
            Ok(d) => Bytes::from(d),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(format!("The append log file {name} doesn't exist: {e}"));
            }
            Err(e) => {
                return Err(format!(
                    "Fatal error: can't open the append log file {name} for reading: {e}"
                ));
            }
        };
        let mut rest = data.clone();
        if i == 0 && manifest.base.is_some() && data.starts_with(b"REDIS") {
            let mut loaded =
                crate::rdb::read_with(&data, shared.encodings.load_limits()).map_err(|e| {
                    format!("Error reading the RDB base file {name}, AOF loading aborted: {e}")
                })?;
            loaded.fit_sets(crate::cmd::sets::max_intset(shared));
            rest = data.slice(loaded.end.min(data.len())..);
            let functions = std::mem::take(&mut loaded.functions);
            let mut shards = Shards::new(&shared.keyspace);
            crate::rdb::install(&mut shards, loaded, Some(crate::server::now_ms()))
                .map_err(|e| format!("Error reading the RDB base file {name}: {e}"))?;
            shared
                .scripts
                .functions
                .install(&shared.scripts.watch, &functions)
                .map_err(|e| format!("Error reading the RDB base file {name}: {e}"))?;
        }
        let outcome = loader.run_file(name, &path, &rest, truncated_ok && last)?;
        loaded_any |= !data.is_empty();
        if let load::Outcome::Truncated(_) = outcome
            && !last
        {
            return Err(format!(
                "Fatal error: the truncated file is not the last file ({name})"
            ));
        }
    }
    loader.finish();
    if loaded_any {
        tracing::info!(
            "DB loaded from append only file: {:.3} seconds",
            started.elapsed().as_secs_f64()
        );
    }
    open(shared, manifest, &dir, &prefix)
}

/// One file of the manifest, read whole for DEBUG LOADAOF: its RDB part,
/// if it has one, then its commands.
pub(crate) struct FileParts {
    pub(crate) rdb: Option<crate::rdb::Loaded>,
    pub(crate) commands: Vec<Vec<Bytes>>,
}

/// Writes and fsyncs what is buffered, then reads every file the manifest
/// names (DEBUG LOADAOF, which runs them under every shard lock). A file
/// that does not parse whole is an error.
pub(crate) fn read_all(shared: &Shared) -> Result<Vec<FileParts>, String> {
    if shared.repl.aof.enabled() {
        shared.repl.aof.sync();
    }
    let dir = aof_dir(shared);
    let prefix = shared.config_get("appendfilename");
    let manifest = read_manifest(&dir, &prefix)?.unwrap_or_default();
    let mut out = Vec::new();
    for (i, f) in manifest.replay().enumerate() {
        let data = Bytes::from(
            std::fs::read(dir.join(&f.name))
                .map_err(|e| format!("can't read the append log file {}: {e}", f.name))?,
        );
        let mut parts = FileParts {
            rdb: None,
            commands: Vec::new(),
        };
        let mut pos = 0;
        if i == 0 && manifest.base.is_some() && data.starts_with(b"REDIS") {
            let mut loaded = crate::rdb::read_with(&data, shared.encodings.load_limits())
                .map_err(|e| format!("Error reading the RDB base file {}: {e}", f.name))?;
            loaded.fit_sets(crate::cmd::sets::max_intset(shared));
            pos = loaded.end;
            parts.rdb = Some(loaded);
        }
        loop {
            match load::next_command(&data, pos) {
                Ok(Some((args, end))) => {
                    parts.commands.push(args);
                    pos = end;
                }
                Ok(None) => break,
                Err(load::Stop::Truncated { valid }) => {
                    return Err(format!(
                        "Unexpected end of file reading the append only file {} (after offset {valid})",
                        f.name
                    ));
                }
                Err(load::Stop::Format { offset }) => {
                    return Err(format!(
                        "Bad file format reading the append only file {} (at offset {offset})",
                        f.name
                    ));
                }
            }
        }
        out.push(parts);
    }
    Ok(out)
}

/// Opens the AOF for appending after a load (Redis's
/// `aofOpenIfNeededOnServerStart`): an empty directory gets a base file
/// first; the last incremental file is appended to, or a new one made.
fn open(shared: &Shared, mut manifest: Manifest, dir: &Path, prefix: &str) -> Result<(), String> {
    let aof = &shared.repl.aof;
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "Can't open or create append-only dir {}: {e}",
            dir.display()
        )
    })?;
    let mut files = Files {
        dir: dir.to_path_buf(),
        prefix: prefix.to_string(),
        ..Files::default()
    };
    let mut shards = Shards::new(&shared.keyspace);
    if manifest.base.is_none() && manifest.incr.is_empty() {
        let preamble = shared.config_get("aof-use-rdb-preamble") == "yes";
        let name = manifest.new_base(prefix, preamble);
        let ts = shared.config_get("aof-timestamp-enabled") == "yes";
        let mut f = File::create(files.path(&name))
            .map_err(|e| format!("Can't write the AOF base file {name}: {e}"))?;
        let mut pace = |_| true;
        crate::rdb::stream::foreground(
            &mut shards,
            encoder(preamble),
            || shared.scripts.functions.codes(),
            &mut pace,
            |functions, sizes, walker| write_base(&mut f, sizes, walker, functions, preamble, ts),
        )
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("Can't write the AOF base file {name}: {e}"))?;
        tracing::info!("Creating AOF base file {name} on server start");
    }
    let fresh = manifest.incr.is_empty();
    let name = match manifest.incr.last() {
        Some(f) => f.name.clone(),
        None => manifest.new_incr(prefix),
    };
    let file = open_append(&files.path(&name))
        .map_err(|e| format!("Can't open the append-only file {name}: {e}"))?;
    files.persist(&manifest).map_err(|e| e.to_string())?;
    files.incr_size = file.metadata().map(|m| m.len()).unwrap_or(0);
    files.manifest = manifest;
    files.measure();
    files.current = Some(Arc::new(file));
    if fresh {
        tracing::info!("Creating AOF incr file {name} on server start");
    } else {
        tracing::info!("Opening AOF incr file {name} on server start");
    }
    let size = files.incr_size + files.others_size;
    aof.current_size.store(size, Relaxed);
    aof.base_size.store(size, Relaxed);
    *lock(&aof.files) = files;
    lock(&aof.pending).db = None;
    start_recording(&mut shards);
    aof.on.store(true, Relaxed);
    spawn_writer(shared);
    Ok(())
}

/// The encoder of a base file's keys: RDB entries (the preamble), or
/// commands.
fn encoder(preamble: bool) -> Arc<dyn store::keyspace::Encoder> {
    if preamble {
        Arc::new(crate::rdb::stream::RdbEncoder)
    } else {
        Arc::new(rewrite::Commands)
    }
}

/// Writes a base file from a walk of a snapshot (`sizes` its instant's
/// counts) encoded by [`encoder`]`(preamble)`: an RDB file marked
/// `aof-base`, or commands. The function libraries (taken at the
/// snapshot's instant) come first, as Redis writes them: FUNCTION2
/// records, or FUNCTION LOAD commands.
fn write_base(
    f: &mut File,
    sizes: &[(usize, usize)],
    walker: &mut dyn crate::rdb::stream::Walker,
    functions: &[Bytes],
    preamble: bool,
    ts: bool,
) -> io::Result<()> {
    if preamble {
        let aux = Aux {
            aof_base: true,
            functions: functions.to_vec(),
            ..Aux::default()
        };
        crate::rdb::stream::write_rdb(&aux, sizes, walker, f)
    } else {
        let mut out = io::BufWriter::with_capacity(64 * 1024, f);
        if ts {
            write!(out, "#TS:{}\r\n", now_secs())?;
        }
        for code in functions {
            let mut cmd = Vec::with_capacity(code.len() + 48);
            store::keyspace::encode_into(&mut cmd, [&b"FUNCTION"[..], b"LOAD", code].into_iter());
            out.write_all(&cmd)?;
        }
        rewrite::write_commands(sizes, walker, &mut out)?;
        out.flush()
    }
}

mod rewrite;

/// Starts the writer thread once.
fn spawn_writer(shared: &Shared) {
    let aof = &shared.repl.aof;
    if aof.thread.swap(true, Relaxed) {
        return;
    }
    let me = shared.me.clone();
    let spawned = std::thread::Builder::new()
        .name("ember-aof".into())
        .spawn(move || {
            let _flush = crate::memory::FlushOnExit;
            writer(me);
        });
    if let Err(e) = spawned {
        tracing::warn!("Can't start the AOF thread: {e}");
        aof.thread.store(false, Relaxed);
    }
}

/// The writer thread: writes what commands outside any client appended
/// (the expiry cycle's deletions) every tick and, under `everysec`,
/// fsyncs once a second; under `always` it writes and fsyncs what
/// clients left waiting (a rewrite holding the fsync, a failing disk
/// retried), since clients fsync their own. Also starts automatic
/// rewrites.
fn writer(me: std::sync::Weak<Shared>) {
    let mut last_sync = Instant::now();
    let mut last_check = Instant::now();
    loop {
        let Some(shared) = me.upgrade() else {
            return;
        };
        if shared.shutdown.is_triggered() {
            let aof = &shared.repl.aof;
            if aof.enabled() {
                aof.sync();
            }
            return;
        }
        let aof = &shared.repl.aof;
        if !aof.last_write_ok.load(Relaxed) {
            // A failing disk is retried at a calm pace.
            std::thread::sleep(TICK);
        }
        {
            // Under `always` the thread works as soon as something waits
            // to be fsynced; otherwise only at its next tick or the next
            // second's fsync (before, `everysec` found bytes written and
            // not fsynced for up to a second after each fsync and spun,
            // contending for the buffer's lock with every client).
            let p = lock(&aof.pending);
            let idle = match aof.policy() {
                Fsync::Always => {
                    p.buf.is_empty() && aof.written.load(Relaxed) <= *aof.synced.borrow()
                }
                Fsync::Everysec | Fsync::No => true,
            };
            if idle {
                let next_sync = Duration::from_secs(1).saturating_sub(last_sync.elapsed());
                // A rewrite under `no-appendfsync-on-rewrite` holds the
                // fsync: the next one is not due while it runs.
                let held = aof.no_fsync_on_rewrite.load(Relaxed) && aof.rewriting();
                let wait = match aof.policy() {
                    Fsync::Everysec if !held => TICK.min(next_sync),
                    _ => TICK,
                };
                if !wait.is_zero() {
                    aof.asleep.store(true, Relaxed);
                    let woken = aof.wake.wait_timeout(p, wait);
                    aof.asleep.store(false, Relaxed);
                    drop(woken);
                }
            }
        }
        if !aof.enabled() {
            continue;
        }
        let policy = aof.policy();
        // Redis's `no-appendfsync-on-rewrite`: no fsync while a rewrite
        // writes its base, whatever the policy.
        let hold = aof.no_fsync_on_rewrite.load(Relaxed) && aof.rewriting();
        match policy {
            Fsync::Always if !hold => aof.sync(),
            Fsync::Everysec if !hold && last_sync.elapsed() >= Duration::from_secs(1) => {
                aof.sync_background();
                last_sync = Instant::now();
            }
            _ => {
                let mut files = lock(&aof.files);
                aof.write_locked(&mut files);
                if hold && policy == Fsync::Always {
                    // Replies cannot wait for a whole rewrite.
                    drop(files);
                    aof.release_all();
                }
            }
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            auto_rewrite(&shared);
        }
    }
}

/// Starts a rewrite when the AOF grew past `auto-aof-rewrite-percentage`
/// of its size after the last one, and past `auto-aof-rewrite-min-size`.
fn auto_rewrite(shared: &Shared) {
    let aof = &shared.repl.aof;
    let perc = aof.rewrite_perc.load(Relaxed);
    if perc <= 0 || aof.rewriting() || !aof.enabled() {
        return;
    }
    let current = aof.current_size.load(Relaxed);
    if current as i64 <= aof.rewrite_min.load(Relaxed) {
        return;
    }
    let base = aof.base_size.load(Relaxed).max(1);
    let growth = (current as i64 * 100 / base as i64) - 100;
    if growth >= perc {
        tracing::info!("Starting automatic rewriting of AOF on {growth}% growth");
        let mut shards = Shards::new(&shared.keyspace);
        if let Err(e) = start_rewrite(shared, &mut shards) {
            tracing::warn!("{e}");
        }
    }
}

/// A rewrite whose snapshot's instant is fixed, its base still to write.
struct Job {
    fixed: crate::rdb::stream::Fixed,
    /// The base has the RDB preamble (the encoder the snapshot was fixed
    /// with).
    preamble: bool,
    /// The function libraries at the snapshot's instant.
    functions: Vec<Bytes>,
    /// The AOF is being turned on: the manifest to install names the new
    /// incremental file already.
    enabling: Option<Manifest>,
    started: Instant,
}

/// Starts a rewrite: a new incremental file from this instant, the
/// snapshot of this instant written as the new base on a thread of its
/// own. With the AOF off (BGREWRITEAOF while `appendonly no`), only the
/// base is written, and a manifest naming it alone.
pub(crate) fn start_rewrite(shared: &Shared, shards: &mut Shards<'_>) -> Result<(), String> {
    let aof = &shared.repl.aof;
    if aof.rewriting.swap(true, Relaxed) {
        return Err("ERR Background append only file rewriting already in progress".into());
    }
    aof.cancel.store(false, Relaxed);
    aof.rewrite_started.store(now_secs(), Relaxed);
    let job = match prepare(shared, shards, false) {
        Ok(job) => job,
        Err(e) if e == BUSY => {
            // Another snapshot runs (a BGSAVE): Redis schedules the
            // rewrite for when its child is done, and so does Ember.
            aof.rewriting.store(false, Relaxed);
            aof.scheduled.store(true, Relaxed);
            return Err(BUSY.into());
        }
        Err(e) => {
            aof.rewriting.store(false, Relaxed);
            aof.last_rewrite_ok.store(false, Relaxed);
            aof.failures.fetch_add(1, Relaxed);
            return Err(format!(
                "ERR Can't rewrite append only file in background: {e}"
            ));
        }
    };
    spawn_job(shared, job)
}

fn spawn_job(shared: &Shared, job: Job) -> Result<(), String> {
    let Some(me) = shared.me.upgrade() else {
        shared.keyspace.end_snapshot(job.fixed.epoch());
        shared.repl.aof.rewriting.store(false, Relaxed);
        return Err("ERR the server is stopping".into());
    };
    let epoch = job.fixed.epoch();
    let spawned = std::thread::Builder::new()
        .name("ember-aofrw".into())
        .spawn(move || {
            let _flush = crate::memory::FlushOnExit;
            finish(&me, job);
        });
    match spawned {
        Ok(_) => {
            tracing::info!("Background append only file rewriting started");
            Ok(())
        }
        Err(e) => {
            let aof = &shared.repl.aof;
            shared.keyspace.end_snapshot(epoch);
            aof.rewriting.store(false, Relaxed);
            aof.last_rewrite_ok.store(false, Relaxed);
            Err(format!(
                "ERR Can't rewrite append only file in background: {e}"
            ))
        }
    }
}

/// The instant of a rewrite: with every shard locked, the snapshot is
/// fixed and appends switch to the new incremental file.
fn prepare(shared: &Shared, shards: &mut Shards<'_>, enabling: bool) -> Result<Job, String> {
    let aof = &shared.repl.aof;
    let held = shards.held().is_some();
    if shared.keyspace.snapshot_running() && (held || !enabling) {
        // One snapshot at a time: BGREWRITEAOF is scheduled; inside EXEC
        // nothing may wait for the running one (it may need our locks).
        return Err(BUSY.into());
    }
    let preamble = shared.config_get("aof-use-rdb-preamble") == "yes";
    let dir = aof_dir(shared);
    let prefix = shared.config_get("appendfilename");
    // Creating the file and making the manifest durable (three fsyncs)
    // take milliseconds: the worker's other connections are served
    // elsewhere meanwhile, as Redis's clients are not (it does this on
    // its main thread).
    let next = crate::server::off_worker(|| -> Result<_, String> {
        std::fs::create_dir_all(&dir).map_err(|e| {
            format!(
                "Can't open or create append-only dir {}: {e}",
                dir.display()
            )
        })?;
        let on = aof.enabled() || enabling;
        // The new incremental file, in a manifest made durable before anything
        // is written to it.
        let next = if on {
            let mut manifest = if enabling {
                read_manifest(&dir, &prefix)?.unwrap_or_default()
            } else {
                lock(&aof.files).manifest.clone()
            };
            let name = manifest.new_incr(&prefix);
            let file = open_append(&dir.join(&name))
                .map_err(|e| format!("Can't open the append-only file {name}: {e}"))?;
            file.set_len(0).map_err(|e| e.to_string())?;
            if !enabling {
                let files = lock(&aof.files);
                files.persist(&manifest).map_err(|e| e.to_string())?;
            }
            tracing::info!("Creating AOF incr file {name} on background rewrite");
            Some((manifest, Arc::new(file)))
        } else {
            None
        };
        Ok(next)
    })?;
    if enabling {
        // A replica records nothing itself: its AOF is its master's stream.
        if !shared.repl.is_replica() {
            start_recording(shards);
        }
        let mut files = lock(&aof.files);
        files.dir.clone_from(&dir);
        files.prefix.clone_from(&prefix);
        drop(files);
        aof.on.store(true, Relaxed);
    }
    let mut enabling_manifest = None;
    let mut next = next;
    let mut at_instant = || {
        let functions = shared.scripts.functions.codes();
        let Some((manifest, file)) = next.take() else {
            return functions;
        };
        let mut files = lock(&aof.files);
        if enabling {
            // What was appended before this instant is in the snapshot.
            let mut p = lock(&aof.pending);
            p.buf.clear();
            p.db = None;
            aof.written.store(p.appended, Relaxed);
            drop(p);
            enabling_manifest = Some(manifest.clone());
        } else {
            aof.write_locked(&mut files);
            lock(&aof.pending).db = None;
            files.others_size += files.incr_size;
        }
        if let Some(old) = files.current.replace(file) {
            files.retired.push(old);
        }
        files.incr_size = 0;
        files.manifest = manifest;
        functions
    };
    let fixed = if held || !enabling {
        crate::rdb::stream::fix(shards, encoder(preamble), &mut at_instant)
    } else {
        // Turning the AOF on waits for a running snapshot to end.
        Some(crate::rdb::stream::fix_waiting(
            shards,
            encoder(preamble),
            &mut at_instant,
        ))
    };
    let Some((fixed, functions)) = fixed else {
        return Err(BUSY.into());
    };
    Ok(Job {
        fixed,
        preamble,
        functions,
        enabling: enabling_manifest,
        started: Instant::now(),
    })
}

/// Writes the base, then installs it: the manifest names it and the
/// incremental file the rewrite opened; the files they replace are
/// deleted.
fn finish(shared: &Shared, job: Job) {
    let aof = &shared.repl.aof;
    let result = write_and_install(shared, &job);
    let Job { fixed, started, .. } = job;
    // Ended by the walk, unless the base failed before it.
    shared.keyspace.end_snapshot(fixed.epoch());
    aof.last_rewrite_secs
        .store(started.elapsed().as_secs() as i64, Relaxed);
    match result {
        Ok(()) => {
            aof.last_rewrite_ok.store(true, Relaxed);
            aof.failures.store(0, Relaxed);
            aof.rewrites.fetch_add(1, Relaxed);
            tracing::info!("Background AOF rewrite terminated with success");
        }
        Err(e) => {
            aof.last_rewrite_ok.store(false, Relaxed);
            aof.failures.fetch_add(1, Relaxed);
            tracing::warn!("Background AOF rewrite failed: {e}");
        }
    }
    aof.rewriting.store(false, Relaxed);
}

fn write_and_install(shared: &Shared, job: &Job) -> Result<(), String> {
    let aof = &shared.repl.aof;
    let preamble = job.preamble;
    let (dir, prefix) = {
        let files = lock(&aof.files);
        (files.dir.clone(), files.prefix.clone())
    };
    let (dir, prefix) = if dir.as_os_str().is_empty() {
        (aof_dir(shared), shared.config_get("appendfilename"))
    } else {
        (dir, prefix)
    };
    let tmp = dir.join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
    let ts = shared.config_get("aof-timestamp-enabled") == "yes";
    let written = File::create(&tmp).and_then(|mut f| {
        let mut pace = crate::save::pace(shared, || aof.cancel.load(Relaxed));
        let mut walker = |each: &mut dyn FnMut(Vec<Vec<u8>>) -> io::Result<()>| {
            crate::rdb::stream::walk(&shared.keyspace, &job.fixed, &mut pace, each)
        };
        write_base(
            &mut f,
            &job.fixed.sizes,
            &mut walker,
            &job.functions,
            preamble,
            ts,
        )?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("Error writing the AOF base: {e}"));
    }
    tracing::info!(
        "Successfully created the temporary AOF base file {}",
        tmp.display()
    );
    // Every client's write of the buffer takes the files' lock, so the
    // slow part of installing the base (the rename of the base, writing
    // and fsyncing the new manifest, fsyncing the directory, deleting the
    // old files) is done outside it: the lock is held to decide the new
    // manifest, then again to check nothing changed meanwhile and rename
    // it into place. Only a rewrite changes the manifest, one at a time;
    // turning the AOF off sets `cancel`.
    let decided = {
        let mut files = lock(&aof.files);
        if aof.cancel.load(Relaxed) {
            let _ = std::fs::remove_file(&tmp);
            return Err("the rewrite was stopped".into());
        }
        if files.dir.as_os_str().is_empty() {
            files.dir.clone_from(&dir);
            files.prefix.clone_from(&prefix);
        }
        let current = match &job.enabling {
            Some(m) => m.clone(),
            None => files.manifest.clone(),
        };
        let mut manifest = current.clone();
        let enabled = aof.enabled();
        let name = manifest.new_base(&prefix, preamble);
        if enabled {
            manifest.retire_incr_but_last();
        } else {
            // A rewrite with the AOF off leaves a base alone.
            for mut f in manifest.incr.drain(..) {
                f.kind = manifest::Kind::History;
                manifest.history.push(f);
            }
        }
        (current.format(), enabled, name, manifest)
    };
    let (before, enabled, name, mut manifest) = decided;
    let base = dir.join(&name);
    if let Err(e) = std::fs::rename(&tmp, &base) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "Error trying to rename the temporary AOF base file {} into {name}: {e}",
            tmp.display()
        ));
    }
    // The manifest is persisted once, without the files it replaced,
    // which are deleted once it is durable. Should the process die
    // between the two, the old files stay behind, named by no manifest,
    // and nothing loads them.
    let history = if aof.no_gc.load(Relaxed) {
        Vec::new()
    } else {
        std::mem::take(&mut manifest.history)
    };
    let manifest_name = format!("{prefix}.manifest");
    let manifest_tmp = dir.join(format!("temp-{manifest_name}"));
    let staged = File::create(&manifest_tmp).and_then(|mut f| {
        f.write_all(manifest.format().as_bytes())?;
        f.sync_all()
    });
    let undo = |why: String| {
        let _ = std::fs::remove_file(&manifest_tmp);
        let _ = std::fs::remove_file(&base);
        Err(why)
    };
    if let Err(e) = staged {
        return undo(format!("Can't persist the AOF manifest: {e}"));
    }
    {
        let mut files = lock(&aof.files);
        if aof.cancel.load(Relaxed) {
            return undo("the rewrite was stopped".into());
        }
        let now = match &job.enabling {
            Some(m) => m.format(),
            None => files.manifest.format(),
        };
        if now != before || aof.enabled() != enabled {
            return undo("the AOF changed during the rewrite".into());
        }
        if let Err(e) = std::fs::rename(&manifest_tmp, dir.join(&manifest_name)) {
            return undo(format!("Can't persist the AOF manifest: {e}"));
        }
        files.manifest = manifest;
        files.measure();
        let size = files.incr_size + files.others_size;
        aof.current_size.store(size, Relaxed);
        aof.base_size.store(size, Relaxed);
    }
    // The rename is durable once the directory is; the old files go after.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("Can't persist the AOF manifest: {e}"))?;
    for h in history {
        tracing::info!("Removing the history file {} in the background", h.name);
        let _ = std::fs::remove_file(dir.join(&h.name));
    }
    Ok(())
}

/// `CONFIG SET aof-disable-auto-gc no`: the history files kept meanwhile
/// leave the manifest and are deleted, as Redis's `aofDelHistoryFiles`.
pub(crate) fn collect_history(shared: &Shared) {
    let aof = &shared.repl.aof;
    if aof.no_gc.load(Relaxed) {
        return;
    }
    let (dir, history) = {
        let mut files = lock(&aof.files);
        if files.manifest.history.is_empty() || files.dir.as_os_str().is_empty() {
            return;
        }
        let mut manifest = files.manifest.clone();
        let history = std::mem::take(&mut manifest.history);
        if let Err(e) = files.persist(&manifest) {
            tracing::warn!("Can't persist the AOF manifest: {e}");
            return;
        }
        files.manifest = manifest;
        (files.dir.clone(), history)
    };
    for h in history {
        tracing::info!("Removing the history file {} in the background", h.name);
        let _ = std::fs::remove_file(dir.join(&h.name));
    }
}

/// After a replica loaded its master's RDB: the AOF starts again from the
/// new dataset, a new base written by a rewrite, as `CONFIG SET appendonly
/// yes` does (until it is written, the directory still holds the old
/// dataset, whole).
pub(crate) fn restart_after_sync(shared: &Shared, shards: &mut Shards<'_>) {
    if !shared.repl.aof.enabled() {
        return;
    }
    let restarted =
        set_enabled(shared, shards, false).and_then(|()| set_enabled(shared, shards, true));
    if let Err(e) = restarted {
        tracing::warn!("Failed enabling the AOF after successful master synchronization! {e}");
    }
}

/// At shutdown: what is buffered is written and fsynced, as Redis does
/// before it exits.
pub(crate) fn shutdown(shared: &Shared) {
    // A held fsync (DEBUG AOF-FSYNC-HOLD) must not keep the writer waiting.
    shared.repl.aof.set_fsync_hold(false);
    if shared.repl.aof.enabled() {
        shared.repl.aof.sync();
    }
}

/// `CONFIG SET appendonly yes|no` at run time. Turning it on starts a
/// rewrite that writes the base (Redis's `startAppendOnly`); turning it
/// off writes and fsyncs what is buffered and closes the file.
pub(crate) fn set_enabled(
    shared: &Shared,
    shards: &mut Shards<'_>,
    on: bool,
) -> Result<(), String> {
    let aof = &shared.repl.aof;
    if on == aof.enabled() {
        return Ok(());
    }
    if on {
        if aof.rewriting.swap(true, Relaxed) {
            return Err("AOF rewrite already in progress".into());
        }
        aof.cancel.store(false, Relaxed);
        aof.rewrite_started.store(now_secs(), Relaxed);
        let job = match prepare(shared, shards, true) {
            Ok(job) => job,
            Err(e) => {
                aof.on.store(false, Relaxed);
                aof.rewriting.store(false, Relaxed);
                tracing::warn!(
                    "Redis needs to enable the AOF but can't trigger a background AOF rewrite operation: {e}"
                );
                return Err(e);
            }
        };
        spawn_writer(shared);
        spawn_job(shared, job)
    } else {
        if aof.rewriting() {
            // Redis kills its rewrite child; the thread here stops at its
            // next key, and installs nothing.
            aof.cancel.store(true, Relaxed);
            tracing::info!("Killing running AOF rewrite child (a thread in Ember)");
        }
        aof.sync();
        aof.on.store(false, Relaxed);
        {
            let mut files = lock(&aof.files);
            aof.write_locked(&mut files);
            files.current = None;
            files.retired.clear();
        }
        aof.release_all();
        stop_recording(shared, shards);
        Ok(())
    }
}

//! The listener, the state every connection shares, and background work.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use transport::Shutdown;

use crate::client::{self, ClientInfo};
use crate::config::Config;
use crate::db::{Keyspace, Rng, SHARDS, Shards};

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Mutex<Config>,
    /// Replication: this server's history, its replicas, its master.
    pub(crate) repl: crate::repl::Repl,
    /// This value's own `Arc`, for tasks a command starts.
    pub(crate) me: std::sync::Weak<Shared>,
    pub(crate) keyspace: Keyspace,
    pub(crate) clients: Mutex<HashMap<u64, Arc<ClientInfo>>>,
    pub(crate) stats: Stats,
    pub(crate) started: Instant,
    pub(crate) run_id: String,
    pub(crate) shutdown: Shutdown,
    /// Set as the server stops, with every client's loop woken to see it
    /// (`kill::wake_all`).
    pub(crate) stopping: AtomicBool,
    pub(crate) port: u16,
    /// `proto-max-bulk-len`, read by every connection for every batch, so
    /// kept outside the config's lock.
    pub(crate) max_bulk_len: AtomicI64,
    /// `hash-max-listpack-*`, outside the config's lock.
    pub(crate) encodings: crate::cmd::Encodings,
    /// Whether the expiry cycle runs (`DEBUG SET-ACTIVE-EXPIRE`).
    pub(crate) active_expire: AtomicBool,
    /// `DEBUG PAUSE-CRON 1`: the background tick skips its turns.
    pub(crate) cron_paused: AtomicBool,
    /// `maxmemory` and its policy's settings and state (`memory.rs`).
    pub(crate) eviction: crate::memory::Eviction,
    /// SAVE and BGSAVE state.
    pub(crate) persistence: Arc<crate::rdb::Persistence>,
    /// CLIENT PAUSE.
    pub(crate) pause: crate::pause::Pause,
    /// The RDB file is being loaded while clients are served (see
    /// [`run_on_while_loading`]): most commands get `-LOADING`.
    pub(crate) loading: AtomicBool,
    /// Lua scripting: the engine and its script cache.
    pub(crate) scripts: crate::script::Scripts,
    next_client_id: AtomicU64,
    /// Pub/sub subscriptions and delivery.
    pub(crate) pubsub: crate::pubsub::Hub,
    /// Client-side caching: who may cache which keys.
    pub(crate) tracking: crate::tracking::Tracking,
    /// `client-output-buffer-limit normal` (`outbuf.rs`).
    pub(crate) output_limits: crate::outbuf::Limits,
    /// What ordinary clients hold, and `maxmemory-clients` (`outbuf.rs`).
    pub(crate) client_memory: crate::outbuf::ClientMemory,
    /// The clients in MONITOR mode (`monitor.rs`).
    pub(crate) monitors: crate::monitor::Monitors,
    /// Large values freed on a background thread (`lazyfree.rs`).
    pub(crate) lazyfree: crate::lazyfree::LazyFree,
}

impl Shared {
    pub(crate) fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A copy of a config parameter.
    pub(crate) fn config_get(&self, name: &str) -> String {
        self.config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .unwrap_or_default()
            .to_string()
    }

    pub(crate) fn config_i64(&self, name: &str) -> i64 {
        self.config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_i64(name)
    }

    /// Takes `maxmemory` and its policy's settings from `config`.
    pub(crate) fn set_memory_limit(&self, config: &Config) {
        self.eviction.configure(config);
        self.client_memory
            .configure(config.maxmemory_clients(), config.get_i64("maxmemory"));
    }
}

/// Resident memory in bytes, from /proc (0 where there is none).
pub(crate) fn resident_memory() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// One command's counters (INFO commandstats).
#[derive(Debug, Default)]
pub(crate) struct CommandStats {
    pub(crate) calls: AtomicU64,
    pub(crate) usec: AtomicU64,
    /// Refused before running: arity, authentication.
    pub(crate) rejected: AtomicU64,
    /// Ran and replied with an error.
    pub(crate) failed: AtomicU64,
}

/// Counters INFO reports.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) connections_received: AtomicU64,
    pub(crate) commands_processed: AtomicU64,
    pub(crate) rejected_connections: AtomicU64,
    /// Keys deleted to stay within `maxmemory`.
    pub(crate) evicted_keys: AtomicU64,
    pub(crate) keyspace_hits: AtomicU64,
    pub(crate) keyspace_misses: AtomicU64,
    pub(crate) net_input_bytes: AtomicU64,
    pub(crate) net_output_bytes: AtomicU64,
    pub(crate) blocked_clients: AtomicU64,
    /// Per command, in the order of the command table.
    pub(crate) commands: Box<[CommandStats]>,
    /// Error replies by their code (`ERR`, `WRONGTYPE`, ...).
    pub(crate) errors: Mutex<std::collections::BTreeMap<String, u64>>,
    pub(crate) error_replies: AtomicU64,
    /// Calls of write commands that changed something since startup (and
    /// FLUSHALL, FLUSHDB, SWAPDB, which Redis counts anyway), for
    /// `rdb_changes_since_last_save`. Redis counts changes (an RPUSH of
    /// three elements is three, a DEL of a missing key none, a SETBIT that
    /// leaves its bit as it was none); this counts one a call, so it is an
    /// approximation that is zero exactly when nothing was written. CONFIG
    /// RESETSTAT leaves it alone.
    pub(crate) dirty: AtomicU64,
    /// Per command, as `commands`: how long its calls took
    /// (`latencystats`).
    pub(crate) latency: Box<[crate::latency::Histogram]>,
    /// `latency-tracking`: whether calls are added to `latency`.
    pub(crate) latency_tracking: AtomicBool,
    /// Reads from and writes to client sockets.
    pub(crate) reads_processed: AtomicU64,
    pub(crate) writes_processed: AtomicU64,
    /// The most memory INFO has seen in use, and what was in use at start.
    pub(crate) peak_memory: AtomicU64,
    pub(crate) startup_memory: u64,
    /// The last second's samples behind INFO's `instantaneous_*` fields.
    pub(crate) rates: Mutex<Rates>,
}

/// Redis's `STATS_METRIC_SAMPLES`: 16 samples, one per cron tick, of how
/// fast commands and bytes went by, for INFO's `instantaneous_*` fields.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    /// Per metric (commands, input bytes, output bytes): the last total
    /// seen, and the per-second rates of the last samples.
    last: [u64; 3],
    last_at: Option<Instant>,
    samples: [[f64; 16]; 3],
    next: usize,
}

impl Rates {
    /// Takes a sample of the totals `now`.
    pub(crate) fn sample(&mut self, totals: [u64; 3], now: Instant) {
        if let Some(at) = self.last_at {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 {
                for (m, total) in totals.iter().enumerate() {
                    let delta = total.saturating_sub(self.last[m]);
                    self.samples[m][self.next] = delta as f64 / secs;
                }
                self.next = (self.next + 1) % 16;
            }
        }
        self.last = totals;
        self.last_at = Some(now);
    }

    /// The mean rate of metric `m` over the samples, per second.
    pub(crate) fn rate(&self, m: usize) -> f64 {
        self.samples[m].iter().sum::<f64>() / 16.0
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            connections_received: AtomicU64::new(0),
            commands_processed: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            evicted_keys: AtomicU64::new(0),
            keyspace_hits: AtomicU64::new(0),
            keyspace_misses: AtomicU64::new(0),
            net_input_bytes: AtomicU64::new(0),
            net_output_bytes: AtomicU64::new(0),
            blocked_clients: AtomicU64::new(0),
            commands: crate::cmd::STAT_NAMES
                .iter()
                .map(|_| CommandStats::default())
                .collect(),
            errors: Mutex::new(std::collections::BTreeMap::new()),
            error_replies: AtomicU64::new(0),
            dirty: AtomicU64::new(0),
            latency: crate::cmd::STAT_NAMES
                .iter()
                .map(|_| crate::latency::Histogram::default())
                .collect(),
            latency_tracking: AtomicBool::new(true),
            reads_processed: AtomicU64::new(0),
            writes_processed: AtomicU64::new(0),
            peak_memory: AtomicU64::new(0),
            startup_memory: crate::memory::used(),
            rates: Mutex::new(Rates::default()),
        }
    }
}

impl Stats {
    /// Takes the cron tick's sample of how fast commands and bytes go by.
    pub(crate) fn sample_rates(&self) {
        let totals = [
            self.commands_processed.load(Ordering::Relaxed),
            self.net_input_bytes.load(Ordering::Relaxed),
            self.net_output_bytes.load(Ordering::Relaxed),
        ];
        if let Ok(mut rates) = self.rates.lock() {
            rates.sample(totals, Instant::now());
        }
    }

    /// The memory in use (see `memory.rs`), noting the peak.
    pub(crate) fn used_memory(&self) -> u64 {
        let used = crate::memory::used();
        self.peak_memory.fetch_max(used, Ordering::Relaxed);
        used
    }

    /// Counts an error reply by its code, the text's first word.
    pub(crate) fn error(&self, text: &[u8]) {
        self.error_replies.fetch_add(1, Ordering::Relaxed);
        let code = text.split(|&b| b == b' ').next().unwrap_or(b"ERR");
        let code = String::from_utf8_lossy(&code[..code.len().min(64)]).into_owned();
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(code).or_default() += 1;
        }
    }

    pub(crate) fn reset(&self) {
        for c in self.commands.iter() {
            for a in [&c.calls, &c.usec, &c.rejected, &c.failed] {
                a.store(0, Ordering::Relaxed);
            }
        }
        if let Ok(mut errors) = self.errors.lock() {
            errors.clear();
        }
        self.latency
            .iter()
            .for_each(crate::latency::Histogram::reset);
        self.error_replies.store(0, Ordering::Relaxed);
        for c in [
            &self.connections_received,
            &self.commands_processed,
            &self.rejected_connections,
            &self.evicted_keys,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.reads_processed,
            &self.writes_processed,
            &self.peak_memory,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// A connection's view of time while it runs a batch of requests: one
/// reading of the wall clock per batch, and one of the monotonic clock per
/// command, which both times the command and dates the next one. Reading a
/// clock costs more than a whole GET on some virtual machines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// The wall clock's reading, as the batch began.
    base_ms: i64,
    last: Instant,
    /// From the first reading to `last`, summed from the readings'
    /// differences: one subtraction of `Instant`s per reading, not two.
    since_base: Duration,
    /// `base_ms` plus `since_base` in milliseconds, worked out at each
    /// reading rather than at each of the several uses a command makes of
    /// it.
    last_ms: i64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        let base_ms = now_ms();
        Clock {
            base_ms,
            last: now,
            since_base: Duration::ZERO,
            last_ms: base_ms,
        }
    }

    /// Unix time in milliseconds at the last reading.
    pub(crate) fn now_ms(&self) -> i64 {
        self.last_ms
    }

    /// The monotonic time of the last reading.
    pub(crate) fn last(&self) -> Instant {
        self.last
    }

    /// Reads the clock again and returns the time since the last reading.
    pub(crate) fn tick(&mut self) -> Duration {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.since_base += elapsed;
        self.last_ms = self.base_ms + self.since_base.as_millis() as i64;
        elapsed
    }
}

/// Counters a connection gathers while it runs a batch of requests. They
/// reach the shared [`Stats`] at the end of the batch, not per command: an
/// atomic that every thread updates moves its cache line between cores on
/// each update. Two commands' calls are gathered at once, so that a batch
/// that alternates between two (EVALSHA and the command its script calls)
/// flushes nothing until it ends; a third command flushes the older one.
/// A command that reads the counters (INFO, CONFIG RESETSTAT) flushes
/// them first, so that it sees every call before it.
#[derive(Debug, Default)]
pub(crate) struct LocalStats {
    /// The command counted last, then the one before it.
    recent: [CommandCalls; 2],
    /// Write calls that changed something, for
    /// `rdb_changes_since_last_save`.
    changes: u64,
    hits: u64,
    misses: u64,
}

/// One command's calls in a [`LocalStats`].
#[derive(Debug, Default)]
struct CommandCalls {
    /// The command whose calls are counted, by its index in the table.
    index: Option<usize>,
    calls: u64,
    usec: u64,
    latency: crate::latency::Local,
}

impl CommandCalls {
    fn flush(&mut self, stats: &Stats) {
        if let Some(index) = self.index.take() {
            let command = &stats.commands[index];
            command.calls.fetch_add(self.calls, Ordering::Relaxed);
            command.usec.fetch_add(self.usec, Ordering::Relaxed);
            stats
                .commands_processed
                .fetch_add(self.calls, Ordering::Relaxed);
            match stats.latency.get(index) {
                Some(h) => self.latency.flush(h),
                None => self.latency = Default::default(),
            }
            self.calls = 0;
            self.usec = 0;
        }
    }
}

impl LocalStats {
    /// Counts one call of the command at `index` that took `took`.
    pub(crate) fn call(&mut self, stats: &Stats, index: usize, took: Duration) {
        if self.recent[0].index != Some(index) {
            if self.recent[1].index != Some(index) {
                self.recent[1].flush(stats);
                self.recent[1].index = Some(index);
            }
            self.recent.swap(0, 1);
        }
        let calls = &mut self.recent[0];
        calls.calls += 1;
        calls.usec += took.as_micros() as u64;
        if stats.latency_tracking.load(Ordering::Relaxed) {
            calls.latency.record(took.as_nanos() as u64);
        }
    }

    /// Counts a write that changed the keyspace.
    pub(crate) fn changed(&mut self) {
        self.changes += 1;
    }

    /// Counts a write's `n` changes (Redis's `server.dirty`).
    pub(crate) fn changed_by(&mut self, n: u64) {
        self.changes += n;
    }

    /// Counts a keyspace hit or miss.
    pub(crate) fn hit(&mut self, hit: bool) {
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }

    /// Adds what was gathered to the shared counters.
    pub(crate) fn flush(&mut self, stats: &Stats) {
        for calls in &mut self.recent {
            calls.flush(stats);
        }
        if self.changes > 0 {
            stats.dirty.fetch_add(self.changes, Ordering::Relaxed);
            self.changes = 0;
        }
        if self.hits > 0 {
            stats.keyspace_hits.fetch_add(self.hits, Ordering::Relaxed);
            self.hits = 0;
        }
        if self.misses > 0 {
            stats
                .keyspace_misses
                .fetch_add(self.misses, Ordering::Relaxed);
            self.misses = 0;
        }
    }
}

/// Unix time in microseconds.
pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A 40-character hexadecimal run id, different for every start.
fn run_id() -> String {
    let mut rng = Rng::new(now_ms() as u64 ^ u64::from(std::process::id()).rotate_left(32));
    (0..40)
        .map(|_| char::from(b"0123456789abcdef"[(rng.next_u64() % 16) as usize]))
        .collect()
}

/// Why the server could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The RDB file (`dir`/`dbfilename`) exists but cannot be loaded: the
    /// server does not start on a partial or empty keyspace, as Redis
    /// does not.
    #[error("cannot load the RDB file {}: {reason}", path.display())]
    Load {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The append-only file (`appendonly yes`) cannot be loaded or opened.
    #[error("cannot load the append-only file in {}: {reason}", dir.display())]
    LoadAof {
        /// `dir`/`appenddirname`.
        dir: std::path::PathBuf,
        /// What is wrong, with the file and offset.
        reason: String,
    },
    /// The gRPC port (`grpc-port`) cannot be listened on.
    #[error("cannot listen for gRPC on {addr}: {reason}")]
    Grpc {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// Serves clients on `listener` until `stop` completes or a client sends
/// SHUTDOWN; then stops accepting, closes every connection and returns.
///
/// First, if `dir`/`dbfilename` names a file, loads it (keys already
/// expired are left out), before any client is accepted.
pub async fn run(
    listener: TcpListener,
    config: Config,
    stop: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    run_on(listener, config, stop, None).await
}

/// Whether the running thread is a connection worker whose other tasks
/// `block_in_place` can move to another thread (the workers are
/// multi-threaded runtimes of one thread for this); elsewhere (a
/// single-threaded runtime, a plain thread) nothing can move.
pub(crate) fn can_hand_off() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Runs blocking work (file creation, fsyncs) so that the worker's other
/// connections are served meanwhile, by another thread; where they cannot
/// move (see [`can_hand_off`]) it just runs.
pub(crate) fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    if can_hand_off() {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Threads that serve connections, each with a runtime of one thread of
/// its own (the multi-threaded scheduler, so that a long script or file
/// work can hand its other connections to another thread, see
/// [`can_hand_off`]): a connection stays on the thread it was given, so its task is
/// never stolen by, or woken from, another core. On a machine where the
/// server shares its cores (with a load generator, with other services),
/// work stealing costs more than it balances.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    /// Each worker's end of turn (see `turn.rs`).
    turns: Vec<Arc<crate::turn::Turn>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: tokio_util::sync::CancellationToken,
    next: std::sync::atomic::AtomicUsize,
}

impl Workers {
    /// Starts `n` (at least one) threads.
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let stop = tokio_util::sync::CancellationToken::new();
        let mut handles = Vec::new();
        let mut turns = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            // One worker thread each, but the multi-threaded scheduler: a
            // script that runs long hands this worker's other connections
            // to a fresh thread (`block_in_place`), where a single-threaded
            // runtime would leave them waiting for it (`cmd/scripting.rs`).
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder
                .worker_threads(1)
                .thread_name(format!("ember-worker-{i}-rt"))
                .on_thread_stop(crate::memory::flush_thread)
                .enable_all();
            // The LIFO slot runs the last connection woken first: of
            // connections whose commands arrive together, the last would
            // be served first, where Redis serves them in the order they
            // arrived (unit/type/list's "BRPOPLPUSH does not affect WATCH
            // while still blocked" depends on that order).
            // No cost measured (A/B, GET and SET at pipeline 1 and 16).
            #[cfg(tokio_unstable)]
            builder.disable_lifo_slot();
            let runtime = builder.build()?;
            handles.push(runtime.handle().clone());
            let turn = crate::turn::Turn::new();
            runtime.spawn(turn.clone().run());
            turns.push(turn);
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("ember-worker-{i}"))
                    .spawn(move || {
                        runtime.block_on(stop.cancelled());
                        crate::memory::flush_thread();
                    })?,
            );
        }
        Ok(Workers {
            handles,
            turns,
            threads,
            stop,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The runtime for the next connection, in turn, and its end of turn.
    fn pick(&self) -> (&tokio::runtime::Handle, Arc<crate::turn::Turn>) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        (&self.handles[i], self.turns[i].clone())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// [`run`], with connections served on `workers` rather than on the
/// runtime that runs this future.
pub async fn run_on(
    listener: TcpListener,
    config: Config,
    stop: impl Future<Output = ()>,
    workers: Option<&Workers>,
) -> Result<(), ServeError> {
    serve(listener, config, stop, workers, false).await
}

/// [`run_on`], but serving clients while the RDB file loads, as
/// redis-server does: until it is loaded, commands Redis refuses while
/// loading get `-LOADING Redis is loading the dataset in memory` (PING
/// among them; INFO, CONFIG, CLIENT, AUTH and the like are answered), and
/// the expiry cycle and replication start once it is loaded. A file that
/// cannot be loaded still ends with [`ServeError::Load`]. The binary
/// serves this way; [`run`] and [`run_on`] load first, which in-process
/// tests rely on.
pub async fn run_on_while_loading(
    listener: TcpListener,
    config: Config,
    stop: impl Future<Output = ()>,
    workers: Option<&Workers>,
) -> Result<(), ServeError> {
    serve(listener, config, stop, workers, true).await
}

async fn serve(
    listener: TcpListener,
    config: Config,
    stop: impl Future<Output = ()>,
    workers: Option<&Workers>,
    load_while_serving: bool,
) -> Result<(), ServeError> {
    let databases = config.get_i64("databases").max(1) as usize;
    let maxclients = config.get_i64("maxclients").max(1) as usize;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let max_bulk_len = config.get_i64("proto-max-bulk-len");
    let replicaof = config.get("replicaof").unwrap_or_default().to_string();
    let keyspace = crate::db::keyspace(databases);
    let encodings = crate::cmd::Encodings::new(&config);
    let pause = crate::pause::Pause::new(keyspace.expiry_pause());
    let shared = Arc::new_cyclic(|me| Shared {
        keyspace,
        pause,
        loading: AtomicBool::new(false),
        scripts: crate::script::Scripts::default(),
        config: Mutex::new(config),
        repl: crate::repl::Repl::new(),
        me: me.clone(),
        clients: Mutex::new(HashMap::new()),
        stats: Stats::default(),
        started: Instant::now(),
        run_id: run_id(),
        shutdown: Shutdown::new(),
        stopping: AtomicBool::new(false),
        port,
        max_bulk_len: AtomicI64::new(max_bulk_len),
        encodings,
        active_expire: AtomicBool::new(true),
        cron_paused: AtomicBool::new(false),
        eviction: crate::memory::Eviction::new(),
        persistence: Arc::default(),
        next_client_id: AtomicU64::new(1),
        pubsub: crate::pubsub::Hub::default(),
        tracking: crate::tracking::Tracking::default(),
        output_limits: crate::outbuf::Limits::default(),
        client_memory: crate::outbuf::ClientMemory::default(),
        monitors: crate::monitor::Monitors::default(),
        lazyfree: crate::lazyfree::LazyFree::default(),
    });
    if let Ok(config) = shared.config.lock() {
        shared.set_memory_limit(&config);
        shared.stats.latency_tracking.store(
            config.get("latency-tracking") == Some("yes"),
            Ordering::Relaxed,
        );
        shared.repl.set_output_limit(config.replica_output_limit());
        shared
            .repl
            .set_output_soft_limit(config.replica_output_soft_limit());
        shared.pubsub.set_limits(config.pubsub_output_limits());
        shared.output_limits.set(config.normal_output_limits());
        shared.lazyfree.configure(&config);
        shared
            .keyspace
            .set_lazy(crate::lazyfree::LazyFree::keyspace_bits(&config));
        shared.keyspace.set_disposer(shared.lazyfree.disposer());
        shared.keyspace.set_notify_classes(config.notify_classes());
        shared
            .tracking
            .set_max_keys(config.get_i64("tracking-table-max-keys"));
        shared.repl.set_min_replicas(
            config.get_i64("min-replicas-to-write"),
            config.get_i64("min-replicas-max-lag"),
        );
        shared
            .repl
            .set_serve_stale(config.get("replica-serve-stale-data") == Some("yes"));
        shared.repl.aof.configure(&config);
        shared
            .scripts
            .watch
            .set_threshold(config.get_i64("busy-reply-threshold"));
        shared.persistence.configure(&config);
    }
    crate::db::tick_lru_clock();
    let file = crate::rdb::file_path(
        &shared
            .config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    // Where the file loads while clients are served: its outcome.
    let mut loading: Option<tokio::sync::oneshot::Receiver<Result<(), ServeError>>> = None;
    let aof = shared.config_get("appendonly") == "yes";
    if load_while_serving && (file.exists() || aof) {
        shared.loading.store(true, Ordering::Release);
        let (done, outcome) = tokio::sync::oneshot::channel();
        let loader = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("ember-load".into())
            .spawn(move || {
                let _flush = crate::memory::FlushOnExit;
                let _ = done.send(load_at_startup(&loader));
            });
        if let Err(e) = spawned {
            return Err(ServeError::Load {
                path: file,
                reason: format!("cannot start the loading thread: {e}"),
            });
        }
        loading = Some(outcome);
    } else {
        load_at_startup(&shared)?;
        start_background(&shared, &replicaof);
    }
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("Ready to accept connections on {addr}");
    }
    #[cfg(feature = "grpc")]
    serve_grpc(&shared).await?;
    let limit = Arc::new(Semaphore::new(maxclients));
    let mut failed = None;
    tokio::pin!(stop);
    // Set once `stop` completed: a stop whose final save failed leaves the
    // server running, as Redis does after a SIGTERM it cannot honour.
    let mut stopped = false;
    loop {
        let loaded = async {
            match &mut loading {
                Some(outcome) => outcome.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            outcome = loaded => {
                loading = None;
                match outcome {
                    Ok(Ok(())) => {
                        shared.loading.store(false, Ordering::Release);
                        start_background(&shared, &replicaof);
                    }
                    Ok(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    Err(_) => {
                        failed = Some(ServeError::Load {
                            path: file.clone(),
                            reason: "the loading thread stopped".into(),
                        });
                        break;
                    }
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    shared.stats.connections_received.fetch_add(1, Ordering::Relaxed);
                    let permit = limit.clone().try_acquire_owned().ok();
                    if permit.is_none() {
                        shared.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
                    }
                    spawn_client(&shared, workers, stream, peer, permit);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly
                    // instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut stop, if !stopped => {
                stopped = true;
                // An embedder's stop always stops (as SHUTDOWN FORCE); the
                // binary's signals keep Redis's rule.
                if stop_requested(&shared, !load_while_serving).await {
                    break;
                }
                tracing::warn!("SIGTERM received but errors trying to shut down the server, check the logs for more information");
            }
            () = shared.shutdown.triggered() => break,
        }
    }
    tracing::info!(
        "shutting down: closing {} clients",
        shared.clients.lock().map(|c| c.len()).unwrap_or(0)
    );
    shared.shutdown.trigger();
    crate::kill::wake_all(&shared.stopping, &shared.clients);
    drop(listener);
    shared.shutdown.wait().await;
    crate::aof::shutdown(&shared);
    if let Some(e) = failed {
        return Err(e);
    }
    tracing::info!("ready to exit, bye bye");
    Ok(())
}

/// The shutdown sequence for a stop from outside (SIGTERM, SIGINT, the
/// embedder's `stop`), as `shutdown-on-sigterm` says (`force`: stop even
/// if the final save fails): true if the server may stop now.
async fn stop_requested(shared: &Arc<Shared>, force: bool) -> bool {
    let mut flags =
        crate::save::ShutdownFlags::from_config(&shared.config_get("shutdown-on-sigterm"));
    flags.force |= force;
    let me = shared.clone();
    tokio::task::spawn_blocking(move || {
        crate::save::prepare_shutdown(&me, &mut Shards::new(&me.keyspace), flags).is_ok()
    })
    .await
    .unwrap_or(true)
}

/// Listens for gRPC calls on `grpc-port`, if set, at the first `bind`
/// address, until shutdown.
#[cfg(feature = "grpc")]
async fn serve_grpc(shared: &Arc<Shared>) -> Result<(), ServeError> {
    let port = shared.config_i64("grpc-port");
    if port <= 0 {
        return Ok(());
    }
    let bind = shared.config_get("bind");
    let host = bind.split_whitespace().next().unwrap_or("127.0.0.1");
    let host = host.trim_start_matches('-');
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| ServeError::Grpc {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
    tracing::info!("gRPC on {addr}");
    shared
        .shutdown
        .spawn(crate::grpc::serve(shared.clone(), listener));
    Ok(())
}

/// Starts what runs once the keyspace is loaded: the expiry cycle, PINGs
/// to replicas, and following the configured master.
fn start_background(shared: &Arc<Shared>, replicaof: &str) {
    shared.shutdown.spawn(active_expire(shared.clone()));
    shared.shutdown.spawn(crate::save::cron(shared.clone()));
    shared
        .shutdown
        .spawn(crate::repl::master::ping_replicas(shared.clone()));
    if let Some((host, port)) = replicaof.split_once(' ')
        && let Ok(port) = port.trim().parse::<u16>()
    {
        crate::repl::replica::follow(
            shared,
            &mut Shards::new(&shared.keyspace),
            host.to_string(),
            port,
        );
    }
}

/// Redis's `key-load-delay`: waits that many microseconds per key loaded
/// (Ember waits after parsing, before the keys go in), rereading the
/// setting as it goes so that CONFIG SET can cut the wait short. For tests
/// that need a load to last.
fn key_load_delay(shared: &Shared, keys: usize) {
    const STEP: Duration = Duration::from_millis(10);
    for _ in 0..keys {
        let mut left = None;
        loop {
            let delay = shared.config_i64("key-load-delay");
            if delay <= 0 {
                return;
            }
            let l = left.get_or_insert(Duration::from_micros(delay as u64));
            if l.is_zero() {
                break;
            }
            let step = (*l).min(STEP);
            std::thread::sleep(step);
            *l -= step;
        }
    }
}

/// Loads `dir`/`dbfilename` into the empty keyspace, if the file exists;
/// with `appendonly yes`, the AOF instead (see `aof::load`).
fn load_at_startup(shared: &Shared) -> Result<(), ServeError> {
    if shared.config_get("appendonly") == "yes" {
        return crate::aof::load(shared).map_err(|reason| ServeError::LoadAof {
            dir: std::path::Path::new(&shared.config_get("dir"))
                .join(shared.config_get("appenddirname")),
            reason,
        });
    }
    let path = crate::rdb::file_path(
        &shared
            .config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let started = Instant::now();
    let fail = |reason: String| ServeError::Load {
        path: path.clone(),
        reason,
    };
    let mut loaded = match crate::rdb::load_file(&path, shared.encodings.load_limits()) {
        Ok(Some(loaded)) => loaded,
        Ok(None) => return Ok(()),
        Err(e) => return Err(fail(e.to_string())),
    };
    loaded.fit_sets(crate::cmd::sets::max_intset(shared));
    if let Some((_, version)) = loaded.aux.iter().find(|(k, _)| &k[..] == b"redis-ver") {
        tracing::info!(
            "Loading RDB produced by version {}",
            String::from_utf8_lossy(version)
        );
    }
    // A replica continues the history its file records, so its master can
    // send only what it missed.
    let replica = !shared.config_get("replicaof").is_empty();
    if replica && let (Some(id), Some(offset)) = (&loaded.repl_id, loaded.repl_offset) {
        let db = loaded.stream_db();
        shared.repl.resume(id.clone(), offset, db);
    }
    key_load_delay(shared, loaded.len());
    let now = now_ms();
    let (keys, expired) = (loaded.len(), loaded.expired(Some(now)));
    let mut shards = Shards::new(&shared.keyspace);
    // A master drops keys that expired while it was down; a replica keeps
    // them for its master to delete, as Redis does.
    let drop_before = (!replica).then_some(now);
    let functions = std::mem::take(&mut loaded.functions);
    crate::rdb::install(&mut shards, loaded, drop_before).map_err(|e| fail(e.to_string()))?;
    shared
        .scripts
        .functions
        .install(&shared.scripts.watch, &functions)
        .map_err(fail)?;
    shared.persistence.loaded(
        keys - expired,
        expired,
        shared.stats.dirty.load(Ordering::Relaxed),
    );
    tracing::info!(
        "DB loaded from disk: {:.3} seconds. Keys loaded: {}, keys expired: {}.",
        started.elapsed().as_secs_f64(),
        keys - expired,
        expired
    );
    Ok(())
}

/// Starts serving a connection, on a worker thread when there are some.
fn spawn_client(
    shared: &Arc<Shared>,
    workers: Option<&Workers>,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let Some(workers) = workers else {
        shared
            .shutdown
            .spawn(client::serve(shared.clone(), stream, peer, permit, None));
        return;
    };
    // The socket moves to the worker's own reactor.
    let stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot hand over a connection: {e}");
            return;
        }
    };
    let task_shared = shared.clone();
    let (handle, turn) = workers.pick();
    shared.shutdown.spawn_on(
        async move {
            match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => client::serve(task_shared, stream, peer, permit, Some(turn)).await,
                Err(e) => tracing::warn!("cannot hand over a connection: {e}"),
            }
        },
        handle,
    );
}

/// Reclaims expired keys nobody reads, Redis's way: every 100 ms, sample
/// keys with a deadline in a window of shards, delete the expired ones, and
/// keep going on a shard while more than a quarter of its sample had
/// expired, within a time budget.
async fn active_expire(shared: Arc<Shared>) {
    const SAMPLES: usize = 20;
    const SHARDS_PER_TICK: usize = SHARDS / 8;
    const BUDGET: Duration = Duration::from_millis(25);
    let mut rng = Rng::new(now_ms() as u64);
    let mut next_shard = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.shutdown.triggered() => return,
        }
        if shared.cron_paused.load(Ordering::Relaxed) {
            continue;
        }
        crate::db::tick_lru_clock();
        shared.stats.sample_rates();
        // Eviction a command's time budget left unfinished goes on here
        // (Redis's eviction timer).
        crate::memory::age_in_flight();
        crate::memory::enforce(&shared, Some(Duration::from_millis(10)));
        crate::memory::reset_s3fifo(&shared);
        // A replica stuck over its soft output limit (Redis's clientsCron).
        shared.repl.check_output_limits();
        // Clients over `maxmemory-clients` with no command of any client
        // to check them (Redis checks in each turn of its loop too).
        crate::outbuf::evict_clients(&shared);
        let started = Instant::now();
        // Created after the await: a `Shards` may hold locks, which never
        // cross an await.
        // A replica leaves expiry to its master's DELs; a pause keeps the
        // keyspace as it is (Redis's activeExpireCycle does nothing while
        // clients are paused).
        if shared.repl.read_only()
            || !shared.active_expire.load(Ordering::Relaxed)
            || shared.pause.active(now_ms())
        {
            continue;
        }
        let mut shards = Shards::new(&shared.keyspace);
        for _ in 0..SHARDS_PER_TICK {
            let now = now_ms();
            // A shard a script holds is skipped (the script may run for
            // long; it holds every shard).
            let Some(mut shard) = shards.try_lock_shard(next_shard) else {
                next_shard = (next_shard + 1) % SHARDS;
                continue;
            };
            // Feeding replicas, deletions reach the stream while the shard
            // is still locked.
            let record = shared.keyspace.feeding();
            if record {
                shard.effects().start();
            }
            // The databases never used are empty: not made by looking.
            for i in 0..shard.dbs.len() {
                let Some(mut db) = shard.db_made(i) else {
                    break;
                };
                loop {
                    // Counted by the keyspace, as a command's are.
                    let (sampled, expired) = db.expire_sample(SAMPLES, now, &mut rng);
                    if sampled == 0 || expired * 4 <= sampled || started.elapsed() > BUDGET {
                        break;
                    }
                }
            }
            // Databases 1 and up, emptied by commands or expiry, give
            // their room back (see `Dbs::reclaim`).
            shard.dbs.reclaim();
            if record {
                shared.repl.append_expired(shard.effects());
            }
            crate::notify::flush(&shared, shard.effects());
            crate::tracking::flush(&shared, None, shard.effects());
            drop(shard);
            next_shard = (next_shard + 1) % SHARDS;
            if started.elapsed() > BUDGET {
                break;
            }
        }
    }
}

//! Memory: how much the server has allocated (`used_memory`), the
//! allocator's own figures, and eviction when `maxmemory` is reached.
//!
//! **Accounting.** [`Allocator`] is jemalloc (as Redis links it) wrapped in
//! a counter: every allocation and free adds or takes away the size class
//! jemalloc rounds it to, so `used_memory` is what the data and the server
//! hold, at allocation granularity, as Redis's `zmalloc` counts it. Each
//! thread counts into a thread-local figure and moves it to the shared
//! total once it passes [`FLUSH`] bytes either way: no cache line is
//! shared between threads on the hot path, and the total is never off by
//! more than [`FLUSH`] per thread. A thread reads the total plus its own
//! unflushed figure, so what it frees it sees at once; a thread that ends
//! moves its figure first ([`flush_thread`]).
//!
//! A process that did not install [`Allocator`] (a library user, some
//! tests) counts nothing: [`used`] then falls back to the resident set.
//!
//! **Eviction.** [`enforce`] runs before each command while `maxmemory` is
//! set (Redis's `performEvictions`): over the limit, it deletes keys the
//! policy picks until memory is under the limit again, within a time
//! budget set by `maxmemory-eviction-tenacity`; what is left over, the
//! next command (or the background tick) continues. See docs/memory.md.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use store::Rng;
use store::keyspace::{Candidate, Pool, Rank};
use tikv_jemallocator::Jemalloc;

use crate::db::{SHARDS, Shards};
use crate::server::Shared;

/// Bytes a thread may count before moving them to the shared total. Small
/// enough that the total read by another thread is off by a few KB at
/// most (Redis's suite sets `maxmemory` 32 KB above what is used and
/// expects no eviction), large enough that allocations and frees of a
/// request, which mostly cancel out, rarely reach the shared line.
pub const FLUSH: isize = 4 * 1024;

/// The shared total of bytes allocated (flushed figures only).
static USED: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Bytes the deletions of this thread's running eviction round freed
    /// themselves (see [`enforce`]).
    static FREED: Cell<i64> = const { Cell::new(0) };
    /// This thread's bytes allocated since its last flush (negative when
    /// it freed more than it allocated). No destructor: safe to touch from
    /// inside the allocator.
    static DELTA: Cell<isize> = const { Cell::new(0) };
}

/// The size class jemalloc serves a request of `n` bytes from: 8, then
/// multiples of 16 up to 128, then four classes per doubling (160, 192,
/// 224, 256, 320...). Counting classes rather than requests is what makes
/// the figure agree with what the allocator holds.
#[inline]
pub fn size_class(n: usize) -> usize {
    if n <= 8 {
        8
    } else if n <= 128 {
        (n + 15) & !15
    } else {
        // The spacing is a quarter of the power of two below `n`.
        let lg = usize::BITS - 1 - (n - 1).leading_zeros();
        let spacing = 1usize << (lg - 2);
        (n + spacing - 1) & !(spacing - 1)
    }
}

#[inline]
fn count(bytes: isize) {
    DELTA.with(|d| {
        let v = d.get() + bytes;
        if v.unsigned_abs() >= FLUSH as usize {
            USED.fetch_add(v, Ordering::Relaxed);
            d.set(0);
        } else {
            d.set(v);
        }
    });
}

/// The server's global allocator: jemalloc, counted (see the module's
/// documentation). Install it in a binary with
/// `#[global_allocator] static A: ember_server::Allocator = ember_server::Allocator;`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocator;

// SAFETY: every call is forwarded to jemalloc unchanged; the counting
// touches only a thread-local cell and an atomic, and never allocates.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on as it is.
        let p = unsafe { Jemalloc.alloc(layout) };
        if !p.is_null() {
            count(size_class(layout.size()) as isize);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { Jemalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            count(size_class(layout.size()) as isize);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { Jemalloc.dealloc(ptr, layout) };
        count(-(size_class(layout.size()) as isize));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { Jemalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(size_class(new_size) as isize - size_class(layout.size()) as isize);
        }
        p
    }
}

/// Moves this thread's unflushed count to the shared total: called as a
/// thread ends (tokio's `on_thread_stop`, the end of the server's own
/// threads), whose count would otherwise be lost with it.
pub fn flush_thread() {
    let v = DELTA.with(|d| d.replace(0));
    if v != 0 {
        USED.fetch_add(v, Ordering::Relaxed);
    }
}

/// Calls [`flush_thread`] when dropped: the first thing a thread of the
/// server's own makes, so that every way out of it flushes.
#[derive(Debug)]
pub struct FlushOnExit;

impl Drop for FlushOnExit {
    fn drop(&mut self) {
        flush_thread();
    }
}

/// Bytes allocated now, as this thread sees them (the shared total and
/// its own unflushed count); the resident set where [`Allocator`] is not
/// installed.
pub fn used() -> u64 {
    let counted = USED.load(Ordering::Relaxed) + DELTA.with(Cell::get);
    if counted <= 0 {
        return crate::server::resident_memory();
    }
    counted as u64
}

/// jemalloc's own figures, as INFO's `allocator_*` fields show them.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllocatorStats {
    /// Bytes in live allocations.
    pub allocated: u64,
    /// Bytes in active pages (allocations and their pages' slack).
    pub active: u64,
    /// Bytes in physically resident pages the allocator holds.
    pub resident: u64,
}

/// Reads jemalloc's statistics (refreshing its cached figures first).
pub fn allocator_stats() -> AllocatorStats {
    use tikv_jemalloc_ctl::{epoch, stats};
    if epoch::advance().is_err() {
        return AllocatorStats::default();
    }
    AllocatorStats {
        allocated: stats::allocated::read().unwrap_or(0) as u64,
        active: stats::active::read().unwrap_or(0) as u64,
        resident: stats::resident::read().unwrap_or(0) as u64,
    }
}

/// Gives jemalloc's dirty pages back to the system (MEMORY PURGE).
pub fn purge() {
    // `arena.<MALLCTL_ARENAS_ALL>.purge` takes and returns nothing.
    let name = c"arena.4096.purge";
    // SAFETY: a valid NUL-terminated name, and null buffers with zero
    // lengths, as a control that neither reads nor writes expects.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

/// jemalloc's statistics report (MEMORY MALLOC-STATS).
pub fn malloc_stats() -> String {
    let mut out = Vec::new();
    let _ = tikv_jemalloc_ctl::stats_print::stats_print(
        &mut out,
        tikv_jemalloc_ctl::stats_print::Options::default(),
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// The memory figures INFO memory, MEMORY STATS and MEMORY DOCTOR show,
/// read once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figures {
    /// `used_memory`.
    pub(crate) used: u64,
    /// The highest `used_memory` seen.
    pub(crate) peak: u64,
    /// What the server held when it started serving.
    pub(crate) startup: u64,
    /// The process's resident set.
    pub(crate) rss: u64,
    /// The replication buffer's part that is the backlog's
    /// (`mem_replication_backlog`), see [`crate::repl::ReplBuffer`].
    pub(crate) backlog: u64,
    /// The whole replication buffer (`mem_total_replication_buffers`).
    pub(crate) repl_buffers: u64,
    /// What `maxmemory` does not count (`mem_not_counted_for_evict`).
    pub(crate) not_counted: u64,
    /// jemalloc's figures.
    pub(crate) allocator: AllocatorStats,
    /// Ordinary clients' buffers (`mem_clients_normal`, see
    /// [`client_memory`]) and the replication buffer's part that is the
    /// replicas' (`mem_clients_slaves`).
    pub(crate) clients_normal: u64,
    pub(crate) clients_slaves: u64,
}

/// What ordinary clients' buffers hold (subscribers and the link to a
/// master included, as Redis counts them), as their tasks last published
/// it (`outbuf.rs`). Replicas' links are counted by the replication
/// buffer they are sent from, as in Redis 7.0.
pub(crate) fn client_memory(shared: &Shared) -> u64 {
    let clients: Vec<_> = shared
        .clients
        .lock()
        .map(|c| c.values().cloned().collect())
        .unwrap_or_default();
    clients
        .iter()
        .filter(|c| c.kind.load(Ordering::Relaxed) != crate::client::REPLICA)
        .map(|c| c.mem.allocated(c.pubsub.pending()) as u64)
        .sum()
}

impl Figures {
    /// Reads them from `shared`.
    pub(crate) fn read(shared: &Shared) -> Figures {
        let used = shared.stats.used_memory();
        let repl = shared.repl.buffer();
        let (backlog, clients_slaves) = repl.split();
        let clients_normal = client_memory(shared);
        Figures {
            clients_normal,
            clients_slaves,
            repl_buffers: repl.mem.max(0) as u64,
            not_counted: repl.not_counted(),
            used,
            peak: shared.stats.peak_memory.load(Ordering::Relaxed).max(used),
            startup: shared.stats.startup_memory.min(used),
            rss: crate::server::resident_memory(),
            backlog,
            allocator: allocator_stats(),
        }
    }

    /// What is not the dataset: the startup figure, the backlog and the
    /// clients' buffers.
    pub(crate) fn overhead(&self) -> u64 {
        (self.startup + self.backlog + self.clients_normal + self.clients_slaves).min(self.used)
    }

    /// `used_memory_dataset`.
    pub(crate) fn dataset(&self) -> u64 {
        self.used - self.overhead()
    }

    /// `a / b` and `a - b` as INFO's ratio and bytes pairs show them.
    pub(crate) fn ratio(a: u64, b: u64) -> (f64, i64) {
        let r = if b == 0 { 0.0 } else { a as f64 / b as f64 };
        (r, a as i64 - b as i64)
    }

    /// allocator fragmentation: active / allocated.
    pub(crate) fn allocator_frag(&self) -> (f64, i64) {
        Self::ratio(self.allocator.active, self.allocator.allocated)
    }

    /// allocator RSS: resident / active.
    pub(crate) fn allocator_rss(&self) -> (f64, i64) {
        Self::ratio(self.allocator.resident, self.allocator.active)
    }

    /// RSS overhead: the process's RSS / the allocator's.
    pub(crate) fn rss_overhead(&self) -> (f64, i64) {
        Self::ratio(self.rss, self.allocator.resident)
    }

    /// Total fragmentation: RSS / used_memory.
    pub(crate) fn fragmentation(&self) -> (f64, i64) {
        Self::ratio(self.rss, self.used)
    }
}

/// `maxmemory-policy`, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Refuse commands that may grow memory.
    NoEviction,
    /// Evict by rank from a pool of sampled keys (LRU, LFU or TTL), only
    /// keys with a deadline when `volatile`.
    Ranked {
        /// What keys are ranked by.
        rank: Rank,
        /// Only keys with a deadline.
        volatile: bool,
    },
    /// Evict keys picked at random.
    Random {
        /// Only keys with a deadline.
        volatile: bool,
    },
    /// `allkeys-s3fifo`, Ember's own: S3-FIFO queues in each database of
    /// each shard (`store::keyspace` `s3fifo.rs`, docs/memory.md).
    S3Fifo,
}

impl Policy {
    /// The policy a `maxmemory-policy` value names (`noeviction` for any
    /// other text; the config accepts only Redis's names).
    pub fn parse(name: &str) -> Policy {
        let ranked = |rank, volatile| Policy::Ranked { rank, volatile };
        match name {
            "allkeys-lru" => ranked(Rank::Lru, false),
            "volatile-lru" => ranked(Rank::Lru, true),
            "allkeys-lfu" => ranked(Rank::Lfu, false),
            "volatile-lfu" => ranked(Rank::Lfu, true),
            "volatile-ttl" => ranked(Rank::Ttl, true),
            "allkeys-random" => Policy::Random { volatile: false },
            "volatile-random" => Policy::Random { volatile: true },
            "allkeys-s3fifo" => Policy::S3Fifo,
            _ => Policy::NoEviction,
        }
    }
}

/// Eviction's settings and state, in [`Shared`].
#[derive(Debug)]
pub(crate) struct Eviction {
    /// `maxmemory`, 0 for none. Read before every command.
    pub(crate) limit: AtomicU64,
    /// The rest of the settings and the candidates pool.
    state: std::sync::Mutex<State>,
    /// The policy changed: the background tick frees S3-FIFO queues left
    /// from before ([`reset_s3fifo`]).
    pub(crate) s3_reset: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct State {
    policy: Policy,
    samples: usize,
    /// How long one command may spend evicting, `None` for unbounded
    /// (`maxmemory-eviction-tenacity`).
    budget: Option<Duration>,
    /// Replicas leave eviction to their master (`replica-ignore-maxmemory`).
    replica_ignores: bool,
    pool: Pool,
    rng: Rng,
    /// The database the random policies look at next (Redis walks them
    /// round robin).
    next_db: usize,
    /// The databases that had keys to evict when a sampling round last
    /// looked at every database (see `populate`).
    hint: Vec<usize>,
    /// Sampling rounds so far.
    rounds: u32,
}

/// What [`enforce`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Memory is within the limit (or there is none).
    Ok,
    /// Still over, but evicting goes on: commands are not refused.
    Running,
    /// Over, and nothing can be evicted: commands that may grow memory
    /// are refused.
    Full,
}

impl Eviction {
    pub(crate) fn new() -> Eviction {
        Eviction {
            limit: AtomicU64::new(0),
            s3_reset: std::sync::atomic::AtomicBool::new(false),
            state: std::sync::Mutex::new(State {
                policy: Policy::NoEviction,
                samples: 5,
                budget: Some(Duration::from_micros(500)),
                replica_ignores: true,
                pool: Pool::default(),
                rng: Rng::new(0x5eed),
                next_db: 0,
                hint: Vec::new(),
                rounds: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the settings from `config` (at start and on CONFIG SET).
    pub(crate) fn configure(&self, config: &crate::Config) {
        let policy = Policy::parse(config.get("maxmemory-policy").unwrap_or("noeviction"));
        let tenacity = config.get_i64("maxmemory-eviction-tenacity").clamp(0, 100);
        let lfu = matches!(
            policy,
            Policy::Ranked {
                rank: Rank::Lfu,
                ..
            }
        );
        store::keyspace::set_lfu(
            lfu,
            config
                .get_i64("lfu-log-factor")
                .clamp(0, i64::from(u32::MAX)) as u32,
            config
                .get_i64("lfu-decay-time")
                .clamp(0, i64::from(u32::MAX)) as u32,
        );
        store::keyspace::set_s3fifo(policy == Policy::S3Fifo);
        let mut st = self.state();
        let changed = st.policy != policy;
        if changed {
            st.pool.clear();
            st.hint.clear();
            self.s3_reset.store(true, Ordering::Relaxed);
        }
        st.policy = policy;
        st.samples = config.get_i64("maxmemory-samples").clamp(1, 1024) as usize;
        st.budget = time_limit(tenacity);
        st.replica_ignores = config.get("replica-ignore-maxmemory") != Some("no");
        drop(st);
        self.limit
            .store(config.get_i64("maxmemory").max(0) as u64, Ordering::Relaxed);
    }
}

/// How long one round of eviction may run at `tenacity` (Redis's
/// `evictionTimeLimitUs`): 50 µs per step up to 10 (500 µs, the default),
/// then 15% more per step, and no limit at 100.
fn time_limit(tenacity: i64) -> Option<Duration> {
    if tenacity <= 10 {
        Some(Duration::from_micros(50 * tenacity as u64))
    } else if tenacity < 100 {
        let us = 500.0 * 1.15f64.powi((tenacity - 10) as i32);
        Some(Duration::from_micros(us as u64))
    } else {
        None
    }
}

/// Bytes of the messages evictions sent (invalidations to tracking
/// clients, keyspace events) in this tick and the one before: see
/// [`in_flight`].
static SENT_NEW: AtomicU64 = AtomicU64::new(0);
static SENT_OLD: AtomicU64 = AtomicU64::new(0);

/// What eviction does not count yet: the messages its deletions sent in
/// the last one or two ticks (100 to 200 ms). They are in clients'
/// queues until those clients' tasks write them to their sockets, which
/// is soon; Redis writes them before it runs the next command (its
/// `beforeSleep`), so the next command never sees them. Counted at once,
/// they would evict more keys for the next command, whose messages would
/// evict more: with enough clients tracking keys, the whole keyspace.
/// Messages a client does not take within that time (its socket full)
/// count again, as any client's output does.
fn in_flight() -> u64 {
    SENT_NEW.load(Ordering::Relaxed) + SENT_OLD.load(Ordering::Relaxed)
}

/// The background tick's turn: the messages of two ticks ago are due.
pub(crate) fn age_in_flight() {
    SENT_OLD.store(SENT_NEW.swap(0, Ordering::Relaxed), Ordering::Relaxed);
}

/// Before a command: evicts while memory is over `maxmemory` (see the
/// module's documentation). `budget` overrides the tenacity's time limit
/// (the background tick gives itself more).
pub(crate) fn enforce(shared: &Shared, budget: Option<Duration>) -> Outcome {
    let limit = shared.eviction.limit.load(Ordering::Relaxed);
    if limit == 0 || used() <= limit {
        return Outcome::Ok;
    }
    // The replication buffer past the backlog's size is the replicas',
    // not the dataset's (Redis's `freeMemoryGetNotCountedMemory`).
    let not_counted = shared.repl.buffer().not_counted() + in_flight();
    let over = || used().saturating_sub(not_counted) > limit;
    if !over() {
        return Outcome::Ok;
    }
    // A running script holds every shard: eviction would wait for it, on
    // a worker that must answer BUSY meanwhile (or on the main thread),
    // so it waits for the script's end instead, as Redis's does.
    if shared.scripts.watch.running_for().is_some() {
        return Outcome::Ok;
    }
    let (policy, samples, tenacity, ignore) = {
        let st = shared.eviction.state();
        (st.policy, st.samples, st.budget, st.replica_ignores)
    };
    // A replica's keyspace is its master's: it deletes what the master
    // tells it to.
    if ignore && shared.repl.read_only() {
        return Outcome::Ok;
    }
    if policy == Policy::NoEviction {
        return Outcome::Full;
    }
    let budget = budget.or(tenacity);
    let started = Instant::now();
    let mut evicted = 0u64;
    // As Redis's `performEvictions`: the round frees what memory was over
    // the limit when it began, counting what each deletion freed, not
    // what the deletions' invalidation messages, keyspace events and DELs
    // for replicas allocate meanwhile. Those are sent soon after; counting
    // them would evict more keys, whose messages would evict more: with
    // enough clients tracking keys, the whole keyspace.
    let to_free = used().saturating_sub(not_counted).saturating_sub(limit) as i64;
    let mut freed = 0i64;
    FREED.with(|f| f.set(0));
    loop {
        if freed >= to_free || !over() {
            break Outcome::Ok;
        }
        if !evict_one(shared, policy, samples) {
            break Outcome::Full;
        }
        freed += FREED.with(|f| f.replace(0));
        evicted += 1;
        // The clock is read every 16 keys, as Redis does.
        if evicted.is_multiple_of(16) && budget.is_some_and(|b| started.elapsed() > b) {
            break Outcome::Running;
        }
    }
}

/// Before a client's command (`cmd::execute`): evicts what the policy
/// allows while memory is over `maxmemory`; true if memory stays over the
/// limit with nothing left to evict, and commands that may grow it are
/// refused (Redis's OOM error). Invalidations of keys
/// evicted now, for this client's own tracking, go out before the
/// command's reply, as in Redis.
#[inline]
pub(crate) fn before_command(
    shared: &Shared,
    client: &crate::client::Client,
    reply: &mut crate::reply::Reply<'_>,
) -> bool {
    if shared.eviction.limit.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let evicted = shared.stats.evicted_keys.load(Ordering::Relaxed);
    let full = enforce(shared, None) == Outcome::Full;
    if shared.stats.evicted_keys.load(Ordering::Relaxed) != evicted {
        client.info.pubsub.drain(reply.out, reply.proto);
    }
    full
}

/// Evicts one key the policy picks; false if there is none to pick.
fn evict_one(shared: &Shared, policy: Policy, samples: usize) -> bool {
    let databases = Shards::new(&shared.keyspace).databases();
    match policy {
        Policy::NoEviction => false,
        Policy::Random { volatile } => {
            // A random shard, then the next ones until one has a key in
            // the database whose turn it is; every database in turn.
            let (start, first_db) = {
                let mut st = shared.eviction.state();
                let start = st.rng.below(SHARDS).unwrap_or(0);
                let db = st.next_db % databases;
                st.next_db = st.next_db.wrapping_add(1);
                (start, db)
            };
            for d in 0..databases {
                let db = (first_db + d) % databases;
                for s in 0..SHARDS {
                    let shard = (start + s) % SHARDS;
                    let key = {
                        let mut shards = Shards::new(&shared.keyspace);
                        let mut locked = shards.lock_shard(shard);
                        let mut st = shared.eviction.state();
                        locked
                            .db_made(db)
                            .and_then(|view| view.evict_random(volatile, &mut st.rng))
                    };
                    if let Some(key) = key
                        && delete(shared, db, &key)
                    {
                        return true;
                    }
                }
            }
            false
        }
        // A victim deleted meanwhile by a command: try again, a few times.
        Policy::S3Fifo => (0..4)
            .map(|_| evict_s3fifo(shared))
            .find(|&found| found != Some(false))
            .flatten()
            .unwrap_or(false),
        Policy::Ranked { rank, volatile } => {
            // Up to a few rounds of sampling; each round draws from one
            // random shard in every database with keys to evict, and the
            // best of the pool goes.
            for _ in 0..16 {
                if !populate(shared, rank, volatile, samples) {
                    return false;
                }
                loop {
                    let best = shared.eviction.state().pool.pop();
                    let Some(Candidate { db, key, .. }) = best else {
                        break;
                    };
                    if delete(shared, db, &key) {
                        return true;
                    }
                }
            }
            false
        }
    }
}

/// Evicts the key S3-FIFO picks in one shard: `Some(true)` if it did,
/// `Some(false)` if the key it picked was gone when deleted, `None` if
/// there are no keys.
///
/// Each database of each shard has its own queues. The databases with keys
/// take turns (as Redis's random policies walk them); within one, of two
/// shards drawn at random the one with more keys gives the victim, which
/// keeps the shards' sizes even as they shrink and grow (the power of two
/// choices): a key's stay in the cache then depends on its queue, not on
/// how crowded its shard happens to be.
fn evict_s3fifo(shared: &Shared) -> Option<bool> {
    let databases = Shards::new(&shared.keyspace).databases();
    let (a, b, turn, mut hint, refresh) = {
        let mut st = shared.eviction.state();
        st.rounds = st.rounds.wrapping_add(1);
        st.next_db = st.next_db.wrapping_add(1);
        let refresh = st.hint.is_empty() || st.rounds.is_multiple_of(64);
        let a = st.rng.below(SHARDS).unwrap_or(0);
        let b = st.rng.below(SHARDS).unwrap_or(0);
        (a, b, st.next_db, std::mem::take(&mut st.hint), refresh)
    };
    let len = |shard: usize, db: usize| {
        let mut shards = Shards::new(&shared.keyspace);
        let mut locked = shards.lock_shard(shard);
        locked.db_made(db).map_or(0, |view| view.evictable(false))
    };
    if refresh {
        // The databases with keys in either shard join the turns (one
        // lock each, every 64 evictions).
        for shard in [a, b] {
            let mut shards = Shards::new(&shared.keyspace);
            let mut locked = shards.lock_shard(shard);
            hint.extend((0..databases).filter(|&db| {
                locked
                    .db_made(db)
                    .is_some_and(|view| view.evictable(false) > 0)
            }));
        }
        hint.sort_unstable();
        hint.dedup();
        if hint.is_empty() {
            // Neither shard has keys: any database with keys in any shard.
            hint.extend((0..databases).filter(|&db| (0..SHARDS).any(|s| len(s, db) > 0)));
        }
    }
    let mut evicted = None;
    let mut gone = Vec::new();
    for d in 0..hint.len() {
        let db = hint[(turn + d) % hint.len()];
        let (la, lb) = (len(a, db), len(b, db));
        let shard = match (la, lb) {
            (0, 0) => match (0..SHARDS)
                .map(|s| (a + s) % SHARDS)
                .find(|&s| len(s, db) > 0)
            {
                Some(s) => s,
                None => {
                    // No keys left in this database anywhere.
                    gone.push(db);
                    continue;
                }
            },
            _ if la >= lb => a,
            _ => b,
        };
        let victim = {
            let mut shards = Shards::new(&shared.keyspace);
            let mut locked = shards.lock_shard(shard);
            locked.db(db).s3fifo_victim()
        };
        evicted = Some(false);
        if let Some(key) = victim
            && delete(shared, db, &key)
        {
            evicted = Some(true);
            break;
        }
    }
    hint.retain(|db| !gone.contains(db));
    shared.eviction.state().hint = hint;
    evicted
}

/// In the background tick, after the policy changed: drops every
/// database's S3-FIFO queues, whose memory would otherwise stay taken (they
/// are stale already: a database rebuilds its queues from its table when
/// it finds them from another epoch). Not while a script holds the shards,
/// nor from a command, which may hold shards itself (EXEC).
pub(crate) fn reset_s3fifo(shared: &Shared) {
    if !shared.eviction.s3_reset.load(Ordering::Relaxed)
        || shared.scripts.watch.running_for().is_some()
    {
        return;
    }
    shared.eviction.s3_reset.store(false, Ordering::Relaxed);
    let databases = Shards::new(&shared.keyspace).databases();
    for shard in 0..SHARDS {
        let mut shards = Shards::new(&shared.keyspace);
        let mut locked = shards.lock_shard(shard);
        for db in 0..databases {
            if let Some(mut view) = locked.db_made(db) {
                view.drop_s3fifo();
            }
        }
    }
}

/// One sampling round into the pool: from a random shard with keys to
/// evict, `samples` keys of each database. False if no shard has any.
///
/// Keys are spread over the shards by hash, so a random shard's keys are
/// a random sample of the keyspace; and as the pool keeps the best 16 of
/// every round, the keys compete against many more than one round's
/// (docs/memory.md).
fn populate(shared: &Shared, rank: Rank, volatile: bool, samples: usize) -> bool {
    let databases = Shards::new(&shared.keyspace).databases();
    let (start, hint, full) = {
        let mut st = shared.eviction.state();
        st.rounds = st.rounds.wrapping_add(1);
        let full = st.hint.is_empty() || st.rounds.is_multiple_of(64);
        (st.rng.below(SHARDS).unwrap_or(0), st.hint.clone(), full)
    };
    // Looking at every database of a shard costs a cache miss each: most
    // rounds look only at those that had keys when a round last looked at
    // all of them; if those have none left anywhere, every one is looked
    // at before the keyspace counts as empty.
    if !full && sample_shards(shared, start, &hint, rank, volatile, samples).is_some() {
        return true;
    }
    let all: Vec<usize> = (0..databases).collect();
    match sample_shards(shared, start, &all, rank, volatile, samples) {
        Some(dbs) => {
            shared.eviction.state().hint = dbs;
            true
        }
        None => false,
    }
}

/// Samples the databases `dbs` of the first shard from `start` on that has
/// keys to evict in any of them, into the pool; returns the databases that
/// had some there, or `None` if no shard has any.
fn sample_shards(
    shared: &Shared,
    start: usize,
    dbs: &[usize],
    rank: Rank,
    volatile: bool,
    samples: usize,
) -> Option<Vec<usize>> {
    let mut found = Vec::new();
    let mut rng = Rng::new(shared.eviction.state().rng.next_u64());
    for s in 0..SHARDS {
        let shard = (start + s) % SHARDS;
        let mut had = Vec::new();
        {
            let mut shards = Shards::new(&shared.keyspace);
            let mut locked = shards.lock_shard(shard);
            for &db in dbs {
                let Some(view) = locked.db_made(db) else {
                    continue;
                };
                if view.evictable(volatile) > 0 {
                    had.push(db);
                    view.evict_sample(samples, volatile, rank, &mut rng, &mut |c| found.push(c));
                }
            }
        }
        if !found.is_empty() {
            let mut st = shared.eviction.state();
            for c in found {
                st.pool.offer(c);
            }
            return Some(had);
        }
    }
    None
}

/// Deletes `key` of database `db` as an eviction: replicas and the AOF
/// get a DEL (UNLINK under `lazyfree-lazy-eviction`), subscribers an `evicted` event, trackers an invalidation.
fn delete(shared: &Shared, db: usize, key: &[u8]) -> bool {
    let mut shards = Shards::new(&shared.keyspace);
    let mut shard = shards.lock_key(key);
    let record = shared.keyspace.feeding();
    if record {
        shard.effects().start();
    }
    let mut view = shard.db(db);
    let removed = view.remove(key);
    let found = removed.is_some();
    // What the deletion frees (see `enforce`), as MEMORY USAGE counts it:
    // measuring the allocator around it would also count the copy of the
    // key the deletion records for trackers, and the tracking table's
    // entry it drops later.
    if let Some(entry) = &removed {
        let key_heap = if key.len() > store::keyspace::KEY_INLINE {
            size_class(key.len())
        } else {
            0
        };
        let bytes = crate::cmd::memory::SLOT_BYTES
            + key_heap
            + crate::cmd::memory::value_bytes(&entry.value, 5);
        FREED.with(|f| f.set(f.get() + bytes as i64));
    }
    if found {
        // Counted under the lock: INFO never sees a key gone but not
        // counted.
        shared.stats.evicted_keys.fetch_add(1, Ordering::Relaxed);
        let fx = view.effects();
        fx.dropped(db, key, shared.lazyfree.eviction.load(Ordering::Relaxed));
        fx.evicted(db, key);
    }
    if record {
        shared.repl.append_expired(shard.effects());
    }
    // The invalidations and keyspace events the deletion sends (see
    // [`in_flight`]).
    let sending = used();
    crate::notify::flush(shared, shard.effects());
    crate::tracking::flush(shared, None, shard.effects());
    SENT_NEW.fetch_add(used().saturating_sub(sending), Ordering::Relaxed);
    // The shard's last key outside database 0 gives its databases' room
    // back: what the next key there made is then evicted with it.
    if found && db != 0 {
        shard.dbs.reclaim();
    }
    drop(shard);
    // The value is freed here, outside the lock, or by the lazy-free
    // thread (`lazyfree-lazy-eviction`).
    if let Some(entry) = removed
        && shared.lazyfree.eviction.load(Ordering::Relaxed)
    {
        shared.lazyfree.free(entry.value);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_are_jemallocs() {
        let cases = [
            (1, 8),
            (8, 8),
            (9, 16),
            (24, 32),
            (88, 96),
            (128, 128),
            (129, 160),
            (200, 224),
            (257, 320),
            (1000, 1024),
            (1025, 1280),
            (4097, 5120),
            (100_000, 114_688),
        ];
        for (n, class) in cases {
            assert_eq!(size_class(n), class, "{n}");
        }
    }

    #[test]
    fn tenacity_sets_redis_time_limits() {
        assert_eq!(time_limit(0), Some(Duration::ZERO));
        assert_eq!(time_limit(10), Some(Duration::from_micros(500)));
        assert_eq!(time_limit(11), Some(Duration::from_micros(575)));
        assert_eq!(time_limit(100), None);
    }
}

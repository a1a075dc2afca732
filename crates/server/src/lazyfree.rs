//! Lazy free: large values deleted by a command are freed on a background
//! thread, so that the command (and every other client of its shard and
//! its worker thread) does not wait for a million allocations to be given
//! back.
//!
//! As in Redis, what goes to the thread is decided by the value's *free
//! effort*, the number of allocations freeing it takes
//! ([`effort`]): more than [`THRESHOLD`] (Redis's `LAZYFREE_THRESHOLD`,
//! 64) and the value is handed over, otherwise dropping it in place is
//! cheaper than the hand-over. A flushed database is always handed over
//! whole. Who frees lazily:
//!
//! - `UNLINK`, always; `DEL` with `lazyfree-lazy-user-del yes`;
//! - `FLUSHALL`/`FLUSHDB` with `ASYNC`, or without a mode and with
//!   `lazyfree-lazy-user-flush yes`;
//! - eviction with `lazyfree-lazy-eviction yes`;
//! - keys deleted because they expired, with `lazyfree-lazy-expire yes`,
//!   and values the server replaces or deletes on its own (SET over a
//!   big value, RENAME's old destination...) with
//!   `lazyfree-lazy-server-del yes`: the keyspace sets them aside and
//!   hands them over once the command's locks are released
//!   ([`LazyFree::disposer`], `store::keyspace::lazy`);
//! - a replica's dataset flushed for a full sync, with
//!   `replica-lazy-flush yes`.
//!
//! A value handed over is out of the keyspace already: the command's reply
//! and every other client see it gone at once. `INFO memory`'s
//! `lazyfree_pending_objects` counts what waits for the thread,
//! `lazyfreed_objects` (also in `INFO stats`, as Redis 7.0 puts it in
//! both) what it freed.
//!
//! The thread is started by the first hand-over, and frees in the order
//! values were handed over. Nothing here touches the keyspace.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use store::keyspace::Contents;
use store::value::Value;

/// Values whose free effort is above this go to the thread.
pub(crate) const THRESHOLD: usize = store::keyspace::lazy::THRESHOLD;

/// What the thread frees: `objects` values held by a box whose drop frees
/// them.
struct Job {
    garbage: Box<dyn Send>,
    objects: u64,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} objects)", self.objects)
    }
}

/// What the thread and INFO share.
#[derive(Debug, Default)]
struct Counters {
    pending: AtomicU64,
    freed: AtomicU64,
}

impl Counters {
    /// Frees `job`, on whatever thread calls it.
    fn free(&self, job: Job) {
        let objects = job.objects;
        drop(job.garbage);
        self.pending.fetch_sub(objects, Ordering::Relaxed);
        self.freed.fetch_add(objects, Ordering::Relaxed);
    }
}

/// The lazy-free settings, the thread's queue and its counters.
#[derive(Debug, Default)]
pub(crate) struct LazyFree {
    worker: Arc<Worker>,
    /// `lazyfree-lazy-user-del`.
    pub(crate) user_del: AtomicBool,
    /// `lazyfree-lazy-user-flush`.
    pub(crate) user_flush: AtomicBool,
    /// `lazyfree-lazy-eviction`.
    pub(crate) eviction: AtomicBool,
    /// `replica-lazy-flush`.
    pub(crate) replica_flush: AtomicBool,
}

/// The thread's queue, once it is started, and the counters: shared with
/// the keyspace, which hands it the large values it drops on its own
/// (`lazyfree-lazy-expire`, `lazyfree-lazy-server-del`).
#[derive(Debug, Default)]
struct Worker {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    counters: Arc<Counters>,
}

/// How many allocations freeing `value` takes, as Redis's
/// `lazyfreeGetFreeEffort` counts them (see `store::keyspace::lazy`).
pub(crate) fn effort(value: &Value) -> usize {
    store::keyspace::lazy::free_effort(value)
}

impl LazyFree {
    /// Takes the settings from `config`.
    pub(crate) fn configure(&self, config: &crate::Config) {
        let yes = |name: &str| config.get(name) == Some("yes");
        let r = Ordering::Relaxed;
        self.user_del.store(yes("lazyfree-lazy-user-del"), r);
        self.user_flush.store(yes("lazyfree-lazy-user-flush"), r);
        self.eviction.store(yes("lazyfree-lazy-eviction"), r);
        self.replica_flush.store(yes("replica-lazy-flush"), r);
    }

    /// What the keyspace drops on its own that goes to the thread
    /// (`lazyfree-lazy-expire`, `lazyfree-lazy-server-del`), for
    /// `Keyspace::set_lazy`.
    pub(crate) fn keyspace_bits(config: &crate::Config) -> u8 {
        let yes = |name: &str| config.get(name) == Some("yes");
        store::keyspace::lazy::bits(yes("lazyfree-lazy-expire"), yes("lazyfree-lazy-server-del"))
    }

    /// Where the keyspace hands the large values it drops on its own.
    pub(crate) fn disposer(&self) -> Box<dyn store::keyspace::lazy::Disposer> {
        Box::new(Disposer(self.worker.clone()))
    }

    /// Frees `value` now, or hands it to the thread if it is large.
    pub(crate) fn free(&self, value: Value) {
        if effort(&value) > THRESHOLD {
            self.worker.hand_over(Box::new(value), 1);
        }
        // Otherwise dropped here.
    }

    /// Hands flushed databases to the thread; `keys` is how many keys
    /// they hold.
    pub(crate) fn free_contents(&self, contents: Vec<Contents>, keys: usize) {
        if keys == 0 {
            return;
        }
        self.worker.hand_over(Box::new(contents), keys as u64);
    }

    /// `lazyfree_pending_objects`.
    pub(crate) fn pending(&self) -> u64 {
        self.worker.counters.pending.load(Ordering::Relaxed)
    }

    /// `lazyfreed_objects`.
    pub(crate) fn freed(&self) -> u64 {
        self.worker.counters.freed.load(Ordering::Relaxed)
    }

    /// CONFIG RESETSTAT.
    pub(crate) fn reset(&self) {
        self.worker.counters.freed.store(0, Ordering::Relaxed);
    }
}

/// [`LazyFree::disposer`].
struct Disposer(Arc<Worker>);

impl store::keyspace::lazy::Disposer for Disposer {
    fn dispose(&self, values: Vec<Value>) {
        let n = values.len() as u64;
        if n > 0 {
            // Each value counts as one object, as Redis's `freeObjAsync`
            // counts it.
            self.0.hand_over(Box::new(values), n);
        }
    }
}

impl Worker {
    fn hand_over(&self, garbage: Box<dyn Send>, objects: u64) {
        self.counters.pending.fetch_add(objects, Ordering::Relaxed);
        let mut job = Job { garbage, objects };
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = queue.as_ref() {
            match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::SendError(back)) => job = back,
            }
        }
        // No thread yet (or it is gone): start one.
        let (tx, rx) = mpsc::channel::<Job>();
        let counters = self.counters.clone();
        let spawned = std::thread::Builder::new()
            .name("ember-lazyfree".into())
            .spawn(move || {
                let _flush = crate::memory::FlushOnExit;
                for job in rx {
                    counters.free(job);
                }
            });
        if spawned.is_err() {
            // No thread to be had: free it here, as Redis would without
            // lazy free.
            self.counters.free(job);
            return;
        }
        if let Err(mpsc::SendError(job)) = tx.send(job) {
            self.counters.free(job);
        }
        *queue = Some(tx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effort_counts_allocations() {
        assert_eq!(effort(&Value::Str(store::value::Str::from_i64(1))), 1);
        let mut list = store::list::List::new();
        for i in 0..200_000u32 {
            list.push(false, &i.to_le_bytes());
        }
        let value = Value::List(Box::new(list));
        assert!(effort(&value) > THRESHOLD);
    }

    #[test]
    fn large_values_are_freed_on_the_thread() {
        let lazy = LazyFree::default();
        let mut list = store::list::List::new();
        for i in 0..200_000u32 {
            list.push(false, &i.to_le_bytes());
        }
        lazy.free(Value::List(Box::new(list)));
        let started = std::time::Instant::now();
        while lazy.freed() < 1 {
            assert!(started.elapsed() < std::time::Duration::from_secs(30));
            std::thread::yield_now();
        }
        assert_eq!(lazy.pending(), 0);
        // A small value is freed in place and counted nowhere.
        lazy.free(Value::Str(store::value::Str::from_i64(1)));
        assert_eq!(lazy.freed(), 1);
    }
}

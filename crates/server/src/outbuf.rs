//! A client's buffers as others see them (CLIENT LIST's `qbuf`, `omem`,
//! `tot-mem`..., INFO's `mem_clients_normal`),
//! `client-output-buffer-limit normal`, and `maxmemory-clients` (client
//! eviction, [`ClientMemory`] and [`evict_clients`]).
//!
//! A connection's task owns its read and write buffers; nobody else can
//! look into them. So the task publishes their sizes into its
//! [`Usage`] (relaxed atomics on the client's own cache line) once per
//! batch of commands, before it flushes the replies, and again once the
//! socket took them. What CLIENT LIST shows of another client is therefore
//! its state at its last batch boundary; a client that does not read is
//! between two of them in its flush, which runs a new batch whenever the
//! client sends more.
//!
//! The limit is checked by the task itself after each command of a batch
//! (the output grows only while commands run) and while a flush waits for
//! the socket (the soft limit's seconds run out then). See
//! [`Check::after_command`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::client::ClientInfo;
use crate::server::Shared;

/// What one client is counted for beside its buffers: its state, its
/// registry entry and its task (Redis counts its `client` struct).
pub(crate) const CLIENT_OVERHEAD: usize = 2048;

/// A read buffer as [`Usage::publish`] takes it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Read {
    /// Bytes in it.
    pub(crate) len: usize,
    /// Its allocation's room.
    pub(crate) capacity: usize,
    /// Of `len`, the bytes of a request still arriving that were decoded
    /// already (`RequestDecoder::progress`): Redis has moved them out of
    /// its query buffer.
    pub(crate) consumed: usize,
    /// Of those, its complete arguments' payloads (`argv-mem`), or, for a
    /// request about to run, all of its arguments.
    pub(crate) argv: usize,
}

/// The buffer sizes a connection publishes (see the module's comment).
#[derive(Debug, Default)]
pub(crate) struct Usage {
    /// Bytes read and not yet executed (`qbuf`).
    pub(crate) qbuf: AtomicUsize,
    /// The read buffer's free room (`qbuf-free`).
    pub(crate) qbuf_free: AtomicUsize,
    /// Bytes of output written into the connection's own buffer and not
    /// yet sent (`obl`).
    pub(crate) obl: AtomicUsize,
    /// Pieces of output queued by reference, not yet sent: large values
    /// sent from where they are stored (`oll`).
    pub(crate) oll: AtomicUsize,
    /// Every byte of output not yet sent, pieces queued by reference
    /// included (`omem`): what the limits compare.
    pub(crate) omem: AtomicUsize,
    /// The write buffer's capacity (`rbs`).
    pub(crate) rbs: AtomicUsize,
    /// The most output one batch of this client's produced (`rbp`).
    pub(crate) rbp: AtomicUsize,
    /// The complete arguments of a request still arriving (`argv-mem`).
    pub(crate) argv: AtomicUsize,
    /// What its state beside the buffers takes: the commands MULTI
    /// queued, the keys WATCHed, its subscriptions and tracking prefixes.
    pub(crate) state: AtomicUsize,
    /// What this client adds to [`ClientMemory`]'s sum now.
    counted: AtomicUsize,
    /// CLIENT NO-EVICT: `maxmemory-clients` never evicts it.
    pub(crate) no_evict: AtomicBool,
    /// Evicted, or no longer an ordinary client: counted for nothing.
    gone: AtomicBool,
}

impl Usage {
    /// Publishes the buffers' state at a batch boundary.
    /// `read` is the read buffer's length and capacity.
    /// `read` is the read buffer's state (see [`Read`]).
    pub(crate) fn publish(&self, read: Read, out: &transport::Output) {
        let r = Ordering::Relaxed;
        self.qbuf.store(read.len.saturating_sub(read.consumed), r);
        self.qbuf_free
            .store(read.capacity.saturating_sub(read.len), r);
        self.argv.store(read.argv, r);
        let pending = out.len();
        self.omem.store(pending, r);
        self.obl.store(pending - out.queued(), r);
        self.oll.store(out.pieces(), r);
        self.rbs.store(out.capacity(), r);
        if pending > self.rbp.load(r) {
            self.rbp.store(pending, r);
        }
    }

    /// The socket took every byte of output; the write buffer's room is
    /// now `capacity` (a large one is given back).
    pub(crate) fn flushed(&self, capacity: usize) {
        let r = Ordering::Relaxed;
        // Most batches of most clients: nothing to store.
        if self.omem.load(r) != 0 {
            self.omem.store(0, r);
            self.obl.store(0, r);
            self.oll.store(0, r);
        }
        if self.rbs.load(r) != capacity {
            self.rbs.store(capacity, r);
        }
    }

    /// The memory the client holds, as `tot-mem`, `mem_clients_normal`
    /// and `maxmemory-clients` count it (Redis's `getClientMemoryUsage`):
    /// the read buffer's allocation, the write buffer's, output queued by
    /// reference (a large value sent from where it is stored: it is the
    /// stored value's memory too, but a value deleted or overwritten
    /// meanwhile lives on until it is sent, and Redis counts its copy), its
    /// other state, and [`CLIENT_OVERHEAD`]. `pubsub` is what was published
    /// to it and not yet sent (part of it may be in the write buffer
    /// already: the larger of the two counts).
    pub(crate) fn total(&self, pubsub: usize) -> usize {
        self.total_with(pubsub, true)
    }

    /// [`Usage::total`] without the output queued by reference: the
    /// memory the client allocated itself (INFO's `mem_clients_normal`,
    /// which with the dataset's adds up to `used_memory`).
    pub(crate) fn allocated(&self, pubsub: usize) -> usize {
        self.total_with(pubsub, false)
    }

    fn total_with(&self, pubsub: usize, by_reference: bool) -> usize {
        let r = Ordering::Relaxed;
        let obl = self.obl.load(r);
        let queued = if by_reference {
            self.omem.load(r).saturating_sub(obl)
        } else {
            0
        };
        let output = self.rbs.load(r).max(obl) + queued;
        self.qbuf.load(r)
            + self.argv.load(r)
            + self.qbuf_free.load(r)
            + self.state.load(r)
            + output.max(pubsub)
            + CLIENT_OVERHEAD
    }

    /// Brings this client's part of `sum` up to date with what it holds
    /// now (see [`Usage::total`]); `pubsub` as there. Cheap when nothing
    /// changed, as in most batches: no shared line is written.
    pub(crate) fn account(&self, sum: &ClientMemory, pubsub: usize) {
        let now = if self.gone.load(Ordering::Relaxed) {
            0
        } else {
            self.total(pubsub)
        };
        let before = self.counted.load(Ordering::Relaxed);
        if now != before {
            let before = self.counted.swap(now, Ordering::Relaxed);
            sum.own
                .fetch_add(now.wrapping_sub(before), Ordering::Relaxed);
        }
    }

    /// The client is gone (closed, evicted, or now a replica's link, which
    /// the replication buffer counts): its part of `sum` goes.
    pub(crate) fn release(&self, sum: &ClientMemory) {
        self.gone.store(true, Ordering::Relaxed);
        let before = self.counted.swap(0, Ordering::Relaxed);
        sum.own.fetch_sub(before, Ordering::Relaxed);
    }
}

/// What ordinary clients (subscribers included) hold together, and
/// `maxmemory-clients` (Redis 7.0's client eviction): once they hold that
/// much, the largest are closed until they hold less.
///
/// Each client publishes its memory after each batch of commands (and
/// after each read of a request still arriving) into its [`Usage`], which
/// adds the change to one sum; messages published to subscribers are
/// summed apart, as they are queued (`pubsub::PENDING`). The check is one
/// comparison of the two sums with the limit, made before every command,
/// after a client's batch, in the server's tick and when the limit is
/// set; only over the limit are the clients walked.
#[derive(Debug, Default)]
pub(crate) struct ClientMemory {
    /// The sum of every ordinary client's [`Usage::account`]ed memory.
    own: AtomicUsize,
    /// The limit in bytes, as `maxmemory-clients` gives it now (a
    /// percentage of `maxmemory` worked out); 0: none.
    limit: AtomicUsize,
    /// INFO's `evicted_clients`.
    pub(crate) evicted: AtomicU64,
    /// The sum at which a walk of the clients found none to evict (all of
    /// them CLIENT NO-EVICT, say): not walked again until it changes.
    futile: AtomicUsize,
}

/// Redis's floor for `maxmemory-clients`: a smaller limit would cut off
/// every client, the one that could raise it included.
const MIN_LIMIT: usize = 128 * 1024;

impl ClientMemory {
    /// Sets the limit from `maxmemory-clients` (bytes, or a percentage of
    /// `maxmemory` when negative, as Redis stores it) and `maxmemory`.
    pub(crate) fn configure(&self, setting: i64, maxmemory: i64) {
        let bytes = if setting < 0 {
            if maxmemory > 0 {
                (maxmemory as f64 * -(setting as f64) / 100.0) as usize
            } else {
                0
            }
        } else {
            setting as usize
        };
        let limit = if bytes == 0 { 0 } else { bytes.max(MIN_LIMIT) };
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// What ordinary clients hold now, messages waiting for subscribers
    /// included.
    pub(crate) fn total(&self) -> usize {
        self.own.load(Ordering::Relaxed) + crate::pubsub::pending_total()
    }

    /// Whether `maxmemory-clients` is set.
    pub(crate) fn enabled(&self) -> bool {
        self.limit.load(Ordering::Relaxed) != 0
    }

    /// Whether clients must be evicted now: the cheap test.
    pub(crate) fn over(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        limit != 0 && self.total() >= limit
    }

    /// A client may be evicted that could not be (CLIENT NO-EVICT off).
    pub(crate) fn reconsider(&self) {
        self.futile.store(0, Ordering::Relaxed);
    }
}

/// Evicts clients while ordinary clients hold more than
/// `maxmemory-clients`, the largest first (Redis's `evictClients`, which
/// takes them by powers of two; this takes them in exact order). A client
/// with CLIENT NO-EVICT, a replica's link and the link to a master are
/// never evicted; each eviction is counted in `evicted_clients` and logged
/// as Redis logs it. An evicted client is out of CLIENT LIST at once, and
/// its connection closes as soon as its task sees the kill; a command of
/// its own that was about to run does not.
pub(crate) fn evict_clients(shared: &Shared) {
    let sum = &shared.client_memory;
    if !sum.over() || sum.total() == sum.futile.load(Ordering::Relaxed) {
        return;
    }
    let clients: Vec<Arc<ClientInfo>> = match shared.clients.lock() {
        Ok(clients) => clients.values().cloned().collect(),
        Err(_) => return,
    };
    let mut candidates: Vec<(usize, Arc<ClientInfo>)> = clients
        .into_iter()
        .filter(|c| {
            crate::client::ordinary(c.kind.load(Ordering::Relaxed))
                && !c.mem.no_evict.load(Ordering::Relaxed)
                && !c.mem.gone.load(Ordering::Relaxed)
        })
        .map(|c| (c.mem.total(c.pubsub.pending()), c))
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    let evicted_before = sum.evicted.load(Ordering::Relaxed);
    for (_, client) in candidates {
        if !sum.over() {
            return;
        }
        tracing::info!(
            "Evicting client: {}",
            crate::cmd::describe_client(shared, &client)
        );
        client.mem.release(sum);
        client.pubsub.release();
        client.kill.cancel();
        if let Ok(mut clients) = shared.clients.lock() {
            clients.remove(&client.id);
        }
        sum.evicted.fetch_add(1, Ordering::Relaxed);
    }
    if sum.over() {
        sum.futile.store(sum.total(), Ordering::Relaxed);
        if sum.evicted.load(Ordering::Relaxed) != evicted_before {
            tracing::warn!("Over client maxmemory after evicting all evictable clients");
        }
    }
}

/// `client-output-buffer-limit normal`, read at each batch, so kept in
/// atomics outside the config's lock.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    hard: AtomicU64,
    soft: AtomicU64,
    soft_secs: AtomicU64,
}

impl Limits {
    /// Sets the hard and soft bytes (0: none) and the soft seconds.
    pub(crate) fn set(&self, (hard, soft, secs): (i64, i64, i64)) {
        let r = Ordering::Relaxed;
        self.hard.store(hard.max(0) as u64, r);
        self.soft.store(soft.max(0) as u64, r);
        self.soft_secs.store(secs.max(0) as u64, r);
    }

    /// The limits in force now, for one batch.
    pub(crate) fn load(&self) -> Limit {
        let r = Ordering::Relaxed;
        Limit {
            hard: self.hard.load(r) as usize,
            soft: self.soft.load(r) as usize,
            soft_secs: self.soft_secs.load(r),
        }
    }
}

/// The limits of one batch.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limit {
    pub(crate) hard: usize,
    pub(crate) soft: usize,
    pub(crate) soft_secs: u64,
}

impl Limit {
    /// Whether any limit is set (the default, `0 0 0`, sets none).
    pub(crate) fn any(&self) -> bool {
        self.hard != 0 || self.soft != 0
    }
}

/// One connection's view of its limit: since when its output has been over
/// the soft limit.
#[derive(Debug, Default)]
pub(crate) struct Check {
    soft_since: Option<Instant>,
}

impl Check {
    /// Whether output of `pending` bytes breaks `limit` now, as Redis's
    /// `checkClientOutputBufferLimits` decides: at or past the hard limit,
    /// or at or past the soft limit continuously for longer than its
    /// seconds. Reads the clock only while over the soft limit.
    pub(crate) fn over(&mut self, limit: Limit, pending: usize) -> bool {
        if limit.hard != 0 && pending >= limit.hard {
            return true;
        }
        if limit.soft != 0 && pending >= limit.soft {
            let now = Instant::now();
            let since = *self.soft_since.get_or_insert(now);
            return now.duration_since(since) > Duration::from_secs(limit.soft_secs);
        }
        self.soft_since = None;
        false
    }

    /// How long output of `pending` bytes may still wait on the socket
    /// before the soft limit closes the client; `None` if it may wait
    /// forever.
    pub(crate) fn soft_deadline(&mut self, limit: Limit, pending: usize) -> Option<Instant> {
        if limit.soft == 0 || pending < limit.soft {
            self.soft_since = None;
            return None;
        }
        let since = *self.soft_since.get_or_insert_with(Instant::now);
        // Redis closes once more than its seconds have passed.
        Some(since + Duration::from_secs(limit.soft_secs) + Duration::from_millis(1))
    }

    /// The socket took everything: the soft limit's clock stops.
    pub(crate) fn flushed(&mut self) {
        self.soft_since = None;
    }
}

/// The line Redis logs as it closes a client for its output limit.
pub(crate) fn log_closed(description: &str) {
    tracing::warn!(
        "Client {description} scheduled to be closed ASAP for overcoming of output buffer limits."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_limit_at_its_bytes() {
        let limit = Limit {
            hard: 100,
            soft: 0,
            soft_secs: 0,
        };
        let mut check = Check::default();
        assert!(!check.over(limit, 99));
        assert!(check.over(limit, 100));
    }

    #[test]
    fn soft_limit_needs_its_seconds() {
        let limit = Limit {
            hard: 0,
            soft: 10,
            soft_secs: 3600,
        };
        let mut check = Check::default();
        assert!(!check.over(limit, 10));
        assert!(!check.over(limit, 1000));
        assert!(check.soft_deadline(limit, 10).is_some());
        assert!(!check.over(limit, 9));
        assert!(check.soft_deadline(limit, 9).is_none());
        let zero = Limit {
            soft_secs: 0,
            ..limit
        };
        let mut check = Check::default();
        let deadline = check.soft_deadline(zero, 10);
        assert!(deadline.is_some());
    }

    #[test]
    fn no_limit_by_default() {
        let mut check = Check::default();
        assert!(!Limit::default().any());
        assert!(!check.over(Limit::default(), usize::MAX));
    }
}

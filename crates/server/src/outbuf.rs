//! A client's buffers as others see them (CLIENT LIST's `qbuf`, `omem`,
//! `tot-mem`..., INFO's `mem_clients_normal`), and
//! `client-output-buffer-limit normal`.
//!
//! A connection's task owns its read and write buffers; nobody else can
//! look into them. So the task publishes their sizes into its
//! [`Usage`] (relaxed atomics on the client's own cache line) once per
//! batch of commands, before it flushes the replies, and again once the
//! socket took them. What CLIENT LIST shows of another client is therefore
//! its state at its last batch boundary, which is when a client that does
//! not read is stuck: in its flush.
//!
//! The limit is checked by the task itself after each command of a batch
//! (the output grows only while commands run) and while a flush waits for
//! the socket (the soft limit's seconds run out then). See
//! [`Check::after_command`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one client is counted for beside its buffers: its state, its
/// registry entry and its task (Redis counts its `client` struct).
pub(crate) const CLIENT_OVERHEAD: usize = 2048;

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
}

impl Usage {
    /// Publishes the buffers' state at a batch boundary.
    /// `read` is the read buffer's length and capacity.
    pub(crate) fn publish(&self, (len, capacity): (usize, usize), out: &transport::Output) {
        let r = Ordering::Relaxed;
        self.qbuf.store(len, r);
        self.qbuf_free.store(capacity.saturating_sub(len), r);
        let pending = out.len();
        self.omem.store(pending, r);
        self.obl.store(pending - out.queued(), r);
        self.oll.store(out.pieces(), r);
        self.rbs.store(out.capacity(), r);
        if pending > self.rbp.load(r) {
            self.rbp.store(pending, r);
        }
    }

    /// The socket took every byte of output.
    pub(crate) fn flushed(&self) {
        let r = Ordering::Relaxed;
        // Most batches of most clients: nothing to store.
        if self.omem.load(r) != 0 {
            self.omem.store(0, r);
            self.obl.store(0, r);
            self.oll.store(0, r);
        }
    }

    /// The memory the client's buffers hold, as `tot-mem` and
    /// `mem_clients_normal` count it: the read buffer's allocation, the
    /// write buffer's, and [`CLIENT_OVERHEAD`]. Output queued by
    /// reference is not the client's memory: it is the stored values'
    /// (it keeps a value deleted meanwhile alive, until it is sent).
    pub(crate) fn total(&self) -> usize {
        let r = Ordering::Relaxed;
        self.qbuf.load(r)
            + self.qbuf_free.load(r)
            + self.rbs.load(r).max(self.obl.load(r))
            + CLIENT_OVERHEAD
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

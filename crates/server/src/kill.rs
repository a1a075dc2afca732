//! A client's kill switch.
//!
//! A [`CancellationToken`] answers `is_cancelled` under its mutex; the
//! connection's loop and a replica's feed ask it often, so the kill keeps
//! its own flag beside the token, and its waiters (the connection between
//! batches, blocked commands, WAIT, a replica's feed) wait on the token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// A client's kill switch: pulled once, seen by every waiter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Kill(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    killed: AtomicBool,
    token: CancellationToken,
}

impl Kill {
    pub(crate) fn new() -> Kill {
        Kill::default()
    }

    /// Kills the client: every waiter wakes.
    pub(crate) fn cancel(&self) {
        self.0.killed.store(true, Ordering::Release);
        self.0.token.cancel();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.killed.load(Ordering::Acquire)
    }

    /// Completes once the client is killed (any number of waiters).
    pub(crate) fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.0.token.cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_kill_from_elsewhere_wakes_the_waiter_and_is_seen() {
        let kill = Kill::new();
        let other = kill.clone();
        let killer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            other.cancel();
        });
        kill.cancelled().await;
        assert!(kill.is_cancelled());
        killer.await.unwrap();
    }
}

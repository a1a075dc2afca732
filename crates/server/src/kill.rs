//! A client's kill switch, cheap to wait on from the client's own loop.
//!
//! A connection waits for its next request, for a kill (CLIENT KILL, an
//! output limit passed, a replica dropped) and for the server's shutdown
//! after every reply. Waiting on two [`CancellationToken`]s costs six
//! mutex round trips a request (each poll checks the token under its lock,
//! registers in its waiter list and unregisters when the read wins), one
//! of them on the shutdown token every connection shares: a few percent of
//! a pipeline-1 request's CPU. [`Kill::poll_stopped`] is the loop's own
//! wait instead: one atomic waker, no lock, and shutdown reaches it
//! through [`wake_all`] rather than through a shared waiter list. Other
//! waiters (blocked commands, WAIT, a replica's feed) keep the token's
//! multi-waiter future, [`Kill::cancelled`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::client::ClientInfo;

/// Why [`Kill::poll_stopped`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The client was killed.
    Killed,
    /// The server is shutting down.
    Shutdown,
}

/// A client's kill switch: pulled once, seen by every waiter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Kill(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    killed: AtomicBool,
    token: CancellationToken,
    /// The client's own loop, waiting in [`Kill::poll_stopped`].
    waker: AtomicWaker,
}

impl Kill {
    pub(crate) fn new() -> Kill {
        Kill::default()
    }

    /// Kills the client: every waiter wakes.
    pub(crate) fn cancel(&self) {
        self.0.killed.store(true, Ordering::Release);
        self.0.token.cancel();
        self.0.waker.wake();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.killed.load(Ordering::Acquire)
    }

    /// Completes once the client is killed (any number of waiters).
    pub(crate) fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.0.token.cancelled()
    }

    /// For the client's own loop only (one waiter): ready once the client
    /// is killed or `stopping` is set (the server is shutting down, and
    /// [`wake_all`] wakes every client after setting it).
    pub(crate) fn poll_stopped(&self, stopping: &AtomicBool, cx: &mut Context<'_>) -> Poll<Stop> {
        // Registered before the flags are read: a kill or a shutdown after
        // the reads wakes this waker.
        self.0.waker.register(cx.waker());
        if self.0.killed.load(Ordering::Acquire) {
            Poll::Ready(Stop::Killed)
        } else if stopping.load(Ordering::SeqCst) {
            Poll::Ready(Stop::Shutdown)
        } else {
            Poll::Pending
        }
    }

    /// Wakes the client's own loop without killing it (it then sees
    /// `stopping`).
    fn wake(&self) {
        self.0.waker.wake();
    }
}

/// Sets `stopping` and wakes every client's loop, which then ends. A client
/// registered after the walk sees `stopping` at its first wait.
pub(crate) fn wake_all(stopping: &AtomicBool, clients: &Mutex<HashMap<u64, Arc<ClientInfo>>>) {
    stopping.store(true, Ordering::SeqCst);
    let clients: Vec<Arc<ClientInfo>> = match clients.lock() {
        Ok(clients) => clients.values().cloned().collect(),
        Err(_) => return,
    };
    for client in clients {
        client.kill.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    #[tokio::test]
    async fn the_loop_wakes_on_a_kill_from_elsewhere() {
        let kill = Kill::new();
        let stopping = AtomicBool::new(false);
        let other = kill.clone();
        let killer = tokio::spawn(async move {
            tokio::task::yield_now().await;
            other.cancel();
        });
        let stop = poll_fn(|cx| kill.poll_stopped(&stopping, cx)).await;
        assert_eq!(stop, Stop::Killed);
        assert!(kill.is_cancelled());
        kill.cancelled().await;
        killer.await.unwrap();
    }

    #[tokio::test]
    async fn the_loop_wakes_on_shutdown_without_being_killed() {
        let kill = Kill::new();
        let stopping = Arc::new(AtomicBool::new(false));
        let (s, k) = (stopping.clone(), kill.clone());
        let waker = tokio::spawn(async move {
            tokio::task::yield_now().await;
            s.store(true, Ordering::SeqCst);
            k.wake();
        });
        let stop = poll_fn(|cx| kill.poll_stopped(&stopping, cx)).await;
        assert_eq!(stop, Stop::Shutdown);
        assert!(!kill.is_cancelled());
        waker.await.unwrap();
    }
}

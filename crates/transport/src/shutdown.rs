//! Graceful shutdown: a cancellation signal and a tracker of live tasks.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Coordinates a graceful stop: tasks spawned through it watch one token,
/// and [`Shutdown::wait`] returns once every one of them has finished.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let shutdown = ember_transport::Shutdown::new();
/// let token = shutdown.token();
/// shutdown.spawn(async move { token.cancelled().await });
/// shutdown.trigger();
/// shutdown.wait().await; // the task saw the signal and ended
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A new, untriggered shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token tasks watch (`token.cancelled().await`).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Whether shutdown has been triggered.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Spawns a task that [`Shutdown::wait`] waits for.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Spawns a task on the runtime of `handle` that [`Shutdown::wait`]
    /// waits for.
    pub fn spawn_on<F>(&self, task: F, handle: &tokio::runtime::Handle) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn_on(task, handle)
    }

    /// Signals every task to stop.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Waits until shutdown is triggered.
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }

    /// Closes the tracker and waits for every spawned task to finish.
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

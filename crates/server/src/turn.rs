//! The end of a connection worker's turn: the moment when none of its
//! tasks is ready to run, as Redis's event loop ends each turn by writing
//! every client's pending output before it waits for more input.
//!
//! A subscriber woken by a publish does not write at once: it waits for
//! the end of the turn ([`Turn::end`]), so that every publish whose request
//! arrived in the meantime is in its queue and goes out in the same write.
//! With 1,000 subscribers a publish is 1,000 writes either way; what the
//! wait saves is one write per publish per subscriber when publishes come
//! together, and it keeps each subscriber's write in one pass with the
//! others', as Redis's are.
//!
//! Each worker runtime has one [`Turn`] and one task ([`Turn::run`]) that
//! watches for the end: woken by the first waiter, it yields while other
//! tasks of the worker are ready, then releases every waiter at once.
//!
//! The publishers waiting with them ([`Turn::end_first`]) are released
//! first, so that their replies go out ahead of the subscribers' writes,
//! as Redis writes the clients that got output last first: the publishers
//! send their next request while the subscribers are being written, and
//! the next turn gathers more of them (1,000 subscribers: 22-32 writes
//! and 360-460 µs of CPU a publish, against 36-104 writes and 630-770 µs
//! with the publishers released among the subscribers, in the order they
//! waited; Redis 31-49 and 525-716 µs).

use std::sync::Arc;

use tokio::sync::Notify;

/// At most how many times the turn's task yields to other ready tasks
/// before it releases the waiters: a worker that is never idle still
/// delivers.
const MAX_YIELDS: u32 = 64;

/// One worker's end of turn.
#[derive(Debug, Default)]
pub(crate) struct Turn {
    /// Tasks released first at the end of the turn (publishers).
    first: Notify,
    /// Tasks waiting for the end of the turn.
    waiters: Notify,
    /// Wakes [`Turn::run`].
    kick: Notify,
}

impl Turn {
    /// A worker's turn; spawn [`Turn::run`] on the worker.
    pub(crate) fn new() -> Arc<Turn> {
        Arc::new(Turn::default())
    }

    /// Releases the waiters each time the worker has nothing else ready
    /// (or has yielded [`MAX_YIELDS`] times). Runs for the worker's life.
    pub(crate) async fn run(self: Arc<Turn>) {
        loop {
            self.kick.notified().await;
            let mut yields = 0;
            while yields < MAX_YIELDS && others_ready() {
                tokio::task::yield_now().await;
                yields += 1;
            }
            self.release();
        }
    }

    /// Wakes the publishers, then the other waiters.
    fn release(&self) {
        self.first.notify_waiters();
        self.waiters.notify_waiters();
    }

    /// Completes at the end of the worker's current turn.
    pub(crate) async fn end(&self) {
        self.end_in(&self.waiters).await;
    }

    /// Completes at the end of the worker's current turn, ahead of the
    /// tasks waiting in [`Turn::end`].
    pub(crate) async fn end_first(&self) {
        self.end_in(&self.first).await;
    }

    async fn end_in(&self, list: &Notify) {
        let waiter = list.notified();
        let mut waiter = std::pin::pin!(waiter);
        // Registered before the kick: the release cannot pass it by.
        waiter.as_mut().enable();
        self.kick.notify_one();
        waiter.await;
    }
}

/// Whether other tasks of this worker wait to run (a connection's worker
/// runs one thread: its queue is worker 0's). Without tokio's unstable
/// metrics, assumes they do.
pub(crate) fn others_ready() -> bool {
    #[cfg(tokio_unstable)]
    {
        let metrics = tokio::runtime::Handle::current().metrics();
        metrics.worker_local_queue_depth(0) + metrics.global_queue_depth() > 0
    }
    #[cfg(not(tokio_unstable))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};
    use std::time::Duration;

    use super::Turn;

    /// A runtime like a connection worker's: one thread, the
    /// multi-threaded scheduler.
    fn worker() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn every_waiter_is_released_once_the_worker_is_idle() {
        worker().block_on(async {
            let turn = Turn::new();
            tokio::spawn(turn.clone().run());
            let released = Arc::new(AtomicUsize::new(0));
            let mut waiters = Vec::new();
            for _ in 0..300 {
                let (turn, released) = (turn.clone(), released.clone());
                waiters.push(tokio::spawn(async move {
                    turn.end().await;
                    released.fetch_add(1, Ordering::Relaxed);
                }));
            }
            for waiter in waiters {
                tokio::time::timeout(Duration::from_secs(10), waiter)
                    .await
                    .expect("released")
                    .expect("task");
            }
            assert_eq!(released.load(Ordering::Relaxed), 300);
            // And again: the turn's task serves turn after turn.
            tokio::time::timeout(Duration::from_secs(10), turn.end())
                .await
                .expect("released again");
        });
    }

    /// At the end of the turn a publisher is woken before the subscribers,
    /// though it waited after them.
    #[test]
    fn publishers_are_woken_ahead_of_subscribers() {
        struct Record(usize, Arc<Mutex<Vec<usize>>>);
        impl Wake for Record {
            fn wake(self: Arc<Self>) {
                self.1.lock().expect("lock").push(self.0);
            }
        }
        let turn = Turn::new();
        let woken = Arc::new(Mutex::new(Vec::new()));
        let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = Vec::new();
        for _ in 0..5 {
            waits.push(Box::pin(turn.end()));
        }
        waits.push(Box::pin(turn.end_first()));
        for (id, wait) in waits.iter_mut().enumerate() {
            let waker = Waker::from(Arc::new(Record(id, woken.clone())));
            let pending = wait.as_mut().poll(&mut Context::from_waker(&waker));
            assert!(pending.is_pending());
        }
        turn.release();
        assert_eq!(*woken.lock().expect("lock"), [5, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_worker_that_is_never_idle_still_ends_its_turns() {
        worker().block_on(async {
            let turn = Turn::new();
            tokio::spawn(turn.clone().run());
            // Two tasks that are always ready to run.
            let stop = Arc::new(AtomicBool::new(false));
            let mut busy = Vec::new();
            for _ in 0..2 {
                let stop = stop.clone();
                busy.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::task::yield_now().await;
                    }
                }));
            }
            for _ in 0..3 {
                tokio::time::timeout(Duration::from_secs(10), turn.end())
                    .await
                    .expect("released within the yields' bound");
            }
            stop.store(true, Ordering::Relaxed);
            for task in busy {
                task.await.expect("task");
            }
        });
    }
}

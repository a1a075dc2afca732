//! CLIENT PAUSE: holding back clients' commands for a while, Redis 7.0's
//! way.
//!
//! A pause of kind [`Kind::Write`] holds back commands that may change the
//! keyspace (write commands, and EXEC of a transaction holding one); a
//! pause of kind [`Kind::All`] holds back every command. A held-back client
//! is not refused: it waits, and its command runs when the pause ends
//! (CLIENT UNPAUSE, or its deadline). While any pause is on, the keyspace
//! stays as it is: the expiry cycle stops and reads treat expired keys as
//! missing without deleting them, so replicas' offsets stop moving but for
//! the master's periodic PINGs, which Redis keeps sending too.
//!
//! Replicas' links are never held back; neither is a replica's link to its
//! master (Redis 7.0 pauses the latter: Ember applies its master's stream
//! regardless).

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// What a pause holds back. The order is Redis's: the later kind is the
/// more restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Commands that may write.
    Write,
    /// Every command.
    All,
}

/// The current pause, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    kind: Kind,
    /// Unix ms; the pause lasts while the clock is not past it.
    end: i64,
}

/// The server's pause state, shared by every connection.
#[derive(Debug)]
pub(crate) struct Pause {
    state: Mutex<Option<State>>,
    /// Bumped on every change, to wake held-back clients so they look
    /// again.
    changed: tokio::sync::watch::Sender<u64>,
    /// The end of the current pause (or `i64::MIN`), shared with every
    /// database, which reads it when it meets an expired key (see
    /// `Db::lookup`).
    expiry_paused_until: std::sync::Arc<AtomicI64>,
}

impl Pause {
    /// No pause; `until` is the keyspace's (`Keyspace::expiry_pause`).
    pub(crate) fn new(until: std::sync::Arc<AtomicI64>) -> Pause {
        until.store(i64::MIN, Ordering::Relaxed);
        Pause {
            state: Mutex::new(None),
            changed: tokio::sync::watch::Sender::new(0),
            expiry_paused_until: until,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Option<State>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The pause as of `now`: one that ended is forgotten.
    fn current(state: &mut Option<State>, now: i64) -> Option<State> {
        if state.is_some_and(|s| s.end < now) {
            *state = None;
        }
        *state
    }

    /// Pauses until `end` (Unix ms). A pause already on keeps the later
    /// end and the more restrictive kind of the two, as Redis's
    /// `pauseClients` does: a shorter or weaker pause never shortens or
    /// weakens it.
    pub(crate) fn pause(&self, kind: Kind, end: i64, now: i64) {
        let mut state = self.state();
        let merged = match Self::current(&mut state, now) {
            Some(s) => State {
                kind: s.kind.max(kind),
                end: s.end.max(end),
            },
            None => State { kind, end },
        };
        if merged.end < now {
            // CLIENT PAUSE 0: over before it began.
            return;
        }
        *state = Some(merged);
        self.expiry_paused_until
            .store(merged.end, Ordering::Release);
        drop(state);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Ends the pause (CLIENT UNPAUSE).
    pub(crate) fn unpause(&self) {
        *self.state() = None;
        self.expiry_paused_until.store(i64::MIN, Ordering::Release);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether a pause may be on at `now`, without the lock: every command
    /// asks, and almost always there is none.
    fn maybe(&self, now: i64) -> bool {
        self.expiry_paused_until.load(Ordering::Acquire) >= now
    }

    /// Whether the keyspace is frozen at `now`: any pause is on.
    pub(crate) fn active(&self, now: i64) -> bool {
        self.maybe(now) && Self::current(&mut self.state(), now).is_some()
    }

    /// The end of the pause that holds back a command at `now`, if one
    /// does: `write` says whether the command may write (asked only while
    /// a pause is on).
    pub(crate) fn holds(&self, write: impl FnOnce() -> bool, now: i64) -> Option<i64> {
        if !self.maybe(now) {
            return None;
        }
        match Self::current(&mut self.state(), now)? {
            State {
                kind: Kind::All,
                end,
            } => Some(end),
            State {
                kind: Kind::Write,
                end,
            } if write() => Some(end),
            State { .. } => None,
        }
    }

    /// Waits until a command that `write`s or not is no longer held back.
    pub(crate) async fn wait_over(&self, write: bool) {
        let mut changed = self.changed.subscribe();
        loop {
            // Marked seen before looking, so a change made after the look
            // wakes the wait below.
            changed.borrow_and_update();
            let now = crate::server::now_ms();
            let Some(end) = self.holds(|| write, now) else {
                return;
            };
            let left = u64::try_from(end - now).unwrap_or(0) + 1;
            tokio::select! {
                _ = changed.changed() => {}
                () = tokio::time::sleep(std::time::Duration::from_millis(left)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause() -> Pause {
        Pause::new(std::sync::Arc::new(AtomicI64::new(0)))
    }

    #[test]
    fn a_weaker_or_shorter_pause_never_shortens_one() {
        let p = pause();
        assert_eq!(p.holds(|| true, 0), None);
        p.pause(Kind::All, 1000, 0);
        assert_eq!(p.holds(|| false, 10), Some(1000));
        p.pause(Kind::Write, 500, 10);
        assert_eq!(p.holds(|| false, 20), Some(1000), "still ALL, still 1000");
        p.pause(Kind::Write, 2000, 20);
        assert_eq!(p.holds(|| false, 30), Some(2000), "ALL, extended");
        assert_eq!(p.expiry_paused_until.load(Ordering::Relaxed), 2000);
        assert_eq!(p.holds(|| true, 2000), Some(2000), "the end is inclusive");
        assert_eq!(p.holds(|| true, 2001), None);
        assert!(!p.active(2001));
    }

    #[test]
    fn write_pauses_hold_back_writes_only_and_unpause_ends_all() {
        let p = pause();
        p.pause(Kind::Write, 100, 0);
        assert_eq!(p.holds(|| false, 1), None);
        assert_eq!(p.holds(|| true, 1), Some(100));
        assert!(p.active(1));
        p.unpause();
        assert_eq!(p.holds(|| true, 1), None);
        assert_eq!(p.expiry_paused_until.load(Ordering::Relaxed), i64::MIN);
        // An ended pause is forgotten before a new one is merged with it.
        p.pause(Kind::All, 100, 0);
        p.pause(Kind::Write, 300, 200);
        assert_eq!(p.holds(|| false, 250), None);
        // A pause whose end has passed does nothing.
        p.unpause();
        p.pause(Kind::All, 0, 10);
        assert!(!p.active(10));
    }

    #[tokio::test]
    async fn waiting_clients_go_on_when_unpaused() {
        let p = std::sync::Arc::new(pause());
        let now = crate::server::now_ms();
        p.pause(Kind::Write, now + 3_600_000, now);
        // Reads are not held back at all.
        p.wait_over(false).await;
        let waiting = tokio::spawn({
            let p = p.clone();
            async move { p.wait_over(true).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        p.unpause();
        waiting.await.expect("the wait ends");
    }
}

//! Client-side caching (Redis's tracking.c): which clients may hold which
//! keys, and the invalidation messages they get when those keys change.
//!
//! A tracking client in the default mode has the keys of each read-only
//! command it runs remembered in one table, key to client ids, for every
//! database at once (as in Redis). A key that changes (the keyspace
//! records it in the command's `Effects` while anyone tracks) is looked up
//! once, its clients told, and dropped from the table: a client hears of a
//! key once per read. A client in BCAST mode is told of every changed key
//! under its prefixes instead, as one array per prefix, sorted, once per
//! batch of the changing connection: a pipeline of writes (and a
//! transaction, a script) gives one message per prefix, as Redis's event
//! loop sends one per turn.
//!
//! Invalidations reach a RESP3 client as `invalidate` pushes, or the
//! client it redirects to: as a push in RESP3, or, in RESP2, as a message
//! on `__redis__:invalidate` if that client is subscribed to anything.
//! Nothing here is touched while nobody tracks: the keyspace records no
//! changed keys, and the registry's lock is never taken.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::{BufMut, Bytes, BytesMut};
use resp::Protocol;

use crate::server::Shared;

/// A client's tracking options (CLIENT TRACKING ON ...), kept with the
/// client and, for what invalidation needs, in the registry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mode {
    /// The client invalidations go to instead (0: the client itself).
    pub(crate) redirect: u64,
    pub(crate) bcast: bool,
    pub(crate) optin: bool,
    pub(crate) optout: bool,
    pub(crate) noloop: bool,
    /// BCAST prefixes, sorted (an empty one for every key).
    pub(crate) prefixes: BTreeSet<Bytes>,
    /// CLIENT CACHING YES (OPTIN) or NO (OPTOUT) for the next command.
    pub(crate) caching: bool,
}

/// The server's tracking state.
#[derive(Debug, Default)]
pub(crate) struct Tracking {
    /// Clients with tracking on (Redis's `tracking_clients`).
    clients: AtomicUsize,
    /// `tracking-table-max-keys` (0: no limit).
    max_keys: AtomicI64,
    /// How many clients' BCAST invalidations wait in `pending` (set under
    /// the lock): a batch that changed nothing under a prefix ends without
    /// taking it.
    pending: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Key to the ids of the clients that read it (default mode).
    keys: HashMap<Bytes, HashSet<u64>>,
    /// Client ids across `keys` (INFO's `tracking_total_items`).
    items: usize,
    /// Every tracking client's mode, by id.
    modes: HashMap<u64, Registered>,
    /// BCAST prefix to the ids of its clients.
    prefixes: BTreeMap<Bytes, HashSet<u64>>,
    /// BCAST invalidations gathered while client id (0: none) runs a
    /// batch of commands, sent once it is done (in one message per prefix,
    /// as Redis sends them from its event loop): prefix, then each changed
    /// key with its last changer.
    pending: HashMap<u64, Batches>,
}

type Batches = BTreeMap<Bytes, BTreeMap<Bytes, Option<u64>>>;

#[derive(Debug)]
struct Registered {
    redirect: u64,
    bcast: bool,
    noloop: bool,
    /// The redirect client was gone when an invalidation was due
    /// (TRACKINGINFO's `broken_redirect`).
    broken: bool,
}

/// One invalidation to deliver once the registry's lock is dropped: to
/// tracking client `id`, the value part (an array of keys, or a null).
struct Due {
    id: u64,
    value: Bytes,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tracking {
    /// Whether any client tracks keys.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.clients.load(Ordering::Relaxed) > 0
    }

    /// Sets `tracking-table-max-keys`.
    pub(crate) fn set_max_keys(&self, n: i64) {
        self.max_keys.store(n, Ordering::Relaxed);
    }

    /// Turns tracking on for client `id` with `mode` (again: its options
    /// are replaced, its BCAST prefixes added to).
    pub(crate) fn enable(&self, shared: &Shared, id: u64, mode: &Mode) {
        let mut inner = lock(&self.inner);
        let fresh = !inner.modes.contains_key(&id);
        inner.modes.insert(
            id,
            Registered {
                redirect: mode.redirect,
                bcast: mode.bcast,
                noloop: mode.noloop,
                broken: false,
            },
        );
        for prefix in &mode.prefixes {
            inner.prefixes.entry(prefix.clone()).or_default().insert(id);
        }
        drop(inner);
        if fresh {
            self.clients.fetch_add(1, Ordering::Relaxed);
        }
        shared.keyspace.set_tracking(true);
    }

    /// Turns tracking off for client `id` (CLIENT TRACKING OFF, RESET, a
    /// closed connection). Its ids stay in the key table, dropped lazily
    /// as Redis does.
    pub(crate) fn disable(&self, shared: &Shared, id: u64) {
        if !self.active() {
            return;
        }
        let mut inner = lock(&self.inner);
        if inner.modes.remove(&id).is_none() {
            return;
        }
        inner.prefixes.retain(|_, ids| {
            ids.remove(&id);
            !ids.is_empty()
        });
        if inner.modes.is_empty() {
            // Nobody left to tell.
            inner.pending.clear();
            self.pending.store(0, Ordering::Relaxed);
        }
        drop(inner);
        if self.clients.fetch_sub(1, Ordering::Relaxed) == 1 {
            shared.keyspace.set_tracking(false);
        }
    }

    /// CLIENT LIST's view of client `id`: its redirect, whether that was
    /// found gone, whether it is in BCAST mode; `None` if it does not
    /// track.
    pub(crate) fn describe(&self, id: u64) -> Option<(u64, bool, bool)> {
        if !self.active() {
            return None;
        }
        lock(&self.inner)
            .modes
            .get(&id)
            .map(|m| (m.redirect, m.broken, m.bcast))
    }

    /// Whether the redirect of client `id` was found gone.
    pub(crate) fn broken_redirect(&self, id: u64) -> bool {
        lock(&self.inner).modes.get(&id).is_some_and(|m| m.broken)
    }

    /// Remembers that client `id` read `keys` (default mode).
    pub(crate) fn remember(&self, shared: &Shared, id: u64, keys: &[&[u8]]) {
        let mut inner = lock(&self.inner);
        for &key in keys {
            let ids = match inner.keys.get_mut(key) {
                Some(ids) => ids,
                None => inner.keys.entry(Bytes::copy_from_slice(key)).or_default(),
            };
            if ids.insert(id) {
                inner.items += 1;
            }
        }
        drop(inner);
        self.limit(shared);
    }

    /// Over `tracking-table-max-keys`: keys are dropped from the table,
    /// their clients told (they may no longer cache them), as Redis's
    /// `trackingLimitUsedSlots` does. Run after each read remembered and
    /// when the limit is set.
    pub(crate) fn limit(&self, shared: &Shared) {
        let max = self.max_keys.load(Ordering::Relaxed);
        if max <= 0 || !self.active() {
            return;
        }
        let mut inner = lock(&self.inner);
        let mut due = Vec::new();
        while inner.keys.len() as i64 > max {
            let Some(key) = inner.keys.keys().next().cloned() else {
                break;
            };
            inner.invalidate_key(&key, None, &mut due);
        }
        drop(inner);
        deliver(shared, due);
    }

    /// `keys` changed, by client `by` (`None`: the expiry cycle): tells
    /// the clients that may cache them, at once in the default mode; BCAST
    /// clients once `by` is done ([`Tracking::command_done`]).
    pub(crate) fn invalidate(&self, shared: &Shared, by: Option<u64>, keys: Vec<Bytes>) {
        if !self.active() {
            return;
        }
        let mut inner = lock(&self.inner);
        let mut due = Vec::new();
        let mut batches = inner.pending.remove(&by.unwrap_or(0)).unwrap_or_default();
        for key in &keys {
            for prefix in inner.prefixes.keys() {
                if key.starts_with(prefix) {
                    batches
                        .entry(prefix.clone())
                        .or_default()
                        .insert(key.clone(), by);
                }
            }
            inner.invalidate_key(key, by, &mut due);
        }
        if !batches.is_empty() {
            inner.pending.insert(by.unwrap_or(0), batches);
        }
        self.pending.store(inner.pending.len(), Ordering::Relaxed);
        drop(inner);
        deliver(shared, due);
        if by.is_none() {
            self.command_done(shared, None);
        }
    }

    /// Client `by` finished its batch of commands (a connection's), or a
    /// command (any other client's): the BCAST invalidations it caused go
    /// out.
    pub(crate) fn command_done(&self, shared: &Shared, by: Option<u64>) {
        if !self.active() || self.pending.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut inner = lock(&self.inner);
        let Some(batches) = inner.pending.remove(&by.unwrap_or(0)) else {
            return;
        };
        self.pending.store(inner.pending.len(), Ordering::Relaxed);
        let mut due = Vec::new();
        for (prefix, changed) in batches {
            let Some(ids) = inner.prefixes.get(&prefix) else {
                continue;
            };
            for &id in ids {
                let noloop = inner.modes.get(&id).is_some_and(|m| m.noloop);
                let keys: Vec<&Bytes> = changed
                    .iter()
                    .filter(|(_, changer)| !(noloop && **changer == Some(id)))
                    .map(|(k, _)| k)
                    .collect();
                if !keys.is_empty() {
                    due.push(Due {
                        id,
                        value: key_array(keys.into_iter()),
                    });
                }
            }
        }
        drop(inner);
        deliver(shared, due);
    }

    /// Every key changed (FLUSHDB, FLUSHALL): every tracking client is
    /// told so with a null, and the table starts afresh.
    pub(crate) fn flushed(&self, shared: &Shared) {
        let mut inner = lock(&self.inner);
        inner.keys.clear();
        inner.items = 0;
        let due = inner
            .modes
            .keys()
            .map(|&id| Due {
                id,
                value: Bytes::new(),
            })
            .collect();
        drop(inner);
        deliver(shared, due);
    }

    /// INFO's tracking figures: clients, keys, items, prefixes.
    pub(crate) fn figures(&self) -> (usize, usize, usize, usize) {
        let inner = lock(&self.inner);
        (
            self.clients.load(Ordering::Relaxed),
            inner.keys.len(),
            inner.items,
            inner.prefixes.len(),
        )
    }
}

impl Inner {
    /// Drops `key` from the table, queueing an invalidation for each of its
    /// clients still tracking in the default mode (but its changer `by`
    /// in NOLOOP mode).
    fn invalidate_key(&mut self, key: &[u8], by: Option<u64>, due: &mut Vec<Due>) {
        let Some(ids) = self.keys.remove(key) else {
            return;
        };
        self.items = self.items.saturating_sub(ids.len());
        let mut ids: Vec<u64> = ids.into_iter().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(mode) = self.modes.get(&id) else {
                continue;
            };
            if mode.bcast || (mode.noloop && by == Some(id)) {
                continue;
            }
            due.push(Due {
                id,
                value: key_array(std::iter::once(&Bytes::copy_from_slice(key))),
            });
        }
    }
}

/// Invalidates the keys recorded as changed in `fx` (by client `by`).
#[inline]
pub(crate) fn flush(shared: &Shared, by: Option<u64>, fx: &mut store::keyspace::Effects) {
    if fx.has_changed_keys() {
        let keys = fx.take_changed_keys();
        shared.tracking.invalidate(shared, by, keys);
    }
}

/// An array of bulk strings.
fn key_array<'k>(keys: impl ExactSizeIterator<Item = &'k Bytes>) -> Bytes {
    let mut out = BytesMut::new();
    out.put_slice(format!("*{}\r\n", keys.len()).as_bytes());
    for key in keys {
        out.put_slice(format!("${}\r\n", key.len()).as_bytes());
        out.put_slice(key);
        out.put_slice(b"\r\n");
    }
    out.freeze()
}

/// Sends each invalidation to its client, or the client it redirects to,
/// framed for the receiver (Redis's `sendTrackingMessage`). An empty
/// value is the null of a flush, in the tracking client's protocol.
fn deliver(shared: &Shared, due: Vec<Due>) {
    if due.is_empty() {
        return;
    }
    let mut broken = Vec::new();
    {
        let clients = lock(&shared.clients);
        let modes = lock(&shared.tracking.inner);
        for Due { id, value } in due {
            let (Some(client), Some(mode)) = (clients.get(&id), modes.modes.get(&id)) else {
                continue;
            };
            let proto = |c: &crate::client::ClientInfo| lock(&c.meta).proto;
            let value = if value.is_empty() {
                if proto(client) == Protocol::Resp3 {
                    Bytes::from_static(b"_\r\n")
                } else {
                    Bytes::from_static(b"$-1\r\n")
                }
            } else {
                value
            };
            let target = if mode.redirect != 0 {
                match clients.get(&mode.redirect) {
                    Some(target) => target,
                    None => {
                        broken.push(id);
                        if proto(client) == Protocol::Resp3 {
                            let frame = format!(
                                ">2\r\n$21\r\ntracking-redir-broken\r\n:{}\r\n",
                                mode.redirect
                            );
                            shared.pubsub.push_frame(&client.pubsub, Bytes::from(frame));
                        }
                        continue;
                    }
                }
            } else {
                client
            };
            let head: &[u8] = if proto(target) == Protocol::Resp3 {
                b">2\r\n$10\r\ninvalidate\r\n"
            } else if mode.redirect != 0 && target.pubsub.active() {
                b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n"
            } else {
                // A RESP2 connection without a redirect gets nothing.
                continue;
            };
            let mut frame = BytesMut::with_capacity(head.len() + value.len());
            frame.put_slice(head);
            frame.put_slice(&value);
            shared.pubsub.push_frame(&target.pubsub, frame.freeze());
        }
    }
    if !broken.is_empty() {
        let mut inner = lock(&shared.tracking.inner);
        for id in broken {
            if let Some(mode) = inner.modes.get_mut(&id) {
                mode.broken = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_arrays_are_resp() {
        let keys = [Bytes::from_static(b"a"), Bytes::from_static(b"bc")];
        assert_eq!(
            &key_array(keys.iter())[..],
            b"*2\r\n$1\r\na\r\n$2\r\nbc\r\n"
        );
    }
}
